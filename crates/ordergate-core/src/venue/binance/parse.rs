//! The shapes of Binance WebSocket API frames, as borrowed serde structs.
//!
//! One [`Frame`] type covers everything the connection carries: responses
//! (`{"id","status","result"|"error","rateLimits"}`), user-data events
//! (`{"subscriptionId","event"}`) and connection events (`{"event"}`).
//! Only the fields the adapter reads are declared; serde skips the rest, so
//! new venue fields never break parsing. Strings are `Cow` so that values
//! without escapes borrow from the frame and values with escapes still
//! parse (a plain `&str` would make serde_json and sonic-rs refuse them).
//!
//! The deserializer is simd-json over the frame's own buffer, chosen by
//! `benches/parse.rs` (numbers in `docs/bench-parse.txt`). The structs are
//! public so the bench can run every candidate on exactly these types.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Any frame from the WebSocket API.
#[derive(Debug, Default, Deserialize)]
pub struct Frame<'a> {
    /// Our request id; `None` for events, `null` ids and ids we did not
    /// send (strings: all of ours are integers).
    #[serde(default, deserialize_with = "request_id")]
    pub id: Option<u64>,
    pub status: Option<u16>,
    #[serde(borrow)]
    pub result: Option<ResultBody<'a>>,
    #[serde(borrow)]
    pub error: Option<ApiError<'a>>,
    #[serde(rename = "subscriptionId")]
    pub subscription_id: Option<u32>,
    #[serde(borrow)]
    pub event: Option<Event<'a>>,
    /// What the venue counted, on every response (unless suppressed).
    #[serde(borrow, default, rename = "rateLimits")]
    pub rate_limits: Vec<RateLimit<'a>>,
}

/// One entry of a response's `rateLimits`: the venue's own count.
#[derive(Debug, Deserialize)]
pub struct RateLimit<'a> {
    #[serde(borrow, rename = "rateLimitType")]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub interval: Cow<'a, str>,
    #[serde(rename = "intervalNum")]
    pub interval_num: u64,
    pub limit: u32,
    #[serde(default)]
    pub count: u32,
}

/// `error` of a failed response.
#[derive(Debug, Deserialize)]
pub struct ApiError<'a> {
    pub code: i64,
    #[serde(borrow, default)]
    pub msg: Cow<'a, str>,
    #[serde(default)]
    pub data: Option<ErrorData>,
}

/// `error.data` of a rate-limit or ban answer: when to come back, in the
/// venue's epoch milliseconds.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorData {
    #[serde(rename = "retryAfter")]
    pub retry_after: Option<u64>,
    #[serde(rename = "serverTime")]
    pub server_time: Option<u64>,
}

/// `result` is an object for most methods and an array for
/// `openOrders.status`.
#[derive(Debug)]
// Parsed once per response and consumed at once, never stored: boxing the
// object would add an allocation per response on the order path.
#[allow(clippy::large_enum_variant)]
pub enum ResultBody<'a> {
    Object(OrderResult<'a>),
    Array(Vec<OrderResult<'a>>),
}

/// The fields of every `result` object the adapter uses: `time`
/// (serverTime), subscriptions (subscriptionId), and order results (place
/// ACK, cancel, order.status, each row of openOrders.status).
#[derive(Debug, Default, Deserialize)]
pub struct OrderResult<'a> {
    #[serde(rename = "serverTime")]
    pub server_time: Option<u64>,
    #[serde(rename = "subscriptionId")]
    pub subscription_id: Option<u32>,
    #[serde(borrow)]
    pub symbol: Option<Cow<'a, str>>,
    #[serde(rename = "orderId")]
    pub order_id: Option<u64>,
    #[serde(borrow, rename = "clientOrderId")]
    pub client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "origClientOrderId")]
    pub orig_client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(rename = "transactTime")]
    pub transact_time: Option<u64>,
    #[serde(rename = "updateTime")]
    pub update_time: Option<u64>,
    /// Order rows: the venue's cumulative figures.
    #[serde(borrow, rename = "executedQty")]
    pub executed_qty: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "cummulativeQuoteQty")]
    pub cum_quote_qty: Option<Cow<'a, str>>,
    /// `myTrades` rows: the trade id, and the order it belongs to in
    /// `orderId`.
    pub id: Option<i64>,
    #[serde(borrow)]
    pub price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub qty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub commission: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "commissionAsset")]
    pub commission_asset: Option<Cow<'a, str>>,
    pub time: Option<u64>,
    #[serde(rename = "isMaker")]
    pub is_maker: Option<bool>,
}

/// A user-data or connection event. The single-letter keys are
/// case-sensitive (`c`/`C`, `x`/`X`, `l`/`L`); only keys whose types agree
/// across every documented event type are declared, so an
/// `outboundAccountPosition` or `listStatus` parses too (and is skipped by
/// its `e`).
#[derive(Debug, Default, Deserialize)]
pub struct Event<'a> {
    #[serde(borrow, rename = "e")]
    pub kind: Cow<'a, str>,
    #[serde(rename = "E")]
    pub event_time: Option<u64>,
    #[serde(borrow, rename = "s")]
    pub symbol: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "c")]
    pub client_id: Option<Cow<'a, str>>,
    /// The order being canceled, on a cancel's events; "" otherwise.
    #[serde(borrow, rename = "C")]
    pub orig_client_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "x")]
    pub exec_type: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "X")]
    pub order_status: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "r")]
    pub reject_reason: Option<Cow<'a, str>>,
    #[serde(rename = "i")]
    pub order_id: Option<u64>,
    #[serde(borrow, rename = "l")]
    pub last_qty: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "L")]
    pub last_price: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "n")]
    pub fee: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "N")]
    pub fee_asset: Option<Cow<'a, str>>,
    #[serde(rename = "T")]
    pub time: Option<u64>,
    #[serde(rename = "t")]
    pub trade_id: Option<i64>,
    #[serde(rename = "m")]
    pub is_maker: Option<bool>,
    /// Cumulative filled quantity of the order after this report.
    #[serde(borrow, rename = "z")]
    pub cum_qty: Option<Cow<'a, str>>,
    /// Cumulative quote quantity of the order after this report.
    #[serde(borrow, rename = "Z")]
    pub cum_quote: Option<Cow<'a, str>>,
}

fn request_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer, string or null request id")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}

impl<'de: 'a, 'a> Deserialize<'de> for ResultBody<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ResultBody<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a result object or array")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                OrderResult::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ResultBody::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(ResultBody::Array)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Parses a frame in place with simd-json (the buffer is used as scratch
/// space, which is why `on_frame` takes `&mut [u8]`). `buffers` is reused
/// between frames so the hot path does not allocate for the tape.
pub fn parse_frame<'a>(
    buf: &'a mut [u8],
    buffers: &mut simd_json::Buffers,
) -> Result<Frame<'a>, String> {
    simd_json::serde::from_slice_with_buffers(buf, buffers).map_err(|e| e.to_string())
}
