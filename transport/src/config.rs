//! QUIC client and server configurations, from one place with one set of tunings.
//!
//! TLS 1.3 only, ring provider, 0-RTT off, ALPN `tsuitate/1` only (docs/protocol.md §1).
//! Servers take at most one bidirectional stream from each peer (the viewer stream or the
//! agent control stream), no unidirectional streams and no datagrams.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tsuitate_protocol::ALPN;

use crate::tls::{provider, TlsError};

/// The transport tunings every tsuitate QUIC connection uses, client or server.
///
/// One set for the product, the tests and the benches: the benches measure what ships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// How often an idle connection sends a keep-alive.
    pub keep_alive: Duration,
    /// A connection with nothing received for this long is dead (the smaller of the two
    /// peers' values applies).
    pub idle_timeout: Duration,
    /// Bytes a peer may send on one stream ahead of our reads.
    pub stream_receive_window: u32,
    /// Bytes a peer may send on the whole connection ahead of our reads.
    pub receive_window: u32,
    /// Bytes we buffer unacknowledged per connection.
    pub send_window: u64,
}

impl Default for Tuning {
    /// Keep-alive 2 s and idle timeout 10 s: a lost peer is noticed within seconds (a viewer
    /// reconnects, a gateway frees the session) while a live one never times out. Windows
    /// large enough for a 1080p keyframe in flight.
    fn default() -> Self {
        Tuning {
            keep_alive: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            stream_receive_window: 8 * 1024 * 1024,
            receive_window: 32 * 1024 * 1024,
            send_window: 16 * 1024 * 1024,
        }
    }
}

impl Tuning {
    /// A native viewer's connection to its gateway: keep-alive 0.4 s and idle timeout 1.5 s,
    /// so a gateway that dies (`kill -9`, a lost host) is noticed within 1.5 s and the viewer
    /// reconnects through another gateway (docs/viewer.md "Several gateways"). Over a link
    /// that is silent for 1.5 s the viewer reconnects too, and resumes the same browser.
    pub fn viewer() -> Tuning {
        Tuning {
            keep_alive: Duration::from_millis(400),
            idle_timeout: Duration::from_millis(1500),
            ..Tuning::default()
        }
    }

    /// The quinn transport configuration of these tunings (no unidirectional streams, no
    /// datagrams).
    pub fn transport(&self) -> TransportConfig {
        let mut t = TransportConfig::default();
        t.stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(self.receive_window))
            .send_window(self.send_window)
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None)
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(
                IdleTimeout::try_from(self.idle_timeout)
                    .unwrap_or_else(|_| IdleTimeout::from(VarInt::from_u32(30_000))),
            ));
        t
    }
}

/// Who a server lets in at the TLS layer.
#[derive(Debug, Clone)]
pub enum ServerAuth {
    /// Clients must present a certificate chained to one of these roots (agents).
    ClientCertificate(Arc<RootCertStore>),
    /// No client certificate (viewers log in with a password).
    Anyone,
    /// A client certificate chained to these roots may be presented, and is then verified;
    /// clients without one are accepted too (viewers, and trusted fronts that prove a name).
    OptionalClientCertificate(Arc<RootCertStore>),
}

/// A QUIC server configuration presenting `chain`/`key`, with `max_incoming` connection
/// attempts queued at once.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    auth: ServerAuth,
    tuning: &Tuning,
    max_incoming: usize,
) -> Result<quinn::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match auth {
        ServerAuth::ClientCertificate(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots, provider()).build()?,
        ),
        ServerAuth::Anyone => builder.with_no_client_auth(),
        ServerAuth::OptionalClientCertificate(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots, provider())
                .allow_unauthenticated()
                .build()?,
        ),
    };
    let mut tls = builder.with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT off: no replayable early data from either zone.
    tls.max_early_data_size = 0;
    let crypto =
        QuicServerConfig::try_from(Arc::new(tls)).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut transport = tuning.transport();
    // Peers open exactly one bidirectional stream; the gateway opens agent session streams
    // itself.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(1));
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport))
        .max_incoming(max_incoming)
        .incoming_buffer_size(64 * 1024)
        .incoming_buffer_size_total(u64::try_from(max_incoming).unwrap_or(u64::MAX / 2) * 16 * 1024)
        .migration(false);
    Ok(cfg)
}

/// A QUIC client configuration that trusts `roots` and, for agents, presents `identity`
/// (certificate chain and key).
pub fn client_config(
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    tuning: &Tuning,
) -> Result<quinn::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        QuicClientConfig::try_from(Arc::new(tls)).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(tuning.transport()));
    Ok(cfg)
}

/// A client endpoint on an ephemeral port of the address family of `remote`, with `config`
/// as its default. Where quinn's own socket cannot be set up because the platform refuses a
/// socket option it requires (seen under Wine), a plain UDP socket is used instead
/// ([`crate::plain_udp`]).
pub fn client_endpoint(
    remote: SocketAddr,
    config: quinn::ClientConfig,
) -> std::io::Result<quinn::Endpoint> {
    let bind = if remote.is_ipv6() {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    };
    match quinn::Endpoint::client(bind) {
        Ok(mut ep) => {
            ep.set_default_client_config(config);
            Ok(ep)
        }
        Err(e) => match crate::plain_udp::plain_client_endpoint(bind, config) {
            Ok(ep) => {
                tracing::warn!(error = %e, "the platform refused quinn's socket options: using a plain UDP socket (no ECN)");
                Ok(ep)
            }
            Err(_) => Err(e),
        },
    }
}

/// [`client_config`] from PEM files: the CA file `ca` and, for agents, the certificate chain
/// and key files of `identity`.
pub fn client_config_from_files(
    ca: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
    tuning: &Tuning,
) -> Result<quinn::ClientConfig, TlsError> {
    let identity = match identity {
        Some((cert, key)) => Some((crate::tls::load_certs(cert)?, crate::tls::load_key(key)?)),
        None => None,
    };
    client_config(crate::tls::root_store(ca)?, identity, tuning)
}
