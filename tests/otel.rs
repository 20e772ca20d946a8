//! OpenTelemetry export: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the gateway sends its request
//! spans over OTLP/HTTP (protobuf) to the collector there — here a local HTTP server that keeps
//! what it is sent, standing in for the OpenTelemetry Collector. No real collector runs here.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{FAST, Gateway, eventually, send};
use reqwest::Method;

/// The bodies the stand-in collector received at `/v1/traces`, with their content types.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(|State(received): State<Received>, headers: HeaderMap, body: Bytes| async move {
                let content_type =
                    headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                received.lock().unwrap().push((content_type, body.to_vec()));
                // An empty ExportTraceServiceResponse.
                (StatusCode::OK, [("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn request_spans_are_exported_to_the_configured_otlp_endpoint() {
    let (endpoint, received) = collector().await;
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let gateway = Gateway::start(FAST, &env).await;
    let key = gateway.create_limited("acme", 100).await;
    let answer = send(
        gateway
            .request(Method::GET, "/api/v1/tenant")
            .header("X-Tenant-ID", "acme")
            .header("X-Request-Id", "otel-check-7f3a")
            .bearer_auth(&key),
    )
    .await;
    answer.expect(200);

    let body = eventually("the request's span to reach the collector", Duration::from_secs(20), || async {
        let received = received.lock().unwrap();
        match received.iter().find(|(_, body)| contains(body, "otel-check-7f3a")) {
            Some((content_type, body)) => Ok((content_type.clone(), body.clone())),
            None => Err(format!("{} exports, none with the request id", received.len())),
        }
    })
    .await;
    assert_eq!(body.0, "application/x-protobuf");
    // Protobuf keeps strings as they are: the span's name, its attributes, the service.
    for text in ["request", "request_id", "/api/v1/tenant", "tenant_id", "acme", "service.name", "connectors"] {
        assert!(contains(&body.1, text), "`{text}` is not in the exported span");
    }
}

#[tokio::test]
async fn an_endpoint_that_is_not_a_url_stops_start_up_with_a_clear_message() {
    let args = ["--listen".to_string(), "127.0.0.1:0".to_string()];
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")];
    let failed = common::run_args_expecting_exit(&args, &env, Duration::from_secs(15)).await;
    assert!(!failed.status.success());
    assert!(failed.stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{}", failed.stderr);
}
