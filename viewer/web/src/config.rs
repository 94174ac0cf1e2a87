//! The web viewer's configuration file (TOML; docs/viewer.md, "Web viewer"). Relative paths
//! are relative to the file's folder. Every problem is reported at once.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tsuitate_cli::ConfigErrors;

/// The configuration as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// HTTPS listen address (an LGWAN address; loopback by default).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain for HTTPS (from the deployment CA or the operator's own).
    pub cert: PathBuf,
    /// PEM private key for `cert` (readable by the service user only).
    pub key: PathBuf,
    /// Gateway viewer listener(s): `host:port`, or several separated by commas (tried in turn;
    /// a session whose gateway is lost logs in again through the next one first).
    pub gateway: String,
    /// How long a session whose gateway was lost keeps logging in again (0: it ends).
    #[serde(
        default = "default_reconnect_window",
        deserialize_with = "tsuitate_cli::duration::secs"
    )]
    pub reconnect_window_s: Duration,
    /// TLS name of the gateway (defaults to the host part of each gateway).
    #[serde(default)]
    pub gateway_name: Option<String>,
    /// CA certificate(s) that issued the gateway's certificate.
    pub ca: PathBuf,
    /// The address browsers reach for WebRTC media (ICE host candidate); never a wildcard.
    #[serde(default = "default_rtc_ip")]
    pub rtc_ip: IpAddr,
    /// The one UDP port every browser's WebRTC media uses (0 lets the system choose, for tests).
    #[serde(default = "default_rtc_port")]
    pub rtc_port: u16,
    /// Replaced by `rtc_port` (kept only to explain the change to an old configuration).
    #[serde(default)]
    rtc_ports: Option<toml::Value>,
    /// How long a session waits for its page to come back (a reload, a dropped network) before
    /// it logs out.
    #[serde(
        default = "default_page_linger",
        deserialize_with = "tsuitate_cli::duration::secs"
    )]
    pub page_linger_s: Duration,
    /// Most concurrent browser sessions.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// This web viewer's front certificate and key (`tsuitate-gateway ca issue-front`): with
    /// them, and the name listed in the gateway's `trusted_fronts`, the gateway sees each
    /// browser's own address for lockout and audit. Without them every browser logs in from
    /// this server's address.
    #[serde(default)]
    pub front_cert: Option<PathBuf>,
    /// Key for `front_cert`.
    #[serde(default)]
    pub front_key: Option<PathBuf>,
    /// Limit for each step of the gateway login.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "tsuitate_cli::duration::secs"
    )]
    pub connect_timeout_s: Duration,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}
fn default_rtc_ip() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
fn default_rtc_port() -> u16 {
    50000
}
fn default_page_linger() -> Duration {
    Duration::from_secs(30)
}
fn default_reconnect_window() -> Duration {
    Duration::from_secs(120)
}
fn default_max_sessions() -> usize {
    200
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

impl WebConfig {
    /// The front identity (certificate, key) to present to the gateway, if configured.
    pub fn front_identity(&self) -> Option<(PathBuf, PathBuf)> {
        Some((self.front_cert.clone()?, self.front_key.clone()?))
    }

    /// Read, resolve relative paths and check `path`.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                return Err(errors);
            }
        };
        let mut cfg: WebConfig = match toml::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                return Err(errors);
            }
        };
        let base = tsuitate_cli::config_dir(path).to_path_buf();
        tsuitate_cli::resolve_relative(&base, [&mut cfg.cert, &mut cfg.key, &mut cfg.ca]);
        tsuitate_cli::resolve_relative(
            &base,
            cfg.front_cert.iter_mut().chain(cfg.front_key.iter_mut()),
        );
        cfg.check(&mut errors);
        errors.into_result(cfg)
    }

    fn check(&self, errors: &mut ConfigErrors) {
        if self.rtc_ip.is_unspecified() {
            errors.push(
                "rtc_ip: 待ち受けアドレスを指定してください (0.0.0.0 は不可) / give the LGWAN address browsers reach, not a wildcard",
            );
        }
        if self.rtc_ports.is_some() {
            errors.push(
                "rtc_ports: 全ブラウザで 1 つの UDP ポートを使うようになりました。rtc_port = 50000 のように書いてください / every browser now shares one UDP port: write rtc_port = 50000 instead",
            );
        }
        if self.max_sessions == 0 {
            errors.push("max_sessions: must be at least 1");
        }
        let gateways = tsuitate_viewer::client::gateway_list(&self.gateway);
        if gateways.is_empty() || gateways.iter().any(|g| g.rsplit_once(':').is_none()) {
            errors.push(format!(
                "gateway: {:?} needs host:port, or several separated by commas / host:port（複数はカンマ区切り）で指定してください",
                self.gateway
            ));
        }
        if self.front_cert.is_some() != self.front_key.is_some() {
            errors.push("front_cert and front_key go together");
        }
        for (name, p) in [("cert", &self.cert), ("key", &self.key), ("ca", &self.ca)]
            .into_iter()
            .chain(self.front_cert.iter().map(|p| ("front_cert", p)))
            .chain(self.front_key.iter().map(|p| ("front_key", p)))
        {
            if !p.is_file() {
                errors.push(format!("{name}: {} does not exist", p.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.toml");
        std::fs::write(
            &path,
            "cert = \"nope.crt\"\nkey = \"nope.key\"\nca = \"ca.crt\"\ngateway = \"gw\"\nrtc_ip = \"0.0.0.0\"\nrtc_ports = [9, 10]\n",
        )
        .unwrap();
        let errs = WebConfig::load(&path).unwrap_err().0;
        assert!(errs.iter().any(|e| e.starts_with("rtc_ip")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("rtc_ports")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("gateway")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("cert")), "{errs:?}");
        std::fs::write(&path, "listen = 1\n").unwrap();
        assert!(WebConfig::load(&path).is_err());
    }
}
