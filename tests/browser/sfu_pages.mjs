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

/** Video track ids a page receives live with frames advancing, sampled twice 1.5 s apart. */
export async function flowing(peer) {
  const sample = () => peer.page.evaluate(() => Object.fromEntries(Object.entries(window.sb.tracks)
    .filter(([, t]) => t.kind === 'video' && t.live).map(([id, t]) => [id, [t.width, t.frames]])));
  const first = await sample();
  await sleep(1500);
  const second = await sample();
  return Object.keys(second).filter((id) => first[id] && second[id][0] > 0 && second[id][1] > first[id][1]).sort();
}
