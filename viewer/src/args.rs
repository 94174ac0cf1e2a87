//! Command-line arguments (docs/viewer.md "Usage"). The password is never an argument.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// tsuitate viewer: shows the remote browser's screen and sends keyboard and pointer input.
/// The password comes from the environment variable TSUITATE_PASSWORD or is prompted for.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "tsuitate-viewer", version, about)]
pub struct Args {
    /// Run without a window: play --script, write --report, exit.
    #[arg(long)]
    pub headless: bool,
    /// TOML configuration file (keys as the long options, with underscores).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Gateway address host:port, or several separated by commas: tried in turn, and after a
    /// lost connection the next one first [default: 127.0.0.1:4700].
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT…]")]
    pub gateway: Option<String>,
    /// TLS name to verify on the gateway certificate [default: the gateway host].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// PEM file of the CA that issued the gateway certificate.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// User name.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Headless: the script to play.
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Headless: where to write the JSON report.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Headless: directory for `snapshot` PNG files.
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,
    /// Headless: leave the session lingering at the end instead of logging out.
    #[arg(long)]
    pub keep_session: bool,
    /// Message language [default: from LC_ALL / LC_MESSAGES / LANG].
    #[arg(long, value_enum)]
    pub lang: Option<LangArg>,
    /// Window: scaling filter when the window and the frame differ in size [default: bilinear].
    #[arg(long, value_enum)]
    pub scale: Option<ScaleArg>,
    /// How long to keep trying to reconnect after a network drop, in seconds
    /// [default: 120, the gateway's default linger].
    #[arg(long, value_name = "S")]
    pub reconnect_window_s: Option<u64>,
    /// Limit for each connection/login step, in seconds [default: 10].
    #[arg(long, value_name = "S")]
    pub connect_timeout_s: Option<u64>,
    /// Only check the configuration, the options, the CA file and the script, and exit
    /// (0 when valid, 2 otherwise); nothing is sent.
    #[arg(long)]
    pub check_config: bool,
    /// Log format on stderr (filter: TSUITATE_LOG) [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<tsuitate_cli::LogFormat>,
}

/// `--lang`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LangArg {
    /// 日本語.
    Ja,
    /// English.
    En,
}

/// `--scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScaleArg {
    /// Nearest neighbour: fastest, blocky.
    Nearest,
    /// Bilinear: smooth text when scaled.
    #[default]
    Bilinear,
}
