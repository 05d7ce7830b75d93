//! The subset of Engine.IO v4 and Socket.IO v5 that an admin-ui client speaks over one
//! WebSocket: text frames only, one namespace, no acks, no binary events.
//!
//! Frame shapes: `0{open json}`, `2` ping, `3` pong, `4<socket.io packet>`; a Socket.IO
//! packet is `<type>[<attachments>-][<namespace>,][<ack id>][<json>]`.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sources::format::check_count;
use crate::update::{Counted, Engine, EngineEvents};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProtocolError {
    #[error("empty frame")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?}")]
    EngineType(char),
    #[error("unknown Socket.IO packet type {0:?}")]
    SocketType(char),
    #[error("malformed open packet: {0}")]
    Open(String),
    #[error("malformed {what}: {detail}")]
    Payload { what: &'static str, detail: String },
    #[error(
        "server_stats without per-namespace counts: the app's @socket.io/admin-ui is older \
         than 0.4.0; upgrade it to 0.4.0 or later (npm install @socket.io/admin-ui@latest)"
    )]
    OldAdminUi,
}

/// An Engine.IO packet, borrowing the frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnginePacket<'a> {
    Open(Handshake),
    Close,
    Ping,
    Pong,
    Message(&'a str),
    Upgrade,
    Noop,
}

/// What the server says in its open packet that matters to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handshake {
    pub(super) ping_interval: Duration,
    pub(super) ping_timeout: Duration,
}

/// The longest ping interval or timeout taken from a server's open packet.
const MAX_HEARTBEAT_MS: u64 = 3_600_000;

pub(crate) fn parse_engine(frame: &str) -> Result<EnginePacket<'_>, ProtocolError> {
    let mut chars = frame.chars();
    let kind = chars.next().ok_or(ProtocolError::Empty)?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => EnginePacket::Open(parse_open(rest)?),
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping,
        '3' => EnginePacket::Pong,
        '4' => EnginePacket::Message(rest),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        other => return Err(ProtocolError::EngineType(other)),
    })
}

