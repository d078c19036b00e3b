// socket.io clients with their DEFAULT options (engine.io long-polling first, then the upgrade)
// on the gateway's own engine.io transport, and what it does with bad input over polling.
// Counts only, no timing.
//
//   node tests/node/sio_polling.mjs MAIN_URL SCENARIO
//
// SCENARIO:
//   cross      default-option socket.io-client 4 and 2 senders burst 6 KB offers to an Ant Media
//              peer and to a raw peer: every offer arrives, in order
//   upgrade    both peers (default options) start a burst while still on long-polling; the
//              upgrade happens during it: nothing lost, in order, both end on WebSocket
//   polling    a client pinned to long-polling relays both ways and stays on polling
//   bad-input  raw HTTP against the engine.io endpoint: each bad input over polling gets its
//              answer (the Rust test then checks each is counted once in /metrics)
import assert from 'node:assert/strict';
import {
  OFFER_SDP, WsPeer, arg, check, run, sioV2, sioV4, sleep, uniqueRoom,
} from './lib.mjs';

const MESSAGES = 1000;
const GAP_MS = 15000;

const PADDING = Array.from({ length: 60 }, (_, i) =>
  `a=candidate:${1000 + i} 1 udp 2122260223 192.0.2.${i % 250} ${40000 + i} typ host generation 0`).join('\r\n');
const offer = (seq) => `${OFFER_SDP}a=x-seq:${seq}\r\n${PADDING}\r\n`;
const seqOf = (sdp) => Number(/a=x-seq:(\d+)/.exec(sdp)?.[1] ?? -1);
const sioOffer = (seq) => JSON.stringify({ sdp: { type: 'offer', sdp: offer(seq) } });

/** Reads `count` sequence numbers with `next`; counts delivered and out of order. */
async function readAll(next, count) {
  let delivered = 0;
  let outOfOrder = 0;
  for (let expected = 1; expected <= count; expected++) {
    let seq;
    try {
      seq = await next(GAP_MS);
    } catch {
      break;
    }
    delivered++;
    if (seq !== expected) outOfOrder++;
  }
  return { delivered, outOfOrder };
}

function assertWhole(what, { delivered, outOfOrder }, count) {
  assert.equal(delivered, count, `${what}: delivered ${delivered} of ${count}`);
  assert.equal(outOfOrder, 0, `${what}: ${outOfOrder} out of order`);
  check(`${what}: ${delivered} of ${count} offers of ${offer(1).length} B delivered, 0 out of order`);
}

/** A default-option socket.io sender in `room`, still on long-polling when it starts. */
async function sioSender(make, label, url, room) {
  const sio = await make(label, url, { room }).connected();
  await sio.expectNotice({ type: 'joined', room });
  return sio;
}

async function cross(url) {
  const wsBase = url.replace(/^http/, 'ws');
  for (const [name, make] of [['socket.io-client 4', sioV4], ['socket.io-client 2', sioV2]]) {
    // To an Ant Media peer.
    {
      const room = uniqueRoom('cross-ant');
      const ant = await WsPeer.connect('ant', `${wsBase}/LiveApp/websocket`);
      ant.send({ command: 'join', streamId: room, multiPeer: false, mode: 'both' });
      assert.equal((await ant.json()).definition, 'joined');
      const sio = await sioSender(make, `${name} -> ant`, url, room);
      assert.equal((await ant.json()).command, 'start');
      for (let seq = 1; seq <= MESSAGES; seq++) sio.send(sioOffer(seq));
      const got = await readAll(async (ms) => {
        const frame = await ant.json(ms);
        assert.equal(frame.command, 'takeConfiguration', JSON.stringify(frame).slice(0, 200));
        return seqOf(frame.sdp);
      }, MESSAGES);
      assertWhole(`${name} (default options) -> Ant takeConfiguration`, got, MESSAGES);
      sio.close();
      ant.close();
    }
    // To a raw peer.
    {
      const room = uniqueRoom('cross-raw');
      const raw = await WsPeer.connect('raw', `${wsBase}/ws/${room}`);
      await raw.expectJson({ type: 'switchboard.joined', room }, 'joined');
      const sio = await sioSender(make, `${name} -> raw`, url, room);
      for (let seq = 1; seq <= MESSAGES; seq++) sio.send(sioOffer(seq));
      const got = await readAll(async (ms) => {
        for (;;) {
          const frame = await raw.json(ms);
          if (frame.type === 'offer') return seqOf(frame.sdp);
          assert.ok(frame.type.startsWith('switchboard.'), JSON.stringify(frame).slice(0, 200));
        }
      }, MESSAGES);
      assertWhole(`${name} (default options) -> raw`, got, MESSAGES);
      sio.close();
      raw.close();
    }
  }
}

