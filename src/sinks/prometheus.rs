//! The Prometheus text exposition (format 0.0.4), rendered from the snapshot at scrape time.
//!
//! Connection series are written straight from the snapshot: a namespace that left the
//! snapshot leaves `/metrics` with no expiry code, and rendering stays cheap at any size.

use std::fmt::Write as _;

use crate::snapshot::{Snapshot, SourceStatus};
use crate::telemetry::Telemetry;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const VERSION: &str = env!("CARGO_PKG_VERSION");
const REVISION: &str = env!("SOCKETIO_EXPORTER_REVISION");

/// The whole `/metrics` body.
pub fn render(snapshot: &Snapshot, telemetry: &Telemetry) -> String {
    let mut out = String::with_capacity(1024 + snapshot.connections.len() * 80);
    render_snapshot(snapshot, &mut out);
    telemetry.encode(&mut out);
    out
}

/// The families that come from the snapshot.
pub fn render_snapshot(snapshot: &Snapshot, out: &mut String) {
    let env = &snapshot.environment;

    family(
        out,
        "websocket_connections",
        "gauge",
        "Socket.IO sockets connected per namespace, as the app last reported them. \
         Absent while the source is down or stale: absent means unknown, not zero.",
    );
    for c in &snapshot.connections {
        out.push_str("websocket_connections{environment=\"");
        escape(out, env);
        out.push_str("\",namespace=\"");
        escape(out, &c.namespace);
        server_label(out, c.server.as_deref());
        let _ = writeln!(out, "\"}} {}", c.sockets);
    }

    family(
        out,
        "websocket_clients",
        "gauge",
        "Engine.IO connections (io.engine.clientsCount), this exporter's own included. \
         One client multiplexes sockets of several namespaces, so this differs from the \
         sum of websocket_connections.",
    );
    for c in &snapshot.clients {
        out.push_str("websocket_clients{environment=\"");
        escape(out, env);
        server_label(out, c.server.as_deref());
        let _ = writeln!(out, "\"}} {}", c.clients);
    }

    per_source(
        out,
        snapshot,
        "socketio_exporter_source_up",
        "gauge",
        "1 if the source's counts are current and exported; 0 if they are unknown \
         (unreachable, refused, stale, or not this server).",
        |s| u64::from(s.health.is_up()),
    );

    family(
        out,
        "socketio_exporter_source_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the newest report the source delivered for this exporter's scope.",
    );
    for s in &snapshot.sources {
        let Some(secs) = s.last_success_unix_secs() else {
            continue;
        };
        out.push_str("socketio_exporter_source_last_success_timestamp_seconds{source=\"");
        escape(out, &s.name);
        let _ = writeln!(out, "\"}} {secs:.3}");
    }

    family(
        out,
        "socketio_exporter_reconcile_drift",
        "gauge",
        "Per namespace, how far the counts moved by connection events were from the next \
         full report, at the last comparison (0: they agreed).",
    );
    for d in &snapshot.drift {
        out.push_str("socketio_exporter_reconcile_drift{source=\"");
        escape(out, &d.source);
        out.push_str("\",namespace=\"");
        escape(out, &d.namespace);
        let _ = writeln!(out, "\"}} {}", d.value);
    }

    per_source(
        out,
        snapshot,
        "socketio_exporter_reconcile_corrections_total",
        "counter",
        "Full reports that disagreed with the counts connection events had moved: each \
         corrected drifted event-driven counts.",
        |s| s.corrections,
    );
    per_source(
        out,
        snapshot,
        "socketio_exporter_namespaces_folded",
        "gauge",
        "Namespace values summed into namespace=\"__other__\" because a server reported more \
         than max_namespaces.",
        |s| s.folded as u64,
    );
    per_source(
        out,
        snapshot,
        "socketio_exporter_namespace_limit",
        "gauge",
        "The max_namespaces cap: namespace values per server before folding into __other__.",
        |s| s.namespace_limit as u64,
    );

    family(
        out,
        "socketio_exporter_build_info",
        "gauge",
        "Always 1; the labels say which build is running.",
    );
    let _ = writeln!(
        out,
        "socketio_exporter_build_info{{version=\"{VERSION}\",revision=\"{REVISION}\"}} 1"
    );
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A family with one sample per source, labelled `source`.
fn per_source(
    out: &mut String,
    snapshot: &Snapshot,
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&SourceStatus) -> u64,
) {
    family(out, name, kind, help);
    for s in &snapshot.sources {
        out.push_str(name);
        out.push_str("{source=\"");
        escape(out, &s.name);
        let _ = writeln!(out, "\"}} {}", value(s));
    }
}

