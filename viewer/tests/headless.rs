//! The real `tsuitate-viewer` binary in headless mode against the test gateway.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use tsuitate_protocol::{Button, InputEvent, KeyCode, Modifiers, ViewerToGateway};
use tsuitate_testkit::viewer_gateway::{psnr, render, GatewayOptions, TestGateway, PASSWORD, USER};

struct Run {
    output: Output,
    report: serde_json::Value,
}

impl Run {
    fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

fn viewer(gw: &TestGateway, user: &str, password: &str, script: &str, extra: &[&str]) -> Run {
    viewer_ca(gw, &gw.ca_path, user, password, script, extra)
}

fn viewer_ca(
    gw: &TestGateway,
    ca: &Path,
    user: &str,
    password: &str,
    script: &str,
    extra: &[&str],
) -> Run {
    let dir = gw.dir.path();
    let script_path = dir.join(format!("script-{}.txt", rand_suffix()));
    std::fs::write(&script_path, script).unwrap();
    let report_path = dir.join(format!("report-{}.json", rand_suffix()));
    let output = Command::new(env!("CARGO_BIN_EXE_tsuitate-viewer"))
        .args(["--headless", "--gateway"])
        .arg(gw.addr.to_string())
        .args(["--server-name", "localhost", "--ca"])
        .arg(ca)
        .args(["--user", user, "--script"])
        .arg(&script_path)
        .arg("--report")
        .arg(&report_path)
        .arg("--snapshot-dir")
        .arg(dir.join("snaps"))
        .args(["--connect-timeout-s", "3"])
        .args(extra)
        .env("TSUITATE_PASSWORD", password)
        .env("LANG", "C")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&report_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Run { output, report }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let img = image::open(path).unwrap();
    assert_eq!(img.color(), image::ColorType::Rgb8);
    let rgb = img.into_rgb8();
    (rgb.width(), rgb.height(), rgb.into_raw())
}

#[test]
fn decoded_frame_matches_the_source_and_report_is_sane() {
    let gw = TestGateway::start(GatewayOptions::default());
    let run = viewer(&gw, USER, PASSWORD, "wait 300\nsnapshot first.png\n", &[]);
    assert_eq!(
        run.code(),
        0,
        "stderr: {}\nreport: {}",
        run.stderr(),
        run.report
    );
    let (w, h, rgb) = read_png(&gw.dir.path().join("snaps/first.png"));
    assert_eq!((w, h), (640, 360));
    let p = psnr(&rgb, &render(0, 640, 360));
    assert!(p > 30.0, "PSNR {p:.1} dB is too low");
    let r = &run.report;
    assert_eq!(r["script_completed"], true);
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["end_reason"], "Logout");
    assert!(r["frames_decoded"].as_u64().unwrap() >= 1);
    assert!(r["keyframes"].as_u64().unwrap() >= 1);
    assert!(r["bytes"].as_u64().unwrap() > 100);
    let lat = &r["latency_ms"];
    for k in ["p50", "p95", "p99", "max"] {
        assert!(lat[k].as_f64().unwrap() >= 0.0, "{k}");
    }
    assert!(lat["p50"].as_f64() <= lat["max"].as_f64());
    assert!(r["duration_ms"].as_u64().unwrap() >= 300);
    assert!(gw.recorded().control.contains(&ViewerToGateway::Logout));
}

