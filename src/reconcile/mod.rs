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
//!   the difference is a correction, counted and exported as drift per server and
//!   namespace. Ordered events are never counted twice, and a race in flight is never a
//!   correction (see `order.rs`).
//! - Engine.IO counters add each message's events once per server; they survive a source
//!   reconnect (monotonic for the exporter's lifetime), are exported only while the server
//!   is, and leave memory when it goes stale (see `engine.rs`).

mod engine;
mod health;
mod layout;
mod order;
#[cfg(test)]
mod properties;
mod sync_loop;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use self::engine::EngineTotals;
pub(crate) use self::layout::Layout;
use self::order::{Budget, Moved, Order, Verdict};
pub(crate) use self::sync_loop::{SyncLoop, run};
use crate::namespaces::{Folded, NamespaceRules};
use crate::snapshot::{
    Clients, Connections, Drift, Engine, EngineCounters, Health, Snapshot, SourceStatus,
};
use crate::sources::{Scope, SourceConfig};
use crate::update::{Counted, Delta, EngineEvents, Event, Reason, ServerCounts, Silence};

/// Servers kept per source; counts from further server ids are ignored.
const MAX_SERVERS: usize = 1024;

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
    /// Per server and namespace, the drift the last comparison of events against a full
    /// report found; a server's entries leave with it.
    pub drift: BTreeMap<String, BTreeMap<String, u64>>,
    /// Full reports that corrected event-moved counts, since start.
    pub corrections: u64,
    /// What the source's silence means.
    pub silence: Silence,
    /// The source has delivered a report since start.
    pub carried_reports: bool,
    /// Engine.IO counters per server id; unlike `servers`, kept while the source is down.
    pub engine: BTreeMap<String, EngineTotals>,
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
    /// Engine.IO clients on long-polling, when the server reports them.
    pub polling_clients: Option<u64>,
    pub namespaces: BTreeMap<String, u64>,
    /// Namespace values summed into the overflow value by the cap.
    pub folded: usize,
    /// Unordered connection events moved the counts since the report.
    pub adjusted: bool,
    /// When an unordered connection event last moved the counts.
    pub last_event: Option<Instant>,
    /// Version 2: where the counts stand in their reporter's order of events.
    pub order: Option<Order>,
    /// This report's comparison with the event-moved counts, until it can be judged.
    pub verdict: Option<Verdict>,
}

/// What applying an event did, for the loop's counters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// A full report disagreed with event-moved counts.
    pub corrected: bool,
    /// Connection events applied to a current report.
    pub events: usize,
    /// Connection events for servers without a current report (or for namespaces it does
    /// not hold), dropped.
    pub dropped: usize,
    /// A full report was refused, and why.
    pub refused: Option<Reason>,
    /// Ordered connection events (or a report's comparison) that found every server's
    /// buffers for ordering full together (see `order::MAX_KEPT_TOTAL`): their server's
    /// order was given up, as when its own buffer is full.
    pub over_budget: usize,
}

impl SourceInput {
    pub fn new(config: &SourceConfig) -> SourceInput {
        SourceInput {
            silence: config.kind.silence(),
            ..SourceInput::empty(
                config.name.clone(),
                config.scope.clone(),
                config.own_server_id.clone(),
                config.namespaces.clone(),
            )
        }
    }

    /// A source that has not connected yet.
    pub fn empty(
        name: String,
        scope: Scope,
        own_server_id: String,
        rules: NamespaceRules,
    ) -> SourceInput {
        SourceInput {
            name,
            scope,
            own_server_id,
            rules,
            link: Link::Starting,
            servers: BTreeMap::new(),
            last_success: None,
            drift: BTreeMap::new(),
            corrections: 0,
            silence: Silence::Stale(Reason::StatsTimeout),
            carried_reports: false,
            engine: BTreeMap::new(),
        }
    }

    /// Whether counts of the server `id` (`None`: this exporter's own) are exported.
    pub(crate) fn in_scope(&self, id: &Option<String>) -> bool {
        self.scope
            .includes_reported(id.as_deref(), &self.own_server_id)
    }

    fn server_id(&self, id: Option<String>) -> String {
        id.unwrap_or_else(|| self.own_server_id.clone())
    }

