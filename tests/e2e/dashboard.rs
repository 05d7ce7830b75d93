//! The bundled Grafana dashboard and the Prometheus rules: promtool on the rules, the
//! dashboard's structure, and every panel and variable query of the dashboard run through
//! a real Prometheus that scrapes the real exporter reading the real Socket.IO app.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::prometheus::{sample_value, unix_now};
use crate::support::{
    App, Clients, Exporter, Prometheus, WEIRD_NAMESPACE, admin_config, eventually, post,
    require_tool,
};

const DASHBOARD: &str = "grafana/dashboards/socketio-exporter.json";
const DASHBOARD_PROVIDER: &str = "grafana/provisioning/dashboards/socketio-exporter.yaml";
const DATASOURCE_PROVIDER: &str = "grafana/provisioning/datasources/prometheus.yaml";
const RULES: &str = "deploy/prometheus/alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/alerts_test.yml";
const RUNBOOK: &str = "docs/runbook.md";
const DOCS: &str = "docs/dashboard-and-alerts.md";
const RUNBOOK_URL: &str =
    "https://github.com/socketio-exporter/socketio-exporter/blob/main/docs/runbook.md";

/// The dashboard's uid: links and provisioning upserts depend on it, so it never changes.
const UID: &str = "socketio-exporter";

/// Panel targets (panel title, refId) that read only metrics the exporter does not export
/// yet. For them the live test asserts that Prometheus accepts the query and that it
/// returns nothing, and the promtool test that it parses. Remove an entry once its metric
/// exists: the live test fails, naming the entry, as soon as one of them returns data.
/// Empty now: every panel is exercised.
const NOT_YET_EXERCISED: &[(&str, &str)] = &[];

/// Targets that read `websocket_connections` without the namespace filter, on purpose.
const WITHOUT_NAMESPACE_FILTER: &[(&str, &str)] = &[("Namespaces exported vs. cap", "A")];

/// Grafana unit ids the dashboard may use (Grafana's
/// packages/grafana-data/src/valueFormats/categories.ts); a typo renders as a plain number.
const UNITS: &[&str] = &[
    "none",
    "short",
    "s",
    "ms",
    "bytes",
    "percentunit",
    "cps",
    "cpm",
    "ops",
];

/// The alerts the issue asks for; each has a runbook section and promtool unit tests.
const ALERTS: &[&str] = &[
    "SocketIOExporterDown",
    "SocketIOExporterAbsent",
    "SocketIOExporterSourceDown",
    "SocketIOExporterReconcileDriftHigh",
    "SocketIOExporterNamespaceLimitReached",
    "SocketIOConnectionsDroppedSharply",
    "SocketIONoConnections",
];

/// The scrape job the alert rules select with `up{job="socketio-exporter"}`.
const JOB: &str = "socketio-exporter";
/// The test Prometheus scrapes and evaluates rules every second.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// What Grafana substitutes for `$__rate_interval` at a 1 s scrape interval (at least four
/// scrape intervals).
const RATE_INTERVAL: &str = "4s";
/// The Kubernetes namespace the test attaches as a target label, as service discovery does.
const KUBERNETES_NAMESPACE: &str = "apps";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn datasource_ref() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

// The dashboard, as the tests see it.

fn load_dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

/// Every panel, rows included, and the panels inside collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

#[derive(Debug, Clone)]
struct Target {
    panel: String,
    ref_id: String,
    expr: String,
    instant: bool,
}

impl Target {
    fn is(&self, (panel, ref_id): (&str, &str)) -> bool {
        self.panel == panel && self.ref_id == ref_id
    }

    fn not_yet_exercised(&self) -> bool {
        NOT_YET_EXERCISED.iter().any(|&entry| self.is(entry))
    }
}

fn targets(dashboard: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(Target {
                panel: panel["title"].as_str().unwrap_or("").to_owned(),
                ref_id: target["refId"].as_str().unwrap_or("").to_owned(),
                expr: target["expr"].as_str().unwrap_or("").to_owned(),
                instant: target["instant"] == true,
            });
        }
    }
    out
}

fn target<'a>(targets: &'a [Target], panel: &str, ref_id: &str) -> &'a Target {
    targets
        .iter()
        .find(|t| t.is((panel, ref_id)))
        .unwrap_or_else(|| panic!("the dashboard has no panel {panel:?} with target {ref_id}"))
}

/// A `label_values(selector, label)` query variable.
#[derive(Debug, Clone)]
struct Variable {
    name: String,
    selector: String,
    label: String,
    all_value: String,
}

fn parse_label_values(query: &str) -> Option<(String, String)> {
    let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_owned(), label.trim().to_owned()))
}

fn variables(dashboard: &Value) -> Vec<Variable> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = v["query"].as_str().unwrap_or("");
            let (selector, label) = parse_label_values(query).unwrap_or_else(|| {
                panic!("variable {}: not label_values(...): {query}", v["name"])
            });
            Variable {
                name: v["name"].as_str().unwrap().to_owned(),
                selector,
                label,
                all_value: v["allValue"].as_str().unwrap_or("").to_owned(),
            }
        })
        .collect()
}

