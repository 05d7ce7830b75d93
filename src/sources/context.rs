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

use crate::config::problems::At;
use crate::config::sync::SyncConfig;
use crate::log_limit::{ErrorLog, Fields};
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
    log: ErrorLog<Reason>,
}

impl SourceContext {
    pub fn new(
        name: String,
        outbox: Outbox,
        telemetry: Arc<Telemetry>,
        cancel: CancellationToken,
        sync: SyncConfig,
    ) -> SourceContext {
        SourceContext {
            name,
            outbox,
            telemetry,
            cancel,
            sync,
            log: ErrorLog::default(),
        }
    }

    pub async fn send(&self, event: Event) {
        self.outbox.send(event).await;
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
