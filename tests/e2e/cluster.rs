//! A Socket.IO cluster behind the Redis adapter: three real servers, one sidecar exporter
//! per server in local scope and one exporter for the whole cluster. Every admin client
//! receives every server's stats through Redis, so this is where double counting would show.
//! And a Node `cluster` on one host: workers named `host#pid`, counted as this host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dashboard::{panel_now, rules_path};
use crate::support::node_cluster::NodeCluster;
use crate::support::prometheus::sample_value;
use crate::support::redis::Redis;
use crate::support::{App, Clients, Exporter, Prometheus, Scrape, admin_config, eventually};

/// The tests' `stale_after_secs` (see `admin_config`).
const STALE_AFTER: Duration = Duration::from_secs(5);
const WITHIN: Duration = Duration::from_secs(12);

type Counts = BTreeMap<String, u64>;

fn sum(all: impl IntoIterator<Item = Counts>) -> Counts {
    let mut total = Counts::new();
    for counts in all {
        for (namespace, n) in counts {
            *total.entry(namespace).or_default() += n;
        }
    }
    total
}

/// The cluster exporter's series for one server.
fn of_server(scrape: &Scrape, server: &str) -> Counts {
    scrape
        .series("websocket_connections")
        .into_iter()
        .filter(|s| s.labels.get("server").map(String::as_str) == Some(server))
        .map(|s| (s.labels["namespace"].clone(), s.value as u64))
        .collect()
}

/// The cluster exporter's total per namespace, over servers (what `sum by (namespace)` gives).
fn total(scrape: &Scrape) -> Counts {
    let mut total = Counts::new();
    for s in scrape.series("websocket_connections") {
        *total.entry(s.labels["namespace"].clone()).or_default() += s.value as u64;
    }
    total
}

/// Starts a server behind the Redis adapter.
fn start_server(redis: &Redis, id: &str, port: u16) -> App {
    App::start_with(id, port, &["--redis", &redis.url()])
}

/// Three servers behind the Redis adapter, with clients spread over them and over several
/// namespaces.
fn start_cluster(redis: &Redis) -> (Vec<App>, Clients) {
    let ids = ["node-1", "node-2", "node-3"];
    let apps: Vec<App> = ids.iter().map(|id| start_server(redis, id, 0)).collect();
    let mut clients = Clients::start();
    let spread: [(&str, usize, &[&str]); 6] = [
        ("a", 0, &["/", "/chat"]),
        ("b", 0, &["/notifications"]),
        ("c", 1, &["/", "/chat", "/tenant-7"]),
        ("d", 1, &["/"]),
        ("e", 2, &["/chat", "/notifications"]),
        ("f", 2, &["/", "/tenant-7"]),
    ];
    for (id, app, namespaces) in spread {
        clients.connect(id, &apps[app], namespaces);
    }
    (apps, clients)
}

#[test]
fn redis_cluster_is_counted_exactly_once_in_local_and_cluster_scope() {
    let redis = Redis::start();
    let start = |id: &str, port: u16| start_server(&redis, id, port);
    let (mut apps, mut clients) = start_cluster(&redis);

    // One sidecar per server, each connected to its own server, and one cluster exporter.
    let sidecars: Vec<Exporter> = apps
        .iter()
        .map(|app| {
            Exporter::start(&admin_config(
                &app.url(),
                &format!("server_id = \"{}\"", app.server_id),
            ))
        })
        .collect();
    let cluster = Exporter::start(&admin_config(&apps[0].url(), "scope = \"cluster\""));

    let truths =
        |apps: &[App]| -> Vec<Counts> { apps.iter().map(|a| a.truth().without_admin()).collect() };
    let exact = |apps: &[App], sidecars: &[Exporter]| {
        let truth = truths(apps);
        let shown: Vec<Counts> = sidecars.iter().map(|e| e.scrape().connections()).collect();
        if shown != truth {
            return Err(format!("sidecars {shown:?} != servers {truth:?}"));
        }
        let scrape = cluster.scrape();
        for (app, counts) in apps.iter().zip(&truth) {
            let seen = of_server(&scrape, &app.server_id);
            if &seen != counts {
                return Err(format!(
                    "cluster exporter's {} {seen:?} != {counts:?}",
                    app.server_id
                ));
            }
        }
        if total(&scrape) != sum(truth.clone()) || sum(shown) != sum(truth) {
            return Err("sums differ".into());
        }
        Ok(())
    };
    eventually(WITHIN, || exact(&apps, &sidecars));
    let expected: Counts = [
        ("/", 4),
        ("/chat", 3),
        ("/notifications", 2),
        ("/tenant-7", 2),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c))
    .chain([("/we\"ird\\ns".to_owned(), 0)])
    .collect();
    assert_eq!(
        total(&cluster.scrape()),
        expected,
        "the clients above, counted once"
    );

    // node-3 dies without a goodbye. The cluster exporter stays connected to node-1 and
    // sees node-3's stats stop; node-3's own sidecar loses its connection.
    let died = Instant::now();
    let port = apps[2].port;
    apps.pop().unwrap().kill();
    let mut gone_from_sidecar = None;
    let gone_from_cluster = eventually(STALE_AFTER + Duration::from_secs(4), || {
        if gone_from_sidecar.is_none()
            && sidecars[2]
                .scrape()
                .series("websocket_connections")
                .is_empty()
        {
            gone_from_sidecar = Some(died.elapsed());
        }
        let scrape = cluster.scrape();
        match (of_server(&scrape, "node-3").is_empty(), gone_from_sidecar) {
            (true, Some(_)) => Ok(died.elapsed()),
            other => Err(format!("node-3 gone from cluster, sidecar: {other:?}")),
        }
    });
    println!(
        "node death to series gone: sidecar {:?}, cluster exporter {gone_from_cluster:?}",
        gone_from_sidecar.unwrap()
    );
    assert_eq!(sidecars[2].scrape().source_up("socketio_admin"), Some(0.0));
    // The rest stay exact.
    eventually(WITHIN, || exact(&apps, &sidecars[..2]));
    assert_eq!(cluster.scrape().source_up("socketio_admin"), Some(1.0));

    // node-3 comes back on its port; its sidecar reconnects, and the cluster sees it again.
    apps.push(start("node-3", port));
    clients.connect("g", &apps[2], &["/chat"]);
    eventually(Duration::from_secs(20), || exact(&apps, &sidecars));
}

