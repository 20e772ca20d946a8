//! The compact form (postcard) of the two messages every request for another node's tenant
//! causes: the batch of tenant requests with its answers, and the batch of audit events sent
//! back to the owner. Nodes use it between them once the peer has said it reads it
//! ([`super::links`] asks with an empty batch first); JSON stays for everything else.
//!
//! Only the hot path is written field by field: an admission, and an admission answered
//! without the tenant record ([`TenantAnswer::SameRecord`]). Every other request or answer
//! rides inside as its JSON, so that what is rare keeps the JSON's tolerance of optional
//! fields. Postcard writes no field names, so a field added to a compact type is a new
//! [`COMPACT_VERSION`]: the conversions below destructure the domain types whole, so that a
//! field added there does not compile until it is placed here.

use std::borrow::Cow;
use std::net::IpAddr;

use connectors_actors::admission::AdmissionRequest;
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::{AuditEvent, AuditResult};
use connectors_actors::deployer::ServerName;
use connectors_actors::quotas::Quota;
use connectors_actors::rate_windows::RateStatus;
use connectors_actors::tenant::{Features, Limits, TenantId};
use connectors_actors::tenant_call::TenantCall;
use connectors_actors::usage::{Month, UsageCounters};
use serde::{Deserialize, Serialize};

use super::wire::{AdmittedSameRecord, AuditBatch, TenantAnswer, TenantRequest, WireError};

/// The payload version of this module's forms: apart from the JSON payloads' versions, which
/// count up from 1, and from the compact hand-off's.
pub const COMPACT_VERSION: u16 = 0x0101;

/// One request of a compact batch.
#[derive(Debug, Serialize, Deserialize)]
pub enum CompactRequest {
    Admit {
        epoch: u64,
        tenant: TenantId,
        /// Raw: [`KeyHash`]'s own form is hex, for JSON.
        key: Option<[u8; 32]>,
        key_required: bool,
        client_ip: IpAddr,
        charge: Option<Quota>,
        selection: bool,
        server: Option<ServerName>,
        held_record: Option<u64>,
        answer_by_ms: Option<i64>,
    },
    /// Any other request, as JSON.
    Json(Vec<u8>),
}

/// One answer of a compact batch. Its variants differ in size, but answers live only in the one
/// `Vec` of a batch being written or read: boxing the common one would allocate per answer.
#[expect(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
enum CompactAnswer {
    /// [`AdmittedSameRecord`] without a custom server's record.
    SameRecord { limits: Limits, features: Features, month: Month, usage: UsageCounters, rate: Option<RateStatus> },
    /// Any other answer, as JSON.
    Json(Vec<u8>),
}

impl From<TenantRequest> for CompactRequest {
    fn from(request: TenantRequest) -> Self {
        let TenantRequest { epoch, tenant, call, held_record, answer_by_ms } = request;
        match call {
            TenantCall::Admit(admission) => {
                let AdmissionRequest { key, key_required, client_ip, charge, selection, server } = admission;
                CompactRequest::Admit {
                    epoch,
                    tenant,
                    key: key.map(|key| *key.as_bytes()),
                    key_required,
                    client_ip,
                    charge,
                    selection,
                    server,
                    held_record,
                    answer_by_ms,
                }
            }
            call => {
                let request = TenantRequest { epoch, tenant, call, held_record, answer_by_ms };
                // Serializing this plain data type to a Vec cannot fail.
                CompactRequest::Json(serde_json::to_vec(&request).unwrap_or_default())
            }
        }
    }
}

impl TryFrom<CompactRequest> for TenantRequest {
    type Error = WireError;

    fn try_from(compact: CompactRequest) -> Result<Self, WireError> {
        match compact {
            CompactRequest::Admit {
                epoch,
                tenant,
                key,
                key_required,
                client_ip,
                charge,
                selection,
                server,
                held_record,
                answer_by_ms,
            } => {
                let key = key.map(KeyHash::from_bytes);
                let admission = AdmissionRequest { key, key_required, client_ip, charge, selection, server };
                Ok(TenantRequest { epoch, tenant, call: TenantCall::Admit(admission), held_record, answer_by_ms })
            }
            CompactRequest::Json(bytes) => from_json(&bytes),
        }
    }
}

impl From<&TenantAnswer> for CompactAnswer {
    fn from(answer: &TenantAnswer) -> Self {
        match answer {
            TenantAnswer::SameRecord(AdmittedSameRecord { limits, features, month, usage, rate, server: None }) => {
                CompactAnswer::SameRecord {
                    limits: *limits,
                    features: *features,
                    month: *month,
                    usage: *usage,
                    rate: *rate,
                }
            }
            other => CompactAnswer::Json(serde_json::to_vec(other).unwrap_or_default()),
        }
    }
}

