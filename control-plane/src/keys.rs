//! API keys: managed keys (created, listed and revoked through `/api/v1/keys`) and the env
//! tokens (`ADMIN_API_TOKENS`, …), which stay as bootstrap keys.
//!
//! A managed key is `lk_{prefix}_{secret}`: 48 bits of lookup prefix and 256 bits of secret,
//! shown once. The database keeps the prefix and the SHA-256 of the whole key; a request finds the
//! row by prefix and compares hashes with `subtle` (no early exit on the first differing byte).
//! Env tokens are compared the same way, hashed first so that their length does not show either.
//!
//! Verified keys are cached per process for [`CACHE_SECONDS`]: a revocation or expiry takes effect
//! on every control plane within that time, without a query per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::config::Config;
use crate::error::{ApiError, ApiResult};

/// How long a verified key is trusted without asking the database again: the revocation delay.
pub const CACHE_SECONDS: u64 = 2;
/// `last_used_at` is written at most this often per key (not once per request).
const USED_EVERY: Duration = Duration::from_secs(60);
const PREFIX_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

/// What a key may do; which routes each role reaches is `http::access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, keys included.
    Admin,
    /// Every read (`GET`), no write.
    Read,
    /// Sending events only (the edge worker's service key).
    Ingest,
    /// Assignment only (`POST /api/v1/assign`), for services.
    Assign,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Read, Role::Ingest, Role::Assign];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Read => "read",
            Role::Ingest => "ingest",
            Role::Assign => "assign",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Who is calling: the role, and the name audit entries record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// The key's name, or `env:{role}` for an env token.
    pub name: String,
    pub key_id: Option<Uuid>,
}

impl Caller {
    /// What an audit entry records: the key's name, with what the caller said of itself after it
    /// (a body's `actor` adds to the name, it never replaces it).
    pub fn actor(&self, said: Option<&str>) -> String {
        match said.map(str::trim).filter(|s| !s.is_empty() && *s != self.name) {
            Some(s) => format!("{} ({s})", self.name),
            None => self.name.clone(),
        }
    }
}

/// A key as listed: never its secret nor its hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Key {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key just created: the listing plus its secret, shown in this answer only.
#[derive(Debug, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub key: Key,
    /// The secret: `Authorization: Bearer {key}`.
    #[serde(rename = "key")]
    pub secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The lookup prefix of a managed key's text, if it has the shape of one.
pub fn prefix_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("lk_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let hexy = |s: &str, n: usize| s.len() == 2 * n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexy(prefix, PREFIX_BYTES) && hexy(secret, SECRET_BYTES)).then_some(prefix)
}

/// Creates a key; `by` is the creator's name (audit).
pub async fn create(db: &PgPool, new: NewKey, by: &str) -> ApiResult<Created> {
    crate::experiments::check_text("name", &new.name, 1, 100)?;
    let role = Role::parse(&new.role).ok_or_else(|| ApiError::validation("role", "must be one of admin, read, ingest, assign"))?;
    if new.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::validation("expires_at", "must be in the future"));
    }
    let prefix = crate::hex::encode(&rand::random::<[u8; PREFIX_BYTES]>());
    let secret = format!("lk_{prefix}_{}", crate::hex::encode(&rand::random::<[u8; SECRET_BYTES]>()));
    let key: Key = sqlx::query_as(
        "INSERT INTO api_keys (id, name, role, prefix, hash, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, name, role, prefix, created_by, created_at, expires_at, revoked_at, last_used_at",
    )
    .bind(Uuid::now_v7())
    .bind(&new.name)
    .bind(role.as_str())
    .bind(&prefix)
    .bind(digest(&secret).as_slice())
    .bind(by)
    .bind(new.expires_at)
    .fetch_one(db)
    .await?;
    tracing::info!(key = %key.id, name = key.name, role = key.role, by, "API key created");
    Ok(Created { key, secret })
}

pub async fn list(db: &PgPool) -> ApiResult<Vec<Key>> {
    Ok(sqlx::query_as(
        "SELECT id, name, role, prefix, created_by, created_at, expires_at, revoked_at, last_used_at FROM api_keys ORDER BY created_at, id",
    )
    .fetch_all(db)
    .await?)
}

/// Revokes a key (idempotent); every control plane refuses it within [`CACHE_SECONDS`].
pub async fn revoke(db: &PgPool, id: Uuid, by: &str) -> ApiResult<Key> {
    let key: Option<Key> = sqlx::query_as(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
         RETURNING id, name, role, prefix, created_by, created_at, expires_at, revoked_at, last_used_at",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    let key = key.ok_or_else(|| ApiError::NotFound(format!("no key {id}")))?;
    tracing::info!(key = %key.id, name = key.name, by, "API key revoked");
    Ok(key)
}

/// A key's row as the authenticator needs it.
#[derive(Clone)]
struct Stored {
    id: Uuid,
    name: String,
    role: Role,
    hash: [u8; 32],
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
}

/// id, name, role, hash, expires_at, revoked.
type StoredRow = (Uuid, String, String, Vec<u8>, Option<DateTime<Utc>>, bool);

struct Entry {
    stored: Option<Stored>,
    fetched: Instant,
    used_written: Option<Instant>,
}

/// The per-process cache of managed keys, by prefix (absent rows too, so a stream of guesses
/// with one prefix is one query per [`CACHE_SECONDS`]).
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
    /// The env tokens' digests with their roles, hashed once (the config never changes in a
    /// process) instead of on every request.
    env: std::sync::OnceLock<Vec<([u8; 32], Role)>>,
}

