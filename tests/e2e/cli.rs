//! The binary's command line and HTTP surface, independent of any app.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{Exporter, admin_config, eventually, request};

fn exporter() -> Command {
    Command::new(env!("CARGO_BIN_EXE_socketio-exporter"))
}

#[test]
fn check_config_accepts_the_shipped_example_without_printing_the_password() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let output = exporter()
        .arg("--config")
        .arg(&shipped)
        .arg("--check-config")
        .env("SOCKETIO_ADMIN_PASSWORD", "s3cret-value")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("password from environment variable SOCKETIO_ADMIN_PASSWORD"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret-value"));
}

#[test]
fn check_config_lists_every_problem_with_its_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
environment = "x"
[sync]
interval_secs = -1
[[sources]]
type = "socketio_admin"
endpoint = "localhost:3000/"
username = "admin"
password = "hunter2"
password_file = "/nonexistent/secret"
"#,
    )
    .unwrap();
    let output = exporter()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.toml: 3 problems"), "{stderr}");
    assert!(
        stderr.contains("sync.interval_secs: must be a positive number of seconds, got -1"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "sources[0].endpoint: \"localhost:3000/\": scheme \"localhost\" is not supported"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "sources[0].password: set only one of password, password_env and password_file"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"));
}

#[test]
fn unknown_key_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "environment = \"x\"\n[sync]\nintervall_secs = 2\n").unwrap();
    let output = exporter()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("unknown field `intervall_secs`"),
        "{stderr}"
    );
    assert!(stderr.contains("line 3"), "{stderr}");
}

#[test]
fn missing_config_file_is_named() {
    let output = exporter()
        .args(["--config", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("cannot read config file /nonexistent/config.toml"),
        "{stderr}"
    );
}

#[test]
fn ready_and_healthy_while_the_app_is_unreachable() {
    // Nothing listens on port 1: the app is down, yet the sidecar must not take the pod
    // out of service.
    let exporter = Exporter::start(&admin_config("http://127.0.0.1:1", ""));
    assert_eq!(exporter.get("/healthz").0, 200);
    eventually(Duration::from_secs(3), || match exporter.get("/readyz") {
        (200, _) => Ok(()),
        other => Err(format!("{other:?}")),
    });
    eventually(Duration::from_secs(3), || {
        let scrape = exporter.scrape();
        match scrape.source_up("socketio_admin") {
            Some(0.0) if scrape.errors("socketio_admin", "connect") >= 1.0 => Ok(()),
            other => Err(format!("source_up {other:?}")),
        }
    });
    assert!(exporter.scrape().series("websocket_connections").is_empty());
}

#[test]
fn metrics_endpoint_speaks_http_conventionally() {
    let exporter = Exporter::start(&admin_config("http://127.0.0.1:1", ""));
    let (status, _) = request(&exporter.addr, "POST", "/metrics").unwrap();
    assert_eq!(status, 405);
    let (status, body) = request(&exporter.addr, "HEAD", "/metrics").unwrap();
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(exporter.get("/nope").0, 404);
    let (status, landing) = exporter.get("/");
    assert_eq!(status, 200);
    assert!(landing.contains("href=\"/metrics\""));
    let scrape = exporter.scrape();
    let build = scrape.series("socketio_exporter_build_info");
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].labels["version"], env!("CARGO_PKG_VERSION"));
    assert!(!scrape.series("process_resident_memory_bytes").is_empty());
}

#[test]
fn version_names_the_revision_as_build_info_does() {
    let output = exporter().arg("--version").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    let exporter = Exporter::start(&admin_config("http://127.0.0.1:1", ""));
    let scrape = exporter.scrape();
    let revision = &scrape.series("socketio_exporter_build_info")[0].labels["revision"];
    assert_eq!(
        stdout.trim(),
        format!(
            "socketio-exporter {} (revision {revision})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn check_config_checks_the_web_config_file_and_the_certificates_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, admin_config("http://127.0.0.1:3000", "")).unwrap();
    let web = dir.path().join("web.yml");
    let check = |web_text: &str| {
        std::fs::write(&web, web_text).unwrap();
        let output = exporter()
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .env("SOCKETIO_EXPORTER_WEB_CONFIG_FILE", &web)
            .env("TEST_ADMIN_PASSWORD", "x")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    let (code, text) = check(
        "basic_auth_users:\n  alice: $2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu\n",
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("tls: off\n  basic auth: 1 user(s)"), "{text}");

    let (code, text) = check(
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n  min_version: TLS11\n",
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(
            "web.yml: 1 problem\n  tls_server_config.min_version: TLS11 is not supported"
        ),
        "{text}"
    );

    let (code, text) =
        check("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("tls_server_config: cannot read cert_file "),
        "{text}"
    );
    assert!(text.contains("missing.pem"), "{text}");

    let (code, text) = check("tls_server_config:\n  cert_filse: x\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("tls_server_config: unknown field `cert_filse`"),
        "{text}"
    );
}
