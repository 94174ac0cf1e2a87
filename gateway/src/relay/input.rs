//! Input policy: validation and rate limits for viewer input (sans-IO; time is passed in).
//! docs/protocol.md §4.2: pointer inside the frame, rate limits, counts only in logs.
//!
//! Structure (key codes, keysyms, text length, wheel range) is already enforced by the
//! protocol decoder. Here: pointer coordinates must lie inside the frame, and token buckets
//! bound events/s, key presses/s and text characters/s. Events over a limit are dropped
//! (throttled) and each drop spends the violation budget; when it is spent the viewer is cut
//! off with `RateLimited`. A release (key or button up) of something pressed always passes, so
//! throttling never leaves a key stuck down in the browser.

use std::collections::HashSet;
use std::time::Instant;

use tsuitate_protocol::{Button, InputEvent, KeyCode};

use crate::config::InputConfig;
use crate::error::Violation;

/// A token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilled at `rate` per second.
    pub fn new(now: Instant, rate: f64, capacity: f64) -> Self {
        TokenBucket {
            capacity,
            rate,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Take `n` tokens if there are enough.
    pub fn take(&mut self, now: Instant, n: f64) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// What one input batch became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    /// Events to forward (re-encoded by the caller).
    pub events: Vec<InputEvent>,
    /// Events dropped by a rate limit or the frame bounds.
    pub dropped: u32,
}

/// Resizes forwarded to the agent per second (burst: two seconds). Each one refits the
/// browser windows and restarts the encoder on the agent host, which other sessions share; an
/// honest viewer debounces its window resizes to a few per second at most.
pub const RESIZES_PER_S: u32 = 4;

/// Per-session input policy.
#[derive(Debug)]
pub struct InputPolicy {
    events: TokenBucket,
    resizes: TokenBucket,
    keys: TokenBucket,
    text: TokenBucket,
    wheel: TokenBucket,
    budget: TokenBucket,
    width: u16,
    height: u16,
    keys_down: HashSet<KeyCode>,
    buttons_down: HashSet<Button>,
}

impl InputPolicy {
    /// A policy for a frame of `width`×`height`.
    pub fn new(now: Instant, cfg: &InputConfig, width: u16, height: u16) -> Self {
        let burst = f64::from(cfg.burst_s);
        let bucket = |rate: u32| TokenBucket::new(now, f64::from(rate), f64::from(rate) * burst);
        let budget = f64::from(cfg.violation_budget.max(1));
        InputPolicy {
            events: bucket(cfg.events_per_s),
            resizes: TokenBucket::new(
                now,
                f64::from(RESIZES_PER_S),
                f64::from(RESIZES_PER_S) * 2.0,
            ),
            keys: bucket(cfg.keys_per_s),
            text: bucket(cfg.text_chars_per_s),
            wheel: bucket(cfg.wheel_notches_per_s),
            budget: TokenBucket::new(now, budget / 60.0, budget),
            width,
            height,
            keys_down: HashSet::new(),
            buttons_down: HashSet::new(),
        }
    }

    /// The frame size changed.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
    }

    /// Filter one batch. `Err` means the viewer must be cut off.
    pub fn filter(&mut self, now: Instant, batch: Vec<InputEvent>) -> Result<Filtered, Violation> {
        let mut out = Filtered {
            events: Vec::with_capacity(batch.len()),
            dropped: 0,
        };
        for ev in batch {
            if self.admit(now, &ev) {
                out.events.push(ev);
            } else {
                out.dropped += 1;
                // docs/gateway.md §Input: every dropped event spends the violation budget.
                if !self.budget.take(now, 1.0) {
                    return Err(Violation::RateLimited("input"));
                }
            }
        }
        Ok(out)
    }

    fn admit(&mut self, now: Instant, ev: &InputEvent) -> bool {
        match ev {
            InputEvent::Key {
                down: false, code, ..
            } => self.keys_down.remove(code),
            InputEvent::Button {
                down: false,
                button,
            } => self.buttons_down.remove(button),
            _ if !self.events.take(now, 1.0) => false,
            InputEvent::Key { code, .. } => {
                let ok = self.keys.take(now, 1.0);
                if ok {
                    self.keys_down.insert(*code);
                }
                ok
            }
            InputEvent::Text(t) => self.text.take(now, t.chars().count() as f64),
            InputEvent::PointerMove { x, y } => *x < self.width && *y < self.height,
            InputEvent::Button { button, .. } => {
                self.buttons_down.insert(*button);
                true
            }
            // Charged by notches, not by event: one event may carry 120 of them.
            InputEvent::Wheel { dx, dy } => {
                let notches = u32::from(dx.unsigned_abs()) + u32::from(dy.unsigned_abs());
                self.wheel.take(now, f64::from(notches.max(1)))
            }
        }
    }

    /// A `Resize` from the viewer: it costs one event and one of [`RESIZES_PER_S`].
    /// `Ok(false)`: throttled (dropped); `Err`: the violation budget is spent.
    pub fn admit_control(&mut self, now: Instant) -> Result<bool, Violation> {
        if self.events.take(now, 1.0) && self.resizes.take(now, 1.0) {
            return Ok(true);
        }
        if self.budget.take(now, 1.0) {
            Ok(false)
        } else {
            Err(Violation::RateLimited("resize"))
        }
    }

    /// Releases for everything still held (sent to the agent when a viewer detaches, so no
    /// key or button stays down while nobody watches).
    pub fn release_all(&mut self) -> Vec<InputEvent> {
        let mut out: Vec<InputEvent> = self
            .keys_down
            .drain()
            .map(|code| InputEvent::Key {
                down: false,
                code,
                keysym: 0,
                modifiers: Default::default(),
            })
            .collect();
        out.extend(self.buttons_down.drain().map(|button| InputEvent::Button {
            down: false,
            button,
        }));
        out
    }
}

