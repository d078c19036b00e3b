// Records what the real `peerjs` 1.5 client and the real `peer` server (npm) say to each other,
// for the PeerJS golden files in protocol/tests/golden/peerjs/. Two examples/web/peerjs.html
// pages in headless Chromium: `bob` registers, `alice` calls him with media and a JSON data
// connection; every WebSocket frame the server receives and sends is written, in order, to the
// JSON file named on the command line. From the repository root:
//
//   unshare -n sh -c 'ip link set lo up && exec node tests/browser/peerjs_record.mjs /tmp/peerjs-frames.json'
//
// Then copy the frames worth keeping into golden cases (see protocol/tests/golden/README.md).
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import express from 'express';
import { ExpressPeerServer } from 'peer';
import { chromium } from 'playwright-core';
import { WebSocketServer } from 'ws';
import { CHROMIUM_ARGS, ROOT, freePort, sleep } from './lib.mjs';

const out = process.argv[2];
if (!out) {
  console.error('usage: node tests/browser/peerjs_record.mjs OUT.json');
  process.exit(2);
}
const HARD_MS = 60_000;
setTimeout(() => { console.error('hard timeout'); process.exit(1); }, HARD_MS).unref();

const frames = [];
const app = express();
const server = createServer(app);
const peerServer = ExpressPeerServer(server, {
  path: '/',
  createWebSocketServer: (options) => {
    const wss = new WebSocketServer(options);
    wss.on('connection', (socket, req) => {
      const id = new URL(req.url, 'http://x').searchParams.get('id');
      frames.push({ dir: 'url', id, text: req.url });
      const send = socket.send.bind(socket);
      socket.send = (data, ...rest) => { frames.push({ dir: 'out', id, text: String(data) }); return send(data, ...rest); };
      socket.on('message', (data) => frames.push({ dir: 'in', id, text: data.toString() }));
    });
    return wss;
  },
});
const page = readFileSync(join(ROOT, 'examples/web/peerjs.html'), 'utf8');
app.get('/peerjs.html', (_, res) => res.type('html').send(page));
app.get('/sdk-missing.js', (_, res) => res.type('js').send(readFileSync(join(ROOT, 'examples/web/sdk-missing.js'))));
app.use('/node_modules', express.static(join(ROOT, 'node_modules')));
app.use('/', peerServer);
const port = await freePort();
await new Promise((r) => server.listen(port, '127.0.0.1', r));
const base = `http://127.0.0.1:${port}`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true, timeout: 20_000,
  args: [...CHROMIUM_ARGS, '--allow-loopback-in-peer-connection'],
});
const open = async (query) => {
  const p = await (await browser.newContext()).newPage();
  p.on('console', (m) => console.error(`[${query}] ${m.text()}`));
  await p.goto(`${base}/peerjs.html?${query}`);
  return p;
};
const until = (p, fn) => p.waitForFunction(fn, null, { timeout: 30_000, polling: 200 });
try {
  const bob = await open('id=bob');
  await until(bob, () => window.sb && window.sb.open);
  const alice = await open('id=alice&call=bob&data=1');
  const inCall = () => ['connected', 'completed'].includes(window.sb.ice) && window.sbRemoteWidth() > 0;
  await Promise.all([until(alice, inCall), until(bob, inCall)]);
  await Promise.all([until(alice, () => window.sb.data.length > 0), until(bob, () => window.sb.data.length > 0)]);
  // A heartbeat (every 5 s) and an id from the REST side.
  await sleep(5500);
  frames.push({ dir: 'http', id: null, text: await (await fetch(`${base}/peerjs/id`)).text() });
  writeFileSync(out, JSON.stringify(frames, null, 1) + '\n');
  console.log(`${frames.length} frames written to ${out}`);
} finally {
  await browser.close().catch(() => {});
  server.close();
  process.exit(0);
}
