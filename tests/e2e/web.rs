//! The web config file (`--web.config.file`, exporter-toolkit's format) as people meet it:
//! curl with real openssl certificates and a bcrypt hash, Debian's Prometheus scraping
//! over HTTPS with basic auth, rotation without a restart, gzip, and the push listener.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::curl::{Answer, curl};
use crate::support::pki::Ca;
use crate::support::{Exporter, Prometheus, config, eventually, post, request};

const PASSWORD: &str = "s3cret";

/// A push source with a bearer token: an exporter that needs no app.
fn push_source(extra: &str) -> String {
    config(&format!(
        "[[sources]]\ntype = \"push\"\ntoken = \"push-token\"\n{extra}"
    ))
}

/// A bcrypt hash as htpasswd makes it (`$2y$`).
fn hash(password: &str) -> String {
    bcrypt::hash_with_result(password, 5)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY)
}

/// Writes `web.yml` in `dir`; TLS files are named relative to it, as users do.
fn write_web_config(dir: &Path, text: &str) -> String {
    let path = dir.join("web.yml");
    let tmp = dir.join("web.yml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path.to_str().unwrap().to_owned()
}

fn start(dir: &Path, web: &str) -> Exporter {
    let path = write_web_config(dir, web);
    Exporter::start_with(&push_source(""), &[], &["--web.config.file", &path])
}

fn https(exporter: &Exporter, path: &str) -> String {
    format!("https://{}{path}", exporter.addr)
}

/// TLS with the certificate `server.pem` and the user `prometheus` with `password`.
fn tls_and_user(password: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
         basic_auth_users:\n  prometheus: {}\n",
        hash(password)
    )
}

/// An exporter with [`tls_and_user`] (password [`PASSWORD`]) and `extra` YAML, its
/// certificate signed by a private CA.
fn tls_exporter(extra: &str) -> (tempfile::TempDir, Ca, Exporter) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    ca.server("server");
    let exporter = start(dir.path(), &format!("{}{extra}", tls_and_user(PASSWORD)));
    (dir, ca, exporter)
}

fn status(answer: &Result<Answer, String>) -> Option<u16> {
    answer.as_ref().ok().map(|a| a.status)
}

#[test]
fn tls_and_basic_auth_guard_metrics_while_probes_and_push_keep_their_own_rules() {
    let (_dir, ca, exporter) =
        tls_exporter("http_server_config:\n  headers:\n    X-Frame-Options: deny\n");
    let cacert = ca.cert.to_str().unwrap();
    let metrics = https(&exporter, "/metrics");

    let anonymous = curl(&["--cacert", cacert, &metrics]).unwrap();
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .headers
            .to_ascii_lowercase()
            .contains("www-authenticate: basic")
    );
    assert!(
        anonymous
            .headers
            .to_ascii_lowercase()
            .contains("x-frame-options: deny")
    );
    for user in ["prometheus:wrong", "nobody:s3cret", "prometheus:"] {
        let answer = curl(&["--cacert", cacert, "-u", user, &metrics]).unwrap();
        assert_eq!(answer.status, 401, "{user}");
    }
    let right = format!("prometheus:{PASSWORD}");
    let answer = curl(&["--cacert", cacert, "-u", &right, &metrics]).unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        answer.text().contains("socketio_exporter_build_info{"),
        "{}",
        answer.text()
    );
    assert_eq!(
        status(&curl(&["--cacert", cacert, &https(&exporter, "/")])),
        Some(401)
    );
    let landing = curl(&["--cacert", cacert, "-u", &right, &https(&exporter, "/")]).unwrap();
    assert!(
        landing.text().contains("<td>push</td>"),
        "{}",
        landing.text()
    );

    // Probes stay open: kubelet sends no credentials.
    let health = curl(&["--cacert", cacert, &https(&exporter, "/healthz")]).unwrap();
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let ready = curl(&["--cacert", cacert, &https(&exporter, "/readyz")]).unwrap();
    assert_ne!(ready.status, 401);

    // Push keeps its bearer token, over TLS; basic auth does not apply to it.
    let report = json!({"namespaces": {"/": 3}}).to_string();
    let push = |token: &str| {
        curl(&[
            "--cacert",
            cacert,
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "--data",
            &report,
            &https(&exporter, "/push/report"),
        ])
        .unwrap()
        .status
    };
    assert_eq!(push("wrong"), 401);
    assert_eq!(push("push-token"), 202);

    // Plain HTTP gets Go's answer, and an untrusted certificate is refused by the client.
    let plain = curl(&[&format!("http://{}/metrics", exporter.addr)]).unwrap();
    assert_eq!(plain.status, 400);
    assert!(
        plain
            .text()
            .contains("Client sent an HTTP request to an HTTPS server")
    );
    let (code, _) = request(&exporter.addr, "GET", "/healthz").unwrap();
    assert_eq!(code, 400);
    assert!(curl(&[&metrics]).unwrap_err().contains("exit Some(60)"));
}

