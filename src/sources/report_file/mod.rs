//! Source `report_file`: JSON reports that the app writes to a shared volume, one file or a
//! directory of files (one per server).
//!
//! The directory is watched with inotify (debounced) for prompt updates and re-scanned every
//! sync interval as well, so atomic write-then-rename, deletion and re-creation of the file or
//! of the directory, and filesystems without inotify all work. The files inotify names are
//! stat'ed on the next pass whatever the size of the directory (see `scan`). A file that cannot be read
//! as a report never becomes truth: the last good report stays until it is stale.

mod config;
mod scan;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub(crate) use self::config::Config;
use self::scan::Found;
pub use self::scan::Scanner;
use super::context::{SourceContext, SourceType};
use crate::fs_watch::{self, Noticed, Watcher};
use crate::update::{Event, Reason, Silence};

const DEBOUNCE: Duration = Duration::from_millis(100);

impl SourceType for Config {
    const REASONS: &'static [Reason] = &[
        Reason::Missing,
        Reason::TooLarge,
        Reason::NotAFile,
        Reason::InvalidJson,
        Reason::InvalidReport,
        Reason::TooManyServers,
        Reason::Stale,
        Reason::ServerIdNotSeen,
        Reason::Internal,
    ];
    const SILENCE: Silence = Silence::Stale(Reason::Stale);
    async fn run(self, mut cx: SourceContext) {
        let mut scanner = Some(match self {
            Config::File(path) => Scanner::file(path),
            Config::Directory(path) => Scanner::directory(path),
        });
        let directory = scanner
            .as_ref()
            .map(|s| s.watched_directory().to_path_buf());
        let directory = directory.unwrap_or_default();
        let cancel = cx.cancel.clone();
        cx.send(Event::Connected).await;

        let (wake_tx, mut wake) = mpsc::channel::<()>(1);
        let noticed = Arc::new(Noticed::default());
        let mut watcher: Option<Watcher> = None;
        let mut tick = tokio::time::interval(cx.sync.interval);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
                Some(()) = wake.recv() => {}
            }
            // (Re)watch the directory: it may have been created or replaced since.
            if watcher.is_none() {
                let names = Some(Arc::clone(&noticed));
                watcher = fs_watch::directory(&directory, DEBOUNCE, wake_tx.clone(), names);
            }
            if !directory.is_dir() {
                watcher = None;
            }
            // Off the runtime thread: the scan stats files and may wait on a slow disk.
            let Some(mut owned) = scanner.take() else {
                return;
            };
            let changed = noticed.take();
            let (owned, found) = match tokio::task::spawn_blocking(move || {
                let found = owned.pass_noticing(&changed);
                (owned, found)
            })
            .await
            {
                Ok(done) => done,
                // A panic in the scan is a bug: let the source's supervisor restart it.
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            scanner = Some(owned);
            let single = scanner.as_ref().is_some_and(Scanner::is_single);
            deliver(&mut cx, found, single).await;
        }
    }
}

/// Sends what a pass found, and counts and logs (rate-limited) what it refused.
async fn deliver(cx: &mut SourceContext, found: Vec<Found>, single: bool) {
    for found in found {
        match found {
            Found::Counts(path, report) => {
                if cx.recovered() {
                    tracing::info!(source = cx.name.as_str(), file = %path.display(), "reading reports again");
                }
                cx.send(Event::Counts(report)).await;
            }
            Found::Forget(server_id) => cx.send(Event::Forget(server_id)).await,
            Found::Refused {
                path,
                reason,
                detail,
            } => {
                let keeping = if single || reason != Reason::NotAFile {
                    "; keeping the last good report"
                } else {
                    ""
                };
                let error = format!("report file: {detail}{keeping}");
                cx.refused(reason, &path.display().to_string(), &error);
            }
        }
    }
}
