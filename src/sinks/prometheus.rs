//! The Prometheus text exposition (format 0.0.4), rendered from the snapshot at scrape time.
//!
//! Connection series are written straight from the snapshot: a namespace that left the
//! snapshot leaves `/metrics` with no expiry code, and rendering stays cheap at any size.

use std::fmt::{Display, Write as _};
use std::sync::Arc;

use tokio::time::Instant;

use crate::metrics::{
    BUILD_INFO, BYTES, CLIENTS, CONNECTIONS, ENGINE_CONNECTIONS, ENGINE_DISCONNECTIONS, Metric,
    NAMESPACE_LIMIT, NAMESPACES_FOLDED, PACKETS, POLLING_CLIENTS, RECONCILE_CORRECTIONS,
    RECONCILE_DRIFT, SOURCE_LAST_SUCCESS, SOURCE_UP,
};
use crate::snapshot::{EngineCounters, Snapshot, SourceStatus};
use crate::telemetry::Telemetry;

pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const VERSION: &str = env!("CARGO_PKG_VERSION");
const REVISION: &str = env!("SOCKETIO_EXPORTER_REVISION");

/// The whole `/metrics` body. A snapshot past its expiry has no connection series.
pub(crate) fn render(snapshot: &Arc<Snapshot>, telemetry: &Telemetry) -> String {
    let snapshot = snapshot.as_of(Instant::now());
    let mut out = String::with_capacity(1024 + snapshot.connections.len() * 80);
    render_snapshot(&snapshot, &mut out);
    telemetry.encode(&mut out);
    out
}

/// The families that come from the snapshot.
pub fn render_snapshot(snapshot: &Snapshot, out: &mut String) {
    let env = snapshot.environment.as_str();

    let mut family = Family::start(out, &CONNECTIONS).fixed("environment", env);
    for c in &snapshot.connections {
        family
            .sample()
            .label("namespace", &c.namespace)
            .label_opt("server", c.server.as_deref())
            .value(c.sockets);
    }

    let mut family = Family::start(out, &CLIENTS).fixed("environment", env);
    for c in &snapshot.clients {
        family
            .sample()
            .label_opt("server", c.server.as_deref())
            .value(c.clients);
    }

    render_engine(snapshot, out);

    per_source(out, snapshot, &SOURCE_UP, |s| u64::from(s.health.is_up()));

    let mut family = Family::start(out, &SOURCE_LAST_SUCCESS);
    for s in &snapshot.sources {
        if let Some(secs) = s.last_success_unix_secs() {
            family
                .sample()
                .label("source", &s.name)
                .value(format_args!("{secs:.3}"));
        }
    }

    let mut family = Family::start(out, &RECONCILE_DRIFT);
    for d in &snapshot.drift {
        family
            .sample()
            .label("source", &d.source)
            .label("server", &d.server)
            .label("namespace", &d.namespace)
            .value(d.value);
    }

    per_source(out, snapshot, &RECONCILE_CORRECTIONS, |s| s.corrections);
    per_source(out, snapshot, &NAMESPACES_FOLDED, |s| s.folded as u64);
    per_source(out, snapshot, &NAMESPACE_LIMIT, |s| {
        s.namespace_limit as u64
    });

    Family::start(out, &BUILD_INFO)
        .sample()
        .label("version", VERSION)
        .label("revision", REVISION)
        .value(1);
}

/// The Engine.IO families: one sample per server label that reports each part.
fn render_engine(snapshot: &Snapshot, out: &mut String) {
    let env = snapshot.environment.as_str();
    let mut family = Family::start(out, &POLLING_CLIENTS).fixed("environment", env);
    for e in &snapshot.engine {
        if let Some(n) = e.polling_clients {
            family
                .sample()
                .label_opt("server", e.server.as_deref())
                .value(n);
        }
    }
    let counted = || {
        snapshot
            .engine
            .iter()
            .filter_map(|e| Some((e.server.as_deref(), e.counters.as_ref()?)))
    };
    let mut family = Family::start(out, &ENGINE_CONNECTIONS).fixed("environment", env);
    for (server, c) in counted() {
        family
            .sample()
            .label_opt("server", server)
            .value(c.connections);
    }
    let mut family = Family::start(out, &ENGINE_DISCONNECTIONS).fixed("environment", env);
    for (server, c) in counted() {
        for (reason, n) in c.disconnections() {
            family
                .sample()
                .label_opt("server", server)
                .label("reason", reason)
                .value(n);
        }
    }
    type Directions = fn(&EngineCounters) -> [(&'static str, u64); 2];
    let families: [(&Metric, Directions); 2] = [
        (&PACKETS, |c| [("in", c.packets_in), ("out", c.packets_out)]),
        (&BYTES, |c| [("in", c.bytes_in), ("out", c.bytes_out)]),
    ];
    for (metric, directions) in families {
        let mut family = Family::start(out, metric).fixed("environment", env);
        for (server, c) in counted() {
            for (direction, n) in directions(c) {
                family
                    .sample()
                    .label_opt("server", server)
                    .label("direction", direction)
                    .value(n);
            }
        }
    }
}

/// A family with one sample per source, labelled `source`.
fn per_source(
    out: &mut String,
    snapshot: &Snapshot,
    metric: &Metric,
    value: impl Fn(&SourceStatus) -> u64,
) {
    let mut family = Family::start(out, metric);
    for s in &snapshot.sources {
        family.sample().label("source", &s.name).value(value(s));
    }
}

/// Writes one family: its `HELP` and `TYPE` lines, then its samples, the name written
/// once in the metric table and carried into every sample. Labels every sample of the
/// family has with the same value (`environment`) are written once into its prefix.
struct Family<'a> {
    out: &'a mut String,
    /// The name and the fixed labels, ready to start each sample.
    prefix: String,
    fixed: usize,
}

impl<'a> Family<'a> {
    fn start(out: &'a mut String, metric: &Metric) -> Family<'a> {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}",
            name = metric.name,
            help = metric.help,
            kind = metric.kind.as_str()
        );
        Family {
            out,
            prefix: metric.name.to_owned(),
            fixed: 0,
        }
    }

    /// A label with the same value on every sample of the family.
    fn fixed(mut self, name: &str, value: &str) -> Self {
        push_label(&mut self.prefix, self.fixed, name, value);
        self.fixed += 1;
        self
    }

    fn sample(&mut self) -> Sample<'_> {
        self.out.push_str(&self.prefix);
        Sample {
            out: self.out,
            labels: self.fixed,
        }
    }
}

