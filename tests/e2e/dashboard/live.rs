//! Against a real Prometheus scraping the real exporter: every panel and variable of the
//! dashboard returns data, what is unknown shows as No data rather than 0, the rules
//! evaluate cleanly on the real label sets, and the documented PodMonitor settings keep
//! the Socket.IO `namespace` label.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::grafana::{
    Selection, Target, Variable, interpolate, load_dashboard, target, targets, variables,
};
use super::{RULES, SCRAPE_INTERVAL, read, repo};
use crate::support::prometheus::{sample_value, unix_now};
use crate::support::{
    App, Clients, Exporter, Prometheus, WEIRD_NAMESPACE, admin_config, eventually, post,
};

const DOCS: &str = "docs/dashboard-and-alerts.md";

/// Panel targets (panel title, refId) that read only metrics the exporter does not export
/// yet. For them the live test asserts that Prometheus accepts the query and that it
/// returns nothing, and the promtool test that it parses. Remove an entry once its metric
/// exists: the live test fails, naming the entry, as soon as one of them returns data.
/// Empty now: every panel is exercised.
const NOT_YET_EXERCISED: &[(&str, &str)] = &[];

/// The scrape job the alert rules select with `up{job="socketio-exporter"}`.
const JOB: &str = "socketio-exporter";
/// The Kubernetes namespace the test attaches as a target label, as service discovery does.
const KUBERNETES_NAMESPACE: &str = "apps";

/// Connections per Socket.IO namespace of pod-a's clients, then of both pods' clients.
const POD_A_COUNTS: &[(&str, u64)] = &[
    ("/", 2),
    ("/chat", 3),
    ("/notifications", 1),
    ("/tenant-1", 1),
    (WEIRD_NAMESPACE, 0),
];
const BOTH_PODS_COUNTS: &[(&str, u64)] = &[
    ("/", 3),
    ("/chat", 4),
    ("/notifications", 2),
    ("/tenant-1", 1),
    (WEIRD_NAMESPACE, 0),
];

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

/// The dashboard's queries run against a Prometheus, as Grafana runs them.
struct Grafana<'a> {
    prometheus: &'a Prometheus,
    vars: Vec<Variable>,
    targets: Vec<Target>,
}

