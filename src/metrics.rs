//! Prometheus metrics of the gateway: per-tenant request counters and actor gauges, rendered
//! in the text exposition format.
//!
//! Counters live in atomics reached through a map keyed by tenant, so counting is one map read
//! and one atomic add on the request path; rendering walks the map.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use connectors_actors::recorder_status::RecorderState;
use connectors_actors::tenant::TenantId;
use connectors_actors::tenant_oauth::OAuthCounts;
use connectors_cluster::audit_outbox::AuditCounts;
use connectors_cluster::router::{HandOffCounts, HoldCounts, OwnerCalls};
use connectors_cluster::transport::ask_batches::AskCounts;
use dashmap::DashMap;

#[derive(Default)]
pub struct TenantCounters {
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub denied: AtomicU64,
    pub invocations: AtomicU64,
    pub invocation_errors: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    tenants: DashMap<TenantId, TenantCounters>,
}

/// How a tenant-API request ended, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Admitted,
    RateLimited,
    Denied,
}

impl Metrics {
    /// Runs `count` on the tenant's counters, inside the map's read guard (no reference-count
    /// traffic on the request path).
    fn with_counters(&self, tenant: &TenantId, count: impl FnOnce(&TenantCounters)) {
        match self.tenants.get(tenant) {
            Some(counters) => count(&counters),
            None => count(&self.tenants.entry(tenant.clone()).or_default()),
        }
    }

