//! Watching a directory with inotify (debounced): a report_file source's directory, and the
//! config file's directory for `--config.watch`.

use std::path::Path;
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

/// Watches while it lives.
pub(crate) type Watcher = Debouncer<RecommendedWatcher, RecommendedCache>;

/// Watches `directory`: any change in it, `debounce` after the last one, wakes `wake`.
/// `None` when it cannot be watched (no such directory, no inotify).
pub(crate) fn directory(
    directory: &Path,
    debounce: Duration,
    wake: mpsc::Sender<()>,
) -> Option<Watcher> {
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        if result.is_ok() {
            // A full channel already holds a wake-up.
            let _ = wake.try_send(());
        }
    })
    .ok()?;
    debouncer
        .watch(directory, RecursiveMode::NonRecursive)
        .ok()?;
    Some(debouncer)
}
