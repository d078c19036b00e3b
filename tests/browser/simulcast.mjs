// Simulcast layers per player and the server's data-channel events, through the embedded SFU
// with the real Ant Media SDK in headless Chromium (fake camera and microphone), through the
// real `switchboard` binary on its default config. Run by tests/tests/browser_simulcast.rs; by
// hand, from the repository root:
//
//   cargo build --workspace
//   node tests/browser/simulcast.mjs sfu_simulcast_layers_per_player
//
// The SDK (unchanged, its ES module build) has no simulcast option: it adds the camera with
// `RTCPeerConnection.addTrack`. The publisher's page makes that call add the video with
// `addTransceiver(track, {sendEncodings})`, two RID layers (`l` at half the size, `h` at full
// size), the way an application turns simulcast on in Chromium; the SDK sees the sender it
// expects. The players are the SDK's conference pattern (`play(room, "", room, [])`), each
// remote video rendered and its decoded frame height read from `requestVideoFrameCallback`.
// Case sfu_simulcast_layers_per_player:
//   1. S publishes the camera (640×480) as two layers; P and Q play the room: both decode S's
//      video at 480 lines (the gateway sends the best flowing layer).
//   2. P calls `forceStreamQuality(room, 240)`: P decodes 240 lines with frames advancing, Q
//      still 480. `forceStreamQuality(room, 0)` brings P back to 480.
//   3. Bad values: a height no layer has (360) is refused with `invalid_field`, a stream P does
//      not play with `no_stream_exist` (both through the SDK's error callback).
//   4. S turns its camera and microphone off and on with `toggleVideo`/`toggleAudio` on its
//      publish stream: P and Q get `CAM_TURNED_OFF`, `MIC_MUTED`, `CAM_TURNED_ON`,
//      `MIC_UNMUTED` from S's stream id as `data_received` (what Ant's conference pages read).
//
// Patterns follow tests/browser/sfu.mjs: bounded waits, a hard deadline, one JSON result line,
// exit 0 or 1, and on failure the page and gateway logs in tests/artifacts/<case>/.
import { CHROMIUM_ARGS, PageRun, runCase, sleep } from './lib.mjs';

const WAIT_MS = 20_000;
const HARD_MS = 150_000;

