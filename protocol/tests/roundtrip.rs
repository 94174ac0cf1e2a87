//! Property tests: every message round-trips, every truncation asks for more bytes, and
//! corruption gives a typed error, never a panic (docs/protocol.md §2).

use bytes::Bytes;
use proptest::prelude::*;
use tsuitate_protocol::*;

fn dims() -> impl Strategy<Value = (u16, u16)> {
    (MIN_DIMENSION..=3840u16, MIN_DIMENSION..=2160u16)
}

fn short_string(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::char::range('a', 'z'),
            proptest::char::range('ぁ', 'ん'),
            Just('情'),
            Just('¥')
        ],
        1..=max_chars,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn reason() -> impl Strategy<Value = Reason> {
    (1u16..=18).prop_map(|v| Reason::from_u16(v).unwrap_or(Reason::Normal))
}

fn input_event() -> impl Strategy<Value = InputEvent> {
    prop_oneof![
        (
            any::<bool>(),
            proptest::sample::select(KeyCode::ALL.to_vec()),
            prop_oneof![
                0x20u32..=0x7e,
                0xff00u32..=0xffff,
                0x0100_3000u32..=0x0100_30ff
            ],
            0u8..16
        )
            .prop_map(|(down, code, keysym, m)| InputEvent::Key {
                down,
                code,
                keysym,
                modifiers: Modifiers::from_bits(m).unwrap_or_default(),
            }),
        short_string(64).prop_map(InputEvent::Text),
        (any::<u16>(), any::<u16>()).prop_map(|(x, y)| InputEvent::PointerMove { x, y }),
        (
            any::<bool>(),
            prop_oneof![
                Just(Button::Left),
                Just(Button::Middle),
                Just(Button::Right)
            ]
        )
            .prop_map(|(down, button)| InputEvent::Button { down, button }),
        (-120i16..=120, -120i16..=120).prop_map(|(dx, dy)| InputEvent::Wheel { dx, dy }),
    ]
}

fn events() -> impl Strategy<Value = Vec<InputEvent>> {
    proptest::collection::vec(input_event(), 1..=64)
}

fn video() -> impl Strategy<Value = VideoFrame> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        dims(),
        proptest::collection::vec(any::<u8>(), 1..512),
    )
        .prop_map(
            |(sequence, capture_us, keyframe, (width, height), data)| VideoFrame {
                header: VideoHeader {
                    sequence,
                    capture_us,
                    keyframe,
                    width,
                    height,
                },
                data: Bytes::from(data),
            },
        )
}

fn viewer_to_gateway() -> impl Strategy<Value = ViewerToGateway> {
    prop_oneof![
        any::<u16>().prop_map(|version| ViewerToGateway::Hello { version }),
        (short_string(16), short_string(60))
            .prop_map(|(user, password)| ViewerToGateway::Login { user, password }),
        events().prop_map(ViewerToGateway::Input),
        dims().prop_map(|(width, height)| ViewerToGateway::Resize { width, height }),
        Just(ViewerToGateway::KeyframeRequest),
        (any::<u64>(), any::<u64>())
            .prop_map(|(nonce, viewer_us)| ViewerToGateway::Ping { nonce, viewer_us }),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(frames, p50_us, p95_us)| {
            ViewerToGateway::LatencyReport {
                frames,
                p50_us,
                p95_us,
            }
        }),
        Just(ViewerToGateway::Logout),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| ViewerToGateway::Forwarded {
            client: std::net::SocketAddr::from((ip, port)),
        }),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| ViewerToGateway::Forwarded {
            client: std::net::SocketAddr::from((ip, port)),
        }),
    ]
}

fn gateway_to_viewer() -> impl Strategy<Value = GatewayToViewer> {
    prop_oneof![
        any::<u16>().prop_map(|version| GatewayToViewer::Welcome { version }),
        (
            prop_oneof![
                Just(LoginStatus::Ok),
                Just(LoginStatus::Denied),
                Just(LoginStatus::LockedOut),
                Just(LoginStatus::NoCapacity)
            ],
            any::<u32>()
        )
            .prop_map(|(status, retry_after_s)| GatewayToViewer::LoginResult {
                status,
                retry_after_s
            }),
        (dims(), any::<bool>()).prop_map(|((width, height), resumed)| {
            GatewayToViewer::SessionReady {
                width,
                height,
                resumed,
            }
        }),
        video().prop_map(GatewayToViewer::Video),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(nonce, viewer_us, gateway_us)| {
            GatewayToViewer::Pong {
                nonce,
                viewer_us,
                gateway_us,
            }
        }),
        reason().prop_map(|reason| GatewayToViewer::Bye { reason }),
        (any::<bool>(), any::<u32>()).prop_map(|(idle, seconds)| GatewayToViewer::TimeoutWarning {
            kind: if idle {
                TimeoutKind::Idle
            } else {
                TimeoutKind::Absolute
            },
            seconds
        }),
    ]
}

