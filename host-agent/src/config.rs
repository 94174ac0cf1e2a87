//! The agent's TOML configuration: typed, `deny_unknown_fields`, every problem reported at
//! once, and the process exits before connecting anywhere (docs/agent.md §Configuration).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::browser::cgroup::{Cgroups, Layout, Limits};
use crate::browser::policy::{PolicyOptions, DEFAULT_POLICY_DIR, KNOWN_POLICY_DIRS};
use crate::browser::pool::UserPool;
use crate::browser::{self, BrowserOptions, BrowserUser};
use crate::size;
use crate::x11::CaptureMode;

/// One gateway to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayEntry {
    /// The gateway's agent listener (UDP): an IP address and port, or a DNS name and port.
    /// A name is resolved at start and again every `resolve_interval_s`, and the agent connects
    /// to every address it names (several gateways behind one name, e.g. a Kubernetes headless
    /// Service).
    #[serde(deserialize_with = "gateway_addr")]
    pub addr: GatewayAddr,
    /// Name in the gateway's certificate (checked by TLS).
    pub server_name: String,
}

/// Where a gateway listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayAddr {
    /// An address.
    Ip(SocketAddr),
    /// A DNS name and port, resolved again and again.
    Name {
        /// The name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl std::fmt::Display for GatewayAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayAddr::Ip(a) => write!(f, "{a}"),
            GatewayAddr::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl std::str::FromStr for GatewayAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<GatewayAddr, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(GatewayAddr::Ip(a));
        }
        let bad = || {
            format!(
                "addr {s:?}: write an IP address and port (\"192.0.2.10:4701\", \"[2001:db8::10]:4701\") or a DNS name and port (\"gateway.tsuitate.svc:4701\") / addr は IP アドレスとポート、または DNS 名とポートで指定してください"
            )
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let name_ok = port != 0
            && host.parse::<std::net::IpAddr>().is_err()
            && matches!(
                rustls_pki_types::ServerName::try_from(host),
                Ok(rustls_pki_types::ServerName::DnsName(_))
            );
        if !name_ok {
            return Err(bad());
        }
        Ok(GatewayAddr::Name {
            host: host.to_owned(),
            port,
        })
    }
}

fn gateway_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<GatewayAddr, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

/// Encoder tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EncoderUsage {
    /// openh264 screen-content mode (default: text and UI stay sharp at low bitrates).
    #[default]
    Screen,
    /// openh264 camera mode (faster on motion, more bytes on text).
    Camera,
}

/// Which encoder writes the frames (docs/agent.md "Encoding cost proportional to what
/// changed").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Our writer for small changes and scrolls, openh264 for keyframes and large changes.
    #[default]
    Damage,
    /// openh264 for every frame.
    Openh264,
}

/// How pixels are read from the X server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaptureSetting {
    /// MIT-SHM (falls back to GetImage if unavailable).
    #[default]
    Shm,
    /// Plain GetImage.
    Getimage,
}

/// `[limits]`: what one session's processes may use together (its cgroup).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default = "default_memory_mb")]
    memory_mb: u32,
    #[serde(default = "default_pids")]
    pids: u32,
    #[serde(default = "default_cpu_percent")]
    cpu_percent: u32,
}

impl Default for LimitsFile {
    fn default() -> LimitsFile {
        LimitsFile {
            memory_mb: default_memory_mb(),
            pids: default_pids(),
            cpu_percent: default_cpu_percent(),
        }
    }
}

