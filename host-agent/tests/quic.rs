//! The agent against a minimal in-test gateway over loopback QUIC with mTLS: Hello/Welcome,
//! Ping/Pong, a session opened with a real browser (Started, then a keyframe), capacity
//! reporting and refusal, a resize (the page and the frames follow, the stream stays valid for
//! the gateway's sanitizer, the size is clamped to `max_width`×`max_height`), and a malformed
//! message ending the session cleanly.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tsuitate_agent::config::AgentConfig;
use tsuitate_protocol::{
    AgentSessionToGateway, AgentToGateway, GatewayToAgent, GatewayToAgentSession, Limits,
    NalSanitizer, Reason, AGENT_PROTOCOL_VERSION,
};
use tsuitate_testkit::agent_gateway::AgentGateway;
use tsuitate_testkit::pki::Pki;
use tsuitate_testkit::stack::{s, table};
use tsuitate_testkit::{send, Reader};
use tsuitate_transport::tls;

/// The owner every session of these tests has.
const OWNER: [u8; 16] = [0x42; 16];

/// How long the test waits for any one message (a liveness bound).
const READ_LIMIT: Duration = Duration::from_secs(60);

/// HTTPS for the start page, with the test CA's `localhost` certificate.
fn page_tls(pki: &Pki) -> Arc<rustls::ServerConfig> {
    let (cert, key) = pki.gateway();
    let tls = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            tls::load_certs(&cert).expect("cert"),
            tls::load_key(&key).expect("key"),
        )
        .expect("page tls");
    Arc::new(tls)
}