#[test]
fn client_certificates_are_required_and_verified_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    ca.server("server");
    let client = ca.client("client");
    let stranger = Ca::new(dir.path(), "other").client("stranger");
    let exporter = start(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  \
         min_version: TLS12\n  max_version: TLS13\n",
    );
    let cacert = ca.cert.to_str().unwrap();
    let metrics = https(&exporter, "/metrics");
    let with = |signed: &crate::support::pki::Signed| {
        curl(&[
            "--cacert",
            cacert,
            "--cert",
            signed.cert.to_str().unwrap(),
            "--key",
            signed.key.to_str().unwrap(),
            &metrics,
        ])
    };
    assert_eq!(status(&with(&client)), Some(200));
    let without = curl(&["--cacert", cacert, &metrics]);
    assert!(without.is_err(), "{without:?}");
    let strange = with(&stranger);
    assert!(strange.is_err(), "{strange:?}");
    // Even the probes need the certificate: TLS comes before HTTP.
    assert!(curl(&["--cacert", cacert, &https(&exporter, "/healthz")]).is_err());
    drop(exporter);

    // RequireAnyClientCert: any certificate whose key the client holds, no CA check.
    let exporter = start(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAnyClientCert\n",
    );
    let metrics = https(&exporter, "/metrics");
    let stranger_cert = [
        "--cert",
        stranger.cert.to_str().unwrap(),
        "--key",
        stranger.key.to_str().unwrap(),
    ];
    let answer = curl(&[&["--cacert", cacert][..], &stranger_cert, &[&metrics]].concat());
    assert_eq!(status(&answer), Some(200), "{answer:?}");
    assert!(curl(&["--cacert", cacert, &metrics]).is_err());
}

#[test]
fn rotated_certificates_and_users_apply_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ca::new(dir.path(), "first");
    first.server("server");
    let exporter = start(dir.path(), &tls_and_user("old"));
    let metrics = https(&exporter, "/metrics");
    let scrape = |ca: &Ca, password: &str| {
        status(&curl(&[
            "--cacert",
            ca.cert.to_str().unwrap(),
            "-u",
            &format!("prometheus:{password}"),
            &metrics,
        ]))
    };
    assert_eq!(scrape(&first, "old"), Some(200));

    // cert-manager style: new files moved into place while the exporter runs.
    let second = Ca::new(dir.path(), "second");
    let next = second.server("next");
    std::fs::rename(&next.key, dir.path().join("server.key")).unwrap();
    std::fs::rename(&next.cert, dir.path().join("server.pem")).unwrap();
    eventually(Duration::from_secs(10), || match scrape(&second, "old") {
        Some(200) => Ok(()),
        other => Err(format!("the new certificate is not served: {other:?}")),
    });
    assert_eq!(
        scrape(&first, "old"),
        None,
        "the old CA must no longer verify"
    );

    write_web_config(dir.path(), &tls_and_user("new"));
    eventually(Duration::from_secs(10), || match scrape(&second, "new") {
        Some(200) => Ok(()),
        other => Err(format!("the new password is not accepted: {other:?}")),
    });
    assert_eq!(scrape(&second, "old"), Some(401));

    // A broken edit keeps the running setup, and says so once.
    let before = keeping_warnings(&exporter);
    write_web_config(dir.path(), "tls_server_config:\n  cert_filse: x\n");
    eventually(Duration::from_secs(10), || {
        assert_eq!(scrape(&second, "new"), Some(200));
        match keeping_warnings(&exporter) > before {
            true => Ok(()),
            false => Err("the broken edit is not reported yet".to_string()),
        }
    });
    // Files are looked at once a second: later scrapes see the same broken file.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(scrape(&second, "new"), Some(200));
    assert_eq!(scrape(&second, "new"), Some(200));
    assert_eq!(
        keeping_warnings(&exporter),
        before + 1,
        "{:#?}",
        exporter.logs()
    );
}

