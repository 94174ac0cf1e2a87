//! The self-check (自己点検, policy §7): `tsuitate-gateway self-check --config FILE` reads the
//! configuration the gateway runs with, its files and the audit log, asks the running gateway
//! whether it answers, and reports one line per requirement of docs/security-model.md with
//! pass / warn / fail and the evidence, in 日本語 and English (text or JSON).
//!
//! 自己点検: 稼働中の設定・ファイル・監査ログを読み、セキュリティ要件ごとに合否と根拠を示します。

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, DropPolicy};

/// How one requirement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Met.
    Pass,
    /// Met, but something needs a look.
    Warn,
    /// Not met.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// A stable id for automation (`listen.viewer`, `cert.ca`, …).
    pub id: String,
    /// The requirement in Japanese.
    pub requirement_ja: &'static str,
    /// The requirement in English.
    pub requirement_en: &'static str,
    /// Pass, warn or fail.
    pub status: Status,
    /// What was found.
    pub evidence: String,
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Passwords set longer ago than this are reported (warn).
    pub password_max_age: Duration,
    /// Certificates expiring sooner than this are reported (warn).
    pub cert_warn: Duration,
    /// "Now" (tests pass a fixed time).
    pub now: SystemTime,
    /// An admin token: with it the running gateway is asked about its agents (browser
    /// version, managed policy, certificates); without, that item is a warning.
    pub admin_token: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            password_max_age: Duration::from_secs(365 * 86_400),
            cert_warn: Duration::from_secs(30 * 86_400),
            now: SystemTime::now(),
            admin_token: None,
        }
    }
}

struct Report(Vec<Item>);

impl Report {
    fn add(
        &mut self,
        id: impl Into<String>,
        req: (&'static str, &'static str),
        status: Status,
        evidence: impl Into<String>,
    ) {
        self.0.push(Item {
            id: id.into(),
            requirement_ja: req.0,
            requirement_en: req.1,
            status,
            evidence: evidence.into(),
        });
    }
}

const TLS: (&str, &str) = (
    "通信の暗号化（TLS 1.3 のみ、0-RTT なし、エージェントは証明書で認証）",
    "Encrypted transport (TLS 1.3 only, no 0-RTT, agents authenticated by certificate)",
);
const LISTEN_ZONE: (&str, &str) = (
    "通信経路の分割（接続系ごとのインターフェースで待ち受け）",
    "Separated paths (each zone's listener on its own interface)",
);
const LISTEN_ADMIN: (&str, &str) = (
    "管理用ポートは管理用ネットワークのみ",
    "The admin listener only on the admin network",
);
const DROP: (&str, &str) = (
    "許可外の映像データを送るエージェントを切断",
    "An agent sending video outside the allow-list is cut off",
);
const LOCKOUT: (&str, &str) = (
    "パスワード試行の制限（ロックアウト）",
    "Password guessing is limited (lockout)",
);
const TIMEOUTS: (&str, &str) = (
    "無操作・利用時間の上限でセッションを終了",
    "Sessions end after idle time and a maximum duration",
);
const AUDIT: (&str, &str) = (
    "監査ログの改ざん検知（ハッシュチェーン）",
    "Audit log integrity (hash chain)",
);
const DISK: (&str, &str) = ("監査ログの保存領域", "Disk space for the audit log");
const CERT: (&str, &str) = ("証明書の有効期限", "Certificate validity");
const REVOKED: (&str, &str) = (
    "失効した証明書の拒否（失効リスト）",
    "Revoked certificates are refused (revocation list)",
);
const KEY: (&str, &str) = (
    "秘密鍵は他のユーザーから読めない",
    "Private keys unreadable by other users",
);
const USERS: (&str, &str) = (
    "利用者認証（パスワードの定期的な変更）",
    "User authentication (passwords changed regularly)",
);
const ADMIN: (&str, &str) = (
    "緊急時対応（管理 API・緊急停止が使える）",
    "Emergency response (admin API and emergency stop available)",
);
const BROWSER: (&str, &str) = (
    "インターネット接続系のブラウザは管理ポリシーの下で動作し、版を把握している",
    "Internet-zone browsers run under the managed policy, their version known",
);
const RUNNING: (&str, &str) = (
    "ゲートウェイが稼働し応答している",
    "The gateway is running and answering",
);

