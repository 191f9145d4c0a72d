//! The worker's one error type. Every 4xx/5xx body has the contract's shape
//! `{"error":{"code","message","field"?}}`; bad input is always a 4xx, never a panic or a 500.

use serde::Serialize;
use serde_json::{Value, json};
use worker::Response;

pub type ApiResult<T> = std::result::Result<T, ApiError>;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Extra top-level members next to `error` (e.g. every rejected event of a batch).
    pub details: Option<(&'static str, Value)>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, details: None }
    }

    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_json", message)
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..Self::new(422, "validation_failed", message) }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "missing or invalid bearer token")
    }

    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such route")
    }

    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(405, "method_not_allowed", format!("allowed methods: {allowed}"))
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, code, message)
    }

    /// Runtime failures (a binding throwing, a body that cannot be read): the detail goes to the
    /// log, the client gets a generic message.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        worker::console_error!("{context}: {detail}");
        Self::new(500, "internal", "internal error")
    }

    #[must_use]
    pub fn with_details(mut self, name: &'static str, value: Value) -> Self {
        self.details = Some((name, value));
        self
    }

    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = &self.field {
            error["field"] = Value::String(field.clone());
        }
        let mut body = json!({ "error": error });
        if let Some((name, value)) = &self.details {
            body[*name] = value.clone();
        }
        body
    }

    pub fn into_response(self) -> Response {
        json_response(self.status, &self.body())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        Self::internal("runtime error", e)
    }
}

impl From<worker::KvError> for ApiError {
    fn from(e: worker::KvError) -> Self {
        Self::internal("kv error", e)
    }
}

/// A JSON response that cannot fail: the worker's own types always serialize, and if building the
/// response object ever throws we still answer with a bare 500 rather than propagating.
pub fn json_response<T: Serialize>(status: u16, body: &T) -> Response {
    let text = serde_json::to_string(body)
        .unwrap_or_else(|_| r#"{"error":{"code":"internal","message":"internal error"}}"#.to_owned());
    let response = Response::builder().with_status(status).fixed(text.into_bytes());
    // A fresh Headers object accepts any valid header, so this cannot fail in practice.
    let _ = response.headers().set("content-type", "application/json");
    response
}
