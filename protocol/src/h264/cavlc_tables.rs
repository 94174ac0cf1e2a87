//! CAVLC code tables of ITU-T H.264 §9.2 (Tables 9-4, 9-5, 9-7, 9-8, 9-9, 9-10), as constant
//! data: coeff_token, total_zeros, run_before and the coded_block_pattern mapping of me(v).
//!
//! These are the standard's tables, transcribed entry for entry. Every codeword is stored as its
//! value read MSB-first as an unsigned integer of `length` bits, written as a binary literal with
//! exactly `length` digits so that it reads like the bit string printed in the standard (the
//! standard's "0001 01" is `0b000101` with length 6). Entries follow the row order of the
//! standard's tables.
//!
//! Only the tables for ChromaArrayType 1 (4:2:0) chroma DC are included; the 4:2:2 chroma DC
//! tables (nC == -2 in Table 9-5, Table 9-9 (b)) are not.
//!
//! One copy serves both directions: the gateway's slice-data walk reads with them and the
//! agent's own H.264 writer (host-agent `writer`) writes with them.

/// Table 9-5, coeff_token for 0 <= nC < 2: (code, length, TotalCoeff, TrailingOnes).
pub const COEFF_TOKEN_NC0: [(u16, u8, u8, u8); 62] = [
    (0b1, 1, 0, 0),
    (0b000101, 6, 1, 0),
    (0b01, 2, 1, 1),
    (0b00000111, 8, 2, 0),
    (0b000100, 6, 2, 1),
    (0b001, 3, 2, 2),
    (0b000000111, 9, 3, 0),
    (0b00000110, 8, 3, 1),
    (0b0000101, 7, 3, 2),
    (0b00011, 5, 3, 3),
    (0b0000000111, 10, 4, 0),
    (0b000000110, 9, 4, 1),
    (0b00000101, 8, 4, 2),
    (0b000011, 6, 4, 3),
    (0b00000000111, 11, 5, 0),
    (0b0000000110, 10, 5, 1),
    (0b000000101, 9, 5, 2),
    (0b0000100, 7, 5, 3),
    (0b0000000001111, 13, 6, 0),
    (0b00000000110, 11, 6, 1),
    (0b0000000101, 10, 6, 2),
    (0b00000100, 8, 6, 3),
    (0b0000000001011, 13, 7, 0),
    (0b0000000001110, 13, 7, 1),
    (0b00000000101, 11, 7, 2),
    (0b000000100, 9, 7, 3),
    (0b0000000001000, 13, 8, 0),
    (0b0000000001010, 13, 8, 1),
    (0b0000000001101, 13, 8, 2),
    (0b0000000100, 10, 8, 3),
    (0b00000000001111, 14, 9, 0),
    (0b00000000001110, 14, 9, 1),
    (0b0000000001001, 13, 9, 2),
    (0b00000000100, 11, 9, 3),
    (0b00000000001011, 14, 10, 0),
    (0b00000000001010, 14, 10, 1),
    (0b00000000001101, 14, 10, 2),
    (0b0000000001100, 13, 10, 3),
    (0b000000000001111, 15, 11, 0),
    (0b000000000001110, 15, 11, 1),
    (0b00000000001001, 14, 11, 2),
    (0b00000000001100, 14, 11, 3),
    (0b000000000001011, 15, 12, 0),
    (0b000000000001010, 15, 12, 1),
    (0b000000000001101, 15, 12, 2),
    (0b00000000001000, 14, 12, 3),
    (0b0000000000001111, 16, 13, 0),
    (0b000000000000001, 15, 13, 1),
    (0b000000000001001, 15, 13, 2),
    (0b000000000001100, 15, 13, 3),
    (0b0000000000001011, 16, 14, 0),
    (0b0000000000001110, 16, 14, 1),
    (0b0000000000001101, 16, 14, 2),
    (0b000000000001000, 15, 14, 3),
    (0b0000000000000111, 16, 15, 0),
    (0b0000000000001010, 16, 15, 1),
    (0b0000000000001001, 16, 15, 2),
    (0b0000000000001100, 16, 15, 3),
    (0b0000000000000100, 16, 16, 0),
    (0b0000000000000110, 16, 16, 1),
    (0b0000000000000101, 16, 16, 2),
    (0b0000000000001000, 16, 16, 3),
];

