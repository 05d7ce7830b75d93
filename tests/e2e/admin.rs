//! The `socketio_admin` source against the real app.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    App, Clients, Exporter, WEIRD_NAMESPACE, admin_config, eventually, require_tool,
};

/// admin-ui's fixed stats period.
const STATS_PERIOD: Duration = Duration::from_secs(2);
/// The tests' sync interval and staleness (see `admin_config`).
const INTERVAL: Duration = Duration::from_secs(1);
const STALE_AFTER: Duration = Duration::from_secs(5);
/// Scheduling slack on a busy 2-core CI machine.
const SLACK: Duration = Duration::from_millis(1500);

const SOURCE: &str = "socketio_admin";

fn local_exporter(app: &App) -> Exporter {
    Exporter::start(&admin_config(
        &app.url(),
        &format!("server_id = \"{}\"", app.server_id),
    ))
}

/// The mix of the issue: multiplexed clients, a dynamic namespace, and a namespace whose
/// name holds a quote and a backslash.
fn connect_mix(clients: &mut Clients, app: &App) {
    clients.connect("c1", app, &["/"]);
    clients.connect("c2", app, &["/", "/chat"]);
    clients.connect("c3", app, &["/chat", "/notifications", "/tenant-42"]);
    clients.connect("c4", app, &[WEIRD_NAMESPACE]);
    clients.connect("c5", app, &["/tenant-7", "/"]);
}

/// Waits until the exporter shows exactly the app's own counts.
fn assert_matches_truth(exporter: &Exporter, app: &App, within: Duration) {
    eventually(within, || {
        let truth = app.truth();
        let scrape = exporter.scrape();
        let shown = scrape.connections();
        if shown != truth.without_admin() {
            return Err(format!(
                "exporter {shown:?} != app {:?}",
                truth.without_admin()
            ));
        }
        let clients = scrape.value("websocket_clients", &[("environment", "test")]);
        if clients != Some(truth.clients as f64) {
            return Err(format!(
                "websocket_clients {clients:?} != app {}",
                truth.clients
            ));
        }
        Ok(())
    });
}

#[test]
fn exact_counts_per_namespace_and_engine_clients() {
    let app = App::start("app-exact");
    let mut clients = Clients::start();
    connect_mix(&mut clients, &app);
    let exporter = local_exporter(&app);

    assert_matches_truth(&exporter, &app, STALE_AFTER + SLACK);
    let shown = exporter.scrape().connections();
    let expected: BTreeMap<String, u64> = [
        ("/", 3),
        ("/chat", 2),
        ("/notifications", 1),
        ("/tenant-42", 1),
        ("/tenant-7", 1),
        (WEIRD_NAMESPACE, 1),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c))
    .collect();
    assert_eq!(shown, expected, "the counts the clients above make");
    assert!(
        !shown.contains_key("/admin"),
        "the admin namespace is not exported by default"
    );
    // Five client connections plus the exporter's own.
    assert_eq!(
        exporter
            .scrape()
            .value("websocket_clients", &[("environment", "test")]),
        Some(6.0)
    );
    assert_eq!(exporter.scrape().source_up(SOURCE), Some(1.0));
}

#[test]
fn disconnects_show_within_one_sync_interval_plus_the_stats_period() {
    let app = App::start("app-churn");
    let mut clients = Clients::start();
    connect_mix(&mut clients, &app);
    let exporter = local_exporter(&app);
    assert_matches_truth(&exporter, &app, STALE_AFTER + SLACK);

    clients.disconnect("c2");
    clients.leave("c3", "/notifications");
    clients.disconnect("c4");
    assert_matches_truth(&exporter, &app, INTERVAL + STATS_PERIOD + SLACK);
    let shown = exporter.scrape().connections();
    assert_eq!(shown["/"], 2);
    assert_eq!(shown["/chat"], 1);
    // A live report says zero: zero is exported.
    assert_eq!(shown["/notifications"], 0);
    assert_eq!(shown[WEIRD_NAMESPACE], 0);

    clients.connect("c6", &app, &["/notifications", "/tenant-99"]);
    assert_matches_truth(&exporter, &app, INTERVAL + STATS_PERIOD + SLACK);
    assert_eq!(exporter.scrape().connections()["/tenant-99"], 1);
}

#[test]
fn app_killed_means_no_series_and_source_down_then_recovery_after_restart() {
    let app = App::start("app-restart");
    let port = app.port;
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/chat"]);
    let mut exporter = local_exporter(&app);
    assert_matches_truth(&exporter, &app, STALE_AFTER + SLACK);

    app.kill();
    eventually(STALE_AFTER, || {
        let scrape = exporter.scrape();
        match (
            scrape.series("websocket_connections").len(),
            scrape.source_up(SOURCE),
        ) {
            (0, Some(0.0)) if scrape.series("websocket_clients").is_empty() => Ok(()),
            other => Err(format!("series and source_up: {other:?}")),
        }
    });

    let app = App::start_with("app-restart", port, &[]);
    let mut clients = Clients::start();
    clients.connect("c2", &app, &["/notifications"]);
    // The reconnect backoff is below 4 s this early in an outage.
    assert_matches_truth(
        &exporter,
        &app,
        Duration::from_secs(4) + STATS_PERIOD + INTERVAL + SLACK,
    );
    assert_eq!(exporter.scrape().connections()["/notifications"], 1);
    assert_eq!(exporter.scrape().source_up(SOURCE), Some(1.0));
    assert!(exporter.is_running(), "recovered without a restart");
    assert!(exporter.scrape().errors(SOURCE, "closed") >= 1.0);
}

