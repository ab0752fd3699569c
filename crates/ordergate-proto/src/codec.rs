//! The strategy wire protocol: message types and their binary codec.
//!
//! Byte-level layout is specified in `docs/PROTOCOL.md`; this module is the
//! reference implementation. Frames are little-endian and length-prefixed;
//! decoding reads fields with `from_le_bytes` on slices, never by casting
//! buffers, and checks the length prefix against [`MAX_FRAME`] before
//! reading a body.

use ordergate_core::decimal::WideDecimal;
use ordergate_core::ids::{InstrumentId, StrategyOrderId};
pub use ordergate_core::model::{
    flags, Fill, NewOrder, OrdType, OrderState, OrderStatus, OrderUpdate, Reason, Side,
    TimeInForce, VenueState,
};

/// Protocol versions this build speaks. Version 2 differs from 1 only in
/// HelloAck, which gains the sidecar's identity ([`IDENTITY_VERSION`]).
pub const VERSION_MIN: u16 = 1;
pub const VERSION_MAX: u16 = 2;
/// The first version whose HelloAck carries `installation` and `epoch`; a
/// HelloAck of an older version leaves them out and decodes them as 0.
pub const IDENTITY_VERSION: u16 = 2;
/// Largest frame body (after the 4-byte length) either side may send.
pub const MAX_FRAME: usize = 4096;
/// Longest string field (strategy name, symbol, text, venue ids).
pub const MAX_STR: usize = 255;

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
        /// The sidecar installation's random id (below 62^6), the same
        /// across its restarts: another value is another sidecar. On the
        /// wire from [`IDENTITY_VERSION`] on; 0 before.
        installation: u64,
        /// The sidecar's run number, bumped at every start: a new value
        /// means the sidecar restarted. From [`IDENTITY_VERSION`] on; 0
        /// before.
        epoch: u32,
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

impl From<OrderUpdate> for Outbound {
    fn from(u: OrderUpdate) -> Outbound {
        match u {
            OrderUpdate::Accepted {
                order_id,
                venue_order_id,
            } => Outbound::Accepted {
                order_id,
                venue_order_id,
            },
            OrderUpdate::Rejected {
                order_id,
                reason,
                text,
            } => Outbound::Rejected {
                order_id,
                reason,
                text,
            },
            OrderUpdate::Fill(f) => Outbound::Fill(f),
            OrderUpdate::Canceled { order_id, cum_qty } => Outbound::Canceled { order_id, cum_qty },
            OrderUpdate::CancelRejected {
                order_id,
                reason,
                text,
            } => Outbound::CancelRejected {
                order_id,
                reason,
                text,
            },
            OrderUpdate::Expired { order_id, cum_qty } => Outbound::Expired { order_id, cum_qty },
            OrderUpdate::Status(s) => Outbound::OrderStatus(s),
        }
    }
}

// ---------------------------------------------------------------------------
// Codec
// ---------------------------------------------------------------------------

/// Message type ids. Bit 7 set means sidecar → strategy, so a byte stream
/// can be split by direction without context (the Python round-trip tool
/// relies on this).
pub mod msg_type {
    pub const HELLO: u16 = 0x0001;
    pub const NEW_ORDER: u16 = 0x0002;
    pub const CANCEL: u16 = 0x0003;
    pub const CANCEL_ALL: u16 = 0x0004;
    pub const RESEND_FROM: u16 = 0x0005;
    pub const HEARTBEAT: u16 = 0x0006;
    /// Reserved: decoding yields [`super::ProtocolError::Reserved`].
    pub const AMEND: u16 = 0x0010;
    pub const CANCEL_REPLACE: u16 = 0x0011;
    pub const MASS_CANCEL: u16 = 0x0012;
    pub const ACCOUNT_QUERY: u16 = 0x0013;

    pub const HELLO_ACK: u16 = 0x0081;
    pub const INSTRUMENT_INFO: u16 = 0x0082;
    pub const ACCEPTED: u16 = 0x0083;
    pub const REJECTED: u16 = 0x0084;
    pub const FILL: u16 = 0x0085;
    pub const CANCELED: u16 = 0x0086;
    pub const CANCEL_REJECTED: u16 = 0x0087;
    pub const EXPIRED: u16 = 0x0088;
    pub const ORDER_STATUS: u16 = 0x0089;
    pub const VENUE_STATUS: u16 = 0x008A;
    pub const OUT_HEARTBEAT: u16 = 0x008B;
    pub const ERROR: u16 = 0x008C;

    /// Name of a type id, for error messages.
    pub fn name(t: u16) -> &'static str {
        match t {
            HELLO => "Hello",
            NEW_ORDER => "NewOrder",
            CANCEL => "Cancel",
            CANCEL_ALL => "CancelAll",
            RESEND_FROM => "ResendFrom",
            HEARTBEAT | OUT_HEARTBEAT => "Heartbeat",
            AMEND => "Amend",
            CANCEL_REPLACE => "CancelReplace",
            MASS_CANCEL => "MassCancel",
            ACCOUNT_QUERY => "AccountQuery",
            HELLO_ACK => "HelloAck",
            INSTRUMENT_INFO => "InstrumentInfo",
            ACCEPTED => "Accepted",
            REJECTED => "Rejected",
            FILL => "Fill",
            CANCELED => "Canceled",
            CANCEL_REJECTED => "CancelRejected",
            EXPIRED => "Expired",
            ORDER_STATUS => "OrderStatus",
            VENUE_STATUS => "VenueStatus",
            ERROR => "Error",
            _ => "unknown",
        }
    }
}

