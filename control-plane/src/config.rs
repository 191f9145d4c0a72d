use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use litmus_shared::signing::Keys;
use secrecy::SecretString;

/// Every setting, as a flag or an env var (documented in `.env.example`). Secrets are
/// `SecretString`s: `Debug` prints them redacted, and `--help` never shows their env values.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "litmus-control-plane", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LITMUS_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,

    /// Postgres connection string.
    #[arg(long, env = "DATABASE_URL", value_parser = secret, hide_env_values = true)]
    pub database_url: SecretString,

    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Comma-separated bearer tokens with full access to /api/v1.
    #[arg(long, env = "ADMIN_API_TOKENS", value_delimiter = ',', default_value = "", value_parser = secret, hide_env_values = true)]
    pub admin_api_tokens: Vec<SecretString>,

    /// Comma-separated bearer tokens that may only read (GET).
    #[arg(long, env = "READ_API_TOKENS", value_delimiter = ',', default_value = "", value_parser = secret, hide_env_values = true)]
    pub read_api_tokens: Vec<SecretString>,

    /// Comma-separated bearer tokens that may only send events (the edge worker's service token).
    #[arg(long, env = "INGEST_API_TOKENS", value_delimiter = ',', default_value = "", value_parser = secret, hide_env_values = true)]
    pub ingest_api_tokens: Vec<SecretString>,

    /// Keys that sign assignments and sticky documents (`litmus_shared::signing`): comma-separated,
    /// 32 hex digits each (`openssl rand -hex 16`), the same as the worker's `SIGNING_KEYS`
    /// secret. The first signs, every one verifies: rotate by putting the new key first. Unset:
    /// answers carry no `signature`, and sticky documents sent back are ignored.
    #[arg(long, env = "SIGNING_KEYS", default_value = "", value_parser = parse_keys, hide_env_values = true)]
    pub signing_keys: Keys,

    /// Where the edge worker accepts config pushes (`PUT`), e.g. http://127.0.0.1:8787/v1/admin/config
    /// under `wrangler dev`. Unset: no HTTP push.
    #[arg(long, env = "EDGE_PUBLISH_URL")]
    pub edge_publish_url: Option<String>,

    /// Bearer token for `EDGE_PUBLISH_URL` (the worker's PUBLISH_TOKEN secret).
    #[arg(long, env = "EDGE_PUBLISH_TOKEN", default_value = "", value_parser = secret, hide_env_values = true)]
    pub edge_publish_token: SecretString,

    /// Cloudflare account id: with the two below, configs are written to Workers KV through
    /// Cloudflare's REST API (production).
    #[arg(long, env = "CF_ACCOUNT_ID")]
    pub cf_account_id: Option<String>,

    #[arg(long, env = "CF_KV_NAMESPACE_ID")]
    pub cf_kv_namespace_id: Option<String>,

    /// API token with "Workers KV Storage: Edit".
    #[arg(long, env = "CF_API_TOKEN", value_parser = secret, hide_env_values = true)]
    pub cf_api_token: Option<SecretString>,

    /// How long a stopped experiment stays in the config set published to the edge, where asking
    /// for it by key still answers its control variant (`not_running`); after that it is dropped
    /// and the edge answers `unknown_experiment`. `30s`, `15m`, `24h`, `7d`, or seconds.
    #[arg(long, env = "LITMUS_STOPPED_GRACE", default_value = "24h", value_parser = parse_duration)]
    pub stopped_grace: Duration,

    /// How often the watch job evaluates every running experiment's stopping rules, safe rollout
    /// and insights (also soon after each burst of ingest). `30s`, `1m`, or seconds.
    #[arg(long, env = "LITMUS_WATCH_EVERY", default_value = "30s", value_parser = parse_duration)]
    pub watch_every: Duration,

    /// Width of the time buckets the exposure-rate anomaly check compares (the last complete
    /// bucket against the ones before it, up to 12).
    #[arg(long, env = "LITMUS_ANOMALY_BUCKET", default_value = "5m", value_parser = parse_duration)]
    pub anomaly_bucket: Duration,

    /// First wait before a failed webhook delivery is retried; it doubles per attempt (capped at
    /// an hour) for up to `LITMUS_WEBHOOK_ATTEMPTS` attempts.
    #[arg(long, env = "LITMUS_WEBHOOK_BACKOFF", default_value = "5s", value_parser = parse_duration)]
    pub webhook_backoff: Duration,

    #[arg(long, env = "LITMUS_WEBHOOK_ATTEMPTS", default_value_t = 8)]
    pub webhook_attempts: u32,

    /// Allow webhook targets on private, loopback, link-local and metadata addresses (local
    /// development against a receiver on this machine). Off by default: such targets are
    /// refused at creation and at delivery (`outbound`).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value = "false", action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,

    /// Put `/metrics` behind an `admin` or `read` key. Off by default (the API contract serves
    /// it without one, for a scraper on the private network the control plane runs in).
    /// Live result sockets one key may hold open at once (each recomputes results as events
    /// arrive); the next is refused with a 429 message.
    #[arg(long, env = "LIVE_SOCKETS_PER_KEY", default_value_t = 32)]
    pub live_sockets_per_key: usize,

    #[arg(long, env = "METRICS_REQUIRE_KEY", default_value = "false", action = clap::ArgAction::Set)]
    pub metrics_require_key: bool,

    /// Days of raw events to keep; older daily partitions are dropped. 0 keeps everything.
    #[arg(long, env = "EVENT_RETENTION_DAYS", default_value_t = 0)]
    pub event_retention_days: u32,

    /// Largest accepted request body, except the batch endpoint.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Largest accepted body on `POST /api/v1/events/batch`.
    #[arg(long, env = "BATCH_MAX_BODY_BYTES", default_value_t = 16 << 20)]
    pub batch_max_body_bytes: usize,

    /// Built dashboard served at `/`.
    #[arg(long, env = "DASHBOARD_DIR", default_value = "dashboard/dist")]
    pub dashboard_dir: PathBuf,

    /// `text` or `json` log lines (filter with RUST_LOG).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(text.to_owned().into())
}

