//! The venue session driver: the I/O edge around a [`VenueProtocol`].
//!
//! It owns the WebSocket connections (plain `ws://` to loopback, `wss://`
//! through rustls elsewhere), drains the command rings in lane order, feeds
//! received frames to the adapter and pushes the adapter's events onto the
//! ring back to the gateway. It runs as a task on a tokio current-thread
//! runtime, so the same code serves the `single` layout (one runtime hosts
//! everything) and the `pinned` layout (one runtime per pinned thread).
//!
//! While the venue is unreachable the session keeps draining its rings and
//! answers every command with a `VenueDown` rejection, so a strategy is told
//! at once instead of waiting on an order that was never sent.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SelectAll, SplitSink};
use futures_util::{SinkExt, StreamExt};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::clock::{MonoClock, VenueClock};
use crate::doorbell::{Doorbell, Ringer, WaitStrategy};
use crate::ids::VenueId;
use crate::protocol::{Reason, VenueState};
use crate::ring::{Consumer, Producer};
use crate::venue::{
    Command, ConnSpec, ExecEvent, Lane, Now, Outgoing, Report, VenueProtocol, VenueStatus,
};

/// Any byte stream a WebSocket can run over (TCP, or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Ws = WebSocketStream<Box<dyn Io>>;

/// Why a connection attempt or a live session ended.
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
    #[error("connection {0} closed: {1}")]
    Closed(usize, String),
    #[error("doorbell: {0}")]
    Doorbell(#[from] std::io::Error),
}

/// The command rings one session drains: per strategy, one ring per lane.
pub struct CommandInputs {
    lanes: [Vec<Consumer<Command>>; 3],
    next: [usize; 3],
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
            next: [0; 3],
        }
    }

    /// Adds one strategy's ring for `lane`.
    pub fn add(&mut self, lane: Lane, ring: Consumer<Command>) {
        self.lanes[lane as usize].push(ring);
    }

    /// The next command: critical lane first, then normal, then bulk;
    /// round-robin between strategies inside a lane so one busy strategy
    /// cannot starve another.
    pub fn pop(&mut self) -> Option<Command> {
        for lane in 0..3 {
            let rings = &mut self.lanes[lane];
            let n = rings.len();
            for i in 0..n {
                let idx = (self.next[lane] + i) % n;
                if let Some(cmd) = rings[idx].pop() {
                    self.next[lane] = (idx + 1) % n;
                    return Some(cmd);
                }
            }
        }
        None
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.iter().flatten().all(|r| r.is_empty())
    }
}

/// The ring back to the gateway. A full ring never drops an event: the
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

    fn push_all(&mut self, events: &mut Vec<Report>) {
        self.overflow.extend(events.drain(..));
        self.flush();
    }

    fn flush(&mut self) {
        let mut pushed = false;
        while let Some(ev) = self.overflow.pop_front() {
            match self.ring.push(ev) {
                Ok(()) => pushed = true,
                Err(ev) => {
                    self.overflow.push_front(ev);
                    break;
                }
            }
        }
        if pushed {
            self.ringer.ring();
        }
    }
}

/// How a session reaches its venue.
#[derive(Clone)]
pub struct SessionConfig {
    /// Needed for `wss://` URLs.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub wait: WaitStrategy,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// One venue session: an adapter plus its rings.
pub struct Session {
    protocol: Box<dyn VenueProtocol>,
    inputs: CommandInputs,
    doorbell: Doorbell,
    output: EventOutput,
    config: SessionConfig,
    clock: MonoClock,
    /// The venue's wall clock as estimated from its server time; request
    /// timestamps (`now.wall_ms`) follow it.
    venue_clock: VenueClock,
    /// `now.wall_ms` minus the local wall clock, as last handed out.
    wall_adjust_ms: i64,
    /// The venue state last reported to the gateway.
    state: VenueState,
    /// Receive buffer for the adapter's in-place parser.
    frame: Vec<u8>,
    /// Bumped for every set of connections, so the end of a replaced one
    /// is told apart from the end of the live one.
    generation: u64,
    events: Vec<Report>,
    out: Vec<Outgoing>,
}

type Sinks = Vec<SplitSink<Ws, Message>>;
/// Frames tagged with (connection generation, connection index); `None`
/// marks the end of that connection's stream.
type Tagged = futures_util::stream::BoxStream<'static, (u64, usize, Option<WsItem>)>;
type Streams = SelectAll<Tagged>;
type WsItem = Result<Message, tokio_tungstenite::tungstenite::Error>;

impl Session {
    pub fn new(
        protocol: Box<dyn VenueProtocol>,
        inputs: CommandInputs,
        doorbell: Doorbell,
        output: EventOutput,
        config: SessionConfig,
    ) -> Self {
        Session {
            protocol,
            inputs,
            doorbell,
            output,
            config,
            clock: MonoClock::new(),
            venue_clock: VenueClock::new(crate::clock::DEFAULT_BIAS_MS),
            wall_adjust_ms: 0,
            state: VenueState::Down,
            frame: Vec::with_capacity(4096),
            generation: 0,
            events: Vec::new(),
            out: Vec::new(),
        }
    }