#[test]
fn scripted_input_arrives_as_exact_events() {
    let gw = TestGateway::start(GatewayOptions::default());
    let script = "\
        move 5 6\n\
        click 100 200\n\
        click 7 8 right\n\
        wheel 0 -3\n\
        type 情報セキュリティ\n\
        key Shift+Tab\n\
        key Enter\n\
        key Control+a\n\
        wait 200\n";
    let run = viewer(&gw, USER, PASSWORD, script, &[]);
    assert_eq!(run.code(), 0, "stderr: {}", run.stderr());
    let key = |down, code, keysym, m: u8| InputEvent::Key {
        down,
        code,
        keysym,
        modifiers: Modifiers::from_bits(m).unwrap(),
    };
    let btn = |down, button| InputEvent::Button { down, button };
    let expected = vec![
        InputEvent::PointerMove { x: 5, y: 6 },
        InputEvent::PointerMove { x: 100, y: 200 },
        btn(true, Button::Left),
        btn(false, Button::Left),
        InputEvent::PointerMove { x: 7, y: 8 },
        btn(true, Button::Right),
        btn(false, Button::Right),
        InputEvent::Wheel { dx: 0, dy: -3 },
        InputEvent::Text("情報セキュリティ".into()),
        key(true, KeyCode::ShiftLeft, 0xffe1, 1),
        key(true, KeyCode::Tab, 0xff09, 1),
        key(false, KeyCode::Tab, 0xff09, 1),
        key(false, KeyCode::ShiftLeft, 0xffe1, 0),
        key(true, KeyCode::Enter, 0xff0d, 0),
        key(false, KeyCode::Enter, 0xff0d, 0),
        key(true, KeyCode::ControlLeft, 0xffe3, 2),
        key(true, KeyCode::KeyA, 0x61, 2),
        key(false, KeyCode::KeyA, 0x61, 2),
        key(false, KeyCode::ControlLeft, 0xffe3, 0),
    ];
    assert_eq!(gw.recorded().inputs, expected);
}

#[test]
fn long_text_is_split_into_chunks() {
    let gw = TestGateway::start(GatewayOptions::default());
    let text = "あ".repeat(150);
    let run = viewer(
        &gw,
        USER,
        PASSWORD,
        &format!("type {text}\nwait 100\n"),
        &[],
    );
    assert_eq!(run.code(), 0, "stderr: {}", run.stderr());
    let inputs = gw.recorded().inputs;
    let lens: Vec<usize> = inputs
        .iter()
        .map(|e| match e {
            InputEvent::Text(t) => t.chars().count(),
            _ => 0,
        })
        .collect();
    assert_eq!(lens, vec![64, 64, 22]);
}

#[test]
fn expect_change_passes_when_the_screen_changes() {
    let gw = TestGateway::start(GatewayOptions {
        frame_on_input: true,
        ..GatewayOptions::default()
    });
    let run = viewer(
        &gw,
        USER,
        PASSWORD,
        "wait 200\nclick 10 10\nexpect-change 5000\nsnapshot after.png\n",
        &[],
    );
    assert_eq!(run.code(), 0, "stderr: {}", run.stderr());
    let (_, _, rgb) = read_png(&gw.dir.path().join("snaps/after.png"));
    let p = psnr(&rgb, &render(1, 640, 360));
    assert!(p > 30.0, "the snapshot is not picture 1: PSNR {p:.1} dB");
}

#[test]
fn expect_change_fails_without_a_new_frame() {
    let gw = TestGateway::start(GatewayOptions::default());
    let run = viewer(
        &gw,
        USER,
        PASSWORD,
        "wait 300\nmove 1 1\nexpect-change 300\nwait 1\n",
        &[],
    );
    assert_eq!(run.code(), 8, "stderr: {}", run.stderr());
    assert_eq!(run.report["script_completed"], false);
    let err = run.report["error"].as_str().unwrap();
    assert!(err.starts_with("line 3:"), "{err}");
}

#[test]
fn wrong_password_gives_its_exit_code_and_message() {
    let gw = TestGateway::start(GatewayOptions::default());
    let run = viewer(&gw, USER, "wrong", "wait 10\n", &[]);
    assert_eq!(run.code(), 4);
    assert!(
        run.stderr().contains("Wrong user name or password."),
        "{}",
        run.stderr()
    );
    assert_eq!(run.report["end_reason"], "denied");
    assert_eq!(run.report["script_completed"], false);
    let run = viewer(&gw, USER, "wrong", "wait 10\n", &["--lang", "ja"]);
    assert_eq!(run.code(), 4);
    assert!(
        run.stderr()
            .contains("ユーザー名またはパスワードが違います。"),
        "{}",
        run.stderr()
    );
}

#[test]
fn locked_out_and_no_capacity_have_their_own_exit_codes() {
    let gw = TestGateway::start(GatewayOptions::default());
    let run = viewer(&gw, "locked", PASSWORD, "wait 10\n", &[]);
    assert_eq!(run.code(), 5, "{}", run.stderr());
    assert!(run.stderr().contains("30 s"), "{}", run.stderr());
    let run = viewer(&gw, "full", PASSWORD, "wait 10\n", &[]);
    assert_eq!(run.code(), 6, "{}", run.stderr());
    assert_eq!(run.report["end_reason"], "no_capacity");
}

