//! The `http_json` source's keys.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::problems::At;
use crate::config::secret::{Credentials, RawSecret, Secret, credentials};
use crate::config::sync::SyncConfig;
use crate::regular_file;
use crate::sources::context::{SourceKeys, shown_url};

const DEFAULT_INTERVAL_SECS: f64 = 5.0;
const DEFAULT_TIMEOUT_SECS: f64 = 2.0;
const DEFAULT_MAX_BODY_BYTES: i64 = 1 << 20;
const MAX_MAX_BODY_BYTES: i64 = 64 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// The app's JSON endpoint, `http://` or `https://`.
    endpoint: Option<String>,
    /// Time between polls; 5 s by default.
    interval_secs: Option<f64>,
    /// Limit for one poll; 2 s by default.
    timeout_secs: Option<f64>,
    /// Extra request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    bearer_token: Option<String>,
    bearer_token_env: Option<String>,
    bearer_token_file: Option<PathBuf>,
    /// Extra PEM certificate(s) to trust.
    ca_file: Option<PathBuf>,
    /// The largest body read; 1 MiB by default.
    max_body_bytes: Option<i64>,
    /// Follow HTTP redirects (at most 3, never from https to http); false by default.
    follow_redirects: Option<bool>,
    /// JSON pointer to the namespaces; `/namespaces` by default.
    namespaces_pointer: Option<String>,
    /// In an array, the field holding the namespace name; `name` by default.
    namespace_field: Option<String>,
    /// In an array, the field holding the socket count; `count` by default.
    count_field: Option<String>,
    clients_pointer: Option<String>,
    server_id_pointer: Option<String>,
    /// JSON pointer to an `engine` object of the report format.
    engine_pointer: Option<String>,
}

/// The `http_json` source: polls a JSON endpoint of the app.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub url: Url,
    pub interval: Duration,
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
    pub auth: HttpAuth,
    /// Extra PEM certificate(s) to trust, for an app with a private CA.
    pub ca_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// Follow redirects (at most 3, never from https to http).
    pub follow_redirects: bool,
    pub mapping: JsonMapping,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpAuth {
    None,
    Basic(Credentials),
    Bearer(Secret),
}

/// Where the counts are in the endpoint's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonMapping {
    /// JSON pointer to the namespaces: an object `name → count`, or an array of objects.
    pub namespaces_pointer: String,
    /// In an array, the field holding the namespace name.
    pub namespace_field: String,
    /// In an array, the field holding the socket count.
    pub count_field: String,
    pub clients_pointer: Option<String>,
    pub server_id_pointer: Option<String>,
    /// An object in the report format's `engine` shape: polling clients, counters since
    /// the app started.
    pub engine_pointer: Option<String>,
}

impl SourceKeys for Config {
    const TYPE: &'static str = "http_json";
    type Raw = RawConfig;

    fn validate(mut raw: RawConfig, sync: &SyncConfig, at: &mut At<'_>) -> Config {
        let url = endpoint(raw.endpoint.take(), at);
        let interval = at.seconds("interval_secs", raw.interval_secs, DEFAULT_INTERVAL_SECS);
        let timeout = at.seconds("timeout_secs", raw.timeout_secs, DEFAULT_TIMEOUT_SECS);
        if interval + timeout >= sync.stale_after {
            at.add(
                "interval_secs",
                format!(
                    "interval_secs + timeout_secs ({}s) must be below sync.stale_after_secs ({}s), \
                     or the counts go stale between polls",
                    (interval + timeout).as_secs_f64(),
                    sync.stale_after.as_secs_f64()
                ),
            );
        }
        check_headers(&raw.headers, at);
        let auth = auth(&mut raw, at);
        if let Some(ca) = &raw.ca_file
            && let Err(e) = regular_file::read(ca, regular_file::MAX_PEM_BYTES)
        {
            at.add(
                "ca_file",
                format!("cannot read {}: {}", ca.display(), e.brief()),
            );
        }
        let mut pointer = |key: &str, value: Option<String>| -> Option<String> {
            let value = value?;
            if !(value.is_empty() || value.starts_with('/')) {
                at.add(
                    key,
                    format!(
                        "{value:?} is not a JSON pointer: it must be empty or start with \"/\""
                    ),
                );
            }
            Some(value)
        };
        let mapping = JsonMapping {
            namespaces_pointer: pointer("namespaces_pointer", raw.namespaces_pointer)
                .unwrap_or_else(|| "/namespaces".to_owned()),
            clients_pointer: pointer("clients_pointer", raw.clients_pointer),
            server_id_pointer: pointer("server_id_pointer", raw.server_id_pointer),
            engine_pointer: pointer("engine_pointer", raw.engine_pointer),
            namespace_field: raw.namespace_field.unwrap_or_else(|| "name".to_owned()),
            count_field: raw.count_field.unwrap_or_else(|| "count".to_owned()),
        };
        Config {
            url,
            interval,
            timeout,
            headers: raw.headers.into_iter().collect(),
            auth,
            ca_file: raw.ca_file,
            max_body_bytes: at.count(
                "max_body_bytes",
                raw.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
                MAX_MAX_BODY_BYTES,
            ),
            follow_redirects: raw.follow_redirects.unwrap_or(false),
            mapping,
        }
    }

