//! `AuthFailures`: failed authentications per client address. An address that fails `limit`
//! times within a minute is refused (429) before any lookup for the rest of that minute, so a
//! flood of wrong keys or unknown tenant ids costs the store nothing and cannot crowd out the
//! tenants that authenticate. Pure: the edge passes the time in.
//!
//! Memory is bounded: at most `max_addresses` are tracked; when full, finished minutes are
//! dropped first, and if that is not enough the oldest half of the minutes, the ones closest to
//! running out anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Minute {
    started: Instant,
    failures: u32,
}

#[derive(Debug)]
pub struct AuthFailures {
    /// Failures an address may have within a minute; 0 refuses nobody.
    limit: u32,
    max_addresses: usize,
    by_address: HashMap<IpAddr, Minute>,
}

impl AuthFailures {
    pub fn new(limit: u32, max_addresses: usize) -> Self {
        Self { limit, max_addresses: max_addresses.max(1), by_address: HashMap::new() }
    }

    /// Whether requests from `address` are refused at `now`, and for how long still.
    pub fn refused(&self, now: Instant, address: IpAddr) -> Option<Duration> {
        let minute = self.by_address.get(&address)?;
        let ends = minute.started + WINDOW;
        (self.limit > 0 && minute.failures >= self.limit && now < ends).then(|| ends - now)
    }

    /// `address` failed to authenticate at `now`.
    pub fn failed(&mut self, now: Instant, address: IpAddr) {
        if self.limit == 0 {
            return;
        }
        if !self.by_address.contains_key(&address) && self.by_address.len() >= self.max_addresses {
            self.make_room(now);
        }
        let minute = self.by_address.entry(address).or_insert(Minute { started: now, failures: 0 });
        if now >= minute.started + WINDOW {
            *minute = Minute { started: now, failures: 0 };
        }
        minute.failures = minute.failures.saturating_add(1);
    }

    fn make_room(&mut self, now: Instant) {
        self.by_address.retain(|_, minute| now < minute.started + WINDOW);
        if self.by_address.len() >= self.max_addresses {
            let mut starts: Vec<Instant> = self.by_address.values().map(|minute| minute.started).collect();
            starts.sort_unstable();
            let median = starts[starts.len() / 2];
            self.by_address.retain(|_, minute| minute.started > median);
        }
    }

    pub fn tracked(&self) -> usize {
        self.by_address.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([203, 0, 113, last])
    }

    #[test]
    fn an_address_is_refused_after_the_limit_for_the_rest_of_its_minute() {
        let start = Instant::now();
        let mut failures = AuthFailures::new(3, 100);
        for i in 0..3 {
            assert_eq!(failures.refused(start, ip(1)), None, "after {i} failures");
            failures.failed(start + Duration::from_secs(i), ip(1));
        }
        assert_eq!(failures.refused(start + Duration::from_secs(10), ip(1)), Some(Duration::from_secs(50)));
        assert_eq!(failures.refused(start + Duration::from_secs(10), ip(2)), None, "per address");
        assert_eq!(failures.refused(start + WINDOW, ip(1)), None, "the minute is over");
        failures.failed(start + WINDOW, ip(1));
        assert_eq!(failures.refused(start + WINDOW, ip(1)), None, "a new minute counts from one");
    }

    #[test]
    fn a_limit_of_zero_refuses_nobody() {
        let start = Instant::now();
        let mut failures = AuthFailures::new(0, 100);
        for _ in 0..1_000 {
            failures.failed(start, ip(1));
        }
        assert_eq!(failures.refused(start, ip(1)), None);
        assert_eq!(failures.tracked(), 0);
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_addresses() {
        let start = Instant::now();
        let mut failures = AuthFailures::new(3, 64);
        for i in 0..10_000u32 {
            let address = IpAddr::from(i.to_be_bytes());
            failures.failed(start + Duration::from_millis(u64::from(i)), address);
            assert!(failures.tracked() <= 64);
        }
        // The latest offender is still counted.
        let last = IpAddr::from(9_999u32.to_be_bytes());
        let now = start + Duration::from_millis(10_000);
        failures.failed(now, last);
        failures.failed(now, last);
        assert!(failures.refused(now, last).is_some());
    }
}
