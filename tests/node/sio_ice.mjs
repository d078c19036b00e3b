// A socket.io client asks the gateway for ICE servers (event `switchboard`
// `{type:"ice-servers"}`) and prints the answer as one JSON line. Run by tests/tests/turn.rs.
//
//   node tests/node/sio_ice.mjs MAIN_URL
import { arg, check, run, sioV4, uniqueRoom } from './lib.mjs';

run('sio_ice', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const peer = await sioV4('sio', url, { room: uniqueRoom('ice') }).connected();
  await peer.expectNotice({ type: 'joined' });
  peer.socket.emit('switchboard', { type: 'ice-servers' });
  const answer = await peer.expectNotice({ type: 'ice-servers' });
  console.log(JSON.stringify(answer));
  check('got an ice-servers answer');
});
