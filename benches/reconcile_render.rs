//! Reconcile + render cost at 10, 1 000 and 100 000 namespaces, and the cost of taking in
//! one report of that size (grouping and the cap).
//!
//! Targets (README, "Performance"): rendering 1 000 series ≤ 100 µs; reconciling and
//! rendering 100 000 namespaces ≤ 50 ms.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use socketio_exporter::bench::{
    Event, Inputs, NamespaceRules, Scope, ServerCounts, SourceInput, reconcile, render_snapshot,
};
use tokio::time::Instant;

const SIZES: [usize; 3] = [10, 1_000, 100_000];

fn report(namespaces: usize) -> Event {
    Event::Counts(ServerCounts {
        server_id: None,
        clients: Some(namespaces as u64),
        namespaces: (0..namespaces)
            .map(|i| (format!("/tenant-{i}"), (i % 50) as u64))
            .collect(),
        age: Duration::ZERO,
        seq: None,
        engine: None,
    })
}

/// One connected local-scope source with nothing in it yet.
fn empty() -> Inputs {
    Inputs::new(
        vec![SourceInput::empty(
            "socketio_admin".into(),
            Scope::Local {
                server_id: "pod-a".into(),
            },
            "pod-a".into(),
            NamespaceRules {
                groups: Vec::new(),
                max: 100_000,
            },
        )],
        Duration::from_secs(10),
    )
}

/// The source holding one report of `namespaces` namespaces, and the instant it arrived:
/// reconciling at that instant keeps the report fresh however long the benchmark runs.
fn holding(namespaces: usize) -> (Inputs, Instant) {
    let mut inputs = empty();
    let at = Instant::now();
    inputs.apply(0, report(namespaces), at, SystemTime::now());
    let snapshot = reconcile("production", &inputs, at);
    assert_eq!(
        snapshot.connections.len(),
        namespaces,
        "the benchmark's input is exported"
    );
    (inputs, at)
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile_and_render");
    for n in SIZES {
        let (inputs, at) = holding(n);
        let mut out = String::new();
        group.bench_with_input(BenchmarkId::from_parameter(n), &inputs, |b, inputs| {
            b.iter(|| {
                let snapshot = reconcile("production", inputs, at);
                out.clear();
                render_snapshot(&snapshot, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("render");
    for n in SIZES {
        let (inputs, at) = holding(n);
        let snapshot = reconcile("production", &inputs, at);
        let mut out = String::new();
        group.bench_with_input(BenchmarkId::from_parameter(n), &snapshot, |b, snapshot| {
            b.iter(|| {
                out.clear();
                render_snapshot(snapshot, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("take_in_report");
    for n in SIZES {
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || (empty(), report(n)),
                |(mut inputs, event)| inputs.apply(0, event, Instant::now(), SystemTime::now()),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(name = group; config = Criterion::default().sample_size(20); targets = benches);
criterion_main!(group);
