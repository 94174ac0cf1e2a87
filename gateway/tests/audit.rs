//! The audit log under pressure, against the real gateway: lost records are marked in the log
//! and fail `/healthz`; anchors go to the second sink; a pre-login flood from one address is
//! summed so it cannot bury other records.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use tsuitate_protocol::{LoginStatus, ViewerToGateway};
use tsuitate_testkit::agent::AgentOptions;
use tsuitate_testkit::fixture::{Fixture, PASSWORD};
use tsuitate_testkit::viewer::TestViewer;

fn records(fx: &Fixture) -> Vec<Value> {
    std::fs::read_to_string(fx.audit_path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn healthz(addr: std::net::SocketAddr) -> String {
    let a = addr.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(a).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        t
    })
    .await
    .unwrap()
}

async fn wrong_login(fx: &Fixture, addr: std::net::SocketAddr) {
    let mut v = TestViewer::connect(addr, &fx.ca(), None).await;
    assert_eq!(
        v.login("yamada", "wrong-guess").await.0,
        LoginStatus::Denied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_records_are_marked_fail_healthz_and_anchors_reach_the_second_sink() {
    let mut fx = Fixture::new(&["a"], &["yamada"]);
    fx.config.lockout.max_failures_per_user = 100;
    fx.config.lockout.max_failures_per_ip = 100;
    let anchors = fx.dir.path().join("anchors.jsonl");
    fx.config.audit_anchor = Some(anchors.display().to_string());
    let gw = fx.start().await;
    wrong_login(&fx, gw.viewer_addr).await;
    gw.flush_audit().await;
    assert!(healthz(gw.admin_addr).await.starts_with("HTTP/1.1 200"));
    // The flush anchored the head.
    let text = std::fs::read_to_string(&anchors).unwrap();
    let found = tsuitate_gateway::audit::read_anchors(&text, fx.audit_path());
    assert!(!found.is_empty(), "{text}");
    let n = records(&fx).len() as u64;
    assert_eq!(found.last().unwrap().0, n);

    // The log cannot be written (a folder where the file was): the record is lost, counted.
    let log = fx.audit_path().to_path_buf();
    let saved = std::fs::read(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    wrong_login(&fx, gw.viewer_addr).await;
    gw.flush_audit().await;
    let h = healthz(gw.admin_addr).await;
    assert!(
        h.starts_with("HTTP/1.1 503") && h.contains("audit records dropped: 1"),
        "{h}"
    );
    assert_eq!(gw.gauges().audit_dropped, 1);

    // Writable again: the next record is followed by a mark of the gap.
    std::fs::remove_dir(&log).unwrap();
    std::fs::write(&log, &saved).unwrap();
    wrong_login(&fx, gw.viewer_addr).await;
    gw.flush_audit().await;
    let all = records(&fx);
    let mark = all
        .iter()
        .find(|r| r["event"] == "audit_dropped")
        .expect("an audit_dropped record");
    assert_eq!(
        (mark["count"].as_u64(), mark["total"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(tsuitate_gateway::audit::verify_file(&log).is_ok());
    gw.shutdown().await;

    // `audit verify --anchors`: the whole log matches its anchors; cut short, it does not.
    let verify = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tsuitate-gateway"))
            .args(["audit", "verify"])
            .arg(&log)
            .args(extra)
            .output()
            .unwrap()
    };
    let a = anchors.to_str().unwrap();
    let ok = verify(&["--anchors", a]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("anchors"));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&log, format!("{}\n", lines[..lines.len() - 1].join("\n"))).unwrap();
    assert!(verify(&[]).status.success(), "the chain alone cannot tell");
    let cut = verify(&["--anchors", a]);
    assert_eq!(cut.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&cut.stderr).contains("removed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_login_flood_from_one_address_is_summed_and_buries_nothing() {
    let mut fx = Fixture::new(&["a"], &["yamada"]);
    fx.config.quic.max_connections_per_ip = 1000;
    let gw = fx.start().await;
    let _ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    // Thirty connections that start with Login instead of Hello.
    for _ in 0..30 {
        let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
        v.send(&ViewerToGateway::Login {
            user: "x".into(),
            password: "y".into(),
        })
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), v.conn.closed()).await;
    }
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert_eq!(v.login("yamada", PASSWORD).await.0, LoginStatus::Ok);
    gw.flush_prelogin();
    gw.flush_audit().await;
    let all = records(&fx);
    let single = all
        .iter()
        .filter(|r| r["event"] == "policy_violation" && r["side"] == "viewer")
        .count();
    assert_eq!(single, 1, "only the first is a record of its own");
    let summary = all
        .iter()
        .find(|r| r["event"] == "policy_violation_summary")
        .expect("a summary record");
    assert_eq!(summary["count"], 29, "{summary}");
    assert_eq!(summary["peer"], "127.0.0.1");
    assert!(all.iter().any(|r| r["event"] == "login_success"));
    // Each one is still counted in the metrics.
    let codes = summary["codes"].as_object().unwrap();
    let code = codes.keys().next().unwrap();
    assert_eq!(codes[code], 29);
    assert!(gw.metrics().violations("viewer", code) >= 30);
    gw.shutdown().await;
}
