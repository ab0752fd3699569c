//! What the WebSocket API and REST share: the account-side state, request
//! authentication (the documented timing and signature
//! rules), parameter parsing with the documented error codes, and the
//! methods themselves. Transports only move bytes and wrap results.

use std::collections::HashMap;

use super::amount::Amount;
use super::engine::{Engine, ExecEvent, NewOrder, Order, OrderType, Reject, Side, TimeInForce};
use super::json::{self, Body};
use super::limits::{LimitRefusal, Meter, RateLimits};
use super::sign;

pub use super::limits::UsageSnapshot;

/// The simulated server clock: `now + offset + drift_ppm * elapsed / 1e6`,
/// elapsed counted from `anchor_ms`. Pure: the caller passes its own time
/// `now` (real in the socket server, virtual in a harness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimClock {
    pub offset_ms: i64,
    pub drift_ppm: i64,
    pub anchor_ms: u64,
}

impl SimClock {
    pub fn server_time(&self, now_ms: u64) -> u64 {
        let elapsed = now_ms as i128 - self.anchor_ms as i128;
        let t =
            now_ms as i128 + self.offset_ms as i128 + elapsed * self.drift_ppm as i128 / 1_000_000;
        t.max(0) as u64
    }
}

/// The account-side state every request sees: the engine, the API keys,
/// the server clock and the request counters. Connections and
/// subscriptions are the [`Exchange`](super::Exchange)'s.
pub struct State {
    pub engine: Engine,
    pub accounts: HashMap<String, String>,
    pub clock: SimClock,
    pub(crate) meter: Meter,
}

impl State {
    pub fn new(
        engine: Engine,
        accounts: HashMap<String, String>,
        clock: SimClock,
        limits: RateLimits,
    ) -> State {
        State {
            engine,
            accounts,
            clock,
            meter: Meter::new(limits),
        }
    }

    /// The server's time when the caller's clock reads `now_ms`.
    pub fn server_time(&self, now_ms: u64) -> u64 {
        self.clock.server_time(now_ms)
    }
}

/// A Binance error: HTTP status (also the WebSocket `status`), code, text.
/// Serializes as the documented error object `{"code","msg"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub http: u16,
    pub code: i64,
    pub msg: String,
    /// For 429 and 418: when the request may be sent again.
    #[serde(skip)]
    pub limit: Option<LimitRefusal>,
}

impl ApiError {
    pub fn new(code: i64, msg: impl Into<String>) -> ApiError {
        ApiError {
            http: 400,
            code,
            msg: msg.into(),
            limit: None,
        }
    }
    pub fn mandatory(name: &str) -> ApiError {
        ApiError::new(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }
    pub fn invalid_key() -> ApiError {
        ApiError {
            http: 401,
            code: -2015,
            msg: "Invalid API-key, IP, or permissions for action.".into(),
            limit: None,
        }
    }
    pub fn key_format() -> ApiError {
        ApiError {
            http: 401,
            code: -2014,
            msg: "API-key format invalid.".into(),
            limit: None,
        }
    }
    fn illegal(name: &str, range: &str) -> ApiError {
        ApiError::new(
            -1100,
            format!("Illegal characters found in parameter '{name}'; legal range is '{range}'."),
        )
    }
    fn not_required(name: &str) -> ApiError {
        ApiError::new(-1106, format!("Parameter '{name}' sent when not required."))
    }
    /// The error object as JSON text.
    pub fn body(&self) -> String {
        json::to_string(self)
    }
}

impl From<Reject> for ApiError {
    fn from(r: Reject) -> ApiError {
        ApiError::new(r.code(), r.to_string())
    }
}

/// Request parameters as received: names and their text (JSON strings as
/// sent, numbers and booleans as their JSON text). The first occurrence of
/// a name wins (REST puts the query string first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A value that was sent and is not empty.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.value(name).ok_or_else(|| ApiError::mandatory(name))
    }
}

/// How a signed request proves who sent it.
pub enum Auth<'a> {
    /// HMAC over `payload` (built by the transport from the request as
    /// sent); `api_key` from the params or the header.
    Signed {
        api_key: &'a str,
        signature: Option<&'a str>,
        payload: String,
    },
    /// A WebSocket session authenticated with `session.logon`.
    Session(&'a str),
}

