// The budget of undelivered engine.io 3 POST bytes (issue 17's security defect), seen by real
// socket.io-client 2 peers with their engine.io long-polling. Counts only, no timing.
//
//   node tests/node/post_budget.mjs MAIN_URL SCENARIO
//
// SCENARIO:
//   waits   (per-address budget 4 MiB, set by the Rust test) a v2 sender whose partner paused
//           polling holds most of its address's budget; another v2 sender of the same address
//           then POSTs a burst that does not fit: the POST waits, its body unread (the gateway's
//           /metrics shows it waiting and its partner gets none of it), and once the paused partner
//           polls again, both bursts arrive whole and in order
//   legit   from 127.0.0.2, while an attacker on 127.0.0.1 fills its own budget (the Rust test):
//           a v2 pair pinned to long-polling and a default-option v2 pair (polling, then the
//           upgrade) send bursts both ways: every offer arrives, in order
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  OFFER_SDP, arg, check, run, sioPair, sioV2, sleep, uniqueRoom,
} from './lib.mjs';

const GAP_MS = 15000;

/** A Chrome-like offer padded with candidate lines to about 6 KB, numbered by `a=x-seq`. */
const PADDING = Array.from({ length: 60 }, (_, i) =>
  `a=candidate:${1000 + i} 1 udp 2122260223 192.0.2.${i % 250} ${40000 + i} typ host generation 0`).join('\r\n');
const offer = (seq) => `${OFFER_SDP}a=x-seq:${seq}\r\n${PADDING}\r\n`;
const seqOf = (sdp) => Number(/a=x-seq:(\d+)/.exec(sdp)?.[1] ?? -1);
const sioOffer = (seq) => JSON.stringify({ sdp: { type: 'offer', sdp: offer(seq) } });

/** Sends `count` offers from `from` at once (one engine.io 3 POST while on long-polling). */
function burst(from, count) {
  for (let seq = 1; seq <= count; seq++) from.send(sioOffer(seq));
}

/** Reads `count` offers at `to`; fails unless all arrive, in order. */
async function whole(what, to, count) {
  for (let expected = 1; expected <= count; expected++) {
    const seq = seqOf(JSON.parse(await to.msg(GAP_MS)).sdp.sdp);
    assert.equal(seq, expected, `${what}: offer ${seq} where ${expected} was due`);
  }
  check(`${what}: ${count} offers of ${offer(1).length} B, all delivered, in order`);
}

/** The value of a `/metrics` series (0 when absent). */
async function metric(url, series) {
  const body = await (await fetch(`${url}/metrics`)).text();
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** Waits (bounded, polling /metrics) until `series` is at least `value`. */
async function metricReaches(url, series, value) {
  for (let i = 0; i < 200; i++) {
    if (await metric(url, series) >= value) return;
    await sleep(50);
  }
  throw new Error(`${series} never reached ${value}: ${await metric(url, series)}`);
}

/** A v2 pair in a fresh room; `options` for both. */
function v2Pair(url, label, options) {
  const room = uniqueRoom(`budget-${label}`);
  return sioPair(
    room,
    () => sioV2(`${label} A`, url, { room, ...options }),
    () => sioV2(`${label} B`, url, { room, ...options }),
  );
}

/** Pauses a v2 peer's long-polling with its own engine.io client (it finishes the poll under
 *  way first); resolves once paused. */
function pausePolling(peer) {
  const transport = peer.socket.io.engine.transport;
  return new Promise((resolve) => transport.pause(resolve));
}

/** Resumes a paused v2 peer's long-polling (what its client does after a failed upgrade). */
function resumePolling(peer) {
  const transport = peer.socket.io.engine.transport;
  transport.readyState = 'open';
  transport.poll();
}

async function waits(url) {
  const polling = { transports: ['polling'] };
  // 600 offers of 5,671 B as socket.io packets: the first alone, then 3.4 MB in one POST, under
  // the 4 MiB budget.
  const count = 600;
  const [s1, p1] = await v2Pair(url, 'held', polling);
  const [s2, q2] = await v2Pair(url, 'waiting', polling);
  const paused = pausePolling(p1);
  burst(s1, count);
  await paused;
  // P1's poll queue (1 MiB), session queue (32) and the poll it finished before pausing (at
  // most 1 MiB) take part of S1's big POST; the rest, at least 1.1 MB, stays in S1's session
  // under the address's budget, and S2's big POST (3.4 MB) does not fit beside it. Waiting for
  // 1 MB held means S1's big POST was reserved (its first POST is one packet).
  await metricReaches(url, 'switchboard_engineio3_post_bytes', 1000000);
  burst(s2, count);
  await metricReaches(url, 'switchboard_engineio3_posts_waiting', 1);
  // socket.io-client 2 sends its first emit alone and buffers the rest for the POST after: that
  // one is what waits. Anything of it relayed would show here.
  await sleep(300);
  const early = q2.inbox.entries.filter((e) => e.kind === 'msg').length;
  assert.ok(early < count / 2, `${early} of ${count} offers arrived while the POST waited`);
  check(`a POST that does not fit the address's budget waits, its body unread: its partner got ${early} of ${count} offers (the client's first POST)`);
  resumePolling(p1);
  await Promise.all([whole('the held sender, once its partner polls again', p1, count),
    whole('the waiting sender, once the budget had room', q2, count)]);
  assert.equal(await metric(url, 'switchboard_engineio3_posts_waiting'), 0);
  check('no POST waits any more');
  for (const peer of [s1, p1, s2, q2]) peer.close();
}

async function legit(url) {
  // The second loopback address, for polling (the XHR's agent) and the WebSocket.
  const from = '127.0.0.2';
  const engine = { agent: new http.Agent({ localAddress: from }), localAddress: from };
  const count = 300;
  for (const [label, options] of [['pinned to long-polling', { transports: ['polling'], engine }],
    ['default options', { engine }]]) {
    const [a, b] = await v2Pair(url, label.replaceAll(' ', '-'), options);
    burst(a, count);
    await whole(`socket.io-client 2 ${label} from ${from}, A -> B`, b, count);
    burst(b, count);
    await whole(`socket.io-client 2 ${label} from ${from}, B -> A`, a, count);
    a.close();
    b.close();
  }
}

run('post_budget', async (args) => {
  const url = arg(args, 0, 'MAIN_URL');
  const scenario = arg(args, 1, 'SCENARIO');
  const scenarios = { waits, legit };
  assert.ok(scenarios[scenario], `unknown scenario ${scenario}`);
  await scenarios[scenario](url);
}, { timeoutMs: 100000 });
