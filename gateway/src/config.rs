//! The gateway configuration: a typed TOML file parsed up front (docs/gateway.md §Config).
//!
//! Every section uses `deny_unknown_fields`, so a typo in a security setting fails loudly
//! instead of falling back to a permissive default. Semantic errors are collected and reported
//! together, before any port is bound. Relative paths are resolved against the config file's
//! directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tsuitate_cli::duration;
use tsuitate_protocol::{Limits, MIN_DIMENSION};

/// One second: the smallest value of the settings that must not be zero.
const SECOND: Duration = Duration::from_secs(1);

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where host agents (Internet zone) connect.
    #[serde(default = "default_agent_listen")]
    pub agent_listen: SocketAddr,
    /// Where viewers (LGWAN zone) connect.
    #[serde(default = "default_viewer_listen")]
    pub viewer_listen: SocketAddr,
    /// Metrics and health (HTTP). Loopback by default.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Certificates and keys.
    pub tls: TlsConfig,
    /// The users file (TOML, or JSON when the name ends in `.json`).
    pub users_file: PathBuf,
    /// The audit log (JSON lines with a hash chain).
    pub audit_log: PathBuf,
    /// Where the audit log's anchors go (its last line's sequence number and hash, for
    /// `audit verify --anchors`): `"syslog"` (journald) or a file, ideally on another system.
    /// Absent: no anchors (the self-check warns).
    #[serde(default)]
    pub audit_anchor: Option<String>,
    /// Between anchors (`audit_anchor_interval_s`, default 300); one is also sent at shutdown.
    #[serde(
        default = "default_anchor_interval",
        rename = "audit_anchor_interval_s",
        deserialize_with = "duration::secs"
    )]
    pub audit_anchor_interval: Duration,
    /// A key for the audit log (optional; at least 32 bytes, mode 0600): every line then
    /// carries an HMAC-SHA256 that only holders of the key can write (`audit verify --key`).
    #[serde(default)]
    pub audit_hmac_key_file: Option<PathBuf>,
    /// Video and message limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Input validation and rate limits.
    #[serde(default)]
    pub input: InputConfig,
    /// Session lifetime.
    #[serde(default)]
    pub session: SessionConfig,
    /// Login lockout.
    #[serde(default)]
    pub lockout: LockoutConfig,
    /// QUIC transport limits.
    #[serde(default)]
    pub quic: QuicConfig,
    /// Video relay policy.
    #[serde(default)]
    pub video: VideoConfig,
    /// Agent control.
    #[serde(default)]
    pub agent: AgentConfig,
    /// Names of trusted fronts (web viewers) that may tell the browser's address for each login
    /// (`Forwarded`, docs/protocol.md §5.1). A front proves its name with a client certificate
    /// from our CA whose CN is `front:NAME` (`tsuitate-gateway ca issue-front`). Empty: viewers
    /// need no certificate and `Forwarded` is refused from everyone.
    #[serde(default)]
    pub trusted_fronts: Vec<String>,
    /// The admin API's credentials (`tsuitate-gateway admin token-add`): named SHA-256 hashes
    /// of bearer tokens. Absent: the admin API refuses every call (metrics and health stay).
    #[serde(default)]
    pub admin_tokens_file: Option<PathBuf>,
    /// What agents draw into every picture.
    #[serde(default)]
    pub watermark: WatermarkConfig,
}

/// `[tls]`: PEM files made by `tsuitate-gateway ca init`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The CA certificate that signs agent certificates (and the gateway's).
    pub ca: PathBuf,
    /// The gateway certificate chain.
    pub cert: PathBuf,
    /// The gateway private key.
    pub key: PathBuf,
    /// Revoked client certificates (agents, fronts): one serial number in hex per line
    /// (`tsuitate-gateway ca revoke` appends to it; `#` starts a comment). Read at every
    /// connection, so a revocation needs no restart. Optional.
    #[serde(default)]
    pub revoked: Option<PathBuf>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest access unit in bytes.
    pub max_frame_bytes: usize,
    /// Largest frame width.
    pub max_width: u16,
    /// Largest frame height.
    pub max_height: u16,
    /// Most frames per second an agent may send per session; excess frames are dropped up to
    /// the next keyframe.
    pub max_fps: u32,
    /// Memory the gateway may commit to sessions' buffers, in MiB: sessions × the worst case of
    /// one ([`Config::session_memory_bytes`]) stays within it; a login beyond gets
    /// `NoCapacity`, never an out-of-memory kill.
    pub memory_budget_mb: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_frame_bytes: l.max_frame_bytes,
            max_width: l.max_width,
            max_height: l.max_height,
            max_fps: 60,
            memory_budget_mb: 4096,
        }
    }
}

