// Nothing lost under a burst (issue 17): real clients of every dialect send 6 KB offers as fast
// as their client lets them, and the partner gets every one, in order. socket.io clients use
// their DEFAULT options (engine.io long-polling first, then the upgrade). Counts only, no timing.
//
//   node tests/node/burst.mjs MAIN_URL SCENARIO
//
// SCENARIO:
//   burst       every client kind: 2 pairs, each sender sends MESSAGES offers at once
//   pause       the receiver stops reading for 2 s in the middle of a burst: nothing lost
//   duplex      both peers of a pair send a burst to each other at once and read normally:
//               with both queues full, neither session may wait on the other forever
//   never-reads the receiver never reads: the gateway closes it after write_timeout_secs, its
//               partner is told (peer-left), and the sender's session goes on
import assert from 'node:assert/strict';
import {
  OFFER_SDP, WsPeer, arg, check, run, sioPair, sioV2, sioV4, sleep, uniqueRoom,
} from './lib.mjs';

const MESSAGES = 1500;
/** How long a receiver waits for the next message of a burst before counting the rest lost. */
const GAP_MS = 15000;

/** A Chrome-like offer padded with candidate lines to about 6 KB, numbered by `a=x-seq`. */
const PADDING = Array.from({ length: 60 }, (_, i) =>
  `a=candidate:${1000 + i} 1 udp 2122260223 192.0.2.${i % 250} ${40000 + i} typ host generation 0`).join('\r\n');
const offer = (seq) => `${OFFER_SDP}a=x-seq:${seq}\r\n${PADDING}\r\n`;
const seqOf = (sdp) => Number(/a=x-seq:(\d+)/.exec(sdp)?.[1] ?? -1);

// ------------------------------------------------------------------ one interface per kind

/** A pair of one client kind: `send(seq)`, `next()` -> seq, pause/resume of the receiver. */
async function sioKind(make, url, label, transports, upgrade) {
  const room = uniqueRoom('burst-sio');
  const [a, b] = await sioPair(
    room,
    () => make(`${label} A`, url, { room, transports, upgrade }),
    () => make(`${label} B`, url, { room, transports, upgrade }),
  );
  return {
    label,
    sender: a,
    receiver: b,
    send: (seq) => a.send(JSON.stringify({ sdp: { type: 'offer', sdp: offer(seq) } })),
    next: async (ms) => seqOf(JSON.parse(await b.msg(ms)).sdp.sdp),
    sendBack: (seq) => b.send(JSON.stringify({ sdp: { type: 'offer', sdp: offer(seq) } })),
    nextBack: async (ms) => seqOf(JSON.parse(await a.msg(ms)).sdp.sdp),
    // The engine.io client's WebSocket (after the upgrade) is a `ws` socket in node.
    pause: async () => {
      await b.upgraded();
      b.socket.io.engine.transport.ws._socket.pause();
    },
    resume: () => b.socket.io.engine.transport.ws._socket.resume(),
    // Messages sent after the partner left are answered `no_peer`, which may come first.
    partnerLeft: async () => {
      for (;;) {
        const notice = await a.notice(GAP_MS);
        if (notice.type === 'peer-left') return;
        assert.equal(notice.code, 'no_peer', JSON.stringify(notice));
      }
    },
    goesOn: async () => {
      a.send(JSON.stringify({ sdp: { type: 'offer', sdp: offer(0) } }));
      await a.expectNotice({ type: 'error', code: 'no_peer' }, GAP_MS);
    },
    close: () => { a.close(); b.close(); },
  };
}

