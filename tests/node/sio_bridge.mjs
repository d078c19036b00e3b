// Cross-dialect translation between a socket.io client and the two WebSocket dialects, over the
// `ws` package: Ant Media JSON at /LiveApp/websocket and raw JSON at /ws/{room}.
//
// socket.io `msg` strings that the gateway builds from another dialect's signal are compared as
// exact strings (they are what JSON.stringify({sdp}) / JSON.stringify({candidate}) of a browser
// object gives); Ant and raw frames are compared as parsed JSON (key order does not matter).
//
//   node tests/node/sio_bridge.mjs MAIN_URL
import assert from 'node:assert/strict';
import {
  ANSWER_SDP, CANDIDATE, OFFER_SDP, WsPeer, arg, check, run, sioV2, sioV4, uniqueRoom,
} from './lib.mjs';

run('sio_bridge', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const wsBase = url.replace(/^http/, 'ws');

  // ---------------------------------------------------------------- Ant Media <-> socket.io
  {
    const R = uniqueRoom('bridge-ant');
    const ant = await WsPeer.connect('ant', `${wsBase}/LiveApp/websocket`);
    ant.send({ command: 'join', streamId: R, multiPeer: false, mode: 'both' });
    await ant.expectJson({ command: 'notification', definition: 'joined', streamId: R }, 'joined');
    check(`Ant peer joined ${R}: notification/joined`);

    const sio = await sioV4('sio v4 (with ant)', url, { room: R }).connected();
    await ant.expectJson({ command: 'start', streamId: R }, 'start to the Ant peer');
    check('socket.io v4 peer connected with ?room=R: the Ant peer got start (it offers)');
    await sio.expectNotice({ type: 'joined', room: R });
    await sio.expectNotice({ type: 'peer-joined', room: R });
    check('the socket.io peer got joined, then peer-joined (no start: the classic page dials by hand)');

    // Ant offer -> socket.io msg string.
    ant.send({ command: 'takeConfiguration', streamId: R, type: 'offer', sdp: OFFER_SDP });
    const offerMsg = await sio.msg();
    assert.equal(typeof offerMsg, 'string', 'msg argument is a string');
    assert.equal(offerMsg, JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } }), 'offer as msg string');
    check('Ant takeConfiguration offer -> socket.io msg {"sdp":{"type":"offer","sdp":...}} (exact string)');

    // socket.io answer -> Ant takeConfiguration with idMapping {}.
    sio.send(JSON.stringify({ sdp: { type: 'answer', sdp: ANSWER_SDP } }));
    await ant.expectJson(
      { command: 'takeConfiguration', streamId: R, type: 'answer', sdp: ANSWER_SDP, idMapping: {} },
      'answer as takeConfiguration',
    );
    check('socket.io msg answer -> Ant takeConfiguration answer with idMapping {}');

    // Ant candidate -> socket.io.
    const antCandidate = 'candidate:1467250027 1 udp 2122260223 192.0.2.7 46243 typ host generation 0 ufrag Zq9x network-id 1';
    ant.send({ command: 'takeCandidate', streamId: R, label: 1, id: '1', candidate: antCandidate });
    assert.equal(
      await sio.msg(),
      JSON.stringify({ candidate: { candidate: antCandidate, sdpMid: '1', sdpMLineIndex: 1 } }),
      'candidate as msg string',
    );
    check('Ant takeCandidate label 1 id "1" -> socket.io msg {"candidate":{candidate,"sdpMid":"1","sdpMLineIndex":1}} (exact string)');

    // socket.io candidate (with usernameFragment) -> Ant takeCandidate with a numeric label.
    sio.send(JSON.stringify({
      candidate: { candidate: CANDIDATE.candidate, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'abcd' },
    }));
    const take = await ant.expectJson(
      { command: 'takeCandidate', streamId: R, label: 0, id: '0', candidate: CANDIDATE.candidate },
      'candidate as takeCandidate',
    );
    assert.equal(typeof take.label, 'number', 'label is a number');
    check('socket.io candidate -> Ant takeCandidate with label a number (0) and id "0"');

    // A socket.io msg that is no signal means nothing to the Ant SDK: not delivered; the sender
    // is told.
    sio.send('{"hello":1}');
    const refused = await sio.expectNotice({ type: 'error', code: 'no_peer', room: R });
    await ant.quiet(150);
    check(`non-signal socket.io msg is not delivered to the Ant peer; sender got error no_peer (${refused.message})`);

    // socket.io disconnects -> Ant stop.
    sio.close();
    await ant.expectJson({ command: 'stop', streamId: R }, 'stop after the socket.io peer left');
    check('socket.io peer disconnected -> the Ant peer got stop');
    ant.close();
  }

  // The other order: socket.io first, Ant second (on another app name); Ant still offers.
  {
    const R = uniqueRoom('bridge-ant2');
    const sio = await sioV2('sio v2 (ant joins second)', url, { room: R }).connected();
    await sio.expectNotice({ type: 'joined', room: R });
    const ant = await WsPeer.connect('ant2', `${wsBase}/WebRTCAppEE/websocket`);
    ant.send({ command: 'join', streamId: R, multiPeer: false, mode: 'both' });
    await ant.expectJson({ command: 'notification', definition: 'joined', streamId: R }, 'joined');
    await ant.expectJson({ command: 'start', streamId: R }, 'start to the joining Ant peer');
    await sio.expectNotice({ type: 'peer-joined', room: R });
    check('socket.io v2 first, Ant second (another app name): Ant got joined then start; socket.io got peer-joined');
    ant.send({ command: 'takeConfiguration', streamId: R, type: 'offer', sdp: OFFER_SDP });
    assert.equal(await sio.msg(), JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } }));
    check('Ant offer reaches the v2 socket.io peer as the exact msg string');
    ant.send({ command: 'leave', streamId: R });
    await ant.expectJson({ command: 'notification', definition: 'leaved', streamId: R }, 'leaved');
    await sio.expectNotice({ type: 'peer-left', room: R });
    check('Ant leave: Ant got notification/leaved, socket.io got peer-left');
    ant.close();
    sio.close();
  }

  // ---------------------------------------------------------------- raw <-> socket.io
  // raw first: it is told it offers when the socket.io peer arrives.
  {
    const R = uniqueRoom('bridge-raw');
    const raw = await WsPeer.connect('raw', `${wsBase}/ws/${R}`);
    await raw.expectJson({ type: 'switchboard.joined', room: R }, 'joined notice');
    const sio = await sioV4('sio v4 (with raw)', url, { room: R, transports: ['websocket'] }).connected();
    await raw.expectJson({ type: 'switchboard.start', room: R }, 'start notice');
    await sio.expectNotice({ type: 'joined', room: R });
    await sio.expectNotice({ type: 'peer-joined', room: R });
    check('raw first, socket.io second: raw got switchboard.joined then switchboard.start; socket.io got joined, peer-joined');
    sio.close();
    await raw.expectJson({ type: 'switchboard.peer-left', room: R }, 'peer-left notice');
    check('socket.io peer disconnected -> raw got switchboard.peer-left');
    raw.close();
  }

  // socket.io first: the raw joiner gets joined first, then start; then the full exchange.
  {
    const R = uniqueRoom('bridge-raw2');
    const sio = await sioV4('sio v4 (raw joins second)', url, { room: R }).connected();
    await sio.expectNotice({ type: 'joined', room: R });
    const raw = await WsPeer.connect('raw2', `${wsBase}/ws/${R}`);
    await raw.expectJson({ type: 'switchboard.joined', room: R }, 'joined notice first');
    await raw.expectJson({ type: 'switchboard.start', room: R }, 'then start');
    await sio.expectNotice({ type: 'peer-joined', room: R });
    check('socket.io first, raw second: raw got switchboard.joined, then switchboard.start; socket.io got peer-joined');

    raw.send({ type: 'offer', sdp: OFFER_SDP });
    assert.equal(await sio.msg(), JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } }));
    check('raw {"type":"offer",sdp} -> socket.io msg {"sdp":{"type":"offer","sdp":...}} (exact string)');

    sio.send(JSON.stringify({ sdp: { type: 'answer', sdp: ANSWER_SDP } }));
    await raw.expectJson({ type: 'answer', sdp: ANSWER_SDP }, 'answer to raw');
    check('socket.io answer -> raw {"type":"answer",sdp}');

    sio.send(JSON.stringify({ candidate: CANDIDATE }));
    await raw.expectJson({ type: 'candidate', candidate: CANDIDATE }, 'candidate to raw');
    check('socket.io candidate (with usernameFragment) -> raw {"type":"candidate","candidate":{...}} with every field');

    // simple-peer's shape and a bare candidate, raw -> socket.io.
    const rawCandidate = { candidate: 'candidate:842163049 1 udp 1677729535 198.51.100.4 61823 typ srflx raddr 0.0.0.0 rport 0 generation 0', sdpMid: '1', sdpMLineIndex: 1 };
    raw.send({ type: 'candidate', candidate: rawCandidate });
    assert.equal(await sio.msg(), JSON.stringify({ candidate: rawCandidate }));
    raw.send(rawCandidate);
    assert.equal(await sio.msg(), JSON.stringify({ candidate: rawCandidate }));
    check('raw candidate (simple-peer shape and bare) -> socket.io msg {"candidate":{...}} (exact string)');

    // An unrecognized raw frame is not for a socket.io peer: not delivered, sender told.
    raw.send({ type: 'renegotiate', renegotiate: true });
    const error = await raw.json();
    assert.equal(error.type, 'switchboard.error', `raw got ${JSON.stringify(error)}`);
    assert.equal(typeof error.code, 'string');
    assert.equal(typeof error.message, 'string');
    await sio.quiet(200);
    check(`unrecognized raw frame {"type":"renegotiate"} not delivered to socket.io; raw got switchboard.error ${error.code}: ${error.message}`);
    // ... and not delivered late either: the next thing socket.io gets is the next signal.
    raw.send({ type: 'candidate', candidate: rawCandidate });
    assert.equal(await sio.msg(), JSON.stringify({ candidate: rawCandidate }));
    check('the next raw signal is the next msg the socket.io peer gets');

    raw.close();
    await sio.expectNotice({ type: 'peer-left', room: R });
    check('raw closed -> socket.io got peer-left');
    sio.close();
  }

  // Notices to raw peers never look like a peer signal.
  {
    const R = uniqueRoom('bridge-raw3');
    const raw = await WsPeer.connect('raw3', `${wsBase}/ws/${R}`);
    const signalTypes = ['offer', 'answer', 'candidate', 'pranswer', 'rollback', 'renegotiate', 'transceiverRequest'];
    const joined = await raw.json();
    const v2 = await sioV2('sio v2 (raw3)', url, { room: R, transports: ['websocket'] }).connected();
    const start = await raw.json();
    v2.close();
    const left = await raw.json();
    for (const notice of [joined, start, left]) {
      assert.ok(!signalTypes.includes(notice.type) && notice.type.startsWith('switchboard.'), JSON.stringify(notice));
    }
    check(`notices to raw (${[joined, start, left].map((n) => n.type).join(', ')}) are all switchboard.* types`);
    raw.close();
  }
});
