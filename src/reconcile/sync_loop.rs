//! The sync loop: applies source updates as they arrive, and every `interval` reconciles
//! and publishes a new snapshot; new counts, connection events, corrections and lost
//! sources are published within milliseconds. Logs each change of a source's health once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::layout::{Layout, relayout};
use super::order::MAX_KEPT_TOTAL;
use super::{Inputs, MAX_SERVERS, reconcile};
use crate::config::sync::SyncConfig;
use crate::log_limit::{ErrorLog, Fields};
use crate::readiness::Readiness;
use crate::snapshot::{Health, Snapshot};
use crate::telemetry::Telemetry;
use crate::update::{Event, Reason, SourceId, Update};

/// New counts, connection events, corrections and lost sources are published this soon,
/// bursts coalesced, without waiting for a tick.
const EVENT_PUBLISH_DELAY: Duration = Duration::from_millis(20);
/// Publishes that do not wait for a tick are at least this far apart: a cluster-scope
/// exporter taking in hundreds of servers' stats a second reconciles ten times a second,
/// not fifty.
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(100);

/// When the next publish that does not wait for a tick is due.
struct Prompt {
    due: Option<Instant>,
    last: Instant,
}

impl Prompt {
    /// Something to publish arrived: due once the burst had time to coalesce, and not
    /// sooner than [`MIN_PUBLISH_GAP`] after the last publish.
    fn arrived(&mut self, now: Instant) {
        let due = (now + EVENT_PUBLISH_DELAY).max(self.last + MIN_PUBLISH_GAP);
        self.due.get_or_insert(due);
    }

    /// A publish happened, prompt or on a tick.
    fn published(&mut self, now: Instant) {
        self.due = None;
        self.last = now;
    }
}

/// What the loop owns.
pub(crate) struct SyncLoop {
    /// Value of the `environment` label.
    pub environment: String,
    pub inputs: Inputs,
    /// The running source each of `inputs.sources` is; updates from others are ignored.
    pub ids: Vec<SourceId>,
    pub sync: SyncConfig,
    pub updates: mpsc::Receiver<Update>,
    /// New sets of sources from config reloads.
    pub layouts: mpsc::Receiver<Layout>,
    pub publish: watch::Sender<Arc<Snapshot>>,
    pub telemetry: Arc<Telemetry>,
    /// Set while the loop runs.
    pub ready: Readiness,
}

/// Runs the loop until `cancel` fires.
pub(crate) async fn run(mut sync: SyncLoop, cancel: CancellationToken) {
    let _ready = sync.ready.while_alive();
    let mut tick = ticks(sync.sync.interval);
    let mut prompt = Prompt {
        due: None,
        last: Instant::now(),
    };
    let mut logs = Logs::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(layout) = sync.layouts.recv() => {
                let period = sync.sync.interval;
                let taken = sync.relayout(layout);
                if sync.sync.interval != period {
                    tick = ticks(sync.sync.interval);
                }
                logs.keep(&sync.inputs);
                sync.publish(&mut logs);
                prompt.published(Instant::now());
                let _ = taken.send(());
            }
            Some(update) = sync.updates.recv() => {
                if sync.apply(update, &mut logs) {
                    prompt.arrived(Instant::now());
                }
            }
            _ = sleep_until(prompt.due.unwrap_or_else(Instant::now)), if prompt.due.is_some() => {
                sync.publish(&mut logs);
                prompt.published(Instant::now());
            }
            _ = tick.tick() => {
                sync.publish(&mut logs);
                prompt.published(Instant::now());
            }
        }
    }
}

