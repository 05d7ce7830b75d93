//! The dashboard's JSON: it imports through the UI and provisions from a file, every
//! variable and panel is wired to the datasource and the filters, and the provisioning
//! files point at the shipped paths.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::grafana::{
    Selection, Target, all_panels, interpolate, load_dashboard, parse_label_values, targets,
    variables,
};
use super::queries::expr_problems;
use super::{DASHBOARD, read};

const DASHBOARD_PROVIDER: &str = "grafana/provisioning/dashboards/socketio-exporter.yaml";
const DATASOURCE_PROVIDER: &str = "grafana/provisioning/datasources/prometheus.yaml";

/// The dashboard's uid: links and provisioning upserts depend on it, so it never changes.
const UID: &str = "socketio-exporter";

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
    "pps",
    "Bps",
];

fn datasource_ref() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// Everything the dashboard must satisfy to import through the UI and provision from a file.
fn dashboard_problems(text: &str) -> Vec<String> {
    let dashboard: Value = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    let mut problems = Vec::new();
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
    problems.extend(variable_problems(&dashboard));
    problems.extend(panels_problems(&dashboard));
    problems
}

/// The datasource variable, and a multi-value `label_values` variable per filter.
fn variable_problems(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
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
    problems
}

/// Ids, titles and layout of every panel, and what each panel that is not a row shows.
fn panels_problems(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("");
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
        if !titles.insert(title) {
            problems.push(format!("{at}: duplicate title"));
        }
        problems.extend(panel_problems(panel, title, &at));
    }
    problems
}

/// A panel's description, datasource, unit, "no value" text and targets.
fn panel_problems(panel: &Value, title: &str, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
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
        problems.extend(expr_problems(&Target::of(title, t)));
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

fn edit_variable(d: &mut Value, name: &str, edit: impl Fn(&mut Value)) {
    for v in d["templating"]["list"].as_array_mut().unwrap() {
        if v["name"] == name {
            edit(v);
        }
    }
}

/// A way to break a dashboard.
type Break = fn(&mut Value);

/// Ways to break the dashboard, each with a problem the checks must report for it.
const BREAKS: &[(&str, Break)] = &[
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
        edit_variable(d, "namespace", |v| v["multi"] = json!(false))
    }),
    ("variable server: allValue", |d| {
        edit_variable(d, "server", |v| v["allValue"] = json!(".+"))
    }),
];

#[test]
fn the_dashboard_checks_catch_what_they_promise() {
    let good = load_dashboard();
    for (expected, edit) in BREAKS {
        let mut broken = good.clone();
        edit(&mut broken);
        let problems = dashboard_problems(&serde_json::to_string(&broken).unwrap()).join("\n");
        assert!(
            problems.contains(expected),
            "a dashboard broken for {expected:?} passed the checks; problems: {problems}"
        );
    }
}

/// Asserts that the file at `path` holds each of `lines`.
fn assert_holds(path: &str, lines: &[&str]) {
    let text = read(path);
    for line in lines {
        assert!(text.contains(line), "{path} lacks {line:?}:\n{text}");
    }
}

#[test]
fn provisioning_files_point_at_the_shipped_paths() {
    assert_holds(
        DASHBOARD_PROVIDER,
        &[
            "apiVersion: 1",
            "type: file",
            "path: /var/lib/grafana/dashboards/socketio-exporter",
        ],
    );
    assert_holds(
        DATASOURCE_PROVIDER,
        &[
            "apiVersion: 1",
            "type: prometheus",
            "uid: prometheus",
            "url: http://prometheus:9090",
        ],
    );
}
