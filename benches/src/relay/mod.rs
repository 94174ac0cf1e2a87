//! The relay over real loopback QUIC: the test kit's fake agent hands its session stream to the
//! benchmark, which writes pre-encoded video messages through an in-process gateway to the kit's
//! fake viewer, and the same bytes through a bare quinn forward ([`forward::BareForward`]) to
//! another such viewer, in the same process and run. Both viewers parse every message with the
//! same code, so the two paths differ only in what sits in the middle.
//!
//! Two measurements per path:
//! - [`Link::lockstep`]: one frame in flight, time from the agent's write until the viewer has
//!   parsed the frame (per-frame latency; the difference between the paths is what the gateway
//!   adds);
//! - [`Link::burst`]: [`BURST_FRAMES`] frames written back to back, time until the viewer has
//!   parsed the last one (throughput).
//!
//! The gateway admits at most `fixture::MAX_FPS` frames per second per session (a token bucket
//! with one second of burst), so both paths are paced the same way: [`LOCKSTEP_GAP`] before each
//! lock-step frame and [`BURST_REST`] (the bucket's refill time) before each burst. The pauses
//! are not measured.

pub mod fixture;
pub mod forward;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quinn::SendStream;
use tokio::sync::mpsc;
use tsuitate_agent::EncodedAu;
use tsuitate_gateway::{Gateway, GatewayHandle};
use tsuitate_protocol::{
    AgentSessionToGateway, GatewayToViewer, Message, Reason, VideoFrame, VideoHeader,
};
use tsuitate_testkit::agent::{self, AgentOptions, SyntheticAgent};
use tsuitate_testkit::fixture::{Fixture, PASSWORD};
use tsuitate_testkit::viewer::TestViewer;

use self::fixture::{fixture, AGENT_ID, MAX_FPS, USER};
use self::forward::BareForward;
use crate::BenchError;

/// Frames per throughput burst (half the gateway's per-session burst allowance).
pub const BURST_FRAMES: usize = 120;
/// Idle time before each lock-step frame (under 200 frames/s, below the gateway's limit).
pub const LOCKSTEP_GAP: Duration = Duration::from_millis(5);
/// Idle time before each burst: 1.1× the time the gateway's bucket needs to earn a burst back.
pub const BURST_REST: Duration = Duration::from_millis(1100 * BURST_FRAMES as u64 / MAX_FPS as u64);
/// How long a viewer waits for one frame before the measurement fails.
const FRAME_LIMIT: Duration = Duration::from_secs(10);

/// Microseconds since the UNIX epoch.
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The agent's wire messages for `aus` (what a real agent writes on its session stream).
pub fn video_messages(aus: &[EncodedAu], width: u16, height: u16) -> Vec<Bytes> {
    aus.iter()
        .enumerate()
        .map(|(i, au)| {
            Bytes::from(
                AgentSessionToGateway::Video(VideoFrame {
                    header: VideoHeader {
                        sequence: i as u64 + 1,
                        capture_us: wall_us(),
                        keyframe: au.keyframe,
                        width,
                        height,
                    },
                    data: Bytes::from(au.data.clone()),
                })
                .to_bytes(),
            )
        })
        .collect()
}

/// The receiving end of a path: the kit's viewer, logged in at the gateway, or reading the
/// agent's own messages from the bare forward.
enum Viewer {
    Gateway(TestViewer<GatewayToViewer>),
    Forward(TestViewer<AgentSessionToGateway>),
}

impl Viewer {
    /// The next video frame (other messages are skipped); an error when none comes in `limit`
    /// or the session ends.
    async fn next_video(&mut self, limit: Duration) -> Result<VideoFrame, BenchError> {
        let none = || BenchError::new(format!("viewer: no frame within {limit:?}"));
        loop {
            match self {
                Viewer::Gateway(v) => match v.next(limit).await.ok_or_else(none)? {
                    GatewayToViewer::Video(f) => return Ok(f),
                    GatewayToViewer::Bye { reason } => {
                        return Err(BenchError::new(format!(
                            "viewer bye: {}",
                            reason.message_en()
                        )));
                    }
                    _ => {}
                },
                Viewer::Forward(v) => {
                    if let AgentSessionToGateway::Video(f) = v.next(limit).await.ok_or_else(none)? {
                        return Ok(f);
                    }
                }
            }
        }
    }

    fn close(&self) {
        match self {
            Viewer::Gateway(v) => v.close(),
            Viewer::Forward(v) => v.close(),
        }
    }
}

/// One path from an agent's stream to a viewer.
pub struct Link {
    send: SendStream,
    viewer: Viewer,
    frames: Vec<Bytes>,
    next: usize,
}

impl Link {
    fn new(send: SendStream, viewer: Viewer, frames: Vec<Bytes>) -> Link {
        Link {
            send,
            viewer,
            frames,
            next: 0,
        }
    }

