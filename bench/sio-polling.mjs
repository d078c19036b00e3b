// socket.io-client 4 (or 2) pinned to long-polling (`transports: ["polling"]`, what a client
// behind a proxy without WebSocket gets), both sides of every pair: each sender emits MESSAGES
// 6 KB offers at once, its partner counts them. Prints one JSON line: delivered, sent, out of
// order, seconds from the first emit to the last delivery, messages per second, and the
// longest the process's event loop was held (`max_lag_ms`). Run it
// against the node relay (bench/node-relay/app.js) and the gateway alike; loopback only,
// bounded in time. CLIENT is `v4` (socket.io-client 4) or `v2` (socket.io-client 2.5);
// TRANSPORTS is `polling` (pinned), `default` (long-polling, then the upgrade), `websocket`
// (a WebSocket at once) or, for v2, `late-upgrade` (default options, but the client's own upgrade
// probe starts only once the bursts are emitted: the upgrade happens during the burst). MODE `duplex` has both peers of a pair send their burst to each other
// at once (each counts the other's); `oneway` (the default) has one sender per pair.
//
//   node bench/sio-polling.mjs URL [PAIRS] [MESSAGES] [LABEL] [CLIENT] [TRANSPORTS] [MODE]
import { createRequire } from 'node:module';
import { io as ioV4 } from 'socket.io-client';

const [url, pairsArg = '10', messagesArg = '500', label = url, client = 'v4', transports = 'polling',
  mode = 'oneway'] = process.argv.slice(2);
const DUPLEX = mode === 'duplex';
const io = client === 'v2' ? createRequire(import.meta.url)('socket.io-client-v2') : ioV4;
const TRANSPORTS = { polling: ['polling'], websocket: ['websocket'] }[transports];
const LATE_UPGRADE = transports === 'late-upgrade';
const PAIRS = Number(pairsArg);
const MESSAGES = Number(messagesArg);
const DEADLINE_MS = 120000;

const PADDING = Array.from({ length: 60 }, (_, i) =>
  `a=candidate:${1000 + i} 1 udp 2122260223 192.0.2.${i % 250} ${40000 + i} typ host generation 0`).join('\r\n');
const offer = (seq) => JSON.stringify({ sdp: { type: 'offer', sdp: `v=0\r\na=x-seq:${seq}\r\n${PADDING}\r\n` } });
const seqOf = (msg) => Number(/a=x-seq:(\d+)/.exec(msg)?.[1] ?? -1);

const connect = (room) => new Promise((resolve, reject) => {
  const socket = io(url, {
    forceNew: true, reconnection: false, transports: TRANSPORTS, query: { room }, upgrade: !LATE_UPGRADE,
  });
  socket.once('connect', () => resolve(socket));
  socket.once('connect_error', reject);
});

// The longest the event loop was held (a timer 50 ms apart came late by this much): the 40
// peers of a 20-pair duplex run share this one process, and a peer that reads nothing for
// `write_timeout_secs` is closed by the gateway as one that stopped reading.
let maxLagMs = 0;
let tick = Date.now();
setInterval(() => {
  const now = Date.now();
  maxLagMs = Math.max(maxLagMs, now - tick - 50);
  tick = now;
}, 50).unref();

const timer = setTimeout(() => {
  console.error('sio-polling: deadline passed');
  process.exit(1);
}, DEADLINE_MS);

const pairs = [];
for (let p = 0; p < PAIRS; p++) {
  const room = `poll-bench-${process.pid}-${p}`;
  const a = await connect(room);
  const b = await connect(room);
  pairs.push({ a, b });
}
// Both peers of every pair are in their room (the node relay has no notice to wait for).
await new Promise((r) => setTimeout(r, 500));

let delivered = 0;
let outOfOrder = 0;
const start = process.hrtime.bigint();
let last = start;
/** Yields to the event loop: reads, timers and the clients' own flushes run. */
const breathe = () => new Promise((r) => setImmediate(r));
/** Emits `from`'s burst at once as far as its peer can tell, SLICE offers per turn of the event
 * loop, so that one process's peers go on reading meanwhile, as peers in processes of their own
 * do: emitted in one synchronous loop, 40 peers' bursts held the loop 20-25 s on a loaded
 * machine, past the gateway's write timeout (BENCHMARKS.md). */
const SLICE = 50;
const emitAll = async (from) => {
  for (let seq = 1; seq <= MESSAGES; seq++) {
    from.emit('msg', offer(seq));
    if (seq % SLICE === 0) await breathe();
  }
};
const emitted = [];
/** `to` counts `from`'s burst of MESSAGES offers; resolves once all arrived. */
const burst = (from, to) => new Promise((resolve) => {
  let expected = 1;
  to.on('msg', (msg) => {
    if (seqOf(msg) !== expected) outOfOrder++;
    expected++;
    delivered++;
    last = process.hrtime.bigint();
    if (expected > MESSAGES) resolve();
  });
  emitted.push(emitAll(from));
});
const done = pairs.flatMap(({ a, b }) => (DUPLEX ? [burst(a, b), burst(b, a)] : [burst(a, b)]));
if (LATE_UPGRADE) {
  await Promise.all(emitted);
  for (const { a, b } of pairs) for (const s of [a, b]) s.io.engine.probe('websocket');
}
await Promise.race([Promise.all(done), new Promise((r) => setTimeout(r, DEADLINE_MS - 10000))]);
const secs = Number(last - start) / 1e9;
console.log(JSON.stringify({
  scenario: `burst-${client}-${transports}${DUPLEX ? '-duplex' : ''}`, server: label, pairs: PAIRS,
  messages: MESSAGES, sent: PAIRS * MESSAGES * (DUPLEX ? 2 : 1), delivered, out_of_order: outOfOrder,
  secs, msgs_per_sec: delivered / secs, max_lag_ms: maxLagMs,
}));
for (const { a, b } of pairs) { a.close(); b.close(); }
clearTimeout(timer);
setTimeout(() => process.exit(0), 50);
