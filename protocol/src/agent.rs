//! Messages between a host agent (Internet zone) and the gateway (docs/protocol.md §5.2).
//!
//! The agent opens one bidirectional *control stream* after connecting. For each session the
//! gateway opens a bidirectional *session stream*; its first message is `OpenSession`.

use crate::codec::{put_str, Message, Reader};
use crate::error::WireError;
use crate::input::text_valid;
use crate::input::{decode_batch, encode_batch, InputEvent};
use crate::limits::{Limits, MAX_AGENT_ID_BYTES, MAX_WATERMARK_BYTES};
use crate::reason::Reason;
use crate::video::VideoFrame;
use crate::viewer::read_reason;

/// Agent → gateway, control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentToGateway {
    /// First message: version, the agent's id (also in its certificate), session capacity,
    /// the browser's version (`chromium --version`, empty when unknown) and the SHA-256 (hex) of
    /// the managed browser policy the agent installed and verified (empty when none).
    Hello {
        version: u16,
        agent_id: String,
        capacity: u16,
        browser: String,
        policy: String,
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
    /// The agent holds session `session` (its own number) of `owner`: attached to a gateway, or
    /// `lingering` (its gateway connection was lost; the browser waits for `Open{resume}`).
    /// Sent for every held session after `Welcome` and again on every change (§5.2).
    Held {
        session: u64,
        owner: SessionOwner,
        lingering: bool,
    },
    /// Session `session` ended on the agent.
    Released { session: u64 },
}

/// Who a session belongs to, as the agent knows it: 16 bytes of SHA-256 over the user name
/// (computed by the gateway; the agent never learns the name from it). docs/protocol.md §5.2.
pub type SessionOwner = [u8; 16];

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
    /// The browser runs at this size; video follows, starting with a keyframe. `resumed`: an
    /// existing browser was handed over (`Open{resume}`), not a new one started; `age_s`: how
    /// long that browser has run (0 for a new one) — the session's absolute timeout counts
    /// from its start, whichever gateways carried it.
    Started {
        width: u16,
        height: u16,
        resumed: bool,
        age_s: u32,
    },
    /// One encoded access unit (agent clock).
    Video(VideoFrame),
    /// The session ended on the agent side (browser exited, X server died, …).
    Ended { reason: Reason },
}

/// Gateway → agent, session stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayToAgentSession {
    /// First message on a session stream: start a browser at this size for `owner`, drawing
    /// `watermark` into every picture when there is one. With `resume`, take over the agent's
    /// session of that number instead when it is `owner`'s (lingering, or attached through
    /// another gateway, which is then told `Ended{Replaced}`); a new browser starts when it
    /// is gone.
    Open {
        session_id: u64,
        width: u16,
        height: u16,
        watermark: Option<Watermark>,
        owner: SessionOwner,
        resume: Option<u64>,
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

/// Where the agent draws the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatermarkPlace {
    /// Top-left corner.
    TopLeft,
    /// Top-right corner.
    TopRight,
    /// Bottom-left corner.
    BottomLeft,
    /// Bottom-right corner.
    BottomRight,
    /// The middle of the picture.
    Center,
    /// Repeated over the whole picture (a photo of any part of the screen shows it).
    Tiled,
}

impl WatermarkPlace {
    /// Every place, in wire order.
    pub const ALL: [WatermarkPlace; 6] = [
        Self::TopLeft,
        Self::TopRight,
        Self::BottomLeft,
        Self::BottomRight,
        Self::Center,
        Self::Tiled,
    ];

    /// The configuration name (`bottom-right`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::TopLeft => "top-left",
            Self::TopRight => "top-right",
            Self::BottomLeft => "bottom-left",
            Self::BottomRight => "bottom-right",
            Self::Center => "center",
            Self::Tiled => "tiled",
        }
    }

    /// The place a configuration name stands for.
    pub fn from_name(name: &str) -> Option<WatermarkPlace> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    fn to_u8(self) -> u8 {
        Self::ALL.iter().position(|p| *p == self).unwrap_or(0) as u8
    }
}

/// Smallest and largest watermark text size in pixels.
pub const WATERMARK_SIZE_PX: std::ops::RangeInclusive<u8> = 8..=64;
/// Largest distance of a time zone from UTC in minutes (UTC−12:00 … UTC+14:00).
pub const WATERMARK_UTC_OFFSET_MIN: std::ops::RangeInclusive<i16> = -720..=840;

