//! What crosses a node link, and how it is framed.
//!
//! Every payload starts with a two-byte version (big-endian), then JSON. JSON because it lets
//! old and new nodes interoperate during a rolling upgrade: a field added in a newer version is
//! ignored by older readers and defaults for newer ones. A reader refuses versions it does not
//! know instead of misreading them.
//!
//! Hand-offs, the one bulk payload (thousands of tenants in a drain), are written compactly
//! instead: version [`HAND_OFF_COMPACT_VERSION`], postcard. A node of a version that does not
//! read it keeps nothing and its tenants start from the store; version 1 (JSON) is still read.
//! So are the hot path's batches of tenant requests and of audit events, between nodes that
//! read them ([`super::compact`]).

use std::sync::Arc;

use connectors_actors::admission::{Admission, ServerLookup, TenantSnapshot};
use connectors_actors::audit::AuditEvent;
use connectors_actors::hand_off::TenantHandOff;
use connectors_actors::rate_windows::{RateStatus, WindowCount};
use connectors_actors::supervisor::DirectoryError;
use connectors_actors::tenant::{Features, Limits, TenantId, TenantRecord};
use connectors_actors::tenant_call::{TenantCall, TenantReply};
use connectors_actors::usage::{Month, UsageCounters};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::shard_map::NodeId;

/// The payload version this build writes.
pub const WIRE_VERSION: u16 = 1;
/// The oldest payload version this build still reads.
pub const MIN_WIRE_VERSION: u16 = 1;

/// A question for the owner of a tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRequest {
    /// The sender's view, for the owner's logs when the two disagree.
    pub epoch: u64,
    pub tenant: TenantId,
    pub call: TenantCall,
    /// The [`TenantRecord::fingerprint`] of the tenant record the sender holds from an earlier
    /// answer: an admission that finds that record still current is answered without it
    /// ([`TenantAnswer::SameRecord`]), which spares both nodes most of the payload. (Added after
    /// version 1: older owners ignore it and always send the record.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_record: Option<u64>,
    /// When the sender stops waiting for the answer, on its wall clock (milliseconds since the
    /// Unix epoch): an admission that waited past it in a paused owner's socket is refused
    /// uncounted even though the owner has only just received it. (Added after version 1: older
    /// senders leave it out, and their calls are timed from their receipt alone.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_by_ms: Option<i64>,
}

/// Why the owner did not answer a [`TenantRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("tenant `{0}` not found")]
    NotFound(TenantId),
    /// The receiver does not serve this tenant's shard in its view `epoch` (ownership moved).
    #[error("node `{node}` does not serve this tenant in view {epoch}")]
    NotOwner { node: NodeId, epoch: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("unsupported payload version {0}")]
    UnsupportedVersion(u16),
}

impl From<DirectoryError> for Refusal {
    fn from(error: DirectoryError) -> Self {
        match error {
            DirectoryError::NotFound(id) => Refusal::NotFound(id),
            other => Refusal::Unavailable(other.to_string()),
        }
    }
}

/// The owner's answer to a [`TenantRequest`]. `Ok` and `Err` are spelled as a `Result` is,
/// which is all that version 1 sent; `SameRecord` only goes to a sender that set `held_record`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TenantAnswer {
    Ok(TenantReply),
    Err(Refusal),
    /// An admitted request of a tenant whose record is the one the sender holds.
    SameRecord(AdmittedSameRecord),
}

/// An admission with everything but the tenant record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdmittedSameRecord {
    pub limits: Limits,
    pub features: Features,
    pub month: Month,
    pub usage: UsageCounters,
    pub rate: Option<RateStatus>,
    /// As [`Admission::server`]. (Added after version 1: absent from an older owner.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerLookup>,
}

impl TenantAnswer {
    /// The answer to `reply` for a sender that holds the record with fingerprint `held_record`.
    pub fn to_sender(reply: Result<TenantReply, Refusal>, held_record: Option<u64>) -> Self {
        match reply {
            Ok(TenantReply::Admission(Admission { verdict: Ok(tenant), rate, server }))
                if held_record.is_some_and(|held| held == tenant.record_fingerprint()) =>
            {
                let TenantSnapshot { limits, features, month, usage, .. } = tenant;
                TenantAnswer::SameRecord(AdmittedSameRecord { limits, features, month, usage, rate, server })
            }
            Ok(reply) => TenantAnswer::Ok(reply),
            Err(refusal) => TenantAnswer::Err(refusal),
        }
    }

