//! Command-line flags. Each has an environment variable twin, as sidecars are configured
//! through the container spec.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Exports a Socket.IO app's real per-namespace connection counts to Prometheus.
#[derive(Debug, Parser)]
#[command(
    version = concat!(env!("CARGO_PKG_VERSION"), " (revision ", env!("SOCKETIO_EXPORTER_REVISION"), ")"),
    about
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, env = "SOCKETIO_EXPORTER_CONFIG", default_value = "config.toml")]
    pub config: PathBuf,

    /// TLS, basic auth and response headers for the listeners, in exporter-toolkit's web
    /// config format (YAML); certificates, keys and users are picked up without a restart.
    #[arg(
        long = "web.config.file",
        env = "SOCKETIO_EXPORTER_WEB_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Validate the configuration (and the web config file), print a summary and exit
    /// (0 if valid, 2 if not).
    #[arg(long)]
    pub check_config: bool,

    /// Listen address, overriding `listen.address` from the configuration.
    #[arg(
        long,
        visible_alias = "web.listen-address",
        env = "SOCKETIO_EXPORTER_LISTEN",
        value_name = "ADDR"
    )]
    pub listen: Option<SocketAddr>,

    /// Reload the configuration when its file changes (as on SIGHUP).
    #[arg(long = "config.watch", env = "SOCKETIO_EXPORTER_CONFIG_WATCH")]
    pub config_watch: bool,

    /// Allow `POST /-/reload` (reload the configuration) and `POST /-/quit` (shut down), as
    /// Prometheus does.
    #[arg(
        long = "web.enable-lifecycle",
        env = "SOCKETIO_EXPORTER_WEB_ENABLE_LIFECYCLE"
    )]
    pub web_enable_lifecycle: bool,

    /// Log line format.
    #[arg(long, env = "SOCKETIO_EXPORTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level (error, warn, info, debug, trace); RUST_LOG, when set, takes precedence.
    #[arg(long, env = "SOCKETIO_EXPORTER_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
