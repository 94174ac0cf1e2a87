//! The audit log: JSON lines with a SHA-256 hash chain (docs/gateway.md §Audit).
//!
//! Each line is one JSON object with `seq` (1, 2, …), `ts` (RFC 3339, UTC), `event`, the event
//! fields, and `prev`: the hex SHA-256 of the previous line's bytes (without its newline; 64
//! zeros for the first line). Editing, removing or reordering a line breaks the chain, which
//! `tsuitate-gateway audit verify FILE` reports. Keystroke and text content never appear:
//! input is recorded as counts only.
//!
//! Every append takes an exclusive lock on the file (`flock`), re-reads its tail and continues
//! the chain, so the gateway and the admin CLI can both append to the same file. The file is
//! created with mode 0600.
//!
//! A chain alone does not show that its end was cut off, or that it was rewritten from some
//! line on and recomputed. So the gateway sends **anchors** — the sequence number and hash of
//! the last line — to a second sink the operator chooses (a separate file, or syslog/journald)
//! every `audit_anchor_interval_s` and at shutdown; `audit verify --anchors FILE` then fails
//! when the log no longer has an anchored line as anchored. Events that could not be written
//! (full queue, failed write) are counted, marked in the log by an `audit_dropped` record when
//! writing works again, and make `/healthz` fail.
//!
//! With a key (`audit_hmac_key_file`), every line also ends with `"mac"`: the hex
//! HMAC-SHA256 of the line as it is without that field. Without the key nobody can write a line
//! that verifies, so a log rewritten from some line on (chain recomputed) fails
//! `audit verify --key`, which also requires the last line, and every line after the first keyed
//! one, to carry a MAC (an attacker cannot drop the MACs instead). Appending an unkeyed line to
//! a keyed log is refused.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Audit errors.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The log is keyed and no key was given.
    #[error("{path}: 監査ログは HMAC 鍵付きです。鍵ファイルを指定してください / the audit log is keyed (HMAC): give its key file")]
    Keyed { path: PathBuf },
    /// The chain is broken at a line.
    #[error("監査ログの改ざんまたは破損: {line} 行目 / audit log broken at line {line}: {msg}")]
    Broken { line: u64, msg: String },
}

/// Hex SHA-256 of a line.
pub fn line_hash(line: &str) -> String {
    hex(&Sha256::digest(line.as_bytes()))
}

/// The audit log's HMAC key (`audit_hmac_key_file`: at least 32 bytes, e.g.
/// `head -c 32 /dev/urandom`).
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// Shortest key accepted.
pub const KEY_MIN_BYTES: usize = 32;

impl AuditKey {
    /// A key of at least [`KEY_MIN_BYTES`] bytes.
    pub fn new(bytes: Vec<u8>) -> Option<AuditKey> {
        (bytes.len() >= KEY_MIN_BYTES).then_some(AuditKey(bytes))
    }

    /// Read the key file: all its bytes are the key, as they are (random bytes may end in
    /// what looks like a newline).
    pub fn load(path: &Path) -> Result<AuditKey, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        AuditKey::new(bytes).ok_or_else(|| {
            format!(
                "{}: 鍵が短すぎます ({KEY_MIN_BYTES} バイト以上) / the key must be at least {KEY_MIN_BYTES} bytes (head -c 32 /dev/urandom)",
                path.display()
            )
        })
    }

    /// HMAC-SHA256 of `data` under this key.
    pub fn mac_bytes(&self, data: &[&[u8]]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for d in data {
            m.update(d);
        }
        m.finalize().into_bytes().into()
    }

    fn mac(&self, body: &str) -> String {
        // HMAC accepts keys of any length.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(body.as_bytes());
        hex(&m.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A keyed line's end: `,"mac":"` + 64 hex digits + `"}`.
const MAC_FIELD: &str = ",\"mac\":\"";
const MAC_SUFFIX_LEN: usize = MAC_FIELD.len() + 64 + 2;

/// A keyed line split into the line without its MAC (what the MAC covers) and the MAC.
fn split_mac(line: &str) -> Option<(String, &str)> {
    let cut = line.len().checked_sub(MAC_SUFFIX_LEN)?;
    let tail = line.get(cut..)?;
    let mac = tail.strip_prefix(MAC_FIELD)?.strip_suffix("\"}")?;
    if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((format!("{}}}", &line[..cut]), mac))
}

/// Whether `line` carries a MAC.
pub fn is_keyed(line: &str) -> bool {
    split_mac(line).is_some()
}

/// RFC 3339 UTC timestamp with milliseconds.
pub use tsuitate_cli::time::rfc3339;

/// The chain state: what the next line continues from (sans-IO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Sequence number of the last line (0 when empty).
    pub seq: u64,
    /// Hash of the last line.
    pub prev: String,
    /// Whether the last line carries a MAC.
    pub keyed: bool,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            seq: 0,
            prev: GENESIS.to_owned(),
            keyed: false,
        }
    }
}

