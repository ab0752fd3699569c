//! The order desk driven directly: no sockets, no rings, a `Vec` sink.

use ordergate_core::desk::{CommandSink, Desk, DeskConfig, DeskInput, Notice, Request};
use ordergate_core::ids::{ClientId, Namespace, OrderKey, StrategyId, VenueId};
use ordergate_core::instrument::{Category, Instrument};
use ordergate_core::model::{
    flags, ExecEvent, NewOrder, OrdType, OrderState, OrderUpdate, Reason, Side, TimeInForce,
    VenueState, VenueStatus,
};
use ordergate_core::venue::{Command, Lane, Report};

const NS: Namespace = Namespace::new(1234, 9);

#[derive(Default)]
struct Sink {
    sent: Vec<(VenueId, StrategyId, Lane, Command)>,
    capacity: Option<usize>,
}

impl CommandSink for Sink {
    fn push(
        &mut self,
        venue: VenueId,
        strategy: StrategyId,
        lane: Lane,
        cmd: Command,
    ) -> Result<(), Command> {
        if self.capacity.is_some_and(|c| self.sent.len() >= c) {
            return Err(cmd);
        }
        self.sent.push((venue, strategy, lane, cmd));
        Ok(())
    }
}

fn instrument(id: u32, venue: VenueId, symbol: &str, category: Category) -> Instrument {
    Instrument::from_strings(id, venue, symbol, category, "0.10", "0.001", "0.001", "5").unwrap()
}

struct T {
    desk: Desk,
    sink: Sink,
    out: Vec<Notice>,
}

impl T {
    fn new() -> T {
        T::with(Vec::new())
    }

    /// With `cancel_on_disconnect` (strategy, grace ns).
    fn with(cancel_on_disconnect: Vec<(StrategyId, u64)>) -> T {
        let desk = Desk::new(DeskConfig {
            namespace: NS,
            strategies: vec![1, 2],
            instruments: vec![
                instrument(1, VenueId::BinanceSpot, "BTCUSDT", Category::Spot),
                instrument(2, VenueId::BinanceUsdm, "BTCUSDT", Category::LinearPerp),
            ],
            venues: vec![VenueId::BinanceSpot, VenueId::BinanceUsdm],
            cancel_on_disconnect,
        })
        .unwrap();
        let mut t = T {
            desk,
            sink: Sink::default(),
            out: Vec::new(),
        };
        t.venue(VenueId::BinanceSpot, VenueState::Up);
        t.venue(VenueId::BinanceUsdm, VenueState::Up);
        t.out.clear();
        t
    }

    fn venue(&mut self, venue: VenueId, state: VenueState) {
        let s = VenueStatus {
            venue,
            state,
            text: format!("{state:?}"),
        };
        self.desk.on_report(&Report::Venue(s), &mut self.out);
    }

    fn ask(&mut self, strategy: StrategyId, request: Request) -> Vec<Notice> {
        self.ask_at(strategy, request, 0)
    }

    fn ask_at(&mut self, strategy: StrategyId, request: Request, now_ns: u64) -> Vec<Notice> {
        self.desk.on_request(
            DeskInput { strategy, request },
            now_ns,
            &mut self.sink,
            &mut self.out,
        );
        std::mem::take(&mut self.out)
    }

    fn presence(&mut self, strategy: StrategyId, connected: bool, now_ns: u64) {
        assert!(self
            .ask_at(strategy, Request::Presence { connected }, now_ns)
            .is_empty());
    }

    /// The venue accepts `strategy`'s order `order_id`.
    fn accept(&mut self, strategy: StrategyId, order_id: u64) {
        let client_id = ClientId::order(NS, OrderKey { strategy, order_id });
        let ack = ExecEvent::Accepted {
            client_id,
            venue_order_id: order_id.to_string(),
            time_ms: 1,
        };
        self.desk.on_report(&Report::Exec(ack), &mut self.out);
        self.out.clear();
    }

    /// The (strategy, order id) of every cancel sent from `from` on.
    fn cancels_since(&self, from: usize) -> Vec<(StrategyId, u64)> {
        self.sink.sent[from..]
            .iter()
            .filter_map(|(_, s, _, c)| match c {
                Command::Cancel { orig, .. } => Some((*s, orig.key.order_id)),
                Command::Place(_) => None,
            })
            .collect()
    }

