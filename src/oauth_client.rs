//! The OAuth 2.0 refresh-token grant over HTTP (RFC 6749 §6): one request to a token endpoint, its
//! answer parsed and its failure classified.
//!
//! This is a thin shell for [`RefreshSchedule`](connectors_actors::refresh_schedule::RefreshSchedule):
//! it decides how the request looks on the wire and which [`FailureKind`] a failure is, nothing
//! about when to refresh or what to persist. Tokens and secrets never appear in errors, `Debug`
//! output or logs: errors carry status codes and registered OAuth error codes only, never a
//! provider's free text (which could echo what it was sent).
//!
//! Classification, and why:
//! - timeout, connection or body failure, 5xx, 408, 429, and `temporarily_unavailable` /
//!   `server_error` → `Transient`: the provider did not settle the request, asking again may work;
//! - 400/401 with `invalid_grant` → `InvalidGrant`: the refresh token is dead;
//! - any other 4xx, a redirect (never followed: it would carry the refresh token elsewhere), any
//!   status but 200 in the 1xx–3xx range, an unusable endpoint URL or one the outbound policy
//!   refuses (a private address, plain http), and a malformed 200 →
//!   `Misconfigured`. A malformed 200 is never a success: the provider may have rotated the
//!   refresh token, but without a usable answer the credential cannot go on.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connectors_actors::refresh_schedule::FailureKind;
use connectors_actors::secret_store::OAuthCredential;
use connectors_actors::token_endpoint::{RefreshFailure, RefreshedTokens, TokenEndpoint};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;

use crate::outbound::{CheckedHttp, OutboundPolicy, OutboundRefused, check_resolved};

/// Largest token response read; a token endpoint answers in a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// OAuth error codes kept in [`RefreshError::Refused`]: registered codes only, so a provider
/// cannot smuggle a token into our logs through the `error` field.
const KNOWN_ERROR_CODES: [&str; 10] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "invalid_target",
    "server_error",
    "temporarily_unavailable",
];

/// One refresh: where to send it and with which credentials.
#[derive(Clone, Copy)]
pub struct RefreshRequest<'a> {
    pub token_endpoint: &'a str,
    pub refresh_token: &'a str,
    pub client_id: Option<&'a str>,
    /// With a secret the client authenticates with HTTP Basic (`client_secret_basic`).
    pub client_secret: Option<&'a str>,
    /// The scopes granted so far. They are not sent (RFC 6749 §6: omitting `scope` keeps the
    /// original grant, which a refresh may not exceed); they are what the answer grants when it
    /// names no scope (RFC 6749 §5.1).
    pub scopes: &'a [String],
}

impl fmt::Debug for RefreshRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("token_endpoint", &self.token_endpoint)
            .field("refresh_token", &"[REDACTED]")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.map(|_| "[REDACTED]"))
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// New tokens from the provider.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: Option<String>,
    /// Lifetime of the access token from the moment of the answer; `None` when the provider does
    /// not say.
    pub expires_in: Option<Duration>,
    /// The new refresh token when the provider rotates it; `None` means the old one stays valid.
    pub refresh_token: Option<String>,
    /// Scopes granted: the answer's `scope`, else the request's.
    pub scopes: Vec<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[REDACTED]"))
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Why a refresh failed. No variant holds a token, a secret or text written by the provider.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the token endpoint URL is not usable")]
    InvalidEndpoint(#[source] reqwest::Error),
    #[error("the token endpoint is not allowed: {0}")]
    NotAllowed(#[source] OutboundRefused),
    #[error("the token endpoint did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the token endpoint could not be reached or the connection broke")]
    Transport(#[source] reqwest::Error),
    #[error("the token endpoint is unavailable (status {status})")]
    Unavailable { status: u16 },
    #[error("the token endpoint refused the refresh (status {status}, error {})", error.unwrap_or("unrecognized"))]
    Refused {
        status: u16,
        /// The registered OAuth error code; `None` when absent or not a registered one.
        error: Option<&'static str>,
    },
    #[error("the token endpoint answered with unexpected status {status}")]
    UnexpectedStatus { status: u16 },
    #[error("the token endpoint's answer is malformed: {reason}")]
    Malformed { reason: &'static str },
}

impl RefreshError {
    /// How the refresh schedule should take this failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            RefreshError::Timeout(_) | RefreshError::Transport(_) | RefreshError::Unavailable { .. } => {
                FailureKind::Transient
            }
            RefreshError::Refused { error: Some("server_error" | "temporarily_unavailable"), .. } => {
                FailureKind::Transient
            }
            RefreshError::Refused { status: 400 | 401, error: Some("invalid_grant") } => FailureKind::InvalidGrant,
            RefreshError::Refused { .. }
            | RefreshError::InvalidEndpoint(_)
            | RefreshError::NotAllowed(_)
            | RefreshError::UnexpectedStatus { .. }
            | RefreshError::Malformed { .. } => FailureKind::Misconfigured,
        }
    }
}

