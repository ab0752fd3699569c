//! The simulator without sockets, threads or clocks: [`Exchange`].
//!
//! Everything the simulated venue does happens here, as calls that take
//! the caller's time `now_ms` and return the text frames to deliver. The
//! socket server ([`Simulator::start`](super::Simulator::start)) is a thin
//! driver over this type that passes the real time; a deterministic test
//! harness can drive the same code on one thread with a virtual clock.
//!
//! `now_ms` is the caller's wall clock (real or virtual), in Unix
//! milliseconds. The simulated server's own time is derived from it by the
//! [`SimClock`] (offset and drift), as a real venue's clock differs from a
//! client's.
//!
//! With faults on ([`super::faults`]) a call may return fewer frames than
//! without (held, dropped, or lost with a connection the exchange closes);
//! the driver then also calls [`Exchange::poll_faults`] at
//! [`Exchange::next_fault_ms`] for what comes later and for the
//! connections to close. Without faults it only ever closes a connection
//! at its 24 h maximum age.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use super::amount;
use super::api::{SimClock, State};
use super::engine::{Engine, ExecEvent, LedgerEntry};
use super::faults::{ConnFaults, Faults, Tag, Tagged};
use super::json;
use super::limits::{LimitStats, RateLimits};
use super::{SimConfig, SimError};

/// The WebSocket API path.
pub const WS_PATH: &str = "/ws-api/v3";

/// One WebSocket connection of an [`Exchange`]. Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws#{}", self.0)
    }
}

/// Text frames to send, each to its connection, in order.
pub type Frames = Vec<(ConnId, String)>;

/// What a connection's URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOptions {
    /// False with `?returnRateLimits=false` on the URL.
    pub return_rate_limits: bool,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            return_rate_limits: true,
        }
    }
}

/// What one connection remembers between requests.
pub(crate) struct Conn {
    pub connected_since: u64,
    /// `session.logon` key and time.
    pub session: Option<(String, u64)>,
    pub next_subscription: u64,
    pub return_rate_limits: bool,
    /// Its maximum age and what the faults drew for it.
    pub faults: ConnFaults,
}

struct Subscription {
    conn: ConnId,
    id: u64,
    account: String,
}

/// User data stream subscriptions, in the order they were made.
#[derive(Default)]
pub(crate) struct Subscriptions(Vec<Subscription>);

impl Subscriptions {
    pub fn add(&mut self, conn: ConnId, id: u64, account: &str) {
        self.0.push(Subscription {
            conn,
            id,
            account: account.to_owned(),
        });
    }

    /// Removes one subscription of `conn`, or all of them; returns how many.
    pub fn remove(&mut self, conn: ConnId, id: Option<u64>) -> usize {
        let before = self.0.len();
        self.0
            .retain(|s| s.conn != conn || id.is_some_and(|id| s.id != id));
        before - self.0.len()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `i`-th subscription: connection, id and account.
    pub fn nth(&self, i: usize) -> Option<(ConnId, u64, String)> {
        self.0.get(i).map(|s| (s.conn, s.id, s.account.clone()))
    }

    pub fn has(&self, conn: ConnId, account: &str) -> bool {
        self.0
            .iter()
            .any(|s| s.conn == conn && s.account == account)
    }

    /// The `executionReport` frames for `events`: each event, in order, to
    /// every subscription of its account, in subscription order.
    pub fn reports(&self, events: &[ExecEvent], server_now: u64) -> Tagged {
        let mut out = Vec::new();
        for ev in events {
            let report = json::ExecutionReport::new(ev, server_now);
            for s in self.0.iter().filter(|s| s.account == ev.order.account) {
                let frame = json::to_string(&json::SubscriptionEvent {
                    subscription_id: s.id,
                    event: &report,
                });
                out.push((s.conn, frame, Tag::Report));
            }
        }
        out
    }
}

/// A market move: the executions it caused and their frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketMove {
    pub events: Vec<ExecEvent>,
    pub frames: Frames,
}

/// A REST answer: status, the headers Binance adds (`Content-Type`, the
/// `X-MBX-*` usage headers), the body, and the user data events the
/// request caused on WebSocket subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub frames: Frames,
}

