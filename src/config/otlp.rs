//! `[otlp]` and the `OTEL_*` environment variables → [`OtlpConfig`].
//!
//! Precedence, for every setting: the signal-specific variable
//! (`OTEL_EXPORTER_OTLP_METRICS_*`), then the generic one (`OTEL_EXPORTER_OTLP_*`), then the
//! `[otlp]` key, then the default. The environment is the per-deployment layer over a
//! shared file, as `SOCKETIO_EXPORTER_LISTEN` is over `listen.address`, and it is how the
//! OpenTelemetry Operator and most charts configure exporters. The SDK also re-applies
//! `OTEL_EXPORTER_OTLP[_METRICS]_HEADERS` over headers set in code, which only this order
//! agrees with.
//!
//! Everything is resolved here, so that `--check-config` shows what will be used and the
//! exporter is built from explicit values only.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::problems::Problems;

/// `[otlp]`: each key mirrors an `OTEL_*` environment variable, which takes precedence.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOtlp {
    /// Off with `false`; on when the section or an endpoint variable is there.
    enabled: Option<bool>,
    /// The collector; `http://localhost:4318` (or `:4317` for gRPC) by default.
    endpoint: Option<String>,
    /// `http/protobuf` (default) or `grpc`.
    protocol: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Header name → the environment variable that holds its value (for secrets).
    #[serde(default)]
    headers_env: BTreeMap<String, String>,
    /// Limit for one export; 10 s by default.
    timeout_secs: Option<f64>,
    /// Time between two exports; 60 s by default.
    interval_secs: Option<f64>,
    service_name: Option<String>,
    #[serde(default)]
    resource_attributes: BTreeMap<String, String>,
    /// Extra PEM certificate(s) to trust for an `https://` collector.
    ca_file: Option<PathBuf>,
}

/// OTLP export, resolved from `[otlp]` and the `OTEL_*` environment variables (which win).
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Clone, PartialEq)]
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

impl OtlpConfig {
    /// Lines for `--check-config`'s summary; header values are never shown.
    pub fn describe(&self, out: &mut String) {
        let headers = if self.headers.is_empty() {
            "none".to_owned()
        } else {
            self.headers
                .iter()
                .map(|h| format!("{} ({})", h.name, h.from))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let resource = self
            .resource
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "otlp: {} to {} (from {}), every {:?}, timeout {:?}\n  headers: {headers}\n  resource: {resource}",
            self.protocol.as_str(),
            self.endpoint,
            self.endpoint_from,
            self.interval,
            self.timeout,
        );
        if let Some(path) = &self.ca_file {
            let _ = writeln!(out, "  ca file: {}", path.display());
        }
    }
}

pub(super) const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub(super) const METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const METRICS_HEADERS: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
const METRICS_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE";
const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const METRICS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
const EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

pub(super) const DEFAULT_SERVICE_NAME: &str = "socketio-exporter";
const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// The OTLP exporter specification's defaults.
const DEFAULT_TIMEOUT_SECS: f64 = 10.0;
const DEFAULT_INTERVAL_SECS: f64 = 60.0;
const METRICS_PATH: &str = "v1/metrics";

