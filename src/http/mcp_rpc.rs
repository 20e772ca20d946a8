//! JSON-RPC 2.0 as the MCP endpoint speaks it: reading one incoming message, and writing
//! results and errors with the HTTP status the transport gives them.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// The gateway could not carry out a valid request (quota, credentials, upstream failure);
/// `data` holds the tenant API's error fields (`code`, …).
pub const GATEWAY_ERROR: i64 = -32000;
/// The session named by `Mcp-Session-Id` does not exist (any more), as the SDKs' servers say.
pub const SESSION_NOT_FOUND: i64 = -32001;
/// 2026-07-28: a routing header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the protocol version is not one this server speaks.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// One message a client posted.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
    },
    /// A response to a request of ours (we send none; acknowledged and dropped).
    Response,
}

/// Reads one JSON-RPC message; batches are not part of the protocol versions served.
pub fn incoming(body: &[u8]) -> Result<Incoming, RpcError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        RpcError::new(StatusCode::BAD_REQUEST, Value::Null, PARSE_ERROR, format!("Parse error: {error}"))
    })?;
    let invalid = |message: &str| RpcError::new(StatusCode::BAD_REQUEST, Value::Null, INVALID_REQUEST, message);
    let Value::Object(fields) = value else {
        return Err(invalid("the body must be one JSON-RPC request, notification or response object"));
    };
    if fields.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("`jsonrpc` must be \"2.0\""));
    }
    let params = fields.get("params").cloned().unwrap_or(Value::Null);
    if !(params.is_object() || params.is_null()) {
        return Err(invalid("`params` must be an object"));
    }
    match (fields.get("method"), fields.get("id")) {
        (Some(Value::String(method)), Some(id)) if id.is_string() || id.is_i64() || id.is_u64() => {
            Ok(Incoming::Request { id: id.clone(), method: method.clone(), params })
        }
        (Some(Value::String(_)), Some(_)) => Err(invalid("`id` must be a string or an integer")),
        (Some(Value::String(method)), None) => Ok(Incoming::Notification { method: method.clone() }),
        (None, Some(_)) if fields.contains_key("result") || fields.contains_key("error") => Ok(Incoming::Response),
        _ => Err(invalid("not a JSON-RPC request, notification or response")),
    }
}

/// A JSON-RPC error answered with an HTTP status. Boxed, as [`super::error::ApiError`] is, so
/// that results carrying it stay small.
#[derive(Debug, Clone)]
pub struct RpcError(Box<RpcErrorParts>);

#[derive(Debug, Clone)]
pub struct RpcErrorParts {
    pub status: StatusCode,
    pub id: Value,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
    pub headers: HeaderMap,
}

impl std::ops::Deref for RpcError {
    type Target = RpcErrorParts;

    fn deref(&self) -> &RpcErrorParts {
        &self.0
    }
}

impl std::ops::DerefMut for RpcError {
    fn deref_mut(&mut self) -> &mut RpcErrorParts {
        &mut self.0
    }
}

impl RpcError {
    pub fn new(status: StatusCode, id: Value, code: i64, message: impl Into<String>) -> Self {
        Self(Box::new(RpcErrorParts {
            status,
            id,
            code,
            message: message.into(),
            data: None,
            headers: HeaderMap::new(),
        }))
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers.extend(headers);
        self
    }

    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        json!({"jsonrpc": "2.0", "id": self.id, "error": error})
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let body = self.body();
        let parts = *self.0;
        (parts.status, parts.headers, Json(body)).into_response()
    }
}

pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

pub fn notification(method: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": method})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_and_malformed_ones_refused() {
        let request = incoming(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#).unwrap();
        assert_eq!(request, Incoming::Request { id: json!(7), method: "tools/list".into(), params: json!({}) });
        let note = incoming(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(note, Incoming::Notification { method: "notifications/initialized".into() });
        assert_eq!(incoming(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap(), Incoming::Response);
        assert_eq!(incoming(b"{").unwrap_err().code, PARSE_ERROR);
        for bad in [
            &br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#[..],
            br#"{"id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#,
            br#"{"jsonrpc":"2.0"}"#,
        ] {
            let error = incoming(bad).unwrap_err();
            assert_eq!((error.status, error.code), (StatusCode::BAD_REQUEST, INVALID_REQUEST), "{bad:?}");
        }
    }
}
