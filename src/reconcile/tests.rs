use self::order::{HOLD, MAX_KEPT_TOTAL, SETTLE};
use super::*;
use crate::namespaces::OVERFLOW_NAMESPACE;
use crate::update::{EngineEvents, MAX_COUNT, Seq};

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
        seq: None,
        engine: None,
    })
}

fn delta(server_id: &str, namespace: &str, change: i64) -> Delta {
    Delta {
        server_id: Some(server_id.into()),
        namespace: namespace.into(),
        change,
        seq: None,
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
    Inputs::new(sources, STALE)
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
            seq: None,
            engine: None,
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
            seq: None,
            engine: None,
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
            refused: None,
            over_budget: 0,
        },
        "no report of pod-a holds /new: its event is dropped"
    );
    assert_eq!(
        counts(&reconcile("prod", &inputs, t0)),
        [row("/", None, 6), row("/chat", None, 1)],
        "events move the gauge at once, and never create a series"
    );

    // The app lost a disconnect event: the report says / has 5. Unordered events are
    // judged once the window around the report has settled.
    let t1 = t0 + Duration::from_secs(2);
    let applied = inputs.apply(
        0,
        report("pod-a", None, &[("/", 5), ("/chat", 1), ("/new", 1)]),
        t1,
        EPOCH,
    );
    assert!(!applied.corrected, "not settled yet");
    let t1 = t1 + SETTLE;
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
    assert_eq!(
        drift(&snap),
        [
            ("pod-a", "/", 1),
            ("pod-a", "/chat", 0),
            ("pod-a", "/new", 1)
        ]
    );

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
            seq: None,
            engine: None,
        },
        t0,
        EPOCH,
        &mut Budget::default(),
    )
    .unwrap();
    s.take_counts(
        ServerCounts {
            server_id: Some("b".into()),
            clients: None,
            namespaces: vec![],
            age: Duration::ZERO,
            seq: None,
            engine: None,
        },
        t0 + STALE,
        EPOCH,
        &mut Budget::default(),
    )
    .unwrap();
    s.prune(t0 + STALE + Duration::from_secs(1), STALE);
    assert_eq!(s.servers.keys().collect::<Vec<_>>(), ["b"]);
}

fn drift(snapshot: &Snapshot) -> Vec<(&str, &str, u64)> {
    snapshot
        .drift
        .iter()
        .map(|d| (d.server.as_str(), d.namespace.as_str(), d.value))
        .collect()
}

fn seq(boot: &str, n: u64) -> Option<Seq> {
    Some(Seq {
        boot: boot.into(),
        n,
    })
}

/// A version 2 report of `pod-a` that includes the events up to `n`.
fn ordered_report(boot: &str, n: u64, namespaces: &[(&str, u64)]) -> Event {
    let Event::Counts(mut counts) = report("pod-a", None, namespaces) else {
        unreachable!()
    };
    counts.seq = seq(boot, n);
    Event::Counts(counts)
}

/// Version 2 events of `pod-a` in `/`: `(seq, change)`.
fn ordered_events(boot: &str, events: &[(u64, i64)]) -> Event {
    Event::Deltas(
        events
            .iter()
            .map(|&(n, change)| Delta {
                seq: seq(boot, n),
                ..delta("pod-a", "/", change)
            })
            .collect(),
    )
}

/// A push source carrying a reporter's reports and events, as one process `b1`.
fn pushed() -> (Inputs, Instant) {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, ordered_report("b1", 10, &[("/", 5)]), t0, EPOCH);
    (inputs, t0)
}

