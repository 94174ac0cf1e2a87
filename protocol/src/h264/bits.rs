//! A bit reader over an RBSP (emulation-prevention bytes removed), with exp-Golomb codes, and
//! the bit writer the gateway rebuilds parameter sets with.

/// Errors while reading bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBits;

/// Remove emulation-prevention bytes (`00 00 03` → `00 00`).
pub fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len() + PADDING);
    let mut from = 0;
    let mut i = 0;
    while let Some(&third) = nal.get(i + 2) {
        if third > 3 {
            // No `00 00 03` starts at i, i + 1 or i + 2.
            i += 3;
        } else if third == 3 && nal[i] == 0 && nal[i + 1] == 0 {
            out.extend_from_slice(&nal[from..i + 2]);
            from = i + 3;
            i += 3;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&nal[from..]);
    out
}

/// Reads bits MSB-first from `data`, of which the first `end` bits are the RBSP (the rest,
/// if any, is zero padding that lets every peek be one 8-byte load).
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
    end: usize,
    /// Position of the RBSP stop bit (the last 1 bit of the data), if any.
    stop: Option<usize>,
}

/// The position of the last 1 bit of `data`.
fn stop_bit(data: &[u8]) -> Option<usize> {
    data.iter()
        .rposition(|b| *b != 0)
        .map(|i| i * 8 + 7 - data[i].trailing_zeros() as usize)
}

/// Zero bytes [`BitReader::padded`] expects after the data.
pub const PADDING: usize = 8;

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            bit: 0,
            end: data.len() * 8,
            stop: stop_bit(data),
        }
    }

    /// A reader of `data` whose last [`PADDING`] bytes are zero padding, not data.
    pub fn padded(data: &'a [u8]) -> Self {
        let end = data.len().saturating_sub(PADDING) * 8;
        BitReader {
            data,
            bit: 0,
            end,
            stop: stop_bit(&data[..end / 8]),
        }
    }

    /// The RBSP bytes (without padding).
    fn rbsp(&self) -> &'a [u8] {
        &self.data[..self.end / 8]
    }

    pub fn bit(&mut self) -> Result<u32, OutOfBits> {
        if self.bit >= self.end {
            return Err(OutOfBits);
        }
        let byte = self.data[self.bit / 8];
        let v = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(u32::from(v))
    }

    /// The next 32 bits without moving (zeros past the end).
    #[inline]
    fn peek32(&self) -> u32 {
        let byte = self.bit / 8;
        let v = match self.data.get(byte..byte + 8) {
            Some(b) => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => {
                let mut v = 0u64;
                for i in 0..8 {
                    v = (v << 8) | u64::from(self.data.get(byte + i).copied().unwrap_or(0));
                }
                v
            }
        };
        ((v << (self.bit % 8)) >> 32) as u32
    }

    /// Move `n` bits on; an error (not moving) when fewer remain.
    #[inline]
    fn skip(&mut self, n: usize) -> Result<(), OutOfBits> {
        if self.bit + n > self.end {
            return Err(OutOfBits);
        }
        self.bit += n;
        Ok(())
    }

    pub fn bits(&mut self, n: u32) -> Result<u32, OutOfBits> {
        if n == 0 {
            return Ok(0);
        }
        if n > 32 {
            return Err(OutOfBits);
        }
        let v = self.peek32() >> (32 - n);
        self.skip(n as usize)?;
        Ok(v)
    }

    pub fn flag(&mut self) -> Result<bool, OutOfBits> {
        Ok(self.bit()? == 1)
    }

    /// Unsigned exp-Golomb, at most 32 bits of value; longer codes are treated as malformed.
    pub fn ue(&mut self) -> Result<u32, OutOfBits> {
        // Fast path: the whole code within the next 32 bits.
        let peek = self.peek32();
        let z = peek.leading_zeros();
        if z < 16 {
            let len = 2 * z + 1;
            let v = (peek >> (32 - len)) - 1;
            self.skip(len as usize)?;
            return Ok(v);
        }
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(OutOfBits);
            }
        }
        let rest = self.bits(zeros)?;
        // (1 << zeros) - 1 + rest fits in u32 for zeros <= 31 only when checked.
        ((1u64 << zeros) - 1 + u64::from(rest))
            .try_into()
            .map_err(|_| OutOfBits)
    }

    /// Signed exp-Golomb.
    pub fn se(&mut self) -> Result<i64, OutOfBits> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    /// The data (with its padding), the position, the RBSP's end and its stop bit: for a
    /// reader of its own that holds them by value (the slice-data walk).
    pub(super) fn state(&self) -> (&'a [u8], usize, usize, Option<usize>) {
        (self.data, self.bit, self.end, self.stop)
    }

    /// Move to bit `pos` (where a reader made from [`BitReader::state`] ended).
    pub(super) fn seek(&mut self, pos: usize) {
        self.bit = pos.min(self.end);
    }

    /// Whether syntax data follows before the RBSP trailing bits (H.264 §7.2
    /// `more_rbsp_data()`): false when only the stop bit and zero bits remain.
    #[inline]
    pub fn more_rbsp_data(&self) -> bool {
        // The last 1 bit in the data is the stop bit.
        self.stop.is_some_and(|stop| self.bit < stop)
    }

    /// Whether exactly `rbsp_trailing_bits()` remain: one 1 bit, zero bits to the byte end,
    /// and nothing after (no hidden bytes).
    pub fn at_trailing_bits(&self) -> bool {
        let data = self.rbsp();
        let byte = self.bit / 8;
        let Some(&b) = data.get(byte) else {
            return false;
        };
        let used = self.bit % 8;
        // The rest of this byte must be 1 followed by zeros.
        let rest = b << used;
        rest == 0x80 && byte + 1 == data.len()
    }
}

