//! Wiring: sources → reconcile loop → snapshot → HTTP server, and the shutdown sequence.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, SourceKind};
use crate::reconcile::{self, Inputs, SourceInput};
use crate::server::{self, State};
use crate::sinks::otlp::OtlpSink;
use crate::sources::push::PushEndpoint;
use crate::sources::{self, Outbox, Reason};
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

    let telemetry = Telemetry::new(
        config
            .sources
            .iter()
            .map(|s| (s.name.as_str(), Reason::for_type(&s.kind))),
    );
    let telemetry = Arc::new(match &config.otlp {
        Some(_) => telemetry.with_otlp(),
        None => telemetry,
    });
    // Every source's namespaces fit, the overflow value included.
    let series_limit: usize = config.sources.iter().map(|s| s.namespaces.max + 1).sum();
    let inputs = Inputs {
        sources: config.sources.iter().map(SourceInput::new).collect(),
        stale_after: config.sync.stale_after,
    };
    let first = reconcile::reconcile(&config.environment, &inputs, tokio::time::Instant::now());
    let (publish, snapshot) = watch::channel(Arc::new(first));
    let (updates_tx, updates) = mpsc::channel(UPDATE_QUEUE);
    let ready = Arc::new(AtomicBool::new(false));
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();

    let mut push = None;
    for (index, source) in config.sources.into_iter().enumerate() {
        let outbox = Outbox::new(index, updates_tx.clone());
        if let SourceKind::Push(push_config) = &source.kind {
            push = Some(Arc::new(PushEndpoint {
                name: source.name.clone(),
                config: push_config.clone(),
                outbox: outbox.clone(),
                telemetry: telemetry.clone(),
            }));
        }
        tasks.spawn(sources::run(
            source,
            outbox,
            telemetry.clone(),
            config.sync,
            cancel.clone(),
        ));
    }
    drop(updates_tx);
    tasks.spawn(reconcile::run(
        config.environment,
        inputs,
        config.sync,
        updates,
        publish,
        telemetry.clone(),
        ready.clone(),
        cancel.clone(),
    ));
    let otlp = match &config.otlp {
        Some(otlp) => {
            let sink = OtlpSink::start(otlp, snapshot.clone(), telemetry.clone(), series_limit)?;
            tracing::info!(
                protocol = otlp.protocol.as_str(),
                endpoint = %otlp.endpoint,
                interval = ?otlp.interval,
                "otlp export on"
            );
            Some(sink)
        }
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

    signal().await?;
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
    Ok(())
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
