//! Messages from the web viewer's page on its `input` data channel (docs/viewer.md, "The page's
//! data channel"): JSON objects such as `{"t":"key","down":true,"code":"KeyA","key":"a","mods":0}`.
//! Feature `page` (the web viewer and the fuzz target use it).
//!
//! The page is LGWAN-side but still untrusted input to a boundary path: every message is
//! decoded into the protocol's closed sets (W3C `code`, X11 keysym, modifier bits, committed
//! text without control characters, a pointer inside the picture, bounded wheel notches) or
//! refused. A refused message ends that browser's session; nothing malformed ever reaches the
//! gateway.

use serde::Deserialize;
use thiserror::Error;

use crate::input::{keysym_valid, text_valid, Button, InputEvent, Modifiers};
use crate::keycode::KeyCode;
use crate::keysym::key_value_keysym;
use crate::limits::{Limits, MAX_WHEEL_DELTA};

/// The largest message the page may send, in bytes (a `text` of 64 characters of 4 bytes
/// each, escaped, fits well within it).
pub const MAX_PAGE_MESSAGE: usize = 1024;
/// The longest `key` value accepted (W3C key names are short).
const MAX_KEY_NAME: usize = 32;

/// A decoded, checked page message.
#[derive(Debug, Clone, PartialEq)]
pub enum PageMessage {
    /// A keyboard or pointer event for the remote browser.
    Input(InputEvent),
    /// The viewer area changed: ask for a new remote size.
    Resize { width: u16, height: u16 },
    /// Clock probe: answered with the gateway clock (never forwarded).
    Ping { id: u32, page_ms: f64 },
    /// Latency measured in the page since its last report.
    Latency {
        frames: u32,
        p50_us: u32,
        p95_us: u32,
    },
    /// The user pressed "log out".
    Logout,
}

/// Why a page message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PageError {
    /// Larger than [`MAX_PAGE_MESSAGE`].
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not one of the message shapes (bad JSON, unknown type or field, wrong types).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A well-formed message with a value outside its set or range.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
}

#[derive(Deserialize)]
#[serde(tag = "t", rename_all = "lowercase", deny_unknown_fields)]
enum Wire {
    Key {
        down: bool,
        code: String,
        key: String,
        mods: u8,
    },
    Text {
        text: String,
    },
    Move {
        x: u16,
        y: u16,
    },
    Button {
        down: bool,
        button: u8,
    },
    Wheel {
        dx: i16,
        dy: i16,
    },
    Resize {
        w: u16,
        h: u16,
    },
    Ping {
        id: u32,
        page_ms: f64,
    },
    Latency {
        frames: u32,
        p50_us: u32,
        p95_us: u32,
    },
    Logout {},
}