// Grafana's variable interpolation, for what the tests select.

/// What the dashboard user picked for each variable; unnamed variables are All.
#[derive(Debug, Clone)]
struct Selection {
    picked: BTreeMap<String, Vec<String>>,
    range: Duration,
}

impl Selection {
    fn all(range: Duration) -> Selection {
        Selection {
            picked: BTreeMap::new(),
            range,
        }
    }

    fn pick(mut self, name: &str, values: &[&str]) -> Selection {
        self.picked.insert(
            name.to_owned(),
            values.iter().map(|v| v.to_string()).collect(),
        );
        self
    }
}

/// Escapes a value of a multi-value variable for a regex inside a PromQL string, as
/// Grafana's Prometheus datasource does (prometheusSpecialRegexEscape, with double quotes
/// escaped as under its prometheusSpecialCharsInLabelValues toggle).
fn regex_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// Substitutes variables and Grafana's macros in `text`. An unknown `$name` is an error.
fn interpolate(
    text: &str,
    variables: &[Variable],
    selection: &Selection,
) -> Result<String, String> {
    let value_of = |name: &str| -> Option<String> {
        match name {
            "__rate_interval" => Some(RATE_INTERVAL.to_owned()),
            "__interval" => Some(format!("{}s", SCRAPE_INTERVAL.as_secs())),
            "__range" => Some(format!("{}s", selection.range.as_secs().max(1))),
            _ => {
                let variable = variables.iter().find(|v| v.name == name)?;
                Some(match selection.picked.get(name) {
                    None => variable.all_value.clone(),
                    Some(values) if values.len() == 1 => regex_escape(&values[0]),
                    Some(values) => format!(
                        "({})",
                        values
                            .iter()
                            .map(|v| regex_escape(v))
                            .collect::<Vec<_>>()
                            .join("|")
                    ),
                })
            }
        }
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let value = value_of(name).ok_or_else(|| format!("unknown variable ${name} in {text}"))?;
        out.push_str(&value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

// Static checks of the dashboard.

/// Metric names the dashboard reads; each selector of them must carry the filters.
fn is_our_metric(name: &str) -> bool {
    name.starts_with("websocket_")
        || name.starts_with("socketio_exporter_")
        || name.starts_with("process_")
        || name == "up"
}

/// Problems with one target expression: filters, rate windows, counters, fake zeros.
fn expr_problems(target: &Target) -> Vec<String> {
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
            // Skip a string literal.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
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
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b':')
            {
                i += 1;
            }
            let name = &expr[start..i];
            if !is_our_metric(name) {
                continue;
            }
            if bytes.get(i) != Some(&b'{') {
                problems.push(format!("{at}: {name} without label filters"));
                continue;
            }
            let end = expr[i..].find('}').map(|e| i + e).unwrap_or(expr.len());
            let matchers = &expr[i + 1..end];
            let mut required = vec!["job", "instance"];
            if name == "websocket_connections" || name == "websocket_clients" {
                required.extend(["environment", "server"]);
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
            if counter && !expr[..start].ends_with("rate(") && !expr[..start].ends_with("increase(")
            {
                problems.push(format!(
                    "{at}: counter {name} must be read through rate() or increase()"
                ));
            }
            i = end + 1;
            continue;
        }
        i += 1;
    }
    problems
}

/// Everything the dashboard must satisfy to import through the UI and provision from a file.
fn dashboard_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let dashboard: Value = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    if text.contains("${DS_") || dashboard.get("__inputs").is_some() {
        problems.push(
            "an import placeholder (${DS_...} / __inputs) breaks file provisioning".to_owned(),
        );
    }
    if !dashboard["id"].is_null() {
        problems.push(format!("id must be null, is {}", dashboard["id"]));
    }
    if dashboard["uid"] != UID {
        problems.push(format!("uid must stay {UID:?}, is {}", dashboard["uid"]));
    }
    if dashboard["title"].as_str().is_none_or(str::is_empty) {
        problems.push("no title".to_owned());
    }
    if !dashboard["tags"]
        .as_array()
        .is_some_and(|tags| tags.contains(&json!("socketio-exporter")))
    {
        problems.push("tags must include socketio-exporter".to_owned());
    }
    if dashboard["schemaVersion"].as_u64().is_none_or(|v| v < 39) {
        problems.push(format!(
            "schemaVersion must be 39 or later, is {}",
            dashboard["schemaVersion"]
        ));
    }

    // Variables.
    let list = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let by_name = |name: &str| list.iter().find(|v| v["name"] == name);
    match by_name("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => problems.push(format!(
            "a `datasource` variable of type datasource for prometheus is required: {other:?}"
        )),
    }
    for name in ["job", "environment", "instance", "namespace", "server"] {
        let Some(v) = by_name(name) else {
            problems.push(format!("variable {name} is missing"));
            continue;
        };
        let query = v["query"].as_str().unwrap_or("");
        if v["type"] != "query" || parse_label_values(query).is_none() {
            problems.push(format!(
                "variable {name} must be a label_values(...) query: {query}"
            ));
        }
        if v["definition"] != v["query"] {
            problems.push(format!("variable {name}: definition differs from query"));
        }
        if v["datasource"] != datasource_ref() {
            problems.push(format!(
                "variable {name}: datasource must be ${{datasource}}, is {}",
                v["datasource"]
            ));
        }
        if v["multi"] != true || v["includeAll"] != true {
            problems.push(format!("variable {name} must be multi-value with All"));
        }
        if v["refresh"] != 2 {
            problems.push(format!(
                "variable {name} must refresh on time range change (2)"
            ));
        }
        // All of `server` must also match the series without a server label (scope local).
        let all = if name == "server" { ".*" } else { ".+" };
        if v["allValue"] != all {
            problems.push(format!("variable {name}: allValue must be {all:?}"));
        }
    }

    // Panels.
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for panel in all_panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("").to_owned();
        let at = format!("panel {title:?}");
        if title.is_empty() {
            problems.push(format!("panel {} has no title", panel["id"]));
        }
        if !ids.insert(panel["id"].to_string()) {
            problems.push(format!("{at}: duplicate id {}", panel["id"]));
        }
        let grid = &panel["gridPos"];
        if grid["x"].as_u64().unwrap_or(99) + grid["w"].as_u64().unwrap_or(99) > 24 {
            problems.push(format!("{at}: gridPos wider than 24 columns: {grid}"));
        }
        if panel["type"] == "row" {
            continue;
        }
        if !titles.insert(title.clone()) {
            problems.push(format!("{at}: duplicate title"));
        }
        if panel["description"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{at}: no description"));
        }
        if panel["datasource"] != datasource_ref() {
            problems.push(format!(
                "{at}: datasource must be ${{datasource}}, is {}",
                panel["datasource"]
            ));
        }
        let defaults = &panel["fieldConfig"]["defaults"];
        match defaults["unit"].as_str() {
            Some(unit) if UNITS.contains(&unit) => {}
            other => problems.push(format!("{at}: unit {other:?} is not one of {UNITS:?}")),
        }
        if defaults["noValue"]
            .as_str()
            .is_some_and(|v| v.parse::<f64>().is_ok())
            || defaults["noValue"].is_number()
        {
            problems.push(format!(
                "{at}: noValue shows a number where the data is unknown"
            ));
        }
        let panel_targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if panel_targets.is_empty() {
            problems.push(format!("{at}: no targets"));
        }
        // A stat, bar gauge or table shows one value per series: it must come from an
        // instant query, or a source that went down would keep showing its last count.
        let wants_instant =
            ["stat", "bargauge", "table"].contains(&panel["type"].as_str().unwrap_or(""));
        let mut refs = BTreeSet::new();
        for t in &panel_targets {
            let ref_id = t["refId"].as_str().unwrap_or("");
            if !refs.insert(ref_id.to_owned()) {
                problems.push(format!("{at}: duplicate refId {ref_id:?}"));
            }
            if t["datasource"] != datasource_ref() {
                problems.push(format!(
                    "{at} target {ref_id}: datasource must be ${{datasource}}, is {}",
                    t["datasource"]
                ));
            }
            if (t["instant"] == true) != wants_instant || (t["range"] == true) == wants_instant {
                problems.push(format!(
                    "{at} target {ref_id}: {} panels need {} queries",
                    panel["type"],
                    if wants_instant { "instant" } else { "range" }
                ));
            }
            problems.extend(expr_problems(&Target {
                panel: title.clone(),
                ref_id: ref_id.to_owned(),
                expr: t["expr"].as_str().unwrap_or("").to_owned(),
                instant: t["instant"] == true,
            }));
        }
    }
    problems
}

