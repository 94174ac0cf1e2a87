//! The admin API (docs/gateway.md §Admin API): who is connected, ending one session, and the
//! emergency stop (緊急時対応) of every session or of one agent, on the admin listener.
//!
//! Every call carries `Authorization: Bearer TOKEN`; the gateway keeps only named SHA-256
//! hashes of the tokens (`admin_tokens_file`, written by `tsuitate-gateway admin token-add`), so
//! the file does not give the tokens away. Every call — refused ones too — is audited with the
//! admin's name (or why it was refused) and counted.
//!
//! 管理 API: 接続中のセッション一覧、セッションの終了、全セッション（またはエージェント単位）の
//! 緊急停止と再開。すべての呼び出しを管理者名とともに監査ログに記録します。

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tsuitate_protocol::Reason;

use crate::audit::rfc3339;
use crate::state::{lock, EmergencyStop, SessionCommand, SessionLink, State};

/// Why the admin credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The tokens file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The tokens file is not valid TOML of the expected shape.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// The name is not 1-64 of A-Z a-z 0-9 . _ - or is taken.
    #[error("{0}")]
    Name(String),
    /// No random bytes from the OS.
    #[error("the system's random number generator failed / 乱数を取得できません")]
    Random,
}

/// One admin's credential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    /// SHA-256 of the token, lower-case hex.
    sha256: String,
}

/// The tokens file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    admin: Vec<TokenEntry>,
}

/// How many admins the tokens file at `path` names (the self-check's evidence).
pub(crate) fn token_count(path: &Path) -> Result<usize, AdminError> {
    read_tokens(path).map(|f| f.admin.len())
}

/// `secs` after the UNIX epoch, saturating (a stored or certificate time cannot panic).
pub(crate) fn unix_time(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn read_tokens(path: &Path) -> Result<TokensFile, AdminError> {
    let text = std::fs::read_to_string(path).map_err(|e| AdminError::Io(path.into(), e))?;
    toml::from_str(&text).map_err(|e| AdminError::Parse(path.into(), e.message().to_owned()))
}

/// Add admin `name` to the tokens file at `path` (created 0600 if missing) and return the new
/// token, which is shown once and stored only as its hash.
pub fn add_token(path: &Path, name: &str) -> Result<String, AdminError> {
    if !crate::certs::agent_id_valid(name) {
        return Err(AdminError::Name(format!(
            "{name:?}: 1-64 characters of A-Z a-z 0-9 . _ - / 英数字と . _ - で1〜64文字"
        )));
    }
    let mut file = if path.exists() {
        read_tokens(path)?
    } else {
        TokensFile::default()
    };
    if file.admin.iter().any(|t| t.name == name) {
        return Err(AdminError::Name(format!(
            "{name:?} already has a token (remove its entry first) / すでに登録されています"
        )));
    }
    let mut raw = [0u8; 32];
    tsuitate_transport::tls::provider()
        .secure_random
        .fill(&mut raw)
        .map_err(|_| AdminError::Random)?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    file.admin.push(TokenEntry {
        name: name.to_owned(),
        sha256: crate::audit::line_hash(&token),
    });
    let text = toml::to_string(&file).map_err(|e| AdminError::Parse(path.into(), e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let io = |e| AdminError::Io(path.into(), e);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(
            b"# tsuitate admin API tokens (SHA-256 hashes only) / \xe7\xae\xa1\xe7\x90\x86 API \xe3\x81\xae\xe3\x83\x88\xe3\x83\xbc\xe3\x82\xaf\xe3\x83\xb3\n",
        )
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.sync_all())
        .map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(token)
}

/// The tokens read last, and the file's modification time then.
type TokenCache = Option<(Option<SystemTime>, Arc<Vec<TokenEntry>>)>;

/// The admin credentials, re-read when the file changes.
#[derive(Debug)]
pub struct AdminTokens {
    path: Option<PathBuf>,
    cache: Mutex<TokenCache>,
}

/// Who made an admin call, or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A known admin.
    Admin(String),
    /// No `admin_tokens_file` is configured.
    Disabled,
    /// No bearer token was sent.
    NoToken,
    /// The token matches no admin (or the file is unreadable).
    BadToken,
}

impl AdminTokens {
    /// Tokens from `path` (`None`: the admin API is off).
    pub fn new(path: Option<PathBuf>) -> AdminTokens {
        AdminTokens {
            path,
            cache: Mutex::new(None),
        }
    }

    /// Who `token` (from the `Authorization` header, if any) belongs to. Blocking file read
    /// (small; only when the file changed).
    pub fn caller(&self, token: Option<&str>) -> Caller {
        let Some(path) = &self.path else {
            return Caller::Disabled;
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Caller::NoToken;
        };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let entries = {
            let mut cache = lock(&self.cache);
            match cache.as_ref() {
                Some((t, e)) if *t == mtime => e.clone(),
                _ => match read_tokens(path) {
                    Ok(f) => {
                        let e = Arc::new(f.admin);
                        *cache = Some((mtime, e.clone()));
                        e
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "admin tokens file unreadable: admin call refused");
                        return Caller::BadToken;
                    }
                },
            }
        };
        let hash = crate::audit::line_hash(token);
        entries
            .iter()
            .find(|e| e.sha256.eq_ignore_ascii_case(&hash))
            .map_or(Caller::BadToken, |e| Caller::Admin(e.name.clone()))
    }
}

