//! The venue session driver: a generic pump around a [`VenueProtocol`].
//!
//! It keeps every connection the adapter declares open, each on its own:
//! WebSockets (tokio-tungstenite) and HTTP/1.1 keep-alive connections
//! (hyper's client connection), both over TCP, through tokio-rustls for
//! `wss://`/`https://`. Each connection has its own reconnect policy and
//! exponential backoff, so the end of one never takes the others down. When
//! the adapter asks to replace a connection (make before break), the fresh
//! socket is opened while the old one is still read, and the rings are
//! drained all the while.
//!
//! The pump: drain the command rings in lane order (peeking, so a lane the
//! limiter holds keeps its head), hand commands to the adapter, hand every
//! transmit to the wire in the order the adapter wrote it (through
//! [`Gate`], the one place the rate limiter will sit), feed received frames
//! and responses back, and push the adapter's reports onto the ring to the
//! desk. The adapter is the one owner of venue state: the session forwards
//! its status reports and says nothing of its own; while the venue cannot
//! take orders the adapter refuses them and the session answers the
//! strategy at once.
//!
//! Liveness: every WebSocket (live or replaced) quiet for
//! [`LivenessConfig::ping_interval`] is pinged, and closed if nothing at all
//! is read within [`LivenessConfig::pong_timeout`] after the ping; its end
//! is reported as any other (`on_close`, or `on_drained` for a replaced
//! one) and the connection reconnects. Every TCP connection has keepalive
//! ([`tune_tcp`]). Request deadlines are the adapter's: it asks
//! [`VenueOutput::CloseConnection`], and the connection's live socket is
//! closed (its replaced ones only when it has no live one).
//!
//! It runs as a task on a tokio current-thread runtime, so the same code
//! serves the `single` layout (one runtime hosts everything) and the
//! `pinned` layout (one runtime per pinned thread).

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{
    AbortHandle, Abortable, BoxStream, FuturesUnordered, SelectAll, SplitSink,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn, Instrument};

use crate::clock::MonoClock;
use crate::doorbell::{Doorbell, Ringer, WaitStrategy};
use crate::ids::{ClientId, VenueId};
use crate::limiter::{Counts, Limiter, Rule};
use crate::protocol::Reason;
use crate::ring::{Consumer, Producer};
use crate::venue::{
    Command, ConnId, ConnRole, ConnSpec, Cost, ExecEvent, HttpRequest, HttpResponse, Lane, Now,
    Outbox, Payload, Report, Transmit, Transport, VenueError, VenueOutput, VenueProtocol,
};

/// Any byte stream a connection can run over (TCP, or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Ws = WebSocketStream<Box<dyn Io>>;
type HttpSender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// How long connecting (TCP, TLS and the upgrade or handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an unreadable frame a log line shows.
const LOGGED_FRAME_BYTES: usize = 200;
/// TCP keepalive on every connection the session opens: the first probe
/// after this long without traffic, ...
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// ... then one probe this often, ...
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// ... and the kernel ends the connection after this many unanswered.
pub const TCP_KEEPALIVE_PROBES: u32 = 3;

/// Why a connection attempt or a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("bad venue url {0:?}: {1}")]
    BadUrl(String, String),
    #[error("connect to {url}: {source}")]
    Connect {
        url: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0} requires TLS but no TLS configuration was given")]
    NoTls(String),
    #[error("doorbell: {0}")]
    Doorbell(#[from] std::io::Error),
}

/// The command rings one session drains: per strategy, one ring per lane.
pub struct CommandInputs {
    lanes: [Vec<Consumer<Command>>; 3],
    /// Orders answered Canceled in the queue: their cancels, still queued
    /// behind, are dropped when they come up (never sent).
    canceled_in_queue: std::collections::HashSet<ClientId>,
    /// Per ring: its head, while the gate holds it.
    held: [Vec<Option<HeldHead>>; 3],
    next: [usize; 3],
}

/// A ring head the gate holds: since when, and how far behind it the ring
/// was already searched for its cancel (the desk queues the cancel of an
/// unacknowledged order right behind it, on its lane).
#[derive(Debug, Clone, Copy)]
struct HeldHead {
    since_ns: u64,
    scanned: usize,
}

/// What [`CommandInputs::pop_admitted`] took off a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Admitted: send it.
    Admitted(Command),
    /// A new order held longer than the stale bound: refuse it
    /// (`Throttled`) rather than send it late.
    Stale(Command),
    /// A new order still queued whose cancel was queued behind it: it
    /// never reaches the venue, and is answered Canceled here.
    CanceledInQueue(Command),
}

impl Default for CommandInputs {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandInputs {
    pub fn new() -> Self {
        CommandInputs {
            lanes: [Vec::new(), Vec::new(), Vec::new()],
            canceled_in_queue: std::collections::HashSet::new(),
            held: [Vec::new(), Vec::new(), Vec::new()],
            next: [0; 3],
        }
    }

    /// Adds one strategy's ring for `lane`.
    pub fn add(&mut self, lane: Lane, ring: Consumer<Command>) {
        self.lanes[lane as usize].push(ring);
        self.held[lane as usize].push(None);
    }

    /// The next command `admit` lets through: critical lane first, then
    /// normal, then bulk (strict priority: a held lane holds the lanes
    /// below it too); round-robin between strategies inside a lane so one
    /// busy strategy cannot starve another. A command `admit` refuses
    /// stays at the head of its ring (peeked, not popped) — unless it is a
    /// new order held for longer than `stale_ns`, which comes back as
    /// [`Taken::Stale`].
    pub fn pop_admitted(
        &mut self,
        now_ns: u64,
        stale_ns: u64,
        mut admit: impl FnMut(Lane, &Command) -> bool,
    ) -> Option<Taken> {
        for (lane, lane_id) in Lane::ALL.into_iter().enumerate() {
            let n = self.lanes[lane].len();
            let mut held = false;
            for i in 0..n {
                let idx = (self.next[lane] + i) % n;
                let Some(&head) = self.lanes[lane][idx].peek() else {
                    continue;
                };
                // The cancel of an order canceled in the queue: its answer
                // was given already; nothing goes to the venue.
                if let Command::Cancel { orig, .. } = head {
                    if self.canceled_in_queue.remove(&orig) {
                        self.held[lane][idx] = None;
                        self.lanes[lane][idx].pop();
                        return self.pop_admitted(now_ns, stale_ns, admit);
                    }
                }
                if !held && admit(lane_id, &head) {
                    self.held[lane][idx] = None;
                    let cmd = self.lanes[lane][idx].pop()?;
                    self.next[lane] = (idx + 1) % n;
                    return Some(Taken::Admitted(cmd));
                }
                // Held: every ring's head in this lane is checked for a
                // cancel queued behind it, and for staleness.
                held = true;
                let Command::Place(o) = head else {
                    continue;
                };
                let h = self.held[lane][idx].get_or_insert(HeldHead {
                    since_ns: now_ns,
                    scanned: 1,
                });
                // Only what arrived since the last look is scanned.
                let ring = &mut self.lanes[lane][idx];
                let len = ring.len();
                let canceled = (h.scanned..len).any(|i| {
                    matches!(ring.peek_at(i), Some(Command::Cancel { orig, .. }) if *orig == o.client_id)
                });
                h.scanned = len.max(1);
                // From when the desk queued it, where it says.
                let queued = if o.queued_ns > 0 {
                    o.queued_ns
                } else {
                    h.since_ns
                };
                let stale = now_ns.saturating_sub(queued) > stale_ns;
                if canceled || stale {
                    self.held[lane][idx] = None;
                    let cmd = self.lanes[lane][idx].pop()?;
                    if canceled {
                        self.canceled_in_queue.insert(o.client_id);
                        return Some(Taken::CanceledInQueue(cmd));
                    }
                    return Some(Taken::Stale(cmd));
                }
            }
            if held {
                // Strict priority: a held lane holds the lanes below it.
                return None;
            }
        }
        None
    }

