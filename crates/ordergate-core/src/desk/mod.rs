//! The order desk: where every front end's orders meet the venues.
//!
//! It knows no wire format. A front end (the Unix-socket strategy
//! protocol today, a FIX acceptor later) turns its messages into
//! [`Request`]s for one of its strategies, reaching the desk through its
//! own input ring, and turns the desk's [`Notice`]s back into its own
//! messages. The desk does everything in between: pre-trade checks
//! ([`checks`]), the venue client id, the duplicate-order-id rule, the
//! lifecycle, refusing orders for a venue that is not Up, and routing each
//! command to its venue session by (venue, strategy, lane).
//!
//! Sans-IO like every core: commands leave through a [`CommandSink`] the
//! driver provides (rings in production, a `Vec` in tests).

pub mod checks;

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{
    ClientId, InstrumentId, Namespace, OrderKey, StrategyId, StrategyOrderId, VenueId,
};
use crate::instrument::Instrument;
use crate::lifecycle::{Lifecycle, LifecycleSnapshot, Outcome, Phase, Working};
use crate::model::{
    NewOrder, OrderRequest, OrderState, OrderUpdate, Reason, VenueState, VenueStatus,
};
use crate::venue::{Adopted, Command, Lane, Report};

/// What a front end asks for on behalf of one of its strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Request {
    NewOrder(NewOrder),
    Cancel {
        order_id: StrategyOrderId,
    },
    /// Every open order of the strategy, on one instrument or on all (0).
    CancelAll {
        instrument_id: InstrumentId,
    },
    /// The strategy's connection came (`true`, its Hello) or went: what
    /// `cancel_on_disconnect` counts from.
    Presence {
        connected: bool,
    },
}

/// One request on a front end's input ring. `Copy` and allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeskInput {
    pub strategy: StrategyId,
    pub request: Request,
}

/// What the desk tells front ends: an update for one strategy's order, or
/// a venue's new state (for every strategy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Order {
        strategy: StrategyId,
        update: OrderUpdate,
    },
    Venue(VenueStatus),
}

/// Where commands for venue sessions go: one queue per (venue, strategy,
/// lane), so a busy strategy cannot starve another inside a lane.
pub trait CommandSink {
    /// Queue `cmd`; give it back when there is no room (or no session).
    fn push(
        &mut self,
        venue: VenueId,
        strategy: StrategyId,
        lane: Lane,
        cmd: Command,
    ) -> Result<(), Command>;
}

#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// This installation and run (see [`crate::ids`]).
    pub namespace: Namespace,
    pub strategies: Vec<StrategyId>,
    pub instruments: Vec<Instrument>,
    /// The configured venues; each starts Down until its session reports.
    pub venues: Vec<VenueId>,
    /// Strategies whose open orders are cancelled once they have been
    /// disconnected longer than this (ns): `cancel_on_disconnect`.
    pub cancel_on_disconnect: Vec<(StrategyId, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeskConfigError {
    #[error("strategy id {0} is configured twice")]
    DuplicateStrategy(StrategyId),
    #[error("instrument id {0} is configured twice")]
    DuplicateInstrument(InstrumentId),
}

/// A desk's state, as a journal snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeskSnapshot {
    pub lifecycle: LifecycleSnapshot,
    pub venues: Vec<VenueStatus>,
    pub counters: DeskCounters,
    /// `cancel_on_disconnect` deadlines running: (strategy, due ns).
    pub cancel_due: Vec<(StrategyId, u64)>,
    /// False once a shutdown began in the snapshot's run.
    pub accepting: bool,
}

/// Counts of what the desk refused or could not place, for the periodic
/// counters line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeskCounters {
    pub orders: u64,
    pub rejected: u64,
    pub cancels: u64,
    pub cancel_rejected: u64,
    pub duplicates: u64,
    pub queue_full: u64,
}

