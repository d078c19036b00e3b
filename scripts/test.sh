#!/usr/bin/env bash
# The one test command: unit, golden, end-to-end (node socket.io/Ant/raw clients) and browser
# tests of the whole workspace.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -p switchboard-tests socketio   # extra arguments go to `cargo nextest run`
#
# Safe to run again and again (it only installs what is missing) and non-interactively
# (CI=true, no stdin). On a fresh Debian machine, run it as root once so it can apt-get install
# Chromium, redis-server, iproute2, nginx (with its stream module) and haproxy; afterwards any
# user can run it. It needs Rust (cargo), cargo-nextest and Node.js >= 20 with npm already
# installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'scripts/test.sh: %s\n' "$*" >&2
    exit 1
}

if [[ "${CI:-}" == "true" ]]; then
    export CARGO_TERM_COLOR=never
fi

# --- system packages (Debian): only what is missing -----------------------------------------
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# tests/tests/cluster_redis_ops.rs fails a primary over with Redis Sentinel.
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# tests/tests/debian_package.rs checks the packaged unit with systemd-analyze.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# tests/tests/proxy.rs runs both in front of the gateway (docs/deploy/).
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
# nginx's stream (TCP) proxy, for the PROXY protocol through nginx (docs/deploy/nginx-stream.conf).
[[ -f /usr/lib/nginx/modules/ngx_stream_module.so ]] || missing+=(libnginx-mod-stream)
if ((${#missing[@]} > 0)); then
    if [[ "$(id -u)" != 0 ]]; then
        die "missing system packages: ${missing[*]}. Install them as root:
    apt-get update && apt-get install -y ${missing[*]}
or run this script once as root."
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing system packages: ${missing[*]}, and apt-get is not available to install them"
    log "installing ${missing[*]}"
    apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null
fi

# --- Node.js and the npm clients the end-to-end tests drive ---------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed (Node.js >= 20 is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (it comes with Node.js)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node.js >= 20 is needed, found $(node --version)"
if [[ ! -d node_modules || ! -f node_modules/.package-lock.json ||
    package-lock.json -nt node_modules/.package-lock.json ]]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error </dev/null
fi

# --- Rust ------------------------------------------------------------------------------------
cargo nextest --version >/dev/null 2>&1 ||
    die "cargo-nextest is not installed: cargo install cargo-nextest --locked (or see https://nexte.st)"
# The Debian package test (tests/tests/debian_package.rs) builds the .deb with cargo-deb,
# pinned: it packages the debug binary the other tests use, which a later major version may
# refuse. Installed from crates.io once (a few minutes), then found in ~/.cargo/bin.
if ! cargo deb --version 2>/dev/null | grep -qx 'cargo-deb 3\.8\.0'; then
    log "cargo install cargo-deb --version 3.8.0 --locked"
    cargo install cargo-deb --version 3.8.0 --locked --quiet </dev/null
fi

log "cargo build --workspace --all-targets"
cargo build --workspace --all-targets --quiet
# What the README's run command (`cargo run`, the default member) builds. Its features differ
# from the workspace build's, so it links a different target/debug/switchboard: tests/tests/
# readme.rs runs it in target/readme/ so it never relinks the binary other
# tests are running, and this builds it there first so the test does not build under a timeout.
log "cargo build (the README's run command's package, in target/readme)"
CARGO_TARGET_DIR=target/readme cargo build --quiet

log "cargo nextest run --workspace --no-fail-fast $*"
exec cargo nextest run --workspace --no-fail-fast "$@"
