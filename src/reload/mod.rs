//! Config reload, as Prometheus does it: on SIGHUP, on `POST /-/reload` (with
//! `--web.enable-lifecycle`) and, with `--config.watch`, when the file changes (debounced).
//!
//! Validate, then swap. A config with any problem is refused whole: each problem is logged
//! once, the running config stays, and `socketio_exporter_config_last_reload_successful`
//! goes to 0. A valid one applies without a restart: sources run on, restart, stop or start
//! as [`sources::plan`] says; `environment` and `[sync]` go to the sync loop; the OTLP sink
//! restarts when its config changed. Only the listen address needs a restart.

mod sources;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

pub(crate) use self::sources::{PushSlot, Sources};
use crate::cli::Cli;
use crate::config::{Config, ConfigError};
use crate::fs_watch::{self, Watcher};
use crate::reconcile::{Layout, SourceInput};
use crate::sinks::otlp::{OtlpError, OtlpSink};
use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;
use crate::update::SourceId;
use crate::web::landing;

/// Changes to the config file are coalesced over this long: an editor's writes, or the
/// symlink swap of a Kubernetes ConfigMap volume.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(500);
/// An OTLP sink that a reload replaces gets this long for its final export.
const OTLP_RESTART_FLUSH: Duration = Duration::from_secs(2);

/// Where the config comes from, and what may ask for a reload.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub path: PathBuf,
    /// `--listen`: it overrides `listen.address` in every version of the file.
    pub listen: Option<SocketAddr>,
    /// `--config.watch`: reload when the file changes.
    pub watch: bool,
    /// `--web.enable-lifecycle`: `POST /-/reload` is allowed.
    pub lifecycle: bool,
}

impl From<&Cli> for Options {
    fn from(cli: &Cli) -> Options {
        Options {
            path: cli.config.clone(),
            listen: cli.listen,
            watch: cli.config_watch,
            lifecycle: cli.web_enable_lifecycle,
        }
    }
}

type Reply = oneshot::Sender<Result<(), String>>;

/// Asks for a reload and waits for its outcome: what `POST /-/reload` does.
#[derive(Debug, Clone)]
pub(crate) struct ReloadHandle(mpsc::Sender<Reply>);

impl ReloadHandle {
    pub(crate) async fn reload(&self) -> Result<(), String> {
        const STOPPING: &str = "the exporter is shutting down";
        let (reply, outcome) = oneshot::channel();
        self.0.send(reply).await.map_err(|_| STOPPING.to_owned())?;
        outcome.await.map_err(|_| STOPPING.to_owned())?
    }
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the otlp export: {0}")]
    Otlp(#[from] OtlpError),
}

/// What the config drives and a reload swaps.
pub(crate) struct Running {
    pub config: Config,
    pub sources: Sources,
    pub otlp: Option<OtlpSink>,
    /// Where the sync loop takes new layouts.
    pub layouts: mpsc::Sender<Layout>,
    /// For a new OTLP sink.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub telemetry: Arc<Telemetry>,
    /// The landing page, which lists the sources.
    pub landing: watch::Sender<Bytes>,
}

pub(crate) struct Reloader {
    options: Options,
    running: Running,
    /// The file as the last reload read it: a watched file that still says the same is
    /// not loaded again, nor are its problems logged again.
    text: Option<String>,
    requests: mpsc::Receiver<Reply>,
    hangup: Signal,
}

impl Reloader {
    /// Takes SIGHUP from now on; the handle is for `POST /-/reload`, when it is allowed.
    pub(crate) fn new(
        options: Options,
        running: Running,
    ) -> std::io::Result<(Reloader, Option<ReloadHandle>)> {
        let hangup = tokio::signal::unix::signal(SignalKind::hangup())?;
        let (handle, requests) = mpsc::channel(1);
        let handle = options.lifecycle.then_some(ReloadHandle(handle));
        let reloader = Reloader {
            text: std::fs::read_to_string(&options.path).ok(),
            options,
            running,
            requests,
            hangup,
        };
        Ok((reloader, handle))
    }

    /// Reloads whenever asked; never returns.
    pub(crate) async fn run(&mut self) {
        let (changed_tx, mut changed) = mpsc::channel(1);
        let _watcher: Option<Watcher> = match self.options.watch {
            true => self.watch(changed_tx),
            false => None,
        };
        loop {
            tokio::select! {
                Some(()) = self.hangup.recv() => {
                    let _ = self.reload("SIGHUP").await;
                }
                Some(reply) = self.requests.recv() => {
                    let _ = reply.send(self.reload("POST /-/reload").await);
                }
                Some(()) = changed.recv() => {
                    if self.file_changed() {
                        let _ = self.reload("config file changed").await;
                    }
                }
            }
        }
    }

    /// The OTLP sink, for the final export at shutdown.
    pub(crate) fn into_otlp(self) -> Option<OtlpSink> {
        self.running.otlp
    }

    fn watch(&self, changed: mpsc::Sender<()>) -> Option<Watcher> {
        let path = &self.options.path;
        // The directory, not the file: editors and ConfigMap volumes replace the file.
        let directory = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let watcher = fs_watch::directory(directory, WATCH_DEBOUNCE, changed, None);
        match &watcher {
            Some(_) => tracing::info!(file = %path.display(), "watching the config file"),
            None => tracing::warn!(
                file = %path.display(),
                "cannot watch the config file; reload with SIGHUP instead"
            ),
        }
        watcher
    }

