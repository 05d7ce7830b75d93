//! `tests/app/cluster.js`: the test app as a Node `cluster` of real worker processes behind
//! one port, each instrumented with admin-ui (ids `host#pid`), joined by the Redis adapter.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

use super::{START_TIMEOUT, Truth, http_get, kill, start_node, terminate, wait_with_timeout};

pub struct NodeCluster {
    child: Child,
    pub port: u16,
    truth_port: u16,
    lines: Receiver<String>,
}

/// Every live worker's counts, summed, and each worker's own (by pid).
#[derive(Debug)]
pub struct ClusterTruth {
    pub total: Truth,
    pub workers: BTreeMap<u32, BTreeMap<String, u64>>,
}

fn counts(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

impl NodeCluster {
    pub fn start(workers: usize, redis_url: &str) -> NodeCluster {
        let workers = workers.to_string();
        let args = ["cluster.js", "--workers", &workers, "--redis", redis_url];
        let (child, lines, listening) = start_node(&args, &[], START_TIMEOUT * 2);
        NodeCluster {
            child,
            port: listening["port"].as_u64().unwrap() as u16,
            truth_port: listening["truthPort"].as_u64().unwrap() as u16,
            lines,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn truth(&self) -> ClusterTruth {
        let addr = format!("127.0.0.1:{}", self.truth_port).parse().unwrap();
        let (status, body) = http_get(&addr, "/truth").expect("GET the cluster's /truth");
        assert_eq!(status, 200, "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        ClusterTruth {
            total: Truth {
                clients: value["clientsCount"].as_u64().unwrap(),
                namespaces: counts(&value["namespaces"]),
            },
            workers: value["workers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(pid, namespaces)| (pid.parse().unwrap(), counts(namespaces)))
                .collect(),
        }
    }

    /// SIGKILL to one worker; the primary forks another. Returns the new worker's pid
    /// once it listens.
    pub fn kill_worker(&self, pid: u32) -> u32 {
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let line = self
            .lines
            .recv_timeout(START_TIMEOUT)
            .expect("the cluster did not fork a new worker");
        let forked: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(forked["event"], "forked", "{line}");
        forked["pid"].as_u64().unwrap() as u32
    }
}

impl Drop for NodeCluster {
    fn drop(&mut self) {
        // SIGTERM lets the primary stop its workers; SIGKILL if it does not.
        terminate(&self.child);
        if wait_with_timeout(&mut self.child, Duration::from_secs(6)).is_none() {
            kill(&mut self.child);
        }
    }
}
