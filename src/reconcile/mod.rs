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

mod health;
#[cfg(test)]
mod properties;
mod sync_loop;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub(crate) use self::sync_loop::{SyncLoop, run};
use crate::namespaces::{Folded, NamespaceRules};
use crate::snapshot::{Clients, Connections, Drift, Health, Snapshot, SourceStatus};
use crate::sources::{Scope, SourceConfig};
use crate::update::{Delta, Event, MAX_COUNT, Reason, ServerCounts};

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
    /// Connection events for servers without a current report (or for namespaces it does
    /// not hold), dropped.
    pub dropped: usize,
    /// A full report was refused, and why.
    pub refused: Option<Reason>,
}

impl SourceInput {
    pub fn new(config: &SourceConfig) -> SourceInput {
        SourceInput::empty(
            config.name.clone(),
            config.scope.clone(),
            config.own_server_id.clone(),
            config.namespaces.clone(),
        )
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
            last_events: None,
        }
    }

    fn server_id(&self, id: Option<String>) -> String {
        id.unwrap_or_else(|| self.own_server_id.clone())
    }

    /// Takes a server's full counts; returns whether they corrected event-moved counts, or
    /// why they were refused.
    fn take_counts(
        &mut self,
        report: ServerCounts,
        now: Instant,
        wall: SystemTime,
    ) -> Result<bool, Reason> {
        if !matches!(self.link, Link::Connected { .. }) {
            self.link = Link::Connected { since: now };
        }
        let id = self.server_id(report.server_id);
        let at = now.checked_sub(report.age).unwrap_or(now);
        let previous = self.servers.get(&id);
        if previous.is_some_and(|p| p.at > at) {
            return Ok(false);
        }
        if previous.is_none() && !self.make_room(&id) {
            return Err(Reason::TooManyServers);
        }
        let in_scope = self.scope.includes(&id);
        // Local scope keeps foreign servers by id only (for the server_id_not_seen warning),
        // so memory follows the own server whatever the others send.
        let (folded, clients) = if in_scope {
            let folded = self
                .rules
                .fold(report.namespaces)
                .map_err(|_| Reason::InvalidReport)?;
            (folded, report.clients)
        } else {
            (Folded::default(), None)
        };
        let corrected = match self.servers.get(&id).filter(|p| p.adjusted) {
            Some(previous) => record_drift(&mut self.drift, self.rules.max, previous, &folded),
            None => false,
        };
        if corrected {
            self.corrections += 1;
        }
        if in_scope {
            self.last_success = Some(wall);
        }
        self.servers.insert(
            id,
            Received {
                at,
                clients,
                namespaces: folded.namespaces,
                folded: folded.folded,
                adjusted: false,
            },
        );
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

/// Compares event-moved counts with the full report that replaces them, recording the
/// drift per namespace (at most `max` namespaces); returns whether they disagreed.
fn record_drift(
    drift: &mut BTreeMap<String, u64>,
    max: usize,
    previous: &Received,
    folded: &Folded,
) -> bool {
    let names: HashSet<&String> = previous
        .namespaces
        .keys()
        .chain(folded.namespaces.keys())
        .collect();
    let mut corrected = false;
    for name in names {
        let moved = previous.namespaces.get(name).copied().unwrap_or(0);
        let truth = folded.namespaces.get(name).copied().unwrap_or(0);
        let difference = moved.abs_diff(truth);
        corrected |= difference > 0;
        if drift.contains_key(name) || drift.len() < max {
            drift.insert(name.clone(), difference);
        }
    }
    corrected
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
            Event::Counts(counts) => {
                return match source.take_counts(counts, now, wall) {
                    Ok(corrected) => Applied {
                        corrected,
                        ..Applied::default()
                    },
                    Err(reason) => Applied {
                        refused: Some(reason),
                        ..Applied::default()
                    },
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
                let in_scope = source.scope.includes(&id);
                source
                    .servers
                    .get_mut(&id)
                    .filter(|r| in_scope && now.saturating_duration_since(r.at) <= stale_after)
                    .map(|received| (rules, received))
            });
            let Some((rules, received)) = target else {
                applied.dropped += 1;
                continue;
            };
            let Some(key) = rules.event_key(&received.namespaces, &delta.namespace) else {
                applied.dropped += 1;
                continue;
            };
            let count = received.namespaces.entry(key).or_default();
            *count = count.saturating_add_signed(delta.change).min(MAX_COUNT);
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
        connections: totals.connections(),
        clients: totals.clients(),
        sources: statuses,
        drift,
        expires: now.checked_add(stale_after),
    }
}

/// The exported counts, summed over the sources' fresh in-scope servers, each server once.
/// A sum that does not fit exactly is `None` and not exported: unknown, never wrapped.
#[derive(Default)]
struct Totals<'a> {
    counted: HashSet<&'a str>,
    connections: BTreeMap<(&'a str, Option<&'a str>), Option<u64>>,
    clients: BTreeMap<Option<&'a str>, Option<u64>>,
}

fn checked_add<K: Ord>(entry: std::collections::btree_map::Entry<'_, K, Option<u64>>, n: u64) {
    let sum = entry.or_insert(Some(0));
    *sum = sum.and_then(|s| s.checked_add(n));
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
                checked_add(self.connections.entry((namespace, label)), *sockets);
            }
            if let Some(n) = received.clients {
                checked_add(self.clients.entry(label), n);
            }
            folded += received.folded;
        }
        Some(folded)
    }

    fn connections(&self) -> Vec<Connections> {
        self.connections
            .iter()
            .filter_map(|(&(namespace, server), &sockets)| {
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
