//! Ids no other id of any process gets: a random per-process half and a counter. For a recorder
//! batch (a retried commit is applied once) and an audit event sent to another node (recorded
//! once though both nodes may try).

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn unique_id() -> u128 {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the system's randomness once per process.
    let process = *PROCESS.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish());
    (u128::from(process) << 64) | u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_do_not_repeat() {
        let ids: std::collections::HashSet<u128> = (0..1000).map(|_| super::unique_id()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