/// Table 9-5, coeff_token for 2 <= nC < 4: (code, length, TotalCoeff, TrailingOnes).
pub const COEFF_TOKEN_NC2: [(u16, u8, u8, u8); 62] = [
    (0b11, 2, 0, 0),
    (0b001011, 6, 1, 0),
    (0b10, 2, 1, 1),
    (0b000111, 6, 2, 0),
    (0b00111, 5, 2, 1),
    (0b011, 3, 2, 2),
    (0b0000111, 7, 3, 0),
    (0b001010, 6, 3, 1),
    (0b001001, 6, 3, 2),
    (0b0101, 4, 3, 3),
    (0b00000111, 8, 4, 0),
    (0b000110, 6, 4, 1),
    (0b000101, 6, 4, 2),
    (0b0100, 4, 4, 3),
    (0b00000100, 8, 5, 0),
    (0b0000110, 7, 5, 1),
    (0b0000101, 7, 5, 2),
    (0b00110, 5, 5, 3),
    (0b000000111, 9, 6, 0),
    (0b00000110, 8, 6, 1),
    (0b00000101, 8, 6, 2),
    (0b001000, 6, 6, 3),
    (0b00000001111, 11, 7, 0),
    (0b000000110, 9, 7, 1),
    (0b000000101, 9, 7, 2),
    (0b000100, 6, 7, 3),
    (0b00000001011, 11, 8, 0),
    (0b00000001110, 11, 8, 1),
    (0b00000001101, 11, 8, 2),
    (0b0000100, 7, 8, 3),
    (0b000000001111, 12, 9, 0),
    (0b00000001010, 11, 9, 1),
    (0b00000001001, 11, 9, 2),
    (0b000000100, 9, 9, 3),
    (0b000000001011, 12, 10, 0),
    (0b000000001110, 12, 10, 1),
    (0b000000001101, 12, 10, 2),
    (0b00000001100, 11, 10, 3),
    (0b000000001000, 12, 11, 0),
    (0b000000001010, 12, 11, 1),
    (0b000000001001, 12, 11, 2),
    (0b00000001000, 11, 11, 3),
    (0b0000000001111, 13, 12, 0),
    (0b0000000001110, 13, 12, 1),
    (0b0000000001101, 13, 12, 2),
    (0b000000001100, 12, 12, 3),
    (0b0000000001011, 13, 13, 0),
    (0b0000000001010, 13, 13, 1),
    (0b0000000001001, 13, 13, 2),
    (0b0000000001100, 13, 13, 3),
    (0b0000000000111, 13, 14, 0),
    (0b00000000001011, 14, 14, 1),
    (0b0000000000110, 13, 14, 2),
    (0b0000000001000, 13, 14, 3),
    (0b00000000001001, 14, 15, 0),
    (0b00000000001000, 14, 15, 1),
    (0b00000000001010, 14, 15, 2),
    (0b0000000000001, 13, 15, 3),
    (0b00000000000111, 14, 16, 0),
    (0b00000000000110, 14, 16, 1),
    (0b00000000000101, 14, 16, 2),
    (0b00000000000100, 14, 16, 3),
];

