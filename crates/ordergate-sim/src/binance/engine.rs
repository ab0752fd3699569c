//! The simulated Binance Spot matching engine and ledger.
//!
//! Pure and deterministic: every call takes the simulated server time `now`
//! (milliseconds) and randomness comes from a seeded [`SplitMix64`], so a
//! run replays exactly from its seed. The "market" is a settable reference
//! price per symbol: our LIMIT orders rest against it and fill when it moves
//! through them; MARKET and crossing LIMIT orders take liquidity at it.
//!
//! Amounts are mantissas: prices at the symbol's price scale (from its tick
//! size), quantities at its quantity scale (from its step size), quote
//! amounts at `price_scale + qty_scale`, commissions at the quote asset's
//! precision. Nothing is ever a float.

use std::collections::HashMap;

use super::amount::{self, ten_to as pow10, AmountError as DecimalError};

/// Order side, as Binance spells it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "BUY" => Some(Side::Buy),
            "SELL" => Some(Side::Sell),
            _ => None,
        }
    }
}

/// The order types the simulator executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderType {
    Limit,
    Market,
    LimitMaker,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Limit => "LIMIT",
            OrderType::Market => "MARKET",
            OrderType::LimitMaker => "LIMIT_MAKER",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeInForce {
    Gtc,
    Ioc,
    Fok,
}

impl TimeInForce {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "GTC",
            TimeInForce::Ioc => "IOC",
            TimeInForce::Fok => "FOK",
        }
    }
    pub fn parse(s: &str) -> Option<TimeInForce> {
        match s {
            "GTC" => Some(TimeInForce::Gtc),
            "IOC" => Some(TimeInForce::Ioc),
            "FOK" => Some(TimeInForce::Fok),
            _ => None,
        }
    }
}

/// Order status (`X`, `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::PartiallyFilled => "PARTIALLY_FILLED",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Canceled => "CANCELED",
            OrderStatus::Expired => "EXPIRED",
        }
    }
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }
}

/// Execution type (`x`) of an `executionReport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecType {
    New,
    Trade,
    Canceled,
    Expired,
}

impl ExecType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecType::New => "NEW",
            ExecType::Trade => "TRADE",
            ExecType::Canceled => "CANCELED",
            ExecType::Expired => "EXPIRED",
        }
    }
}

/// Expiry reasons (`eR`, `expiryReason`) from the enums page.
pub const UNFILLED_IOC_QUANTITY_EXPIRED: &str = "UNFILLED_IOC_QUANTITY_EXPIRED";
pub const UNFILLED_FOK_ORDER_EXPIRED: &str = "UNFILLED_FOK_ORDER_EXPIRED";

/// Why the engine refused a request; each maps to one documented Binance
/// error code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("Invalid symbol.")]
    InvalidSymbol,
    #[error("Filter failure: {0}")]
    Filter(&'static str),
    #[error("Duplicate order sent.")]
    DuplicateOrder,
    #[error("Order would immediately match and take.")]
    WouldMatch,
    #[error("Unknown order sent.")]
    UnknownOrder,
    #[error("Order does not exist.")]
    NoSuchOrder,
}

impl Reject {
    /// The Binance error code for this rejection.
    pub fn code(&self) -> i64 {
        match self {
            Reject::InvalidSymbol => -1121,
            Reject::Filter(_) => -1013,
            Reject::DuplicateOrder | Reject::WouldMatch => -2010,
            Reject::UnknownOrder => -2011,
            Reject::NoSuchOrder => -2013,
        }
    }
}

/// A configuration value the engine cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("symbol {symbol}: {field}: {source}")]
    Decimal {
        symbol: String,
        field: &'static str,
        source: DecimalError,
    },
    #[error("symbol {symbol}: {detail}")]
    Invalid { symbol: String, detail: String },
}

/// Digits after the point in the formatted amounts of a symbol: prices at
/// `price_scale`, quantities at `qty_scale`; on the wire quantities are
/// written at the base asset precision and prices and quote amounts at the
/// quote asset precision, as Binance does ("0.01000000").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scales {
    pub price_scale: u8,
    pub qty_scale: u8,
    pub base_precision: u8,
    pub quote_precision: u8,
}

impl Scales {
    /// Scale of `price * qty`.
    pub fn notional_scale(self) -> u8 {
        self.price_scale + self.qty_scale
    }
    pub fn fmt_price(self, m: i64) -> String {
        rescale_fmt(m as i128, self.price_scale, self.quote_precision)
    }
    pub fn fmt_qty(self, m: i64) -> String {
        rescale_fmt(m as i128, self.qty_scale, self.base_precision)
    }
    /// A quote amount at the notional scale.
    pub fn fmt_quote(self, m: i128) -> String {
        rescale_fmt(m, self.notional_scale(), self.quote_precision)
    }
    /// A commission, already at the quote precision.
    pub fn fmt_commission(self, m: i128) -> String {
        amount::write(m, self.quote_precision)
    }
}