fn agent_to_gateway() -> impl Strategy<Value = AgentToGateway> {
    prop_oneof![
        (
            any::<u16>(),
            short_string(16),
            any::<u16>(),
            short_string(20),
            short_string(20)
        )
            .prop_map(|(version, agent_id, capacity, browser, policy)| {
                AgentToGateway::Hello {
                    version,
                    agent_id,
                    capacity,
                    browser,
                    policy,
                }
            }),
        any::<u16>().prop_map(|free| AgentToGateway::Capacity { free }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(nonce, gateway_us, agent_us)| {
            AgentToGateway::Pong {
                nonce,
                gateway_us,
                agent_us,
            }
        }),
        (any::<u16>(), any::<u64>(), any::<u64>()).prop_map(
            |(sessions, frames_encoded, frames_skipped)| AgentToGateway::Stats {
                sessions,
                frames_encoded,
                frames_skipped
            }
        ),
        (any::<u64>(), any::<[u8; 16]>(), any::<bool>()).prop_map(|(session, owner, lingering)| {
            AgentToGateway::Held {
                session,
                owner,
                lingering,
            }
        }),
        any::<u64>().prop_map(|session| AgentToGateway::Released { session }),
    ]
}

fn gateway_to_agent() -> impl Strategy<Value = GatewayToAgent> {
    prop_oneof![
        any::<u16>().prop_map(|version| GatewayToAgent::Welcome { version }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(nonce, gateway_us)| GatewayToAgent::Ping { nonce, gateway_us }),
        reason().prop_map(|reason| GatewayToAgent::Bye { reason }),
    ]
}

fn agent_session() -> impl Strategy<Value = AgentSessionToGateway> {
    prop_oneof![
        (dims(), any::<bool>(), any::<u32>()).prop_map(|((width, height), resumed, age_s)| {
            AgentSessionToGateway::Started {
                width,
                height,
                resumed,
                age_s,
            }
        }),
        video().prop_map(AgentSessionToGateway::Video),
        reason().prop_map(|reason| AgentSessionToGateway::Ended { reason }),
    ]
}

fn watermark() -> impl Strategy<Value = Watermark> {
    (
        short_string(40),
        proptest::sample::select(WatermarkPlace::ALL.to_vec()),
        1u8..=100,
        WATERMARK_SIZE_PX,
        WATERMARK_UTC_OFFSET_MIN,
    )
        .prop_map(
            |(text, place, opacity, size_px, utc_offset_min)| Watermark {
                text,
                place,
                opacity,
                size_px,
                utc_offset_min,
            },
        )
}

fn gateway_session() -> impl Strategy<Value = GatewayToAgentSession> {
    prop_oneof![
        (
            any::<u64>(),
            dims(),
            proptest::option::of(watermark()),
            any::<[u8; 16]>(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(session_id, (width, height), watermark, owner, resume)| {
                GatewayToAgentSession::Open {
                    session_id,
                    width,
                    height,
                    watermark,
                    owner,
                    resume,
                }
            }),
        events().prop_map(GatewayToAgentSession::Input),
        Just(GatewayToAgentSession::KeyframeRequest),
        dims().prop_map(|(width, height)| GatewayToAgentSession::Resize { width, height }),
        reason().prop_map(|reason| GatewayToAgentSession::Close { reason }),
    ]
}

/// Round trip, every strict prefix is "need more", and single-byte corruption never panics.
fn check<M: Message + PartialEq + Clone + std::fmt::Debug>(msg: &M, flip: (usize, u8)) {
    let limits = Limits::default();
    let bytes = msg.to_bytes();
    let decoded = M::decode(&bytes, &limits);
    assert_eq!(decoded, Ok(Some((msg.clone(), bytes.len()))));
    for cut in 0..bytes.len() {
        assert_eq!(
            M::decode(&bytes[..cut], &limits),
            Ok(None),
            "prefix of {cut} bytes"
        );
    }
    let mut corrupt = bytes.clone();
    let i = flip.0 % corrupt.len();
    corrupt[i] ^= flip.1.max(1);
    let _ = M::decode(&corrupt, &limits);
}

proptest! {
    #[test]
    fn viewer_to_gateway_roundtrip(m in viewer_to_gateway(), f in (any::<usize>(), any::<u8>())) { check(&m, f) }
    #[test]
    fn gateway_to_viewer_roundtrip(m in gateway_to_viewer(), f in (any::<usize>(), any::<u8>())) { check(&m, f) }
    #[test]
    fn agent_to_gateway_roundtrip(m in agent_to_gateway(), f in (any::<usize>(), any::<u8>())) { check(&m, f) }
    #[test]
    fn gateway_to_agent_roundtrip(m in gateway_to_agent(), f in (any::<usize>(), any::<u8>())) { check(&m, f) }
    #[test]
    fn agent_session_roundtrip(m in agent_session(), f in (any::<usize>(), any::<u8>())) { check(&m, f) }
    #[test]
    fn gateway_session_roundtrip(m in gateway_session(), f in (any::<usize>(), any::<u8>())) { check(&m, f) }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        tsuitate_protocol::fuzzing::frame_decoder(&data);
        tsuitate_protocol::fuzzing::sanitizer(&data);
    }
}
