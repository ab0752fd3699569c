//! The cost of one admission decision: our limiter (three rules at once)
//! next to governor's GCRA check (one rule), in one run.
//!
//! Time is fake on both sides so that reading a clock is not what is
//! measured: ours takes `now_ns` as an argument, governor gets its
//! `FakeRelativeClock`. Each decision moves the clock on by `STEP` (100 µs,
//! 10 000 requests a fake second), so buckets leave the windows as they would
//! in a session. Every request is a new order: weight 1, one order.
//!
//! Two variants. "admitted": the limits are well above that rate, every
//! request passes. "half refused": the rule that bites (orders per 10 s for
//! us, governor's one quota) allows about half the rate, so refusals (which
//! compute when to retry) are measured too. The share admitted is checked
//! before timing and printed in the summary.
//!
//! Not the same work on both sides: governor's limiter is shared (`&self`,
//! a compare-and-swap on an atomic per check) and its fake clock advances
//! with an atomic read-modify-write; ours is owned (`&mut self`, plain
//! stores). The summary prints the fake clock's advance alone so its share of
//! governor's number can be seen.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use ordergate::limiter::{Counts, Limiter, Rule};
use ordergate::venue::{Cost, Lane};

/// How far the fake clock moves per decision.
const STEP: Duration = Duration::from_micros(100);
const STEP_NS: u64 = STEP.as_nanos() as u64;

/// The session's defaults (`SessionConfig`): 20 % kept for the critical lane,
/// local windows 1 s longer than the venue's.
const RESERVE_PERMILLE: u16 = 200;
const MARGIN_MS: u64 = 1_000;

const NEW_ORDER: Cost = Cost {
    weight: 1,
    orders: 1,
};

/// Orders per 10 s for the variant where about half are refused: the normal
/// lane may use 80 % of it, 55 000 per 11 s local window, and 110 000
/// requests arrive in one.
const HALF_ORDERS_PER_10S: u32 = 68_750;

/// The three rules a new order touches. The daily count never refuses here:
/// its normal-lane room (3.2e9) is more than a run makes decisions.
fn rules(orders_per_10s: u32) -> [Rule; 3] {
    [
        Rule::new(Counts::Weight, 60_000, 1_000_000),
        Rule::new(Counts::Orders, 10_000, orders_per_10s),
        Rule::new(Counts::Orders, 86_400_000, 4_000_000_000),
    ]
}

/// One admission decision after the clock moves on; true if admitted.
trait Decider {
    fn decide(&mut self) -> bool;
}

struct Ours {
    limiter: Limiter,
    now_ns: u64,
}

impl Ours {
    fn new(orders_per_10s: u32) -> Ours {
        Ours {
            limiter: Limiter::new(&rules(orders_per_10s), RESERVE_PERMILLE, MARGIN_MS),
            now_ns: 0,
        }
    }
}

