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
//   polling    a client pinned to long-polling (socket.io-client 4, then 2) relays both ways
//              with a default-option partner and stays on polling
//   calls      default-option socket.io-client 2 calls an Ant Media peer and a default-option
//              socket.io-client 4 peer: offer, answer and candidates both ways, byte for byte
//   bad-input  raw HTTP against the engine.io endpoint: each bad input over polling gets its
//              answer (the Rust test then checks each is counted once in /metrics)
//   bad-input3 the same for engine.io 3 (socket.io-client 2's protocol): length-prefixed
//              payloads, broken framing, binary framing, JSONP
//   post-cap3  engine.io 3 POSTs above `engineio3_max_post_bytes` (POST_CAP3, set so by the Rust
//              test): announced, counted while read, and a real socket.io-client 2's burst; each
//              gets 413, nothing of it reaches the partner, the session ends, the partner is told
import assert from 'node:assert/strict';
import {
  ANSWER_SDP, CANDIDATE, OFFER_SDP, WsPeer, arg, check, run, sioV2, sioV4, sleep, uniqueRoom,
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
    // socket.io 2 too: the gateway connects its namespace in the first poll's answer, so its
    // `connect` (and the burst) comes while it is still on long-polling.
    const a = await senderStartingOnPolling(make, name, url, room);
    const got = await readAll(async (ms) => seqOf(JSON.parse(await b.msg(ms)).sdp.sdp), MESSAGES);
    await a.upgraded();
    await b.upgraded();
    assertWhole(`${name}: burst started on long-polling, both ended on WebSocket`, got, MESSAGES);
    a.close();
    b.close();
  }
}

async function pollingOnly(url) {
  // [pinned client, its default-option partner]
  for (const [pinned, partner] of [[sioV4, sioV4], [sioV2, sioV4]]) {
    const room = uniqueRoom('polling');
    const a = await sioSender(partner, `${partner === sioV2 ? 'v2' : 'v4'} default A`, url, room);
    const name = pinned === sioV2 ? 'socket.io-client 2' : 'socket.io-client 4';
    const b = await pinned(`${name} polling B`, url, { room, transports: ['polling'] }).connected();
    await b.expectNotice({ type: 'joined', room });
    for (let seq = 1; seq <= MESSAGES; seq++) a.send(sioOffer(seq));
    const got = await readAll(async (ms) => seqOf(JSON.parse(await b.msg(ms)).sdp.sdp), MESSAGES);
    assertWhole(`to a ${name} client pinned to long-polling`, got, MESSAGES);
    for (let seq = 1; seq <= MESSAGES; seq++) b.send(sioOffer(seq));
    const back = await readAll(async (ms) => seqOf(JSON.parse(await a.msg(ms)).sdp.sdp), MESSAGES);
    assertWhole(`from a ${name} client pinned to long-polling`, back, MESSAGES);
    // Characters outside ASCII and the BMP: engine.io 3 counts its payload lengths in UTF-16
    // code units, so an emoji is 2 and 4 bytes; both directions must keep the framing.
    const wide = sioSdp('offer', `${OFFER_SDP}a=x-note:é ☎ 😀 𝄞\r\n`);
    b.send(wide);
    assert.equal(await a.msg(GAP_MS), wide);
    a.send(wide);
    assert.equal(await b.msg(GAP_MS), wide);
    check(`a message with 2-, 3- and 4-byte characters crosses both ways unchanged (${name} polling)`);
    assert.equal(b.transport(), 'polling');
    check(`the pinned ${name} client is still on long-polling`);
    a.close();
    b.close();
  }
}

// ------------------------------------------------------------------ calls

const CANDIDATES = 20;
const sioSdp = (type, sdp) => JSON.stringify({ sdp: { type, sdp } });
const sioCandidate = (i) => JSON.stringify({ candidate: { ...CANDIDATE, candidate: `${CANDIDATE.candidate} ${i}` } });

/** Reads socket.io `msg` strings until `count` arrived; fails on anything else. */
async function msgs(peer, count) {
  const got = [];
  while (got.length < count) got.push(await peer.msg(GAP_MS));
  return got;
}