/// The test CA (with `agent-1`'s certificate) and a work directory the browser user can
/// traverse to its session directory.
fn pki_and_work() -> (tempfile::TempDir, Pki, tempfile::TempDir) {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::create(pki_dir.path(), &["agent-1"]);
    let work = tempfile::tempdir().expect("work dir");
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod work dir");
    (pki_dir, pki, work)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_serves_a_gateway() {
    let (_pki_dir, pki, work) = pki_and_work();
    let gateway = AgentGateway::bind(&pki);
    // The start page is HTTPS with a certificate from the test CA, trusted only through
    // `extra_ca`: the page reporting back proves the browser trusts the bundle.
    let (url, reports) = common::serve_tls(
        "<html><body style='background:#0a0'>ok<script>fetch('/report',{method:'POST',body:'loaded'});\
         addEventListener('resize',function(){fetch('/report',{method:'POST',body:'inner:'+innerWidth})})</script></body></html>",
        page_tls(&pki),
    );
    let ca = s(pki.ca().display().to_string());
    let config = agent_config(
        &pki,
        work.path(),
        &url,
        &[gateway.addr],
        &[
            ("max_sessions", toml::Value::Integer(1)),
            ("bitrate_kbps", toml::Value::Integer(2000)),
            ("extra_ca", ca),
            ("max_width", toml::Value::Integer(1024)),
            ("max_height", toml::Value::Integer(768)),
        ],
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(tsuitate_agent::client::run(config, stop_rx));

    // Control stream: Hello → Welcome; Ping → Pong.
    let conn = gateway.accept(Duration::from_secs(20)).await;
    let (mut ctl_send, ctl_recv) = conn.accept_bi().await.expect("control stream");
    let mut ctl = Reader::<AgentToGateway>::with_limit(ctl_recv, READ_LIMIT);
    match ctl.next().await {
        Some(AgentToGateway::Hello {
            version,
            agent_id,
            capacity,
            browser,
            policy,
        }) => {
            assert_eq!(
                (version, agent_id.as_str(), capacity),
                (AGENT_PROTOCOL_VERSION, "agent-1", 1)
            );
            assert!(browser.starts_with("Chromium "), "browser {browser:?}");
            assert_eq!(policy.len(), 64, "policy digest {policy:?}");
        }
        other => panic!("expected Hello, got {other:?}"),
    }
    send(
        &mut ctl_send,
        &GatewayToAgent::Welcome {
            version: AGENT_PROTOCOL_VERSION,
        },
    )
    .await;
    send(
        &mut ctl_send,
        &GatewayToAgent::Ping {
            nonce: 7,
            gateway_us: 1,
        },
    )
    .await;
    let pong = loop {
        match ctl.next().await {
            Some(AgentToGateway::Pong {
                nonce, agent_us, ..
            }) => break (nonce, agent_us),
            Some(_) => continue,
            None => panic!("control stream ended"),
        }
    };
    assert_eq!(pong.0, 7);
    assert!(
        pong.1 > 1_600_000_000_000_000,
        "agent_us is µs since the epoch"
    );

    // A session: Open → Started → a keyframe of the right size.
    let (mut s1, r1) = conn.open_bi().await.expect("session stream");
    send(
        &mut s1,
        &GatewayToAgentSession::Open {
            session_id: 1,
            width: 641,
            height: 480,
            watermark: None,
            owner: OWNER,
            resume: None,
        },
    )
    .await;
    let mut r1 = Reader::<AgentSessionToGateway>::with_limit(r1, READ_LIMIT);
    match r1.next().await {
        Some(AgentSessionToGateway::Started {
            width,
            height,
            resumed: false,
            age_s: 0,
        }) => {
            assert_eq!((width, height), (640, 480))
        }
        other => panic!("expected Started, got {other:?}"),
    }
    let mut sanitizer = NalSanitizer::new(Limits::default());
    match r1.next().await {
        Some(AgentSessionToGateway::Video(f)) => {
            assert!(sanitizer.sanitize(&f.header, &f.data).is_ok(), "sanitizer");
            assert!(f.header.keyframe, "first frame is a keyframe");
            assert_eq!((f.header.width, f.header.height), (640, 480));
            let mut view = common::View::new();
            assert!(view.decode(&f.data), "keyframe decodes");
            assert_eq!((view.width, view.height), (640, 480));
        }
        other => panic!("expected Video, got {other:?}"),
    }
    assert!(
        reports
            .wait_for(Duration::from_secs(30), |r| r == "loaded")
            .is_some(),
        "HTTPS page trusted through extra_ca loaded"
    );

    // Resize: odd sizes round down to even; beyond max_width×max_height is clamped. Each
    // new size arrives as an IDR of that size which the gateway's sanitizer accepts, and the
    // page sees the new window width.
    for ((w, h), want) in [((801, 601), (800, 600)), ((3840, 2160), (1024, 768))] {
        send(
            &mut s1,
            &GatewayToAgentSession::Resize {
                width: w,
                height: h,
            },
        )
        .await;
        resized_keyframe(&mut r1, &mut sanitizer, want).await;
        let inner = format!("inner:{}", want.0);
        assert!(
            reports
                .wait_for(Duration::from_secs(30), |r| r == inner)
                .is_some(),
            "page sees {inner}"
        );
    }
    let free_is = |want: u16| move |m: &AgentToGateway| matches!(m, AgentToGateway::Capacity { free } if *free == want);
    let mut saw_zero = false;
    while !saw_zero {
        match ctl.next().await {
            Some(m) => saw_zero = free_is(0)(&m),
            None => panic!("control ended"),
        }
    }

    // No capacity left: a second session is refused.
    let (mut s2, r2) = conn.open_bi().await.expect("second stream");
    send(
        &mut s2,
        &GatewayToAgentSession::Open {
            session_id: 2,
            width: 640,
            height: 480,
            watermark: None,
            owner: OWNER,
            resume: None,
        },
    )
    .await;
    let mut r2 = Reader::<AgentSessionToGateway>::with_limit(r2, READ_LIMIT);
    assert_eq!(
        r2.next().await,
        Some(AgentSessionToGateway::Ended {
            reason: Reason::NoCapacity
        })
    );

    // A malformed message (unknown kind) ends the session with ProtocolViolation.
    s1.write_all(&[0xee, 0, 0, 0, 0])
        .await
        .expect("write garbage");
    let ended = after_video(&mut r1).await;
    assert_eq!(
        ended,
        Some(AgentSessionToGateway::Ended {
            reason: Reason::ProtocolViolation
        })
    );
    let mut saw_one = false;
    while !saw_one {
        match ctl.next().await {
            Some(m) => saw_one = free_is(1)(&m),
            None => panic!("control ended"),
        }
    }
    // The session's browser is gone and its directory wiped.
    let agent_dir = work.path().join("tsuitate-agent-agent-1");
    let left = tsuitate_agent::browser::session_processes(&[], &agent_dir);
    assert!(left.is_empty(), "processes left: {left:?}");
    let entries = std::fs::read_dir(&agent_dir)
        .map(|d| d.count())
        .unwrap_or(99);
    assert_eq!(entries, 0, "session directory removed");

    // A crashed browser ends its session with BrowserExited.
    let (mut s3, r3) = conn.open_bi().await.expect("third stream");
    send(
        &mut s3,
        &GatewayToAgentSession::Open {
            session_id: 3,
            width: 640,
            height: 480,
            watermark: None,
            owner: OWNER,
            resume: None,
        },
    )
    .await;
    let mut r3 = Reader::<AgentSessionToGateway>::with_limit(r3, READ_LIMIT);
    assert!(matches!(
        r3.next().await,
        Some(AgentSessionToGateway::Started { .. })
    ));
    let chromium: Vec<u32> = tsuitate_agent::browser::session_processes(&[], &agent_dir)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(15).any(|w| w == b"--user-data-dir"))
        })
        .collect();
    assert!(!chromium.is_empty(), "chromium runs");
    for pid in &chromium {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let ended = after_video(&mut r3).await;
    assert_eq!(
        ended,
        Some(AgentSessionToGateway::Ended {
            reason: Reason::BrowserExited
        })
    );
    let left = tsuitate_agent::browser::session_processes(&[], &agent_dir);
    assert!(left.is_empty(), "processes left after crash: {left:?}");

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), agent).await;
}

