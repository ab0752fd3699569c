//! The demo strategy: a deterministic mix of every kind of order, sent
//! through the sidecar with the Rust client, each order followed to a
//! terminal state, with the order round trip timed.
//!
//! Two ways to run, over one [`Book`]:
//!
//! - strict (the plain demo): one order at a time, each waited for, any
//!   answer slower than [`ANSWER_TIMEOUT`] an error;
//! - tolerant (the fault run, [`Plan::tolerant`]): a small window of
//!   orders in flight, sending paused while the venue is not Up, any late
//!   message taken, cancels retried until every order has its terminal
//!   report or [`DRAIN_DEADLINE`] after the last send has passed. Orders
//!   that never finished are in the report as they stood, for the demo to
//!   name.
//!
//! Either way every message about an order is kept in its record.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Client, ClientError};
use crate::decimal::format_fixed;
use crate::protocol::{
    InstrumentInfo, NewOrder, OrdType, OrderState, Outbound, Reason, Side, TimeInForce, VenueState,
};

/// What the demo asks of each order; cycles over the order count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// LIMIT well away from the market, cancelled once accepted.
    RestThenCancel,
    /// LIMIT away from the market, left resting until the final CancelAll.
    RestUntilEnd,
    /// LIMIT through the market: fills, perhaps in parts.
    LimitCross,
    Market,
    /// IOC through the market: the unfilled remainder expires.
    Ioc,
    /// Price off the tick: the gateway refuses it.
    BadTick,
    /// MARKET below the venue's minimum notional: the venue refuses it.
    TinyMarket,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        CYCLE.into_iter().find(|k| *k as u8 == v)
    }
}

const CYCLE: [Kind; 10] = [
    Kind::RestThenCancel,
    Kind::LimitCross,
    Kind::Market,
    Kind::Ioc,
    Kind::BadTick,
    Kind::RestUntilEnd,
    Kind::TinyMarket,
    Kind::Market,
    Kind::LimitCross,
    Kind::Ioc,
];

/// One order's fate as the strategy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub order_id: u64,
    pub kind: Kind,
    /// The state the sidecar's messages left the order in.
    pub state: OrderState,
    /// The last cumulative quantity a message said (Fill, Canceled,
    /// Expired, OrderStatus).
    pub cum_qty: i64,
    /// The last cumulative notional a message said (Fill, OrderStatus).
    pub cum_notional: i128,
    pub fills: u32,
    pub reject: Option<Reason>,
    /// Did any answer to the NewOrder arrive?
    pub answered: bool,
    /// Σ last_qty over the Fill messages, as the strategy adds them up.
    pub fill_qty: i64,
    /// Σ last_price × last_qty over the Fill messages.
    pub fill_notional: i128,
    /// What the terminal report (the message that made the order final)
    /// said of its cumulative quantity and notional, where it says them
    /// (Rejected says neither; Canceled and Expired no notional).
    pub final_qty: Option<i64>,
    pub final_notional: Option<i128>,
    /// Every message sent or received about this order, in order, with
    /// the time since the strategy started.
    pub messages: Vec<String>,
}

/// What the demo strategy hands back for the summary and the ledger check.
pub struct StrategyReport {
    pub name: String,
    pub strategy_id: u32,
    /// Orders it was to send; `outcomes` has those it sent.
    pub planned: usize,
    /// Why it sent fewer (tolerant mode, venue down too long).
    pub gave_up: Option<String>,
    pub price_scale: u8,
    pub qty_scale: u8,
    pub outcomes: Vec<Outcome>,
    /// NewOrder sent → first answer (Accepted, Rejected or Fill), in ns.
    pub round_trip: Histogram<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoStrategyError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the sidecar offers no instrument {0:?}")]
    NoInstrument(String),
    #[error("order {0} got no answer within {1:?}")]
    Timeout(u64, Duration),
    #[error("venue {0} did not come up")]
    VenueNotUp(u8),
    #[error("reference price {0:?}: {1}")]
    Reference(String, String),
}