async function calls(url) {
  const wsBase = url.replace(/^http/, 'ws');
  // socket.io-client 2 (default options) and an Ant Media peer: the Ant peer offers (it is told
  // to start), the v2 page answers; candidates both ways.
  {
    const room = uniqueRoom('call-ant');
    const v2 = await sioSender(sioV2, 'v2 call', url, room);
    const ant = await WsPeer.connect('ant', `${wsBase}/LiveApp/websocket`);
    ant.send({ command: 'join', streamId: room, multiPeer: false, mode: 'both' });
    assert.equal((await ant.json()).definition, 'joined');
    assert.equal((await ant.json()).command, 'start');
    ant.send({ command: 'takeConfiguration', streamId: room, type: 'offer', sdp: OFFER_SDP });
    for (let i = 0; i < CANDIDATES; i++) {
      ant.send({ command: 'takeCandidate', streamId: room, label: 0, id: '0', candidate: `${CANDIDATE.candidate} ${i}` });
    }
    const got = await msgs(v2, 1 + CANDIDATES);
    assert.deepEqual(JSON.parse(got[0]).sdp, { type: 'offer', sdp: OFFER_SDP });
    got.slice(1).forEach((m, i) => assert.equal(JSON.parse(m).candidate.candidate, `${CANDIDATE.candidate} ${i}`));
    v2.send(sioSdp('answer', ANSWER_SDP));
    for (let i = 0; i < CANDIDATES; i++) v2.send(sioCandidate(i));
    const answer = await ant.json(GAP_MS);
    assert.equal(answer.command, 'takeConfiguration');
    assert.equal(answer.type, 'answer');
    assert.equal(answer.sdp, ANSWER_SDP);
    for (let i = 0; i < CANDIDATES; i++) {
      const c = await ant.json(GAP_MS);
      assert.equal(c.command, 'takeCandidate');
      assert.equal(c.candidate, `${CANDIDATE.candidate} ${i}`);
    }
    await v2.upgraded();
    check(`socket.io-client 2 (default options) <-> Ant: offer, answer and ${CANDIDATES} candidates each way, in order; v2 upgraded`);
    v2.close();
    ant.close();
  }
  // socket.io-client 2 and 4, both with default options: the v4 page offers, the v2 answers.
  {
    const room = uniqueRoom('call-v4');
    const v2 = await sioSender(sioV2, 'v2 call', url, room);
    const v4 = await sioSender(sioV4, 'v4 call', url, room);
    const offerMsg = sioSdp('offer', OFFER_SDP);
    v4.send(offerMsg);
    for (let i = 0; i < CANDIDATES; i++) v4.send(sioCandidate(i));
    const atV2 = await msgs(v2, 1 + CANDIDATES);
    assert.equal(atV2[0], offerMsg, 'the offer string arrives byte for byte');
    atV2.slice(1).forEach((m, i) => assert.equal(m, sioCandidate(i)));
    const answerMsg = sioSdp('answer', ANSWER_SDP);
    v2.send(answerMsg);
    for (let i = 0; i < CANDIDATES; i++) v2.send(sioCandidate(i));
    const atV4 = await msgs(v4, 1 + CANDIDATES);
    assert.equal(atV4[0], answerMsg);
    atV4.slice(1).forEach((m, i) => assert.equal(m, sioCandidate(i)));
    await v2.upgraded();
    await v4.upgraded();
    check(`socket.io-client 2 <-> 4 (default options): offer, answer and ${CANDIDATES} candidates each way, byte for byte, in order; both upgraded`);
    v2.close();
    v4.close();
  }
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

// ------------------------------------------------------------------ bad input, engine.io 3

/** An engine.io 3 payload's packets, split as engine.io-parser 2 splits them (lengths in
 *  UTF-16 code units: JavaScript string length). */
function packets3(payload) {
  const out = [];
  let at = 0;
  while (at < payload.length) {
    const colon = payload.indexOf(':', at);
    assert.ok(colon > at, `a length prefix at ${at}: ${JSON.stringify(payload)}`);
    const n = Number(payload.slice(at, colon));
    out.push(payload.substr(colon + 1, n));
    at = colon + 1 + n;
  }
  return out;
}

/** The `switchboard` notices among engine.io 3 packets. */
const notices3 = (packets) => packets.filter((p) => p.startsWith('42'))
  .map((p) => JSON.parse(p.slice(2)))
  .filter(([event]) => event === 'switchboard')
  .map(([, notice]) => notice);

/** An engine.io 3 polling session opened by hand: the server connects `/` itself. */
async function openSession3(url, room) {
  const base = `${url}/socket.io/?EIO=3&transport=polling`;
  const first = packets3(await (await fetch(`${base}&room=${room}`)).text());
  assert.match(first[0], /^0\{/, `open packet: ${first[0]}`);
  const open = JSON.parse(first[0].slice(1));
  assert.deepEqual(open.upgrades, ['websocket']);
  assert.equal(open.maxPayload, undefined, 'engine.io 3 has no maxPayload');
  const at = `${base}&sid=${encodeURIComponent(open.sid)}`;
  const post = (body, headers = {}) => fetch(at, { method: 'POST', body, headers });
  const get = async () => packets3(await (await fetch(at)).text());
  let got = first.slice(1);
  while (!notices3(got).some((n) => n.type === 'joined')) got = got.concat(await get());
  assert.ok(got.includes('40'), `the server connects / itself: ${JSON.stringify(got)}`);
  return { at, post, get };
}

async function badInput3(url) {
  const s = await openSession3(url, uniqueRoom('bad3'));
  const answered = async (what, body, code) => {
    assert.equal(await (await s.post(body)).text(), 'ok');
    const got = notices3(await s.get());
    assert.equal(got.length, 1, `${what}: ${JSON.stringify(got)}`);
    assert.equal(got[0].code, code, `${what}: ${JSON.stringify(got[0])}`);
    check(`engine.io 3, ${what}: switchboard error ${code}`);
  };
  // The client pings, the server answers.
  assert.equal(await (await s.post('1:2')).text(), 'ok');
  assert.deepEqual(await s.get(), ['3']);
  check('engine.io 3: a client ping (1:2) is answered with a pong (1:3)');
  await answered('a msg whose argument is a number', '12:42["msg",42]', 'invalid_field');
  await answered('a base64 binary packet (b4AQID)', '6:b4AQID', 'binary_not_supported');
  await answered('a binary-framed payload', Buffer.from([0, 2, 0xff, 0x34, 0x30]), 'binary_not_supported');

  // Framing that does not parse, a packet that is not UTF-8, a length above the frame limit:
  // the session ends (engine.io close packet).
  const ends = async (what, body, status) => {
    const t = await openSession3(url, uniqueRoom('bad3-end'));
    const answer = await t.post(body, { 'content-type': 'text/plain;charset=UTF-8' });
    assert.equal(answer.status, status, what);
    const last = await t.get();
    assert.ok(last.includes('1'), `${what}: closed: ${JSON.stringify(last)}`);
    check(`engine.io 3, ${what}: ${status}, the session is closed (engine.io close packet)`);
  };
  await ends('a length longer than the payload (9:40)', '9:40', 400);
  await ends('a length that is not a number (x:40)', 'x:40', 400);
  await ends('a packet that is not UTF-8',
    Buffer.concat([Buffer.from('15:42["msg","'), Buffer.from([0x80, 0x80, 0x80]), Buffer.from('"]')]), 200);
  await ends('a length above the frame limit, refused on its prefix', `${10 * 1024 * 1024}:42`, 413);

  // JSONP polling: a clear HTTP error.
  const jsonp = await fetch(`${url}/socket.io/?EIO=3&transport=polling&j=0`);
  assert.equal(jsonp.status, 400);
  const body = await jsonp.json();
  assert.match(body.message, /JSONP/);
  check(`engine.io 3 JSONP polling: 400 "${body.message}"`);

  await answered('a msg with a number again, on the first session', '11:42["msg",7]', 'invalid_field');
}

// ------------------------------------------------------------------ the engine.io 3 POST cap

/** `engineio3_max_post_bytes` in the Rust test's config. */
const POST_CAP3 = 100000;

/** An engine.io 3 payload of socket.io `msg` offers numbered from 1, just above `bytes`. */
function offers3(bytes) {
  let body = '';
  for (let seq = 1; body.length <= bytes; seq++) {
    const packet = `42${JSON.stringify(['msg', sioOffer(seq)])}`;
    body += `${packet.length}:${packet}`;
  }
  return body;
}

/** A raw peer joined to `room`, after the socket.io peer there. */
async function rawPartner(url, room) {
  const raw = await WsPeer.connect('raw partner', `${url.replace(/^http/, 'ws')}/ws/${room}`);
  await raw.expectJson({ type: 'switchboard.joined', room }, 'joined');
  return raw;
}

/** Reads `raw`'s frames until its partner left; no offer may come before. */
async function leftWithoutOffers(raw, what) {
  for (;;) {
    const frame = await raw.json(GAP_MS);
    assert.notEqual(frame.type, 'offer', `${what}: an offer of the refused POST was relayed`);
    if (frame.type === 'switchboard.peer-left') return;
  }
}

/**
 * Polls `s` until its engine.io close packet (`1`) comes. The 413 may be answered before the
 * session loop has ended the session, so a GET may first take what was queued before it (the
 * partner's notice); at most a few GETs, each answered 200 until the close.
 */
async function closedWithPacket3(s, what) {
  const seen = [];
  for (let polls = 0; polls < 5; polls++) {
    const res = await fetch(s.at);
    const got = packets3(await res.text());
    seen.push(...got);
    if (got.includes('1')) return;
    assert.equal(res.status, 200, `${what}: the session ended without its close packet: ${JSON.stringify(seen)}`);
  }
  assert.fail(`${what}: no engine.io close packet in five polls: ${JSON.stringify(seen)}`);
}

async function postCap3(url) {
  // Announced (Content-Length): refused before the body is read.
  {
    const room = uniqueRoom('cap3-announced');
    const s = await openSession3(url, room);
    const raw = await rawPartner(url, room);
    const body = offers3(POST_CAP3);
    const answer = await s.post(body);
    assert.equal(answer.status, 413, 'a POST above the cap');
    await closedWithPacket3(s, 'announced');
    await leftWithoutOffers(raw, 'announced');
    raw.close();
    check(`engine.io 3, a POST of ${body.length} B (cap ${POST_CAP3} B, Content-Length): 413, the session closed, the partner told, no offer relayed`);
  }
  // Chunked (no Content-Length): refused once the bytes read pass the cap.
  {
    const room = uniqueRoom('cap3-chunked');
    const s = await openSession3(url, room);
    const raw = await rawPartner(url, room);
    const body = Buffer.from(offers3(POST_CAP3));
    const chunks = [];
    for (let at = 0; at < body.length; at += 8192) chunks.push(body.subarray(at, at + 8192));
    const stream = new ReadableStream({
      pull(controller) {
        const chunk = chunks.shift();
        if (chunk) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const answer = await fetch(s.at, { method: 'POST', body: stream, duplex: 'half' });
    assert.equal(answer.status, 413, 'a chunked POST above the cap');
    await closedWithPacket3(s, 'chunked');
    await leftWithoutOffers(raw, 'chunked');
    raw.close();
    check(`engine.io 3, a chunked POST of ${body.length} B (cap ${POST_CAP3} B): 413, the session closed, the partner told, no offer relayed`);
  }
  // A real socket.io-client 2 (pinned to polling, so its burst is one POST) sends more than the
  // cap at once: it is disconnected, its partner told; what reached the partner came in order.
  {
    const room = uniqueRoom('cap3-client');
    const a = await sioV2('v2 sender', url, { room, transports: ['polling'] }).connected();
    await a.expectNotice({ type: 'joined', room });
    const raw = await rawPartner(url, room);
    const count = Math.ceil((2 * POST_CAP3) / offer(1).length);
    for (let seq = 1; seq <= count; seq++) a.send(sioOffer(seq));
    const reason = await a.disconnected(GAP_MS);
    let expected = 1;
    for (;;) {
      const frame = await raw.json(GAP_MS);
      if (frame.type === 'switchboard.peer-left') break;
      if (frame.type === 'offer') {
        assert.equal(seqOf(frame.sdp), expected, 'what was relayed came in order');
        expected++;
      }
    }
    assert.ok(expected - 1 < count, `all ${count} offers were relayed: the cap did not apply`);
    raw.close();
    check(`socket.io-client 2 (polling) sending ${count} offers of ${offer(1).length} B at once: disconnected (${reason}), the partner told after ${expected - 1} offers, in order`);
  }
}

const SCENARIOS = {
  cross, upgrade, polling: pollingOnly, calls, 'bad-input': badInput, 'bad-input3': badInput3,
  'post-cap3': postCap3,
};

run('sio_polling', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const name = arg(args, 1, 'SCENARIO');
  const scenario = SCENARIOS[name];
  if (!scenario) throw new Error(`unknown scenario ${name}`);
  await scenario(url);
}, { timeoutMs: 100000 });