    /// The reply, with `held` (the record whose fingerprint was sent) put back into a
    /// `SameRecord` answer.
    pub fn into_reply(self, held: Option<Arc<TenantRecord>>) -> Result<TenantReply, Refusal> {
        match self {
            TenantAnswer::Ok(reply) => Ok(reply),
            TenantAnswer::Err(refusal) => Err(refusal),
            TenantAnswer::SameRecord(same) => {
                let record = held.ok_or_else(|| {
                    Refusal::Unavailable("the owner answered without a tenant record this node does not hold".into())
                })?;
                let AdmittedSameRecord { limits, features, month, usage, rate, server } = same;
                let tenant = TenantSnapshot { record, record_fingerprint: None, limits, features, month, usage };
                Ok(TenantReply::Admission(Admission { verdict: Ok(tenant), rate, server }))
            }
        }
    }
}

/// Asks a peer to confirm it let go of the shards it no longer owns as of `epoch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub from: NodeId,
    pub epoch: u64,
    /// The sender's view fingerprint (`View::fingerprint`). (Added after the first version: an
    /// older sender names the epoch only.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReleaseAnswer {
    Released,
    /// Not yet at that view, or still stopping actors: ask again shortly.
    NotYet {
        epoch: u64,
    },
    /// The receiver holds another view under the same epoch: the table was reset. (Sent only to
    /// senders that named their view, which know this variant.)
    Conflict {
        epoch: u64,
    },
}

/// Tenants' live state, from their previous owner to the node that owns them in view `epoch`
/// (sent after the old owner stopped them and committed the same state to the store, before it
/// confirms the release). (Added after the first version: an older node drops it, the sender's
/// call times out, and the new owner reads the state from the store instead.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandOffBatch {
    pub epoch: u64,
    pub tenants: Vec<TenantHandOff>,
}

/// The payload version of a compact [`HandOffBatch`] ([`encode_hand_offs`]): apart from the
/// versions of JSON payloads, which count up from 1, so that no reader takes one for the other.
pub const HAND_OFF_COMPACT_VERSION: u16 = 0x0100;

/// A [`HandOffBatch`] as postcard writes it: numbers as varints and no field names. The tenant
/// record stays JSON inside, because its optional fields are left out when empty, which only a
/// self-describing format can read back.
#[derive(Serialize, Deserialize)]
struct CompactHandOffBatch {
    epoch: u64,
    tenants: Vec<CompactHandOff>,
}

#[derive(Serialize, Deserialize)]
struct CompactHandOff {
    record: Vec<u8>,
    windows: [WindowCount; 3],
    month: Month,
    usage: UsageCounters,
}

/// A hand-off batch in the compact form.
pub fn encode_hand_offs(batch: &HandOffBatch) -> Vec<u8> {
    let tenants = batch
        .tenants
        .iter()
        .map(|tenant| CompactHandOff {
            // Serializing a record to JSON cannot fail (string keys, no non-finite floats).
            record: serde_json::to_vec(&tenant.record).unwrap_or_default(),
            windows: tenant.windows,
            month: tenant.month,
            usage: tenant.usage,
        })
        .collect();
    let compact = CompactHandOffBatch { epoch: batch.epoch, tenants };
    let header = || HAND_OFF_COMPACT_VERSION.to_be_bytes().to_vec();
    // Extending a Vec cannot fail.
    postcard::to_extend(&compact, header()).unwrap_or_else(|_| header())
}