    /// Takes a server's full counts; returns whether they corrected event-moved counts.
    fn take_counts(
        &mut self,
        report: ServerCounts,
        now: Instant,
        wall: SystemTime,
        budget: &mut Budget,
    ) -> Result<bool, Reason> {
        if !matches!(self.link, Link::Connected { .. }) {
            self.link = Link::Connected { since: now };
        }
        self.carried_reports = true;
        let id = self.server_id(report.server_id);
        let at = now.checked_sub(report.age).unwrap_or(now);
        let in_scope = self.scope.includes(&id);
        // Local scope keeps foreign servers by id only (for the server_id_not_seen warning),
        // so memory follows the own server whatever the others send.
        let engine = match report.engine {
            Some(engine) if in_scope => engine,
            _ => Default::default(),
        };
        if let Some(Counted::SincePrevious(events)) = &engine.events {
            // Each message's events are new, whatever the order of the counts.
            self.count_engine(&id, events, at, false);
        }
        let previous = self.servers.get(&id);
        let older = |p: &Received| match (&p.order, &report.seq) {
            (Some(order), Some(seq)) => order.is_after(seq),
            _ => p.at > at,
        };
        if previous.is_some_and(older) {
            return Ok(false);
        }
        if previous.is_none() && !self.make_room(&id) {
            return Err(Reason::TooManyServers);
        }
        let (folded, clients) = if in_scope {
            let folded = (self.rules.fold(report.namespaces)).map_err(|_| Reason::InvalidReport)?;
            (folded, report.clients)
        } else {
            (Folded::default(), None)
        };
        if let Some(Counted::SinceStart(totals)) = &engine.events {
            self.count_engine(&id, totals, at, true);
        }
        let mut received = Received {
            at,
            clients,
            polling_clients: engine.polling_clients,
            namespaces: folded.namespaces,
            folded: folded.folded,
            adjusted: false,
            last_event: None,
            order: report.seq.as_ref().map(Order::new),
            verdict: None,
        };
        let mut corrected = false;
        let mut freed = 0;
        if let Some(mut previous) = self.servers.remove(&id) {
            freed = previous.kept();
            if let Some(verdict) = previous.verdict.take() {
                if verdict.judged_when_replaced(now) {
                    corrected |= self.judge(&id, verdict);
                }
            }
            received.verdict = received.follow(previous, report.seq, now, budget);
        }
        corrected |= self.judge_if_due(&id, &mut received, now);
        budget.changed(freed, received.kept());
        if in_scope {
            self.last_success = Some(wall);
        }
        self.servers.insert(id, received);
        Ok(corrected)
    }

    /// Whether a new server `id` fits under [`MAX_SERVERS`]. In local scope the own server
    /// always fits: a foreign server's id makes room for it, or else the oldest other.
    fn make_room(&mut self, id: &str) -> bool {
        if self.servers.len() < MAX_SERVERS {
            return true;
        }
        let Scope::Local { server_id } = &self.scope else {
            return false;
        };
        let evict = match self.servers.keys().find(|k| !self.scope.includes(k)) {
            Some(foreign) if self.scope.includes(id) => Some(foreign.clone()),
            _ if id == server_id => self
                .servers
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(k, _)| k.clone()),
            _ => None,
        };
        evict.is_some_and(|k| self.servers.remove(&k).is_some())
    }

    /// Adds a message's events to server `id`'s counters, or with `since_start` takes them
    /// as the counters (a restarted reporter starts again from 0: a counter reset).
    fn count_engine(&mut self, id: &str, events: &EngineEvents, at: Instant, since_start: bool) {
        if !self.engine.contains_key(id) && self.engine.len() >= MAX_SERVERS {
            return;
        }
        let totals = self
            .engine
            .entry(id.to_owned())
            .or_insert_with(|| EngineTotals {
                counters: EngineCounters::default(),
                at,
            });
        if since_start {
            totals.counters = engine::counters(events);
        } else {
            totals.counters.add(&engine::counters(events));
        }
        totals.at = totals.at.max(at);
    }

    /// Judges a report's comparison: a correction when the counts disagree; the drift per
    /// namespace is kept (bounded by the namespace cap) until the server leaves.
    fn judge(&mut self, id: &str, verdict: Verdict) -> bool {
        let drift = self.drift.entry(id.to_owned()).or_default();
        let mut corrected = false;
        for (name, difference) in verdict.diff {
            let difference = difference.unsigned_abs();
            corrected |= difference > 0;
            if drift.contains_key(&name) || drift.len() < self.rules.max {
                drift.insert(name, difference);
            }
        }
        if corrected {
            self.corrections += 1;
        }
        corrected
    }

    fn judge_if_due(&mut self, id: &str, received: &mut Received, now: Instant) -> bool {
        match received.verdict.take() {
            Some(verdict) if verdict.due(now) => self.judge(id, verdict),
            verdict => {
                received.verdict = verdict;
                false
            }
        }
    }

    /// Forgets reports that can no longer count, so memory follows the live servers, and
    /// drift of namespaces no report holds any more.
    /// Also judges the comparisons that are due and gives up on event gaps held too long.
    pub fn prune(&mut self, now: Instant, stale_after: Duration) {
        self.servers
            .retain(|_, r| now.saturating_duration_since(r.at) <= stale_after);
        self.engine
            .retain(|_, t| now.saturating_duration_since(t.at) <= stale_after);
        let mut servers = std::mem::take(&mut self.servers);
        for (id, received) in &mut servers {
            received.expire_gaps(now);
            self.judge_if_due(id, received, now);
        }
        self.servers = servers;
        let servers = &self.servers;
        self.drift.retain(|id, drift| {
            let Some(received) = servers.get(id) else {
                return false;
            };
            drift.retain(|name, _| received.namespaces.contains_key(name));
            !drift.is_empty()
        });
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
    /// The events all sources' servers keep for ordering, together.
    budget: Budget,
}