async function rawKind(wsBase) {
  const room = uniqueRoom('burst-raw');
  const a = await WsPeer.connect('raw A', `${wsBase}/ws/${room}`);
  await a.expectJson({ type: 'switchboard.joined', room }, 'joined');
  const b = await WsPeer.connect('raw B', `${wsBase}/ws/${room}`);
  await b.expectJson({ type: 'switchboard.joined', room }, 'joined');
  await b.expectJson({ type: 'switchboard.peer-joined', room }, 'peer-joined');
  await a.expectJson({ type: 'switchboard.start', room }, 'start');
  return {
    label: 'raw (ws)',
    sender: a,
    receiver: b,
    send: (seq) => a.send({ type: 'offer', sdp: offer(seq) }),
    next: async (ms) => seqOf((await b.json(ms)).sdp),
    sendBack: (seq) => b.send({ type: 'offer', sdp: offer(seq) }),
    nextBack: async (ms) => seqOf((await a.json(ms)).sdp),
    pause: async () => b.ws._socket.pause(),
    resume: () => b.ws._socket.resume(),
    partnerLeft: async () => {
      for (;;) {
        const frame = await a.json(GAP_MS);
        if (frame.type === 'switchboard.peer-left') return;
      }
    },
    goesOn: async () => {
      a.send({ type: 'offer', sdp: offer(0) });
      const frame = await a.json(GAP_MS);
      assert.equal(frame.type, 'switchboard.error', JSON.stringify(frame).slice(0, 200));
      assert.equal(frame.code, 'no_peer');
    },
    close: () => { a.close(); b.close(); },
  };
}

async function antKind(wsBase) {
  const room = uniqueRoom('burst-ant');
  const join = { command: 'join', streamId: room, multiPeer: false, mode: 'both' };
  const a = await WsPeer.connect('ant A', `${wsBase}/LiveApp/websocket`);
  a.send(join);
  assert.equal((await a.json()).definition, 'joined');
  const b = await WsPeer.connect('ant B', `${wsBase}/LiveApp/websocket`);
  b.send(join);
  assert.equal((await b.json()).definition, 'joined');
  assert.equal((await a.json()).command, 'start');
  return {
    label: 'Ant takeConfiguration (ws)',
    sender: a,
    receiver: b,
    send: (seq) => a.send({ command: 'takeConfiguration', streamId: room, type: 'offer', sdp: offer(seq) }),
    next: async (ms) => seqOf((await b.json(ms)).sdp),
    pause: async () => b.ws._socket.pause(),
    resume: () => b.ws._socket.resume(),
    close: () => { a.close(); b.close(); },
  };
}

/** Every kind, by name. */
function kinds(url) {
  const wsBase = url.replace(/^http/, 'ws');
  return {
    'socket.io-client 4, default options': () => sioKind(sioV4, url, 'socket.io-client 4 (default)'),
    'socket.io-client 2, default options': () => sioKind(sioV2, url, 'socket.io-client 2 (default)'),
    // Default options, but the upgrade (the client's own probe and pause) starts only once the
    // burst is sent: both clients pause polling while their whole burst is one POST in flight.
    'socket.io-client 2, upgrading mid-burst': () =>
      sioKind(sioV2, url, 'socket.io-client 2 (upgrade mid-burst)', undefined, false),
    // Pinned to long-polling: what a receiver behind a proxy without WebSocket gets. Its
    // deliveries wait in the session's poll queue between polls.
    'socket.io-client 4, long-polling only': () =>
      sioKind(sioV4, url, 'socket.io-client 4 (polling)', ['polling']),
    'socket.io-client 2, long-polling only': () =>
      sioKind(sioV2, url, 'socket.io-client 2 (polling)', ['polling']),
    raw: () => rawKind(wsBase),
    ant: () => antKind(wsBase),
  };
}

// ------------------------------------------------------------------ scenarios

/** Sends `count` offers as fast as the client takes them; the receiver reads them all. */
async function burstOne(pair, count, { pauseAt } = {}) {
  for (let seq = 1; seq <= count; seq++) pair.send(seq);
  let delivered = 0;
  let outOfOrder = 0;
  for (let expected = 1; expected <= count; expected++) {
    if (expected === pauseAt) {
      await pair.pause();
      await sleep(2000);
      pair.resume();
    }
    let seq;
    try {
      seq = await pair.next(GAP_MS);
    } catch {
      break; // the rest never arrived
    }
    delivered++;
    if (seq !== expected) outOfOrder++;
  }
  return { delivered, lost: count - delivered, outOfOrder };
}

