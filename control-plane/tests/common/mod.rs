#![allow(dead_code)] // each test binary uses a different part of the harness
//! Test harness: the real router over a fresh migrated database, called without a socket.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use litmus_control_plane::config::Config;
use litmus_control_plane::{http, startup};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

pub const ADMIN: &str = "admin-secret";
pub const READER: &str = "read-secret";
pub const INGEST: &str = "ingest-secret";

pub struct App {
    router: Router,
    pub db: PgPool,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the contract's error shape and returns (code, field).
    pub fn error(&self, status: u16) -> (String, Option<String>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {v}");
        (e["code"].as_str().expect("error.code").to_owned(), e["field"].as_str().map(str::to_owned))
    }
}

impl App {
    pub fn new(db: PgPool) -> Self {
        Self::with_config(db, |_| {})
    }

    /// The test config (tokens above, 64 KiB bodies), changed by `adjust`.
    pub fn with_config(db: PgPool, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_tests("postgres://unused", ADMIN);
        config.read_api_tokens = vec![READER.to_owned().into()];
        config.ingest_api_tokens = vec![INGEST.to_owned().into()];
        config.max_body_bytes = 64 * 1024;
        // Webhook receivers in tests listen on loopback.
        config.webhook_allow_private = true;
        adjust(&mut config);
        let state = startup::app_state(db.clone(), config, None);
        App { router: http::router(state), db }
    }

    pub async fn raw(&self, method: Method, path: &str, token: Option<&str>, body: Option<String>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(body.map_or_else(Body::empty, Body::from)).expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw(Method::GET, path, Some(ADMIN), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.raw(Method::POST, path, Some(ADMIN), Some(body.to_string())).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.raw(Method::DELETE, path, Some(ADMIN), None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.raw(Method::PATCH, path, Some(ADMIN), Some(body.to_string())).await
    }

    /// Creates the contract's example experiment (with overrides) and returns it.
    pub async fn create(&self, overrides: Value) -> Value {
        let mut body = json!({
            "key": "model_ranking", "name": "Model Ranking Test", "description": "Does B rank better?",
            "owner_team": "pricing-ds", "created_by": "ds.user", "unit_type": "request_id", "type": "ab",
            "targeting": {"country": {"in": ["US"]}}, "ramp_pct": 0,
            "variants": [{"key": "model_a", "name": "Model A", "weight": 0.5, "config_json": {"model": "a"}},
                         {"key": "model_b", "name": "Model B", "weight": 0.5, "config_json": {"model": "b"}}]
        });
        for (k, v) in overrides.as_object().expect("object") {
            body[k] = v.clone();
        }
        let r = self.post("/api/v1/experiments", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()
    }
}
