//! The lifecycle table row by row, the documented races, and seeded random
//! event sequences.

use ordergate_core::decimal::{self, WideDecimal};
use ordergate_core::ids::{ClientId, Namespace, OrderKey, VenueId};
use ordergate_core::instrument::{Category, Instrument};
use ordergate_core::lifecycle::{
    transition, Action, CancelRejectReason, Duplicate, EventKind, Lifecycle, Outcome, Phase,
    Working,
};
use ordergate_core::model::ExecEvent;
use ordergate_core::model::{
    flags, NewOrder, OrdType, OrderState, OrderStatus, OrderUpdate, Reason, Side, TimeInForce,
};

const NS: Namespace = Namespace::new(1234, 7);

fn btc() -> Instrument {
    Instrument::from_strings(
        1,
        VenueId::BinanceSpot,
        "BTCUSDT",
        Category::Spot,
        "0.01",
        "0.00001",
        "0.00001",
        "5",
    )
    .unwrap()
}

fn key(order_id: u64) -> OrderKey {
    OrderKey {
        strategy: 3,
        order_id,
    }
}

fn cid(order_id: u64) -> ClientId {
    ClientId::order(NS, key(order_id))
}

fn limit(order_id: u64, qty: i64) -> NewOrder {
    NewOrder {
        order_id,
        instrument_id: 1,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price: 5_000_000,
        qty,
    }
}

fn accepted(id: u64) -> ExecEvent {
    ExecEvent::Accepted {
        client_id: cid(id),
        venue_order_id: format!("V{id}"),
        time_ms: 1,
    }
}

fn fill(id: u64, trade: &str, qty: i64, price: i64) -> ExecEvent {
    ExecEvent::Fill {
        client_id: cid(id),
        trade_id: trade.to_owned(),
        last_qty: qty,
        last_price: price,
        fee: WideDecimal::parse("0.001").unwrap(),
        fee_asset: "BNB".to_owned(),
        time_ms: 2,
        is_maker: true,
        order_filled: false,
    }
}

fn canceled(id: u64) -> ExecEvent {
    ExecEvent::Canceled {
        client_id: cid(id),
        time_ms: 3,
    }
}

fn expired(id: u64) -> ExecEvent {
    ExecEvent::Expired {
        client_id: cid(id),
        time_ms: 3,
    }
}

fn rejected(id: u64) -> ExecEvent {
    ExecEvent::Rejected {
        client_id: cid(id),
        reason: Reason::VenueInsufficientBalance,
        code: -2010,
        text: "Account has insufficient balance for requested action.".to_owned(),
    }
}

fn cancel_rejected(id: u64) -> ExecEvent {
    ExecEvent::CancelRejected {
        client_id: ClientId::cancel(NS, key(id), 1),
        reason: Reason::VenueUnknownOrder,
        code: -2011,
        text: "Unknown order sent.".to_owned(),
    }
}

/// A tracker plus everything it said.
struct T {
    lc: Lifecycle,
    out: Vec<(u32, OrderUpdate)>,
}

impl T {
    fn new() -> Self {
        T {
            lc: Lifecycle::new(NS),
            out: Vec::new(),
        }
    }
    fn submit(&mut self, id: u64, qty: i64) {
        self.lc.submit(key(id), &btc(), &limit(id, qty)).unwrap();
    }
    fn ev(&mut self, e: ExecEvent) -> Outcome {
        let out = &mut self.out;
        self.lc.on_venue_event(&e, &mut |s, m| out.push((s, m)))
    }
    fn take(&mut self) -> Vec<OrderUpdate> {
        self.out
            .drain(..)
            .map(|(s, m)| {
                assert_eq!(s, 3);
                m
            })
            .collect()
    }
    fn state(&self, id: u64) -> OrderState {
        self.lc.status(key(id)).unwrap().state
    }
}

fn as_fill(m: &OrderUpdate) -> &ordergate_core::model::Fill {
    match m {
        OrderUpdate::Fill(f) => f,
        other => panic!("expected a fill, got {other:?}"),
    }
}

