//! WHIP and WHEP bodies (RFC 9725 and its egress twin): what the gateway reads of an HTTP body
//! before any of it reaches the media plugin. Two shapes:
//!
//! - an SDP offer (`application/sdp`): only checked to be one ([`check_offer`]); the media
//!   plugin parses it;
//! - a trickle ICE fragment (`application/trickle-ice-sdpfrag`, RFC 8840) of a `PATCH`:
//!   decoded by [`SdpFrag::decode`] into the session-level ICE credentials and, per media
//!   section, its candidates.
//!
//! Both are bounded before they are read (the daemon caps the body), and every error is a
//! fixed text that quotes nothing of the peer's body.

/// Most candidate lines one fragment may carry (a browser gathers a handful per `PATCH`).
pub const MAX_FRAG_CANDIDATES: usize = 64;

/// Most media sections one fragment may name.
pub const MAX_FRAG_SECTIONS: usize = 16;

/// Longest line of a fragment, in bytes (a candidate line is under 200).
pub const MAX_FRAG_LINE: usize = 1024;

/// Why a body is not what the endpoint takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WhipBodyError {
    /// The body is not an SDP offer: it must start with `v=0` and carry at least one `m=` line.
    #[error("the body is not an SDP offer (it must start with `v=0` and have an `m=` section)")]
    NotSdp,
    /// A fragment line is not `a=…` or `m=…` (RFC 8840 fragments carry nothing else).
    #[error("line {0} of the fragment is neither an `a=` nor an `m=` line")]
    BadLine(usize),
    /// A fragment line is longer than [`MAX_FRAG_LINE`].
    #[error("line {0} of the fragment is longer than {MAX_FRAG_LINE} bytes")]
    LongLine(usize),
    /// A candidate or `a=mid` before any `m=` line.
    #[error("line {0} of the fragment belongs to a media section but comes before any `m=` line")]
    OutsideSection(usize),
    /// More candidates than [`MAX_FRAG_CANDIDATES`] or sections than [`MAX_FRAG_SECTIONS`].
    #[error(
        "the fragment has more than {MAX_FRAG_CANDIDATES} candidates or {MAX_FRAG_SECTIONS} media sections"
    )]
    TooMany,
    /// No `a=ice-ufrag` and `a=ice-pwd` (RFC 8840 §4.4 requires them in every fragment).
    #[error("the fragment has no `a=ice-ufrag` and `a=ice-pwd`")]
    NoCredentials,
}

/// Whether `id` may name a WHIP/WHEP room or stream: an Ant stream id (`[A-Za-z0-9._-]`, 1 to
/// [`crate::MAX_ID_BYTES`] bytes), since Ant pages list and play it.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && crate::dialects::common::valid_id(id)
}

/// Checks that `body` is an SDP offer worth handing to the media plugin: `v=0` first, at
/// least one media section. Whatever else is wrong with it is the media plugin's to say.
pub fn check_offer(body: &str) -> Result<(), WhipBodyError> {
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let first = body.lines().next().unwrap_or_default().trim_end();
    if first != "v=0" || !body.lines().any(|l| l.starts_with("m=")) {
        return Err(WhipBodyError::NotSdp);
    }
    Ok(())
}

/// One media section of a fragment: its `mid` and the candidate lines it carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragSection {
    /// `a=mid:` of the section, if the fragment gives it.
    pub mid: Option<String>,
    /// Candidate attributes without their `a=` (`candidate:1 1 udp …`), as the media plugin
    /// takes them.
    pub candidates: Vec<String>,
}

/// A decoded trickle ICE fragment (RFC 8840 §9, as RFC 9725 §4.3.1 uses it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdpFrag {
    /// `a=ice-ufrag`: tells a trickle (the session's own) from an ICE restart (a new one).
    pub ice_ufrag: String,
    /// `a=ice-pwd`.
    pub ice_pwd: String,
    /// The media sections, in order.
    pub sections: Vec<FragSection>,
    /// `a=end-of-candidates` was present.
    pub end_of_candidates: bool,
}