/// Run every check.
pub fn run(cfg: &Config, opts: &Options) -> Vec<Item> {
    let mut r = Report(Vec::new());
    r.add(
        "tls",
        TLS,
        Status::Pass,
        format!(
            "fixed in the code (tsuitate-transport): TLS 1.3 only, 0-RTT off, our ALPN; agents need a client certificate from {}; trusted fronts: {}",
            cfg.tls.ca.display(),
            if cfg.trusted_fronts.is_empty() { "none".to_owned() } else { cfg.trusted_fronts.join(", ") }
        ),
    );
    check_listeners(&mut r, cfg);
    match cfg.video.drop_policy {
        DropPolicy::Close => r.add("video.drop_policy", DROP, Status::Pass, "drop_policy = \"close\""),
        DropPolicy::Drop => r.add(
            "video.drop_policy",
            DROP,
            Status::Fail,
            "drop_policy = \"drop\": a hostile agent keeps its session after sending forbidden NAL units (set \"close\")",
        ),
    }
    let l = &cfg.lockout;
    let lock_ev = format!(
        "{} failures per user / {} per address within {} s lock for {} s",
        l.max_failures_per_user,
        l.max_failures_per_ip,
        l.window.as_secs(),
        l.lockout.as_secs()
    );
    let weak = l.max_failures_per_user > 10
        || l.max_failures_per_ip > 100
        || l.lockout < Duration::from_secs(300)
        || l.window < Duration::from_secs(60);
    r.add(
        "lockout",
        LOCKOUT,
        if weak { Status::Warn } else { Status::Pass },
        lock_ev,
    );
    let s = &cfg.session;
    let secs = |d: Option<Duration>| {
        d.map_or_else(|| "never".to_owned(), |d| format!("{} s", d.as_secs()))
    };
    r.add(
        "session.timeouts",
        TIMEOUTS,
        if s.idle_timeout.is_some() && s.absolute_timeout.is_some() {
            Status::Pass
        } else {
            Status::Warn
        },
        format!(
            "idle_timeout {}, absolute_timeout {}",
            secs(s.idle_timeout),
            secs(s.absolute_timeout)
        ),
    );
    check_audit(&mut r, &cfg.audit_log, cfg.audit_key());
    check_anchors(&mut r, cfg);
    check_certs(&mut r, cfg, opts);
    check_revoked(&mut r, cfg);
    check_key(&mut r, &cfg.tls.key);
    check_users(&mut r, &cfg.users_file, opts);
    check_admin(&mut r, cfg);
    check_running(&mut r, cfg.admin_listen);
    check_agents(&mut r, cfg.admin_listen, opts);
    r.0
}

