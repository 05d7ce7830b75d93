//! Reconcile + render cost at 10, 1 000 and 100 000 namespaces.
//!
//! Targets (README, "Performance"): rendering 1 000 series ≤ 100 µs; reconciling and
//! rendering 100 000 namespaces ≤ 50 ms.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use socketio_exporter::config::Scope;
use socketio_exporter::reconcile::{SourceInput, reconcile};
use socketio_exporter::sinks::prometheus::render_snapshot;
use socketio_exporter::sources::{Event, ServerReport};
use tokio::time::Instant;

const STALE_AFTER: Duration = Duration::from_secs(10);

/// One connected local-scope source whose server reports `namespaces` namespaces.
fn input(namespaces: usize) -> SourceInput {
    let mut input = SourceInput {
        name: "socketio_admin".into(),
        scope: Scope::Local {
            server_id: "pod-a".into(),
        },
        link: socketio_exporter::reconcile::Link::Starting,
        servers: Default::default(),
        last_success: None,
    };
    let now = Instant::now();
    input.apply(Event::Connected, now, SystemTime::now());
    input.apply(
        Event::Report(ServerReport {
            server_id: "pod-a".into(),
            clients: Some(namespaces as u64),
            namespaces: (0..namespaces)
                .map(|i| (format!("/tenant-{i}"), (i % 50) as u64))
                .collect(),
        }),
        now,
        SystemTime::now(),
    );
    input
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile_and_render");
    for n in [10, 1_000, 100_000] {
        let inputs = [input(n)];
        let mut out = String::new();
        group.bench_with_input(BenchmarkId::from_parameter(n), &inputs, |b, inputs| {
            b.iter(|| {
                let snapshot = reconcile("production", inputs, Instant::now(), STALE_AFTER);
                out.clear();
                render_snapshot(&snapshot, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("render");
    for n in [10, 1_000, 100_000] {
        let snapshot = reconcile("production", &[input(n)], Instant::now(), STALE_AFTER);
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
}

criterion_group!(name = group; config = Criterion::default().sample_size(20); targets = benches);
criterion_main!(group);
