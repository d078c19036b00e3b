// The Ant SDK conference test page and its helpers, shared by tests/browser/sfu.mjs (one
// gateway) and tests/browser/sfu_cluster.mjs (two nodes of a cluster).
import { sleep } from './lib.mjs';

/** The page function that records, renders and frame-counts a remote track (both pages). */
export function remoteTrackSource() {
  return `/** A remote track: remember it, render video and count its frames, notice its removal. */
function remoteTrack(obj) {
  const id = obj.trackId;
  const track = obj.track;
  if (!id || !track) return;
  const entry = sb.tracks[id] = { kind: track.kind, live: true, width: 0, frames: 0 };
  if (obj.stream) obj.stream.addEventListener('removetrack', (e) => { if (e.track === track) entry.live = false; });
  track.addEventListener('ended', () => { entry.live = false; });
  if (track.kind !== 'video') return;
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  document.body.appendChild(video);
  const tick = (now, meta) => {
    entry.width = video.videoWidth;
    entry.frames = meta.presentedFrames;
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
  video.play().catch(() => {});
}`;
}

/** The test page: the SDK's conference pattern, and hooks in `window.sb` for the script. */
export const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sfu test</title></head><body>
<script type="module">
import { WebRTCAdaptor } from "/node_modules/@antmedia/webrtc_adaptor/dist/es/index.js";
const params = new URLSearchParams(location.search);
const sb = window.sb = { initialized: false, info: {}, errors: [], events: [], tracks: {}, trackStreams: [] };
${remoteTrackSource()}
window.sbAdaptor = new WebRTCAdaptor({
  websocket_url: "ws://" + location.host + "/LiveApp/websocket",
  mediaConstraints: { video: true, audio: true },
  peerconnection_config: { iceServers: [] },
  callback: (info, obj) => {
    if (info === "pong") return;
    sb.events.push(info);
    if (info === "newTrackAvailable") { sb.trackStreams.push(obj.streamId); remoteTrack(obj); console.log("SB track " + obj.trackId); return; }
    console.log("SB callback " + info + " " + (obj && typeof obj === "object" ? JSON.stringify(obj) : String(obj ?? "")));
    if (info === "initialized") sb.initialized = true;
    if (obj && typeof obj === "object" && !(obj instanceof Event)) {
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
 * The joinRoom conference flow of Ant's conference tutorial (StreamApp's conference page, the
 * SDK unchanged): `joinRoom(room, streamId)` → `joinedTheRoom` → `publish(obj.streamId, token)`
 * and `play(id, token, room)` for each id in `obj.streams`; `getRoomInfo(room, streamId)` every
 * 5 s, playing ids that appear and stopping those that go; each `newStreamAvailable` shown in a
 * <video> per stream id (`obj.streamId`, `srcObject = obj.stream`). A local video element and no
 * remote one, as on that page. `window.sb` records what the script checks: frames per remote
 * stream id, and the stream ids of every track event.
 */
export const LEGACY_PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sfu joinRoom test</title></head><body>
<video id="localVideo" autoplay muted playsinline></video>
<div id="players"></div>
<script type="module">
import { WebRTCAdaptor } from "/node_modules/@antmedia/webrtc_adaptor/dist/es/index.js";
const params = new URLSearchParams(location.search);
const roomName = params.get("room");
const streamId = params.get("stream");
const token = "";
const sb = window.sb = { initialized: false, info: {}, errors: [], events: [], videos: {}, trackStreams: [], channels: [], received: [] };
let publishStreamId;
let streamsList = [];
let roomTimerId = null;

function playVideo(obj) {
  let video = document.getElementById("remoteVideo" + obj.streamId);
  if (video == null) {
    video = document.createElement("video");
    video.id = "remoteVideo" + obj.streamId;
    video.autoplay = true; video.muted = true; video.playsInline = true;
    document.getElementById("players").appendChild(video);
    const entry = sb.videos[obj.streamId] = { width: 0, frames: 0 };
    const tick = (now, meta) => {
      entry.width = video.videoWidth;
      entry.frames = meta.presentedFrames;
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }
  video.srcObject = obj.stream;
  video.play().catch(() => {});
}

function removeRemoteVideo(id) {
  const video = document.getElementById("remoteVideo" + id);
  if (video != null) { video.srcObject = null; video.remove(); }
  delete sb.videos[id];
  webRTCAdaptor.stop(id);
  streamsList = streamsList.filter((item) => item !== id);
}

const webRTCAdaptor = window.sbAdaptor = new WebRTCAdaptor({
  websocket_url: "ws://" + location.host + "/LiveApp/websocket",
  mediaConstraints: { video: true, audio: true },
  peerconnection_config: { iceServers: [] },
  sdp_constraints: { OfferToReceiveAudio: false, OfferToReceiveVideo: false },
  localVideoId: "localVideo",
  dataChannelEnabled: true,
  callback: (info, obj) => {
    if (info === "pong") return;
    sb.events.push(info);
    console.log("SB callback " + info + " " + (obj && typeof obj === "object" && !(obj instanceof Event) && !obj.stream ? JSON.stringify(obj) : String(obj && obj.streamId || "")));
    if (info === "initialized") sb.initialized = true;
    else if (info === "joinedTheRoom") {
      publishStreamId = obj.streamId;
      webRTCAdaptor.publish(obj.streamId, token);
      if (obj.streams != null) {
        obj.streams.forEach((item) => webRTCAdaptor.play(item, token, roomName));
        streamsList = obj.streams;
      }
      roomTimerId = setInterval(() => webRTCAdaptor.getRoomInfo(roomName, publishStreamId), 5000);
    } else if (info === "newStreamAvailable") {
      sb.trackStreams.push(obj.streamId);
      playVideo(obj);
    } else if (info === "roomInformation") {
      for (const str of obj.streams) {
        if (!streamsList.includes(str)) webRTCAdaptor.play(str, token, roomName);
      }
      for (const str of streamsList) {
        if (!obj.streams.includes(str)) removeRemoteVideo(str);
      }
      streamsList = obj.streams;
    } else if (info === "play_finished") {
      removeRemoteVideo(obj.streamId);
    } else if (info === "leavedFromRoom") {
      clearInterval(roomTimerId);
    } else if (info === "data_channel_opened") {
      sb.channels.push(obj);
    } else if (info === "data_received") {
      sb.received.push({ streamId: obj.streamId, data: obj.data });
    }
    if (obj && typeof obj === "object" && !(obj instanceof Event) && !obj.stream) {
      try { sb.info[info] = JSON.parse(JSON.stringify(obj)); } catch { /* not JSON */ }
    }
  },
  callbackError: (error, obj) => {
    console.log("SB error " + error + " " + (obj && typeof obj === "object" ? JSON.stringify(obj) : ""));
    // The tutorial polls getRoomInfo before anyone else has joined: Ant answers that with
    // no_active_streams_in_room, which the page ignores.
    if (String(error) === "no_active_streams_in_room") return;
    sb.errors.push({ error: String(error), obj: obj && typeof obj === "object" ? JSON.parse(JSON.stringify(obj)) : null });
  },
});
window.sbJoin = () => webRTCAdaptor.joinRoom(roomName, streamId);
// As the tutorial's sendNotificationEvent: a JSON event on one's own publish stream.
window.sbToggleVideo = (enabled) => webRTCAdaptor.toggleVideo(publishStreamId, publishStreamId, enabled);
window.sbSend = (eventType) => webRTCAdaptor.sendData(publishStreamId, JSON.stringify({ streamId: publishStreamId, eventType }));
</script></body></html>`;

/** Video track ids a page receives live with frames advancing, sampled twice 1.5 s apart. */
export async function flowing(peer) {
  const sample = () => peer.page.evaluate(() => Object.fromEntries(Object.entries(window.sb.tracks)
    .filter(([, t]) => t.kind === 'video' && t.live).map(([id, t]) => [id, [t.width, t.frames]])));
  const first = await sample();
  await sleep(1500);
  const second = await sample();
  return Object.keys(second).filter((id) => first[id] && second[id][0] > 0 && second[id][1] > first[id][1]).sort();
}

/** Stream ids whose video a LEGACY_PAGE shows with frames advancing, sampled 1.5 s apart. */
export async function showing(peer) {
  const sample = () => peer.page.evaluate(() => Object.fromEntries(Object.entries(window.sb.videos)
    .map(([id, v]) => [id, [v.width, v.frames]])));
  const first = await sample();
  await sleep(1500);
  const second = await sample();
  return Object.keys(second).filter((id) => first[id] && second[id][0] > 0 && second[id][1] > first[id][1]).sort();
}

/**
 * A case's `sees(peer, names)`: waits up to `ms` until `probe(peer)` (`flowing` or `showing`)
 * returns exactly `ids(names)`, sorted, and notes it; throws with what it got otherwise.
 */
export function seer(t, ids, { probe = flowing, ms = 25_000 } = {}) {
  return async (peer, names) => {
    const want = ids(names);
    const deadline = Date.now() + ms;
    let got = [];
    while (Date.now() < deadline) {
      got = await probe(peer);
      if (JSON.stringify(got) === JSON.stringify(want)) { t.note(peer.name, `sees ${names.join(',')}`); return; }
    }
    throw new Error(`${peer.name} should see flowing video of ${names.join(',')} (${want.join(',')}); got ${JSON.stringify(got)}`);
  };
}

/** Each of `peers` got no track event for its own stream (`sid(name)`). */
export async function expectNoOwnTrack(t, peers, sid) {
  for (const p of peers) {
    const own = await p.page.evaluate((me) => window.sb.trackStreams.filter((s) => s === me), sid(p.name));
    t.expect(own.length === 0, `${p.name} gets no track event for its own stream`, own);
  }
}

/** None of `peers` recorded an error. */
export async function expectNoErrors(t, peers) {
  for (const p of peers) {
    const errors = await p.page.evaluate(() => window.sb.errors);
    t.expect(errors.length === 0, `${p.name} has no error`, errors);
  }
}

/**
 * Opens a LEGACY_PAGE for `name` and joins `t.room` as Ant's conference tutorial does, up to
 * publish_started; its joinedTheRoom must list exactly the pages already in `peers`, which the
 * page then joins.
 */
export async function joinLegacy(t, name, peers, sid) {
  const p = await t.openPage(name, `/__sfu-legacy.html?room=${t.room}&stream=${sid(name)}`, LEGACY_PAGE);
  await t.until([p], 'initialized', () => window.sb.initialized);
  await p.page.evaluate(() => window.sbJoin());
  const joined = await t.until([p], 'joinedTheRoom', () => window.sb.info.joinedTheRoom);
  const before = peers.map((o) => sid(o.name));
  t.expect(joined.streamId === sid(name) && JSON.stringify([...joined.streams].sort()) === JSON.stringify(before),
    `${name}'s joinedTheRoom lists the participants before it`, joined);
  await t.until([p], 'publish_started', () => window.sb.info.publish_started);
  peers.push(p);
  return p;
}
