//! A round-robin HTTP load balancer in front of a cluster's nodes, as clients meet the gateway
//! in production: each request goes to the next node that accepts a connection (a node being
//! restarted is skipped), and response bodies are streamed through (SSE included). It records
//! which node served each request, so a test can tell that one MCP session was served by many.
//! Or, made with [`RoundRobinProxy::by_prefix`], a proxy that sends each path prefix to a
//! backend of its own with the prefix taken off, as a proxy in front of a cluster's Services
//! does. Included with `#[path]` by the tests that need it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;

/// One request as the proxy passed it on.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) node: usize,
    pub(crate) http_method: String,
    /// The JSON-RPC method of a POST body, when it has one.
    pub(crate) rpc_method: Option<String>,
    pub(crate) last_event_id: Option<String>,
}

#[derive(Default)]
struct Shared {
    backends: Mutex<Vec<String>>,
    /// `(prefix, backend)`: when not empty, a request goes to the backend of the prefix of its
    /// path, without the prefix, and to no other.
    prefixes: Vec<(String, String)>,
    next: Mutex<usize>,
    served: Mutex<Vec<Served>>,
}

pub(crate) struct RoundRobinProxy {
    pub(crate) url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl RoundRobinProxy {
    /// Listens on a free loopback port; `backends` are base URLs (`http://127.0.0.1:port`).
    pub(crate) async fn start(backends: Vec<String>) -> Self {
        Self::serve(Shared { backends: Mutex::new(backends), ..Shared::default() }).await
    }

    /// Listens on a free loopback port; a request whose path starts with one of `prefixes`
    /// (`(prefix, backend base URL)`) goes to its backend without the prefix, any other is 502.
    pub(crate) async fn by_prefix(prefixes: Vec<(String, String)>) -> Self {
        Self::serve(Shared { prefixes, ..Shared::default() }).await
    }

    async fn serve(shared: Shared) -> Self {
        let shared = Arc::new(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the proxy serves");
        });
        Self { url, shared, task }
    }

    /// A node came back on another address.
    pub(crate) fn set_backend(&self, index: usize, url: String) {
        self.shared.backends.lock().unwrap()[index] = url;
    }

    pub(crate) fn served(&self) -> Vec<Served> {
        self.shared.served.lock().unwrap().clone()
    }
}

impl Drop for RoundRobinProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HOP_BY_HOP: [&str; 5] = ["host", "connection", "content-length", "transfer-encoding", "keep-alive"];

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let rpc_method = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| value["method"].as_str().map(str::to_string));
    let last_event_id = parts.headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let client = reqwest::Client::new();
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let (backends, path_and_query) = if shared.prefixes.is_empty() {
        (shared.backends.lock().unwrap().clone(), path_and_query)
    } else {
        let routed = shared.prefixes.iter().find_map(|(prefix, backend)| {
            path_and_query
                .strip_prefix(prefix.as_str())
                .filter(|rest| rest.starts_with('/'))
                .map(|rest| (backend, rest))
        });
        match routed {
            Some((backend, rest)) => (vec![backend.clone()], rest),
            None => (Vec::new(), path_and_query),
        }
    };
    let start = {
        let mut next = shared.next.lock().unwrap();
        *next += 1;
        *next
    };
    for offset in 0..backends.len() {
        let node = (start + offset) % backends.len();
        let url = format!("{}{path_and_query}", backends[node]);
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
        let mut outgoing = client.request(method, url).body(body.clone());
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                outgoing = outgoing.header(name.as_str(), value.as_bytes());
            }
        }
        match outgoing.send().await {
            Ok(answer) => {
                shared.served.lock().unwrap().push(Served {
                    node,
                    http_method: parts.method.to_string(),
                    rpc_method: rpc_method.clone(),
                    last_event_id: last_event_id.clone(),
                });
                return stream_back(answer);
            }
            // Not connected: the node is down (restarting); try the next one.
            Err(error) if error.is_connect() => continue,
            Err(error) => {
                return Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(Body::from(error.to_string()))
                    .unwrap();
            }
        }
    }
    Response::builder().status(StatusCode::BAD_GATEWAY).body(Body::from("no node accepted the connection")).unwrap()
}

fn stream_back(answer: reqwest::Response) -> Response {
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(), value.as_bytes());
        }
    }
    // The body ends at the first error (a node that went away mid-stream).
    let chunks = futures_util::stream::unfold(Some(answer), |answer| async move {
        let mut answer = answer?;
        match answer.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<Bytes, std::io::Error>(chunk), Some(answer))),
            Ok(None) => None,
            Err(error) => Some((Err(std::io::Error::other(error)), None)),
        }
    });
    response.body(Body::from_stream(chunks)).unwrap()
}
