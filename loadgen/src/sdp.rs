//! Realistic signaling payloads: a Chrome-shaped offer (audio, video, data channel; about 6 KB,
//! like the 6153-byte offer captured from Chromium in `docs/protocol/antmedia.md` 4.2), a Chrome-shaped
//! answer (about 5.8 KB) and the candidate strings Chrome trickles, each carrying a [`Tag`].
//!
//! The tag is the load generator's sequence number, sender and send time. It travels inside the
//! SDP as an `a=x-lg:TAG` session attribute and inside a candidate string as a trailing
//! `x-lg TAG` extension attribute (RFC 8839 allows extension name/value pairs there), so every
//! gateway path carries it unchanged: byte-identical forwarding, re-encoding within a dialect and
//! translation between dialects alike.

use std::fmt::Write as _;

/// What a tagged message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
    /// An ICE candidate.
    Candidate,
}

impl Kind {
    /// Whether this is an SDP description (offer or answer).
    pub fn is_sdp(self) -> bool {
        matches!(self, Kind::Offer | Kind::Answer)
    }
}

/// The load generator's mark on a message: which pair and side sent it, its sequence number in
/// that direction, and when it was sent (nanoseconds since [`crate::clock::now_ns`]'s epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Pair index.
    pub pair: u32,
    /// Sending side: 0 (A) or 1 (B).
    pub side: u8,
    /// Sequence number in this direction, from 0.
    pub seq: u64,
    /// Send time in nanoseconds.
    pub sent_ns: u64,
}

/// The attribute name carrying a [`Tag`].
pub const TAG_MARK: &str = "x-lg";

impl Tag {
    /// `pair.side.seq.sent_ns`
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(48);
        self.write_to(&mut text);
        text
    }

    /// Appends [`Tag::render`]'s text to `out`.
    pub fn write_to(&self, out: &mut String) {
        let _ = write!(
            out,
            "{}.{}.{}.{}",
            self.pair, self.side, self.seq, self.sent_ns
        );
    }

    /// Parses the text right after the mark and its separator.
    pub fn parse(text: &str) -> Option<Tag> {
        let end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let mut parts = text[..end].split('.');
        let tag = Tag {
            pair: parts.next()?.parse().ok()?,
            side: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            sent_ns: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(tag)
    }
}

/// Finds the tag in any text that contains a tagged SDP or candidate, whatever JSON encoding
/// surrounds it (the tag has no character JSON escapes). Returns whether it sat in an SDP.
pub fn find_tag(text: &str) -> Option<(Tag, bool)> {
    let at = text.find(TAG_MARK)?;
    let sep = text.as_bytes().get(at + TAG_MARK.len()).copied()?;
    let tag = Tag::parse(&text[at + TAG_MARK.len() + 1..])?;
    match sep {
        b':' => Some((tag, true)),
        b' ' => Some((tag, false)),
        _ => None,
    }
}

const FINGERPRINT: &str = "sha-256 4F:1C:2B:9A:77:0E:3D:C5:88:A1:6B:F2:19:DE:40:73:5C:AE:01:B8:94:27:6F:D3:E0:5A:12:C9:8B:37:F6:4D";

