//! `multiTenant.isolation.separateLogs`: every log line about a tenant also goes to that
//! tenant's own file, `<data dir>/logs/<tenant id>.log`, so an operator can hand a tenant its
//! log, or ship each to its own destination, without filtering the process log.
//!
//! A line is about a tenant when the event names it (field `tenant` or `tenant_id`) or happens
//! inside a span that does (the request span records `tenant_id` once the edge knows it). The
//! process log (stderr) keeps every line as before. Tenant ids are `[a-z0-9-]`, so an id is a safe
//! file name; anything else named `tenant` is ignored.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use connectors_actors::tenant::TenantId;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Files kept open at most; past it all are closed and reopened on demand.
const MAX_OPEN_FILES: usize = 512;

/// The layer, inert until [`TenantLogs::enable`] (the configuration is read after logging
/// starts).
#[derive(Clone, Default)]
pub struct TenantLogs {
    files: Arc<OnceLock<TenantFiles>>,
}

struct TenantFiles {
    dir: PathBuf,
    open: Mutex<HashMap<TenantId, File>>,
}

impl TenantLogs {
    /// Starts writing tenants' lines under `dir` (created, private to the gateway's user).
    pub fn enable(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        // Enabled once per process; a second call changes nothing.
        let _ = self.files.set(TenantFiles { dir: dir.to_path_buf(), open: Mutex::new(HashMap::new()) });
        Ok(())
    }
}

impl TenantFiles {
    fn append(&self, tenant: &TenantId, line: &str) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !open.contains_key(tenant) {
            if open.len() >= MAX_OPEN_FILES {
                open.clear();
            }
            let path = self.dir.join(format!("{tenant}.log"));
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            // A log line that cannot be written is dropped: logging must not fail a request.
            let Ok(file) = options.open(path) else { return };
            open.insert(tenant.clone(), file);
        }
        if let Some(file) = open.get_mut(tenant) {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The tenant a span is about, kept in its extensions.
struct SpanTenant(TenantId);

/// Finds a `tenant`/`tenant_id` field; for events, also renders the line.
#[derive(Default)]
struct LineVisitor {
    tenant: Option<TenantId>,
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.record(field, &text, &text);
    }
}

impl LineVisitor {
    fn record(&mut self, field: &Field, raw: &str, shown: &str) {
        match field.name() {
            "message" => self.message = shown.to_string(),
            name => {
                if matches!(name, "tenant" | "tenant_id")
                    && let Ok(id) = TenantId::parse(raw)
                {
                    self.tenant = Some(id);
                }
                let _ = write!(self.fields, " {name}={shown}");
            }
        }
    }
}

impl<S> Layer<S> for TenantLogs
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if self.files.get().is_none() {
            return;
        }
        let mut visitor = LineVisitor::default();
        attrs.record(&mut visitor);
        if let (Some(tenant), Some(span)) = (visitor.tenant, ctx.span(id)) {
            span.extensions_mut().insert(SpanTenant(tenant));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if self.files.get().is_none() {
            return;
        }
        let mut visitor = LineVisitor::default();
        values.record(&mut visitor);
        if let (Some(tenant), Some(span)) = (visitor.tenant, ctx.span(id)) {
            span.extensions_mut().replace(SpanTenant(tenant));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(files) = self.files.get() else { return };
        let mut visitor = LineVisitor::default();
        event.record(&mut visitor);
        let tenant = visitor.tenant.clone().or_else(|| {
            ctx.event_scope(event)?.find_map(|span| span.extensions().get::<SpanTenant>().map(|t| t.0.clone()))
        });
        let Some(tenant) = tenant else { return };
        let meta = event.metadata();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let line = format!("{now} {:>5} {}: {}{}\n", meta.level(), meta.target(), visitor.message, visitor.fields);
        files.append(&tenant, &line);
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn lines_about_a_tenant_go_to_its_file_and_others_to_none() {
        let dir = tempfile::tempdir().unwrap();
        let logs = TenantLogs::default();
        let subscriber = tracing_subscriber::registry().with(logs.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(tenant = "acme", "before enabling");
            logs.enable(dir.path()).unwrap();
            tracing::info!(tenant = %TenantId::parse("acme").unwrap(), n = 1, "named by the event");
            let span = tracing::info_span!("request", tenant_id = tracing::field::Empty);
            span.record("tenant_id", "globex");
            span.in_scope(|| tracing::warn!("inside the request span"));
            tracing::info!("about no tenant");
            tracing::info!(tenant = "../etc/passwd", "not a tenant id");
        });
        let acme = std::fs::read_to_string(dir.path().join("acme.log")).unwrap();
        assert!(acme.contains("INFO") && acme.contains("named by the event tenant=acme n=1"), "{acme}");
        assert!(!acme.contains("before enabling") && !acme.contains("inside the request span"));
        let globex = std::fs::read_to_string(dir.path().join("globex.log")).unwrap();
        assert!(globex.contains("WARN") && globex.contains("inside the request span"), "{globex}");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 2, "{files:?}");
    }
}
