//! Source `http_json`: polls a JSON endpoint of the app (its own admin or monitoring
//! endpoint) and maps the JSON to per-namespace counts with JSON pointers, no code needed.

mod config;

use std::time::Duration;

use serde_json::Value;

pub(crate) use self::config::{Config, HttpAuth, JsonMapping};
use super::context::{SourceContext, SourceType};
use super::format;
use crate::backoff::Backoff;
use crate::config::secret::SecretError;
use crate::update::{Engine, Event, Reason, ServerCounts, Silence};

const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Why one poll failed.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("cannot read the credentials: {0}")]
    Secret(#[from] SecretError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(reqwest::Error),
    #[error("HTTP status {0}, expected 2xx")]
    Status(reqwest::StatusCode),
    #[error("HTTP status {0}, a redirect: set follow_redirects = true to follow it")]
    Redirect(reqwest::StatusCode),
    #[error("body larger than max_body_bytes ({0})")]
    TooLarge(usize),
    #[error("body is not JSON: {0}")]
    Json(serde_json::Error),
    #[error("{0}")]
    Shape(String),
}

impl PollError {
    fn reason(&self) -> Reason {
        match self {
            PollError::Secret(_) => Reason::Config,
            PollError::Timeout(_) => Reason::Timeout,
            PollError::Request(_) => Reason::Connect,
            PollError::Status(_) | PollError::Redirect(_) => Reason::HttpStatus,
            PollError::TooLarge(_) => Reason::TooLarge,
            PollError::Json(_) => Reason::InvalidJson,
            PollError::Shape(_) => Reason::InvalidReport,
        }
    }
}

impl SourceType for Config {
    const REASONS: &'static [Reason] = &[
        Reason::Connect,
        Reason::Timeout,
        Reason::HttpStatus,
        Reason::TooLarge,
        Reason::InvalidJson,
        Reason::InvalidReport,
        Reason::Config,
        Reason::Stale,
        Reason::TooManyServers,
        Reason::ServerIdNotSeen,
        Reason::Internal,
    ];
    const SILENCE: Silence = Silence::Stale(Reason::Stale);
    async fn run(self, mut cx: SourceContext) {
        let url = self.url.to_string();
        let client = match client(&self) {
            Ok(client) => client,
            Err(e) => {
                let error = format!("cannot build the HTTP client: {e:#}");
                cx.failed(Reason::Config, &url, &error, None).await;
                return;
            }
        };
        let mut backoff = Backoff::new(self.interval, BACKOFF_MAX.max(self.interval));
        loop {
            let delay = match poll(&client, &self).await {
                Ok(counts) => {
                    if cx.recovered() {
                        tracing::info!(source = cx.name.as_str(), url, "polling succeeds again");
                    }
                    cx.send(Event::Counts(counts)).await;
                    backoff.reset();
                    self.interval
                }
                Err(error) => {
                    let delay = backoff.next_delay();
                    cx.failed(error.reason(), &url, &error, Some(delay)).await;
                    delay
                }
            };
            if !cx.sleep(delay).await {
                return;
            }
        }
    }
}