#[test]
fn script_errors_are_reported_before_connecting() {
    let gw = TestGateway::start(GatewayOptions::default());
    let run = viewer(
        &gw,
        USER,
        PASSWORD,
        "wait 10\nfly away\nclick 1 nope\n",
        &[],
    );
    assert_eq!(run.code(), 2);
    let err = run.stderr();
    assert!(err.contains("line 2: unknown action `fly`"), "{err}");
    assert!(err.contains("line 3:"), "{err}");
    assert_eq!(gw.recorded().connections, 0);
}

#[test]
fn check_config_validates_everything_and_sends_nothing() {
    let gw = TestGateway::start(GatewayOptions::default());
    let ok = viewer(&gw, USER, PASSWORD, "wait 1\n", &["--check-config"]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
    let bad_script = viewer(&gw, USER, PASSWORD, "fly away\n", &["--check-config"]);
    assert_eq!(bad_script.code(), 2);
    let missing_ca = viewer_ca(
        &gw,
        &gw.dir.path().join("no-such-ca.pem"),
        USER,
        PASSWORD,
        "wait 1\n",
        &["--check-config"],
    );
    assert_eq!(missing_ca.code(), 2, "{}", missing_ca.stderr());
    assert_eq!(gw.recorded().connections, 0, "nothing was sent");
}

#[test]
fn an_untrusted_gateway_certificate_is_rejected() {
    let gw = TestGateway::start(GatewayOptions::default());
    let other = tsuitate_testkit::pki::Pki::create(&gw.dir.path().join("other"), &[]).ca();
    let run = viewer_ca(&gw, &other, USER, PASSWORD, "wait 10\n", &[]);
    assert_eq!(run.code(), 10, "{}", run.stderr());
    assert_eq!(gw.recorded().logins.len(), 0, "no password was sent");
}

#[test]
fn an_unreachable_gateway_has_its_exit_code() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    drop(sock);
    let gw = TestGateway::start(GatewayOptions::default());
    let dir = gw.dir.path();
    std::fs::write(dir.join("s.txt"), "wait 1\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tsuitate-viewer"))
        .args(["--headless", "--gateway", &format!("127.0.0.1:{port}")])
        .arg("--ca")
        .arg(&gw.ca_path)
        .args(["--user", USER, "--connect-timeout-s", "1", "--script"])
        .arg(dir.join("s.txt"))
        .arg("--report")
        .arg(dir.join("r.json"))
        .env("TSUITATE_PASSWORD", PASSWORD)
        .env("LANG", "C")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let report = std::fs::read_to_string(dir.join("r.json")).unwrap();
    assert!(
        report.contains("\"end_reason\": \"unreachable\""),
        "{report}"
    );
}

