//! Messages between a viewer (LGWAN zone) and the gateway, on the one bidirectional stream the
//! viewer opens (docs/protocol.md §5.1).

use crate::codec::{put_str, Message, Reader};
use crate::error::WireError;
use crate::input::{decode_batch, encode_batch, InputEvent};
use crate::limits::{Limits, MAX_PASSWORD_BYTES, MAX_USER_BYTES};
use crate::reason::Reason;
use crate::video::VideoFrame;

/// Viewer → gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerToGateway {
    /// First message: the protocol version the viewer speaks.
    Hello { version: u16 },
    /// Credentials. Sent once after `Welcome`.
    Login { user: String, password: String },
    /// Keyboard and pointer events, forwarded (rebuilt) to the agent.
    Input(Vec<InputEvent>),
    /// Ask for a new browser size (the window was resized).
    Resize { width: u16, height: u16 },
    /// Ask for a keyframe (e.g. after a decode error).
    KeyframeRequest,
    /// Clock probe; the gateway answers `Pong`.
    Ping { nonce: u64, viewer_us: u64 },
    /// Capture→decoded latency measured by the viewer since its last report.
    LatencyReport {
        frames: u32,
        p50_us: u32,
        p95_us: u32,
    },
    /// End the session now (the browser is closed).
    Logout,
    /// From a trusted front only (the web viewer, authenticated by its client certificate):
    /// the address of the browser this connection logs in for. Sent between `Welcome` and
    /// `Login`; lockout and audit use it instead of the front's own address (§5.1).
    Forwarded { client: std::net::SocketAddr },
}

/// The viewer-side result of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStatus {
    /// Logged in; `SessionReady` follows.
    Ok,
    /// Wrong user or password.
    Denied,
    /// Too many failures; try again after `retry_after_s`.
    LockedOut,
    /// No agent has a free browser.
    NoCapacity,
}

impl LoginStatus {
    fn to_u8(self) -> u8 {
        match self {
            LoginStatus::Ok => 0,
            LoginStatus::Denied => 1,
            LoginStatus::LockedOut => 2,
            LoginStatus::NoCapacity => 3,
        }
    }
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => LoginStatus::Ok,
            1 => LoginStatus::Denied,
            2 => LoginStatus::LockedOut,
            3 => LoginStatus::NoCapacity,
            _ => return None,
        })
    }
}

/// Gateway → viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayToViewer {
    /// Answer to `Hello`.
    Welcome { version: u16 },
    /// Answer to `Login`.
    LoginResult {
        status: LoginStatus,
        retry_after_s: u32,
    },
    /// A browser is attached at this size; video follows, starting with a keyframe.
    SessionReady {
        width: u16,
        height: u16,
        resumed: bool,
    },
    /// One sanitized, re-framed access unit.
    Video(VideoFrame),
    /// Answer to `Ping`, for RTT and clock offset.
    Pong {
        nonce: u64,
        viewer_us: u64,
        gateway_us: u64,
    },
    /// The session or connection ends.
    Bye { reason: Reason },
    /// The session will end by a timeout in `seconds` unless (for `Idle`) the user acts.
    TimeoutWarning { kind: TimeoutKind, seconds: u32 },
}

/// Which timeout a [`GatewayToViewer::TimeoutWarning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// No input for `idle_timeout_s` (any input resets it).
    Idle,
    /// The session's maximum duration (`absolute_timeout_s`).
    Absolute,
}

impl TimeoutKind {
    fn to_u8(self) -> u8 {
        match self {
            TimeoutKind::Idle => 1,
            TimeoutKind::Absolute => 2,
        }
    }
    fn from_u8(v: u8) -> Option<TimeoutKind> {
        match v {
            1 => Some(TimeoutKind::Idle),
            2 => Some(TimeoutKind::Absolute),
            _ => None,
        }
    }
    /// A stable name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            TimeoutKind::Idle => "idle",
            TimeoutKind::Absolute => "absolute",
        }
    }
}

pub(crate) fn read_reason(r: &mut Reader<'_>) -> Result<Reason, WireError> {
    let raw = r.u16("reason")?;
    Reason::from_u16(raw).ok_or(WireError::InvalidValue {
        field: "reason",
        value: raw.into(),
    })
}

