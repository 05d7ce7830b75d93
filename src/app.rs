//! Wiring: sources → sync loop → snapshot → HTTP server and OTLP, and the shutdown sequence.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::config::otlp::OtlpConfig;
use crate::readiness::Readiness;
use crate::reconcile::{self, Inputs, SourceInput, SyncLoop};
use crate::server::{self, State};
use crate::sinks::otlp::OtlpSink;
use crate::snapshot::Snapshot;
use crate::sources::push::PushEndpoint;
use crate::sources::{Outbox, SourceContext, SourceKind};
use crate::telemetry::Telemetry;

/// Everything stops within this time after the first SIGTERM/SIGINT; a second signal
/// ends the process at once. Kubernetes waits 30 s by default before it kills a container.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// The final OTLP export gets the shutdown deadline minus this, so that the process still
/// exits within the deadline when the collector does not answer.
const OTLP_FLUSH_MARGIN: Duration = Duration::from_millis(500);
/// Room for source updates between ticks; a full channel makes sources wait, not grow memory.
const UPDATE_QUEUE: usize = 256;

/// Runs the exporter until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = server::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");

    let telemetry = telemetry(&config);
    let inputs = Inputs {
        sources: config.sources.iter().map(SourceInput::new).collect(),
        stale_after: config.sync.stale_after,
    };
    let first = reconcile::reconcile(&config.environment, &inputs, tokio::time::Instant::now());
    let (publish, snapshot) = watch::channel(Arc::new(first));
    let ready = Readiness::default();
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();

    let (push, updates) = start_sources(&config, &telemetry, &cancel, &tasks);
    let sync = SyncLoop {
        environment: config.environment.clone(),
        inputs,
        sync: config.sync,
        updates,
        publish,
        telemetry: telemetry.clone(),
        ready: ready.clone(),
    };
    let sync_loop = tasks.spawn(reconcile::run(sync, cancel.clone()));
    let otlp = match &config.otlp {
        Some(otlp) => Some(start_otlp(otlp, &config, snapshot.clone(), &telemetry)?),
        None => None,
    };
    let state = State {
        snapshot,
        telemetry,
        ready,
        push,
    };
    tasks.spawn(server::serve(
        listener,
        state,
        cancel.clone(),
        SHUTDOWN_DEADLINE,
    ));
    tasks.close();

    // The sync loop ends only when cancelled: if it stops before (a bug), the exporter
    // exits non-zero so that the orchestrator restarts it, rather than serve a frozen count.
    let stopped = tokio::select! {
        result = signal() => {
            result?;
            None
        }
        ended = sync_loop => Some(ended),
    };
    shutdown(cancel, tasks, otlp).await;
    match stopped {
        None => Ok(()),
        Some(Err(e)) if e.is_panic() => Err(anyhow::anyhow!(
            "the sync loop panicked ({}); exiting so that the exporter is restarted",
            crate::sources::panic_message(e.into_panic())
        )),
        Some(_) => Err(anyhow::anyhow!("the sync loop stopped unexpectedly")),
    }
}

/// The self-metrics: every source's error counters at 0, and the OTLP one when OTLP is on.
fn telemetry(config: &Config) -> Arc<Telemetry> {
    let telemetry = Telemetry::new(
        config
            .sources
            .iter()
            .map(|s| (s.name.as_str(), s.kind.reasons())),
    );
    Arc::new(match &config.otlp {
        Some(_) => telemetry.with_otlp(),
        None => telemetry,
    })
}

/// Spawns a task per source; returns the push source's endpoint, if there is one, and
/// where the sources' updates arrive.
fn start_sources(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) -> (
    Option<Arc<PushEndpoint>>,
    mpsc::Receiver<crate::update::Update>,
) {
    let (updates_tx, updates) = mpsc::channel(UPDATE_QUEUE);
    let mut push = None;
    for (index, source) in config.sources.iter().cloned().enumerate() {
        let outbox = Outbox::new(index, updates_tx.clone());
        if let SourceKind::Push(push_config) = &source.kind {
            push = Some(Arc::new(PushEndpoint {
                name: source.name.clone(),
                config: push_config.clone(),
                outbox: outbox.clone(),
                telemetry: telemetry.clone(),
            }));
        }
        let cx = SourceContext::new(
            source.name.clone(),
            outbox,
            telemetry.clone(),
            cancel.clone(),
            config.sync,
        );
        tasks.spawn(source.run(cx));
    }
    (push, updates)
}

fn start_otlp(
    otlp: &OtlpConfig,
    config: &Config,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    telemetry: &Arc<Telemetry>,
) -> anyhow::Result<OtlpSink> {
    // Every source's namespaces fit, the overflow value included.
    let series_limit: usize = config.sources.iter().map(|s| s.namespaces.max + 1).sum();
    let sink = OtlpSink::start(otlp, snapshot, telemetry.clone(), series_limit)?;
    tracing::info!(
        protocol = otlp.protocol.as_str(),
        endpoint = %otlp.endpoint,
        interval = ?otlp.interval,
        "otlp export on"
    );
    Ok(sink)
}

/// Stops the sources, the loop and the server, and makes the final OTLP export, all
/// within [`SHUTDOWN_DEADLINE`]; a second signal ends it at once.
async fn shutdown(cancel: CancellationToken, tasks: TaskTracker, otlp: Option<OtlpSink>) {
    tracing::info!("shutting down");
    cancel.cancel();
    // The final OTLP export carries the snapshot as it is now, while the server drains.
    let flush = async {
        if let Some(otlp) = otlp {
            otlp.shutdown(SHUTDOWN_DEADLINE - OTLP_FLUSH_MARGIN).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(tasks.wait(), flush) } => {}
        _ = tokio::time::sleep(SHUTDOWN_DEADLINE) => {
            tracing::warn!("shutdown took longer than {SHUTDOWN_DEADLINE:?}; exiting anyway");
        }
        _ = signal() => tracing::warn!("second signal: exiting now"),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        result = tokio::signal::ctrl_c() => result?,
    }
    Ok(())
}
