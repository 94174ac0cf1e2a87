//! The admin API against the real gateway with live sessions (synthetic agents, protocol-level
//! viewers): credentials, the session list, ending one session, the emergency stop of every
//! session and of one agent, and resume — each audited.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use tsuitate_gateway::{admin, GatewayHandle};
use tsuitate_protocol::{GatewayToViewer, Reason, ViewerToGateway, PROTOCOL_VERSION};
use tsuitate_testkit::agent::AgentOptions;
use tsuitate_testkit::fixture::{Fixture, PASSWORD};
use tsuitate_testkit::viewer::TestViewer;

const T: Duration = Duration::from_secs(20);

/// A fixture whose gateway has an admin tokens file with admin "suzuki"; returns the token.
fn with_admin(fx: &mut Fixture) -> String {
    let path = fx.dir.path().join("admin-tokens.toml");
    let token = admin::add_token(&path, "suzuki").unwrap();
    fx.config.admin_tokens_file = Some(path);
    token
}

async fn api(gw: &GatewayHandle, method: &str, path: &str, token: &str) -> (u16, Value) {
    let (addr, m, p, t) = (
        gw.admin_addr.to_string(),
        method.to_owned(),
        path.to_owned(),
        token.to_owned(),
    );
    tokio::task::spawn_blocking(move || admin::call(&addr, &m, &p, &t).unwrap())
        .await
        .unwrap()
}

