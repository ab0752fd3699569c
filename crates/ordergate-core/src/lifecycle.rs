//! The order lifecycle tracker: the one owner of every order's state.
//!
//! Pure and deterministic: events in, strategy-facing [`OrderUpdate`] messages
//! out, no I/O and no clock. Every state change goes through one exhaustive
//! `match (phase, event)` table ([`transition`]); a pair the table does not
//! list is an invalid transition, which is counted and returned to the
//! caller as [`Outcome::Invalid`], never a panic.
//!
//! Decisions the table encodes:
//! - **Cancel races.** [`Phase::PendingCancel`] carries the state the order
//!   would be in without the cancel (`from`). A fill while a cancel is
//!   pending is reported and updates `from`; a fill that
//!   completes the order moves it to `Filled`. Every cancel request is
//!   answered exactly once, so a venue `CancelRejected` that arrives after
//!   the order ended (Binance `-2011 Unknown order sent.`) is *reported* to
//!   the strategy as `CancelRejected`, consistently, rather than swallowed.
//!   A `CancelRejected` with no cancel outstanding is invalid.
//! - **Fills before the ack.** Binance can deliver the trade before the
//!   order response; a fill on a `PendingNew` order is an implicit
//!   acceptance: the strategy first gets `Accepted` (empty venue order id,
//!   since fills do not carry it) and then the `Fill`. The late ack only
//!   records the venue order id.
//! - **Unknown.** A new order whose venue answer was lost is
//!   [`Working::Unknown`] (strategies get an `OrderStatus` Unknown); only
//!   the venue's word leaves it (ack, fill, cancel, expiry, reject).
//! - **Late events after the end.** A fill after `Canceled`/`Expired` (venues
//!   with a separate execution stream can deliver it last) is applied and
//!   reported: nothing is lost (the adapter holds final events until every
//!   fill the venue counts is in, so this is the exception). A `Rejected`
//!   order the venue then shows live (given up as "does not exist" past the
//!   documented bound, and there after all) reopens on its ack or fill and
//!   is counted in `reopened`. Late acks and repeated terminal events are
//!   ignored and counted.
//! - **Overfill.** A fill taking the cumulative quantity past the order
//!   quantity is applied (the venue traded it), reported, flagged on the
//!   order and counted; leaves never go negative and nothing wraps (an
//!   `i64` overflow is an invalid event instead).
//! - **Filled is the venue's word.** A fill completes the order when the
//!   venue says the order is filled, or when its trades add up to the
//!   order's base quantity; a quote-sized order only on the venue's word
//!   (its lot rounding can leave it short for good). `Completed` ends an
//!   order the venue calls filled after its last fill was reported.
//! - **Trade ids** are the venue adapter's to de-duplicate (it knows what
//!   identifies a trade on its venue, and sees replays after a reconnect);
//!   the tracker applies every fill it is given, and keeps each order's
//!   trade ids so a restarted sidecar can tell its adapter which fills
//!   the strategy already has.
//! - **Runs.** Each order keeps the namespace (installation, epoch) its
//!   client id was minted in: orders adopted from an earlier run are
//!   matched by their own epoch, new ones get this run's.
//!
//! Memory: every order is kept, keyed by [`OrderKey`], so a duplicate
//! order id is always caught, across restarts too (the journal restores
//! the table). That costs a few hundred bytes per order (more with many
//! fills). A set of open keys keeps `open_orders` cheap.

use std::collections::{BTreeSet, HashMap};

use crate::decimal::{self, WideDecimal};
use crate::ids::{ClientId, InstrumentId, Namespace, OrderKey, StrategyId};
use crate::instrument::Instrument;
use crate::model::ExecEvent;
use crate::model::{
    flags, Fill, NewOrder, OrdType, OrderRequest, OrderState, OrderStatus, OrderUpdate, Reason,
    Side, TimeInForce,
};

/// What happened to an order, as the table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The strategy asked to cancel.
    CancelRequested,
    /// The gateway could not send the order (queue full).
    GatewayRejected,
    Accepted,
    Rejected,
    /// A fill; `completes` when the cumulative quantity reaches the order's.
    Fill {
        completes: bool,
    },
    Canceled,
    CancelRejected,
    Expired,
    /// The venue's answer to the new order was lost or said "status
    /// unknown": nobody knows yet whether it exists.
    OutcomeUnknown,
    /// The venue says the order is filled; its fills were all reported.
    Completed,
}