fn root(inputs: &Inputs, now: Instant) -> u64 {
    counts(&reconcile("prod", inputs, now))
        .into_iter()
        .find(|(ns, ..)| ns == "/")
        .map(|(.., n)| n)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn ordered_events_the_report_includes_are_never_counted_twice() {
    let (mut inputs, t0) = pushed();
    // 9 and 10 are in the report; 11 is new; 11 again is a duplicate.
    inputs.apply(
        0,
        ordered_events("b1", &[(9, 1), (10, 1), (11, 1), (11, 1)]),
        t0,
        EPOCH,
    );
    assert_eq!(root(&inputs, t0), 6);
    let t1 = t0 + Duration::from_secs(2);
    assert!(
        !inputs
            .apply(0, ordered_report("b1", 11, &[("/", 6)]), t1, EPOCH)
            .corrected
    );
    assert_eq!(root(&inputs, t1), 6);
    assert_eq!(drift(&reconcile("prod", &inputs, t1)), [("pod-a", "/", 0)]);
}

#[tokio::test(start_paused = true)]
async fn an_event_that_overtakes_a_report_in_flight_is_kept_and_no_correction() {
    let (mut inputs, t0) = pushed();
    // Event 12 happened after the report of 11 was cut, but arrives before it.
    inputs.apply(0, ordered_events("b1", &[(11, 1), (12, 1)]), t0, EPOCH);
    let applied = inputs.apply(0, ordered_report("b1", 11, &[("/", 6)]), t0, EPOCH);
    assert!(!applied.corrected);
    assert_eq!(root(&inputs, t0), 7, "event 12 stays counted");
    // A report that arrives before the events it includes waits for them, then agrees.
    let applied = inputs.apply(0, ordered_report("b1", 14, &[("/", 5)]), t0, EPOCH);
    assert!(!applied.corrected);
    assert_eq!(root(&inputs, t0), 5);
    let applied = inputs.apply(
        0,
        ordered_events("b1", &[(13, -1), (14, -1), (15, 1)]),
        t0,
        EPOCH,
    );
    assert!(!applied.corrected);
    assert_eq!(
        root(&inputs, t0),
        6,
        "13 and 14 were in the report, 15 is new"
    );
    let snap = reconcile("prod", &inputs, t0);
    assert_eq!(snap.sources[0].corrections, 0);
    assert_eq!(drift(&snap), [("pod-a", "/", 0)]);
}

#[tokio::test(start_paused = true)]
async fn an_early_event_waits_for_the_gap_so_a_disconnect_never_precedes_its_connect() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, ordered_report("b1", 0, &[("/", 0)]), t0, EPOCH);
    inputs.apply(0, ordered_events("b1", &[(2, -1)]), t0, EPOCH);
    assert_eq!(root(&inputs, t0), 0);
    inputs.apply(0, ordered_events("b1", &[(1, 1)]), t0, EPOCH);
    assert_eq!(root(&inputs, t0), 0, "connect then disconnect: 0, not 1");
}

#[tokio::test(start_paused = true)]
async fn a_lost_ordered_event_is_a_correction_after_the_hold() {
    let (mut inputs, t0) = pushed();
    // Event 11 (a disconnect) is lost; 12 waits for it, then goes in without it.
    inputs.apply(0, ordered_events("b1", &[(12, 1)]), t0, EPOCH);
    assert_eq!(root(&inputs, t0), 5, "held");
    let t1 = t0 + HOLD;
    inputs.sources[0].prune(t1, STALE);
    assert_eq!(root(&inputs, t1), 6);
    // Given up on: should 11 come after all, it is not applied behind the order's back.
    inputs.apply(0, ordered_events("b1", &[(11, -1)]), t1, EPOCH);
    assert_eq!(root(&inputs, t1), 6);
    // The report includes 11: 5 - 1 + 1.
    let t2 = t0 + Duration::from_secs(2);
    assert!(
        inputs
            .apply(0, ordered_report("b1", 12, &[("/", 5)]), t2, EPOCH)
            .corrected
    );
    assert_eq!(drift(&reconcile("prod", &inputs, t2)), [("pod-a", "/", 1)]);
    // A report ahead of events that never come is judged after the hold.
    let t3 = t2 + Duration::from_secs(2);
    assert!(
        !inputs
            .apply(0, ordered_report("b1", 13, &[("/", 4)]), t3, EPOCH)
            .corrected
    );
    inputs.sources[0].prune(t3 + HOLD, STALE);
    let snap = reconcile("prod", &inputs, t3 + HOLD);
    assert_eq!(snap.sources[0].corrections, 2);
}

