//! The client address behind a trusted reverse proxy: the PROXY protocol header (v1 text or v2
//! binary, parsed by `ppp`) at the start of a connection, and `Forwarded` (RFC 7239) or
//! `X-Forwarded-For` on each request (parsed by `forwarded-header-value`). Only peers in
//! `[proxy] trusted` are believed; from anyone else the headers are ignored.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::http::HeaderMap;
use forwarded_header_value::ForwardedHeaderValue;
use ppp::{HeaderResult, PartialResult as _};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use crate::config::{Cidr, ClientHeader, ProxyConfig};

/// Longest PROXY header accepted: v1 is at most 107 bytes; v2 is 16 plus the addresses and
/// TLVs haproxy adds (a few hundred bytes at most).
const MAX_PROXY_HEADER_BYTES: usize = 1024;
/// How long to wait for more of a PROXY header that arrived in pieces.
const PARTIAL_HEADER_WAIT: Duration = Duration::from_millis(5);

/// The networks of `[proxy] trusted` and the header they set.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    cidrs: Vec<Cidr>,
    header: ClientHeader,
}

/// A PROXY or forwarding header that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection ended or failed before the header was whole.
    #[error("connection ended before the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a PROXY header.
    #[error("not a PROXY protocol header: {0}")]
    Malformed(String),
    /// The header did not arrive within `header_read_timeout_secs`.
    #[error("no PROXY header within the header timeout")]
    TimedOut,
    /// A `Forwarded` or `X-Forwarded-For` value does not parse.
    #[error("malformed {header} header: {error}")]
    Forwarded {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        error: String,
    },
}

impl TrustedProxies {
    /// The trusted proxies of a config.
    pub fn new(config: &ProxyConfig) -> Self {
        Self {
            cidrs: config.cidrs(),
            header: config.client_header,
        }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(ip))
    }

    /// The client behind `peer` for one request: from a trusted peer, the nearest address in the
    /// configured header that is not itself a trusted proxy; otherwise, and when the header is
    /// absent, `peer`. A port is kept where `Forwarded` gives one, else 0.
    pub fn client_of(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<SocketAddr, ProxyHeaderError> {
        if !self.contains(peer.ip()) {
            return Ok(peer);
        }
        let (name, parse): (_, fn(&str) -> Result<ForwardedHeaderValue, _>) = match self.header {
            ClientHeader::Forwarded => ("forwarded", ForwardedHeaderValue::from_forwarded),
            ClientHeader::XForwardedFor => (
                "x-forwarded-for",
                ForwardedHeaderValue::from_x_forwarded_for,
            ),
        };
        if !headers.contains_key(name) {
            return Ok(peer);
        }
        let malformed = |error: String| ProxyHeaderError::Forwarded {
            header: name,
            error,
        };
        // Several header lines are one comma-separated list, in order.
        let mut joined = String::new();
        for value in headers.get_all(name) {
            let text = value
                .to_str()
                .map_err(|_| malformed("not visible ASCII".to_owned()))?;
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(text);
        }
        let value = parse(&joined).map_err(|e| malformed(e.to_string()))?;
        // The nearest hop first: stop at the first address a trusted proxy did not add.
        for stanza in value.iter().rev() {
            let Some(id) = &stanza.forwarded_for else {
                return Err(malformed("an element without `for=`".to_owned()));
            };
            let Some(ip) = id.ip() else {
                // `unknown` or an obfuscated name: nothing better than the proxy itself.
                return Ok(peer);
            };
            if !self.contains(ip) {
                let port = match id {
                    forwarded_header_value::Identifier::SocketAddr(a) => a.port(),
                    _ => 0,
                };
                return Ok(SocketAddr::new(ip.to_canonical(), port));
            }
        }
        Ok(peer)
    }
}

