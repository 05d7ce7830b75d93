//! Wiring: sources → sync loop → snapshot → HTTP server and OTLP, the reloader, and the
//! shutdown sequence.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::Cli;
use crate::config::Config;
use crate::readiness::Readiness;
use crate::reconcile::{self, Inputs, SourceInput, SyncLoop};
use crate::reload::{self, Reloader, Sources};
use crate::server::{Listeners, State};
use crate::sinks::otlp::OtlpSink;
use crate::sources::SourceKind;
use crate::telemetry::Telemetry;
use crate::update::SourceId;
use crate::web::{Web, landing};

/// Everything stops within this time after the first SIGTERM/SIGINT; a second signal
/// ends the process at once. Kubernetes waits 30 s by default before it kills a container.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// The final OTLP export gets the shutdown deadline minus this, so that the process still
/// exits within the deadline when the collector does not answer.
const OTLP_FLUSH_MARGIN: Duration = Duration::from_millis(500);
/// Room for source updates between ticks; a full channel makes sources wait, not grow memory.
const UPDATE_QUEUE: usize = 256;

/// Runs the exporter until a shutdown signal; `cli` says how the config may be reloaded.
pub async fn run(config: Config, cli: &Cli) -> anyhow::Result<()> {
    let web = Arc::new(match &config.web_config_file {
        Some(path) => Web::load(path)?,
        None => Web::open(),
    });
    let listeners = Listeners::bind(config.listen, push_listen(&config), web.is_tls()).await?;

    let telemetry = telemetry(&config);
    let inputs = Inputs::new(
        config.sources.iter().map(SourceInput::new).collect(),
        config.sync.stale_after,
    );
    let first = reconcile::reconcile(&config.environment, &inputs, tokio::time::Instant::now());
    let (publish, snapshot) = watch::channel(Arc::new(first));
    let ready = Readiness::default();
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();

    let (updates_tx, updates) = mpsc::channel(UPDATE_QUEUE);
    let (mut sources, push) =
        Sources::new(updates_tx, telemetry.clone(), cancel.clone(), tasks.clone());
    let ids = start_sources(&config, &mut sources);
    let (layouts_tx, layouts) = mpsc::channel(1);
    let sync = SyncLoop {
        environment: config.environment.clone(),
        inputs,
        ids,
        sync: config.sync,
        updates,
        layouts,
        publish,
        telemetry: telemetry.clone(),
        ready: ready.clone(),
    };
    let sync_loop = tasks.spawn(reconcile::run(sync, cancel.clone()));
    let otlp = reload::start_otlp(&config, snapshot.clone(), &telemetry)?;
    let (landing_tx, landing) = watch::channel(landing::page(&config));
    let running = reload::Running {
        config,
        sources,
        otlp,
        layouts: layouts_tx,
        snapshot: snapshot.clone(),
        telemetry: telemetry.clone(),
        landing: landing_tx,
    };
    let (mut reloader, reload) = Reloader::new(reload::Options::from(cli), running)?;
    let quit = CancellationToken::new();
    let state = State {
        snapshot,
        telemetry,
        ready,
        push,
        reload,
        quit: cli.web_enable_lifecycle.then(|| quit.clone()),
        web,
        scrape: Arc::default(),
        landing,
    };
    listeners.spawn(state, &cancel, &tasks, SHUTDOWN_DEADLINE);
    tasks.close();

    // The sync loop ends only when cancelled: if it stops before (a bug), the exporter
    // exits non-zero so that the orchestrator restarts it, rather than serve a frozen count.
    let stopped = tokio::select! {
        result = signal() => {
            result?;
            None
        }
        () = quit.cancelled() => None,
        () = reloader.run() => None,
        ended = sync_loop => Some(ended),
    };
    shutdown(cancel, tasks, reloader.into_otlp()).await;
    match stopped {
        None => Ok(()),
        Some(ended) => Err(sync_loop_ended(ended)),
    }
}

/// Why the sync loop ended before it was cancelled (a bug): the exporter exits with it.
fn sync_loop_ended(ended: Result<(), tokio::task::JoinError>) -> anyhow::Error {
    match ended {
        Err(e) if e.is_panic() => anyhow::anyhow!(
            "the sync loop panicked ({}); exiting so that the exporter is restarted",
            crate::sources::panic_message(e.into_panic())
        ),
        _ => anyhow::anyhow!("the sync loop stopped unexpectedly"),
    }
}

/// The push source's own listen address, when it has one.
fn push_listen(config: &Config) -> Option<SocketAddr> {
    config.sources.iter().find_map(|source| match &source.kind {
        SourceKind::Push(push) => push.listen_address,
        _ => None,
    })
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

/// Spawns a task per source; returns their ids, in config order.
fn start_sources(config: &Config, sources: &mut Sources) -> Vec<SourceId> {
    (config.sources.iter())
        .map(|source| {
            let id = sources.next_id();
            sources.start(id, source.clone(), config.sync);
            id
        })
        .collect()
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
