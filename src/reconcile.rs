//! The reconcile step: what the sources hold → one immutable [`Snapshot`].
//!
//! Rules, in order:
//! - A source that is down contributes nothing, and its status says why. Unknown is not zero.
//! - A server report older than `stale_after` contributes nothing.
//! - Local scope keeps only this exporter's own server (and its `#pid` workers); cluster scope
//!   keeps every server and labels it.
//! - Each server id is counted once: when two sources report the same server, the source
//!   listed first in the config wins.
//! - A namespace missing from a server's latest report is not exported for that server.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Scope, SourceConfig, SourceKind};
use crate::snapshot::{Clients, Connections, Health, Snapshot, SourceStatus};
use crate::sources::{Event, Reason, ServerReport, Update};
use crate::telemetry::Telemetry;

/// How many foreign server ids a `server_id_not_seen` warning lists.
const SEEN_IDS_SHOWN: usize = 10;

/// What the loop keeps of one source between ticks.
#[derive(Debug, Clone)]
pub struct SourceInput {
    pub name: String,
    pub scope: Scope,
    pub link: Link,
    /// Latest report per server id.
    pub servers: BTreeMap<String, Received>,
    /// When the newest in-scope report arrived.
    pub last_success: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not connected yet since start.
    Starting,
    Connected {
        since: Instant,
    },
    Down(Reason),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub report: ServerReport,
    pub at: Instant,
}

impl SourceInput {
    pub fn new(config: &SourceConfig) -> SourceInput {
        let scope = match &config.kind {
            SourceKind::SocketioAdmin(admin) => admin.scope.clone(),
        };
        SourceInput {
            name: config.name.clone(),
            scope,
            link: Link::Starting,
            servers: BTreeMap::new(),
            last_success: None,
        }
    }

    /// Applies one event from the source, received at `now` (`wall` for the timestamp metric).
    pub fn apply(&mut self, event: Event, now: Instant, wall: SystemTime) {
        match event {
            Event::Connected => self.link = Link::Connected { since: now },
            Event::Down(reason) => {
                self.link = Link::Down(reason);
                self.servers.clear();
            }
            Event::Report(report) => {
                if self.scope.includes(&report.server_id) {
                    self.last_success = Some(wall);
                }
                self.servers
                    .insert(report.server_id.clone(), Received { report, at: now });
            }
        }
    }

    /// Forgets reports that can no longer count, so memory follows the live servers.
    pub fn prune(&mut self, now: Instant, stale_after: Duration) {
        self.servers
            .retain(|_, r| now.saturating_duration_since(r.at) <= stale_after);
    }
}

/// The pure reconcile step.
pub fn reconcile(
    environment: &str,
    sources: &[SourceInput],
    now: Instant,
    stale_after: Duration,
) -> Snapshot {
    let mut counted: HashSet<&str> = HashSet::new();
    let mut connections: BTreeMap<(&str, Option<&str>), u64> = BTreeMap::new();
    let mut clients: BTreeMap<Option<&str>, u64> = BTreeMap::new();
    let mut statuses = Vec::with_capacity(sources.len());

    for source in sources {
        let fresh = || {
            source
                .servers
                .iter()
                .filter(|(_, r)| now.saturating_duration_since(r.at) <= stale_after)
        };
        let health = match source.link {
            Link::Starting => Health::Pending,
            Link::Down(reason) => Health::Down(reason),
            Link::Connected { since } => {
                let connected_long = now.saturating_duration_since(since) > stale_after;
                let mut own = fresh()
                    .filter(|(id, _)| source.scope.includes(id))
                    .peekable();
                if own.peek().is_some() {
                    for (id, received) in own {
                        if !counted.insert(id.as_str()) {
                            continue;
                        }
                        let label = match source.scope {
                            Scope::Cluster => Some(id.as_str()),
                            Scope::Local { .. } => None,
                        };
                        for (namespace, sockets) in &received.report.namespaces {
                            *connections.entry((namespace, label)).or_default() += sockets;
                        }
                        if let Some(n) = received.report.clients {
                            *clients.entry(label).or_default() += n;
                        }
                    }
                    Health::Up
                } else if !connected_long {
                    Health::Pending
                } else {
                    match &source.scope {
                        Scope::Local { server_id } if fresh().next().is_some() => {
                            Health::ForeignServers {
                                own: server_id.clone(),
                                seen: fresh()
                                    .map(|(id, _)| id.clone())
                                    .take(SEEN_IDS_SHOWN)
                                    .collect(),
                            }
                        }
                        _ => Health::Down(Reason::StatsTimeout),
                    }
                }
            }
        };
        statuses.push(SourceStatus {
            name: source.name.clone(),
            health,
            last_success: source.last_success,
        });
    }

    Snapshot {
        environment: environment.to_owned(),
        connections: connections
            .into_iter()
            .map(|((namespace, server), sockets)| Connections {
                namespace: namespace.to_owned(),
                server: server.map(str::to_owned),
                sockets,
            })
            .collect(),
        clients: clients
            .into_iter()
            .map(|(server, clients)| Clients {
                server: server.map(str::to_owned),
                clients,
            })
            .collect(),
        sources: statuses,
    }
}