#[test]
fn dashboard_imports_and_provisions_without_placeholders_and_every_panel_has_units() {
    let problems = dashboard_problems(&read(DASHBOARD));
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every variable a query uses is defined, and every macro is one Grafana knows.
    let dashboard = load_dashboard();
    let vars = variables(&dashboard);
    for t in targets(&dashboard) {
        interpolate(&t.expr, &vars, &Selection::all(Duration::from_secs(60)))
            .unwrap_or_else(|e| panic!("panel {:?}: {e}", t.panel));
    }
    for panel in ["Connections per namespace", "Top namespaces", "Source up"] {
        assert!(
            targets(&dashboard).iter().any(|t| t.panel == panel),
            "the panel {panel:?} the issue asks for is missing"
        );
    }
}

/// The first stat panel ("Connections now") of a dashboard.
fn first_stat(d: &mut Value) -> &mut Value {
    d["panels"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["type"] == "stat")
        .unwrap()
}

fn edit_expr(d: &mut Value, edit: impl Fn(&str) -> String) {
    let target = &mut first_stat(d)["targets"][0];
    target["expr"] = json!(edit(target["expr"].as_str().unwrap()));
}

/// A way to break a dashboard.
type Break = fn(&mut Value);

#[test]
fn the_dashboard_checks_catch_what_they_promise() {
    let good = load_dashboard();
    let cases: &[(&str, Break)] = &[
        ("import placeholder", |d| {
            d["__inputs"] = json!([{"name": "DS_PROMETHEUS", "type": "datasource"}])
        }),
        ("import placeholder", |d| {
            first_stat(d)["datasource"] = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"})
        }),
        ("datasource must be ${datasource}", |d| {
            first_stat(d)["targets"][0]["datasource"] = json!({"uid": "P1809F7CD0C75ACF3"})
        }),
        ("datasource must be ${datasource}", |d| {
            d["templating"]["list"][1]["datasource"] = json!("Prometheus")
        }),
        ("unit None", |d| {
            first_stat(d)["fieldConfig"]["defaults"]
                .as_object_mut()
                .unwrap()
                .remove("unit");
        }),
        ("unit Some(\"connections\")", |d| {
            first_stat(d)["fieldConfig"]["defaults"]["unit"] = json!("connections")
        }),
        ("noValue shows a number", |d| {
            first_stat(d)["fieldConfig"]["defaults"]["noValue"] = json!("0")
        }),
        ("uid must stay", |d| d["uid"] = json!("abc123")),
        ("id must be null", |d| d["id"] = json!(7)),
        ("schemaVersion", |d| d["schemaVersion"] = json!(27)),
        ("no description", |d| {
            first_stat(d)["description"] = json!("")
        }),
        ("need instant queries", |d| {
            first_stat(d)["targets"][0]["instant"] = json!(false);
            first_stat(d)["targets"][0]["range"] = json!(true);
        }),
        ("vector(...)", |d| {
            edit_expr(d, |e| format!("{e} or vector(0)"))
        }),
        ("lacks instance", |d| {
            edit_expr(d, |e| e.replace(", instance=~\"$instance\"", ""))
        }),
        ("lacks namespace", |d| {
            edit_expr(d, |e| e.replace(", namespace=~\"$namespace\"", ""))
        }),
        ("without label filters", |d| {
            edit_expr(d, |_| "sum(websocket_connections)".to_owned())
        }),
        ("must be read through rate()", |d| {
            edit_expr(d, |_| {
                "sum(socketio_exporter_source_errors_total{job=~\"$job\", instance=~\"$instance\"})"
                    .to_owned()
            })
        }),
        ("must be [$__rate_interval]", |d| {
            let text = serde_json::to_string(d).unwrap();
            *d = serde_json::from_str(&text.replacen("[$__rate_interval]", "[5m]", 1)).unwrap();
        }),
        ("must be multi-value with All", |d| {
            for v in d["templating"]["list"].as_array_mut().unwrap() {
                if v["name"] == "namespace" {
                    v["multi"] = json!(false);
                }
            }
        }),
        ("variable server: allValue", |d| {
            for v in d["templating"]["list"].as_array_mut().unwrap() {
                if v["name"] == "server" {
                    v["allValue"] = json!(".+");
                }
            }
        }),
    ];
    for (expected, edit) in cases {
        let mut broken = good.clone();
        edit(&mut broken);
        let problems = dashboard_problems(&serde_json::to_string(&broken).unwrap()).join("\n");
        assert!(
            problems.contains(expected),
            "a dashboard broken for {expected:?} passed the checks; problems: {problems}"
        );
    }
}

