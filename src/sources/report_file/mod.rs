//! Source `report_file`: JSON reports that the app writes to a shared volume, one file or a
//! directory of files (one per server).
//!
//! The directory is watched with inotify (debounced) for prompt updates and re-scanned every
//! sync interval as well, so atomic write-then-rename, deletion and re-creation of the file or
//! of the directory, and filesystems without inotify all work. A file that cannot be read
//! as a report never becomes truth: the last good report stays until it is stale.

mod config;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

pub(crate) use self::config::Config;
use super::context::{SourceContext, SourceType};
use super::format;
use crate::fs_watch::{self, Watcher};
use crate::update::{Event, Reason, ServerCounts, Silence};

/// Files larger than this are not reports.
const MAX_FILE_BYTES: u64 = 16 << 20;
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What was last read from one file, to send a report only when the file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    modified: Option<SystemTime>,
    len: u64,
    /// The server id its report was attributed to.
    server_id: Option<String>,
}

impl SourceType for Config {
    const REASONS: &'static [Reason] = &[
        Reason::Missing,
        Reason::TooLarge,
        Reason::InvalidJson,
        Reason::InvalidReport,
        Reason::Stale,
        Reason::ServerIdNotSeen,
    ];
    const SILENCE: Silence = Silence::Stale(Reason::Stale);
    async fn run(self, cx: SourceContext) {
        let (directory, single) = match self {
            Config::File(path) => (
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                Some(path),
            ),
            Config::Directory(path) => (path, None),
        };
        let rescan = cx.sync.interval;
        let cancel = cx.cancel.clone();
        let mut source = ReportFiles {
            single,
            directory,
            cx,
            seen: BTreeMap::new(),
            missing_reported: false,
        };
        source.cx.send(Event::Connected).await;

        let (wake_tx, mut wake) = mpsc::channel::<()>(1);
        let mut watcher: Option<Watcher> = None;
        let mut tick = tokio::time::interval(rescan);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
                Some(()) = wake.recv() => {}
            }
            // (Re)watch the directory: it may have been created or replaced since.
            if watcher.is_none() {
                watcher = fs_watch::directory(&source.directory, DEBOUNCE, wake_tx.clone());
            }
            if !source.directory.is_dir() {
                watcher = None;
            }
            source.scan().await;
        }
    }
}

struct ReportFiles {
    single: Option<PathBuf>,
    directory: PathBuf,
    cx: SourceContext,
    seen: BTreeMap<PathBuf, Seen>,
    missing_reported: bool,
}

impl ReportFiles {
    async fn scan(&mut self) {
        let files = match &self.single {
            Some(file) => vec![file.clone()],
            None => list_reports(&self.directory).await,
        };
        // Files that went away: their servers' reports are withdrawn.
        let gone: Vec<PathBuf> = self
            .seen
            .keys()
            .filter(|p| !files.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(seen) = self.seen.remove(&path) {
                self.cx.send(Event::Forget(seen.server_id)).await;
            }
        }
        for path in files {
            self.read(&path).await;
        }
    }

    async fn read(&mut self, path: &Path) {
        let metadata = match tokio::fs::metadata(path).await {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(seen) = self.seen.remove(path) {
                    self.cx.send(Event::Forget(seen.server_id)).await;
                }
                if self.single.is_some() && !self.missing_reported {
                    self.missing_reported = true;
                    self.fail(
                        path,
                        Reason::Missing,
                        "the report file does not exist".into(),
                    );
                }
                return;
            }
            Err(e) => {
                self.fail(path, Reason::Missing, format!("cannot read: {e}"));
                return;
            }
        };
        let modified = metadata.modified().ok();
        let unchanged = self
            .seen
            .get(path)
            .is_some_and(|s| s.modified == modified && s.len == metadata.len());
        if unchanged {
            return;
        }
        if metadata.len() > MAX_FILE_BYTES {
            self.fail(
                path,
                Reason::TooLarge,
                format!("{} bytes, at most {MAX_FILE_BYTES}", metadata.len()),
            );
            return;
        }
        let body = match tokio::fs::read(path).await {
            Ok(body) => body,
            Err(e) => {
                self.fail(path, Reason::Missing, format!("cannot read: {e}"));
                return;
            }
        };
        let version = Seen {
            modified,
            len: metadata.len(),
            server_id: None,
        };
        match format::parse_report(&body, SystemTime::now(), modified) {
            Ok(report) => self.accept(path, version, report).await,
            Err(error) => {
                // Remember this version so a half-written file is not re-reported until it
                // changes again; the last good report stays in place meanwhile.
                let server_id = self.seen.get(path).and_then(|s| s.server_id.clone());
                self.seen.insert(
                    path.to_owned(),
                    Seen {
                        server_id,
                        ..version
                    },
                );
                self.fail(path, error.reason(), error.to_string());
            }
        }
    }

    /// Sends a good report and remembers the version of the file it came from.
    async fn accept(&mut self, path: &Path, version: Seen, mut report: ServerCounts) {
        if self.single.is_none() && report.server_id.is_none() {
            // In a directory, a report without a server id is named by its file.
            report.server_id = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        let server_id = report.server_id.clone();
        self.seen.insert(
            path.to_owned(),
            Seen {
                server_id,
                ..version
            },
        );
        let recovered = self.cx.recovered();
        if recovered || self.missing_reported {
            tracing::info!(source = self.cx.name.as_str(), file = %path.display(), "reading reports again");
        }
        self.missing_reported = false;
        self.cx.send(Event::Counts(report)).await;
    }

    /// Counts the failure and logs it, rate-limited; the last good report stays.
    fn fail(&mut self, path: &Path, reason: Reason, detail: String) {
        let error = format!("report file: {detail}; keeping the last good report");
        self.cx.refused(reason, &path.display().to_string(), &error);
    }
}

/// The `*.json` files of a directory, skipping hidden and temporary files (`.x.json`,
/// `x.json.tmp`) that atomic writers leave while writing.
async fn list_reports(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(directory).await else {
        return files;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".json") {
            files.push(path);
        }
    }
    files.sort();
    files
}