impl Chain {
    /// The chain state after `last_line` (the last line of an existing log).
    pub fn after(last_line: &str) -> Chain {
        let seq = serde_json::from_str::<Value>(last_line)
            .ok()
            .and_then(|v| v.get("seq").and_then(Value::as_u64))
            .unwrap_or(0);
        Chain {
            seq,
            prev: line_hash(last_line),
            keyed: is_keyed(last_line),
        }
    }

    /// Build the next line (without newline) for `event` (a JSON object with an `event`
    /// field) at time `ts`, with a MAC when there is a key, and advance.
    pub fn next_line(&mut self, ts: SystemTime, event: Value, key: Option<&AuditKey>) -> String {
        let mut map = match event {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("event".into(), other);
                m
            }
        };
        self.seq += 1;
        map.insert("seq".into(), Value::from(self.seq));
        map.insert("ts".into(), Value::from(rfc3339(ts)));
        map.insert("prev".into(), Value::from(self.prev.clone()));
        map.remove("mac");
        let mut line = Value::Object(map).to_string();
        if let Some(k) = key {
            let mac = k.mac(&line);
            line.pop();
            line.push_str(MAC_FIELD);
            line.push_str(&mac);
            line.push_str("\"}");
        }
        self.prev = line_hash(&line);
        self.keyed = key.is_some();
        line
    }
}

/// Check a whole log. Returns the number of lines.
pub fn verify(reader: impl BufRead) -> Result<u64, AuditError> {
    verify_keyed(reader, None)
}

/// Check a whole log; with `key`, also every line's MAC: from the first keyed line on every
/// line must carry a valid one, and the last line must be keyed. Returns the number of lines.
pub fn verify_keyed(reader: impl BufRead, key: Option<&AuditKey>) -> Result<u64, AuditError> {
    let mut chain = Chain::default();
    let mut n = 0u64;
    for line in reader.lines() {
        n += 1;
        let line = line.map_err(|e| AuditError::Broken {
            line: n,
            msg: e.to_string(),
        })?;
        let broken = |msg: &str| AuditError::Broken {
            line: n,
            msg: msg.to_owned(),
        };
        let v: Value = serde_json::from_str(&line).map_err(|_| broken("not JSON"))?;
        let prev = v.get("prev").and_then(Value::as_str);
        if prev != Some(chain.prev.as_str()) {
            return Err(broken("prev hash does not match the previous line"));
        }
        if v.get("seq").and_then(Value::as_u64) != Some(chain.seq + 1) {
            return Err(broken("seq is not consecutive"));
        }
        if let Some(k) = key {
            match split_mac(&line) {
                Some((body, mac)) if !constant_time_eq(k.mac(&body).as_bytes(), mac.as_bytes()) => {
                    return Err(broken(
                        "MAC does not match (the line was changed, or another key)",
                    ));
                }
                Some(_) => {}
                None if chain.keyed => {
                    return Err(broken("no MAC after keyed lines (MACs were removed)"))
                }
                None => {}
            }
        }
        chain.seq += 1;
        chain.prev = line_hash(&line);
        chain.keyed = is_keyed(&line);
    }
    if key.is_some() && !chain.keyed {
        let msg = if n == 0 {
            "the log is empty: a keyed log has at least the lines written with the key"
        } else {
            "the last line has no MAC: the log was not written with this key, or rewritten"
        };
        return Err(AuditError::Broken {
            line: n,
            msg: msg.into(),
        });
    }
    Ok(n)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verify the log at `path`.
pub fn verify_file(path: &Path) -> Result<u64, AuditError> {
    verify_file_keyed(path, None)
}

/// Verify the log at `path`, with its MACs when `key` is given.
pub fn verify_file_keyed(path: &Path, key: Option<&AuditKey>) -> Result<u64, AuditError> {
    let f = File::open(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    verify_keyed(BufReader::new(f), key)
}

/// Read the chain state from the end of an open log.
fn tail_chain(f: &mut File) -> std::io::Result<Chain> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Chain::default());
    }
    let mut window = 4096u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let trimmed = text.strip_suffix('\n').unwrap_or(&text);
        match trimmed.rfind('\n') {
            Some(i) => return Ok(Chain::after(&trimmed[i + 1..])),
            None if start == 0 => return Ok(Chain::after(trimmed)),
            None => window = window.saturating_mul(4),
        }
    }
}

