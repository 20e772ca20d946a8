//! The quarantine file: batches the recorder set aside because the store kept refusing them,
//! appended under the data dir for an operator to replay, one JSON object a line:
//!
//! `{"quarantinedAt": "<RFC 3339>", "error": "<the store's answer>", "batch": {"id": "<32 hex
//! digits>", "audit": [<audit events>], "usage": [{"tenant", "day", "counters"}], "checkpoints":
//! [[<tenant>, {"windows": [...]}]]}}`
//!
//! A line is written whole and synced before the recorder lets go of the batch (it may hold
//! usage, which is billed); a write that fails part way is cut off again, so every line parses.
//! The file is readable by its owner only: audit events name users and addresses.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connectors_actors::quarantine::{QuarantineError, QuarantineSink};
use connectors_actors::store::{Batch, StoreError};
use serde::Serialize;

/// The file's name in the data dir.
pub const FILE_NAME: &str = "recorder-quarantine.jsonl";

pub struct QuarantineFile {
    path: PathBuf,
}

impl QuarantineFile {
    /// Batches go to `path`, created on the first one.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl fmt::Display for QuarantineFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    quarantined_at: DateTime<Utc>,
    error: String,
    batch: &'a Batch,
}

#[async_trait]
impl QuarantineSink for QuarantineFile {
    async fn quarantine(&self, batch: &Batch, error: &StoreError) -> Result<(), QuarantineError> {
        let line = Line { quarantined_at: Utc::now(), error: error.to_string(), batch };
        let mut line = serde_json::to_vec(&line).map_err(|e| QuarantineError(format!("cannot encode it: {e}")))?;
        line.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || append(&path, &line))
            .await
            .map_err(|e| QuarantineError(format!("the write did not finish: {e}")))?
            .map_err(|e| QuarantineError(format!("cannot write {}: {e}", self.path.display())))
    }
}

/// Appends `line` and syncs it; on an error, cuts the file back to where it ended.
fn append(path: &Path, line: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let end = file.metadata()?.len();
    let written = file.write_all(line).and_then(|()| file.sync_data());
    if written.is_err()
        && let Err(error) = file.set_len(end)
    {
        // The next line starts after a torn one: readers must skip it.
        tracing::error!(path = %path.display(), %error, "cannot cut a failed write back; the quarantine file ends in a partial line");
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use chrono::{NaiveDate, TimeZone};
    use connectors_actors::audit::{AuditEvent, AuditResult};
    use connectors_actors::rate_windows::WindowCount;
    use connectors_actors::store::{Checkpoint, UsageDelta};
    use connectors_actors::tenant::TenantId;
    use connectors_actors::usage::UsageCounters;

    use super::*;

    fn batch(id: u128, request_id: &str) -> Batch {
        let acme = TenantId::parse("acme").unwrap();
        Batch {
            id: Some(id),
            audit: vec![AuditEvent {
                timestamp: Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap(),
                tenant_id: acme.clone(),
                user_id: Some("u1".into()),
                action: "tools.invoke".into(),
                tool_id: Some("github.search".into()),
                params: Some(serde_json::json!({"query": "line\nbreak \"quoted\""})),
                result: AuditResult::Success,
                duration: 12,
                ip: Some("10.0.0.1".into()),
                user_agent: None,
                request_id: request_id.into(),
                event_id: None,
            }],
            usage: vec![UsageDelta {
                tenant: acme.clone(),
                day: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
                counters: UsageCounters { requests: 3, api_calls: 2, tool_invocations: 1, ..Default::default() },
            }],
            checkpoints: vec![(acme, Checkpoint { windows: [WindowCount { start: 60, count: 3 }; 3] })],
        }
    }

    #[tokio::test]
    async fn each_batch_is_one_line_that_parses_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let sink: Arc<dyn QuarantineSink> = Arc::new(QuarantineFile::new(path.clone()));
        let (first, second) = (batch(u128::MAX - 1, "r1"), batch(7, "r2"));
        sink.quarantine(&first, &StoreError::Corrupt("WRONGTYPE".into())).await.unwrap();
        sink.quarantine(&second, &StoreError::Backend("too large".into())).await.unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["batch"]["id"], format!("{:032x}", u128::MAX - 1));
        assert!(lines[0]["error"].as_str().unwrap().contains("WRONGTYPE"));
        assert!(lines[1]["quarantinedAt"].is_string());
        let parsed: Vec<Batch> = lines.iter().map(|l| serde_json::from_value(l["batch"].clone()).unwrap()).collect();
        assert_eq!(parsed, [first, second]);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_written_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join(FILE_NAME);
        let error = QuarantineFile::new(path).quarantine(&batch(1, "r"), &StoreError::Corrupt("x".into())).await;
        assert!(error.unwrap_err().to_string().contains("missing"));
    }
}