/** A default-option sender whose namespace connected while it was still on long-polling (the
 *  upgrade races the connect: a sender that connected after it is closed and another made, up to
 *  10 times), with its burst emitted in the same tick as its `connect`. */
async function senderStartingOnPolling(make, name, url, room) {
  for (let attempt = 1; attempt <= 10; attempt++) {
    const a = make(`${name} A#${attempt}`, url, { room });
    const started = new Promise((resolve) => {
      a.socket.once('connect', () => {
        const on = a.transport();
        if (on === 'polling') for (let seq = 1; seq <= MESSAGES; seq++) a.send(sioOffer(seq));
        resolve(on);
      });
    });
    if (await started === 'polling') return a;
    a.close();
    // Its place in the two-peer room is freed before the next one connects.
    await sleep(300);
  }
  throw new Error(`${name}: 10 senders all connected after their upgrade`);
}

async function upgrade(url) {
  for (const [name, make] of [['socket.io-client 4', sioV4], ['socket.io-client 2', sioV2]]) {
    const room = uniqueRoom('upgrade');
    const b = await sioSender(make, `${name} B`, url, room);
    let a;
    if (name === 'socket.io-client 4') {
      a = await senderStartingOnPolling(make, name, url, room);
    } else {
      // socket.io 2 (engine.io 3, served by socketioxide) connects its namespace when the server
      // says so: its burst is emitted before the connect, and goes out on whichever transport
      // it has by then.
      a = make(`${name} A`, url, { room });
      for (let seq = 1; seq <= MESSAGES; seq++) a.send(sioOffer(seq));
    }
    const got = await readAll(async (ms) => seqOf(JSON.parse(await b.msg(ms)).sdp.sdp), MESSAGES);
    await a.upgraded();
    await b.upgraded();
    assertWhole(name === 'socket.io-client 4'
      ? `${name}: burst started on long-polling, both ended on WebSocket`
      : `${name}: burst emitted while connecting, both ended on WebSocket`, got, MESSAGES);
    a.close();
    b.close();
  }
}

async function pollingOnly(url) {
  const room = uniqueRoom('polling');
  const a = await sioSender(sioV4, 'v4 polling A', url, room);
  const b = await sioV4('v4 polling B', url, { room, transports: ['polling'] }).connected();
  await b.expectNotice({ type: 'joined', room });
  for (let seq = 1; seq <= MESSAGES; seq++) a.send(sioOffer(seq));
  const got = await readAll(async (ms) => seqOf(JSON.parse(await b.msg(ms)).sdp.sdp), MESSAGES);
  assertWhole('to a client pinned to long-polling', got, MESSAGES);
  for (let seq = 1; seq <= MESSAGES; seq++) b.send(sioOffer(seq));
  const back = await readAll(async (ms) => seqOf(JSON.parse(await a.msg(ms)).sdp.sdp), MESSAGES);
  assertWhole('from a client pinned to long-polling', back, MESSAGES);
  assert.equal(b.transport(), 'polling');
  check('the pinned client is still on long-polling');
  a.close();
  b.close();
}

// ------------------------------------------------------------------ bad input, raw HTTP