/// An admin API answer: HTTP status and JSON body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer { status, body }
}

fn error(status: u16, en: &str, ja: &str) -> Answer {
    answer(status, json!({"error": en, "error_ja": ja}))
}

/// One request, already split: method, path (without the query) and query parameters.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Vec<(&'a str, &'a str)>,
    pub token: Option<&'a str>,
    pub peer: std::net::SocketAddr,
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// Carry out an admin call (paths under `/admin/v1/`).
pub(crate) async fn handle(state: &Arc<State>, req: Request<'_>) -> Answer {
    let caller = state.admin_tokens.caller(req.token);
    let Caller::Admin(admin) = caller else {
        state
            .metrics
            .admin_denied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cause = match caller {
            Caller::Disabled => "disabled",
            Caller::NoToken => "no_token",
            _ => "bad_token",
        };
        tracing::warn!(peer = %req.peer, path = req.path, cause, "admin call refused");
        state.audit(json!({
            "event": "admin_denied",
            "peer": req.peer.to_string(),
            "method": req.method,
            "path": req.path,
            "cause": cause,
        }));
        return if cause == "disabled" {
            error(
                403,
                "the admin API is off: set admin_tokens_file in the gateway config",
                "管理 API は無効です（ゲートウェイ設定の admin_tokens_file を設定してください）",
            )
        } else {
            error(
                401,
                "a valid admin token is required (Authorization: Bearer TOKEN)",
                "有効な管理トークンが必要です",
            )
        };
    };
    let segments: Vec<&str> = req
        .path
        .trim_start_matches("/admin/v1/")
        .split('/')
        .collect();
    let agent = req.param("agent");
    let (call, result) = match (req.method, segments.as_slice()) {
        ("GET", ["sessions"]) => ("sessions", answer(200, sessions(state))),
        ("GET", ["status"]) => ("status", answer(200, status(state))),
        ("POST", ["sessions", id, "end"]) => ("end", end_one(state, id)),
        ("POST", ["emergency-stop"]) => ("emergency_stop", stop(state, &admin, agent)),
        ("POST", ["resume"]) => ("resume", resume(state, &admin, agent)),
        ("GET", ["agents"]) => ("agents", answer(200, json!({ "agents": agents(state) }))),
        ("POST", ["agents", id, "drain"]) => ("drain", drain(state, &admin, id, true)),
        ("POST", ["agents", id, "undrain"]) => ("undrain", drain(state, &admin, id, false)),
        (
            _,
            ["sessions"]
            | ["status"]
            | ["agents"]
            | ["sessions", _, "end"]
            | ["emergency-stop"]
            | ["resume"]
            | ["agents", _, "drain" | "undrain"],
        ) => (
            "method_not_allowed",
            error(405, "method not allowed", "このメソッドは使えません"),
        ),
        _ => (
            "not_found",
            error(404, "no such admin call", "そのような管理 API はありません"),
        ),
    };
    state
        .metrics
        .admin_calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state.audit(json!({
        "event": "admin_call",
        "admin": admin,
        "peer": req.peer.to_string(),
        "call": call,
        "target": segments
            .get(1)
            .copied()
            .filter(|_| matches!(call, "end" | "drain" | "undrain"))
            .or(agent),
        "status": result.status,
    }));
    result
}

