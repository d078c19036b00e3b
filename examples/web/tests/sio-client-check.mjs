// Checks Switchboard's own socket.io client (daemon/assets/socket.io.js) against the
// reference node server, socket.io@4, which speaks the same protocol as the gateway
// (engine.io v4 + socket.io v5). Also pairs it with the official socket.io-client v4.
//
//   node examples/web/tests/sio-client-check.mjs      (from the repo root, after npm ci)
//
// Needs from the repo's package.json: socket.io@4, socket.io-client@4, ws@8.
// The client is loaded as the browser would load it (a plain script defining a global
// `io`), with the `ws` package standing in for the browser's WebSocket.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import vm from 'node:vm';
import { Server } from 'socket.io';
import { io as officialIo } from 'socket.io-client';
import WebSocket from 'ws';

const clientPath = process.env.SB_SIO_CLIENT ||
  new URL('../../../daemon/assets/socket.io.js', import.meta.url).pathname;
globalThis.WebSocket = WebSocket;
vm.runInThisContext(readFileSync(clientPath, 'utf8'), { filename: clientPath });
// Every socket a test makes is recorded so that a failed test cannot leave one reconnecting.
const made = [];
const io = (...args) => { const s = globalThis.io(...args); made.push(s); return s; };
io.connect = io;
// Last resort if something still keeps the event loop alive.
setTimeout(() => { console.error('sio-client-check: hung, exiting'); process.exit(1); }, 120000).unref();