/// One request as the simulator received it, for tests that check the
/// wire order (see [`Exchange::request_log`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// 1, 2, 3, … in the order the simulator received the requests, over
    /// every transport and connection.
    pub seq: u64,
    /// The WebSocket connection it came on; None for REST.
    pub conn: Option<ConnId>,
    /// The WebSocket API method as sent (`order.place`; empty when the
    /// frame had none), `"<HTTP method> <path>"` for REST
    /// (`POST /api/v3/order`), `"GET /ws-api/v3"` for a connection attempt.
    pub method: String,
    /// `newClientOrderId` as sent.
    pub client_order_id: Option<String>,
    /// `origClientOrderId` as sent.
    pub orig_client_order_id: Option<String>,
    /// The server's time when it arrived.
    pub server_time: u64,
    /// The answer's status: 200, the error's HTTP status (429, 418, …);
    /// 101 for an accepted connection. Under faults, the status of the
    /// answer the venue made, whether it was sent or not (a `drop`ped 200
    /// is 200; `unknown-*` and `busy` are their 5xx).
    pub status: u16,
    /// The fault injected on this request ([`FaultKind::name`]), if any.
    ///
    /// [`FaultKind::name`]: super::FaultKind::name
    pub fault: Option<&'static str>,
}

/// The simulated Binance Spot venue, socket-free and single-threaded:
/// the engine and ledger, accounts, server clock, request counters,
/// WebSocket connections and their user data subscriptions.
///
/// The WebSocket API is [`Exchange::ws_request`] (in `ws.rs`), REST is
/// [`Exchange::rest`] (in `rest.rs`), faults are
/// [`Exchange::set_faults`] and [`Exchange::poll_faults`] (in `faults.rs`).
pub struct Exchange {
    pub(crate) state: State,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    pub(crate) subs: Subscriptions,
    next_conn: u64,
    shutdown_grace: Duration,
    log: Vec<RequestRecord>,
    pub(crate) faults: Faults,
}

impl Exchange {
    /// A fresh venue; its clock starts at `now_ms` plus the configured
    /// offset.
    pub fn new(config: &SimConfig, now_ms: u64) -> Result<Exchange, SimError> {
        let engine = Engine::new(&config.symbols, config.fill, config.commission_ppm)?;
        let accounts: HashMap<String, String> = config.accounts.iter().cloned().collect();
        let clock = SimClock {
            offset_ms: config.clock_offset_ms,
            drift_ppm: 0,
            anchor_ms: now_ms,
        };
        Ok(Exchange {
            state: State::new(engine, accounts, clock, config.limits),
            conns: BTreeMap::new(),
            subs: Subscriptions::default(),
            next_conn: 1,
            shutdown_grace: config.shutdown_grace,
            log: Vec::new(),
            faults: Faults::new(
                config.faults.clone(),
                config.fault_seed,
                config.clock_offset_ms,
            ),
        })
    }

    /// Appends one request to the request log.
    pub(crate) fn record(
        &mut self,
        conn: Option<ConnId>,
        method: String,
        ids: (Option<String>, Option<String>),
        server_time: u64,
        status: u16,
    ) {
        let seq = self.log.len() as u64 + 1;
        self.log.push(RequestRecord {
            seq,
            conn,
            method,
            client_order_id: ids.0,
            orig_client_order_id: ids.1,
            server_time,
            status,
            fault: None,
        });
    }

    /// Marks the last request of the log with the fault it got.
    pub(crate) fn mark_fault(&mut self, kind: super::FaultKind) {
        if let Some(r) = self.log.last_mut() {
            r.fault = Some(kind.name());
        }
    }

    /// Every request received so far (REST, WebSocket API frames,
    /// connection attempts), in the order received, refused ones included.
    pub fn request_log(&self) -> &[RequestRecord] {
        &self.log
    }

    /// The limits in force.
    pub fn rate_limits(&self) -> RateLimits {
        self.state.meter.limits
    }

    /// Replaces the limits (counters, back-offs and a ban in force stay).
    pub fn set_rate_limits(&mut self, limits: RateLimits) {
        self.state.meter.limits = limits;
    }

    /// How many 429s and 418s were answered, and bans started.
    pub fn limit_stats(&self) -> LimitStats {
        self.state.meter.stats
    }

    /// Adds `n` to the request weight of the current minute (server clock
    /// at `now_ms`), as if other clients on the IP had spent it.
    pub fn preload_weight(&mut self, n: u64, now_ms: u64) {
        let now = self.state.server_time(now_ms);
        self.state.meter.add_weight(now, n);
    }

    /// Adds `n` placed orders to the current ORDERS windows (10 s and day)
    /// of every configured account.
    pub fn preload_orders(&mut self, n: u64, now_ms: u64) {
        let now = self.state.server_time(now_ms);
        let keys: Vec<String> = self.state.accounts.keys().cloned().collect();
        for k in keys {
            self.state.meter.add_orders(&k, now, n);
        }
    }