/// Writes `m / 10^from` with `to >= from` digits (checked at config time).
fn rescale_fmt(m: i128, from: u8, to: u8) -> String {
    amount::write(m * pow10(to.saturating_sub(from)), to.max(from))
}

/// One symbol and its filters. Mantissas at the symbol's scales; a zero
/// bound disables that check, as in the filter docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolSpec {
    pub symbol: String,
    pub base_asset: String,
    pub quote_asset: String,
    pub scales: Scales,
    pub tick_size: i64,
    pub min_price: i64,
    pub max_price: i64,
    pub step_size: i64,
    pub min_qty: i64,
    pub max_qty: i64,
    /// MARKET_LOT_SIZE; a zero step size means "no step check".
    pub market_min_qty: i64,
    pub market_max_qty: i64,
    pub market_step_size: i64,
    /// NOTIONAL, at the notional scale.
    pub min_notional: i128,
    pub max_notional: i128,
    pub apply_min_to_market: bool,
    pub apply_max_to_market: bool,
    pub avg_price_mins: u32,
}

/// The decimal strings a symbol is configured from (exchangeInfo style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolConfig {
    pub symbol: String,
    pub base_asset: String,
    pub quote_asset: String,
    pub base_precision: u8,
    pub quote_precision: u8,
    pub tick_size: String,
    pub min_price: String,
    pub max_price: String,
    pub step_size: String,
    pub min_qty: String,
    pub max_qty: String,
    pub market_max_qty: String,
    pub min_notional: String,
    pub max_notional: String,
    /// The starting reference price (the "market").
    pub reference_price: String,
}

impl SymbolConfig {
    #[allow(clippy::too_many_arguments)]
    fn new(
        symbol: &str,
        base: &str,
        quote: &str,
        base_precision: u8,
        tick: &str,
        max_price: &str,
        step: &str,
        max_qty: &str,
        market_max_qty: &str,
        reference_price: &str,
    ) -> Self {
        SymbolConfig {
            symbol: symbol.into(),
            base_asset: base.into(),
            quote_asset: quote.into(),
            base_precision,
            quote_precision: 8,
            tick_size: tick.into(),
            min_price: tick.into(),
            max_price: max_price.into(),
            step_size: step.into(),
            min_qty: step.into(),
            max_qty: max_qty.into(),
            market_max_qty: market_max_qty.into(),
            min_notional: "5".into(),
            max_notional: "9000000".into(),
            reference_price: reference_price.into(),
        }
    }

    /// BTCUSDT, ETHUSDT and SHIBUSDT with the filter values Binance lists
    /// for them (SHIB: 8-decimal prices, whole-unit quantities, base asset
    /// precision 2).
    pub fn defaults() -> Vec<SymbolConfig> {
        vec![
            SymbolConfig::new(
                "BTCUSDT", "BTC", "USDT", 8, "0.01", "1000000", "0.00001", "9000", "100",
                "60000.00",
            ),
            SymbolConfig::new(
                "ETHUSDT", "ETH", "USDT", 8, "0.01", "1000000", "0.0001", "9000", "2000", "3000.00",
            ),
            SymbolConfig::new(
                "SHIBUSDT",
                "SHIB",
                "USDT",
                2,
                "0.00000001",
                "1",
                "1",
                "92233720368",
                "30000000000",
                "0.00001500",
            ),
        ]
    }

    /// Builds the spec and the starting reference price.
    pub fn build(&self) -> Result<(SymbolSpec, i64), SpecError> {
        let sym = || self.symbol.clone();
        let scale = |field: &'static str, s: &str| {
            amount::places_of(s).map_err(|source| SpecError::Decimal {
                symbol: sym(),
                field,
                source,
            })
        };
        let price_scale = scale("tickSize", &self.tick_size)?;
        let qty_scale = scale("stepSize", &self.step_size)?;
        let scales = Scales {
            price_scale,
            qty_scale,
            base_precision: self.base_precision,
            quote_precision: self.quote_precision,
        };
        if qty_scale > self.base_precision
            || price_scale > self.quote_precision
            || scales.notional_scale() > self.quote_precision
        {
            return Err(SpecError::Invalid {
                symbol: sym(),
                detail: format!(
                    "price scale {price_scale} + quantity scale {qty_scale} must fit the quote \
                     precision {} (and quantity scale the base precision {}) so amounts stay exact",
                    self.quote_precision, self.base_precision
                ),
            });
        }
        let fixed = |field: &'static str, s: &str, sc: u8| {
            amount::parse_at(s, sc).map_err(|source| SpecError::Decimal {
                symbol: sym(),
                field,
                source,
            })
        };
        let ns = scales.notional_scale();
        let notional = |field: &'static str, s: &str| fixed(field, s, ns).map(|v| v as i128);
        let spec = SymbolSpec {
            symbol: self.symbol.clone(),
            base_asset: self.base_asset.clone(),
            quote_asset: self.quote_asset.clone(),
            scales,
            tick_size: fixed("tickSize", &self.tick_size, price_scale)?,
            min_price: fixed("minPrice", &self.min_price, price_scale)?,
            max_price: fixed("maxPrice", &self.max_price, price_scale)?,
            step_size: fixed("stepSize", &self.step_size, qty_scale)?,
            min_qty: fixed("minQty", &self.min_qty, qty_scale)?,
            max_qty: fixed("maxQty", &self.max_qty, qty_scale)?,
            market_min_qty: 0,
            market_max_qty: fixed("MARKET_LOT_SIZE maxQty", &self.market_max_qty, qty_scale)?,
            market_step_size: 0,
            min_notional: notional("minNotional", &self.min_notional)?,
            max_notional: notional("maxNotional", &self.max_notional)?,
            apply_min_to_market: true,
            apply_max_to_market: false,
            avg_price_mins: 5,
        };
        let reference = fixed("reference price", &self.reference_price, price_scale)?;
        if spec.tick_size <= 0 || spec.step_size <= 0 || reference <= 0 {
            return Err(SpecError::Invalid {
                symbol: sym(),
                detail: "tick size, step size and reference price must be positive".into(),
            });
        }
        Ok((spec, reference))
    }
}

