//! A deterministic, single-thread, virtual-time world: the order desk,
//! the lifecycle, the Binance Spot venue core and the simulator's
//! socket-free exchange, wired the way the drivers wire them, with no
//! sockets, no threads and no real clock.
//!
//! The world plays the drivers' part: it carries transmits to the
//! exchange and frames back with a one-way latency, runs the adapter's
//! timers, opens and closes connections as the session driver would
//! (reconnect with back-off; make before break when the adapter asks), and
//! closes an exchange connection `shutdown_grace` after `serverShutdown`.
//! Faults are methods: drop the connection, skew either clock, move the
//! market. Everything is ordered by (time, sequence number), so a test
//! replays exactly.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use ordergate_core::desk::{CommandSink, Desk, DeskConfig, DeskInput, Notice, Request};
use ordergate_core::ids::{Namespace, OrderKey, StrategyId, VenueId};
use ordergate_core::instrument::{Category, Instrument};
use ordergate_core::lifecycle::Order;
use ordergate_core::model::{
    NewOrder, OrdType, OrderState, OrderUpdate, Reason, Side, TimeInForce, VenueState, VenueStatus,
};
use ordergate_core::venue::binance::{BinanceSpot, BinanceSpotConfig};
use ordergate_core::venue::{
    Command, ConnId, Lane, Now, Outbox, Payload, Report, VenueError, VenueOutput, VenueProtocol,
};
use ordergate_sim::binance::{
    ConnId as SimConn, Exchange, FillModel, LedgerEntry, SimConfig, DEMO_API_KEY, DEMO_API_SECRET,
};

pub const MS: u64 = 1_000_000;
pub const SEC: u64 = 1_000 * MS;
pub const NS: Namespace = Namespace::new(1234, 3);
pub const ALPHA: StrategyId = 1;
pub const BETA: StrategyId = 2;
/// The local wall clock at virtual time zero (2026-12-01, in Unix ms).
pub const WALL0_MS: u64 = 1_796_083_200_000;
const WS: ConnId = ConnId(0);

/// The instrument as the sidecar's config would write it for the
/// simulator's BTCUSDT (Binance writes its steps with 8 decimals).
pub fn btcusdt() -> Instrument {
    Instrument::from_strings(
        1,
        VenueId::BinanceSpot,
        "BTCUSDT",
        Category::Spot,
        "0.01000000",
        "0.00001000",
        "0.00001000",
        "5.00000000",
    )
    .expect("valid instrument")
}

#[derive(Debug)]
enum Event {
    /// A WebSocket text frame to the exchange on one of its connections.
    ToExchange { sim: SimConn, text: String },
    /// A frame from the exchange to the adapter, from exchange conn `sim`.
    ToAdapter { sim: SimConn, text: String },
    /// The exchange closes `sim` (the grace after serverShutdown is over).
    ExchangeCloses { sim: SimConn },
    /// The session driver's reconnect attempt after a back-off.
    Reconnect,
    /// The market moves (scheduled with [`World::set_price_in`]).
    SetPrice { price: String },
}

/// One live or draining WebSocket between the adapter and the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    sim: SimConn,
    /// Replaced by a newer socket: its end is `on_drained`, not `on_close`.
    draining: bool,
}

/// The desk's command queue: the adapter takes each command as soon as
/// the desk makes it, as a session draining its ring would.
#[derive(Default)]
struct Commands(Vec<(VenueId, StrategyId, Lane, Command)>);

impl CommandSink for Commands {
    fn push(
        &mut self,
        venue: VenueId,
        strategy: StrategyId,
        lane: Lane,
        cmd: Command,
    ) -> Result<(), Command> {
        self.0.push((venue, strategy, lane, cmd));
        Ok(())
    }
}

