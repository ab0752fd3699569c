//! The Binance Spot adapter: the WebSocket API connection carrying order
//! entry and the user data stream, plus a REST connection for periodic
//! server-time queries, as one sans-IO state machine.
//!
//! Behaviour worth knowing when driving it:
//! - **Phases.** Each WebSocket connection goes [`Phase::Connecting`] →
//!   [`Phase::ClockSynced`] (the `time` answer fed the adapter's own
//!   [`VenueClock`]) → [`Phase::Subscribed`] (signed user-data
//!   subscription) → [`Phase::Reconciled`] (after a reconnect: open orders
//!   listed per symbol, every tracked order not listed queried) →
//!   [`Phase::Ready`]. The venue is reported Up at Ready, and only the
//!   adapter reports venue state.
//! - **Clock.** The adapter signs with its venue clock's time for the raw
//!   local `now.wall_ms`; nothing signed goes out before the first `time`
//!   answer (or its failure, then with the local clock).
//! - **Every transmit carries its cost** ([`method_cost`]), the adapter's
//!   own queries included.
//! - **Accepted** is reported whenever the venue says so (the `order.place`
//!   ACK, the `NEW` execution report, a reconciliation listing or an
//!   `order.status`): the lifecycle owns order state and ignores repeats.
//!   Orders are placed with `newOrderRespType=ACK`: fills come only from
//!   the user data stream.
//! - **Fills are de-duplicated** here, and only here: by trade id per
//!   live order (exact, however many fills), and by (instrument, trade id,
//!   venue order id) among the last [`FILL_MEMORY`] fills of finished
//!   orders, so a replay cannot double count while a self-trade (one trade
//!   id, two of our orders) counts on both sides.
//! - **Unknown outcomes** (5xx, -1006, -1007) on `order.place` are not
//!   rejections: the adapter asks `order.status` and reports what it says.
//! - **Reconnects.** `serverShutdown` emits [`VenueOutput::Reconnect`]:
//!   the driver opens a fresh socket while the old one is still read (make
//!   before break), the venue stays Up and orders keep flowing; the fresh
//!   socket runs the phases again. `eventStreamTerminated` resubscribes.
//! - Events for client ids we did not generate, or from another sidecar
//!   epoch, are ignored and counted in [`BinanceStats`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use super::exec::{self, ExecOutcome};
use super::parse::{self, ApiError, Event, Frame, OrderResult, RateLimit, ResultBody};
use super::requests::{self, Param};
use crate::clock::VenueClock;
use crate::ids::{ClientId, ClientIdKind, InstrumentId, OrderKey, VenueId};
use crate::instrument::Instrument;
use crate::limiter::Counts;
use crate::model::{flags, OrdType, Reason, Side, TimeInForce, VenueState};
use crate::venue::{
    Command, ConnId, ConnRole, ConnSpec, Cost, ExecEvent, HttpMethod, HttpRequest, HttpResponse,
    Now, Outbox, Payload, Transmit, Transport, VenueError, VenueOutput, VenueProtocol, VenueStatus,
};

/// The WebSocket API connection: order entry and user data.
pub const WS: ConnId = ConnId(0);
/// The REST connection (present when a REST URL is configured).
pub const REST: ConnId = ConnId(1);

/// How often the server time is re-sampled while connected.
pub const CLOCK_SYNC_INTERVAL_NS: u64 = 30_000_000_000;
/// How many fill keys of finished orders are remembered for
/// de-duplication (oldest dropped first); replays come right after a
/// reconnect, far within this. Live orders keep all of theirs.
pub const FILL_MEMORY: usize = 65_536;

/// What the adapter needs to know about the account.
#[derive(Clone)]
pub struct BinanceSpotConfig {
    /// The WebSocket API endpoint, e.g. `wss://ws-api.binance.com:443/ws-api/v3`.
    pub ws_url: String,
    /// The REST endpoint, e.g. `https://api.binance.com`; `None`: no REST
    /// connection (server time is then always asked on the WebSocket).
    pub rest_url: Option<String>,
    pub api_key: String,
    pub api_secret: Vec<u8>,
    /// Sent as `recvWindow` on every signed request (venue default 5000).
    pub recv_window_ms: u32,
    pub instruments: Vec<Instrument>,
    /// This sidecar run's epoch: events for other epochs' ids are ignored.
    pub epoch: u32,
}

/// An API key as it may appear in logs: its first four characters.
pub fn redact_key(key: &str) -> String {
    let head: String = key.chars().take(4).collect();
    format!("{head}…")
}

impl fmt::Debug for BinanceSpotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceSpotConfig")
            .field("ws_url", &self.ws_url)
            .field("rest_url", &self.rest_url)
            .field("api_key", &redact_key(&self.api_key))
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
    /// The last `X-MBX-USED-WEIGHT-1M` a REST response carried.
    pub used_weight_1m: Option<u32>,
}

