//! Messages between a host agent (Internet zone) and the gateway (docs/protocol.md §5.2).
//!
//! The agent opens one bidirectional *control stream* after connecting. For each session the
//! gateway opens a bidirectional *session stream*; its first message is `OpenSession`.

use crate::codec::{put_str, Message, Reader};
use crate::error::WireError;
use crate::input::{decode_batch, encode_batch, InputEvent};
use crate::limits::{Limits, MAX_AGENT_ID_BYTES};
use crate::reason::Reason;
use crate::video::VideoFrame;
use crate::viewer::read_reason;

/// Agent → gateway, control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentToGateway {
    /// First message: version, the agent's id (also in its certificate) and session capacity.
    Hello {
        version: u16,
        agent_id: String,
        capacity: u16,
    },
    /// Free session slots changed.
    Capacity { free: u16 },
    /// Answer to `Ping`; `agent_us` is the agent clock when answering.
    Pong {
        nonce: u64,
        gateway_us: u64,
        agent_us: u64,
    },
    /// Counters for metrics.
    Stats {
        sessions: u16,
        frames_encoded: u64,
        frames_skipped: u64,
    },
}

/// Gateway → agent, control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayToAgent {
    /// Answer to `Hello`.
    Welcome { version: u16 },
    /// Clock probe (the gateway converts capture timestamps to its own clock, §3.2).
    Ping { nonce: u64, gateway_us: u64 },
    /// The gateway closes the connection.
    Bye { reason: Reason },
}

/// Agent → gateway, session stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSessionToGateway {
    /// The browser runs at this size; video follows.
    Started { width: u16, height: u16 },
    /// One encoded access unit (agent clock).
    Video(VideoFrame),
    /// The session ended on the agent side (browser exited, X server died, …).
    Ended { reason: Reason },
}

/// Gateway → agent, session stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayToAgentSession {
    /// First message on a session stream: start a browser at this size.
    Open {
        session_id: u64,
        width: u16,
        height: u16,
    },
    /// Validated, rate-limited, re-encoded viewer input.
    Input(Vec<InputEvent>),
    /// Encode the next frame as an IDR.
    KeyframeRequest,
    /// Resize the browser.
    Resize { width: u16, height: u16 },
    /// End the session: kill the browser and wipe its profile.
    Close { reason: Reason },
}

fn put_dims(out: &mut Vec<u8>, width: u16, height: u16) {
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
}

impl Message for AgentToGateway {
    fn kind_info(kind: u8) -> Option<bool> {
        (0x30..=0x33).contains(&kind).then_some(false)
    }
    fn kind(&self) -> u8 {
        match self {
            Self::Hello { .. } => 0x30,
            Self::Capacity { .. } => 0x31,
            Self::Pong { .. } => 0x32,
            Self::Stats { .. } => 0x33,
        }
    }
    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello {
                version,
                agent_id,
                capacity,
            } => {
                out.extend_from_slice(&version.to_be_bytes());
                put_str(out, agent_id);
                out.extend_from_slice(&capacity.to_be_bytes());
            }
            Self::Capacity { free } => out.extend_from_slice(&free.to_be_bytes()),
            Self::Pong {
                nonce,
                gateway_us,
                agent_us,
            } => {
                for v in [nonce, gateway_us, agent_us] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Self::Stats {
                sessions,
                frames_encoded,
                frames_skipped,
            } => {
                out.extend_from_slice(&sessions.to_be_bytes());
                out.extend_from_slice(&frames_encoded.to_be_bytes());
                out.extend_from_slice(&frames_skipped.to_be_bytes());
            }
        }
    }
    fn decode_payload(kind: u8, r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, WireError> {
        Ok(match kind {
            0x30 => Self::Hello {
                version: r.u16("version")?,
                agent_id: r.str("agent_id", MAX_AGENT_ID_BYTES)?.to_owned(),
                capacity: r.u16("capacity")?,
            },
            0x31 => Self::Capacity {
                free: r.u16("free")?,
            },
            0x32 => Self::Pong {
                nonce: r.u64("nonce")?,
                gateway_us: r.u64("gateway_us")?,
                agent_us: r.u64("agent_us")?,
            },
            0x33 => Self::Stats {
                sessions: r.u16("sessions")?,
                frames_encoded: r.u64("frames_encoded")?,
                frames_skipped: r.u64("frames_skipped")?,
            },
            other => return Err(WireError::UnexpectedKind(other)),
        })
    }
}

