//! Rate limits as Binance Spot enforces them (rest-api.md §LIMITS,
//! web-socket-api.md §"Rate limits", faqs/order_count_decrement.md).
//!
//! - `REQUEST_WEIGHT` is counted per IP. The simulator is one IP in
//!   practice, so one counter serves REST and every WebSocket API
//!   connection.
//! - `RAW_REQUESTS` (every request counts 1) is per IP as well.
//! - `ORDERS` is counted per account (API key). Binance counts *unfilled*
//!   orders: an order that trades takes itself back off the count. The
//!   simulator keeps it simple and counts every **successfully placed**
//!   order of the window, filled or not; orders refused for any reason
//!   (including -1015) do not count.
//! - WebSocket connection attempts: 300 per 5 minutes per IP; connecting
//!   also costs 2 request weight.
//!
//! Every window is aligned on the simulator's **server clock**, not
//! sliding: a 1-MINUTE window resets at each whole minute, 10 SECOND at
//! :00, :10, …, 5 MINUTE at :00, :05, …, 1 DAY at 00:00 UTC.
//!
//! Over a limit the request is refused with 429 and the time the window
//! resets (`Retry-After` seconds, WebSocket `retryAfter` epoch ms). Its
//! weight and raw count are kept, as Binance counts every request it
//! receives (so the reported usage can exceed the limit). A client that
//! sends again before that time, while backing off, gets its IP banned:
//! 418 for every request (connection attempts included) until the ban ends
//! by itself. Requests answered 418 during a ban are not counted. After an
//! orders 429 (-1015) only another new order of that account before the
//! reset triggers the ban: cancels and queries stay allowed, as the docs
//! only ask to stop sending orders.

use std::collections::HashMap;
use std::time::Duration;

use super::api::ApiError;
use super::json::Limiter;

/// The limits the simulator enforces and publishes in `exchangeInfo`.
/// [`Default`] is the documented production values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `REQUEST_WEIGHT`, MINUTE×1 (docs: 6000).
    pub weight_per_minute: u64,
    /// `ORDERS`, SECOND×10 (docs: 50).
    pub orders_per_10s: u64,
    /// `ORDERS`, DAY×1 (docs: 160000).
    pub orders_per_day: u64,
    /// `RAW_REQUESTS`, MINUTE×5 (docs: 61000).
    pub raw_per_5m: u64,
    /// WebSocket connection attempts per 5 minutes (docs: 300). Not
    /// published in `rateLimits` (Binance does not either).
    pub connections_per_5m: u64,
    /// How long an automatic IP ban lasts ("from 2 minutes to 3 days";
    /// the simulator uses one fixed length, default 2 minutes).
    pub ban: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            weight_per_minute: 6000,
            orders_per_10s: 50,
            orders_per_day: 160_000,
            raw_per_5m: 61_000,
            connections_per_5m: 300,
            ban: Duration::from_secs(120),
        }
    }
}

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const DAY: u64 = 24 * 60 * MINUTE;

const WEIGHT_MS: u64 = MINUTE;
const ORDERS_SHORT_MS: u64 = 10 * SECOND;
const ORDERS_DAY_MS: u64 = DAY;
const RAW_MS: u64 = 5 * MINUTE;
const CONNECTIONS_MS: u64 = 5 * MINUTE;

impl RateLimits {
    /// A copy with unlimited everything (no 429 and no 418 ever).
    pub fn unlimited() -> RateLimits {
        RateLimits {
            weight_per_minute: u64::MAX,
            orders_per_10s: u64::MAX,
            orders_per_day: u64::MAX,
            raw_per_5m: u64::MAX,
            connections_per_5m: u64::MAX,
            ban: Duration::from_secs(120),
        }
    }

    /// The `rateLimits` array of `exchangeInfo`, in Binance's order:
    /// REQUEST_WEIGHT, ORDERS (10 s, 1 day), RAW_REQUESTS.
    pub fn limiters(&self) -> [Limiter; 4] {
        [
            self.weight_limiter(),
            self.orders_10s_limiter(),
            self.orders_1d_limiter(),
            Limiter {
                kind: "RAW_REQUESTS",
                interval: "MINUTE",
                interval_num: 5,
                limit: self.raw_per_5m,
                count: None,
            },
        ]
    }

