//! Filled in by the edge-worker issue.
