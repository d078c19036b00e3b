// Shared helpers for the end-to-end node scripts in this directory. Each script is run by a Rust
// test in tests/tests/*.rs (`switchboard_tests::node(...)`) against an in-process gateway, and can
// also be run by hand against a running gateway:
//
//   node tests/node/sio_relay.mjs http://127.0.0.1:5080
//
// Conventions: one `ok - ...` line per check on stdout; on failure a `FAIL ...` message on stderr
// and a non-zero exit; a hard overall deadline; every wait is bounded; every client is closed
// before exit.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { io as ioV4 } from 'socket.io-client';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
/** socket.io-client 2.5.0 (CommonJS): the package export is the `io` function. */
const ioV2 = require('socket.io-client-v2');

/** How long a single expected event may take. */
export const WAIT_MS = 5000;

/** Every client opened through this module, closed by `run` on exit. */
const open = new Set();
let lastCheck = '(none yet)';

/** Prints one passed check. */
export function check(label) {
  lastCheck = label;
  console.log(`ok - ${label}`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh room name that no other test uses (valid for every dialect: [a-z0-9-]). */
export function uniqueRoom(prefix) {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** Short, printable rendering of a value for messages. */
export function show(value) {
  let text;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 300 ? `${text.slice(0, 300)}... (${text.length} chars)` : text;
}

/**
 * Runs `body(argv)` with an overall deadline, closes every client, and exits: 0 on success,
 * 1 with the error on failure or timeout.
 */
export function run(name, body, { timeoutMs = 15000 } = {}) {
  const args = process.argv.slice(2);
  const timer = setTimeout(() => {
    console.error(`FAIL ${name}: overall timeout after ${timeoutMs} ms; last passed check: ${lastCheck}`);
    closeAll();
    process.exit(1);
  }, timeoutMs);
  (async () => body(args))().then(
    () => {
      clearTimeout(timer);
      closeAll();
      console.log(`ok - ${name}: all checks passed`);
      // socket.io/engine.io clients can leave timers behind; do not wait for them.
      setTimeout(() => process.exit(0), 50);
    },
    (error) => {
      clearTimeout(timer);
      console.error(`FAIL ${name}: ${error && error.stack ? error.stack : error}`);
      console.error(`last passed check: ${lastCheck}`);
      closeAll();
      setTimeout(() => process.exit(1), 50);
    },
  );
}

function closeAll() {
  for (const client of open) {
    try {
      client.close();
    } catch {
      // already gone
    }
  }
  open.clear();
}

/** The argument at `index`, or a usage error. */
export function arg(args, index, what) {
  const value = args[index];
  if (!value) {
    throw new Error(`usage: node ${process.argv[1]} ${what}`);
  }
  return value.replace(/\/+$/, '');
}

/**
 * An ordered record of what a client received, with bounded waits. Entries are `{kind, value}`;
 * a wait takes the oldest entry of the kinds it asks for, so nothing is lost to a race between
 * an event arriving and a test starting to wait for it.
 */
class Inbox {
  constructor(label) {
    this.label = label;
    this.entries = [];
    this.waiters = [];
  }

  push(kind, value) {
    const index = this.waiters.findIndex((w) => w.kinds.includes(kind));
    if (index >= 0) {
      const [waiter] = this.waiters.splice(index, 1);
      waiter.resolve({ kind, value });
    } else {
      this.entries.push({ kind, value });
    }
  }

  /** The next entry of one of `kinds`: `{kind, value}`. */
  nextOf(kinds, ms = WAIT_MS) {
    const index = this.entries.findIndex((e) => kinds.includes(e.kind));
    if (index >= 0) {
      return Promise.resolve(this.entries.splice(index, 1)[0]);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        kinds,
        resolve: (entry) => {
          clearTimeout(timer);
          resolve(entry);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        const seen = this.entries.map((e) => `${e.kind}:${show(e.value)}`).join(', ') || 'nothing';
        reject(new Error(`${this.label}: no ${kinds.join('|')} within ${ms} ms (unread: ${seen})`));
      }, ms);
      this.waiters.push(waiter);
    });
  }

  /** The value of the next entry of `kind`. */
  async next(kind, ms = WAIT_MS) {
    return (await this.nextOf([kind], ms)).value;
  }

  /** Fails if an entry of one of `kinds` is waiting now or arrives within `ms`. */
  async nothing(kinds, ms) {
    await sleep(ms);
    const found = this.entries.find((e) => kinds.includes(e.kind));
    if (found) {
      throw new Error(`${this.label}: expected no ${kinds.join('|')}, got ${found.kind}: ${show(found.value)}`);
    }
  }
}

// ---------------------------------------------------------------- socket.io clients

const SIO_EVENTS = ['connect', 'connect_error', 'error', 'disconnect', 'msg', 'switchboard'];

/** A socket.io client (v4 or v2) whose events are recorded in an inbox. */
export class SioPeer {
  /**
   * @param {string} label name used in messages
   * @param {'v4'|'v2'} version which npm client
   * @param {string} url gateway base URL
   * @param {{room?: string, transports?: string[], auth?: object, upgrade?: boolean,
   *   engine?: object}} options
   *   (`auth`: the v4 connect payload, e.g. `{token}`; `upgrade: false`: no upgrade until the
   *   test starts one with `probe()`; `engine`: more client options, e.g. an `agent` and
   *   `localAddress` to connect from another loopback address)
   */
  constructor(label, version, url, { room, transports, auth, upgrade, engine } = {}) {
    this.label = label;
    this.version = version;
    this.inbox = new Inbox(label);
    const opts = { forceNew: true, reconnection: false, timeout: WAIT_MS };
    if (room !== undefined) opts.query = { room };
    if (transports) opts.transports = transports;
    if (auth) opts.auth = auth;
    if (upgrade === false) opts.upgrade = false;
    Object.assign(opts, engine);
    this.socket = version === 'v2' ? ioV2(url, opts) : ioV4(url, opts);
    for (const event of SIO_EVENTS) {
      this.socket.on(event, (value) => this.inbox.push(event, value));
    }
    open.add(this);
  }

  /** Waits for `connect`; fails with the refusal if the gateway refused the socket. */
  async connected(ms = WAIT_MS) {
    const { kind, value } = await this.inbox.nextOf(['connect', 'connect_error', 'error', 'disconnect'], ms);
    if (kind !== 'connect') {
      throw new Error(`${this.label}: expected connect, got ${kind}: ${show(errorText(value))}`);
    }
    return this;
  }

  /** Waits for the gateway's refusal: v4 `connect_error`, v2 `error`; returns its message. */
  async refused(ms = WAIT_MS) {
    const expected = this.version === 'v2' ? 'error' : 'connect_error';
    const { kind, value } = await this.inbox.nextOf(['connect', 'connect_error', 'error'], ms);
    assert.equal(kind, expected, `${this.label}: expected ${expected}, got ${kind}: ${show(errorText(value))}`);
    return errorText(value);
  }

  /** The next `msg` argument. */
  msg(ms = WAIT_MS) {
    return this.inbox.next('msg', ms);
  }

  /** The next gateway notice (event `switchboard`). */
  notice(ms = WAIT_MS) {
    return this.inbox.next('switchboard', ms);
  }

  /** Expects the next notice to have `type` (and the other given fields); returns it. */
  async expectNotice(fields, ms = WAIT_MS) {
    const notice = await this.notice(ms);
    assert.ok(notice && typeof notice === 'object', `${this.label}: notice is not an object: ${show(notice)}`);
    for (const [key, value] of Object.entries(fields)) {
      assert.deepEqual(notice[key], value, `${this.label}: notice field ${key} in ${show(notice)}`);
    }
    return notice;
  }

  /** The reason of the next `disconnect`. */
  disconnected(ms = WAIT_MS) {
    return this.inbox.next('disconnect', ms);
  }

  /** Fails if a `msg` (or notice, if asked) arrives within `ms`. */
  quiet(ms, kinds = ['msg']) {
    return this.inbox.nothing(kinds, ms);
  }

  send(value) {
    this.socket.emit('msg', value);
  }

  /** The engine.io transport in use now ('polling' or 'websocket'). */
  transport() {
    return this.socket.io.engine && this.socket.io.engine.transport && this.socket.io.engine.transport.name;
  }

  /** Starts the upgrade to WebSocket now, by the engine.io client's own probe (what it does on
   *  open with its default options), for a peer made with `upgrade: false`. */
  probe() {
    this.socket.io.engine.probe('websocket');
  }

  /** Waits (bounded) until the connection has upgraded to WebSocket. */
  async upgraded(ms = WAIT_MS) {
    const until = Date.now() + ms;
    while (this.transport() !== 'websocket') {
      if (Date.now() > until) {
        throw new Error(`${this.label}: still on ${this.transport()} after ${ms} ms`);
      }
      await sleep(20);
    }
  }

  close() {
    open.delete(this);
    this.socket.disconnect();
    // v2 keeps the manager (and its engine) after the socket closes when forceNew is set.
    if (this.socket.io && typeof this.socket.io.close === 'function') this.socket.io.close();
  }
}

/** The text of a socket.io error value (an Error, `{message}`, or a string). */
export function errorText(value) {
  if (typeof value === 'string') return value;
  if (value && typeof value.message === 'string') return value.message;
  return show(value);
}

export const sioV4 = (label, url, options) => new SioPeer(label, 'v4', url, options);
export const sioV2 = (label, url, options) => new SioPeer(label, 'v2', url, options);

/**
 * Connects `first`, then `second` (constructed lazily, so the order is fixed), in the same room,
 * and checks the notices of two socket.io peers meeting: each gets `joined`; the first then hears
 * `peer-joined`, and so does the second (neither is told to offer: the classic page dials by
 * hand). Returns `[first, second]`.
 */
export async function sioPair(room, makeFirst, makeSecond) {
  const first = await makeFirst().connected();
  await first.expectNotice({ type: 'joined', room });
  const second = await makeSecond().connected();
  await second.expectNotice({ type: 'joined', room });
  await second.expectNotice({ type: 'peer-joined', room });
  await first.expectNotice({ type: 'peer-joined', room });
  return [first, second];
}

// ---------------------------------------------------------------- plain WebSocket clients

/** A `ws` client (Ant Media or raw dialect) whose frames and close are recorded. */
export class WsPeer {
  constructor(label, url) {
    this.label = label;
    this.url = url;
    this.inbox = new Inbox(label);
    this.ws = new WebSocket(url);
    this.ws.on('message', (data, isBinary) => this.inbox.push(isBinary ? 'binary' : 'text', data.toString('utf8')));
    this.ws.on('close', (code, reason) => this.inbox.push('close', { code, reason: reason.toString('utf8') }));
    this.ws.on('error', (error) => this.inbox.push('error', error));
    open.add(this);
  }

  static async connect(label, url, ms = WAIT_MS) {
    const peer = new WsPeer(label, url);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label}: ${url} did not open within ${ms} ms`)), ms);
      peer.ws.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      peer.ws.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`${label}: ${url}: ${error.message}`));
      });
    });
    return peer;
  }

  /** Sends a string as is, anything else as its JSON. */
  send(value) {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  /** The next text frame, unparsed. */
  async text(ms = WAIT_MS) {
    const { kind, value } = await this.inbox.nextOf(['text', 'close'], ms);
    if (kind !== 'text') throw new Error(`${this.label}: expected a text frame, got close ${show(value)}`);
    return value;
  }

  /** The next text frame parsed as JSON. */
  async json(ms = WAIT_MS) {
    const text = await this.text(ms);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(`${this.label}: frame is not JSON (${e.message}): ${show(text)}`);
    }
  }

  /** Expects the next frame to equal `expected` as JSON (key order does not matter). */
  async expectJson(expected, what, ms = WAIT_MS) {
    const got = await this.json(ms);
    assert.deepEqual(got, expected, `${this.label}: ${what}`);
    return got;
  }

  /** Fails if a text frame arrives within `ms`. */
  quiet(ms) {
    return this.inbox.nothing(['text'], ms);
  }

  /** Waits for the connection to close; returns `{code, reason}`. */
  closed(ms = WAIT_MS) {
    return this.inbox.next('close', ms);
  }

  close() {
    open.delete(this);
    this.ws.close();
  }
}

// ---------------------------------------------------------------- realistic signaling payloads

/** A Chrome-like offer SDP (CRLF line endings, as browsers produce). */
export const OFFER_SDP = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS 9b1f7c1e-3c1d-4c55-9a2e-5a3b0c7d2e11',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:hFtG',
  'a=ice-pwd:v4qBnJ2h8RXQdVw2g0Kq1yZo',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 5B:D1:3E:6E:1F:0A:70:3F:71:8A:2B:7A:64:9E:77:3C:1D:93:4A:08:BC:5E:31:7C:22:16:3D:6F:95:AA:0B:44',
  'a=setup:actpass',
  'a=mid:0',
  'a=sendrecv',
  'a=msid:9b1f7c1e-3c1d-4c55-9a2e-5a3b0c7d2e11 0d6c0a2b-5d3f-4e0a-8b8e-3f6a1f2c9d10',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  'a=sendrecv',
  'a=rtpmap:96 VP8/90000',
  'a=rtcp-fb:96 nack pli',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  '',
].join('\r\n');

/** The matching answer SDP. */
export const ANSWER_SDP = OFFER_SDP.replace('a=setup:actpass', 'a=setup:active')
  .replace('o=- 4611731400430051336', 'o=- 8827361540057321109')
  .replace('a=ice-ufrag:hFtG', 'a=ice-ufrag:Zq9x');

/** A host candidate as Chromium's `RTCIceCandidate.toJSON()` gives it (with usernameFragment). */
export const CANDIDATE = {
  candidate: 'candidate:2265954965 1 udp 2122194687 192.0.2.2 51121 typ host generation 0 ufrag hFtG network-id 1',
  sdpMid: '0',
  sdpMLineIndex: 0,
  usernameFragment: 'hFtG',
};

/**
 * `msg` strings exactly as pages send them, plus strings a re-serializing gateway would change:
 * keys out of the usual order, unusual spacing, escapes that JSON.stringify would not produce,
 * non-ASCII text, an end-of-candidates entry, and things that are not JSON at all.
 */
export function relayPayloads(from) {
  return [
    JSON.stringify({ sdp: { type: 'offer', sdp: OFFER_SDP } }),
    JSON.stringify({ candidate: CANDIDATE }),
    '{ "hello" :1 ,"x":[1,  2],\t"from":"' + from + '" }',
    '{"sdp":{"sdp":"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\n","type":"answer"}}',
    '{"candidate":{"candidate":"","sdpMid":"0","sdpMLineIndex":0}}',
    '{"note":"caf\\u00e9 \u00e9t\u00e9 \u{1F680} \\/ \\u2028","n":1.50,"big":12345678901234567890}',
    'not json at all: ' + from,
    '',
  ];
}
