//! The web configuration file (`--web.config.file`), in exporter-toolkit's YAML format so
//! that a file written for node_exporter works here: `tls_server_config`,
//! `basic_auth_users` and `http_server_config.headers`.
//!
//! Relative paths are relative to the file's directory, as in the toolkit. Keys the
//! toolkit knows but this exporter does not implement are refused by name, never ignored:
//! a user who asked for a SAN allow-list must not silently get none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hyper::header::{HeaderName, HeaderValue};
use rustls::SupportedProtocolVersion;
use serde::Deserialize;

use crate::config::problems::{Problem, Problems};
use crate::config::{ParseError, list};

/// The web config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    /// User name → bcrypt hash.
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Known to the toolkit, not implemented here.
    rate_limit: Option<serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    // Known to the toolkit, not implemented here.
    client_allowed_sans: Option<Vec<String>>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Accepted for compatibility and without effect: the exporter speaks HTTP/1.1 only.
    #[serde(rename = "http2")]
    _http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A validated web config.
#[derive(Debug, Clone, Default)]
pub(crate) struct WebConfig {
    /// TLS on the listeners, when `tls_server_config` is set.
    pub tls: Option<TlsSettings>,
    /// User name → bcrypt hash; empty means no basic auth.
    pub users: BTreeMap<String, String>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// PEM material, from a file (re-read when it changes) or inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pem {
    File(PathBuf),
    Inline(String),
}

impl Pem {
    pub(crate) fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Pem::File(path) => std::fs::read(path),
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            Pem::File(path) => Some(path),
            Pem::Inline(_) => None,
        }
    }
}

/// The toolkit's `client_auth_type`, Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(name: &str) -> Option<ClientAuth> {
        Some(match name {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // RequireClientCert is the toolkit's old name for it.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    /// Whether client certificates are checked against `client_ca_file`.
    pub(crate) fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub client_auth: ClientAuth,
    pub client_ca: Option<Pem>,
    /// From `min_version` to `max_version`.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// `prefer_server_cipher_suites`, true by default as in the toolkit.
    pub prefer_server_order: bool,
}

impl TlsSettings {
    /// The files this TLS setup reads, to notice when one changes.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(Pem::file)
    }
}

/// Why a web config file was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebConfigError {
    #[error("cannot read web config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("web config file {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("web config file {}: {}", path.display(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// The TLS versions by the toolkit's names; rustls has no TLS 1.0 or 1.1.
const VERSIONS: [(&str, &SupportedProtocolVersion); 2] = [
    ("TLS12", &rustls::version::TLS12),
    ("TLS13", &rustls::version::TLS13),
];

/// The headers the toolkit lets a user set, with their allowed values (any when empty).
/// Kept to this list on purpose, as in the toolkit, so that exporters behave alike.
const HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

impl WebConfig {
    /// Reads and validates the file at `path` (not the certificates it names).
    pub(crate) fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, dir).map_err(|e| match e {
            ParseError::Syntax(message) => WebConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            ParseError::Invalid(problems) => WebConfigError::Invalid {
                path: path.to_owned(),
                problems,
            },
        })
    }

    /// Parses YAML text; relative paths are taken from `dir`.
    pub(crate) fn parse(text: &str, dir: &Path) -> Result<WebConfig, ParseError> {
        // The toolkit takes an empty file (or only comments) as "no TLS, no auth". Errors
        // name the key path and the line (`tls_server_config: unknown field ...`).
        let raw: Option<RawWebConfig> =
            serde_norway::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        let raw = raw.unwrap_or_default();
        let mut problems = Problems::default();
        let config = validate(raw, dir, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ParseError::Invalid(problems.into_vec()))
        }
    }
}

fn validate(raw: RawWebConfig, dir: &Path, problems: &mut Problems) -> WebConfig {
    if raw.rate_limit.is_some() {
        problems.add(
            "rate_limit",
            "is not supported by socketio-exporter; remove it (rate-limit in a proxy)",
        );
    }
    let tls = raw
        .tls_server_config
        .and_then(|tls| validate_tls(tls, dir, problems));
    let users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if bcrypt::HashParts::from_str(hash).is_err() {
            // The hash itself is never shown: it is as good as a password to a cracker.
            problems.add(
                format!("basic_auth_users.{user}"),
                "is not a bcrypt hash; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'",
            );
        }
    }
    let headers = raw
        .http_server_config
        .map(|http| validate_headers(http.headers, problems))
        .unwrap_or_default();
    WebConfig {
        tls,
        users,
        headers,
    }
}

