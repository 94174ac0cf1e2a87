//! Stream helpers: a reader task per receive stream that turns bytes into typed messages, and
//! typed writes.

use std::time::Duration;

use quinn::{RecvStream, SendStream};
use tokio::sync::mpsc;
use tsuitate_protocol::{Limits, Message, MessageBuffer, WireError};

use crate::error::{GatewayError, Side};

/// How a receive stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The peer finished the stream.
    Finished,
    /// The bytes were not a valid message (docs/protocol.md §2: close).
    Wire(WireError),
    /// The stream or connection failed.
    Io(String),
}

/// One item from a reader task.
pub(crate) type ReadItem<M> = Result<M, ReadEnd>;

/// Largest chunk read at once.
const CHUNK: usize = 256 * 1024;

/// Spawn a task that decodes messages of type `M` from `recv` into a bounded channel of
/// `depth` messages. When the channel is full the task waits, which stops reading and lets
/// QUIC flow control push back on the peer. The task ends after the first error.
pub(crate) fn spawn_reader<M>(
    mut recv: RecvStream,
    limits: Limits,
    depth: usize,
) -> mpsc::Receiver<ReadItem<M>>
where
    M: Message + Send + 'static,
{
    let (tx, rx) = mpsc::channel(depth);
    tokio::spawn(async move {
        let mut buf = MessageBuffer::<M>::new(limits);
        loop {
            loop {
                match buf.next_message() {
                    Ok(Some(m)) => {
                        if tx.send(Ok(m)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(ReadEnd::Wire(e))).await;
                        return;
                    }
                }
            }
            let end = match recv.read_chunk(CHUNK, true).await {
                Ok(Some(chunk)) => {
                    buf.push(&chunk.bytes);
                    continue;
                }
                Ok(None) if buf.pending() == 0 => ReadEnd::Finished,
                Ok(None) => ReadEnd::Wire(WireError::Truncated("stream ended mid-message")),
                Err(e) => ReadEnd::Io(e.to_string()),
            };
            let _ = tx.send(Err(end)).await;
            return;
        }
    });
    rx
}

/// Encode and write one message.
pub(crate) async fn write_msg<M: Message>(
    send: &mut SendStream,
    msg: &M,
    side: Side,
) -> Result<(), GatewayError> {
    send.write_all(&msg.to_bytes())
        .await
        .map_err(|e| GatewayError::Write(side, e))
}

/// Write one message, giving up after `limit`.
pub(crate) async fn write_msg_timeout<M: Message>(
    send: &mut SendStream,
    msg: &M,
    side: Side,
    limit: Duration,
) -> Result<(), GatewayError> {
    match tokio::time::timeout(limit, write_msg(send, msg, side)).await {
        Ok(r) => r,
        Err(_) => Err(GatewayError::Internal("write timed out".into())),
    }
}

/// Send a final message, finish the stream, wait (briefly) until the peer has it, then close
/// the connection with `reason`.
pub(crate) async fn last_words<M: Message>(
    send: &mut SendStream,
    conn: &quinn::Connection,
    msgs: &[M],
    reason: tsuitate_protocol::Reason,
) {
    let limit = Duration::from_secs(1);
    for m in msgs {
        let _ = write_msg_timeout(send, m, Side::Internal, limit).await;
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(limit, send.stopped()).await;
    close_with(conn, reason);
}

/// Close a connection with a reason code (the QUIC application error code is the reason's
/// wire value).
pub(crate) fn close_with(conn: &quinn::Connection, reason: tsuitate_protocol::Reason) {
    conn.close(
        quinn::VarInt::from_u32(u32::from(reason.to_u16())),
        reason.name().as_bytes(),
    );
}
