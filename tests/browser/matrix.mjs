// Real-browser interop matrix: the demo pages in examples/web/, served by the real `switchboard`
// binary, call each other in headless Chromium (fake camera and microphone) through the gateway.
// Run by tests/tests/browser.rs (one test per case); by hand, from the repository root:
//
//   cargo build --workspace
//   unshare -n sh -c 'ip link set lo up && SWITCHBOARD_NETNS=1 exec node tests/browser/matrix.mjs classic'
//   node tests/browser/matrix.mjs classic        # not root: no namespace, free loopback ports
//
// Env: SWITCHBOARD_BIN (default target/debug/switchboard), SWITCHBOARD_NETNS=1 when running in a
// private network namespace (then the gateway runs on its embedded default config, ports 5080
// and 7000; otherwise on a temporary config with free 127.0.0.1 ports), RUST_LOG for the gateway
// (default info), SB_KEEP_ARTIFACTS=1 to save the logs when the case passes too.
//
// Network: in a namespace with only `lo` up, Chromium gathers 127.0.0.1 host candidates thanks to
// --allow-loopback-in-peer-connection, for pages on an http://127.0.0.1 origin (checked with
// Chromium 156: without the flag it gathers none and ICE never starts; an about:blank page gathers
// none even with it). So no veth pair is needed and all media stays on loopback.
//
// A case passes when every pair reports ICE `connected` (or `completed`) through the page hook
// `window.sb.ice` and `window.sbRemoteWidth()` (the remote <video>'s videoWidth) is > 0. It prints
// one JSON result line and exits 0 or 1. On failure it saves each page's console log, the steps
// taken and the gateway's stderr to tests/artifacts/<case>/ and prints their tails. Every
// wait is bounded, the whole run has a hard deadline, and the gateway and browser are stopped on
// every path.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort } from './lib.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** One expected state change (a page connecting, an error arriving). */
const WAIT_MS = 30_000;
/** The whole run, gateway and browser start-up included; the Rust wrapper allows 90 s. */
const HARD_MS = 80_000;
const TAIL_LINES = 40;
const ICE_UP = ['connected', 'completed'];
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stamp = (t0) => `+${((Date.now() - t0) / 1000).toFixed(3)}s`;

// === the cases ===

/**
 * Each case gets `t` (see `Run`) and opens its pages with `t.open(name, path)`. Paths starting
 * with `:7000` go to the classic listener. Rooms are unique per run (`t.room`).
 */
