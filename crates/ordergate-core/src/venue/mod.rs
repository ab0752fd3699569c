//! The venue interface: what every exchange adapter implements.
//!
//! An adapter is a sans-IO state machine (the quinn-proto style): it turns
//! [`Command`]s into [`Transmit`]s (WebSocket text or HTTP requests, each
//! with its [`Cost`]), and received frames and responses into
//! [`VenueOutput`]s (order events, venue status, requests to reconnect),
//! written into a caller-owned [`Outbox`]. It never touches a socket or
//! reads a clock itself: raw local `now` is an argument, and the adapter
//! keeps its own venue clock. The session driver (`ordergate::session`)
//! owns the sockets and the timers; [`registry`] builds adapters.

use crate::ids::{ClientId, InstrumentId, VenueId};
pub use crate::model::{ExecEvent, OrderRequest, VenueStatus};

pub mod binance;
pub mod registry;

/// Time as the driver reads it, raw: monotonic nanoseconds for timeouts
/// and rate windows, and the *local* wall clock in Unix milliseconds. An
/// adapter keeps its own [`crate::clock::VenueClock`] and turns the local
/// wall clock into venue time itself when it signs; the driver never
/// adjusts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono_ns: u64,
    pub wall_ms: u64,
}

/// Priority lanes, drained in this order: cancels and position-closing
/// first, then new orders, then queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Lane {
    Critical = 0,
    Normal = 1,
    Bulk = 2,
}

impl Lane {
    pub const ALL: [Lane; 3] = [Lane::Critical, Lane::Normal, Lane::Bulk];

    /// The lane of a new order with these flags: reduce-only orders close
    /// positions, so they go first.
    pub fn of_order(flags: u8) -> Lane {
        if flags & crate::model::flags::REDUCE_ONLY != 0 {
            Lane::Critical
        } else {
            Lane::Normal
        }
    }
}

/// What travels from the gateway to a venue session on the rings. `Copy`
/// and allocation-free so the hot path moves plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    Place(OrderRequest),
    /// Cancel `orig`; `cancel_id` names this cancel request at the venue.
    Cancel {
        cancel_id: ClientId,
        orig: ClientId,
        instrument: InstrumentId,
    },
}

impl Command {
    /// Where the command goes when nothing else decides: cancels and
    /// position-closing orders first. (The desk puts the cancel of an
    /// order still `PendingNew` behind that order instead, see
    /// [`Lane::of_order`].)
    pub fn lane(&self) -> Lane {
        match self {
            Command::Cancel { .. } => Lane::Critical,
            Command::Place(o) => Lane::of_order(o.flags),
        }
    }
}

/// An order an earlier run of this installation placed, restored from
/// the journal at start: the adapter tracks it as if it had sent it and
/// reconciles it with the venue (its state, the fills it missed) before
/// it reports ready. Nothing is sent for it unless the venue's answers
/// call for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// The order as placed, under its own client id (its run's epoch).
    pub req: OrderRequest,
    /// The venue's order id, if an answer carried it.
    pub venue_order_id: Option<String>,
    /// Whether the venue is known to have it (acked or filled).
    pub known: bool,
    /// The venue trade ids of the fills already reported, and their sums.
    pub trades: Vec<String>,
    pub cum_qty: i64,
    pub cum_notional: i128,
    /// A cancel requested and not yet answered, named in this run.
    pub cancel: Option<ClientId>,
}

/// What a venue session hands the desk, on its ring: order events and
/// the venue's own state are separate streams that share the ring, so
/// their relative order is kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Report {
    Exec(ExecEvent),
    Venue(VenueStatus),
}

impl Report {
    /// The answer to a command that never reached the venue (venue not
    /// ready, or the adapter could not express it): the order is
    /// `Rejected`, the cancel `CancelRejected`, with `reason` and `text`.
    pub fn refusal(cmd: &Command, reason: crate::model::Reason, text: String) -> Report {
        match *cmd {
            Command::Place(o) => Report::Exec(ExecEvent::Rejected {
                client_id: o.client_id,
                reason,
                code: 0,
                text,
            }),
            Command::Cancel { orig, .. } => Report::Exec(ExecEvent::CancelRejected {
                client_id: orig,
                reason,
                code: 0,
                text,
            }),
        }
    }
}

