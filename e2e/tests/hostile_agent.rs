//! A hostile agent (test-only) against the real gateway process: SEI with a payload, forbidden
//! NAL types and a non-video message never reach a viewer — neither the byte-recording test
//! viewer nor the real headless viewer process — and the agent is cut off.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tsuitate_protocol::{LoginStatus, Reason};
use tsuitate_testkit::agent::{self, close_reason, AgentOptions, Behaviour};
use tsuitate_testkit::frames::MARKER;
use tsuitate_testkit::stack::{PASSWORD, USER};
use tsuitate_testkit::viewer::TestViewer;
use tsuitate_testkit::Stack;

const T: Duration = Duration::from_secs(20);

async fn hostile(stack: &Stack, behaviour: Behaviour, name: &str) -> agent::SyntheticAgent {
    let (cert, key) = stack.issue_agent(name);
    let mut opts = AgentOptions::new(name);
    opts.capacity = 1;
    opts.behaviour = behaviour;
    let addr: SocketAddr = stack.agent_addr.parse().unwrap();
    agent::connect(addr, &stack.path("pki/ca.pem"), Some((&cert, &key)), opts)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_agent_bytes_never_reach_the_viewer() {
    let stack = Stack::start(None, "");
    let ca = stack.path("pki/ca.pem");
    let viewer_addr: SocketAddr = stack.viewer_addr.parse().unwrap();
    let cases = [
        (Behaviour::Sei, "evil-sei"),
        (Behaviour::NalType(0), "evil-nal0"),
        (Behaviour::NalType(25), "evil-nal25"),
        (Behaviour::NalType(31), "evil-nal31"),
        (Behaviour::WrongKind, "evil-kind"),
    ];
    for (behaviour, name) in cases {
        let evil = hostile(&stack, behaviour, name).await;
        let mut viewer = TestViewer::connect(viewer_addr, &ca, None).await;
        let (status, _) = viewer.login(USER, PASSWORD).await;
        assert_eq!(status, LoginStatus::Ok, "{behaviour:?}");
        let (bye, frames) = viewer.until_bye(T).await;
        assert!(
            bye == Some(Reason::AgentLost) || close_reason(&viewer.conn) == Some(Reason::AgentLost),
            "{behaviour:?}: viewer told {bye:?}"
        );
        assert!(
            frames <= 5,
            "{behaviour:?}: only the good frames crossed ({frames})"
        );
        assert!(
            !tsuitate_testkit::contains(&viewer.raw, MARKER),
            "{behaviour:?}: hostile bytes crossed"
        );
        let _ = tokio::time::timeout(T, evil.conn.closed()).await;
        assert_eq!(
            close_reason(&evil.conn),
            Some(Reason::ProtocolViolation),
            "{behaviour:?}"
        );
    }
    let metrics = stack.metrics();
    assert!(
        metrics.contains("tsuitate_sanitizer_nal_dropped_total{nal_type=\"6\"}"),
        "{metrics}"
    );
    let audit = std::fs::read_to_string(stack.path("audit.jsonl")).unwrap_or_default();
    assert!(
        audit.contains("violation"),
        "violations are audited: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_viewer_sees_only_sanitized_frames_then_a_reason() {
    let stack = Stack::start(None, "");
    let _evil = hostile(&stack, Behaviour::Sei, "evil").await;
    let run = tokio::task::spawn_blocking(move || {
        let run = stack.viewer("hostile", "expect-change 20000\nwait 20000\n", &[]);
        (run, stack)
    })
    .await
    .unwrap()
    .0;
    let r = &run.report;
    assert_eq!(
        r["end_reason"], "AgentLost",
        "report: {r}\nstderr: {}",
        run.stderr
    );
    assert!(
        r["frames_received"].as_u64().unwrap_or(99) <= 5,
        "report: {r}"
    );
    assert!(
        r["frames_decoded"].as_u64().unwrap_or(0) >= 1,
        "good frames decoded: {r}"
    );
    assert_eq!(r["decode_errors"].as_u64(), Some(0), "report: {r}");
}