#[tokio::test(start_paused = true)]
async fn a_new_boot_starts_the_order_again() {
    let (mut inputs, t0) = pushed();
    inputs.apply(0, ordered_events("b1", &[(11, 1)]), t0, EPOCH);
    // The reporter restarted: its counts start over, and nothing is compared across.
    let t1 = t0 + Duration::from_secs(1);
    assert!(
        !inputs
            .apply(0, ordered_report("b2", 0, &[("/", 0)]), t1, EPOCH)
            .corrected
    );
    let applied = inputs.apply(0, ordered_events("b1", &[(12, 1)]), t1, EPOCH);
    assert_eq!(
        (applied.events, applied.dropped),
        (0, 1),
        "the old process's event"
    );
    inputs.apply(0, ordered_events("b2", &[(1, 1)]), t1, EPOCH);
    assert_eq!(root(&inputs, t1), 1);
    assert_eq!(reconcile("prod", &inputs, t1).sources[0].corrections, 0);
}

#[tokio::test(start_paused = true)]
async fn unordered_reports_are_judged_only_over_a_settled_window() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, report("pod-a", None, &[("/", 5)]), t0, EPOCH);
    inputs.apply(0, Event::Deltas(vec![delta("pod-a", "/", 1)]), t0, EPOCH);
    // An event just before the report: a race, not a correction.
    let t1 = t0 + SETTLE / 2;
    inputs.apply(0, report("pod-a", None, &[("/", 5)]), t1, EPOCH);
    inputs.sources[0].prune(t1 + SETTLE, STALE);
    // An event just after the next report: a race too.
    inputs.apply(
        0,
        Event::Deltas(vec![delta("pod-a", "/", 1)]),
        t1 + SETTLE,
        EPOCH,
    );
    let t2 = t1 + SETTLE * 3;
    inputs.apply(0, report("pod-a", None, &[("/", 5)]), t2, EPOCH);
    inputs.apply(0, Event::Deltas(vec![delta("pod-a", "/", -1)]), t2, EPOCH);
    inputs.sources[0].prune(t2 + SETTLE, STALE);
    assert_eq!(reconcile("prod", &inputs, t2).sources[0].corrections, 0);
    // Quiet on both sides: judged.
    let t3 = t2 + SETTLE * 3;
    inputs.apply(0, report("pod-a", None, &[("/", 9)]), t3, EPOCH);
    inputs.sources[0].prune(t3 + SETTLE, STALE);
    let snap = reconcile("prod", &inputs, t3 + SETTLE);
    assert_eq!(snap.sources[0].corrections, 1);
    assert_eq!(drift(&snap), [("pod-a", "/", 5)]);
}

/// Events every 3 s against reports every 2 s, phase-locked: each settled report was
/// followed by the next event before any tick judged it, and the event discarded it.
#[tokio::test(start_paused = true)]
async fn an_event_after_the_settle_window_judges_the_report_instead_of_dropping_it() {
    let t0 = Instant::now();
    let mut inputs = connected(local("pod-a"), t0);
    inputs.apply(0, report("pod-a", None, &[("/", 5)]), t0, EPOCH);
    inputs.apply(0, Event::Deltas(vec![delta("pod-a", "/", 1)]), t0, EPOCH);
    let t1 = t0 + SETTLE * 2;
    inputs.apply(0, report("pod-a", None, &[("/", 9)]), t1, EPOCH);
    // No tick in between: the next event comes just after the window.
    let t2 = t1 + SETTLE + Duration::from_millis(10);
    let applied = inputs.apply(0, Event::Deltas(vec![delta("pod-a", "/", 1)]), t2, EPOCH);
    assert!(applied.corrected);
    let snap = reconcile("prod", &inputs, t2);
    assert_eq!(snap.sources[0].corrections, 1);
    assert_eq!(drift(&snap), [("pod-a", "/", 3)]);
}