impl<'a> Grafana<'a> {
    fn new(prometheus: &'a Prometheus) -> Grafana<'a> {
        let dashboard = load_dashboard();
        Grafana {
            prometheus,
            vars: variables(&dashboard),
            targets: targets(&dashboard),
        }
    }

    /// Runs a target as Grafana would: an instant query now, or a range query over the
    /// test so far.
    fn run(
        &self,
        target: &Target,
        selection: &Selection,
        since: f64,
    ) -> Result<Vec<Value>, String> {
        let expr = interpolate(&target.expr, &self.vars, selection)?;
        let now = unix_now();
        if target.instant {
            self.prometheus.query_at(&expr, now)
        } else {
            self.prometheus
                .query_range(&expr, since, now, SCRAPE_INTERVAL)
        }
        .map_err(|e| format!("{expr}: {e}"))
    }

    /// Target A of `panel`, as an instant query now.
    fn instant(&self, panel: &str, selection: &Selection) -> Vec<Value> {
        let target = target(&self.targets, panel, "A");
        let expr = interpolate(&target.expr, &self.vars, selection).unwrap();
        self.prometheus
            .query(&expr)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The one value a stat panel shows; None is No data.
    fn value(&self, panel: &str, selection: &Selection) -> Option<f64> {
        let result = self.instant(panel, selection);
        assert!(result.len() <= 1, "{panel}: one value expected: {result:?}");
        result.first().map(sample_value)
    }

    /// What "Connections per namespace" shows, by Socket.IO namespace.
    fn per_namespace(&self, selection: &Selection) -> BTreeMap<String, f64> {
        result_by(
            &self.instant("Connections per namespace", selection),
            "namespace",
        )
    }
}

/// Alerts Prometheus has pending or firing, as `alertname instance state` strings.
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

/// Waits until the active alerts are as `expected` describes them.
fn wait_for_alerts(
    prometheus: &Prometheus,
    expected: &str,
    is_expected: impl Fn(&BTreeSet<String>) -> bool,
) {
    eventually(Duration::from_secs(5), || {
        let active = active_alerts(prometheus);
        if is_expected(&active) {
            Ok(())
        } else {
            Err(format!("active alerts {active:?}, expected {expected}"))
        }
    });
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

/// Waits until every rule group has been evaluated again, each rule without error.
fn wait_for_clean_evaluation(prometheus: &Prometheus) {
    let before = rule_evaluations(prometheus);
    eventually(Duration::from_secs(5), || {
        rules_evaluated_cleanly(prometheus, &before)
    });
}

/// The label clash resolved: `namespace` is the Socket.IO namespace on the connection
/// series (one per exporter), and the Kubernetes one moved to `kubernetes_namespace`.
fn assert_socketio_namespace_kept(prometheus: &Prometheus, exporters: usize) {
    let series = prometheus
        .query(&format!(
            "websocket_connections{{job=\"{JOB}\", namespace=\"/chat\"}}"
        ))
        .unwrap();
    assert_eq!(series.len(), exporters, "{series:?}");
    for s in &series {
        assert_eq!(
            s["metric"]["kubernetes_namespace"], KUBERNETES_NAMESPACE,
            "{s}"
        );
        assert!(s["metric"].get("exported_namespace").is_none(), "{s}");
    }
}

// The two-pod test, phase by phase.

/// The clients of both pods, checked against the apps' own counts.
fn connect_clients(app_a: &App, app_b: &App) -> Clients {
    let mut clients = Clients::start();
    clients.connect("a1", app_a, &["/", "/chat"]);
    clients.connect("a2", app_a, &["/chat", "/notifications"]);
    clients.connect("a3", app_a, &["/", "/chat", "/tenant-1"]);
    clients.connect("b1", app_b, &["/", "/chat"]);
    clients.connect("b2", app_b, &["/notifications"]);
    assert_eq!(
        add(
            &app_a.truth().without_admin(),
            &app_b.truth().without_admin()
        ),
        counts(BOTH_PODS_COUNTS),
        "the app's own counts for the clients above"
    );
    clients
}

/// Connection events posted to pod-a's push source, so the drift panel has data.
struct Pusher {
    pushing: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Pusher {
    /// Starts once pod-a's admin source is up; returns once pod-a reports drift.
    fn start(exporter: &Exporter) -> Pusher {
        // Events that net to zero: they move pod-a's counts and back, and the next admin-ui
        // report compares with them (drift 0) without changing what the panels must show.
        eventually(Duration::from_secs(10), || {
            match exporter.scrape().source_up("socketio_admin") {
                Some(1.0) => Ok(()),
                other => Err(format!("pod-a's admin source up: {other:?}")),
            }
        });
        // Events keep coming with quiet spells between them: admin-ui's reports are
        // unordered, so only those at least a second away from any event are compared.
        let pushing = Arc::new(AtomicBool::new(true));
        let thread = {
            let (pushing, addr) = (pushing.clone(), exporter.addr);
            std::thread::spawn(move || {
                while pushing.load(Ordering::Relaxed) {
                    let (status, body) = post(
                        &addr,
                        "/push/events",
                        &[],
                        br#"{"server_id":"pod-a","events":[{"type":"connect","namespace":"/"},{"type":"disconnect","namespace":"/"}]}"#,
                    );
                    assert_eq!(status, 202, "{body}");
                    std::thread::sleep(Duration::from_secs(3));
                }
            })
        };
        eventually(Duration::from_secs(20), || {
            let scrape = exporter.scrape();
            match scrape.series("socketio_exporter_reconcile_drift").len() {
                0 => Err(format!("no drift series yet:\n{}", scrape.text)),
                _ => Ok(()),
            }
        });
        Pusher { pushing, thread }
    }

    fn stop(self) {
        self.pushing.store(false, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the event pusher posted every batch");
    }
}

/// Waits for a few scrapes with the complete counts, so rates and histograms have samples.
fn wait_for_complete_scrapes(grafana: &Grafana<'_>) {
    let expected = counts(BOTH_PODS_COUNTS);
    eventually(Duration::from_secs(20), || {
        let scrapes = grafana.prometheus.query(&format!(
            "count_over_time(websocket_clients{{job=\"{JOB}\"}}[1m])"
        ))?;
        let scraped = result_by(&scrapes, "instance");
        if scraped.len() < 2 || scraped.values().any(|&n| n < 5.0) {
            return Err(format!("scrapes with counts so far: {scraped:?}"));
        }
        let shown = grafana.per_namespace(&Selection::all(Duration::from_secs(60)));
        if shown != expected {
            return Err(format!("per namespace {shown:?} != {expected:?}"));
        }
        Ok(())
    });
}

/// Every template variable, as Grafana asks for it, offers what the pods export.
fn assert_variable_options(grafana: &Grafana<'_>, all: &Selection, since: f64, addrs: [&str; 2]) {
    let mut options: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for v in &grafana.vars {
        let selector = interpolate(&v.selector, &grafana.vars, all).unwrap();
        let values = grafana
            .prometheus
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
    assert_eq!(options["instance"], set(&addrs));
    assert_eq!(options["server"], set(&["pod-b"]));
    assert_eq!(
        options["namespace"],
        counts(BOTH_PODS_COUNTS)
            .into_keys()
            .collect::<BTreeSet<_>>(),
        "Socket.IO namespaces, not the Kubernetes one ({KUBERNETES_NAMESPACE})"
    );
}

/// Every panel target returns data, except those NOT_YET_EXERCISED, which return none.
fn assert_every_target_answers(grafana: &Grafana<'_>, all: &Selection, since: f64) {
    for t in &grafana.targets {
        let result = grafana
            .run(t, all, since)
            .unwrap_or_else(|e| panic!("panel {:?} target {}: {e}", t.panel, t.ref_id));
        if NOT_YET_EXERCISED.iter().any(|&entry| t.is(entry)) {
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
                interpolate(&t.expr, &grafana.vars, all).unwrap()
            );
        }
    }
}

/// The values users read, with both pods up.
fn assert_values_users_read(grafana: &Grafana<'_>, all: &Selection, [addr_a, addr_b]: [&str; 2]) {
    let expected = counts(BOTH_PODS_COUNTS);
    let total: f64 = expected.values().sum();
    assert_eq!(grafana.value("Connections now", all), Some(total));
    // Three clients on pod-a and two on pod-b, plus each exporter's own connection.
    assert_eq!(grafana.value("Engine.IO clients now", all), Some(7.0));
    // Every client is on WebSocket: long-polling shows a known 0, not No data.
    assert_eq!(grafana.value("Transport split", all), Some(0.0));
    assert_eq!(
        grafana.value("Namespaces", all),
        Some(expected.len() as f64)
    );
    assert_eq!(grafana.value("Sources down", all), Some(0.0));
    assert_eq!(grafana.value("Exporters down", all), Some(0.0));
    let top = grafana.instant("Top namespaces", all);
    assert_eq!(
        top[0]["metric"]["namespace"], "/chat",
        "busiest first: {top:?}"
    );
    let per_pod: BTreeMap<String, f64> = grafana
        .instant("Connections per pod / server", all)
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
}

/// The rules: the recording rule matches the known counts, every rule evaluates without
/// error on the real label sets, and nothing is pending in a healthy setup.
fn assert_rules_healthy(prometheus: &Prometheus) {
    let expected = counts(BOTH_PODS_COUNTS);
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
    wait_for_clean_evaluation(prometheus);
    assert_eq!(
        active_alerts(prometheus),
        BTreeSet::new(),
        "healthy: no alert pending"
    );
}

/// After pod-b's app died: its counts are unknown, and no panel shows them as 0.
fn assert_pod_b_unknown(grafana: &Grafana<'_>, range: Duration, addr_b: &str) {
    let prometheus = grafana.prometheus;
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
    let all = Selection::all(range);
    assert_eq!(
        grafana.per_namespace(&all),
        counts(POD_A_COUNTS),
        "only what is known: pod-a's counts"
    );
    let only_b = Selection::all(range).pick("instance", &[addr_b]);
    assert_eq!(
        grafana.value("Connections now", &only_b),
        None,
        "No data, not 0"
    );
    assert_eq!(
        grafana.value("Engine.IO clients now", &only_b),
        None,
        "No data, not 0"
    );
    assert_eq!(grafana.value("Sources down", &all), Some(1.0));
    assert_eq!(
        grafana.value("Source up", &only_b),
        Some(0.0),
        "shown as down"
    );
    let pending = format!("SocketIOExporterSourceDown {addr_b} pending");
    wait_for_alerts(prometheus, &pending, |active| {
        *active == BTreeSet::from([pending.clone()])
    });
}

/// After pod-a's exporter died too: nothing is known, and the total says No data.
fn assert_pod_a_unknown(grafana: &Grafana<'_>, all: &Selection, addr_a: &str) {
    let prometheus = grafana.prometheus;
    eventually(Duration::from_secs(10), || {
        let up = prometheus.query(&format!("up{{instance=\"{addr_a}\"}}"))?;
        match up.first().map(sample_value) {
            Some(0.0) => Ok(()),
            other => Err(format!("up of pod-a's exporter: {other:?}")),
        }
    });
    assert_eq!(
        grafana.value("Connections now", all),
        None,
        "No data, not 0"
    );
    assert_eq!(grafana.value("Exporters down", all), Some(1.0));
    let down = format!("SocketIOExporterDown {addr_a} pending");
    wait_for_alerts(prometheus, &down, |active| active.contains(&down));
    wait_for_clean_evaluation(prometheus);
}

#[test]
fn every_panel_and_variable_returns_data_from_prometheus_scraping_the_real_exporter() {
    let began = Instant::now();
    // Two pods: pod-a with its sidecar (scope local), pod-b read in cluster scope, which
    // adds the `server` label.
    let app_a = App::start("pod-a");
    let app_b = App::start("pod-b");
    let _clients = connect_clients(&app_a, &app_b);
    // pod-a's sidecar also takes pushed connection events, so the drift panel has data.
    let exporter_a = Exporter::start(&admin_config(
        &app_a.url(),
        "server_id = \"pod-a\"\n\n[[sources]]\ntype = \"push\"\nserver_id = \"pod-a\"",
    ));
    let exporter_b = Exporter::start(&admin_config(&app_b.url(), "scope = \"cluster\""));
    let (addr_a, addr_b) = (exporter_a.addr.to_string(), exporter_b.addr.to_string());
    let pusher = Pusher::start(&exporter_a);

    // As on Kubernetes: the job is named by relabeling, not by the scrape config.
    let prometheus = Prometheus::start(&prometheus_config(&[(
        "kubernetes-pods",
        &[exporter_a.addr, exporter_b.addr],
        &pod_monitor_snippet("relabelings"),
    )]));
    let grafana = Grafana::new(&prometheus);
    let since = unix_now();
    wait_for_complete_scrapes(&grafana);
    let range = Duration::from_secs_f64(unix_now() - since);
    let all = Selection::all(range);
    assert_variable_options(&grafana, &all, since, [&addr_a, &addr_b]);
    assert_every_target_answers(&grafana, &all, since);
    assert_values_users_read(&grafana, &all, [&addr_a, &addr_b]);
    // The filters are wired: one namespace on one pod.
    let chat_on_a = Selection::all(range)
        .pick("namespace", &["/chat"])
        .pick("instance", &[&addr_a]);
    assert_eq!(grafana.per_namespace(&chat_on_a), counts(&[("/chat", 3)]));
    assert_socketio_namespace_kept(&prometheus, 2);
    assert_rules_healthy(&prometheus);

    app_b.kill();
    assert_pod_b_unknown(&grafana, range, &addr_b);

    pusher.stop();
    drop(exporter_a);
    assert_pod_a_unknown(&grafana, &all, &addr_a);
    let logs = prometheus.logs();
    assert!(!logs.contains("level=error"), "{logs}");
    drop(exporter_b);
    eprintln!("dashboard live test took {:?}", began.elapsed());
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

    let grafana = Grafana::new(&prometheus);
    let only_job = |job: &str| Selection::all(Duration::from_secs(60)).pick("job", &[job]);
    let expected = counts(&[
        ("/", 1),
        ("/chat", 2),
        ("/notifications", 0),
        (WEIRD_NAMESPACE, 0),
    ]);
    eventually(Duration::from_secs(20), || {
        let shown = grafana.per_namespace(&only_job(JOB));
        if shown == expected {
            Ok(())
        } else {
            Err(format!("with the recipe: {shown:?} != {expected:?}"))
        }
    });
    // Without it, the clash: every series has the Kubernetes namespace (and the Socket.IO
    // namespaces, now told apart only by `exported_namespace`, are merged).
    eventually(Duration::from_secs(10), || {
        let without = grafana.per_namespace(&only_job("without-recipe"));
        if without.keys().eq([KUBERNETES_NAMESPACE]) {
            Ok(())
        } else {
            Err(format!("without the recipe: {without:?}"))
        }
    });
    assert_socketio_namespace_kept(&prometheus, 1);
    // Series without a namespace of their own keep the Kubernetes one.
    let up = prometheus
        .query(&format!("socketio_exporter_source_up{{job=\"{JOB}\"}}"))
        .unwrap();
    assert_eq!(up[0]["metric"]["namespace"], KUBERNETES_NAMESPACE, "{up:?}");
}
