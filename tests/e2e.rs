//! The whole sidecar end to end: a real strategy client on the real Unix
//! socket, the gateway, rings and venue session, the real WebSocket to an
//! in-process simulator, and the venue's own ledger as the judge. Each
//! test has its own simulator, sidecar and temp dir; every wait is bounded.

mod common;

use common::{Harness, Opts, ALPHA, REFERENCE, SYMBOL};
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

#[test]
fn cancel_racing_a_fill_ends_consistently() {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    for id in 1..=6u64 {
        s.send(s.limit(id, Side::Buy, "59000.00", "0.02"));
        assert!(s.first_answer(id).accepted.is_some(), "order {id} rests");
        if id % 2 == 1 {
            // The cancel first, the market right behind it.
            s.cancel(id);
            h.sim.set_reference_price(SYMBOL, "58990.00").unwrap();
        } else {
            h.sim.set_reference_price(SYMBOL, "58990.00").unwrap();
            s.cancel(id);
        }
        // The order ends, and the Cancel gets its own answer.
        s.until(&format!("order {id} and its cancel answered"), |s| {
            let t = s.track(id);
            t.is_terminal() && (t.canceled.is_some() || !t.cancel_rejected.is_empty())
        });
        let t = s.track(id).clone();
        let filled = t.fills.last().is_some_and(|f| f.leaves_qty == 0);
        assert!(
            filled != t.canceled.is_some(),
            "order {id}: exactly one of Filled and Canceled: {t:?}"
        );
        assert!(matches!(
            t.state(),
            OrderState::Filled | OrderState::Canceled
        ));
        h.assert_matches_ledger(ALPHA.0, &t);
        h.sim.set_reference_price(SYMBOL, REFERENCE).unwrap();
    }
    s.sync();
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

/// Places a resting order, so the session's first signed requests are
/// known to be through, then moves the venue's clock by `offset_ms`.
fn skewed_order_is_refused(offset_ms: i64) {
    let h = Harness::start();
    let mut s = h.trader(ALPHA.1);
    s.send(s.limit(1, Side::Buy, "59000.00", "0.01"));
    assert!(s.first_answer(1).accepted.is_some());
    h.sim.set_clock_offset_ms(offset_ms);
    s.send(s.limit(2, Side::Buy, "59000.00", "0.01"));
    let t = s.follow(2);
    let (reason, text) = t.rejected.expect("Rejected");
    assert_eq!(reason, Reason::VenueTimestamp, "{text}");
    assert!(h.ledger_entry(ALPHA.0, 2).is_none());
}

#[test]
fn timestamp_ahead_of_the_venue_clock_is_refused() {
    skewed_order_is_refused(-70_000);
}

#[test]
fn timestamp_outside_recv_window_is_refused() {
    skewed_order_is_refused(70_000);
}

#[test]
fn wrong_api_secret_gets_a_clear_answer() {
    let h = Harness::with(Opts {
        api_secret: "not-the-secret".into(),
        ..Opts::default()
    });
    let mut s = h.connect(ALPHA.1);
    // The WebSocket connects (Up), then the signed user-data subscription
    // is refused and the venue is reported Halted with the venue's error.
    // An order sent in between reaches the venue and is refused there.
    s.wait_venue(VenueState::Up);
    s.send(s.limit(1, Side::Buy, "59000.00", "0.01"));
    let (reason, text) = s.follow(1).rejected.expect("Rejected");
    assert!(
        matches!(reason, Reason::VenueAuth | Reason::VenueDown),
        "{reason:?}: {text}"
    );
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
    s.send(s.limit(2, Side::Buy, "59000.00", "0.01"));
    let (reason, text) = s.follow(2).rejected.expect("Rejected");
    assert_eq!(reason, Reason::VenueDown, "{text}");
    assert!(text.contains("Halted"), "{text}");
    assert!(h.sim.ledger().is_empty());
}