/// Checks key, signature and the timing rule; returns the account.
pub fn authenticate(
    state: &State,
    params: &Params,
    auth: Auth<'_>,
    now: u64,
) -> Result<String, ApiError> {
    let account = match auth {
        Auth::Session(key) => key,
        Auth::Signed {
            api_key,
            signature,
            payload,
        } => {
            let secret = state
                .accounts
                .get(api_key)
                .ok_or_else(ApiError::invalid_key)?;
            let signature = signature
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiError::mandatory("signature"))?;
            if !sign::verify_hex(secret.as_bytes(), payload.as_bytes(), signature) {
                return Err(ApiError::new(
                    -1022,
                    "Signature for this request is not valid.",
                ));
            }
            api_key
        }
    };
    check_timestamp(params, now)?;
    Ok(account.to_owned())
}

/// The documented rule, in microseconds so µs timestamps and fractional
/// recvWindows compare exactly:
/// `timestamp < serverTime + 1000 && serverTime - timestamp <= recvWindow`.
pub fn check_timestamp(params: &Params, now_ms: u64) -> Result<(), ApiError> {
    let ts = params.require("timestamp")?;
    let ts: u64 = ts.parse().map_err(|_| ApiError::mandatory("timestamp"))?;
    // 16-digit timestamps are microseconds.
    let ts_us = if ts >= 1_000_000_000_000_000 {
        ts as i128
    } else {
        ts as i128 * 1000
    };
    let recv_us = match params.value("recvWindow") {
        None => 5_000_000,
        Some(w) => {
            let w = Amount::parse(w)
                .ok()
                .filter(|d| d.digits >= 0)
                .and_then(|d| d.at(3))
                .ok_or_else(|| ApiError::mandatory("recvWindow"))?;
            if w > 60_000_000 {
                return Err(ApiError::new(-1131, "recvWindow must be less than 60000"));
            }
            w
        }
    };
    let server_us = now_ms as i128 * 1000;
    if ts_us >= server_us + 1_000_000 {
        return Err(ApiError::new(
            -1021,
            "Timestamp for this request was 1000ms ahead of the server's time.",
        ));
    }
    if server_us - ts_us > recv_us {
        return Err(ApiError::new(
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ));
    }
    Ok(())
}

/// The methods both transports serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ping,
    Time,
    ExchangeInfo,
    OrderPlace,
    OrderCancel,
    OrderStatus,
    OpenOrders,
    AllOrders,
    MyTrades,
}

impl Op {
    /// Request weight, per the docs.
    pub fn weight(self, params: &Params) -> u64 {
        match self {
            Op::Ping | Op::Time | Op::OrderPlace | Op::OrderCancel => 1,
            Op::ExchangeInfo => 20,
            Op::OrderStatus => 4,
            Op::OpenOrders if params.value("symbol").is_some() => 6,
            Op::OpenOrders => 80,
            Op::AllOrders => 20,
            Op::MyTrades if params.value("orderId").is_some() => 5,
            Op::MyTrades => 20,
        }
    }
    pub fn signed(self) -> bool {
        matches!(
            self,
            Op::OrderPlace
                | Op::OrderCancel
                | Op::OrderStatus
                | Op::OpenOrders
                | Op::AllOrders
                | Op::MyTrades
        )
    }
}

/// The result of one request, with the usage to report beside it and the
/// user data events it caused (for the caller to publish).
pub struct Handled {
    pub result: Result<Body, ApiError>,
    pub usage: UsageSnapshot,
    pub events: Vec<ExecEvent>,
}

/// Runs one request: the IP limits (ban, back-off, raw requests and
/// weight), authentication, the ORDERS limit of a new order, and the
/// method. A successfully placed order is counted against its account.
///
/// `auth` is ignored by unsigned methods; transports pass the error they
/// report when a signed request carries no API key. `gate` runs when a new
/// order has passed the limits and authentication, just before the engine
/// would see it: an error there answers the request instead and nothing is
/// placed or counted (the faults' `busy` and `unknown-rejected`).
pub fn handle(
    state: &mut State,
    op: Op,
    params: &Params,
    auth: Result<Auth<'_>, ApiError>,
    now: u64,
    gate: &mut dyn FnMut() -> Result<(), ApiError>,
) -> Handled {
    let weight = op.weight(params);
    let mut account = None;
    let result = (|| {
        state.meter.admit(now, weight)?;
        if op.signed() {
            account = Some(authenticate(state, params, auth?, now)?);
        }
        let acct = account.as_deref().unwrap_or_default();
        if op == Op::OrderPlace {
            state.meter.admit_order(acct, now)?;
            gate()?;
        }
        let done = execute(state, op, params, acct, now)?;
        if op == Op::OrderPlace {
            state.meter.count_order(acct, now);
        }
        Ok(done)
    })();
    let usage = state.meter.usage(account.as_deref(), now);
    let (result, events) = match result {
        Ok((body, events)) => (Ok(body), events),
        Err(e) => (Err(e), Vec::new()),
    };
    Handled {
        result,
        usage,
        events,
    }
}

