//! Clocks: a cheap monotonic clock for latency, timeouts and rate windows,
//! and a venue-synced wall clock for request timestamps.
//!
//! Venues reject signed requests whose timestamp is ahead of their own
//! clock (Binance: more than 1 s ahead) or older than the receive window,
//! so request timestamps follow the venue's clock, not ours: the offset is
//! estimated from the venue's reported server time, and a small bias puts
//! every timestamp slightly in the past.

/// Monotonic nanoseconds from an arbitrary origin (the clock's creation),
/// read from the TSC where quanta can use it.
#[derive(Debug, Clone)]
pub struct MonoClock {
    clock: quanta::Clock,
    origin: u64,
}

impl MonoClock {
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        MonoClock { clock, origin }
    }

    /// Nanoseconds since this clock was created.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.delta_as_nanos(self.origin, self.clock.raw())
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        MonoClock::new()
    }
}

/// How many recent samples the offset estimate is chosen from. Small, so
/// a drifting local clock is followed within a few sync rounds.
pub const VENUE_CLOCK_WINDOW: usize = 8;

/// Default bias: how far in the past request timestamps are put. A few ms
/// absorbs the midpoint estimate's error on a low-latency link while
/// costing almost nothing of a multi-second receive window.
pub const DEFAULT_BIAS_MS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    rtt_ms: u64,
    offset_ms: i64,
}

/// Estimates the venue's wall clock relative to ours.
///
/// Each observation is a server-time query: local wall time when sent, the
/// server's time, local wall time when the answer came. The server read its
/// clock somewhere inside that round trip; assuming the midpoint, the error
/// is at most half the round trip, so the sample with the shortest round
/// trip among the last [`VENUE_CLOCK_WINDOW`] is the one used.
#[derive(Debug, Clone)]
pub struct VenueClock {
    samples: [Option<Sample>; VENUE_CLOCK_WINDOW],
    next: usize,
    bias_ms: u64,
    /// The venue refused a timestamp: the next sample replaces the window.
    distrusted: bool,
}

impl VenueClock {
    pub fn new(bias_ms: u64) -> Self {
        VenueClock {
            samples: [None; VENUE_CLOCK_WINDOW],
            next: 0,
            bias_ms,
            distrusted: false,
        }
    }

    /// The venue refused a timestamp made from this estimate (Binance
    /// -1021): one of the clocks stepped, so every sample kept is stale.
    /// The estimate stays in use until the next observation, which then
    /// replaces them all.
    pub fn distrust(&mut self) {
        self.distrusted = true;
    }

    /// Records one server-time observation (all in ms since the Unix
    /// epoch). An answer "received" before it was sent (the local wall
    /// clock stepped back) says nothing and is ignored; returns whether
    /// the sample was kept.
    pub fn observe(&mut self, local_send_ms: u64, server_time_ms: u64, local_recv_ms: u64) -> bool {
        let Some(rtt_ms) = local_recv_ms.checked_sub(local_send_ms) else {
            return false;
        };
        let midpoint = local_send_ms + rtt_ms / 2;
        let offset_ms = server_time_ms as i64 - midpoint as i64;
        if std::mem::take(&mut self.distrusted) {
            self.samples = [None; VENUE_CLOCK_WINDOW];
        }
        self.samples[self.next] = Some(Sample { rtt_ms, offset_ms });
        self.next = (self.next + 1) % VENUE_CLOCK_WINDOW;
        true
    }

    /// The current estimate of venue time minus local time, if any sample
    /// has been observed.
    pub fn offset_ms(&self) -> Option<i64> {
        self.best().map(|s| s.offset_ms)
    }

    /// The round trip of the sample the estimate comes from: its error
    /// bound is half of this.
    pub fn best_rtt_ms(&self) -> Option<u64> {
        self.best().map(|s| s.rtt_ms)
    }

    /// The shortest round trip; among equals the newest, so a clock that
    /// moved is followed as soon as a sample as good as the old ones comes.
    fn best(&self) -> Option<Sample> {
        let newest_first = (1..=VENUE_CLOCK_WINDOW)
            .map(|back| (self.next + VENUE_CLOCK_WINDOW - back) % VENUE_CLOCK_WINDOW);
        newest_first
            .filter_map(|i| self.samples[i])
            .min_by_key(|s| s.rtt_ms)
    }

