//! The whole sidecar end to end: a real strategy client on the real Unix
//! socket, the gateway, rings and venue session, the real WebSocket to an
//! in-process simulator, and the venue's own ledger as the judge. Each
//! test has its own simulator, sidecar and temp dir; every wait is bounded.

mod common;

use common::{Harness, Opts, ALPHA, REFERENCE, SYMBOL};
use ordergate::protocol::{OrderState, Side, TimeInForce};
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
