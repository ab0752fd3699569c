//! The Binance Spot adapter: the WebSocket API connection carrying order
//! entry and the user data stream, plus a REST connection for periodic
//! server-time queries, as one sans-IO state machine.
//!
//! Behaviour worth knowing when driving it:
//! - **Phases.** Each WebSocket connection goes [`Phase::Connecting`] →
//!   [`Phase::ClockSynced`] (the `time` answer fed the adapter's own
//!   [`VenueClock`]) → [`Phase::Subscribed`] (signed user-data
//!   subscription) → [`Phase::Reconciled`] (every tracked order listed
//!   open or queried) → [`Phase::Ready`]. The venue is reported Up at
//!   Ready, and only the adapter reports venue state.
//! - **The venue's word is final; ours is provisional.** A new order
//!   whose answer is lost (its deadline passed, the connection dropped)
//!   or says "status unknown" (5xx, -1006, -1007) is reported
//!   [`ExecEvent::OutcomeUnknown`] and asked about with `order.status`,
//!   with back-off, until the venue says. "Does not exist" (-2013) is
//!   final only once the request can no longer reach the matching engine:
//!   [`BACKEND_TIMEOUT_MS`] plus the recvWindow after it was last sent.
//!   Retryable refusals follow the one table in [`super::retry`], with the
//!   same client id. Cancels are re-sent until the venue answers them.
//! - **Exact fills.** Fills are de-duplicated here, and only here: by
//!   trade id per live order, and by (instrument, trade id, venue order
//!   id) among the last [`FILL_MEMORY`] fills of finished orders. Our sum
//!   of unique fills is checked against the venue's cumulative quantity
//!   (`z`, `executedQty`); when the venue counts more, the missing trades
//!   are fetched (`myTrades` by `orderId`), and a final event (filled,
//!   canceled, expired) is held until every fill before it is reported:
//!   no fill after a final message.
//! - **Recovery after every gap.** After a reconnect, a resubscription, an
//!   unreadable frame, and every [`RECONCILE_INTERVAL_NS`]: open orders
//!   are listed per symbol, every tracked order not listed is queried, and
//!   missing fills are fetched, all as bulk-lane queries.
//! - **Liveness.** Every request has a deadline ([`REQUEST_DEADLINE_NS`]);
//!   a lost answer is handled per request, and when nothing at all came
//!   back since, the connection is judged dead
//!   ([`VenueOutput::CloseConnection`]). A connection is rolled over (make
//!   before break) after [`ROLLOVER_NS`], before the venue's 24-hour cut.
//! - **Every transmit carries its cost** ([`method_cost`]).
//! - **Reconnects.** `serverShutdown` emits [`VenueOutput::Reconnect`]:
//!   the driver opens a fresh socket while the old one is still read (make
//!   before break), the venue stays Up and orders keep flowing.
//!   `eventStreamTerminated` halts new orders until the stream is
//!   resubscribed and reconciled; a refused subscription is retried with
//!   back-off, and after a ban once it ends.
//! - Events for client ids another installation (or tool) generated are
//!   ignored and counted in [`BinanceStats`]; so are our ids from another
//!   epoch than the tracked order's (an earlier run whose journal is gone).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use super::exec::{self, to_scale_nearest, ExecOutcome};
use super::parse::{self, ApiError, Event, Frame, OrderResult, RateLimit, ResultBody};
use super::requests::{self, Param};
use super::retry::{self, Verdict};
use crate::clock::VenueClock;
use crate::decimal::WideDecimal;
use crate::ids::{ClientId, ClientIdKind, InstrumentId, Namespace, OrderKey, VenueId};
use crate::instrument::Instrument;
use crate::limiter::Counts;
use crate::model::{flags, OrdType, OrderRequest, Reason, Side, TimeInForce, VenueState};
use crate::venue::{
    Adopted, Command, ConnId, ConnRole, ConnSpec, Cost, ExecEvent, HttpMethod, HttpRequest,
    HttpResponse, Now, Outbox, Payload, Transmit, Transport, VenueError, VenueOutput,
    VenueProtocol, VenueStatus,
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
/// Every request is answered within this or counted lost.
pub const REQUEST_DEADLINE_NS: u64 = 5_000_000_000;
/// Binance's API gives up on its matching engine after this ("API timeout
/// 10 s", -1007): with the recvWindow, the bound after which a request can
/// no longer execute.
pub const BACKEND_TIMEOUT_MS: u64 = 10_000;
/// Tracked orders are reconciled this often even without a known gap.
pub const RECONCILE_INTERVAL_NS: u64 = 60_000_000_000;
/// A connection is replaced after this long (the venue cuts at 24 h).
pub const ROLLOVER_NS: u64 = 23 * 3_600_000_000_000;
/// Back-off between queries about an order of unknown outcome, and
/// between backfills that came back short.
/// `userDataStream.subscribe` on a socket whose stream is already on
/// ("User Data Stream subscription already active.").
const USER_DATA_ALREADY_SUBSCRIBED: i64 = -2035;
const QUERY_DELAY_MIN_NS: u64 = 250_000_000;
const QUERY_DELAY_MAX_NS: u64 = 4_000_000_000;
/// `myTrades` by symbol (no `orderId`), per the API notes.
const SYMBOL_TRADES_COST: Cost = Cost {
    weight: 20,
    orders: 0,
};
/// Back-off between subscription attempts after a refusal.
const SUBSCRIBE_DELAY_MIN_NS: u64 = 1_000_000_000;
const SUBSCRIBE_DELAY_MAX_NS: u64 = 30_000_000_000;
/// Back-off before listing open orders again after a listing failed.
const RELIST_DELAY_NS: u64 = 1_000_000_000;

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
    /// This installation and run: new ids are minted in it, and events
    /// for other installations' ids are ignored.
    pub namespace: Namespace,
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
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// Counters for what the adapter saw but did not pass on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BinanceStats {
    /// Events for client ids we did not generate (another installation's
    /// or another tool's).
    pub foreign_events: u64,
    /// Orders of earlier runs adopted at start.
    pub adopted: u64,
    /// Events for our ids from another epoch than the tracked order's.
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
    /// New orders whose outcome became unknown.
    pub unknown_outcomes: u64,
    /// Requests re-sent after a retryable refusal or a lost answer.
    pub retries: u64,
    /// Answers that never came within the deadline.
    pub lost_answers: u64,
    /// `myTrades` backfills sent because the venue counted more fills.
    pub backfills: u64,
    /// Our sum of fills exceeded the venue's cumulative quantity.
    pub fill_mismatches: u64,
    /// Events for an order given up as never placed (it was).
    pub late_truths: u64,
    /// Reconciliation passes started.
    pub reconciles: u64,
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
    Time {
        sent: Now,
    },
    Subscribe,
    OpenOrders,
    Place {
        client_id: ClientId,
    },
    Cancel {
        orig: ClientId,
        cancel_id: ClientId,
    },
    OrderStatus {
        client_id: ClientId,
    },
    MyTrades {
        client_id: ClientId,
    },
    /// A symbol's trades from `from` on, for every order backfilling there.
    SymbolTrades {
        inst: usize,
    },
    /// A symbol's order history from an order id on (`allOrders`), for
    /// the orders a reconciliation did not find open.
    SymbolOrders {
        inst: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    what: Pending,
    conn: ConnId,
    /// Which WebSocket socket (see `ws_socket`) it went out on.
    socket: u32,
    /// When it was handed to the driver (monotonic), then when it reached
    /// the wire (`on_sent`): the deadline runs from there.
    sent_ns: u64,
    on_wire: bool,
}

/// Where a new order's placement stands, as far as the venue has said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Sent; the answer is awaited.
    Sent,
    /// The venue has it (an ack, an event, a listing, a status).
    Known,
    /// The outcome is unknown: `order.status` is asked from `next_ns`;
    /// "does not exist" is final only from `final_ns`.
    Unknown {
        final_ns: u64,
        next_ns: u64,
        delay_ns: u64,
        asking: bool,
    },
    /// Refused with a retryable error: sent again at `at_ns` (`u64::MAX`
    /// until the venue clock is re-synced).
    Retry { at_ns: u64 },
}

/// The state of a backfill of missing fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backfill {
    Idle,
    /// To be asked from `at_ns`.
    Wanted {
        at_ns: u64,
        delay_ns: u64,
    },
    Asking {
        delay_ns: u64,
    },
}

#[derive(Debug, Clone)]
struct Tracked {
    inst: usize,
    /// The order as the desk sent it: a retry sends it again, same id.
    req: OrderRequest,
    /// The venue's order id, once any answer carried it.
    order_id: Option<u64>,
    /// Trade ids already reported (or held) for this order.
    trades: Vec<i64>,
    /// Sum of those fills' quantities, at the quantity scale, and of their
    /// notionals, at the price scale plus the quantity scale.
    cum_qty: i64,
    cum_quote: i128,
    /// The venue's cumulative filled quantity, as last reported.
    venue_qty: i64,
    place: Place,
    sends: u8,
    last_sent_ns: u64,
    /// A cancel to deliver until the venue answers it, and whether one is
    /// on the wire; `cancel_sends` counts them.
    cancel: Option<ClientId>,
    cancel_in_flight: bool,
    cancel_sends: u8,
    cancel_at_ns: u64,
    /// The current cancel was answered (its success, or a refusal
    /// reported): later answers to its re-sends are not reported again.
    cancel_answered: bool,
    backfill: Backfill,
    /// Final events held until every fill before them is reported.
    held: Vec<ExecEvent>,
    /// The venue said FILLED (by status) while fills were missing.
    end_filled: bool,
    /// The venue's refusal of a new order waiting to be retried: what
    /// the strategy gets if the retry comes too late.
    refusal: Option<ExecEvent>,
}

impl Tracked {
    fn new(req: OrderRequest, inst: usize) -> Tracked {
        Tracked {
            inst,
            req,
            order_id: None,
            trades: Vec::new(),
            cum_qty: 0,
            cum_quote: 0,
            venue_qty: 0,
            place: Place::Sent,
            sends: 0,
            last_sent_ns: 0,
            cancel: None,
            cancel_in_flight: false,
            cancel_sends: 0,
            cancel_at_ns: 0,
            cancel_answered: false,
            backfill: Backfill::Idle,
            held: Vec::new(),
            end_filled: false,
            refusal: None,
        }
    }

