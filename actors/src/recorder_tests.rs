use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::api_key::KeyHash;
use crate::audit::{AuditPage, AuditQuery, AuditResult};
use crate::commit_round::STRIKES_TO_QUARANTINE;
use crate::quarantine::QuarantineError;
use crate::rate_windows::WindowCount;
use crate::store::{KeyOwner, TenantFilter, TenantPage};
use crate::tenant::TenantRecord;
use crate::usage::{Month, UsageCounters};

/// Keeps committed batches in memory. Fails every commit while `down`, and with `refusal` every
/// batch holding an audit event of that action. Only what the recorder uses is kept.
#[derive(Default)]
pub(crate) struct FlakyStore {
    committed: Mutex<Vec<Arc<Batch>>>,
    down: AtomicBool,
    refusal: Mutex<Option<(String, StoreError)>>,
    attempts: AtomicUsize,
    /// Audit events it takes per commit (`None`: any number).
    commit_events: Option<usize>,
}

impl FlakyStore {
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn refuse(&self, action: &str, error: StoreError) {
        *self.refusal.lock().unwrap() = Some((action.to_string(), error));
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    fn usage(&self, tenant: &TenantId) -> UsageCounters {
        let mut sum = UsageCounters::default();
        for batch in self.committed.lock().unwrap().iter() {
            batch.usage.iter().filter(|u| &u.tenant == tenant).for_each(|u| sum.add(&u.counters));
        }
        sum
    }

    fn audit_actions(&self) -> Vec<String> {
        let committed = self.committed.lock().unwrap();
        committed.iter().flat_map(|b| b.audit.iter().map(|e| e.action.clone())).collect()
    }

    fn last_checkpoint(&self, tenant: &TenantId) -> Option<Checkpoint> {
        let committed = self.committed.lock().unwrap();
        committed.iter().flat_map(|b| b.checkpoints.iter()).filter(|(t, _)| t == tenant).map(|(_, c)| *c).next_back()
    }
}

fn not_kept() -> StoreError {
    StoreError::Backend("not kept by this test store".into())
}

#[async_trait]
impl Store for FlakyStore {
    async fn commit(&self, batch: Arc<Batch>) -> Result<(), StoreError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("connection refused".into()));
        }
        if let Some((action, error)) = &*self.refusal.lock().unwrap()
            && batch.audit.iter().any(|e| &e.action == action)
        {
            return Err(error.clone());
        }
        self.committed.lock().unwrap().push(batch);
        Ok(())
    }

    fn max_commit_events(&self) -> usize {
        self.commit_events.unwrap_or(usize::MAX)
    }

    async fn create_tenant(&self, _: &TenantRecord) -> Result<(), StoreError> {
        Err(not_kept())
    }
    async fn update_tenant(&self, _: &TenantRecord) -> Result<(), StoreError> {
        Err(not_kept())
    }
    async fn delete_tenant(&self, _: &TenantId) -> Result<(), StoreError> {
        Err(not_kept())
    }
    async fn tenant(&self, _: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        Err(not_kept())
    }
    async fn tenants(&self, _: &TenantFilter, _: Option<&TenantId>, _: usize) -> Result<TenantPage, StoreError> {
        Err(not_kept())
    }
    async fn key_owner(&self, _: &KeyHash) -> Result<Option<KeyOwner>, StoreError> {
        Err(not_kept())
    }
    async fn checkpoint(&self, _: &TenantId) -> Result<Option<Checkpoint>, StoreError> {
        Err(not_kept())
    }
    async fn usage_by_day(
        &self,
        _: &TenantId,
        _: NaiveDate,
        _: NaiveDate,
    ) -> Result<Vec<(NaiveDate, UsageCounters)>, StoreError> {
        Err(not_kept())
    }
    async fn usage_of_month(&self, _: &TenantId, _: Month) -> Result<UsageCounters, StoreError> {
        Err(not_kept())
    }
    async fn audit(&self, _: &TenantId, _: &AuditQuery) -> Result<AuditPage, StoreError> {
        Err(not_kept())
    }
    async fn delete_audit_before(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Err(not_kept())
    }
    async fn meta(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Err(not_kept())
    }
    async fn set_meta(&self, _: &str, _: &[u8]) -> Result<(), StoreError> {
        Err(not_kept())
    }
    async fn put_entry(&self, _: &str, _: &str, _: &[u8]) -> Result<(), StoreError> {
        Err(not_kept())
    }
    async fn delete_entry(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        Err(not_kept())
    }
    async fn replace_entry(&self, _: &str, _: &str, _: Option<&[u8]>, _: Option<&[u8]>) -> Result<bool, StoreError> {
        Err(not_kept())
    }
    async fn entries(&self, _: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Err(not_kept())
    }
}

