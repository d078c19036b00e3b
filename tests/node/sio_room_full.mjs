// A third socket in a two-peer room is refused at connect time: the v4 client gets
// `connect_error`, the v2 client its `error` event, both with a message naming `room_full`.
// The refused sockets never enter the room (the two peers hear nothing), and once one of the two
// leaves, a newcomer takes the free place and relays with the one who stayed.
//
//   node tests/node/sio_room_full.mjs MAIN_URL
import assert from 'node:assert/strict';
import { CANDIDATE, OFFER_SDP, arg, check, run, sioPair, sioV2, sioV4, uniqueRoom } from './lib.mjs';

run('sio_room_full', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const room = uniqueRoom('full');

  const [a, b] = await sioPair(
    room,
    () => sioV4('A v4', url, { room, transports: ['websocket'] }),
    () => sioV2('B v2', url, { room }),
  );
  check(`A (v4) and B (v2) share ${room}`);

  // Third peer, v4 client: connect_error.
  const c = sioV4('C v4', url, { room, transports: ['websocket'] });
  const cMessage = await c.refused();
  assert.match(cMessage, /room_full/, `C's connect_error message: ${cMessage}`);
  check(`third peer (v4) got connect_error "${cMessage}"`);
  assert.equal(c.socket.connected, false);
  await c.quiet(100, ['connect', 'msg', 'switchboard']);
  check('C never connected and got no notices or msgs');
  c.close();

  // Third peer, v2 client (default transports): its `error` event (v2 semantics).
  const d = sioV2('D v2', url, { room });
  const dMessage = await d.refused();
  assert.match(dMessage, /room_full/, `D's error message: ${dMessage}`);
  check(`third peer (v2) got error event "${dMessage}"`);
  await d.quiet(100, ['connect', 'msg', 'switchboard']);
  check('D never connected and got no notices or msgs');
  d.close();

  // A polling-only v4 client is refused the same way.
  const p = sioV4('P v4 polling', url, { room, transports: ['polling'] });
  const pMessage = await p.refused();
  assert.match(pMessage, /room_full/);
  check(`third peer (v4, polling only) got connect_error "${pMessage}"`);
  p.close();

  // The two peers were not disturbed: no notices, and they still relay.
  await a.quiet(0, ['switchboard', 'msg']);
  await b.quiet(0, ['switchboard', 'msg']);
  const offer = JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } });
  a.send(offer);
  assert.equal(await b.msg(), offer);
  check('refused joins left A and B undisturbed (no notices; A->B relay works)');

  // A leaves; B is told; a newcomer (v4) takes the free place and relays with B.
  a.close();
  await b.expectNotice({ type: 'peer-left', room });
  check('B got peer-left when A disconnected');
  const e = await sioV4('E v4', url, { room }).connected();
  await e.expectNotice({ type: 'joined', room });
  await e.expectNotice({ type: 'peer-joined', room });
  await b.expectNotice({ type: 'peer-joined', room });
  check('newcomer E joined the freed place (E: joined, peer-joined; B: peer-joined)');
  const cand = JSON.stringify({ candidate: CANDIDATE });
  e.send(cand);
  assert.equal(await b.msg(), cand);
  b.send(offer);
  assert.equal(await e.msg(), offer);
  check('E <-> B relay byte-identical both ways');

  // And the room is full again.
  const f = sioV2('F v2', url, { room, transports: ['websocket'] });
  assert.match(await f.refused(), /room_full/);
  check('room is full again: F (v2) refused with room_full');
  f.close();
  b.close();
  e.close();
});
