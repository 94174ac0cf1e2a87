//! What `tsuitate-gateway`, `tsuitate-agent` and `tsuitate-viewer` share on the command line,
//! so the three read alike to an operator:
//!
//! - one spelling for shared flags: `--log-format text|json` ([`LogFormat`]) and
//!   `--check-config`;
//! - one log environment variable, [`LOG_ENV`] (`TSUITATE_LOG`, `tracing` filter syntax);
//! - one logging set-up ([`init_logging`]) and one shutdown signal ([`shutdown_signal`]:
//!   SIGINT or SIGTERM);
//! - one configuration error type that reports every problem at once ([`ConfigErrors`]);
//! - one rule for relative paths in a configuration file: relative to the file's folder
//!   ([`resolve_relative`]);
//! - one calendar for the dates people read ([`time`]);
//! - who the service runs as and what it may open ([`unix_user`], Unix).

use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable that sets the log filter of every tsuitate program
/// (`TSUITATE_LOG=debug`, `TSUITATE_LOG=tsuitate_gateway=debug,info`).
pub const LOG_ENV: &str = "TSUITATE_LOG";

/// How logs are written to stderr (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for a log collector).
    Json,
}

/// Log to stderr in `format`, filtered by [`LOG_ENV`] or else `default_filter` (e.g. `"info"`).
/// An invalid filter in the environment is reported once and the default used.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let (filter, bad) = match std::env::var(LOG_ENV) {
        Ok(v) => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(default_filter), Some((v, e))),
        },
        Err(_) => (EnvFilter::new(default_filter), None),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().with_current_span(true).init(),
    }
    if let Some((v, e)) = bad {
        eprintln!("{LOG_ENV}={v:?} は無効です / is not a valid log filter ({e}); using {default_filter:?}");
    }
}

/// Install the SIGINT (Ctrl-C) and SIGTERM (systemd, Kubernetes) handlers now, and return a
/// future that resolves at the first of them. Installing before the program reports itself
/// ready means no signal in between takes the default action (an ungraceful exit). Call it
/// inside the tokio runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Windows (the viewer's build): Ctrl-C and Ctrl-Break, and the console being closed.
#[cfg(windows)]
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
    let mut c = ctrl_c()?;
    let mut b = ctrl_break()?;
    let mut close = ctrl_close()?;
    Ok(async move {
        tokio::select! {
            _ = c.recv() => {}
            _ = b.recv() => {}
            _ = close.recv() => {}
        }
    })
}

/// Every problem found in a configuration, reported together, one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl ConfigErrors {
    /// Record a problem.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "設定に {n} 件の誤りがあります / the configuration has {n} error(s):"
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The folder relative paths in the configuration file `config` are relative to.
pub fn config_dir(config: &Path) -> &Path {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Make each relative path in `paths` relative to `base` (the configuration file's folder):
/// the one rule for every path in every tsuitate configuration file.
pub fn resolve_relative<'a>(base: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    for p in paths {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_follow_the_config_file() {
        let base = config_dir(Path::new("/etc/tsuitate/agent.toml"));
        assert_eq!(base, Path::new("/etc/tsuitate"));
        let mut a = PathBuf::from("pki/ca.pem");
        let mut b = PathBuf::from("/var/lib/key.pem");
        resolve_relative(base, [&mut a, &mut b]);
        assert_eq!(a, Path::new("/etc/tsuitate/pki/ca.pem"));
        assert_eq!(b, Path::new("/var/lib/key.pem"));
        assert_eq!(config_dir(Path::new("agent.toml")), Path::new("."));
    }

    #[test]
    fn config_errors_are_reported_together() {
        let mut e = ConfigErrors::default();
        assert_eq!(e.clone().into_result(1), Ok(1));
        e.push("fps: 1-60");
        e.push("ca: missing");
        assert_eq!(
            e.to_string(),
            "設定に 2 件の誤りがあります / the configuration has 2 error(s):\n  - fps: 1-60\n  - ca: missing\n"
        );
        assert!(e.into_result(()).is_err());
    }

    #[test]
    fn log_format_spellings() {
        use clap::ValueEnum;
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Text));
        assert!(LogFormat::from_str("yaml", false).is_err());
    }
}

/// Durations in configuration files: the keys keep their unit in the name (`linger_s = 60`,
/// `keyframe_request_interval_ms = 500`, `idle_timeout_s = 0` for never); the validated
/// configuration holds `Duration` / `Option<Duration>`, converted once, here.
pub mod time;
#[cfg(unix)]
pub mod unix_user;

pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Whole seconds.
    pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }

    /// Whole seconds; 0 means never (`None`).
    pub fn secs_or_never<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(match u64::deserialize(d)? {
            0 => None,
            s => Some(Duration::from_secs(s)),
        })
    }

    /// Milliseconds.
    pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