    pub(crate) fn weight_limiter(&self) -> Limiter {
        Limiter {
            kind: "REQUEST_WEIGHT",
            interval: "MINUTE",
            interval_num: 1,
            limit: self.weight_per_minute,
            count: None,
        }
    }

    pub(crate) fn orders_10s_limiter(&self) -> Limiter {
        Limiter {
            kind: "ORDERS",
            interval: "SECOND",
            interval_num: 10,
            limit: self.orders_per_10s,
            count: None,
        }
    }

    pub(crate) fn orders_1d_limiter(&self) -> Limiter {
        Limiter {
            kind: "ORDERS",
            interval: "DAY",
            interval_num: 1,
            limit: self.orders_per_day,
            count: None,
        }
    }

    fn ban_ms(&self) -> u64 {
        u64::try_from(self.ban.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// How many requests were refused for limits, as the simulator answered
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// Every 429 answered (REST, WebSocket API, connection attempts).
    pub answered_429: u64,
    /// Every 418 answered (during a ban, or the request that started it).
    pub answered_418: u64,
    /// Of the 429s: request weight over its limit (-1003).
    pub weight_429: u64,
    /// Of the 429s: new orders over an ORDERS limit (-1015).
    pub orders_429: u64,
    /// Of the 429s: RAW_REQUESTS over its limit (-1003).
    pub raw_429: u64,
    /// Of the 429s: WebSocket connection attempts over their limit.
    pub connections_429: u64,
    /// Bans started.
    pub bans: u64,
}

/// A calendar-aligned counter on the server clock (a 10-second window
/// resets at :00, :10, …; a day at 00:00 UTC).
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: u64,
    count: u64,
}

impl Window {
    fn at(&mut self, now: u64, len_ms: u64) -> &mut u64 {
        let start = now - now % len_ms;
        if start != self.start {
            *self = Window { start, count: 0 };
        }
        &mut self.count
    }

    fn peek(&self, now: u64, len_ms: u64) -> u64 {
        if now - now % len_ms == self.start {
            self.count
        } else {
            0
        }
    }
}

/// When the window of `len_ms` holding `now` ends.
fn window_end(now: u64, len_ms: u64) -> u64 {
    now - now % len_ms + len_ms
}

/// Usage as of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageSnapshot {
    pub weight_1m: u64,
    pub orders_10s: u64,
    pub orders_1d: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct OrderWindows {
    short: Window,
    day: Window,
}

/// The counters, back-offs and ban of the one simulated IP and its
/// accounts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter {
    pub limits: RateLimits,
    weight: Window,
    raw: Window,
    connections: Window,
    orders: HashMap<String, OrderWindows>,
    /// After a -1003 429: any request before this time starts a ban.
    ip_backoff_until: Option<u64>,
    /// After a -1015 429: a new order of that account before this time
    /// starts a ban.
    orders_backoff_until: HashMap<String, u64>,
    ban_until: Option<u64>,
    pub stats: LimitStats,
}

impl Meter {
    pub fn new(limits: RateLimits) -> Meter {
        Meter {
            limits,
            ..Meter::default()
        }
    }

    /// The IP-wide checks of one request of `weight` at server time
    /// `now`: the ban, the back-off, then RAW_REQUESTS and REQUEST_WEIGHT
    /// (both counted first, so a refused request still counts).
    pub fn admit(&mut self, now: u64, weight: u64) -> Result<(), ApiError> {
        self.admit_counting(now, weight, 1)
    }