    /// The next command, admitting everything.
    pub fn pop(&mut self) -> Option<Command> {
        match self.pop_admitted(0, u64::MAX, |_, _| true)? {
            Taken::Admitted(c) | Taken::Stale(c) | Taken::CanceledInQueue(c) => Some(c),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.iter().flatten().all(|r| r.is_empty())
    }
}

/// The ring back to the desk. A full ring never drops a report: the
/// overflow waits here and is retried, because a lost fill is a lost trade.
pub struct EventOutput {
    ring: Producer<Report>,
    ringer: Ringer,
    overflow: VecDeque<Report>,
}

impl EventOutput {
    pub fn new(ring: Producer<Report>, ringer: Ringer) -> Self {
        EventOutput {
            ring,
            ringer,
            overflow: VecDeque::new(),
        }
    }

    fn push_all(&mut self, reports: &mut Vec<Report>) {
        if reports.is_empty() {
            return;
        }
        if self.overflow.is_empty() {
            // One publishing store for the whole batch.
            let mut it = reports.drain(..);
            let n = self.ring.push_batch(&mut it);
            self.overflow.extend(it);
            if n > 0 {
                self.ringer.ring();
            }
        } else {
            self.overflow.extend(reports.drain(..));
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.overflow.is_empty() {
            return;
        }
        // `push_batch` takes only what fits, so nothing is popped that is
        // not pushed.
        let overflow = &mut self.overflow;
        let n = self
            .ring
            .push_batch(&mut std::iter::from_fn(|| overflow.pop_front()));
        if n > 0 {
            self.ringer.ring();
        }
    }
}

/// How one connection is re-established after it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The first retry's delay, doubled after every failure.
    pub min: Duration,
    pub max: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            min: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

/// How the session tells a dead WebSocket from a quiet one: every socket
/// (live or replaced) from which nothing was read for `ping_interval` gets
/// a WebSocket Ping; if nothing at all (pong, data, ping) is read within
/// `pong_timeout` after it, the socket is closed and its end reported to
/// the adapter like any other, and the connection reconnects as usual.
/// HTTP connections are not pinged (TCP keepalive only); request
/// deadlines are the adapter's (`VenueOutput::CloseConnection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessConfig {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(10),
        }
    }
}

/// How a session reaches its venue (its liveness: [`Session::with_liveness`]).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Needed for `wss://` and `https://` URLs.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub wait: WaitStrategy,
    /// The reconnect policy of connections not named in `per_role`.
    pub reconnect: ReconnectPolicy,
    /// Policies by connection role (e.g. REST backs off further).
    pub per_role: Vec<(ConnRole, ReconnectPolicy)>,
    pub limits: LimitsConfig,
}

impl SessionConfig {
    fn policy(&self, spec: &ConnSpec) -> ReconnectPolicy {
        self.per_role
            .iter()
            .find(|(r, _)| *r == spec.role)
            .map_or(self.reconnect, |(_, p)| *p)
    }
}

/// How the session's limiter is set up (`[venue.limits]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Rules that replace the venue's (same counts and window) or add to
    /// them; what the venue publishes never overrides these.
    pub overrides: Vec<Rule>,
    /// The share of every rule only the critical lane may use.
    pub reserve_permille: u16,
    /// How much longer than the venue's window the local one is (clock
    /// offset and network jitter).
    pub margin_ms: u64,
    /// A new order held longer than this is refused `Throttled` rather
    /// than sent late (keep it below recvWindow minus the round trip).
    pub stale_ms: u64,
    /// Requests the venue has not answered yet, at most: so the lanes'
    /// order is the wire order, nothing queues below the limiter.
    pub max_in_flight: usize,
    /// Admit whatever the venue has not paused or banned, counting still
    /// (the flood demo's control run).
    pub pass_through: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            overrides: Vec::new(),
            reserve_permille: 200,
            margin_ms: 1_000,
            stale_ms: 3_000,
            max_in_flight: 16,
            pass_through: false,
        }
    }
}

/// Where every transmit passes on its way to the wire, in order: the
/// limiter admits commands before the adapter encodes and signs them (so
/// a request never waits after it was signed), and the adapter's own
/// queries (bulk lane) before they are written.
#[derive(Debug)]
struct Gate {
    limiter: Limiter,
    config: LimitsConfig,
    /// What went out so far.
    sent: Cost,
    /// The adapter's own transmits waiting for room, in order.
    held: VecDeque<Transmit>,
    /// When a held request may fit: the session wakes then.
    retry_at_ns: Option<u64>,
    /// The last drain stopped with commands still queued.
    holding: bool,
}

impl Gate {
    fn new(rules: &[Rule], config: LimitsConfig) -> Gate {
        let mut limiter = Limiter::new(rules, config.reserve_permille, config.margin_ms);
        for r in &config.overrides {
            limiter.set_rule(*r);
        }
        limiter.set_pass_through(config.pass_through);
        Gate {
            limiter,
            config,
            sent: Cost::default(),
            held: VecDeque::new(),
            retry_at_ns: None,
            holding: false,
        }
    }