    /// Bans the IP for `duration` from `now_ms`: every request and
    /// connection attempt is answered 418 until then.
    pub fn force_ban(&mut self, duration: Duration, now_ms: u64) {
        let now = self.state.server_time(now_ms);
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.state.meter.force_ban(now, ms);
    }

    /// When the ban in force ends (server time, epoch ms), if there is one.
    pub fn ban_until(&self, now_ms: u64) -> Option<u64> {
        self.state.meter.ban_until(self.state.server_time(now_ms))
    }

    /// The server's time when the caller's clock reads `now_ms`.
    pub fn server_time_ms(&self, now_ms: u64) -> u64 {
        self.state.server_time(now_ms)
    }

    /// The server clock (offset, drift, anchor).
    pub fn clock(&self) -> SimClock {
        self.state.clock
    }

    /// Sets the server clock's offset from the caller's clock.
    pub fn set_clock_offset_ms(&mut self, offset_ms: i64) {
        self.state.clock.offset_ms = offset_ms;
    }

    /// Makes the server clock run fast (positive) or slow by `ppm`
    /// millionths from `now_ms` on, continuing from the time it shows then.
    pub fn set_clock_drift_ppm(&mut self, ppm: i64, now_ms: u64) {
        let clock = &mut self.state.clock;
        let shown = clock.server_time(now_ms) as i64;
        clock.offset_ms = shown - now_ms as i64;
        clock.anchor_ms = now_ms;
        clock.drift_ppm = ppm;
    }

