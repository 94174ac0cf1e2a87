//! Key mapping: W3C key names (as written in scripts, and as winit names its logical keys) to
//! the protocol's physical [`KeyCode`], an X11 keysym and the modifiers a key needs.
//!
//! docs/protocol.md §4.3: a key event carries the physical key (so JIS and US keyboards both
//! work) and the X11 keysym of the value the user's layout produced.

use tsuitate_protocol::keysym::char_keysym;
use tsuitate_protocol::keysym::NAMED_KEYS;
use tsuitate_protocol::{InputEvent, KeyCode, Modifiers};

/// One key as a script or the window sees it: the physical key and the keysym of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStroke {
    /// Physical key.
    pub code: KeyCode,
    /// X11 keysym of the key value.
    pub keysym: u32,
    /// Modifier this key *is* (its bit), if it is a modifier key.
    pub modifier_bit: u8,
    /// Whether a US layout needs Shift to produce this value (e.g. `A`, `!`).
    pub needs_shift: bool,
}

/// The keysym and physical key of a named key (`"Enter"`, `"Shift"`, ...).
pub fn named_key(name: &str) -> Option<KeyStroke> {
    NAMED_KEYS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|&(_, keysym, code, modifier_bit)| KeyStroke {
            code,
            keysym,
            modifier_bit,
            needs_shift: false,
        })
}

/// US-layout physical key for a printable ASCII character, and whether Shift is needed.
fn us_layout_key(c: char) -> Option<(KeyCode, bool)> {
    const UNSHIFTED: &str = "`1234567890-=[]\\;',./";
    const SHIFTED: &str = "~!@#$%^&*()_+{}|:\"<>?";
    const CODES: [KeyCode; 21] = [
        KeyCode::Backquote,
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
        KeyCode::Digit5,
        KeyCode::Digit6,
        KeyCode::Digit7,
        KeyCode::Digit8,
        KeyCode::Digit9,
        KeyCode::Digit0,
        KeyCode::Minus,
        KeyCode::Equal,
        KeyCode::BracketLeft,
        KeyCode::BracketRight,
        KeyCode::Backslash,
        KeyCode::Semicolon,
        KeyCode::Quote,
        KeyCode::Comma,
        KeyCode::Period,
        KeyCode::Slash,
    ];
    if c.is_ascii_alphabetic() {
        let name = format!("Key{}", c.to_ascii_uppercase());
        return KeyCode::from_name(&name).map(|k| (k, c.is_ascii_uppercase()));
    }
    if c == ' ' {
        return Some((KeyCode::Space, false));
    }
    if let Some(i) = UNSHIFTED.chars().position(|u| u == c) {
        return CODES.get(i).map(|&k| (k, false));
    }
    if let Some(i) = SHIFTED.chars().position(|u| u == c) {
        return CODES.get(i).map(|&k| (k, true));
    }
    None
}

/// A key value as a script writes it: a named key (`Enter`, `Shift`) or one character (`a`,
/// `A`, `!`, `あ`). Characters outside US ASCII have no physical key (`Unidentified`).
pub fn key_from_name(name: &str) -> Option<KeyStroke> {
    if let Some(k) = named_key(name) {
        return Some(k);
    }
    let mut chars = name.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    let keysym = char_keysym(c)?;
    let (code, needs_shift) = us_layout_key(c).unwrap_or((KeyCode::Unidentified, false));
    Some(KeyStroke {
        code,
        keysym,
        modifier_bit: 0,
        needs_shift,
    })
}

/// A chord such as `Shift+Tab` or `Control+a`: modifiers then one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChord {
    /// Modifier keys, pressed in order and released in reverse.
    pub modifiers: Vec<KeyStroke>,
    /// The key itself.
    pub key: KeyStroke,
}

/// Parse a chord. `+` alone is the plus key; `Control++` is Control with plus.
pub fn parse_chord(text: &str) -> Option<KeyChord> {
    let (mods_part, key_part) = match text.strip_suffix("++") {
        Some(rest) => (rest, "+"),
        None => match text.rsplit_once('+') {
            Some((m, k)) if !k.is_empty() => (m, k),
            Some(_) => return None,
            None => ("", text),
        },
    };
    let mut modifiers = Vec::new();
    if !mods_part.is_empty() {
        for m in mods_part.split('+') {
            let k = named_key(m).filter(|k| k.modifier_bit != 0)?;
            modifiers.push(k);
        }
    }
    let mut key = key_from_name(key_part)?;
    let explicit_shift = modifiers.iter().any(|m| m.modifier_bit == Modifiers::SHIFT);
    if key.needs_shift && !explicit_shift {
        if let Some(shift) = named_key("Shift") {
            modifiers.push(shift);
        }
    }
    key.needs_shift = false;
    Some(KeyChord { modifiers, key })
}