impl Inputs {
    /// The sources' inputs, holding no event for ordering yet.
    pub fn new(sources: Vec<SourceInput>, stale_after: Duration) -> Inputs {
        Inputs {
            sources,
            stale_after,
            budget: Budget::default(),
        }
    }

    /// Prunes every source (see [`SourceInput::prune`]), and counts again the events their
    /// servers keep, so the servers that left give their share of the budget back.
    pub fn prune(&mut self, now: Instant) {
        for source in &mut self.sources {
            source.prune(now, self.stale_after);
        }
        let servers = self.sources.iter().flat_map(|s| s.servers.values());
        self.budget.recount(servers);
    }

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
                source.drift.clear();
            }
            Event::Forget(id) => {
                let id = source.server_id(id);
                source.servers.remove(&id);
                source.drift.remove(&id);
                source.engine.remove(&id);
            }
            Event::Counts(counts) => {
                let taken = source.take_counts(counts, now, wall, &mut self.budget);
                let over_budget = self.budget.take_overflows();
                let (corrected, refused) = match taken {
                    Ok(corrected) => (corrected, None),
                    Err(reason) => (false, Some(reason)),
                };
                return Applied {
                    corrected,
                    refused,
                    over_budget,
                    ..Applied::default()
                };
            }
            Event::Deltas(deltas) => return self.deltas(index, deltas, now),
        }
        Applied::default()
    }

    /// Moves the counts of every current report of each event's server, whichever source
    /// holds it: the first in config order is exported, and each of the others stays a
    /// consistent view to compare its own next report with. Events alone never create a
    /// count: without a report the starting point is unknown.
    fn deltas(&mut self, index: usize, deltas: Vec<Delta>, now: Instant) -> Applied {
        let mut applied = Applied::default();
        for delta in deltas {
            let id = self.sources[index].server_id(delta.server_id.clone());
            let mut placed = false;
            for source in &mut self.sources {
                let (moved, corrected) =
                    source.event(&id, &delta, now, self.stale_after, &mut self.budget);
                placed |= matches!(moved, Some(Moved::Applied | Moved::Held | Moved::Skipped));
                applied.corrected |= corrected;
            }
            // Once per event, however many sources hold its server.
            if self.budget.take_overflows() > 0 {
                applied.over_budget += 1;
            }
            if placed {
                applied.events += 1;
            } else {
                applied.dropped += 1;
            }
        }
        applied
    }
}

impl SourceInput {
    /// Applies one connection event to this source's current report of server `id`, if it
    /// has one; returns what it did, and whether a comparison it completed corrected.
    fn event(
        &mut self,
        id: &str,
        delta: &Delta,
        now: Instant,
        stale_after: Duration,
        budget: &mut Budget,
    ) -> (Option<Moved>, bool) {
        let current = self
            .servers
            .get(id)
            .is_some_and(|r| now.saturating_duration_since(r.at) <= stale_after);
        if !current || !self.scope.includes(id) {
            return (None, false);
        }
        let Some(key) = self.event_key(id, delta) else {
            return (None, false);
        };
        let Some(mut received) = self.servers.remove(id) else {
            return (None, false);
        };
        let kept = received.kept();
        let moved = received.event(key, delta.change, delta.seq.as_ref(), now, budget);
        let corrected = self.judge_if_due(id, &mut received, now);
        budget.changed(kept, received.kept());
        self.servers.insert(id.to_owned(), received);
        (Some(moved), corrected)
    }

    /// The namespace an event for server `id` moves. An unordered event moves only a
    /// namespace its server's report holds (or the overflow value): without one, nothing
    /// says where the count starts. An ordered event may also start a namespace the report
    /// did not hold, within the cap: the report states the last event it includes, so the
    /// namespace started at 0 there.
    fn event_key(&self, id: &str, delta: &Delta) -> Option<String> {
        let namespaces = &self.servers.get(id)?.namespaces;
        match self.rules.event_key(namespaces, &delta.namespace) {
            Some(key) => Some(key),
            None if delta.seq.is_some() && namespaces.len() < self.rules.max => {
                Some(self.rules.group(&delta.namespace).into_owned())
            }
            None => None,
        }
    }
}