/// A Prometheus that scrapes `targets` every second as the job the shipped rules expect,
/// keeping the exporter's `namespace` label, and evaluates the shipped rules.
fn prometheus_config(targets: &[SocketAddr]) -> String {
    let targets: Vec<String> = targets.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\nscrape_configs:\n  - job_name: socketio-exporter\n    \
         honor_labels: true\n    static_configs:\n      - targets: [{}]\n",
        rules_path().display(),
        targets.join(", ")
    )
}

/// An instant query's result by namespace.
fn by_namespace(prometheus: &Prometheus, expr: &str) -> Result<Counts, String> {
    Ok(prometheus
        .query(expr)?
        .iter()
        .map(|s| {
            let namespace = s["metric"]["namespace"].as_str().unwrap_or("").to_owned();
            (namespace, sample_value(s) as u64)
        })
        .collect())
}

/// The recording rule, the dashboard's totals and the naive sum, against the truth.
fn replicas_counted_once(
    prometheus: &Prometheus,
    truth: &Counts,
    replicas: u64,
) -> Result<(), String> {
    let recorded = by_namespace(
        prometheus,
        "environment_namespace:websocket_connections:sum{environment=\"test\"}",
    )?;
    if &recorded != truth {
        return Err(format!("recorded {recorded:?} != {truth:?}"));
    }
    let panel = panel_now(prometheus, "Connections per namespace")?;
    let shown: Counts = (panel.iter())
        .map(|s| {
            (
                s["metric"]["namespace"].as_str().unwrap().to_owned(),
                sample_value(s) as u64,
            )
        })
        .collect();
    if &shown != truth {
        return Err(format!("dashboard {shown:?} != {truth:?}"));
    }
    let total: u64 = truth.values().sum();
    let now = panel_now(prometheus, "Connections now")?;
    if now.first().map(sample_value) != Some(total as f64) {
        return Err(format!("Connections now {now:?} != {total}"));
    }
    // What a sum without the merge would say: every replica's copy.
    let naive = by_namespace(prometheus, "sum by (namespace) (websocket_connections)")?;
    let doubled: Counts = truth
        .iter()
        .map(|(n, c)| (n.clone(), c * replicas))
        .collect();
    if naive != doubled {
        return Err(format!("naive sum {naive:?} != {doubled:?}"));
    }
    Ok(())
}

/// Alerts pending or firing, as `alertname instance` strings.
fn alerts(prometheus: &Prometheus) -> BTreeSet<String> {
    (prometheus.query("ALERTS").unwrap().iter())
        .map(|a| {
            let label = |name: &str| a["metric"][name].as_str().unwrap_or("").to_owned();
            format!("{} {}", label("alertname"), label("instance"))
        })
        .collect()
}