#[test]
fn every_dashboard_query_parses_with_promtool() {
    let promtool = require_tool("promtool");
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
    let output = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(&format!("SUCCESS: {count} rules found")),
        "promtool check rules on the dashboard's queries: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn provisioning_files_point_at_the_shipped_paths() {
    let provider = read(DASHBOARD_PROVIDER);
    for line in [
        "apiVersion: 1",
        "type: file",
        "path: /var/lib/grafana/dashboards/socketio-exporter",
    ] {
        assert!(
            provider.contains(line),
            "{DASHBOARD_PROVIDER} lacks {line:?}:\n{provider}"
        );
    }
    let datasource = read(DATASOURCE_PROVIDER);
    for line in [
        "apiVersion: 1",
        "type: prometheus",
        "uid: prometheus",
        "url: http://prometheus:9090",
    ] {
        assert!(
            datasource.contains(line),
            "{DATASOURCE_PROVIDER} lacks {line:?}:\n{datasource}"
        );
    }
}

// The rules.

#[test]
fn promtool_checks_and_unit_tests_pass_on_the_shipped_rules() {
    let promtool = require_tool("promtool");
    let check = Command::new(&promtool)
        .args(["check", "rules", "--lint=all", "--lint-fatal"])
        .arg(repo(RULES))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(repo(RULE_TESTS))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success() && stdout.contains("SUCCESS"),
        "promtool test rules: {stdout}{}",
        String::from_utf8_lossy(&test.stderr)
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
    let mut expected: Vec<String> = ALERTS.iter().map(|a| a.to_string()).collect();
    expected.sort();
    alerts.sort();
    assert_eq!(alerts, expected, "the alerts");
    assert_eq!(records, ["environment_namespace:websocket_connections:sum"]);
}

