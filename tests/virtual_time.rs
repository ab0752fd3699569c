//! Fault and race scenarios in virtual time (`tests/vt`): the desk, the
//! lifecycle, the Binance Spot venue core and the simulator's exchange on
//! one thread, no sockets. Instant and repeatable; the real-socket
//! end-to-end tests (`tests/e2e.rs`) keep a smaller set on top.

mod vt;

use ordergate_core::model::{OrderState, OrderUpdate, Reason, Side, VenueState};
use ordergate_sim::binance::SimConfig;
use vt::{limit, World, ALPHA, BETA, MS, SEC};

fn accepted(w: &World, strategy: u32, id: u64) -> bool {
    w.told(strategy, id)
        .iter()
        .any(|u| matches!(u, OrderUpdate::Accepted { .. }))
}

#[test]
fn start_up_goes_connecting_then_up_once_subscribed() {
    let w = World::new(1);
    let states: Vec<VenueState> = w.statuses.iter().map(|s| s.state).collect();
    assert_eq!(states.first(), Some(&VenueState::Connecting), "{states:?}");
    assert_eq!(states.last(), Some(&VenueState::Up), "{states:?}");
    assert!(!states.contains(&VenueState::Down), "{states:?}");
    assert!(w.unreadable.is_empty(), "{:?}", w.unreadable);
}

#[test]
fn a_dropped_connection_goes_down_refuses_orders_and_comes_back_with_its_orders() {
    let mut w = World::new(1);
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
    w.advance(10 * MS);
    assert_eq!(w.state(ALPHA, 1), OrderState::New);

    w.drop_connection();
    assert_eq!(w.venue_state(), Some(VenueState::Down));
    // While Down, a new order is refused at once and never sent.
    w.place(ALPHA, limit(2, Side::Buy, "59000.00", "0.01"));
    assert!(matches!(
        w.told(ALPHA, 2).as_slice(),
        [OrderUpdate::Rejected {
            reason: Reason::VenueDown,
            ..
        }]
    ));
    assert!(w.ledger_entry(ALPHA, 2).is_none());

    // The session reconnects after its back-off; the adapter re-syncs the
    // clock, subscribes and reconciles: the resting order is still ours.
    w.run_until_state(VenueState::Up, 2 * SEC);
    assert_eq!(w.state(ALPHA, 1), OrderState::New);
    let downs = w
        .statuses
        .iter()
        .filter(|s| s.state == VenueState::Down)
        .count();
    assert_eq!(downs, 1, "one Down for one disconnect: {:?}", w.statuses);

    // Fills now arrive on the new connection.
    w.set_price("58990.00");
    w.advance(50 * MS);
    assert!(w.order(ALPHA, 1).cum_qty > 0, "{:?}", w.told(ALPHA, 1));
    w.assert_matches_ledger(ALPHA, 1);
}

#[test]
fn server_shutdown_switches_connections_without_going_down() {
    let mut w = World::new(2);
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
    w.advance(10 * MS);
    w.server_shutdown();
    w.advance(5 * MS);
    // During the switch the venue stays Up and takes orders.
    w.place(BETA, limit(7, Side::Buy, "59100.00", "0.02"));
    w.advance(10 * MS);
    assert!(accepted(&w, BETA, 7), "{:?}", w.told(BETA, 7));
    // The old connection closes after the grace period: still Up.
    w.advance(3 * SEC);
    assert!(
        w.statuses
            .iter()
            .all(|s| s.state == VenueState::Up || s.state == VenueState::Connecting),
        "{:?}",
        w.statuses
    );
    assert_eq!(w.venue_state(), Some(VenueState::Up));
    // Both orders trade on the new connection, as the venue's ledger says.
    w.set_price("58900.00");
    w.advance(50 * MS);
    for (s, id) in [(ALPHA, 1), (BETA, 7)] {
        assert!(w.order(s, id).cum_qty > 0, "{:?}", w.told(s, id));
        w.assert_matches_ledger(s, id);
    }
}

#[test]
fn a_venue_clock_far_from_ours_is_synced_before_anything_is_signed() {
    for offset_ms in [30_000, -30_000] {
        let mut w = World::with(SimConfig {
            clock_offset_ms: offset_ms,
            ..SimConfig::default()
        });
        w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
        w.advance(10 * MS);
        assert_eq!(w.state(ALPHA, 1), OrderState::New, "offset {offset_ms}");
    }
}

/// The venue's clock jumps (or ours steps) after start-up, ahead of us
/// and behind us by more than the receive window: the next order is
/// refused -1021, the refusal makes the adapter resample the clock, and
/// that same order (same client id) goes through once it has: the
/// strategy never sees the refusal, and the venue holds the order once.
#[test]
fn a_clock_jump_is_resynced_and_the_refused_order_sent_again() {
    for jump_ms in [20_000, -20_000] {
        let mut w = World::new(1);
        w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
        w.advance(10 * MS);
        assert_eq!(w.state(ALPHA, 1), OrderState::New);
        w.exchange.set_clock_offset_ms(jump_ms);
        // Two orders in a row into the stale clock: both refused, both
        // sent again after the one resync.
        w.place(ALPHA, limit(2, Side::Buy, "59000.00", "0.01"));
        w.place(ALPHA, limit(3, Side::Buy, "59000.00", "0.01"));
        w.advance(20 * MS);
        for id in [2, 3] {
            assert!(
                matches!(w.told(ALPHA, id).as_slice(), [OrderUpdate::Accepted { .. }]),
                "jump {jump_ms}, order {id}: {:?}",
                w.told(ALPHA, id)
            );
            assert_eq!(w.state(ALPHA, id), OrderState::New);
            w.assert_matches_ledger(ALPHA, id);
        }
        let refused = w
            .exchange
            .request_log()
            .iter()
            .filter(|r| r.status == 400 && r.method == "order.place")
            .count();
        assert!(refused >= 1, "jump {jump_ms}: the jump was never refused");
    }
}

