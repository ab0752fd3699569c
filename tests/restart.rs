//! Restarts over real sockets: the sidecar stopped and started again on the
//! same state directory replays its journal, adopts its open orders and
//! reconciles them with the venue, and strategies carry on with ResendFrom
//! (no gap, no repeat); two installations on one account stay apart.

mod common;

use common::{Harness, Opts, ALPHA, SYMBOL};
use ordergate::ids::{ClientId, Namespace, OrderKey};
use ordergate::model::{OrderState, Side};
use ordergate::protocol::Outbound;
use ordergate::sim::binance::LedgerEntry;

fn entry_in(h: &Harness, ns: Namespace, strategy: u32, order_id: u64) -> Vec<LedgerEntry> {
    let id = ClientId::order(ns, OrderKey { strategy, order_id }).encode();
    h.sim
        .ledger()
        .into_iter()
        .filter(|e| e.order.client_order_id == id)
        .collect()
}

/// Every ledger entry placed for this strategy order, in any run.
fn placements(h: &Harness, strategy: u32, order_id: u64) -> usize {
    h.sim
        .ledger()
        .iter()
        .filter_map(|e| ClientId::decode(&e.order.client_order_id))
        .filter(|c| c.ns.installation == h.ns.installation)
        .filter(|c| c.key == OrderKey { strategy, order_id })
        .count()
}

#[test]
fn fills_while_the_sidecar_was_down_are_reported_after_restart() {
    let mut h = Harness::start();
    let first = h.ns;
    let mut s = h.trader(ALPHA.1);
    let qty = s.qty("0.03");
    s.send(s.limit(1, Side::Buy, "59900.00", "0.03"));
    assert_eq!(s.first_answer(1).state(), OrderState::New);
    s.sync();

    h.stop();
    // The market moves through the resting order while nobody watches.
    let events = h.sim.set_reference_price(SYMBOL, "59850.00").unwrap();
    assert!(!events.is_empty(), "the move crosses the resting order");
    h.start_again();
    assert_eq!(h.ns.installation, first.installation);
    assert_eq!(h.ns.epoch, first.epoch + 1);

    s.reconnect(&h.socket, ALPHA.1);
    assert_eq!(s.client.epoch(), h.ns.epoch, "HelloAck tells the new run");
    assert_eq!(s.client.installation(), h.ns.installation);
    let t = s.follow(1);
    assert_eq!(t.state(), OrderState::Filled, "{t:?}");
    t.assert_fills_consistent(qty);
    let e = entry_in(&h, first, ALPHA.0, 1);
    assert_eq!(e.len(), 1, "placed once, under its first run's id");
    h.assert_matches_ledger(ALPHA.0, &t);
}

#[test]
fn an_order_id_is_an_idempotency_key_across_restarts() {
    let mut h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    s.send(s.limit(2, Side::Buy, "59000.00", "0.01"));
    assert_eq!(s.first_answer(2).state(), OrderState::New);
    s.sync();

    h.restart();
    s.reconnect(&h.socket, ALPHA.1);
    s.wait_venue(ordergate::model::VenueState::Up);
    // The strategy is unsure and sends it again: answered, never placed.
    s.send(s.limit(2, Side::Buy, "59000.00", "0.01"));
    let status = loop {
        if let Outbound::OrderStatus(st) = s.next() {
            break st;
        }
    };
    assert_eq!(status.order_id, 2);
    assert_eq!(status.state, OrderState::New);
    assert_eq!(placements(&h, ALPHA.0, 2), 1);

    // The adopted order is cancelled under the id it was placed with.
    s.cancel(2);
    let t = s.follow(2);
    assert_eq!(t.state(), OrderState::Canceled, "{t:?}");
    assert_eq!(placements(&h, ALPHA.0, 2), 1);
}

#[test]
fn two_installations_on_one_account_never_take_each_others_fills() {
    let a = Harness::start();
    let b = a.beside(&Opts::default());
    assert_ne!(a.ns.installation, b.ns.installation);
    let mut sa = a.trader(ALPHA.1);
    let mut sb = b.trader(ALPHA.1);
    // The same strategy id and order ids in both: only the installation
    // tells the venue's orders apart.
    for id in 1..=3u64 {
        sa.send(sa.limit(id, Side::Buy, "59900.00", "0.01"));
        sb.send(sb.limit(id, Side::Buy, "59800.00", "0.02"));
    }
    for id in 1..=3u64 {
        assert_eq!(sa.first_answer(id).state(), OrderState::New);
        assert_eq!(sb.first_answer(id).state(), OrderState::New);
    }
    // Only a's orders are crossed.
    a.sim.set_reference_price(SYMBOL, "59850.00").unwrap();
    for id in 1..=3u64 {
        let t = sa.follow(id);
        assert_eq!(t.state(), OrderState::Filled, "{t:?}");
        assert_eq!(t.cum_qty(), sa.qty("0.01"));
        assert_eq!(entry_in(&a, a.ns, ALPHA.0, id).len(), 1);
        assert_eq!(entry_in(&b, b.ns, ALPHA.0, id).len(), 1);
    }
    sb.sync();
    for id in 1..=3u64 {
        let t = sb.track(id);
        assert!(t.fills.is_empty(), "b got a's fill: {t:?}");
        assert_eq!(t.state(), OrderState::New);
    }
}
