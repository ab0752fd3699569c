//! What a Binance error on a request means for it: the one table of which
//! answers are retried, which leave the outcome unknown, and which are
//! final. Documented in `docs/ARCHITECTURE.md` ("Venue truth").

/// The verdict on a venue error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Refused before execution because our timestamp was outside the
    /// venue's window (-1021): re-sync the venue clock, then send again.
    AfterClockSync,
    /// Refused for rate (-1003, -1015, HTTP 429/418): send again once the
    /// breaker releases.
    AfterBreaker,
    /// Refused because the venue is busy (-1008, whatever the HTTP
    /// status: the docs call it a failure, not an unknown): send again
    /// shortly.
    Later,
    /// The request may or may not have executed (HTTP 5xx, -1006, -1007):
    /// only a query or an event can tell.
    Unknown,
    /// Anything else: the venue's answer, passed to the strategy.
    Final,
}

/// The table. The code decides before the HTTP status: a -1008 comes with
/// a 5xx status and is still a plain refusal.
pub fn verdict(status: u16, code: i64) -> Verdict {
    match code {
        -1021 => Verdict::AfterClockSync,
        -1003 | -1015 => Verdict::AfterBreaker,
        -1008 => Verdict::Later,
        -1006 | -1007 => Verdict::Unknown,
        _ if status == 429 || status == 418 => Verdict::AfterBreaker,
        _ if status >= 500 => Verdict::Unknown,
        _ => Verdict::Final,
    }
}

/// Sends of one new order at most (the first included): a retried order
/// keeps its client id, so the venue can never hold it twice.
pub const MAX_SENDS: u8 = 4;
/// A new order is not re-sent once it is older than this (from when the
/// desk queued it): the strategy's price is stale by then, and it gets the
/// venue's refusal instead.
pub const STALE_NS: u64 = 5_000_000_000;
/// The wait before re-sending after -1008.
pub const BUSY_WAIT_NS: u64 = 500_000_000;
/// Cancel sends at most before the strategy is told the cancel failed
/// (retryable refusals, lost answers).
pub const MAX_CANCEL_SENDS: u8 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        assert_eq!(verdict(400, -1021), Verdict::AfterClockSync);
        assert_eq!(verdict(429, -1003), Verdict::AfterBreaker);
        assert_eq!(verdict(400, -1015), Verdict::AfterBreaker);
        assert_eq!(verdict(418, -1003), Verdict::AfterBreaker);
        assert_eq!(verdict(503, -1008), Verdict::Later);
        assert_eq!(verdict(400, -1006), Verdict::Unknown);
        assert_eq!(verdict(408, -1007), Verdict::Unknown);
        assert_eq!(verdict(500, 0), Verdict::Unknown);
        assert_eq!(verdict(400, -2010), Verdict::Final);
        assert_eq!(verdict(400, -1013), Verdict::Final);
    }
}
