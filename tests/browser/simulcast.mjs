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
// Case sfu_simulcast_layer_by_link (root: it shapes the test namespace's `lo` with `tc`):
//   1. As above, S publishes two layers, P and Q play the room and decode 480 lines.
//   2. The gateway's UDP to P's port (from P's selected candidate pair) is shaped to
//      450 kbit/s (htb class, 30-packet FIFO, u32 filter): P decodes 240 lines, Q still 480,
//      the shaper passed P's media, and P is still on 240 lines a while later.
//   3. The filter is removed: P decodes 480 lines again (the gateway probed P's link).
// Case sfu_simulcast_layer_by_loss: the same on a config with `bandwidth_estimation = false`
//   (no TWCC estimate: the gateway knows P's link from the loss in its receiver reports).
//   By hand: sudo unshare -n sh -c 'ip link set lo up && SWITCHBOARD_NETNS=1 node
//   tests/browser/simulcast.mjs sfu_simulcast_layer_by_link'.
//
// Patterns follow tests/browser/sfu.mjs: bounded waits, a hard deadline, one JSON result line,
// exit 0 or 1, and on failure the page and gateway logs in tests/artifacts/<case>/.
import { execFileSync } from 'node:child_process';

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

/**
 * S publishes its camera as two RID layers into the case's room; P and Q play the room.
 * Returns the pages, S's video track id, and `decodes(peer, height, ms)`, which waits (at most
 * `ms`) until `peer` decodes S's video at `height` lines with frames advancing.
 */
async function simulcastRoom(t) {
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
      .map((r) => ({ rid: r.rid, height: r.frameHeight, fps: r.framesPerSecond, bps: r.targetBitrate, limit: r.qualityLimitationReason, keyframes: r.keyFramesEncoded, plis: r.pliCount }));
  });
  /** The height `peer` decodes S's video at, once frames advance at that height. */
  const decodes = async (peer, height, ms = 30_000) => {
    const deadline = Date.now() + ms;
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
    throw new Error(`${peer.name} should decode S's video at ${height} lines with frames advancing; last ${JSON.stringify(last)}; ${peer.name} receives ${JSON.stringify(received)}; S sends ${JSON.stringify(await sent())}; the gateway's link planning: ${linkLog(t)}`);
  };

  sPage = await open('S', true);
  await sPage.page.evaluate(([id, r]) => window.sbAdaptor.publish(id, undefined, '', '', id, r), [s, room]);
  await t.until([sPage], 'publish_started', () => window.sb.info.publish_started);
  const players = [await open('P', false), await open('Q', false)];
  for (const p of players) {
    await p.page.evaluate((r) => window.sbAdaptor.play(r, '', r, []), room);
    await t.until([p], 'play_started', () => window.sb.info.play_started);
  }
  // The publisher does send two layers (its own statistics), so what follows is a choice.
  const rids = await sPage.page.evaluate(async () => {
    const pc = Object.values(window.sbAdaptor.remotePeerConnection)[0];
    const stats = await pc.getStats();
    return [...stats.values()].filter((r) => r.type === 'outbound-rtp' && r.kind === 'video' && r.rid).map((r) => r.rid).sort();
  });
  t.expect(JSON.stringify(rids) === '["h","l"]', 'S sends two RID layers', rids);
  return { s, sPage, players, decodes };
}

