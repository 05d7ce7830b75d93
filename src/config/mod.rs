//! Configuration: `config.toml` is read into [`raw`] serde types, then validated into [`Config`].
//!
//! Validation collects every problem with its key path (`sources[0].endpoint: ...`) before
//! failing, so one run of `--check-config` shows everything that needs fixing.

mod otlp;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

pub use validate::DEFAULT_LISTEN;

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
}

/// OTLP export, resolved from `[otlp]` and the `OTEL_*` environment variables (which win).
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    pub protocol: OtlpProtocol,
    /// Where exports go: for http/protobuf the whole URL, `/v1/metrics` included.
    pub endpoint: Url,
    /// The variable or key the endpoint came from, or `default`.
    pub endpoint_from: String,
    /// Sent with every export (gRPC metadata or HTTP headers), one per name.
    pub headers: Vec<OtlpHeader>,
    /// Limit for one export, retries included.
    pub timeout: Duration,
    /// Time between two exports.
    pub interval: Duration,
    /// Resource attributes, `service.name` included; the SDK adds `telemetry.sdk.*`.
    pub resource: BTreeMap<String, String>,
    /// Extra PEM certificate(s) to trust for an `https://` collector.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name `OTEL_EXPORTER_OTLP_PROTOCOL` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// A header sent to the collector. Its value is often a credential and is never printed.
#[derive(Clone)]
pub struct OtlpHeader {
    /// Lowercase header name.
    pub name: String,
    pub value: String,
    /// Where the value came from: a key path or a variable name.
    pub from: String,
}

impl fmt::Debug for OtlpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, redacted)", self.name, self.from)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SyncConfig {
    /// Period of the reconcile loop.
    pub interval: Duration,
    /// A server report older than this no longer counts.
    pub stale_after: Duration,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name, the value of the `source` label on self-metrics.
    pub name: String,
    pub scope: Scope,
    /// The server that reports without a `server_id` are attributed to: `server_id`
    /// (or `server_id_env`) when set, else this host's name.
    pub own_server_id: String,
    pub namespaces: NamespaceRules,
    pub kind: SourceKind,
}

/// Cardinality control, applied to every report as it arrives.
#[derive(Debug, Clone)]
pub struct NamespaceRules {
    /// Namespaces matching a pattern are renamed to its replacement and summed; the first
    /// matching group wins.
    pub groups: Vec<NamespaceGroup>,
    /// At most this many namespace values per server; the rest fold into [`OVERFLOW_NAMESPACE`].
    pub max: usize,
}

/// The namespace value that namespaces beyond `max_namespaces` are summed into.
pub const OVERFLOW_NAMESPACE: &str = "__other__";

#[derive(Debug, Clone)]
pub struct NamespaceGroup {
    pub pattern: regex::Regex,
    /// The replacement, with `$1`-style references to the pattern's groups.
    pub replace: String,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    SocketioAdmin(SocketioAdminConfig),
    HttpJson(HttpJsonConfig),
    ReportFile(ReportFileConfig),
    Push(PushConfig),
}

impl SourceKind {
    /// The `type` tag as written in the config file.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::SocketioAdmin(_) => "socketio_admin",
            SourceKind::HttpJson(_) => "http_json",
            SourceKind::ReportFile(_) => "report_file",
            SourceKind::Push(_) => "push",
        }
    }
}

/// The `socketio_admin` source: a client of `@socket.io/admin-ui`'s admin namespace.
#[derive(Debug, Clone)]
pub struct SocketioAdminConfig {
    /// The WebSocket URL to dial, with `EIO=4&transport=websocket` already in the query.
    pub url: Url,
    /// The admin namespace, `/admin` unless admin-ui was given another `namespaceName`.
    pub admin_namespace: String,
    /// Export the admin namespace's own count (which includes this exporter's socket).
    pub include_admin_namespace: bool,
    pub credentials: Option<Credentials>,
    pub connect_timeout: Duration,
}

/// The `http_json` source: polls a JSON endpoint of the app.
#[derive(Debug, Clone)]
pub struct HttpJsonConfig {
    pub url: Url,
    pub interval: Duration,
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
    pub auth: HttpAuth,
    /// Extra PEM certificate(s) to trust, for an app with a private CA.
    pub ca_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    pub mapping: JsonMapping,
}

#[derive(Debug, Clone)]
pub enum HttpAuth {
    None,
    Basic(Credentials),
    Bearer(Secret),
}

/// Where the counts are in the endpoint's JSON.
#[derive(Debug, Clone)]
pub struct JsonMapping {
    /// JSON pointer to the namespaces: an object `name → count`, or an array of objects.
    pub namespaces_pointer: String,
    /// In an array, the field holding the namespace name.
    pub namespace_field: String,
    /// In an array, the field holding the socket count.
    pub count_field: String,
    pub clients_pointer: Option<String>,
    pub server_id_pointer: Option<String>,
}

/// The `report_file` source: JSON reports on a shared volume.
#[derive(Debug, Clone)]
pub enum ReportFileConfig {
    /// One report file.
    File(PathBuf),
    /// A directory of `*.json` reports, one per server.
    Directory(PathBuf),
}

/// The `push` source: reports and events POSTed to the exporter's own listener.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<Secret>,
    pub max_body_bytes: usize,
    /// Accept pushes without a token on a non-loopback listener.
    pub allow_unauthenticated: bool,
}

