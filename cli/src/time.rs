//! Calendar dates for what the binaries show people: audit timestamps, certificate expiry,
//! the watermark's clock. UTC arithmetic only (Howard Hinnant's civil-date algorithms); a time
//! zone is an offset the caller adds.

use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–59.
    pub second: u32,
}

impl Civil {
    /// The date and time `secs` seconds after 1970-01-01T00:00:00 (negative: before).
    pub fn from_unix(secs: i64) -> Civil {
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        // Every value below is in range by construction (rem < 86 400, 1 ≤ day ≤ 31, …).
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u32,
            day: day as u32,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// `YYYY-MM-DD HH:MM` (what a person reads on a screen).
    pub fn minutes(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute
        )
    }
}

/// Days since 1970-01-01 of a calendar date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the UNIX epoch (0 for a clock before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let c = Civil::from_unix(unix_secs(t));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        assert_eq!(
            Civil::from_unix(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // 2026-11-26T22:52:05Z
        let c = Civil::from_unix(1_795_733_525);
        assert_eq!(c.minutes(), "2026-11-26 22:52");
        assert_eq!(days_from_civil(2026, 11, 26), 1_795_733_525 / 86_400);
        // A leap day and the day after.
        assert_eq!(Civil::from_unix(951_782_400).minutes(), "2000-02-29 00:00");
        assert_eq!(days_from_civil(2000, 3, 1), 951_782_400 / 86_400 + 1);
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_733_525_042)),
            "2026-11-26T22:52:05.042Z"
        );
    }

    #[test]
    fn dates_and_days_agree_over_centuries() {
        for days in (-800_000i64..800_000).step_by(997) {
            let c = Civil::from_unix(days * 86_400 + 3_661);
            assert_eq!(days_from_civil(c.year, c.month, c.day), days);
            assert_eq!((c.hour, c.minute, c.second), (1, 1, 1));
        }
    }
}
