//! Input injection with XTEST: keys by keysym, committed text as Unicode keysyms, pointer
//! moves clamped to the frame, buttons and wheel notches (buttons 4–7).
//!
//! Never logs what is typed: only counts.

use std::collections::HashMap;
use std::sync::mpsc::SyncSender;

use tsuitate_protocol::{Button, InputEvent, KeyCode};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AutoRepeatMode, ChangeKeyboardControlAux, ConnectionExt as _, Keycode, Keysym, Window,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::keymap::{fallback_keysym, is_printable, Keymap, SHIFT_KEYSYMS};
use super::{char_keysym, Wake};
use crate::frame::CaptureError;

const KEY_PRESS: u8 = 2;
const KEY_RELEASE: u8 = 3;
const BUTTON_PRESS: u8 = 4;
const BUTTON_RELEASE: u8 = 5;
const MOTION_NOTIFY: u8 = 6;

/// Injects viewer input into one display.
pub struct X11Injector {
    conn: RustConnection,
    root: Window,
    width: u16,
    height: u16,
    keymap: Keymap,
    /// Keycodes we pressed for each physical key (released by code, whatever the keysym).
    pressed: HashMap<KeyCode, Keycode>,
    /// Shift keycodes currently held on the user's behalf.
    shift_held: Vec<Keycode>,
    /// When each keycode was last pressed: a keycode is not remapped until Chromium has had
    /// [`ROUND_SETTLE`] to translate its last press.
    last_press: HashMap<Keycode, std::time::Instant>,
    wake: Option<SyncSender<Wake>>,
    /// Events injected (for stats; never the content).
    pub injected: u64,
}

impl std::fmt::Debug for X11Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Injector")
            .field("injected", &self.injected)
            .finish_non_exhaustive()
    }
}

/// How long X clients get to fetch a changed keyboard mapping (see [`X11Injector::settle`]).
const REMAP_SETTLE: std::time::Duration = std::time::Duration::from_millis(40);
/// How long Chromium gets to translate the keys of one text round before their keycodes may be
/// remapped for the next: it looks keycodes up when it handles them, not when they arrive.
const ROUND_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

fn lost<E: std::fmt::Display>(e: E) -> CaptureError {
    CaptureError::Connection(e.to_string())
}

impl X11Injector {
    /// An injector on its own connection; `wake` is told about pointer moves so the capture
    /// loop redraws the cursor.
    pub fn new(conn: RustConnection, wake: Option<SyncSender<Wake>>) -> Result<Self, CaptureError> {
        let screen = conn
            .setup()
            .roots
            .first()
            .ok_or_else(|| CaptureError::Unsupported("no screen".into()))?;
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        conn.xtest_get_version(2, 2)
            .map_err(lost)?
            .reply()
            .map_err(|e| CaptureError::Unsupported(format!("XTEST: {e}")))?;
        let keymap = Keymap::load(&conn)?;
        // Keys repeat at the rate of the user's own PC: the viewers send its repeats as key
        // downs. The X server's own repeat would add to them, and would run a key on for as
        // long as its release does not arrive (a gateway lost mid-keystroke types the letter
        // until the session is resumed).
        conn.change_keyboard_control(
            &ChangeKeyboardControlAux::new().auto_repeat_mode(AutoRepeatMode::OFF),
        )
        .map_err(lost)?
        .check()
        .map_err(|e| CaptureError::Unsupported(format!("keyboard auto-repeat: {e}")))?;
        Ok(X11Injector {
            conn,
            root,
            width,
            height,
            keymap,
            pressed: HashMap::new(),
            shift_held: Vec::new(),
            last_press: HashMap::new(),
            wake,
            injected: 0,
        })
    }

    /// Clamp pointer moves to `width`×`height` from now on (the session was resized).
    pub fn set_size(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
    }