    /// Fills are missing: the venue counts more than we reported.
    fn missing_fills(&self) -> bool {
        self.venue_qty > self.cum_qty
    }
}

/// A reconciliation pass: listings still awaited and what they showed.
#[derive(Debug, Default)]
struct Reconcile {
    listings_left: usize,
    listed: HashSet<OrderKey>,
    failed: bool,
}

/// The Binance Spot WebSocket API adapter.
pub struct BinanceSpot {
    ws_url: String,
    rest_url: Option<String>,
    api_key: String,
    secret: Zeroizing<Vec<u8>>,
    recv_window: String,
    recv_window_ms: u64,
    namespace: Namespace,
    instruments: Vec<Instrument>,
    by_id: HashMap<InstrumentId, usize>,
    by_symbol: HashMap<String, usize>,
    next_id: u64,
    /// Requests awaiting an answer, by id (ordered: ids grow with time,
    /// so the first is the oldest, and what is settled on a close is
    /// handled in the order it was sent).
    pending: BTreeMap<u64, InFlight>,
    /// Our orders the venue has not finished (ordered: reconciliation
    /// queries go out in a reproducible order).
    orders: BTreeMap<OrderKey, Tracked>,
    /// Orders given up as never placed ("does not exist" past the bound),
    /// kept so a late venue truth about one finds it again.
    given_up: HashMap<OrderKey, Tracked>,
    given_up_order: VecDeque<OrderKey>,
    /// Orders that finished with a cancel of ours sent, and whether they
    /// ended canceled: a late answer to a cancel sent again is then
    /// reported only if nothing answered the cancel yet (each cancel is
    /// answered once).
    closed_cancels: HashMap<OrderKey, bool>,
    closed_cancels_order: VecDeque<OrderKey>,
    /// Fill keys of finished orders, for replays.
    finished_fills: HashSet<(usize, i64, u64)>,
    finished_order: VecDeque<(usize, i64, u64)>,
    /// Foreign open orders already reported (see `report_foreign`).
    foreign_open: HashSet<String>,
    clock: VenueClock,
    phase: Phase,
    /// Some WebSocket socket is Ready (the current one, or the one being
    /// replaced): orders may be sent.
    serving: bool,
    /// A replacement socket was asked for and the old one still serves.
    replacing: bool,
    /// Counts WebSocket opens; the current socket's number.
    ws_socket: u32,
    /// When the current socket opened, and when a frame last arrived.
    opened_ns: u64,
    last_frame_ns: u64,
    /// A CloseConnection was asked for the current socket.
    closing: bool,
    rest_open: bool,
    next_clock_sync_ns: u64,
    reconcile: Option<Reconcile>,
    next_reconcile_ns: u64,
    /// Re-subscribe at this time (after a refusal), and the next delay.
    resubscribe_at: Option<u64>,
    subscribe_delay_ns: u64,
    /// The earliest time some tracked order wants the timer (a query, a
    /// retry, a backfill, a cancel re-send).
    orders_due_ns: Option<u64>,
    /// Per instrument: the highest trade id reported, and the first trade
    /// id a connection gap may have hidden (one past the highest seen when
    /// the connection closed), until a reconciliation backfilled it.
    last_trade: Vec<Option<i64>>,
    gap_from: Vec<Option<i64>>,
    /// A symbol-wide trade query is in flight (orders wanting a backfill
    /// there join it).
    symbol_asking: Vec<bool>,
    /// Per instrument: orders a reconciliation did not find open, waiting
    /// for the symbol's order history to say how they ended.
    history_wanted: Vec<BTreeSet<OrderKey>>,
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
        // With `orderId`, which is how this adapter asks (20 without).
        "myTrades" => (5, 0),
        "allOrders" => (20, 0),
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

/// Whether our exact amount and the venue's are the same, to the venue's
/// last digit (it may write fewer decimals than the exact product has).
fn same_amount(ours: WideDecimal, venue: WideDecimal) -> bool {
    let scale = ours.scale.max(venue.scale);
    let (Some(a), Some(b)) = (
        ours.mantissa
            .checked_mul(crate::decimal::pow10(scale - ours.scale)),
        venue
            .mantissa
            .checked_mul(crate::decimal::pow10(scale - venue.scale)),
    ) else {
        return false;
    };
    let unit = crate::decimal::pow10(scale - venue.scale);
    a.abs_diff(b) < unit.unsigned_abs()
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
        let n = cfg.instruments.len();
        BinanceSpot {
            ws_url: cfg.ws_url,
            rest_url: cfg.rest_url,
            api_key: cfg.api_key,
            secret: Zeroizing::new(cfg.api_secret),
            recv_window: cfg.recv_window_ms.to_string(),
            recv_window_ms: u64::from(cfg.recv_window_ms),
            namespace: cfg.namespace,
            instruments: cfg.instruments,
            by_id,
            by_symbol,
            next_id: 1,
            pending: BTreeMap::new(),
            orders: BTreeMap::new(),
            given_up: HashMap::new(),
            given_up_order: VecDeque::new(),
            closed_cancels: HashMap::new(),
            closed_cancels_order: VecDeque::new(),
            finished_fills: HashSet::new(),
            finished_order: VecDeque::new(),
            foreign_open: HashSet::new(),
            clock: VenueClock::default(),
            phase: Phase::Closed,
            serving: false,
            replacing: false,
            ws_socket: 0,
            opened_ns: 0,
            last_frame_ns: 0,
            closing: false,
            rest_open: false,
            next_clock_sync_ns: 0,
            reconcile: None,
            next_reconcile_ns: u64::MAX,
            resubscribe_at: None,
            subscribe_delay_ns: SUBSCRIBE_DELAY_MIN_NS,
            orders_due_ns: None,
            last_trade: vec![None; n],
            gap_from: vec![None; n],
            symbol_asking: vec![false; n],
            history_wanted: vec![BTreeSet::new(); n],
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

    /// How long after its last send "does not exist" is final for a new
    /// order: the venue's backend timeout plus the recvWindow.
    fn unknown_bound_ns(&self) -> u64 {
        (BACKEND_TIMEOUT_MS + self.recv_window_ms) * 1_000_000
    }

    /// Queries may go out on the current socket.
    fn can_query(&self) -> bool {
        self.phase >= Phase::ClockSynced && self.backoff.is_none()
    }

    /// Some tracked order wants the timer at `at_ns`.
    fn wake_at(&mut self, at_ns: u64) {
        self.orders_due_ns = Some(self.orders_due_ns.map_or(at_ns, |t| t.min(at_ns)));
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
        // A retry time already past by our venue clock means the clock is
        // off, not that the wait is over: wait at least a little, and
        // resample the clock.
        let floor_ms = if ban { 1_000 } else { 100 };
        if retry_after_ms.is_some_and(|t| t <= venue_now) {
            self.clock.distrust();
            self.send_time(now, false, out);
        }
        let wait_ms = retry_after_ms
            .map(|t| t.saturating_sub(venue_now))
            .unwrap_or(default_ms)
            .max(floor_ms);
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

    /// The back-off is over: back Up if the venue was serving; if the
    /// subscription was refused meanwhile (or never sent), try it now.
    fn end_backoff(&mut self, now: Now, out: &mut Outbox) {
        let Some((until, ban)) = self.backoff else {
            return;
        };
        if now.mono_ns < until {
            return;
        }
        self.backoff = None;
        let what = if ban { "ban" } else { "rate-limit pause" };
        if self.serving {
            self.set_state(
                VenueState::Up,
                format!("the venue's {what} is over; ready for orders"),
                out,
            );
        } else if self.phase == Phase::ClockSynced {
            info!(venue = %VenueId::BinanceSpot, "the venue's {what} is over; subscribing to user data again");
            self.resubscribe_at = None;
            self.subscribe(now, out);
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

    fn take_id(&mut self, what: Pending, conn: ConnId, now: Now) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            InFlight {
                what,
                conn,
                socket: self.ws_socket,
                sent_ns: now.mono_ns,
                on_wire: false,
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
        let id = self.take_id(p, WS, now);
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
            request: id,
        });
    }

    /// Asks the server time: on REST when it is open, else on the
    /// WebSocket (a connection's first ask is always on its own socket).
    fn send_time(&mut self, now: Now, prefer_rest: bool, out: &mut Outbox) {
        self.next_clock_sync_ns = now.mono_ns.saturating_add(CLOCK_SYNC_INTERVAL_NS);
        if prefer_rest && self.rest_open {
            let id = self.take_id(Pending::Time { sent: now }, REST, now);
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
                request: id,
            });
            return;
        }
        let id = self.take_id(Pending::Time { sent: now }, WS, now);
        out.transmits.push(Transmit {
            conn: WS,
            payload: Payload::Text(requests::unsigned(id, "time", &[])),
            cost: method_cost("time"),
            request: id,
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

    /// Our order's id from a venue string, counting what is not ours.
    fn our_id(&mut self, s: &str) -> Option<ClientId> {
        match ClientId::decode(s) {
            Some(id) if id.kind == ClientIdKind::Order && self.same_run(&id) => Some(id),
            Some(id) if id.ns.installation == self.namespace.installation => {
                self.stats.other_epoch_events += 1;
                None
            }
            _ => {
                self.stats.foreign_events += 1;
                None
            }
        }
    }

    /// Ours, and from the run that placed the order it names: the tracked
    /// order's epoch (adopted orders keep theirs), or this run's.
    fn same_run(&self, id: &ClientId) -> bool {
        if id.ns.installation != self.namespace.installation {
            return false;
        }
        let placed = self
            .orders
            .get(&id.key)
            .or_else(|| self.given_up.get(&id.key))
            .map_or(self.namespace.epoch, |t| t.req.client_id.ns.epoch);
        id.ns.epoch == placed
    }

    /// An open order on the account that is not this installation's
    /// (another installation's, another tool's, or ours from a run whose
    /// journal is gone): told to operators once, and left alone.
    fn report_foreign(&mut self, client_order_id: &str, order_id: Option<u64>) {
        if self.foreign_open.len() >= FILL_MEMORY
            || !self.foreign_open.insert(client_order_id.to_owned())
        {
            return;
        }
        let whose = match ClientId::decode(client_order_id) {
            Some(id) if id.ns.installation == self.namespace.installation => {
                "this installation's, from a run not in the journal"
            }
            Some(_) => "another ordergate installation's",
            None => "not an ordergate id",
        };
        warn!(venue = %VenueId::BinanceSpot, client_order_id, ?order_id, whose, "open order on the account that this sidecar does not own; left alone");
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

    /// Sends (or re-sends, with the same client id) a tracked new order.
    fn send_place(&mut self, key: OrderKey, now: Now, out: &mut Outbox) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        t.sends = t.sends.saturating_add(1);
        t.last_sent_ns = now.mono_ns;
        t.place = Place::Sent;
        let o = t.req;
        let ins = &self.instruments[t.inst];
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
        debug!(order = ?key, "order.place sent");
    }

    /// Asks the venue about one tracked order.
    fn query_order(&mut self, key: OrderKey, now: Now, out: &mut Outbox) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        if let Place::Unknown { asking, .. } = &mut t.place {
            *asking = true;
        }
        let client_id = t.req.client_id;
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

    fn send_cancel(&mut self, key: OrderKey, now: Now, out: &mut Outbox) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        let Some(cancel_id) = t.cancel else {
            return;
        };
        t.cancel_in_flight = true;
        t.cancel_sends = t.cancel_sends.saturating_add(1);
        if t.cancel_sends > 1 {
            info!(venue = %VenueId::BinanceSpot, order = ?key, sends = t.cancel_sends, "cancel sent again: its answer was lost or refused for now");
        }
        let orig = t.req.client_id;
        let symbol = self.instruments[t.inst].symbol.clone();
        self.send_cancel_request(&symbol, orig, cancel_id, now, out);
    }

    fn send_cancel_request(
        &mut self,
        symbol: &str,
        orig: ClientId,
        cancel_id: ClientId,
        now: Now,
        out: &mut Outbox,
    ) {
        let orig_s = orig.encode();
        let cancel_s = cancel_id.encode();
        let params = [
            Param::str("symbol", symbol),
            Param::str("origClientOrderId", &orig_s),
            Param::str("newClientOrderId", &cancel_s),
        ];
        self.send_signed(
            "order.cancel",
            Pending::Cancel { orig, cancel_id },
            &params,
            now,
            out,
        );
        debug!(order = ?orig.key, "order.cancel sent");
    }

    /// Fetches the order's trades: the venue counted more than we saw.
    fn send_my_trades(&mut self, key: OrderKey, now: Now, out: &mut Outbox) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        let Some(order_id) = t.order_id else {
            // Without the venue's order id the trades cannot be told
            // apart: ask the order first.
            t.backfill = Backfill::Idle;
            self.query_order(key, now, out);
            return;
        };
        let delay_ns = match t.backfill {
            Backfill::Wanted { delay_ns, .. } | Backfill::Asking { delay_ns } => delay_ns,
            Backfill::Idle => QUERY_DELAY_MIN_NS,
        };
        t.backfill = Backfill::Asking { delay_ns };
        let client_id = t.req.client_id;
        let symbol = self.instruments[t.inst].symbol.clone();
        let order_id = order_id.to_string();
        self.stats.backfills += 1;
        self.send_signed(
            "myTrades",
            Pending::MyTrades { client_id },
            &[
                Param::str("symbol", &symbol),
                Param::num("orderId", &order_id),
            ],
            now,
            out,
        );
    }

    /// Backfills for these orders: after a connection gap, one `myTrades`
    /// per symbol from the first trade id the gap may have hidden (weight
    /// 20 for up to 1,000 trades) when several orders there need it; else
    /// one per order (`orderId`, weight 5).
    fn send_backfills(&mut self, keys: Vec<OrderKey>, now: Now, out: &mut Outbox) {
        let mut by_inst: BTreeMap<usize, Vec<OrderKey>> = BTreeMap::new();
        for k in keys {
            if let Some(t) = self.orders.get(&k) {
                by_inst.entry(t.inst).or_default().push(k);
            }
        }
        for (inst, keys) in by_inst {
            let joining = self.symbol_asking[inst];
            match self.gap_from[inst] {
                Some(from) if joining || keys.len() > 1 => {
                    for k in &keys {
                        if let Some(t) = self.orders.get_mut(k) {
                            let delay_ns = match t.backfill {
                                Backfill::Wanted { delay_ns, .. } => delay_ns,
                                _ => QUERY_DELAY_MIN_NS,
                            };
                            t.backfill = Backfill::Asking { delay_ns };
                        }
                    }
                    if !joining {
                        self.send_symbol_trades(inst, from, now, out);
                    }
                }
                _ => {
                    for k in keys {
                        self.send_my_trades(k, now, out);
                    }
                }
            }
        }
    }

    fn send_symbol_trades(&mut self, inst: usize, from: i64, now: Now, out: &mut Outbox) {
        self.symbol_asking[inst] = true;
        let symbol = self.instruments[inst].symbol.clone();
        let from = from.to_string();
        self.stats.backfills += 1;
        self.send_signed(
            "myTrades",
            Pending::SymbolTrades { inst },
            &[
                Param::str("symbol", &symbol),
                Param::num("fromId", &from),
                Param::num("limit", "1000"),
            ],
            now,
            out,
        );
        // Without `orderId` the method weighs 20, not 5.
        if let Some(t) = out.transmits.last_mut() {
            t.cost = SYMBOL_TRADES_COST;
        }
    }

    /// A symbol's trades since a gap: every tracked order there takes its
    /// own (de-duplicated, so one query serves all); a full page asks for
    /// the next; once complete, the gap's start moves past these trades.
    fn on_symbol_trades(
        &mut self,
        inst: usize,
        rows: &[OrderResult<'_>],
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        self.symbol_asking[inst] = false;
        let with_rows: HashSet<u64> = rows.iter().filter_map(|r| r.order_id).collect();
        let keys: Vec<(OrderKey, ClientId)> = self
            .orders
            .iter()
            .filter(|(_, t)| {
                t.inst == inst
                    && (t.backfill != Backfill::Idle
                        || t.order_id.is_some_and(|o| with_rows.contains(&o)))
            })
            .map(|(k, t)| (*k, t.req.client_id))
            .collect();
        let full = rows.len() >= 1000;
        let next = rows.iter().filter_map(|r| r.id).max().map(|m| m + 1);
        if full {
            if let Some(n) = next {
                self.send_symbol_trades(inst, n, now, out);
            }
        } else if let Some(n) = next {
            self.gap_from[inst] = Some(n);
        }
        for (key, client_id) in keys {
            if full && self.orders.get(&key).is_some_and(Tracked::missing_fills) {
                // Its trades may be on the next page: only report these.
                let before = self.orders.get(&key).map(|t| t.backfill);
                self.on_my_trades(client_id, rows, now, out)?;
                if let (Some(t), Some(b)) = (self.orders.get_mut(&key), before) {
                    if t.missing_fills() {
                        t.backfill = b;
                    }
                }
            } else {
                self.on_my_trades(client_id, rows, now, out)?;
            }
        }
        Ok(())
    }

    /// Asks for the missing fills of `key` (now, or after its back-off).
    fn want_backfill(&mut self, key: OrderKey, now: Now) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        if t.backfill == Backfill::Idle {
            warn!(venue = %VenueId::BinanceSpot, order = ?key, ours = t.cum_qty, venue = t.venue_qty, "the venue counts fills we have not seen; fetching its trades");
            t.backfill = Backfill::Wanted {
                at_ns: now.mono_ns,
                delay_ns: QUERY_DELAY_MIN_NS,
            };
            self.wake_at(now.mono_ns);
        }
    }

    /// Accepted, for an order still tracked (the lifecycle ignores a
    /// repeat; a late answer for a finished order adds nothing).
    fn accept(&mut self, client_id: ClientId, venue_order_id: u64, time_ms: u64, out: &mut Outbox) {
        let Some(t) = self.orders.get_mut(&client_id.key) else {
            return;
        };
        t.order_id = Some(venue_order_id);
        t.place = Place::Known;
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
        if t.cancel_sends > 0 && self.closed_cancels.insert(key, t.cancel_answered).is_none() {
            self.closed_cancels_order.push_back(key);
            if self.closed_cancels_order.len() > FILL_MEMORY {
                if let Some(old) = self.closed_cancels_order.pop_front() {
                    self.closed_cancels.remove(&old);
                }
            }
        }
        if let Some(order_id) = t.order_id {
            for trade in t.trades {
                self.remember_finished_fill((t.inst, trade, order_id));
            }
        }
        true
    }

    /// The venue confirmed, past the bound, that it never had the order:
    /// it is reported Rejected, and remembered in case the venue says
    /// otherwise later.
    fn give_up(&mut self, key: OrderKey, text: String, out: &mut Outbox) {
        let Some(t) = self.orders.remove(&key) else {
            return;
        };
        warn!(venue = %VenueId::BinanceSpot, order = ?key, reason = %text, "order never reached the venue");
        out.events.push(VenueOutput::Exec(ExecEvent::Rejected {
            client_id: t.req.client_id,
            reason: Reason::VenueRejected,
            code: -2013,
            text,
        }));
        self.given_up.insert(key, t);
        self.given_up_order.push_back(key);
        if self.given_up_order.len() > FILL_MEMORY {
            if let Some(old) = self.given_up_order.pop_front() {
                self.given_up.remove(&old);
            }
        }
    }

    /// An event for an order given up as never placed: the venue has it
    /// after all. Track it again (the lifecycle reopens it).
    fn revive(&mut self, key: OrderKey) {
        if let Some(mut t) = self.given_up.remove(&key) {
            warn!(venue = %VenueId::BinanceSpot, order = ?key, "the venue has an order we reported never placed; tracking it again");
            self.stats.late_truths += 1;
            t.place = Place::Known;
            self.orders.insert(key, t);
        }
    }

    /// The new order's outcome is unknown: tell the lifecycle once, and
    /// ask the venue (again) after a back-off.
    fn mark_unknown(&mut self, key: OrderKey, text: &str, now: Now, out: &mut Outbox) {
        let bound = self.unknown_bound_ns();
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        match &mut t.place {
            Place::Known => return,
            Place::Unknown {
                next_ns,
                delay_ns,
                asking,
                ..
            } => {
                *asking = false;
                *next_ns = now.mono_ns + *delay_ns;
                *delay_ns = (*delay_ns * 2).min(QUERY_DELAY_MAX_NS);
            }
            Place::Sent | Place::Retry { .. } => {
                t.place = Place::Unknown {
                    final_ns: t.last_sent_ns + bound,
                    next_ns: now.mono_ns + QUERY_DELAY_MIN_NS,
                    delay_ns: QUERY_DELAY_MIN_NS * 2,
                    asking: false,
                };
                self.stats.unknown_outcomes += 1;
                warn!(venue = %VenueId::BinanceSpot, order = ?key, reason = text, "order outcome unknown; asking the venue");
                out.events
                    .push(VenueOutput::Exec(ExecEvent::OutcomeUnknown {
                        client_id: t.req.client_id,
                        text: text.to_owned(),
                    }));
            }
        }
        if let Place::Unknown { next_ns, .. } = t.place {
            self.wake_at(next_ns);
        }
    }

    /// A retryable refusal of a new order: send it again when `at_ns`
    /// comes (or after the clock re-syncs), unless it was sent too often
    /// or is too old, when the strategy gets the refusal.
    fn retry_place(
        &mut self,
        key: OrderKey,
        at_ns: u64,
        refusal: ExecEvent,
        now: Now,
        out: &mut Outbox,
    ) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        // Retried only if it can still go out within the staleness bound.
        let due = if at_ns == u64::MAX {
            now.mono_ns
        } else {
            at_ns
        };
        let stale = due.saturating_sub(t.req.queued_ns) > retry::STALE_NS;
        if t.sends >= retry::MAX_SENDS || stale {
            info!(venue = %VenueId::BinanceSpot, order = ?key, sends = t.sends, stale, "order refused by the venue; not retried again");
            // The first refusal is the cause (a -1021 on a re-send held by
            // the limiter is its consequence).
            let refusal = t.refusal.take().unwrap_or(refusal);
            self.finish(key);
            out.events.push(VenueOutput::Exec(refusal));
            return;
        }
        t.place = Place::Retry { at_ns };
        if t.refusal.is_none() {
            t.refusal = Some(refusal);
        }
        self.stats.retries += 1;
        info!(venue = %VenueId::BinanceSpot, order = ?key, sends = t.sends, "order refused with a retryable error; it will be sent again with the same id");
        if at_ns != u64::MAX {
            self.wake_at(at_ns);
        }
    }

    /// Reports `ev` for tracked order `key`, or holds it while fills are
    /// missing (`is_final`: the event ends the order).
    fn deliver(
        &mut self,
        key: OrderKey,
        ev: ExecEvent,
        is_final: bool,
        now: Now,
        out: &mut Outbox,
    ) {
        let Some(t) = self.orders.get_mut(&key) else {
            out.events.push(VenueOutput::Exec(ev));
            return;
        };
        if is_final && (t.missing_fills() || t.backfill != Backfill::Idle || !t.held.is_empty()) {
            debug!(order = ?key, "final event held until the missing fills are in");
            t.held.push(ev);
            self.want_backfill(key, now);
            return;
        }
        let canceled = matches!(ev, ExecEvent::Canceled { .. });
        out.events.push(VenueOutput::Exec(ev));
        if is_final {
            self.finish(key);
            if canceled {
                self.cancel_answered_by_end(key);
            }
            return;
        }
        // That fill may have been the one missing: release what waited.
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        if !t.held.is_empty()
            && !t.missing_fills()
            && !matches!(t.backfill, Backfill::Asking { .. })
        {
            t.backfill = Backfill::Idle;
            let held = std::mem::take(&mut t.held);
            let canceled = held.iter().any(|e| matches!(e, ExecEvent::Canceled { .. }));
            for e in held {
                out.events.push(VenueOutput::Exec(e));
            }
            self.finish(key);
            if canceled {
                self.cancel_answered_by_end(key);
            }
        }
    }

    /// User data stops here (a closed connection, an ended stream): trades
    /// from here on may go unseen until the reconciliation.
    fn gap_starts(&mut self) {
        for (gap, last) in self.gap_from.iter_mut().zip(&self.last_trade) {
            if gap.is_none() {
                *gap = Some(last.map_or(0, |l| l + 1));
            }
        }
    }

    /// The order ended canceled: that answered our cancel.
    fn cancel_answered_by_end(&mut self, key: OrderKey) {
        if let Some(c) = self.closed_cancels.get_mut(&key) {
            *c = true;
        }
    }

    /// The venue's cumulative quantity for `key` (`z`, `executedQty`).
    /// The venue's cumulative quantity for `key` (`z`, `executedQty`) and,
    /// when it says, its cumulative quote quantity (`Z`,
    /// `cummulativeQuoteQty`): fewer fills here than there is a backfill;
    /// more, or the same quantity at another notional, is a violation,
    /// counted and logged (nothing is guessed).
    fn venue_says(&mut self, key: OrderKey, venue_qty: i64, venue_quote: Option<&str>, now: Now) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        t.venue_qty = t.venue_qty.max(venue_qty);
        if t.missing_fills() {
            self.want_backfill(key, now);
        } else if venue_qty < t.cum_qty {
            self.stats.fill_mismatches += 1;
            warn!(venue = %VenueId::BinanceSpot, order = ?key, ours = t.cum_qty, venue = venue_qty, "we counted more fills than the venue reports");
        } else if let Some(q) = venue_quote.and_then(|q| WideDecimal::parse(q).ok()) {
            let ins = &self.instruments[t.inst];
            let ours = WideDecimal::new(t.cum_quote, ins.price_scale + ins.qty_scale);
            if !same_amount(ours, q) {
                self.stats.fill_mismatches += 1;
                warn!(venue = %VenueId::BinanceSpot, order = ?key, ours = %ours, venue = %q, "the venue's cumulative quote quantity differs from the sum of our fills");
            }
        }
    }