fn ticks(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Per source name, what the loop logs: refused reports, events over the budget for
/// ordering and "source is down" warnings, each once and then as rate-limited reminders,
/// so a flapping source stays quiet.
#[derive(Default)]
struct Logs {
    refused: BTreeMap<String, ErrorLog<Reason>>,
    /// Apart from `refused`, whose reminders a refusal of another reason would reset.
    over_budget: BTreeMap<String, ErrorLog<Reason>>,
    down: BTreeMap<String, ErrorLog<Reason>>,
}

impl Logs {
    /// Forgets the sources a reload removed.
    fn keep(&mut self, inputs: &Inputs) {
        let configured = |name: &String| inputs.sources.iter().any(|s| &s.name == name);
        self.refused.retain(|name, _| configured(name));
        self.over_budget.retain(|name, _| configured(name));
        self.down.retain(|name, _| configured(name));
    }
}

/// Why the loop refused a full report, for its log line.
fn refusal(reason: Reason) -> String {
    match reason {
        Reason::TooManyServers => format!(
            "counts from more than {MAX_SERVERS} servers: the further servers' counts are dropped"
        ),
        Reason::TooManyHeld => format!(
            "connection events held for ordering reached {MAX_KEPT_TOTAL} over all servers: \
             a server whose event finds no room gives up its order (events still in its gaps \
             are lost, and drift shows them)"
        ),
        _ => "a report whose counts do not sum exactly in 64 bits was refused".to_owned(),
    }
}

/// Logs a refusal of source `name`'s input, rate-limited.
fn log_refusal(logs: &mut BTreeMap<String, ErrorLog<Reason>>, name: &str, reason: Reason) {
    let fields = Fields {
        source: Some(name),
        reason: Some(reason.as_str()),
        ..Fields::default()
    };
    let log = logs.entry(name.to_owned()).or_default();
    log.failure(reason, Instant::now())
        .log(fields, &refusal(reason));
}

impl SyncLoop {
    /// Applies one update; returns whether it should be published before the next tick.
    fn apply(&mut self, update: Update, logs: &mut Logs) -> bool {
        // A source a reload stopped may still have sent something: it no longer counts.
        let Some(source) = self.ids.iter().position(|&id| id == update.source) else {
            return false;
        };
        // New counts of this exporter's scope show as soon as they arrive, not on the next
        // tick; losing data shows at once too: unknown must not linger as a number.
        let prompt = match &update.event {
            Event::Counts(counts) => self.inputs.sources[source].in_scope(&counts.server_id),
            Event::Down(_) | Event::Forget(_) => true,
            _ => false,
        };
        let applied = self
            .inputs
            .apply(source, update.event, Instant::now(), SystemTime::now());
        if let Some(input) = self.inputs.sources.get(source) {
            for _ in 0..applied.dropped {
                self.telemetry.source_error(&input.name, Reason::NoReport);
            }
            if let Some(reason) = applied.refused {
                self.telemetry.source_error(&input.name, reason);
                log_refusal(&mut logs.refused, &input.name, reason);
            }
            for _ in 0..applied.over_budget {
                self.telemetry
                    .source_error(&input.name, Reason::TooManyHeld);
            }
            if applied.over_budget > 0 {
                log_refusal(&mut logs.over_budget, &input.name, Reason::TooManyHeld);
            }
        }
        // A correction publishes with its counter, so the two never disagree on a scrape.
        applied.events > 0 || applied.corrected || prompt
    }

    /// Runs the sources of a reloaded config; returns whom to tell once it is published.
    fn relayout(&mut self, layout: Layout) -> tokio::sync::oneshot::Sender<()> {
        let old = self
            .ids
            .drain(..)
            .zip(self.inputs.sources.drain(..))
            .collect();
        (self.ids, self.inputs.sources) = relayout(old, layout.sources).into_iter().unzip();
        self.environment = layout.environment;
        self.inputs.stale_after = layout.sync.stale_after;
        self.sync = layout.sync;
        layout.taken
    }

    fn publish(&mut self, logs: &mut Logs) {
        let started = std::time::Instant::now();
        let now = Instant::now();
        self.inputs.prune(now);
        let next = reconcile(&self.environment, &self.inputs, now);
        self.telemetry.observe_sync(started.elapsed());
        let previous = self.publish.borrow().clone();
        log_health_changes(&previous, &next, &self.telemetry, &mut logs.down);
        self.publish.send_replace(Arc::new(next));
    }
}

/// Logs the sources whose health changed between two snapshots. Sources count their own
/// failures; the faults only reconcile can see, stale reports and a foreign server id, are
/// counted here.
fn log_health_changes(
    previous: &Snapshot,
    next: &Snapshot,
    telemetry: &Telemetry,
    down: &mut BTreeMap<String, ErrorLog<Reason>>,
) {
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
        let down = down.entry(status.name.clone()).or_default();
        match &status.health {
            Health::Up => {
                down.recovered();
                tracing::info!(source, "source is up: exporting its counts")
            }
            Health::Pending => {}
            Health::Down(reason) => {
                if *reason == Reason::Stale {
                    telemetry.source_error(source, Reason::Stale);
                }
                let fields = Fields {
                    source: Some(source),
                    reason: Some(reason.as_str()),
                    ..Fields::default()
                };
                down.failure(*reason, Instant::now()).log(
                    fields,
                    &"source is down: its connection series are withdrawn",
                );
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

    #[test]
    fn prompt_publishes_coalesce_and_keep_their_distance() {
        let start = Instant::now();
        let ms = |n| Duration::from_millis(n);
        let mut prompt = Prompt {
            due: None,
            last: start,
        };
        // Long after the last publish: after the coalescing delay.
        prompt.arrived(start + ms(500));
        assert_eq!(prompt.due, Some(start + ms(520)));
        prompt.arrived(start + ms(510));
        assert_eq!(
            prompt.due,
            Some(start + ms(520)),
            "a burst does not postpone it"
        );
        // Right after a publish: not before the gap has passed.
        prompt.published(start + ms(520));
        prompt.arrived(start + ms(530));
        assert_eq!(prompt.due, Some(start + ms(620)));
    }
}
