//! The front end and the desk over a real Unix socket: the driver and the
//! desk on their own thread, a `Vec` command sink, venue reports injected
//! through a channel. Every read has a timeout, so nothing can hang.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ordergate::decimal::WideDecimal;
use ordergate::frontend::{Driver, FrontEnd, FrontEndConfig, StrategyConfig};
use ordergate::ids::{ClientId, ClientIdKind, Namespace, OrderKey, StrategyId, VenueId};
use ordergate::instrument::{Category, Instrument};
use ordergate::protocol::{
    decode_outbound, encode_inbound, msg_type, FrameReader, Inbound, NewOrder, OrdType, OrderState,
    Outbound, Reason, Side, TimeInForce, VenueState, VERSION_MAX, VERSION_MIN,
};
use ordergate::venue::{Command, ExecEvent, Lane, Report, VenueStatus};
use ordergate_core::desk::{CommandSink, Desk, DeskConfig};

const NS: Namespace = Namespace::new(1234, 42);
const TIMEOUT: Duration = Duration::from_secs(10);
/// The identity the front end tells in HelloAck.
const INSTALLATION: u64 = 916_132_831;
const FRONT_EPOCH: u32 = 3;

type Commands = Arc<Mutex<Vec<(StrategyId, Lane, Command)>>>;

struct VecSink {
    cmds: Commands,
    capacity: usize,
}

impl CommandSink for VecSink {
    fn push(
        &mut self,
        _venue: VenueId,
        strategy: StrategyId,
        lane: Lane,
        cmd: Command,
    ) -> Result<(), Command> {
        let mut v = self.cmds.lock().unwrap();
        if v.len() >= self.capacity {
            return Err(cmd);
        }
        v.push((strategy, lane, cmd));
        Ok(())
    }
}

fn btc() -> Instrument {
    Instrument::from_strings(
        1,
        VenueId::BinanceSpot,
        "BTCUSDT",
        Category::Spot,
        "0.05",
        "0.00005",
        "0.00010",
        "5",
    )
    .unwrap()
}