/// Size of the length prefix in front of every frame body.
pub const LEN_PREFIX: usize = 4;

/// Why a frame could not be decoded.
///
/// Fatal errors (the byte stream can no longer be trusted) close the
/// connection after an Error frame; the others are answered with an Error
/// frame and the connection stays open, because the frame boundary was
/// intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame length {len} exceeds the maximum of {MAX_FRAME} bytes")]
    FrameTooLarge { len: usize },
    #[error("{msg} frame truncated while reading {field}")]
    Truncated {
        msg: &'static str,
        field: &'static str,
    },
    #[error("{msg} frame has {extra} trailing bytes after its last field")]
    TrailingBytes { msg: &'static str, extra: usize },
    #[error("{msg} field {field} is not valid UTF-8")]
    BadUtf8 {
        msg: &'static str,
        field: &'static str,
    },
    #[error("{msg} carries sequence number {seq}: sequenced messages need seq >= 1, others 0")]
    BadSequence { msg: &'static str, seq: u64 },
    #[error("unknown message type 0x{0:04x}")]
    UnknownMessageType(u16),
    #[error("{msg} field {field} has unknown value {value}")]
    UnknownEnumValue {
        msg: &'static str,
        field: &'static str,
        value: u64,
    },
    #[error("message type {name} (0x{msg_type:04x}) is reserved and not implemented")]
    Reserved { msg_type: u16, name: &'static str },
}

impl ProtocolError {
    /// The code to put in the Error frame sent back.
    pub fn reason(&self) -> Reason {
        match self {
            ProtocolError::FrameTooLarge { .. } => Reason::FrameTooLarge,
            ProtocolError::Truncated { .. }
            | ProtocolError::TrailingBytes { .. }
            | ProtocolError::BadUtf8 { .. }
            | ProtocolError::BadSequence { .. } => Reason::MalformedFrame,
            ProtocolError::UnknownMessageType(_) => Reason::UnknownMessageType,
            ProtocolError::UnknownEnumValue { .. } => Reason::UnknownEnumValue,
            ProtocolError::Reserved { .. } => Reason::NotImplemented,
        }
    }

    /// True when the connection must be closed after reporting.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ProtocolError::FrameTooLarge { .. }
                | ProtocolError::Truncated { .. }
                | ProtocolError::TrailingBytes { .. }
                | ProtocolError::BadUtf8 { .. }
                | ProtocolError::BadSequence { .. }
        )
    }
}

/// Appends `s` as `u8 length + bytes`, cut to [`MAX_STR`] bytes at a
/// character boundary: encoding never fails, and only free text can be
/// that long (names and symbols are validated where they are configured).
fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(MAX_STR);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_wide(out: &mut Vec<u8>, d: WideDecimal) {
    out.extend_from_slice(&d.mantissa.to_le_bytes());
    out.push(d.scale);
}

/// Reserves the length prefix and returns where it is, to patch later.
fn begin(out: &mut Vec<u8>, t: u16) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    out.extend_from_slice(&t.to_le_bytes());
    at
}

