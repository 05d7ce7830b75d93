use super::*;
use crate::namespaces::OVERFLOW_NAMESPACE;
use crate::update::MAX_COUNT;

const STALE: Duration = Duration::from_secs(10);
const EPOCH: SystemTime = SystemTime::UNIX_EPOCH;

fn report(server_id: &str, clients: Option<u64>, namespaces: &[(&str, u64)]) -> Event {
    Event::Counts(ServerCounts {
        server_id: Some(server_id.into()),
        clients,
        namespaces: namespaces
            .iter()
            .map(|(n, c)| (n.to_string(), *c))
            .collect(),
        age: Duration::ZERO,
    })
}

fn delta(server_id: &str, namespace: &str, change: i64) -> Delta {
    Delta {
        server_id: Some(server_id.into()),
        namespace: namespace.into(),
        change,
    }
}

fn source(name: &str, scope: Scope) -> SourceInput {
    let own_server_id = match &scope {
        Scope::Local { server_id } => server_id.clone(),
        Scope::Cluster => "this-host".into(),
    };
    let rules = NamespaceRules {
        groups: Vec::new(),
        max: 1000,
    };
    SourceInput::empty(name.into(), scope, own_server_id, rules)
}

fn inputs(sources: Vec<SourceInput>) -> Inputs {
    Inputs {
        sources,
        stale_after: STALE,
    }
}

/// One connected source.
fn connected(scope: Scope, t0: Instant) -> Inputs {
    let mut inputs = inputs(vec![source("admin", scope)]);
    inputs.apply(0, Event::Connected, t0, EPOCH);
    inputs
}

fn local(id: &str) -> Scope {
    Scope::Local {
        server_id: id.into(),
    }
}

fn counts(snapshot: &Snapshot) -> Vec<(String, Option<String>, u64)> {
    snapshot
        .connections
        .iter()
        .map(|c| (c.namespace.clone(), c.server.clone(), c.sockets))
        .collect()
}

fn row(ns: &str, server: Option<&str>, n: u64) -> (String, Option<String>, u64) {
    (ns.into(), server.map(Into::into), n)
}

#[tokio::test(start_paused = true)]
async fn live_report_is_exported_exactly_including_zero() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(
        0,
        report(
            "pod-a",
            Some(3),
            &[("/", 2), ("/chat", 1), ("/notifications", 0)],
        ),
        t0,
        EPOCH,
    );
    let snap = reconcile("prod", &inputs, t0);
    assert_eq!(
        counts(&snap),
        [
            row("/", None, 2),
            row("/chat", None, 1),
            row("/notifications", None, 0)
        ]
    );
    assert_eq!(
        snap.clients,
        [Clients {
            server: None,
            clients: 3
        }]
    );
    assert_eq!(snap.sources[0].health, Health::Up);
    assert_eq!(snap.sources[0].last_success, Some(EPOCH));
}

#[tokio::test(start_paused = true)]
async fn down_source_exports_no_series_not_zero() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, report("pod-a", Some(1), &[("/", 1)]), t0, EPOCH);
    inputs.apply(0, Event::Down(Reason::Closed), t0, EPOCH);
    let snap = reconcile("prod", &inputs, t0);
    assert!(snap.connections.is_empty());
    assert!(snap.clients.is_empty());
    assert_eq!(snap.sources[0].health, Health::Down(Reason::Closed));
    // The last success is still known: its age is what dashboards show.
    assert_eq!(snap.sources[0].last_success, Some(EPOCH));
}

#[tokio::test(start_paused = true)]
async fn silent_server_leaves_after_stale_after() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, report("pod-a", None, &[("/", 4)]), t0, EPOCH);
    let at_limit = reconcile("prod", &inputs, t0 + STALE);
    assert_eq!(counts(&at_limit), [row("/", None, 4)]);
    let after = reconcile("prod", &inputs, t0 + STALE + Duration::from_millis(1));
    assert!(after.connections.is_empty());
    assert_eq!(after.sources[0].health, Health::Down(Reason::StatsTimeout));
}

