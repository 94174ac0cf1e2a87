//! The QUIC connection to the gateway and the login handshake (docs/protocol.md §5.1):
//! `Hello → Welcome → Login → LoginResult → SessionReady`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use tsuitate_protocol::{
    GatewayToViewer, Limits, LoginStatus, Message, Reason, ViewerToGateway, PROTOCOL_VERSION,
};
use tsuitate_transport::{MessageReader, ReadError, Tuning};

/// Where and as whom to connect. The password lives only in memory.
#[derive(Clone)]
pub struct ClientConfig {
    /// Gateway `host:port`, or several separated by commas (tried in turn; a name may also
    /// resolve to several addresses).
    pub gateway: String,
    /// TLS server name to verify (defaults to the host part of each gateway).
    pub server_name: Option<String>,
    /// PEM file with the CA certificate(s) that issued the gateway's certificate.
    pub ca_file: PathBuf,
    /// User name.
    pub user: String,
    /// Password (never logged, never written anywhere).
    pub password: String,
    /// Limit for each handshake step.
    pub connect_timeout: Duration,
    /// Wire limits for decoding gateway messages.
    pub limits: Limits,
    /// The browser this login is for, told to the gateway before `Login` (trusted fronts
    /// only: the gateway refuses it from anyone else).
    pub forwarded_for: Option<SocketAddr>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("gateway", &self.gateway)
            .field("server_name", &self.server_name)
            .field("ca_file", &self.ca_file)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("forwarded_for", &self.forwarded_for)
            .finish()
    }
}

/// Why connecting or a session failed. Each maps to a user message and an exit code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The CA file is missing or holds no certificate.
    #[error("cannot use CA file {path}: {message}")]
    CaFile { path: String, message: String },
    /// No route, no answer, or the name did not resolve.
    #[error("gateway {gateway} unreachable: {message}")]
    Unreachable { gateway: String, message: String },
    /// TLS failed: the gateway's certificate is not trusted (or another handshake alert).
    #[error("gateway certificate rejected: {0}")]
    Certificate(String),
    /// Wrong user or password.
    #[error("wrong user name or password")]
    Denied,
    /// Too many failures.
    #[error("locked out; retry after {retry_after_s} s")]
    LockedOut { retry_after_s: u32 },
    /// No free browser.
    #[error("no browser is free")]
    NoCapacity,
    /// The gateway ended the session or connection.
    #[error("ended by the gateway: {}", .0.name())]
    Ended(Reason),
    /// The gateway sent something malformed or out of order.
    #[error("protocol error from the gateway: {0}")]
    Protocol(String),
    /// The connection dropped (network, idle timeout).
    #[error("connection lost: {0}")]
    ConnectionLost(String),
}

impl ClientError {
    /// Whether reconnecting may resume the session (a network drop, not a decision).
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            ClientError::ConnectionLost(_) | ClientError::Unreachable { .. }
        )
    }

    /// Whether a reconnect keeps trying after this: a network failure, or a gateway with no
    /// browser for us — one that has just started (a rolling restart) and whose agents have not
    /// connected yet, while they hold our browser.
    /// A gateway that is itself stopping, or that lost the agent meanwhile, is no answer
    /// either.
    pub fn retry_on_reconnect(&self) -> bool {
        self.is_network()
            || matches!(
                self,
                ClientError::NoCapacity
                    | ClientError::Ended(Reason::Shutdown | Reason::AgentLost | Reason::NoCapacity)
            )
    }
}

/// An open, logged-in connection with a session attached.
pub struct Connected {
    /// Keeps the UDP socket alive.
    pub endpoint: quinn::Endpoint,
    /// The QUIC connection.
    pub connection: quinn::Connection,
    /// Our side of the viewer stream.
    pub send: quinn::SendStream,
    /// Their side, decoded into messages.
    pub reader: MessageReader<GatewayToViewer>,
    /// Session size from `SessionReady`.
    pub width: u16,
    /// Session height.
    pub height: u16,
    /// Whether the gateway gave back a lingering session.
    pub resumed: bool,
    /// Which entry of the `gateway` list this connection went to.
    pub via: usize,
}

/// Build the QUIC client config (`tsuitate-transport`: ring, TLS 1.3 only, our ALPN, the
/// viewer's tunings: a lost gateway is noticed within [`Tuning::viewer`]'s idle timeout, so
/// the reconnect to another one starts at once) trusting the CA certificates in `ca_file`.
pub fn quic_client_config(ca_file: &std::path::Path) -> Result<quinn::ClientConfig, ClientError> {
    quic_client_config_with(ca_file, None)
}

