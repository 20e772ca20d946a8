//! What crosses a node link, and how it is framed.
//!
//! Every payload starts with a two-byte version (big-endian), then JSON. JSON because it lets
//! old and new nodes interoperate during a rolling upgrade: a field added in a newer version is
//! ignored by older readers and defaults for newer ones. A reader refuses versions it does not
//! know instead of misreading them.

use connectors_actors::supervisor::DirectoryError;
use connectors_actors::tenant::TenantId;
use connectors_actors::tenant_call::{TenantCall, TenantReply};
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

pub type TenantAnswer = Result<TenantReply, Refusal>;

/// Asks a peer to confirm it let go of the shards it no longer owns as of `epoch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub from: NodeId,
    pub epoch: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReleaseAnswer {
    Released,
    /// Not yet at that view, or still stopping actors: ask again shortly.
    NotYet {
        epoch: u64,
    },
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
        let request = TenantRequest { epoch: 7, tenant: TenantId::parse("acme").unwrap(), call: TenantCall::Snapshot };
        let decoded: TenantRequest = decode(&encode(&request)).unwrap();
        assert_eq!(decoded.epoch, 7);
        assert_eq!(decoded.tenant.as_str(), "acme");
        assert!(matches!(decoded.call, TenantCall::Snapshot));
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
}