/// Sends refresh-token grants; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: CheckedHttp,
    timeout: Duration,
}

impl TokenClient {
    /// A client whose every refresh, from connecting to the last byte of the answer, ends within
    /// `timeout`.
    /// `outbound` decides which endpoints it may reach. (Its client follows no redirect: a
    /// redirected POST would carry the refresh token and a Basic header to another place.)
    pub fn new(outbound: Arc<OutboundPolicy>, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = CheckedHttp::new(outbound, reqwest::Client::builder().timeout(timeout))?;
        Ok(Self { http, timeout })
    }

    /// Exchanges `request.refresh_token` for new tokens.
    pub async fn refresh(&self, request: RefreshRequest<'_>) -> Result<TokenResponse, RefreshError> {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", request.refresh_token)];
        let url = self.http.policy().check_token_endpoint(request.token_endpoint).map_err(RefreshError::NotAllowed)?;
        check_resolved(self.http.policy(), &url).await.map_err(RefreshError::NotAllowed)?;
        let mut builder = self.http.client().post(request.token_endpoint).header(ACCEPT, "application/json");
        match (request.client_id, request.client_secret) {
            (id, Some(secret)) => {
                builder = builder.header(AUTHORIZATION, basic_authorization(id.unwrap_or(""), secret)?);
            }
            // A public client identifies itself in the body (RFC 6749 §3.2.1).
            (Some(id), None) => form.push(("client_id", id)),
            (None, None) => {}
        }
        let mut response = builder.form(&form).send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(RefreshError::Malformed { reason: "the answer is too large" });
            }
            body.extend_from_slice(&chunk);
        }
        match status {
            StatusCode::OK => parse_success(&body, request.scopes),
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                Err(RefreshError::Unavailable { status: status.as_u16() })
            }
            s if s.is_server_error() => Err(RefreshError::Unavailable { status: s.as_u16() }),
            s if s.is_client_error() => Err(RefreshError::Refused { status: s.as_u16(), error: error_code(&body) }),
            s => Err(RefreshError::UnexpectedStatus { status: s.as_u16() }),
        }
    }

    fn transport_error(&self, error: reqwest::Error) -> RefreshError {
        // The URL is configuration, not a secret, but it has no place in a failure about tokens.
        let error = error.without_url();
        if error.is_timeout() {
            RefreshError::Timeout(self.timeout)
        } else if error.is_builder() {
            RefreshError::InvalidEndpoint(error)
        } else {
            RefreshError::Transport(error)
        }
    }
}

/// `client_secret_basic` (RFC 6749 §2.3.1): id and secret form-urlencoded, then `id:secret` in
/// Base64, marked sensitive so it never shows in `Debug`.
fn basic_authorization(client_id: &str, secret: &str) -> Result<HeaderValue, RefreshError> {
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let credentials = STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)));
    let mut value = HeaderValue::try_from(format!("Basic {credentials}"))
        .map_err(|_| RefreshError::Malformed { reason: "client credentials do not fit a header" })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The fields of a successful answer (RFC 6749 §5.1), loosely typed so every check below can give
/// a reason of its own instead of a parser message that may quote the token.
#[derive(Deserialize)]
struct SuccessBody {
    access_token: Option<serde_json::Value>,
    token_type: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<serde_json::Value>,
    scope: Option<serde_json::Value>,
}

