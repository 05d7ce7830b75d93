//! The configuration file as written: serde types that mirror `config.toml` one to one.
//!
//! Nothing here is validated beyond what TOML and serde check (types, unknown keys).
//! [`super::validate`] turns these into the typed [`super::Config`].
//!
//! A `[[sources]]` table holds keys every source has ([`RawCommon`]) next to the keys of
//! its `type`. serde cannot combine `flatten` with `deny_unknown_fields` (serde #1600), so
//! sources are read as plain tables and split by [`split_source`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) environment: Option<String>,
    #[serde(default)]
    pub(super) listen: RawListen,
    #[serde(default)]
    pub(super) sync: RawSync,
    #[serde(default)]
    pub(super) sources: Vec<toml::Table>,
    pub(super) otlp: Option<RawOtlp>,
}

/// `[otlp]`: each key mirrors an `OTEL_*` environment variable, which takes precedence.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOtlp {
    pub(super) enabled: Option<bool>,
    pub(super) endpoint: Option<String>,
    pub(super) protocol: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    /// Header name → the environment variable that holds its value (for secrets).
    #[serde(default)]
    pub(super) headers_env: BTreeMap<String, String>,
    pub(super) timeout_secs: Option<f64>,
    pub(super) interval_secs: Option<f64>,
    pub(super) service_name: Option<String>,
    #[serde(default)]
    pub(super) resource_attributes: BTreeMap<String, String>,
    pub(super) ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    pub(super) address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    pub(super) interval_secs: Option<f64>,
    pub(super) stale_after_secs: Option<f64>,
}

/// Keys every source has, whatever its type.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommon {
    pub(super) name: Option<String>,
    pub(super) scope: Option<RawScope>,
    pub(super) server_id: Option<String>,
    pub(super) server_id_env: Option<String>,
    pub(super) max_namespaces: Option<i64>,
    #[serde(default)]
    pub(super) namespace_groups: Vec<RawGroup>,
}

const COMMON_KEYS: [&str; 6] = [
    "name",
    "scope",
    "server_id",
    "server_id_env",
    "max_namespaces",
    "namespace_groups",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) pattern: String,
    pub(super) replace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawScope {
    Local,
    Cluster,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSocketioAdmin {
    pub(super) endpoint: Option<String>,
    pub(super) path: Option<String>,
    pub(super) admin_namespace: Option<String>,
    pub(super) include_admin_namespace: Option<bool>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) connect_timeout_secs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttpJson {
    pub(super) endpoint: Option<String>,
    pub(super) interval_secs: Option<f64>,
    pub(super) timeout_secs: Option<f64>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) bearer_token: Option<String>,
    pub(super) bearer_token_env: Option<String>,
    pub(super) bearer_token_file: Option<PathBuf>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) max_body_bytes: Option<i64>,
    pub(super) namespaces_pointer: Option<String>,
    pub(super) namespace_field: Option<String>,
    pub(super) count_field: Option<String>,
    pub(super) clients_pointer: Option<String>,
    pub(super) server_id_pointer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReportFile {
    pub(super) path: Option<PathBuf>,
    pub(super) directory: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPush {
    pub(super) token: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) max_body_bytes: Option<i64>,
    pub(super) allow_unauthenticated: Option<bool>,
}

/// What a source table says, split into its parts.
pub(super) enum RawSource {
    SocketioAdmin(RawSocketioAdmin),
    HttpJson(Box<RawHttpJson>),
    ReportFile(RawReportFile),
    Push(RawPush),
}

pub(super) const SOURCE_TYPES: &str = "socketio_admin, http_json, report_file, push";

/// Splits a `[[sources]]` table into the common keys and the keys of its `type`.
/// Errors are messages for the table's key path.
pub(super) fn split_source(mut table: toml::Table) -> Result<(RawCommon, RawSource), String> {
    let kind = match table.remove("type") {
        Some(toml::Value::String(kind)) => kind,
        Some(other) => return Err(format!("type: must be a string, got {other}")),
        None => return Err(format!("type: missing; one of {SOURCE_TYPES}")),
    };
    let mut common = toml::Table::new();
    for key in COMMON_KEYS {
        if let Some(value) = table.remove(key) {
            common.insert(key.to_owned(), value);
        }
    }
    let common: RawCommon = from_table(common)?;
    let source = match kind.as_str() {
        "socketio_admin" => RawSource::SocketioAdmin(from_table(table)?),
        "http_json" => RawSource::HttpJson(Box::new(from_table(table)?)),
        "report_file" => RawSource::ReportFile(from_table(table)?),
        "push" => RawSource::Push(from_table(table)?),
        other => {
            return Err(format!(
                "type: unknown source type {other:?}; one of {SOURCE_TYPES}"
            ));
        }
    };
    Ok((common, source))
}

fn from_table<T: DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    T::deserialize(toml::Value::Table(table)).map_err(|e| e.message().trim().to_owned())
}
