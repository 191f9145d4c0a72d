//! Litmus Edge's control plane.
//!
//! - [`config`]: every setting, from flags or env vars.
//! - [`startup`]: pool, migrations, background tasks, serving with graceful shutdown.
//! - [`hex`]: bytes as lowercase hex.
//! - [`http`]: the API, one module per resource: parsing and formatting around the domain modules.
//! - [`error`]: the crate's one error type and its JSON shape.
//! - [`experiments`]: experiments as stored, their lookups and audit log.
//! - [`bandit`]: bandit policies, the period-effect readout and the reweighting job.
//! - [`results`]: the readout every consumer shares (HTTP, live socket, bandits, background jobs).
//! - [`stats`]: pure statistics over sufficient statistics (no I/O).
//! - [`publish`]: pushes the running experiments' configs to the edge.
//! - [`partitions`]: creates event partitions ahead and drops expired ones.
//! - [`rollup`]: applies new events to the aggregates the results read, off the ingest path.
//! - [`retire`]: wakes the publisher when a stopped experiment's grace period at the edge ends.
//! - [`watch`]: stopping rules, safe rollouts and insights, acted on by a background job.
//! - [`alerts`]: the alert feed every finding lands in, once.
//! - [`keys`]: API keys (managed and env), their roles, authentication.
//! - [`outbound`]: where user-configured requests may go (public addresses only, by default).
//! - [`webhooks`]: signed delivery of alerts, retried with backoff, with a delivery log.

pub mod alerts;
pub mod bandit;
pub mod config;
pub mod error;
pub mod experiments;
pub mod hex;
pub mod http;
pub mod keys;
pub mod outbound;
pub mod partitions;
pub mod publish;
pub mod results;
pub mod retire;
pub mod rollup;
pub mod saved_groups;
pub mod startup;
pub mod stats;
pub mod watch;
pub mod webhooks;

/// The schema: the repo's root `migrations/`, embedded in the binary and applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