/// One sample line being written: labels, then the value.
struct Sample<'a> {
    out: &'a mut String,
    labels: usize,
}

impl Sample<'_> {
    fn label(mut self, name: &str, value: &str) -> Self {
        push_label(self.out, self.labels, name, value);
        self.labels += 1;
        self
    }

    fn label_opt(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.label(name, value),
            None => self,
        }
    }

    fn value(self, value: impl Display) {
        if self.labels > 0 {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Appends `name="value"`, opening the label set when it is the first.
fn push_label(out: &mut String, before: usize, name: &str, value: &str) {
    out.push(if before == 0 { '{' } else { ',' });
    out.push_str(name);
    out.push_str("=\"");
    escape(out, value);
    out.push('"');
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
    use crate::snapshot::{Clients, Connections, Engine, Health, SourceStatus};
    use crate::update::Reason;

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
                server: "pod-a".into(),
                namespace: "/chat".into(),
                value: 3,
            }],
            engine: vec![],
            expires: None,
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
                r#"socketio_exporter_reconcile_drift{source="admin",server="pod-a",namespace="/chat"} 3"#,
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

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_older_than_stale_after_serves_no_connection_series() {
        let now = Instant::now();
        let snapshot = Arc::new(Snapshot {
            environment: "e".into(),
            connections: vec![connections("/", None, 2)],
            clients: vec![Clients {
                server: None,
                clients: 3,
            }],
            sources: vec![SourceStatus {
                name: "admin".into(),
                health: Health::Up,
                last_success: None,
                folded: 0,
                namespace_limit: 1000,
                corrections: 0,
            }],
            expires: Some(now + Duration::from_secs(10)),
            ..Snapshot::default()
        });
        let telemetry = Telemetry::new([]);
        let fresh = render(&snapshot, &telemetry);
        assert!(fresh.contains("websocket_connections{"), "{fresh}");
        tokio::time::advance(Duration::from_secs(11)).await;
        let frozen = render(&snapshot, &telemetry);
        assert!(!frozen.contains("websocket_connections{"), "{frozen}");
        assert!(!frozen.contains("websocket_clients{"), "{frozen}");
        assert!(
            frozen.contains("socketio_exporter_source_up{source=\"admin\"} 0"),
            "{frozen}"
        );
    }

    #[test]
    fn engine_series_only_for_what_servers_report() {
        let mut counters = EngineCounters {
            connections: 7,
            packets_in: 5,
            packets_out: 6,
            bytes_in: 50,
            bytes_out: 60,
            ..EngineCounters::default()
        };
        counters.disconnections[2] = 3;
        let snapshot = Snapshot {
            environment: "p".into(),
            engine: vec![
                Engine {
                    server: Some("a".into()),
                    polling_clients: Some(1),
                    counters: Some(counters),
                },
                Engine {
                    server: Some("b".into()),
                    polling_clients: Some(0),
                    counters: None,
                },
            ],
            ..Snapshot::default()
        };
        let mut out = String::new();
        render_snapshot(&snapshot, &mut out);
        let engine: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("socketio_") && !l.starts_with("socketio_exporter"))
            .collect();
        assert_eq!(
            engine,
            [
                r#"socketio_polling_clients{environment="p",server="a"} 1"#,
                r#"socketio_polling_clients{environment="p",server="b"} 0"#,
                r#"socketio_engine_connections_total{environment="p",server="a"} 7"#,
                r#"socketio_engine_disconnections_total{environment="p",server="a",reason="transport close"} 0"#,
                r#"socketio_engine_disconnections_total{environment="p",server="a",reason="transport error"} 0"#,
                r#"socketio_engine_disconnections_total{environment="p",server="a",reason="ping timeout"} 3"#,
                r#"socketio_engine_disconnections_total{environment="p",server="a",reason="forced close"} 0"#,
                r#"socketio_engine_disconnections_total{environment="p",server="a",reason="parse error"} 0"#,
                r#"socketio_engine_disconnections_total{environment="p",server="a",reason="other"} 0"#,
                r#"socketio_packets_total{environment="p",server="a",direction="in"} 5"#,
                r#"socketio_packets_total{environment="p",server="a",direction="out"} 6"#,
                r#"socketio_bytes_total{environment="p",server="a",direction="in"} 50"#,
                r#"socketio_bytes_total{environment="p",server="a",direction="out"} 60"#,
            ]
        );
        assert!(out.contains("# TYPE socketio_engine_connections_total counter\n"));
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