#[test]
fn every_row_of_the_table() {
    use ordergate_core::lifecycle::Working::{New, PartiallyFilled, PendingNew, Unknown};
    use Action::*;
    use Phase::{Canceled, Expired, Filled, PendingCancel, Rejected};
    #[allow(non_snake_case)]
    let W = Phase::Working;
    let events = [
        EventKind::CancelRequested,
        EventKind::GatewayRejected,
        EventKind::Accepted,
        EventKind::Rejected,
        EventKind::Fill { completes: false },
        EventKind::Fill { completes: true },
        EventKind::Canceled,
        EventKind::CancelRejected,
        EventKind::Expired,
        EventKind::OutcomeUnknown,
        EventKind::Completed,
    ];
    let n = None;
    let rows: [(Phase, [Option<Action>; 11]); 12] = [
        (
            W(PendingNew),
            [
                Some(StartCancel),
                Some(Go(Rejected)),
                Some(Go(W(New))),
                Some(Go(Rejected)),
                Some(Go(W(PartiallyFilled))),
                Some(Go(Filled)),
                Some(Go(Canceled)),
                n,
                Some(Go(Expired)),
                Some(Go(W(Unknown))),
                Some(Go(Filled)),
            ],
        ),
        (
            W(Unknown),
            [
                Some(StartCancel),
                n,
                Some(Go(W(New))),
                Some(Go(Rejected)),
                Some(Go(W(PartiallyFilled))),
                Some(Go(Filled)),
                Some(Go(Canceled)),
                n,
                Some(Go(Expired)),
                Some(Ignore),
                Some(Go(Filled)),
            ],
        ),
        (
            W(New),
            [
                Some(StartCancel),
                n,
                Some(Ignore),
                n,
                Some(Go(W(PartiallyFilled))),
                Some(Go(Filled)),
                Some(Go(Canceled)),
                n,
                Some(Go(Expired)),
                Some(Ignore),
                Some(Go(Filled)),
            ],
        ),
        (
            W(PartiallyFilled),
            [
                Some(StartCancel),
                n,
                Some(Ignore),
                n,
                Some(Go(W(PartiallyFilled))),
                Some(Go(Filled)),
                Some(Go(Canceled)),
                n,
                Some(Go(Expired)),
                Some(Ignore),
                Some(Go(Filled)),
            ],
        ),
        (
            PendingCancel { from: PendingNew },
            [
                Some(StartCancel),
                n,
                Some(Go(PendingCancel { from: New })),
                Some(Go(Rejected)),
                Some(Go(PendingCancel {
                    from: PartiallyFilled,
                })),
                Some(Go(Filled)),
                Some(Go(Canceled)),
                Some(Restore),
                Some(Go(Expired)),
                Some(Go(PendingCancel { from: Unknown })),
                Some(Go(Filled)),
            ],
        ),
        (
            PendingCancel { from: Unknown },
            [
                Some(StartCancel),
                n,
                Some(Go(PendingCancel { from: New })),
                Some(Go(Rejected)),
                Some(Go(PendingCancel {
                    from: PartiallyFilled,
                })),
                Some(Go(Filled)),
                Some(Go(Canceled)),
                Some(Restore),
                Some(Go(Expired)),
                Some(Ignore),
                Some(Go(Filled)),
            ],
        ),
        (
            PendingCancel { from: New },
            [
                Some(StartCancel),
                n,
                Some(Ignore),
                n,
                Some(Go(PendingCancel {
                    from: PartiallyFilled,
                })),
                Some(Go(Filled)),
                Some(Go(Canceled)),
                Some(Restore),
                Some(Go(Expired)),
                Some(Ignore),
                Some(Go(Filled)),
            ],
        ),
        (
            PendingCancel {
                from: PartiallyFilled,
            },
            [
                Some(StartCancel),
                n,
                Some(Ignore),
                n,
                Some(Go(PendingCancel {
                    from: PartiallyFilled,
                })),
                Some(Go(Filled)),
                Some(Go(Canceled)),
                Some(Restore),
                Some(Go(Expired)),
                Some(Ignore),
                Some(Go(Filled)),
            ],
        ),
        (
            Filled,
            [
                n,
                n,
                Some(Ignore),
                n,
                Some(Stay),
                Some(Stay),
                n,
                Some(Stay),
                n,
                Some(Ignore),
                Some(Ignore),
            ],
        ),
        (
            Canceled,
            [
                n,
                n,
                Some(Ignore),
                n,
                Some(Stay),
                Some(Stay),
                Some(Ignore),
                Some(Stay),
                n,
                Some(Ignore),
                n,
            ],
        ),
        (
            Rejected,
            [
                n,
                n,
                Some(Go(W(New))),
                Some(Ignore),
                Some(Go(W(PartiallyFilled))),
                Some(Go(Filled)),
                n,
                Some(Stay),
                n,
                Some(Ignore),
                n,
            ],
        ),
        (
            Expired,
            [
                n,
                n,
                Some(Ignore),
                n,
                Some(Stay),
                Some(Stay),
                n,
                Some(Stay),
                Some(Ignore),
                Some(Ignore),
                n,
            ],
        ),
    ];
    for (phase, expect) in rows {
        for (ev, want) in events.iter().zip(expect) {
            assert_eq!(transition(phase, *ev), want, "({phase:?}, {ev:?})");
        }
    }
}

