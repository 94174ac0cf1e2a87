//! X11 keysyms for key values (docs/protocol.md §4.3): what a W3C `key` value — a named key
//! such as `Enter` or `Convert`, or one character — is as a keysym on the wire. One table for
//! every viewer (window, web page) and the tests.

use crate::input::Modifiers;
use crate::keycode::KeyCode;

/// Named keys: W3C `key` name, X11 keysym, the physical key that usually produces it, and its
/// modifier bit. Aliases winit uses (`Space`, `Super`) are included.
pub const NAMED_KEYS: &[(&str, u32, KeyCode, u8)] = &[
    ("Enter", 0xff0d, KeyCode::Enter, 0),
    ("Tab", 0xff09, KeyCode::Tab, 0),
    ("Backspace", 0xff08, KeyCode::Backspace, 0),
    ("Escape", 0xff1b, KeyCode::Escape, 0),
    ("Space", 0x20, KeyCode::Space, 0),
    ("Delete", 0xffff, KeyCode::Delete, 0),
    ("Insert", 0xff63, KeyCode::Insert, 0),
    ("Home", 0xff50, KeyCode::Home, 0),
    ("End", 0xff57, KeyCode::End, 0),
    ("PageUp", 0xff55, KeyCode::PageUp, 0),
    ("PageDown", 0xff56, KeyCode::PageDown, 0),
    ("ArrowLeft", 0xff51, KeyCode::ArrowLeft, 0),
    ("ArrowUp", 0xff52, KeyCode::ArrowUp, 0),
    ("ArrowRight", 0xff53, KeyCode::ArrowRight, 0),
    ("ArrowDown", 0xff54, KeyCode::ArrowDown, 0),
    ("F1", 0xffbe, KeyCode::F1, 0),
    ("F2", 0xffbf, KeyCode::F2, 0),
    ("F3", 0xffc0, KeyCode::F3, 0),
    ("F4", 0xffc1, KeyCode::F4, 0),
    ("F5", 0xffc2, KeyCode::F5, 0),
    ("F6", 0xffc3, KeyCode::F6, 0),
    ("F7", 0xffc4, KeyCode::F7, 0),
    ("F8", 0xffc5, KeyCode::F8, 0),
    ("F9", 0xffc6, KeyCode::F9, 0),
    ("F10", 0xffc7, KeyCode::F10, 0),
    ("F11", 0xffc8, KeyCode::F11, 0),
    ("F12", 0xffc9, KeyCode::F12, 0),
    ("Shift", 0xffe1, KeyCode::ShiftLeft, Modifiers::SHIFT),
    ("Control", 0xffe3, KeyCode::ControlLeft, Modifiers::CTRL),
    ("Alt", 0xffe9, KeyCode::AltLeft, Modifiers::ALT),
    ("Meta", 0xffeb, KeyCode::MetaLeft, Modifiers::META),
    ("Super", 0xffeb, KeyCode::MetaLeft, Modifiers::META),
    ("CapsLock", 0xffe5, KeyCode::CapsLock, 0),
    ("ContextMenu", 0xff67, KeyCode::ContextMenu, 0),
    ("NumLock", 0xff7f, KeyCode::NumLock, 0),
    ("ScrollLock", 0xff14, KeyCode::ScrollLock, 0),
    ("Pause", 0xff13, KeyCode::Pause, 0),
    ("PrintScreen", 0xff61, KeyCode::PrintScreen, 0),
    // Japanese input keys (JIS keyboards).
    ("Convert", 0xff23, KeyCode::Convert, 0),
    ("NonConvert", 0xff22, KeyCode::NonConvert, 0),
    ("KanaMode", 0xff2d, KeyCode::KanaMode, 0),
    ("Hiragana", 0xff25, KeyCode::KanaMode, 0),
    ("Katakana", 0xff26, KeyCode::KanaMode, 0),
    ("HiraganaKatakana", 0xff27, KeyCode::KanaMode, 0),
    ("ZenkakuHankaku", 0xff2a, KeyCode::Backquote, 0),
    ("Zenkaku", 0xff28, KeyCode::Backquote, 0),
    ("Hankaku", 0xff29, KeyCode::Backquote, 0),
    ("Alphanumeric", 0xff30, KeyCode::CapsLock, 0),
    ("Eisu", 0xff2f, KeyCode::Lang2, 0),
    ("KanjiMode", 0xff21, KeyCode::Lang1, 0),
];

/// The X11 keysym of a named key (`"Enter"`, `"Shift"`, `"Convert"`; winit's names are W3C names).
pub fn named_keysym(name: &str) -> Option<u32> {
    NAMED_KEYS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|&(_, keysym, ..)| keysym)
}

/// The X11 keysym of a character: Latin-1 characters are their own keysym, every other
/// character is a Unicode keysym (0x0100_0000 + code point). Control characters have none.
pub fn char_keysym(c: char) -> Option<u32> {
    let cp = u32::from(c);
    match cp {
        0x20..=0x7e | 0xa0..=0xff => Some(cp),
        0x100..=0x10_ffff => Some(0x0100_0000 + cp),
        _ => None,
    }
}

/// The keysym of a W3C `key` value: one character is its own keysym, a named key its X11
/// keysym; anything else (`"Unidentified"`, `"Process"`, `"Dead"`, an unknown name) carries none
/// (0).
pub fn key_value_keysym(key: &str) -> u32 {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => char_keysym(c).unwrap_or(0),
        _ => named_keysym(key).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_keysym_is_valid_on_the_wire() {
        for (name, keysym, ..) in NAMED_KEYS {
            assert!(crate::keysym_valid(*keysym), "{name}");
        }
    }

    #[test]
    fn key_values() {
        assert_eq!(key_value_keysym("a"), 0x61);
        assert_eq!(key_value_keysym("¥"), 0xa5);
        assert_eq!(key_value_keysym("あ"), 0x0100_3042);
        assert_eq!(key_value_keysym("Enter"), 0xff0d);
        assert_eq!(key_value_keysym("Space"), 0x20);
        assert_eq!(key_value_keysym("Process"), 0);
        assert_eq!(key_value_keysym("\u{7}"), 0);
        assert_eq!(key_value_keysym(""), 0);
    }
}
