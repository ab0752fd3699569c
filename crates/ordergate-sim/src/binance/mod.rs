//! A Binance Spot simulator that speaks the documented WebSocket API and
//! REST on one port, for testing the adapter and third-party clients
//! without the real venue.
//!
//! Two ways to run it, over the same code:
//!
//! - [`Exchange`]: the venue without sockets, threads or clock reads.
//!   Every call takes the caller's time and returns the frames to send, so
//!   a deterministic harness can drive it on one thread in virtual time.
//! - [`Simulator::start`]: the socket server, a thin driver over an
//!   [`Exchange`] on its own thread with its own tokio runtime (callers
//!   need none). The returned [`SimHandle`] moves the market, injects
//!   faults and reads the ledger.
//!
//! Faults on purpose ([`faults`]: disconnects, delayed, dropped and
//! unknown-outcome answers, busy refusals, duplicate and early
//! `executionReport`s, user data stream loss, maximum connection age,
//! clock steps and drift, `serverShutdown`) are set with
//! [`SimConfig::faults`] and [`SimConfig::fault_seed`] (`ordergate sim
//! --faults SPEC --fault-seed N`), and are the same for both drivers.

pub mod amount;
pub mod api;
pub mod engine;
pub mod exchange;
pub mod faults;
pub mod json;
pub mod limits;
pub mod rest;
pub mod server;
pub mod sign;
pub mod ws;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

pub use api::SimClock;
pub use engine::{
    ExecEvent, FillModel, LedgerEntry, Order, OrderStatus, OrderType, Side, SpecError,
    SymbolConfig, TimeInForce, Trade,
};
pub use exchange::{
    ConnId, ConnOptions, Exchange, Frames, MarketMove, RequestRecord, RestReply, WS_PATH,
};
pub use faults::{
    FaultCounts, FaultKind, FaultOutput, FaultSpec, FaultSpecError, MAX_CONNECTION_AGE_MS,
};
pub use limits::{LimitStats, RateLimits};

use server::{lock, real_ms, Hub};

/// The built-in demo account's API key. Test-only: it guards nothing.
pub const DEMO_API_KEY: &str = "ordergateSimDemoKey0000000000000000000000000000000000000000000000";
/// The built-in demo account's secret. Test-only: it guards nothing.
pub const DEMO_API_SECRET: &str = "ordergateSimDemoSecret00000000000000000000000000000000000000000";

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub symbols: Vec<SymbolConfig>,
    /// API key → HMAC secret.
    pub accounts: Vec<(String, String)>,
    pub fill: FillModel,
    /// Commission in millionths of the quote amount (1000 = 0.1 %).
    pub commission_ppm: i64,
    /// Server clock offset from the real clock, in milliseconds.
    pub clock_offset_ms: i64,
    /// Server ping period (the docs say 20 s).
    pub ping_interval: Duration,
    /// Time between `serverShutdown` and the close.
    pub shutdown_grace: Duration,
    /// The rate limits enforced and published (default: the documented
    /// values).
    pub limits: RateLimits,
    /// Faults on purpose (default: none); see [`faults`].
    pub faults: FaultSpec,
    /// Seed of the fault draws (default 1): the same seed replays the same
    /// faults for a run driven the same way.
    pub fault_seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            symbols: SymbolConfig::defaults(),
            accounts: vec![(DEMO_API_KEY.into(), DEMO_API_SECRET.into())],
            fill: FillModel::default(),
            commission_ppm: 1000,
            clock_offset_ms: 0,
            ping_interval: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(1),
            limits: RateLimits::default(),
            faults: FaultSpec::none(),
            fault_seed: 1,
        }
    }
}

/// Why the simulator could not start or a handle call failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator configuration: {0}")]
    Config(#[from] SpecError),
    #[error("simulator listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("unknown symbol {0}")]
    UnknownSymbol(String),
    #[error("price {price:?} for {symbol}: {detail}")]
    BadPrice {
        symbol: String,
        price: String,
        detail: String,
    },
}

/// Entry point for in-process use.
pub struct Simulator;