#[test]
fn accept_partial_then_full_fill() {
    let mut t = T::new();
    t.submit(1, 100_000); // 1 BTC
    assert_eq!(t.state(1), OrderState::PendingNew);
    assert_eq!(t.ev(accepted(1)), Outcome::Applied);
    assert_eq!(
        t.take(),
        vec![OrderUpdate::Accepted {
            order_id: 1,
            venue_order_id: "V1".into()
        }]
    );
    t.ev(fill(1, "t1", 40_000, 5_000_000));
    t.ev(fill(1, "t2", 60_000, 5_000_001));
    let out = t.take();
    let (a, b) = (as_fill(&out[0]), as_fill(&out[1]));
    assert_eq!((a.cum_qty, a.leaves_qty), (40_000, 60_000));
    assert_eq!((b.cum_qty, b.leaves_qty), (100_000, 0));
    let notional = decimal::notional(5_000_000, 40_000) + decimal::notional(5_000_001, 60_000);
    assert_eq!(b.cum_notional, notional);
    // 50000.006 -> 50000.01 at the price scale
    assert_eq!(b.avg_price, 5_000_001);
    assert_eq!(b.avg_price, decimal::average_price(notional, 100_000));
    assert_eq!(t.state(1), OrderState::Filled);
    assert_eq!(t.lc.open_orders(3).count(), 0);
    let o = t.lc.order(key(1)).unwrap();
    assert_eq!(o.venue_order_id, "V1");
    assert_eq!(o.fees, vec![("BNB".into(), WideDecimal::new(2, 3))]);
}

#[test]
fn fees_sum_per_asset_exactly() {
    let mut t = T::new();
    t.submit(1, 100_000);
    let f = |trade: &str, fee: &str, asset: &str| ExecEvent::Fill {
        client_id: cid(1),
        trade_id: trade.into(),
        last_qty: 10_000,
        last_price: 5_000_000,
        fee: WideDecimal::parse(fee).unwrap(),
        fee_asset: asset.into(),
        time_ms: 0,
        is_maker: false,
        order_filled: false,
    };
    let evs = [
        f("a", "0.00075000", "BNB"),
        f("b", "0.0000001", "BNB"),
        f("c", "1.5", "USDT"),
    ];
    for e in evs {
        t.ev(e);
    }
    let o = t.lc.order(key(1)).unwrap();
    assert_eq!(o.fees[0].0, "BNB");
    assert_eq!(o.fees[0].1.to_string(), "0.00075010");
    assert_eq!(o.fees[1].1.to_string(), "1.5");
}

#[test]
fn duplicate_submit_returns_current_status() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(fill(1, "t1", 1_000, 5_000_000));
    let Err(Duplicate(st)) = t.lc.submit(key(1), &btc(), &limit(1, 5)) else {
        panic!("duplicate accepted");
    };
    assert_eq!(st.state, OrderState::PartiallyFilled);
    assert_eq!(st.cum_qty, 1_000);
    assert_eq!(st.leaves_qty, 99_000);
    assert_eq!(t.lc.len(), 1);
}

