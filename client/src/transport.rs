//! One HTTP exchange with the gateway: the URL built from path segments (each percent-encoded),
//! the caller's headers, the JSON body, error answers turned into [`Error::Api`], and retries of
//! 429 and 503 after the wait the gateway asks for.
//!
//! Retrying is safe for every method here: the gateway answers 429 (rate limit, failed
//! authentications) and 503 (owner unavailable, hand-off) before it does any of the request's work.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Error};

/// When to retry an answer of 429 or 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 turns retrying off.
    pub max_retries: u32,
    /// The longest wait the client accepts: an answer asking for more is returned as the error.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 3, max_wait: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    /// Never retry: every 429 and 503 is returned to the caller.
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    headers: HeaderMap,
    pub(crate) retry: RetryPolicy,
}

/// The `X-Request-Id` of an answer.
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string)
}

impl Transport {
    pub(crate) fn new(base_url: &str, headers: HeaderMap) -> Result<Self, Error> {
        let base = Url::parse(base_url).map_err(|e| Error::InvalidSetting(format!("base URL `{base_url}`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::InvalidSetting(format!("base URL `{base_url}` is not an http(s) URL")));
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        Ok(Self { http, base, headers, retry: RetryPolicy::default() })
    }

    pub(crate) fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), Error> {
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::InvalidSetting(format!("`{name}` is not a valid header value")))?;
        Ok((HeaderName::from_static(name), value))
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            // A base URL that can be a base has path segments (checked in `new`).
            let mut path = url.path_segments_mut().expect("an http(s) base URL");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// Sends a request and decodes its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, request: Call<'_>) -> Result<T, Error> {
        let (status, headers, bytes) = self.exchange(&request).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::UnexpectedResponse {
            status: status.as_u16(),
            request_id: request_id(&headers),
            detail: format!("the body is not the expected JSON: {e}"),
        })
    }

    /// Sends a request whose answer has no body the caller needs (204, or a 202 it ignores).
    pub(crate) async fn empty(&self, request: Call<'_>) -> Result<(), Error> {
        self.exchange(&request).await.map(|_| ())
    }

    async fn exchange(&self, call: &Call<'_>) -> Result<(StatusCode, HeaderMap, Vec<u8>), Error> {
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(call.method.clone(), self.url(call.path)).headers(self.headers.clone());
            if let Some(query) = &call.query {
                request = request.query(query);
            }
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await?.to_vec();
            if status.is_success() {
                return Ok((status, headers, bytes));
            }
            let error = api_error(status, &headers, &bytes)?;
            let retryable = matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
            let wait = Duration::from_secs(error.retry_after.unwrap_or(1));
            if !retryable || attempt >= self.retry.max_retries || wait > self.retry.max_wait {
                return Err(Error::Api(Box::new(error)));
            }
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

/// The error of a failed answer: the API's error body, or [`Error::UnexpectedResponse`] when the
/// body is not one.
fn api_error(status: StatusCode, headers: &HeaderMap, bytes: &[u8]) -> Result<ApiError, Error> {
    let body: serde_json::Value = serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null);
    let (Some(code), Some(message)) = (body["code"].as_str(), body["error"].as_str()) else {
        let text = String::from_utf8_lossy(bytes);
        return Err(Error::UnexpectedResponse {
            status: status.as_u16(),
            request_id: request_id(headers),
            detail: text.chars().take(500).collect(),
        });
    };
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| body["retryAfter"].as_u64());
    Ok(ApiError {
        status: status.as_u16(),
        code: code.to_string(),
        message: message.to_string(),
        request_id: body["requestId"].as_str().map(str::to_string).or_else(|| request_id(headers)),
        retry_after,
        body,
    })
}

/// One request: method, path segments after the base URL, query and JSON body.
pub(crate) struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Option<Vec<(&'static str, String)>>,
    body: Option<serde_json::Value>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, path: &'a [&'a str]) -> Self {
        Self { method, path, query: None, body: None }
    }

    pub(crate) fn get(path: &'a [&'a str]) -> Self {
        Self::new(Method::GET, path)
    }

    /// Query parameters; `None` values are left out.
    pub(crate) fn query(mut self, params: &[(&'static str, Option<String>)]) -> Self {
        let present: Vec<_> = params.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect();
        self.query = (!present.is_empty()).then_some(present);
        self
    }

    pub(crate) fn body(mut self, body: &impl Serialize) -> Result<Self, Error> {
        let value = serde_json::to_value(body).map_err(|e| Error::InvalidSetting(format!("request body: {e}")))?;
        self.body = Some(value);
        Ok(self)
    }
}