/// Keeps the batches set aside in memory.
#[derive(Default)]
pub(crate) struct MemorySink {
    batches: Mutex<Vec<(Batch, StoreError)>>,
}

impl std::fmt::Display for MemorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory")
    }
}

#[async_trait]
impl QuarantineSink for MemorySink {
    async fn quarantine(&self, batch: &Batch, error: &StoreError) -> Result<(), QuarantineError> {
        self.batches.lock().unwrap().push((batch.clone(), error.clone()));
        Ok(())
    }
}

impl MemorySink {
    fn batches(&self) -> Vec<(Batch, StoreError)> {
        self.batches.lock().unwrap().clone()
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn event(tenant: &TenantId, action: &str, text_bytes: usize) -> AuditEvent {
    AuditEvent {
        timestamp: Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap(),
        tenant_id: tenant.clone(),
        user_id: None,
        action: action.into(),
        tool_id: None,
        params: Some(json!({ "text": "x".repeat(text_bytes) })),
        result: AuditResult::Success,
        duration: 0,
        ip: None,
        user_agent: None,
        request_id: "r".into(),
        event_id: None,
    }
}

fn request(tenant: &TenantId, requests: u64) -> UsageDelta {
    UsageDelta {
        tenant: tenant.clone(),
        day: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
        counters: UsageCounters { requests, ..Default::default() },
    }
}

fn checkpoint(count: u64) -> Checkpoint {
    Checkpoint { windows: [WindowCount { start: 0, count }; 3] }
}

fn start(store: &Arc<FlakyStore>, sink: &Arc<MemorySink>, max_pending_bytes: usize) -> Recorder {
    let config =
        RecorderConfig { flush_interval: Duration::from_secs(1), max_batch: 100, queue: 16, max_pending_bytes };
    Recorder::start(store.clone(), sink.clone(), config).0
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_sheds_audit_past_the_bound_and_keeps_every_usage() {
    let (store, sink) = (Arc::new(FlakyStore::default()), Arc::new(MemorySink::default()));
    let bound = 64 * 1024;
    let recorder = start(&store, &sink, bound);
    let (acme, beta) = (tenant("acme"), tenant("beta"));
    store.set_down(true);
    // About 2 MB of audit events, some thirty times the bound.
    let events = 2_000u64;
    for i in 0..events {
        recorder.audit(event(&acme, "tools.invoke", 1_000)).await.unwrap();
        recorder.usage(request(if i % 2 == 0 { &acme } else { &beta }, 1)).await.unwrap();
        if i % 100 == 99 {
            recorder.checkpoint(acme.clone(), checkpoint(i)).await.unwrap();
            // Time passes (the recorder takes in all that was sent meanwhile); rounds fail.
            tokio::time::sleep(Duration::from_millis(700)).await;
            let state = recorder.state();
            // Usage and checkpoints are never dropped: their few entries may go past the bound.
            assert!(state.pending_bytes <= bound as u64 + 2_048, "{state:?}");
        }
    }
    let state = recorder.state();
    assert!(state.shedding && state.shed_events > 0, "{state:?}");
    // Tried a few times per round, not once per entry.
    assert!(store.attempts() < 40, "{} commits tried", store.attempts());

    store.set_down(false);
    recorder.flush().await.unwrap();
    let state = recorder.state();
    assert!(!state.shedding && state.pending_bytes == 0, "{state:?}");
    assert_eq!(store.usage(&acme).requests, events / 2);
    assert_eq!(store.usage(&beta).requests, events / 2);
    assert_eq!(store.audit_actions().len() as u64 + state.shed_events, events, "every event committed or counted");
    assert_eq!(store.last_checkpoint(&acme), Some(checkpoint(events - 1)));
    assert!(sink.batches().is_empty(), "an outage sets nothing aside");
}

#[tokio::test(start_paused = true)]
async fn a_batch_the_store_refuses_is_set_aside_whole_and_later_ones_commit() {
    let (store, sink) = (Arc::new(FlakyStore::default()), Arc::new(MemorySink::default()));
    let recorder = start(&store, &sink, 1 << 20);
    let acme = tenant("acme");
    store.refuse("poison", StoreError::Corrupt("a key of the wrong type".into()));
    recorder.audit(event(&acme, "poison", 10)).await.unwrap();
    recorder.usage(request(&acme, 5)).await.unwrap();
    recorder.checkpoint(acme.clone(), checkpoint(5)).await.unwrap();
    recorder.flush().await.unwrap();

    recorder.audit(event(&acme, "after", 10)).await.unwrap();
    recorder.usage(request(&acme, 1)).await.unwrap();
    recorder.flush().await.unwrap();

    // The recorder may have cut its batches anywhere between the calls above (its timer fires
    // whenever the paused clock jumps): what matters is that the refused batch is set aside
    // whole, nothing else is, and every entry is either committed or set aside, once.
    let set_aside = sink.batches();
    assert_eq!(set_aside.len(), 1);
    let (batch, error) = &set_aside[0];
    assert_eq!(error, &StoreError::Corrupt("a key of the wrong type".into()));
    assert_eq!(batch.audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["poison"]);
    assert_eq!(store.audit_actions(), ["after"]);
    let set_aside_requests: u64 = batch.usage.iter().map(|delta| delta.counters.requests).sum();
    assert_eq!(store.usage(&acme).requests + set_aside_requests, 6, "usage committed or set aside, once");
    let checkpoint_kept = batch.checkpoints.contains(&(acme.clone(), checkpoint(5)))
        || store.last_checkpoint(&acme) == Some(checkpoint(5));
    assert!(checkpoint_kept, "the checkpoint committed or set aside");
    assert_eq!(recorder.state().quarantined_batches, 1);
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_keeps_failing_while_others_commit_is_set_aside() {
    let (store, sink) = (Arc::new(FlakyStore::default()), Arc::new(MemorySink::default()));
    let recorder = start(&store, &sink, 1 << 20);
    let acme = tenant("acme");
    // An error that looks transient, but only this batch ever meets it.
    store.refuse("poison", StoreError::Backend("argument too large".into()));
    recorder.audit(event(&acme, "poison", 10)).await.unwrap();
    recorder.usage(request(&acme, 5)).await.unwrap();
    assert!(recorder.flush().await.is_err(), "alone, it may be the store that fails");
    for _ in 0..STRIKES_TO_QUARANTINE {
        recorder.audit(event(&acme, "after", 10)).await.unwrap();
        recorder.usage(request(&acme, 1)).await.unwrap();
        let _ = recorder.flush().await;
    }
    recorder.flush().await.unwrap();

    // Where the recorder cut its batches depends on when its timer fired (see above).
    let set_aside = sink.batches();
    assert_eq!(set_aside.len(), 1);
    assert_eq!(set_aside[0].0.audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["poison"]);
    assert_eq!(store.audit_actions(), vec!["after"; STRIKES_TO_QUARANTINE as usize]);
    let set_aside_requests: u64 = set_aside[0].0.usage.iter().map(|delta| delta.counters.requests).sum();
    assert_eq!(store.usage(&acme).requests + set_aside_requests, 5 + u64::from(STRIKES_TO_QUARANTINE));
    assert_eq!(recorder.state().quarantined_batches, 1);
}

#[tokio::test(start_paused = true)]
async fn a_commit_carries_no_more_audit_events_than_the_store_takes() {
    let store = Arc::new(FlakyStore { commit_events: Some(7), ..Default::default() });
    let sink = Arc::new(MemorySink::default());
    let recorder = start(&store, &sink, 1 << 20);
    let acme = tenant("acme");
    for _ in 0..50 {
        recorder.audit(event(&acme, "tools.invoke", 10)).await.unwrap();
    }
    recorder.flush().await.unwrap();
    let sizes: Vec<usize> = store.committed.lock().unwrap().iter().map(|batch| batch.audit.len()).collect();
    assert!(sizes.iter().all(|&size| size <= 7), "commits of {sizes:?} events");
    assert_eq!(sizes.iter().sum::<usize>(), 50, "every event committed: {sizes:?}");
}
