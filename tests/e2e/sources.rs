//! The `http_json`, `report_file` and `push` sources, reconciliation of events against
//! reports, and cardinality control.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::pki::Ca;
use crate::support::{
    App, Clients, Exporter, Scrape, WEIRD_NAMESPACE, admin_config, app_reporting_to_file, config,
    eventually, post, throughout, wait_for,
};

const WITHIN: Duration = Duration::from_secs(8);

/// The app's own JSON endpoint (`GET /truth`: `{"clientsCount":N,"namespaces":{...}}`),
/// read by `http_json`.
fn http_json_source(url: &str, extra: &str) -> String {
    config(&format!(
        r#"[[sources]]
type = "http_json"
endpoint = "{url}"
interval_secs = 0.5
timeout_secs = 1
namespaces_pointer = "/namespaces"
clients_pointer = "/clientsCount"
{extra}"#
    ))
}

#[test]
fn http_json_exports_the_apps_own_counts_exactly() {
    let app = App::start("app-http");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/chat"]);
    clients.connect("c2", &app, &["/tenant-5", WEIRD_NAMESPACE]);
    let exporter = Exporter::start(&http_json_source(&format!("{}/truth", app.url()), ""));

    let scrape = wait_for(&exporter, "the app's counts", |s| {
        s.connections() == app.truth().namespaces
    });
    assert_eq!(scrape.connections()["/tenant-5"], 1);
    assert_eq!(scrape.connections()[WEIRD_NAMESPACE], 1);
    assert_eq!(
        scrape.value("websocket_clients", &[("environment", "test")]),
        Some(2.0)
    );
    assert_eq!(scrape.source_up("http_json"), Some(1.0));

    clients.disconnect("c1");
    wait_for(&exporter, "the disconnect", |s| {
        s.connections() == app.truth().namespaces
    });
}

#[test]
fn http_json_endpoint_down_means_no_series_and_a_named_reason() {
    let app = App::start("app-http-down");
    let exporter = Exporter::start(&http_json_source(&format!("{}/truth", app.url()), ""));
    wait_for(&exporter, "up", |s| s.source_up("http_json") == Some(1.0));

    app.kill();
    let scrape = wait_for(&exporter, "down", |s| s.source_up("http_json") == Some(0.0));
    assert!(
        scrape.series("websocket_connections").is_empty(),
        "no false zero"
    );
    assert!(scrape.errors("http_json", "connect") >= 1.0);
}

/// An HTTP server that answers every request with `status` and `body`.
fn canned_server(status: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/stats", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn http_json_garbage_is_a_clear_error_never_data() {
    let cases = [
        (
            "200 OK",
            "<html>oops</html>",
            "invalid_json",
            "body is not JSON",
        ),
        (
            "200 OK",
            r#"{"namespaces":{"/":-3}}"#,
            "invalid_report",
            "/namespaces//: expected a non-negative integer count, found the number -3",
        ),
        (
            "200 OK",
            r#"{"stats":[]}"#,
            "invalid_report",
            "namespaces_pointer \"/namespaces\": nothing there",
        ),
        (
            "503 Service Unavailable",
            "{}",
            "http_status",
            "HTTP status 503 Service Unavailable, expected 2xx",
        ),
        (
            "302 Found\r\nLocation: http://127.0.0.1:1/elsewhere",
            "{}",
            "http_status",
            "HTTP status 302 Found, a redirect: set follow_redirects = true to follow it",
        ),
    ];
    for (status, body, reason, message) in cases {
        let exporter = Exporter::start(&http_json_source(&canned_server(status, body), ""));
        let scrape = wait_for(&exporter, reason, |s| s.errors("http_json", reason) >= 1.0);
        assert!(
            scrape.series("websocket_connections").is_empty(),
            "{body}: no false data"
        );
        assert_eq!(scrape.source_up("http_json"), Some(0.0));
        let logs = exporter.logs();
        assert!(
            logs.iter()
                .any(|e| e["reason"] == reason && e["message"].as_str().unwrap().contains(message)),
            "{body}: expected a log line with {message:?}: {logs:#?}"
        );
    }
}

