//! Typed messages from a QUIC receive stream (the protocol's `MessageBuffer` over quinn).

use std::time::Duration;

use quinn::RecvStream;
use tsuitate_protocol::{Limits, Message, MessageBuffer};

use crate::BenchError;

/// Reads messages of type `M` from one stream.
pub struct MessageStream<M> {
    recv: RecvStream,
    buf: MessageBuffer<M>,
    /// Bytes received so far.
    pub bytes: u64,
}

impl<M: Message + std::fmt::Debug> MessageStream<M> {
    /// Wrap `recv`.
    pub fn new(recv: RecvStream) -> Self {
        MessageStream {
            recv,
            buf: MessageBuffer::new(Limits::default()),
            bytes: 0,
        }
    }

    /// The next message within `limit`. Malformed input, the end of the stream and the
    /// timeout are errors.
    pub async fn next(&mut self, limit: Duration) -> Result<M, BenchError> {
        match tokio::time::timeout(limit, self.next_inner()).await {
            Ok(r) => r,
            Err(_) => Err(BenchError::new(format!(
                "no message within {limit:?} ({} bytes received so far)",
                self.bytes
            ))),
        }
    }

    async fn next_inner(&mut self) -> Result<M, BenchError> {
        loop {
            match self.buf.next_message() {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => return Err(BenchError::new(format!("malformed message: {e}"))),
            }
            match self.recv.read_chunk(usize::MAX, true).await {
                Ok(Some(c)) => {
                    self.bytes += c.bytes.len() as u64;
                    self.buf.push(&c.bytes);
                }
                Ok(None) => return Err(BenchError::new("stream ended")),
                Err(e) => return Err(BenchError::new(format!("read: {e}"))),
            }
        }
    }
}
