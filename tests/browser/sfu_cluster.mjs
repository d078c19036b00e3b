// Conference media across a cluster (room homing, docs/cluster.md) with the real Ant Media SDK
// in headless Chromium: a real `redis-server` and two real `switchboard` nodes (the default
// config plus `[cluster]`, free loopback ports), three conference pages spread over the nodes
// (A and C on node 1, B on node 2). Run by tests/tests/browser_sfu_cluster.rs; by hand, from the
// repository root:
//
//   cargo build --workspace
//   node tests/browser/sfu_cluster.mjs sfu_cluster_three_pages
//
// Case sfu_cluster_three_pages: the SDK's multitrack conference pattern (tests/browser/sfu.mjs's
// PAGE, the SDK unchanged): each page publishes into the room and plays the room. The room is
// homed on node 1 (A publishes first), so B's signaling goes through node 2 and Redis to node
// 1's SFU, and B's media goes straight to node 1's UDP port. Each page sees the two others'
// video with frames advancing; node 1's SFU carries all six peer connections and node 2's none
// (`switchboard_sfu_peer_connections` on each node's /metrics).
// Case sfu_cluster_join_room_flow: the joinRoom flow of Ant's conference tutorial (sfu.mjs's
// LEGACY_PAGE) on nodes 1, 2, 1: joinRoom, publish, play each other participant's stream; each
// page shows the two others' video with frames advancing; node 1 carries the three publishers
// and six players, node 2 none.
//
// Patterns follow tests/browser/sfu.mjs (lib.mjs): bounded waits, a hard deadline, one JSON
// result line, exit 0 or 1, and on failure the page and node logs in tests/artifacts/<case>/.
// Env: SWITCHBOARD_BIN (default target/debug/switchboard), RUST_LOG, SB_KEEP_ARTIFACTS=1.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHROMIUM_ARGS, PageRun, ROOT, freePort, runCase, sleep } from './lib.mjs';
import { PAGE, expectNoErrors, expectNoOwnTrack, joinLegacy, seer, showing } from './sfu_pages.mjs';

const WAIT_MS = 20_000;
const HARD_MS = 150_000;
const REDIS_SERVER = '/usr/bin/redis-server';

/** Sums the samples of `metric` with `labels` (a substring of the label set) in /metrics text. */
function metricValue(text, metric, labels) {
  return text.split('\n')
    .filter((l) => l.startsWith(`${metric}{`) && l.includes(labels))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

class ClusterRun extends PageRun {
  constructor(name) {
    super(name, { roomPrefix: 'sfucl', plugin: 'sfu', waitMs: WAIT_MS });
    this.nodes = [];
    this.children = [];
  }

  /** Starts a child process whose output goes to the gateway log with `label`. */
  spawnLogged(label, cmd, args) {
    const child = spawn(cmd, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
    });
    const keep = (chunk) => this.gatewayLog.push(...chunk.toString().split('\n').filter(Boolean).map((l) => `[${label}] ${l}`));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.exited = false;
    child.on('exit', () => { child.exited = true; });
    this.children.push(child);
    return child;
  }

  /** redis-server, then two nodes on the default config joined to it by [cluster]. */
  async startGateway() {
    const bin = process.env.SWITCHBOARD_BIN || join(ROOT, 'target/debug/switchboard');
    if (!existsSync(bin)) throw new Error(`no gateway binary at ${bin}: run cargo build --workspace first`);
    const redisPort = await freePort();
    const redis = this.spawnLogged('redis', REDIS_SERVER, ['--port', String(redisPort), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', this.tempDir]);
    const base = readFileSync(join(ROOT, 'config/switchboard.toml'), 'utf8');
    if (!base.includes(`type = "${this.plugin}"`)) throw new Error(`config/switchboard.toml has no ${this.plugin} plugin`);
    for (const n of [1, 2]) {
      const [p1, p2] = [await freePort(), await freePort()];
      const config = base
        .replace('0.0.0.0:5080', `127.0.0.1:${p1}`).replace('0.0.0.0:7000', `127.0.0.1:${p2}`)
        .replace('path = "switchboard.redb"', `path = ${JSON.stringify(join(this.tempDir, `store-${n}.redb`))}`)
        + `\n[cluster]\nredis_url = "redis://127.0.0.1:${redisPort}"\nnode_id = "node-${n}"\n`
        + 'heartbeat_interval_ms = 200\nnode_ttl_ms = 1000\n';
      const path = join(this.tempDir, `node-${n}.toml`);
      writeFileSync(path, config);
      const child = this.spawnLogged(`node-${n}`, bin, ['--config', path]);
      this.nodes.push({ name: `node-${n}`, main: `http://127.0.0.1:${p1}`, child });
    }
    // lib.mjs's exit handler kills `gateway`; the other children are killed by ours.
    this.gateway = this.nodes[0].child;
    process.on('exit', () => { for (const c of this.children) if (!c.exited) c.kill('SIGKILL'); });
    const deadline = Date.now() + 10_000;
    for (const node of this.nodes) {
      for (;;) {
        if (redis.exited) throw new Error('redis-server exited at start-up');
        if (node.child.exited) throw new Error(`${node.name} exited at start-up`);
        try {
          const res = await fetch(`${node.main}/healthz`, { signal: AbortSignal.timeout(1000) });
          if (res.ok && (await res.text()).includes('cluster: ok')) break;
        } catch { /* not up yet */ }
        if (Date.now() > deadline) throw new Error(`${node.name} did not report cluster: ok within 10 s`);
        await sleep(100);
      }
      this.note(node.name, `up at ${node.main}`);
    }
  }

  /** Opens the test page as `name` on node `n` (1 or 2): its WebSocket goes to that node. */
  async openOn(n, name) {
    this.main = this.nodes[n - 1].main;
    return this.openPage(name, `/__sfu-test.html?peer=${name}&room=${this.room}&stream=${this.room}-${name}`, PAGE);
  }

  async cleanup() {
    const browser = this.browser;
    this.browser = null;
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
    this.gateway = null;
    for (const child of this.children.slice().reverse()) {
      if (child.exited) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(7000).then(() => false)]))) child.kill('SIGKILL');
    }
    await super.cleanup();
  }
}

