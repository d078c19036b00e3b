//! The TLS side of `https://` JWKS URLs: a rustls client on the `ring` provider (the one the
//! gateway's own TLS listeners use) that trusts Mozilla's root certificates (webpki-roots, so a
//! gateway in a minimal container needs no system store) and, for an identity provider behind
//! an internal CA, the certificates of an extra PEM file (`jwks_ca_file`).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A connector trusting the public roots and every certificate of `ca_file`. Read once, when
/// the settings are built, so a missing or empty file is a configuration error.
pub(crate) fn connector(ca_file: Option<&Path>) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        add_ca_file(&mut roots, path)?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Adds the certificates of the PEM file at `path`; it must hold at least one usable one.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "{}: holds no usable CA certificate",
            path.display()
        ));
    }
    Ok(())
}

/// The name the server's certificate must carry: the URL's host (a DNS name or an IP).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    // An IPv6 host comes bracketed out of a URI.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|_| format!("`{host}` is not a TLS server name"))
}
