//! Connection events against full reports: which events a report already includes, which
//! come after it, and when a disagreement is drift rather than a race in flight.
//!
//! Version 2 (ordered): a reporter numbers its events (`seq`, within one process, its
//! `boot`), and a report names the last event it includes. Events up to that one are in the
//! counts already and are skipped, so none counts twice; later ones are applied in order;
//! one that comes ahead of a gap waits up to [`HOLD`] for the gap to fill. A report is
//! compared with the previous one moved by exactly the events between the two, so an event
//! in flight is never a correction, and a lost event always is. A new `boot` starts over.
//!
//! Version 1 (unordered): events apply as they come, and a report is compared with the
//! counts they moved only over a settled window, when no event for that server came within
//! [`SETTLE`] before or after it: a race in flight is not a correction.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use super::Received;
use crate::update::{MAX_COUNT, Seq};

/// How long an event ahead of a gap, or a report's comparison, waits for the events it
/// is missing. Past it they are lost, and the counts (and the drift) say so.
pub(super) const HOLD: Duration = Duration::from_secs(1);
/// Unordered events: the quiet needed on both sides of a report to judge it.
pub(super) const SETTLE: Duration = Duration::from_secs(1);
/// Per server: events waiting behind a gap, events kept for the next report's comparison,
/// and events a comparison waits for, each at most.
const MAX_KEPT: usize = 1024;
/// All servers of all sources together: events kept in those three buffers, at most.
/// Without it a push peer naming 1 024 servers could make each keep [`MAX_KEPT`] of each,
/// hundreds of MiB.
pub(super) const MAX_KEPT_TOTAL: usize = 64 * 1024;

/// The events all servers keep for ordering, against [`MAX_KEPT_TOTAL`]. An event that
/// finds it full gives up its server's order, as one that finds its server's buffer full
/// does, and is counted.
#[derive(Debug, Clone, Default)]
pub(super) struct Budget {
    /// Events kept: exact after [`Budget::recount`], never below the truth in between (a
    /// server that leaves gives its share back at the next recount).
    kept: usize,
    /// Events (or reports' comparisons) that found it full, since [`Budget::take_overflows`].
    overflows: usize,
}

impl Budget {
    /// How many more events may be kept.
    pub(super) fn room(&self) -> usize {
        MAX_KEPT_TOTAL.saturating_sub(self.kept)
    }

    /// One server's kept events went from `before` to `after`.
    pub(super) fn changed(&mut self, before: usize, after: usize) {
        self.kept = self.kept.saturating_sub(before).saturating_add(after);
    }

    /// Counts again what `servers` keep.
    pub(super) fn recount<'a>(&mut self, servers: impl Iterator<Item = &'a Received>) {
        self.kept = servers.map(Received::kept).sum();
    }

    /// The overflows since the last call.
    pub(super) fn take_overflows(&mut self) -> usize {
        std::mem::take(&mut self.overflows)
    }

    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.kept
    }
}

/// Where one server's counts stand in its reporter's order of events.
#[derive(Debug, Clone)]
pub struct Order {
    boot: Arc<str>,
    /// The last event the report included.
    base: u64,
    /// The last event the counts include.
    seq: u64,
    /// Events applied since the report, `(seq, namespace key, change)`: the next report
    /// may already include some of them.
    log: VecDeque<(u64, String, i64)>,
    /// Events that came ahead of a gap, by seq.
    early: BTreeMap<u64, (String, i64)>,
    /// When the oldest gap began to be waited on.
    waiting_since: Option<Instant>,
}

impl Order {
    pub(super) fn new(seq: &Seq) -> Order {
        Order {
            boot: seq.boot.clone(),
            base: seq.n,
            seq: seq.n,
            log: VecDeque::new(),
            early: BTreeMap::new(),
            waiting_since: None,
        }
    }
}

impl Order {
    /// Whether a report at `seq` is older than the one these counts come from.
    pub(super) fn is_after(&self, seq: &Seq) -> bool {
        self.boot == seq.boot && self.base > seq.n
    }
}

/// A report's comparison with the counts events moved, until it can be judged.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// When the report arrived.
    since: Instant,
    /// Per namespace: the event-moved count minus the report's.
    pub(super) diff: BTreeMap<String, i64>,
    wait: Wait,
}

#[derive(Debug, Clone)]
enum Wait {
    /// Ordered, and every event up to the report is in.
    Nothing,
    /// Ordered: the events the report includes that have not come yet.
    Events {
        boot: Arc<str>,
        missing: BTreeSet<u64>,
    },
    /// Unordered: judged once no event came for [`SETTLE`].
    Settle,
}