/// Read frames (each must pass the gateway's sanitizer) until a keyframe of `want` that
/// decodes to that size.
async fn resized_keyframe(
    r: &mut Reader<AgentSessionToGateway>,
    sanitizer: &mut NalSanitizer,
    want: (u16, u16),
) {
    loop {
        let f = match r.next().await {
            Some(AgentSessionToGateway::Video(f)) => f,
            other => panic!("expected video at {want:?}, got {other:?}"),
        };
        let checked = sanitizer.sanitize(&f.header, &f.data);
        assert!(checked.is_ok(), "sanitizer refused: {checked:?}");
        if (f.header.width, f.header.height) != want {
            continue;
        }
        assert!(f.header.keyframe, "a new size starts with an IDR");
        let mut view = common::View::new();
        assert!(view.decode(&f.data), "keyframe decodes");
        assert_eq!((view.width, view.height), (want.0.into(), want.1.into()));
        return;
    }
}

/// An agent config listing `gateways`, with `extra` keys.
fn agent_config(
    pki: &Pki,
    work: &Path,
    url: &str,
    gateways: &[std::net::SocketAddr],
    extra: &[(&str, toml::Value)],
) -> AgentConfig {
    let (cert, key) = pki.agent("agent-1");
    let path = |p: &Path| s(p.display().to_string());
    let list = gateways
        .iter()
        .map(|a| {
            toml::Value::Table(table([
                ("addr", s(a.to_string())),
                ("server_name", s("localhost")),
            ]))
        })
        .collect();
    let mut toml = table([
        ("agent_id", s("agent-1")),
        ("start_url", s(url)),
        ("gateways", toml::Value::Array(list)),
        ("ca", path(&pki.ca())),
        ("cert", path(&cert)),
        ("key", path(&key)),
        ("work_dir", path(work)),
        ("max_width", toml::Value::Integer(640)),
        ("max_height", toml::Value::Integer(480)),
    ]);
    for (k, v) in extra {
        toml.insert((*k).into(), v.clone());
    }
    if let Some(u) = common::browser_user() {
        toml.insert("browser_user".into(), s(format!("{}:{}", u.uid, u.gid)));
    }
    let text = toml::to_string(&toml).expect("TOML");
    AgentConfig::parse(&text).unwrap_or_else(|e| panic!("{e}"))
}

/// Accept the agent's connection on `gateway` and answer its Hello.
async fn welcome(gateway: &AgentGateway) -> (quinn::Connection, Reader<AgentToGateway>) {
    let conn = gateway.accept(Duration::from_secs(20)).await;
    let (mut ctl_send, ctl_recv) = conn.accept_bi().await.expect("control stream");
    let mut ctl = Reader::<AgentToGateway>::with_limit(ctl_recv, READ_LIMIT);
    assert!(matches!(
        ctl.next().await,
        Some(AgentToGateway::Hello { .. })
    ));
    send(
        &mut ctl_send,
        &GatewayToAgent::Welcome {
            version: AGENT_PROTOCOL_VERSION,
        },
    )
    .await;
    // The control stream's send side must stay open: leak it into the connection's life.
    tokio::spawn(async move {
        let _keep = ctl_send;
        std::future::pending::<()>().await;
    });
    (conn, ctl)
}