    fn take(&mut self, n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|_| {
                let f = self.frames[self.next % self.frames.len()].clone();
                self.next += 1;
                f
            })
            .collect()
    }

    /// Bytes of the next `n` frames (without taking them).
    pub fn bytes_of_next(&self, n: usize) -> u64 {
        (0..n)
            .map(|i| self.frames[(self.next + i) % self.frames.len()].len() as u64)
            .sum()
    }

    /// Send one frame and wait until the viewer has it; returns the time that took.
    pub async fn lockstep(&mut self) -> Result<Duration, BenchError> {
        // The same idle gap before every frame, whichever path ran last.
        tokio::time::sleep(LOCKSTEP_GAP).await;
        let frame = self.take(1).remove(0);
        let t0 = Instant::now();
        self.send
            .write_chunk(frame)
            .await
            .map_err(|e| BenchError::new(format!("agent write: {e}")))?;
        self.viewer.next_video(FRAME_LIMIT).await?;
        Ok(t0.elapsed())
    }

    /// Send [`BURST_FRAMES`] frames back to back and wait until the viewer has all of them;
    /// returns the time that took and the bytes sent.
    pub async fn burst(&mut self) -> Result<(Duration, u64), BenchError> {
        // Let the gateway's frame-rate bucket refill. Both paths rest the same time before every
        // burst, so neither starts with a machine still busy from the other or one idle longer.
        tokio::time::sleep(BURST_REST).await;
        let frames = self.take(BURST_FRAMES);
        let bytes = frames.iter().map(|f| f.len() as u64).sum();
        let t0 = Instant::now();
        let send = &mut self.send;
        let viewer = &mut self.viewer;
        let write = async move {
            for f in frames {
                send.write_chunk(f)
                    .await
                    .map_err(|e| BenchError::new(format!("agent write: {e}")))?;
            }
            Ok::<(), BenchError>(())
        };
        let read = async move {
            for _ in 0..BURST_FRAMES {
                viewer.next_video(FRAME_LIMIT).await?;
            }
            Ok::<(), BenchError>(())
        };
        let (w, r) = tokio::join!(write, read);
        w?;
        r?;
        Ok((t0.elapsed(), bytes))
    }
}

/// A gateway and a bare forward, each with an agent and a viewer connected.
pub struct RelayEnv {
    /// Through the gateway.
    pub gateway: Link,
    /// Through the bare forward.
    pub forward: Link,
    handle: GatewayHandle,
    bare: BareForward,
    agent: SyntheticAgent,
    forward_agent: quinn::Endpoint,
    _forward_conn: quinn::Connection,
    _fixture: Fixture,
}

fn err(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("{what}: {e}"))
}

impl RelayEnv {
    /// Start everything for `aus` (the first must be a keyframe) at `width`×`height`.
    pub async fn start(aus: &[EncodedAu], width: u16, height: u16) -> Result<RelayEnv, BenchError> {
        if !aus.first().is_some_and(|a| a.keyframe) {
            return Err(BenchError::new("the first access unit must be a keyframe"));
        }
        let fixture = fixture(width, height);
        let handle = Gateway::start(fixture.config.clone())
            .await
            .map_err(|e| err("gateway", e))?;
        let ca = fixture.ca();
        let (sessions_tx, mut sessions) = mpsc::channel(1);
        let mut opts = AgentOptions::new(AGENT_ID);
        opts.capacity = 1;
        opts.handoff = Some(sessions_tx);
        let (cert, key) = fixture.agent_identity(AGENT_ID);
        let agent = agent::connect(handle.agent_addr, &ca, Some((&cert, &key)), opts)
            .await
            .map_err(|e| err("agent", e))?;
        let mut viewer = TestViewer::connect_with(handle.viewer_addr, &ca, &Default::default())
            .await
            .without_record();
        viewer.login_ready_as(USER, PASSWORD).await;
        let session = tokio::time::timeout(Duration::from_secs(20), sessions.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| BenchError::new("agent: no session was opened"))?;
        let frames = video_messages(aus, width, height);
        let gateway = Link::new(session, Viewer::Gateway(viewer), frames.clone());

        let bare = BareForward::start(&fixture.config)?;
        let mut fviewer = TestViewer::<AgentSessionToGateway>::connect_with(
            bare.viewer_addr,
            &ca,
            &Default::default(),
        )
        .await
        .without_record();
        // A stream exists for the peer only once something is written on it.
        fviewer.send_raw(&[1]).await;
        let cfg = tsuitate_transport::client_config_from_files(
            &ca,
            Some((&cert, &key)),
            &tsuitate_transport::Tuning::default(),
        )
        .map_err(|e| err("tls", e))?;
        let forward_agent = tsuitate_transport::client_endpoint(bare.agent_addr, cfg)
            .map_err(|e| err("forward endpoint", e))?;
        let conn = forward_agent
            .connect(bare.agent_addr, "localhost")
            .map_err(|e| err("forward connect", e))?
            .await
            .map_err(|e| err("forward handshake", e))?;
        // A bidirectional stream, as the agent's session streams are (the gateway's transport
        // settings allow no unidirectional ones).
        let (fsend, _) = conn.open_bi().await.map_err(|e| err("forward open", e))?;
        let forward = Link::new(fsend, Viewer::Forward(fviewer), frames);
        Ok(RelayEnv {
            gateway,
            forward,
            handle,
            bare,
            agent,
            forward_agent,
            _forward_conn: conn,
            _fixture: fixture,
        })
    }

    /// Frames the gateway dropped (frame-rate limit or slow viewer): 0 in a valid run.
    pub fn gateway_drops(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let m = self.handle.metrics();
        m.frames_dropped_fps.load(Relaxed) + m.frames_dropped_slow_viewer.load(Relaxed)
    }

    /// Stop everything.
    pub async fn stop(mut self) {
        self.gateway.viewer.close();
        self.forward.viewer.close();
        let _ = self.gateway.send.finish();
        let _ = self.forward.send.finish();
        tsuitate_transport::close(&self.agent.conn, Reason::Normal);
        self.forward_agent.close(0u32.into(), b"done");
        let _ = self.bare.stop().await;
        self.handle.shutdown().await;
    }
}
