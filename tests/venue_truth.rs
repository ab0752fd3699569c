//! Venue truth under faults, in virtual time (`tests/vt`): every order
//! ends in the venue's true state, with the venue's cumulative quantity
//! and notional, and the strategy is told in protocol order (no fill after
//! a final message; Unknown until the venue says).

mod vt;

use ordergate_core::model::{OrderState, OrderUpdate, Reason, Side, VenueState};
use vt::{limit, World, ALPHA, MS, SEC};

/// The protocol's order for one order's messages: nothing after a final
/// one, and a final one at the end once the order is final.
fn assert_protocol_order(w: &World, id: u64) {
    let told = w.told(ALPHA, id);
    let is_final = |u: &OrderUpdate| match u {
        OrderUpdate::Fill(f) => f.leaves_qty == 0,
        OrderUpdate::Canceled { .. }
        | OrderUpdate::Expired { .. }
        | OrderUpdate::Rejected { .. } => true,
        OrderUpdate::Status(s) => s.state.is_terminal(),
        _ => false,
    };
    if let Some(end) = told.iter().position(is_final) {
        assert_eq!(
            end,
            told.len() - 1,
            "messages after the final one: {told:?}"
        );
    }
    if w.state(ALPHA, id).is_terminal() {
        assert!(
            told.last().is_some_and(is_final),
            "no final message: {told:?}"
        );
    }
}

fn fills(w: &World, id: u64) -> usize {
    w.told(ALPHA, id)
        .iter()
        .filter(|u| matches!(u, OrderUpdate::Fill(_)))
        .count()
}

#[test]
fn fills_during_a_disconnect_are_recovered_after_it() {
    let mut w = World::new(1);
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
    w.advance(10 * MS);
    assert_eq!(w.state(ALPHA, 1), OrderState::New);
    w.drop_connection();
    // The market trades through the order while the sidecar is away: its
    // execution reports go to a connection that is gone.
    w.set_price("58990.00");
    w.run_until_state(VenueState::Up, 5 * SEC);
    w.advance(2 * SEC);
    assert_eq!(
        w.state(ALPHA, 1),
        OrderState::Filled,
        "{:?}",
        w.told(ALPHA, 1)
    );
    w.assert_matches_ledger(ALPHA, 1);
    assert_protocol_order(&w, 1);
    let trades = w.ledger_entry(ALPHA, 1).unwrap().trades.len();
    assert_eq!(fills(&w, 1), trades, "every trade once");
}

#[test]
fn a_lost_execution_report_is_backfilled_before_the_final_fill() {
    let mut w = World::new(3);
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.05"));
    w.advance(10 * MS);
    // Lose the first trade report; the ones after it carry the venue's
    // cumulative quantity, which gives the gap away.
    w.lose_to_adapter.push("\"x\":\"TRADE\"".into());
    w.set_price("58990.00");
    // A later report of the same order gives the gap away at once; a
    // lost last report is found by the periodic reconciliation.
    w.advance(65 * SEC);
    if w.lost.is_empty() {
        return; // nothing traded with this seed's fill model
    }
    let e = w.ledger_entry(ALPHA, 1).unwrap();
    assert_eq!(fills(&w, 1), e.trades.len(), "{:?}", w.told(ALPHA, 1));
    w.assert_matches_ledger(ALPHA, 1);
    assert_protocol_order(&w, 1);
}

#[test]
fn an_order_whose_answer_is_lost_is_unknown_until_the_venue_says() {
    let mut w = World::new(1);
    // The venue accepts the order; its answer never arrives (and the
    // connection stays up).
    w.lose_to_adapter.push("\"orderId\"".into());
    w.lose_to_adapter.push("executionReport".into());
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
    w.advance(6 * SEC);
    assert!(w.ledger_entry(ALPHA, 1).is_some());
    let told = w.told(ALPHA, 1);
    assert!(
        matches!(told.first(), Some(OrderUpdate::Status(s)) if s.state == OrderState::Unknown),
        "{told:?}"
    );
    // Asked by client id: it is live.
    w.advance(2 * SEC);
    assert_eq!(w.state(ALPHA, 1), OrderState::New, "{:?}", w.told(ALPHA, 1));
    assert!(matches!(
        w.told(ALPHA, 1).last(),
        Some(OrderUpdate::Accepted { .. })
    ));
    // Placed once, never again.
    let places = w
        .exchange
        .request_log()
        .iter()
        .filter(|r| r.method == "order.place")
        .count();
    assert_eq!(places, 1);
}

#[test]
fn an_order_that_never_reached_the_venue_is_rejected_only_past_the_bound() {
    let mut w = World::new(1);
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
    // The connection drops before the request arrives.
    w.drop_connection();
    w.run_until_state(VenueState::Up, 5 * SEC);
    let told = w.told(ALPHA, 1);
    assert!(
        matches!(told.first(), Some(OrderUpdate::Status(s)) if s.state == OrderState::Unknown),
        "{told:?}"
    );
    // "Does not exist" is not final while the request could still reach
    // the matching engine (10 s + recvWindow 5 s).
    w.advance(10 * SEC);
    assert_eq!(w.state(ALPHA, 1), OrderState::Unknown);
    w.advance(8 * SEC);
    assert!(
        matches!(
            w.told(ALPHA, 1).last(),
            Some(OrderUpdate::Rejected { reason: Reason::VenueRejected, text, .. }) if text.contains("-2013")
        ),
        "{:?}",
        w.told(ALPHA, 1)
    );
    assert!(w.ledger_entry(ALPHA, 1).is_none());
}