impl Simulator {
    /// Binds `addr` (use `127.0.0.1:0` for a free port) and serves on a
    /// background thread until [`SimHandle::shutdown`] or drop.
    pub fn start(config: SimConfig, addr: SocketAddr) -> Result<SimHandle, SimError> {
        let exchange = Exchange::new(&config, real_ms())?;
        let hub = Arc::new(Mutex::new(Hub::new(exchange)));
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let opts = server::WsOptions {
            ping_interval: config.ping_interval,
        };
        let h = hub.clone();
        let thread = std::thread::Builder::new()
            .name("ordergate-sim".into())
            .spawn(move || {
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => server::accept_loop(l, h, opts, stop_rx).await,
                        Err(e) => eprintln!("ordergate sim: listener: {e}"),
                    }
                });
            })?;
        Ok(SimHandle {
            addr,
            hub,
            stop: stop_tx,
            thread: Some(thread),
        })
    }
}

/// Controls a running simulator. Dropping it stops the simulator.
pub struct SimHandle {
    addr: SocketAddr,
    hub: Arc<Mutex<Hub>>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://host:port/ws-api/v3`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, server::WS_PATH)
    }

    /// `http://host:port`, the REST base URL.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulated server's current time in milliseconds.
    pub fn server_time_ms(&self) -> u64 {
        lock(&self.hub).exchange.server_time_ms(real_ms())
    }

    /// Moves the market of `symbol` to `price` (a decimal on the tick);
    /// resting orders it crosses fill, and their events are pushed. Returns
    /// those events.
    pub fn set_reference_price(
        &self,
        symbol: &str,
        price: &str,
    ) -> Result<Vec<ExecEvent>, SimError> {
        let mut hub = lock(&self.hub);
        let moved = hub.exchange.set_reference_price(symbol, price, real_ms())?;
        hub.deliver(moved.frames);
        hub.settle();
        Ok(moved.events)
    }

    /// The current reference price of `symbol`, formatted on its tick.
    pub fn reference_price(&self, symbol: &str) -> Option<String> {
        lock(&self.hub).exchange.reference_price(symbol)
    }

    /// Every order placed so far, with its trades.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        lock(&self.hub).exchange.ledger()
    }

    /// Sends `serverShutdown` on every WebSocket connection; each closes
    /// after the configured grace period. New connections still work.
    pub fn trigger_server_shutdown(&self) {
        lock(&self.hub).server_shutdown();
    }

    /// Sets the server clock's offset from the real clock.
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        lock(&self.hub).exchange.set_clock_offset_ms(offset_ms);
    }

    /// Makes the server clock run fast (positive) or slow by `ppm`
    /// millionths from now on.
    pub fn set_clock_drift_ppm(&self, ppm: i64) {
        lock(&self.hub).exchange.set_clock_drift_ppm(ppm, real_ms());
    }

    /// The rate limits in force.
    pub fn rate_limits(&self) -> RateLimits {
        lock(&self.hub).exchange.rate_limits()
    }

    /// Replaces the rate limits (counters and a ban in force stay).
    pub fn set_rate_limits(&self, limits: RateLimits) {
        lock(&self.hub).exchange.set_rate_limits(limits);
    }

    /// How many 429s and 418s the simulator answered, and bans started.
    pub fn limit_stats(&self) -> LimitStats {
        lock(&self.hub).exchange.limit_stats()
    }

    /// How many faults of each enabled kind were injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        lock(&self.hub).exchange.fault_counts()
    }

    /// Replaces the faults and their seed (see [`Exchange::set_faults`]).
    pub fn set_faults(&self, spec: FaultSpec, seed: u64) {
        let mut hub = lock(&self.hub);
        hub.exchange.set_faults(spec, seed);
        hub.settle();
    }

    /// Every request received so far, in the order received (see
    /// [`RequestRecord`]).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.hub).exchange.request_log().to_vec()
    }

    /// Adds `n` to the current minute's request weight.
    pub fn preload_weight(&self, n: u64) {
        lock(&self.hub).exchange.preload_weight(n, real_ms());
    }

    /// Adds `n` placed orders to the current ORDERS windows of every
    /// account.
    pub fn preload_orders(&self, n: u64) {
        lock(&self.hub).exchange.preload_orders(n, real_ms());
    }

    /// Bans the IP for `duration` from now.
    pub fn force_ban(&self, duration: Duration) {
        lock(&self.hub).exchange.force_ban(duration, real_ms());
    }

    /// Stops the simulator and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Blocks until the simulator stops (for the CLI).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
