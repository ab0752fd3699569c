//! The strategy wire protocol: message types and their binary codec.
//!
//! Byte-level layout is specified in `docs/PROTOCOL.md`; this module is the
//! reference implementation. Frames are little-endian and length-prefixed;
//! decoding reads fields with `from_le_bytes` on slices, never by casting
//! buffers, and checks the length prefix against [`MAX_FRAME`] before
//! reading a body.

use crate::decimal::WideDecimal;
use crate::ids::{InstrumentId, StrategyOrderId};

/// Protocol versions this build speaks.
pub const VERSION_MIN: u16 = 1;
pub const VERSION_MAX: u16 = 1;
/// Largest frame body (after the 4-byte length) either side may send.
pub const MAX_FRAME: usize = 4096;
/// Longest string field (strategy name, symbol, text, venue ids).
pub const MAX_STR: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Side {
    Buy = 1,
    Sell = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OrdType {
    Limit = 1,
    Market = 2,
    /// Post-only limit: rejected instead of taking liquidity.
    LimitMaker = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Strategy → sidecar messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Hello {
        min_version: u16,
        max_version: u16,
        /// The strategy's name as configured.
        name: String,
    },
    NewOrder(NewOrder),
    Cancel {
        order_id: StrategyOrderId,
    },
    /// Cancel every open order of this strategy (on one instrument, or on
    /// all when `instrument_id` is 0).
    CancelAll {
        instrument_id: InstrumentId,
    },
    /// Replay every sequenced message from `seq` on.
    ResendFrom {
        seq: u64,
    },
    Heartbeat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Sidecar → strategy messages. Order-related ones are sequenced (see
/// [`Outbound::is_sequenced`]) and can be replayed with ResendFrom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    HelloAck {
        version: u16,
        strategy_id: u32,
        /// The sequence number the next sequenced message will carry.
        next_seq: u64,
        instrument_count: u32,
    },
    InstrumentInfo(InstrumentInfo),
    Accepted {
        order_id: StrategyOrderId,
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
    OrderStatus(OrderStatus),
    VenueStatus {
        venue: u8,
        state: VenueState,
        text: String,
    },
    Heartbeat,
    /// A protocol error; `Reason` says what was wrong with the frame.
    Error {
        reason: Reason,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentInfo {
    pub instrument_id: InstrumentId,
    pub venue: u8,
    pub category: u8,
    pub price_scale: u8,
    pub qty_scale: u8,
    pub tick: i64,
    pub lot: i64,
    pub min_qty: i64,
    /// At `price_scale + qty_scale`.
    pub min_notional: i128,
    pub symbol: String,
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

impl Outbound {
    /// Order-related messages carry a sequence number and are kept for
    /// ResendFrom; session messages (HelloAck, InstrumentInfo, VenueStatus,
    /// Heartbeat, Error) carry 0 and are not replayed.
    pub fn is_sequenced(&self) -> bool {
        matches!(
            self,
            Outbound::Accepted { .. }
                | Outbound::Rejected { .. }
                | Outbound::Fill(_)
                | Outbound::Canceled { .. }
                | Outbound::CancelRejected { .. }
                | Outbound::Expired { .. }
                | Outbound::OrderStatus(_)
        )
    }
}
