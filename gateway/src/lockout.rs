//! Login lockout per user name and per source address (sans-IO; time is passed in).
//!
//! `max_failures` failures within `window` lock the key for `lockout`. A success clears the
//! user's failures (not the address's). The tables are bounded: when full, expired entries are
//! pruned, and if still full the oldest entry is evicted.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::LockoutConfig;

/// Most tracked keys per table.
const MAX_ENTRIES: usize = 100_000;

/// Password checks run at once, gateway-wide. The lockout is consulted after a check slot is
/// taken and the failure recorded before it is given back, so parallel guesses cannot all
/// pass the lockout before the first failure lands: at most `CONCURRENT_CHECKS - 1` guesses
/// beyond the limit. It also bounds argon2's CPU and memory under a login flood.
pub const CONCURRENT_CHECKS: usize = 4;

#[derive(Debug, Clone)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
struct Table<K> {
    max_failures: u32,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(max_failures: u32) -> Self {
        Table {
            max_failures,
            entries: HashMap::new(),
        }
    }

    fn locked(&self, now: Instant, key: &K) -> Option<Duration> {
        let until = self.entries.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, now: Instant, key: &K, window: Duration, lockout: Duration) {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_ENTRIES {
            self.prune(now, window);
        }
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if now.duration_since(e.window_start) > window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= self.max_failures {
            e.locked_until = Some(now + lockout);
            e.failures = 0;
            e.window_start = now;
        }
    }

    fn prune(&mut self, now: Instant, window: Duration) {
        self.entries.retain(|_, e| {
            let locked = e.locked_until.is_some_and(|u| u > now);
            locked || now.duration_since(e.window_start) <= window
        });
        if self.entries.len() >= MAX_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.window_start)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
    }
}

/// The key an address is counted under (failed logins, connections per address): an IPv4
/// address as it is (also when it arrives IPv4-mapped), an IPv6 address by its /64 prefix —
/// one host usually holds a whole /64 and could otherwise rotate through 2^64 addresses.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Lockout state for the viewer listener.
#[derive(Debug)]
pub struct Lockout {
    window: Duration,
    lockout: Duration,
    users: Table<String>,
    addrs: Table<IpAddr>,
}

impl Lockout {
    /// Lockout state from the configuration.
    pub fn new(cfg: &LockoutConfig) -> Self {
        Lockout {
            window: cfg.window,
            lockout: cfg.lockout,
            users: Table::new(cfg.max_failures_per_user),
            addrs: Table::new(cfg.max_failures_per_ip),
        }
    }

    /// `Some(retry_after)` if either the user or the address is locked now.
    pub fn locked(&self, now: Instant, user: &str, ip: IpAddr) -> Option<Duration> {
        let u = self.users.locked(now, &user.to_owned());
        let a = self.addrs.locked(now, &address_key(ip));
        u.max(a)
    }

    /// Record a failed login.
    pub fn fail(&mut self, now: Instant, user: &str, ip: IpAddr) {
        self.users
            .fail(now, &user.to_owned(), self.window, self.lockout);
        self.addrs
            .fail(now, &address_key(ip), self.window, self.lockout);
    }

    /// Record a successful login: the user's failures are forgotten.
    pub fn succeed(&mut self, user: &str) {
        self.users.entries.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LockoutConfig {
        LockoutConfig {
            max_failures_per_user: 3,
            max_failures_per_ip: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            shared_store: None,
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const IP2: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn user_locks_after_n_failures_then_unlocks() {
        let t0 = Instant::now();
        let mut l = Lockout::new(&cfg());
        for i in 0..2 {
            l.fail(t0 + Duration::from_secs(i), "a", IP);
            assert!(l.locked(t0 + Duration::from_secs(i), "a", IP).is_none());
        }
        l.fail(t0 + Duration::from_secs(2), "a", IP);
        let left = l.locked(t0 + Duration::from_secs(3), "a", IP2).unwrap();
        assert_eq!(left, Duration::from_secs(299));
        assert!(l.locked(t0 + Duration::from_secs(3), "b", IP2).is_none());
        assert!(l.locked(t0 + Duration::from_secs(303), "a", IP2).is_none());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t0 = Instant::now();
        let mut l = Lockout::new(&cfg());
        l.fail(t0, "a", IP);
        l.fail(t0 + Duration::from_secs(1), "a", IP);
        l.fail(t0 + Duration::from_secs(100), "a", IP);
        assert!(l.locked(t0 + Duration::from_secs(100), "a", IP2).is_none());
    }

    #[test]
    fn address_locks_across_user_names() {
        let t0 = Instant::now();
        let mut l = Lockout::new(&cfg());
        for (i, u) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            l.fail(t0 + Duration::from_secs(i as u64), u, IP);
        }
        assert!(l.locked(t0 + Duration::from_secs(6), "zzz", IP).is_some());
        assert!(l.locked(t0 + Duration::from_secs(6), "zzz", IP2).is_none());
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_prefix() {
        let t0 = Instant::now();
        let mut l = Lockout::new(&cfg());
        // Five guesses from five addresses of one /64: the whole /64 is locked.
        for i in 1..=5u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, i));
            l.fail(t0, &format!("u{i}"), ip);
        }
        let same64 = IpAddr::V6(std::net::Ipv6Addr::new(
            0x2001, 0xdb8, 1, 2, 0xffff, 1, 2, 3,
        ));
        let other64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(l.locked(t0, "zzz", same64).is_some());
        assert!(l.locked(t0, "zzz", other64).is_none());
        // An IPv4-mapped address is its IPv4 address.
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(address_key(mapped), IP2);
        assert_eq!(address_key(IP), IP);
    }

    #[test]
    fn success_clears_user_failures() {
        let t0 = Instant::now();
        let mut l = Lockout::new(&cfg());
        l.fail(t0, "a", IP);
        l.fail(t0, "a", IP);
        l.succeed("a");
        l.fail(t0, "a", IP);
        assert!(l.locked(t0, "a", IP2).is_none());
    }
}
