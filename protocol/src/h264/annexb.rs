//! Splitting an Annex-B byte stream into NAL units.

/// Iterator over the NAL units of an Annex-B buffer. Start codes (`00 00 01`, with any number
/// of leading zero bytes) separate units; trailing zero bytes of a unit are not part of it;
/// empty units are skipped. Bytes before the first start code are yielded as a unit too, so a
/// buffer without start codes is not silently accepted (the sanitizer rejects or drops it).
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    rest: &'a [u8],
}

/// The NAL units in `buf`.
pub fn nal_units(buf: &[u8]) -> NalUnits<'_> {
    NalUnits { rest: buf }
}

/// Position of the next `00 00 01` in `buf`.
fn find_start_code(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(&third) = buf.get(i + 2) {
        if third > 1 {
            // No `00 00 01` starts at i, i + 1 or i + 2.
            i += 3;
        } else if third == 1 && buf[i] == 0 && buf[i + 1] == 0 {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

fn trim_trailing_zeros(mut nal: &[u8]) -> &[u8] {
    while let [head @ .., 0] = nal {
        nal = head;
    }
    nal
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (unit, rest) = match find_start_code(self.rest) {
                Some(pos) => (&self.rest[..pos], &self.rest[pos + 3..]),
                None => (self.rest, &self.rest[self.rest.len()..]),
            };
            self.rest = rest;
            let unit = trim_trailing_zeros(unit);
            if !unit.is_empty() {
                return Some(unit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let buf = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let units: Vec<_> = nal_units(&buf).collect();
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]
        );
    }

    #[test]
    fn leading_garbage_is_a_unit() {
        let buf = [0x06, 5, 0, 0, 1, 0x65, 1];
        let units: Vec<_> = nal_units(&buf).collect();
        assert_eq!(units, vec![&[0x06, 5][..], &[0x65, 1][..]]);
    }

    #[test]
    fn start_codes_are_found_where_they_are() {
        let mut random = super::super::xorshift(0x2545_f491_4f6c_dd1d);
        for n in 0..20_000usize {
            let seed = random();
            let buf: Vec<u8> = (0..n % 40)
                .map(|k| ((seed >> (k % 21 * 3)) % 4) as u8)
                .collect();
            assert_eq!(
                find_start_code(&buf),
                buf.windows(3).position(|w| w == [0, 0, 1]),
                "{buf:?}"
            );
        }
    }

    #[test]
    fn empty_units_are_skipped() {
        let buf = [0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1];
        assert_eq!(nal_units(&buf).count(), 0);
    }
}
