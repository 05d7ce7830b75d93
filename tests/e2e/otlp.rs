//! OTLP export: the real exporter, reading the real app, pushing to real OTLP receivers
//! built from the `opentelemetry-proto` types (tonic gRPC, hyper HTTP/protobuf).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::otlp::{Receiver, TestCa, Transport};
use crate::support::{App, Clients, Exporter, WEIRD_NAMESPACE, admin_config, eventually};

const SOURCE: &str = "socketio_admin";
/// The tests' export interval, in milliseconds (`OTEL_METRIC_EXPORT_INTERVAL`).
const INTERVAL_MS: &str = "500";
/// admin-ui's 2 s stats period, the 1 s sync, the 0.5 s export, and slack for a busy
/// 2-core machine.
const SETTLE: Duration = Duration::from_secs(12);
/// The exporter's shutdown deadline.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// The exporter in local scope for `app`, with `otlp` appended to its config.
fn start_exporter(app: &App, otlp: &str, env: &[(&str, &str)]) -> Exporter {
    let mut all = vec![("TEST_ADMIN_PASSWORD", "changeit")];
    all.extend_from_slice(env);
    let config = admin_config(&app.url(), &format!("server_id = \"{}\"", app.server_id));
    Exporter::start_with_env(&format!("{config}\n{otlp}"), &all)
}

/// Sockets per namespace: the test app's static namespaces at 0, then `pairs`.
fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    ["/", "/chat", "/notifications", WEIRD_NAMESPACE]
        .into_iter()
        .map(|n| (n, 0))
        .chain(pairs.iter().copied())
        .map(|(n, c)| (n.to_string(), c))
        .collect()
}

fn export_errors(exporter: &Exporter) -> f64 {
    exporter
        .scrape()
        .value("socketio_exporter_otlp_export_errors_total", &[])
        .expect("the OTLP error counter is exported while OTLP is on")
}

fn log_messages(exporter: &Exporter) -> Vec<String> {
    exporter
        .logs()
        .iter()
        .map(|e| {
            e["message"]
                .as_str()
                .or(e["raw"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn grpc_export_has_exact_counts_attribute_names_resource_and_auth_header() {
    let app = App::start("otlp-grpc");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/"]);
    clients.connect("c2", &app, &["/", "/chat"]);
    clients.connect("c3", &app, &["/chat", "/notifications", "/tenant-42"]);
    clients.connect("c4", &app, &[WEIRD_NAMESPACE]);
    let receiver = Receiver::grpc();
    let exporter = start_exporter(
        &app,
        "[otlp]\nprotocol = \"grpc\"\nheaders_env = { authorization = \"OTLP_TOKEN\" }\n",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_METRIC_EXPORT_INTERVAL", INTERVAL_MS),
            ("OTEL_SERVICE_NAME", "chat-sidecar"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "k8s.pod.name=chat-7f9c,team=real%20time",
            ),
            ("OTLP_TOKEN", "Bearer otlp-s3cret"),
        ],
    );

    let expected = counts(&[
        ("/", 2),
        ("/chat", 2),
        ("/notifications", 1),
        ("/tenant-42", 1),
        (WEIRD_NAMESPACE, 1),
    ]);
    let export = receiver.wait_for(0, SETTLE, |e| {
        let shown = e.connections();
        (shown == expected)
            .then_some(())
            .ok_or(format!("{shown:?}"))
    });
    // The same numbers as the app's own count and as /metrics.
    assert_eq!(app.truth().without_admin(), expected);
    assert_eq!(exporter.scrape().connections(), expected);

    for point in export.metric("websocket.connections") {
        assert_eq!(
            point.attributes.keys().collect::<Vec<_>>(),
            ["environment", "namespace"]
        );
        assert_eq!(point.attributes["environment"], "test");
        // A non-monotonic cumulative sum with a curly-brace unit: Prometheus's translation
        // makes it the gauge websocket_connections{environment,namespace}.
        assert_eq!(
            (
                point.unit.as_str(),
                point.kind,
                point.monotonic,
                point.cumulative
            ),
            ("{connection}", "sum", false, true)
        );
    }
    let engine = export.metric("websocket.clients");
    assert_eq!(engine.len(), 1, "{engine:?}");
    assert_eq!(
        engine[0].attributes,
        counts_text(&[("environment", "test")])
    );
    // Four clients and the exporter's own admin connection.
    assert_eq!(engine[0].value, 5.0);
    assert_eq!(engine[0].value, app.truth().clients as f64);

    let up = export.metric("socketio_exporter.source.up");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].kind, "gauge");
    assert_eq!(up[0].attributes, counts_text(&[("source", SOURCE)]));
    assert_eq!(up[0].value, 1.0);
    let last = export.metric("socketio_exporter.source.last_success_timestamp");
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].unit.as_str(), last[0].kind), ("s", "gauge"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last[0].value).abs() < 30.0,
        "{} vs {now}",
        last[0].value
    );

    let resource = export.resource();
    assert_eq!(resource["service.name"], "chat-sidecar");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["deployment.environment.name"], "test");
    assert!(!resource["host.name"].is_empty());
    assert_eq!(resource["service.instance.id"], resource["host.name"]);
    assert_eq!(resource["k8s.pod.name"], "chat-7f9c");
    assert_eq!(resource["team"], "real time");
    assert_eq!(resource["telemetry.sdk.language"], "rust");

    // The auth header reached the collector as gRPC metadata, and no log shows it.
    assert_eq!(export.headers["authorization"], "Bearer otlp-s3cret");
    let logs = exporter.logs();
    assert!(
        !logs.iter().any(|l| l.to_string().contains("otlp-s3cret")),
        "{logs:?}"
    );
}

