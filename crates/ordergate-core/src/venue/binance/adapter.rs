//! The Binance Spot adapter: one WebSocket API connection carrying order
//! entry and the user data stream, as a sans-IO state machine.
//!
//! Behaviour worth knowing when driving it:
//! - **Accepted once.** An order is reported `Accepted` by whichever comes
//!   first: the `order.place` ACK response or the `executionReport` with
//!   `x=NEW` (or, failing both, just before its first fill). The other is
//!   dropped. Orders are placed with `newOrderRespType=ACK`: fills come only
//!   from the user data stream, so they are never counted twice.
//! - **Fills are de-duplicated** by (instrument, trade id, venue order id),
//!   so a replayed event cannot double count, while a self-trade (one
//!   trade id, two of our orders) counts on both sides.
//! - **Unknown outcomes** (5xx, -1006, -1007) on `order.place` are not
//!   rejections: the adapter asks `order.status` and reports what it says.
//! - **Reconnects.** `serverShutdown` sets `wants_reconnect` and emits
//!   `Status{Up}` saying so; the driver opens a new connection before the
//!   old one closes (make before break). On every open the adapter syncs the clock (`time`, see
//!   `take_time_samples`) and subscribes to user data; after
//!   a reconnect it also lists open orders and queries every order it was
//!   tracking that is no longer open. `eventStreamTerminated` resubscribes.
//! - Events for client ids we did not generate, or from another sidecar
//!   epoch, are ignored and counted in [`BinanceStats`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use zeroize::Zeroizing;

use super::exec::{self, ExecOutcome};
use super::parse::{self, ApiError, Event, Frame, OrderResult, ResultBody};
use super::requests::{self, Param};
use crate::ids::{ClientId, ClientIdKind, InstrumentId, VenueId};
use crate::instrument::Instrument;
use crate::model::{flags, OrdType, Reason, Side, TimeInForce, VenueState};
use crate::venue::{
    Command, ConnRole, ConnSpec, Cost, ExecEvent, Now, Outgoing, Report, TimeSample, VenueError,
    VenueProtocol, VenueStatus,
};

/// How often the server time is re-sampled while connected.
pub const CLOCK_SYNC_INTERVAL_NS: u64 = 30_000_000_000;
/// How many fill keys are remembered for de-duplication (oldest dropped
/// first); replays come right after a reconnect, far within this.
pub const FILL_MEMORY: usize = 65_536;

/// What the adapter needs to know about the account.
#[derive(Clone)]
pub struct BinanceSpotConfig {
    /// The WebSocket API endpoint, e.g. `wss://ws-api.binance.com:443/ws-api/v3`.
    pub ws_url: String,
    pub api_key: String,
    pub api_secret: Vec<u8>,
    /// Sent as `recvWindow` on every signed request (venue default 5000).
    pub recv_window_ms: u32,
    pub instruments: Vec<Instrument>,
    /// This sidecar run's epoch: events for other epochs' ids are ignored.
    pub epoch: u32,
}

impl fmt::Debug for BinanceSpotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceSpotConfig")
            .field("ws_url", &self.ws_url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .field("recv_window_ms", &self.recv_window_ms)
            .field("instruments", &self.instruments.len())
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// Counters for what the adapter saw but did not pass on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BinanceStats {
    /// Events for client ids we did not generate.
    pub foreign_events: u64,
    /// Events for our ids from another sidecar epoch.
    pub other_epoch_events: u64,
    /// Fills already reported (same instrument, trade id and order id).
    pub duplicate_fills: u64,
    /// Fills whose `l`/`L` were not on the instrument's scale (reported
    /// rounded half-to-even).
    pub off_scale_fills: u64,
    /// Order events for orders already finished (replays) or for symbols
    /// not configured.
    pub stale_events: u64,
    /// Responses whose id we did not send or no longer wait for.
    pub unmatched_responses: u64,
}

/// What a request id stands for until its response arrives.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Time { sent: Now },
    Subscribe,
    OpenOrders,
    Place { client_id: ClientId },
    Cancel { orig: ClientId },
    OrderStatus { client_id: ClientId },
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    inst: usize,
    accepted: bool,
}

