//! `ordergate demo --flood`: the rate limiter against a flood, and the
//! same flood without it.
//!
//! A simulator with Binance's rule shapes at small sizes (ORDERS per
//! 10 s, REQUEST_WEIGHT per minute, a short ban), the sidecar with those
//! limits in `[venue.limits]`, three strategies flooding market orders at
//! about ten times the ORDERS limit, and a fourth that placed resting
//! orders before the flood and cancels them during it. Run twice, all in
//! this process: once with the limiter, once with `pass_through = true`.
//! The simulator's request log and counters are the judge: what it
//! admitted per aligned window against each limit, and its 429s and
//! 418s; the canceling strategy measures its critical-lane wait (Cancel
//! written → its answer).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{
    floor, io, sidecar_config, wait_for_socket, write_secret, DemoError, Filters, TempDir,
};
use crate::client::Client;
use crate::config::Config;
use crate::protocol::{NewOrder, OrdType, Outbound, Reason, Side, TimeInForce, VenueState};
use crate::sim::binance::engine::SymbolConfig;
use crate::sim::binance::{
    FillModel, LimitStats, RateLimits, RequestRecord, SimConfig, Simulator, DEMO_API_KEY,
    DEMO_API_SECRET,
};

const SYMBOL: &str = "BTCUSDT";
/// The venue's limits in this demo: Binance's rules, smaller.
const ORDERS_PER_10S: u64 = 30;
const WEIGHT_PER_MINUTE: u64 = 300;
const BAN: Duration = Duration::from_secs(2);
const MAX_IN_FLIGHT: usize = 4;
const STALE_MS: u64 = 1_000;
const FLOODERS: [(u32, &str); 3] = [(1, "flood-a"), (2, "flood-b"), (3, "flood-c")];
const CANCELER: (u32, &str) = (4, "canceler");
/// Resting orders the canceler places before the flood and cancels in it.
const RESTING: u64 = 10;
/// Per flooder: 20 orders in bursts of 5 every 500 ms, so 60 orders in
/// 1.5 s where the venue allows 30 in 10 s (about ten times its rate).
const PER_FLOODER: u64 = 20;
const BURST: u64 = 5;
const EVERY: Duration = Duration::from_millis(500);
/// How long the flooders wait for their last answers.
const DRAIN: Duration = Duration::from_secs(5);
/// Bound on waiting for the venue or an answer.
const WAIT: Duration = Duration::from_secs(10);

/// What the flooders heard, counted.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    filled: AtomicU64,
    throttled: AtomicU64,
    venue_down: AtomicU64,
    rate_limited: AtomicU64,
    other: AtomicU64,
}

impl Tally {
    fn answered(&self) -> u64 {
        [
            &self.filled,
            &self.throttled,
            &self.venue_down,
            &self.rate_limited,
            &self.other,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }
}

/// One run's results.
struct Run {
    pass_through: bool,
    /// Orders the venue placed, per aligned 10 s window (in order).
    orders: Vec<u64>,
    /// Request weight the venue counted, per aligned minute (documented
    /// weights of the logged requests; 418s are not counted).
    weight: Vec<u64>,
    /// Cancel written → its answer, ns.
    cancel_wait: Histogram<u64>,
    /// Cancels answered Canceled, and otherwise.
    canceled: u64,
    cancel_other: u64,
    stats: LimitStats,
    tally: Tally,
}

/// `ordergate demo --flood`.
pub fn run() -> Result<(), DemoError> {
    let started = Instant::now();
    let limited = run_once(false)?;
    let control = run_once(true)?;
    print_table(&limited, &control, started.elapsed());
    let drew = |r: &Run| r.stats.answered_429 + r.stats.answered_418;
    if drew(&limited) > 0 {
        return Err(DemoError::Flood(format!(
            "the limited run drew {} 429 and {} 418 from the venue",
            limited.stats.answered_429, limited.stats.answered_418
        )));
    }
    if drew(&control) == 0 {
        return Err(DemoError::Flood(
            "the pass-through run drew no 429 and no 418: the venue did not enforce its limits"
                .into(),
        ));
    }
    println!(
        "flood check: the limiter drew no 429 and no 418; without it the venue refused and banned"
    );
    Ok(())
}

fn config_text(dir: &Path, sim_addr: &str, pass_through: bool) -> Result<String, DemoError> {
    let sym = SymbolConfig::defaults()
        .into_iter()
        .find(|s| s.symbol == SYMBOL)
        .ok_or_else(|| DemoError::Setup(format!("the simulator has no default {SYMBOL}")))?;
    let filters = Filters {
        tick: sym.tick_size,
        lot: sym.step_size,
        min_qty: sym.min_qty,
        min_notional: sym.min_notional,
    };
    let limits = format!(
        r#"
[venue.limits]
critical_reserve_percent = 20
window_margin_ms = 1000
stale_order_ms = {STALE_MS}
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
    );
    let strategies: Vec<(u32, &str)> = FLOODERS.into_iter().chain([CANCELER]).collect();
    Ok(sidecar_config(
        "ordergate demo --flood",
        dir,
        &dir.join("state"),
        sim_addr,
        &limits,
        &strategies,
        &filters,
    ))
}

/// Reads until the venue is Up.
fn wait_up(client: &mut Client) -> Result<(), DemoError> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some((_, Outbound::VenueStatus { state, .. })) = client
            .recv_timeout(WAIT)
            .map_err(|e| DemoError::Setup(format!("read from the sidecar: {e}")))?
        {
            if state == VenueState::Up {
                return Ok(());
            }
        }
    }
    Err(DemoError::Setup("the venue was not Up within 10 s".into()))
}