/// Strict mode: the longest wait for any one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Tolerant mode: orders sent and not yet answered at once.
pub const WINDOW: usize = 16;
/// Tolerant mode: the longest wait for the venue to be Up (at the start,
/// and while orders are left to send).
const VENUE_WAIT: Duration = Duration::from_secs(60);
/// Tolerant mode: an order still unanswered after this no longer holds a
/// place in the window (it stays in the book, waited for).
const WINDOW_RELEASE: Duration = Duration::from_secs(30);
/// Tolerant mode: how long after the last send every order must have
/// its terminal report.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(120);
/// Tolerant mode: a cancel with no answer after this is sent again.
const CANCEL_RETRY: Duration = Duration::from_secs(5);
/// Tolerant mode: after a CancelRejected, wait this long before the next.
const CANCEL_BACKOFF: Duration = Duration::from_secs(1);
/// Tolerant mode: once every order is final, keep reading this long for
/// late messages.
const SETTLE: Duration = Duration::from_secs(1);

/// What one strategy does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The strategy name it logs in with.
    pub name: String,
    /// Its orders are the demo's orders `first .. first + orders` (the
    /// mix cycles over that global index); its order ids are 1..=orders.
    pub first: usize,
    pub orders: usize,
    /// The fault run's way (see the module docs).
    pub tolerant: bool,
    /// Tolerant mode: at least this long between two new orders (zero:
    /// as fast as the window allows).
    pub interval: Duration,
}

/// Runs `plan` on `symbol` at a market near `reference` (a decimal) and
/// follows each order to its end.
pub fn run(
    socket: &Path,
    plan: &Plan,
    symbol: &str,
    reference: &str,
) -> Result<StrategyReport, DemoStrategyError> {
    let client = Client::connect(socket, &plan.name)?;
    let inst = client
        .instruments()
        .iter()
        .find(|i| i.symbol == symbol)
        .cloned()
        .ok_or_else(|| DemoStrategyError::NoInstrument(symbol.to_owned()))?;
    let reference = crate::decimal::parse_fixed(reference, inst.price_scale)
        .map_err(|e| DemoStrategyError::Reference(reference.to_owned(), e.to_string()))?;
    let mut s = Session {
        book: Book::new(inst.price_scale, inst.qty_scale),
        round_trip: crate::demo::floor::new_histogram(),
        venue_up: false,
        last_seq: 0,
        gave_up: None,
        client,
        inst,
        reference,
    };
    if plan.tolerant {
        s.run_tolerant(plan)?;
    } else {
        s.run_strict(plan)?;
    }
    Ok(StrategyReport {
        name: plan.name.clone(),
        strategy_id: s.client.strategy_id(),
        planned: plan.orders,
        gave_up: s.gave_up,
        price_scale: s.inst.price_scale,
        qty_scale: s.inst.qty_scale,
        outcomes: s.book.into_outcomes(),
        round_trip: s.round_trip,
    })
}

struct Session {
    client: Client,
    inst: InstrumentInfo,
    reference: i64,
    book: Book,
    round_trip: Histogram<u64>,
    /// The latest VenueStatus for the instrument's venue said Up.
    venue_up: bool,
    /// The last sequenced message processed (rule 3: each seq once).
    last_seq: u64,
    /// Why the strategy stopped sending early, if it did.
    gave_up: Option<String>,
}

impl Session {
    fn order(&self, plan: &Plan, local: usize) -> (u64, Kind, NewOrder) {
        let n = plan.first + local;
        let order_id = local as u64 + 1;
        let kind = CYCLE[n % CYCLE.len()];
        (
            order_id,
            kind,
            make_order(&self.inst, kind, order_id, self.reference, n),
        )
    }

    /// The next message within `timeout`, already applied to the book
    /// and the venue state: `Some(Some(id))` when it was the first answer
    /// to order `id`, `Some(None)` for any other message, `None` on
    /// timeout.
    fn step(&mut self, timeout: Duration) -> Result<Option<Option<u64>>, DemoStrategyError> {
        let Some((seq, msg)) = self.client.recv_timeout(timeout)? else {
            return Ok(None);
        };
        let at = Instant::now();
        if seq != 0 {
            if seq <= self.last_seq {
                return Ok(Some(None));
            }
            self.last_seq = seq;
        }
        if let Outbound::VenueStatus { venue, state, .. } = &msg {
            if *venue == self.inst.venue {
                self.venue_up = *state == VenueState::Up;
            }
        }
        let first = self.book.apply(&msg);
        if let Some(id) = first {
            if let Some(sent) = self.book.sent_at(id) {
                self.round_trip
                    .saturating_record(at.duration_since(sent).as_nanos().max(1) as u64);
            }
        }
        Ok(Some(first))
    }