impl Cache {
    fn get(&self, prefix: &str) -> Option<Option<Stored>> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(prefix)?;
        (e.fetched.elapsed() < Duration::from_secs(CACHE_SECONDS)).then(|| e.stored.clone())
    }

    fn put(&self, prefix: &str, stored: Option<Stored>) {
        if let Ok(mut entries) = self.entries.lock() {
            // Bounded: guesses with fresh prefixes must not grow it without end.
            if entries.len() > 10_000 {
                entries.retain(|_, e| e.fetched.elapsed() < Duration::from_secs(CACHE_SECONDS));
            }
            let used_written = entries.get(prefix).and_then(|e| e.used_written);
            entries.insert(prefix.to_owned(), Entry { stored, fetched: Instant::now(), used_written });
        }
    }

    /// Whether `last_used_at` is due for a write (and marks it written).
    fn use_due(&self, prefix: &str) -> bool {
        let Ok(mut entries) = self.entries.lock() else { return false };
        let Some(e) = entries.get_mut(prefix) else { return false };
        if e.used_written.is_some_and(|t| t.elapsed() < USED_EVERY) {
            return false;
        }
        e.used_written = Some(Instant::now());
        true
    }
}

/// The caller a bearer token stands for, if any: a managed key (live, unexpired, unrevoked) or
/// an env token.
pub async fn authenticate(db: &PgPool, cache: &Cache, config: &Config, token: &str) -> ApiResult<Option<Caller>> {
    if let Some(prefix) = prefix_of(token) {
        let stored = match cache.get(prefix) {
            Some(s) => s,
            None => {
                let row: Option<StoredRow> = sqlx::query_as(
                    "SELECT id, name, role, hash, expires_at, revoked_at IS NOT NULL FROM api_keys WHERE prefix = $1",
                )
                .bind(prefix)
                .fetch_optional(db)
                .await?;
                let stored = row.and_then(|(id, name, role, hash, expires_at, revoked)| {
                    Some(Stored { id, name, role: Role::parse(&role)?, hash: hash.try_into().ok()?, expires_at, revoked })
                });
                cache.put(prefix, stored.clone());
                stored
            }
        };
        let Some(s) = stored else { return Ok(None) };
        let matches: bool = digest(token).ct_eq(&s.hash).into();
        if !matches || s.revoked || s.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Ok(None);
        }
        if cache.use_due(prefix) {
            let (db, id) = (db.clone(), s.id);
            tokio::spawn(async move {
                if let Err(e) = sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1").bind(id).execute(&db).await {
                    tracing::warn!(error = %e, "recording a key's last use failed");
                }
            });
        }
        return Ok(Some(Caller { role: s.role, name: s.name, key_id: Some(s.id) }));
    }
    let env = cache.env.get_or_init(|| env_digests(config));
    Ok(env_role(env, token).map(|role| Caller { role, name: format!("env:{}", role.as_str()), key_id: None }))
}

/// The role an env token grants, compared in constant time (hashed, so lengths do not show).
fn env_role(env: &[([u8; 32], Role)], token: &str) -> Option<Role> {
    let given = digest(token);
    let mut found = None;
    for (hash, role) in env {
        // Every token is compared, whichever matched: the time does not say which list.
        if bool::from(hash.ct_eq(&given)) && found.is_none() {
            found = Some(*role);
        }
    }
    found
}

/// The digests of the env tokens (blank ones left out), in the order admin, read, ingest.
fn env_digests(c: &Config) -> Vec<([u8; 32], Role)> {
    [(&c.admin_api_tokens, Role::Admin), (&c.read_api_tokens, Role::Read), (&c.ingest_api_tokens, Role::Ingest)]
        .into_iter()
        .flat_map(|(tokens, role)| tokens.iter().map(ExposeSecret::expose_secret).filter(|t| !t.is_empty()).map(move |t| (digest(t), role)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_keys_have_a_shape() {
        let key = format!("lk_{}_{}", "a1".repeat(6), "0f".repeat(32));
        assert_eq!(prefix_of(&key), Some("a1a1a1a1a1a1"));
        for bad in ["", "lk_", "lk_a1a1a1a1a1a1", "lk_a1a1a1a1a1a1_00", "xx_a1a1a1a1a1a1_".to_owned().as_str(), "admin-token"] {
            assert_eq!(prefix_of(bad), None, "{bad}");
        }
        assert_eq!(prefix_of(&format!("lk_{}_{}", "g1".repeat(6), "0f".repeat(32))), None);
    }

    #[test]
    fn an_actor_adds_to_the_keys_name() {
        let c = Caller { role: Role::Admin, name: "deploy-bot".into(), key_id: None };
        assert_eq!(c.actor(None), "deploy-bot");
        assert_eq!(c.actor(Some("  ")), "deploy-bot");
        assert_eq!(c.actor(Some("alice")), "deploy-bot (alice)");
        assert_eq!(c.actor(Some("deploy-bot")), "deploy-bot");
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