    fn endpoint(&self) -> String {
        shown_url(&self.url)
    }

    fn describe(&self, out: &mut String) {
        let auth = match &self.auth {
            HttpAuth::None => "none".to_owned(),
            HttpAuth::Basic(credentials) => format!("basic, {credentials}"),
            HttpAuth::Bearer(token) => format!("bearer token {token}"),
        };
        let _ = writeln!(
            out,
            "    url: {} every {:?} (timeout {:?})\n    auth: {auth}\n    namespaces at {:?}",
            self.url, self.interval, self.timeout, self.mapping.namespaces_pointer
        );
    }
}

/// Basic auth or a bearer token, not both.
fn auth(raw: &mut RawConfig, at: &mut At<'_>) -> HttpAuth {
    let password = RawSecret {
        inline: raw.password.take(),
        env: raw.password_env.take(),
        file: raw.password_file.take(),
    };
    let basic = credentials(raw.username.take(), password, at);
    let bearer = RawSecret {
        inline: raw.bearer_token.take(),
        env: raw.bearer_token_env.take(),
        file: raw.bearer_token_file.take(),
    }
    .validate("bearer_token", at);
    match (basic, bearer) {
        (None, None) => HttpAuth::None,
        (Some(basic), None) => HttpAuth::Basic(basic),
        (None, Some(token)) => HttpAuth::Bearer(token),
        (Some(_), Some(_)) => {
            at.add(
                "bearer_token",
                "set either basic auth (username + password) or a bearer token, not both",
            );
            HttpAuth::None
        }
    }
}

fn endpoint(endpoint: Option<String>, at: &mut At<'_>) -> Url {
    let placeholder = || Url::parse("http://invalid.invalid/").expect("placeholder URL parses");
    let Some(text) = endpoint else {
        at.add(
            "endpoint",
            "missing: the app's JSON endpoint, e.g. \"http://127.0.0.1:3000/api/connections\"",
        );
        return placeholder();
    };
    match Url::parse(&text) {
        Ok(url) if has_userinfo(&url) => {
            at.add("endpoint", USERINFO_PROBLEM);
            placeholder()
        }
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        Ok(url) => {
            at.add(
                "endpoint",
                format!(
                    "scheme {:?} is not supported, use http:// or https://",
                    url.scheme()
                ),
            );
            placeholder()
        }
        Err(e) if text.contains('@') => {
            // It may hold credentials: not echoed.
            at.add("endpoint", format!("not an absolute URL ({e})"));
            placeholder()
        }
        Err(e) => {
            at.add("endpoint", format!("{text:?} is not an absolute URL ({e})"));
            placeholder()
        }
    }
}

const USERINFO_PROBLEM: &str = "credentials in the URL are not supported (the URL is logged): \
     use username with password_env or password_file, or bearer_token_env or bearer_token_file";

fn has_userinfo(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// Header names and values must be valid HTTP, checked now rather than at every poll.
fn check_headers(headers: &BTreeMap<String, String>, at: &mut At<'_>) {
    for (name, value) in headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            at.add(
                "headers",
                format!("{name:?} is not a valid HTTP header name"),
            );
        } else if reqwest::header::HeaderValue::from_str(value).is_err() {
            // The value may be a secret: not echoed.
            at.add(
                "headers",
                format!(
                    "the value of {name:?} is not a valid HTTP header value (control characters?)"
                ),
            );
        }
    }
}
