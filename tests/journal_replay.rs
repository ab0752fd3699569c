//! Restart replay without sockets: a desk's inputs journaled as the
//! gateway journals them, over many small segments with snapshots, then
//! replayed into fresh desks. Replaying from the newest snapshot must give
//! exactly the state a replay of the whole log gives, and both the state
//! the live desk had.

use ordergate::journal::restore::{restore, restore_full};
use ordergate::journal::writer::{JournalWriter, SeqSnapshotRef};
use ordergate::journal::{Durability, Journal, JournalConfig};
use ordergate_core::decimal::WideDecimal;
use ordergate_core::desk::{CommandSink, Desk, DeskConfig, DeskInput, Request};
use ordergate_core::ids::{ClientId, Namespace, OrderKey, StrategyId, VenueId};
use ordergate_core::instrument::{Category, Instrument};
use ordergate_core::model::{
    ExecEvent, NewOrder, OrdType, Side, TimeInForce, VenueState, VenueStatus,
};
use ordergate_core::venue::{Command, Lane, Report};

struct Take;

impl CommandSink for Take {
    fn push(&mut self, _: VenueId, _: StrategyId, _: Lane, _: Command) -> Result<(), Command> {
        Ok(())
    }
}

fn desk(ns: Namespace) -> Desk {
    desk_with(ns, Vec::new())
}

fn desk_with(ns: Namespace, cancel_on_disconnect: Vec<(StrategyId, u64)>) -> Desk {
    Desk::new(DeskConfig {
        namespace: ns,
        strategies: vec![1, 2],
        instruments: vec![Instrument::from_strings(
            1,
            VenueId::BinanceSpot,
            "BTCUSDT",
            Category::Spot,
            "0.10",
            "0.001",
            "0.001",
            "5",
        )
        .unwrap()],
        venues: vec![VenueId::BinanceSpot],
        cancel_on_disconnect,
    })
    .unwrap()
}

/// (strategy, next seq, frames sent) — the front end's part, faked.
type Seqs = Vec<(StrategyId, u64, Vec<(u64, Vec<u8>)>)>;

/// The gateway's way: journal each input, then apply it; a fake sent
/// frame per notice stands in for the front end's recorder; a snapshot
/// whenever the segment is full.
struct Live {
    desk: Desk,
    journal: JournalWriter,
    seqs: Seqs,
    now: u64,
    /// Snapshots written so far.
    snapshots: u64,
}

impl Live {
    /// A journal of small segments in `dir`, this run's start marker, and
    /// the venue Up.
    fn open(dir: &std::path::Path, desk: Desk, ns: Namespace) -> Live {
        let config = JournalConfig {
            segment_bytes: 4 << 10,
            durability: Durability::None,
        };
        let (journal, _) = Journal::open(dir, config).unwrap();
        let mut live = Live {
            desk,
            journal: JournalWriter::new(journal),
            seqs: vec![(1, 1, Vec::new()), (2, 1, Vec::new())],
            now: 0,
            snapshots: 0,
        };
        live.journal.start(ns);
        live.report(Report::Venue(VenueStatus {
            venue: VenueId::BinanceSpot,
            state: VenueState::Up,
            text: "up".into(),
        }));
        live
    }

    fn notices(&mut self, n: Vec<ordergate_core::desk::Notice>) {
        for notice in n {
            if let ordergate_core::desk::Notice::Order { strategy, update } = notice {
                let s = self.seqs.iter_mut().find(|s| s.0 == strategy).unwrap();
                let seq = s.1;
                s.1 += 1;
                let frame = format!("{seq}:{update:?}").into_bytes();
                self.journal.sent(strategy, seq, &frame);
                s.2.push((seq, frame));
            }
        }
        if self.journal.wants_snapshot() {
            let desk = self.desk.snapshot();
            let sequences: Vec<SeqSnapshotRef<'_>> = self
                .seqs
                .iter()
                .map(|(strategy, next, frames)| SeqSnapshotRef {
                    strategy: *strategy,
                    next_seq: *next,
                    frames: frames.iter().map(|(q, f)| (*q, f.as_slice())).collect(),
                })
                .collect();
            self.journal.snapshot(&desk, &sequences);
            self.snapshots += 1;
        }
    }

    fn ask(&mut self, strategy: StrategyId, request: Request) {
        self.now += 1_000;
        let input = DeskInput { strategy, request };
        self.journal.command(self.now, &input);
        let mut out = Vec::new();
        self.desk.on_request(input, self.now, &mut Take, &mut out);
        self.notices(out);
    }

    fn report(&mut self, r: Report) {
        self.journal.report(&r);
        let mut out = Vec::new();
        self.desk.on_report(&r, &mut out);
        self.notices(out);
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
        price: 500_000,
        qty: 3_000,
    }
}