/// Table 9-5, coeff_token for 4 <= nC < 8: (code, length, TotalCoeff, TrailingOnes).
pub const COEFF_TOKEN_NC4: [(u16, u8, u8, u8); 62] = [
    (0b1111, 4, 0, 0),
    (0b001111, 6, 1, 0),
    (0b1110, 4, 1, 1),
    (0b001011, 6, 2, 0),
    (0b01111, 5, 2, 1),
    (0b1101, 4, 2, 2),
    (0b001000, 6, 3, 0),
    (0b01100, 5, 3, 1),
    (0b01110, 5, 3, 2),
    (0b1100, 4, 3, 3),
    (0b0001111, 7, 4, 0),
    (0b01010, 5, 4, 1),
    (0b01011, 5, 4, 2),
    (0b1011, 4, 4, 3),
    (0b0001011, 7, 5, 0),
    (0b01000, 5, 5, 1),
    (0b01001, 5, 5, 2),
    (0b1010, 4, 5, 3),
    (0b0001001, 7, 6, 0),
    (0b001110, 6, 6, 1),
    (0b001101, 6, 6, 2),
    (0b1001, 4, 6, 3),
    (0b0001000, 7, 7, 0),
    (0b001010, 6, 7, 1),
    (0b001001, 6, 7, 2),
    (0b1000, 4, 7, 3),
    (0b00001111, 8, 8, 0),
    (0b0001110, 7, 8, 1),
    (0b0001101, 7, 8, 2),
    (0b01101, 5, 8, 3),
    (0b00001011, 8, 9, 0),
    (0b00001110, 8, 9, 1),
    (0b0001010, 7, 9, 2),
    (0b001100, 6, 9, 3),
    (0b000001111, 9, 10, 0),
    (0b00001010, 8, 10, 1),
    (0b00001101, 8, 10, 2),
    (0b0001100, 7, 10, 3),
    (0b000001011, 9, 11, 0),
    (0b000001110, 9, 11, 1),
    (0b00001001, 8, 11, 2),
    (0b00001100, 8, 11, 3),
    (0b000001000, 9, 12, 0),
    (0b000001010, 9, 12, 1),
    (0b000001101, 9, 12, 2),
    (0b00001000, 8, 12, 3),
    (0b0000001101, 10, 13, 0),
    (0b000000111, 9, 13, 1),
    (0b000001001, 9, 13, 2),
    (0b000001100, 9, 13, 3),
    (0b0000001001, 10, 14, 0),
    (0b0000001100, 10, 14, 1),
    (0b0000001011, 10, 14, 2),
    (0b0000001010, 10, 14, 3),
    (0b0000000101, 10, 15, 0),
    (0b0000001000, 10, 15, 1),
    (0b0000000111, 10, 15, 2),
    (0b0000000110, 10, 15, 3),
    (0b0000000001, 10, 16, 0),
    (0b0000000100, 10, 16, 1),
    (0b0000000011, 10, 16, 2),
    (0b0000000010, 10, 16, 3),
];

/// Table 9-5, coeff_token for nC == -1 (chroma DC when ChromaArrayType is 1, 4:2:0):
/// (code, length, TotalCoeff, TrailingOnes).
pub const COEFF_TOKEN_CHROMA_DC: [(u16, u8, u8, u8); 14] = [
    (0b01, 2, 0, 0),
    (0b000111, 6, 1, 0),
    (0b1, 1, 1, 1),
    (0b000100, 6, 2, 0),
    (0b000110, 6, 2, 1),
    (0b001, 3, 2, 2),
    (0b000011, 6, 3, 0),
    (0b0000011, 7, 3, 1),
    (0b0000010, 7, 3, 2),
    (0b000101, 6, 3, 3),
    (0b000010, 6, 4, 0),
    (0b00000011, 8, 4, 1),
    (0b00000010, 8, 4, 2),
    (0b0000000, 7, 4, 3),
];

/// Table 9-5, coeff_token for 8 <= nC: a 6-bit fixed-length code `xxxxyy`, where `xxxx` is
/// TotalCoeff - 1 and `yy` is TrailingOnes, except that `000011` stands for TotalCoeff 0,
/// TrailingOnes 0. Returns (TotalCoeff, TrailingOnes), or `None` for a value that is not a
/// codeword of the table: wider than 6 bits, or TrailingOnes greater than TotalCoeff (`000010`
/// and `000111`).
pub const fn coeff_token_nc8(code6: u16) -> Option<(u8, u8)> {
    if code6 >= 64 {
        return None;
    }
    if code6 == 0b000011 {
        return Some((0, 0));
    }
    let total_coeff = (code6 >> 2) as u8 + 1;
    let trailing_ones = (code6 & 0b11) as u8;
    if trailing_ones > total_coeff {
        return None;
    }
    Some((total_coeff, trailing_ones))
}