/// Decode one page message. `picture` is the current remote size (pointer positions must lie
/// inside it); `limits` bounds text and sizes as the protocol does.
pub fn decode(
    bytes: &[u8],
    picture: (u16, u16),
    limits: &Limits,
) -> Result<PageMessage, PageError> {
    if bytes.len() > MAX_PAGE_MESSAGE {
        return Err(PageError::TooLarge(bytes.len()));
    }
    // serde's messages can quote the input (typed text): keep only where and what kind.
    let wire: Wire = serde_json::from_slice(bytes).map_err(|e| {
        PageError::Malformed(format!("{:?} error at column {}", e.classify(), e.column()))
    })?;
    Ok(match wire {
        Wire::Key {
            down,
            code,
            key,
            mods,
        } => {
            let code = KeyCode::from_name(&code).ok_or(PageError::OutOfRange("key code"))?;
            if key.len() > MAX_KEY_NAME {
                return Err(PageError::OutOfRange("key value"));
            }
            let keysym = key_value_keysym(&key);
            if !keysym_valid(keysym) {
                return Err(PageError::OutOfRange("keysym"));
            }
            let modifiers = Modifiers::from_bits(mods).ok_or(PageError::OutOfRange("modifiers"))?;
            PageMessage::Input(InputEvent::Key {
                down,
                code,
                keysym,
                modifiers,
            })
        }
        Wire::Text { text } => {
            let chars = text.chars().count();
            if chars == 0 || chars > limits.max_text_chars || !text_valid(&text) {
                return Err(PageError::OutOfRange("text"));
            }
            PageMessage::Input(InputEvent::Text(text))
        }
        Wire::Move { x, y } => {
            if x >= picture.0 || y >= picture.1 {
                return Err(PageError::OutOfRange("pointer position"));
            }
            PageMessage::Input(InputEvent::PointerMove { x, y })
        }
        Wire::Button { down, button } => {
            // DOM numbering: 0 primary, 1 middle, 2 secondary.
            let button = match button {
                0 => Button::Left,
                1 => Button::Middle,
                2 => Button::Right,
                _ => return Err(PageError::OutOfRange("button")),
            };
            PageMessage::Input(InputEvent::Button { down, button })
        }
        Wire::Wheel { dx, dy } => {
            let ok = |v: i16| (-MAX_WHEEL_DELTA..=MAX_WHEEL_DELTA).contains(&v);
            if !ok(dx) || !ok(dy) || (dx == 0 && dy == 0) {
                return Err(PageError::OutOfRange("wheel"));
            }
            PageMessage::Input(InputEvent::Wheel { dx, dy })
        }
        Wire::Resize { w, h } => {
            if !limits.dimensions_ok(w, h) {
                return Err(PageError::OutOfRange("size"));
            }
            PageMessage::Resize {
                width: w,
                height: h,
            }
        }
        Wire::Ping { id, page_ms } => {
            if !page_ms.is_finite() || page_ms < 0.0 {
                return Err(PageError::OutOfRange("page clock"));
            }
            PageMessage::Ping { id, page_ms }
        }
        Wire::Latency {
            frames,
            p50_us,
            p95_us,
        } => {
            if frames == 0 || p50_us > p95_us {
                return Err(PageError::OutOfRange("latency report"));
            }
            PageMessage::Latency {
                frames,
                p50_us,
                p95_us,
            }
        }
        Wire::Logout {} => PageMessage::Logout,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<PageMessage, PageError> {
        decode(s.as_bytes(), (1280, 720), &Limits::default())
    }

    #[test]
    fn keys_map_to_code_and_keysym() {
        let m = d(r#"{"t":"key","down":true,"code":"KeyA","key":"a","mods":0}"#).unwrap();
        assert_eq!(
            m,
            PageMessage::Input(InputEvent::Key {
                down: true,
                code: KeyCode::KeyA,
                keysym: u32::from('a'),
                modifiers: Modifiers::default()
            })
        );
        let m = d(r#"{"t":"key","down":false,"code":"Enter","key":"Enter","mods":1}"#).unwrap();
        assert!(matches!(
            m,
            PageMessage::Input(InputEvent::Key { keysym: 0xff0d, .. })
        ));
        // JIS keys: ¥ on IntlYen is a Latin-1 keysym, 変換 is Henkan.
        let m = d(r#"{"t":"key","down":true,"code":"IntlYen","key":"¥","mods":0}"#).unwrap();
        assert!(matches!(
            m,
            PageMessage::Input(InputEvent::Key {
                code: KeyCode::IntlYen,
                keysym: 0xa5,
                ..
            })
        ));
        let m = d(r#"{"t":"key","down":true,"code":"Convert","key":"Convert","mods":0}"#).unwrap();
        assert!(matches!(
            m,
            PageMessage::Input(InputEvent::Key { keysym: 0xff23, .. })
        ));
        // A key value the browser cannot name carries no keysym, but is still a key.
        let m = d(r#"{"t":"key","down":true,"code":"KeyA","key":"Process","mods":0}"#).unwrap();
        assert!(matches!(
            m,
            PageMessage::Input(InputEvent::Key { keysym: 0, .. })
        ));
    }

    #[test]
    fn text_and_pointer() {
        assert_eq!(
            d(r#"{"t":"text","text":"日本語"}"#).unwrap(),
            PageMessage::Input(InputEvent::Text("日本語".into()))
        );
        assert_eq!(
            d(r#"{"t":"move","x":1279,"y":0}"#).unwrap(),
            PageMessage::Input(InputEvent::PointerMove { x: 1279, y: 0 })
        );
        assert_eq!(
            d(r#"{"t":"button","down":true,"button":2}"#).unwrap(),
            PageMessage::Input(InputEvent::Button {
                down: true,
                button: Button::Right
            })
        );
        assert_eq!(d(r#"{"t":"logout"}"#).unwrap(), PageMessage::Logout);
    }

    #[test]
    fn refuses_what_is_outside_the_sets() {
        let bad = [
            r#"{"t":"key","down":true,"code":"NotAKey","key":"a","mods":0}"#,
            r#"{"t":"key","down":true,"code":"KeyA","key":"a","mods":16}"#,
            r#"{"t":"key","down":true,"code":"KeyA","key":"ThisIsNotAKeyNameButAVeryLongOnes","mods":0}"#,
            r#"{"t":"text","text":"a\nb"}"#,
            r#"{"t":"text","text":""}"#,
            r#"{"t":"move","x":1280,"y":0}"#,
            r#"{"t":"move","x":-1,"y":0}"#,
            r#"{"t":"button","down":true,"button":3}"#,
            r#"{"t":"wheel","dx":0,"dy":121}"#,
            r#"{"t":"wheel","dx":0,"dy":0}"#,
            r#"{"t":"resize","w":10,"h":10}"#,
            r#"{"t":"latency","frames":0,"p50_us":1,"p95_us":2}"#,
            r#"{"t":"clipboard","text":"x"}"#,
            r#"{"t":"text","text":"x","extra":1}"#,
            r#"{"t":"key"}"#,
            "not json",
            "",
        ];
        for b in bad {
            assert!(d(b).is_err(), "accepted {b}");
        }
        let long = format!(r#"{{"t":"text","text":"{}"}}"#, "あ".repeat(65));
        assert_eq!(d(&long), Err(PageError::OutOfRange("text")));
        let huge = format!(r#"{{"t":"text","text":"{}"}}"#, "a".repeat(2000));
        assert!(matches!(d(&huge), Err(PageError::TooLarge(_))));
    }
}
