//! What a Deployment's and a Job's status say about a deployment: still going, done, or failed
//! with a reason a tenant can read (the cluster's own condition messages).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};
use k8s_openapi::api::batch::v1::Job;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not there yet; the text says what it waits for.
    Waiting(String),
    Done,
    Failed(String),
}

/// A server's Deployment, judged as `kubectl rollout status` does: done once the cluster has
/// seen its latest spec and every replica is updated and available with no old one left (during
/// a rollout the old pod is still available, and the Deployment with it, while the new one
/// starts).
pub fn deployment(deployment: &Deployment) -> Progress {
    let Some(status) = &deployment.status else { return Progress::Waiting("no status yet".into()) };
    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Progress::Waiting("the cluster has not seen the latest spec yet".into());
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    let message = |c: &DeploymentCondition| c.message.clone().or_else(|| c.reason.clone()).unwrap_or_default();
    if let Some(failure) = condition("ReplicaFailure").filter(|c| c.status == "True") {
        return Progress::Failed(format!("the cluster cannot create the server's pod: {}", message(failure)));
    }
    if let Some(progressing) = condition("Progressing").filter(|c| c.status == "False") {
        return Progress::Failed(format!("the server did not become ready in time: {}", message(progressing)));
    }
    let wanted = deployment.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    if updated < wanted {
        return Progress::Waiting(format!("{updated} of {wanted} replicas updated"));
    }
    let replicas = status.replicas.unwrap_or(0);
    if replicas > updated {
        return Progress::Waiting(format!("{} old replicas still running", replicas - updated));
    }
    let available = status.available_replicas.unwrap_or(0);
    if available < updated {
        return Progress::Waiting(format!("{available} of {updated} updated replicas available"));
    }
    Progress::Done
}

/// Whether a Deployment's rollout has stopped for good: its progress deadline passed, and the
/// Deployment controller will not try again until its pod template changes.
pub fn deadline_exceeded(deployment: &Deployment) -> bool {
    let conditions = deployment.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    conditions.iter().any(|c| {
        c.type_ == "Progressing" && c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    })
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
    fn a_deployment_is_done_once_every_replica_of_its_latest_spec_is_available_and_no_old_one_is_left() {
        let available = json!([{ "type": "Available", "status": "True" }]);
        let all = |generation: i64| {
            json!({ "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                    "availableReplicas": 1, "conditions": available })
        };
        assert!(matches!(deployment(&deployment_with(all(1))), Progress::Waiting(_)));
        assert_eq!(deployment(&deployment_with(all(2))), Progress::Done);
        // Mid-rollout: the old pod keeps the Deployment available while the new one starts.
        let rolling = deployment_with(json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
            "readyReplicas": 1, "availableReplicas": 1, "conditions": available }));
        assert_eq!(deployment(&rolling), Progress::Waiting("1 old replicas still running".into()));
        let starting = deployment_with(json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
            "conditions": available }));
        assert_eq!(deployment(&starting), Progress::Waiting("0 of 1 updated replicas available".into()));
        let none_updated = deployment_with(json!({ "observedGeneration": 2, "replicas": 1, "availableReplicas": 1 }));
        assert_eq!(deployment(&none_updated), Progress::Waiting("0 of 1 replicas updated".into()));
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
        assert!(deadline_exceeded(&late));
        assert!(!deadline_exceeded(&quota));
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