/// Where a WebSocket connection is in its start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// No socket.
    Closed,
    /// Open; the server time was asked.
    Connecting,
    /// The venue clock has a sample: signed requests may go out; the
    /// user-data subscription was sent.
    ClockSynced,
    /// User data flows; after a reconnect, open orders are being listed.
    Subscribed,
    /// Every tracked order is known open or queried.
    Reconciled,
    /// Orders may go out on this socket.
    Ready,
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
struct InFlight {
    what: Pending,
    conn: ConnId,
    /// Which WebSocket socket (see `ws_socket`) it went out on.
    socket: u32,
}

#[derive(Debug, Clone)]
struct Tracked {
    id: ClientId,
    inst: usize,
    /// The venue's order id, once any answer carried it.
    order_id: Option<u64>,
    /// Trade ids already reported for this order.
    trades: Vec<i64>,
}

/// The Binance Spot WebSocket API adapter.
pub struct BinanceSpot {
    ws_url: String,
    rest_url: Option<String>,
    api_key: String,
    secret: Zeroizing<Vec<u8>>,
    recv_window: String,
    epoch: u32,
    instruments: Vec<Instrument>,
    by_id: HashMap<InstrumentId, usize>,
    by_symbol: HashMap<String, usize>,
    next_id: u64,
    /// Requests awaiting an answer, by id (ordered: what is settled on a
    /// close is reported in the order it was sent).
    pending: BTreeMap<u64, InFlight>,
    /// Our orders the venue has not finished (ordered: reconciliation
    /// queries go out in a reproducible order).
    orders: BTreeMap<OrderKey, Tracked>,
    /// Fill keys of finished orders, for replays.
    finished_fills: HashSet<(usize, i64, u64)>,
    finished_order: VecDeque<(usize, i64, u64)>,
    clock: VenueClock,
    phase: Phase,
    /// Some WebSocket socket is Ready (the current one, or the one being
    /// replaced): orders may be sent.
    serving: bool,
    /// A replacement socket was asked for and the old one still serves.
    replacing: bool,
    /// Counts WebSocket opens; the current socket's number.
    ws_socket: u32,
    rest_open: bool,
    next_clock_sync_ns: u64,
    /// Open-order listings still awaited, and the ids they showed.
    reconcile_left: usize,
    reconcile_open: HashSet<OrderKey>,
    /// The venue state last reported, and why.
    state: VenueState,
    state_text: String,
    /// A rate-limit pause or ban in force: until when (monotonic), and
    /// whether it is a ban.
    backoff: Option<(u64, bool)>,
    stats: BinanceStats,
    buffers: simd_json::Buffers,
}

impl fmt::Debug for BinanceSpot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceSpot")
            .field("ws_url", &self.ws_url)
            .field("phase", &self.phase)
            .field("state", &self.state)
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

/// The cost of the WebSocket API methods this adapter sends, from the API
/// notes (request weight; `orders` for what counts against the order
/// limits).
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

