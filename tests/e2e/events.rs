//! Connection events against full reports, as users see them: exact counts under steady
//! churn without false corrections, real drift when events are lost, and an events-only
//! push source that stays up when the app is quiet.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    App, Clients, Exporter, Scrape, admin_config, config, eventually, post, throughout,
};

/// The tests' `stale_after_secs` (see `config`).
const STALE_AFTER: Duration = Duration::from_secs(5);

fn corrections(scrape: &Scrape, source: &str) -> Option<f64> {
    scrape.value(
        "socketio_exporter_reconcile_corrections_total",
        &[("source", source)],
    )
}

/// Every drift series: `(server, namespace, value)`.
fn drift(scrape: &Scrape) -> Vec<(String, String, f64)> {
    scrape
        .series("socketio_exporter_reconcile_drift")
        .into_iter()
        .map(|s| {
            (
                s.labels["server"].clone(),
                s.labels["namespace"].clone(),
                s.value,
            )
        })
        .collect()
}

fn exact(exporter: &Exporter, app: &App) -> Result<Scrape, String> {
    let scrape = exporter.scrape();
    let truth = app.truth().namespaces;
    if scrape.connections() == truth {
        Ok(scrape)
    } else {
        Err(format!(
            "exporter {:?} != app {truth:?}",
            scrape.connections()
        ))
    }
}

#[test]
fn reporter_events_under_steady_churn_end_exact_without_a_correction() {
    let exporter = Exporter::start(&config(
        "[[sources]]\ntype = \"push\"\nserver_id = \"app-churn\"",
    ));
    let push_url = format!("http://{}", exporter.addr);
    // The reporter also writes its report to a file, for the test to read its order.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    let app = App::start_with(
        "app-churn",
        0,
        &[
            "--no-admin-ui",
            "--cleanup-empty-children",
            "--report-file",
            file.to_str().unwrap(),
            "--push-url",
            &push_url,
            "--push-events",
            "--report-interval",
            "1000",
        ],
    );
    let mut clients = Clients::start();
    eventually(Duration::from_secs(8), || exact(&exporter, &app));

    // About 20 connects and 20 disconnects a second for 30 s. Each client joins `/` and
    // the tenant of its second, and leaves half a second later: a dynamic namespace
    // appears every second and is cleaned up once its last client leaves.
    const STEP: Duration = Duration::from_millis(50);
    const LIVE: usize = 10;
    let started = Instant::now();
    let mut step = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let tenant = format!("/tenant-{}", step / 20);
        clients.connect_url(&format!("c{step}"), &app.url(), &["/", &tenant]);
        if step >= LIVE {
            clients.disconnect(&format!("c{}", step - LIVE));
        }
        step += 1;
        // Pacing, not synchronisation: the next client is due at its slot.
        let due = started + STEP * step as u32;
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    for i in step.saturating_sub(LIVE)..step {
        clients.disconnect(&format!("c{i}"));
    }
    let took = started.elapsed();
    // Two namespace sockets per client, each a connect and a disconnect event.
    let events = step * 2 * 2;
    println!(
        "churn: {step} clients in {took:?} ({:.1} connects/s), {events} events",
        step as f64 / took.as_secs_f64()
    );
    assert!(
        step as f64 / took.as_secs_f64() >= 15.0,
        "the churn was too slow"
    );

    let scrape = eventually(Duration::from_secs(8), || exact(&exporter, &app));
    // Version 2: the reporter numbered every event once, and its report says so.
    eventually(Duration::from_secs(5), || {
        let report: Value = serde_json::from_slice(&std::fs::read(&file).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        match (&report["version"], &report["boot"], report["seq"].as_u64()) {
            (Value::Number(v), Value::String(_), Some(seq))
                if v.as_u64() == Some(2) && seq == events as u64 =>
            {
                Ok(())
            }
            _ => Err(format!("{report}")),
        }
    });
    let judged = drift(&scrape);
    println!(
        "corrections {:?}, drift {judged:?}",
        corrections(&scrape, "push")
    );
    assert_eq!(corrections(&scrape, "push"), Some(0.0), "{}", scrape.text);
    assert!(!judged.is_empty(), "reports were compared with the events");
    assert!(judged.iter().all(|(.., value)| *value == 0.0), "{judged:?}");
    assert_eq!(scrape.errors("push", "no_report"), 0.0);
    assert_eq!(scrape.source_up("push"), Some(1.0));
}

#[test]
fn an_events_only_push_source_stays_up_through_a_quiet_spell() {
    let app = App::start("pod-q");
    // admin-ui provides the reports; the app pushes only connection events.
    let exporter = Exporter::start(&admin_config(
        &app.url(),
        "server_id = \"pod-q\"\n\n[[sources]]\ntype = \"push\"\nserver_id = \"pod-q\"",
    ));
    let mut clients = Clients::start();
    clients.connect("c1", &app, &["/", "/chat"]);
    eventually(Duration::from_secs(8), || {
        let scrape = exporter.scrape();
        match (scrape.source_up("socketio_admin"), scrape.source_up("push")) {
            (Some(1.0), Some(1.0)) if scrape.connections() == app.truth().without_admin() => Ok(()),
            other => Err(format!("sources up {other:?}:\n{}", scrape.text)),
        }
    });
    let (status, body) = post(
        &exporter.addr,
        "/push/events",
        &[],
        br#"{"server_id":"pod-q","events":[{"type":"connect","namespace":"/"},{"type":"disconnect","namespace":"/"}]}"#,
    );
    assert_eq!(status, 202, "{body}");

    // Then a night without connects: longer than stale_after_secs, and every count known.
    throughout(STALE_AFTER * 2, || {
        let scrape = exporter.scrape();
        match (scrape.source_up("socketio_admin"), scrape.source_up("push")) {
            (Some(1.0), Some(1.0)) => Ok(()),
            other => Err(format!("sources up {other:?}:\n{}", scrape.text)),
        }
    });
    let scrape = exporter.scrape();
    assert_eq!(scrape.connections(), app.truth().without_admin());
    assert_eq!(scrape.errors("push", "stale"), 0.0);
    assert_eq!(
        scrape.value(
            "socketio_exporter_source_errors_total",
            &[("reason", "stats_timeout"), ("source", "push")]
        ),
        None,
        "a push source cannot time out waiting for admin-ui's stats"
    );
}
