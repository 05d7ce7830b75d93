//! Hostile and broken input (issue 10): never a crash, never a wrapped or false number.
//! Each repro is named after what broke.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::fake_server::{FakeServer, Socket, open_packet, stats_frame};
use crate::support::{Exporter, admin_config, config, post, wait_for};

const SOURCE: &str = "socketio_admin";

fn push_exporter(server_id: &str) -> Exporter {
    Exporter::start(&config(&format!(
        "[[sources]]\ntype = \"push\"\nserver_id = \"{server_id}\"\n"
    )))
}

#[test]
fn push_with_a_non_ascii_generated_at_gets_a_400_not_a_connection_reset() {
    let exporter = push_exporter("host");
    let bad = br#"{"generated_at":"2026-11-26T00:00:00\u20ac\u20ac\u00e9","namespaces":{"/":1}}"#;
    let raw = "{\"generated_at\":\"2026-11-26T00:00:00€€é\",\"namespaces\":{\"/\":1}}";
    for body in [&bad[..], raw.as_bytes()] {
        let (status, answer) = post(&exporter.addr, "/push/report", &[], body);
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains("generated_at"), "{answer}");
    }
    let (status, _) = post(
        &exporter.addr,
        "/push/report",
        &[],
        br#"{"namespaces":{"/":3}}"#,
    );
    assert_eq!(status, 202, "the source still takes pushes");
    let scrape = wait_for(&exporter, "pushed", |s| {
        s.connections().get("/") == Some(&3)
    });
    assert_eq!(scrape.errors("push", "invalid_report"), 2.0);
}

#[test]
fn cluster_workers_reporting_u64_max_never_show_a_false_zero() {
    let exporter = push_exporter("host");
    let push = |server: &str, count: &str| {
        let body = format!(r#"{{"server_id":"{server}","namespaces":{{"/":{count}}}}}"#);
        post(&exporter.addr, "/push/report", &[], body.as_bytes())
    };
    let (status, answer) = push("host#1", "18446744073709551615");
    assert_eq!(status, 400);
    assert!(answer.contains("larger than 9007199254740991"), "{answer}");
    assert_eq!(push("host#2", "1").0, 202);
    let scrape = wait_for(&exporter, "host#2 alone", |s| {
        s.connections().get("/") == Some(&1)
    });
    assert_eq!(scrape.errors("push", "invalid_report"), 1.0);

    // The largest exact counts of two workers sum exactly.
    assert_eq!(push("host#1", "9007199254740991").0, 202);
    assert_eq!(push("host#2", "9007199254740991").0, 202);
    let scrape = wait_for(&exporter, "exact sum", |s| {
        s.text.contains("namespace=\"/\"} 18014398509481982\n")
    });
    assert!(
        !scrape.text.contains("namespace=\"/\"} 0\n"),
        "{}",
        scrape.text
    );
}

#[test]
fn events_never_create_a_series_for_a_namespace_no_report_holds() {
    let exporter = push_exporter("host");
    assert_eq!(
        post(
            &exporter.addr,
            "/push/report",
            &[],
            br#"{"namespaces":{"/":1}}"#
        )
        .0,
        202
    );
    let events = json!({"server_id": "", "events": [
        {"type": "connect", "namespace": "/"},
        {"type": "connect", "namespace": "/never-reported"},
    ]});
    let (status, _) = post(
        &exporter.addr,
        "/push/events",
        &[],
        events.to_string().as_bytes(),
    );
    assert_eq!(status, 202);
    let scrape = wait_for(&exporter, "event moved /", |s| {
        s.connections().get("/") == Some(&2)
    });
    assert_eq!(scrape.connections().len(), 1, "{}", scrape.text);
    assert_eq!(scrape.errors("push", "no_report"), 1.0);
}

fn report_file_exporter(path_key: &str, path: &Path) -> Exporter {
    Exporter::start(&config(&format!(
        "[[sources]]\ntype = \"report_file\"\nserver_id = \"host\"\n{path_key} = \"{}\"\n",
        path.display()
    )))
}

#[test]
fn report_file_with_a_non_ascii_generated_at_does_not_kill_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    std::fs::write(
        &file,
        "{\"generated_at\":\"2026-11-26T00:00:00€€é\",\"namespaces\":{\"/\":1}}",
    )
    .unwrap();
    let exporter = report_file_exporter("path", &file);
    wait_for(&exporter, "refused", |s| {
        s.errors("report_file", "invalid_report") >= 1.0
    });
    std::fs::write(&file, r#"{"namespaces":{"/":4}}"#).unwrap();
    let scrape = wait_for(&exporter, "fixed file read", |s| {
        s.connections().get("/") == Some(&4)
    });
    assert_eq!(scrape.source_up("report_file"), Some(1.0));
    assert_eq!(scrape.errors("report_file", "internal"), 0.0);
}

#[test]
fn report_file_skips_a_symlink_to_dev_zero_and_a_fifo_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.json")).unwrap();
    let fifo = dir.path().join("fifo.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(dir.path().join("host.json"), r#"{"namespaces":{"/":2}}"#).unwrap();
    let exporter = report_file_exporter("directory", dir.path());
    let scrape = wait_for(&exporter, "good file read, others skipped", |s| {
        s.connections().get("/") == Some(&2) && s.errors("report_file", "not_a_file") >= 2.0
    });
    std::thread::sleep(Duration::from_secs(2));
    let later = exporter.scrape();
    assert_eq!(
        later.errors("report_file", "not_a_file"),
        2.0,
        "counted once each"
    );
    assert_eq!(scrape.source_up("report_file"), Some(1.0));
    let logs = exporter.logs();
    let skipped: Vec<_> = logs
        .iter()
        .filter(|e| e["reason"] == "not_a_file")
        .collect();
    assert_eq!(
        skipped.len(),
        1,
        "one log line, the repeat is quiet: {skipped:?}"
    );
    let message = skipped[0]["message"].as_str().unwrap();
    assert!(message.contains("not a regular file but a"), "{message}");
}

/// The exporter's peak resident memory so far (`VmHWM`), in KiB.
/// Peak resident memory less the binary's own file-backed pages: the memory input can
/// grow. The debug binary the tests run maps about 15 MiB more code than the release one.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    field("VmHWM:").saturating_sub(field("RssFile:"))
}

