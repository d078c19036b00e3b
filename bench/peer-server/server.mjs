// The PeerJS baseline of bench/run.sh: the `peer` server (npm, PeerJS's own) with its defaults
// but two: the concurrent-client cap (5,000 by default) raised for the idle scenario, and the
// loopback address. Usage: node bench/peer-server/server.mjs PORT [HOST]
import { PeerServer } from 'peer';

const port = Number(process.argv[2] || 9000);
const host = process.argv[3] || '127.0.0.1';
PeerServer({ port, host, path: '/', key: 'peerjs', concurrent_limit: 1_000_000 }, () => {
  console.log(`peer server on ${host}:${port}`);
});
