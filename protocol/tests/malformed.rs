//! Corrupted and hostile inputs give the typed error the spec names (docs/protocol.md §2, §4, §7).

use tsuitate_protocol::*;

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn unknown_kind_is_rejected_at_its_first_byte() {
    assert_eq!(
        ViewerToGateway::decode(&[0x99], &limits()),
        Err(WireError::UnexpectedKind(0x99))
    );
}

#[test]
fn video_from_a_viewer_is_an_unexpected_kind() {
    let video = GatewayToViewer::Video(VideoFrame {
        header: VideoHeader {
            sequence: 1,
            capture_us: 2,
            keyframe: true,
            width: 640,
            height: 480,
        },
        data: bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]),
    })
    .to_bytes();
    assert_eq!(
        ViewerToGateway::decode(&video, &limits()),
        Err(WireError::UnexpectedKind(0x23))
    );
}

#[test]
fn input_from_an_agent_is_an_unexpected_kind() {
    let input =
        GatewayToAgentSession::Input(vec![InputEvent::PointerMove { x: 1, y: 2 }]).to_bytes();
    assert_eq!(
        AgentSessionToGateway::decode(&input, &limits()),
        Err(WireError::UnexpectedKind(0x61))
    );
}

#[test]
fn oversize_length_is_rejected_before_the_payload_arrives() {
    let mut header = vec![0x51];
    header.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        AgentSessionToGateway::decode(&header, &limits()),
        Err(WireError::Oversize { .. })
    ));
    // Control messages get the small bound.
    let mut ping = vec![0x15];
    ping.extend_from_slice(&100_000u32.to_be_bytes());
    assert!(matches!(
        ViewerToGateway::decode(&ping, &limits()),
        Err(WireError::Oversize { .. })
    ));
}

#[test]
fn trailing_bytes_are_rejected() {
    let bytes = frame(0x14, &[0]);
    assert_eq!(
        ViewerToGateway::decode(&bytes, &limits()),
        Err(WireError::TrailingBytes(1))
    );
}

#[test]
fn truncated_payload_is_malformed_not_need_more() {
    let bytes = frame(0x15, &[0; 4]);
    assert_eq!(
        ViewerToGateway::decode(&bytes, &limits()),
        Err(WireError::Truncated("nonce"))
    );
}

#[test]
fn text_limits_and_control_characters() {
    let long = "あ".repeat(65);
    let mut payload = vec![1, 3, 255];
    payload.extend_from_slice(long.as_bytes());
    assert!(ViewerToGateway::decode(&frame(0x12, &payload), &limits()).is_err());

    let mut payload = vec![1, 3, 2];
    payload.extend_from_slice(b"a\n");
    assert_eq!(
        ViewerToGateway::decode(&frame(0x12, &payload), &limits()),
        Err(WireError::InvalidValue {
            field: "text",
            value: 0
        })
    );
    let payload = [1, 3, 2, 0xff, 0xfe];
    assert_eq!(
        ViewerToGateway::decode(&frame(0x12, &payload), &limits()),
        Err(WireError::InvalidUtf8("text"))
    );
}

#[test]
fn closed_sets_reject_unknown_values() {
    // Key code 999 does not exist.
    let payload = [1, 1, 0x03, 0xe7, 0, 0, 0, 0x61, 0];
    assert!(matches!(
        ViewerToGateway::decode(&frame(0x12, &payload), &limits()),
        Err(WireError::InvalidValue {
            field: "key.code",
            ..
        })
    ));
    // Unknown modifier bit.
    let payload = [1, 1, 0, 1, 0, 0, 0, 0x61, 0x10];
    assert!(matches!(
        ViewerToGateway::decode(&frame(0x12, &payload), &limits()),
        Err(WireError::InvalidValue {
            field: "key.modifiers",
            ..
        })
    ));
    // Button 9.
    assert!(ViewerToGateway::decode(&frame(0x12, &[1, 5, 9]), &limits()).is_err());
    // Unknown reason.
    assert!(GatewayToViewer::decode(&frame(0x25, &[0x7f, 0xff]), &limits()).is_err());
    // Zero events and more than the cap.
    assert!(ViewerToGateway::decode(&frame(0x12, &[0]), &limits()).is_err());
}

#[test]
fn dimensions_are_bounded() {
    let mut payload = Vec::new();
    payload.extend_from_slice(&7u64.to_be_bytes());
    payload.extend_from_slice(&8000u16.to_be_bytes());
    payload.extend_from_slice(&600u16.to_be_bytes());
    assert_eq!(
        GatewayToAgentSession::decode(&frame(0x60, &payload), &limits()),
        Err(WireError::Dimensions {
            width: 8000,
            height: 600
        })
    );
}

#[test]
fn message_buffer_yields_messages_across_chunks() {
    let mut wire = ViewerToGateway::Hello { version: 1 }.to_bytes();
    ViewerToGateway::KeyframeRequest.encode(&mut wire);
    let mut buf = MessageBuffer::<ViewerToGateway>::new(limits());
    let mut got = Vec::new();
    for b in &wire {
        buf.push(std::slice::from_ref(b));
        while let Some(m) = buf.next_message().ok().flatten() {
            got.push(m);
        }
    }
    assert_eq!(
        got,
        vec![
            ViewerToGateway::Hello { version: 1 },
            ViewerToGateway::KeyframeRequest
        ]
    );
    assert_eq!(buf.pending(), 0);
}

#[test]
fn reasons_have_both_languages() {
    for v in 1..=16 {
        let r = Reason::from_u16(v).expect("reason codes 1..=16 exist");
        assert!(!r.message_ja().is_empty() && !r.message_en().is_empty());
        assert!(
            r.message_ja().chars().any(|c| c > '\u{3000}'),
            "{r:?} has Japanese text"
        );
    }
    assert_eq!(Reason::from_u16(0), None);
}

#[test]
fn key_code_names_round_trip() {
    for code in KeyCode::ALL {
        assert_eq!(KeyCode::from_name(code.name()), Some(*code));
        assert_eq!(KeyCode::from_u16(code.to_u16()), Some(*code));
    }
    assert_eq!(KeyCode::from_name("IntlYen"), Some(KeyCode::IntlYen));
    assert_eq!(KeyCode::from_name("Clipboard"), None);
}

/// The message catalogue is closed: each direction accepts exactly the kinds docs/protocol.md §5
/// lists, and no other byte value (docs/protocol.md §8: there is no clipboard, file, print,
/// audio or data kind).
#[test]
fn catalogue_is_closed() {
    fn accepted<M: Message>() -> Vec<u8> {
        (0..=255u8)
            .filter(|k| {
                !matches!(
                    M::decode(&[*k], &Limits::default()),
                    Err(WireError::UnexpectedKind(_))
                )
            })
            .collect()
    }
    assert_eq!(
        accepted::<ViewerToGateway>(),
        (0x10..=0x18).collect::<Vec<_>>()
    );
    assert_eq!(
        accepted::<GatewayToViewer>(),
        (0x20..=0x26).collect::<Vec<_>>()
    );
    assert_eq!(
        accepted::<AgentToGateway>(),
        (0x30..=0x35).collect::<Vec<_>>()
    );
    assert_eq!(
        accepted::<GatewayToAgent>(),
        (0x40..=0x42).collect::<Vec<_>>()
    );
    assert_eq!(accepted::<AgentSessionToGateway>(), vec![0x50, 0x51, 0x52]);
    assert_eq!(
        accepted::<GatewayToAgentSession>(),
        (0x60..=0x64).collect::<Vec<_>>()
    );
}