    /// Admits (and counts) a request of `cost` in `lane`, or notes when to
    /// try again.
    fn admit(&mut self, now_ns: u64, lane: Lane, cost: Cost) -> bool {
        match self.limiter.admit(now_ns, lane, cost) {
            Ok(()) => true,
            Err(w) => {
                debug!(?lane, wait = ?w, "held by the limiter");
                let t = w.until_ns();
                self.retry_at_ns = Some(self.retry_at_ns.map_or(t, |r| r.min(t)));
                false
            }
        }
    }

    /// What the venue published or counted: its limit replaces ours unless
    /// the config set it; its count may only raise ours.
    fn usage(
        &mut self,
        now_ns: u64,
        counts: Counts,
        window_ms: u64,
        limit: Option<u32>,
        count: u32,
    ) {
        let overridden = self
            .config
            .overrides
            .iter()
            .any(|r| r.counts == counts && r.window_ms == window_ms);
        if let (Some(limit), false) = (limit, overridden) {
            let known = self
                .limiter
                .rules()
                .any(|r| r.counts == counts && r.window_ms == window_ms && r.limit == limit);
            if !known {
                info!(counts = counts.as_str(), window_ms, limit, "venue limit");
                if !self.limiter.set_rule(Rule::new(counts, window_ms, limit)) {
                    warn!(
                        counts = counts.as_str(),
                        window_ms, "no room for another rate-limit rule; ignored"
                    );
                }
            }
        }
        self.limiter.observe(now_ns, counts, window_ms, count);
    }

    /// Accounts one transmit going to the wire.
    fn pass(&mut self, t: &Transmit) {
        self.sent.weight = self.sent.weight.wrapping_add(t.cost.weight);
        self.sent.orders = self.sent.orders.wrapping_add(t.cost.orders);
    }
}

/// A socket that is open.
enum Link {
    Ws {
        generation: u32,
        sink: SplitSink<Ws, Message>,
        alive: Alive,
        /// Ends its reader, so the socket is dropped (closed) with it.
        stop: AbortHandle,
    },
    Http {
        generation: u32,
        /// `None` while a request is in flight (the sender travels with it).
        sender: Option<HttpSender>,
        queue: VecDeque<HttpRequest>,
        authority: String,
        /// Ends its connection driver, which owns the socket.
        stop: AbortHandle,
    },
}

impl Link {
    fn generation(&self) -> u32 {
        match self {
            Link::Ws { generation, .. } | Link::Http { generation, .. } => *generation,
        }
    }

    /// Closes the socket for good: its reader (or HTTP driver) stops at
    /// its next poll and drops it; the write half goes with the `Link`.
    fn stop(&self) {
        match self {
            Link::Ws { stop, .. } | Link::Http { stop, .. } => stop.abort(),
        }
    }

    /// Superseded by a make-before-break replacement: a WebSocket keeps
    /// being read (and pinged) until it ends, but nothing else is written
    /// to it; an HTTP connection takes no more requests and ends once idle
    /// (its sender is dropped; one in flight still brings its answer).
    fn retire(&mut self) {
        if let Link::Http { sender, queue, .. } = self {
            *sender = None;
            queue.clear();
        }
    }
}

/// What a WebSocket's liveness is judged by. Touched on every frame read
/// (one clock read, no allocation), checked on the session's timers.
#[derive(Debug, Clone, Copy)]
struct Alive {
    /// When anything at all was last read from the socket.
    last_read_ns: u64,
    /// The ping sent since then, if any.
    ping_sent_ns: Option<u64>,
}

impl Alive {
    fn new(now_ns: u64) -> Alive {
        Alive {
            last_read_ns: now_ns,
            ping_sent_ns: None,
        }
    }

    fn read(&mut self, now_ns: u64) {
        self.last_read_ns = now_ns;
        self.ping_sent_ns = None;
    }