fn audit(fx: &Fixture) -> Vec<Value> {
    std::fs::read_to_string(fx.audit_path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Hello, Login: the gateway's first answer to the login.
async fn login_answer(gw: &GatewayHandle, fx: &Fixture, user: &str) -> Option<GatewayToViewer> {
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.send(&ViewerToGateway::Hello {
        version: PROTOCOL_VERSION,
    })
    .await;
    assert!(matches!(
        v.next(T).await,
        Some(GatewayToViewer::Welcome { .. })
    ));
    v.send(&ViewerToGateway::Login {
        user: user.into(),
        password: PASSWORD.into(),
    })
    .await;
    v.next(T).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_need_a_valid_token_and_every_call_is_audited() {
    let mut fx = Fixture::new(&["a"], &["u1"]);
    let token = with_admin(&mut fx);
    let gw = fx.start().await;
    let (status, body) = api(&gw, "GET", "/admin/v1/status", "").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error_ja"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, _) = api(&gw, "GET", "/admin/v1/sessions", &"0".repeat(64)).await;
    assert_eq!(status, 401);
    let (status, _) = api(&gw, "POST", "/admin/v1/emergency-stop", "not-the-token").await;
    assert_eq!(status, 401);
    assert!(
        gw.gauges().emergency_stop == 0,
        "a refused stop stopped nothing"
    );
    let (status, body) = api(&gw, "GET", "/admin/v1/status", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["emergency_stop"], Value::Null);
    let (status, _) = api(&gw, "GET", "/admin/v1/emergency-stop", &token).await;
    assert_eq!(status, 405, "a stop is a POST");
    let (status, _) = api(&gw, "POST", "/admin/v1/sessions/123/end", &token).await;
    assert_eq!(status, 404, "no such session");
    let (status, _) = api(&gw, "POST", "/admin/v1/emergency-stop?agent=../x", &token).await;
    assert_eq!(status, 404, "not an agent id");
    assert_eq!(gw.gauges().agents_stopped, 0);
    assert_eq!(
        gw.metrics()
            .admin_denied
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    gw.flush_audit().await;
    let records = audit(&fx);
    let denied: Vec<&str> = records
        .iter()
        .filter(|r| r["event"] == "admin_denied")
        .filter_map(|r| r["cause"].as_str())
        .collect();
    assert_eq!(denied, ["no_token", "bad_token", "bad_token"]);
    let calls: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["event"] == "admin_call")
        .map(|r| (r["admin"].as_str().unwrap(), r["call"].as_str().unwrap()))
        .collect();
    assert_eq!(
        calls,
        [
            ("suzuki", "status"),
            ("suzuki", "method_not_allowed"),
            ("suzuki", "end"),
            ("suzuki", "emergency_stop")
        ]
    );
    assert!(
        !std::fs::read_to_string(fx.audit_path())
            .unwrap()
            .contains(&token),
        "the token itself is never logged"
    );
    gw.shutdown().await;

    // Without a tokens file the admin API is off.
    let fx = Fixture::new(&["a"], &["u1"]);
    let gw = fx.start().await;
    let (status, _) = api(&gw, "GET", "/admin/v1/status", &token).await;
    assert_eq!(status, 403);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_stop_ends_five_sessions_at_once_and_refuses_logins_until_resume() {
    let users = ["u1", "u2", "u3", "u4", "u5"];
    let mut fx = Fixture::new(&["a", "b"], &users);
    let token = with_admin(&mut fx);
    let gw = fx.start().await;
    let _a = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let _b = fx.connect_agent(&gw, AgentOptions::new("b")).await;
    let mut viewers = Vec::new();
    for u in users {
        let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
        assert!(!v.login_ready(u).await);
        v.frames(2, T).await;
        viewers.push(v);
    }
    // u1's viewer reports its latency: the session list and the session's audit record show it.
    for (p50, p95) in [(30_000, 90_000), (21_500, 40_000)] {
        viewers[0]
            .send(&ViewerToGateway::LatencyReport {
                frames: 30,
                p50_us: p50,
                p95_us: p95,
            })
            .await;
    }
    let list = {
        let mut list = Value::Null;
        for _ in 0..100 {
            list = api(&gw, "GET", "/admin/v1/sessions", &token).await.1;
            let u1 = list["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["user"] == "u1")
                .cloned()
                .unwrap();
            if u1["latency_p50_ms"] == 21.5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        list
    };
    let listed = list["sessions"].as_array().unwrap();
    let u1 = listed.iter().find(|s| s["user"] == "u1").unwrap();
    assert_eq!(
        (&u1["latency_p50_ms"], &u1["latency_p95_ms"]),
        (&21.5.into(), &40.0.into()),
        "{u1}"
    );
    let mut who: Vec<&str> = listed.iter().map(|s| s["user"].as_str().unwrap()).collect();
    who.sort_unstable();
    assert_eq!(who, users, "{list}");
    assert!(listed.iter().all(|s| s["attached"] == true
        && s["viewer"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
        && s["frames"].as_u64().unwrap_or(0) >= 2));

    let t0 = Instant::now();
    let (status, body) = api(&gw, "POST", "/admin/v1/emergency-stop", &token).await;
    assert_eq!((status, body["ended"].as_u64()), (200, Some(5)), "{body}");
    for v in &mut viewers {
        assert_eq!(v.until_bye(T).await.0, Some(Reason::EmergencyStop));
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "all five ended in {took:?}");
    assert_eq!(gw.gauges().emergency_stop, 1);

    // Logins are refused with the reason while stopped.
    match login_answer(&gw, &fx, "u1").await {
        Some(GatewayToViewer::Bye { reason }) => assert_eq!(reason, Reason::EmergencyStop),
        other => panic!("expected Bye(EmergencyStop), got {other:?}"),
    }
    let (_, status) = api(&gw, "GET", "/admin/v1/status", &token).await;
    assert_eq!(status["emergency_stop"]["by"], "suzuki");
    assert_eq!(status["sessions"], 0);

    let (code, _) = api(&gw, "POST", "/admin/v1/resume", &token).await;
    assert_eq!(code, 200);
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(!v.login_ready("u1").await, "service is back after resume");
    assert_eq!(v.frames(2, T).await.len(), 2);
    assert_eq!(gw.gauges().emergency_stop, 0);

    gw.flush_audit().await;
    let records = audit(&fx);
    let ended = records
        .iter()
        .filter(|r| r["event"] == "session_end" && r["reason"] == "EmergencyStop")
        .count();
    assert_eq!(ended, 5, "one audit record per session");
    let u1_end = records
        .iter()
        .find(|r| r["event"] == "session_end" && r["user"] == "u1")
        .unwrap();
    assert_eq!(
        (
            &u1_end["latency_reports"],
            &u1_end["latency_p50_ms"],
            &u1_end["latency_worst_p95_ms"]
        ),
        (&2.into(), &21.5.into(), &90.0.into()),
        "{u1_end}"
    );
    let stop = records
        .iter()
        .find(|r| r["event"] == "emergency_stop")
        .unwrap();
    assert_eq!(
        (&stop["admin"], &stop["scope"], &stop["sessions_ended"]),
        (&"suzuki".into(), &"all".into(), &5.into())
    );
    assert!(records.iter().any(|r| r["event"] == "login_failure"
        && r["cause"] == "emergency_stop"
        && r["user"] == "u1"));
    assert!(records
        .iter()
        .any(|r| r["event"] == "emergency_resume" && r["was_stopped"] == true));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_or_one_agent_can_be_ended_and_the_others_go_on() {
    let mut fx = Fixture::new(&["a", "b"], &["u1", "u2", "u3"]);
    let token = with_admin(&mut fx);
    let gw = fx.start().await;
    let _a = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let _b = fx.connect_agent(&gw, AgentOptions::new("b")).await;
    let mut v = Vec::new();
    for u in ["u1", "u2", "u3"] {
        let mut x = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
        assert!(!x.login_ready(u).await);
        x.frames(1, T).await;
        v.push(x);
    }
    let (_, list) = api(&gw, "GET", "/admin/v1/sessions", &token).await;
    let sessions = list["sessions"].as_array().unwrap().clone();
    let find = |user: &str| {
        sessions
            .iter()
            .find(|s| s["user"] == user)
            .cloned()
            .unwrap()
    };

    // End u1's session: u1 is told an administrator ended it; the others go on.
    let id = find("u1")["id"].as_str().unwrap().to_owned();
    let (code, _) = api(&gw, "POST", &format!("/admin/v1/sessions/{id}/end"), &token).await;
    assert_eq!(code, 200);
    assert_eq!(v[0].until_bye(T).await.0, Some(Reason::AdminClosed));
    assert_eq!(v[1].frames(3, T).await.len(), 3);

    // Stop the agent of u2: its sessions end, the other agent's go on, and new logins go to
    // the other agent only.
    let agent = find("u2")["agent"].as_str().unwrap().to_owned();
    let other = if agent == "a" { "b" } else { "a" };
    let (code, body) = api(
        &gw,
        "POST",
        &format!("/admin/v1/emergency-stop?agent={agent}"),
        &token,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(v[1].until_bye(T).await.0, Some(Reason::EmergencyStop));
    if find("u3")["agent"] == other {
        assert_eq!(
            v[2].frames(3, T).await.len(),
            3,
            "the other agent's session goes on"
        );
    }
    assert_eq!(gw.gauges().emergency_stop, 0, "not a stop of everything");
    let mut again = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(!again.login_ready("u2").await);
    let (_, list) = api(&gw, "GET", "/admin/v1/sessions", &token).await;
    let placed = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "u2")
        .map(|s| s["agent"].clone());
    assert_eq!(placed, Some(other.into()), "not on the stopped agent");
    let (_, status) = api(&gw, "GET", "/admin/v1/status", &token).await;
    assert_eq!(status["stopped_agents"], serde_json::json!([agent]));
    let (code, _) = api(
        &gw,
        "POST",
        &format!("/admin/v1/resume?agent={agent}"),
        &token,
    )
    .await;
    assert_eq!(code, 200);
    let (_, status) = api(&gw, "GET", "/admin/v1/status", &token).await;
    assert_eq!(status["stopped_agents"], serde_json::json!([]));

    // Drain the other agent (before an upgrade): its sessions go on, new ones go elsewhere.
    let (code, _) = api(
        &gw,
        "POST",
        &format!("/admin/v1/agents/{other}/drain"),
        &token,
    )
    .await;
    assert_eq!(code, 200);
    let (_, list) = api(&gw, "GET", "/admin/v1/agents", &token).await;
    let drained = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == other)
        .cloned()
        .unwrap();
    assert_eq!(drained["draining"], true, "{list}");
    assert!(
        drained["certificate_expires"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "the agent's certificate expiry is listed: {drained}"
    );
    assert_eq!(again.frames(3, T).await.len(), 3, "running sessions go on");
    let mut u1 = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(!u1.login_ready("u1").await);
    let (_, list) = api(&gw, "GET", "/admin/v1/sessions", &token).await;
    let placed = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "u1")
        .map(|s| s["agent"].clone());
    assert_eq!(
        placed,
        Some(agent.clone().into()),
        "not on the draining agent"
    );
    gw.flush_audit().await;
    assert!(audit(&fx)
        .iter()
        .any(|r| r["event"] == "agent_drain" && r["agent"] == other));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_stop_survives_a_gateway_restart_until_resumed() {
    let mut fx = Fixture::new(&["a", "b"], &["u1"]);
    let token = with_admin(&mut fx);
    let stop_file = {
        let mut p = fx.audit_path().as_os_str().to_owned();
        p.push(".emergency.json");
        std::path::PathBuf::from(p)
    };
    let gw = fx.start().await;
    let (_, body) = api(&gw, "POST", "/admin/v1/emergency-stop", &token).await;
    assert_eq!(body["persisted"], true, "{body}");
    api(&gw, "POST", "/admin/v1/emergency-stop?agent=b", &token).await;
    assert!(stop_file.is_file());
    gw.shutdown().await;

    // Restarted (an admin "fixing" things mid-incident): still stopped, logins still refused.
    let gw = fx.start().await;
    assert_eq!(gw.gauges().emergency_stop, 1);
    match login_answer(&gw, &fx, "u1").await {
        Some(GatewayToViewer::Bye { reason }) => assert_eq!(reason, Reason::EmergencyStop),
        other => panic!("expected Bye(EmergencyStop) after a restart, got {other:?}"),
    }
    let (_, status) = api(&gw, "GET", "/admin/v1/status", &token).await;
    assert_eq!(status["emergency_stop"]["by"], "suzuki", "{status}");
    assert_eq!(status["stopped_agents"], serde_json::json!(["b"]));
    api(&gw, "POST", "/admin/v1/resume", &token).await;
    let (_, body) = api(&gw, "POST", "/admin/v1/resume?agent=b", &token).await;
    assert_eq!(body["persisted"], true);
    assert!(!stop_file.exists(), "nothing stopped: no stop file");
    gw.flush_audit().await;
    assert!(audit(&fx)
        .iter()
        .any(|r| r["event"] == "emergency_stop_restored" && r["all"] == true));
    gw.shutdown().await;

    // And after resuming, a restart is in normal operation.
    let gw = fx.start().await;
    assert_eq!(gw.gauges().emergency_stop, 0);
    let _a = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(!v.login_ready("u1").await);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_report_their_browser_and_policy_to_admin_agents_and_the_self_check() {
    use tsuitate_gateway::selfcheck;
    let mut fx = Fixture::new(&["a", "b"], &["u1"]);
    let token = with_admin(&mut fx);
    let gw = fx.start().await;
    let _a = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let b_opts = AgentOptions {
        browser: "Chromium 120.0.6099.224".into(),
        policy: String::new(),
        ..AgentOptions::new("b")
    };
    let _b = fx.connect_agent(&gw, b_opts).await;
    let (status, body) = api(&gw, "GET", "/admin/v1/agents", &token).await;
    assert_eq!(status, 200, "{body}");
    let agents = body["agents"].as_array().unwrap();
    let a = agents.iter().find(|a| a["id"] == "a").unwrap();
    assert_eq!(a["browser"], "Chromium 131.0.6778.85", "{a}");
    assert_eq!(a["policy_sha256"], "5e".repeat(32), "{a}");
    let connected = audit(&fx)
        .into_iter()
        .find(|r| r["event"] == "agent_connected" && r["agent"] == "a")
        .unwrap();
    assert_eq!(connected["browser"], "Chromium 131.0.6778.85");

    // The self-check asks the running gateway: "b" has no policy (fail), the versions differ
    // (warn); without a token the item is a warning.
    let mut cfg = fx.config.clone();
    cfg.admin_listen = gw.admin_addr;
    let run = |token: Option<String>| {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || {
            let opts = selfcheck::Options {
                admin_token: token,
                ..selfcheck::Options::default()
            };
            selfcheck::run(&cfg, &opts)
        })
    };
    let items = run(Some(token.clone())).await.unwrap();
    let status_of = |items: &[selfcheck::Item], id: &str| {
        items
            .iter()
            .find(|i| i.id == id)
            .map(|i| (i.status, i.evidence.clone()))
            .unwrap_or_else(|| panic!("no {id}: {items:#?}"))
    };
    let (s, ev) = status_of(&items, "agent.a");
    assert_eq!(s, selfcheck::Status::Pass, "{ev}");
    assert!(
        ev.contains("Chromium 131.0.6778.85") && ev.contains("5e5e5e"),
        "{ev}"
    );
    let (s, ev) = status_of(&items, "agent.b");
    assert_eq!(s, selfcheck::Status::Fail, "{ev}");
    assert!(ev.contains("no managed browser policy"), "{ev}");
    let (s, ev) = status_of(&items, "agents.same_browser");
    assert_eq!(s, selfcheck::Status::Warn, "{ev}");
    assert!(
        ev.contains("Chromium 120.0.6099.224") && ev.contains("Chromium 131.0.6778.85"),
        "{ev}"
    );
    let items = run(None).await.unwrap();
    assert_eq!(status_of(&items, "agents").0, selfcheck::Status::Warn);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_watermark_reaches_the_agent_with_the_user_and_the_viewer_address() {
    let mut fx = Fixture::new(&["a"], &["山田"]);
    fx.config.watermark = tsuitate_gateway::config::WatermarkConfig {
        enabled: true,
        position: "tiled".into(),
        opacity: 25,
        ..Default::default()
    };
    let gw = fx.start().await;
    let a = fx.connect_agent(&gw, AgentOptions::new("a")).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(!v.login_ready("山田").await);
    v.frames(1, T).await;
    let marks = a.stats.watermarks.lock().unwrap().clone();
    let w = marks[0].clone().expect("a watermark");
    assert_eq!(w.text, "山田 127.0.0.1", "{w:?}");
    assert_eq!(w.place, tsuitate_protocol::WatermarkPlace::Tiled);
    assert_eq!((w.opacity, w.size_px, w.utc_offset_min), (25, 16, 540));
    gw.shutdown().await;
}