#[test]
fn a_place_in_flight_when_the_connection_drops_ends_in_the_venues_state() {
    for (latency_ticks, price) in [(1u64, "59000.00"), (1, "61000.00")] {
        let mut w = World::new(2);
        w.place(ALPHA, limit(1, Side::Buy, price, "0.01"));
        // The request reaches the venue; the connection drops before the
        // answer comes back.
        w.advance(latency_ticks * w.latency_ns + 1);
        w.drop_connection();
        w.run_until_state(VenueState::Up, 5 * SEC);
        w.advance(3 * SEC);
        let st = w.state(ALPHA, 1);
        assert!(
            matches!(
                st,
                OrderState::New | OrderState::Filled | OrderState::PartiallyFilled
            ),
            "{st:?}: {:?}",
            w.told(ALPHA, 1)
        );
        w.assert_matches_ledger(ALPHA, 1);
        assert_protocol_order(&w, 1);
    }
}

#[test]
fn a_cancel_whose_answer_is_lost_is_sent_again_until_answered() {
    let mut w = World::new(1);
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
    w.advance(10 * MS);
    w.cancel(ALPHA, 1);
    // The cancel reaches the venue; the connection drops before anything
    // comes back.
    w.advance(w.latency_ns + 1);
    w.drop_connection();
    w.run_until_state(VenueState::Up, 5 * SEC);
    w.advance(2 * SEC);
    assert_eq!(
        w.state(ALPHA, 1),
        OrderState::Canceled,
        "{:?}",
        w.told(ALPHA, 1)
    );
    w.assert_matches_ledger(ALPHA, 1);
    assert_protocol_order(&w, 1);
}

#[test]
fn a_silent_connection_is_judged_dead_and_replaced() {
    let mut w = World::new(1);
    // Everything the venue sends is lost from now on, for a while.
    for _ in 0..50 {
        w.lose_to_adapter.push(String::new());
    }
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
    w.advance(6 * SEC);
    assert!(
        w.statuses
            .iter()
            .any(|s| s.state == VenueState::Down && s.text.contains("no answer")),
        "{:?}",
        w.statuses
    );
    w.lose_to_adapter.clear();
    w.run_until_state(VenueState::Up, 5 * SEC);
    w.advance(3 * SEC);
    assert_eq!(w.state(ALPHA, 1), OrderState::New, "{:?}", w.told(ALPHA, 1));
    w.assert_matches_ledger(ALPHA, 1);
}

#[test]
fn fills_of_many_orders_during_a_gap_are_fetched_per_symbol() {
    let mut w = World::new(1);
    for (id, px) in [(1, "59000.00"), (2, "59000.00"), (3, "58995.00")] {
        w.place(ALPHA, limit(id, Side::Buy, px, "0.01"));
    }
    w.advance(10 * MS);
    w.drop_connection();
    w.set_price("58980.00");
    w.run_until_state(VenueState::Up, 5 * SEC);
    w.advance(3 * SEC);
    for id in 1..=3 {
        assert_eq!(
            w.state(ALPHA, id),
            OrderState::Filled,
            "{id}: {:?}",
            w.told(ALPHA, id)
        );
        w.assert_matches_ledger(ALPHA, id);
        assert_protocol_order(&w, id);
    }
    let trade_queries = w
        .exchange
        .request_log()
        .iter()
        .filter(|r| r.method == "myTrades")
        .count();
    assert_eq!(
        trade_queries, 1,
        "one query for the symbol, not one per order"
    );
}

#[test]
fn many_orders_that_ended_in_a_gap_are_settled_from_the_symbols_history() {
    let mut w = World::new(1);
    for id in 1..=8 {
        w.place(ALPHA, limit(id, Side::Buy, "59000.00", "0.01"));
    }
    w.advance(10 * MS);
    w.drop_connection();
    w.set_price("58980.00");
    w.run_until_state(VenueState::Up, 5 * SEC);
    w.advance(3 * SEC);
    // The market's liquidity fills some fully, some in part.
    for id in 1..=8 {
        w.assert_matches_ledger(ALPHA, id);
        assert_protocol_order(&w, id);
    }
    let filled = (1..=8)
        .filter(|id| w.state(ALPHA, *id) == OrderState::Filled)
        .count();
    assert!(filled >= 5, "{filled}");
    let count = |m: &str| {
        w.exchange
            .request_log()
            .iter()
            .filter(|r| r.method == m)
            .count()
    };
    // One history page and one trade page instead of a query per order.
    assert_eq!(
        (count("allOrders"), count("order.status"), count("myTrades")),
        (1, 0, 1)
    );
}

#[test]
fn a_cancel_sent_while_the_venue_is_down_goes_out_once_it_is_ready() {
    let mut w = World::new(1);
    w.place(ALPHA, limit(1, Side::Buy, "59000.00", "0.01"));
    w.advance(10 * MS);
    w.drop_connection();
    w.cancel(ALPHA, 1);
    assert_eq!(w.state(ALPHA, 1), OrderState::PendingCancel);
    w.run_until_state(VenueState::Up, 5 * SEC);
    w.advance(SEC);
    assert_eq!(
        w.state(ALPHA, 1),
        OrderState::Canceled,
        "{:?}",
        w.told(ALPHA, 1)
    );
    w.assert_matches_ledger(ALPHA, 1);
    assert!(
        !w.told(ALPHA, 1)
            .iter()
            .any(|u| matches!(u, OrderUpdate::CancelRejected { .. })),
        "{:?}",
        w.told(ALPHA, 1)
    );
}
