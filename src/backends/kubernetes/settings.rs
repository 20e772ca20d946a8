//! `deployer.kubernetes` in the config file, as written ([`KubernetesSection`]) and as the
//! deployer uses it ([`KubernetesSettings`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The section as written. Present (even empty: `kubernetes: {}`), it makes the Kubernetes
/// deployer the gateway's deployer; absent, the local one runs tenants' servers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubernetesSection {
    /// A kubeconfig file; without it, `KUBECONFIG` (or `~/.kube/config`), then the pod's
    /// service account.
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; its current context by default.
    context: Option<String>,
    /// The image that builds `github` sources (kaniko's executor arguments).
    builder_image: String,
    /// Arguments added to the builder's (e.g. `--insecure` for a plain-http in-cluster registry).
    builder_args: Vec<String>,
    /// Where built images are pushed (`registry.example.com/mcp`); without it, `github` sources
    /// are refused.
    registry: Option<String>,
    /// The port and path at which a server's image serves MCP over streamable HTTP.
    server_port: u16,
    server_path: String,
    /// The cluster's DNS domain, the tail of Service names (`<svc>.<ns>.svc.<domain>`).
    cluster_domain: String,
    /// Replaces `http://<service>.<namespace>.svc.<domain>:<port>` in servers' endpoints with
    /// `<endpointBase>/<namespace>/<service>`: for a gateway outside the cluster that reaches
    /// servers through a proxy routing by path, and for tests. Such endpoints are not trusted
    /// beyond `outbound.*`.
    endpoint_base: Option<String>,
    /// The gateway's namespace and its pods' labels: the only pods a tenant namespace lets in.
    gateway_namespace: String,
    gateway_pod_labels: BTreeMap<String, String>,
    /// The ResourceQuota of a tenant namespace, by plan; `defaultQuota` for plans not listed.
    default_quota: TenantQuota,
    quotas: BTreeMap<String, TenantQuota>,
    /// Each server container's requests and limits, also the LimitRange's defaults.
    container: ContainerResources,
    /// How long a server (and a build) may take to become ready before the attempt fails.
    ready_timeout_seconds: u64,
    build_timeout_seconds: u64,
    /// How often a deploying server's status is read.
    poll_interval_ms: u64,
}

impl Default for KubernetesSection {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            builder_image: "gcr.io/kaniko-project/executor:v1.23.2".into(),
            builder_args: Vec::new(),
            registry: None,
            server_port: 8080,
            server_path: "/mcp".into(),
            cluster_domain: "cluster.local".into(),
            endpoint_base: None,
            gateway_namespace: "connectors".into(),
            gateway_pod_labels: BTreeMap::from([
                ("app.kubernetes.io/name".into(), "connectors-gateway".into()),
                ("app.kubernetes.io/component".into(), "gateway".into()),
            ]),
            default_quota: TenantQuota::default(),
            quotas: BTreeMap::new(),
            container: ContainerResources::default(),
            ready_timeout_seconds: 600,
            build_timeout_seconds: 1800,
            poll_interval_ms: 2000,
        }
    }
}

/// A tenant namespace's ResourceQuota (quantities as Kubernetes writes them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TenantQuota {
    pub requests_cpu: String,
    pub requests_memory: String,
    pub persistent_volume_claims: u32,
    pub pods: u32,
}

impl Default for TenantQuota {
    /// The enterprise plan's.
    fn default() -> Self {
        Self { requests_cpu: "10".into(), requests_memory: "20Gi".into(), persistent_volume_claims: 10, pods: 50 }
    }
}

/// A server container's requests and limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ContainerResources {
    pub request_cpu: String,
    pub request_memory: String,
    pub limit_cpu: String,
    pub limit_memory: String,
}

impl Default for ContainerResources {
    fn default() -> Self {
        Self {
            request_cpu: "100m".into(),
            request_memory: "128Mi".into(),
            limit_cpu: "1".into(),
            limit_memory: "512Mi".into(),
        }
    }
}