pub struct World {
    pub now_ns: u64,
    /// How far the local wall clock is from the true one.
    pub local_skew_ms: i64,
    /// One way, each direction.
    pub latency_ns: u64,
    /// The session driver's first reconnect delay (doubling, capped).
    pub reconnect_min_ns: u64,
    pub reconnect_max_ns: u64,
    backoff_ns: u64,
    pub desk: Desk,
    pub venue: BinanceSpot,
    pub exchange: Exchange,
    links: Vec<Link>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    outbox: Outbox,
    commands: Commands,
    notices: Vec<Notice>,
    /// Every order update, per strategy, in the order strategies got them.
    pub updates: BTreeMap<StrategyId, Vec<OrderUpdate>>,
    /// Every venue status the desk was told, in order.
    pub statuses: Vec<VenueStatus>,
    /// Frames the adapter could not read, with the reason.
    pub unreadable: Vec<String>,
    /// The network loses the next frame to the adapter containing each of
    /// these strings (one frame per entry).
    pub lose_to_adapter: Vec<String>,
    /// Frames lost that way.
    pub lost: Vec<String>,
}

impl World {
    /// A world with the simulator's defaults (fill model `seed`), connected
    /// and Up.
    pub fn new(seed: u64) -> World {
        Self::with(SimConfig {
            fill: FillModel {
                seed,
                ..FillModel::default()
            },
            ..SimConfig::default()
        })
    }

    pub fn with(sim: SimConfig) -> World {
        let exchange = Exchange::new(&sim, WALL0_MS).expect("simulator config");
        let venue = BinanceSpot::new(BinanceSpotConfig {
            ws_url: "ws://sim.invalid/ws-api/v3".into(),
            rest_url: None,
            api_key: DEMO_API_KEY.into(),
            api_secret: DEMO_API_SECRET.as_bytes().to_vec(),
            recv_window_ms: 5000,
            instruments: vec![btcusdt()],
            namespace: NS,
        });
        let desk = Desk::new(DeskConfig {
            namespace: NS,
            strategies: vec![ALPHA, BETA],
            instruments: vec![btcusdt()],
            venues: vec![VenueId::BinanceSpot],
            cancel_on_disconnect: Vec::new(),
        })
        .expect("desk config");
        let mut w = World {
            now_ns: 0,
            local_skew_ms: 0,
            latency_ns: MS / 2,
            reconnect_min_ns: 200 * MS,
            reconnect_max_ns: 10 * SEC,
            backoff_ns: 200 * MS,
            desk,
            venue,
            exchange,
            links: Vec::new(),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            outbox: Outbox::new(),
            commands: Commands::default(),
            notices: Vec::new(),
            updates: BTreeMap::new(),
            statuses: Vec::new(),
            unreadable: Vec::new(),
            lose_to_adapter: Vec::new(),
            lost: Vec::new(),
        };
        w.connect();
        // Generous: under faults a first answer can be lost (5 s deadline).
        w.run_until_state(VenueState::Up, 60 * SEC);
        w
    }

    // ---- time -------------------------------------------------------

    pub fn now(&self) -> Now {
        let wall = WALL0_MS as i64 + (self.now_ns / MS) as i64 + self.local_skew_ms;
        Now {
            mono_ns: self.now_ns,
            wall_ms: wall.max(0) as u64,
        }
    }

    /// The true wall clock, which the exchange's own clock is set against.
    fn true_ms(&self) -> u64 {
        WALL0_MS + self.now_ns / MS
    }