    /// Whether the file says something else than at the last reload.
    fn file_changed(&mut self) -> bool {
        let text = std::fs::read_to_string(&self.options.path).ok();
        let changed = text.is_some() && text != self.text;
        self.text = text;
        changed
    }

    async fn reload(&mut self, trigger: &'static str) -> Result<(), String> {
        self.text = std::fs::read_to_string(&self.options.path).ok();
        let outcome = match Config::load_for(&self.options.path, self.options.listen) {
            Ok(next) => self.running.apply(next).await,
            Err(e) => Err(Refused::from(e)),
        };
        self.running.telemetry.config_loaded(outcome.is_ok());
        outcome.map_err(|refused| {
            log_refused(trigger, &refused);
            refused.to_string()
        })
    }
}

/// Each problem once, then what happens now.
fn log_refused(trigger: &str, refused: &Refused) {
    match refused {
        Refused::Config(ConfigError::Invalid { path, problems }) => {
            for problem in problems {
                tracing::error!(
                    trigger,
                    file = %path.display(),
                    key = problem.path,
                    "config reload refused: {problem}"
                );
            }
        }
        other => tracing::error!(trigger, "config reload refused: {other}"),
    }
    tracing::warn!(trigger, "the exporter keeps running its previous config");
}

impl Running {
    /// Swaps in a valid config: fails, changing nothing, only when a new OTLP sink cannot
    /// start.
    async fn apply(&mut self, mut next: Config) -> Result<(), Refused> {
        let otlp = self.next_otlp(&next)?;
        // The web config comes from the command line, not from the file.
        next.web_config_file = self.config.web_config_file.clone();
        if next.listen != self.config.listen {
            tracing::warn!(
                listening = %self.config.listen,
                configured = %next.listen,
                "listen.address changed: it takes a restart; the exporter keeps listening where it does"
            );
        }
        let plan = sources::plan(
            &self.sources.running(),
            next.sync != self.config.sync,
            &next.sources,
        );
        self.sources.stop(&plan.stop);
        self.telemetry.set_sources(
            next.sources
                .iter()
                .map(|s| (s.name.as_str(), s.kind.reasons())),
        );
        let ids: Vec<SourceId> = (plan.keep.iter())
            .map(|kept| kept.unwrap_or_else(|| self.sources.next_id()))
            .collect();
        let (taken, layout_taken) = oneshot::channel();
        let layout = Layout {
            environment: next.environment.clone(),
            sync: next.sync,
            sources: (ids.iter().zip(&next.sources))
                .map(|(id, source)| (*id, SourceInput::new(source)))
                .collect(),
            taken,
        };
        // New sources start once the loop runs the new layout; it is gone only at shutdown.
        if self.layouts.send(layout).await.is_err() || layout_taken.await.is_err() {
            return Ok(());
        }
        let started = plan.keep.iter().filter(|kept| kept.is_none()).count();
        for ((id, source), kept) in ids.iter().zip(&next.sources).zip(&plan.keep) {
            if kept.is_none() {
                self.sources.start(*id, source.clone(), next.sync);
            }
        }
        if let Some(otlp) = otlp {
            self.swap_otlp(otlp).await;
        }
        tracing::info!(
            unchanged = plan.keep.len() - started,
            started,
            stopped = plan.stop.len(),
            "config reloaded"
        );
        self.landing.send_replace(landing::page(&next));
        self.config = next;
        Ok(())
    }

    /// The OTLP sink for `next`, started, when it differs from the running one.
    fn next_otlp(&self, next: &Config) -> Result<Option<Option<OtlpSink>>, OtlpError> {
        if next.otlp == self.config.otlp && series_limit(next) == series_limit(&self.config) {
            return Ok(None);
        }
        start_otlp(next, self.snapshot.clone(), &self.telemetry).map(Some)
    }

    async fn swap_otlp(&mut self, otlp: Option<OtlpSink>) {
        self.telemetry.set_otlp(otlp.is_some());
        if let Some(old) = std::mem::replace(&mut self.otlp, otlp) {
            old.shutdown(OTLP_RESTART_FLUSH).await;
        }
    }
}

/// The OTLP sink, when `config` turns OTLP export on.
pub(crate) fn start_otlp(
    config: &Config,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    telemetry: &Arc<Telemetry>,
) -> Result<Option<OtlpSink>, OtlpError> {
    let Some(otlp) = &config.otlp else {
        return Ok(None);
    };
    let sink = OtlpSink::start(otlp, snapshot, telemetry.clone(), series_limit(config))?;
    tracing::info!(
        protocol = otlp.protocol.as_str(),
        endpoint = %otlp.endpoint,
        interval = ?otlp.interval,
        "otlp export on"
    );
    Ok(Some(sink))
}

/// Every source's namespaces fit in one OTLP export, the overflow value included.
fn series_limit(config: &Config) -> usize {
    config.sources.iter().map(|s| s.namespaces.max + 1).sum()
}
