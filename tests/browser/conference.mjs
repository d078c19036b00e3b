// Conference-room signaling with the real Ant Media SDK in headless Chromium, through the real
// `switchboard` binary on its default config (the conference plugin before the router), with
// the store in a temporary directory. Run by tests/tests/browser_conference.rs; by hand, from
// the repository root:
//
//   cargo build --workspace
//   node tests/browser/conference.mjs conference_room_signaling
//
// Two pages (A and B) load the SDK's ES module build from the gateway's /node_modules/ and:
//   1. A and B `joinRoom` the same room with their own stream ids: both get `joinedTheRoom`, B's
//      listing A's stream;
//   2. A asks `getRoomInfo`: `roomInformation` lists B's stream;
//   3. A `leaveFromRoom`s: `leavedFromRoom` with the room in ATTR_ROOM_NAME;
//   4. B asks `getRoomInfo`: A is gone, so `no_active_streams_in_room` through callbackError.
// The pages are served by intercepting a URL of the gateway's own origin (so the SDK loads from
// it and http://127.0.0.1 counts as a secure context); no page is added to the gateway.
//
// Patterns follow tests/browser/matrix.mjs: bounded waits, a hard deadline, one JSON result
// line, exit 0 or 1, and on failure the page and gateway logs in tests/artifacts/<case>/.
// Env: SWITCHBOARD_BIN (default target/debug/switchboard), RUST_LOG, SB_KEEP_ARTIFACTS=1.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WAIT_MS = 20_000;
const HARD_MS = 70_000;
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  // The test page is a response playwright fulfills, which Chromium does not count as coming from
  // the loopback address it talks to, so its Local Network Access checks would block the
  // WebSocket to 127.0.0.1.
  '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests',
];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const plain = (text) => String(text).replace(/\u001b\[[0-9;]*m/g, '');

/** The test page: the SDK, one adaptor, and hooks in `window.sb` for the script. */
const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>conference test</title></head><body>
<script type="module">
import { WebRTCAdaptor } from "/node_modules/@antmedia/webrtc_adaptor/dist/es/index.js";
const params = new URLSearchParams(location.search);
const sb = window.sb = { initialized: false, info: {}, errors: [], events: [] };
window.sbAdaptor = new WebRTCAdaptor({
  websocket_url: "ws://" + location.host + "/LiveApp/websocket",
  onlyDataChannel: true,
  peerconnection_config: { iceServers: [] },
  callback: (info, obj) => {
    if (info === "pong") return;
    sb.events.push(info);
    console.log("SB callback " + info + " " + (obj && typeof obj === "object" ? JSON.stringify(obj) : ""));
    if (info === "initialized") sb.initialized = true;
    if (obj && typeof obj === "object") sb.info[info] = JSON.parse(JSON.stringify(obj));
  },
  callbackError: (error, obj) => {
    console.log("SB error " + error + " " + (obj && typeof obj === "object" ? JSON.stringify(obj) : ""));
    sb.errors.push({ error: String(error), obj: obj && typeof obj === "object" ? JSON.parse(JSON.stringify(obj)) : null });
  },
});
</script></body></html>`;

const CASES = {
  async conference_room_signaling(t) {
    const room = t.room;
    const [a, b] = [await t.open('A'), await t.open('B')];
    await t.until([a, b], 'initialized', () => window.sb.initialized);

    await a.page.evaluate((r) => window.sbAdaptor.joinRoom(r, 'streamA'), room);
    const joinedA = await t.until([a], 'joinedTheRoom', () => window.sb.info.joinedTheRoom);
    t.expect(joinedA.streamId === 'streamA' && joinedA.room === room && joinedA.ATTR_ROOM_NAME === room
      && Array.isArray(joinedA.streams) && joinedA.streams.length === 0 && typeof joinedA.maxTrackCount === 'number',
    'A joinedTheRoom', joinedA);
    await b.page.evaluate((r) => window.sbAdaptor.joinRoom(r, 'streamB'), room);
    const joinedB = await t.until([b], 'joinedTheRoom', () => window.sb.info.joinedTheRoom);
    t.expect(joinedB.streams.includes('streamA') && joinedB.streamList.some((s) => s.streamId === 'streamA'),
      'B joinedTheRoom lists A', joinedB);

    await a.page.evaluate((r) => window.sbAdaptor.getRoomInfo(r, 'streamA'), room);
    const info = await t.until([a], 'roomInformation', () => window.sb.info.roomInformation);
    t.expect(info.room === room && info.streams.includes('streamB') && !info.streams.includes('streamA'),
      'roomInformation lists B', info);

    await a.page.evaluate((r) => window.sbAdaptor.leaveFromRoom(r, 'streamA'), room);
    const left = await t.until([a], 'leavedFromRoom', () => window.sb.info.leavedFromRoom);
    t.expect(left.ATTR_ROOM_NAME === room, 'leavedFromRoom names the room', left);

    await b.page.evaluate((r) => window.sbAdaptor.getRoomInfo(r, 'streamB'), room);
    const err = await t.until([b], 'no_active_streams_in_room',
      () => window.sb.errors.find((e) => e.error === 'no_active_streams_in_room'), undefined, { allowErrors: true });
    t.expect(err.obj && err.obj.room === room, 'the error names the room', err);
    for (const p of [a, b]) {
      const unexpected = await p.page.evaluate(() => window.sb.errors.filter((e) => e.error !== 'no_active_streams_in_room'));
      t.expect(unexpected.length === 0, `${p.name} has no other error`, unexpected);
    }
  },
};

class Run {
  constructor(name) {
    this.name = name;
    this.t0 = Date.now();
    this.room = `bc-${randomBytes(4).toString('hex')}`;
    this.peers = [];
    this.notes = [];
    this.gatewayLog = [];
    this.gateway = null;
    this.browser = null;
    this.tempDir = mkdtempSync(join(tmpdir(), 'sb-conference-'));
  }

  note(who, what) { this.notes.push(`+${((Date.now() - this.t0) / 1000).toFixed(3)}s ${who}: ${what}`); }

  expect(ok, what, value) {
    if (!ok) throw new Error(`${what}: got ${JSON.stringify(value)}`);
    this.note('check', what);
  }

  async startGateway() {
    const bin = process.env.SWITCHBOARD_BIN || join(ROOT, 'target/debug/switchboard');
    if (!existsSync(bin)) throw new Error(`no gateway binary at ${bin}: run cargo build --workspace first`);
    const [p1, p2] = [await freePort(), await freePort()];
    // The default config (conference plugin included), on free loopback ports, its store here.
    const config = readFileSync(join(ROOT, 'config/switchboard.toml'), 'utf8')
      .replace('0.0.0.0:5080', `127.0.0.1:${p1}`).replace('0.0.0.0:7000', `127.0.0.1:${p2}`)
      .replace('path = "switchboard.redb"', `path = ${JSON.stringify(join(this.tempDir, 'store.redb'))}`);
    if (!config.includes('type = "conference"')) throw new Error('config/switchboard.toml has no conference plugin');
    writeFileSync(join(this.tempDir, 'switchboard.toml'), config);
    this.main = `http://127.0.0.1:${p1}`;
    const gw = spawn(bin, ['--config', join(this.tempDir, 'switchboard.toml')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
    });
    this.gateway = gw;
    const keep = (chunk) => this.gatewayLog.push(...chunk.toString().split('\n').filter(Boolean));
    gw.stdout.on('data', keep);
    gw.stderr.on('data', keep);
    gw.on('exit', () => { this.gateway = null; });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!this.gateway) throw new Error('the gateway exited at start-up');
      try {
        if ((await fetch(`${this.main}/healthz`, { signal: AbortSignal.timeout(1000) })).ok) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`the gateway did not answer ${this.main}/healthz within 10 s`);
      await sleep(100);
    }
    this.note('gateway', `up at ${this.main}`);
  }

  async open(name) {
    const context = await this.browser.newContext();
    const page = await context.newPage();
    const url = `${this.main}/__conference-test.html?peer=${name}`;
    await page.route(`${this.main}/__conference-test.html*`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: PAGE }));
    const peer = { name, page, lines: [] };
    page.on('console', (m) => peer.lines.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => peer.lines.push(`[pageerror] ${e.stack || e}`));
    this.peers.push(peer);
    await page.goto(url, { timeout: WAIT_MS });
    this.note(name, `open ${url}`);
    return peer;
  }

  /** Waits until `predicate(arg)` is truthy in every page (failing on page errors unless allowed); returns the first page's value. */
  async until(peers, label, predicate, arg, { allowErrors = false } = {}) {
    const values = await Promise.all(peers.map(async (peer) => {
      const probe = ([src, a, allow]) => {
        const sb = window.sb;
        if (!sb) return false;
        if (!allow && sb.errors.length) return { errors: sb.errors };
        // eslint-disable-next-line no-new-func
        const v = new Function('a', `return (${src})(a)`)(a);
        return v ? { value: v } : false;
      };
      let result;
      try {
        const handle = await peer.page.waitForFunction(probe, [predicate.toString(), arg, allowErrors],
          { timeout: WAIT_MS, polling: 100 });
        result = await handle.jsonValue();
      } catch (e) {
        throw new Error(`${peer.name}: no ${label} within ${WAIT_MS / 1000} s (${plain(e.message).split('\n')[0]})`);
      }
      if (result.errors) throw new Error(`${peer.name}: error while waiting for ${label}: ${JSON.stringify(result.errors)}`);
      this.note(peer.name, label);
      return result.value;
    }));
    return values[0];
  }

  saveArtifacts(result) {
    const dir = join(ROOT, 'tests/artifacts', this.name);
    mkdirSync(dir, { recursive: true });
    const files = [['gateway.log', this.gatewayLog], ['steps.log', this.notes]];
    for (const p of this.peers) files.push([`page-${p.name}.log`, p.lines]);
    for (const [file, lines] of files) {
      writeFileSync(join(dir, file), lines.join('\n') + '\n');
      console.error(`\n--- ${join('tests/artifacts', this.name, file)} (last 30 lines)\n${lines.slice(-30).join('\n')}`);
    }
    writeFileSync(join(dir, 'result.json'), JSON.stringify(result, null, 2) + '\n');
  }

  async cleanup() {
    const browser = this.browser;
    this.browser = null;
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
    const gw = this.gateway;
    if (gw) {
      const exited = new Promise((r) => gw.once('exit', r));
      gw.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(7000).then(() => false)]))) gw.kill('SIGKILL');
    }
    rmSync(this.tempDir, { recursive: true, force: true });
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