    fn schedule(&mut self, at_ns: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at_ns, self.seq)));
        self.events.insert(self.seq, ev);
    }

    /// Runs every event and timer due up to `now + dt`.
    pub fn advance(&mut self, dt_ns: u64) {
        let end = self.now_ns + dt_ns;
        loop {
            let next_event = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.venue.next_timer();
            // The exchange's own faults (held frames, timed faults, closes),
            // on its clock: ms since the world's start.
            let next_fault = self
                .exchange
                .next_fault_ms()
                .map(|ms| ms.saturating_sub(WALL0_MS) * MS);
            let next = [next_event, next_timer, next_fault]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(u64::MAX);
            if next > end {
                break;
            }
            self.now_ns = self.now_ns.max(next);
            if next_fault.is_some_and(|f| f <= self.now_ns) {
                let out = self.exchange.poll_faults(self.true_ms());
                self.deliver(out.frames);
                // What the venue sent before closing arrives before the
                // close, as on TCP.
                let at = self.now_ns + self.latency_ns;
                for sim in out.close {
                    self.schedule(at, Event::ExchangeCloses { sim });
                }
                // A poll that did nothing at a time it named would spin.
                if self
                    .exchange
                    .next_fault_ms()
                    .is_some_and(|ms| ms.saturating_sub(WALL0_MS) * MS <= self.now_ns)
                {
                    self.now_ns += MS;
                }
            } else if next_event == Some(next) {
                let Reverse((_, seq)) = self.queue.pop().expect("peeked");
                let ev = self.events.remove(&seq).expect("scheduled");
                self.handle(ev);
            } else {
                let now = self.now();
                self.venue.on_timer(now, &mut self.outbox);
                self.flush();
            }
        }
        self.now_ns = end;
    }

    /// Advances until the desk last heard `state`, or panics after `limit`.
    pub fn run_until_state(&mut self, state: VenueState, limit_ns: u64) {
        let end = self.now_ns + limit_ns;
        while self.venue_state() != Some(state) {
            assert!(
                self.now_ns < end,
                "venue never became {state:?}; statuses: {:?}",
                self.statuses
            );
            self.advance(MS);
        }
    }

    pub fn venue_state(&self) -> Option<VenueState> {
        self.desk.venues().next().map(|s| s.state)
    }

    // ---- the drivers' part ------------------------------------------

    fn connect(&mut self) {
        let now = self.now();
        self.venue.on_connecting(WS, now, &mut self.outbox);
        let sim = self.exchange.ws_connect(self.true_ms());
        self.links.push(Link {
            sim,
            draining: false,
        });
        self.venue.on_open(WS, now, &mut self.outbox);
        self.flush();
    }

    fn live(&self) -> Option<SimConn> {
        self.links.iter().find(|l| !l.draining).map(|l| l.sim)
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::ToExchange { sim, text } => {
                if !self.links.iter().any(|l| l.sim == sim) {
                    return; // the socket is gone: the request is lost
                }
                let frames = self.exchange.ws_request(sim, &text, self.true_ms());
                self.deliver(frames);
            }
            Event::ToAdapter { sim, text } => {
                if !self.links.iter().any(|l| l.sim == sim) {
                    return;
                }
                if let Some(i) = self
                    .lose_to_adapter
                    .iter()
                    .position(|p| text.contains(p.as_str()))
                {
                    self.lose_to_adapter.remove(i);
                    self.lost.push(text);
                    return;
                }
                let now = self.now();
                let mut bytes = text.into_bytes();
                if let Err(e) = self.venue.on_frame(WS, &mut bytes, now, &mut self.outbox) {
                    self.unreadable.push(e.to_string());
                }
                self.flush();
            }
            Event::ExchangeCloses { sim } => self.end_link(sim, "closed by the venue"),
            Event::Reconnect => {
                if self.live().is_none() {
                    self.connect();
                }
            }
            Event::SetPrice { price } => self.set_price(&price),
        }
    }

    /// Frames from the exchange, each to the adapter after the latency,
    /// in the order the exchange made them.
    fn deliver(&mut self, frames: Vec<(SimConn, String)>) {
        let at = self.now_ns + self.latency_ns;
        for (sim, text) in frames {
            self.schedule(at, Event::ToAdapter { sim, text });
        }
    }

    /// A socket ended: in-flight frames on it are lost.
    fn end_link(&mut self, sim: SimConn, why: &str) {
        let Some(pos) = self.links.iter().position(|l| l.sim == sim) else {
            return;
        };
        let link = self.links.remove(pos);
        self.exchange.ws_disconnect(sim);
        let now = self.now();
        if link.draining {
            self.venue.on_drained(WS, now, &mut self.outbox);
        } else {
            self.venue.on_close(WS, why, now, &mut self.outbox);
            let at = self.now_ns + self.backoff_ns;
            self.backoff_ns = (self.backoff_ns * 2).min(self.reconnect_max_ns);
            self.schedule(at, Event::Reconnect);
        }
        self.flush();
    }

    /// Moves the adapter's transmits to the wire, its events to the desk,
    /// the desk's commands to the adapter, and the desk's notices to the
    /// strategies, until nothing is left to move.
    fn flush(&mut self) {
        loop {
            let mut moved = false;
            for t in std::mem::take(&mut self.outbox.transmits) {
                moved = true;
                let (conn, request) = (t.conn, t.request);
                let Payload::Text(text) = t.payload else {
                    panic!("the harness carries WebSocket frames only")
                };
                if let Some(sim) = self.live() {
                    let at = self.now_ns + self.latency_ns;
                    self.schedule(at, Event::ToExchange { sim, text });
                }
                // No limiter here: on the wire at once.
                let now = self.now();
                self.venue.on_sent(conn, request, now);
            }
            for ev in std::mem::take(&mut self.outbox.events) {
                moved = true;
                match ev {
                    VenueOutput::Exec(e) => {
                        self.desk.on_report(&Report::Exec(e), &mut self.notices)
                    }
                    VenueOutput::Status(s) => {
                        self.statuses.push(s.clone());
                        self.desk.on_report(&Report::Venue(s), &mut self.notices)
                    }
                    // The world sends everything at once: it models no rate
                    // limiter (the session's gate and its tests do).
                    VenueOutput::Usage { .. } | VenueOutput::Backoff { .. } => {}
                    VenueOutput::CloseConnection { why, .. } => {
                        if let Some(sim) = self.live() {
                            self.end_link(sim, &why);
                        }
                    }
                    VenueOutput::Reconnect(_) => {
                        // Make before break: the old socket keeps being read.
                        for l in &mut self.links {
                            l.draining = true;
                        }
                        self.connect_fresh();
                    }
                }
            }
            for (_, _, _, cmd) in std::mem::take(&mut self.commands.0) {
                moved = true;
                let now = self.now();
                if let Err(e) = self.venue.submit(&cmd, now, &mut self.outbox) {
                    let reason = match e {
                        VenueError::NotReady { .. } => Reason::VenueDown,
                        _ => Reason::VenueRejected,
                    };
                    let report = Report::refusal(&cmd, reason, e.to_string());
                    self.desk.on_report(&report, &mut self.notices);
                }
            }
            for n in std::mem::take(&mut self.notices) {
                moved = true;
                if let Notice::Order { strategy, update } = n {
                    self.updates.entry(strategy).or_default().push(update);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn connect_fresh(&mut self) {
        let now = self.now();
        let sim = self.exchange.ws_connect(self.true_ms());
        self.links.push(Link {
            sim,
            draining: false,
        });
        self.venue.on_open(WS, now, &mut self.outbox);
    }

    // ---- faults and the market ----------------------------------------

    /// The network drops the live connection (both sides see it end).
    pub fn drop_connection(&mut self) {
        if let Some(sim) = self.live() {
            self.end_link(sim, "connection reset");
        }
    }

    /// The venue announces `serverShutdown` on every connection and closes
    /// each after its grace period.
    pub fn server_shutdown(&mut self) {
        let frames = self.exchange.trigger_server_shutdown(self.true_ms());
        let grace = self.exchange.shutdown_grace().as_nanos() as u64;
        for sim in self.links.iter().map(|l| l.sim).collect::<Vec<_>>() {
            self.schedule(self.now_ns + grace, Event::ExchangeCloses { sim });
        }
        self.deliver(frames);
    }

    /// Moves the simulator's market; resting orders that cross fill.
    pub fn set_price(&mut self, price: &str) {
        let moved = self
            .exchange
            .set_reference_price("BTCUSDT", price, self.true_ms())
            .expect("price on the tick");
        self.deliver(moved.frames);
    }

    /// Moves the market `delay_ns` from now.
    pub fn set_price_in(&mut self, delay_ns: u64, price: &str) {
        let price = price.to_owned();
        self.schedule(self.now_ns + delay_ns, Event::SetPrice { price });
    }

    // ---- strategies -----------------------------------------------------

    pub fn place(&mut self, strategy: StrategyId, o: NewOrder) {
        let input = DeskInput {
            strategy,
            request: Request::NewOrder(o),
        };
        self.desk
            .on_request(input, self.now_ns, &mut self.commands, &mut self.notices);
        self.flush();
    }

    pub fn cancel(&mut self, strategy: StrategyId, order_id: u64) {
        let input = DeskInput {
            strategy,
            request: Request::Cancel { order_id },
        };
        self.desk
            .on_request(input, self.now_ns, &mut self.commands, &mut self.notices);
        self.flush();
    }

    pub fn order(&self, strategy: StrategyId, order_id: u64) -> &Order {
        self.desk
            .lifecycle()
            .order(OrderKey { strategy, order_id })
            .expect("the desk tracks it")
    }

    pub fn state(&self, strategy: StrategyId, order_id: u64) -> OrderState {
        self.order(strategy, order_id).state()
    }

    /// What `strategy` was told about `order_id`, in order.
    pub fn told(&self, strategy: StrategyId, order_id: u64) -> Vec<OrderUpdate> {
        self.updates
            .get(&strategy)
            .into_iter()
            .flatten()
            .filter(|u| update_order_id(u) == order_id)
            .cloned()
            .collect()
    }

    /// Our state, executed quantity and quote quantity for the order are
    /// the venue's, as its ledger writes them.
    pub fn assert_matches_ledger(&self, strategy: StrategyId, order_id: u64) {
        let o = self.order(strategy, order_id);
        let e = self
            .ledger_entry(strategy, order_id)
            .expect("the venue has the order");
        let i = btcusdt();
        let venue = (
            e.order.status.as_str().to_owned(),
            e.order.scales.fmt_qty(e.order.executed_qty),
            trim_zeros(&e.order.scales.fmt_quote(e.order.cum_quote_qty)),
        );
        let state = match o.state() {
            OrderState::PartiallyFilled => "PARTIALLY_FILLED".to_owned(),
            s => format!("{s:?}").to_uppercase(),
        };
        let ours = (
            state,
            i.format_qty(o.cum_qty),
            trim_zeros(&ordergate_core::decimal::format_fixed(
                o.cum_notional,
                i.price_scale + i.qty_scale,
            )),
        );
        assert_eq!(
            ours,
            venue,
            "order {strategy}/{order_id}: {:?}",
            self.told(strategy, order_id)
        );
    }

    pub fn ledger_entry(&self, strategy: StrategyId, order_id: u64) -> Option<LedgerEntry> {
        let cid =
            ordergate_core::ids::ClientId::order(NS, OrderKey { strategy, order_id }).encode();
        self.exchange
            .ledger()
            .into_iter()
            .find(|e| e.order.client_order_id == cid)
    }
}

/// A decimal string without trailing zeros after the point, so amounts
/// written at different scales compare by value.
fn trim_zeros(s: &str) -> String {
    if !s.contains('.') {
        return s.to_owned();
    }
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn update_order_id(u: &OrderUpdate) -> u64 {
    match u {
        OrderUpdate::Accepted { order_id, .. }
        | OrderUpdate::Rejected { order_id, .. }
        | OrderUpdate::Canceled { order_id, .. }
        | OrderUpdate::CancelRejected { order_id, .. }
        | OrderUpdate::Expired { order_id, .. } => *order_id,
        OrderUpdate::Fill(f) => f.order_id,
        OrderUpdate::Status(s) => s.order_id,
    }
}

/// A GTC limit order at `price` for `qty` (decimal strings), BTCUSDT.
pub fn limit(order_id: u64, side: Side, price: &str, qty: &str) -> NewOrder {
    let i = btcusdt();
    NewOrder {
        order_id,
        instrument_id: i.id,
        side,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price: ordergate_core::decimal::parse_fixed(price, i.price_scale).expect("price"),
        qty: ordergate_core::decimal::parse_fixed(qty, i.qty_scale).expect("qty"),
    }
}