/// Ask the running gateway (admin API) for its agents: each must report a browser version and
/// the SHA-256 of an installed managed policy, all the same policy; their certificates must be
/// valid.
fn check_agents(r: &mut Report, admin: SocketAddr, opts: &Options) {
    let Some(token) = &opts.admin_token else {
        r.add(
            "agents",
            BROWSER,
            Status::Warn,
            "not asked: give --token-file (or TSUITATE_ADMIN_TOKEN) to check the agents' browser and policy / 管理トークンがないため未確認",
        );
        return;
    };
    let addr = admin_target(admin).to_string();
    let body = match crate::admin::call(&addr, "GET", "/admin/v1/agents", token) {
        Ok((200, body)) => body,
        Ok((status, body)) => {
            return r.add(
                "agents",
                BROWSER,
                Status::Warn,
                format!(
                    "http://{addr}/admin/v1/agents: HTTP {status} {}",
                    body["error"].as_str().unwrap_or("")
                ),
            )
        }
        Err(e) => return r.add("agents", BROWSER, Status::Warn, e.to_string()),
    };
    let agents = body["agents"].as_array().cloned().unwrap_or_default();
    if agents.is_empty() {
        return r.add(
            "agents",
            BROWSER,
            Status::Warn,
            "no agent is connected / 接続中のエージェントがありません",
        );
    }
    let now = tsuitate_cli::time::unix_secs(opts.now);
    let warn = i64::try_from(opts.cert_warn.as_secs()).unwrap_or(i64::MAX);
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut policies = std::collections::BTreeSet::new();
    let mut versions = std::collections::BTreeSet::new();
    for a in &agents {
        let id = text(&a["id"]);
        let (browser, policy) = (text(&a["browser"]), text(&a["policy_sha256"]));
        let policy_ok = policy.len() == 64 && policy.bytes().all(|b| b.is_ascii_hexdigit());
        let expires = a["certificate_expires"]
            .as_str()
            .and_then(|t| Some((t.to_owned(), secs_of(t)?)));
        let mut status = Status::Pass;
        let mut notes = Vec::new();
        if !policy_ok {
            status = Status::Fail;
            notes.push("no managed browser policy reported / 管理ポリシーの報告なし".to_owned());
        } else {
            policies.insert(policy.clone());
        }
        if browser.is_empty() {
            status = status.max(Status::Warn);
            notes.push("browser version unknown / ブラウザの版が不明".to_owned());
        } else {
            versions.insert(browser.clone());
        }
        match &expires {
            Some((t, at)) if *at <= now => {
                status = Status::Fail;
                notes.push(format!("certificate expired ({t})"));
            }
            Some((t, at)) if at - now < warn => {
                status = status.max(Status::Warn);
                notes.push(format!("certificate expires soon ({t})"));
            }
            Some((t, _)) => notes.push(format!("certificate until {t}")),
            None => notes.push("certificate expiry unknown".to_owned()),
        }
        let short: String = policy.chars().take(16).collect();
        r.add(
            format!("agent.{id}"),
            BROWSER,
            status,
            format!(
                "{}, policy sha256 {}…; {}",
                if browser.is_empty() { "?" } else { &browser },
                if short.is_empty() { "-" } else { &short },
                notes.join("; ")
            ),
        );
    }
    let join = |s: &std::collections::BTreeSet<String>| {
        s.iter()
            .map(|p| p.chars().take(16).collect::<String>())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if policies.len() > 1 {
        r.add(
            "agents.same_policy",
            BROWSER,
            Status::Warn,
            format!(
                "agents run with {} different browser policies ({}): check each agent's configuration / エージェントごとにポリシーが異なります",
                policies.len(),
                join(&policies)
            ),
        );
    }
    if versions.len() > 1 {
        r.add(
            "agents.same_browser",
            BROWSER,
            Status::Warn,
            format!(
                "agents run {} browser versions ({}): update the older ones / ブラウザの版が揃っていません",
                versions.len(),
                versions.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }
}

/// Where to reach the admin listener from this host.
fn admin_target(admin: SocketAddr) -> SocketAddr {
    if admin.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), admin.port())
    } else {
        admin
    }
}

fn check_listeners(r: &mut Report, cfg: &Config) {
    for (id, addr, what) in [
        ("listen.viewer", cfg.viewer_listen, "viewer_listen (LGWAN)"),
        (
            "listen.agent",
            cfg.agent_listen,
            "agent_listen (Internet zone)",
        ),
    ] {
        let (status, ev) = if addr.ip().is_unspecified() {
            (Status::Fail, format!("{what} = {addr}: every interface, both zones can reach it; bind the zone's own interface"))
        } else if addr.ip().is_loopback() {
            (Status::Warn, format!("{what} = {addr}: loopback, only this host can connect (bind the zone's interface in production)"))
        } else {
            (Status::Pass, format!("{what} = {addr}"))
        };
        r.add(id, LISTEN_ZONE, status, ev);
    }
    let (v, a) = (cfg.viewer_listen.ip(), cfg.agent_listen.ip());
    if v == a && !v.is_loopback() && !v.is_unspecified() {
        r.add(
            "listen.separate",
            LISTEN_ZONE,
            Status::Fail,
            format!("viewer_listen and agent_listen share {v}: the two zones reach one interface"),
        );
    }
    let addr = cfg.admin_listen;
    let (status, ev) = if addr.ip().is_unspecified() {
        (
            Status::Fail,
            format!("admin_listen = {addr}: every interface"),
        )
    } else if addr.ip().is_loopback() {
        (Status::Pass, format!("admin_listen = {addr} (loopback)"))
    } else if addr.ip() == v || addr.ip() == a {
        (
            Status::Fail,
            format!("admin_listen = {addr}: on a zone's interface"),
        )
    } else {
        (
            Status::Warn,
            format!("admin_listen = {addr}: make sure only the admin network reaches it"),
        )
    };
    r.add("listen.admin", LISTEN_ADMIN, status, ev);
}

