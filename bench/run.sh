#!/usr/bin/env bash
# The benchmark: Switchboard against the node relay (the SimpleP2P tutorial's app.js on
# socket.io 4) and a no-parse WebSocket relay (the practical limit), side by side in one run.
#
#   bench/run.sh            # the full run (about 5-7 minutes on 2 cores)
#   bench/run.sh --quick    # a 1-2 minute sanity run with small sizes
#   bench/run.sh --cluster  # only the scale-out comparison: one node against two nodes joined
#                           # through redis-server, and two nodes with direct links
#                           # ([cluster.direct]) (throughput and latency, pairs split across
#                           # the nodes; CPU per message of both nodes + Redis against one
#                           # node's), about 6 minutes
#   bench/run.sh --burst    # only the burst: senders as fast as they can against the node relay
#                           # and the gateway in every dialect, delivered ÷ sent, about 2 minutes
#   bench/run.sh --peerjs   # only PeerJS: throughput and latency of the gateway's peerjs dialect
#                           # against the `peer` server (npm, PeerJS's own), interleaved rounds,
#                           # about 1 minute; the full run includes the same rows
#   SWITCHBOARD_BIN=PATH bench/run.sh ...  # the same run against another gateway binary
#   BENCH_PORT_BASE=N bench/run.sh ...      # ports N to N+11 instead of 15080-15091
#   bench/run.sh --soak     # only the soak (SOAK_SECS of mixed call churn, half the rounds with
#                           # socket.io clients on default options), about 3 minutes
#   bench/run.sh --relay    # only relay throughput: the no-parse relay and the gateway in each
#                           # dialect, RELAY_ROUNDS rounds (default 5), each round's ratio to
#                           # that round's no-parse relay; with RELAY_BASE_BIN=/path/to/switchboard
#                           # (another build, e.g. main's) that binary runs beside this one in
#                           # every round (the order alternating), for a before/after of one
#                           # sitting. About 1 minute a round with a base binary.
#   bench/run.sh --sfu-only # only the SFU media forwarding section, SFU_ROUNDS rounds (default 3)
#                           # per size, reported as medians; with SFU_BASE_BIN=/path/to/switchboard
#                           # (another build, e.g. an older commit's) each round runs that binary
#                           # and this one back to back, and the table gives both and their ratio.
#                           # SFU_SIZES="16 16 10" picks the sizes (N publishers, M subscribers,
#                           # seconds; several separated by commas). About 1 minute a round.
#                           # SFU_BENCH_BIN=/path/to/sfu_bench uses that benchmark build.
#
# Builds release binaries, starts each server on its own loopback port, runs the scenarios of
# switchboard-loadgen with fixed parameters, prints the tables and writes them with the machine's
# description to bench/results/latest.md (raw JSON reports: bench/results/latest.jsonl).
# Throughput and latency are measured in interleaved rounds (limit, node, Switchboard, repeat) and
# reported as medians, because a shared machine's load drifts during a run. Every server gets a
# fresh process for the idle scenario. Needs cargo, node >= 20 and `npm ci` done at the root.
# Only loopback addresses are used; every step is bounded in time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

QUICK=0 CLUSTER_ONLY=0 BURST_ONLY=0 SFU_ONLY=0 PEERJS_ONLY=0 RELAY_ONLY=0 SOAK_ONLY=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
[[ "${1:-}" == "--cluster" ]] && CLUSTER_ONLY=1
[[ "${1:-}" == "--burst" ]] && BURST_ONLY=1
[[ "${1:-}" == "--sfu-only" ]] && SFU_ONLY=1
[[ "${1:-}" == "--peerjs" ]] && PEERJS_ONLY=1
[[ "${1:-}" == "--relay" ]] && RELAY_ONLY=1
[[ "${1:-}" == "--soak" ]] && SOAK_ONLY=1

# --- parameters -------------------------------------------------------------------------------
if ((QUICK)); then
    TP_PAIRS=20 TP_SECS=2 TP_ROUNDS=1
    LAT_PAIRS=20 LAT_RATE=5000 LAT_SECS=2 LAT_ROUNDS=1
    STORM_PAIRS=500
    SOAK_SECS=20 SOAK_PAIRS=100
    IDLE_SESSIONS=2000
    BURST_PAIRS=10 BURST_MESSAGES=500 BURST_ROUNDS=1
else
    TP_PAIRS=50 TP_SECS=5 TP_ROUNDS=3
    LAT_PAIRS=50 LAT_RATE=20000 LAT_SECS=5 LAT_ROUNDS=3
    STORM_PAIRS=5000
    SOAK_SECS=180 SOAK_PAIRS=300
    IDLE_SESSIONS=50000
    BURST_PAIRS=20 BURST_MESSAGES=1500 BURST_ROUNDS=2
fi
TP_WINDOW=32
CLUSTER_LAT_RATE=5000
# Eight loopback ports from BENCH_PORT_BASE (default 15080), so that two runs on one machine
# (another worktree's) need not meet on the same ports.
P=${BENCH_PORT_BASE:-15080}
SB_PORT=$P NODE_PORT=$((P + 1)) LIMIT_PORT=$((P + 2))
REDIS_PORT=$((P + 3)) SB_A_PORT=$((P + 4)) SB_B_PORT=$((P + 5)) PEER_PORT=$((P + 6)) SB_BASE_PORT=$((P + 7))
# The cluster with direct links: its two nodes, and where each takes the other's link.
SB_DA_PORT=$((P + 8)) SB_DB_PORT=$((P + 9)) DIRECT_A_PORT=$((P + 10)) DIRECT_B_PORT=$((P + 11))

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench/run.sh: %s\n' "$*" >&2
    exit 1
}