    fn on_exec_report(
        &mut self,
        ev: &Event<'_>,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
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
        if client_id.ns.installation != self.namespace.installation {
            self.stats.foreign_events += 1;
            info!(venue = %VenueId::BinanceSpot, symbol, installation = %client_id.ns.installation_str(), "execution report for another installation's order; ignored");
            return Ok(());
        }
        if !self.same_run(&client_id) {
            self.stats.other_epoch_events += 1;
            info!(venue = %VenueId::BinanceSpot, epoch = client_id.ns.epoch, "execution report from another sidecar epoch; ignored");
            return Ok(());
        }
        let key = client_id.key;
        self.revive(key);
        if let Some(t) = self.orders.get_mut(&key) {
            t.order_id = Some(exec.order_id);
            if t.place != Place::Known {
                t.place = Place::Known;
            }
        }
        match exec.event {
            crate::venue::Report::Exec(ExecEvent::Accepted { time_ms, .. }) => {
                if self.orders.contains_key(&key) {
                    self.accept(client_id, exec.order_id, time_ms, out);
                } else {
                    self.stats.stale_events += 1;
                }
            }
            crate::venue::Report::Exec(e @ ExecEvent::Fill { .. }) => {
                let ExecEvent::Fill {
                    last_qty,
                    last_price,
                    order_filled,
                    ..
                } = e
                else {
                    unreachable!("matched a fill")
                };
                if !self.new_fill(key, inst, exec.trade_id, exec.order_id) {
                    self.stats.duplicate_fills += 1;
                    debug!(order = ?key, trade_id = exec.trade_id, "duplicate fill dropped");
                    if order_filled {
                        self.filled_without_fill(key, now, out);
                    }
                    return Ok(());
                }
                if exec.off_scale {
                    self.stats.off_scale_fills += 1;
                    warn!(venue = %VenueId::BinanceSpot, symbol, trade_id = exec.trade_id, "fill off the instrument's scale; rounded half-to-even");
                }
                debug!(order = ?key, trade_id = exec.trade_id, "fill");
                if let Some(t) = self.orders.get_mut(&key) {
                    t.cum_qty = t.cum_qty.saturating_add(last_qty);
                    t.cum_quote = t
                        .cum_quote
                        .saturating_add(crate::decimal::notional(last_price, last_qty));
                }
                if let Some(z) = exec.venue_cum_qty {
                    self.venue_says(key, z, ev.cum_quote.as_deref(), now);
                }
                // Never lose a fill, even for an order we no longer track.
                self.deliver(key, e, order_filled, now, out);
            }
            crate::venue::Report::Exec(e) => {
                if let ExecEvent::Rejected { text, .. } = &e {
                    info!(venue = %VenueId::BinanceSpot, order = ?key, reason = %text, "order rejected by the venue");
                }
                if !self.orders.contains_key(&key) {
                    self.stats.stale_events += 1;
                    return Ok(());
                }
                if let Some(z) = exec.venue_cum_qty {
                    self.venue_says(key, z, ev.cum_quote.as_deref(), now);
                }
                debug!(order = ?key, "order finished at the venue");
                self.deliver(key, e, true, now, out);
            }
            crate::venue::Report::Venue(_) => {}
        }
        Ok(())
    }