fn counts_text(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn http_protobuf_export_drops_a_namespace_that_leaves_and_never_panics() {
    let app = App::start_with("otlp-http", 0, &["--cleanup-empty-children"]);
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/tenant-5"]);
    clients.connect("c2", &app, &["/chat"]);
    let receiver = Receiver::http();
    // No [otlp] section: the endpoint variable alone turns the export on.
    let mut exporter = start_exporter(
        &app,
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_METRIC_EXPORT_INTERVAL", INTERVAL_MS),
        ],
    );

    // The SDK's PeriodicReader thread drives the HTTP transport without panicking: with an
    // async HTTP client called there, it panics ("there is no reactor running") and never
    // exports.
    eventually(SETTLE, || {
        let messages = log_messages(&exporter);
        // The panic line and the message after it.
        let panicked = messages
            .iter()
            .position(|m| m.contains("panicked"))
            .map(|i| {
                messages[i..]
                    .iter()
                    .take(2)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        match (panicked, receiver.count()) {
            (Some(panic), _) => Ok(Err(panic)),
            (None, 0) => Err("no export yet".to_owned()),
            (None, _) => Ok(Ok(())),
        }
    })
    .expect("no panic on the export thread");
    let with = receiver.wait_for(0, SETTLE, |e| {
        let shown = e.connections();
        (shown == counts(&[("/", 1), ("/chat", 1), ("/tenant-5", 1)]))
            .then_some(())
            .ok_or(format!("{shown:?}"))
    });
    assert_eq!(with.path, "/v1/metrics");
    assert_eq!(with.headers["content-type"], "application/x-protobuf");

    // The client leaves the dynamic namespace; the app deletes it (cleanupEmptyChildNamespaces).
    clients.leave("c1", "/tenant-5");
    eventually(SETTLE, || {
        let truth = app.truth().without_admin();
        (!truth.contains_key("/tenant-5"))
            .then_some(())
            .ok_or(format!("{truth:?}"))
    });
    let seen = receiver.count();
    let without = receiver.wait_for(seen, SETTLE, |e| {
        let shown = e.connections();
        (shown == counts(&[("/", 1), ("/chat", 1)]))
            .then_some(())
            .ok_or(format!("{shown:?}"))
    });
    // ... and it stays gone from the exports after that one, and from /metrics.
    let index = receiver
        .exports()
        .iter()
        .position(|e| e.received == without.received)
        .unwrap();
    receiver.wait_for(index + 2, SETTLE, |_| Ok(()));
    for later in &receiver.exports()[index..] {
        assert!(
            !later.connections().contains_key("/tenant-5"),
            "{:?}",
            later.connections()
        );
    }
    assert!(!exporter.scrape().connections().contains_key("/tenant-5"));

    // Exports kept coming, the process runs, and nothing panicked.
    assert!(receiver.count() >= 4, "{} exports", receiver.count());
    assert!(exporter.is_running());
    let messages = log_messages(&exporter);
    assert!(
        !messages.iter().any(|m| m.contains("panicked")),
        "{messages:#?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("export failed")),
        "{messages:#?}"
    );
}

#[test]
fn collector_down_counts_errors_keeps_prometheus_and_exports_resume_on_its_return() {
    let app = App::start("otlp-down");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/chat"]);
    let receiver = Receiver::grpc();
    let port = receiver.addr.port();
    let exporter = start_exporter(
        &app,
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_METRIC_EXPORT_INTERVAL", INTERVAL_MS),
            // Fail fast: each failed export is counted after its retries, within this.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ],
    );
    let expected = counts(&[("/", 1), ("/chat", 1)]);
    receiver.wait_for(0, SETTLE, |e| {
        (e.connections() == expected)
            .then_some(())
            .ok_or(format!("{:?}", e.connections()))
    });
    assert_eq!(export_errors(&exporter), 0.0);

    receiver.stop();
    eventually(SETTLE, || {
        let errors = export_errors(&exporter);
        (errors >= 3.0)
            .then_some(())
            .ok_or(format!("{errors} export errors"))
    });
    // The Prometheus side does not notice.
    let scrape = exporter.scrape();
    assert_eq!(scrape.connections(), expected);
    assert_eq!(scrape.source_up(SOURCE), Some(1.0));
    // One log line for the outage, not one per failed export.
    let messages = log_messages(&exporter);
    let failures = messages
        .iter()
        .filter(|m| m.starts_with("otlp: export failed"))
        .count();
    assert_eq!(failures, 1, "{messages:#?}");

    // The collector comes back on the same port: exporting resumes.
    let receiver = Receiver::start(Transport::Grpc, port, None);
    receiver.wait_for(0, SETTLE, |e| {
        (e.connections() == expected)
            .then_some(())
            .ok_or(format!("{:?}", e.connections()))
    });
    let errors = export_errors(&exporter);
    let seen = receiver.count();
    receiver.wait_for(seen + 1, SETTLE, |_| Ok(()));
    assert_eq!(
        export_errors(&exporter),
        errors,
        "no errors once it is back"
    );
    assert!(
        log_messages(&exporter)
            .iter()
            .any(|m| m == "otlp: exports succeed again")
    );
}

#[test]
fn sigterm_flushes_a_final_export_within_the_shutdown_deadline() {
    let app = App::start("otlp-sigterm");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/notifications"]);
    let expected = counts(&[("/", 1), ("/notifications", 1)]);
    for transport in [Transport::Grpc, Transport::Http] {
        let receiver = Receiver::start(transport, 0, None);
        let exporter = start_exporter(
            &app,
            "",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol()),
                // Ten minutes: the only export this test sees is the final one.
                ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
            ],
        );
        eventually(SETTLE, || {
            let shown = exporter.scrape().connections();
            (shown == expected)
                .then_some(())
                .ok_or(format!("{shown:?}"))
        });
        assert_eq!(receiver.count(), 0, "no export before the interval");

        let started = Instant::now();
        let status = exporter
            .terminate(SHUTDOWN_DEADLINE + Duration::from_secs(3))
            .expect("the exporter exits after SIGTERM");
        assert!(status.success(), "{status:?}");
        assert!(
            started.elapsed() < SHUTDOWN_DEADLINE,
            "took {:?}",
            started.elapsed()
        );
        let exports = receiver.exports();
        assert_eq!(
            exports.len(),
            1,
            "{} over {}",
            exports.len(),
            receiver.protocol()
        );
        assert_eq!(
            exports[0].connections(),
            expected,
            "{}",
            receiver.protocol()
        );
    }
}