    /// Inject a batch and flush it to the server.
    pub fn apply(&mut self, events: &[InputEvent]) -> Result<(), CaptureError> {
        let mut moved = false;
        for ev in events {
            match ev {
                InputEvent::Key {
                    down, code, keysym, ..
                } => self.key(*down, *code, *keysym)?,
                InputEvent::Text(text) => self.text(text)?,
                InputEvent::PointerMove { x, y } => {
                    self.motion(*x, *y)?;
                    moved = true;
                }
                InputEvent::Button { down, button } => {
                    let detail = match button {
                        Button::Left => 1,
                        Button::Middle => 2,
                        Button::Right => 3,
                    };
                    self.fake(if *down { BUTTON_PRESS } else { BUTTON_RELEASE }, detail)?;
                }
                InputEvent::Wheel { dx, dy } => self.wheel(*dx, *dy)?,
            }
            self.injected += 1;
        }
        self.conn.flush().map_err(lost)?;
        if moved {
            if let Some(w) = &self.wake {
                let _ = w.try_send(Wake::Change);
            }
        }
        Ok(())
    }

    fn fake(&mut self, kind: u8, detail: u8) -> Result<(), CaptureError> {
        if kind == KEY_PRESS {
            self.last_press.insert(detail, std::time::Instant::now());
        }
        self.conn
            .xtest_fake_input(kind, detail, 0, self.root, 0, 0, 0)
            .map_err(lost)?;
        Ok(())
    }

    fn motion(&self, x: u16, y: u16) -> Result<(), CaptureError> {
        // Coordinates outside the frame are clamped to its edge.
        let x = x.min(self.width.saturating_sub(1)) as i16;
        let y = y.min(self.height.saturating_sub(1)) as i16;
        self.conn
            .xtest_fake_input(MOTION_NOTIFY, 0, 0, self.root, x, y, 0)
            .map_err(lost)?;
        Ok(())
    }

    fn wheel(&mut self, dx: i16, dy: i16) -> Result<(), CaptureError> {
        // X11 wheel buttons: 4 up, 5 down, 6 left, 7 right; one click per notch.
        for (delta, neg, pos) in [(dy, 4u8, 5u8), (dx, 6, 7)] {
            let button = if delta < 0 { neg } else { pos };
            for _ in 0..delta.unsigned_abs() {
                self.fake(BUTTON_PRESS, button)?;
                self.fake(BUTTON_RELEASE, button)?;
            }
        }
        Ok(())
    }

    /// Where `keysym` is, remapping a spare keycode when the layout lacks it. The third value
    /// says whether a keycode was remapped (then [`X11Injector::settle`] must run before the
    /// press).
    fn place(&mut self, keysym: Keysym) -> Result<Option<(Keycode, u8, bool)>, CaptureError> {
        if let Some(p) = self.keymap.find(keysym) {
            return Ok(Some((p.keycode, p.level, false)));
        }
        let Some(next) = self.keymap.next_spare() else {
            return Ok(None);
        };
        if let Some(since) = self.last_press.get(&next).map(|t| t.elapsed()) {
            if since < ROUND_SETTLE {
                self.conn.sync().map_err(lost)?;
                std::thread::sleep(ROUND_SETTLE - since);
            }
        }
        let Some((keycode, row)) = self.keymap.assign_spare(keysym) else {
            return Ok(None);
        };
        let per = self.keymap.per_keycode() as u8;
        self.conn
            .change_keyboard_mapping(1, keycode, per, &row)
            .map_err(lost)?;
        Ok(Some((keycode, 0, true)))
    }

    /// Let the X clients catch up with remapped keycodes. The server applies the mapping at
    /// once (`sync`), but Chromium fetches the new keymap asynchronously after MappingNotify:
    /// a key pressed before it has done so types the keycode's previous symbol (情報 typed
    /// earlier turned a later 接 into 報).
    fn settle(&self) -> Result<(), CaptureError> {
        self.conn.sync().map_err(lost)?;
        std::thread::sleep(REMAP_SETTLE);
        Ok(())
    }