impl Config {
    /// A config for tests and embedding: defaults everywhere, the given tokens.
    pub fn for_tests(database_url: &str, admin_token: &str) -> Self {
        use clap::Parser;
        let mut c = Config::parse_from(["litmus-control-plane", "--database-url", database_url]);
        c.admin_api_tokens = vec![admin_token.to_owned().into()];
        c.read_api_tokens.clear();
        c.ingest_api_tokens.clear();
        c.edge_publish_url = None;
        c.cf_account_id = None;
        c.signing_keys = Keys::parse(TEST_SIGNING_KEY).unwrap_or_default();
        c
    }
}

/// The signing key [`Config::for_tests`] uses, so that tests can verify and forge against it.
pub const TEST_SIGNING_KEY: &str = "6c69746d75732d746573742d6b657931";

fn parse_keys(s: &str) -> Result<Keys, String> {
    Keys::parse(s).map_err(|e| format!("SIGNING_KEYS: {e}"))
}

/// `90`, `90s`, `15m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number.parse().map_err(|_| format!("`{s}` is not a duration (e.g. 30s, 15m, 24h, 7d)"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit in `{s}`: use s, m, h or d")),
    };
    // Postgres intervals (and common sense) end long before u64 seconds do.
    const MAX: u64 = 3650 * 86_400;
    n.checked_mul(seconds).filter(|&secs| secs <= MAX).map(Duration::from_secs).ok_or_else(|| format!("`{s}` is longer than 3650 days"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "1.5h", "3w", "-1s", "99999999999999999999d", "3651d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(Config::for_tests("postgres://x", "t").stopped_grace, Duration::from_secs(86_400));
    }

    #[test]
    fn secrets_stay_out_of_help_and_debug() {
        use clap::CommandFactory;
        let secret_envs = ["DATABASE_URL", "ADMIN_API_TOKENS", "READ_API_TOKENS", "INGEST_API_TOKENS", "EDGE_PUBLISH_TOKEN", "CF_API_TOKEN", "SIGNING_KEYS"];
        let command = Config::command();
        for env in secret_envs {
            let arg = command.get_arguments().find(|a| a.get_env().is_some_and(|e| e == env)).unwrap_or_else(|| panic!("{env} is a setting"));
            assert!(arg.is_hide_env_values_set(), "--help would print {env}'s value");
        }
        let mut c = Config::for_tests("postgres://litmus:db-password@host/db", "admin-token-value");
        c.read_api_tokens = vec!["read-token-value".to_owned().into()];
        c.edge_publish_token = "publish-token-value".to_owned().into();
        c.cf_api_token = Some("cf-token-value".to_owned().into());
        let printed = format!("{c:?}");
        for secret in ["db-password", "admin-token-value", "read-token-value", "publish-token-value", "cf-token-value"] {
            assert!(!printed.contains(secret), "Debug prints {secret}");
        }
    }
}
