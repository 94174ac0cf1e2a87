//! Session lifetime: reconnect, takeover, timeouts, agent loss, shutdown, slow viewers.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tsuitate_gateway::GatewayHandle;
use tsuitate_protocol::{GatewayToViewer, LoginStatus, Reason};
use tsuitate_testkit::agent::{self, AgentOptions, Behaviour, SyntheticAgent};
use tsuitate_testkit::fixture::Fixture;
use tsuitate_testkit::viewer::TestViewer;

const T: Duration = Duration::from_secs(20);

async fn setup(fx: &Fixture, opts: AgentOptions) -> (GatewayHandle, SyntheticAgent) {
    let gw = fx.start().await;
    let ag = fx.connect_agent(&gw, opts).await;
    (gw, ag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_linger_resumes_the_same_browser_from_a_keyframe() {
    let fx = Fixture::new(&["a"], &["u1"]);
    let (gw, ag) = setup(&fx, AgentOptions::new("a")).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(!v.login_ready("u1").await);
    v.frames(15, T).await;
    v.conn.close(0u32.into(), b"network gone");
    let stats = ag.stats.clone();
    let gwm = &gw;
    assert!(
        tsuitate_testkit::eventually(T, || async { gwm.gauges().sessions_lingering == 1 }).await
    );
    let mut v2 = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(v2.login_ready("u1").await, "resumed");
    let first = v2.frames(1, T).await;
    assert!(
        first[0].header.keyframe,
        "a resumed viewer starts from a keyframe"
    );
    assert_eq!(stats.sessions_opened.load(Relaxed), 1, "same browser");
    let st = stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async { st.keyframe_requests.load(Relaxed) >= 1 }).await
    );
    assert_eq!(gw.metrics().sessions_resumed.load(Relaxed), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_login_takes_the_session_over() {
    let fx = Fixture::new(&["a"], &["u1"]);
    let (gw, ag) = setup(&fx, AgentOptions::new("a")).await;
    let mut v1 = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v1.login_ready("u1").await;
    v1.frames(2, T).await;
    let mut v2 = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(v2.login_ready("u1").await);
    assert_eq!(v1.until_bye(T).await.0, Some(Reason::Replaced));
    assert_eq!(v2.frames(5, T).await.len(), 5);
    assert_eq!(ag.stats.sessions_opened.load(Relaxed), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_expiry_and_idle_timeout_end_sessions() {
    let mut fx = Fixture::new(&["a"], &["u1", "u2"]);
    fx.config.session.linger = Duration::from_secs(1);
    fx.config.session.login_timeout = Duration::from_secs(1);
    fx.config.session.idle_timeout = Some(Duration::from_secs(2));
    let (gw, ag) = setup(&fx, AgentOptions::new("a")).await;
    // Idle: no input at all.
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u1").await;
    assert_eq!(v.until_bye(T).await.0, Some(Reason::IdleTimeout));
    // Linger: the viewer leaves and does not come back.
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u2").await;
    v.conn.close(0u32.into(), b"gone");
    let stats = ag.stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async {
            stats.closes.lock().unwrap().contains(&Reason::Normal)
        })
        .await
    );
    let gwr = &gw;
    assert!(
        tsuitate_testkit::eventually(T, || async {
            gwr.gauges().sessions_lingering == 0 && gwr.gauges().sessions_active == 0
        })
        .await
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_end_and_agent_loss_reach_the_viewer() {
    let fx = Fixture::new(&["a", "b"], &["u1", "u2"]);
    let mut opts = AgentOptions::new("a");
    opts.behaviour = Behaviour::EndSession;
    opts.capacity = 1;
    let (gw, a) = setup(&fx, opts).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u1").await;
    assert_eq!(v.until_bye(T).await.0, Some(Reason::BrowserExited));
    a.conn.close(0u32.into(), b"done");
    let gwr = &gw;
    assert!(tsuitate_testkit::eventually(T, || async { gwr.gauges().agents == 0 }).await);

    let (c, k) = fx.agent_identity("b");
    let mut opts = AgentOptions::new("b");
    opts.capacity = 1;
    let b = agent::connect(gw.agent_addr, &fx.ca(), Some((&c, &k)), opts)
        .await
        .unwrap();
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u2").await;
    v.frames(2, T).await;
    b.conn.close(0u32.into(), b"crash");
    assert_eq!(v.until_bye(T).await.0, Some(Reason::AgentLost));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_tells_both_sides() {
    let fx = Fixture::new(&["a"], &["u1"]);
    let (gw, ag) = setup(&fx, AgentOptions::new("a")).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u1").await;
    v.frames(2, T).await;
    let audit = fx.audit_path().to_owned();
    let shut = tokio::spawn(gw.shutdown());
    assert_eq!(v.until_bye(T).await.0, Some(Reason::Shutdown));
    shut.await.unwrap();
    // The agent is not asked to close the browser: it lingers there for a resume through
    // another gateway, or this one restarted (docs/gateway.md "Shutdown").
    assert!(ag.stats.closes.lock().unwrap().is_empty());
    assert!(ag.stats.byes.lock().unwrap().contains(&Reason::Shutdown));
    let log = std::fs::read_to_string(audit).unwrap();
    assert!(log.contains("gateway_stop") && log.contains("\"reason\":\"Shutdown\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_viewer_does_not_delay_a_fast_one() {
    let fx = Fixture::new(&["a"], &["slow", "fast"]);
    let mut opts = AgentOptions::new("a");
    opts.fps = 60;
    let (gw, ag) = setup(&fx, opts).await;
    // The slow viewer has a tiny receive window and stops reading after SessionReady.
    let mut slow = TestViewer::connect(gw.viewer_addr, &fx.ca(), Some(8 * 1024)).await;
    slow.login_ready("slow").await;
    let mut fast = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    fast.login_ready("fast").await;
    let frames = fast.frames(120, T).await;
    assert_eq!(frames.len(), 120);
    let m = gw.metrics();
    let stats = ag.stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async {
            m.frames_dropped_slow_viewer.load(Relaxed) > 0
        })
        .await
    );
    // The slow viewer's session asked for keyframes to recover with.
    let st = stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async { st.keyframe_requests.load(Relaxed) >= 1 }).await
    );
    // The fast viewer still gets frames while the slow one stalls.
    assert_eq!(fast.frames(30, T).await.len(), 30);
    // The slow viewer, once it reads again, resumes from a keyframe.
    let mut saw_gap_then_key = false;
    let mut last = 0;
    for _ in 0..200 {
        match slow.next(T).await {
            Some(GatewayToViewer::Video(f)) => {
                if last != 0 && f.header.sequence > last + 1 {
                    assert!(f.header.keyframe, "after a gap comes a keyframe");
                    saw_gap_then_key = true;
                    break;
                }
                last = f.header.sequence;
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(saw_gap_then_key);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_per_user_off_gives_a_second_browser() {
    let mut fx = Fixture::new(&["a"], &["u1"]);
    fx.config.session.one_session_per_user = false;
    let (gw, ag) = setup(&fx, AgentOptions::new("a")).await;
    let mut v1 = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v1.login_ready("u1").await;
    let mut v2 = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    let (status, _) = v2.login("u1", tsuitate_testkit::fixture::PASSWORD).await;
    assert_eq!(status, LoginStatus::Ok);
    // LoginResult comes before the agent is asked to open the second browser.
    assert!(matches!(
        v2.next(T).await,
        Some(GatewayToViewer::SessionReady { resumed: false, .. })
    ));
    assert_eq!(ag.stats.sessions_opened.load(Relaxed), 2);
    assert_eq!(v1.frames(3, T).await.len(), 3);
    gw.shutdown().await;
}