#[test]
fn cancel_with_partial_fill_keeps_cum_qty() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(accepted(1));
    t.ev(fill(1, "t1", 30_000, 5_000_000));
    assert_eq!(t.lc.request_cancel(key(1)), Ok(1));
    assert_eq!(t.state(1), OrderState::PendingCancel);
    t.take();
    t.ev(canceled(1));
    assert_eq!(
        t.take(),
        vec![OrderUpdate::Canceled {
            order_id: 1,
            cum_qty: 30_000
        }]
    );
    let st = t.lc.status(key(1)).unwrap();
    assert_eq!(
        (st.state, st.cum_qty, st.leaves_qty),
        (OrderState::Canceled, 30_000, 0)
    );
    assert_eq!(
        t.lc.request_cancel(key(1)),
        Err(CancelRejectReason::NotOpen(OrderState::Canceled))
    );
    assert_eq!(
        CancelRejectReason::NotOpen(OrderState::Canceled).reason(),
        Reason::OrderNotOpen
    );
    assert_eq!(
        t.lc.request_cancel(key(9)),
        Err(CancelRejectReason::UnknownOrder)
    );
    assert_eq!(
        CancelRejectReason::UnknownOrder.reason(),
        Reason::UnknownOrder
    );
}

#[test]
fn fill_racing_a_cancel_then_cancel_rejected_restores() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(accepted(1));
    t.lc.request_cancel(key(1)).unwrap();
    t.take();
    t.ev(fill(1, "t1", 20_000, 5_000_000));
    assert_eq!(t.state(1), OrderState::PendingCancel);
    let out = t.take();
    assert_eq!(as_fill(&out[0]).cum_qty, 20_000);
    assert_eq!(as_fill(&out[0]).leaves_qty, 80_000);
    t.ev(cancel_rejected(1));
    assert_eq!(t.state(1), OrderState::PartiallyFilled);
    assert!(matches!(
        &t.take()[..],
        [OrderUpdate::CancelRejected {
            order_id: 1,
            reason: Reason::VenueUnknownOrder,
            ..
        }]
    ));
    // Still open: a second cancel gets attempt 2.
    assert_eq!(t.lc.request_cancel(key(1)), Ok(2));
}

#[test]
fn fill_completing_during_cancel_then_late_cancel_reject_is_reported() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(accepted(1));
    t.lc.request_cancel(key(1)).unwrap();
    t.ev(fill(1, "t1", 100_000, 5_000_000));
    assert_eq!(t.state(1), OrderState::Filled);
    t.take();
    // Binance answers the cancel with -2011: the strategy still gets its
    // answer.
    assert_eq!(t.ev(cancel_rejected(1)), Outcome::Applied);
    assert!(matches!(
        &t.take()[..],
        [OrderUpdate::CancelRejected { .. }]
    ));
    assert_eq!(t.state(1), OrderState::Filled);
    // A second one answers nothing: invalid, counted, silent.
    assert!(matches!(t.ev(cancel_rejected(1)), Outcome::Invalid { .. }));
    assert!(t.take().is_empty());
    assert_eq!(t.lc.counters().invalid, 1);
}

#[test]
fn two_cancels_restore_only_after_both_answered() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(accepted(1));
    t.take();
    assert_eq!(t.lc.request_cancel(key(1)), Ok(1));
    assert_eq!(t.lc.request_cancel(key(1)), Ok(2));
    t.ev(cancel_rejected(1));
    assert_eq!(t.state(1), OrderState::PendingCancel);
    t.ev(cancel_rejected(1));
    assert_eq!(t.state(1), OrderState::New);
    assert_eq!(t.take().len(), 2);
}

#[test]
fn cancel_before_ack_then_ack_then_canceled() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.lc.request_cancel(key(1)).unwrap();
    t.ev(accepted(1));
    assert_eq!(t.state(1), OrderState::PendingCancel);
    assert_eq!(
        t.lc.order(key(1)).unwrap().phase,
        Phase::PendingCancel { from: Working::New }
    );
    t.ev(canceled(1));
    assert_eq!(
        t.take(),
        vec![
            OrderUpdate::Accepted {
                order_id: 1,
                venue_order_id: "V1".into()
            },
            OrderUpdate::Canceled {
                order_id: 1,
                cum_qty: 0
            }
        ]
    );
}

