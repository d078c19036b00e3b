// Conference media through the embedded SFU (the `sfu` plugin) with the real Ant Media SDK in
// headless Chromium (fake camera and microphone), through the real `switchboard` binary on its
// default config (conference + sfu + router) on free loopback ports. Run by
// tests/tests/browser_sfu.rs; by hand, from the repository root:
//
//   cargo build --workspace
//   node tests/browser/sfu.mjs sfu_conference_four_people
//
// The page is the SDK's conference pattern, the SDK unchanged (its ES module build from the
// gateway's /node_modules/): `publish(streamId, …, mainTrack=room)` and, once
// `publish_started`, `play(room, "", room, [])`; remote tracks arrive as `newTrackAvailable` with
// track ids `ARDAMSv<streamId>`/`ARDAMSa<streamId>`. Each remote video track is rendered in its
// own <video>, and `requestVideoFrameCallback` counts presented frames.
//   1. A, B and C publish and play: each sees the two others' video with frames advancing.
//   2. D joins: everyone renegotiates, each sees three others.
//   3. B stops its play and its publish (`play_finished`, `publish_finished`): A, C and D see
//      B's tracks removed and still receive each other.
//   4. C closes its page: A and D see C's tracks removed.
//   (No page gets a track event for its own stream: the publisher's answer is recvonly.)
// Case sfu_join_room_flow: the joinRoom conference flow of Ant's conference tutorial (LEGACY_PAGE)
// with three pages, each seeing the two others' video with frames advancing; a data-channel
// message from each page reaches the two others; one turns its video off (toggleVideo) and the
// others see it stop, then flow again; then one leaves.
// Case sfu_demo_page: the demo page examples/web/conference.html in three tabs, each showing the
// two others' cameras. Case sfu_mixed_raw_and_ant: a raw-dialect page (plain RTCPeerConnection, the media requests of
// docs/dialect-spec.md) publishes and plays alongside two Ant SDK pages; everyone sees everyone
// else's video; the raw peer stops and the Ant pages lose its tracks.
// Case sfu_whip_and_whep: a WHIP publisher (npm whip-whep) seen by two Ant pages and listed in
// the room, a WHEP player (npm whip-whep) seeing it and an Ant publisher; see the case.
// Chromium gathers 127.0.0.1 candidates thanks to --allow-loopback-in-peer-connection; the SFU
// announces 127.0.0.1 (its default), so all media stays on loopback.
//
// Patterns follow tests/browser/conference.mjs: bounded waits, a hard deadline, one JSON result
// line, exit 0 or 1, and on failure the page and gateway logs in tests/artifacts/<case>/.
// Env: SWITCHBOARD_BIN (default target/debug/switchboard), RUST_LOG, SB_KEEP_ARTIFACTS=1.
import { CHROMIUM_ARGS, PageRun, plain, runCase, sleep } from './lib.mjs';
import { PAGE, expectNoErrors, expectNoOwnTrack, flowing, joinLegacy, remoteTrackSource, seer, showing } from './sfu_pages.mjs';

const WAIT_MS = 20_000;
const HARD_MS = 150_000;

/**
 * The raw test page: no SDK, plain RTCPeerConnections over the raw dialect at /ws/{room}.{peer}
 * (a path of its own: the URL room is a two-place P2P room), with the media requests of
 * docs/dialect-spec.md. One connection publishes, one plays the room; the same hooks as PAGE.
 */
