//! Which log lines are written: `RUST_LOG`'s directives, `info` when it is unset or invalid.
//!
//! Directives of targets and levels only (`info`, `connectors=debug,hyper=warn`) become a
//! [`Targets`] filter, decided once per call site. Only directives that name spans or fields
//! (`connectors[request{tenant_id=acme}]=debug`) need an [`EnvFilter`], which takes a lock on
//! every enter and exit of every span to know whether it is inside one they name: 1 % of the
//! gateway's CPU per request in the bench, every request entering its span several times.
//!
//! The request span (method, path, request id, tenant id) is formatted into the lines written
//! while serving a request only when `RUST_LOG` asks for the HTTP layer's debug lines or names
//! spans or fields: the formatting layer writes a span's fields into text when the span opens,
//! on every request, though at the default level few requests log a line (the bench measured
//! about 1.5 µs of CPU per request for it). The span itself is always there, for the per-tenant
//! log files, directives on its fields and OpenTelemetry.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::{Layer, Registry};

/// The name of the span the edge opens for every request.
pub const REQUEST_SPAN: &str = "request";
/// Where the edge's lines and its request span come from.
const EDGE_TARGET: &str = "connectors::http::edge";

#[derive(Debug)]
pub enum LogFilter {
    /// Targets and levels.
    Static(Box<Targets>),
    /// Directives on spans and fields.
    Dynamic(Box<EnvFilter>),
}

impl LogFilter {
    pub fn from_directives(directives: Option<&str>) -> Self {
        let Some(directives) = directives.map(str::trim).filter(|d| !d.is_empty()) else { return Self::info() };
        // `EnvFilter` reads the whole syntax: what it refuses falls back to `info`.
        let Ok(dynamic) = EnvFilter::try_new(directives) else { return Self::info() };
        // Span and field filters are always in brackets; without any, both read the same.
        if directives.contains('[') {
            return Self::Dynamic(Box::new(dynamic));
        }
        match directives.parse() {
            Ok(targets) => Self::Static(Box::new(targets)),
            Err(_) => Self::Dynamic(Box::new(dynamic)),
        }
    }

    /// Whether lines written while serving a request carry the request span's fields.
    pub fn formats_request_span(&self) -> bool {
        match self {
            Self::Static(targets) => targets.would_enable(EDGE_TARGET, &Level::DEBUG),
            Self::Dynamic(_) => true,
        }
    }

    /// What the formatting layer is to see: everything, or everything but the request span.
    pub fn for_formatting(&self) -> impl Fn(&Metadata<'_>) -> bool + Send + Sync + 'static {
        let request_span_too = self.formats_request_span();
        move |metadata| request_span_too || !(metadata.is_span() && metadata.name() == REQUEST_SPAN)
    }

    fn info() -> Self {
        Self::Static(Box::new(Targets::new().with_default(LevelFilter::INFO)))
    }

    /// The filter, as the first layer over the registry (it filters for every later layer).
    pub fn layer(self) -> Box<dyn Layer<Registry> + Send + Sync> {
        match self {
            Self::Static(targets) => targets,
            Self::Dynamic(env_filter) => env_filter,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn targets(directives: Option<&str>) -> Box<Targets> {
        match LogFilter::from_directives(directives) {
            LogFilter::Static(targets) => targets,
            other => panic!("{directives:?}: {other:?}"),
        }
    }

    #[test]
    fn info_by_default_and_when_the_directives_are_invalid() {
        for directives in [None, Some(""), Some("  "), Some("connectors=loud"), Some("a=b=c")] {
            let filter = targets(directives);
            assert!(filter.would_enable("connectors::http::edge", &Level::INFO), "{directives:?}");
            assert!(!filter.would_enable("connectors::http::edge", &Level::DEBUG), "{directives:?}");
        }
    }

    #[test]
    fn targets_and_levels_are_decided_per_call_site() {
        let filter = targets(Some("connectors=debug,warn"));
        assert!(filter.would_enable("connectors::http::edge", &Level::DEBUG));
        assert!(!filter.would_enable("connectors::http::edge", &Level::TRACE));
        assert!(!filter.would_enable("hyper::proto", &Level::INFO));
        assert!(filter.would_enable("hyper::proto", &Level::WARN));
        assert!(!targets(Some("off")).would_enable("connectors", &Level::ERROR));
    }

    #[test]
    fn span_and_field_directives_keep_the_env_filter() {
        for directives in ["connectors[request]=debug", "connectors[request{tenant_id=acme}]=debug,info"] {
            assert!(matches!(LogFilter::from_directives(Some(directives)), LogFilter::Dynamic(_)), "{directives}");
        }
    }

    #[test]
    fn the_request_span_is_formatted_only_when_asked_for() {
        for (directives, formatted) in [
            (None, false),
            (Some("warn,connectors=info"), false),
            (Some("connectors=debug"), true),
            (Some("info,connectors::http=debug"), true),
            (Some("info,connectors[request{tenant_id=acme}]=debug"), true),
        ] {
            let filter = LogFilter::from_directives(directives);
            assert_eq!(filter.formats_request_span(), formatted, "{directives:?}");
            let captured = Arc::new(Mutex::new(Vec::new()));
            let writer = Captured(Arc::clone(&captured));
            let formatting = tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::filter_fn(filter.for_formatting()));
            let subscriber = tracing_subscriber::registry().with(formatting);
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!(target: EDGE_TARGET, REQUEST_SPAN, request_id = "req-7");
                span.in_scope(|| tracing::warn!("inside"));
                tracing::info_span!("other", n = 1).in_scope(|| tracing::warn!("inside another span"));
            });
            let text = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
            assert_eq!(text.contains("request{request_id=\"req-7\"}: "), formatted, "{directives:?}: {text}");
            assert!(text.contains("inside") && text.contains("other{n=1}: "), "{directives:?}: {text}");
        }
    }

    #[derive(Clone)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