#[test]
fn gateway_failures() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.submit(2, 100_000);
    let out = &mut t.out;
    t.lc.gateway_reject(key(1), Reason::QueueFull, "ring full", &mut |s, m| {
        out.push((s, m))
    });
    assert_eq!(t.state(1), OrderState::Rejected);
    t.lc.request_cancel(key(2)).unwrap();
    let out = &mut t.out;
    t.lc.cancel_failed(key(2), Reason::QueueFull, "ring full", &mut |s, m| {
        out.push((s, m))
    });
    assert_eq!(t.state(2), OrderState::PendingNew);
    assert!(matches!(
        &t.take()[..],
        [
            OrderUpdate::Rejected {
                order_id: 1,
                reason: Reason::QueueFull,
                ..
            },
            OrderUpdate::CancelRejected {
                order_id: 2,
                reason: Reason::QueueFull,
                ..
            }
        ]
    ));
    let open: Vec<u64> = t.lc.open_orders(3).map(|o| o.key.order_id).collect();
    assert_eq!(open, vec![2]);
}

#[test]
fn fill_before_ack_is_an_implicit_acceptance() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(fill(1, "t1", 100_000, 5_000_000));
    let out = t.take();
    assert_eq!(
        out[0],
        OrderUpdate::Accepted {
            order_id: 1,
            venue_order_id: String::new()
        }
    );
    assert_eq!(as_fill(&out[1]).cum_qty, 100_000);
    assert_eq!(t.state(1), OrderState::Filled);
    // The FULL ack arrives last: recorded, not reported.
    assert_eq!(t.ev(accepted(1)), Outcome::Ignored);
    assert!(t.take().is_empty());
    assert_eq!(t.lc.order(key(1)).unwrap().venue_order_id, "V1");
}

#[test]
fn market_expired_after_partials() {
    let mut t = T::new();
    let mut req = limit(1, 100_000);
    req.ord_type = OrdType::Market;
    req.tif = TimeInForce::Ioc;
    t.lc.submit(key(1), &btc(), &req).unwrap();
    t.ev(accepted(1));
    t.ev(fill(1, "7", 20_000, 5_000_000));
    t.ev(fill(1, "8", 20_000, 5_000_100));
    t.take();
    t.ev(expired(1));
    assert_eq!(
        t.take(),
        vec![OrderUpdate::Expired {
            order_id: 1,
            cum_qty: 40_000
        }]
    );
    let st = t.lc.status(key(1)).unwrap();
    assert_eq!(
        (st.state, st.avg_price, st.leaves_qty),
        (OrderState::Expired, 5_000_050, 0)
    );
    // Repeated terminal event: ignored.
    assert_eq!(t.ev(expired(1)), Outcome::Ignored);
}

#[test]
fn quote_sized_market_completes_on_the_venues_word() {
    let mut t = T::new();
    let mut req = limit(1, 1_000_000_000); // 100 USDT at scale 2 + 5
    req.ord_type = OrdType::Market;
    req.flags = flags::QUOTE_QTY;
    t.lc.submit(key(1), &btc(), &req).unwrap();
    t.ev(fill(1, "1", 100, 5_000_000)); // 0.001 BTC @ 50000 = 50 USDT
    assert_eq!(t.lc.status(key(1)).unwrap().leaves_qty, 500_000_000);
    t.ev(fill(1, "2", 100, 5_000_000));
    // Our sum reached the quote amount; the venue has not said filled.
    assert_eq!(t.state(1), OrderState::PartiallyFilled);
    t.take();
    // It says so without another fill (the last trade came by backfill).
    assert_eq!(
        t.ev(ExecEvent::Completed { client_id: cid(1) }),
        Outcome::Applied
    );
    assert_eq!(t.state(1), OrderState::Filled);
    assert!(matches!(
        &t.take()[..],
        [OrderUpdate::Status(OrderStatus {
            state: OrderState::Filled,
            leaves_qty: 0,
            ..
        })]
    ));
}

