//! The session's liveness over real loopback sockets: WebSocket pings with
//! a pong deadline (on live and replaced sockets), the adapter's
//! `CloseConnection`, and TCP keepalive on every connection the session
//! opens. The venues here are plain threads with blocking sockets: a
//! "silent" one does the WebSocket upgrade by hand and then never reads
//! (so never answers a ping), an "answering" one is tungstenite's (which
//! answers pings), a "chatty" one sends data and never reads.
//!
//! Small durations come only through the session's config; every wait is
//! for an event, bounded by [`WAIT`].

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ordergate::doorbell::{Doorbell, Ringer, WaitStrategy};
use ordergate::ids::{ClientId, Namespace, OrderKey, VenueId};
use ordergate::model::{OrdType, Side, TimeInForce, VenueState};
use ordergate::ring::{self, Producer};
use ordergate::session::{
    CommandInputs, EventOutput, LimitsConfig, LivenessConfig, ReconnectPolicy, Session,
    SessionConfig,
};
use ordergate::venue::{
    Command, ConnId, ConnRole, ConnSpec, Cost, HttpResponse, Lane, Now, OrderRequest, Outbox,
    Report, Transport, VenueError, VenueOutput, VenueProtocol, VenueStatus,
};
use tokio_tungstenite::tungstenite::{self, Message};

const WAIT: Duration = Duration::from_secs(10);
const WS: ConnId = ConnId(0);
/// The order id that makes the adapter ask for a make-before-break
/// replacement of the WebSocket.
const REPLACE: u64 = 100;
/// The order id that makes the adapter judge the WebSocket dead.
const KILL: u64 = 200;
const KILL_WHY: &str = "request past its deadline";

type Log = Arc<Mutex<Vec<String>>>;

/// A test-only adapter: one WebSocket (and an HTTP connection if given a
/// URL); it notes what the session tells it, reports Up/Down with the
/// WebSocket, and on order [`REPLACE`] or [`KILL`] asks the session for a
/// replacement or a close.
struct Probe {
    ws_url: String,
    http_url: Option<String>,
    log: Log,
    ws_open: bool,
    /// Asks for a replacement on the WebSocket's first open.
    replace_on_first_open: bool,
    opened: u32,
}

impl Probe {
    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }

    fn status(state: VenueState, text: &str, out: &mut Outbox) {
        out.events.push(VenueOutput::Status(VenueStatus {
            venue: VenueId::BybitSpot,
            state,
            text: text.into(),
        }));
    }
}

impl VenueProtocol for Probe {
    fn adopt(&mut self, order: ordergate::venue::Adopted, _: Now) {
        unreachable!("nothing to adopt in these tests: {order:?}")
    }

    fn venue(&self) -> VenueId {
        VenueId::BybitSpot
    }

    fn connections(&self) -> Vec<ConnSpec> {
        let mut v = vec![ConnSpec {
            url: self.ws_url.clone(),
            transport: Transport::WebSocket,
            role: ConnRole::OrderEntryAndUserData,
        }];
        if let Some(u) = &self.http_url {
            v.push(ConnSpec {
                url: u.clone(),
                transport: Transport::Http,
                role: ConnRole::Rest,
            });
        }
        v
    }

    fn on_connecting(&mut self, conn: ConnId, _now: Now, _out: &mut Outbox) {
        self.note(format!("connecting {}", conn.0));
    }

    fn on_open(&mut self, conn: ConnId, _now: Now, out: &mut Outbox) {
        self.note(format!("open {}", conn.0));
        if conn != WS {
            return;
        }
        self.opened += 1;
        if self.replace_on_first_open && self.opened == 1 {
            out.events.push(VenueOutput::Reconnect(WS));
        }
        if !self.ws_open {
            self.ws_open = true;
            Self::status(VenueState::Up, "ws open", out);
        }
    }

    fn on_close(&mut self, conn: ConnId, why: &str, _now: Now, out: &mut Outbox) {
        self.note(format!("close {} {why}", conn.0));
        if conn == WS && self.ws_open {
            self.ws_open = false;
            Self::status(VenueState::Down, why, out);
        }
    }

    fn on_drained(&mut self, conn: ConnId, _now: Now, _out: &mut Outbox) {
        self.note(format!("drained {}", conn.0));
    }

    fn cost(&self, _cmd: &Command) -> Cost {
        Cost::default()
    }