    fn run_strict(&mut self, plan: &Plan) -> Result<(), DemoStrategyError> {
        self.wait_for_venue(ANSWER_TIMEOUT)?;
        for local in 0..plan.orders {
            let (order_id, kind, order) = self.order(plan, local);
            self.book.start(order_id, kind);
            let at = Instant::now();
            self.client.new_order(&order)?;
            self.book.sent(order_id, at, "NewOrder");
            // Wait for the first answer: that is the order round trip.
            loop {
                match self.step(ANSWER_TIMEOUT)? {
                    None => return Err(DemoStrategyError::Timeout(order_id, ANSWER_TIMEOUT)),
                    Some(Some(id)) if id == order_id => break,
                    Some(_) => {}
                }
            }
            if kind == Kind::RestThenCancel && !self.book.is_terminal(order_id) {
                self.client.cancel(order_id)?;
                self.book.note(order_id, "sent Cancel");
            }
        }
        // Everything still open (resting orders, partly filled crossing
        // limits) is cancelled at the end, so every order ends terminal.
        self.client.cancel_all(self.inst.instrument_id)?;
        self.book.note_open("sent CancelAll");
        while let Some(open) = self.book.first_open() {
            if self.step(ANSWER_TIMEOUT)?.is_none() {
                return Err(DemoStrategyError::Timeout(open, ANSWER_TIMEOUT));
            }
        }
        Ok(())
    }

    /// A strategy does not send into a venue that is not up: wait for the
    /// gateway to report it connected.
    fn wait_for_venue(&mut self, bound: Duration) -> Result<(), DemoStrategyError> {
        let deadline = Instant::now() + bound;
        while !self.venue_up {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DemoStrategyError::VenueNotUp(self.inst.venue));
            }
            self.step(left.min(Duration::from_millis(100)))?;
        }
        Ok(())
    }

    fn run_tolerant(&mut self, plan: &Plan) -> Result<(), DemoStrategyError> {
        if plan.orders == 0 {
            return Ok(());
        }
        self.wait_for_venue(VENUE_WAIT)?;
        // Orders sent and not yet answered, with when they were sent.
        let mut in_flight: HashMap<u64, Instant> = HashMap::new();
        let mut next = 0;
        let mut last_send: Option<Instant> = None;
        let mut down_since: Option<Instant> = None;
        let mut settled_at: Option<Instant> = None;
        let mut next_sweep = Instant::now();
        let mut cancel_all_sent = false;
        let mut send_at = Instant::now();
        loop {
            let now = Instant::now();
            // Send while the venue is Up and the window has room.
            while next < plan.orders
                && self.venue_up
                && in_flight.len() < WINDOW
                && Instant::now() >= send_at
            {
                let (order_id, kind, order) = self.order(plan, next);
                self.book.start(order_id, kind);
                let at = Instant::now();
                self.client.new_order(&order)?;
                self.book.sent(order_id, at, "NewOrder");
                in_flight.insert(order_id, at);
                // Paced from this send, so a pause is not made up for
                // by a burst.
                send_at = at + plan.interval;
                next += 1;
                if next == plan.orders {
                    last_send = Some(at);
                }
            }
            // Once every order is answered, everything still open is
            // cancelled, and again by the sweep below until it is final.
            if last_send.is_some() && !cancel_all_sent && in_flight.is_empty() {
                self.client.cancel_all(self.inst.instrument_id)?;
                self.book.cancel_all_sent(now);
                cancel_all_sent = true;
            }
            if next < plan.orders && !self.venue_up {
                let since = *down_since.get_or_insert(now);
                if now.duration_since(since) > VENUE_WAIT {
                    // Give up sending: the rest is never sent, and the
                    // report says how many that is.
                    self.gave_up = Some(format!(
                        "venue {} not Up for {VENUE_WAIT:?} with {} of {} orders left to send",
                        self.inst.venue,
                        plan.orders - next,
                        plan.orders
                    ));
                    next = plan.orders;
                    last_send = Some(now);
                }
            } else {
                down_since = None;
            }
            in_flight.retain(|_, sent| now.duration_since(*sent) < WINDOW_RELEASE);
            if let Some(last) = last_send {
                if self.book.first_open().is_none() {
                    let at = *settled_at.get_or_insert(now);
                    if now.duration_since(at) >= SETTLE {
                        return Ok(());
                    }
                } else {
                    settled_at = None;
                    if now.duration_since(last) > DRAIN_DEADLINE {
                        // The report names whatever never finished.
                        return Ok(());
                    }
                }
            }
            if self.venue_up && now >= next_sweep {
                for id in self.book.cancels_due(now, cancel_all_sent) {
                    self.client.cancel(id)?;
                    self.book.cancel_sent(id, now);
                }
                next_sweep = now + Duration::from_millis(100);
            }
            let wait = if next < plan.orders && self.venue_up && in_flight.len() < WINDOW {
                send_at
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(20))
            } else {
                Duration::from_millis(20)
            };
            if let Some(Some(id)) = self.step(wait)? {
                in_flight.remove(&id);
                if self.book.kind(id) == Some(Kind::RestThenCancel) {
                    self.book.want_cancel(id);
                }
            }
        }
    }
}

