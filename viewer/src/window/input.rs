//! winit keyboard, IME and pointer events → protocol input events, batched per event-loop turn.
//!
//! Keys carry the physical key (winit `physical_key`, named like W3C `code`) and the keysym of the
//! logical key (what the user's layout produced), so JIS and US keyboards both work. IME commits
//! are sent as committed text.

use std::collections::VecDeque;

use tsuitate_protocol::{keysym_valid, Button, InputEvent, KeyCode, Modifiers, MAX_WHEEL_DELTA};
use winit::event::{ElementState, KeyEvent, MouseButton, MouseScrollDelta};
use winit::keyboard::{Key, ModifiersState, PhysicalKey};

use crate::keys::code_from_winit_name;
use crate::script::text_chunks;
use tsuitate_protocol::keysym::key_value_keysym;

/// Pixels of smooth scrolling that make one wheel notch.
const PIXELS_PER_NOTCH: f64 = 50.0;
/// Most events held while the command queue is full; beyond it the oldest pointer moves go.
const MAX_PENDING: usize = 1024;

/// Input waiting to be sent, and the state needed to translate it.
#[derive(Debug, Default)]
pub struct InputState {
    pending: VecDeque<InputEvent>,
    modifiers: u8,
    held: Vec<(KeyCode, u32)>,
    scroll_x: f64,
    scroll_y: f64,
}

/// The protocol modifier bits for winit's modifier state.
pub fn modifier_bits(m: ModifiersState) -> u8 {
    let mut bits = 0;
    if m.shift_key() {
        bits |= Modifiers::SHIFT;
    }
    if m.control_key() {
        bits |= Modifiers::CTRL;
    }
    if m.alt_key() {
        bits |= Modifiers::ALT;
    }
    if m.super_key() {
        bits |= Modifiers::META;
    }
    bits
}

/// The protocol key code of a winit physical key.
pub fn physical_code(key: &PhysicalKey) -> KeyCode {
    match key {
        PhysicalKey::Code(c) => code_from_winit_name(&format!("{c:?}")),
        PhysicalKey::Unidentified(_) => KeyCode::Unidentified,
    }
}

/// The X11 keysym of a winit logical key (0 when there is none).
pub fn logical_keysym(key: &Key) -> u32 {
    // winit names its logical keys with W3C key values: the protocol's one mapping applies.
    let sym = match key {
        Key::Named(n) => key_value_keysym(&format!("{n:?}")),
        Key::Character(s) => key_value_keysym(s),
        _ => 0,
    };
    if keysym_valid(sym) {
        sym
    } else {
        0
    }
}

impl InputState {
    /// Modifier state changed.
    pub fn set_modifiers(&mut self, m: ModifiersState) {
        self.modifiers = modifier_bits(m);
    }

    /// A key event.
    pub fn key(&mut self, event: &KeyEvent) {
        let code = physical_code(&event.physical_key);
        let keysym = logical_keysym(&event.logical_key);
        if code == KeyCode::Unidentified && keysym == 0 {
            return;
        }
        let down = event.state == ElementState::Pressed;
        if down {
            if !self.held.contains(&(code, keysym)) {
                self.held.push((code, keysym));
            }
        } else {
            self.held.retain(|&(c, _)| c != code);
        }
        self.push(InputEvent::Key {
            down,
            code,
            keysym,
            modifiers: Modifiers::from_bits(self.modifiers).unwrap_or_default(),
        });
    }

    /// Focus left the window: release every key we reported as held, so none sticks remotely.
    pub fn release_all(&mut self) {
        for (code, keysym) in std::mem::take(&mut self.held) {
            self.push(InputEvent::Key {
                down: false,
                code,
                keysym,
                modifiers: Modifiers::default(),
            });
        }
        self.modifiers = 0;
    }

    /// IME-committed text.
    pub fn commit(&mut self, text: &str) {
        let clean: String = text.chars().filter(|c| !c.is_control()).collect();
        for chunk in text_chunks(&clean) {
            self.push(InputEvent::Text(chunk));
        }
    }

    /// Pointer moved to frame coordinates. Consecutive moves coalesce.
    pub fn pointer(&mut self, x: u16, y: u16) {
        if let Some(InputEvent::PointerMove { .. }) = self.pending.back() {
            self.pending.pop_back();
        }
        self.push(InputEvent::PointerMove { x, y });
    }

    /// A mouse button.
    pub fn button(&mut self, state: ElementState, button: MouseButton) {
        let button = match button {
            MouseButton::Left => Button::Left,
            MouseButton::Right => Button::Right,
            MouseButton::Middle => Button::Middle,
            _ => return,
        };
        self.push(InputEvent::Button {
            down: state == ElementState::Pressed,
            button,
        });
    }