    fn now(&mut self) -> Now {
        let local = crate::clock::system_ms();
        let wall_ms = self.venue_clock.timestamp_ms(local);
        self.wall_adjust_ms = wall_ms as i64 - local as i64;
        Now {
            mono_ns: self.clock.now_ns(),
            wall_ms,
        }
    }

    /// Feeds the adapter's server-time observations to the venue clock,
    /// undoing the adjustment `now` applied so the clock sees local times.
    fn sync_clock(&mut self) {
        let local = |ms: u64| (ms as i64 - self.wall_adjust_ms).max(0) as u64;
        for s in self.protocol.take_time_samples() {
            let (sent, recv) = (local(s.sent.wall_ms), local(s.received.wall_ms));
            self.venue_clock.observe(sent, s.server_ms, recv);
        }
    }

    /// Hands the pending events to the gateway, noting the venue state.
    fn forward(&mut self) {
        for ev in &self.events {
            if let Report::Venue(VenueStatus { state, .. }) = ev {
                self.state = *state;
            }
        }
        self.output.push_all(&mut self.events);
    }

    fn venue(&self) -> VenueId {
        self.protocol.venue()
    }

    fn status(&mut self, state: VenueState, text: String) {
        self.events.push(Report::Venue(VenueStatus {
            venue: self.venue(),
            state,
            text,
        }));
        self.forward();
    }

