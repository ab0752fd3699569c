//! Response and event builders, field for field in the order of the
//! official samples (serde_json's map would sort the keys).

use super::engine::{ExecEvent, ExecType, Order, SymbolSpec, Trade};

/// A JSON object written in insertion order.
pub struct Obj {
    buf: String,
    empty: bool,
}

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

impl Obj {
    pub fn new() -> Obj {
        Obj {
            buf: String::from("{"),
            empty: true,
        }
    }
    fn key(&mut self, k: &str) {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        push_str_lit(&mut self.buf, k);
        self.buf.push(':');
    }
    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        push_str_lit(&mut self.buf, v);
        self
    }
    pub fn int(mut self, k: &str, v: i64) -> Obj {
        self.key(k);
        self.buf.push_str(&v.to_string());
        self
    }
    pub fn uint(mut self, k: &str, v: u64) -> Obj {
        self.key(k);
        self.buf.push_str(&v.to_string());
        self
    }
    pub fn bool(mut self, k: &str, v: bool) -> Obj {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }
    pub fn null(mut self, k: &str) -> Obj {
        self.key(k);
        self.buf.push_str("null");
        self
    }
    /// Inserts already-serialized JSON.
    pub fn raw(mut self, k: &str, json: &str) -> Obj {
        self.key(k);
        self.buf.push_str(json);
        self
    }
    pub fn opt_str(self, k: &str, v: Option<&str>) -> Obj {
        match v {
            Some(v) => self.str(k, v),
            None => self,
        }
    }
    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

/// A JSON array of already-serialized values.
pub fn array<I: IntoIterator<Item = String>>(items: I) -> String {
    let mut s = String::from("[");
    for (i, it) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&it);
    }
    s.push(']');
    s
}

