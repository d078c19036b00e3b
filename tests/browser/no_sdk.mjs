// The demo pages on a gateway whose [web] node_modules_dir is an empty directory (a checkout
// where `npm ci` was never run): each page that loads an SDK from /node_modules/ shows, on the
// page, that it did not load and that `npm ci` is what to run; the gateway's start-up log says
// so exactly once. Runs the real `switchboard` binary and headless Chromium.
// Prints one JSON result line; exit 0 or 1. On failure, screenshots in tests/artifacts/no_sdk/.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, ROOT, freePort, plain, sleep } from './lib.mjs';

const PAGES = [
  { path: '/ant.html?room=nosdk-a', sdk: '@antmedia/webrtc_adaptor' },
  { path: '/conference.html?room=nosdk-c', sdk: '@antmedia/webrtc_adaptor' },
  { path: '/raw.html?room=nosdk-r', sdk: 'simple-peer' },
  { path: '/socketio.html?room=nosdk-s&v=2', sdk: 'socket.io-client-v2' },
  { path: '/peerjs.html?call=nosdk-p', sdk: 'peerjs' },
];
const LOG_LINE = 'Demo pages: node_modules_dir';
const deadline = setTimeout(() => finish(false, 'deadline of 60 s passed'), 60_000);
const temp = mkdtempSync(join(tmpdir(), 'sb-nosdk-'));
const artifacts = join(ROOT, 'tests/artifacts/no_sdk');
const gatewayLog = [];
const checks = [];
let gateway = null;
let browser = null;

async function finish(ok, error) {
  clearTimeout(deadline);
  if (browser) await browser.close().catch(() => {});
  if (gateway) gateway.kill('SIGKILL');
  if (!ok) {
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(join(artifacts, 'gateway.log'), gatewayLog.join('\n'));
  }
  rmSync(temp, { recursive: true, force: true });
  console.log(JSON.stringify({ case: 'no_sdk', ok, error, checks }));
  process.exit(ok ? 0 : 1);
}

async function startGateway() {
  const bin = resolve(process.env.SWITCHBOARD_BIN || join(ROOT, 'target/debug/switchboard'));
  if (!existsSync(bin)) throw new Error(`no gateway binary at ${bin}`);
  const port = await freePort();
  const empty = join(temp, 'node_modules');
  mkdirSync(empty);
  const config = `[[listener]]\nbind = "127.0.0.1:${port}"\npages = "demo"\n\n`
    + `[web]\nnode_modules_dir = ${JSON.stringify(empty)}\n\n[shutdown]\ngrace_period_secs = 1\n\n`
    + `[[plugin]]\ntype = "room-router"\n`;
  writeFileSync(join(temp, 'switchboard.toml'), config);
  gateway = spawn(bin, ['--config', join(temp, 'switchboard.toml')], {
    cwd: temp,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' },
  });
  const keep = (chunk) => gatewayLog.push(...plain(chunk.toString()).split('\n').filter(Boolean));
  gateway.stdout.on('data', keep);
  gateway.stderr.on('data', keep);
  const exited = new Promise((res) => gateway.on('exit', res));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch { /* not up yet */ }
    if (i > 100) throw new Error('the gateway did not answer /healthz within 10 s');
    await sleep(100);
  }
  return { base, exited };
}

try {
  const { base, exited } = await startGateway();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  for (const { path, sdk } of PAGES) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(base + path, { timeout: 15_000 });
    let text;
    try {
      const box = page.locator('#sdk-missing');
      await box.waitFor({ state: 'visible', timeout: 15_000 });
      text = await box.innerText();
    } catch (e) {
      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, `${path.slice(1).split('?')[0]}.png`) });
      throw new Error(`${path}: no visible #sdk-missing message (${plain(e.message).split('\n')[0]})`);
    }
    if (!text.includes('npm ci') || !text.includes(sdk.split('/')[0].replace('-v2', ''))) {
      throw new Error(`${path}: the message does not name npm ci and ${sdk}: ${text}`);
    }
    checks.push(`${path}: ${text.slice(0, 60)}…`);
    await context.close();
  }
  // A clean stop, then count the start-up line in the whole log.
  gateway.kill('SIGTERM');
  await exited;
  gateway = null;
  const lines = gatewayLog.filter((l) => l.includes(LOG_LINE));
  if (lines.length !== 1) throw new Error(`start-up log has ${lines.length} "${LOG_LINE}" lines, want 1`);
  if (!lines[0].includes('npm ci')) throw new Error(`the log line does not say npm ci: ${lines[0]}`);
  checks.push(`log: ${lines[0].slice(0, 120)}`);
  await finish(true);
} catch (e) {
  await finish(false, String(e && e.message || e));
}
