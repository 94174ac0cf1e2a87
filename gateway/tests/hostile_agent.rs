//! Hostile agents are cut off; the viewer receives none of their bytes; other sessions go on.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tsuitate_gateway::config::DropPolicy;
use tsuitate_protocol::{LoginStatus, Reason};
use tsuitate_testkit::agent::{self, close_reason, AgentOptions, Behaviour};
use tsuitate_testkit::fixture::{Fixture, PASSWORD};
use tsuitate_testkit::frames::{nal_types, MARKER};
use tsuitate_testkit::viewer::TestViewer;

const T: Duration = Duration::from_secs(20);

async fn hostile_case(behaviour: Behaviour, code: &str) {
    let fx = Fixture::new(&["good", "evil"], &["u1", "u2"]);
    let gw = fx.start().await;
    let (c, k) = fx.agent_identity("good");
    let mut opts = AgentOptions::new("good");
    opts.capacity = 1;
    let _good = agent::connect(gw.agent_addr, &fx.ca(), Some((&c, &k)), opts)
        .await
        .unwrap();
    let mut a = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    a.login_ready("u1").await;
    assert_eq!(a.frames(3, T).await.len(), 3);

    let (c, k) = fx.agent_identity("evil");
    let mut opts = AgentOptions::new("evil");
    opts.capacity = 1;
    opts.behaviour = behaviour;
    let evil = agent::connect(gw.agent_addr, &fx.ca(), Some((&c, &k)), opts)
        .await
        .unwrap();
    let mut b = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    b.login_ready("u2").await;
    let (bye, frames) = b.until_bye(T).await;
    assert!(
        bye == Some(Reason::AgentLost) || close_reason(&b.conn) == Some(Reason::AgentLost),
        "{behaviour:?}: viewer told {bye:?}"
    );
    assert!(
        frames <= 5,
        "{behaviour:?}: only the good frames crossed ({frames})"
    );
    assert!(
        !tsuitate_testkit::contains(&b.raw, MARKER),
        "{behaviour:?}: hostile bytes reached the viewer"
    );
    // The hostile agent is cut off with a reason code.
    let _ = tokio::time::timeout(T, evil.conn.closed()).await;
    assert_eq!(
        close_reason(&evil.conn),
        Some(Reason::ProtocolViolation),
        "{behaviour:?}"
    );
    assert!(
        gw.metrics().violations("agent", code) >= 1,
        "{behaviour:?}: counted as {code}"
    );
    // Nothing else is disturbed.
    assert_eq!(
        a.frames(10, T).await.len(),
        10,
        "{behaviour:?}: other session stopped"
    );
    assert!(!tsuitate_testkit::contains(&a.raw, MARKER));
    gw.flush_audit().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert!(
        log.contains("policy_violation") && log.contains(code),
        "{behaviour:?}"
    );
    assert!(!log.contains(std::str::from_utf8(MARKER).unwrap()));
    if code == "forbidden_nal" {
        // The sanitizer refused the access unit: the session-end record says so.
        let end = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "session_end" && v["agent"] == "evil")
            .unwrap();
        assert!(
            end["sanitizer_refused"].as_u64() >= Some(1),
            "{behaviour:?}: {end}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sei_with_payload_cuts_the_agent_off() {
    hostile_case(Behaviour::Sei, "forbidden_nal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unspecified_and_reserved_nal_types_cut_the_agent_off() {
    for ty in [0, 24, 27, 31] {
        hostile_case(Behaviour::NalType(ty), "forbidden_nal").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_cuts_the_agent_off() {
    hostile_case(Behaviour::Oversize, "oversize").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_message_kind_cuts_the_agent_off() {
    hostile_case(Behaviour::WrongKind, "unexpected_kind").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_cuts_the_agent_off() {
    hostile_case(Behaviour::Garbage, "unexpected_kind").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_policy_strips_sei_and_keeps_the_session() {
    let mut fx = Fixture::new(&["a"], &["u1"]);
    fx.config.video.drop_policy = DropPolicy::Drop;
    let gw = fx.start().await;
    let (c, k) = fx.agent_identity("a");
    let mut opts = AgentOptions::new("a");
    opts.behaviour = Behaviour::Sei;
    opts.hostile_after = 0;
    opts.hostile_repeat = true;
    let ag = agent::connect(gw.agent_addr, &fx.ca(), Some((&c, &k)), opts)
        .await
        .unwrap();
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u1").await;
    let frames = v.frames(20, T).await;
    assert_eq!(frames.len(), 20);
    assert!(frames.iter().all(|f| !nal_types(&f.data).contains(&6)));
    assert!(!tsuitate_testkit::contains(&v.raw, MARKER));
    assert!(gw.metrics().sanitizer_dropped[6].load(Relaxed) >= 20);
    assert!(ag.conn.close_reason().is_none());
    // The session's end leaves one policy_violation record with the counts by NAL type.
    v.send(&tsuitate_protocol::ViewerToGateway::Logout).await;
    let _ = v.until_bye(T).await;
    gw.shutdown().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    let record: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| r["event"] == "policy_violation" && r["code"] == "nal_dropped")
        .unwrap_or_else(|| panic!("no nal_dropped record: {log}"));
    assert_eq!(record["who"], "a");
    assert!(
        record["dropped_by_nal_type"]["6"].as_u64().unwrap_or(0) >= 20,
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_that_never_takes_a_session_stream_does_not_hang_the_login() {
    let mut fx = Fixture::new(&["a"], &["u1"]);
    fx.config.session.start_timeout = Duration::from_secs(2);
    let gw = fx.start().await;
    let (c, k) = fx.agent_identity("a");
    let mut opts = AgentOptions::new("a");
    opts.accept_streams = false;
    let _ag = agent::connect(gw.agent_addr, &fx.ca(), Some((&c, &k)), opts)
        .await
        .unwrap();
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    let (status, _) = v.login("u1", PASSWORD).await;
    assert_eq!(status, LoginStatus::Ok);
    let (bye, _) = v.until_bye(T).await;
    assert_eq!(bye, Some(Reason::AgentLost), "the login hung on the agent");
    assert!(
        tsuitate_testkit::eventually(T, || async { gw.gauges().sessions_active == 0 }).await,
        "the session slot was not released"
    );
    gw.shutdown().await;
}