fn push_str_lit(buf: &mut String, s: &str) {
    // Serializing a &str cannot fail.
    buf.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// The JSON value text of a string (quoted and escaped).
pub fn string(s: &str) -> String {
    let mut b = String::new();
    push_str_lit(&mut b, s);
    b
}

const STP_MODE: &str = "NONE";

/// `newOrderRespType=ACK`.
pub fn order_ack(o: &Order, transact_time: u64) -> String {
    Obj::new()
        .str("symbol", &o.symbol)
        .uint("orderId", o.order_id)
        .int("orderListId", -1)
        .str("clientOrderId", &o.client_order_id)
        .uint("transactTime", transact_time)
        .finish()
}

fn result_fields(o: &Order, transact_time: u64) -> Obj {
    let s = o.scales;
    Obj::new()
        .str("symbol", &o.symbol)
        .uint("orderId", o.order_id)
        .int("orderListId", -1)
        .str("clientOrderId", &o.client_order_id)
        .uint("transactTime", transact_time)
        .str("price", &s.fmt_price(o.price))
        .str("origQty", &s.fmt_qty(o.orig_qty))
        .str("executedQty", &s.fmt_qty(o.executed_qty))
        .str("origQuoteOrderQty", &s.fmt_quote(o.orig_quote_qty))
        .str("cummulativeQuoteQty", &s.fmt_quote(o.cum_quote_qty))
        .str("status", o.status.as_str())
        .str("timeInForce", o.time_in_force.as_str())
        .str("type", o.order_type.as_str())
        .str("side", o.side.as_str())
        .uint("workingTime", o.working_time)
        .str("selfTradePreventionMode", STP_MODE)
        .opt_str("expiryReason", o.expiry_reason)
}

/// `newOrderRespType=RESULT`.
pub fn order_result(o: &Order, transact_time: u64) -> String {
    result_fields(o, transact_time).finish()
}

/// `newOrderRespType=FULL`: RESULT plus the trades made while placing.
pub fn order_full(o: &Order, transact_time: u64, fills: &[Trade]) -> String {
    let fills = array(fills.iter().map(|t| fill(o, t)));
    result_fields(o, transact_time)
        .raw("fills", &fills)
        .finish()
}

fn fill(o: &Order, t: &Trade) -> String {
    let s = o.scales;
    Obj::new()
        .str("price", &s.fmt_price(t.price))
        .str("qty", &s.fmt_qty(t.qty))
        .str("commission", &s.fmt_commission(t.commission))
        .str("commissionAsset", &t.commission_asset)
        .uint("tradeId", t.trade_id)
        .finish()
}

/// The answer to a cancel (`order.cancel`, `DELETE /api/v3/order`).
pub fn cancel_response(o: &Order, cancel_client_id: &str, transact_time: u64) -> String {
    let s = o.scales;
    Obj::new()
        .str("symbol", &o.symbol)
        .str("origClientOrderId", &o.client_order_id)
        .uint("orderId", o.order_id)
        .int("orderListId", -1)
        .str("clientOrderId", cancel_client_id)
        .uint("transactTime", transact_time)
        .str("price", &s.fmt_price(o.price))
        .str("origQty", &s.fmt_qty(o.orig_qty))
        .str("executedQty", &s.fmt_qty(o.executed_qty))
        .str("origQuoteOrderQty", &s.fmt_quote(o.orig_quote_qty))
        .str("cummulativeQuoteQty", &s.fmt_quote(o.cum_quote_qty))
        .str("status", o.status.as_str())
        .str("timeInForce", o.time_in_force.as_str())
        .str("type", o.order_type.as_str())
        .str("side", o.side.as_str())
        .str("selfTradePreventionMode", STP_MODE)
        .finish()
}

/// An order as `order.status` / `openOrders.status` report it.
pub fn order_query(o: &Order) -> String {
    let s = o.scales;
    Obj::new()
        .str("symbol", &o.symbol)
        .uint("orderId", o.order_id)
        .int("orderListId", -1)
        .str("clientOrderId", &o.client_order_id)
        .str("price", &s.fmt_price(o.price))
        .str("origQty", &s.fmt_qty(o.orig_qty))
        .str("executedQty", &s.fmt_qty(o.executed_qty))
        .str("cummulativeQuoteQty", &s.fmt_quote(o.cum_quote_qty))
        .str("status", o.status.as_str())
        .str("timeInForce", o.time_in_force.as_str())
        .str("type", o.order_type.as_str())
        .str("side", o.side.as_str())
        .str("stopPrice", &s.fmt_price(0))
        .str("icebergQty", &s.fmt_qty(0))
        .uint("time", o.time)
        .uint("updateTime", o.update_time)
        .bool("isWorking", true)
        .uint("workingTime", o.working_time)
        .str("origQuoteOrderQty", &s.fmt_quote(o.orig_quote_qty))
        .str("selfTradePreventionMode", STP_MODE)
        .opt_str("expiryReason", o.expiry_reason)
        .finish()
}

/// The `executionReport` event object (without the subscription wrapper).
pub fn execution_report(ev: &ExecEvent, event_time: u64) -> String {
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
    let obj = Obj::new()
        .str("e", "executionReport")
        .uint("E", event_time)
        .str("s", &o.symbol)
        .str("c", c)
        .str("S", o.side.as_str())
        .str("o", o.order_type.as_str())
        .str("f", o.time_in_force.as_str())
        .str("q", &s.fmt_qty(o.orig_qty))
        .str("p", &s.fmt_price(o.price))
        .str("P", &s.fmt_price(0))
        .str("F", &s.fmt_qty(0))
        .int("g", -1)
        .str("C", orig)
        .str("x", ev.exec_type.as_str())
        .str("X", o.status.as_str())
        .str("r", "NONE")
        .uint("i", o.order_id)
        .str("l", &s.fmt_qty(l))
        .str("z", &s.fmt_qty(o.executed_qty))
        .str("L", &s.fmt_price(lp));
    let obj = match &ev.trade {
        Some(t) => obj
            .str("n", &s.fmt_commission(t.commission))
            .str("N", &t.commission_asset),
        None => obj.str("n", "0").null("N"),
    };
    let obj = obj
        .uint("T", ev.transact_time)
        .int("t", trade_id)
        .uint("I", ev.execution_id)
        .bool("w", ev.on_book)
        .bool("m", maker)
        .bool("M", ev.exec_type == ExecType::Trade)
        .uint("O", o.time)
        .str("Z", &s.fmt_quote(o.cum_quote_qty))
        .str("Y", &s.fmt_quote(lq))
        .str("Q", &s.fmt_quote(o.orig_quote_qty))
        .uint("W", o.working_time)
        .str("V", STP_MODE);
    let reason = if ev.exec_type == ExecType::Expired {
        o.expiry_reason
    } else {
        None
    };
    obj.opt_str("eR", reason).finish()
}

/// A user data event as the WebSocket API delivers it.
pub fn subscription_event(subscription_id: u64, event: &str) -> String {
    Obj::new()
        .uint("subscriptionId", subscription_id)
        .raw("event", event)
        .finish()
}

/// The connection-level `serverShutdown` event.
pub fn server_shutdown(event_time: u64) -> String {
    let ev = Obj::new()
        .str("e", "serverShutdown")
        .uint("E", event_time)
        .finish();
    Obj::new().raw("event", &ev).finish()
}

/// A rate limiter, as in exchangeInfo (`count` is None) and in WebSocket
/// responses (`count` is the current usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limiter {
    pub kind: &'static str,
    pub interval: &'static str,
    pub interval_num: u32,
    pub limit: u64,
}