#[tokio::test(start_paused = true)]
async fn drift_is_per_server_and_leaves_with_the_server() {
    let t0 = Instant::now();
    let mut inputs = connected(Scope::Cluster, t0);
    for id in ["a", "b"] {
        inputs.apply(0, report(id, None, &[("/", 5)]), t0, EPOCH);
        inputs.apply(0, Event::Deltas(vec![delta(id, "/", 1)]), t0, EPOCH);
    }
    let t1 = t0 + Duration::from_secs(2);
    inputs.apply(0, report("a", None, &[("/", 6)]), t1, EPOCH);
    inputs.apply(0, report("b", None, &[("/", 9)]), t1, EPOCH);
    inputs.sources[0].prune(t1 + SETTLE, STALE);
    let snap = reconcile("prod", &inputs, t1 + SETTLE);
    assert_eq!(drift(&snap), [("a", "/", 0), ("b", "/", 3)]);
    // b stops reporting: its drift leaves with it.
    let t2 = t1 + Duration::from_secs(8);
    inputs.apply(0, report("a", None, &[("/", 6)]), t2, EPOCH);
    inputs.sources[0].prune(t1 + STALE + SETTLE, STALE);
    assert_eq!(drift(&reconcile("prod", &inputs, t2)), [("a", "/", 0)]);
}

#[tokio::test(start_paused = true)]
async fn an_events_only_push_source_stays_up_when_quiet_and_reports_it_carries_can_go_stale() {
    let t0 = Instant::now();
    let mut admin = source("admin", local("pod-a"));
    let mut push = source("push", local("pod-a"));
    push.silence = Silence::Listens;
    admin.silence = Silence::Stale(Reason::StatsTimeout);
    let mut inputs = inputs(vec![admin, push]);
    inputs.apply(1, Event::Connected, t0, EPOCH);
    let quiet = t0 + STALE * 3;
    for at in [t0, quiet] {
        inputs.apply(0, report("pod-a", None, &[("/", 1)]), at, EPOCH);
    }
    let snap = reconcile("prod", &inputs, quiet);
    assert_eq!(snap.sources[1].health, Health::Up, "quiet is not unknown");
    // Once it carried a report, that report going stale takes it down.
    inputs.apply(1, report("pod-b", None, &[("/", 1)]), quiet, EPOCH);
    inputs.apply(1, report("pod-a", None, &[("/", 1)]), quiet, EPOCH);
    let later = quiet + STALE + Duration::from_secs(1);
    assert_eq!(
        reconcile("prod", &inputs, later).sources[1].health,
        Health::Down(Reason::Stale)
    );
}

#[tokio::test(start_paused = true)]
async fn events_move_every_current_report_of_their_server_so_none_corrects_falsely() {
    let t0 = Instant::now();
    let mut inputs = inputs(vec![
        source("admin", local("pod-a")),
        source("push", local("pod-a")),
    ]);
    inputs.apply(0, report("pod-a", None, &[("/", 5)]), t0, EPOCH);
    inputs.apply(1, ordered_report("b1", 10, &[("/", 5)]), t0, EPOCH);
    let applied = inputs.apply(1, ordered_events("b1", &[(11, 1)]), t0, EPOCH);
    assert_eq!(
        (applied.events, applied.dropped),
        (1, 0),
        "one event, counted once"
    );
    assert_eq!(root(&inputs, t0), 6, "the exported report moved");
    let t1 = t0 + Duration::from_secs(2);
    assert!(
        !inputs
            .apply(1, ordered_report("b1", 11, &[("/", 6)]), t1, EPOCH)
            .corrected
    );
    inputs.apply(0, report("pod-a", None, &[("/", 6)]), t1, EPOCH);
    let later = t1 + SETTLE;
    for source in &mut inputs.sources {
        source.prune(later, STALE);
    }
    let snap = reconcile("prod", &inputs, later);
    assert_eq!(
        (snap.sources[0].corrections, snap.sources[1].corrections),
        (0, 0)
    );
    assert_eq!(drift(&snap), [("pod-a", "/", 0), ("pod-a", "/", 0)]);
}

fn engine_message(server_id: &str, polling: u64, events: EngineEvents) -> Event {
    Event::Counts(ServerCounts {
        server_id: Some(server_id.into()),
        clients: Some(1),
        namespaces: vec![("/".into(), 1)],
        age: Duration::ZERO,
        seq: None,
        engine: Some(crate::update::Engine {
            polling_clients: Some(polling),
            events: Some(crate::update::Counted::SincePrevious(events)),
        }),
    })
}

fn opened_and_closed(connections: u64, reason: &str, closed: u64) -> EngineEvents {
    EngineEvents {
        connections,
        disconnections: vec![(reason.into(), closed)],
        packets_in: 1,
        packets_out: 2,
        bytes_in: 10,
        bytes_out: 20,
    }
}