/// The order desk. One instance, on one thread; see the module docs.
#[derive(Debug)]
pub struct Desk {
    namespace: Namespace,
    strategies: BTreeSet<StrategyId>,
    instruments: BTreeMap<InstrumentId, Instrument>,
    venues: BTreeMap<VenueId, VenueStatus>,
    lifecycle: Lifecycle,
    counters: DeskCounters,
    /// Grace per `cancel_on_disconnect` strategy, and when a disconnected
    /// one's orders are due to be cancelled.
    grace_ns: BTreeMap<StrategyId, u64>,
    cancel_due: BTreeMap<StrategyId, u64>,
    /// False once a shutdown began: new orders are refused.
    accepting: bool,
}

impl Desk {
    pub fn new(cfg: DeskConfig) -> Result<Desk, DeskConfigError> {
        let mut strategies = BTreeSet::new();
        for s in cfg.strategies {
            if !strategies.insert(s) {
                return Err(DeskConfigError::DuplicateStrategy(s));
            }
        }
        let mut instruments = BTreeMap::new();
        for i in cfg.instruments {
            let id = i.id;
            if instruments.insert(id, i).is_some() {
                return Err(DeskConfigError::DuplicateInstrument(id));
            }
        }
        let venues = cfg
            .venues
            .into_iter()
            .map(|venue| {
                let status = VenueStatus {
                    venue,
                    state: VenueState::Down,
                    text: "no session yet".into(),
                };
                (venue, status)
            })
            .collect();
        Ok(Desk {
            namespace: cfg.namespace,
            strategies,
            instruments,
            venues,
            lifecycle: Lifecycle::new(cfg.namespace),
            counters: DeskCounters::default(),
            grace_ns: cfg.cancel_on_disconnect.into_iter().collect(),
            cancel_due: BTreeMap::new(),
            accepting: true,
        })
    }

    /// A new run starts (at start-up, and at each run's start marker when
    /// the journal is replayed): new orders get `namespace`, and every
    /// venue is Down until its session says otherwise.
    pub fn begin_run(&mut self, namespace: Namespace) {
        self.namespace = namespace;
        self.lifecycle.begin_run(namespace);
        // A restart is not a disconnect: no cancel is carried over.
        self.cancel_due.clear();
        self.accepting = true;
        for status in self.venues.values_mut() {
            status.state = VenueState::Down;
            status.text = "no session yet".into();
        }
    }

    /// Every order not yet final, as its venue's adapter is to track it
    /// after a restart: (venue, order), in key order.
    pub fn adoptions(&self) -> Vec<(VenueId, Adopted)> {
        self.lifecycle
            .all_open()
            .filter_map(|o| {
                let venue = self.instruments.get(&o.instrument)?.venue;
                let cancel = (o.cancels_outstanding > 0)
                    .then(|| ClientId::cancel(self.namespace, o.key, o.cancel_attempts));
                let known = !o.venue_order_id.is_empty() || o.cum_qty > 0;
                Some((
                    venue,
                    Adopted {
                        req: o.request(0),
                        venue_order_id: (!o.venue_order_id.is_empty())
                            .then(|| o.venue_order_id.clone()),
                        known,
                        trades: o.trades.clone(),
                        cum_qty: o.cum_qty,
                        cum_notional: o.cum_notional,
                        cancel,
                    },
                ))
            })
            .collect()
    }

    /// What the desk holds beyond its config: the order table, what each
    /// venue last said, the disconnect deadlines running and whether a
    /// shutdown began (a replay after a snapshot needs all of them to judge
    /// the next input as the live desk did).
    pub fn snapshot(&self) -> DeskSnapshot {
        DeskSnapshot {
            lifecycle: self.lifecycle.snapshot(),
            venues: self.venues.values().cloned().collect(),
            counters: self.counters,
            cancel_due: self.cancel_due.iter().map(|(&s, &at)| (s, at)).collect(),
            accepting: self.accepting,
        }
    }