/// The venue rounds a quote-sized order down to its lot, so the order
/// never spends its whole quote amount; when the venue says FILLED it is
/// filled, and the strategy hears a final Fill with nothing left.
#[test]
fn quote_sized_market_the_venue_calls_filled_is_filled() {
    let mut t = T::new();
    let mut req = limit(1, 1_000_000_000); // 100 USDT at scale 2 + 5
    req.ord_type = OrdType::Market;
    req.flags = flags::QUOTE_QTY;
    t.lc.submit(key(1), &btc(), &req).unwrap();
    t.ev(fill(1, "1", 100, 5_000_000)); // 50 USDT
                                        // 49.50 USDT: 0.50 short of 100, and the venue says FILLED.
    let mut last = fill(1, "2", 99, 5_000_000);
    if let ExecEvent::Fill { order_filled, .. } = &mut last {
        *order_filled = true;
    }
    assert_eq!(t.ev(last), Outcome::Applied);
    assert_eq!(t.state(1), OrderState::Filled);
    let st = t.lc.status(key(1)).unwrap();
    assert_eq!((st.cum_qty, st.leaves_qty), (199, 0));
    assert!(matches!(
        t.take().last(),
        Some(OrderUpdate::Fill(f)) if f.leaves_qty == 0 && f.cum_qty == 199
    ));
}

#[test]
fn venue_reject() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(rejected(1));
    assert!(matches!(
        &t.take()[..],
        [OrderUpdate::Rejected {
            order_id: 1,
            reason: Reason::VenueInsufficientBalance,
            ..
        }]
    ));
    assert_eq!(t.state(1), OrderState::Rejected);
    // A venue reject is final, but a later fill is still the venue's
    // truth: applied, the order reopens (Accepted, then the fill).
    assert!(matches!(t.ev(fill(1, "x", 1, 1)), Outcome::Applied));
    assert!(matches!(
        &t.take()[..],
        [OrderUpdate::Accepted { .. }, OrderUpdate::Fill(_)]
    ));
    assert_eq!(t.lc.counters().reopened, 1);
    assert!(matches!(
        t.ev(cancel_rejected(1)),
        Outcome::Invalid {
            state: Phase::Working(_),
            ..
        }
    ));
    assert_eq!(t.lc.status(key(1)).unwrap().cum_qty, 1);
}

#[test]
fn overfill_is_reported_flagged_and_never_wraps() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(fill(1, "1", 80_000, 5_000_000));
    t.ev(fill(1, "2", 80_000, 5_000_000));
    assert_eq!(t.state(1), OrderState::Filled);
    let out = t.take();
    let last = as_fill(out.last().unwrap());
    assert_eq!((last.cum_qty, last.leaves_qty), (160_000, 0));
    assert!(t.lc.order(key(1)).unwrap().overfilled);
    // More after Filled: still applied and reported.
    t.ev(fill(1, "3", 1, 5_000_000));
    assert_eq!(t.lc.status(key(1)).unwrap().cum_qty, 160_001);
    assert_eq!(t.lc.counters().overfill, 1);
    // Overflow is refused, not wrapped.
    assert!(matches!(
        t.ev(fill(1, "4", i64::MAX, 1)),
        Outcome::Invalid { .. }
    ));
    assert_eq!(t.lc.status(key(1)).unwrap().cum_qty, 160_001);
}

#[test]
fn fill_after_cancel_is_kept() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(accepted(1));
    t.ev(canceled(1));
    assert_eq!(t.ev(fill(1, "1", 5_000, 5_000_000)), Outcome::Applied);
    assert_eq!(t.state(1), OrderState::Canceled);
    assert_eq!(t.lc.status(key(1)).unwrap().cum_qty, 5_000);
}