/// Tables 9-7 and 9-8: total_zeros for 4x4 blocks, indexed by tzVlcIndex - 1 (tzVlcIndex is
/// TotalCoeff, 1..=15): each entry (code, length, total_zeros).
pub const TOTAL_ZEROS_4X4: [&[(u16, u8, u8)]; 15] = [
    // tzVlcIndex 1
    &[
        (0b1, 1, 0),
        (0b011, 3, 1),
        (0b010, 3, 2),
        (0b0011, 4, 3),
        (0b0010, 4, 4),
        (0b00011, 5, 5),
        (0b00010, 5, 6),
        (0b000011, 6, 7),
        (0b000010, 6, 8),
        (0b0000011, 7, 9),
        (0b0000010, 7, 10),
        (0b00000011, 8, 11),
        (0b00000010, 8, 12),
        (0b000000011, 9, 13),
        (0b000000010, 9, 14),
        (0b000000001, 9, 15),
    ],
    // tzVlcIndex 2
    &[
        (0b111, 3, 0),
        (0b110, 3, 1),
        (0b101, 3, 2),
        (0b100, 3, 3),
        (0b011, 3, 4),
        (0b0101, 4, 5),
        (0b0100, 4, 6),
        (0b0011, 4, 7),
        (0b0010, 4, 8),
        (0b00011, 5, 9),
        (0b00010, 5, 10),
        (0b000011, 6, 11),
        (0b000010, 6, 12),
        (0b000001, 6, 13),
        (0b000000, 6, 14),
    ],
    // tzVlcIndex 3
    &[
        (0b0101, 4, 0),
        (0b111, 3, 1),
        (0b110, 3, 2),
        (0b101, 3, 3),
        (0b0100, 4, 4),
        (0b0011, 4, 5),
        (0b100, 3, 6),
        (0b011, 3, 7),
        (0b0010, 4, 8),
        (0b00011, 5, 9),
        (0b00010, 5, 10),
        (0b000001, 6, 11),
        (0b00001, 5, 12),
        (0b000000, 6, 13),
    ],
    // tzVlcIndex 4
    &[
        (0b00011, 5, 0),
        (0b111, 3, 1),
        (0b0101, 4, 2),
        (0b0100, 4, 3),
        (0b110, 3, 4),
        (0b101, 3, 5),
        (0b100, 3, 6),
        (0b0011, 4, 7),
        (0b011, 3, 8),
        (0b0010, 4, 9),
        (0b00010, 5, 10),
        (0b00001, 5, 11),
        (0b00000, 5, 12),
    ],
    // tzVlcIndex 5
    &[
        (0b0101, 4, 0),
        (0b0100, 4, 1),
        (0b0011, 4, 2),
        (0b111, 3, 3),
        (0b110, 3, 4),
        (0b101, 3, 5),
        (0b100, 3, 6),
        (0b011, 3, 7),
        (0b0010, 4, 8),
        (0b00001, 5, 9),
        (0b0001, 4, 10),
        (0b00000, 5, 11),
    ],
    // tzVlcIndex 6
    &[
        (0b000001, 6, 0),
        (0b00001, 5, 1),
        (0b111, 3, 2),
        (0b110, 3, 3),
        (0b101, 3, 4),
        (0b100, 3, 5),
        (0b011, 3, 6),
        (0b010, 3, 7),
        (0b0001, 4, 8),
        (0b001, 3, 9),
        (0b000000, 6, 10),
    ],
    // tzVlcIndex 7
    &[
        (0b000001, 6, 0),
        (0b00001, 5, 1),
        (0b101, 3, 2),
        (0b100, 3, 3),
        (0b011, 3, 4),
        (0b11, 2, 5),
        (0b010, 3, 6),
        (0b0001, 4, 7),
        (0b001, 3, 8),
        (0b000000, 6, 9),
    ],
    // tzVlcIndex 8
    &[
        (0b000001, 6, 0),
        (0b0001, 4, 1),
        (0b00001, 5, 2),
        (0b011, 3, 3),
        (0b11, 2, 4),
        (0b10, 2, 5),
        (0b010, 3, 6),
        (0b001, 3, 7),
        (0b000000, 6, 8),
    ],
    // tzVlcIndex 9
    &[
        (0b000001, 6, 0),
        (0b000000, 6, 1),
        (0b0001, 4, 2),
        (0b11, 2, 3),
        (0b10, 2, 4),
        (0b001, 3, 5),
        (0b01, 2, 6),
        (0b00001, 5, 7),
    ],
    // tzVlcIndex 10
    &[
        (0b00001, 5, 0),
        (0b00000, 5, 1),
        (0b001, 3, 2),
        (0b11, 2, 3),
        (0b10, 2, 4),
        (0b01, 2, 5),
        (0b0001, 4, 6),
    ],
    // tzVlcIndex 11
    &[
        (0b0000, 4, 0),
        (0b0001, 4, 1),
        (0b001, 3, 2),
        (0b010, 3, 3),
        (0b1, 1, 4),
        (0b011, 3, 5),
    ],
    // tzVlcIndex 12
    &[
        (0b0000, 4, 0),
        (0b0001, 4, 1),
        (0b01, 2, 2),
        (0b1, 1, 3),
        (0b001, 3, 4),
    ],
    // tzVlcIndex 13
    &[(0b000, 3, 0), (0b001, 3, 1), (0b1, 1, 2), (0b01, 2, 3)],
    // tzVlcIndex 14
    &[(0b00, 2, 0), (0b01, 2, 1), (0b1, 1, 2)],
    // tzVlcIndex 15
    &[(0b0, 1, 0), (0b1, 1, 1)],
];

