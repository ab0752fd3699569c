//! The end-to-end harness: a simulator and a sidecar per test, each in
//! its own short temp dir, and a strategy wrapper that checks sequence
//! numbers as it reads and follows orders to their end. Every wait is
//! bounded by [`WAIT`].
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ordergate::app::App;
use ordergate::client::{Client, ClientError};
use ordergate::config::Config;
use ordergate::decimal::{parse_fixed, WideDecimal};
use ordergate::ids::{ClientId, Namespace, OrderKey, StrategyId};
use ordergate::protocol::{
    Fill, InstrumentInfo, NewOrder, OrdType, OrderState, OrderStatus, Outbound, Reason, Side,
    TimeInForce, VenueState,
};
use ordergate::sim::binance::{
    FaultSpec, FillModel, LedgerEntry, RateLimits, SimConfig, SimHandle, Simulator, DEMO_API_KEY,
    DEMO_API_SECRET,
};

/// Bound on every wait for the sidecar or the venue.
pub const WAIT: Duration = Duration::from_secs(10);
pub const SYMBOL: &str = "BTCUSDT";
/// The simulator's starting BTCUSDT price.
pub const REFERENCE: &str = "60000.00";
/// The two configured strategies: (id, name).
pub const ALPHA: (StrategyId, &str) = (1, "alpha");
pub const BETA: (StrategyId, &str) = (2, "beta");

/// What differs between tests' sidecars and simulators.
#[derive(Clone)]
pub struct Opts {
    pub fill: FillModel,
    /// The secret the sidecar signs with (the simulator knows the demo one).
    pub api_secret: String,
    pub recv_window_ms: u32,
    /// The venue's clock offset from the real clock at start.
    pub clock_offset_ms: i64,
    /// The layout section of the config (`layout`, `wait`, `[cores]`).
    pub layout: &'static str,
    /// The simulator's time between `serverShutdown` and the close.
    pub shutdown_grace: Duration,
    /// The rate limits the simulator enforces.
    pub sim_limits: RateLimits,
    /// TOML written inside the `[[venue]]` table, after its keys: a
    /// `[venue.limits]` table and its `[[venue.limits.rule]]`s.
    pub venue_limits: String,
    /// TOML appended to the config: `[rings]`, more `[[strategy]]`s.
    pub extra: String,
    /// The simulator's faults on purpose, and their seed.
    pub faults: FaultSpec,
    pub fault_seed: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            fill: FillModel::full(),
            api_secret: DEMO_API_SECRET.into(),
            recv_window_ms: 5000,
            clock_offset_ms: 0,
            layout: "layout = \"single\"\nwait = \"park\"\n",
            shutdown_grace: Duration::from_secs(1),
            // Some tests send orders faster than Binance's 50 per 10 s:
            // only the ORDERS limit is lifted, the others stay the
            // documented ones.
            sim_limits: RateLimits {
                orders_per_10s: 1_000_000,
                orders_per_day: 1_000_000,
                ..RateLimits::default()
            },
            venue_limits: String::new(),
            extra: String::new(),
            faults: FaultSpec::none(),
            fault_seed: 1,
        }
    }
}

/// A short temp dir under /tmp, so socket paths stay far below `sun_path`.
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("og")
        .tempdir_in("/tmp")
        .expect("create a temp dir in /tmp")
}

fn write_secret(path: &Path, value: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(value.as_bytes()).unwrap();
}

/// Writes the secrets and a config for a venue at `ws_url`/`rest_url`
/// into `dir`; returns the config text and its path. The instrument's
/// filters are the strings the simulator's exchangeInfo writes for
/// BTCUSDT (8 decimals, so both scales are 8).
pub fn write_config(dir: &Path, ws_url: &str, rest_url: &str, opts: &Opts) -> (String, PathBuf) {
    write_secret(&dir.join("api.key"), DEMO_API_KEY);
    write_secret(&dir.join("api.secret"), &opts.api_secret);
    let d = dir.display();
    let text = format!(
        r#"state_dir = "{d}/state"
socket = "{d}/s.sock"
{layout}
[[venue]]
id = "binance-spot"
ws_url = "{ws_url}"
rest_url = "{rest_url}"
api_key = {{ file = "{d}/api.key" }}
api_secret = {{ file = "{d}/api.secret" }}
recv_window_ms = {rw}
{venue_limits}
[[strategy]]
id = {a_id}
name = "{a_name}"

[[strategy]]
id = {b_id}
name = "{b_name}"

[[instrument]]
id = 1
venue = "binance-spot"
symbol = "{SYMBOL}"
category = "spot"
tick = "0.01000000"
lot = "0.00001000"
min_qty = "0.00001000"
min_notional = "5.00000000"
{extra}"#,
        rw = opts.recv_window_ms,
        venue_limits = opts.venue_limits,
        extra = opts.extra,
        layout = opts.layout,
        a_id = ALPHA.0,
        a_name = ALPHA.1,
        b_id = BETA.0,
        b_name = BETA.1,
    );
    let path = dir.join("og.toml");
    std::fs::write(&path, &text).unwrap();
    (text, path)
}

