//! A bit reader over an RBSP (emulation-prevention bytes removed), with exp-Golomb codes.

/// Errors while reading bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBits;

/// Remove emulation-prevention bytes (`00 00 03` → `00 00`).
pub fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
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

/// Reads bits MSB-first.
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, bit: 0 }
    }

    pub fn bit(&mut self) -> Result<u32, OutOfBits> {
        let byte = self.data.get(self.bit / 8).ok_or(OutOfBits)?;
        let v = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(u32::from(v))
    }

    pub fn bits(&mut self, n: u32) -> Result<u32, OutOfBits> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    pub fn flag(&mut self) -> Result<bool, OutOfBits> {
        Ok(self.bit()? == 1)
    }

    /// Unsigned exp-Golomb, at most 32 bits of value; longer codes are treated as malformed.
    pub fn ue(&mut self) -> Result<u32, OutOfBits> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn emulation_prevention_removed() {
        assert_eq!(
            unescape(&[0, 0, 3, 1, 0, 0, 3, 0, 5]),
            vec![0, 0, 1, 0, 0, 0, 5]
        );
    }

    #[test]
    fn runs_out_cleanly() {
        let mut r = BitReader::new(&[0, 0, 0, 0]);
        assert_eq!(r.ue(), Err(OutOfBits));
    }
}