/// Where an order stands at the venue while no cancel is pending: the
/// states a pending cancel can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Working {
    PendingNew,
    /// The place's outcome is unknown; only the venue settles it.
    Unknown,
    New,
    PartiallyFilled,
}

impl Working {
    pub fn state(self) -> OrderState {
        match self {
            Working::PendingNew => OrderState::PendingNew,
            Working::Unknown => OrderState::Unknown,
            Working::New => OrderState::New,
            Working::PartiallyFilled => OrderState::PartiallyFilled,
        }
    }
}

/// The tracker's state of an order. A pending cancel carries the state it
/// came from as data, so "pending cancel of a filled order" cannot be
/// written down. Strategies see [`Phase::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    Working(Working),
    /// A cancel is outstanding; without it the order would be in `from`.
    PendingCancel {
        from: Working,
    },
    Filled,
    Canceled,
    Rejected,
    Expired,
}

impl Phase {
    pub const PENDING_NEW: Phase = Phase::Working(Working::PendingNew);

    /// The state as strategies are told it.
    pub fn state(self) -> OrderState {
        match self {
            Phase::Working(w) => w.state(),
            Phase::PendingCancel { .. } => OrderState::PendingCancel,
            Phase::Filled => OrderState::Filled,
            Phase::Canceled => OrderState::Canceled,
            Phase::Rejected => OrderState::Rejected,
            Phase::Expired => OrderState::Expired,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.state().is_terminal()
    }
}

/// What the table decides for a (phase, event) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Move to this phase and report the event (inside a pending cancel,
    /// `PendingCancel { from }` records where the order would now be).
    Go(Phase),
    /// Enter `PendingCancel` (or stay in it for another attempt).
    StartCancel,
    /// A cancel failed while pending: back to the state it came from once
    /// no other cancel is outstanding. Report `CancelRejected`.
    Restore,
    /// Keep the phase, apply and report (late fill, overfill, the answer
    /// to a cancel that lost the race).
    Stay,
    /// A duplicate or late event with nothing to change: count it, report
    /// nothing (a late ack still records the venue order id).
    Ignore,
}

