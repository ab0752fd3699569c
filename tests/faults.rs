//! Each of the simulator's faults alone, over real sockets: the real
//! sidecar against the built-in simulator misbehaving on purpose. Every
//! order ends in the venue's true state (state, executed quantity and
//! quote quantity against the simulator's own ledger), no order is placed
//! twice, and the strategy got the messages in protocol order.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Harness, Opts, Track, ALPHA};
use ordergate::protocol::{OrderState, Outbound, Side, VenueState};
use ordergate::sim::binance::{FaultKind, FaultSpec, FillModel};

/// How long one kind's run may take at most (timed faults need a while to
/// fire; an order the venue never got takes 15 s to be given up).
const RUN_FOR: Duration = Duration::from_secs(90);

fn final_message(m: &Outbound) -> bool {
    match m {
        Outbound::Fill(f) => f.leaves_qty == 0,
        Outbound::Canceled { .. } | Outbound::Expired { .. } | Outbound::Rejected { .. } => true,
        Outbound::OrderStatus(s) => s.state.is_terminal(),
        _ => false,
    }
}

fn order_of(m: &Outbound) -> Option<u64> {
    match m {
        Outbound::Accepted { order_id, .. }
        | Outbound::Rejected { order_id, .. }
        | Outbound::Canceled { order_id, .. }
        | Outbound::Expired { order_id, .. }
        | Outbound::CancelRejected { order_id, .. } => Some(*order_id),
        Outbound::Fill(f) => Some(f.order_id),
        Outbound::OrderStatus(s) => Some(s.order_id),
        _ => None,
    }
}

fn run(kind: FaultKind, orders: u64) {
    let h = Harness::with(Opts {
        fill: FillModel::default(),
        faults: FaultSpec::none().with(kind, None),
        fault_seed: 7,
        ..Opts::default()
    });
    let mut s = h.trader(ALPHA.1);
    // Messages per order, in arrival order, and whether a final one came
    // before another message (a protocol-order violation).
    let mut finals: HashMap<u64, usize> = HashMap::new();
    let mut after_final: Vec<String> = Vec::new();
    let mut note = |m: &Outbound, finals: &mut HashMap<u64, usize>| {
        if let Some(id) = order_of(m) {
            if finals.contains_key(&id) && !matches!(m, Outbound::CancelRejected { .. }) {
                after_final.push(format!("{m:?}"));
            }
            if final_message(m) {
                *finals.entry(id).or_default() += 1;
            }
        }
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut target = orders;
    let mut next_send = Instant::now();
    let mut cancels_sent: HashMap<u64, Instant> = HashMap::new();
    loop {
        let up = s.venue_states.last().map(|v| v.0) == Some(VenueState::Up);
        let fired = h.sim.fault_counts().get(kind) > 0;
        if up && sent < target && Instant::now() >= next_send {
            sent += 1;
            let o = match sent % 4 {
                0 => s.market(sent, Side::Buy, "0.001"),
                1 => s.market(sent, Side::Sell, "0.001"),
                2 => s.limit(sent, Side::Buy, "59990.00", "0.002"),
                _ => s.limit(sent, Side::Sell, "70000.00", "0.001"),
            };
            s.send(o);
            next_send = Instant::now() + Duration::from_millis(if fired { 20 } else { 150 });
        }
        // Keep trading until the fault fired, then let the resting ones go.
        if sent >= target && !fired && start.elapsed() < RUN_FOR / 2 {
            target += 4;
        }
        if let Some(m) = s.poll(Duration::from_millis(20)) {
            note(&m, &mut finals);
        }
        // Cancel what rests once everything was sent; again if refused.
        if sent >= target && up {
            let open: Vec<u64> = (1..=sent)
                .filter(|id| s.tracks.get(id).is_some_and(|t| !t.is_terminal()))
                .collect();
            for id in open {
                let again = cancels_sent
                    .get(&id)
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(3));
                if again {
                    s.cancel(id);
                    cancels_sent.insert(id, Instant::now());
                }
            }
        }
        let all_final = sent >= target
            && (1..=sent).all(|id| s.tracks.get(&id).is_some_and(Track::is_terminal));
        if all_final && fired {
            break;
        }
        assert!(
            start.elapsed() < RUN_FOR,
            "{kind}: not done within {RUN_FOR:?}: sent {sent}, fired {fired}, open {:?}",
            (1..=sent)
                .filter(|id| !s.tracks.get(id).is_some_and(Track::is_terminal))
                .map(|id| (id, s.tracks.get(&id).map(Track::state)))
                .collect::<Vec<_>>()
        );
    }
    // Late messages, if any, come now.
    while let Some(m) = s.poll(Duration::from_millis(300)) {
        note(&m, &mut finals);
    }
    assert!(
        after_final.is_empty(),
        "{kind}: messages after a final one: {after_final:?}"
    );
    let ledger = h.sim.ledger();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for e in &ledger {
        *ids.entry(&e.order.client_order_id).or_default() += 1;
    }
    let dups: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "{kind}: placed twice: {dups:?}");
    for id in 1..=sent {
        let t = s.track(id).clone();
        assert_eq!(
            finals.get(&id).copied().unwrap_or(0),
            1,
            "{kind}: order {id} final messages: {t:?}"
        );
        match h.ledger_entry(ALPHA.0, id) {
            Some(_) => h.assert_matches_ledger(ALPHA.0, &t),
            None => assert_eq!(
                t.state(),
                OrderState::Rejected,
                "{kind}: order {id} not at the venue: {t:?}"
            ),
        }
    }
    assert!(h.sim.fault_counts().get(kind) > 0, "{kind} never fired");
}

macro_rules! each_fault {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(FaultKind::$kind, 24);
            }
        )*

        /// Every kind the simulator has gets its test above.
        #[test]
        fn every_kind_has_a_test() {
            assert_eq!([$(FaultKind::$kind),*], FaultKind::ALL);
        }
    };
}

each_fault! {
    disconnect => Disconnect,
    disconnect_after_accept => DisconnectAfterAccept,
    delayed_responses => Delay,
    dropped_responses => Drop,
    unknown_but_accepted => UnknownAccepted,
    unknown_and_not_placed => UnknownRejected,
    server_busy => Busy,
    duplicate_events => Duplicate,
    fill_before_ack => FillBeforeAck,
    user_data_stream_lost => StreamLoss,
    connection_max_age => MaxAge,
    clock_steps_and_drift => Clock,
    server_shutdown => Shutdown,
}