fn execute(
    state: &mut State,
    op: Op,
    params: &Params,
    account: &str,
    now: u64,
) -> Result<(Body, Vec<ExecEvent>), ApiError> {
    match op {
        Op::Ping => Ok((Body::empty(), Vec::new())),
        Op::Time => Ok((
            Body::ServerTime(json::ServerTime { server_time: now }),
            Vec::new(),
        )),
        Op::ExchangeInfo => {
            let limiters = state.meter.limits.limiters();
            Ok((
                exchange_info(&state.engine, &limiters, params, now)?,
                Vec::new(),
            ))
        }
        Op::OrderPlace => place(&mut state.engine, params, account, now),
        Op::OrderCancel => {
            let symbol = params.require("symbol")?;
            let (order_id, orig) = order_ref(params)?;
            let new_id = client_id(params, "newClientOrderId")?;
            let c = state
                .engine
                .cancel(account, symbol, order_id, orig, new_id, now)?;
            let body = Body::Cancel(json::CancelResponse::new(
                &c.order,
                &c.cancel_client_id,
                c.transact_time,
            ));
            Ok((body, c.events))
        }
        Op::OrderStatus => {
            let symbol = params.require("symbol")?;
            let (order_id, orig) = order_ref(params)?;
            let e = state.engine.order_status(account, symbol, order_id, orig)?;
            Ok((Body::Order(json::OrderQuery::new(&e.order)), Vec::new()))
        }
        Op::OpenOrders => {
            let orders = state.engine.open_orders(account, params.value("symbol"))?;
            Ok((
                Body::Orders(orders.into_iter().map(json::OrderQuery::new).collect()),
                Vec::new(),
            ))
        }
        Op::AllOrders => Ok((all_orders(&state.engine, params, account)?, Vec::new())),
        Op::MyTrades => Ok((my_trades(&state.engine, params, account)?, Vec::new())),
    }
}

/// `allOrders`: the account's orders on one symbol, open or not, in order
/// id order. With `orderId`, orders with id >= it (the oldest `limit`);
/// with `startTime`/`endTime`, those created in that window; otherwise the
/// most recent `limit` (default 500, at most 1000).
fn all_orders(engine: &Engine, params: &Params, account: &str) -> Result<Body, ApiError> {
    let symbol = params.require("symbol")?;
    let order_id = uint_param(params, "orderId")?;
    let start = time_param(params, "startTime")?;
    let end = time_param(params, "endTime")?;
    let limit = history_limit(params)?;
    check_window(start, end)?;
    let picked: Vec<&Order> = engine
        .all_orders(account, symbol)?
        .into_iter()
        .filter(|o| {
            order_id.is_none_or(|id| o.order_id >= id)
                && start.is_none_or(|s| o.time >= s)
                && end.is_none_or(|e| o.time <= e)
        })
        .collect();
    let newest = order_id.is_none() && start.is_none();
    let skip = if newest {
        picked.len().saturating_sub(limit)
    } else {
        0
    };
    Ok(Body::Orders(
        picked
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(json::OrderQuery::new)
            .collect(),
    ))
}

/// `myTrades` limits: default 500, maximum 1000 (a larger `limit` is
/// served as 1000).
const TRADES_DEFAULT_LIMIT: usize = 500;
const TRADES_MAX_LIMIT: usize = 1000;
/// The longest `startTime`..`endTime` window: 24 hours.
const TRADES_MAX_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

/// `limit` of a history query (`myTrades`, `allOrders`): default 500,
/// at most 1000 (a larger one is served as 1000), never 0.
fn history_limit(params: &Params) -> Result<usize, ApiError> {
    match uint_param(params, "limit")? {
        None => Ok(TRADES_DEFAULT_LIMIT),
        Some(0) => Err(ApiError::new(
            -1130,
            "Data sent for parameter 'limit' is not valid.",
        )),
        Some(n) => Ok(usize::try_from(n).map_or(TRADES_MAX_LIMIT, |n| n.min(TRADES_MAX_LIMIT))),
    }
}

/// A `startTime`..`endTime` window may span 24 hours at most.
fn check_window(start: Option<u64>, end: Option<u64>) -> Result<(), ApiError> {
    match (start, end) {
        (Some(s), Some(e)) if e.saturating_sub(s) > TRADES_MAX_WINDOW_MS => Err(ApiError::new(
            -1127,
            "More than 24 hours between startTime and endTime.",
        )),
        _ => Ok(()),
    }
}