/// A hand-off batch in either form: compact, or JSON (version 1, from older nodes).
pub fn decode_hand_offs(bytes: &[u8]) -> Result<HandOffBatch, WireError> {
    let (version, body) = bytes.split_first_chunk::<2>().ok_or(WireError::Truncated)?;
    if u16::from_be_bytes(*version) != HAND_OFF_COMPACT_VERSION {
        return decode(bytes);
    }
    let undecodable = |error: &dyn std::fmt::Display| WireError::Undecodable(error.to_string());
    let compact: CompactHandOffBatch = postcard::from_bytes(body).map_err(|e| undecodable(&e))?;
    let tenants = compact
        .tenants
        .into_iter()
        .map(|tenant| {
            let record = serde_json::from_slice(&tenant.record).map_err(|e| undecodable(&e))?;
            Ok(TenantHandOff { record, windows: tenant.windows, month: tenant.month, usage: tenant.usage })
        })
        .collect::<Result<_, WireError>>()?;
    Ok(HandOffBatch { epoch: compact.epoch, tenants })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOffAnswer {
    /// How many of the batch's tenants the receiver will start from their hand-off (the others,
    /// of shards it is not acquiring in that view, it ignores).
    pub kept: usize,
}

/// Audit events of tenants the receiver owns, from the node that served the requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditBatch {
    pub events: Vec<AuditEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAnswer {
    /// Every event of the batch is in the receiver's recorder.
    Recorded,
    /// None is: the sender records them itself.
    NotRecorded,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("payload too short")]
    Truncated,
    #[error("unsupported payload version {0}")]
    UnsupportedVersion(u16),
    #[error("undecodable payload: {0}")]
    Undecodable(String),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = WIRE_VERSION.to_be_bytes().to_vec();
    // Serializing these plain data types to a Vec cannot fail.
    if serde_json::to_writer(&mut bytes, value).is_err() {
        bytes.truncate(2);
    }
    bytes
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (version, body) = bytes.split_first_chunk::<2>().ok_or(WireError::Truncated)?;
    let version = u16::from_be_bytes(*version);
    if !(MIN_WIRE_VERSION..=WIRE_VERSION).contains(&version) {
        return Err(WireError::UnsupportedVersion(version));
    }
    serde_json::from_slice(body).map_err(|e| WireError::Undecodable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_survives_the_round_trip() {
        let request = TenantRequest {
            epoch: 7,
            tenant: TenantId::parse("acme").unwrap(),
            call: TenantCall::Snapshot,
            held_record: None,
            answer_by_ms: Some(1_700_000_000_000),
        };
        let decoded: TenantRequest = decode(&encode(&request)).unwrap();
        assert_eq!(decoded.epoch, 7);
        assert_eq!(decoded.tenant.as_str(), "acme");
        assert!(matches!(decoded.call, TenantCall::Snapshot));
        assert_eq!(decoded.answer_by_ms, Some(1_700_000_000_000));
    }

    #[test]
    fn a_json_batch_of_requests_is_their_array() {
        let requests: Vec<TenantRequest> = ["acme", "globex", "initech"]
            .iter()
            .enumerate()
            .map(|(i, id)| TenantRequest {
                epoch: i as u64,
                tenant: TenantId::parse(id).unwrap(),
                call: TenantCall::Snapshot,
                held_record: None,
                answer_by_ms: None,
            })
            .collect();
        // What a node of the version before compact batches sends.
        let mut batch = WIRE_VERSION.to_be_bytes().to_vec();
        batch.extend_from_slice(b"[");
        for (i, request) in requests.iter().enumerate() {
            if i > 0 {
                batch.push(b',');
            }
            batch.extend_from_slice(&serde_json::to_vec(request).unwrap());
        }
        batch.extend_from_slice(b"]");
        let decoded: Vec<TenantRequest> = decode(&batch).unwrap();
        let tenants: Vec<(u64, &str)> = decoded.iter().map(|r| (r.epoch, r.tenant.as_str())).collect();
        assert_eq!(tenants, [(0, "acme"), (1, "globex"), (2, "initech")]);
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused() {
        let mut bytes = encode(&ReleaseAnswer::Released);
        bytes[..2].copy_from_slice(&(WIRE_VERSION + 1).to_be_bytes());
        assert_eq!(decode::<ReleaseAnswer>(&bytes), Err(WireError::UnsupportedVersion(WIRE_VERSION + 1)));
        assert_eq!(decode::<ReleaseAnswer>(&[1]), Err(WireError::Truncated));
        assert!(matches!(decode::<ReleaseAnswer>(&[0, 1, b'{']), Err(WireError::Undecodable(_))));
    }

    #[test]
    fn a_newer_field_is_ignored_by_this_reader() {
        let mut bytes = WIRE_VERSION.to_be_bytes().to_vec();
        bytes.extend_from_slice(br#"{"from":"n1","epoch":3,"addedLater":true}"#);
        let request: ReleaseRequest = decode(&bytes).unwrap();
        assert_eq!(request.epoch, 3);
    }

    fn admitted(record: TenantRecord) -> TenantReply {
        let limits = Limits {
            requests_per_minute: 60,
            requests_per_hour: 1_000,
            requests_per_day: 10_000,
            max_custom_servers: 1,
            max_tool_invocations: 100,
            max_storage_mb: 10,
        };
        let features = Features { custom_servers: false, oauth: true, advanced_analytics: false };
        let now = record.created_at;
        let tenant = TenantSnapshot {
            record: Arc::new(record),
            record_fingerprint: None,
            limits,
            features,
            month: Month::of(now),
            usage: UsageCounters::default(),
        };
        TenantReply::Admission(Admission { verdict: Ok(tenant), rate: None, server: None })
    }

    fn record(name: &str) -> TenantRecord {
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        TenantRecord {
            id: TenantId::parse("acme").unwrap(),
            name: name.into(),
            email: None,
            plan: "free".into(),
            status: connectors_actors::tenant::TenantStatus::Active,
            limits: Default::default(),
            features: Default::default(),
            security: Default::default(),
            mcp: Default::default(),
            created_at: now,
            updated_at: now,
            keys: Vec::new(),
        }
    }

    fn admitted_record(reply: Result<TenantReply, Refusal>) -> Arc<TenantRecord> {
        match reply {
            Ok(TenantReply::Admission(Admission { verdict: Ok(tenant), .. })) => tenant.record,
            other => panic!("expected an admission, got {other:?}"),
        }
    }

    #[test]
    fn an_admission_leaves_out_only_the_record_the_sender_holds() {
        let current = record("Acme");
        let held = Arc::new(current.clone());
        let answer = TenantAnswer::to_sender(Ok(admitted(current.clone())), Some(held.fingerprint()));
        let bytes = encode(&answer);
        assert!(!String::from_utf8_lossy(&bytes).contains("Acme"), "the record was sent anyway");
        let decoded: TenantAnswer = decode(&bytes).unwrap();
        assert!(matches!(decoded, TenantAnswer::SameRecord(_)));
        assert!(Arc::ptr_eq(&admitted_record(decoded.into_reply(Some(held.clone()))), &held));

        // A changed record (here its name) is sent whole, whatever the sender holds.
        let renamed = record("Acme Corp");
        let answer = TenantAnswer::to_sender(Ok(admitted(renamed.clone())), Some(held.fingerprint()));
        let decoded: TenantAnswer = decode(&encode(&answer)).unwrap();
        assert_eq!(*admitted_record(decoded.into_reply(Some(held))), renamed);
    }

    #[test]
    fn a_record_left_out_but_not_held_is_refused_not_invented() {
        let answer = TenantAnswer::to_sender(Ok(admitted(record("Acme"))), Some(record("Acme").fingerprint()));
        assert!(matches!(answer.into_reply(None), Err(Refusal::Unavailable(_))));
    }

    fn hand_offs(count: u64) -> HandOffBatch {
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let tenants = (0..count)
            .map(|i| TenantHandOff {
                record: record(&format!("Tenant {i}")),
                windows: [
                    WindowCount { start: 1_790_000_000, count: i },
                    WindowCount { start: 1_789_999_200, count: 40 * i },
                    WindowCount { start: 1_789_948_800, count: 900 * i },
                ],
                month: Month::of(now),
                usage: UsageCounters {
                    requests: 1_000 + i,
                    api_calls: 990 + i,
                    rate_limited: 10,
                    ..Default::default()
                },
            })
            .collect();
        HandOffBatch { epoch: 12, tenants }
    }

    #[test]
    fn hand_offs_travel_compactly_and_older_json_ones_still_decode() {
        let batch = hand_offs(50);
        let compact = encode_hand_offs(&batch);
        assert_eq!(compact[..2], HAND_OFF_COMPACT_VERSION.to_be_bytes());
        let decoded = decode_hand_offs(&compact).unwrap();
        assert_eq!((decoded.epoch, &decoded.tenants), (12, &batch.tenants));

        // What a node of version 1 sends is read as before.
        let json = encode(&batch);
        let decoded = decode_hand_offs(&json).unwrap();
        assert_eq!((decoded.epoch, &decoded.tenants), (12, &batch.tenants));
        assert!(compact.len() * 10 < json.len() * 7, "compact {} bytes, JSON {} bytes", compact.len(), json.len());
    }

    #[test]
    fn a_damaged_compact_hand_off_is_refused_not_misread() {
        let compact = encode_hand_offs(&hand_offs(3));
        for cut in [3, compact.len() / 2, compact.len() - 1] {
            assert!(matches!(decode_hand_offs(&compact[..cut]), Err(WireError::Undecodable(_))), "cut at {cut}");
        }
        assert_eq!(decode_hand_offs(&[0]).err(), Some(WireError::Truncated));
        let mut newer = compact.clone();
        newer[..2].copy_from_slice(&(HAND_OFF_COMPACT_VERSION + 1).to_be_bytes());
        assert_eq!(decode_hand_offs(&newer).err(), Some(WireError::UnsupportedVersion(HAND_OFF_COMPACT_VERSION + 1)));
    }

    #[test]
    fn version_one_answers_still_decode() {
        // Version 1 sent a plain `Result`; its `Ok` and `Err` spellings are kept.
        let full = serde_json::to_vec(&Ok::<_, Refusal>(admitted(record("Acme")))).unwrap();
        let refused =
            serde_json::to_vec(&Err::<TenantReply, _>(Refusal::NotFound(TenantId::parse("x").unwrap()))).unwrap();
        for (body, admitted) in [(full, true), (refused, false)] {
            let mut bytes = 1u16.to_be_bytes().to_vec();
            bytes.extend(body);
            let reply = decode::<TenantAnswer>(&bytes).unwrap().into_reply(None);
            assert_eq!(reply.is_ok(), admitted);
        }
        // And a request without `held_record` (version 1) reads as holding nothing.
        let mut bytes = 1u16.to_be_bytes().to_vec();
        bytes.extend_from_slice(br#"{"epoch":1,"tenant":"acme","call":"Snapshot"}"#);
        assert_eq!(decode::<TenantRequest>(&bytes).unwrap().held_record, None);
    }
}
