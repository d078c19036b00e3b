// socket.io-client v4 passes the join token in its connect `auth` payload
// (`io(url, {auth: {token}})`), which keeps it out of URLs and proxy access logs. The gateway's
// room policy requires a JWT for the room: a client with the token in `auth` connects, on the
// direct WebSocket path and on socketioxide's polling path alike; one without a token, or with
// a forged one, gets `connect_error` naming `unauthorized`.
//
//   node tests/node/sio_auth_token.mjs MAIN_URL ROOM TOKEN
import assert from 'node:assert/strict';
import { arg, check, run, sioV4 } from './lib.mjs';

run('sio_auth_token', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const room = arg(args, 1, 'ROOM');
  const token = arg(args, 2, 'TOKEN');

  const a = await sioV4('A ws', url, { room, transports: ['websocket'], auth: { token } }).connected();
  check('v4 client with the token in auth connects (direct WebSocket)');
  const b = await sioV4('B polling', url, { room, transports: ['polling'], auth: { token } }).connected();
  check('v4 client with the token in auth connects (polling, socketioxide)');

  const none = sioV4('C none', url, { room, transports: ['websocket'] });
  assert.match(await none.refused(), /unauthorized/);
  check('v4 client without a token is refused with unauthorized');
  none.close();

  // Another signature: the last character changed in its significant bits (still canonical).
  const forged = `${token.slice(0, -1)}${token.endsWith("A") ? "Q" : "A"}`;
  const bad = sioV4('D forged', url, { room, transports: ['polling'], auth: { token: forged } });
  assert.match(await bad.refused(), /unauthorized/);
  check('v4 client with a forged token in auth is refused with unauthorized');
  bad.close();
  a.close();
  b.close();
});
