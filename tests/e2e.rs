//! The whole sidecar end to end: a real strategy client on the real Unix
//! socket, the gateway, rings and venue session, the real WebSocket to an
//! in-process simulator, and the venue's own ledger as the judge. Each
//! test has its own simulator, sidecar and temp dir; every wait is bounded.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Harness, Opts, Strat, ALPHA, BETA, REFERENCE, SYMBOL, WAIT};
use ordergate::client::Client;
use ordergate::protocol::{
    decode_outbound, encode_inbound, FrameReader, Inbound, Outbound, MAX_FRAME, VERSION_MAX,
    VERSION_MIN,
};
use ordergate::protocol::{OrderState, Reason, Side, TimeInForce, VenueState};
use ordergate::sim::binance::FillModel;

/// A fill model where every taker finds only part of its quantity, split
/// over up to three trades.
fn thin_market(seed: u64) -> FillModel {
    FillModel {
        seed,
        taker_partial_per_mille: 1000,
        maker_partial_per_mille: 0,
        max_trades_per_match: 3,
    }
}

#[test]
fn resting_limit_is_accepted_then_canceled() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    s.send(s.limit(1, Side::Buy, "59000.00", "0.01"));
    let t = s.first_answer(1);
    let venue_id = t.accepted.expect("Accepted");
    assert!(!venue_id.is_empty(), "Accepted carries the venue order id");
    assert!(t.fills.is_empty());

    s.cancel(1);
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Canceled);
    assert_eq!(t.canceled, Some(0));
    let e = h.ledger_entry(ALPHA.0, 1).expect("on the venue");
    assert_eq!(e.order.order_id.to_string(), venue_id);
    h.assert_matches_ledger(ALPHA.0, &t);
}

#[test]
fn crossing_limit_fills_and_matches_the_ledger() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    let qty = s.qty("0.012");
    s.send(s.limit(1, Side::Buy, "60100.00", "0.012"));
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Filled);
    assert!(t.accepted.is_some(), "Accepted before the end");
    assert!(!t.fills.is_empty());
    t.assert_fills_consistent(qty);
    let last = t.fills.last().unwrap();
    assert_eq!(last.cum_qty, qty);
    assert_eq!(last.leaves_qty, 0);
    // A full fill model: one trade at the market price.
    let px = s.px(REFERENCE);
    assert_eq!(last.last_price, px);
    assert_eq!(last.avg_price, px);
    assert_eq!(last.cum_notional, px as i128 * qty as i128);
    assert!(!last.is_maker);
    h.assert_matches_ledger(ALPHA.0, &t);
}

#[test]
fn market_order_fills_completely() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    let qty = s.qty("0.5");
    s.send(s.market(1, Side::Sell, "0.5"));
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Filled);
    t.assert_fills_consistent(qty);
    assert_eq!(t.cum_qty(), qty);
    h.assert_matches_ledger(ALPHA.0, &t);
}