    /// When the socket needs looking at next: its ping, or its pong's
    /// deadline.
    fn due_ns(&self, l: &LivenessConfig) -> u64 {
        match self.ping_sent_ns {
            None => self.last_read_ns.saturating_add(nanos(l.ping_interval)),
            Some(t) => t.saturating_add(nanos(l.pong_timeout)),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One of the adapter's connections, with its own reconnect state.
struct Slot {
    id: ConnId,
    spec: ConnSpec,
    policy: ReconnectPolicy,
    backoff: Duration,
    /// Bumped for every socket, so the end of a replaced one is told apart
    /// from the end of the live one.
    generation: u32,
    /// Where this connection's transmits go.
    live: Option<Link>,
    /// Replaced sockets still being read.
    draining: Vec<Link>,
    /// An attempt is under way.
    connecting: bool,
    retry_at: Option<Instant>,
}

/// A socket just opened.
enum Opened {
    Ws(Box<Ws>),
    Http {
        sender: HttpSender,
        driver: BoxFuture<'static, String>,
        authority: String,
    },
}

type WsItem = Result<Message, tokio_tungstenite::tungstenite::Error>;
/// Frames tagged with (connection, socket generation); `None` marks the
/// end of that socket's stream.
type Tagged = BoxStream<'static, (ConnId, u32, Option<WsItem>)>;
type Connecting = BoxFuture<'static, (ConnId, u32, Result<Opened, SessionError>)>;
type HttpDone = BoxFuture<'static, (ConnId, u32, Result<(HttpSender, HttpResponse), String>)>;
type LinkEnd = BoxFuture<'static, (ConnId, u32, String)>;

/// How a socket's end came about, for its one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndedBy {
    /// The venue or the network ended it: logged here.
    Wire,
    /// The session closed it (no pong, or the adapter's `CloseConnection`)
    /// and logged why already.
    Session,
}

/// Something that happened on the wire.
enum Wire {
    Frame(ConnId, u32, Option<WsItem>),
    Connected(ConnId, u32, Result<Opened, SessionError>),
    Http(ConnId, u32, Result<(HttpSender, HttpResponse), String>),
    HttpEnded(ConnId, u32, String),
}

/// One venue session: an adapter, its connections and its rings.
pub struct Session {
    protocol: Box<dyn VenueProtocol>,
    venue: VenueId,
    inputs: CommandInputs,
    doorbell: Doorbell,
    output: EventOutput,
    config: SessionConfig,
    clock: MonoClock,
    gate: Gate,
    slots: Vec<Slot>,
    reads: SelectAll<Tagged>,
    connects: FuturesUnordered<Connecting>,
    http: FuturesUnordered<HttpDone>,
    http_ends: FuturesUnordered<LinkEnd>,
    /// Reused buffers: the adapter's outbox, the reports for the desk, and
    /// the receive buffer for the adapter's in-place parser.
    outbox: Outbox,
    transmits: Vec<Transmit>,
    /// Transmits of commands the gate admitted, not yet written.
    admitted: Vec<Transmit>,
    events: Vec<VenueOutput>,
    reports: Vec<Report>,
    frame: Vec<u8>,
    next_counters: Instant,
    /// For reconnect jitter.
    jitter_seed: u64,
    liveness: LivenessConfig,
    /// Sockets found dead on a pass (reused).
    dead: Vec<(usize, u32)>,
}

impl Session {
    pub fn new(
        protocol: Box<dyn VenueProtocol>,
        inputs: CommandInputs,
        doorbell: Doorbell,
        output: EventOutput,
        config: SessionConfig,
    ) -> Self {
        let venue = protocol.venue();
        let protocol_rules = protocol.default_rules();
        let gate = Gate::new(&protocol_rules, config.limits.clone());
        Session {
            protocol,
            venue,
            inputs,
            doorbell,
            output,
            config,
            clock: MonoClock::new(),
            gate,
            slots: Vec::new(),
            reads: SelectAll::new(),
            connects: FuturesUnordered::new(),
            http: FuturesUnordered::new(),
            http_ends: FuturesUnordered::new(),
            outbox: Outbox::new(),
            transmits: Vec::new(),
            admitted: Vec::new(),
            events: Vec::new(),
            reports: Vec::new(),
            frame: Vec::with_capacity(4096),
            next_counters: Instant::now() + crate::logging::COUNTERS_EVERY,
            jitter_seed: crate::clock::system_ms() | 1,
            liveness: LivenessConfig::default(),
            dead: Vec::new(),
        }
    }

    /// Sets how quiet WebSockets are pinged and judged dead (by default
    /// [`LivenessConfig::default`]: a ping after 10 s without a read, dead
    /// 10 s after it).
    pub fn with_liveness(mut self, liveness: LivenessConfig) -> Self {
        self.liveness = liveness;
        self
    }

    /// The periodic counters line: what went out and what the adapter
    /// counted but did not pass on.
    fn log_counters(&mut self) {
        let now = Instant::now();
        if now < self.next_counters {
            return;
        }
        self.next_counters = now + crate::logging::COUNTERS_EVERY;
        let adapter: Vec<String> = self
            .protocol
            .counters()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut rules = Vec::new();
        self.gate.limiter.usage(self.clock.now_ns(), &mut |u| {
            rules.push(format!(
                "{}/{}ms={}/{} (reserved {}, resets in {} ms)",
                u.rule.counts.as_str(),
                u.rule.window_ms,
                u.used,
                u.rule.limit,
                u.reserved,
                u.resets_in_ns / 1_000_000
            ))
        });
        info!(
            target: "ordergate::counters",
            sent_weight = self.gate.sent.weight,
            sent_orders = self.gate.sent.orders,
            held = self.gate.held.len(),
            limits = %rules.join(", "),
            adapter = %adapter.join(" "),
            "counters"
        );
    }

    /// Shares `clock` (the desk's), so the times the desk stamps on
    /// commands compare with the session's.
    pub fn with_clock(mut self, clock: MonoClock) -> Self {
        self.clock = clock;
        self
    }

    /// Raw local time: the adapter keeps its own venue clock.
    fn now(&self) -> Now {
        Now {
            mono_ns: self.clock.now_ns(),
            wall_ms: crate::clock::system_ms(),
        }
    }

    /// Runs until `shutdown` is notified.
    pub async fn run(
        self,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SessionError> {
        let span = tracing::info_span!("venue_session", venue = %self.venue);
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SessionError> {
        let bell = crate::asyncfd::register_async(self.doorbell.as_fd())?;
        let specs = self.protocol.connections();
        info!(
            connections = specs.len(),
            wait = self.config.wait.as_str(),
            "session starting"
        );
        for (i, spec) in specs.into_iter().enumerate() {
            let policy = self.config.policy(&spec);
            self.slots.push(Slot {
                id: ConnId(i as u16),
                spec,
                policy,
                backoff: policy.min,
                generation: 0,
                live: None,
                draining: Vec::new(),
                connecting: false,
                retry_at: None,
            });
            self.start_connect(i);
        }
        let spin = self.config.wait == WaitStrategy::Spin;
        loop {
            self.log_counters();
            self.service_due();
            self.drain_commands();
            self.flush().await;

            if !spin {
                self.doorbell.prepare_sleep();
                // Commands the gate holds are not work to do now: wait for
                // an answer (in-flight window) or the limiter's time.
                let runnable = !self.inputs.is_empty() && !self.gate.holding;
                if runnable || !self.output.overflow.is_empty() {
                    self.doorbell.cancel_sleep();
                    self.output.flush();
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            // Timers are checked against the clock at the top of the loop,
            // so in spin mode nothing depends on a sleep firing: a sleep
            // created afresh every pass is never ready on its first poll,
            // and under `biased` an already-yielded `yield_now` always won.
            let deadline = self.next_deadline();
            let wire = tokio::select! {
                biased;
                _ = crate::app::stopped(&mut shutdown) => {
                    self.close_all().await;
                    return Ok(());
                }
                Some((c, g, item)) = self.reads.next() => Some(Wire::Frame(c, g, item)),
                Some((c, g, r)) = self.connects.next() => Some(Wire::Connected(c, g, r)),
                Some((c, g, r)) = self.http.next() => Some(Wire::Http(c, g, r)),
                Some((c, g, why)) = self.http_ends.next() => Some(Wire::HttpEnded(c, g, why)),
                g = bell.readable(), if !spin => {
                    if let Ok(mut g) = g { g.clear_ready(); }
                    let _ = self.doorbell.drain();
                    None
                }
                _ = tokio::task::yield_now(), if spin => None,
                _ = tokio::time::sleep_until(deadline), if !spin => None,
            };
            self.doorbell.cancel_sleep();
            if let Some(w) = wire {
                self.on_wire(w);
            }
        }
    }

    /// The next timer of the adapter or of a reconnect, at most a second
    /// away (so a stop request or a clock jump is seen).
    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        let mut deadline = now + Duration::from_secs(1);
        if let Some(t) = self.gate.retry_at_ns {
            let wait = Duration::from_nanos(t.saturating_sub(self.clock.now_ns()));
            deadline = deadline.min(now + wait);
        }
        if let Some(t) = self.protocol.next_timer() {
            let wait = Duration::from_nanos(t.saturating_sub(self.clock.now_ns()));
            deadline = deadline.min(now + wait);
        }
        let now_ns = self.clock.now_ns();
        for s in &self.slots {
            if let Some(at) = s.retry_at {
                deadline = deadline.min(at);
            }
            for l in s.live.iter().chain(&s.draining) {
                if let Link::Ws { alive, .. } = l {
                    let wait = alive.due_ns(&self.liveness).saturating_sub(now_ns);
                    deadline = deadline.min(now + Duration::from_nanos(wait));
                }
            }
        }
        deadline
    }

    /// Runs what is due: the adapter's timer, WebSocket pings and pong
    /// deadlines, and reconnects whose backoff has passed.
    fn service_due(&mut self) {
        let now = self.now();
        if self.gate.retry_at_ns.is_some_and(|t| t <= now.mono_ns) {
            self.gate.retry_at_ns = None;
        }
        if self.protocol.next_timer().is_some_and(|t| t <= now.mono_ns) {
            self.protocol.on_timer(now, &mut self.outbox);
        }
        self.check_liveness(now.mono_ns);
        let at = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].retry_at.is_some_and(|r| r <= at) {
                self.slots[i].retry_at = None;
                self.start_connect(i);
            }
        }
    }

    /// Pings every WebSocket (live or replaced) quiet for `ping_interval`,
    /// and closes every one that read nothing within `pong_timeout` of its
    /// ping.
    fn check_liveness(&mut self, now_ns: u64) {
        let interval = nanos(self.liveness.ping_interval);
        let timeout = nanos(self.liveness.pong_timeout);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            for l in slot.live.iter_mut().chain(slot.draining.iter_mut()) {
                let Link::Ws {
                    generation,
                    sink,
                    alive,
                    ..
                } = l
                else {
                    continue;
                };
                match alive.ping_sent_ns {
                    Some(t) if now_ns.saturating_sub(t) >= timeout => {
                        self.dead.push((i, *generation));
                    }
                    None if now_ns.saturating_sub(alive.last_read_ns) >= interval => {
                        // The deadline runs from here even if the ping
                        // cannot be written now: a socket that takes no
                        // ping and gives nothing is as dead.
                        alive.ping_sent_ns = Some(now_ns);
                        send_ping(slot.id, sink);
                    }
                    _ => {}
                }
            }
        }
        if self.dead.is_empty() {
            return;
        }
        let mut dead = std::mem::take(&mut self.dead);
        for (i, g) in dead.drain(..) {
            let why = format!("no pong within {}", human(self.liveness.pong_timeout));
            let slot = &self.slots[i];
            let replaced = slot.draining.iter().any(|d| d.generation() == g);
            warn!(conn = %slot.id, replaced, reason = %why, "venue connection dead; closing it");
            self.close_socket(i, g, why);
        }
        self.dead = dead;
    }

    /// Starts an attempt for slot `i` (a first connect, a retry, or a
    /// make-before-break replacement while the live socket stays).
    fn start_connect(&mut self, i: usize) {
        let now = self.now();
        if self.slots[i].connecting {
            return;
        }
        // Connection attempts count against the venue's connection rule,
        // and none is made during a ban, so reconnecting never prolongs it.
        if let Err(w) = self.gate.limiter.admit_connect(now.mono_ns) {
            let delay = Duration::from_nanos(w.until_ns().saturating_sub(now.mono_ns));
            let slot = &mut self.slots[i];
            slot.retry_at = Some(Instant::now() + delay + jitter(delay, &mut self.jitter_seed));
            info!(conn = %slot.id, delay_ms = delay.as_millis() as u64, wait = ?w, "connection attempt held by the venue's limits");
            return;
        }
        let slot = &mut self.slots[i];
        slot.connecting = true;
        slot.generation += 1;
        let (id, generation) = (slot.id, slot.generation);
        let spec = slot.spec.clone();
        info!(conn = %id, url = %spec.url, replacing = slot.live.is_some(), "connecting");
        self.protocol.on_connecting(id, now, &mut self.outbox);
        let tls = self.config.tls.clone();
        self.connects.push(
            async move {
                let r = match spec.transport {
                    Transport::WebSocket => connect(&spec.url, tls.as_ref())
                        .await
                        .map(|ws| Opened::Ws(Box::new(ws))),
                    Transport::Http => connect_http(&spec.url, tls.as_ref()).await,
                };
                (id, generation, r)
            }
            .boxed(),
        );
    }

    /// Schedules slot `i`'s next attempt after its backoff, doubling it.
    fn schedule_retry(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let delay = slot.backoff + jitter(slot.backoff, &mut self.jitter_seed);
        slot.backoff = (slot.backoff * 2).min(slot.policy.max);
        slot.retry_at = Some(Instant::now() + delay);
        info!(conn = %slot.id, delay_ms = delay.as_millis() as u64, "reconnect backoff");
    }

    /// Takes commands off the rings while the gate admits them and hands
    /// them to the adapter (which signs them now, after admission); what
    /// the adapter refuses is answered at once, and a new order held too
    /// long is refused `Throttled`.
    fn drain_commands(&mut self) {
        let now = self.now();
        let stale_ns = self.gate.config.stale_ms.saturating_mul(1_000_000);
        self.gate.holding = false;
        loop {
            // No queue below the limiter: a request is admitted only while
            // the venue has few unanswered, so lane order is wire order.
            if self.protocol.in_flight() >= self.gate.config.max_in_flight {
                self.gate.holding = !self.inputs.is_empty();
                break;
            }
            let protocol = &self.protocol;
            let gate = &mut self.gate;
            let taken = self.inputs.pop_admitted(now.mono_ns, stale_ns, |lane, c| {
                gate.admit(now.mono_ns, lane, protocol.cost(c))
            });
            let cmd = match taken {
                None => {
                    self.gate.holding = !self.inputs.is_empty();
                    break;
                }
                Some(Taken::Stale(cmd)) => {
                    let text = format!(
                        "held more than {} ms by the venue's rate limits; not sent",
                        self.gate.config.stale_ms
                    );
                    info!(reason = %text, "order refused: throttled");
                    self.reports
                        .push(Report::refusal(&cmd, Reason::Throttled, text));
                    continue;
                }
                Some(Taken::CanceledInQueue(cmd)) => {
                    if let Command::Place(o) = cmd {
                        debug!(order = ?o.client_id.key, "canceled while still queued; never sent");
                        self.reports.push(Report::Exec(ExecEvent::Canceled {
                            client_id: o.client_id,
                            time_ms: 0,
                        }));
                    }
                    continue;
                }
                Some(Taken::Admitted(cmd)) => cmd,
            };
            let before = self.outbox.transmits.len();
            if let Err(e) = self.protocol.submit(&cmd, now, &mut self.outbox) {
                let reason = match e {
                    VenueError::NotReady { .. } => Reason::VenueDown,
                    _ => Reason::VenueRejected,
                };
                debug!(error = %e, "command refused");
                self.reports
                    .push(Report::refusal(&cmd, reason, e.to_string()));
            }
            // Admitted already: these go out without a second count.
            self.admitted.extend(self.outbox.transmits.drain(before..));
        }
    }

    /// Hands the adapter's transmits to the wire in order, acts on its
    /// events, and forwards the reports to the desk; repeats while acting
    /// produced more.
    async fn flush(&mut self) {
        loop {
            let held_fits = self.gate.held.front().is_some_and(|t| {
                self.gate
                    .limiter
                    .check(self.clock.now_ns(), Lane::Bulk, t.cost)
                    .is_ok()
            });
            if self.outbox.is_empty() && self.admitted.is_empty() && !held_fits {
                break;
            }
            std::mem::swap(&mut self.events, &mut self.outbox.events);
            for ev in std::mem::take(&mut self.events).drain(..) {
                match ev {
                    VenueOutput::Exec(e) => self.reports.push(Report::Exec(e)),
                    VenueOutput::Status(s) => self.reports.push(Report::Venue(s)),
                    VenueOutput::Reconnect(conn) => {
                        if let Some(i) = self.slot_index(conn) {
                            info!(%conn, "venue asked for a new connection; opening it before the old one closes");
                            self.start_connect(i);
                        }
                    }
                    VenueOutput::Usage {
                        counts,
                        window_ms,
                        limit,
                        count,
                    } => {
                        let now_ns = self.clock.now_ns();
                        self.gate.usage(now_ns, counts, window_ms, limit, count);
                    }
                    VenueOutput::CloseConnection { conn, why } => {
                        if let Some(i) = self.slot_index(conn) {
                            self.close_connection(i, why);
                        }
                    }
                    VenueOutput::Backoff { until_ns, ban } => {
                        let secs = until_ns.saturating_sub(self.clock.now_ns()) / 1_000_000_000;
                        if ban {
                            warn!(for_s = secs, "banned by the venue: nothing is sent, no connection is attempted until it ends");
                            self.gate.limiter.ban_until(until_ns);
                        } else {
                            warn!(for_s = secs, "rate limited by the venue: every lane waits");
                            self.gate.limiter.pause_until(until_ns);
                        }
                        self.gate.retry_at_ns = Some(until_ns);
                    }
                }
            }
            // Commands were admitted before they were encoded; the
            // adapter's own queries are admitted here, in order, on the
            // bulk lane, and wait their turn when there is no room.
            let mut transmits = std::mem::take(&mut self.transmits);
            transmits.append(&mut self.admitted);
            self.gate.held.extend(self.outbox.transmits.drain(..));
            let now_ns = self.clock.now_ns();
            while let Some(t) = self.gate.held.front() {
                if !self.gate.admit(now_ns, Lane::Bulk, t.cost) {
                    break;
                }
                transmits.extend(self.gate.held.pop_front());
            }
            let mut touched: u64 = 0;
            let mut failed: Vec<(usize, String)> = Vec::new();
            for t in transmits.drain(..) {
                self.gate.pass(&t);
                let Some(i) = self.slot_index(t.conn) else {
                    warn!(conn = %t.conn, "transmit for a connection the adapter never declared; dropped");
                    continue;
                };
                if failed.iter().any(|(f, _)| *f == i) {
                    continue;
                }
                let (conn, request) = (t.conn, t.request);
                let mut on_wire = false;
                match (&mut self.slots[i].live, t.payload) {
                    (Some(Link::Ws { sink, .. }), Payload::Text(text)) => {
                        if let Err(e) = sink.feed(Message::text(text)).await {
                            failed.push((i, format!("write failed: {e}")));
                        } else {
                            touched |= 1 << (i % 64);
                            on_wire = true;
                        }
                    }
                    (Some(Link::Http { queue, .. }), Payload::Http(req)) => {
                        queue.push_back(req);
                        on_wire = true;
                    }
                    (None, _) => {
                        debug!(conn = %t.conn, "no open socket for a transmit; dropped (the adapter settles it on close)");
                    }
                    (Some(_), _) => {
                        warn!(conn = %t.conn, "transmit of the wrong kind for its connection; dropped");
                    }
                }
                if on_wire && request != 0 {
                    let now = self.now();
                    self.protocol.on_sent(conn, request, now);
                }
            }
            self.transmits = transmits;
            for i in 0..self.slots.len() {
                if touched & (1 << (i % 64)) == 0 {
                    continue;
                }
                if let Some(Link::Ws { sink, .. }) = &mut self.slots[i].live {
                    if let Err(e) = sink.flush().await {
                        failed.push((i, format!("write failed: {e}")));
                    }
                }
            }
            for i in 0..self.slots.len() {
                self.pump_http(i);
            }
            for (i, why) in failed {
                let g = self.slots[i].live.as_ref().map(Link::generation);
                if let Some(g) = g {
                    self.socket_ended(i, g, why);
                }
            }
        }
        self.output.push_all(&mut self.reports);
    }

    /// Sends slot `i`'s next queued HTTP request if none is in flight.
    fn pump_http(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let (id, generation) = (slot.id, slot.generation);
        let Some(Link::Http {
            sender,
            queue,
            authority,
            generation: g,
            ..
        }) = &mut slot.live
        else {
            return;
        };
        if sender.is_none() {
            return;
        }
        let Some(req) = queue.pop_front() else {
            return;
        };
        let mut s = sender.take().expect("checked above");
        let g = *g;
        debug_assert_eq!(g, generation);
        let request = build_request(&req, authority);
        let rid = req.id;
        self.http.push(
            async move {
                let r = async {
                    let request = request.map_err(|e| e.to_string())?;
                    s.ready().await.map_err(|e| e.to_string())?;
                    let resp = s.send_request(request).await.map_err(|e| e.to_string())?;
                    let (parts, body) = resp.into_parts();
                    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                    let headers = parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    Ok((
                        s,
                        HttpResponse {
                            id: rid,
                            status: parts.status.as_u16(),
                            headers,
                            body: body.to_vec(),
                        },
                    ))
                }
                .await;
                (id, g, r)
            }
            .boxed(),
        );
    }

    fn slot_index(&self, conn: ConnId) -> Option<usize> {
        (conn.index() < self.slots.len()).then_some(conn.index())
    }

    fn on_wire(&mut self, w: Wire) {
        match w {
            Wire::Frame(conn, g, Some(Ok(msg))) => {
                self.mark_read(conn, g);
                self.on_message(conn, g, msg)
            }
            Wire::Frame(conn, g, Some(Err(e))) => {
                if let Some(i) = self.slot_index(conn) {
                    self.socket_ended(i, g, e.to_string());
                }
            }
            Wire::Frame(conn, g, None) => {
                if let Some(i) = self.slot_index(conn) {
                    self.socket_ended(i, g, "end of stream".into());
                }
            }
            Wire::Connected(conn, g, r) => self.on_connected(conn, g, r),
            Wire::Http(conn, g, Ok((sender, mut resp))) => {
                let Some(i) = self.slot_index(conn) else {
                    return;
                };
                if let Some(Link::Http {
                    sender: slot_sender,
                    generation,
                    ..
                }) = &mut self.slots[i].live
                {
                    if *generation == g {
                        *slot_sender = Some(sender);
                    }
                }
                let now = self.now();
                if let Err(e) = self
                    .protocol
                    .on_http(conn, &mut resp, now, &mut self.outbox)
                {
                    warn!(%conn, status = resp.status, error = %e, body = %truncate(&resp.body), "unreadable venue response");
                }
                self.pump_http(i);
            }
            Wire::Http(conn, g, Err(why)) | Wire::HttpEnded(conn, g, why) => {
                if let Some(i) = self.slot_index(conn) {
                    self.socket_ended(i, g, why);
                }
            }
        }
    }

    fn on_connected(&mut self, conn: ConnId, g: u32, r: Result<Opened, SessionError>) {
        let Some(i) = self.slot_index(conn) else {
            return;
        };
        let now = self.now();
        self.slots[i].connecting = false;
        let opened = match r {
            Ok(o) => o,
            Err(e) => {
                warn!(%conn, error = %e, "connect failed");
                if self.slots[i].live.is_none() {
                    self.protocol
                        .on_close(conn, &e.to_string(), now, &mut self.outbox);
                }
                self.schedule_retry(i);
                return;
            }
        };
        let slot = &mut self.slots[i];
        slot.backoff = slot.policy.min;
        if let Some(mut old) = slot.live.take() {
            // Make before break: the old socket is still read (and pinged)
            // until it ends; nothing else is written to it, and the venue
            // closes it after answering what is in flight.
            old.retire();
            slot.draining.push(old);
        }
        let replaced = !slot.draining.is_empty();
        let (stop, registration) = AbortHandle::new_pair();
        match opened {
            Opened::Ws(ws) => {
                let (sink, stream) = (*ws).split();
                let tagged = stream
                    .map(move |m| (conn, g, Some(m)))
                    .chain(futures_util::stream::once(async move { (conn, g, None) }));
                // Stopped, the reader ends without an end marker: the
                // session closed it and has reported it already.
                self.reads
                    .push(Abortable::new(tagged, registration).boxed());
                slot.live = Some(Link::Ws {
                    generation: g,
                    sink,
                    alive: Alive::new(self.clock.now_ns()),
                    stop,
                });
            }
            Opened::Http {
                sender,
                driver,
                authority,
            } => {
                self.http_ends.push(
                    Abortable::new(driver, registration)
                        .map(move |r| (conn, g, r.unwrap_or_else(|_| "closed".to_owned())))
                        .boxed(),
                );
                slot.live = Some(Link::Http {
                    generation: g,
                    sender: Some(sender),
                    queue: VecDeque::new(),
                    authority,
                    stop,
                });
            }
        }
        info!(%conn, url = %slot.spec.url, replaced, "connected");
        self.protocol.on_open(conn, now, &mut self.outbox);
    }

    /// Something was read from socket `g` of `conn`: it is alive.
    fn mark_read(&mut self, conn: ConnId, g: u32) {
        let Some(i) = self.slot_index(conn) else {
            return;
        };
        let slot = &mut self.slots[i];
        let link = match &mut slot.live {
            Some(l) if l.generation() == g => Some(l),
            _ => slot.draining.iter_mut().find(|d| d.generation() == g),
        };
        if let Some(Link::Ws { alive, .. }) = link {
            alive.read(self.clock.now_ns());
        }
    }

    /// The adapter judged slot `i`'s connection dead. It names a
    /// connection, not a socket: what it judges is the socket it writes to,
    /// so the live one is closed (`on_close` with the adapter's reason) and
    /// reconnected after its backoff, while a replaced one still draining
    /// keeps being read (and pinged: the pong deadline judges it). With no
    /// live socket, the replaced ones are what it can mean, and are closed
    /// (`on_drained`). Logged once; a repeat for a connection with nothing
    /// open is ignored.
    fn close_connection(&mut self, i: usize, why: String) {
        let slot = &self.slots[i];
        let conn = slot.id;
        if let Some(g) = slot.live.as_ref().map(Link::generation) {
            warn!(%conn, reason = %why, draining = slot.draining.len(), "the adapter judged the venue connection dead; closing it");
            self.close_socket(i, g, why);
            return;
        }
        if slot.draining.is_empty() {
            debug!(%conn, reason = %why, "the adapter judged a connection dead that is closed already");
            return;
        }
        warn!(%conn, reason = %why, sockets = slot.draining.len(), "the adapter judged the venue connection dead; closing its replaced sockets");
        while let Some(g) = self.slots[i].draining.last().map(Link::generation) {
            self.close_socket(i, g, why.clone());
        }
    }

    /// Closes socket `g` of slot `i` for good (the caller logged why) and
    /// reports its end as any other.
    fn close_socket(&mut self, i: usize, g: u32, why: String) {
        let slot = &self.slots[i];
        let link = match &slot.live {
            Some(l) if l.generation() == g => Some(l),
            _ => slot.draining.iter().find(|d| d.generation() == g),
        };
        if let Some(l) = link {
            l.stop();
        }
        self.end_socket(i, g, why, EndedBy::Session);
    }

    /// A socket of slot `i` ended: the live one (tell the adapter, retry
    /// after the backoff) or a replaced one (tell the adapter it drained).
    fn socket_ended(&mut self, i: usize, g: u32, why: String) {
        self.end_socket(i, g, why, EndedBy::Wire);
    }

    fn end_socket(&mut self, i: usize, g: u32, why: String, by: EndedBy) {
        let now = self.now();
        let slot = &mut self.slots[i];
        let conn = slot.id;
        if let Some(pos) = slot.draining.iter().position(|d| d.generation() == g) {
            // Dropped here: with its reader ended or stopped, the socket
            // is closed.
            slot.draining.swap_remove(pos);
            if by == EndedBy::Wire {
                info!(%conn, reason = %why, "replaced connection closed");
            }
            self.protocol.on_drained(conn, now, &mut self.outbox);
            return;
        }
        if slot.live.as_ref().map(Link::generation) != Some(g) {
            return; // already handled (an error, then the end of stream)
        }
        slot.live = None;
        if by == EndedBy::Wire {
            warn!(%conn, reason = %why, "disconnected");
        }
        self.protocol.on_close(conn, &why, now, &mut self.outbox);
        if !self.slots[i].connecting {
            self.schedule_retry(i);
        }
    }

    fn on_message(&mut self, conn: ConnId, g: u32, msg: Message) {
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(frame) => {
                let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                if let Some(i) = self.slot_index(conn) {
                    self.socket_ended(i, g, format!("closed by venue {why}"));
                }
                return;
            }
            Message::Binary(b) => {
                warn!(%conn, len = b.len(), "binary frame from the venue; not part of its JSON API, ignored");
                return;
            }
            // Pings are answered by tungstenite.
            _ => return,
        };
        // The adapter parses in place (simd-json), so the frame is copied
        // into a buffer this session reuses rather than a fresh allocation.
        let mut bytes = std::mem::take(&mut self.frame);
        bytes.clear();
        bytes.extend_from_slice(text.as_bytes());
        let now = self.now();
        let result = self
            .protocol
            .on_frame(conn, &mut bytes, now, &mut self.outbox);
        self.frame = bytes;
        if let Err(e) = result {
            // A frame we cannot read is logged and harms nothing else: the
            // venue's state is the adapter's to say.
            warn!(%conn, error = %e, frame = %truncate(text.as_bytes()), "unreadable venue frame");
        }
    }

    /// Closes the WebSockets with a close frame on shutdown.
    async fn close_all(&mut self) {
        for s in &mut self.slots {
            if let Some(Link::Ws { sink, .. }) = &mut s.live {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            }
        }
        info!("session stopped");
    }
}

/// Queues a WebSocket Ping (empty payload: no allocation) and pushes it
/// out as far as the socket takes it, never waiting: a socket that cannot
/// take it now (or fails to) is judged by the pong deadline all the same.
fn send_ping(conn: ConnId, sink: &mut SplitSink<Ws, Message>) {
    let r = match sink.feed(Message::Ping(Default::default())).now_or_never() {
        Some(Ok(())) => sink.flush().now_or_never().unwrap_or(Ok(())),
        Some(Err(e)) => Err(e),
        None => Ok(()),
    };
    if let Err(e) = r {
        debug!(%conn, error = %e, "ping not written");
    }
}

/// `10 s`, `200 ms`: for reasons the adapter and the log show.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The first bytes of a frame or body, for logs.
fn truncate(bytes: &[u8]) -> String {
    let n = bytes.len().min(LOGGED_FRAME_BYTES);
    let mut s = String::from_utf8_lossy(&bytes[..n]).into_owned();
    if bytes.len() > n {
        s.push('…');
    }
    s
}

fn build_request(
    req: &HttpRequest,
    authority: &str,
) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> {
    let mut b = hyper::Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str())
        .header(hyper::header::HOST, authority);
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(Bytes::from(req.body.clone())))
}

