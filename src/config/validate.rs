//! Raw config → typed [`Config`], collecting every problem with its key path.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::otlp;
use super::raw::{
    RawCommon, RawConfig, RawGroup, RawHttpJson, RawPush, RawReportFile, RawScope,
    RawSocketioAdmin, RawSource, split_source,
};
use super::{
    Config, Credentials, HttpAuth, HttpJsonConfig, JsonMapping, NamespaceGroup, NamespaceRules,
    Problem, PushConfig, ReportFileConfig, Scope, Secret, SocketioAdminConfig, SourceConfig,
    SourceKind, SyncConfig,
};

/// The default listen address. 8797 lies outside the 9100–9999 range that Prometheus
/// exporters have claimed, so it does not collide with node_exporter and friends in a pod.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8797";

const DEFAULT_INTERVAL_SECS: f64 = 2.0;
const DEFAULT_STALE_AFTER_SECS: f64 = 10.0;
const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 5.0;
/// admin-ui broadcasts `server_stats` every 2 s; its interval cannot be changed.
const ADMIN_UI_STATS_PERIOD_SECS: f64 = 2.0;
/// Namespace values per server unless `max_namespaces` says otherwise.
const DEFAULT_MAX_NAMESPACES: i64 = 1000;
/// The largest `max_namespaces` accepted: memory grows with it.
const MAX_MAX_NAMESPACES: i64 = 100_000;
const DEFAULT_HTTP_INTERVAL_SECS: f64 = 5.0;
const DEFAULT_HTTP_TIMEOUT_SECS: f64 = 2.0;
const DEFAULT_MAX_BODY_BYTES: i64 = 1 << 20;
const MAX_MAX_BODY_BYTES: i64 = 64 << 20;

#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A positive, finite number of seconds, or `default` when the key is absent.
    pub(super) fn seconds(&mut self, path: &str, value: Option<f64>, default: f64) -> Duration {
        let secs = value.unwrap_or(default);
        if secs.is_finite() && secs > 0.0 && secs < 1e9 {
            Duration::from_secs_f64(secs)
        } else {
            self.add(
                path,
                format!("must be a positive number of seconds, got {secs}"),
            );
            Duration::from_secs_f64(default)
        }
    }

    /// An integer in `1..=max`, or `default` when the key is absent.
    fn count(&mut self, path: &str, value: Option<i64>, default: i64, max: i64) -> usize {
        let n = value.unwrap_or(default);
        if (1..=max).contains(&n) {
            n as usize
        } else {
            self.add(path, format!("must be between 1 and {max}, got {n}"));
            default as usize
        }
    }
}