if ((!SFU_ONLY && !RELAY_ONLY)); then
    command -v node >/dev/null || die "node is not installed"
    [[ -d node_modules/socket.io && -d node_modules/express && -d node_modules/peer ]] ||
        die "node_modules/ lacks socket.io, express or peer: run npm ci at the repository root"
fi

# Each server (and the load generator) holds one descriptor per session; raise the soft limit to
# the hard one. Without CAP_SYS_RESOURCE the hard limit cannot be raised, which caps the idle
# scenario below 50,000 sessions: it then runs the largest count that fits.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [[ "$FD_LIMIT" != unlimited ]] && ((IDLE_SESSIONS > FD_LIMIT - 1000)); then
    log "open-file limit is $FD_LIMIT (hard): idle scenario capped at $((FD_LIMIT - 1000)) sessions instead of $IDLE_SESSIONS"
    IDLE_SESSIONS=$((FD_LIMIT - 1000))
fi

# --- build ------------------------------------------------------------------------------------
if ((SFU_ONLY)); then
    # The SFU section needs no load generator; SWITCHBOARD_BIN and SFU_BENCH_BIN (an sfu_bench
    # built elsewhere, e.g. beside a base binary) each spare a build.
    log "cargo build --release of what --sfu-only needs"
    [[ -n "${SWITCHBOARD_BIN:-}" ]] || cargo build --release --quiet -p switchboard
    [[ -n "${SFU_BENCH_BIN:-}" ]] || cargo build --release --quiet -p switchboard-tests --example sfu_bench
else
    log "cargo build --release -p switchboard -p switchboard-loadgen (and the SFU benchmark)"
    cargo build --release --quiet -p switchboard -p switchboard-loadgen
    # Only the full run measures the SFU (its benchmark is the slowest to build).
    ((CLUSTER_ONLY || BURST_ONLY || PEERJS_ONLY || RELAY_ONLY || SOAK_ONLY)) || cargo build --release --quiet -p switchboard-tests --example sfu_bench
fi
# SWITCHBOARD_BIN runs another gateway build with the same load generator (before/after).
SB_BIN=${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}
LG=$ROOT/target/release/switchboard-loadgen
SFU_BENCH=${SFU_BENCH_BIN:-$ROOT/target/release/examples/sfu_bench}

RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
JSONL=$RESULTS/latest.jsonl
((CLUSTER_ONLY)) && JSONL=$RESULTS/cluster.jsonl
((BURST_ONLY)) && JSONL=$RESULTS/burst.jsonl
((PEERJS_ONLY)) && JSONL=$RESULTS/peerjs.jsonl
((RELAY_ONLY)) && JSONL=$RESULTS/relay.jsonl
WORK=$(mktemp -d)
((SFU_ONLY || SOAK_ONLY)) && JSONL=$WORK/unused.jsonl # the other sections' results stay as they were
: >"$JSONL"
sed "s/127.0.0.1:15080/127.0.0.1:$SB_PORT/" bench/switchboard.toml >"$WORK/switchboard.toml"
sed "s/127.0.0.1:15080/127.0.0.1:$SB_BASE_PORT/" bench/switchboard.toml >"$WORK/switchboard-base.toml"
# The two cluster nodes: the same gateway, each on its own port, joined by [cluster].
for side in a b; do
    port=$SB_A_PORT
    [[ $side == b ]] && port=$SB_B_PORT
    {
        sed "s/127.0.0.1:15080/127.0.0.1:$port/" bench/switchboard.toml
        printf '\n[cluster]\nredis_url = "redis://127.0.0.1:%s"\nnode_id = "bench-%s"\n' "$REDIS_PORT" "$side"
    } >"$WORK/switchboard-$side.toml"
done
# The two nodes with direct links: the same, under their own key prefix (a cluster of their own
# on the same redis-server), each taking the other's link on its own port.
for side in a b; do
    port=$SB_DA_PORT direct=$DIRECT_A_PORT
    [[ $side == b ]] && port=$SB_DB_PORT direct=$DIRECT_B_PORT
    {
        sed "s/127.0.0.1:15080/127.0.0.1:$port/" bench/switchboard.toml
        printf '\n[cluster]\nredis_url = "redis://127.0.0.1:%s"\nnode_id = "bench-d%s"\nkey_prefix = "bench-direct"\n' "$REDIS_PORT" "$side"
        printf 'direct = { listen = "127.0.0.1:%s" }\n' "$direct"
    } >"$WORK/switchboard-d$side.toml"
done

