#!/usr/bin/env bash
# The gateway's instructions per relayed message, a figure the machine's load does not move.
#
#   bench/relay-cost.sh BIN DIALECT PORT OUTDIR     # DIALECT: antmedia, raw or socketio
#
# Runs BIN (a release switchboard) on bench/switchboard.toml (or CFG_SRC) at 127.0.0.1:PORT under
# valgrind's callgrind with its cache simulation, zeroes the counters once it listens, runs
# `switchboard-loadgen throughput --pairs 4 --window 8 --secs 8` against it (LG, default
# target/release/switchboard-loadgen), dumps the counters and prints instructions (Ir), data
# reads and writes and simulated cache misses per delivered message, then Ir without
# memset/memcpy/memmove: valgrind counts their `rep` forms once per iteration, so a build that
# zero-fills a 4 KiB buffer per read looks far costlier than it runs. Counts per message depend
# on how the load batches (a slow run delivers fewer messages per wake-up): compare builds run
# one after another in one sitting. A build whose config parser predates a key of
# bench/switchboard.toml gets a filtered copy through CFG_SRC.
set -euo pipefail
BIN=$1 D=$2 PORT=$3 OUT=$4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LG=${LG:-$ROOT/target/release/switchboard-loadgen}
mkdir -p "$OUT"
CFG=$OUT/sb.$D.toml
sed "s/127.0.0.1:15080/127.0.0.1:$PORT/" "${CFG_SRC:-$ROOT/bench/switchboard.toml}" >"$CFG"
RUST_LOG=warn valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$OUT/cg.$D.%p" \
    "$BIN" --config "$CFG" >"$OUT/sb.$D.log" 2>&1 &
VG=$!
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.2; done
sleep 1
callgrind_control -z $VG >/dev/null 2>&1
"$LG" throughput --dialect "$D" --pairs 4 --window 8 --secs 8 --addr 127.0.0.1:"$PORT" \
    --target $VG >"$OUT/lg.$D.json" 2>"$OUT/lg.$D.err"
callgrind_control -d $VG >/dev/null 2>&1
sleep 1
kill -INT $VG
wait $VG || true
python3 - "$OUT/cg.$D.$VG.1" "$OUT/lg.$D.json" "$D" <<'PY'
import json, re, subprocess, sys
profile, report, dialect = sys.argv[1:]
n = json.load(open(report))['delivered']
events = totals = None
for line in open(profile):
    if line.startswith('events:'):
        events = line.split()[1:]
    if line.startswith(('summary:', 'totals:')):
        totals = [int(x) for x in line.split()[1:]]
per = {k: v / n for k, v in zip(events, totals)}
out = subprocess.run(['callgrind_annotate', '--threshold=100', profile],
                     capture_output=True, text=True).stdout
mem = sum(int(m.group(1).replace(',', '')) for line in out.splitlines()
          if (m := re.match(r'\s*([\d,]+)\s', line)) and re.search(r'__mem(set|cpy|move)_', line))
print(dialect, 'delivered', n, ' '.join(f'{k}/msg={v:.1f}' for k, v in per.items()
                                         if k in ('Ir', 'Dr', 'Dw', 'I1mr', 'D1mr', 'D1mw')),
      f'Ir-without-mem*/msg={per["Ir"] - mem / n:.0f}')
PY
