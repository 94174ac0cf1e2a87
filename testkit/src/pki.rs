//! A test PKI made by the gateway's own certificate code (`ca init`, `ca issue-agent`): a CA,
//! a gateway certificate for `localhost` and `127.0.0.1`, and agent certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tsuitate_gateway::certs;
use tsuitate_transport::tls::{load_certs, load_key, root_store};
use tsuitate_transport::{server_config, ServerAuth, Tuning};

/// PEM files in a directory.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Create a CA and gateway certificate in `dir` and a certificate for each of `agents`.
    pub fn create(dir: &Path, agents: &[&str]) -> Pki {
        certs::ca_init(dir, &[], false).expect("ca init");
        let pki = Pki {
            dir: dir.to_owned(),
        };
        for a in agents {
            pki.issue_agent(a);
        }
        pki
    }

    /// The PKI already in `dir`.
    pub fn open(dir: &Path) -> Pki {
        Pki {
            dir: dir.to_owned(),
        }
    }

    /// Issue (another) agent certificate; returns (certificate, key).
    pub fn issue_agent(&self, id: &str) -> (PathBuf, PathBuf) {
        certs::issue_agent(&self.dir, id, false).expect("issue agent");
        self.agent(id)
    }

    /// Issue a trusted-front (web viewer) certificate; returns (certificate, key).
    pub fn issue_front(&self, name: &str) -> (PathBuf, PathBuf) {
        certs::issue_front(&self.dir, name, false).expect("issue front");
        (
            self.dir.join(format!("front-{name}.pem")),
            self.dir.join(format!("front-{name}-key.pem")),
        )
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The gateway's certificate chain and key.
    pub fn gateway(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.join("gateway.pem"),
            self.dir.join("gateway-key.pem"),
        )
    }

    /// (certificate, key) of agent `id`.
    pub fn agent(&self, id: &str) -> (PathBuf, PathBuf) {
        let (c, k) = certs::agent_file_names(id);
        (self.dir.join(c), self.dir.join(k))
    }

    /// A QUIC server configuration presenting the gateway certificate, through the transport
    /// crate with the product's tunings; agents (`ServerAuth::ClientCertificate` of our CA) or
    /// viewers (`ServerAuth::Anyone`).
    pub fn gateway_server_config(&self, agents: bool) -> quinn::ServerConfig {
        let (cert, key) = self.gateway();
        let auth = if agents {
            ServerAuth::ClientCertificate(Arc::new(root_store(&self.ca()).expect("ca")))
        } else {
            ServerAuth::Anyone
        };
        server_config(
            load_certs(&cert).expect("gateway cert"),
            load_key(&key).expect("gateway key"),
            auth,
            &Tuning::default(),
            64,
        )
        .expect("server config")
    }
}