/// `env` reads the `OTEL_*` variables of the `[otlp]` settings (tests pass their own).
pub(super) fn validate(raw: RawConfig, env: otlp::Env<'_>) -> Result<Config, Vec<Problem>> {
    let mut problems = Problems::default();

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

    let interval = problems.seconds(
        "sync.interval_secs",
        raw.sync.interval_secs,
        DEFAULT_INTERVAL_SECS,
    );
    let stale_after = problems.seconds(
        "sync.stale_after_secs",
        raw.sync.stale_after_secs,
        DEFAULT_STALE_AFTER_SECS,
    );
    if stale_after <= interval {
        problems.add(
            "sync.stale_after_secs",
            format!(
                "must be longer than sync.interval_secs ({}s), got {}s",
                interval.as_secs_f64(),
                stale_after.as_secs_f64()
            ),
        );
    }

    if raw.sources.is_empty() {
        problems.add(
            "sources",
            "at least one [[sources]] table is required (e.g. type = \"socketio_admin\")",
        );
    }
    let mut names = HashSet::new();
    let mut pushes = 0;
    let mut sources = Vec::with_capacity(raw.sources.len());
    for (i, table) in raw.sources.into_iter().enumerate() {
        let path = format!("sources[{i}]");
        let (common, raw_kind) = match split_source(table) {
            Ok(split) => split,
            Err(message) => {
                problems.add(&path, message);
                continue;
            }
        };
        let kind = match raw_kind {
            RawSource::SocketioAdmin(admin) => {
                if stale_after.as_secs_f64() <= ADMIN_UI_STATS_PERIOD_SECS {
                    problems.add(
                        "sync.stale_after_secs",
                        format!(
                            "must be longer than admin-ui's fixed 2 s stats period \
                             ({path} is a socketio_admin source), got {}s",
                            stale_after.as_secs_f64()
                        ),
                    );
                }
                SourceKind::SocketioAdmin(socketio_admin(&path, admin, &mut problems))
            }
            RawSource::HttpJson(http) => {
                SourceKind::HttpJson(http_json(&path, *http, &mut problems))
            }
            RawSource::ReportFile(file) => {
                SourceKind::ReportFile(report_file(&path, file, &mut problems))
            }
            RawSource::Push(push) => {
                pushes += 1;
                if pushes > 1 {
                    problems.add(
                        format!("{path}.type"),
                        "only one push source is allowed: it owns POST /push/report and /push/events",
                    );
                }
                SourceKind::Push(self::push(&path, push, &mut problems))
            }
        };
        let name = common
            .name
            .clone()
            .unwrap_or_else(|| kind.type_name().to_owned());
        if name.is_empty() {
            problems.add(format!("{path}.name"), "must not be empty");
        } else if !names.insert(name.clone()) {
            problems.add(
                format!("{path}.name"),
                format!("duplicate source name {name:?}: give each source a distinct name"),
            );
        }
        let (scope, own_server_id) = scope(&path, &common, &mut problems);
        let namespaces = namespace_rules(&path, common, &mut problems);
        sources.push(SourceConfig {
            name,
            scope,
            own_server_id,
            namespaces,
            kind,
        });
    }

    let otlp = otlp::resolve(raw.otlp, &environment, env, &mut problems);

    let config = Config {
        environment,
        listen,
        sync: SyncConfig {
            interval,
            stale_after,
        },
        sources,
        otlp,
    };
    if problems.0.is_empty() {
        Ok(config)
    } else {
        Err(problems.0)
    }
}

impl Config {
    /// Problems that depend on the effective listen address, checked after `--listen` has
    /// overridden the file: a push source without a token must not be reachable from outside.
    pub fn exposure_problems(&self) -> Vec<Problem> {
        let mut problems = Problems::default();
        for (i, source) in self.sources.iter().enumerate() {
            if let SourceKind::Push(push) = &source.kind
                && push.token.is_none()
                && !push.allow_unauthenticated
                && !self.listen.ip().is_loopback()
            {
                problems.add(
                    format!("sources[{i}].token"),
                    format!(
                        "a push source on the non-loopback address {} needs a token \
                         (token_env or token_file), or allow_unauthenticated = true",
                        self.listen
                    ),
                );
            }
        }
        problems.0
    }
}

/// The scope and the server id that reports without one belong to.
fn scope(path: &str, common: &RawCommon, problems: &mut Problems) -> (Scope, String) {
    let own = server_id(
        path,
        common.server_id.clone(),
        common.server_id_env.clone(),
        problems,
    );
    match common.scope.unwrap_or(RawScope::Local) {
        RawScope::Local => (
            Scope::Local {
                server_id: own.clone(),
            },
            own,
        ),
        RawScope::Cluster => (Scope::Cluster, own),
    }
}

fn namespace_rules(path: &str, common: RawCommon, problems: &mut Problems) -> NamespaceRules {
    let max = problems.count(
        &format!("{path}.max_namespaces"),
        common.max_namespaces,
        DEFAULT_MAX_NAMESPACES,
        MAX_MAX_NAMESPACES,
    );
    let groups = common
        .namespace_groups
        .into_iter()
        .enumerate()
        .filter_map(
            |(j, RawGroup { pattern, replace })| match regex::Regex::new(&pattern) {
                Ok(pattern) => Some(NamespaceGroup { pattern, replace }),
                Err(e) => {
                    problems.add(
                        format!("{path}.namespace_groups[{j}].pattern"),
                        format!("not a valid regular expression: {e}"),
                    );
                    None
                }
            },
        )
        .collect();
    NamespaceRules { groups, max }
}