/// Up to a quarter of `base` more, so sessions that lost the venue at the
/// same moment do not all come back at the same moment.
fn jitter(base: Duration, seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let quarter = base.as_nanos() as u64 / 4;
    Duration::from_nanos(if quarter == 0 { 0 } else { *seed % quarter })
}

/// A parsed connection URL.
struct Target<'a> {
    secure: bool,
    host: &'a str,
    port: u16,
    authority: &'a str,
}

fn target<'a>(url: &'a str, schemes: (&str, &str)) -> Result<Target<'a>, SessionError> {
    let bad = |why: String| SessionError::BadUrl(url.to_owned(), why);
    let (secure, rest) = if let Some(r) = url.strip_prefix(&format!("{}://", schemes.0)) {
        (true, r)
    } else if let Some(r) = url.strip_prefix(&format!("{}://", schemes.1)) {
        (false, r)
    } else {
        return Err(bad(format!(
            "expected {}:// or {}://",
            schemes.1, schemes.0
        )));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>().map_err(|_| bad("bad port".into()))?,
        ),
        _ => (authority, if secure { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad("no host".into()));
    }
    Ok(Target {
        secure,
        host,
        port,
        authority,
    })
}

/// What every TCP connection the session opens gets: `TCP_NODELAY`, and
/// keepalive ([`TCP_KEEPALIVE_IDLE`], [`TCP_KEEPALIVE_INTERVAL`],
/// [`TCP_KEEPALIVE_PROBES`]), so a peer that vanished without a FIN or RST
/// is found by the kernel even on a connection nothing pings (HTTP).
pub fn tune_tcp(tcp: &TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_PROBES);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive)
}