/// Open the log for appending, creating it with mode 0600.
fn open_log(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

/// Append one event to the log at `path`, continuing its chain (with a MAC when `key` is given).
/// For the admin CLI and the gateway's writer thread. Returns the chain state after the new
/// line. A keyed log refuses a line without a MAC.
pub fn append(path: &Path, event: Value, key: Option<&AuditKey>) -> Result<Chain, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = open_log(path).map_err(io)?;
    // Held until `f` is dropped: a concurrent appender waits instead of forking the chain.
    f.lock().map_err(io)?;
    let mut chain = tail_chain(&mut f).map_err(io)?;
    if chain.keyed && key.is_none() {
        return Err(AuditError::Keyed {
            path: path.to_owned(),
        });
    }
    let mut line = chain.next_line(SystemTime::now(), event, key);
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io)?;
    f.sync_data().map_err(io)?;
    Ok(chain)
}

/// Where anchors go (`audit_anchor`): a file of JSON lines, or the local syslog (`/dev/log`,
/// which journald reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorSink {
    /// Append `{"ts","log","seq","head"}` lines to this file.
    File(PathBuf),
    /// Send `tsuitate-gateway: audit anchor log=… seq=N head=H` to syslog (facility authpriv).
    Syslog,
}

impl AnchorSink {
    /// `"syslog"`, or a file path.
    pub fn parse(s: &str) -> AnchorSink {
        if s == "syslog" {
            AnchorSink::Syslog
        } else {
            AnchorSink::File(PathBuf::from(s))
        }
    }

    /// Record that `log` had `chain` as its last line.
    pub fn send(&self, log: &Path, chain: &Chain) -> std::io::Result<()> {
        let ts = rfc3339(SystemTime::now());
        match self {
            AnchorSink::File(p) => {
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(p)?;
                let line = serde_json::json!({
                    "ts": ts,
                    "log": log.display().to_string(),
                    "seq": chain.seq,
                    "head": chain.prev,
                });
                writeln!(f, "{line}")?;
                f.sync_data()
            }
            AnchorSink::Syslog => {
                // <facility authpriv (10) * 8 + severity notice (5)>
                let msg = format!(
                    "<85>tsuitate-gateway: audit anchor log={} seq={} head={}",
                    log.display(),
                    chain.seq,
                    chain.prev
                );
                let s = std::os::unix::net::UnixDatagram::unbound()?;
                s.send_to(msg.as_bytes(), "/dev/log").map(|_| ())
            }
        }
    }
}

/// Anchors from an anchor file (JSON lines as [`AnchorSink::File`] writes them) or from
/// `seq=N head=H` text (syslog or journal output), for the log at `log` (lines naming
/// another log are skipped).
pub fn read_anchors(text: &str, log: &Path) -> Vec<(u64, String)> {
    let name = log.display().to_string();
    text.lines()
        .filter_map(|l| {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                if v["log"]
                    .as_str()
                    .is_some_and(|n| n != name && !name.ends_with(n) && !n.ends_with(&name))
                {
                    return None;
                }
                return Some((v["seq"].as_u64()?, v["head"].as_str()?.to_owned()));
            }
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k).map(str::to_owned))
            };
            Some((field("seq=")?.parse().ok()?, field("head=")?))
        })
        .collect()
}

/// Verify the log at `path` and that it still holds every anchored line as it was anchored:
/// a log cut short of an anchor, or rewritten before it, fails. Returns the number of lines.
pub fn verify_with_anchors(path: &Path, anchors: &[(u64, String)]) -> Result<u64, AuditError> {
    verify_with_anchors_keyed(path, anchors, None)
}