# --- servers ----------------------------------------------------------------------------------
declare -A PID=()
cleanup() {
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { # PORT: until something listens (10 s at most)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1"
}

start() { # NAME
    stop "$1"
    case "$1" in
        switchboard)
            RUST_LOG=warn "$SB_BIN" --config "$WORK/switchboard.toml" >"$WORK/switchboard.log" 2>&1 &
            PID[switchboard]=$!
            wait_port "$SB_PORT"
            ;;
        node)
            node bench/node-relay/app.js "$NODE_PORT" 127.0.0.1 >"$WORK/node.log" 2>&1 &
            PID[node]=$!
            wait_port "$NODE_PORT"
            ;;
        peer)
            node bench/peer-server/server.mjs "$PEER_PORT" 127.0.0.1 >"$WORK/peer.log" 2>&1 &
            PID[peer]=$!
            wait_port "$PEER_PORT"
            ;;
        limit)
            "$LG" limit-relay --bind "127.0.0.1:$LIMIT_PORT" >"$WORK/limit.log" 2>&1 &
            PID[limit]=$!
            wait_port "$LIMIT_PORT"
            ;;
        base)
            RUST_LOG=warn "$RELAY_BASE_BIN" --config "$WORK/switchboard-base.toml" >"$WORK/switchboard-base.log" 2>&1 &
            PID[base]=$!
            wait_port "$SB_BASE_PORT"
            ;;
        redis)
            command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
            redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
                --dir "$WORK" >"$WORK/redis.log" 2>&1 &
            PID[redis]=$!
            wait_port "$REDIS_PORT"
            ;;
        sb-a | sb-b | sb-da | sb-db)
            local side=${1#sb-} port
            port=$(node_port "$1")
            RUST_LOG=warn "$SB_BIN" --config "$WORK/switchboard-$side.toml" >"$WORK/switchboard-$side.log" 2>&1 &
            PID[$1]=$!
            wait_port "$port"
            # Joined to the cluster once /healthz says so (10 s at most).
            for _ in $(seq 100); do
                curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null | grep -q 'cluster: ok' && return 0
                sleep 0.1
            done
            die "node $side did not reach redis-server"
            ;;
    esac
}

node_port() { # sb-a | sb-b | sb-da | sb-db: the cluster node's listener port
    case "$1" in
        sb-a) echo "$SB_A_PORT" ;;
        sb-b) echo "$SB_B_PORT" ;;
        sb-da) echo "$SB_DA_PORT" ;;
        sb-db) echo "$SB_DB_PORT" ;;
    esac
}

stop() { # NAME
    if [[ -n "${PID[$1]:-}" ]]; then
        kill "${PID[$1]}" 2>/dev/null || true
        wait "${PID[$1]}" 2>/dev/null || true
        unset "PID[$1]"
    fi
}

addr() { # NAME
    case "$1" in
        switchboard) echo "127.0.0.1:$SB_PORT" ;;
        base) echo "127.0.0.1:$SB_BASE_PORT" ;;
        cluster) echo "127.0.0.1:$SB_A_PORT" ;;
        node) echo "127.0.0.1:$NODE_PORT" ;;
        limit) echo "127.0.0.1:$LIMIT_PORT" ;;
        peer) echo "127.0.0.1:$PEER_PORT" ;;
    esac
}

lg() { # SCENARIO SERVER DIALECT ARGS...: one run, its report appended to the JSONL
    local scenario=$1 server=$2 dialect=$3 kind=$2
    shift 3
    [[ $server == base ]] && kind=switchboard # another gateway build (--relay)
    timeout 600 "$LG" "$scenario" --addr "$(addr "$server")" --server "$kind" \
        --dialect "$dialect" --target "${PID[$server]}" --out "$JSONL" "$@" >/dev/null ||
        log "$scenario $server $dialect failed (see above); going on"
}

lg_pair() { # A B LABEL SCENARIO DIALECT ARGS...: side A of each pair on node A, side B on node B
    local a=$1 b=$2 label=$3 scenario=$4 dialect=$5 port_a port_b
    shift 5
    port_a=$(node_port "$a") port_b=$(node_port "$b")
    # CPU is summed over both nodes and redis-server (/proc/PID/stat, utime + stime).
    timeout 600 "$LG" "$scenario" --addr "127.0.0.1:$port_a" --addr-b "127.0.0.1:$port_b" \
        --server switchboard --label "$label" --dialect "$dialect" \
        --target "${PID[$a]},${PID[$b]},${PID[redis]}" --out "$JSONL" "$@" >/dev/null ||
        log "$scenario $label $dialect failed (see above); going on"
}
lg_cluster() { lg_pair sb-a sb-b switchboard-2-nodes "$@"; }          # through Redis
lg_direct() { lg_pair sb-da sb-db switchboard-2-nodes-direct "$@"; }  # over direct links

# --- scale-out: one node against two nodes through Redis ------------------------------------
# Pairs are split across the nodes (side A on node a, side B on node b), so every relayed
# message crosses redis-server: published by one node, received by the other. Single-node rounds
# (label switchboard-1-node) run on the same binary and config without [cluster], interleaved
# with the cluster rounds (label switchboard-2-nodes). The CPU of a cluster round is both
# nodes' plus redis-server's; `cluster_cpu_table` compares it per message with one node's.
cluster_bench() {
    log "scale-out: redis-server and two gateway nodes"
    start redis
    start sb-a
    start sb-b
    start sb-da
    start sb-db
    start switchboard
    for round in $(seq "$TP_ROUNDS"); do
        log "cluster throughput round $round/$TP_ROUNDS"
        common=(--pairs "$TP_PAIRS" --window "$TP_WINDOW" --secs "$TP_SECS")
        for d in ant socketio raw; do
            lg throughput switchboard "$d" "${common[@]}" --label switchboard-1-node
            lg_cluster throughput "$d" "${common[@]}"
            lg_direct throughput "$d" "${common[@]}"
        done
    done
    # At a rate two nodes, Redis and the load generator sustain together on 2 cores (at 20,000
    # msg/s the cluster's queues grow on this machine, and latency then measures the backlog).
    for round in $(seq "$LAT_ROUNDS"); do
        log "cluster latency round $round/$LAT_ROUNDS ($CLUSTER_LAT_RATE msg/s)"
        common=(--pairs "$LAT_PAIRS" --rate "$CLUSTER_LAT_RATE" --secs "$LAT_SECS")
        for d in ant socketio raw; do
            lg latency switchboard "$d" "${common[@]}" --label switchboard-1-node
            lg_cluster latency "$d" "${common[@]}"
            lg_direct latency "$d" "${common[@]}"
        done
    done
    stop switchboard
    stop sb-a
    stop sb-b
    stop sb-da
    stop sb-db
    stop redis
}

