//! Keysym → keycode lookup over the server's core keyboard mapping, with spare keycodes
//! remapped (ChangeKeyboardMapping) for keysyms the layout lacks — so what the user typed
//! arrives whatever the viewer's layout (US, JIS 106/109) and whatever Xvfb's.

use tsuitate_protocol::KeyCode;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, Keycode, Keysym};

use crate::frame::CaptureError;

/// Where a keysym lives: the keycode and the shift level (0 = plain, 1 = with Shift).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPlace {
    /// Keycode to press.
    pub keycode: Keycode,
    /// Shift level needed (0 or 1). A remapped spare has the keysym on both levels.
    pub level: u8,
}

/// The client-side copy of the core keyboard mapping.
#[derive(Debug, Clone)]
pub struct Keymap {
    min: Keycode,
    per: usize,
    syms: Vec<Keysym>,
    spares: Vec<Keycode>,
    next_spare: usize,
}

impl Keymap {
    /// Fetch the mapping from the server.
    pub fn load<C: Connection>(conn: &C) -> Result<Keymap, CaptureError> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let count = max.saturating_sub(min).saturating_add(1);
        let reply = conn
            .get_keyboard_mapping(min, count)
            .map_err(|e| CaptureError::Connection(e.to_string()))?
            .reply()
            .map_err(|e| CaptureError::Request(e.to_string()))?;
        Ok(Keymap::from_table(
            min,
            usize::from(reply.keysyms_per_keycode),
            reply.keysyms,
        ))
    }

    /// A keymap from a raw table (`per` keysyms per keycode, starting at keycode `min`).
    pub fn from_table(min: Keycode, per: usize, syms: Vec<Keysym>) -> Keymap {
        let per = per.max(1);
        let spares = syms
            .chunks(per)
            .enumerate()
            .filter(|(_, row)| row.iter().all(|&s| s == 0))
            .filter_map(|(i, _)| u8::try_from(usize::from(min) + i).ok())
            // Keycodes below 8 do not exist; keep clear of the lowest for safety.
            .filter(|&k| k >= 9)
            .collect();
        Keymap {
            min,
            per,
            syms,
            spares,
            next_spare: 0,
        }
    }

    /// Keysyms per keycode in this table.
    pub fn per_keycode(&self) -> usize {
        self.per
    }

    /// Find `keysym` on level 0 or 1 of the first group.
    pub fn find(&self, keysym: Keysym) -> Option<KeyPlace> {
        if keysym == 0 {
            return None;
        }
        for level in 0..2usize.min(self.per) {
            for (i, row) in self.syms.chunks(self.per).enumerate() {
                if row.get(level) == Some(&keysym) {
                    let keycode = u8::try_from(usize::from(self.min) + i).ok()?;
                    return Some(KeyPlace {
                        keycode,
                        level: level as u8,
                    });
                }
            }
        }
        None
    }

    /// Pick the next spare keycode (round robin, so a keycode is not remapped again while
    /// the client may still be translating its previous press) and record `keysym` on it.
    /// Returns the keycode and the row to send with ChangeKeyboardMapping.
    /// The spare keycode the next [`Keymap::assign_spare`] will remap.
    pub fn next_spare(&self) -> Option<Keycode> {
        (!self.spares.is_empty()).then(|| self.spares[self.next_spare % self.spares.len()])
    }

    pub fn assign_spare(&mut self, keysym: Keysym) -> Option<(Keycode, Vec<Keysym>)> {
        if self.spares.is_empty() {
            return None;
        }
        let keycode = self.spares[self.next_spare % self.spares.len()];
        self.next_spare = self.next_spare.wrapping_add(1);
        let mut row = vec![0; self.per];
        row[0] = keysym;
        if self.per > 1 {
            row[1] = keysym;
        }
        let at = (usize::from(keycode) - usize::from(self.min)) * self.per;
        self.syms.get_mut(at..at + self.per)?.copy_from_slice(&row);
        Some((keycode, row))
    }

    /// Number of spare keycodes available for remapping.
    pub fn spare_count(&self) -> usize {
        self.spares.len()
    }
}

/// The X keysym for a character: Latin-1 keysyms equal the code point; everything else uses
/// the Unicode keysym range 0x0100_0000 + code point.
pub fn char_keysym(c: char) -> Keysym {
    let cp = u32::from(c);
    match cp {
        0x20..=0x7e | 0xa0..=0xff => cp,
        _ => 0x0100_0000 + cp,
    }
}

/// Whether `keysym` produces a character (then the Shift level is adjusted to reach it);
/// function, cursor and modifier keys (0xfe00–0xffff) are pressed with the user's modifiers.
pub fn is_printable(keysym: Keysym) -> bool {
    !(0xfe00..=0xffff).contains(&keysym) && keysym != 0
}

