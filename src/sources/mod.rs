//! Sources read connection counts from the app and send them to the reconcile loop as
//! [`Update`]s. Each runs as its own task; none of them touches the published snapshot.

pub mod http_json;
pub mod push;
pub mod report;
pub mod report_file;
pub mod socketio_admin;

use std::fmt;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{SourceConfig, SourceKind, SyncConfig};
use crate::telemetry::Telemetry;

/// What a source tells the reconcile loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Index of the source in the configuration.
    pub source: usize,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The source reached the app (or started listening) and is waiting for reports.
    Connected,
    /// A full report of one server's counts; replaces that server's previous report.
    Report(ServerReport),
    /// Connection events: they move the counts of a server's current report until the
    /// next full report, which is authoritative.
    Deltas(Vec<Delta>),
    /// A server's report was withdrawn (its report file was deleted).
    Forget(Option<String>),
    /// The source lost the app: everything it reported is unknown now.
    Down(Reason),
}

/// One server's counts, as the app reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReport {
    /// `None`: the server this exporter runs beside (the source's own server id).
    pub server_id: Option<String>,
    /// Engine.IO connections, when the app reports them.
    pub clients: Option<u64>,
    /// Sockets per namespace.
    pub namespaces: Vec<(String, u64)>,
    /// How old the counts already were when the source got them.
    pub age: std::time::Duration,
}

/// One namespace socket connected (`+1`) or disconnected (`-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub server_id: Option<String>,
    pub namespace: String,
    pub change: i64,
}

/// Why a source is down or an attempt failed. A closed set: these are the values of the
/// `reason` label on `socketio_exporter_source_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The TCP or WebSocket connection could not be opened.
    Connect,
    /// The server did not complete the Engine.IO/Socket.IO handshake in time.
    Handshake,
    /// The admin namespace refused the credentials.
    Auth,
    /// The admin namespace refused the connection for another reason (e.g. no such namespace).
    Namespace,
    /// A secret (password file or variable) could not be read.
    Config,
    /// No ping from the server within pingInterval + pingTimeout.
    PingTimeout,
    /// The server closed the connection.
    Closed,
    /// The server sent something that is not the protocol.
    Protocol,
    /// Connected, but no report arrived within `stale_after_secs`.
    StatsTimeout,
    /// Local scope: reports arrive, but none carries this exporter's server id.
    ServerIdNotSeen,
    /// No answer within the timeout.
    Timeout,
    /// The endpoint answered with an HTTP error status.
    HttpStatus,
    /// A body larger than `max_body_bytes`.
    TooLarge,
    /// The body is not JSON.
    InvalidJson,
    /// JSON, but not the expected shape (a missing pointer, a negative count...).
    InvalidReport,
    /// The report file does not exist.
    Missing,
    /// A push without the right bearer token.
    Unauthorized,
    /// Connection events for a server that has no current full report.
    NoReport,
}

impl Reason {
    /// The reasons a source of this type can report, which its counters start with.
    pub fn for_type(kind: &SourceKind) -> &'static [Reason] {
        match kind {
            SourceKind::SocketioAdmin(_) => &[
                Reason::Connect,
                Reason::Handshake,
                Reason::Auth,
                Reason::Namespace,
                Reason::Config,
                Reason::PingTimeout,
                Reason::Closed,
                Reason::Protocol,
                Reason::StatsTimeout,
                Reason::ServerIdNotSeen,
            ],
            SourceKind::HttpJson(_) => &[
                Reason::Connect,
                Reason::Timeout,
                Reason::HttpStatus,
                Reason::TooLarge,
                Reason::InvalidJson,
                Reason::InvalidReport,
                Reason::Config,
                Reason::StatsTimeout,
                Reason::ServerIdNotSeen,
            ],
            SourceKind::ReportFile(_) => &[
                Reason::Missing,
                Reason::TooLarge,
                Reason::InvalidJson,
                Reason::InvalidReport,
                Reason::StatsTimeout,
                Reason::ServerIdNotSeen,
            ],
            SourceKind::Push(_) => &[
                Reason::Unauthorized,
                Reason::TooLarge,
                Reason::InvalidJson,
                Reason::InvalidReport,
                Reason::NoReport,
                Reason::StatsTimeout,
                Reason::ServerIdNotSeen,
            ],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Handshake => "handshake",
            Reason::Auth => "auth",
            Reason::Namespace => "namespace",
            Reason::Config => "config",
            Reason::PingTimeout => "ping_timeout",
            Reason::Closed => "closed",
            Reason::Protocol => "protocol",
            Reason::StatsTimeout => "stats_timeout",
            Reason::ServerIdNotSeen => "server_id_not_seen",
            Reason::Timeout => "timeout",
            Reason::HttpStatus => "http_status",
            Reason::TooLarge => "too_large",
            Reason::InvalidJson => "invalid_json",
            Reason::InvalidReport => "invalid_report",
            Reason::Missing => "missing",
            Reason::Unauthorized => "unauthorized",
            Reason::NoReport => "no_report",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a source task sends its updates, tagged with its index.
#[derive(Debug, Clone)]
pub struct Outbox {
    source: usize,
    tx: mpsc::Sender<Update>,
}

impl Outbox {
    pub fn new(source: usize, tx: mpsc::Sender<Update>) -> Outbox {
        Outbox { source, tx }
    }

    /// Sends an event; if the loop is gone the exporter is shutting down, so that is fine.
    pub async fn send(&self, event: Event) {
        let _ = self
            .tx
            .send(Update {
                source: self.source,
                event,
            })
            .await;
    }
}

/// Runs one configured source until `cancel` fires.
pub async fn run(
    config: SourceConfig,
    outbox: Outbox,
    telemetry: std::sync::Arc<Telemetry>,
    sync: SyncConfig,
    cancel: CancellationToken,
) {
    let name = config.name.as_str();
    match config.kind {
        SourceKind::SocketioAdmin(admin) => {
            socketio_admin::run(name, admin, outbox, &telemetry, sync.stale_after, cancel).await
        }
        SourceKind::HttpJson(http) => http_json::run(name, http, outbox, &telemetry, cancel).await,
        SourceKind::ReportFile(file) => {
            report_file::run(name, file, outbox, &telemetry, sync.interval, cancel).await
        }
        // Pushes arrive through the HTTP server; the source itself only says it listens.
        SourceKind::Push(_) => outbox.send(Event::Connected).await,
    }
}