/// What the agent draws into every picture of one session so that a photo of the screen can be
/// traced (docs/protocol.md §5.2): `text` (the gateway writes the user and the viewer's address
/// into it) followed by the agent's current date and time at `utc_offset_min`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Watermark {
    /// At most [`MAX_WATERMARK_BYTES`], no control characters.
    pub text: String,
    /// Where.
    pub place: WatermarkPlace,
    /// Opacity in percent, 1–100.
    pub opacity: u8,
    /// Text height in pixels, [`WATERMARK_SIZE_PX`].
    pub size_px: u8,
    /// The time zone of the time drawn, minutes east of UTC ([`WATERMARK_UTC_OFFSET_MIN`]).
    pub utc_offset_min: i16,
}

impl Watermark {
    fn encode(w: Option<&Watermark>, out: &mut Vec<u8>) {
        let Some(w) = w else {
            out.push(0);
            return;
        };
        out.push(1);
        put_str(out, &w.text);
        out.push(w.place.to_u8());
        out.push(w.opacity);
        out.push(w.size_px);
        out.extend_from_slice(&w.utc_offset_min.to_be_bytes());
    }

    fn decode(r: &mut Reader<'_>) -> Result<Option<Watermark>, WireError> {
        if !r.bool("watermark")? {
            return Ok(None);
        }
        let text = r.str("watermark_text", MAX_WATERMARK_BYTES)?;
        if !text_valid(text) {
            return Err(WireError::InvalidValue {
                field: "watermark_text",
                value: 0,
            });
        }
        let place = r.u8("watermark_place")?;
        let place = WatermarkPlace::ALL.get(usize::from(place)).copied().ok_or(
            WireError::InvalidValue {
                field: "watermark_place",
                value: place.into(),
            },
        )?;
        let opacity = r.u8("watermark_opacity")?;
        if !(1..=100).contains(&opacity) {
            return Err(WireError::InvalidValue {
                field: "watermark_opacity",
                value: opacity.into(),
            });
        }
        let size_px = r.u8("watermark_size")?;
        if !WATERMARK_SIZE_PX.contains(&size_px) {
            return Err(WireError::InvalidValue {
                field: "watermark_size",
                value: size_px.into(),
            });
        }
        let utc_offset_min = r.i16("watermark_utc_offset")?;
        if !WATERMARK_UTC_OFFSET_MIN.contains(&utc_offset_min) {
            return Err(WireError::InvalidValue {
                field: "watermark_utc_offset",
                value: utc_offset_min.unsigned_abs().into(),
            });
        }
        Ok(Some(Watermark {
            text: text.to_owned(),
            place,
            opacity,
            size_px,
            utc_offset_min,
        }))
    }
}

fn put_dims(out: &mut Vec<u8>, width: u16, height: u16) {
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
}

/// A text field shown to admins: ≤ 64 bytes, no control characters.
fn printable(r: &mut Reader<'_>, field: &'static str) -> Result<String, WireError> {
    let s = r.str(field, MAX_AGENT_ID_BYTES)?;
    if text_valid(s) {
        Ok(s.to_owned())
    } else {
        Err(WireError::InvalidValue { field, value: 0 })
    }
}