const RAW_PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sfu raw test</title></head><body>
<script type="module">
const params = new URLSearchParams(location.search);
const room = params.get("room"), me = params.get("stream");
const sb = window.sb = { initialized: false, info: {}, errors: [], events: [], tracks: {} };
// The camera first: the socket's handlers must be set before the page awaits anything.
const local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
const ws = new WebSocket("ws://" + location.host + "/ws/" + room + "." + params.get("peer"));
const send = (m) => ws.send(JSON.stringify(m));
const pub = new RTCPeerConnection({ iceServers: [] });
for (const t of local.getTracks()) pub.addTransceiver(t, { direction: "sendonly" });
const play = new RTCPeerConnection({ iceServers: [] });
let mapping = {};
${remoteTrackSource()}
play.ontrack = (e) => remoteTrack({ track: e.track, stream: e.streams[0], trackId: mapping[e.transceiver.mid] });
pub.onicecandidate = (e) => { if (e.candidate) send({ type: "switchboard.media-candidate", stream: me, candidate: e.candidate.toJSON() }); };
play.onicecandidate = (e) => { if (e.candidate) send({ type: "switchboard.media-candidate", stream: room, candidate: e.candidate.toJSON() }); };
ws.onopen = () => { sb.initialized = true; };
// One message at a time: a renegotiation offer must wait for the previous answer.
let queue = Promise.resolve();
ws.onmessage = (event) => {
  queue = queue.then(() => handle(event)).catch((e) => sb.errors.push({ error: String(e), obj: null }));
};
async function handle(event) {
  const m = JSON.parse(event.data);
  console.log("SB raw " + event.data.slice(0, 200));
  sb.events.push(m.type);
  if (m.type === "switchboard.media-answer") await pub.setRemoteDescription(m.description);
  else if (m.type === "switchboard.media-offer") {
    mapping = m.tracks;
    await play.setRemoteDescription(m.description);
    await play.setLocalDescription(await play.createAnswer());
    send({ type: "switchboard.media-description", stream: room, description: play.localDescription.toJSON() });
  } else if (m.type === "switchboard.media-started") sb.info[m.direction + "_started"] = m;
  else if (m.type === "switchboard.media-finished") sb.info[m.direction + "_finished"] = m;
  else if (m.type === "switchboard.error") sb.errors.push({ error: m.code, obj: m });
}
window.sbAdaptor = {
  async publish() {
    send({ type: "switchboard.publish", stream: me, room });
    await pub.setLocalDescription(await pub.createOffer());
    send({ type: "switchboard.media-description", stream: me, description: pub.localDescription.toJSON() });
  },
  play() { send({ type: "switchboard.play", room }); },
  stop(stream) { send({ type: "switchboard.stop", stream }); },
};
</script></body></html>`;

/**
 * A WHIP publisher page (docs/whip-whep.md): the camera published with medooze's `whip-whep`
 * WHIPClient (npm, unchanged) to /whip/{room}?streamId={stream}; `sb.state` is the
 * connection state.
 */
const WHIP_PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>whip test</title></head><body>
<script type="module">
import { WHIPClient } from "/node_modules/whip-whep/whip.js";
const params = new URLSearchParams(location.search);
const sb = window.sb = { initialized: true, info: {}, errors: [], state: "new", published: false };
const media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
const pc = new RTCPeerConnection({ iceServers: [] });
pc.addEventListener("connectionstatechange", () => { sb.state = pc.connectionState; console.log("SB state " + sb.state); });
for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
const whip = window.sbWhip = new WHIPClient();
try {
  await whip.publish(pc, location.origin + "/whip/" + params.get("room") + "?streamId=" + params.get("stream"));
  sb.published = true;
} catch (e) { sb.errors.push({ error: String(e) }); console.log("SB error " + e); }
</script></body></html>`;

/**
 * A WHEP player page: medooze's `whip-whep` WHEPClient (unchanged) viewing /whep/{room} with
 * two receive-only audio and two receive-only video transceivers (two publishers' worth);
 * each video track is rendered and frame-counted in sb.tracks by its transceiver's mid.
 */
