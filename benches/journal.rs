//! What one journal record costs under each durability policy:
//! `Journal::append` of a typical record (a 100-byte payload, about the
//! size of a `Command` or `Sent` entry) into a fresh journal in a temp
//! dir, back to back.
//!
//! Under `Group` the mean is the `write` plus the share of one
//! `fdatasync` per interval that falls on each record, so it depends on
//! how many records come per interval: back to back here, the cheapest
//! case. The record that pays the fsync waits for all of it; that is what
//! `EveryRecord` pays every time. The numbers depend on the filesystem
//! and the disk under the temp dir (`df -T`), far more than on the CPU.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ordergate::journal::{Durability, Journal, JournalConfig};

/// A typical record's payload.
const PAYLOAD: usize = 100;
/// The kind byte of a `Sent` entry; the journal does not look at it.
const KIND: u8 = 5;

fn append(c: &mut Criterion) {
    let payload: Vec<u8> = (0..PAYLOAD as u8).collect();
    let policies = [
        ("none", Durability::None),
        (
            "group_1ms",
            Durability::Group {
                interval: Duration::from_millis(1),
            },
        ),
        ("every_record", Durability::EveryRecord),
    ];
    let mut g = c.benchmark_group("journal_append_100b");
    g.throughput(Throughput::Elements(1));
    for (name, durability) in policies {
        g.bench_function(name, |b| {
            // A fresh journal per sample, made outside the timing, so the
            // temp dir holds one sample's records at a time.
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("temp dir");
                let config = JournalConfig {
                    durability,
                    ..JournalConfig::default()
                };
                let (mut journal, _) = Journal::open(dir.path(), config).expect("open journal");
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(journal.append(KIND, black_box(&payload)).expect("append"));
                }
                let elapsed = start.elapsed();
                drop(journal);
                elapsed
            });
        });
    }
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
