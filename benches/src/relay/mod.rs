//! The relay over real loopback QUIC: a bench agent sends pre-encoded video messages through an
//! in-process gateway to a viewer, and the same bytes through a bare quinn forward
//! ([`forward::BareForward`]) to another viewer, in the same process and run.
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

pub mod agent;
pub mod fixture;
pub mod forward;
pub mod reader;
pub mod viewer;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quinn::SendStream;
use tsuitate_agent::EncodedAu;
use tsuitate_gateway::{Gateway, GatewayHandle};
use tsuitate_protocol::{AgentSessionToGateway, Message, VideoFrame, VideoHeader};

use self::agent::BenchAgent;
use self::fixture::{Fixture, AGENT_ID, MAX_FPS, PASSWORD, USER};
use self::forward::BareForward;
use self::viewer::BenchViewer;
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

/// One path from an agent's stream to a viewer.
pub struct Link {
    send: SendStream,
    viewer: BenchViewer,
    frames: Vec<Bytes>,
    next: usize,
}

impl Link {
    fn new(send: SendStream, viewer: BenchViewer, frames: Vec<Bytes>) -> Link {
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
    agent: BenchAgent,
    forward_agent: quinn::Endpoint,
    _forward_conn: quinn::Connection,
    _fixture: Fixture,
}

impl RelayEnv {
    /// Start everything for `aus` (the first must be a keyframe) at `width`×`height`.
    pub async fn start(aus: &[EncodedAu], width: u16, height: u16) -> Result<RelayEnv, BenchError> {
        if !aus.first().is_some_and(|a| a.keyframe) {
            return Err(BenchError::new("the first access unit must be a keyframe"));
        }
        let mut fixture = Fixture::new(width, height)?;
        fixture.config.session.shutdown_drain_s = 1;
        let handle = Gateway::start(fixture.config.clone())
            .await
            .map_err(|e| BenchError::new(format!("gateway: {e}")))?;
        let ca = fixture.ca();
        let (cert, key) = fixture.agent_identity();
        let mut agent =
            BenchAgent::connect(handle.agent_addr, &ca, (&cert, &key), AGENT_ID).await?;
        let viewer = BenchViewer::gateway(handle.viewer_addr, &ca, USER, PASSWORD).await?;
        let session = agent.next_session(Duration::from_secs(20)).await?;
        let frames = video_messages(aus, width, height);
        let gateway = Link::new(session, viewer, frames.clone());

        let bare = BareForward::start(&fixture.config)?;
        let fviewer = BenchViewer::forward(bare.viewer_addr, &ca).await?;
        let cfg = tsuitate_transport::client_config_from_files(
            &ca,
            Some((&cert, &key)),
            &tsuitate_transport::Tuning::default(),
        )
        .map_err(|e| BenchError::new(format!("tls: {e}")))?;
        let forward_agent = agent::client_endpoint(cfg)?;
        let conn = forward_agent
            .connect(bare.agent_addr, "localhost")
            .map_err(|e| BenchError::new(format!("forward connect: {e}")))?
            .await
            .map_err(|e| BenchError::new(format!("forward handshake: {e}")))?;
        // A bidirectional stream, as the agent's session streams are (the gateway's transport
        // settings allow no unidirectional ones).
        let (fsend, _) = conn
            .open_bi()
            .await
            .map_err(|e| BenchError::new(format!("forward open: {e}")))?;
        let forward = Link::new(fsend, fviewer, frames);
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
    pub async fn stop(self) {
        self.gateway.viewer.close();
        self.forward.viewer.close();
        agent::finish(self.gateway.send);
        agent::finish(self.forward.send);
        self.agent.conn.close(0u32.into(), b"done");
        self.forward_agent.close(0u32.into(), b"done");
        let _ = self.bare.stop().await;
        self.handle.shutdown().await;
    }
}
