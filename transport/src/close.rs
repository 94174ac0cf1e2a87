//! Closing a connection with a protocol reason, and reading the reason back.
//!
//! docs/protocol.md §1: the QUIC application error code of a close is the reason's wire value
//! and the close's reason phrase is the reason's name.

use std::time::Duration;

use quinn::{Connection, ConnectionError, SendStream, VarInt};
use tsuitate_protocol::{Message, Reason};

use crate::stream::write_timeout;

/// Close `conn` with `reason`.
pub fn close(conn: &Connection, reason: Reason) {
    conn.close(close_code(reason), reason.name().as_bytes());
}

/// The QUIC application error code that carries `reason` (for `Endpoint::close`).
pub fn close_code(reason: Reason) -> VarInt {
    VarInt::from_u32(u32::from(reason.to_u16()))
}

/// The reason a peer closed a connection with, if it closed it with one of ours.
pub fn close_reason(err: &ConnectionError) -> Option<Reason> {
    match err {
        ConnectionError::ApplicationClosed(c) => u16::try_from(c.error_code.into_inner())
            .ok()
            .and_then(Reason::from_u16),
        _ => None,
    }
}

/// Send final messages (each bounded to a second), finish the stream, wait briefly until the
/// peer has them, then close the connection with `reason`.
pub async fn last_words<M: Message>(
    send: &mut SendStream,
    conn: &Connection,
    msgs: &[M],
    reason: Reason,
) {
    let limit = Duration::from_secs(1);
    for m in msgs {
        let _ = write_timeout(send, m, limit).await;
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(limit, send.stopped()).await;
    close(conn, reason);
}
