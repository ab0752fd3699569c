//! The Unix-socket front end's protocol core driven directly: bytes in,
//! pending bytes out, no sockets.

use std::sync::{Arc, Mutex};

use ordergate::frontend::{FrontEnd, FrontEndConfig, SeqRecorder, StrategyConfig};
use ordergate::ids::{StrategyId, VenueId};
use ordergate::instrument::{Category, Instrument};
use ordergate::protocol::{
    decode_outbound, encode_inbound, Inbound, NewOrder, OrdType, Outbound, Reason, Side,
    TimeInForce, VenueState, LEN_PREFIX, VERSION_MAX,
};
use ordergate_core::desk::{DeskInput, Notice, Request};
use ordergate_core::model::{OrderUpdate, VenueStatus};

const HELLO_NS: u64 = 5_000_000_000;
const INSTALLATION: u64 = 56_800_235_583; // 62^6 - 1, the largest
const EPOCH: u32 = 7;

fn front(max_outbound_bytes: usize) -> FrontEnd {
    FrontEnd::new(FrontEndConfig {
        strategies: vec![
            StrategyConfig {
                id: 1,
                name: "alpha".into(),
            },
            StrategyConfig {
                id: 2,
                name: "beta".into(),
            },
        ],
        instruments: vec![Instrument::from_strings(
            1,
            VenueId::BinanceSpot,
            "BTCUSDT",
            Category::Spot,
            "0.01",
            "0.001",
            "0.001",
            "5",
        )
        .unwrap()],
        resend_capacity: 64,
        max_outbound_bytes,
        hello_timeout_ns: HELLO_NS,
        installation: INSTALLATION,
        epoch: EPOCH,
    })
    .unwrap()
}

fn frame(msg: &Inbound) -> Vec<u8> {
    let mut out = Vec::new();
    encode_inbound(msg, &mut out);
    out
}

fn hello(name: &str) -> Vec<u8> {
    hello_v(name, VERSION_MAX)
}

fn hello_v(name: &str, max_version: u16) -> Vec<u8> {
    frame(&Inbound::Hello {
        min_version: 1,
        max_version,
        name: name.into(),
    })
}

/// Everything `conn` has to say, read until nothing is pending (a
/// replay refills as it is read), decoded.
fn drain(f: &mut FrontEnd, conn: usize) -> Vec<(u64, Outbound)> {
    let mut bytes = Vec::new();
    while !f.pending(conn).is_empty() {
        bytes.extend(read(f, conn, usize::MAX));
    }
    decode(&bytes)
}

/// Reads at most `n` of the pending bytes, as one socket write would.
fn read(f: &mut FrontEnd, conn: usize, n: usize) -> Vec<u8> {
    let pending = f.pending(conn);
    let bytes = pending[..n.min(pending.len())].to_vec();
    f.consumed(conn, bytes.len());
    bytes
}

fn decode(bytes: &[u8]) -> Vec<(u64, Outbound)> {
    let mut msgs = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        msgs.push(decode_outbound(&bytes[pos + LEN_PREFIX..pos + LEN_PREFIX + len]).unwrap());
        pos += LEN_PREFIX + len;
    }
    msgs
}

fn accept_all(_: DeskInput) -> bool {
    true
}

fn order(order_id: u64) -> NewOrder {
    NewOrder {
        order_id,
        instrument_id: 1,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price: 100,
        qty: 1,
    }
}

#[test]
fn hello_has_a_deadline() {
    let mut f = front(1 << 20);
    f.on_connect(1, 0);
    f.on_connect(2, 1_000);
    assert_eq!(f.next_timer(), Some(HELLO_NS));
    f.on_bytes(2, &hello("alpha"), &mut accept_all);
    f.on_timer(HELLO_NS - 1);
    assert!(!f.is_closing(1));
    f.on_timer(HELLO_NS);
    let msgs = drain(&mut f, 1);
    assert!(matches!(
        msgs.as_slice(),
        [(
            0,
            Outbound::Error {
                reason: Reason::HelloRequired,
                ..
            }
        )]
    ));
    assert!(f.should_close(1));
    // The connection that did say Hello is not touched.
    assert!(!f.is_closing(2));
    assert_eq!(f.next_timer(), None);
}

#[test]
fn hello_ack_tells_the_sidecar_identity_from_version_2() {
    let mut f = front(1 << 20);
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    assert_eq!(
        drain(&mut f, 1)[0],
        (
            0,
            Outbound::HelloAck {
                version: 2,
                strategy_id: 1,
                next_seq: 1,
                instrument_count: 1,
                installation: INSTALLATION,
                epoch: EPOCH,
            }
        )
    );
    // A version-1 strategy gets the version-1 frame, which has no room
    // for the identity.
    f.on_connect(2, 0);
    f.on_bytes(2, &hello_v("beta", 1), &mut accept_all);
    let ack = f.pending(2)[..LEN_PREFIX].to_vec();
    assert_eq!(u32::from_le_bytes(ack.try_into().unwrap()), 28);
    assert!(matches!(
        drain(&mut f, 2)[0],
        (
            0,
            Outbound::HelloAck {
                version: 1,
                installation: 0,
                epoch: 0,
                ..
            }
        )
    ));
}