/// Reads one environment variable; empty counts as unset, as the specification says.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The OTLP settings, or `None` when OTLP export is off: no `[otlp]` section and no
/// endpoint variable, `enabled = false`, or `OTEL_SDK_DISABLED=true`.
pub(super) fn resolve(
    raw: Option<RawOtlp>,
    environment: &str,
    env: Env<'_>,
    problems: &mut Problems,
) -> Option<OtlpConfig> {
    let get = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    if get(SDK_DISABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    let endpoint_in_env = get(METRICS_ENDPOINT).is_some() || get(ENDPOINT).is_some();
    let raw = match raw {
        Some(raw) if raw.enabled == Some(false) => return None,
        Some(raw) => raw,
        None if endpoint_in_env => RawOtlp::default(),
        None => return None,
    };
    let env = Vars(&get);
    let protocol = protocol(&raw, &env, problems);
    let (endpoint, endpoint_from) = endpoint(&raw, protocol, &get, problems);
    let headers = headers(&raw, &get, problems);
    let config_timeout =
        problems.seconds("otlp.timeout_secs", raw.timeout_secs, DEFAULT_TIMEOUT_SECS);
    let timeout = match env.first([METRICS_TIMEOUT, TIMEOUT]) {
        Some((value, var)) => millis(var, &value, problems).unwrap_or(config_timeout),
        None => config_timeout,
    };
    let config_interval = problems.seconds(
        "otlp.interval_secs",
        raw.interval_secs,
        DEFAULT_INTERVAL_SECS,
    );
    let interval = match get(EXPORT_INTERVAL) {
        Some(value) => millis(EXPORT_INTERVAL, &value, problems).unwrap_or(config_interval),
        None => config_interval,
    };
    if let Some((value, var)) = env.first([METRICS_COMPRESSION, COMPRESSION])
        && value.trim() != "none"
    {
        problems.add(
            var,
            format!(
                "compression {:?} is not supported by this build: unset it or set \"none\"",
                value.trim()
            ),
        );
    }
    Some(OtlpConfig {
        protocol,
        endpoint,
        endpoint_from,
        headers,
        timeout,
        interval,
        resource: resource(&raw, environment, &get, problems),
        ca_file: ca_file(&raw, &env, problems),
    })
}

/// The non-empty `OTEL_*` variables.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The first of a signal-specific and a generic variable that is set, with its name.
    fn first(&self, vars: [&'static str; 2]) -> Option<(String, &'static str)> {
        vars.into_iter().find_map(|v| (self.0)(v).map(|x| (x, v)))
    }
}

fn protocol(raw: &RawOtlp, env: &Vars<'_>, problems: &mut Problems) -> OtlpProtocol {
    let given = env
        .first([METRICS_PROTOCOL, PROTOCOL])
        .map(|(value, var)| (value, var.to_owned()))
        .or_else(|| {
            raw.protocol
                .clone()
                .map(|p| (p, "otlp.protocol".to_owned()))
        });
    match given {
        None => OtlpProtocol::HttpProtobuf,
        Some((value, from)) => match value.trim() {
            "grpc" => OtlpProtocol::Grpc,
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            other => {
                problems.add(
                    from,
                    format!("unsupported protocol {other:?}: use \"grpc\" or \"http/protobuf\""),
                );
                OtlpProtocol::HttpProtobuf
            }
        },
    }
}

/// The CA file, which must be readable and hold a PEM certificate now.
fn ca_file(raw: &RawOtlp, env: &Vars<'_>, problems: &mut Problems) -> Option<PathBuf> {
    let (path, from) = match env.first([METRICS_CERTIFICATE, CERTIFICATE]) {
        Some((path, var)) => (PathBuf::from(path), var.to_owned()),
        None => (raw.ca_file.clone()?, "otlp.ca_file".to_owned()),
    };
    match crate::regular_file::read(&path, crate::regular_file::MAX_PEM_BYTES) {
        Err(e) => problems.add(
            from,
            format!("cannot read {}: {}", path.display(), e.brief()),
        ),
        Ok(pem) => {
            if !matches!(reqwest::Certificate::from_pem_bundle(&pem), Ok(c) if !c.is_empty()) {
                problems.add(from, format!("{} holds no PEM certificate", path.display()));
            }
        }
    }
    Some(path)
}

/// The URL exports go to. A signal-specific endpoint is used as is; a base endpoint
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `otlp.endpoint`) gets `/v1/metrics` for http/protobuf.
fn endpoint(
    raw: &RawOtlp,
    protocol: OtlpProtocol,
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> (Url, String) {
    let default = match protocol {
        OtlpProtocol::Grpc => DEFAULT_GRPC_ENDPOINT,
        OtlpProtocol::HttpProtobuf => DEFAULT_HTTP_ENDPOINT,
    };
    let (text, from, base) = if let Some(value) = get(METRICS_ENDPOINT) {
        (value, METRICS_ENDPOINT.to_owned(), false)
    } else if let Some(value) = get(ENDPOINT) {
        (value, ENDPOINT.to_owned(), true)
    } else if let Some(value) = &raw.endpoint {
        (value.clone(), "otlp.endpoint".to_owned(), true)
    } else {
        (default.to_owned(), "default".to_owned(), true)
    };
    let text = text.trim();
    let mut url = match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => url,
        _ if !text.contains("://") => {
            problems.add(
                &from,
                format!("{text:?} has no scheme: write http://{text} or https://{text}"),
            );
            return (placeholder(), from);
        }
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            problems.add(
                &from,
                format!(
                    "{text:?}: scheme {:?} is not supported, use http:// or https://",
                    url.scheme()
                ),
            );
            return (placeholder(), from);
        }
        Ok(_) | Err(_) => {
            problems.add(&from, format!("{text:?} is not a URL with a host"));
            return (placeholder(), from);
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Kept out of the URL, which is logged and shown: credentials go in a header.
        problems.add(
            &from,
            "credentials in the URL are not supported: send them as a header \
             (headers_env = { authorization = \"...\" } or OTEL_EXPORTER_OTLP_HEADERS)",
        );
        return (placeholder(), from);
    }
    let keep_path = from == "otlp.endpoint" && url.path().ends_with("/v1/metrics");
    if protocol == OtlpProtocol::HttpProtobuf && base && !keep_path {
        let path = url.path();
        let path = if path.ends_with('/') {
            format!("{path}{METRICS_PATH}")
        } else {
            format!("{path}/{METRICS_PATH}")
        };
        url.set_path(&path);
    }
    (url, from)
}