/// Prices around the reference, quantities small enough to pass min
/// notional (or, for `TinyMarket`, deliberately not).
fn make_order(
    inst: &InstrumentInfo,
    kind: Kind,
    order_id: u64,
    reference: i64,
    n: usize,
) -> NewOrder {
    let side = if n.is_multiple_of(2) {
        Side::Buy
    } else {
        Side::Sell
    };
    let tick = inst.tick.max(1);
    let on_tick = |p: i64| p - p.rem_euclid(tick);
    // ~2% away from the market for resting orders, ~1% through it for
    // crossing ones.
    let away = reference / 50;
    let through = reference / 100;
    let (rest_px, cross_px) = match side {
        Side::Buy => (on_tick(reference - away), on_tick(reference + through)),
        Side::Sell => (on_tick(reference + away), on_tick(reference - through)),
    };
    // A quantity worth about 20x the minimum notional, on the lot.
    let lot = inst.lot.max(1);
    let min_notional = inst.min_notional.max(1);
    let qty_for = |px: i64| {
        let q = (min_notional * 20 / px.max(1) as i128) as i64;
        (q - q % lot).max(lot) + lot * (n as i64 % 7)
    };
    let (ord_type, tif, price, qty) = match kind {
        Kind::RestThenCancel | Kind::RestUntilEnd => {
            (OrdType::Limit, TimeInForce::Gtc, rest_px, qty_for(rest_px))
        }
        Kind::LimitCross => (
            OrdType::Limit,
            TimeInForce::Gtc,
            cross_px,
            qty_for(cross_px),
        ),
        Kind::Market => (OrdType::Market, TimeInForce::Gtc, 0, qty_for(reference)),
        Kind::Ioc => (
            OrdType::Limit,
            TimeInForce::Ioc,
            cross_px,
            qty_for(cross_px) * 4,
        ),
        Kind::BadTick => (
            OrdType::Limit,
            TimeInForce::Gtc,
            rest_px + (tick / 2).max(1),
            qty_for(rest_px),
        ),
        Kind::TinyMarket => (OrdType::Market, TimeInForce::Gtc, 0, lot),
    };
    // A tick of 1 cannot be missed by half a tick: fall back to a bad lot.
    let qty = if kind == Kind::BadTick && tick == 1 && lot > 1 {
        qty + lot / 2
    } else {
        qty
    };
    NewOrder {
        order_id,
        instrument_id: inst.instrument_id,
        side,
        ord_type,
        tif,
        flags: 0,
        price,
        qty,
    }
}

/// One order in the book: its outcome so far and the strategy's own
/// bookkeeping around it.
struct Entry {
    outcome: Outcome,
    sent: Option<Instant>,
    /// The strategy wants this order gone (tolerant mode).
    want_cancel: bool,
    /// When the last Cancel (or CancelAll) covering it went out, while
    /// no answer to it has come.
    cancel_out: Option<Instant>,
    /// No Cancel before this (after a CancelRejected).
    cancel_not_before: Option<Instant>,
}

/// The strategy's own view of its orders, built only from what the
/// sidecar told it.
struct Book {
    orders: HashMap<u64, Entry>,
    order: Vec<u64>,
    started: Instant,
    price_scale: u8,
    qty_scale: u8,
}

impl Book {
    fn new(price_scale: u8, qty_scale: u8) -> Book {
        Book {
            orders: HashMap::new(),
            order: Vec::new(),
            started: Instant::now(),
            price_scale,
            qty_scale,
        }
    }

    fn start(&mut self, order_id: u64, kind: Kind) {
        self.order.push(order_id);
        self.orders.insert(
            order_id,
            Entry {
                outcome: Outcome {
                    order_id,
                    kind,
                    state: OrderState::PendingNew,
                    cum_qty: 0,
                    cum_notional: 0,
                    fills: 0,
                    reject: None,
                    answered: false,
                    fill_qty: 0,
                    fill_notional: 0,
                    final_qty: None,
                    final_notional: None,
                    messages: Vec::new(),
                },
                sent: None,
                want_cancel: false,
                cancel_out: None,
                cancel_not_before: None,
            },
        );
    }

