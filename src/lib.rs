//! socketio-exporter: reads a Socket.IO app's real per-namespace connection counts and
//! exports them as `websocket_connections{environment,namespace}`.
//!
//! Data flows `sources → reconcile → snapshot → sinks`: sources send `update::Update`s to
//! the sync loop, which publishes an immutable `snapshot::Snapshot` that the sinks render.
//! The binary needs [`run`], [`Cli`], [`Config`] and [`check_web_config`]; the benchmarks
//! reach the pure core through [`bench`], the fuzz targets the parsers through [`fuzz`].
//! Everything else is private to the crate.

mod app;
mod backoff;
mod cli;
mod config;
mod fs_watch;
#[doc(hidden)]
pub mod fuzz;
mod log_limit;
mod metrics;
mod namespaces;
mod readiness;
mod reconcile;
mod regular_file;
mod reload;
mod server;
mod sinks;
mod snapshot;
mod sources;
mod telemetry;
mod update;
mod web;

pub use app::run;
pub use cli::{Cli, LogFormat};
pub use config::Config;
pub use web::check as check_web_config;

/// The pure core, for the benchmarks: take counts in, reconcile, render.
#[doc(hidden)]
pub mod bench {
    pub use crate::namespaces::NamespaceRules;
    pub use crate::reconcile::{Inputs, SourceInput, reconcile};
    pub use crate::sinks::prometheus::render_snapshot;
    pub use crate::sources::Scope;
    pub use crate::sources::report_file::Scanner as ReportScanner;
    pub use crate::update::{Event, ServerCounts};

    /// Parses a `server_stats` argument as a `socketio_admin` source does: in full when its
    /// server is `in_scope`, else its id only. Returns the namespaces read.
    pub fn parse_server_stats(json: &serde_json::value::RawValue, in_scope: bool) -> usize {
        crate::sources::socketio_admin::protocol::parse_server_stats(json, |_| in_scope)
            .map_or(0, |stats| stats.namespaces_read())
    }
}
