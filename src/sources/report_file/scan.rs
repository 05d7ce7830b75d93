//! One pass over the report files, on a blocking thread (`spawn_blocking`), so that
//! `/metrics` never waits on a disk. The scanner remembers every file it has seen by name,
//! with its mtime and size, and re-reads only the files that changed.
//!
//! A pass lists the directory and stats the files that are new, the files inotify named
//! since the last pass, and up to [`AUDIT_BUDGET`] others in turn. A directory of up to that
//! many files, which is every directory within the 1 024-server cap, is thus stat'ed whole
//! every pass: that also catches what inotify cannot see, a symlink's target changing
//! elsewhere or a writer on another host of a network filesystem. A larger directory costs a
//! listing and about [`AUDIT_BUDGET`] stats a pass, and each of its files is checked at least
//! every ⌈files / [`AUDIT_BUDGET`]⌉ passes.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::regular_file::{self, ReadError};
use crate::sources::format;
use crate::update::{Reason, ServerCounts};

/// Files larger than this are not reports.
pub(super) const MAX_FILE_BYTES: u64 = 16 << 20;

/// How many known files a pass stats besides the new ones and those inotify named. A `stat`
/// costs about 3 µs on the machine of the README's figures, so 4 096 of them about 12 ms.
const AUDIT_BUDGET: usize = 4096;

/// What a pass found, for the source to send and log.
#[derive(Debug)]
pub enum Found {
    /// A new or changed file holds a good report.
    Counts(PathBuf, ServerCounts),
    /// A file that held a report went away (or stopped being a regular file).
    Forget(Option<String>),
    /// A file was skipped or refused; the last good report stays.
    Refused {
        path: PathBuf,
        reason: Reason,
        detail: String,
    },
}

/// A file as last seen: its version and the server its report was attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    modified: Option<SystemTime>,
    len: u64,
    /// `None` until the file held a good report.
    server_id: Option<Option<String>>,
    /// The last pass that saw the file.
    pass: u64,
    /// Its place in the audit's rotation.
    turn: u64,
}

/// The report files of one source and what is known of them.
#[derive(Debug)]
pub struct Scanner {
    /// `Some` for a source of one file, else every `*.json` in `directory`.
    single: Option<PathBuf>,
    directory: PathBuf,
    /// By file name in `directory`, or by the path of the single file.
    known: HashMap<OsString, Known>,
    missing_reported: bool,
    /// Passes so far: a file not seen in the current pass went away.
    passes: u64,
    /// Files met so far, each one's `turn`.
    arrivals: u64,
    audit_budget: usize,
}

impl Scanner {
    pub(crate) fn file(path: PathBuf) -> Scanner {
        let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Scanner::new(Some(path), directory)
    }

    /// A scanner of every `*.json` report in `directory`.
    pub fn directory(directory: PathBuf) -> Scanner {
        Scanner::new(None, directory)
    }

    fn new(single: Option<PathBuf>, directory: PathBuf) -> Scanner {
        Scanner {
            single,
            directory,
            known: HashMap::new(),
            missing_reported: false,
            passes: 0,
            arrivals: 0,
            audit_budget: AUDIT_BUDGET,
        }
    }

    pub(crate) fn watched_directory(&self) -> &Path {
        &self.directory
    }

    /// Whether the source reads one file (rather than a directory of them).
    pub(crate) fn is_single(&self) -> bool {
        self.single.is_some()
    }

    /// One pass without news from inotify: what changed since the last.
    pub fn pass(&mut self) -> Vec<Found> {
        self.pass_noticing(&HashSet::new())
    }

    /// One pass, which also stats the files named in `noticed` (by inotify).
    pub(crate) fn pass_noticing(&mut self, noticed: &HashSet<OsString>) -> Vec<Found> {
        let now = SystemTime::now();
        let mut found = Vec::new();
        self.passes += 1;
        match self.single.clone() {
            Some(path) => {
                if let Some(metadata) = self.single_metadata(&path, &mut found) {
                    self.visit(path.into_os_string(), &metadata, now, &mut found);
                }
            }
            None => self.each_entry(noticed, |scanner, name, metadata| {
                scanner.visit(name, &metadata, now, &mut found);
            }),
        }
        // Files that went away: their servers' reports are withdrawn.
        let pass = self.passes;
        self.known.retain(|_, known| {
            let keep = known.pass == pass;
            if !keep && let Some(server_id) = known.server_id.take() {
                found.push(Found::Forget(server_id));
            }
            keep
        });
        found
    }