impl KeyChord {
    /// The events for pressing and releasing the chord. Modifiers carry the state *after* each
    /// event, as W3C `KeyboardEvent` modifier flags do (Shift's keydown has Shift set, its keyup
    /// not).
    pub fn events(&self) -> Vec<InputEvent> {
        let mut held = 0u8;
        let mut out = Vec::new();
        let key_event = |down: bool, k: &KeyStroke, held: u8| InputEvent::Key {
            down,
            code: k.code,
            keysym: k.keysym,
            modifiers: Modifiers::from_bits(held).unwrap_or_default(),
        };
        for m in &self.modifiers {
            held |= m.modifier_bit;
            out.push(key_event(true, m, held));
        }
        held |= self.key.modifier_bit;
        out.push(key_event(true, &self.key, held));
        held &= !self.key.modifier_bit;
        out.push(key_event(false, &self.key, held));
        for m in self.modifiers.iter().rev() {
            held &= !m.modifier_bit;
            out.push(key_event(false, m, held));
        }
        out
    }
}

/// The protocol key code for a W3C `code` name as winit spells it (`SuperLeft` is the W3C
/// `MetaLeft`). Unknown keys are `Unidentified`.
pub fn code_from_winit_name(name: &str) -> KeyCode {
    let name = match name {
        "SuperLeft" | "Meta" => "MetaLeft",
        "SuperRight" => "MetaRight",
        other => other,
    };
    KeyCode::from_name(name).unwrap_or(KeyCode::Unidentified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(down: bool, code: KeyCode, keysym: u32, mods: u8) -> InputEvent {
        InputEvent::Key {
            down,
            code,
            keysym,
            modifiers: Modifiers::from_bits(mods).unwrap_or_default(),
        }
    }

    #[test]
    fn enter_is_return_keysym() {
        let c = parse_chord("Enter").unwrap();
        assert_eq!(
            c.events(),
            vec![
                key(true, KeyCode::Enter, 0xff0d, 0),
                key(false, KeyCode::Enter, 0xff0d, 0)
            ]
        );
    }

    #[test]
    fn shift_tab_chord() {
        let c = parse_chord("Shift+Tab").unwrap();
        assert_eq!(
            c.events(),
            vec![
                key(true, KeyCode::ShiftLeft, 0xffe1, 1),
                key(true, KeyCode::Tab, 0xff09, 1),
                key(false, KeyCode::Tab, 0xff09, 1),
                key(false, KeyCode::ShiftLeft, 0xffe1, 0),
            ]
        );
    }

    #[test]
    fn control_a_and_capital_a() {
        let c = parse_chord("Control+a").unwrap();
        assert_eq!(c.events()[1], key(true, KeyCode::KeyA, 0x61, 2));
        let c = parse_chord("A").unwrap();
        assert_eq!(
            c.events(),
            vec![
                key(true, KeyCode::ShiftLeft, 0xffe1, 1),
                key(true, KeyCode::KeyA, 0x41, 1),
                key(false, KeyCode::KeyA, 0x41, 1),
                key(false, KeyCode::ShiftLeft, 0xffe1, 0),
            ]
        );
    }

    #[test]
    fn punctuation_and_plus() {
        let c = parse_chord("!").unwrap();
        assert_eq!(c.key.code, KeyCode::Digit1);
        assert_eq!(c.modifiers.len(), 1);
        let c = parse_chord("Control++").unwrap();
        assert_eq!(c.key.code, KeyCode::Equal);
        assert_eq!(c.key.keysym, 0x2b);
        assert_eq!(c.modifiers.len(), 2, "Control and the implied Shift");
    }

    #[test]
    fn non_ascii_characters_use_unicode_keysyms() {
        let c = parse_chord("あ").unwrap();
        assert_eq!(c.key.code, KeyCode::Unidentified);
        assert_eq!(c.key.keysym, 0x0100_3042);
        assert!(tsuitate_protocol::keysym_valid(c.key.keysym));
        assert_eq!(char_keysym('é'), Some(0xe9));
    }

    #[test]
    fn rejects_unknown_and_bad_chords() {
        assert!(parse_chord("Bogus").is_none());
        assert!(parse_chord("Tab+a").is_none(), "Tab is not a modifier");
        assert!(parse_chord("Shift+").is_none());
        assert!(parse_chord("").is_none());
    }

    #[test]
    fn winit_code_names() {
        assert_eq!(code_from_winit_name("KeyA"), KeyCode::KeyA);
        assert_eq!(code_from_winit_name("SuperLeft"), KeyCode::MetaLeft);
        assert_eq!(code_from_winit_name("IntlYen"), KeyCode::IntlYen);
        assert_eq!(code_from_winit_name("Fn"), KeyCode::Unidentified);
    }
}