/// The cost of the REST endpoints this adapter calls, from the API notes.
pub fn rest_cost(path: &str) -> Cost {
    let weight = match path {
        "/api/v3/time" | "/api/v3/ping" => 1,
        "/api/v3/order" => 4,
        "/api/v3/openOrders" => 6,
        _ => 1,
    };
    Cost { weight, orders: 0 }
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

/// The first `max` bytes of a frame, for logs.
fn truncated(bytes: &[u8], max: usize) -> String {
    let n = bytes.len().min(max);
    let mut s = String::from_utf8_lossy(&bytes[..n]).into_owned();
    if bytes.len() > max {
        s.push('…');
    }
    s
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
        debug!(
            venue = %VenueId::BinanceSpot,
            ws_url = %cfg.ws_url,
            api_key = %redact_key(&cfg.api_key),
            instruments = cfg.instruments.len(),
            "binance-spot adapter configured"
        );
        BinanceSpot {
            ws_url: cfg.ws_url,
            rest_url: cfg.rest_url,
            api_key: cfg.api_key,
            secret: Zeroizing::new(cfg.api_secret),
            recv_window: cfg.recv_window_ms.to_string(),
            epoch: cfg.epoch,
            instruments: cfg.instruments,
            by_id,
            by_symbol,
            next_id: 1,
            pending: BTreeMap::new(),
            orders: BTreeMap::new(),
            finished_fills: HashSet::new(),
            finished_order: VecDeque::new(),
            clock: VenueClock::default(),
            phase: Phase::Closed,
            serving: false,
            replacing: false,
            ws_socket: 0,
            rest_open: false,
            next_clock_sync_ns: 0,
            reconcile_left: 0,
            reconcile_open: HashSet::new(),
            state: VenueState::Down,
            state_text: "not connected yet".into(),
            backoff: None,
            stats: BinanceStats::default(),
            buffers: simd_json::Buffers::default(),
        }
    }

    pub fn stats(&self) -> BinanceStats {
        self.stats
    }

    /// The current WebSocket socket's start-up phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The venue clock the adapter signs with.
    pub fn clock(&self) -> &VenueClock {
        &self.clock
    }

    /// The venue state last reported.
    pub fn state(&self) -> VenueState {
        self.state
    }

    fn malformed(detail: String) -> VenueError {
        VenueError::MalformedFrame {
            venue: VenueId::BinanceSpot,
            detail,
        }
    }

    /// Reports a state change (and only a change).
    /// Passes the venue's `rateLimits` to the limiter. A type or interval
    /// we do not know is logged and ignored.
    fn report_usage(&mut self, limits: &[RateLimit<'_>], out: &mut Outbox) {
        for r in limits {
            let counts = match &*r.kind {
                "REQUEST_WEIGHT" => Counts::Weight,
                "ORDERS" => Counts::Orders,
                "RAW_REQUESTS" => Counts::Requests,
                other => {
                    debug!(venue = %VenueId::BinanceSpot, kind = other, "unknown rateLimitType; ignored");
                    continue;
                }
            };
            let unit_ms = match &*r.interval {
                "SECOND" => 1_000,
                "MINUTE" => 60_000,
                "HOUR" => 3_600_000,
                "DAY" => 86_400_000,
                other => {
                    debug!(venue = %VenueId::BinanceSpot, interval = other, "unknown rate-limit interval; ignored");
                    continue;
                }
            };
            out.events.push(VenueOutput::Usage {
                counts,
                window_ms: unit_ms * r.interval_num,
                limit: Some(r.limit),
                count: r.count,
            });
        }
    }

    /// The venue refused for rate (429, -1003, -1015) or banned us (418):
    /// the limiter holds everything until `retry_after` (venue epoch ms;
    /// without one, a second for a 429 and two minutes for a ban), the
    /// venue is Halted meanwhile and comes back Up by itself.
    fn back_off(
        &mut self,
        status: u16,
        code: i64,
        msg: &str,
        retry_after_ms: Option<u64>,
        now: Now,
        out: &mut Outbox,
    ) {
        let ban = status == 418;
        let venue_now = self.clock.timestamp_ms(now.wall_ms);
        let default_ms = if ban { 120_000 } else { 1_000 };
        let wait_ms = retry_after_ms
            .map(|t| t.saturating_sub(venue_now))
            .unwrap_or(default_ms)
            .max(1);
        let until_ns = now.mono_ns.saturating_add(wait_ms * 1_000_000);
        let until = self.backoff.map_or(until_ns, |(u, _)| u.max(until_ns));
        let ban = ban || self.backoff.is_some_and(|(_, b)| b);
        self.backoff = Some((until, ban));
        warn!(venue = %VenueId::BinanceSpot, status, code, msg, wait_ms, ban, "venue rate limit: holding every request");
        out.events.push(VenueOutput::Backoff {
            until_ns: until,
            ban,
        });
        let until_text = retry_after_ms.map_or(format!("in {wait_ms} ms"), |t| {
            format!("at venue time {t} ms")
        });
        let text = if ban {
            format!("banned by the venue (HTTP 418, {code} {msg}); trading resumes {until_text}")
        } else {
            format!("rate limited by the venue (HTTP {status}, {code} {msg}); requests wait, resuming {until_text}")
        };
        self.set_state(VenueState::Halted, text, out);
    }

    /// The back-off is over: back Up if the venue was serving.
    fn end_backoff(&mut self, now: Now, out: &mut Outbox) {
        let Some((until, ban)) = self.backoff else {
            return;
        };
        if now.mono_ns < until {
            return;
        }
        self.backoff = None;
        if self.serving {
            let what = if ban { "ban" } else { "rate-limit pause" };
            self.set_state(
                VenueState::Up,
                format!("the venue's {what} is over; ready for orders"),
                out,
            );
        }
    }

    fn set_state(&mut self, state: VenueState, text: String, out: &mut Outbox) {
        if state == self.state {
            return;
        }
        self.note_state(state, text, out);
    }

    /// Reports the state with a reason even if it did not change (the
    /// make-before-break notes while the venue stays Up).
    fn note_state(&mut self, state: VenueState, text: String, out: &mut Outbox) {
        info!(venue = %VenueId::BinanceSpot, from = ?self.state, to = ?state, reason = %text, "venue state");
        self.state = state;
        self.state_text.clone_from(&text);
        out.events.push(VenueOutput::Status(VenueStatus {
            venue: VenueId::BinanceSpot,
            state,
            text,
        }));
    }

    fn set_phase(&mut self, phase: Phase) {
        debug!(venue = %VenueId::BinanceSpot, from = ?self.phase, to = ?phase, "connection phase");
        self.phase = phase;
    }

    fn take_id(&mut self, what: Pending, conn: ConnId) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            InFlight {
                what,
                conn,
                socket: self.ws_socket,
            },
        );
        id
    }

    /// Sends a signed request with apiKey, recvWindow and a venue-clock
    /// timestamp added.
    fn send_signed(
        &mut self,
        method: &'static str,
        p: Pending,
        extra: &[Param<'_>],
        now: Now,
        out: &mut Outbox,
    ) {
        let id = self.take_id(p, WS);
        let ts = self.clock.timestamp_ms(now.wall_ms).to_string();
        let mut params = Vec::with_capacity(extra.len() + 3);
        params.extend_from_slice(extra);
        params.push(Param::str("apiKey", &self.api_key));
        params.push(Param::num("recvWindow", &self.recv_window));
        params.push(Param::num("timestamp", &ts));
        out.transmits.push(Transmit {
            conn: WS,
            payload: Payload::Text(requests::signed(id, method, &params, &self.secret)),
            cost: method_cost(method),
        });
    }

    /// Asks the server time: on REST when it is open, else on the
    /// WebSocket (a connection's first ask is always on its own socket).
    fn send_time(&mut self, now: Now, prefer_rest: bool, out: &mut Outbox) {
        self.next_clock_sync_ns = now.mono_ns.saturating_add(CLOCK_SYNC_INTERVAL_NS);
        if prefer_rest && self.rest_open {
            let id = self.take_id(Pending::Time { sent: now }, REST);
            out.transmits.push(Transmit {
                conn: REST,
                payload: Payload::Http(HttpRequest {
                    id,
                    method: HttpMethod::Get,
                    path: "/api/v3/time".into(),
                    headers: Vec::new(),
                    body: String::new(),
                }),
                cost: rest_cost("/api/v3/time"),
            });
            return;
        }
        let id = self.take_id(Pending::Time { sent: now }, WS);
        out.transmits.push(Transmit {
            conn: WS,
            payload: Payload::Text(requests::unsigned(id, "time", &[])),
            cost: method_cost("time"),
        });
    }

    fn subscribe(&mut self, now: Now, out: &mut Outbox) {
        self.send_signed(
            "userDataStream.subscribe.signature",
            Pending::Subscribe,
            &[],
            now,
            out,
        );
    }

    fn query_order(&mut self, key: OrderKey, now: Now, out: &mut Outbox) {
        let Some(t) = self.orders.get(&key) else {
            return;
        };
        let client_id = t.id;
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

    /// Accepted, for an order still tracked (the lifecycle ignores a
    /// repeat; a late answer for a finished order adds nothing).
    fn accept(&mut self, client_id: ClientId, venue_order_id: u64, time_ms: u64, out: &mut Outbox) {
        let Some(t) = self.orders.get_mut(&client_id.key) else {
            return;
        };
        t.order_id = Some(venue_order_id);
        debug!(order = ?client_id.key, venue_order_id, "accepted");
        out.events.push(VenueOutput::Exec(ExecEvent::Accepted {
            client_id,
            venue_order_id: venue_order_id.to_string(),
            time_ms,
        }));
    }

    /// The order is done at the venue: its fill keys join the replay memory.
    fn finish(&mut self, key: OrderKey) -> bool {
        let Some(t) = self.orders.remove(&key) else {
            return false;
        };
        if let Some(order_id) = t.order_id {
            for trade in t.trades {
                self.remember_finished_fill((t.inst, trade, order_id));
            }
        }
        true
    }

    fn remember_finished_fill(&mut self, k: (usize, i64, u64)) -> bool {
        if !self.finished_fills.insert(k) {
            return false;
        }
        self.finished_order.push_back(k);
        if self.finished_order.len() > FILL_MEMORY {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished_fills.remove(&old);
            }
        }
        true
    }

    /// Whether this fill is new: exact per live order, bounded memory for
    /// finished ones.
    fn new_fill(&mut self, key: OrderKey, inst: usize, trade_id: i64, order_id: u64) -> bool {
        match self.orders.get_mut(&key) {
            Some(t) => {
                t.order_id = Some(order_id);
                if t.trades.contains(&trade_id) {
                    return false;
                }
                t.trades.push(trade_id);
                !self.finished_fills.contains(&(inst, trade_id, order_id))
            }
            None => self.remember_finished_fill((inst, trade_id, order_id)),
        }
    }

    fn on_exec_report(&mut self, ev: &Event<'_>, out: &mut Outbox) -> Result<(), VenueError> {
        let symbol = ev
            .symbol
            .as_deref()
            .ok_or_else(|| Self::malformed("executionReport without `s`".into()))?;
        let Some(&inst) = self.by_symbol.get(symbol) else {
            self.stats.stale_events += 1;
            info!(venue = %VenueId::BinanceSpot, symbol, "execution report for a symbol not configured; ignored");
            return Ok(());
        };
        let exec = match exec::normalize(ev, &self.instruments[inst]).map_err(Self::malformed)? {
            ExecOutcome::Event(e) => e,
            ExecOutcome::Foreign => {
                self.stats.foreign_events += 1;
                info!(
                    venue = %VenueId::BinanceSpot,
                    symbol,
                    client_order_id = ev.client_id.as_deref().unwrap_or(""),
                    "execution report for an order not ours; ignored"
                );
                return Ok(());
            }
            ExecOutcome::Nothing => return Ok(()),
        };
        let client_id = exec.client_id;
        if client_id.epoch != self.epoch {
            self.stats.other_epoch_events += 1;
            info!(venue = %VenueId::BinanceSpot, epoch = client_id.epoch, "execution report from another sidecar epoch; ignored");
            return Ok(());
        }
        let key = client_id.key;
        match exec.event {
            crate::venue::Report::Exec(ExecEvent::Accepted { time_ms, .. }) => {
                if self.orders.contains_key(&key) {
                    self.accept(client_id, exec.order_id, time_ms, out);
                } else {
                    self.stats.stale_events += 1;
                }
            }
            crate::venue::Report::Exec(e @ ExecEvent::Fill { .. }) => {
                if !self.new_fill(key, inst, exec.trade_id, exec.order_id) {
                    self.stats.duplicate_fills += 1;
                    debug!(order = ?key, trade_id = exec.trade_id, "duplicate fill dropped");
                    return Ok(());
                }
                if exec.off_scale {
                    self.stats.off_scale_fills += 1;
                    warn!(venue = %VenueId::BinanceSpot, symbol, trade_id = exec.trade_id, "fill off the instrument's scale; rounded half-to-even");
                }
                debug!(order = ?key, trade_id = exec.trade_id, "fill");
                // Never lose a fill, even for an order we no longer track.
                out.events.push(VenueOutput::Exec(e));
                if exec.terminal {
                    self.finish(key);
                }
            }
            crate::venue::Report::Exec(e) => {
                if let ExecEvent::Rejected { text, .. } = &e {
                    info!(venue = %VenueId::BinanceSpot, order = ?key, reason = %text, "order rejected by the venue");
                }
                if self.finish(key) {
                    debug!(order = ?key, "order finished");
                    out.events.push(VenueOutput::Exec(e));
                } else {
                    self.stats.stale_events += 1;
                }
            }
            crate::venue::Report::Venue(_) => {}
        }
        Ok(())
    }

    fn on_event(
        &mut self,
        conn: ConnId,
        ev: &Event<'_>,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        match &*ev.kind {
            "executionReport" => self.on_exec_report(ev, out)?,
            // Still up: the driver opens a new socket before this one
            // closes, and orders keep flowing meanwhile. Asked once per
            // switch.
            "serverShutdown" if !self.replacing => {
                self.replacing = self.serving;
                out.events.push(VenueOutput::Reconnect(conn));
                let state = self.state;
                self.note_state(
                    state,
                    "venue announced server shutdown; opening a new connection".into(),
                    out,
                );
            }
            "eventStreamTerminated" => {
                warn!(venue = %VenueId::BinanceSpot, "user data stream terminated by the venue; resubscribing");
                if self.phase >= Phase::Subscribed {
                    self.set_phase(Phase::ClockSynced);
                }
                self.subscribe(now, out);
            }
            // Balances and order lists are not the lifecycle's concern.
            _ => {}
        }
        Ok(())
    }

    /// The clock has its first sample on this socket (or the `time` ask
    /// failed): subscribe.
    fn clock_synced(&mut self, now: Now, out: &mut Outbox) {
        if self.phase != Phase::Connecting {
            return;
        }
        self.set_phase(Phase::ClockSynced);
        self.subscribe(now, out);
    }

    /// User data flows on this socket: reconcile after a reconnect.
    fn subscribed(&mut self, now: Now, out: &mut Outbox) {
        self.set_phase(Phase::Subscribed);
        if self.ws_socket > 1 && !self.instruments.is_empty() {
            // Subscribed before listing, so nothing falls between.
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
        } else {
            self.reconciled(None, out);
        }
    }

    fn reconciled(&mut self, failed: Option<String>, out: &mut Outbox) {
        self.set_phase(Phase::Reconciled);
        self.set_phase(Phase::Ready);
        let was_serving = self.serving;
        self.serving = true;
        let mut text = if was_serving {
            "new connection ready: user data stream subscribed, open orders reconciled".to_owned()
        } else {
            "user data stream subscribed; ready for orders".to_owned()
        };
        if let Some(f) = failed {
            text.push_str(&format!(" (reconciliation incomplete: {f})"));
        }
        if was_serving {
            self.note_state(VenueState::Up, text, out);
        } else {
            self.set_state(VenueState::Up, text, out);
        }
    }

    fn on_response(
        &mut self,
        frame: Frame<'_>,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        let status = frame.status.unwrap_or(0);
        self.report_usage(&frame.rate_limits, out);
        if let Some(e) = &frame.error {
            if status == 429 || status == 418 || e.code == -1003 || e.code == -1015 {
                let retry = e.data.as_ref().and_then(|d| d.retry_after);
                self.back_off(status, e.code, &e.msg, retry, now, out);
            }
        }
        let Some(inflight) = frame.id.and_then(|id| self.pending.remove(&id)) else {
            self.stats.unmatched_responses += 1;
            // An unsolicited error (id null) is the key being revoked.
            if let (None, Some(e)) = (frame.id, &frame.error) {
                warn!(venue = %VenueId::BinanceSpot, code = e.code, msg = %e.msg, "unsolicited venue error");
                self.serving = false;
                self.set_state(
                    VenueState::Halted,
                    format!("venue error {}: {}", e.code, e.msg),
                    out,
                );
            } else {
                info!(venue = %VenueId::BinanceSpot, id = ?frame.id, status, "response to no request we wait for; ignored");
            }
            return Ok(());
        };
        let pending = inflight.what;
        if let Some(err) = &frame.error {
            if err.code == -1021 {
                // The estimate the timestamp came from is wrong: resample,
                // and let the answer replace every older sample.
                self.clock.distrust();
                self.send_time(now, false, out);
            }
            return self.on_error(pending, status, err, now, out);
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
                self.observe_time(sent, server_ms, now);
                if inflight.socket == self.ws_socket {
                    self.clock_synced(now, out);
                }
            }
            (Pending::Subscribe, ResultBody::Object(_)) => {
                if inflight.socket == self.ws_socket && self.phase == Phase::ClockSynced {
                    self.subscribed(now, out);
                }
            }
            (Pending::Place { client_id }, ResultBody::Object(r)) => {
                let order_id = r.order_id.ok_or_else(|| {
                    Self::malformed("order.place response without orderId".into())
                })?;
                self.accept(client_id, order_id, r.transact_time.unwrap_or(0), out);
            }
            // The cancel's outcome arrives as an executionReport.
            (Pending::Cancel { .. }, ResultBody::Object(_)) => {}
            (Pending::OrderStatus { client_id }, ResultBody::Object(r)) => {
                self.on_order_status(client_id, &r, out)
            }
            (Pending::OpenOrders, ResultBody::Array(rows)) => self.on_open_orders(&rows, now, out),
            (_, _) => {
                return Err(Self::malformed(format!(
                    "response {} has an unexpected result shape",
                    frame.id.unwrap_or(0)
                )))
            }
        }
        Ok(())
    }

    fn observe_time(&mut self, sent: Now, server_ms: u64, now: Now) {
        if self.clock.observe(sent.wall_ms, server_ms, now.wall_ms) {
            debug!(venue = %VenueId::BinanceSpot, offset_ms = ?self.clock.offset_ms(), rtt_ms = ?self.clock.best_rtt_ms(), "venue clock sample");
        }
    }

    fn on_error(
        &mut self,
        pending: Pending,
        status: u16,
        err: &ApiError<'_>,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        let text = err.msg.to_string();
        match pending {
            Pending::Place { client_id } if outcome_unknown(status, err.code) => {
                warn!(venue = %VenueId::BinanceSpot, order = ?client_id.key, status, code = err.code, msg = %text, "order outcome unknown; querying it");
                self.query_order(client_id.key, now, out)
            }
            Pending::Place { client_id } => {
                info!(venue = %VenueId::BinanceSpot, order = ?client_id.key, status, code = err.code, msg = %text, "order rejected by the venue");
                self.finish(client_id.key);
                out.events.push(VenueOutput::Exec(ExecEvent::Rejected {
                    client_id,
                    reason: reason_for(status, err.code, &text, false),
                    code: err.code,
                    text,
                }));
            }
            Pending::Cancel { orig } => {
                info!(venue = %VenueId::BinanceSpot, order = ?orig.key, status, code = err.code, msg = %text, "cancel rejected by the venue");
                out.events
                    .push(VenueOutput::Exec(ExecEvent::CancelRejected {
                        client_id: orig,
                        reason: reason_for(status, err.code, &text, true),
                        code: err.code,
                        text,
                    }))
            }
            // The order never reached the venue: the place was lost.
            Pending::OrderStatus { client_id } if err.code == -2013 => {
                if self.finish(client_id.key) {
                    out.events.push(VenueOutput::Exec(ExecEvent::Rejected {
                        client_id,
                        reason: Reason::VenueRejected,
                        code: err.code,
                        text,
                    }));
                }
            }
            Pending::Subscribe => {
                warn!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "user data subscription refused");
                self.serving = false;
                self.replacing = false;
                self.set_state(
                    VenueState::Halted,
                    format!("user data subscription failed: {} {}", err.code, text),
                    out,
                );
            }
            Pending::OpenOrders => {
                warn!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "open orders listing failed");
                self.reconcile_step(Some(format!("{} {}", err.code, text)), now, out);
            }
            // Without the venue's time, start with the local clock rather
            // than never.
            Pending::Time { .. } => {
                warn!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "server time query failed");
                self.clock_synced(now, out);
            }
            Pending::OrderStatus { client_id } => {
                warn!(venue = %VenueId::BinanceSpot, order = ?client_id.key, code = err.code, msg = %text, "order status query failed");
            }
        }
        Ok(())
    }

    fn on_order_status(&mut self, client_id: ClientId, r: &OrderResult<'_>, out: &mut Outbox) {
        let time_ms = r.update_time.or(r.transact_time).unwrap_or(0);
        let status = r.status.as_deref().unwrap_or("");
        if let Some(order_id) = r.order_id {
            self.accept(client_id, order_id, time_ms, out);
        }
        let end = match status {
            "CANCELED" => ExecEvent::Canceled { client_id, time_ms },
            "EXPIRED" | "EXPIRED_IN_MATCH" => ExecEvent::Expired { client_id, time_ms },
            "REJECTED" => ExecEvent::Rejected {
                client_id,
                reason: Reason::VenueRejected,
                code: 0,
                text: "REJECTED".into(),
            },
            _ => return,
        };
        if self.finish(client_id.key) {
            out.events.push(VenueOutput::Exec(end));
        }
    }

    fn on_open_orders(&mut self, rows: &[OrderResult<'_>], now: Now, out: &mut Outbox) {
        for r in rows {
            let Some(id) = r.client_order_id.as_deref().and_then(|c| self.our_id(c)) else {
                continue;
            };
            self.reconcile_open.insert(id.key);
            if let Some(order_id) = r.order_id {
                let t = r.update_time.unwrap_or(0);
                self.accept(id, order_id, t, out);
            }
        }
        self.reconcile_step(None, now, out);
    }

    /// One open-orders listing is in: once all are, query every tracked
    /// order none of them showed, in order.
    fn reconcile_step(&mut self, failed: Option<String>, now: Now, out: &mut Outbox) {
        if self.reconcile_left == 0 {
            return;
        }
        self.reconcile_left -= 1;
        if failed.is_some() {
            // A failed listing cannot show what is open: do not query
            // orders on its account of them being gone.
            self.reconcile_open.extend(self.orders.keys().copied());
        }
        if self.reconcile_left > 0 {
            return;
        }
        let gone: Vec<OrderKey> = self
            .orders
            .keys()
            .filter(|k| !self.reconcile_open.contains(k))
            .copied()
            .collect();
        self.reconcile_open.clear();
        for key in gone {
            self.query_order(key, now, out);
        }
        if self.phase == Phase::Subscribed {
            self.reconciled(failed, out);
        }
    }

    /// Settles what was in flight on a WebSocket socket that is gone
    /// (`socket` = its number, or every one up to the current).
    fn settle_ws(&mut self, upto_socket: u32, why: &str, now: Now, out: &mut Outbox) {
        let gone: Vec<(u64, InFlight)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.conn == WS && p.socket <= upto_socket)
            .map(|(id, p)| (*id, *p))
            .collect();
        let mut places = Vec::new();
        for (id, p) in gone {
            self.pending.remove(&id);
            match p.what {
                Pending::Cancel { orig } => {
                    out.events
                        .push(VenueOutput::Exec(ExecEvent::CancelRejected {
                            client_id: orig,
                            reason: Reason::VenueDown,
                            code: 0,
                            text: format!("{why} before the cancel was answered"),
                        }))
                }
                // Settled by a query, on the new socket or by the
                // reconciliation after the reconnect.
                Pending::Place { client_id } | Pending::OrderStatus { client_id } => {
                    places.push(client_id.key)
                }
                Pending::OpenOrders => {
                    if p.socket == self.ws_socket {
                        self.reconcile_left = 0;
                    }
                }
                Pending::Time { .. } | Pending::Subscribe => {}
            }
        }
        if self.serving && self.phase >= Phase::ClockSynced {
            for key in places {
                self.query_order(key, now, out);
            }
        }
    }
}