fn connect(socket: &Path, name: &str) -> Result<Client, DemoError> {
    Client::connect(socket, name).map_err(|e| DemoError::Setup(format!("connect {name}: {e}")))
}

fn send_err(e: crate::client::ClientError) -> DemoError {
    DemoError::Setup(format!("write to the sidecar: {e}"))
}

/// One flooding strategy: market buys in bursts, reading as it goes, then
/// until every order is answered or the drain time has passed.
fn flooder(socket: &Path, name: &str, tally: &Tally) -> Result<(), DemoError> {
    let mut client = connect(socket, name)?;
    let inst = client
        .instrument(SYMBOL)
        .cloned()
        .ok_or_else(|| DemoError::Setup(format!("no {SYMBOL}")))?;
    wait_up(&mut client)?;
    let qty = crate::decimal::parse_fixed("0.001", inst.qty_scale)
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let mut sent = 0u64;
    let mut answered = 0u64;
    let mut next = Instant::now();
    let mut drain_until = None;
    loop {
        if sent < PER_FLOODER && Instant::now() >= next {
            for _ in 0..BURST.min(PER_FLOODER - sent) {
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
                    .map_err(send_err)?;
                tally.sent.fetch_add(1, Ordering::SeqCst);
            }
            next += EVERY;
            if sent == PER_FLOODER {
                drain_until = Some(Instant::now() + DRAIN);
            }
            continue;
        }
        if answered == PER_FLOODER || drain_until.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        let wait = if sent < PER_FLOODER {
            next.saturating_duration_since(Instant::now())
        } else {
            Duration::from_millis(100)
        };
        let msg = client
            .recv_timeout(wait.max(Duration::from_millis(1)))
            .map_err(|e| DemoError::Setup(format!("read from the sidecar: {e}")))?;
        let counter = match msg {
            Some((_, Outbound::Fill(f))) if f.leaves_qty == 0 => &tally.filled,
            Some((_, Outbound::Rejected { reason, .. })) => match reason {
                Reason::Throttled => &tally.throttled,
                Reason::VenueDown => &tally.venue_down,
                Reason::VenueRateLimited => &tally.rate_limited,
                _ => &tally.other,
            },
            Some((_, Outbound::Expired { .. } | Outbound::Canceled { .. })) => &tally.other,
            _ => continue,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        answered += 1;
    }
}

/// The canceler's answer to a cancel of `order_id`: Canceled or not.
fn cancel_answer(client: &mut Client, order_id: u64) -> Result<bool, DemoError> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match client
            .recv_timeout(WAIT)
            .map_err(|e| DemoError::Setup(format!("read from the sidecar: {e}")))?
        {
            Some((_, Outbound::Canceled { order_id: id, .. })) if id == order_id => {
                return Ok(true)
            }
            Some((_, Outbound::CancelRejected { order_id: id, .. })) if id == order_id => {
                return Ok(false)
            }
            Some((_, Outbound::Fill(f))) if f.order_id == order_id && f.leaves_qty == 0 => {
                return Ok(false)
            }
            _ => {}
        }
    }
    Err(DemoError::Setup(format!(
        "no answer to the cancel of order {order_id} within 10 s"
    )))
}