/// The lifecycle table. Inside `PendingCancel`, events the cancel does not
/// settle are decided as they would be without it. `None` is an invalid
/// transition.
pub fn transition(phase: Phase, ev: EventKind) -> Option<Action> {
    use Action::*;
    use EventKind as E;
    use Phase::{Canceled, Expired, Filled, PendingCancel, Rejected};
    use Working::{New, PartiallyFilled, PendingNew, Unknown};
    let fill_to = |completes| {
        if completes {
            Filled
        } else {
            Phase::Working(PartiallyFilled)
        }
    };
    match (phase, ev) {
        (Phase::Working(PendingNew), E::CancelRequested) => Some(StartCancel),
        (Phase::Working(PendingNew), E::GatewayRejected) => Some(Go(Rejected)),
        (Phase::Working(PendingNew), E::Accepted) => Some(Go(Phase::Working(New))),
        (Phase::Working(PendingNew), E::Rejected) => Some(Go(Rejected)),
        (Phase::Working(PendingNew), E::Fill { completes }) => Some(Go(fill_to(completes))),
        (Phase::Working(PendingNew), E::Canceled) => Some(Go(Canceled)),
        (Phase::Working(PendingNew), E::CancelRejected) => None,
        (Phase::Working(PendingNew), E::Expired) => Some(Go(Expired)),
        (Phase::Working(PendingNew), E::OutcomeUnknown) => Some(Go(Phase::Working(Unknown))),
        (Phase::Working(PendingNew), E::Completed) => Some(Go(Filled)),

        // Only the venue's word leaves Unknown.
        (Phase::Working(Unknown), E::CancelRequested) => Some(StartCancel),
        (Phase::Working(Unknown), E::GatewayRejected) => None,
        (Phase::Working(Unknown), E::Accepted) => Some(Go(Phase::Working(New))),
        (Phase::Working(Unknown), E::Rejected) => Some(Go(Rejected)),
        (Phase::Working(Unknown), E::Fill { completes }) => Some(Go(fill_to(completes))),
        (Phase::Working(Unknown), E::Canceled) => Some(Go(Canceled)),
        (Phase::Working(Unknown), E::CancelRejected) => None,
        (Phase::Working(Unknown), E::Expired) => Some(Go(Expired)),
        (Phase::Working(Unknown), E::OutcomeUnknown) => Some(Ignore),
        (Phase::Working(Unknown), E::Completed) => Some(Go(Filled)),

        (Phase::Working(New), E::CancelRequested) => Some(StartCancel),
        (Phase::Working(New), E::GatewayRejected) => None,
        (Phase::Working(New), E::Accepted) => Some(Ignore),
        (Phase::Working(New), E::Rejected) => None,
        (Phase::Working(New), E::Fill { completes }) => Some(Go(fill_to(completes))),
        (Phase::Working(New), E::Canceled) => Some(Go(Canceled)),
        (Phase::Working(New), E::CancelRejected) => None,
        (Phase::Working(New), E::Expired) => Some(Go(Expired)),
        // A retried request's answer lost: the order is known live.
        (Phase::Working(New), E::OutcomeUnknown) => Some(Ignore),
        (Phase::Working(New), E::Completed) => Some(Go(Filled)),

        (Phase::Working(PartiallyFilled), E::CancelRequested) => Some(StartCancel),
        (Phase::Working(PartiallyFilled), E::GatewayRejected) => None,
        // The ack after an implicit acceptance by a fill.
        (Phase::Working(PartiallyFilled), E::Accepted) => Some(Ignore),
        (Phase::Working(PartiallyFilled), E::Rejected) => None,
        (Phase::Working(PartiallyFilled), E::Fill { completes }) => Some(Go(fill_to(completes))),
        (Phase::Working(PartiallyFilled), E::Canceled) => Some(Go(Canceled)),
        (Phase::Working(PartiallyFilled), E::CancelRejected) => None,
        (Phase::Working(PartiallyFilled), E::Expired) => Some(Go(Expired)),
        (Phase::Working(PartiallyFilled), E::OutcomeUnknown) => Some(Ignore),
        (Phase::Working(PartiallyFilled), E::Completed) => Some(Go(Filled)),

        (PendingCancel { .. }, E::CancelRequested) => Some(StartCancel),
        (PendingCancel { .. }, E::GatewayRejected) => None,
        (
            PendingCancel { from },
            E::Accepted | E::Rejected | E::Fill { .. } | E::OutcomeUnknown,
        ) => match transition(Phase::Working(from), ev)? {
            Go(Phase::Working(w)) => Some(Go(PendingCancel { from: w })),
            Go(end) => Some(Go(end)),
            Ignore => Some(Ignore),
            _ => None,
        },
        (PendingCancel { .. }, E::Canceled) => Some(Go(Canceled)),
        (PendingCancel { .. }, E::CancelRejected) => Some(Restore),
        (PendingCancel { .. }, E::Expired) => Some(Go(Expired)),
        (PendingCancel { .. }, E::Completed) => Some(Go(Filled)),

        (Filled, E::CancelRequested) => None,
        (Filled, E::GatewayRejected) => None,
        // Binance's FULL response can follow the trades that filled it.
        (Filled, E::Accepted) => Some(Ignore),
        (Filled, E::Rejected) => None,
        // Only reachable as an overfill: reported and flagged.
        (Filled, E::Fill { .. }) => Some(Stay),
        (Filled, E::Canceled) => None,
        (Filled, E::CancelRejected) => Some(Stay),
        (Filled, E::Expired) => None,
        (Filled, E::OutcomeUnknown) => Some(Ignore),
        (Filled, E::Completed) => Some(Ignore),

        (Canceled, E::CancelRequested) => None,
        (Canceled, E::GatewayRejected) => None,
        (Canceled, E::Accepted) => Some(Ignore),
        (Canceled, E::Rejected) => None,
        // A fill the venue reported after the cancel: applied, never lost.
        (Canceled, E::Fill { .. }) => Some(Stay),
        (Canceled, E::Canceled) => Some(Ignore),
        (Canceled, E::CancelRejected) => Some(Stay),
        (Canceled, E::Expired) => None,
        (Canceled, E::OutcomeUnknown) => Some(Ignore),
        (Canceled, E::Completed) => None,

        (Rejected, E::CancelRequested) => None,
        (Rejected, E::GatewayRejected) => None,
        // Late venue truth: an order given up as never placed ("does not
        // exist" past the documented bound) turns out live. It reopens.
        (Rejected, E::Accepted) => Some(Go(Phase::Working(New))),
        (Rejected, E::Rejected) => Some(Ignore),
        (Rejected, E::Fill { completes }) => Some(Go(fill_to(completes))),
        (Rejected, E::Canceled) => None,
        (Rejected, E::CancelRejected) => Some(Stay),
        (Rejected, E::Expired) => None,
        (Rejected, E::OutcomeUnknown) => Some(Ignore),
        (Rejected, E::Completed) => None,

        (Expired, E::CancelRequested) => None,
        (Expired, E::GatewayRejected) => None,
        (Expired, E::Accepted) => Some(Ignore),
        (Expired, E::Rejected) => None,
        (Expired, E::Fill { .. }) => Some(Stay),
        (Expired, E::Canceled) => None,
        (Expired, E::CancelRejected) => Some(Stay),
        (Expired, E::Expired) => Some(Ignore),
        (Expired, E::OutcomeUnknown) => Some(Ignore),
        (Expired, E::Completed) => None,
    }
}