fn default_memory_mb() -> u32 {
    Limits::default().memory_mb
}
fn default_pids() -> u32 {
    Limits::default().pids
}
fn default_cpu_percent() -> u32 {
    Limits::default().cpu_percent
}
fn default_cgroup_parent() -> PathBuf {
    PathBuf::from("tsuitate")
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    agent_id: String,
    #[serde(default = "default_max_sessions")]
    max_sessions: u16,
    gateways: Vec<GatewayEntry>,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default = "default_start_url")]
    start_url: String,
    #[serde(default = "default_fps")]
    fps: u32,
    #[serde(default = "default_resolve_interval")]
    resolve_interval_s: u64,
    #[serde(default = "default_linger")]
    linger_s: u64,
    #[serde(default = "default_bitrate")]
    bitrate_kbps: u32,
    #[serde(default)]
    encoder: EncoderUsage,
    #[serde(default)]
    encoding: Encoding,
    #[serde(default = "default_patch_qp")]
    patch_qp: u8,
    #[serde(default)]
    refine_qp: Option<u8>,
    #[serde(default)]
    capture: CaptureSetting,
    #[serde(default = "default_max_width")]
    max_width: u16,
    #[serde(default = "default_max_height")]
    max_height: u16,
    browser_user: Option<String>,
    browser_user_pool: Option<String>,
    proxy: Option<String>,
    proxy_bypass: Option<String>,
    extra_ca: Option<PathBuf>,
    chromium: Option<PathBuf>,
    xvfb: Option<PathBuf>,
    work_dir: Option<PathBuf>,
    policy_dir: Option<PathBuf>,
    #[serde(default)]
    downloads: bool,
    #[serde(default)]
    url_blocklist: Vec<String>,
    #[serde(default)]
    url_allowlist: Vec<String>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default = "default_cgroup_parent")]
    cgroup_parent: PathBuf,
    watermark_font: Option<PathBuf>,
}

fn default_max_sessions() -> u16 {
    4
}
fn default_start_url() -> String {
    "about:blank".into()
}
fn default_fps() -> u32 {
    30
}
fn default_resolve_interval() -> u64 {
    30
}
fn default_patch_qp() -> u8 {
    crate::writer::PATCH_QP as u8
}
/// The refinement QP for `patch_qp` when none is set: [`crate::writer::REFINE_QP`], or finer
/// than `patch_qp` by one where that is finer still; none when `patch_qp` is the finest (12).
fn default_refine_qp(patch_qp: u8) -> Option<u8> {
    let qp = (crate::writer::REFINE_QP as u8).min(patch_qp.saturating_sub(1));
    (qp >= 12).then_some(qp)
}
fn default_linger() -> u64 {
    120
}
fn default_bitrate() -> u32 {
    5000
}
fn default_max_width() -> u16 {
    size::DEFAULT_MAX_SIZE.0
}
fn default_max_height() -> u16 {
    size::DEFAULT_MAX_SIZE.1
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This agent's id (= CN of its certificate).
    pub agent_id: String,
    /// Most concurrent sessions.
    pub max_sessions: u16,
    /// Gateways to connect to (each one independently).
    pub gateways: Vec<GatewayEntry>,
    /// How often gateway names are resolved again.
    pub resolve_interval: std::time::Duration,
    /// How long a session whose gateway connection was lost keeps its browser for a resume
    /// through any gateway (0: it ends at once).
    pub linger: std::time::Duration,
    /// CA certificate (PEM) that signed the gateways' certificates.
    pub ca: PathBuf,
    /// This agent's client certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Highest frame rate.
    pub fps: u32,
    /// Bitrate cap per session (kbit/s).
    pub bitrate_kbps: u32,
    /// Encoder tuning.
    pub encoder: EncoderUsage,
    /// Which encoder writes the frames.
    pub encoding: Encoding,
    /// QP of what the damage encoder's own writer codes (12–40).
    pub patch_qp: u8,
    /// QP at which the damage encoder refines a still screen (12–40, below `patch_qp`);
    /// `None`: it does not.
    pub refine_qp: Option<u8>,
    /// Capture path.
    pub capture: CaptureMode,
    /// Everything the browser needs.
    pub browser: BrowserOptions,
    /// Chromium's managed policy (installed at start-up).
    pub policy: PolicyOptions,
    /// The font the watermark is drawn with (else the first CJK font installed).
    pub watermark_font: Option<PathBuf>,
}