/// `[input]`: token buckets per session. Events over a bucket are dropped (throttled); when
/// more than `violation_budget` events were dropped (the budget refills fully in 60 s), the
/// viewer is cut off with `RateLimited`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Input events per second (all kinds).
    pub events_per_s: u32,
    /// Key events per second.
    pub keys_per_s: u32,
    /// Committed-text characters per second.
    pub text_chars_per_s: u32,
    /// Wheel notches per second (one wheel event may carry up to 120 in each direction; each
    /// notch is a button click injected on the agent host).
    pub wheel_notches_per_s: u32,
    /// Bucket depth as seconds of rate.
    pub burst_s: u32,
    /// Dropped events tolerated before the viewer is cut off.
    pub violation_budget: u32,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            events_per_s: 1000,
            keys_per_s: 50,
            text_chars_per_s: 200,
            wheel_notches_per_s: 100,
            burst_s: 2,
            violation_budget: 1000,
        }
    }
}

/// `[session]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Browser width when a session starts (the viewer may `Resize` later).
    pub default_width: u16,
    /// Browser height when a session starts.
    pub default_height: u16,
    /// How long a session waits for its viewer to come back after a disconnect (`linger_s`).
    #[serde(rename = "linger_s", deserialize_with = "duration::secs")]
    pub linger: Duration,
    /// No input for this long ends a session (`idle_timeout_s`, 0 = never).
    #[serde(
        rename = "idle_timeout_s",
        deserialize_with = "duration::secs_or_never"
    )]
    pub idle_timeout: Option<Duration>,
    /// The longest session (`absolute_timeout_s`, 0 = unlimited).
    #[serde(
        rename = "absolute_timeout_s",
        deserialize_with = "duration::secs_or_never"
    )]
    pub absolute_timeout: Option<Duration>,
    /// How long before an idle or absolute timeout the viewer is warned
    /// (`timeout_warning_s`, 0 = no warning; at most half the timeout).
    #[serde(
        rename = "timeout_warning_s",
        deserialize_with = "duration::secs_or_never"
    )]
    pub timeout_warning: Option<Duration>,
    /// A user has at most one session; a second login takes the session over.
    pub one_session_per_user: bool,
    /// Frames queued per viewer before dropping up to the next keyframe.
    pub viewer_queue_frames: usize,
    /// Smallest interval between keyframe requests to an agent (`keyframe_request_interval_ms`).
    #[serde(
        rename = "keyframe_request_interval_ms",
        deserialize_with = "duration::millis"
    )]
    pub keyframe_request_interval: Duration,
    /// How long an agent has to answer `Open` with `Started` (`start_timeout_s`).
    #[serde(rename = "start_timeout_s", deserialize_with = "duration::secs")]
    pub start_timeout: Duration,
    /// How long a viewer has to send `Hello` and `Login` (`login_timeout_s`).
    #[serde(rename = "login_timeout_s", deserialize_with = "duration::secs")]
    pub login_timeout: Duration,
    /// How long shutdown waits for sessions to end (`shutdown_drain_s`).
    #[serde(rename = "shutdown_drain_s", deserialize_with = "duration::secs")]
    pub shutdown_drain: Duration,
    /// A secret of at least 32 bytes, the same on every gateway and never given to agents:
    /// the owner agents know a user's sessions by is keyed with it (docs/protocol.md §5.2).
    pub owner_key_file: Option<PathBuf>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            default_width: 1280,
            default_height: 720,
            linger: Duration::from_secs(120),
            idle_timeout: Some(Duration::from_secs(1800)),
            absolute_timeout: Some(Duration::from_secs(8 * 3600)),
            timeout_warning: Some(Duration::from_secs(300)),
            one_session_per_user: true,
            viewer_queue_frames: 8,
            keyframe_request_interval: Duration::from_millis(500),
            start_timeout: Duration::from_secs(20),
            login_timeout: Duration::from_secs(30),
            shutdown_drain: Duration::from_secs(5),
            owner_key_file: None,
        }
    }
}