fn run_once(pass_through: bool) -> Result<Run, DemoError> {
    let dir = TempDir::new()?;
    write_secret(&dir.0.join("api.key"), DEMO_API_KEY)?;
    write_secret(&dir.0.join("api.secret"), DEMO_API_SECRET)?;
    let sim = Simulator::start(
        SimConfig {
            fill: FillModel::full(),
            limits: RateLimits {
                weight_per_minute: WEIGHT_PER_MINUTE,
                orders_per_10s: ORDERS_PER_10S,
                orders_per_day: 1_000_000,
                ban: BAN,
                ..RateLimits::default()
            },
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().expect("literal address"),
    )?;
    let config_path = dir.0.join("ordergate.toml");
    let text = config_text(&dir.0, &sim.addr().to_string(), pass_through)?;
    std::fs::write(&config_path, &text).map_err(io("write the flood config"))?;
    let config = Config::from_str(&text, &config_path.display().to_string())?;
    let socket = config.socket.clone();
    let state = crate::app::open_state(&config)?;
    let app = crate::app::start(config, state)?;
    wait_for_socket(&socket, None)?;

    // The canceler's resting orders, before the flood.
    let mut canceler = connect(&socket, CANCELER.1)?;
    let inst = canceler
        .instrument(SYMBOL)
        .cloned()
        .ok_or_else(|| DemoError::Setup(format!("no {SYMBOL}")))?;
    wait_up(&mut canceler)?;
    let fixed = |s: &str, scale| {
        crate::decimal::parse_fixed(s, scale).map_err(|e| DemoError::Setup(e.to_string()))
    };
    let (price, qty) = (
        fixed("48000.00", inst.price_scale)?,
        fixed("0.001", inst.qty_scale)?,
    );
    for id in 1..=RESTING {
        canceler
            .new_order(&NewOrder {
                order_id: id,
                instrument_id: inst.instrument_id,
                side: Side::Buy,
                ord_type: OrdType::Limit,
                tif: TimeInForce::Gtc,
                flags: 0,
                price,
                qty,
            })
            .map_err(send_err)?;
        let deadline = Instant::now() + WAIT;
        loop {
            if Instant::now() >= deadline {
                return Err(DemoError::Setup(format!("resting order {id} not accepted")));
            }
            match canceler
                .recv_timeout(WAIT)
                .map_err(|e| DemoError::Setup(format!("read from the sidecar: {e}")))?
            {
                Some((_, Outbound::Accepted { order_id, .. })) if order_id == id => break,
                Some((_, Outbound::Rejected { order_id, text, .. })) if order_id == id => {
                    return Err(DemoError::Setup(format!("resting order {id}: {text}")))
                }
                _ => {}
            }
        }
    }

    // The flood, and the cancels in it once two bursts are written.
    let tally = Arc::new(Tally::default());
    let threads: Vec<_> = FLOODERS
        .into_iter()
        .map(|(_, name)| {
            let socket = socket.clone();
            let tally = tally.clone();
            std::thread::spawn(move || flooder(&socket, name, &tally))
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while tally.sent.load(Ordering::SeqCst) < 2 * BURST * FLOODERS.len() as u64 {
        if Instant::now() >= deadline {
            return Err(DemoError::Setup("the flood did not start".into()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut cancel_wait = floor::new_histogram();
    let (mut canceled, mut cancel_other) = (0, 0);
    for id in 1..=RESTING {
        let t0 = Instant::now();
        canceler.cancel(id).map_err(send_err)?;
        if cancel_answer(&mut canceler, id)? {
            canceled += 1;
        } else {
            cancel_other += 1;
        }
        cancel_wait.saturating_record((t0.elapsed().as_nanos() as u64).max(1));
    }
    for t in threads {
        t.join()
            .map_err(|_| DemoError::Setup("a flooder panicked".into()))??;
    }

    let stats = sim.limit_stats();
    let log = sim.request_log();
    drop(canceler);
    app.stop()?;
    drop(sim);
    let tally = Arc::try_unwrap(tally).unwrap_or_default();
    Ok(Run {
        pass_through,
        orders: per_window(&log, 10_000, |r| {
            u64::from(r.method == "order.place" && r.status == 200)
        }),
        weight: per_window(&log, 60_000, weight_of),
        cancel_wait,
        canceled,
        cancel_other,
        stats,
        tally,
    })
}

/// `amount` of each request summed per aligned window of `len_ms` on the
/// venue's clock, for the windows from the first request to the last.
fn per_window(
    log: &[RequestRecord],
    len_ms: u64,
    amount: impl Fn(&RequestRecord) -> u64,
) -> Vec<u64> {
    let mut windows: BTreeMap<u64, u64> = BTreeMap::new();
    for r in log {
        *windows.entry(r.server_time / len_ms).or_default() += amount(r);
    }
    let (Some(&first), Some(&last)) = (windows.keys().next(), windows.keys().next_back()) else {
        return Vec::new();
    };
    (first..=last)
        .map(|w| windows.get(&w).copied().unwrap_or(0))
        .collect()
}

/// The request weight the venue counts for a logged request (Binance's
/// documented weights, as the simulator applies them); a request answered
/// 418 during a ban is not counted.
fn weight_of(r: &RequestRecord) -> u64 {
    if r.status == 418 {
        return 0;
    }
    match r.method.as_str() {
        "order.place" | "order.cancel" | "time" | "ping" => 1,
        "order.status" => 4,
        "openOrders.status" => 6,
        "exchangeInfo" | "GET /api/v3/exchangeInfo" => 20,
        "GET /api/v3/order" => 4,
        "GET /api/v3/openOrders" => 6,
        m if m.starts_with("GET /api")
            || m.starts_with("POST /api")
            || m.starts_with("DELETE /api") =>
        {
            1
        }
        // Connection attempts and session methods (logon, user data
        // stream subscription): 2.
        _ => 2,
    }
}

fn dur(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.0} ms", ns as f64 / 1e6)
    } else {
        format!("{:.0} µs", ns as f64 / 1e3)
    }
}

fn windows(v: &[u64]) -> String {
    let max = v.iter().copied().max().unwrap_or(0);
    let list: Vec<String> = v.iter().map(u64::to_string).collect();
    format!("max {max} [{}]", list.join(", "))
}

fn print_table(limited: &Run, control: &Run, took: Duration) {
    println!(
        "ordergate demo --flood: {} strategies write {} market orders each ({BURST} every {} ms) \
         while one cancels {RESTING} resting orders; {:.1} s",
        FLOODERS.len(),
        PER_FLOODER,
        EVERY.as_millis(),
        took.as_secs_f64()
    );
    println!(
        "venue limits: ORDERS {ORDERS_PER_10S} / 10 s, REQUEST_WEIGHT {WEIGHT_PER_MINUTE} / 1 min, \
         ban {} s; sidecar: the same rules, 20 % reserved for cancels, stale after {STALE_MS} ms, \
         {MAX_IN_FLIGHT} in flight",
        BAN.as_secs()
    );
    let name = |r: &Run| {
        if r.pass_through {
            "pass-through"
        } else {
            "limiter on"
        }
    };
    println!("{:<40} {:<28} {}", "", name(limited), name(control));
    let row = |label: &str, f: &dyn Fn(&Run) -> String| {
        println!("{label:<40} {:<28} {}", f(limited), f(control));
    };
    row(
        &format!("ORDERS placed per 10 s window (≤ {ORDERS_PER_10S})"),
        &|r| windows(&r.orders),
    );
    row(
        &format!("REQUEST_WEIGHT per minute (≤ {WEIGHT_PER_MINUTE})"),
        &|r| windows(&r.weight),
    );
    row("critical-lane wait p50 / p99 / max", &|r| {
        format!(
            "{} / {} / {}",
            dur(r.cancel_wait.value_at_quantile(0.5)),
            dur(r.cancel_wait.value_at_quantile(0.99)),
            dur(r.cancel_wait.max())
        )
    });
    row("cancels: canceled / not", &|r| {
        format!("{} / {}", r.canceled, r.cancel_other)
    });
    let t = |c: &AtomicU64| c.load(Ordering::SeqCst);
    row("flood orders written", &|r| t(&r.tally.sent).to_string());
    row("  filled", &|r| t(&r.tally.filled).to_string());
    row("  refused Throttled (held too long)", &|r| {
        t(&r.tally.throttled).to_string()
    });
    row("  refused VenueDown (venue Halted)", &|r| {
        t(&r.tally.venue_down).to_string()
    });
    row("  refused by the venue (429/418)", &|r| {
        t(&r.tally.rate_limited).to_string()
    });
    row("  other / still queued at the end", &|r| {
        format!(
            "{} / {}",
            t(&r.tally.other),
            t(&r.tally.sent).saturating_sub(r.tally.answered())
        )
    });
    row("venue answered 429", &|r| r.stats.answered_429.to_string());
    row("venue answered 418", &|r| r.stats.answered_418.to_string());
}