    /// The venue says the order is filled, and the trade that says so
    /// was already reported (through a backfill): end it, once every fill
    /// is in.
    fn filled_without_fill(&mut self, key: OrderKey, now: Now, out: &mut Outbox) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        t.end_filled = true;
        if t.missing_fills() || t.backfill != Backfill::Idle {
            self.want_backfill(key, now);
            return;
        }
        let client_id = t.req.client_id;
        self.finish(key);
        out.events
            .push(VenueOutput::Exec(ExecEvent::Completed { client_id }));
    }

    /// The trades `myTrades` returned for `key`: report the ones not seen
    /// (oldest first), then, once our sum reaches the venue's, whatever
    /// final event was held.
    fn on_my_trades(
        &mut self,
        client_id: ClientId,
        rows: &[OrderResult<'_>],
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        let key = client_id.key;
        let Some(t) = self.orders.get(&key) else {
            return Ok(());
        };
        let (inst, order_id) = (t.inst, t.order_id);
        let mut fresh: Vec<(i64, ExecEvent)> = Vec::new();
        for r in rows {
            if r.order_id != order_id {
                continue;
            }
            let Some(trade_id) = r.id else { continue };
            if t.trades.contains(&trade_id) || fresh.iter().any(|(id, _)| *id == trade_id) {
                continue;
            }
            let ins = &self.instruments[inst];
            let field = |v: &Option<std::borrow::Cow<'_, str>>, name: &str| {
                v.as_deref()
                    .map(str::to_owned)
                    .ok_or_else(|| Self::malformed(format!("myTrades row without `{name}`")))
            };
            let (last_qty, _) = to_scale_nearest(&field(&r.qty, "qty")?, ins.qty_scale, "qty")
                .map_err(Self::malformed)?;
            let (last_price, _) =
                to_scale_nearest(&field(&r.price, "price")?, ins.price_scale, "price")
                    .map_err(Self::malformed)?;
            let fee = WideDecimal::parse(&field(&r.commission, "commission")?)
                .map_err(|e| Self::malformed(format!("myTrades `commission`: {e}")))?;
            fresh.push((
                trade_id,
                ExecEvent::Fill {
                    client_id,
                    trade_id: trade_id.to_string(),
                    last_qty,
                    last_price,
                    fee,
                    fee_asset: r.commission_asset.as_deref().unwrap_or("").to_owned(),
                    time_ms: r.time.unwrap_or(0),
                    is_maker: r.is_maker.unwrap_or(false),
                    order_filled: false,
                },
            ));
        }
        fresh.sort_by_key(|(id, _)| *id);
        let mut fills = Vec::with_capacity(fresh.len());
        for (trade_id, ev) in fresh {
            if self.new_fill(key, inst, trade_id, order_id.unwrap_or(0)) {
                fills.push(ev);
            }
        }
        let t = self.orders.get_mut(&key).expect("tracked above");
        for f in &fills {
            if let ExecEvent::Fill {
                last_qty,
                last_price,
                ..
            } = f
            {
                t.cum_qty = t.cum_qty.saturating_add(*last_qty);
                t.cum_quote = t
                    .cum_quote
                    .saturating_add(crate::decimal::notional(*last_price, *last_qty));
            }
        }
        info!(venue = %VenueId::BinanceSpot, order = ?key, recovered = fills.len(), ours = t.cum_qty, venue = t.venue_qty, "trades fetched from the venue");
        let delay_ns = match t.backfill {
            Backfill::Asking { delay_ns } | Backfill::Wanted { delay_ns, .. } => delay_ns,
            Backfill::Idle => QUERY_DELAY_MIN_NS,
        };
        if t.missing_fills() {
            // The venue's trade list lags its order record: ask again.
            t.backfill = Backfill::Wanted {
                at_ns: now.mono_ns + delay_ns,
                delay_ns: (delay_ns * 2).min(QUERY_DELAY_MAX_NS),
            };
            let at = now.mono_ns + delay_ns;
            for f in fills {
                out.events.push(VenueOutput::Exec(f));
            }
            self.wake_at(at);
            return Ok(());
        }
        t.backfill = Backfill::Idle;
        let held_final_fill = t.held.iter().any(|e| {
            matches!(
                e,
                ExecEvent::Fill {
                    order_filled: true,
                    ..
                }
            )
        });
        if t.end_filled && !held_final_fill {
            if let Some(ExecEvent::Fill { order_filled, .. }) = fills.last_mut() {
                *order_filled = true;
                t.end_filled = false;
            }
        }
        let held = std::mem::take(&mut t.held);
        let end_filled = t.end_filled;
        let mut ended = false;
        for f in fills {
            ended |= matches!(
                f,
                ExecEvent::Fill {
                    order_filled: true,
                    ..
                }
            );
            out.events.push(VenueOutput::Exec(f));
        }
        let canceled = held.iter().any(|e| matches!(e, ExecEvent::Canceled { .. }));
        for e in held {
            ended = true;
            out.events.push(VenueOutput::Exec(e));
        }
        if canceled {
            self.finish(key);
            self.cancel_answered_by_end(key);
        }
        if end_filled && !ended {
            self.finish(key);
            out.events
                .push(VenueOutput::Exec(ExecEvent::Completed { client_id }));
        } else if ended {
            self.finish(key);
        }
        Ok(())
    }

    /// Whether this fill is new: exact per live order, bounded memory for
    /// finished ones.
    fn new_fill(&mut self, key: OrderKey, inst: usize, trade_id: i64, order_id: u64) -> bool {
        let last = &mut self.last_trade[inst];
        *last = Some(last.map_or(trade_id, |l| l.max(trade_id)));
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

    fn on_event(
        &mut self,
        conn: ConnId,
        ev: &Event<'_>,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        match &*ev.kind {
            "executionReport" => self.on_exec_report(ev, now, out)?,
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
                // Fills would go unseen: no new orders until the stream is
                // back and the gap reconciled.
                self.gap_starts();
                self.serving = false;
                self.replacing = false;
                if self.phase >= Phase::Subscribed {
                    self.set_phase(Phase::ClockSynced);
                }
                self.set_state(
                    VenueState::Halted,
                    "user data stream terminated by the venue; resubscribing".into(),
                    out,
                );
                if self.phase == Phase::ClockSynced {
                    self.subscribe(now, out);
                }
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

    /// User data flows on this socket: reconcile what we track, then Up.
    fn subscribed(&mut self, now: Now, out: &mut Outbox) {
        self.set_phase(Phase::Subscribed);
        self.subscribe_delay_ns = SUBSCRIBE_DELAY_MIN_NS;
        self.resubscribe_at = None;
        // Subscribed before listing, so nothing falls between.
        self.start_reconcile(now, out);
    }

    /// Lists the open orders of every symbol we track orders on; the
    /// answers are matched in `on_open_orders`, and whatever was not
    /// listed is queried in `finish_reconcile`.
    fn start_reconcile(&mut self, now: Now, out: &mut Outbox) {
        self.next_reconcile_ns = now.mono_ns.saturating_add(RECONCILE_INTERVAL_NS);
        let symbols: BTreeSet<usize> = self.orders.values().map(|t| t.inst).collect();
        if symbols.is_empty() {
            self.reconcile = None;
            if self.phase == Phase::Subscribed {
                self.reconciled(out);
            }
            return;
        }
        self.stats.reconciles += 1;
        debug!(venue = %VenueId::BinanceSpot, orders = self.orders.len(), symbols = symbols.len(), "reconciling tracked orders");
        self.reconcile = Some(Reconcile {
            listings_left: symbols.len(),
            ..Reconcile::default()
        });
        for inst in symbols {
            let symbol = self.instruments[inst].symbol.clone();
            self.send_signed(
                "openOrders.status",
                Pending::OpenOrders,
                &[Param::str("symbol", &symbol)],
                now,
                out,
            );
        }
    }

    fn on_open_orders(&mut self, rows: &[OrderResult<'_>], now: Now, out: &mut Outbox) {
        for r in rows {
            let cid = r.client_order_id.as_deref().unwrap_or("");
            let Some(id) = self.our_id(cid) else {
                self.report_foreign(cid, r.order_id);
                continue;
            };
            self.revive(id.key);
            let Some(t) = self.orders.get(&id.key) else {
                continue;
            };
            let inst = t.inst;
            if let Some(rec) = &mut self.reconcile {
                rec.listed.insert(id.key);
            }
            if let Some(order_id) = r.order_id {
                let time = r.update_time.unwrap_or(0);
                self.accept(id, order_id, time, out);
            }
            if let Some(q) = r.executed_qty.as_deref() {
                if let Ok((q, _)) =
                    to_scale_nearest(q, self.instruments[inst].qty_scale, "executedQty")
                {
                    self.venue_says(id.key, q, r.cum_quote_qty.as_deref(), now);
                }
            }
        }
        self.listing_done(false, now, out);
    }

    /// One open-orders listing is in (or failed): once all are, query
    /// every tracked order none of them showed.
    fn listing_done(&mut self, failed: bool, now: Now, out: &mut Outbox) {
        let Some(rec) = &mut self.reconcile else {
            return;
        };
        rec.listings_left = rec.listings_left.saturating_sub(1);
        rec.failed |= failed;
        if rec.listings_left > 0 {
            return;
        }
        let rec = self.reconcile.take().expect("checked above");
        if rec.failed {
            // A failed listing cannot say what is open: list again, and
            // stay not ready meanwhile.
            self.next_reconcile_ns = now.mono_ns + RELIST_DELAY_NS;
            return;
        }
        let gone: Vec<OrderKey> = self
            .orders
            .iter()
            .filter(|(k, t)| {
                !rec.listed.contains(k)
                    && !matches!(t.place, Place::Sent | Place::Retry { .. })
                    && !matches!(t.place, Place::Unknown { asking: true, .. })
            })
            .map(|(k, _)| *k)
            .collect();
        let mut asked = vec![false; self.instruments.len()];
        let mut by_inst: BTreeMap<usize, Vec<OrderKey>> = BTreeMap::new();
        for key in gone {
            if let Some(t) = self.orders.get(&key) {
                asked[t.inst] = true;
                by_inst.entry(t.inst).or_default().push(key);
            }
        }
        for (inst, keys) in by_inst {
            self.ask_how_they_ended(inst, keys, now, out);
        }
        // A gap nothing was found missing in is closed.
        for (inst, gap) in self.gap_from.iter_mut().enumerate() {
            let backfilling = self
                .orders
                .values()
                .any(|t| t.inst == inst && t.backfill != Backfill::Idle);
            if !asked[inst] && !backfilling {
                *gap = None;
            }
        }
        if self.phase == Phase::Subscribed {
            self.reconciled(out);
        }
    }

    /// Orders not listed open on `inst`: one `allOrders` page (weight 20
    /// for up to 1,000 orders) from the oldest's venue order id when that
    /// is cheaper than an `order.status` each (weight 4); those without a
    /// venue order id, or that the history does not show, are asked one by
    /// one.
    fn ask_how_they_ended(&mut self, inst: usize, keys: Vec<OrderKey>, now: Now, out: &mut Outbox) {
        let (with_id, without): (Vec<OrderKey>, Vec<OrderKey>) = keys
            .into_iter()
            .partition(|k| self.orders.get(k).is_some_and(|t| t.order_id.is_some()));
        for k in without {
            self.query_order(k, now, out);
        }
        if with_id.len() * 4 <= 20 || !self.history_wanted[inst].is_empty() {
            for k in with_id {
                self.query_order(k, now, out);
            }
            return;
        }
        self.history_wanted[inst].extend(with_id);
        self.send_history(inst, now, out);
    }

    fn send_history(&mut self, inst: usize, now: Now, out: &mut Outbox) {
        let Some(from) = self.history_wanted[inst]
            .iter()
            .filter_map(|k| self.orders.get(k).and_then(|t| t.order_id))
            .min()
        else {
            return;
        };
        let symbol = self.instruments[inst].symbol.clone();
        let from = from.to_string();
        self.send_signed(
            "allOrders",
            Pending::SymbolOrders { inst },
            &[
                Param::str("symbol", &symbol),
                Param::num("orderId", &from),
                Param::num("limit", "1000"),
            ],
            now,
            out,
        );
    }

    /// A page of a symbol's order history: each waiting order it shows is
    /// settled as by its own status; a full page asks for the next; the
    /// rest are asked one by one.
    fn on_history(&mut self, inst: usize, rows: &[OrderResult<'_>], now: Now, out: &mut Outbox) {
        for r in rows {
            let Some(id) = r.client_order_id.as_deref().and_then(|c| self.our_id(c)) else {
                continue;
            };
            if self.history_wanted[inst].remove(&id.key) {
                self.on_order_status(id, r, now, out);
            }
        }
        let full = rows.len() >= 1000;
        if full && !self.history_wanted[inst].is_empty() {
            let last = rows.iter().filter_map(|r| r.order_id).max().unwrap_or(0);
            let beyond = self.history_wanted[inst].iter().any(|k| {
                self.orders
                    .get(k)
                    .and_then(|t| t.order_id)
                    .is_some_and(|o| o > last)
            });
            if beyond {
                self.send_history(inst, now, out);
                return;
            }
        }
        self.history_failed(inst, now, out);
    }

    /// Whatever the history did not settle is asked one by one.
    fn history_failed(&mut self, inst: usize, now: Now, out: &mut Outbox) {
        for k in std::mem::take(&mut self.history_wanted[inst]) {
            self.query_order(k, now, out);
        }
    }

    fn reconciled(&mut self, out: &mut Outbox) {
        self.set_phase(Phase::Reconciled);
        self.set_phase(Phase::Ready);
        let was_serving = self.serving;
        self.serving = true;
        let text = if was_serving {
            "new connection ready: user data stream subscribed, open orders reconciled"
        } else {
            "user data stream subscribed, tracked orders reconciled; ready for orders"
        };
        // Cancels that lost their answer go out again now.
        let cancels: Vec<u64> = self
            .orders
            .values()
            .filter(|t| t.cancel.is_some() && !t.cancel_in_flight)
            .map(|t| t.cancel_at_ns)
            .collect();
        if let Some(t) = cancels.into_iter().min() {
            self.wake_at(t);
        }
        if self.backoff.is_some() {
            return;
        }
        if was_serving {
            self.note_state(VenueState::Up, text.into(), out);
        } else {
            self.set_state(VenueState::Up, text.into(), out);
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
            return self.on_error(pending, inflight.socket, status, err, now, out);
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
                self.clock_resynced(now);
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
                self.revive(client_id.key);
                self.accept(client_id, order_id, r.transact_time.unwrap_or(0), out);
            }
            // The cancel's outcome arrives as an executionReport (or the
            // next reconciliation).
            (Pending::Cancel { orig, .. }, ResultBody::Object(_)) => {
                if let Some(t) = self.orders.get_mut(&orig.key) {
                    t.cancel = None;
                    t.cancel_in_flight = false;
                    t.cancel_answered = true;
                }
            }
            (Pending::OrderStatus { client_id }, ResultBody::Object(r)) => {
                self.on_order_status(client_id, &r, now, out)
            }
            (Pending::OpenOrders, ResultBody::Array(rows)) => self.on_open_orders(&rows, now, out),
            (Pending::MyTrades { client_id }, ResultBody::Array(rows)) => {
                self.on_my_trades(client_id, &rows, now, out)?
            }
            (Pending::SymbolTrades { inst }, ResultBody::Array(rows)) => {
                self.on_symbol_trades(inst, &rows, now, out)?
            }
            (Pending::SymbolOrders { inst }, ResultBody::Array(rows)) => {
                self.on_history(inst, &rows, now, out)
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

    /// The venue clock has a fresh sample: orders refused for their
    /// timestamp go out again now.
    fn clock_resynced(&mut self, now: Now) {
        let mut any = false;
        for t in self.orders.values_mut() {
            if t.place == (Place::Retry { at_ns: u64::MAX }) {
                t.place = Place::Retry { at_ns: now.mono_ns };
                any = true;
            }
        }
        if any {
            self.wake_at(now.mono_ns);
        }
    }

    fn observe_time(&mut self, sent: Now, server_ms: u64, now: Now) {
        if self.clock.observe(sent.wall_ms, server_ms, now.wall_ms) {
            debug!(venue = %VenueId::BinanceSpot, offset_ms = ?self.clock.offset_ms(), rtt_ms = ?self.clock.best_rtt_ms(), "venue clock sample");
        }
    }

    fn on_error(
        &mut self,
        pending: Pending,
        socket: u32,
        status: u16,
        err: &ApiError<'_>,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        let text = err.msg.to_string();
        let verdict = retry::verdict(status, err.code);
        let after_breaker = self.backoff.map_or(now.mono_ns + 1_000_000_000, |(u, _)| u);
        match pending {
            Pending::Place { client_id } => {
                let key = client_id.key;
                let resent = self.orders.get(&key).is_some_and(|t| t.sends > 1);
                let refusal = ExecEvent::Rejected {
                    client_id,
                    reason: reason_for(status, err.code, &text, false),
                    code: err.code,
                    text: text.clone(),
                };
                match verdict {
                    Verdict::Unknown => self.mark_unknown(
                        key,
                        &format!("venue answered {status} {} {text}", err.code),
                        now,
                        out,
                    ),
                    // A re-sent order the venue already holds: an earlier
                    // send got through after all.
                    Verdict::Final if resent && err.code == -2010 && text.contains("Duplicate") => {
                        self.mark_unknown(key, "a re-sent order was a duplicate", now, out)
                    }
                    Verdict::AfterClockSync => self.retry_place(key, u64::MAX, refusal, now, out),
                    Verdict::AfterBreaker => {
                        self.retry_place(key, after_breaker, refusal, now, out)
                    }
                    Verdict::Later => {
                        self.retry_place(key, now.mono_ns + retry::BUSY_WAIT_NS, refusal, now, out)
                    }
                    Verdict::Final => {
                        info!(venue = %VenueId::BinanceSpot, order = ?key, status, code = err.code, msg = %text, "order rejected by the venue");
                        self.finish(key);
                        out.events.push(VenueOutput::Exec(refusal));
                    }
                }
            }
            Pending::Cancel { orig, cancel_id } => {
                let refusal = ExecEvent::CancelRejected {
                    client_id: orig,
                    reason: reason_for(status, err.code, &text, true),
                    code: err.code,
                    text: text.clone(),
                };
                let wait = match verdict {
                    Verdict::Final => None,
                    Verdict::AfterBreaker => Some(after_breaker),
                    Verdict::AfterClockSync | Verdict::Unknown => {
                        Some(now.mono_ns + QUERY_DELAY_MIN_NS)
                    }
                    Verdict::Later => Some(now.mono_ns + retry::BUSY_WAIT_NS),
                };
                let retried = match (self.orders.get_mut(&orig.key), wait) {
                    (Some(t), Some(at)) if t.cancel_sends < retry::MAX_CANCEL_SENDS => {
                        t.cancel = Some(cancel_id);
                        t.cancel_in_flight = false;
                        t.cancel_at_ns = at;
                        self.stats.retries += 1;
                        self.wake_at(at);
                        true
                    }
                    (Some(t), _) => {
                        t.cancel = None;
                        t.cancel_in_flight = false;
                        // Answered once: a re-send's refusal after the
                        // first answer says nothing new.
                        std::mem::replace(&mut t.cancel_answered, true)
                    }
                    (None, _) => !self.cancel_still_unanswered(orig.key),
                };
                if !retried {
                    info!(venue = %VenueId::BinanceSpot, order = ?orig.key, status, code = err.code, msg = %text, "cancel rejected by the venue");
                    out.events.push(VenueOutput::Exec(refusal));
                }
            }
            Pending::OrderStatus { client_id } => {
                let key = client_id.key;
                let place = self.orders.get(&key).map(|t| (t.place, t.sends));
                match place.map(|(p, _)| p) {
                    Some(Place::Unknown { final_ns, .. }) if err.code == -2013 => {
                        if now.mono_ns >= final_ns {
                            let secs = self.unknown_bound_ns() / 1_000_000_000;
                            // An adopted order was never sent by this run:
                            // the bound ran from the restart.
                            let when = if place.is_some_and(|(_, sends)| sends == 0) {
                                "after the sidecar restarted: the run that took it never got it to the venue"
                            } else {
                                "after it was sent: it never reached the matching engine"
                            };
                            self.give_up(
                                key,
                                format!(
                                    "the venue does not have the order ({} {text}) {secs} s {when}",
                                    err.code
                                ),
                                out,
                            );
                        } else {
                            self.mark_unknown(key, "the venue does not have it yet", now, out);
                        }
                    }
                    Some(Place::Unknown { .. }) => {
                        warn!(venue = %VenueId::BinanceSpot, order = ?key, code = err.code, msg = %text, "order status query failed; asking again");
                        self.mark_unknown(key, "status query failed", now, out);
                    }
                    Some(_) if err.code == -2013 => {
                        self.stats.fill_mismatches += 1;
                        warn!(venue = %VenueId::BinanceSpot, order = ?key, "the venue says it does not have an order it acknowledged; left as it is");
                    }
                    Some(_) => {
                        warn!(venue = %VenueId::BinanceSpot, order = ?key, code = err.code, msg = %text, "order status query failed; reconciling again soon");
                        self.next_reconcile_ns =
                            self.next_reconcile_ns.min(now.mono_ns + RELIST_DELAY_NS);
                    }
                    None => {}
                }
            }
            // The venue's word that this socket's stream is on: a
            // subscription whose answer was lost went through.
            Pending::Subscribe if err.code == USER_DATA_ALREADY_SUBSCRIBED => {
                info!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "user data stream already subscribed on this socket");
                if socket == self.ws_socket && self.phase == Phase::ClockSynced {
                    self.subscribed(now, out);
                }
            }
            Pending::Subscribe => {
                warn!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "user data subscription refused");
                if socket == self.ws_socket && self.phase == Phase::ClockSynced {
                    self.serving = false;
                    self.replacing = false;
                    let delay = self.subscribe_delay_ns;
                    self.subscribe_delay_ns = (delay * 2).min(SUBSCRIBE_DELAY_MAX_NS);
                    self.resubscribe_at = Some(now.mono_ns + delay);
                    if self.backoff.is_none() {
                        self.set_state(
                            VenueState::Halted,
                            format!(
                                "user data subscription failed: {} {text}; retrying in {} ms",
                                err.code,
                                delay / 1_000_000
                            ),
                            out,
                        );
                    }
                }
            }
            Pending::OpenOrders => {
                warn!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "open orders listing failed");
                self.listing_done(true, now, out);
            }
            // Without the venue's time, start with the local clock rather
            // than never.
            Pending::Time { .. } => {
                warn!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "server time query failed");
                if socket == self.ws_socket {
                    self.clock_synced(now, out);
                }
                self.clock_resynced(now);
            }
            Pending::MyTrades { client_id } => {
                warn!(venue = %VenueId::BinanceSpot, order = ?client_id.key, code = err.code, msg = %text, "trade query failed; asking again");
                self.backfill_later(client_id.key, now);
            }
            Pending::SymbolTrades { inst } => {
                warn!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "trade query failed; asking per order");
                self.symbol_backfill_failed(inst, now);
            }
            Pending::SymbolOrders { inst } => {
                warn!(venue = %VenueId::BinanceSpot, code = err.code, msg = %text, "order history query failed; asking per order");
                self.history_failed(inst, now, out);
            }
        }
        Ok(())
    }

    /// A symbol-wide trade query failed: its orders ask one by one.
    fn symbol_backfill_failed(&mut self, inst: usize, now: Now) {
        self.symbol_asking[inst] = false;
        let keys: Vec<OrderKey> = self
            .orders
            .iter()
            .filter(|(_, t)| t.inst == inst && matches!(t.backfill, Backfill::Asking { .. }))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.backfill_later(k, now);
        }
    }

    /// Whether an answer about a cancel of `key`, an order no longer
    /// tracked, still has to reach the strategy: not when the order ended
    /// canceled (that answered it), and only once otherwise.
    fn cancel_still_unanswered(&mut self, key: OrderKey) -> bool {
        match self.closed_cancels.get_mut(&key) {
            None => true,
            Some(true) => false,
            Some(c) => {
                *c = true;
                true
            }
        }
    }

    fn backfill_later(&mut self, key: OrderKey, now: Now) {
        let Some(t) = self.orders.get_mut(&key) else {
            return;
        };
        let delay_ns = match t.backfill {
            Backfill::Asking { delay_ns } | Backfill::Wanted { delay_ns, .. } => delay_ns,
            Backfill::Idle => return,
        };
        let at = now.mono_ns + delay_ns;
        t.backfill = Backfill::Wanted {
            at_ns: at,
            delay_ns: (delay_ns * 2).min(QUERY_DELAY_MAX_NS),
        };
        self.wake_at(at);
    }

    fn on_order_status(
        &mut self,
        client_id: ClientId,
        r: &OrderResult<'_>,
        now: Now,
        out: &mut Outbox,
    ) {
        let key = client_id.key;
        self.revive(key);
        let Some(t) = self.orders.get(&key) else {
            return;
        };
        let inst = t.inst;
        let time_ms = r.update_time.or(r.transact_time).unwrap_or(0);
        let status = r.status.as_deref().unwrap_or("");
        if status == "REJECTED" {
            self.deliver(
                key,
                ExecEvent::Rejected {
                    client_id,
                    reason: Reason::VenueRejected,
                    code: 0,
                    text: "REJECTED".into(),
                },
                true,
                now,
                out,
            );
            return;
        }
        if let Some(order_id) = r.order_id {
            self.accept(client_id, order_id, time_ms, out);
        }
        if let Some(q) = r.executed_qty.as_deref() {
            match to_scale_nearest(q, self.instruments[inst].qty_scale, "executedQty") {
                Ok((q, _)) => self.venue_says(key, q, r.cum_quote_qty.as_deref(), now),
                Err(e) => {
                    warn!(venue = %VenueId::BinanceSpot, order = ?key, error = %e, "unreadable executedQty")
                }
            }
        }
        let end = match status {
            "CANCELED" => ExecEvent::Canceled { client_id, time_ms },
            "EXPIRED" | "EXPIRED_IN_MATCH" => ExecEvent::Expired { client_id, time_ms },
            "FILLED" => {
                self.filled_without_fill(key, now, out);
                return;
            }
            _ => return,
        };
        self.deliver(key, end, true, now, out);
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
        for (id, p) in gone {
            self.pending.remove(&id);
            self.answer_lost(p, why, now, out);
        }
    }

    /// A request whose answer will never come (its socket is gone, or its
    /// deadline passed): each kind is settled the way the venue's truth
    /// can still be found.
    fn answer_lost(&mut self, p: InFlight, why: &str, now: Now, out: &mut Outbox) {
        match p.what {
            Pending::Place { client_id } => self.mark_unknown(
                client_id.key,
                &format!("{why} before the venue answered"),
                now,
                out,
            ),
            Pending::OrderStatus { client_id } => {
                let key = client_id.key;
                if matches!(
                    self.orders.get(&key).map(|t| t.place),
                    Some(Place::Unknown { .. })
                ) {
                    self.mark_unknown(key, why, now, out);
                } else {
                    self.next_reconcile_ns =
                        self.next_reconcile_ns.min(now.mono_ns + RELIST_DELAY_NS);
                }
            }
            Pending::Cancel { orig, cancel_id } => match self.orders.get_mut(&orig.key) {
                // Cancels are delivered until answered: again once ready.
                Some(t) => {
                    t.cancel = Some(cancel_id);
                    t.cancel_in_flight = false;
                    t.cancel_at_ns = now.mono_ns;
                    self.wake_at(now.mono_ns);
                }
                None => {
                    if self.cancel_still_unanswered(orig.key) {
                        out.events
                            .push(VenueOutput::Exec(ExecEvent::CancelRejected {
                                client_id: orig,
                                reason: Reason::VenueDown,
                                code: 0,
                                text: format!("{why} before the cancel was answered"),
                            }))
                    }
                }
            },
            Pending::MyTrades { client_id } => self.backfill_later(client_id.key, now),
            Pending::SymbolTrades { inst } => self.symbol_backfill_failed(inst, now),
            // Asked again by the next reconciliation (the connection is
            // gone, or the answer lost).
            Pending::SymbolOrders { inst } => {
                self.history_wanted[inst].clear();
                self.next_reconcile_ns = self.next_reconcile_ns.min(now.mono_ns + RELIST_DELAY_NS);
            }
            Pending::OpenOrders => {
                if p.socket == self.ws_socket {
                    self.listing_done(true, now, out);
                }
            }
            Pending::Subscribe => {
                if p.socket == self.ws_socket && self.phase == Phase::ClockSynced {
                    self.resubscribe_at = Some(now.mono_ns);
                }
            }
            Pending::Time { .. } => {
                if p.socket == self.ws_socket && self.phase == Phase::Connecting {
                    self.send_time(now, false, out);
                }
            }
        }
    }

    /// Requests past their deadline. If nothing at all arrived since the
    /// oldest was sent, the connection is dead: ask the driver to close
    /// it (`on_close` then settles everything). Otherwise only those
    /// answers were lost.
    fn expire_requests(&mut self, now: Now, out: &mut Outbox) {
        if self.backoff.is_some() {
            return;
        }
        let due: Vec<(u64, InFlight)> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.on_wire && p.sent_ns.saturating_add(REQUEST_DEADLINE_NS) <= now.mono_ns
            })
            .map(|(id, p)| (*id, *p))
            .collect();
        if due.is_empty() {
            return;
        }
        let silent = due.iter().any(|(_, p)| {
            p.conn == WS && p.socket == self.ws_socket && self.last_frame_ns <= p.sent_ns
        });
        if silent && !self.closing && self.phase != Phase::Closed {
            self.closing = true;
            warn!(venue = %VenueId::BinanceSpot, "no answer from the venue within the deadline; the connection is dead");
            out.events.push(VenueOutput::CloseConnection {
                conn: WS,
                why: format!("no answer within {} s", REQUEST_DEADLINE_NS / 1_000_000_000),
            });
            return;
        }
        for (id, p) in due {
            self.pending.remove(&id);
            self.stats.lost_answers += 1;
            if p.conn == REST {
                continue;
            }
            self.answer_lost(p, "the answer did not come in time", now, out);
        }
    }

    /// Runs whatever tracked orders asked the timer for: status queries,
    /// retries, backfills, cancel re-sends.
    fn run_order_timers(&mut self, now: Now, out: &mut Outbox) {
        match self.orders_due_ns {
            Some(t) if t <= now.mono_ns => {}
            _ => return,
        }
        self.orders_due_ns = None;
        let can_query = self.can_query();
        let serving = self.serving && self.backoff.is_none();
        let mut next: Option<u64> = None;
        let mut note = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        let mut queries = Vec::new();
        let mut resends = Vec::new();
        let mut backfills = Vec::new();
        let mut cancels = Vec::new();
        for (k, t) in &self.orders {
            match t.place {
                Place::Unknown {
                    next_ns,
                    asking: false,
                    ..
                } => {
                    if next_ns <= now.mono_ns && can_query {
                        queries.push(*k);
                    } else {
                        note(next_ns.max(now.mono_ns + QUERY_DELAY_MIN_NS));
                    }
                }
                Place::Retry { at_ns } if at_ns != u64::MAX => {
                    if at_ns <= now.mono_ns && serving {
                        resends.push(*k);
                    } else {
                        note(at_ns.max(now.mono_ns + QUERY_DELAY_MIN_NS));
                    }
                }
                _ => {}
            }
            if let Backfill::Wanted { at_ns, .. } = t.backfill {
                if at_ns <= now.mono_ns && can_query {
                    backfills.push(*k);
                } else {
                    note(at_ns.max(now.mono_ns + QUERY_DELAY_MIN_NS));
                }
            }
            if t.cancel.is_some() && !t.cancel_in_flight {
                if t.cancel_at_ns <= now.mono_ns && serving {
                    cancels.push(*k);
                } else {
                    note(t.cancel_at_ns.max(now.mono_ns + QUERY_DELAY_MIN_NS));
                }
            }
        }
        if let Some(n) = next {
            self.wake_at(n);
        }
        for k in queries {
            self.query_order(k, now, out);
        }
        for k in resends {
            let t = &self.orders[&k];
            if now.mono_ns.saturating_sub(t.req.queued_ns) > retry::STALE_NS {
                let refusal = t.refusal.clone();
                info!(venue = %VenueId::BinanceSpot, order = ?k, "order refused by the venue; too old to send again");
                self.finish(k);
                if let Some(r) = refusal {
                    out.events.push(VenueOutput::Exec(r));
                }
                continue;
            }
            self.send_place(k, now, out);
        }
        self.send_backfills(backfills, now, out);
        for k in cancels {
            self.send_cancel(k, now, out);
        }
    }

    fn not_ready(&self) -> VenueError {
        VenueError::NotReady {
            venue: VenueId::BinanceSpot,
            state: self.state,
            text: self.state_text.clone(),
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
        self.opened_ns = now.mono_ns;
        self.last_frame_ns = now.mono_ns;
        self.closing = false;
        self.set_phase(Phase::Connecting);
        if !self.replacing {
            self.serving = false;
        }
        // Signed requests wait for the venue's time, so a skewed local
        // clock cannot get the subscription refused (-1021).
        self.send_time(now, false, out);
    }

    /// On the WebSocket: in-flight places become unknown and are asked
    /// about; in-flight cancels are sent again once the new connection is
    /// ready; queries are asked again.
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
        self.closing = false;
        self.reconcile = None;
        self.resubscribe_at = None;
        self.gap_starts();
        self.settle_ws(u32::MAX, "connection closed", now, out);
        self.symbol_asking.iter_mut().for_each(|a| *a = false);
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

    fn on_sent(&mut self, _conn: ConnId, request: u64, now: Now) {
        if let Some(p) = self.pending.get_mut(&request) {
            p.sent_ns = now.mono_ns;
            p.on_wire = true;
        }
    }

    fn cost(&self, cmd: &Command) -> Cost {
        match cmd {
            Command::Place(_) => method_cost("order.place"),
            Command::Cancel { .. } => method_cost("order.cancel"),
        }
    }

    fn adopt(&mut self, a: Adopted, now: Now) {
        let key = a.req.client_id.key;
        let Some(&inst) = self.by_id.get(&a.req.instrument) else {
            warn!(venue = %VenueId::BinanceSpot, order = ?key, instrument = a.req.instrument, "adopted order on an instrument no longer configured; not tracked");
            return;
        };
        let mut t = Tracked::new(a.req, inst);
        // Trade ids are Binance's integers; one that is not cannot be a
        // fill of this venue's, so it cannot be replayed either.
        t.trades = a.trades.iter().filter_map(|id| id.parse().ok()).collect();
        t.cum_qty = a.cum_qty;
        t.cum_quote = a.cum_notional;
        t.venue_qty = a.cum_qty;
        t.order_id = a.venue_order_id.and_then(|id| id.parse().ok());
        // Whether an earlier run sent it at all is unknown unless the
        // venue said so: "does not exist" is final only past the bound,
        // counted from now (the send, if any, was before).
        t.place = if a.known {
            Place::Known
        } else {
            Place::Unknown {
                final_ns: now.mono_ns + self.unknown_bound_ns(),
                next_ns: now.mono_ns,
                delay_ns: QUERY_DELAY_MIN_NS,
                asking: false,
            }
        };
        if let Some(cancel) = a.cancel {
            t.cancel = Some(cancel);
            t.cancel_at_ns = now.mono_ns;
        }
        self.stats.adopted += 1;
        info!(venue = %VenueId::BinanceSpot, order = ?key, known = a.known, "adopted an order of an earlier run; reconciling it");
        self.orders.insert(key, t);
    }

    fn submit(&mut self, cmd: &Command, now: Now, out: &mut Outbox) -> Result<(), VenueError> {
        match *cmd {
            Command::Place(o) => {
                if !self.serving {
                    return Err(self.not_ready());
                }
                let &inst = self
                    .by_id
                    .get(&o.instrument)
                    .ok_or(VenueError::UnknownInstrument(o.instrument))?;
                self.orders.insert(o.client_id.key, Tracked::new(o, inst));
                self.send_place(o.client_id.key, now, out);
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
                match self.orders.get_mut(&orig.key) {
                    // Delivered until the venue answers it: now if ready,
                    // else as soon as the connection is.
                    Some(t) => {
                        t.cancel = Some(cancel_id);
                        t.cancel_sends = 0;
                        t.cancel_in_flight = false;
                        t.cancel_answered = false;
                        t.cancel_at_ns = now.mono_ns;
                        if self.serving && self.backoff.is_none() {
                            self.send_cancel(orig.key, now, out);
                        } else {
                            self.wake_at(now.mono_ns);
                        }
                    }
                    None => {
                        if !self.serving {
                            return Err(self.not_ready());
                        }
                        let symbol = self.instruments[inst].symbol.clone();
                        self.send_cancel_request(&symbol, orig, cancel_id, now, out);
                    }
                }
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
        if conn == WS {
            self.last_frame_ns = now.mono_ns;
        }
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
        if res.is_err() {
            // Whatever that frame said is lost: reconcile now.
            self.next_reconcile_ns = now.mono_ns;
        }
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
                self.clock_resynced(now);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_timer(&mut self, now: Now, out: &mut Outbox) {
        self.end_backoff(now, out);
        self.expire_requests(now, out);
        if self.phase >= Phase::ClockSynced && now.mono_ns >= self.next_clock_sync_ns {
            self.send_time(now, true, out);
        }
        if let Some(at) = self.resubscribe_at {
            if at <= now.mono_ns && self.phase == Phase::ClockSynced && self.backoff.is_none() {
                self.resubscribe_at = None;
                info!(venue = %VenueId::BinanceSpot, "subscribing to user data again");
                self.subscribe(now, out);
            }
        }
        if self.reconcile.is_none()
            && self.phase >= Phase::Subscribed
            && now.mono_ns >= self.next_reconcile_ns
            && self.backoff.is_none()
        {
            self.start_reconcile(now, out);
        }
        self.run_order_timers(now, out);
        if self.phase == Phase::Ready
            && !self.replacing
            && now.mono_ns >= self.opened_ns.saturating_add(ROLLOVER_NS)
        {
            info!(venue = %VenueId::BinanceSpot, "connection near the venue's 24-hour limit; replacing it");
            self.replacing = self.serving;
            self.opened_ns = now.mono_ns;
            out.events.push(VenueOutput::Reconnect(WS));
        }
    }

    fn next_timer(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut at = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        if self.phase >= Phase::ClockSynced {
            at(self.next_clock_sync_ns);
        }
        if let Some((b, _)) = self.backoff {
            at(b);
        } else {
            if !self.closing {
                // Held by the limiter: no deadline until on the wire.
                if let Some(t) = self
                    .pending
                    .values()
                    .filter(|p| p.on_wire)
                    .map(|p| p.sent_ns)
                    .min()
                {
                    at(t.saturating_add(REQUEST_DEADLINE_NS));
                }
            }
            if let (Some(r), Phase::ClockSynced) = (self.resubscribe_at, self.phase) {
                at(r);
            }
            if self.reconcile.is_none() && self.phase >= Phase::Subscribed {
                at(self.next_reconcile_ns);
            }
        }
        if let Some(o) = self.orders_due_ns {
            at(o);
        }
        if self.phase == Phase::Ready && !self.replacing {
            at(self.opened_ns.saturating_add(ROLLOVER_NS));
        }
        next
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
            ("adopted", s.adopted),
            ("duplicate_fills", s.duplicate_fills),
            ("off_scale_fills", s.off_scale_fills),
            ("stale_events", s.stale_events),
            ("unmatched_responses", s.unmatched_responses),
            ("unknown_outcomes", s.unknown_outcomes),
            ("retries", s.retries),
            ("lost_answers", s.lost_answers),
            ("backfills", s.backfills),
            ("fill_mismatches", s.fill_mismatches),
            ("late_truths", s.late_truths),
            ("reconciles", s.reconciles),
            ("tracked_orders", self.orders.len() as u64),
        ];
        if let Some(w) = s.used_weight_1m {
            v.push(("used_weight_1m", u64::from(w)));
        }
        v
    }
}
