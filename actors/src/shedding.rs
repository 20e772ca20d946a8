//! When the recorder drops audit events: while what it holds uncommitted would pass its bound.
//!
//! It drops the newest events, the ones arriving, not the oldest: the older ones already sit in
//! batches whose ids the store may have recorded (a commit whose answer was lost), so a batch
//! must be committed again exactly as it was; and the log then keeps the start of the outage,
//! where its cause usually shows, with one counted gap after it. Usage and rate checkpoints are
//! never dropped (billing and limits): they stay small, summed per tenant and day, one per tenant.
//!
//! Once started, shedding goes on until the pending bytes fall to half the bound, so that it does
//! not start and stop with every event at the bound (and log each time).

/// Whether an arriving audit event is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    Keep,
    /// Dropped; `started`: the first of an episode.
    Shed {
        started: bool,
    },
}

/// An episode of shedding that ended, with the events it dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped {
    pub(crate) shed: u64,
}

#[derive(Debug)]
pub(crate) struct Shedding {
    max_bytes: usize,
    /// Events dropped in the current episode; `None`: not shedding.
    episode: Option<u64>,
    total: u64,
}

impl Shedding {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self { max_bytes, episode: None, total: 0 }
    }

    /// An audit event of `bytes` arrives while `pending` bytes wait.
    pub(crate) fn offer(&mut self, pending: usize, bytes: usize) -> Offer {
        let fits = pending.saturating_add(bytes) <= self.max_bytes;
        let started = match &mut self.episode {
            None if fits => return Offer::Keep,
            None => {
                self.episode = Some(1);
                true
            }
            Some(shed) => {
                *shed += 1;
                false
            }
        };
        self.total += 1;
        Offer::Shed { started }
    }

    /// The pending bytes fell to `pending` (a commit): ends the episode at half the bound.
    pub(crate) fn settle(&mut self, pending: usize) -> Option<Stopped> {
        if pending > self.max_bytes / 2 {
            return None;
        }
        self.episode.take().map(|shed| Stopped { shed })
    }

    pub(crate) fn active(&self) -> bool {
        self.episode.is_some()
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_past_the_bound_until_half_of_it_is_free() {
        let mut shedding = Shedding::new(100);
        assert_eq!(shedding.offer(60, 40), Offer::Keep);
        assert_eq!(shedding.offer(90, 20), Offer::Shed { started: true });
        // Room for this one, but the episode goes on until half the bound is free.
        assert_eq!(shedding.offer(90, 5), Offer::Shed { started: false });
        assert_eq!(shedding.settle(51), None);
        assert!(shedding.active());
        assert_eq!(shedding.settle(50), Some(Stopped { shed: 2 }));
        assert_eq!(shedding.settle(0), None);
        assert_eq!(shedding.offer(50, 5), Offer::Keep);
        assert_eq!(shedding.offer(usize::MAX, 5), Offer::Shed { started: true });
        assert_eq!(shedding.total(), 3);
    }
}
