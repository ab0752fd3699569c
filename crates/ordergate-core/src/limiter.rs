//! The rate limiter: admission against every limit a venue counts.
//!
//! Sans-IO and allocation-free: time is the caller's monotonic `now_ns`,
//! rules live in a fixed array, each rule's usage in a fixed ring of
//! buckets. One [`Limiter`] per venue session owns every rule of that
//! venue (one IP's request weight is shared by the WebSocket API and REST,
//! both of which the session drives), so no rule needs a lock.
//!
//! **Why sliding windows.** Binance counts in clock-aligned windows (each
//! whole minute, each 10 s). A token bucket as large as the limit admits
//! up to twice the limit inside one such window. Here a rule admits a
//! request only if the cost admitted in the last `window + margin` (the
//! margin absorbs clock offset and network jitter, which can push two
//! requests sent a window apart into one venue window) plus the request
//! stays within the limit. Usage is kept in `BUCKETS` buckets; the whole
//! of the oldest bucket still counts until it leaves the window, so the
//! count is never below the true one: every interval of length `window`,
//! wherever the venue's boundaries fall, holds at most `limit`.
//!
//! **Reserved headroom.** A share of every rule (`reserve_permille`) is
//! only for the critical lane (cancels, reduce-only): normal and bulk
//! requests are refused once usage would pass `limit - reserve`.
//!
//! **Feedback** (`observe`) may only make the local view more
//! conservative: a venue count above ours is added to the current
//! bucket; a lower one changes nothing. **Unfilled orders**: Binance lowers
//! its `ORDERS` count when orders fill; we never do, so we stay more
//! conservative than the venue.
//!
//! **Breaker**: `pause_until` (HTTP 429, -1003, -1015) and `ban_until`
//! (418) hold every lane until the given time; they end by themselves.

use crate::venue::{Cost, Lane};

/// Buckets per rule window.
pub const BUCKETS: usize = 20;
/// Most rules one venue can have.
pub const MAX_RULES: usize = 8;

/// What a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counts {
    /// Request weight (Binance `REQUEST_WEIGHT`, per IP).
    Weight,
    /// New orders (Binance `ORDERS`, per account).
    Orders,
    /// Requests, whatever their weight (Binance `RAW_REQUESTS`).
    Requests,
    /// Connection attempts (Binance: 300 per 5 minutes per IP).
    Connections,
}

impl Counts {
    pub fn as_str(self) -> &'static str {
        match self {
            Counts::Weight => "weight",
            Counts::Orders => "orders",
            Counts::Requests => "requests",
            Counts::Connections => "connections",
        }
    }

    fn of(self, cost: Cost) -> u32 {
        match self {
            Counts::Weight => cost.weight,
            Counts::Orders => cost.orders,
            Counts::Requests => 1,
            Counts::Connections => 0,
        }
    }
}

/// One limit: at most `limit` of `counts` in any `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub counts: Counts,
    pub window_ms: u64,
    pub limit: u32,
}

impl Rule {
    pub const fn new(counts: Counts, window_ms: u64, limit: u32) -> Rule {
        Rule {
            counts,
            window_ms,
            limit,
        }
    }
}

/// Why a request must wait, and until when (monotonic ns) at the latest
/// something changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A rule has no room for it in this lane; `until_ns` is when enough
    /// of the window has passed.
    Full { counts: Counts, until_ns: u64 },
    /// The venue asked us to back off (429).
    Paused { until_ns: u64 },
    /// The venue banned us (418).
    Banned { until_ns: u64 },
}

impl Wait {
    pub fn until_ns(self) -> u64 {
        match self {
            Wait::Full { until_ns, .. } | Wait::Paused { until_ns } | Wait::Banned { until_ns } => {
                until_ns
            }
        }
    }
}