/// An optional unsigned integer parameter.
fn uint_param(params: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .value(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::illegal(name, "^[0-9]{1,20}$"))
        })
        .transpose()
}

/// A time parameter in milliseconds (16-digit values are microseconds,
/// as for `timestamp`).
fn time_param(params: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    Ok(uint_param(params, name)?.map(|t| {
        if t >= 1_000_000_000_000_000 {
            t / 1000
        } else {
            t
        }
    }))
}

/// `myTrades`: the account's own trades on one symbol, in trade id order.
/// With `orderId`, that order's trades (from `fromId` on, if sent); with
/// `fromId`, trades with id >= `fromId`; with `startTime`/`endTime`, the
/// trades executed in that window (the oldest `limit` of it, or the newest
/// when only `endTime` is sent); otherwise the most recent `limit`.
fn my_trades(engine: &Engine, params: &Params, account: &str) -> Result<Body, ApiError> {
    let symbol = params.require("symbol")?;
    let order_id = uint_param(params, "orderId")?;
    let from_id = uint_param(params, "fromId")?;
    let start = time_param(params, "startTime")?;
    let end = time_param(params, "endTime")?;
    let limit = history_limit(params)?;
    let windowed = start.is_some() || end.is_some();
    if windowed && (from_id.is_some() || order_id.is_some()) {
        return Err(ApiError::new(
            -1128,
            "Combination of optional parameters invalid.",
        ));
    }
    check_window(start, end)?;
    let trades = engine.trades_of(account, symbol)?;
    let picked: Vec<_> = trades
        .into_iter()
        .filter(|(o, t)| {
            order_id.is_none_or(|id| o.order_id == id)
                && from_id.is_none_or(|id| t.trade_id >= id)
                && start.is_none_or(|s| t.time >= s)
                && end.is_none_or(|e| t.time <= e)
        })
        .collect();
    let newest = !(order_id.is_some() || from_id.is_some() || start.is_some());
    let skip = if newest {
        picked.len().saturating_sub(limit)
    } else {
        0
    };
    Ok(Body::Trades(
        picked
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(|(o, t)| json::MyTrade::new(o, t))
            .collect(),
    ))
}

fn exchange_info(
    engine: &Engine,
    limiters: &[json::Limiter],
    params: &Params,
    now: u64,
) -> Result<Body, ApiError> {
    let mut names: Vec<String> = Vec::new();
    if let Some(s) = params.value("symbol") {
        names.push(s.to_owned());
    }
    if let Some(list) = params.value("symbols") {
        let list: Vec<String> =
            serde_json::from_str(list).map_err(|_| ApiError::mandatory("symbols"))?;
        names.extend(list);
    }
    if names.is_empty() {
        return Ok(Body::ExchangeInfo(json::ExchangeInfo::new(
            now,
            limiters,
            engine.specs(),
        )));
    }
    let specs = names
        .iter()
        .map(|n| engine.spec(n).ok_or(Reject::InvalidSymbol))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Body::ExchangeInfo(json::ExchangeInfo::new(
        now, limiters, specs,
    )))
}

/// `orderId` and/or `origClientOrderId`, at least one.
fn order_ref(params: &Params) -> Result<(Option<u64>, Option<&str>), ApiError> {
    let order_id = match params.value("orderId") {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::illegal("orderId", "^[0-9]{1,20}$"))?,
        ),
        None => None,
    };
    if params.get("origClientOrderId") == Some("") {
        return Err(ApiError::new(-1119, "Original client order ID was empty."));
    }
    let orig = params.value("origClientOrderId");
    if order_id.is_none() && orig.is_none() {
        return Err(ApiError::new(
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        ));
    }
    Ok((order_id, orig))
}