/// (server, polling clients, connections, ping timeouts, bytes in) of one exported server.
type EngineRow = (Option<String>, Option<u64>, u64, u64, u64);

fn engine_rows(snapshot: &Snapshot) -> Vec<EngineRow> {
    snapshot
        .engine
        .iter()
        .map(|e| {
            let c = e.counters.unwrap();
            (
                e.server.clone(),
                e.polling_clients,
                c.connections,
                c.disconnections[2],
                c.bytes_in,
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn engine_counters_add_each_message_once_and_survive_a_source_reconnect() {
    let t0 = Instant::now();
    let mut inputs = connected(Scope::Cluster, t0);
    inputs.apply(
        0,
        engine_message("a", 2, opened_and_closed(3, "ping timeout", 1)),
        t0,
        EPOCH,
    );
    inputs.apply(
        0,
        engine_message("a", 1, opened_and_closed(1, "ping timeout", 2)),
        t0 + Duration::from_secs(2),
        EPOCH,
    );
    let t1 = t0 + Duration::from_secs(2);
    assert_eq!(
        engine_rows(&reconcile("p", &inputs, t1)),
        [(Some("a".into()), Some(1), 4, 3, 20)]
    );

    // The source loses the app: nothing is exported while it is down...
    inputs.apply(0, Event::Down(Reason::Closed), t1, EPOCH);
    assert!(reconcile("p", &inputs, t1).engine.is_empty());
    // ...and after the reconnect the counters go on from where they were.
    let t2 = t1 + Duration::from_secs(3);
    inputs.sources[0].prune(t2, STALE);
    inputs.apply(0, Event::Connected, t2, EPOCH);
    inputs.apply(
        0,
        engine_message("a", 0, opened_and_closed(1, "transport close", 1)),
        t2,
        EPOCH,
    );
    assert_eq!(
        engine_rows(&reconcile("p", &inputs, t2)),
        [(Some("a".into()), Some(0), 5, 3, 30)]
    );
}

#[tokio::test(start_paused = true)]
async fn engine_counters_leave_with_a_stale_server_and_start_again() {
    let t0 = Instant::now();
    let mut inputs = connected(Scope::Cluster, t0);
    inputs.apply(
        0,
        engine_message("a", 1, opened_and_closed(3, "ping timeout", 1)),
        t0,
        EPOCH,
    );
    inputs.apply(
        0,
        engine_message("b", 1, opened_and_closed(1, "ping timeout", 1)),
        t0 + STALE,
        EPOCH,
    );
    let later = t0 + STALE + Duration::from_secs(1);
    inputs.sources[0].prune(later, STALE);
    assert_eq!(
        engine_rows(&reconcile("p", &inputs, later)),
        [(Some("b".into()), Some(1), 1, 1, 10)]
    );
    assert_eq!(
        inputs.sources[0].engine.len(),
        1,
        "a's counters left memory"
    );
    inputs.apply(
        0,
        engine_message("a", 0, opened_and_closed(1, "x", 1)),
        later,
        EPOCH,
    );
    assert_eq!(
        reconcile("p", &inputs, later).engine[0]
            .counters
            .unwrap()
            .connections,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn engine_parts_a_server_does_not_send_are_absent_not_zero() {
    let t0 = Instant::now();
    let mut inputs = connected(local("a"), t0);
    inputs.apply(0, report("a", Some(1), &[("/", 1)]), t0, EPOCH);
    assert!(reconcile("p", &inputs, t0).engine.is_empty());

    let polling_only = Event::Counts(ServerCounts {
        server_id: Some("a".into()),
        clients: Some(1),
        namespaces: vec![],
        age: Duration::ZERO,
        seq: None,
        engine: Some(crate::update::Engine {
            polling_clients: Some(0),
            events: None,
        }),
    });
    inputs.apply(0, polling_only, t0, EPOCH);
    let snapshot = reconcile("p", &inputs, t0);
    assert_eq!(
        snapshot.engine,
        [crate::snapshot::Engine {
            server: None,
            polling_clients: Some(0),
            counters: None
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn reported_engine_totals_are_taken_as_they_are_and_an_older_report_never_replaces_them() {
    let t0 = Instant::now();
    let mut inputs = connected(Scope::Cluster, t0);
    let totals = |connections, age| {
        Event::Counts(ServerCounts {
            server_id: Some("a".into()),
            clients: None,
            namespaces: vec![],
            age: Duration::from_secs(age),
            seq: None,
            engine: Some(crate::update::Engine {
                polling_clients: None,
                events: Some(crate::update::Counted::SinceStart(EngineEvents {
                    connections,
                    ..EngineEvents::default()
                })),
            }),
        })
    };
    let t1 = t0 + Duration::from_secs(2);
    inputs.apply(0, totals(5, 0), t0, EPOCH);
    inputs.apply(0, totals(7, 0), t1, EPOCH);
    inputs.apply(0, totals(6, 1), t1, EPOCH);
    let snapshot = reconcile("p", &inputs, t1);
    assert_eq!(snapshot.engine[0].counters.unwrap().connections, 7);
    assert_eq!(snapshot.engine[0].polling_clients, None);
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

/// Server `id`'s version 2 report of process `b1`, including the events up to `n`.
fn ordered_report_of(id: &str, n: u64) -> Event {
    let Event::Counts(mut counts) = report(id, None, &[("/", 0)]) else {
        unreachable!()
    };
    counts.seq = seq("b1", n);
    Event::Counts(counts)
}

/// Server `id`'s version 2 connects in `/`, numbered `from..=to`.
fn ordered_connects_of(id: &str, from: u64, to: u64) -> Event {
    Event::Deltas(
        (from..=to)
            .map(|n| Delta {
                seq: seq("b1", n),
                ..delta(id, "/", 1)
            })
            .collect(),
    )
}

fn kept(inputs: &Inputs) -> usize {
    inputs
        .sources
        .iter()
        .flat_map(|s| s.servers.values())
        .map(Received::kept)
        .sum()
}

#[tokio::test(start_paused = true)]
async fn many_servers_holding_events_never_keep_more_than_the_global_budget() {
    const SERVERS: usize = 100;
    const HELD: u64 = 1000;
    let t0 = Instant::now();
    let mut inputs = connected(Scope::Cluster, t0);
    let mut over_budget = 0;
    for i in 0..SERVERS {
        let id = format!("pod-{i}");
        inputs.apply(0, ordered_report_of(&id, 0), t0, EPOCH);
        // Event 1 never comes: each server holds its 1 000 events behind the gap, within
        // its own bound; 100 of them would hold 100 000.
        let applied = inputs.apply(0, ordered_connects_of(&id, 2, HELD + 1), t0, EPOCH);
        assert_eq!(applied.events, HELD as usize, "{id}: every event is placed");
        over_budget += applied.over_budget;
        assert!(kept(&inputs) <= MAX_KEPT_TOTAL, "{id}: {}", kept(&inputs));
        assert!(
            inputs.budget.kept() >= kept(&inputs),
            "never below the truth"
        );
    }
    assert_eq!(kept(&inputs), MAX_KEPT_TOTAL, "the budget is used up");
    let total = SERVERS * HELD as usize;
    assert_eq!(
        over_budget,
        total - MAX_KEPT_TOTAL,
        "each event past it counted"
    );
    // A server past the budget gave up its gap: its events count at once, not after HOLD.
    let last = inputs.sources[0].servers[&format!("pod-{}", SERVERS - 1)].clone();
    assert_eq!(last.namespaces["/"], HELD);

    // A report whose comparison would wait for events (1, which never came) finds no room
    // either: it is judged at once, counted.
    let applied = inputs.apply(0, ordered_report_of("pod-0", HELD), t0, EPOCH);
    assert_eq!(applied.over_budget, 1);
    assert!(kept(&inputs) <= MAX_KEPT_TOTAL);

    // Servers that leave give their share back.
    let later = t0 + STALE + Duration::from_secs(1);
    inputs.prune(later);
    assert_eq!((kept(&inputs), inputs.budget.kept()), (0, 0));
    inputs.apply(0, ordered_report_of("pod-0", 0), later, EPOCH);
    let applied = inputs.apply(0, ordered_connects_of("pod-0", 2, 3), later, EPOCH);
    assert_eq!((applied.over_budget, kept(&inputs)), (0, 2), "held again");
}