    fn admit_counting(&mut self, now: u64, weight: u64, raw: u64) -> Result<(), ApiError> {
        self.banned(now)?;
        if self.ip_backoff_until.is_some_and(|t| now < t) {
            return Err(self.ban(now));
        }
        let l = self.limits;
        let raw_used = self.raw.at(now, RAW_MS);
        *raw_used = raw_used.saturating_add(raw);
        let raw_over = *raw_used > l.raw_per_5m;
        let used = self.weight.at(now, WEIGHT_MS);
        *used = used.saturating_add(weight);
        let weight_over = *used > l.weight_per_minute;
        if weight_over {
            let until = window_end(now, WEIGHT_MS);
            self.ip_backoff_until = Some(until);
            self.stats.answered_429 += 1;
            self.stats.weight_429 += 1;
            return Err(too_many(
                -1003,
                format!(
                    "Too much request weight used; current limit is {} request weight per 1 \
                     MINUTE. Please use WebSocket Streams for live updates to avoid polling the \
                     API.",
                    l.weight_per_minute
                ),
                now,
                until,
            ));
        }
        if raw_over {
            let until = window_end(now, RAW_MS);
            self.ip_backoff_until = Some(until);
            self.stats.answered_429 += 1;
            self.stats.raw_429 += 1;
            // errors.md documents no text for RAW_REQUESTS; this follows
            // the request weight one.
            return Err(too_many(
                -1003,
                format!(
                    "Too many requests; current limit is {} requests per 5 MINUTE. Please use \
                     WebSocket Streams for live updates to avoid polling the API.",
                    l.raw_per_5m
                ),
                now,
                until,
            ));
        }
        Ok(())
    }

    /// A WebSocket connection attempt: the ban and back-off, then the
    /// connection count and its 2 weight.
    pub fn admit_connection(&mut self, now: u64) -> Result<(), ApiError> {
        self.banned(now)?;
        if self.ip_backoff_until.is_some_and(|t| now < t) {
            return Err(self.ban(now));
        }
        let attempts = self.connections.at(now, CONNECTIONS_MS);
        *attempts = attempts.saturating_add(1);
        if *attempts > self.limits.connections_per_5m {
            let until = window_end(now, CONNECTIONS_MS);
            self.ip_backoff_until = Some(until);
            self.stats.answered_429 += 1;
            self.stats.connections_429 += 1;
            // The docs give the limit, not the refusal's text.
            return Err(too_many(
                -1003,
                format!(
                    "Too many connection attempts; current limit is {} connections per 5 \
                     MINUTE.",
                    self.limits.connections_per_5m
                ),
                now,
                until,
            ));
        }
        self.admit_counting(now, 2, 0)
    }

    /// Counts a connection made without the checks (the harness path).
    pub fn count_connection(&mut self, now: u64) {
        let attempts = self.connections.at(now, CONNECTIONS_MS);
        *attempts = attempts.saturating_add(1);
        let used = self.weight.at(now, WEIGHT_MS);
        *used = used.saturating_add(2);
    }

    /// The ORDERS check of a new order of `account` (after the IP checks
    /// and authentication).
    pub fn admit_order(&mut self, account: &str, now: u64) -> Result<(), ApiError> {
        if self
            .orders_backoff_until
            .get(account)
            .is_some_and(|&t| now < t)
        {
            return Err(self.ban(now));
        }
        let l = self.limits;
        let w = self.orders.entry(account.to_owned()).or_default();
        let (limit, per, len) = if *w.day.at(now, ORDERS_DAY_MS) >= l.orders_per_day {
            (l.orders_per_day, "1 DAY", ORDERS_DAY_MS)
        } else if *w.short.at(now, ORDERS_SHORT_MS) >= l.orders_per_10s {
            (l.orders_per_10s, "10 SECOND", ORDERS_SHORT_MS)
        } else {
            return Ok(());
        };
        let until = window_end(now, len);
        self.orders_backoff_until.insert(account.to_owned(), until);
        self.stats.answered_429 += 1;
        self.stats.orders_429 += 1;
        Err(too_many(
            -1015,
            format!("Too many new orders; current limit is {limit} orders per {per}."),
            now,
            until,
        ))
    }

    /// A successfully placed order of `account`.
    pub fn count_order(&mut self, account: &str, now: u64) {
        self.add_orders(account, now, 1);
    }

    pub fn add_orders(&mut self, account: &str, now: u64, n: u64) {
        let w = self.orders.entry(account.to_owned()).or_default();
        let c = w.short.at(now, ORDERS_SHORT_MS);
        *c = c.saturating_add(n);
        let c = w.day.at(now, ORDERS_DAY_MS);
        *c = c.saturating_add(n);
    }

    pub fn add_weight(&mut self, now: u64, n: u64) {
        let used = self.weight.at(now, WEIGHT_MS);
        *used = used.saturating_add(n);
    }

