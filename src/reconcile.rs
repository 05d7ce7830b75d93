//! The reconcile step: what the sources hold → one immutable [`Snapshot`].
//!
//! Rules:
//! - A source that is down contributes nothing, and its status says why. Unknown is not zero.
//! - A server report older than `stale_after` contributes nothing; an older report never
//!   replaces a newer one.
//! - Local scope keeps only this exporter's own server (and its `#pid` workers); cluster scope
//!   keeps every server and labels it.
//! - Each server id is counted once: when two sources report the same server, the source
//!   listed first in the config wins.
//! - A namespace missing from a server's latest report is not exported for that server.
//! - Connection events move the counts of the report they apply to at once; the next full
//!   report of that server is authoritative, and where it disagrees with the moved counts
//!   the difference is a correction, counted and exported as drift.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::config::{NamespaceRules, Scope, SourceConfig, SyncConfig};
use crate::snapshot::{Clients, Connections, Drift, Health, Snapshot, SourceStatus};
use crate::sources::{Delta, Event, Reason, ServerReport, Update};
use crate::telemetry::Telemetry;

/// How many foreign server ids a `server_id_not_seen` warning lists.
const SEEN_IDS_SHOWN: usize = 10;
/// Servers kept per source; reports from further server ids are ignored.
const MAX_SERVERS: usize = 1024;
/// Connection events, corrections and lost sources are published this soon, bursts
/// coalesced, without waiting for a tick.
const EVENT_PUBLISH_DELAY: Duration = Duration::from_millis(20);

/// What the loop keeps of one source between ticks.
#[derive(Debug, Clone)]
pub struct SourceInput {
    pub name: String,
    pub scope: Scope,
    /// The server that reports without a server id belong to.
    pub own_server_id: String,
    pub rules: NamespaceRules,
    pub link: Link,
    /// Latest report per server id.
    pub servers: BTreeMap<String, Received>,
    /// When the newest in-scope report arrived.
    pub last_success: Option<SystemTime>,
    /// Per namespace, the drift the last comparison of events against a full report found.
    pub drift: BTreeMap<String, u64>,
    /// Full reports that corrected event-moved counts, since start.
    pub corrections: u64,
    /// When connection events from this source last moved a current report (of any
    /// source): an events-only push source is up while they flow.
    pub last_events: Option<Instant>,
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

/// One server's current counts.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the counts were true (arrival minus the report's age).
    pub at: Instant,
    pub clients: Option<u64>,
    pub namespaces: BTreeMap<String, u64>,
    /// Namespace values summed into the overflow value by the cap.
    pub folded: usize,
    /// Connection events moved the counts since the report.
    pub adjusted: bool,
}

/// What applying an event did, for the loop's counters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// A full report disagreed with event-moved counts.
    pub corrected: bool,
    /// Connection events applied to a current report.
    pub events: usize,
    /// Connection events for servers without a current report, dropped.
    pub dropped: usize,
}

impl SourceInput {
    pub fn new(config: &SourceConfig) -> SourceInput {
        SourceInput {
            name: config.name.clone(),
            scope: config.scope.clone(),
            own_server_id: config.own_server_id.clone(),
            rules: config.namespaces.clone(),
            link: Link::Starting,
            servers: BTreeMap::new(),
            last_success: None,
            drift: BTreeMap::new(),
            corrections: 0,
            last_events: None,
        }
    }

    fn server_id(&self, id: Option<String>) -> String {
        id.unwrap_or_else(|| self.own_server_id.clone())
    }

