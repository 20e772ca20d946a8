//! OpenTelemetry traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, every request's span (method, path, request id,
//! tenant id) and the spans under it are exported over OTLP/HTTP in protobuf, in batches from a
//! thread of their own, to a collector (Jaeger, Tempo, the OpenTelemetry Collector). The
//! exporter's other standard variables apply (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`,
//! `OTEL_SERVICE_NAME`, default `connectors`, `OTEL_RESOURCE_ATTRIBUTES`). Without them
//! nothing is exported and nothing of this runs.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Env;

/// The exporter's pipeline; [`Traces::shutdown`] sends what is still buffered.
pub struct Traces {
    provider: SdkTracerProvider,
}

/// The layer that hands a subscriber's spans to the exporter.
pub type TraceLayer<S> = tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>;

/// The layer and the pipeline, when an endpoint is configured.
pub fn from_env<S>(env: &dyn Env) -> Result<Option<(TraceLayer<S>, Traces)>, String>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let configured = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .any(|name| env.var(name).is_some_and(|value| !value.trim().is_empty()));
    if !configured {
        return Ok(None);
    }
    // The endpoint and the other settings come from the standard variables, read by the builder.
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|error| format!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the OTLP exporter: {error}"))?;
    let mut resource = Resource::builder();
    if env.var("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("connectors");
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("connectors"));
    Ok(Some((layer, Traces { provider })))
}

impl Traces {
    /// Exports what is buffered and stops the exporter's thread.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "OpenTelemetry: spans still buffered at shutdown were not all exported");
        }
    }
}