/// TCP, then TLS when `secure`.
async fn open_io(
    url: &str,
    t: &Target<'_>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn Io>, SessionError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| SessionError::Connect {
        url: url.to_owned(),
        source: e,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((t.host, t.port)))
        .await
        .map_err(|e| err(e.into()))?
        .map_err(|e| err(e.into()))?;
    tune_tcp(&tcp).map_err(|e| err(e.into()))?;
    if !t.secure {
        return Ok(Box::new(tcp));
    }
    let tls = tls.ok_or_else(|| SessionError::NoTls(url.to_owned()))?;
    let name = rustls_pki_types::ServerName::try_from(t.host.to_owned())
        .map_err(|_| SessionError::BadUrl(url.to_owned(), "bad TLS server name".into()))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| err(e.into()))?;
    Ok(Box::new(stream))
}

/// Opens one WebSocket: TCP, TLS for `wss://`, then the upgrade.
pub async fn connect(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Ws, SessionError> {
    let t = target(url, ("wss", "ws"))?;
    let io = open_io(url, &t, tls).await?;
    let (ws, _resp) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::client_async(url, io))
            .await
            .map_err(|e| SessionError::Connect {
                url: url.to_owned(),
                source: e.into(),
            })?
            .map_err(|e| SessionError::Connect {
                url: url.to_owned(),
                source: e.into(),
            })?;
    Ok(ws)
}

/// Opens one HTTP/1.1 keep-alive connection: TCP, TLS for `https://`, then
/// hyper's client handshake. The returned driver future runs the
/// connection and resolves, with the reason, when it ends.
async fn connect_http(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Opened, SessionError> {
    let t = target(url, ("https", "http"))?;
    let authority = t.authority.to_owned();
    let io = open_io(url, &t, tls).await?;
    let (sender, conn) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(io)),
    )
    .await
    .map_err(|e| SessionError::Connect {
        url: url.to_owned(),
        source: e.into(),
    })?
    .map_err(|e| SessionError::Connect {
        url: url.to_owned(),
        source: e.into(),
    })?;
    let driver = async move {
        match conn.await {
            Ok(()) => "closed by venue".to_owned(),
            Err(e) => e.to_string(),
        }
    }
    .boxed();
    Ok(Opened::Http {
        sender,
        driver,
        authority,
    })
}