impl VenueProtocol for BinanceSpot {
    fn venue(&self) -> VenueId {
        VenueId::BinanceSpot
    }

    fn connections(&self) -> Vec<ConnSpec> {
        let mut v = vec![ConnSpec {
            url: self.ws_url.clone(),
            transport: Transport::WebSocket,
            role: ConnRole::OrderEntryAndUserData,
        }];
        if let Some(rest) = &self.rest_url {
            v.push(ConnSpec {
                url: rest.clone(),
                transport: Transport::Http,
                role: ConnRole::Rest,
            });
        }
        v
    }

    fn on_connecting(&mut self, conn: ConnId, _now: Now, out: &mut Outbox) {
        if conn == WS && !self.replacing && self.state == VenueState::Down {
            self.set_state(
                VenueState::Connecting,
                format!("connecting to {}", self.ws_url),
                out,
            );
        }
    }

    fn on_open(&mut self, conn: ConnId, now: Now, out: &mut Outbox) {
        if conn == REST {
            self.rest_open = true;
            return;
        }
        if conn != WS {
            return;
        }
        self.ws_socket += 1;
        self.set_phase(Phase::Connecting);
        if !self.replacing {
            self.serving = false;
        }
        // Signed requests wait for the venue's time, so a skewed local
        // clock cannot get the subscription refused (-1021).
        self.send_time(now, false, out);
    }