/// A rule's usage over its window, in buckets.
#[derive(Debug, Clone, Copy)]
struct Window {
    rule: Rule,
    /// Bucket width; `BUCKETS` of them span window + margin.
    bucket_ns: u64,
    counts: [u32; BUCKETS],
    /// The absolute bucket number (now / bucket_ns) of the newest bucket.
    newest: u64,
    /// When the next bucket starts: until then `advance` has nothing to
    /// do and skips the division.
    next_ns: u64,
    sum: u32,
}

impl Window {
    fn new(rule: Rule, margin_ns: u64) -> Window {
        let span = rule
            .window_ms
            .saturating_mul(1_000_000)
            .saturating_add(margin_ns);
        // One bucket more than the span divides into, so the span is
        // always fully covered.
        let bucket_ns = (span / (BUCKETS as u64 - 1)).max(1);
        Window {
            rule,
            bucket_ns,
            counts: [0; BUCKETS],
            newest: 0,
            next_ns: bucket_ns,
            sum: 0,
        }
    }

    /// Drops buckets that left the window by `now_ns`.
    fn advance(&mut self, now_ns: u64) {
        if now_ns < self.next_ns {
            return;
        }
        let b = now_ns / self.bucket_ns;
        self.next_ns = (b + 1).saturating_mul(self.bucket_ns);
        if b <= self.newest {
            return;
        }
        let steps = (b - self.newest).min(BUCKETS as u64);
        for i in 1..=steps {
            let slot = ((self.newest + i) % BUCKETS as u64) as usize;
            self.sum -= self.counts[slot];
            self.counts[slot] = 0;
        }
        self.newest = b;
    }

    /// The room left for `lane` (critical may use the reserve).
    fn cap(&self, lane: Lane, reserve_permille: u16) -> u32 {
        if lane == Lane::Critical {
            return self.rule.limit;
        }
        let reserve = (self.rule.limit as u64 * reserve_permille as u64 / 1000) as u32;
        self.rule.limit - reserve.min(self.rule.limit)
    }

    /// When `amount` more would fit under `cap`, if it ever can.
    fn fits_at(&self, amount: u32, cap: u32) -> Option<u64> {
        if amount > cap {
            return None;
        }
        let mut sum = self.sum;
        if sum + amount <= cap {
            return Some(0);
        }
        // Oldest first: the bucket after the newest, going round.
        for i in 1..=BUCKETS as u64 {
            let slot = ((self.newest + i) % BUCKETS as u64) as usize;
            sum -= self.counts[slot];
            if sum + amount <= cap {
                // That bucket is gone once `newest` moves `i` buckets on.
                return Some((self.newest + i) * self.bucket_ns);
            }
        }
        Some((self.newest + BUCKETS as u64) * self.bucket_ns)
    }

    fn take(&mut self, amount: u32) {
        let slot = (self.newest % BUCKETS as u64) as usize;
        self.counts[slot] += amount;
        self.sum += amount;
    }
}

/// A rule's state for the log and for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleUsage {
    pub rule: Rule,
    pub used: u32,
    /// What only the critical lane may use.
    pub reserved: u32,
    /// When the oldest counted bucket leaves the window (0 if none).
    pub resets_in_ns: u64,
}

/// Admission for one venue session; see the module docs.
#[derive(Debug, Clone)]
pub struct Limiter {
    windows: [Option<Window>; MAX_RULES],
    reserve_permille: u16,
    margin_ns: u64,
    paused_until_ns: u64,
    banned_until_ns: u64,
    /// Passes everything the venue has not paused or banned (the demo's
    /// negative control); counts still run.
    pass_through: bool,
}

impl Limiter {
    /// `reserve_permille`: the share of every rule kept for critical
    /// requests; `margin_ms`: how much longer than the venue's window the
    /// local one is.
    pub fn new(rules: &[Rule], reserve_permille: u16, margin_ms: u64) -> Limiter {
        let mut l = Limiter {
            windows: [None; MAX_RULES],
            reserve_permille: reserve_permille.min(1000),
            margin_ns: margin_ms.saturating_mul(1_000_000),
            paused_until_ns: 0,
            banned_until_ns: 0,
            pass_through: false,
        };
        for r in rules {
            l.set_rule(*r);
        }
        l
    }