fn parse_success(body: &[u8], requested_scopes: &[String]) -> Result<TokenResponse, RefreshError> {
    let malformed = |reason| RefreshError::Malformed { reason };
    let body: SuccessBody = serde_json::from_slice(body).map_err(|_| malformed("not a JSON object"))?;
    let text = |value: Option<serde_json::Value>, reason| match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(malformed(reason)),
    };
    let access_token = text(body.access_token, "access_token is not a string")?
        .filter(|token| !token.is_empty())
        .ok_or(malformed("access_token is missing"))?;
    let expires_in = match body.expires_in {
        None | Some(serde_json::Value::Null) => None,
        // Some providers send the number as a string.
        Some(serde_json::Value::String(text)) => {
            Some(text.trim().parse::<u64>().map_err(|_| malformed("bad expires_in"))?)
        }
        Some(number) => Some(number.as_u64().ok_or(malformed("bad expires_in"))?),
    };
    let scopes = match text(body.scope, "scope is not a string")? {
        Some(scope) => scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        None => requested_scopes.to_vec(),
    };
    Ok(TokenResponse {
        access_token,
        token_type: text(body.token_type, "token_type is not a string")?,
        expires_in: expires_in.map(Duration::from_secs),
        // An empty refresh token is no token: the old one stays.
        refresh_token: text(body.refresh_token, "refresh_token is not a string")?.filter(|token| !token.is_empty()),
        scopes,
    })
}

/// The registered OAuth error code of an error answer (RFC 6749 §5.2), if it has one.
fn error_code(body: &[u8]) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<serde_json::Value>,
    }
    let body: ErrorBody = serde_json::from_slice(body).ok()?;
    let code = body.error?;
    KNOWN_ERROR_CODES.into_iter().find(|known| code.as_str() == Some(known))
}

