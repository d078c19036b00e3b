//! JWT material for the access-check tests: the key fixtures in `tests/fixtures/jwt/`, JWKs and
//! ES256 tokens made from them, and the answer of a loopback JWKS server.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::repo_root;

/// The key fixture `name` (`es256-private.pem`, `rs256-public.pem`, ...).
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/jwt").join(name)
}

/// The JWK of the P-256 public key in PEM fixture `name` under `kid`: an SPKI of a P-256 key
/// ends in the uncompressed point, `x` then `y`, 32 bytes each.
pub fn ec_jwk(name: &str, kid: &str) -> Value {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let pem = std::fs::read_to_string(fixture(name)).expect("the key fixture");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).expect("PEM body in base64");
    let (x, y) = der[der.len() - 64..].split_at(32);
    json!({"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":kid,
        "x":URL_SAFE_NO_PAD.encode(x),"y":URL_SAFE_NO_PAD.encode(y)})
}

/// An ES256 token of the `es256-private.pem` fixture, `kid` in its header.
pub fn es256_token(kid: &str, claims: &Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = std::fs::read(fixture("es256-private.pem")).expect("the key fixture");
    let key = EncodingKey::from_ec_pem(&pem).expect("an EC key");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("signs")
}

/// Room-policy with `token = { token }` (a TOML inline table's keys), then the router.
pub fn room_policy_plugins(token: &str) -> String {
    format!(
        "[[plugin]]\ntype = \"room-policy\"\n[plugin.settings]\ntoken = {{ {token} }}\n\n[[plugin]]\ntype = \"room-router\"\n"
    )
}

/// What a loopback JWKS server does with one connection: reads the request head (at most
/// 8 KiB) and answers 200 with the JSON `document`, closing after it.
pub async fn answer_json(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), document: &str) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{document}",
        document.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}