/// `[lockout]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Failures per user name within `window_s` that lock the user.
    pub max_failures_per_user: u32,
    /// Failures per source IP within `window_s` that lock the address.
    pub max_failures_per_ip: u32,
    /// The window in which failures count (`window_s`).
    #[serde(rename = "window_s", deserialize_with = "duration::secs")]
    pub window: Duration,
    /// How long a lock lasts (`lockout_s`).
    #[serde(rename = "lockout_s", deserialize_with = "duration::secs")]
    pub lockout: Duration,
    /// A Redis or Valkey server (`host:port`, on the admin network) that several gateways share
    /// failure counts and locks through; without it each gateway counts alone. While it does
    /// not answer, each gateway's own lockout still holds (audited).
    pub shared_store: Option<String>,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures_per_user: 5,
            max_failures_per_ip: 20,
            window: Duration::from_secs(900),
            lockout: Duration::from_secs(900),
            shared_store: None,
        }
    }
}

/// `[quic]`: transport limits, set explicitly rather than left at library defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicConfig {
    /// Idle timeout (`idle_timeout_s`).
    #[serde(rename = "idle_timeout_s", deserialize_with = "duration::secs")]
    pub idle_timeout: Duration,
    /// Keep-alive interval (`keep_alive_s`).
    #[serde(rename = "keep_alive_s", deserialize_with = "duration::secs")]
    pub keep_alive: Duration,
    /// Most connection attempts queued at once per endpoint.
    pub max_incoming: usize,
    /// Most live connections from one IP address per endpoint.
    pub max_connections_per_ip: u32,
    /// Send a Retry to clients whose address is not validated yet.
    pub retry: bool,
    /// Agent side: per-stream receive window (bytes).
    pub agent_stream_window: u32,
    /// Agent side: per-connection receive window (bytes).
    pub agent_connection_window: u32,
    /// Viewer side: per-stream receive window (bytes).
    pub viewer_stream_window: u32,
    /// Viewer side: per-connection receive window (bytes).
    pub viewer_connection_window: u32,
    /// Bytes the gateway buffers unacknowledged per connection.
    pub send_window: u64,
}

impl Default for QuicConfig {
    /// Keep-alive, idle timeout and send window are the transport's one set of tunings
    /// (`tsuitate_transport::Tuning::default()`), which agents and viewers use too; the
    /// receive windows are per zone.
    fn default() -> Self {
        let t = tsuitate_transport::Tuning::default();
        QuicConfig {
            idle_timeout: t.idle_timeout,
            keep_alive: t.keep_alive,
            max_incoming: 256,
            max_connections_per_ip: 16,
            retry: true,
            agent_stream_window: 8 * 1024 * 1024,
            agent_connection_window: 64 * 1024 * 1024,
            viewer_stream_window: 256 * 1024,
            viewer_connection_window: 512 * 1024,
            send_window: t.send_window,
        }
    }
}

/// What happens to a NAL unit outside the allow-list (types other than 1, 5, 7, 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// Drop and count it; the rest of the access unit is forwarded.
    Drop,
    /// Cut the agent off: our agents never emit such units, so one means a hostile agent.
    Close,
}

impl DropPolicy {
    /// The sanitizer's policy: `close` refuses the access unit, which ends the session.
    pub fn sanitizer_policy(self) -> tsuitate_protocol::h264::DropPolicy {
        match self {
            DropPolicy::Drop => tsuitate_protocol::h264::DropPolicy::Drop,
            DropPolicy::Close => tsuitate_protocol::h264::DropPolicy::Refuse,
        }
    }
}

/// `[video]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// Policy for NAL units outside the allow-list.
    pub drop_policy: DropPolicy,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            drop_policy: DropPolicy::Close,
        }
    }
}

/// `[agent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Between clock pings on each agent's control stream (`ping_interval_s`).
    #[serde(rename = "ping_interval_s", deserialize_with = "duration::secs")]
    pub ping_interval: Duration,
    /// How long an agent has to send `Hello` (`hello_timeout_s`).
    #[serde(rename = "hello_timeout_s", deserialize_with = "duration::secs")]
    pub hello_timeout: Duration,
    /// The most sessions the gateway places on one agent, whatever capacity it announces (an
    /// agent announcing 4096 would otherwise attract every new session).
    pub max_sessions_per_agent: u16,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            ping_interval: Duration::from_secs(2),
            hello_timeout: Duration::from_secs(10),
            max_sessions_per_agent: 16,
        }
    }
}

