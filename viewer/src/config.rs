//! Settings from the command line and an optional TOML file (`deny_unknown_fields`: a typo
//! fails loudly). Command-line values win. Every problem is reported together, before any
//! connection is made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tsuitate_protocol::{Limits, MAX_USER_BYTES};

use crate::client::ClientConfig;

use crate::args::{Args, LangArg, ScaleArg};
use crate::i18n::Lang;

/// Default gateway address.
pub const DEFAULT_GATEWAY: &str = "127.0.0.1:4700";
/// The environment variable that may hold the password (for automation).
pub const PASSWORD_ENV: &str = "TSUITATE_PASSWORD";

/// The TOML file: the same keys as the long options (no password: it is never stored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Gateway host:port.
    pub gateway: Option<String>,
    /// TLS name.
    pub server_name: Option<String>,
    /// CA PEM file (relative paths are relative to the config file).
    pub ca: Option<PathBuf>,
    /// User name.
    pub user: Option<String>,
    /// Message language.
    pub lang: Option<LangArg>,
    /// Scaling filter.
    pub scale: Option<ScaleArg>,
    /// Reconnect window in seconds.
    pub reconnect_window_s: Option<u64>,
    /// Per-step connect timeout in seconds.
    pub connect_timeout_s: Option<u64>,
}

/// Headless-only settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadlessSettings {
    /// Script file.
    pub script: PathBuf,
    /// Report file.
    pub report: PathBuf,
    /// Snapshot directory.
    pub snapshot_dir: Option<PathBuf>,
    /// Leave the session lingering at the end.
    pub keep_session: bool,
}

/// Everything the viewer needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Gateway host:port.
    pub gateway: String,
    /// TLS name (None: the gateway host).
    pub server_name: Option<String>,
    /// CA PEM file.
    pub ca: PathBuf,
    /// User name.
    pub user: String,
    /// Message language.
    pub lang: Lang,
    /// Scaling filter.
    pub scale: ScaleArg,
    /// Reconnect window.
    pub reconnect_window: Duration,
    /// Per-step connect timeout.
    pub connect_timeout: Duration,
    /// `Some` in headless mode.
    pub headless: Option<HeadlessSettings>,
}

/// Configuration problems, all of them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// Read and parse a TOML config file.
pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
    let mut cfg: FileConfig =
        toml::from_str(&text).map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
    // The one rule of every tsuitate config file: relative to the file's folder.
    tsuitate_cli::resolve_relative(tsuitate_cli::config_dir(path), cfg.ca.as_mut());
    Ok(cfg)
}

impl Settings {
    /// The connection settings, with the password (kept in memory only).
    pub fn client_config(&self, password: String) -> ClientConfig {
        ClientConfig {
            gateway: self.gateway.clone(),
            server_name: self.server_name.clone(),
            ca_file: self.ca.clone(),
            user: self.user.clone(),
            password,
            connect_timeout: self.connect_timeout,
            limits: Limits::default(),
            forwarded_for: None,
        }
    }

    /// Merge the command line over the file and validate.
    pub fn resolve(args: &Args, file: FileConfig) -> Result<Settings, ConfigError> {
        let mut errors = Vec::new();
        let gateway = args
            .gateway
            .clone()
            .or(file.gateway)
            .unwrap_or_else(|| DEFAULT_GATEWAY.into());
        let list = crate::client::gateway_list(&gateway);
        if list.is_empty() || list.iter().any(|g| !g.contains(':')) {
            errors.push(format!(
                "--gateway `{gateway}` must be HOST:PORT, or several separated by commas / HOST:PORT（複数はカンマ区切り）で指定してください"
            ));
        }
        let ca = args.ca.clone().or(file.ca);
        if ca.is_none() {
            errors
                .push("--ca FILE is required (the CA that issued the gateway certificate)".into());
        }
        let user = args.user.clone().or(file.user).unwrap_or_default();
        if user.is_empty() || user.len() > MAX_USER_BYTES {
            errors.push(format!("--user is required (1..={MAX_USER_BYTES} bytes)"));
        }
        let headless = resolve_headless(args, &mut errors);
        let lang = match args.lang.or(file.lang) {
            Some(LangArg::Ja) => Lang::Ja,
            Some(LangArg::En) => Lang::En,
            None => Lang::from_env(),
        };
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Settings {
            gateway,
            server_name: args.server_name.clone().or(file.server_name),
            ca: ca.unwrap_or_default(),
            user,
            lang,
            scale: args.scale.or(file.scale).unwrap_or_default(),
            reconnect_window: Duration::from_secs(
                args.reconnect_window_s
                    .or(file.reconnect_window_s)
                    .unwrap_or(120),
            ),
            connect_timeout: Duration::from_secs(
                args.connect_timeout_s
                    .or(file.connect_timeout_s)
                    .unwrap_or(10)
                    .max(1),
            ),
            headless,
        })
    }
}