    fn submit(&mut self, cmd: &Command, _now: Now, out: &mut Outbox) -> Result<(), VenueError> {
        let Command::Place(o) = cmd else {
            return Ok(());
        };
        match o.client_id.key.order_id {
            REPLACE => out.events.push(VenueOutput::Reconnect(WS)),
            KILL => out.events.push(VenueOutput::CloseConnection {
                conn: WS,
                why: KILL_WHY.into(),
            }),
            _ => {}
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        conn: ConnId,
        frame: &mut [u8],
        _now: Now,
        _out: &mut Outbox,
    ) -> Result<(), VenueError> {
        self.note(format!(
            "frame {} {}",
            conn.0,
            String::from_utf8_lossy(frame)
        ));
        Ok(())
    }

    fn on_http(
        &mut self,
        _conn: ConnId,
        _r: &mut HttpResponse,
        _now: Now,
        _out: &mut Outbox,
    ) -> Result<(), VenueError> {
        Ok(())
    }

    fn on_timer(&mut self, _now: Now, _out: &mut Outbox) {}

    fn next_timer(&self) -> Option<u64> {
        None
    }
}

/// How a test venue treats one accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Upgrades by hand, then never reads: no pong, no data.
    Silent,
    /// tungstenite's server: reads (and so answers pings), sends nothing.
    Answering,
    /// tungstenite's server: sends a text frame every 50 ms, never reads.
    Chatty,
}

/// A WebSocket venue on a loopback port; `plan(n)` says how its `n`th
/// connection (from 0) is treated.
struct Venue {
    url: String,
    port: u16,
    accepted: AtomicUsize,
    /// Pings the answering connections read.
    pings: AtomicUsize,
    /// Answering connections that saw their socket end, by number.
    ended: Mutex<Vec<usize>>,
    /// The silent connections, kept open and unread until a test reads
    /// them to their end.
    silent: Mutex<Vec<TcpStream>>,
}

impl Venue {
    fn start(plan: fn(usize) -> Kind) -> Arc<Venue> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let venue = Arc::new(Venue {
            url: format!("ws://{addr}/ws"),
            port: addr.port(),
            accepted: AtomicUsize::new(0),
            pings: AtomicUsize::new(0),
            ended: Mutex::new(Vec::new()),
            silent: Mutex::new(Vec::new()),
        });
        let v = venue.clone();
        std::thread::spawn(move || {
            for (n, tcp) in listener.incoming().enumerate() {
                let Ok(tcp) = tcp else { return };
                v.accepted.fetch_add(1, Ordering::SeqCst);
                let v = v.clone();
                std::thread::spawn(move || v.serve(n, plan(n), tcp));
            }
        });
        venue
    }

    fn serve(&self, n: usize, kind: Kind, mut tcp: TcpStream) {
        match kind {
            Kind::Silent => {
                if upgrade_by_hand(&mut tcp).is_ok() {
                    self.silent.lock().unwrap().push(tcp);
                }
            }
            Kind::Answering => {
                let Ok(mut ws) = tungstenite::accept(tcp) else {
                    return;
                };
                loop {
                    match ws.read() {
                        Ok(Message::Ping(_)) => {
                            self.pings.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            self.ended.lock().unwrap().push(n);
                            return;
                        }
                    }
                }
            }
            Kind::Chatty => {
                let Ok(mut ws) = tungstenite::accept(tcp) else {
                    return;
                };
                for n in 0u64.. {
                    if ws.send(Message::text(format!("tick-{n}"))).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn ended(&self) -> Vec<usize> {
        self.ended.lock().unwrap().clone()
    }

    /// Reads the `n`th silent connection to its end (the session closed
    /// it): what the session had written to it.
    fn drain_silent(&self, n: usize) -> Vec<u8> {
        let mut tcp = self.silent.lock().unwrap()[n].try_clone().unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match tcp.read(&mut buf) {
                Ok(0) => return got,
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
                Err(e) => panic!("the session did not close silent connection {n}: {e}"),
            }
        }
    }
}

/// The server side of the WebSocket upgrade, by hand: read the request's
/// head, answer 101 with the key's accept value.
fn upgrade_by_hand(tcp: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let key = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_owned())
        })
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        tcp,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    tcp.flush()
}

/// A running session around a [`Probe`].
struct Running {
    log: Log,
    commands: Producer<Command>,
    ringer: Ringer,
    reports: ring::Consumer<Report>,
    /// The venue states the adapter reported so far, in order.
    states: Vec<VenueState>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Setup {
    ws_url: String,
    http_url: Option<String>,
    replace_on_first_open: bool,
    liveness: LivenessConfig,
    reconnect: ReconnectPolicy,
}

impl Setup {
    fn ws(url: &str) -> Setup {
        Setup {
            ws_url: url.to_owned(),
            http_url: None,
            replace_on_first_open: false,
            liveness: LivenessConfig::default(),
            reconnect: ReconnectPolicy {
                min: Duration::from_millis(50),
                max: Duration::from_millis(200),
            },
        }
    }