#[test]
fn wrong_password_is_one_clear_error_and_the_source_stays_down() {
    let app = App::start("app-auth");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/"]);
    let mut exporter = Exporter::start_with_env(
        &admin_config(&app.url(), &format!("server_id = \"{}\"", app.server_id)),
        &[("TEST_ADMIN_PASSWORD", "not-the-password")],
    );

    // Several refused attempts (backoff 0.5 s, 1 s, 2 s, ...).
    eventually(Duration::from_secs(8), || {
        let refused = exporter.scrape().errors(SOURCE, "auth");
        if refused >= 3.0 {
            Ok(())
        } else {
            Err(format!("{refused} refusals"))
        }
    });
    let scrape = exporter.scrape();
    assert_eq!(scrape.source_up(SOURCE), Some(0.0));
    assert!(
        scrape.series("websocket_connections").is_empty(),
        "no false zero: {}",
        scrape.text
    );
    assert!(exporter.is_running());

    let logs = exporter.logs();
    let refusals: Vec<_> = logs
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("credentials refused")
        })
        .collect();
    assert_eq!(
        refusals.len(),
        1,
        "one log line for repeated refusals: {logs:#?}"
    );
    let message = refusals[0]["message"].as_str().unwrap();
    assert!(
        message.contains("credentials refused (\"invalid credentials\")"),
        "{message}"
    );
    assert!(message.contains("bcrypt hash"), "the hint: {message}");
    assert!(logs.len() <= 4, "no log flood: {logs:#?}");
    let all = format!("{logs:?}");
    assert!(
        !all.contains("not-the-password"),
        "the password is never logged"
    );
}

#[test]
fn local_scope_shows_only_its_own_server_id() {
    let app = App::start("app-scope");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/chat"]);

    let foreign = Exporter::start(&admin_config(&app.url(), "server_id = \"some-other-pod\""));
    eventually(STALE_AFTER + STATS_PERIOD + SLACK, || {
        let logs = foreign.logs();
        logs.iter()
            .find(|e| e["reason"] == "server_id_not_seen")
            .cloned()
            .ok_or_else(|| format!("no server_id_not_seen warning in {logs:#?}"))
    });
    let warning = foreign
        .logs()
        .into_iter()
        .find(|e| e["reason"] == "server_id_not_seen")
        .unwrap();
    assert_eq!(warning["own_server_id"], "some-other-pod");
    assert!(
        warning["seen"].as_str().unwrap().contains("app-scope"),
        "{warning}"
    );
    let scrape = foreign.scrape();
    assert!(
        scrape.series("websocket_connections").is_empty(),
        "{}",
        scrape.text
    );
    assert_eq!(scrape.source_up(SOURCE), Some(0.0));
    assert_eq!(scrape.errors(SOURCE, "server_id_not_seen"), 1.0);

    let cluster = Exporter::start(&admin_config(&app.url(), "scope = \"cluster\""));
    eventually(STALE_AFTER + SLACK, || {
        let scrape = cluster.scrape();
        let value = |ns| {
            scrape.value(
                "websocket_connections",
                &[
                    ("environment", "test"),
                    ("namespace", ns),
                    ("server", "app-scope"),
                ],
            )
        };
        match (value("/"), value("/chat")) {
            (Some(1.0), Some(1.0)) => Ok(()),
            other => Err(format!("{other:?} in {}", scrape.text)),
        }
    });
}

#[test]
fn metrics_pass_promtool_check() {
    let promtool = require_tool("promtool");
    let app = App::start("app-promtool");
    let mut clients = Clients::start();
    connect_mix(&mut clients, &app);
    let exporter = local_exporter(&app);
    assert_matches_truth(&exporter, &app, STALE_AFTER + SLACK);

    let text = exporter.scrape().text;
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn sigterm_leaves_the_admin_namespace_and_exits_promptly() {
    let app = App::start("app-sigterm");
    let exporter = local_exporter(&app);
    eventually(STALE_AFTER + SLACK, || {
        match exporter.scrape().source_up(SOURCE) {
            Some(1.0) => Ok(()),
            other => Err(format!("source_up {other:?}")),
        }
    });
    assert_eq!(app.truth().namespaces["/admin"], 1);

    let status = exporter
        .terminate(Duration::from_secs(6))
        .expect("exited within the deadline");
    assert!(status.success(), "{status:?}");
    eventually(
        Duration::from_secs(2),
        || match app.truth().namespaces["/admin"] {
            0 => Ok(()),
            n => Err(format!("{n} admin sockets left")),
        },
    );
}

#[test]
fn socket_io_3_1_with_admin_ui_0_5_is_counted_exactly() {
    // Pinned compatibility: the same app on socket.io 3.1 (npm alias socket.io-v3).
    let app = App::start_on("v3-host", "socket.io-v3");
    let exporter = local_exporter(&app);
    let mut clients = Clients::start();
    connect_mix(&mut clients, &app);
    assert_matches_truth(&exporter, &app, STALE_AFTER + STATS_PERIOD + SLACK);
    clients.disconnect("c2");
    assert_matches_truth(&exporter, &app, STATS_PERIOD + INTERVAL + SLACK);
}