/// Which of the servers whose `server_stats` arrive are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Only this exporter's own server: the one whose `serverId` is `server_id`, or
    /// `server_id#<pid>` for Node cluster workers on the same host.
    Local { server_id: String },
    /// Every server, each with a `server` label.
    Cluster,
}

impl Scope {
    /// Whether stats from `server_id` belong to this scope.
    pub fn includes(&self, server_id: &str) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Local { server_id: own } => match server_id.strip_prefix(own.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('#'),
                None => false,
            },
        }
    }
}

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// Where a secret comes from. Its value is read when needed and never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    Env(String),
    File(PathBuf),
}

impl Secret {
    /// Reads the secret's current value. Files are re-read on every call, so a rotated
    /// Kubernetes Secret is picked up at the next reconnect.
    pub fn read(&self) -> Result<String, SecretError> {
        match self {
            Secret::Inline(value) => Ok(value.clone()),
            Secret::Env(var) => std::env::var(var).map_err(|_| SecretError::EnvUnset(var.clone())),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| SecretError::File {
                    path: path.clone(),
                    kind: e.kind(),
                }),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

/// Says where the secret comes from, never what it is.
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("inline (redacted)"),
            Secret::Env(var) => write!(f, "from environment variable {var}"),
            Secret::File(path) => write!(f, "from file {}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("cannot read {}: {kind}", path.display())]
    File {
        path: PathBuf,
        kind: std::io::ErrorKind,
    },
}

/// One thing wrong with the configuration, at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
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

fn list(problems: &[Problem]) -> String {
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

    /// Parses and validates configuration text; `OTEL_*` variables come from the process.
    pub fn parse(text: &str) -> Result<Config, ParseError> {
        Config::parse_with_env(text, &|name| std::env::var(name).ok())
    }

    /// Like [`Config::parse`], with the `OTEL_*` variables read through `env`.
    pub fn parse_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ParseError> {
        let raw: raw::RawConfig = toml::from_str(text)
            .map_err(|e| ParseError::Syntax(e.to_string().trim().to_owned()))?;
        validate::validate(raw, env).map_err(ParseError::Invalid)
    }

    /// A human summary for `--check-config`: what will run, with secrets shown by origin only.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "environment: {}\nlisten: {}\nsync: every {:?}, reports stale after {:?}\nsources:",
            self.environment, self.listen, self.sync.interval, self.sync.stale_after
        );
        for source in &self.sources {
            let _ = writeln!(out, "  {} ({})", source.name, source.kind.type_name());
            let _ = match &source.scope {
                Scope::Local { server_id } => {
                    writeln!(out, "    scope: local, server id {server_id:?}")
                }
                Scope::Cluster => writeln!(out, "    scope: cluster"),
            };
            let rules = &source.namespaces;
            let _ = writeln!(
                out,
                "    namespaces: {} group rule(s), at most {} per server",
                rules.groups.len(),
                rules.max
            );
            let _ = match &source.kind {
                SourceKind::SocketioAdmin(admin) => writeln!(
                    out,
                    "    url: {}\n    admin namespace: {} ({})\n    auth: {}",
                    admin.url,
                    admin.admin_namespace,
                    if admin.include_admin_namespace {
                        "exported"
                    } else {
                        "not exported"
                    },
                    match &admin.credentials {
                        Some(c) => format!("user {:?}, password {}", c.username, c.password),
                        None => "none".to_owned(),
                    }
                ),
                SourceKind::HttpJson(http) => writeln!(
                    out,
                    "    url: {} every {:?} (timeout {:?})\n    auth: {}\n    namespaces at {:?}",
                    http.url,
                    http.interval,
                    http.timeout,
                    match &http.auth {
                        HttpAuth::None => "none".to_owned(),
                        HttpAuth::Basic(c) =>
                            format!("basic, user {:?}, password {}", c.username, c.password),
                        HttpAuth::Bearer(token) => format!("bearer token {token}"),
                    },
                    http.mapping.namespaces_pointer
                ),
                SourceKind::ReportFile(ReportFileConfig::File(path)) => {
                    writeln!(out, "    file: {}", path.display())
                }
                SourceKind::ReportFile(ReportFileConfig::Directory(path)) => {
                    writeln!(
                        out,
                        "    directory: {} (*.json, one per server)",
                        path.display()
                    )
                }
                SourceKind::Push(push) => writeln!(
                    out,
                    "    endpoints: POST /push/report, POST /push/events\n    token: {}",
                    match &push.token {
                        Some(token) => token.to_string(),
                        None => "none".to_owned(),
                    }
                ),
            };
        }
        let _ = match &self.otlp {
            None => writeln!(out, "otlp: off"),
            Some(otlp) => writeln!(
                out,
                "otlp: {} to {} (from {}), every {:?}, timeout {:?}\n  headers: {}\n  resource: {}{}",
                otlp.protocol.as_str(),
                otlp.endpoint,
                otlp.endpoint_from,
                otlp.interval,
                otlp.timeout,
                if otlp.headers.is_empty() {
                    "none".to_owned()
                } else {
                    otlp.headers
                        .iter()
                        .map(|h| format!("{} ({})", h.name, h.from))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                otlp.resource
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                match &otlp.ca_file {
                    Some(path) => format!("\n  ca file: {}", path.display()),
                    None => String::new(),
                }
            ),
        };
        out.trim_end().to_owned()
    }
}

/// Why configuration text was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not valid TOML, a wrong type, or an unknown key (TOML reports one at a time).
    Syntax(String),
    /// Well-formed but wrong values: all of them.
    Invalid(Vec<Problem>),
}
