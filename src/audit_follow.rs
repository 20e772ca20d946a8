//! What `connectors admin audit --follow` prints: each event once, late ones included.
//!
//! An event can be committed a while after its timestamp (the node that served the request
//! forwards it to the tenant's owner; a recorder retries through a store outage), so it may
//! appear in the log *before* events already printed. Each read therefore starts
//! [`FOLLOW_LOOKBACK`] before the newest event printed, and the events of that window already
//! printed are remembered and skipped. Pure: the CLI feeds it pages and asks where to read next.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use connectors_client::types::AuditEvent;

/// How long after its timestamp an event is still found by `--follow`.
pub const FOLLOW_LOOKBACK: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Debug, Default)]
pub struct AuditFollow {
    /// The newest timestamp printed.
    newest: Option<DateTime<Utc>>,
    /// The events printed within the look-back, by timestamp and content.
    printed: BTreeSet<(DateTime<Utc>, String)>,
}

impl AuditFollow {
    /// Whether `event` is to be printed: false for one printed already.
    pub fn is_new(&mut self, event: &AuditEvent) -> bool {
        let Ok(at) = DateTime::parse_from_rfc3339(&event.timestamp).map(|at| at.with_timezone(&Utc)) else {
            // Not a time the gateway writes; print it rather than lose it.
            return true;
        };
        let key = serde_json::to_string(event).unwrap_or_default();
        if !self.printed.insert((at, key)) {
            return false;
        }
        self.newest = self.newest.max(Some(at));
        true
    }

    /// The `since` of the next read (`None`: nothing printed yet, read as before). What falls
    /// out of the look-back is forgotten: it will not be read again.
    pub fn next_since(&mut self) -> Option<String> {
        let since = self.newest? - FOLLOW_LOOKBACK;
        self.printed = self.printed.split_off(&(since, String::new()));
        Some(since.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

#[cfg(test)]
mod tests {
    use connectors_client::types::AuditResult;

    use super::*;

    fn event(timestamp: &str, request_id: &str) -> AuditEvent {
        AuditEvent {
            timestamp: timestamp.into(),
            tenant_id: "acme".into(),
            user_id: None,
            action: "tenant.get".into(),
            tool_id: None,
            params: None,
            result: AuditResult::Success,
            duration: 1,
            ip: None,
            user_agent: None,
            request_id: request_id.into(),
        }
    }

    #[test]
    fn a_late_event_within_the_look_back_is_printed_once_and_printed_ones_are_not_repeated() {
        let mut follow = AuditFollow::default();
        assert_eq!(follow.next_since(), None);
        assert!(follow.is_new(&event("2026-12-03T10:00:30.000Z", "a")));
        assert!(follow.is_new(&event("2026-12-03T10:00:40.000Z", "b")));
        assert_eq!(follow.next_since().as_deref(), Some("2026-12-03T09:59:40.000Z"));
        // The next read returns both again, and an event committed late, older than `b`.
        assert!(!follow.is_new(&event("2026-12-03T10:00:30.000Z", "a")));
        assert!(follow.is_new(&event("2026-12-03T10:00:35.000Z", "late")));
        assert!(!follow.is_new(&event("2026-12-03T10:00:40.000Z", "b")));
        // Two events of one millisecond are two events.
        assert!(follow.is_new(&event("2026-12-03T10:00:40.000Z", "c")));
        // Much later: what fell out of the look-back is forgotten.
        assert!(follow.is_new(&event("2026-12-03T10:05:00.000Z", "d")));
        assert_eq!(follow.next_since().as_deref(), Some("2026-12-03T10:04:00.000Z"));
        assert_eq!(follow.printed.len(), 1);
    }
}