// ---- the reference server: two-peer rooms like the gateway's socket.io listener ----
const http = createServer();
const server = new Server(http, { pingInterval: 300, pingTimeout: 200 });
let middlewareHits = 0;
const serverSockets = new Map(); // sid -> server socket
server.use((socket, next) => {
  middlewareHits++;
  if (socket.handshake.query.room === 'full') {
    const err = new Error('room full');
    err.data = { code: 'room-full' };
    return next(err);
  }
  next();
});
server.on('connection', (socket) => {
  const room = socket.handshake.query.room || 'default';
  socket.join(room);
  serverSockets.set(socket.id, socket);
  socket.on('msg', (m) => socket.to(room).emit('msg', m));
  socket.on('echo', (...args) => { const cb = args.pop(); cb(...args); });
  socket.on('query', (cb) => cb(socket.handshake.query));
  socket.on('kick', () => socket.disconnect(true));
  socket.on('drop', () => socket.conn.close()); // transport close without a socket.io goodbye
  socket.on('ask', async () => {
    const reply = await socket.timeout(2000).emitWithAck('question', 41);
    socket.emit('answer', reply);
  });
});
await new Promise((r) => http.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${http.address().port}`;

const once = (sock, ev, ms = 4000) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`timeout waiting for ${ev}`)), ms);
  sock.once(ev, (...a) => { clearTimeout(t); resolve(a.length > 1 ? a : a[0]); });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Realistic signaling strings, plus characters that break naive (de)serializers.
const payloads = [
  JSON.stringify({ sdp: { type: 'offer', sdp: 'v=0\r\no=- 3057583230842636777 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' } }),
  JSON.stringify({ candidate: { candidate: 'candidate:2265954965 1 udp 2122194687 192.0.2.2 51121 typ host generation 0 ufrag hFtG network-id 1', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'hFtG' } }),
  '{"odd" : [1,2 ,3], "u":"\\u00e9\u00e9 \u2028 \ud83d\ude00 \\"q\\" \\\\ </script>"}',
  'not json at all',
  '',
];

test('connects, exposes id, and relays msg strings byte-identical both ways', async () => {
  const a = io(url, { query: { room: 'r1' } });
  const b = io.connect(url, { query: { room: 'r1' } });
  await Promise.all([once(a, 'connect'), once(b, 'connect')]);
  assert.equal(a.connected, true);
  assert.ok(serverSockets.has(a.id) && serverSockets.has(b.id), 'id is the server socket id');
  for (const p of payloads) {
    const got = once(b, 'msg');
    a.emit('msg', p);
    assert.equal(await got, p);
    const back = once(a, 'msg');
    b.emit('msg', p);
    assert.equal(await back, p);
  }
  a.disconnect(); b.disconnect();
});

test('emits before connect are buffered and flushed in order', async () => {
  const b = io(url, { query: { room: 'r2' } });
  await once(b, 'connect');
  const got = [];
  b.on('msg', (m) => got.push(m));
  const a = io(url, { query: { room: 'r2' } });
  assert.equal(a.connected, false);
  a.emit('msg', 'first'); a.emit('msg', 'second');
  await once(a, 'connect');
  await sleep(200);
  assert.deepEqual(got, ['first', 'second']);
  a.close(); b.close();
});

test('query from url and opts merged, EIO=4 and websocket transport', async () => {
  const a = io(`${url}/?room=r3&x=1`, { query: { y: '2' } });
  a.emit('query', () => {}); // queued with an ack before connect
  const q = await new Promise((r) => a.emit('query', r));
  assert.equal(q.room, 'r3'); assert.equal(q.x, '1'); assert.equal(q.y, '2');
  assert.equal(q.EIO, '4'); assert.equal(q.transport, 'websocket');
  a.disconnect();
  const b = io(url, { query: 'room=r3b&z=3' }); // query as a string
  const qb = await new Promise((r) => b.emit('query', r));
  assert.equal(qb.room, 'r3b'); assert.equal(qb.z, '3');
  b.disconnect();
});

test('acks in both directions', async () => {
  const a = io(url, { query: { room: 'r4' } });
  const echoed = await new Promise((r) => a.emit('echo', 'x', { n: 1 }, (...args) => r(args)));
  assert.deepEqual(echoed, ['x', { n: 1 }]);
  a.on('question', (n, cb) => cb(n + 1));
  a.emit('ask');
  assert.equal(await once(a, 'answer'), 42);
  a.disconnect();
});

test('connect_error from a middleware carries the message and does not retry', async () => {
  const before = middlewareHits;
  let conn = null;
  server.engine.once('connection', (c) => { conn = c; });
  const c = io(url, { query: { room: 'full' } });
  const err = await once(c, 'connect_error');
  assert.ok(err instanceof Error);
  assert.equal(err.message, 'room full');
  assert.deepEqual(err.data, { code: 'room-full' });
  await sleep(1500);
  assert.equal(middlewareHits - before, 1, 'no reconnection after a refused connect');
  assert.equal(c.connected, false);
  assert.equal(conn && conn.readyState, 'closed', 'the client closed the refused transport');
});

test('server disconnect fires "io server disconnect" and does not retry', async () => {
  const a = io(url, { query: { room: 'r5' } });
  await once(a, 'connect');
  const before = middlewareHits;
  a.emit('kick');
  assert.equal(await once(a, 'disconnect'), 'io server disconnect');
  await sleep(1500);
  assert.equal(a.connected, false);
  assert.equal(middlewareHits, before);
});

test('client disconnect is seen by the server', async () => {
  const a = io(url, { query: { room: 'r6' } });
  await once(a, 'connect');
  const reason = new Promise((r) => serverSockets.get(a.id).on('disconnect', r));
  const local = once(a, 'disconnect');
  a.disconnect();
  assert.equal(await local, 'io client disconnect');
  assert.equal(await reason, 'client namespace disconnect');
});

test('stays connected across engine.io pings (pong replies)', async () => {
  const a = io(url, { query: { room: 'r7' } });
  await once(a, 'connect');
  let dropped = false;
  a.on('disconnect', () => { dropped = true; });
  await sleep(1200); // pingInterval 300 ms + pingTimeout 200 ms on the server
  assert.equal(dropped, false);
  assert.equal(a.connected, true);
  a.disconnect();
});

test('transport close fires "transport close" and reconnects after ~1 s', async () => {
  const a = io(url, { query: { room: 'r8' } });
  await once(a, 'connect');
  const firstId = a.id;
  a.emit('drop');
  assert.equal(await once(a, 'disconnect'), 'transport close');
  const t0 = Date.now();
  await once(a, 'connect', 5000);
  const waited = Date.now() - t0;
  assert.ok(waited >= 800 && waited < 3000, `reconnected after ${waited} ms`);
  assert.notEqual(a.id, firstId);
  a.disconnect();
});

test('gives up after reconnectionAttempts with backoff 1 s, 2 s', async () => {
  const dead = createServer();
  await new Promise((r) => dead.listen(0, '127.0.0.1', r));
  const deadUrl = `http://127.0.0.1:${dead.address().port}`;
  await new Promise((r) => dead.close(r)); // nothing listens there now
  const errors = [];
  const t0 = Date.now();
  const a = io(deadUrl, { reconnectionAttempts: 2 });
  a.on('connect_error', (e) => errors.push(e.message));
  await once(a, 'reconnect_failed', 8000);
  const took = Date.now() - t0;
  assert.deepEqual(errors, ['websocket error', 'websocket error', 'websocket error']);
  assert.ok(took >= 2900 && took < 5000, `gave up after ${took} ms`);
  const b = io(deadUrl, { reconnection: false });
  await once(b, 'connect_error');
  b.on('connect_error', () => assert.fail('retried with reconnection:false'));
  await sleep(1500);
});

test('pairs with the official socket.io-client v4, strings byte-identical', async () => {
  const ours = io(url, { query: { room: 'r9' } });
  const theirs = officialIo(url, { query: { room: 'r9' }, transports: ['websocket'] });
  await Promise.all([once(ours, 'connect'), once(theirs, 'connect')]);
  for (const p of payloads) {
    const got = once(theirs, 'msg');
    ours.emit('msg', p);
    assert.equal(await got, p);
    const back = once(ours, 'msg');
    theirs.emit('msg', p);
    assert.equal(await back, p);
  }
  ours.disconnect(); theirs.disconnect();
});

test('defaults the url to location.origin', async () => {
  globalThis.location = new URL(url + '/peer.html?room=ignored');
  try {
    const a = io({ query: { room: 'r10' } });
    const q = await new Promise((r) => a.emit('query', r));
    assert.equal(q.room, 'r10');
    a.disconnect();
  } finally {
    delete globalThis.location;
  }
});

test.after(async () => {
  made.forEach((s) => s.disconnect());
  server.close();
  http.closeAllConnections?.();
});