fn finish(out: &mut [u8], at: usize) {
    let len = (out.len() - at - LEN_PREFIX) as u32;
    debug_assert!(
        len as usize <= MAX_FRAME,
        "encoder produced an oversized frame"
    );
    out[at..at + LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
}

/// Appends one length-prefixed strategy → sidecar frame to `out`.
pub fn encode_inbound(msg: &Inbound, out: &mut Vec<u8>) {
    use msg_type::*;
    let at = match msg {
        Inbound::Hello {
            min_version,
            max_version,
            name,
        } => {
            let at = begin(out, HELLO);
            out.extend_from_slice(&min_version.to_le_bytes());
            out.extend_from_slice(&max_version.to_le_bytes());
            put_str(out, name);
            at
        }
        Inbound::NewOrder(o) => {
            let at = begin(out, NEW_ORDER);
            out.extend_from_slice(&o.order_id.to_le_bytes());
            out.extend_from_slice(&o.instrument_id.to_le_bytes());
            out.extend_from_slice(&[o.side as u8, o.ord_type as u8, o.tif as u8, o.flags]);
            out.extend_from_slice(&o.price.to_le_bytes());
            out.extend_from_slice(&o.qty.to_le_bytes());
            at
        }
        Inbound::Cancel { order_id } => {
            let at = begin(out, CANCEL);
            out.extend_from_slice(&order_id.to_le_bytes());
            at
        }
        Inbound::CancelAll { instrument_id } => {
            let at = begin(out, CANCEL_ALL);
            out.extend_from_slice(&instrument_id.to_le_bytes());
            at
        }
        Inbound::ResendFrom { seq } => {
            let at = begin(out, RESEND_FROM);
            out.extend_from_slice(&seq.to_le_bytes());
            at
        }
        Inbound::Heartbeat => begin(out, HEARTBEAT),
    };
    finish(out, at);
}

/// Appends one length-prefixed sidecar → strategy frame to `out` (e.g. a
/// connection's outbound buffer).
///
/// `seq` must be 0 exactly when `!msg.is_sequenced()`; decoders reject
/// anything else.
pub fn encode_outbound(seq: u64, msg: &Outbound, out: &mut Vec<u8>) {
    use msg_type::*;
    debug_assert_eq!(seq != 0, msg.is_sequenced(), "seq {seq} for {msg:?}");
    let t = match msg {
        Outbound::HelloAck { .. } => HELLO_ACK,
        Outbound::InstrumentInfo(_) => INSTRUMENT_INFO,
        Outbound::Accepted { .. } => ACCEPTED,
        Outbound::Rejected { .. } => REJECTED,
        Outbound::Fill(_) => FILL,
        Outbound::Canceled { .. } => CANCELED,
        Outbound::CancelRejected { .. } => CANCEL_REJECTED,
        Outbound::Expired { .. } => EXPIRED,
        Outbound::OrderStatus(_) => ORDER_STATUS,
        Outbound::VenueStatus { .. } => VENUE_STATUS,
        Outbound::Heartbeat => OUT_HEARTBEAT,
        Outbound::Error { .. } => ERROR,
    };
    let at = begin(out, t);
    out.extend_from_slice(&seq.to_le_bytes());
    match msg {
        Outbound::HelloAck {
            version,
            strategy_id,
            next_seq,
            instrument_count,
            installation,
            epoch,
        } => {
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(&strategy_id.to_le_bytes());
            out.extend_from_slice(&next_seq.to_le_bytes());
            out.extend_from_slice(&instrument_count.to_le_bytes());
            // The layout follows the version the frame announces, so a
            // version-1 strategy gets the frame it can decode.
            if *version >= IDENTITY_VERSION {
                out.extend_from_slice(&installation.to_le_bytes());
                out.extend_from_slice(&epoch.to_le_bytes());
            }
        }
        Outbound::InstrumentInfo(i) => {
            out.extend_from_slice(&i.instrument_id.to_le_bytes());
            out.extend_from_slice(&[i.venue, i.category, i.price_scale, i.qty_scale]);
            out.extend_from_slice(&i.tick.to_le_bytes());
            out.extend_from_slice(&i.lot.to_le_bytes());
            out.extend_from_slice(&i.min_qty.to_le_bytes());
            out.extend_from_slice(&i.min_notional.to_le_bytes());
            put_str(out, &i.symbol);
        }
        Outbound::Accepted {
            order_id,
            venue_order_id,
        } => {
            out.extend_from_slice(&order_id.to_le_bytes());
            put_str(out, venue_order_id);
        }
        Outbound::Rejected {
            order_id,
            reason,
            text,
        }
        | Outbound::CancelRejected {
            order_id,
            reason,
            text,
        } => {
            out.extend_from_slice(&order_id.to_le_bytes());
            out.extend_from_slice(&(*reason as u16).to_le_bytes());
            put_str(out, text);
        }
        Outbound::Fill(f) => {
            out.extend_from_slice(&f.order_id.to_le_bytes());
            out.extend_from_slice(&f.last_qty.to_le_bytes());
            out.extend_from_slice(&f.last_price.to_le_bytes());
            out.extend_from_slice(&f.cum_qty.to_le_bytes());
            out.extend_from_slice(&f.cum_notional.to_le_bytes());
            out.extend_from_slice(&f.avg_price.to_le_bytes());
            out.extend_from_slice(&f.leaves_qty.to_le_bytes());
            put_wide(out, f.fee);
            put_str(out, &f.fee_asset);
            put_str(out, &f.trade_id);
            out.extend_from_slice(&f.venue_time_ms.to_le_bytes());
            out.push(f.is_maker as u8);
        }
        Outbound::Canceled { order_id, cum_qty } | Outbound::Expired { order_id, cum_qty } => {
            out.extend_from_slice(&order_id.to_le_bytes());
            out.extend_from_slice(&cum_qty.to_le_bytes());
        }
        Outbound::OrderStatus(s) => {
            out.extend_from_slice(&s.order_id.to_le_bytes());
            out.push(s.state as u8);
            out.extend_from_slice(&s.cum_qty.to_le_bytes());
            out.extend_from_slice(&s.cum_notional.to_le_bytes());
            out.extend_from_slice(&s.avg_price.to_le_bytes());
            out.extend_from_slice(&s.leaves_qty.to_le_bytes());
        }
        Outbound::VenueStatus { venue, state, text } => {
            out.extend_from_slice(&[*venue, *state as u8]);
            put_str(out, text);
        }
        Outbound::Heartbeat => {}
        Outbound::Error { reason, text } => {
            out.extend_from_slice(&(*reason as u16).to_le_bytes());
            put_str(out, text);
        }
    }
    finish(out, at);
}

/// Reads fields off a frame body front to back; every read names its
/// field so errors say where a frame went wrong.
struct Cursor<'a> {
    buf: &'a [u8],
    msg: &'static str,
    /// The first unknown enum value seen; reported by [`Cursor::end`] only
    /// once the frame proved well-formed, so that a truncated frame is
    /// always fatal whatever its enum bytes say.
    bad_value: Option<ProtocolError>,
}

