//! The configuration file as written: serde types that mirror `config.toml` one to one.
//!
//! Nothing here is validated beyond what TOML and serde check (types, unknown keys).
//! [`super::validate`] turns these into the typed [`super::Config`].

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Value of the `environment` label on every connection series.
    pub(super) environment: Option<String>,
    #[serde(default)]
    pub(super) listen: RawListen,
    #[serde(default)]
    pub(super) sync: RawSync,
    #[serde(default)]
    pub(super) sources: Vec<RawSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    /// Address the HTTP server (`/metrics`, `/healthz`, `/readyz`) binds.
    pub(super) address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    /// How often sources are reconciled into the published snapshot.
    pub(super) interval_secs: Option<f64>,
    /// How long a server's last report counts as current.
    pub(super) stale_after_secs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum RawSource {
    SocketioAdmin(RawSocketioAdmin),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSocketioAdmin {
    pub(super) name: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) path: Option<String>,
    pub(super) admin_namespace: Option<String>,
    pub(super) include_admin_namespace: Option<bool>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) scope: Option<RawScope>,
    pub(super) server_id: Option<String>,
    pub(super) server_id_env: Option<String>,
    pub(super) connect_timeout_secs: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawScope {
    Local,
    Cluster,
}