impl Verdict {
    /// Whether it can be judged at `now`.
    pub(super) fn due(&self, now: Instant) -> bool {
        let waited = now.saturating_duration_since(self.since);
        match &self.wait {
            Wait::Nothing => true,
            Wait::Events { missing, .. } => missing.is_empty() || waited >= HOLD,
            Wait::Settle => waited >= SETTLE,
        }
    }

    /// Whether a newer report may judge it now rather than drop it: an unordered one that
    /// has not settled is a race, an ordered one has waited as long as it gets.
    pub(super) fn judged_when_replaced(&self, now: Instant) -> bool {
        !matches!(self.wait, Wait::Settle) || self.due(now)
    }
}

/// What one connection event did to a server's counts.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Moved {
    /// Applied (with any held events it released).
    Applied,
    /// Ahead of a gap: held for up to [`HOLD`].
    Held,
    /// Already in the counts (the report included it, or it came twice).
    Skipped,
    /// From a reporter process whose report has not come: it cannot be placed.
    OtherBoot,
}

/// Moves one count, within the exact range of a report's counts.
fn apply(namespaces: &mut BTreeMap<String, u64>, key: &str, change: i64) {
    let count = namespaces.entry(key.to_owned()).or_default();
    *count = count.saturating_add_signed(change).min(MAX_COUNT);
}

/// `moved - truth` per namespace, over both.
fn difference(
    moved: &BTreeMap<String, u64>,
    truth: &BTreeMap<String, u64>,
) -> BTreeMap<String, i64> {
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut diff: BTreeMap<String, i64> =
        moved.iter().map(|(k, v)| (k.clone(), signed(*v))).collect();
    for (name, count) in truth {
        let entry = diff.entry(name.clone()).or_default();
        *entry = entry.saturating_sub(signed(*count));
    }
    diff
}

impl Received {
    /// Events this server keeps for ordering, against the [`Budget`].
    pub(super) fn kept(&self) -> usize {
        let order = self
            .order
            .as_ref()
            .map_or(0, |o| o.early.len() + o.log.len());
        let awaited = match self.verdict.as_ref().map(|v| &v.wait) {
            Some(Wait::Events { missing, .. }) => missing.len(),
            _ => 0,
        };
        order + awaited
    }

    /// Applies one connection event, under the namespace key the rules gave it. Keeps one
    /// more event at most, and none when `budget` has no room.
    pub(super) fn event(
        &mut self,
        key: String,
        change: i64,
        seq: Option<&Seq>,
        now: Instant,
        budget: &mut Budget,
    ) -> Moved {
        let Some((seq, order)) = seq.zip(self.order.as_mut()) else {
            apply(&mut self.namespaces, &key, change);
            self.adjusted = true;
            self.last_event = Some(now);
            // An event within the settle window makes the report a race; one after it
            // leaves a settled comparison to be judged (by the caller, now).
            if self
                .verdict
                .as_ref()
                .is_some_and(|v| matches!(v.wait, Wait::Settle) && !v.due(now))
            {
                self.verdict = None;
            }
            return Moved::Applied;
        };
        if seq.boot != order.boot {
            return Moved::OtherBoot;
        }
        if let Some(verdict) = &mut self.verdict {
            verdict.late_event(seq, &key, change);
        }
        if order.early.len() >= MAX_KEPT {
            self.release(true, now);
        }
        let Some(order) = self.order.as_mut() else {
            return Moved::Skipped;
        };
        // At or before the last event the counts include: in them already, or given up.
        if seq.n <= order.seq || order.early.contains_key(&seq.n) {
            return Moved::Skipped;
        }
        if budget.room() == 0 {
            budget.overflows += 1;
            self.unkept(seq.n, key, change, now);
            return Moved::Applied;
        }
        order.early.insert(seq.n, (key, change));
        order.waiting_since.get_or_insert(now);
        let before = order.seq;
        self.release(false, now);
        match self.order.as_ref() {
            Some(order) if order.seq == before => Moved::Held,
            _ => Moved::Applied,
        }
    }

    /// Event `n` when all servers keep as many as they may: this server keeps no more. Its
    /// gaps are given up, as when its own buffer is full; the event applies at once and is
    /// logged only in place of the server's oldest logged event.
    fn unkept(&mut self, n: u64, key: String, change: i64, now: Instant) {
        if let Some(order) = self.order.as_mut() {
            order.early.insert(n, (key, change));
        }
        self.release(true, now);
        if let Some(order) = self.order.as_mut() {
            order.log.pop_front();
        }
    }

