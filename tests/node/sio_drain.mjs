// A socket.io client (v4 and v2) sees a graceful drain: a `switchboard` notice
// `{type:"server-will-stop"}`, then a server-side disconnect. Run by tests/tests/drain.rs, which
// starts the drain once this script prints `ready`.
//
//   node tests/node/sio_drain.mjs MAIN_URL ROOM
import assert from 'node:assert/strict';
import { arg, check, run, sioV2, sioV4 } from './lib.mjs';

run('sio_drain', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const room = arg(args, 1, 'ROOM');
  const v4 = await sioV4('v4', url, { room, transports: ['websocket'] }).connected();
  await v4.expectNotice({ type: 'joined', room });
  const v2 = await sioV2('v2', url, { room: `${room}-v2` }).connected();
  await v2.expectNotice({ type: 'joined' });
  console.log('ready');
  for (const peer of [v4, v2]) {
    await peer.expectNotice({ type: 'server-will-stop' }, 10000);
    check(`${peer.label} got the server-will-stop notice`);
    const reason = await peer.disconnected(10000);
    assert.match(reason, /io server disconnect|transport close/);
    check(`${peer.label} was disconnected by the server (${reason})`);
  }
}, { timeoutMs: 30000 });