/// Anchors configured, and the log still holds every line anchored in an anchor file.
fn check_anchors(r: &mut Report, cfg: &Config) {
    use crate::audit::AnchorSink;
    let Some(sink) = cfg.audit_anchor.as_deref().map(AnchorSink::parse) else {
        return r.add(
            "audit.anchor",
            AUDIT,
            Status::Warn,
            "audit_anchor is not set: a log cut short or rewritten from some line on still verifies (set \"syslog\" or a file on another system)",
        );
    };
    match sink {
        AnchorSink::Syslog => {
            let (status, ev) = if Path::new("/dev/log").exists() {
                (
                    Status::Pass,
                    "anchors go to syslog every audit_anchor_interval_s; check them with `journalctl -t tsuitate-gateway --grep 'audit anchor' | tsuitate-gateway audit verify LOG --anchors -`",
                )
            } else {
                (
                    Status::Warn,
                    "audit_anchor = \"syslog\" but /dev/log does not exist on this host",
                )
            };
            r.add("audit.anchor", AUDIT, status, ev);
        }
        AnchorSink::File(p) => {
            let anchors = std::fs::read_to_string(&p)
                .map(|t| crate::audit::read_anchors(&t, &cfg.audit_log))
                .unwrap_or_default();
            if anchors.is_empty() {
                return r.add(
                    "audit.anchor",
                    AUDIT,
                    Status::Warn,
                    format!("{}: no anchors yet", p.display()),
                );
            }
            match crate::audit::verify_with_anchors(&cfg.audit_log, &anchors) {
                Ok(_) => r.add(
                    "audit.anchor",
                    AUDIT,
                    Status::Pass,
                    format!(
                        "{}: the log holds all {} anchored lines",
                        p.display(),
                        anchors.len()
                    ),
                ),
                Err(e) => r.add(
                    "audit.anchor",
                    AUDIT,
                    Status::Fail,
                    format!("{}: {e}", p.display()),
                ),
            }
        }
    }
}

fn check_audit(r: &mut Report, path: &Path, key: Result<Option<crate::audit::AuditKey>, String>) {
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            r.add("audit.chain", AUDIT, Status::Fail, e);
            return;
        }
    };
    let keyed = if key.is_some() {
        "every MAC matches (HMAC key)"
    } else {
        "no HMAC key (audit_hmac_key_file; optional)"
    };
    if !path.exists() {
        r.add(
            "audit.chain",
            AUDIT,
            Status::Warn,
            format!(
                "{} does not exist yet (the gateway creates it at start)",
                path.display()
            ),
        );
    } else {
        match crate::audit::verify_file_keyed(path, key.as_ref()) {
            Ok(n) => {
                let last = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| t.lines().last().map(crate::audit::line_hash))
                    .unwrap_or_default();
                r.add("audit.chain", AUDIT, Status::Pass, format!("{}: {n} records, chain intact, {keyed}; last record's SHA-256 (keep it as the anchor) {last}", path.display()));
            }
            Err(e) => r.add(
                "audit.chain",
                AUDIT,
                Status::Fail,
                format!("{}: {e}", path.display()),
            ),
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match rustix::fs::statvfs(dir) {
        Ok(st) => {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            let mib = free / (1024 * 1024);
            let status = if mib < 100 {
                Status::Fail
            } else if mib < 1024 {
                Status::Warn
            } else {
                Status::Pass
            };
            r.add(
                "audit.disk",
                DISK,
                status,
                format!("{}: {mib} MiB free", dir.display()),
            );
        }
        Err(e) => r.add(
            "audit.disk",
            DISK,
            Status::Fail,
            format!("{}: {e}", dir.display()),
        ),
    }
}

/// (subject CN, not-after as UNIX seconds) of the first certificate in a PEM file.
pub fn cert_expiry(path: &Path) -> Result<(String, i64), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).map_err(|e| e.to_string())?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((cn, cert.validity().not_after.timestamp()))
}