#[test]
fn market_order_in_a_thin_market_fills_in_parts_then_expires() {
    let h = Harness::with(Opts {
        fill: thin_market(5),
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    let qty = s.qty("0.5");
    s.send(s.market(1, Side::Buy, "0.5"));
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Expired, "{t:?}");
    assert!(t.fills.len() >= 2, "several fills: {:?}", t.fills);
    t.assert_fills_consistent(qty);
    let cum = t.expired.unwrap();
    assert!(cum > 0 && cum < qty, "expired with {cum} of {qty}");
    assert_eq!(cum, t.fills.last().unwrap().cum_qty);
    h.assert_matches_ledger(ALPHA.0, &t);
}

#[test]
fn ioc_with_limited_liquidity_fills_partly_then_expires() {
    let h = Harness::with(Opts {
        fill: thin_market(11),
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    let qty = s.qty("0.2");
    let mut o = s.limit(1, Side::Sell, "59900.00", "0.2");
    o.tif = TimeInForce::Ioc;
    s.send(o);
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Expired, "{t:?}");
    assert!(!t.fills.is_empty());
    t.assert_fills_consistent(qty);
    let cum = t.expired.unwrap();
    assert!(cum > 0 && cum < qty, "expired with {cum} of {qty}");
    // A sell IOC never trades below its limit.
    assert!(t.fills.iter().all(|f| f.last_price >= s.px("59900.00")));
    h.assert_matches_ledger(ALPHA.0, &t);
}

#[test]
fn resting_limit_fills_when_the_market_moves_through_it() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    let qty = s.qty("0.03");
    s.send(s.limit(1, Side::Buy, "59900.00", "0.03"));
    let t = s.first_answer(1);
    assert_eq!(t.state(), OrderState::New);
    s.sync();
    assert!(s.track(1).fills.is_empty(), "nothing fills before the move");

    let events = h.sim.set_reference_price(SYMBOL, "59850.00").unwrap();
    assert!(!events.is_empty(), "the move crosses the resting order");
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Filled);
    t.assert_fills_consistent(qty);
    assert!(t.fills.iter().all(|f| f.is_maker), "a resting order makes");
    assert_eq!(t.fills.last().unwrap().avg_price, s.px("59900.00"));
    h.assert_matches_ledger(ALPHA.0, &t);
}

/// A cancel sent right behind its order, before any answer: the venue
/// sees the order first, so the cancel finds it and it ends Canceled
/// (a cancel that overtook its order would be refused as unknown and
/// leave the order live).
#[test]
fn cancel_sent_right_behind_its_order_cancels_it() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    for id in 1..=10u64 {
        s.send(s.limit(id, Side::Buy, "59000.00", "0.01"));
        s.cancel(id);
        let t = s.follow(id);
        assert_eq!(t.state(), OrderState::Canceled, "order {id}: {t:?}");
        assert!(t.cancel_rejected.is_empty(), "order {id}: {t:?}");
        h.assert_matches_ledger(ALPHA.0, &t);
    }
}

#[test]
fn price_off_the_tick_is_refused_by_the_gateway() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    // The config's tick is written with 8 decimals, so half a cent is
    // expressible, and must be refused rather than rounded.
    assert_eq!(s.inst.price_scale, 8);
    s.send(s.limit(1, Side::Buy, "60000.005", "0.01"));
    let t = s.follow(1);
    let (reason, text) = t.rejected.expect("Rejected");
    assert_eq!(reason, Reason::PriceNotOnTick, "{text}");
    assert!(text.contains("60000.005"), "{text}");
    s.sync();
    assert!(h.sim.ledger().is_empty(), "nothing reached the venue");
}

#[test]
fn market_below_min_notional_is_refused_by_the_venue() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    // 0.00001 BTC at 60000 is 0.6 USDT, below the 5 USDT minimum; the
    // gateway cannot know a MARKET order's price, so the venue decides.
    s.send(s.market(1, Side::Buy, "0.00001"));
    let t = s.follow(1);
    let (reason, text) = t.rejected.expect("Rejected");
    assert_eq!(reason, Reason::VenueFilter, "{text}");
    assert!(text.contains("NOTIONAL"), "the venue's text: {text}");
    assert!(h.ledger_entry(ALPHA.0, 1).is_none());
}

#[test]
fn duplicate_order_id_is_answered_with_its_status_and_sent_once() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    let o = s.limit(1, Side::Sell, "61000.00", "0.01");
    s.send(o);
    s.send(o);
    s.until("Accepted and the duplicate's answer", |s| {
        s.tracks
            .get(&1)
            .is_some_and(|t| t.accepted.is_some() && !t.status.is_empty())
    });
    let t = s.track(1).clone();
    assert_eq!(t.status.len(), 1);
    assert!(matches!(
        t.status[0].state,
        OrderState::PendingNew | OrderState::New
    ));
    assert_eq!(t.status[0].cum_qty, 0);
    assert!(t.rejected.is_none());

    s.cancel(1);
    s.follow(1);
    s.send(o);
    s.until("the late duplicate's answer", |s| {
        s.track(1).status.len() == 2
    });
    assert_eq!(s.track(1).status[1].state, OrderState::Canceled);
    s.sync();
    let ledger = h.sim.ledger();
    assert_eq!(ledger.len(), 1, "the venue got one order: {ledger:?}");
    h.assert_matches_ledger(ALPHA.0, s.track(1));
}

