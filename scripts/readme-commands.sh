#!/usr/bin/env bash
# Runs the README's commands as a user types them, in a fresh clone of this repository's HEAD
# (so a file that git does not track cannot make them pass), with the README's relative paths:
#
#   1. the main job, `bash scripts/install-deps.sh && cargo run --release -- demo`, as
#      `demo --quick` (the full demo's training takes ~15 min), from the clone's root with the
#      default --out; after `cargo test --release` it must not compile burn again;
#   2. every `vidapter ...` line of the README's blocks marked `<!-- readme-commands -->`
#      (the commands on the demo's output), from the clone's root;
#   3. the same lines from another directory two levels down, their `vidapter-demo/` paths
#      written relative to it (`../../vidapter-demo/`), so that checkpoints, stored configs
#      and the demo folder are shown to work from any working directory.
#
# `.ci/run` runs it after the tests. CARGO_TARGET_DIR defaults to this checkout's target/, so
# the clone reuses the test build (only vidapter itself compiles again: its path differs).
# Usage: bash scripts/readme-commands.sh [--keep]   (--keep leaves the clone for a look)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
tmp=$(mktemp -d)
cleanup() { if [ $keep = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT
fail() {
    echo "readme-commands: FAIL: $*" >&2
    exit 1
}
step() { echo "readme-commands: [$(date +%T)] $*" >&2; }

clone="$tmp/vidapter"
git clone -q "$repo" "$clone"
cd "$clone"

# The two commands must be in the README exactly as we run them here.
main_cmd='bash scripts/install-deps.sh && cargo run --release -- demo'
test_cmd='bash scripts/install-deps.sh && cargo test --release'
grep -qxF "$main_cmd" README.md || fail "README.md no longer shows the main command \`$main_cmd\`"
grep -qxF "$test_cmd" README.md || fail "README.md no longer shows the test command \`$test_cmd\`"

# 1. The main job, quick, from the clone's root with the default --out.
step "$main_cmd --quick"
start=$(date +%s)
bash scripts/install-deps.sh
cargo run --release -- demo --quick 2>&1 | tee "$tmp/demo.log"
if grep -E '^\s*Compiling burn' "$tmp/demo.log"; then
    fail "the main command compiled burn again after the test build: the two commands do not share one build"
fi
[ -s vidapter-demo/report.md ] || fail "the demo wrote no vidapter-demo/report.md"
step "main command: $(($(date +%s) - start)) s"

# The commands of the marked blocks, with `vidapter` the binary the main command built.
exe="$CARGO_TARGET_DIR/release/vidapter"
mapfile -t commands < <(awk '
    /<!-- readme-commands -->/ { marked = 1; next }
    marked && /^```sh/ { inside = 1; next }
    inside && /^```/ { inside = 0; marked = 0; next }
    inside && /^vidapter / { sub(/[ \t]+#.*$/, ""); print }
' README.md)
((${#commands[@]} >= 5)) || fail "found ${#commands[@]} marked README commands; expected the demo block (at least 5)"

run_all() {
    local prefix=$1
    for c in "${commands[@]}"; do
        c=${c//vidapter-demo\//$prefix}
        step "($(pwd | sed "s|$tmp/||")) $c"
        bash -c "set -euo pipefail; vidapter() { \"$exe\" \"\$@\"; }; $c" >"$tmp/out.txt" 2>&1 ||
            { cat "$tmp/out.txt" >&2; fail "\`$c\` failed in $(pwd)"; }
    done
}

# 2. From the clone's root, as written.
run_all "vidapter-demo/"

# 3. From another directory, two levels down, with the same paths relative to it.
mkdir -p elsewhere/deeper
cd elsewhere/deeper
run_all "../../vidapter-demo/"

step "all ${#commands[@]} README commands passed from the clone's root and from elsewhere/deeper"
