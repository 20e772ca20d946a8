//! The quarantine port: where the recorder sets aside, whole, a batch the store keeps refusing,
//! so that later batches are not stuck behind it and what it holds (usage above all) is not lost.
//! An operator replays it from there. The adapter (a file under the data dir) lives in the
//! `connectors` crate.

use async_trait::async_trait;

use crate::store::{Batch, StoreError};

/// `Display` names where the batches go, for the log.
#[async_trait]
pub trait QuarantineSink: Send + Sync + std::fmt::Display + 'static {
    /// Keeps `batch` durably, with the error the store answered. On an error the recorder keeps
    /// the batch and tries it again later.
    async fn quarantine(&self, batch: &Batch, error: &StoreError) -> Result<(), QuarantineError>;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set the batch aside: {0}")]
pub struct QuarantineError(pub String);