fn socketio_admin(
    path: &str,
    raw: RawSocketioAdmin,
    problems: &mut Problems,
) -> SocketioAdminConfig {
    let socket_path = raw.path.unwrap_or_else(|| "/socket.io/".to_owned());
    if !socket_path.starts_with('/') {
        problems.add(
            format!("{path}.path"),
            format!("must start with \"/\", got {socket_path:?}"),
        );
    }
    let url = match raw.endpoint {
        Some(endpoint) => websocket_url(&endpoint, &socket_path).unwrap_or_else(|message| {
            problems.add(format!("{path}.endpoint"), message);
            placeholder_url()
        }),
        None => {
            problems.add(
                format!("{path}.endpoint"),
                "missing: the app's Socket.IO server, e.g. \"http://127.0.0.1:3000\"",
            );
            placeholder_url()
        }
    };

    let admin_namespace = raw.admin_namespace.unwrap_or_else(|| "/admin".to_owned());
    if !admin_namespace.starts_with('/') || admin_namespace.contains(',') {
        problems.add(
            format!("{path}.admin_namespace"),
            format!("must start with \"/\" and contain no comma, got {admin_namespace:?}"),
        );
    }

    let credentials = credentials(
        path,
        raw.username,
        raw.password,
        raw.password_env,
        raw.password_file,
        problems,
    );
    SocketioAdminConfig {
        url,
        admin_namespace,
        include_admin_namespace: raw.include_admin_namespace.unwrap_or(false),
        credentials,
        connect_timeout: problems.seconds(
            &format!("{path}.connect_timeout_secs"),
            raw.connect_timeout_secs,
            DEFAULT_CONNECT_TIMEOUT_SECS,
        ),
    }
}

fn http_json(path: &str, raw: RawHttpJson, problems: &mut Problems) -> HttpJsonConfig {
    let url = match raw.endpoint.as_deref().map(Url::parse) {
        Some(Ok(url)) if matches!(url.scheme(), "http" | "https") => url,
        Some(Ok(url)) => {
            problems.add(
                format!("{path}.endpoint"),
                format!(
                    "scheme {:?} is not supported, use http:// or https://",
                    url.scheme()
                ),
            );
            placeholder_url()
        }
        Some(Err(e)) => {
            problems.add(
                format!("{path}.endpoint"),
                format!(
                    "{:?} is not an absolute URL ({e})",
                    raw.endpoint.unwrap_or_default()
                ),
            );
            placeholder_url()
        }
        None => {
            problems.add(
                format!("{path}.endpoint"),
                "missing: the app's JSON endpoint, e.g. \"http://127.0.0.1:3000/api/connections\"",
            );
            placeholder_url()
        }
    };
    let interval = problems.seconds(
        &format!("{path}.interval_secs"),
        raw.interval_secs,
        DEFAULT_HTTP_INTERVAL_SECS,
    );
    let timeout = problems.seconds(
        &format!("{path}.timeout_secs"),
        raw.timeout_secs,
        DEFAULT_HTTP_TIMEOUT_SECS,
    );
    for name in raw.headers.keys() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.add(
                format!("{path}.headers"),
                format!("{name:?} is not a valid HTTP header name"),
            );
        }
    }
    let basic = credentials(
        path,
        raw.username,
        raw.password,
        raw.password_env,
        raw.password_file,
        problems,
    );
    let bearer = secret(
        path,
        "bearer_token",
        raw.bearer_token,
        raw.bearer_token_env,
        raw.bearer_token_file,
        problems,
    );
    let auth = match (basic, bearer) {
        (None, None) => HttpAuth::None,
        (Some(basic), None) => HttpAuth::Basic(basic),
        (None, Some(token)) => HttpAuth::Bearer(token),
        (Some(_), Some(_)) => {
            problems.add(
                format!("{path}.bearer_token"),
                "set either basic auth (username + password) or a bearer token, not both",
            );
            HttpAuth::None
        }
    };
    if let Some(ca) = &raw.ca_file
        && let Err(e) = std::fs::read(ca)
    {
        problems.add(
            format!("{path}.ca_file"),
            format!("cannot read {}: {}", ca.display(), e.kind()),
        );
    }
    let mut pointer = |key: &str, value: Option<String>| -> Option<String> {
        let value = value?;
        if !(value.is_empty() || value.starts_with('/')) {
            problems.add(
                format!("{path}.{key}"),
                format!("{value:?} is not a JSON pointer: it must be empty or start with \"/\""),
            );
        }
        Some(value)
    };
    let mapping = JsonMapping {
        namespaces_pointer: pointer("namespaces_pointer", raw.namespaces_pointer)
            .unwrap_or_else(|| "/namespaces".to_owned()),
        clients_pointer: pointer("clients_pointer", raw.clients_pointer),
        server_id_pointer: pointer("server_id_pointer", raw.server_id_pointer),
        namespace_field: raw.namespace_field.unwrap_or_else(|| "name".to_owned()),
        count_field: raw.count_field.unwrap_or_else(|| "count".to_owned()),
    };
    HttpJsonConfig {
        url,
        interval,
        timeout,
        headers: raw.headers.into_iter().collect(),
        auth,
        ca_file: raw.ca_file,
        max_body_bytes: problems.count(
            &format!("{path}.max_body_bytes"),
            raw.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
            MAX_MAX_BODY_BYTES,
        ),
        mapping,
    }
}