/// The pure reconcile step.
pub fn reconcile(environment: &str, inputs: &Inputs, now: Instant) -> Snapshot {
    let stale_after = inputs.stale_after;
    let mut totals = Totals::default();
    let mut statuses = Vec::with_capacity(inputs.sources.len());
    let mut drift = Vec::new();
    for source in &inputs.sources {
        let mut folded = 0;
        let health = match source.link {
            Link::Starting => Health::Pending,
            Link::Down(reason) => Health::Down(reason),
            Link::Connected { since } => match totals.add(source, now, stale_after) {
                Some(source_folded) => {
                    folded = source_folded;
                    Health::Up
                }
                None => health::without_counts(source, since, now, stale_after),
            },
        };
        drift.extend(source.drift.iter().flat_map(|(server, namespaces)| {
            namespaces.iter().map(|(namespace, value)| Drift {
                source: source.name.clone(),
                server: server.clone(),
                namespace: namespace.clone(),
                value: *value,
            })
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
        connections: totals.connections(),
        clients: totals.clients(),
        sources: statuses,
        drift,
        engine: totals.engine(),
        expires: now.checked_add(stale_after),
    }
}

/// The exported counts, summed over the sources' fresh in-scope servers, each server once.
#[derive(Default)]
/// A sum that does not fit exactly is `None` and not exported: unknown, never wrapped.
struct Totals<'a> {
    counted: HashSet<&'a str>,
    /// Per server, its namespaces in order: summed per (namespace, server) at the end.
    connections: Vec<((&'a str, Option<&'a str>), u64)>,
    clients: BTreeMap<Option<&'a str>, Option<u64>>,
    engine: BTreeMap<Option<&'a str>, (Option<u64>, Option<EngineCounters>)>,
}

impl<'a> Totals<'a> {
    /// Adds the fresh servers of `source` in its scope that no earlier source counted.
    /// Returns the number of folded namespace values, or `None` when the source has no
    /// fresh counts in its scope.
    fn add(
        &mut self,
        source: &'a SourceInput,
        now: Instant,
        stale_after: Duration,
    ) -> Option<usize> {
        let mut own = source
            .fresh(now, stale_after)
            .filter(|(id, _)| source.scope.includes(id))
            .peekable();
        own.peek()?;
        let mut folded = 0;
        for (id, received) in own {
            if !self.counted.insert(id.as_str()) {
                continue;
            }
            let label = match source.scope {
                Scope::Cluster => Some(id.as_str()),
                Scope::Local { .. } => None,
            };
            for (namespace, sockets) in &received.namespaces {
                self.connections.push(((namespace, label), *sockets));
            }
            if let Some(n) = received.clients {
                checked_add(self.clients.entry(label), n);
            }
            self.add_engine(label, received.polling_clients, source.engine.get(id));
            folded += received.folded;
        }
        Some(folded)
    }

    /// Adds one server's Engine.IO part to `label`'s, the parts it does not report left out.
    fn add_engine(
        &mut self,
        label: Option<&'a str>,
        polling: Option<u64>,
        totals: Option<&EngineTotals>,
    ) {
        if polling.is_none() && totals.is_none() {
            return;
        }
        let (sum_polling, sum_counters) = self.engine.entry(label).or_default();
        if let Some(n) = polling {
            *sum_polling = Some(sum_polling.unwrap_or(0).saturating_add(n));
        }
        if let Some(totals) = totals {
            sum_counters
                .get_or_insert_with(EngineCounters::default)
                .add(&totals.counters);
        }
    }

    fn engine(&self) -> Vec<Engine> {
        self.engine
            .iter()
            .map(|(&server, &(polling_clients, counters))| Engine {
                server: server.map(str::to_owned),
                polling_clients,
                counters,
            })
            .collect()
    }

    fn connections(&mut self) -> Vec<Connections> {
        // Each server's namespaces came in order, so this sort merges sorted runs; for one
        // server it only checks them. Far cheaper than a map insert per namespace.
        self.connections.sort_by(|a, b| a.0.cmp(&b.0));
        self.connections
            .chunk_by(|a, b| a.0 == b.0)
            .filter_map(|same| {
                let ((namespace, server), _) = *same.first()?;
                let sockets = same
                    .iter()
                    .try_fold(0u64, |sum, &(_, n)| sum.checked_add(n));
                Some(Connections {
                    namespace: namespace.to_owned(),
                    server: server.map(str::to_owned),
                    sockets: sockets?,
                })
            })
            .collect()
    }

    fn clients(&self) -> Vec<Clients> {
        self.clients
            .iter()
            .filter_map(|(&server, &clients)| {
                Some(Clients {
                    server: server.map(str::to_owned),
                    clients: clients?,
                })
            })
            .collect()
    }
}

fn checked_add<K: Ord>(entry: std::collections::btree_map::Entry<'_, K, Option<u64>>, n: u64) {
    let sum = entry.or_insert(Some(0));
    *sum = sum.and_then(|s| s.checked_add(n));
}
