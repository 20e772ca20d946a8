//! The compact form of an audit event in a store: postcard, without the tenant id (the key holds
//! it) and with the timestamp as nanoseconds; and of a chunk of one tenant's events, each with
//! its sequence number, which the embedded store appends as one value. Audit events are the store's largest stream (one
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
    let params = params_text(event);
    postcard::to_allocvec(&stored(event, params.as_deref())).map_err(cannot_encode)
}

/// One value holding `entries` (sequence number, event), in the given order.
pub fn encode_chunk<'e>(entries: impl Iterator<Item = (u64, &'e AuditEvent)>) -> Result<Vec<u8>, StoreError> {
    let entries: Vec<(u64, &AuditEvent, Option<String>)> =
        entries.map(|(seq, event)| (seq, event, params_text(event))).collect();
    let stored: Vec<(u64, StoredAudit<'_>)> =
        entries.iter().map(|(seq, event, params)| (*seq, stored(event, params.as_deref()))).collect();
    postcard::to_allocvec(&stored).map_err(cannot_encode)
}

pub fn decode(tenant: &TenantId, bytes: &[u8]) -> Result<AuditEvent, StoreError> {
    let stored: StoredAudit<'_> = postcard::from_bytes(bytes).map_err(|e| corrupt(tenant, e.to_string()))?;
    restore(tenant, stored)
}

/// The entries of a value written by [`encode_chunk`], in its order.
pub fn decode_chunk(tenant: &TenantId, bytes: &[u8]) -> Result<Vec<(u64, AuditEvent)>, StoreError> {
    let stored: Vec<(u64, StoredAudit<'_>)> =
        postcard::from_bytes(bytes).map_err(|e| corrupt(tenant, format!("a chunk: {e}")))?;
    stored.into_iter().map(|(seq, stored)| Ok((seq, restore(tenant, stored)?))).collect()
}

/// The microsecond an event is stored under: that of its stored nanoseconds, so that an
/// event's position and what a read gives back never disagree.
pub fn stored_micros(event: &AuditEvent) -> i64 {
    stored_nanos(event).div_euclid(1_000)
}

fn stored_nanos(event: &AuditEvent) -> i64 {
    event.timestamp.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn params_text(event: &AuditEvent) -> Option<String> {
    event.params.as_ref().map(|p| p.to_string())
}

fn stored<'a>(event: &'a AuditEvent, params: Option<&'a str>) -> StoredAudit<'a> {
    StoredAudit {
        timestamp_nanos: stored_nanos(event),
        user_id: event.user_id.as_deref(),
        action: &event.action,
        tool_id: event.tool_id.as_deref(),
        params,
        result: event.result,
        duration: event.duration,
        ip: event.ip.as_deref(),
        user_agent: event.user_agent.as_deref(),
        request_id: &event.request_id,
    }
}

fn restore(tenant: &TenantId, stored: StoredAudit<'_>) -> Result<AuditEvent, StoreError> {
    let params = stored.params.map(serde_json::from_str).transpose().map_err(|e| corrupt(tenant, e.to_string()))?;
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

fn cannot_encode(err: postcard::Error) -> StoreError {
    StoreError::Backend(format!("cannot encode audit events: {err}"))
}

fn corrupt(tenant: &TenantId, what: String) -> StoreError {
    StoreError::Corrupt(format!("an audit event of `{tenant}`: {what}"))
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
    fn chunks_round_trip_in_their_order() {
        let tenant = TenantId::parse("acme").unwrap();
        let event = |nanos: i64, request_id: &str| AuditEvent {
            timestamp: DateTime::<Utc>::from_timestamp_nanos(nanos),
            tenant_id: tenant.clone(),
            user_id: None,
            action: "tools/call".into(),
            tool_id: Some("github.create_issue".into()),
            params: Some(json!({"title": "x"})),
            result: AuditResult::Success,
            duration: 12,
            ip: None,
            user_agent: None,
            request_id: request_id.into(),
            event_id: None,
        };
        let (late, early) = (event(2_000_000_000_000, "r2"), event(-1_500, "r1"));
        let bytes = encode_chunk([(9, &late), (4, &early)].into_iter()).unwrap();
        assert_eq!(decode_chunk(&tenant, &bytes).unwrap(), vec![(9, late), (4, early.clone())]);
        assert_eq!(decode_chunk(&tenant, &encode_chunk(std::iter::empty()).unwrap()).unwrap(), vec![]);
        assert_eq!(stored_micros(&early), -2, "a microsecond is the one the nanoseconds fall in");
    }

    #[test]
    fn garbage_is_reported_as_corrupt() {
        let tenant = TenantId::parse("acme").unwrap();
        assert!(matches!(decode(&tenant, b"\xff\xff\xff"), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_chunk(&tenant, b"\x02\x01"), Err(StoreError::Corrupt(_))));
    }
}