# --- burst: N senders each sending M offers as fast as they can; receivers read normally -------
# Every message counts: delivered ÷ sent is the figure (the gateway must not drop a delivery while
# both peers are connected). socket.io runs twice: straight to a WebSocket, and as socket.io-client
# connects with its default options (long-polling, then the upgrade). The node relay is the
# tutorial's app.js with the same clients.
burst_bench() {
    for round in $(seq "$BURST_ROUNDS"); do
        log "burst round $round/$BURST_ROUNDS: $BURST_PAIRS pairs x $BURST_MESSAGES offers"
        common=(--pairs "$BURST_PAIRS" --messages "$BURST_MESSAGES")
        lg burst node socketio "${common[@]}"
        lg burst node socketio "${common[@]}" --sio-transport polling
        for d in ant socketio raw; do
            lg burst switchboard "$d" "${common[@]}"
        done
        lg burst switchboard socketio "${common[@]}" --sio-transport polling
    done
}

# --- PeerJS: the gateway's peerjs dialect against the `peer` server ---------------------------
# The same pairs, frames and windows as the other dialects: side A of pair R registers as id
# R-a, side B as R-b, and each sends the peerjs client's OFFER/ANSWER/CANDIDATE to the other's
# id. The `peer` server (bench/peer-server/server.mjs) is PeerJS's own server with its defaults.
peerjs_throughput() {
    common=(--pairs "$TP_PAIRS" --window "$TP_WINDOW" --secs "$TP_SECS")
    lg throughput peer peerjs "${common[@]}"
    lg throughput switchboard peerjs "${common[@]}"
}
peerjs_latency() {
    common=(--pairs "$LAT_PAIRS" --rate "$LAT_RATE" --secs "$LAT_SECS")
    lg latency peer peerjs "${common[@]}"
    lg latency switchboard peerjs "${common[@]}"
}

# cluster_cpu_table JSONL: the cost of the hop. For each throughput round and dialect, the
# CPU per delivered message of each cluster round (node a + node b + redis-server; through Redis,
# and with direct links) against the one-node round just before it, and the rounds' throughput
# ratio.
cluster_cpu_table() {
    python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tp = [r for r in rows if r["scenario"] == "throughput"]
med = statistics.median
HOW = (("switchboard-2-nodes", "through Redis"), ("switchboard-2-nodes-direct", "direct links"))
def paired(scenario, d, label):
    """Each two-node round of `scenario` with the one-node round before it, both with CPU."""
    of = lambda server: [r for r in rows if r["scenario"] == scenario and r["dialect"] == d
                         and r["server"] == server]
    return [(a, b) for a, b in zip(of("switchboard-1-node"), of(label))
            if a.get("server_cpu_us_per_msg") and b.get("server_cpu_us_per_msg") and a["msgs_per_sec"]]
def cpu(a, b):
    return b["server_cpu_us_per_msg"] / a["server_cpu_us_per_msg"]
print("### The cost of the hop (throughput rounds)\n")
print("CPU µs per delivered message: one node, and two nodes + redis-server summed (each read from")
print("/proc/PID/stat over the measured window), frames through Redis or over the nodes' direct")
print("links ([cluster.direct]); ratios per round, then the median.\n")
print("| dialect | frames | 1 node µs/msg | 2 nodes + Redis µs/msg | CPU ratio per round | **CPU ratio** | msgs/s ratio per round | **msgs/s ratio** |")
print("|---|---|---:|---:|---|---:|---|---:|")
for d in ("ant", "socketio", "raw"):
    for label, how in HOW:
        pairs = paired("throughput", d, label)
        if not pairs:
            continue
        ratios = [cpu(a, b) for a, b in pairs]
        tput = [b["msgs_per_sec"] / a["msgs_per_sec"] for a, b in pairs]
        print(f"| {d} | {how} | {med([a['server_cpu_us_per_msg'] for a, _ in pairs]):.2f} "
              f"| {med([b['server_cpu_us_per_msg'] for _, b in pairs]):.2f} "
              f"| {' / '.join(f'{x:.2f}' for x in ratios)} | **{med(ratios):.2f}** "
              f"| {' / '.join(f'{x:.2f}' for x in tput)} | **{med(tput):.2f}** |")
# The same comparison at the latency rounds' fixed rate, where few frames share a bundle: what a
# quiet deployment pays per message (each frame its own PUBLISH, wake-ups and syscalls).
lines = []
for d in ("ant", "socketio", "raw"):
    for label, how in HOW:
        pairs = paired("latency", d, label)
        if not pairs:
            continue
        ratios = [cpu(a, b) for a, b in pairs]
        lines.append(f"| {d} | {how} | {pairs[0][0]['msgs_per_sec']:.0f} "
                     f"| {med([a['server_cpu_us_per_msg'] for a, _ in pairs]):.1f} "
                     f"| {med([b['server_cpu_us_per_msg'] for _, b in pairs]):.1f} "
                     f"| {' / '.join(f'{x:.2f}' for x in ratios)} | **{med(ratios):.2f}** |")
if lines:
    print("\nAt the latency rounds' fixed rate (CPU µs per delivered message, as above):\n")
    print("| dialect | frames | msgs/s | 1 node µs/msg | 2 nodes + Redis µs/msg | CPU ratio per round | **CPU ratio** |")
    print("|---|---|---:|---:|---:|---|---:|")
    print("\n".join(lines))
# Where the cluster's CPU goes: each process's share per delivered message (medians of the
# rounds). Side A of every pair is on node a and side B on node b, and both sides send, so the
# two nodes do the same work; Redis fans the bundles out (or, with direct links, keeps only
# membership and the heartbeats).
each = [r for r in tp if r["server"] in dict(HOW) and r.get("server_cpu_us_per_msg_each")]
if each:
    print("\nWhere the cluster's CPU goes, µs per delivered message (median of the rounds):\n")
    print("| dialect | frames | node a | node b | redis-server | load generator (cores) |")
    print("|---|---|---:|---:|---:|---:|")
    for d in ("ant", "socketio", "raw"):
        for label, how in HOW:
            rs = [r for r in each if r["dialect"] == d and r["server"] == label]
            if not rs:
                continue
            part = lambda i: statistics.median([r["server_cpu_us_per_msg_each"][i] for r in rs])
            lg = statistics.median([r.get("loadgen_cpu_cores") or 0 for r in rs])
            print(f"| {d} | {how} | {part(0):.2f} | {part(1):.2f} | {part(2):.2f} | {lg:.2f} |")
PY
}

