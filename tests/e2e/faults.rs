//! Faults the real Socket.IO server cannot be made to produce, from a scripted server.

use std::thread;
use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;

use crate::support::fake_server::{FakeServer, open_packet, stats_frame};
use crate::support::{Exporter, admin_config, eventually};

const SOURCE: &str = "socketio_admin";

#[test]
fn garbage_frames_count_as_protocol_errors_never_as_data() {
    let server = FakeServer::start(&open_packet(25_000, 20_000), |ws| {
        for frame in [
            r#"42/admin,["config",{"supportedFeatures":[]}]"#.to_owned(),
            r#"42/admin,["server_stats",{"serverId":"fake","namespaces":"oops"}]"#.to_owned(),
        ] {
            let _ = ws.send(Message::text(frame));
        }
        thread::sleep(Duration::from_secs(1));
    });
    let exporter = Exporter::start(&admin_config(&server.url(), "server_id = \"fake\""));
    eventually(Duration::from_secs(6), || {
        let errors = exporter.scrape().errors(SOURCE, "protocol");
        if errors >= 2.0 {
            Ok(())
        } else {
            Err(format!("{errors} protocol errors"))
        }
    });
    let scrape = exporter.scrape();
    assert!(
        scrape.series("websocket_connections").is_empty(),
        "{}",
        scrape.text
    );
    assert_eq!(scrape.source_up(SOURCE), Some(0.0));
    let logs = exporter.logs();
    let first = logs
        .iter()
        .find(|e| e["reason"] == "protocol")
        .expect("a protocol error log");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("malformed server_stats"),
        "{first}"
    );
    // It logged in with the configured credentials.
    assert_eq!(
        server.connects.lock().unwrap()[0],
        r#"40/admin,{"password":"changeit","username":"admin"}"#
    );
}

#[test]
fn unparsable_frame_types_are_protocol_errors() {
    let server = FakeServer::start(&open_packet(25_000, 20_000), |ws| {
        let _ = ws.send(Message::text("\u{0}not engine.io"));
        thread::sleep(Duration::from_secs(1));
    });
    let exporter = Exporter::start(&admin_config(&server.url(), "server_id = \"fake\""));
    eventually(Duration::from_secs(6), || {
        let errors = exporter.scrape().errors(SOURCE, "protocol");
        if errors >= 1.0 {
            Ok(())
        } else {
            Err(format!("{errors} protocol errors"))
        }
    });
}

#[test]
fn a_server_that_stops_pinging_is_down_after_its_ping_window() {
    // Stats every 300 ms but never a ping: the client must give up after
    // pingInterval + pingTimeout (1.5 s + 1 s) even though data keeps coming.
    let server = FakeServer::start(&open_packet(1_500, 1_000), |ws| {
        for _ in 0..20 {
            if ws
                .send(Message::text(stats_frame("fake", &[("/", 3)])))
                .is_err()
            {
                return;
            }
            thread::sleep(Duration::from_millis(300));
        }
    });
    let exporter = Exporter::start(&admin_config(&server.url(), "server_id = \"fake\""));
    eventually(Duration::from_secs(5), || {
        let scrape = exporter.scrape();
        match scrape.connections().get("/") {
            Some(3) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    eventually(Duration::from_secs(5), || {
        let errors = exporter.scrape().errors(SOURCE, "ping_timeout");
        if errors >= 1.0 {
            Ok(())
        } else {
            Err(format!("{errors} ping timeouts"))
        }
    });
    let logs = exporter.logs();
    assert!(
        logs.iter().any(|e| e["reason"] == "ping_timeout"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("no ping from the server within 2.5s")),
        "{logs:#?}"
    );
}

#[test]
fn pings_are_answered() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = FakeServer::start(&open_packet(25_000, 20_000), move |ws| {
        let _ = ws.send(Message::text("2"));
        if let Ok(Message::Text(answer)) = ws.read() {
            let _ = tx.lock().unwrap().send(answer.as_str().to_owned());
        }
        thread::sleep(Duration::from_secs(5));
    });
    let _exporter = Exporter::start(&admin_config(&server.url(), "server_id = \"fake\""));
    let answer = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("an answer to the ping");
    assert_eq!(answer, "3");
}
