//! The Engine.IO series (`socketio_polling_clients`, `socketio_engine_*`, `socketio_packets_total`,
//! `socketio_bytes_total`) from admin-ui's `server_stats`, against the real app and real
//! socket.io-client clients.

use std::time::Duration;

use crate::support::otlp::{Point, Receiver};
use crate::support::redis::Redis;
use crate::support::scrape::Scrape;
use crate::support::{
    App, Clients, Exporter, admin_config, app_reporting_to_file, eventually, throughout,
};

const STATS_PERIOD: Duration = Duration::from_secs(2);
const STALE_AFTER: Duration = Duration::from_secs(5);
const SLACK: Duration = Duration::from_millis(1500);
const SOURCE: &str = "socketio_admin";

const REASONS: [&str; 6] = [
    "transport close",
    "transport error",
    "ping timeout",
    "forced close",
    "parse error",
    "other",
];

/// What a user reads off `/metrics` for one server label (none in local scope).
#[derive(Debug, Clone, PartialEq)]
struct Engine {
    polling: Option<f64>,
    connections: f64,
    /// Per reason of [`REASONS`], in order.
    disconnections: Vec<f64>,
    packets: [f64; 2],
    bytes: [f64; 2],
}

impl Engine {
    fn read(scrape: &Scrape) -> Option<Engine> {
        Engine::of_server(scrape, None)
    }

    /// The series of one `server` label (cluster scope), or without one.
    fn of_server(scrape: &Scrape, server: Option<&str>) -> Option<Engine> {
        let mut env = vec![("environment", "test")];
        env.extend(server.map(|s| ("server", s)));
        let with = |name: &str, key: &str, value: &str| {
            let mut labels = env.clone();
            labels.push((key, value));
            scrape.value(name, &labels)
        };
        let directions = |name: &str| -> Option<[f64; 2]> {
            Some([
                with(name, "direction", "in")?,
                with(name, "direction", "out")?,
            ])
        };
        Some(Engine {
            polling: scrape.value("socketio_polling_clients", &env),
            connections: scrape.value("socketio_engine_connections_total", &env)?,
            disconnections: REASONS
                .iter()
                .map(|r| with("socketio_engine_disconnections_total", "reason", r))
                .collect::<Option<_>>()?,
            packets: directions("socketio_packets_total")?,
            bytes: directions("socketio_bytes_total")?,
        })
    }

    fn reason(&self, reason: &str) -> f64 {
        self.disconnections[REASONS.iter().position(|r| *r == reason).unwrap()]
    }

    /// Whether every counter is at least where `earlier` was.
    fn not_behind(&self, earlier: &Engine) -> bool {
        let pairs = [
            (self.connections, earlier.connections),
            (self.packets[0], earlier.packets[0]),
            (self.packets[1], earlier.packets[1]),
            (self.bytes[0], earlier.bytes[0]),
            (self.bytes[1], earlier.bytes[1]),
        ];
        pairs.iter().all(|(now, then)| now >= then)
            && self
                .disconnections
                .iter()
                .zip(&earlier.disconnections)
                .all(|(now, then)| now >= then)
    }
}

fn local_exporter(app: &App) -> Exporter {
    Exporter::start(&admin_config(
        &app.url(),
        &format!("server_id = \"{}\"", app.server_id),
    ))
}

/// Waits until the engine series show `connections` and the disconnections by reason
/// (the reasons not named at 0), with `polling` clients on long-polling.
fn wait_for(
    exporter: &Exporter,
    within: Duration,
    connections: f64,
    closed: &[(&str, f64)],
    polling: f64,
) -> Engine {
    eventually(within, || {
        let engine = Engine::read(&exporter.scrape()).ok_or("no engine series")?;
        let expected: Vec<f64> = REASONS
            .iter()
            .map(|r| closed.iter().find(|(c, _)| c == r).map_or(0.0, |(_, n)| *n))
            .collect();
        if engine.connections == connections
            && engine.disconnections == expected
            && engine.polling == Some(polling)
        {
            Ok(engine)
        } else {
            Err(format!(
                "{engine:?}, want {connections} connections, {expected:?}, {polling} polling"
            ))
        }
    })
}

