//! The venue interface: what every exchange adapter implements.
//!
//! An adapter is a sans-IO state machine (the quinn-proto style): it turns
//! [`Command`]s into frames, and received frames into [`Report`]s (order events and venue status), and
//! never touches a socket or reads a clock itself: `now` is an argument.
//! The session driver (`crate::session`) owns the sockets and the timers.

use crate::ids::{ClientId, InstrumentId, VenueId};
pub use crate::model::{ExecEvent, OrderRequest, VenueStatus};

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

/// What a venue session hands the desk, on its ring: order events and
/// the venue's own state are separate streams that share the ring, so
/// their relative order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Exec(ExecEvent),
    Venue(VenueStatus),
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
/// a frame it cannot read). Venue-side errors become [`Report`]s.
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
    fn on_close(&mut self, conn: usize, now: Now, events: &mut Vec<Report>);
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
        events: &mut Vec<Report>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), VenueError>;
    /// Called when `next_timer` is due: keep-alives, clock sync, request
    /// timeouts, and dead-man heartbeats where a venue has them (Binance
    /// USD-M `countdownCancelAll`, Bybit disconnection cancel-all), which an
    /// adapter renews from here so a dead sidecar's orders get cancelled.
    fn on_timer(&mut self, now: Now, events: &mut Vec<Report>, out: &mut Vec<Outgoing>);
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
