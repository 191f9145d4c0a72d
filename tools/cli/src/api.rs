//! The control plane's HTTP API as the CLI calls it: every failure becomes one readable line
//! (the server's `{"error":{"code","message","field"?}}`, or what went wrong on the way there).

use std::fmt;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An answer outside 2xx, as the server explained it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        write!(f, ": {}", self.message)?;
        if self.status == StatusCode::UNAUTHORIZED {
            // The usual cause is a missing token, which the server cannot name.
            write!(f, " (give --token, or set LITMUS_TOKEN or ADMIN_API_TOKENS)")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&base).with_context(|| format!("--url `{base}` is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("--url `{base}` must start with http:// or https://");
        }
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
        Ok(Client { base, token: token.to_owned(), http })
    }

    async fn send(&self, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).query(query);
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let err = parsed.as_ref().map(|v| &v["error"]);
        let s = |k: &str| err.and_then(|e| e[k].as_str()).map(str::to_owned);
        Err(ApiError {
            status,
            code: s("code").unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_")),
            message: s("message").unwrap_or_else(|| if text.trim().is_empty() { "no details".into() } else { text.trim().chars().take(200).collect() }),
            field: s("field"),
        }
        .into())
    }

    /// Names the URL: "connection refused" alone does not say which server was meant.
    pub fn transport(&self, e: reqwest::Error) -> anyhow::Error {
        let refused = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused));
        if refused {
            anyhow::anyhow!("cannot reach the control plane at {}: connection refused (is it running? set --url or LITMUS_URL)", self.base)
        } else if e.is_timeout() {
            anyhow::anyhow!("the control plane at {} did not answer in time", self.base)
        } else if e.is_connect() {
            anyhow::anyhow!("cannot reach the control plane at {}: {}", self.base, chain(&e))
        } else {
            anyhow::anyhow!("request to {} failed: {}", self.base, chain(&e))
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let resp = self.send(Method::GET, path, query, None).await?;
        resp.json().await.with_context(|| format!("GET {path}: the answer is not JSON"))
    }

    pub async fn get_text(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
        Ok(self.send(Method::GET, path, query, None).await?.text().await?)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self.send(Method::POST, path, &[], Some(body)).await?;
        resp.json().await.with_context(|| format!("POST {path}: the answer is not JSON"))
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// A path segment for an id or key typed by a person (keys are slugs, but nothing stops a typo).
pub fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}