/// [`verify_with_anchors`], with the lines' MACs checked when `key` is given.
pub fn verify_with_anchors_keyed(
    path: &Path,
    anchors: &[(u64, String)],
    key: Option<&AuditKey>,
) -> Result<u64, AuditError> {
    let n = verify_file_keyed(path, key)?;
    let f = File::open(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut hashes = std::collections::HashMap::new();
    let wanted: std::collections::HashSet<u64> = anchors.iter().map(|(s, _)| *s).collect();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let seq = i as u64 + 1;
        if wanted.contains(&seq) {
            let line = line.map_err(|e| AuditError::Broken {
                line: seq,
                msg: e.to_string(),
            })?;
            hashes.insert(seq, line_hash(&line));
        }
    }
    for (seq, head) in anchors {
        match hashes.get(seq) {
            None => {
                return Err(AuditError::Broken {
                    line: *seq,
                    msg: format!(
                        "the log ends at line {n}, but an anchor records line {seq}: lines were removed from its end"
                    ),
                })
            }
            Some(h) if h != head => {
                return Err(AuditError::Broken {
                    line: *seq,
                    msg: "the line differs from the one anchored: the log was rewritten".into(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(n)
}

enum Command {
    Event(Value),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The gateway's audit log: events go through a bounded queue to a writer thread, so no async
/// task blocks on the disk.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: SyncSender<Command>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit command")
    }
}

impl AuditLog {
    /// Open (create) the log at `path` and start the writer thread, sending anchors to
    /// `anchor` every `interval` (and when the log closes).
    pub fn open(
        path: &Path,
        anchor: Option<AnchorSink>,
        interval: std::time::Duration,
        key: Option<AuditKey>,
    ) -> Result<AuditLog, AuditError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        // Fail before binding if the file cannot be opened for append.
        let f = open_log(path).map_err(io)?;
        let mode = f.metadata().map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "audit log readable by others: set to 0600");
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        let (tx, rx) = sync_channel(4096);
        let dropped: std::sync::Arc<std::sync::atomic::AtomicU64> = Default::default();
        let w = Writer {
            path: path.to_owned(),
            key,
            anchor,
            interval,
            dropped: dropped.clone(),
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|source| AuditError::Io {
                path: PathBuf::from("audit-writer thread"),
                source,
            })?;
        Ok(AuditLog { tx, dropped })
    }

    /// Queue an event. Never blocks; if the queue is full the event is counted as dropped
    /// and logged as an error.
    pub fn record(&self, event: Value) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Command::Event(event)) {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!("audit queue full: event dropped");
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wait until every event queued so far is on disk, and anchored when anchors are on.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx2 = self.tx.clone();
        let sent = tokio::task::spawn_blocking(move || tx2.send(Command::Flush(tx))).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = rx.await;
        }
    }
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    key: Option<AuditKey>,
    anchor: Option<AnchorSink>,
    interval: std::time::Duration,
    /// Shared with [`AuditLog`]: events that never reached the file.
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    fn run(self, rx: Receiver<Command>) {
        use std::sync::atomic::Ordering::Relaxed;
        use std::sync::mpsc::RecvTimeoutError;
        let mut reported = 0u64;
        let mut head: Option<Chain> = None;
        let mut anchored_seq = 0u64;
        let mut next_anchor = std::time::Instant::now() + self.interval;
        loop {
            let wait = next_anchor.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Command::Event(ev)) => match append(&self.path, ev, self.key.as_ref()) {
                    Ok(c) => {
                        head = Some(c);
                        // Mark a gap once writing works again.
                        let dropped = self.dropped.load(Relaxed);
                        if dropped > reported {
                            let gap = serde_json::json!({
                                "event": "audit_dropped",
                                "count": dropped - reported,
                                "total": dropped,
                            });
                            if let Ok(c) = append(&self.path, gap, self.key.as_ref()) {
                                head = Some(c);
                                reported = dropped;
                            }
                        }
                    }
                    Err(e) => {
                        self.dropped.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, "audit write failed: event dropped");
                    }
                },
                Ok(Command::Flush(done)) => {
                    // Everything before is on disk: anchor it (at shutdown, the last anchor).
                    self.anchor(head.as_ref(), &mut anchored_seq);
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    next_anchor = std::time::Instant::now() + self.interval;
                    self.anchor(head.as_ref(), &mut anchored_seq);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.anchor(head.as_ref(), &mut anchored_seq);
                    return;
                }
            }
        }
    }

    /// Send the chain head to the anchor sink, when there is a sink and a new head.
    fn anchor(&self, head: Option<&Chain>, anchored_seq: &mut u64) {
        let (Some(sink), Some(head)) = (&self.anchor, head) else {
            return;
        };
        if head.seq == *anchored_seq {
            return;
        }
        match sink.send(&self.path, head) {
            Ok(()) => *anchored_seq = head.seq,
            Err(e) => tracing::error!(error = %e, "audit anchor could not be sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_log_is_private_and_anchors_catch_a_cut_or_rewritten_end() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let anchors = dir.path().join("anchors.jsonl");
        let sink = AnchorSink::parse(anchors.to_str().unwrap());
        let mut heads = Vec::new();
        for i in 0..6 {
            let c = append(
                &p,
                json!({"event": "login_success", "user": format!("u{i}")}),
                None,
            )
            .unwrap();
            if i == 2 || i == 5 {
                sink.send(&p, &c).unwrap();
                heads.push(c);
            }
        }
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "created readable by its owner only");
        let found = read_anchors(&std::fs::read_to_string(&anchors).unwrap(), &p);
        assert_eq!(
            found,
            vec![(3, heads[0].prev.clone()), (6, heads[1].prev.clone())]
        );
        assert_eq!(verify_with_anchors(&p, &found).unwrap(), 6);

        // The last two lines removed: the chain alone still verifies, the anchors do not.
        let text = std::fs::read_to_string(&p).unwrap();
        let kept: Vec<&str> = text.lines().take(4).collect();
        std::fs::write(&p, format!("{}\n", kept.join("\n"))).unwrap();
        assert_eq!(verify_file(&p).unwrap(), 4);
        match verify_with_anchors(&p, &found) {
            Err(AuditError::Broken { line: 6, msg }) => assert!(msg.contains("removed"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // Rewritten from line 2 on, chain recomputed: the anchor of line 3 catches it.
        std::fs::remove_file(&p).unwrap();
        append(&p, json!({"event": "login_success", "user": "u0"}), None).unwrap();
        for i in 1..6 {
            append(
                &p,
                json!({"event": "login_success", "user": format!("forged{i}")}),
                None,
            )
            .unwrap();
        }
        assert_eq!(verify_file(&p).unwrap(), 6);
        match verify_with_anchors(&p, &found) {
            Err(AuditError::Broken { line: 3, msg }) => assert!(msg.contains("rewritten"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // Anchors read back from syslog/journal text too.
        let journal = format!(
            "Nov 26 23:40:01 gw tsuitate-gateway: audit anchor log={} seq=3 head={}\n",
            p.display(),
            heads[0].prev
        );
        assert_eq!(read_anchors(&journal, &p), vec![(3, heads[0].prev.clone())]);
    }

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        for i in 0..5 {
            append(
                &p,
                json!({"event": "login_success", "user": format!("u{i}")}),
                None,
            )
            .unwrap();
        }
        assert_eq!(verify_file(&p).unwrap(), 5);
        let text = std::fs::read_to_string(&p).unwrap();
        let tampered = text.replacen("u2", "uX", 1);
        std::fs::write(&p, &tampered).unwrap();
        match verify_file(&p) {
            Err(AuditError::Broken { line, .. }) => assert_eq!(line, 4),
            other => panic!("{other:?}"),
        }
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(1);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        assert!(matches!(
            verify_file(&p),
            Err(AuditError::Broken { line: 2, .. })
        ));
    }

    fn key(b: u8) -> AuditKey {
        AuditKey::new(vec![b; 32]).unwrap()
    }

    #[test]
    fn a_keyed_log_cannot_be_rewritten_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        // Two lines from before the key was configured, then keyed lines.
        append(&p, json!({"event": "gateway_started"}), None).unwrap();
        append(&p, json!({"event": "login_success", "user": "u0"}), None).unwrap();
        for i in 1..5 {
            let c = append(
                &p,
                json!({"event": "login_success", "user": format!("u{i}")}),
                Some(&key(7)),
            )
            .unwrap();
            assert!(c.keyed);
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.lines().skip(2).all(is_keyed), "{text}");
        assert!(text.lines().take(2).all(|l| !is_keyed(l)));
        // Every line is still valid JSON with its fields.
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert!(v["event"].is_string());
        }
        assert_eq!(verify_file(&p).unwrap(), 6);
        assert_eq!(verify_file_keyed(&p, Some(&key(7))).unwrap(), 6);
        match verify_file_keyed(&p, Some(&key(8))) {
            Err(AuditError::Broken { line: 3, msg }) => assert!(msg.contains("MAC"), "{msg}"),
            other => panic!("another key: {other:?}"),
        }
        // Without the key no line can be added to it...
        assert!(matches!(
            append(&p, json!({"event": "forged"}), None),
            Err(AuditError::Keyed { .. })
        ));
        // ... and a rewrite from line 4 with the chain recomputed (MACs dropped, or copied
        // from the old lines) passes the plain chain check but not the keyed one.
        let lines: Vec<&str> = text.lines().collect();
        let mut forged = Chain::after(lines[2]);
        let mut out: Vec<String> = lines[..3].iter().map(|l| l.to_string()).collect();
        for i in 4..=6 {
            out.push(forged.next_line(
                SystemTime::now(),
                json!({"event": "login_success", "user": format!("forged{i}")}),
                None,
            ));
        }
        std::fs::write(&p, out.join("\n") + "\n").unwrap();
        assert_eq!(verify_file(&p).unwrap(), 6);
        match verify_file_keyed(&p, Some(&key(7))) {
            Err(AuditError::Broken { line: 4, msg }) => {
                assert!(msg.contains("no MAC"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        let copied: Vec<String> = out
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i < 3 {
                    return l.clone();
                }
                let (_, mac) = split_mac(lines[i]).unwrap();
                format!("{},\"mac\":\"{mac}\"}}", &l[..l.len() - 1])
            })
            .collect();
        // (Chain recomputed over the copied-MAC lines, so only the MACs can tell.)
        let mut c = Chain::after(lines[2]);
        let mut rechained: Vec<String> = copied[..3].to_vec();
        for l in &copied[3..] {
            let mut v: Map<String, Value> = serde_json::from_str(l).unwrap();
            v.insert("prev".into(), Value::from(c.prev.clone()));
            let mac = v.remove("mac").unwrap();
            let body = Value::Object(v).to_string();
            let line = format!("{},\"mac\":{mac}}}", &body[..body.len() - 1]);
            c.prev = line_hash(&line);
            c.seq += 1;
            rechained.push(line);
        }
        std::fs::write(&p, rechained.join("\n") + "\n").unwrap();
        assert_eq!(verify_file(&p).unwrap(), 6);
        match verify_file_keyed(&p, Some(&key(7))) {
            Err(AuditError::Broken { line: 4, msg }) => {
                assert!(msg.contains("MAC does not match"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        // An emptied log fails with the key.
        std::fs::write(&p, "").unwrap();
        assert!(matches!(
            verify_file_keyed(&p, Some(&key(7))),
            Err(AuditError::Broken { line: 0, .. })
        ));
        // A whole log written without the key fails too (its last line has no MAC).
        std::fs::write(&p, lines[..2].join("\n") + "\n").unwrap();
        match verify_file_keyed(&p, Some(&key(7))) {
            Err(AuditError::Broken { line: 2, msg }) => assert!(msg.contains("last line"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // Keys shorter than 32 bytes are refused.
        assert!(AuditKey::new(vec![1; 31]).is_none());
        let kf = dir.path().join("audit.key");
        std::fs::write(&kf, [9u8; 32]).unwrap();
        assert!(AuditKey::load(&kf).is_ok());
        // All bytes count, a final 0x0a included.
        let mut with_lf = vec![3u8; 31];
        with_lf.push(b'\n');
        std::fs::write(&kf, &with_lf).unwrap();
        assert!(AuditKey::load(&kf).is_ok());
        std::fs::write(&kf, "short\n").unwrap();
        assert!(AuditKey::load(&kf).unwrap_err().contains("32"));
    }

    #[test]
    fn append_continues_a_chain_after_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        append(&p, json!({"event": "x", "pad": "a".repeat(10_000)}), None).unwrap();
        append(&p, json!({"event": "y"}), None).unwrap();
        assert_eq!(verify_file(&p).unwrap(), 2);
    }

    #[test]
    fn concurrent_appenders_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        std::thread::scope(|s| {
            for t in 0..4 {
                let p = &p;
                s.spawn(move || {
                    for i in 0..25 {
                        append(p, json!({"event": "admin_action", "t": t, "i": i}), None).unwrap();
                    }
                });
            }
        });
        assert_eq!(verify_file(&p).unwrap(), 100);
    }
}