    /// The report file's metadata, or `None` (reported once) when it does not exist.
    fn single_metadata(&mut self, path: &Path, found: &mut Vec<Found>) -> Option<Metadata> {
        match std::fs::metadata(path) {
            Ok(metadata) => {
                self.missing_reported = false;
                Some(metadata)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if !std::mem::replace(&mut self.missing_reported, true) {
                    found.push(refused(
                        path,
                        Reason::Missing,
                        "the report file does not exist",
                    ));
                }
                None
            }
            Err(e) => {
                found.push(refused(path, Reason::Missing, &format!("cannot read: {e}")));
                None
            }
        }
    }

    /// Calls `visit` with the name and metadata (a symlink followed) of each `*.json` entry
    /// of the directory that is new, `noticed`, or due for its audit; the others are only
    /// marked as still there. Hidden and temporary files (`.x.json`, `x.json.tmp`) that
    /// atomic writers leave while writing are not reports.
    fn each_entry(
        &mut self,
        noticed: &HashSet<OsString>,
        mut visit: impl FnMut(&mut Scanner, OsString, Metadata),
    ) {
        let Ok(entries) = std::fs::read_dir(&self.directory) else {
            return;
        };
        let pass = self.passes;
        let rotation = self.known.len().div_ceil(self.audit_budget).max(1) as u64;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !is_report_name(&name) {
                continue;
            }
            if let Some(known) = self.known.get_mut(&name)
                && (known.turn + pass) % rotation != 0
                && !noticed.contains(&name)
            {
                known.pass = pass;
                continue;
            }
            // An entry's own metadata is a cheap fstatat; only a symlink needs the full path.
            let metadata = match entry.file_type() {
                Ok(kind) if kind.is_symlink() => std::fs::metadata(entry.path()),
                _ => entry.metadata(),
            };
            match metadata {
                Ok(metadata) => visit(self, name, metadata),
                // Deleted since the listing, or a dangling symlink: not there.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                // E.g. a symlink into a directory this user cannot read: nothing to read.
                Err(e) => tracing::debug!(file = %entry.path().display(), "cannot stat: {e}"),
            }
        }
    }

    /// Reads the file `name` if it changed since the last pass.
    fn visit(
        &mut self,
        name: OsString,
        metadata: &Metadata,
        now: SystemTime,
        found: &mut Vec<Found>,
    ) {
        let modified = metadata.modified().ok();
        let len = metadata.len();
        let pass = self.passes;
        let (server_id, turn) = match self.known.get_mut(&name) {
            Some(known) if known.modified == modified && known.len == len => {
                known.pass = pass;
                return;
            }
            Some(known) => (known.server_id.clone(), known.turn),
            None => {
                self.arrivals += 1;
                (None, self.arrivals)
            }
        };
        let mut known = Known {
            modified,
            len,
            server_id,
            pass,
            turn,
        };
        let path = match &self.single {
            Some(path) => path.clone(),
            None => self.directory.join(&name),
        };
        match read_report(&path, now, modified) {
            Ok(report) => {
                let report = self.attribute(&path, report);
                known.server_id = Some(report.server_id.clone());
                found.push(Found::Counts(path, report));
            }
            Err((Reason::NotAFile, detail)) => {
                // Not a report any more: what it held is withdrawn.
                if let Some(id) = known.server_id.take() {
                    found.push(Found::Forget(id));
                }
                found.push(refused(&path, Reason::NotAFile, &detail));
            }
            // The last good report stays; this version is not re-read until it changes.
            Err((reason, detail)) => found.push(refused(&path, reason, &detail)),
        }
        self.known.insert(name, known);
    }

    /// In a directory, a report without a server id is named by its file.
    fn attribute(&self, path: &Path, mut report: ServerCounts) -> ServerCounts {
        if self.single.is_none() && report.server_id.is_none() {
            report.server_id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty());
        }
        report
    }
}

fn is_report_name(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    !name.starts_with(b".") && name.ends_with(b".json")
}

/// Reads and parses one report file; the error is its reason and what went wrong.
fn read_report(
    path: &Path,
    now: SystemTime,
    modified: Option<SystemTime>,
) -> Result<ServerCounts, (Reason, String)> {
    let body = regular_file::read(path, MAX_FILE_BYTES).map_err(|e| match e {
        ReadError::NotAFile(what) => (
            Reason::NotAFile,
            format!("not a regular file but {what}; skipped"),
        ),
        ReadError::TooLarge(max) => (Reason::TooLarge, format!("larger than {max} bytes")),
        ReadError::Io(e) => (Reason::Missing, format!("cannot read: {e}")),
    })?;
    format::parse_report(&body, now, modified).map_err(|e| (e.reason(), e.to_string()))
}