/// Closes the previous label value and adds `server` when there is one.
fn server_label(out: &mut String, server: Option<&str>) {
    if let Some(server) = server {
        out.push_str("\",server=\"");
        escape(out, server);
    }
}

/// Escapes a label value: backslash, double quote and line feed; everything else is UTF-8 as is.
fn escape(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::snapshot::{Clients, Connections, Health, SourceStatus};
    use crate::sources::Reason;

    fn connections(namespace: &str, server: Option<&str>, sockets: u64) -> Connections {
        Connections {
            namespace: namespace.into(),
            server: server.map(Into::into),
            sockets,
        }
    }

    #[test]
    fn renders_the_contract_series() {
        let snapshot = Snapshot {
            environment: "production".into(),
            connections: vec![connections("/", None, 2), connections("/chat", None, 0)],
            clients: vec![Clients {
                server: None,
                clients: 3,
            }],
            sources: vec![
                SourceStatus {
                    name: "admin".into(),
                    health: Health::Up,
                    last_success: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)),
                    folded: 0,
                    namespace_limit: 1000,
                    corrections: 4,
                },
                SourceStatus {
                    name: "other".into(),
                    health: Health::Down(Reason::Auth),
                    last_success: None,
                    folded: 2,
                    namespace_limit: 10,
                    corrections: 0,
                },
            ],
            drift: vec![crate::snapshot::Drift {
                source: "admin".into(),
                namespace: "/chat".into(),
                value: 3,
            }],
        };
        let mut out = String::new();
        render_snapshot(&snapshot, &mut out);
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples[..6],
            [
                r#"websocket_connections{environment="production",namespace="/"} 2"#,
                r#"websocket_connections{environment="production",namespace="/chat"} 0"#,
                r#"websocket_clients{environment="production"} 3"#,
                r#"socketio_exporter_source_up{source="admin"} 1"#,
                r#"socketio_exporter_source_up{source="other"} 0"#,
                r#"socketio_exporter_source_last_success_timestamp_seconds{source="admin"} 1.500"#,
            ]
        );
        assert_eq!(
            samples[6..13],
            [
                r#"socketio_exporter_reconcile_drift{source="admin",namespace="/chat"} 3"#,
                r#"socketio_exporter_reconcile_corrections_total{source="admin"} 4"#,
                r#"socketio_exporter_reconcile_corrections_total{source="other"} 0"#,
                r#"socketio_exporter_namespaces_folded{source="admin"} 0"#,
                r#"socketio_exporter_namespaces_folded{source="other"} 2"#,
                r#"socketio_exporter_namespace_limit{source="admin"} 1000"#,
                r#"socketio_exporter_namespace_limit{source="other"} 10"#,
            ]
        );
        assert!(samples[13].starts_with("socketio_exporter_build_info{version=\""));
        assert!(out.contains("# TYPE websocket_connections gauge\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let snapshot = Snapshot {
            environment: "e".into(),
            connections: vec![connections("/we\"ird\\ns\nnä", Some("pod \"a\""), 1)],
            ..Snapshot::default()
        };
        let mut out = String::new();
        render_snapshot(&snapshot, &mut out);
        assert!(
            out.contains(
                r#"websocket_connections{environment="e",namespace="/we\"ird\\ns\nnä",server="pod \"a\""} 1"#
            ),
            "{out}"
        );
    }
}
