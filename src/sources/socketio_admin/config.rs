//! The `socketio_admin` source's keys.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::config::problems::At;
use crate::config::secret::{Credentials, RawSecret, credentials};
use crate::config::sync::SyncConfig;
use crate::sources::context::{SourceKeys, shown_url};

/// admin-ui broadcasts `server_stats` every 2 s; its interval cannot be changed.
const ADMIN_UI_STATS_PERIOD_SECS: f64 = 2.0;
const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 5.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// The app's Socket.IO server: scheme (`http`/`ws`, or `https`/`wss` for TLS), host
    /// and port.
    endpoint: Option<String>,
    /// Extra PEM certificate(s) to trust for a TLS endpoint, for an app with a private CA.
    ca_file: Option<PathBuf>,
    /// Extra headers on the WebSocket handshake, for apps that authenticate it.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The Socket.IO path; `/socket.io/` by default.
    path: Option<String>,
    /// admin-ui's `namespaceName`; `/admin` by default.
    admin_namespace: Option<String>,
    /// Export the admin namespace's own count; false by default.
    include_admin_namespace: Option<bool>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    /// Limit for connecting, the handshake and the namespace's answer; 5 s by default.
    connect_timeout_secs: Option<f64>,
}

/// The `socketio_admin` source: a client of `@socket.io/admin-ui`'s admin namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The WebSocket URL to dial, with `EIO=4&transport=websocket` already in the query.
    pub url: Url,
    /// The admin namespace, `/admin` unless admin-ui was given another `namespaceName`.
    pub admin_namespace: String,
    /// Export the admin namespace's own count (which includes this exporter's socket).
    pub include_admin_namespace: bool,
    pub credentials: Option<Credentials>,
    pub connect_timeout: Duration,
    /// Extra PEM certificate(s) to trust besides the system's, for a `wss://` URL.
    pub ca_file: Option<PathBuf>,
    /// Extra handshake headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl SourceKeys for Config {
    const TYPE: &'static str = "socketio_admin";
    type Raw = RawConfig;

    fn validate(raw: RawConfig, sync: &SyncConfig, at: &mut At<'_>) -> Config {
        if sync.stale_after.as_secs_f64() <= ADMIN_UI_STATS_PERIOD_SECS {
            at.problems.add(
                "sync.stale_after_secs",
                format!(
                    "must be longer than admin-ui's fixed 2 s stats period \
                     ({} is a socketio_admin source), got {}s",
                    at.path,
                    sync.stale_after.as_secs_f64()
                ),
            );
        }
        let socket_path = raw.path.unwrap_or_else(|| "/socket.io/".to_owned());
        if !socket_path.starts_with('/') {
            at.add(
                "path",
                format!("must start with \"/\", got {socket_path:?}"),
            );
        }
        let url = match raw.endpoint {
            Some(endpoint) => websocket_url(&endpoint, &socket_path).unwrap_or_else(|message| {
                at.add("endpoint", message);
                placeholder_url()
            }),
            None => {
                at.add(
                    "endpoint",
                    "missing: the app's Socket.IO server, e.g. \"http://127.0.0.1:3000\"",
                );
                placeholder_url()
            }
        };
        let admin_namespace = raw.admin_namespace.unwrap_or_else(|| "/admin".to_owned());
        if !admin_namespace.starts_with('/') || admin_namespace.contains(',') {
            at.add(
                "admin_namespace",
                format!("must start with \"/\" and contain no comma, got {admin_namespace:?}"),
            );
        }
        let password = RawSecret {
            inline: raw.password,
            env: raw.password_env,
            file: raw.password_file,
        };
        if let Some(ca) = &raw.ca_file {
            if url.scheme() != "wss" {
                at.add("ca_file", "only applies to an https:// or wss:// endpoint");
            } else if let Err(e) = std::fs::read(ca) {
                at.add(
                    "ca_file",
                    format!("cannot read {}: {}", ca.display(), e.kind()),
                );
            }
        }
        Config {
            url,
            admin_namespace,
            include_admin_namespace: raw.include_admin_namespace.unwrap_or(false),
            credentials: credentials(raw.username, password, at),
            connect_timeout: at.seconds(
                "connect_timeout_secs",
                raw.connect_timeout_secs,
                DEFAULT_CONNECT_TIMEOUT_SECS,
            ),
            ca_file: raw.ca_file,
            headers: headers(raw.headers, at),
        }
    }

    fn endpoint(&self) -> String {
        shown_url(&self.url)
    }

    fn describe(&self, out: &mut String) {
        let shown = if self.include_admin_namespace {
            "exported"
        } else {
            "not exported"
        };
        let auth = match &self.credentials {
            Some(credentials) => credentials.to_string(),
            None => "none".to_owned(),
        };
        let _ = writeln!(
            out,
            "    url: {}\n    admin namespace: {} ({shown})\n    auth: {auth}",
            self.url, self.admin_namespace
        );
        if let Some(ca) = &self.ca_file {
            let _ = writeln!(out, "    extra CA: {}", ca.display());
        }
        if !self.headers.is_empty() {
            // Values may be tokens: names only.
            let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
            let _ = writeln!(out, "    handshake headers: {}", names.join(", "));
        }
    }
}

/// `http://host:port` (or `ws://`) plus the Socket.IO path → the Engine.IO WebSocket URL.
fn websocket_url(endpoint: &str, socket_path: &str) -> Result<Url, String> {
    let mut url = Url::parse(endpoint).map_err(|e| match endpoint.contains('@') {
        // It may hold credentials: not echoed.
        true => format!("not an absolute URL ({e})"),
        false => format!("{endpoint:?} is not an absolute URL ({e})"),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "credentials in the URL are not supported (the URL is logged): use \
                    username with password_env or password_file"
                .to_owned(),
        );
    }
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(format!(
                "{endpoint:?}: scheme {other:?} is not supported, use http://, https://, ws:// \
                 or wss://"
            ));
        }
    };
    if url.host_str().is_none() {
        return Err(format!("{endpoint:?} has no host"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "{endpoint:?} must be just scheme, host and port; set the Socket.IO path with `path`"
        ));
    }
    url.set_scheme(scheme)
        .expect("ws and wss are valid special schemes");
    url.set_path(socket_path);
    url.set_query(Some("EIO=4&transport=websocket"));
    Ok(url)
}

fn placeholder_url() -> Url {
    Url::parse("ws://invalid.invalid/").expect("placeholder URL parses")
}

/// The handshake headers; names and values must be valid HTTP, and the ones the
/// WebSocket handshake sets itself cannot be replaced.
fn headers(raw: BTreeMap<String, String>, at: &mut At<'_>) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, value) in raw {
        let (Ok(header), Ok(value)) = (HeaderName::try_from(&name), HeaderValue::try_from(&value))
        else {
            at.add(
                "headers",
                format!("{name:?}: not a valid HTTP header name and value"),
            );
            continue;
        };
        let reserved = header.as_str().starts_with("sec-websocket-")
            || matches!(header.as_str(), "host" | "connection" | "upgrade");
        if reserved {
            at.add(
                "headers",
                format!("{name:?} is set by the WebSocket handshake itself"),
            );
            continue;
        }
        out.push((header, value));
    }
    out
}
