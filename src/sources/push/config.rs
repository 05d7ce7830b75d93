//! The `push` source's keys.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::problems::{At, Problem};
use crate::config::secret::{RawSecret, Secret};
use crate::config::sync::SyncConfig;
use crate::sources::context::SourceKeys;

const DEFAULT_MAX_BODY_BYTES: i64 = 1 << 20;
const MAX_MAX_BODY_BYTES: i64 = 64 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Required as `Authorization: Bearer <token>` when set.
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    /// The largest body accepted; 1 MiB by default.
    max_body_bytes: Option<i64>,
    /// Accept pushes without a token on a non-loopback listener; false by default.
    allow_unauthenticated: Option<bool>,
}

/// The `push` source: reports and events POSTed to the exporter's own listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<Secret>,
    pub max_body_bytes: usize,
    /// Accept pushes without a token on a non-loopback listener.
    pub allow_unauthenticated: bool,
}

impl SourceKeys for Config {
    const TYPE: &'static str = "push";
    type Raw = RawConfig;

    fn validate(raw: RawConfig, _: &SyncConfig, at: &mut At<'_>) -> Config {
        let token = RawSecret {
            inline: raw.token,
            env: raw.token_env,
            file: raw.token_file,
        };
        Config {
            token: token.validate("token", at),
            max_body_bytes: at.count(
                "max_body_bytes",
                raw.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
                MAX_MAX_BODY_BYTES,
            ),
            allow_unauthenticated: raw.allow_unauthenticated.unwrap_or(false),
        }
    }

    fn describe(&self, out: &mut String) {
        let token = match &self.token {
            Some(token) => token.to_string(),
            None => "none".to_owned(),
        };
        let _ = writeln!(
            out,
            "    endpoints: POST /push/report, POST /push/events\n    token: {token}"
        );
    }
}

impl Config {
    /// A push source without a token must not be reachable from outside: checked against
    /// the effective listen address, after `--listen` has overridden the file.
    pub fn exposure_problem(&self, path: &str, listen: SocketAddr) -> Option<Problem> {
        (self.token.is_none() && !self.allow_unauthenticated && !listen.ip().is_loopback()).then(
            || Problem {
                path: format!("{path}.token"),
                message: format!(
                    "a push source on the non-loopback address {listen} needs a token \
                     (token_env or token_file), or allow_unauthenticated = true"
                ),
            },
        )
    }
}
