//! The wire formats apps write to files or push: a report (one server's full counts)
//! and a batch of connection events (see
//! `schemas/report.schema.json` and `schemas/events.schema.json`).
//!
//! ```json
//! {"server_id": "pod-a", "generated_at": "2026-11-25T20:00:00.000Z", "clients": 12,
//!  "namespaces": {"/": 3, "/chat": 2}}
//! {"server_id": "pod-a", "events": [{"type": "connect", "namespace": "/chat"}]}
//! ```
//!
//! A report may carry an `engine` object: the polling clients, and the Engine.IO events
//! counted since the reporter started (all four counters, or none).
//!
//! Version 2 orders the two: a reporter process names itself with `boot`, numbers its
//! events with `seq`, and a report's `seq` is the last event it includes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::update::{Counted, Delta, Engine, EngineEvents, MAX_COUNT, Reason, Seq, ServerCounts};

/// Events in one batch, at most.
pub(crate) const MAX_EVENTS: usize = 10_000;

/// Why a body was rejected; the message names what was expected where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FormatError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
}

impl FormatError {
    pub(crate) fn reason(&self) -> Reason {
        match self {
            FormatError::Json(_) => Reason::InvalidJson,
            FormatError::Shape(_) => Reason::InvalidReport,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportJson {
    version: Option<u32>,
    server_id: Option<String>,
    boot: Option<String>,
    seq: Option<u64>,
    generated_at: Option<String>,
    clients: Option<u64>,
    namespaces: BTreeMap<String, u64>,
    engine: Option<EngineJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineJson {
    polling_clients: Option<u64>,
    connections: Option<u64>,
    disconnections: Option<BTreeMap<String, u64>>,
    packets: Option<Directions>,
    bytes: Option<Directions>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Directions {
    #[serde(rename = "in")]
    received: u64,
    #[serde(rename = "out")]
    sent: u64,
}

impl EngineJson {
    /// The counters come as a group: a reporter that counts some but not all would make
    /// the missing ones look like zeros.
    fn into_engine(self) -> Result<Engine, FormatError> {
        let events = match (
            self.connections,
            self.disconnections,
            self.packets,
            self.bytes,
        ) {
            (None, None, None, None) => None,
            (Some(connections), Some(disconnections), Some(packets), Some(bytes)) => {
                Some(Counted::SinceStart(EngineEvents {
                    connections,
                    disconnections: disconnections.into_iter().collect(),
                    packets_in: packets.received,
                    packets_out: packets.sent,
                    bytes_in: bytes.received,
                    bytes_out: bytes.sent,
                }))
            }
            _ => {
                return Err(shape(
                    "engine: connections, disconnections, packets and bytes go together",
                ));
            }
        };
        Ok(Engine {
            polling_clients: self.polling_clients,
            events,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsJson {
    version: Option<u32>,
    server_id: Option<String>,
    boot: Option<String>,
    events: Vec<EventJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventJson {
    #[serde(rename = "type")]
    kind: EventKind,
    namespace: String,
    server_id: Option<String>,
    seq: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventKind {
    Connect,
    Disconnect,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FormatError> {
    // Syntax first, so that "not JSON" and "wrong shape" stay apart.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Err(FormatError::Json(e.to_string()));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde_json appends the position; the key path says more.
        let inner = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
        FormatError::Shape(if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// A report, with its age computed against `now` from `generated_at` (else `modified`,
/// a file's mtime, else zero).
pub(crate) fn parse_report(
    body: &[u8],
    now: SystemTime,
    modified: Option<SystemTime>,
) -> Result<ServerCounts, FormatError> {
    let report: ReportJson = parse(body)?;
    let boot = ordered(report.version, report.boot)?;
    let seq = match (boot, report.seq) {
        (Some(boot), Some(n)) => Some(Seq { boot, n }),
        (None, None) => None,
        (Some(_), None) => return Err(shape("seq: a version 2 report needs one")),
        (None, Some(_)) => return Err(shape("seq: needs \"version\": 2 and a boot")),
    };
    if report.server_id.as_deref() == Some("") {
        return Err(FormatError::Shape("server_id: must not be empty".into()));
    }
    for (name, count) in &report.namespaces {
        check_count(*count).map_err(|e| FormatError::Shape(format!("namespaces.{name}: {e}")))?;
    }
    if let Some(clients) = report.clients {
        check_count(clients).map_err(|e| FormatError::Shape(format!("clients: {e}")))?;
    }
    let generated = match report.generated_at {
        Some(text) => Some(parse_timestamp(&text).ok_or_else(|| {
            FormatError::Shape(format!(
                "generated_at: {text:?} is not an RFC 3339 timestamp like \"2026-11-25T20:00:00Z\""
            ))
        })?),
        None => modified,
    };
    let engine = report.engine.map(EngineJson::into_engine).transpose()?;
    Ok(ServerCounts {
        server_id: report.server_id,
        clients: report.clients,
        namespaces: report.namespaces.into_iter().collect(),
        age: generated
            .and_then(|at| now.duration_since(at).ok())
            .unwrap_or(Duration::ZERO),
        seq,
        engine,
    })
}

/// An `engine` object in the report format, found inside another document (`at` names
/// where, for the message).
pub(crate) fn parse_engine(value: &serde_json::Value, at: &str) -> Result<Engine, String> {
    let engine: EngineJson =
        serde_path_to_error::deserialize(value).map_err(|e| format!("{at}: {e}"))?;
    engine.into_engine().map_err(|e| format!("{at}: {e}"))
}

fn shape(message: &str) -> FormatError {
    FormatError::Shape(message.to_owned())
}

/// The `boot` of a version 2 report or batch (required there), `None` for version 1
/// (where a `boot` is an error).
fn ordered(version: Option<u32>, boot: Option<String>) -> Result<Option<Arc<str>>, FormatError> {
    match (version.unwrap_or(1), boot) {
        (1, None) => Ok(None),
        (1, Some(_)) => Err(shape("boot: needs \"version\": 2")),
        (2, Some(boot)) if !boot.is_empty() => Ok(Some(boot.into())),
        (2, _) => Err(shape("boot: version 2 needs a non-empty boot")),
        (version, _) => Err(FormatError::Shape(format!(
            "version: {version} is not supported, expected 1 or 2"
        ))),
    }
}

/// A batch of connection events.
pub(crate) fn parse_events(body: &[u8]) -> Result<Vec<Delta>, FormatError> {
    let batch: EventsJson = parse(body)?;
    if batch.events.len() > MAX_EVENTS {
        return Err(FormatError::Shape(format!(
            "events: {} events in one batch, at most {MAX_EVENTS}",
            batch.events.len()
        )));
    }
    let boot = ordered(batch.version, batch.boot)?;
    let server_id = non_empty(batch.server_id);
    batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let seq = match (&boot, event.seq) {
                (Some(boot), Some(n)) => Some(Seq {
                    boot: boot.clone(),
                    n,
                }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(FormatError::Shape(format!(
                        "events[{i}].seq: a version 2 event needs one"
                    )));
                }
                (None, Some(_)) => {
                    return Err(FormatError::Shape(format!(
                        "events[{i}].seq: needs \"version\": 2 and a boot"
                    )));
                }
            };
            Ok(Delta {
                // An empty server id is no server id, on the event as on the batch.
                server_id: non_empty(event.server_id).or_else(|| server_id.clone()),
                namespace: event.namespace,
                change: match event.kind {
                    EventKind::Connect => 1,
                    EventKind::Disconnect => -1,
                },
                seq,
            })
        })
        .collect()
}

fn non_empty(id: Option<String>) -> Option<String> {
    id.filter(|id| !id.is_empty())
}

/// A count as reported, if it is one this exporter can carry exactly (at most
/// [`MAX_COUNT`]); the error says why not.
pub(crate) fn check_count(count: u64) -> Result<u64, String> {
    if count <= MAX_COUNT {
        Ok(count)
    } else {
        Err(format!(
            "{count} is larger than {MAX_COUNT} (2^53 - 1), the largest count carried exactly"
        ))
    }
}

/// RFC 3339 with `Z` or a numeric offset (`+hh:mm`, `-hh:mm`).
pub(crate) fn parse_timestamp(text: &str) -> Option<SystemTime> {
    if let Ok(at) = humantime::parse_rfc3339(text) {
        return Some(at);
    }
    // The offset is the last six bytes; a split inside a multi-byte character means there
    // is no offset there (and slicing there would panic).
    let split = text.len().checked_sub(6)?;
    let (base, offset) = (text.get(..split)?, text.get(split..)?);
    let (sign, offset) = match (offset.strip_prefix('+'), offset.strip_prefix('-')) {
        (Some(rest), _) => (1, rest),
        (_, Some(rest)) => (-1, rest),
        _ => return None,
    };
    let (hours, minutes) = offset.split_once(':')?;
    let two_digits = |s: &str| -> Option<u64> {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    let seconds = hours * 3600 + minutes * 60;
    let local = humantime::parse_rfc3339(&format!("{base}Z")).ok()?;
    let offset = Duration::from_secs(seconds);
    // Local time ahead of UTC (+hh:mm) means an earlier instant.
    if sign > 0 {
        local.checked_sub(offset)
    } else {
        local.checked_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn full_report() {
        let now = at("2026-11-25T20:00:05Z");
        let report = parse_report(
            br#"{"server_id":"pod-a","generated_at":"2026-11-25T20:00:00.000Z","clients":3,"namespaces":{"/":2,"/we\"ird\\ns":1}}"#,
            now,
            None,
        )
        .unwrap();
        assert_eq!(report.server_id.as_deref(), Some("pod-a"));
        assert_eq!(report.clients, Some(3));
        assert_eq!(
            report.namespaces,
            [("/".into(), 2), ("/we\"ird\\ns".into(), 1)]
        );
        assert_eq!(report.age, Duration::from_secs(5));
    }

    #[test]
    fn engine_counters_since_the_reporter_started() {
        let now = SystemTime::now();
        let report = parse_report(
            br#"{"namespaces":{},"engine":{"polling_clients":2,"connections":9,"disconnections":{"transport close":3,"ping timeout":1},"packets":{"in":5,"out":6},"bytes":{"in":50,"out":60}}}"#,
            now,
            None,
        )
        .unwrap();
        assert_eq!(
            report.engine,
            Some(Engine {
                polling_clients: Some(2),
                events: Some(Counted::SinceStart(EngineEvents {
                    connections: 9,
                    disconnections: vec![("ping timeout".into(), 1), ("transport close".into(), 3)],
                    packets_in: 5,
                    packets_out: 6,
                    bytes_in: 50,
                    bytes_out: 60,
                })),
            })
        );
        let polling_only = parse_report(
            br#"{"namespaces":{},"engine":{"polling_clients":0}}"#,
            now,
            None,
        );
        assert_eq!(polling_only.unwrap().engine.unwrap().events, None);
        let version_1 = parse_report(br#"{"namespaces":{}}"#, now, None).unwrap();
        assert_eq!(version_1.engine, None, "unknown, not zero");
        let partial = parse_report(
            br#"{"namespaces":{},"engine":{"connections":1}}"#,
            now,
            None,
        );
        assert_eq!(
            partial.unwrap_err(),
            shape("engine: connections, disconnections, packets and bytes go together")
        );
    }

    #[test]
    fn every_example_of_the_report_schema_parses() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/report.schema.json")).unwrap();
        for example in schema["examples"].as_array().unwrap() {
            let body = serde_json::to_vec(example).unwrap();
            if let Err(e) = parse_report(&body, SystemTime::now(), None) {
                panic!("{example}: {e}");
            }
        }
    }

    #[test]
    fn age_from_offsets_mtime_or_nothing() {
        let now = at("2026-11-25T20:00:05Z");
        let with_offset = parse_report(
            br#"{"generated_at":"2026-11-25T21:00:00+01:00","namespaces":{}}"#,
            now,
            None,
        )
        .unwrap();
        assert_eq!(with_offset.age, Duration::from_secs(5));
        let by_mtime = parse_report(
            br#"{"namespaces":{}}"#,
            now,
            Some(at("2026-11-25T20:00:01Z")),
        )
        .unwrap();
        assert_eq!(by_mtime.age, Duration::from_secs(4));
        let future = parse_report(
            br#"{"generated_at":"2030-01-01T00:00:00Z","namespaces":{}}"#,
            now,
            None,
        )
        .unwrap();
        assert_eq!(future.age, Duration::ZERO);
    }

    #[test]
    fn errors_name_what_was_expected_where() {
        let now = SystemTime::now();
        let cases: [(&[u8], FormatError); 6] = [
            (b"{\"namespaces\":", FormatError::Json("EOF while parsing a value at line 1 column 14".into())),
            (br#"{"namespaces":{"/":-1}}"#, FormatError::Shape("namespaces./: invalid value: integer `-1`, expected u64".into())),
            (br#"{"namespaces":{"/":1.5}}"#, FormatError::Shape("namespaces./: invalid type: floating point `1.5`, expected u64".into())),
            (br#"{"clients":1}"#, FormatError::Shape("missing field `namespaces`".into())),
            (br#"{"namespaces":{},"extra":1}"#, FormatError::Shape("extra: unknown field `extra`, expected one of `version`, `server_id`, `boot`, `seq`, `generated_at`, `clients`, `namespaces`, `engine`".into())),
            (br#"{"namespaces":{},"generated_at":"yesterday"}"#, FormatError::Shape("generated_at: \"yesterday\" is not an RFC 3339 timestamp like \"2026-11-25T20:00:00Z\"".into())),
        ];
        for (body, expected) in cases {
            assert_eq!(parse_report(body, now, None).unwrap_err(), expected);
        }
    }

    #[test]
    fn non_ascii_generated_at_is_refused_not_a_panic() {
        // Issue 10, repro 1: the offset split used to slice inside the "€".
        for text in [
            "2026-11-26T00:00:00€€é",
            "€",
            "2026-11-26T00:00:00+€:0",
            "ééé+01:00",
        ] {
            let body = serde_json::json!({"generated_at": text, "namespaces": {}}).to_string();
            let error = parse_report(body.as_bytes(), SystemTime::now(), None).unwrap_err();
            assert_eq!(error.reason(), Reason::InvalidReport, "{text}");
            assert!(error.to_string().starts_with("generated_at: "), "{error}");
        }
        assert_eq!(
            parse_timestamp("2026-11-25T21:00:00+01:00"),
            Some(at("2026-11-25T20:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("2026-11-25T19:30:00-00:30"),
            Some(at("2026-11-25T20:00:00Z"))
        );
        assert_eq!(parse_timestamp("2026-11-25T21:00:00+1:000"), None);
        assert_eq!(parse_timestamp("2026-11-25T21:00:00+24:00"), None);
    }

    #[test]
    fn counts_beyond_two_to_the_53_are_refused_not_wrapped() {
        let now = SystemTime::now();
        let exact = format!(r#"{{"namespaces":{{"/":{MAX_COUNT}}},"clients":{MAX_COUNT}}}"#);
        assert_eq!(
            parse_report(exact.as_bytes(), now, None)
                .unwrap()
                .namespaces,
            [("/".into(), MAX_COUNT)]
        );
        let too_big = br#"{"server_id":"host#1","namespaces":{"/":18446744073709551615}}"#;
        let error = parse_report(too_big, now, None).unwrap_err();
        assert_eq!(error.reason(), Reason::InvalidReport);
        assert_eq!(
            error.to_string(),
            "namespaces./: 18446744073709551615 is larger than 9007199254740991 (2^53 - 1), the largest count carried exactly"
        );
        let clients = format!(r#"{{"namespaces":{{}},"clients":{}}}"#, MAX_COUNT + 1);
        assert!(
            parse_report(clients.as_bytes(), now, None)
                .unwrap_err()
                .to_string()
                .starts_with("clients: ")
        );
    }

    #[test]
    fn an_empty_server_id_on_events_is_no_server_id() {
        let deltas = parse_events(
            br#"{"server_id":"","events":[{"type":"connect","namespace":"/","server_id":""}]}"#,
        )
        .unwrap();
        assert_eq!(deltas[0].server_id, None);
    }

    #[test]
    fn events_take_the_batch_server_id_unless_their_own() {
        let deltas = parse_events(
            br#"{"server_id":"a","events":[{"type":"connect","namespace":"/chat"},{"type":"disconnect","namespace":"/","server_id":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(
            deltas,
            [
                Delta {
                    server_id: Some("a".into()),
                    namespace: "/chat".into(),
                    change: 1,
                    seq: None,
                },
                Delta {
                    server_id: Some("b".into()),
                    namespace: "/".into(),
                    change: -1,
                    seq: None,
                },
            ]
        );
        assert_eq!(
            parse_events(br#"{"events":[{"type":"join","namespace":"/"}]}"#)
                .unwrap_err()
                .reason(),
            Reason::InvalidReport
        );
    }

    #[test]
    fn version_2_carries_the_order() {
        let report = parse_report(
            br#"{"version":2,"boot":"b1","seq":7,"namespaces":{"/":1}}"#,
            SystemTime::now(),
            None,
        )
        .unwrap();
        assert_eq!(
            report.seq,
            Some(Seq {
                boot: "b1".into(),
                n: 7
            })
        );
        let deltas = parse_events(
            br#"{"version":2,"boot":"b1","events":[{"type":"connect","namespace":"/","seq":8}]}"#,
        )
        .unwrap();
        assert_eq!(deltas[0].seq.as_ref().map(|s| s.n), Some(8));
    }

    #[test]
    fn order_fields_need_version_2_and_each_other() {
        let now = SystemTime::now();
        let reports: [(&[u8], &str); 4] = [
            (
                br#"{"seq":1,"namespaces":{}}"#,
                "seq: needs \"version\": 2 and a boot",
            ),
            (
                br#"{"boot":"b","namespaces":{}}"#,
                "boot: needs \"version\": 2",
            ),
            (
                br#"{"version":2,"boot":"b","namespaces":{}}"#,
                "seq: a version 2 report needs one",
            ),
            (
                br#"{"version":3,"namespaces":{}}"#,
                "version: 3 is not supported, expected 1 or 2",
            ),
        ];
        for (body, message) in reports {
            assert_eq!(
                parse_report(body, now, None).unwrap_err(),
                FormatError::Shape(message.into())
            );
        }
        assert_eq!(
            parse_events(
                br#"{"version":2,"boot":"b","events":[{"type":"connect","namespace":"/"}]}"#
            )
            .unwrap_err(),
            FormatError::Shape("events[0].seq: a version 2 event needs one".into())
        );
        assert_eq!(
            parse_events(br#"{"version":2,"events":[]}"#).unwrap_err(),
            FormatError::Shape("boot: version 2 needs a non-empty boot".into())
        );
    }
}