/// Every problem found in a configuration file, reported together (shared by the three
/// binaries).
pub use tsuitate_cli::ConfigErrors;

impl AgentConfig {
    /// Read and validate `path`; relative paths in it are relative to its folder.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
        Self::parse_in(&text, tsuitate_cli::config_dir(path))
    }

    /// Parse and validate TOML text; relative paths stay relative to the working directory.
    pub fn parse(text: &str) -> Result<AgentConfig, ConfigErrors> {
        Self::parse_in(text, Path::new("."))
    }

    /// Parse and validate TOML text whose relative paths are relative to `base`.
    pub fn parse_in(text: &str, base: &Path) -> Result<AgentConfig, ConfigErrors> {
        let mut file: ConfigFile = match toml::from_str(text) {
            Ok(f) => f,
            Err(first) => return Err(ConfigErrors(diagnose(text, first))),
        };
        tsuitate_cli::resolve_relative(
            base,
            [&mut file.ca, &mut file.cert, &mut file.key]
                .into_iter()
                .chain(file.extra_ca.as_mut())
                .chain(file.chromium.as_mut())
                .chain(file.xvfb.as_mut())
                .chain(file.work_dir.as_mut())
                .chain(file.policy_dir.as_mut())
                .chain(file.watermark_font.as_mut()),
        );
        validate(file)
    }
}

/// When the typed parse fails, find every field-level problem, not just the first.
fn diagnose(text: &str, first: toml::de::Error) -> Vec<String> {
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(_) => return vec![first.message().to_string()],
    };
    let mut errors = Vec::new();
    for (key, value) in &table {
        if let Some(e) = check_field(key, value) {
            errors.push(e);
        }
    }
    for required in ["agent_id", "gateways", "ca", "cert", "key"] {
        if !table.contains_key(required) {
            errors.push(format!("{required}: missing / 必須項目がありません"));
        }
    }
    if errors.is_empty() {
        errors.push(first.message().to_string());
    }
    errors
}

fn check<T: DeserializeOwned>(key: &str, value: &toml::Value) -> Option<String> {
    T::deserialize(value.clone())
        .err()
        .map(|e| format!("{key}: {}", e.message()))
}

fn check_field(key: &str, v: &toml::Value) -> Option<String> {
    match key {
        "agent_id" => check::<String>(key, v).or_else(|| {
            (!v.as_str().is_some_and(agent_id_valid)).then(|| AGENT_ID_RULE.to_string())
        }),
        "start_url" | "browser_user" | "browser_user_pool" | "proxy" | "proxy_bypass" => {
            check::<String>(key, v)
        }
        "limits" => check::<LimitsFile>(key, v),
        "ca" | "cert" | "key" | "extra_ca" | "chromium" | "xvfb" | "work_dir" | "policy_dir"
        | "cgroup_parent" | "watermark_font" => check::<PathBuf>(key, v),
        "downloads" => check::<bool>(key, v),
        "url_blocklist" | "url_allowlist" => check::<Vec<String>>(key, v),
        "max_sessions" | "max_width" | "max_height" => check::<u16>(key, v),
        "fps" | "bitrate_kbps" => check::<u32>(key, v),
        "resolve_interval_s" | "linger_s" => check::<u64>(key, v),
        "gateways" => check::<Vec<GatewayEntry>>(key, v),
        "encoder" => check::<EncoderUsage>(key, v),
        "encoding" => check::<Encoding>(key, v),
        "patch_qp" | "refine_qp" => check::<u8>(key, v),
        "capture" => check::<CaptureSetting>(key, v),
        other => Some(format!("{other}: unknown field / 不明な項目です")),
    }
}

