//! TLS and QUIC configuration for both listeners, and client configurations for agents,
//! viewers and tests.
//!
//! TLS 1.3 only, ring provider, 0-RTT off, ALPN `tsuitate/1` only. The agent side requires a
//! client certificate chained to our CA; the viewer side requires none (viewers log in).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::config::{Config, QuicConfig};

/// Errors while loading certificates or building TLS configurations.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
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

/// The one crypto provider of the workspace: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
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

/// A root store holding the CA certificates in `ca`.
pub fn root_store(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c)?;
    }
    Ok(roots)
}

/// The subject common name of a DER certificate.
pub fn cert_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = x509.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The common name of the certificate a QUIC peer presented, if any.
pub fn peer_common_name(conn: &quinn::Connection) -> Option<String> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().and_then(cert_common_name)
}

fn transport(q: &QuicConfig, stream_window: u32, conn_window: u32) -> TransportConfig {
    let mut t = TransportConfig::default();
    // Peers open exactly one bidirectional stream (viewer stream / agent control stream);
    // the gateway opens agent session streams itself. No unidirectional streams, no datagrams.
    t.max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(stream_window))
        .receive_window(VarInt::from_u32(conn_window))
        .send_window(q.send_window)
        .datagram_receive_buffer_size(None)
        .keep_alive_interval(Some(Duration::from_secs(q.keep_alive_s)))
        .max_idle_timeout(
            IdleTimeout::try_from(Duration::from_secs(q.idle_timeout_s))
                .ok()
                .or(Some(IdleTimeout::from(VarInt::from_u32(30_000)))),
        );
    t
}

fn server_config(
    tls: rustls::ServerConfig,
    q: &QuicConfig,
    transport: TransportConfig,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = tls;
    tls.alpn_protocols = vec![tsuitate_protocol::ALPN.to_vec()];
    // 0-RTT off: no replayable early data from either zone.
    tls.max_early_data_size = 0;
    let crypto =
        QuicServerConfig::try_from(Arc::new(tls)).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport))
        .max_incoming(q.max_incoming)
        .incoming_buffer_size(64 * 1024)
        .incoming_buffer_size_total(q.max_incoming as u64 * 16 * 1024)
        .migration(false);
    Ok(cfg)
}

/// The agent-side server: client certificates chained to our CA are required.
pub fn agent_server_config(cfg: &Config) -> Result<quinn::ServerConfig, TlsError> {
    let roots = Arc::new(root_store(&cfg.tls.ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider()).build()?;
    let tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&cfg.tls.cert)?, load_key(&cfg.tls.key)?)?;
    let q = &cfg.quic;
    server_config(
        tls,
        q,
        transport(q, q.agent_stream_window, q.agent_connection_window),
    )
}

/// The viewer-side server: no client certificate (viewers log in with a password).
pub fn viewer_server_config(cfg: &Config) -> Result<quinn::ServerConfig, TlsError> {
    let tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(load_certs(&cfg.tls.cert)?, load_key(&cfg.tls.key)?)?;
    let q = &cfg.quic;
    server_config(
        tls,
        q,
        transport(q, q.viewer_stream_window, q.viewer_connection_window),
    )
}

/// A QUIC client configuration that trusts `ca` and, for agents, presents `identity`
/// (certificate chain PEM, key PEM). For the agent and viewer crates and for tests.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<quinn::ClientConfig, TlsError> {
    let roots = root_store(ca)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![tsuitate_protocol::ALPN.to_vec()];
    let crypto =
        QuicClientConfig::try_from(Arc::new(tls)).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(8 * 1024 * 1024))
        .receive_window(VarInt::from_u32(32 * 1024 * 1024))
        .keep_alive_interval(Some(Duration::from_secs(5)));
    cfg.transport_config(Arc::new(t));
    Ok(cfg)
}