    /// A tool invocation that reached the tool's server (or failed trying).
    pub fn count_invocation(&self, tenant: &TenantId, succeeded: bool) {
        self.with_counters(tenant, |counters| {
            counters.invocations.fetch_add(1, Ordering::Relaxed);
            if !succeeded {
                counters.invocation_errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    pub fn count(&self, tenant: &TenantId, outcome: Outcome) {
        self.with_counters(tenant, |counters| {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Outcome::Admitted => {}
                Outcome::RateLimited => {
                    counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Denied => {
                    counters.denied.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    /// Drops a deleted tenant's series.
    pub fn forget(&self, tenant: &TenantId) {
        self.tenants.remove(tenant);
    }

    pub fn render(&self, actors: &NodeActors) -> String {
        let NodeActors {
            active: actors_active,
            restarts: actor_restarts,
            degraded: tenants_degraded,
            supervisor_restarts,
            absent_lookups,
            ticks,
        } = *actors;
        let mut rows: Vec<(TenantId, [u64; 5])> = self
            .tenants
            .iter()
            .map(|entry| {
                let c = entry.value();
                let values = [&c.requests, &c.rate_limited, &c.denied, &c.invocations, &c.invocation_errors]
                    .map(|a| a.load(Ordering::Relaxed));
                (entry.key().clone(), values)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::new();
        let families = [
            ("connectors_tenant_requests_total", "Tenant-API requests, admitted or not."),
            ("connectors_tenant_rate_limited_total", "Tenant-API requests refused with 429."),
            ("connectors_tenant_denied_total", "Tenant-API requests refused for any other reason."),
            ("connectors_tenant_tool_invocations_total", "Tool invocations sent to a tool server."),
            ("connectors_tenant_tool_invocation_errors_total", "Tool invocations that failed or returned isError."),
        ];
        for (i, (name, help)) in families.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (tenant, values) in &rows {
                // Tenant ids are [a-z0-9-]: nothing in them needs escaping in a label value.
                let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", values[i]);
            }
        }
        let _ = writeln!(
            out,
            "# HELP connectors_tenant_actors_active Tenant actors alive on this node.\n# TYPE connectors_tenant_actors_active gauge\nconnectors_tenant_actors_active {actors_active}"
        );
        let _ = writeln!(
            out,
            "# HELP connectors_tenant_ticks_total Periodic ticks sent to tenant actors (only to those with work due: counts to write out, passivation, OAuth or server deadlines).\n# TYPE connectors_tenant_ticks_total counter\nconnectors_tenant_ticks_total {ticks}"
        );
        let _ = writeln!(
            out,
            "# HELP connectors_tenant_actor_restarts_total Tenant actors restarted after a crash.\n# TYPE connectors_tenant_actor_restarts_total counter\nconnectors_tenant_actor_restarts_total {actor_restarts}"
        );
        let _ = writeln!(
            out,
            "# HELP connectors_tenants_degraded Tenants refused for a while because their actor kept crashing.\n# TYPE connectors_tenants_degraded gauge\nconnectors_tenants_degraded {tenants_degraded}"
        );
        let _ = writeln!(
            out,
            "# HELP connectors_supervisor_restarts_total Times the tenant supervisor died and was started again.\n# TYPE connectors_supervisor_restarts_total counter\nconnectors_supervisor_restarts_total {supervisor_restarts}"
        );
        let _ = writeln!(
            out,
            "# HELP connectors_absent_tenant_lookups_total Store reads for tenant ids that do not exist (repeats within seconds are answered from memory).\n# TYPE connectors_absent_tenant_lookups_total counter\nconnectors_absent_tenant_lookups_total {absent_lookups}"
        );
        out
    }
}

/// The cluster's audit forwarding ([`AuditCounts`]), in the same text format.
/// The node's tenant actors, as the directory counts them.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeActors {
    pub active: usize,
    pub restarts: u64,
    pub degraded: u64,
    pub supervisor_restarts: u64,
    pub absent_lookups: u64,
    pub ticks: u64,
}

pub fn render_audit_forwarding(counts: &AuditCounts) -> String {
    let name = "connectors_audit_events_forwarded_total";
    let mut out = format!(
        "# HELP {name} Audit events of tenants another node owns: sent to the owner, received as the owner, or kept (recorded here because the owner could not take them).\n# TYPE {name} counter\n"
    );
    for (way, count) in [("sent", &counts.sent), ("received", &counts.received), ("kept", &counts.kept)] {
        let _ = writeln!(out, "{name}{{way=\"{way}\"}} {}", count.load(Ordering::Relaxed));
    }
    out
}

/// Tenants whose live state crossed a node link at a hand-off.
pub fn render_hand_offs(counts: &HandOffCounts) -> String {
    let name = "connectors_tenant_hand_offs_total";
    let mut out = format!(
        "# HELP {name} Tenants whose live state went to their new owner over the node link (the others start from the store).\n# TYPE {name} counter\n"
    );
    for (way, count) in [("sent", &counts.sent), ("received", &counts.received)] {
        let _ = writeln!(out, "{name}{{way=\"{way}\"}} {}", count.load(Ordering::Relaxed));
    }
    out
}

/// Requests sent to their tenants' owners on other nodes: alone or in batches, and the batches.
pub fn render_remote_asks(counts: &AskCounts) -> String {
    let name = "connectors_cluster_remote_asks_total";
    let mut out = format!(
        "# HELP {name} Requests this node sent to their tenants' owners on other nodes: in batches per peer, or alone (to a peer of a version before batches).\n# TYPE {name} counter\n"
    );
    for (sent, count) in [("batched", &counts.batched), ("alone", &counts.alone)] {
        let _ = writeln!(out, "{name}{{sent=\"{sent}\"}} {}", count.load(Ordering::Relaxed));
    }
    let batches = "connectors_cluster_ask_batches_total";
    let _ = writeln!(
        out,
        "# HELP {batches} Batches of requests sent to owners on other nodes (requests batched / batches = the mean batch size).\n# TYPE {batches} counter\n{batches} {}",
        counts.batches.load(Ordering::Relaxed)
    );
    let timed_out = "connectors_cluster_remote_asks_timed_out_total";
    let _ = writeln!(
        out,
        "# HELP {timed_out} Batched requests to owners on other nodes that got no answer within the link's deadline (answered 503).\n# TYPE {timed_out} counter\n{timed_out} {}",
        counts.timed_out.load(Ordering::Relaxed)
    );
    let late = "connectors_cluster_remote_asks_answered_late_total";
    let _ = writeln!(
        out,
        "# HELP {late} Of those, answered by their owner later; an admission among them is audited as owner_answered_late.\n# TYPE {late} counter\n{late} {}",
        counts.answered_late.load(Ordering::Relaxed)
    );
    out
}

/// Calls to tenants' owners besides admissions, by kind.
pub fn render_owner_calls(calls: &OwnerCalls) -> String {
    let name = "connectors_owner_calls_total";
    let mut out = format!(
        "# HELP {name} Calls this node made to tenants' owners other than admissions (one per tenant-API request), by kind.\n# TYPE {name} counter\n"
    );
    for (call, count) in calls.counts() {
        let _ = writeln!(out, "{name}{{call=\"{call}\"}} {count}");
    }
    out
}

/// Requests held while their tenant's shard changed hands.
pub fn render_holds(counts: &HoldCounts) -> String {
    let name = "connectors_requests_held_total";
    let mut out = format!(
        "# HELP {name} Requests that met a shard changing hands: held, then sent on to the new owner (flushed) or answered 503 (expired).\n# TYPE {name} counter\n"
    );
    for (outcome, count) in [("held", &counts.held), ("flushed", &counts.flushed), ("expired", &counts.expired)] {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", count.load(Ordering::Relaxed));
    }
    let longest = "connectors_request_hold_longest_seconds";
    let _ = writeln!(
        out,
        "# HELP {longest} The longest time one request was held so far.\n# TYPE {longest} gauge\n{longest} {}",
        counts.longest_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    out
}

/// OAuth refreshes that went wrong where no request sees it.
pub fn render_oauth(counts: &OAuthCounts) -> String {
    let mut out = String::new();
    let series = [
        (
            "connectors_oauth_tokens_stored_after_actor_stopped_total",
            "Refreshed tokens stored by the refresh itself because the tenant actor had stopped (passivation, release, crash).",
            &counts.stored_after_actor_stopped,
        ),
        (
            "connectors_oauth_tokens_lost_total",
            "Refreshed tokens that could not be stored: the old refresh token is spent, the credential needs a new grant.",
            &counts.tokens_lost,
        ),
        (
            "connectors_oauth_restore_failures_total",
            "Failed loads of a tenant's OAuth credentials at activation; each is retried with back-off.",
            &counts.restore_failures,
        ),
    ];
    for (name, help, count) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", count.load(Ordering::Relaxed));
    }
    out
}

/// The recorder: what waits uncommitted, what it dropped and what it set aside.
pub fn render_recorder(state: &RecorderState) -> String {
    let mut out = String::new();
    let series = [
        (
            "connectors_recorder_pending_bytes",
            "gauge",
            "Estimated memory of audit events, usage and checkpoints waiting to be committed.",
            state.pending_bytes,
        ),
        (
            "connectors_recorder_shedding",
            "gauge",
            "1 while the recorder drops new audit events (pending bytes reached recorder.maxPendingBytes).",
            u64::from(state.shedding),
        ),
        (
            "connectors_recorder_shed_events_total",
            "counter",
            "Audit events dropped because too much waited uncommitted.",
            state.shed_events,
        ),
        (
            "connectors_recorder_quarantined_batches_total",
            "counter",
            "Batches the store kept refusing, set aside in the quarantine file.",
            state.quarantined_batches,
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_per_tenant_series() {
        let m = Metrics::default();
        let acme = TenantId::parse("acme").unwrap();
        m.count(&acme, Outcome::Admitted);
        m.count(&acme, Outcome::RateLimited);
        m.count(&acme, Outcome::Denied);
        let text = m.render(&NodeActors {
            active: 1,
            restarts: 2,
            degraded: 0,
            supervisor_restarts: 1,
            absent_lookups: 0,
            ticks: 0,
        });
        assert!(text.contains("connectors_tenant_requests_total{tenant=\"acme\"} 3"));
        assert!(text.contains("connectors_tenant_rate_limited_total{tenant=\"acme\"} 1"));
        assert!(text.contains("connectors_tenant_denied_total{tenant=\"acme\"} 1"));
        assert!(text.contains("connectors_tenant_actors_active 1"));
        assert!(text.contains("connectors_tenant_actor_restarts_total 2"));
        assert!(text.contains("connectors_supervisor_restarts_total 1"));
        m.forget(&acme);
        assert!(!m.render(&NodeActors::default()).contains("acme"));
    }

    #[test]
    fn renders_the_recorder_state() {
        let state = RecorderState { pending_bytes: 4096, shedding: true, shed_events: 7, quarantined_batches: 1 };
        let text = render_recorder(&state);
        for line in [
            "connectors_recorder_pending_bytes 4096",
            "connectors_recorder_shedding 1",
            "connectors_recorder_shed_events_total 7",
            "connectors_recorder_quarantined_batches_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn renders_the_oauth_counts() {
        let counts = OAuthCounts::default();
        counts.stored_after_actor_stopped.store(2, Ordering::Relaxed);
        counts.restore_failures.store(5, Ordering::Relaxed);
        let text = render_oauth(&counts);
        for line in [
            "connectors_oauth_tokens_stored_after_actor_stopped_total 2",
            "connectors_oauth_tokens_lost_total 0",
            "connectors_oauth_restore_failures_total 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