#[test]
fn a_second_hello_is_an_error_and_closes() {
    let mut f = front(1 << 20);
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    drain(&mut f, 1);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    assert!(matches!(
        drain(&mut f, 1).as_slice(),
        [(
            0,
            Outbound::Error {
                reason: Reason::MalformedFrame,
                ..
            }
        )]
    ));
    assert!(f.should_close(1));
}

#[test]
fn closing_an_old_connection_does_not_unhook_the_strategy_from_its_new_one() {
    let mut f = front(1 << 20);
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    // Connection 1 fails and is marked closing; the strategy reconnects on 2
    // before the driver has closed 1.
    f.on_bytes(1, &[0xff, 0xff, 0xff, 0xff], &mut accept_all);
    assert!(f.is_closing(1));
    f.on_connect(2, 10);
    f.on_bytes(2, &hello("alpha"), &mut accept_all);
    assert!(matches!(drain(&mut f, 2)[0].1, Outbound::HelloAck { .. }));
    f.on_closed(1);
    // Updates still reach connection 2.
    let update = OrderUpdate::Canceled {
        order_id: 1,
        cum_qty: 0,
    };
    f.on_notice(Notice::Order {
        strategy: 1,
        update,
    });
    assert!(matches!(
        drain(&mut f, 2).as_slice(),
        [(1, Outbound::Canceled { order_id: 1, .. })]
    ));
}

#[test]
fn a_slow_consumer_is_told_and_closed_and_loses_nothing_sequenced() {
    let mut f = front(TIGHT);
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    // The strategy reads nothing: updates pile up until the limit.
    let n = until_slow(&mut f, 0);
    f.on_closed(1);
    // Reconnect and replay: every sequenced message is still there.
    f.on_connect(2, 0);
    f.on_bytes(2, &hello("alpha"), &mut accept_all);
    drain(&mut f, 2);
    f.on_bytes(2, &frame(&Inbound::ResendFrom { seq: 1 }), &mut accept_all);
    let replay = drain(&mut f, 2);
    assert_eq!(replay.len() as u64, n);
    assert!(replay
        .iter()
        .enumerate()
        .all(|(i, (s, _))| *s == i as u64 + 1));
}

#[test]
fn requests_go_to_the_desk_and_a_full_desk_is_answered_in_sequence() {
    let mut f = front(1 << 20);
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("beta"), &mut accept_all);
    drain(&mut f, 1);
    let mut got = Vec::new();
    f.on_bytes(1, &frame(&Inbound::NewOrder(order(4))), &mut |i| {
        got.push(i);
        true
    });
    assert_eq!(
        got,
        vec![DeskInput {
            strategy: 2,
            request: Request::NewOrder(order(4))
        }]
    );
    f.on_bytes(1, &frame(&Inbound::NewOrder(order(5))), &mut |_| false);
    assert!(matches!(
        drain(&mut f, 1).as_slice(),
        [(
            1,
            Outbound::Rejected {
                order_id: 5,
                reason: Reason::QueueFull,
                ..
            }
        )]
    ));
}

#[test]
fn venue_states_are_broadcast_and_greet_new_strategies() {
    let mut f = front(1 << 20);
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    drain(&mut f, 1);
    let status = VenueStatus {
        venue: VenueId::BinanceSpot,
        state: VenueState::Up,
        text: "ready".into(),
    };
    f.on_notice(Notice::Venue(status));
    assert!(matches!(
        drain(&mut f, 1).as_slice(),
        [(
            0,
            Outbound::VenueStatus {
                state: VenueState::Up,
                ..
            }
        )]
    ));
    f.on_connect(2, 0);
    f.on_bytes(2, &hello("beta"), &mut accept_all);
    let greet = drain(&mut f, 2);
    assert!(matches!(greet[0].1, Outbound::HelloAck { .. }));
    assert!(matches!(greet[1].1, Outbound::InstrumentInfo(_)));
    assert!(matches!(
        greet[2].1,
        Outbound::VenueStatus {
            state: VenueState::Up,
            ..
        }
    ));
}

type Recorded = Arc<Mutex<Vec<(StrategyId, u64, Vec<u8>)>>>;

/// Keeps what the front end records, as a journal would.
struct Journal(Recorded);

