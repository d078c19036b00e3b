// Bad input from a socket.io client never crashes the gateway or disturbs other sessions:
// non-string `msg` arguments and malformed or too-deep signals get a `switchboard` error notice
// (nothing relayed); opaque strings are relayed as they are; a `msg` above the frame limit
// (128 KiB in the test config) disconnects its sender and is never relayed, on WebSocket and on
// long-polling. Afterwards the partner is still connected, other rooms relay, /healthz is ok.
//
//   node tests/node/sio_bad_input.mjs MAIN_URL
import assert from 'node:assert/strict';
import { CANDIDATE, OFFER_SDP, arg, check, run, sioPair, sioV2, sioV4, uniqueRoom } from './lib.mjs';

const OVERSIZED = 300 * 1024;

run('sio_bad_input', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const room = uniqueRoom('bad');
  const [x, y] = await sioPair(
    room,
    () => sioV4('X v4', url, { room, transports: ['websocket'] }),
    () => sioV4('Y v4', url, { room, transports: ['websocket'] }),
  );
  check(`X and Y paired in ${room}`);

  /** X sends `value`; X gets an error notice with `code`; Y gets nothing. */
  const refused = async (what, value, code) => {
    x.send(value);
    const notice = await x.expectNotice({ type: 'error', code, room });
    assert.equal(typeof notice.message, 'string');
    await y.quiet(100);
    check(`msg with ${what}: X got switchboard error ${code} (${notice.message}); nothing relayed`);
  };
  /** X sends `value`; Y gets exactly `expected`. */
  const relayed = async (what, value, expected = value) => {
    x.send(value);
    const got = await y.msg();
    assert.equal(got, expected, `${what}: relayed msg`);
    check(`msg with ${what}: relayed to Y as ${typeof expected === 'string' && expected.length > 60 ? `the same ${expected.length}-char string` : JSON.stringify(expected)}`);
  };

  await refused('a number', 42, 'invalid_field');
  await refused('a boolean', true, 'invalid_field');
  await refused('null', null, 'invalid_field');
  await refused('an array', [1, '2'], 'invalid_field');

  // A modern page might emit the object itself instead of JSON.stringify(...): it is read as its
  // JSON text and reaches the partner as the string the classic page expects.
  x.send({ sdp: { type: 'offer', sdp: 'v=0\r\n' } });
  const fromObject = await y.msg();
  assert.equal(typeof fromObject, 'string', `an object msg reaches Y as a ${typeof fromObject}`);
  assert.deepEqual(JSON.parse(fromObject), { sdp: { type: 'offer', sdp: 'v=0\r\n' } });
  check(`msg with an object signal: relayed to Y as the JSON string ${fromObject}`);
  x.send({ hello: 1, x: [1, 2] });
  const fromApp = await y.msg();
  assert.equal(typeof fromApp, 'string');
  assert.deepEqual(JSON.parse(fromApp), { hello: 1, x: [1, 2] });
  check(`msg with an app object: relayed to Y as the JSON string ${fromApp}`);

  // Recognized signal shapes with bad fields are refused rather than relayed half-understood.
  await refused('an sdp of unknown type', '{"sdp":{"type":"bogus","sdp":"v=0\\r\\n"}}', 'invalid_field');
  await refused('a numeric candidate', '{"candidate":{"candidate":5,"sdpMid":"0","sdpMLineIndex":0}}', 'invalid_field');
  await refused('sdpMLineIndex -1', '{"candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 9 typ host","sdpMLineIndex":-1}}', 'invalid_field');

  // JSON nested 100 deep: refused (the gateway parses at most 32 levels).
  const deep = '{"a":'.repeat(100) + '1' + '}'.repeat(100);
  await refused('JSON nested 100 objects deep', deep, 'malformed_message');
  const deepSignal = JSON.stringify({ sdp: { type: 'offer', sdp: 'v=0' } }).replace(/}}$/, `,"x":${'['.repeat(100)}${']'.repeat(100)}}}`);
  await refused('a signal with a 100-deep array inside', deepSignal, 'malformed_message');

  // Not JSON objects at all: opaque, relayed byte-identical.
  await relayed('"[" x 5000 (opaque, not an object)', '['.repeat(5000));
  await relayed('broken JSON "{not json"', '{not json');
  await relayed('a lone surrogate escape', '{"s":"\\ud800"}');

  // Events other than msg are ignored.
  x.socket.emit('chat', 'hello');
  x.socket.emit('switchboard', { type: 'start', room });
  await y.quiet(150, ['msg', 'switchboard']);
  await x.quiet(0, ['msg', 'switchboard']);
  check('events other than msg (chat, switchboard) are ignored: no relay, no notice');

  // Big but below the limit: a 100 KiB SDP is relayed intact.
  const big = JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP + 'a=x-pad:'.padEnd(100 * 1024, 'p') + '\r\n' } });
  await relayed(`a ${big.length}-byte offer (below the 128 KiB limit)`, big);

  // Oversized: the sender is disconnected and nothing is relayed.
  x.send('x'.repeat(OVERSIZED));
  const reason = await x.disconnected();
  check(`msg with a ${OVERSIZED}-byte string over WebSocket (v4): X disconnected (${reason})`);
  await y.expectNotice({ type: 'peer-left', room });
  await y.quiet(100);
  assert.equal(y.socket.connected, true, 'Y is still connected');
  check('Y got peer-left, never got the oversized msg, and is still connected');
  y.send(JSON.stringify({ candidate: CANDIDATE }));
  await y.expectNotice({ type: 'error', code: 'no_peer', room });
  check('Y, now alone, still gets answers from the gateway (no_peer)');
  y.close();

  // Oversized over long-polling (v4) and over WebSocket (v2): same outcome.
  for (const [label, make] of [
    ['v4 polling', (r, n) => sioV4(`${n} v4 polling`, url, { room: r, transports: ['polling'] })],
    ['v2 websocket', (r, n) => sioV2(`${n} v2 ws`, url, { room: r, transports: ['websocket'] })],
    ['v2 polling', (r, n) => sioV2(`${n} v2 polling`, url, { room: r, transports: ['polling'] })],
  ]) {
    const r = uniqueRoom('bad-big');
    const [big1, partner] = await sioPair(r, () => make(r, 'sender'), () => sioV4('partner v4', url, { room: r }));
    big1.send('y'.repeat(OVERSIZED));
    const why = await big1.disconnected();
    await partner.expectNotice({ type: 'peer-left', room: r });
    await partner.quiet(100);
    check(`msg with a ${OVERSIZED}-byte string over ${label}: sender disconnected (${why}), partner got peer-left and no msg`);
    big1.close();
    partner.close();
  }

  // Everyone else is fine: a new pair in another room relays, and the gateway is healthy.
  const fresh = uniqueRoom('bad-after');
  const [p, q] = await sioPair(
    fresh,
    () => sioV2('after P v2', url, { room: fresh }),
    () => sioV4('after Q v4', url, { room: fresh }),
  );
  const offer = JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } });
  p.send(offer);
  assert.equal(await q.msg(), offer);
  q.send(offer);
  assert.equal(await p.msg(), offer);
  check(`afterwards a new pair in ${fresh} relays both ways`);
  p.close();
  q.close();

  const health = await fetch(`${url}/healthz`);
  assert.equal(health.status, 200);
  assert.equal((await health.text()).trim(), 'ok');
  check('GET /healthz: 200 ok');
});
