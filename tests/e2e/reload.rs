//! Config reload: SIGHUP, `POST /-/reload` and `--config.watch` against the real exporter
//! and the real app. An unchanged source keeps its admin connection and its series never
//! blink; changed rules apply, added sources appear, removed ones leave with their
//! self-metrics, and an invalid file is refused while the old config keeps exporting.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::otlp::Receiver;
use crate::support::{App, Clients, Exporter, Scrape, WEIRD_NAMESPACE, eventually, request};

const WITHIN: Duration = Duration::from_secs(10);
const RELOAD_OK: &str = "socketio_exporter_config_last_reload_successful";
const RELOAD_TIME: &str = "socketio_exporter_config_last_reload_success_timestamp_seconds";

/// A config with the tests' fast sync; stale only after a minute, so that a report file
/// written once stays current for the whole test.
fn config(environment: &str, sources: &str) -> String {
    format!(
        "environment = \"{environment}\"\n[sync]\ninterval_secs = 1\nstale_after_secs = 60\n\n{sources}"
    )
}

fn admin_source(app: &App, extra: &str) -> String {
    format!(
        "[[sources]]\nname = \"admin\"\ntype = \"socketio_admin\"\nendpoint = \"{}\"\n\
         username = \"admin\"\npassword_env = \"TEST_ADMIN_PASSWORD\"\nserver_id = \"{}\"\n{extra}\n",
        app.url(),
        app.server_id
    )
}

fn report_source(name: &str, path: &Path) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\ntype = \"report_file\"\npath = \"{}\"\nserver_id = \"{name}-server\"\n",
        path.display()
    )
}

fn value(scrape: &Scrape, name: &str) -> Option<f64> {
    scrape.value(name, &[])
}

/// The exporter's series per namespace, once they are what `expected` says.
fn wait_for_connections(exporter: &Exporter, expected: &[(&str, u64)]) {
    let expected: BTreeMap<String, u64> =
        expected.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    eventually(WITHIN, || {
        let shown = exporter.scrape().connections();
        if shown == expected {
            Ok(())
        } else {
            Err(format!("{shown:?} != {expected:?}"))
        }
    });
}

/// Scrapes as fast as it can in the background and keeps every scrape that lacks the
/// `/chat` series: a source that runs on must never blink during a reload.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, Vec<String>)>,
}

impl Watcher {
    fn start(exporter: &Exporter) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, addr) = (stop.clone(), exporter.addr);
        let thread = std::thread::spawn(move || {
            let (mut scrapes, mut blinks) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                let (status, body) = crate::support::http_get(&addr, "/metrics").unwrap();
                assert_eq!(status, 200);
                scrapes += 1;
                if !Scrape::parse(&body).connections().contains_key("/chat") {
                    blinks.push(body);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (scrapes, blinks)
        });
        Watcher { stop, thread }
    }

    /// Stops; asserts that no scrape lacked the series. Returns the number of scrapes.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let (scrapes, blinks) = self.thread.join().unwrap();
        assert!(
            blinks.is_empty(),
            "the series blinked: {:?}",
            blinks.first()
        );
        scrapes
    }
}

/// The reload counters after a reload that must have succeeded since `before`.
fn wait_for_reload(exporter: &Exporter, before: f64) -> f64 {
    eventually(WITHIN, || {
        let scrape = exporter.scrape();
        match (value(&scrape, RELOAD_OK), value(&scrape, RELOAD_TIME)) {
            (Some(1.0), Some(time)) if time > before => Ok(time),
            other => Err(format!("reload ok, time: {other:?}")),
        }
    })
}