busy_cores() { # CPU used by everything on the machine over 2 s, in cores
    local a b
    a=($(head -1 /proc/stat))
    sleep 2
    b=($(head -1 /proc/stat))
    awk -v u="$((b[1] + b[2] + b[3] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[6] - a[7] - a[8]))" \
        'BEGIN { printf "%.2f", u / 200 }'
}

# --- SFU media forwarding (its own gateway process each; real WebRTC peers on loopback) --------

# The base binary as the report names it: its size and modification time, never its path (a
# results file in the repository names no place on the machine that wrote it).
base_binary_name() {
    printf '%s, %s bytes, built %s' "${SFU_BASE_BIN##*/}" "$(stat -c %s "$SFU_BASE_BIN")" \
        "$(date -u -r "$SFU_BASE_BIN" '+%Y-%m-%d %H:%M UTC')"
}

# sfu_section FILE: runs sfu_bench at each size, SFU_ROUNDS rounds (medians), and writes the
# markdown table to FILE. With SFU_BASE_BIN, each round runs that binary and then this one.
sfu_section() {
    local md=$1 rounds=${SFU_ROUNDS:-1} sizes=() raw
    if [[ -n "${SFU_SIZES:-}" ]]; then
        IFS=, read -r -a sizes <<<"$SFU_SIZES"
    elif ((QUICK)); then
        sizes=("2 4 5")
    else
        sizes=("4 8 10" "8 16 10" "16 16 10")
    fi
    raw="$RESULTS/sfu.jsonl"
    ((SFU_ONLY)) || raw="$WORK/sfu.jsonl"
    : >"$raw"
    local bins=("$SB_BIN") labels=(head)
    if [[ -n "${SFU_BASE_BIN:-}" ]]; then
        [[ -x "$SFU_BASE_BIN" ]] || die "SFU_BASE_BIN=$SFU_BASE_BIN is not an executable"
        bins=("$SFU_BASE_BIN" "$SB_BIN") labels=(base head)
    fi
    for size in "${sizes[@]}"; do
        for round in $(seq "$rounds"); do
            for i in "${!bins[@]}"; do
                log "sfu: $size, round $round/$rounds, ${labels[$i]}"
                # shellcheck disable=SC2086 # the size is three numbers
                if line=$(SWITCHBOARD_BIN="${bins[$i]}" timeout 300 "$SFU_BENCH" $size | tail -1); then
                    printf '{"label":"%s","round":%s,"report":%s}\n' "${labels[$i]}" "$round" "$line" >>"$raw"
                else
                    log "sfu $size ${labels[$i]} failed; going on"
                fi
            done
        done
    done
    python3 - "$raw" >"$md" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
labels = sorted({r["label"] for r in rows}, key=lambda l: l != "base")
sizes = []
for r in rows:
    k = (r["report"]["publishers"], r["report"]["subscribers"])
    if k not in sizes:
        sizes.append(k)
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("## SFU media forwarding\n")
print("N publishers × M subscribers in one room (`sfu_bench N M SECONDS`): each publisher sends an")
print("audio and a video frame of 1000 bytes every 20 ms; latency is publisher send → subscriber")
print("receive on one clock; CPU is the gateway process's (user + system) over the window.")
print("Medians of the rounds; `lost` is expected minus delivered packets over the window.\n")
print("| N × M | binary | rounds | forwarded packets/s | expected | lost | p50 ms | p99 ms | gateway CPU | µs CPU per packet (each round) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for n, m in sizes:
    meds = {}
    for label in labels:
        rs = [r["report"] for r in rows if r["label"] == label and (r["report"]["publishers"], r["report"]["subscribers"]) == (n, m)]
        if not rs:
            continue
        us = [r["gateway_cpu_us_per_packet"] for r in rs]
        meds[label] = med(us)
        lost = [r["expected_packets"] - r["delivered_packets"] for r in rs]
        print(f"| {n} × {m} | {label} | {len(rs)} | {med([r['forwarded_packets_per_sec'] for r in rs]):.0f} "
              f"| {rs[0]['expected_packets_per_sec']:.0f} | {med(lost):.0f} | {med([r['latency_ms_p50'] for r in rs]):.1f} "
              f"| {med([r['latency_ms_p99'] for r in rs]):.1f} | {med([r['gateway_cpu_percent'] for r in rs]):.0f} % "
              f"| **{meds[label]:.1f}** ({', '.join(f'{u:.1f}' for u in us)}) |")
    if "base" in meds and "head" in meds and meds["base"] > 0:
        print(f"| {n} × {m} | head / base | | | | | | | | {meds['head'] / meds['base']:.2f} |")
PY
}

# Rounds of a mixed storm (every ordered pair of dialects completes join, offer, answer and
# candidates, then hangs up) against one fresh gateway for SOAK_SECS. The gateway's RSS and open
# file descriptors are sampled once warm and after the last round, when every session has closed
# again: growth there would be a leak. "Warm" is after round 20: the allocator's working set
# settles over the first rounds (sampled after round 2, RSS still rose ~4 MiB and then stayed
# within a ±2.5 MiB band for 90,000 more calls). Bounded by time and by a round cap.
# Every other round the socket.io clients connect as socket.io-client does by default
# (engine.io long-polling, then the upgrade), the rest straight to a WebSocket.
soak_bench() {
    log "soak: ${SOAK_SECS}s of mixed call churn, $SOAK_PAIRS pairs a round"
    start switchboard
    sample() { # RSS KiB and open fds of the gateway
        local pid=${PID[switchboard]}
        echo "$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status") $(ls "/proc/$pid/fd" | wc -l)"
    }
    settle() { sleep 1; } # closes in flight finish
    SOAK_JSONL="$WORK/soak.jsonl"
    : >"$SOAK_JSONL"
    soak_rounds=0 soak_failed=0 warm_rss=0 warm_fds=0
    soak_end=$(($(date +%s) + SOAK_SECS))
    while (($(date +%s) < soak_end && soak_rounds < 1000)); do
        local sio=(--sio-transport websocket)
        ((soak_rounds % 2)) && sio=(--sio-transport polling)
        timeout 120 "$LG" storm --addr "$(addr switchboard)" --server switchboard --dialect mixed \
            "${sio[@]}" --pairs "$SOAK_PAIRS" --timeout-secs 60 --out "$SOAK_JSONL" >/dev/null 2>&1 ||
            soak_failed=$((soak_failed + 1))
        soak_rounds=$((soak_rounds + 1))
        if ((soak_rounds == 20)); then
            settle
            read -r warm_rss warm_fds < <(sample)
        fi
    done
    settle
    read -r end_rss end_fds < <(sample)
    stop switchboard
    SOAK_MD="$WORK/soak.md"
    python3 - "$SOAK_JSONL" "$soak_rounds" "$soak_failed" "$warm_rss" "$warm_fds" "$end_rss" "$end_fds" \
        "$SOAK_SECS" >"$SOAK_MD" <<'PY'
import json, sys
path, rounds, failed, warm_rss, warm_fds, end_rss, end_fds, secs = sys.argv[1:]
reports = [json.loads(line) for line in open(path) if line.strip()]
total = lambda k: sum(r.get(k, 0) or 0 for r in reports)
faults = sum(total(k) for k in ("lost", "misrouted", "duplicated", "out_of_order", "unexpected", "malformed", "errors"))
pairs, done = total("pairs"), total("completed")
print("### Soak: mixed-dialect call churn\n")
print(f"{rounds} rounds in {secs} s against one gateway; {done}/{pairs} calls completed; "
      f"{total('delivered')} signals delivered; faults (lost, misrouted, duplicated, out of order, "
      f"unexpected, malformed, errors) {faults}; rounds that failed {failed}.\n")
print("| sample | RSS KiB | open fds |\n|---|---:|---:|")
print(f"| warm (after round 20) | {warm_rss} | {warm_fds} |")
print(f"| end (after round {rounds}) | {end_rss} | {end_fds} |")
growth = int(end_rss) - int(warm_rss)
print(f"\nRSS change {growth:+} KiB; open fds change {int(end_fds) - int(warm_fds):+}.")
PY
    cat "$SOAK_MD" >&2
}