impl<'a> Cursor<'a> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtocolError> {
        let Some((head, rest)) = self.buf.split_first_chunk::<N>() else {
            return Err(ProtocolError::Truncated {
                msg: self.msg,
                field,
            });
        };
        self.buf = rest;
        Ok(*head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.take(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.take(field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.take(field)?))
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, ProtocolError> {
        Ok(i64::from_le_bytes(self.take(field)?))
    }
    fn i128(&mut self, field: &'static str) -> Result<i128, ProtocolError> {
        Ok(i128::from_le_bytes(self.take(field)?))
    }

    fn str(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        let n = self.u8(field)? as usize;
        if self.buf.len() < n {
            return Err(ProtocolError::Truncated {
                msg: self.msg,
                field,
            });
        }
        let (s, rest) = self.buf.split_at(n);
        self.buf = rest;
        std::str::from_utf8(s)
            .map(str::to_owned)
            .map_err(|_| ProtocolError::BadUtf8 {
                msg: self.msg,
                field,
            })
    }

    fn wide(&mut self, field: &'static str) -> Result<WideDecimal, ProtocolError> {
        Ok(WideDecimal::new(self.i128(field)?, self.u8(field)?))
    }

    /// Notes an unknown value (first one wins) and hands back `fallback`
    /// so decoding can go on to check the rest of the frame's structure.
    fn unknown<T>(&mut self, field: &'static str, value: u64, fallback: T) -> T {
        self.bad_value
            .get_or_insert(ProtocolError::UnknownEnumValue {
                msg: self.msg,
                field,
                value,
            });
        fallback
    }

    /// An enum byte, mapped through `from`.
    fn enum_u8<T>(
        &mut self,
        field: &'static str,
        from: fn(u8) -> Option<T>,
        fallback: T,
    ) -> Result<T, ProtocolError> {
        let v = self.u8(field)?;
        Ok(match from(v) {
            Some(x) => x,
            None => self.unknown(field, v as u64, fallback),
        })
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        self.enum_u8(
            field,
            |v| match v {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            },
            false,
        )
    }

    fn reason(&mut self, field: &'static str) -> Result<Reason, ProtocolError> {
        let v = self.u16(field)?;
        Ok(match Reason::from_u16(v) {
            Some(r) => r,
            None => self.unknown(field, v as u64, Reason::None),
        })
    }

    /// NewOrder flag bits; bits outside [`flags::KNOWN`] count as an
    /// unknown value.
    fn flags(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        let v = self.u8(field)?;
        Ok(if v & !flags::KNOWN != 0 {
            self.unknown(field, v as u64, v)
        } else {
            v
        })
    }

    /// Every byte of the body must have been consumed.
    fn end(self) -> Result<(), ProtocolError> {
        if !self.buf.is_empty() {
            return Err(ProtocolError::TrailingBytes {
                msg: self.msg,
                extra: self.buf.len(),
            });
        }
        self.bad_value.map_or(Ok(()), Err)
    }
}

fn read_type(body: &[u8]) -> Result<(u16, Cursor<'_>), ProtocolError> {
    let mut c = Cursor {
        buf: body,
        msg: "frame",
        bad_value: None,
    };
    let t = c.u16("message type")?;
    c.msg = msg_type::name(t);
    Ok((t, c))
}

/// Decodes one strategy → sidecar frame body (the bytes after the length
/// prefix).
///
/// Structural checks (truncation, trailing bytes, UTF-8) win over value
/// checks, so a non-fatal error is only reported for a well-formed frame.
pub fn decode_inbound(body: &[u8]) -> Result<Inbound, ProtocolError> {
    use msg_type::*;
    let (t, mut c) = read_type(body)?;
    let msg = match t {
        HELLO => Inbound::Hello {
            min_version: c.u16("min_version")?,
            max_version: c.u16("max_version")?,
            name: c.str("name")?,
        },
        NEW_ORDER => Inbound::NewOrder(NewOrder {
            order_id: c.u64("order_id")?,
            instrument_id: c.u32("instrument_id")?,
            side: c.enum_u8("side", Side::from_u8, Side::Buy)?,
            ord_type: c.enum_u8("ord_type", OrdType::from_u8, OrdType::Limit)?,
            tif: c.enum_u8("tif", TimeInForce::from_u8, TimeInForce::Gtc)?,
            flags: c.flags("flags")?,
            price: c.i64("price")?,
            qty: c.i64("qty")?,
        }),
        CANCEL => Inbound::Cancel {
            order_id: c.u64("order_id")?,
        },
        CANCEL_ALL => Inbound::CancelAll {
            instrument_id: c.u32("instrument_id")?,
        },
        RESEND_FROM => Inbound::ResendFrom { seq: c.u64("seq")? },
        HEARTBEAT => Inbound::Heartbeat,
        AMEND | CANCEL_REPLACE | MASS_CANCEL | ACCOUNT_QUERY => {
            return Err(ProtocolError::Reserved {
                msg_type: t,
                name: name(t),
            })
        }
        _ => return Err(ProtocolError::UnknownMessageType(t)),
    };
    c.end()?;
    Ok(msg)
}

/// Decodes one sidecar → strategy frame body into its sequence number and
/// message.
pub fn decode_outbound(body: &[u8]) -> Result<(u64, Outbound), ProtocolError> {
    use msg_type::*;
    let (t, mut c) = read_type(body)?;
    if !(HELLO_ACK..=ERROR).contains(&t) {
        return Err(ProtocolError::UnknownMessageType(t));
    }
    let seq = c.u64("seq")?;
    let msg = match t {
        HELLO_ACK => {
            let version = c.u16("version")?;
            let identity = version >= IDENTITY_VERSION;
            // Fields are read in the order written.
            Outbound::HelloAck {
                version,
                strategy_id: c.u32("strategy_id")?,
                next_seq: c.u64("next_seq")?,
                instrument_count: c.u32("instrument_count")?,
                installation: if identity { c.u64("installation")? } else { 0 },
                epoch: if identity { c.u32("epoch")? } else { 0 },
            }
        }
        INSTRUMENT_INFO => Outbound::InstrumentInfo(InstrumentInfo {
            instrument_id: c.u32("instrument_id")?,
            venue: c.u8("venue")?,
            category: c.u8("category")?,
            price_scale: c.u8("price_scale")?,
            qty_scale: c.u8("qty_scale")?,
            tick: c.i64("tick")?,
            lot: c.i64("lot")?,
            min_qty: c.i64("min_qty")?,
            min_notional: c.i128("min_notional")?,
            symbol: c.str("symbol")?,
        }),
        ACCEPTED => Outbound::Accepted {
            order_id: c.u64("order_id")?,
            venue_order_id: c.str("venue_order_id")?,
        },
        REJECTED => Outbound::Rejected {
            order_id: c.u64("order_id")?,
            reason: c.reason("reason")?,
            text: c.str("text")?,
        },
        FILL => Outbound::Fill(Fill {
            order_id: c.u64("order_id")?,
            last_qty: c.i64("last_qty")?,
            last_price: c.i64("last_price")?,
            cum_qty: c.i64("cum_qty")?,
            cum_notional: c.i128("cum_notional")?,
            avg_price: c.i64("avg_price")?,
            leaves_qty: c.i64("leaves_qty")?,
            fee: c.wide("fee")?,
            fee_asset: c.str("fee_asset")?,
            trade_id: c.str("trade_id")?,
            venue_time_ms: c.u64("venue_time_ms")?,
            is_maker: c.bool("is_maker")?,
        }),
        CANCELED => Outbound::Canceled {
            order_id: c.u64("order_id")?,
            cum_qty: c.i64("cum_qty")?,
        },
        CANCEL_REJECTED => Outbound::CancelRejected {
            order_id: c.u64("order_id")?,
            reason: c.reason("reason")?,
            text: c.str("text")?,
        },
        EXPIRED => Outbound::Expired {
            order_id: c.u64("order_id")?,
            cum_qty: c.i64("cum_qty")?,
        },
        ORDER_STATUS => Outbound::OrderStatus(OrderStatus {
            order_id: c.u64("order_id")?,
            state: c.enum_u8("state", OrderState::from_u8, OrderState::Unknown)?,
            cum_qty: c.i64("cum_qty")?,
            cum_notional: c.i128("cum_notional")?,
            avg_price: c.i64("avg_price")?,
            leaves_qty: c.i64("leaves_qty")?,
        }),
        VENUE_STATUS => Outbound::VenueStatus {
            venue: c.u8("venue")?,
            state: c.enum_u8("state", VenueState::from_u8, VenueState::Down)?,
            text: c.str("text")?,
        },
        OUT_HEARTBEAT => Outbound::Heartbeat,
        ERROR => Outbound::Error {
            reason: c.reason("reason")?,
            text: c.str("text")?,
        },
        _ => return Err(ProtocolError::UnknownMessageType(t)),
    };
    c.end()?;
    if (seq != 0) != msg.is_sequenced() {
        return Err(ProtocolError::BadSequence { msg: name(t), seq });
    }
    Ok((seq, msg))
}

/// How many bytes [`FrameReader::read_from`] asks the socket for at once.
pub const READ_CHUNK: usize = 8192;

/// Splits a byte stream (e.g. a non-blocking socket) into frame bodies.
///
/// Feed it what the socket gave, then call [`FrameReader::next_frame`]
/// until it returns `None`. The length prefix is checked against
/// [`MAX_FRAME`] as soon as its 4 bytes are in, so an oversized frame is
/// refused without waiting for (or growing the buffer to hold) its body.
/// After an error the stream is out of sync: report it and close.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Start of the bytes not yet handed out by `next_frame`.
    pos: usize,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the bytes of frames already handed out.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// One `read` of at most [`READ_CHUNK`] bytes from `src` straight into
    /// the buffer; returns what `read` returned (0 = end of stream,
    /// `WouldBlock` on a non-blocking socket with nothing to read).
    pub fn read_from<R: std::io::Read>(&mut self, src: &mut R) -> std::io::Result<usize> {
        self.compact();
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let res = src.read(&mut self.buf[old..]);
        self.buf.truncate(old + *res.as_ref().unwrap_or(&0));
        res
    }