const CASES = {
  // 1. Ant SDK <-> Ant SDK: P2P join, media, data channel, and a peerMessageCommand round trip.
  async ant_ant(t) {
    const [a, b] = await t.openAll(['A', `/ant.html?room=${t.room}`], ['B', `/ant.html?room=${t.room}`]);
    await t.inCall(a, b);
    await t.until([a, b], 'the data channel open', () => window.sb.dataChannelOpen === true);
    const data = `hello-${Date.now()}`;
    await a.page.evaluate(([room, d]) => window.sbAdaptor.peerMessage(room, 'sbTest', d), [t.room, data]);
    await t.until([b], `peerMessageCommand with data ${data}`,
      (d) => window.sb.peerMessages.some((m) => m.definition === 'sbTest' && m.data === d), data);
  },

  // 2. The classic SimpleP2P demo on port 7000: two /peer.html in the listener's room, A dials.
  async classic(t) {
    const a = await t.open('A', ':7000/peer.html');
    await t.until([a], 'the socket connected', () => window.sb.connected === true);
    const b = await t.open('B', ':7000/peer.html');
    await t.until([b], 'the socket connected', () => window.sb.connected === true);
    // Dial only once the gateway has paired them; an offer sent earlier would find no partner.
    await t.until([a], 'the peer-joined notice', () => window.sb.log.some((l) => l.includes('peer-joined')));
    await a.page.click('#dial');
    await t.inCall(a, b);
  },

  // 3. Bridge: Ant SDK <-> socket.io v4: Switchboard's embedded client (Ant joins first, so the
  // waiting peer offers), then the official npm client (Ant joins second: the joiner offers).
  async ant_socketio(t) {
    const [ant, sio] = await t.openAll(['ant', `/ant.html?room=${t.room}`], ['sio', `/socketio.html?room=${t.room}`]);
    await t.inCall(ant, sio);
    await t.socketioClient(sio, '/socket.io/socket.io.js');
  },
  async ant_socketio_npm4(t) {
    const [sio, ant] = await t.openAll(['sio', `/socketio.html?room=${t.room}&client=npm4`], ['ant', `/ant.html?room=${t.room}`]);
    await t.inCall(ant, sio);
    await t.socketioClient(sio, '/node_modules/socket.io-client/');
  },

  // 4. Bridge: Ant SDK <-> simple-peer over /ws/{room}.
  async ant_raw(t) {
    await t.inCall(...await t.openAll(['ant', `/ant.html?room=${t.room}`], ['raw', `/raw.html?room=${t.room}`]));
  },

  // 5. Bridge: socket.io <-> simple-peer.
  async socketio_raw(t) {
    await t.inCall(...await t.openAll(['sio', `/socketio.html?room=${t.room}`], ['raw', `/raw.html?room=${t.room}`]));
  },

  // 6. A third Ant peer is refused with NoSpaceForNewPeer; after one leaves, a new one connects.
  async ant_full_room(t) {
    const [a, b] = await t.openAll(['A', `/ant.html?room=${t.room}`], ['B', `/ant.html?room=${t.room}`]);
    await t.inCall(a, b);
    const c = await t.open('C', `/ant.html?room=${t.room}`);
    await t.until([c], 'NoSpaceForNewPeer through callbackError',
      () => window.sb.errors.some((e) => String(e).includes('NoSpaceForNewPeer')), undefined, { allowErrors: true });
    await a.page.evaluate((room) => window.sbAdaptor.leave(room), t.room);
    await t.until([a], 'leaved', () => window.sb.events.includes('leaved'));
    await a.close();
    // B sees the call end (so the checks below are about a new call, not stale state)...
    await t.until([b], 'the call ended', () => window.sb.ice === 'closed' && window.sbRemoteWidth() === 0);
    // ...and is in a new one with a fresh Ant peer.
    const d = await t.open('D', `/ant.html?room=${t.room}`);
    await t.inCall(d, b);
    await t.until([c], 'no other error than NoSpaceForNewPeer',
      () => window.sb.errors.every((e) => String(e).includes('NoSpaceForNewPeer')), undefined, { allowErrors: true });
  },

  // 7. socket.io-client 2.x (npm) <-> Ant SDK.
  async sio2_ant(t) {
    const [sio, ant] = await t.openAll(['sio2', `/socketio.html?room=${t.room}&v=2`], ['ant', `/ant.html?room=${t.room}`]);
    await t.inCall(sio, ant);
    await t.socketioClient(sio, '/node_modules/socket.io-client-v2/');
  },

  // 8. PeerJS 1.5 (the gateway as its PeerJS server): a PeerJS page calls id R, which is the
  // room of an Ant SDK page, a socket.io page, a simple-peer page, or another PeerJS page's id.
  // The callee is there first; a PeerJS call to an empty room gets EXPIRE and the page redials.
  async peerjs_ant(t) {
    const ant = await t.open('ant', `/ant.html?room=${t.room}`);
    await t.until([ant], 'joined', () => window.sb.events.includes('joined'));
    const pj = await t.open('peerjs', `/peerjs.html?call=${t.room}`);
    await t.inCall(pj, ant);
    await t.peerjsServed(pj);
  },
  async peerjs_socketio(t) {
    const sio = await t.open('sio', `/socketio.html?room=${t.room}`);
    await t.until([sio], 'the socket connected', () => window.sb.connected === true);
    const pj = await t.open('peerjs', `/peerjs.html?call=${t.room}`);
    await t.inCall(pj, sio);
  },
  async peerjs_raw(t) {
    const raw = await t.open('raw', `/raw.html?room=${t.room}`);
    await t.until([raw], 'joined', () => window.sb.notices.some((n) => n.type === 'switchboard.joined'));
    const pj = await t.open('peerjs', `/peerjs.html?call=${t.room}`);
    await t.inCall(pj, raw);
  },
  // Two PeerJS pages as through the `peer` server: media both ways and a data connection whose
  // JSON messages arrive on both sides (relayed verbatim).
  async peerjs_peerjs(t) {
    const bob = await t.open('bob', `/peerjs.html?id=${t.room}`);
    await t.until([bob], 'registered', (id) => window.sb.open && window.sb.id === id, t.room);
    const alice = await t.open('alice', `/peerjs.html?call=${t.room}&data=1`);
    await t.inCall(alice, bob);
    await t.until([alice], 'a data message from bob',
      (id) => window.sb.data.some((d) => d && d.hello === id), t.room);
    await t.until([bob], 'a data message from alice (an id the gateway handed out)',
      () => window.sb.data.some((d) => d && typeof d.hello === 'string' && /^[0-9a-f-]{36}$/.test(d.hello)));
  },
};