fn sessions(state: &State) -> Value {
    let links: Vec<(u64, SessionLink)> = state
        .hub()
        .sessions
        .iter()
        .map(|(id, l)| (*id, l.clone()))
        .collect();
    let now = SystemTime::now();
    let mut list: Vec<Value> = links
        .into_iter()
        .map(|(id, l)| {
            let i = &l.info;
            let v = lock(&i.view).clone();
            json!({
                "id": id.to_string(),
                "user": i.user,
                "agent": i.agent,
                "viewer": v.viewer.map(|a| a.to_string()),
                "attached": v.viewer.is_some(),
                "started": rfc3339(i.started),
                "duration_s": now.duration_since(i.started).unwrap_or_default().as_secs(),
                "idle_s": v.idle_s,
                "frames": v.frames,
                "bytes": v.bytes,
                "latency_p50_ms": v.latency_p50_ms,
                "latency_p95_ms": v.latency_p95_ms,
            })
        })
        .collect();
    list.sort_by(|a, b| a["started"].as_str().cmp(&b["started"].as_str()));
    json!({ "sessions": list })
}

/// Connected agents: id, capacity, sessions, whether stopped or draining, when they connected
/// and when their certificate expires.
fn agents(state: &State) -> Vec<Value> {
    let hub = state.hub();
    let stopped: Vec<&str> = hub.broker.stopped_agents().collect();
    let draining: Vec<&str> = hub.broker.draining_agents().collect();
    hub.broker
        .agents()
        .map(|(id, capacity, sessions)| {
            let link = hub.agents.get(id);
            let expiry = link
                .and_then(|l| l.cert_not_after)
                .map(|t| rfc3339(unix_time(u64::try_from(t).unwrap_or(0))));
            json!({
                "id": id,
                "capacity": capacity,
                "sessions": sessions,
                "stopped": stopped.contains(&id),
                "draining": draining.contains(&id),
                "connected_since": link.map(|l| rfc3339(l.since)),
                "certificate_expires": expiry,
                "browser": link.map(|l| l.browser.version.as_str()),
                "policy_sha256": link.map(|l| l.browser.policy.as_str()),
            })
        })
        .collect()
}

fn status(state: &State) -> Value {
    let emergency = lock(&state.emergency).clone();
    let agents = agents(state);
    let hub = state.hub();
    let stopped: Vec<&str> = hub.broker.stopped_agents().collect();
    let draining: Vec<&str> = hub.broker.draining_agents().collect();
    json!({
        "emergency_stop": emergency.map(|e| json!({"by": e.by, "since": rfc3339(e.since)})),
        "stopped_agents": stopped,
        "draining_agents": draining,
        "sessions": hub.sessions.len(),
        "session_limit": state.cfg.max_sessions_by_memory(),
        "agents": agents,
    })
}

/// Drain (or undrain) an agent: no new sessions there; the running ones go on.
fn drain(state: &State, admin: &str, agent: &str, on: bool) -> Answer {
    if let Some(refused) = bad_agent(Some(agent)) {
        return refused;
    }
    state.hub().broker.set_draining(agent, on);
    tracing::info!(admin, agent, draining = on, "agent drain changed");
    state.audit(json!({
        "event": if on { "agent_drain" } else { "agent_undrain" },
        "admin": admin,
        "agent": agent,
    }));
    answer(200, json!({ "agent": agent, "draining": on }))
}

