//! Audit events: one per tenant-API request and per admin change, in the tenant's own log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tenant::TenantId;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    Success,
    Denied,
    Error,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub timestamp: DateTime<Utc>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tenant_id: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    pub result: AuditResult,
    /// Milliseconds.
    pub duration: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub request_id: String,
    /// Set on an event sent to its tenant's owner on another node: if the owner's answer is lost,
    /// both nodes may record it, and the store keeps the first (see `AuditOutbox`). Not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub event_id: Option<String>,
}

/// Where a page of audit events ends: the position of its last event in the tenant's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    pub timestamp_micros: i64,
    pub seq: u64,
}

impl AuditCursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.timestamp_micros, self.seq)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (ts, seq) = text.split_once('.')?;
        Some(Self { timestamp_micros: ts.parse().ok()?, seq: seq.parse().ok()? })
    }
}

/// A filtered, paginated read of one tenant's log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub action: Option<String>,
    pub limit: usize,
    /// Continue after this position.
    pub after: Option<AuditCursor>,
}

impl AuditQuery {
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.since.is_none_or(|since| event.timestamp >= since)
            && self.until.is_none_or(|until| event.timestamp <= until)
            && self.action.as_deref().is_none_or(|action| event.action == action)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next: Option<AuditCursor>,
}

/// Replaces the values of keys that look secret (tokens, passwords, keys, authorization) with
/// `"[REDACTED]"`, at any depth, so parameters can be audited without leaking credentials.
pub fn redact_secrets(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        if looks_secret(&k) { (k, Value::String("[REDACTED]".into())) } else { (k, redact_secrets(v)) }
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(redact_secrets).collect()),
        other => other,
    }
}

fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["token", "secret", "password", "passwd", "apikey", "api_key", "api-key", "authorization", "credential", "private"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let params =
            json!({"query": "x", "accessToken": "t0k", "nested": [{"client_secret": "s", "n": 1}], "apiKey": "k"});
        let redacted = redact_secrets(params).to_string();
        assert!(!redacted.contains("t0k") && !redacted.contains("\"s\"") && !redacted.contains("\"k\""));
        assert!(redacted.contains("\"query\":\"x\"") && redacted.contains("\"n\":1"));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = AuditCursor { timestamp_micros: 1_700_000_000_000_000, seq: 42 };
        assert_eq!(AuditCursor::decode(&c.encode()), Some(c));
        assert_eq!(AuditCursor::decode("nope"), None);
        assert_eq!(AuditCursor::decode("1.x"), None);
    }
}
