//! An in-process gateway for one test: a temporary PKI, users file, audit log and a config on
//! 127.0.0.1 port 0 (the gateway reports the addresses it got).

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tsuitate_gateway::config::{Config, TlsConfig};
use tsuitate_gateway::users::UsersFile;
use tsuitate_gateway::{Gateway, GatewayHandle};

use crate::pki::Pki;

/// Password of every test user.
pub const PASSWORD: &str = "correct horse battery";

/// Files for one gateway.
pub struct Fixture {
    pub dir: TempDir,
    pub config: Config,
}

impl Fixture {
    /// A CA, gateway certificate, agent certificates for `agents`, users `users` (cheap
    /// argon2 cost, for test speed only) and a config on 127.0.0.1 port 0.
    pub fn new(agents: &[&str], users: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::create(&dir.path().join("pki"), agents);
        let users_path = dir.path().join("users.toml");
        let mut u = UsersFile::default();
        let cheap = argon2::Params::new(1024, 1, 1, None).unwrap();
        for name in users {
            u.add(name, PASSWORD, cheap.clone()).unwrap();
        }
        u.save(&users_path).unwrap();
        let (cert, key) = pki.gateway();
        let tls = TlsConfig {
            ca: pki.ca(),
            cert,
            key,
            revoked: None,
        };
        let mut config = Config::with_files(tls, users_path, dir.path().join("audit.jsonl"));
        let any = "127.0.0.1:0".parse().unwrap();
        config.agent_listen = any;
        config.viewer_listen = any;
        config.admin_listen = any;
        config.session.default_width = crate::frames::WIDTH as u16;
        config.session.default_height = crate::frames::HEIGHT as u16;
        config.agent.ping_interval = std::time::Duration::from_secs(1);
        Fixture { dir, config }
    }

    /// The PKI.
    pub fn pki(&self) -> Pki {
        Pki::open(&self.dir.path().join("pki"))
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.pki().ca()
    }

    /// (certificate, key) of agent `id`.
    pub fn agent_identity(&self, id: &str) -> (PathBuf, PathBuf) {
        self.pki().agent(id)
    }

    pub fn audit_path(&self) -> &Path {
        &self.config.audit_log
    }

    pub async fn start(&self) -> GatewayHandle {
        Gateway::start(self.config.clone()).await.unwrap()
    }

    /// Connect a synthetic agent with the certificate of `opts.id` (issued by `new`).
    pub async fn connect_agent(
        &self,
        gw: &GatewayHandle,
        opts: crate::agent::AgentOptions,
    ) -> crate::agent::SyntheticAgent {
        let (c, k) = self.agent_identity(&opts.id);
        crate::agent::connect(gw.agent_addr, &self.ca(), Some((&c, &k)), opts)
            .await
            .unwrap()
    }
}
