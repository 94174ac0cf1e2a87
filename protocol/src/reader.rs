//! A receive buffer that turns stream chunks into messages (docs/protocol.md §2).

use std::marker::PhantomData;

use crate::codec::Message;
use crate::error::WireError;
use crate::limits::Limits;

/// Accumulates bytes from a stream and yields whole messages of type `M`. Holds at most one
/// partial message plus the last chunk, because every length is bounded by [`Limits`] before
/// the payload is awaited. Consumed bytes are skipped with a cursor and dropped once per
/// [`MessageBuffer::push`], so a chunk of many tiny messages costs linear time, not quadratic.
#[derive(Debug)]
pub struct MessageBuffer<M> {
    buf: Vec<u8>,
    /// Start of the bytes not yet decoded.
    pos: usize,
    limits: Limits,
    _kind: PhantomData<fn() -> M>,
}

impl<M: Message> MessageBuffer<M> {
    /// An empty buffer.
    pub fn new(limits: Limits) -> Self {
        MessageBuffer {
            buf: Vec::new(),
            pos: 0,
            limits,
            _kind: PhantomData,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the error that makes
    /// the stream unusable.
    pub fn next_message(&mut self) -> Result<Option<M>, WireError> {
        match M::decode(&self.buf[self.pos..], &self.limits)? {
            Some((msg, used)) => {
                self.pos += used;
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Bytes held that do not yet form a message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ViewerToGateway;

    #[test]
    fn many_small_messages_in_one_chunk_decode_in_order() {
        let mut wire = Vec::new();
        for _ in 0..50_000 {
            ViewerToGateway::KeyframeRequest.encode(&mut wire);
        }
        ViewerToGateway::Hello { version: 1 }.encode(&mut wire);
        let mut buf = MessageBuffer::<ViewerToGateway>::new(Limits::default());
        buf.push(&wire[..wire.len() - 3]);
        let mut n = 0;
        while let Ok(Some(m)) = buf.next_message() {
            assert_eq!(m, ViewerToGateway::KeyframeRequest);
            n += 1;
        }
        assert_eq!(n, 50_000);
        assert_eq!(buf.pending(), 4);
        buf.push(&wire[wire.len() - 3..]);
        assert_eq!(
            buf.next_message(),
            Ok(Some(ViewerToGateway::Hello { version: 1 }))
        );
        assert_eq!(buf.pending(), 0);
    }
}