fn write_atomically(path: &Path, body: &serde_json::Value) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn report(namespaces: serde_json::Value) -> serde_json::Value {
    json!({ "generated_at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(), "namespaces": namespaces })
}

#[test]
fn report_file_follows_atomic_replace_delete_and_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    write_atomically(&file, &report(json!({"/": 2, "/chat": 1})));
    let exporter = Exporter::start(&config(&format!(
        "[[sources]]\ntype = \"report_file\"\npath = \"{}\"\n",
        file.display()
    )));
    let expect = |pairs: &[(&str, u64)]| {
        let want: std::collections::BTreeMap<String, u64> =
            pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        wait_for(&exporter, &format!("{want:?}"), move |s| {
            s.connections() == want
        })
    };
    expect(&[("/", 2), ("/chat", 1)]);

    write_atomically(&file, &report(json!({"/": 5, "/notifications": 0})));
    expect(&[("/", 5), ("/notifications", 0)]);

    // A half-written file never becomes truth: the last good report stays, the error counts.
    std::fs::write(&file, r#"{"namespaces": {"/": 9"#).unwrap();
    let scrape = wait_for(&exporter, "invalid_json counted", |s| {
        s.errors("report_file", "invalid_json") >= 1.0
    });
    assert_eq!(scrape.connections()["/"], 5);

    std::fs::remove_file(&file).unwrap();
    let scrape = wait_for(&exporter, "series gone", |s| {
        s.series("websocket_connections").is_empty()
    });
    assert_eq!(scrape.source_up("report_file"), Some(0.0));
    assert!(scrape.errors("report_file", "missing") >= 1.0);

    // The directory itself goes away and comes back.
    std::fs::remove_dir(dir.path()).unwrap();
    thread::sleep(Duration::from_millis(1500));
    std::fs::create_dir(dir.path()).unwrap();
    write_atomically(&file, &report(json!({"/": 7})));
    expect(&[("/", 7)]);
    assert_eq!(exporter.scrape().source_up("report_file"), Some(1.0));
}

#[test]
fn report_file_older_than_stale_after_is_not_exported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    write_atomically(
        &file,
        &json!({"generated_at": "2020-01-01T00:00:00Z", "namespaces": {"/": 3}}),
    );
    let exporter = Exporter::start(&config(&format!(
        "[[sources]]\ntype = \"report_file\"\npath = \"{}\"\n",
        file.display()
    )));
    // Read at once, but never exported; once stale_after has passed the source says why.
    eventually(WITHIN, || {
        let logs = exporter.logs();
        logs.iter()
            .find(|e| e["reason"] == "stale")
            .map(|_| ())
            .ok_or_else(|| format!("no stale in {logs:#?}"))
    });
    let scrape = exporter.scrape();
    assert!(
        scrape.series("websocket_connections").is_empty(),
        "{}",
        scrape.text
    );
    assert_eq!(scrape.source_up("report_file"), Some(0.0));
    assert_eq!(scrape.errors("report_file", "stale"), 1.0);
}

#[test]
fn report_directory_holds_one_server_per_file() {
    let dir = tempfile::tempdir().unwrap();
    write_atomically(
        &dir.path().join("pod-a.json"),
        &report(json!({"/": 1, "/chat": 2})),
    );
    write_atomically(&dir.path().join("pod-b.json"), &report(json!({"/": 3})));
    let exporter = Exporter::start(&config(&format!(
        "[[sources]]\ntype = \"report_file\"\ndirectory = \"{}\"\nscope = \"cluster\"\n",
        dir.path().display()
    )));
    let server = |s: &Scrape, ns: &str, server: &str| {
        s.value(
            "websocket_connections",
            &[
                ("environment", "test"),
                ("namespace", ns),
                ("server", server),
            ],
        )
    };
    wait_for(&exporter, "both servers", |s| {
        server(s, "/", "pod-a") == Some(1.0)
            && server(s, "/chat", "pod-a") == Some(2.0)
            && server(s, "/", "pod-b") == Some(3.0)
    });
    std::fs::remove_file(dir.path().join("pod-b.json")).unwrap();
    let scrape = wait_for(&exporter, "pod-b gone", |s| {
        server(s, "/", "pod-b").is_none()
    });
    assert_eq!(server(&scrape, "/", "pod-a"), Some(1.0));
}

/// A push source (loopback listener, so no token is needed unless configured).
fn push_config(extra: &str) -> String {
    config(&format!("[[sources]]\ntype = \"push\"\n{extra}"))
}

#[test]
fn push_rejects_wrong_tokens_and_oversized_bodies_with_json_errors() {
    let exporter = Exporter::start_with_env(
        &push_config("token_env = \"TEST_PUSH_TOKEN\"\nmax_body_bytes = 4096"),
        &[("TEST_PUSH_TOKEN", "s3cret")],
    );
    let body = json!({"namespaces": {"/": 1}}).to_string();
    let (status, answer) = post(
        &exporter.addr,
        "/push/report",
        &[("Authorization", "Bearer wrong")],
        body.as_bytes(),
    );
    assert_eq!(status, 401);
    assert_eq!(
        answer.trim(),
        r#"{"error":"missing or wrong bearer token"}"#
    );
    let (status, _) = post(&exporter.addr, "/push/report", &[], body.as_bytes());
    assert_eq!(status, 401);

    let auth = [("Authorization", "Bearer s3cret")];
    let huge = format!(r#"{{"namespaces":{{"/{}":1}}}}"#, "x".repeat(8192));
    let (status, answer) = post(&exporter.addr, "/push/report", &auth, huge.as_bytes());
    assert_eq!(
        (status, answer.trim()),
        (413, r#"{"error":"body larger than 4096 bytes"}"#)
    );

    let (status, answer) = post(
        &exporter.addr,
        "/push/report",
        &auth,
        br#"{"namespaces":{"/":-1}}"#,
    );
    assert_eq!(status, 400);
    assert!(
        answer.contains("namespaces./: invalid value: integer `-1`, expected u64"),
        "{answer}"
    );

    let (status, answer) = post(&exporter.addr, "/push/report", &auth, body.as_bytes());
    assert_eq!((status, answer.trim()), (202, r#"{"accepted":1}"#));
    let scrape = wait_for(&exporter, "pushed counts", |s| {
        s.connections().get("/") == Some(&1)
    });
    assert_eq!(scrape.errors("push", "unauthorized"), 2.0);
    assert_eq!(scrape.errors("push", "too_large"), 1.0);
    assert_eq!(scrape.errors("push", "invalid_report"), 1.0);
    assert_eq!(
        crate::support::request(&exporter.addr, "GET", "/push/report")
            .unwrap()
            .0,
        405
    );
}

#[test]
fn push_without_a_token_on_a_public_address_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, push_config("")).unwrap();
    // `--web.listen-address` is the name Prometheus exporters use.
    for flag in ["--listen", "--web.listen-address"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_socketio-exporter"))
            .arg("--config")
            .arg(&path)
            .args([flag, "0.0.0.0:0", "--check-config"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains("a push source on the non-loopback address 0.0.0.0:0 needs a token"),
            "{flag}: {stderr}"
        );
    }
}

/// The push source's correction count and its drift for pod-a's namespace `/`.
fn corrections_and_drift(scrape: &Scrape) -> (Option<f64>, Option<f64>) {
    (
        scrape.value(
            "socketio_exporter_reconcile_corrections_total",
            &[("source", "push")],
        ),
        scrape.value(
            "socketio_exporter_reconcile_drift",
            &[("source", "push"), ("server", "pod-a"), ("namespace", "/")],
        ),
    )
}

#[test]
fn events_move_the_gauge_between_reports_and_the_next_report_corrects_drift() {
    let exporter = Exporter::start(&push_config("server_id = \"pod-a\""));
    let push = |path: &str, body: serde_json::Value| {
        let (status, answer) = post(&exporter.addr, path, &[], body.to_string().as_bytes());
        assert_eq!(status, 202, "{answer}");
    };
    // Version 2: the report includes the events up to seq 0 of this reporter process.
    let order = |seq: u64| json!({"version": 2, "boot": "b1", "seq": seq});
    let report = |seq: u64, namespaces: serde_json::Value| {
        let mut body = order(seq);
        body["namespaces"] = namespaces;
        body
    };
    push("/push/report", report(0, json!({"/": 2, "/chat": 1})));
    wait_for(&exporter, "report", |s| {
        s.connections().get("/") == Some(&2)
    });

    let sent = Instant::now();
    let mut events = order(0);
    events.as_object_mut().unwrap().remove("seq");
    events["events"] = json!([
        {"type": "connect", "namespace": "/", "seq": 1},
        {"type": "connect", "namespace": "/chat", "seq": 2},
        {"type": "disconnect", "namespace": "/chat", "seq": 3},
        {"type": "connect", "namespace": "/", "seq": 4}
    ]);
    push("/push/events", events.clone());
    // Scrape back to back: how soon the events show is the push source's latency.
    let scrape = loop {
        let scrape = exporter.scrape();
        if scrape.connections().get("/") == Some(&4) {
            break scrape;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "events not applied within 1 s: {}",
            scrape.text
        );
    };
    println!("event to /metrics: {:?}", sent.elapsed());
    assert_eq!(scrape.connections()["/chat"], 1);
    assert_eq!(corrections_and_drift(&scrape), (Some(0.0), None));
    // The same batch again (a client's retry) is never counted twice.
    push("/push/events", events);

    // The app's own full count, which includes all four events, disagrees: one connect
    // event was wrong. The report wins at once.
    push("/push/report", report(4, json!({"/": 3, "/chat": 1})));
    let scrape = wait_for(&exporter, "corrected", |s| {
        s.connections().get("/") == Some(&3)
    });
    assert_eq!(corrections_and_drift(&scrape), (Some(1.0), Some(1.0)));
    assert_eq!(
        scrape.value(
            "socketio_exporter_reconcile_drift",
            &[
                ("source", "push"),
                ("server", "pod-a"),
                ("namespace", "/chat")
            ]
        ),
        Some(0.0)
    );

    // Version 1 (no order): an event right before a report may be in it or not, so that
    // report is no correction; the counts follow the report all the same.
    push("/push/report", json!({"namespaces": {"/": 3}}));
    push(
        "/push/events",
        json!({"events": [{"type": "connect", "namespace": "/"}]}),
    );
    push("/push/report", json!({"namespaces": {"/": 4}}));
    wait_for(&exporter, "the unordered report", |s| {
        s.connections().get("/") == Some(&4)
    });
    throughout(
        Duration::from_millis(1500),
        || match corrections_and_drift(&exporter.scrape()).0 {
            Some(1.0) => Ok(()),
            other => Err(format!("corrections {other:?}, a race counted as drift")),
        },
    );
}

#[test]
fn ten_thousand_dynamic_namespaces_are_grouped_and_capped() {
    // Default heartbeat: connecting 10 000 sockets keeps the app busy for a while.
    let app = App::start_with(
        "app-many",
        0,
        &["--ping-interval", "25000", "--ping-timeout", "20000"],
    );
    let mut clients = Clients::start();
    for batch in 0..20 {
        let tenants: Vec<String> = (0..500)
            .map(|i| format!("/tenant-{}", batch * 500 + i))
            .collect();
        let namespaces: Vec<&str> = tenants.iter().map(String::as_str).collect();
        clients.connect(&format!("c{batch}"), &app, &namespaces);
    }
    clients.connect("chat", &app, &["/chat"]);

    let source = |name: &str, rules: &str| {
        format!(
            "[[sources]]\ntype = \"socketio_admin\"\nname = \"{name}\"\nendpoint = \"{}\"\nusername = \"admin\"\npassword_env = \"TEST_ADMIN_PASSWORD\"\nserver_id = \"app-many\"\n{rules}\n",
            app.url()
        )
    };
    let grouped = Exporter::start(&config(&source(
        "grouped",
        "[[sources.namespace_groups]]\npattern = '^/tenant-\\d+$'\nreplace = \"/tenant-*\"",
    )));
    let capped = Exporter::start(&config(&source("capped", "max_namespaces = 100")));

    let scrape = wait_for(&grouped, "grouped", |s| {
        s.connections().get("/tenant-*") == Some(&10_000)
    });
    assert_eq!(
        scrape.connections().keys().collect::<Vec<_>>(),
        ["/", "/chat", "/notifications", "/tenant-*", WEIRD_NAMESPACE]
    );

    let scrape = wait_for(&capped, "capped", |s| {
        s.series("websocket_connections").len() == 100
    });
    let total: u64 = scrape.connections().values().sum();
    assert_eq!(total, 10_001, "folding keeps the total exact");
    let folded = scrape
        .value(
            "socketio_exporter_namespaces_folded",
            &[("source", "capped")],
        )
        .unwrap();
    assert!(folded >= 9_900.0, "{folded}");
    assert_eq!(
        scrape.value("socketio_exporter_namespace_limit", &[("source", "capped")]),
        Some(100.0)
    );
    let rss = scrape.value("process_resident_memory_bytes", &[]).unwrap();
    println!(
        "RSS with 10 000 namespaces (capped at 100): {:.1} MiB",
        rss / 1048576.0
    );
}

/// Waits until the exporter shows exactly the app's own per-namespace counts.
fn matches_truth(exporter: &Exporter, app: &App) -> Scrape {
    wait_for(exporter, "the app's own counts", |s| {
        s.connections() == app.truth().namespaces
    })
}

#[test]
fn reporter_module_writes_report_files_the_exporter_reads_exactly() {
    let (_dir, app, exporter) = app_reporting_to_file("app-file");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/chat", "/tenant-3"]);
    clients.connect("c2", &app, &[WEIRD_NAMESPACE, "/"]);
    let scrape = matches_truth(&exporter, &app);
    assert_eq!(scrape.connections()["/"], 2);
    clients.disconnect("c1");
    matches_truth(&exporter, &app);
}

#[test]
fn reporter_module_pushes_reports_and_events_and_drift_is_corrected() {
    let exporter = Exporter::start(&push_config("server_id = \"app-push\""));
    let push_url = format!("http://{}", exporter.addr);
    // --drift: the app loses every other disconnect event, as a hand-kept counter would.
    let app = App::start_with(
        "app-push",
        0,
        &[
            "--no-admin-ui",
            "--push-url",
            &push_url,
            "--push-events",
            "--drift",
            "--report-interval",
            "2000",
        ],
    );
    let mut clients = Clients::start();
    for i in 0..6 {
        clients.connect(&format!("c{i}"), &app, &["/", "/chat"]);
    }
    matches_truth(&exporter, &app);
    for i in 0..4 {
        clients.disconnect(&format!("c{i}"));
    }
    // Right after the disconnects the events have drifted; the next report corrects them.
    let scrape = wait_for(&exporter, "a correction", |s| {
        s.value(
            "socketio_exporter_reconcile_corrections_total",
            &[("source", "push")],
        ) >= Some(1.0)
    });
    assert!(
        scrape
            .value(
                "socketio_exporter_reconcile_drift",
                &[
                    ("source", "push"),
                    ("server", "app-push"),
                    ("namespace", "/")
                ]
            )
            .is_some_and(|drift| drift > 0.0),
        "the correction's drift, on the server whose events were lost: {}",
        scrape.text
    );
    matches_truth(&exporter, &app);
}

#[test]
fn http_json_over_tls_trusts_the_configured_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let (_app, _clients, url) = app_over_tls(&ca);
    let truth_url = format!("{url}/truth");

    let trusting = Exporter::start(&http_json_source(
        &truth_url,
        &format!("ca_file = \"{}\"", ca.cert.display()),
    ));
    let scrape = wait_for(&trusting, "counts over TLS", |s| {
        s.connections().get("/chat") == Some(&1)
    });
    assert_eq!(scrape.source_up("http_json"), Some(1.0));

    // Without the CA the certificate is not trusted: the source is down, nothing exported.
    let doubting = Exporter::start(&http_json_source(&truth_url, ""));
    let scrape = wait_for(&doubting, "TLS refused", |s| {
        s.errors("http_json", "connect") >= 1.0
    });
    assert!(scrape.series("websocket_connections").is_empty());
}

/// The test app serving HTTPS with a certificate from `ca`, its URL, and a client that
/// trusts the CA connected to `/` and `/chat`.
fn app_over_tls(ca: &Ca) -> (App, Clients, String) {
    let server = ca.server("app");
    let app = App::start_with(
        "app-tls",
        0,
        &[
            "--tls-cert",
            server.cert.to_str().unwrap(),
            "--tls-key",
            server.key.to_str().unwrap(),
        ],
    );
    let mut clients =
        Clients::start_with_env(&[("NODE_EXTRA_CA_CERTS", ca.cert.to_str().unwrap())]);
    let url = format!("https://127.0.0.1:{}", app.port);
    clients.connect_url("c1", &url, &["/", "/chat"]);
    (app, clients, url)
}

#[test]
fn socketio_admin_over_wss_trusts_the_configured_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let (app, _clients, url) = app_over_tls(&ca);

    let trusting = Exporter::start(&admin_config(
        &url,
        &format!(
            "server_id = \"{}\"\nca_file = \"{}\"\nheaders = {{ X-Monitoring = \"socketio-exporter\" }}",
            app.server_id,
            ca.cert.display()
        ),
    ));
    let scrape = wait_for(&trusting, "counts over wss", |s| {
        s.connections().get("/chat") == Some(&1) && s.connections().get("/") == Some(&1)
    });
    assert_eq!(scrape.source_up("socketio_admin"), Some(1.0));

    // The system's roots do not know the private CA: refused, nothing exported.
    let doubting = Exporter::start(&admin_config(
        &url,
        &format!("server_id = \"{}\"", app.server_id),
    ));
    let scrape = wait_for(&doubting, "TLS refused", |s| {
        s.errors("socketio_admin", "connect") >= 1.0
    });
    assert!(scrape.series("websocket_connections").is_empty());
}

#[test]
fn socketio_admin_sends_the_configured_handshake_headers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _exporter = Exporter::start(&admin_config(
        &url,
        "headers = { Authorization = \"Bearer app-token\", X-Monitoring = \"yes\" }",
    ));
    let (mut stream, _) = eventually(WITHIN, || {
        listener.accept().map_err(|e| format!("no connection: {e}"))
    });
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        head.contains("\r\nauthorization: bearer app-token\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-monitoring: yes\r\n"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
}
