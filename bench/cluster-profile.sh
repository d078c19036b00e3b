#!/usr/bin/env bash
# Where a message across nodes spends its CPU, per process: redis-server and two gateway nodes
# (the bench's config plus [cluster]) on loopback, one throughput run of the load generator with
# side A of every pair on node a and side B on node b, and `perf record` (cpu-clock, with call
# graphs) attached to each of the three processes for the measured seconds. Prints the load
# generator's report (CPU µs per message for each process) and each process's top symbols; with
# PERF_CALL_GRAPH=dwarf also each node's samples by task (sessions, queueing for the publisher,
# the publisher, the subscription, the rest), the program's own code and the kernel's apart.
#
#   bench/cluster-profile.sh [DIALECT] [SECS]     # default: ant, 8
#   SWITCHBOARD_BIN=PATH bench/cluster-profile.sh  # another gateway build
#   PROFILE_OUT=DIR                                # keep the perf data there (default: a temp dir)
#   PERF_CALL_GRAPH=dwarf                          # call graphs a build without frame pointers can give
#   BENCH_PORT_BASE=N                              # ports N+3 .. N+7 (default 15180)
#   CLUSTER_DIRECT=1                               # the nodes with direct links ([cluster.direct])
#
# Needs release builds (`cargo build --release -p switchboard -p switchboard-loadgen`), perf and
# redis-server. Loopback only; every process it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
D=${1:-ant} SECS=${2:-8}
SB_BIN=${SWITCHBOARD_BIN:-$PWD/target/release/switchboard}
LG=${LOADGEN_BIN:-$PWD/target/release/switchboard-loadgen}
P=${BENCH_PORT_BASE:-15180}
REDIS_PORT=$((P + 3)) A_PORT=$((P + 4)) B_PORT=$((P + 5))
OUT=${PROFILE_OUT:-$(mktemp -d)}
CG=${PERF_CALL_GRAPH:-fp} # dwarf: callers of symbols in a build without frame pointers
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT" \
    >"$OUT/redis.log" 2>&1 &
REDIS=$!
PIDS+=("$REDIS")
wait_port "$REDIS_PORT"
for side in a b; do
    port=$A_PORT
    [[ $side == b ]] && port=$B_PORT
    {
        sed "s/127.0.0.1:15080/127.0.0.1:$port/" bench/switchboard.toml
        printf '\n[cluster]\nredis_url = "redis://127.0.0.1:%s"\nnode_id = "prof-%s"\n' "$REDIS_PORT" "$side"
        if [[ -n "${CLUSTER_DIRECT:-}" ]]; then
            printf 'direct = { listen = "127.0.0.1:%s" }\n' "$((port + 2))"
        fi
    } >"$OUT/sb-$side.toml"
    RUST_LOG=warn "$SB_BIN" --config "$OUT/sb-$side.toml" >"$OUT/sb-$side.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null | grep -q 'cluster: ok' && break
        sleep 0.1
    done
done
A=${PIDS[1]} B=${PIDS[2]}

redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
"$LG" throughput --dialect "$D" --pairs 50 --window 32 --secs "$SECS" \
    --addr "127.0.0.1:$A_PORT" --addr-b "127.0.0.1:$B_PORT" --server switchboard \
    --label switchboard-2-nodes --target "$A,$B,$REDIS" --out "$OUT/report.jsonl" >/dev/null &
LGPID=$!
# perf from the end of the load generator's warm-up (connects, then one second) to the end.
sleep 3
for name in a b redis; do
    case $name in a) pid=$A ;; b) pid=$B ;; redis) pid=$REDIS ;; esac
    timeout -s INT "$((SECS - 3))" perf record -q -e cpu-clock -F 499 --call-graph "$CG" -p "$pid" \
        -o "$OUT/perf.$name.data" >/dev/null 2>&1 &
done
wait "$LGPID"
sleep 1
python3 - "$OUT/report.jsonl" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
each = r.get("server_cpu_us_per_msg_each") or []
print(f"{r['dialect']}: {r['msgs_per_sec']:.0f} msg/s, lost {r['lost']}, out of order "
      f"{r['out_of_order']}; CPU µs/msg total {r['server_cpu_us_per_msg']:.2f}: "
      + ", ".join(f"{n} {x:.2f}" for n, x in zip(("node a", "node b", "redis"), each))
      + f"; load generator {r['loadgen_cpu_cores']:.2f} cores")
PY
redis-cli -p "$REDIS_PORT" INFO commandstats | grep -E 'cmdstat_publish' || true
for name in a b redis; do
    echo "--- $name: top symbols (self) ---"
    perf report -i "$OUT/perf.$name.data" --no-children --sort dso,symbol --percent-limit 1.5 \
        --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -30
done
# With call graphs that reach the task (dwarf, or frame pointers in the build): each node's
# samples by the task they were taken in, split into the program's own code and the kernel's,
# and in µs per message (the share times the node's CPU per message from the report).
if [[ $CG == dwarf ]]; then
    for name in a b; do
        perf script -i "$OUT/perf.$name.data" 2>/dev/null >"$OUT/script.$name.txt"
    done
    python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
report = json.loads(open(f"{out}/report.jsonl").read().splitlines()[-1])
each = report.get("server_cpu_us_per_msg_each") or [0, 0, 0]
# First match wins: the sending side runs inside a session's task (so before "sessions") and
# renders the forward with a publisher function (so before "publisher"); the subscription (with
# a direct link's reader) and the publisher both read with `RespConn` (so the subscription's own
# frames first).
TASKS = [
    ("queueing for the publisher", ("RedisMembership", "Cluster::send")),
    ("subscription", ("cluster::link", "cluster::pubsub", "cluster::direct::listen")),
    ("publisher", ("cluster::publisher", "cluster::resp")),
    ("sessions", ("session_loop", "switchboard::session::")),
]
def stacks(path):
    frames = []
    for line in open(path, errors="replace"):
        if not line.strip():
            if frames:
                yield frames
            frames = []
        elif line[0] in " \t":
            frames.append(line.strip().split(" ", 1)[-1])
    if frames:
        yield frames
rows = {}
for i, name in enumerate(("a", "b")):
    counts, total = {}, 0
    for frames in stacks(f"{out}/script.{name}.txt"):
        total += 1
        joined = " | ".join(frames)
        task = next((t for t, pats in TASKS if any(p in joined for p in pats)), "other (parking, runtime)")
        side = "kernel" if "[kernel.kallsyms]" in frames[0] else "own"
        counts[(task, side)] = counts.get((task, side), 0) + 1
    rows[name] = (counts, total, each[i])
print("\nEach node's samples by task (share of the node; µs per message):\n")
print("| task | code | node a | node b | µs/msg, both nodes |")
print("|---|---|---:|---:|---:|")
for task in [t for t, _ in TASKS] + ["other (parking, runtime)"]:
    for side in ("own", "kernel"):
        shares = [rows[n][0].get((task, side), 0) / max(rows[n][1], 1) for n in ("a", "b")]
        us = sum(sh * rows[n][2] for sh, n in zip(shares, ("a", "b")))
        print(f"| {task} | {side} | {100 * shares[0]:.1f}% | {100 * shares[1]:.1f}% | {us:.2f} |")
print(f"\nredis-server: {each[2]:.2f} µs/msg; samples: node a {rows['a'][1]}, node b {rows['b'][1]}")
PY
fi
echo "perf data: $OUT"
