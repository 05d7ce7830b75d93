//! socketio-exporter: reads a Socket.IO app's real per-namespace connection counts and
//! exports them as `websocket_connections{environment,namespace}`.
//!
//! Data flows `sources → reconcile → snapshot → sinks`: sources send [`update::Update`]s
//! to the sync loop, which publishes an immutable [`snapshot::Snapshot`] that the sinks
//! render.

pub mod app;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod log_limit;
pub mod metrics;
pub mod namespaces;
pub mod readiness;
pub mod reconcile;
pub mod server;
pub mod sinks;
pub mod snapshot;
pub mod sources;
pub mod telemetry;
pub mod update;
