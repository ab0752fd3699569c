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
//! Tolerant mode with [`Plan::reconnect`] (the chaos run, where the
//! sidecar is killed and restarted) also survives the sidecar's death: on
//! a closed or broken connection it connects again with back-off (for up
//! to [`RECONNECT_WAIT`]), says Hello, asks `ResendFrom(last + 1)` when
//! HelloAck's `next_seq` says it missed messages, and once the replay has
//! caught up sends again every NewOrder that has no answer at all (same
//! order id: the sidecar answers a known one with its OrderStatus) and
//! every cancel it still wants. Every sequenced message's number must be
//! exactly one above the last processed one; gaps and repeats are counted
//! in the report's [`LinkReport`], with the reconnects.
//!
//! Either way every message about an order is kept in its record.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
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
    /// The connection to the sidecar: reconnects and sequence numbers.
    pub link: LinkReport,
}

/// How a strategy's connection to the sidecar went: its reconnects and
/// the sequence numbers it saw (rules 2 and 3 of the protocol).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkReport {
    /// Connections made again after the first.
    pub reconnects: u32,
    /// Sequenced messages processed (each number once).
    pub sequenced: u64,
    /// Sequenced messages more than one above the last processed one, and
    /// the numbers skipped over by them in all (never seen).
    pub seq_gaps: u64,
    pub seq_missing: u64,
    /// Sequence numbers seen again: messages at or below the last
    /// processed one, and numbers a HelloAck handed out a second time
    /// (`next_seq` at or below the last processed one).
    pub seq_repeats: u64,
    /// Messages sent live between a HelloAck and the replay its ResendFrom
    /// asked for, skipped unprocessed: the replay carries them again, in
    /// their place.
    pub seq_early: u64,
    /// HelloAck's epoch, for the first connection and each reconnect (0
    /// from a sidecar that does not say).
    pub epochs: Vec<u32>,
    /// NewOrders sent again after a reconnect (they had no answer).
    pub resent_orders: u64,
    /// Cancels that had no answer when the connection went, sent again.
    pub resent_cancels: u64,
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
    #[error("could not reach the sidecar again within {0:?}: {1}")]
    Reconnect(Duration, ClientError),
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
/// Reconnecting: how long to keep trying (the socket is gone or refuses
/// while the sidecar is down), and the longest pause between two tries.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(60);
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
/// Reconnecting: the longest wait for a replay to catch up; after it the
/// numbers still missing count as a gap.
const CATCH_UP_WAIT: Duration = Duration::from_secs(30);

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
    /// Tolerant mode: reconnect when the sidecar goes away (see the
    /// module docs) instead of failing.
    pub reconnect: bool,
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
    let link = LinkReport {
        epochs: vec![client.epoch()],
        ..LinkReport::default()
    };
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
        last_seq: client.next_seq().saturating_sub(1),
        gave_up: None,
        client,
        inst,
        reference,
        socket: socket.to_owned(),
        name: plan.name.clone(),
        reconnect: plan.tolerant && plan.reconnect,
        lost: false,
        catch_up: None,
        resume_due: false,
        link,
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
        link: s.link,
    })
}

