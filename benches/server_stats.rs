//! Reading one admin-ui `server_stats` of 10, 1 000 and 100 000 namespaces, of the
//! source's own server (parsed in full) and of a foreign one (its id only). Behind the
//! Redis adapter a local-scope source receives every server's stats every 2 s; all but
//! one are foreign.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;
use socketio_exporter::bench::parse_server_stats;

const SIZES: [usize; 3] = [10, 1_000, 100_000];

/// A `server_stats` argument as admin-ui 0.5 sends it.
fn server_stats(namespaces: usize) -> Box<RawValue> {
    let namespaces: Vec<String> = (0..namespaces)
        .map(|i| format!(r#"{{"name":"/tenant-{i}","socketsCount":{}}}"#, i % 50))
        .collect();
    let json = format!(
        r#"{{"serverId":"pod-b","hostname":"pod-b","pid":1,"uptime":2.5,"clientsCount":9,"pollingClientsCount":0,"aggregatedEvents":[{{"timestamp":1795636960000,"type":"rawConnection","count":4}},{{"timestamp":1795636960000,"type":"packetsIn","count":5}}],"namespaces":[{}]}}"#,
        namespaces.join(",")
    );
    RawValue::from_string(json).unwrap()
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_stats");
    for n in SIZES {
        let json = server_stats(n);
        assert_eq!(parse_server_stats(&json, true), n, "own: read in full");
        assert_eq!(parse_server_stats(&json, false), 0, "foreign: id only");
        for (name, in_scope) in [("own", true), ("foreign", false)] {
            group.bench_with_input(BenchmarkId::new(name, n), &json, |b, json| {
                b.iter(|| black_box(parse_server_stats(json, in_scope)))
            });
        }
    }
    group.finish();
}

criterion_group!(name = group; config = Criterion::default().sample_size(20); targets = benches);
criterion_main!(group);