async function burst(url) {
  for (const [name, make] of Object.entries(kinds(url))) {
    const pairs = [await make(), await make()];
    const results = await Promise.all(pairs.map((p) => burstOne(p, MESSAGES)));
    for (const p of pairs) p.close();
    const sent = MESSAGES * pairs.length;
    const delivered = results.reduce((n, r) => n + r.delivered, 0);
    const outOfOrder = results.reduce((n, r) => n + r.outOfOrder, 0);
    assert.equal(delivered, sent, `${name}: delivered ${delivered} of ${sent}`);
    assert.equal(outOfOrder, 0, `${name}: ${outOfOrder} out of order`);
    check(`${name}: ${pairs.length} pairs x ${MESSAGES} offers of ${offer(1).length} B: ${delivered} of ${sent} delivered, 0 out of order`);
  }
}

/** Both sides send `count` offers at once, then each reads the other's. */
async function duplex(url) {
  const all = kinds(url);
  for (const name of ['raw', 'socket.io-client 4, default options', 'socket.io-client 2, upgrading mid-burst',
    'socket.io-client 2, default options', 'socket.io-client 4, long-polling only',
    'socket.io-client 2, long-polling only']) {
    const pair = await all[name]();
    for (let seq = 1; seq <= MESSAGES; seq++) {
      pair.send(seq);
      pair.sendBack(seq);
    }
    const midBurst = name.endsWith('mid-burst');
    if (midBurst) {
      pair.sender.probe();
      pair.receiver.probe();
    }
    const read = async (next) => {
      const got = [];
      for (let i = 0; i < MESSAGES; i++) {
        try {
          got.push(await next(GAP_MS));
        } catch {
          break;
        }
      }
      return got;
    };
    const [forth, back] = await Promise.all([read(pair.next), read(pair.nextBack)]);
    if (midBurst) {
      // The upgrade this case is about did happen, both sides.
      await pair.sender.upgraded();
      await pair.receiver.upgraded();
    }
    pair.close();
    for (const [label, got] of [['A -> B', forth], ['B -> A', back]]) {
      assert.equal(got.length, MESSAGES, `${name} ${label}: delivered ${got.length} of ${MESSAGES}`);
      assert.ok(got.every((seq, i) => seq === i + 1), `${name} ${label}: out of order`);
    }
    check(`${name}: both peers sent ${MESSAGES} offers to each other at once: all delivered both ways, in order`);
  }
}

async function pause(url) {
  const all = kinds(url);
  for (const name of ['raw', 'ant', 'socket.io-client 4, default options', 'socket.io-client 2, default options']) {
    const pair = await all[name]();
    const result = await burstOne(pair, MESSAGES, { pauseAt: 50 });
    pair.close();
    assert.deepEqual(result, { delivered: MESSAGES, lost: 0, outOfOrder: 0 }, name);
    check(`${name}: the receiver stopped reading for 2 s mid-burst and lost nothing (${result.delivered} of ${MESSAGES}, in order)`);
  }
}

async function neverReads(url) {
  const all = kinds(url);
  for (const name of ['raw', 'socket.io-client 4, default options', 'socket.io-client 2, default options']) {
    const pair = await all[name]();
    await pair.pause();
    // Far more than loopback's socket buffers and the session's queue hold. Sent as the sender's
    // socket takes them: the gateway stops reading it while the receiver's queue is full.
    for (let seq = 1; seq <= 3000; seq++) pair.send(seq);
    await pair.partnerLeft();
    check(`${name}: a receiver that never reads was closed and its partner told`);
    if (pair.receiver instanceof WsPeer) {
      pair.resume();
      const { code, reason } = await pair.receiver.closed(GAP_MS);
      assert.equal(code, 1008, `close code (reason ${reason})`);
      assert.equal(reason, 'stopped reading its messages');
      check(`${name}: the receiver got close ${code} "${reason}" (not the drain notice)`);
    }
    await pair.goesOn();
    check(`${name}: the sender's session goes on (its next message is answered no_peer)`);
    pair.close();
  }
}

run('burst', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const scenario = arg(args, 1, 'SCENARIO');
  const scenarios = { burst, duplex, pause, 'never-reads': neverReads };
  assert.ok(scenarios[scenario], `unknown scenario ${scenario}`);
  await scenarios[scenario](url);
}, { timeoutMs: 110000 });