/// The sync loop: applies source updates as they arrive, and every `interval` reconciles and
/// publishes a new snapshot. Logs each change of a source's health once.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    environment: String,
    mut inputs: Vec<SourceInput>,
    sync: crate::config::SyncConfig,
    mut updates: mpsc::Receiver<Update>,
    publish: watch::Sender<Arc<Snapshot>>,
    telemetry: Arc<Telemetry>,
    ready: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let _ready = ReadyWhileRunning::new(ready);
    let mut tick = tokio::time::interval(sync.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(update) = updates.recv() => {
                if let Some(input) = inputs.get_mut(update.source) {
                    input.apply(update.event, Instant::now(), SystemTime::now());
                }
            }
            _ = tick.tick() => {
                let started = std::time::Instant::now();
                let now = Instant::now();
                for input in &mut inputs {
                    input.prune(now, sync.stale_after);
                }
                let next = reconcile(&environment, &inputs, now, sync.stale_after);
                telemetry.observe_sync(started.elapsed());
                let previous = publish.borrow().clone();
                report_changes(&previous, &next, &telemetry);
                publish.send_replace(Arc::new(next));
            }
        }
    }
}

/// Readiness follows the loop: set while it runs, cleared when it ends, even by a panic.
struct ReadyWhileRunning(Arc<AtomicBool>);

impl ReadyWhileRunning {
    fn new(ready: Arc<AtomicBool>) -> ReadyWhileRunning {
        ready.store(true, Ordering::Relaxed);
        ReadyWhileRunning(ready)
    }
}

