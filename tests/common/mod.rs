//! Shared harness of the end-to-end suite: starts the real `connectors` binary as a child
//! process on a free loopback port, with its own data dir and config in a temp dir, and drives it
//! over HTTP.
//!
//! Every helper polls with a short interval and a deadline instead of sleeping for a fixed time.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The admin key every test gateway runs with. Long and odd so that finding it in a log or a
/// data file cannot be a coincidence.
pub(crate) const ADMIN_KEY: &str = "adm-e2e-7c41d9f0b2a85e36-key";

/// A config for most tests: fast flushes and ticks, nothing else changed.
pub(crate) const FAST: &str = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\n";

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_connectors");

/// Environment variables of the binary that change its configuration; removed from the
/// inherited environment so that the test decides.
pub(crate) const CONFIG_ENV: &[&str] = &[
    "ADMIN_API_KEY",
    "CONNECTORS_FAULT_INJECTION",
    "CONNECTORS_MASTER_KEY",
    "MULTI_TENANT_ENABLED",
    "TENANT_ID_HEADER",
    "API_KEY_HEADER",
    "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_STORE",
    "CONNECTORS_LISTEN",
    "CONNECTORS_DATA_DIR",
    "CONNECTORS_CONFIG",
    "REDIS_URL",
    "REDIS_TENANT_PREFIX",
    "METRICS_TOKEN",
    "CONNECTORS_NODE_ID",
    "CONNECTORS_CLUSTER_LISTEN",
    "CONNECTORS_CLUSTER_COOKIE",
    "CONNECTORS_CLUSTER_ADVERTISE",
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "OUTBOUND_ALLOW_PRIVATE",
    "OUTBOUND_ALLOWED_HOSTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CONNECTORS_EMBEDDING_MODEL",
];

/// What the gateways of these tests may call: the test's MCP servers and token endpoints, which
/// all run on loopback (a test may set `OUTBOUND_ALLOWED_HOSTS` itself to see the default refuse).
const TEST_OUTBOUND_HOSTS: &str = "127.0.0.1,localhost";

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("response ({}) is not JSON: {e}; body: {:?}", self.status, self.text))
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().expect("header is ASCII").to_string())
    }

    pub(crate) fn header_u64(&self, name: &str) -> u64 {
        let text = self.header(name).unwrap_or_else(|| panic!("no `{name}` header in {self:?}"));
        text.trim().parse().unwrap_or_else(|_| panic!("`{name}: {text}` is not a number"))
    }

    pub(crate) fn request_id(&self) -> String {
        self.header("x-request-id").unwrap_or_else(|| panic!("no X-Request-Id header in {self:?}"))
    }

    /// Asserts the status.
    pub(crate) fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        self
    }

    /// Asserts an error response: the status, JSON content, the documented body shape with
    /// `code`, and `requestId` equal to the `X-Request-Id` header. Returns the body.
    pub(crate) fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        self.expect_error_shape();
        let body = self.json();
        assert_eq!(body["code"], code, "unexpected error code; body: {}", self.text);
        body
    }

    /// Like [`Resp::expect_error`], but returns what is wrong instead of panicking, so a test
    /// can check many cases and report every failing one.
    pub(crate) fn error_mismatch(&self, status: u16, code: &str) -> Option<String> {
        let ok = self.status == status
            && self.header("content-type").is_some_and(|c| c.starts_with("application/json"))
            && serde_json::from_str::<Value>(&self.text).is_ok_and(|body| {
                body["code"] == code
                    && body["error"].as_str().is_some_and(|s| !s.is_empty())
                    && body["requestId"].as_str() == self.header("x-request-id").as_deref()
            });
        if ok { None } else { Some(format!("expected {status} {code}, got {} {}", self.status, self.text)) }
    }

    /// Asserts the error body shape only (any status).
    pub(crate) fn expect_error_shape(&self) -> Value {
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("application/json"), "error with content-type {content_type:?}: {self:?}");
        let body = self.json();
        assert!(
            body["error"].as_str().is_some_and(|s| !s.is_empty()),
            "error body without `error` message: {}",
            self.text
        );
        assert!(body["code"].as_str().is_some_and(|s| !s.is_empty()), "error body without `code`: {}", self.text);
        assert_eq!(
            body["requestId"].as_str(),
            Some(self.request_id().as_str()),
            "requestId of the body must equal X-Request-Id: {self:?}"
        );
        body
    }
}