    /// The next complete frame body (without its length prefix), or
    /// `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, ProtocolError> {
        let Some((len, rest)) = self.buf[self.pos..].split_first_chunk::<LEN_PREFIX>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_FRAME {
            return Err(ProtocolError::FrameTooLarge { len });
        }
        if rest.len() < len {
            return Ok(None);
        }
        let start = self.pos + LEN_PREFIX;
        self.pos = start + len;
        Ok(Some(&self.buf[start..start + len]))
    }

    /// Bytes received but not yet returned as frames (a partial frame at
    /// end of stream means the peer hung up mid-frame).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> NewOrder {
        NewOrder {
            order_id: 42,
            instrument_id: 7,
            side: Side::Sell,
            ord_type: OrdType::LimitMaker,
            tif: TimeInForce::Gtc,
            flags: flags::POST_ONLY | flags::REDUCE_ONLY,
            price: 5_200_000,
            qty: -1,
        }
    }

    fn inbound_samples() -> Vec<Inbound> {
        vec![
            Inbound::Hello {
                min_version: 1,
                max_version: 3,
                name: "mm-β".into(),
            },
            Inbound::NewOrder(order()),
            Inbound::Cancel { order_id: u64::MAX },
            Inbound::CancelAll { instrument_id: 0 },
            Inbound::ResendFrom { seq: 17 },
            Inbound::Heartbeat,
        ]
    }

    fn outbound_samples() -> Vec<(u64, Outbound)> {
        vec![
            (
                0,
                Outbound::HelloAck {
                    version: 1,
                    strategy_id: 9,
                    next_seq: 1,
                    instrument_count: 2,
                    installation: 0,
                    epoch: 0,
                },
            ),
            (
                0,
                Outbound::HelloAck {
                    version: 2,
                    strategy_id: 9,
                    next_seq: 1,
                    instrument_count: 2,
                    installation: 62u64.pow(6) - 1,
                    epoch: u32::MAX,
                },
            ),
            (
                0,
                Outbound::InstrumentInfo(InstrumentInfo {
                    instrument_id: 7,
                    venue: 1,
                    category: 1,
                    price_scale: 2,
                    qty_scale: 5,
                    tick: 1,
                    lot: 1,
                    min_qty: 10,
                    min_notional: i128::MAX,
                    symbol: "BTCUSDT".into(),
                }),
            ),
            (
                1,
                Outbound::Accepted {
                    order_id: 42,
                    venue_order_id: "123456".into(),
                },
            ),
            (
                2,
                Outbound::Rejected {
                    order_id: 42,
                    reason: Reason::PriceNotOnTick,
                    text: String::new(),
                },
            ),
            (
                3,
                Outbound::Fill(Fill {
                    order_id: 42,
                    last_qty: 1,
                    last_price: i64::MIN,
                    cum_qty: 2,
                    cum_notional: i128::MIN,
                    avg_price: 3,
                    leaves_qty: 0,
                    fee: WideDecimal::new(-12345, 18),
                    fee_asset: "BNB".into(),
                    trade_id: "t1".into(),
                    venue_time_ms: u64::MAX,
                    is_maker: true,
                }),
            ),
            (
                4,
                Outbound::Canceled {
                    order_id: 1,
                    cum_qty: 5,
                },
            ),
            (
                5,
                Outbound::CancelRejected {
                    order_id: 1,
                    reason: Reason::OrderNotOpen,
                    text: "gone".into(),
                },
            ),
            (
                6,
                Outbound::Expired {
                    order_id: 1,
                    cum_qty: 0,
                },
            ),
            (
                u64::MAX,
                Outbound::OrderStatus(OrderStatus {
                    order_id: 1,
                    state: OrderState::PartiallyFilled,
                    cum_qty: 1,
                    cum_notional: 100,
                    avg_price: 100,
                    leaves_qty: 4,
                }),
            ),
            (
                0,
                Outbound::VenueStatus {
                    venue: 1,
                    state: VenueState::Halted,
                    text: "rate limited".into(),
                },
            ),
            (0, Outbound::Heartbeat),
            (
                0,
                Outbound::Error {
                    reason: Reason::UnknownEnumValue,
                    text: "NewOrder field side has unknown value 9".into(),
                },
            ),
        ]
    }

    /// Strips and checks the length prefix of a single encoded frame.
    fn body(frame: &[u8]) -> &[u8] {
        let (len, body) = frame.split_first_chunk::<4>().unwrap();
        assert_eq!(u32::from_le_bytes(*len) as usize, body.len());
        body
    }

    #[test]
    fn every_inbound_message_round_trips() {
        for m in inbound_samples() {
            let mut out = Vec::new();
            encode_inbound(&m, &mut out);
            assert_eq!(decode_inbound(body(&out)), Ok(m));
        }
    }

    #[test]
    fn every_outbound_message_round_trips() {
        for (seq, m) in outbound_samples() {
            let mut out = vec![0xEE]; // appends, leaves what was there
            encode_outbound(seq, &m, &mut out);
            assert_eq!(out[0], 0xEE);
            assert_eq!(decode_outbound(body(&out[1..])), Ok((seq, m)));
        }
    }

    #[test]
    fn new_order_layout() {
        let mut out = Vec::new();
        encode_inbound(&Inbound::NewOrder(order()), &mut out);
        assert_eq!(out.len(), 4 + 2 + 8 + 4 + 4 + 8 + 8);
        assert_eq!(&out[..6], &[34, 0, 0, 0, 0x02, 0x00]);
        assert_eq!(&out[18..22], &[2, 3, 1, 3]);
    }

    #[test]
    fn hello_ack_layout_follows_its_version() {
        let ack = |version| Outbound::HelloAck {
            version,
            strategy_id: 3,
            next_seq: 18,
            instrument_count: 1,
            installation: 12_345_678_901,
            epoch: 7,
        };
        let mut v2 = Vec::new();
        encode_outbound(0, &ack(2), &mut v2);
        assert_eq!(body(&v2).len(), 40);
        assert_eq!(&v2[32..40], &12_345_678_901u64.to_le_bytes());
        assert_eq!(&v2[40..44], &7u32.to_le_bytes());
        // Version 1 has no room for the identity: it is left out.
        let mut v1 = Vec::new();
        encode_outbound(0, &ack(1), &mut v1);
        assert_eq!(&body(&v1)[12..], &body(&v2)[12..28]);
        assert!(matches!(
            decode_outbound(body(&v1)),
            Ok((
                0,
                Outbound::HelloAck {
                    version: 1,
                    installation: 0,
                    epoch: 0,
                    ..
                }
            ))
        ));
    }

    #[test]
    fn truncations_and_trailing_bytes_are_fatal() {
        for (seq, m) in outbound_samples() {
            let mut out = Vec::new();
            encode_outbound(seq, &m, &mut out);
            let b = body(&out);
            for cut in 0..b.len() {
                let e = decode_outbound(&b[..cut]).unwrap_err();
                assert!(e.is_fatal(), "{m:?} cut at {cut}: {e}");
                assert_eq!(e.reason(), Reason::MalformedFrame);
            }
            let mut long = b.to_vec();
            long.push(0);
            assert!(matches!(
                decode_outbound(&long),
                Err(ProtocolError::TrailingBytes { extra: 1, .. })
            ));
        }
        for m in inbound_samples() {
            let mut out = Vec::new();
            encode_inbound(&m, &mut out);
            let b = body(&out);
            for cut in 0..b.len() {
                assert!(decode_inbound(&b[..cut]).unwrap_err().is_fatal());
            }
        }
    }

    #[test]
    fn errors_name_the_message_and_field() {
        let mut out = Vec::new();
        encode_inbound(&Inbound::NewOrder(order()), &mut out);
        let e = decode_inbound(&body(&out)[..16]).unwrap_err();
        assert_eq!(e.to_string(), "NewOrder frame truncated while reading tif");
    }

    #[test]
    fn unknown_values_keep_the_connection() {
        let mut out = Vec::new();
        encode_inbound(&Inbound::NewOrder(order()), &mut out);
        // side, ord_type, tif, flags are body bytes 14..18.
        for (i, field, bad) in [(14, "side", 0), (15, "ord_type", 4), (16, "tif", 9)] {
            let mut b = body(&out).to_vec();
            b[i] = bad;
            let e = decode_inbound(&b).unwrap_err();
            assert_eq!(
                e,
                ProtocolError::UnknownEnumValue {
                    msg: "NewOrder",
                    field,
                    value: bad as u64
                }
            );
            assert!(!e.is_fatal());
            assert_eq!(e.reason(), Reason::UnknownEnumValue);
            // Truncation still wins: the frame itself is broken.
            assert!(decode_inbound(&b[..b.len() - 1]).unwrap_err().is_fatal());
        }
        let mut b = body(&out).to_vec();
        b[17] = 0x08;
        assert!(matches!(
            decode_inbound(&b),
            Err(ProtocolError::UnknownEnumValue {
                field: "flags",
                value: 8,
                ..
            })
        ));

        let mut out = Vec::new();
        encode_outbound(
            0,
            &Outbound::Error {
                reason: Reason::None,
                text: String::new(),
            },
            &mut out,
        );
        let mut b = body(&out).to_vec();
        b[10] = 99; // reason 99 is not registered
        assert!(matches!(
            decode_outbound(&b),
            Err(ProtocolError::UnknownEnumValue {
                field: "reason",
                value: 99,
                ..
            })
        ));
    }

    #[test]
    fn unknown_and_reserved_types() {
        for t in [0x0000u16, 0x0007, 0x0081, 0xFFFF] {
            let e = decode_inbound(&t.to_le_bytes()).unwrap_err();
            assert_eq!(e, ProtocolError::UnknownMessageType(t));
            assert!(!e.is_fatal());
        }
        for t in [0x0010u16, 0x0011, 0x0012, 0x0013] {
            let mut b = t.to_le_bytes().to_vec();
            b.extend_from_slice(&[1, 2, 3]); // body content does not matter
            let e = decode_inbound(&b).unwrap_err();
            assert!(matches!(e, ProtocolError::Reserved { msg_type, .. } if msg_type == t));
            assert_eq!(e.reason(), Reason::NotImplemented);
            assert!(!e.is_fatal());
        }
        assert_eq!(
            decode_outbound(&[0x02, 0x00]),
            Err(ProtocolError::UnknownMessageType(2))
        );
        assert_eq!(
            decode_outbound(&[0x8D, 0x00]),
            Err(ProtocolError::UnknownMessageType(0x8D))
        );
    }

    #[test]
    fn sequence_numbers_must_match_the_message_kind() {
        for (seq, m) in [
            (5, Outbound::Heartbeat),
            (0, outbound_samples()[3].1.clone()),
        ] {
            // Encode with a valid seq, then patch the seq bytes.
            let mut out = Vec::new();
            let good = if m.is_sequenced() { 1 } else { 0 };
            encode_outbound(good, &m, &mut out);
            out[6..14].copy_from_slice(&u64::to_le_bytes(seq));
            let e = decode_outbound(body(&out)).unwrap_err();
            assert!(matches!(e, ProtocolError::BadSequence { .. }), "{e}");
            assert!(e.is_fatal());
        }
    }

    #[test]
    fn bad_utf8_is_fatal() {
        let mut out = Vec::new();
        encode_inbound(
            &Inbound::Hello {
                min_version: 1,
                max_version: 1,
                name: "ab".into(),
            },
            &mut out,
        );
        let n = out.len();
        out[n - 1] = 0xFF;
        let e = decode_inbound(body(&out)).unwrap_err();
        assert_eq!(
            e,
            ProtocolError::BadUtf8 {
                msg: "Hello",
                field: "name"
            }
        );
        assert!(e.is_fatal());
    }

    #[test]
    fn long_strings_are_cut_at_a_char_boundary() {
        let name = "é".repeat(200); // 400 bytes
        let mut out = Vec::new();
        encode_inbound(
            &Inbound::Hello {
                min_version: 1,
                max_version: 1,
                name,
            },
            &mut out,
        );
        let Ok(Inbound::Hello { name, .. }) = decode_inbound(body(&out)) else {
            panic!("hello did not decode");
        };
        assert_eq!(name, "é".repeat(127)); // 254 bytes: 255 would split a char
    }

    #[test]
    fn frame_reader_splits_a_stream() {
        let mut stream = Vec::new();
        for m in inbound_samples() {
            encode_inbound(&m, &mut stream);
        }
        // One byte at a time, the worst case for a non-blocking socket.
        let mut r = FrameReader::new();
        let mut got = Vec::new();
        for b in &stream {
            r.feed(std::slice::from_ref(b));
            while let Some(body) = r.next_frame().unwrap() {
                got.push(decode_inbound(body).unwrap());
            }
        }
        assert_eq!(got, inbound_samples());
        assert_eq!(r.pending(), 0);

        // All at once, through read_from.
        let mut r = FrameReader::new();
        let mut src: &[u8] = &stream;
        while r.read_from(&mut src).unwrap() > 0 {}
        let mut n = 0;
        while r.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, inbound_samples().len());
    }

    #[test]
    fn frame_reader_refuses_oversized_length_before_the_body() {
        let mut r = FrameReader::new();
        r.feed(&(MAX_FRAME as u32).to_le_bytes());
        assert_eq!(r.next_frame(), Ok(None)); // exactly MAX_FRAME is allowed
        let mut r = FrameReader::new();
        r.feed(&[0x01, 0x10, 0x00]);
        assert_eq!(r.next_frame(), Ok(None));
        r.feed(&[0x00]); // 4097, no body byte sent yet
        let e = r.next_frame().unwrap_err();
        assert_eq!(e, ProtocolError::FrameTooLarge { len: 4097 });
        assert_eq!(e.reason(), Reason::FrameTooLarge);
        assert!(e.is_fatal());
    }

    #[test]
    fn reason_registry_is_consistent() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(Reason::from_u16(*r as u16), Some(*r));
            if i > 0 {
                assert!(*r as u16 > Reason::ALL[i - 1] as u16);
            }
        }
        assert_eq!(Reason::ALL.len(), 34);
        assert_eq!(Reason::from_u16(12), None);
    }
}