impl Drop for ReadyWhileRunning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Logs the sources whose health changed between two snapshots. Sources count their own
/// failures; the one fault only reconcile can see, a foreign server id, is counted here.
fn report_changes(previous: &Snapshot, next: &Snapshot, telemetry: &Telemetry) {
    for status in &next.sources {
        let before = previous
            .sources
            .iter()
            .find(|s| s.name == status.name)
            .map(|s| &s.health);
        if before == Some(&status.health) {
            continue;
        }
        let source = status.name.as_str();
        match &status.health {
            Health::Up => tracing::info!(source, "source is up: exporting its counts"),
            Health::Pending => {}
            Health::Down(reason) => {
                tracing::warn!(source, %reason, "source is down: its connection series are withdrawn");
            }
            Health::ForeignServers { own, seen } => {
                // A change in the seen ids alone is not a new fault.
                if matches!(before, Some(Health::ForeignServers { .. })) {
                    continue;
                }
                telemetry.source_error(source, Reason::ServerIdNotSeen);
                tracing::warn!(
                    source,
                    reason = %Reason::ServerIdNotSeen,
                    own_server_id = %own,
                    seen = ?seen,
                    "no stats carry this exporter's server id; set server_id (or server_id_env) \
                     to the app's admin-ui serverId, or use scope = \"cluster\""
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Duration = Duration::from_secs(10);

    fn report(server_id: &str, clients: Option<u64>, namespaces: &[(&str, u64)]) -> Event {
        Event::Report(ServerReport {
            server_id: server_id.into(),
            clients,
            namespaces: namespaces
                .iter()
                .map(|(n, c)| (n.to_string(), *c))
                .collect(),
        })
    }

    fn source(name: &str, scope: Scope) -> SourceInput {
        SourceInput {
            name: name.into(),
            scope,
            link: Link::Starting,
            servers: BTreeMap::new(),
            last_success: None,
        }
    }

    fn local(id: &str) -> Scope {
        Scope::Local {
            server_id: id.into(),
        }
    }

    fn counts(snapshot: &Snapshot) -> Vec<(String, Option<String>, u64)> {
        snapshot
            .connections
            .iter()
            .map(|c| (c.namespace.clone(), c.server.clone(), c.sockets))
            .collect()
    }

    fn row(ns: &str, server: Option<&str>, n: u64) -> (String, Option<String>, u64) {
        (ns.into(), server.map(Into::into), n)
    }

    #[tokio::test(start_paused = true)]
    async fn live_report_is_exported_exactly_including_zero() {
        let t0 = Instant::now();
        let mut s = source("admin", local("pod-a"));
        s.apply(Event::Connected, t0, SystemTime::UNIX_EPOCH);
        s.apply(
            report(
                "pod-a",
                Some(3),
                &[("/", 2), ("/chat", 1), ("/notifications", 0)],
            ),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        let snap = reconcile("prod", &[s], t0, STALE);
        assert_eq!(
            counts(&snap),
            [
                row("/", None, 2),
                row("/chat", None, 1),
                row("/notifications", None, 0)
            ]
        );
        assert_eq!(
            snap.clients,
            [Clients {
                server: None,
                clients: 3
            }]
        );
        assert_eq!(snap.sources[0].health, Health::Up);
        assert_eq!(snap.sources[0].last_success, Some(SystemTime::UNIX_EPOCH));
    }

    #[tokio::test(start_paused = true)]
    async fn down_source_exports_no_series_not_zero() {
        let t0 = Instant::now();
        let mut s = source("admin", local("pod-a"));
        s.apply(Event::Connected, t0, SystemTime::UNIX_EPOCH);
        s.apply(
            report("pod-a", Some(1), &[("/", 1)]),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        s.apply(Event::Down(Reason::Closed), t0, SystemTime::UNIX_EPOCH);
        let snap = reconcile("prod", &[s], t0, STALE);
        assert!(snap.connections.is_empty());
        assert!(snap.clients.is_empty());
        assert_eq!(snap.sources[0].health, Health::Down(Reason::Closed));
        // The last success is still known: its age is what dashboards show.
        assert_eq!(snap.sources[0].last_success, Some(SystemTime::UNIX_EPOCH));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_server_leaves_after_stale_after() {
        let t0 = Instant::now();
        let mut s = source("admin", local("pod-a"));
        s.apply(Event::Connected, t0, SystemTime::UNIX_EPOCH);
        s.apply(
            report("pod-a", None, &[("/", 4)]),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        let at_limit = reconcile("prod", std::slice::from_ref(&s), t0 + STALE, STALE);
        assert_eq!(counts(&at_limit), [row("/", None, 4)]);
        let after = reconcile("prod", &[s], t0 + STALE + Duration::from_millis(1), STALE);
        assert!(after.connections.is_empty());
        assert_eq!(after.sources[0].health, Health::Down(Reason::StatsTimeout));
    }

    #[tokio::test(start_paused = true)]
    async fn namespace_missing_from_latest_report_leaves_output() {
        let t0 = Instant::now();
        let mut s = source("admin", local("pod-a"));
        s.apply(Event::Connected, t0, SystemTime::UNIX_EPOCH);
        s.apply(
            report("pod-a", None, &[("/", 1), ("/tenant-1", 1)]),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        s.apply(
            report("pod-a", None, &[("/", 1)]),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            counts(&reconcile("prod", &[s], t0, STALE)),
            [row("/", None, 1)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn local_scope_keeps_own_server_and_its_workers_only() {
        let t0 = Instant::now();
        let mut s = source("admin", local("pod-a"));
        s.apply(Event::Connected, t0, SystemTime::UNIX_EPOCH);
        for (id, n) in [("pod-a#1", 1), ("pod-a#2", 2), ("pod-b", 100)] {
            s.apply(
                report(id, Some(n), &[("/chat", n)]),
                t0,
                SystemTime::UNIX_EPOCH,
            );
        }
        let snap = reconcile("prod", &[s], t0, STALE);
        assert_eq!(counts(&snap), [row("/chat", None, 3)]);
        assert_eq!(
            snap.clients,
            [Clients {
                server: None,
                clients: 3
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cluster_scope_labels_every_server() {
        let t0 = Instant::now();
        let mut s = source("admin", Scope::Cluster);
        s.apply(Event::Connected, t0, SystemTime::UNIX_EPOCH);
        s.apply(
            report("b", Some(2), &[("/", 2)]),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        s.apply(
            report("a", Some(1), &[("/", 1), ("/chat", 1)]),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        let snap = reconcile("prod", &[s], t0, STALE);
        assert_eq!(
            counts(&snap),
            [
                row("/", Some("a"), 1),
                row("/", Some("b"), 2),
                row("/chat", Some("a"), 1)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn foreign_server_ids_are_reported_after_stale_after() {
        let t0 = Instant::now();
        let mut s = source("admin", local("not-this-one"));
        s.apply(Event::Connected, t0, SystemTime::UNIX_EPOCH);
        s.apply(
            report("pod-b", None, &[("/", 5)]),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        let early = reconcile("prod", std::slice::from_ref(&s), t0, STALE);
        assert_eq!(early.sources[0].health, Health::Pending);
        let later = t0 + STALE + Duration::from_secs(1);
        s.apply(
            report("pod-b", None, &[("/", 5)]),
            later,
            SystemTime::UNIX_EPOCH,
        );
        let snap = reconcile("prod", &[s], later, STALE);
        assert!(snap.connections.is_empty());
        assert_eq!(
            snap.sources[0].health,
            Health::ForeignServers {
                own: "not-this-one".into(),
                seen: vec!["pod-b".into()]
            }
        );
        assert_eq!(snap.sources[0].last_success, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_reported_by_two_sources_counts_once_for_the_first() {
        let t0 = Instant::now();
        let mut first = source("first", Scope::Cluster);
        let mut second = source("second", Scope::Cluster);
        for s in [&mut first, &mut second] {
            s.apply(Event::Connected, t0, SystemTime::UNIX_EPOCH);
        }
        first.apply(report("a", None, &[("/", 1)]), t0, SystemTime::UNIX_EPOCH);
        second.apply(report("a", None, &[("/", 9)]), t0, SystemTime::UNIX_EPOCH);
        second.apply(report("b", None, &[("/", 2)]), t0, SystemTime::UNIX_EPOCH);
        let snap = reconcile("prod", &[first, second], t0, STALE);
        assert_eq!(
            counts(&snap),
            [row("/", Some("a"), 1), row("/", Some("b"), 2)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn prune_forgets_stale_servers() {
        let t0 = Instant::now();
        let mut s = source("admin", Scope::Cluster);
        s.apply(report("a", None, &[]), t0, SystemTime::UNIX_EPOCH);
        s.apply(report("b", None, &[]), t0 + STALE, SystemTime::UNIX_EPOCH);
        s.prune(t0 + STALE + Duration::from_secs(1), STALE);
        assert_eq!(s.servers.keys().collect::<Vec<_>>(), ["b"]);
    }
}