STARTED=$(date +%s)
BACKGROUND=$(busy_cores)
log "machine load before the run (other processes): $BACKGROUND cores busy"

if ((SOAK_ONLY)); then
    soak_bench
    exit 0
fi

if ((SFU_ONLY)); then
    SFU_ROUNDS=${SFU_ROUNDS:-3}
    sfu_section "$RESULTS/sfu.md"
    {
        echo
        echo "Produced by \`bench/run.sh --sfu-only\` on $(date -u +%Y-%m-%dT%H:%MZ) in $(($(date +%s) - STARTED)) s;"
        echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')${SFU_BASE_BIN:+, base binary $(base_binary_name)}."
        echo "Machine: $(nproc) cores; other processes kept $BACKGROUND cores busy just before the run."
    } >>"$RESULTS/sfu.md"
    cat "$RESULTS/sfu.md"
    log "wrote bench/results/sfu.md and bench/results/sfu.jsonl"
    exit 0
fi

if ((PEERJS_ONLY)); then
    start switchboard
    start peer
    for round in $(seq "$TP_ROUNDS"); do
        log "peerjs throughput round $round/$TP_ROUNDS"
        peerjs_throughput
    done
    for round in $(seq "$LAT_ROUNDS"); do
        log "peerjs latency round $round/$LAT_ROUNDS ($LAT_RATE msg/s)"
        peerjs_latency
    done
    ELAPSED=$(($(date +%s) - STARTED))
    {
        echo "# Benchmark results: PeerJS"
        echo
        echo "Produced by \`bench/run.sh --peerjs\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED} s."
        echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')."
        echo "Machine: $(nproc) cores; other processes kept $BACKGROUND cores busy just before the run."
        echo "\`peer\` is the peer server $(node -p "require('./node_modules/peer/package.json').version") (npm) on node $(node --version); ÷ baseline is Switchboard ÷ it."
        echo
        # Only throughput and latency ran: drop the empty storm and idle tables.
        "$LG" report "$JSONL" | sed '/^### Call-setup storm/,$d'
    } >"$RESULTS/peerjs.md"
    cat "$RESULTS/peerjs.md"
    log "wrote bench/results/peerjs.md and bench/results/peerjs.jsonl"
    exit 0
