// Cross-dialect calls across two gateway nodes of one cluster: the Ant Media peer is on node A,
// the socket.io peer on node B (both orders). The same checks as sio_bridge.mjs on one node: the
// translation happens on the node the sender is on, the frame crosses Redis, the receiver's node
// renders it in its dialect.
//
//   node tests/node/sio_cluster.mjs NODE_A_URL NODE_B_URL
import assert from 'node:assert/strict';
import {
  ANSWER_SDP, CANDIDATE, OFFER_SDP, WsPeer, arg, check, run, sioV2, sioV4, uniqueRoom,
} from './lib.mjs';

run('sio_cluster', async (args) => {
  const urlA = arg(args, 0, 'NODE_A_URL');
  const urlB = arg(args, 1, 'NODE_B_URL');
  const wsA = urlA.replace(/^http/, 'ws');

  // Ant on A first, socket.io v4 on B second.
  {
    const R = uniqueRoom('cluster-ant-sio');
    const ant = await WsPeer.connect('ant@A', `${wsA}/LiveApp/websocket`);
    ant.send({ command: 'join', streamId: R, multiPeer: false, mode: 'both' });
    await ant.expectJson({ command: 'notification', definition: 'joined', streamId: R }, 'joined');
    const sio = await sioV4('sio v4@B', urlB, { room: R }).connected();
    await ant.expectJson({ command: 'start', streamId: R }, 'start to the Ant peer on A');
    await sio.expectNotice({ type: 'joined', room: R });
    await sio.expectNotice({ type: 'peer-joined', room: R });
    check('Ant@A joined, socket.io@B connected: Ant got start across nodes; socket.io got joined, peer-joined');

    ant.send({ command: 'takeConfiguration', streamId: R, type: 'offer', sdp: OFFER_SDP });
    assert.equal(await sio.msg(), JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } }));
    check('Ant offer on A -> socket.io msg on B (exact string)');

    sio.send(JSON.stringify({ sdp: { type: 'answer', sdp: ANSWER_SDP } }));
    await ant.expectJson(
      { command: 'takeConfiguration', streamId: R, type: 'answer', sdp: ANSWER_SDP, idMapping: {} },
      'answer as takeConfiguration',
    );
    check('socket.io answer on B -> Ant takeConfiguration with idMapping {} on A');

    sio.send(JSON.stringify({
      candidate: { candidate: CANDIDATE.candidate, sdpMid: '0', sdpMLineIndex: 0 },
    }));
    const take = await ant.expectJson(
      { command: 'takeCandidate', streamId: R, label: 0, id: '0', candidate: CANDIDATE.candidate },
      'candidate as takeCandidate',
    );
    assert.equal(typeof take.label, 'number');
    check('socket.io candidate on B -> Ant takeCandidate (numeric label) on A');

    sio.close();
    await ant.expectJson({ command: 'stop', streamId: R }, 'stop after the socket.io peer left');
    check('socket.io@B disconnected -> Ant@A got stop');
    ant.close();
  }

  // socket.io v2 on A first, Ant on B second: the Ant peer (the better offerer) gets start.
  {
    const R = uniqueRoom('cluster-sio-ant');
    const sio = await sioV2('sio v2@A', urlA, { room: R }).connected();
    await sio.expectNotice({ type: 'joined', room: R });
    const ant = await WsPeer.connect('ant@B', `${urlB.replace(/^http/, 'ws')}/WebRTCAppEE/websocket`);
    ant.send({ command: 'join', streamId: R, multiPeer: false, mode: 'both' });
    await ant.expectJson({ command: 'notification', definition: 'joined', streamId: R }, 'joined');
    await ant.expectJson({ command: 'start', streamId: R }, 'start to the joining Ant peer');
    await sio.expectNotice({ type: 'peer-joined', room: R });
    check('socket.io@A first, Ant@B second: Ant got joined then start; socket.io got peer-joined');
    ant.send({ command: 'takeConfiguration', streamId: R, type: 'offer', sdp: OFFER_SDP });
    assert.equal(await sio.msg(), JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } }));
    check('Ant offer on B reaches the v2 socket.io peer on A as the exact msg string');
    ant.send({ command: 'leave', streamId: R });
    await ant.expectJson({ command: 'notification', definition: 'leaved', streamId: R }, 'leaved');
    await sio.expectNotice({ type: 'peer-left', room: R });
    check('Ant@B leave: Ant got notification/leaved, socket.io@A got peer-left');
    ant.close();
    sio.close();
  }

  // socket.io on both nodes: msg strings cross byte-identical.
  {
    const R = uniqueRoom('cluster-sio-sio');
    const one = await sioV4('sio@A', urlA, { room: R }).connected();
    await one.expectNotice({ type: 'joined', room: R });
    const two = await sioV4('sio@B', urlB, { room: R }).connected();
    await two.expectNotice({ type: 'joined', room: R });
    await two.expectNotice({ type: 'peer-joined', room: R });
    await one.expectNotice({ type: 'peer-joined', room: R });
    const odd = '{ "sdp" : {"type":"offer","sdp":"v=0\\r\\n"} , "extra": [1,2] }';
    one.send(odd);
    assert.equal(await two.msg(), odd);
    check('socket.io msg from A reaches socket.io on B byte-identical (spacing and extra keys kept)');
    two.close();
    await one.expectNotice({ type: 'peer-left', room: R });
    check('socket.io@B disconnected -> socket.io@A got peer-left');
    one.close();
  }
}, { timeoutMs: 30000 });