    fn key(&mut self, down: bool, code: KeyCode, keysym: Keysym) -> Result<(), CaptureError> {
        if down && self.pressed.contains_key(&code) {
            // A repeat from the viewer (its PC's auto-repeat): with the server's repeat off, a
            // second press of a held key would be dropped, so it is released and pressed again.
            self.key(false, code, keysym)?;
        }
        if !down {
            if let Some(kc) = self.pressed.remove(&code) {
                self.shift_held.retain(|&k| k != kc);
                self.fake(KEY_RELEASE, kc)?;
            }
            return Ok(());
        }
        let keysym = if keysym == 0 {
            match fallback_keysym(code) {
                Some(k) => k,
                None => return Ok(()),
            }
        } else {
            keysym
        };
        let Some((kc, level, remapped)) = self.place(keysym)? else {
            return Ok(());
        };
        if remapped {
            self.settle()?;
        }
        self.pressed.insert(code, kc);
        if SHIFT_KEYSYMS.contains(&keysym) {
            self.shift_held.push(kc);
            return self.fake(KEY_PRESS, kc);
        }
        if is_printable(keysym) {
            self.press_at_level(kc, level)
        } else {
            self.fake(KEY_PRESS, kc)
        }
    }

    /// Press `kc` with Shift in the state `level` needs, restoring the user's Shift after.
    fn press_at_level(&mut self, kc: Keycode, level: u8) -> Result<(), CaptureError> {
        let user_shift = !self.shift_held.is_empty();
        let want_shift = level == 1;
        if want_shift == user_shift {
            return self.fake(KEY_PRESS, kc);
        }
        if want_shift {
            let shift = self.keymap.find(SHIFT_KEYSYMS[0]).map(|p| p.keycode);
            if let Some(s) = shift {
                self.fake(KEY_PRESS, s)?;
            }
            self.fake(KEY_PRESS, kc)?;
            if let Some(s) = shift {
                self.fake(KEY_RELEASE, s)?;
            }
        } else {
            let held = self.shift_held.clone();
            for &s in &held {
                self.fake(KEY_RELEASE, s)?;
            }
            self.fake(KEY_PRESS, kc)?;
            for &s in &held {
                self.fake(KEY_PRESS, s)?;
            }
        }
        Ok(())
    }

    /// Type committed text in rounds: map every character of a round first (never remapping
    /// a keycode the round already relies on), let the clients catch up once, then type the
    /// round. A round ends when the next remap would take a keycode in use by the round.
    fn text(&mut self, text: &str) -> Result<(), CaptureError> {
        let keysyms: Vec<Keysym> = text.chars().map(char_keysym).collect();
        let mut rest = keysyms.as_slice();
        while !rest.is_empty() {
            let mut round: Vec<(Keycode, u8)> = Vec::new();
            let mut remapped = false;
            for &keysym in rest {
                let in_use = |kc: Keycode| round.iter().any(|(k, _)| *k == kc);
                if self.keymap.find(keysym).is_none()
                    && self.keymap.next_spare().is_some_and(in_use)
                {
                    break;
                }
                match self.place(keysym)? {
                    Some((kc, level, r)) => {
                        remapped |= r;
                        round.push((kc, level));
                    }
                    // No spare keycode at all: the character cannot be typed; skip it.
                    None => round.push((0, 0)),
                }
            }
            if remapped {
                self.settle()?;
            }
            for &(kc, level) in &round {
                if kc != 0 {
                    self.press_at_level(kc, level)?;
                    self.fake(KEY_RELEASE, kc)?;
                }
            }
            rest = &rest[round.len()..];
        }
        Ok(())
    }

    /// Release every key we hold (session end, viewer reconnect).
    pub fn release_all(&mut self) -> Result<(), CaptureError> {
        let held: Vec<Keycode> = self.pressed.drain().map(|(_, k)| k).collect();
        self.shift_held.clear();
        for kc in held {
            self.fake(KEY_RELEASE, kc)?;
        }
        self.conn.flush().map_err(lost)?;
        Ok(())
    }
}
