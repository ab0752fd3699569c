//! The JSON the simulator writes, as `serde` structs whose fields are
//! declared in the order of the official samples: serde_json writes struct
//! fields in declaration order, so responses keep Binance's key order
//! without an order-preserving map (serde_json's `preserve_order` would
//! switch every crate in the workspace to it).
//!
//! Amounts are `String`s formatted by the engine's scales ("0.01000000"),
//! never numbers, exactly as Binance writes them.

use serde::Serialize;

use super::engine::{ExecEvent, ExecType, Order, Side, SymbolSpec, Trade};

const STP_MODE: &str = "NONE";

/// The `result` of a successful request (WebSocket API) or the body of a
/// successful REST response.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Body {
    /// `{}` (ping, unsubscribe).
    Empty(Empty),
    ServerTime(ServerTime),
    ExchangeInfo(ExchangeInfo),
    OrderAck(OrderAck),
    /// `RESULT` and `FULL` (with `fills`).
    OrderResult(OrderResult),
    Cancel(CancelResponse),
    Order(OrderQuery),
    Orders(Vec<OrderQuery>),
    /// `myTrades`.
    Trades(Vec<MyTrade>),
    Subscribed(Subscribed),
    Session(SessionStatus),
}

impl Body {
    pub fn empty() -> Body {
        Body::Empty(Empty {})
    }
    pub fn to_json(&self) -> String {
        to_string(self)
    }
}

/// Writes `v`; the simulator's types only hold strings, integers and
/// booleans, which cannot fail to serialize.
pub fn to_string<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[derive(Debug, Clone, Serialize)]
pub struct Empty {}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    pub server_time: u64,
}

/// `newOrderRespType=ACK`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderAck {
    pub symbol: String,
    pub order_id: u64,
    pub order_list_id: i64,
    pub client_order_id: String,
    pub transact_time: u64,
}

impl OrderAck {
    pub fn new(o: &Order, transact_time: u64) -> OrderAck {
        OrderAck {
            symbol: o.symbol.clone(),
            order_id: o.order_id,
            order_list_id: -1,
            client_order_id: o.client_order_id.clone(),
            transact_time,
        }
    }
}

/// `newOrderRespType=RESULT`, and `FULL` when `fills` is set.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderResult {
    pub symbol: String,
    pub order_id: u64,
    pub order_list_id: i64,
    pub client_order_id: String,
    pub transact_time: u64,
    pub price: String,
    pub orig_qty: String,
    pub executed_qty: String,
    pub orig_quote_order_qty: String,
    pub cummulative_quote_qty: String,
    pub status: &'static str,
    pub time_in_force: &'static str,
    #[serde(rename = "type")]
    pub order_type: &'static str,
    pub side: &'static str,
    pub working_time: u64,
    pub self_trade_prevention_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fills: Option<Vec<Fill>>,
}

impl OrderResult {
    /// RESULT.
    pub fn new(o: &Order, transact_time: u64) -> OrderResult {
        let s = o.scales;
        OrderResult {
            symbol: o.symbol.clone(),
            order_id: o.order_id,
            order_list_id: -1,
            client_order_id: o.client_order_id.clone(),
            transact_time,
            price: s.fmt_price(o.price),
            orig_qty: s.fmt_qty(o.orig_qty),
            executed_qty: s.fmt_qty(o.executed_qty),
            orig_quote_order_qty: s.fmt_quote(o.orig_quote_qty),
            cummulative_quote_qty: s.fmt_quote(o.cum_quote_qty),
            status: o.status.as_str(),
            time_in_force: o.time_in_force.as_str(),
            order_type: o.order_type.as_str(),
            side: o.side.as_str(),
            working_time: o.working_time,
            self_trade_prevention_mode: STP_MODE,
            expiry_reason: o.expiry_reason,
            fills: None,
        }
    }

    /// FULL: RESULT plus the trades made while placing.
    pub fn full(o: &Order, transact_time: u64, fills: &[Trade]) -> OrderResult {
        OrderResult {
            fills: Some(fills.iter().map(|t| Fill::new(o, t)).collect()),
            ..OrderResult::new(o, transact_time)
        }
    }
}

/// One element of a FULL response's `fills`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fill {
    pub price: String,
    pub qty: String,
    pub commission: String,
    pub commission_asset: String,
    pub trade_id: u64,
}