    fn stamp(&self, at: Instant) -> String {
        format!("+{:.3}s", at.duration_since(self.started).as_secs_f64())
    }

    fn sent(&mut self, order_id: u64, at: Instant, what: &str) {
        let stamp = self.stamp(at);
        if let Some(e) = self.orders.get_mut(&order_id) {
            e.sent = Some(at);
            e.outcome.messages.push(format!("{stamp} sent {what}"));
        }
    }

    fn sent_at(&self, order_id: u64) -> Option<Instant> {
        self.orders.get(&order_id).and_then(|e| e.sent)
    }

    fn note(&mut self, order_id: u64, what: &str) {
        let stamp = self.stamp(Instant::now());
        if let Some(e) = self.orders.get_mut(&order_id) {
            e.outcome.messages.push(format!("{stamp} {what}"));
        }
    }

    /// Notes `what` on every order not yet final.
    fn note_open(&mut self, what: &str) {
        let stamp = self.stamp(Instant::now());
        for e in self.orders.values_mut() {
            if !e.outcome.state.is_terminal() {
                e.outcome.messages.push(format!("{stamp} {what}"));
            }
        }
    }

    fn kind(&self, order_id: u64) -> Option<Kind> {
        self.orders.get(&order_id).map(|e| e.outcome.kind)
    }

    fn want_cancel(&mut self, order_id: u64) {
        if let Some(e) = self.orders.get_mut(&order_id) {
            e.want_cancel = true;
        }
    }

    /// A CancelAll went out: every order not final is covered by it.
    fn cancel_all_sent(&mut self, at: Instant) {
        let stamp = self.stamp(at);
        for e in self.orders.values_mut() {
            if !e.outcome.state.is_terminal() {
                e.want_cancel = true;
                e.cancel_out = Some(at);
                e.outcome.messages.push(format!("{stamp} sent CancelAll"));
            }
        }
    }

    fn cancel_sent(&mut self, order_id: u64, at: Instant) {
        let stamp = self.stamp(at);
        if let Some(e) = self.orders.get_mut(&order_id) {
            e.cancel_out = Some(at);
            e.outcome.messages.push(format!("{stamp} sent Cancel"));
        }
    }

    /// Orders to cancel now: those the strategy wants gone (every open
    /// one once `all` is set) that are not final, have no cancel out (or
    /// one unanswered for [`CANCEL_RETRY`]) and are past any back-off.
    fn cancels_due(&mut self, now: Instant, all: bool) -> Vec<u64> {
        let mut due = Vec::new();
        for id in &self.order {
            let Some(e) = self.orders.get_mut(id) else {
                continue;
            };
            if e.outcome.state.is_terminal() {
                continue;
            }
            // An order not yet answered has its answer on the way: its
            // cancel would only race it. Unanswered for long, it is sent.
            if !e.outcome.answered && e.sent.is_some_and(|t| now.duration_since(t) < CANCEL_RETRY) {
                continue;
            }
            if all {
                e.want_cancel = true;
            }
            if !e.want_cancel
                || e.cancel_out
                    .is_some_and(|t| now.duration_since(t) < CANCEL_RETRY)
                || e.cancel_not_before.is_some_and(|t| now < t)
            {
                continue;
            }
            due.push(*id);
        }
        due
    }