fn placeholder() -> Url {
    Url::parse("http://invalid.invalid/").expect("placeholder URL parses")
}

/// `[otlp] headers` and `headers_env`, then the headers variable over them, name by name.
/// Values are never put in a problem message: they are often credentials.
fn headers(
    raw: &RawOtlp,
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Vec<OtlpHeader> {
    let mut headers: BTreeMap<String, OtlpHeader> = BTreeMap::new();
    let mut add = |path: &str, name: &str, value: String, from: String, problems: &mut Problems| {
        if let Some(header) = header(path, name, value, from, problems) {
            headers.insert(header.name.clone(), header);
        }
    };
    for (name, value) in &raw.headers {
        add(
            "otlp.headers",
            name,
            value.clone(),
            "otlp.headers".to_owned(),
            problems,
        );
    }
    for (name, var) in &raw.headers_env {
        let path = format!("otlp.headers_env.{name}");
        if raw
            .headers
            .keys()
            .any(|inline| inline.eq_ignore_ascii_case(name))
        {
            problems.add(
                path,
                format!("header {name:?} is also set in otlp.headers: set it in one place"),
            );
            continue;
        }
        match get(var) {
            Some(value) => add(
                &path,
                name,
                value,
                format!("environment variable {var}"),
                problems,
            ),
            None => problems.add(path, format!("environment variable {var} is not set")),
        }
    }
    let from_env = get(METRICS_HEADERS)
        .map(|v| (v, METRICS_HEADERS))
        .or_else(|| get(HEADERS).map(|v| (v, HEADERS)));
    if let Some((text, var)) = from_env {
        for (i, entry) in text.split_terminator(',').map(str::trim).enumerate() {
            let Some((name, value)) = entry.split_once('=') else {
                problems.add(var, format!("entry {} is not name=value", i + 1));
                continue;
            };
            let name = name.trim();
            match percent_decode(value.trim()) {
                Some(value) => add(var, name, value, var.to_owned(), problems),
                None => problems.add(
                    var,
                    format!("the value of header {name:?} is not valid percent-encoding"),
                ),
            }
        }
    }
    headers.into_values().collect()
}

/// A header whose name and value HTTP can carry, named in lowercase.
fn header(
    path: &str,
    name: &str,
    value: String,
    from: String,
    problems: &mut Problems,
) -> Option<OtlpHeader> {
    let Ok(header) = reqwest::header::HeaderName::from_bytes(name.as_bytes()) else {
        problems.add(path, format!("{name:?} is not a valid HTTP header name"));
        return None;
    };
    if reqwest::header::HeaderValue::from_str(&value).is_err() {
        problems.add(
            path,
            format!("the value of header {name:?} has characters a header cannot hold"),
        );
        return None;
    }
    Some(OtlpHeader {
        name: header.as_str().to_owned(),
        value,
        from,
    })
}

/// Defaults, then `[otlp] resource_attributes`, then `OTEL_RESOURCE_ATTRIBUTES`, then
/// `service_name`, then `OTEL_SERVICE_NAME`: each overrides what comes before it.
fn resource(
    raw: &RawOtlp,
    environment: &str,
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> BTreeMap<String, String> {
    let mut resource = BTreeMap::new();
    resource.insert("service.name".to_owned(), DEFAULT_SERVICE_NAME.to_owned());
    resource.insert(
        "service.version".to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
    );
    resource.insert(
        "deployment.environment.name".to_owned(),
        environment.to_owned(),
    );
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    // One exporter per pod: the pod name tells instances apart. The Collector's Prometheus
    // exporter turns it into the `instance` label, without which the series of two pods
    // would collide there.
    resource.insert("service.instance.id".to_owned(), host.clone());
    resource.insert("host.name".to_owned(), host);
    for (key, value) in &raw.resource_attributes {
        if key.trim().is_empty() {
            problems.add("otlp.resource_attributes", "a key must not be empty");
        } else {
            resource.insert(key.trim().to_owned(), value.clone());
        }
    }
    if let Some(text) = get(RESOURCE_ATTRIBUTES) {
        for (i, entry) in text.split_terminator(',').map(str::trim).enumerate() {
            match entry
                .split_once('=')
                .map(|(k, v)| (k.trim(), percent_decode(v.trim())))
            {
                Some((key, Some(value))) if !key.is_empty() => {
                    resource.insert(key.to_owned(), value);
                }
                _ => problems.add(
                    RESOURCE_ATTRIBUTES,
                    format!(
                        "entry {} ({entry:?}) is not key=value with a percent-encoded value",
                        i + 1
                    ),
                ),
            }
        }
    }
    if let Some(name) = &raw.service_name {
        if name.trim().is_empty() {
            problems.add("otlp.service_name", "must not be empty");
        } else {
            resource.insert("service.name".to_owned(), name.clone());
        }
    }
    if let Some(name) = get(SERVICE_NAME) {
        resource.insert("service.name".to_owned(), name.trim().to_owned());
    }
    resource
}

/// A positive whole number of milliseconds, as the `OTEL_*` timeouts and intervals are.
fn millis(var: &str, value: &str, problems: &mut Problems) -> Option<Duration> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => {
            problems.add(
                var,
                format!("must be a positive whole number of milliseconds, got {value:?}"),
            );
            None
        }
    }
}