impl Message for AgentToGateway {
    fn kind_info(kind: u8) -> Option<bool> {
        (0x30..=0x35).contains(&kind).then_some(false)
    }
    fn kind(&self) -> u8 {
        match self {
            Self::Hello { .. } => 0x30,
            Self::Capacity { .. } => 0x31,
            Self::Pong { .. } => 0x32,
            Self::Stats { .. } => 0x33,
            Self::Held { .. } => 0x34,
            Self::Released { .. } => 0x35,
        }
    }
    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello {
                version,
                agent_id,
                capacity,
                browser,
                policy,
            } => {
                out.extend_from_slice(&version.to_be_bytes());
                put_str(out, agent_id);
                out.extend_from_slice(&capacity.to_be_bytes());
                put_str(out, browser);
                put_str(out, policy);
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
            Self::Held {
                session,
                owner,
                lingering,
            } => {
                out.extend_from_slice(&session.to_be_bytes());
                out.extend_from_slice(owner);
                out.push(u8::from(*lingering));
            }
            Self::Released { session } => out.extend_from_slice(&session.to_be_bytes()),
        }
    }
    fn decode_payload(kind: u8, r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, WireError> {
        Ok(match kind {
            0x30 => Self::Hello {
                version: r.u16("version")?,
                agent_id: r.str("agent_id", MAX_AGENT_ID_BYTES)?.to_owned(),
                capacity: r.u16("capacity")?,
                browser: printable(r, "browser")?,
                policy: printable(r, "policy")?,
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
            0x34 => Self::Held {
                session: r.u64("session")?,
                owner: r.array("owner")?,
                lingering: r.bool("lingering")?,
            },
            0x35 => Self::Released {
                session: r.u64("session")?,
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
            Self::Started {
                width,
                height,
                resumed,
                age_s,
            } => {
                put_dims(out, *width, *height);
                out.push(u8::from(*resumed));
                out.extend_from_slice(&age_s.to_be_bytes());
            }
            Self::Video(frame) => frame.encode_payload(out),
            Self::Ended { reason } => out.extend_from_slice(&reason.to_u16().to_be_bytes()),
        }
    }
    fn decode_payload(kind: u8, r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(match kind {
            0x50 => {
                let (width, height) = r.dimensions(limits)?;
                Self::Started {
                    width,
                    height,
                    resumed: r.bool("resumed")?,
                    age_s: r.u32("age_s")?,
                }
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
                watermark,
                owner,
                resume,
            } => {
                out.extend_from_slice(&session_id.to_be_bytes());
                put_dims(out, *width, *height);
                Watermark::encode(watermark.as_ref(), out);
                out.extend_from_slice(owner);
                match resume {
                    Some(n) => {
                        out.push(1);
                        out.extend_from_slice(&n.to_be_bytes());
                    }
                    None => out.push(0),
                }
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
                let watermark = Watermark::decode(r)?;
                let owner = r.array("owner")?;
                let resume = if r.bool("resume")? {
                    Some(r.u64("resume")?)
                } else {
                    None
                };
                Self::Open {
                    session_id,
                    width,
                    height,
                    watermark,
                    owner,
                    resume,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(w: Watermark) -> Vec<u8> {
        GatewayToAgentSession::Open {
            session_id: 7,
            width: 1280,
            height: 720,
            watermark: Some(w),
            owner: [7; 16],
            resume: None,
        }
        .to_bytes()
    }

    fn sample() -> Watermark {
        Watermark {
            text: "山田 192.0.2.10".into(),
            place: WatermarkPlace::BottomRight,
            opacity: 40,
            size_px: 16,
            utc_offset_min: 540,
        }
    }

    fn refused(bytes: &[u8]) -> WireError {
        GatewayToAgentSession::decode(bytes, &Limits::default()).expect_err("must be refused")
    }

    #[test]
    fn a_watermark_outside_its_ranges_is_refused() {
        let ok = open(sample());
        assert!(GatewayToAgentSession::decode(&ok, &Limits::default()).is_ok());
        for (w, field) in [
            (
                Watermark {
                    text: "a\u{7}b".into(),
                    ..sample()
                },
                "watermark_text",
            ),
            (
                Watermark {
                    opacity: 0,
                    ..sample()
                },
                "watermark_opacity",
            ),
            (
                Watermark {
                    opacity: 101,
                    ..sample()
                },
                "watermark_opacity",
            ),
            (
                Watermark {
                    size_px: 7,
                    ..sample()
                },
                "watermark_size",
            ),
            (
                Watermark {
                    utc_offset_min: 841,
                    ..sample()
                },
                "watermark_utc_offset",
            ),
        ] {
            match refused(&open(w)) {
                WireError::InvalidValue { field: f, .. } => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        // The place byte follows the text: 5 (header) + 8 + 4 + 1 (flag) + 1 + text.
        let mut bad = ok.clone();
        let at = 5 + 8 + 4 + 1 + 1 + sample().text.len();
        bad[at] = 6;
        assert!(matches!(
            refused(&bad),
            WireError::InvalidValue {
                field: "watermark_place",
                value: 6
            }
        ));
    }

    #[test]
    fn place_names_round_trip() {
        for p in WatermarkPlace::ALL {
            assert_eq!(WatermarkPlace::from_name(p.name()), Some(p));
        }
        assert_eq!(WatermarkPlace::from_name("middle"), None);
    }
}