fi

if ((RELAY_ONLY)); then
    RELAY_ROUNDS=${RELAY_ROUNDS:-5}
    [[ -z "${RELAY_BASE_BIN:-}" || -x "${RELAY_BASE_BIN:-}" ]] || die "RELAY_BASE_BIN is not an executable"
    start limit
    start switchboard
    [[ -n "${RELAY_BASE_BIN:-}" ]] && start base
    common=(--pairs "$TP_PAIRS" --window "$TP_WINDOW" --secs "$TP_SECS")
    for round in $(seq "$RELAY_ROUNDS"); do
        log "relay round $round/$RELAY_ROUNDS"
        # Each round is one line per server in the JSONL, in order: the limit, then each build.
        lg throughput limit raw "${common[@]}"
        builds=(switchboard)
        if [[ -n "${RELAY_BASE_BIN:-}" ]]; then
            builds=(switchboard base)
            ((round % 2 == 0)) && builds=(base switchboard)
        fi
        for d in ant socketio raw; do
            for b in "${builds[@]}"; do
                lg throughput "$b" "$d" "${common[@]}" --label "$b"
            done
        done
    done
    ELAPSED=$(($(date +%s) - STARTED))
    {
        echo "# Benchmark results: relay throughput"
        echo
        echo "Produced by \`bench/run.sh --relay\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED} s, $RELAY_ROUNDS rounds."
        echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')${RELAY_BASE_BIN:+; base binary $(SFU_BASE_BIN=$RELAY_BASE_BIN base_binary_name)}."
        echo "Machine: $(nproc) cores; other processes kept $BACKGROUND cores busy just before the run."
        echo
        python3 - "$JSONL" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds, current = [], None
for r in rows:
    if r["server"] == "limit":
        current = {"limit": r}
        rounds.append(current)
    elif current is not None:
        current[(r["server"], r["dialect"])] = r
builds = [b for b in ("switchboard", "base") if any((b, "ant") in rd for rd in rounds)]
print("Each figure: the gateway's msgs/s ÷ the no-parse relay's in the same round (median, then every")
print("round); server CPU µs per message in parentheses (median). Faults: lost, misrouted, duplicated,")
print("out of order, malformed and errors, summed over the rounds.\n")
print("| build | dialect | ÷ limit (median) | ÷ limit per round | CPU µs/msg | faults |")
print("|---|---|---:|---|---:|---:|")
for b in builds:
    for d in ("ant", "socketio", "raw"):
        ratios = [rd[(b, d)]["msgs_per_sec"] / rd["limit"]["msgs_per_sec"] for rd in rounds if (b, d) in rd]
        cpu = [rd[(b, d)]["server_cpu_us_per_msg"] for rd in rounds if (b, d) in rd and rd[(b, d)]["server_cpu_us_per_msg"]]
        faults = sum(rd[(b, d)][k] or 0 for rd in rounds if (b, d) in rd
                     for k in ("lost", "misrouted", "duplicated", "out_of_order", "malformed", "errors"))
        if ratios:
            print(f"| {b} | {d} | **{statistics.median(ratios):.2f}** | {' / '.join(f'{x:.2f}' for x in ratios)} "
                  f"| {statistics.median(cpu):.2f} | {faults} |")
if len(builds) == 2:
    print("\n| dialect | this build ÷ base, per round (msgs/s) | median |")
    print("|---|---|---:|")
    for d in ("ant", "socketio", "raw"):
        pairs = [rd[("switchboard", d)]["msgs_per_sec"] / rd[("base", d)]["msgs_per_sec"]
                 for rd in rounds if ("switchboard", d) in rd and ("base", d) in rd]
        if pairs:
            print(f"| {d} | {' / '.join(f'{x:.2f}' for x in pairs)} | **{statistics.median(pairs):.2f}** |")
limit = [rd["limit"]["msgs_per_sec"] for rd in rounds]
print(f"\nNo-parse relay: {' / '.join(f'{x:,.0f}' for x in limit)} msgs/s.")
PY
    } >"$RESULTS/relay.md"
    cat "$RESULTS/relay.md"
    log "wrote bench/results/relay.md and bench/results/relay.jsonl"
    exit 0