impl SeqRecorder for Journal {
    fn record(&mut self, strategy: StrategyId, seq: u64, frame: &[u8]) {
        self.0.lock().unwrap().push((strategy, seq, frame.to_vec()));
    }
}

fn canceled(order_id: u64) -> Notice {
    Notice::Order {
        strategy: 1,
        update: OrderUpdate::Canceled {
            order_id,
            cum_qty: 0,
        },
    }
}

#[test]
fn every_sequenced_frame_is_recorded_with_the_bytes_sent() {
    let mut f = front(1 << 20);
    let recorded = Recorded::default();
    f.set_recorder(Box::new(Journal(recorded.clone())));
    // Disconnected: recorded all the same.
    f.on_notice(canceled(1));
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    f.consumed(1, f.pending(1).len());
    f.on_notice(canceled(2));
    // The front end's own answer to a full desk is sequenced too.
    f.on_bytes(1, &frame(&Inbound::NewOrder(order(3))), &mut |_| false);
    f.on_bytes(1, &frame(&Inbound::Heartbeat), &mut accept_all);
    let sent = f.pending(1).to_vec();
    let rec = recorded.lock().unwrap().clone();
    assert_eq!(
        rec.iter().map(|(s, q, _)| (*s, *q)).collect::<Vec<_>>(),
        vec![(1, 1), (1, 2), (1, 3)]
    );
    // What went out live is the recorded bytes, then the (unrecorded)
    // Heartbeat.
    let live: Vec<u8> = rec[1..].iter().flat_map(|(_, _, b)| b.clone()).collect();
    assert_eq!(&sent[..live.len()], &live[..]);
    assert!(matches!(
        decode_outbound(&sent[live.len() + LEN_PREFIX..]),
        Ok((0, Outbound::Heartbeat))
    ));
}

#[test]
fn a_restored_sequence_replays_the_journal_bytes_and_continues() {
    // A previous run: 5 messages recorded.
    let mut old = front(1 << 20);
    let recorded = Recorded::default();
    old.set_recorder(Box::new(Journal(recorded.clone())));
    for id in 1..=5 {
        old.on_notice(canceled(id));
    }
    let journal: Vec<(u64, Vec<u8>)> = recorded
        .lock()
        .unwrap()
        .iter()
        .map(|(_, seq, b)| (*seq, b.clone()))
        .collect();

    let mut f = front(1 << 20);
    f.restore_sequence(1, 6, journal.clone());
    f.restore_sequence(9, 3, Vec::new()); // not configured: ignored
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    assert!(matches!(
        drain(&mut f, 1)[0],
        (0, Outbound::HelloAck { next_seq: 6, .. })
    ));
    f.on_bytes(1, &frame(&Inbound::ResendFrom { seq: 2 }), &mut accept_all);
    let replayed = f.pending(1).to_vec();
    let expected: Vec<u8> = journal[1..].iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(replayed, expected);
    f.consumed(1, replayed.len());
    f.on_notice(canceled(6));
    assert_eq!(
        drain(&mut f, 1),
        vec![(
            6,
            Outbound::Canceled {
                order_id: 6,
                cum_qty: 0
            }
        )]
    );
    // The other strategy starts afresh.
    f.on_connect(2, 0);
    f.on_bytes(2, &hello("beta"), &mut accept_all);
    assert!(matches!(
        drain(&mut f, 2)[0],
        (0, Outbound::HelloAck { next_seq: 1, .. })
    ));
}

/// The smallest outbound limit the front end accepts: one largest frame.
const TIGHT: usize = 4096 + 4;

/// A sequenced message of about 230 bytes for strategy 1.
fn bulky(order_id: u64) -> Notice {
    Notice::Order {
        strategy: 1,
        update: OrderUpdate::Rejected {
            order_id,
            reason: Reason::VenueRejected,
            text: "x".repeat(200),
        },
    }
}

/// Strategy 1 missed `n` bulky messages (about 230 × n bytes) and is
/// back on connection 1, greeted, asking for them.
fn replaying(max_outbound_bytes: usize, n: u64) -> FrontEnd {
    let mut f = front(max_outbound_bytes);
    for id in 1..=n {
        f.on_notice(bulky(id));
    }
    f.on_connect(1, 0);
    f.on_bytes(1, &hello("alpha"), &mut accept_all);
    drain(&mut f, 1);
    f.on_bytes(1, &frame(&Inbound::ResendFrom { seq: 1 }), &mut accept_all);
    f
}

fn seqs(msgs: &[(u64, Outbound)]) -> Vec<u64> {
    msgs.iter().map(|(s, _)| *s).filter(|s| *s > 0).collect()
}

