//! The `push` source's keys.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Deserialize;

use crate::config::problems::{At, Problem};
use crate::config::secret::{RawSecret, Secret, SecretError};
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
    /// A listener of its own for `/push/*`, e.g. "127.0.0.1:8798"; then the main listener
    /// no longer serves them. By default they are on the main listener.
    listen_address: Option<String>,
}

/// The `push` source: reports and events POSTed to the exporter's own listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<Token>,
    pub max_body_bytes: usize,
    /// Accept pushes without a token on a non-loopback listener.
    pub allow_unauthenticated: bool,
    /// The push listener's own address, when `/push/*` is not on the main listener.
    pub listen_address: Option<SocketAddr>,
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
        let token = token.validate("token", at);
        if let Some(secret) = &token
            && secret.read().is_ok_and(|value| value.is_empty())
        {
            at.add(
                "token",
                "is empty: an empty token would accept any \"Bearer \" header; set a token, \
                 or leave the token keys out on a loopback listener",
            );
        }
        Config {
            token: token.map(Token::new),
            max_body_bytes: at.count(
                "max_body_bytes",
                raw.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
                MAX_MAX_BODY_BYTES,
            ),
            allow_unauthenticated: raw.allow_unauthenticated.unwrap_or(false),
            listen_address: raw.listen_address.and_then(|text| {
                text.parse()
                    .map_err(|_| {
                        at.add(
                            "listen_address",
                            format!(
                                "{text:?} is not an IP address with a port, e.g. \"127.0.0.1:8798\""
                            ),
                        );
                    })
                    .ok()
            }),
        }
    }

    fn endpoint(&self) -> String {
        match self.listen_address {
            Some(address) => format!("POST /push/report, /push/events on {address}"),
            None => "POST /push/report, /push/events".to_owned(),
        }
    }

    fn describe(&self, out: &mut String) {
        let token = match &self.token {
            Some(token) => token.secret.to_string(),
            None => "none".to_owned(),
        };
        let _ = writeln!(
            out,
            "    endpoints: {}\n    token: {token}",
            self.endpoint()
        );
    }
}

impl Config {
    /// A push source without a token must not be reachable from outside: checked against
    /// its own listener, else the effective main listen address (after `--listen`).
    pub fn exposure_problem(&self, path: &str, main_listen: SocketAddr) -> Option<Problem> {
        let listen = self.listen_address.unwrap_or(main_listen);
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

/// The push token, re-read when it changes: a token file when its mtime does (a rotated
/// Kubernetes Secret is picked up), never on every request.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    /// The value last read, and the file's mtime then.
    cached: Arc<Mutex<Option<Cached>>>,
}

/// A token as read, with the file's mtime then (`None` for a variable or inline token).
type Cached = (Option<SystemTime>, Arc<str>);

/// Two tokens are the same when they come from the same place; the cache is not config.
impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        self.secret == other.secret
    }
}

impl Token {
    fn new(secret: Secret) -> Token {
        Token {
            secret,
            cached: Arc::default(),
        }
    }

    /// The current token.
    pub fn read(&self) -> Result<Arc<str>, SecretError> {
        let version = match &self.secret {
            Secret::File(path) => std::fs::metadata(path).and_then(|m| m.modified()).ok(),
            Secret::Inline(_) | Secret::Env(_) => None,
        };
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, value)) = cached.as_ref()
            && *at == version
        {
            return Ok(value.clone());
        }
        let value: Arc<str> = self.secret.read()?.into();
        *cached = Some((version, value.clone()));
        Ok(value)
    }
}
