//! The whole video path in one process, one frame at a time, with each component's real code:
//! synthetic frame source → agent converter + encoder → agent framing → gateway parse, sanitizer
//! and re-framing → viewer parse → openh264 decode → RGB (what the viewer shows).
//!
//! Drawing the synthetic picture is kept apart ([`FullPath::capture`]): it stands in for the
//! MIT-SHM capture (≈0.5 ms at 720p) and costs more than it, so it is not part of the timed path.

use std::time::{Duration, Instant};

use bytes::Bytes;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use tsuitate_agent::{bgra_to_i420, Frame, FrameSource, SyntheticSource, VideoEncoder, I420};
use tsuitate_gateway::relay::video::OutFrame;
use tsuitate_protocol::{
    AgentSessionToGateway, GatewayToViewer, Limits, Message, NalSanitizer, VideoFrame, VideoHeader,
};

use crate::content::Case;
use crate::BenchError;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The encoder's rate control skipped the picture: nothing crossed.
    Skipped,
    /// A frame crossed and was decoded.
    Decoded {
        /// Access-unit bytes the viewer received.
        bytes: usize,
    },
}

/// Time spent in each stage of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// BGRA → I420 (agent).
    pub convert: Duration,
    /// openh264 encode and the agent's framing.
    pub encode: Duration,
    /// Gateway parse, sanitize and re-frame.
    pub gateway: Duration,
    /// Viewer parse, decode and RGB conversion.
    pub viewer: Duration,
}

impl StageTimes {
    /// All stages together.
    pub fn total(&self) -> Duration {
        self.convert + self.encode + self.gateway + self.viewer
    }

    /// Add another step's times.
    pub fn add(&mut self, o: &StageTimes) {
        self.convert += o.convert;
        self.encode += o.encode;
        self.gateway += o.gateway;
        self.viewer += o.viewer;
    }
}

/// The components of the path, owned for a run.
pub struct FullPath {
    case: Case,
    src: SyntheticSource,
    pic: I420,
    encoder: tsuitate_agent::OpenH264Encoder,
    sanitizer: NalSanitizer,
    decoder: Decoder,
    limits: Limits,
    agent_seq: u64,
    gateway_seq: u64,
    rgb: Vec<u8>,
}

impl FullPath {
    /// A fresh path for `case`.
    pub fn new(case: Case) -> Result<FullPath, BenchError> {
        let limits = Limits::default();
        Ok(FullPath {
            case,
            src: case.source(),
            pic: I420::new(case.width, case.height),
            encoder: case.encoder()?,
            sanitizer: NalSanitizer::new(limits.clone()),
            decoder: Decoder::new().map_err(|e| BenchError::new(e.to_string()))?,
            limits,
            agent_seq: 0,
            gateway_seq: 0,
            rgb: vec![0; usize::from(case.width) * usize::from(case.height) * 3],
        })
    }

    /// Draw the next synthetic picture (the stand-in for a capture; not part of the path).
    pub fn capture(&mut self) -> Result<Frame, BenchError> {
        self.src
            .capture()
            .map_err(|e| BenchError::new(e.to_string()))
    }

    /// Take one captured frame all the way to RGB pixels at the viewer.
    pub fn step(&mut self, frame: &Frame) -> Result<(Step, StageTimes), BenchError> {
        let mut times = StageTimes::default();
        let t = Instant::now();
        bgra_to_i420(&frame.bgra, frame.stride, &mut self.pic)
            .map_err(|e| BenchError::new(e.to_string()))?;
        times.convert = t.elapsed();
        let t = Instant::now();
        let Some(au) = self
            .encoder
            .encode(&self.pic, false)
            .map_err(|e| BenchError::new(e.to_string()))?
        else {
            times.encode = t.elapsed();
            return Ok((Step::Skipped, times));
        };
        self.agent_seq += 1;
        // Agent: frame the access unit for its session stream.
        let wire = AgentSessionToGateway::Video(VideoFrame {
            header: VideoHeader {
                sequence: self.agent_seq,
                capture_us: frame.capture_us,
                keyframe: au.keyframe,
                width: self.case.width,
                height: self.case.height,
            },
            data: Bytes::from(au.data),
        })
        .to_bytes();
        times.encode = t.elapsed();
        let t = Instant::now();
        let to_viewer = self.gateway(&wire)?;
        times.gateway = t.elapsed();
        let t = Instant::now();
        let step = self.viewer(&to_viewer)?;
        times.viewer = t.elapsed();
        Ok((step, times))
    }

    /// Gateway: parse, sanitize, re-frame with its own header (as its session task does).
    fn gateway(&mut self, wire: &[u8]) -> Result<Vec<u8>, BenchError> {
        let frame = match AgentSessionToGateway::decode(wire, &self.limits) {
            Ok(Some((AgentSessionToGateway::Video(f), used))) if used == wire.len() => f,
            other => return Err(BenchError::new(format!("gateway parse: {other:?}"))),
        };
        let clean = self
            .sanitizer
            .sanitize(&frame.header, &frame.data)
            .map_err(|e| BenchError::new(e.to_string()))?;
        self.gateway_seq += 1;
        let header = VideoHeader {
            sequence: self.gateway_seq,
            ..frame.header
        };
        let out = OutFrame::new(header, Bytes::from(clean));
        let mut bytes = Vec::with_capacity(out.wire_len());
        bytes.extend_from_slice(&out.head);
        bytes.extend_from_slice(&out.data);
        Ok(bytes)
    }

    /// Viewer: parse, decode, convert to RGB.
    fn viewer(&mut self, wire: &[u8]) -> Result<Step, BenchError> {
        let frame = match GatewayToViewer::decode(wire, &self.limits) {
            Ok(Some((GatewayToViewer::Video(f), used))) if used == wire.len() => f,
            other => return Err(BenchError::new(format!("viewer parse: {other:?}"))),
        };
        let yuv = self
            .decoder
            .decode(&frame.data)
            .map_err(|e| BenchError::new(e.to_string()))?;
        match yuv {
            Some(yuv) => {
                let (w, h) = yuv.dimensions();
                self.rgb.resize(w * h * 3, 0);
                yuv.write_rgb8(&mut self.rgb);
            }
            None => return Err(BenchError::new("decoder returned no picture")),
        }
        Ok(Step::Decoded {
            bytes: frame.data.len(),
        })
    }

    /// The last decoded picture (RGB8).
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsuitate_agent::SyntheticContent;

    #[test]
    fn frames_cross_and_decode() {
        let case = Case {
            width: 320,
            height: 240,
            content: SyntheticContent::FullMotion,
        };
        let Ok(mut path) = FullPath::new(case) else {
            panic!("path setup failed");
        };
        let mut decoded = 0;
        for _ in 0..5 {
            let Ok(frame) = path.capture() else {
                panic!("capture failed");
            };
            match path.step(&frame).map(|(s, _)| s) {
                Ok(Step::Decoded { bytes }) => {
                    assert!(bytes > 0);
                    decoded += 1;
                }
                Ok(Step::Skipped) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(decoded >= 1);
        assert!(path.rgb().iter().any(|&b| b != 0));
    }
}