#[test]
fn wrong_api_secret_gets_a_clear_answer() {
    let h = Harness::with(Opts {
        api_secret: "not-the-secret".into(),
        ..Opts::default()
    });
    let mut s = h.connect(ALPHA.1);
    // The WebSocket connects, but the venue is not Up until the signed
    // user-data subscription succeeds; it is refused, and the venue is
    // reported Halted with the venue's error. It never says Up.
    s.until("the venue halted", |s| {
        s.venue_states.iter().any(|v| v.0 == VenueState::Halted)
    });
    let halted = &s
        .venue_states
        .iter()
        .find(|v| v.0 == VenueState::Halted)
        .unwrap()
        .1;
    assert!(halted.contains("-1022"), "says why: {halted}");
    assert!(!s.venue_states.iter().any(|v| v.0 == VenueState::Up));
    s.send(s.limit(2, Side::Buy, "59000.00", "0.01"));
    let (reason, text) = s.follow(2).rejected.expect("Rejected");
    assert_eq!(reason, Reason::VenueDown, "{text}");
    assert!(text.contains("Halted"), "{text}");
    assert!(h.sim.ledger().is_empty());
}

/// A raw strategy connection, for sending what the client never would.
struct Raw {
    stream: UnixStream,
    reader: FrameReader,
}

impl Raw {
    fn connect(h: &Harness) -> Raw {
        let stream = UnixStream::connect(&h.socket).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Raw {
            stream,
            reader: FrameReader::new(),
        }
    }

    fn send(&mut self, msg: &Inbound) {
        let mut out = Vec::new();
        encode_inbound(msg, &mut out);
        self.stream.write_all(&out).unwrap();
    }

    /// The next message, or `None` once the sidecar closed the connection.
    fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(body) = self.reader.next_frame().unwrap() {
                return Some(decode_outbound(body).unwrap().1);
            }
            match self.reader.read_from(&mut self.stream) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read from the sidecar: {e}"),
            }
        }
    }

    /// Reads until an Error frame; returns it.
    fn error(&mut self) -> (Reason, String) {
        loop {
            match self.recv() {
                Some(Outbound::Error { reason, text }) => return (reason, text),
                Some(_) => {}
                None => panic!("closed without an Error frame"),
            }
        }
    }

    fn assert_closed(&mut self) {
        while let Some(m) = self.recv() {
            assert!(!m.is_sequenced(), "after the error: {m:?}");
        }
    }
}

/// Crossing buys that must fill completely; checked against the ledger.
fn trade(h: &Harness, s: &mut Strat, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        s.send(s.limit(id, Side::Buy, "60050.00", "0.01"));
        let t = s.follow(id);
        assert_eq!(t.state(), OrderState::Filled, "{t:?}");
        h.assert_matches_ledger(ALPHA.0, &t);
    }
}