/// One order as the tracker holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub key: OrderKey,
    /// The run its client id was minted in.
    pub placed: Namespace,
    pub instrument: InstrumentId,
    pub price_scale: u8,
    pub qty_scale: u8,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    /// Mantissa at the price scale (ignored for MARKET).
    pub price: i64,
    /// MARKET order sized in quote units: `qty` is a notional mantissa and
    /// completion is judged on the cumulative notional.
    pub quote_qty: bool,
    pub qty: i64,
    /// The order's flags as the strategy sent them.
    pub flags: u8,
    pub phase: Phase,
    pub cum_qty: i64,
    /// At `price_scale + qty_scale`.
    pub cum_notional: i128,
    /// Fees summed per asset, exactly as the venue stated them.
    pub fees: Vec<(String, WideDecimal)>,
    /// Empty until the venue's ack arrives.
    pub venue_order_id: String,
    /// Cancel requests sent so far (the `n` of the cancel client id).
    pub cancel_attempts: u16,
    /// Cancel requests not answered yet.
    pub cancels_outstanding: u16,
    pub overfilled: bool,
    /// The venue's ids of the trades applied, in order.
    pub trades: Vec<String>,
    accepted_reported: bool,
}

impl Order {
    /// The state as strategies are told it.
    pub fn state(&self) -> OrderState {
        self.phase.state()
    }

    /// The client id the order was placed under.
    pub fn client_id(&self) -> ClientId {
        ClientId::order(self.placed, self.key)
    }

    /// The order as its venue session was given it.
    pub fn request(&self, queued_ns: u64) -> OrderRequest {
        OrderRequest {
            queued_ns,
            client_id: self.client_id(),
            instrument: self.instrument,
            side: self.side,
            ord_type: self.ord_type,
            tif: self.tif,
            flags: self.flags,
            price: self.price,
            qty: self.qty,
        }
    }

    pub fn avg_price(&self) -> i64 {
        decimal::average_price(self.cum_notional, self.cum_qty)
    }

    /// Quantity still to trade, never negative (in quote units for
    /// quote-sized orders).
    pub fn leaves_qty(&self) -> i64 {
        if self.phase.is_terminal() {
            return 0;
        }
        let done = if self.quote_qty {
            self.cum_notional
        } else {
            self.cum_qty as i128
        };
        (self.qty as i128 - done).clamp(0, i64::MAX as i128) as i64
    }

    pub fn status(&self) -> OrderStatus {
        OrderStatus {
            order_id: self.key.order_id,
            state: self.state(),
            cum_qty: self.cum_qty,
            cum_notional: self.cum_notional,
            avg_price: self.avg_price(),
            leaves_qty: self.leaves_qty(),
        }
    }

    fn add_fee(&mut self, asset: &str, fee: WideDecimal) -> bool {
        if fee.is_zero() && asset.is_empty() {
            return true;
        }
        match self.fees.iter_mut().find(|(a, _)| a == asset) {
            Some((_, sum)) => match add_wide(*sum, fee) {
                Some(s) => {
                    *sum = s;
                    true
                }
                None => false,
            },
            None => {
                self.fees.push((asset.to_owned(), fee));
                true
            }
        }
    }
}