/// Shift keysyms.
pub const SHIFT_KEYSYMS: [Keysym; 2] = [0xffe1, 0xffe2];

/// A keysym for a physical key when the viewer sent none (keysym 0): the key's meaning on a US
/// layout for named keys; `None` for keys that only make sense with a keysym.
pub fn fallback_keysym(code: KeyCode) -> Option<Keysym> {
    use KeyCode::*;
    Some(match code {
        Enter => 0xff0d,
        NumpadEnter => 0xff8d,
        Tab => 0xff09,
        Space => 0x20,
        Backspace => 0xff08,
        Escape => 0xff1b,
        CapsLock => 0xffe5,
        ShiftLeft => 0xffe1,
        ShiftRight => 0xffe2,
        ControlLeft => 0xffe3,
        ControlRight => 0xffe4,
        AltLeft => 0xffe9,
        AltRight => 0xffea,
        MetaLeft => 0xffeb,
        MetaRight => 0xffec,
        ContextMenu => 0xff67,
        Convert => 0xff23,
        NonConvert => 0xff22,
        KanaMode => 0xff27,
        Lang1 => 0xff34, // Hangul / かな (Mac)
        Lang2 => 0xff35,
        Backquote => 0xff2a, // JIS 半角/全角 sits here; US viewers send a keysym anyway
        Insert => 0xff63,
        Delete => 0xffff,
        Home => 0xff50,
        End => 0xff57,
        PageUp => 0xff55,
        PageDown => 0xff56,
        ArrowUp => 0xff52,
        ArrowDown => 0xff54,
        ArrowLeft => 0xff51,
        ArrowRight => 0xff53,
        F1 => 0xffbe,
        F2 => 0xffbf,
        F3 => 0xffc0,
        F4 => 0xffc1,
        F5 => 0xffc2,
        F6 => 0xffc3,
        F7 => 0xffc4,
        F8 => 0xffc5,
        F9 => 0xffc6,
        F10 => 0xffc7,
        F11 => 0xffc8,
        F12 => 0xffc9,
        PrintScreen => 0xff61,
        ScrollLock => 0xff14,
        Pause => 0xff13,
        NumLock => 0xff7f,
        _ => return us_char(code).map(char_keysym),
    })
}

fn us_char(code: KeyCode) -> Option<char> {
    let name = code.name();
    if let Some(l) = name.strip_prefix("Key") {
        return l.chars().next().map(|c| c.to_ascii_lowercase());
    }
    if let Some(d) = name
        .strip_prefix("Digit")
        .or_else(|| name.strip_prefix("Numpad"))
    {
        if d.len() == 1 {
            return d.chars().next();
        }
    }
    use KeyCode::*;
    Some(match code {
        Minus => '-',
        Equal => '=',
        BracketLeft => '[',
        BracketRight => ']',
        Backslash | IntlBackslash => '\\',
        Semicolon => ';',
        Quote => '\'',
        Comma => ',',
        Period => '.',
        Slash => '/',
        IntlRo => '\\',
        IntlYen => '¥',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Keymap {
        // keycodes 8..=12: [a A], [1 !], [], [Return], []
        Keymap::from_table(8, 2, vec![0x61, 0x41, 0x31, 0x21, 0, 0, 0xff0d, 0, 0, 0])
    }

    #[test]
    fn finds_levels_and_remaps_spares_round_robin() {
        let mut k = table();
        assert_eq!(
            k.find(0x41),
            Some(KeyPlace {
                keycode: 8,
                level: 1
            })
        );
        assert_eq!(
            k.find(0xff0d),
            Some(KeyPlace {
                keycode: 11,
                level: 0
            })
        );
        assert_eq!(k.find(0x10060c5), None);
        assert_eq!(k.spare_count(), 2);
        let (kc, row) = k.assign_spare(0x10060c5).unwrap_or_default();
        assert_eq!((kc, row), (10, vec![0x10060c5, 0x10060c5]));
        assert_eq!(
            k.find(0x10060c5),
            Some(KeyPlace {
                keycode: 10,
                level: 0
            })
        );
        assert_eq!(k.assign_spare(0x20ac).map(|r| r.0), Some(12));
        assert_eq!(k.assign_spare(0x20ad).map(|r| r.0), Some(10));
    }

    #[test]
    fn char_keysyms() {
        assert_eq!(char_keysym('a'), 0x61);
        assert_eq!(char_keysym('¥'), 0xa5);
        assert_eq!(char_keysym('情'), 0x0100_60c5);
        assert_eq!(fallback_keysym(KeyCode::KeyQ), Some(0x71));
        assert_eq!(fallback_keysym(KeyCode::Digit7), Some(0x37));
        assert_eq!(fallback_keysym(KeyCode::Convert), Some(0xff23));
    }
}
