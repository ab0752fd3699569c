//! The graceful stop (what SIGTERM does) under each `on_shutdown`
//! policy, and `cancel_on_disconnect`, over real sockets.

mod common;

use std::time::Duration;

use common::{Harness, Opts, ALPHA};
use ordergate::model::{OrderState, Side, VenueState};
use ordergate::sim::binance::OrderStatus;

fn venue_status(h: &Harness, strategy: u32, order_id: u64) -> OrderStatus {
    h.ledger_entry(strategy, order_id)
        .expect("the venue has the order")
        .order
        .status
}

#[test]
fn leave_keeps_resting_orders_for_the_next_start_to_adopt() {
    let mut h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    s.send(s.limit(1, Side::Buy, "59000.00", "0.01"));
    assert_eq!(s.first_answer(1).state(), OrderState::New);
    h.drain();
    assert_eq!(venue_status(&h, ALPHA.0, 1), OrderStatus::New);

    h.start_again();
    s.reconnect(&h.socket, ALPHA.1);
    s.wait_venue(VenueState::Up);
    s.cancel(1);
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Canceled, "{t:?}");
    assert_eq!(venue_status(&h, ALPHA.0, 1), OrderStatus::Canceled);
}

#[test]
fn cancel_cancels_every_open_order_before_the_sidecar_exits() {
    let mut h = Harness::with(Opts {
        extra: "\n[gateway]\non_shutdown = \"cancel\"\n".into(),
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    for id in 1..=3 {
        s.send(s.limit(id, Side::Buy, "59000.00", "0.01"));
        assert_eq!(s.first_answer(id).state(), OrderState::New);
    }
    h.drain();
    for id in 1..=3 {
        assert_eq!(venue_status(&h, ALPHA.0, id), OrderStatus::Canceled);
        // Told before the sidecar went away.
        let t = s.follow(id);
        assert_eq!(t.state(), OrderState::Canceled, "{t:?}");
    }
}

const GAMMA: (u32, &str) = (7, "gamma");

fn with_gamma() -> Harness {
    Harness::with(Opts {
        extra: format!(
            "\n[[strategy]]\nid = {}\nname = \"{}\"\ncancel_on_disconnect = true\ndisconnect_grace_ms = 300\n",
            GAMMA.0, GAMMA.1
        ),
        ..Opts::default()
    })
}

#[test]
fn cancel_on_disconnect_cancels_after_the_grace_only() {
    let h = with_gamma();
    let mut g = h.trader(GAMMA.1);
    g.send(g.limit(1, Side::Buy, "59000.00", "0.01"));
    assert_eq!(g.first_answer(1).state(), OrderState::New);
    // Back within the grace: nothing is cancelled.
    let last = g.last_seq;
    drop(g);
    std::thread::sleep(Duration::from_millis(50));
    let mut g = h.connect(GAMMA.1);
    g.last_seq = last;
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(venue_status(&h, GAMMA.0, 1), OrderStatus::New);
    // Gone for longer: cancelled.
    drop(g);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while venue_status(&h, GAMMA.0, 1) != OrderStatus::Canceled {
        assert!(std::time::Instant::now() < deadline, "not cancelled");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A strategy without the setting keeps its orders.
    let mut a = h.trader(ALPHA.1);
    a.send(a.limit(1, Side::Buy, "59000.00", "0.01"));
    assert_eq!(a.first_answer(1).state(), OrderState::New);
    drop(a);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(venue_status(&h, ALPHA.0, 1), OrderStatus::New);
}

#[test]
fn a_sidecar_restart_alone_cancels_nothing() {
    let mut h = with_gamma();
    let mut g = h.trader(GAMMA.1);
    g.send(g.limit(1, Side::Buy, "59000.00", "0.01"));
    assert_eq!(g.first_answer(1).state(), OrderState::New);
    h.restart();
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(venue_status(&h, GAMMA.0, 1), OrderStatus::New);
    g.reconnect(&h.socket, GAMMA.1);
    g.wait_venue(VenueState::Up);
    assert_eq!(venue_status(&h, GAMMA.0, 1), OrderStatus::New);
}

/// The built binary (`run --config`), its stderr in a file, with a
/// strategy connected once the venue is Up.
struct Process {
    sim: ordergate::sim::binance::SimHandle,
    child: std::process::Child,
    log: std::path::PathBuf,
    strategy: common::Strat,
    _dir: tempfile::TempDir,
}

impl Process {
    fn start(opts: &Opts) -> Process {
        let sim = common::start_sim(opts);
        let dir = common::short_tempdir();
        let (_, path) = common::write_config(dir.path(), &sim.ws_url(), &sim.rest_url(), opts);
        let log = dir.path().join("sidecar.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_ordergate"))
            .args(["run", "--config"])
            .arg(&path)
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let socket = dir.path().join("s.sock");
        common::wait_for_socket(&socket);
        let mut strategy =
            common::Strat::new(ordergate::client::Client::connect(&socket, ALPHA.1).unwrap());
        strategy.wait_venue(VenueState::Up);
        Process {
            sim,
            child,
            log,
            strategy,
            _dir: dir,
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill with a child's pid and a valid signal number has no
        // memory effects.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// The real binary and a real SIGTERM, under each policy: it exits 0 and
/// its log says what it did with the resting order; the venue agrees.
#[test]
fn sigterm_on_the_real_binary_says_what_it_did() {
    for (policy, log_says, count, venue_after) in [
        ("leave", "left resting", "left_resting=1", OrderStatus::New),
        (
            "cancel",
            "open orders cancelled",
            "cancels_sent=1",
            OrderStatus::Canceled,
        ),
    ] {
        let opts = Opts {
            extra: format!("\n[gateway]\non_shutdown = \"{policy}\"\n"),
            ..Opts::default()
        };
        let mut p = Process::start(&opts);
        let s = &mut p.strategy;
        s.send(s.limit(1, Side::Buy, "59000.00", "0.01"));
        assert_eq!(s.first_answer(1).state(), OrderState::New);

        p.signal(libc::SIGTERM);
        let status = p.child.wait().unwrap();
        assert!(status.success(), "{policy}: {status:?}");
        let text = p.log_text();
        let sim = &p.sim;
        assert!(
            text.contains(log_says) && text.contains(count),
            "{policy}: log says\n{text}"
        );
        let id = ordergate::ids::ClientId::decode(&sim.ledger()[0].order.client_order_id).unwrap();
        assert_eq!(id.key.order_id, 1);
        assert_eq!(sim.ledger()[0].order.status, venue_after, "{policy}");
    }
}

/// A drain that cannot finish (an order whose outcome the venue left
/// unknown) is cut short by a second signal: the process exits 0 at once,
/// not at the drain's deadline, and says so.
#[test]
fn a_second_signal_stops_without_waiting_for_the_drain() {
    let mut p = Process::start(&Opts::default());
    let spec = ordergate::sim::binance::FaultSpec::parse("unknown-rejected:1000").unwrap();
    p.sim.set_faults(spec, 1);
    let s = &mut p.strategy;
    s.send(s.limit(1, Side::Buy, "59000.00", "0.01"));
    // Answered with an unknown outcome; the order is not at the venue.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !p
        .sim
        .request_log()
        .iter()
        .any(|r| r.method == "order.place")
    {
        assert!(std::time::Instant::now() < deadline, "no order.place");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));

    p.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(p.child.try_wait().unwrap().is_none(), "still draining");
    let started = std::time::Instant::now();
    p.signal(libc::SIGINT);
    let status = p.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped at once"
    );
    let text = p.log_text();
    assert!(text.contains("second signal"), "log says\n{text}");
}
