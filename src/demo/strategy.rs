//! The demo strategy: a deterministic mix of every kind of order, sent
//! through the sidecar with the Rust client, each order followed to a
//! terminal state, with the order round trip timed.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Client, ClientError};
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
    pub state: OrderState,
    pub cum_qty: i64,
    pub cum_notional: i128,
    pub fills: u32,
    pub reject: Option<Reason>,
}

/// What the demo strategy hands back for the summary and the ledger check.
pub struct StrategyReport {
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
}

const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `orders` orders on `symbol` at a market near `reference` (a price
/// mantissa at the instrument's scale) and follows each to its end.
pub fn run(
    socket: &Path,
    name: &str,
    symbol: &str,
    reference: i64,
    orders: usize,
) -> Result<StrategyReport, DemoStrategyError> {
    let mut client = Client::connect(socket, name)?;
    let inst = client
        .instruments()
        .iter()
        .find(|i| i.symbol == symbol)
        .cloned()
        .ok_or_else(|| DemoStrategyError::NoInstrument(symbol.to_owned()))?;
    wait_for_venue(&mut client, inst.venue)?;
    let mut book = Book::default();
    let mut round_trip = crate::demo::floor::new_histogram();
    for n in 0..orders {
        let order_id = n as u64 + 1;
        let kind = CYCLE[n % CYCLE.len()];
        let order = make_order(&inst, kind, order_id, reference, n);
        book.start(order_id, kind);
        let sent = Instant::now();
        client.new_order(&order)?;
        // Wait for the first answer: that is the order round trip.
        loop {
            let msg = recv(&mut client, order_id)?;
            let first = book.apply(&msg) == Some(order_id);
            if first {
                round_trip.saturating_record(sent.elapsed().as_nanos().max(1) as u64);
                break;
            }
        }
        if kind == Kind::RestThenCancel && !book.is_terminal(order_id) {
            client.cancel(order_id)?;
        }
    }
    // Everything still open (resting orders, partly filled crossing
    // limits) is cancelled at the end, so every order ends terminal.
    client.cancel_all(inst.instrument_id)?;
    while let Some(open) = book.first_open() {
        let msg = recv(&mut client, open)?;
        book.apply(&msg);
    }
    Ok(StrategyReport {
        price_scale: inst.price_scale,
        qty_scale: inst.qty_scale,
        outcomes: book.into_outcomes(),
        round_trip,
    })
}

/// A strategy does not send into a venue that is not up: wait for the
/// gateway to report it connected.
fn wait_for_venue(client: &mut Client, venue: u8) -> Result<(), DemoStrategyError> {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while Instant::now() < deadline {
        if let Some((
            _,
            Outbound::VenueStatus {
                venue: v, state, ..
            },
        )) = client.recv_timeout(Duration::from_millis(100))?
        {
            if v == venue && state == VenueState::Up {
                return Ok(());
            }
        }
    }
    Err(DemoStrategyError::VenueNotUp(venue))
}

fn recv(client: &mut Client, waiting_for: u64) -> Result<Outbound, DemoStrategyError> {
    match client.recv_timeout(ANSWER_TIMEOUT)? {
        Some((_seq, msg)) => Ok(msg),
        None => Err(DemoStrategyError::Timeout(waiting_for, ANSWER_TIMEOUT)),
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

/// The strategy's own view of its orders, built only from what the
/// sidecar told it.
#[derive(Default)]
struct Book {
    orders: HashMap<u64, Outcome>,
    order: Vec<u64>,
}

impl Book {
    fn start(&mut self, order_id: u64, kind: Kind) {
        self.order.push(order_id);
        self.orders.insert(
            order_id,
            Outcome {
                order_id,
                kind,
                state: OrderState::PendingNew,
                cum_qty: 0,
                cum_notional: 0,
                fills: 0,
                reject: None,
            },
        );
    }

    /// Applies one message; returns the order id when this was the first
    /// answer to that order.
    fn apply(&mut self, msg: &Outbound) -> Option<u64> {
        let (id, state) = match msg {
            Outbound::Accepted { order_id, .. } => (*order_id, OrderState::New),
            Outbound::Rejected {
                order_id, reason, ..
            } => {
                if let Some(o) = self.orders.get_mut(order_id) {
                    o.reject = Some(*reason);
                }
                (*order_id, OrderState::Rejected)
            }
            Outbound::Fill(f) => {
                let o = self.orders.get_mut(&f.order_id)?;
                let first = o.state == OrderState::PendingNew;
                o.fills += 1;
                o.cum_qty = f.cum_qty;
                o.cum_notional = f.cum_notional;
                let state = if f.leaves_qty == 0 {
                    OrderState::Filled
                } else {
                    OrderState::PartiallyFilled
                };
                if !o.state.is_terminal() {
                    o.state = state;
                }
                return first.then_some(f.order_id);
            }
            Outbound::Canceled { order_id, cum_qty } => {
                if let Some(o) = self.orders.get_mut(order_id) {
                    o.cum_qty = *cum_qty;
                }
                (*order_id, OrderState::Canceled)
            }
            Outbound::Expired { order_id, cum_qty } => {
                if let Some(o) = self.orders.get_mut(order_id) {
                    o.cum_qty = *cum_qty;
                }
                (*order_id, OrderState::Expired)
            }
            Outbound::OrderStatus(s) => (s.order_id, s.state),
            _ => return None,
        };
        let o = self.orders.get_mut(&id)?;
        let first = o.state == OrderState::PendingNew;
        // A late Accepted must not move an order that already went further.
        let late_accept = state == OrderState::New && o.state != OrderState::PendingNew;
        if !o.state.is_terminal() && !late_accept {
            o.state = state;
        }
        first.then_some(id)
    }

    fn is_terminal(&self, order_id: u64) -> bool {
        self.orders
            .get(&order_id)
            .is_some_and(|o| o.state.is_terminal())
    }

    fn first_open(&self) -> Option<u64> {
        self.order.iter().copied().find(|id| !self.is_terminal(*id))
    }

    fn into_outcomes(mut self) -> Vec<Outcome> {
        self.order
            .iter()
            .filter_map(|id| self.orders.remove(id))
            .collect()
    }
}