impl Limiter {
    pub fn json(&self, count: Option<u64>) -> String {
        let o = Obj::new()
            .str("rateLimitType", self.kind)
            .str("interval", self.interval)
            .uint("intervalNum", self.interval_num as u64)
            .uint("limit", self.limit);
        match count {
            Some(c) => o.uint("count", c).finish(),
            None => o.finish(),
        }
    }
}

fn filters(s: &SymbolSpec) -> String {
    let sc = s.scales;
    let price = |m: i64| sc.fmt_price(m);
    let qty = |m: i64| sc.fmt_qty(m);
    array([
        Obj::new()
            .str("filterType", "PRICE_FILTER")
            .str("minPrice", &price(s.min_price))
            .str("maxPrice", &price(s.max_price))
            .str("tickSize", &price(s.tick_size))
            .finish(),
        Obj::new()
            .str("filterType", "LOT_SIZE")
            .str("minQty", &qty(s.min_qty))
            .str("maxQty", &qty(s.max_qty))
            .str("stepSize", &qty(s.step_size))
            .finish(),
        Obj::new()
            .str("filterType", "MARKET_LOT_SIZE")
            .str("minQty", &qty(s.market_min_qty))
            .str("maxQty", &qty(s.market_max_qty))
            .str("stepSize", &qty(s.market_step_size))
            .finish(),
        Obj::new()
            .str("filterType", "NOTIONAL")
            .str("minNotional", &sc.fmt_quote(s.min_notional))
            .bool("applyMinToMarket", s.apply_min_to_market)
            .str("maxNotional", &sc.fmt_quote(s.max_notional))
            .bool("applyMaxToMarket", s.apply_max_to_market)
            .uint("avgPriceMins", s.avg_price_mins as u64)
            .finish(),
    ])
}

fn symbol_info(s: &SymbolSpec) -> String {
    let order_types = array(["LIMIT", "LIMIT_MAKER", "MARKET"].iter().map(|t| string(t)));
    let p = s.scales;
    Obj::new()
        .str("symbol", &s.symbol)
        .str("status", "TRADING")
        .str("baseAsset", &s.base_asset)
        .uint("baseAssetPrecision", p.base_precision as u64)
        .str("quoteAsset", &s.quote_asset)
        .uint("quotePrecision", p.quote_precision as u64)
        .uint("quoteAssetPrecision", p.quote_precision as u64)
        .uint("baseCommissionPrecision", p.base_precision as u64)
        .uint("quoteCommissionPrecision", p.quote_precision as u64)
        .raw("orderTypes", &order_types)
        .bool("icebergAllowed", false)
        .bool("ocoAllowed", false)
        .bool("otoAllowed", false)
        .bool("quoteOrderQtyMarketAllowed", true)
        .bool("allowTrailingStop", false)
        .bool("cancelReplaceAllowed", false)
        .bool("amendAllowed", false)
        .bool("pegInstructionsAllowed", false)
        .bool("isSpotTradingAllowed", true)
        .bool("isMarginTradingAllowed", false)
        .raw("filters", &filters(s))
        .raw("permissions", "[]")
        .raw("permissionSets", "[[\"SPOT\"]]")
        .str("defaultSelfTradePreventionMode", STP_MODE)
        .raw("allowedSelfTradePreventionModes", "[\"NONE\"]")
        .finish()
}

/// `exchangeInfo` for the given symbols.
pub fn exchange_info<'a>(
    server_time: u64,
    limiters: &[Limiter],
    symbols: impl IntoIterator<Item = &'a SymbolSpec>,
) -> String {
    Obj::new()
        .str("timezone", "UTC")
        .uint("serverTime", server_time)
        .raw("rateLimits", &array(limiters.iter().map(|l| l.json(None))))
        .raw("exchangeFilters", "[]")
        .raw("symbols", &array(symbols.into_iter().map(symbol_info)))
        .finish()
}

/// `{"serverTime": ...}`.
pub fn server_time(t: u64) -> String {
    Obj::new().uint("serverTime", t).finish()
}

/// The error object `{"code":..,"msg":..}`.
pub fn error(code: i64, msg: &str) -> String {
    Obj::new().int("code", code).str("msg", msg).finish()
}