/// A cancel races a market move through the order: the move reaches the
/// venue just before or just after the cancel does. Whichever wins, the
/// sidecar ends where the venue's ledger ends, every fill counted once,
/// and the losing cancel is answered.
#[test]
fn a_cancel_racing_a_fill_ends_where_the_venue_does() {
    let mut outcomes = std::collections::BTreeSet::new();
    for (seed, latency_us) in [(1, 100), (2, 500), (3, 2_000), (4, 50), (5, 5_000)] {
        for move_first in [true, false] {
            let mut w = World::new(seed);
            w.latency_ns = latency_us * 1_000;
            w.place(ALPHA, limit(1, Side::Buy, "59990.00", "0.05"));
            w.advance(20 * MS);
            w.cancel(ALPHA, 1);
            // The cancel reaches the venue after one latency.
            let at = if move_first {
                w.latency_ns - 1_000
            } else {
                w.latency_ns + 1_000
            };
            w.set_price_in(at, "59980.00");
            w.advance(100 * MS);
            w.assert_matches_ledger(ALPHA, 1);
            let o = w.order(ALPHA, 1);
            let told = w.told(ALPHA, 1);
            let fills: i64 = told
                .iter()
                .filter_map(|u| match u {
                    OrderUpdate::Fill(f) => Some(f.last_qty),
                    _ => None,
                })
                .sum();
            assert_eq!(fills, o.cum_qty, "seed {seed}: {told:?}");
            let answered = told.iter().any(|u| {
                matches!(
                    u,
                    OrderUpdate::Canceled { .. } | OrderUpdate::CancelRejected { .. }
                )
            });
            assert!(answered, "the cancel is answered: {told:?}");
            outcomes.insert(format!("{:?}", o.state()));
        }
    }
    assert!(
        outcomes.contains("Filled") && outcomes.contains("Canceled"),
        "both sides of the race were seen: {outcomes:?}"
    );
}

#[test]
fn the_same_inputs_give_the_same_transcript() {
    let run = || {
        let mut w = World::new(9);
        w.place(ALPHA, limit(1, Side::Buy, "59990.00", "0.05"));
        w.place(BETA, limit(1, Side::Sell, "60010.00", "0.05"));
        w.advance(5 * MS);
        w.set_price("59950.00");
        w.drop_connection();
        w.advance(SEC);
        w.set_price("60050.00");
        w.advance(SEC);
        (w.updates.clone(), w.statuses.clone())
    };
    assert_eq!(run(), run());
}

/// A MARKET order sized in quote units: the venue spends what its lot
/// allows (a little under the amount) and calls the order FILLED; the
/// sidecar ends it Filled too, never PartiallyFilled forever.
#[test]
fn a_quote_sized_market_order_ends_where_the_venue_says() {
    use ordergate_core::model::{flags, NewOrder, OrdType, TimeInForce};
    let i = vt::btcusdt();
    let ten_usdt = 10 * 10i64.pow((i.price_scale + i.qty_scale) as u32);
    let mut short_and_filled = 0;
    for seed in 1..=8 {
        let mut w = World::new(seed);
        w.place(
            ALPHA,
            NewOrder {
                order_id: 1,
                instrument_id: i.id,
                side: Side::Buy,
                ord_type: OrdType::Market,
                tif: TimeInForce::Ioc,
                flags: flags::QUOTE_QTY,
                price: 0,
                qty: ten_usdt,
            },
        );
        w.advance(50 * MS);
        w.assert_matches_ledger(ALPHA, 1);
        let o = w.order(ALPHA, 1);
        assert!(
            o.state().is_terminal(),
            "seed {seed}: {:?}",
            w.told(ALPHA, 1)
        );
        if o.state() == OrderState::Filled && o.cum_notional < ten_usdt as i128 {
            short_and_filled += 1;
            assert_eq!(o.leaves_qty(), 0);
        }
    }
    assert!(
        short_and_filled > 0,
        "some seed rounds the order down to the lot"
    );
}

#[test]
fn answered_requests_leave_nothing_in_flight() {
    use ordergate_core::venue::VenueProtocol;
    let mut w = World::new(1);
    for id in 1..=5 {
        w.place(ALPHA, limit(id, Side::Buy, "59000.00", "0.01"));
    }
    w.advance(10 * MS);
    for id in 1..=5 {
        w.cancel(ALPHA, id);
    }
    w.advance(10 * MS);
    for id in 1..=5 {
        assert_eq!(w.state(ALPHA, id), OrderState::Canceled);
    }
    assert_eq!(w.venue.in_flight(), 0);
}
