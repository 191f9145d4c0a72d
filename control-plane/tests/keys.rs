//! Managed API keys and roles by route, through the real router and a real Postgres.

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{ADMIN, App, INGEST, READER};
use litmus_control_plane::MIGRATOR;
use litmus_control_plane::http::access::{self, Access};
use litmus_control_plane::keys::{CACHE_SECONDS, Role};
use serde_json::{Value, json};
use sqlx::PgPool;

async fn new_key(app: &App, name: &str, role: &str, expires_at: Option<String>) -> Value {
    let mut body = json!({"name": name, "role": role});
    if let Some(t) = expires_at {
        body["expires_at"] = json!(t);
    }
    let r = app.post("/api/v1/keys", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json()
}

fn secret(key: &Value) -> String {
    key["key"].as_str().expect("the secret, once").to_owned()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn keys_are_created_listed_without_secrets_and_revoked(db: PgPool) {
    let app = App::new(db.clone());
    let created = new_key(&app, "deploy-bot", "admin", None).await;
    for field in ["id", "name", "role", "prefix", "key"] {
        assert!(created.get(field).is_some(), "{field}: {created}");
    }
    let token = secret(&created);
    assert!(token.starts_with(&format!("lk_{}_", created["prefix"].as_str().unwrap_or("?"))), "{created}");
    // The key works, and what it writes is recorded under its name (a body's actor adds to it).
    app.create(json!({"key": "by_key"})).await;
    let r = app.raw(Method::POST, "/api/v1/experiments/by_key/launch", Some(&token), Some(json!({"ramp_pct": 100, "actor": "alice"}).to_string())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let audit = app.get("/api/v1/experiments/by_key/audit").await.json();
    let launch = audit.as_array().expect("audit").iter().find(|a| a["action"] == "launch").cloned().expect("a launch entry");
    assert_eq!(launch["actor"], "deploy-bot (alice)");
    let me = app.raw(Method::GET, "/api/v1/whoami", Some(&token), None).await.json();
    assert_eq!((me["role"].as_str(), me["name"].as_str()), (Some("admin"), Some("deploy-bot")));

    // Listed without the secret or its hash; its last use recorded.
    let deadline = Instant::now() + Duration::from_secs(5);
    let listed = loop {
        let list = app.get("/api/v1/keys").await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(!list.text.contains(&token[10..]), "a secret in the listing: {}", list.text);
        let entry = list.json().as_array().and_then(|a| a.iter().find(|k| k["id"] == created["id"]).cloned()).expect("listed");
        if !entry["last_used_at"].is_null() || Instant::now() > deadline {
            break entry;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(listed.get("key").is_none() && listed.get("hash").is_none(), "{listed}");
    assert!(!listed["last_used_at"].is_null(), "{listed}");
    let (stored,): (Vec<u8>,) = sqlx::query_as("SELECT hash FROM api_keys WHERE prefix = $1").bind(created["prefix"].as_str()).fetch_one(&db).await.expect("row");
    assert_eq!(stored.len(), 32, "a SHA-256, not the key");

    // Revoked: refused within the cache's lifetime.
    let id = created["id"].as_str().expect("id");
    let r = app.delete(&format!("/api/v1/keys/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.json()["revoked_at"].is_null());
    let revoked_at = Instant::now();
    loop {
        let r = app.raw(Method::GET, "/api/v1/experiments", Some(&token), None).await;
        if r.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(5), "still accepted {:?} after revoking", revoked_at.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(revoked_at.elapsed() <= Duration::from_secs(CACHE_SECONDS + 1));
    assert_eq!(app.delete("/api/v1/keys/00000000-0000-0000-0000-000000000000").await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_key_requests_are_refused_clearly(db: PgPool) {
    let app = App::new(db);
    for (body, field) in [
        (json!({"name": "x", "role": "root"}), "role"),
        (json!({"name": "", "role": "read"}), "name"),
        (json!({"name": "x", "role": "read", "expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"name": "x", "role": "read", "secret": "mine"}), "secret"),
    ] {
        let r = app.post("/api/v1/keys", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
        assert!(r.text.contains(field), "{body}: {}", r.text);
    }
    // Only admins manage keys.
    let r = app.raw(Method::POST, "/api/v1/keys", Some(READER), Some(json!({"name": "x", "role": "admin"}).to_string())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.raw(Method::GET, "/api/v1/keys", Some(READER), None).await.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_ingest_key_cannot_steer_an_experiment_named_events(db: PgPool) {
    // The old rule let an ingest token POST to any path containing `/events/`.
    let app = App::new(db);
    app.create(json!({"key": "events"})).await;
    for action in ["launch", "pause", "stop"] {
        let r = app.raw(Method::POST, &format!("/api/v1/experiments/events/{action}"), Some(INGEST), Some("{}".into())).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{action}: {}", r.text);
        assert_eq!(r.json()["error"]["message"], format!("a key with role `ingest` may not POST /api/v1/experiments/events/{action}"));
    }
    assert_eq!(app.get("/api/v1/experiments/events").await.json()["status"], "draft");
}

/// A concrete path for a route pattern.
fn concrete(route: &str) -> String {
    route.replace("{id}", "00000000-0000-0000-0000-000000000001")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_route_refuses_missing_wrong_revoked_expired_and_under_scoped_keys(db: PgPool) {
    let app = App::new(db);
    let mut by_role = Vec::new();
    for role in Role::ALL {
        by_role.push((role, secret(&new_key(&app, &format!("{}-key", role.as_str()), role.as_str(), None).await)));
    }
    let revoked = new_key(&app, "gone", "admin", None).await;
    app.delete(&format!("/api/v1/keys/{}", revoked["id"].as_str().unwrap_or(""))).await;
    let expiring = new_key(&app, "brief", "admin", Some((chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339())).await;
    let (revoked, expiring) = (secret(&revoked), secret(&expiring));
    tokio::time::sleep(Duration::from_millis(CACHE_SECONDS * 1000 + 500)).await;
    let wrong = format!("lk_{}_{}", "ab".repeat(6), "cd".repeat(32));

    for &(method, route, needed) in access::ROUTES {
        let method: Method = method.parse().expect("a method");
        let path = concrete(route);
        let body = (method != Method::GET && method != Method::DELETE).then(|| "{}".to_owned());
        for (what, token) in [("missing", None), ("wrong", Some(wrong.as_str())), ("env-like wrong", Some("admin-secreT")), ("revoked", Some(revoked.as_str())), ("expired", Some(expiring.as_str()))] {
            let r = app.raw(method.clone(), &path, token, body.clone()).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {route} with a {what} key: {}", r.text);
        }
        for (role, token) in &by_role {
            let r = app.raw(method.clone(), &path, Some(token), body.clone()).await;
            if access::allows(*role, needed) {
                assert!(![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&r.status), "{method} {route}: a {role:?} key is refused: {}", r.text);
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {route}: a {role:?} key is let through: {}", r.text);
            }
        }
        // The env tokens are keys of their roles too.
        for (role, token) in [(Role::Admin, ADMIN), (Role::Read, READER), (Role::Ingest, INGEST)] {
            let r = app.raw(method.clone(), &path, Some(token), body.clone()).await;
            assert_eq!(r.status == StatusCode::FORBIDDEN, !access::allows(role, needed), "{method} {route} with the env {role:?} token: {}", r.text);
        }
    }
    assert_eq!(access::of(&Method::POST, "/api/v1/experiments/{id}/launch"), Some(Access::Admin));
}

#[test]
fn every_route_the_router_declares_is_in_the_access_table() {
    // Read from the source: a route added to a module without an entry in the table fails here
    // (and is refused to everyone at run time).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/http") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        for (i, _) in text.match_indices(".route(\"") {
            let rest = &text[i + 8..];
            let route = &rest[..rest.find('"').expect("a closing quote")];
            // The methods chained on this route: up to the route's closing parenthesis.
            let call = &rest[..rest.find("))").map_or(rest.len(), |e| e + 1)];
            for (name, method) in [("get(", "GET"), ("post(", "POST"), ("put(", "PUT"), ("patch(", "PATCH"), ("delete(", "DELETE")] {
                if call.contains(name) || call.contains(&format!(".{name}")) {
                    found.push((path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(), method, route.to_owned()));
                }
            }
        }
    }
    assert!(found.len() >= access::ROUTES.len(), "{found:?}");
    for (file, method, route) in &found {
        if *file == "live.rs" || *file == "health.rs" {
            continue; // the socket authenticates itself; health is public
        }
        let full = format!("/api/v1{route}");
        assert!(access::of(&method.parse().expect("method"), &full).is_some(), "{method} {full} ({file}) has no entry in http/access.rs");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_console_is_served_with_security_headers(db: PgPool) {
    let app = App::new(db);
    for path in ["/", "/experiments/some-id"] {
        let r = app.raw(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(header("content-security-policy").contains("frame-ancestors 'none'"), "{path}: {:?}", r.headers);
        assert!(header("content-security-policy").contains("script-src 'self'"));
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "no-referrer");
    }
}
