//! The compact form of an audit event in a store: postcard, without the tenant id (the key holds
//! it) and with the timestamp as nanoseconds. Audit events are the store's largest stream (one
//! per request), so their size and encoding time are on the gateway's critical budget; postcard
//! takes about a third of the bytes and time of JSON. `params` stay JSON text inside, because
//! they are free-form.

use chrono::{DateTime, Utc};
use connectors_actors::audit::{AuditEvent, AuditResult};
use connectors_actors::store::StoreError;
use connectors_actors::tenant::TenantId;
use serde::{Deserialize, Serialize};

/// Field order is the format: append new fields at the end, never reorder or remove.
#[derive(Serialize, Deserialize)]
struct StoredAudit<'a> {
    timestamp_nanos: i64,
    #[serde(borrow)]
    user_id: Option<&'a str>,
    action: &'a str,
    #[serde(borrow)]
    tool_id: Option<&'a str>,
    #[serde(borrow)]
    params: Option<&'a str>,
    result: AuditResult,
    duration: u64,
    #[serde(borrow)]
    ip: Option<&'a str>,
    #[serde(borrow)]
    user_agent: Option<&'a str>,
    request_id: &'a str,
}

pub fn encode(event: &AuditEvent) -> Result<Vec<u8>, StoreError> {
    let params = event.params.as_ref().map(|p| p.to_string());
    let stored = StoredAudit {
        timestamp_nanos: event.timestamp.timestamp_nanos_opt().unwrap_or(i64::MAX),
        user_id: event.user_id.as_deref(),
        action: &event.action,
        tool_id: event.tool_id.as_deref(),
        params: params.as_deref(),
        result: event.result,
        duration: event.duration,
        ip: event.ip.as_deref(),
        user_agent: event.user_agent.as_deref(),
        request_id: &event.request_id,
    };
    postcard::to_allocvec(&stored).map_err(|e| StoreError::Backend(format!("cannot encode an audit event: {e}")))
}

pub fn decode(tenant: &TenantId, bytes: &[u8]) -> Result<AuditEvent, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("an audit event of `{tenant}`: {what}"));
    let stored: StoredAudit<'_> = postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
    let params = stored.params.map(serde_json::from_str).transpose().map_err(|e| corrupt(e.to_string()))?;
    Ok(AuditEvent {
        timestamp: DateTime::<Utc>::from_timestamp_nanos(stored.timestamp_nanos),
        tenant_id: tenant.clone(),
        user_id: stored.user_id.map(str::to_string),
        action: stored.action.to_string(),
        tool_id: stored.tool_id.map(str::to_string),
        params,
        result: stored.result,
        duration: stored.duration,
        ip: stored.ip.map(str::to_string),
        user_agent: stored.user_agent.map(str::to_string),
        request_id: stored.request_id.to_string(),
        event_id: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_and_is_smaller_than_json() {
        let event = AuditEvent {
            timestamp: DateTime::<Utc>::from_timestamp_nanos(1_798_761_600_123_456_789),
            tenant_id: TenantId::parse("acme").unwrap(),
            user_id: Some("admin".into()),
            action: "tenant.get".into(),
            tool_id: None,
            params: Some(json!({"reason": "unauthorized", "n": [1, 2]})),
            result: AuditResult::Denied,
            duration: 3,
            ip: Some("2001:db8::1".into()),
            user_agent: Some("curl/8".into()),
            request_id: "0b9e7e2c-2f0d-4a9e-9d43-5f7b5c0f6c11".into(),
            event_id: None,
        };
        let bytes = encode(&event).unwrap();
        assert_eq!(decode(&event.tenant_id, &bytes).unwrap(), event);
        assert!(bytes.len() * 2 < serde_json::to_vec(&event).unwrap().len(), "{} bytes", bytes.len());
    }

    #[test]
    fn garbage_is_reported_as_corrupt() {
        let tenant = TenantId::parse("acme").unwrap();
        assert!(matches!(decode(&tenant, b"\xff\xff\xff"), Err(StoreError::Corrupt(_))));
    }
}
