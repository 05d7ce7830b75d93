//! Property tests of the reconcile invariants (issue 10): exact sums after grouping and
//! the cap, unknown is not zero, one sample per label set that parses back, folding keeps
//! totals.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::namespaces::{NamespaceGroup, OVERFLOW_NAMESPACE};
use crate::sinks::prometheus::render_snapshot;
use crate::update::MAX_COUNT;

const STALE: Duration = Duration::from_secs(10);
const SERVERS: [&str; 4] = ["host", "host#1", "host#2", "other"];

fn rules(max: usize) -> NamespaceRules {
    NamespaceRules {
        groups: vec![NamespaceGroup {
            pattern: regex::Regex::new(r"^/tenant-\d+$").unwrap(),
            replace: "/tenant-*".into(),
        }],
        max,
    }
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0..50u64, (MAX_COUNT - 5)..=MAX_COUNT]
}

fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just("/chat".to_owned()),
        Just("/we\"ird\\ns\n".to_owned()),
        Just(OVERFLOW_NAMESPACE.to_owned()),
        (0..6u32).prop_map(|i| format!("/tenant-{i}")),
        "/[a-zé€]{0,3}",
    ]
}

/// A report: (index in [`SERVERS`], age in seconds, namespaces).
type Report = (usize, u64, Vec<(String, u64)>);

fn reports() -> impl Strategy<Value = Vec<Report>> {
    prop::collection::vec(
        (
            0..SERVERS.len(),
            prop_oneof![Just(0u64), Just(5), Just(20)],
            prop::collection::vec((namespace(), count()), 0..12),
        ),
        0..6,
    )
}

/// The reference: group, sum, and over `max` keep the largest `max - 1` (ties by name).
fn reference(rules: &NamespaceRules, report: &[(String, u64)]) -> BTreeMap<String, u128> {
    let mut sums: BTreeMap<String, u128> = BTreeMap::new();
    for (name, count) in report {
        *sums.entry(rules.group(name).into_owned()).or_default() += u128::from(*count);
    }
    if sums.len() <= rules.max {
        return sums;
    }
    let mut ranked: Vec<(String, u128)> = sums.into_iter().collect();
    ranked.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
    let rest: u128 = ranked.split_off(rules.max - 1).iter().map(|(_, c)| c).sum();
    let mut kept: BTreeMap<String, u128> = ranked.into_iter().collect();
    *kept.entry(OVERFLOW_NAMESPACE.to_owned()).or_default() += rest;
    kept
}

fn apply(max: usize, reports: &[Report], now: Instant) -> Inputs {
    let scope = Scope::Local {
        server_id: "host".into(),
    };
    let mut inputs = Inputs::new(
        vec![SourceInput::empty(
            "s".into(),
            scope,
            "host".into(),
            rules(max),
        )],
        STALE,
    );
    inputs.apply(0, Event::Connected, now, SystemTime::UNIX_EPOCH);
    for (server, age, namespaces) in reports {
        let counts = ServerCounts {
            server_id: Some(SERVERS[*server].into()),
            clients: None,
            namespaces: namespaces.clone(),
            age: Duration::from_secs(*age),
            seq: None,
            engine: None,
        };
        inputs.apply(0, Event::Counts(counts), now, SystemTime::UNIX_EPOCH);
    }
    inputs
}

/// `websocket_connections` samples of a rendering: their label sets and values.
fn parse_connections(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("websocket_connections{"))
        .map(|rest| {
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            (labels.to_owned(), value.to_owned())
        })
        .collect()
}

fn unescape(label: &str) -> String {
    let mut out = String::new();
    let mut chars = label.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

proptest! {
    #[test]
    fn exported_values_are_the_exact_sums_of_fresh_own_reports(max in 1usize..6, reports in reports()) {
        let now = Instant::now() + Duration::from_secs(3600);
        let inputs = apply(max, &reports, now);
        let snapshot = reconcile("p", &inputs, now);
        // The latest report per server wins (all arrive at `now`; an older one never
        // replaces a newer one).
        let mut latest: BTreeMap<usize, &Report> = BTreeMap::new();
        for report in &reports {
            if latest.get(&report.0).is_none_or(|(_, a, _)| report.1 <= *a) {
                latest.insert(report.0, report);
            }
        }
        let mut expected: BTreeMap<String, u128> = BTreeMap::new();
        for (server, age, namespaces) in latest.values() {
            if SERVERS[*server] != "other" && Duration::from_secs(*age) <= STALE {
                for (name, sum) in reference(&inputs.sources[0].rules, namespaces) {
                    *expected.entry(name).or_default() += sum;
                }
            }
        }
        let exported: BTreeMap<String, u128> = snapshot
            .connections
            .iter()
            .map(|c| (c.namespace.clone(), u128::from(c.sockets)))
            .collect();
        prop_assert_eq!(exported, expected);
    }

    #[test]
    fn a_down_or_stale_source_exports_no_connection_series(reports in reports()) {
        let now = Instant::now() + Duration::from_secs(3600);
        let mut inputs = apply(1000, &reports, now);
        let later = now + STALE + Duration::from_secs(1);
        prop_assert!(reconcile("p", &inputs, later).connections.is_empty());
        inputs.apply(0, Event::Down(Reason::Closed), now, SystemTime::UNIX_EPOCH);
        let down = reconcile("p", &inputs, now);
        prop_assert!(down.connections.is_empty() && down.clients.is_empty());
        prop_assert!(!down.sources[0].health.is_up());
    }

    #[test]
    fn rendered_samples_are_unique_and_parse_back_to_the_values(max in 1usize..6, reports in reports()) {
        let now = Instant::now() + Duration::from_secs(3600);
        let snapshot = reconcile("p", &apply(max, &reports, now), now);
        let mut text = String::new();
        render_snapshot(&snapshot, &mut text);
        let samples = parse_connections(&text);
        let label_sets: BTreeSet<&String> = samples.iter().map(|(labels, _)| labels).collect();
        prop_assert_eq!(label_sets.len(), samples.len(), "{}", text);
        for ((labels, value), c) in samples.iter().zip(&snapshot.connections) {
            let namespace = labels
                .strip_prefix("environment=\"p\",namespace=\"")
                .and_then(|l| l.strip_suffix('"'))
                .unwrap();
            prop_assert_eq!(unescape(namespace), c.namespace.clone());
            prop_assert_eq!(value.parse::<u64>().unwrap(), c.sockets);
        }
    }

    #[test]
    fn folding_keeps_totals(max in 1usize..6, report in prop::collection::vec((namespace(), count()), 0..40)) {
        let folded = rules(max).fold(report.clone()).unwrap();
        let before: u128 = report.iter().map(|(_, c)| u128::from(*c)).sum();
        let after: u128 = folded.namespaces.values().map(|c| u128::from(*c)).sum();
        prop_assert_eq!(before, after);
        prop_assert!(folded.namespaces.len() <= max);
    }
}
