//! Configuration: `config.toml` is read into serde types that mirror it one to one, then
//! validated into [`Config`].
//!
//! Validation collects every problem with its key path (`sources[0].endpoint: ...`) before
//! failing, so one run of `--check-config` shows everything that needs fixing. This module
//! holds what is shared (listen, sync, otlp, problems, secrets); each source type's keys
//! live with the source, in `sources/<type>/config.rs`.

pub(crate) mod otlp;
pub(crate) mod problems;
pub(crate) mod secret;
pub(crate) mod sync;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use self::otlp::{OtlpConfig, RawOtlp};
use self::problems::{Problem, Problems};
use self::sync::{RawSync, SyncConfig};
use crate::sources::{self, SourceConfig, SourceKind};

/// The default listen address. 8797 lies outside the 9100–9999 range that Prometheus
/// exporters have claimed, so it does not collide with node_exporter and friends in a pod.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:8797";

/// The configuration file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The value of the `environment` label; required.
    environment: Option<String>,
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    sync: RawSync,
    /// Read as plain tables: each is split into the common keys and its type's keys.
    #[serde(default)]
    sources: Vec<toml::Table>,
    otlp: Option<RawOtlp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    /// Address of the HTTP server; [`DEFAULT_LISTEN`] by default.
    address: Option<String>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Value of the `environment` label.
    pub environment: String,
    /// Address of the HTTP server.
    pub listen: SocketAddr,
    pub sync: SyncConfig,
    pub sources: Vec<SourceConfig>,
    /// OTLP export, when it is on.
    pub otlp: Option<OtlpConfig>,
    /// The web config file (TLS, basic auth, headers) from `--web.config.file`; not a key
    /// of this file.
    pub web_config_file: Option<PathBuf>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("config file {}: {}", path.display(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// Why configuration text was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not valid TOML, a wrong type, or an unknown key (TOML reports one at a time).
    Syntax(String),
    /// Well-formed but wrong values: all of them.
    Invalid(Vec<Problem>),
}

/// `N problems` and one indented line per problem.
pub(crate) fn list(problems: &[Problem]) -> String {
    let noun = if problems.len() == 1 {
        "problem"
    } else {
        "problems"
    };
    let mut out = format!("{} {noun}", problems.len());
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ParseError::Syntax(message) => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            ParseError::Invalid(problems) => ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            },
        })
    }

    /// Reads and validates the file at `path` as it will run: `listen` (`--listen`)
    /// overrides `listen.address`, then what depends on the effective address is checked.
    pub fn load_for(path: &Path, listen: Option<SocketAddr>) -> Result<Config, ConfigError> {
        let mut config = Config::load(path)?;
        if let Some(listen) = listen {
            config.listen = listen;
        }
        let problems = config.exposure_problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Parses and validates configuration text; `OTEL_*` variables come from the process.
    pub fn parse(text: &str) -> Result<Config, ParseError> {
        Config::parse_with_env(text, &|name| std::env::var(name).ok())
    }

    /// Like [`Config::parse`], with the `OTEL_*` variables read through `env`.
    pub fn parse_with_env(text: &str, env: otlp::Env<'_>) -> Result<Config, ParseError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ParseError::Syntax(e.to_string().trim().to_owned()))?;
        let mut problems = Problems::default();
        let config = Config::validate(raw, env, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ParseError::Invalid(problems.into_vec()))
        }
    }

    /// Every problem goes to `problems`; the config returned holds placeholders for them.
    fn validate(raw: RawConfig, env: otlp::Env<'_>, problems: &mut Problems) -> Config {
        let environment = match raw.environment {
            Some(env) if !env.trim().is_empty() => env,
            Some(_) => {
                problems.add("environment", "must not be empty");
                String::new()
            }
            None => {
                problems.add(
                    "environment",
                    "missing: set the value of the environment label, e.g. environment = \"production\"",
                );
                String::new()
            }
        };
        let listen_text = raw.listen.address.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.add(
                "listen.address",
                format!("{listen_text:?} is not an IP address with a port, e.g. \"0.0.0.0:8797\""),
            );
            DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses")
        });
        let sync = raw.sync.validate(problems);
        let sources = sources::validate(raw.sources, &sync, problems);
        let otlp = otlp::resolve(raw.otlp, &environment, env, problems);
        Config {
            environment,
            listen,
            sync,
            sources,
            otlp,
            web_config_file: None,
        }
    }

    /// Problems that depend on the effective listen address, checked after `--listen` has
    /// overridden the file: a push source without a token must not be reachable from outside.
    pub fn exposure_problems(&self) -> Vec<Problem> {
        self.sources
            .iter()
            .enumerate()
            .filter_map(|(i, source)| match &source.kind {
                SourceKind::Push(push) => {
                    push.exposure_problem(&format!("sources[{i}]"), self.listen)
                }
                _ => None,
            })
            .collect()
    }

    /// A human summary for `--check-config`: what will run, with secrets shown by origin only.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "environment: {}\nlisten: {}\nsync: every {:?}, reports stale after {:?}\nsources:",
            self.environment, self.listen, self.sync.interval, self.sync.stale_after
        );
        for source in &self.sources {
            source.describe(&mut out);
        }
        match &self.otlp {
            None => out.push_str("otlp: off\n"),
            Some(otlp) => otlp.describe(&mut out),
        }
        out.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests;