/// The Binance Spot WebSocket API adapter.
pub struct BinanceSpot {
    ws_url: String,
    api_key: String,
    secret: Zeroizing<Vec<u8>>,
    recv_window: String,
    epoch: u32,
    instruments: Vec<Instrument>,
    by_id: HashMap<InstrumentId, usize>,
    by_symbol: HashMap<String, usize>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// Our orders the venue has not finished, by client id.
    orders: HashMap<ClientId, Tracked>,
    fills_seen: HashSet<(usize, i64, u64)>,
    fills_order: VecDeque<(usize, i64, u64)>,
    connected: bool,
    opens: u64,
    reconnect_wanted: bool,
    /// This connection's first server time has arrived: the signed
    /// subscription (and reconciliation) may go out on the next timer,
    /// after the session has synced its clock from that answer.
    start_due: bool,
    awaiting_start: bool,
    next_clock_sync_ns: u64,
    time_samples: Vec<TimeSample>,
    /// Open-order listings still awaited after a reconnect, and the ids
    /// they showed.
    reconcile_left: usize,
    reconcile_open: HashSet<ClientId>,
    stats: BinanceStats,
    buffers: simd_json::Buffers,
}

impl fmt::Debug for BinanceSpot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceSpot")
            .field("ws_url", &self.ws_url)
            .field("connected", &self.connected)
            .field("orders", &self.orders.len())
            .field("pending", &self.pending.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn side_str(s: Side) -> &'static str {
    match s {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

fn tif_str(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "GTC",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
    }
}

/// The request weight of the methods this adapter sends, from the API
/// notes, so a driver can account for the adapter's own requests.
pub fn method_cost(method: &str) -> Cost {
    let (weight, orders) = match method {
        "order.place" => (1, 1),
        "order.cancel" | "time" => (1, 0),
        "userDataStream.subscribe.signature" => (2, 0),
        "order.status" => (4, 0),
        // Per symbol, which is how this adapter asks (80 without one).
        "openOrders.status" => (6, 0),
        _ => (1, 0),
    };
    Cost { weight, orders }
}

/// Maps a venue error to our reason. `cancel` selects the cancel-specific
/// meaning of -2011/-2013 (the order is not known/open).
pub fn reason_for(status: u16, code: i64, msg: &str, cancel: bool) -> Reason {
    match code {
        -1013 => Reason::VenueFilter,
        -1021 => Reason::VenueTimestamp,
        -1022 | -2014 | -2015 => Reason::VenueAuth,
        -1003 | -1015 => Reason::VenueRateLimited,
        -2011 | -2013 if cancel => Reason::VenueUnknownOrder,
        _ if status == 429 || status == 418 => Reason::VenueRateLimited,
        -2010 if msg.contains("immediately match and take") => Reason::WouldTakeLiquidity,
        -2010 if msg.to_ascii_lowercase().contains("insufficient balance") => {
            Reason::VenueInsufficientBalance
        }
        _ if msg.starts_with("Filter failure") => Reason::VenueFilter,
        _ => Reason::VenueRejected,
    }
}

/// The venue says the request's outcome is unknown: it may have executed.
fn outcome_unknown(status: u16, code: i64) -> bool {
    status >= 500 || code == -1006 || code == -1007
}

impl BinanceSpot {
    pub fn new(cfg: BinanceSpotConfig) -> Self {
        let by_id = cfg
            .instruments
            .iter()
            .enumerate()
            .map(|(i, x)| (x.id, i))
            .collect();
        let by_symbol = cfg
            .instruments
            .iter()
            .enumerate()
            .map(|(i, x)| (x.symbol.clone(), i))
            .collect();
        BinanceSpot {
            ws_url: cfg.ws_url,
            api_key: cfg.api_key,
            secret: Zeroizing::new(cfg.api_secret),
            recv_window: cfg.recv_window_ms.to_string(),
            epoch: cfg.epoch,
            instruments: cfg.instruments,
            by_id,
            by_symbol,
            next_id: 1,
            pending: HashMap::new(),
            orders: HashMap::new(),
            fills_seen: HashSet::new(),
            fills_order: VecDeque::new(),
            connected: false,
            opens: 0,
            reconnect_wanted: false,
            start_due: false,
            awaiting_start: false,
            next_clock_sync_ns: 0,
            time_samples: Vec::new(),
            reconcile_left: 0,
            reconcile_open: HashSet::new(),
            stats: BinanceStats::default(),
            buffers: simd_json::Buffers::default(),
        }
    }

    pub fn stats(&self) -> BinanceStats {
        self.stats
    }

    fn malformed(detail: String) -> VenueError {
        VenueError::MalformedFrame {
            venue: VenueId::BinanceSpot,
            detail,
        }
    }

    fn take_id(&mut self, p: Pending) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, p);
        id
    }

    /// Sends a signed request with apiKey, recvWindow and timestamp added.
    fn send_signed(
        &mut self,
        method: &str,
        p: Pending,
        extra: &[Param<'_>],
        now: Now,
        out: &mut Vec<Outgoing>,
    ) {
        let id = self.take_id(p);
        let ts = now.wall_ms.to_string();
        let mut params = Vec::with_capacity(extra.len() + 3);
        params.extend_from_slice(extra);
        params.push(Param::str("apiKey", &self.api_key));
        params.push(Param::num("recvWindow", &self.recv_window));
        params.push(Param::num("timestamp", &ts));
        out.push(Outgoing {
            conn: 0,
            text: requests::signed(id, method, &params, &self.secret),
        });
    }

    fn send_time(&mut self, now: Now, out: &mut Vec<Outgoing>) {
        let id = self.take_id(Pending::Time { sent: now });
        out.push(Outgoing {
            conn: 0,
            text: requests::unsigned(id, "time", &[]),
        });
        self.next_clock_sync_ns = now.mono_ns.saturating_add(CLOCK_SYNC_INTERVAL_NS);
    }

    fn subscribe(&mut self, now: Now, out: &mut Vec<Outgoing>) {
        self.send_signed(
            "userDataStream.subscribe.signature",
            Pending::Subscribe,
            &[],
            now,
            out,
        );
    }

    fn query_order(&mut self, client_id: ClientId, now: Now, out: &mut Vec<Outgoing>) {
        let Some(t) = self.orders.get(&client_id) else {
            return;
        };
        let symbol = self.instruments[t.inst].symbol.clone();
        let orig = client_id.encode();
        self.send_signed(
            "order.status",
            Pending::OrderStatus { client_id },
            &[
                Param::str("symbol", &symbol),
                Param::str("origClientOrderId", &orig),
            ],
            now,
            out,
        );
    }

    /// Our order's id from a venue string, counting what is not ours.
    fn our_id(&mut self, s: &str) -> Option<ClientId> {
        match ClientId::decode(s) {
            Some(id) if id.kind == ClientIdKind::Order && id.epoch == self.epoch => Some(id),
            Some(_) => {
                self.stats.other_epoch_events += 1;
                None
            }
            None => {
                self.stats.foreign_events += 1;
                None
            }
        }
    }

    /// Accepted, unless already reported or the order is already done.
    fn accept(&mut self, client_id: ClientId, venue_order_id: u64, time_ms: u64) -> Option<Report> {
        let t = self.orders.get_mut(&client_id)?;
        if t.accepted {
            return None;
        }
        t.accepted = true;
        Some(Report::Exec(ExecEvent::Accepted {
            client_id,
            venue_order_id: venue_order_id.to_string(),
            time_ms,
        }))
    }

    fn remember_fill(&mut self, key: (usize, i64, u64)) -> bool {
        if !self.fills_seen.insert(key) {
            return false;
        }
        self.fills_order.push_back(key);
        if self.fills_order.len() > FILL_MEMORY {
            if let Some(old) = self.fills_order.pop_front() {
                self.fills_seen.remove(&old);
            }
        }
        true
    }

    fn on_exec_report(
        &mut self,
        ev: &Event<'_>,
        events: &mut Vec<Report>,
    ) -> Result<(), VenueError> {
        let symbol = ev
            .symbol
            .as_deref()
            .ok_or_else(|| Self::malformed("executionReport without `s`".into()))?;
        let Some(&inst) = self.by_symbol.get(symbol) else {
            self.stats.stale_events += 1;
            return Ok(());
        };
        let exec = match exec::normalize(ev, &self.instruments[inst]).map_err(Self::malformed)? {
            ExecOutcome::Event(e) => e,
            ExecOutcome::Foreign => {
                self.stats.foreign_events += 1;
                return Ok(());
            }
            ExecOutcome::Nothing => return Ok(()),
        };
        let client_id = exec.client_id;
        if client_id.epoch != self.epoch {
            self.stats.other_epoch_events += 1;
            return Ok(());
        }
        match exec.event {
            Report::Exec(ExecEvent::Accepted { time_ms, .. }) => {
                match self.accept(client_id, exec.order_id, time_ms) {
                    Some(a) => events.push(a),
                    None if !self.orders.contains_key(&client_id) => self.stats.stale_events += 1,
                    None => {}
                }
            }
            Report::Exec(ExecEvent::Fill { time_ms, .. }) => {
                if !self.remember_fill((inst, exec.trade_id, exec.order_id)) {
                    self.stats.duplicate_fills += 1;
                    return Ok(());
                }
                if exec.off_scale {
                    self.stats.off_scale_fills += 1;
                }
                // Never lose a fill, even for an order we no longer track.
                events.extend(self.accept(client_id, exec.order_id, time_ms));
                events.push(exec.event);
                if exec.terminal {
                    self.orders.remove(&client_id);
                }
            }
            _ => {
                if self.orders.remove(&client_id).is_some() {
                    events.push(exec.event);
                } else {
                    self.stats.stale_events += 1;
                }
            }
        }
        Ok(())
    }

    fn on_event(
        &mut self,
        ev: &Event<'_>,
        now: Now,
        events: &mut Vec<Report>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), VenueError> {
        match &*ev.kind {
            "executionReport" => self.on_exec_report(ev, events)?,
            "serverShutdown" => {
                // Still up: the driver opens a new connection before this
                // one closes, and orders keep flowing meanwhile.
                self.reconnect_wanted = true;
                events.push(Report::Venue(VenueStatus {
                    venue: VenueId::BinanceSpot,
                    state: VenueState::Up,
                    text: "venue announced server shutdown; opening a new connection".into(),
                }));
            }
            "eventStreamTerminated" => self.subscribe(now, out),
            // Balances and order lists are not the lifecycle's concern.
            _ => {}
        }
        Ok(())
    }

    fn status_event(state: VenueState, text: String) -> Report {
        Report::Venue(VenueStatus {
            venue: VenueId::BinanceSpot,
            state,
            text,
        })
    }

    fn on_response(
        &mut self,
        frame: Frame<'_>,
        now: Now,
        events: &mut Vec<Report>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), VenueError> {
        let status = frame.status.unwrap_or(0);
        let Some(pending) = frame.id.and_then(|id| self.pending.remove(&id)) else {
            self.stats.unmatched_responses += 1;
            // An unsolicited error (id null) is the key being revoked.
            if let (None, Some(e)) = (frame.id, &frame.error) {
                events.push(Self::status_event(
                    VenueState::Halted,
                    format!("venue error {}: {}", e.code, e.msg),
                ));
            }
            return Ok(());
        };
        if let Some(err) = &frame.error {
            if err.code == -1021 {
                self.send_time(now, out);
            }
            return self.on_error(pending, status, err, now, events, out);
        }
        let result = match frame.result {
            Some(r) => r,
            None => {
                return Err(Self::malformed(format!(
                    "response {} (status {status}) has neither result nor error",
                    frame.id.unwrap_or(0)
                )))
            }
        };
        match (pending, result) {
            (Pending::Time { sent }, ResultBody::Object(r)) => {
                let server_ms = r
                    .server_time
                    .ok_or_else(|| Self::malformed("time response without serverTime".into()))?;
                self.time_samples.push(TimeSample {
                    sent,
                    received: now,
                    server_ms,
                });
                if self.awaiting_start {
                    self.awaiting_start = false;
                    self.start_due = true;
                }
            }
            (Pending::Subscribe, ResultBody::Object(_)) => events.push(Self::status_event(
                VenueState::Up,
                "user data stream subscribed".into(),
            )),
            (Pending::Place { client_id }, ResultBody::Object(r)) => {
                let order_id = r.order_id.ok_or_else(|| {
                    Self::malformed("order.place response without orderId".into())
                })?;
                events.extend(self.accept(client_id, order_id, r.transact_time.unwrap_or(0)));
            }
            // The cancel's outcome arrives as an executionReport.
            (Pending::Cancel { .. }, ResultBody::Object(_)) => {}
            (Pending::OrderStatus { client_id }, ResultBody::Object(r)) => {
                self.on_order_status(client_id, &r, events)
            }
            (Pending::OpenOrders, ResultBody::Array(rows)) => {
                self.on_open_orders(&rows, now, events, out)
            }
            (_, _) => {
                return Err(Self::malformed(format!(
                    "response {} has an unexpected result shape",
                    frame.id.unwrap_or(0)
                )))
            }
        }
        Ok(())
    }

    fn on_error(
        &mut self,
        pending: Pending,
        status: u16,
        err: &ApiError<'_>,
        now: Now,
        events: &mut Vec<Report>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), VenueError> {
        let text = err.msg.to_string();
        match pending {
            Pending::Place { client_id } if outcome_unknown(status, err.code) => {
                self.query_order(client_id, now, out)
            }
            Pending::Place { client_id } => {
                self.orders.remove(&client_id);
                events.push(Report::Exec(ExecEvent::Rejected {
                    client_id,
                    reason: reason_for(status, err.code, &text, false),
                    code: err.code,
                    text,
                }));
            }
            Pending::Cancel { orig } => events.push(Report::Exec(ExecEvent::CancelRejected {
                client_id: orig,
                reason: reason_for(status, err.code, &text, true),
                code: err.code,
                text,
            })),
            // The order never reached the venue: the place was lost.
            Pending::OrderStatus { client_id } if err.code == -2013 => {
                if self.orders.remove(&client_id).is_some() {
                    events.push(Report::Exec(ExecEvent::Rejected {
                        client_id,
                        reason: Reason::VenueRejected,
                        code: err.code,
                        text,
                    }));
                }
            }
            Pending::Subscribe => events.push(Self::status_event(
                VenueState::Halted,
                format!("user data subscription failed: {} {}", err.code, text),
            )),
            Pending::OpenOrders => {
                self.reconcile_left = self.reconcile_left.saturating_sub(1);
                events.push(Self::status_event(
                    VenueState::Up,
                    format!("open orders reconciliation failed: {} {}", err.code, text),
                ));
            }
            // Without the venue's time, start with the local clock rather
            // than never.
            Pending::Time { .. } if self.awaiting_start => {
                self.awaiting_start = false;
                self.start_due = true;
            }
            Pending::OrderStatus { .. } | Pending::Time { .. } => {}
        }
        Ok(())
    }

    fn on_order_status(
        &mut self,
        client_id: ClientId,
        r: &OrderResult<'_>,
        events: &mut Vec<Report>,
    ) {
        let time_ms = r.update_time.or(r.transact_time).unwrap_or(0);
        let status = r.status.as_deref().unwrap_or("");
        if let Some(order_id) = r.order_id {
            events.extend(self.accept(client_id, order_id, time_ms));
        }
        let end = match status {
            "CANCELED" => Report::Exec(ExecEvent::Canceled { client_id, time_ms }),
            "EXPIRED" | "EXPIRED_IN_MATCH" => {
                Report::Exec(ExecEvent::Expired { client_id, time_ms })
            }
            "REJECTED" => Report::Exec(ExecEvent::Rejected {
                client_id,
                reason: Reason::VenueRejected,
                code: 0,
                text: "REJECTED".into(),
            }),
            _ => return,
        };
        if self.orders.remove(&client_id).is_some() {
            events.push(end);
        }
    }

    /// Subscribes to user data and, after a reconnect, reconciles.
    fn start(&mut self, now: Now, out: &mut Vec<Outgoing>) {
        // Subscribe before listing open orders, so nothing falls between.
        self.subscribe(now, out);
        if self.opens > 1 {
            self.reconcile_left = self.instruments.len();
            self.reconcile_open.clear();
            for i in 0..self.instruments.len() {
                let symbol = self.instruments[i].symbol.clone();
                self.send_signed(
                    "openOrders.status",
                    Pending::OpenOrders,
                    &[Param::str("symbol", &symbol)],
                    now,
                    out,
                );
            }
        }
    }

    fn on_open_orders(
        &mut self,
        rows: &[OrderResult<'_>],
        now: Now,
        events: &mut Vec<Report>,
        out: &mut Vec<Outgoing>,
    ) {
        for r in rows {
            let Some(id) = r.client_order_id.as_deref().and_then(|c| self.our_id(c)) else {
                continue;
            };
            self.reconcile_open.insert(id);
            if let Some(order_id) = r.order_id {
                let t = r.update_time.unwrap_or(0);
                events.extend(self.accept(id, order_id, t));
            }
        }
        self.reconcile_left = self.reconcile_left.saturating_sub(1);
        if self.reconcile_left == 0 {
            let gone: Vec<ClientId> = self
                .orders
                .keys()
                .filter(|id| !self.reconcile_open.contains(id))
                .copied()
                .collect();
            self.reconcile_open.clear();
            for id in gone {
                self.query_order(id, now, out);
            }
        }
    }
}

impl VenueProtocol for BinanceSpot {
    /// Server-time observations since the last call, oldest first, for the
    /// driver's venue clock.
    fn take_time_samples(&mut self) -> Vec<TimeSample> {
        std::mem::take(&mut self.time_samples)
    }

    /// The venue announced it is going away (`serverShutdown`): the driver
    /// should open a new connection. Cleared by the next `on_open`.
    fn wants_reconnect(&self) -> bool {
        self.reconnect_wanted
    }

    fn venue(&self) -> VenueId {
        VenueId::BinanceSpot
    }

    fn connections(&self) -> Vec<ConnSpec> {
        vec![ConnSpec {
            url: self.ws_url.clone(),
            role: ConnRole::OrderEntryAndUserData,
        }]
    }

    fn on_open(&mut self, _conn: usize, now: Now, out: &mut Vec<Outgoing>) {
        self.connected = true;
        self.reconnect_wanted = false;
        self.opens += 1;
        self.start_due = false;
        // Signed requests wait for the venue's time, so a skewed local
        // clock cannot get the subscription refused (-1021).
        self.send_time(now, out);
        self.awaiting_start = true;
    }

    /// In-flight places stay tracked and are settled by the reconciliation
    /// after the reconnect; in-flight cancels are reported CancelRejected
    /// (`VenueDown`) so the strategy can retry, and a cancel that did go
    /// through still shows up as Canceled then.
    fn on_close(&mut self, _conn: usize, _now: Now, events: &mut Vec<Report>) {
        self.connected = false;
        let mut cancels: Vec<ClientId> = self
            .pending
            .values()
            .filter_map(|p| match p {
                Pending::Cancel { orig } => Some(*orig),
                _ => None,
            })
            .collect();
        cancels.sort_by_key(|c| (c.key, c.epoch));
        for orig in cancels {
            events.push(Report::Exec(ExecEvent::CancelRejected {
                client_id: orig,
                reason: Reason::VenueDown,
                code: 0,
                text: "connection closed before the cancel was answered".into(),
            }));
        }
        self.pending.clear();
        self.reconcile_left = 0;
        events.push(Self::status_event(
            VenueState::Down,
            "connection closed".into(),
        ));
    }

    fn cost(&self, cmd: &Command) -> Cost {
        match cmd {
            Command::Place(_) => method_cost("order.place"),
            Command::Cancel { .. } => method_cost("order.cancel"),
        }
    }

    fn submit(
        &mut self,
        cmd: &Command,
        now: Now,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), VenueError> {
        match *cmd {
            Command::Place(o) => {
                let &inst = self
                    .by_id
                    .get(&o.instrument)
                    .ok_or(VenueError::UnknownInstrument(o.instrument))?;
                let ins = &self.instruments[inst];
                let symbol = ins.symbol.clone();
                let cid = o.client_id.encode();
                let post_only = o.ord_type == OrdType::LimitMaker
                    || (o.ord_type == OrdType::Limit && o.flags & flags::POST_ONLY != 0);
                let (ty, tif) = match o.ord_type {
                    OrdType::Market => ("MARKET", None),
                    _ if post_only => ("LIMIT_MAKER", None),
                    _ => ("LIMIT", Some(tif_str(o.tif))),
                };
                let price = (ty != "MARKET").then(|| ins.format_price(o.price));
                let quote = ty == "MARKET" && o.flags & flags::QUOTE_QTY != 0;
                let qty = if quote {
                    crate::decimal::format_fixed(o.qty as i128, ins.price_scale + ins.qty_scale)
                } else {
                    ins.format_qty(o.qty)
                };
                let mut params = Vec::with_capacity(9);
                params.push(Param::str("symbol", &symbol));
                params.push(Param::str("side", side_str(o.side)));
                params.push(Param::str("type", ty));
                if let Some(tif) = tif {
                    params.push(Param::str("timeInForce", tif));
                }
                if let Some(p) = &price {
                    params.push(Param::str("price", p));
                }
                params.push(Param::str(
                    if quote { "quoteOrderQty" } else { "quantity" },
                    &qty,
                ));
                params.push(Param::str("newClientOrderId", &cid));
                params.push(Param::str("newOrderRespType", "ACK"));
                let p = Pending::Place {
                    client_id: o.client_id,
                };
                self.send_signed("order.place", p, &params, now, out);
                self.orders.insert(
                    o.client_id,
                    Tracked {
                        inst,
                        accepted: false,
                    },
                );
            }
            Command::Cancel {
                cancel_id,
                orig,
                instrument,
            } => {
                let &inst = self
                    .by_id
                    .get(&instrument)
                    .ok_or(VenueError::UnknownInstrument(instrument))?;
                let symbol = self.instruments[inst].symbol.clone();
                let orig_s = orig.encode();
                let cancel_s = cancel_id.encode();
                let params = [
                    Param::str("symbol", &symbol),
                    Param::str("origClientOrderId", &orig_s),
                    Param::str("newClientOrderId", &cancel_s),
                ];
                self.send_signed("order.cancel", Pending::Cancel { orig }, &params, now, out);
            }
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        _conn: usize,
        frame: &mut [u8],
        now: Now,
        events: &mut Vec<Report>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), VenueError> {
        let mut buffers = std::mem::take(&mut self.buffers);
        let parsed = parse::parse_frame(frame, &mut buffers);
        let res = match parsed {
            Err(e) => Err(Self::malformed(format!("not a WebSocket API frame: {e}"))),
            Ok(f) => match f.event {
                Some(ref ev) => self.on_event(ev, now, events, out),
                None if f.status.is_some() => self.on_response(f, now, events, out),
                None => Err(Self::malformed(
                    "frame is neither a response (no `status`) nor an event (no `event`)".into(),
                )),
            },
        };
        self.buffers = buffers;
        res
    }

    fn on_timer(&mut self, now: Now, _events: &mut Vec<Report>, out: &mut Vec<Outgoing>) {
        if self.connected && self.start_due {
            self.start_due = false;
            self.start(now, out);
        }
        if self.connected && now.mono_ns >= self.next_clock_sync_ns {
            self.send_time(now, out);
        }
    }

    fn next_timer(&self) -> Option<u64> {
        match (self.connected, self.start_due) {
            (false, _) => None,
            (true, true) => Some(0),
            (true, false) => Some(self.next_clock_sync_ns),
        }
    }
}