/// Tell sessions to end with `reason`; returns how many were told (a session already ending
/// is not counted). Never waits: a session whose command queue is full gets the command from
/// a task of its own, so a stop of many sessions answers at once and cannot be cut short by the
/// admin connection's time limit.
fn end_sessions(links: Vec<SessionLink>, reason: Reason) -> usize {
    let mut told = 0;
    for l in links {
        match l.tx.try_send(SessionCommand::End { reason }) {
            Ok(()) => told += 1,
            Err(tokio::sync::mpsc::error::TrySendError::Full(cmd)) => {
                told += 1;
                tokio::spawn(async move {
                    let _ = l.tx.send(cmd).await;
                });
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    told
}

fn end_one(state: &State, id: &str) -> Answer {
    let link = id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.hub().sessions.get(&id).cloned());
    let Some(link) = link else {
        return error(404, "no such session", "そのセッションはありません");
    };
    let ended = end_sessions(vec![link], Reason::AdminClosed);
    answer(200, json!({ "ended": ended }))
}

/// An `?agent=` that is not an agent id (the admin's request is the only source).
fn bad_agent(agent: Option<&str>) -> Option<Answer> {
    agent
        .filter(|a| !crate::certs::agent_id_valid(a))
        .map(|_| error(404, "no such agent id", "そのエージェント ID はありません"))
}

fn stop(state: &State, admin: &str, agent: Option<&str>) -> Answer {
    if let Some(refused) = bad_agent(agent) {
        return refused;
    }
    let links: Vec<SessionLink> = {
        let mut hub = state.hub();
        match agent {
            Some(a) => hub.broker.set_stopped(a, true),
            None => {
                *lock(&state.emergency) = Some(EmergencyStop {
                    by: admin.to_owned(),
                    since: SystemTime::now(),
                });
            }
        }
        hub.sessions
            .values()
            .filter(|l| agent.is_none_or(|a| l.info.agent == a))
            .cloned()
            .collect()
    };
    let ended = end_sessions(links, Reason::EmergencyStop);
    let persisted = persist(state);
    tracing::warn!(admin, agent, ended, persisted, "emergency stop / 緊急停止");
    state.audit(json!({
        "event": "emergency_stop",
        "admin": admin,
        "scope": agent.map_or_else(|| "all".to_owned(), |a| format!("agent:{a}")),
        "sessions_ended": ended,
        "persisted": persisted,
    }));
    answer(
        200,
        json!({ "stopped": agent.unwrap_or("all"), "ended": ended, "persisted": persisted }),
    )
}

fn resume(state: &State, admin: &str, agent: Option<&str>) -> Answer {
    if let Some(refused) = bad_agent(agent) {
        return refused;
    }
    let was = match agent {
        Some(a) => {
            let mut hub = state.hub();
            let was = hub.broker.stopped_agents().any(|s| s == a);
            hub.broker.set_stopped(a, false);
            was
        }
        None => lock(&state.emergency).take().is_some(),
    };
    let persisted = persist(state);
    tracing::warn!(
        admin,
        agent,
        was_stopped = was,
        "emergency stop lifted / 緊急停止を解除"
    );
    state.audit(json!({
        "event": "emergency_resume",
        "admin": admin,
        "scope": agent.map_or_else(|| "all".to_owned(), |a| format!("agent:{a}")),
        "was_stopped": was,
        "persisted": persisted,
    }));
    answer(
        200,
        json!({ "resumed": agent.unwrap_or("all"), "was_stopped": was, "persisted": persisted }),
    )
}

/// Where the stop state is kept across restarts: beside the audit log
/// (`<audit_log>.emergency.json`), a folder the gateway writes anyway.
pub(crate) fn stop_file(state: &State) -> PathBuf {
    let mut name = state.cfg.audit_log.as_os_str().to_owned();
    name.push(".emergency.json");
    PathBuf::from(name)
}

/// Write the stop state (every-session stop, stopped agents) to [`stop_file`], or remove the
/// file when nothing is stopped. Returns whether that worked.
fn persist(state: &State) -> bool {
    let all = lock(&state.emergency).clone();
    let agents: Vec<String> = state
        .hub()
        .broker
        .stopped_agents()
        .map(str::to_owned)
        .collect();
    let path = stop_file(state);
    let result = if all.is_none() && agents.is_empty() {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        let since = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        };
        let value = json!({
            "all": all.map(|e| json!({"by": e.by, "since_unix": since(e.since)})),
            "agents": agents,
        });
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, format!("{value}\n")).and_then(|()| std::fs::rename(&tmp, &path))
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, file = %path.display(), "could not record the emergency stop state / 緊急停止の状態を保存できません");
    }
    result.is_ok()
}

