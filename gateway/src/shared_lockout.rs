//! Lockout shared by several gateways (`[lockout] shared_store`): failure counts and locks kept
//! in a Redis or Valkey server on the admin network, so a password guesser does not get N× the
//! attempts by spreading over N gateways (docs/decisions.md D25).
//!
//! Keys (each with its own expiry, so the store needs no cleaning):
//! `tsuitate:lockout:fail:{user|addr}:<key>` counts failures within `window_s`, and
//! `tsuitate:lockout:lock:{user|addr}:<key>` exists while the user or address is locked;
//! `tsuitate:start:<owner>` while one gateway starts a new browser for that session owner
//! (`one_session_per_user` across gateways, docs/decisions.md D30). Every
//! command has a short deadline; a store that does not answer is reported to the caller, which
//! keeps its own per-gateway lockout meanwhile (and always), and audits the outage. The protocol
//! is RESP2 over one TCP connection, reconnected when it fails.

use std::net::IpAddr;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::config::LockoutConfig;
use crate::lockout::address_key;

/// Deadline of one command, connecting included.
const DEADLINE: Duration = Duration::from_millis(500);
/// After a failure, how long the store is not asked (so a store that does not answer slows no
/// login by more than one deadline per interval).
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest reply line or bulk string read (the replies here are tiny).
const MAX_REPLY: usize = 512;

/// Why the store could not be used.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server answered something unexpected.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// It failed a moment ago; not asked again yet.
    #[error("failed recently; asked again in a few seconds")]
    Resting,
}

/// One RESP2 reply.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
}