fn validate_headers(
    headers: BTreeMap<String, String>,
    problems: &mut Problems,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let path = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = HEADERS.iter().find(|(known, _)| *known == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            problems.add(
                path,
                format!(
                    "this header cannot be configured; one of {}",
                    names.join(", ")
                ),
            );
            continue;
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            problems.add(
                path,
                format!("must be one of {}, got {value:?}", allowed.join(", ")),
            );
            continue;
        }
        match (HeaderName::from_str(&name), HeaderValue::from_str(&value)) {
            (Ok(name), Ok(value)) => out.push((name, value)),
            _ => problems.add(path, format!("{value:?} is not a valid header value")),
        }
    }
    out
}

/// `None` when TLS is off (no TLS key set) or wrong (the problems say why).
fn validate_tls(raw: RawTls, dir: &Path, problems: &mut Problems) -> Option<TlsSettings> {
    let mut add = |key: &str, message: String| {
        problems.add(format!("tls_server_config.{key}"), message);
    };
    for (key, set) in [
        ("client_allowed_sans", raw.client_allowed_sans.is_some()),
        ("cipher_suites", raw.cipher_suites.is_some()),
        ("curve_preferences", raw.curve_preferences.is_some()),
    ] {
        if set {
            add(
                key,
                "is not supported by socketio-exporter (rustls offers only modern suites and \
                 curves); remove it"
                    .to_owned(),
            );
        }
    }
    let cert = pem(raw.cert, raw.cert_file, dir);
    let key = pem(raw.key, raw.key_file, dir);
    let client_ca = pem(raw.client_ca, raw.client_ca_file, dir);
    let auth_name = raw.client_auth_type.unwrap_or_default();
    let enabled = cert.is_some() || key.is_some() || client_ca.is_some() || !auth_name.is_empty();
    if !enabled {
        return None;
    }
    let client_auth = client_auth(&auth_name, client_ca.is_some(), &mut add);
    let min = version(raw.min_version, "min_version", 0, &mut add);
    let max = version(raw.max_version, "max_version", VERSIONS.len() - 1, &mut add);
    if min > max {
        add("min_version", "must not be above max_version".to_owned());
    }
    let versions = VERSIONS[min.min(max)..=max]
        .iter()
        .map(|(_, v)| *v)
        .collect();
    if cert.is_none() {
        add(
            "cert_file",
            "missing: one of cert or cert_file is required".to_owned(),
        );
    }
    if key.is_none() {
        add(
            "key_file",
            "missing: one of key or key_file is required".to_owned(),
        );
    }
    Some(TlsSettings {
        cert: cert?,
        key: key?,
        client_auth,
        client_ca,
        versions,
        prefer_server_order: raw.prefer_server_cipher_suites.unwrap_or(true),
    })
}

/// `client_auth_type`, and whether it agrees with the presence of a client CA.
fn client_auth(name: &str, has_ca: bool, add: &mut impl FnMut(&str, String)) -> ClientAuth {
    let client_auth = ClientAuth::parse(name).unwrap_or_else(|| {
        add(
            "client_auth_type",
            format!(
                "unknown value {name:?}; one of NoClientCert, RequestClientCert, \
                 RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            ),
        );
        ClientAuth::NoClientCert
    });
    match (has_ca, client_auth) {
        (true, ClientAuth::NoClientCert) => add(
            "client_ca_file",
            "is set without a client_auth_type: set client_auth_type: \
             RequireAndVerifyClientCert to require client certificates"
                .to_owned(),
        ),
        (false, auth) if auth.verifies() => add(
            "client_ca_file",
            format!("missing: client_auth_type {name} verifies client certificates against it"),
        ),
        _ => {}
    }
    client_auth
}

/// The file wins over inline text, as in the toolkit; empty counts as absent.
fn pem(inline: Option<String>, file: Option<PathBuf>, dir: &Path) -> Option<Pem> {
    match (inline, file) {
        (_, Some(file)) if !file.as_os_str().is_empty() => Some(Pem::File(dir.join(file))),
        (Some(text), _) if !text.is_empty() => Some(Pem::Inline(text)),
        _ => None,
    }
}

/// The index in [`VERSIONS`] of a `min_version`/`max_version` value.
fn version(
    value: Option<String>,
    key: &str,
    default: usize,
    add: &mut impl FnMut(&str, String),
) -> usize {
    let Some(name) = value else {
        return default;
    };
    if let Some(index) = VERSIONS.iter().position(|(n, _)| *n == name) {
        return index;
    }
    let message = if matches!(name.as_str(), "TLS10" | "TLS11") {
        format!(
            "{name} is not supported: socketio-exporter speaks TLS 1.2 and 1.3 only; use \
             TLS12 or TLS13"
        )
    } else {
        format!("unknown TLS version {name:?}; one of TLS12, TLS13")
    };
    add(key, message);
    default
}

#[cfg(test)]
mod tests;
