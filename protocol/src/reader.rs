//! A receive buffer that turns stream chunks into messages (docs/protocol.md §2).

use std::marker::PhantomData;

use crate::codec::Message;
use crate::error::WireError;
use crate::limits::Limits;

/// Accumulates bytes from a stream and yields whole messages of type `M`. Holds at most one
/// partial message plus the last chunk, because every length is bounded by [`Limits`] before
/// the payload is awaited.
#[derive(Debug)]
pub struct MessageBuffer<M> {
    buf: Vec<u8>,
    limits: Limits,
    _kind: PhantomData<fn() -> M>,
}

impl<M: Message> MessageBuffer<M> {
    /// An empty buffer.
    pub fn new(limits: Limits) -> Self {
        MessageBuffer {
            buf: Vec::new(),
            limits,
            _kind: PhantomData,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the error that makes
    /// the stream unusable.
    pub fn next_message(&mut self) -> Result<Option<M>, WireError> {
        match M::decode(&self.buf, &self.limits)? {
            Some((msg, used)) => {
                self.buf.drain(..used);
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Bytes held that do not yet form a message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}
