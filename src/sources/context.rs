//! What every source type is given and must provide: the [`SourceType`] contract, the
//! [`SourceContext`] a running source works with, and the [`Outbox`] to the sync loop.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::problems::At;
use crate::config::sync::SyncConfig;
use crate::log_limit::{ErrorLog, Fields};
use crate::sources::Scope;
use crate::telemetry::Telemetry;
use crate::update::{Event, Reason, Silence, SourceId, Update};

/// A source type's keys in the configuration: implemented in its `config.rs`.
pub(crate) trait SourceKeys: Sized {
    /// The `type` tag in the configuration.
    const TYPE: &'static str;
    /// The type's keys as written.
    type Raw: DeserializeOwned;

    /// Checks the keys, adding every problem at its path, and returns the typed config
    /// (with placeholders where a value was wrong).
    fn validate(raw: Self::Raw, sync: &SyncConfig, at: &mut At<'_>) -> Self;

    /// Lines for `--check-config`'s summary; secrets by origin only.
    fn describe(&self, out: &mut String);

    /// What the source reads, for the landing page: never a secret.
    fn endpoint(&self) -> String;
}

/// A URL as shown to people: without user info, query or fragment, where secrets hide.
pub(crate) fn shown_url(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// One type of source: its keys, the reasons it can fail with, and how it runs.
pub(crate) trait SourceType: SourceKeys {
    /// The reasons this type can fail with; its error counters start at 0 with these.
    const REASONS: &'static [Reason];
    /// What the source's silence means (see [`Silence`]).
    const SILENCE: Silence;

    /// Runs the source until `cx.cancel` fires.
    fn run(self, cx: SourceContext) -> impl Future<Output = ()> + Send;
}

/// Where a source task sends its updates, tagged with its id.
#[derive(Debug, Clone)]
pub struct Outbox {
    source: SourceId,
    tx: mpsc::Sender<Update>,
}

impl Outbox {
    pub fn new(source: SourceId, tx: mpsc::Sender<Update>) -> Outbox {
        Outbox { source, tx }
    }

    /// Sends an event; if the loop is gone the exporter is shutting down, so that is fine.
    pub async fn send(&self, event: Event) {
        let _ = self
            .tx
            .send(Update {
                source: self.source,
                event,
            })
            .await;
    }
}

/// What a running source works with.
pub struct SourceContext {
    /// The source's name: the `source` label.
    pub name: String,
    pub outbox: Outbox,
    pub telemetry: Arc<Telemetry>,
    pub cancel: CancellationToken,
    pub sync: SyncConfig,
    /// Which servers' counts the reconcile step exports from this source: a source may
    /// read only the id of the others (the reconcile step keeps them by id only).
    pub scope: Scope,
    /// The server that counts without a server id belong to.
    pub own_server_id: String,
    log: ErrorLog<Reason>,
}

impl SourceContext {
    pub fn new(
        name: String,
        outbox: Outbox,
        telemetry: Arc<Telemetry>,
        cancel: CancellationToken,
        sync: SyncConfig,
        scope: Scope,
        own_server_id: String,
    ) -> SourceContext {
        SourceContext {
            name,
            outbox,
            telemetry,
            cancel,
            sync,
            scope,
            own_server_id,
            log: ErrorLog::default(),
        }
    }

    /// Whether counts of the server `server_id` (`None`: the own server) are exported: the
    /// rule the reconcile step applies to what the source sends.
    pub fn in_scope(&self, server_id: Option<&str>) -> bool {
        self.scope.includes_reported(server_id, &self.own_server_id)
    }

    pub async fn send(&self, event: Event) {
        self.outbox.send(event).await;
    }

    /// A context for a restarted run of the same source: same outbox, fresh log.
    fn renewed(&self) -> SourceContext {
        SourceContext::new(
            self.name.clone(),
            self.outbox.clone(),
            self.telemetry.clone(),
            self.cancel.clone(),
            self.sync,
            self.scope.clone(),
            self.own_server_id.clone(),
        )
    }

    /// The source lost the app: the failure is counted and logged (rate-limited), and
    /// everything the source reported is withdrawn.
    pub async fn failed(
        &mut self,
        reason: Reason,
        endpoint: &str,
        error: &(dyn fmt::Display + Sync),
        retry_in: Option<Duration>,
    ) {
        self.count_and_log(reason, endpoint, error, retry_in);
        self.send(Event::Down(reason)).await;
    }

    /// An attempt failed but the last good counts stand (e.g. a half-written report
    /// file): the failure is counted and logged (rate-limited).
    pub fn refused(&mut self, reason: Reason, endpoint: &str, error: &dyn fmt::Display) {
        self.count_and_log(reason, endpoint, error, None);
    }

    fn count_and_log(
        &mut self,
        reason: Reason,
        endpoint: &str,
        error: &dyn fmt::Display,
        retry_in: Option<Duration>,
    ) {
        self.telemetry.source_error(&self.name, reason);
        let fields = Fields {
            source: Some(&self.name),
            reason: Some(reason.as_str()),
            endpoint: Some(endpoint),
            retry_in,
        };
        self.log.failure(reason, Instant::now()).log(fields, error);
    }

    /// A success: the next failure is news again. Returns whether the source was failing.
    pub fn recovered(&mut self) -> bool {
        self.log.recovered()
    }

    /// Waits `delay`; false when the source is cancelled meanwhile.
    pub async fn sleep(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

/// The first restart of a panicked source waits this long, doubling up to [`RESTART_MAX`].
const RESTART_INITIAL: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);

/// Runs a source's task (`start` makes one) until `cx.cancel` fires. A task that panics is
/// a bug, but never leaves the source dead: the panic is counted (`reason="internal"`),
/// logged once, the source's counts withdrawn, and the task restarted after a backoff.
pub(crate) async fn supervise<F, Fut>(mut cx: SourceContext, what: &str, start: F)
where
    F: Fn(SourceContext) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Backoff::new(RESTART_INITIAL, RESTART_MAX);
    loop {
        let started = Instant::now();
        let panic = match tokio::spawn(start(cx.renewed())).await {
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            // Finished (cancelled), or the runtime is shutting down.
            Ok(()) | Err(_) => return,
        };
        if cx.cancel.is_cancelled() {
            return;
        }
        if started.elapsed() > RESTART_MAX {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        let error = format!("bug: the source's task panicked ({panic}); restarting it");
        cx.failed(Reason::Internal, what, &error, Some(delay)).await;
        if !cx.sleep(delay).await {
            return;
        }
    }
}

/// The message a panic was raised with.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "no message".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_source_is_counted_and_restarted_never_left_dead() {
        let telemetry = Arc::new(Telemetry::new([("s", &[Reason::Internal][..])]));
        let (tx, mut rx) = mpsc::channel(8);
        let sync = SyncConfig {
            interval: Duration::from_secs(1),
            stale_after: Duration::from_secs(5),
        };
        let cx = SourceContext::new(
            "s".into(),
            Outbox::new(crate::update::SourceId(0), tx),
            telemetry.clone(),
            CancellationToken::new(),
            sync,
            Scope::Cluster,
            "this-host".into(),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        supervise(cx, "test", move |cx| {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if run == 0 {
                    panic!("boom");
                }
                cx.send(Event::Connected).await;
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "restarted once");
        assert_eq!(
            rx.recv().await.unwrap().event,
            Event::Down(Reason::Internal)
        );
        assert_eq!(rx.recv().await.unwrap().event, Event::Connected);
        let mut text = String::new();
        telemetry.encode(&mut text);
        assert!(
            text.contains(
                r#"socketio_exporter_source_errors_total{reason="internal",source="s"} 1"#
            ),
            "{text}"
        );
    }
}