fn refused(path: &Path, reason: Reason, detail: &str) -> Found {
    Found::Refused {
        path: path.to_owned(),
        reason,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(found: &[Found]) -> Vec<Reason> {
        found
            .iter()
            .filter_map(|f| match f {
                Found::Refused { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn symlinks_to_devices_and_fifos_are_skipped_once_not_read() {
        // Issue 10, repro 3: a *.json symlink to /dev/zero was read to the end, and a FIFO
        // named *.json blocked the source.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.json")).unwrap();
        let fifo = dir.path().join("fifo.json");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        std::fs::write(dir.path().join("real.json"), br#"{"namespaces":{"/":2}}"#).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real.json"), dir.path().join("linked.json"))
            .unwrap();
        let mut scanner = Scanner::directory(dir.path().to_owned());
        let found = scanner.pass();
        assert_eq!(
            reasons(&found),
            [Reason::NotAFile, Reason::NotAFile],
            "{found:?}"
        );
        let counted: Vec<_> = found
            .iter()
            .filter_map(|f| match f {
                Found::Counts(_, report) => report.server_id.clone(),
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            counted,
            ["linked", "real"],
            "a symlink to a regular file is read"
        );
        assert!(
            scanner.pass().is_empty(),
            "skipped once, and unchanged files are not re-read"
        );
    }

    /// The servers whose reports a pass read.
    fn counted(found: &[Found]) -> Vec<String> {
        found
            .iter()
            .filter_map(|f| match f {
                Found::Counts(_, report) => report.server_id.clone(),
                _ => None,
            })
            .collect()
    }

    /// Rewrites `pod-{i}.json` with `count` clients: same length, a new mtime, as a writer
    /// within the filesystem's timestamp granularity would leave it.
    fn rewrite(dir: &Path, i: u64, count: u64, version: u64) {
        let path = dir.join(format!("pod-{i}.json"));
        std::fs::write(&path, format!(r#"{{"namespaces":{{"/":{count}}}}}"#)).unwrap();
        let mtime = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(version * 100 + i);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
    }

    #[test]
    fn a_directory_beyond_the_audit_budget_still_reads_every_change() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..6 {
            rewrite(dir.path(), i, 1, 1);
        }
        let mut scanner = Scanner::directory(dir.path().to_owned());
        scanner.audit_budget = 2;
        assert_eq!(counted(&scanner.pass()).len(), 6);

        // A file inotify names is read on the next pass, whether or not its turn has come.
        for i in 0..6 {
            rewrite(dir.path(), i, 2, 2);
            let noticed = HashSet::from([OsString::from(format!("pod-{i}.json"))]);
            assert_eq!(
                counted(&scanner.pass_noticing(&noticed)),
                [format!("pod-{i}")]
            );
        }

        // Unnamed changes: each pass stats only its share, all are read within ⌈6 / 2⌉ passes.
        for i in 0..6 {
            rewrite(dir.path(), i, 3, 3);
        }
        let passes: Vec<_> = (0..3).map(|_| counted(&scanner.pass())).collect();
        assert!(passes.iter().all(|read| read.len() < 6), "{passes:?}");
        let read: std::collections::BTreeSet<_> = passes.into_iter().flatten().collect();
        assert_eq!(read.len(), 6, "{read:?}");
        assert!(scanner.pass().is_empty(), "nothing is read twice");
    }

    #[test]
    fn a_file_that_went_away_withdraws_its_report() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pod-a.json");
        std::fs::write(&file, br#"{"namespaces":{"/":2}}"#).unwrap();
        let mut scanner = Scanner::directory(dir.path().to_owned());
        assert!(matches!(scanner.pass()[..], [Found::Counts(..)]));
        std::fs::remove_file(&file).unwrap();
        let found = scanner.pass();
        assert!(
            matches!(&found[..], [Found::Forget(Some(id))] if id == "pod-a"),
            "{found:?}"
        );
    }

    #[test]
    fn a_bad_timestamp_is_a_refusal_and_the_fixed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.json");
        std::fs::write(
            &file,
            r#"{"generated_at":"2026-11-26T00:00:00€€é","namespaces":{}}"#,
        )
        .unwrap();
        let mut scanner = Scanner::file(file.clone());
        assert_eq!(reasons(&scanner.pass()), [Reason::InvalidReport]);
        std::fs::write(&file, br#"{"namespaces":{"/":1}}"#).unwrap();
        assert!(matches!(scanner.pass()[..], [Found::Counts(..)]));
    }
}