fn parse_open(json: &str) -> Result<Handshake, ProtocolError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Open {
        ping_interval: u64,
        ping_timeout: u64,
    }
    let open: Open = serde_json::from_str(json).map_err(|e| ProtocolError::Open(e.to_string()))?;
    // A server may announce any number; past an hour it only delays noticing a dead one,
    // and far past it `now + interval` would overflow.
    Ok(Handshake {
        ping_interval: Duration::from_millis(open.ping_interval.min(MAX_HEARTBEAT_MS)),
        ping_timeout: Duration::from_millis(open.ping_timeout.min(MAX_HEARTBEAT_MS)),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketType {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// A Socket.IO packet, borrowing the frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub(crate) kind: PacketType,
    pub(crate) namespace: &'a str,
    /// The JSON payload, possibly empty.
    pub(crate) data: &'a str,
}

pub(crate) fn parse_packet(message: &str) -> Result<Packet<'_>, ProtocolError> {
    let mut chars = message.chars();
    let kind = match chars.next().ok_or(ProtocolError::Empty)? {
        '0' => PacketType::Connect,
        '1' => PacketType::Disconnect,
        '2' => PacketType::Event,
        '3' => PacketType::Ack,
        '4' => PacketType::ConnectError,
        '5' => PacketType::BinaryEvent,
        '6' => PacketType::BinaryAck,
        other => return Err(ProtocolError::SocketType(other)),
    };
    let mut rest = chars.as_str();
    if matches!(kind, PacketType::BinaryEvent | PacketType::BinaryAck) {
        // `<n>-`: the number of binary attachments, which follow in their own frames.
        if let Some((count, after)) = rest.split_once('-')
            && !count.is_empty()
            && count.bytes().all(|b| b.is_ascii_digit())
        {
            rest = after;
        }
    }
    let namespace = if rest.starts_with('/') {
        let (namespace, after) = rest.split_once(',').unwrap_or((rest, ""));
        rest = after;
        namespace
    } else {
        "/"
    };
    let ack_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    Ok(Packet {
        kind,
        namespace,
        data: &rest[ack_digits..],
    })
}

/// The CONNECT frame for `namespace` with an auth payload: `40/admin,{...}`.
pub(crate) fn connect_frame(namespace: &str, auth: &serde_json::Value) -> String {
    format!("4{}", with_namespace('0', namespace, &auth.to_string()))
}

/// The DISCONNECT frame for `namespace`: `41/admin,`.
pub(crate) fn disconnect_frame(namespace: &str) -> String {
    format!("4{}", with_namespace('1', namespace, ""))
}

fn with_namespace(kind: char, namespace: &str, data: &str) -> String {
    if namespace == "/" {
        format!("{kind}{data}")
    } else {
        format!("{kind}{namespace},{data}")
    }
}

/// The message of a CONNECT_ERROR payload (`{"message":"invalid credentials"}`).
pub(crate) fn connect_error_message(data: &str) -> String {
    #[derive(Deserialize)]
    struct ConnectError {
        message: String,
    }
    match serde_json::from_str::<ConnectError>(data) {
        Ok(e) => e.message,
        Err(_) => data.chars().take(200).collect(),
    }
}

/// An EVENT payload: the event name and its first argument, unparsed.
pub(crate) fn parse_event(data: &str) -> Result<(String, Option<&RawValue>), ProtocolError> {
    let parts: Vec<&RawValue> = serde_json::from_str(data).map_err(|e| ProtocolError::Payload {
        what: "event",
        detail: e.to_string(),
    })?;
    let mut parts = parts.into_iter();
    let name = parts.next().ok_or_else(|| ProtocolError::Payload {
        what: "event",
        detail: "empty event array".into(),
    })?;
    let name: String = serde_json::from_str(name.get()).map_err(|e| ProtocolError::Payload {
        what: "event name",
        detail: e.to_string(),
    })?;
    Ok((name, parts.next()))
}

/// admin-ui's `server_stats` argument, the fields this exporter reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ServerStats {
    /// `None` when admin-ui sent an empty `serverId`: the exporter's own server.
    pub(super) server_id: Option<String>,
    /// Absent when the server has no engine (admin-ui omits the key then).
    pub(super) clients_count: Option<u64>,
    /// Engine clients on HTTP long-polling; absent before admin-ui 0.5.
    pub(super) polling_clients_count: Option<u64>,
    /// Engine events since the previous `server_stats`; absent before admin-ui 0.5.
    pub(super) aggregated_events: Option<Vec<AggregatedEvent>>,
    pub(super) namespaces: Vec<NamespaceStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServerStats {
    server_id: String,
    clients_count: Option<u64>,
    polling_clients_count: Option<u64>,
    aggregated_events: Option<Vec<AggregatedEvent>>,
    /// Absent before admin-ui 0.4.0.
    namespaces: Option<Vec<NamespaceStats>>,
}

/// One bucket of admin-ui's event buffer: `count` events of `type` (and `subType`, the
/// close reason of a `rawDisconnection`) within one second.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(super) struct AggregatedEvent {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) sub_type: Option<String>,
    pub(super) count: u64,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NamespaceStats {
    pub(super) name: String,
    pub(super) sockets_count: u64,
}

/// Only the id of a `server_stats` argument. serde skips the other fields without
/// building them (no map, no string), and borrows the id unless it holds escapes.
#[derive(Deserialize)]
struct StatsServerId<'a> {
    #[serde(rename = "serverId", borrow)]
    server_id: Cow<'a, str>,
}