/// splitmix64: tiny, seedable, good enough to pick fill sizes.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u16) -> bool {
        self.below(1000) < per_mille as u64
    }
}

/// How liquid the simulated market is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillModel {
    pub seed: u64,
    /// Chance (‰) that a taker order finds only 10–90 % of its quantity:
    /// MARKET and IOC remainders then expire, GTC remainders rest, FOK
    /// expires unfilled.
    pub taker_partial_per_mille: u16,
    /// Chance (‰) that a resting order the reference price crosses fills
    /// only partly (the rest keeps resting).
    pub maker_partial_per_mille: u16,
    /// Each match is split into 1..=this many trades (TRADE events).
    pub max_trades_per_match: u8,
}

impl Default for FillModel {
    fn default() -> Self {
        FillModel {
            seed: 1,
            taker_partial_per_mille: 250,
            maker_partial_per_mille: 250,
            max_trades_per_match: 3,
        }
    }
}

impl FillModel {
    /// Every match fills completely in one trade: for tests that want a
    /// fixed event sequence.
    pub fn full() -> Self {
        FillModel {
            seed: 1,
            taker_partial_per_mille: 0,
            maker_partial_per_mille: 0,
            max_trades_per_match: 1,
        }
    }
}

/// One execution of one of our orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    pub trade_id: u64,
    pub price: i64,
    pub qty: i64,
    /// `price * qty` at the notional scale.
    pub quote_qty: i128,
    /// At the quote asset precision.
    pub commission: i128,
    pub commission_asset: String,
    pub is_maker: bool,
    pub time: u64,
}

/// An order as the venue knows it. `price` is 0 for MARKET orders;
/// `orig_quote_qty` (quoteOrderQty) is at the notional scale, 0 if unused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub account: String,
    pub symbol: String,
    pub scales: Scales,
    pub order_id: u64,
    pub client_order_id: String,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub price: i64,
    pub orig_qty: i64,
    pub orig_quote_qty: i128,
    pub executed_qty: i64,
    pub cum_quote_qty: i128,
    pub status: OrderStatus,
    pub expiry_reason: Option<&'static str>,
    pub time: u64,
    pub update_time: u64,
    pub working_time: u64,
}

/// An order and its trades: what tests and `ordergate demo` compare with
/// what the sidecar reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub order: Order,
    pub trades: Vec<Trade>,
}

/// One `executionReport`'s worth of information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEvent {
    /// The order as it stands after this execution.
    pub order: Order,
    pub exec_type: ExecType,
    pub trade: Option<Trade>,
    /// For cancels: the cancel request's client id (`c`); the order's own
    /// id then goes in `C`.
    pub cancel_client_id: Option<String>,
    pub execution_id: u64,
    pub transact_time: u64,
    /// `w`: is the order on the book after this execution?
    pub on_book: bool,
}

/// A new order after parameter parsing. Prices and quantities are
/// mantissas at the symbol's scales; `quote_qty` at the notional scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub account: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub price: Option<i64>,
    pub qty: Option<i64>,
    pub quote_qty: Option<i128>,
    pub client_order_id: Option<String>,
}

/// The outcome of a placement: the order, the trades it made while being
/// placed (the FULL response's `fills`) and its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: Order,
    pub fills: Vec<Trade>,
    pub events: Vec<ExecEvent>,
}

/// The outcome of a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canceled {
    pub order: Order,
    pub cancel_client_id: String,
    pub transact_time: u64,
    pub events: Vec<ExecEvent>,
}

struct Book {
    spec: SymbolSpec,
    reference: i64,
    /// Every order of the symbol; order id `n` is at index `n - 1`.
    orders: Vec<LedgerEntry>,
    next_trade_id: u64,
}

