//! The admin HTTP listener under idle or slow clients.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tsuitate_testkit::fixture::Fixture;

const T: Duration = Duration::from_secs(20);

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut body = String::new();
    if let Ok(mut s) = TcpStream::connect(addr).await {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = s.write_all(req.as_bytes()).await;
        let _ = tokio::time::timeout(T, s.read_to_string(&mut body)).await;
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_admin_connections_cannot_pile_up() {
    let fx = Fixture::new(&[], &[]);
    let gw = fx.start().await;
    assert!(get(gw.admin_addr, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    // Slowloris: connections that never send a request hold every slot...
    let mut idle = Vec::new();
    for _ in 0..tsuitate_gateway::ADMIN_MAX_CONNECTIONS {
        idle.push(TcpStream::connect(gw.admin_addr).await.unwrap());
    }
    // ...so one more is closed at once instead of being served (or held) too.
    let body = get(gw.admin_addr, "/healthz").await;
    assert!(body.is_empty(), "served beyond the cap: {body:?}");
    // The slots come back when the idle clients go.
    drop(idle);
    let addr = gw.admin_addr;
    assert!(
        tsuitate_testkit::eventually(T, || async {
            get(addr, "/healthz").await.starts_with("HTTP/1.1 200")
        })
        .await
    );
    gw.shutdown().await;
}