fn check_certs(r: &mut Report, cfg: &Config, opts: &Options) {
    let now = opts
        .now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let warn = opts.cert_warn.as_secs() as i64;
    let mut one = |id: String, path: &Path| match cert_expiry(path) {
        Err(e) => r.add(
            id,
            CERT,
            Status::Fail,
            format!("{}: unreadable: {e}", path.display()),
        ),
        Ok((cn, not_after)) => {
            let days = (not_after - now).div_euclid(86_400);
            let until = crate::audit::rfc3339(crate::admin::unix_time(not_after.max(0) as u64));
            let (status, ev) = if not_after <= now {
                (
                    Status::Fail,
                    format!("{} (CN {cn}) expired on {until}", path.display()),
                )
            } else if not_after - now < warn {
                (
                    Status::Warn,
                    format!(
                        "{} (CN {cn}) expires in {days} days ({until})",
                        path.display()
                    ),
                )
            } else {
                (
                    Status::Pass,
                    format!(
                        "{} (CN {cn}) valid until {until} ({days} days)",
                        path.display()
                    ),
                )
            };
            r.add(id, CERT, status, ev);
        }
    };
    one("cert.ca".into(), &cfg.tls.ca);
    one("cert.gateway".into(), &cfg.tls.cert);
    // Agent and front certificates issued into the CA's folder (when the check runs there).
    let dir = cfg
        .tls
        .ca
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut issued: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (n.starts_with("agent-") || n.starts_with("front-"))
                && n.ends_with(".pem")
                && !n.ends_with("-key.pem")
        })
        .collect();
    issued.sort();
    for p in issued {
        let name = p
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        one(format!("cert.{name}"), &p);
    }
}

fn check_revoked(r: &mut Report, cfg: &Config) {
    let Some(list) = &cfg.tls.revoked else {
        return r.add(
            "tls.revoked",
            REVOKED,
            Status::Warn,
            "[tls] revoked is not set: a retired or leaked agent certificate cannot be refused (set it to the CA folder's revoked.txt)",
        );
    };
    match std::fs::read_to_string(list) {
        Ok(text) => {
            let n = text
                .lines()
                .filter(|l| !l.split('#').next().unwrap_or("").trim().is_empty())
                .count();
            r.add(
                "tls.revoked",
                REVOKED,
                Status::Pass,
                format!("{}: {n} revoked certificates", list.display()),
            )
        }
        Err(e) => r.add(
            "tls.revoked",
            REVOKED,
            Status::Fail,
            format!(
                "{}: {e} (the gateway refuses every agent while it cannot read it)",
                list.display()
            ),
        ),
    }
}

fn check_key(r: &mut Report, key: &Path) {
    match std::fs::metadata(key) {
        Ok(m) if crate::config::readable_by_others(&m) => r.add(
            "key.gateway",
            KEY,
            Status::Fail,
            format!(
                "{} has mode {:o}: readable by others (chmod 600)",
                key.display(),
                m.permissions().mode() & 0o777
            ),
        ),
        Ok(m) => r.add(
            "key.gateway",
            KEY,
            Status::Pass,
            format!(
                "{} mode {:o}",
                key.display(),
                m.permissions().mode() & 0o777
            ),
        ),
        Err(e) => r.add(
            "key.gateway",
            KEY,
            Status::Fail,
            format!("{}: {e}", key.display()),
        ),
    }
}

/// Days since 1970-01-01 of an RFC 3339 date's first ten characters (`YYYY-MM-DD`).
fn days_of(date: &str) -> Option<i64> {
    let (y, m, d) = (
        date.get(0..4)?.parse::<i64>().ok()?,
        date.get(5..7)?.parse::<i64>().ok()?,
        date.get(8..10)?.parse::<i64>().ok()?,
    );
    let (month, day) = (u32::try_from(m).ok()?, u32::try_from(d).ok()?);
    Some(tsuitate_cli::time::days_from_civil(y, month, day))
}

/// Seconds since the epoch of an RFC 3339 UTC time (`YYYY-MM-DDTHH:MM:SS…Z`).
fn secs_of(t: &str) -> Option<i64> {
    let field = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    Some(days_of(t)? * 86_400 + field(11..13)? * 3600 + field(14..16)? * 60 + field(17..19)?)
}

