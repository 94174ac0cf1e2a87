//! Typed writes with the gateway's errors; everything else about streams is
//! `tsuitate-transport`'s.

use std::time::Duration;

use quinn::SendStream;
use tsuitate_protocol::Message;
use tsuitate_transport::WriteTimeoutError;

use crate::error::{GatewayError, Side};

/// Encode and write one message.
pub(crate) async fn write_msg<M: Message>(
    send: &mut SendStream,
    msg: &M,
    side: Side,
) -> Result<(), GatewayError> {
    tsuitate_transport::write(send, msg)
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
    match tsuitate_transport::write_timeout(send, msg, limit).await {
        Ok(()) => Ok(()),
        Err(WriteTimeoutError::Write(e)) => Err(GatewayError::Write(side, e)),
        Err(WriteTimeoutError::TimedOut) => Err(GatewayError::Internal("write timed out".into())),
    }
}
