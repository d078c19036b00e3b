// Conference-room signaling with the real Ant Media SDK in headless Chromium, through the real
// `switchboard` binary on its default config (the conference plugin before the router), with
// the store in a temporary directory. Run by tests/tests/browser_conference.rs; by hand, from
// the repository root:
//
//   cargo build --workspace
//   node tests/browser/conference.mjs conference_room_signaling
//
// Two pages (A and B) load the SDK's ES module build from the gateway's /node_modules/ and:
//   1. A and B `joinRoom` the same room with their own stream ids: both get `joinedTheRoom`, B's
//      listing A's stream;
//   2. A asks `getRoomInfo`: `roomInformation` lists B's stream;
//   3. A `leaveFromRoom`s: `leavedFromRoom` with the room in ATTR_ROOM_NAME;
//   4. B asks `getRoomInfo`: A is gone, so `no_active_streams_in_room` through callbackError.
// The pages are served by intercepting a URL of the gateway's own origin (so the SDK loads from
// it and http://127.0.0.1 counts as a secure context); no page is added to the gateway.
//
// The harness (tests/browser/lib.mjs, shared with sfu.mjs): bounded waits, a hard deadline, one JSON result
// line, exit 0 or 1, and on failure the page and gateway logs in tests/artifacts/<case>/.
// Env: SWITCHBOARD_BIN (default target/debug/switchboard), RUST_LOG, SB_KEEP_ARTIFACTS=1.
import { PageRun, runCase } from './lib.mjs';

const WAIT_MS = 20_000;
const HARD_MS = 70_000;

/** The test page: the SDK, one adaptor, and hooks in `window.sb` for the script. */
const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>conference test</title></head><body>
<script type="module">
import { WebRTCAdaptor } from "/node_modules/@antmedia/webrtc_adaptor/dist/es/index.js";
const params = new URLSearchParams(location.search);
const sb = window.sb = { initialized: false, info: {}, errors: [], events: [] };
window.sbAdaptor = new WebRTCAdaptor({
  websocket_url: "ws://" + location.host + "/LiveApp/websocket",
  onlyDataChannel: true,
  peerconnection_config: { iceServers: [] },
  callback: (info, obj) => {
    if (info === "pong") return;
    sb.events.push(info);
    console.log("SB callback " + info + " " + (obj && typeof obj === "object" ? JSON.stringify(obj) : ""));
    if (info === "initialized") sb.initialized = true;
    if (obj && typeof obj === "object") sb.info[info] = JSON.parse(JSON.stringify(obj));
  },
  callbackError: (error, obj) => {
    console.log("SB error " + error + " " + (obj && typeof obj === "object" ? JSON.stringify(obj) : ""));
    sb.errors.push({ error: String(error), obj: obj && typeof obj === "object" ? JSON.parse(JSON.stringify(obj)) : null });
  },
});
</script></body></html>`;

const CASES = {
  async conference_room_signaling(t) {
    const room = t.room;
    const [a, b] = [await t.open('A'), await t.open('B')];
    await t.until([a, b], 'initialized', () => window.sb.initialized);

    await a.page.evaluate((r) => window.sbAdaptor.joinRoom(r, 'streamA'), room);
    const joinedA = await t.until([a], 'joinedTheRoom', () => window.sb.info.joinedTheRoom);
    t.expect(joinedA.streamId === 'streamA' && joinedA.room === room && joinedA.ATTR_ROOM_NAME === room
      && Array.isArray(joinedA.streams) && joinedA.streams.length === 0 && typeof joinedA.maxTrackCount === 'number',
    'A joinedTheRoom', joinedA);
    await b.page.evaluate((r) => window.sbAdaptor.joinRoom(r, 'streamB'), room);
    const joinedB = await t.until([b], 'joinedTheRoom', () => window.sb.info.joinedTheRoom);
    t.expect(joinedB.streams.includes('streamA') && joinedB.streamList.some((s) => s.streamId === 'streamA'),
      'B joinedTheRoom lists A', joinedB);

    await a.page.evaluate((r) => window.sbAdaptor.getRoomInfo(r, 'streamA'), room);
    const info = await t.until([a], 'roomInformation', () => window.sb.info.roomInformation);
    t.expect(info.room === room && info.streams.includes('streamB') && !info.streams.includes('streamA'),
      'roomInformation lists B', info);

    await a.page.evaluate((r) => window.sbAdaptor.leaveFromRoom(r, 'streamA'), room);
    const left = await t.until([a], 'leavedFromRoom', () => window.sb.info.leavedFromRoom);
    t.expect(left.ATTR_ROOM_NAME === room, 'leavedFromRoom names the room', left);

    await b.page.evaluate((r) => window.sbAdaptor.getRoomInfo(r, 'streamB'), room);
    const err = await t.until([b], 'no_active_streams_in_room',
      () => window.sb.errors.find((e) => e.error === 'no_active_streams_in_room'), undefined, { allowErrors: true });
    t.expect(err.obj && err.obj.room === room, 'the error names the room', err);
    for (const p of [a, b]) {
      const unexpected = await p.page.evaluate(() => window.sb.errors.filter((e) => e.error !== 'no_active_streams_in_room'));
      t.expect(unexpected.length === 0, `${p.name} has no other error`, unexpected);
    }
  },
};

class Run extends PageRun {
  constructor(name) {
    super(name, { roomPrefix: 'bc', plugin: 'conference', waitMs: WAIT_MS });
  }

  /** Opens the test page as peer `name`. */
  open(name) {
    return this.openPage(name, `/__conference-test.html?peer=${name}`, PAGE);
  }
}

await runCase({ script: 'tests/browser/conference.mjs', cases: CASES, makeRun: (n) => new Run(n), hardMs: HARD_MS });
