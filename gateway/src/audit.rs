//! The audit log: JSON lines with a SHA-256 hash chain (docs/gateway.md §Audit).
//!
//! Each line is one JSON object with `seq` (1, 2, …), `ts` (RFC 3339, UTC), `event`, the event
//! fields, and `prev`: the hex SHA-256 of the previous line's bytes (without its newline; 64
//! zeros for the first line). Editing, removing or reordering a line breaks the chain, which
//! `tsuitate-gateway audit verify FILE` reports. Keystroke and text content never appear:
//! input is recorded as counts only.
//!
//! Every append takes an exclusive lock on the file (`flock`), re-reads its tail and continues
//! the chain, so the gateway and the admin CLI can both append to the same file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

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
    /// The chain is broken at a line.
    #[error("監査ログの改ざんまたは破損: {line} 行目 / audit log broken at line {line}: {msg}")]
    Broken { line: u64, msg: String },
}

/// Hex SHA-256 of a line.
pub fn line_hash(line: &str) -> String {
    let d = Sha256::digest(line.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
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
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            seq: 0,
            prev: GENESIS.to_owned(),
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
        }
    }

    /// Build the next line (without newline) for `event` (a JSON object with an `event`
    /// field) at time `ts`, and advance.
    pub fn next_line(&mut self, ts: SystemTime, event: Value) -> String {
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
        let line = Value::Object(map).to_string();
        self.prev = line_hash(&line);
        line
    }
}

/// Check a whole log. Returns the number of lines.
pub fn verify(reader: impl BufRead) -> Result<u64, AuditError> {
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
        chain.seq += 1;
        chain.prev = line_hash(&line);
    }
    Ok(n)
}

/// Verify the log at `path`.
pub fn verify_file(path: &Path) -> Result<u64, AuditError> {
    let f = File::open(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    verify(BufReader::new(f))
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

/// Append one event to the log at `path`, continuing its chain. For the admin CLI and the
/// gateway's writer thread.
pub fn append(path: &Path, event: Value) -> Result<(), AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io)?;
    // Held until `f` is dropped: a concurrent appender waits instead of forking the chain.
    f.lock().map_err(io)?;
    let mut chain = tail_chain(&mut f).map_err(io)?;
    let mut line = chain.next_line(SystemTime::now(), event);
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io)?;
    f.sync_data().map_err(io)
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
    /// Open (create) the log at `path` and start the writer thread.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        // Fail before binding if the file cannot be opened for append.
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|source| AuditError::Io {
                path: path.to_owned(),
                source,
            })?;
        let (tx, rx) = sync_channel(4096);
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(&path, rx))
            .map_err(|source| AuditError::Io {
                path: PathBuf::from("audit-writer thread"),
                source,
            })?;
        Ok(AuditLog {
            tx,
            dropped: Default::default(),
        })
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

    /// Wait until every event queued so far is on disk.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx2 = self.tx.clone();
        let sent = tokio::task::spawn_blocking(move || tx2.send(Command::Flush(tx))).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = rx.await;
        }
    }
}

fn writer(path: &Path, rx: Receiver<Command>) {
    while let Ok(cmd) = rx.recv() {
        match cmd {
            Command::Event(ev) => {
                if let Err(e) = append(path, ev) {
                    tracing::error!(error = %e, "audit write failed");
                }
            }
            Command::Flush(done) => {
                let _ = done.send(());
            }
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
    fn chain_verifies_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        for i in 0..5 {
            append(
                &p,
                json!({"event": "login_success", "user": format!("u{i}")}),
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

    #[test]
    fn append_continues_a_chain_after_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        append(&p, json!({"event": "x", "pad": "a".repeat(10_000)})).unwrap();
        append(&p, json!({"event": "y"})).unwrap();
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
                        append(p, json!({"event": "admin_action", "t": t, "i": i})).unwrap();
                    }
                });
            }
        });
        assert_eq!(verify_file(&p).unwrap(), 100);
    }
}