/// [`quic_client_config`] presenting a client certificate (a trusted front's: the web viewer,
/// which reconnects too and so uses the same tunings).
pub fn quic_client_config_with(
    ca_file: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<quinn::ClientConfig, ClientError> {
    tsuitate_transport::client_config_from_files(ca_file, identity, &Tuning::viewer()).map_err(
        |e| ClientError::CaFile {
            path: ca_file.display().to_string(),
            message: e.to_string(),
        },
    )
}

/// The gateways of a `gateway` setting: `host:port` entries separated by commas.
pub fn gateway_list(gateway: &str) -> Vec<&str> {
    gateway
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect()
}

/// One address to try: where, the TLS name to verify, and the entry it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    addr: SocketAddr,
    name: String,
    gateway: String,
}

/// The addresses of one `host:port` entry (a name's as the resolver gives them).
async fn resolve_entry(cfg: &ClientConfig, gateway: &str) -> Result<Vec<Candidate>, ClientError> {
    let name = cfg
        .server_name
        .clone()
        .unwrap_or_else(|| default_server_name(gateway));
    let unreachable = |message: String| ClientError::Unreachable {
        gateway: gateway.to_owned(),
        message,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(gateway)
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(unreachable("the name has no address".into()));
    }
    Ok(addrs
        .into_iter()
        .map(|addr| Candidate {
            addr,
            name: name.clone(),
            gateway: gateway.to_owned(),
        })
        .collect())
}

