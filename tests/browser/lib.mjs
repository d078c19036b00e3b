// What the page-driving browser tests share (conference.mjs, sfu.mjs): the real `switchboard`
// binary on the default config with free loopback ports and a temporary store, Chromium pages
// with their console kept, bounded waits on `window.sb` hooks, a hard deadline, one JSON result
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

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  // The test page is a response playwright fulfills, which Chromium does not count as coming from
  // the loopback address it talks to, so its Local Network Access checks would block the
  // WebSocket to 127.0.0.1.
  '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests',
];
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const plain = (text) => String(text).replace(/\u001b\[[0-9;]*m/g, '');

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** One case's gateway, browser and pages, and its log of steps. */
export class PageRun {
  /**
   * `plugin`: the `[[plugin]]` type the default config must have for this driver's cases;
   * `configEdit`: an optional function of the default config's text giving the case's;
   * `logLevel`: the gateway's `RUST_LOG` when the environment sets none.
   */
  constructor(name, { roomPrefix, plugin, waitMs, configEdit = (c) => c, logLevel = 'info' }) {
    this.name = name;
    this.t0 = Date.now();
    this.room = `${roomPrefix}-${randomBytes(4).toString('hex')}`;
    this.plugin = plugin;
    this.waitMs = waitMs;
    this.configEdit = configEdit;
    this.logLevel = logLevel;
    this.peers = [];
    this.notes = [];
    this.gatewayLog = [];
    this.gateway = null;
    this.browser = null;
    this.tempDir = mkdtempSync(join(tmpdir(), `sb-${roomPrefix}-`));
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
    // The default config, on free loopback ports, its store here.
    const config = this.configEdit(readFileSync(join(ROOT, 'config/switchboard.toml'), 'utf8'))
      .replace('0.0.0.0:5080', `127.0.0.1:${p1}`).replace('0.0.0.0:7000', `127.0.0.1:${p2}`)
      .replace('path = "switchboard.redb"', `path = ${JSON.stringify(join(this.tempDir, 'store.redb'))}`);
    if (!config.includes(`type = "${this.plugin}"`)) throw new Error(`config/switchboard.toml has no ${this.plugin} plugin`);
    writeFileSync(join(this.tempDir, 'switchboard.toml'), config);
    this.main = `http://127.0.0.1:${p1}`;
    const gw = spawn(bin, ['--config', join(this.tempDir, 'switchboard.toml')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || this.logLevel, NO_COLOR: '1' },
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

  /**
   * Opens `path` of the gateway's origin as page `name`, in a context of its own. With `body`,
   * that URL is answered with `body` (a test page) instead of asking the gateway, so the page
   * is of the gateway's origin (the SDK loads from it, and http://127.0.0.1 is a secure
   * context) without the gateway serving it.
   */
  async openPage(name, path, body) {
    const context = await this.browser.newContext();
    const page = await context.newPage();
    const url = `${this.main}${path}`;
    if (body !== undefined) {
      await page.route(`${url.split('?')[0]}*`, (route) =>
        route.fulfill({ status: 200, contentType: 'text/html', body }));
    }
    const peer = { name, page, lines: [] };
    page.on('console', (m) => peer.lines.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => peer.lines.push(`[pageerror] ${e.stack || e}`));
    this.peers.push(peer);
    await page.goto(url, { timeout: this.waitMs });
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
          { timeout: this.waitMs, polling: 100 });
        result = await handle.jsonValue();
      } catch (e) {
        throw new Error(`${peer.name}: no ${label} within ${this.waitMs / 1000} s (${plain(e.message).split('\n')[0]})`);
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

/**
 * Runs the case named by the first argument: `cases[name](run)` with the gateway up and Chromium
 * launched with `chromiumArgs`, within `hardMs`; prints the JSON result and exits 0 or 1.
 */
export async function runCase({ script, cases, makeRun, hardMs, chromiumArgs = CHROMIUM_ARGS }) {
  const name = process.argv[2];
  if (!cases[name]) {
    console.error(`usage: node ${script} CASE\ncases: ${Object.keys(cases).join(', ')}`);
    process.exit(2);
  }
  const run = makeRun(name);
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
    finish(false, new Error(`hard timeout after ${hardMs / 1000} s`));
  }, hardMs).unref();

  try {
    await run.startGateway();
    run.browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: chromiumArgs, timeout: 20_000 });
    await cases[name](run);
    await finish(true);
  } catch (error) {
    await finish(false, error);
  }
}