impl Message for GatewayToAgent {
    fn kind_info(kind: u8) -> Option<bool> {
        (0x40..=0x42).contains(&kind).then_some(false)
    }
    fn kind(&self) -> u8 {
        match self {
            Self::Welcome { .. } => 0x40,
            Self::Ping { .. } => 0x41,
            Self::Bye { .. } => 0x42,
        }
    }
    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Welcome { version } => out.extend_from_slice(&version.to_be_bytes()),
            Self::Ping { nonce, gateway_us } => {
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&gateway_us.to_be_bytes());
            }
            Self::Bye { reason } => out.extend_from_slice(&reason.to_u16().to_be_bytes()),
        }
    }
    fn decode_payload(kind: u8, r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, WireError> {
        Ok(match kind {
            0x40 => Self::Welcome {
                version: r.u16("version")?,
            },
            0x41 => Self::Ping {
                nonce: r.u64("nonce")?,
                gateway_us: r.u64("gateway_us")?,
            },
            0x42 => Self::Bye {
                reason: read_reason(r)?,
            },
            other => return Err(WireError::UnexpectedKind(other)),
        })
    }
}

impl Message for AgentSessionToGateway {
    fn kind_info(kind: u8) -> Option<bool> {
        match kind {
            0x51 => Some(true),
            0x50 | 0x52 => Some(false),
            _ => None,
        }
    }
    fn kind(&self) -> u8 {
        match self {
            Self::Started { .. } => 0x50,
            Self::Video(_) => 0x51,
            Self::Ended { .. } => 0x52,
        }
    }
    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Started { width, height } => put_dims(out, *width, *height),
            Self::Video(frame) => frame.encode_payload(out),
            Self::Ended { reason } => out.extend_from_slice(&reason.to_u16().to_be_bytes()),
        }
    }
    fn decode_payload(kind: u8, r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(match kind {
            0x50 => {
                let (width, height) = r.dimensions(limits)?;
                Self::Started { width, height }
            }
            0x51 => Self::Video(VideoFrame::decode_payload(r, limits)?),
            0x52 => Self::Ended {
                reason: read_reason(r)?,
            },
            other => return Err(WireError::UnexpectedKind(other)),
        })
    }
}

impl Message for GatewayToAgentSession {
    fn kind_info(kind: u8) -> Option<bool> {
        (0x60..=0x64).contains(&kind).then_some(false)
    }
    fn kind(&self) -> u8 {
        match self {
            Self::Open { .. } => 0x60,
            Self::Input(_) => 0x61,
            Self::KeyframeRequest => 0x62,
            Self::Resize { .. } => 0x63,
            Self::Close { .. } => 0x64,
        }
    }
    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Open {
                session_id,
                width,
                height,
            } => {
                out.extend_from_slice(&session_id.to_be_bytes());
                put_dims(out, *width, *height);
            }
            Self::Input(events) => encode_batch(events, out),
            Self::KeyframeRequest => {}
            Self::Resize { width, height } => put_dims(out, *width, *height),
            Self::Close { reason } => out.extend_from_slice(&reason.to_u16().to_be_bytes()),
        }
    }
    fn decode_payload(kind: u8, r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(match kind {
            0x60 => {
                let session_id = r.u64("session_id")?;
                let (width, height) = r.dimensions(limits)?;
                Self::Open {
                    session_id,
                    width,
                    height,
                }
            }
            0x61 => Self::Input(decode_batch(r, limits)?),
            0x62 => Self::KeyframeRequest,
            0x63 => {
                let (width, height) = r.dimensions(limits)?;
                Self::Resize { width, height }
            }
            0x64 => Self::Close {
                reason: read_reason(r)?,
            },
            other => return Err(WireError::UnexpectedKind(other)),
        })
    }
}