impl Fill {
    fn new(o: &Order, t: &Trade) -> Fill {
        let s = o.scales;
        Fill {
            price: s.fmt_price(t.price),
            qty: s.fmt_qty(t.qty),
            commission: s.fmt_commission(t.commission),
            commission_asset: t.commission_asset.clone(),
            trade_id: t.trade_id,
        }
    }
}

/// The answer to a cancel (`order.cancel`, `DELETE /api/v3/order`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelResponse {
    pub symbol: String,
    pub orig_client_order_id: String,
    pub order_id: u64,
    pub order_list_id: i64,
    pub client_order_id: String,
    pub transact_time: u64,
    pub price: String,
    pub orig_qty: String,
    pub executed_qty: String,
    pub orig_quote_order_qty: String,
    pub cummulative_quote_qty: String,
    pub status: &'static str,
    pub time_in_force: &'static str,
    #[serde(rename = "type")]
    pub order_type: &'static str,
    pub side: &'static str,
    pub self_trade_prevention_mode: &'static str,
}

impl CancelResponse {
    pub fn new(o: &Order, cancel_client_id: &str, transact_time: u64) -> CancelResponse {
        let s = o.scales;
        CancelResponse {
            symbol: o.symbol.clone(),
            orig_client_order_id: o.client_order_id.clone(),
            order_id: o.order_id,
            order_list_id: -1,
            client_order_id: cancel_client_id.to_owned(),
            transact_time,
            price: s.fmt_price(o.price),
            orig_qty: s.fmt_qty(o.orig_qty),
            executed_qty: s.fmt_qty(o.executed_qty),
            orig_quote_order_qty: s.fmt_quote(o.orig_quote_qty),
            cummulative_quote_qty: s.fmt_quote(o.cum_quote_qty),
            status: o.status.as_str(),
            time_in_force: o.time_in_force.as_str(),
            order_type: o.order_type.as_str(),
            side: o.side.as_str(),
            self_trade_prevention_mode: STP_MODE,
        }
    }
}

/// An order as `order.status` / `openOrders.status` (and their REST
/// twins) report it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderQuery {
    pub symbol: String,
    pub order_id: u64,
    pub order_list_id: i64,
    pub client_order_id: String,
    pub price: String,
    pub orig_qty: String,
    pub executed_qty: String,
    pub cummulative_quote_qty: String,
    pub status: &'static str,
    pub time_in_force: &'static str,
    #[serde(rename = "type")]
    pub order_type: &'static str,
    pub side: &'static str,
    pub stop_price: String,
    pub iceberg_qty: String,
    pub time: u64,
    pub update_time: u64,
    pub is_working: bool,
    pub working_time: u64,
    pub orig_quote_order_qty: String,
    pub self_trade_prevention_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_reason: Option<&'static str>,
}

impl OrderQuery {
    pub fn new(o: &Order) -> OrderQuery {
        let s = o.scales;
        OrderQuery {
            symbol: o.symbol.clone(),
            order_id: o.order_id,
            order_list_id: -1,
            client_order_id: o.client_order_id.clone(),
            price: s.fmt_price(o.price),
            orig_qty: s.fmt_qty(o.orig_qty),
            executed_qty: s.fmt_qty(o.executed_qty),
            cummulative_quote_qty: s.fmt_quote(o.cum_quote_qty),
            status: o.status.as_str(),
            time_in_force: o.time_in_force.as_str(),
            order_type: o.order_type.as_str(),
            side: o.side.as_str(),
            stop_price: s.fmt_price(0),
            iceberg_qty: s.fmt_qty(0),
            time: o.time,
            update_time: o.update_time,
            is_working: true,
            working_time: o.working_time,
            orig_quote_order_qty: s.fmt_quote(o.orig_quote_qty),
            self_trade_prevention_mode: STP_MODE,
            expiry_reason: o.expiry_reason,
        }
    }
}

/// One row of `myTrades` (and `GET /api/v3/myTrades`), fields in the
/// order of the docs' sample.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MyTrade {
    pub symbol: String,
    pub id: u64,
    pub order_id: u64,
    pub order_list_id: i64,
    pub price: String,
    pub qty: String,
    pub quote_qty: String,
    pub commission: String,
    pub commission_asset: String,
    pub time: u64,
    pub is_buyer: bool,
    pub is_maker: bool,
    pub is_best_match: bool,
}