// Against a real Prometheus scraping the real exporter.

/// A Prometheus config with the shipped rules and one scrape job per `(job_name, targets,
/// extra settings)`, scraping every second. Like Kubernetes service discovery, the targets
/// carry a `namespace` target label, which clashes with the exporter's own.
fn prometheus_config(jobs: &[(&str, &[SocketAddr], &str)]) -> String {
    let mut config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\nscrape_configs:\n",
        repo(RULES).display()
    );
    for (job, targets, extra) in jobs {
        let targets: Vec<String> = targets.iter().map(|a| format!("\"{a}\"")).collect();
        config.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n        labels:\n          namespace: {KUBERNETES_NAMESPACE}\n{extra}",
            targets.join(", ")
        ));
    }
    config
}

/// The PodMonitor settings from the docs (`<!-- tested: NAME -->`), as the lines of a
/// Prometheus scrape job: the operator passes them through with snake_case keys. The test
/// targets stand in for Kubernetes service discovery: their target label `namespace` plays
/// `__meta_kubernetes_namespace`.
fn pod_monitor_snippet(name: &str) -> String {
    tested_snippet(&read(DOCS), name)
        .replace("honorLabels:", "honor_labels:")
        .replace("metricRelabelings:", "metric_relabel_configs:")
        .replace("relabelings:", "relabel_configs:")
        .replace("sourceLabels:", "source_labels:")
        .replace("targetLabel:", "target_label:")
        .replace("__meta_kubernetes_namespace", "namespace")
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect()
}

fn result_by(result: &[Value], label: &str) -> BTreeMap<String, f64> {
    result
        .iter()
        .map(|s| {
            (
                s["metric"][label].as_str().unwrap_or("").to_owned(),
                sample_value(s),
            )
        })
        .collect()
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, f64> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), *v as f64))
        .collect()
}

fn add(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = a.iter().map(|(k, v)| (k.clone(), *v as f64)).collect();
    for (k, v) in b {
        *out.entry(k.clone()).or_default() += *v as f64;
    }
    out
}

/// Runs a dashboard target as Grafana would: an instant query now, or a range query over
/// the test so far.
fn run_target(
    prometheus: &Prometheus,
    target: &Target,
    vars: &[Variable],
    selection: &Selection,
    since: f64,
) -> Result<Vec<Value>, String> {
    let expr = interpolate(&target.expr, vars, selection)?;
    let now = unix_now();
    if target.instant {
        prometheus.query_at(&expr, now)
    } else {
        prometheus.query_range(&expr, since, now, SCRAPE_INTERVAL)
    }
    .map_err(|e| format!("{expr}: {e}"))
}

fn instant(
    prometheus: &Prometheus,
    target: &Target,
    vars: &[Variable],
    selection: &Selection,
) -> Vec<Value> {
    let expr = interpolate(&target.expr, vars, selection).unwrap();
    prometheus.query(&expr).unwrap_or_else(|e| panic!("{e}"))
}

