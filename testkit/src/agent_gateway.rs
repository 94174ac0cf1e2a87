//! The fake gateway for the agent's tests: the gateway's agent-side QUIC listener (client
//! certificates of the kit's CA required, the transport's server configuration), with the
//! protocol driven by the test itself.

use std::net::SocketAddr;
use std::time::Duration;

use crate::pki::Pki;

/// An agent-side listener on 127.0.0.1, port 0.
pub struct AgentGateway {
    /// The endpoint.
    pub endpoint: quinn::Endpoint,
    /// Where agents connect.
    pub addr: SocketAddr,
}

impl AgentGateway {
    /// Listen with the gateway certificate of `pki`, requiring agent certificates it issued.
    pub fn bind(pki: &Pki) -> AgentGateway {
        let endpoint = quinn::Endpoint::server(
            pki.gateway_server_config(true),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .expect("bind the agent listener");
        let addr = endpoint.local_addr().expect("local address");
        AgentGateway { endpoint, addr }
    }

    /// The next agent connection, within `limit`.
    pub async fn accept(&self, limit: Duration) -> quinn::Connection {
        tokio::time::timeout(limit, async {
            self.endpoint
                .accept()
                .await
                .expect("incoming")
                .await
                .expect("handshake")
        })
        .await
        .expect("an agent connects")
    }
}