/// Builds the HTTP client: rustls, the configured CA added to the system roots.
pub(crate) fn client(config: &Config) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .user_agent(concat!("socketio-exporter/", env!("CARGO_PKG_VERSION")))
        .redirect(redirects(config.follow_redirects));
    if let Some(ca) = &config.ca_file {
        let pem = crate::regular_file::read(ca, crate::regular_file::MAX_PEM_BYTES)
            .map_err(|e| anyhow::anyhow!("ca_file {}: {e}", ca.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| anyhow::anyhow!("ca_file {}: {e}", ca.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder.build()?)
}

/// No redirects unless `follow_redirects`; then at most 3, and never from https to http,
/// which would send the credentials in the clear.
fn redirects(follow: bool) -> reqwest::redirect::Policy {
    if !follow {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt.previous().iter().any(|url| url.scheme() == "https");
        if downgrade {
            attempt.error("refusing a redirect from https to http")
        } else if attempt.previous().len() > 3 {
            attempt.error("more than 3 redirects")
        } else {
            attempt.follow()
        }
    })
}

async fn poll(client: &reqwest::Client, config: &Config) -> Result<ServerCounts, PollError> {
    let mut request = client.get(config.url.clone());
    for (name, value) in &config.headers {
        request = request.header(name, value);
    }
    request = match &config.auth {
        HttpAuth::None => request,
        HttpAuth::Basic(c) => request.basic_auth(&c.username, Some(c.password.read()?)),
        HttpAuth::Bearer(token) => request.bearer_auth(token.read()?),
    };
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            PollError::Timeout(config.timeout)
        } else {
            PollError::Request(e)
        }
    };
    let mut response = request.send().await.map_err(failed)?;
    if response.status().is_redirection() {
        return Err(PollError::Redirect(response.status()));
    }
    if !response.status().is_success() {
        return Err(PollError::Status(response.status()));
    }
    let limit = config.max_body_bytes;
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(PollError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > limit {
            return Err(PollError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    let json: Value = serde_json::from_slice(&body).map_err(PollError::Json)?;
    map(&json, &config.mapping).map_err(PollError::Shape)
}

/// Maps the endpoint's JSON to a report with the configured pointers.
pub(crate) fn map(json: &Value, mapping: &JsonMapping) -> Result<ServerCounts, String> {
    let pointer = &mapping.namespaces_pointer;
    let found = json
        .pointer(pointer)
        .ok_or_else(|| format!("namespaces_pointer {pointer:?}: nothing there"))?;
    let namespaces = match found {
        Value::Object(map) => map
            .iter()
            .map(|(name, count)| Ok((name.clone(), count_at(count, &format!("{pointer}/{name}"))?)))
            .collect::<Result<Vec<_>, String>>()?,
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = format!("{pointer}/{i}");
                let name = item
                    .get(&mapping.namespace_field)
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        format!(
                            "{at}: expected a string field {:?} (namespace_field)",
                            mapping.namespace_field
                        )
                    })?;
                let count = item.get(&mapping.count_field).ok_or_else(|| {
                    format!(
                        "{at}: expected a field {:?} (count_field)",
                        mapping.count_field
                    )
                })?;
                Ok((
                    name.to_owned(),
                    count_at(count, &format!("{at}/{}", mapping.count_field))?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?,
        other => {
            return Err(format!(
                "namespaces_pointer {pointer:?}: expected an object of counts or an array, found {}",
                kind(other)
            ));
        }
    };
    let clients = match &mapping.clients_pointer {
        Some(p) => Some(count_at(
            json.pointer(p)
                .ok_or_else(|| format!("clients_pointer {p:?}: nothing there"))?,
            p,
        )?),
        None => None,
    };
    let server_id = match &mapping.server_id_pointer {
        Some(p) => Some(
            json.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("server_id_pointer {p:?}: expected a non-empty string"))?
                .to_owned(),
        ),
        None => None,
    };
    Ok(ServerCounts {
        server_id,
        clients,
        namespaces,
        age: Duration::ZERO,
        seq: None,
        engine: engine_at(json, mapping)?,
    })
}

/// The `engine` object at `engine_pointer`, when one is configured.
fn engine_at(json: &Value, mapping: &JsonMapping) -> Result<Option<Engine>, String> {
    let Some(p) = &mapping.engine_pointer else {
        return Ok(None);
    };
    let value = json
        .pointer(p)
        .ok_or_else(|| format!("engine_pointer {p:?}: nothing there"))?;
    format::parse_engine(value, &format!("engine_pointer {p:?}")).map(Some)
}

fn count_at(value: &Value, at: &str) -> Result<u64, String> {
    let count = value.as_u64().ok_or_else(|| {
        format!(
            "{at}: expected a non-negative integer count, found {}",
            kind(value)
        )
    })?;
    format::check_count(count).map_err(|e| format!("{at}: {e}"))
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::update::Counted;

    fn mapping(pointer: &str) -> JsonMapping {
        JsonMapping {
            namespaces_pointer: pointer.into(),
            namespace_field: "name".into(),
            count_field: "count".into(),
            clients_pointer: None,
            server_id_pointer: None,
            engine_pointer: None,
        }
    }

    #[test]
    fn object_map_of_counts() {
        let json = json!({"namespaces": {"/": 2, "/chat": 0}});
        let report = map(&json, &mapping("/namespaces")).unwrap();
        assert_eq!(report.namespaces, [("/".into(), 2), ("/chat".into(), 0)]);
    }

    #[test]
    fn array_of_objects_with_clients_and_server_id() {
        let json = json!({
            "data": {"sockets": [{"nsp": "/", "n": 3}, {"nsp": "/chat", "n": 1}]},
            "engine": {"clients": 4},
            "serverId": "pod-a"
        });
        let mut m = mapping("/data/sockets");
        m.namespace_field = "nsp".into();
        m.count_field = "n".into();
        m.clients_pointer = Some("/engine/clients".into());
        m.server_id_pointer = Some("/serverId".into());
        let report = map(&json, &m).unwrap();
        assert_eq!(report.namespaces, [("/".into(), 3), ("/chat".into(), 1)]);
        assert_eq!(report.clients, Some(4));
        assert_eq!(report.server_id.as_deref(), Some("pod-a"));
    }

    #[test]
    fn engine_object_in_the_report_format() {
        let json = json!({"namespaces": {}, "io": {"engine": {
            "polling_clients": 1, "connections": 4, "disconnections": {"ping timeout": 1},
            "packets": {"in": 2, "out": 3}, "bytes": {"in": 20, "out": 30}}}});
        let mut m = mapping("/namespaces");
        m.engine_pointer = Some("/io/engine".into());
        let engine = map(&json, &m).unwrap().engine.unwrap();
        assert_eq!(engine.polling_clients, Some(1));
        assert!(matches!(engine.events, Some(Counted::SinceStart(e)) if e.connections == 4));
        let partial = json!({"namespaces": {}, "io": {"engine": {"connections": 4}}});
        assert_eq!(
            map(&partial, &m).unwrap_err(),
            "engine_pointer \"/io/engine\": engine: connections, disconnections, packets and bytes go together"
        );
    }

    #[test]
    fn errors_say_what_was_expected_where() {
        let cases = [
            (
                json!({}),
                "/namespaces",
                "namespaces_pointer \"/namespaces\": nothing there",
            ),
            (
                json!({"namespaces": "x"}),
                "/namespaces",
                "namespaces_pointer \"/namespaces\": expected an object of counts or an array, found a string",
            ),
            (
                json!({"namespaces": {"/": -1}}),
                "/namespaces",
                "/namespaces//: expected a non-negative integer count, found the number -1",
            ),
            (
                json!({"namespaces": {"/": 1.5}}),
                "/namespaces",
                "/namespaces//: expected a non-negative integer count, found the number 1.5",
            ),
            (
                json!({"namespaces": [{"name": "/"}]}),
                "/namespaces",
                "/namespaces/0: expected a field \"count\" (count_field)",
            ),
            (
                json!({"namespaces": {"/": 9_007_199_254_740_992_u64}}),
                "/namespaces",
                "/namespaces//: 9007199254740992 is larger than 9007199254740991 (2^53 - 1), the largest count carried exactly",
            ),
        ];
        for (json, pointer, expected) in cases {
            assert_eq!(map(&json, &mapping(pointer)).unwrap_err(), expected);
        }
    }
}