    /// The options of a WebSocket URL (`/ws-api/v3?returnRateLimits=false`),
    /// or None when there is no WebSocket endpoint at its path.
    pub fn ws_route(path_and_query: &str) -> Option<ConnOptions> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        (path == WS_PATH).then(|| ConnOptions {
            return_rate_limits: !query.split('&').any(|p| p == "returnRateLimits=false"),
        })
    }

    /// A new WebSocket API connection with the default options.
    pub fn ws_connect(&mut self, now_ms: u64) -> ConnId {
        self.ws_connect_with(ConnOptions::default(), now_ms)
    }

    /// A new connection to `path_and_query` (see [`Exchange::ws_route`]);
    /// None for a path without a WebSocket endpoint (HTTP 404).
    pub fn ws_connect_to(&mut self, path_and_query: &str, now_ms: u64) -> Option<ConnId> {
        let opts = Exchange::ws_route(path_and_query)?;
        Some(self.ws_connect_with(opts, now_ms))
    }

    /// A WebSocket connection attempt to `path_and_query` as the socket
    /// server sees it, with the connection limits applied: the new
    /// connection, or the HTTP answer that refuses the upgrade (404 for a
    /// path without an endpoint; 429 over the connection or weight limit;
    /// 418 during a ban, both with `Retry-After` and a `{code,msg}` body).
    pub fn ws_handshake(&mut self, path_and_query: &str, now_ms: u64) -> Result<ConnId, RestReply> {
        let now = self.state.server_time(now_ms);
        let method = format!("GET {}", path_and_query.split('?').next().unwrap_or(""));
        let Some(opts) = Exchange::ws_route(path_and_query) else {
            self.record(None, method, (None, None), now, 404);
            return Err(RestReply {
                status: 404,
                headers: Vec::new(),
                body: String::new(),
                frames: Vec::new(),
            });
        };
        if let Err(e) = self.state.meter.admit_connection(now) {
            tracing::debug!(status = e.http, msg = %e.msg, "WebSocket connection refused");
            self.record(None, method, (None, None), now, e.http);
            let usage = self.state.meter.usage(None, now);
            let mut headers = vec![
                ("Content-Type", "application/json;charset=UTF-8".to_owned()),
                ("X-MBX-USED-WEIGHT-1M", usage.weight_1m.to_string()),
            ];
            if let Some(r) = e.limit {
                headers.push(("Retry-After", r.retry_after_secs().to_string()));
            }
            return Err(RestReply {
                status: e.http,
                headers,
                body: e.body(),
                frames: Vec::new(),
            });
        }
        self.record(None, method, (None, None), now, 101);
        Ok(self.open(opts, now_ms))
    }

    /// A new connection with `opts`. The attempt and its 2 weight are
    /// counted, but never refused (the harness path; the socket server
    /// uses [`Exchange::ws_handshake`]).
    pub fn ws_connect_with(&mut self, opts: ConnOptions, now_ms: u64) -> ConnId {
        let now = self.state.server_time(now_ms);
        self.state.meter.count_connection(now);
        self.record(None, format!("GET {WS_PATH}"), (None, None), now, 101);
        self.open(opts, now_ms)
    }

    fn open(&mut self, opts: ConnOptions, now_ms: u64) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                connected_since: self.state.server_time(now_ms),
                session: None,
                next_subscription: 0,
                return_rate_limits: opts.return_rate_limits,
                faults: ConnFaults::new(now_ms),
            },
        );
        self.fault_activity(now_ms);
        tracing::debug!(
            conn = %id,
            return_rate_limits = opts.return_rate_limits,
            "WebSocket API connection open"
        );
        id
    }

    /// Forgets a closed connection and its subscriptions.
    pub fn ws_disconnect(&mut self, conn: ConnId) {
        self.faults.forget(conn);
        if self.conns.remove(&conn).is_some() {
            let subscriptions = self.subs.remove(conn, None);
            tracing::debug!(
                %conn,
                subscriptions,
                "WebSocket API connection closed"
            );
        }
    }

    /// The open connections, oldest first.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.keys().copied()
    }

    /// The `serverShutdown` event frame for every connection, oldest
    /// first. The connections keep working; the caller closes each one
    /// [`Exchange::shutdown_grace`] later, as the venue does.
    pub fn trigger_server_shutdown(&mut self, now_ms: u64) -> Frames {
        let frame = json::to_string(&json::ServerShutdown::new(self.state.server_time(now_ms)));
        tracing::debug!(connections = self.conns.len(), "serverShutdown announced");
        self.conns.keys().map(|&c| (c, frame.clone())).collect()
    }

    /// How long after `serverShutdown` a connection is closed.
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }

    /// Moves the market of `symbol` to `price` (a decimal on the tick);
    /// resting orders it crosses fill. Returns their events and the
    /// `executionReport` frames for the subscribed connections.
    pub fn set_reference_price(
        &mut self,
        symbol: &str,
        price: &str,
        now_ms: u64,
    ) -> Result<MarketMove, SimError> {
        let spec = self
            .state
            .engine
            .spec(symbol)
            .ok_or_else(|| SimError::UnknownSymbol(symbol.into()))?;
        let bad = |detail: String| SimError::BadPrice {
            symbol: symbol.into(),
            price: price.into(),
            detail,
        };
        let m = amount::parse_at(price, spec.scales.price_scale).map_err(|e| bad(e.to_string()))?;
        let now = self.state.server_time(now_ms);
        let events = self
            .state
            .engine
            .set_reference_price(symbol, m, now)
            .map_err(|e| bad(e.to_string()))?;
        let reports = self.subs.reports(&events, now);
        let frames = self.route(reports);
        Ok(MarketMove { events, frames })
    }

    /// The current reference price of `symbol`, formatted on its tick.
    pub fn reference_price(&self, symbol: &str) -> Option<String> {
        let engine = &self.state.engine;
        let scale = engine.spec(symbol)?.scales.price_scale;
        let m = engine.reference_price(symbol)?;
        Some(amount::write(m as i128, scale))
    }

    /// Every order placed so far, with its trades.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.state.engine.ledger()
    }

    /// The matching engine, for inspection.
    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }
}

#[cfg(test)]
mod tests {
    //! The exchange driven the way a virtual-time harness drives it: one
    //! thread, no sockets, the clock is whatever the test says.

    use serde_json::{json, Value};

    use super::*;
    use crate::binance::engine::FillModel;
    use crate::binance::sign::{sign_hex, ws_payload};
    use crate::binance::{DEMO_API_KEY, DEMO_API_SECRET};

    /// A virtual wall clock: 2024-01-01T00:00:00Z.
    const T0: u64 = 1_704_067_200_000;

    fn exchange() -> Exchange {
        let config = SimConfig {
            fill: FillModel::full(),
            ..SimConfig::default()
        };
        Exchange::new(&config, T0).unwrap()
    }