    /// Runs until `shutdown` is notified: connect, pump, reconnect.
    pub async fn run(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SessionError> {
        let bell = crate::asyncfd::register_async(self.doorbell.as_fd())?;
        let mut backoff = self.config.reconnect_min;
        loop {
            self.status(VenueState::Connecting, "connecting".into());
            let specs = self.protocol.connections();
            let generation = self.next_generation();
            let attempt = tokio::select! {
                r = connect_all(&specs, self.config.tls.as_ref(), generation) => Some(r),
                _ = crate::app::stopped(&mut shutdown) => None,
            };
            let reason = match attempt {
                None => return Ok(()),
                Some(Ok((mut sinks, tagged))) => {
                    let mut streams: Streams = tagged.into_iter().collect();
                    backoff = self.config.reconnect_min;
                    let now = self.now();
                    for i in 0..specs.len() {
                        self.protocol.on_open(i, now, &mut self.out);
                    }
                    // Up is the adapter's to say, once the venue is ready
                    // (Binance: user data subscribed).
                    self.status(
                        VenueState::Connecting,
                        format!("connected to {}; starting the session", specs[0].url),
                    );
                    let r = self
                        .pump(&mut sinks, &mut streams, &bell, &mut shutdown)
                        .await;
                    let now = self.now();
                    for i in 0..specs.len() {
                        self.protocol.on_close(i, now, &mut self.events);
                    }
                    for mut s in sinks {
                        let _ = s.close().await;
                    }
                    match r {
                        Ok(()) => return Ok(()),
                        Err(e) => e.to_string(),
                    }
                }
                Some(Err(e)) => e.to_string(),
            };
            self.out.clear();
            self.status(VenueState::Down, reason);
            // Down: keep answering commands until the next attempt.
            let until = tokio::time::Instant::now() + backoff;
            backoff = (backoff * 2).min(self.config.reconnect_max);
            loop {
                self.reject_pending();
                self.doorbell.prepare_sleep();
                if !self.inputs.is_empty() {
                    self.doorbell.cancel_sleep();
                    continue;
                }
                tokio::select! {
                    g = bell.readable() => {
                        if let Ok(mut g) = g { g.clear_ready(); }
                        let _ = self.doorbell.drain();
                    }
                    _ = tokio::time::sleep_until(until) => { self.doorbell.cancel_sleep(); break; }
                    _ = crate::app::stopped(&mut shutdown) => return Ok(()),
                }
            }
        }
    }

    /// Answers every queued command with a venue-down rejection.
    fn reject_pending(&mut self) {
        let text = format!("{} is not connected", self.venue());
        while let Some(cmd) = self.inputs.pop() {
            self.events
                .push(refusal(&cmd, Reason::VenueDown, text.clone()));
        }
        self.forward();
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The venue announced it will go away: open the new connections
    /// before the old ones close (make before break). Frames still arriving
    /// on the old ones are handled as usual; their end is not an error.
    async fn replace_connections(
        &mut self,
        sinks: &mut Sinks,
        streams: &mut Streams,
    ) -> Result<(), SessionError> {
        let specs = self.protocol.connections();
        let generation = self.next_generation();
        let (new_sinks, tagged) = connect_all(&specs, self.config.tls.as_ref(), generation).await?;
        let now = self.now();
        for i in 0..specs.len() {
            self.protocol.on_open(i, now, &mut self.out);
        }
        // The old write halves are dropped without a close frame: the venue
        // closes those connections itself, after answering what is in flight.
        *sinks = new_sinks;
        for t in tagged {
            streams.push(t);
        }
        Ok(())
    }

    /// The connected loop; returns `Ok` on shutdown.
    async fn pump(
        &mut self,
        sinks: &mut Sinks,
        streams: &mut Streams,
        bell: &AsyncFd<OwnedFd>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SessionError> {
        loop {
            let now = self.now();
            while let Some(cmd) = self.inputs.pop() {
                if let Err(e) = self.protocol.submit(&cmd, now, &mut self.out) {
                    self.events
                        .push(refusal(&cmd, Reason::VenueRejected, e.to_string()));
                }
            }
            self.send_out(sinks).await?;
            self.forward();
            if self.protocol.wants_reconnect() {
                self.replace_connections(sinks, streams).await?;
                continue;
            }

            let spin = self.config.wait == WaitStrategy::Spin;
            if !spin {
                self.doorbell.prepare_sleep();
                if !self.inputs.is_empty() || !self.output.overflow.is_empty() {
                    self.doorbell.cancel_sleep();
                    self.output.flush();
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            let timer = self
                .protocol
                .next_timer()
                .map(|t| Duration::from_nanos(t.saturating_sub(now.mono_ns)))
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                biased;
                item = streams.next() => {
                    self.doorbell.cancel_sleep();
                    let current = self.generation;
                    match item {
                        Some((_, conn, Some(Ok(msg)))) => self.on_message(conn, msg)?,
                        // A replaced connection ending is expected.
                        Some((g, _, _)) if g != current => {}
                        Some((_, conn, Some(Err(e)))) => return Err(SessionError::Closed(conn, e.to_string())),
                        Some((_, conn, None)) => return Err(SessionError::Closed(conn, "end of stream".into())),
                        None => return Err(SessionError::Closed(0, "no connections".into())),
                    }
                }
                g = bell.readable(), if !spin => {
                    if let Ok(mut g) = g { g.clear_ready(); }
                    let _ = self.doorbell.drain();
                }
                _ = tokio::task::yield_now(), if spin => {}
                _ = tokio::time::sleep(timer) => {
                    self.doorbell.cancel_sleep();
                    let now = self.now();
                    self.protocol.on_timer(now, &mut self.events, &mut self.out);
                }
                _ = crate::app::stopped(shutdown) => return Ok(()),
            }
        }
    }

    fn on_message(&mut self, conn: usize, msg: Message) -> Result<(), SessionError> {
        // The adapter parses in place (simd-json), so the frame is copied
        // into a buffer this session reuses rather than a fresh allocation.
        let mut bytes = std::mem::take(&mut self.frame);
        bytes.clear();
        match msg {
            Message::Text(t) => bytes.extend_from_slice(t.as_bytes()),
            Message::Close(frame) => {
                let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Err(SessionError::Closed(conn, format!("closed by venue {why}")));
            }
            // Pings are answered by tungstenite; binary frames are not
            // part of the JSON APIs we speak.
            _ => return Ok(()),
        }
        let now = self.now();
        let result = self
            .protocol
            .on_frame(conn, &mut bytes, now, &mut self.events, &mut self.out);
        self.frame = bytes;
        if let Err(e) = result {
            // A frame we cannot read is reported, and harms nothing else:
            // the venue's state stays what it was.
            self.events.push(Report::Venue(VenueStatus {
                venue: self.venue(),
                state: self.state,
                text: e.to_string(),
            }));
        }
        self.sync_clock();
        Ok(())
    }

    async fn send_out(&mut self, sinks: &mut Sinks) -> Result<(), SessionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut touched = [false; 8];
        for o in self.out.drain(..) {
            let sink = sinks
                .get_mut(o.conn)
                .ok_or_else(|| SessionError::Closed(o.conn, "no such connection".into()))?;
            sink.feed(Message::text(o.text))
                .await
                .map_err(|e| SessionError::Closed(o.conn, e.to_string()))?;
            if let Some(t) = touched.get_mut(o.conn) {
                *t = true;
            }
        }
        for (i, sink) in sinks.iter_mut().enumerate() {
            if touched.get(i).copied().unwrap_or(true) {
                sink.flush()
                    .await
                    .map_err(|e| SessionError::Closed(i, e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// The answer to a command that never reached the venue (venue down, or
/// the adapter could not express it): the strategy hears why.
fn refusal(cmd: &Command, reason: Reason, text: String) -> Report {
    match *cmd {
        Command::Place(o) => Report::Exec(ExecEvent::Rejected {
            client_id: o.client_id,
            reason,
            code: 0,
            text,
        }),
        Command::Cancel { orig, .. } => Report::Exec(ExecEvent::CancelRejected {
            client_id: orig,
            reason,
            code: 0,
            text,
        }),
    }
}

async fn connect_all(
    specs: &[ConnSpec],
    tls: Option<&Arc<rustls::ClientConfig>>,
    generation: u64,
) -> Result<(Sinks, Vec<Tagged>), SessionError> {
    let mut sinks = Vec::with_capacity(specs.len());
    let mut streams = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let ws = connect(&spec.url, tls).await?;
        let (sink, stream) = ws.split();
        sinks.push(sink);
        let tagged =
            stream
                .map(move |m| (generation, i, Some(m)))
                .chain(futures_util::stream::once(
                    async move { (generation, i, None) },
                ));
        streams.push(tagged.boxed());
    }
    Ok((sinks, streams))
}

/// Opens one WebSocket: TCP, TLS for `wss://`, then the upgrade.
pub async fn connect(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Ws, SessionError> {
    let bad = |why: &str| SessionError::BadUrl(url.to_owned(), why.to_owned());
    let (secure, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(bad("expected ws:// or wss://"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>().map_err(|_| bad("bad port"))?,
        ),
        _ => (authority, if secure { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let err = |e: Box<dyn std::error::Error + Send + Sync>| SessionError::Connect {
        url: url.to_owned(),
        source: e,
    };
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((host, port)))
        .await
        .map_err(|e| err(e.into()))?
        .map_err(|e| err(e.into()))?;
    tcp.set_nodelay(true).map_err(|e| err(e.into()))?;
    let io: Box<dyn Io> = if secure {
        let tls = tls.ok_or_else(|| SessionError::NoTls(url.to_owned()))?;
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| bad("bad TLS server name"))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| err(e.into()))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (ws, _resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(url, io),
    )
    .await
    .map_err(|e| err(e.into()))?
    .map_err(|e| err(e.into()))?;
    Ok(ws)
}
