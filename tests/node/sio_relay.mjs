// socket.io `msg` relay between the real npm clients, v4 and v2, in every pairing, over
// WebSocket-only and over the default transports (long-polling, then the upgrade to WebSocket).
// The `msg` argument is the SimpleP2P JSON *string* and must arrive byte-identical (===).
//
//   node tests/node/sio_relay.mjs MAIN_URL        e.g. http://127.0.0.1:5080
import assert from 'node:assert/strict';
import { ANSWER_SDP, CANDIDATE, arg, check, relayPayloads, run, sioPair, sioV2, sioV4, uniqueRoom } from './lib.mjs';

const WS = ['websocket'];
const OFFER_SDP_SHORT = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n';
const POLLING = ['polling'];

/** [label, first client, second client]; transports undefined = the client's default. */
const PAIRS = [
  ['v4(ws) <-> v4(ws)', ['v4', WS], ['v4', WS]],
  ['v4(default) <-> v4(default)', ['v4', undefined], ['v4', undefined]],
  ['v2(ws) <-> v2(ws)', ['v2', WS], ['v2', WS]],
  ['v2(default) <-> v2(default)', ['v2', undefined], ['v2', undefined]],
  ['v4(ws) <-> v2(ws)', ['v4', WS], ['v2', WS]],
  ['v2(default) <-> v4(polling only)', ['v2', undefined], ['v4', POLLING]],
  ['v2(polling only) <-> v4(default)', ['v2', POLLING], ['v4', undefined]],
];

run('sio_relay', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');

  for (const [label, [v1, t1], [v2, t2]] of PAIRS) {
    const room = uniqueRoom('relay');
    const make = (name, version, transports) => () =>
      (version === 'v2' ? sioV2 : sioV4)(`${label} ${name}`, url, { room, transports });

    const [a, b] = await sioPair(room, make('A', v1, t1), make('B', v2, t2));
    check(`${label}: both connected in ${room}; each got joined, then peer-joined`);

    // Each way, one at a time (ordering of bursts is sio_order.mjs's subject), byte-identical.
    const fromA = relayPayloads('A');
    const startedOn = `${a.transport()}, ${b.transport()}`;
    for (const m of fromA) {
      a.send(m);
      const got = await b.msg();
      assert.equal(typeof got, 'string', `${label}: B got a ${typeof got}, not a string`);
      assert.equal(got, m, `${label}: A->B changed the msg string`);
    }
    check(`${label}: A->B ${fromA.length} msg strings byte-identical (started on ${startedOn})`);

    const fromB = [
      JSON.stringify({ sdp: { type: 'answer', sdp: ANSWER_SDP } }),
      JSON.stringify({ candidate: { ...CANDIDATE, sdpMid: '1', sdpMLineIndex: 1 } }),
      ...relayPayloads('B'),
    ];
    for (const m of fromB) {
      b.send(m);
      assert.equal(await a.msg(), m, `${label}: B->A changed the msg string`);
    }
    check(`${label}: B->A ${fromB.length} msg strings byte-identical`);

    // With default transports, the clients upgrade to WebSocket; relay keeps working after.
    for (const [peer, transports] of [[a, t1], [b, t2]]) {
      if (transports === undefined) {
        await peer.upgraded();
        check(`${peer.label} upgraded from polling to websocket`);
      }
    }
    const after = JSON.stringify({ candidate: { ...CANDIDATE, candidate: CANDIDATE.candidate.replace('51121', '51122') } });
    a.send(after);
    assert.equal(await b.msg(), after);
    b.send(after);
    assert.equal(await a.msg(), after);
    check(`${label}: relay both ways still byte-identical on the final transports (${a.transport()}, ${b.transport()})`);

    // Nothing echoes back to the sender.
    await a.quiet(100);
    await b.quiet(0);
    check(`${label}: no msg echoed to its sender`);

    // B leaves: A is told, and what A sends now is refused with no_peer instead of vanishing.
    b.close();
    await a.expectNotice({ type: 'peer-left', room });
    check(`${label}: A got peer-left when B disconnected`);
    a.send(fromA[0]);
    const notice = await a.expectNotice({ type: 'error', code: 'no_peer', room });
    assert.equal(typeof notice.message, 'string');
    check(`${label}: A alone again: msg answered with switchboard error no_peer (${notice.message})`);
    a.close();
  }

  // A socket that is alone from the start gets no_peer too (v2 and v4).
  for (const version of ['v4', 'v2']) {
    const room = uniqueRoom('alone');
    const solo = await (version === 'v2' ? sioV2 : sioV4)(`solo ${version}`, url, { room }).connected();
    await solo.expectNotice({ type: 'joined', room });
    solo.send(JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP_SHORT } }));
    await solo.expectNotice({ type: 'error', code: 'no_peer', room });
    await solo.quiet(100);
    check(`${version} socket alone in ${room}: msg refused with switchboard error no_peer, nothing relayed`);
    solo.close();
  }
}, { timeoutMs: 40000 });
