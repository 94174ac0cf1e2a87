//! Typed message streams over quinn: bytes in, protocol messages out (docs/protocol.md §2).

use std::time::Duration;

use quinn::{RecvStream, SendStream};
use tokio::sync::mpsc;
use tsuitate_protocol::{Limits, Message, MessageBuffer, WireError};

/// Largest chunk read at once.
const CHUNK: usize = 256 * 1024;

/// Why a stream gave no further message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The bytes were not a valid message, or the stream ended inside one
    /// (docs/protocol.md §2: the receiver closes).
    #[error("{0}")]
    Wire(WireError),
    /// The stream or its connection failed.
    #[error("stream: {0}")]
    Io(String),
}

/// How a reader task's stream ended ([`spawn_reader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// The peer finished the stream on a message boundary.
    Finished,
    /// The bytes were not a valid message.
    Wire(WireError),
    /// The stream or connection failed.
    Io(String),
}

impl From<ReadError> for ReadEnd {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Wire(w) => ReadEnd::Wire(w),
            ReadError::Io(s) => ReadEnd::Io(s),
        }
    }
}

/// Decodes messages of type `M` from one receive stream.
#[derive(Debug)]
pub struct MessageReader<M> {
    recv: RecvStream,
    buf: MessageBuffer<M>,
}

impl<M: Message> MessageReader<M> {
    /// A reader of `recv` that bounds every message by `limits`.
    pub fn new(recv: RecvStream, limits: Limits) -> Self {
        MessageReader {
            recv,
            buf: MessageBuffer::new(limits),
        }
    }

    /// The next message; `Ok(None)` when the peer finished the stream on a message boundary.
    ///
    /// Cancel-safe: bytes already read stay buffered for the next call.
    pub async fn read(&mut self) -> Result<Option<M>, ReadError> {
        loop {
            if let Some(m) = self.buf.next_message().map_err(ReadError::Wire)? {
                return Ok(Some(m));
            }
            match self.recv.read_chunk(CHUNK, true).await {
                Ok(Some(chunk)) => self.buf.push(&chunk.bytes),
                Ok(None) if self.buf.pending() == 0 => return Ok(None),
                // docs/protocol.md §2: a stream that ends inside a message is malformed.
                Ok(None) => {
                    return Err(ReadError::Wire(WireError::Truncated(
                        "stream ended mid-message",
                    )))
                }
                Err(e) => return Err(ReadError::Io(e.to_string())),
            }
        }
    }
}

/// One item from a reader task.
pub type ReadItem<M> = Result<M, ReadEnd>;

/// Spawn a task that decodes messages of type `M` from `recv` into a bounded channel of
/// `depth` messages. When the channel is full the task waits, which stops reading and lets
/// QUIC flow control push back on the peer. The last item is always an `Err(ReadEnd)`.
pub fn spawn_reader<M>(
    recv: RecvStream,
    limits: Limits,
    depth: usize,
) -> mpsc::Receiver<ReadItem<M>>
where
    M: Message + Send + 'static,
{
    let (tx, rx) = mpsc::channel(depth);
    let mut reader = MessageReader::<M>::new(recv, limits);
    tokio::spawn(async move {
        loop {
            let item = match reader.read().await {
                Ok(Some(m)) => Ok(m),
                Ok(None) => Err(ReadEnd::Finished),
                Err(e) => Err(ReadEnd::from(e)),
            };
            let last = item.is_err();
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    rx
}

/// Encode and write one message.
pub async fn write<M: Message>(send: &mut SendStream, msg: &M) -> Result<(), quinn::WriteError> {
    send.write_all(&msg.to_bytes()).await
}

/// Why a bounded write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteTimeoutError {
    /// The stream failed.
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    /// The peer did not take the bytes in time.
    #[error("write timed out")]
    TimedOut,
}

/// Write one message, giving up after `limit` (a peer that never reads cannot hold us).
pub async fn write_timeout<M: Message>(
    send: &mut SendStream,
    msg: &M,
    limit: Duration,
) -> Result<(), WriteTimeoutError> {
    match tokio::time::timeout(limit, write(send, msg)).await {
        Ok(r) => r.map_err(WriteTimeoutError::Write),
        Err(_) => Err(WriteTimeoutError::TimedOut),
    }
}
