//! The unprivileged account Chromium (and Xvfb) run as.
//!
//! Chromium must never run as root (its sandbox refuses, and `--no-sandbox` is never used).
//! When the agent runs as root it starts both children with this user's uid/gid through
//! `std::os::unix::process::CommandExt::{uid, gid}`, which also clears supplementary groups —
//! no `unsafe` `pre_exec` is needed.

use std::path::Path;

/// A resolved account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Why an account could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No such user in /etc/passwd.
    #[error("user {0:?} not found in /etc/passwd / ユーザー {0:?} が /etc/passwd にありません")]
    NotFound(String),
    /// The account is root, which the browser must never run as.
    #[error("browser_user must not be root / browser_user に root は指定できません")]
    Root,
    /// /etc/passwd could not be read.
    #[error("reading /etc/passwd: {0}")]
    Io(#[from] std::io::Error),
}

impl BrowserUser {
    /// Resolve `name` (a user name, or `uid:gid` in numbers) from /etc/passwd.
    pub fn lookup(name: &str) -> Result<BrowserUser, UserError> {
        Self::lookup_in(name, Path::new("/etc/passwd"))
    }

    /// Resolve `name` from a passwd-format file.
    pub fn lookup_in(name: &str, passwd: &Path) -> Result<BrowserUser, UserError> {
        let user = match parse_numeric(name) {
            Some(u) => u,
            None => {
                let text = std::fs::read_to_string(passwd)?;
                find_in_passwd(&text, name).ok_or_else(|| UserError::NotFound(name.into()))?
            }
        };
        if user.uid == 0 {
            return Err(UserError::Root);
        }
        Ok(user)
    }
}

fn parse_numeric(name: &str) -> Option<BrowserUser> {
    let (u, g) = name.split_once(':')?;
    Some(BrowserUser {
        uid: u.parse().ok()?,
        gid: g.parse().ok()?,
    })
}

fn find_in_passwd(text: &str, name: &str) -> Option<BrowserUser> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name {
            return None;
        }
        let _password = f.next()?;
        Some(BrowserUser {
            uid: f.next()?.parse().ok()?,
            gid: f.next()?.parse().ok()?,
        })
    })
}

/// Whether this process runs as root (then a `browser_user` is required).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_user_and_rejects_root() {
        let text =
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1001:1002::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            find_in_passwd(text, "web"),
            Some(BrowserUser {
                uid: 1001,
                gid: 1002
            })
        );
        assert_eq!(find_in_passwd(text, "nobody"), None);
        assert!(matches!(BrowserUser::lookup("0:0"), Err(UserError::Root)));
        assert_eq!(
            BrowserUser::lookup("1234:99").ok(),
            Some(BrowserUser { uid: 1234, gid: 99 })
        );
    }
}