fn validate(f: ConfigFile) -> Result<AgentConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut err = |s: String| errors.push(s);
    if !agent_id_valid(&f.agent_id) {
        err(AGENT_ID_RULE.into());
    }
    if f.max_sessions == 0 {
        err("max_sessions: must be at least 1 / 1以上にしてください".into());
    }
    if f.gateways.is_empty() {
        err("gateways: at least one gateway / ゲートウェイを1つ以上指定してください".into());
    }
    for g in &f.gateways {
        if g.server_name.is_empty()
            || rustls_pki_types::ServerName::try_from(g.server_name.as_str()).is_err()
        {
            err(format!("gateways: invalid server_name {:?}", g.server_name));
        }
    }
    if !(1..=60).contains(&f.fps) {
        err("fps: 1-60".into());
    }
    if !(1..=3600).contains(&f.resolve_interval_s) {
        err("resolve_interval_s: 1-3600".into());
    }
    if f.linger_s > 86_400 {
        err("linger_s: 0-86400 (seconds) / 0〜86400 秒で指定してください".into());
    }
    if !(12..=40).contains(&f.patch_qp) {
        err("patch_qp: 12-40 (lower: sharper text, more bytes) / 12〜40 で指定してください（小さいほど文字が鮮明で通信量が増えます）".into());
    }
    if let Some(qp) = f.refine_qp.filter(|qp| *qp != 0) {
        // Finer than patch_qp, and within 12-40 whatever patch_qp is.
        let coarsest = f.patch_qp.clamp(12, 41) - 1;
        if coarsest < 12 {
            err("refine_qp: only 0 (off) with patch_qp 12 / patch_qp が 12 のときは 0（無効）のみ指定できます".into());
        } else if !(12..=coarsest).contains(&qp) {
            err(format!(
                "refine_qp: 0 (off) or 12 up to patch_qp - 1 ({coarsest}) / 0（無効）または 12〜patch_qp - 1（{coarsest}）で指定してください"
            ));
        }
    }
    if !(100..=50_000).contains(&f.bitrate_kbps) {
        err("bitrate_kbps: 100-50000".into());
    }
    let min = tsuitate_protocol::MIN_DIMENSION;
    for (name, v, largest) in [
        ("max_width", f.max_width, size::LARGEST_MAX_SIZE.0),
        ("max_height", f.max_height, size::LARGEST_MAX_SIZE.1),
    ] {
        if !(min..=largest).contains(&v) || v % 2 != 0 {
            err(format!(
                "{name}: an even number {min}-{largest} / {min}〜{largest} の偶数にしてください"
            ));
        }
    }
    for (name, p) in [
        ("ca", Some(&f.ca)),
        ("cert", Some(&f.cert)),
        ("key", Some(&f.key)),
        ("extra_ca", f.extra_ca.as_ref()),
    ] {
        if let Some(p) = p {
            if !p.is_file() {
                err(format!(
                    "{name}: {} is not a readable file / ファイルがありません",
                    p.display()
                ));
            }
        }
    }
    if let Some(bundle) = f.extra_ca.as_ref().filter(|p| p.is_file()) {
        if let Err(e) = browser::read_bundle(bundle) {
            err(format!("extra_ca: {e}"));
        }
        if !Path::new(browser::CERTUTIL).is_file() {
            err(format!(
                "extra_ca: needs {} (Debian package libnss3-tools)",
                browser::CERTUTIL
            ));
        }
    }
    let chromium = f.chromium.clone().unwrap_or_else(browser::default_chromium);
    let xvfb = f
        .xvfb
        .clone()
        .unwrap_or_else(|| PathBuf::from("/usr/bin/Xvfb"));
    for (name, p) in [("chromium", &chromium), ("xvfb", &xvfb)] {
        if !p.is_file() {
            err(format!(
                "{name}: {} not found / 見つかりません",
                p.display()
            ));
        }
    }
    if let Some(w) = &f.work_dir {
        if !w.is_dir() {
            err(format!("work_dir: {} is not a directory", w.display()));
        }
    }
    // Absolute, because the browser and X server run with other working directories.
    let work_dir = f.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work_dir = std::path::absolute(&work_dir)
        .unwrap_or(work_dir)
        .join(format!("tsuitate-agent-{}", f.agent_id));
    if f.start_url.is_empty() || f.start_url.starts_with('-') {
        err("start_url: must be a URL".into());
    }
    if let Some(p) = &f.proxy {
        if p.is_empty() || p.starts_with('-') || p.contains(char::is_whitespace) {
            err(format!("proxy: invalid value {p:?}"));
        }
    }
    if let Some(d) = &f.policy_dir {
        if !KNOWN_POLICY_DIRS.iter().any(|k| Path::new(k) == d) {
            err(format!(
                "policy_dir: {} is not where a browser reads managed policy (one of {}) / ブラウザが管理ポリシーを読む場所ではありません",
                d.display(),
                KNOWN_POLICY_DIRS.join(", ")
            ));
        }
    }
    if let Some(font) = &f.watermark_font {
        if tsuitate_text::TextRenderer::load(Some(font)).is_none() {
            err(format!(
                "watermark_font: {} is not a font file that can be read (TTF, OTF or TTC) / フォントファイルを読めません",
                font.display()
            ));
        }
    }
    let pool = match &f.browser_user_pool {
        Some(_) if !browser::running_as_root() => {
            err("browser_user_pool: the agent must run as root to start browsers as other accounts / root で実行する必要があります".into());
            None
        }
        Some(prefix) => match UserPool::lookup(prefix) {
            Ok(p) if p.len() < usize::from(f.max_sessions) => {
                err(format!(
                    "browser_user_pool: {} accounts {prefix}-1… for max_sessions = {} (scripts/setup-browser-user.sh creates them) / アカウントが足りません",
                    p.len(),
                    f.max_sessions
                ));
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                err(format!("browser_user_pool: {e}"));
                None
            }
        },
        None => None,
    };
    let user = match (
        &f.browser_user,
        &f.browser_user_pool,
        browser::running_as_root(),
    ) {
        (Some(_), Some(_), _) => {
            err("browser_user and browser_user_pool: set one of them / どちらか一方を指定してください".into());
            None
        }
        (Some(name), None, _) => match BrowserUser::lookup(name) {
            Ok(u) => Some(u),
            Err(e) => {
                err(format!("browser_user: {e}"));
                None
            }
        },
        (None, None, true) => {
            err("browser_user_pool (or browser_user): required when the agent runs as root (Chromium never runs as root) / root で動かす場合は必須です".into());
            None
        }
        (None, _, _) => None,
    };
    let l = f.limits;
    for (name, v, range) in [
        ("limits.memory_mb", l.memory_mb, 256..=1_048_576),
        ("limits.pids", l.pids, 64..=1_000_000),
        ("limits.cpu_percent", l.cpu_percent, 10..=25_600),
    ] {
        if !range.contains(&v) {
            err(format!(
                "{name}: {}-{} / {}〜{} にしてください",
                range.start(),
                range.end(),
                range.start(),
                range.end()
            ));
        }
    }
    let parent_ok = f
        .cgroup_parent
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        && f.cgroup_parent.components().next().is_some();
    if !parent_ok {
        err(format!(
            "cgroup_parent: {} must be a relative path without \"..\" (e.g. \"tsuitate\") / 相対パスで指定してください",
            f.cgroup_parent.display()
        ));
    }
    let limits = Limits {
        memory_mb: l.memory_mb,
        pids: l.pids,
        cpu_percent: l.cpu_percent,
    };
    // As root the agent starts browsers as other accounts and must confine each session in
    // its own cgroup; without root it cannot create cgroups (a development set-up).
    let cgroups = if browser::running_as_root() && parent_ok {
        match Layout::detect() {
            Ok(layout) => Some(Cgroups::new(
                layout,
                &f.cgroup_parent,
                &f.agent_id,
                limits,
                f.max_sessions,
            )),
            Err(e) => {
                err(format!("limits: {e}"));
                None
            }
        }
    } else {
        None
    };
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(AgentConfig {
        agent_id: f.agent_id,
        max_sessions: f.max_sessions,
        gateways: f.gateways,
        resolve_interval: std::time::Duration::from_secs(f.resolve_interval_s),
        linger: std::time::Duration::from_secs(f.linger_s),
        ca: f.ca,
        cert: f.cert,
        key: f.key,
        fps: f.fps,
        bitrate_kbps: f.bitrate_kbps,
        encoder: f.encoder,
        encoding: f.encoding,
        patch_qp: f.patch_qp,
        refine_qp: match f.refine_qp {
            None => default_refine_qp(f.patch_qp),
            Some(qp) => (qp != 0).then_some(qp),
        },
        capture: match f.capture {
            CaptureSetting::Shm => CaptureMode::Shm,
            CaptureSetting::Getimage => CaptureMode::GetImage,
        },
        policy: PolicyOptions {
            dir: f
                .policy_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY_DIR)),
            downloads: f.downloads,
            url_blocklist: f.url_blocklist,
            url_allowlist: f.url_allowlist,
            proxy: f.proxy.clone(),
            proxy_bypass: f.proxy_bypass.clone(),
        },
        watermark_font: f.watermark_font,
        browser: BrowserOptions {
            extra_ca: f.extra_ca,
            chromium,
            xvfb,
            start_url: f.start_url,
            user,
            pool,
            proxy: f.proxy,
            proxy_bypass: f.proxy_bypass,
            work_dir: Some(work_dir),
            max_size: (f.max_width, f.max_height),
            cgroups,
        },
    })
}