/// Waits until something listens on `path`.
pub fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + WAIT;
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {} after {WAIT:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A simulator on a free local port, set up as `opts` says.
pub fn start_sim(opts: &Opts) -> SimHandle {
    Simulator::start(
        SimConfig {
            fill: opts.fill,
            clock_offset_ms: opts.clock_offset_ms,
            shutdown_grace: opts.shutdown_grace,
            limits: opts.sim_limits,
            faults: opts.faults.clone(),
            fault_seed: opts.fault_seed,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .expect("start the simulator")
}

/// One simulator and one in-process sidecar wired to it.
pub struct Harness {
    /// Shared by a second installation's harness (see [`Harness::beside`]).
    pub sim: std::sync::Arc<SimHandle>,
    app: Option<App>,
    pub socket: PathBuf,
    pub ns: Namespace,
    config: Config,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn start() -> Harness {
        Harness::with(Opts::default())
    }

    pub fn with(opts: Opts) -> Harness {
        Harness::on(std::sync::Arc::new(start_sim(&opts)), &opts)
    }

    /// A second sidecar, with its own state directory (so its own
    /// installation id), trading the same simulated account.
    pub fn beside(&self, opts: &Opts) -> Harness {
        Harness::on(self.sim.clone(), opts)
    }

    fn on(sim: std::sync::Arc<SimHandle>, opts: &Opts) -> Harness {
        let dir = short_tempdir();
        let (text, path) = write_config(dir.path(), &sim.ws_url(), &sim.rest_url(), opts);
        let config = Config::from_str(&text, &path.display().to_string()).expect("config");
        let socket = config.socket.clone();
        let state = ordergate::app::open_state(&config).expect("open the state dir");
        let ns = state.namespace().expect("a namespace after open_state");
        let app = ordergate::app::start(config.clone(), state).expect("start the sidecar");
        wait_for_socket(&socket);
        Harness {
            sim,
            app: Some(app),
            socket,
            ns,
            config,
            _dir: dir,
        }
    }

    /// Stops the sidecar (cleanly, orders left resting) and starts a new
    /// one on the same config and state directory: a new epoch that
    /// replays the journal and adopts the open orders.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stops the sidecar as SIGTERM does: no new orders, what was sent
    /// answered, open orders left or cancelled by `[gateway] on_shutdown`.
    pub fn drain(&mut self) {
        if let Some(app) = self.app.take() {
            app.drain_and_stop()
                .expect("the sidecar drains and stops cleanly");
        }
    }

    /// Stops the sidecar; [`Harness::start_again`] starts the next one.
    pub fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().expect("the sidecar stops cleanly");
        }
    }

    pub fn start_again(&mut self) {
        let state = ordergate::app::open_state(&self.config).expect("open the state dir");
        self.ns = state.namespace().expect("a namespace after open_state");
        let app = ordergate::app::start(self.config.clone(), state).expect("start the sidecar");
        wait_for_socket(&self.socket);
        self.app = Some(app);
    }

    /// Connects as `name` without waiting for the venue.
    pub fn connect(&self, name: &str) -> Strat {
        Strat::new(Client::connect(&self.socket, name).expect("connect to the sidecar"))
    }

    /// Connects as `name` and waits for the venue to be up.
    pub fn trader(&self, name: &str) -> Strat {
        let mut s = self.connect(name);
        s.wait_venue(VenueState::Up);
        s
    }

    /// The venue's record of `order_id` of `strategy`, found by the
    /// client order id the sidecar gave it (in whichever run).
    pub fn ledger_entry(&self, strategy: StrategyId, order_id: u64) -> Option<LedgerEntry> {
        // Any run of this installation: an adopted order keeps the id
        // its first run gave it.
        let key = OrderKey { strategy, order_id };
        self.sim.ledger().into_iter().find(|e| {
            ClientId::decode(&e.order.client_order_id).is_some_and(|c| {
                c.ns.installation == self.ns.installation
                    && c.key == key
                    && c.kind == ordergate::ids::ClientIdKind::Order
            })
        })
    }

    /// Asserts that what the strategy saw of an order equals the venue's
    /// record: state, executed quantity and quote quantity, exactly.
    pub fn assert_matches_ledger(&self, strategy: StrategyId, t: &Track) {
        let e = self
            .ledger_entry(strategy, t.order_id)
            .unwrap_or_else(|| panic!("order {} is not in the venue's ledger", t.order_id));
        assert_entry_matches(&e, t);
    }
}

/// Asserts that what the strategy saw of an order (`t`) equals the
/// venue's record of it (`e`): state, executed quantity and quote
/// quantity, exactly, and one Fill per trade.
pub fn assert_entry_matches(e: &LedgerEntry, t: &Track) {
    let o = &e.order;
    assert_eq!(
        o.status.as_str(),
        venue_status(t.state()),
        "order {}: state here {:?}, at the venue {}",
        t.order_id,
        t.state(),
        o.status.as_str()
    );
    let executed = WideDecimal::new(o.executed_qty as i128, o.scales.qty_scale);
    assert_eq!(
        executed.to_fixed(t.qty_scale),
        Some(t.cum_qty()),
        "order {}: executed qty",
        t.order_id
    );
    let quote = WideDecimal::new(o.cum_quote_qty, o.scales.notional_scale()).normalized();
    let ours = WideDecimal::new(t.cum_notional(), t.price_scale + t.qty_scale).normalized();
    assert_eq!(quote, ours, "order {}: quote qty", t.order_id);
    assert_eq!(
        e.trades.len(),
        t.fills.len(),
        "order {}: one Fill per venue trade",
        t.order_id
    );
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            let r = app.stop();
            if !std::thread::panicking() {
                r.expect("the sidecar stops cleanly");
            }
        }
    }
}