/// Default TLS name: the host part of `host:port` (brackets of an IPv6 literal removed).
pub fn default_server_name(gateway: &str) -> String {
    let host = gateway.rsplit_once(':').map_or(gateway, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// Map a QUIC connection error: TLS alerts (crypto codes 0x100–0x1ff) are certificate
/// problems, the rest depends on whether we were connected yet.
fn map_connection_error(e: quinn::ConnectionError, gateway: &str, connected: bool) -> ClientError {
    if let quinn::ConnectionError::TransportError(t) = &e {
        if u64::from(t.code) & !0xff == 0x100 {
            return ClientError::Certificate(t.to_string());
        }
    }
    if let quinn::ConnectionError::ConnectionClosed(c) = &e {
        if u64::from(c.error_code) & !0xff == 0x100 {
            return ClientError::Certificate(c.to_string());
        }
    }
    if connected {
        ClientError::ConnectionLost(e.to_string())
    } else {
        ClientError::Unreachable {
            gateway: gateway.to_owned(),
            message: e.to_string(),
        }
    }
}

/// Open the connection, the viewer stream, and log in.
pub async fn connect(cfg: &ClientConfig) -> Result<Connected, ClientError> {
    connect_with(cfg, quic_client_config(&cfg.ca_file)?).await
}

/// [`connect`] with a QUIC client configuration built once by the caller (the web viewer
/// builds one, with its front certificate, for all its logins; `cfg.ca_file` is not read).
pub async fn connect_with(
    cfg: &ClientConfig,
    quic: quinn::ClientConfig,
) -> Result<Connected, ClientError> {
    connect_from(cfg, quic, 0).await
}

/// Connect and log in, trying the gateways of `cfg.gateway` in turn from entry `start`
/// (modulo their number; each entry's addresses in the resolver's order, resolved when it is
/// tried): a reconnect starts after the gateway it lost. Only an unreachable gateway moves on
/// to the next; a refusal (password, lockout, capacity) ends at once, so a wrong password is
/// never tried on every gateway.
pub async fn connect_from(
    cfg: &ClientConfig,
    quic: quinn::ClientConfig,
    start: usize,
) -> Result<Connected, ClientError> {
    let entries = gateway_list(&cfg.gateway);
    let mut last = None;
    for i in 0..entries.len() {
        let via = (start + i) % entries.len();
        let addrs = match resolve_entry(cfg, entries[via]).await {
            Ok(a) => a,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        // With other addresses to try, a dead one may not hold them up for long.
        let limit = if entries.len() > 1 || addrs.len() > 1 {
            cfg.connect_timeout.min(Duration::from_secs(2))
        } else {
            cfg.connect_timeout
        };
        for to in &addrs {
            match connect_one(cfg, quic.clone(), to, limit).await {
                Ok(mut c) => {
                    c.via = via;
                    return Ok(c);
                }
                Err(e) if e.is_network() => {
                    tracing::info!(gateway = %to.gateway, addr = %to.addr, error = %e, "gateway unreachable; trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Unreachable {
        gateway: cfg.gateway.clone(),
        message: "no gateway given".into(),
    }))
}

async fn connect_one(
    cfg: &ClientConfig,
    quic: quinn::ClientConfig,
    to: &Candidate,
    limit: Duration,
) -> Result<Connected, ClientError> {
    let unreachable = |message: String| ClientError::Unreachable {
        gateway: to.gateway.clone(),
        message,
    };
    let endpoint = tsuitate_transport::client_endpoint(to.addr, quic)
        .map_err(|e| unreachable(e.to_string()))?;
    let connecting = endpoint
        .connect(to.addr, &to.name)
        .map_err(|e| unreachable(e.to_string()))?;
    let connection = tokio::time::timeout(limit, connecting)
        .await
        .map_err(|_| unreachable("no answer (timed out)".into()))?
        .map_err(|e| map_connection_error(e, &to.gateway, false))?;
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| map_connection_error(e, &to.gateway, true))?;
    let mut conn = Connected {
        endpoint,
        connection,
        send,
        reader: MessageReader::new(recv, cfg.limits.clone()),
        width: 0,
        height: 0,
        resumed: false,
        via: 0,
    };
    login(&mut conn, cfg).await?;
    Ok(conn)
}

impl Connected {
    /// Send one message.
    pub async fn send(&mut self, msg: &ViewerToGateway) -> Result<(), ClientError> {
        write_message(&mut self.send, msg).await
    }

    /// Receive the next message, or `None` when the gateway finished the stream.
    pub async fn recv(&mut self) -> Result<Option<GatewayToViewer>, ClientError> {
        read_message(&mut self.reader).await
    }

    /// Close the connection (after a Logout, or when the viewer quits).
    pub fn close(&self) {
        tsuitate_transport::close(&self.connection, Reason::Normal);
    }
}

/// Frame and write a message.
pub async fn write_message(
    send: &mut quinn::SendStream,
    msg: &ViewerToGateway,
) -> Result<(), ClientError> {
    tsuitate_transport::write(send, msg)
        .await
        .map_err(|e| ClientError::ConnectionLost(e.to_string()))
}

/// The next message, or `None` when the gateway finished the stream. A malformed message, or
/// a stream that ends inside one, is a protocol error.
pub async fn read_message(
    reader: &mut MessageReader<GatewayToViewer>,
) -> Result<Option<GatewayToViewer>, ClientError> {
    reader.read().await.map_err(|e| match e {
        ReadError::Wire(w) => ClientError::Protocol(w.to_string()),
        ReadError::Io(s) => ClientError::ConnectionLost(s),
    })
}

async fn expect_message(
    conn: &mut Connected,
    timeout: Duration,
    step: &str,
) -> Result<GatewayToViewer, ClientError> {
    match tokio::time::timeout(timeout, conn.recv()).await {
        Err(_) => Err(ClientError::Protocol(format!("no {step} in time"))),
        Ok(Err(e)) => Err(e),
        Ok(Ok(None)) => Err(ClientError::ConnectionLost(format!(
            "the gateway closed the stream before {step}"
        ))),
        Ok(Ok(Some(GatewayToViewer::Bye { reason }))) => Err(bye_error(reason)),
        Ok(Ok(Some(msg))) => Ok(msg),
    }
}

/// A `Bye` during login: a few reasons have their own errors (and exit codes).
fn bye_error(reason: Reason) -> ClientError {
    match reason {
        Reason::AuthFailed => ClientError::Denied,
        Reason::LockedOut => ClientError::LockedOut { retry_after_s: 0 },
        Reason::NoCapacity => ClientError::NoCapacity,
        other => ClientError::Ended(other),
    }
}

fn unexpected(step: &str, msg: &GatewayToViewer) -> ClientError {
    let kind = msg.kind();
    ClientError::Protocol(format!("expected {step}, got message kind 0x{kind:02x}"))
}

async fn login(conn: &mut Connected, cfg: &ClientConfig) -> Result<(), ClientError> {
    let t = cfg.connect_timeout;
    conn.send(&ViewerToGateway::Hello {
        version: PROTOCOL_VERSION,
    })
    .await?;
    match expect_message(conn, t, "Welcome").await? {
        GatewayToViewer::Welcome { version } if version == PROTOCOL_VERSION => {}
        GatewayToViewer::Welcome { .. } => return Err(ClientError::Ended(Reason::VersionMismatch)),
        other => return Err(unexpected("Welcome", &other)),
    }
    if let Some(client) = cfg.forwarded_for {
        conn.send(&ViewerToGateway::Forwarded { client }).await?;
    }
    conn.send(&ViewerToGateway::Login {
        user: cfg.user.clone(),
        password: cfg.password.clone(),
    })
    .await?;
    match expect_message(conn, t, "LoginResult").await? {
        GatewayToViewer::LoginResult {
            status,
            retry_after_s,
        } => match status {
            LoginStatus::Ok => {}
            LoginStatus::Denied => return Err(ClientError::Denied),
            LoginStatus::LockedOut => return Err(ClientError::LockedOut { retry_after_s }),
            LoginStatus::NoCapacity => return Err(ClientError::NoCapacity),
        },
        other => return Err(unexpected("LoginResult", &other)),
    }
    // Starting a browser can take a while: allow longer for SessionReady.
    match expect_message(conn, t.saturating_mul(3), "SessionReady").await? {
        GatewayToViewer::SessionReady {
            width,
            height,
            resumed,
        } => {
            conn.width = width;
            conn.height = height;
            conn.resumed = resumed;
            Ok(())
        }
        other => Err(unexpected("SessionReady", &other)),
    }
}
