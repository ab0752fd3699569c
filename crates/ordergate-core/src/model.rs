//! The domain model: what an order, a fill and a venue's state are,
//! independent of any wire format.
//!
//! Front ends (the strategy protocol, a FIX acceptor) and venue adapters
//! convert to and from these types; the desk and the lifecycle speak only
//! them. The `repr` values are the strategy protocol's wire values, kept
//! here so every codec agrees on them.

use crate::decimal::WideDecimal;
use crate::ids::{ClientId, InstrumentId, StrategyOrderId, VenueId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Side {
    Buy = 1,
    Sell = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum OrdType {
    Limit = 1,
    Market = 2,
    /// Post-only limit: rejected instead of taking liquidity.
    LimitMaker = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum TimeInForce {
    Gtc = 1,
    Ioc = 2,
    Fok = 3,
}

/// NewOrder flag bits.
pub mod flags {
    pub const REDUCE_ONLY: u8 = 1 << 0;
    pub const POST_ONLY: u8 = 1 << 1;
    /// MARKET order whose `qty` is in quote units (at the price scale
    /// plus the quantity scale, i.e. a notional).
    pub const QUOTE_QTY: u8 = 1 << 2;
    pub const KNOWN: u8 = REDUCE_ONLY | POST_ONLY | QUOTE_QTY;
}

/// Every state an order can be in, as reported to strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OrderState {
    PendingNew = 1,
    New = 2,
    PartiallyFilled = 3,
    Filled = 4,
    PendingCancel = 5,
    Canceled = 6,
    Rejected = 7,
    Expired = 8,
    /// The sidecar does not know the order's fate (never seen, or the
    /// venue's answer was lost and reconciliation has not settled it).
    Unknown = 9,
}

impl OrderState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderState::Filled | OrderState::Canceled | OrderState::Rejected | OrderState::Expired
        )
    }
}

/// Connection state of a venue, pushed to strategies when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum VenueState {
    Down = 1,
    Connecting = 2,
    Up = 3,
    /// Connected but refusing new orders (rate-limit breaker, ban).
    Halted = 4,
}

/// The one registry of reason codes (Rejected, CancelRejected, Error).
/// Values are stable; never reuse a retired one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u16)]
pub enum Reason {
    None = 0,
    // 1..99: protocol errors (Error frames)
    MalformedFrame = 1,
    FrameTooLarge = 2,
    UnknownMessageType = 3,
    UnknownEnumValue = 4,
    UnsupportedVersion = 5,
    HelloRequired = 6,
    UnknownStrategy = 7,
    StrategyAlreadyConnected = 8,
    SlowConsumer = 9,
    NotImplemented = 10,
    ResendUnavailable = 11,
    // 100..199: gateway checks on orders
    UnknownInstrument = 100,
    InvalidPrice = 101,
    InvalidQty = 102,
    PriceNotOnTick = 103,
    QtyNotOnLot = 104,
    BelowMinQty = 105,
    BelowMinNotional = 106,
    InvalidFlags = 107,
    DuplicateOrderId = 108,
    UnknownOrder = 109,
    OrderNotOpen = 110,
    QueueFull = 111,
    /// Held by the sidecar's rate limiter longer than the configured bound;
    /// never sent.
    Throttled = 112,
    // 200..299: venue outcomes
    VenueDown = 200,
    VenueRejected = 201,
    VenueRateLimited = 202,
    VenueTimestamp = 203,
    VenueAuth = 204,
    VenueUnknownOrder = 205,
    VenueInsufficientBalance = 206,
    VenueFilter = 207,
    WouldTakeLiquidity = 208,
}

/// A strategy's new order, as a front end hands it to the desk. Prices
/// and quantities are mantissas at the instrument's scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewOrder {
    pub order_id: StrategyOrderId,
    pub instrument_id: InstrumentId,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    pub flags: u8,
    /// Mantissa at the instrument's price scale (ignored for MARKET).
    pub price: i64,
    /// Mantissa at the instrument's quantity scale.
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    pub order_id: StrategyOrderId,
    pub last_qty: i64,
    pub last_price: i64,
    pub cum_qty: i64,
    /// Sum of price × qty over all fills, at `price_scale + qty_scale`.
    pub cum_notional: i128,
    /// `cum_notional / cum_qty` at the price scale, ties to even.
    pub avg_price: i64,
    pub leaves_qty: i64,
    pub fee: WideDecimal,
    pub fee_asset: String,
    pub trade_id: String,
    pub venue_time_ms: u64,
    pub is_maker: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStatus {
    pub order_id: StrategyOrderId,
    pub state: OrderState,
    pub cum_qty: i64,
    pub cum_notional: i128,
    pub avg_price: i64,
    pub leaves_qty: i64,
}

