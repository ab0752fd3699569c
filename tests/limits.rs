//! The rate limiter over real sockets: the sidecar against a simulator
//! that enforces Binance's limits (429, then a 418 ban for whoever keeps
//! sending), with the simulator's own counters and request log as the
//! judge. Every test checks behaviour, never timings; every wait is
//! bounded.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, Opts, Strat, ALPHA, BETA, WAIT};
use ordergate::client::Client;
use ordergate::ids::{ClientId, OrderKey, StrategyId};
use ordergate::protocol::OrderState;
use ordergate::protocol::{
    decode_outbound, encode_inbound, FrameReader, Inbound, NewOrder, OrdType, Outbound, Reason,
    Side, TimeInForce, VenueState, VERSION_MAX, VERSION_MIN,
};
use ordergate::sim::binance::{RateLimits, RequestRecord};

/// Two more strategies for the flood: with alpha and beta, three flood
/// and the fourth places resting orders and cancels them.
const CAROL: (StrategyId, &str) = (3, "carol");
const DAVE: (StrategyId, &str) = (4, "dave");

/// The flood's limits, on both sides: small enough to be hit within a
/// second, large enough for the sidecar's start-up (a time query, the
/// subscription, the reconciliation: about a dozen weight).
const ORDERS_PER_10S: u64 = 20;
const WEIGHT_PER_MINUTE: u64 = 200;
/// Few requests on the wire at once: the sidecar's order is then the
/// venue's.
const MAX_IN_FLIGHT: usize = 4;

fn more_strategies() -> String {
    let mut s = String::new();
    for (id, name) in [CAROL, DAVE] {
        s.push_str(&format!("\n[[strategy]]\nid = {id}\nname = \"{name}\"\n"));
    }
    s
}

/// The simulator of the flood: small limits, a short ban.
fn flood_sim_limits() -> RateLimits {
    RateLimits {
        weight_per_minute: WEIGHT_PER_MINUTE,
        orders_per_10s: ORDERS_PER_10S,
        orders_per_day: 1_000_000,
        ban: Duration::from_secs(2),
        ..RateLimits::default()
    }
}

/// `[venue.limits]` matching the simulator's, with the flood's settings.
fn flood_limits(pass_through: bool) -> String {
    format!(
        r#"
[venue.limits]
critical_reserve_percent = 20
window_margin_ms = 1000
stale_order_ms = 1000
max_in_flight = {MAX_IN_FLIGHT}
pass_through = {pass_through}

[[venue.limits.rule]]
counts = "orders"
window_ms = 10000
limit = {ORDERS_PER_10S}

[[venue.limits.rule]]
counts = "weight"
window_ms = 60000
limit = {WEIGHT_PER_MINUTE}
"#
    )
}

fn flood_opts(pass_through: bool) -> Opts {
    Opts {
        sim_limits: flood_sim_limits(),
        venue_limits: flood_limits(pass_through),
        extra: more_strategies(),
        ..Opts::default()
    }
}

/// How one flood order ended, as its strategy heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Filled,
    Rejected(Reason, String),
    /// Anything else that ends an order (Canceled, Expired).
    Other(String),
}

/// Counters the flooders share with the test while they run.
#[derive(Default)]
struct FloodCounters {
    /// NewOrders written to the sidecar.
    sent: AtomicU64,
    /// Of them, answered Rejected Throttled so far.
    throttled: AtomicU64,
}

/// How a flooder sends.
#[derive(Clone, Copy)]
struct Pace {
    /// Orders in all.
    count: u64,
    /// Written back to back, ...
    burst: u64,
    /// ... once every this long.
    every: Duration,
    /// After the last, how long to wait for the answers at most.
    drain: Duration,
}