impl MyTrade {
    pub fn new(o: &Order, t: &Trade) -> MyTrade {
        let s = o.scales;
        MyTrade {
            symbol: o.symbol.clone(),
            id: t.trade_id,
            order_id: o.order_id,
            order_list_id: -1,
            price: s.fmt_price(t.price),
            qty: s.fmt_qty(t.qty),
            quote_qty: s.fmt_quote(t.quote_qty),
            commission: s.fmt_commission(t.commission),
            commission_asset: t.commission_asset.clone(),
            time: t.time,
            is_buyer: o.side == Side::Buy,
            is_maker: t.is_maker,
            // The simulator has one price per trade: always the best.
            is_best_match: true,
        }
    }
}

/// `userDataStream.subscribe*` result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    pub subscription_id: u64,
}

/// `session.logon` / `session.status` / `session.logout` result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    pub api_key: Option<String>,
    pub authorized_since: Option<u64>,
    pub connected_since: u64,
    pub return_rate_limits: bool,
    pub server_time: u64,
    pub user_data_stream: bool,
}

/// The `executionReport` event object (without the subscription wrapper).
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionReport<'a> {
    #[serde(rename = "e")]
    pub event_type: &'static str,
    #[serde(rename = "E")]
    pub event_time: u64,
    #[serde(rename = "s")]
    pub symbol: &'a str,
    #[serde(rename = "c")]
    pub client_order_id: &'a str,
    #[serde(rename = "S")]
    pub side: &'static str,
    #[serde(rename = "o")]
    pub order_type: &'static str,
    #[serde(rename = "f")]
    pub time_in_force: &'static str,
    #[serde(rename = "q")]
    pub quantity: String,
    #[serde(rename = "p")]
    pub price: String,
    #[serde(rename = "P")]
    pub stop_price: String,
    #[serde(rename = "F")]
    pub iceberg_qty: String,
    #[serde(rename = "g")]
    pub order_list_id: i64,
    #[serde(rename = "C")]
    pub orig_client_order_id: &'a str,
    #[serde(rename = "x")]
    pub execution_type: &'static str,
    #[serde(rename = "X")]
    pub status: &'static str,
    #[serde(rename = "r")]
    pub reject_reason: &'static str,
    #[serde(rename = "i")]
    pub order_id: u64,
    #[serde(rename = "l")]
    pub last_qty: String,
    #[serde(rename = "z")]
    pub cum_qty: String,
    #[serde(rename = "L")]
    pub last_price: String,
    #[serde(rename = "n")]
    pub commission: String,
    /// `null` until the order trades.
    #[serde(rename = "N")]
    pub commission_asset: Option<&'a str>,
    #[serde(rename = "T")]
    pub transact_time: u64,
    #[serde(rename = "t")]
    pub trade_id: i64,
    #[serde(rename = "I")]
    pub execution_id: u64,
    #[serde(rename = "w")]
    pub on_book: bool,
    #[serde(rename = "m")]
    pub maker: bool,
    #[serde(rename = "M")]
    pub ignore: bool,
    #[serde(rename = "O")]
    pub creation_time: u64,
    #[serde(rename = "Z")]
    pub cum_quote_qty: String,
    #[serde(rename = "Y")]
    pub last_quote_qty: String,
    #[serde(rename = "Q")]
    pub quote_order_qty: String,
    #[serde(rename = "W")]
    pub working_time: u64,
    #[serde(rename = "V")]
    pub stp_mode: &'static str,
    #[serde(rename = "eR", skip_serializing_if = "Option::is_none")]
    pub expiry_reason: Option<&'static str>,
}