#[test]
fn sigterm_exits_within_the_deadline_when_the_collector_never_answers() {
    let app = App::start("otlp-hung");
    // Accepts connections (the kernel does) and never answers a request.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut exporter = start_exporter(
        &app,
        "",
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://{}", hung.local_addr().unwrap()),
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
            // Longer than the shutdown deadline.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
        ],
    );
    eventually(SETTLE, || {
        let up = exporter.scrape().source_up(SOURCE);
        (up == Some(1.0))
            .then_some(())
            .ok_or(format!("source_up {up:?}"))
    });
    let started = Instant::now();
    let status = exporter
        .stop(SHUTDOWN_DEADLINE + Duration::from_secs(3))
        .expect("the exporter exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < SHUTDOWN_DEADLINE + Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
    let messages = log_messages(&exporter);
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("otlp: final export did not finish within")),
        "{messages:#?}"
    );
}

#[test]
fn environment_variables_override_the_otlp_section_and_the_section_applies_alone() {
    let app = App::start("otlp-precedence");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/chat"]);
    let file_receiver = Receiver::grpc();
    let env_receiver = Receiver::http();
    let section = format!(
        r#"[otlp]
endpoint = "{}"
protocol = "grpc"
service_name = "from-file"
interval_secs = 600
resource_attributes = {{ team = "file", "k8s.cluster.name" = "file-cluster" }}
"#,
        file_receiver.endpoint()
    );

    let exporter = start_exporter(
        &app,
        &section,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &env_receiver.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_METRIC_EXPORT_INTERVAL", INTERVAL_MS),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=env"),
        ],
    );
    // Two exports: the variable's 0.5 s interval, not the file's 600 s.
    let export = env_receiver.wait_for(1, SETTLE, |_| Ok(()));
    let resource = export.resource();
    assert_eq!(resource["service.name"], "from-env");
    assert_eq!(resource["team"], "env");
    assert_eq!(resource["k8s.cluster.name"], "file-cluster", "keys merge");
    drop(exporter);
    assert_eq!(file_receiver.count(), 0);

    let exporter = start_exporter(
        &app,
        &section.replace("interval_secs = 600", "interval_secs = 0.5"),
        &[],
    );
    let export = file_receiver.wait_for(0, SETTLE, |e| {
        (e.connections() == counts(&[("/chat", 1)]))
            .then_some(())
            .ok_or(format!("{:?}", e.connections()))
    });
    let resource = export.resource();
    assert_eq!(resource["service.name"], "from-file");
    assert_eq!(resource["team"], "file");
    drop(exporter);
}