/// A replay asked for after a reconnect, not yet caught up.
#[derive(Debug, Clone, Copy)]
struct CatchUp {
    /// The last number sent before this connection (`next_seq - 1`).
    target: u64,
    /// HelloAck's `next_seq`: messages from it on may come live before
    /// the replay, and come again in it.
    next_seq: u64,
    /// A replayed message (below `next_seq`) has come: from here on the
    /// replay goes on in order, so a number skipped is a gap.
    replaying: bool,
    since: Instant,
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
    socket: PathBuf,
    name: String,
    /// Reconnect on a lost connection (tolerant mode, [`Plan::reconnect`]).
    reconnect: bool,
    /// The connection is gone; reconnect before anything else.
    lost: bool,
    /// Reconnected, and the replay has not caught up yet: nothing is sent.
    catch_up: Option<CatchUp>,
    /// Reconnected and caught up: unanswered orders and cancels are due.
    resume_due: bool,
    link: LinkReport,
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
        if self.lost {
            return Ok(None);
        }
        let got = match self.client.recv_timeout(timeout) {
            Ok(got) => got,
            Err(e) => {
                self.link_lost(e)?;
                return Ok(None);
            }
        };
        let Some((seq, msg)) = got else {
            return Ok(None);
        };
        let at = Instant::now();
        if seq != 0 && !self.take_seq(seq) {
            return Ok(Some(None));
        }
        if let Outbound::Error {
            reason: Reason::ResendUnavailable,
            ..
        } = &msg
        {
            if let Some(c) = self.catch_up {
                // Nothing is replayed: what was missed stays missed.
                self.give_up_catch_up(c);
            }
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

    /// Whether to process the sequenced message `seq` (rule 3: each
    /// number once, in order), counting gaps and repeats.
    fn take_seq(&mut self, seq: u64) -> bool {
        let expect = self.last_seq + 1;
        if seq < expect {
            self.link.seq_repeats += 1;
            if let Some(c) = &mut self.catch_up {
                c.replaying = true;
            }
            return false;
        }
        if seq > expect {
            if self
                .catch_up
                .is_some_and(|c| !c.replaying && seq >= c.next_seq)
            {
                // Sent live before the replay: it comes again in it.
                self.link.seq_early += 1;
                return false;
            }
            self.link.seq_gaps += 1;
            self.link.seq_missing += seq - expect;
        }
        self.last_seq = seq;
        self.link.sequenced += 1;
        if let Some(c) = &mut self.catch_up {
            if seq >= c.target {
                self.catch_up = None;
                self.resume_due = true;
            } else {
                c.replaying = true;
            }
        }
        true
    }

    /// The replay will not come (refused, or too slow): the numbers up to
    /// its target are a gap, and the strategy goes on from there.
    fn give_up_catch_up(&mut self, c: CatchUp) {
        if c.target > self.last_seq {
            self.link.seq_gaps += 1;
            self.link.seq_missing += c.target - self.last_seq;
            self.last_seq = c.target;
        }
        self.catch_up = None;
        self.resume_due = true;
    }

    /// A send or receive failed with `e`: with reconnecting on and the
    /// connection gone, the session is marked lost; otherwise the error.
    fn link_lost(&mut self, e: ClientError) -> Result<(), DemoStrategyError> {
        if !(self.reconnect && matches!(e, ClientError::Closed | ClientError::Io(_))) {
            return Err(e.into());
        }
        if !self.lost {
            self.lost = true;
            self.venue_up = false;
            self.catch_up = None;
            self.book.note_open(&format!("connection lost: {e}"));
        }
        Ok(())
    }

    /// Sends with `f`; `false` when the connection is (or just went) lost
    /// and reconnecting is on: the message may or may not have gone out.
    fn send_with(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<(), ClientError>,
    ) -> Result<bool, DemoStrategyError> {
        if self.lost {
            return Ok(false);
        }
        match f(&mut self.client) {
            Ok(()) => Ok(true),
            Err(e) => self.link_lost(e).map(|()| false),
        }
    }

    /// Ready to send: connected and caught up.
    fn ready(&self) -> bool {
        !self.lost && self.catch_up.is_none()
    }

    /// Connects again (with back-off, for up to [`RECONNECT_WAIT`]) and
    /// asks for what was missed.
    fn reconnect(&mut self) -> Result<(), DemoStrategyError> {
        let deadline = Instant::now() + RECONNECT_WAIT;
        let mut pause = Duration::from_millis(20);
        let client = loop {
            match Client::connect(&self.socket, &self.name) {
                Ok(c) => break c,
                Err(e) if Instant::now() >= deadline => {
                    return Err(DemoStrategyError::Reconnect(RECONNECT_WAIT, e))
                }
                Err(_) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RECONNECT_BACKOFF);
                }
            }
        };
        let next = client.next_seq().max(1);
        self.client = client;
        self.lost = false;
        self.venue_up = false;
        self.link.reconnects += 1;
        self.link.epochs.push(self.client.epoch());
        self.book.note_open(&format!(
            "reconnected (epoch {}, next seq {next}, last processed {})",
            self.client.epoch(),
            self.last_seq
        ));
        if next <= self.last_seq {
            // The sidecar hands out numbers already processed again.
            self.link.seq_repeats += self.last_seq + 1 - next;
            self.last_seq = next - 1;
        }
        if next == self.last_seq + 1 {
            self.resume_due = true;
            return Ok(());
        }
        let from = self.last_seq + 1;
        if self.send_with(|c| c.resend_from(from))? {
            self.catch_up = Some(CatchUp {
                target: next - 1,
                next_seq: next,
                replaying: false,
                since: Instant::now(),
            });
        }
        Ok(())
    }

    /// Caught up after a reconnect: sends again every NewOrder without an
    /// answer (same order id) and lets the sweep send the cancels whose
    /// answer never came.
    fn resume(&mut self, plan: &Plan) -> Result<(), DemoStrategyError> {
        self.resume_due = false;
        for id in self.book.unanswered() {
            let Some(local) = (id as usize).checked_sub(1) else {
                continue;
            };
            let (_, _, order) = self.order(plan, local);
            if !self.send_with(|c| c.new_order(&order))? {
                return Ok(());
            }
            self.book.note(id, "sent NewOrder again (after reconnect)");
            self.link.resent_orders += 1;
        }
        self.link.resent_cancels += self.book.forget_cancels_out() as u64;
        Ok(())
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
            if self.lost {
                self.reconnect()?;
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
            if self.lost {
                self.reconnect()?;
            }
            let now = Instant::now();
            if let Some(c) = self.catch_up {
                if now.duration_since(c.since) > CATCH_UP_WAIT {
                    self.give_up_catch_up(c);
                }
            }
            if self.resume_due && self.ready() {
                self.resume(plan)?;
            }
            // Send while the venue is Up and the window has room.
            while next < plan.orders
                && self.venue_up
                && self.ready()
                && in_flight.len() < WINDOW
                && Instant::now() >= send_at
            {
                let (order_id, kind, order) = self.order(plan, next);
                self.book.start(order_id, kind);
                let at = Instant::now();
                // Sent or not, it is in the book: if the connection went,
                // it is sent again once reconnected and caught up.
                let gone = !self.send_with(|c| c.new_order(&order))?;
                self.book.sent(order_id, at, "NewOrder");
                in_flight.insert(order_id, at);
                // Paced from this send, so a pause is not made up for
                // by a burst.
                send_at = at + plan.interval;
                next += 1;
                if next == plan.orders {
                    last_send = Some(at);
                }
                if gone {
                    break;
                }
            }
            // Once every order is answered, everything still open is
            // cancelled, and again by the sweep below until it is final.
            if last_send.is_some() && !cancel_all_sent && in_flight.is_empty() && self.ready() {
                // Lost with it, its orders' cancels are sent again.
                let instrument = self.inst.instrument_id;
                self.send_with(|c| c.cancel_all(instrument))?;
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
            if self.venue_up && self.ready() && now >= next_sweep {
                for id in self.book.cancels_due(now, cancel_all_sent) {
                    let gone = !self.send_with(|c| c.cancel(id))?;
                    self.book.cancel_sent(id, now);
                    if gone {
                        break;
                    }
                }
                next_sweep = now + Duration::from_millis(100);
            }
            // A zero wait takes only what was already read: while not
            // ready (catching up) nothing is sent, so read for real.
            let wait = if next < plan.orders
                && self.venue_up
                && self.ready()
                && in_flight.len() < WINDOW
            {
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

    /// Orders sent with no answer at all yet, in the order sent.
    fn unanswered(&self) -> Vec<u64> {
        self.order
            .iter()
            .copied()
            .filter(|id| {
                self.orders
                    .get(id)
                    .is_some_and(|e| e.sent.is_some() && !e.outcome.answered)
            })
            .collect()
    }

    /// Forgets every cancel out (and its back-off) of an open order, so
    /// that the sweep sends it again; returns how many there were.
    fn forget_cancels_out(&mut self) -> usize {
        let mut n = 0;
        for e in self.orders.values_mut() {
            if !e.outcome.state.is_terminal() && e.cancel_out.take().is_some() {
                e.cancel_not_before = None;
                n += 1;
            }
        }
        n
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_inbound, encode_outbound, FrameReader, Inbound, OrderStatus};
    use std::io::{Read, Write as _};
    use std::os::unix::net::{UnixListener, UnixStream};

    /// One connection of a scripted sidecar.
    struct Conn {
        sock: UnixStream,
        reader: FrameReader,
    }

    impl Conn {
        /// Accepts on `path` (bound now), answers Hello with `next_seq`
        /// and `epoch`, the instrument table and the venue Up.
        fn accept(path: &Path, next_seq: u64, epoch: u32) -> Conn {
            let listener = UnixListener::bind(path).unwrap();
            let (sock, _) = listener.accept().unwrap();
            // The socket file goes with its listener, as a killed
            // sidecar's does not: the next connect is refused until the
            // next bind either way.
            std::fs::remove_file(path).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut c = Conn {
                sock,
                reader: FrameReader::new(),
            };
            assert!(matches!(c.read(), Inbound::Hello { .. }));
            c.send(
                0,
                Outbound::HelloAck {
                    version: 2,
                    strategy_id: 1,
                    next_seq,
                    instrument_count: 1,
                    installation: 77,
                    epoch,
                },
            );
            c.send(0, Outbound::InstrumentInfo(inst()));
            c.send(
                0,
                Outbound::VenueStatus {
                    venue: 1,
                    state: VenueState::Up,
                    text: String::new(),
                },
            );
            c
        }

        fn read(&mut self) -> Inbound {
            loop {
                if let Some(body) = self.reader.next_frame().unwrap() {
                    return decode_inbound(body).unwrap();
                }
                let mut buf = [0u8; 512];
                let n = self.sock.read(&mut buf).unwrap();
                assert!(n > 0, "the strategy hung up");
                self.reader.feed(&buf[..n]);
            }
        }

        fn send(&mut self, seq: u64, msg: Outbound) {
            let mut out = Vec::new();
            encode_outbound(seq, &msg, &mut out);
            self.sock.write_all(&out).unwrap();
        }

        /// Reads until the strategy hangs up (its run is over).
        fn drain(mut self) -> Vec<Inbound> {
            let mut seen = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                while let Some(body) = self.reader.next_frame().unwrap() {
                    seen.push(decode_inbound(body).unwrap());
                }
                match self.sock.read(&mut buf) {
                    Ok(0) | Err(_) => return seen,
                    Ok(n) => self.reader.feed(&buf[..n]),
                }
            }
        }
    }

    fn inst() -> InstrumentInfo {
        InstrumentInfo {
            instrument_id: 1,
            venue: 1,
            category: 1,
            price_scale: 2,
            qty_scale: 5,
            tick: 1,
            lot: 1,
            min_qty: 1,
            min_notional: 50_000_000,
            symbol: "BTCUSDT".into(),
        }
    }

    fn fill(order_id: u64, cum: i64, leaves: i64, trade: &str) -> Outbound {
        Outbound::Fill(crate::protocol::Fill {
            order_id,
            last_qty: 100,
            last_price: 6_000_000,
            cum_qty: cum,
            cum_notional: cum as i128 * 6_000_000,
            avg_price: 6_000_000,
            leaves_qty: leaves,
            fee: crate::decimal::WideDecimal::new(0, 0),
            fee_asset: "BNB".into(),
            trade_id: trade.into(),
            venue_time_ms: 1,
            is_maker: false,
        })
    }

    fn accepted(order_id: u64) -> Outbound {
        Outbound::Accepted {
            order_id,
            venue_order_id: format!("1{order_id}"),
        }
    }

    fn expired(order_id: u64) -> Outbound {
        Outbound::OrderStatus(OrderStatus {
            order_id,
            state: OrderState::Expired,
            cum_qty: 0,
            cum_notional: 0,
            avg_price: 0,
            leaves_qty: 0,
        })
    }

    /// Two orders (a MARKET and an IOC: the mix from index 2), tolerant,
    /// reconnecting, against the scripted sidecar `script` on a fresh
    /// socket path.
    fn run_against(script: impl FnOnce(&Path) + Send + 'static) -> StrategyReport {
        run_paced(Duration::ZERO, script)
    }

    /// [`run_against`] with `interval` between the two orders.
    fn run_paced(
        interval: Duration,
        script: impl FnOnce(&Path) + Send + 'static,
    ) -> StrategyReport {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("og.sock");
        let server_path = path.clone();
        let server = std::thread::spawn(move || script(&server_path));
        // The first bind is the server's: wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(Instant::now() < deadline, "the fake sidecar never bound");
            std::thread::sleep(Duration::from_millis(5));
        }
        let plan = Plan {
            name: "demo".into(),
            first: 2,
            orders: 2,
            tolerant: true,
            interval,
            reconnect: true,
        };
        let report = run(&path, &plan, "BTCUSDT", "60000.00").unwrap();
        server.join().unwrap();
        report
    }

    /// The first connection: both orders arrive, order 1 is accepted
    /// (seq 1), and the sidecar dies.
    fn first_life(path: &Path) {
        let mut c = Conn::accept(path, 1, 1);
        for id in [1, 2] {
            assert!(matches!(c.read(), Inbound::NewOrder(o) if o.order_id == id));
        }
        c.send(1, accepted(1));
        drop(c);
        // Down for a while: connects are refused.
        std::thread::sleep(Duration::from_millis(200));
    }

    #[test]
    fn a_strategy_reconnects_catches_up_and_sends_its_unanswered_order_again() {
        let r = run_against(|path| {
            first_life(path);
            // Seq 2 was sent while it was away; seq 3 comes live before
            // the replay, which then carries it again.
            let mut c = Conn::accept(path, 3, 2);
            c.send(3, fill(1, 200, 0, "t2"));
            assert_eq!(c.read(), Inbound::ResendFrom { seq: 2 });
            c.send(2, fill(1, 100, 100, "t1"));
            c.send(3, fill(1, 200, 0, "t2"));
            // Caught up: order 2, never answered, is sent again; the
            // sidecar knows it and answers with its status.
            assert!(matches!(c.read(), Inbound::NewOrder(o) if o.order_id == 2));
            c.send(4, expired(2));
            let rest = c.drain();
            assert_eq!(rest, vec![Inbound::CancelAll { instrument_id: 1 }]);
        });
        assert_eq!(
            r.link,
            LinkReport {
                reconnects: 1,
                sequenced: 4,
                seq_early: 1,
                epochs: vec![1, 2],
                resent_orders: 1,
                ..LinkReport::default()
            }
        );
        let states: Vec<_> = r.outcomes.iter().map(|o| (o.state, o.fills)).collect();
        assert_eq!(
            states,
            vec![(OrderState::Filled, 2), (OrderState::Expired, 0)]
        );
        assert_eq!(
            r.outcomes[0].fill_qty, 200,
            "the early Fill is not counted twice"
        );
    }

    #[test]
    fn a_strategy_with_orders_still_to_send_reads_its_replay() {
        // Order 2 is due 300 ms after order 1: not yet sent when the
        // sidecar dies, and overdue while the strategy catches up.
        let r = run_paced(Duration::from_millis(300), |path| {
            let mut c = Conn::accept(path, 1, 1);
            assert!(matches!(c.read(), Inbound::NewOrder(o) if o.order_id == 1));
            c.send(1, accepted(1));
            drop(c);
            std::thread::sleep(Duration::from_millis(400));
            let mut c = Conn::accept(path, 3, 2);
            assert_eq!(c.read(), Inbound::ResendFrom { seq: 2 });
            // The venue is Up and order 2 overdue before the replay comes.
            std::thread::sleep(Duration::from_millis(100));
            c.send(2, fill(1, 200, 0, "t1"));
            assert!(matches!(c.read(), Inbound::NewOrder(o) if o.order_id == 2));
            c.send(3, expired(2));
            c.drain();
        });
        let l = &r.link;
        assert_eq!(
            (l.seq_gaps, l.sequenced, l.resent_orders),
            (0, 3, 0),
            "{l:?}"
        );
        let states: Vec<_> = r.outcomes.iter().map(|o| o.state).collect();
        assert_eq!(states, vec![OrderState::Filled, OrderState::Expired]);
    }

    #[test]
    fn a_gap_and_a_repeat_in_the_replay_are_counted() {
        let r = run_against(|path| {
            first_life(path);
            let mut c = Conn::accept(path, 4, 2);
            assert_eq!(c.read(), Inbound::ResendFrom { seq: 2 });
            // Seq 1 again, then 2, then 4: 3 never comes.
            c.send(1, accepted(1));
            c.send(2, fill(1, 100, 100, "t1"));
            c.send(4, fill(1, 200, 0, "t2"));
            assert!(matches!(c.read(), Inbound::NewOrder(o) if o.order_id == 2));
            c.send(5, expired(2));
            c.drain();
        });
        let l = &r.link;
        assert_eq!(
            (l.seq_gaps, l.seq_missing, l.seq_repeats, l.seq_early),
            (1, 1, 1, 0),
            "{l:?}"
        );
        assert_eq!(r.outcomes[0].state, OrderState::Filled);
    }

    #[test]
    fn a_sidecar_that_numbers_again_from_1_counts_as_repeats() {
        let r = run_against(|path| {
            first_life(path);
            // A restart that lost the numbering: HelloAck says 1 again.
            let mut c = Conn::accept(path, 1, 2);
            assert!(matches!(c.read(), Inbound::NewOrder(o) if o.order_id == 2));
            c.send(1, fill(1, 200, 0, "t1"));
            c.send(2, expired(2));
            c.drain();
        });
        assert_eq!(r.link.seq_repeats, 1, "{:?}", r.link);
        assert_eq!(r.link.seq_gaps, 0);
    }
}