    pub fn set_pass_through(&mut self, on: bool) {
        self.pass_through = on;
    }

    /// Adds a rule, or replaces the limit of the rule with the same
    /// counts and window (what the venue publishes replaces the defaults).
    /// Usage already counted is kept. Returns false when the table is full.
    pub fn set_rule(&mut self, rule: Rule) -> bool {
        for w in self.windows.iter_mut().flatten() {
            if w.rule.counts == rule.counts && w.rule.window_ms == rule.window_ms {
                w.rule.limit = rule.limit;
                return true;
            }
        }
        match self.windows.iter_mut().find(|w| w.is_none()) {
            Some(slot) => {
                *slot = Some(Window::new(rule, self.margin_ns));
                true
            }
            None => false,
        }
    }

    pub fn rules(&self) -> impl Iterator<Item = Rule> + '_ {
        self.windows.iter().flatten().map(|w| w.rule)
    }

    /// Admits a request of `cost` in `lane` at `now_ns` and takes it from
    /// every rule at once, or says why it must wait. Nothing is taken on
    /// refusal.
    pub fn admit(&mut self, now_ns: u64, lane: Lane, cost: Cost) -> Result<(), Wait> {
        self.check(now_ns, lane, cost)?;
        self.take(cost);
        Ok(())
    }

    /// Whether [`Self::admit`] would admit it now; takes nothing.
    pub fn check(&mut self, now_ns: u64, lane: Lane, cost: Cost) -> Result<(), Wait> {
        if self.banned_until_ns > now_ns {
            return Err(Wait::Banned {
                until_ns: self.banned_until_ns,
            });
        }
        if self.paused_until_ns > now_ns {
            return Err(Wait::Paused {
                until_ns: self.paused_until_ns,
            });
        }
        let reserve = self.reserve_permille;
        let pass = self.pass_through;
        let mut wait: Option<Wait> = None;
        for w in self.windows.iter_mut().flatten() {
            w.advance(now_ns);
            if w.rule.counts == Counts::Connections || pass {
                continue;
            }
            let amount = w.rule.counts.of(cost);
            if amount == 0 {
                continue;
            }
            let until = match w.fits_at(amount, w.cap(lane, reserve)) {
                Some(0) => continue,
                Some(t) => t,
                // Larger than the rule itself: never fits; retry at the
                // window's end so the caller can refuse it.
                None => now_ns + w.bucket_ns * BUCKETS as u64,
            };
            if wait.is_none_or(|x| until > x.until_ns()) {
                wait = Some(Wait::Full {
                    counts: w.rule.counts,
                    until_ns: until,
                });
            }
        }
        match wait {
            Some(w) => Err(w),
            None => Ok(()),
        }
    }

    fn take(&mut self, cost: Cost) {
        for w in self.windows.iter_mut().flatten() {
            let amount = w.rule.counts.of(cost);
            if amount > 0 && w.rule.counts != Counts::Connections {
                w.take(amount);
            }
        }
    }

    /// A connection attempt: admitted under the connection rules (and the
    /// breaker), which then count it.
    pub fn admit_connect(&mut self, now_ns: u64) -> Result<(), Wait> {
        if self.banned_until_ns > now_ns {
            return Err(Wait::Banned {
                until_ns: self.banned_until_ns,
            });
        }
        let pass = self.pass_through;
        let mut wait = None;
        for w in self.windows.iter_mut().flatten() {
            w.advance(now_ns);
            if w.rule.counts != Counts::Connections || pass {
                continue;
            }
            match w.fits_at(1, w.rule.limit) {
                Some(0) => {}
                Some(t) => wait = Some(t.max(wait.unwrap_or(0))),
                None => wait = Some(now_ns + w.bucket_ns * BUCKETS as u64),
            }
        }
        if let Some(until_ns) = wait {
            return Err(Wait::Full {
                counts: Counts::Connections,
                until_ns,
            });
        }
        for w in self.windows.iter_mut().flatten() {
            if w.rule.counts == Counts::Connections {
                w.take(1);
            }
        }
        Ok(())
    }

    /// What the venue says it counted in a window of `window_ms` for
    /// `counts`: if above our count for that rule, ours is raised to it.
    /// Never lowers anything.
    pub fn observe(&mut self, now_ns: u64, counts: Counts, window_ms: u64, venue_count: u32) {
        for w in self.windows.iter_mut().flatten() {
            if w.rule.counts == counts && w.rule.window_ms == window_ms {
                w.advance(now_ns);
                if venue_count > w.sum {
                    w.take(venue_count - w.sum);
                }
            }
        }
    }

    /// The venue refused for rate (429): hold every lane until `until_ns`.
    pub fn pause_until(&mut self, until_ns: u64) {
        self.paused_until_ns = self.paused_until_ns.max(until_ns);
    }

    /// The venue banned us (418): hold everything, connections too.
    pub fn ban_until(&mut self, until_ns: u64) {
        self.banned_until_ns = self.banned_until_ns.max(until_ns);
    }

    /// Each rule's usage at `now_ns`, for the counters line.
    pub fn usage(&mut self, now_ns: u64, out: &mut impl FnMut(RuleUsage)) {
        let reserve = self.reserve_permille;
        for w in self.windows.iter_mut().flatten() {
            w.advance(now_ns);
            let reserved = w.rule.limit - w.cap(Lane::Normal, reserve);
            let resets_in_ns = (1..=BUCKETS as u64)
                .find(|i| w.counts[((w.newest + i) % BUCKETS as u64) as usize] > 0)
                .map_or(0, |i| ((w.newest + i) * w.bucket_ns).saturating_sub(now_ns));
            out(RuleUsage {
                rule: w.rule,
                used: w.sum,
                reserved,
                resets_in_ns,
            });
        }
    }
}