#[test]
fn engine_counts_are_exact_per_reason_and_transport() {
    let app = App::start("app-engine");
    let exporter = local_exporter(&app);
    // The exporter's own admin connection is the first engine connection; every known
    // reason is there at 0.
    let start = wait_for(&exporter, STALE_AFTER + SLACK, 1.0, &[], 0.0);
    assert!(start.packets[1] > 0.0 && start.bytes[1] > 0.0, "{start:?}");

    let mut clients = Clients::start();
    clients.connect("w1", &app, &["/"]);
    clients.connect("w2", &app, &["/"]);
    clients.connect_over("p1", &app, &["/"], &["polling"]);
    clients.connect_over("p2", &app, &["/"], &["polling"]);
    clients.connect("n1", &app, &["/notifications"]);
    clients.connect_over("n2", &app, &["/notifications"], &["polling"]);
    let connected = wait_for(&exporter, STATS_PERIOD + SLACK, 7.0, &[], 3.0);
    assert!(connected.not_behind(&start) && connected.packets[0] > start.packets[0]);

    // Two clients close themselves, one per transport; the app drops two more.
    clients.disconnect("w1");
    clients.disconnect("p1");
    assert_eq!(app.disconnect_sockets("/notifications"), 2);
    let closed = [("transport close", 2.0), ("forced close", 2.0)];
    let after = wait_for(&exporter, STATS_PERIOD + SLACK, 7.0, &closed, 1.0);
    assert!(after.not_behind(&connected));

    // Each event was counted once: nothing moves on the next messages but traffic.
    throughout(2 * STATS_PERIOD, || {
        let now = Engine::read(&exporter.scrape()).ok_or("no engine series")?;
        if now.connections == 7.0 && now.disconnections == after.disconnections {
            Ok(())
        } else {
            Err(format!("{now:?} moved from {after:?}"))
        }
    });
}

#[test]
fn a_source_reconnect_never_moves_a_counter_back_or_counts_twice() {
    let app = App::start("app-engine-reconnect");
    let exporter = local_exporter(&app);
    wait_for(&exporter, STALE_AFTER + SLACK, 1.0, &[], 0.0);
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/"]);
    let before = wait_for(&exporter, STATS_PERIOD + SLACK, 2.0, &[], 0.0);

    // The app drops the exporter's own admin socket; the source reconnects.
    assert_eq!(app.disconnect_sockets("/admin"), 1);
    let mut last = before.clone();
    let reconnected = eventually(Duration::from_secs(4) + STATS_PERIOD + SLACK, || {
        let scrape = exporter.scrape();
        let Some(now) = Engine::read(&scrape) else {
            return Err("no engine series (source down)".into());
        };
        assert!(now.not_behind(&last), "{now:?} went back from {last:?}");
        last = now.clone();
        match scrape.errors(SOURCE, "closed") >= 1.0 && now.connections >= 3.0 {
            true => Ok(now),
            false => Err(format!("not reconnected yet: {now:?}")),
        }
    });
    // One new connection: the exporter's. Its close may fall between two messages the
    // exporter was not there for: then it is missed, never invented.
    assert_eq!(reconnected.connections, 3.0, "{reconnected:?}");
    assert!(reconnected.reason("forced close") <= 1.0, "{reconnected:?}");

    clients.connect("c2", &app, &["/"]);
    clients.disconnect("c1");
    let forced = reconnected.reason("forced close");
    let closed = [("transport close", 1.0), ("forced close", forced)];
    let after = wait_for(&exporter, STATS_PERIOD + SLACK, 4.0, &closed, 0.0);
    assert!(after.not_behind(&reconnected));
}

#[test]
fn engine_series_leave_with_the_app() {
    let app = App::start("app-engine-gone");
    let exporter = local_exporter(&app);
    wait_for(&exporter, STALE_AFTER + SLACK, 1.0, &[], 0.0);
    let mut clients = Clients::start();
    clients.connect_over("p1", &app, &["/"], &["polling"]);
    wait_for(&exporter, STATS_PERIOD + SLACK, 2.0, &[], 1.0);

    app.kill();
    eventually(STALE_AFTER, || {
        let scrape = exporter.scrape();
        let left = [
            "socketio_polling_clients",
            "socketio_engine_connections_total",
            "socketio_engine_disconnections_total",
            "socketio_packets_total",
            "socketio_bytes_total",
        ]
        .iter()
        .all(|name| scrape.series(name).is_empty());
        match left {
            true => Ok(()),
            false => Err(format!("engine series left over in {}", scrape.text)),
        }
    });
}