/// The next `Held`/`Released` on a control stream (other messages skipped).
async fn next_held(ctl: &mut Reader<AgentToGateway>) -> AgentToGateway {
    loop {
        match ctl.next().await {
            Some(m @ (AgentToGateway::Held { .. } | AgentToGateway::Released { .. })) => return m,
            Some(_) => continue,
            None => panic!("control stream ended"),
        }
    }
}

/// Open a session stream; returns its halves after `Started` (with its `resumed` flag).
async fn open_session(
    conn: &quinn::Connection,
    owner: [u8; 16],
    resume: Option<u64>,
) -> (
    quinn::SendStream,
    Reader<AgentSessionToGateway>,
    Option<bool>,
) {
    let (s, mut r) = open_stream(conn, owner, resume, None).await;
    let resumed = match r.next().await {
        Some(AgentSessionToGateway::Started { resumed, .. }) => Some(resumed),
        _ => None,
    };
    (s, r, resumed)
}

/// Open a session stream with `Open` (640×480, `watermark`) and return its halves.
async fn open_stream(
    conn: &quinn::Connection,
    owner: [u8; 16],
    resume: Option<u64>,
    watermark: Option<tsuitate_protocol::Watermark>,
) -> (quinn::SendStream, Reader<AgentSessionToGateway>) {
    let (mut s, r) = conn.open_bi().await.expect("session stream");
    send(
        &mut s,
        &GatewayToAgentSession::Open {
            session_id: 9,
            width: 640,
            height: 480,
            watermark,
            owner,
            resume,
        },
    )
    .await;
    (
        s,
        Reader::<AgentSessionToGateway>::with_limit(r, READ_LIMIT),
    )
}

/// The first message after any video frames (the session's end).
async fn after_video(r: &mut Reader<AgentSessionToGateway>) -> Option<AgentSessionToGateway> {
    loop {
        match r.next().await {
            Some(AgentSessionToGateway::Video(_)) => continue,
            other => return other,
        }
    }
}

