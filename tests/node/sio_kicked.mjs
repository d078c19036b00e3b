// A socket.io client kicked through the admin API gets a `switchboard` error notice naming the
// operator, then a server disconnect. Run by tests/tests/admin.rs, which kicks the session once
// this script prints `ready`.
//
//   node tests/node/sio_kicked.mjs MAIN_URL ROOM
import assert from 'node:assert/strict';
import { arg, check, run, sioV4 } from './lib.mjs';

run('sio_kicked', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const room = arg(args, 1, 'ROOM');
  const peer = await sioV4('sio', url, { room, transports: ['websocket'] }).connected();
  await peer.expectNotice({ type: 'joined', room });
  console.log('ready');
  const notice = await peer.expectNotice({ type: 'error', code: 'refused' }, 10000);
  assert.match(notice.message, /operator/);
  check(`got the error notice: ${notice.message}`);
  assert.equal(await peer.disconnected(10000), 'io server disconnect');
  check('was disconnected by the server');
}, { timeoutMs: 30000 });
