// Records the engine.io 3 payload golden files (protocol/tests/golden/engineio3/) with the real
// engine.io-parser 2 that socket.io-client 2 uses: `node tests/node/eio3_golden_record.cjs`.
const parser = require(require('path').join(__dirname, '../../node_modules/socket.io-client-v2/node_modules/engine.io-parser'));
const fs = require('fs');
const dir = require('path').join(__dirname, '../../protocol/tests/golden/engineio3');
const cases = {
  ping: [{ type: 'ping' }],
  probe_upgrade: [{ type: 'ping', data: 'probe' }, { type: 'upgrade' }],
  msg_and_ping: [{ type: 'message', data: '2["msg","{\\"sdp\\":{\\"type\\":\\"offer\\",\\"sdp\\":\\"v=0\\"}}"]' }, { type: 'ping' }],
  wide_characters: [{ type: 'message', data: '2["msg","é ☎ 😀 𝄞"]' }, { type: 'message', data: '2["msg","x"]' }],
  close: [{ type: 'message', data: '1' }, { type: 'close' }],
};
for (const [name, packets] of Object.entries(cases)) {
  parser.encodePayload(packets, false, (payload) => {
    fs.writeFileSync(`${dir}/${name}.payload.txt`, payload);
    const texts = packets.map((p) => { let t; parser.encodePacket(p, false, false, (e) => { t = e; }); return t; });
    fs.writeFileSync(`${dir}/${name}.packets.json`, JSON.stringify(texts, null, 1) + '\n');
  });
}