/// Decodes `%XX` escapes (the W3C Baggage value encoding the `OTEL_*` lists use).
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{Config, ParseError};

    const BASE: &str = r#"
        environment = "staging"
        [[sources]]
        type = "socketio_admin"
        endpoint = "http://127.0.0.1:3000"
    "#;

    fn parse(extra: &str, vars: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse_with_env(&format!("{BASE}\n{extra}"), &|name| vars.get(name).cloned())
            .map_err(|e| match e {
                ParseError::Invalid(problems) => problems.iter().map(ToString::to_string).collect(),
                ParseError::Syntax(message) => vec![message],
            })
    }

    fn otlp(extra: &str, vars: &[(&str, &str)]) -> OtlpConfig {
        parse(extra, vars).unwrap().otlp.expect("otlp on")
    }

    #[test]
    fn off_without_section_or_endpoint_variable() {
        assert!(parse("", &[]).unwrap().otlp.is_none());
        assert!(parse("", &[(PROTOCOL, "grpc")]).unwrap().otlp.is_none());
        assert!(
            parse("", &[(ENDPOINT, "")]).unwrap().otlp.is_none(),
            "empty is unset"
        );
        assert!(
            parse("", &[(ENDPOINT, "http://c:4318")])
                .unwrap()
                .otlp
                .is_some()
        );
        assert!(
            parse("", &[(METRICS_ENDPOINT, "http://c:4318/x")])
                .unwrap()
                .otlp
                .is_some()
        );
        assert!(parse("[otlp]", &[]).unwrap().otlp.is_some());
        assert!(
            parse("[otlp]\nenabled = false", &[(ENDPOINT, "http://c:4318")])
                .unwrap()
                .otlp
                .is_none()
        );
        assert!(
            parse("[otlp]", &[(SDK_DISABLED, "true")])
                .unwrap()
                .otlp
                .is_none()
        );
    }

    #[test]
    fn defaults_follow_the_specification() {
        let config = otlp("[otlp]", &[]);
        assert_eq!(config.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(config.endpoint.as_str(), "http://localhost:4318/v1/metrics");
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.interval, Duration::from_secs(60));
        assert_eq!(config.resource["service.name"], "socketio-exporter");
        assert_eq!(config.resource["deployment.environment.name"], "staging");
        assert_eq!(
            config.resource["service.version"],
            env!("CARGO_PKG_VERSION")
        );
        assert!(!config.resource["host.name"].is_empty());
        assert_eq!(
            config.resource["service.instance.id"],
            config.resource["host.name"]
        );
        let grpc = otlp("[otlp]\nprotocol = \"grpc\"", &[]);
        assert_eq!(grpc.endpoint.as_str(), "http://localhost:4317/");
    }

    #[test]
    fn environment_overrides_the_file_and_signal_variables_the_generic_ones() {
        let file = r#"
            [otlp]
            endpoint = "http://file:4318"
            protocol = "grpc"
            timeout_secs = 3
            interval_secs = 30
            service_name = "from-file"
            headers = { x-team = "file", x-only-file = "1" }
            resource_attributes = { "k8s.cluster.name" = "file", "team" = "file" }
        "#;
        let from_file = otlp(file, &[]);
        assert_eq!(from_file.protocol, OtlpProtocol::Grpc);
        assert_eq!(from_file.endpoint.as_str(), "http://file:4318/");
        assert_eq!(from_file.timeout, Duration::from_secs(3));
        assert_eq!(from_file.interval, Duration::from_secs(30));
        assert_eq!(from_file.resource["service.name"], "from-file");

        let config = otlp(
            file,
            &[
                (PROTOCOL, "grpc"),
                (METRICS_PROTOCOL, "http/protobuf"),
                (ENDPOINT, "http://env:4318/base/"),
                (TIMEOUT, "1500"),
                (EXPORT_INTERVAL, "500"),
                (SERVICE_NAME, "from-env"),
                (HEADERS, "x-team=env%20team, authorization=Bearer%20s3cret"),
                (RESOURCE_ATTRIBUTES, "team=env,service.name=ignored"),
            ],
        );
        assert_eq!(config.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(config.endpoint.as_str(), "http://env:4318/base/v1/metrics");
        assert_eq!(config.endpoint_from, ENDPOINT);
        assert_eq!(config.timeout, Duration::from_millis(1500));
        assert_eq!(config.interval, Duration::from_millis(500));
        assert_eq!(config.resource["service.name"], "from-env");
        assert_eq!(config.resource["team"], "env");
        assert_eq!(config.resource["k8s.cluster.name"], "file");
        let headers: Vec<(&str, &str, &str)> = config
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str(), h.from.as_str()))
            .collect();
        assert_eq!(
            headers,
            [
                ("authorization", "Bearer s3cret", HEADERS),
                ("x-only-file", "1", "otlp.headers"),
                ("x-team", "env team", HEADERS),
            ]
        );

        let signal = otlp(
            file,
            &[
                (METRICS_ENDPOINT, "http://signal:4318/custom"),
                (ENDPOINT, "http://env:4318"),
                (METRICS_TIMEOUT, "700"),
                (TIMEOUT, "1500"),
                (METRICS_HEADERS, "x-team=signal"),
                (HEADERS, "x-team=generic,x-generic=1"),
                (PROTOCOL, "http/protobuf"),
            ],
        );
        assert_eq!(
            signal.endpoint.as_str(),
            "http://signal:4318/custom",
            "used as is"
        );
        assert_eq!(signal.timeout, Duration::from_millis(700));
        // Like the SDK: the signal variable replaces the generic one, it does not merge.
        assert!(
            signal
                .headers
                .iter()
                .any(|h| h.name == "x-team" && h.value == "signal")
        );
        assert!(!signal.headers.iter().any(|h| h.name == "x-generic"));
    }

    #[test]
    fn service_name_beats_resource_attributes_in_each_layer() {
        let config = otlp(
            "[otlp]\nresource_attributes = { \"service.name\" = \"attr\" }",
            &[(RESOURCE_ATTRIBUTES, "service.name=env-attr")],
        );
        assert_eq!(config.resource["service.name"], "env-attr");
        let config = otlp(
            "[otlp]\nservice_name = \"key\"",
            &[(RESOURCE_ATTRIBUTES, "service.name=env-attr")],
        );
        assert_eq!(config.resource["service.name"], "key");
    }

    #[test]
    fn a_full_metrics_url_in_the_file_is_kept() {
        let config = otlp(
            "[otlp]\nendpoint = \"https://c.example/otlp/v1/metrics\"",
            &[],
        );
        assert_eq!(
            config.endpoint.as_str(),
            "https://c.example/otlp/v1/metrics"
        );
        let config = otlp("[otlp]\nendpoint = \"https://c.example/otlp\"", &[]);
        assert_eq!(
            config.endpoint.as_str(),
            "https://c.example/otlp/v1/metrics"
        );
    }

    #[test]
    fn header_secrets_come_from_the_environment_and_are_never_shown() {
        let config = parse(
            "[otlp]\nheaders_env = { authorization = \"OTLP_TOKEN\" }\nheaders = { x-tenant = \"tenant-secret-1\" }",
            &[
                ("OTLP_TOKEN", "Bearer hunter2"),
                (HEADERS, "x-api-key=s3cret"),
            ],
        )
        .unwrap();
        let otlp = config.otlp.as_ref().unwrap();
        assert_eq!(otlp.headers[0].value, "Bearer hunter2");
        let shown = format!("{config:?}\n{}", config.summary());
        for secret in ["hunter2", "s3cret", "tenant-secret-1"] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(
            shown.contains("authorization (environment variable OTLP_TOKEN)"),
            "{shown}"
        );
        assert!(
            shown.contains("x-api-key (OTEL_EXPORTER_OTLP_HEADERS)"),
            "{shown}"
        );
    }

    #[test]
    fn every_problem_is_named_by_its_key_or_variable() {
        let found = parse(
            r#"
            [otlp]
            endpoint = "collector:4317"
            protocol = "grpc"
            timeout_secs = 0
            headers = { "bad header" = "x" }
            headers_env = { authorization = "SURELY_UNSET_OTLP_TOKEN" }
            ca_file = "/surely/missing.pem"
            "#,
            &[
                (EXPORT_INTERVAL, "soon"),
                (RESOURCE_ATTRIBUTES, "ok=1,broken"),
                (HEADERS, "x-api-key=%zz"),
                (COMPRESSION, "gzip"),
                (METRICS_PROTOCOL, "http/json"),
            ],
        )
        .unwrap_err();
        let expected = [
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: unsupported protocol \"http/json\"",
            "otlp.endpoint: \"collector:4317\" has no scheme: write http://collector:4317 or https://collector:4317",
            "otlp.headers: \"bad header\" is not a valid HTTP header name",
            "otlp.headers_env.authorization: environment variable SURELY_UNSET_OTLP_TOKEN is not set",
            "OTEL_EXPORTER_OTLP_HEADERS: the value of header \"x-api-key\" is not valid percent-encoding",
            "otlp.timeout_secs: must be a positive number of seconds, got 0",
            "OTEL_METRIC_EXPORT_INTERVAL: must be a positive whole number of milliseconds, got \"soon\"",
            "OTEL_EXPORTER_OTLP_COMPRESSION: compression \"gzip\" is not supported",
            "otlp.ca_file: cannot read /surely/missing.pem",
            "OTEL_RESOURCE_ATTRIBUTES: entry 2 (\"broken\") is not key=value",
        ];
        for want in expected {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        assert!(
            !found.iter().any(|p| p.contains("%zz")),
            "values are not echoed"
        );
    }

    #[test]
    fn shipped_example_otlp_section_is_valid_when_uncommented() {
        let text = include_str!("../../config.toml");
        let start = text
            .find("# [otlp]")
            .expect("config.toml shows an [otlp] example");
        let section: String = text[start..]
            .lines()
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
            .collect();
        let text = format!("{}{section}", &text[..start]);
        let vars: HashMap<&str, &str> = [("OTLP_AUTHORIZATION", "Bearer x")].into();
        let problems =
            match Config::parse_with_env(&text, &|name| vars.get(name).map(ToString::to_string)) {
                Ok(config) => {
                    let otlp = config.otlp.expect("otlp on");
                    assert_eq!(otlp.endpoint.as_str(), "http://127.0.0.1:4318/v1/metrics");
                    assert_eq!(otlp.interval, Duration::from_secs(15));
                    return;
                }
                Err(ParseError::Invalid(problems)) => problems,
                Err(e) => panic!("{e:?}"),
            };
        // The demo's admin password variable may be unset where tests run.
        assert!(
            problems
                .iter()
                .all(|p| p.message.contains("SOCKETIO_ADMIN_PASSWORD")),
            "{problems:?}"
        );
    }

    #[test]
    fn credentials_in_the_endpoint_are_refused_and_not_echoed() {
        let found = parse("", &[(ENDPOINT, "https://user:pa55@c.example:4318")]).unwrap_err();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: credentials in the URL"),
            "{found:?}"
        );
        assert!(!found[0].contains("pa55"));
    }

    #[test]
    fn unknown_otlp_keys_are_rejected() {
        let found = parse("[otlp]\nendpoints = \"http://c:4318\"", &[]).unwrap_err();
        assert!(found[0].contains("unknown field `endpoints`"), "{found:?}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2C%3D").as_deref(), Some("a b,="));
        assert_eq!(percent_decode("100%"), None);
        assert_eq!(percent_decode("%C3%A4").as_deref(), Some("ä"));
        assert_eq!(percent_decode("%FF"), None);
    }
}