fn check_users(r: &mut Report, path: &Path, opts: &Options) {
    let users = match crate::users::UsersFile::load(path) {
        Ok(u) => u,
        Err(e) => {
            r.add("users", USERS, Status::Fail, e.to_string());
            return;
        }
    };
    let today = (opts
        .now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 86_400) as i64;
    let max_days = (opts.password_max_age.as_secs() / 86_400) as i64;
    let mut old = Vec::new();
    let mut undated = Vec::new();
    let active = users.users.iter().filter(|(_, u)| !u.disabled);
    let mut n = 0;
    for (name, u) in active {
        n += 1;
        match u.password_set.as_deref().and_then(days_of) {
            Some(d) if today - d > max_days => old.push(name.as_str()),
            Some(_) => {}
            None => undated.push(name.as_str()),
        }
    }
    let disabled = users.users.len() - n;
    let mut ev = format!("{n} active users, {disabled} disabled");
    if !old.is_empty() {
        ev.push_str(&format!(
            "; password older than {max_days} days: {}",
            old.join(", ")
        ));
    }
    if !undated.is_empty() {
        ev.push_str(&format!(
            "; password date not recorded (set before it was): {}",
            undated.join(", ")
        ));
    }
    let status = if old.is_empty() && undated.is_empty() {
        Status::Pass
    } else {
        Status::Warn
    };
    r.add("users", USERS, status, ev);
}

fn check_admin(r: &mut Report, cfg: &Config) {
    let Some(path) = &cfg.admin_tokens_file else {
        r.add("admin_api", ADMIN, Status::Warn, "admin_tokens_file is not set: no admin API, no emergency stop (tsuitate-gateway admin token-add)");
        return;
    };
    match std::fs::metadata(path) {
        Err(e) => r.add(
            "admin_api",
            ADMIN,
            Status::Fail,
            format!("{}: {e}", path.display()),
        ),
        Ok(m) if crate::config::readable_by_others(&m) => r.add(
            "admin_api",
            ADMIN,
            Status::Fail,
            format!(
                "{} has mode {:o}: readable by others (chmod 600)",
                path.display(),
                m.permissions().mode() & 0o777
            ),
        ),
        Ok(_) => {
            let n = crate::admin::token_count(path).unwrap_or(0);
            let status = if n == 0 { Status::Warn } else { Status::Pass };
            r.add(
                "admin_api",
                ADMIN,
                status,
                format!("{}: {n} admin tokens", path.display()),
            );
        }
    }
}

fn check_running(r: &mut Report, admin: SocketAddr) {
    use std::io::{Read, Write};
    if admin.port() == 0 {
        r.add(
            "running",
            RUNNING,
            Status::Warn,
            "admin_listen has port 0: cannot ask the gateway",
        );
        return;
    }
    let target = admin_target(admin);
    let answer =
        std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: self-check\r\nConnection: close\r\n\r\n")?;
            let mut t = String::new();
            s.read_to_string(&mut t)?;
            Ok(t)
        });
    match answer {
        Ok(t) if t.starts_with("HTTP/1.1 200") => r.add(
            "running",
            RUNNING,
            Status::Pass,
            format!("http://{target}/healthz answers 200"),
        ),
        Ok(t) => r.add(
            "running",
            RUNNING,
            Status::Warn,
            format!(
                "http://{target}/healthz: {}",
                t.lines().next().unwrap_or("")
            ),
        ),
        Err(e) => r.add(
            "running",
            RUNNING,
            Status::Warn,
            format!("http://{target}/healthz: {e} (is the gateway running on this host?)"),
        ),
    }
}

/// Counts of pass / warn / fail.
pub fn summary(items: &[Item]) -> (usize, usize, usize) {
    let n = |s| items.iter().filter(|i| i.status == s).count();
    (n(Status::Pass), n(Status::Warn), n(Status::Fail))
}

/// The report as text, one line per item (日本語 / English).
pub fn text(items: &[Item], now: SystemTime) -> String {
    let (p, w, f) = summary(items);
    let mut out = format!(
        "tsuitate 自己点検 / self-check — {}\n",
        crate::audit::rfc3339(now)
    );
    for i in items {
        out.push_str(&format!(
            "[{}] {} / {}\n       {}\n",
            i.status.label(),
            i.requirement_ja,
            i.requirement_en,
            i.evidence
        ));
    }
    out.push_str(&format!(
        "合格 {p}・注意 {w}・不合格 {f} / {p} pass, {w} warn, {f} fail\n"
    ));
    out
}

/// The report as JSON.
pub fn to_json(items: &[Item], now: SystemTime) -> Value {
    let (p, w, f) = summary(items);
    json!({
        "checked_at": crate::audit::rfc3339(now),
        "items": items,
        "summary": {"pass": p, "warn": w, "fail": f},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(days_of("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(days_of("2000-03-01"), Some(11_017));
        assert_eq!(days_of("2026-11-26T20:00:00Z"), Some(20_783));
        assert_eq!(days_of("bad"), None);
    }
}
