//! Typed messages from a QUIC receive stream, with a time limit (the transport's
//! `MessageReader`).

use std::time::Duration;

use quinn::RecvStream;
use tsuitate_protocol::{Limits, Message};
use tsuitate_transport::MessageReader;

use crate::BenchError;

/// Reads messages of type `M` from one stream.
pub struct MessageStream<M>(MessageReader<M>);

impl<M: Message + std::fmt::Debug> MessageStream<M> {
    /// Wrap `recv`.
    pub fn new(recv: RecvStream) -> Self {
        MessageStream(MessageReader::new(recv, Limits::default()))
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.0.bytes_received()
    }

    /// The next message within `limit`. Malformed input, the end of the stream and the
    /// timeout are errors.
    pub async fn next(&mut self, limit: Duration) -> Result<M, BenchError> {
        match tokio::time::timeout(limit, self.0.read()).await {
            Ok(Ok(Some(m))) => Ok(m),
            Ok(Ok(None)) => Err(BenchError::new("stream ended")),
            Ok(Err(e)) => Err(BenchError::new(format!("read: {e}"))),
            Err(_) => Err(BenchError::new(format!(
                "no message within {limit:?} ({} bytes received so far)",
                self.bytes()
            ))),
        }
    }
}