/** The SDK page; `?simulcast=1` makes its camera video two RID layers. */
const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>simulcast test</title></head><body>
<script type="module">
import { WebRTCAdaptor } from "/node_modules/@antmedia/webrtc_adaptor/dist/es/index.js";
const params = new URLSearchParams(location.search);
const sb = window.sb = { initialized: false, info: {}, errors: [], videos: {}, received: [] };
if (params.get("simulcast") === "1") {
  // What an application does for simulcast in Chromium: the video sender gets RID encodings.
  const addTrack = RTCPeerConnection.prototype.addTrack;
  RTCPeerConnection.prototype.addTrack = function (track, ...streams) {
    if (track.kind !== "video") return addTrack.call(this, track, ...streams);
    const transceiver = this.addTransceiver(track, {
      direction: "sendrecv",
      streams,
      sendEncodings: [
        { rid: "l", scaleResolutionDownBy: 2, maxBitrate: 300000 },
        { rid: "h", scaleResolutionDownBy: 1, maxBitrate: 1500000 },
      ],
    });
    return transceiver.sender;
  };
}
function remoteTrack(obj) {
  const track = obj.track;
  if (!track || track.kind !== "video") return;
  const entry = sb.videos[obj.trackId] = { height: 0, frames: 0 };
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  document.body.appendChild(video);
  const tick = (now, meta) => {
    entry.height = meta.height;
    entry.frames = meta.presentedFrames;
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
  video.play().catch(() => {});
}
window.sbAdaptor = new WebRTCAdaptor({
  websocket_url: "ws://" + location.host + "/LiveApp/websocket",
  mediaConstraints: { video: { width: 640, height: 480 }, audio: true },
  peerconnection_config: { iceServers: [] },
  callback: (info, obj) => {
    if (info === "pong") return;
    console.log("SB callback " + info + " " + (obj && typeof obj === "object" && !obj.track ? JSON.stringify(obj) : ""));
    if (info === "initialized") sb.initialized = true;
    else if (info === "newTrackAvailable") remoteTrack(obj);
    else if (info === "data_received") sb.received.push({ streamId: obj.streamId, data: obj.data });
    if (obj && typeof obj === "object" && !(obj instanceof Event) && !obj.track) {
      try { sb.info[info] = JSON.parse(JSON.stringify(obj)); } catch { /* not JSON */ }
    }
  },
  callbackError: (error, obj) => {
    console.log("SB error " + error + " " + (obj && typeof obj === "object" ? JSON.stringify(obj) : ""));
    sb.errors.push({ error: String(error), obj: obj && typeof obj === "object" ? JSON.parse(JSON.stringify(obj)) : null });
  },
});
</script></body></html>`;

const CASES = {
  async sfu_simulcast_layers_per_player(t) {
    const room = t.room;
    const s = `${room}-S`;
    const track = `ARDAMSv${s}`;
    const open = async (name, simulcast) => {
      const p = await t.openPage(name, `/__simulcast-test.html?simulcast=${simulcast ? 1 : 0}`, PAGE);
      await t.until([p], 'initialized', () => window.sb.initialized);
      return p;
    };
    let sPage = null;
    /** What S's encoder sends per layer now (for a failure's message). */
    const sent = () => sPage.page.evaluate(async () => {
      const pc = Object.values(window.sbAdaptor.remotePeerConnection)[0];
      const stats = await pc.getStats();
      return [...stats.values()].filter((r) => r.type === 'outbound-rtp' && r.kind === 'video')
        .map((r) => ({ rid: r.rid, height: r.frameHeight, fps: r.framesPerSecond, limit: r.qualityLimitationReason, keyframes: r.keyFramesEncoded, plis: r.pliCount }));
    });
    /** The height `peer` decodes S's video at, once frames advance at that height. */
    const decodes = async (peer, height) => {
      const deadline = Date.now() + 30_000;
      let last = null;
      while (Date.now() < deadline) {
        const first = await peer.page.evaluate((id) => window.sb.videos[id] || null, track);
        await sleep(1000);
        const second = await peer.page.evaluate((id) => window.sb.videos[id] || null, track);
        last = second;
        if (first && second && second.height === height && second.frames > first.frames + 5) {
          t.note(peer.name, `decodes S at ${height} lines, frames advancing`);
          return;
        }
      }
      const received = await peer.page.evaluate(async () => {
        const pc = Object.values(window.sbAdaptor.remotePeerConnection)[0];
        const stats = await pc.getStats();
        return [...stats.values()].filter((r) => r.type === 'inbound-rtp' && r.kind === 'video')
          .map((r) => ({ height: r.frameHeight, received: r.framesReceived, decoded: r.framesDecoded, keyframes: r.keyFramesDecoded, dropped: r.framesDropped, plis: r.pliCount, nacks: r.nackCount, lost: r.packetsLost, freezes: r.freezeCount, jbDelay: r.jitterBufferDelay / r.jitterBufferEmittedCount, jbTarget: r.jitterBufferTargetDelay / r.jitterBufferEmittedCount }));
      });
      throw new Error(`${peer.name} should decode S's video at ${height} lines with frames advancing; last ${JSON.stringify(last)}; ${peer.name} receives ${JSON.stringify(received)}; S sends ${JSON.stringify(await sent())}`);
    };

    sPage = await open('S', true);
    await sPage.page.evaluate(([id, r]) => window.sbAdaptor.publish(id, undefined, '', '', id, r), [s, room]);
    await t.until([sPage], 'publish_started', () => window.sb.info.publish_started);
    const players = [await open('P', false), await open('Q', false)];
    for (const p of players) {
      await p.page.evaluate((r) => window.sbAdaptor.play(r, '', r, []), room);
      await t.until([p], 'play_started', () => window.sb.info.play_started);
    }
    const [p, q] = players;
    // The publisher does send two layers (its own statistics), so what follows is a choice.
    const rids = await sPage.page.evaluate(async () => {
      const pc = Object.values(window.sbAdaptor.remotePeerConnection)[0];
      const stats = await pc.getStats();
      return [...stats.values()].filter((r) => r.type === 'outbound-rtp' && r.kind === 'video' && r.rid).map((r) => r.rid).sort();
    });
    t.expect(JSON.stringify(rids) === '["h","l"]', 'S sends two RID layers', rids);

    // The best flowing layer by default.
    await Promise.all([decodes(p, 480), decodes(q, 480)]);

    // P pins the low layer; Q keeps the high one.
    await p.page.evaluate((r) => window.sbAdaptor.forceStreamQuality(r, 240), room);
    await Promise.all([decodes(p, 240), decodes(q, 480)]);
    // Automatic again.
    await p.page.evaluate((r) => window.sbAdaptor.forceStreamQuality(r, 0), room);
    await decodes(p, 480);

    // A height no layer has, and a stream P does not play.
    await p.page.evaluate((r) => window.sbAdaptor.forceStreamQuality(r, 360), room);
    const bad = await t.until([p], 'an error for height 360', () => window.sb.errors[0], undefined, { allowErrors: true });
    t.expect(bad.error === 'invalid_field' && /480, 240/.test(bad.obj.information), 'height 360 is refused, naming the layers', bad);
    await p.page.evaluate(() => { window.sb.errors = []; window.sbAdaptor.forceStreamQuality('nope', 240); });
    const unknown = await t.until([p], 'an error for stream nope', () => window.sb.errors[0], undefined, { allowErrors: true });
    t.expect(unknown.error === 'no_stream_exist', 'a stream P does not play is refused', unknown);
    await p.page.evaluate(() => { window.sb.errors = []; });
    // The refused height changed nothing: P still decodes the best layer.
    await decodes(p, 480);

    // S's own camera and microphone toggles reach the players as Ant's data-channel events.
    await sPage.page.evaluate((id) => {
      const a = window.sbAdaptor;
      a.toggleVideo(id, id, false); a.toggleAudio(id, id, false);
      a.toggleVideo(id, id, true); a.toggleAudio(id, id, true);
    }, s);
    const want = ['CAM_TURNED_OFF', 'MIC_MUTED', 'CAM_TURNED_ON', 'MIC_UNMUTED'].map((e) => `${s} ${e}`);
    for (const peer of players) {
      const got = await t.until([peer], 'four toggle events', (n) => {
        const r = window.sb.received.map((m) => { const d = JSON.parse(m.data); return `${d.streamId} ${d.eventType}`; });
        return r.length >= n ? r : false;
      }, want.length);
      t.expect(JSON.stringify(got) === JSON.stringify(want), `${peer.name} gets S's toggles in order`, got);
      const on = await peer.page.evaluate(() => window.sb.received.map((m) => m.streamId));
      t.expect(on.every((id) => id === room), `${peer.name} gets them on its play stream`, on);
    }
    await Promise.all([decodes(p, 480), decodes(q, 480)]);
    for (const peer of [sPage, p, q]) {
      const errors = await peer.page.evaluate(() => window.sb.errors);
      t.expect(errors.length === 0, `${peer.name} has no error`, errors);
    }
  },
};

class Run extends PageRun {
  constructor(name) {
    super(name, { roomPrefix: 'simulcast', plugin: 'sfu', waitMs: WAIT_MS });
  }
}

await runCase({
  script: 'tests/browser/simulcast.mjs',
  cases: CASES,
  makeRun: (n) => new Run(n),
  hardMs: HARD_MS,
  // Chromium gathers no loopback candidates without it (see tests/browser/matrix.mjs).
  chromiumArgs: [...CHROMIUM_ARGS, '--allow-loopback-in-peer-connection'],
});