#[test]
fn unknown_orders_are_counted() {
    let mut t = T::new();
    t.submit(1, 100_000);
    t.ev(fill(1, "t1", 10_000, 5_000_000));
    assert_eq!(t.lc.status(key(1)).unwrap().cum_qty, 10_000);
    assert_eq!(
        t.ev(fill(2, "t1", 10_000, 5_000_000)),
        Outcome::UnknownOrder
    );
    let other_epoch = ExecEvent::Canceled {
        client_id: ClientId::order(Namespace::new(NS.installation, NS.epoch - 1), key(1)),
        time_ms: 0,
    };
    assert_eq!(t.ev(other_epoch), Outcome::UnknownOrder);
    let c = t.lc.counters();
    assert_eq!(c.unknown_order, 2);
    assert_eq!(t.state(1), OrderState::PartiallyFilled);
}

#[test]
fn open_orders_are_per_strategy() {
    let mut lc = Lifecycle::new(NS);
    for (s, id) in [(1, 5), (2, 1), (2, 2), (3, 1)] {
        lc.submit(
            OrderKey {
                strategy: s,
                order_id: id,
            },
            &btc(),
            &limit(id, 1_000),
        )
        .unwrap();
    }
    let ids: Vec<u64> = lc.open_orders(2).map(|o| o.key.order_id).collect();
    assert_eq!(ids, vec![1, 2]);
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_sequences_keep_the_invariants() {
    let (mut fills, mut terminal) = (0, 0);
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut lc = Lifecycle::new(NS);
        let mut out = Vec::new();
        let mut last_cum = [0i64; 4];
        let mut was_terminal = [false; 4];
        for step in 0..300 {
            let id = rng.below(4);
            let k = key(id);
            let c = ClientId::order(NS, k);
            let ev = match rng.below(9) {
                0 => {
                    let _ = lc.submit(k, &btc(), &limit(id, 1 + rng.below(50_000) as i64));
                    continue;
                }
                1 => {
                    let _ = lc.request_cancel(k);
                    continue;
                }
                2 => accepted(id),
                3 => rejected(id),
                4 | 5 => ExecEvent::Fill {
                    client_id: c,
                    trade_id: format!("{}", rng.below(40)),
                    last_qty: rng.below(20_000) as i64 - 100,
                    last_price: 4_900_000 + rng.below(200_000) as i64,
                    fee: WideDecimal::new(rng.below(1000) as i128, 8),
                    fee_asset: ["BNB", "USDT"][rng.below(2) as usize].into(),
                    time_ms: step,
                    is_maker: false,
                    order_filled: false,
                },
                6 => canceled(id),
                7 => cancel_rejected(id),
                _ => expired(id),
            };
            lc.on_venue_event(&ev, &mut |s, m| out.push((s, m)));
            let Some(o) = lc.order(k) else { continue };
            let i = id as usize;
            assert!(o.cum_qty >= last_cum[i], "seed {seed}: cum went down");
            last_cum[i] = o.cum_qty;
            assert!(o.leaves_qty() >= 0);
            assert_ne!(o.state(), OrderState::Unknown);
            assert!(
                !was_terminal[i] || o.state().is_terminal(),
                "seed {seed}: left a terminal state"
            );
            // Rejected may reopen on a late venue truth; no other end can.
            was_terminal[i] |= o.state().is_terminal() && o.state() != OrderState::Rejected;
            terminal += o.state().is_terminal() as u32;
            if o.state().is_terminal() {
                assert_eq!(lc.open_orders(3).filter(|x| x.key == k).count(), 0);
            }
            // avg * cum is the nearest multiple to the notional, ties to even.
            if o.cum_qty > 0 {
                let avg = o.avg_price() as i128;
                let q = o.cum_qty as i128;
                let diff = (o.cum_notional - avg * q).abs() * 2;
                assert!(
                    diff < q || (diff == q && avg % 2 == 0),
                    "seed {seed}: avg {avg}"
                );
            }
        }
        for (_, m) in &out {
            if let OrderUpdate::Fill(f) = m {
                fills += 1;
                assert!(f.last_qty > 0 && f.leaves_qty >= 0);
                assert_eq!(
                    f.avg_price,
                    decimal::average_price(f.cum_notional, f.cum_qty)
                );
            }
        }
    }
    // The sequences really reach fills and terminal states.
    assert!(
        fills > 1000 && terminal > 1000,
        "{fills} fills, {terminal} terminal"
    );
}