fn resolve_headless(args: &Args, errors: &mut Vec<String>) -> Option<HeadlessSettings> {
    if !args.headless {
        // The window mode stores nothing on disk: no reports, no snapshots.
        for (set, name) in [
            (args.script.is_some(), "--script"),
            (args.report.is_some(), "--report"),
            (args.snapshot_dir.is_some(), "--snapshot-dir"),
            (args.keep_session, "--keep-session"),
        ] {
            if set {
                errors.push(format!("{name} needs --headless"));
            }
        }
        return None;
    }
    if args.script.is_none() {
        errors.push("--headless needs --script FILE".into());
    }
    if args.report.is_none() {
        errors.push("--headless needs --report FILE".into());
    }
    Some(HeadlessSettings {
        script: args.script.clone()?,
        report: args.report.clone()?,
        snapshot_dir: args.snapshot_dir.clone(),
        keep_session: args.keep_session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_fail() {
        let e = toml::from_str::<FileConfig>("gatway = \"x:1\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"));
        let e = toml::from_str::<FileConfig>("password = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"));
    }

    #[test]
    fn collects_all_errors() {
        let args = Args {
            headless: true,
            ..Args::default()
        };
        let e = Settings::resolve(&args, FileConfig::default()).unwrap_err();
        assert_eq!(e.0.len(), 4, "{e}");
    }

    #[test]
    fn command_line_wins_over_file() {
        let args = Args {
            user: Some("alice".into()),
            ca: Some("ca.pem".into()),
            ..Args::default()
        };
        let file: FileConfig =
            toml::from_str("gateway = \"gw:4700\"\nuser = \"bob\"\nscale = \"nearest\"").unwrap();
        let s = Settings::resolve(&args, file).unwrap();
        assert_eq!(s.user, "alice");
        assert_eq!(s.gateway, "gw:4700");
        assert_eq!(s.scale, ScaleArg::Nearest);
        assert!(s.headless.is_none());
    }

    #[test]
    fn several_gateways_are_a_comma_separated_list() {
        let with = |gateway: &str| Args {
            user: Some("a".into()),
            ca: Some("ca.pem".into()),
            gateway: Some(gateway.into()),
            ..Args::default()
        };
        for ok in ["gw1:4700,gw2:4700", "gw1:4700, [::1]:4700 ,", "gw:4700"] {
            let s = Settings::resolve(&with(ok), FileConfig::default())
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(!crate::client::gateway_list(&s.gateway).is_empty());
        }
        assert_eq!(
            crate::client::gateway_list("gw1:4700, [::1]:4700 ,"),
            ["gw1:4700", "[::1]:4700"]
        );
        for bad in ["gw1:4700,gw2", ",", ""] {
            let e = Settings::resolve(&with(bad), FileConfig::default()).unwrap_err();
            assert!(e.0[0].contains("カンマ区切り"), "{bad}: {e}");
        }
    }

    #[test]
    fn window_mode_rejects_disk_outputs() {
        let args = Args {
            user: Some("a".into()),
            ca: Some("ca.pem".into()),
            snapshot_dir: Some("/tmp".into()),
            ..Args::default()
        };
        let e = Settings::resolve(&args, FileConfig::default()).unwrap_err();
        assert!(e.0[0].contains("--snapshot-dir needs --headless"));
    }
}