    fn place(&mut self, strategy: StrategyId, o: NewOrder) -> Vec<Notice> {
        self.ask(strategy, Request::NewOrder(o))
    }
}

fn limit(order_id: u64) -> NewOrder {
    NewOrder {
        order_id,
        instrument_id: 1,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price: 2_000_000, // 20000.00
        qty: 1_000,       // 1.000
    }
}

fn rejected(n: &[Notice]) -> (Reason, String) {
    match n {
        [Notice::Order {
            update: OrderUpdate::Rejected { reason, text, .. },
            ..
        }] => (*reason, text.clone()),
        other => panic!("expected one rejection, got {other:?}"),
    }
}

#[test]
fn an_order_is_routed_by_venue_strategy_and_lane_with_its_client_id() {
    let mut t = T::new();
    assert!(t.place(2, limit(7)).is_empty());
    let (venue, strategy, lane, cmd) = t.sink.sent[0];
    assert_eq!(
        (venue, strategy, lane),
        (VenueId::BinanceSpot, 2, Lane::Normal)
    );
    let key = OrderKey {
        strategy: 2,
        order_id: 7,
    };
    match cmd {
        Command::Place(r) => assert_eq!(r.client_id, ClientId::order(NS, key)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        t.desk.lifecycle().status(key).unwrap().state,
        OrderState::PendingNew
    );
    // The venue has not answered yet: the cancel goes right behind its
    // order, on the order's own lane, so the venue sees the order first.
    assert!(t.ask(2, Request::Cancel { order_id: 7 }).is_empty());
    assert_eq!(t.sink.sent[1].2, Lane::Normal);
}

#[test]
fn a_cancel_of_an_order_the_venue_has_jumps_the_queue() {
    let mut t = T::new();
    t.place(1, limit(1));
    let client_id = ClientId::order(
        NS,
        OrderKey {
            strategy: 1,
            order_id: 1,
        },
    );
    let ack = ExecEvent::Accepted {
        client_id,
        venue_order_id: "9".into(),
        time_ms: 1,
    };
    t.desk.on_report(&Report::Exec(ack), &mut t.out);
    t.ask(1, Request::Cancel { order_id: 1 });
    assert_eq!(t.sink.sent[1].2, Lane::Critical);
    // A reduce-only order's cancel is critical either way.
    let ro = NewOrder {
        instrument_id: 2,
        flags: flags::REDUCE_ONLY,
        ..limit(2)
    };
    t.place(1, ro);
    t.ask(1, Request::Cancel { order_id: 2 });
    assert_eq!(t.sink.sent[3].2, Lane::Critical);
}

#[test]
fn combinations_the_venue_cannot_express_are_refused_never_changed() {
    let mut t = T::new();
    let cases = [
        (
            OrdType::LimitMaker,
            TimeInForce::Ioc,
            0,
            "LIMIT_MAKER with IOC",
        ),
        (
            OrdType::LimitMaker,
            TimeInForce::Fok,
            0,
            "LIMIT_MAKER with FOK",
        ),
        (
            OrdType::Limit,
            TimeInForce::Ioc,
            flags::POST_ONLY,
            "LIMIT with POST_ONLY with IOC",
        ),
        (
            OrdType::Limit,
            TimeInForce::Fok,
            flags::POST_ONLY,
            "LIMIT with POST_ONLY with FOK",
        ),
        (OrdType::Market, TimeInForce::Fok, 0, "MARKET with FOK"),
        (
            OrdType::Limit,
            TimeInForce::Gtc,
            flags::REDUCE_ONLY,
            "REDUCE_ONLY",
        ),
    ];
    for (i, (ord_type, tif, fl, says)) in cases.into_iter().enumerate() {
        let o = NewOrder {
            ord_type,
            tif,
            flags: fl,
            ..limit(i as u64 + 1)
        };
        let (reason, text) = rejected(&t.place(1, o));
        assert_eq!(reason, Reason::InvalidFlags, "{text}");
        assert!(text.contains(says), "{text:?} should name {says:?}");
    }
    assert!(t.sink.sent.is_empty());
    // What the venue can express goes out as it is.
    let ok = [
        (OrdType::LimitMaker, TimeInForce::Gtc, 0),
        (OrdType::Limit, TimeInForce::Gtc, flags::POST_ONLY),
        (OrdType::Limit, TimeInForce::Ioc, 0),
        (OrdType::Limit, TimeInForce::Fok, 0),
        (OrdType::Market, TimeInForce::Ioc, 0),
        (OrdType::Market, TimeInForce::Gtc, 0),
    ];
    for (i, (ord_type, tif, fl)) in ok.into_iter().enumerate() {
        let o = NewOrder {
            ord_type,
            tif,
            flags: fl,
            ..limit(100 + i as u64)
        };
        assert!(t.place(1, o).is_empty(), "{ord_type:?} {tif:?} {fl}");
    }
    assert_eq!(t.sink.sent.len(), ok.len());
    // Reduce-only means something on a derivatives instrument.
    let ro = NewOrder {
        instrument_id: 2,
        flags: flags::REDUCE_ONLY,
        ..limit(200)
    };
    assert!(t.place(1, ro).is_empty());
    assert_eq!(t.sink.sent.last().unwrap().2, Lane::Critical);
}

#[test]
fn a_venue_that_is_not_up_refuses_at_once_and_says_why() {
    let mut t = T::new();
    t.venue(VenueId::BinanceSpot, VenueState::Halted);
    assert!(matches!(t.out.as_slice(), [Notice::Venue(s)] if s.state == VenueState::Halted));
    t.out.clear();
    let (reason, text) = rejected(&t.place(1, limit(1)));
    assert_eq!(reason, Reason::VenueDown);
    assert!(text.contains("binance-spot is Halted"), "{text}");
    assert!(t.sink.sent.is_empty());
    // The order was never tracked: the id can be used again once Up.
    t.venue(VenueId::BinanceSpot, VenueState::Up);
    t.out.clear();
    assert!(t.place(1, limit(1)).is_empty());
}

#[test]
fn a_repeated_order_id_is_answered_with_its_status_and_never_sent_twice() {
    let mut t = T::new();
    t.place(1, limit(5));
    let n = t.place(1, limit(5));
    assert!(matches!(
        n.as_slice(),
        [Notice::Order { strategy: 1, update: OrderUpdate::Status(s) }]
            if s.order_id == 5 && s.state == OrderState::PendingNew
    ));
    assert_eq!(t.sink.sent.len(), 1);
    // The same id from another strategy is another order.
    assert!(t.place(2, limit(5)).is_empty());
    assert_eq!(t.desk.counters().duplicates, 1);
}

#[test]
fn a_full_queue_rejects_the_order_and_the_lifecycle_knows() {
    let mut t = T::new();
    t.sink.capacity = Some(0);
    let (reason, _) = rejected(&t.place(1, limit(1)));
    assert_eq!(reason, Reason::QueueFull);
    let key = OrderKey {
        strategy: 1,
        order_id: 1,
    };
    assert_eq!(
        t.desk.lifecycle().status(key).unwrap().state,
        OrderState::Rejected
    );
}

#[test]
fn venue_reports_reach_the_owning_strategy_through_the_lifecycle() {
    let mut t = T::new();
    t.place(2, limit(3));
    let client_id = ClientId::order(
        NS,
        OrderKey {
            strategy: 2,
            order_id: 3,
        },
    );
    let ack = ExecEvent::Accepted {
        client_id,
        venue_order_id: "123".into(),
        time_ms: 1,
    };
    t.desk.on_report(&Report::Exec(ack), &mut t.out);
    assert_eq!(
        t.out,
        vec![Notice::Order {
            strategy: 2,
            update: OrderUpdate::Accepted {
                order_id: 3,
                venue_order_id: "123".into()
            }
        }]
    );
}

#[test]
fn cancel_all_cancels_each_open_order_once() {
    let mut t = T::new();
    for id in 1..=3 {
        t.place(1, limit(id));
    }
    t.place(2, limit(9));
    t.ask(1, Request::Cancel { order_id: 2 });
    let before = t.sink.sent.len();
    assert!(t.ask(1, Request::CancelAll { instrument_id: 0 }).is_empty());
    let cancels: Vec<_> = t.sink.sent[before..]
        .iter()
        .map(|(_, s, lane, c)| match c {
            Command::Cancel { orig, .. } => (*s, *lane, orig.key.order_id),
            other => panic!("{other:?}"),
        })
        .collect();
    // Nothing was acknowledged yet: each cancel follows its order's lane.
    assert_eq!(cancels, vec![(1, Lane::Normal, 1), (1, Lane::Normal, 3)]);
    // An unknown order's cancel is refused with the reason.
    let n = t.ask(1, Request::Cancel { order_id: 77 });
    assert!(matches!(
        n.as_slice(),
        [Notice::Order {
            update: OrderUpdate::CancelRejected {
                reason: Reason::UnknownOrder,
                ..
            },
            ..
        }]
    ));
}

#[test]
fn requests_name_their_problem() {
    let mut t = T::new();
    let unknown = NewOrder {
        instrument_id: 99,
        ..limit(1)
    };
    assert_eq!(rejected(&t.place(1, unknown)).0, Reason::UnknownInstrument);
    let off_tick = NewOrder {
        price: 2_000_001,
        ..limit(2)
    };
    let (reason, text) = rejected(&t.place(1, off_tick));
    assert_eq!(reason, Reason::PriceNotOnTick);
    assert!(
        text.contains("20000.01") || text.contains("not a multiple of tick"),
        "{text}"
    );
    // A strategy the desk does not know is dropped without an answer.
    assert!(t.place(42, limit(3)).is_empty());
    assert!(t.sink.sent.is_empty());
}

#[test]
fn a_strategy_gone_longer_than_its_grace_has_its_orders_cancelled() {
    let mut t = T::with(vec![(2, 1_000)]);
    for id in 1..=2 {
        t.place(2, limit(id));
        t.accept(2, id);
    }
    t.place(1, limit(3));
    t.accept(1, 3);
    let placed = t.sink.sent.len();
    assert_eq!(t.desk.next_timer(), None, "no timer before a disconnect");
    t.presence(2, true, 0);
    t.presence(2, false, 100);
    // Strategy 1 has no cancel_on_disconnect: its presence sets nothing.
    t.presence(1, false, 100);
    assert_eq!(t.desk.next_timer(), Some(1_100));
    t.desk.on_timer(1_099, &mut t.sink, &mut t.out);
    assert_eq!(t.sink.sent.len(), placed, "not before the grace ends");
    t.desk.on_timer(1_100, &mut t.sink, &mut t.out);
    assert_eq!(t.cancels_since(placed), vec![(2, 1), (2, 2)]);
    assert_eq!(t.desk.next_timer(), None, "it fires once");
}

#[test]
fn back_within_the_grace_or_a_restart_cancels_nothing() {
    let mut t = T::with(vec![(2, 1_000)]);
    t.place(2, limit(1));
    t.accept(2, 1);
    let placed = t.sink.sent.len();
    t.presence(2, false, 0);
    t.presence(2, true, 500);
    assert_eq!(t.desk.next_timer(), None);
    t.presence(2, false, 600);
    t.desk.begin_run(Namespace::new(1234, 10));
    assert_eq!(t.desk.next_timer(), None, "a restart is not a disconnect");
    t.desk.on_timer(u64::MAX, &mut t.sink, &mut t.out);
    assert_eq!(t.sink.sent.len(), placed);
}

#[test]
fn a_shutdown_refuses_new_orders_and_waits_for_answers() {
    let mut t = T::new();
    t.place(1, limit(1));
    t.place(2, limit(2));
    t.accept(2, 2);
    let placed = t.sink.sent.len();
    t.desk.begin_shutdown(false, &mut t.sink, &mut t.out);
    assert_eq!(t.sink.sent.len(), placed, "leave cancels nothing");
    let (reason, text) = rejected(&t.place(1, limit(3)));
    assert_eq!(reason, Reason::VenueDown);
    assert!(text.contains("shutting down"), "{text}");
    // A repeated order id still hears where its order is.
    assert!(matches!(
        t.place(1, limit(1)).as_slice(),
        [Notice::Order {
            update: OrderUpdate::Status(_),
            ..
        }]
    ));
    assert!(!t.desk.settled(false), "order 1 waits for the venue");
    t.accept(1, 1);
    assert!(t.desk.settled(false));
    assert!(!t.desk.settled(true), "orders are still open");

    let mut t = T::new();
    t.place(1, limit(1));
    t.accept(1, 1);
    t.place(2, limit(2));
    t.accept(2, 2);
    let placed = t.sink.sent.len();
    t.desk.begin_shutdown(true, &mut t.sink, &mut t.out);
    assert_eq!(t.cancels_since(placed), vec![(1, 1), (2, 2)]);
    assert!(!t.desk.settled(false), "cancels outstanding");
}