fi

if ((CLUSTER_ONLY)); then
    cluster_bench
    ELAPSED=$(($(date +%s) - STARTED))
    {
        echo "# Benchmark results: scale-out"
        echo
        echo "Produced by \`bench/run.sh --cluster\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED} s."
        echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')."
        echo "Machine: $(nproc) cores; other processes kept $BACKGROUND cores busy just before the run."
        echo "\`switchboard-1-node\` is one node; \`switchboard-2-nodes\` is two nodes and redis-server $(redis-server --version | awk '{print $3}') on"
        echo "the same machine, every pair split across the nodes; \`switchboard-2-nodes-direct\` the same with"
        echo "direct links between the nodes ([cluster.direct]): their frames do not go through Redis."
        echo
        cluster_cpu_table "$JSONL"
        echo
        # Only throughput and latency ran: drop the empty storm and idle tables.
        "$LG" report "$JSONL" | sed '/^### Call-setup storm/,$d'
    } >"$RESULTS/cluster.md"
    cat "$RESULTS/cluster.md"
    log "wrote bench/results/cluster.md and bench/results/cluster.jsonl"
    exit 0
fi

if ((BURST_ONLY)); then
    start switchboard
    start node
    burst_bench
    ELAPSED=$(($(date +%s) - STARTED))
    {
        echo "# Benchmark results: burst"
        echo
        echo "Produced by \`bench/run.sh --burst\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED} s."
        echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')."
        echo "Machine: $(nproc) cores; other processes kept $BACKGROUND cores busy just before the run."
        echo
        # Only the burst ran: keep its table.
        "$LG" report "$JSONL" | sed -n '/^### Burst/,/^### Call-setup storm/p' | sed '$d'
    } >"$RESULTS/burst.md"
    cat "$RESULTS/burst.md"
    log "wrote bench/results/burst.md and bench/results/burst.jsonl"
    exit 0
fi

start switchboard
start node
start limit
start peer

# --- relay throughput -------------------------------------------------------------------------
for round in $(seq "$TP_ROUNDS"); do
    log "throughput round $round/$TP_ROUNDS"
    common=(--pairs "$TP_PAIRS" --window "$TP_WINDOW" --secs "$TP_SECS")
    lg throughput limit raw "${common[@]}"
    lg throughput node socketio "${common[@]}"
    for d in ant socketio raw; do
        lg throughput switchboard "$d" "${common[@]}"
    done
    peerjs_throughput
done

# --- latency at a fixed rate ------------------------------------------------------------------
for round in $(seq "$LAT_ROUNDS"); do
    log "latency round $round/$LAT_ROUNDS ($LAT_RATE msg/s)"
    common=(--pairs "$LAT_PAIRS" --rate "$LAT_RATE" --secs "$LAT_SECS")
    lg latency limit raw "${common[@]}"
    lg latency node socketio "${common[@]}"
    for d in ant socketio raw; do
        lg latency switchboard "$d" "${common[@]}"
    done
    peerjs_latency
done

# --- burst ------------------------------------------------------------------------------------
burst_bench

# --- scale-out ----------------------------------------------------------------------------------
stop switchboard
cluster_bench
start switchboard

# --- call-setup storm -------------------------------------------------------------------------
log "storm: $STORM_PAIRS pairs"
lg storm node socketio --pairs "$STORM_PAIRS" --timeout-secs 120
for d in ant socketio raw mixed; do
    lg storm switchboard "$d" --pairs "$STORM_PAIRS" --timeout-secs 120
done

# --- soak: mixed-dialect call churn; RSS and open files must be flat at the end ---------------
soak_bench

# --- idle sessions (a fresh server each) --------------------------------------------------------
log "idle: $IDLE_SESSIONS sessions"
stop limit
stop peer
stop node
start node
lg idle node socketio --sessions "$IDLE_SESSIONS"
stop node
for d in ant raw socketio; do
    start switchboard
    lg idle switchboard "$d" --sessions "$IDLE_SESSIONS"
done
stop switchboard

SFU_MD="$WORK/sfu.md"
sfu_section "$SFU_MD"

# --- report -----------------------------------------------------------------------------------
ELAPSED=$(($(date +%s) - STARTED))
{
    echo "# Benchmark results"
    echo
    echo "Produced by \`bench/run.sh$([[ $QUICK == 1 ]] && echo ' --quick')\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED} s."
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')."
    echo
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
    echo "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, $(uname -sr), node $(node --version)."
    echo "Other processes kept $BACKGROUND cores busy just before the run; the load generator shares the"
    echo "machine with each server. Open-file limit: $FD_LIMIT."
    echo
    "$LG" report "$JSONL"
    echo
    cat "$SOAK_MD"
    echo
    cat "$SFU_MD"
} >"$RESULTS/latest.md"
cat "$RESULTS/latest.md"
log "wrote bench/results/latest.md and bench/results/latest.jsonl"
