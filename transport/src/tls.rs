//! Certificates and keys: the one crypto provider of the workspace (ring), PEM loading, and
//! the names in certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// Errors while loading certificates or building TLS configurations.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{0}: no usable PEM certificate or key")]
    Pem(PathBuf),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// No TLS 1.3 initial cipher suite.
    #[error("QUIC crypto: {0}")]
    Quic(String),
}

/// The one crypto provider of the workspace: ring (docs/decisions.md D1).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file; an error if there is none or if any block is corrupt (a
/// half-readable CA bundle is refused, not silently shortened).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem(path.to_owned()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(path.to_owned()));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem(path.to_owned()))
}

/// A root store holding `certs`.
pub fn roots_of(certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c)?;
    }
    Ok(roots)
}

/// A root store holding the CA certificates in the PEM file `ca`.
pub fn root_store(ca: &Path) -> Result<RootCertStore, TlsError> {
    roots_of(load_certs(ca)?)
}

/// The subject common name of a DER certificate.
pub fn cert_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = x509.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// When the certificate a QUIC peer presented expires (UNIX seconds), if it presented one.
pub fn peer_not_after(conn: &quinn::Connection) -> Option<i64> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let (_, x509) = x509_parser::parse_x509_certificate(certs.first()?.as_ref()).ok()?;
    Some(x509.validity().not_after.timestamp())
}

/// The serial number (lower-case hex, no separators, no leading zero bytes) of the
/// certificate a QUIC peer presented, if any.
pub fn peer_serial(conn: &quinn::Connection) -> Option<String> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    cert_serial(certs.first()?)
}

/// The serial number of a certificate as [`peer_serial`] writes it.
pub fn cert_serial(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(serial_hex(x509.raw_serial()))
}

/// Serial bytes as lower-case hex without leading zero bytes ("0" for zero).
fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let hex: String = raw[start..].iter().map(|b| format!("{b:02x}")).collect();
    if hex.is_empty() {
        "0".to_owned()
    } else {
        hex
    }
}

/// The common name of the certificate a QUIC peer presented, if any.
pub fn peer_common_name(conn: &quinn::Connection) -> Option<String> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().and_then(cert_common_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_block_refuses_the_whole_file() {
        let d = std::env::temp_dir().join(format!("tsuitate-tls-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        let good = ca.cert.pem();
        let ok = d.join("ok.pem");
        std::fs::write(&ok, &good).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(load_certs(&ok).map(|c| c.len()).ok(), Some(1));
        let bad = d.join("bad.pem");
        let broken = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        std::fs::write(&bad, format!("{good}{broken}")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(load_certs(&bad), Err(TlsError::Pem(_))));
        let empty = d.join("empty.pem");
        std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(load_certs(&empty), Err(TlsError::Pem(_))));
        let _ = std::fs::remove_dir_all(&d);
    }
}