/// `[watermark]`: the user, the viewer's address and the time, drawn by the agent into every
/// picture so that a photo of the screen can be traced (docs/operations.md). Off unless
/// enabled; the sample configuration enables it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatermarkConfig {
    /// Draw it.
    pub enabled: bool,
    /// `top-left`, `top-right`, `bottom-left`, `bottom-right`, `center` or `tiled`.
    pub position: String,
    /// Percent, 1–100.
    pub opacity: u8,
    /// Text height in pixels, 8–64.
    pub size_px: u8,
    /// Include the viewer's address (the browser's, when a web viewer forwarded it).
    pub show_address: bool,
    /// The time zone of the time drawn, `+09:00` (JST) by default.
    pub utc_offset: String,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            enabled: false,
            position: "bottom-right".into(),
            opacity: 35,
            size_px: 16,
            show_address: true,
            utc_offset: "+09:00".into(),
        }
    }
}

/// Minutes east of UTC of `±HH:MM`.
fn parse_utc_offset(s: &str) -> Option<i16> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<i16>().ok()?, m.parse::<i16>().ok()?);
    if m >= 60 {
        return None;
    }
    let total = sign * (h * 60 + m);
    tsuitate_protocol::WATERMARK_UTC_OFFSET_MIN
        .contains(&total)
        .then_some(total)
}

impl WatermarkConfig {
    /// The watermark for one session of `user` from `viewer`, or `None` when disabled.
    pub fn spec(
        &self,
        user: &str,
        viewer: std::net::IpAddr,
    ) -> Option<tsuitate_protocol::Watermark> {
        if !self.enabled {
            return None;
        }
        let text = if self.show_address {
            format!("{user} {viewer}")
        } else {
            user.to_owned()
        };
        Some(tsuitate_protocol::Watermark {
            text,
            place: tsuitate_protocol::WatermarkPlace::from_name(&self.position)
                .unwrap_or(tsuitate_protocol::WatermarkPlace::BottomRight),
            opacity: self.opacity.clamp(1, 100),
            size_px: self.size_px.clamp(
                *tsuitate_protocol::WATERMARK_SIZE_PX.start(),
                *tsuitate_protocol::WATERMARK_SIZE_PX.end(),
            ),
            utc_offset_min: parse_utc_offset(&self.utc_offset).unwrap_or(540),
        })
    }

    fn check(&self, errs: &mut Vec<String>) {
        if tsuitate_protocol::WatermarkPlace::from_name(&self.position).is_none() {
            errs.push(format!(
                "watermark.position {:?} is not one of top-left, top-right, bottom-left, bottom-right, center, tiled",
                self.position
            ));
        }
        if !(1..=100).contains(&self.opacity) {
            errs.push("watermark.opacity must be 1..=100 (percent)".into());
        }
        if !tsuitate_protocol::WATERMARK_SIZE_PX.contains(&self.size_px) {
            errs.push("watermark.size_px must be 8..=64".into());
        }
        if parse_utc_offset(&self.utc_offset).is_none() {
            errs.push(format!(
                "watermark.utc_offset {:?} is not ±HH:MM between -12:00 and +14:00",
                self.utc_offset
            ));
        }
    }
}

fn default_anchor_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_agent_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4701))
}
fn default_viewer_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4700))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9470))
}

/// Every problem found in a configuration, reported together (shared by the three binaries).
pub use tsuitate_cli::ConfigErrors;