impl<'a> ExecutionReport<'a> {
    pub fn new(ev: &'a ExecEvent, event_time: u64) -> ExecutionReport<'a> {
        let o = &ev.order;
        let s = o.scales;
        let (c, orig) = match &ev.cancel_client_id {
            Some(cancel) => (cancel.as_str(), o.client_order_id.as_str()),
            None => (o.client_order_id.as_str(), ""),
        };
        let (l, lp, lq, trade_id, maker) = match &ev.trade {
            Some(t) => (t.qty, t.price, t.quote_qty, t.trade_id as i64, t.is_maker),
            None => (0, 0, 0, -1, false),
        };
        let (commission, commission_asset) = match &ev.trade {
            Some(t) => (
                s.fmt_commission(t.commission),
                Some(t.commission_asset.as_str()),
            ),
            None => ("0".to_owned(), None),
        };
        ExecutionReport {
            event_type: "executionReport",
            event_time,
            symbol: &o.symbol,
            client_order_id: c,
            side: o.side.as_str(),
            order_type: o.order_type.as_str(),
            time_in_force: o.time_in_force.as_str(),
            quantity: s.fmt_qty(o.orig_qty),
            price: s.fmt_price(o.price),
            stop_price: s.fmt_price(0),
            iceberg_qty: s.fmt_qty(0),
            order_list_id: -1,
            orig_client_order_id: orig,
            execution_type: ev.exec_type.as_str(),
            status: o.status.as_str(),
            reject_reason: "NONE",
            order_id: o.order_id,
            last_qty: s.fmt_qty(l),
            cum_qty: s.fmt_qty(o.executed_qty),
            last_price: s.fmt_price(lp),
            commission,
            commission_asset,
            transact_time: ev.transact_time,
            trade_id,
            execution_id: ev.execution_id,
            on_book: ev.on_book,
            maker,
            ignore: ev.exec_type == ExecType::Trade,
            creation_time: o.time,
            cum_quote_qty: s.fmt_quote(o.cum_quote_qty),
            last_quote_qty: s.fmt_quote(lq),
            quote_order_qty: s.fmt_quote(o.orig_quote_qty),
            working_time: o.working_time,
            stp_mode: STP_MODE,
            expiry_reason: match ev.exec_type {
                ExecType::Expired => o.expiry_reason,
                _ => None,
            },
        }
    }
}

/// A user data event as the WebSocket API delivers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionEvent<'a, E: Serialize> {
    pub subscription_id: u64,
    pub event: &'a E,
}

/// The connection-level `serverShutdown` event, `{"event":{"e","E"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerShutdown {
    pub event: ServerShutdownEvent,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerShutdownEvent {
    #[serde(rename = "e")]
    pub event_type: &'static str,
    #[serde(rename = "E")]
    pub event_time: u64,
}

impl ServerShutdown {
    pub fn new(event_time: u64) -> ServerShutdown {
        ServerShutdown {
            event: ServerShutdownEvent {
                event_type: "serverShutdown",
                event_time,
            },
        }
    }
}

/// `eventStreamTerminated` (user-data-stream.md §"Event Stream
/// Terminated"), sent inside the subscription wrapper.
#[derive(Debug, Clone, Serialize)]
pub struct EventStreamTerminated {
    #[serde(rename = "e")]
    pub event_type: &'static str,
    #[serde(rename = "E")]
    pub event_time: u64,
}

impl EventStreamTerminated {
    pub fn new(event_time: u64) -> EventStreamTerminated {
        EventStreamTerminated {
            event_type: "eventStreamTerminated",
            event_time,
        }
    }
}

/// A rate limiter, as in exchangeInfo (`count` is None) and in WebSocket
/// responses (`count` is the current usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limiter {
    #[serde(rename = "rateLimitType")]
    pub kind: &'static str,
    pub interval: &'static str,
    pub interval_num: u32,
    pub limit: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl Limiter {
    /// This limiter with its current usage.
    pub fn with_count(self, count: u64) -> Limiter {
        Limiter {
            count: Some(count),
            ..self
        }
    }
}

/// `exchangeInfo`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeInfo {
    pub timezone: &'static str,
    pub server_time: u64,
    pub rate_limits: Vec<Limiter>,
    pub exchange_filters: [(); 0],
    pub symbols: Vec<SymbolInfo>,
}

impl ExchangeInfo {
    pub fn new<'a>(
        server_time: u64,
        limiters: &[Limiter],
        symbols: impl IntoIterator<Item = &'a SymbolSpec>,
    ) -> ExchangeInfo {
        ExchangeInfo {
            timezone: "UTC",
            server_time,
            rate_limits: limiters.to_vec(),
            exchange_filters: [],
            symbols: symbols.into_iter().map(SymbolInfo::new).collect(),
        }
    }
}

/// One symbol of `exchangeInfo`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolInfo {
    pub symbol: String,
    pub status: &'static str,
    pub base_asset: String,
    pub base_asset_precision: u8,
    pub quote_asset: String,
    pub quote_precision: u8,
    pub quote_asset_precision: u8,
    pub base_commission_precision: u8,
    pub quote_commission_precision: u8,
    pub order_types: &'static [&'static str],
    pub iceberg_allowed: bool,
    pub oco_allowed: bool,
    pub oto_allowed: bool,
    pub quote_order_qty_market_allowed: bool,
    pub allow_trailing_stop: bool,
    pub cancel_replace_allowed: bool,
    pub amend_allowed: bool,
    pub peg_instructions_allowed: bool,
    pub is_spot_trading_allowed: bool,
    pub is_margin_trading_allowed: bool,
    pub filters: Vec<Filter>,
    pub permissions: [(); 0],
    pub permission_sets: &'static [&'static [&'static str]],
    pub default_self_trade_prevention_mode: &'static str,
    pub allowed_self_trade_prevention_modes: &'static [&'static str],
}