/// Exact sum of two venue decimals at the wider of their scales.
pub fn add_wide(a: WideDecimal, b: WideDecimal) -> Option<WideDecimal> {
    let scale = a.scale.max(b.scale);
    let am = a.mantissa.checked_mul(decimal::pow10(scale - a.scale))?;
    let bm = b.mantissa.checked_mul(decimal::pow10(scale - b.scale))?;
    Some(WideDecimal::new(am.checked_add(bm)?, scale))
}

/// `submit` refused: the order id was used before; here is that order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order id {} already used (state {:?})", .0.order_id, .0.state)]
pub struct Duplicate(pub OrderStatus);

/// Why a cancel request is refused before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelRejectReason {
    #[error("no order with this id")]
    UnknownOrder,
    #[error("order is {0:?}, not open")]
    NotOpen(OrderState),
    #[error("too many cancel attempts for one order")]
    TooManyAttempts,
}

impl CancelRejectReason {
    pub fn reason(self) -> Reason {
        match self {
            CancelRejectReason::UnknownOrder => Reason::UnknownOrder,
            CancelRejectReason::NotOpen(_) | CancelRejectReason::TooManyAttempts => {
                Reason::OrderNotOpen
            }
        }
    }
}

/// What `on_venue_event` did with an event, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Duplicate or late, nothing changed (see [`Action::Ignore`]).
    Ignored,
    /// No order with this key and namespace (another tool's or
    /// installation's order, an unjournaled earlier run), or not an order
    /// event at all.
    UnknownOrder,
    Invalid {
        state: Phase,
        event: EventKind,
        why: &'static str,
    },
}

/// Event counts, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub invalid: u64,
    pub unknown_order: u64,
    pub ignored: u64,
    pub overfill: u64,
    /// Orders the venue showed live after we reported them Rejected.
    pub reopened: u64,
    /// Fills the venue reported after the order's final message.
    pub late_fills: u64,
}

/// A [`Lifecycle`]'s whole state, orders in key order (so two equal
/// trackers give equal snapshots).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LifecycleSnapshot {
    pub namespace: Namespace,
    pub orders: Vec<Order>,
    pub counters: Counters,
}

/// The tracker. Lives on the gateway thread; see the module docs.
#[derive(Debug)]
pub struct Lifecycle {
    namespace: Namespace,
    orders: HashMap<OrderKey, Order>,
    open: BTreeSet<OrderKey>,
    counters: Counters,
}

impl Lifecycle {
    /// `namespace` is this installation and run: new orders are placed in
    /// it; venue events for another installation's ids are not ours.
    pub fn new(namespace: Namespace) -> Self {
        Lifecycle {
            namespace,
            orders: HashMap::new(),
            open: BTreeSet::new(),
            counters: Counters::default(),
        }
    }

    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    /// New orders from now on are placed in `namespace` (a new run);
    /// orders already held keep theirs.
    pub fn begin_run(&mut self, namespace: Namespace) {
        self.namespace = namespace;
    }

    /// Everything the tracker holds, orders in key order: what a journal
    /// snapshot keeps.
    pub fn snapshot(&self) -> LifecycleSnapshot {
        let mut orders: Vec<Order> = self.orders.values().cloned().collect();
        orders.sort_by_key(|o| o.key);
        LifecycleSnapshot {
            namespace: self.namespace,
            orders,
            counters: self.counters,
        }
    }

    /// The tracker a snapshot describes.
    pub fn from_snapshot(snap: LifecycleSnapshot) -> Lifecycle {
        let open = snap
            .orders
            .iter()
            .filter(|o| !o.phase.is_terminal())
            .map(|o| o.key)
            .collect();
        Lifecycle {
            namespace: snap.namespace,
            orders: snap.orders.into_iter().map(|o| (o.key, o)).collect(),
            open,
            counters: snap.counters,
        }
    }