// === the run: gateway, browser, pages, waits, artifacts ===

class Run {
  constructor(name) {
    this.name = name;
    this.t0 = Date.now();
    this.room = `bt-${name.replace(/_/g, '-')}-${randomBytes(4).toString('hex')}`;
    this.peers = [];
    this.notes = [];
    this.gatewayLog = [];
    this.gateway = null;
    this.gatewayExit = null; // rejects when the gateway exits before we stop it
    this.browser = null;
    this.tempDir = null;
    this.isolation = process.env.SWITCHBOARD_NETNS === '1' ? 'netns' : 'none';
  }

  note(who, what) {
    this.notes.push(`${stamp(this.t0)} ${who}: ${what}`);
  }

  // --- gateway ---

  async startGateway() {
    const bin = process.env.SWITCHBOARD_BIN || join(ROOT, 'target/debug/switchboard');
    if (!existsSync(bin)) throw new Error(`no gateway binary at ${bin}: run cargo build --workspace first`);
    let args = [];
    if (this.isolation === 'netns') {
      const outside = Object.entries(networkInterfaces())
        .filter(([, addrs]) => addrs.some((a) => !a.internal)).map(([name]) => name);
      if (outside.length) throw new Error(`SWITCHBOARD_NETNS=1 but interfaces ${outside} are up`);
      this.main = 'http://127.0.0.1:5080';
      this.classic = 'http://127.0.0.1:7000';
    } else {
      // Outside a namespace the default ports may be taken: same config, free loopback ports.
      const [p1, p2] = [await freePort(), await freePort()];
      // config/switchboard.toml is the file embedded as the default config.
      const config = readFileSync(join(ROOT, 'config/switchboard.toml'), 'utf8')
        .replace('0.0.0.0:5080', `127.0.0.1:${p1}`).replace('0.0.0.0:7000', `127.0.0.1:${p2}`);
      this.tempDir = mkdtempSync(join(tmpdir(), 'sb-browser-'));
      writeFileSync(join(this.tempDir, 'switchboard.toml'), config);
      args = ['--config', join(this.tempDir, 'switchboard.toml')];
      this.main = `http://127.0.0.1:${p1}`;
      this.classic = `http://127.0.0.1:${p2}`;
    }
    // cwd = repository root: the demo listener serves ./node_modules at /node_modules/.
    const gw = spawn(bin, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
    });
    this.gateway = gw;
    for (const stream of [gw.stdout, gw.stderr]) {
      createInterface({ input: stream }).on('line', (l) => this.gatewayLog.push(l));
    }
    this.gatewayExit = new Promise((_, reject) => {
      gw.on('exit', (code, signal) => {
        this.gateway = null;
        reject(new Error(`the gateway exited during the test (code ${code}, signal ${signal})`));
      });
    });
    this.gatewayExit.catch(() => {});
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!this.gateway) throw new Error('the gateway exited at start-up');
      try {
        const res = await fetch(`${this.main}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`the gateway did not answer ${this.main}/healthz within 10 s`);
      await sleep(100);
    }
    this.note('gateway', `up at ${this.main} and ${this.classic} (isolation: ${this.isolation})`);
  }

  async stopGateway() {
    const gw = this.gateway;
    if (!gw) return;
    const exited = new Promise((r) => gw.once('exit', r));
    gw.kill('SIGTERM');
    if (await Promise.race([exited.then(() => true), sleep(7000).then(() => false)])) return;
    this.note('gateway', 'still running 7 s after SIGTERM; killed');
    gw.kill('SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  }

  // --- browser and pages ---

  async startBrowser() {
    this.browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 20_000,
    });
    this.browser.on('disconnected', () => { if (this.browser) this.note('browser', 'disconnected (crashed or killed)'); });
  }

  /** Opens `path` (":7000/x" for the classic listener) in a fresh browser context. */
  async open(name, path) {
    const url = path.startsWith(':7000') ? this.classic + path.slice(5) : this.main + path;
    const context = await this.browser.newContext();
    const page = await context.newPage();
    const peer = { name, url, page, context, lines: [], closed: false };
    peer.close = async () => {
      peer.closed = true;
      await context.close().catch(() => {});
      this.note(name, 'closed');
    };
    const line = (text) => peer.lines.push(`${stamp(this.t0)} ${text}`);
    page.on('console', (m) => line(`[${m.type()}] ${m.text()}${m.type() === 'error' && m.location().url ? ` (${m.location().url})` : ''}`));
    page.on('pageerror', (e) => line(`[pageerror] ${e.stack || e}`));
    page.on('requestfailed', (r) => line(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
    page.on('crash', () => line('[crash] the page crashed'));
    this.peers.push(peer);
    this.note(name, `open ${url}`);
    await page.goto(url, { timeout: WAIT_MS });
    return peer;
  }

  /** Opens pages one after the other (join order is part of what a case tests). */
  async openAll(...specs) {
    const out = [];
    for (const [name, path] of specs) out.push(await this.open(name, path));
    return out;
  }

  /**
   * Waits until `predicate(arg)` is true in every page of `peers`, failing at once when the
   * predicate throws or a page records an error in `window.sb.errors` (unless `allowErrors`).
   */
  async until(peers, label, predicate, arg, { allowErrors = false, timeoutMs = WAIT_MS } = {}) {
    await Promise.all(peers.map(async (peer) => {
      const probe = ([src, a, allow]) => {
        const sb = window.sb;
        if (!sb) return false;
        if (!allow && sb.errors && sb.errors.length) return { errors: sb.errors };
        // eslint-disable-next-line no-new-func
        return new Function('a', `return (${src})(a)`)(a) ? { ok: true } : false;
      };
      let result;
      try {
        const handle = await peer.page.waitForFunction(probe, [predicate.toString(), arg, allowErrors],
          { timeout: timeoutMs, polling: 200 });
        result = await handle.jsonValue();
      } catch (e) {
        throw new Error(`${peer.name}: waiting for ${label}: ${firstLine(e)}; page state: ${await state(peer)}`);
      }
      if (result.errors) throw new Error(`${peer.name}: page error while waiting for ${label}: ${JSON.stringify(result.errors)}`);
      this.note(peer.name, label);
    }));
  }

  /** Both pages report ICE connected/completed and a remote video with frames. */
  async inCall(...peers) {
    await this.until(peers, 'ICE connected and remote video frames', (up) => {
      if (window.sb.ice === 'failed') throw new Error('ICE failed');
      return up.includes(window.sb.ice) && window.sbRemoteWidth() > 0;
    }, ICE_UP);
  }

  /** The PeerJS page registered with the gateway: its id came from `GET /peerjs/id`. */
  async peerjsServed(peer) {
    const id = await peer.page.evaluate(() => window.sb.id);
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id || '')) {
      throw new Error(`${peer.name}: expected an id handed out by the gateway, got ${JSON.stringify(id)}`);
    }
    this.note(peer.name, `registered as ${id}`);
  }

  /** The socket.io page runs the client it was asked for (the script it loaded from `prefix`). */
  async socketioClient(peer, prefix) {
    const scripts = await peer.page.evaluate(() => [...document.scripts].map((s) => s.src && new URL(s.src).pathname));
    if (!scripts.some((p) => p && p.startsWith(prefix))) {
      throw new Error(`${peer.name}: expected a socket.io client from ${prefix}, the page loaded ${JSON.stringify(scripts)}`);
    }
    this.note(peer.name, `socket.io client from ${prefix}`);
  }

  async stopBrowser() {
    const browser = this.browser;
    this.browser = null;
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
  }

  // --- reporting ---

  async result(ok, error) {
    const pages = {};
    for (const p of this.peers) pages[p.name] = p.closed ? 'closed' : JSON.parse(await state(p));
    return { case: this.name, ok, ms: Date.now() - this.t0, room: this.room, isolation: this.isolation, pages, ...(error ? { error: plain(error.message || error) } : {}) };
  }

  saveArtifacts(result, printTails) {
    const dir = join(ROOT, 'tests/artifacts', this.name);
    mkdirSync(dir, { recursive: true });
    const files = [['gateway.log', this.gatewayLog], ['steps.log', this.notes]];
    for (const p of this.peers) files.push([`page-${p.name}.log`, [`url: ${p.url}`, ...p.lines]]);
    for (const [file, lines] of files) {
      writeFileSync(join(dir, file), lines.join('\n') + '\n');
      if (!printTails) continue;
      console.error(`\n--- ${join('tests/artifacts', this.name, file)} (last ${TAIL_LINES} of ${lines.length} lines)`);
      console.error(lines.slice(-TAIL_LINES).map((l) => (l.length > 400 ? `${l.slice(0, 400)}...` : l)).join('\n'));
    }
    writeFileSync(join(dir, 'result.json'), JSON.stringify(result, null, 2) + '\n');
  }

  async cleanup() {
    await this.stopBrowser();
    await this.stopGateway();
    if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
  }
}

/** What a page's hooks say, as JSON text (for messages and the result line). */
async function state(peer) {
  try {
    return await peer.page.evaluate(() => JSON.stringify({
      ice: window.sb && window.sb.ice,
      remoteWidth: window.sbRemoteWidth ? window.sbRemoteWidth() : null,
      errors: window.sb && window.sb.errors,
      last: window.sb && window.sb.log ? window.sb.log.slice(-3) : undefined,
    }));
  } catch (e) {
    return JSON.stringify({ unavailable: firstLine(e) });
  }
}

const firstLine = (e) => plain(e && e.message || e).split('\n')[0];
/** Without the terminal colours playwright puts in its messages. */
const plain = (text) => String(text).replace(/\u001b\[[0-9;]*m/g, '');

// === main ===

const name = process.argv[2];
if (!CASES[name]) {
  console.error(`usage: node tests/browser/matrix.mjs CASE\ncases: ${Object.keys(CASES).join(', ')}`);
  process.exit(2);
}
const run = new Run(name);
// Last-resort cleanup: the gateway is our child and must not outlive us.
process.on('exit', () => run.gateway?.kill('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));

let finished = false;
async function finish(ok, error) {
  if (finished) return;
  finished = true;
  rmSync(join(ROOT, 'tests/artifacts', name), { recursive: true, force: true });
  const result = await Promise.race([run.result(ok, error), sleep(5000).then(() => ({ case: name, ok, error: String(error) }))]);
  if (!ok || process.env.SB_KEEP_ARTIFACTS === '1') {
    if (!ok) console.error(`FAIL ${name}: ${plain(error && error.stack ? error.stack : error)}`);
    run.saveArtifacts(result, !ok);
  }
  await run.cleanup();
  console.log(JSON.stringify(result));
  process.exit(ok ? 0 : 1);
}

setTimeout(() => {
  // Hard deadline: finish() has its own bounded steps; if even that hangs, exit anyway.
  setTimeout(() => process.exit(1), 15_000).unref();
  finish(false, new Error(`hard timeout after ${HARD_MS / 1000} s`));
}, HARD_MS).unref();

try {
  await run.startGateway();
  await run.startBrowser();
  await Promise.race([CASES[name](run), run.gatewayExit]);
  await finish(true);
} catch (error) {
  await finish(false, error);
}
