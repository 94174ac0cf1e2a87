//! # tsuitate-gateway
//!
//! The zone boundary of tsuitate. Host agents (Internet zone) and viewers (LGWAN zone) both
//! dial in; the gateway parses every message into a typed value, checks it, and rebuilds what
//! it forwards: sanitized H.264 toward the viewer, validated input toward the agent. Nothing
//! is passed through. See `docs/gateway.md`.
//!
//! ```no_run
//! # async fn demo(cfg: tsuitate_gateway::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! let gw = tsuitate_gateway::Gateway::start(cfg).await?;
//! println!("viewers: {}, agents: {}", gw.viewer_addr, gw.agent_addr);
//! gw.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod accept;
pub mod admin;
mod admin_http;
mod agent_listener;
pub mod audit;
pub mod broker;
pub mod certs;
pub mod config;
pub mod error;
pub mod lockout;
pub mod metrics;
pub mod relay;
pub mod selfcheck;
mod session;
pub mod shared_lockout;
mod state;
mod streams;
pub mod tls;
pub mod users;
mod viewer_listener;
mod viewer_writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::admin_http::MAX_CONNECTIONS as ADMIN_MAX_CONNECTIONS;
pub use crate::config::Config;
use crate::error::Side;
pub use crate::metrics::{Gauges, Metrics};
pub use crate::state::now_us;
use crate::state::State;

/// Why the gateway could not start. Nothing is bound when this is returned for a config,
/// TLS, users or audit problem.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    /// Certificates or keys could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] tsuitate_transport::TlsError),
    /// The users file is unreadable.
    #[error("users: {0}")]
    Users(#[from] users::UsersError),
    /// The audit log cannot be opened.
    #[error("audit: {0}")]
    Audit(#[from] audit::AuditError),
    /// A listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway;

/// A running gateway.
#[derive(Debug)]
pub struct GatewayHandle {
    /// Where agents connect (the bound address, useful with port 0).
    pub agent_addr: SocketAddr,
    /// Where viewers connect.
    pub viewer_addr: SocketAddr,
    /// Metrics and health (HTTP).
    pub admin_addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    endpoints: [quinn::Endpoint; 2],
    tasks: Vec<JoinHandle<()>>,
    /// Closes when every session and agent connection has finished (their drain tokens).
    drained: tokio::sync::mpsc::Receiver<()>,
}

impl Gateway {
    /// Validate everything, bind the three listeners and start serving.
    pub async fn start(cfg: Config) -> Result<GatewayHandle, StartError> {
        cfg.validate(true)?;
        let agent_cfg = tls::agent_server_config(&cfg)?;
        let viewer_cfg = tls::viewer_server_config(&cfg)?;
        users::UsersFile::load(&cfg.users_file)?;
        let key = cfg
            .audit_key()
            .map_err(|e| config::ConfigErrors(vec![format!("audit_hmac_key_file: {e}")]))?;
        let audit = audit::AuditLog::open(
            &cfg.audit_log,
            cfg.audit_anchor.as_deref().map(audit::AnchorSink::parse),
            cfg.audit_anchor_interval,
            key,
        )?;
        let bind = |addr: SocketAddr, c: quinn::ServerConfig| {
            quinn::Endpoint::server(c, addr).map_err(|source| StartError::Bind { addr, source })
        };
        let agent_ep = bind(cfg.agent_listen, agent_cfg)?;
        let viewer_ep = bind(cfg.viewer_listen, viewer_cfg)?;
        let admin = tokio::net::TcpListener::bind(cfg.admin_listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: cfg.admin_listen,
                source,
            })?;
        let local = |ep: &quinn::Endpoint, addr| {
            ep.local_addr()
                .map_err(|source| StartError::Bind { addr, source })
        };
        let agent_addr = local(&agent_ep, cfg.agent_listen)?;
        let viewer_addr = local(&viewer_ep, cfg.viewer_listen)?;
        let admin_addr = admin.local_addr().map_err(|source| StartError::Bind {
            addr: cfg.admin_listen,
            source,
        })?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        if let Ok(mut c) = metrics.cert_expiry.lock() {
            for (name, path) in [("ca", &cfg.tls.ca), ("gateway", &cfg.tls.cert)] {
                if let Ok((_, not_after)) = selfcheck::cert_expiry(path) {
                    c.push((name, not_after));
                }
            }
        }
        let (state, drained) = State::new(Arc::new(cfg), metrics, audit, shutdown_rx);
        let state = Arc::new(state);
        state.audit(json!({"event": "gateway_start", "agent_listen": agent_addr.to_string(), "viewer_listen": viewer_addr.to_string()}));
        admin::restore(&state);
        let tasks = vec![
            tokio::spawn(accept::accept_loop(
                agent_ep.clone(),
                state.clone(),
                Side::Agent,
                agent_listener::handle_agent,
            )),
            tokio::spawn(accept::accept_loop(
                viewer_ep.clone(),
                state.clone(),
                Side::Viewer,
                viewer_listener::handle_viewer,
            )),
            tokio::spawn(admin_http::serve(admin, state.clone())),
            tokio::spawn({
                let state = state.clone();
                async move {
                    let mut tick = tokio::time::interval(state::PRELOGIN_WINDOW / 6);
                    loop {
                        tick.tick().await;
                        state.flush_prelogin(false);
                    }
                }
            }),
        ];
        tracing::info!(
            %agent_addr,
            %viewer_addr,
            %admin_addr,
            session_limit = state.cfg.max_sessions_by_memory(),
            session_worst_case_mib = state.cfg.session_memory_bytes() >> 20,
            "gateway started"
        );
        Ok(GatewayHandle {
            agent_addr,
            viewer_addr,
            admin_addr,
            state,
            shutdown,
            endpoints: [agent_ep, viewer_ep],
            tasks,
            drained,
        })
    }
}

impl GatewayHandle {
    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Current gauges (sessions, agents, capacity).
    pub fn gauges(&self) -> Gauges {
        self.state.gauges()
    }

    /// Audit the pre-login violation sums now instead of at the end of their window.
    pub fn flush_prelogin(&self) {
        self.state.flush_prelogin(true);
    }

    /// Wait until every audit event recorded so far is on disk.
    pub async fn flush_audit(&self) {
        self.state.audit.flush().await;
    }

    /// Graceful shutdown: stop accepting, send `Bye{Shutdown}` to viewers and `Close` to
    /// agents, wait up to `session.shutdown_drain_s` for sessions to end, then close.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        let _ = self.shutdown.send(true);
        let drain = self.state.cfg.session.shutdown_drain;
        // Each session and agent connection tells its peer and then drops its drain token;
        // the receiver closes when the last one is gone (no polling).
        self.state.close_drain();
        let mut drained = self.drained;
        if tokio::time::timeout(drain, drained.recv()).await.is_err() {
            tracing::warn!(
                ?drain,
                "shutdown: sessions still running after the drain time"
            );
        }
        for ep in &self.endpoints {
            let reason = tsuitate_protocol::Reason::Shutdown;
            ep.close(
                tsuitate_transport::close_code(reason),
                reason.name().as_bytes(),
            );
        }
        for ep in &self.endpoints {
            let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
        }
        for t in self.tasks {
            t.abort();
        }
        self.state.flush_prelogin(true);
        self.state.audit(json!({"event": "gateway_stop"}));
        self.state.audit.flush().await;
    }
}
