//! What the recorder holds uncommitted: the entries gathered since the last batch was taken and
//! the batches whose commit failed, with an estimate of the memory they take, kept within a
//! bound by shedding audit events ([`crate::shedding`]).
//!
//! Usage for the same tenant and day is summed and only the newest checkpoint of a tenant is
//! kept, so the gathered entries stay small under load. A batch whose commit failed is held
//! whole, under its id, and committed again exactly as it was.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::NaiveDate;

use crate::audit::AuditEvent;
use crate::commit_round::STRIKES_TO_QUARANTINE;
use crate::shedding::{Offer, Shedding, Stopped};
use crate::store::{Batch, Checkpoint, UsageDelta};
use crate::tenant::TenantId;
use crate::usage::UsageCounters;

/// What one usage or checkpoint entry is counted as: its key, its values and the map's share.
const SMALL_ENTRY_BYTES: usize = 128;

pub(crate) struct Pending {
    gathered: Gathered,
    /// Batches whose commit failed, oldest first.
    held: VecDeque<Held>,
    /// Estimated bytes of everything above.
    bytes: usize,
    max_bytes: usize,
    shedding: Shedding,
}

#[derive(Default)]
struct Gathered {
    audit: Vec<AuditEvent>,
    /// The estimated size of each event of `audit`, in the same order.
    audit_sizes: Vec<usize>,
    usage: HashMap<(TenantId, NaiveDate), UsageCounters>,
    checkpoints: HashMap<TenantId, Checkpoint>,
    bytes: usize,
}

struct Held {
    batch: Arc<Batch>,
    bytes: usize,
    /// Rounds in which this batch failed while another commit succeeded.
    strikes: u32,
}

impl Pending {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            gathered: Gathered::default(),
            held: VecDeque::new(),
            bytes: 0,
            max_bytes,
            shedding: Shedding::new(max_bytes),
        }
    }

    /// Keeps `event` unless it would take the pending bytes past the bound.
    pub(crate) fn add_audit(&mut self, event: AuditEvent) -> Offer {
        let size = audit_bytes(&event);
        let offer = self.shedding.offer(self.bytes, size);
        if offer == Offer::Keep {
            self.gathered.audit.push(event);
            self.gathered.audit_sizes.push(size);
            self.grow(size);
        }
        offer
    }

    pub(crate) fn add_usage(&mut self, delta: UsageDelta) {
        let key = (delta.tenant, delta.day);
        match self.gathered.usage.get_mut(&key) {
            Some(counters) => counters.add(&delta.counters),
            None => {
                self.gathered.usage.insert(key, delta.counters);
                self.grow(SMALL_ENTRY_BYTES);
            }
        }
    }

    pub(crate) fn add_checkpoint(&mut self, tenant: TenantId, checkpoint: Checkpoint) {
        if self.gathered.checkpoints.insert(tenant, checkpoint).is_none() {
            self.grow(SMALL_ENTRY_BYTES);
        }
    }

    fn grow(&mut self, bytes: usize) {
        self.gathered.bytes += bytes;
        self.bytes += bytes;
    }

    /// Whether the gathered entries should be committed before the interval ends: `max_batch`
    /// of them, or a quarter of the bound, so that a store that keeps up never meets the bound.
    pub(crate) fn gathered_full(&self, max_batch: usize) -> bool {
        self.gathered.len() >= max_batch || self.gathered.bytes >= self.max_bytes / 4
    }

    /// The batch at place `at` of a round: a held one, or, just past them, a new batch of the
    /// gathered entries (at most `max_batch` audit events), held from now on until it commits.
    pub(crate) fn batch(&mut self, at: usize, max_batch: usize) -> Option<Arc<Batch>> {
        if at == self.held.len() {
            let taken = self.gathered.take(max_batch)?;
            self.held.push_back(taken);
        }
        self.held.get(at).map(|held| held.batch.clone())
    }

    /// Lets go of the held batch at `at`: committed, or set aside.
    pub(crate) fn release(&mut self, at: usize) {
        if let Some(held) = self.held.remove(at) {
            self.bytes -= held.bytes;
        }
    }

    /// Counts a round against the held batch at `at`; answers the batch when it is to be set aside.
    pub(crate) fn strike(&mut self, at: usize) -> Option<Arc<Batch>> {
        let held = self.held.get_mut(at)?;
        held.strikes += 1;
        (held.strikes >= STRIKES_TO_QUARANTINE).then(|| held.batch.clone())
    }

    /// Ends shedding once commits freed enough.
    pub(crate) fn settle(&mut self) -> Option<Stopped> {
        self.shedding.settle(self.bytes)
    }

    /// Whether usage or a checkpoint of `tenant` waits.
    pub(crate) fn holds(&self, tenant: &TenantId) -> bool {
        let in_held = self.held.iter().any(|held| {
            held.batch.checkpoints.iter().any(|(t, _)| t == tenant)
                || held.batch.usage.iter().any(|u| &u.tenant == tenant)
        });
        in_held
            || self.gathered.checkpoints.contains_key(tenant)
            || self.gathered.usage.keys().any(|(t, _)| t == tenant)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty() && self.gathered.len() == 0
    }

    /// Entries waiting, for the log.
    pub(crate) fn entries(&self) -> usize {
        let held: usize =
            self.held.iter().map(|h| h.batch.audit.len() + h.batch.usage.len() + h.batch.checkpoints.len()).sum();
        held + self.gathered.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub(crate) fn shedding(&self) -> &Shedding {
        &self.shedding
    }
}

