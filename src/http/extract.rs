//! Extractors that turn every malformed input into an [`ApiError`] (400 or 413) instead of
//! axum's plain-text rejections.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use connectors_actors::allow_list::IpAllowList;
use connectors_actors::tenant::TenantId;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// A JSON object body that a handler accepts. serde's derived structs also accept arrays (as
/// positional fields), which an API must refuse; so a body type names the fields that must hold
/// objects, and the extractor checks the shape before deserializing.
pub trait JsonObject: DeserializeOwned {
    /// Top-level fields whose values must be JSON objects (or null).
    const OBJECT_FIELDS: &'static [&'static str] = &[];
}

/// A JSON object body, parsed strictly: syntax errors, arrays where objects belong, wrong types
/// and unknown fields are 400 with the offending path named; bodies over the limit are 413.
/// `raw` keeps the body as sent (for the audit log).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Value,
}

/// Like [`JsonBody`], but an empty body is `None` (for endpoints whose body is optional).
pub struct OptionalJsonBody<T>(pub Option<T>);

async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body exceeds the size limit")
        } else {
            ApiError::invalid(format!("cannot read the request body: {rejection}"))
        }
    })
}

fn parse_object<T: JsonObject>(bytes: &[u8]) -> Result<JsonBody<T>, ApiError> {
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    let Value::Object(fields) = &raw else {
        return Err(ApiError::invalid("the JSON body must be an object"));
    };
    for name in T::OBJECT_FIELDS {
        if let Some(field) = fields.get(*name)
            && !(field.is_object() || field.is_null())
        {
            return Err(ApiError::invalid(format!("invalid JSON body at `{name}`: expected an object")));
        }
    }
    let value = serde_path_to_error::deserialize(&raw).map_err(|error| {
        let path = error.path().to_string();
        ApiError::invalid(format!("invalid JSON body at `{path}`: {}", error.into_inner()))
    })?;
    Ok(JsonBody { value, raw })
}

impl<T: JsonObject, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid("a JSON body is required"));
        }
        parse_object(&bytes)
    }
}

impl<T: JsonObject, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse_object(&bytes).map(|body| OptionalJsonBody(Some(body.value)))
    }
}

/// Query parameters; unparsable values are 400.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::invalid(format!("invalid query: {}", rejection.body_text())))
    }
}

/// The `{id}` of a tenant route, validated as a tenant id (400 otherwise).
pub struct TenantPath(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        TenantId::parse(&id).map(TenantPath).map_err(|e| ApiError::invalid(e.to_string()))
    }
}

/// The client's address of a request ([`client_ip`] of its socket peer and `X-Forwarded-For`);
/// without a recorded peer (a request not from a socket), loopback.
pub fn request_client_ip(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    trusted: &IpAllowList,
) -> IpAddr {
    let peer =
        extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([127, 0, 0, 1]), |ConnectInfo(addr)| addr.ip());
    // Every line of the header, in order; a line that is not text reads as an entry that is not
    // an address.
    let forwarded: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().map(|line| line.to_str().unwrap_or("?")).collect();
    client_ip(peer, &forwarded, trusted)
}

/// The client's address: the socket peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
/// were written by the client and cannot be believed). `forwarded_for` holds the header's lines
/// in the order received: several lines are one list (RFC 9110 §5.3), and a proxy that adds a
/// line of its own after the client's must still be read last.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &IpAllowList) -> IpAddr {
    if trusted.is_empty() || !trusted.allows(peer) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.iter().rev().flat_map(|line| line.rsplit(',')) {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.allows(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = IpAllowList::parse(&["10.0.0.0/8"]).unwrap();
        let xff = &["198.51.100.1, 203.0.113.5, 10.0.0.2"][..];
        assert_eq!(client_ip(ip("10.0.0.1"), xff, &trusted), ip("203.0.113.5"));
        assert_eq!(client_ip(ip("192.0.2.9"), xff, &trusted), ip("192.0.2.9"));
        assert_eq!(client_ip(ip("10.0.0.1"), &[], &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(ip("10.0.0.1"), &["garbage"], &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(ip("10.0.0.1"), xff, &IpAllowList::default()), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_for_over_several_lines_is_one_list_read_from_the_last_line() {
        let trusted = IpAllowList::parse(&["10.0.0.0/8"]).unwrap();
        // The client sent its own line; the proxy appended the address it saw as a new line.
        let lines = ["203.0.113.66", "198.51.100.7"];
        assert_eq!(client_ip(ip("10.0.0.1"), &lines, &trusted), ip("198.51.100.7"));
        let through_two_proxies = ["203.0.113.66, 198.51.100.7", "10.0.0.5"];
        assert_eq!(client_ip(ip("10.0.0.1"), &through_two_proxies, &trusted), ip("198.51.100.7"));
        // A line that is not text stops the walk where it is, as garbage does.
        assert_eq!(client_ip(ip("10.0.0.1"), &["198.51.100.7", "?"], &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn json_errors_name_the_path() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            limits: Inner,
        }
        impl JsonObject for Body {
            const OBJECT_FIELDS: &'static [&'static str] = &["limits"];
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            n: u64,
        }
        let err = parse_object::<Body>(br#"{"limits":{"n":"x"}}"#).err().unwrap();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(format!("{err:?}").contains("limits.n"));
        assert!(parse_object::<Body>(br#"{"limits":{"n":1}} trailing"#).is_err());
        assert!(parse_object::<Body>(br#"{"limits":{"n":1},"x":2}"#).is_err());
        assert!(parse_object::<Body>(br#"{"limits":[1]}"#).is_err(), "arrays are not objects");
        assert!(parse_object::<Body>(br#"[{"n":1}]"#).is_err(), "nor is a top-level array");
        assert_eq!(parse_object::<Body>(br#"{"limits":{"n":1}}"#).ok().unwrap().raw["limits"]["n"], 1);
    }
}