    /// Pings after 200 ms without a read; dead 200 ms after the ping.
    fn fast(mut self) -> Setup {
        self.liveness = LivenessConfig {
            ping_interval: Duration::from_millis(200),
            pong_timeout: Duration::from_millis(200),
        };
        self
    }

    fn start(self) -> Running {
        let log: Log = Arc::default();
        let bell = Doorbell::new().unwrap();
        let ringer = bell.ringer();
        let (commands, cmd_rx) = ring::channel(16);
        let mut inputs = CommandInputs::new();
        inputs.add(Lane::Normal, cmd_rx);
        let desk_bell = Doorbell::new().unwrap();
        let (rep_tx, reports) = ring::channel::<Report>(256);
        let session = Session::new(
            Box::new(Probe {
                ws_url: self.ws_url,
                http_url: self.http_url,
                log: log.clone(),
                ws_open: false,
                replace_on_first_open: self.replace_on_first_open,
                opened: 0,
            }),
            inputs,
            bell,
            EventOutput::new(rep_tx, desk_bell.ringer()),
            SessionConfig {
                tls: None,
                wait: WaitStrategy::Park,
                reconnect: self.reconnect,
                per_role: Vec::new(),
                limits: LimitsConfig::default(),
            },
        )
        .with_liveness(self.liveness);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(session.run(stop_rx))
                .unwrap();
        });
        Running {
            log,
            commands,
            ringer,
            reports,
            states: Vec::new(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Running {
    fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) {
        wait_until(
            what,
            || pred(&self.log.lock().unwrap()),
            || format!("{:?}", self.log.lock().unwrap()),
        );
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn place(&mut self, n: u64) {
        self.commands.push(place(n)).unwrap();
        self.ringer.ring();
    }

    /// Waits for the adapter's first venue states to be `want`.
    fn wait_states(&mut self, want: &[VenueState]) {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(r) = self.reports.pop() {
                if let Report::Venue(s) = r {
                    self.states.push(s.state);
                }
            }
            if self.states.len() >= want.len() {
                assert_eq!(self.states[..want.len()], *want, "{:?}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "venue states {want:?}: only {:?} within {WAIT:?}",
                self.states
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.unwrap();
            }
        }
    }
}

fn wait_until(what: &str, done: impl Fn() -> bool, show: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; {}",
            show()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn count(log: &[String], s: &str) -> usize {
    log.iter().filter(|l| *l == s).count()
}

fn place(n: u64) -> Command {
    Command::Place(OrderRequest {
        queued_ns: 0,
        client_id: ClientId::order(
            Namespace::new(1, 1),
            OrderKey {
                strategy: 1,
                order_id: n,
            },
        ),
        instrument: 1,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price: 1,
        qty: 1,
    })
}

/// A masked client Ping frame with an empty payload starts 0x89 0x80.
fn starts_with_ping(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x89 && bytes[1] == 0x80
}

#[test]
fn a_websocket_that_never_answers_is_closed_after_the_pong_timeout_and_reconnected() {
    let venue = Venue::start(|_| Kind::Silent);
    let mut s = Setup::ws(&venue.url).fast().start();
    s.wait_for("the WebSocket open", |l| count(l, "open 0") == 1);
    let opened = Instant::now();
    s.wait_for("the silent WebSocket judged dead", |l| {
        count(l, "close 0 no pong within 200 ms") >= 1
    });
    // Never before a ping interval and a pong timeout without a read (the
    // test saw the open a little late: a lower bound with slack).
    assert!(opened.elapsed() >= Duration::from_millis(300));
    // The socket was really closed, after a ping was written to it.
    let written = venue.drain_silent(0);
    assert!(starts_with_ping(&written), "{written:?}");
    // And the connection is retried as after any other end.
    s.wait_for("reconnected", |l| count(l, "open 0") >= 2);
    let log = s.log();
    let first_close = log.iter().position(|l| l.starts_with("close 0")).unwrap();
    assert_eq!(log[first_close - 1], "open 0", "{log:?}");
    assert_eq!(log[first_close + 1], "connecting 0", "{log:?}");
    s.wait_states(&[VenueState::Up, VenueState::Down, VenueState::Up]);
}

#[test]
fn a_websocket_that_answers_pings_stays_up() {
    let venue = Venue::start(|_| Kind::Answering);
    let s = Setup::ws(&venue.url).fast().start();
    s.wait_for("the WebSocket open", |l| count(l, "open 0") == 1);
    // Five pings answered: past five ping intervals and pong timeouts.
    wait_until(
        "five pings",
        || venue.pings.load(Ordering::SeqCst) >= 5,
        || format!("{:?}", s.log()),
    );
    let log = s.log();
    assert_eq!(count(&log, "open 0"), 1, "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("close")), "{log:?}");
    assert_eq!(venue.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(venue.ended(), Vec::<usize>::new());
}

#[test]
fn data_keeps_a_websocket_alive_without_pongs() {
    // The venue never reads, so it would never answer a ping; it sends a
    // frame every 50 ms, and anything read counts.
    let venue = Venue::start(|_| Kind::Chatty);
    let s = Setup::ws(&venue.url).fast().start();
    s.wait_for("twenty frames (five pong timeouts)", |l| {
        l.iter().filter(|x| x.starts_with("frame 0 tick-")).count() >= 20
    });
    let log = s.log();
    assert_eq!(count(&log, "open 0"), 1, "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("close")), "{log:?}");
    assert_eq!(venue.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_replaced_socket_that_never_answers_is_closed_and_drained() {
    // The first socket is silent; the adapter replaces it at once (make
    // before break) with one that answers. The old one, draining, gets
    // the same pings and deadline; its end is on_drained, not on_close.
    let venue = Venue::start(|n| {
        if n == 0 {
            Kind::Silent
        } else {
            Kind::Answering
        }
    });
    let mut setup = Setup::ws(&venue.url).fast();
    setup.replace_on_first_open = true;
    let mut s = setup.start();
    s.wait_for("the replacement open", |l| count(l, "open 0") == 2);
    s.wait_for("the silent replaced socket judged dead", |l| {
        count(l, "drained 0") == 1
    });
    let written = venue.drain_silent(0);
    assert!(starts_with_ping(&written), "{written:?}");
    // The live socket stays up through pings of its own.
    let pings = venue.pings.load(Ordering::SeqCst);
    wait_until(
        "two more pings on the live socket",
        || venue.pings.load(Ordering::SeqCst) >= pings + 2,
        || format!("{:?}", s.log()),
    );
    let log = s.log();
    assert!(!log.iter().any(|l| l.starts_with("close")), "{log:?}");
    assert_eq!(count(&log, "open 0"), 2, "{log:?}");
    assert_eq!(venue.ended(), Vec::<usize>::new());
    s.wait_states(&[VenueState::Up]);
    assert_eq!(s.states, [VenueState::Up]);
}

#[test]
fn close_connection_closes_the_socket_and_reconnects() {
    // Default liveness (10 s): no ping within this test.
    let venue = Venue::start(|_| Kind::Answering);
    let mut s = Setup::ws(&venue.url).start();
    s.wait_for("the WebSocket open", |l| count(l, "open 0") == 1);
    s.place(KILL);
    let closed = format!("close 0 {KILL_WHY}");
    s.wait_for("the adapter told of the close", |l| count(l, &closed) == 1);
    // The venue saw its socket end: closed for real, not just forgotten.
    wait_until(
        "the venue saw the socket end",
        || venue.ended() == [0],
        || format!("{:?}", s.log()),
    );
    s.wait_for("reconnected", |l| count(l, "open 0") == 2);
    assert_eq!(venue.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(venue.pings.load(Ordering::SeqCst), 0);
    let log = s.log();
    assert_eq!(count(&log, &closed), 1, "{log:?}");
    s.wait_states(&[VenueState::Up, VenueState::Down, VenueState::Up]);
}

#[test]
fn close_connection_during_a_replacement_closes_the_live_socket() {
    let venue = Venue::start(|_| Kind::Answering);
    let mut s = Setup::ws(&venue.url).start();
    s.wait_for("the WebSocket open", |l| count(l, "open 0") == 1);
    s.place(REPLACE);
    s.wait_for("the replacement open", |l| count(l, "open 0") == 2);
    // Two sockets now, the old one draining. The adapter judges the one
    // it writes to, the live one: that one is closed and reconnected; the
    // replaced one is still read until it ends.
    s.place(KILL);
    let closed = format!("close 0 {KILL_WHY}");
    s.wait_for("the adapter told of the close", |l| count(l, &closed) == 1);
    wait_until(
        "the venue saw the live socket end",
        || venue.ended() == [1],
        || format!("{:?}", s.log()),
    );
    s.wait_for("reconnected", |l| count(l, "open 0") == 3);
    let log = s.log();
    assert_eq!(count(&log, "drained 0"), 0, "{log:?}");
    assert_eq!(venue.ended(), [1]);
    s.wait_states(&[VenueState::Up, VenueState::Down, VenueState::Up]);
}

#[test]
fn close_connection_with_only_a_replaced_socket_left_closes_that() {
    // The first socket answers; its replacement is silent and dies of the
    // pong deadline (on_close; not retried within the test). The adapter
    // then judges the connection dead: the replaced socket, all that is
    // left, is closed (on_drained).
    let venue = Venue::start(|n| {
        if n == 1 {
            Kind::Silent
        } else {
            Kind::Answering
        }
    });
    let mut setup = Setup::ws(&venue.url).fast();
    setup.replace_on_first_open = true;
    setup.reconnect = ReconnectPolicy {
        min: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
    };
    let mut s = setup.start();
    s.wait_for("the silent replacement judged dead", |l| {
        count(l, "close 0 no pong within 200 ms") == 1
    });
    assert_eq!(venue.ended(), Vec::<usize>::new());
    s.place(KILL);
    s.wait_for("the replaced socket closed", |l| count(l, "drained 0") == 1);
    wait_until(
        "the venue saw the replaced socket end",
        || venue.ended() == [0],
        || format!("{:?}", s.log()),
    );
    let log = s.log();
    assert_eq!(count(&log, "open 0"), 2, "{log:?}");
    assert!(
        !log.iter().any(|l| l.starts_with("close 0 request")),
        "{log:?}"
    );
}

/// The sockets of this process whose local port is one of `ports` and
/// their kernel timer (`/proc/net/tcp`: `tr` 2 is the keepalive timer,
/// `tm->when` in clock ticks).
fn tcp_timers(ports: &[u16]) -> Vec<(u16, u32, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let mut v = Vec::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(port) = f
            .get(1)
            .and_then(|a| a.split_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        else {
            continue;
        };
        if !ports.contains(&port) {
            continue;
        }
        let Some((tr, when)) = f.get(5).and_then(|t| t.split_once(':')) else {
            continue;
        };
        v.push((
            port,
            u32::from_str_radix(tr, 16).unwrap(),
            u64::from_str_radix(when, 16).unwrap(),
        ));
    }
    v
}

#[test]
fn every_tcp_connection_the_session_opens_has_keepalive() {
    // The helper the session applies to every TCP socket, read back.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        ordergate::session::tune_tcp(&tcp).unwrap();
        let s = socket2::SockRef::from(&tcp);
        assert!(s.tcp_nodelay().unwrap());
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(15));
        assert_eq!(s.tcp_keepalive_interval().unwrap(), Duration::from_secs(5));
        assert_eq!(s.tcp_keepalive_retries().unwrap(), 3);
    });

    // And the session's own sockets, WebSocket and HTTP, as the kernel
    // shows them: the client ends' keepalive timers are armed.
    let venue = Venue::start(|_| Kind::Answering);
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_url = format!("http://{}", http.local_addr().unwrap());
    let mut setup = Setup::ws(&venue.url);
    setup.http_url = Some(http_url);
    let s = setup.start();
    // hyper sends nothing before a request: accepting is all it needs.
    let (_http_conn, http_peer) = http.accept().unwrap();
    s.wait_for("both connections open", |l| {
        count(l, "open 0") == 1 && count(l, "open 1") == 1
    });
    let ws_peer = {
        // The WebSocket's client port: the one connection to the venue
        // from this process that is not the venue's listener.
        let venue_port = venue.port;
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        table
            .lines()
            .skip(1)
            .find_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let local = u16::from_str_radix(f[1].split_once(':')?.1, 16).ok()?;
                let remote = u16::from_str_radix(f[2].split_once(':')?.1, 16).ok()?;
                (remote == venue_port && f[3] == "01").then_some(local)
            })
            .expect("the session's WebSocket in /proc/net/tcp")
    };
    let ports = [ws_peer, http_peer.port()];
    wait_until(
        "keepalive timers on both client sockets",
        || {
            let t = tcp_timers(&ports);
            // At most 15 s away (clock ticks are 1/100 s).
            ports.iter().all(|p| {
                t.iter()
                    .any(|&(q, tr, when)| q == *p && tr == 2 && when <= 1_500)
            })
        },
        || format!("{:?}", tcp_timers(&ports)),
    );
}