    /// Takes a full report; returns whether it corrected event-moved counts.
    fn report(&mut self, report: ServerReport, now: Instant, wall: SystemTime) -> bool {
        if !matches!(self.link, Link::Connected { .. }) {
            self.link = Link::Connected { since: now };
        }
        let id = self.server_id(report.server_id);
        let at = now.checked_sub(report.age).unwrap_or(now);
        let previous = self.servers.get(&id);
        if previous.is_some_and(|p| p.at > at)
            || (previous.is_none() && self.servers.len() >= MAX_SERVERS)
        {
            return false;
        }
        let folded = self.rules.fold(report.namespaces);
        let mut corrected = false;
        if let Some(previous) = previous.filter(|p| p.adjusted) {
            let names: HashSet<&String> = previous
                .namespaces
                .keys()
                .chain(folded.namespaces.keys())
                .collect();
            for name in names {
                let moved = previous.namespaces.get(name).copied().unwrap_or(0);
                let truth = folded.namespaces.get(name).copied().unwrap_or(0);
                let drift = moved.abs_diff(truth);
                corrected |= drift > 0;
                if self.drift.contains_key(name) || self.drift.len() < self.rules.max {
                    self.drift.insert(name.clone(), drift);
                }
            }
        }
        if corrected {
            self.corrections += 1;
        }
        if self.scope.includes(&id) {
            self.last_success = Some(wall);
        }
        self.servers.insert(
            id,
            Received {
                at,
                clients: report.clients,
                namespaces: folded.namespaces,
                folded: folded.folded,
                adjusted: false,
            },
        );
        corrected
    }

    /// Forgets reports that can no longer count, so memory follows the live servers, and
    /// drift of namespaces no report holds any more.
    pub fn prune(&mut self, now: Instant, stale_after: Duration) {
        self.servers
            .retain(|_, r| now.saturating_duration_since(r.at) <= stale_after);
        let servers = &self.servers;
        self.drift
            .retain(|name, _| servers.values().any(|r| r.namespaces.contains_key(name)));
    }

    fn fresh(
        &self,
        now: Instant,
        stale_after: Duration,
    ) -> impl Iterator<Item = (&String, &Received)> {
        self.servers
            .iter()
            .filter(move |(_, r)| now.saturating_duration_since(r.at) <= stale_after)
    }
}

/// All sources' inputs, and the events that cross sources.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub sources: Vec<SourceInput>,
    pub stale_after: Duration,
}

impl Inputs {
    /// Applies one event from source `index`, received at `now` (`wall` for timestamps).
    pub fn apply(&mut self, index: usize, event: Event, now: Instant, wall: SystemTime) -> Applied {
        let Some(source) = self.sources.get_mut(index) else {
            return Applied::default();
        };
        match event {
            Event::Connected => source.link = Link::Connected { since: now },
            Event::Down(reason) => {
                source.link = Link::Down(reason);
                source.servers.clear();
            }
            Event::Forget(id) => {
                let id = source.server_id(id);
                source.servers.remove(&id);
            }
            Event::Report(report) => {
                return Applied {
                    corrected: source.report(report, now, wall),
                    ..Applied::default()
                };
            }
            Event::Deltas(deltas) => return self.deltas(index, deltas, now),
        }
        Applied::default()
    }

    /// Moves the counts of the report each event's server has, in the first source (in
    /// config order) with a current report of that server. Events alone never create a
    /// count: without a report the starting point is unknown.
    fn deltas(&mut self, index: usize, deltas: Vec<Delta>, now: Instant) -> Applied {
        let mut applied = Applied::default();
        let stale_after = self.stale_after;
        for delta in deltas {
            let id = self.sources[index].server_id(delta.server_id);
            let target = self.sources.iter_mut().find_map(|source| {
                let rules = &source.rules;
                source
                    .servers
                    .get_mut(&id)
                    .filter(|r| now.saturating_duration_since(r.at) <= stale_after)
                    .map(|received| (rules, received))
            });
            let Some((rules, received)) = target else {
                applied.dropped += 1;
                continue;
            };
            let key = rules.event_key(&received.namespaces, &delta.namespace);
            let count = received.namespaces.entry(key).or_default();
            *count = count.saturating_add_signed(delta.change);
            received.adjusted = true;
            applied.events += 1;
        }
        if applied.events > 0 {
            self.sources[index].last_events = Some(now);
        }
        applied
    }
}

