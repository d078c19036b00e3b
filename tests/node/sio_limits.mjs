// `[limits]` for socket.io clients, against a gateway configured by tests/tests/limits.rs with
// messages_per_sec = 0.5, message_burst = 2, rate_limit_close_after = 2,
// max_connections_per_ip = 2 and allowed_origins = ["https://app.example"]:
// - a page from another origin cannot connect (HTTP 403 on the handshake: connect_error), one
//   from the allowed origin can;
// - over the message rate, a `switchboard` error notice with code `rate_limited`, then the
//   socket is disconnected by the server;
// - a third socket from one address gets connect_error `too_many_connections`.
//
//   node tests/node/sio_limits.mjs MAIN_URL
import assert from 'node:assert/strict';
import { io as ioV4 } from 'socket.io-client';
import { arg, check, run, sioV4, sleep, uniqueRoom } from './lib.mjs';

/** Resolves with 'connect' or the connect_error message. */
function outcome(socket, ms = 5000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    socket.on('connect', () => { clearTimeout(timer); resolve('connect'); });
    socket.on('connect_error', (e) => { clearTimeout(timer); resolve(`connect_error: ${e && e.message}`); });
  });
}

run('sio_limits', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');

  // Origins: the handshake of a page from elsewhere is refused, for both transports.
  for (const transports of [['polling'], ['websocket']]) {
    const evil = ioV4(url, {
      forceNew: true, reconnection: false, transports, query: { room: uniqueRoom('o') },
      extraHeaders: { Origin: 'https://evil.example' },
    });
    const result = await outcome(evil);
    evil.close();
    assert.match(result, /^connect_error/, `evil origin over ${transports}: ${result}`);
    check(`a page from https://evil.example cannot connect over ${transports} (${result})`);
  }
  const good = ioV4(url, {
    forceNew: true, reconnection: false, transports: ['polling'], query: { room: uniqueRoom('o') },
    extraHeaders: { Origin: 'https://app.example' },
  });
  assert.equal(await outcome(good), 'connect');
  good.close();
  check('a page from the allowed origin connects');
  await sleep(200);

  // Message rate: two requests pass, the third is refused, the fourth gets the socket closed.
  const a = await sioV4('A', url, { room: uniqueRoom('rate'), transports: ['websocket'] }).connected();
  await a.expectNotice({ type: 'joined' });
  for (let i = 0; i < 2; i += 1) {
    a.socket.emit('switchboard', { type: 'ice-servers' });
    await a.expectNotice({ type: 'ice-servers' });
  }
  check('two requests within the burst are answered');
  a.socket.emit('switchboard', { type: 'ice-servers' });
  const refused = await a.expectNotice({ type: 'error', code: 'rate_limited' });
  assert.match(refused.message, /messages per second/);
  check(`the third is refused: ${refused.message}`);
  a.socket.emit('switchboard', { type: 'ice-servers' });
  const reason = await a.disconnected();
  assert.equal(reason, 'io server disconnect');
  check('after sustained abuse the server disconnects the socket');
  a.close();
  await sleep(200);

  // Per-IP cap: two sockets, then a refusal.
  const b = await sioV4('B', url, { room: uniqueRoom('cap') }).connected();
  const c = await sioV4('C', url, { room: uniqueRoom('cap') }).connected();
  const d = sioV4('D', url, { room: uniqueRoom('cap') });
  const message = await d.refused();
  assert.match(message, /too_many_connections/);
  check(`a third socket from one address: connect_error "${message}"`);
  d.close();
  b.close();
  c.close();
}, { timeoutMs: 30000 });
