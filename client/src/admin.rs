//! The admin API (`/api/v1/admin`).

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap};

use crate::error::Error;
use crate::transport::{Call, RetryPolicy, Transport};
use crate::types::{
    AuditPage, AuditQuery, ClusterView, CreatedTenant, Credential, CredentialList, Integration, IntegrationList,
    NewApiKey, NewCredential, NewIntegration, NewTenant, Tenant, TenantMetrics, TenantPage, TenantQuery, TenantUpdate,
    UsageReport,
};

const ADMIN: [&str; 3] = ["api", "v1", "admin"];

/// The admin client: every request carries `Authorization: Bearer <admin key>`.
#[derive(Debug, Clone)]
pub struct AdminApi {
    transport: Transport,
}

/// `["api", "v1", "admin", segments...]`
fn admin_path<'a>(segments: &[&'a str]) -> Vec<&'a str> {
    ADMIN.iter().copied().chain(segments.iter().copied()).collect()
}

impl AdminApi {
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        let (_, value) = Transport::header("authorization", &format!("Bearer {api_key}"))?;
        headers.insert(AUTHORIZATION, value);
        Ok(Self { transport: Transport::new(base_url, headers)? })
    }

    /// The same client with another retry policy for 429 and 503.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.transport.retry = retry;
        self
    }

    pub fn tenants(&self) -> Tenants<'_> {
        Tenants(&self.transport)
    }

    pub fn oauth(&self) -> OAuthCredentials<'_> {
        OAuthCredentials(&self.transport)
    }

    pub fn integrations(&self) -> Integrations<'_> {
        Integrations(&self.transport)
    }

    /// `GET /tenants/{id}/usage`: a month's usage (`YYYY-MM`; default this month).
    pub async fn usage(&self, tenant: &str, month: Option<&str>) -> Result<UsageReport, Error> {
        let path = admin_path(&["tenants", tenant, "usage"]);
        self.transport.json(Call::get(&path).query(&[("month", month.map(str::to_string))])).await
    }

    /// `GET /tenants/{id}/metrics`: counters over days `YYYY-MM-DD`, inclusive.
    pub async fn metrics(
        &self,
        tenant: &str,
        start_date: Option<&str>,
        end_date: Option<&str>,
    ) -> Result<TenantMetrics, Error> {
        let path = admin_path(&["tenants", tenant, "metrics"]);
        let call = Call::get(&path)
            .query(&[("startDate", start_date.map(str::to_string)), ("endDate", end_date.map(str::to_string))]);
        self.transport.json(call).await
    }

    /// `GET /tenants/{id}/audit`: a page of the tenant's audit log, oldest first.
    pub async fn audit(&self, tenant: &str, query: &AuditQuery) -> Result<AuditPage, Error> {
        let path = admin_path(&["tenants", tenant, "audit"]);
        let call = Call::get(&path).query(&[
            ("since", query.since.clone()),
            ("until", query.until.clone()),
            ("action", query.action.clone()),
            ("limit", query.limit.map(|n| n.to_string())),
            ("cursor", query.cursor.clone()),
        ]);
        self.transport.json(call).await
    }

    /// `GET /cluster`: nodes, their statuses, the view's epoch, the asked node's shards.
    pub async fn cluster(&self) -> Result<ClusterView, Error> {
        self.transport.json(Call::get(&admin_path(&["cluster"]))).await
    }
}

/// `/api/v1/admin/tenants`
#[derive(Debug, Clone, Copy)]
pub struct Tenants<'a>(&'a Transport);

impl Tenants<'_> {
    /// Creates a tenant; the answer holds its API key, shown this once.
    pub async fn create(&self, tenant: &NewTenant) -> Result<CreatedTenant, Error> {
        self.0.json(Call::new(Method::POST, &admin_path(&["tenants"])).body(tenant)?).await
    }

    pub async fn list(&self, query: &TenantQuery) -> Result<TenantPage, Error> {
        let path = admin_path(&["tenants"]);
        let call = Call::get(&path).query(&[
            ("limit", query.limit.map(|n| n.to_string())),
            ("cursor", query.cursor.clone()),
            ("plan", query.plan.clone()),
            ("status", query.status.map(|s| s.as_str().to_string())),
        ]);
        self.0.json(call).await
    }

    /// The tenant and this month's usage.
    pub async fn get(&self, id: &str) -> Result<Tenant, Error> {
        self.0.json(Call::get(&admin_path(&["tenants", id]))).await
    }

    pub async fn update(&self, id: &str, update: &TenantUpdate) -> Result<Tenant, Error> {
        self.0.json(Call::new(Method::PATCH, &admin_path(&["tenants", id])).body(update)?).await
    }

    /// Deletes the tenant: its keys stop working at once; its audit history is kept.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        self.0.empty(Call::new(Method::DELETE, &admin_path(&["tenants", id]))).await
    }

    /// A new API key; the old one keeps working for `grace_seconds` (none: it stops at once).
    pub async fn rotate_key(&self, id: &str, grace_seconds: Option<u64>) -> Result<String, Error> {
        let path = admin_path(&["tenants", id, "rotate-key"]);
        let mut call = Call::new(Method::POST, &path);
        if let Some(grace) = grace_seconds {
            call = call.body(&serde_json::json!({ "graceSeconds": grace }))?;
        }
        let key: NewApiKey = self.0.json(call).await?;
        Ok(key.api_key)
    }
}

/// `/api/v1/admin/tenants/{id}/oauth`: a tenant's OAuth credentials (tokens are never returned).
#[derive(Debug, Clone, Copy)]
pub struct OAuthCredentials<'a>(&'a Transport);

impl OAuthCredentials<'_> {
    pub async fn put(&self, tenant: &str, integration: &str, credential: &NewCredential) -> Result<Credential, Error> {
        let path = admin_path(&["tenants", tenant, "oauth", integration]);
        self.0.json(Call::new(Method::PUT, &path).body(credential)?).await
    }

    pub async fn list(&self, tenant: &str) -> Result<Vec<Credential>, Error> {
        let list: CredentialList = self.0.json(Call::get(&admin_path(&["tenants", tenant, "oauth"]))).await?;
        Ok(list.integrations)
    }

    pub async fn delete(&self, tenant: &str, integration: &str) -> Result<(), Error> {
        self.0.empty(Call::new(Method::DELETE, &admin_path(&["tenants", tenant, "oauth", integration]))).await
    }
}

/// `/api/v1/admin/integrations`: shared MCP servers offered to every tenant.
#[derive(Debug, Clone, Copy)]
pub struct Integrations<'a>(&'a Transport);

impl Integrations<'_> {
    /// Registers the server and discovers its tools.
    pub async fn create(&self, integration: &NewIntegration) -> Result<Integration, Error> {
        self.0.json(Call::new(Method::POST, &admin_path(&["integrations"])).body(integration)?).await
    }

    pub async fn list(&self) -> Result<Vec<Integration>, Error> {
        let list: IntegrationList = self.0.json(Call::get(&admin_path(&["integrations"]))).await?;
        Ok(list.integrations)
    }

    /// Discovers its tools again.
    pub async fn refresh(&self, name: &str) -> Result<Integration, Error> {
        self.0.json(Call::new(Method::POST, &admin_path(&["integrations", name, "refresh"]))).await
    }

    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        self.0.empty(Call::new(Method::DELETE, &admin_path(&["integrations", name]))).await
    }
}