impl SymbolInfo {
    fn new(s: &SymbolSpec) -> SymbolInfo {
        let p = s.scales;
        SymbolInfo {
            symbol: s.symbol.clone(),
            status: "TRADING",
            base_asset: s.base_asset.clone(),
            base_asset_precision: p.base_precision,
            quote_asset: s.quote_asset.clone(),
            quote_precision: p.quote_precision,
            quote_asset_precision: p.quote_precision,
            base_commission_precision: p.base_precision,
            quote_commission_precision: p.quote_precision,
            order_types: &["LIMIT", "LIMIT_MAKER", "MARKET"],
            iceberg_allowed: false,
            oco_allowed: false,
            oto_allowed: false,
            quote_order_qty_market_allowed: true,
            allow_trailing_stop: false,
            cancel_replace_allowed: false,
            amend_allowed: false,
            peg_instructions_allowed: false,
            is_spot_trading_allowed: true,
            is_margin_trading_allowed: false,
            filters: Filter::of(s),
            permissions: [],
            permission_sets: &[&["SPOT"]],
            default_self_trade_prevention_mode: STP_MODE,
            allowed_self_trade_prevention_modes: &[STP_MODE],
        }
    }
}

/// A symbol filter; `filterType` comes first, then the filter's fields.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "filterType")]
pub enum Filter {
    #[serde(rename = "PRICE_FILTER", rename_all = "camelCase")]
    Price {
        min_price: String,
        max_price: String,
        tick_size: String,
    },
    #[serde(rename = "LOT_SIZE", rename_all = "camelCase")]
    LotSize {
        min_qty: String,
        max_qty: String,
        step_size: String,
    },
    #[serde(rename = "MARKET_LOT_SIZE", rename_all = "camelCase")]
    MarketLotSize {
        min_qty: String,
        max_qty: String,
        step_size: String,
    },
    #[serde(rename = "NOTIONAL", rename_all = "camelCase")]
    Notional {
        min_notional: String,
        apply_min_to_market: bool,
        max_notional: String,
        apply_max_to_market: bool,
        avg_price_mins: u32,
    },
}

impl Filter {
    fn of(s: &SymbolSpec) -> Vec<Filter> {
        let sc = s.scales;
        vec![
            Filter::Price {
                min_price: sc.fmt_price(s.min_price),
                max_price: sc.fmt_price(s.max_price),
                tick_size: sc.fmt_price(s.tick_size),
            },
            Filter::LotSize {
                min_qty: sc.fmt_qty(s.min_qty),
                max_qty: sc.fmt_qty(s.max_qty),
                step_size: sc.fmt_qty(s.step_size),
            },
            Filter::MarketLotSize {
                min_qty: sc.fmt_qty(s.market_min_qty),
                max_qty: sc.fmt_qty(s.market_max_qty),
                step_size: sc.fmt_qty(s.market_step_size),
            },
            Filter::Notional {
                min_notional: sc.fmt_quote(s.min_notional),
                apply_min_to_market: s.apply_min_to_market,
                max_notional: sc.fmt_quote(s.max_notional),
                apply_max_to_market: s.apply_max_to_market,
                avg_price_mins: s.avg_price_mins,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_out_in_declaration_order() {
        let l = Limiter {
            kind: "ORDERS",
            interval: "SECOND",
            interval_num: 10,
            limit: 50,
            count: None,
        };
        assert_eq!(
            to_string(&l.with_count(1)),
            r#"{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50,"count":1}"#
        );
        assert_eq!(
            to_string(&l),
            r#"{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50}"#
        );
        assert_eq!(Body::empty().to_json(), "{}");
        assert_eq!(
            to_string(&ServerShutdown::new(7)),
            r#"{"event":{"e":"serverShutdown","E":7}}"#
        );
        let f = Filter::Price {
            min_price: "0.01000000".into(),
            max_price: "1.00000000".into(),
            tick_size: "0.01000000".into(),
        };
        assert_eq!(
            to_string(&f),
            r#"{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1.00000000","tickSize":"0.01000000"}"#
        );
    }
}
