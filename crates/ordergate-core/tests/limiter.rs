//! Properties of the rate limiter under random traffic with a fake clock:
//! whatever the requests, lanes, feedback and clock skew, the cost the
//! limiter admitted inside every window the venue could count stays within
//! every rule's limit, and the reserve is the critical lane's.

use ordergate_core::limiter::{Counts, Limiter, Rule, Wait, BUCKETS};
use ordergate_core::venue::{Cost, Lane};

/// A small deterministic generator (xorshift*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MS: u64 = 1_000_000;

fn amount(counts: Counts, c: Cost) -> u64 {
    match counts {
        Counts::Weight => c.weight as u64,
        Counts::Orders => c.orders as u64,
        Counts::Requests => 1,
        Counts::Connections => 0,
    }
}

/// The largest total of `counts` over any interval of length `window_ns`
/// among `(time, cost)` pairs, time-sorted.
fn max_in_any_window(admitted: &[(u64, Cost)], counts: Counts, window_ns: u64) -> u64 {
    let mut best = 0;
    let mut sum = 0;
    let mut lo = 0;
    for hi in 0..admitted.len() {
        sum += amount(counts, admitted[hi].1);
        while admitted[hi].0 - admitted[lo].0 >= window_ns {
            sum -= amount(counts, admitted[lo].1);
            lo += 1;
        }
        best = best.max(sum);
    }
    best
}

#[test]
fn no_window_the_venue_could_count_ever_exceeds_a_limit() {
    let rules = [
        Rule::new(Counts::Weight, 1_000, 120),
        Rule::new(Counts::Orders, 500, 10),
        Rule::new(Counts::Orders, 5_000, 60),
        Rule::new(Counts::Requests, 2_000, 150),
    ];
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Up to 30 ms of jitter between our clock and the venue's count.
        let jitter_ms = rng.below(31);
        let mut l = Limiter::new(&rules, rng.below(400) as u16, jitter_ms);
        let mut now = rng.below(10_000) * MS;
        // What reached the venue, at venue time.
        let mut at_venue: Vec<(u64, Cost)> = Vec::new();
        for _ in 0..4_000 {
            now += rng.below(8) * MS + rng.below(MS);
            let lane = [Lane::Critical, Lane::Normal, Lane::Bulk][rng.below(3) as usize];
            let cost = Cost {
                weight: 1 + rng.below(12) as u32,
                orders: rng.below(2) as u32,
            };
            if rng.below(50) == 0 {
                // The venue reports a count no higher than it really saw
                // would be a lie; feedback here only ever reports ours or more.
                let extra = rng.below(20) as u32;
                l.observe(now, Counts::Weight, 1_000, extra);
            }
            if l.admit(now, lane, cost).is_ok() {
                at_venue.push((now + rng.below(jitter_ms + 1) * MS, cost));
            }
        }
        at_venue.sort_by_key(|(t, _)| *t);
        for r in rules {
            let worst = max_in_any_window(&at_venue, r.counts, r.window_ms * MS);
            assert!(
                worst <= r.limit as u64,
                "seed {seed}: {:?} per {} ms reached {worst} > {}",
                r.counts,
                r.window_ms,
                r.limit
            );
        }
        assert!(
            at_venue.len() > 100,
            "seed {seed}: the limiter admitted traffic"
        );
    }
}

#[test]
fn normal_traffic_never_uses_the_reserve_and_critical_always_finds_it() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed);
        let limit = 100 + rng.below(100) as u32;
        let reserve_permille = 100 + rng.below(300) as u16;
        let reserve = limit as u64 * reserve_permille as u64 / 1000;
        let rule = Rule::new(Counts::Weight, 1_000, limit);
        let mut l = Limiter::new(&[rule], reserve_permille, 0);
        let mut now = 0;
        let mut admitted = Vec::new();
        for _ in 0..3_000 {
            now += rng.below(3) * MS;
            let lane = if rng.below(2) == 0 {
                Lane::Normal
            } else {
                Lane::Bulk
            };
            let cost = Cost {
                weight: 1 + rng.below(5) as u32,
                orders: 0,
            };
            if l.admit(now, lane, cost).is_ok() {
                admitted.push((now, cost));
            }
            // At any moment a critical request as large as the reserve
            // must fit: normal and bulk traffic cannot have taken it.
            let probe = Cost {
                weight: reserve as u32,
                orders: 0,
            };
            assert!(
                l.check(now, Lane::Critical, probe).is_ok(),
                "seed {seed}: the reserve of {reserve} was not there"
            );
        }
        let worst = max_in_any_window(&admitted, Counts::Weight, 1_000 * MS);
        assert!(worst <= (limit as u64 - reserve), "seed {seed}: {worst}");
    }
}

/// A refusal is never premature by more than one bucket: a critical
/// request is only held if what was admitted in the last window plus one
/// bucket, plus the request, passes the limit.
#[test]
fn a_critical_request_is_held_only_when_the_limit_is_really_reached() {
    let window_ms = 1_000;
    let bucket_ns = window_ms * MS / (BUCKETS as u64 - 1);
    for seed in 1..=40u64 {
        let mut rng = Rng(seed ^ 0xABCD);
        let limit = 50;
        let mut l = Limiter::new(&[Rule::new(Counts::Weight, window_ms, limit)], 200, 0);
        let mut now = 0;
        let mut admitted: Vec<(u64, u32)> = Vec::new();
        for _ in 0..2_000 {
            now += rng.below(40) * MS / 4;
            let lane = [Lane::Critical, Lane::Normal][rng.below(2) as usize];
            let weight = 1 + rng.below(4) as u32;
            let cost = Cost { weight, orders: 0 };
            match l.admit(now, lane, cost) {
                Ok(()) => admitted.push((now, weight)),
                Err(Wait::Full { .. }) if lane == Lane::Critical => {
                    let since = now.saturating_sub(window_ms * MS + 2 * bucket_ns);
                    let recent: u32 = admitted
                        .iter()
                        .filter(|(t, _)| *t >= since)
                        .map(|(_, w)| w)
                        .sum();
                    assert!(
                        recent + weight > limit,
                        "seed {seed}: critical held with {recent} + {weight} of {limit}"
                    );
                }
                Err(_) => {}
            }
        }
    }
}