fn report_file(path: &str, raw: RawReportFile, problems: &mut Problems) -> ReportFileConfig {
    match (raw.path, raw.directory) {
        (Some(file), None) => ReportFileConfig::File(file),
        (None, Some(directory)) => ReportFileConfig::Directory(directory),
        (Some(_), Some(_)) => {
            problems.add(
                format!("{path}.path"),
                "set either path (one report file) or directory (one file per server), not both",
            );
            ReportFileConfig::File(PathBuf::new())
        }
        (None, None) => {
            problems.add(
                format!("{path}.path"),
                "missing: the report file (path) or a directory of reports (directory)",
            );
            ReportFileConfig::File(PathBuf::new())
        }
    }
}

fn push(path: &str, raw: RawPush, problems: &mut Problems) -> PushConfig {
    PushConfig {
        token: secret(
            path,
            "token",
            raw.token,
            raw.token_env,
            raw.token_file,
            problems,
        ),
        max_body_bytes: problems.count(
            &format!("{path}.max_body_bytes"),
            raw.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
            MAX_MAX_BODY_BYTES,
        ),
        allow_unauthenticated: raw.allow_unauthenticated.unwrap_or(false),
    }
}

/// Basic auth from `username` and `password` / `password_env` / `password_file`: a
/// username and a password come together or not at all.
fn credentials(
    path: &str,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    problems: &mut Problems,
) -> Option<Credentials> {
    let password = secret(
        path,
        "password",
        password,
        password_env,
        password_file,
        problems,
    );
    match (username, password) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        (None, None) => None,
        (Some(_), None) => {
            problems.add(
                format!("{path}.username"),
                "is set but no password is: add password_env or password_file (or password)",
            );
            None
        }
        (None, Some(_)) => {
            problems.add(
                format!("{path}.username"),
                "missing: basic auth needs a username with the password",
            );
            None
        }
    }
}

