//! Which log lines are written: `RUST_LOG`'s directives, `info` when it is unset or invalid.
//!
//! Directives of targets and levels only (`info`, `connectors=debug,hyper=warn`) become a
//! [`Targets`] filter, decided once per call site. Only directives that name spans or fields
//! (`connectors[request{tenant_id=acme}]=debug`) need an [`EnvFilter`], which takes a lock on
//! every enter and exit of every span to know whether it is inside one they name: 1 % of the
//! gateway's CPU per request in the bench, every request entering its span several times.

use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::{Layer, Registry};

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
    use tracing::Level;

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
}