/// Table 9-9 (a): total_zeros for chroma DC 2x2 blocks (ChromaArrayType 1, 4:2:0), indexed by
/// tzVlcIndex - 1 (tzVlcIndex is TotalCoeff, 1..=3): each entry (code, length, total_zeros).
pub const TOTAL_ZEROS_CHROMA_DC: [&[(u16, u8, u8)]; 3] = [
    // tzVlcIndex 1
    &[(0b1, 1, 0), (0b01, 2, 1), (0b001, 3, 2), (0b000, 3, 3)],
    // tzVlcIndex 2
    &[(0b1, 1, 0), (0b01, 2, 1), (0b00, 2, 2)],
    // tzVlcIndex 3
    &[(0b1, 1, 0), (0b0, 1, 1)],
];

/// Table 9-10: run_before, indexed by min(zerosLeft, 7) - 1 (the last table serves every
/// zerosLeft > 6): each entry (code, length, run_before).
pub const RUN_BEFORE: [&[(u16, u8, u8)]; 7] = [
    // zerosLeft 1
    &[(0b1, 1, 0), (0b0, 1, 1)],
    // zerosLeft 2
    &[(0b1, 1, 0), (0b01, 2, 1), (0b00, 2, 2)],
    // zerosLeft 3
    &[(0b11, 2, 0), (0b10, 2, 1), (0b01, 2, 2), (0b00, 2, 3)],
    // zerosLeft 4
    &[
        (0b11, 2, 0),
        (0b10, 2, 1),
        (0b01, 2, 2),
        (0b001, 3, 3),
        (0b000, 3, 4),
    ],
    // zerosLeft 5
    &[
        (0b11, 2, 0),
        (0b10, 2, 1),
        (0b011, 3, 2),
        (0b010, 3, 3),
        (0b001, 3, 4),
        (0b000, 3, 5),
    ],
    // zerosLeft 6
    &[
        (0b11, 2, 0),
        (0b000, 3, 1),
        (0b001, 3, 2),
        (0b011, 3, 3),
        (0b010, 3, 4),
        (0b101, 3, 5),
        (0b100, 3, 6),
    ],
    // zerosLeft > 6
    &[
        (0b111, 3, 0),
        (0b110, 3, 1),
        (0b101, 3, 2),
        (0b100, 3, 3),
        (0b011, 3, 4),
        (0b010, 3, 5),
        (0b001, 3, 6),
        (0b0001, 4, 7),
        (0b00001, 5, 8),
        (0b000001, 6, 9),
        (0b0000001, 7, 10),
        (0b00000001, 8, 11),
        (0b000000001, 9, 12),
        (0b0000000001, 10, 13),
        (0b00000000001, 11, 14),
    ],
];