#[tokio::test(start_paused = true)]
async fn old_reports_are_stale_on_arrival_and_never_replace_newer_ones() {
    let t0 = Instant::now() + Duration::from_secs(60);
    let mut inputs = connected(local("pod-a"), t0);
    let aged = |n: u64, age: u64| {
        Event::Counts(ServerCounts {
            server_id: None,
            clients: None,
            namespaces: vec![("/".into(), n)],
            age: Duration::from_secs(age),
        })
    };
    inputs.apply(0, aged(1, 2), t0, EPOCH);
    inputs.apply(0, aged(9, 5), t0, EPOCH);
    assert_eq!(counts(&reconcile("prod", &inputs, t0)), [row("/", None, 1)]);
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, aged(7, 11), t0, EPOCH);
    assert!(reconcile("prod", &inputs, t0).connections.is_empty());
}

#[tokio::test(start_paused = true)]
async fn namespace_missing_from_latest_report_leaves_output() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(
        0,
        report("pod-a", None, &[("/", 1), ("/tenant-1", 1)]),
        t0,
        EPOCH,
    );
    let t1 = t0 + Duration::from_secs(2);
    inputs.apply(0, report("pod-a", None, &[("/", 1)]), t1, EPOCH);
    assert_eq!(counts(&reconcile("prod", &inputs, t1)), [row("/", None, 1)]);
}