    /// Applies held events in order: those that follow without a gap, or all of them when
    /// `give_up` (the events in the gaps are lost).
    pub(super) fn release(&mut self, give_up: bool, now: Instant) {
        let Some(order) = self.order.as_mut() else {
            return;
        };
        let before = order.seq;
        while let Some(entry) = order.early.first_entry() {
            let n = *entry.key();
            if n != order.seq + 1 && !give_up {
                break;
            }
            let (key, change) = entry.remove();
            apply(&mut self.namespaces, &key, change);
            order.seq = n;
            if order.log.len() >= MAX_KEPT {
                order.log.pop_front();
            }
            order.log.push_back((n, key, change));
        }
        if order.early.is_empty() {
            order.waiting_since = None;
        } else if order.seq != before {
            order.waiting_since = Some(now);
        }
    }

    /// Gives up on gaps waited on for longer than [`HOLD`].
    pub(super) fn expire_gaps(&mut self, now: Instant) {
        let expired = self
            .order
            .as_ref()
            .and_then(|o| o.waiting_since)
            .is_some_and(|since| now.saturating_duration_since(since) >= HOLD);
        if expired {
            self.release(true, now);
        }
    }

    /// Takes over from the `previous` report of the same server: carries the event order
    /// on, re-applies the events that came after this report, and returns the comparison
    /// of this report with the counts events had moved, if there is one to make. The events
    /// it waits for take room in `budget`.
    pub(super) fn follow(
        &mut self,
        previous: Received,
        seq: Option<Seq>,
        now: Instant,
        budget: &mut Budget,
    ) -> Option<Verdict> {
        let same_boot = matches!((&seq, &previous.order), (Some(s), Some(o)) if s.boot == o.boot);
        if !same_boot {
            // Unordered, or a new reporter process: no comparison across processes.
            self.order = seq.as_ref().map(Order::new);
            return seq
                .is_none()
                .then(|| self.unordered(&previous, now))
                .flatten();
        }
        let (Some(seq), Some(order)) = (seq, previous.order) else {
            return None;
        };
        let mut diff = difference(&previous.namespaces, &self.namespaces);
        // Events after the report: in the moved counts, not in the report.
        let after: VecDeque<_> = order
            .log
            .iter()
            .filter(|(n, ..)| *n > seq.n)
            .cloned()
            .collect();
        for (_, key, change) in &after {
            apply(&mut self.namespaces, key, *change);
            *diff.entry(key.clone()).or_default() -= change;
        }
        let applied = order.seq;
        let mut order = Order {
            base: seq.n,
            seq: applied.max(seq.n),
            log: after,
            ..order
        };
        let missing = order.take_gap(applied, seq.n, &mut diff, budget);
        order.waiting_since = (!order.early.is_empty()).then_some(now);
        self.order = Some(order);
        self.release(false, now);
        let wait = if missing.is_empty() {
            Wait::Nothing
        } else {
            Wait::Events {
                boot: seq.boot,
                missing,
            }
        };
        Some(Verdict {
            since: now,
            diff,
            wait,
        })
    }

    /// An unordered report's comparison with the counts events moved, unless an event came
    /// within [`SETTLE`] before it.
    fn unordered(&self, previous: &Received, now: Instant) -> Option<Verdict> {
        let settled = previous
            .last_event
            .is_none_or(|at| now.saturating_duration_since(at) >= SETTLE);
        (previous.adjusted && settled).then(|| Verdict {
            since: now,
            diff: difference(&previous.namespaces, &self.namespaces),
            wait: Wait::Settle,
        })
    }
}

impl Order {
    /// Events `applied + 1 ..= upto` are in a report but not yet in the moved counts: those
    /// held early join the comparison `diff`; returns the others, still to come.
    fn take_gap(
        &mut self,
        applied: u64,
        upto: u64,
        diff: &mut BTreeMap<String, i64>,
        budget: &mut Budget,
    ) -> BTreeSet<u64> {
        let mut missing = BTreeSet::new();
        let gap = upto.saturating_sub(applied);
        let room = budget.room() as u64;
        if gap > MAX_KEPT as u64 || gap > room {
            if gap <= MAX_KEPT as u64 {
                budget.overflows += 1;
            }
            // Too many to wait for one by one: judged with what came, after the hold (at
            // once when no server may keep one more event).
            self.early.retain(|n, _| *n > upto);
            if room > 0 {
                missing.insert(upto);
            }
            return missing;
        }
        for n in applied + 1..=upto {
            match self.early.remove(&n) {
                Some((key, change)) => *diff.entry(key).or_default() += change,
                None => {
                    missing.insert(n);
                }
            }
        }
        missing
    }
}

impl Verdict {
    /// An event the comparison waits for came: the moved counts include it.
    fn late_event(&mut self, seq: &Seq, key: &str, change: i64) {
        if let Wait::Events { boot, missing } = &mut self.wait {
            if *boot == seq.boot && missing.remove(&seq.n) {
                *self.diff.entry(key.to_owned()).or_default() += change;
            }
        }
    }
}
