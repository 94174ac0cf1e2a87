//! Exit codes of the viewer (docs/viewer.md "Exit codes") and stable names for reports.

use crate::client::ClientError;

/// Process exit codes. Stable: scripts and monitoring depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The script completed (headless) or the user quit normally (window).
    Ok = 0,
    /// An unexpected internal error.
    Internal = 1,
    /// Bad arguments, configuration or script (nothing was sent).
    Usage = 2,
    /// The gateway could not be reached.
    Unreachable = 3,
    /// Wrong user name or password.
    Denied = 4,
    /// Locked out after too many failed logins.
    LockedOut = 5,
    /// No browser is free.
    NoCapacity = 6,
    /// The session ended (Bye or connection lost) before the script completed.
    SessionEnded = 7,
    /// A script step failed (`expect-change` timed out, a snapshot could not be written).
    ScriptFailed = 8,
    /// The gateway broke the protocol (or speaks another version).
    Protocol = 9,
    /// The gateway's certificate was not trusted.
    Certificate = 10,
}

impl ExitCode {
    /// The numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The exit code for a client error.
pub fn exit_code_for(e: &ClientError) -> ExitCode {
    match e {
        ClientError::CaFile { .. } => ExitCode::Usage,
        ClientError::Unreachable { .. } => ExitCode::Unreachable,
        ClientError::Certificate(_) => ExitCode::Certificate,
        ClientError::Denied => ExitCode::Denied,
        ClientError::LockedOut { .. } => ExitCode::LockedOut,
        ClientError::NoCapacity => ExitCode::NoCapacity,
        ClientError::Ended(tsuitate_protocol::Reason::VersionMismatch) => ExitCode::Protocol,
        ClientError::Ended(_) | ClientError::ConnectionLost(_) => ExitCode::SessionEnded,
        ClientError::Protocol(_) => ExitCode::Protocol,
    }
}

/// A stable snake-case name for an error (the report's `end_reason`).
pub fn error_name(e: &ClientError) -> &'static str {
    match e {
        ClientError::CaFile { .. } => "ca_file",
        ClientError::Unreachable { .. } => "unreachable",
        ClientError::Certificate(_) => "certificate_rejected",
        ClientError::Denied => "denied",
        ClientError::LockedOut { .. } => "locked_out",
        ClientError::NoCapacity => "no_capacity",
        ClientError::Ended(r) => r.name(),
        ClientError::Protocol(_) => "protocol_error",
        ClientError::ConnectionLost(_) => "connection_lost",
    }
}
