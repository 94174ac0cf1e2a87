//! # tsuitate-protocol
//!
//! The sans-IO wire format of tsuitate: every message that may cross between the Internet zone
//! (host agents), the gateway and the LGWAN zone (viewers), the framing codec, the limits, and
//! the H.264 NAL sanitizer. No async runtime, no sockets, no clock: callers pass bytes in and get
//! typed values (or a typed error) out. The specification is `docs/protocol.md`; code comments
//! quote the section they enforce.
//!
//! There is deliberately no clipboard, file, print, audio, URL or generic-data message
//! (docs/protocol.md §8).
#![forbid(unsafe_code)]

mod agent;
mod clock;
mod codec;
mod error;
pub mod fuzzing;
pub mod h264;
mod input;
mod keycode;
pub mod keysym;
mod limits;
#[cfg(feature = "page")]
pub mod page;
mod reader;
mod reason;
mod video;
mod viewer;

pub use agent::{
    AgentSessionToGateway, AgentToGateway, GatewayToAgent, GatewayToAgentSession, SessionOwner,
    Watermark, WatermarkPlace, WATERMARK_SIZE_PX, WATERMARK_UTC_OFFSET_MIN,
};
pub use clock::ClockEstimator;
pub use codec::{frame_len, put_str, Message, Reader, FRAME_HEADER_BYTES};
pub use error::WireError;
pub use h264::{NalSanitizer, SanitizeError, SanitizerCounters};
pub use input::{keysym_valid, text_valid, Button, InputEvent, Modifiers};
pub use keycode::KeyCode;
pub use limits::*;
pub use reader::MessageBuffer;
pub use reason::Reason;
pub use video::{VideoFrame, VideoHeader};
pub use viewer::{GatewayToViewer, LoginStatus, TimeoutKind, ViewerToGateway};

/// The protocol version carried in the viewer's `Hello` and the gateway's `Welcome` to it
/// (docs/protocol.md §1).
pub const PROTOCOL_VERSION: u16 = 1;

/// The version of the agent link (agent `Hello`, gateway `Welcome` to it; docs/protocol.md §1).
/// 2: `Hello` reports the browser version and policy, `Open` carries the watermark.
/// 3: sessions live on the agent (`Open{owner,resume}`, `Started{resumed}`, `Held`,
/// `Released`). Agents and gateways are upgraded together; viewers are not affected.
pub const AGENT_PROTOCOL_VERSION: u16 = 3;

/// The QUIC ALPN identifier (docs/protocol.md §1). Both listeners accept only this.
pub const ALPN: &[u8] = b"tsuitate/1";
