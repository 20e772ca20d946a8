//! Tenant ids recently found not to exist, so that a flood of requests for made-up tenants does
//! not queue a store read each in front of the supervisor, where real tenants' activations wait.
//!
//! An entry lives for a short time and is dropped at once when the tenant is created (the node
//! that creates it tells the owner). The set is bounded: when full, it is emptied, which costs at
//! most one store read per id again, never a wrong answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::tenant::TenantId;

#[derive(Debug)]
pub struct AbsentTenants {
    ttl: Duration,
    max_entries: usize,
    until: Mutex<HashMap<TenantId, Instant>>,
}

impl AbsentTenants {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self { ttl, max_entries, until: Mutex::new(HashMap::new()) }
    }

    /// Whether `id` was found absent less than the time-to-live before `now`.
    pub fn is_absent(&self, id: &TenantId, now: Instant) -> bool {
        self.entries().get(id).is_some_and(|until| now < *until)
    }

    /// `id` was just found not to exist.
    pub fn remember(&self, id: &TenantId, now: Instant) {
        let mut entries = self.entries();
        if entries.len() >= self.max_entries {
            entries.retain(|_, until| now < *until);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(id.clone(), now + self.ttl);
    }

    /// `id` exists now (it was created).
    pub fn forget(&self, id: &TenantId) {
        self.entries().remove(id);
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Instant>> {
        // Every critical section is a single map operation that cannot panic midway.
        self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> TenantId {
        TenantId::parse(text).unwrap()
    }

    #[test]
    fn an_absent_tenant_is_remembered_for_the_time_to_live_only() {
        let absent = AbsentTenants::new(Duration::from_secs(2), 10);
        let now = Instant::now();
        assert!(!absent.is_absent(&id("ghost"), now));
        absent.remember(&id("ghost"), now);
        assert!(absent.is_absent(&id("ghost"), now + Duration::from_secs(1)));
        assert!(!absent.is_absent(&id("ghost"), now + Duration::from_secs(2)));
        assert!(!absent.is_absent(&id("other"), now));
    }

    #[test]
    fn a_created_tenant_is_forgotten_at_once() {
        let absent = AbsentTenants::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        absent.remember(&id("soon"), now);
        absent.forget(&id("soon"));
        assert!(!absent.is_absent(&id("soon"), now));
    }

    #[test]
    fn the_set_never_outgrows_its_bound() {
        let absent = AbsentTenants::new(Duration::from_secs(60), 3);
        let now = Instant::now();
        for i in 0..10 {
            absent.remember(&id(&format!("t{i}")), now);
            assert!(absent.entries().len() <= 3);
        }
        assert!(absent.is_absent(&id("t9"), now), "the newest entry is kept");
    }
}