/// Sends a request and reads the whole response; panics on transport errors.
pub(crate) async fn send(request: RequestBuilder) -> Resp {
    let response = request.send().await.unwrap_or_else(|e| panic!("request failed: {e:?}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("response body");
    Resp { status, headers, text }
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Polls `check` every 50 ms until it returns `Ok`, or panics after `timeout` with the last
/// error it gave.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rate windows are fixed UTC minutes: a test that needs `seconds` inside one minute waits for
/// the next one when the current has less than that left.
pub(crate) async fn ensure_minute_room(seconds: u32) {
    let now = Utc::now();
    let elapsed_ms = now.second() * 1000 + now.timestamp_subsec_millis().min(999);
    let left_ms = 60_000 - elapsed_ms;
    if left_ms < seconds * 1000 {
        tokio::time::sleep(Duration::from_millis(u64::from(left_ms) + 150)).await;
    }
}

/// The UTC minute a time is in, to check that a test stayed inside one window.
pub(crate) fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

/// Reads the value of a Prometheus series: the sum over the lines of `name` whose labels
/// include all of `labels`. `None` when no line matches.
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total: Option<f64> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (label_text, value_text) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = inner.find('}') else { continue };
            (&inner[..end], inner[end + 1..].trim())
        } else if rest.starts_with(' ') || rest.starts_with('\t') {
            ("", rest.trim())
        } else {
            continue; // another metric whose name starts with `name`
        };
        let present: Vec<(String, String)> = label_text
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            })
            .collect();
        if !labels.iter().all(|(k, v)| present.iter().any(|(pk, pv)| pk == k && pv == v)) {
            continue;
        }
        let value: f64 = value_text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unparsable metric line {line:?}"));
        *total.get_or_insert(0.0) += value;
    }
    total
}

/// The process exit of a start that is expected to fail.
pub(crate) struct FailedStart {
    pub(crate) status: ExitStatus,
    pub(crate) stderr: String,
    pub(crate) stdout: String,
}

/// Runs `connectors serve` with `--listen listen`, the config (when given) written to a temp
/// file and passed as `--config`, expecting it to exit within `timeout`.
pub(crate) async fn run_expecting_exit(config_yaml: Option<&str>, listen: &str, timeout: Duration) -> FailedStart {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["--listen".to_string(), listen.to_string()];
    if let Some(yaml) = config_yaml {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        args.push("--config".into());
        args.push(path.display().to_string());
    }
    run_args_expecting_exit(&args, &[], timeout).await
}

/// Runs `connectors serve --data-dir <temp> ARGS`, expecting it to exit within `timeout`;
/// panics if it is still running then.
pub(crate) async fn run_args_expecting_exit(args: &[String], env: &[(&str, &str)], timeout: Duration) -> FailedStart {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut command = Command::new(BIN);
    command.arg("serve").arg("--data-dir").arg(&data).args(args);
    for name in CONFIG_ENV {
        command.env_remove(name);
    }
    let stdout_path = dir.path().join("stdout.log");
    let stderr_path = dir.path().join("stderr.log");
    command.envs(env.iter().copied());
    command
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let mut child = command.spawn().expect("spawn connectors");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "connectors did not exit within {timeout:?} (expected a start-up failure) with args {args:?}; stderr: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    FailedStart {
        status,
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
    }
}

/// One gateway process with its temp dir (data dir, config, captured output).
pub(crate) struct Gateway {
    dir: TempDir,
    config_path: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    port: u16,
    client: Client,
    /// `ADMIN_API_KEY` of the process; `None` leaves it unset (the gateway generates one).
    admin_key_env: Option<String>,
    /// The key admin requests carry.
    admin_key: String,
    /// The program run: this build's `connectors` unless another build was chosen.
    binary: PathBuf,
}