/// Viewer control messages (`Ping`, `LatencyReport`, `KeyframeRequest`) per second. An honest
/// viewer sends a few every couple of seconds.
pub const CONTROL_PER_S: u32 = 20;

/// Rate limit for viewer messages that are not input: over [`CONTROL_PER_S`] (two seconds of
/// burst) they are dropped, each drop spends the violation budget, and when it is spent the
/// viewer is cut off like an input flood.
#[derive(Debug)]
pub struct ControlLimit {
    messages: TokenBucket,
    budget: TokenBucket,
}

impl ControlLimit {
    /// A limit whose violation budget is the input one.
    pub fn new(now: Instant, cfg: &InputConfig) -> Self {
        let rate = f64::from(CONTROL_PER_S);
        let budget = f64::from(cfg.violation_budget.max(1));
        ControlLimit {
            messages: TokenBucket::new(now, rate, rate * 2.0),
            budget: TokenBucket::new(now, budget / 60.0, budget),
        }
    }

    /// `Ok(true)`: handle the message; `Ok(false)`: drop it; `Err`: cut the viewer off.
    pub fn admit(&mut self, now: Instant) -> Result<bool, Violation> {
        if self.messages.take(now, 1.0) {
            return Ok(true);
        }
        if self.budget.take(now, 1.0) {
            Ok(false)
        } else {
            Err(Violation::RateLimited("control messages"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> InputConfig {
        InputConfig {
            events_per_s: 100,
            keys_per_s: 10,
            text_chars_per_s: 20,
            wheel_notches_per_s: 30,
            burst_s: 1,
            violation_budget: 50,
        }
    }

    fn key(down: bool) -> InputEvent {
        InputEvent::Key {
            down,
            code: KeyCode::from_name("KeyA").unwrap(),
            keysym: 0x61,
            modifiers: Default::default(),
        }
    }

    #[test]
    fn pointer_outside_frame_is_dropped() {
        let t = Instant::now();
        let mut p = InputPolicy::new(t, &cfg(), 640, 480);
        let f = p
            .filter(
                t,
                vec![
                    InputEvent::PointerMove { x: 639, y: 479 },
                    InputEvent::PointerMove { x: 640, y: 0 },
                ],
            )
            .unwrap();
        assert_eq!(f.events.len(), 1);
        assert_eq!(f.dropped, 1);
    }

    #[test]
    fn keys_are_throttled_and_refill_over_time() {
        let t = Instant::now();
        let mut p = InputPolicy::new(t, &cfg(), 640, 480);
        let f = p.filter(t, (0..15).map(|_| key(true)).collect()).unwrap();
        assert_eq!(f.events.len(), 10);
        assert_eq!(f.dropped, 5);
        let f = p
            .filter(t + Duration::from_millis(500), vec![key(true); 10])
            .unwrap();
        assert_eq!(f.events.len(), 5);
    }

    #[test]
    fn release_of_a_pressed_key_always_passes() {
        let t = Instant::now();
        let mut p = InputPolicy::new(t, &cfg(), 640, 480);
        let mut batch: Vec<_> = (0..10).map(|_| key(true)).collect();
        batch.push(key(false));
        batch.push(key(false)); // not pressed any more: dropped
        let f = p.filter(t, batch).unwrap();
        assert_eq!(f.events.len(), 11);
        assert_eq!(f.events.last(), Some(&key(false)));
        assert_eq!(f.dropped, 1);
    }

    #[test]
    fn text_counts_characters() {
        let t = Instant::now();
        let mut p = InputPolicy::new(t, &cfg(), 640, 480);
        let f = p
            .filter(
                t,
                vec![
                    InputEvent::Text("こんにちは世界".into()),
                    InputEvent::Text("あいうえおかきくけこさしすせそ".into()),
                ],
            )
            .unwrap();
        assert_eq!(f.events.len(), 1);
    }

    #[test]
    fn wheel_events_are_charged_by_notches() {
        let t = Instant::now();
        let mut p = InputPolicy::new(t, &cfg(), 640, 480);
        // One event of 120 notches is more than a second's worth (30): dropped.
        let big = InputEvent::Wheel { dx: 0, dy: 120 };
        let f = p.filter(t, vec![big]).unwrap();
        assert_eq!((f.events.len(), f.dropped), (0, 1));
        // Ordinary scrolling (one notch at a time, both directions count) passes up to the rate.
        let one = InputEvent::Wheel { dx: -1, dy: 0 };
        let f = p.filter(t, vec![one.clone(); 40]).unwrap();
        assert_eq!((f.events.len(), f.dropped), (30, 10));
        let f = p
            .filter(t + Duration::from_millis(500), vec![one; 20])
            .unwrap();
        assert_eq!(f.events.len(), 15, "refilled at 30 notches per second");
    }

    #[test]
    fn flood_is_throttled_then_cut_off() {
        let t = Instant::now();
        let mut p = InputPolicy::new(t, &cfg(), 640, 480);
        let mv = InputEvent::PointerMove { x: 1, y: 1 };
        // 100 pass (burst), then 50 drops spend the budget, the 51st drop cuts off.
        let f = p.filter(t, vec![mv.clone(); 150]).unwrap();
        assert_eq!((f.events.len(), f.dropped), (100, 50));
        let e = p.filter(t, vec![mv; 1]).unwrap_err();
        assert_eq!(e, Violation::RateLimited("input"));
    }

    #[test]
    fn control_flood_is_dropped_then_cut_off_and_a_steady_rate_is_not() {
        let t = Instant::now();
        let mut c = ControlLimit::new(t, &cfg());
        let burst = 2 * CONTROL_PER_S as usize;
        let admitted = (0..burst + 50)
            .map(|_| c.admit(t).unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(
            admitted, burst,
            "burst passes, the next 50 spend the budget"
        );
        assert_eq!(c.admit(t), Err(Violation::RateLimited("control messages")));
        let mut c = ControlLimit::new(t, &cfg());
        for i in 0..1000u64 {
            let now = t + Duration::from_millis(i * 100);
            assert_eq!(c.admit(now), Ok(true), "10 per second is fine");
        }
    }

    #[test]
    fn resizes_are_limited_to_a_few_per_second() {
        let t = Instant::now();
        let mut p = InputPolicy::new(t, &cfg(), 640, 480);
        let burst = 2 * RESIZES_PER_S as usize;
        let passed = (0..burst + 20)
            .filter(|_| p.admit_control(t).unwrap())
            .count();
        assert_eq!(passed, burst, "well under events_per_s, still throttled");
        let later = t + Duration::from_millis(1000 / u64::from(RESIZES_PER_S));
        assert_eq!(p.admit_control(later), Ok(true));
    }

    #[test]
    fn release_all_lists_held_keys_and_buttons() {
        let t = Instant::now();
        let mut p = InputPolicy::new(t, &cfg(), 640, 480);
        p.filter(
            t,
            vec![
                key(true),
                InputEvent::Button {
                    down: true,
                    button: Button::Left,
                },
            ],
        )
        .unwrap();
        assert_eq!(p.release_all().len(), 2);
        assert!(p.release_all().is_empty());
    }
}
