// Room homing's signaling cost (docs/cluster.md, "Conference media: room homing"): a real
// `redis-server` and two `switchboard` nodes (conference + sfu + room router, heartbeat 1 s);
// room `m` is homed on node A. For N rounds, one Ant WebSocket per node sends
// `publish {streamId, mainTrack: "m"}` and waits for `start`, then `stop` and waits for
// `publish_finished`: through A (served by A's own SFU) and through B (forwarded to A through
// Redis, answered back the same way). Prints the median and p95 of each round trip per node,
// and the Redis commands each node's rounds caused (`INFO commandstats`; commands a Lua script
// runs are counted too), beside those of a quiet period as long (the heartbeats' background).
//
//   cargo build --release            # or SWITCHBOARD_BIN=target/debug/switchboard
//   node bench/cluster-media/signaling.mjs [ROUNDS]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

const ROUNDS = Number(process.argv[2] || 200);
const BIN = process.env.SWITCHBOARD_BIN || 'target/release/switchboard';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

function freePort() {
  return new Promise((res) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => res(port)); });
  });
}

function config(redisPort, name, port) {
  return `[[listener]]\nbind = "127.0.0.1:${port}"\ndialects = ["antmedia"]\n\n[limits]\nmessages_per_sec = 100000.0\nmessage_burst = 100000\n\n`
    + `[cluster]\nredis_url = "redis://127.0.0.1:${redisPort}"\nnode_id = "${name}"\n\n`
    + '[[plugin]]\ntype = "conference"\n\n[[plugin]]\ntype = "sfu"\n[plugin.settings]\nudp_bind = "127.0.0.1:0"\n\n[[plugin]]\ntype = "room-router"\n';
}

function commandstats(redisPort) {
  const out = execFileSync('redis-cli', ['-p', String(redisPort), 'INFO', 'commandstats']).toString();
  const stats = {};
  for (const line of out.split('\n')) {
    const m = line.match(/^cmdstat_([a-z|]+):calls=(\d+)/);
    if (m) stats[m[1]] = Number(m[2]);
  }
  return stats;
}

function diff(after, before) {
  const d = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] || 0)) d[k] = v - (before[k] || 0);
  return d;
}

async function connect(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/LiveApp/websocket`);
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  const queue = [];
  let wake = null;
  ws.on('message', (data) => { queue.push(JSON.parse(data.toString())); if (wake) { wake(); wake = null; } });
  ws.next = async () => {
    const deadline = Date.now() + 5000;
    while (!queue.length) {
      if (Date.now() > deadline) throw new Error('no answer within 5 s');
      await new Promise((r) => { wake = r; setTimeout(r, 100); });
    }
    return queue.shift();
  };
  return ws;
}

async function rounds(ws, prefix) {
  const rtts = [];
  for (let i = 0; i < ROUNDS; i++) {
    const id = `${prefix}${i}`;
    const t0 = process.hrtime.bigint();
    ws.send(JSON.stringify({ command: 'publish', streamId: id, mainTrack: 'm', video: true, audio: true }));
    const start = await ws.next();
    const t1 = process.hrtime.bigint();
    if (start.command !== 'start') throw new Error(`expected start, got ${JSON.stringify(start)}`);
    rtts.push(Number(t1 - t0) / 1e6);
    ws.send(JSON.stringify({ command: 'stop', streamId: id }));
    const done = await ws.next();
    if (done.definition !== 'publish_finished') throw new Error(`expected publish_finished, got ${JSON.stringify(done)}`);
  }
  rtts.sort((a, b) => a - b);
  return { median_ms: rtts[Math.floor(rtts.length / 2)].toFixed(3), p95_ms: rtts[Math.floor(rtts.length * 0.95)].toFixed(3) };
}

const dir = mkdtempSync(join(tmpdir(), 'sb-cluster-media-'));
const redisPort = await freePort();
children.push(spawn('/usr/bin/redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }));
const ports = [];
for (const name of ['a', 'b']) {
  const port = await freePort();
  writeFileSync(join(dir, `${name}.toml`), config(redisPort, name, port));
  children.push(spawn(BIN, ['--config', join(dir, `${name}.toml`)], { stdio: 'ignore' }));
  ports.push(port);
}
for (const port of ports) {
  for (let i = 0; ; i++) {
    try { if ((await (await fetch(`http://127.0.0.1:${port}/healthz`)).text()).includes('cluster: ok')) break; } catch { /* not yet */ }
    if (i > 100) throw new Error('a node did not come up');
    await sleep(100);
  }
}
const [a, b] = [await connect(ports[0]), await connect(ports[1])];
// Room m is homed on A: its first publisher is A's and stays.
a.send(JSON.stringify({ command: 'publish', streamId: 'home', mainTrack: 'm', video: true, audio: true }));
await a.next();
const result = { rounds: ROUNDS, bin: BIN };
let t = Date.now();
let before = commandstats(redisPort);
result.through_a = await rounds(a, 'a');
result.through_a.redis = diff(commandstats(redisPort), before);
const aMs = Date.now() - t;
t = Date.now();
before = commandstats(redisPort);
result.through_b = await rounds(b, 'b');
result.through_b.redis = diff(commandstats(redisPort), before);
const bMs = Date.now() - t;
before = commandstats(redisPort);
await sleep(Math.max(aMs, bMs));
result.quiet = { ms: Math.max(aMs, bMs), redis: diff(commandstats(redisPort), before) };
result.through_a.ms = aMs;
result.through_b.ms = bMs;
console.log(JSON.stringify(result, null, 1));
process.exit(0);