#[test]
fn otlp_exports_the_engine_counters_as_monotonic_cumulative_sums() {
    let app = App::start("app-engine-otlp");
    let receiver = Receiver::http();
    let config = admin_config(&app.url(), &format!("server_id = \"{}\"", app.server_id));
    let exporter = Exporter::start_with_env(
        &format!("{config}\n[otlp]\nprotocol = \"http/protobuf\"\n"),
        &[
            ("TEST_ADMIN_PASSWORD", "changeit"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
    );
    wait_for(&exporter, STALE_AFTER + SLACK, 1.0, &[], 0.0);

    let mut clients = Clients::start();
    clients.connect("w1", &app, &["/"]);
    clients.connect_over("p1", &app, &["/"], &["polling"]);
    clients.disconnect("w1");
    let closed = [("transport close", 1.0)];
    let shown = wait_for(&exporter, STATS_PERIOD + SLACK, 3.0, &closed, 1.0);
    let export = receiver.wait_for(0, STATS_PERIOD + SLACK, |e| {
        let closed = e
            .metric("socketio.engine.disconnections")
            .into_iter()
            .find(|p| p.attributes.get("reason").map(String::as_str) == Some("transport close"))
            .map(|p| p.value);
        match closed {
            Some(1.0) => Ok(()),
            other => Err(format!("transport close: {other:?}")),
        }
    });

    let one = |name: &str| {
        let points = export.metric(name);
        assert_eq!(points.len(), 1, "{name}: {points:?}");
        points[0].clone()
    };
    // (unit, kind, monotonic, cumulative): what the Collector's translation keys on.
    let shape = |p: &Point| (p.unit.clone(), p.kind, p.monotonic, p.cumulative);
    let polling = one("socketio.polling_clients");
    assert_eq!(shape(&polling), ("{client}".into(), "sum", false, true));
    assert_eq!(polling.value, 1.0);
    let connections = one("socketio.engine.connections");
    assert_eq!(
        shape(&connections),
        ("{connection}".into(), "sum", true, true)
    );
    assert_eq!(connections.value, 3.0);
    assert_eq!(
        connections.attributes.keys().collect::<Vec<_>>(),
        ["environment"]
    );
    let reasons: Vec<String> = export
        .metric("socketio.engine.disconnections")
        .iter()
        .map(|p| p.attributes["reason"].clone())
        .collect();
    assert_eq!(
        reasons.len(),
        REASONS.len(),
        "every known reason, zeros included"
    );
    for (name, unit) in [("socketio.packets", "{packet}"), ("socketio.bytes", "By")] {
        let points = export.metric(name);
        assert_eq!(points.len(), 2, "{name}: {points:?}");
        for p in points {
            assert_eq!(
                (p.unit.as_str(), p.monotonic, p.cumulative),
                (unit, true, true)
            );
            assert!(["in", "out"].contains(&p.attributes["direction"].as_str()));
            assert!(p.value > 0.0, "{name} {p:?}");
        }
    }
    // The same numbers as /metrics.
    assert_eq!(connections.value, shown.connections);
}

#[test]
fn the_node_reporter_counts_the_engine_and_the_report_file_carries_it() {
    let (_dir, app, exporter) = app_reporting_to_file("app-engine-file");
    // No admin connection here: the reporter counts from its start, zeros included.
    wait_for(&exporter, STALE_AFTER, 0.0, &[], 0.0);

    let mut clients = Clients::start();
    clients.connect("w1", &app, &["/"]);
    clients.connect_over("p1", &app, &["/"], &["polling"]);
    clients.connect("n1", &app, &["/notifications"]);
    wait_for(&exporter, STALE_AFTER, 3.0, &[], 1.0);
    clients.disconnect("w1");
    assert_eq!(app.disconnect_sockets("/notifications"), 1);
    let closed = [("transport close", 1.0), ("forced close", 1.0)];
    let shown = wait_for(&exporter, STALE_AFTER, 3.0, &closed, 1.0);
    assert!(shown.packets[0] > 0.0 && shown.bytes[1] > 0.0, "{shown:?}");
}

#[test]
fn a_stale_servers_engine_series_leave_and_the_others_stay() {
    let redis = Redis::start();
    let node_1 = App::start_with("node-1", 0, &["--redis", &redis.url()]);
    let node_2 = App::start_with("node-2", 0, &["--redis", &redis.url()]);
    // Connected to node-1 only: node-2's stats come through the Redis adapter.
    let exporter = Exporter::start(&admin_config(&node_1.url(), "scope = \"cluster\""));
    let mut clients = Clients::start();
    clients.connect_over("p1", &node_2, &["/"], &["polling"]);
    let both = eventually(STALE_AFTER + SLACK, || {
        let scrape = exporter.scrape();
        let of = |server| Engine::of_server(&scrape, Some(server));
        match (of("node-1"), of("node-2")) {
            (Some(one), Some(two)) if two.polling == Some(1.0) && two.connections >= 1.0 => {
                Ok((one, two))
            }
            other => Err(format!("{other:?}")),
        }
    });

    node_2.kill();
    eventually(STALE_AFTER + STATS_PERIOD + SLACK, || {
        let scrape = exporter.scrape();
        let left = scrape
            .samples
            .iter()
            .filter(|s| s.name.starts_with("socketio_") && !s.name.starts_with("socketio_exporter"))
            .all(|s| s.labels.get("server").map(String::as_str) != Some("node-2"));
        match left {
            true => Ok(()),
            false => Err(format!(
                "node-2's engine series left over in {}",
                scrape.text
            )),
        }
    });
    let one = Engine::of_server(&exporter.scrape(), Some("node-1")).expect("node-1 stays");
    assert!(
        one.not_behind(&both.0),
        "{one:?} went back from {:?}",
        both.0
    );
    assert_eq!(exporter.scrape().source_up(SOURCE), Some(1.0));
}
