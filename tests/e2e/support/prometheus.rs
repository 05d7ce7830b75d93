//! A real Prometheus server (Debian's `prometheus` package) as a child process, and its
//! HTTP API: instant and range queries, label values, rules.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{START_TIMEOUT, collect_lines, eventually, http_get, kill, require_tool};

/// Prometheus on a loopback port, with its TSDB in a temporary directory; killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (a prometheus.yml) and waits until it is ready.
    pub fn start(config: &str) -> Prometheus {
        let program = require_tool("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        // Prometheus cannot report an ephemeral port, so take a free one and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(program)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prometheus");
        let (_, logs) = collect_lines(child.stderr.take().unwrap());
        let mut prometheus = Prometheus {
            child,
            addr,
            logs,
            _dir: dir,
        };
        eventually(START_TIMEOUT, || {
            if let Some(status) = prometheus.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}): {}", prometheus.logs());
            }
            match http_get(&prometheus.addr, "/-/ready") {
                Ok((200, _)) => Ok(()),
                other => Err(format!("not ready: {other:?}")),
            }
        });
        prometheus
    }

    /// What Prometheus logged (warnings and errors).
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// GET an API path; the `data` of a successful answer, or Prometheus's error.
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(&self.addr, path).map_err(|e| format!("GET {path}: {e}"))?;
        let answer: Value = serde_json::from_str(&body)
            .map_err(|e| format!("GET {path}: {status}, not JSON ({e}): {body}"))?;
        if status == 200 && answer["status"] == "success" {
            Ok(answer["data"].clone())
        } else {
            Err(format!(
                "GET {path}: {status} {}: {}",
                answer["errorType"], answer["error"]
            ))
        }
    }

    /// An instant query at `time` (Unix seconds): the result vector.
    pub fn query_at(&self, expr: &str, time: f64) -> Result<Vec<Value>, String> {
        let data = self.api(&format!(
            "/api/v1/query?query={}&time={time:.3}",
            encode(expr)
        ))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// An instant query now.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        self.query_at(expr, unix_now())
    }

    /// A range query: the result matrix.
    pub fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<Vec<Value>, String> {
        let data = self.api(&format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={}",
            encode(expr),
            step.as_secs_f64()
        ))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The values of `label` on series matching `selector` between `start` and `end`, as
    /// Grafana asks for `label_values(selector, label)`.
    pub fn label_values(
        &self,
        label: &str,
        selector: &str,
        start: f64,
        end: f64,
    ) -> Result<Vec<String>, String> {
        let data = self.api(&format!(
            "/api/v1/label/{label}/values?match[]={}&start={start:.3}&end={end:.3}",
            encode(selector)
        ))?;
        Ok(data
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Percent-encodes a query parameter.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The single sample value of an instant-query result element.
pub fn sample_value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample value in {sample}"))
}