impl Config {
    /// Read, parse and validate a config file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
        let mut cfg = Config::parse(&text)?;
        cfg.resolve_paths(tsuitate_cli::config_dir(path));
        cfg.validate(true)?;
        Ok(cfg)
    }

    /// Parse TOML text (no file checks).
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        toml::from_str(text).map_err(|e| ConfigErrors(vec![e.to_string()]))
    }

    fn resolve_paths(&mut self, base: &Path) {
        tsuitate_cli::resolve_relative(
            base,
            [
                &mut self.tls.ca,
                &mut self.tls.cert,
                &mut self.tls.key,
                &mut self.users_file,
                &mut self.audit_log,
            ]
            .into_iter()
            .chain(self.admin_tokens_file.as_mut())
            .chain(self.audit_hmac_key_file.as_mut())
            .chain(self.session.owner_key_file.as_mut())
            .chain(self.tls.revoked.as_mut()),
        );
        if let Some(a) = self.audit_anchor.as_mut().filter(|a| *a != "syslog") {
            let mut p = PathBuf::from(a.as_str());
            tsuitate_cli::resolve_relative(base, [&mut p]);
            *a = p.display().to_string();
        }
    }

    /// The audit log's HMAC key, if one is configured.
    pub fn audit_key(&self) -> Result<Option<crate::audit::AuditKey>, String> {
        self.audit_hmac_key_file
            .as_deref()
            .map(crate::audit::AuditKey::load)
            .transpose()
    }

    /// The key of session owners (`[session] owner_key_file`), if one is configured.
    pub fn owner_key(&self) -> Result<Option<crate::audit::AuditKey>, String> {
        self.session
            .owner_key_file
            .as_deref()
            .map(crate::audit::AuditKey::load)
            .transpose()
    }

    /// Check every value; with `check_files`, also that the TLS and users files exist.
    pub fn validate(&self, check_files: bool) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        let mut need = |ok: bool, msg: &str| {
            if !ok {
                errs.push(msg.to_owned());
            }
        };
        need(
            self.trusted_fronts
                .iter()
                .all(|f| crate::certs::agent_id_valid(f)),
            "trusted_fronts: names are 1-64 of A-Z a-z 0-9 . _ -",
        );
        let l = &self.limits;
        need(
            (1024..=64 * 1024 * 1024).contains(&l.max_frame_bytes),
            "limits.max_frame_bytes must be 1024..=67108864",
        );
        need(l.max_width >= MIN_DIMENSION, "limits.max_width is below 64");
        need(
            l.max_height >= MIN_DIMENSION,
            "limits.max_height is below 64",
        );
        need(
            (1..=1000).contains(&l.max_fps),
            "limits.max_fps must be 1..=1000",
        );
        let one = self.session_memory_bytes().div_ceil(1 << 20);
        if self.max_sessions_by_memory() == 0 {
            errs.push(format!(
                "limits.memory_budget_mb ({}) is below one session's worst case ({one} MiB: lower limits.max_frame_bytes or session.viewer_queue_frames, or raise the budget) / メモリ予算が 1 セッション分に足りません",
                l.memory_budget_mb
            ));
        }
        let mut need = |ok: bool, msg: &str| {
            if !ok {
                errs.push(msg.to_owned());
            }
        };
        let s = &self.session;
        need(
            (MIN_DIMENSION..=l.max_width).contains(&s.default_width),
            "session.default_width must be 64..=limits.max_width",
        );
        need(
            (MIN_DIMENSION..=l.max_height).contains(&s.default_height),
            "session.default_height must be 64..=limits.max_height",
        );
        need(
            (1..=1024).contains(&s.viewer_queue_frames),
            "session.viewer_queue_frames must be 1..=1024",
        );
        need(
            s.start_timeout >= SECOND,
            "session.start_timeout_s must be >= 1",
        );
        need(
            s.login_timeout >= SECOND,
            "session.login_timeout_s must be >= 1",
        );
        let i = &self.input;
        need(i.events_per_s >= 1, "input.events_per_s must be >= 1");
        need(i.keys_per_s >= 1, "input.keys_per_s must be >= 1");
        need(
            i.text_chars_per_s >= 1,
            "input.text_chars_per_s must be >= 1",
        );
        need(
            i.wheel_notches_per_s >= 1,
            "input.wheel_notches_per_s must be >= 1",
        );
        need(i.burst_s >= 1, "input.burst_s must be >= 1");
        let k = &self.lockout;
        need(
            k.max_failures_per_user >= 1,
            "lockout.max_failures_per_user must be >= 1",
        );
        need(
            k.max_failures_per_ip >= 1,
            "lockout.max_failures_per_ip must be >= 1",
        );
        need(k.window >= SECOND, "lockout.window_s must be >= 1");
        need(k.lockout >= SECOND, "lockout.lockout_s must be >= 1");
        need(
            k.shared_store.as_deref().is_none_or(|a| {
                a.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
            }),
            "lockout.shared_store: host:port of a Redis/Valkey server (e.g. \"10.1.0.5:6379\") / Redis/Valkey サーバーの host:port を指定してください",
        );
        let q = &self.quic;
        need(q.idle_timeout >= SECOND, "quic.idle_timeout_s must be >= 1");
        need(
            q.keep_alive < q.idle_timeout,
            "quic.keep_alive_s must be below quic.idle_timeout_s",
        );
        need(q.max_incoming >= 1, "quic.max_incoming must be >= 1");
        need(
            q.max_connections_per_ip >= 1,
            "quic.max_connections_per_ip must be >= 1",
        );
        need(
            q.agent_stream_window >= 65536 && q.viewer_stream_window >= 4096,
            "quic stream windows are too small",
        );
        need(
            self.agent.ping_interval >= SECOND,
            "agent.ping_interval_s must be >= 1",
        );
        need(
            self.agent.hello_timeout >= SECOND,
            "agent.hello_timeout_s must be >= 1",
        );
        need(
            (1..=4096).contains(&self.agent.max_sessions_per_agent),
            "agent.max_sessions_per_agent must be 1..=4096",
        );
        let fixed: Vec<SocketAddr> = [self.agent_listen, self.viewer_listen, self.admin_listen]
            .into_iter()
            .filter(|a| a.port() != 0)
            .collect();
        let distinct = fixed
            .iter()
            .enumerate()
            .all(|(i, a)| !fixed[i + 1..].contains(a));
        need(
            distinct,
            "agent_listen, viewer_listen and admin_listen must differ",
        );
        self.watermark.check(&mut errs);
        if self.audit_anchor_interval < SECOND {
            errs.push("audit_anchor_interval_s must be >= 1".into());
        }
        if self.audit_anchor.as_deref() == Some("") {
            errs.push("audit_anchor: \"syslog\" or a file path".into());
        }
        // Durations are bounded so that `Instant + Duration` can never overflow.
        const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
        let never = Duration::ZERO;
        for (name, v) in [
            ("session.linger_s", s.linger),
            ("session.idle_timeout_s", s.idle_timeout.unwrap_or(never)),
            (
                "session.absolute_timeout_s",
                s.absolute_timeout.unwrap_or(never),
            ),
            ("session.start_timeout_s", s.start_timeout),
            ("session.login_timeout_s", s.login_timeout),
            ("session.shutdown_drain_s", s.shutdown_drain),
            (
                "session.keyframe_request_interval_ms",
                s.keyframe_request_interval,
            ),
            ("lockout.window_s", k.window),
            ("lockout.lockout_s", k.lockout),
            ("quic.idle_timeout_s", q.idle_timeout),
            ("quic.keep_alive_s", q.keep_alive),
            ("agent.ping_interval_s", self.agent.ping_interval),
            ("agent.hello_timeout_s", self.agent.hello_timeout),
            ("audit_anchor_interval_s", self.audit_anchor_interval),
        ] {
            if v > YEAR {
                errs.push(format!("{name} is longer than a year"));
            }
        }
        if check_files {
            for (name, p) in [
                ("tls.ca", &self.tls.ca),
                ("tls.cert", &self.tls.cert),
                ("tls.key", &self.tls.key),
                ("users_file", &self.users_file),
            ] {
                if !p.is_file() {
                    errs.push(format!("{name}: file not found: {}", p.display()));
                }
            }
            if let Some(p) = self.tls.revoked.as_ref().filter(|p| !p.is_file()) {
                errs.push(format!(
                    "tls.revoked: file not found: {} (an empty file means nothing is revoked) / ファイルがありません",
                    p.display()
                ));
            }
            for (name, path, key) in [
                (
                    "audit_hmac_key_file",
                    &self.audit_hmac_key_file,
                    self.audit_key().map(|_| ()),
                ),
                (
                    "session.owner_key_file",
                    &self.session.owner_key_file,
                    self.owner_key().map(|_| ()),
                ),
            ] {
                let Some(p) = path else { continue };
                if let Err(e) = key {
                    errs.push(format!("{name}: {e}"));
                } else if std::fs::metadata(p)
                    .map(|m| readable_by_others(&m))
                    .unwrap_or(false)
                {
                    errs.push(format!(
                        "{name}: {} は他のユーザーが読めます (chmod 600) / is readable by other users: chmod 600 it",
                        p.display()
                    ));
                }
            }
            if let Some(p) = self.admin_tokens_file.as_ref().filter(|p| !p.is_file()) {
                errs.push(format!(
                    "admin_tokens_file: file not found: {} (create it with `tsuitate-gateway admin token-add --tokens {} --name NAME`) / ファイルがありません",
                    p.display(),
                    p.display()
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }

    /// What `account` (the service user) could not open of what the gateway needs: read the
    /// TLS files, the users, admin-token and revocation files; append to the audit log (or
    /// create it and the emergency-stop file beside it). One line per problem.
    pub fn access_problems(&self, account: &tsuitate_cli::unix_user::Account) -> Vec<String> {
        use tsuitate_cli::unix_user::Access;
        let mut out = Vec::new();
        let reads = [
            Some(&self.tls.ca),
            Some(&self.tls.cert),
            Some(&self.tls.key),
            Some(&self.users_file),
            self.admin_tokens_file.as_ref(),
            self.tls.revoked.as_ref(),
        ];
        for p in reads.into_iter().flatten() {
            if let Err(e) = account.reach(p, Access::Read) {
                out.push(e);
            }
        }
        let audit_dir = self
            .audit_log
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Err(e) = account.reach(audit_dir, Access::Create) {
            out.push(e);
        }
        if self.audit_log.exists() {
            if let Err(e) = account.reach(&self.audit_log, Access::Write) {
                out.push(e);
            }
        }
        out
    }

    /// The most one session's buffers can hold at once: its viewer queue (four messages more
    /// than `viewer_queue_frames`) and the frame being sanitized and its clean copy, each up
    /// to `max_frame_bytes`, plus both QUIC stream windows and 1 MiB for the rest.
    pub fn session_memory_bytes(&self) -> u64 {
        let frame = self.limits.max_frame_bytes as u64;
        let frames = self.session.viewer_queue_frames as u64 + 4 + 2;
        frames.saturating_mul(frame)
            + u64::from(self.quic.agent_stream_window)
            + u64::from(self.quic.viewer_stream_window)
            + (1 << 20)
    }

    /// Sessions the memory budget allows (`limits.memory_budget_mb` / the worst case of one).
    pub fn max_sessions_by_memory(&self) -> u64 {
        (self.limits.memory_budget_mb.saturating_mul(1 << 20)) / self.session_memory_bytes().max(1)
    }

    /// The protocol limits this configuration asks for.
    pub fn protocol_limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.limits.max_frame_bytes,
            max_width: self.limits.max_width,
            max_height: self.limits.max_height,
            ..Limits::default()
        }
    }

    /// A configuration with defaults and the given files, for tests and tools.
    pub fn with_files(tls: TlsConfig, users_file: PathBuf, audit_log: PathBuf) -> Config {
        Config {
            agent_listen: default_agent_listen(),
            viewer_listen: default_viewer_listen(),
            admin_listen: default_admin_listen(),
            tls,
            users_file,
            audit_log,
            limits: LimitsConfig::default(),
            input: InputConfig::default(),
            session: SessionConfig::default(),
            lockout: LockoutConfig::default(),
            quic: QuicConfig::default(),
            video: VideoConfig::default(),
            agent: AgentConfig::default(),
            trusted_fronts: Vec::new(),
            admin_tokens_file: None,
            audit_anchor: None,
            audit_anchor_interval: default_anchor_interval(),
            audit_hmac_key_file: None,
            watermark: WatermarkConfig::default(),
        }
    }
}