/// One of a venue's connections: the index of its [`ConnSpec`] in
/// [`VenueProtocol::connections`]. A connection keeps its id across
/// reconnects; while one is being replaced (make before break) frames
/// from the old socket still arrive under the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u16);

impl ConnId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn{}", self.0)
    }
}

/// How a connection is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket (`ws://` to loopback, `wss://` elsewhere) carrying text frames.
    WebSocket,
    /// HTTP/1.1 with keep-alive (`http://` to loopback, `https://`
    /// elsewhere); requests on one connection are answered in order.
    Http,
}

/// What one connection of a venue is for. A venue may use one connection
/// for everything (Binance WebSocket API carries orders and user data) or
/// several (Bybit: trade, private stream; REST for reconciliation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSpec {
    pub url: String,
    pub transport: Transport,
    pub role: ConnRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRole {
    /// Order entry and user data on the same connection.
    OrderEntryAndUserData,
    OrderEntry,
    UserData,
    /// Queries (server time, reconciliation) beside the order path.
    Rest,
}

/// What a request costs against the venue's limits, declared by the
/// adapter so the rate limiter can gate it without knowing the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    /// Request weight (Binance `REQUEST_WEIGHT`, per IP).
    pub weight: u32,
    /// New orders (Binance `ORDERS`, unfilled order count, per account).
    pub orders: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// An HTTP request, transport-neutral: the driver adds `Host` and
/// `Content-Length`; everything the venue signs is already here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The adapter's own id, echoed in the [`HttpResponse`].
    pub id: u64,
    pub method: HttpMethod,
    /// Path and query string, as signed (`/api/v3/time`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// An HTTP response, with its status and headers (rate-limit usage such
/// as `X-MBX-USED-WEIGHT-1M` travels in headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The request's [`HttpRequest::id`].
    pub id: u64,
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A WebSocket text frame.
    Text(String),
    Http(HttpRequest),
}

/// One request an adapter wants sent, on which connection, and what it
/// costs. Every request carries its cost, the adapter's own queries (server
/// time, subscriptions, reconciliation) as much as orders, so one limiter
/// can gate all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub conn: ConnId,
    pub payload: Payload,
    pub cost: Cost,
    /// The adapter's own name for the request (0: none), handed back in
    /// [`VenueProtocol::on_sent`] when it reaches the wire: the limiter may
    /// hold a request, and its answer's deadline runs from the wire.
    pub request: u64,
}

impl Transmit {
    /// The WebSocket text, if this is one (tests, logs).
    pub fn text(&self) -> Option<&str> {
        match &self.payload {
            Payload::Text(t) => Some(t),
            Payload::Http(_) => None,
        }
    }
}

/// What an adapter tells its driver, besides transmits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueOutput {
    /// An order event for the desk.
    Exec(ExecEvent),
    /// The venue's state changed (or, during a make-before-break switch,
    /// a note while it stays Up), with the reason. The adapter is the one
    /// owner of venue state: the driver forwards these, and says nothing of
    /// its own.
    Status(VenueStatus),
    /// Open a fresh socket for this connection while the current one keeps
    /// being read (make before break): the venue announced it will close it.
    Reconnect(ConnId),
    /// What the venue says it counted in one of its windows, and the limit
    /// it applies there when it says (WebSocket `rateLimits` do, REST usage
    /// headers do not): the limiter takes the venue's limit and may only
    /// raise its own count.
    Usage {
        counts: crate::limiter::Counts,
        window_ms: u64,
        limit: Option<u32>,
        count: u32,
    },
    /// The venue refused for rate (HTTP 429) or banned us (418): nothing
    /// may be sent before `until_ns` (monotonic), and with a ban no
    /// connection either.
    Backoff { until_ns: u64, ban: bool },
    /// The adapter judged this connection dead (a request or a pong past
    /// its deadline): the driver closes the socket now and then reports
    /// `on_close(conn, why)` as for any other end, and reconnects as usual.
    CloseConnection { conn: ConnId, why: String },
}

/// The caller-owned, reused buffers an adapter writes into. The driver
/// drains both after every call, transmits first.
#[derive(Debug, Default)]
pub struct Outbox {
    pub transmits: Vec<Transmit>,
    pub events: Vec<VenueOutput>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty() && self.events.is_empty()
    }

    pub fn clear(&mut self) {
        self.transmits.clear();
        self.events.clear();
    }
}