impl Message for ViewerToGateway {
    fn kind_info(kind: u8) -> Option<bool> {
        (0x10..=0x18).contains(&kind).then_some(false)
    }
    fn kind(&self) -> u8 {
        match self {
            Self::Hello { .. } => 0x10,
            Self::Login { .. } => 0x11,
            Self::Input(_) => 0x12,
            Self::Resize { .. } => 0x13,
            Self::KeyframeRequest => 0x14,
            Self::Ping { .. } => 0x15,
            Self::LatencyReport { .. } => 0x16,
            Self::Logout => 0x17,
            Self::Forwarded { .. } => 0x18,
        }
    }
    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello { version } => out.extend_from_slice(&version.to_be_bytes()),
            Self::Login { user, password } => {
                put_str(out, user);
                put_str(out, password);
            }
            Self::Input(events) => encode_batch(events, out),
            Self::Resize { width, height } => {
                out.extend_from_slice(&width.to_be_bytes());
                out.extend_from_slice(&height.to_be_bytes());
            }
            Self::KeyframeRequest | Self::Logout => {}
            Self::Forwarded { client } => {
                match client.ip() {
                    std::net::IpAddr::V4(a) => {
                        out.push(4);
                        out.extend_from_slice(&a.octets());
                    }
                    std::net::IpAddr::V6(a) => {
                        out.push(6);
                        out.extend_from_slice(&a.octets());
                    }
                }
                out.extend_from_slice(&client.port().to_be_bytes());
            }
            Self::Ping { nonce, viewer_us } => {
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&viewer_us.to_be_bytes());
            }
            Self::LatencyReport {
                frames,
                p50_us,
                p95_us,
            } => {
                for v in [frames, p50_us, p95_us] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
    fn decode_payload(kind: u8, r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(match kind {
            0x10 => Self::Hello {
                version: r.u16("version")?,
            },
            0x11 => Self::Login {
                user: r.str("user", MAX_USER_BYTES)?.to_owned(),
                password: r.str("password", MAX_PASSWORD_BYTES)?.to_owned(),
            },
            0x12 => Self::Input(decode_batch(r, limits)?),
            0x13 => {
                let (width, height) = r.dimensions(limits)?;
                Self::Resize { width, height }
            }
            0x14 => Self::KeyframeRequest,
            0x15 => Self::Ping {
                nonce: r.u64("nonce")?,
                viewer_us: r.u64("viewer_us")?,
            },
            0x16 => Self::LatencyReport {
                frames: r.u32("frames")?,
                p50_us: r.u32("p50_us")?,
                p95_us: r.u32("p95_us")?,
            },
            0x17 => Self::Logout,
            0x18 => {
                let ip: std::net::IpAddr = match r.u8("forwarded.family")? {
                    4 => r.array::<4>("forwarded.ipv4")?.into(),
                    6 => r.array::<16>("forwarded.ipv6")?.into(),
                    other => {
                        return Err(WireError::InvalidValue {
                            field: "forwarded.family",
                            value: other.into(),
                        })
                    }
                };
                Self::Forwarded {
                    client: std::net::SocketAddr::new(ip, r.u16("forwarded.port")?),
                }
            }
            other => return Err(WireError::UnexpectedKind(other)),
        })
    }
}

impl Message for GatewayToViewer {
    fn kind_info(kind: u8) -> Option<bool> {
        match kind {
            0x23 => Some(true),
            0x20..=0x26 => Some(false),
            _ => None,
        }
    }
    fn kind(&self) -> u8 {
        match self {
            Self::Welcome { .. } => 0x20,
            Self::LoginResult { .. } => 0x21,
            Self::SessionReady { .. } => 0x22,
            Self::Video(_) => 0x23,
            Self::Pong { .. } => 0x24,
            Self::Bye { .. } => 0x25,
            Self::TimeoutWarning { .. } => 0x26,
        }
    }
    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Welcome { version } => out.extend_from_slice(&version.to_be_bytes()),
            Self::LoginResult {
                status,
                retry_after_s,
            } => {
                out.push(status.to_u8());
                out.extend_from_slice(&retry_after_s.to_be_bytes());
            }
            Self::SessionReady {
                width,
                height,
                resumed,
            } => {
                out.extend_from_slice(&width.to_be_bytes());
                out.extend_from_slice(&height.to_be_bytes());
                out.push(u8::from(*resumed));
            }
            Self::Video(frame) => frame.encode_payload(out),
            Self::Pong {
                nonce,
                viewer_us,
                gateway_us,
            } => {
                for v in [nonce, viewer_us, gateway_us] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Self::Bye { reason } => out.extend_from_slice(&reason.to_u16().to_be_bytes()),
            Self::TimeoutWarning { kind, seconds } => {
                out.push(kind.to_u8());
                out.extend_from_slice(&seconds.to_be_bytes());
            }
        }
    }
    fn decode_payload(kind: u8, r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(match kind {
            0x20 => Self::Welcome {
                version: r.u16("version")?,
            },
            0x21 => {
                let raw = r.u8("login.status")?;
                let status = LoginStatus::from_u8(raw).ok_or(WireError::InvalidValue {
                    field: "login.status",
                    value: raw.into(),
                })?;
                Self::LoginResult {
                    status,
                    retry_after_s: r.u32("retry_after_s")?,
                }
            }
            0x22 => {
                let (width, height) = r.dimensions(limits)?;
                Self::SessionReady {
                    width,
                    height,
                    resumed: r.bool("resumed")?,
                }
            }
            0x23 => Self::Video(VideoFrame::decode_payload(r, limits)?),
            0x24 => Self::Pong {
                nonce: r.u64("nonce")?,
                viewer_us: r.u64("viewer_us")?,
                gateway_us: r.u64("gateway_us")?,
            },
            0x25 => Self::Bye {
                reason: read_reason(r)?,
            },
            0x26 => {
                let raw = r.u8("timeout.kind")?;
                let kind = TimeoutKind::from_u8(raw).ok_or(WireError::InvalidValue {
                    field: "timeout.kind",
                    value: raw.into(),
                })?;
                Self::TimeoutWarning {
                    kind,
                    seconds: r.u32("timeout.seconds")?,
                }
            }
            other => return Err(WireError::UnexpectedKind(other)),
        })
    }
}