/// The pure reconcile step.
pub fn reconcile(environment: &str, inputs: &Inputs, now: Instant) -> Snapshot {
    let stale_after = inputs.stale_after;
    let mut counted: HashSet<&str> = HashSet::new();
    let mut connections: BTreeMap<(&str, Option<&str>), u64> = BTreeMap::new();
    let mut clients: BTreeMap<Option<&str>, u64> = BTreeMap::new();
    let mut statuses = Vec::with_capacity(inputs.sources.len());
    let mut drift = Vec::new();

    for source in &inputs.sources {
        let mut folded = 0;
        let health = match source.link {
            Link::Starting => Health::Pending,
            Link::Down(reason) => Health::Down(reason),
            Link::Connected { since } => {
                let connected_long = now.saturating_duration_since(since) > stale_after;
                let mut own = source
                    .fresh(now, stale_after)
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
                        for (namespace, sockets) in &received.namespaces {
                            *connections.entry((namespace, label)).or_default() += sockets;
                        }
                        if let Some(n) = received.clients {
                            *clients.entry(label).or_default() += n;
                        }
                        folded += received.folded;
                    }
                    Health::Up
                } else if source
                    .last_events
                    .is_some_and(|at| now.saturating_duration_since(at) <= stale_after)
                {
                    Health::Up
                } else if !connected_long {
                    Health::Pending
                } else {
                    match &source.scope {
                        Scope::Local { server_id }
                            if source.fresh(now, stale_after).next().is_some() =>
                        {
                            Health::ForeignServers {
                                own: server_id.clone(),
                                seen: source
                                    .fresh(now, stale_after)
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
        drift.extend(source.drift.iter().map(|(namespace, value)| Drift {
            source: source.name.clone(),
            namespace: namespace.clone(),
            value: *value,
        }));
        statuses.push(SourceStatus {
            name: source.name.clone(),
            health,
            last_success: source.last_success,
            folded,
            namespace_limit: source.rules.max,
            corrections: source.corrections,
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
        drift,
    }
}

/// The sync loop: applies source updates as they arrive, and every `interval` reconciles and
/// publishes a new snapshot; connection events, corrections and lost sources are published
/// within milliseconds. Logs each change of a source's health once.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    environment: String,
    mut inputs: Inputs,
    sync: SyncConfig,
    mut updates: mpsc::Receiver<Update>,
    publish: watch::Sender<Arc<Snapshot>>,
    telemetry: Arc<Telemetry>,
    ready: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let _ready = ReadyWhileRunning::new(ready);
    let mut tick = tokio::time::interval(sync.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut publish_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(update) = updates.recv() => {
                let source = update.source;
                // Losing data shows at once too: unknown must not linger as a number.
                let withdrawn = matches!(update.event, Event::Down(_) | Event::Forget(_));
                let applied = inputs.apply(source, update.event, Instant::now(), SystemTime::now());
                let name = &inputs.sources[source].name;
                for _ in 0..applied.dropped {
                    telemetry.source_error(name, Reason::NoReport);
                }
                // A correction publishes with its counter, so the two never disagree on a scrape.
                if (applied.events > 0 || applied.corrected || withdrawn) && publish_at.is_none() {
                    publish_at = Some(Instant::now() + EVENT_PUBLISH_DELAY);
                }
            }
            _ = sleep_until(publish_at.unwrap_or_else(Instant::now)), if publish_at.is_some() => {
                publish_at = None;
                sync_once(&environment, &mut inputs, &publish, &telemetry);
            }
            _ = tick.tick() => {
                publish_at = None;
                sync_once(&environment, &mut inputs, &publish, &telemetry);
            }
        }
    }
}

fn sync_once(
    environment: &str,
    inputs: &mut Inputs,
    publish: &watch::Sender<Arc<Snapshot>>,
    telemetry: &Telemetry,
) {
    let started = std::time::Instant::now();
    let now = Instant::now();
    let stale_after = inputs.stale_after;
    for source in &mut inputs.sources {
        source.prune(now, stale_after);
    }
    let next = reconcile(environment, inputs, now);
    telemetry.observe_sync(started.elapsed());
    let previous = publish.borrow().clone();
    report_changes(&previous, &next, telemetry);
    publish.send_replace(Arc::new(next));
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
                tracing::warn!(source, %reason, "source is down: its connection series are withdrawn")
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
                    "no report carries this exporter's server id; set server_id (or \
                     server_id_env) to the app's server id, or use scope = \"cluster\""
                );
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OVERFLOW_NAMESPACE;

    const STALE: Duration = Duration::from_secs(10);
    const EPOCH: SystemTime = SystemTime::UNIX_EPOCH;

    fn report(server_id: &str, clients: Option<u64>, namespaces: &[(&str, u64)]) -> Event {
        Event::Report(ServerReport {
            server_id: Some(server_id.into()),
            clients,
            namespaces: namespaces
                .iter()
                .map(|(n, c)| (n.to_string(), *c))
                .collect(),
            age: Duration::ZERO,
        })
    }

    fn delta(server_id: &str, namespace: &str, change: i64) -> Delta {
        Delta {
            server_id: Some(server_id.into()),
            namespace: namespace.into(),
            change,
        }
    }

    fn source(name: &str, scope: Scope) -> SourceInput {
        let own_server_id = match &scope {
            Scope::Local { server_id } => server_id.clone(),
            Scope::Cluster => "this-host".into(),
        };
        SourceInput {
            name: name.into(),
            scope,
            own_server_id,
            rules: NamespaceRules {
                groups: Vec::new(),
                max: 1000,
            },
            link: Link::Starting,
            servers: BTreeMap::new(),
            last_success: None,
            drift: BTreeMap::new(),
            corrections: 0,
            last_events: None,
        }
    }

    fn inputs(sources: Vec<SourceInput>) -> Inputs {
        Inputs {
            sources,
            stale_after: STALE,
        }
    }

    /// One connected source.
    fn connected(scope: Scope, t0: Instant) -> Inputs {
        let mut inputs = inputs(vec![source("admin", scope)]);
        inputs.apply(0, Event::Connected, t0, EPOCH);
        inputs
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
        let mut inputs = connected(local("pod-a"), t0);
        inputs.apply(
            0,
            report(
                "pod-a",
                Some(3),
                &[("/", 2), ("/chat", 1), ("/notifications", 0)],
            ),
            t0,
            EPOCH,
        );
        let snap = reconcile("prod", &inputs, t0);
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
        assert_eq!(snap.sources[0].last_success, Some(EPOCH));
    }

    #[tokio::test(start_paused = true)]
    async fn down_source_exports_no_series_not_zero() {
        let t0 = Instant::now();
        let mut inputs = connected(local("pod-a"), t0);
        inputs.apply(0, report("pod-a", Some(1), &[("/", 1)]), t0, EPOCH);
        inputs.apply(0, Event::Down(Reason::Closed), t0, EPOCH);
        let snap = reconcile("prod", &inputs, t0);
        assert!(snap.connections.is_empty());
        assert!(snap.clients.is_empty());
        assert_eq!(snap.sources[0].health, Health::Down(Reason::Closed));
        // The last success is still known: its age is what dashboards show.
        assert_eq!(snap.sources[0].last_success, Some(EPOCH));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_server_leaves_after_stale_after() {
        let t0 = Instant::now();
        let mut inputs = connected(local("pod-a"), t0);
        inputs.apply(0, report("pod-a", None, &[("/", 4)]), t0, EPOCH);
        let at_limit = reconcile("prod", &inputs, t0 + STALE);
        assert_eq!(counts(&at_limit), [row("/", None, 4)]);
        let after = reconcile("prod", &inputs, t0 + STALE + Duration::from_millis(1));
        assert!(after.connections.is_empty());
        assert_eq!(after.sources[0].health, Health::Down(Reason::StatsTimeout));
    }

    #[tokio::test(start_paused = true)]
    async fn old_reports_are_stale_on_arrival_and_never_replace_newer_ones() {
        let t0 = Instant::now() + Duration::from_secs(60);
        let mut inputs = connected(local("pod-a"), t0);
        let aged = |n: u64, age: u64| {
            Event::Report(ServerReport {
                server_id: None,
                clients: None,
                namespaces: vec![("/".into(), n)],
                age: Duration::from_secs(age),
            })
        };
        inputs.apply(0, aged(1, 2), t0, EPOCH);
        inputs.apply(0, aged(9, 5), t0, EPOCH);
        assert_eq!(counts(&reconcile("prod", &inputs, t0)), [row("/", None, 1)]);
        let mut inputs = connected(local("pod-a"), t0);
        inputs.apply(0, aged(7, 11), t0, EPOCH);
        assert!(reconcile("prod", &inputs, t0).connections.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn namespace_missing_from_latest_report_leaves_output() {
        let t0 = Instant::now();
        let mut inputs = connected(local("pod-a"), t0);
        inputs.apply(
            0,
            report("pod-a", None, &[("/", 1), ("/tenant-1", 1)]),
            t0,
            EPOCH,
        );
        let t1 = t0 + Duration::from_secs(2);
        inputs.apply(0, report("pod-a", None, &[("/", 1)]), t1, EPOCH);
        assert_eq!(counts(&reconcile("prod", &inputs, t1)), [row("/", None, 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn local_scope_keeps_own_server_and_its_workers_only() {
        let t0 = Instant::now();
        let mut inputs = connected(local("pod-a"), t0);
        for (id, n) in [("pod-a#1", 1), ("pod-a#2", 2), ("pod-b", 100)] {
            inputs.apply(0, report(id, Some(n), &[("/chat", n)]), t0, EPOCH);
        }
        let snap = reconcile("prod", &inputs, t0);
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
        let mut inputs = connected(Scope::Cluster, t0);
        inputs.apply(0, report("b", Some(2), &[("/", 2)]), t0, EPOCH);
        inputs.apply(
            0,
            report("a", Some(1), &[("/", 1), ("/chat", 1)]),
            t0,
            EPOCH,
        );
        let snap = reconcile("prod", &inputs, t0);
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
        let mut inputs = connected(local("not-this-one"), t0);
        inputs.apply(0, report("pod-b", None, &[("/", 5)]), t0, EPOCH);
        assert_eq!(
            reconcile("prod", &inputs, t0).sources[0].health,
            Health::Pending
        );
        let later = t0 + STALE + Duration::from_secs(1);
        inputs.apply(0, report("pod-b", None, &[("/", 5)]), later, EPOCH);
        let snap = reconcile("prod", &inputs, later);
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
        let mut inputs = inputs(vec![
            source("first", Scope::Cluster),
            source("second", Scope::Cluster),
        ]);
        inputs.apply(0, report("a", None, &[("/", 1)]), t0, EPOCH);
        inputs.apply(1, report("a", None, &[("/", 9)]), t0, EPOCH);
        inputs.apply(1, report("b", None, &[("/", 2)]), t0, EPOCH);
        let snap = reconcile("prod", &inputs, t0);
        assert_eq!(
            counts(&snap),
            [row("/", Some("a"), 1), row("/", Some("b"), 2)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reports_without_a_server_id_belong_to_the_own_server() {
        let t0 = Instant::now();
        let mut inputs = connected(local("pod-a"), t0);
        inputs.apply(
            0,
            Event::Report(ServerReport {
                server_id: None,
                clients: None,
                namespaces: vec![("/".into(), 2)],
                age: Duration::ZERO,
            }),
            t0,
            EPOCH,
        );
        assert_eq!(counts(&reconcile("prod", &inputs, t0)), [row("/", None, 2)]);
        inputs.apply(0, Event::Forget(None), t0, EPOCH);
        assert!(reconcile("prod", &inputs, t0).connections.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn events_move_counts_and_the_next_report_corrects_them() {
        let t0 = Instant::now();
        let mut inputs = inputs(vec![
            source("admin", local("pod-a")),
            source("push", local("pod-a")),
        ]);
        inputs.apply(
            0,
            report("pod-a", None, &[("/", 5), ("/chat", 2)]),
            t0,
            EPOCH,
        );
        let applied = inputs.apply(
            1,
            Event::Deltas(vec![
                delta("pod-a", "/", 1),
                delta("pod-a", "/chat", -1),
                delta("pod-a", "/new", 1),
            ]),
            t0,
            EPOCH,
        );
        assert_eq!(
            applied,
            Applied {
                corrected: false,
                events: 3,
                dropped: 0
            }
        );
        assert_eq!(
            counts(&reconcile("prod", &inputs, t0)),
            [
                row("/", None, 6),
                row("/chat", None, 1),
                row("/new", None, 1)
            ],
            "events move the gauge at once"
        );

        // The app lost a disconnect event: the report says / has 5.
        let t1 = t0 + Duration::from_secs(2);
        let applied = inputs.apply(
            0,
            report("pod-a", None, &[("/", 5), ("/chat", 1), ("/new", 1)]),
            t1,
            EPOCH,
        );
        assert!(applied.corrected);
        inputs.sources[0].prune(t1, STALE);
        let snap = reconcile("prod", &inputs, t1);
        assert_eq!(snap.sources[0].corrections, 1);
        assert_eq!(
            counts(&snap),
            [
                row("/", None, 5),
                row("/chat", None, 1),
                row("/new", None, 1)
            ]
        );
        let drift: Vec<_> = snap
            .drift
            .iter()
            .map(|d| (d.namespace.as_str(), d.value))
            .collect();
        assert_eq!(drift, [("/", 1), ("/chat", 0), ("/new", 0)]);

        // Without events in between, a report is no correction.
        let t2 = t1 + Duration::from_secs(2);
        assert!(
            !inputs
                .apply(0, report("pod-a", None, &[("/", 9)]), t2, EPOCH)
                .corrected
        );
    }

    #[tokio::test(start_paused = true)]
    async fn events_without_a_current_report_are_dropped_not_counted_from_zero() {
        let t0 = Instant::now();
        let mut inputs = connected(local("pod-a"), t0);
        let applied = inputs.apply(0, Event::Deltas(vec![delta("pod-a", "/", 1)]), t0, EPOCH);
        assert_eq!(applied.dropped, 1);
        assert!(reconcile("prod", &inputs, t0).connections.is_empty());
        inputs.apply(0, report("pod-a", None, &[("/", 3)]), t0, EPOCH);
        let stale = t0 + STALE + Duration::from_secs(1);
        assert_eq!(
            inputs
                .apply(0, Event::Deltas(vec![delta("pod-a", "/", 1)]), stale, EPOCH)
                .dropped,
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn disconnects_below_zero_stop_at_zero() {
        let t0 = Instant::now();
        let mut inputs = connected(local("pod-a"), t0);
        inputs.apply(0, report("pod-a", None, &[("/", 1)]), t0, EPOCH);
        inputs.apply(
            0,
            Event::Deltas(vec![delta("pod-a", "/", -1), delta("pod-a", "/", -1)]),
            t0,
            EPOCH,
        );
        assert_eq!(counts(&reconcile("prod", &inputs, t0)), [row("/", None, 0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn folding_is_reported_per_source() {
        let t0 = Instant::now();
        let mut inputs = connected(local("pod-a"), t0);
        inputs.sources[0].rules.max = 2;
        inputs.apply(
            0,
            report("pod-a", None, &[("/a", 3), ("/b", 2), ("/c", 1)]),
            t0,
            EPOCH,
        );
        let snap = reconcile("prod", &inputs, t0);
        assert_eq!(
            counts(&snap),
            [row("/a", None, 3), row(OVERFLOW_NAMESPACE, None, 3)]
        );
        assert_eq!(
            (snap.sources[0].folded, snap.sources[0].namespace_limit),
            (2, 2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn prune_forgets_stale_servers() {
        let t0 = Instant::now();
        let mut s = source("admin", Scope::Cluster);
        s.report(
            ServerReport {
                server_id: Some("a".into()),
                clients: None,
                namespaces: vec![],
                age: Duration::ZERO,
            },
            t0,
            EPOCH,
        );
        s.report(
            ServerReport {
                server_id: Some("b".into()),
                clients: None,
                namespaces: vec![],
                age: Duration::ZERO,
            },
            t0 + STALE,
            EPOCH,
        );
        s.prune(t0 + STALE + Duration::from_secs(1), STALE);
        assert_eq!(s.servers.keys().collect::<Vec<_>>(), ["b"]);
    }
}
