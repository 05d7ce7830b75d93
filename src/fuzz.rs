//! Entry points for fuzzing: each takes arbitrary bytes and must not panic, whatever they
//! hold. The `fuzz/` crate (cargo-fuzz, nightly) drives them with libFuzzer, and
//! `tests/fuzz_replay.rs` replays the committed corpus through them on stable.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::config::Config;
use crate::namespaces::{NamespaceGroup, NamespaceRules};
use crate::reconcile::{Inputs, SourceInput, reconcile};
use crate::sinks::prometheus::render_snapshot;
use crate::sources::Scope;
use crate::sources::format;
use crate::sources::http_json::{self, JsonMapping};
use crate::sources::socketio_admin::protocol::{self, EnginePacket};
use crate::update::Event;

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets by name: the folder of their corpus under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("socketio_frame", socketio_frame),
    ("report_json", report_json),
    ("http_json_mapping", http_json_mapping),
    ("timestamp", timestamp),
    ("config_toml", config_toml),
];

/// An Engine.IO/Socket.IO text frame as the admin-ui client reads it, down to
/// `server_stats`.
pub fn socketio_frame(data: &[u8]) {
    let Ok(frame) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(EnginePacket::Message(message)) = protocol::parse_engine(frame) else {
        return;
    };
    let Ok(packet) = protocol::parse_packet(message) else {
        return;
    };
    let _ = protocol::connect_error_message(packet.data);
    if let Ok((_, Some(argument))) = protocol::parse_event(packet.data) {
        let _ = protocol::parse_server_stats(argument, |_| true);
        let _ = protocol::parse_server_stats(argument, |id| id == Some("own"));
    }
}

/// A report or an events batch (`POST /push/*`, report files), then the report through
/// the cardinality rules, reconcile and rendering.
pub fn report_json(data: &[u8]) {
    let _ = format::parse_events(data);
    let now = SystemTime::now();
    let Ok(report) = format::parse_report(data, now, Some(now)) else {
        return;
    };
    let rules = NamespaceRules {
        groups: vec![NamespaceGroup {
            pattern: regex::Regex::new(r"^/t-(\d)").expect("valid pattern"),
            replace: "/t-$1*".into(),
        }],
        max: 4,
    };
    let own = "host".to_owned();
    let scope = Scope::Local {
        server_id: own.clone(),
    };
    let mut inputs = Inputs::new(
        vec![SourceInput::empty("fuzz".into(), scope, own, rules)],
        Duration::from_secs(10),
    );
    let at = Instant::now();
    inputs.apply(0, Event::Counts(report.clone()), at, now);
    let mut worker = report;
    worker.server_id = Some("host#2".into());
    inputs.apply(0, Event::Counts(worker), at, now);
    let mut out = String::new();
    render_snapshot(&reconcile("fuzz", &inputs, at), &mut out);
}

/// An `http_json` answer: the first line is the pointer (used for namespaces, clients and
/// the server id), the rest the JSON.
pub fn http_json_mapping(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pointer, json) = text.split_once('\n').unwrap_or(("/namespaces", text));
    let Ok(json) = serde_json::from_str::<serde_json::Value>(json) else {
        return;
    };
    for (clients, server_id) in [(None, None), (Some(pointer), Some(pointer))] {
        let mapping = JsonMapping {
            namespaces_pointer: pointer.to_owned(),
            namespace_field: "name".into(),
            count_field: "count".into(),
            clients_pointer: clients.map(str::to_owned),
            server_id_pointer: server_id.map(str::to_owned),
            engine_pointer: None,
        };
        let _ = http_json::map(&json, &mapping);
    }
}

/// A report's `generated_at`.
pub fn timestamp(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = format::parse_timestamp(text);
    }
}

/// A configuration file, through validation; no `OTEL_*` variables.
pub fn config_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = Config::parse_with_env(text, &|_| None)
    {
        let _ = config.summary();
        let _ = config.exposure_problems();
    }
}