impl SdpFrag {
    /// Decodes a fragment. Lines end with CRLF or LF; empty lines are skipped; attributes the
    /// gateway has no use for (`a=group`, `a=ice-options`, …) are ignored.
    pub fn decode(body: &str) -> Result<Self, WhipBodyError> {
        let mut frag = SdpFrag::default();
        let mut candidates = 0usize;
        for (i, line) in body.lines().enumerate() {
            let number = i + 1;
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            if line.len() > MAX_FRAG_LINE {
                return Err(WhipBodyError::LongLine(number));
            }
            if line.starts_with("m=") {
                if frag.sections.len() >= MAX_FRAG_SECTIONS {
                    return Err(WhipBodyError::TooMany);
                }
                frag.sections.push(FragSection::default());
                continue;
            }
            let Some(attribute) = line.strip_prefix("a=") else {
                return Err(WhipBodyError::BadLine(number));
            };
            if let Some(v) = attribute.strip_prefix("ice-ufrag:") {
                v.trim().clone_into(&mut frag.ice_ufrag);
            } else if let Some(v) = attribute.strip_prefix("ice-pwd:") {
                v.trim().clone_into(&mut frag.ice_pwd);
            } else if attribute == "end-of-candidates" {
                frag.end_of_candidates = true;
            } else if let Some(mid) = attribute.strip_prefix("mid:") {
                let section = frag
                    .sections
                    .last_mut()
                    .ok_or(WhipBodyError::OutsideSection(number))?;
                section.mid = Some(mid.trim().to_owned());
            } else if attribute.starts_with("candidate:") {
                candidates += 1;
                if candidates > MAX_FRAG_CANDIDATES {
                    return Err(WhipBodyError::TooMany);
                }
                let section = frag
                    .sections
                    .last_mut()
                    .ok_or(WhipBodyError::OutsideSection(number))?;
                section.candidates.push(attribute.trim().to_owned());
            }
        }
        if frag.ice_ufrag.is_empty() || frag.ice_pwd.is_empty() {
            return Err(WhipBodyError::NoCredentials);
        }
        Ok(frag)
    }

    /// Every candidate line of every section.
    pub fn candidates(&self) -> impl Iterator<Item = &str> {
        self.sections
            .iter()
            .flat_map(|s| s.candidates.iter().map(String::as_str))
    }
}

/// The `a=ice-ufrag` of an SDP (the session's first), to tell a trickle from an ICE restart.
pub fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `whip-whep` 1.2 (medooze) sends in a PATCH, byte for byte in shape.
    const WHIP_WHEP_PATCH: &str = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1387637174 1 udp 2122260223 127.0.0.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\na=end-of-candidates\r\n";

    #[test]
    fn a_whip_whep_patch_decodes() {
        let frag = SdpFrag::decode(WHIP_WHEP_PATCH).expect("fragment");
        assert_eq!(frag.ice_ufrag, "EsAw");
        assert_eq!(frag.ice_pwd, "P2uYro0UCOQ4zxjKXaWCBui1");
        assert!(frag.end_of_candidates);
        assert_eq!(frag.sections.len(), 1);
        assert_eq!(frag.sections[0].mid.as_deref(), Some("0"));
        let candidates: Vec<_> = frag.candidates().collect();
        assert_eq!(
            candidates,
            [
                "candidate:1387637174 1 udp 2122260223 127.0.0.1 61764 typ host generation 0 ufrag EsAw network-id 1"
            ]
        );
    }

    #[test]
    fn malformed_fragments_are_refused_with_fixed_texts() {
        let cases = [
            ("hello", WhipBodyError::BadLine(1)),
            (
                "a=ice-ufrag:x\na=ice-pwd:y\na=candidate:1 1 udp 1 1.2.3.4 5 typ host",
                WhipBodyError::OutsideSection(3),
            ),
            (
                "m=audio 9 UDP/TLS/RTP/SAVPF 0\na=candidate:1 1 udp 1 1.2.3.4 5 typ host",
                WhipBodyError::NoCredentials,
            ),
            ("", WhipBodyError::NoCredentials),
        ];
        for (body, expected) in cases {
            assert_eq!(SdpFrag::decode(body), Err(expected), "{body:?}");
        }
        let long = format!("a=ice-ufrag:{}", "x".repeat(MAX_FRAG_LINE));
        assert_eq!(SdpFrag::decode(&long), Err(WhipBodyError::LongLine(1)));
        let many = format!(
            "a=ice-ufrag:u\na=ice-pwd:p\nm=audio 9 X 0\n{}",
            "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\n".repeat(MAX_FRAG_CANDIDATES + 1)
        );
        assert_eq!(SdpFrag::decode(&many), Err(WhipBodyError::TooMany));
        let secret = "v=0\r\nsecret-value";
        let error = SdpFrag::decode(secret).expect_err("not a fragment");
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn offers_must_look_like_sdp() {
        assert!(
            check_offer("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")
                .is_ok()
        );
        for body in ["", "{\"sdp\":\"v=0\"}", "v=0\r\n", "hello\r\nm=audio"] {
            assert_eq!(check_offer(body), Err(WhipBodyError::NotSdp), "{body:?}");
        }
        assert_eq!(ice_ufrag("v=0\r\na=ice-ufrag:abc\r\n"), Some("abc"));
    }
}
