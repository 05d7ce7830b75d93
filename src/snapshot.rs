//! The reconciled state that sinks export: immutable, published whole by the sync loop.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::update::Reason;

/// Everything the sinks export at one instant. Sinks render it as is; a series that is not
/// here is not exported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Value of the `environment` label.
    pub environment: String,
    /// Sockets per namespace (and per server in cluster scope), sorted by namespace then server.
    pub connections: Vec<Connections>,
    /// Engine.IO connections (per server in cluster scope), sorted by server.
    pub clients: Vec<Clients>,
    /// One entry per configured source, in config order.
    pub sources: Vec<SourceStatus>,
    /// Per source, server and namespace, the drift the last comparison found.
    pub drift: Vec<Drift>,
    /// When these counts are older than `stale_after`: a snapshot the sync loop has not
    /// replaced by then (it is stuck) must not be served as current. `None`: never.
    pub expires: Option<Instant>,
    /// The Engine.IO layer (per server in cluster scope), sorted by server; only servers
    /// that report it.
    pub engine: Vec<Engine>,
}

/// The Engine.IO close reasons engine.io names (`Socket#onClose` in engine.io 6), then
/// `other` for any reason outside them: the values of the `reason` label.
pub(crate) const DISCONNECT_REASONS: [&str; 6] = [
    "transport close",
    "transport error",
    "ping timeout",
    "forced close",
    "parse error",
    "other",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub server: Option<String>,
    /// Engine.IO clients on HTTP long-polling; `None`: not reported.
    pub polling_clients: Option<u64>,
    /// Counted since the exporter first saw the server; `None`: not reported.
    pub counters: Option<EngineCounters>,
}

/// Engine.IO events counted since the exporter first saw a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    pub connections: u64,
    /// Per reason, in the order of [`DISCONNECT_REASONS`].
    pub disconnections: [u64; DISCONNECT_REASONS.len()],
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl EngineCounters {
    /// Adds `other`; a counter saturates rather than wrap.
    pub fn add(&mut self, other: &EngineCounters) {
        self.connections = self.connections.saturating_add(other.connections);
        for (total, n) in self.disconnections.iter_mut().zip(other.disconnections) {
            *total = total.saturating_add(n);
        }
        self.packets_in = self.packets_in.saturating_add(other.packets_in);
        self.packets_out = self.packets_out.saturating_add(other.packets_out);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
    }

    /// Each reason of [`DISCONNECT_REASONS`] with its count, zeros included.
    pub fn disconnections(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DISCONNECT_REASONS
            .iter()
            .copied()
            .zip(self.disconnections.iter().copied())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub source: String,
    /// The server id, in either scope: drift is a property of one server's event stream.
    pub server: String,
    pub namespace: String,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connections {
    pub namespace: String,
    /// The `server` label: set in cluster scope only.
    pub server: Option<String>,
    pub sockets: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clients {
    pub server: Option<String>,
    pub clients: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    pub name: String,
    pub health: Health,
    /// When the newest report this source contributed was received.
    pub last_success: Option<SystemTime>,
    /// Namespace values summed into the overflow value across the exported servers.
    pub folded: usize,
    /// The `max_namespaces` cap.
    pub namespace_limit: usize,
    /// Full reports that corrected event-moved counts, since start. Kept here rather than
    /// in a registry counter so that it is always rendered with the drift it caused.
    pub corrections: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Current reports are exported.
    Up,
    /// Connected, waiting for the first report.
    Pending,
    /// Nothing from this source is exported.
    Down(Reason),
    /// Local scope: reports arrive, but none from this exporter's own server id.
    ForeignServers { own: String, seen: Vec<String> },
}

impl SourceStatus {
    /// [`SourceStatus::last_success`] as Unix time in seconds, the exported form.
    pub fn last_success_unix_secs(&self) -> Option<f64> {
        let at = self.last_success?;
        Some(
            at.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        )
    }
}

impl Snapshot {
    /// The snapshot as it may be exported at `now`: past [`Snapshot::expires`] its counts
    /// are unknown, so it has no connection or client series and every source is down.
    pub fn as_of(self: &Arc<Snapshot>, now: Instant) -> Arc<Snapshot> {
        if self.expires.is_none_or(|at| now <= at) {
            return self.clone();
        }
        let mut expired = Snapshot {
            environment: self.environment.clone(),
            sources: self.sources.clone(),
            drift: self.drift.clone(),
            ..Snapshot::default()
        };
        for source in &mut expired.sources {
            source.health = Health::Down(Reason::Internal);
        }
        Arc::new(expired)
    }
}

impl Health {
    pub fn is_up(&self) -> bool {
        matches!(self, Health::Up)
    }
}
