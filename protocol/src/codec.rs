//! Framing and field codecs (docs/protocol.md §2).
//!
//! A message on a stream is `kind: u8, length: u32 (big endian), payload: [u8; length]`.
//! The decoder reads the kind and the length first, rejects an unknown kind or an oversize
//! length before waiting for (or allocating) the payload, and then parses the payload, which
//! must be consumed exactly.

use crate::error::WireError;
use crate::limits::Limits;

/// Bytes of the frame header: kind (1) + length (4).
pub const FRAME_HEADER_BYTES: usize = 5;

/// A message type carried in one direction of one stream.
pub trait Message: Sized {
    /// Whether `kind` belongs to this direction, and whether it is a video kind (which gets the
    /// larger payload bound). `None` means the kind is not allowed here.
    fn kind_info(kind: u8) -> Option<bool>;
    /// The kind byte of this message.
    fn kind(&self) -> u8;
    /// Append the payload (without the frame header).
    fn encode_payload(&self, out: &mut Vec<u8>);
    /// Parse a payload of a known kind; the reader must be consumed exactly.
    fn decode_payload(kind: u8, r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError>;

    /// Append the framed message to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(self.kind());
        out.extend_from_slice(&[0; 4]);
        self.encode_payload(out);
        let len = out.len() - start - FRAME_HEADER_BYTES;
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        out[start + 1..start + FRAME_HEADER_BYTES].copy_from_slice(&len.to_be_bytes());
    }

    /// The framed message as a new buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decode one message from the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed. `Ok(Some((msg, used)))`: a message and the bytes it
    /// took. `Err`: the stream is malformed and must be closed (docs/protocol.md §2).
    fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Self, usize)>, WireError> {
        let Some(&kind) = buf.first() else {
            return Ok(None);
        };
        // docs/protocol.md §2: an unknown kind is rejected as soon as its byte arrives.
        let video = Self::kind_info(kind).ok_or(WireError::UnexpectedKind(kind))?;
        let Some(len_bytes) = buf.get(1..FRAME_HEADER_BYTES) else {
            return Ok(None);
        };
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(len_bytes);
        let len = u32::from_be_bytes(len4) as usize;
        // docs/protocol.md §2: the length is bounded before any payload is awaited.
        let max = limits.max_payload(video);
        if len > max {
            return Err(WireError::Oversize { len, max });
        }
        let end = FRAME_HEADER_BYTES
            .checked_add(len)
            .ok_or(WireError::Oversize { len, max })?;
        let Some(payload) = buf.get(FRAME_HEADER_BYTES..end) else {
            return Ok(None);
        };
        let mut r = Reader::new(payload);
        let msg = Self::decode_payload(kind, &mut r, limits)?;
        r.finish()?;
        Ok(Some((msg, end)))
    }
}

/// How many bytes the frame at the front of `buf` needs in total, once its header is in.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let len = buf.get(1..FRAME_HEADER_BYTES)?;
    let mut len4 = [0u8; 4];
    len4.copy_from_slice(len);
    FRAME_HEADER_BYTES.checked_add(u32::from_be_bytes(len4) as usize)
}

/// A bounds-checked reader over one payload. Every read that runs past the end is a
/// [`WireError::Truncated`] naming the field.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Take `n` bytes.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated(field))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError::Truncated(field))?;
        self.pos = end;
        Ok(out)
    }

    /// Take every remaining byte.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N, field)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }
    /// Big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    /// Big-endian i16.
    pub fn i16(&mut self, field: &'static str) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }
    /// Big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    /// Big-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A boolean encoded as 0 or 1; anything else is invalid.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, WireError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(WireError::InvalidValue {
                field,
                value: v.into(),
            }),
        }
    }

    /// A string with a u8 byte length, at most `max_bytes` long.
    pub fn str(&mut self, field: &'static str, max_bytes: usize) -> Result<&'a str, WireError> {
        let len = usize::from(self.u8(field)?);
        if len > max_bytes {
            return Err(WireError::TooLong {
                field,
                len,
                max: max_bytes,
            });
        }
        let raw = self.bytes(len, field)?;
        std::str::from_utf8(raw).map_err(|_| WireError::InvalidUtf8(field))
    }

    /// Frame dimensions, checked against the limits.
    pub fn dimensions(&mut self, limits: &Limits) -> Result<(u16, u16), WireError> {
        let width = self.u16("width")?;
        let height = self.u16("height")?;
        if !limits.dimensions_ok(width, height) {
            return Err(WireError::Dimensions { width, height });
        }
        Ok((width, height))
    }

    /// Fail unless every byte was read.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }
}

/// Append a u8-length-prefixed string. Callers guarantee `s.len() <= 255`; longer strings are
/// cut at a character boundary so the encoder itself never produces an invalid frame.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&s.as_bytes()[..end]);
}
