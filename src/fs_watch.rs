//! Watching a directory with inotify (debounced): a report_file source's directory, and the
//! config file's directory for `--config.watch`.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache, new_debouncer,
};
use tokio::sync::mpsc;

/// Watches while it lives.
pub(crate) type Watcher = Debouncer<RecommendedWatcher, RecommendedCache>;

/// Watches `directory`: any change in it, `debounce` after the last one, wakes `wake`, and the
/// names of the entries that changed go to `noticed`. `None` when it cannot be watched (no
/// such directory, no inotify).
pub(crate) fn directory(
    directory: &Path,
    debounce: Duration,
    wake: mpsc::Sender<()>,
    noticed: Option<Arc<Noticed>>,
) -> Option<Watcher> {
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        if let Ok(events) = result {
            if let Some(noticed) = &noticed {
                noticed.record(&events);
            }
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

/// The names of the entries inotify reported since they were last taken.
#[derive(Debug, Default)]
pub(crate) struct Noticed(Mutex<HashSet<OsString>>);

impl Noticed {
    /// Names kept between two takes; a burst beyond this is left to the reader's own pass.
    const MAX_NAMES: usize = 4096;

    /// The names noticed since the last take.
    pub(crate) fn take(&self) -> HashSet<OsString> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn record(&self, events: &[DebouncedEvent]) {
        let mut names = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = events.iter().flat_map(|e| &e.paths);
        for name in changed.filter_map(|path| path.file_name()) {
            if names.len() >= Self::MAX_NAMES {
                return;
            }
            names.insert(name.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[tokio::test]
    async fn the_names_of_changed_entries_are_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let (wake_tx, mut wake) = mpsc::channel(1);
        let noticed = Arc::new(Noticed::default());
        let _watcher = directory(
            dir.path(),
            Duration::from_millis(20),
            wake_tx,
            Some(Arc::clone(&noticed)),
        )
        .expect("inotify watches a temporary directory");
        std::fs::write(dir.path().join("pod-a.json.tmp"), b"{}").unwrap();
        std::fs::rename(
            dir.path().join("pod-a.json.tmp"),
            dir.path().join("pod-a.json"),
        )
        .unwrap();
        let woken = tokio::time::timeout(Duration::from_secs(10), wake.recv()).await;
        assert_eq!(woken, Ok(Some(())));
        let names = noticed.take();
        assert!(names.contains(OsStr::new("pod-a.json")), "{names:?}");
        assert!(noticed.take().is_empty(), "taken once");
    }
}