/// Table 9-4 (ChromaArrayType 1 or 2): coded_block_pattern for codeNum 0..=47 of a macroblock
/// predicted in Intra_4x4 or Intra_8x8 mode.
pub const CBP_INTRA: [u8; 48] = [
    47, 31, 15, 0, 23, 27, 29, 30, 7, 11, 13, 14, 39, 43, 45, 46, 16, 3, 5, 10, 12, 19, 21, 26, 28,
    35, 37, 42, 44, 1, 2, 4, 8, 17, 18, 20, 24, 6, 9, 22, 25, 32, 33, 34, 36, 40, 38, 41,
];

/// Table 9-4 (ChromaArrayType 1 or 2): coded_block_pattern for codeNum 0..=47 of a macroblock
/// in an Inter prediction mode.
pub const CBP_INTER: [u8; 48] = [
    0, 16, 1, 2, 4, 8, 32, 3, 5, 10, 12, 15, 47, 7, 11, 13, 14, 6, 9, 31, 35, 37, 42, 44, 33, 34,
    36, 40, 39, 43, 45, 46, 17, 18, 20, 24, 19, 21, 26, 28, 23, 27, 29, 30, 22, 25, 38, 41,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// (code, length) pairs of a coeff_token table.
    fn coeff_codes(table: &[(u16, u8, u8, u8)]) -> Vec<(u16, u8)> {
        table.iter().map(|&(code, len, _, _)| (code, len)).collect()
    }

    /// (code, length) pairs of a total_zeros or run_before table.
    fn value_codes(table: &[(u16, u8, u8)]) -> Vec<(u16, u8)> {
        table.iter().map(|&(code, len, _)| (code, len)).collect()
    }

    /// Every VLC table of the module, by name.
    fn all_tables() -> Vec<(String, Vec<(u16, u8)>)> {
        let mut tables = vec![
            ("COEFF_TOKEN_NC0".to_string(), coeff_codes(&COEFF_TOKEN_NC0)),
            ("COEFF_TOKEN_NC2".to_string(), coeff_codes(&COEFF_TOKEN_NC2)),
            ("COEFF_TOKEN_NC4".to_string(), coeff_codes(&COEFF_TOKEN_NC4)),
            (
                "COEFF_TOKEN_CHROMA_DC".to_string(),
                coeff_codes(&COEFF_TOKEN_CHROMA_DC),
            ),
        ];
        for (i, table) in TOTAL_ZEROS_4X4.iter().enumerate() {
            tables.push((format!("TOTAL_ZEROS_4X4[{i}]"), value_codes(table)));
        }
        for (i, table) in TOTAL_ZEROS_CHROMA_DC.iter().enumerate() {
            tables.push((format!("TOTAL_ZEROS_CHROMA_DC[{i}]"), value_codes(table)));
        }
        for (i, table) in RUN_BEFORE.iter().enumerate() {
            tables.push((format!("RUN_BEFORE[{i}]"), value_codes(table)));
        }
        tables
    }

    /// A bit string as the standard prints it ("0001 01") as (code, length).
    fn bits(s: &str) -> (u16, u8) {
        let mut code = 0u16;
        let mut len = 0u8;
        for c in s.chars().filter(|c| !c.is_whitespace()) {
            assert!(c == '0' || c == '1', "not a bit string: {s}");
            code = (code << 1) | u16::from(c == '1');
            len += 1;
        }
        (code, len)
    }

    fn coeff_entry(table: &[(u16, u8, u8, u8)], total: u8, ones: u8) -> (u16, u8) {
        table
            .iter()
            .find(|e| e.2 == total && e.3 == ones)
            .map(|e| (e.0, e.1))
            .expect("pair missing")
    }

    fn value_entry(table: &[(u16, u8, u8)], value: u8) -> (u16, u8) {
        table
            .iter()
            .find(|e| e.2 == value)
            .map(|e| (e.0, e.1))
            .expect("value missing")
    }

    #[test]
    fn tables_are_prefix_free_and_satisfy_kraft() {
        for (name, codes) in all_tables() {
            // Kraft sum in units of 2^-16 (no codeword is longer than 16 bits).
            let mut kraft = 0u32;
            for (i, &(code, len)) in codes.iter().enumerate() {
                assert!(
                    (1..=16).contains(&len),
                    "{name}: codeword {i} has length {len}"
                );
                assert!(
                    u32::from(code) < (1u32 << len),
                    "{name}: codeword {i} ({code:#b}) is wider than {len} bits"
                );
                kraft += 1u32 << (16 - len);
                for (j, &(other, other_len)) in codes.iter().enumerate().skip(i + 1) {
                    let common = len.min(other_len);
                    assert_ne!(
                        code >> (len - common),
                        other >> (other_len - common),
                        "{name}: codewords {i} and {j} are prefixes of one another"
                    );
                }
            }
            assert!(
                kraft <= (1u32 << 16),
                "{name}: Kraft sum {kraft}/65536 exceeds 1"
            );
        }
    }

    #[test]
    fn only_leading_zeros_are_left_unused() {
        // The standard's tables are complete codes, except that a few leave the bit strings that
        // start with a long run of zeros without a codeword. Any other gap means a wrong entry.
        for (name, codes) in all_tables() {
            let longest = codes
                .iter()
                .map(|&(_, len)| len)
                .max()
                .expect("empty table");
            let mut covered = false;
            for v in 0u32..(1u32 << longest) {
                let hits = codes
                    .iter()
                    .filter(|&&(code, len)| v >> (longest - len) == u32::from(code))
                    .count();
                assert!(hits <= 1, "{name}: {v:b} starts with {hits} codewords");
                if hits == 1 {
                    covered = true;
                } else {
                    assert!(
                        !covered,
                        "{name}: bit string {v:0width$b} starts with no codeword",
                        width = usize::from(longest)
                    );
                }
            }
        }
    }

    /// Asserts that a coeff_token table holds each (TotalCoeff, TrailingOnes) pair with
    /// TotalCoeff <= max_total and TrailingOnes <= min(3, TotalCoeff) exactly once, and no other.
    fn check_coeff_token_pairs(name: &str, table: &[(u16, u8, u8, u8)], max_total: u8) {
        let mut seen = [[0u8; 4]; 17];
        for &(_, _, total, ones) in table {
            assert!(
                total <= max_total && ones <= total.min(3),
                "{name}: invalid pair ({total}, {ones})"
            );
            seen[usize::from(total)][usize::from(ones)] += 1;
        }
        for total in 0..=max_total {
            for ones in 0..=total.min(3) {
                assert_eq!(
                    seen[usize::from(total)][usize::from(ones)],
                    1,
                    "{name}: pair ({total}, {ones})"
                );
            }
        }
    }

    #[test]
    fn coeff_token_tables_hold_every_pair_once() {
        check_coeff_token_pairs("COEFF_TOKEN_NC0", &COEFF_TOKEN_NC0, 16);
        check_coeff_token_pairs("COEFF_TOKEN_NC2", &COEFF_TOKEN_NC2, 16);
        check_coeff_token_pairs("COEFF_TOKEN_NC4", &COEFF_TOKEN_NC4, 16);
        check_coeff_token_pairs("COEFF_TOKEN_CHROMA_DC", &COEFF_TOKEN_CHROMA_DC, 4);
        assert_eq!(COEFF_TOKEN_NC0.len(), 62);
        assert_eq!(COEFF_TOKEN_CHROMA_DC.len(), 14);
    }

    #[test]
    fn coeff_token_nc8_maps_62_distinct_codes() {
        let mut seen = [[false; 4]; 17];
        let mut count = 0;
        for code in 0u16..64 {
            if let Some((total, ones)) = coeff_token_nc8(code) {
                assert!(
                    total <= 16 && ones <= total.min(3),
                    "{code:06b}: invalid pair ({total}, {ones})"
                );
                let slot = &mut seen[usize::from(total)][usize::from(ones)];
                assert!(!*slot, "{code:06b}: pair ({total}, {ones}) seen twice");
                *slot = true;
                count += 1;
            }
        }
        assert_eq!(count, 62);
        assert_eq!(coeff_token_nc8(0b000011), Some((0, 0)));
        assert_eq!(coeff_token_nc8(0b000000), Some((1, 0)));
        assert_eq!(coeff_token_nc8(0b000001), Some((1, 1)));
        assert_eq!(coeff_token_nc8(0b000100), Some((2, 0)));
        assert_eq!(coeff_token_nc8(0b000110), Some((2, 2)));
        assert_eq!(coeff_token_nc8(0b111111), Some((16, 3)));
        assert_eq!(coeff_token_nc8(0b000010), None);
        assert_eq!(coeff_token_nc8(0b000111), None);
        assert_eq!(coeff_token_nc8(64), None);
    }

    /// Asserts that a table holds `count` entries whose values are 0..count, each once.
    fn check_values(name: &str, table: &[(u16, u8, u8)], count: usize) {
        assert_eq!(table.len(), count, "{name}: entry count");
        let mut seen = vec![false; count];
        for &(_, _, value) in table {
            let slot = seen
                .get_mut(usize::from(value))
                .expect("value out of range");
            assert!(!*slot, "{name}: value {value} appears twice");
            *slot = true;
        }
    }

    #[test]
    fn total_zeros_tables_hold_every_value_once() {
        for (i, table) in TOTAL_ZEROS_4X4.iter().enumerate() {
            check_values(&format!("TOTAL_ZEROS_4X4[{i}]"), table, 16 - i);
        }
        for (i, table) in TOTAL_ZEROS_CHROMA_DC.iter().enumerate() {
            check_values(&format!("TOTAL_ZEROS_CHROMA_DC[{i}]"), table, 4 - i);
        }
    }

    #[test]
    fn run_before_tables_hold_every_value_once() {
        for (i, table) in RUN_BEFORE.iter().enumerate() {
            let count = if i < 6 { i + 2 } else { 15 };
            check_values(&format!("RUN_BEFORE[{i}]"), table, count);
        }
    }

    #[test]
    fn cbp_tables_are_permutations() {
        for table in [&CBP_INTRA, &CBP_INTER] {
            let mut seen = [false; 48];
            for &cbp in table.iter() {
                let slot = seen.get_mut(usize::from(cbp)).expect("cbp out of range");
                assert!(!*slot, "cbp {cbp} appears twice");
                *slot = true;
            }
        }
        assert_eq!((CBP_INTRA[0], CBP_INTRA[3], CBP_INTRA[47]), (47, 0, 41));
        assert_eq!((CBP_INTER[0], CBP_INTER[1], CBP_INTER[12]), (0, 16, 47));
    }

    #[test]
    fn spot_checks_against_the_standard() {
        assert_eq!(coeff_entry(&COEFF_TOKEN_NC0, 0, 0), bits("1"));
        assert_eq!(coeff_entry(&COEFF_TOKEN_NC0, 1, 0), bits("0001 01"));
        assert_eq!(
            coeff_entry(&COEFF_TOKEN_NC0, 13, 1),
            bits("0000 0000 0000 001")
        );
        assert_eq!(
            coeff_entry(&COEFF_TOKEN_NC0, 16, 3),
            bits("0000 0000 0000 1000")
        );
        assert_eq!(coeff_entry(&COEFF_TOKEN_NC2, 0, 0), bits("11"));
        assert_eq!(
            coeff_entry(&COEFF_TOKEN_NC2, 14, 1),
            bits("0000 0000 0010 11")
        );
        assert_eq!(coeff_entry(&COEFF_TOKEN_NC4, 0, 0), bits("1111"));
        assert_eq!(coeff_entry(&COEFF_TOKEN_NC4, 16, 0), bits("0000 0000 01"));
        assert_eq!(coeff_entry(&COEFF_TOKEN_CHROMA_DC, 0, 0), bits("01"));
        assert_eq!(coeff_entry(&COEFF_TOKEN_CHROMA_DC, 1, 1), bits("1"));
        assert_eq!(coeff_entry(&COEFF_TOKEN_CHROMA_DC, 4, 3), bits("0000 000"));
        assert_eq!(value_entry(TOTAL_ZEROS_4X4[0], 15), bits("0000 0000 1"));
        assert_eq!(value_entry(TOTAL_ZEROS_4X4[6], 5), bits("11"));
        assert_eq!(value_entry(TOTAL_ZEROS_4X4[14], 1), bits("1"));
        assert_eq!(value_entry(TOTAL_ZEROS_CHROMA_DC[0], 3), bits("000"));
        assert_eq!(value_entry(RUN_BEFORE[5], 1), bits("000"));
        assert_eq!(value_entry(RUN_BEFORE[6], 14), bits("0000 0000 001"));
    }
}
