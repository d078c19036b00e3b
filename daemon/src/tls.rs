//! TLS listeners (`https://` and `wss://`) with rustls: loading a certificate and key from PEM
//! files and a self-signed development certificate (`switchboard --self-signed`). The accept
//! loop that terminates TLS, with the same limits and timeouts as a plain listener, is
//! [`crate::listeners`]' own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{GatewayConfig, TlsConfig};

/// Builds the rustls server config of a listener from its PEM files.
pub fn load_server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("cannot read certificates from {}: {e}", tls.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", tls.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", tls.key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

/// Generates a self-signed certificate for `localhost`, the loopback addresses, this host's name
/// and any `extra_names` (host names or IP addresses).
pub fn self_signed(extra_names: &[String]) -> Result<SelfSigned, String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    names.extend(extra_names.iter().cloned());
    names.dedup();
    let key = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    Ok(SelfSigned {
        cert_pem: key.cert.pem(),
        key_pem: key.signing_key.serialize_pem(),
    })
}

/// Turns every listener of `config` into a TLS listener with a freshly generated self-signed
/// certificate, written to `dir` (`cert.pem`, `key.pem`). For development: browsers warn once,
/// then camera access works from other machines (it needs a secure context).
pub fn apply_self_signed(
    config: &mut GatewayConfig,
    dir: &Path,
    extra_names: &[String],
) -> Result<PathBuf, String> {
    let generated = self_signed(extra_names)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &generated.cert_pem)
        .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    write_private(&key, &generated.key_pem)?;
    for listener in &mut config.listeners {
        listener.tls = Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    Ok(cert)
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_loads() {
        let dir = std::env::temp_dir().join(format!("sb-tls-test-{}", std::process::id()));
        let mut config = GatewayConfig::embedded_default();
        let cert = apply_self_signed(&mut config, &dir, &["sb.test".to_owned()]);
        assert!(cert.is_ok(), "{cert:?}");
        let tls = config.listeners[0].tls.clone();
        let Some(tls) = tls else {
            panic!("no tls on the listener");
        };
        assert!(load_server_config(&tls).is_ok());
        let missing = TlsConfig {
            cert: dir.join("nope.pem"),
            key: tls.key.clone(),
        };
        assert!(load_server_config(&missing).is_err());
        let swapped = TlsConfig {
            cert: tls.key.clone(),
            key: tls.cert.clone(),
        };
        assert!(load_server_config(&swapped).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