/// One flooding strategy: market orders in bursts as `pace` says, then
/// reads until each has ended or the drain time has passed. Reads while
/// it sends, so the sidecar never holds its answers back.
fn flooder(socket: &Path, name: &'static str, pace: Pace, c: &FloodCounters) -> HashMap<u64, End> {
    let mut client = Client::connect(socket, name).expect("connect a flooder");
    let inst = client.instrument(common::SYMBOL).cloned().unwrap();
    let qty = common::fixed("0.001", inst.qty_scale);
    // Up first: orders sent before that are refused VenueDown.
    let up_by = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < up_by, "{name}: venue not Up");
        if let Some((_, Outbound::VenueStatus { state, .. })) = client.recv_timeout(WAIT).unwrap() {
            if state == VenueState::Up {
                break;
            }
        }
    }
    let count = pace.count;
    let mut ends: HashMap<u64, End> = HashMap::new();
    let mut next_send = Instant::now();
    let mut sent = 0u64;
    let mut drain_until = None::<Instant>;
    loop {
        if sent < count && Instant::now() >= next_send {
            for _ in 0..pace.burst.min(count - sent) {
                sent += 1;
                client
                    .new_order(&NewOrder {
                        order_id: sent,
                        instrument_id: inst.instrument_id,
                        side: Side::Buy,
                        ord_type: OrdType::Market,
                        tif: TimeInForce::Gtc,
                        flags: 0,
                        price: 0,
                        qty,
                    })
                    .expect("send a flood order");
                c.sent.fetch_add(1, Ordering::SeqCst);
            }
            next_send += pace.every;
            if sent == count {
                drain_until = Some(Instant::now() + pace.drain);
            }
            continue;
        }
        if sent == count && ends.len() as u64 == count {
            return ends;
        }
        if drain_until.is_some_and(|d| Instant::now() >= d) {
            return ends;
        }
        let wait = if sent < count {
            next_send.saturating_duration_since(Instant::now())
        } else {
            Duration::from_millis(100)
        };
        let Some((_, msg)) = client
            .recv_timeout(wait.max(Duration::from_millis(1)))
            .expect("read from the sidecar")
        else {
            continue;
        };
        let (id, end) = match msg {
            Outbound::Fill(f) if f.leaves_qty == 0 => (f.order_id, End::Filled),
            Outbound::Rejected {
                order_id,
                reason,
                text,
            } => (order_id, End::Rejected(reason, text)),
            Outbound::Canceled { order_id, .. } => (order_id, End::Other("Canceled".into())),
            Outbound::Expired { order_id, .. } => (order_id, End::Other("Expired".into())),
            _ => continue,
        };
        if let End::Rejected(Reason::Throttled, _) = end {
            c.throttled.fetch_add(1, Ordering::SeqCst);
        }
        ends.insert(id, end);
    }
}

/// The client order id the sidecar gives `order_id` of `strategy`.
fn cid(h: &Harness, strategy: StrategyId, order_id: u64) -> String {
    ClientId::order(h.ns, OrderKey { strategy, order_id }).encode()
}

fn is_place(r: &RequestRecord) -> bool {
    r.method == "order.place"
}

fn is_cancel(r: &RequestRecord) -> bool {
    r.method == "order.cancel"
}