    /// Bans the IP from `now` for `len_ms`.
    pub fn force_ban(&mut self, now: u64, len_ms: u64) {
        self.ban_until = Some(now.saturating_add(len_ms.max(1)));
        self.ip_backoff_until = None;
        self.orders_backoff_until.clear();
        self.stats.bans += 1;
    }

    /// The end of the ban in force at `now`, if any.
    pub fn ban_until(&self, now: u64) -> Option<u64> {
        self.ban_until.filter(|&t| now < t)
    }

    /// The usage the responses report, for `account` when known.
    pub fn usage(&self, account: Option<&str>, now: u64) -> UsageSnapshot {
        let orders = account.and_then(|a| self.orders.get(a));
        UsageSnapshot {
            weight_1m: self.weight.peek(now, WEIGHT_MS),
            orders_10s: orders.map_or(0, |w| w.short.peek(now, ORDERS_SHORT_MS)),
            orders_1d: orders.map_or(0, |w| w.day.peek(now, ORDERS_DAY_MS)),
        }
    }

    fn banned(&mut self, now: u64) -> Result<(), ApiError> {
        match self.ban_until {
            Some(until) if now < until => {
                self.stats.answered_418 += 1;
                Err(banned(now, until))
            }
            Some(_) => {
                self.ban_until = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Starts a ban at `now` (a request during the back-off) and returns
    /// its 418.
    fn ban(&mut self, now: u64) -> ApiError {
        let until = now.saturating_add(self.limits.ban_ms());
        tracing::debug!(now, until, "IP banned: request during the 429 back-off");
        self.force_ban(now, until - now);
        self.stats.answered_418 += 1;
        banned(now, until)
    }
}

fn too_many(code: i64, msg: String, now: u64, until: u64) -> ApiError {
    ApiError {
        http: 429,
        code,
        msg,
        limit: Some(LimitRefusal {
            server_time: now,
            retry_after: until,
        }),
    }
}

fn banned(now: u64, until: u64) -> ApiError {
    ApiError {
        http: 418,
        code: -1003,
        msg: format!(
            "Way too much request weight used; IP banned until {until}. Please use WebSocket \
             Streams for live updates to avoid bans."
        ),
        limit: Some(LimitRefusal {
            server_time: now,
            retry_after: until,
        }),
    }
}

/// When a request refused for limits may be sent again: the WebSocket
/// error's `data` (`serverTime`, `retryAfter` in epoch ms) and the REST
/// `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitRefusal {
    pub server_time: u64,
    pub retry_after: u64,
}

impl LimitRefusal {
    /// `Retry-After`: whole seconds until `retry_after`, rounded up.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after
            .saturating_sub(self.server_time)
            .div_ceil(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01T00:00:00Z.
    const T0: u64 = 1_704_067_200_000;

    #[test]
    fn windows_are_aligned_not_sliding() {
        let mut m = Meter::new(RateLimits {
            weight_per_minute: 10,
            ..RateLimits::default()
        });
        m.admit(T0 + 59_000, 10).unwrap();
        let e = m.admit(T0 + 59_500, 1).unwrap_err();
        assert_eq!((e.http, e.code), (429, -1003));
        let r = e.limit.unwrap();
        assert_eq!(r.retry_after, T0 + 60_000);
        assert_eq!(r.retry_after_secs(), 1);
        // The next minute starts from zero even though the 10 were spent
        // one second ago.
        m.admit(T0 + 60_000, 10).unwrap();
        assert_eq!(m.usage(None, T0 + 60_000).weight_1m, 10);
    }

    #[test]
    fn day_window_resets_at_midnight_utc() {
        let mut m = Meter::new(RateLimits {
            orders_per_day: 2,
            ..RateLimits::default()
        });
        let late = T0 + DAY - 1;
        m.add_orders("k", late, 2);
        let e = m.admit_order("k", late).unwrap_err();
        assert_eq!(e.code, -1015);
        assert_eq!(
            e.msg,
            "Too many new orders; current limit is 2 orders per 1 DAY."
        );
        assert_eq!(e.limit.unwrap().retry_after, T0 + DAY);
        m.admit_order("k", T0 + DAY).unwrap();
    }
}