#[test]
fn two_cluster_scope_replicas_are_counted_once_and_one_down_is_no_alert() {
    let redis = Redis::start();
    let (apps, _clients) = start_cluster(&redis);
    let truth = sum(apps.iter().map(|a| a.truth().without_admin()));
    // Two replicas of the cluster exporter, each connected to a different server, as
    // behind a Service.
    let replicas: Vec<Exporter> = (apps[..2].iter())
        .map(|app| Exporter::start(&admin_config(&app.url(), "scope = \"cluster\"")))
        .collect();
    let addrs: Vec<SocketAddr> = replicas.iter().map(|e| e.addr).collect();
    let prometheus = Prometheus::start(&prometheus_config(&addrs));
    eventually(Duration::from_secs(20), || {
        replicas_counted_once(&prometheus, &truth, 2)
    });

    // One replica goes away: the totals stay exact, and nothing alerts.
    let mut replicas = replicas.into_iter();
    drop(replicas.next());
    let down = format!("up{{instance=\"{}\"}}", addrs[0]);
    eventually(Duration::from_secs(10), || {
        match prometheus.query(&down)?.first().map(sample_value) {
            Some(0.0) => replicas_counted_once(&prometheus, &truth, 1),
            other => Err(format!("{down}: {other:?}")),
        }
    });
    // Three more evaluations with the replica down: still no alert, not even pending.
    let since = Instant::now();
    eventually(Duration::from_secs(10), || match alerts(&prometheus) {
        active if !active.is_empty() => panic!("alerts with one replica down: {active:?}"),
        _ if since.elapsed() < Duration::from_secs(3) => Err("waiting".to_owned()),
        _ => Ok(()),
    });

    // The other one goes too: now the counts are unknown, and that alerts.
    drop(replicas.next());
    let expected = BTreeSet::from([
        format!("SocketIOExporterDown {}", addrs[0]),
        format!("SocketIOExporterDown {}", addrs[1]),
    ]);
    eventually(Duration::from_secs(10), || match alerts(&prometheus) {
        active if active == expected => Ok(()),
        active => Err(format!("alerts {active:?} != {expected:?}")),
    });
}

#[test]
fn node_cluster_workers_add_up_to_this_host_and_a_reforked_worker_is_exact_within_stale_after() {
    let redis = Redis::start();
    let cluster = NodeCluster::start(3, &redis.url());
    // A sidecar as shipped: local scope, its own server id the hostname, like admin-ui's.
    let exporter = Exporter::start(&admin_config(&cluster.url(), ""));
    let mut clients = Clients::start();
    // The primary hands connections to the workers in turn.
    for i in 0..9 {
        let namespaces: &[&str] = if i % 2 == 0 {
            &["/", "/chat"]
        } else {
            &["/", "/tenant-3"]
        };
        clients.connect_url(&format!("c{i}"), &cluster.url(), namespaces);
    }
    let exact = || {
        let truth = cluster.truth().total.without_admin();
        let shown = exporter.scrape().connections();
        if shown == truth {
            Ok(())
        } else {
            Err(format!("exporter {shown:?} != the workers' sum {truth:?}"))
        }
    };
    eventually(WITHIN, exact);
    let truth = cluster.truth();
    assert_eq!(truth.total.namespaces["/"], 9, "every client, counted once");
    let busy = |w: &Counts| w.get("/").copied().unwrap_or(0) > 0;
    assert!(
        truth.workers.values().filter(|w| busy(w)).count() >= 2,
        "clients on several workers: {truth:?}"
    );
    let scrape = exporter.scrape();
    assert!(
        scrape
            .series("websocket_connections")
            .iter()
            .all(|s| !s.labels.contains_key("server")),
        "local scope: one host, no server label"
    );
    assert_eq!(scrape.source_up("socketio_admin"), Some(1.0));

    // A worker with clients, not the one the exporter's admin client is on, is killed
    // and forked again. Its last stats count until they are stale_after_secs old.
    let (&victim, _) = truth
        .workers
        .iter()
        .find(|(_, w)| busy(w) && w.get("/admin").copied().unwrap_or(0) == 0)
        .expect("a busy worker without the exporter's admin client");
    let killed = Instant::now();
    let forked = cluster.kill_worker(victim);
    let refork = killed.elapsed();
    eventually(STALE_AFTER + Duration::from_secs(3), exact);
    let to_exact = killed.elapsed();
    println!(
        "worker {victim} killed, {forked} forked after {refork:?}; exact again after {to_exact:?}"
    );
    // stale_after_secs from the worker's last stats, plus at most a sync interval (1 s).
    assert!(
        to_exact <= STALE_AFTER + Duration::from_secs(1),
        "{to_exact:?}"
    );
    assert_eq!(exporter.scrape().source_up("socketio_admin"), Some(1.0));

    // The new worker counts too.
    for i in 9..15 {
        clients.connect_url(&format!("c{i}"), &cluster.url(), &["/notifications"]);
    }
    eventually(WITHIN, exact);
    let truth = cluster.truth();
    assert!(
        truth
            .workers
            .get(&forked)
            .is_some_and(|w| w.get("/notifications").copied().unwrap_or(0) > 0),
        "the forked worker has clients: {truth:?}"
    );
}