/// At start-up: a stop that was in force when the gateway went down is in force again (a
/// restart must not reopen the service during an incident). A stop file that cannot be read
/// counts as a stop of everything.
pub(crate) fn restore(state: &State) {
    let path = stop_file(state);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "stop file unreadable: every login stays refused");
            String::new()
        }
    };
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| json!({"all": {"by": "unknown"}}));
    if let Some(all) = v.get("all").filter(|a| !a.is_null()) {
        let since = all["since_unix"].as_u64().unwrap_or(0);
        *lock(&state.emergency) = Some(EmergencyStop {
            by: all["by"].as_str().unwrap_or("unknown").to_owned(),
            since: unix_time(since),
        });
    }
    let agents: Vec<String> = v["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    {
        let mut hub = state.hub();
        for a in &agents {
            hub.broker.set_stopped(a, true);
        }
    }
    tracing::warn!(
        all = state.emergency_stopped(),
        ?agents,
        "an emergency stop is still in force / 緊急停止が継続しています"
    );
    state.audit(json!({
        "event": "emergency_stop_restored",
        "all": state.emergency_stopped(),
        "agents": agents,
    }));
}

/// A blocking admin API call for the CLI: `method` `path` on the admin listener at `addr`
/// with `token`; returns the HTTP status and the JSON body.
pub fn call(addr: &str, method: &str, path: &str, token: &str) -> Result<(u16, Value), CallError> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let unreachable = |e: std::io::Error| CallError::Unreachable(addr.to_owned(), e.to_string());
    let target = addr
        .to_socket_addrs()
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| CallError::Unreachable(addr.to_owned(), "no address".into()))?;
    let limit = Duration::from_secs(10);
    let mut stream = std::net::TcpStream::connect_timeout(&target, limit).map_err(unreachable)?;
    stream.set_read_timeout(Some(limit)).map_err(unreachable)?;
    stream.set_write_timeout(Some(limit)).map_err(unreachable)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(unreachable)?;
    let text = String::from_utf8_lossy(&response);
    let bad = || CallError::Answer(addr.to_owned(), text.chars().take(200).collect());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let body = serde_json::from_str(body.trim()).map_err(|_| bad())?;
    Ok((status, body))
}

/// Why an admin API call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection to the admin listener.
    #[error("{0}: cannot reach the gateway's admin listener ({1}) / ゲートウェイの管理用ポートに接続できません")]
    Unreachable(String, String),
    /// The answer was not HTTP with a JSON body.
    #[error("{0}: unexpected answer: {1:?} / 応答が不正です")]
    Answer(String, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_as_hashes_and_name_their_admin() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = d.path().join("admin-tokens.toml");
        let t1 = add_token(&path, "suzuki").unwrap_or_else(|e| panic!("{e}"));
        let t2 = add_token(&path, "tanaka").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t1.len(), 64);
        assert_ne!(t1, t2);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains(&t1) && text.contains(&crate::audit::line_hash(&t1)));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(add_token(&path, "suzuki").is_err(), "one token per name");
        assert!(add_token(&path, "bad name").is_err());

        let tokens = AdminTokens::new(Some(path));
        assert_eq!(tokens.caller(Some(&t2)), Caller::Admin("tanaka".into()));
        assert_eq!(tokens.caller(Some(&t1)), Caller::Admin("suzuki".into()));
        assert_eq!(tokens.caller(Some("0123")), Caller::BadToken);
        assert_eq!(tokens.caller(None), Caller::NoToken);
        assert_eq!(AdminTokens::new(None).caller(Some(&t1)), Caller::Disabled);
    }
}
