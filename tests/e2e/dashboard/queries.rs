//! The dashboard's PromQL: filters on every selector, rate windows, counters read through
//! rate(), no fake zeros; and every query, interpolated as Grafana would, parses.

use std::time::Duration;

use serde_json::json;

use super::grafana::{Selection, Target, interpolate, load_dashboard, targets, variables};
use super::promtool;

/// Targets that read `websocket_connections` without the namespace filter, on purpose.
const WITHOUT_NAMESPACE_FILTER: &[(&str, &str)] = &[("Namespaces exported vs. cap", "A")];

/// Metric names the dashboard reads; each selector of them must carry the filters.
fn is_our_metric(name: &str) -> bool {
    name.starts_with("websocket_")
        || name.starts_with("socketio_")
        || name.starts_with("process_")
        || name == "up"
}

/// Problems with one target expression: filters, rate windows, counters, fake zeros.
pub(super) fn expr_problems(target: &Target) -> Vec<String> {
    let at = format!("panel {:?} target {}", target.panel, target.ref_id);
    let expr = &target.expr;
    let mut problems = Vec::new();
    if expr.trim().is_empty() {
        problems.push(format!("{at}: empty expression"));
        return problems;
    }
    if expr.contains("vector(") {
        problems.push(format!(
            "{at}: `vector(...)` fakes a value where the data is unknown: {expr}"
        ));
    }
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == '"' {
            i = string_end(bytes, i);
            continue;
        }
        if c == '[' {
            let end = expr[i..].find(']').map(|e| i + e).unwrap_or(expr.len());
            let window = &expr[i + 1..end];
            if window != "$__rate_interval" && window != "$__range" {
                problems.push(format!(
                    "{at}: range [{window}] must be [$__rate_interval] (or [$__range] for the time range)"
                ));
            }
            i = end + 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            i = name_end(bytes, i);
            let name = &expr[start..i];
            if !is_our_metric(name) {
                continue;
            }
            if bytes.get(i) != Some(&b'{') {
                problems.push(format!("{at}: {name} without label filters"));
                continue;
            }
            let end = expr[i..].find('}').map(|e| i + e).unwrap_or(expr.len());
            let selector = Selector {
                name,
                matchers: &expr[i + 1..end],
                before: &expr[..start],
            };
            problems.extend(selector.problems(&at, target));
            i = end + 1;
            continue;
        }
        i += 1;
    }
    problems
}

/// Where the string literal that opens at `start` ends (just past its closing quote).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// Where the metric or function name that starts at `start` ends.
fn name_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len()
        && ((bytes[i] as char).is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
    {
        i += 1;
    }
    i
}

/// A selector `name{matchers}` of one of our metrics, and the expression before it.
struct Selector<'a> {
    name: &'a str,
    matchers: &'a str,
    before: &'a str,
}

impl Selector<'_> {
    fn problems(&self, at: &str, target: &Target) -> Vec<String> {
        let Selector {
            name,
            matchers,
            before,
        } = *self;
        let mut problems = Vec::new();
        let mut required = vec!["job", "instance"];
        // The app's series (not the exporter's own) carry environment and, in cluster
        // scope, server.
        let app_series = name.starts_with("websocket_")
            || (name.starts_with("socketio_") && !name.starts_with("socketio_exporter_"));
        if app_series {
            required.extend(["environment", "server"]);
        }
        if name == "socketio_exporter_reconcile_drift" {
            required.push("server");
        }
        if (name == "websocket_connections"
            && !WITHOUT_NAMESPACE_FILTER.iter().any(|&e| target.is(e)))
            || name == "socketio_exporter_reconcile_drift"
        {
            required.push("namespace");
        }
        for label in required {
            if !matchers.contains(&format!("{label}=~\"${label}\"")) {
                problems.push(format!("{at}: {name} lacks {label}=~\"${label}\""));
            }
        }
        if name == "websocket_clients" && matchers.contains("namespace") {
            problems.push(format!(
                "{at}: websocket_clients has no namespace label, a namespace filter drops it"
            ));
        }
        let counter = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| name.ends_with(suffix));
        if counter && !before.ends_with("rate(") && !before.ends_with("increase(") {
            problems.push(format!(
                "{at}: counter {name} must be read through rate() or increase()"
            ));
        }
        problems
    }
}

#[test]
fn every_dashboard_query_parses_with_promtool() {
    let dashboard = load_dashboard();
    let vars = variables(&dashboard);
    let all = Selection::all(Duration::from_secs(3600));
    let mut rules = Vec::new();
    for (i, t) in targets(&dashboard).iter().enumerate() {
        rules.push(json!({
            "record": format!("dashboard:target_{i}"),
            "expr": interpolate(&t.expr, &vars, &all).unwrap(),
        }));
    }
    for v in &vars {
        rules.push(json!({
            "record": format!("dashboard:variable_{}", v.name),
            "expr": interpolate(&v.selector, &vars, &all).unwrap(),
        }));
    }
    let count = rules.len();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    // JSON is YAML.
    std::fs::write(
        &file,
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let (success, stdout, stderr) = promtool(&["check", "rules"], &file);
    assert!(
        success && stdout.contains(&format!("SUCCESS: {count} rules found")),
        "promtool check rules on the dashboard's queries: {stdout}{stderr}"
    );
}