/// The admin-ui server id of this host: `server_id`, else the variable `server_id_env`,
/// else the hostname (admin-ui's own default, and the pod name in Kubernetes).
fn server_id(
    path: &str,
    inline: Option<String>,
    env: Option<String>,
    problems: &mut Problems,
) -> String {
    match (inline, env) {
        (Some(_), Some(_)) => {
            problems.add(
                format!("{path}.server_id"),
                "set either server_id or server_id_env, not both",
            );
            String::new()
        }
        (Some(id), None) if id.is_empty() => {
            problems.add(format!("{path}.server_id"), "must not be empty");
            id
        }
        (Some(id), None) => id,
        (None, Some(var)) => match std::env::var(&var) {
            Ok(id) if !id.is_empty() => id,
            _ => {
                problems.add(
                    format!("{path}.server_id_env"),
                    format!("environment variable {var} is not set or empty"),
                );
                String::new()
            }
        },
        (None, None) => gethostname::gethostname().to_string_lossy().into_owned(),
    }
}

/// At most one of `<key>`, `<key>_env`, `<key>_file`; the env variable must be set and the
/// file readable now, so that `--check-config` catches a missing secret before deploy.
fn secret(
    path: &str,
    key: &str,
    inline: Option<String>,
    env: Option<String>,
    file: Option<std::path::PathBuf>,
    problems: &mut Problems,
) -> Option<Secret> {
    let given: Vec<Secret> = [
        inline.map(Secret::Inline),
        env.map(Secret::Env),
        file.map(Secret::File),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        problems.add(
            format!("{path}.{key}"),
            format!("set only one of {key}, {key}_env and {key}_file"),
        );
        return given.into_iter().next();
    }
    let secret = given.into_iter().next()?;
    let suffix = match &secret {
        Secret::Inline(_) => "",
        Secret::Env(_) => "_env",
        Secret::File(_) => "_file",
    };
    if let Err(e) = secret.read() {
        problems.add(format!("{path}.{key}{suffix}"), e.to_string());
    }
    Some(secret)
}

