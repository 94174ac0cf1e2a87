//! Frames and input through the gateway over real QUIC on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsuitate_protocol::{InputEvent, KeyCode, Reason, ViewerToGateway};
use tsuitate_testkit::agent::AgentOptions;
use tsuitate_testkit::fixture::Fixture;
use tsuitate_testkit::frames::{nal_types, HEIGHT, WIDTH};
use tsuitate_testkit::viewer::TestViewer;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_arrive_in_order_sanitized_and_decodable() {
    let fx = Fixture::new(&["agent-1"], &["yamada"]);
    let gw = fx.start().await;
    let ag = fx.connect_agent(&gw, AgentOptions::new("agent-1")).await;
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    assert!(!v.login_ready("yamada").await);
    let frames = v.frames(30, T).await;
    assert_eq!(frames.len(), 30);
    assert!(frames[0].header.keyframe, "the first frame is a keyframe");
    let mut dec = Decoder::new().unwrap();
    let mut decoded = 0;
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            assert!(
                f.header.sequence > frames[i - 1].header.sequence,
                "in order"
            );
        }
        assert!(nal_types(&f.data).iter().all(|t| [1, 5, 7, 8].contains(t)));
        assert_eq!(
            (f.header.width as usize, f.header.height as usize),
            (WIDTH, HEIGHT)
        );
        if let Ok(Some(pic)) = dec.decode(&f.data) {
            assert_eq!(pic.dimensions(), (WIDTH, HEIGHT));
            decoded += 1;
        }
    }
    assert!(decoded >= 25, "decoded {decoded} of 30");
    // Capture timestamps are on the gateway clock: not in the future.
    assert!(frames
        .iter()
        .all(|f| f.header.capture_us <= tsuitate_gateway::now_us()));

    // Input crosses, rebuilt.
    let events = vec![
        InputEvent::PointerMove { x: 10, y: 20 },
        InputEvent::Key {
            down: true,
            code: KeyCode::from_name("KeyA").unwrap(),
            keysym: 0x61,
            modifiers: Default::default(),
        },
        InputEvent::Text("こんにちは".into()),
    ];
    assert!(v.send(&ViewerToGateway::Input(events)).await);
    let stats = ag.stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async {
            stats
                .input_events
                .load(std::sync::atomic::Ordering::Relaxed)
                == 3
        })
        .await
    );
    assert_eq!(
        ag.stats.open_sizes.lock().unwrap()[0],
        (WIDTH as u16, HEIGHT as u16)
    );

    // Resize is forwarded once per new size.
    for _ in 0..3 {
        let r = ViewerToGateway::Resize {
            width: 640,
            height: 480,
        };
        assert!(v.send(&r).await);
    }
    let stats = ag.stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async {
            stats.resizes.load(std::sync::atomic::Ordering::Relaxed) == 1
        })
        .await
    );

    // Metrics over HTTP.
    let mut s = tokio::net::TcpStream::connect(gw.admin_addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"));
    assert!(body.contains("tsuitate_agents_connected 1"));
    assert!(body.contains("tsuitate_sessions_active 1"));
    assert!(!body.contains("tsuitate_frames_relayed_total 0\n"));

    // Logout ends the session at once: the agent is told to close the browser.
    assert!(v.send(&ViewerToGateway::Logout).await);
    let (bye, _) = v.until_bye(T).await;
    assert_eq!(bye, Some(Reason::Logout));
    let stats = ag.stats.clone();
    assert!(
        tsuitate_testkit::eventually(T, || async {
            stats.closes.lock().unwrap().contains(&Reason::Logout)
        })
        .await
    );

    gw.shutdown().await;
    // The audit log verifies and holds no password or text content.
    tsuitate_gateway::audit::verify_file(fx.audit_path()).unwrap();
    let log = std::fs::read_to_string(fx.audit_path()).unwrap();
    for ev in [
        "login_success",
        "session_start",
        "session_end",
        "agent_connected",
    ] {
        assert!(log.contains(ev), "{ev} missing");
    }
    assert!(!log.contains(tsuitate_testkit::fixture::PASSWORD));
    assert!(!log.contains("こんにちは"));
    assert!(log.contains("\"input_events\":3"));
}
