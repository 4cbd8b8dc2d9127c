//! Single-thread parse and cluster throughput over the fixture reports, in memory (no I/O):
//! `cargo bench -p tsan-parse --bench parse`. `benches/bench.sh` measures the whole
//! pipeline on half a gigabyte of files against grep.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tsan_parse::{cluster, parse_str, Classifier, ClusterOptions};

/// Every fixture log, repeated to about 16 MB.
fn log() -> String {
    let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs");
    let mut one_of_each = String::new();
    for compiler in ["gcc", "clang", "pyext"] {
        let mut files: Vec<_> = std::fs::read_dir(logs.join(compiler))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            one_of_each.push_str(&std::fs::read_to_string(file).unwrap());
        }
    }
    one_of_each.repeat((16 << 20) / one_of_each.len() + 1)
}

fn parse_and_cluster(c: &mut Criterion) {
    let log = log();
    let mut group = c.benchmark_group("tsan-parse");
    group.throughput(Throughput::Bytes(log.len() as u64));
    group.sample_size(10);
    group.bench_function("parse", |b| b.iter(|| parse_str(&log).len()));
    group.bench_function("parse+cluster", |b| {
        b.iter(|| {
            let triage = cluster(
                parse_str(&log),
                &Classifier::default(),
                ClusterOptions::default(),
            );
            triage.root_causes.len()
        })
    });
    group.finish();
}

criterion_group!(benches, parse_and_cluster);
criterion_main!(benches);
