#!/usr/bin/env bash
# Fuzzes each dialect decoder (the cargo-fuzz targets in protocol/fuzz/) for a short time.
#
#   ./scripts/fuzz.sh          # 20 s per target (what CI runs)
#   ./scripts/fuzz.sh 600      # longer, by hand
#
# Each target starts from a copy of its seed corpus (protocol/fuzz/corpus/<target>/, kept in the
# repository), so a run never changes the committed corpus. A crash fails the script and leaves
# the input in protocol/fuzz/artifacts/<target>/; reproduce it with
#   cd protocol/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/crash-...
# and, once fixed, add it to the corpus.
#
# cargo-fuzz passes nightly-only compiler flags (-Zsanitizer=address and friends); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1. cargo-fuzz is installed if missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../protocol/fuzz"
secs="${1:-20}"

log() { printf '==> %s\n' "$*" >&2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1

log "cargo fuzz build"
cargo fuzz build 2>&1 | tail -n 1 >&2
for target in $(cargo fuzz list); do
    work="$(mktemp -d)"
    cp corpus/"$target"/* "$work"/
    log "fuzz $target for ${secs}s ($(ls "$work" | wc -l) seeds)"
    if ! cargo fuzz run "$target" "$work" -- -max_total_time="$secs" -max_len=65536 \
        -print_final_stats=1 >"$work.log" 2>&1; then
        tail -n 40 "$work.log" >&2
        rm -rf "$work" "$work.log"
        log "fuzz target $target failed; the input is in protocol/fuzz/artifacts/$target/"
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^Done' "$work.log" >&2 || true
    rm -rf "$work" "$work.log"
done