/// Writes bits MSB-first into an RBSP, then makes a NAL unit of it. Bits gather in a 64-bit
/// accumulator and go to the byte buffer four bytes at a time (the agent's H.264 writer puts
/// hundreds of thousands of bits through it per second).
#[derive(Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Pending bits, right-aligned: the low `pending` bits of `acc`.
    acc: u64,
    pending: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// One bit.
    #[inline]
    pub fn bit(&mut self, b: bool) {
        self.bits(u32::from(b), 1);
    }

    /// The low `n` bits of `v` (n ≤ 32).
    #[inline]
    pub fn bits(&mut self, v: u32, n: u32) {
        if n == 0 {
            return;
        }
        let n = n.min(32);
        let v = u64::from(v) & ((1u64 << n) - 1);
        self.acc = (self.acc << n) | v;
        self.pending += n;
        if self.pending >= 32 {
            let out = (self.acc >> (self.pending - 32)) as u32;
            self.bytes.extend_from_slice(&out.to_be_bytes());
            self.pending -= 32;
        }
    }

    /// Append everything `other` holds (whole bytes, then its pending bits).
    pub fn append(&mut self, other: &BitWriter) {
        for b in &other.bytes {
            self.bits(u32::from(*b), 8);
        }
        if other.pending > 0 {
            let v = other.acc & ((1u64 << other.pending) - 1);
            self.bits(v as u32, other.pending);
        }
    }

    /// Bits written so far.
    pub fn len_bits(&self) -> usize {
        self.bytes.len() * 8 + self.pending as usize
    }

    /// Zero bits up to the next byte boundary.
    pub fn align_zero(&mut self) {
        let r = self.pending % 8;
        if r != 0 {
            self.bits(0, 8 - r);
        }
    }

    /// Unsigned exp-Golomb.
    pub fn ue(&mut self, v: u32) {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        // len - 1 zeros, then x in len bits: 2 * len - 1 ≤ 65 bits, in two parts.
        self.bits(0, len - 1);
        if len > 32 {
            self.bits((x >> 32) as u32, len - 32);
            self.bits(x as u32, 32);
        } else {
            self.bits(x as u32, len);
        }
    }

    /// Signed exp-Golomb.
    pub fn se(&mut self, v: i64) {
        let k = if v > 0 { 2 * v - 1 } else { -2 * v };
        self.ue(u32::try_from(k).unwrap_or(u32::MAX));
    }

    /// The RBSP bytes so far, padded with zero bits to a whole byte.
    fn flush(&mut self) {
        self.align_zero();
        while self.pending >= 8 {
            self.bytes.push((self.acc >> (self.pending - 8)) as u8);
            self.pending -= 8;
        }
    }

    /// `rbsp_trailing_bits()`, the NAL header byte in front and emulation prevention: the
    /// finished NAL unit.
    pub fn into_nal(mut self, header: u8) -> Vec<u8> {
        self.bit(true);
        self.flush();
        let mut out = Vec::with_capacity(self.bytes.len() + 8);
        out.push(header);
        let mut zeros = 0usize;
        for b in self.bytes {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_writer_writes_reads_back() {
        let mut w = BitWriter::new();
        let mut expect = Vec::new();
        for i in 0u32..3000 {
            let v = i.wrapping_mul(2_654_435_761) >> (i % 32);
            match i % 4 {
                0 => w.ue(v),
                1 => w.se(i64::from(v as i32 >> 1)),
                2 => w.bits(v, i % 33),
                _ => w.bit(v & 1 == 1),
            }
            expect.push(v);
        }
        w.ue(u32::MAX >> 1);
        let nal = w.into_nal(0x61);
        let rbsp = unescape(&nal[1..]);
        let mut r = BitReader::new(&rbsp);
        for (i, v) in (0u32..3000).zip(expect) {
            match i % 4 {
                0 => assert_eq!(r.ue(), Ok(v)),
                1 => assert_eq!(r.se(), Ok(i64::from(v as i32 >> 1))),
                2 => {
                    let n = i % 33;
                    let mask = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
                    assert_eq!(r.bits(n), Ok(v & mask), "bits {n} at {i}");
                }
                _ => assert_eq!(r.bit(), Ok(v & 1)),
            }
        }
        assert_eq!(r.ue(), Ok(u32::MAX >> 1));
        assert!(r.at_trailing_bits());
    }

    #[test]
    fn appending_a_writer_equals_writing_into_one() {
        let (mut one, mut a, mut b) = (BitWriter::new(), BitWriter::new(), BitWriter::new());
        for i in 0u32..200 {
            one.ue(i * 7);
            a.ue(i * 7);
        }
        for i in 0u32..77 {
            one.bits(i, i % 13);
            b.bits(i, i % 13);
        }
        a.append(&b);
        assert_eq!(a.len_bits(), one.len_bits());
        assert_eq!(a.into_nal(0x61), one.into_nal(0x61));
    }

    #[test]
    fn exp_golomb_values() {
        // 1 | 010 | 011 | 00100 | 00101 -> 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        let v: Vec<u32> = (0..5).map(|_| r.ue().unwrap_or(u32::MAX)).collect();
        assert_eq!(v, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn signed_exp_golomb() {
        // ue 1 -> +1, ue 2 -> -1
        let data = [0b0100_1100];
        let mut r = BitReader::new(&data);
        assert_eq!(r.se(), Ok(1));
        assert_eq!(r.se(), Ok(-1));
    }

    /// `unescape` by its definition, a byte at a time.
    fn unescape_slowly(nal: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0usize;
        for &b in nal {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    #[test]
    fn unescape_removes_what_the_definition_removes() {
        let mut random = super::super::xorshift(0x9e37_79b9_7f4a_7c15);
        for n in 0..20_000usize {
            let seed = random();
            // Bytes 0..=4 only, so that zeros and threes meet often.
            let nal: Vec<u8> = (0..n % 40)
                .map(|k| ((seed >> (k % 21 * 3)) % 5) as u8)
                .collect();
            assert_eq!(unescape(&nal), unescape_slowly(&nal), "{nal:?}");
        }
    }

    #[test]
    fn emulation_prevention_removed() {
        assert_eq!(
            unescape(&[0, 0, 3, 1, 0, 0, 3, 0, 5]),
            vec![0, 0, 1, 0, 0, 0, 5]
        );
    }

    #[test]
    fn written_codes_read_back_and_trailing_bits_are_exact() {
        let mut w = BitWriter::new();
        for v in [0u32, 1, 2, 7, 255, 65_535, u32::MAX - 1] {
            w.ue(v);
        }
        for v in [0i64, 1, -1, 26, -26, 12_345] {
            w.se(v);
        }
        w.bits(0b101, 3);
        let nal = w.into_nal(0x67);
        let rbsp = unescape(&nal[1..]);
        let mut r = BitReader::new(&rbsp);
        for v in [0u32, 1, 2, 7, 255, 65_535, u32::MAX - 1] {
            assert_eq!(r.ue(), Ok(v));
        }
        for v in [0i64, 1, -1, 26, -26, 12_345] {
            assert_eq!(r.se(), Ok(v));
        }
        assert_eq!(r.bits(3), Ok(0b101));
        assert!(!r.more_rbsp_data());
        assert!(r.at_trailing_bits());
        // A byte after the trailing bits is not "exactly trailing bits".
        assert!(!BitReader::new(&[0x80, 0x00]).at_trailing_bits());
        assert!(!BitReader::new(&[0x00, 0x80]).at_trailing_bits());
        assert!(BitReader::new(&[0x80]).at_trailing_bits());
    }

    #[test]
    fn emulation_prevention_is_added_where_needed() {
        let mut w = BitWriter::new();
        w.bits(0, 16);
        w.bits(1, 8);
        let nal = w.into_nal(0x68);
        assert_eq!(nal, vec![0x68, 0, 0, 3, 1, 0x80]);
        assert_eq!(unescape(&nal[1..]), vec![0, 0, 1, 0x80]);
    }

    #[test]
    fn runs_out_cleanly() {
        let mut r = BitReader::new(&[0, 0, 0, 0]);
        assert_eq!(r.ue(), Err(OutOfBits));
    }
}
