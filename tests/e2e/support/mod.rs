//! Helpers for the end-to-end tests: the real Socket.IO test app (`tests/app`), real
//! socket.io-client clients, the real exporter binary, a scrape parser, and polling.

pub mod curl;
pub mod fake_server;
pub mod node_cluster;
pub mod otlp;
pub mod pki;
pub mod prometheus;
pub mod redis;
pub mod scrape;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use prometheus::Prometheus;
pub use scrape::Scrape;

/// Time for processes to start and answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The test app's directory, with its npm dependencies installed.
pub fn app_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/app");
    assert!(
        dir.join("node_modules/socket.io").is_dir(),
        "the test app's npm packages are missing: run scripts/test (or `npm ci` in {})",
        dir.display()
    );
    dir
}

/// Polls `check` until it returns `Ok`, or panics with its last error after `timeout`.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("not true within {timeout:?}: {last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Polls `check` for all of `duration`, and panics at its first error: for what must stay
/// true (a source that stays up through a quiet spell, a count that does not change).
pub fn throughout(duration: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    while started.elapsed() < duration {
        if let Err(error) = check() {
            panic!("no longer true after {:?}: {error}", started.elapsed());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Scrapes `exporter` until `check` holds (or panics after 8 s, showing the last scrape).
pub fn wait_for(exporter: &Exporter, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    eventually(Duration::from_secs(8), || {
        let scrape = exporter.scrape();
        if check(&scrape) {
            Ok(scrape)
        } else {
            Err(format!("{what}:\n{}", scrape.text))
        }
    })
}

/// Lines a child writes, collected by a thread.
pub fn collect_lines(
    stream: impl Read + Send + 'static,
) -> (Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = channel();
    let all = Arc::new(Mutex::new(Vec::new()));
    let sink = all.clone();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (rx, all)
}

/// What `pick` makes of the first line it accepts, waiting up to `timeout` for it; else
/// panics with `missing()`.
pub fn first_line<T>(
    lines: &Receiver<String>,
    timeout: Duration,
    mut pick: impl FnMut(&str) -> Option<T>,
    missing: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{}", missing()));
        if let Some(found) = pick(&line) {
            return found;
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs `node args...` in the test app's directory; returns it, its further stdout lines,
/// and its first one, the JSON line it prints once it listens.
fn start_node(
    args: &[&str],
    env: &[(&str, &str)],
    within: Duration,
) -> (Child, Receiver<String>, Value) {
    let mut child = Command::new("node")
        .current_dir(app_dir())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node: is Node.js installed?");
    let (lines, _) = collect_lines(child.stdout.take().unwrap());
    let line = lines
        .recv_timeout(within)
        .unwrap_or_else(|_| panic!("node {args:?} did not say it listens"));
    let listening = serde_json::from_str(&line).expect("listening line is JSON");
    (child, lines, listening)
}

/// The real Socket.IO test app (`tests/app/server.js`), instrumented with admin-ui.
pub struct App {
    child: Child,
    pub port: u16,
    pub server_id: String,
}

/// Namespaces every test app serves besides `/` and the dynamic `/tenant-<n>`.
pub const WEIRD_NAMESPACE: &str = "/we\"ird\\ns";

impl App {
    /// Starts the app on an ephemeral port with the given server id and a 1 s ping interval,
    /// so that every test also proves the exporter answers pings.
    pub fn start(server_id: &str) -> App {
        App::start_with(server_id, 0, &[])
    }

    pub fn start_with(server_id: &str, port: u16, extra: &[&str]) -> App {
        App::spawn(server_id, port, extra, "socket.io")
    }

    /// The app on another pinned socket.io, an npm alias in `tests/app/package.json`
    /// (e.g. `socket.io-v3`).
    pub fn start_on(server_id: &str, socketio: &str) -> App {
        App::spawn(server_id, 0, &[], socketio)
    }

    fn spawn(server_id: &str, port: u16, extra: &[&str], socketio: &str) -> App {
        let namespaces = json!(["/chat", "/notifications", WEIRD_NAMESPACE]).to_string();
        let port = port.to_string();
        let mut args = vec!["server.js", "--port", &port, "--server-id", server_id];
        args.extend(["--namespaces", &namespaces]);
        args.extend(["--ping-interval", "1000", "--ping-timeout", "1000"]);
        args.extend(extra);
        let (child, _, listening) =
            start_node(&args, &[("TEST_APP_SOCKETIO", socketio)], START_TIMEOUT);
        App {
            child,
            port: listening["port"].as_u64().unwrap() as u16,
            server_id: server_id.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The app's own counts, read from `io._nsps` and `io.engine.clientsCount`.
    pub fn truth(&self) -> Truth {
        let (status, body) = http_get(
            &format!("127.0.0.1:{}", self.port).parse().unwrap(),
            "/truth",
        )
        .expect("GET /truth");
        assert_eq!(status, 200, "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        Truth {
            clients: value["clientsCount"].as_u64().unwrap(),
            namespaces: value["namespaces"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect(),
        }
    }

    /// The app calls `socket.disconnect(true)` on every socket of `namespace`; returns how
    /// many.
    pub fn disconnect_sockets(&self, namespace: &str) -> u64 {
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let path = format!("/disconnect?namespace={}", namespace.replace('/', "%2F"));
        let (status, body) = send(&addr, "POST", &path, &[], b"").expect("POST /disconnect");
        assert_eq!(status, 200, "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        value["disconnected"].as_u64().unwrap()
    }

    /// SIGKILL: the app vanishes without a goodbye.
    pub fn kill(mut self) {
        kill(&mut self.child);
    }
}

impl Drop for App {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    pub clients: u64,
    pub namespaces: BTreeMap<String, u64>,
}

impl Truth {
    /// What the exporter should show by default: every namespace but the admin one.
    pub fn without_admin(&self) -> BTreeMap<String, u64> {
        let mut namespaces = self.namespaces.clone();
        namespaces.remove("/admin");
        namespaces
    }
}

/// Real socket.io-client connections, driven through `tests/app/clients.js`.
pub struct Clients {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
    seq: u64,
}

impl Clients {
    pub fn start() -> Clients {
        Clients::start_with_env(&[])
    }

    pub fn start_with_env(env: &[(&str, &str)]) -> Clients {
        let mut child = Command::new("node")
            .current_dir(app_dir())
            .arg("clients.js")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node clients.js");
        let stdin = child.stdin.take().unwrap();
        let (answers, _) = collect_lines(child.stdout.take().unwrap());
        Clients {
            child,
            stdin,
            answers,
            seq: 0,
        }
    }

    fn command(&mut self, mut command: Value) {
        self.seq += 1;
        command["seq"] = json!(self.seq);
        writeln!(self.stdin, "{command}").expect("write to clients.js");
        let answer = self
            .answers
            .recv_timeout(START_TIMEOUT)
            .expect("clients.js did not answer");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["seq"], json!(self.seq));
        assert_eq!(answer["ok"], json!(true), "{command} failed: {answer}");
    }

    /// One engine connection `id` to `app`, with a socket in each namespace.
    pub fn connect(&mut self, id: &str, app: &App, namespaces: &[&str]) {
        self.connect_url(id, &app.url(), namespaces);
    }

    pub fn connect_url(&mut self, id: &str, url: &str, namespaces: &[&str]) {
        self.command(json!({"op": "connect", "id": id, "url": url, "namespaces": namespaces}));
    }

    /// Like [`Clients::connect`], restricted to `transports` (e.g. `["polling"]`: the
    /// client never upgrades to WebSocket).
    pub fn connect_over(&mut self, id: &str, app: &App, namespaces: &[&str], transports: &[&str]) {
        self.command(json!({
            "op": "connect", "id": id, "url": app.url(), "namespaces": namespaces,
            "transports": transports,
        }));
    }

    pub fn disconnect(&mut self, id: &str) {
        self.command(json!({"op": "disconnect", "id": id}));
    }

    /// Closes one namespace socket of `id`; its other sockets stay.
    pub fn leave(&mut self, id: &str, namespace: &str) {
        self.command(json!({"op": "leave", "id": id, "namespace": namespace}));
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The real exporter binary, started with a config written to a temporary file.
pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

/// A config with the tests' fast sync and the given `[[sources]]` tables.
pub fn config(sources: &str) -> String {
    format!(
        r#"environment = "test"
[sync]
interval_secs = 1
stale_after_secs = 5

{sources}
"#
    )
}

/// The app `server_id` without admin-ui, its reporter (clients/node) writing a report
/// file every 500 ms, and an exporter reading that file as the server's: keep the
/// directory alive as long as the two.
pub fn app_reporting_to_file(server_id: &str) -> (tempfile::TempDir, App, Exporter) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    let file = file.to_str().unwrap();
    let reporter = [
        "--no-admin-ui",
        "--report-file",
        file,
        "--report-interval",
        "500",
    ];
    let app = App::start_with(server_id, 0, &reporter);
    let exporter = Exporter::start(&config(&format!(
        "[[sources]]\ntype = \"report_file\"\npath = \"{file}\"\nserver_id = \"{server_id}\"\n"
    )));
    (dir, app, exporter)
}

/// A `socketio_admin` source for `app` with `extra` TOML lines, under a fast sync.
pub fn admin_config(app_url: &str, extra: &str) -> String {
    config(&format!(
        r#"[[sources]]
type = "socketio_admin"
endpoint = "{app_url}"
username = "admin"
password_env = "TEST_ADMIN_PASSWORD"
{extra}"#
    ))
}

impl Exporter {
    /// Starts the exporter on an ephemeral port; the admin password is `changeit`.
    pub fn start(config: &str) -> Exporter {
        Exporter::start_with_env(config, &[("TEST_ADMIN_PASSWORD", "changeit")])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Exporter {
        Exporter::start_with(config, env, &[])
    }

    /// With extra command-line flags.
    pub fn start_with(config: &str, env: &[(&str, &str)], args: &[&str]) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_socketio-exporter"));
        // OTLP settings come from each test alone, never from the machine's environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .arg("--config")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the exporter");
        let (lines, logs) = collect_lines(child.stderr.take().unwrap());
        let addr = first_line(
            &lines,
            START_TIMEOUT,
            |line| {
                let event = serde_json::from_str::<Value>(line).ok()?;
                (event["message"] == "listening")
                    .then(|| event["address"].as_str().unwrap().parse().unwrap())
            },
            || {
                format!(
                    "the exporter did not log its address: {:?}",
                    logs.lock().unwrap()
                )
            },
        );
        Exporter {
            child,
            addr,
            logs,
            dir,
        }
    }

    pub fn scrape(&self) -> Scrape {
        let (status, body) = http_get(&self.addr, "/metrics").expect("scrape /metrics");
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path).expect("GET the exporter")
    }

    /// Log lines so far, as JSON events.
    pub fn logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| json!({ "raw": line })))
            .collect()
    }

    /// The exporter's process id, e.g. to read its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// How the process ended, once it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// The directory the config file is in, for files the config points to.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the config file, atomically as editors and ConfigMap volumes do.
    pub fn write_config(&self, config: &str) {
        let next = self.dir().join(".config.toml.new");
        std::fs::write(&next, config).unwrap();
        std::fs::rename(&next, self.dir().join("config.toml")).unwrap();
    }

    /// Sends SIGHUP: reload the config file.
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Log events whose message is `message`.
    pub fn logged(&self, message: &str) -> usize {
        self.logs()
            .iter()
            .filter(|event| event["message"] == message)
            .count()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> Option<ExitStatus> {
        self.stop(timeout)
    }

    /// Sends SIGTERM and waits for the exit status; the logs stay readable.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        terminate(&self.child);
        wait_with_timeout(&mut self.child, timeout)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A minimal HTTP/1.1 GET; the body as text.
pub fn http_get(addr: &SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path)
}

pub fn request(addr: &SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    send(addr, method, path, &[], b"")
}

/// A POST with a JSON body and optional extra headers.
pub fn post(addr: &SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    send(addr, "POST", path, &all, body).expect("POST to the exporter")
}

fn send(
    addr: &SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // A server may answer (413) before reading a large body; the answer is what counts.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// Runs `program` with `args`, failing clearly when it is not installed. Tools the tests
/// need are installed by scripts/test and .ci/run; a missing one is a failure, not a skip.
pub fn require_tool(program: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{program} is not installed: run scripts/test, which installs the tools the tests need (Debian packages prometheus, redis-server, openssl, curl)")
    })
}