    /// Takes a snapshot's state (journal replay); the namespace becomes the
    /// snapshot's run.
    pub fn restore(&mut self, snap: DeskSnapshot) {
        self.namespace = snap.lifecycle.namespace;
        self.lifecycle = Lifecycle::from_snapshot(snap.lifecycle);
        for v in snap.venues {
            if let Some(known) = self.venues.get_mut(&v.venue) {
                *known = v;
            }
        }
        self.counters = snap.counters;
        self.cancel_due = snap.cancel_due.into_iter().collect();
        self.accepting = snap.accepting;
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    pub fn counters(&self) -> DeskCounters {
        self.counters
    }

    pub fn instruments(&self) -> impl Iterator<Item = &Instrument> + '_ {
        self.instruments.values()
    }

    /// Every venue's current state, in venue id order: what a front end
    /// tells a strategy that has just connected.
    pub fn venues(&self) -> impl Iterator<Item = &VenueStatus> + '_ {
        self.venues.values()
    }

    /// One request from a front end, at `now_ns` (the sidecar's monotonic
    /// clock, which sessions share: it stamps when a new order was queued).
    pub fn on_request(
        &mut self,
        input: DeskInput,
        now_ns: u64,
        sink: &mut impl CommandSink,
        out: &mut Vec<Notice>,
    ) {
        let strategy = input.strategy;
        if !self.strategies.contains(&strategy) {
            tracing::warn!(
                strategy,
                "request for a strategy the desk does not know; dropped"
            );
            return;
        }
        match input.request {
            Request::NewOrder(o) => self.new_order(strategy, &o, now_ns, sink, out),
            Request::Cancel { order_id } => {
                let key = OrderKey { strategy, order_id };
                self.cancel(key, sink, out)
            }
            Request::CancelAll { instrument_id } => {
                self.cancel_all(strategy, instrument_id, sink, out)
            }
            Request::Presence { connected } => self.presence(strategy, connected, now_ns),
        }
    }

    fn presence(&mut self, strategy: StrategyId, connected: bool, now_ns: u64) {
        let Some(&grace) = self.grace_ns.get(&strategy) else {
            return;
        };
        if connected {
            if self.cancel_due.remove(&strategy).is_some() {
                tracing::info!(strategy, "strategy back within its grace; its orders stay");
            }
        } else {
            tracing::info!(
                strategy,
                grace_ms = grace / 1_000_000,
                "strategy gone; its open orders are cancelled if it stays away"
            );
            self.cancel_due
                .insert(strategy, now_ns.saturating_add(grace));
        }
    }

    /// When [`Desk::on_timer`] is next due, if ever.
    pub fn next_timer(&self) -> Option<u64> {
        self.cancel_due.values().copied().min()
    }

    /// Cancels the open orders of every `cancel_on_disconnect` strategy gone
    /// longer than its grace. The driver journals `now_ns` first, so a
    /// replay fires the same cancels.
    pub fn on_timer(&mut self, now_ns: u64, sink: &mut impl CommandSink, out: &mut Vec<Notice>) {
        let due: Vec<StrategyId> = self
            .cancel_due
            .iter()
            .filter(|(_, &at)| at <= now_ns)
            .map(|(&s, _)| s)
            .collect();
        for strategy in due {
            self.cancel_due.remove(&strategy);
            let open = self.lifecycle.open_orders(strategy).count();
            tracing::warn!(
                strategy,
                open,
                "cancel_on_disconnect: strategy gone longer than its grace; cancelling its open orders"
            );
            self.cancel_all(strategy, 0, sink, out);
        }
    }

    /// A shutdown begins: new orders are refused from now on, and with
    /// `cancel` every open order of every strategy is cancelled.
    pub fn begin_shutdown(
        &mut self,
        cancel: bool,
        sink: &mut impl CommandSink,
        out: &mut Vec<Notice>,
    ) {
        self.accepting = false;
        if cancel {
            for strategy in self.strategies.clone() {
                self.cancel_all(strategy, 0, sink, out);
            }
        }
    }

    /// Nothing sent waits for an answer (no new order unanswered, no
    /// cancel outstanding); with `no_open`, no order is open either.
    pub fn settled(&self, no_open: bool) -> bool {
        self.lifecycle.all_open().all(|o| {
            !no_open
                && o.cancels_outstanding == 0
                && !matches!(
                    o.phase,
                    Phase::Working(Working::PendingNew | Working::Unknown)
                )
        })
    }

    /// One report from a venue session: order events go through the
    /// lifecycle to their strategy, a venue status to every front end.
    pub fn on_report(&mut self, report: &Report, out: &mut Vec<Notice>) {
        let ev = match report {
            Report::Venue(status) => return self.on_venue_status(status, out),
            Report::Exec(ev) => ev,
        };
        let outcome = self.lifecycle.on_venue_event(ev, &mut |strategy, update| {
            out.push(Notice::Order { strategy, update })
        });
        match outcome {
            Outcome::Applied | Outcome::Ignored => {}
            Outcome::UnknownOrder => {
                tracing::debug!(event = ?ev, "venue event for an order this run does not hold")
            }
            Outcome::Invalid { state, event, why } => {
                tracing::warn!(
                    ?state,
                    ?event,
                    why,
                    "invalid lifecycle transition; event not applied"
                )
            }
        }
    }

    /// Records a venue's state (the session's word) and tells every front
    /// end.
    pub fn on_venue_status(&mut self, status: &VenueStatus, out: &mut Vec<Notice>) {
        self.venues.insert(status.venue, status.clone());
        out.push(Notice::Venue(status.clone()));
    }

    fn refuse(
        &mut self,
        strategy: StrategyId,
        order_id: StrategyOrderId,
        reason: Reason,
        text: String,
        out: &mut Vec<Notice>,
    ) {
        self.counters.rejected += 1;
        tracing::info!(strategy, order_id, ?reason, %text, "order rejected");
        let update = OrderUpdate::Rejected {
            order_id,
            reason,
            text,
        };
        out.push(Notice::Order { strategy, update });
    }

    fn new_order(
        &mut self,
        strategy: StrategyId,
        o: &NewOrder,
        now_ns: u64,
        sink: &mut impl CommandSink,
        out: &mut Vec<Notice>,
    ) {
        self.counters.orders += 1;
        let key = OrderKey {
            strategy,
            order_id: o.order_id,
        };
        if let Some(st) = self.lifecycle.status(key) {
            // Never sent twice: the strategy hears where the first one is.
            self.counters.duplicates += 1;
            tracing::info!(strategy, order_id = o.order_id, "duplicate order id");
            let update = OrderUpdate::Status(st);
            return out.push(Notice::Order { strategy, update });
        }
        if !self.accepting {
            let text = "the sidecar is shutting down; no new orders".to_string();
            return self.refuse(strategy, o.order_id, Reason::VenueDown, text, out);
        }
        let Some(inst) = self.instruments.get(&o.instrument_id) else {
            let text = format!("instrument {} is not configured", o.instrument_id);
            return self.refuse(strategy, o.order_id, Reason::UnknownInstrument, text, out);
        };
        let venue = inst.venue;
        match self.venues.get(&venue) {
            Some(s) if s.state == VenueState::Up => {}
            Some(s) => {
                let text = format!("{venue} is {:?}: {}", s.state, s.text);
                return self.refuse(strategy, o.order_id, Reason::VenueDown, text, out);
            }
            None => {
                let text = format!("{venue} is not configured");
                return self.refuse(strategy, o.order_id, Reason::VenueDown, text, out);
            }
        }
        if let Err((reason, text)) = checks::check_order(inst, o) {
            return self.refuse(strategy, o.order_id, reason, text, out);
        }
        if let Err(dup) = self.lifecycle.submit(key, inst, o) {
            // Unreachable after the status check above; answered the same way.
            let update = OrderUpdate::Status(dup.0);
            return out.push(Notice::Order { strategy, update });
        }
        let cmd = Command::Place(OrderRequest {
            queued_ns: now_ns,
            client_id: ClientId::order(self.namespace, key),
            instrument: o.instrument_id,
            side: o.side,
            ord_type: o.ord_type,
            tif: o.tif,
            flags: o.flags,
            price: o.price,
            qty: o.qty,
        });
        tracing::debug!(strategy, order_id = o.order_id, "order to {venue}");
        if let Err(cmd) = sink.push(venue, strategy, cmd.lane(), cmd) {
            self.refused(&cmd, out);
        }
    }

    /// A command the sink had no room for: the order ends `Rejected`, the
    /// cancel `CancelRejected`, both `QueueFull`. The driver journals it,
    /// so a replay (whose sink refuses nothing) ends the same way.
    pub fn refused(&mut self, cmd: &Command, out: &mut Vec<Notice>) {
        self.counters.queue_full += 1;
        let notify = &mut |strategy, update| out.push(Notice::Order { strategy, update });
        let (key, text) = match *cmd {
            Command::Place(o) => (o.client_id.key, "order queue to the venue is full"),
            Command::Cancel { orig, .. } => (orig.key, "cancel queue to the venue is full"),
        };
        tracing::warn!(strategy = key.strategy, order_id = key.order_id, "{text}");
        match cmd {
            Command::Place(_) => {
                self.lifecycle
                    .gateway_reject(key, Reason::QueueFull, text, notify)
            }
            Command::Cancel { .. } => {
                self.lifecycle
                    .cancel_failed(key, Reason::QueueFull, text, notify)
            }
        };
    }

    fn cancel(&mut self, key: OrderKey, sink: &mut impl CommandSink, out: &mut Vec<Notice>) {
        self.counters.cancels += 1;
        let strategy = key.strategy;
        let n = match self.lifecycle.request_cancel(key) {
            Ok(n) => n,
            Err(e) => {
                self.counters.cancel_rejected += 1;
                tracing::info!(strategy, order_id = key.order_id, reason = %e, "cancel rejected");
                let update = OrderUpdate::CancelRejected {
                    order_id: key.order_id,
                    reason: e.reason(),
                    text: e.to_string(),
                };
                return out.push(Notice::Order { strategy, update });
            }
        };
        let Some(order) = self.lifecycle.order(key) else {
            return;
        };
        let instrument = order.instrument;
        // A cancel jumps the queue, except past its own order: while the
        // order may still be waiting in its ring, the cancel goes right
        // behind it, or the venue would see the cancel first and refuse
        // it (unknown order) while the order goes live.
        let lane = match order.phase {
            Phase::PendingCancel {
                from: Working::PendingNew,
            } => Lane::of_order(order.flags),
            _ => Lane::Critical,
        };
        let Some(venue) = self.instruments.get(&instrument).map(|i| i.venue) else {
            return;
        };
        // The order keeps the id it was placed under (an adopted order
        // is from an earlier run); the cancel is named in this run.
        let orig = order.client_id();
        let cmd = Command::Cancel {
            cancel_id: ClientId::cancel(self.namespace, key, n),
            orig,
            instrument,
        };
        if let Err(cmd) = sink.push(venue, strategy, lane, cmd) {
            self.refused(&cmd, out);
        }
    }

    /// Orders already being cancelled are left to their pending cancel.
    fn cancel_all(
        &mut self,
        strategy: StrategyId,
        instrument: InstrumentId,
        sink: &mut impl CommandSink,
        out: &mut Vec<Notice>,
    ) {
        let keys: Vec<OrderKey> = self
            .lifecycle
            .open_orders(strategy)
            .filter(|o| instrument == 0 || o.instrument == instrument)
            .filter(|o| o.state() != OrderState::PendingCancel)
            .map(|o| o.key)
            .collect();
        for key in keys {
            self.cancel(key, sink, out);
        }
    }
}