impl Gathered {
    fn len(&self) -> usize {
        self.audit.len() + self.usage.len() + self.checkpoints.len()
    }

    /// A batch of the oldest `max_batch` audit events and all the usage and checkpoints (moved,
    /// not copied); `None` when nothing is gathered.
    fn take(&mut self, max_batch: usize) -> Option<Held> {
        if self.len() == 0 {
            return None;
        }
        let split = self.audit.len().min(max_batch.max(1));
        let rest = self.audit.split_off(split);
        let audit = std::mem::replace(&mut self.audit, rest);
        let rest = self.audit_sizes.split_off(split);
        let audit_bytes: usize = std::mem::replace(&mut self.audit_sizes, rest).into_iter().sum();
        let usage: Vec<UsageDelta> = std::mem::take(&mut self.usage)
            .into_iter()
            .map(|((tenant, day), counters)| UsageDelta { tenant, day, counters })
            .collect();
        let checkpoints: Vec<_> = std::mem::take(&mut self.checkpoints).into_iter().collect();
        let bytes = audit_bytes + (usage.len() + checkpoints.len()) * SMALL_ENTRY_BYTES;
        self.bytes -= bytes;
        let batch = Batch { id: Some(crate::unique_id::unique_id()), audit, usage, checkpoints };
        Some(Held { batch: Arc::new(batch), bytes, strikes: 0 })
    }
}

/// Roughly what an audit event takes in memory: its fixed part, the text of its strings and the
/// length of its parameters' JSON (counted without writing it anywhere; most events have none).
fn audit_bytes(event: &AuditEvent) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut params = Counter(0);
    if let Some(value) = &event.params {
        // A JSON value always serializes; were it not to, what was counted remains.
        serde_json::to_writer(&mut params, value).ok();
    }
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    std::mem::size_of::<AuditEvent>()
        + event.tenant_id.as_str().len()
        + event.action.len()
        + event.request_id.len()
        + text(&event.user_id)
        + text(&event.tool_id)
        + text(&event.ip)
        + text(&event.user_agent)
        + text(&event.event_id)
        + params.0
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::audit::AuditResult;

    #[test]
    fn an_audit_event_is_counted_by_its_text_and_its_parameters_json() {
        let event = AuditEvent {
            timestamp: Utc::now(),
            tenant_id: TenantId::parse("acme").unwrap(),
            user_id: None,
            action: "tenant.get".into(),
            tool_id: None,
            params: None,
            result: AuditResult::Success,
            duration: 0,
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: "r-1".into(),
            event_id: None,
        };
        let fixed = std::mem::size_of::<AuditEvent>();
        assert_eq!(audit_bytes(&event), fixed + "acme".len() + "tenant.get".len() + "r-1".len() + "127.0.0.1".len());
        let with_params = AuditEvent { params: Some(json!({"text": "x".repeat(1_000)})), ..event.clone() };
        // {"text":"xxx…"}: the 1,000 characters and 11 of JSON around them.
        assert_eq!(audit_bytes(&with_params), audit_bytes(&event) + 1_011);
    }
}