/// Errors an adapter raises on its own input (a command it cannot express
/// or may not send now, a frame it cannot read). Venue-side errors become
/// events.
#[derive(Debug, thiserror::Error)]
pub enum VenueError {
    #[error("unknown instrument {0}")]
    UnknownInstrument(InstrumentId),
    #[error("malformed frame from {venue}: {detail}")]
    MalformedFrame { venue: VenueId, detail: String },
    /// The venue is not ready for orders; `state` and `text` are the last
    /// status the adapter reported.
    #[error("{venue} is {state:?}: {text}")]
    NotReady {
        venue: VenueId,
        state: crate::model::VenueState,
        text: String,
    },
}

/// One venue account's protocol logic, driven by a session driver
/// (`ordergate::session`), sans-IO: bytes, events and raw `now` in;
/// transmits and events out, into the caller's [`Outbox`].
///
/// Driver contract, per connection id: `on_connecting` before every
/// attempt; then `on_open` once it is open, or `on_close` if the attempt
/// failed; `on_close` again when an open connection ends. When the adapter
/// asks for [`VenueOutput::Reconnect`], the fresh socket's open is an
/// `on_open` of the same id (the adapter knows it asked), and the end of
/// the socket it replaced is `on_drained`, not `on_close`.
pub trait VenueProtocol: Send {
    fn venue(&self) -> VenueId;
    /// The connections to keep open; index = [`ConnId`].
    fn connections(&self) -> Vec<ConnSpec>;
    /// The driver starts connecting `conn`.
    fn on_connecting(&mut self, conn: ConnId, now: Now, out: &mut Outbox);
    /// `conn` is open: queue whatever it needs first (server time,
    /// subscriptions, reconciliation).
    fn on_open(&mut self, conn: ConnId, now: Now, out: &mut Outbox);
    /// `conn` closed or could not be opened (`why`); requests in flight on
    /// it are of unknown outcome now.
    fn on_close(&mut self, conn: ConnId, why: &str, now: Now, out: &mut Outbox);
    /// The socket that `conn`'s replacement superseded has ended; whatever
    /// it still had in flight will not be answered.
    fn on_drained(&mut self, conn: ConnId, now: Now, out: &mut Outbox);
    /// Transmit `request` of `conn` went on the wire now (after the rate
    /// limiter let it through): deadlines on its answer start here.
    fn on_sent(&mut self, conn: ConnId, request: u64, now: Now) {
        let _ = (conn, request, now);
    }
    /// The cost of `cmd`, for the rate limiter, before it is encoded.
    fn cost(&self, cmd: &Command) -> Cost;
    /// Track an order an earlier run placed (see [`Adopted`]); called
    /// before the session starts.
    fn adopt(&mut self, order: Adopted, now: Now);
    /// Encode `cmd` into transmits. Refused with [`VenueError::NotReady`]
    /// while the venue cannot take it.
    fn submit(&mut self, cmd: &Command, now: Now, out: &mut Outbox) -> Result<(), VenueError>;
    /// One received WebSocket text frame (mutable: in-place JSON parsers).
    fn on_frame(
        &mut self,
        conn: ConnId,
        frame: &mut [u8],
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError>;
    /// One HTTP response on `conn`.
    fn on_http(
        &mut self,
        conn: ConnId,
        response: &mut HttpResponse,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError>;
    /// Called when `next_timer` is due: keep-alives, clock sync, request
    /// timeouts, and dead-man heartbeats where a venue has them (Binance
    /// USD-M `countdownCancelAll`, Bybit disconnection cancel-all), which an
    /// adapter renews from here so a dead sidecar's orders get cancelled.
    fn on_timer(&mut self, now: Now, out: &mut Outbox);
    /// The next time `on_timer` must run, in monotonic nanoseconds.
    fn next_timer(&self) -> Option<u64>;
    /// The venue's documented rate limits, until it publishes its own.
    fn default_rules(&self) -> Vec<crate::limiter::Rule> {
        Vec::new()
    }
    /// Requests sent and not answered yet: the session admits more only
    /// while few are, so nothing queues below the limiter.
    fn in_flight(&self) -> usize {
        0
    }
    /// What the adapter counted (foreign events, duplicate fills, …), by
    /// name, for the session's periodic counters line.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