/// Binance Spot's documented limits (exchangeInfo and the API docs): the
/// defaults until the venue says otherwise.
pub const BINANCE_SPOT_RULES: [Rule; 5] = [
    Rule::new(Counts::Weight, 60_000, 6_000),
    Rule::new(Counts::Orders, 10_000, 50),
    Rule::new(Counts::Orders, 86_400_000, 160_000),
    Rule::new(Counts::Requests, 300_000, 61_000),
    Rule::new(Counts::Connections, 300_000, 300),
];

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn w(weight: u32) -> Cost {
        Cost { weight, orders: 0 }
    }

    #[test]
    fn admits_up_to_the_limit_then_waits_for_the_window() {
        let mut l = Limiter::new(&[Rule::new(Counts::Weight, 10_000, 10)], 0, 0);
        for _ in 0..10 {
            l.admit(S, Lane::Normal, w(1)).unwrap();
        }
        let Err(Wait::Full { until_ns, .. }) = l.admit(S, Lane::Normal, w(1)) else {
            panic!("the 11th fits nowhere");
        };
        assert!(until_ns > S && until_ns <= S + 11 * S, "{until_ns}");
        assert!(l.admit(until_ns - 1, Lane::Normal, w(1)).is_err());
        assert!(l.admit(until_ns, Lane::Normal, w(1)).is_ok());
    }

    #[test]
    fn the_reserve_is_for_the_critical_lane_only() {
        let mut l = Limiter::new(&[Rule::new(Counts::Weight, 1_000, 10)], 200, 0);
        for _ in 0..8 {
            l.admit(0, Lane::Normal, w(1)).unwrap();
        }
        assert!(l.admit(0, Lane::Normal, w(1)).is_err());
        assert!(l.admit(0, Lane::Bulk, w(1)).is_err());
        l.admit(0, Lane::Critical, w(1)).unwrap();
        l.admit(0, Lane::Critical, w(1)).unwrap();
        assert!(l.admit(0, Lane::Critical, w(1)).is_err());
    }

    #[test]
    fn every_rule_must_have_room_and_all_are_taken_at_once() {
        let mut l = Limiter::new(
            &[
                Rule::new(Counts::Weight, 1_000, 100),
                Rule::new(Counts::Orders, 1_000, 2),
            ],
            0,
            0,
        );
        let order = Cost {
            weight: 1,
            orders: 1,
        };
        l.admit(0, Lane::Normal, order).unwrap();
        l.admit(0, Lane::Normal, order).unwrap();
        assert!(matches!(
            l.admit(0, Lane::Normal, order),
            Err(Wait::Full {
                counts: Counts::Orders,
                ..
            })
        ));
        // The refusal took nothing: weight is at 2, so 98 more fit.
        l.admit(0, Lane::Normal, w(98)).unwrap();
        assert!(l.admit(0, Lane::Normal, w(1)).is_err());
    }

    #[test]
    fn feedback_only_raises_the_count() {
        let mut l = Limiter::new(&[Rule::new(Counts::Weight, 60_000, 100)], 0, 0);
        l.admit(0, Lane::Normal, w(10)).unwrap();
        l.observe(0, Counts::Weight, 60_000, 5);
        l.admit(0, Lane::Normal, w(90)).unwrap();
        assert!(l.admit(0, Lane::Normal, w(1)).is_err());
        let mut l = Limiter::new(&[Rule::new(Counts::Weight, 60_000, 100)], 0, 0);
        l.observe(0, Counts::Weight, 60_000, 95);
        assert!(l.admit(0, Lane::Normal, w(6)).is_err());
        l.admit(0, Lane::Normal, w(5)).unwrap();
    }

    #[test]
    fn a_pause_and_a_ban_hold_every_lane_and_end_by_themselves() {
        let mut l = Limiter::new(&BINANCE_SPOT_RULES, 200, 1_000);
        l.pause_until(5 * S);
        assert_eq!(
            l.admit(S, Lane::Critical, w(1)),
            Err(Wait::Paused { until_ns: 5 * S })
        );
        assert!(
            l.admit_connect(S).is_ok(),
            "a pause does not stop connecting"
        );
        l.admit(5 * S, Lane::Critical, w(1)).unwrap();
        l.ban_until(100 * S);
        assert_eq!(
            l.admit_connect(6 * S),
            Err(Wait::Banned { until_ns: 100 * S })
        );
        assert!(l.admit(99 * S, Lane::Critical, w(1)).is_err());
        l.admit(100 * S, Lane::Normal, w(1)).unwrap();
    }

    #[test]
    fn connection_attempts_have_their_own_rule() {
        let mut l = Limiter::new(&[Rule::new(Counts::Connections, 300_000, 2)], 0, 0);
        l.admit_connect(0).unwrap();
        l.admit_connect(S).unwrap();
        assert!(l.admit_connect(2 * S).is_err());
        // Requests do not count against it.
        l.admit(2 * S, Lane::Normal, w(1000)).unwrap();
    }

    #[test]
    fn the_venue_replaces_a_default_limit() {
        let mut l = Limiter::new(&BINANCE_SPOT_RULES, 0, 0);
        assert!(l.set_rule(Rule::new(Counts::Weight, 60_000, 1_200)));
        assert_eq!(
            l.rules()
                .find(|r| r.counts == Counts::Weight)
                .map(|r| r.limit),
            Some(1_200)
        );
        assert_eq!(l.rules().count(), BINANCE_SPOT_RULES.len());
    }

    #[test]
    fn a_request_larger_than_the_rule_never_fits() {
        let mut l = Limiter::new(&[Rule::new(Counts::Weight, 1_000, 10)], 0, 0);
        assert!(l.admit(0, Lane::Critical, w(11)).is_err());
    }
}