#[test]
fn garbage_from_one_strategy_does_not_disturb_another() {
    let h = Harness::start();
    let mut a = h.trader(ALPHA.1);
    trade(&h, &mut a, 1..=2);

    let mut b = Raw::connect(&h);
    b.send(&Inbound::Hello {
        min_version: VERSION_MIN,
        max_version: VERSION_MAX,
        name: BETA.1.into(),
    });
    assert!(matches!(b.recv(), Some(Outbound::HelloAck { .. })));
    // A well-framed message of an unknown type: an error, not a close.
    b.stream.write_all(&[2, 0, 0, 0, 0x77, 0x77]).unwrap();
    assert_eq!(b.error().0, Reason::UnknownMessageType);
    b.send(&Inbound::Heartbeat);
    while b.recv().expect("still open") != Outbound::Heartbeat {}
    trade(&h, &mut a, 3..=4);

    // A length prefix beyond the maximum frame: Error, then closed.
    let mut bad = (MAX_FRAME as u32 + 1).to_le_bytes().to_vec();
    bad.extend_from_slice(&[0xAB; 16]);
    b.stream.write_all(&bad).unwrap();
    assert_eq!(b.error().0, Reason::FrameTooLarge);
    b.assert_closed();
    trade(&h, &mut a, 5..=6);

    // Bytes that are no frame at all, before any Hello: an HTTP request's
    // first four bytes read as a huge length.
    let mut c = Raw::connect(&h);
    c.stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(c.error().0, Reason::FrameTooLarge);
    c.assert_closed();
    // A truncated frame after Hello: malformed, closed.
    let mut d = Raw::connect(&h);
    d.send(&Inbound::Hello {
        min_version: VERSION_MIN,
        max_version: VERSION_MAX,
        name: BETA.1.into(),
    });
    assert!(matches!(d.recv(), Some(Outbound::HelloAck { .. })));
    d.stream.write_all(&[3, 0, 0, 0, 0x02, 0x00, 0x01]).unwrap();
    assert_eq!(d.error().0, Reason::MalformedFrame);
    d.assert_closed();

    trade(&h, &mut a, 7..=8);
    // The closed connections freed the name: beta can trade now.
    let mut b = h.trader(BETA.1);
    b.send(b.market(1, Side::Sell, "0.01"));
    let t = b.follow(1);
    assert_eq!(t.state(), OrderState::Filled);
    h.assert_matches_ledger(BETA.0, &t);
    a.sync();
    assert_eq!(a.tracks.len(), 8, "alpha heard only of its own orders");
}

#[test]
fn reconnect_and_resend_from_delivers_what_was_missed() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    s.send(s.limit(1, Side::Buy, "59000.00", "0.01"));
    let venue_id = s.first_answer(1).accepted.expect("Accepted");
    s.sync();
    let last = s.last_seq;
    drop(s);

    // The order fills while the strategy is away.
    h.sim.set_reference_price(SYMBOL, "58990.00").unwrap();
    assert_eq!(
        h.ledger_entry(ALPHA.0, 1).unwrap().order.status.as_str(),
        "FILLED"
    );

    // Reconnect until the sidecar has processed the fill (HelloAck says a
    // message was sequenced since).
    let deadline = Instant::now() + WAIT;
    let mut c = loop {
        let c = Client::connect(&h.socket, ALPHA.1).unwrap();
        if c.next_seq() > last + 1 {
            break c;
        }
        drop(c);
        assert!(
            Instant::now() < deadline,
            "the fill never reached the sidecar"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let next = c.next_seq();
    c.resend_from(last + 1).unwrap();
    c.heartbeat().unwrap();
    let mut replayed = Vec::new();
    loop {
        let (seq, msg) = c.recv_timeout(WAIT).unwrap().expect("an answer");
        if msg == Outbound::Heartbeat {
            break;
        }
        if msg.is_sequenced() {
            replayed.push((seq, msg));
        }
    }
    let seqs: Vec<u64> = replayed.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (last + 1..next).collect::<Vec<_>>(), "{replayed:?}");
    let Some((_, Outbound::Fill(f))) = replayed.last() else {
        panic!("the missed message is the fill: {replayed:?}");
    };
    assert_eq!((f.order_id, f.leaves_qty), (1, 0));

    // From the start: the Accepted first, with its original number.
    c.resend_from(0).unwrap();
    let (seq, msg) = c.recv_timeout(WAIT).unwrap().expect("the replay");
    assert_eq!(seq, 1);
    assert_eq!(
        msg,
        Outbound::Accepted {
            order_id: 1,
            venue_order_id: venue_id
        }
    );
    let mut s = Strat::new(c);
    s.last_seq = 1;
    s.until("the replay's end", |s| s.last_seq == next - 1);
    h.assert_matches_ledger(ALPHA.0, s.track(1));
}