const CASES = {
  async sfu_simulcast_layers_per_player(t) {
    const room = t.room;
    const { s, sPage, players, decodes } = await simulcastRoom(t);
    const [p, q] = players;

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

  // The same with `bandwidth_estimation = false`: the gateway knows P's link only from the
  // loss in P's receiver reports.
  sfu_simulcast_layer_by_loss(t) {
    return CASES.sfu_simulcast_layer_by_link(t);
  },

  async sfu_simulcast_layer_by_link(t) {
    const { players, decodes } = await simulcastRoom(t);
    const [p, q] = players;
    // Both links are free: both get the high layer.
    await Promise.all([decodes(p, 480), decodes(q, 480)]);

    // P's link takes 450 kbit/s: enough for the low layer (at most 300 kbit/s) and audio, not
    // for the high one (up to 1.5 Mbit/s). The gateway's estimate of P's link falls, and P is
    // sent the low layer; Q's link is untouched and Q stays on the high one.
    const port = await playPort(p);
    t.expect(Number.isInteger(port) && port > 0, 'P\'s play connection has a local UDP port', port);
    shape(port, 450);
    t.note('tc', `P's downlink (UDP to port ${port}) shaped to 450 kbit/s`);
    await decodes(p, 240, 40_000);
    await decodes(q, 480);
    const during = shaped();
    t.expect(during.packets > 100, 'the shaping carried P\'s media', during);
    // Still low a while later: the choice holds while the link stays narrow (no flapping up).
    await sleep(5000);
    await decodes(p, 240);
    const after = shaped();
    t.note('tc', `shaped class: ${JSON.stringify(after)}`);

    // P's link is free again: probing finds the room, and P comes back up to the high layer.
    unshape();
    t.note('tc', 'P\'s downlink no longer shaped');
    await decodes(p, 480, 45_000);
    await decodes(q, 480);
  },
};

/**
 * What the gateway logged of its players' links (estimates, plans, probes, switches) in the
 * last 20 s, for a failure's message: the cases that test the automatic choice run the
 * gateway with these targets at debug and trace (`LINK_LOG`); the others log none of it.
 */
function linkLog(t) {
  const since = Date.now() - 20_000;
  return t.gatewayLog
    .filter((line) => /link estimate|layer planned|Probing|layer switch/.test(line))
    .filter((line) => Date.parse(line.slice(0, 27)) >= since)
    .map((line) => line.replace(/^\S+T(\S+)Z\s+\w+\s+\S+: /, '$1 ').replace(/ stream=\S+/, '')
      .replace('Player link estimate.', 'estimate').replace("Simulcast layer planned for the player's link.", 'planned'))
    .join(' | ') || 'none logged';
}

/** The gateway's log targets that say how it judges each player's link (see `linkLog`). */
const LINK_LOG = 'info,switchboard_sfu::engine::downlink=debug,switchboard_sfu::layers=debug,switchboard_sfu::conn=trace';

/**
 * Shapes the UDP traffic *to* `port` on `lo` (the gateway's media to one player): an htb class
 * of `kbit` with a short FIFO (so an overfull link drops, as a real one does, instead of
 * queueing for seconds) and a u32 filter on the destination port. Only in the test's own
 * network namespace: on the host's `lo` it would shape everyone's traffic. (`prio` and `netem`
 * are not in every kernel; `htb`, `pfifo` and `u32` are the common ground.)
 */
function shape(port, kbit) {
  if (process.env.SWITCHBOARD_NETNS !== '1') {
    throw new Error('shaping a player\'s link needs the test\'s own network namespace (unshare -n, root): refusing to shape the host\'s lo');
  }
  tc('qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', `${kbit}kbit`, 'ceil', `${kbit}kbit`);
  tc('qdisc', 'add', 'dev', 'lo', 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '30');
  tc('filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32',
    'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', '1:20');
}

/** Removes the filter of `shape` (the class stays, unused): the player's link is free again. */
function unshape() {
  tc('filter', 'del', 'dev', 'lo', 'parent', '1:', 'prio', '1');
}

/** What the shaped class passed and dropped so far: `{ packets, dropped }`. */
function shaped() {
  const out = tc('-s', 'class', 'show', 'dev', 'lo', 'classid', '1:20');
  const m = /Sent (\d+) bytes (\d+) pkt \(dropped (\d+)/.exec(out);
  if (!m) throw new Error(`unreadable tc statistics: ${out}`);
  return { bytes: Number(m[1]), packets: Number(m[2]), dropped: Number(m[3]) };
}

function tc(...args) {
  return execFileSync('tc', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** The local UDP port of `peer`'s play connection (its selected candidate pair). */
function playPort(peer) {
  return peer.page.evaluate(async () => {
    const pc = Object.values(window.sbAdaptor.remotePeerConnection)[0];
    const stats = await pc.getStats();
    const all = [...stats.values()];
    const transport = all.find((r) => r.type === 'transport' && r.selectedCandidatePairId);
    const pair = transport && stats.get(transport.selectedCandidatePairId);
    const local = pair && stats.get(pair.localCandidateId);
    return local ? local.port : null;
  });
}

class Run extends PageRun {
  constructor(name) {
    // Each case names the estimator setting it tests, whatever the default.
    const estimator = { sfu_simulcast_layer_by_loss: 'false', sfu_simulcast_layer_by_link: 'true' }[name];
    const configEdit = estimator
      ? (c) => {
        const edited = c.replace('udp_bind = "127.0.0.1:0"', `udp_bind = "127.0.0.1:0"\nbandwidth_estimation = ${estimator}`);
        if (edited === c) throw new Error('config/switchboard.toml has no sfu udp_bind line to add bandwidth_estimation to');
        return edited;
      }
      : undefined;
    super(name, { roomPrefix: 'simulcast', plugin: 'sfu', waitMs: WAIT_MS, configEdit, logLevel: estimator ? LINK_LOG : 'info' });
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