/// The simulated exchange: symbols, their books of our resting orders, and
/// the ledger of every order ever placed.
pub struct Engine {
    books: Vec<Book>,
    index: HashMap<String, usize>,
    fill: FillModel,
    rng: SplitMix64,
    /// Separate stream for generated client ids, so the fill sequence of a
    /// seed does not depend on which requests carried their own ids.
    id_rng: SplitMix64,
    /// Commission rate in millionths (1000 = 0.1 %), charged in the quote
    /// asset on both sides.
    commission_ppm: i64,
    next_execution_id: u64,
}

impl Engine {
    pub fn new(
        symbols: &[SymbolConfig],
        fill: FillModel,
        commission_ppm: i64,
    ) -> Result<Engine, SpecError> {
        let mut books = Vec::with_capacity(symbols.len());
        let mut index = HashMap::new();
        for cfg in symbols {
            let (spec, reference) = cfg.build()?;
            if index.insert(spec.symbol.clone(), books.len()).is_some() {
                return Err(SpecError::Invalid {
                    symbol: spec.symbol,
                    detail: "configured twice".into(),
                });
            }
            books.push(Book {
                spec,
                reference,
                orders: Vec::new(),
                next_trade_id: 1,
            });
        }
        Ok(Engine {
            books,
            index,
            fill,
            rng: SplitMix64::new(fill.seed),
            id_rng: SplitMix64::new(fill.seed ^ 0x5EED_1D5E_ED1D_5EED),
            commission_ppm,
            next_execution_id: 1,
        })
    }

    pub fn specs(&self) -> impl Iterator<Item = &SymbolSpec> {
        self.books.iter().map(|b| &b.spec)
    }

    pub fn spec(&self, symbol: &str) -> Option<&SymbolSpec> {
        self.index.get(symbol).map(|&i| &self.books[i].spec)
    }

    pub fn reference_price(&self, symbol: &str) -> Option<i64> {
        self.index.get(symbol).map(|&i| self.books[i].reference)
    }

    fn book_index(&self, symbol: &str) -> Result<usize, Reject> {
        self.index.get(symbol).copied().ok_or(Reject::InvalidSymbol)
    }

    fn execution_id(&mut self) -> u64 {
        let id = self.next_execution_id;
        self.next_execution_id += 1;
        id
    }