impl Decider for Ours {
    #[inline]
    fn decide(&mut self) -> bool {
        self.now_ns += STEP_NS;
        self.limiter
            .admit(black_box(self.now_ns), Lane::Normal, black_box(NEW_ORDER))
            .is_ok()
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<Nanos>>;

struct Governor {
    limiter: Direct,
    clock: FakeRelativeClock,
}

impl Governor {
    /// `per_10s` cells per 10 s, all of them allowed as one burst (the
    /// closest a GCRA quota comes to "at most n in any 10 s").
    fn new(per_10s: u32) -> Governor {
        let burst = NonZeroU32::new(per_10s).expect("non-zero");
        let quota = Quota::with_period(Duration::from_secs(10) / per_10s)
            .expect("non-zero period")
            .allow_burst(burst);
        let clock = FakeRelativeClock::default();
        Governor {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
        }
    }
}

impl Decider for Governor {
    #[inline]
    fn decide(&mut self) -> bool {
        self.clock.advance(STEP);
        black_box(&self.limiter).check().is_ok()
    }
}

/// governor's fake clock moving on, and nothing else.
struct ClockOnly(FakeRelativeClock);

impl Decider for ClockOnly {
    #[inline]
    fn decide(&mut self) -> bool {
        self.0.advance(STEP);
        true
    }
}

/// A variant: its name and each side's limit for the rule that bites.
struct Variant {
    name: &'static str,
    ours_orders_per_10s: u32,
    governor_per_10s: u32,
}

const VARIANTS: [Variant; 2] = [
    Variant {
        name: "admitted",
        ours_orders_per_10s: 200_000,
        governor_per_10s: 200_000,
    },
    Variant {
        name: "half refused",
        ours_orders_per_10s: HALF_ORDERS_PER_10S,
        governor_per_10s: 50_000,
    },
];

/// Runs `iters` decisions; returns the time taken and how many were admitted.
fn run<D: Decider>(d: &mut D, iters: u64) -> (Duration, u64) {
    let mut admitted = 0u64;
    let start = Instant::now();
    for _ in 0..iters {
        admitted += d.decide() as u64;
    }
    (start.elapsed(), black_box(admitted))
}

fn bench_one<D: Decider>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, mut d: D) {
    group.bench_function(name, |b| b.iter_custom(|iters| run(&mut d, iters).0));
}

/// Contention-robust comparison for a shared machine: the candidates run in
/// interleaved rounds and each keeps its fastest round (noise from other
/// processes only ever adds time) and its median.
fn summary() {
    const ROUNDS: usize = 40;
    const ITERS: u64 = 200_000;
    println!();
    println!(
        "Comparison (ns per decision; best and median of {ROUNDS} interleaved rounds of {ITERS}; \
         fake clock +{} µs per decision):",
        STEP.as_micros()
    );
    for v in &VARIANTS {
        let mut ours = Ours::new(v.ours_orders_per_10s);
        let mut governor = Governor::new(v.governor_per_10s);
        let mut clock = ClockOnly(FakeRelativeClock::default());
        let mut times: [Vec<f64>; 3] = Default::default();
        let mut admitted = [0u64; 3];
        for _ in 0..ROUNDS {
            let rounds = [
                run(&mut ours, ITERS),
                run(&mut governor, ITERS),
                run(&mut clock, ITERS),
            ];
            for (i, (t, a)) in rounds.into_iter().enumerate() {
                times[i].push(t.as_nanos() as f64 / ITERS as f64);
                admitted[i] += a;
            }
        }
        println!("  {}:", v.name);
        let names = [
            "ordergate Limiter::admit (3 rules)",
            "governor check (1 rule)",
            "  of which governor fake-clock advance",
        ];
        for (i, name) in names.iter().enumerate() {
            let t = &mut times[i];
            t.sort_by(f64::total_cmp);
            let share = admitted[i] as f64 / (ROUNDS as u64 * ITERS) as f64 * 100.0;
            let share = if i < 2 {
                format!("  admitted {share:>5.1} %")
            } else {
                String::new()
            };
            println!(
                "    {name:<38} best {:>6.1}  median {:>6.1}{share}",
                t[0],
                t[t.len() / 2]
            );
        }
    }
}

/// Before timing: each variant admits what it says it does, on both sides.
fn check_variants() {
    const N: u64 = 2_000_000;
    for v in &VARIANTS {
        let ours = run(&mut Ours::new(v.ours_orders_per_10s), N).1 as f64 / N as f64;
        let gov = run(&mut Governor::new(v.governor_per_10s), N).1 as f64 / N as f64;
        let (lo, hi) = if v.name == "admitted" {
            (1.0, 1.0)
        } else {
            (0.4, 0.6)
        };
        for (who, share) in [("ordergate", ours), ("governor", gov)] {
            assert!(
                (lo..=hi).contains(&share),
                "{who} admits {share:.3} in variant {}",
                v.name
            );
        }
        println!(
            "{}: ordergate admits {:.1} %, governor {:.1} % of {N}",
            v.name,
            ours * 100.0,
            gov * 100.0
        );
    }
}

fn bench(c: &mut Criterion) {
    check_variants();
    for v in &VARIANTS {
        let mut group = c.benchmark_group(format!("limiter/{}", v.name));
        group
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        bench_one(
            &mut group,
            "ordergate 3 rules",
            Ours::new(v.ours_orders_per_10s),
        );
        bench_one(
            &mut group,
            "governor 1 rule",
            Governor::new(v.governor_per_10s),
        );
        group.finish();
    }
    summary();
}

criterion_group!(benches, bench);
criterion_main!(benches);
