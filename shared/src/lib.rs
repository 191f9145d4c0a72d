//! Litmus Edge's assignment engine: one answer to "which variant does this unit get?", computed
//! identically by the control plane, the edge worker and every SDK.
//!
//! Pure: no I/O, no clocks, no randomness, no logging. Compiles for native and wasm32.
//!
//! - [`config`]: experiment configuration types and their validation.
//! - [`targeting`]: the targeting-condition language (see `shared/README.md`).
//! - [`hashing`]: the versioned, documented bucketing hash.
//! - [`assign()`]: the single entry point.
//! - [`validate`]: the rules an event must meet, applied alike by the edge and the control plane.
//! - [`sticky`]: sticky assignments, a unit keeping its first variant while weights move.
//! - [`signing`]: signed assignments and sticky documents, so that events and documents a client
//!   sends back can be told from forgeries.
//! - [`exposures`]: exposure groups, the exposures of one request as the edge forwards them.

pub mod assign;
pub mod config;
pub mod error;
pub mod exposures;
pub mod hashing;
pub mod signing;
pub mod sticky;
pub mod targeting;
pub mod validate;

pub use assign::{Assignment, Reason, assign, assign_with};
pub use config::{ConfigSet, Experiment, ExperimentType, LayerSlot, Status, Variant};
pub use error::ConfigError;
pub use sticky::{StickyDoc, assign_sticky};
pub use targeting::{Attributes, SavedGroups, Targeting};
