#!/usr/bin/env bash
# The SFU's cost per forwarded packet as `perf` sees it: `perf stat` attached to the gateway
# that `sfu_bench` starts, for a window inside its measured window, divided by the packets the
# subscribers received meanwhile (the bench's own rate times the window): instructions (the
# figure least moved by other load, where the machine has hardware counters), CPU time and
# context switches (the media task's wake-ups). Optionally a `perf record -g` of the same window.
#
#   bench/sfu-perf.sh [N M SECONDS]          # default 16 16 10, the gateway of this worktree
#   SWITCHBOARD_BIN=/path/to/switchboard bench/sfu-perf.sh 16 16 10
#   SFU_BENCH=/path/to/sfu_bench ...         # default target/release/examples/sfu_bench
#   SFU_PERF_RECORD=perf.data ...            # also `perf record -g` the same window
#
# Prints one JSON line: the bench's report plus `task_clock_us_per_packet`,
# `context_switches_per_1000_packets` and, where the CPU's counters are available (not in
# most virtual machines: perf says `<not supported>`), `instructions_per_packet` (user space)
# and `kernel_instructions_per_packet`. Needs perf (linux-perf) and permission to attach to
# one's own processes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-16} M=${2:-16} SECS=${3:-10}
BIN=${SWITCHBOARD_BIN:-$PWD/target/release/switchboard}
BENCH=${SFU_BENCH:-$PWD/target/release/examples/sfu_bench}
[[ -x "$BIN" && -x "$BENCH" ]] || {
    echo "bench/sfu-perf.sh: need $BIN and $BENCH (cargo build --release -p switchboard -p switchboard-tests --example sfu_bench)" >&2
    exit 1
}
((SECS >= 4)) || {
    echo "bench/sfu-perf.sh: SECONDS must be at least 4" >&2
    exit 1
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SWITCHBOARD_BIN=$BIN "$BENCH" "$N" "$M" "$SECS" >"$WORK/report" &
BENCH_PID=$!

# The gateway is the bench's only child; it appears before the peers connect.
GW=
for _ in $(seq 100); do
    GW=$(pgrep -P "$BENCH_PID" | head -1 || true)
    [[ -n "$GW" ]] && break
    sleep 0.1
done
[[ -n "$GW" ]] || {
    echo "bench/sfu-perf.sh: the gateway did not start" >&2
    exit 1
}
# The bench connects its peers (about a second at 16 x 16 on an idle machine), then warms up
# for 2 s; the perf window starts after that and ends a second before the measured window.
WINDOW=$((SECS - 2))
sleep 4
perf stat -x, -e task-clock,context-switches,instructions:u,instructions:k -p "$GW" -o "$WORK/stat" -- sleep "$WINDOW" 2>/dev/null &
STAT_PID=$!
if [[ -n "${SFU_PERF_RECORD:-}" ]]; then
    perf record -e cpu-clock -F 999 -g -p "$GW" -o "$SFU_PERF_RECORD" -- sleep "$WINDOW" 2>/dev/null &
    RECORD_PID=$!
fi
wait "$STAT_PID"
[[ -n "${RECORD_PID:-}" ]] && wait "$RECORD_PID"
wait "$BENCH_PID"

python3 - "$WORK/report" "$WORK/stat" "$WINDOW" <<'EOF'
import json, sys
report = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
counts = {}
for line in open(sys.argv[2]):
    fields = line.strip().split(",")
    if len(fields) > 2 and fields[0].replace(".", "").isdigit():
        counts[fields[2]] = float(fields[0])
packets = report["forwarded_packets_per_sec"] * float(sys.argv[3])
per = lambda event, scale: round(counts[event] * scale / packets, 1) if packets and event in counts else None
report["perf_window_s"] = float(sys.argv[3])
report["task_clock_us_per_packet"] = per("task-clock", 1000.0)  # perf reports msec
report["context_switches_per_1000_packets"] = per("context-switches", 1000.0)
report["instructions_per_packet"] = per("instructions:u", 1.0)
report["kernel_instructions_per_packet"] = per("instructions:k", 1.0)
print(json.dumps(report))
EOF