/// The driver on a thread, stopped and joined on drop.
struct Gateway {
    _dir: tempfile::TempDir,
    path: PathBuf,
    cmds: Commands,
    events: mpsc::Sender<Report>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Gateway {
    fn start(resend_capacity: usize, max_outbound_bytes: usize, queue: usize) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sock");
        let strategies: Vec<StrategyConfig> = [(1, "alpha"), (2, "beta"), (3, "slow")]
            .into_iter()
            .map(|(id, name)| StrategyConfig {
                id,
                name: name.into(),
            })
            .collect();
        let front = FrontEnd::new(FrontEndConfig {
            strategies: strategies.clone(),
            instruments: vec![btc()],
            resend_capacity,
            max_outbound_bytes,
            hello_timeout_ns: 2_000_000_000,
            installation: INSTALLATION,
            epoch: FRONT_EPOCH,
        })
        .unwrap();
        let mut desk = Desk::new(DeskConfig {
            namespace: NS,
            strategies: strategies.iter().map(|s| s.id).collect(),
            instruments: vec![btc()],
            venues: vec![VenueId::BinanceSpot],
            cancel_on_disconnect: Vec::new(),
        })
        .unwrap();
        let mut driver = Driver::bind(&path, front).unwrap();
        let mut notices = Vec::new();
        let up = VenueStatus {
            venue: VenueId::BinanceSpot,
            state: VenueState::Up,
            text: "connected".into(),
        };
        desk.on_venue_status(&up, &mut notices);
        for n in notices.drain(..) {
            driver.deliver(n);
        }
        let cmds = Commands::default();
        let mut sink = VecSink {
            cmds: cmds.clone(),
            capacity: queue,
        };
        let (tx, rx) = mpsc::channel::<Report>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut inputs = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                driver
                    .run_once(Some(Duration::from_millis(5)), &mut |i| {
                        inputs.push(i);
                        true
                    })
                    .unwrap();
                for i in inputs.drain(..) {
                    desk.on_request(i, 0, &mut sink, &mut notices);
                }
                for r in rx.try_iter() {
                    desk.on_report(&r, &mut notices);
                }
                for n in notices.drain(..) {
                    driver.deliver(n);
                }
                driver.flush();
            }
        });
        Gateway {
            _dir: dir,
            path,
            cmds,
            events: tx,
            stop,
            thread: Some(thread),
        }
    }

    fn inject(&self, ev: Report) {
        self.events.send(ev).unwrap();
    }

    fn commands(&self) -> Vec<(StrategyId, Lane, Command)> {
        self.cmds.lock().unwrap().clone()
    }

    /// Waits until `n` commands were emitted.
    fn wait_commands(&self, n: usize) -> Vec<(StrategyId, Lane, Command)> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let c = self.commands();
            if c.len() >= n {
                return c;
            }
            assert!(Instant::now() < deadline, "only {} commands", c.len());
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn connect(&self) -> Client {
        let stream = UnixStream::connect(&self.path).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        Client {
            stream,
            reader: FrameReader::new(),
        }
    }

    /// Connects and completes the Hello, returning the HelloAck's next_seq.
    fn login(&self, name: &str) -> (Client, u64) {
        let mut c = self.connect();
        c.send(&hello(name));
        let (_, ack) = c.recv();
        let Outbound::HelloAck {
            version,
            next_seq,
            instrument_count,
            installation,
            epoch,
            ..
        } = ack
        else {
            panic!("expected HelloAck, got {ack:?}");
        };
        assert_eq!((version, instrument_count), (VERSION_MAX, 1));
        assert_eq!((installation, epoch), (INSTALLATION, FRONT_EPOCH));
        assert!(matches!(c.recv().1, Outbound::InstrumentInfo(_)));
        assert!(matches!(c.recv().1, Outbound::VenueStatus { .. }));
        (c, next_seq)
    }

    /// Logs in once the old connection's close has been noticed and
    /// HelloAck announces `next_seq` (the injected events were handled).
    fn login_at(&self, name: &str, next_seq: u64) -> Client {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let mut c = self.connect();
            c.send(&hello(name));
            match c.recv().1 {
                Outbound::HelloAck { next_seq: n, .. } => {
                    assert!(matches!(c.recv().1, Outbound::InstrumentInfo(_)));
                    assert!(matches!(c.recv().1, Outbound::VenueStatus { .. }));
                    if n == next_seq {
                        return c;
                    }
                }
                Outbound::Error { reason, .. } => {
                    assert_eq!(reason, Reason::StrategyAlreadyConnected)
                }
                other => panic!("{other:?}"),
            }
            assert!(Instant::now() < deadline, "could not reconnect");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Client {
    stream: UnixStream,
    reader: FrameReader,
}

impl Client {
    fn send(&mut self, msg: &Inbound) {
        let mut buf = Vec::new();
        encode_inbound(msg, &mut buf);
        self.stream.write_all(&buf).unwrap();
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame, or `None` at end of stream. Panics on timeout.
    fn try_recv(&mut self) -> Option<(u64, Outbound)> {
        loop {
            if let Some(body) = self.reader.next_frame().unwrap() {
                return Some(decode_outbound(body).unwrap());
            }
            match self.reader.read_from(&mut self.stream) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed (timeout?): {e}"),
            }
        }
    }

    fn recv(&mut self) -> (u64, Outbound) {
        self.try_recv().expect("connection closed")
    }

    /// Reads until the gateway closes the connection.
    fn expect_closed(&mut self) {
        while let Some(m) = self.try_recv() {
            assert!(!m.1.is_sequenced(), "unexpected {m:?}");
        }
    }

    fn expect_error(&mut self, reason: Reason) {
        match self.recv() {
            (0, Outbound::Error { reason: r, .. }) if r == reason => {}
            other => panic!("expected Error {reason:?}, got {other:?}"),
        }
    }
}

fn hello(name: &str) -> Inbound {
    Inbound::Hello {
        min_version: VERSION_MIN,
        max_version: VERSION_MAX,
        name: name.into(),
    }
}

/// 0.01 BTC at 50000.00: notional 500 USDT.
fn order(order_id: u64) -> NewOrder {
    NewOrder {
        order_id,
        instrument_id: 1,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price: 5_000_000,
        qty: 1_000,
    }
}

fn cid(strategy: StrategyId, order_id: u64) -> ClientId {
    ClientId::order(NS, OrderKey { strategy, order_id })
}

fn accepted(strategy: StrategyId, order_id: u64) -> Report {
    Report::Exec(ExecEvent::Accepted {
        client_id: cid(strategy, order_id),
        venue_order_id: format!("V{order_id}"),
        time_ms: 1,
    })
}

fn fill(strategy: StrategyId, order_id: u64, trade: u64, qty: i64) -> Report {
    Report::Exec(ExecEvent::Fill {
        client_id: cid(strategy, order_id),
        trade_id: trade.to_string(),
        last_qty: qty,
        last_price: 5_000_000,
        fee: WideDecimal::parse("0.00000100").unwrap(),
        fee_asset: "BTC".into(),
        time_ms: 2,
        is_maker: true,
        order_filled: false,
    })
}

fn canceled(strategy: StrategyId, order_id: u64) -> Report {
    Report::Exec(ExecEvent::Canceled {
        client_id: cid(strategy, order_id),
        time_ms: 3,
    })
}

fn gateway() -> Gateway {
    Gateway::start(1024, 64 * 1024, usize::MAX)
}

#[test]
fn hello_negotiation() {
    let gw = gateway();
    let (mut a, next_seq) = gw.login("alpha");
    assert_eq!(next_seq, 1);

    // Same strategy twice.
    let mut dup = gw.connect();
    dup.send(&hello("alpha"));
    dup.expect_error(Reason::StrategyAlreadyConnected);
    dup.expect_closed();

    let mut unknown = gw.connect();
    unknown.send(&hello("gamma"));
    unknown.expect_error(Reason::UnknownStrategy);
    unknown.expect_closed();

    let mut future = gw.connect();
    future.send(&Inbound::Hello {
        min_version: VERSION_MAX + 1,
        max_version: VERSION_MAX + 2,
        name: "beta".into(),
    });
    future.expect_error(Reason::UnsupportedVersion);
    future.expect_closed();

    let mut rude = gw.connect();
    rude.send(&Inbound::NewOrder(order(1)));
    rude.expect_error(Reason::HelloRequired);
    rude.expect_closed();

    // The first connection is untouched.
    a.send(&Inbound::Heartbeat);
    assert_eq!(a.recv(), (0, Outbound::Heartbeat));
}

#[test]
fn instrument_checks_reject_with_the_right_reason() {
    let gw = gateway();
    let (mut a, _) = gw.login("alpha");
    let cases: Vec<(NewOrder, Reason)> = vec![
        (
            NewOrder {
                price: 5_000_001,
                ..order(1)
            },
            Reason::PriceNotOnTick,
        ),
        (
            NewOrder {
                price: 5_000_000,
                ..order(2)
            },
            Reason::None,
        ),
        (NewOrder { qty: 0, ..order(3) }, Reason::InvalidQty),
        (
            NewOrder {
                qty: 1_003,
                ..order(9)
            },
            Reason::QtyNotOnLot,
        ),
        (
            NewOrder {
                price: 0,
                ..order(4)
            },
            Reason::InvalidPrice,
        ),
        (NewOrder { qty: 5, ..order(5) }, Reason::BelowMinQty),
        // 0.0001 BTC at 100.00 = 0.01 USDT < 5
        (
            NewOrder {
                qty: 10,
                price: 10_000,
                ..order(6)
            },
            Reason::BelowMinNotional,
        ),
        (
            NewOrder {
                instrument_id: 9,
                ..order(7)
            },
            Reason::UnknownInstrument,
        ),
        (
            NewOrder {
                flags: ordergate::protocol::flags::QUOTE_QTY,
                ..order(8)
            },
            Reason::InvalidFlags,
        ),
    ];
    let mut seq = 1;
    for (o, reason) in &cases {
        a.send(&Inbound::NewOrder(*o));
        if *reason == Reason::None {
            continue;
        }
        match a.recv() {
            (
                s,
                Outbound::Rejected {
                    order_id,
                    reason: r,
                    text,
                },
            ) => {
                assert_eq!((s, order_id, r), (seq, o.order_id, *reason), "{text}");
                assert!(!text.is_empty());
            }
            other => panic!("{other:?}"),
        }
        seq += 1;
    }
    // A MARKET order skips the price and notional checks.
    a.send(&Inbound::NewOrder(NewOrder {
        ord_type: OrdType::Market,
        price: 0,
        qty: 10,
        ..order(20)
    }));
    let cmds = gw.wait_commands(2);
    assert_eq!(cmds.len(), 2);
    let Command::Place(p) = cmds[0].2 else {
        panic!("{cmds:?}")
    };
    assert_eq!(p.client_id, cid(1, 2));
    assert_eq!(cmds[0].1, Lane::Normal);
    assert_eq!(gw.commands().len(), 2);
}

#[test]
fn duplicate_order_id_gets_order_status_and_one_command() {
    let gw = gateway();
    let (mut a, _) = gw.login("alpha");
    a.send(&Inbound::NewOrder(order(5)));
    a.send(&Inbound::NewOrder(order(5)));
    match a.recv() {
        (1, Outbound::OrderStatus(st)) => {
            assert_eq!((st.order_id, st.state), (5, OrderState::PendingNew));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gw.wait_commands(1).len(), 1);
    // Same order id from another strategy is a different order.
    let (mut b, _) = gw.login("beta");
    b.send(&Inbound::NewOrder(order(5)));
    assert_eq!(gw.wait_commands(2).len(), 2);
    a.send(&Inbound::Heartbeat);
    assert_eq!(a.recv(), (0, Outbound::Heartbeat));
    assert_eq!(gw.commands().len(), 2);
}

#[test]
fn cancel_flow_with_venue_events() {
    let gw = gateway();
    let (mut a, _) = gw.login("alpha");
    a.send(&Inbound::NewOrder(order(7)));
    gw.wait_commands(1);
    gw.inject(accepted(1, 7));
    assert_eq!(
        a.recv(),
        (
            1,
            Outbound::Accepted {
                order_id: 7,
                venue_order_id: "V7".into()
            }
        )
    );
    gw.inject(fill(1, 7, 100, 400));
    match a.recv() {
        (2, Outbound::Fill(f)) => {
            assert_eq!(
                (f.cum_qty, f.leaves_qty, f.avg_price),
                (400, 600, 5_000_000)
            );
            assert_eq!(f.fee.to_string(), "0.00000100");
        }
        other => panic!("{other:?}"),
    }
    a.send(&Inbound::Cancel { order_id: 7 });
    let cmds = gw.wait_commands(2);
    assert_eq!(
        cmds[1],
        (
            1,
            Lane::Critical,
            Command::Cancel {
                cancel_id: ClientId::cancel(NS, cid(1, 7).key, 1),
                orig: cid(1, 7),
                instrument: 1,
            }
        )
    );
    assert_eq!(cmds[1].2.lane(), Lane::Critical);
    let Command::Cancel { cancel_id, .. } = cmds[1].2 else {
        unreachable!()
    };
    assert_eq!(cancel_id.kind, ClientIdKind::Cancel(1));
    gw.inject(canceled(1, 7));
    assert_eq!(
        a.recv(),
        (
            3,
            Outbound::Canceled {
                order_id: 7,
                cum_qty: 400
            }
        )
    );
    // Cancel of a finished and of an unknown order: refused, sequenced.
    a.send(&Inbound::Cancel { order_id: 7 });
    a.send(&Inbound::Cancel { order_id: 99 });
    for (seq, reason) in [(4, Reason::OrderNotOpen), (5, Reason::UnknownOrder)] {
        match a.recv() {
            (s, Outbound::CancelRejected { reason: r, .. }) => assert_eq!((s, r), (seq, reason)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(gw.commands().len(), 2);
}

#[test]
fn cancel_all_cancels_each_open_order() {
    let gw = gateway();
    let (mut a, _) = gw.login("alpha");
    for id in 1..=3 {
        a.send(&Inbound::NewOrder(order(id)));
    }
    gw.wait_commands(3);
    gw.inject(canceled(1, 2));
    assert!(matches!(a.recv().1, Outbound::Canceled { order_id: 2, .. }));
    a.send(&Inbound::CancelAll { instrument_id: 0 });
    let cmds = gw.wait_commands(5);
    let origs: Vec<u64> = cmds[3..]
        .iter()
        .map(|(_, _, c)| match c {
            Command::Cancel { orig, .. } => orig.key.order_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(origs, vec![1, 3]);
}

#[test]
fn resend_after_reconnect_replays_what_was_missed() {
    let gw = Gateway::start(4, 64 * 1024, usize::MAX);
    let (mut a, next) = gw.login("alpha");
    assert_eq!(next, 1);
    a.send(&Inbound::NewOrder(order(1)));
    gw.wait_commands(1);
    gw.inject(accepted(1, 1));
    assert_eq!(a.recv().0, 1);
    drop(a);
    // While disconnected: still sequenced and kept.
    gw.inject(fill(1, 1, 10, 300));
    gw.inject(canceled(1, 1));
    let mut a = gw.login_at("alpha", 4);
    a.send(&Inbound::ResendFrom { seq: 2 });
    match a.recv() {
        (2, Outbound::Fill(f)) => assert_eq!((f.order_id, f.cum_qty), (1, 300)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.recv(),
        (
            3,
            Outbound::Canceled {
                order_id: 1,
                cum_qty: 300
            }
        )
    );
    // Nothing else was replayed.
    a.send(&Inbound::Heartbeat);
    assert_eq!(a.recv(), (0, Outbound::Heartbeat));
    // Push the first messages out of the 4-deep buffer: seq 1 is gone.
    for id in 10..12 {
        a.send(&Inbound::NewOrder(NewOrder {
            price: 1,
            ..order(id)
        }));
        assert!(matches!(a.recv().1, Outbound::Rejected { .. }));
    }
    a.send(&Inbound::ResendFrom { seq: 1 });
    a.expect_error(Reason::ResendUnavailable);
    a.send(&Inbound::ResendFrom { seq: 5 });
    assert_eq!(a.recv().0, 5);
}

#[test]
fn a_replay_far_larger_than_the_outbound_limit_is_served_whole_and_before_live() {
    // 8 KiB of outbound room, about 900 KiB to replay.
    const MISSED: u64 = 8_000;
    let gw = Gateway::start(2 * MISSED as usize, 8 * 1024, usize::MAX);
    let (mut a, _) = gw.login("alpha");
    a.send(&Inbound::NewOrder(NewOrder {
        qty: 5_000_000_000_000,
        ..order(1)
    }));
    gw.wait_commands(1);
    drop(a);
    for t in 0..MISSED {
        gw.inject(fill(1, 1, t, 1));
    }
    // Seq 1 is the implicit Accepted before the first fill.
    let mut a = gw.login_at("alpha", MISSED + 2);
    a.send(&Inbound::ResendFrom { seq: 1 });
    assert_eq!(a.recv().0, 1);
    // A live message while the replay is far from done (the socket holds
    // a small part of it): it must come after every replayed one.
    gw.inject(canceled(1, 1));
    std::thread::sleep(Duration::from_millis(200));
    for seq in 2..=MISSED + 1 {
        match a.recv() {
            (s, Outbound::Fill(_)) if s == seq => {}
            other => panic!("expected the Fill with seq {seq}, got {other:?}"),
        }
    }
    assert!(matches!(
        a.recv(),
        (s, Outbound::Canceled { order_id: 1, .. }) if s == MISSED + 2
    ));
    a.send(&Inbound::Heartbeat);
    assert_eq!(a.recv(), (0, Outbound::Heartbeat));
}

#[test]
fn garbage_closes_only_that_connection() {
    let gw = gateway();
    let (mut a, _) = gw.login("alpha");
    let (mut b, _) = gw.login("beta");

    // An oversized length prefix.
    b.send_raw(&u32::MAX.to_le_bytes());
    b.expect_error(Reason::FrameTooLarge);
    b.expect_closed();

    // A frame whose body is cut short (a Hello with one byte of fields).
    let (mut b, _) = gw.login("beta");
    let mut raw = 3u32.to_le_bytes().to_vec();
    raw.extend_from_slice(&msg_type::NEW_ORDER.to_le_bytes());
    raw.push(0x55);
    b.send_raw(&raw);
    b.expect_error(Reason::MalformedFrame);
    b.expect_closed();

    // A frame of random bytes before any Hello.
    let mut r = gw.connect();
    r.send_raw(&64u32.to_le_bytes());
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let junk: Vec<u8> = (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    r.send_raw(&junk);
    assert!(matches!(r.recv().1, Outbound::Error { .. }));
    r.expect_closed();

    // Alpha keeps trading.
    a.send(&Inbound::NewOrder(order(1)));
    gw.wait_commands(1);
    gw.inject(accepted(1, 1));
    assert!(matches!(
        a.recv(),
        (1, Outbound::Accepted { order_id: 1, .. })
    ));
}

#[test]
fn unknown_message_type_keeps_the_connection() {
    let gw = gateway();
    let (mut a, _) = gw.login("alpha");
    let mut raw = 2u32.to_le_bytes().to_vec();
    raw.extend_from_slice(&0x0050u16.to_le_bytes());
    a.send_raw(&raw);
    a.expect_error(Reason::UnknownMessageType);
    let mut raw = 2u32.to_le_bytes().to_vec();
    raw.extend_from_slice(&msg_type::AMEND.to_le_bytes());
    a.send_raw(&raw);
    a.expect_error(Reason::NotImplemented);
    a.send(&Inbound::NewOrder(order(1)));
    assert_eq!(gw.wait_commands(1).len(), 1);
    a.send(&Inbound::Heartbeat);
    assert_eq!(a.recv(), (0, Outbound::Heartbeat));
}

#[test]
fn slow_reader_is_disconnected_others_keep_working() {
    let gw = Gateway::start(16, 8 * 1024, usize::MAX);
    let (mut a, _) = gw.login("alpha");
    let (mut slow, _) = gw.login("slow");
    slow.send(&Inbound::NewOrder(NewOrder {
        qty: 5_000_000_000_000,
        ..order(1)
    }));
    gw.wait_commands(1);
    // Far more than the socket buffer plus 8 KiB; `slow` never reads.
    for t in 0..30_000 {
        gw.inject(fill(3, 1, t, 1));
    }
    // Events are handled in order: once alpha's answer arrives, all the
    // fills were handled.
    a.send(&Inbound::NewOrder(order(1)));
    gw.wait_commands(2);
    gw.inject(accepted(1, 1));
    assert!(matches!(a.recv(), (1, Outbound::Accepted { .. })));
    // The slow strategy was dropped: it can log in again and has a gap.
    let (mut again, next) = gw.login("slow");
    // Seq 1 was the implicit Accepted, then 30 000 fills.
    assert_eq!(next, 30_002);
    again.send(&Inbound::Heartbeat);
    assert_eq!(again.recv(), (0, Outbound::Heartbeat));
    // Its old socket ends after whatever had been written.
    let mut n = 0;
    while let Some((seq, _)) = slow.try_recv() {
        n += 1;
        assert!(n < 30_000 && seq < 30_001);
    }
}

#[test]
fn venue_down_rejects_and_reports() {
    let gw = gateway();
    let (mut a, _) = gw.login("alpha");
    gw.inject(Report::Venue(VenueStatus {
        venue: VenueId::BinanceSpot,
        state: VenueState::Down,
        text: "reconnecting".into(),
    }));
    assert!(matches!(
        a.recv(),
        (
            0,
            Outbound::VenueStatus {
                state: VenueState::Down,
                ..
            }
        )
    ));
    a.send(&Inbound::NewOrder(order(1)));
    assert!(matches!(
        a.recv(),
        (
            1,
            Outbound::Rejected {
                reason: Reason::VenueDown,
                ..
            }
        )
    ));
    assert!(gw.commands().is_empty());
    // New connections learn the state right after the instrument table.
    let mut b = gw.connect();
    b.send(&hello("beta"));
    assert!(matches!(b.recv().1, Outbound::HelloAck { .. }));
    assert!(matches!(b.recv().1, Outbound::InstrumentInfo(_)));
    assert!(matches!(
        b.recv().1,
        Outbound::VenueStatus {
            state: VenueState::Down,
            ..
        }
    ));
}

#[test]
fn full_queue_rejects_and_frees_nothing_twice() {
    let gw = Gateway::start(64, 64 * 1024, 1);
    let (mut a, _) = gw.login("alpha");
    a.send(&Inbound::NewOrder(order(1)));
    a.send(&Inbound::NewOrder(order(2)));
    assert!(matches!(
        a.recv(),
        (
            1,
            Outbound::Rejected {
                order_id: 2,
                reason: Reason::QueueFull,
                ..
            }
        )
    ));
    // The rejected id is burnt: asking again reports its state.
    a.send(&Inbound::NewOrder(order(2)));
    match a.recv() {
        (2, Outbound::OrderStatus(st)) => assert_eq!(st.state, OrderState::Rejected),
        other => panic!("{other:?}"),
    }
    assert_eq!(gw.commands().len(), 1);
}

#[test]
fn the_rust_client_trades_through_the_gateway() {
    let gw = gateway();
    let mut c = ordergate::client::Client::connect(&gw.path, "beta").unwrap();
    assert_eq!((c.strategy_id(), c.next_seq()), (2, 1));
    assert_eq!((c.installation(), c.epoch()), (INSTALLATION, FRONT_EPOCH));
    assert_eq!(c.instrument("BTCUSDT").map(|i| i.tick), Some(5));
    let next = |c: &mut ordergate::client::Client| c.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert!(matches!(next(&mut c), (0, Outbound::VenueStatus { .. })));
    c.new_order(&order(1)).unwrap();
    gw.wait_commands(1);
    gw.inject(fill(2, 1, 1, 1_000));
    assert!(matches!(next(&mut c), (1, Outbound::Accepted { .. })));
    match next(&mut c) {
        (2, Outbound::Fill(f)) => assert_eq!((f.cum_qty, f.leaves_qty), (1_000, 0)),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.last_seq(), 2);
}