    /// A 22-character id like the ones Binance generates.
    fn generate_client_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..22)
            .map(|_| ALPHABET[self.id_rng.below(ALPHABET.len() as u64) as usize] as char)
            .collect()
    }

    /// Places an order: filters, duplicate check, then NEW, trades against
    /// the reference price, and the remainder rests or expires.
    pub fn place(&mut self, req: NewOrder, now: u64) -> Result<Placed, Reject> {
        let bi = self.book_index(&req.symbol)?;
        let reference = self.books[bi].reference;
        let spec = &self.books[bi].spec;
        let qty = check_filters(spec, &req, reference)?;
        if let Some(id) = &req.client_order_id {
            let dup = self.books.iter().any(|b| {
                b.orders.iter().any(|e| {
                    e.order.status.is_open()
                        && e.order.account == req.account
                        && &e.order.client_order_id == id
                })
            });
            if dup {
                return Err(Reject::DuplicateOrder);
            }
        }
        let crosses = match (req.order_type, req.side) {
            (OrderType::Market, _) => true,
            (_, Side::Buy) => req.price.unwrap_or(0) >= reference,
            (_, Side::Sell) => req.price.unwrap_or(0) <= reference,
        };
        if req.order_type == OrderType::LimitMaker && crosses {
            return Err(Reject::WouldMatch);
        }
        let client_order_id = match req.client_order_id {
            Some(id) => id,
            None => self.generate_client_id(),
        };
        let book = &mut self.books[bi];
        let order = Order {
            account: req.account,
            symbol: req.symbol,
            scales: book.spec.scales,
            order_id: book.orders.len() as u64 + 1,
            client_order_id,
            side: req.side,
            order_type: req.order_type,
            time_in_force: req.time_in_force,
            price: req.price.unwrap_or(0),
            orig_qty: qty,
            orig_quote_qty: req.quote_qty.unwrap_or(0),
            executed_qty: 0,
            cum_quote_qty: 0,
            status: OrderStatus::New,
            expiry_reason: None,
            time: now,
            update_time: now,
            working_time: now,
        };
        book.orders.push(LedgerEntry {
            order: order.clone(),
            trades: Vec::new(),
        });
        let slot = book.orders.len() - 1;
        let mut events = vec![ExecEvent {
            order,
            exec_type: ExecType::New,
            trade: None,
            cancel_client_id: None,
            execution_id: self.execution_id(),
            transact_time: now,
            on_book: true,
        }];
        let mut fills = Vec::new();
        if crosses {
            self.take(bi, slot, now, &mut fills, &mut events);
        }
        let order = self.books[bi].orders[slot].order.clone();
        Ok(Placed {
            order,
            fills,
            events,
        })
    }

    /// Matches a taker order against the reference price.
    fn take(
        &mut self,
        bi: usize,
        slot: usize,
        now: u64,
        fills: &mut Vec<Trade>,
        events: &mut Vec<ExecEvent>,
    ) {
        let (remaining, tif, order_type, by_quote) = {
            let o = &self.books[bi].orders[slot].order;
            (
                o.orig_qty - o.executed_qty,
                o.time_in_force,
                o.order_type,
                o.orig_quote_qty > 0,
            )
        };
        let step = self.books[bi].spec.step_size;
        let available = if self.rng.chance(self.fill.taker_partial_per_mille) {
            let frac = 100 + self.rng.below(801) as i128;
            let a = (remaining as i128 * frac / 1000) as i64;
            a - a % step
        } else {
            remaining
        };
        let fok_short = tif == TimeInForce::Fok && available < remaining;
        if !fok_short && available > 0 {
            let chunks = self.split(available, step);
            for (i, q) in chunks.into_iter().enumerate() {
                let walk = if by_quote { 0 } else { i as i64 };
                let price = self.taker_price(bi, slot, walk);
                self.execute(bi, slot, price, q, false, now, fills, events);
            }
        }
        let o = &mut self.books[bi].orders[slot].order;
        if o.executed_qty == o.orig_qty {
            return;
        }
        let reason = match (order_type, tif) {
            (OrderType::Market, _) => None,
            (_, TimeInForce::Ioc) => Some(UNFILLED_IOC_QUANTITY_EXPIRED),
            (_, TimeInForce::Fok) => Some(UNFILLED_FOK_ORDER_EXPIRED),
            // A GTC remainder rests on the book.
            (_, TimeInForce::Gtc) => return,
        };
        o.status = OrderStatus::Expired;
        o.expiry_reason = reason;
        o.update_time = now;
        let order = o.clone();
        let execution_id = self.execution_id();
        events.push(ExecEvent {
            order,
            exec_type: ExecType::Expired,
            trade: None,
            cancel_client_id: None,
            execution_id,
            transact_time: now,
            on_book: false,
        });
    }

    /// Splits `qty` into 1..=max_trades_per_match positive multiples of
    /// `step`.
    fn split(&mut self, qty: i64, step: i64) -> Vec<i64> {
        let units = (qty / step) as u64;
        let max = (self.fill.max_trades_per_match.max(1) as u64).min(units);
        let n = 1 + self.rng.below(max);
        let mut left = units;
        let mut out = Vec::with_capacity(n as usize);
        for k in (1..n).rev() {
            let take = 1 + self.rng.below(left - k);
            out.push((take as i64) * step);
            left -= take;
        }
        out.push(left as i64 * step);
        out
    }

    /// The price of the `walk`-th trade of a taker: the reference price,
    /// one tick worse per further trade, never past the order's limit or
    /// the symbol's price bounds.
    fn taker_price(&self, bi: usize, slot: usize, walk: i64) -> i64 {
        let book = &self.books[bi];
        let o = &book.orders[slot].order;
        let tick = book.spec.tick_size;
        let is_limit = o.order_type != OrderType::Market;
        match o.side {
            Side::Buy => {
                let mut p = book.reference + walk * tick;
                if is_limit {
                    p = p.min(o.price);
                }
                if book.spec.max_price > 0 {
                    p = p.min(book.spec.max_price);
                }
                p
            }
            Side::Sell => {
                let mut p = book.reference - walk * tick;
                if is_limit {
                    p = p.max(o.price);
                }
                p.max(book.spec.min_price.max(tick))
            }
        }
    }

    /// Records one trade on an order and its TRADE event.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &mut self,
        bi: usize,
        slot: usize,
        price: i64,
        qty: i64,
        is_maker: bool,
        now: u64,
        fills: &mut Vec<Trade>,
        events: &mut Vec<ExecEvent>,
    ) {
        let commission_ppm = self.commission_ppm;
        let execution_id = self.execution_id();
        let book = &mut self.books[bi];
        let scales = book.spec.scales;
        let quote_qty = amount::product(price, qty);
        let commission = div_half_even(
            quote_qty
                * pow10(scales.quote_precision - scales.notional_scale())
                * commission_ppm as i128,
            1_000_000,
        );
        let trade = Trade {
            trade_id: book.next_trade_id,
            price,
            qty,
            quote_qty,
            commission,
            commission_asset: book.spec.quote_asset.clone(),
            is_maker,
            time: now,
        };
        book.next_trade_id += 1;
        let entry = &mut book.orders[slot];
        let o = &mut entry.order;
        o.executed_qty += qty;
        o.cum_quote_qty += quote_qty;
        o.update_time = now;
        o.status = if o.executed_qty == o.orig_qty {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        let on_book = o.status == OrderStatus::PartiallyFilled
            && o.order_type != OrderType::Market
            && o.time_in_force == TimeInForce::Gtc;
        entry.trades.push(trade.clone());
        fills.push(trade.clone());
        events.push(ExecEvent {
            order: entry.order.clone(),
            exec_type: ExecType::Trade,
            trade: Some(trade),
            cancel_client_id: None,
            execution_id,
            transact_time: now,
            on_book,
        });
    }

    /// Cancels an open order found by `order_id` or `orig_client_id` (if
    /// both, they must name the same order).
    pub fn cancel(
        &mut self,
        account: &str,
        symbol: &str,
        order_id: Option<u64>,
        orig_client_id: Option<&str>,
        new_client_id: Option<String>,
        now: u64,
    ) -> Result<Canceled, Reject> {
        let bi = self.book_index(symbol)?;
        let slot = self
            .find(bi, account, order_id, orig_client_id, true)
            .ok_or(Reject::UnknownOrder)?;
        let cancel_client_id = match new_client_id {
            Some(id) => id,
            None => self.generate_client_id(),
        };
        let execution_id = self.execution_id();
        let o = &mut self.books[bi].orders[slot].order;
        o.status = OrderStatus::Canceled;
        o.update_time = now;
        let order = o.clone();
        Ok(Canceled {
            order: order.clone(),
            cancel_client_id: cancel_client_id.clone(),
            transact_time: now,
            events: vec![ExecEvent {
                order,
                exec_type: ExecType::Canceled,
                trade: None,
                cancel_client_id: Some(cancel_client_id),
                execution_id,
                transact_time: now,
                on_book: false,
            }],
        })
    }

    /// The slot of an order of `account`; by client id the newest match
    /// wins (ids may be reused once an order is done).
    fn find(
        &self,
        bi: usize,
        account: &str,
        order_id: Option<u64>,
        client_id: Option<&str>,
        open_only: bool,
    ) -> Option<usize> {
        let orders = &self.books[bi].orders;
        let ok = |e: &LedgerEntry| {
            e.order.account == account
                && (!open_only || e.order.status.is_open())
                && client_id.is_none_or(|c| e.order.client_order_id == c)
        };
        match order_id {
            Some(id) => {
                let slot = usize::try_from(id).ok()?.checked_sub(1)?;
                orders.get(slot).filter(|e| ok(e)).map(|_| slot)
            }
            None => orders.iter().rposition(|e| client_id.is_some() && ok(e)),
        }
    }

    /// An order and its trades, as `order.status` reports it.
    pub fn order_status(
        &self,
        account: &str,
        symbol: &str,
        order_id: Option<u64>,
        orig_client_id: Option<&str>,
    ) -> Result<&LedgerEntry, Reject> {
        let bi = self.book_index(symbol)?;
        let slot = self
            .find(bi, account, order_id, orig_client_id, false)
            .ok_or(Reject::NoSuchOrder)?;
        Ok(&self.books[bi].orders[slot])
    }

    /// Open orders of `account`, oldest first, on one symbol or all.
    pub fn open_orders(&self, account: &str, symbol: Option<&str>) -> Result<Vec<&Order>, Reject> {
        let books: Vec<&Book> = match symbol {
            Some(s) => vec![&self.books[self.book_index(s)?]],
            None => self.books.iter().collect(),
        };
        Ok(books
            .into_iter()
            .flat_map(|b| b.orders.iter())
            .map(|e| &e.order)
            .filter(|o| o.account == account && o.status.is_open())
            .collect())
    }

    /// Every order of `account` on `symbol`, open or not, by order id.
    pub fn all_orders(&self, account: &str, symbol: &str) -> Result<Vec<&Order>, Reject> {
        let book = &self.books[self.book_index(symbol)?];
        Ok(book
            .orders
            .iter()
            .map(|e| &e.order)
            .filter(|o| o.account == account)
            .collect())
    }

    /// Every trade of `account` on `symbol` with its order, by trade id
    /// (trade ids are per symbol and increase with time).
    pub fn trades_of(&self, account: &str, symbol: &str) -> Result<Vec<(&Order, &Trade)>, Reject> {
        let book = &self.books[self.book_index(symbol)?];
        let mut out: Vec<(&Order, &Trade)> = book
            .orders
            .iter()
            .filter(|e| e.order.account == account)
            .flat_map(|e| e.trades.iter().map(move |t| (&e.order, t)))
            .collect();
        out.sort_by_key(|(_, t)| t.trade_id);
        Ok(out)
    }

    /// Moves the market. Resting orders it crosses fill at their own limit
    /// price as makers, best price first, then oldest first.
    pub fn set_reference_price(
        &mut self,
        symbol: &str,
        price: i64,
        now: u64,
    ) -> Result<Vec<ExecEvent>, Reject> {
        let bi = self.book_index(symbol)?;
        if price <= 0 {
            return Err(Reject::Filter("PRICE_FILTER"));
        }
        self.books[bi].reference = price;
        let mut crossed: Vec<usize> = self.books[bi]
            .orders
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                let o = &e.order;
                o.status.is_open()
                    && match o.side {
                        Side::Buy => o.price >= price,
                        Side::Sell => o.price <= price,
                    }
            })
            .map(|(i, _)| i)
            .collect();
        {
            let orders = &self.books[bi].orders;
            crossed.sort_by_key(|&i| {
                let o = &orders[i].order;
                let p = match o.side {
                    Side::Buy => -o.price,
                    Side::Sell => o.price,
                };
                (p, o.order_id)
            });
        }
        let step = self.books[bi].spec.step_size;
        let mut events = Vec::new();
        let mut fills = Vec::new();
        for slot in crossed {
            let o = &self.books[bi].orders[slot].order;
            let remaining = o.orig_qty - o.executed_qty;
            let limit = o.price;
            let qty = if self.rng.chance(self.fill.maker_partial_per_mille) {
                let frac = 100 + self.rng.below(801) as i128;
                let a = (remaining as i128 * frac / 1000) as i64;
                (a - a % step).max(step).min(remaining)
            } else {
                remaining
            };
            self.execute(bi, slot, limit, qty, true, now, &mut fills, &mut events);
        }
        Ok(events)
    }

    /// Every order of every symbol with its trades.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.books
            .iter()
            .flat_map(|b| b.orders.iter().cloned())
            .collect()
    }
}

