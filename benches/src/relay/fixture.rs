//! A throwaway PKI, users file and gateway configuration for the relay benchmark.

use std::path::PathBuf;

use tempfile::TempDir;
use tsuitate_gateway::certs;
use tsuitate_gateway::config::{Config, TlsConfig};
use tsuitate_gateway::users::UsersFile;

use crate::BenchError;

/// The agent id the bench agent's certificate carries.
pub const AGENT_ID: &str = "bench-agent";
/// The user the bench viewer logs in as.
pub const USER: &str = "bench";
/// Its password.
pub const PASSWORD: &str = "bench password 1";

/// The most frames per second the gateway admits per session that every gateway version
/// accepts in its configuration. Bursts stay below it (see `relay::BURST_FRAMES`).
pub const MAX_FPS: u32 = 240;

/// Files for one gateway.
pub struct Fixture {
    /// Holds everything; removed on drop.
    pub dir: TempDir,
    /// The gateway configuration (127.0.0.1, port 0 everywhere).
    pub config: Config,
}

fn err(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("{what}: {e}"))
}

impl Fixture {
    /// A CA, gateway and agent certificates, one user (cheap argon2 parameters: login speed is
    /// not what is measured) and a configuration for frames of `width`×`height`.
    pub fn new(width: u16, height: u16) -> Result<Fixture, BenchError> {
        let dir = tempfile::tempdir().map_err(|e| err("tempdir", e))?;
        let pki = dir.path().join("pki");
        certs::ca_init(&pki, &[], false).map_err(|e| err("ca init", e))?;
        certs::issue_agent(&pki, AGENT_ID, false).map_err(|e| err("issue agent", e))?;
        let users_path = dir.path().join("users.toml");
        let mut users = UsersFile::default();
        let cheap = argon2::Params::new(1024, 1, 1, None).map_err(|e| err("argon2", e))?;
        users
            .add(USER, PASSWORD, cheap)
            .map_err(|e| err("add user", e))?;
        users.save(&users_path).map_err(|e| err("save users", e))?;
        let tls = TlsConfig {
            ca: pki.join("ca.pem"),
            cert: pki.join("gateway.pem"),
            key: pki.join("gateway-key.pem"),
        };
        let mut config = Config::with_files(tls, users_path, dir.path().join("audit.jsonl"));
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.agent_listen = any;
        config.viewer_listen = any;
        config.admin_listen = any;
        config.session.default_width = width;
        config.session.default_height = height;
        config.limits.max_fps = MAX_FPS;
        // A burst must not be cut by the slow-viewer rule: the queue holds a whole burst.
        config.session.viewer_queue_frames = 1024;
        Ok(Fixture { dir, config })
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("pki/ca.pem")
    }

    /// The bench agent's (certificate, key).
    pub fn agent_identity(&self) -> (PathBuf, PathBuf) {
        let (c, k) = certs::agent_file_names(AGENT_ID);
        let pki = self.dir.path().join("pki");
        (pki.join(c), pki.join(k))
    }
}