/// What the lifecycle tells a strategy about one of its orders. Every
/// front end turns these into its own messages (strategy protocol frames,
/// FIX execution reports); `order_id` is the strategy's own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderUpdate {
    Accepted {
        order_id: StrategyOrderId,
        /// Empty when a fill overtook the venue's ack.
        venue_order_id: String,
    },
    Rejected {
        order_id: StrategyOrderId,
        reason: Reason,
        text: String,
    },
    Fill(Fill),
    Canceled {
        order_id: StrategyOrderId,
        cum_qty: i64,
    },
    CancelRejected {
        order_id: StrategyOrderId,
        reason: Reason,
        text: String,
    },
    Expired {
        order_id: StrategyOrderId,
        cum_qty: i64,
    },
    /// The order's current state, answering a repeated order id.
    Status(OrderStatus),
}

/// A new order, validated by the desk, ready for a venue. Prices and
/// quantities are mantissas at the instrument's scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderRequest {
    /// When the desk queued it (monotonic ns on the sidecar's one clock):
    /// the session refuses a new order held longer than its stale bound.
    pub queued_ns: u64,
    pub client_id: ClientId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    pub flags: u8,
    pub price: i64,
    pub qty: i64,
}

/// A venue-neutral execution event: what adapters make of the venue's
/// order responses and user-data events. Every event names the order by
/// the client id we gave it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExecEvent {
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
        /// The venue reports the order completely filled with this trade
        /// (Binance `X=FILLED`): its final state, whatever our sum says (a
        /// quote-quantity order rounded down to the lot never reaches its
        /// quote amount exactly).
        order_filled: bool,
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
    /// The answer to a new order was lost or said "status unknown" (a
    /// deadline passed, the connection dropped, 5xx, -1006, -1007): the
    /// venue may or may not have the order. The adapter keeps asking; the
    /// order is `Unknown` until the venue's own word arrives.
    OutcomeUnknown {
        client_id: ClientId,
        text: String,
    },
    /// The venue says the order is completely filled and every one of its
    /// fills was already reported (the trade that said so arrived first
    /// through a backfill): it ends `Filled` without another fill.
    Completed {
        client_id: ClientId,
    },
}

/// A venue's state as its session sees it, with the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VenueStatus {
    pub venue: VenueId,
    pub state: VenueState,
    pub text: String,
}

impl Side {
    pub fn from_u8(v: u8) -> Option<Side> {
        match v {
            1 => Some(Side::Buy),
            2 => Some(Side::Sell),
            _ => None,
        }
    }
}

impl OrdType {
    pub fn from_u8(v: u8) -> Option<OrdType> {
        match v {
            1 => Some(OrdType::Limit),
            2 => Some(OrdType::Market),
            3 => Some(OrdType::LimitMaker),
            _ => None,
        }
    }
}

impl TimeInForce {
    pub fn from_u8(v: u8) -> Option<TimeInForce> {
        match v {
            1 => Some(TimeInForce::Gtc),
            2 => Some(TimeInForce::Ioc),
            3 => Some(TimeInForce::Fok),
            _ => None,
        }
    }
}

impl OrderState {
    pub fn from_u8(v: u8) -> Option<OrderState> {
        use OrderState::*;
        [
            PendingNew,
            New,
            PartiallyFilled,
            Filled,
            PendingCancel,
            Canceled,
            Rejected,
            Expired,
            Unknown,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
    }
}

impl VenueState {
    pub fn from_u8(v: u8) -> Option<VenueState> {
        use VenueState::*;
        [Down, Connecting, Up, Halted]
            .into_iter()
            .find(|s| *s as u8 == v)
    }
}

impl Reason {
    /// Every registered reason, in code order.
    pub const ALL: &'static [Reason] = {
        use Reason::*;
        &[
            None,
            MalformedFrame,
            FrameTooLarge,
            UnknownMessageType,
            UnknownEnumValue,
            UnsupportedVersion,
            HelloRequired,
            UnknownStrategy,
            StrategyAlreadyConnected,
            SlowConsumer,
            NotImplemented,
            ResendUnavailable,
            UnknownInstrument,
            InvalidPrice,
            InvalidQty,
            PriceNotOnTick,
            QtyNotOnLot,
            BelowMinQty,
            BelowMinNotional,
            InvalidFlags,
            DuplicateOrderId,
            UnknownOrder,
            OrderNotOpen,
            QueueFull,
            Throttled,
            VenueDown,
            VenueRejected,
            VenueRateLimited,
            VenueTimestamp,
            VenueAuth,
            VenueUnknownOrder,
            VenueInsufficientBalance,
            VenueFilter,
            WouldTakeLiquidity,
        ]
    };

    pub fn from_u16(v: u16) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| *r as u16 == v)
    }
}
