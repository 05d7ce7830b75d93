//! The `report_file` source's keys.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::problems::At;
use crate::config::sync::SyncConfig;
use crate::sources::context::SourceKeys;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// One report file.
    path: Option<PathBuf>,
    /// A directory of `*.json` reports, one per server.
    directory: Option<PathBuf>,
}

/// The `report_file` source: JSON reports on a shared volume.
#[derive(Debug, Clone, PartialEq)]
pub enum Config {
    /// One report file.
    File(PathBuf),
    /// A directory of `*.json` reports, one per server.
    Directory(PathBuf),
}

impl SourceKeys for Config {
    const TYPE: &'static str = "report_file";
    type Raw = RawConfig;

    fn validate(raw: RawConfig, _: &SyncConfig, at: &mut At<'_>) -> Config {
        match (raw.path, raw.directory) {
            (Some(file), None) => Config::File(file),
            (None, Some(directory)) => Config::Directory(directory),
            (Some(_), Some(_)) => {
                at.add(
                    "path",
                    "set either path (one report file) or directory (one file per server), not both",
                );
                Config::File(PathBuf::new())
            }
            (None, None) => {
                at.add(
                    "path",
                    "missing: the report file (path) or a directory of reports (directory)",
                );
                Config::File(PathBuf::new())
            }
        }
    }

    fn endpoint(&self) -> String {
        match self {
            Config::File(path) => path.display().to_string(),
            Config::Directory(path) => format!("{}/*.json", path.display()),
        }
    }

    fn describe(&self, out: &mut String) {
        let _ = match self {
            Config::File(path) => writeln!(out, "    file: {}", path.display()),
            Config::Directory(path) => writeln!(
                out,
                "    directory: {} (*.json, one per server)",
                path.display()
            ),
        };
    }
}
