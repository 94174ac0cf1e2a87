//! Who a service runs as, read from `/etc/passwd` and `/etc/group`, and whether that account
//! may read or write a file by its permission bits — so `check-config`, run as root, can warn
//! that the service user will not be able to open a file it needs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A local account: its uid, primary gid and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
}

/// Look `name` up in `/etc/passwd` and `/etc/group`.
pub fn lookup(name: &str) -> Option<Account> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    lookup_in(name, &passwd, &group)
}

/// Look `name` up in passwd- and group-format texts.
pub fn lookup_in(name: &str, passwd: &str, group: &str) -> Option<Account> {
    let (uid, gid) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })?;
    let groups = group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[3].split(',').any(|m| m == name))
                .then(|| f[2].parse().ok())
                .flatten()
        })
        .collect();
    Some(Account {
        name: name.to_owned(),
        uid,
        gid,
        groups,
    })
}

/// What an access needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read a file.
    Read,
    /// Write a file.
    Write,
    /// Enter a folder (search).
    Search,
    /// Create files in a folder.
    Create,
}

impl Account {
    /// Whether the permission bits of `path` give this account `access` (root may do anything;
    /// ACLs are not read).
    pub fn may(&self, path: &Path, access: Access) -> bool {
        let Ok(m) = std::fs::metadata(path) else {
            return false;
        };
        if self.uid == 0 {
            return true;
        }
        let want = match access {
            Access::Read => 4,
            Access::Write => 2,
            Access::Search => 1,
            Access::Create => 3,
        };
        let mode = m.mode();
        let bits = if m.uid() == self.uid {
            mode >> 6
        } else if m.gid() == self.gid || self.groups.contains(&m.gid()) {
            mode >> 3
        } else {
            mode
        } & 7;
        bits & want == want
    }

    /// Whether the account can reach `path` (search every folder above it) and then `access`
    /// it. `Err` names the first obstacle.
    pub fn reach(&self, path: &Path, access: Access) -> Result<(), String> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut dirs: Vec<&Path> = abs.ancestors().skip(1).collect();
        dirs.reverse();
        for d in dirs {
            if !self.may(d, Access::Search) {
                return Err(format!("{} cannot enter {}", self.name, d.display()));
            }
        }
        if self.may(&abs, access) {
            Ok(())
        } else {
            let what = match access {
                Access::Read => "read",
                Access::Write => "write",
                Access::Search => "enter",
                Access::Create => "create files in",
            };
            let owner = std::fs::metadata(&abs)
                .map(|m| {
                    format!(
                        " (owner uid {}, gid {}, mode {:o})",
                        m.uid(),
                        m.gid(),
                        m.mode() & 0o7777
                    )
                })
                .unwrap_or_default();
            Err(format!(
                "{} cannot {what} {}{owner}",
                self.name,
                abs.display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ntsuitate:x:990:985::/var/lib/tsuitate:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nadm:x:4:syslog,tsuitate\ntsuitate:x:985:\n";

    #[test]
    fn accounts_and_groups_are_read() {
        let a = lookup_in("tsuitate", PASSWD, GROUP).unwrap_or_else(|| panic!("no account"));
        assert_eq!((a.uid, a.gid, a.groups.clone()), (990, 985, vec![4]));
        assert!(lookup_in("nobody-here", PASSWD, GROUP).is_none());
    }

    #[test]
    fn permission_bits_decide() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tsuitate-unix-user-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let f = dir.join("secret");
        std::fs::write(&f, "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let m = std::fs::metadata(&f).unwrap_or_else(|e| panic!("{e}"));
        let stranger = Account {
            name: "stranger".into(),
            uid: m.uid() + 12345,
            gid: m.gid() + 12345,
            groups: vec![],
        };
        assert!(!stranger.may(&f, Access::Read));
        assert!(stranger.reach(&f, Access::Read).is_err());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(stranger.may(&f, Access::Read));
        assert!(!stranger.may(&f, Access::Write));
        let owner = Account {
            uid: m.uid(),
            ..stranger
        };
        assert!(owner.may(&f, Access::Write));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