fn keeping_warnings(exporter: &Exporter) -> usize {
    exporter
        .logs()
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("keeping the running web config")
        })
        .count()
}

#[test]
fn prometheus_scrapes_over_https_with_a_private_ca_and_basic_auth() {
    let (_dir, ca, exporter) = tls_exporter("");
    let prometheus = Prometheus::start(&format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: socketio-exporter
    scheme: https
    tls_config:
      ca_file: {}
    basic_auth:
      username: prometheus
      password: {PASSWORD}
    static_configs:
      - targets: ["{}"]
"#,
        ca.cert.display(),
        exporter.addr
    ));
    eventually(Duration::from_secs(30), || {
        let up = prometheus.query("up{job=\"socketio-exporter\"}")?;
        let info = prometheus.query("socketio_exporter_build_info")?;
        match (
            up.first().map(crate::support::prometheus::sample_value),
            info.len(),
        ) {
            (Some(1.0), 1) => Ok(()),
            other => Err(format!("not scraped yet: {other:?} {}", prometheus.logs())),
        }
    });
}

#[test]
fn gzip_answers_decode_to_the_same_exposition() {
    let exporter = Exporter::start(&push_source(""));
    let url = format!("http://{}/metrics", exporter.addr);
    eventually(Duration::from_secs(10), || {
        let plain = curl(&[&url])?;
        let gzip = curl(&["-H", "Accept-Encoding: gzip", &url])?;
        let headers = gzip.headers.to_ascii_lowercase();
        assert!(headers.contains("content-encoding: gzip"), "{headers}");
        assert!(headers.contains("vary: accept-encoding"), "{headers}");
        assert!(
            !plain
                .headers
                .to_ascii_lowercase()
                .contains("content-encoding")
        );
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&gzip.body[..])
            .read_to_string(&mut decoded)
            .map_err(|e| e.to_string())?;
        assert!(gzip.body.len() < plain.body.len());
        if decoded == plain.text() {
            Ok(())
        } else {
            Err("a new snapshot came between the two scrapes".to_owned())
        }
    });
}

/// The address the push listener logged.
fn push_address(exporter: &Exporter) -> SocketAddr {
    eventually(Duration::from_secs(10), || {
        exporter
            .logs()
            .iter()
            .find(|e| e["message"] == "push listening")
            .and_then(|e| e["address"].as_str()?.parse().ok())
            .ok_or_else(|| "no push listener logged".to_owned())
    })
}

#[test]
fn a_push_listener_of_its_own_takes_push_off_the_main_listener() {
    let exporter = Exporter::start(&push_source("listen_address = \"127.0.0.1:0\""));
    let push = push_address(&exporter);
    let auth = [("Authorization", "Bearer push-token")];
    let body = br#"{"namespaces":{"/":2}}"#;
    assert_eq!(post(&exporter.addr, "/push/report", &auth, body).0, 404);
    assert_eq!(post(&push, "/push/report", &auth, body).0, 202);
    assert_eq!(request(&push, "GET", "/metrics").unwrap().0, 404);
    eventually(Duration::from_secs(10), || {
        match exporter.scrape().connections().get("/") {
            Some(2) => Ok(()),
            other => Err(format!("push not applied: {other:?}")),
        }
    });
}