#[tokio::test(start_paused = true)]
async fn local_scope_keeps_own_server_and_its_workers_only() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    for (id, n) in [("pod-a#1", 1), ("pod-a#2", 2), ("pod-b", 100)] {
        inputs.apply(0, report(id, Some(n), &[("/chat", n)]), t0, EPOCH);
    }
    let snap = reconcile("prod", &inputs, t0);
    assert_eq!(counts(&snap), [row("/chat", None, 3)]);
    assert_eq!(
        snap.clients,
        [Clients {
            server: None,
            clients: 3
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn cluster_scope_labels_every_server() {
    let t0 = Instant::now();
    let mut inputs = connected(Scope::Cluster, t0);
    inputs.apply(0, report("b", Some(2), &[("/", 2)]), t0, EPOCH);
    inputs.apply(
        0,
        report("a", Some(1), &[("/", 1), ("/chat", 1)]),
        t0,
        EPOCH,
    );
    let snap = reconcile("prod", &inputs, t0);
    assert_eq!(
        counts(&snap),
        [
            row("/", Some("a"), 1),
            row("/", Some("b"), 2),
            row("/chat", Some("a"), 1)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn foreign_server_ids_are_reported_after_stale_after() {
    let t0 = Instant::now();
    let mut inputs = connected(local("not-this-one"), t0);
    inputs.apply(0, report("pod-b", None, &[("/", 5)]), t0, EPOCH);
    assert_eq!(
        reconcile("prod", &inputs, t0).sources[0].health,
        Health::Pending
    );
    let later = t0 + STALE + Duration::from_secs(1);
    inputs.apply(0, report("pod-b", None, &[("/", 5)]), later, EPOCH);
    let snap = reconcile("prod", &inputs, later);
    assert!(snap.connections.is_empty());
    assert_eq!(
        snap.sources[0].health,
        Health::ForeignServers {
            own: "not-this-one".into(),
            seen: vec!["pod-b".into()]
        }
    );
    assert_eq!(snap.sources[0].last_success, None);
}

#[tokio::test(start_paused = true)]
async fn a_server_reported_by_two_sources_counts_once_for_the_first() {
    let t0 = Instant::now();
    let mut inputs = inputs(vec![
        source("first", Scope::Cluster),
        source("second", Scope::Cluster),
    ]);
    inputs.apply(0, report("a", None, &[("/", 1)]), t0, EPOCH);
    inputs.apply(1, report("a", None, &[("/", 9)]), t0, EPOCH);
    inputs.apply(1, report("b", None, &[("/", 2)]), t0, EPOCH);
    let snap = reconcile("prod", &inputs, t0);
    assert_eq!(
        counts(&snap),
        [row("/", Some("a"), 1), row("/", Some("b"), 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn reports_without_a_server_id_belong_to_the_own_server() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(
        0,
        Event::Counts(ServerCounts {
            server_id: None,
            clients: None,
            namespaces: vec![("/".into(), 2)],
            age: Duration::ZERO,
        }),
        t0,
        EPOCH,
    );
    assert_eq!(counts(&reconcile("prod", &inputs, t0)), [row("/", None, 2)]);
    inputs.apply(0, Event::Forget(None), t0, EPOCH);
    assert!(reconcile("prod", &inputs, t0).connections.is_empty());
}

#[tokio::test(start_paused = true)]
async fn events_move_counts_and_the_next_report_corrects_them() {
    let t0 = Instant::now();
    let mut inputs = inputs(vec![
        source("admin", local("pod-a")),
        source("push", local("pod-a")),
    ]);
    inputs.apply(
        0,
        report("pod-a", None, &[("/", 5), ("/chat", 2)]),
        t0,
        EPOCH,
    );
    let applied = inputs.apply(
        1,
        Event::Deltas(vec![
            delta("pod-a", "/", 1),
            delta("pod-a", "/chat", -1),
            delta("pod-a", "/new", 1),
        ]),
        t0,
        EPOCH,
    );
    assert_eq!(
        applied,
        Applied {
            corrected: false,
            events: 2,
            dropped: 1,
            refused: None
        },
        "no report of pod-a holds /new: its event is dropped"
    );
    assert_eq!(
        counts(&reconcile("prod", &inputs, t0)),
        [row("/", None, 6), row("/chat", None, 1)],
        "events move the gauge at once, and never create a series"
    );

    // The app lost a disconnect event: the report says / has 5.
    let t1 = t0 + Duration::from_secs(2);
    let applied = inputs.apply(
        0,
        report("pod-a", None, &[("/", 5), ("/chat", 1), ("/new", 1)]),
        t1,
        EPOCH,
    );
    assert!(applied.corrected);
    inputs.sources[0].prune(t1, STALE);
    let snap = reconcile("prod", &inputs, t1);
    assert_eq!(snap.sources[0].corrections, 1);
    assert_eq!(
        counts(&snap),
        [
            row("/", None, 5),
            row("/chat", None, 1),
            row("/new", None, 1)
        ]
    );
    let drift: Vec<_> = snap
        .drift
        .iter()
        .map(|d| (d.namespace.as_str(), d.value))
        .collect();
    assert_eq!(drift, [("/", 1), ("/chat", 0), ("/new", 1)]);

    // Without events in between, a report is no correction.
    let t2 = t1 + Duration::from_secs(2);
    assert!(
        !inputs
            .apply(0, report("pod-a", None, &[("/", 9)]), t2, EPOCH)
            .corrected
    );
}

#[tokio::test(start_paused = true)]
async fn events_without_a_current_report_are_dropped_not_counted_from_zero() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    let applied = inputs.apply(0, Event::Deltas(vec![delta("pod-a", "/", 1)]), t0, EPOCH);
    assert_eq!(applied.dropped, 1);
    assert!(reconcile("prod", &inputs, t0).connections.is_empty());
    inputs.apply(0, report("pod-a", None, &[("/", 3)]), t0, EPOCH);
    let stale = t0 + STALE + Duration::from_secs(1);
    assert_eq!(
        inputs
            .apply(0, Event::Deltas(vec![delta("pod-a", "/", 1)]), stale, EPOCH)
            .dropped,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn disconnects_below_zero_stop_at_zero() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, report("pod-a", None, &[("/", 1)]), t0, EPOCH);
    inputs.apply(
        0,
        Event::Deltas(vec![delta("pod-a", "/", -1), delta("pod-a", "/", -1)]),
        t0,
        EPOCH,
    );
    assert_eq!(counts(&reconcile("prod", &inputs, t0)), [row("/", None, 0)]);
}

#[tokio::test(start_paused = true)]
async fn folding_is_reported_per_source() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.sources[0].rules.max = 2;
    inputs.apply(
        0,
        report("pod-a", None, &[("/a", 3), ("/b", 2), ("/c", 1)]),
        t0,
        EPOCH,
    );
    let snap = reconcile("prod", &inputs, t0);
    assert_eq!(
        counts(&snap),
        [row("/a", None, 3), row(OVERFLOW_NAMESPACE, None, 3)]
    );
    assert_eq!(
        (snap.sources[0].folded, snap.sources[0].namespace_limit),
        (2, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn prune_forgets_stale_servers() {
    let t0 = Instant::now();
    let mut s = source("admin", Scope::Cluster);
    s.take_counts(
        ServerCounts {
            server_id: Some("a".into()),
            clients: None,
            namespaces: vec![],
            age: Duration::ZERO,
        },
        t0,
        EPOCH,
    )
    .unwrap();
    s.take_counts(
        ServerCounts {
            server_id: Some("b".into()),
            clients: None,
            namespaces: vec![],
            age: Duration::ZERO,
        },
        t0 + STALE,
        EPOCH,
    )
    .unwrap();
    s.prune(t0 + STALE + Duration::from_secs(1), STALE);
    assert_eq!(s.servers.keys().collect::<Vec<_>>(), ["b"]);
}

#[tokio::test(start_paused = true)]
async fn cluster_workers_with_huge_counts_never_wrap_to_a_false_zero() {
    // Issue 10, repro 2: host#1 with u64::MAX and host#2 with 1 summed to 0. The parsers
    // refuse counts over 2^53 - 1; whatever gets here anyway is summed exactly or withheld.
    let t0 = Instant::now();
    let mut inputs = connected(local("host"), t0);
    inputs.apply(0, report("host#1", None, &[("/", u64::MAX)]), t0, EPOCH);
    inputs.apply(0, report("host#2", None, &[("/", 1)]), t0, EPOCH);
    let snapshot = reconcile("prod", &inputs, t0);
    assert!(
        snapshot.connections.is_empty(),
        "a sum that does not fit is unknown, never wrapped: {:?}",
        snapshot.connections
    );
    let mut inputs = connected(local("host"), t0);
    inputs.apply(0, report("host#1", None, &[("/", MAX_COUNT)]), t0, EPOCH);
    inputs.apply(0, report("host#2", None, &[("/", MAX_COUNT)]), t0, EPOCH);
    assert_eq!(
        counts(&reconcile("prod", &inputs, t0)),
        [row("/", None, 2 * MAX_COUNT)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_report_that_cannot_be_summed_exactly_is_refused_and_the_last_good_one_stays() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.sources[0].rules.max = 2;
    inputs.apply(0, report("pod-a", None, &[("/", 1)]), t0, EPOCH);
    let applied = inputs.apply(
        0,
        report(
            "pod-a",
            None,
            &[("/a", u64::MAX), ("/b", u64::MAX), ("/c", 1)],
        ),
        t0,
        EPOCH,
    );
    assert_eq!(applied.refused, Some(Reason::InvalidReport));
    assert_eq!(counts(&reconcile("prod", &inputs, t0)), [row("/", None, 1)]);
}

#[tokio::test(start_paused = true)]
async fn the_server_cap_drops_extra_servers_but_always_keeps_a_slot_for_the_own_one() {
    let t0 = Instant::now();
    let mut cluster = connected(Scope::Cluster, t0);
    for i in 0..MAX_SERVERS {
        let applied = cluster.apply(0, report(&format!("s{i}"), None, &[("/", 1)]), t0, EPOCH);
        assert_eq!(applied.refused, None);
    }
    let applied = cluster.apply(0, report("one-too-many", None, &[("/", 1)]), t0, EPOCH);
    assert_eq!(applied.refused, Some(Reason::TooManyServers));

    let mut local = connected(local("pod-a"), t0);
    for i in 0..MAX_SERVERS {
        let big: Vec<(&str, u64)> = vec![("/", 1), ("/x", 2)];
        local.apply(0, report(&format!("foreign-{i}"), None, &big), t0, EPOCH);
    }
    assert!(
        local.sources[0]
            .servers
            .values()
            .all(|r| r.namespaces.is_empty()),
        "foreign servers are kept by id only"
    );
    let applied = local.apply(0, report("pod-a", None, &[("/", 7)]), t0, EPOCH);
    assert_eq!(applied.refused, None);
    assert_eq!(counts(&reconcile("prod", &local, t0)), [row("/", None, 7)]);
}

#[tokio::test(start_paused = true)]
async fn events_for_a_foreign_server_in_local_scope_are_dropped() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, report("pod-b", None, &[("/", 1)]), t0, EPOCH);
    let applied = inputs.apply(0, Event::Deltas(vec![delta("pod-b", "/", 1)]), t0, EPOCH);
    assert_eq!(applied.dropped, 1);
    assert!(reconcile("prod", &inputs, t0).connections.is_empty());
}