/// Equal order tables, or the first order that differs.
fn same(a: &Desk, b: &Desk, what: &str) {
    let (a, b) = (a.snapshot(), b.snapshot());
    for (x, y) in a.lifecycle.orders.iter().zip(&b.lifecycle.orders) {
        assert_eq!(x, y, "first order that differs from {what}");
    }
    assert_eq!(
        a.lifecycle.orders.len(),
        b.lifecycle.orders.len(),
        "orders, vs {what}"
    );
    assert_eq!(a, b, "vs {what}");
}

#[test]
fn replay_from_the_newest_snapshot_equals_replay_of_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let ns = Namespace::new(99, 1);
    let mut live = Live::open(dir.path(), desk(ns), ns);
    let mut trade = 0;
    for id in 1..=120u64 {
        let strategy = 1 + (id % 2) as u32;
        live.ask(strategy, Request::NewOrder(limit(id)));
        let client_id = ClientId::order(
            ns,
            OrderKey {
                strategy,
                order_id: id,
            },
        );
        if id % 3 != 0 {
            live.report(Report::Exec(ExecEvent::Accepted {
                client_id,
                venue_order_id: (1000 + id).to_string(),
                time_ms: id,
            }));
        }
        for _ in 0..(id % 4) {
            trade += 1;
            live.report(Report::Exec(ExecEvent::Fill {
                client_id,
                trade_id: trade.to_string(),
                last_qty: 1_000,
                last_price: 500_000,
                fee: WideDecimal::default(),
                fee_asset: String::new(),
                time_ms: id,
                is_maker: true,
                order_filled: false,
            }));
        }
        if id % 5 == 0 {
            live.ask(strategy, Request::Cancel { order_id: id });
        }
    }
    drop(live.journal);
    let segments = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(segments > 5, "the log rotated ({segments} segments)");

    let mut from_snapshot = desk(ns);
    let a = restore(dir.path(), &mut from_snapshot, 1000).unwrap();
    let mut whole = desk(ns);
    let b = restore_full(dir.path(), &mut whole, 1000).unwrap();
    assert!(
        a.records < b.records,
        "the snapshot shortened replay ({} vs {})",
        a.records,
        b.records
    );
    same(&from_snapshot, &whole, "whole-log replay");
    same(&from_snapshot, &live.desk, "the live desk");
    assert_eq!(a.sequences, b.sequences);
    for (strategy, next, frames) in &live.seqs {
        let s = &a.sequences[strategy];
        assert_eq!(s.next_seq, *next);
        assert_eq!(s.frames.iter().cloned().collect::<Vec<_>>(), *frames);
    }
    // Open orders survive: cancels pending, fills and trade ids included.
    assert!(from_snapshot.lifecycle().all_open().count() > 0);
    assert_eq!(from_snapshot.adoptions(), live.desk.adoptions());
}

/// What the desk holds besides orders: a `cancel_on_disconnect` deadline
/// and a shutdown's refusal of new orders. A snapshot taken while either
/// is in force must carry it, or a replay from that snapshot fires no
/// cancel at the timer and takes an order the live desk refused.
#[test]
fn a_snapshot_keeps_disconnect_deadlines_and_a_shutdown_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let ns = Namespace::new(99, 1);
    let grace = 1_000_000_000;
    let fresh = || desk_with(ns, vec![(2, grace)]);
    let mut live = Live::open(dir.path(), fresh(), ns);
    for id in 1..=5 {
        live.ask(2, Request::NewOrder(limit(id)));
    }
    live.ask(2, Request::Presence { connected: true });
    live.ask(2, Request::Presence { connected: false });
    // Strategy 1 keeps trading until a snapshot falls inside the grace.
    let mut id = 100;
    let before = live.snapshots;
    while live.snapshots == before {
        id += 1;
        live.ask(1, Request::NewOrder(limit(id)));
    }
    assert!(live.now < grace, "still inside the grace");
    live.now = 2 * grace;
    live.journal.timer(live.now);
    let mut out = Vec::new();
    live.desk.on_timer(live.now, &mut Take, &mut out);
    live.notices(out);
    assert!(
        live.desk
            .lifecycle()
            .open_orders(2)
            .all(|o| o.cancels_outstanding > 0),
        "the live desk cancelled strategy 2's orders"
    );

    live.journal.shutdown(false);
    let mut out = Vec::new();
    live.desk.begin_shutdown(false, &mut Take, &mut out);
    live.notices(out);
    // Cancels of unknown orders keep records coming until a snapshot.
    let before = live.snapshots;
    while live.snapshots == before {
        live.ask(1, Request::Cancel { order_id: 1 });
    }
    live.ask(1, Request::NewOrder(limit(9_999)));
    assert!(
        live.desk
            .lifecycle()
            .status(OrderKey {
                strategy: 1,
                order_id: 9_999
            })
            .is_none(),
        "refused while shutting down"
    );
    drop(live.journal);

    let mut from_snapshot = fresh();
    restore(dir.path(), &mut from_snapshot, 1000).unwrap();
    let mut whole = fresh();
    restore_full(dir.path(), &mut whole, 1000).unwrap();
    same(&from_snapshot, &whole, "whole-log replay");
    same(&from_snapshot, &live.desk, "the live desk");
}