const name = process.argv[2];
if (!CASES[name]) {
  console.error(`usage: node tests/browser/conference.mjs CASE\ncases: ${Object.keys(CASES).join(', ')}`);
  process.exit(2);
}
const run = new Run(name);
process.on('exit', () => run.gateway?.kill('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));

let finished = false;
async function finish(ok, error) {
  if (finished) return;
  finished = true;
  rmSync(join(ROOT, 'tests/artifacts', name), { recursive: true, force: true });
  const result = { case: name, ok, ms: Date.now() - run.t0, room: run.room, ...(error ? { error: plain(error.message || error) } : {}) };
  if (!ok) console.error(`FAIL ${name}: ${plain(error && error.stack ? error.stack : error)}`);
  if (!ok || process.env.SB_KEEP_ARTIFACTS === '1') run.saveArtifacts(result);
  await run.cleanup();
  console.log(JSON.stringify(result));
  process.exit(ok ? 0 : 1);
}

setTimeout(() => {
  setTimeout(() => process.exit(1), 15_000).unref();
  finish(false, new Error(`hard timeout after ${HARD_MS / 1000} s`));
}, HARD_MS).unref();

try {
  await run.startGateway();
  run.browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, timeout: 20_000 });
  await CASES[name](run);
  await finish(true);
} catch (error) {
  await finish(false, error);
}