    /// On the WebSocket: in-flight places stay tracked and are settled by
    /// the reconciliation after the reconnect; in-flight cancels are
    /// reported CancelRejected (`VenueDown`) so the strategy can retry, and
    /// a cancel that did go through still shows up as Canceled then.
    fn on_close(&mut self, conn: ConnId, why: &str, now: Now, out: &mut Outbox) {
        if conn == REST {
            self.rest_open = false;
            self.pending.retain(|_, p| p.conn != REST);
            return;
        }
        if conn != WS {
            return;
        }
        let opened = self.phase != Phase::Closed;
        self.set_phase(Phase::Closed);
        self.serving = false;
        self.replacing = false;
        self.reconcile_left = 0;
        self.settle_ws(u32::MAX, "connection closed", now, out);
        let text = if opened {
            format!("connection closed: {why}")
        } else {
            format!("cannot connect: {why}")
        };
        if self.state != VenueState::Halted || opened {
            self.set_state(VenueState::Down, text, out);
        }
    }

    fn on_drained(&mut self, conn: ConnId, now: Now, out: &mut Outbox) {
        if conn != WS {
            return;
        }
        self.replacing = false;
        let old = self.ws_socket.saturating_sub(1);
        self.settle_ws(old, "connection replaced", now, out);
    }

