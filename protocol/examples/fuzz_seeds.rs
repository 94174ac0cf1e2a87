//! Writes the seed corpus of the fuzz targets into `protocol/fuzz/corpus/` (committed).
//! Run: `cargo run -p tsuitate-protocol --example fuzz_seeds`.

use std::path::Path;

use bytes::Bytes;
use openh264::encoder::Encoder;
use openh264::formats::{RgbSliceU8, YUVBuffer};
use tsuitate_protocol::*;

fn real_stream(width: usize, height: usize, frames: usize) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new().expect("openh264 encoder");
    (0..frames)
        .map(|n| {
            let rgb: Vec<u8> = (0..width * height)
                .flat_map(|i| [(i % width + n * 4) as u8, (i / width) as u8, 0x80])
                .collect();
            let yuv = YUVBuffer::from_rgb_source(RgbSliceU8::new(&rgb, (width, height)));
            enc.encode(&yuv).expect("encode").to_vec()
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let aus = real_stream(128, 96, 3);
    let video = |n: usize| VideoFrame {
        header: VideoHeader {
            sequence: n as u64,
            capture_us: 1_700_000_000_000_000,
            keyframe: n == 0,
            width: 128,
            height: 96,
        },
        data: Bytes::from(aus[n].clone()),
    };
    let events = vec![
        InputEvent::PointerMove { x: 10, y: 20 },
        InputEvent::Button {
            down: true,
            button: Button::Left,
        },
        InputEvent::Key {
            down: true,
            code: KeyCode::IntlYen,
            keysym: 0xa5,
            modifiers: Modifiers::from_bits(Modifiers::SHIFT).unwrap_or_default(),
        },
        InputEvent::Text("情報セキュリティ".into()),
        InputEvent::Wheel { dx: 0, dy: -3 },
    ];
    let viewer: Vec<ViewerToGateway> = vec![
        ViewerToGateway::Hello {
            version: PROTOCOL_VERSION,
        },
        ViewerToGateway::Login {
            user: "yamada".into(),
            password: "パスワード".into(),
        },
        ViewerToGateway::Input(events.clone()),
        ViewerToGateway::Resize {
            width: 1280,
            height: 720,
        },
        ViewerToGateway::KeyframeRequest,
        ViewerToGateway::Ping {
            nonce: 7,
            viewer_us: 9,
        },
        ViewerToGateway::LatencyReport {
            frames: 30,
            p50_us: 20_000,
            p95_us: 45_000,
        },
        ViewerToGateway::Logout,
    ];
    let agent: Vec<Vec<u8>> = vec![
        AgentToGateway::Hello {
            version: 2,
            agent_id: "agent-1".into(),
            capacity: 4,
            browser: "Chromium 131.0.6778.85".into(),
            policy: "0".repeat(64),
        }
        .to_bytes(),
        AgentToGateway::Capacity { free: 3 }.to_bytes(),
        AgentToGateway::Pong {
            nonce: 1,
            gateway_us: 2,
            agent_us: 3,
        }
        .to_bytes(),
        AgentToGateway::Stats {
            sessions: 1,
            frames_encoded: 10,
            frames_skipped: 90,
        }
        .to_bytes(),
        AgentToGateway::Held {
            session: 3,
            owner: [0x5a; 16],
            lingering: true,
        }
        .to_bytes(),
        AgentToGateway::Released { session: 3 }.to_bytes(),
        AgentSessionToGateway::Started {
            width: 128,
            height: 96,
            resumed: false,
            age_s: 0,
        }
        .to_bytes(),
        AgentSessionToGateway::Video(video(0)).to_bytes(),
        AgentSessionToGateway::Video(video(1)).to_bytes(),
        AgentSessionToGateway::Ended {
            reason: Reason::BrowserExited,
        }
        .to_bytes(),
    ];
    let gateway: Vec<Vec<u8>> = vec![
        GatewayToViewer::Welcome { version: 1 }.to_bytes(),
        GatewayToViewer::LoginResult {
            status: LoginStatus::LockedOut,
            retry_after_s: 60,
        }
        .to_bytes(),
        GatewayToViewer::SessionReady {
            width: 1280,
            height: 720,
            resumed: true,
        }
        .to_bytes(),
        GatewayToViewer::Video(video(0)).to_bytes(),
        GatewayToViewer::Bye {
            reason: Reason::IdleTimeout,
        }
        .to_bytes(),
        GatewayToViewer::TimeoutWarning {
            kind: TimeoutKind::Idle,
            seconds: 300,
        }
        .to_bytes(),
        GatewayToAgent::Ping {
            nonce: 1,
            gateway_us: 2,
        }
        .to_bytes(),
        GatewayToAgentSession::Open {
            session_id: 1,
            width: 1280,
            height: 720,
            watermark: Some(tsuitate_protocol::Watermark {
                text: "山田太郎 10.1.2.3".into(),
                place: tsuitate_protocol::WatermarkPlace::BottomRight,
                opacity: 40,
                size_px: 16,
                utc_offset_min: 540,
            }),
            owner: [0x5a; 16],
            resume: Some(3),
        }
        .to_bytes(),
        GatewayToAgentSession::Input(events).to_bytes(),
    ];
    for (i, m) in viewer.iter().enumerate() {
        write(
            &root.join("viewer_messages"),
            &format!("seed-{i:02}"),
            &m.to_bytes(),
        );
        write(
            &root.join("frame_decoder"),
            &format!("viewer-{i:02}"),
            &m.to_bytes(),
        );
    }
    for (i, m) in agent.iter().enumerate() {
        write(&root.join("agent_messages"), &format!("seed-{i:02}"), m);
        write(&root.join("frame_decoder"), &format!("agent-{i:02}"), m);
    }
    for (i, m) in gateway.iter().enumerate() {
        write(&root.join("frame_decoder"), &format!("gateway-{i:02}"), m);
    }
    let mut stream = Vec::new();
    stream.extend_from_slice(&128u16.to_be_bytes());
    stream.extend_from_slice(&96u16.to_be_bytes());
    for (i, au) in aus.iter().enumerate() {
        if i > 0 {
            stream.extend_from_slice(&[0xff, 0xfe, 0xfd]);
        }
        stream.extend_from_slice(au);
    }
    write(&root.join("sanitizer"), "openh264-128x96", &stream);
    let mut with_sei = stream[..4].to_vec();
    with_sei.extend_from_slice(&[0, 0, 0, 1, 6, 5, 4, b'e', b'v', b'i', b'l', 0x80]);
    with_sei.extend_from_slice(&stream[4..]);
    write(&root.join("sanitizer"), "openh264-with-sei", &with_sei);
    println!("seed corpus written to {}", root.display());
}