impl TryFrom<CompactAnswer> for TenantAnswer {
    type Error = WireError;

    fn try_from(compact: CompactAnswer) -> Result<Self, WireError> {
        match compact {
            CompactAnswer::SameRecord { limits, features, month, usage, rate } => {
                Ok(TenantAnswer::SameRecord(AdmittedSameRecord { limits, features, month, usage, rate, server: None }))
            }
            CompactAnswer::Json(bytes) => from_json(&bytes),
        }
    }
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(bytes).map_err(|e| WireError::Undecodable(e.to_string()))
}

fn header() -> Vec<u8> {
    COMPACT_VERSION.to_be_bytes().to_vec()
}

/// A batch in the compact form; an empty one asks only whether the peer reads it.
pub fn encode_batch(requests: &[CompactRequest]) -> Vec<u8> {
    // Extending a Vec cannot fail.
    postcard::to_extend(requests, header()).unwrap_or_else(|_| header())
}

/// The answers to a compact batch, in its order.
pub fn encode_answers(answers: &[TenantAnswer]) -> Vec<u8> {
    let compact: Vec<CompactAnswer> = answers.iter().map(CompactAnswer::from).collect();
    postcard::to_extend(&compact, header()).unwrap_or_else(|_| header())
}

/// The body of a compact payload, or `None` for a payload of another version.
pub fn compact_body(bytes: &[u8]) -> Option<&[u8]> {
    let (version, body) = bytes.split_first_chunk::<2>()?;
    (u16::from_be_bytes(*version) == COMPACT_VERSION).then_some(body)
}

/// A compact batch's requests (its body, after [`compact_body`]).
pub fn decode_batch(body: &[u8]) -> Result<Vec<TenantRequest>, WireError> {
    let compact: Vec<CompactRequest> = postcard::from_bytes(body).map_err(|e| WireError::Undecodable(e.to_string()))?;
    compact.into_iter().map(TenantRequest::try_from).collect()
}

/// The answers to a compact batch (its body, after [`compact_body`]).
pub fn decode_answers(body: &[u8]) -> Result<Vec<TenantAnswer>, WireError> {
    let compact: Vec<CompactAnswer> = postcard::from_bytes(body).map_err(|e| WireError::Undecodable(e.to_string()))?;
    compact.into_iter().map(TenantAnswer::try_from).collect()
}

/// An audit event of a compact [`AuditBatch`]: its time as seconds and nanoseconds, its
/// parameters (rare, free-form) as JSON.
#[derive(Debug, Serialize, Deserialize)]
struct CompactAuditEvent<'a> {
    seconds: i64,
    nanos: u32,
    #[serde(borrow)]
    tenant_id: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    tool_id: Option<Cow<'a, str>>,
    params: Option<Vec<u8>>,
    result: AuditResult,
    duration: u64,
    #[serde(borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Cow<'a, str>,
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
}

impl<'a> From<&'a AuditEvent> for CompactAuditEvent<'a> {
    fn from(event: &'a AuditEvent) -> Self {
        let AuditEvent {
            timestamp,
            tenant_id,
            user_id,
            action,
            tool_id,
            params,
            result,
            duration,
            ip,
            user_agent,
            request_id,
            event_id,
        } = event;
        let borrowed = |text: &'a Option<String>| text.as_deref().map(Cow::Borrowed);
        CompactAuditEvent {
            seconds: timestamp.timestamp(),
            nanos: timestamp.timestamp_subsec_nanos(),
            tenant_id: Cow::Borrowed(tenant_id.as_str()),
            user_id: borrowed(user_id),
            action: Cow::Borrowed(action),
            tool_id: borrowed(tool_id),
            // Serializing a JSON value to a Vec cannot fail.
            params: params.as_ref().map(|params| serde_json::to_vec(params).unwrap_or_default()),
            result: *result,
            duration: *duration,
            ip: borrowed(ip),
            user_agent: borrowed(user_agent),
            request_id: Cow::Borrowed(request_id),
            event_id: borrowed(event_id),
        }
    }
}

impl TryFrom<CompactAuditEvent<'_>> for AuditEvent {
    type Error = WireError;

    fn try_from(compact: CompactAuditEvent<'_>) -> Result<Self, WireError> {
        let undecodable = |what: &str| WireError::Undecodable(what.to_string());
        let owned = |text: Option<Cow<'_, str>>| text.map(Cow::into_owned);
        Ok(AuditEvent {
            timestamp: chrono::DateTime::from_timestamp(compact.seconds, compact.nanos)
                .ok_or_else(|| undecodable("an audit event's time is out of range"))?,
            tenant_id: TenantId::parse(&compact.tenant_id).map_err(|e| undecodable(&e.to_string()))?,
            user_id: owned(compact.user_id),
            action: compact.action.into_owned(),
            tool_id: owned(compact.tool_id),
            params: compact.params.map(|bytes| from_json(&bytes)).transpose()?,
            result: compact.result,
            duration: compact.duration,
            ip: owned(compact.ip),
            user_agent: owned(compact.user_agent),
            request_id: compact.request_id.into_owned(),
            event_id: owned(compact.event_id),
        })
    }
}

