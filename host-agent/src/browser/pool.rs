//! One Unix user per concurrent session: a pool of accounts `PREFIX-1` … `PREFIX-N` (created by
//! `scripts/setup-browser-user.sh`). A session leases a free account for its whole life through
//! a lock file in [`LOCK_DIR`], host-wide, so two agents on one host never hand the same account
//! to two sessions. The session's directory, profile, downloads and X authority belong to that
//! account (0700), so no session can read another's files or use another's X server; at the end
//! every process of the account is killed, so nothing escapes with `setsid`.
//!
//! セッションごとに別の Unix ユーザーを割り当てます。終了時にはそのユーザーの全プロセスを終了します。

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::user::{BrowserUser, UserError};
use super::BrowserError;

/// Where leases are held (one lock file per account).
pub const LOCK_DIR: &str = "/run/tsuitate/browser-users";

/// The accounts of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPool {
    users: Vec<(String, BrowserUser)>,
    lock_dir: PathBuf,
}

impl UserPool {
    /// The accounts `prefix-1`, `prefix-2`, … in /etc/passwd.
    pub fn lookup(prefix: &str) -> Result<UserPool, UserError> {
        let text = fs::read_to_string("/etc/passwd")?;
        Ok(Self::from_passwd(&text, prefix, Path::new(LOCK_DIR)))
    }

    /// The accounts `prefix-N` (N a positive number) of a passwd-format text, by number; root
    /// is never part of a pool.
    pub fn from_passwd(text: &str, prefix: &str, lock_dir: &Path) -> UserPool {
        let mut users: Vec<(u32, String, BrowserUser)> = text
            .lines()
            .filter_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let n: u32 = name.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()?;
                let _password = f.next()?;
                let user = BrowserUser {
                    uid: f.next()?.parse().ok()?,
                    gid: f.next()?.parse().ok()?,
                };
                (n > 0 && user.uid != 0).then(|| (n, name.to_owned(), user))
            })
            .collect();
        users.sort_by_key(|u| u.0);
        UserPool {
            users: users.into_iter().map(|(_, n, u)| (n, u)).collect(),
            lock_dir: lock_dir.to_owned(),
        }
    }

    /// How many accounts the pool has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the pool has no account.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Lease the first account no session on this host holds.
    pub fn lease(&self) -> Result<Lease, BrowserError> {
        // A lock released a moment ago can still be held by a child process between its fork
        // and its exec (another session starting its browser holds a copy of every open file
        // until exec closes it): look again briefly before calling the pool exhausted.
        for _ in 0..4 {
            match self.try_lease()? {
                Some(lease) => return Ok(lease),
                None => std::thread::sleep(std::time::Duration::from_millis(25)),
            }
        }
        Err(BrowserError::Setup(
            "every browser user of the pool is in use / プールのブラウザ用ユーザーがすべて使用中です"
                .into(),
        ))
    }

    fn try_lease(&self) -> Result<Option<Lease>, BrowserError> {
        let setup = |what: &str, e: std::io::Error| BrowserError::Setup(format!("{what}: {e}"));
        fs::create_dir_all(&self.lock_dir).map_err(|e| setup("lock folder", e))?;
        fs::set_permissions(&self.lock_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| setup("lock folder", e))?;
        for (name, user) in &self.users {
            let path = self.lock_dir.join(format!("{name}.lock"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| setup("lock file", e))?;
            if file.try_lock().is_ok() {
                return Ok(Some(Lease {
                    name: name.clone(),
                    user: *user,
                    _lock: file,
                }));
            }
        }
        Ok(None)
    }
}

/// An account held by one session; released when dropped.
#[derive(Debug)]
pub struct Lease {
    /// The account's name.
    pub name: String,
    /// Its ids.
    pub user: BrowserUser,
    _lock: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        tsuitate-browser:x:990:990::/nonexistent:/usr/sbin/nologin\n\
        tsuitate-browser-2:x:992:992::/nonexistent:/usr/sbin/nologin\n\
        tsuitate-browser-1:x:991:991::/nonexistent:/usr/sbin/nologin\n\
        tsuitate-browser-x:x:993:993::/nonexistent:/usr/sbin/nologin\n\
        tsuitate-browser-3:x:0:0::/root:/bin/bash\n\
        other-1:x:1001:1001::/home/o:/bin/sh\n";

    #[test]
    fn the_pool_is_prefix_dash_number_without_root() {
        let p = UserPool::from_passwd(PASSWD, "tsuitate-browser", Path::new("/nonexistent"));
        let names: Vec<&str> = p.users.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tsuitate-browser-1", "tsuitate-browser-2"]);
        assert_eq!(p.users[0].1, BrowserUser { uid: 991, gid: 991 });
    }

    #[test]
    fn a_leased_account_is_not_leased_again_until_released() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = UserPool::from_passwd(PASSWD, "tsuitate-browser", &d.path().join("locks"));
        let a = p.lease().unwrap_or_else(|e| panic!("{e}"));
        let b = p.lease().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a.user, b.user, "two sessions, two accounts");
        assert!(p.lease().is_err(), "the pool is exhausted");
        let released = a.user;
        drop(a);
        let c = p.lease().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.user, released, "a released account is leased again");
        // Another pool object over the same lock folder (another agent) sees the same leases.
        let other = UserPool::from_passwd(PASSWD, "tsuitate-browser", &d.path().join("locks"));
        assert!(other.lease().is_err());
        drop(b);
    }
}