#[test]
fn tls_to_a_collector_with_a_private_ca_and_auth_headers() {
    let app = App::start("otlp-tls");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/notifications"]);
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();

    for transport in [Transport::Grpc, Transport::Http] {
        let receiver = Receiver::start(transport, 0, Some(ca.server.clone()));
        let exporter = start_exporter(
            &app,
            &format!(
                "[otlp]\nendpoint = \"https://localhost:{}\"\nprotocol = \"{}\"\nca_file = \"{}\"\n\
                 interval_secs = 0.5\nheaders = {{ x-scope-orgid = \"tenant-1\" }}\n",
                receiver.addr.port(),
                receiver.protocol(),
                ca_file.display()
            ),
            &[(
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Basic%20dXNlcjpwYXNz",
            )],
        );
        let export = receiver.wait_for(0, SETTLE, |e| {
            (e.connections() == counts(&[("/notifications", 1)]))
                .then_some(())
                .ok_or(format!("{:?}", e.connections()))
        });
        assert_eq!(export.headers["authorization"], "Basic dXNlcjpwYXNz");
        assert_eq!(export.headers["x-scope-orgid"], "tenant-1");
        assert_eq!(export_errors(&exporter), 0.0, "{}", receiver.protocol());
    }

    // Without the CA, the collector's certificate is refused: errors, and nothing sent.
    for transport in [Transport::Grpc, Transport::Http] {
        let receiver = Receiver::start(transport, 0, Some(ca.server.clone()));
        let exporter = start_exporter(
            &app,
            &format!(
                "[otlp]\nendpoint = \"https://localhost:{}\"\nprotocol = \"{}\"\n\
                 interval_secs = 0.5\ntimeout_secs = 1\n",
                receiver.addr.port(),
                receiver.protocol()
            ),
            &[],
        );
        eventually(SETTLE, || {
            let errors = export_errors(&exporter);
            (errors >= 1.0)
                .then_some(())
                .ok_or(format!("{errors} errors"))
        });
        assert_eq!(receiver.count(), 0, "{}", receiver.protocol());
    }
}
