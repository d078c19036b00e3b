// The admin dashboard in headless Chromium: the real `switchboard` binary runs with an admin
// token on a free loopback port; node clients of all three dialects (`ws` for Ant Media and raw,
// socket.io-client v4) join two rooms and keep sending; the page (served by the gateway at
// /admin/) is signed in with the token and must show the rooms, every peer with its dialect,
// non-zero message rates, a newcomer within a poll or two, and a session kicked with its button
// disappearing. Run by tests/tests/browser_admin.rs; by hand, from the repository root:
//
//   cargo build --workspace
//   node tests/browser/dashboard.mjs
//   SB_DASHBOARD_SCREENSHOT=docs/dashboard.png node tests/browser/dashboard.mjs   # the README picture
//
// It prints one JSON result line and exits 0 or 1; on failure the gateway log, the page console
// and a screenshot are in tests/artifacts/dashboard/. Every wait is bounded; the gateway,
// clients and browser are stopped on every path.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort } from './lib.mjs';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACTS = join(ROOT, 'tests/artifacts/dashboard');
const TOKEN = 'dashboard-test-token-0123456789';
const WAIT_MS = 15_000;
const HARD_MS = 60_000;
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const steps = [];
const note = (what) => steps.push(`+${((Date.now() - t0) / 1000).toFixed(2)}s ${what}`);

let gateway = null;
const gatewayLog = [];
const consoleLog = [];
const clients = [];
const timers = [];
let browser = null;
let page = null;
let tempDir = null;

async function startGateway() {
  const bin = process.env.SWITCHBOARD_BIN || join(ROOT, 'target/debug/switchboard');
  if (!existsSync(bin)) throw new Error(`no gateway binary at ${bin}: run cargo build --workspace first`);
  const port = await freePort();
  tempDir = mkdtempSync(join(tmpdir(), 'sb-dashboard-'));
  const config = `
[[listener]]
bind = "127.0.0.1:${port}"
dialects = ["antmedia", "socketio", "raw"]
pages = "none"

[admin]
token = "${TOKEN}"

[shutdown]
grace_period_secs = 2

[[plugin]]
type = "room-router"
`;
  writeFileSync(join(tempDir, 'switchboard.toml'), config);
  gateway = spawn(bin, ['--config', join(tempDir, 'switchboard.toml')], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' },
  });
  for (const stream of [gateway.stdout, gateway.stderr]) {
    createInterface({ input: stream }).on('line', (l) => gatewayLog.push(l));
  }
  gateway.on('exit', () => { gateway = null; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!gateway) throw new Error('the gateway exited at start-up');
    try {
      if ((await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error('the gateway did not come up within 10 s');
    await sleep(100);
  }
  note(`gateway up at ${base}`);
  return base;
}

/** A plain WebSocket client that waits until open. */
function wsClient(url) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url);
    clients.push({ close: () => ws.terminate() });
    ws.on('open', () => res(ws));
    ws.on('error', rej);
  });
}

/** Peers of all three dialects in two rooms, each sending a few messages a second. */
async function startPeers(base) {
  const wsBase = base.replace('http', 'ws');
  const ant = await wsClient(`${wsBase}/LiveApp/websocket`);
  ant.send(JSON.stringify({ command: 'join', streamId: 'lobby', mode: 'both' }));
  const raw1 = await wsClient(`${wsBase}/ws/lobby`);
  const sio = io(base, { forceNew: true, reconnection: false, transports: ['websocket'], query: { room: 'classic' } });
  clients.push({ close: () => sio.close() });
  await new Promise((res, rej) => { sio.on('connect', res); sio.on('connect_error', rej); });
  const raw2 = await wsClient(`${wsBase}/ws/classic`);
  // Traffic: candidates both ways in each room, so every dialect has messages in and out.
  const candidate = { candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
  timers.push(setInterval(() => {
    ant.send(JSON.stringify({ command: 'takeCandidate', streamId: 'lobby', label: 0, id: '0', candidate: candidate.candidate }));
    raw1.send(JSON.stringify({ type: 'candidate', candidate }));
    sio.emit('msg', JSON.stringify({ candidate }));
    raw2.send(JSON.stringify({ type: 'candidate', candidate }));
  }, 200));
  note('peers connected: Ant + raw in lobby, socket.io + raw in classic');
  return { wsBase };
}

/** Waits until `predicate(arg)` is true in the page (polling), or fails with `label`. */
async function until(label, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 200 });
  } catch (e) {
    const state = await page.evaluate(() => JSON.stringify({
      text: document.body.innerText.slice(0, 2000), dash: window.sbDashboard,
    })).catch(() => 'unavailable');
    throw new Error(`waiting for ${label}: ${String(e.message).split('\n')[0]}; page: ${state}`);
  }
  note(label);
}

