//! The bundled Grafana dashboard and the Prometheus rules: promtool on the rules, the
//! dashboard's structure, and every panel and variable query of the dashboard run through
//! a real Prometheus that scrapes the real exporter reading the real Socket.IO app.
//!
//! `grafana` reads the dashboard as Grafana does (panels, targets, variables and their
//! interpolation); `structure` and `queries` check its JSON and its PromQL, `rules` the
//! alert rules, and `live` runs the dashboard and the rules against a real Prometheus.

mod grafana;
mod live;
mod queries;
mod rules;
mod structure;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Prometheus, require_tool};

const DASHBOARD: &str = "grafana/dashboards/socketio-exporter.json";
const RULES: &str = "deploy/prometheus/alerts.yml";

/// The test Prometheus scrapes and evaluates rules every second.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// What Grafana substitutes for `$__rate_interval` at a 1 s scrape interval (at least four
/// scrape intervals).
const RATE_INTERVAL: &str = "4s";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Runs promtool with `args`, then `file`: whether it succeeded, its stdout, its stderr.
fn promtool(args: &[&str], file: &Path) -> (bool, String, String) {
    let output = Command::new(require_tool("promtool"))
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The rules file for a Prometheus config's `rule_files:`.
pub fn rules_path() -> PathBuf {
    repo(RULES)
}

/// What target A of `panel` shows now with every variable at All, as Grafana asks
/// Prometheus for it: for the tests outside this module.
pub fn panel_now(prometheus: &Prometheus, panel: &str) -> Result<Vec<Value>, String> {
    let dashboard = grafana::load_dashboard();
    let targets = grafana::targets(&dashboard);
    let vars = grafana::variables(&dashboard);
    let selection = grafana::Selection::all(Duration::from_secs(60));
    let expr = grafana::interpolate(
        &grafana::target(&targets, panel, "A").expr,
        &vars,
        &selection,
    )?;
    prometheus.query(&expr)
}
