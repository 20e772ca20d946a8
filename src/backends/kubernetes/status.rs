//! What a Deployment's and a Job's status say about a deployment: still going, done, or failed
//! with a reason a tenant can read (the cluster's own condition messages).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not there yet; the text says what it waits for.
    Waiting(String),
    Done,
    Failed(String),
}

/// A server's Deployment: done once its one replica is updated, ready and available.
pub fn deployment(deployment: &Deployment) -> Progress {
    let Some(status) = &deployment.status else { return Progress::Waiting("no status yet".into()) };
    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Progress::Waiting("the cluster has not seen the latest spec yet".into());
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    let message = |c: &k8s_openapi::api::apps::v1::DeploymentCondition| {
        c.message.clone().or_else(|| c.reason.clone()).unwrap_or_default()
    };
    if let Some(failure) = condition("ReplicaFailure").filter(|c| c.status == "True") {
        return Progress::Failed(format!("the cluster cannot create the server's pod: {}", message(failure)));
    }
    if let Some(progressing) = condition("Progressing")
        && progressing.status == "False"
    {
        return Progress::Failed(format!("the server did not become ready in time: {}", message(progressing)));
    }
    let available = condition("Available").is_some_and(|c| c.status == "True");
    let ready = status.ready_replicas.unwrap_or(0) >= 1 && status.updated_replicas.unwrap_or(0) >= 1;
    if available && ready {
        return Progress::Done;
    }
    let waiting = condition("Progressing").map(message).filter(|m| !m.is_empty());
    Progress::Waiting(waiting.unwrap_or_else(|| "waiting for the server's pod to be ready".into()))
}

/// A build Job: done when complete, failed when it failed (it is never retried in the cluster).
pub fn job(job: &Job) -> Progress {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let holds = |kind: &str| conditions.iter().find(|c| c.type_ == kind && c.status == "True");
    if holds("Complete").is_some() {
        return Progress::Done;
    }
    if let Some(failed) = holds("Failed") {
        let why = failed.message.clone().or_else(|| failed.reason.clone()).unwrap_or_default();
        return Progress::Failed(format!("building the image failed: {why}"));
    }
    Progress::Waiting("building the image".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment_with(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({ "metadata": { "name": "mcp-a", "generation": 2 }, "status": status })).unwrap()
    }

    #[test]
    fn a_deployment_is_done_when_available_with_a_ready_replica_of_its_latest_spec() {
        let available = json!([{ "type": "Available", "status": "True" }]);
        let old = deployment_with(
            json!({ "observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1, "conditions": available }),
        );
        assert!(matches!(deployment(&old), Progress::Waiting(_)));
        let current = deployment_with(
            json!({ "observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 1, "conditions": available }),
        );
        assert_eq!(deployment(&current), Progress::Done);
        let not_ready =
            deployment_with(json!({ "observedGeneration": 2, "updatedReplicas": 1, "conditions": available }));
        assert!(matches!(deployment(&not_ready), Progress::Waiting(_)));
    }

    #[test]
    fn a_replica_failure_or_a_missed_deadline_fails_with_the_clusters_message() {
        let quota = deployment_with(json!({ "observedGeneration": 2, "conditions": [
            { "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "exceeded quota: tenant-quota" },
        ]}));
        assert_eq!(
            deployment(&quota),
            Progress::Failed("the cluster cannot create the server's pod: exceeded quota: tenant-quota".into())
        );
        let late = deployment_with(json!({ "observedGeneration": 2, "conditions": [
            { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"x\" has timed out progressing." },
        ]}));
        assert!(matches!(deployment(&late), Progress::Failed(m) if m.contains("timed out progressing")));
    }

    #[test]
    fn a_job_is_done_when_complete_and_failed_when_failed() {
        let job_with =
            |conditions| serde_json::from_value::<Job>(json!({ "status": { "conditions": conditions } })).unwrap();
        assert_eq!(job(&job_with(json!([{ "type": "Complete", "status": "True" }]))), Progress::Done);
        assert_eq!(
            job(&job_with(json!([{ "type": "Failed", "status": "True", "message": "BackoffLimitExceeded" }]))),
            Progress::Failed("building the image failed: BackoffLimitExceeded".into())
        );
        assert!(matches!(job(&job_with(json!([]))), Progress::Waiting(_)));
    }
}