/// An audit batch in the compact form.
pub fn encode_audit(batch: &AuditBatch) -> Vec<u8> {
    let events: Vec<CompactAuditEvent<'_>> = batch.events.iter().map(CompactAuditEvent::from).collect();
    postcard::to_extend(&events, header()).unwrap_or_else(|_| header())
}

/// A compact audit batch (its body, after [`compact_body`]).
pub fn decode_audit(body: &[u8]) -> Result<AuditBatch, WireError> {
    let events: Vec<CompactAuditEvent<'_>> =
        postcard::from_bytes(body).map_err(|e| WireError::Undecodable(e.to_string()))?;
    Ok(AuditBatch { events: events.into_iter().map(AuditEvent::try_from).collect::<Result<_, _>>()? })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use connectors_actors::admission::{Admission, Denial, ServerLookup, TenantSnapshot};
    use connectors_actors::rate_windows::{Window, WindowStatus};
    use connectors_actors::tenant::{TenantRecord, TenantStatus};
    use connectors_actors::tenant_call::TenantReply;

    use super::*;
    use crate::transport::wire::Refusal;

    fn admit(tenant: &str, server: Option<&str>) -> TenantRequest {
        TenantRequest {
            epoch: 9,
            tenant: TenantId::parse(tenant).unwrap(),
            call: TenantCall::Admit(AdmissionRequest {
                key: Some(KeyHash::of("ck_secret")),
                key_required: true,
                client_ip: "10.1.2.3".parse().unwrap(),
                charge: Some(Quota::ToolInvocations),
                selection: true,
                server: server.map(|name| ServerName::try_from(name.to_string()).unwrap()),
            }),
            held_record: Some(42),
            answer_by_ms: Some(1_790_000_000_123),
        }
    }

    fn rate() -> RateStatus {
        let window = |window, limit| WindowStatus { window, limit, remaining: limit - 1, reset: 1_790_000_060 };
        RateStatus {
            admitted: true,
            now: 1_790_000_000,
            windows: [window(Window::Minute, 60), window(Window::Hour, 1_000), window(Window::Day, 10_000)],
        }
    }

    fn same_record(server: Option<ServerLookup>) -> TenantAnswer {
        TenantAnswer::SameRecord(AdmittedSameRecord {
            limits: Limits {
                requests_per_minute: 60,
                requests_per_hour: 1_000,
                requests_per_day: 10_000,
                max_custom_servers: 2,
                max_tool_invocations: 500,
                max_storage_mb: 10,
            },
            features: Features { custom_servers: true, oauth: false, advanced_analytics: true },
            month: Month { year: 2026, month: 12 },
            usage: UsageCounters { requests: 7, api_calls: 6, selections: 2, ..Default::default() },
            rate: Some(rate()),
            server,
        })
    }

    fn round_trip_requests(requests: Vec<TenantRequest>) -> Vec<TenantRequest> {
        let compact: Vec<CompactRequest> = requests.into_iter().map(CompactRequest::from).collect();
        let payload = encode_batch(&compact);
        decode_batch(compact_body(&payload).expect("a compact payload")).unwrap()
    }

    fn round_trip_answers(answers: &[TenantAnswer]) -> Vec<TenantAnswer> {
        decode_answers(compact_body(&encode_answers(answers)).expect("a compact payload")).unwrap()
    }

    #[test]
    fn an_admission_crosses_field_by_field_and_any_other_call_as_json() {
        let snapshot = TenantRequest {
            epoch: 3,
            tenant: TenantId::parse("globex").unwrap(),
            call: TenantCall::Snapshot,
            held_record: None,
            answer_by_ms: None,
        };
        let sent = vec![admit("acme", None), snapshot, admit("initech", Some("crm"))];
        let compact: Vec<CompactRequest> = sent.iter().cloned().map(CompactRequest::from).collect();
        assert!(matches!(compact[0], CompactRequest::Admit { .. }));
        assert!(matches!(compact[1], CompactRequest::Json(_)));
        let received = round_trip_requests(sent.clone());
        // Every field arrives as sent (compared as their JSON, which writes them all).
        let json = |requests: &[TenantRequest]| serde_json::to_value(requests).unwrap();
        assert_eq!(json(&received), json(&sent));
    }

    #[test]
    fn an_answer_without_the_record_crosses_field_by_field_and_any_other_as_json() {
        let refused = TenantAnswer::Ok(TenantReply::Admission(Admission {
            verdict: Err(Denial::RateLimited { retry_after: 12 }),
            rate: Some(rate()),
            server: None,
        }));
        let sent = vec![
            same_record(None),
            same_record(Some(ServerLookup::NotFound)),
            refused,
            TenantAnswer::Err(Refusal::NotFound(TenantId::parse("acme").unwrap())),
        ];
        assert!(matches!(CompactAnswer::from(&sent[0]), CompactAnswer::SameRecord { .. }));
        assert!(matches!(CompactAnswer::from(&sent[1]), CompactAnswer::Json(_)));
        let received = round_trip_answers(&sent);
        let json = |answers: &[TenantAnswer]| serde_json::to_value(answers).unwrap();
        assert_eq!(json(&received), json(&sent));
    }

    #[test]
    fn the_probe_is_an_empty_batch_answered_by_an_empty_list() {
        assert!(round_trip_requests(Vec::new()).is_empty());
        assert!(round_trip_answers(&[]).is_empty());
    }

    #[test]
    fn a_json_payload_is_not_taken_for_a_compact_one_nor_garbage_for_a_batch() {
        let json = crate::transport::wire::encode(&Vec::<TenantAnswer>::new());
        assert_eq!(compact_body(&json), None);
        assert_eq!(compact_body(&[1]), None);
        assert!(matches!(decode_batch(&[5, 0xff, 0xff]), Err(WireError::Undecodable(_))));
        assert!(matches!(decode_answers(&[1, 9]), Err(WireError::Undecodable(_))));
        // A compact admission that carries a tenant id this node refuses is an error, not a request.
        let bad = encode_batch(&[CompactRequest::Json(b"{\"epoch\":1}".to_vec())]);
        assert!(matches!(decode_batch(compact_body(&bad).unwrap()), Err(WireError::Undecodable(_))));
    }

    #[test]
    fn a_full_admission_goes_as_json_with_its_record() {
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let record = TenantRecord {
            id: TenantId::parse("acme").unwrap(),
            name: "Acme".into(),
            email: Some("ops@acme.example".into()),
            plan: "pro".into(),
            status: TenantStatus::Active,
            limits: Default::default(),
            features: Default::default(),
            security: Default::default(),
            mcp: Default::default(),
            created_at: now,
            updated_at: now,
            keys: Vec::new(),
        };
        let TenantAnswer::SameRecord(same) = same_record(None) else { unreachable!() };
        let tenant = TenantSnapshot {
            record: Arc::new(record),
            record_fingerprint: None,
            limits: same.limits,
            features: same.features,
            month: same.month,
            usage: same.usage,
        };
        let full =
            TenantAnswer::Ok(TenantReply::Admission(Admission { verdict: Ok(tenant), rate: same.rate, server: None }));
        assert!(matches!(CompactAnswer::from(&full), CompactAnswer::Json(_)));
        let received = round_trip_answers(std::slice::from_ref(&full));
        assert_eq!(serde_json::to_value(&received).unwrap(), serde_json::to_value([full]).unwrap());
    }

    #[test]
    fn an_audit_batch_crosses_whole_to_the_nanosecond() {
        let timestamp = chrono::DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap();
        let full = AuditEvent {
            timestamp,
            tenant_id: TenantId::parse("acme").unwrap(),
            user_id: Some("user-7".into()),
            action: "tools.invoke".into(),
            tool_id: Some("crm.find".into()),
            params: Some(serde_json::json!({"query": "Lisbon", "limit": 3, "nested": [true, null]})),
            result: AuditResult::Denied,
            duration: 17,
            ip: Some("10.1.2.3".into()),
            user_agent: Some("curl/8".into()),
            request_id: "req-1".into(),
            event_id: Some("node-a.42".into()),
        };
        let bare = AuditEvent {
            user_id: None,
            tool_id: None,
            params: None,
            ip: None,
            user_agent: None,
            event_id: None,
            result: AuditResult::Success,
            ..full.clone()
        };
        let batch = AuditBatch { events: vec![full, bare] };
        let payload = encode_audit(&batch);
        let received = decode_audit(compact_body(&payload).expect("a compact payload")).unwrap();
        assert_eq!(received.events, batch.events);
        assert!(
            decode_audit(compact_body(&encode_audit(&AuditBatch { events: Vec::new() })).unwrap())
                .unwrap()
                .events
                .is_empty()
        );
        assert!(matches!(decode_audit(&[1, 2, 3]), Err(WireError::Undecodable(_))));
    }
}