fn client_id(params: &Params, name: &str) -> Result<Option<String>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some("") => Err(ApiError::new(-1118, "New client order ID was empty.")),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// A decimal parameter at `scale`: illegal text is -1100; a value finer
/// than the scale fails the filter that owns that scale.
fn decimal_param(
    params: &Params,
    name: &str,
    scale: u8,
    too_fine: Reject,
) -> Result<Option<i128>, ApiError> {
    let Some(v) = params.value(name) else {
        return Ok(None);
    };
    let legal = v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let d = Amount::parse(v)
        .ok()
        .filter(|_| legal)
        .ok_or_else(|| ApiError::illegal(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$"))?;
    let m = d.at(scale).ok_or(too_fine)?;
    Ok(Some(m))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RespType {
    Ack,
    Result,
    Full,
}

fn place(
    engine: &mut Engine,
    params: &Params,
    account: &str,
    now: u64,
) -> Result<(Body, Vec<ExecEvent>), ApiError> {
    let symbol = params.require("symbol")?;
    let side = params.require("side")?;
    let kind = params.require("type")?;
    let side = Side::parse(side).ok_or_else(|| ApiError::new(-1117, "Invalid side."))?;
    let order_type = match kind {
        "LIMIT" => OrderType::Limit,
        "MARKET" => OrderType::Market,
        "LIMIT_MAKER" => OrderType::LimitMaker,
        "STOP_LOSS" | "STOP_LOSS_LIMIT" | "TAKE_PROFIT" | "TAKE_PROFIT_LIMIT" => {
            return Err(ApiError::new(-1014, "Unsupported order combination."))
        }
        _ => return Err(ApiError::new(-1116, "Invalid orderType.")),
    };
    let tif = match params.value("timeInForce") {
        Some(t) => Some(
            TimeInForce::parse(t).ok_or_else(|| ApiError::new(-1115, "Invalid timeInForce."))?,
        ),
        None => None,
    };
    let resp = match params.value("newOrderRespType") {
        None if order_type == OrderType::LimitMaker => RespType::Ack,
        None => RespType::Full,
        Some("ACK") => RespType::Ack,
        Some("RESULT") => RespType::Result,
        Some("FULL") => RespType::Full,
        Some(_) => return Err(ApiError::new(-1136, "Invalid newOrderRespType.")),
    };
    let spec = engine.spec(symbol).ok_or(Reject::InvalidSymbol)?;
    let sc = spec.scales;
    let price = decimal_param(
        params,
        "price",
        sc.price_scale,
        Reject::Filter("PRICE_FILTER"),
    )?;
    let qty = decimal_param(params, "quantity", sc.qty_scale, Reject::Filter("LOT_SIZE"))?;
    let quote_qty = match params.value("quoteOrderQty") {
        Some(_) => decimal_param(
            params,
            "quoteOrderQty",
            sc.notional_scale(),
            Reject::Filter("NOTIONAL"),
        )
        .map_err(|e| {
            if e.code == -1013 {
                ApiError::new(-1111, "Parameter 'quoteOrderQty' has too much precision.")
            } else {
                e
            }
        })?,
        None => None,
    };
    let time_in_force = match order_type {
        OrderType::Limit => {
            let tif = tif.ok_or_else(|| ApiError::mandatory("timeInForce"))?;
            qty.ok_or_else(|| ApiError::mandatory("quantity"))?;
            price.ok_or_else(|| ApiError::mandatory("price"))?;
            if quote_qty.is_some() {
                return Err(ApiError::not_required("quoteOrderQty"));
            }
            tif
        }
        OrderType::LimitMaker => {
            qty.ok_or_else(|| ApiError::mandatory("quantity"))?;
            price.ok_or_else(|| ApiError::mandatory("price"))?;
            if tif.is_some() {
                return Err(ApiError::not_required("timeInForce"));
            }
            TimeInForce::Gtc
        }
        OrderType::Market => {
            match (qty, quote_qty) {
                (None, None) => return Err(ApiError::new(
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )),
                (Some(_), Some(_)) => return Err(ApiError::not_required("quoteOrderQty")),
                _ => {}
            }
            if price.is_some() {
                return Err(ApiError::not_required("price"));
            }
            if tif.is_some() {
                return Err(ApiError::not_required("timeInForce"));
            }
            TimeInForce::Gtc
        }
    };
    let narrow = |v: Option<i128>| v.map(|m| i64::try_from(m).unwrap_or(i64::MAX));
    let req = NewOrder {
        account: account.to_owned(),
        symbol: symbol.to_owned(),
        side,
        order_type,
        time_in_force,
        price: narrow(price),
        qty: narrow(qty),
        quote_qty,
        client_order_id: client_id(params, "newClientOrderId")?,
    };
    let placed = engine.place(req, now)?;
    let body = match resp {
        RespType::Ack => Body::OrderAck(json::OrderAck::new(&placed.order, now)),
        RespType::Result => Body::OrderResult(json::OrderResult::new(&placed.order, now)),
        RespType::Full => {
            Body::OrderResult(json::OrderResult::full(&placed.order, now, &placed.fills))
        }
    };
    Ok((body, placed.events))
}
