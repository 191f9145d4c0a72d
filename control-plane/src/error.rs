//! The crate's one error type and the contract's one error shape:
//! `{"error":{"code":"<snake_case>","message":"...","field":"<json path>"?}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadJson { message: String },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A lifecycle conflict with its own code (`experiment_not_running`, `experiment_stopped`).
    #[error("{message}")]
    Lifecycle { code: &'static str, message: String },
    #[error("{message}")]
    Validation { field: Option<String>, message: String, details: Option<Value> },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Unavailable(String),
    /// A limit per key was reached (429).
    #[error("{0}")]
    TooManyRequests(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        ApiError::Validation { field: (!field.is_empty()).then_some(field), message: message.into(), details: None }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::NotFound(format!("{what} `{id}` not found"))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadJson { .. } => (StatusCode::BAD_REQUEST, "bad_json"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Lifecycle { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Database(e) if is_unavailable(e) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            ApiError::Database(_) | ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Failures a retry cures: the database is down, restarting or saturated (SQLSTATE class 08
/// connection exceptions, 57P0x shutdown/start-up, 53300 too many connections), or it picked this
/// transaction as a deadlock or serialization victim (40P01, 40001).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || ["53300", "40P01", "40001"].contains(&&*c)),
        _ => false,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        // Never leak database or internal messages to clients; log them instead.
        let message = match &self {
            ApiError::Database(e) => {
                tracing::error!(error = %e, "database error");
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    "the database is unavailable; retry later".to_owned()
                } else {
                    "internal error".to_owned()
                }
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut error = json!({"code": code, "message": message});
        let mut body = json!({});
        if let ApiError::Validation { field, details, .. } = &self {
            if let Some(f) = field {
                error["field"] = json!(f);
            }
            if let Some(Value::Object(extra)) = details {
                for (k, v) in extra {
                    body[k] = v.clone();
                }
            }
        }
        body["error"] = error;
        let mut response = (status, axum::Json(body)).into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}