    /// Every order not final, in key order.
    pub fn all_open(&self) -> impl Iterator<Item = &Order> + '_ {
        self.open.iter().filter_map(move |k| self.orders.get(k))
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// Registers a validated order as `PendingNew`. A key seen before is
    /// refused with that order's status, so nothing is sent twice.
    pub fn submit(
        &mut self,
        key: OrderKey,
        instrument: &Instrument,
        req: &NewOrder,
    ) -> Result<(), Duplicate> {
        if let Some(o) = self.orders.get(&key) {
            return Err(Duplicate(o.status()));
        }
        let quote_qty = req.ord_type == OrdType::Market && req.flags & flags::QUOTE_QTY != 0;
        self.orders.insert(
            key,
            Order {
                key,
                placed: self.namespace,
                instrument: instrument.id,
                price_scale: instrument.price_scale,
                qty_scale: instrument.qty_scale,
                side: req.side,
                ord_type: req.ord_type,
                tif: req.tif,
                price: req.price,
                quote_qty,
                qty: req.qty,
                flags: req.flags,
                phase: Phase::PENDING_NEW,
                cum_qty: 0,
                cum_notional: 0,
                fees: Vec::new(),
                venue_order_id: String::new(),
                cancel_attempts: 0,
                cancels_outstanding: 0,
                overfilled: false,
                trades: Vec::new(),
                accepted_reported: false,
            },
        );
        self.open.insert(key);
        Ok(())
    }

    /// Moves an open order to `PendingCancel` and returns the attempt number
    /// `n` for `ClientId::cancel(namespace, key, n)` (1 for the first).
    pub fn request_cancel(&mut self, key: OrderKey) -> Result<u16, CancelRejectReason> {
        let o = self
            .orders
            .get_mut(&key)
            .ok_or(CancelRejectReason::UnknownOrder)?;
        match (transition(o.phase, EventKind::CancelRequested), o.phase) {
            (Some(Action::StartCancel), phase) => {
                let n = o
                    .cancel_attempts
                    .checked_add(1)
                    .ok_or(CancelRejectReason::TooManyAttempts)?;
                o.cancel_attempts = n;
                o.cancels_outstanding += 1;
                if let Phase::Working(from) = phase {
                    o.phase = Phase::PendingCancel { from };
                }
                Ok(n)
            }
            _ => Err(CancelRejectReason::NotOpen(o.state())),
        }
    }

    /// The gateway could not hand the order to its venue (ring full): the
    /// order ends `Rejected` and the strategy is told why.
    pub fn gateway_reject(
        &mut self,
        key: OrderKey,
        reason: Reason,
        text: &str,
        out: &mut impl FnMut(StrategyId, OrderUpdate),
    ) -> Outcome {
        self.apply(
            key,
            EventKind::GatewayRejected,
            Payload::Reject { reason, text },
            out,
        )
    }

    /// A cancel the gateway could not send: answered like a venue refusal.
    pub fn cancel_failed(
        &mut self,
        key: OrderKey,
        reason: Reason,
        text: &str,
        out: &mut impl FnMut(StrategyId, OrderUpdate),
    ) -> Outcome {
        self.apply(
            key,
            EventKind::CancelRejected,
            Payload::Reject { reason, text },
            out,
        )
    }

    /// Feeds one venue event; messages for strategies go to `out`.
    pub fn on_venue_event(
        &mut self,
        ev: &ExecEvent,
        out: &mut impl FnMut(StrategyId, OrderUpdate),
    ) -> Outcome {
        let (cid, kind, payload) = match ev {
            ExecEvent::Accepted {
                client_id,
                venue_order_id,
                ..
            } => (client_id, EventKind::Accepted, Payload::Ack(venue_order_id)),
            ExecEvent::Rejected {
                client_id,
                reason,
                text,
                ..
            } => (
                client_id,
                EventKind::Rejected,
                Payload::Reject {
                    reason: *reason,
                    text,
                },
            ),
            ExecEvent::Fill {
                client_id,
                trade_id,
                last_qty,
                last_price,
                fee,
                fee_asset,
                time_ms,
                is_maker,
                order_filled,
            } => {
                return self.on_fill(
                    client_id,
                    FillIn {
                        trade_id,
                        last_qty: *last_qty,
                        last_price: *last_price,
                        fee: *fee,
                        fee_asset,
                        time_ms: *time_ms,
                        is_maker: *is_maker,
                        order_filled: *order_filled,
                    },
                    out,
                )
            }
            ExecEvent::Canceled { client_id, .. } => {
                (client_id, EventKind::Canceled, Payload::None)
            }
            ExecEvent::CancelRejected {
                client_id,
                reason,
                text,
                ..
            } => (
                client_id,
                EventKind::CancelRejected,
                Payload::Reject {
                    reason: *reason,
                    text,
                },
            ),
            ExecEvent::Expired { client_id, .. } => (client_id, EventKind::Expired, Payload::None),
            ExecEvent::OutcomeUnknown { client_id, .. } => {
                (client_id, EventKind::OutcomeUnknown, Payload::Status)
            }
            ExecEvent::Completed { client_id } => {
                (client_id, EventKind::Completed, Payload::Status)
            }
        };
        match self.key_of(cid) {
            Some(key) => self.apply(key, kind, payload, out),
            None => self.unknown(),
        }
    }

