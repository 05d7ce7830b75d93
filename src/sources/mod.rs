//! Sources read connection counts from the app and send them to the sync loop as
//! [`Update`](crate::update::Update)s. Each runs as its own task; none of them touches the
//! published snapshot.
//!
//! Each source type lives in its own folder with its configuration, its errors and the
//! reasons it can fail with, behind the [`SourceType`] contract. Adding a type means a
//! folder and one line in the `source_types!` list below.

pub(crate) mod common;
pub(crate) mod context;
pub(crate) mod format;
pub(crate) mod http_json;
pub(crate) mod push;
pub(crate) mod report_file;
pub(crate) mod socketio_admin;

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::config::problems::{At, Problems};
use crate::config::sync::SyncConfig;
use crate::namespaces::NamespaceRules;
use crate::update::{Reason, Silence};

pub use self::common::Scope;
use self::common::{COMMON_KEYS, RawCommon};
pub(crate) use self::context::{Outbox, SourceContext, SourceKeys, SourceType, panic_message};

/// One configured source. Two are equal when a running source of the one would do what
/// the other says: a reload keeps the running task of an unchanged source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Unique name, the value of the `source` label on self-metrics.
    pub name: String,
    pub scope: Scope,
    /// The server that counts without a server id are attributed to: `server_id`
    /// (or `server_id_env`) when set, else this host's name.
    pub own_server_id: String,
    pub namespaces: NamespaceRules,
    pub kind: SourceKind,
}

/// Declares the closed set of source types: the [`SourceKind`] enum and its dispatch to
/// each type's [`SourceType`] implementation.
macro_rules! source_types {
    ($($variant:ident($config:ty)),* $(,)?) => {
        /// A source's type-specific configuration.
        #[derive(Debug, Clone, PartialEq)]
        pub enum SourceKind {
            $($variant($config),)*
        }

        impl SourceKind {
            /// The `type` tags, for error messages.
            const TYPES: &[&str] = &[$(<$config>::TYPE),*];

            /// The `type` tag as written in the configuration file.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(SourceKind::$variant(_) => <$config>::TYPE,)*
                }
            }

            /// The reasons a source of this type can fail with.
            pub fn reasons(&self) -> &'static [Reason] {
                match self {
                    $(SourceKind::$variant(_) => <$config>::REASONS,)*
                }
            }

            /// What a silence of this source means.
            pub fn silence(&self) -> Silence {
                match self {
                    $(SourceKind::$variant(_) => <$config>::SILENCE,)*
                }
            }

            fn describe(&self, out: &mut String) {
                match self {
                    $(SourceKind::$variant(config) => config.describe(out),)*
                }
            }

            /// What the source reads, for the landing page: never a secret.
            pub fn endpoint(&self) -> String {
                match self {
                    $(SourceKind::$variant(config) => config.endpoint(),)*
                }
            }

            /// Reads the keys of type `tag`; `None` for an unknown type.
            fn parse(
                tag: &str,
                table: toml::Table,
                sync: &SyncConfig,
                at: &mut At<'_>,
            ) -> Option<Result<SourceKind, String>> {
                match tag {
                    $(<$config>::TYPE => Some(from_table(table).map(|raw| {
                        SourceKind::$variant(<$config>::validate(raw, sync, at))
                    })),)*
                    _ => None,
                }
            }

            async fn run(self, cx: SourceContext) {
                match self {
                    $(SourceKind::$variant(config) => config.run(cx).await,)*
                }
            }
        }
    };
}

source_types! {
    SocketioAdmin(socketio_admin::Config),
    HttpJson(http_json::Config),
    ReportFile(report_file::Config),
    Push(push::Config),
}

impl SourceConfig {
    /// Runs the source until `cx.cancel` fires, restarted should its task panic.
    pub async fn run(self, cx: SourceContext) {
        let kind = self.kind;
        context::supervise(cx, kind.type_name(), move |cx| kind.clone().run(cx)).await
    }

    /// Lines for `--check-config`'s summary.
    pub fn describe(&self, out: &mut String) {
        let _ = writeln!(out, "  {} ({})", self.name, self.kind.type_name());
        let _ = match &self.scope {
            Scope::Local { server_id } => {
                writeln!(out, "    scope: local, server id {server_id:?}")
            }
            Scope::Cluster => writeln!(out, "    scope: cluster"),
        };
        let _ = writeln!(
            out,
            "    namespaces: {} group rule(s), at most {} per server",
            self.namespaces.groups.len(),
            self.namespaces.max
        );
        self.kind.describe(out);
    }
}

