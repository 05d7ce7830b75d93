//! Sinks export the published [`crate::snapshot::Snapshot`]; none of them keeps its own copy.

pub mod otlp;
pub mod prometheus;