/** An engine.io v4 polling session opened by hand, connected to `/` in `room`. */
async function openSession(url, room) {
  const base = `${url}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(`${base}&room=${room}`)).text();
  assert.match(open, /^0\{/, `open packet: ${open}`);
  const { sid, upgrades, maxPayload } = JSON.parse(open.slice(1));
  assert.deepEqual(upgrades, ['websocket']);
  const at = `${base}&sid=${encodeURIComponent(sid)}`;
  const post = (body, headers = {}) => fetch(at, { method: 'POST', body, headers });
  const get = async () => (await fetch(at)).text();
  assert.equal(await (await post('40')).text(), 'ok');
  // The connect reply, then the `joined` notice (in the same payload or the next).
  let received = await get();
  assert.match(received, /^40\{"sid":/, received);
  while (!notices(received).some((n) => n.type === 'joined')) received += `\x1e${await get()}`;
  return { at, post, get, maxPayload };
}

/** The `switchboard` notices in a payload. */
function notices(payload) {
  return payload.split('\x1e')
    .filter((p) => p.startsWith('42'))
    .map((p) => JSON.parse(p.slice(2)))
    .filter(([event]) => event === 'switchboard')
    .map(([, notice]) => notice);
}

async function badInput(url) {
  const room = uniqueRoom('bad-polling');
  const s = await openSession(url, room);

  // Answered in the sender's dialect, the session goes on.
  const answered = async (what, body, code) => {
    assert.equal(await (await s.post(body)).text(), 'ok');
    const got = notices(await s.get());
    assert.equal(got.length, 1, `${what}: ${JSON.stringify(got)}`);
    assert.equal(got[0].type, 'error');
    assert.equal(got[0].code, code, `${what}: ${JSON.stringify(got[0])}`);
    check(`over polling, ${what}: switchboard error ${code} (${got[0].message})`);
  };
  await answered('a msg whose argument is a number', '42["msg",42]', 'invalid_field');
  await answered('a binary packet (bAQID)', 'bAQID', 'binary_not_supported');

  // What engine.io or socket.io cannot parse ends the session (as both reference servers do):
  // the client's next poll gets the engine.io close packet.
  for (const [what, body] of [['a malformed packet (4zz)', '4zz'], ['a NUL packet', '\0'],
    ['a truncated event (42["msg",)', '42["msg",']]) {
    const t = await openSession(url, uniqueRoom('malformed'));
    assert.equal(await (await t.post(body)).text(), 'ok');
    const last = await t.get();
    assert.ok(last.split('\x1e').includes('1'), `${what}: closed: ${JSON.stringify(last)}`);
    check(`over polling, ${what}: the session is closed (engine.io close packet)`);
  }

  // A second GET while one is pending: 400 with engine.io's error, and the session ends.
  {
    const t = await openSession(url, uniqueRoom('overlap'));
    const first = fetch(t.at);
    await new Promise((r) => setTimeout(r, 200));
    const second = await fetch(t.at);
    assert.equal(second.status, 400);
    assert.deepEqual(await second.json(), { code: 3, message: 'Bad request' });
    const last = await (await first).text();
    assert.ok(last.split('\x1e').includes('1'), `the pending GET ends with close: ${JSON.stringify(last)}`);
    check('a second concurrent GET: 400 {"code":3,"message":"Bad request"}; the session is closed (engine.io close)');
  }

  // Invalid UTF-8: the session is closed (engine.io close packet), as 1007 closes a WebSocket.
  {
    const t = await openSession(url, uniqueRoom('utf8'));
    const bytes = Buffer.concat([Buffer.from('42["msg","'), Buffer.from([0x80, 0xe2, 0x82]), Buffer.from('"]')]);
    await t.post(bytes, { 'content-type': 'text/plain;charset=UTF-8' });
    const last = await t.get();
    assert.ok(last.split('\x1e').includes('1'), `closed: ${JSON.stringify(last)}`);
    check('a packet that is not UTF-8: the session is closed (engine.io close packet)');
  }

  // Above maxPayload: 413 before the body is read whole, and the session is closed.
  {
    const t = await openSession(url, uniqueRoom('big'));
    const big = await t.post('4'.repeat(t.maxPayload + 1));
    assert.equal(big.status, 413);
    const last = await t.get();
    assert.ok(last.split('\x1e').includes('1'), `closed: ${JSON.stringify(last)}`);
    check(`a POST above maxPayload (${t.maxPayload} B): 413, the session is closed`);
  }

  // An unknown sid: engine.io's JSON error.
  const unknown = await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=nosuchsession`);
  assert.equal(unknown.status, 400);
  assert.deepEqual(await unknown.json(), { code: 1, message: 'Session ID unknown' });
  check('an unknown sid: 400 {"code":1,"message":"Session ID unknown"}');

  // The first session is unharmed.
  await answered('a msg with a number again, on the first session', '42["msg",7]', 'invalid_field');
}

const SCENARIOS = { cross, upgrade, polling: pollingOnly, 'bad-input': badInput };

run('sio_polling', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const name = arg(args, 1, 'SCENARIO');
  const scenario = SCENARIOS[name];
  if (!scenario) throw new Error(`unknown scenario ${name}`);
  await scenario(url);
}, { timeoutMs: 100000 });
