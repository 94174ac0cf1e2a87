//! The closed set of physical key codes (W3C UI Events `code` values) that may cross into the
//! Internet zone (docs/protocol.md §4.3). A code outside this list is a malformed message.

macro_rules! key_codes {
    ($($num:literal => $name:ident,)*) => {
        /// A physical key, named as in the W3C UI Events `KeyboardEvent.code` specification.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum KeyCode {
            $(
                #[allow(missing_docs)]
                $name = $num,
            )*
        }

        impl KeyCode {
            /// Every key code, in wire order.
            pub const ALL: &'static [KeyCode] = &[$(KeyCode::$name,)*];

            /// The wire value.
            pub fn to_u16(self) -> u16 {
                self as u16
            }

            /// The key code for a wire value, if it is in the closed set.
            pub fn from_u16(v: u16) -> Option<KeyCode> {
                match v {
                    $($num => Some(KeyCode::$name),)*
                    _ => None,
                }
            }

            /// The W3C `code` name, e.g. `"KeyA"` or `"IntlYen"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(KeyCode::$name => stringify!($name),)*
                }
            }

            /// The key code for a W3C `code` name.
            pub fn from_name(name: &str) -> Option<KeyCode> {
                match name {
                    $(stringify!($name) => Some(KeyCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

key_codes! {
    0 => Unidentified,
    1 => KeyA, 2 => KeyB, 3 => KeyC, 4 => KeyD, 5 => KeyE, 6 => KeyF, 7 => KeyG,
    8 => KeyH, 9 => KeyI, 10 => KeyJ, 11 => KeyK, 12 => KeyL, 13 => KeyM, 14 => KeyN,
    15 => KeyO, 16 => KeyP, 17 => KeyQ, 18 => KeyR, 19 => KeyS, 20 => KeyT, 21 => KeyU,
    22 => KeyV, 23 => KeyW, 24 => KeyX, 25 => KeyY, 26 => KeyZ,
    30 => Digit0, 31 => Digit1, 32 => Digit2, 33 => Digit3, 34 => Digit4,
    35 => Digit5, 36 => Digit6, 37 => Digit7, 38 => Digit8, 39 => Digit9,
    40 => Minus, 41 => Equal, 42 => BracketLeft, 43 => BracketRight, 44 => Backslash,
    45 => Semicolon, 46 => Quote, 47 => Backquote, 48 => Comma, 49 => Period, 50 => Slash,
    51 => IntlBackslash, 52 => IntlRo, 53 => IntlYen,
    60 => Enter, 61 => Tab, 62 => Space, 63 => Backspace, 64 => Escape, 65 => CapsLock,
    70 => ShiftLeft, 71 => ShiftRight, 72 => ControlLeft, 73 => ControlRight,
    74 => AltLeft, 75 => AltRight, 76 => MetaLeft, 77 => MetaRight, 78 => ContextMenu,
    80 => Convert, 81 => NonConvert, 82 => KanaMode, 83 => Lang1, 84 => Lang2,
    85 => Lang3, 86 => Lang4, 87 => Lang5,
    90 => Insert, 91 => Delete, 92 => Home, 93 => End, 94 => PageUp, 95 => PageDown,
    96 => ArrowUp, 97 => ArrowDown, 98 => ArrowLeft, 99 => ArrowRight,
    100 => F1, 101 => F2, 102 => F3, 103 => F4, 104 => F5, 105 => F6,
    106 => F7, 107 => F8, 108 => F9, 109 => F10, 110 => F11, 111 => F12,
    120 => NumLock, 121 => Numpad0, 122 => Numpad1, 123 => Numpad2, 124 => Numpad3,
    125 => Numpad4, 126 => Numpad5, 127 => Numpad6, 128 => Numpad7, 129 => Numpad8,
    130 => Numpad9, 131 => NumpadAdd, 132 => NumpadSubtract, 133 => NumpadMultiply,
    134 => NumpadDivide, 135 => NumpadDecimal, 136 => NumpadEnter, 137 => NumpadComma,
    140 => PrintScreen, 141 => ScrollLock, 142 => Pause,
}