fn venue_status(s: OrderState) -> &'static str {
    match s {
        OrderState::New => "NEW",
        OrderState::PartiallyFilled => "PARTIALLY_FILLED",
        OrderState::Filled => "FILLED",
        OrderState::Canceled => "CANCELED",
        OrderState::Expired => "EXPIRED",
        _ => "(not a venue state)",
    }
}

/// A decimal string as a mantissa at `scale`.
pub fn fixed(s: &str, scale: u8) -> i64 {
    parse_fixed(s, scale).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Everything a strategy heard about one order.
#[derive(Debug, Clone)]
pub struct Track {
    pub order_id: u64,
    pub price_scale: u8,
    pub qty_scale: u8,
    pub accepted: Option<String>,
    pub fills: Vec<Fill>,
    pub rejected: Option<(Reason, String)>,
    pub canceled: Option<i64>,
    pub expired: Option<i64>,
    pub cancel_rejected: Vec<(Reason, String)>,
    pub status: Vec<OrderStatus>,
}

impl Track {
    fn new(order_id: u64, inst: &InstrumentInfo) -> Track {
        Track {
            order_id,
            price_scale: inst.price_scale,
            qty_scale: inst.qty_scale,
            accepted: None,
            fills: Vec::new(),
            rejected: None,
            canceled: None,
            expired: None,
            cancel_rejected: Vec::new(),
            status: Vec::new(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.state().is_terminal()
    }

    pub fn state(&self) -> OrderState {
        if self.rejected.is_some() {
            OrderState::Rejected
        } else if self.canceled.is_some() {
            OrderState::Canceled
        } else if self.expired.is_some() {
            OrderState::Expired
        } else if self.fills.last().is_some_and(|f| f.leaves_qty == 0)
            || self
                .status
                .last()
                .is_some_and(|s| s.state == OrderState::Filled)
        {
            OrderState::Filled
        } else if !self.fills.is_empty() {
            OrderState::PartiallyFilled
        } else if self.accepted.is_some() {
            OrderState::New
        } else if self
            .status
            .last()
            .is_some_and(|s| s.state == OrderState::Unknown)
        {
            OrderState::Unknown
        } else {
            OrderState::PendingNew
        }
    }

    /// Cumulative quantity: the last Fill's, or the final message's.
    pub fn cum_qty(&self) -> i64 {
        self.canceled
            .or(self.expired)
            .or(self.fills.last().map(|f| f.cum_qty))
            .unwrap_or(0)
    }

    pub fn cum_notional(&self) -> i128 {
        self.fills.last().map_or(0, |f| f.cum_notional)
    }

    /// Checks the fills add up: quantities, notionals, leaves.
    pub fn assert_fills_consistent(&self, qty: i64) {
        let mut cum = 0i64;
        let mut notional = 0i128;
        for f in &self.fills {
            cum += f.last_qty;
            notional += f.last_price as i128 * f.last_qty as i128;
            assert_eq!(f.cum_qty, cum, "order {}: cum qty", self.order_id);
            assert_eq!(
                f.cum_notional, notional,
                "order {}: notional",
                self.order_id
            );
            assert_eq!(
                f.avg_price,
                ordergate::decimal::average_price(notional, cum),
                "order {}: avg price",
                self.order_id
            );
            if self.expired.is_none() && self.canceled.is_none() {
                assert_eq!(f.leaves_qty, qty - cum, "order {}: leaves", self.order_id);
            }
        }
    }
}

/// A connected strategy that checks, for every sequenced message, that
/// its number follows the previous one (or HelloAck's `next_seq`).
pub struct Strat {
    pub client: Client,
    pub inst: InstrumentInfo,
    /// The last sequence number seen.
    pub last_seq: u64,
    /// After [`Strat::reconnect`], until the first message of the replay:
    /// HelloAck's `next_seq`. Messages from it on may come live before
    /// the replay (which carries them again) and are skipped.
    pub catch_up: Option<u64>,
    pub venue_states: Vec<(VenueState, String)>,
    pub errors: Vec<(Reason, String)>,
    pub tracks: HashMap<u64, Track>,
}

impl Strat {
    pub fn new(client: Client) -> Strat {
        let inst = client
            .instrument(SYMBOL)
            .cloned()
            .expect("the sidecar offers BTCUSDT");
        let last_seq = client.next_seq() - 1;
        Strat {
            client,
            inst,
            last_seq,
            catch_up: None,
            venue_states: Vec::new(),
            errors: Vec::new(),
            tracks: HashMap::new(),
        }
    }

    /// Connects again as the same strategy after the sidecar restarted,
    /// and asks for everything after the last message seen: the tracks
    /// carry on, and the sequence must continue without gap or repeat.
    pub fn reconnect(&mut self, socket: &Path, name: &str) {
        let mut client = Client::connect(socket, name).expect("reconnect to the sidecar");
        client
            .resend_from(self.last_seq + 1)
            .expect("send ResendFrom");
        self.catch_up = (client.next_seq() > self.last_seq + 1).then_some(client.next_seq());
        self.client = client;
    }

    /// A price string as a mantissa at the instrument's price scale.
    pub fn px(&self, s: &str) -> i64 {
        fixed(s, self.inst.price_scale)
    }

    pub fn qty(&self, s: &str) -> i64 {
        fixed(s, self.inst.qty_scale)
    }

    /// The next message, within [`WAIT`]; checks the sequence and files
    /// the message under its order.
    pub fn next(&mut self) -> Outbound {
        self.poll(WAIT)
            .unwrap_or_else(|| panic!("nothing from the sidecar within {WAIT:?}"))
    }

    /// The next message if one comes within `d` (filed like `next`).
    pub fn poll(&mut self, d: Duration) -> Option<Outbound> {
        self.try_poll(d).expect("receive from the sidecar")
    }

    /// [`Strat::poll`] that returns a receive error (the sidecar gone)
    /// instead of panicking.
    pub fn try_poll(&mut self, d: Duration) -> Result<Option<Outbound>, ClientError> {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((seq, msg)) = self.client.recv_timeout(left)? else {
                return Ok(None);
            };
            if self.file(seq, &msg) {
                return Ok(Some(msg));
            }
        }
    }

    /// Checks the sequence and files `msg`; false for a message skipped
    /// (sent live before a replay that carries it again).
    fn file(&mut self, seq: u64, msg: &Outbound) -> bool {
        if msg.is_sequenced() {
            if self
                .catch_up
                .is_some_and(|live| seq > self.last_seq + 1 && seq >= live)
            {
                return false;
            }
            self.catch_up = None;
            assert_eq!(
                seq,
                self.last_seq + 1,
                "sequence gap or repeat before {msg:?}"
            );
            self.last_seq = seq;
        } else {
            assert_eq!(seq, 0, "unsequenced {msg:?} carries seq {seq}");
        }
        let order_id = match msg {
            Outbound::Accepted { order_id, .. }
            | Outbound::Rejected { order_id, .. }
            | Outbound::Canceled { order_id, .. }
            | Outbound::Expired { order_id, .. }
            | Outbound::CancelRejected { order_id, .. } => *order_id,
            Outbound::Fill(f) => f.order_id,
            Outbound::OrderStatus(s) => s.order_id,
            Outbound::VenueStatus { state, text, .. } => {
                self.venue_states.push((*state, text.clone()));
                return true;
            }
            Outbound::Error { reason, text } => {
                self.errors.push((*reason, text.clone()));
                return true;
            }
            Outbound::HelloAck { .. } | Outbound::InstrumentInfo(_) | Outbound::Heartbeat => {
                return true
            }
        };
        let inst = &self.inst;
        let t = self
            .tracks
            .entry(order_id)
            .or_insert_with(|| Track::new(order_id, inst));
        match msg {
            Outbound::Accepted { venue_order_id, .. } => t.accepted = Some(venue_order_id.clone()),
            Outbound::Rejected { reason, text, .. } => t.rejected = Some((*reason, text.clone())),
            Outbound::Fill(f) => t.fills.push(f.clone()),
            Outbound::Canceled { cum_qty, .. } => t.canceled = Some(*cum_qty),
            Outbound::Expired { cum_qty, .. } => t.expired = Some(*cum_qty),
            Outbound::CancelRejected { reason, text, .. } => {
                t.cancel_rejected.push((*reason, text.clone()))
            }
            Outbound::OrderStatus(s) => t.status.push(s.clone()),
            _ => unreachable!("filed above"),
        }
        true
    }

    /// Reads until the venue reports `state`.
    pub fn wait_venue(&mut self, state: VenueState) {
        let deadline = Instant::now() + WAIT;
        while self.venue_states.last().map(|s| s.0) != Some(state) {
            assert!(
                Instant::now() < deadline,
                "venue not {state:?} within {WAIT:?}; saw {:?}",
                self.venue_states
            );
            self.next();
        }
    }

    /// Reads until `pred` holds for what was received.
    pub fn until(&mut self, what: &str, pred: impl Fn(&Strat) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(self) {
            assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
            self.next();
        }
    }

    pub fn track(&self, order_id: u64) -> &Track {
        &self.tracks[&order_id]
    }

    /// Reads until `order_id` is final; returns what was heard of it.
    pub fn follow(&mut self, order_id: u64) -> Track {
        self.until(&format!("order {order_id} final"), |s| {
            s.tracks.get(&order_id).is_some_and(Track::is_terminal)
        });
        self.tracks[&order_id].clone()
    }

    /// Reads until `order_id` has its first answer.
    pub fn first_answer(&mut self, order_id: u64) -> Track {
        self.until(&format!("order {order_id} answered"), |s| {
            s.tracks
                .get(&order_id)
                .is_some_and(|t| t.state() != OrderState::PendingNew || !t.status.is_empty())
        });
        self.tracks[&order_id].clone()
    }

    /// Sends Heartbeat and reads up to its answer: everything the sidecar
    /// had queued for us before it is then in.
    pub fn sync(&mut self) {
        self.client.heartbeat().expect("send heartbeat");
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no Heartbeat answer");
            if self.next() == Outbound::Heartbeat {
                return;
            }
        }
    }

    pub fn send(&mut self, o: NewOrder) {
        self.client.new_order(&o).expect("send NewOrder");
    }

    pub fn limit(&self, order_id: u64, side: Side, price: &str, qty: &str) -> NewOrder {
        NewOrder {
            order_id,
            instrument_id: self.inst.instrument_id,
            side,
            ord_type: OrdType::Limit,
            tif: TimeInForce::Gtc,
            flags: 0,
            price: self.px(price),
            qty: self.qty(qty),
        }
    }

    pub fn market(&self, order_id: u64, side: Side, qty: &str) -> NewOrder {
        NewOrder {
            ord_type: OrdType::Market,
            price: 0,
            ..self.limit(order_id, side, "1", qty)
        }
    }

    pub fn cancel(&mut self, order_id: u64) {
        self.client.cancel(order_id).expect("send Cancel");
    }
}