/// Where the deployer finds its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAccess {
    /// `KUBECONFIG` or `~/.kube/config`, then the pod's service account (kube's `Config::infer`).
    Infer,
    /// `deployer.kubernetes.kubeconfig`, with an optional context.
    Kubeconfig { path: PathBuf, context: Option<String> },
}

/// The section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    pub access: ClusterAccess,
    pub builder_image: String,
    pub builder_args: Vec<String>,
    pub registry: Option<String>,
    pub server_port: u16,
    pub server_path: String,
    pub cluster_domain: String,
    pub endpoint_base: Option<String>,
    pub gateway_namespace: String,
    pub gateway_pod_labels: BTreeMap<String, String>,
    pub default_quota: TenantQuota,
    pub quotas: BTreeMap<String, TenantQuota>,
    pub container: ContainerResources,
    pub ready_timeout: Duration,
    pub build_timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        KubernetesSection::default().check(&[]).expect("the defaults are valid")
    }
}

impl KubernetesSettings {
    /// The quota of a tenant on `plan`.
    pub fn quota(&self, plan: &str) -> &TenantQuota {
        self.quotas.get(plan).unwrap_or(&self.default_quota)
    }
}

impl KubernetesSection {
    /// Checks the section; `plans` are the plan names the config defines. Errors name the key
    /// (under `deployer.kubernetes.`) and what is wrong.
    pub fn check(self, plans: &[&str]) -> Result<KubernetesSettings, (String, String)> {
        let bad = |key: &str, message: String| (format!("deployer.kubernetes.{key}"), message);
        let access = match (self.kubeconfig, self.context) {
            (Some(path), context) => ClusterAccess::Kubeconfig { path, context },
            (None, Some(_)) => return Err(bad("context", "needs `kubeconfig`".into())),
            (None, None) => ClusterAccess::Infer,
        };
        if self.server_port == 0 {
            return Err(bad("serverPort", "must be 1 to 65535".into()));
        }
        if !self.server_path.starts_with('/') || self.server_path.chars().any(|c| c.is_whitespace() || c == '?') {
            return Err(bad("serverPath", format!("`{}` is not an absolute path", self.server_path)));
        }
        if !is_dns_name(&self.cluster_domain) {
            return Err(bad("clusterDomain", format!("`{}` is not a DNS name", self.cluster_domain)));
        }
        if !is_dns_label(&self.gateway_namespace) {
            return Err(bad("gatewayNamespace", format!("`{}` is not a namespace name", self.gateway_namespace)));
        }
        if self.gateway_pod_labels.is_empty() {
            return Err(bad("gatewayPodLabels", "must name at least one label of the gateway's pods".into()));
        }
        if let Some(base) = &self.endpoint_base {
            let parsed = url::Url::parse(base).map_err(|e| bad("endpointBase", format!("`{base}`: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.path() != "/" || parsed.query().is_some() {
                return Err(bad("endpointBase", format!("`{base}` must be an http(s) URL with no path")));
            }
        }
        if let Some(registry) = &self.registry
            && (registry.is_empty() || registry.ends_with('/') || registry.chars().any(char::is_whitespace))
        {
            return Err(bad("registry", format!("`{registry}` is not an image repository prefix")));
        }
        if self.builder_image.is_empty() || self.builder_image.chars().any(char::is_whitespace) {
            return Err(bad("builderImage", "must be an image reference".into()));
        }
        check_quota(&self.default_quota).map_err(|m| bad("defaultQuota", m))?;
        for (plan, quota) in &self.quotas {
            if !plans.is_empty() && !plans.contains(&plan.as_str()) {
                return Err(bad("quotas", format!("`{plan}` is not a plan of multiTenant.plans")));
            }
            check_quota(quota).map_err(|m| bad(&format!("quotas.{plan}"), m))?;
        }
        let c = &self.container;
        for (key, value) in [
            ("requestCpu", &c.request_cpu),
            ("requestMemory", &c.request_memory),
            ("limitCpu", &c.limit_cpu),
            ("limitMemory", &c.limit_memory),
        ] {
            if !is_quantity(value) {
                return Err(bad(&format!("container.{key}"), format!("`{value}` is not a Kubernetes quantity")));
            }
        }
        for (key, value) in [
            ("readyTimeoutSeconds", self.ready_timeout_seconds),
            ("buildTimeoutSeconds", self.build_timeout_seconds),
            ("pollIntervalMs", self.poll_interval_ms),
        ] {
            if value == 0 {
                return Err(bad(key, "must be positive".into()));
            }
        }
        Ok(KubernetesSettings {
            access,
            builder_image: self.builder_image,
            builder_args: self.builder_args,
            registry: self.registry,
            server_port: self.server_port,
            server_path: self.server_path,
            cluster_domain: self.cluster_domain,
            endpoint_base: self.endpoint_base.map(|base| base.trim_end_matches('/').to_owned()),
            gateway_namespace: self.gateway_namespace,
            gateway_pod_labels: self.gateway_pod_labels,
            default_quota: self.default_quota,
            quotas: self.quotas,
            container: self.container,
            ready_timeout: Duration::from_secs(self.ready_timeout_seconds),
            build_timeout: Duration::from_secs(self.build_timeout_seconds),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
        })
    }
}

fn check_quota(quota: &TenantQuota) -> Result<(), String> {
    for value in [&quota.requests_cpu, &quota.requests_memory] {
        if !is_quantity(value) {
            return Err(format!("`{value}` is not a Kubernetes quantity"));
        }
    }
    Ok(())
}

/// A Kubernetes quantity as operators write them: digits, an optional fraction, an optional
/// suffix (`500m`, `1.5`, `20Gi`, `2G`).
fn is_quantity(text: &str) -> bool {
    let number_end = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let well_formed =
        !number.is_empty() && !number.starts_with('.') && !number.ends_with('.') && number.matches('.').count() <= 1;
    well_formed && ["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].contains(&suffix)
}

/// A DNS-1123 label: 1 to 63 lowercase letters, digits and inner hyphens.
pub(crate) fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && edge(bytes[0])
        && edge(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| edge(b) || b == b'-')
}

fn is_dns_name(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_operators_write_them() {
        for good in ["10", "500m", "1.5", "20Gi", "2G"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "1.", ".5", "1..5", "10 Gi", "-1", "1x"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn a_quota_for_an_unknown_plan_is_refused() {
        let section: KubernetesSection = serde_norway::from_str("quotas:\n  gold: {pods: 3}\n").unwrap();
        let (key, message) = section.check(&["free", "enterprise"]).unwrap_err();
        assert_eq!(key, "deployer.kubernetes.quotas");
        assert!(message.contains("gold"), "{message}");
    }

    #[test]
    fn a_zero_timeout_or_poll_interval_names_its_own_key() {
        for key in ["readyTimeoutSeconds", "buildTimeoutSeconds", "pollIntervalMs"] {
            let section: KubernetesSection = serde_norway::from_str(&format!("{key}: 0\n")).unwrap();
            let (named, message) = section.check(&[]).unwrap_err();
            assert_eq!(named, format!("deployer.kubernetes.{key}"));
            assert_eq!(message, "must be positive");
        }
    }

    #[test]
    fn a_plan_without_a_quota_of_its_own_gets_the_default() {
        let section: KubernetesSection =
            serde_norway::from_str("quotas:\n  free: {pods: 3, requestsCpu: 500m}\n").unwrap();
        let settings = section.check(&["free", "enterprise"]).unwrap();
        assert_eq!(settings.quota("free").pods, 3);
        assert_eq!(settings.quota("free").requests_memory, "20Gi");
        assert_eq!(settings.quota("enterprise"), &TenantQuota::default());
    }
}
