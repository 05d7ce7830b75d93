//! Sinks export the published [`crate::snapshot::Snapshot`]; none of them keeps its own copy.

pub(crate) mod otlp;
pub(crate) mod prometheus;