/// Seconds as a `Duration`.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Whether a secret file (a key, the admin tokens) can be read or changed by anyone but the
/// gateway: another user, or a group the gateway does not run as. A file of the gateway's own
/// group may be group-readable (not writable) when root or the gateway owns it: Kubernetes
/// mounts a Secret as 0440, root's, in the pod's `fsGroup`, which is the gateway's own group
/// there (docs/decisions.md D29).
pub fn readable_by_others(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    let owner_ok = meta.uid() == 0 || meta.uid() == rustix::process::geteuid().as_raw();
    let own_group = meta.gid() == rustix::process::getegid().as_raw();
    mode & 0o007 != 0 || mode & 0o030 != 0 || (mode & 0o040 != 0 && !(own_group && owner_ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
users_file = "users.toml"
audit_log = "audit.jsonl"
[tls]
ca = "ca.pem"
cert = "gateway.pem"
key = "gateway-key.pem"
"#;

    #[test]
    fn a_secret_may_be_read_by_the_gateways_own_group_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("owner.key");
        std::fs::write(&key, [7u8; 32]).unwrap();
        let with_mode = |mode: u32| {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            readable_by_others(&std::fs::metadata(&key).unwrap())
        };
        assert!(!with_mode(0o600));
        // As Kubernetes mounts a Secret for a pod whose fsGroup is the gateway's group.
        assert!(!with_mode(0o440));
        assert!(with_mode(0o604), "readable by every user");
        assert!(with_mode(0o444));
        assert!(with_mode(0o660), "writable by the group");
        // A group the gateway is not: only root may hand the file to another group.
        let other = if rustix::process::getegid().as_raw() == 65534 {
            0
        } else {
            65534
        };
        if std::os::unix::fs::chown(&key, None, Some(other)).is_ok() {
            assert!(with_mode(0o440), "readable by another group");
            assert!(!with_mode(0o400));
            // The gateway's group, but another user's file: that user reads it too.
            let gid = rustix::process::getegid().as_raw();
            if std::os::unix::fs::chown(&key, Some(65534), Some(gid)).is_ok()
                && rustix::process::geteuid().as_raw() != 65534
            {
                assert!(with_mode(0o440), "another user's file");
            }
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MIN).unwrap();
        assert_eq!(c.viewer_listen.port(), 4700);
        assert_eq!(c.agent_listen.port(), 4701);
        assert_eq!(c.admin_listen.port(), 9470);
        assert!(c.session.one_session_per_user);
        assert_eq!(c.video.drop_policy, DropPolicy::Close);
        c.validate(false).unwrap();
    }

    #[test]
    fn watermark_settings_are_checked_and_become_the_agents_spec() {
        let c = Config::parse(MIN).unwrap();
        let ip: std::net::IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(c.watermark.spec("yamada", ip), None, "off by default");
        let text = format!(
            "{MIN}\n[watermark]\nenabled = true\nposition = \"tiled\"\nopacity = 20\nutc_offset = \"-03:30\"\n"
        );
        let c = Config::parse(&text).unwrap();
        c.validate(false).unwrap();
        let w = c.watermark.spec("山田", ip).unwrap();
        assert_eq!(w.text, "山田 192.0.2.10");
        assert_eq!(w.place, tsuitate_protocol::WatermarkPlace::Tiled);
        assert_eq!((w.opacity, w.size_px, w.utc_offset_min), (20, 16, -210));
        let text = format!(
            "{MIN}\n[watermark]\nenabled = true\nposition = \"middle\"\nopacity = 0\nsize_px = 100\nutc_offset = \"+15:00\"\n"
        );
        let e = Config::parse(&text).unwrap().validate(false).unwrap_err();
        for key in ["position", "opacity", "size_px", "utc_offset"] {
            assert!(
                e.0.iter().any(|m| m.contains(&format!("watermark.{key}"))),
                "{key}: {e}"
            );
        }
        let hidden = Config::parse(&format!(
            "{MIN}\n[watermark]\nenabled = true\nshow_address = false\n"
        ))
        .unwrap();
        assert_eq!(hidden.watermark.spec("yamada", ip).unwrap().text, "yamada");
    }

    #[test]
    fn a_memory_budget_below_one_session_is_refused_with_the_worst_case() {
        let c = Config::parse(&format!("{MIN}\n[limits]\nmemory_budget_mb = 16\n")).unwrap();
        let e = c.validate(false).unwrap_err();
        assert!(
            e.0.iter()
                .any(|m| m.contains("limits.memory_budget_mb") && m.contains("MiB")),
            "{e}"
        );
        let c = Config::parse(MIN).unwrap();
        // Defaults: 4 GiB over (8 + 6) × 4 MiB frames + 8.25 MiB windows + 1 MiB.
        assert_eq!(c.session_memory_bytes() >> 20, 65);
        assert_eq!(c.max_sessions_by_memory(), 62);
    }

    #[test]
    fn unknown_field_is_an_error() {
        let text = format!("{MIN}\n[lockout]\nmax_failure = 3\n");
        let e = Config::parse(&text).unwrap_err();
        assert!(e.0[0].contains("max_failure"), "{e}");
    }

    #[test]
    fn all_semantic_errors_are_reported_together() {
        let text = format!(
            "{MIN}\n[limits]\nmax_fps = 0\n[session]\ndefault_width = 10\n[input]\nkeys_per_s = 0\n"
        );
        let c = Config::parse(&text).unwrap();
        let e = c.validate(false).unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
    }

    #[test]
    fn absurd_durations_are_refused() {
        let text = format!("{MIN}\n[session]\nidle_timeout_s = 18446744073709551615\n");
        let e = Config::parse(&text).unwrap().validate(false).unwrap_err();
        assert!(e.0[0].contains("idle_timeout_s"), "{e}");
    }

    #[test]
    fn durations_are_read_once_with_their_unit_and_zero_means_never() {
        let text = format!(
            "{MIN}\n[session]\nlinger_s = 60\nidle_timeout_s = 0\nabsolute_timeout_s = 7200\nkeyframe_request_interval_ms = 250\n[quic]\nkeep_alive_s = 3\n"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.session.linger, Duration::from_secs(60));
        assert_eq!(c.session.idle_timeout, None);
        assert_eq!(c.session.absolute_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(
            c.session.keyframe_request_interval,
            Duration::from_millis(250)
        );
        assert_eq!(c.quic.keep_alive, Duration::from_secs(3));
        assert_eq!(
            c.quic.idle_timeout,
            Duration::from_secs(10),
            "the transport's default"
        );
        let e = Config::parse(&format!("{MIN}\n[session]\nlinger_s = -1\n")).unwrap_err();
        assert!(e.0[0].contains("linger_s"), "{e}");
    }

    #[test]
    fn missing_files_are_reported() {
        let c = Config::parse(MIN).unwrap();
        let e = c.validate(true).unwrap_err();
        assert_eq!(e.0.len(), 4, "{e}");
    }
}
