// Signals from one socket.io client reach its partner in the order they were sent. WebRTC needs
// it: a candidate that overtakes its offer/answer is refused by addIceCandidate ("remote
// description was null"), and the Ant SDK drops or mishandles it. Bursts are normal: a browser
// emits its offer and then a dozen candidates within milliseconds.
//
// Every scenario runs, and all reorderings found are reported together at the end.
//
//   node tests/node/sio_order.mjs MAIN_URL
import {
  ANSWER_SDP, CANDIDATE, OFFER_SDP, WsPeer, arg, check, run, sioPair, sioV2, sioV4, uniqueRoom,
} from './lib.mjs';

const BURST = 60;

/** The i-th candidate of a burst: unique port, so order can be read back. */
function candidate(i) {
  return { ...CANDIDATE, candidate: CANDIDATE.candidate.replace('51121', String(40000 + i)) };
}
const portOf = (text) => Number(/ (\d{5}) typ /.exec(text)?.[1]) - 40000;

/** The received order, as indices, compared with 0..n-1; returns a description or null. */
function disorder(label, got) {
  const expected = got.map((_, i) => i);
  if (got.every((v, i) => v === expected[i])) return null;
  const firstBad = got.findIndex((v, i) => v !== i);
  return `${label}: received order ${JSON.stringify(got.slice(0, 40))}${got.length > 40 ? '...' : ''} `
    + `(first out of place at position ${firstBad})`;
}

run('sio_order', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const wsBase = url.replace(/^http/, 'ws');
  const failures = [];

  // socket.io -> socket.io, several client/transport combinations.
  const combos = [
    ['v4(ws) -> v4(ws)', () => ['v4', ['websocket']], () => ['v4', ['websocket']]],
    ['v2(ws) -> v4(default)', () => ['v2', ['websocket']], () => ['v4', undefined]],
    ['v4(polling) -> v2(ws)', () => ['v4', ['polling']], () => ['v2', ['websocket']]],
  ];
  for (const [label, first, second] of combos) {
    const room = uniqueRoom('order');
    const make = (name, [version, transports]) => () =>
      (version === 'v2' ? sioV2 : sioV4)(`${label} ${name}`, url, { room, transports });
    const [a, b] = await sioPair(room, make('A', first()), make('B', second()));
    const sent = [JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } })];
    for (let i = 1; i < BURST; i++) sent.push(JSON.stringify({ candidate: candidate(i) }));
    for (const m of sent) a.send(m);
    const got = [];
    for (let i = 0; i < sent.length; i++) {
      const m = await b.msg();
      got.push(sent.indexOf(m));
    }
    const bad = disorder(label, got);
    if (bad) failures.push(bad);
    else check(`${label}: offer + ${BURST - 1} candidates sent in a burst arrive in order`);
    a.close();
    b.close();
  }

  // socket.io -> raw: the raw peer offers (it is told `switchboard.start`); the socket.io peer
  // answers and then trickles its candidates.
  {
    const room = uniqueRoom('order-raw');
    const raw = await WsPeer.connect('raw', `${wsBase}/ws/${room}`);
    await raw.expectJson({ type: 'switchboard.joined', room }, 'joined notice');
    const sio = await sioV4('sio->raw v4', url, { room, transports: ['websocket'] }).connected();
    await raw.expectJson({ type: 'switchboard.start', room }, 'start notice');
    sio.send(JSON.stringify({ sdp: { type: 'answer', sdp: ANSWER_SDP } }));
    for (let i = 1; i < BURST; i++) sio.send(JSON.stringify({ candidate: candidate(i) }));
    const got = [];
    for (let i = 0; i < BURST; i++) {
      const frame = await raw.json();
      got.push(frame.type === 'answer' ? 0 : frame.type === 'candidate' ? portOf(frame.candidate.candidate) : -1);
    }
    const bad = disorder('socket.io v4 -> raw', got);
    if (bad) failures.push(bad);
    else check(`socket.io v4 -> raw: answer + ${BURST - 1} candidates arrive in order`);

    // The other way is a plain WebSocket session: in order as well.
    raw.send({ type: 'offer', sdp: OFFER_SDP });
    for (let i = 1; i < BURST; i++) raw.send({ type: 'candidate', candidate: candidate(i) });
    const back = [];
    for (let i = 0; i < BURST; i++) {
      const signal = JSON.parse(await sio.msg());
      back.push(signal.sdp ? 0 : portOf(signal.candidate.candidate));
    }
    const badBack = disorder('raw -> socket.io v4', back);
    if (badBack) failures.push(badBack);
    else check(`raw -> socket.io v4: offer + ${BURST - 1} candidates arrive in order`);
    sio.close();
    raw.close();
  }

  // socket.io -> Ant Media: the Ant peer offers (`start`); the socket.io peer answers and
  // trickles.
  {
    const room = uniqueRoom('order-ant');
    const ant = await WsPeer.connect('ant', `${wsBase}/LiveApp/websocket`);
    ant.send({ command: 'join', streamId: room, multiPeer: false, mode: 'both' });
    await ant.expectJson({ command: 'notification', definition: 'joined', streamId: room }, 'joined');
    const sio = await sioV2('sio->ant v2', url, { room, transports: ['websocket'] }).connected();
    await ant.expectJson({ command: 'start', streamId: room }, 'start');
    sio.send(JSON.stringify({ sdp: { type: 'answer', sdp: ANSWER_SDP } }));
    for (let i = 1; i < BURST; i++) sio.send(JSON.stringify({ candidate: candidate(i) }));
    const got = [];
    for (let i = 0; i < BURST; i++) {
      const frame = await ant.json();
      got.push(frame.command === 'takeConfiguration' ? 0 : frame.command === 'takeCandidate' ? portOf(frame.candidate) : -1);
    }
    const bad = disorder('socket.io v2 -> Ant', got);
    if (bad) failures.push(bad);
    else check(`socket.io v2 -> Ant: answer + ${BURST - 1} candidates arrive in order`);
    sio.close();
    ant.close();
  }

  if (failures.length > 0) {
    throw new Error(`signals from a socket.io client were reordered (${failures.length} scenarios):\n  ${failures.join('\n  ')}`);
  }
}, { timeoutMs: 30000 });
