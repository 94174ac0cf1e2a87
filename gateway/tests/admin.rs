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

/// Every metric the sample Prometheus alert rules (deploy/prometheus/tsuitate-alerts.yml) use is
/// one the gateway exports, so the alerts cannot silently never fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_alert_rules_use_only_metrics_the_gateway_exports() {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/tsuitate-alerts.yml"
    ))
    .unwrap();
    let fx = Fixture::new(&[], &[]);
    let gw = fx.start().await;
    let metrics = get(gw.admin_addr, "/metrics").await;
    let families: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut used: Vec<String> = Vec::new();
    for (i, _) in rules.match_indices("tsuitate_") {
        let name: String = rules[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !used.contains(&name) {
            used.push(name);
        }
    }
    assert!(used.len() >= 8, "{used:?}");
    for name in &used {
        let family = name.strip_suffix("_bucket").unwrap_or(name);
        assert!(
            families.contains(&family),
            "{name} is not exported: {families:?}"
        );
    }
    // The certificate expiry is there for both certificates, in the future.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    for cert in ["ca", "gateway"] {
        let line = format!("tsuitate_certificate_expiry_timestamp_seconds{{cert=\"{cert}\"}} ");
        let t: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{cert} expiry missing: {metrics}"));
        assert!(t > now + 86_400.0, "{cert}: {t}");
    }
    gw.shutdown().await;
}
