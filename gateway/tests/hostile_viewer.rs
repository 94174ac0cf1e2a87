//! Hostile viewers: input floods are throttled then cut off, protocol violations close the
//! connection, and other sessions keep running.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tsuitate_protocol::{
    GatewayToViewer, InputEvent, LoginStatus, Message, Reason, ViewerToGateway, PROTOCOL_VERSION,
};
use tsuitate_testkit::agent::{close_reason, AgentOptions};
use tsuitate_testkit::fixture::{Fixture, PASSWORD};
use tsuitate_testkit::viewer::TestViewer;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_flood_is_throttled_then_cut_off_while_another_session_runs() {
    let fx = Fixture::new(&["a"], &["calm", "flood"]);
    let gw = fx.start().await;
    let ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let mut calm = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    calm.login_ready("calm").await;
    let mut flood = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    flood.login_ready("flood").await;
    let batch = ViewerToGateway::Input(vec![InputEvent::PointerMove { x: 5, y: 5 }; 64]);
    for _ in 0..2000 {
        if !flood.send(&batch).await {
            break;
        }
    }
    let (bye, _) = flood.until_bye(T).await;
    let _ = tokio::time::timeout(T, flood.conn.closed()).await;
    assert!(
        bye == Some(Reason::RateLimited) || close_reason(&flood.conn) == Some(Reason::RateLimited),
        "told {bye:?} / {:?}",
        close_reason(&flood.conn)
    );
    let m = gw.metrics();
    assert!(
        m.input_dropped.load(Relaxed) > 0,
        "throttled before the cut"
    );
    assert!(m.input_events.load(Relaxed) > 0, "some input crossed");
    assert!(m.violations("viewer", "rate_limited") >= 1);
    let stats = ag.stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async {
            stats.closes.lock().unwrap().contains(&Reason::RateLimited)
        })
        .await
    );
    // The calm session keeps running.
    assert_eq!(calm.frames(10, T).await.len(), 10);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_from_a_viewer_closes_it() {
    let fx = Fixture::new(&["a"], &["u1"]);
    let gw = fx.start().await;
    let ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u1").await;
    // A GatewayToViewer::Video kind (0x23) sent by the viewer.
    let mut msg = vec![0x23, 0, 0, 0, 4];
    msg.extend_from_slice(b"evil");
    v.send_raw(&msg).await;
    let (bye, _) = v.until_bye(T).await;
    let _ = tokio::time::timeout(T, v.conn.closed()).await;
    assert!(
        bye == Some(Reason::ProtocolViolation)
            || close_reason(&v.conn) == Some(Reason::ProtocolViolation),
        "{bye:?}"
    );
    assert!(gw.metrics().violations("viewer", "unexpected_kind") >= 1);
    let stats = ag.stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async {
            stats
                .closes
                .lock()
                .unwrap()
                .contains(&Reason::ProtocolViolation)
        })
        .await
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_hello_closes_the_connection() {
    let fx = Fixture::new(&[], &["u1"]);
    let gw = fx.start().await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.send_raw(&[0xff; 32]).await;
    let _ = tokio::time::timeout(T, v.conn.closed()).await;
    assert_eq!(close_reason(&v.conn), Some(Reason::ProtocolViolation));
    gw.flush_audit().await;
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert!(log.contains("policy_violation"));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_that_never_reads_is_cut_off_at_the_login_deadline() {
    let mut fx = Fixture::new(&[], &["u1"]);
    fx.config.session.login_timeout = Duration::from_secs(1);
    let gw = fx.start().await;
    // A zero receive window: the gateway's Welcome can never be written.
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), Some(0)).await;
    assert!(
        v.send(&ViewerToGateway::Hello {
            version: PROTOCOL_VERSION
        })
        .await
    );
    let closed = tokio::time::timeout(T, v.conn.closed()).await;
    assert!(
        closed.is_ok(),
        "connection still open past the login deadline"
    );
    assert!(gw.metrics().violations("viewer", "timeout") >= 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_gone_before_its_login_result_does_not_keep_a_session_slot() {
    let mut fx = Fixture::new(&["a"], &["u1"]);
    // Bounds how long a second login waits for a session still "starting".
    fx.config.session.start_timeout = Duration::from_secs(2);
    let gw = fx.start().await;
    let _ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let mut gone = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    let hello = ViewerToGateway::Hello {
        version: PROTOCOL_VERSION,
    };
    assert!(gone.send(&hello).await);
    let welcome = gone.next(T).await;
    assert!(matches!(welcome, Some(GatewayToViewer::Welcome { .. })));
    // The LoginResult write fails: the viewer stopped reading before it logged in.
    gone.stop_reading();
    let login = ViewerToGateway::Login {
        user: "u1".into(),
        password: PASSWORD.into(),
    };
    assert!(gone.send(&login).await);
    let m = gw.metrics();
    assert!(
        tsuitate_testkit::eventually(T, || async { m.login_success.load(Relaxed) >= 1 }).await,
        "the first login was not checked"
    );
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    let (status, _) = v.login("u1", PASSWORD).await;
    assert_eq!(
        status,
        LoginStatus::Ok,
        "the first login left its slot behind"
    );
    let ready = v.next(T).await;
    assert!(
        matches!(ready, Some(GatewayToViewer::SessionReady { .. })),
        "{ready:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_message_flood_is_cut_off() {
    let fx = Fixture::new(&["a"], &["flood"]);
    let gw = fx.start().await;
    let _ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("flood").await;
    // Pings and keyframe requests cost the gateway work but are not input: still limited.
    let ping = ViewerToGateway::Ping {
        nonce: 1,
        viewer_us: 1,
    };
    let mut burst = Vec::new();
    for _ in 0..100 {
        burst.extend_from_slice(&ViewerToGateway::KeyframeRequest.to_bytes());
        burst.extend_from_slice(&ping.to_bytes());
    }
    for _ in 0..100 {
        if !v.send_raw(&burst).await {
            break;
        }
    }
    let (bye, _) = v.until_bye(T).await;
    let _ = tokio::time::timeout(T, v.conn.closed()).await;
    assert!(
        bye == Some(Reason::RateLimited) || close_reason(&v.conn) == Some(Reason::RateLimited),
        "told {bye:?} / {:?}",
        close_reason(&v.conn)
    );
    assert!(gw.metrics().violations("viewer", "rate_limited") >= 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_flood_reaches_the_agent_only_a_few_times() {
    let fx = Fixture::new(&["a"], &["u1"]);
    let gw = fx.start().await;
    let ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u1").await;
    // Alternating sizes: each differs from the last one asked for.
    for i in 0..200u16 {
        let r = ViewerToGateway::Resize {
            width: 640 + (i % 2) * 2,
            height: 480,
        };
        assert!(v.send(&r).await);
    }
    // Input after the resizes reaches the agent after every resize that was forwarded.
    let mark = ViewerToGateway::Input(vec![InputEvent::PointerMove { x: 1, y: 1 }]);
    assert!(v.send(&mark).await);
    let stats = ag.stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async { stats.input_events.load(Relaxed) >= 1 }).await,
        "the viewer was cut off or its input lost"
    );
    let forwarded = stats.resizes.load(Relaxed);
    // The burst (and what refilled while the test ran), not 200.
    assert!(forwarded <= 20, "{forwarded} resizes reached the agent");
    gw.shutdown().await;
}

/// A viewer that stopped reading is replaced by the same user's new login: its `Bye` cannot be
/// queued, yet its connection is closed with `Replaced` within a bounded time, and its input
/// never again reaches the browser — input is bound to the viewer that is attached now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_viewer_that_stopped_reading_is_closed_and_its_input_goes_nowhere() {
    let fx = Fixture::new(&["a"], &["u1"]);
    let gw = fx.start().await;
    let ag = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let tiny = tsuitate_transport::Tuning {
        stream_receive_window: 64,
        receive_window: 256,
        ..tsuitate_transport::Tuning::default()
    };
    let mut old: TestViewer = TestViewer::connect_as(gw.viewer_addr, &fx.ca(), &tiny, None).await;
    assert!(!old.login_ready("u1").await);
    // It stops reading: frames pile up until its queue is full.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut new = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(
        new.login_ready("u1").await,
        "the new login resumes the session"
    );
    new.frames(1, T).await;

    let before = ag.stats.input_events.load(Relaxed);
    let stale = ViewerToGateway::Input(vec![InputEvent::PointerMove { x: 9, y: 9 }; 4]);
    for _ in 0..5 {
        old.send(&stale).await;
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), old.conn.closed()).await;
    assert!(closed.is_ok(), "the replaced viewer was closed within 5 s");
    assert_eq!(close_reason(&old.conn), Some(Reason::Replaced));
    // The new viewer's input still arrives; the old one's never did.
    let mine = ViewerToGateway::Input(vec![InputEvent::PointerMove { x: 3, y: 3 }]);
    assert!(new.send(&mine).await);
    let mut arrived = false;
    for _ in 0..100 {
        if ag.stats.input_events.load(Relaxed) > before {
            arrived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(arrived, "the attached viewer's input arrives");
    assert_eq!(
        ag.stats.input_events.load(Relaxed),
        before + 1,
        "only the attached viewer's one event reached the agent"
    );
    gw.shutdown().await;
}