/// The adapter of the tenant actors' [`TokenEndpoint`] port.
#[async_trait]
impl TokenEndpoint for TokenClient {
    async fn refresh(&self, credential: &OAuthCredential) -> Result<RefreshedTokens, RefreshFailure> {
        let (Some(token_endpoint), Some(refresh_token)) = (&credential.token_endpoint, &credential.refresh_token)
        else {
            return Err(RefreshFailure {
                kind: FailureKind::Misconfigured,
                reason: "the credential has no refresh token or no token endpoint".into(),
            });
        };
        let request = RefreshRequest {
            token_endpoint,
            refresh_token,
            client_id: credential.client_id.as_deref(),
            client_secret: credential.client_secret.as_deref(),
            scopes: &credential.scopes,
        };
        match TokenClient::refresh(self, request).await {
            Ok(answer) => Ok(RefreshedTokens {
                access_token: answer.access_token,
                expires_in: answer.expires_in.and_then(|d| chrono::Duration::from_std(d).ok()),
                refresh_token: answer.refresh_token,
                scopes: answer.scopes,
            }),
            // The error's text holds no token or secret (see `RefreshError`).
            Err(error) => Err(RefreshFailure { kind: error.kind(), reason: error.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, Method, StatusCode as AxumStatus, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::any;

    use super::*;

    const REFRESH_TOKEN: &str = "RT-old-s3cr3t";
    const CLIENT_SECRET: &str = "CS-p@ss:w/rd+s3cr3t";
    const CLIENT_ID: &str = "my client";
    const NEW_ACCESS_TOKEN: &str = "AT-new-s3cr3t";
    const NEW_REFRESH_TOKEN: &str = "RT-new-s3cr3t";

    /// What the token endpoint received.
    #[derive(Debug, Clone)]
    struct Received {
        method: Method,
        content_type: Option<String>,
        authorization: Option<String>,
        body: String,
        form: Vec<(String, String)>,
    }

    type Log = Arc<Mutex<Vec<Received>>>;

    async fn endpoint(
        State(log): State<Log>,
        Path(scenario): Path<String>,
        method: Method,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        let header = |name| headers.get(name).map(|v: &HeaderValue| v.to_str().expect("ascii header").to_owned());
        let form = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        let received = Received {
            method,
            content_type: header(header::CONTENT_TYPE),
            authorization: header(header::AUTHORIZATION),
            body,
            form,
        };
        log.lock().expect("log lock").push(received);
        let json = |status: AxumStatus, value: serde_json::Value| (status, axum::Json(value)).into_response();
        match scenario.as_str() {
            "ok" => json(
                AxumStatus::OK,
                serde_json::json!({"access_token": NEW_ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600}),
            ),
            "rotate" => json(
                AxumStatus::OK,
                serde_json::json!({
                    "access_token": NEW_ACCESS_TOKEN,
                    "token_type": "Bearer",
                    "expires_in": "1800",
                    "refresh_token": NEW_REFRESH_TOKEN,
                    "scope": "repo  read:user",
                }),
            ),
            "invalid_grant" => json(
                AxumStatus::BAD_REQUEST,
                serde_json::json!({"error": "invalid_grant", "error_description": format!("{REFRESH_TOKEN} revoked")}),
            ),
            "invalid_client" => json(AxumStatus::UNAUTHORIZED, serde_json::json!({"error": "invalid_client"})),
            "echoing_error" => json(AxumStatus::BAD_REQUEST, serde_json::json!({"error": REFRESH_TOKEN})),
            "forbidden_invalid_grant" => json(AxumStatus::FORBIDDEN, serde_json::json!({"error": "invalid_grant"})),
            "temporarily_unavailable" => {
                json(AxumStatus::BAD_REQUEST, serde_json::json!({"error": "temporarily_unavailable"}))
            }
            "unavailable" => (AxumStatus::SERVICE_UNAVAILABLE, "down for maintenance").into_response(),
            "rate_limited" => AxumStatus::TOO_MANY_REQUESTS.into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                json(AxumStatus::OK, serde_json::json!({"access_token": NEW_ACCESS_TOKEN}))
            }
            "no_access_token" => json(AxumStatus::OK, serde_json::json!({"token_type": "Bearer", "expires_in": 60})),
            "empty_access_token" => json(AxumStatus::OK, serde_json::json!({"access_token": ""})),
            "numeric_access_token" => json(AxumStatus::OK, serde_json::json!({"access_token": 12345})),
            "negative_expiry" => json(AxumStatus::OK, serde_json::json!({"access_token": "x", "expires_in": -5})),
            "not_json" => (AxumStatus::OK, format!("access_token={NEW_ACCESS_TOKEN}")).into_response(),
            "huge" => (AxumStatus::OK, "x".repeat(MAX_RESPONSE_BYTES + 1)).into_response(),
            "redirect" => (AxumStatus::TEMPORARY_REDIRECT, [(header::LOCATION, "/token/ok")]).into_response(),
            "no_content" => AxumStatus::NO_CONTENT.into_response(),
            other => panic!("unknown scenario {other}"),
        }
    }

    /// A token endpoint on 127.0.0.1, answering `/token/{scenario}` and logging every request.
    async fn server() -> (SocketAddr, Log) {
        let log = Log::default();
        let app = Router::new().route("/token/{scenario}", any(endpoint)).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("bound address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve the token endpoint") });
        (addr, log)
    }

    /// A client that may reach the test's endpoint on 127.0.0.1 over plain http.
    fn client() -> TokenClient {
        client_under(OutboundPolicy::new(false, &["127.0.0.1".into()]).unwrap())
    }

    fn client_under(policy: OutboundPolicy) -> TokenClient {
        TokenClient::new(Arc::new(policy), Duration::from_millis(500)).expect("a client without TLS builds")
    }

    fn request<'a>(endpoint: &'a str, scopes: &'a [String]) -> RefreshRequest<'a> {
        RefreshRequest {
            token_endpoint: endpoint,
            refresh_token: REFRESH_TOKEN,
            client_id: Some(CLIENT_ID),
            client_secret: Some(CLIENT_SECRET),
            scopes,
        }
    }

    /// Refreshes against `scenario` of a fresh server; returns the outcome and what the server got.
    async fn refresh(
        scenario: &str,
        scopes: &[String],
        client_secret: Option<&str>,
    ) -> (Result<TokenResponse, RefreshError>, Vec<Received>) {
        let (addr, log) = server().await;
        let endpoint = format!("http://{addr}/token/{scenario}");
        let outcome = client().refresh(RefreshRequest { client_secret, ..request(&endpoint, scopes) }).await;
        let received = log.lock().expect("log lock").clone();
        (outcome, received)
    }

    fn assert_no_secret(text: &str) {
        for secret in [REFRESH_TOKEN, CLIENT_SECRET, NEW_ACCESS_TOKEN, NEW_REFRESH_TOKEN, "s3cr3t"] {
            assert!(!text.contains(secret), "{text:?} leaks {secret:?}");
        }
    }

    /// The failure of `scenario`, checked to leak nothing.
    async fn failure(scenario: &str) -> RefreshError {
        let (outcome, _) = refresh(scenario, &[], Some(CLIENT_SECRET)).await;
        let error = outcome.expect_err("the refresh must fail");
        assert_no_secret(&error.to_string());
        assert_no_secret(&format!("{error:?}"));
        error
    }

    #[tokio::test]
    async fn an_endpoint_the_outbound_policy_refuses_is_never_called() {
        let (addr, log) = server().await;
        let endpoint = format!("http://{addr}/token/ok");
        for policy in [OutboundPolicy::default(), OutboundPolicy::new(true, &[]).unwrap()] {
            let error = client_under(policy).refresh(request(&endpoint, &[])).await.expect_err("refused");
            assert!(matches!(error, RefreshError::NotAllowed(_)), "{error:?}");
            assert_eq!(error.kind(), FailureKind::Misconfigured);
        }
        assert!(log.lock().unwrap().is_empty(), "loopback, and plain http to an unlisted host, are never called");
    }

    #[tokio::test]
    async fn a_confidential_client_posts_the_grant_form_with_basic_authentication() {
        let scopes = vec!["repo".to_owned()];
        let (outcome, received) = refresh("ok", &scopes, Some(CLIENT_SECRET)).await;
        outcome.expect("the refresh succeeds");
        let [received] = received.as_slice() else { panic!("one request expected, got {received:?}") };
        assert_eq!(received.method, Method::POST);
        assert_eq!(received.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        let expected_form = [("grant_type", "refresh_token"), ("refresh_token", REFRESH_TOKEN)];
        let expected_form: Vec<_> = expected_form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(received.form, expected_form, "no scope, no client credentials in the body");
        assert!(
            !received.body.contains("CS-") && !received.body.contains("client"),
            "credentials go in the header only"
        );
        let basic = received.authorization.as_deref().expect("an Authorization header");
        let encoded = basic.strip_prefix("Basic ").expect("HTTP Basic");
        let decoded = String::from_utf8(STANDARD.decode(encoded).expect("base64")).expect("utf-8");
        // RFC 6749 §2.3.1: each part form-urlencoded before joining, so a ':' in the secret is safe.
        assert_eq!(decoded, "my+client:CS-p%40ss%3Aw%2Frd%2Bs3cr3t");
        let (id, secret) = decoded.split_once(':').expect("id:secret");
        let decode = |part: &str| {
            form_urlencoded::parse(format!("x={part}").as_bytes()).next().expect("one pair").1.into_owned()
        };
        assert_eq!((decode(id).as_str(), decode(secret).as_str()), (CLIENT_ID, CLIENT_SECRET));
    }

    #[tokio::test]
    async fn a_public_client_sends_its_id_in_the_body() {
        let (outcome, received) = refresh("ok", &[], None).await;
        outcome.expect("the refresh succeeds");
        let [received] = received.as_slice() else { panic!("one request expected") };
        assert_eq!(received.authorization, None);
        let client_id = received.form.iter().find(|(k, _)| k == "client_id").map(|(_, v)| v.as_str());
        assert_eq!(client_id, Some(CLIENT_ID));
        assert_eq!(received.form.len(), 3);
    }

    #[tokio::test]
    async fn a_success_without_a_new_refresh_token_keeps_the_old_one() {
        let scopes = vec!["repo".to_owned()];
        let (outcome, _) = refresh("ok", &scopes, Some(CLIENT_SECRET)).await;
        let response = outcome.expect("the refresh succeeds");
        assert_eq!(response.access_token, NEW_ACCESS_TOKEN);
        assert_eq!(response.token_type.as_deref(), Some("Bearer"));
        assert_eq!(response.expires_in, Some(Duration::from_secs(3600)));
        assert_eq!(response.refresh_token, None);
        assert_eq!(response.scopes, scopes, "no scope in the answer: the grant is unchanged");
        assert_no_secret(&format!("{response:?}"));
    }

    #[tokio::test]
    async fn a_success_with_a_rotated_refresh_token_returns_it() {
        let (outcome, _) = refresh("rotate", &[], Some(CLIENT_SECRET)).await;
        let response = outcome.expect("the refresh succeeds");
        assert_eq!(response.refresh_token.as_deref(), Some(NEW_REFRESH_TOKEN));
        assert_eq!(response.expires_in, Some(Duration::from_secs(1800)), "expires_in as a string is accepted");
        assert_eq!(response.scopes, ["repo", "read:user"]);
        assert_no_secret(&format!("{response:?}"));
    }

    #[tokio::test]
    async fn invalid_grant_means_the_refresh_token_is_dead() {
        let error = failure("invalid_grant").await;
        assert!(matches!(error, RefreshError::Refused { status: 400, error: Some("invalid_grant") }), "{error:?}");
        assert_eq!(error.kind(), FailureKind::InvalidGrant);
    }

    #[tokio::test]
    async fn other_refusals_are_misconfiguration() {
        let error = failure("invalid_client").await;
        assert!(matches!(error, RefreshError::Refused { status: 401, error: Some("invalid_client") }), "{error:?}");
        assert_eq!(error.kind(), FailureKind::Misconfigured);
        let error = failure("forbidden_invalid_grant").await;
        assert_eq!(error.kind(), FailureKind::Misconfigured, "invalid_grant counts on 400/401 only");
        let error = failure("echoing_error").await;
        assert!(matches!(error, RefreshError::Refused { status: 400, error: None }), "unregistered codes are dropped");
        assert_eq!(error.kind(), FailureKind::Misconfigured);
    }

    #[tokio::test]
    async fn unavailability_is_transient() {
        for scenario in ["unavailable", "rate_limited", "temporarily_unavailable"] {
            assert_eq!(failure(scenario).await.kind(), FailureKind::Transient, "{scenario}");
        }
        assert!(matches!(failure("unavailable").await, RefreshError::Unavailable { status: 503 }));
    }

    #[tokio::test]
    async fn a_slow_endpoint_times_out_as_transient() {
        let started = std::time::Instant::now();
        let error = failure("slow").await;
        assert!(matches!(error, RefreshError::Timeout(_)), "{error:?}");
        assert_eq!(error.kind(), FailureKind::Transient);
        assert!(started.elapsed() < Duration::from_secs(4), "the deadline cut the request short");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_transient_and_a_bad_url_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("bound address");
        drop(listener);
        let endpoint = format!("http://{addr}/token");
        let error = client().refresh(request(&endpoint, &[])).await.expect_err("nobody listens");
        assert!(matches!(error, RefreshError::Transport(_)), "{error:?}");
        assert_eq!(error.kind(), FailureKind::Transient);
        assert_no_secret(&format!("{error} {error:?}"));

        let error = client().refresh(request("not a url", &[])).await.expect_err("no such URL");
        assert_eq!(error.kind(), FailureKind::Misconfigured, "{error:?}");
        assert_no_secret(&format!("{error} {error:?}"));
    }

    #[tokio::test]
    async fn a_malformed_success_is_never_a_success() {
        for scenario in
            ["no_access_token", "empty_access_token", "numeric_access_token", "negative_expiry", "not_json", "huge"]
        {
            let error = failure(scenario).await;
            assert!(matches!(error, RefreshError::Malformed { .. }), "{scenario}: {error:?}");
            assert_eq!(error.kind(), FailureKind::Misconfigured, "{scenario}");
        }
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_other_statuses_are_not_success() {
        let (outcome, received) = refresh("redirect", &[], Some(CLIENT_SECRET)).await;
        let error = outcome.expect_err("a redirect is not an answer");
        assert!(matches!(error, RefreshError::UnexpectedStatus { status: 307 }), "{error:?}");
        assert_eq!(error.kind(), FailureKind::Misconfigured);
        assert_eq!(received.len(), 1, "the token went to one place only");
        let error = failure("no_content").await;
        assert!(matches!(error, RefreshError::UnexpectedStatus { status: 204 }), "{error:?}");
    }

    #[test]
    fn a_request_prints_without_secrets() {
        let text = format!("{:?}", request("https://idp.example/token", &[]));
        assert_no_secret(&text);
        assert!(text.contains("idp.example") && text.contains(CLIENT_ID));
    }
}