/// A Chrome SDP (offer or answer) for audio + video + data channel, with the tag line.
fn session_description(offer: bool, tag: &Tag) -> String {
    let (origin, ufrag, pwd, setup, stream, cname, ssrc) = if offer {
        (
            "3057583230842636777",
            "dK+1",
            "Zl0vJ1oWm9x7Q2cT8bN4kR6y",
            "actpass",
            "a1639172-5f6e-4b0c-9a3e-2b7f1d0c9e11",
            "3LvhA0xq1Vb7c2Ne",
            1_023_469_811u32,
        )
    } else {
        (
            "8371331268673064032",
            "lhct",
            "p7Gm2vXk9QeR4sTy1uWz0aBc",
            "active",
            "e5b0c7d2-93a4-4f61-8d2e-6c1b7a90f3d4",
            "Qw7zR1pK3mN9vB2x",
            2_871_035_557u32,
        )
    };
    let mut s = String::with_capacity(6400);
    let w = &mut s;
    let _ = write!(
        w,
        "v=0\r\no=- {origin} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na={TAG_MARK}:{}\r\n\
         a=group:BUNDLE 0 1 2\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS {stream}\r\n",
        tag.render()
    );
    let transport = |w: &mut String, mid: u8| {
        let _ = write!(
            w,
            "c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\n\
             a=ice-pwd:{pwd}\r\na=ice-options:trickle\r\na=fingerprint:{FINGERPRINT}\r\n\
             a=setup:{setup}\r\na=mid:{mid}\r\n"
        );
    };
    // Audio.
    w.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n");
    transport(w, 0);
    w.push_str(
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
         a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
         a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
         a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendrecv\r\n",
    );
    let _ = write!(
        w,
        "a=msid:{stream} 7c1e3b52-0d8f-4a96-b2e4-91f0c6a5d837\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
         a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1{}\r\na=rtpmap:63 red/48000/2\r\n\
         a=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
         a=rtpmap:126 telephone-event/8000\r\na=ssrc:{ssrc} cname:{cname}\r\n\
         a=ssrc:{ssrc} msid:{stream} 7c1e3b52-0d8f-4a96-b2e4-91f0c6a5d837\r\n",
        if offer { "" } else { "; stereo=1" }
    );
    // Video: Chrome's codec list, each with its retransmission payload type.
    let codecs: &[(u8, u8, &str, &str)] = &[
        (96, 97, "VP8/90000", ""),
        (98, 99, "VP9/90000", "profile-id=0"),
        (100, 101, "VP9/90000", "profile-id=2"),
        (
            102,
            103,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        ),
        (
            104,
            105,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
        ),
        (
            106,
            107,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
        (
            108,
            109,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        ),
        (
            127,
            125,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
        ),
        (
            39,
            40,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f",
        ),
        (
            112,
            113,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f",
        ),
        (45, 46, "AV1/90000", "level-idx=5;profile=0;tier=0"),
    ];
    let codecs = if offer { codecs } else { &codecs[..10] };
    let mut pts = String::new();
    for (pt, rtx, _, _) in codecs {
        let _ = write!(pts, " {pt} {rtx}");
    }
    let _ = write!(w, "m=video 9 UDP/TLS/RTP/SAVPF{pts} 116 117 118\r\n");
    transport(w, 1);
    w.push_str(
        "a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n\
         a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
         a=extmap:13 urn:3gpp:video-orientation\r\n\
         a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
         a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r\n\
         a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type\r\n\
         a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing\r\n\
         a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space\r\n\
         a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
         a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
         a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\na=sendrecv\r\n",
    );
    let _ = write!(
        w,
        "a=msid:{stream} 5d2f8a61-c3b7-4e90-a1d6-0b7e29f4c812\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
    );
    for (pt, rtx, name, fmtp) in codecs {
        let _ = write!(
            w,
            "a=rtpmap:{pt} {name}\r\na=rtcp-fb:{pt} goog-remb\r\na=rtcp-fb:{pt} transport-cc\r\n\
             a=rtcp-fb:{pt} ccm fir\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\n"
        );
        if !fmtp.is_empty() {
            let _ = write!(w, "a=fmtp:{pt} {fmtp}\r\n");
        }
        let _ = write!(w, "a=rtpmap:{rtx} rtx/90000\r\na=fmtp:{rtx} apt={pt}\r\n");
    }
    let _ = write!(
        w,
        "a=rtpmap:116 red/90000\r\na=rtpmap:117 rtx/90000\r\na=fmtp:117 apt=116\r\n\
         a=rtpmap:118 ulpfec/90000\r\na=ssrc-group:FID {v} {r}\r\n\
         a=ssrc:{v} cname:{cname}\r\na=ssrc:{v} msid:{stream} 5d2f8a61-c3b7-4e90-a1d6-0b7e29f4c812\r\n\
         a=ssrc:{r} cname:{cname}\r\na=ssrc:{r} msid:{stream} 5d2f8a61-c3b7-4e90-a1d6-0b7e29f4c812\r\n",
        v = ssrc.wrapping_add(17),
        r = ssrc.wrapping_add(18),
    );
    // Data channel.
    w.push_str("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
    transport(w, 2);
    w.push_str("a=sctp-port:5000\r\na=max-message-size:262144\r\n");
    s
}

/// A Chrome offer carrying `tag`.
pub fn offer(tag: &Tag) -> String {
    session_description(true, tag)
}

/// A Chrome answer carrying `tag`.
pub fn answer(tag: &Tag) -> String {
    session_description(false, tag)
}

/// One trickled candidate: its string (carrying `tag`), its m-line index and its mid. `n` picks
/// among the shapes Chrome sends (host UDP over IPv4 and IPv6, host TCP, server reflexive), on
/// m-lines 0, 1, 2 as an offerer gathers before BUNDLE is agreed.
pub fn candidate(n: u64, offerer: bool, tag: &Tag) -> (String, u32, String) {
    let ufrag = if offerer { "dK+1" } else { "lhct" };
    let mline = if offerer { (n % 3) as u32 } else { 0 };
    let port = 50_000 + (n % 10_000);
    let body = match n % 4 {
        0 => format!(
            "candidate:835302670 1 udp 2122194687 192.0.2.2 {port} typ host generation 0 ufrag {ufrag} network-id 1"
        ),
        1 => format!(
            "candidate:1476829403 1 udp 2122262783 2001:db8::2 {port} typ host generation 0 ufrag {ufrag} network-id 2"
        ),
        2 => format!(
            "candidate:3289420123 1 tcp 1518214911 192.0.2.2 9 typ host tcptype active generation 0 ufrag {ufrag} network-id 1"
        ),
        _ => format!(
            "candidate:842163049 1 udp 1677729535 203.0.113.7 {port} typ srflx raddr 192.0.2.2 rport {port} generation 0 ufrag {ufrag} network-id 1 network-cost 10"
        ),
    };
    (
        format!("{body} {TAG_MARK} {}", tag.render()),
        mline,
        mline.to_string(),
    )
}

/// The ICE username fragment of a side's candidates (Chrome adds it to `RTCIceCandidate` JSON).
pub fn ufrag(offerer: bool) -> &'static str {
    if offerer { "dK+1" } else { "lhct" }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: Tag = Tag {
        pair: 12,
        side: 1,
        seq: 345,
        sent_ns: 6_789_012_345,
    };

    #[test]
    fn sizes_are_chrome_like() {
        let o = offer(&TAG).len();
        let a = answer(&TAG).len();
        assert!((5_800..6_600).contains(&o), "offer {o} bytes");
        assert!((5_400..6_200).contains(&a), "answer {a} bytes");
    }

    #[test]
    fn tags_are_found_in_sdp_and_candidates_whatever_the_escaping() {
        let sdp = offer(&TAG);
        assert_eq!(find_tag(&sdp), Some((TAG, true)));
        let escaped = serde_json::to_string(&serde_json::to_string(&sdp).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(find_tag(&escaped), Some((TAG, true)));
        let (cand, _, _) = candidate(3, true, &TAG);
        assert_eq!(find_tag(&cand), Some((TAG, false)));
        assert_eq!(find_tag("no tag here"), None);
    }
}