/// Applies PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE and NOTIONAL; returns
/// the order quantity (computed from quoteOrderQty when that was sent).
fn check_filters(spec: &SymbolSpec, req: &NewOrder, reference: i64) -> Result<i64, Reject> {
    let lot_ok = |q: i64, min: i64, max: i64, step: i64| {
        q > 0
            && (min == 0 || q >= min)
            && (max == 0 || q <= max)
            && (step == 0 || (q - min) % step == 0)
    };
    if req.order_type == OrderType::Market {
        let qty = match (req.qty, req.quote_qty) {
            (Some(q), _) => q,
            (None, Some(quote)) => {
                if spec.apply_min_to_market && quote < spec.min_notional
                    || spec.apply_max_to_market
                        && spec.max_notional > 0
                        && quote > spec.max_notional
                {
                    return Err(Reject::Filter("NOTIONAL"));
                }
                // quote (notional scale) / price (price scale) -> qty scale.
                let q = (quote / reference as i128) as i64;
                let q = q - q % spec.step_size;
                if q <= 0 {
                    return Err(Reject::Filter("LOT_SIZE"));
                }
                return Ok(q);
            }
            (None, None) => 0,
        };
        if !lot_ok(qty, spec.min_qty, spec.max_qty, spec.step_size) {
            return Err(Reject::Filter("LOT_SIZE"));
        }
        if !lot_ok(
            qty,
            spec.market_min_qty,
            spec.market_max_qty,
            spec.market_step_size,
        ) {
            return Err(Reject::Filter("MARKET_LOT_SIZE"));
        }
        let n = amount::product(reference, qty);
        if spec.apply_min_to_market && n < spec.min_notional
            || spec.apply_max_to_market && spec.max_notional > 0 && n > spec.max_notional
        {
            return Err(Reject::Filter("NOTIONAL"));
        }
        return Ok(qty);
    }
    let price = req.price.unwrap_or(0);
    let price_ok = price > 0
        && (spec.min_price == 0 || price >= spec.min_price)
        && (spec.max_price == 0 || price <= spec.max_price)
        && (price - spec.min_price) % spec.tick_size == 0;
    if !price_ok {
        return Err(Reject::Filter("PRICE_FILTER"));
    }
    let qty = req.qty.unwrap_or(0);
    if !lot_ok(qty, spec.min_qty, spec.max_qty, spec.step_size) {
        return Err(Reject::Filter("LOT_SIZE"));
    }
    let n = amount::product(price, qty);
    if n < spec.min_notional || spec.max_notional > 0 && n > spec.max_notional {
        return Err(Reject::Filter("NOTIONAL"));
    }
    Ok(qty)
}

