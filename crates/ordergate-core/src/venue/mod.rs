//! The venue interface: what every exchange adapter implements.
//!
//! An adapter is a sans-IO state machine (the quinn-proto style): it turns
//! [`Command`]s into frames, and received frames into [`VenueEvent`]s, and
//! never touches a socket or reads a clock itself: `now` is an argument.
//! The session driver (`crate::session`) owns the sockets and the timers.

use crate::decimal::WideDecimal;
use crate::ids::{ClientId, InstrumentId, VenueId};
use crate::model::{OrdType, Reason, Side, TimeInForce, VenueState};

pub mod binance;

/// Time as the venue logic sees it: monotonic nanoseconds for timeouts and
/// rate windows, and the venue-synced wall clock in milliseconds for
/// request timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono_ns: u64,
    pub wall_ms: u64,
}

/// One server-time observation, for the driver's venue clock
/// ([`crate::clock::VenueClock`]): the server
/// time was read somewhere between sending the `time` request and
/// receiving its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSample {
    pub sent: Now,
    pub received: Now,
    pub server_ms: u64,
}

impl TimeSample {
    /// Server time minus the local wall clock at the round trip's midpoint.
    pub fn offset_ms(&self) -> i64 {
        let mid = (self.sent.wall_ms as i128 + self.received.wall_ms as i128) / 2;
        (self.server_ms as i128 - mid) as i64
    }

    pub fn round_trip_ns(&self) -> u64 {
        self.received.mono_ns.saturating_sub(self.sent.mono_ns)
    }
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
}

/// A new order, validated by the gateway, ready for a venue. Prices and
/// quantities are mantissas at the instrument's scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRequest {
    pub client_id: ClientId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    pub flags: u8,
    pub price: i64,
    pub qty: i64,
}

/// What travels from the gateway to a venue session on the rings. `Copy`
/// and allocation-free so the hot path moves plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub fn lane(&self) -> Lane {
        match self {
            Command::Cancel { .. } => Lane::Critical,
            Command::Place(o) if o.flags & crate::model::flags::REDUCE_ONLY != 0 => Lane::Critical,
            Command::Place(_) => Lane::Normal,
        }
    }
}

/// What a venue session reports to the lifecycle tracker. Every order
/// event names the order by the client id we gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueEvent {
    /// The venue has the order (Binance `NEW`).
    Accepted {
        client_id: ClientId,
        venue_order_id: String,
        time_ms: u64,
    },
    /// The venue refused the order.
    Rejected {
        client_id: ClientId,
        reason: Reason,
        /// The venue's own error code and message, passed on verbatim.
        code: i64,
        text: String,
    },
    /// One execution. `last_qty`/`last_price` are at the instrument's
    /// scales; the fee is whatever the venue said, exactly.
    Fill {
        client_id: ClientId,
        trade_id: String,
        last_qty: i64,
        last_price: i64,
        fee: WideDecimal,
        fee_asset: String,
        time_ms: u64,
        is_maker: bool,
    },
    Canceled {
        client_id: ClientId,
        time_ms: u64,
    },
    CancelRejected {
        client_id: ClientId,
        reason: Reason,
        code: i64,
        text: String,
    },
    /// Ended by the venue: IOC remainder, MARKET cut short by liquidity.
    Expired {
        client_id: ClientId,
        time_ms: u64,
    },
    /// The venue's state as the session sees it.
    Status {
        venue: VenueId,
        state: VenueState,
        text: String,
    },
}

/// A frame an adapter wants sent, on which of its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub conn: usize,
    pub text: String,
}

/// What one connection of a venue is for. A venue may use one connection
/// for everything (Binance WebSocket API carries orders and user data) or
/// several (Bybit: trade, private stream; REST for reconciliation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSpec {
    pub url: String,
    pub role: ConnRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRole {
    /// Order entry and user data on the same connection.
    OrderEntryAndUserData,
    OrderEntry,
    UserData,
}

/// What a request costs against the venue's limits, declared by the
/// adapter so the rate limiter can gate it without knowing the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    pub weight: u32,
    pub orders: u32,
}

/// Errors an adapter raises on its own input (a command it cannot express,
/// a frame it cannot read). Venue-side errors become [`VenueEvent`]s.
#[derive(Debug, thiserror::Error)]
pub enum VenueError {
    #[error("unknown instrument {0}")]
    UnknownInstrument(InstrumentId),
    #[error("malformed frame from {venue}: {detail}")]
    MalformedFrame { venue: VenueId, detail: String },
}

/// One venue account's protocol logic, driven by a session driver.
pub trait VenueProtocol: Send {
    fn venue(&self) -> VenueId;
    /// The connections to open, in order.
    fn connections(&self) -> Vec<ConnSpec>;
    /// A connection is open: queue whatever it needs first (subscribe to
    /// user data, query the server time, reconcile open orders).
    fn on_open(&mut self, conn: usize, now: Now, out: &mut Vec<Outgoing>);
    /// A connection closed or failed; in-flight requests on it are now of
    /// unknown outcome.
    fn on_close(&mut self, conn: usize, now: Now, events: &mut Vec<VenueEvent>);
    /// The cost of `cmd`, for the rate limiter.
    fn cost(&self, cmd: &Command) -> Cost;
    /// Encode `cmd` into frames.
    fn submit(
        &mut self,
        cmd: &Command,
        now: Now,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), VenueError>;
    /// Feed one received text frame (mutable: in-place JSON parsers).
    fn on_frame(
        &mut self,
        conn: usize,
        frame: &mut [u8],
        now: Now,
        events: &mut Vec<VenueEvent>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), VenueError>;
    /// Called when `next_timer` is due: keep-alives, clock sync, request
    /// timeouts, and dead-man heartbeats where a venue has them (Binance
    /// USD-M `countdownCancelAll`, Bybit disconnection cancel-all), which an
    /// adapter renews from here so a dead sidecar's orders get cancelled.
    fn on_timer(&mut self, now: Now, events: &mut Vec<VenueEvent>, out: &mut Vec<Outgoing>);
    /// The next time `on_timer` must run, in monotonic nanoseconds.
    fn next_timer(&self) -> Option<u64>;
    /// The venue announced it will close this connection (Binance
    /// `serverShutdown`): the driver opens a fresh one.
    fn wants_reconnect(&self) -> bool {
        false
    }
    /// Server-time observations since the last call, oldest first.
    fn take_time_samples(&mut self) -> Vec<TimeSample> {
        Vec::new()
    }
}
