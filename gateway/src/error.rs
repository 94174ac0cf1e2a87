//! Gateway errors. Each says which side caused it (like pingora's `ErrorSource`): the agent
//! (Internet zone), the viewer (LGWAN zone) or the gateway itself.

use thiserror::Error;
use tsuitate_protocol::{Reason, SanitizeError, WireError};

/// Which side an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// A host agent (Internet zone).
    Agent,
    /// A viewer (LGWAN zone).
    Viewer,
    /// The gateway itself (configuration, I/O, bugs).
    Internal,
}

impl Side {
    /// A stable lower-case name for logs, metrics and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Side::Agent => "agent",
            Side::Viewer => "viewer",
            Side::Internal => "internal",
        }
    }
}

/// Why a peer's connection or session was cut off.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// Bytes that are not a valid message.
    #[error("malformed message: {0}")]
    Wire(#[from] WireError),
    /// An access unit the sanitizer refused.
    #[error("video refused by the sanitizer: {0}")]
    Sanitizer(#[from] SanitizeError),
    /// A message that is valid but not allowed in the current state.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// An input event that fails validation.
    #[error("invalid input: {0}")]
    Input(&'static str),
    /// Too much input or too many frames.
    #[error("rate limit exceeded: {0}")]
    RateLimited(&'static str),
    /// The agent id in `Hello` does not match its certificate.
    #[error("agent id does not match the certificate")]
    IdentityMismatch,
    /// The peer took too long for a step of the handshake.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl Violation {
    /// A short stable name for metrics and audit records.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::Wire(e) => e.code(),
            Violation::Sanitizer(e) => e.code(),
            Violation::Unexpected(_) => "unexpected_message",
            Violation::Input(_) => "invalid_input",
            Violation::RateLimited(_) => "rate_limited",
            Violation::IdentityMismatch => "identity_mismatch",
            Violation::Timeout(_) => "timeout",
        }
    }

    /// The reason code sent to the offending peer.
    pub fn reason(&self) -> Reason {
        match self {
            Violation::RateLimited(_) => Reason::RateLimited,
            _ => Reason::ProtocolViolation,
        }
    }
}

/// A gateway error, attributed to a side.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// A peer broke the protocol or a policy.
    #[error("{0:?} violation: {1}")]
    Violation(Side, Violation),
    /// The QUIC connection failed or closed.
    #[error("{0:?} connection: {1}")]
    Connection(Side, #[source] quinn::ConnectionError),
    /// A stream read failed.
    #[error("{0:?} stream read: {1}")]
    Read(Side, #[source] quinn::ReadError),
    /// A stream write failed.
    #[error("{0:?} stream write: {1}")]
    Write(Side, #[source] quinn::WriteError),
    /// The peer closed its stream.
    #[error("{0:?} closed the stream")]
    Closed(Side),
    /// The agent had no free slot for a new browser (another gateway placed a session on it
    /// first).
    #[error("the agent has no free browser slot")]
    AgentFull,
    /// Something in the gateway itself.
    #[error("internal: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The side that caused the error.
    pub fn side(&self) -> Side {
        match self {
            GatewayError::Violation(s, _)
            | GatewayError::Connection(s, _)
            | GatewayError::Read(s, _)
            | GatewayError::Write(s, _)
            | GatewayError::Closed(s) => *s,
            GatewayError::AgentFull => Side::Agent,
            GatewayError::Internal(_) => Side::Internal,
        }
    }
}
