//! The gateway's two QUIC server configurations, built by `tsuitate-transport` from the
//! gateway's `[tls]` and `[quic]` settings.
//!
//! The agent side requires a client certificate chained to our CA; the viewer side requires
//! none (viewers log in), and accepts one from trusted fronts (web viewers).

use std::sync::Arc;

use tsuitate_transport::tls::{load_certs, load_key, root_store};
use tsuitate_transport::{server_config, ServerAuth, TlsError, Tuning};

use crate::config::{Config, QuicConfig};

fn tuning(q: &QuicConfig, stream_window: u32, connection_window: u32) -> Tuning {
    Tuning {
        keep_alive: q.keep_alive,
        idle_timeout: q.idle_timeout,
        stream_receive_window: stream_window,
        receive_window: connection_window,
        send_window: q.send_window,
    }
}

/// The agent-side server: client certificates chained to our CA are required.
pub fn agent_server_config(cfg: &Config) -> Result<quinn::ServerConfig, TlsError> {
    let roots = Arc::new(root_store(&cfg.tls.ca)?);
    let q = &cfg.quic;
    server_config(
        load_certs(&cfg.tls.cert)?,
        load_key(&cfg.tls.key)?,
        ServerAuth::ClientCertificate(roots),
        &tuning(q, q.agent_stream_window, q.agent_connection_window),
        q.max_incoming,
    )
}

/// The viewer-side server: viewers log in with a password and need no certificate; when
/// trusted fronts are configured, a client certificate from our CA may be presented (and is
/// verified) so a front can prove its name.
pub fn viewer_server_config(cfg: &Config) -> Result<quinn::ServerConfig, TlsError> {
    let q = &cfg.quic;
    let auth = if cfg.trusted_fronts.is_empty() {
        ServerAuth::Anyone
    } else {
        ServerAuth::OptionalClientCertificate(Arc::new(root_store(&cfg.tls.ca)?))
    };
    server_config(
        load_certs(&cfg.tls.cert)?,
        load_key(&cfg.tls.key)?,
        auth,
        &tuning(q, q.viewer_stream_window, q.viewer_connection_window),
        q.max_incoming,
    )
}
