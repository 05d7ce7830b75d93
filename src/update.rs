//! What travels from the sources to the sync loop: [`Update`]s carrying an [`Event`].
//!
//! This module is the contract between the two sides and imports nothing from either, so
//! dependencies run one way: sources → update ← reconcile.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The largest count accepted: 2^53 − 1, the largest integer JSON (and a float64 sample
/// value) carries exactly. A report with a larger count is refused, never rounded.
pub(crate) const MAX_COUNT: u64 = (1 << 53) - 1;

/// What a source tells the sync loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The running source that sent it.
    pub source: SourceId,
    pub event: Event,
}

/// One run of a source: its index in the configuration at start, then a new id for every
/// source a reload starts. The sync loop ignores updates from ids it no longer runs, so a
/// source stopped by a reload cannot touch the state of the one that replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub usize);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The source reached the app (or started listening) and is waiting for counts.
    Connected,
    /// A full count of one server; replaces that server's previous counts.
    Counts(ServerCounts),
    /// Connection events: they move the counts of a server until its next full count,
    /// which is authoritative.
    Deltas(Vec<Delta>),
    /// A server's counts were withdrawn (its report file was deleted).
    Forget(Option<String>),
    /// The source lost the app: everything it reported is unknown now.
    Down(Reason),
}

/// One server's counts, as the app reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCounts {
    /// `None`: the server this exporter runs beside (the source's own server id).
    pub server_id: Option<String>,
    /// Engine.IO connections, when the app reports them.
    pub clients: Option<u64>,
    /// Sockets per namespace.
    pub namespaces: Vec<(String, u64)>,
    /// How old the counts already were when the source got them.
    pub age: Duration,
    /// Version 2: the reporter process and the last of its connection events these counts
    /// include.
    pub seq: Option<Seq>,
    /// What the server says of its Engine.IO layer beyond `clients`, when it says anything.
    pub engine: Option<Engine>,
}

/// A server's Engine.IO layer: each part is `None` when the server does not send it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Engine {
    /// Engine.IO clients still on HTTP long-polling (not upgraded to WebSocket).
    pub polling_clients: Option<u64>,
    /// Engine.IO events, counted over the span [`Counted`] names.
    pub events: Option<Counted>,
}

/// Over what span a message counts its Engine.IO events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// Since the server's previous message: admin-ui drains its buckets at every
    /// `server_stats`, so each event arrives in exactly one message.
    SincePrevious(EngineEvents),
    /// Since the reporter process started (the report format's `engine` object).
    SinceStart(EngineEvents),
}

/// Engine.IO events counted by a server over some span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineEvents {
    pub connections: u64,
    /// Disconnections per Engine.IO close reason, as the server names it; a reason may
    /// repeat (one entry per bucket). Unbounded here: reconcile folds it into a fixed set.
    pub disconnections: Vec<(String, u64)>,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A position in one reporter process's stream of connection events: `n` is monotonic
/// within the process `boot` names, and a new `boot` starts the order again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seq {
    pub boot: Arc<str>,
    pub n: u64,
}

/// One namespace socket connected (`+1`) or disconnected (`-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub server_id: Option<String>,
    pub namespace: String,
    pub change: i64,
    /// Version 2: the event's place in its reporter's order.
    pub seq: Option<Seq>,
}

/// What a connected source's silence means: how reconcile judges a source that has no
/// fresh counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Counts are expected every so often: without any for `stale_after_secs` the source is
    /// down with this reason.
    Stale(Reason),
    /// The source listens for pushes, and may carry only connection events: it is up while
    /// it listens, and down ([`Reason::Stale`]) only when reports it carried go stale.
    Listens,
}

/// Why a source is down or an attempt failed. A closed set: these are the values of the
/// `reason` label on `socketio_exporter_source_errors_total`. Each source type lists the
/// ones it can raise.
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
    /// Connected to admin-ui, but no `server_stats` arrived within `stale_after_secs`.
    StatsTimeout,
    /// The source's newest report is older than `stale_after_secs`: the app stopped writing
    /// or pushing reports.
    Stale,
    /// Local scope: counts arrive, but none carries this exporter's server id.
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
    /// Connection events for a server that has no current full count, or for a namespace
    /// its full count does not hold.
    NoReport,
    /// Counts of a server beyond the per-source cap on servers, dropped.
    TooManyServers,
    /// An ordered connection event, or a report's comparison, that found all servers
    /// together holding as many events for ordering as they may: its server's order is
    /// given up (events still in its gaps are lost), as when its own buffer is full.
    TooManyHeld,
    /// A `*.json` entry in a report directory that is not a regular file (a FIFO, a device,
    /// a directory, a dangling symlink), skipped.
    NotAFile,
    /// A bug: the source's task panicked and was restarted.
    Internal,
}

impl Reason {
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
            Reason::Stale => "stale",
            Reason::ServerIdNotSeen => "server_id_not_seen",
            Reason::Timeout => "timeout",
            Reason::HttpStatus => "http_status",
            Reason::TooLarge => "too_large",
            Reason::InvalidJson => "invalid_json",
            Reason::InvalidReport => "invalid_report",
            Reason::Missing => "missing",
            Reason::Unauthorized => "unauthorized",
            Reason::NoReport => "no_report",
            Reason::TooManyServers => "too_many_servers",
            Reason::TooManyHeld => "too_many_held",
            Reason::NotAFile => "not_a_file",
            Reason::Internal => "internal",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
