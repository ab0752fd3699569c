//! Our SPSC ring against rtrb and crossbeam's `ArrayQueue`, in one run.
//!
//! Both benchmarks spin (`spin_loop`) on full/empty, so each wants two cores
//! to itself; on a shared or 2-core machine the absolute numbers are noisy
//! and only the side-by-side comparison means much.

use std::hint::{black_box, spin_loop};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

/// The two ends of a bounded SPSC queue of `u64`, behind one interface.
trait Spsc {
    const NAME: &'static str;
    type Tx: Send + 'static;
    type Rx: Send + 'static;
    fn new(capacity: usize) -> (Self::Tx, Self::Rx);
    fn push(tx: &mut Self::Tx, v: u64) -> bool;
    fn pop(rx: &mut Self::Rx) -> Option<u64>;
}

struct Ours;
impl Spsc for Ours {
    const NAME: &'static str = "ordergate";
    type Tx = ordergate::ring::Producer<u64>;
    type Rx = ordergate::ring::Consumer<u64>;
    fn new(capacity: usize) -> (Self::Tx, Self::Rx) {
        ordergate::ring::channel(capacity)
    }
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.push(v).is_ok()
    }
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop()
    }
}

struct Rtrb;
impl Spsc for Rtrb {
    const NAME: &'static str = "rtrb";
    type Tx = rtrb::Producer<u64>;
    type Rx = rtrb::Consumer<u64>;
    fn new(capacity: usize) -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(capacity)
    }
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.push(v).is_ok()
    }
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop().ok()
    }
}

struct Crossbeam;
impl Spsc for Crossbeam {
    const NAME: &'static str = "crossbeam";
    type Tx = Arc<crossbeam_queue::ArrayQueue<u64>>;
    type Rx = Arc<crossbeam_queue::ArrayQueue<u64>>;
    fn new(capacity: usize) -> (Self::Tx, Self::Rx) {
        let q = Arc::new(crossbeam_queue::ArrayQueue::new(capacity));
        (Arc::clone(&q), q)
    }
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.push(v).is_ok()
    }
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop()
    }
}

/// Spins on full/empty, yielding the core every `SPINS_PER_YIELD` tries.
///
/// With more runnable threads than cores, a pure spin burns a whole time
/// slice while the other end is descheduled, and the bench then measures the
/// scheduler rather than the queue; the occasional yield hands the core back.
/// It costs nothing while both ends are running.
struct Backoff(u32);

const SPINS_PER_YIELD: u32 = 1 << 12;

impl Backoff {
    fn snooze(&mut self) {
        self.0 += 1;
        if self.0.is_multiple_of(SPINS_PER_YIELD) {
            thread::yield_now();
        } else {
            spin_loop();
        }
    }
}

fn push_spin<Q: Spsc>(tx: &mut Q::Tx, v: u64) {
    let mut backoff = Backoff(0);
    while !Q::push(tx, v) {
        backoff.snooze();
    }
}

fn pop_spin<Q: Spsc>(rx: &mut Q::Rx) -> u64 {
    let mut backoff = Backoff(0);
    loop {
        if let Some(v) = Q::pop(rx) {
            return v;
        }
        backoff.snooze();
    }
}

const ITEMS: u64 = 1_000_000;

/// One producer thread streams `ITEMS` values to this (consumer) thread.
fn throughput<Q: Spsc>(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function(Q::NAME, |b| {
        b.iter(|| {
            let (mut tx, mut rx) = Q::new(4096);
            let producer = thread::spawn(move || {
                for i in 0..ITEMS {
                    push_spin::<Q>(&mut tx, i);
                }
            });
            let mut sum = 0u64;
            for _ in 0..ITEMS {
                sum = sum.wrapping_add(pop_spin::<Q>(&mut rx));
            }
            producer.join().unwrap();
            black_box(sum)
        });
    });
}

/// A value goes out on one ring and comes back on another via an echo thread.
fn pingpong<Q: Spsc>(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function(Q::NAME, |b| {
        b.iter_custom(|iters| {
            let (mut ping_tx, mut ping_rx) = Q::new(64);
            let (mut pong_tx, mut pong_rx) = Q::new(64);
            // u64::MAX tells the echo thread to stop.
            let echo = thread::spawn(move || loop {
                let v = pop_spin::<Q>(&mut ping_rx);
                if v == u64::MAX {
                    break;
                }
                push_spin::<Q>(&mut pong_tx, v);
            });
            let start = Instant::now();
            for i in 0..iters {
                push_spin::<Q>(&mut ping_tx, i);
                assert_eq!(pop_spin::<Q>(&mut pong_rx), i);
            }
            let elapsed = start.elapsed();
            push_spin::<Q>(&mut ping_tx, u64::MAX);
            echo.join().unwrap();
            elapsed
        });
    });
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/throughput");
    group
        .throughput(Throughput::Elements(ITEMS))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    throughput::<Ours>(&mut group);
    throughput::<Rtrb>(&mut group);
    throughput::<Crossbeam>(&mut group);
    group.finish();

    let mut group = c.benchmark_group("ring/pingpong");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    pingpong::<Ours>(&mut group);
    pingpong::<Rtrb>(&mut group);
    pingpong::<Crossbeam>(&mut group);
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