/// Alerts Prometheus has pending or firing, as `alertname instance` strings.
fn active_alerts(prometheus: &Prometheus) -> BTreeSet<String> {
    prometheus
        .query("ALERTS")
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["metric"]["alertname"].as_str().unwrap_or(""),
                a["metric"]["instance"].as_str().unwrap_or(""),
                a["metric"]["alertstate"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// When each rule group was last evaluated (Prometheus's RFC 3339 `lastEvaluation`).
fn rule_evaluations(prometheus: &Prometheus) -> BTreeMap<String, String> {
    let groups = prometheus.api("/api/v1/rules").expect("rules API");
    groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_owned(),
                g["lastEvaluation"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Every rule group evaluated again since `before`, and every rule without error.
fn rules_evaluated_cleanly(
    prometheus: &Prometheus,
    before: &BTreeMap<String, String>,
) -> Result<(), String> {
    let groups = prometheus.api("/api/v1/rules")?;
    for group in groups["groups"].as_array().unwrap() {
        let name = group["name"].as_str().unwrap();
        if before.get(name).map(String::as_str) == group["lastEvaluation"].as_str() {
            return Err(format!("group {name} not evaluated again yet"));
        }
        for rule in group["rules"].as_array().unwrap() {
            if rule["health"] != "ok" {
                return Err(format!(
                    "rule {} is {}: {}",
                    rule["name"], rule["health"], rule["lastError"]
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn every_panel_and_variable_returns_data_from_prometheus_scraping_the_real_exporter() {
    let began = Instant::now();
    let dashboard = load_dashboard();
    let vars = variables(&dashboard);
    let all_targets = targets(&dashboard);

    // Two pods: pod-a with its sidecar (scope local), pod-b read in cluster scope, which
    // adds the `server` label.
    let app_a = App::start("pod-a");
    let app_b = App::start("pod-b");
    let mut clients = Clients::start();
    clients.connect("a1", &app_a, &["/", "/chat"]);
    clients.connect("a2", &app_a, &["/chat", "/notifications"]);
    clients.connect("a3", &app_a, &["/", "/chat", "/tenant-1"]);
    clients.connect("b1", &app_b, &["/", "/chat"]);
    clients.connect("b2", &app_b, &["/notifications"]);
    let expected_a = counts(&[
        ("/", 2),
        ("/chat", 3),
        ("/notifications", 1),
        ("/tenant-1", 1),
        (WEIRD_NAMESPACE, 0),
    ]);
    let expected = counts(&[
        ("/", 3),
        ("/chat", 4),
        ("/notifications", 2),
        ("/tenant-1", 1),
        (WEIRD_NAMESPACE, 0),
    ]);
    assert_eq!(
        add(
            &app_a.truth().without_admin(),
            &app_b.truth().without_admin()
        ),
        expected,
        "the app's own counts for the clients above"
    );
    // pod-a's sidecar also takes pushed connection events, so the drift panel has data.
    let exporter_a = Exporter::start(&admin_config(
        &app_a.url(),
        "server_id = \"pod-a\"\n\n[[sources]]\ntype = \"push\"\nserver_id = \"pod-a\"",
    ));
    let exporter_b = Exporter::start(&admin_config(&app_b.url(), "scope = \"cluster\""));
    let (addr_a, addr_b) = (exporter_a.addr.to_string(), exporter_b.addr.to_string());
    // Events that net to zero: they move pod-a's counts and back, and the next admin-ui
    // report compares with them (drift 0) without changing what the panels must show.
    eventually(Duration::from_secs(10), || {
        match exporter_a.scrape().source_up("socketio_admin") {
            Some(1.0) => Ok(()),
            other => Err(format!("pod-a's admin source up: {other:?}")),
        }
    });
    // Events keep flowing, as from an app's reporter, so the push source stays up.
    let pushing = Arc::new(AtomicBool::new(true));
    let pusher = {
        let (pushing, addr) = (pushing.clone(), exporter_a.addr);
        std::thread::spawn(move || {
            while pushing.load(Ordering::Relaxed) {
                let (status, body) = post(
                    &addr,
                    "/push/events",
                    &[],
                    br#"{"server_id":"pod-a","events":[{"type":"connect","namespace":"/"},{"type":"disconnect","namespace":"/"}]}"#,
                );
                assert_eq!(status, 202, "{body}");
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    eventually(Duration::from_secs(5), || {
        let scrape = exporter_a.scrape();
        match scrape.series("socketio_exporter_reconcile_drift").len() {
            0 => Err(format!("no drift series yet:\n{}", scrape.text)),
            _ => Ok(()),
        }
    });

    // As on Kubernetes: the job is named by relabeling, not by the scrape config.
    let prometheus = Prometheus::start(&prometheus_config(&[(
        "kubernetes-pods",
        &[exporter_a.addr, exporter_b.addr],
        &pod_monitor_snippet("relabelings"),
    )]));
    let since = unix_now();
    // A few scrapes with the complete counts, so rates and histograms have samples.
    let per_namespace = target(&all_targets, "Connections per namespace", "A");
    eventually(Duration::from_secs(20), || {
        let scrapes = prometheus.query(&format!(
            "count_over_time(websocket_clients{{job=\"{JOB}\"}}[1m])"
        ))?;
        let scraped = result_by(&scrapes, "instance");
        if scraped.len() < 2 || scraped.values().any(|&n| n < 5.0) {
            return Err(format!("scrapes with counts so far: {scraped:?}"));
        }
        let shown = result_by(
            &instant(
                &prometheus,
                per_namespace,
                &vars,
                &Selection::all(Duration::from_secs(60)),
            ),
            "namespace",
        );
        if shown != expected {
            return Err(format!("per namespace {shown:?} != {expected:?}"));
        }
        Ok(())
    });
    let range = Duration::from_secs_f64(unix_now() - since);
    let all = Selection::all(range);

    // Every template variable, as Grafana asks for it.
    let mut options: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for v in &vars {
        let selector = interpolate(&v.selector, &vars, &all).unwrap();
        let values = prometheus
            .label_values(&v.label, &selector, since, unix_now())
            .unwrap_or_else(|e| panic!("variable {}: {e}", v.name));
        assert!(
            !values.is_empty(),
            "variable {} (label_values({selector}, {})) has no values",
            v.name,
            v.label
        );
        options.insert(v.name.clone(), values.into_iter().collect());
    }
    let set = |values: &[&str]| {
        values
            .iter()
            .map(|v| v.to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(options["job"], set(&[JOB]));
    assert_eq!(options["environment"], set(&["test"]));
    assert_eq!(options["instance"], set(&[&addr_a, &addr_b]));
    assert_eq!(options["server"], set(&["pod-b"]));
    assert_eq!(
        options["namespace"],
        expected.keys().cloned().collect::<BTreeSet<_>>(),
        "Socket.IO namespaces, not the Kubernetes one ({KUBERNETES_NAMESPACE})"
    );

    // Every panel target.
    for t in &all_targets {
        let result = run_target(&prometheus, t, &vars, &all, since)
            .unwrap_or_else(|e| panic!("panel {:?} target {}: {e}", t.panel, t.ref_id));
        if t.not_yet_exercised() {
            assert!(
                result.is_empty(),
                "panel {:?} target {} now returns data: remove it from NOT_YET_EXERCISED",
                t.panel,
                t.ref_id
            );
        } else {
            assert!(
                !result.is_empty(),
                "panel {:?} target {} returns no data: {}",
                t.panel,
                t.ref_id,
                interpolate(&t.expr, &vars, &all).unwrap()
            );
        }
    }

    // The values users read.
    let value_of = |panel: &str, selection: &Selection| -> Option<f64> {
        let result = instant(
            &prometheus,
            target(&all_targets, panel, "A"),
            &vars,
            selection,
        );
        assert!(result.len() <= 1, "{panel}: one value expected: {result:?}");
        result.first().map(sample_value)
    };
    let total: f64 = expected.values().sum();
    assert_eq!(value_of("Connections now", &all), Some(total));
    // Three clients on pod-a and two on pod-b, plus each exporter's own connection.
    assert_eq!(value_of("Engine.IO clients now", &all), Some(7.0));
    assert_eq!(value_of("Namespaces", &all), Some(expected.len() as f64));
    assert_eq!(value_of("Sources down", &all), Some(0.0));
    assert_eq!(value_of("Exporters down", &all), Some(0.0));
    let top = instant(
        &prometheus,
        target(&all_targets, "Top namespaces", "A"),
        &vars,
        &all,
    );
    assert_eq!(
        top[0]["metric"]["namespace"], "/chat",
        "busiest first: {top:?}"
    );
    let per_pod: BTreeMap<String, f64> = instant(
        &prometheus,
        target(&all_targets, "Connections per pod / server", "A"),
        &vars,
        &all,
    )
    .iter()
    .map(|s| {
        (
            format!(
                "{} {}",
                s["metric"]["instance"].as_str().unwrap(),
                s["metric"]["server"].as_str().unwrap_or("-")
            ),
            sample_value(s),
        )
    })
    .collect();
    assert_eq!(
        per_pod,
        BTreeMap::from([
            (format!("{addr_a} -"), 7.0),
            (format!("{addr_b} pod-b"), 3.0)
        ])
    );
    // The filters are wired: one namespace on one pod.
    let chat_on_a = Selection::all(range)
        .pick("namespace", &["/chat"])
        .pick("instance", &[&addr_a]);
    assert_eq!(
        result_by(
            &instant(&prometheus, per_namespace, &vars, &chat_on_a),
            "namespace"
        ),
        counts(&[("/chat", 3)])
    );
    // The label clash: `namespace` is the Socket.IO namespace on the connection series,
    // and the Kubernetes one moved to `kubernetes_namespace`.
    let series = prometheus
        .query(&format!(
            "websocket_connections{{job=\"{JOB}\", namespace=\"/chat\"}}"
        ))
        .unwrap();
    assert_eq!(series.len(), 2, "{series:?}");
    for s in &series {
        assert_eq!(
            s["metric"]["kubernetes_namespace"], KUBERNETES_NAMESPACE,
            "{s}"
        );
        assert!(s["metric"].get("exported_namespace").is_none(), "{s}");
    }

    // The rules: the recording rule matches the known counts, every rule evaluates
    // without error on the real label sets, and nothing is pending in a healthy setup.
    let recorded = eventually(Duration::from_secs(5), || {
        let recorded = result_by(
            &prometheus
                .query("environment_namespace:websocket_connections:sum{environment=\"test\"}")?,
            "namespace",
        );
        if recorded == expected {
            Ok(recorded)
        } else {
            Err(format!("recorded {recorded:?} != {expected:?}"))
        }
    });
    assert_eq!(recorded.len(), 5);
    let before = rule_evaluations(&prometheus);
    eventually(Duration::from_secs(5), || {
        rules_evaluated_cleanly(&prometheus, &before)
    });
    assert_eq!(
        active_alerts(&prometheus),
        BTreeSet::new(),
        "healthy: no alert pending"
    );

    // pod-b's app dies: its counts become unknown. No panel shows them as 0.
    app_b.kill();
    eventually(Duration::from_secs(10), || {
        let up = prometheus.query(&format!(
            "socketio_exporter_source_up{{instance=\"{addr_b}\"}}"
        ))?;
        let series =
            prometheus.query(&format!("websocket_connections{{instance=\"{addr_b}\"}}"))?;
        match (up.first().map(sample_value), series.len()) {
            (Some(0.0), 0) => Ok(()),
            other => Err(format!("pod-b source_up and series: {other:?}")),
        }
    });
    assert_eq!(
        result_by(
            &instant(&prometheus, per_namespace, &vars, &all),
            "namespace"
        ),
        expected_a,
        "only what is known: pod-a's counts"
    );
    let only_b = Selection::all(range).pick("instance", &[&addr_b]);
    assert_eq!(value_of("Connections now", &only_b), None, "No data, not 0");
    assert_eq!(
        value_of("Engine.IO clients now", &only_b),
        None,
        "No data, not 0"
    );
    assert_eq!(value_of("Sources down", &all), Some(1.0));
    assert_eq!(value_of("Source up", &only_b), Some(0.0), "shown as down");
    let pending = format!("SocketIOExporterSourceDown {addr_b} pending");
    eventually(Duration::from_secs(5), || {
        let active = active_alerts(&prometheus);
        if active == BTreeSet::from([pending.clone()]) {
            Ok(())
        } else {
            Err(format!("active alerts {active:?}, expected {pending}"))
        }
    });

    // pod-a's exporter dies: now nothing is known, and the total says No data.
    pushing.store(false, Ordering::Relaxed);
    pusher.join().expect("the event pusher posted every batch");
    drop(exporter_a);
    eventually(Duration::from_secs(10), || {
        let up = prometheus.query(&format!("up{{instance=\"{addr_a}\"}}"))?;
        match up.first().map(sample_value) {
            Some(0.0) => Ok(()),
            other => Err(format!("up of pod-a's exporter: {other:?}")),
        }
    });
    assert_eq!(value_of("Connections now", &all), None, "No data, not 0");
    assert_eq!(value_of("Exporters down", &all), Some(1.0));
    let down = format!("SocketIOExporterDown {addr_a} pending");
    eventually(Duration::from_secs(5), || {
        let active = active_alerts(&prometheus);
        if active.contains(&down) {
            Ok(())
        } else {
            Err(format!("active alerts {active:?}, expected {down}"))
        }
    });
    let before = rule_evaluations(&prometheus);
    eventually(Duration::from_secs(5), || {
        rules_evaluated_cleanly(&prometheus, &before)
    });
    let logs = prometheus.logs();
    assert!(!logs.contains("level=error"), "{logs}");
    drop(exporter_b);
    eprintln!("dashboard live test took {:?}", began.elapsed());
}

/// The fenced block that follows `<!-- tested: NAME -->` in the docs.
fn tested_snippet(docs: &str, name: &str) -> String {
    let marker = format!("<!-- tested: {name} -->");
    let after = &docs[docs
        .find(&marker)
        .unwrap_or_else(|| panic!("{DOCS} lacks {marker}"))..];
    let start = after
        .find("```yaml\n")
        .expect("a yaml block after the marker")
        + 8;
    let end = after[start..].find("```").expect("the block ends") + start;
    after[start..end].to_owned()
}

#[test]
fn without_honor_labels_the_documented_metric_relabelings_restore_the_socketio_namespace() {
    let recipe = pod_monitor_snippet("metric-relabelings");
    assert!(recipe.contains("metric_relabel_configs:"), "{recipe}");

    let app = App::start("pod-r");
    let mut clients = Clients::start();
    clients.connect("r1", &app, &["/", "/chat"]);
    clients.connect("r2", &app, &["/chat"]);
    let exporter = Exporter::start(&admin_config(&app.url(), "server_id = \"pod-r\""));
    let prometheus = Prometheus::start(&prometheus_config(&[
        (JOB, &[exporter.addr], &recipe),
        ("without-recipe", &[exporter.addr], ""),
    ]));

    let dashboard = load_dashboard();
    let vars = variables(&dashboard);
    let per_namespace = target(&targets(&dashboard), "Connections per namespace", "A").clone();
    let only_job = |job: &str| Selection::all(Duration::from_secs(60)).pick("job", &[job]);
    let expected = counts(&[
        ("/", 1),
        ("/chat", 2),
        ("/notifications", 0),
        (WEIRD_NAMESPACE, 0),
    ]);
    eventually(Duration::from_secs(20), || {
        let shown = result_by(
            &instant(&prometheus, &per_namespace, &vars, &only_job(JOB)),
            "namespace",
        );
        if shown == expected {
            Ok(())
        } else {
            Err(format!("with the recipe: {shown:?} != {expected:?}"))
        }
    });
    // Without it, the clash: every series has the Kubernetes namespace.
    eventually(Duration::from_secs(10), || {
        let without = result_by(
            &instant(
                &prometheus,
                &per_namespace,
                &vars,
                &only_job("without-recipe"),
            ),
            "namespace",
        );
        if without == counts(&[(KUBERNETES_NAMESPACE, 3)]) {
            Ok(())
        } else {
            Err(format!("without the recipe: {without:?}"))
        }
    });
    let series = prometheus
        .query(&format!(
            "websocket_connections{{job=\"{JOB}\", namespace=\"/chat\"}}"
        ))
        .unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(
        series[0]["metric"]["kubernetes_namespace"],
        KUBERNETES_NAMESPACE
    );
    assert!(
        series[0]["metric"].get("exported_namespace").is_none(),
        "{series:?}"
    );
    // Series without a namespace of their own keep the Kubernetes one.
    let up = prometheus
        .query(&format!("socketio_exporter_source_up{{job=\"{JOB}\"}}"))
        .unwrap();
    assert_eq!(up[0]["metric"]["namespace"], KUBERNETES_NAMESPACE, "{up:?}");
}
