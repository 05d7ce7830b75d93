//! The sync loop: applies source updates as they arrive, and every `interval` reconciles
//! and publishes a new snapshot; connection events, corrections and lost sources are
//! published within milliseconds. Logs each change of a source's health once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::{Inputs, MAX_SERVERS, reconcile};
use crate::config::sync::SyncConfig;
use crate::log_limit::{ErrorLog, Fields};
use crate::readiness::Readiness;
use crate::snapshot::{Health, Snapshot};
use crate::telemetry::Telemetry;
use crate::update::{Event, Reason, Update};

/// Connection events, corrections and lost sources are published this soon, bursts
/// coalesced, without waiting for a tick.
const EVENT_PUBLISH_DELAY: Duration = Duration::from_millis(20);

/// What the loop owns.
pub(crate) struct SyncLoop {
    /// Value of the `environment` label.
    pub environment: String,
    pub inputs: Inputs,
    pub sync: SyncConfig,
    pub updates: mpsc::Receiver<Update>,
    pub publish: watch::Sender<Arc<Snapshot>>,
    pub telemetry: Arc<Telemetry>,
    /// Set while the loop runs.
    pub ready: Readiness,
}

/// Runs the loop until `cancel` fires.
pub(crate) async fn run(mut sync: SyncLoop, cancel: CancellationToken) {
    let _ready = sync.ready.while_alive();
    let mut tick = tokio::time::interval(sync.sync.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut publish_at: Option<Instant> = None;
    let mut logs = Logs::new(sync.inputs.sources.len());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(update) = sync.updates.recv() => {
                if sync.apply(update, &mut logs) && publish_at.is_none() {
                    publish_at = Some(Instant::now() + EVENT_PUBLISH_DELAY);
                }
            }
            _ = sleep_until(publish_at.unwrap_or_else(Instant::now)), if publish_at.is_some() => {
                publish_at = None;
                sync.publish(&mut logs);
            }
            _ = tick.tick() => {
                publish_at = None;
                sync.publish(&mut logs);
            }
        }
    }
}

/// Per source, what the loop logs: refused reports and "source is down" warnings, each
/// once and then as rate-limited reminders, so a flapping source stays quiet.
struct Logs {
    refused: Vec<ErrorLog<Reason>>,
    down: Vec<ErrorLog<Reason>>,
}

impl Logs {
    fn new(sources: usize) -> Logs {
        Logs {
            refused: (0..sources).map(|_| ErrorLog::default()).collect(),
            down: (0..sources).map(|_| ErrorLog::default()).collect(),
        }
    }
}

/// Why the loop refused a full report, for its log line.
fn refusal(reason: Reason) -> String {
    match reason {
        Reason::TooManyServers => format!(
            "counts from more than {MAX_SERVERS} servers: the further servers' counts are dropped"
        ),
        _ => "a report whose counts do not sum exactly in 64 bits was refused".to_owned(),
    }
}

impl SyncLoop {
    /// Applies one update; returns whether it should be published before the next tick.
    fn apply(&mut self, update: Update, logs: &mut Logs) -> bool {
        let source = update.source;
        // Losing data shows at once too: unknown must not linger as a number.
        let withdrawn = matches!(update.event, Event::Down(_) | Event::Forget(_));
        let applied = self
            .inputs
            .apply(source, update.event, Instant::now(), SystemTime::now());
        if let Some(input) = self.inputs.sources.get(source) {
            for _ in 0..applied.dropped {
                self.telemetry.source_error(&input.name, Reason::NoReport);
            }
            if let (Some(reason), Some(log)) = (applied.refused, logs.refused.get_mut(source)) {
                self.telemetry.source_error(&input.name, reason);
                let fields = Fields {
                    source: Some(&input.name),
                    reason: Some(reason.as_str()),
                    ..Fields::default()
                };
                log.failure(reason, Instant::now())
                    .log(fields, &refusal(reason));
            }
        }
        // A correction publishes with its counter, so the two never disagree on a scrape.
        applied.events > 0 || applied.corrected || withdrawn
    }

    fn publish(&mut self, logs: &mut Logs) {
        let started = std::time::Instant::now();
        let now = Instant::now();
        let stale_after = self.inputs.stale_after;
        for source in &mut self.inputs.sources {
            source.prune(now, stale_after);
        }
        let next = reconcile(&self.environment, &self.inputs, now);
        self.telemetry.observe_sync(started.elapsed());
        let previous = self.publish.borrow().clone();
        log_health_changes(&previous, &next, &self.telemetry, &mut logs.down);
        self.publish.send_replace(Arc::new(next));
    }
}

/// Logs the sources whose health changed between two snapshots. Sources count their own
/// failures; the one fault only reconcile can see, a foreign server id, is counted here.
fn log_health_changes(
    previous: &Snapshot,
    next: &Snapshot,
    telemetry: &Telemetry,
    down: &mut [ErrorLog<Reason>],
) {
    for (status, down) in next.sources.iter().zip(down) {
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
            Health::Up => {
                down.recovered();
                tracing::info!(source, "source is up: exporting its counts")
            }
            Health::Pending => {}
            Health::Down(reason) => {
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