/// The shared lockout store.
#[derive(Debug)]
pub struct SharedLockout {
    addr: String,
    cfg: LockoutConfig,
    conn: Mutex<Option<BufStream<TcpStream>>>,
    /// Not asked before this instant (after a failure).
    rest_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl SharedLockout {
    /// A store at `addr` (`host:port`) with the lockout's limits.
    pub fn new(addr: String, cfg: LockoutConfig) -> SharedLockout {
        SharedLockout {
            addr,
            cfg,
            conn: Mutex::new(None),
            rest_until: std::sync::Mutex::new(None),
        }
    }

    /// `Some(retry_after)` while the user or the address is locked in the store.
    pub async fn locked(&self, user: &str, ip: IpAddr) -> Result<Option<Duration>, StoreError> {
        let mut longest = None;
        for key in [lock_key("user", user), lock_key("addr", &ip_key(ip))] {
            match self.command(&[b"PTTL", key.as_bytes()]).await? {
                Reply::Int(ms) if ms > 0 => {
                    longest = longest.max(Some(Duration::from_millis(ms.unsigned_abs())));
                }
                Reply::Int(_) => {}
                other => return Err(StoreError::Protocol(format!("{other:?}"))),
            }
        }
        Ok(longest)
    }

    /// Count a failed login for the user and the address; lock either at its limit. One script
    /// per key, so a count never lives without its expiry (the store runs it atomically).
    pub async fn fail(&self, user: &str, ip: IpAddr) -> Result<(), StoreError> {
        const SCRIPT: &[u8] = b"local n = redis.call('INCR', KEYS[1]) \
            if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
            if n >= tonumber(ARGV[2]) then \
              redis.call('SET', KEYS[2], '1', 'PX', ARGV[3]) redis.call('DEL', KEYS[1]) end \
            return n";
        let window = millis(self.cfg.window);
        let lockout = millis(self.cfg.lockout);
        let addr = ip_key(ip);
        for (kind, key, max) in [
            ("user", user, self.cfg.max_failures_per_user),
            ("addr", addr.as_str(), self.cfg.max_failures_per_ip),
        ] {
            let fail = format!("tsuitate:lockout:fail:{kind}:{key}");
            let lock = lock_key(kind, key);
            let max = max.to_string();
            let args: [&[u8]; 8] = [
                b"EVAL",
                SCRIPT,
                b"2",
                fail.as_bytes(),
                lock.as_bytes(),
                window.as_bytes(),
                max.as_bytes(),
                lockout.as_bytes(),
            ];
            match self.command(&args).await? {
                Reply::Int(_) => {}
                other => return Err(StoreError::Protocol(format!("{other:?}"))),
            }
        }
        Ok(())
    }

    /// A successful login: the user's failures are forgotten.
    pub async fn succeed(&self, user: &str) -> Result<(), StoreError> {
        let fail = format!("tsuitate:lockout:fail:user:{user}");
        match self.command(&[b"DEL", fail.as_bytes()]).await? {
            Reply::Int(_) => Ok(()),
            other => Err(StoreError::Protocol(format!("{other:?}"))),
        }
    }

    /// Claim the start of a new browser for session owner `owner` (hex) for at most `ttl`:
    /// `true` when this gateway now holds the claim, `false` while another gateway does. Two
    /// gateways checking one user's password at the same instant thus never both start a
    /// browser for them (`one_session_per_user`): the second waits and takes over the first's.
    pub async fn claim_start(
        &self,
        owner: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = start_key(owner);
        let ttl = millis(ttl);
        let args: [&[u8]; 6] = [
            b"SET",
            key.as_bytes(),
            token.as_bytes(),
            b"NX",
            b"PX",
            ttl.as_bytes(),
        ];
        match self.command(&args).await? {
            Reply::Simple(s) if s == "OK" => Ok(true),
            Reply::Bulk(None) => Ok(false),
            other => Err(StoreError::Protocol(format!("{other:?}"))),
        }
    }

    /// Give up a claim of [`claim_start`](Self::claim_start) (only this gateway's own: a
    /// claim that expired and was taken by another gateway stays).
    pub async fn release_start(&self, owner: &str, token: &str) -> Result<(), StoreError> {
        const SCRIPT: &[u8] = b"if redis.call('GET', KEYS[1]) == ARGV[1] then \
              return redis.call('DEL', KEYS[1]) end return 0";
        let key = start_key(owner);
        let args: [&[u8]; 5] = [b"EVAL", SCRIPT, b"1", key.as_bytes(), token.as_bytes()];
        match self.command(&args).await? {
            Reply::Int(_) => Ok(()),
            other => Err(StoreError::Protocol(format!("{other:?}"))),
        }
    }

    async fn command(&self, args: &[&[u8]]) -> Result<Reply, StoreError> {
        let resting = || {
            self.rest_until
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|t| tokio::time::Instant::now() < t)
        };
        if resting() {
            return Err(StoreError::Resting);
        }
        let deadline = tokio::time::Instant::now() + DEADLINE;
        // Waiting for the connection counts against the deadline too.
        let Ok(mut conn) = tokio::time::timeout_at(deadline, self.conn.lock()).await else {
            return Err(StoreError::Timeout(DEADLINE));
        };
        // Another login may have found the store gone while this one waited.
        if resting() {
            return Err(StoreError::Resting);
        }
        let result = tokio::time::timeout_at(deadline, async {
            if conn.is_none() {
                let stream = TcpStream::connect(&self.addr).await?;
                stream.set_nodelay(true)?;
                *conn = Some(BufStream::new(stream));
            }
            let Some(c) = conn.as_mut() else {
                return Err(StoreError::Protocol("no connection".into()));
            };
            c.write_all(&encode(args)).await?;
            c.flush().await?;
            read_reply(c).await
        })
        .await
        .unwrap_or(Err(StoreError::Timeout(DEADLINE)));
        let result = match result {
            Ok(Reply::Simple(s)) if s.starts_with('-') => Err(StoreError::Protocol(s)),
            r => r,
        };
        let mut rest = self.rest_until.lock().unwrap_or_else(|p| p.into_inner());
        if result.is_err() {
            // Start afresh later (the reply stream may be out of step).
            *conn = None;
            *rest = Some(tokio::time::Instant::now() + RETRY_AFTER);
        } else {
            *rest = None;
        }
        result
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// The claim of a new browser for a session owner (the owner digest, not the user name).
fn start_key(owner: &str) -> String {
    format!("tsuitate:start:{owner}")
}

fn lock_key(kind: &str, key: &str) -> String {
    format!("tsuitate:lockout:lock:{kind}:{key}")
}

/// The address as the lockout counts it (IPv6 by /64).
fn ip_key(ip: IpAddr) -> String {
    address_key(ip).to_string()
}

/// A RESP2 array of bulk strings.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_line(c: &mut BufStream<TcpStream>) -> Result<String, StoreError> {
    let mut line = Vec::new();
    let n = (&mut *c)
        .take(MAX_REPLY as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return Err(StoreError::Protocol("reply cut short".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| StoreError::Protocol("not text".into()))
}

async fn read_reply(c: &mut BufStream<TcpStream>) -> Result<Reply, StoreError> {
    let line = read_line(c).await?;
    let (kind, rest) = line.split_at_checked(1).unwrap_or(("", ""));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Simple(line.clone())),
        ":" => rest
            .parse()
            .map(Reply::Int)
            .map_err(|_| StoreError::Protocol(line.clone())),
        "$" => {
            let len: i64 = rest
                .parse()
                .map_err(|_| StoreError::Protocol(line.clone()))?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_REPLY)
                .ok_or_else(|| StoreError::Protocol(line.clone()))?;
            let mut buf = vec![0; len + 2];
            c.read_exact(&mut buf).await?;
            if !buf.ends_with(b"\r\n") {
                return Err(StoreError::Protocol("bulk string without CRLF".into()));
            }
            buf.truncate(len);
            Ok(Reply::Bulk(Some(buf)))
        }
        _ => Err(StoreError::Protocol(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(
            encode(&[b"INCR", b"k"]),
            b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n".to_vec()
        );
    }
}