/// The first video frame on a stream: it must be a keyframe a fresh sanitizer accepts.
async fn first_frame_is_a_clean_keyframe(r: &mut Reader<AgentSessionToGateway>, what: &str) {
    match r.next().await {
        Some(AgentSessionToGateway::Video(f)) => {
            assert!(f.header.keyframe, "{what}: the first frame is a keyframe");
            let mut sanitizer = NalSanitizer::new(Limits::default());
            let checked = sanitizer.sanitize(&f.header, &f.data);
            assert!(checked.is_ok(), "{what}: {checked:?}");
        }
        other => panic!("{what}: expected video, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_its_gateway_and_is_resumed_through_another() {
    let (_pki_dir, pki, work) = pki_and_work();
    let (url, reports) = common::serve(
        "<html><body style='background:#00a'>held<script>fetch('/report',{method:'POST',body:'loaded'})</script></body></html>",
    );
    let (g1, g2) = (AgentGateway::bind(&pki), AgentGateway::bind(&pki));
    let config = agent_config(
        &pki,
        work.path(),
        &url,
        &[g1.addr, g2.addr],
        &[
            ("max_sessions", toml::Value::Integer(1)),
            ("linger_s", toml::Value::Integer(6)),
        ],
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(tsuitate_agent::client::run(config, stop_rx));
    // The agent dials both.
    let ((c1, mut ctl1), (c2, mut ctl2)) = tokio::join!(welcome(&g1), welcome(&g2));

    // A session through gateway 1: every gateway hears that the agent holds it.
    let (_s1, mut r1, resumed) = open_session(&c1, OWNER, None).await;
    assert_eq!(resumed, Some(false), "a new browser");
    first_frame_is_a_clean_keyframe(&mut r1, "new session").await;
    let held = match next_held(&mut ctl2).await {
        AgentToGateway::Held {
            session,
            owner,
            lingering: false,
        } => {
            assert_eq!(owner, OWNER);
            session
        }
        other => panic!("expected Held, got {other:?}"),
    };
    assert!(reports
        .wait_for(Duration::from_secs(30), |r| r == "loaded")
        .is_some());

    // Someone else cannot take it: their Open{resume} starts a new browser, for which there
    // is no slot.
    let (_x, _xr, resumed) = open_session(&c2, [0x13; 16], Some(held)).await;
    assert_eq!(resumed, None, "another owner's resume is no resume");

    // Its owner takes it over through gateway 2 while gateway 1 still carries it: gateway 1
    // is told Replaced, gateway 2 gets the same browser from a fresh keyframe.
    let (s2, mut r2, resumed) = open_session(&c2, OWNER, Some(held)).await;
    assert_eq!(resumed, Some(true), "the held browser was handed over");
    first_frame_is_a_clean_keyframe(&mut r2, "taken over").await;
    let ended = after_video(&mut r1).await;
    assert_eq!(
        ended,
        Some(AgentSessionToGateway::Ended {
            reason: Reason::Replaced
        })
    );

    // Gateway 2's stream is lost: the browser lingers (every gateway is told), and gateway 1
    // resumes it.
    drop((s2, r2));
    let lingering = AgentToGateway::Held {
        session: held,
        owner: OWNER,
        lingering: true,
    };
    while next_held(&mut ctl1).await != lingering {}
    let (s3, mut r3, resumed) = open_session(&c1, OWNER, Some(held)).await;
    assert_eq!(resumed, Some(true), "the lingering browser was resumed");
    first_frame_is_a_clean_keyframe(&mut r3, "resumed").await;
    let loads = reports.all().iter().filter(|r| *r == "loaded").count();
    assert_eq!(loads, 1, "one browser all along: {:?}", reports.all());

    // Lost again and nobody comes back: after linger_s the browser is ended and released.
    drop((s3, r3));
    let lost_at = std::time::Instant::now();
    loop {
        match next_held(&mut ctl2).await {
            AgentToGateway::Released { session } if session == held => break,
            _ => continue,
        }
    }
    assert!(
        lost_at.elapsed() >= Duration::from_secs(5),
        "released after the linger, not at once ({:?})",
        lost_at.elapsed()
    );
    // Released as the browser is being stopped: its processes are gone shortly after.
    let agent_dir = work.path().join("tsuitate-agent-agent-1");
    let mut left = Vec::new();
    for _ in 0..100 {
        left = tsuitate_agent::browser::session_processes(&[], &agent_dir);
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "processes left: {left:?}");

    // A browser lingering when the agent stops ends with it, well before its linger would.
    // (Once its one slot is free again.)
    loop {
        match ctl1.next().await {
            Some(AgentToGateway::Capacity { free: 1 }) => break,
            Some(_) => continue,
            None => panic!("control stream ended"),
        }
    }
    let (s4, r4, resumed) = open_session(&c1, OWNER, None).await;
    assert_eq!(resumed, Some(false));
    drop((s4, r4));
    let lingering = loop {
        match next_held(&mut ctl2).await {
            AgentToGateway::Held {
                session,
                lingering: true,
                ..
            } => break session,
            _ => continue,
        }
    };
    assert_ne!(lingering, held, "a new session");
    // A gateway that asks for a watermark is not handed this browser, started without one
    // (its stream is given back; a new browser would need the one slot, which it holds).
    let mark = tsuitate_protocol::Watermark {
        text: "yamada 192.0.2.10".into(),
        place: tsuitate_protocol::WatermarkPlace::BottomRight,
        opacity: 40,
        size_px: 16,
        utc_offset_min: 540,
    };
    let (_s5, mut r5) = open_stream(&c1, OWNER, Some(lingering), Some(mark)).await;
    assert_eq!(
        r5.next().await,
        Some(AgentSessionToGateway::Ended {
            reason: Reason::NoCapacity
        }),
        "not resumed without its watermark"
    );
    drop((c1, c2));
    let stopping = std::time::Instant::now();
    let _ = stop_tx.send(true);
    let stopped = tokio::time::timeout(Duration::from_secs(15), agent).await;
    assert!(
        stopped.is_ok(),
        "the agent stopped with a browser lingering"
    );
    // Before the linger (6 s) would have ended the browser by itself.
    assert!(
        stopping.elapsed() < Duration::from_secs(6),
        "the shutdown ended the lingering browser ({:?})",
        stopping.elapsed()
    );
    let left = tsuitate_agent::browser::session_processes(&[], &agent_dir);
    assert!(left.is_empty(), "processes left at shutdown: {left:?}");
}