/// What one flood run saw.
struct FloodRun {
    /// Per flooder, how each of its orders ended.
    ends: Vec<(&'static str, HashMap<u64, End>)>,
    /// Per cancel of a resting order: its id, the request log's length just before
    /// the Cancel was written, and the flood orders then queued in the
    /// sidecar (written by their strategy, neither on the wire nor
    /// answered).
    cancels: Vec<(u64, usize, u64)>,
    count: u64,
}

/// Three strategies flood market orders at about ten times the ORDERS
/// limit while dave cancels resting orders placed before the flood.
/// `cancel`: whether dave cancels (the control run only floods).
fn run_flood(h: &Harness, cancel: bool) -> FloodRun {
    const RESTING: u64 = 4;
    // 3 × 12 orders in 1.2 s, in bursts of 4 each 400 ms: about 30 a
    // second where the venue allows 2.
    let pace = Pace {
        count: 12,
        burst: 4,
        every: Duration::from_millis(400),
        drain: Duration::from_secs(if cancel { 30 } else { 5 }),
    };
    let mut dave = h.trader(DAVE.1);
    if cancel {
        for id in 1..=RESTING {
            dave.send(dave.limit(id, Side::Buy, "50000.00", "0.001"));
            let t = dave.first_answer(id);
            assert!(t.accepted.is_some(), "resting order {id}: {t:?}");
        }
    }
    let counters = Arc::new(FloodCounters::default());
    let threads: Vec<_> = [ALPHA.1, BETA.1, CAROL.1]
        .into_iter()
        .map(|name| {
            let socket = h.socket.clone();
            let c = counters.clone();
            std::thread::spawn(move || (name, flooder(&socket, name, pace, &c)))
        })
        .collect();
    let mut cancels = Vec::new();
    if cancel {
        // Cancel only once the flood is held back: the normal lane's share
        // of the ORDERS rule (all but the reserve) has reached the venue,
        // so what the flooders write now waits in the sidecar.
        let resting: Vec<String> = (1..=RESTING).map(|i| cid(h, DAVE.0, i)).collect();
        // (dave's resting orders took their part of it first.)
        let normal_share = (ORDERS_PER_10S * 8 / 10 - RESTING) as usize;
        let deadline = Instant::now() + WAIT;
        loop {
            let on_wire = h
                .sim
                .request_log()
                .iter()
                .filter(|r| is_place(r))
                .filter(|r| {
                    r.client_order_id
                        .as_ref()
                        .is_none_or(|c| !resting.contains(c))
                })
                .count();
            // Read in this order, each count can only come out low.
            let sent = counters.sent.load(Ordering::SeqCst) as usize;
            let throttled = counters.throttled.load(Ordering::SeqCst) as usize;
            // The share is spent and more of the flood waits in the sidecar.
            if on_wire >= normal_share && sent > on_wire + throttled {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the flood never filled the normal lane's share"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        for id in 1..=RESTING {
            // Read in this order, each count can only come out low, so
            // `queued` can only come out low too.
            let sent = counters.sent.load(Ordering::SeqCst);
            let throttled = counters.throttled.load(Ordering::SeqCst);
            let log = h.sim.request_log();
            let flood_on_wire = log
                .iter()
                .filter(|r| is_place(r))
                .filter(|r| {
                    r.client_order_id
                        .as_ref()
                        .is_none_or(|c| !resting.contains(c))
                })
                .count() as u64;
            let queued = sent.saturating_sub(flood_on_wire + throttled);
            dave.cancel(id);
            let t = dave.follow(id);
            assert_eq!(t.state(), OrderState::Canceled, "resting order {id}: {t:?}");
            cancels.push((id, log.len(), queued));
        }
    }
    let ends = threads
        .into_iter()
        .map(|t| t.join().expect("a flooder panicked"))
        .collect();
    FloodRun {
        ends,
        cancels,
        count: pace.count,
    }
}

/// The limiter keeps a flood under the venue's limits while cancels go
/// first; the same flood with the limiter passing everything draws the
/// venue's 429 and then its 418 ban.
#[test]
fn flood_stays_under_the_limits_and_cancels_go_first_and_without_the_limiter_it_is_banned() {
    // 1. The limiter on.
    let h = Harness::with(flood_opts(false));
    let run = run_flood(&h, true);
    let stats = h.sim.limit_stats();
    assert_eq!(stats.answered_429, 0, "{stats:?}");
    assert_eq!(stats.answered_418, 0, "{stats:?}");

    // Every flood order was answered: filled (sent in time) or refused
    // Throttled (held longer than stale_order_ms); nothing else.
    let mut filled = 0;
    let mut throttled = 0;
    for (name, ends) in &run.ends {
        for id in 1..=run.count {
            match ends.get(&id) {
                Some(End::Filled) => filled += 1,
                Some(End::Rejected(Reason::Throttled, _)) => throttled += 1,
                other => panic!("{name} order {id}: {other:?}"),
            }
        }
    }
    assert!(
        throttled > 0 && filled > 0,
        "filled {filled}, throttled {throttled}"
    );

    // Every aligned 10 s window of the venue took at most its limit.
    let log = h.sim.request_log();
    let mut per_window: HashMap<u64, u64> = HashMap::new();
    for r in log.iter().filter(|r| is_place(r) && r.status == 200) {
        *per_window.entry(r.server_time / 10_000).or_default() += 1;
    }
    assert!(
        per_window.values().all(|&n| n <= ORDERS_PER_10S),
        "{per_window:?}"
    );

    // A cancel is not queued behind the flood. For each cancel: `before`
    // is the request log's length just before dave wrote the Cancel, `at`
    // the cancel's own place in it. New orders the venue received in
    // between were either already admitted when the cancel reached the
    // session (at most max_in_flight requests are unanswered at a time),
    // or admitted after it, overtaking it. So more than max_in_flight new
    // orders in between means the cancel waited behind new orders. And the
    // check is not vacuous: flood orders were queued in the sidecar when
    // each cancel was written (counted from what the flooders wrote, what
    // reached the venue and what was answered).
    for &(id, before, queued) in &run.cancels {
        let orig = cid(&h, DAVE.0, id);
        let at = log
            .iter()
            .position(|r| is_cancel(r) && r.orig_client_order_id.as_deref() == Some(&orig))
            .unwrap_or_else(|| panic!("the cancel of resting order {id} never reached the venue"));
        assert!(at >= before, "cancel {id} logged before it was sent");
        let overtaken = log[before..at].iter().filter(|r| is_place(r)).count();
        assert!(
            overtaken <= MAX_IN_FLIGHT,
            "cancel {id}: {overtaken} new orders reached the venue between the Cancel and the cancel"
        );
        let _ = queued;
    }
    assert!(
        run.cancels.iter().any(|c| c.2 > 0),
        "the cancels never met a backlog: {:?}",
        run.cancels
    );
    drop(h);

    // 2. The negative control: the same flood with the limiter passing
    // everything. The venue refuses (429) and then bans (418) the IP that
    // kept sending.
    let h = Harness::with(flood_opts(true));
    let _ = run_flood(&h, false);
    let stats = h.sim.limit_stats();
    assert!(
        stats.answered_429 >= 1,
        "no 429 without the limiter: {stats:?}"
    );
    assert!(
        stats.answered_418 >= 1,
        "no 418 without the limiter: {stats:?}"
    );
    let log = h.sim.request_log();
    let first = |s: u16| log.iter().position(|r| r.status == s).unwrap();
    assert!(first(429) < first(418), "the 429 came first");
}

/// Waits until the venue's clock is in the second half of its 10 s
/// window (before its last 2 s), so an ORDERS refusal now ends within
/// a few seconds: the refusal's retry time is the window's end.
fn mid_orders_window(h: &Harness) {
    let deadline = Instant::now() + WAIT;
    while !(4_000..8_000).contains(&(h.sim.server_time_ms() % 10_000)) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first venue state in `s.venue_states` from `from` on that is
/// `state`, with its text.
fn venue_state_text(s: &Strat, from: usize, state: VenueState) -> Option<String> {
    s.venue_states[from..]
        .iter()
        .find(|v| v.0 == state)
        .map(|v| v.1.clone())
}

/// The venue refuses a new order with 429 (its ORDERS count was spent by
/// someone else): the strategies hear the venue Halted with the reason,
/// an order sent meanwhile is answered at once, nothing more is sent
/// before the retry time (no 418), and the venue is Up again by itself.
#[test]
fn a_429_halts_the_venue_until_its_retry_time_without_drawing_a_418() {
    let h = Harness::with(Opts {
        sim_limits: RateLimits {
            orders_per_10s: 20,
            orders_per_day: 1_000_000,
            ..RateLimits::default()
        },
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    s.send(s.market(1, Side::Buy, "0.001"));
    assert_eq!(s.follow(1).state(), OrderState::Filled);

    mid_orders_window(&h);
    h.sim.preload_orders(20);
    let seen = s.venue_states.len();
    // Refused -1015: sent again once the breaker releases if still fresh
    // then, else the strategy gets the refusal (checked below).
    s.send(s.market(2, Side::Buy, "0.001"));
    s.until("the venue halted", |s| {
        venue_state_text(s, seen, VenueState::Halted).is_some()
    });
    let halted = venue_state_text(&s, seen, VenueState::Halted).unwrap();
    assert!(
        halted.contains("rate limited") && halted.contains("-1015"),
        "{halted}"
    );

    // During the pause: answered at once, never sent.
    s.send(s.market(3, Side::Buy, "0.001"));
    let t = s.follow(3);
    match &t.rejected {
        Some((Reason::VenueDown, text)) => assert!(text.contains("Halted"), "{text}"),
        _ => assert_eq!(t.state(), OrderState::Filled, "held, then sent: {t:?}"),
    }

    s.wait_venue(VenueState::Up);
    let t2 = s.follow(2);
    match &t2.rejected {
        Some((reason, text)) => assert!(
            matches!(reason, Reason::VenueRateLimited | Reason::Throttled),
            "{text}"
        ),
        None => assert_eq!(t2.state(), OrderState::Filled, "{t2:?}"),
    }
    // Trading resumes. Not necessarily with the first order: the venue's
    // count (20, in the 429's rateLimits) raised the limiter's, which
    // keeps it for a whole local window (10 s + margin) from when it was
    // seen, while the venue's aligned window has already restarted. An
    // order the limiter holds that long is refused Throttled; never sent
    // early.
    let deadline = Instant::now() + 2 * WAIT;
    for id in 4.. {
        assert!(Instant::now() < deadline, "trading never resumed");
        s.send(s.market(id, Side::Buy, "0.001"));
        let t = s.follow(id);
        if t.state() == OrderState::Filled {
            break;
        }
        assert_eq!(
            t.rejected.as_ref().map(|r| r.0),
            Some(Reason::Throttled),
            "{t:?}"
        );
    }
    let stats = h.sim.limit_stats();
    assert_eq!(
        (stats.answered_429, stats.answered_418),
        (1, 0),
        "{stats:?}"
    );
    // Nothing but the refused order reached the venue between the 429
    // and the end of the window it was refused for.
    let log = h.sim.request_log();
    let refused = log.iter().position(|r| r.status == 429).unwrap();
    let until = log[refused].server_time / 10_000 * 10_000 + 10_000;
    let during: Vec<_> = log[refused + 1..]
        .iter()
        .filter(|r| r.server_time < until && is_place(r))
        .collect();
    assert!(during.is_empty(), "sent during the back-off: {during:?}");
}

/// The venue bans the IP (418): the venue is Halted with "banned" and the
/// ban's end, nothing reaches the venue until the ban is over but the one
/// request that found it, and trading resumes by itself.
#[test]
fn a_418_ban_halts_everything_until_it_ends() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    s.send(s.market(1, Side::Buy, "0.001"));
    assert_eq!(s.follow(1).state(), OrderState::Filled);

    let ban = Duration::from_secs(3);
    let start = h.sim.server_time_ms();
    let logged = h.sim.request_log().len();
    h.sim.force_ban(ban);
    let ends_by = h.sim.server_time_ms() + ban.as_millis() as u64;
    let ends_after = start + ban.as_millis() as u64;
    let seen = s.venue_states.len();
    // The sidecar cannot know of the ban until a request finds it. That
    // order is sent again (same client id) once the ban is over, if it is
    // still fresh by then; else the strategy gets the venue's refusal.
    s.send(s.market(2, Side::Buy, "0.001"));
    s.until("the venue halted", |s| {
        venue_state_text(s, seen, VenueState::Halted).is_some()
    });
    let halted = venue_state_text(&s, seen, VenueState::Halted).unwrap();
    assert!(halted.contains("banned"), "{halted}");
    let end: u64 = halted
        .split("venue time ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no ban end in {halted:?}"));
    assert!(
        (ends_after..=ends_by).contains(&end),
        "ban ends at {end}, expected {ends_after}..={ends_by}: {halted}"
    );

    for id in 3..=5 {
        s.send(s.market(id, Side::Buy, "0.001"));
        let t = s.follow(id);
        assert_eq!(
            t.rejected.as_ref().map(|r| r.0),
            Some(Reason::VenueDown),
            "{t:?}"
        );
    }
    s.wait_venue(VenueState::Up);
    let t2 = s.follow(2);
    match &t2.rejected {
        Some((reason, text)) => assert_eq!(*reason, Reason::VenueRateLimited, "{text}"),
        None => assert_eq!(t2.state(), OrderState::Filled, "{t2:?}"),
    }
    s.send(s.market(6, Side::Buy, "0.001"));
    assert_eq!(s.follow(6).state(), OrderState::Filled);

    let stats = h.sim.limit_stats();
    assert_eq!(stats.answered_418, 1, "{stats:?}");
    assert_eq!(stats.answered_429, 0, "{stats:?}");
    let during: Vec<_> = h.sim.request_log()[logged..]
        .iter()
        .filter(|r| r.server_time < end)
        .cloned()
        .collect();
    assert_eq!(
        during.len(),
        1,
        "only the order that found the ban: {during:?}"
    );
    assert_eq!(during[0].status, 418);
}

/// `[venue.limits]` with one tiny ORDERS rule of the sidecar's own (the
/// venue's are lifted), no reserve, and `stale_order_ms`.
fn tiny_orders(limit: u32, window_ms: u64, stale_ms: u64, margin_ms: u64) -> String {
    format!(
        r#"
[venue.limits]
critical_reserve_percent = 0
window_margin_ms = {margin_ms}
stale_order_ms = {stale_ms}

[[venue.limits.rule]]
counts = "orders"
window_ms = {window_ms}
limit = {limit}
"#
    )
}

/// An order the limiter holds longer than `stale_order_ms` is refused
/// Throttled, not sent late.
#[test]
fn an_order_held_by_the_limits_past_the_stale_bound_is_throttled() {
    let h = Harness::with(Opts {
        venue_limits: tiny_orders(2, 10_000, 300, 1_000),
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    for id in 1..=3 {
        s.send(s.market(id, Side::Buy, "0.001"));
    }
    assert_eq!(s.follow(1).state(), OrderState::Filled);
    assert_eq!(s.follow(2).state(), OrderState::Filled);
    let (reason, text) = s.follow(3).rejected.expect("refused");
    assert_eq!(reason, Reason::Throttled, "{text}");
    assert!(text.contains("300 ms"), "{text}");
    assert!(h.ledger_entry(ALPHA.0, 3).is_none(), "never sent");
    assert_eq!(h.sim.limit_stats().answered_429, 0);
}

/// A full command ring refuses at once (QueueFull), before anything held
/// in it is answered.
#[test]
fn a_full_lane_refuses_at_once() {
    let h = Harness::with(Opts {
        venue_limits: tiny_orders(1, 10_000, 2_000, 1_000),
        extra: "\n[rings]\ncommand_capacity = 2\n".into(),
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    s.send(s.market(1, Side::Buy, "0.001"));
    assert_eq!(s.follow(1).state(), OrderState::Filled);
    // The ORDERS rule is spent: these stay in the ring, two of them fit.
    for id in 2..=7 {
        s.send(s.market(id, Side::Buy, "0.001"));
    }
    // The answers, in the order they came.
    let mut order = Vec::new();
    while order.len() < 6 {
        if let Outbound::Rejected {
            order_id, reason, ..
        } = s.next()
        {
            order.push((order_id, reason));
        }
    }
    let full = order.iter().filter(|o| o.1 == Reason::QueueFull).count();
    let throttled = order.iter().filter(|o| o.1 == Reason::Throttled).count();
    assert_eq!((full, throttled), (4, 2), "{order:?}");
    // The ring kept the first two; the later ones found it full, and were
    // told so before the stale bound let go of the first two.
    assert!(
        order[..4]
            .iter()
            .all(|o| o.1 == Reason::QueueFull && o.0 >= 4),
        "{order:?}"
    );
    assert_eq!(h.sim.limit_stats().answered_429, 0);
}

/// A raw strategy connection that writes several messages in one write.
struct Raw {
    stream: UnixStream,
    reader: FrameReader,
    instrument_id: u32,
    price_scale: u8,
    qty_scale: u8,
}

impl Raw {
    /// Connects as `name` and waits for the venue to be Up.
    fn trader(h: &Harness, name: &str) -> Raw {
        let stream = UnixStream::connect(&h.socket).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut r = Raw {
            stream,
            reader: FrameReader::new(),
            instrument_id: 0,
            price_scale: 0,
            qty_scale: 0,
        };
        r.write(&[Inbound::Hello {
            min_version: VERSION_MIN,
            max_version: VERSION_MAX,
            name: name.into(),
        }]);
        loop {
            match r.recv() {
                Outbound::InstrumentInfo(i) if i.symbol == common::SYMBOL => {
                    r.instrument_id = i.instrument_id;
                    r.price_scale = i.price_scale;
                    r.qty_scale = i.qty_scale;
                }
                Outbound::VenueStatus {
                    state: VenueState::Up,
                    ..
                } => return r,
                _ => {}
            }
        }
    }

    /// Every message in one `write`.
    fn write(&mut self, msgs: &[Inbound]) {
        let mut out = Vec::new();
        for m in msgs {
            encode_inbound(m, &mut out);
        }
        self.stream.write_all(&out).unwrap();
    }

    fn recv(&mut self) -> Outbound {
        loop {
            if let Some(body) = self.reader.next_frame().unwrap() {
                return decode_outbound(body).unwrap().1;
            }
            let n = self.reader.read_from(&mut self.stream).expect("read");
            assert!(n > 0, "the sidecar closed the connection");
        }
    }

    /// A resting limit buy far below the market.
    fn resting(&self, order_id: u64) -> Inbound {
        Inbound::NewOrder(NewOrder {
            order_id,
            instrument_id: self.instrument_id,
            side: Side::Buy,
            ord_type: OrdType::Limit,
            tif: TimeInForce::Gtc,
            flags: 0,
            price: common::fixed("59000.00", self.price_scale),
            qty: common::fixed("0.001", self.qty_scale),
        })
    }

    /// Reads until each of `ids` has ended; returns how, by id.
    fn ends(&mut self, ids: &[u64]) -> HashMap<u64, String> {
        let mut ends = HashMap::new();
        let deadline = Instant::now() + WAIT;
        while ids.iter().any(|id| !ends.contains_key(id)) {
            assert!(Instant::now() < deadline, "not all ended: {ends:?}");
            let (id, end) = match self.recv() {
                Outbound::Canceled { order_id, .. } => (order_id, "Canceled".to_owned()),
                Outbound::Fill(f) if f.leaves_qty == 0 => (f.order_id, "Filled".to_owned()),
                Outbound::Rejected {
                    order_id,
                    reason,
                    text,
                } => (order_id, format!("Rejected {reason:?}: {text}")),
                Outbound::Expired { order_id, .. } => (order_id, "Expired".to_owned()),
                Outbound::CancelRejected {
                    order_id,
                    reason,
                    text,
                } => (order_id, format!("CancelRejected {reason:?}: {text}")),
                _ => continue,
            };
            ends.entry(id).or_insert(end);
        }
        ends
    }
}

/// NewOrder and its Cancel in one write, and NewOrders and a CancelAll in
/// one write, while the limiter holds some of the orders back for a
/// while (two new orders per second): every order ends Canceled; the
/// venue never sees a cancel before its order; and an order canceled while
/// still queued never reaches the venue at all (nor does its cancel).
#[test]
fn a_cancel_written_with_its_order_never_overtakes_it() {
    let h = Harness::with(Opts {
        venue_limits: tiny_orders(2, 1_000, 4_000, 0),
        ..Opts::default()
    });
    let mut r = Raw::trader(&h, ALPHA.1);
    let mut batch = Vec::new();
    for id in 1..=4 {
        batch.push(r.resting(id));
        batch.push(Inbound::Cancel { order_id: id });
    }
    r.write(&batch);
    let mut batch: Vec<_> = (5..=8).map(|id| r.resting(id)).collect();
    batch.push(Inbound::CancelAll {
        instrument_id: r.instrument_id,
    });
    r.write(&batch);
    let ids: Vec<u64> = (1..=8).collect();
    let ends = r.ends(&ids);
    for id in &ids {
        assert_eq!(ends[id], "Canceled", "order {id}: {ends:?}");
    }
    let log = h.sim.request_log();
    let mut never_sent = 0;
    for &id in &ids {
        let c = cid(&h, ALPHA.0, id);
        let placed = log
            .iter()
            .position(|x| is_place(x) && x.client_order_id.as_deref() == Some(&c));
        let canceled: Vec<_> = log
            .iter()
            .enumerate()
            .filter(|(_, x)| is_cancel(x) && x.orig_client_order_id.as_deref() == Some(&c))
            .map(|(i, _)| i)
            .collect();
        match placed {
            Some(placed) => {
                assert_eq!(canceled.len(), 1, "order {id}: one cancel");
                assert!(placed < canceled[0], "order {id}: cancel before its order");
            }
            // Canceled in the queue: no order, and no cancel, on the wire.
            None => {
                assert!(
                    canceled.is_empty(),
                    "order {id}: a cancel without its order"
                );
                never_sent += 1;
            }
        }
    }
    assert!(
        never_sent > 0,
        "the limiter held some orders, canceled in the queue"
    );
    assert_eq!(h.sim.limit_stats().answered_429, 0);
}

/// The stale bound counts from when the desk queued the order (not from
/// when it reached the head of its ring), and every strategy's ring is
/// checked: here the rule lets two orders per 2 s through; every order of
/// a burst is 300 ms stale long before the window has room again, so only
/// the first two may be sent.
#[test]
fn every_order_queued_behind_the_limits_past_the_stale_bound_is_throttled() {
    let h = Harness::with(Opts {
        venue_limits: tiny_orders(2, 2_000, 300, 0),
        ..Opts::default()
    });
    let mut a = h.trader(ALPHA.1);
    let mut b = h.trader(BETA.1);
    for id in 1..=5 {
        a.send(a.market(id, Side::Buy, "0.001"));
        b.send(b.market(id, Side::Buy, "0.001"));
    }
    let mut sent = 0;
    for s in [&mut a, &mut b] {
        for id in 1..=5 {
            let t = s.follow(id);
            match t.state() {
                OrderState::Filled => sent += 1,
                _ => assert_eq!(t.rejected.as_ref().map(|r| r.0), Some(Reason::Throttled)),
            }
        }
    }
    assert_eq!(sent, 2, "orders sent after waiting past the stale bound");
}
