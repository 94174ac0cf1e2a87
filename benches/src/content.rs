//! The benchmark cases: frame sizes × content kinds, drawn by the agent's own synthetic frame
//! source and encoded with the agent's own encoder at its default settings.

use std::fmt;
use std::time::{Duration, Instant};

use tsuitate_agent::{
    bgra_to_i420, EncodedAu, EncoderSettings, FrameSource, OpenH264Encoder, SyntheticContent,
    SyntheticSource, VideoEncoder, I420,
};

use crate::BenchError;

/// The agent's default frame rate (host-agent config `fps`).
pub const AGENT_FPS: u32 = 30;
/// The agent's default bitrate cap in kbit/s (host-agent config `bitrate_kbps`).
pub const AGENT_BITRATE_KBPS: u32 = 5000;

/// One frame size and content kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Frame width.
    pub width: u16,
    /// Frame height.
    pub height: u16,
    /// What the synthetic source draws.
    pub content: SyntheticContent,
}

/// The sizes the issue asks for: 1280×720 and 1920×1080.
pub const SIZES: [(u16, u16); 2] = [(1280, 720), (1920, 1080)];

/// The content kinds: static page with a blinking caret, scroll, full motion.
pub const CONTENTS: [SyntheticContent; 3] = [
    SyntheticContent::StaticCaret,
    SyntheticContent::Scroll,
    SyntheticContent::FullMotion,
];

/// Every size × content combination.
pub fn all_cases() -> Vec<Case> {
    SIZES
        .iter()
        .flat_map(|&(width, height)| {
            CONTENTS.iter().map(move |&content| Case {
                width,
                height,
                content,
            })
        })
        .collect()
}

/// A short name for a content kind.
pub fn content_name(c: SyntheticContent) -> &'static str {
    match c {
        SyntheticContent::StaticCaret => "caret",
        SyntheticContent::Scroll => "scroll",
        SyntheticContent::FullMotion => "full_motion",
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}p_{}", self.height, content_name(self.content))
    }
}

impl Case {
    /// The agent's encoder settings for this size (config defaults: 30 fps, 5000 kbit/s,
    /// screen-content mode).
    pub fn settings(&self) -> EncoderSettings {
        EncoderSettings {
            width: self.width,
            height: self.height,
            fps: AGENT_FPS,
            bitrate_kbps: AGENT_BITRATE_KBPS,
            screen_content: true,
        }
    }

    /// A fresh synthetic source for this case.
    pub fn source(&self) -> SyntheticSource {
        SyntheticSource::new(self.width, self.height, self.content)
    }

    /// A fresh agent encoder for this case.
    pub fn encoder(&self) -> Result<OpenH264Encoder, BenchError> {
        OpenH264Encoder::new(self.settings()).map_err(|e| BenchError::new(e.to_string()))
    }
}

/// Capture the next synthetic frame and convert it with the agent's converter into `pic`.
pub fn next_picture(src: &mut SyntheticSource, pic: &mut I420) -> Result<u64, BenchError> {
    let frame = src.capture().map_err(|e| BenchError::new(e.to_string()))?;
    bgra_to_i420(&frame.bgra, frame.stride, pic).map_err(|e| BenchError::new(e.to_string()))?;
    Ok(frame.capture_us)
}

/// What a run of the encoder over `frames_in` pictures produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodeStats {
    /// Pictures given to the encoder.
    pub frames_in: usize,
    /// Access units it produced (the rest were skipped by the rate control).
    pub frames_out: usize,
    /// Bytes of every access unit.
    pub bytes: usize,
    /// Bytes of the first (IDR) access unit.
    pub first_bytes: usize,
    /// Time spent in encode calls that produced an access unit.
    pub produced_time: Duration,
    /// Time spent in encode calls the rate control skipped.
    pub skipped_time: Duration,
}

impl EncodeStats {
    /// Mean bytes per produced access unit, the first (IDR) one left out.
    pub fn p_frame_bytes(&self) -> usize {
        let n = self.frames_out.saturating_sub(1).max(1);
        self.bytes.saturating_sub(self.first_bytes) / n
    }

    /// Mean milliseconds of an encode call that produced an access unit.
    pub fn produced_ms(&self) -> f64 {
        ms_per(self.produced_time, self.frames_out)
    }

    /// Mean milliseconds of an encode call the rate control skipped.
    pub fn skipped_ms(&self) -> f64 {
        ms_per(
            self.skipped_time,
            self.frames_in.saturating_sub(self.frames_out),
        )
    }
}

fn ms_per(d: Duration, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        d.as_secs_f64() * 1e3 / n as f64
    }
}

/// Encode `n` frames of `case` from the start and return the access units (benchmark inputs
/// for the relay) with their statistics.
pub fn encode_case(case: Case, n: usize) -> Result<(Vec<EncodedAu>, EncodeStats), BenchError> {
    let mut src = case.source();
    let mut enc = case.encoder()?;
    let mut pic = I420::new(case.width, case.height);
    let mut aus = Vec::with_capacity(n);
    let mut stats = EncodeStats::default();
    for _ in 0..n {
        next_picture(&mut src, &mut pic)?;
        stats.frames_in += 1;
        let t0 = Instant::now();
        let au = enc
            .encode(&pic, false)
            .map_err(|e| BenchError::new(e.to_string()))?;
        let took = t0.elapsed();
        if au.is_some() {
            stats.produced_time += took;
        } else {
            stats.skipped_time += took;
        }
        if let Some(au) = au {
            if stats.frames_out == 0 {
                stats.first_bytes = au.data.len();
            }
            stats.frames_out += 1;
            stats.bytes += au.data.len();
            aus.push(au);
        }
    }
    Ok((aus, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_case_starts_with_a_keyframe_and_counts_bytes() {
        let case = Case {
            width: 320,
            height: 240,
            content: SyntheticContent::Scroll,
        };
        let (aus, stats) = encode_case(case, 5)
            .map_err(|e| e.to_string())
            .unwrap_or_default();
        assert!(!aus.is_empty());
        assert!(aus[0].keyframe);
        assert_eq!(stats.bytes, aus.iter().map(|a| a.data.len()).sum::<usize>());
        assert_eq!(stats.frames_in, 5);
    }

    #[test]
    fn six_cases() {
        let names: Vec<String> = all_cases().iter().map(|c| c.to_string()).collect();
        assert_eq!(names.len(), 6);
        assert!(names.contains(&"1080p_full_motion".to_string()));
    }
}
