#!/usr/bin/env bash
# socket.io transports, before and after in one sitting: another gateway build (BASE_BIN) and
# this tree's release build, in interleaved rounds, each against the same release load generator,
# plus the node relay. Per round and server: a burst (20 pairs x 1,500 offers of 6.5 KB) on a
# direct WebSocket and with the default client's connect (long-polling, then the upgrade);
# windowed throughput (50 pairs, W 32, 5 s) on a direct WebSocket; and socket.io-client 4 pinned
# to long-polling (bench/sio-polling.mjs, 10 pairs x 500). Server CPU per message comes from
# /proc/PID/stat (utime + stime, 10 ms ticks) around each run. Loopback only; every run is
# bounded by `timeout`. Needs `cargo build --release -p switchboard -p switchboard-loadgen` and
# `npm ci` done. Writes OUTDIR/results.tsv: server, scenario, sent, delivered, lost, out of order,
# msgs/s, server CPU us/msg.
#
# With SIO_CLIENT=v2 the socket.io rows are the real socket.io-client 2.5 (engine.io 3) instead,
# driven by bench/sio-polling.mjs (the load generator speaks engine.io 4 only): per round and
# server, a burst of 20 pairs x 1,500 offers on a direct WebSocket (`transports: ["websocket"]`)
# and with default options (long-polling, then the upgrade), and 10 pairs x 500 pinned to
# long-polling; the node relay serves them too (it allows engine.io 3).
#
#   BASE_BIN=/path/to/old/switchboard [SIO_CLIENT=v2] bench/sio-transports.sh [ROUNDS] [OUTDIR]
set -u
ROUNDS=${1:-4}; OUT=${2:-bench/results/sio-transports}; mkdir -p "$OUT"
W=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LG=$W/target/release/switchboard-loadgen
: "${BASE_BIN:?set BASE_BIN to the gateway build to compare with}"
declare -A BIN=([base]=$BASE_BIN [new]=$W/target/release/switchboard)
declare -A PORT=([base]=17941 [new]=17942)
TSV=$OUT/results.tsv
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
: >"$TSV"; : >"$OUT/results.jsonl"
TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
measure() { # NAME PID LABEL CMD...
  local name=$1 pid=$2 label=$3; shift 3
  local c0; c0=$(cpu "$pid")
  timeout 300 "$@" > "$OUT/run.out" 2>&1
  local c1; c1=$(cpu "$pid")
  local line; line=$(grep '^{' "$OUT/run.out" | tail -1)
  echo "$line" >> "$OUT/results.jsonl"
  python3 - "$name" "$label" "$c0" "$c1" "$TCK" "$line" >> "$TSV" <<'PY'
import json, sys
name, label, c0, c1, tck, line = sys.argv[1:]
r = json.loads(line) if line else {}
d = r.get("delivered") or 0
cpu_s = (float(c1) - float(c0)) / float(tck)
print(f"{name}\t{label}\t{r.get('sent')}\t{d}\t{r.get('lost')}\t{r.get('out_of_order')}\t{r.get('msgs_per_sec', 0):.0f}\t{cpu_s * 1e6 / max(d, 1):.2f}")
PY
  tail -1 "$TSV"
}
for round in $(seq "$ROUNDS"); do
  for name in base new; do
    port=${PORT[$name]}
    sed "s/127.0.0.1:15080/127.0.0.1:$port/" $W/bench/switchboard.toml > "$OUT/$name.toml"
    RUST_LOG=warn "${BIN[$name]}" --config "$OUT/$name.toml" > "$OUT/$name.log" 2>&1 &
    pid=$!; sleep 1
    a=(--addr 127.0.0.1:$port --server switchboard --dialect socketio --label $name)
    if [ "${SIO_CLIENT:-v4}" = v2 ]; then
      for t in websocket default; do
        measure $name $pid v2-burst-$t node $W/bench/sio-polling.mjs http://127.0.0.1:$port 20 1500 $name v2 $t
      done
      measure $name $pid v2-polling-only node $W/bench/sio-polling.mjs http://127.0.0.1:$port 10 500 $name v2 polling
      kill $pid; wait $pid 2>/dev/null
      continue
    fi
    measure $name $pid burst-ws $LG burst "${a[@]}" --pairs 20 --messages 1500
    measure $name $pid burst-default $LG burst "${a[@]}" --pairs 20 --messages 1500 --sio-transport polling
    measure $name $pid tp-ws $LG throughput "${a[@]}" --pairs 50 --window 32 --secs 5
        measure $name $pid polling-only node $W/bench/sio-polling.mjs http://127.0.0.1:$port 10 500 $name
    kill $pid; wait $pid 2>/dev/null
  done
  node $W/bench/node-relay/app.js 17943 127.0.0.1 > "$OUT/node.log" 2>&1 &
  pid=$!; sleep 1.5
  if [ "${SIO_CLIENT:-v4}" = v2 ]; then
    for t in websocket default; do
      measure node $pid v2-burst-$t node $W/bench/sio-polling.mjs http://127.0.0.1:17943 20 1500 node v2 $t
    done
    measure node $pid v2-polling-only node $W/bench/sio-polling.mjs http://127.0.0.1:17943 10 500 node v2 polling
    kill $pid; wait $pid 2>/dev/null
    continue
  fi
  measure node $pid polling-only node $W/bench/sio-polling.mjs http://127.0.0.1:17943 10 500 node
  measure node $pid burst-default $LG burst --addr 127.0.0.1:17943 --server node --dialect socketio --label node --pairs 20 --messages 1500 --sio-transport polling
  kill $pid; wait $pid 2>/dev/null
done
