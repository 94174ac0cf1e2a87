//! The embedded user store: a TOML (or JSON) file of argon2id PHC hashes (docs/gateway.md §Users).
//!
//! ```toml
//! [users.yamada]
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$...$..."
//! disabled = false
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// argon2id PHC string.
    pub hash: String,
    /// A disabled user cannot log in.
    #[serde(default)]
    pub disabled: bool,
    /// When the password was last set (RFC 3339, UTC); absent in files written before it was
    /// recorded. The self-check warns about old passwords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_set: Option<String>,
}

/// The users file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// Users by name.
    #[serde(default)]
    pub users: BTreeMap<String, UserEntry>,
}

/// Errors of the user store.
#[derive(Debug, Error)]
pub enum UsersError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    /// The user name is not acceptable.
    #[error("ユーザー名 {0:?} は使えません (1〜64バイト、制御文字・空白なし) / invalid user name (1-64 bytes, no control characters or spaces)")]
    BadName(String),
    /// The user does not exist.
    #[error("ユーザー {0:?} は存在しません / no such user")]
    NoSuchUser(String),
    /// The user already exists.
    #[error("ユーザー {0:?} はすでに存在します / user already exists")]
    Exists(String),
    /// The password is not acceptable.
    #[error("パスワードは8〜255バイトにしてください / the password must be 8-255 bytes")]
    BadPassword,
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
}

/// Whether `name` is an acceptable user name.
pub fn user_name_valid(name: &str) -> bool {
    (1..=tsuitate_protocol::MAX_USER_BYTES).contains(&name.len())
        && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

/// Random bytes from the ring provider.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS RNG failing is not recoverable in any useful way; fall back to the clock so we
    // never panic, and the salt is still unique per call in practice.
    if tsuitate_transport::tls::provider()
        .secure_random
        .fill(&mut buf)
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8;
        }
    }
    buf
}

/// Hash a password as an argon2id PHC string with the given cost (`Params::DEFAULT` in
/// production; tests may use a cheaper one).
pub fn hash_password(password: &str, params: Params) -> Result<String, UsersError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| UsersError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// Verify `password` against a PHC string. A malformed hash never matches.
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Give the new file `f` the owner of the file it replaces at `path` or, for a new file, of
/// the folder it goes into. Only root can give a file away, so only a file made by root
/// changes hands.
fn keep_owner(f: &std::fs::File, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let want = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::metadata(dir)?
        }
    };
    let have = f.metadata()?;
    if have.uid() == 0 && (have.uid(), have.gid()) != (want.uid(), want.gid()) {
        std::os::unix::fs::fchown(f, Some(want.uid()), Some(want.gid()))?;
    }
    Ok(())
}

impl UsersFile {
    /// Load a users file; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<UsersFile, UsersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UsersFile::default()),
            Err(source) => {
                return Err(UsersError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let parsed = if is_json(path) {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|msg| UsersError::Parse {
            path: path.to_owned(),
            msg,
        })
    }

    /// Write the file atomically (temporary file + rename), readable by the owner only. The
    /// owner stays who it was (root running `user add` on the service user's file must not take
    /// it away from the service); a new file belongs to its folder's owner.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = if is_json(path) {
            serde_json::to_string_pretty(self).map_err(|e| e.to_string())
        } else {
            toml::to_string(self).map_err(|e| e.to_string())
        }
        .map_err(|msg| UsersError::Parse {
            path: path.to_owned(),
            msg,
        })?;
        let tmp = path.with_extension("tmp");
        let io = |source| UsersError::Io {
            path: path.to_owned(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        keep_owner(&f, path).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Add a user.
    pub fn add(&mut self, name: &str, password: &str, params: Params) -> Result<(), UsersError> {
        if !user_name_valid(name) {
            return Err(UsersError::BadName(name.to_owned()));
        }
        if self.users.contains_key(name) {
            return Err(UsersError::Exists(name.to_owned()));
        }
        if !(8..=tsuitate_protocol::MAX_PASSWORD_BYTES).contains(&password.len()) {
            return Err(UsersError::BadPassword);
        }
        let hash = hash_password(password, params)?;
        self.users.insert(
            name.to_owned(),
            UserEntry {
                hash,
                disabled: false,
                password_set: Some(crate::audit::rfc3339(std::time::SystemTime::now())),
            },
        );
        Ok(())
    }

    /// Remove a user.
    pub fn remove(&mut self, name: &str) -> Result<(), UsersError> {
        self.users
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| UsersError::NoSuchUser(name.to_owned()))
    }

    /// Disable or enable a user.
    pub fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<(), UsersError> {
        let u = self
            .users
            .get_mut(name)
            .ok_or_else(|| UsersError::NoSuchUser(name.to_owned()))?;
        u.disabled = disabled;
        Ok(())
    }

    /// Check a login. Unknown and disabled users cost the same argon2 work as real ones, so
    /// timing does not tell which user names exist.
    pub fn check(&self, name: &str, password: &str) -> bool {
        match self.users.get(name) {
            Some(u) => verify_password(&u.hash, password) && !u.disabled,
            None => {
                // Same cost as a real user: verify against a real hash with a wrong password.
                if let Some(u) = self.users.values().next() {
                    let _ = verify_password(&u.hash, "\u{0}not-a-password");
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Params {
        Params::new(256, 1, 1, None).unwrap()
    }

    #[test]
    fn add_check_disable_remove_roundtrip_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["users.toml", "users.json"] {
            let path = dir.path().join(name);
            let mut u = UsersFile::load(&path).unwrap();
            u.add("yamada", "correct horse", cheap()).unwrap();
            assert!(u.users["yamada"].hash.starts_with("$argon2id$"));
            assert!(matches!(
                u.add("yamada", "x".repeat(9).as_str(), cheap()),
                Err(UsersError::Exists(_))
            ));
            u.save(&path).unwrap();
            let mut u = UsersFile::load(&path).unwrap();
            assert!(u.check("yamada", "correct horse"));
            assert!(!u.check("yamada", "wrong horse"));
            assert!(!u.check("suzuki", "correct horse"));
            u.set_disabled("yamada", true).unwrap();
            assert!(!u.check("yamada", "correct horse"));
            u.remove("yamada").unwrap();
            assert!(u.remove("yamada").is_err());
        }
    }

    #[test]
    fn names_and_passwords_are_checked() {
        let mut u = UsersFile::default();
        assert!(u.add("a b", "12345678", cheap()).is_err());
        assert!(u.add("", "12345678", cheap()).is_err());
        assert!(u.add("ok", "short", cheap()).is_err());
        assert!(u.add("山田", "12345678", cheap()).is_ok());
        // The longest password the protocol can carry, and one byte more.
        assert!(u.add("long", &"p".repeat(255), cheap()).is_ok());
        assert!(matches!(
            u.add("longer", &"p".repeat(256), cheap()),
            Err(UsersError::BadPassword)
        ));
    }
}