    fn cost(&self, cmd: &Command) -> Cost {
        match cmd {
            Command::Place(_) => method_cost("order.place"),
            Command::Cancel { .. } => method_cost("order.cancel"),
        }
    }

    fn submit(&mut self, cmd: &Command, now: Now, out: &mut Outbox) -> Result<(), VenueError> {
        if !self.serving {
            return Err(VenueError::NotReady {
                venue: VenueId::BinanceSpot,
                state: self.state,
                text: self.state_text.clone(),
            });
        }
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
                debug!(order = ?o.client_id.key, "order.place sent");
                self.orders.insert(
                    o.client_id.key,
                    Tracked {
                        id: o.client_id,
                        inst,
                        order_id: None,
                        trades: Vec::new(),
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
                debug!(order = ?orig.key, "order.cancel sent");
            }
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        conn: ConnId,
        frame: &mut [u8],
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        let mut buffers = std::mem::take(&mut self.buffers);
        let parsed = parse::parse_frame(frame, &mut buffers);
        let res = match parsed {
            Err(e) => Err(Self::malformed(format!("not a WebSocket API frame: {e}"))),
            Ok(f) => match f.event {
                Some(ref ev) => self.on_event(conn, ev, now, out),
                None if f.status.is_some() => self.on_response(f, now, out),
                None => Err(Self::malformed(
                    "frame is neither a response (no `status`) nor an event (no `event`)".into(),
                )),
            },
        };
        self.buffers = buffers;
        res
    }

    fn on_http(
        &mut self,
        conn: ConnId,
        response: &mut HttpResponse,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        if let Some(w) = response
            .header("x-mbx-used-weight-1m")
            .and_then(|v| v.parse().ok())
        {
            self.stats.used_weight_1m = Some(w);
            out.events.push(VenueOutput::Usage {
                counts: Counts::Weight,
                window_ms: 60_000,
                limit: None,
                count: w,
            });
        }
        if response.status == 429 || response.status == 418 {
            // Retry-After is in seconds.
            let venue_now = self.clock.timestamp_ms(now.wall_ms);
            let retry = response
                .header("retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|secs| venue_now + secs * 1000);
            let status = response.status;
            self.back_off(status, 0, "REST request refused", retry, now, out);
        }
        let Some(inflight) = self.pending.remove(&response.id) else {
            self.stats.unmatched_responses += 1;
            return Ok(());
        };
        if inflight.conn != conn {
            self.stats.unmatched_responses += 1;
            return Ok(());
        }
        match inflight.what {
            Pending::Time { sent } => {
                if response.status != 200 {
                    warn!(venue = %VenueId::BinanceSpot, status = response.status, body = %truncated(&response.body, 200), "REST server time query failed");
                    return Ok(());
                }
                let r: OrderResult<'_> = simd_json::serde::from_slice(&mut response.body)
                    .map_err(|e| Self::malformed(format!("REST time response: {e}")))?;
                let server_ms = r.server_time.ok_or_else(|| {
                    Self::malformed("REST time response without serverTime".into())
                })?;
                self.observe_time(sent, server_ms, now);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_timer(&mut self, now: Now, out: &mut Outbox) {
        self.end_backoff(now, out);
        if self.phase >= Phase::ClockSynced && now.mono_ns >= self.next_clock_sync_ns {
            self.send_time(now, true, out);
        }
    }

    fn next_timer(&self) -> Option<u64> {
        let sync = (self.phase >= Phase::ClockSynced).then_some(self.next_clock_sync_ns);
        match (sync, self.backoff) {
            (Some(s), Some((b, _))) => Some(s.min(b)),
            (s, b) => s.or(b.map(|(u, _)| u)),
        }
    }

    fn default_rules(&self) -> Vec<crate::limiter::Rule> {
        crate::limiter::BINANCE_SPOT_RULES.to_vec()
    }

    fn in_flight(&self) -> usize {
        self.pending.len()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats;
        let mut v = vec![
            ("foreign_events", s.foreign_events),
            ("other_epoch_events", s.other_epoch_events),
            ("duplicate_fills", s.duplicate_fills),
            ("off_scale_fills", s.off_scale_fills),
            ("stale_events", s.stale_events),
            ("unmatched_responses", s.unmatched_responses),
            ("tracked_orders", self.orders.len() as u64),
        ];
        if let Some(w) = s.used_weight_1m {
            v.push(("used_weight_1m", u64::from(w)));
        }
        v
    }
}
