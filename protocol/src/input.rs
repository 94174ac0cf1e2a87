//! Input events: the only payload that may cross toward the Internet zone (docs/protocol.md §4).

use crate::codec::{put_str, Reader};
use crate::error::WireError;
use crate::keycode::KeyCode;
use crate::limits::{Limits, MAX_WHEEL_DELTA};

/// Modifier keys held during a key event (docs/protocol.md §4.3). Only the low four bits exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Modifiers(u8);

impl Modifiers {
    /// Shift.
    pub const SHIFT: u8 = 1;
    /// Control.
    pub const CTRL: u8 = 2;
    /// Alt.
    pub const ALT: u8 = 4;
    /// Meta (Windows / Super).
    pub const META: u8 = 8;
    const ALL: u8 = 0x0f;

    /// Modifiers from bits; unknown bits are an error.
    pub fn from_bits(bits: u8) -> Option<Modifiers> {
        (bits & !Self::ALL == 0).then_some(Modifiers(bits))
    }
    /// The bits.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// Whether every bit of `flag` is set.
    pub fn contains(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

/// A pointer button (docs/protocol.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Button {
    /// Primary button.
    Left,
    /// Middle button / wheel click.
    Middle,
    /// Secondary button.
    Right,
}

impl Button {
    fn to_u8(self) -> u8 {
        match self {
            Button::Left => 1,
            Button::Middle => 2,
            Button::Right => 3,
        }
    }
    fn from_u8(v: u8) -> Option<Button> {
        match v {
            1 => Some(Button::Left),
            2 => Some(Button::Middle),
            3 => Some(Button::Right),
            _ => None,
        }
    }
}

/// Whether `keysym` is in the X11 keysym ranges we accept (docs/protocol.md §4.3): none (0),
/// Latin-1 and the legacy sets (0x20–0x1fff), function/ISO keys (0xfe00–0xffff) and Unicode
/// keysyms (0x0100_0000 + code point).
pub fn keysym_valid(keysym: u32) -> bool {
    matches!(keysym, 0 | 0x20..=0x1fff | 0xfe00..=0xffff | 0x0100_0100..=0x0110_ffff)
}

/// Whether committed text is acceptable: no control characters (docs/protocol.md §4.4).
pub fn text_valid(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// One keyboard or pointer event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InputEvent {
    /// A key changed state. `code` is the physical key, `keysym` the X11 keysym of the key
    /// value the user's layout produced (0 when none).
    Key {
        /// Pressed (true) or released.
        down: bool,
        /// Physical key.
        code: KeyCode,
        /// X11 keysym of the logical key value.
        keysym: u32,
        /// Modifiers held.
        modifiers: Modifiers,
    },
    /// Text committed by the viewer's IME, typed into the focused field.
    Text(String),
    /// Absolute pointer position in frame coordinates.
    PointerMove {
        /// Column.
        x: u16,
        /// Row.
        y: u16,
    },
    /// A pointer button changed state at the current position.
    Button {
        /// Pressed (true) or released.
        down: bool,
        /// Which button.
        button: Button,
    },
    /// Wheel notches; positive `dy` scrolls down, positive `dx` scrolls right.
    Wheel {
        /// Horizontal notches.
        dx: i16,
        /// Vertical notches.
        dy: i16,
    },
}

const TAG_KEY_DOWN: u8 = 1;
const TAG_KEY_UP: u8 = 2;
const TAG_TEXT: u8 = 3;
const TAG_MOVE: u8 = 4;
const TAG_BUTTON_DOWN: u8 = 5;
const TAG_BUTTON_UP: u8 = 6;
const TAG_WHEEL: u8 = 7;

impl InputEvent {
    /// Append the event's encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            InputEvent::Key {
                down,
                code,
                keysym,
                modifiers,
            } => {
                out.push(if *down { TAG_KEY_DOWN } else { TAG_KEY_UP });
                out.extend_from_slice(&code.to_u16().to_be_bytes());
                out.extend_from_slice(&keysym.to_be_bytes());
                out.push(modifiers.bits());
            }
            InputEvent::Text(text) => {
                out.push(TAG_TEXT);
                put_str(out, text);
            }
            InputEvent::PointerMove { x, y } => {
                out.push(TAG_MOVE);
                out.extend_from_slice(&x.to_be_bytes());
                out.extend_from_slice(&y.to_be_bytes());
            }
            InputEvent::Button { down, button } => {
                out.push(if *down {
                    TAG_BUTTON_DOWN
                } else {
                    TAG_BUTTON_UP
                });
                out.push(button.to_u8());
            }
            InputEvent::Wheel { dx, dy } => {
                out.push(TAG_WHEEL);
                out.extend_from_slice(&dx.to_be_bytes());
                out.extend_from_slice(&dy.to_be_bytes());
            }
        }
    }

    /// Parse one event, enforcing the structural rules of docs/protocol.md §4.
    pub fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<InputEvent, WireError> {
        let tag = r.u8("input.tag")?;
        Ok(match tag {
            TAG_KEY_DOWN | TAG_KEY_UP => {
                let raw = r.u16("key.code")?;
                let code = KeyCode::from_u16(raw).ok_or(WireError::InvalidValue {
                    field: "key.code",
                    value: raw.into(),
                })?;
                let keysym = r.u32("key.keysym")?;
                if !keysym_valid(keysym) {
                    return Err(WireError::InvalidValue {
                        field: "key.keysym",
                        value: keysym.into(),
                    });
                }
                let bits = r.u8("key.modifiers")?;
                let modifiers = Modifiers::from_bits(bits).ok_or(WireError::InvalidValue {
                    field: "key.modifiers",
                    value: bits.into(),
                })?;
                InputEvent::Key {
                    down: tag == TAG_KEY_DOWN,
                    code,
                    keysym,
                    modifiers,
                }
            }
            TAG_TEXT => {
                // §4.4: at most max_text_chars characters, UTF-8, no control characters.
                let max_bytes = limits.max_text_chars.saturating_mul(4).min(255);
                let text = r.str("text", max_bytes)?;
                let chars = text.chars().count();
                if chars == 0 || chars > limits.max_text_chars {
                    return Err(WireError::TooLong {
                        field: "text",
                        len: chars,
                        max: limits.max_text_chars,
                    });
                }
                if !text_valid(text) {
                    return Err(WireError::InvalidValue {
                        field: "text",
                        value: 0,
                    });
                }
                InputEvent::Text(text.to_owned())
            }
            TAG_MOVE => InputEvent::PointerMove {
                x: r.u16("move.x")?,
                y: r.u16("move.y")?,
            },
            TAG_BUTTON_DOWN | TAG_BUTTON_UP => {
                let raw = r.u8("button")?;
                let button = Button::from_u8(raw).ok_or(WireError::InvalidValue {
                    field: "button",
                    value: raw.into(),
                })?;
                InputEvent::Button {
                    down: tag == TAG_BUTTON_DOWN,
                    button,
                }
            }
            TAG_WHEEL => {
                let dx = r.i16("wheel.dx")?;
                let dy = r.i16("wheel.dy")?;
                for (field, v) in [("wheel.dx", dx), ("wheel.dy", dy)] {
                    if v.unsigned_abs() > MAX_WHEEL_DELTA.unsigned_abs() {
                        return Err(WireError::InvalidValue {
                            field,
                            value: v.unsigned_abs().into(),
                        });
                    }
                }
                InputEvent::Wheel { dx, dy }
            }
            other => {
                return Err(WireError::InvalidValue {
                    field: "input.tag",
                    value: other.into(),
                })
            }
        })
    }
}

/// Append a batch: a u8 count, then the events.
pub fn encode_batch(events: &[InputEvent], out: &mut Vec<u8>) {
    let n = events.len().min(255);
    out.push(n as u8);
    for e in &events[..n] {
        e.encode(out);
    }
}

/// Parse a batch of 1..=max_events_per_message events (docs/protocol.md §4.1).
pub fn decode_batch(r: &mut Reader<'_>, limits: &Limits) -> Result<Vec<InputEvent>, WireError> {
    let n = usize::from(r.u8("input.count")?);
    if n == 0 || n > limits.max_events_per_message {
        return Err(WireError::TooLong {
            field: "input.count",
            len: n,
            max: limits.max_events_per_message,
        });
    }
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(InputEvent::decode(r, limits)?);
    }
    Ok(events)
}
