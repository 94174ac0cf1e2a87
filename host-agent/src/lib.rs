//! # tsuitate-agent
//!
//! The host agent of tsuitate (Internet zone): for every session the gateway opens it starts
//! its own Xvfb and a real Chromium with an empty profile, captures the screen (MIT-SHM,
//! XDamage), converts BGRA → I420, encodes H.264 with openh264, injects viewer input with
//! XTEST, and talks QUIC (mTLS) to one or more gateways. See docs/agent.md.
#![forbid(unsafe_code)]

pub mod browser;
pub mod client;
pub mod config;
pub mod convert;
pub mod encode;
pub mod frame;
pub mod held;
pub mod pipeline;
pub mod session;
pub mod size;
pub mod watermark;
pub mod writer;
pub mod x11;

pub use browser::{BrowserError, BrowserOptions, BrowserSession, BrowserUser};
pub use convert::{bgra_to_i420, I420};
pub use encode::{EncodedAu, EncoderSettings, OpenH264Encoder, VideoEncoder};
pub use frame::{
    now_us, CaptureError, Change, Frame, FrameSource, SyntheticContent, SyntheticSource,
};
pub use pipeline::Pipeline;
pub use size::{clamp_size, DEFAULT_MAX_SIZE};
