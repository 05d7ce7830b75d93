//! One pass of a `report_file` directory source over 20 000 report files, none changed
//! since the last pass: the steady state, every sync interval.
//!
//! Target (README, "Performance"): ≤ 50 ms, off the runtime thread.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use socketio_exporter::bench::ReportScanner;

const FILES: usize = 20_000;

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        let body = format!(r#"{{"namespaces":{{"/":{i},"/chat":1}}}}"#);
        std::fs::write(dir.path().join(format!("pod-{i}.json")), body).unwrap();
    }
    let mut scanner = ReportScanner::directory(dir.path().to_owned());
    assert_eq!(
        scanner.pass().len(),
        FILES,
        "the first pass reads every file"
    );
    let mut group = c.benchmark_group("report_file");
    group.sample_size(20);
    group.bench_function("pass over 20 000 unchanged files", |b| {
        b.iter(|| black_box(scanner.pass().len()))
    });
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