    /// Applies one message; returns the order id when this was the first
    /// answer to that order.
    fn apply(&mut self, msg: &Outbound) -> Option<u64> {
        let (ps, qs) = (self.price_scale, self.qty_scale);
        let qty = |m: i64| format_fixed(m as i128, qs);
        let notional = |m: i128| format_fixed(m, ps + qs);
        let id = match msg {
            Outbound::Accepted { order_id, .. }
            | Outbound::Rejected { order_id, .. }
            | Outbound::Canceled { order_id, .. }
            | Outbound::CancelRejected { order_id, .. }
            | Outbound::Expired { order_id, .. } => *order_id,
            Outbound::Fill(f) => f.order_id,
            Outbound::OrderStatus(s) => s.order_id,
            _ => return None,
        };
        let stamp = self.stamp(Instant::now());
        let e = self.orders.get_mut(&id)?;
        let o = &mut e.outcome;
        let was = o.state;
        let first = !o.answered && !matches!(msg, Outbound::CancelRejected { .. });
        // The state this message moves the order to, if any, and whether
        // it is the order's terminal report.
        let mut text = String::new();
        let to = match msg {
            Outbound::Accepted { venue_order_id, .. } => {
                let _ = write!(text, "Accepted (venue order id {venue_order_id:?})");
                // A late Accepted must not move an order that went further;
                // one after Unknown or Rejected is the venue's word that
                // the order is live.
                matches!(
                    was,
                    OrderState::PendingNew | OrderState::Unknown | OrderState::Rejected
                )
                .then_some(OrderState::New)
            }
            Outbound::Rejected {
                reason, text: t, ..
            } => {
                let _ = write!(text, "Rejected {reason:?}: {t}");
                (!was.is_terminal()).then(|| {
                    o.reject = Some(*reason);
                    OrderState::Rejected
                })
            }
            Outbound::Fill(f) => {
                let _ = write!(
                    text,
                    "Fill {} at {} (trade {}): cum {} notional {} leaves {}",
                    qty(f.last_qty),
                    format_fixed(f.last_price as i128, ps),
                    f.trade_id,
                    qty(f.cum_qty),
                    notional(f.cum_notional),
                    qty(f.leaves_qty)
                );
                o.fills += 1;
                o.fill_qty += f.last_qty;
                o.fill_notional += f.last_price as i128 * f.last_qty as i128;
                o.cum_qty = f.cum_qty;
                o.cum_notional = f.cum_notional;
                // A fill after Canceled or Expired is applied and the
                // order stays where it was (as the sidecar keeps it); one
                // after Rejected reopens it.
                if !was.is_terminal() || was == OrderState::Rejected {
                    Some(if f.leaves_qty == 0 {
                        OrderState::Filled
                    } else {
                        OrderState::PartiallyFilled
                    })
                } else {
                    None
                }
            }
            Outbound::Canceled { cum_qty, .. } => {
                let _ = write!(text, "Canceled, cum {}", qty(*cum_qty));
                (!was.is_terminal()).then(|| {
                    o.cum_qty = *cum_qty;
                    OrderState::Canceled
                })
            }
            Outbound::Expired { cum_qty, .. } => {
                let _ = write!(text, "Expired, cum {}", qty(*cum_qty));
                (!was.is_terminal()).then(|| {
                    o.cum_qty = *cum_qty;
                    OrderState::Expired
                })
            }
            Outbound::CancelRejected {
                reason, text: t, ..
            } => {
                let _ = write!(text, "CancelRejected {reason:?}: {t}");
                e.cancel_out = None;
                e.cancel_not_before = Some(Instant::now() + CANCEL_BACKOFF);
                None
            }
            Outbound::OrderStatus(s) => {
                let _ = write!(
                    text,
                    "OrderStatus {:?}: cum {} notional {} leaves {}",
                    s.state,
                    qty(s.cum_qty),
                    notional(s.cum_notional),
                    qty(s.leaves_qty)
                );
                // The sidecar's statement of where the order stands.
                o.cum_qty = s.cum_qty;
                o.cum_notional = s.cum_notional;
                Some(s.state)
            }
            _ => None,
        };
        if let Some(to) = to {
            o.state = to;
            if to.is_terminal() {
                let (q, n) = match msg {
                    Outbound::Fill(f) => (Some(f.cum_qty), Some(f.cum_notional)),
                    Outbound::OrderStatus(s) => (Some(s.cum_qty), Some(s.cum_notional)),
                    Outbound::Canceled { cum_qty, .. } | Outbound::Expired { cum_qty, .. } => {
                        (Some(*cum_qty), None)
                    }
                    _ => (None, None),
                };
                o.final_qty = q;
                o.final_notional = n;
            } else {
                o.final_qty = None;
                o.final_notional = None;
            }
            if to != OrderState::Rejected {
                o.reject = None;
            }
        }
        if o.state.is_terminal() {
            e.cancel_out = None;
        }
        if first {
            o.answered = true;
        }
        o.messages.push(format!("{stamp} {text}"));
        first.then_some(id)
    }

    fn is_terminal(&self, order_id: u64) -> bool {
        self.orders
            .get(&order_id)
            .is_some_and(|e| e.outcome.state.is_terminal())
    }

    fn first_open(&self) -> Option<u64> {
        self.order.iter().copied().find(|id| !self.is_terminal(*id))
    }

    fn into_outcomes(mut self) -> Vec<Outcome> {
        self.order
            .iter()
            .filter_map(|id| self.orders.remove(id).map(|e| e.outcome))
            .collect()
    }
}