#[test]
fn continuous_video_gives_sane_numbers() {
    let gw = TestGateway::start(GatewayOptions {
        fps: Some(20),
        ..GatewayOptions::default()
    });
    let run = viewer(&gw, USER, PASSWORD, "wait 2500\n", &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = &run.report;
    let decoded = r["frames_decoded"].as_u64().unwrap();
    let sent = gw.recorded().frames_sent;
    assert!(decoded >= 5, "decoded {decoded}");
    assert!(decoded <= sent, "decoded {decoded} > sent {sent}");
    assert!(r["fps"].as_f64().unwrap() > 0.0);
    let lat = &r["latency_ms"];
    assert!(lat["p50"].as_f64() <= lat["p95"].as_f64());
    assert!(lat["p95"].as_f64() <= lat["p99"].as_f64());
    assert!(lat["p99"].as_f64() <= lat["max"].as_f64());
    assert!(gw.recorded().pings >= 1);
    let reports = gw
        .recorded()
        .control
        .iter()
        .filter(|m| matches!(m, ViewerToGateway::LatencyReport { .. }))
        .count();
    assert!(
        reports >= 1,
        "a LatencyReport every 2 s: {:?} {run_report}",
        gw.recorded().control,
        run_report = run.report
    );
}

#[test]
fn reconnects_after_a_network_drop_and_finishes_the_script() {
    let gw = TestGateway::start(GatewayOptions {
        fps: Some(10),
        drop_first_connection_after: Some(5),
        ..GatewayOptions::default()
    });
    let run = viewer(
        &gw,
        USER,
        PASSWORD,
        "wait 2500\nexpect-change 5000\nclick 1 1\nwait 200\n",
        &[],
    );
    assert_eq!(run.code(), 0, "{}\n{}", run.stderr(), run.report);
    let rec = gw.recorded();
    assert_eq!(rec.connections, 2, "{rec:?}");
    assert_eq!(rec.logins, vec![USER.to_string(), USER.to_string()]);
    assert!(rec.inputs.contains(&InputEvent::PointerMove { x: 1, y: 1 }));
}

#[test]
fn a_malformed_gateway_message_ends_cleanly_with_the_protocol_exit_code() {
    for raw in [
        vec![0x99, 0, 0, 0, 0],             // unknown kind
        vec![0x23, 0xff, 0xff, 0xff, 0xff], // oversize video
        vec![0x25, 0, 0, 0, 2, 0xff, 0xff], // Bye with an unknown reason
        vec![0x20, 0, 0, 0, 2, 0, 1],       // Welcome in the middle of a session
    ] {
        let gw = TestGateway::start(GatewayOptions {
            raw_after_first_frame: Some(raw.clone()),
            ..GatewayOptions::default()
        });
        let run = viewer(&gw, USER, PASSWORD, "wait 3000\n", &[]);
        assert_eq!(run.code(), 9, "{raw:02x?}: {}", run.stderr());
        assert_eq!(run.report["end_reason"], "protocol_error");
        assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    }
}

#[test]
fn a_bye_during_the_script_gives_the_reason_and_exit_code_7() {
    use tsuitate_protocol::{GatewayToViewer, Message, Reason};
    let bye = GatewayToViewer::Bye {
        reason: Reason::IdleTimeout,
    }
    .to_bytes();
    let gw = TestGateway::start(GatewayOptions {
        raw_after_first_frame: Some(bye),
        ..GatewayOptions::default()
    });
    let run = viewer(&gw, USER, PASSWORD, "wait 3000\n", &[]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    assert_eq!(run.report["end_reason"], "IdleTimeout");
    assert_eq!(run.report["script_completed"], false);
    assert_eq!(run.report["message"], Reason::IdleTimeout.message_en());
}

/// An Annex-B IDR slice NAL whose payload is noise.
fn noise_idr() -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0x65];
    v.extend((5..4000u32).map(|i| (i * 7919 % 251) as u8));
    v
}

#[test]
fn garbage_video_is_a_decode_error_not_a_crash() {
    use bytes::Bytes;
    use tsuitate_protocol::{GatewayToViewer, Message, VideoFrame, VideoHeader};
    let junk = GatewayToViewer::Video(VideoFrame {
        header: VideoHeader {
            sequence: 1,
            capture_us: 0,
            keyframe: true,
            width: 640,
            height: 360,
        },
        // An IDR slice NAL whose payload is noise.
        data: Bytes::from(noise_idr()),
    })
    .to_bytes();
    let gw = TestGateway::start(GatewayOptions {
        raw_after_first_frame: Some(junk),
        ..GatewayOptions::default()
    });
    let run = viewer(&gw, USER, PASSWORD, "wait 1500\nsnapshot s.png\n", &[]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stderr(), run.report);
    assert!(!run.stderr().contains("panicked"));
    assert!(
        run.report["decode_errors"].as_u64().unwrap() >= 1,
        "{}",
        run.report
    );
    assert!(
        gw.recorded()
            .control
            .contains(&ViewerToGateway::KeyframeRequest),
        "a decode error asks for a keyframe"
    );
    // The viewer recovered with the keyframe that followed.
    let (_, _, rgb) = read_png(&gw.dir.path().join("snaps/s.png"));
    let p = f64::max(
        psnr(&rgb, &render(0, 640, 360)),
        psnr(&rgb, &render(1, 640, 360)),
    );
    assert!(p > 30.0, "PSNR {p:.1}");
}