/// Validates the `[[sources]]` tables, each problem at `sources[i].key`.
pub(crate) fn validate(
    tables: Vec<toml::Table>,
    sync: &SyncConfig,
    problems: &mut Problems,
) -> Vec<SourceConfig> {
    if tables.is_empty() {
        problems.add(
            "sources",
            "at least one [[sources]] table is required (e.g. type = \"socketio_admin\")",
        );
    }
    let mut names = HashSet::new();
    let mut has_push = false;
    let mut sources = Vec::with_capacity(tables.len());
    for (i, table) in tables.into_iter().enumerate() {
        let path = format!("sources[{i}]");
        let mut at = At {
            path: &path,
            problems,
        };
        let Some(source) = source(table, sync, &mut at) else {
            continue;
        };
        if source.name.is_empty() {
            at.add("name", "must not be empty");
        } else if !names.insert(source.name.clone()) {
            at.add(
                "name",
                format!(
                    "duplicate source name {:?}: give each source a distinct name",
                    source.name
                ),
            );
        }
        if let SourceKind::Push(_) = source.kind {
            if has_push {
                at.add(
                    "type",
                    "only one push source is allowed: it owns POST /push/report and /push/events",
                );
            }
            has_push = true;
        }
        sources.push(source);
    }
    sources
}

/// One `[[sources]]` table: the common keys, then the keys of its `type`.
fn source(mut table: toml::Table, sync: &SyncConfig, at: &mut At<'_>) -> Option<SourceConfig> {
    let types = SourceKind::TYPES.join(", ");
    let tag = match table.remove("type") {
        Some(toml::Value::String(tag)) => tag,
        Some(other) => {
            at.problems
                .add(at.path, format!("type: must be a string, got {other}"));
            return None;
        }
        None => {
            at.problems
                .add(at.path, format!("type: missing; one of {types}"));
            return None;
        }
    };
    let mut common = toml::Table::new();
    for key in COMMON_KEYS {
        if let Some(value) = table.remove(key) {
            common.insert(key.to_owned(), value);
        }
    }
    let parsed = from_table::<RawCommon>(common).and_then(|common| {
        match SourceKind::parse(&tag, table, sync, at) {
            Some(kind) => kind.map(|kind| (common, kind)),
            None => Err(format!("type: unknown source type {tag:?}; one of {types}")),
        }
    });
    let (common, kind) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            at.problems.add(at.path, message);
            return None;
        }
    };
    let name = common
        .name
        .clone()
        .unwrap_or_else(|| kind.type_name().to_owned());
    let common = common.validate(at);
    Some(SourceConfig {
        name,
        scope: common.scope,
        own_server_id: common.own_server_id,
        namespaces: common.namespaces,
        kind,
    })
}

/// serde cannot combine `flatten` with `deny_unknown_fields` (serde #1600), so a source
/// table is split by hand and each part read on its own. Errors are messages for the
/// table's key path.
fn from_table<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    T::deserialize(toml::Value::Table(table)).map_err(|e| e.message().trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each type's counters start at 0 with only the reasons it can raise: the one its
    /// silence raises is among them, and `stats_timeout` only where admin-ui's stats can
    /// time out.
    #[test]
    fn each_type_lists_the_reason_its_silence_raises_and_no_other_timeout() {
        fn of<T: SourceType>() -> (&'static str, &'static [Reason], Silence) {
            (T::TYPE, T::REASONS, T::SILENCE)
        }
        for (name, reasons, silence) in [
            of::<socketio_admin::Config>(),
            of::<http_json::Config>(),
            of::<report_file::Config>(),
            of::<push::Config>(),
        ] {
            let raised = match silence {
                Silence::Stale(reason) => reason,
                Silence::Listens => Reason::Stale,
            };
            assert!(reasons.contains(&raised), "{name}: {raised}");
            assert_eq!(
                reasons.contains(&Reason::StatsTimeout),
                name == "socketio_admin",
                "{name}"
            );
        }
    }

    /// The README's table of `source_up` lists, for each type, exactly the reasons it can
    /// raise, in the order the code lists them.
    #[test]
    fn the_readme_lists_each_types_reasons() {
        fn of<T: SourceType>() -> (&'static str, &'static [Reason]) {
            (T::TYPE, T::REASONS)
        }
        let readme = include_str!("../../README.md");
        for (name, reasons) in [
            of::<socketio_admin::Config>(),
            of::<http_json::Config>(),
            of::<report_file::Config>(),
            of::<push::Config>(),
        ] {
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| `{name}` |")) && line.ends_with("` |"))
                .unwrap_or_else(|| panic!("no row for {name}"));
            let listed = row
                .trim_end_matches(" |")
                .rsplit(" | ")
                .next()
                .unwrap_or_default();
            let expected: Vec<String> = reasons.iter().map(|r| format!("`{r}`")).collect();
            assert_eq!(listed, expected.join(", "), "{name}");
        }
    }
}
