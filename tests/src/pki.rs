//! A throwaway certificate authority for tests that serve or reach TLS on loopback.

use std::path::{Path, PathBuf};

/// A test CA, and a server certificate it issued for `localhost` and `127.0.0.1`.
pub struct TestPki {
    /// The CA certificate, written to `ca.pem` in the directory given to [`test_pki`].
    pub ca_file: PathBuf,
    /// The server certificate (PEM), also written to `server.pem`.
    pub server_cert_pem: String,
    /// Its private key (PEM), also written to `server.key`.
    pub server_key_pem: String,
}

/// Makes a CA named `ca_name` and a server certificate, and writes `ca.pem`, `server.pem` and
/// `server.key` into `dir`.
pub fn test_pki(dir: &Path, ca_name: &str) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let pki = TestPki {
        ca_file: dir.join("ca.pem"),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
    };
    std::fs::write(&pki.ca_file, ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &pki.server_key_pem).unwrap();
    pki
}