    pub fn status(&self, key: OrderKey) -> Option<OrderStatus> {
        self.orders.get(&key).map(Order::status)
    }

    pub fn order(&self, key: OrderKey) -> Option<&Order> {
        self.orders.get(&key)
    }

    /// A strategy's orders that are not terminal, in order id order (what
    /// CancelAll cancels).
    pub fn open_orders(&self, strategy: StrategyId) -> impl Iterator<Item = &Order> + '_ {
        let lo = OrderKey {
            strategy,
            order_id: 0,
        };
        let hi = OrderKey {
            strategy,
            order_id: u64::MAX,
        };
        self.open
            .range(lo..=hi)
            .filter_map(move |k| self.orders.get(k))
    }

    fn key_of(&self, cid: &ClientId) -> Option<OrderKey> {
        let o = self.orders.get(&cid.key)?;
        (o.placed == cid.ns).then_some(cid.key)
    }

    fn unknown(&mut self) -> Outcome {
        self.counters.unknown_order += 1;
        Outcome::UnknownOrder
    }

    fn invalid(&mut self, state: Phase, event: EventKind, why: &'static str) -> Outcome {
        self.counters.invalid += 1;
        Outcome::Invalid { state, event, why }
    }

    fn on_fill(
        &mut self,
        cid: &ClientId,
        f: FillIn<'_>,
        out: &mut impl FnMut(StrategyId, OrderUpdate),
    ) -> Outcome {
        let Some(key) = self.key_of(cid) else {
            return self.unknown();
        };
        let o = &self.orders[&key];
        let state = o.phase;
        let probe = EventKind::Fill { completes: false };
        if f.last_qty <= 0 || f.last_price < 0 {
            return self.invalid(state, probe, "fill quantity not positive or price negative");
        }
        let (Some(cum_qty), Some(cum_notional)) = (
            o.cum_qty.checked_add(f.last_qty),
            o.cum_notional
                .checked_add(decimal::notional(f.last_price, f.last_qty)),
        ) else {
            return self.invalid(state, probe, "cumulative quantity would overflow");
        };
        let done = if o.quote_qty {
            cum_notional
        } else {
            cum_qty as i128
        };
        // The venue's word is final: an order is filled when the venue
        // says so, or when its trades add up to the order's quantity. A
        // quote-sized order completes only on the venue's word: its lot
        // rounding can leave it short of `qty` for good.
        let completes = f.order_filled || (!o.quote_qty && done >= o.qty as i128);
        let overfill = done > o.qty as i128;
        self.apply(
            key,
            EventKind::Fill { completes },
            Payload::Fill {
                f,
                cum_qty,
                cum_notional,
                overfill,
                implicit_ack: matches!(
                    state,
                    Phase::Working(Working::PendingNew | Working::Unknown)
                        | Phase::PendingCancel {
                            from: Working::PendingNew | Working::Unknown
                        }
                        | Phase::Rejected
                ),
            },
            out,
        )
    }

    fn apply(
        &mut self,
        key: OrderKey,
        kind: EventKind,
        payload: Payload<'_>,
        out: &mut impl FnMut(StrategyId, OrderUpdate),
    ) -> Outcome {
        let Some(o) = self.orders.get(&key) else {
            return self.unknown();
        };
        let state = o.phase;
        let Some(action) = transition(state, kind) else {
            return self.invalid(state, kind, "not in the lifecycle table");
        };
        let answers_cancel =
            matches!(action, Action::Restore | Action::Stay) && kind == EventKind::CancelRejected;
        if answers_cancel && o.cancels_outstanding == 0 {
            return self.invalid(state, kind, "cancel rejected with no cancel outstanding");
        }
        let o = self.orders.get_mut(&key).expect("checked above");
        let strategy = key.strategy;
        let order_id = key.order_id;
        if let Payload::Ack(v) = payload {
            if o.venue_order_id.is_empty() {
                v.clone_into(&mut o.venue_order_id);
            }
        }
        match action {
            Action::Ignore => {
                self.counters.ignored += 1;
                return Outcome::Ignored;
            }
            Action::StartCancel => {
                return self.invalid(state, kind, "cancels go through request_cancel")
            }
            Action::Go(p) => {
                if state.is_terminal() && !p.is_terminal() {
                    self.open.insert(key);
                    self.counters.reopened += 1;
                    o.accepted_reported = false;
                }
                o.phase = p;
            }
            Action::Restore => {
                if let (1, Phase::PendingCancel { from }) = (o.cancels_outstanding, o.phase) {
                    o.phase = Phase::Working(from);
                }
            }
            Action::Stay => {
                if matches!(kind, EventKind::Fill { .. }) && state.is_terminal() {
                    self.counters.late_fills += 1;
                }
            }
        }
        if matches!(kind, EventKind::CancelRejected | EventKind::Canceled) {
            o.cancels_outstanding = o.cancels_outstanding.saturating_sub(1);
        }
        if o.phase.is_terminal() {
            self.open.remove(&key);
        }
        match payload {
            Payload::Ack(v) => {
                o.accepted_reported = true;
                out(
                    strategy,
                    OrderUpdate::Accepted {
                        order_id,
                        venue_order_id: v.to_owned(),
                    },
                );
            }
            Payload::Reject { reason, text } => {
                let text = text.to_owned();
                out(
                    strategy,
                    if kind == EventKind::CancelRejected {
                        OrderUpdate::CancelRejected {
                            order_id,
                            reason,
                            text,
                        }
                    } else {
                        OrderUpdate::Rejected {
                            order_id,
                            reason,
                            text,
                        }
                    },
                );
            }
            Payload::Fill {
                f,
                cum_qty,
                cum_notional,
                overfill,
                implicit_ack,
            } => {
                o.cum_qty = cum_qty;
                o.cum_notional = cum_notional;
                if overfill && !o.overfilled {
                    o.overfilled = true;
                    self.counters.overfill += 1;
                }
                let fee_ok = o.add_fee(f.fee_asset, f.fee);
                o.trades.push(f.trade_id.to_owned());
                if implicit_ack && !o.accepted_reported {
                    o.accepted_reported = true;
                    out(
                        strategy,
                        OrderUpdate::Accepted {
                            order_id,
                            venue_order_id: String::new(),
                        },
                    );
                }
                out(
                    strategy,
                    OrderUpdate::Fill(Fill {
                        order_id,
                        last_qty: f.last_qty,
                        last_price: f.last_price,
                        cum_qty,
                        cum_notional,
                        avg_price: o.avg_price(),
                        leaves_qty: o.leaves_qty(),
                        fee: f.fee,
                        fee_asset: f.fee_asset.to_owned(),
                        trade_id: f.trade_id.to_owned(),
                        venue_time_ms: f.time_ms,
                        is_maker: f.is_maker,
                    }),
                );
                if !fee_ok {
                    // The fill itself is applied and reported; only the
                    // running fee sum could not hold it.
                    let st = o.phase;
                    return self.invalid(st, kind, "fee sum overflow");
                }
            }
            Payload::Status => {
                if matches!(o.phase.state(), OrderState::Unknown | OrderState::Filled) {
                    out(strategy, OrderUpdate::Status(o.status()));
                }
            }
            Payload::None => {
                let cum_qty = o.cum_qty;
                out(
                    strategy,
                    if kind == EventKind::Expired {
                        OrderUpdate::Expired { order_id, cum_qty }
                    } else {
                        OrderUpdate::Canceled { order_id, cum_qty }
                    },
                );
            }
        }
        Outcome::Applied
    }
}

/// A venue fill's fields, borrowed.
#[derive(Debug, Clone, Copy)]
struct FillIn<'a> {
    trade_id: &'a str,
    last_qty: i64,
    last_price: i64,
    fee: WideDecimal,
    fee_asset: &'a str,
    time_ms: u64,
    is_maker: bool,
    order_filled: bool,
}

/// The data an event carries besides its kind.
enum Payload<'a> {
    None,
    /// Outcome unknown, or filled without a fill to carry it: the
    /// strategy gets an OrderStatus saying so.
    Status,
    Ack(&'a str),
    Reject {
        reason: Reason,
        text: &'a str,
    },
    Fill {
        f: FillIn<'a>,
        cum_qty: i64,
        cum_notional: i128,
        overfill: bool,
        implicit_ack: bool,
    },
}
