// The classic SimpleP2P listener (port 7000 in the default config): two sockets that give no
// room pair up in the listener's room and relay `msg`; the page and Switchboard's own socket.io
// client are served; that client, loaded as the page loads it, relays with an npm client. With
// MAIN_URL, rooms are shown to be shared across listeners.
//
//   node tests/node/sio_classic.mjs CLASSIC_URL [MAIN_URL]
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import WebSocket from 'ws';
import { ANSWER_SDP, CANDIDATE, OFFER_SDP, arg, check, run, sioPair, sioV2, sioV4, uniqueRoom, WAIT_MS } from './lib.mjs';

const LISTENER_ROOM = 'simplep2p';

run('sio_classic', async (args) => {
  const classic = arg(args, 0, 'CLASSIC_URL [MAIN_URL]');
  const main = args[1] ? arg(args, 1, 'CLASSIC_URL [MAIN_URL]') : undefined;

  // --- the pages
  const page = await fetch(`${classic}/peer.html`);
  assert.equal(page.status, 200, 'GET /peer.html status');
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/, 'peer.html content-type');
  const html = await page.text();
  assert.match(html, /<!doctype html|<html/i, 'peer.html is an HTML page');
  check(`GET /peer.html: 200 ${page.headers.get('content-type')}, ${html.length} bytes`);
  assert.match(html, /["']\/socket\.io\/socket\.io\.js["']/, 'peer.html loads /socket.io/socket.io.js');
  check('peer.html loads /socket.io/socket.io.js');

  const script = await fetch(`${classic}/socket.io/socket.io.js`);
  assert.equal(script.status, 200, 'GET /socket.io/socket.io.js status');
  const type = script.headers.get('content-type') ?? '';
  assert.match(type, /^(text|application)\/javascript/, `socket.io.js content-type: ${type}`);
  const clientJs = await script.text();
  const npmBundles = [
    'socket.io-client/dist/socket.io.js',
    'socket.io-client/dist/socket.io.min.js',
    'socket.io-client-v2/dist/socket.io.js',
  ].map((f) => readFileSync(new URL(`../../node_modules/${f}`, import.meta.url), 'utf8'));
  assert.ok(!npmBundles.includes(clientJs), 'socket.io.js must be our own client, not an npm bundle');
  assert.match(clientJs, /Switchboard/, "socket.io.js is Switchboard's own client");
  check(`GET /socket.io/socket.io.js: 200 ${type}, ${clientJs.length} bytes, Switchboard's own client`);

  // --- two npm v4 sockets with no room pair up in the listener's room and relay
  const [a, b] = await sioPair(
    LISTENER_ROOM,
    () => sioV4('classic A v4', classic),
    () => sioV4('classic B v4', classic, { transports: ['websocket'] }),
  );
  check(`two v4 sockets without a room met in the listener room "${LISTENER_ROOM}"`);
  const offer = JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } });
  const answer = JSON.stringify({ sdp: { type: 'answer', sdp: ANSWER_SDP } });
  const cand = JSON.stringify({ candidate: CANDIDATE });
  for (const [from, to, m] of [[a, b, offer], [b, a, answer], [a, b, cand], [b, a, cand]]) {
    from.send(m);
    assert.equal(await to.msg(), m, `${from.label} -> ${to.label}`);
  }
  check('classic pair: offer, answer and candidates relayed byte-identical both ways');

  // A third room-less socket is refused: the listener room is a normal two-peer room.
  const c = sioV2('classic C v2', classic);
  assert.match(await c.refused(), /room_full/);
  check('a third room-less socket (v2) is refused with room_full');
  c.close();
  b.close();
  await a.expectNotice({ type: 'peer-left', room: LISTENER_ROOM });

  // --- the served client, run the way the page runs it (a classic script defining `io`),
  // pairs with the npm client that stayed.
  const sandbox = {
    WebSocket, URL, URLSearchParams, setTimeout, clearTimeout, setInterval, clearInterval, console,
  };
  sandbox.self = sandbox;
  vm.createContext(sandbox);
  vm.runInContext(clientJs, sandbox, { filename: 'socket.io.js (served)' });
  assert.equal(typeof sandbox.io, 'function', 'the served client defines a global io()');
  const own = sandbox.io(classic, { reconnection: false });
  const ownInbox = [];
  const ownWaiters = [];
  const ownPush = (kind, value) => {
    const w = ownWaiters.findIndex((x) => x.kind === kind);
    if (w >= 0) ownWaiters.splice(w, 1)[0].resolve(value);
    else ownInbox.push({ kind, value });
  };
  const ownNext = (kind) => {
    const i = ownInbox.findIndex((e) => e.kind === kind);
    if (i >= 0) return Promise.resolve(ownInbox.splice(i, 1)[0].value);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`served client: no ${kind} within ${WAIT_MS} ms`)), WAIT_MS);
      ownWaiters.push({ kind, resolve: (v) => { clearTimeout(timer); resolve(v); } });
    });
  };
  for (const kind of ['connect', 'connect_error', 'msg', 'switchboard']) own.on(kind, (v) => ownPush(kind, v));
  try {
    await ownNext('connect');
    assert.deepEqual({ ...(await ownNext('switchboard')) }, { type: 'joined', room: LISTENER_ROOM });
    await a.expectNotice({ type: 'peer-joined', room: LISTENER_ROOM });
    check("Switchboard's served client connected to the classic listener and joined the listener room");
    own.emit('msg', offer);
    assert.equal(await a.msg(), offer);
    a.send(answer);
    assert.equal(await ownNext('msg'), answer);
    check('served client <-> npm v4 client: msg relayed byte-identical both ways');
  } finally {
    own.disconnect();
  }
  a.close();

  // --- rooms are global: ?room=R on the classic listener meets ?room=R on the main listener.
  if (main) {
    const room = uniqueRoom('cross-listener');
    const [x, y] = await sioPair(
      room,
      () => sioV4('classic X v4', classic, { room }),
      () => sioV2('main Y v2', main, { room }),
    );
    x.send(cand);
    assert.equal(await y.msg(), cand);
    y.send(offer);
    assert.equal(await x.msg(), offer);
    check(`classic listener ?room=${room} and main listener ?room=${room} are one room; relay works`);
    x.close();
    y.close();
  }
});