#[test]
fn sighup_applies_a_new_config_and_unchanged_sources_keep_their_connection() {
    let app = App::start("pod-reload");
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/chat", "/tenant-1"]);
    clients.connect("c2", &app, &["/chat", "/tenant-2"]);
    let exporter = Exporter::start(&config("test", &admin_source(&app, "")));
    let base = [
        ("/", 1),
        ("/chat", 2),
        ("/notifications", 0),
        (WEIRD_NAMESPACE, 0),
    ];
    let with_tenants = [base.as_slice(), &[("/tenant-1", 1), ("/tenant-2", 1)]].concat();
    wait_for_connections(&exporter, &with_tenants);
    let started = value(&exporter.scrape(), RELOAD_TIME).expect("the start counts as a load");
    assert_eq!(exporter.logged("receiving server_stats"), 1);

    // Added: a report file source. The admin source is unchanged.
    let report = exporter.dir().join("report.json");
    std::fs::write(&report, r#"{"namespaces": {"/reports": 4}}"#).unwrap();
    let added = format!(
        "{}{}",
        admin_source(&app, ""),
        report_source("file", &report)
    );
    exporter.write_config(&config("test", &added));
    let watcher = Watcher::start(&exporter);
    let sent = std::time::Instant::now();
    exporter.hangup();
    let reloaded = wait_for_reload(&exporter, started);
    wait_for_connections(
        &exporter,
        &[with_tenants.as_slice(), &[("/reports", 4)]].concat(),
    );
    let applied = sent.elapsed();
    let scrapes = watcher.finish();
    assert!(scrapes >= 5, "scraped {scrapes} times during the reload");
    println!(
        "SIGHUP to the added source's series: {applied:?}; {scrapes} scrapes, none without /chat"
    );
    assert_eq!(
        exporter.logged("receiving server_stats"),
        1,
        "the unchanged admin source kept its connection"
    );
    assert_eq!(app.truth().namespaces["/admin"], 1, "one admin socket");
    assert_eq!(exporter.scrape().source_up("file"), Some(1.0));
    let (status, landing) = exporter.get("/");
    assert_eq!(status, 200);
    assert!(
        landing.contains(">file<") && landing.contains("report_file"),
        "the landing page lists the added source: {landing}"
    );

    // Changed: the admin source groups the tenants, so it reconnects; the file is removed,
    // and its self-metrics leave with its series.
    let grouped =
        "[[sources.namespace_groups]]\npattern = '^/tenant-\\d+$'\nreplace = \"/tenant-*\"";
    exporter.write_config(&config("test", &admin_source(&app, grouped)));
    exporter.hangup();
    wait_for_reload(&exporter, reloaded);
    wait_for_connections(&exporter, &[base.as_slice(), &[("/tenant-*", 2)]].concat());
    let scrape = exporter.scrape();
    assert_eq!(scrape.source_up("file"), None, "{}", scrape.text);
    assert!(!scrape.text.contains("source=\"file\""), "{}", scrape.text);
    eventually(WITHIN, || match app.truth().namespaces["/admin"] {
        1 => Ok(()),
        n => Err(format!("{n} admin sockets: the old connection must leave")),
    });

    assert_invalid_file_is_refused(&exporter, &app);
}

/// An invalid file: refused whole, each problem logged once, the metric at 0, and the
/// running config (the grouped tenants) still exported.
fn assert_invalid_file_is_refused(exporter: &Exporter, app: &App) {
    let invalid = format!(
        "{}[[sources]]\ntype = \"report_file\"\n",
        config("other", &admin_source(app, "max_namespaces = 0"))
    );
    exporter.write_config(&invalid.replace("interval_secs = 1", "interval_secs = -1"));
    exporter.hangup();
    eventually(WITHIN, || match value(&exporter.scrape(), RELOAD_OK) {
        Some(0.0) => Ok(()),
        other => Err(format!("reload ok: {other:?}")),
    });
    let refused: Vec<String> = exporter
        .logs()
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("config reload refused")
        })
        .map(|e| e["key"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        refused,
        [
            "sync.interval_secs",
            "sources[0].max_namespaces",
            "sources[1].path"
        ],
        "each problem once"
    );
    let scrape = exporter.scrape();
    assert_eq!(
        scrape.value(
            "websocket_connections",
            &[("environment", "test"), ("namespace", "/tenant-*")]
        ),
        Some(2.0),
        "the running config still exports: {}",
        scrape.text
    );
}

/// Report-file sources only: no app needed.
fn files_config(dir: &Path, names: &[&str]) -> String {
    let mut sources = String::new();
    for name in names {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, format!(r#"{{"namespaces": {{"/{name}": 1}}}}"#)).unwrap();
        sources.push_str(&report_source(name, &path));
    }
    config("test", &sources)
}

fn post_reload(exporter: &Exporter) -> (u16, String) {
    request(&exporter.addr, "POST", "/-/reload").unwrap()
}

#[test]
fn post_reload_needs_web_enable_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Exporter::start(&files_config(dir.path(), &["a"]));
    assert_eq!(post_reload(&plain).0, 403, "as Prometheus without the flag");
    assert_eq!(request(&plain.addr, "GET", "/-/reload").unwrap().0, 405);

    let exporter = Exporter::start_with(
        &files_config(dir.path(), &["a"]),
        &[],
        &["--web.enable-lifecycle"],
    );
    wait_for_connections(&exporter, &[("/a", 1)]);
    exporter.write_config(&files_config(dir.path(), &["a", "b"]));
    let (status, body) = post_reload(&exporter);
    assert_eq!((status, body.as_str()), (200, "config reloaded\n"));
    // Answered once applied: the new source is there on the next scrape.
    assert!(exporter.scrape().source_up("b").is_some());
    wait_for_connections(&exporter, &[("/a", 1), ("/b", 1)]);

    exporter.write_config("environment = \"\"\n");
    let (status, body) = post_reload(&exporter);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("environment: must not be empty"), "{body}");
    assert_eq!(value(&exporter.scrape(), RELOAD_OK), Some(0.0));
    wait_for_connections(&exporter, &[("/a", 1), ("/b", 1)]);
}