/// `n / d` rounded to nearest, ties to even (d > 0).
fn div_half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    let twice = r.abs() * 2;
    if twice > d || (twice == d && q % 2 != 0) {
        q + n.signum()
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(fill: FillModel) -> Engine {
        Engine::new(&SymbolConfig::defaults(), fill, 1000).unwrap()
    }

    fn limit(side: Side, price: i64, qty: i64, tif: TimeInForce) -> NewOrder {
        NewOrder {
            account: "a".into(),
            symbol: "BTCUSDT".into(),
            side,
            order_type: OrderType::Limit,
            time_in_force: tif,
            price: Some(price),
            qty: Some(qty),
            quote_qty: None,
            client_order_id: Some("x1".into()),
        }
    }

    #[test]
    fn default_specs_build_exactly() {
        let e = engine(FillModel::full());
        let shib = e.spec("SHIBUSDT").unwrap();
        assert_eq!(shib.scales.price_scale, 8);
        assert_eq!(shib.scales.qty_scale, 0);
        assert_eq!(shib.scales.fmt_qty(10_000_000_000), "10000000000.00");
        assert_eq!(shib.scales.fmt_price(1500), "0.00001500");
        let btc = e.spec("BTCUSDT").unwrap();
        assert_eq!(btc.scales.fmt_qty(1000), "0.01000000");
        assert_eq!(btc.scales.fmt_price(5_200_000), "52000.00000000");
        assert_eq!(btc.min_notional, 50_000_000);
    }

    #[test]
    fn resting_limit_fills_when_reference_crosses() {
        let mut e = engine(FillModel::full());
        let p = e
            .place(limit(Side::Buy, 5_900_000, 1000, TimeInForce::Gtc), 10)
            .unwrap();
        assert_eq!(p.order.status, OrderStatus::New);
        assert_eq!(p.events.len(), 1);
        assert!(e
            .set_reference_price("BTCUSDT", 5_950_000, 11)
            .unwrap()
            .is_empty());
        let ev = e.set_reference_price("BTCUSDT", 5_900_000, 12).unwrap();
        assert_eq!(ev.len(), 1);
        let t = ev[0].trade.as_ref().unwrap();
        assert!(t.is_maker);
        assert_eq!((t.price, t.qty), (5_900_000, 1000));
        // 59000 * 0.01 = 590 USDT, 0.1 % = 0.59 USDT.
        assert_eq!(t.commission, 59_000_000);
        assert_eq!(ev[0].order.status, OrderStatus::Filled);
    }

    #[test]
    fn crossing_limit_takes_at_reference() {
        let mut e = engine(FillModel::full());
        let p = e
            .place(limit(Side::Buy, 6_100_000, 1000, TimeInForce::Gtc), 10)
            .unwrap();
        assert_eq!(p.order.status, OrderStatus::Filled);
        assert_eq!(p.fills[0].price, 6_000_000);
        assert!(!p.fills[0].is_maker);
        assert_eq!(p.order.cum_quote_qty, 6_000_000 * 1000);
    }

    #[test]
    fn partial_market_expires_and_ioc_reason() {
        let fill = FillModel {
            taker_partial_per_mille: 1000,
            max_trades_per_match: 3,
            ..FillModel::default()
        };
        let mut e = engine(fill);
        let mut m = limit(Side::Buy, 0, 100_000, TimeInForce::Gtc);
        m.order_type = OrderType::Market;
        m.price = None;
        let p = e.place(m, 5).unwrap();
        assert_eq!(p.order.status, OrderStatus::Expired);
        assert!(p.order.executed_qty > 0 && p.order.executed_qty < 100_000);
        assert_eq!(p.events.first().unwrap().exec_type, ExecType::New);
        assert_eq!(p.events.last().unwrap().exec_type, ExecType::Expired);
        assert_eq!(p.order.expiry_reason, None);
        let sum: i64 = p.fills.iter().map(|f| f.qty).sum();
        assert_eq!(sum, p.order.executed_qty);

        let mut ioc = limit(Side::Sell, 5_000_000, 100_000, TimeInForce::Ioc);
        ioc.client_order_id = None;
        let p = e.place(ioc, 6).unwrap();
        assert_eq!(p.order.status, OrderStatus::Expired);
        assert_eq!(p.order.expiry_reason, Some(UNFILLED_IOC_QUANTITY_EXPIRED));

        let mut fok = limit(Side::Sell, 5_000_000, 100_000, TimeInForce::Fok);
        fok.client_order_id = None;
        let p = e.place(fok, 7).unwrap();
        assert_eq!(p.order.executed_qty, 0);
        assert_eq!(p.events.len(), 2);
    }

    #[test]
    fn rejects() {
        let mut e = engine(FillModel::full());
        let mut lm = limit(Side::Buy, 6_100_000, 1000, TimeInForce::Gtc);
        lm.order_type = OrderType::LimitMaker;
        assert_eq!(e.place(lm, 1), Err(Reject::WouldMatch));
        assert_eq!(
            e.place(limit(Side::Buy, 100, 1000, TimeInForce::Gtc), 1),
            Err(Reject::Filter("NOTIONAL"))
        );
        e.place(limit(Side::Buy, 5_000_000, 1000, TimeInForce::Gtc), 1)
            .unwrap();
        assert_eq!(
            e.place(limit(Side::Buy, 5_000_000, 1000, TimeInForce::Gtc), 1),
            Err(Reject::DuplicateOrder)
        );
        let c = e
            .cancel("a", "BTCUSDT", None, Some("x1"), Some("c1".into()), 2)
            .unwrap();
        assert_eq!(c.order.status, OrderStatus::Canceled);
        assert_eq!(
            e.cancel("a", "BTCUSDT", Some(1), None, None, 3),
            Err(Reject::UnknownOrder)
        );
        assert_eq!(
            e.order_status("a", "BTCUSDT", Some(9), None).err(),
            Some(Reject::NoSuchOrder)
        );
        // The id is free again once the order is done.
        e.place(limit(Side::Buy, 5_000_000, 1000, TimeInForce::Gtc), 4)
            .unwrap();
    }

    #[test]
    fn same_seed_same_fills() {
        let run = || {
            let mut e = engine(FillModel::default());
            for i in 0..20 {
                let mut o = limit(Side::Buy, 6_000_000, 5000, TimeInForce::Gtc);
                o.client_order_id = Some(format!("o{i}"));
                e.place(o, i).unwrap();
            }
            e.ledger()
        };
        assert_eq!(run(), run());
    }
}