async function main() {
  const base = await startGateway();
  const { wsBase } = await startPeers(base);
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, timeout: 20_000 });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.on('console', (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.stack || e}`));
  await page.goto(`${base}/admin/`, { timeout: WAIT_MS });

  // A wrong token is refused and the form comes back.
  await page.fill('#token', 'not-the-token-0123456789');
  await page.click('#sign-in');
  await until('a wrong token sends the user back to the form',
    () => !document.getElementById('login').classList.contains('hidden')
      && document.getElementById('login-error').textContent.includes('refused'));

  await page.fill('#token', TOKEN);
  await page.click('#sign-in');
  await until('the rooms with their peers and dialects', () => {
    const rows = [...document.querySelectorAll('#rooms tr[data-room]')];
    const text = (room) => rows.find((r) => r.dataset.room === room)?.innerText || '';
    return rows.length === 2 && /antmedia/.test(text('lobby')) && /raw/.test(text('lobby'))
      && /socketio/.test(text('classic')) && /raw/.test(text('classic'));
  });
  await until('four sessions listed', () => document.querySelectorAll('#sessions tr[data-session]').length === 4);
  await until('non-zero message rates for every dialect', () => {
    const r = window.sbDashboard.rates;
    return ['antmedia', 'socketio', 'raw'].every((d) => r[d] && r[d].in > 0 && r[d].out > 0);
  });
  const token = await page.evaluate(() => sessionStorage.getItem('switchboard.admin.token'));
  if (token !== TOKEN) throw new Error('the token is not kept in sessionStorage');
  note('the token is kept in sessionStorage');

  // Live: a newcomer shows up without a reload.
  await wsClient(`${wsBase}/ws/newcomer`);
  await until('a newcomer appears live', () => !!document.querySelector('#rooms tr[data-room="newcomer"]'));

  const shot = join(ARTIFACTS, 'dashboard.png');
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  if (process.env.SB_DASHBOARD_SCREENSHOT) {
    await page.screenshot({ path: resolve(ROOT, process.env.SB_DASHBOARD_SCREENSHOT), fullPage: true });
    note(`screenshot saved to ${process.env.SB_DASHBOARD_SCREENSHOT}`);
  }

  // Kick the newcomer with its button.
  const id = await page.evaluate(() => {
    const row = [...document.querySelectorAll('#sessions tr[data-session]')].find((r) => r.innerText.includes('newcomer'));
    return row && row.dataset.session;
  });
  if (!id) throw new Error('the newcomer has no session row');
  await page.click(`button[data-kick="${id}"]`);
  await until('the kicked session disappears', (sid) => !document.querySelector(`#sessions tr[data-session="${sid}"]`), id);
}

async function cleanup() {
  for (const t of timers) clearInterval(t);
  for (const c of clients) { try { c.close(); } catch { /* gone */ } }
  if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
  if (gateway) {
    const gw = gateway;
    const exited = new Promise((r) => gw.once('exit', r));
    gw.kill('SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]))) gw.kill('SIGKILL');
  }
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
}

let finished = false;
async function finish(ok, error) {
  if (finished) return;
  finished = true;
  if (!ok) {
    mkdirSync(ARTIFACTS, { recursive: true });
    if (page) await page.screenshot({ path: join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
    writeFileSync(join(ARTIFACTS, 'gateway.log'), gatewayLog.join('\n') + '\n');
    writeFileSync(join(ARTIFACTS, 'console.log'), consoleLog.join('\n') + '\n');
    writeFileSync(join(ARTIFACTS, 'steps.log'), steps.join('\n') + '\n');
    console.error(`FAIL dashboard: ${error && error.stack ? error.stack : error}`);
    console.error(`--- steps\n${steps.join('\n')}\n--- page console\n${consoleLog.slice(-20).join('\n')}\n--- gateway (last 20)\n${gatewayLog.slice(-20).join('\n')}`);
  }
  await cleanup();
  console.log(JSON.stringify({ case: 'dashboard', ok, ms: Date.now() - t0, steps, ...(error ? { error: String(error.message || error) } : {}) }));
  process.exit(ok ? 0 : 1);
}

process.on('exit', () => gateway?.kill('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));
setTimeout(() => {
  setTimeout(() => process.exit(1), 15_000).unref();
  finish(false, new Error(`hard timeout after ${HARD_MS / 1000} s`));
}, HARD_MS).unref();

try {
  await main();
  await finish(true);
} catch (error) {
  await finish(false, error);
}