/// A child process killed, if still running, when the test ends.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_without_a_reachable_venue_rejects_orders_as_venue_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is gone: nothing accepts on that port now.
    let dir = common::short_tempdir();
    let (_, path) = common::write_config(
        dir.path(),
        &format!("ws://127.0.0.1:{port}/ws-api/v3"),
        &format!("http://127.0.0.1:{port}"),
        &Opts::default(),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ordergate run");
    let mut child = ChildGuard(child);
    let socket = dir.path().join("s.sock");
    let deadline = Instant::now() + WAIT;
    while UnixStream::connect(&socket).is_err() {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "ordergate run exited"
        );
        assert!(Instant::now() < deadline, "no socket within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut s = Strat::new(Client::connect(&socket, ALPHA.1).expect("accepts the strategy"));
    for id in 1..=3 {
        s.send(s.market(id, Side::Buy, "0.01"));
        let (reason, text) = s.follow(id).rejected.expect("Rejected");
        assert_eq!(reason, Reason::VenueDown, "{text}");
    }
    assert!(!s.venue_states.is_empty(), "told the venue's state");
    assert!(
        s.venue_states.iter().all(|v| v.0 != VenueState::Up),
        "{:?}",
        s.venue_states
    );

    // SIGTERM stops it cleanly.
    let pid = child.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn sidecar_syncs_to_a_venue_clock_that_is_off() {
    let h = Harness::with(Opts {
        clock_offset_ms: 30_000,
        ..Opts::default()
    });
    let mut s = h.connect(ALPHA.1);
    // Whatever the start looks like, some order must get through in time.
    let deadline = Instant::now() + WAIT;
    for id in 1.. {
        assert!(
            Instant::now() < deadline,
            "no order accepted; venue {:?}, last answer {:?}",
            s.venue_states.last(),
            s.tracks.get(&(id - 1))
        );
        s.send(s.limit(id, Side::Buy, "59000.00", "0.01"));
        if s.first_answer(id).accepted.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn venue_server_shutdown_reconnects_and_orders_survive() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    let qty = s.qty("0.03");
    // An order resting across the reconnect.
    s.send(s.limit(1, Side::Buy, "59900.00", "0.03"));
    assert_eq!(s.first_answer(1).state(), OrderState::New);

    // The venue announces its shutdown: the session opens the new
    // connection before the old one closes, so the venue never stops being
    // Up, and the new connection's user stream is subscribed.
    let before = s.venue_states.len();
    h.sim.trigger_server_shutdown();
    s.until("the new connection subscribed", |s| {
        s.venue_states[before..]
            .iter()
            .any(|v| v.1.contains("subscribed"))
    });
    assert!(
        s.venue_states[before..]
            .iter()
            .all(|v| v.0 == VenueState::Up),
        "{:?}",
        &s.venue_states[before..]
    );
    // Trading goes on while the old connection is still draining.
    s.send(s.limit(3, Side::Buy, "59000.00", "0.01"));
    assert_eq!(s.first_answer(3).state(), OrderState::New);

    // The resting order is still tracked: a market move fills it, and the
    // fill arrives on the new connection's user stream.
    h.sim.set_reference_price(SYMBOL, "59850.00").unwrap();
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Filled);
    t.assert_fills_consistent(qty);
    h.assert_matches_ledger(ALPHA.0, &t);

    // New orders go through the new connection.
    s.send(s.limit(2, Side::Buy, "59000.00", "0.01"));
    assert_eq!(s.first_answer(2).state(), OrderState::New);
}

/// An order sent the moment the venue announces its shutdown, and others
/// while the old connection drains and after it closed, are all accepted:
/// the replacement connection is not closed with the old one, and the
/// venue never leaves Up.
#[test]
fn orders_during_the_server_shutdown_switch_are_accepted() {
    let h = Harness::with(Opts {
        shutdown_grace: Duration::from_millis(200),
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    let before = s.venue_states.len();
    h.sim.trigger_server_shutdown();
    // During the switch: sent before the sidecar can even have the new
    // connection open.
    s.send(s.limit(1, Side::Buy, "59000.00", "0.01"));
    assert_eq!(s.first_answer(1).state(), OrderState::New);
    // Keep trading past the old connection's close (the venue closes it
    // after its grace period).
    let closed_by = Instant::now() + Duration::from_millis(200) * 5;
    let mut id = 2;
    while Instant::now() < closed_by {
        s.send(s.limit(id, Side::Buy, "59000.00", "0.01"));
        assert_eq!(s.first_answer(id).state(), OrderState::New, "order {id}");
        id += 1;
    }
    s.send(s.limit(id, Side::Buy, "60100.00", "0.01"));
    assert_eq!(s.follow(id).state(), OrderState::Filled);
    s.sync();
    let after = &s.venue_states[before..];
    assert!(
        after.iter().all(|v| v.0 == VenueState::Up),
        "the venue left Up: {after:?}"
    );
    assert!(
        after.iter().any(|v| v.1.contains("new connection ready")),
        "the new connection came up: {after:?}"
    );
    for n in 1..=id {
        assert!(
            h.ledger_entry(ALPHA.0, n).is_some(),
            "order {n} reached the venue"
        );
    }
}

/// `wait = "spin"` busy-polls: the session must still process what the
/// venue answers (the first `time` answer used to be stuck behind a timer
/// that never fired), in both layouts.
#[test]
fn spin_wait_trades_in_both_layouts() {
    for layout in [
        "layout = \"single\"\nwait = \"spin\"\n",
        "layout = \"pinned\"\nwait = \"spin\"\n[cores]\ngateway = 0\nsessions = { binance-spot = 1 }\n",
    ] {
        let h = Harness::with(Opts {
            layout,
            ..Opts::default()
        });
        let mut s = h.trader(ALPHA.1);
        let qty = s.qty("0.02");
        s.send(s.limit(1, Side::Buy, "60100.00", "0.02"));
        let t = s.follow(1);
        assert_eq!(t.state(), OrderState::Filled, "{layout}");
        t.assert_fills_consistent(qty);
        h.assert_matches_ledger(ALPHA.0, &t);
        s.send(s.limit(2, Side::Sell, "61000.00", "0.01"));
        assert_eq!(s.first_answer(2).state(), OrderState::New);
        s.cancel(2);
        assert_eq!(s.follow(2).state(), OrderState::Canceled, "{layout}");
    }
}

/// The `pinned` layout: gateway and session each on their own thread,
/// pinned to a core (the parking wait strategy: this machine has 2 cores).
#[test]
fn pinned_layout_trades_like_single() {
    let h = Harness::with(Opts {
        layout: "layout = \"pinned\"\nwait = \"park\"\n[cores]\ngateway = 0\nsessions = { binance-spot = 1 }\n",
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    let qty = s.qty("0.02");
    s.send(s.limit(1, Side::Buy, "60100.00", "0.02"));
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Filled);
    t.assert_fills_consistent(qty);
    h.assert_matches_ledger(ALPHA.0, &t);
    s.send(s.limit(2, Side::Sell, "61000.00", "0.01"));
    assert_eq!(s.first_answer(2).state(), OrderState::New);
    s.cancel(2);
    assert_eq!(s.follow(2).state(), OrderState::Canceled);
}