    /// A request timestamp for local wall time `local_wall_ms`: the venue's
    /// estimated time minus the bias. Before any observation the offset is
    /// taken as zero.
    pub fn timestamp_ms(&self, local_wall_ms: u64) -> u64 {
        let venue = local_wall_ms as i64 + self.offset_ms().unwrap_or(0);
        u64::try_from(venue)
            .unwrap_or(0)
            .saturating_sub(self.bias_ms)
    }
}

impl Default for VenueClock {
    fn default() -> Self {
        VenueClock::new(DEFAULT_BIAS_MS)
    }
}

/// The local wall clock in Unix milliseconds: read only at the I/O edges
/// (drivers pass it to the logic as `now`).
pub fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_clock_does_not_go_back() {
        let c = MonoClock::new();
        let a = c.now_ns();
        let b = c.now_ns();
        assert!(b >= a);
    }

    #[test]
    fn unsynced_clock_is_local_minus_bias() {
        let c = VenueClock::new(5);
        assert_eq!(c.offset_ms(), None);
        assert_eq!(c.timestamp_ms(1_000_000), 999_995);
    }

    #[test]
    fn offset_from_midpoint() {
        let mut c = VenueClock::new(0);
        // Sent at 1000, answered at 1010; the server said 1105 -> the
        // server is 100 ms ahead of the midpoint 1005.
        assert!(c.observe(1000, 1105, 1010));
        assert_eq!(c.offset_ms(), Some(100));
        assert_eq!(c.best_rtt_ms(), Some(10));
        assert_eq!(c.timestamp_ms(2000), 2100);
        // A venue behind us.
        let mut c = VenueClock::new(3);
        c.observe(5000, 4800, 5000);
        assert_eq!(c.offset_ms(), Some(-200));
        assert_eq!(c.timestamp_ms(6000), 5797);
    }

    #[test]
    fn shortest_round_trip_wins_within_the_window() {
        let mut c = VenueClock::new(0);
        c.observe(0, 1050, 100); // rtt 100, offset 1000
        c.observe(200, 1207, 214); // rtt 14, offset 1000
        c.observe(300, 1400, 340); // rtt 40, offset 1080
        assert_eq!(c.offset_ms(), Some(1000));
        assert_eq!(c.best_rtt_ms(), Some(14));
        // Push the good sample out of the window with worse ones.
        for i in 0..VENUE_CLOCK_WINDOW as u64 {
            let send = 1000 + i * 100;
            c.observe(send, send + 20 + 900, send + 40);
        }
        assert_eq!(c.best_rtt_ms(), Some(40));
        assert_eq!(c.offset_ms(), Some(900));
    }

    #[test]
    fn a_refused_timestamp_makes_the_next_sample_replace_the_window() {
        let mut c = VenueClock::new(0);
        c.observe(0, 1005, 10); // rtt 10, offset 1000
        c.observe(100, 1105, 110);
        // The venue's clock stepped 20 s: a sample as good as the old ones
        // is followed at once (ties go to the newest) ...
        c.observe(200, 21_205, 210);
        assert_eq!(c.offset_ms(), Some(21_000));
        // ... and after a refusal even a worse one replaces them all.
        c.observe(300, 1305, 310); // back to 1000, rtt 10
        c.distrust();
        assert_eq!(
            c.offset_ms(),
            Some(1000),
            "still the old estimate until a sample comes"
        );
        c.observe(400, 41_450, 500); // rtt 100, offset 41_000
        assert_eq!(c.offset_ms(), Some(41_000));
        assert_eq!(c.best_rtt_ms(), Some(100));
    }

    #[test]
    fn clock_step_back_is_ignored() {
        let mut c = VenueClock::new(0);
        assert!(!c.observe(1000, 5000, 999));
        assert_eq!(c.offset_ms(), None);
    }

    #[test]
    fn never_negative() {
        let mut c = VenueClock::new(10);
        c.observe(1000, 0, 1000);
        assert_eq!(c.timestamp_ms(5), 0);
    }
}