#[test]
fn a_replay_far_larger_than_the_outbound_limit_is_paced_by_the_reader() {
    // 60 × 230 bytes: more than three times the limit.
    let mut f = replaying(TIGHT, 60);
    let mut bytes = Vec::new();
    let mut reads = 0;
    while !f.pending(1).is_empty() {
        assert!(f.pending(1).len() <= TIGHT);
        bytes.extend(read(&mut f, 1, 700));
        reads += 1;
        if reads == 3 {
            // Live traffic mid-replay waits for the replay to reach it;
            // unsequenced messages do not wait.
            f.on_notice(canceled(61));
            f.on_bytes(1, &frame(&Inbound::Heartbeat), &mut accept_all);
        }
    }
    let msgs = decode(&bytes);
    assert!(!f.is_closing(1));
    assert_eq!(f.counters().slow_consumers, 0);
    assert_eq!(seqs(&msgs), (1..=61).collect::<Vec<_>>());
    assert!(matches!(
        msgs.last(),
        Some((61, Outbound::Canceled { order_id: 61, .. }))
    ));
    let heartbeat = msgs.iter().position(|m| m.1 == Outbound::Heartbeat);
    assert!(heartbeat.is_some_and(|i| i < 60), "{heartbeat:?}");
    // Caught up: live delivery again.
    f.on_notice(canceled(62));
    assert_eq!(seqs(&drain(&mut f, 1)), vec![62]);
}

#[test]
fn a_second_resend_restarts_the_replay() {
    let mut f = replaying(TIGHT, 40);
    let mut bytes = read(&mut f, 1, 2_000);
    f.on_bytes(1, &frame(&Inbound::ResendFrom { seq: 5 }), &mut accept_all);
    while !f.pending(1).is_empty() {
        bytes.extend(read(&mut f, 1, 700));
    }
    // What was already queued goes out, then the replay from 5 on.
    let got = seqs(&decode(&bytes));
    let restart = got.windows(2).position(|w| w[1] != w[0] + 1).unwrap() + 1;
    assert!(restart > 1 && got[restart] == 5, "{got:?}");
    assert_eq!(got[..restart], (1..=restart as u64).collect::<Vec<_>>());
    assert_eq!(got[restart..], (5..=40).collect::<Vec<_>>());
    // A refused ResendFrom leaves a replay under way alone.
    let mut f = replaying(TIGHT, 60);
    for id in 61..=66 {
        f.on_notice(bulky(id)); // the window (64) no longer has 1 and 2
    }
    f.on_bytes(1, &frame(&Inbound::ResendFrom { seq: 1 }), &mut accept_all);
    let msgs = drain(&mut f, 1);
    assert!(msgs.iter().any(|m| matches!(
        m.1,
        Outbound::Error {
            reason: Reason::ResendUnavailable,
            ..
        }
    )));
    assert_eq!(seqs(&msgs), (1..=66).collect::<Vec<_>>());
}

#[test]
fn a_replay_the_window_overtakes_stops_and_live_delivery_resumes() {
    let mut f = replaying(TIGHT, 60);
    // The replay's next frame: the one after those queued so far.
    let next = decode(f.pending(1)).last().unwrap().0 + 1;
    // The strategy reads nothing while the window (64) moves past it.
    for id in 61..=(next + 66) {
        f.on_notice(bulky(id));
    }
    let msgs = drain(&mut f, 1);
    let stop = msgs.iter().position(|m| m.0 == 0).unwrap();
    assert!(
        matches!(
            &msgs[stop].1,
            Outbound::Error { reason: Reason::ResendUnavailable, text }
                if text.contains(&format!("seq {next} is no longer kept"))
        ),
        "{:?}",
        msgs[stop]
    );
    // What was queued, then live delivery from the first message after
    // the replay stopped.
    assert_eq!(seqs(&msgs[..stop]), (1..next).collect::<Vec<_>>());
    assert_eq!(seqs(&msgs[stop..]), vec![next + 65, next + 66]);
    assert!(!f.is_closing(1));
}

#[test]
fn a_replaying_strategy_that_stops_reading_is_a_slow_consumer() {
    let mut f = replaying(TIGHT, 60);
    until_slow(&mut f, 60);
    assert_eq!(f.counters().slow_consumers, 1);
}

/// Sends strategy 1 bulky messages after `last` (connection 1 reading
/// none) until it is dropped, checks it was told SlowConsumer, and
/// returns the last order id sent.
fn until_slow(f: &mut FrontEnd, mut last: u64) -> u64 {
    while !f.is_closing(1) {
        last += 1;
        f.on_notice(bulky(last));
        assert!(last < 1_000, "never judged slow");
    }
    assert!(matches!(
        drain(f, 1).last(),
        Some((
            0,
            Outbound::Error {
                reason: Reason::SlowConsumer,
                ..
            }
        ))
    ));
    last
}