    /// Wheel: lines are notches; pixels accumulate. winit's +y scrolls up, ours down.
    pub fn wheel(&mut self, delta: MouseScrollDelta) {
        let (dx, dy) = match delta {
            MouseScrollDelta::LineDelta(x, y) => (f64::from(x), f64::from(-y)),
            MouseScrollDelta::PixelDelta(p) => {
                self.scroll_x += p.x / PIXELS_PER_NOTCH;
                self.scroll_y -= p.y / PIXELS_PER_NOTCH;
                let (x, y) = (self.scroll_x.trunc(), self.scroll_y.trunc());
                self.scroll_x -= x;
                self.scroll_y -= y;
                (x, y)
            }
        };
        let max = f64::from(MAX_WHEEL_DELTA);
        let (dx, dy) = (
            dx.round().clamp(-max, max) as i16,
            dy.round().clamp(-max, max) as i16,
        );
        if dx != 0 || dy != 0 {
            self.push(InputEvent::Wheel { dx, dy });
        }
    }

    fn push(&mut self, e: InputEvent) {
        if self.pending.len() >= MAX_PENDING {
            if let Some(i) = self
                .pending
                .iter()
                .position(|e| matches!(e, InputEvent::PointerMove { .. }))
            {
                self.pending.remove(i);
            } else {
                self.pending.pop_front();
            }
        }
        self.pending.push_back(e);
    }

    /// Take up to `max` events to send.
    pub fn take_batch(&mut self, max: usize) -> Vec<InputEvent> {
        let n = self.pending.len().min(max);
        self.pending.drain(..n).collect()
    }

    /// Put a batch back at the front (the queue was full).
    pub fn put_back(&mut self, batch: Vec<InputEvent>) {
        for e in batch.into_iter().rev() {
            self.pending.push_front(e);
        }
    }

    /// Whether anything waits.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use winit::keyboard::KeyCode as WKey;
    use winit::keyboard::NamedKey;

    #[test]
    fn winit_keys_map_to_codes_and_keysyms() {
        assert_eq!(physical_code(&PhysicalKey::Code(WKey::KeyA)), KeyCode::KeyA);
        assert_eq!(
            physical_code(&PhysicalKey::Code(WKey::SuperLeft)),
            KeyCode::MetaLeft
        );
        assert_eq!(
            physical_code(&PhysicalKey::Code(WKey::IntlYen)),
            KeyCode::IntlYen
        );
        assert_eq!(
            physical_code(&PhysicalKey::Code(WKey::Convert)),
            KeyCode::Convert
        );
        assert_eq!(logical_keysym(&Key::Named(NamedKey::Enter)), 0xff0d);
        assert_eq!(logical_keysym(&Key::Named(NamedKey::Space)), 0x20);
        assert_eq!(logical_keysym(&Key::Named(NamedKey::Shift)), 0xffe1);
        assert_eq!(logical_keysym(&Key::Character("a".into())), 0x61);
        assert_eq!(logical_keysym(&Key::Character("¥".into())), 0xa5);
        assert_eq!(logical_keysym(&Key::Character("ー".into())), 0x0100_30fc);
        assert_eq!(logical_keysym(&Key::Character("ab".into())), 0);
    }

    #[test]
    fn modifiers_and_moves_coalesce() {
        assert_eq!(
            modifier_bits(ModifiersState::SHIFT | ModifiersState::CONTROL),
            Modifiers::SHIFT | Modifiers::CTRL
        );
        let mut s = InputState::default();
        s.pointer(1, 1);
        s.pointer(2, 2);
        s.button(ElementState::Pressed, MouseButton::Left);
        s.pointer(3, 3);
        assert_eq!(
            s.take_batch(64),
            vec![
                InputEvent::PointerMove { x: 2, y: 2 },
                InputEvent::Button {
                    down: true,
                    button: Button::Left
                },
                InputEvent::PointerMove { x: 3, y: 3 },
            ]
        );
    }

    #[test]
    fn wheel_and_commit() {
        let mut s = InputState::default();
        s.wheel(MouseScrollDelta::LineDelta(0.0, 1.0));
        s.wheel(MouseScrollDelta::PixelDelta(
            winit::dpi::PhysicalPosition::new(0.0, -30.0),
        ));
        s.wheel(MouseScrollDelta::PixelDelta(
            winit::dpi::PhysicalPosition::new(0.0, -30.0),
        ));
        s.commit("日本\u{7}語");
        assert_eq!(
            s.take_batch(64),
            vec![
                InputEvent::Wheel { dx: 0, dy: -1 },
                InputEvent::Wheel { dx: 0, dy: 1 },
                InputEvent::Text("日本語".into()),
            ]
        );
    }
}