const WHEP_PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>whep test</title></head><body>
<script type="module">
import { WHEPClient } from "/node_modules/whip-whep/whep.js";
const params = new URLSearchParams(location.search);
const sb = window.sb = { initialized: true, info: {}, errors: [], tracks: {}, state: "new", viewing: false };
const pc = new RTCPeerConnection({ iceServers: [] });
pc.addEventListener("connectionstatechange", () => { sb.state = pc.connectionState; console.log("SB state " + sb.state); });
for (const kind of ["audio", "video", "audio", "video"]) pc.addTransceiver(kind, { direction: "recvonly" });
pc.addEventListener("track", (e) => {
  const track = e.track;
  const id = "mid" + e.transceiver.mid;
  const entry = sb.tracks[id] = { kind: track.kind, live: true, width: 0, frames: 0 };
  if (track.kind !== "video") return;
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  document.body.appendChild(video);
  const tick = (now, meta) => { entry.width = video.videoWidth; entry.frames = meta.presentedFrames; video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
  video.play().catch(() => {});
});
const whep = new WHEPClient();
try {
  await whep.view(pc, location.origin + "/whep/" + params.get("room"));
  sb.viewing = true;
} catch (e) { sb.errors.push({ error: String(e) }); console.log("SB error " + e); }
</script></body></html>`;

const CASES = {
  // The demo page examples/web/conference.html, as served by the gateway, in three tabs: each
  // shows the two others' cameras.
  async sfu_demo_page(t) {
    const pages = [];
    for (const name of ['A', 'B', 'C']) {
      const p = await t.openPage(name, `/conference.html?room=${t.room}&name=${t.room}-${name}`);
      await p.page.waitForFunction(() => !document.getElementById('join').disabled, null, { timeout: WAIT_MS });
      await p.page.click('#join');
      pages.push(p);
    }
    await Promise.all(pages.map(async (p) => {
      const others = pages.filter((o) => o !== p).map((o) => `${t.room}-${o.name}`).sort();
      try {
        await p.page.waitForFunction((want) => {
          const figs = [...document.querySelectorAll('#videos figure')].slice(1);
          const shown = figs.filter((f) => f.querySelector('video').videoWidth > 0)
            .map((f) => f.querySelector('figcaption').textContent).sort();
          return JSON.stringify(shown) === JSON.stringify(want);
        }, others, { timeout: 25_000, polling: 200 });
      } catch (e) {
        const status = await p.page.evaluate(() => document.getElementById('status').textContent);
        throw new Error(`${p.name} should show ${others.join(',')} (status: ${status}): ${plain(e.message).split('\n')[0]}`);
      }
      t.note(p.name, `shows ${others.join(',')}`);
    }));
  },

  // WHIP and WHEP (docs/whip-whep.md) with the npm `whip-whep` clients: a WHIP publisher W is
  // seen with frames advancing by two Ant SDK conference pages (A publishes and plays, B only
  // plays), and is listed in the room; a WHEP player P sees the two publishers' video (W's and
  // the Ant page A's) with frames advancing; W's page closes its WHIP session (DELETE) and the
  // Ant pages lose its track.
  async sfu_whip_and_whep(t) {
    const room = t.room;
    const sid = (name) => `${room}-${name}`;
    const video = (names) => names.map((n) => `ARDAMSv${sid(n)}`).sort();
    const sees = seer(t, video);
    const w = await t.openPage('W', `/__whip-test.html?room=${room}&stream=${sid('W')}`, WHIP_PAGE);
    await t.until([w], 'WHIP published and connected', () => window.sb.published && window.sb.state === 'connected');
    const a = await t.open('A');
    await t.until([a], 'initialized', () => window.sb.initialized);
    await a.page.evaluate(([s, r]) => window.sbAdaptor.publish(s, undefined, '', '', s, r), [sid('A'), room]);
    await t.until([a], 'publish_started', () => window.sb.info.publish_started);
    await a.page.evaluate((r) => window.sbAdaptor.play(r, '', r, []), room);
    const b = await t.open('B');
    await t.until([b], 'initialized', () => window.sb.initialized);
    await b.page.evaluate((r) => window.sbAdaptor.play(r, '', r, []), room);
    await t.until([a, b], 'play_started', () => window.sb.info.play_started);
    await Promise.all([sees(a, ['W']), sees(b, ['A', 'W'])]);
    await b.page.evaluate((r) => window.sbAdaptor.getRoomInfo(r, ''), room);
    const info = await t.until([b], 'roomInformation', () => window.sb.info.roomInformation);
    t.expect(JSON.stringify([...info.streams].sort()) === JSON.stringify([sid('A'), sid('W')].sort()),
      'roomInformation lists the WHIP publisher', info);

    const p = await t.openPage('P', `/__whep-test.html?room=${room}`, WHEP_PAGE);
    await t.until([p], 'WHEP viewing and connected', () => window.sb.viewing && window.sb.state === 'connected');
    const both = await (async () => {
      const deadline = Date.now() + 25_000;
      let got = [];
      while (Date.now() < deadline) {
        got = await flowing(p);
        if (got.length === 2) return got;
      }
      return got;
    })();
    t.expect(both.length === 2, 'the WHEP player receives two flowing videos (W and A)', both);

    await w.page.evaluate(() => window.sbWhip.stop());
    t.note('W', 'WHIP session deleted');
    await sees(b, ['A']);
    // The client closes its connection, then sends DELETE: answered 200, no refusal counted.
    const metrics = await (await fetch(`${t.main}/metrics`)).text();
    const refused = metrics.split('\n').filter((l) => /^switchboard_errors_total\{dialect="wh(i|e)p"/.test(l));
    t.expect(refused.length === 0, 'no WHIP/WHEP request was refused', refused);
    await expectNoErrors(t, [a, b, p]);
  },

  // A raw peer (plain RTCPeerConnection, docs/dialect-spec.md) and two Ant SDK peers in one
  // conference: each sees the others' video flowing; the raw peer stops and the Ant peers lose
  // its tracks.
  async sfu_mixed_raw_and_ant(t) {
    const room = t.room;
    const sid = (name) => `${room}-${name}`;
    const video = (names) => names.map((n) => `ARDAMSv${sid(n)}`).sort();
    const sees = seer(t, video);
    const peers = [];
    for (const [name, raw] of [['A', false], ['R', true], ['B', false]]) {
      const p = await t.open(name, raw);
      await t.until([p], 'initialized', () => window.sb.initialized);
      if (raw) await p.page.evaluate(() => window.sbAdaptor.publish());
      else await p.page.evaluate(([s, r]) => window.sbAdaptor.publish(s, undefined, '', '', s, r), [sid(name), room]);
      await t.until([p], 'publish_started', () => window.sb.info.publish_started);
      if (raw) await p.page.evaluate(() => window.sbAdaptor.play());
      else await p.page.evaluate((r) => window.sbAdaptor.play(r, '', r, []), room);
      await t.until([p], 'play_started', () => window.sb.info.play_started);
      peers.push(p);
    }
    const [a, r, b] = peers;
    const started = await r.page.evaluate(() => window.sb.info.publish_started);
    t.expect(started.type === 'switchboard.media-started' && started.stream === sid('R') && started.room === room,
      'the raw peer gets switchboard.media-started', started);
    await Promise.all([sees(a, ['B', 'R']), sees(r, ['A', 'B']), sees(b, ['A', 'R'])]);

    await r.page.evaluate((s) => window.sbAdaptor.stop(s), sid('R'));
    const finished = await t.until([r], 'publish_finished', () => window.sb.info.publish_finished);
    t.expect(finished.type === 'switchboard.media-finished' && finished.stream === sid('R'), 'raw media-finished', finished);
    await Promise.all([sees(a, ['B']), sees(b, ['A'])]);
    await expectNoErrors(t, [a, r, b]);
  },

  // The joinRoom conference flow of Ant's conference tutorial (LEGACY_PAGE) with three pages:
  // each sees the two others' video with frames advancing, no page gets a track event for its
  // own stream, and room information lists every publisher. Then B leaves the room and closes
  // its connections; A and C stop playing it and keep seeing each other.
  async sfu_join_room_flow(t) {
    const room = t.room;
    const sid = (name) => `${room}-${name}`;
    const sees = seer(t, (names) => names.map(sid).sort(), { probe: showing, ms: 30_000 });
    const peers = [];
    for (const name of ['A', 'B', 'C']) {
      await joinLegacy(t, name, peers, sid);
    }
    const [a, b, c] = peers;
    await Promise.all([sees(a, ['B', 'C']), sees(b, ['A', 'C']), sees(c, ['A', 'B'])]);
    for (const p of peers) {
      const own = await p.page.evaluate((me) => window.sb.trackStreams.filter((s) => s === me), sid(p.name));
      t.expect(own.length === 0, `${p.name} gets no track event for its own stream`, own);
      // The tutorial page asks getRoomInfo every 5 s: a page's latest answer may predate the
      // last join, so the answer listing two streams is awaited rather than read once.
      const others = peers.filter((o) => o !== p).map((o) => sid(o.name)).sort();
      const info = await t.until([p], 'roomInformation of two streams', (n) => {
        const i = window.sb.info.roomInformation;
        return i && i.streams && i.streams.length >= n ? i : false;
      }, others.length);
      t.expect(info && JSON.stringify([...info.streams].sort()) === JSON.stringify(others),
        `${p.name}'s roomInformation lists the two other publishers`, info);
    }

    // Data channels: each page's message on its publish stream reaches the two others, as
    // data_received on the play stream of the sender (the SDK names the connection it came on).
    await t.until(peers, 'data channels open', (n) => window.sb.channels.length >= n, 3);
    for (const p of peers) await p.page.evaluate((n) => window.sbSend(`HELLO_FROM_${n}`), p.name);
    for (const p of peers) {
      const others = peers.filter((o) => o !== p);
      const want = others.map((o) => `${sid(o.name)} HELLO_FROM_${o.name}`).sort();
      const got = await t.until([p], 'data from the two others', (n) => {
        const r = window.sb.received.map((m) => `${m.streamId} ${JSON.parse(m.data).eventType}`).sort();
        return r.length >= n ? r : false;
      }, want.length);
      t.expect(JSON.stringify(got) === JSON.stringify(want), `${p.name} receives each other page's message once`, got);
    }

    // A turns its video off on the server side (toggleVideo on its publish stream): B and C see
    // its video stop advancing, C's still flowing; turned back on, A's video flows again.
    await a.page.evaluate(() => window.sbToggleVideo(false));
    await Promise.all([sees(b, ['C']), sees(c, ['B'])]);
    await a.page.evaluate(() => window.sbToggleVideo(true));
    await Promise.all([sees(b, ['A', 'C']), sees(c, ['A', 'B'])]);

    await b.page.evaluate((r) => window.sbAdaptor.leaveFromRoom(r), room);
    await t.until([b], 'leavedFromRoom', () => window.sb.info.leavedFromRoom);
    await Promise.all([sees(a, ['C']), sees(c, ['A'])]);
    await expectNoErrors(t, [a, c]);
  },

  async sfu_conference_four_people(t) {
    const room = t.room;
    const sid = (name) => `${room}-${name}`;
    const video = (names) => names.map((n) => `ARDAMSv${sid(n)}`).sort();
    const join = async (name) => {
      const p = await t.open(name);
      await t.until([p], 'initialized', () => window.sb.initialized);
      await p.page.evaluate(([s, r]) => window.sbAdaptor.publish(s, undefined, '', '', s, r), [sid(name), room]);
      const started = await t.until([p], 'publish_started', () => window.sb.info.publish_started);
      t.expect(started.streamId === sid(name) && started.room === room, `${name} publish_started in the room`, started);
      await p.page.evaluate((r) => window.sbAdaptor.play(r, '', r, []), room);
      await t.until([p], 'play_started', () => window.sb.info.play_started);
      return p;
    };
    const sees = seer(t, video);

    const [a, b, c] = [await join('A'), await join('B'), await join('C')];
    await Promise.all([sees(a, ['B', 'C']), sees(b, ['A', 'C']), sees(c, ['A', 'B'])]);
    // The publisher's answer is recvonly: no track event on its publish connection, whose
    // events carry its own stream id (the play connection's carry the room).
    await expectNoOwnTrack(t, [a, b, c], sid);
    for (const p of [a, b, c]) {
      const audio = await p.page.evaluate(() => Object.keys(window.sb.tracks).filter((id) => id.startsWith('ARDAMSa')));
      t.expect(audio.length === 2, `${p.name} receives two audio tracks`, audio);
    }

    const d = await join('D');
    await Promise.all([sees(a, ['B', 'C', 'D']), sees(b, ['A', 'C', 'D']), sees(c, ['A', 'B', 'D']), sees(d, ['A', 'B', 'C'])]);

    await b.page.evaluate(([s, r]) => { window.sbAdaptor.stop(r); window.sbAdaptor.stop(s); }, [sid('B'), room]);
    const finished = await t.until([b], 'publish_finished', () => window.sb.info.publish_finished);
    t.expect(finished.streamId === sid('B'), 'B publish_finished', finished);
    const playFinished = await t.until([b], 'play_finished', () => window.sb.info.play_finished);
    t.expect(playFinished.streamId === room, 'B play_finished', playFinished);
    await Promise.all([sees(a, ['C', 'D']), sees(c, ['A', 'D']), sees(d, ['A', 'C'])]);

    await c.page.close();
    t.note('C', 'page closed');
    await Promise.all([sees(a, ['D']), sees(d, ['A'])]);
    await expectNoErrors(t, [a, d]);
  },
};

class Run extends PageRun {
  constructor(name) {
    super(name, { roomPrefix: 'sfu', plugin: 'sfu', waitMs: WAIT_MS });
  }

  /** Opens page `name`: the Ant SDK page, or with `raw` the plain RTCPeerConnection page. */
  open(name, raw = false) {
    const path = `/__sfu-test.html?peer=${name}&room=${this.room}&stream=${this.room}-${name}`;
    return this.openPage(name, path, raw ? RAW_PAGE : PAGE);
  }
}

await runCase({
  script: 'tests/browser/sfu.mjs',
  cases: CASES,
  makeRun: (n) => new Run(n),
  hardMs: HARD_MS,
  // Chromium gathers no loopback candidates without it (see tests/browser/matrix.mjs).
  chromiumArgs: [...CHROMIUM_ARGS, '--allow-loopback-in-peer-connection'],
});