const AGENT_ID_RULE: &str =
    "agent_id: 1-64 characters of A-Z a-z 0-9 . _ - / 英数字と . _ - で1〜64文字";

/// Agent ids: what the gateway's CA issues as certificate CN.
pub fn agent_id_valid(id: &str) -> bool {
    (1..=tsuitate_protocol::MAX_AGENT_ID_BYTES).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for n in ["ca.pem", "a.pem", "a-key.pem"] {
            let _ = std::fs::write(d.path().join(n), "x");
        }
        d
    }

    /// A valid configuration (paths in `d`) with the TOML keys of `extra` added; values are
    /// serialized, never spliced in.
    fn text(d: &Path, extra: &str) -> String {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: toml::Value| {
            t.insert(k.into(), v);
        };
        let s = |v: &str| toml::Value::String(v.into());
        put("agent_id", s("agent-1"));
        put("browser_user", s("65534:65534"));
        let mut gw = toml::Table::new();
        gw.insert("addr".into(), s("127.0.0.1:4701"));
        gw.insert("server_name".into(), s("localhost"));
        put("gateways", toml::Value::Array(vec![toml::Value::Table(gw)]));
        for (k, f) in [("ca", "ca.pem"), ("cert", "a.pem"), ("key", "a-key.pem")] {
            put(k, s(&d.join(f).to_string_lossy()));
        }
        let extra: toml::Table = toml::from_str(extra).unwrap_or_else(|e| panic!("{e}"));
        t.extend(extra);
        toml::to_string(&t).unwrap_or_default()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let d = files();
        let c = AgentConfig::parse(&text(d.path(), ""));
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.fps, c.bitrate_kbps, c.max_sessions), (30, 5000, 4));
        assert_eq!(c.encoder, EncoderUsage::Screen);
        assert_eq!(c.encoding, Encoding::Damage);
        assert_eq!(c.patch_qp, 22);
        assert_eq!(c.refine_qp, Some(16));
        assert_eq!(c.browser.start_url, "about:blank");
        assert_eq!(c.browser.max_size, (1920, 1080));
    }

    #[test]
    fn gateways_by_address_or_by_name_and_a_clear_error_for_anything_else() {
        let d = files();
        let with = |addr: &str| {
            AgentConfig::parse(&text(d.path(), "").replace("127.0.0.1:4701", addr))
                .map(|c| c.gateways[0].addr.clone())
                .map_err(|e| e.0)
        };
        assert_eq!(
            with("[::1]:4701"),
            Ok(GatewayAddr::Ip("[::1]:4701".parse().expect("address")))
        );
        assert_eq!(
            with("gateway.tsuitate.svc.cluster.local:4701"),
            Ok(GatewayAddr::Name {
                host: "gateway.tsuitate.svc.cluster.local".into(),
                port: 4701
            })
        );
        for bad in [
            "gateway.example.lg.jp",
            "gw:0",
            "gw:70000",
            ":4701",
            "gw bad:4701",
            "[::1]",
        ] {
            let errs = with(bad).expect_err("refused");
            assert!(
                errs.iter()
                    .any(|e| e.contains("DNS name and port") && e.contains("DNS 名")),
                "{bad}: {errs:?}"
            );
        }
        let c = AgentConfig::parse(&text(d.path(), "")).expect("valid");
        assert_eq!(c.resolve_interval, std::time::Duration::from_secs(30));
        let errs = AgentConfig::parse(&format!("resolve_interval_s = 0\n{}", text(d.path(), "")))
            .expect_err("refused")
            .0;
        assert!(
            errs.iter().any(|e| e.starts_with("resolve_interval_s")),
            "{errs:?}"
        );
    }

    #[test]
    fn one_kind_of_browser_account_and_enough_of_them() {
        let d = files();
        let both = text(
            d.path(),
            "browser_user_pool = \"tsuitate-browser\"\nmax_sessions = 64\n",
        );
        let errs = AgentConfig::parse(&both)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("browser_user and browser_user_pool")),
            "{errs:?}"
        );
        if browser::running_as_root() {
            // 64 sessions need 64 accounts; the pool has fewer (or none).
            assert!(
                errs.iter().any(|e| e.starts_with("browser_user_pool:")),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let d = files();
        let conf = d.path().join("agent.toml");
        let body = "agent_id = \"agent-1\"\nbrowser_user = \"65534:65534\"\n\
             gateways = [{ addr = \"127.0.0.1:4701\", server_name = \"localhost\" }]\n\
             ca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"./a-key.pem\"\n";
        std::fs::write(&conf, body).unwrap_or_else(|e| panic!("{e}"));
        // The test runs in the crate's folder, not the config's: only the config's folder
        // makes these paths exist.
        let c = AgentConfig::load(&conf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.ca, d.path().join("ca.pem"));
        assert_eq!(c.key, d.path().join("./a-key.pem"));
        assert!(
            AgentConfig::parse(body).is_err(),
            "parse() keeps the working directory"
        );
    }

    #[test]
    fn relative_work_dir_becomes_absolute() {
        let d = files();
        let c = AgentConfig::parse(&text(d.path(), "work_dir = \".\"\n"));
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        let w = c.browser.work_dir.unwrap_or_default();
        assert!(w.is_absolute(), "{}", w.display());
        assert!(w.ends_with("tsuitate-agent-agent-1"), "{}", w.display());
    }

    #[test]
    fn max_size_must_be_even_and_in_range() {
        let d = files();
        let ok = AgentConfig::parse(&text(d.path(), "max_width = 1280\nmax_height = 720\n"));
        assert_eq!(ok.map(|c| c.browser.max_size).ok(), Some((1280, 720)));
        let t = text(d.path(), "max_width = 1281\nmax_height = 4000\n");
        let errs = AgentConfig::parse(&t)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|e| e.starts_with("max_")));
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let d = files();
        let t = text(
            d.path(),
            "fps = \"fast\"\nbitrat_kbps = 1\nencoder = \"film\"\n",
        );
        let errs = AgentConfig::parse(&t)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("fps:")));
        assert!(errs.iter().any(|e| e.starts_with("bitrat_kbps: unknown")));
        assert!(errs.iter().any(|e| e.starts_with("encoder:")));
    }

    #[test]
    fn encoding_patch_qp_and_refine_qp_are_checked() {
        let d = files();
        let t = text(d.path(), "encoding = \"openh264\"\npatch_qp = 30\n");
        let c = AgentConfig::parse(&t).map_err(|e| e.0);
        assert_eq!(
            c.as_ref().map(|c| (c.encoding, c.patch_qp)),
            Ok((Encoding::Openh264, 30))
        );
        for (set, refine) in [
            ("refine_qp = 0\n", None),
            ("refine_qp = 20\n", Some(20)),
            ("patch_qp = 14\n", Some(13)),
            ("patch_qp = 12\n", None),
        ] {
            let c = AgentConfig::parse(&text(d.path(), set)).map_err(|e| e.0);
            assert_eq!(c.map(|c| c.refine_qp), Ok(refine), "{set}");
        }
        for (bad, what) in [
            ("encoding = \"x264\"\n", "encoding:"),
            ("patch_qp = 50\n", "patch_qp: 12-40"),
            (
                "refine_qp = 22\n",
                "refine_qp: 0 (off) or 12 up to patch_qp - 1 (21)",
            ),
            ("refine_qp = 11\n", "refine_qp:"),
            (
                "patch_qp = 14\nrefine_qp = 14\n",
                "refine_qp: 0 (off) or 12 up to patch_qp - 1 (13)",
            ),
            (
                "patch_qp = 12\nrefine_qp = 12\n",
                "refine_qp: only 0 (off) with patch_qp 12",
            ),
        ] {
            let errs = AgentConfig::parse(&text(d.path(), bad))
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(
                errs.len() == 1 && errs[0].starts_with(what),
                "{bad}: {errs:?}"
            );
        }
    }

    #[test]
    fn semantic_errors_are_collected() {
        let d = files();
        let t = text(
            d.path(),
            "fps = 0\nbitrate_kbps = 1\nmax_sessions = 0\nextra_ca = \"/nonexistent/x.pem\"\n",
        )
        .replace("agent-1", "bad id");
        let errs = AgentConfig::parse(&t)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert_eq!(errs.len(), 5, "{errs:?}");
    }

    #[test]
    fn session_limits_have_defaults_ranges_and_a_safe_cgroup_path() {
        let d = files();
        let errs = |extra: &str| {
            AgentConfig::parse(&text(d.path(), extra))
                .err()
                .map(|e| e.0)
                .unwrap_or_default()
        };
        assert!(errs("[limits]\nmemory_mb = 1024\n").is_empty());
        let e = errs(
            "cgroup_parent = \"../escape\"\n[limits]\nmemory_mb = 10\npids = 5\ncpu_percent = 0\n",
        );
        assert_eq!(e.len(), 4, "{e:?}");
        for key in [
            "limits.memory_mb",
            "limits.pids",
            "limits.cpu_percent",
            "cgroup_parent",
        ] {
            assert!(e.iter().any(|m| m.starts_with(key)), "{key}: {e:?}");
        }
        let e = errs("[limits]\nmemory = 1024\n");
        assert!(
            e.len() == 1 && e[0].starts_with("limits:") && e[0].contains("memory"),
            "an unknown key in [limits] is named: {e:?}"
        );
        // As root the configuration carries the session cgroups with the configured limits.
        if crate::browser::running_as_root() {
            let c = AgentConfig::parse(&text(d.path(), "[limits]\nmemory_mb = 1024\n"));
            let limits = c.ok().and_then(|c| c.browser.cgroups).map(|g| g.limits());
            assert_eq!(limits.map(|l| (l.memory_mb, l.pids)), Some((1024, 2048)));
        }
    }
}