/** node 1 and node 2's SFU peer connections: [[publishers, players], [publishers, players]]. */
async function carried(t) {
  // The gauges are refreshed every second.
  await sleep(1200);
  const out = [];
  for (const node of t.nodes) {
    const text = await (await fetch(`${node.main}/metrics`)).text();
    out.push([metricValue(text, 'switchboard_sfu_peer_connections', 'direction="publish"'),
      metricValue(text, 'switchboard_sfu_peer_connections', 'direction="play"')]);
  }
  return out;
}

const CASES = {
  // The joinRoom flow of Ant's conference tutorial (LEGACY_PAGE, as in sfu.mjs's
  // sfu_join_room_flow) on nodes 1, 2, 1: each page plays each other participant's stream
  // (`play(id, token, room)`, ids from joinedTheRoom and the 5 s roomInformation poll) and
  // shows the two others' video with frames advancing; all media is on node 1.
  async sfu_cluster_join_room_flow(t) {
    const room = t.room;
    const sid = (name) => `${room}-${name}`;
    const sees = seer(t, (names) => names.map(sid).sort(), { probe: showing, ms: 30_000 });
    const peers = [];
    for (const [name, node] of [['A', 1], ['B', 2], ['C', 1]]) {
      t.main = t.nodes[node - 1].main;
      await joinLegacy(t, name, peers, sid);
    }
    const [a, b, c] = peers;
    await Promise.all([sees(a, ['B', 'C']), sees(b, ['A', 'C']), sees(c, ['A', 'B'])]);
    await expectNoOwnTrack(t, peers, sid);
    await expectNoErrors(t, peers);
    const figures = await carried(t);
    t.expect(JSON.stringify(figures) === JSON.stringify([[3, 6], [0, 0]]),
      'node 1 carries the three publishers and six players, node 2 none', figures);
  },

  async sfu_cluster_three_pages(t) {
    const room = t.room;
    const sid = (name) => `${room}-${name}`;
    const video = (names) => names.map((n) => `ARDAMSv${sid(n)}`).sort();
    const sees = seer(t, video);
    const peers = [];
    for (const [name, node] of [['A', 1], ['B', 2], ['C', 1]]) {
      const p = await t.openOn(node, name);
      await t.until([p], 'initialized', () => window.sb.initialized);
      await p.page.evaluate(([s, r]) => window.sbAdaptor.publish(s, undefined, '', '', s, r), [sid(name), room]);
      await t.until([p], 'publish_started', () => window.sb.info.publish_started);
      await p.page.evaluate((r) => window.sbAdaptor.play(r, '', r, []), room);
      await t.until([p], 'play_started', () => window.sb.info.play_started);
      peers.push(p);
    }
    const [a, b, c] = peers;
    await Promise.all([sees(a, ['B', 'C']), sees(b, ['A', 'C']), sees(c, ['A', 'B'])]);
    await expectNoOwnTrack(t, peers, sid);
    await expectNoErrors(t, peers);
    // The media of all three is on node 1, the room's home; node 2 only signals.
    const figures = await carried(t);
    t.expect(JSON.stringify(figures) === JSON.stringify([[3, 3], [0, 0]]),
      'node 1 carries the three publishers and three players, node 2 none', figures);
  },
};

await runCase({
  script: 'tests/browser/sfu_cluster.mjs',
  cases: CASES,
  makeRun: (n) => new ClusterRun(n),
  hardMs: HARD_MS,
  // Chromium gathers no loopback candidates without it (see tests/browser/matrix.mjs).
  chromiumArgs: [...CHROMIUM_ARGS, '--allow-loopback-in-peer-connection'],
});