/// `http://host:port` (or `ws://`) plus the Socket.IO path → the Engine.IO WebSocket URL.
fn websocket_url(endpoint: &str, socket_path: &str) -> Result<Url, String> {
    let mut url =
        Url::parse(endpoint).map_err(|e| format!("{endpoint:?} is not an absolute URL ({e})"))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => {
            return Err(format!(
                "{endpoint:?}: TLS endpoints are not supported yet; point the sidecar at the \
                 app's plain-HTTP listener inside the pod (e.g. http://127.0.0.1:3000)"
            ));
        }
        other => {
            return Err(format!(
                "{endpoint:?}: scheme {other:?} is not supported, use http:// or ws://"
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
        .expect("ws is a valid special scheme");
    url.set_path(socket_path);
    url.set_query(Some("EIO=4&transport=websocket"));
    Ok(url)
}

fn placeholder_url() -> Url {
    Url::parse("ws://invalid.invalid/").expect("placeholder URL parses")
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ParseError};
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text) {
            Err(ParseError::Invalid(problems)) => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected validation problems, got {other:?}"),
        }
    }

    const MINIMAL: &str = r#"
        environment = "test"
        [[sources]]
        type = "socketio_admin"
        endpoint = "http://127.0.0.1:3000"
    "#;

    #[test]
    fn shipped_example_config_is_valid() {
        // SAFETY of the test: config.toml reads its password from this variable.
        let text = include_str!("../../config.toml");
        let raw: RawConfig = toml::from_str(text).expect("config.toml parses");
        // The password variable may be unset where tests run; check everything else.
        let problems = match validate(raw, &|name| std::env::var(name).ok()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        };
        let unexpected: Vec<_> = problems
            .iter()
            .filter(|p| !p.message.contains("is not set"))
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:?}");
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let config = Config::parse(MINIMAL).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.sync.interval, Duration::from_secs(2));
        assert_eq!(config.sync.stale_after, Duration::from_secs(10));
        let SourceKind::SocketioAdmin(admin) = &config.sources[0].kind else {
            panic!("expected a socketio_admin source")
        };
        assert_eq!(config.sources[0].name, "socketio_admin");
        assert_eq!(
            admin.url.as_str(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(admin.admin_namespace, "/admin");
        assert!(!admin.include_admin_namespace);
        assert!(matches!(config.sources[0].scope, Scope::Local { .. }));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key_path() {
        let found = problems(
            r#"
            environment = ""
            [listen]
            address = "localhost"
            [sync]
            interval_secs = 0
            [[sources]]
            type = "socketio_admin"
            endpoint = "/relative"
            username = "admin"
            [[sources]]
            type = "socketio_admin"
            name = "socketio_admin"
            endpoint = "ftp://x"
            password = "a"
            password_env = "B"
            "#,
        );
        let expected = [
            "environment: must not be empty",
            "listen.address: \"localhost\" is not an IP address",
            "sync.interval_secs: must be a positive number of seconds, got 0",
            "sources[0].endpoint: \"/relative\" is not an absolute URL (relative URL without a base)",
            "sources[0].username: is set but no password is",
            "sources[1].endpoint: \"ftp://x\": scheme \"ftp\" is not supported",
            "sources[1].password: set only one of password, password_env and password_file",
            "sources[1].username: missing: basic auth needs a username",
            "sources[1].name: duplicate source name \"socketio_admin\"",
        ];
        for want in expected {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Config::parse("environment = \"x\"\n[sync]\nintervall_secs = 3\n").unwrap_err();
        let ParseError::Syntax(message) = err else {
            panic!("expected a syntax error, got {err:?}")
        };
        assert!(
            message.contains("unknown field `intervall_secs`"),
            "{message}"
        );

        let in_source = problems(&format!("{MINIMAL}\nintervall_secs = 3\n"));
        assert_eq!(in_source.len(), 1);
        assert!(
            in_source[0].starts_with(
                "sources[0]: unknown field `intervall_secs`, expected one of `endpoint`"
            ),
            "{in_source:?}"
        );
    }

    #[test]
    fn secrets_are_never_shown() {
        let config = Config::parse(&format!(
            "{MINIMAL}\nusername = \"admin\"\npassword = \"hunter2\"\n"
        ))
        .unwrap();
        let shown = format!("{config:?}\n{}", config.summary());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("inline (redacted)"));
    }

    #[test]
    fn missing_password_variable_is_named() {
        let found = problems(&format!(
            "{MINIMAL}\nusername = \"admin\"\npassword_env = \"SOCKETIO_EXPORTER_TEST_SURELY_UNSET\"\n"
        ));
        assert_eq!(
            found,
            [
                "sources[0].password_env: environment variable SOCKETIO_EXPORTER_TEST_SURELY_UNSET is not set"
            ]
        );
    }

    #[test]
    fn stale_after_must_outlast_admin_ui_stats_period() {
        let found = problems(&format!(
            "{MINIMAL}\n[sync]\ninterval_secs = 1\nstale_after_secs = 2\n"
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("sync.stale_after_secs: must be longer than admin-ui's"));
    }

    #[test]
    fn local_scope_matches_own_id_and_its_cluster_workers_only() {
        let scope = Scope::Local {
            server_id: "pod-a".into(),
        };
        assert!(scope.includes("pod-a"));
        assert!(scope.includes("pod-a#4242"));
        assert!(!scope.includes("pod-ab"));
        assert!(!scope.includes("pod-b"));
        assert!(Scope::Cluster.includes("anything"));
    }

    #[test]
    fn endpoint_with_custom_path() {
        let config = Config::parse(&format!("{MINIMAL}\npath = \"/ws/\"\n")).unwrap();
        let SourceKind::SocketioAdmin(admin) = &config.sources[0].kind else {
            panic!("expected a socketio_admin source")
        };
        assert_eq!(
            admin.url.as_str(),
            "ws://127.0.0.1:3000/ws/?EIO=4&transport=websocket"
        );
    }
}