    /// A request signed with `secret` at `timestamp`, as a client sends it.
    fn signed(id: &str, method: &str, params: Value, secret: &str, timestamp: u64) -> String {
        let mut p = params.as_object().cloned().unwrap_or_default();
        p.insert("apiKey".into(), json!(DEMO_API_KEY));
        p.insert("timestamp".into(), json!(timestamp));
        let texts: Vec<(String, String)> = p
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
            .collect();
        let payload = ws_payload(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        p.insert(
            "signature".into(),
            json!(sign_hex(secret.as_bytes(), payload.as_bytes())),
        );
        json!({"id": id, "method": method, "params": p}).to_string()
    }

    fn parse(frames: &Frames) -> Vec<(ConnId, Value)> {
        frames
            .iter()
            .map(|(c, t)| (*c, serde_json::from_str(t).unwrap()))
            .collect()
    }

    fn buy(price: &str) -> Value {
        json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
               "price": price, "quantity": "0.01", "newOrderRespType": "RESULT"})
    }

    fn subscribe(ex: &mut Exchange, conn: ConnId, now: u64) {
        let req = signed(
            "sub",
            "userDataStream.subscribe.signature",
            json!({}),
            DEMO_API_SECRET,
            now,
        );
        let frames = parse(&ex.ws_request(conn, &req, now));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1["status"], 200, "{:?}", frames[0].1);
    }

    #[test]
    fn signed_order_place_answers_then_pushes_execution_reports() {
        let mut ex = exchange();
        let now = T0 + 1_000;
        let conn = ex.ws_connect(now);
        subscribe(&mut ex, conn, now);
        let watcher = ex.ws_connect(now);
        subscribe(&mut ex, watcher, now);
        let idle = ex.ws_connect(now);

        // Crosses the 60000.00 reference: NEW then TRADE.
        let req = signed(
            "o1",
            "order.place",
            buy("61000.00"),
            DEMO_API_SECRET,
            now - 10,
        );
        let frames = parse(&ex.ws_request(conn, &req, now));
        let (to, resp) = &frames[0];
        assert_eq!(*to, conn);
        assert_eq!(
            (&resp["id"], &resp["status"]),
            (&json!("o1"), &json!(200)),
            "{resp}"
        );
        assert_eq!(resp["result"]["status"], "FILLED");
        assert_eq!(resp["result"]["executedQty"], "0.01000000");
        assert_eq!(resp["result"]["transactTime"], now);
        assert_eq!(resp["rateLimits"][0]["rateLimitType"], "ORDERS");
        // Each event to both subscribed connections, in event order; the
        // idle connection gets nothing.
        let events: Vec<(ConnId, &str, &Value)> = frames[1..]
            .iter()
            .map(|(c, v)| (*c, v["event"]["x"].as_str().unwrap(), &v["event"]))
            .collect();
        let kinds: Vec<(ConnId, &str)> = events.iter().map(|(c, x, _)| (*c, *x)).collect();
        assert_eq!(
            kinds,
            [
                (conn, "NEW"),
                (watcher, "NEW"),
                (conn, "TRADE"),
                (watcher, "TRADE")
            ]
        );
        assert!(frames.iter().all(|(c, _)| *c != idle));
        let trade = events[2].2;
        assert_eq!(
            (&trade["X"], &trade["L"], &trade["E"]),
            (&json!("FILLED"), &json!("60000.00000000"), &json!(now))
        );
        let ledger = ex.ledger();
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].trades.len(), 1);
    }

    #[test]
    fn wrong_signature_is_1022_and_changes_nothing() {
        let mut ex = exchange();
        let conn = ex.ws_connect(T0);
        subscribe(&mut ex, conn, T0);
        let req = signed("bad", "order.place", buy("59000.00"), "not-the-secret", T0);
        let frames = parse(&ex.ws_request(conn, &req, T0));
        assert_eq!(frames.len(), 1, "no events");
        let r = &frames[0].1;
        assert_eq!(r["status"], 400);
        assert_eq!(r["error"]["code"], -1022);
        assert_eq!(
            r["error"]["msg"],
            "Signature for this request is not valid."
        );
        assert!(ex.ledger().is_empty());
    }

    #[test]
    fn clock_skew_is_1021_in_virtual_time() {
        let mut ex = exchange();
        let conn = ex.ws_connect(T0);
        let code = |ex: &mut Exchange, ts: u64, now: u64| {
            let req = signed("t", "order.place", buy("50000.00"), DEMO_API_SECRET, ts);
            let frames = parse(&ex.ws_request(conn, &req, now));
            let r = &frames[0].1;
            (
                r["error"]["code"].as_i64(),
                r["error"]["msg"].as_str().map(str::to_owned),
            )
        };
        let now = T0 + 60_000;
        // 5 s old with the default 5000 ms recvWindow: still inside.
        assert_eq!(code(&mut ex, now - 5_000, now).0, None);
        let (c, m) = code(&mut ex, now - 5_001, now);
        assert_eq!(c, Some(-1021));
        assert_eq!(
            m.as_deref(),
            Some("Timestamp for this request is outside of the recvWindow.")
        );
        let (c, m) = code(&mut ex, now + 1_000, now);
        assert_eq!(c, Some(-1021));
        assert_eq!(
            m.as_deref(),
            Some("Timestamp for this request was 1000ms ahead of the server's time.")
        );
        // The server's clock 30 s ahead of the caller's: a timestamp from
        // the caller's clock is old.
        ex.set_clock_offset_ms(30_000);
        assert_eq!(ex.server_time_ms(now), now + 30_000);
        assert_eq!(code(&mut ex, now, now).0, Some(-1021));
        assert_eq!(code(&mut ex, now + 30_000, now).0, None);
        // Drift: 1000 ppm fast from `now` on gains 60 ms in a minute.
        ex.set_clock_offset_ms(0);
        ex.set_clock_drift_ppm(1_000, now);
        assert_eq!(ex.server_time_ms(now + 60_000), now + 60_060);
    }

    #[test]
    fn market_moves_shutdown_rest_and_disconnect() {
        let mut ex = exchange();
        let a = ex.ws_connect(T0);
        subscribe(&mut ex, a, T0);
        let b = ex
            .ws_connect_to("/ws-api/v3?returnRateLimits=false", T0)
            .unwrap();
        assert!(ex.ws_connect_to("/ws", T0).is_none());
        let r = parse(&ex.ws_request(b, r#"{"id":1,"method":"time"}"#, T0));
        assert!(r[0].1.get("rateLimits").is_none(), "{:?}", r[0].1);

        // A resting order over REST: its NEW report goes to the WebSocket
        // subscription.
        let now = T0 + 5;
        let query = format!(
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=59000\
             &timestamp={now}"
        );
        let sig = sign_hex(DEMO_API_SECRET.as_bytes(), query.as_bytes());
        let reply = ex.rest(
            "POST",
            &format!("/api/v3/order?{query}&signature={sig}"),
            &[("x-mbx-apikey", DEMO_API_KEY)],
            b"",
            now,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply
            .headers
            .contains(&("X-MBX-ORDER-COUNT-10S", "1".to_owned())));
        let frames = parse(&reply.frames);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (frames[0].0, &frames[0].1["event"]["x"]),
            (a, &json!("NEW"))
        );
        assert_eq!(ex.rest("GET", "/api/v3/nothing", &[], b"", now).status, 404);

        // The market moves through it: a maker TRADE, pushed.
        let moved = ex.set_reference_price("BTCUSDT", "58999.99", now).unwrap();
        assert_eq!(moved.events.len(), 1);
        let frames = parse(&moved.frames);
        assert_eq!(frames[0].0, a);
        assert_eq!(frames[0].1["event"]["m"], true);
        assert_eq!(ex.reference_price("BTCUSDT").as_deref(), Some("58999.99"));
        assert!(ex.set_reference_price("NOPE", "1", now).is_err());

        let frames = ex.trigger_server_shutdown(now);
        let expected = format!(r#"{{"event":{{"e":"serverShutdown","E":{now}}}}}"#);
        assert_eq!(frames, vec![(a, expected.clone()), (b, expected)]);
        assert_eq!(ex.shutdown_grace(), SimConfig::default().shutdown_grace);

        ex.ws_disconnect(a);
        assert_eq!(ex.connections().collect::<Vec<_>>(), vec![b]);
        assert!(ex
            .ws_request(a, r#"{"id":1,"method":"ping"}"#, now)
            .is_empty());
        let moved = ex.set_reference_price("BTCUSDT", "60000.00", now).unwrap();
        assert!(moved.frames.is_empty());
    }

    /// The same inputs give the same frames, byte for byte.
    #[test]
    fn replays_exactly() {
        let run = || {
            let mut ex = Exchange::new(&SimConfig::default(), T0).unwrap();
            let c = ex.ws_connect(T0);
            subscribe(&mut ex, c, T0);
            let mut out = Vec::new();
            for i in 0..20u64 {
                let now = T0 + i * 250;
                let side = if i % 2 == 0 { "BUY" } else { "SELL" };
                let req = signed(
                    &format!("o{i}"),
                    "order.place",
                    json!({"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": "0.05"}),
                    DEMO_API_SECRET,
                    now,
                );
                out.extend(ex.ws_request(c, &req, now));
            }
            out
        };
        let first = run();
        assert!(first.len() > 40);
        assert_eq!(first, run());
    }
}
