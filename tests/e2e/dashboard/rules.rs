//! The alert and recording rules: promtool checks and unit tests, and the conventions of
//! the Prometheus monitoring mixins, each alert linking its runbook section.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{RULES, promtool, read, repo};
use crate::support::Prometheus;

const RULE_TESTS: &str = "deploy/prometheus/alerts_test.yml";
const RUNBOOK: &str = "docs/runbook.md";
const RUNBOOK_URL: &str =
    "https://github.com/socketio-exporter/socketio-exporter/blob/main/docs/runbook.md";

/// The alerts the issue asks for; each has a runbook section and promtool unit tests.
const ALERTS: &[&str] = &[
    "SocketIOExporterDown",
    "SocketIOExporterAbsent",
    "SocketIOExporterSourceDown",
    "SocketIOExporterConfigReloadFailed",
    "SocketIOExporterReconcileDriftHigh",
    "SocketIOExporterNamespaceLimitReached",
    "SocketIOConnectionsDroppedSharply",
    "SocketIONoConnections",
    "SocketIODisconnectStorm",
];

#[test]
fn promtool_checks_and_unit_tests_pass_on_the_shipped_rules() {
    let (success, stdout, stderr) = promtool(
        &["check", "rules", "--lint=all", "--lint-fatal"],
        &repo(RULES),
    );
    assert!(success, "promtool check rules: {stdout}{stderr}");
    let (success, stdout, stderr) = promtool(&["test", "rules"], &repo(RULE_TESTS));
    assert!(
        success && stdout.contains("SUCCESS"),
        "promtool test rules: {stdout}{stderr}"
    );
}

/// For each alert, whether alerts_test.yml expects it to fire somewhere and to stay
/// silent somewhere.
fn unit_test_cases(tests: &str) -> BTreeMap<String, (bool, bool)> {
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if let (Some(rest), Some(name)) = (line.strip_prefix("exp_alerts:"), &current) {
            let entry = cases.entry(name.clone()).or_default();
            if rest.trim() == "[]" {
                entry.1 = true;
            } else {
                entry.0 = true;
            }
        }
    }
    cases
}

/// Asserts the mixin conventions for one alerting rule, as the rules API reports it: name,
/// severity, annotations, runbook section, `for:`, and unit tests both ways.
fn assert_alert_conventions(rule: &Value, runbook: &str, cases: &BTreeMap<String, (bool, bool)>) {
    let name = rule["name"].as_str().unwrap();
    assert!(
        name.starts_with("SocketIO") && name.chars().all(|c| c.is_ascii_alphanumeric()),
        "{name}: alert names are CamelCase with the SocketIO prefix"
    );
    let severity = rule["labels"]["severity"].as_str().unwrap_or("");
    assert!(
        ["critical", "warning", "info"].contains(&severity),
        "{name}: severity {severity:?}"
    );
    for annotation in ["summary", "description"] {
        assert!(
            rule["annotations"][annotation]
                .as_str()
                .is_some_and(|s| s.len() > 20),
            "{name}: annotation {annotation} missing or too short"
        );
    }
    let anchor = name.to_lowercase();
    assert_eq!(
        rule["annotations"]["runbook_url"],
        json!(format!("{RUNBOOK_URL}#{anchor}")),
        "{name}: runbook_url"
    );
    // GitHub's anchor for "## Name" is the lowercased name.
    assert!(
        runbook.lines().any(|l| l.trim() == format!("## {name}")),
        "{RUNBOOK} has no section \"## {name}\""
    );
    assert!(
        rule["duration"].as_f64().is_some_and(|d| d >= 60.0),
        "{name}: needs a `for:` of a minute or more against flapping"
    );
    assert_eq!(
        cases.get(name),
        Some(&(true, true)),
        "{RULE_TESTS} must expect {name} both to fire and to stay silent"
    );
}

#[test]
fn alert_rules_follow_mixin_conventions_and_link_their_runbook_section() {
    let prometheus = Prometheus::start(&format!(
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n",
        repo(RULES).display()
    ));
    let groups = prometheus.api("/api/v1/rules").expect("rules API");
    let runbook = read(RUNBOOK);
    let cases = unit_test_cases(&read(RULE_TESTS));
    let mut alerts = Vec::new();
    let mut records = Vec::new();
    for rule in groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        let name = rule["name"].as_str().unwrap();
        if rule["type"] == "recording" {
            // level:metric:operations
            assert_eq!(name.split(':').count(), 3, "recording rule name {name}");
            records.push(name.to_owned());
            continue;
        }
        alerts.push(name.to_owned());
        assert_alert_conventions(rule, &runbook, &cases);
    }
    let mut expected: Vec<String> = ALERTS.iter().map(|a| a.to_string()).collect();
    expected.sort();
    alerts.sort();
    assert_eq!(alerts, expected, "the alerts");
    assert_eq!(
        records,
        [
            "environment_namespace_server:websocket_connections:max",
            "environment_namespace:websocket_connections:sum",
            "job_instance:socketio_exporter_servers:covered",
            "environment:websocket_clients:sum",
            "environment:socketio_engine_abnormal_disconnections:increase5m"
        ]
    );
}