/// Parses a `server_stats` argument: in full when `in_scope` says its server's counts are
/// exported (`None`: an empty `serverId`, the own server), else its id only. Behind an
/// adapter admin-ui sends every server's stats to every admin client, and in local scope
/// all but one are read only for their id; the rest of theirs is skipped, not checked.
pub(crate) fn parse_server_stats(
    json: &RawValue,
    in_scope: impl FnOnce(Option<&str>) -> bool,
) -> Result<ServerStats, ProtocolError> {
    // serde would also take a struct from an array; admin-ui sends an object. Whatever
    // has no readable id is parsed as before, so it fails with the same error as before.
    let id = json
        .get()
        .starts_with('{')
        .then(|| serde_json::from_str::<StatsServerId<'_>>(json.get()).ok())
        .flatten();
    let Some(id) = id else {
        return parse_full_server_stats(json);
    };
    let server_id = Some(id.server_id).filter(|id| !id.is_empty());
    if !in_scope(server_id.as_deref()) {
        return Ok(ServerStats::id_only(server_id.map(Cow::into_owned)));
    }
    parse_full_server_stats(json)
}

fn parse_full_server_stats(json: &RawValue) -> Result<ServerStats, ProtocolError> {
    let payload = |detail: String| ProtocolError::Payload {
        what: "server_stats",
        detail,
    };
    let raw: RawServerStats =
        serde_json::from_str(json.get()).map_err(|e| payload(e.to_string()))?;
    let namespaces = raw.namespaces.ok_or(ProtocolError::OldAdminUi)?;
    for namespace in &namespaces {
        check_count(namespace.sockets_count)
            .map_err(|e| payload(format!("namespace {:?}: {e}", namespace.name)))?;
    }
    if let Some(clients) = raw.clients_count {
        check_count(clients).map_err(|e| payload(format!("clientsCount: {e}")))?;
    }
    Ok(ServerStats {
        server_id: Some(raw.server_id).filter(|id| !id.is_empty()),
        clients_count: raw.clients_count,
        polling_clients_count: raw.polling_clients_count,
        aggregated_events: raw.aggregated_events,
        namespaces,
    })
}

impl ServerStats {
    /// The stats of a server outside the source's scope: its id, nothing else. The
    /// reconcile step keeps such a server by id only, whatever else it sent.
    fn id_only(server_id: Option<String>) -> ServerStats {
        ServerStats {
            server_id,
            clients_count: None,
            polling_clients_count: None,
            aggregated_events: None,
            namespaces: Vec::new(),
        }
    }

    /// How many namespaces were read: none of a server read for its id only.
    pub(crate) fn namespaces_read(&self) -> usize {
        self.namespaces.len()
    }

    /// The Engine.IO part, `None` when the server sends neither field.
    pub(super) fn engine(&self) -> Option<Engine> {
        if self.polling_clients_count.is_none() && self.aggregated_events.is_none() {
            return None;
        }
        Some(Engine {
            polling_clients: self.polling_clients_count,
            events: self
                .aggregated_events
                .as_deref()
                .map(|buckets| Counted::SincePrevious(sum_events(buckets))),
        })
    }
}

/// Sums the buckets per type; types this exporter does not know are ignored.
fn sum_events(buckets: &[AggregatedEvent]) -> EngineEvents {
    let mut events = EngineEvents::default();
    for bucket in buckets {
        let total = match bucket.kind.as_str() {
            "rawConnection" => &mut events.connections,
            "packetsIn" => &mut events.packets_in,
            "packetsOut" => &mut events.packets_out,
            "bytesIn" => &mut events.bytes_in,
            "bytesOut" => &mut events.bytes_out,
            "rawDisconnection" => {
                let reason = bucket.sub_type.clone().unwrap_or_default();
                events.disconnections.push((reason, bucket.count));
                continue;
            }
            _ => continue,
        };
        *total = total.saturating_add(bucket.count);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet_gives_heartbeat_timing() {
        let frame = r#"0{"sid":"1_prVZPsG7tXzZ8JAAAE","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(
            parse_engine(frame).unwrap(),
            EnginePacket::Open(Handshake {
                ping_interval: Duration::from_secs(25),
                ping_timeout: Duration::from_secs(20),
            })
        );
        assert!(matches!(parse_engine("0{}"), Err(ProtocolError::Open(_))));
        let absurd = r#"0{"pingInterval":18446744073709551615,"pingTimeout":18446744073709551615}"#;
        let EnginePacket::Open(handshake) = parse_engine(absurd).unwrap() else {
            panic!("an open packet")
        };
        assert_eq!(
            handshake.ping_interval,
            Duration::from_secs(3600),
            "no overflow later"
        );
    }

    #[test]
    fn engine_packet_types() {
        assert_eq!(parse_engine("2").unwrap(), EnginePacket::Ping);
        assert_eq!(parse_engine("3").unwrap(), EnginePacket::Pong);
        assert_eq!(parse_engine("1").unwrap(), EnginePacket::Close);
        assert_eq!(parse_engine("40").unwrap(), EnginePacket::Message("0"));
        assert_eq!(parse_engine("").unwrap_err(), ProtocolError::Empty);
        assert_eq!(
            parse_engine("x").unwrap_err(),
            ProtocolError::EngineType('x')
        );
    }

    #[test]
    fn packets_as_captured_from_admin_ui() {
        let accepted = parse_packet(r#"0/admin,{"sid":"OSco58A8lJJhFE6iAAAF"}"#).unwrap();
        assert_eq!(accepted.kind, PacketType::Connect);
        assert_eq!(accepted.namespace, "/admin");

        let refused = parse_packet(r#"4/admin,{"message":"invalid credentials"}"#).unwrap();
        assert_eq!(refused.kind, PacketType::ConnectError);
        assert_eq!(connect_error_message(refused.data), "invalid credentials");

        let event = parse_packet(r#"2/admin,["server_stats",{"serverId":"test-1","hostname":"vm","pid":15381,"uptime":2.27,"clientsCount":4,"pollingClientsCount":0,"aggregatedEvents":[],"namespaces":[{"name":"/","socketsCount":2},{"name":"/chat","socketsCount":1}]}]"#).unwrap();
        assert_eq!(event.kind, PacketType::Event);
        let (name, arg) = parse_event(event.data).unwrap();
        assert_eq!(name, "server_stats");
        let stats = parse_server_stats(arg.unwrap(), |_| true).unwrap();
        assert_eq!(stats.server_id.as_deref(), Some("test-1"));
        assert_eq!(stats.clients_count, Some(4));
        assert_eq!(
            stats.namespaces[1],
            NamespaceStats {
                name: "/chat".into(),
                sockets_count: 1
            }
        );

        let disconnect = parse_packet("1/admin,").unwrap();
        assert_eq!(disconnect.kind, PacketType::Disconnect);
        assert_eq!(disconnect.data, "");
    }

    #[test]
    fn root_namespace_ack_ids_and_attachments() {
        let root = parse_packet(r#"2["hello",1]"#).unwrap();
        assert_eq!(root.namespace, "/");
        assert_eq!(root.data, r#"["hello",1]"#);

        let with_ack = parse_packet(r#"2/admin,12["x"]"#).unwrap();
        assert_eq!(with_ack.namespace, "/admin");
        assert_eq!(with_ack.data, r#"["x"]"#);

        let binary = parse_packet(r#"51-/admin,["x",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(binary.kind, PacketType::BinaryEvent);
        assert_eq!(binary.namespace, "/admin");
    }

    #[test]
    fn frames_written_by_the_client() {
        let auth = serde_json::json!({"username": "admin", "password": "p\"w"});
        assert_eq!(
            connect_frame("/admin", &auth),
            r#"40/admin,{"password":"p\"w","username":"admin"}"#
        );
        assert_eq!(connect_frame("/", &serde_json::json!({})), "40{}");
        assert_eq!(disconnect_frame("/admin"), "41/admin,");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for data in ["", "[", "{}", "[1]", "[\"server_stats\",", "[\"\\ud800\"]"] {
            assert!(parse_event(data).is_err(), "{data:?} should not parse");
        }
        let bad_stats = serde_json::value::RawValue::from_string(
            r#"{"serverId":"a","namespaces":[{"name":"/","socketsCount":-1}]}"#.into(),
        )
        .unwrap();
        assert!(parse_server_stats(&bad_stats, |_| true).is_err());
        assert_eq!(
            parse_packet("9").unwrap_err(),
            ProtocolError::SocketType('9')
        );
    }

    fn stats(json: &str) -> Result<ServerStats, ProtocolError> {
        parse_server_stats(&raw(json), |_| true)
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.into()).unwrap()
    }

    /// As a local-scope source of server `pod-a` parses.
    fn local_stats(json: &str) -> Result<ServerStats, ProtocolError> {
        let scope = crate::sources::Scope::Local {
            server_id: "pod-a".into(),
        };
        parse_server_stats(&raw(json), |id| scope.includes_reported(id, "pod-a"))
    }

    /// What admin-ui could never send: every field but `serverId` wrong, and megabytes of it.
    fn garbage_after(server_id: &str) -> String {
        let namespaces: Vec<String> = (0..100_000)
            .map(|i| format!(r#"{{"name":"/n-{i}","socketsCount":-{i},"x":[[[{{}}]]]}}"#))
            .collect();
        format!(
            r#"{{"serverId":"{server_id}","clientsCount":18446744073709551615,"aggregatedEvents":"no","namespaces":[{}],"pid":{{"a":[1,2,"\u00e9"]}}}}"#,
            namespaces.join(",")
        )
    }

    #[test]
    fn foreign_stats_are_read_for_their_id_only_garbage_and_all() {
        let foreign = local_stats(&garbage_after("pod-b")).unwrap();
        assert_eq!(foreign, ServerStats::id_only(Some("pod-b".into())));
        // admin-ui before 0.4 on another server does not take this source down.
        let old = local_stats(r#"{"serverId":"pod-b","clientsCount":3}"#).unwrap();
        assert_eq!(old, ServerStats::id_only(Some("pod-b".into())));
        // An id with escapes cannot be borrowed; it is still read.
        let escaped = local_stats(r#"{"namespaces":7,"serverId":"pod-\u0062"}"#).unwrap();
        assert_eq!(escaped.server_id.as_deref(), Some("pod-b"));
        // "pod-ab" is not "pod-a" nor one of its cluster workers.
        let near = local_stats(r#"{"serverId":"pod-ab","namespaces":[1]}"#).unwrap();
        assert_eq!(near, ServerStats::id_only(Some("pod-ab".into())));
    }

    #[test]
    fn own_stats_are_still_validated_in_full() {
        for own in ["pod-a", "pod-a#4242", ""] {
            let error = local_stats(&garbage_after(own)).unwrap_err();
            assert!(
                matches!(error, ProtocolError::Payload { .. }),
                "{own:?}: {error:?}"
            );
            let old = format!(r#"{{"serverId":"{own}","clientsCount":3}}"#);
            assert_eq!(local_stats(&old).unwrap_err(), ProtocolError::OldAdminUi);
            let good = format!(
                r#"{{"serverId":"{own}","clientsCount":3,"namespaces":[{{"name":"/","socketsCount":2}}]}}"#
            );
            let stats = local_stats(&good).unwrap();
            assert_eq!(stats.clients_count, Some(3), "{own:?}");
            assert_eq!(stats.namespaces.len(), 1, "{own:?}");
        }
    }

    #[test]
    fn stats_without_a_readable_id_are_errors_whatever_the_scope() {
        let foreign = |_: Option<&str>| false;
        for json in [
            r#"{"namespaces":[]}"#,
            r#"{"serverId":7,"namespaces":[]}"#,
            r#"{"serverId":null}"#,
            r#"{"serverId":"a","serverId":"b"}"#,
            r#"["server_stats"]"#,
            r#""pod-b""#,
        ] {
            let error = parse_server_stats(&raw(json), foreign).unwrap_err();
            let before = parse_full_server_stats(&raw(json)).unwrap_err();
            assert_eq!(error, before, "{json}: the error it always had");
            assert!(
                matches!(
                    error,
                    ProtocolError::Payload {
                        what: "server_stats",
                        ..
                    }
                ),
                "{json}: {error:?}"
            );
        }
    }

    fn stats_ok(json: &str) -> ServerStats {
        stats(json).unwrap()
    }

    #[test]
    fn engine_buckets_sum_per_type_and_reason() {
        // As captured from admin-ui 0.5.1, plus a second second's buckets.
        let stats = stats_ok(
            r#"{"serverId":"test-1","clientsCount":4,"pollingClientsCount":1,"aggregatedEvents":[{"timestamp":1795636960000,"type":"rawConnection","count":4},{"timestamp":1795636960000,"type":"packetsIn","count":5},{"timestamp":1795636960000,"type":"bytesIn","count":65},{"timestamp":1795636961000,"type":"rawDisconnection","subType":"transport close","count":1},{"timestamp":1795636961000,"type":"packetsOut","count":2},{"timestamp":1795636961000,"type":"bytesOut","count":30},{"timestamp":1795636961000,"type":"rawConnection","count":1},{"timestamp":1795636961000,"type":"somethingNew","count":9}],"namespaces":[]}"#,
        );
        let engine = stats.engine().unwrap();
        assert_eq!(engine.polling_clients, Some(1));
        assert_eq!(
            engine.events,
            Some(Counted::SincePrevious(EngineEvents {
                connections: 5,
                disconnections: vec![("transport close".into(), 1)],
                packets_in: 5,
                packets_out: 2,
                bytes_in: 65,
                bytes_out: 30,
            }))
        );
    }

    #[test]
    fn engine_fields_a_server_does_not_send_stay_unknown() {
        let old = stats_ok(r#"{"serverId":"a","clientsCount":1,"namespaces":[]}"#);
        assert_eq!(old.engine(), None);
        let no_events = stats_ok(r#"{"serverId":"a","pollingClientsCount":0,"namespaces":[]}"#);
        assert_eq!(
            no_events.engine(),
            Some(Engine {
                polling_clients: Some(0),
                events: None
            })
        );
        let quiet = stats_ok(r#"{"serverId":"a","aggregatedEvents":[],"namespaces":[]}"#);
        assert_eq!(
            quiet.engine().unwrap().events,
            Some(Counted::SincePrevious(EngineEvents::default()))
        );
    }

    #[test]
    fn admin_ui_before_0_4_is_named_with_its_fix() {
        // admin-ui 0.2/0.3 send clientsCount but no namespaces.
        let error = stats(r#"{"serverId":"a","clientsCount":3,"pollingClientsCount":0}"#);
        assert_eq!(error.unwrap_err(), ProtocolError::OldAdminUi);
        assert!(
            ProtocolError::OldAdminUi
                .to_string()
                .contains("0.4.0 or later")
        );
    }

    #[test]
    fn huge_counts_and_empty_server_ids() {
        let huge = stats(
            r#"{"serverId":"a","namespaces":[{"name":"/","socketsCount":18446744073709551615}]}"#,
        );
        assert!(
            matches!(huge, Err(ProtocolError::Payload { .. })),
            "{huge:?}"
        );
        let empty = stats(r#"{"serverId":"","namespaces":[]}"#).unwrap();
        assert_eq!(empty.server_id, None);
    }
}