/// Reads the PROXY header at the start of `tcp` (consuming exactly its bytes) and returns the
/// client's address; `peer` for a `LOCAL` header (the proxy's own health check) or `UNKNOWN`.
pub async fn read_proxy_header(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr, ProxyHeaderError> {
    tokio::time::timeout(timeout, read_header(tcp, peer))
        .await
        .map_err(|_| ProxyHeaderError::TimedOut)?
}

async fn read_header(
    tcp: &mut TcpStream,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyHeaderError> {
    let mut buf = [0u8; MAX_PROXY_HEADER_BYTES];
    loop {
        // Peek, so the bytes after the header stay in the socket for HTTP or TLS.
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        let parsed = HeaderResult::parse(&buf[..n]);
        if parsed.is_incomplete() {
            if n == buf.len() {
                return Err(ProxyHeaderError::Malformed("header too long".to_owned()));
            }
            // Peeking again at once would spin on the same bytes.
            tokio::time::sleep(PARTIAL_HEADER_WAIT).await;
            continue;
        }
        let (len, client) = match parsed {
            HeaderResult::V1(Ok(h)) => (h.header.len(), v1_client(&h.addresses)),
            HeaderResult::V2(Ok(h)) => (h.header.len(), v2_client(&h)),
            HeaderResult::V1(Err(e)) => return Err(ProxyHeaderError::Malformed(e.to_string())),
            HeaderResult::V2(Err(e)) => return Err(ProxyHeaderError::Malformed(e.to_string())),
        };
        let mut consumed = vec![0u8; len];
        tcp.read_exact(&mut consumed).await?;
        return Ok(client.unwrap_or(peer));
    }
}

fn v1_client(addresses: &ppp::v1::Addresses) -> Option<SocketAddr> {
    match addresses {
        ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Unknown => None,
    }
}

fn v2_client(header: &ppp::v2::Header<'_>) -> Option<SocketAddr> {
    if header.command == ppp::v2::Command::Local {
        return None;
    }
    match header.addresses {
        ppp::v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use tokio::io::AsyncWriteExt as _;

    fn trusted_with(header: ClientHeader) -> TrustedProxies {
        TrustedProxies::new(&ProxyConfig {
            trusted: vec!["127.0.0.1/32".to_owned(), "10.0.0.0/8".to_owned()],
            client_header: header,
        })
    }

    fn trusted() -> TrustedProxies {
        trusted_with(ClientHeader::XForwardedFor)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse()
            .unwrap_or_else(|_| SocketAddr::from(([0; 4], 0)))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_peers() {
        let t = trusted();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.2.3")]);
        let got = t.client_of(addr("127.0.0.1:4000"), &xff).ok();
        assert_eq!(got, Some(addr("203.0.113.9:0")), "skips the trusted hop");
        let untrusted = addr("198.51.100.7:5555");
        assert_eq!(t.client_of(untrusted, &xff).ok(), Some(untrusted));
        let fwd = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"",
        )]);
        assert_eq!(
            trusted_with(ClientHeader::Forwarded)
                .client_of(addr("127.0.0.1:1"), &fwd)
                .ok(),
            Some(addr("[2001:db8::1]:4711"))
        );
        // The header the proxies do not set is a client's forgery: ignored.
        let peer = addr("127.0.0.1:1");
        assert_eq!(t.client_of(peer, &fwd).ok(), Some(peer));
        let spoofed = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "192.0.2.5"),
        ]);
        assert_eq!(
            t.client_of(addr("127.0.0.1:1"), &spoofed).ok(),
            Some(addr("192.0.2.5:0")),
            "the nearest untrusted hop wins over what the client claimed"
        );
        assert_eq!(
            t.client_of(addr("127.0.0.1:9"), &HeaderMap::new()).ok(),
            Some(addr("127.0.0.1:9"))
        );
    }

    #[test]
    fn malformed_forwarded_headers_from_trusted_peers_are_errors() {
        let t = trusted();
        for bad in [
            headers(&[("x-forwarded-for", "not-an-ip")]),
            headers(&[("x-forwarded-for", "")]),
        ] {
            assert!(t.client_of(addr("127.0.0.1:1"), &bad).is_err(), "{bad:?}");
            // From an untrusted peer the same headers are simply ignored.
            assert!(t.client_of(addr("192.0.2.1:1"), &bad).is_ok());
        }
        let t = trusted_with(ClientHeader::Forwarded);
        for bad in [
            headers(&[("forwarded", "for=999.1.1.1")]),
            headers(&[("forwarded", "proto=https")]),
        ] {
            assert!(t.client_of(addr("127.0.0.1:1"), &bad).is_err(), "{bad:?}");
            assert!(t.client_of(addr("192.0.2.1:1"), &bad).is_ok());
        }
    }

    async fn proxied(bytes: &[u8]) -> (Result<SocketAddr, ProxyHeaderError>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(to).await.unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        client.write_all(bytes).await.unwrap();
        client.write_all(b"GET /").await.unwrap();
        let got = read_proxy_header(&mut server, peer, Duration::from_secs(2)).await;
        let mut rest = vec![0u8; 5];
        if got.is_ok() {
            server.read_exact(&mut rest).await.unwrap();
        }
        (got, rest)
    }

    #[tokio::test]
    async fn proxy_headers_v1_and_v2_give_the_client_and_leave_the_request() {
        let (got, rest) = proxied(b"PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n").await;
        assert_eq!(got.ok(), Some(addr("192.0.2.1:56324")));
        assert_eq!(rest, b"GET /");
        let v2 = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (addr("[2001:db8::7]:1234"), addr("[::1]:80")),
        )
        .build()
        .unwrap();
        let (got, rest) = proxied(&v2).await;
        assert_eq!(got.ok(), Some(addr("[2001:db8::7]:1234")));
        assert_eq!(rest, b"GET /");
        let (got, _) = proxied(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            matches!(got, Err(ProxyHeaderError::Malformed(_))),
            "{got:?}"
        );
        let (got, _) = proxied(b"PROXY TCP4 300.0.2.1 127.0.0.1 1 2\r\n").await;
        assert!(
            matches!(got, Err(ProxyHeaderError::Malformed(_))),
            "{got:?}"
        );
    }
}