impl Gateway {
    /// Writes `config_yaml`, starts the binary with `ADMIN_API_KEY` and `extra_env`, and waits
    /// until `/healthz` answers 200.
    pub(crate) async fn start(config_yaml: &str, extra_env: &[(&str, &str)]) -> Gateway {
        Self::start_with_admin_key(config_yaml, extra_env, Some(ADMIN_KEY)).await
    }

    /// Like [`Gateway::start`]; `admin_key: None` starts without `ADMIN_API_KEY`.
    pub(crate) async fn start_with_admin_key(
        config_yaml: &str,
        extra_env: &[(&str, &str)],
        admin_key: Option<&str>,
    ) -> Gateway {
        Self::launch(Path::new(BIN), config_yaml, extra_env, admin_key).await
    }

    /// Like [`Gateway::start`], running `binary` (another build of the gateway).
    pub(crate) async fn start_as(binary: &Path, config_yaml: &str, extra_env: &[(&str, &str)]) -> Gateway {
        Self::launch(binary, config_yaml, extra_env, Some(ADMIN_KEY)).await
    }

    async fn launch(binary: &Path, config_yaml: &str, extra_env: &[(&str, &str)], admin_key: Option<&str>) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config_yaml).unwrap();
        let client = Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().expect("http client");
        let mut gateway = Gateway {
            dir,
            config_path,
            env: extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            port: 0,
            client,
            admin_key_env: admin_key.map(str::to_string),
            admin_key: admin_key.unwrap_or("<unknown>").to_string(),
            binary: binary.to_path_buf(),
        };
        gateway.spawn().await;
        gateway
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.port = free_port();
        let log = |name: &str| {
            OpenOptions::new().create(true).append(true).open(self.dir.path().join(name)).expect("log file")
        };
        let mut command = Command::new(&self.binary);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(&self.config_path);
        for name in CONFIG_ENV {
            command.env_remove(name);
        }
        if let Some(key) = &self.admin_key_env {
            command.env("ADMIN_API_KEY", key);
        }
        command.env("OUTBOUND_ALLOWED_HOSTS", TEST_OUTBOUND_HOSTS);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.stdin(Stdio::null()).stdout(log("stdout.log")).stderr(log("stderr.log"));
        self.child = Some(command.spawn().expect("spawn connectors"));
        self.wait_healthy().await;
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.url("/healthz");
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                panic!("connectors exited during start-up with {status}; stderr:\n{}", self.stderr_text());
            }
            let answer = self.client.get(&url).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|response| response.status().as_u16() == 200) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("connectors did not answer GET /healthz with 200 within 30 s; stderr:\n{}", self.stderr_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Replaces the config the next start reads.
    pub(crate) fn write_config(&self, yaml: &str) {
        std::fs::write(&self.config_path, yaml).expect("write the config");
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub(crate) fn stdout_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    pub(crate) fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Files under the data dir whose bytes contain `needle`.
    pub(crate) fn data_files_containing(&self, needle: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, needle: &[u8], found: &mut Vec<PathBuf>, files: &mut usize) {
            for entry in std::fs::read_dir(dir).expect("read data dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, needle, found, files);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    *files += 1;
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(path);
                    }
                }
            }
        }
        let mut found = Vec::new();
        let mut files = 0;
        walk(&self.data_dir(), needle.as_bytes(), &mut found, &mut files);
        assert!(files > 0, "the data dir {} holds no file at all", self.data_dir().display());
        found
    }

    // ----- requests -------------------------------------------------------------------------

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub(crate) async fn get(&self, path: &str) -> Resp {
        send(self.request(Method::GET, path)).await
    }

    /// Sends `head` (request line and headers, ending in a blank line) and, concurrently,
    /// `body` over a raw connection, and reads the response while the body is still being
    /// written: a server may answer (413) before reading the whole body, and an HTTP client
    /// library that fails on the broken write would hide that answer.
    pub(crate) async fn raw_exchange(&self, head: String, body: Vec<u8>) -> Resp {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        writer.write_all(head.as_bytes()).await.expect("write request head");
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&body).await;
            writer
        });
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let deadline = Duration::from_secs(10);
        let (head_len, content_length) = loop {
            let n = tokio::time::timeout(deadline, reader.read(&mut chunk))
                .await
                .expect("timed out reading the response head")
                .expect("read the response head");
            assert!(n > 0, "connection closed before a response head; got {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head_text = String::from_utf8_lossy(&buf[..pos]).to_string();
                let length = head_text
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.trim().parse::<usize>().expect("content-length"))
                    .unwrap_or_else(|| panic!("response without content-length: {head_text}"));
                break (pos + 4, length);
            }
        };
        while buf.len() < head_len + content_length {
            let n = tokio::time::timeout(deadline, reader.read(&mut chunk))
                .await
                .expect("timed out reading the response body")
                .expect("read the response body");
            assert!(n > 0, "connection closed inside the response body");
            buf.extend_from_slice(&chunk[..n]);
        }
        writing.abort();
        let head_text = String::from_utf8_lossy(&buf[..head_len - 4]).to_string();
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = HeaderMap::new();
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                headers.append(
                    reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).expect("header name"),
                    reqwest::header::HeaderValue::from_str(v.trim()).expect("header value"),
                );
            }
        }
        let text = String::from_utf8_lossy(&buf[head_len..head_len + content_length]).to_string();
        Resp { status, headers, text }
    }

    /// The head of an admin request with a JSON body, for [`Gateway::raw_exchange`].
    /// `content_length: None` sends the body chunked.
    pub(crate) fn raw_admin_head(&self, method: &str, path: &str, content_length: Option<usize>) -> String {
        let framing = match content_length {
            Some(n) => format!("Content-Length: {n}"),
            None => "Transfer-Encoding: chunked".to_string(),
        };
        format!(
            "{method} /api/v1/admin{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nX-Request-Id: raw-{method}-1\r\n{framing}\r\n\r\n",
            self.port, self.admin_key
        )
    }

    /// A request to `/api/v1/admin{path}` with the admin key.
    pub(crate) fn admin_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, &format!("/api/v1/admin{path}")).bearer_auth(&self.admin_key)
    }

    /// The key admin requests carry from now on.
    pub(crate) fn set_admin_key(&mut self, key: &str) {
        self.admin_key = key.to_string();
    }

    /// An admin call with an optional JSON body.
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut request = self.admin_request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    /// An admin call with a raw body sent as `application/json`.
    pub(crate) async fn admin_raw(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Resp {
        send(self.admin_request(method, path).header("content-type", "application/json").body(body)).await
    }

    /// Creates a tenant (asserting 201) and returns the body and the API key.
    pub(crate) async fn create_tenant(&self, body: Value) -> (Value, String) {
        let response = self.admin(Method::POST, "/tenants", Some(body)).await;
        assert_eq!(response.status, 201, "create tenant: {}", response.text);
        let json = response.json();
        let key = json["apiKey"].as_str().unwrap_or_else(|| panic!("no apiKey in {json}")).to_string();
        (json, key)
    }

    /// Creates tenant `id` with explicit rate limits (minute/hour/day).
    pub(crate) async fn create_limited(&self, id: &str, per_minute: u64) -> String {
        let (_, key) = self
            .create_tenant(json!({
                "id": id,
                "name": format!("Tenant {id}"),
                "plan": "pro",
                "limits": {"requestsPerMinute": per_minute, "requestsPerHour": 50000, "requestsPerDay": 1000000}
            }))
            .await;
        key
    }

    pub(crate) async fn patch_tenant(&self, id: &str, body: Value) -> Resp {
        self.admin(Method::PATCH, &format!("/tenants/{id}"), Some(body)).await
    }

    /// `GET /api/v1/tenant` with an optional tenant header and key.
    pub(crate) fn tenant_request(&self, tenant: Option<&str>, key: Option<&str>) -> RequestBuilder {
        let mut request = self.request(Method::GET, "/api/v1/tenant");
        if let Some(tenant) = tenant {
            request = request.header("X-Tenant-ID", tenant);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request
    }

    pub(crate) async fn tenant_get(&self, tenant: Option<&str>, key: Option<&str>) -> Resp {
        send(self.tenant_request(tenant, key)).await
    }

    pub(crate) async fn metrics_text(&self) -> String {
        let response = self.get("/metrics").await;
        assert_eq!(response.status, 200, "GET /metrics: {}", response.text);
        response.text
    }

    /// Every audit event of `tenant` matching `query`, following `nextCursor`.
    pub(crate) async fn audit_events(&self, tenant: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut params: Vec<(&str, &str)> = query.to_vec();
            if let Some(c) = &cursor {
                params.push(("cursor", c));
            }
            let response =
                send(self.admin_request(Method::GET, &format!("/tenants/{tenant}/audit")).query(&params)).await;
            assert_eq!(response.status, 200, "GET audit of {tenant}: {}", response.text);
            let page = response.json();
            let batch = page["events"].as_array().unwrap_or_else(|| panic!("no events array: {page}"));
            events.extend(batch.iter().cloned());
            match page.get("nextCursor") {
                None | Some(Value::Null) => return events,
                Some(Value::String(next)) => {
                    assert!(!batch.is_empty(), "an empty page with a nextCursor: {page}");
                    cursor = Some(next.clone());
                }
                Some(other) => panic!("nextCursor is neither a string nor null: {other}"),
            }
        }
        panic!("audit pagination did not end after 1000 pages");
    }

    /// Polls the audit log of `tenant` (up to 3 s: events are written in batches) until
    /// `done` holds for its events; returns them.
    pub(crate) async fn wait_audit(&self, tenant: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        eventually(what, Duration::from_secs(3), || async {
            let events = self.audit_events(tenant, &[]).await;
            if done(&events) { Ok(events) } else { Err(serde_json::to_string_pretty(&events).unwrap()) }
        })
        .await
    }

    /// Polls until the usage report of `tenant` shows `api_calls`.
    pub(crate) async fn wait_usage_api_calls(&self, tenant: &str, api_calls: u64) -> Value {
        self.wait_usage_api_calls_within(tenant, api_calls, Duration::from_secs(3)).await
    }

    pub(crate) async fn wait_usage_api_calls_within(&self, tenant: &str, api_calls: u64, within: Duration) -> Value {
        eventually(&format!("usage of {tenant} to show {api_calls} apiCalls"), within, || async {
            let response = self.admin(Method::GET, &format!("/tenants/{tenant}/usage"), None).await;
            if response.status != 200 {
                return Err(format!("{} {}", response.status, response.text));
            }
            let usage = response.json();
            if usage["apiCalls"].as_u64() == Some(api_calls) { Ok(usage) } else { Err(usage.to_string()) }
        })
        .await
    }

    // ----- process control ------------------------------------------------------------------

    /// SIGTERM, then waits (up to 15 s) for the exit; returns its status.
    pub(crate) async fn stop_graceful(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("gateway is running");
        let signal = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("run kill");
        assert!(signal.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("connectors did not exit within 15 s of SIGTERM; stderr:\n{}", self.stderr_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (up to `timeout`) for the process to exit by itself and returns its status; `None`
    /// if it is still running then (it is left running).
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("gateway is running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`: no shutdown, no flush.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().expect("gateway is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait after SIGKILL");
    }

    /// Polls `/readyz` until it answers 200.
    pub(crate) async fn wait_ready(&self, timeout: Duration) {
        eventually("GET /readyz to answer 200", timeout, || async {
            let response = self.get("/readyz").await;
            if response.status == 200 { Ok(()) } else { Err(format!("{} {}", response.status, response.text)) }
        })
        .await
    }

    /// Graceful stop (asserting exit code 0), then a start with the same data dir and config.
    pub(crate) async fn restart(&mut self) {
        let status = self.stop_graceful().await;
        assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}; stderr:\n{}", self.stderr_text());
        self.spawn().await;
    }

    /// Starts the process again after [`Gateway::stop_graceful`], same data dir and config
    /// (on a new port).
    pub(crate) async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// Like [`Gateway::start_again`], running `binary` (another build of the gateway).
    pub(crate) async fn start_again_as(&mut self, binary: &Path) {
        self.binary = binary.to_path_buf();
        self.spawn().await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Collects failed checks of a table-driven test and reports them all at once.
#[derive(Default)]
pub(crate) struct Failures(Vec<String>);

impl Failures {
    pub(crate) fn check(&mut self, case: impl std::fmt::Display, mismatch: Option<String>) {
        if let Some(m) = mismatch {
            self.0.push(format!("{case}: {m}"));
        }
    }

    pub(crate) fn assert_none(self) {
        assert!(self.0.is_empty(), "{} failing case(s):\n{}", self.0.len(), self.0.join("\n"));
    }
}

// ----- shape checks -----------------------------------------------------------------------

pub(crate) fn assert_rfc3339(value: &Value, what: &str) -> DateTime<Utc> {
    let text = value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{what} `{text}` is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// The documented tenant object: every field there with the right type.
pub(crate) fn assert_tenant_shape(tenant: &Value) {
    let t = tenant.as_object().unwrap_or_else(|| panic!("tenant is not an object: {tenant}"));
    for key in ["id", "name", "plan", "status"] {
        assert!(t.get(key).is_some_and(Value::is_string), "tenant.{key} missing or not a string: {tenant}");
    }
    assert!(t.get("email").is_some_and(|e| e.is_string() || e.is_null()), "tenant.email missing: {tenant}");
    assert!(matches!(t["status"].as_str(), Some("active" | "suspended")), "tenant.status: {tenant}");
    for key in [
        "requestsPerMinute",
        "requestsPerHour",
        "requestsPerDay",
        "maxCustomServers",
        "maxToolInvocations",
        "maxStorageMB",
    ] {
        assert!(tenant["limits"][key].is_u64(), "tenant.limits.{key} missing or not a count: {tenant}");
    }
    for key in ["customServers", "oauth", "advancedAnalytics"] {
        assert!(tenant["features"][key].is_boolean(), "tenant.features.{key} missing or not a bool: {tenant}");
    }
    assert!(tenant["security"]["allowedIPs"].is_array(), "tenant.security.allowedIPs: {tenant}");
    let created = assert_rfc3339(&tenant["createdAt"], "createdAt");
    let updated = assert_rfc3339(&tenant["updatedAt"], "updatedAt");
    assert!(updated >= created, "updatedAt before createdAt: {tenant}");
}

/// The documented usage report.
pub(crate) fn assert_usage_shape(usage: &Value, tenant: &str) {
    assert_eq!(usage["tenantId"], tenant, "usage.tenantId: {usage}");
    let month = usage["month"].as_str().unwrap_or_else(|| panic!("usage.month: {usage}"));
    assert!(month.len() == 7 && month.as_bytes()[4] == b'-', "usage.month `{month}` is not YYYY-MM");
    for key in ["apiCalls", "toolInvocations", "customServers"] {
        assert!(usage[key].is_u64(), "usage.{key} missing or not a count: {usage}");
    }
    for key in ["apiCallsCost", "toolInvocationsCost", "customServersCost", "totalCost"] {
        assert!(usage[key].is_number(), "usage.{key} missing or not a number: {usage}");
    }
    assert!(usage["currency"].is_string(), "usage.currency: {usage}");
}

pub(crate) fn approx(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

/// The current month, `YYYY-MM`, UTC.
pub(crate) fn this_month() -> String {
    Utc::now().format("%Y-%m").to_string()
}

pub(crate) fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}