#[test]
fn post_quit_needs_web_enable_lifecycle_then_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = Exporter::start(&files_config(dir.path(), &["a"]));
    let quit = |exporter: &Exporter| request(&exporter.addr, "POST", "/-/quit").unwrap();
    assert_eq!(quit(&plain).0, 403, "as Prometheus without the flag");
    assert_eq!(request(&plain.addr, "GET", "/-/quit").unwrap().0, 405);
    assert!(plain.is_running());

    let mut exporter = Exporter::start_with(
        &files_config(dir.path(), &["a"]),
        &[],
        &["--web.enable-lifecycle"],
    );
    wait_for_connections(&exporter, &[("/a", 1)]);
    let (status, body) = quit(&exporter);
    assert_eq!(
        (status, body.as_str()),
        (200, "Requesting termination... Goodbye!\n")
    );
    let exited = eventually(Duration::from_secs(10), || {
        exporter.exit_status().ok_or("still running".to_string())
    });
    assert_eq!(exited.code(), Some(0), "a clean shutdown");
    assert_eq!(exporter.logged("shutting down: asked through /-/quit"), 1);
}

#[test]
fn config_watch_reloads_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start_with(
        &files_config(dir.path(), &["a", "b"]),
        &[],
        &["--config.watch"],
    );
    wait_for_connections(&exporter, &[("/a", 1), ("/b", 1)]);
    let started = value(&exporter.scrape(), RELOAD_TIME).unwrap();
    exporter.write_config(&files_config(dir.path(), &["b", "c"]));
    wait_for_reload(&exporter, started);
    wait_for_connections(&exporter, &[("/b", 1), ("/c", 1)]);
    assert_eq!(exporter.scrape().source_up("a"), None);
    assert_eq!(
        exporter.logged("config reloaded"),
        1,
        "one reload for one change"
    );
}

#[test]
fn a_reload_turns_otlp_on_restarts_it_when_changed_and_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::http();
    let otlp = format!(
        "\n[otlp]\nendpoint = \"{}\"\nprotocol = \"http/protobuf\"\ninterval_secs = 0.5\n",
        receiver.endpoint()
    );
    let files = files_config(dir.path(), &["a"]);
    let exporter = Exporter::start_with(&files, &[], &["--web.enable-lifecycle"]);
    wait_for_connections(&exporter, &[("/a", 1)]);
    let errors = "socketio_exporter_otlp_export_errors_total";

    exporter.write_config(&format!("{files}{otlp}"));
    assert_eq!(post_reload(&exporter).0, 200);
    receiver.wait_for(0, WITHIN, |e| match e.connections().get("/a") {
        Some(1) => Ok(()),
        other => Err(format!("/a: {other:?}")),
    });
    assert_eq!(value(&exporter.scrape(), errors), Some(0.0));

    // The environment is a resource attribute: the export restarts with the new one.
    exporter.write_config(&format!("{}{otlp}", files.replace("\"test\"", "\"prod\"")));
    assert_eq!(post_reload(&exporter).0, 200);
    let after = receiver.count();
    receiver.wait_for(after, WITHIN, |e| {
        match e
            .resource()
            .get("deployment.environment.name")
            .map(String::as_str)
        {
            Some("prod") => Ok(()),
            other => Err(format!("environment {other:?}")),
        }
    });
    assert_eq!(
        exporter.scrape().value(
            "websocket_connections",
            &[("environment", "prod"), ("namespace", "/a")]
        ),
        Some(1.0)
    );

    exporter.write_config(&files);
    assert_eq!(post_reload(&exporter).0, 200);
    assert_eq!(value(&exporter.scrape(), errors), None, "OTLP is off");
}

#[test]
fn a_push_source_added_by_reload_takes_pushes_and_a_removed_one_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let files = files_config(dir.path(), &["a"]);
    let exporter = Exporter::start_with(&files, &[], &["--web.enable-lifecycle"]);
    let report = br#"{"namespaces": {"/pushed": 2}}"#;
    let push = || crate::support::post(&exporter.addr, "/push/report", &[], report).0;
    assert_eq!(push(), 404, "no push source yet");

    exporter.write_config(&format!(
        "{files}[[sources]]\nname = \"p\"\ntype = \"push\"\n"
    ));
    assert_eq!(post_reload(&exporter).0, 200);
    assert_eq!(push(), 202);
    wait_for_connections(&exporter, &[("/a", 1), ("/pushed", 2)]);

    exporter.write_config(&files);
    assert_eq!(post_reload(&exporter).0, 200);
    assert_eq!(push(), 404, "the push source left with the reload");
    assert_eq!(exporter.scrape().source_up("p"), None);
    wait_for_connections(&exporter, &[("/a", 1)]);
}