/// The hostile app: 100 000 namespaces, a 1 MiB namespace name, the stats of 10 000
/// servers per second, then a frame one byte over the 16 MiB cap. The scripted server
/// sends what a real app could only be bent into sending.
fn hostile_script(ws: &mut Socket, first: bool) {
    let send = |ws: &mut Socket, frame: String| ws.send(Message::text(frame)).is_ok();
    if !first {
        // After the oversized frame, the exporter reconnects to a well-behaved app.
        for _ in 0..40 {
            if !send(ws, stats_frame("fake", &[("/", 5)])) {
                return;
            }
            thread::sleep(Duration::from_millis(250));
        }
        return;
    }
    let many: Vec<(String, u64)> = (0..100_000).map(|i| (format!("/tenant-{i}"), 1)).collect();
    let many: Vec<(&str, u64)> = many.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let huge_name = format!("/{}", "x".repeat(1 << 20));
    if !send(ws, stats_frame("fake", &many))
        || !send(ws, stats_frame("fake", &[(&huge_name, 1), ("/", 1)]))
    {
        return;
    }
    for second in 0..4 {
        let started = std::time::Instant::now();
        for i in 0..10_000 {
            let frame = stats_frame(&format!("other-{second}-{i}"), &[("/", 1)]);
            if ws.write(Message::text(frame)).is_err() {
                return;
            }
        }
        if ws.flush().is_err() {
            return;
        }
        thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
    }
    // Exactly one byte over the exporter's 16 MiB message cap.
    let filler = (16 << 20) + 1 - r#"42/admin,["x",""]"#.len();
    let over_cap = format!(r#"42/admin,["x","{}"]"#, "y".repeat(filler));
    assert_eq!(over_cap.len(), (16 << 20) + 1);
    let _ = send(ws, over_cap);
    thread::sleep(Duration::from_secs(2));
}

#[test]
fn a_hostile_app_cannot_grow_memory_past_32_mib_and_metrics_keep_answering() {
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    let server = FakeServer::start(&open_packet(25_000, 20_000), move |ws| {
        hostile_script(ws, seen.fetch_add(1, Ordering::SeqCst) == 0);
    });
    let exporter = Exporter::start(&admin_config(&server.url(), "server_id = \"fake\""));
    let mut latencies = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut recovered = None;
    while std::time::Instant::now() < deadline {
        let started = std::time::Instant::now();
        let scrape = exporter.scrape();
        latencies.push(started.elapsed());
        if connections.load(Ordering::SeqCst) >= 2 && scrape.connections().get("/") == Some(&5) {
            recovered = Some(scrape);
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let peak = peak_rss_kib(exporter.pid());
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    println!(
        "hostile app: peak RSS beyond the binary's own pages {:.1} MiB; /metrics answered {} scrapes, median {median:?}, max {max:?}",
        peak as f64 / 1024.0,
        latencies.len()
    );
    let scrape =
        recovered.expect("the exporter reconnected after the oversized frame and exports again");
    assert!(peak <= 32 * 1024, "peak RSS {peak} KiB");
    assert!(scrape.errors(SOURCE, "closed") + scrape.errors(SOURCE, "protocol") >= 1.0);
    assert!(
        scrape.text.lines().all(|l| l.len() < 4096),
        "no 1 MiB label value is exported"
    );
}

#[test]
fn admin_ui_before_0_4_is_named_once_and_retried_slowly() {
    // admin-ui < 0.4.0 sends server_stats without per-namespace counts. Each retry costs
    // the app a bcrypt check, so the exporter says what to fix once and retries slowly.
    let server = FakeServer::start(&open_packet(25_000, 20_000), |ws| {
        let old = r#"42/admin,["server_stats",{"serverId":"fake","clientsCount":3,"pollingClientsCount":0}]"#;
        for _ in 0..20 {
            if ws.send(Message::text(old)).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(250));
        }
    });
    let exporter = Exporter::start(&admin_config(&server.url(), "server_id = \"fake\""));
    wait_for(&exporter, "protocol error", |s| {
        s.errors(SOURCE, "protocol") >= 1.0
    });
    thread::sleep(Duration::from_secs(6));
    let scrape = exporter.scrape();
    assert_eq!(scrape.source_up(SOURCE), Some(0.0));
    assert!(
        scrape.series("websocket_connections").is_empty(),
        "{}",
        scrape.text
    );
    assert_eq!(
        server.connects.lock().unwrap().len(),
        1,
        "no retry within 6 s"
    );
    let logs = exporter.logs();
    let named: Vec<_> = logs
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("0.4.0 or later"))
        })
        .collect();
    assert_eq!(named.len(), 1, "{logs:#?}");
    let down = logs
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("source is down"))
        })
        .count();
    assert!(down <= 1, "{logs:#?}");
}
