//! Session sizes: what the gateway asks for (`Open`, `Resize`) clamped to what the agent
//! serves. Sizes are even (H.264 4:2:0), at least the protocol minimum and at most the
//! agent's `max_width`×`max_height` (the size of every session's Xvfb screen).

use tsuitate_protocol::MIN_DIMENSION;

/// Default largest session size (`max_width`, `max_height` in the config).
pub const DEFAULT_MAX_SIZE: (u16, u16) = (1920, 1080);

/// The largest `max_width`×`max_height` the agent accepts (the protocol's default limits).
pub const LARGEST_MAX_SIZE: (u16, u16) = (3840, 2160);

/// The size a session gets when `requested` is asked for and the screen is `max`: each side
/// rounded down to even and clamped to `MIN_DIMENSION..=max`. Never panics, whatever the
/// input (a `max` below the minimum yields the minimum).
pub fn clamp_size(requested: (u16, u16), max: (u16, u16)) -> (u16, u16) {
    let side = |v: u16, m: u16| {
        let lo = MIN_DIMENSION & !1;
        (v.min(m) & !1).max(lo)
    };
    (side(requested.0, max.0), side(requested.1, max.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_even_and_within_bounds() {
        let max = (1920, 1080);
        assert_eq!(clamp_size((1280, 720), max), (1280, 720));
        assert_eq!(clamp_size((801, 601), max), (800, 600));
        assert_eq!(clamp_size((3840, 2160), max), (1920, 1080));
        assert_eq!(clamp_size((0, 1), max), (64, 64));
        assert_eq!(clamp_size((u16::MAX, u16::MAX), (1921, 1081)), (1920, 1080));
        assert_eq!(clamp_size((500, 500), (10, 10)), (64, 64));
    }
}
