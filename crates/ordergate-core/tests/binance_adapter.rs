//! The Binance Spot adapter driven sans-IO: commands and documented frames
//! in, frames and events out. No sockets.

use ordergate_core::decimal::WideDecimal;
use ordergate_core::ids::{ClientId, OrderKey, VenueId};
use ordergate_core::instrument::{Category, Instrument};
use ordergate_core::model::{flags, OrdType, Reason, Side, TimeInForce, VenueState};
use ordergate_core::venue::binance::{sign, BinanceSpot, BinanceSpotConfig};
use ordergate_core::venue::{
    Command, ConnRole, Cost, ExecEvent, Now, OrderRequest, Outgoing, Report, VenueError,
    VenueProtocol, VenueStatus,
};
use serde_json::{json, Value};

const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const EPOCH: u32 = 7;

const BTC: u32 = 1;
const SHIB: u32 = 2;
const LTCBNB: u32 = 3;
const ETHBTC: u32 = 4;

fn inst(id: u32, symbol: &str, tick: &str, lot: &str) -> Instrument {
    Instrument::from_strings(
        id,
        VenueId::BinanceSpot,
        symbol,
        Category::Spot,
        tick,
        lot,
        lot,
        "1",
    )
    .expect("instrument")
}

fn adapter() -> BinanceSpot {
    BinanceSpot::new(BinanceSpotConfig {
        ws_url: "wss://ws-api.binance.com:443/ws-api/v3".into(),
        api_key: API_KEY.into(),
        api_secret: SECRET.as_bytes().to_vec(),
        recv_window_ms: 5000,
        instruments: vec![
            // The scale is the decimals a step is written with: these
            // configs write the venue's steps without trailing zeros.
            inst(BTC, "BTCUSDT", "0.01", "0.00001"),
            inst(SHIB, "SHIBUSDT", "0.00000001", "1"),
            inst(LTCBNB, "LTCBNB", "0.000001", "0.001"),
            inst(ETHBTC, "ETHBTC", "0.00000001", "0.0001"),
        ],
        epoch: EPOCH,
    })
}

fn now(ms: u64) -> Now {
    Now {
        mono_ns: ms * 1_000_000,
        wall_ms: ms,
    }
}

fn oid(order: u64) -> ClientId {
    ClientId::order(
        EPOCH,
        OrderKey {
            strategy: 3,
            order_id: order,
        },
    )
}

fn order(client_id: ClientId, instrument: u32, side: Side, price: i64, qty: i64) -> OrderRequest {
    OrderRequest {
        client_id,
        instrument,
        side,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price,
        qty,
    }
}

fn submit(a: &mut BinanceSpot, cmd: Command) -> Value {
    let mut out = Vec::new();
    a.submit(&cmd, now(1_700_000_000_000), &mut out)
        .expect("submit");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].conn, 0);
    serde_json::from_str(&out[0].text).expect("frame is JSON")
}

fn place(a: &mut BinanceSpot, o: OrderRequest) -> Value {
    submit(a, Command::Place(o))
}

fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks the request's signature the way the venue does: every param
/// but `signature`, sorted, unencoded.
fn assert_signed(req: &Value) {
    let params = req["params"].as_object().expect("params");
    let texts: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.clone(), param_text(v)))
        .collect();
    let payload = sign::ws_payload(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sig = params["signature"].as_str().expect("signature");
    assert!(
        sign::verify_hex(SECRET.as_bytes(), payload.as_bytes(), sig),
        "bad signature over {payload}"
    );
    assert_eq!(params["apiKey"], API_KEY);
    assert_eq!(params["recvWindow"], 5000);
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "new" => include_str!("../../../tests/fixtures/binance_spot_execution_report.json"),
        "trade" => include_str!("../../../tests/fixtures/binance_spot_execution_report_trade.json"),
        "sequence" => include_str!(
            "../../../tests/fixtures/binance_spot_user_data_market_order_sequence.json"
        ),
        "error" => include_str!("../../../tests/fixtures/binance_ws_response_error_example.json"),
        "ack" => include_str!("../../../tests/fixtures/binance_ws_order_place_response_ack.json"),
        "shutdown" => include_str!("../../../tests/fixtures/binance_ws_server_shutdown_event.json"),
        "terminated" => {
            include_str!("../../../tests/fixtures/binance_spot_event_stream_terminated.json")
        }
        "banned" => include_str!("../../../tests/fixtures/binance_ws_ip_banned_response.json"),
        "time" => include_str!("../../../tests/fixtures/binance_ws_rate_limits_time_response.json"),
        "cancel_ok" => {
            include_str!("../../../tests/fixtures/binance_ws_order_cancel_response.json")
        }
        "subscribed" => {
            include_str!(
                "../../../tests/fixtures/binance_ws_user_data_stream_subscribe_response.json"
            )
        }
        "revoked" => include_str!("../../../tests/fixtures/binance_ws_session_revoked_error.json"),
        "account" => include_str!("../../../tests/fixtures/binance_ws_event_wrapper_example.json"),
        other => panic!("no fixture {other}"),
    };
    let v: Value = serde_json::from_str(text).expect("fixture JSON");
    assert!(v["source"].is_object(), "fixture keeps its source");
    v["payload"].clone()
}

/// An execution report as the WebSocket API delivers it.
fn wrap(event: Value) -> Value {
    if event.get("event").is_some() {
        event
    } else {
        json!({"subscriptionId": 0, "event": event})
    }
}

fn feed(a: &mut BinanceSpot, frame: &Value) -> (Vec<Report>, Vec<Outgoing>) {
    let mut bytes = serde_json::to_vec(frame).expect("serialize");
    let mut events = Vec::new();
    let mut out = Vec::new();
    a.on_frame(0, &mut bytes, now(1_700_000_000_500), &mut events, &mut out)
        .unwrap_or_else(|e| panic!("frame {frame}: {e}"));
    (events, out)
}

/// Opens a connection the way the venue answers it: the adapter asks the
/// server time first, and sends its signed requests (subscription,
/// reconciliation) from the timer once the time has come back.
fn open(a: &mut BinanceSpot, at: u64) -> Vec<Outgoing> {
    let mut out = Vec::new();
    a.on_open(0, now(at), &mut out);
    let time: Value = serde_json::from_str(&out[0].text).unwrap();
    assert_eq!(time["method"], "time");
    let (_, more) = feed(
        a,
        &json!({"id": time["id"], "status": 200, "result": {"serverTime": at}}),
    );
    out.extend(more);
    assert_eq!(
        a.next_timer(),
        Some(0),
        "signed requests wait for the timer"
    );
    a.on_timer(now(at), &mut Vec::new(), &mut out);
    out
}

fn feed_raw(a: &mut BinanceSpot, bytes: &[u8]) -> Result<Vec<Report>, VenueError> {
    let mut bytes = bytes.to_vec();
    let mut events = Vec::new();
    let mut out = Vec::new();
    a.on_frame(0, &mut bytes, now(1), &mut events, &mut out)
        .map(|_| events)
}

/// A response to request `req` with this status and error.
fn error_response(req: &Value, status: u16, code: i64, msg: &str) -> Value {
    json!({"id": req["id"], "status": status, "error": {"code": code, "msg": msg}})
}

fn with_ids(mut event: Value, c: &str, orig: &str) -> Value {
    event["c"] = json!(c);
    event["C"] = json!(orig);
    event
}

// ---------------------------------------------------------------- requests

#[test]
fn connection_is_the_ws_api_for_everything() {
    let a = adapter();
    let conns = a.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].role, ConnRole::OrderEntryAndUserData);
    assert!(conns[0].url.ends_with("/ws-api/v3"));
    assert_eq!(a.venue(), VenueId::BinanceSpot);
}

#[test]
fn place_is_a_signed_ack_order_at_instrument_scales() {
    let mut a = adapter();
    let req = place(&mut a, order(oid(1), BTC, Side::Sell, 6_712_345, 1_000));
    assert_eq!(req["method"], "order.place");
    assert!(req["id"].is_u64());
    let p = &req["params"];
    assert_eq!(p["symbol"], "BTCUSDT");
    assert_eq!(p["side"], "SELL");
    assert_eq!(p["type"], "LIMIT");
    assert_eq!(p["timeInForce"], "GTC");
    assert_eq!(p["price"], "67123.45");
    assert_eq!(p["quantity"], "0.01000");
    assert_eq!(p["newClientOrderId"], oid(1).encode());
    assert_eq!(p["newOrderRespType"], "ACK");
    assert_eq!(p["timestamp"], 1_700_000_000_000u64);
    assert_signed(&req);
}

#[test]
fn shib_sized_quantity_and_tiny_price_are_exact() {
    let mut a = adapter();
    let mut o = order(oid(2), SHIB, Side::Buy, 1_234, 10_000_000_000);
    o.tif = TimeInForce::Ioc;
    let req = place(&mut a, o);
    assert_eq!(req["params"]["quantity"], "10000000000");
    assert_eq!(req["params"]["price"], "0.00001234");
    assert_eq!(req["params"]["timeInForce"], "IOC");
    assert_signed(&req);
}

#[test]
fn market_and_post_only_shapes() {
    let mut a = adapter();
    let mut m = order(oid(3), BTC, Side::Buy, 0, 150);
    m.ord_type = OrdType::Market;
    let req = place(&mut a, m);
    assert_eq!(req["params"]["type"], "MARKET");
    assert_eq!(req["params"]["quantity"], "0.00150");
    assert!(req["params"].get("price").is_none());
    assert!(req["params"].get("timeInForce").is_none());
    assert_signed(&req);

    // Quote quantity is a notional: price scale + qty scale (2 + 5).
    m.client_id = oid(4);
    m.flags = flags::QUOTE_QTY;
    m.qty = 10_000_000_000; // 1000 USDT
    let req = place(&mut a, m);
    assert_eq!(req["params"]["quoteOrderQty"], "1000.0000000");
    assert!(req["params"].get("quantity").is_none());
    assert_signed(&req);

    for (ty, fl) in [(OrdType::LimitMaker, 0), (OrdType::Limit, flags::POST_ONLY)] {
        let mut o = order(oid(5), BTC, Side::Buy, 100, 1_000);
        o.ord_type = ty;
        o.flags = fl;
        let req = place(&mut a, o);
        assert_eq!(req["params"]["type"], "LIMIT_MAKER");
        assert!(req["params"].get("timeInForce").is_none());
        assert_signed(&req);
    }
}

#[test]
fn cancel_names_the_order_and_itself() {
    let mut a = adapter();
    let cancel_id = ClientId::cancel(EPOCH, oid(1).key, 0);
    let req = submit(
        &mut a,
        Command::Cancel {
            cancel_id,
            orig: oid(1),
            instrument: BTC,
        },
    );
    assert_eq!(req["method"], "order.cancel");
    assert_eq!(req["params"]["symbol"], "BTCUSDT");
    assert_eq!(req["params"]["origClientOrderId"], oid(1).encode());
    assert_eq!(req["params"]["newClientOrderId"], cancel_id.encode());
    assert_signed(&req);
}

#[test]
fn unknown_instrument_is_an_error() {
    let mut a = adapter();
    let mut out = Vec::new();
    let err = a
        .submit(
            &Command::Place(order(oid(1), 99, Side::Buy, 1, 1)),
            now(1),
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(err, VenueError::UnknownInstrument(99)));
    assert!(out.is_empty());
}

#[test]
fn costs_follow_the_documented_weights() {
    let a = adapter();
    let o = order(oid(1), BTC, Side::Buy, 1, 1);
    assert_eq!(
        a.cost(&Command::Place(o)),
        Cost {
            weight: 1,
            orders: 1
        }
    );
    let c = Command::Cancel {
        cancel_id: ClientId::cancel(EPOCH, oid(1).key, 0),
        orig: oid(1),
        instrument: BTC,
    };
    assert_eq!(
        a.cost(&c),
        Cost {
            weight: 1,
            orders: 0
        }
    );
    use ordergate_core::venue::binance::method_cost;
    assert_eq!(method_cost("order.status").weight, 4);
    assert_eq!(method_cost("openOrders.status").weight, 6);
    assert_eq!(method_cost("userDataStream.subscribe.signature").weight, 2);
}

// ------------------------------------------------------- connection cycle

#[test]
fn open_syncs_clock_subscribes_and_reconciles_after_reconnect() {
    let mut a = adapter();
    let mut out = Vec::new();
    a.on_open(0, now(1_000), &mut out);
    let mut reqs: Vec<Value> = out
        .iter()
        .map(|o| serde_json::from_str(&o.text).unwrap())
        .collect();
    let methods: Vec<&str> = reqs.iter().map(|r| r["method"].as_str().unwrap()).collect();
    // Nothing signed before the venue's time is known.
    assert_eq!(methods, ["time"]);
    assert!(a.next_timer().is_some());

    // The documented time response, answering our request.
    let mut t = fixture("time");
    t["id"] = reqs[0]["id"].clone();
    let mut bytes = serde_json::to_vec(&t).unwrap();
    let (mut ev, mut o2) = (Vec::new(), Vec::new());
    a.on_frame(0, &mut bytes, now(1_040), &mut ev, &mut o2)
        .unwrap();
    let samples = a.take_time_samples();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].server_ms, 1_656_400_526_260);
    assert_eq!(samples[0].offset_ms(), 1_656_400_526_260 - 1_020);
    assert!(a.take_time_samples().is_empty());
    // Now the subscription goes out, from the timer (the driver syncs its
    // clock from the sample in between).
    assert_eq!(a.next_timer(), Some(0));
    let mut o_sub = Vec::new();
    a.on_timer(now(1_041), &mut Vec::new(), &mut o_sub);
    assert_eq!(o_sub.len(), 1);
    reqs.push(serde_json::from_str(&o_sub[0].text).unwrap());
    assert_eq!(reqs[1]["method"], "userDataStream.subscribe.signature");
    assert_signed(&reqs[1]);
    assert_eq!(reqs[1]["params"].as_object().unwrap().len(), 4);

    let mut s = fixture("subscribed");
    s["id"] = reqs[1]["id"].clone();
    let (ev, _) = feed(&mut a, &s);
    assert!(matches!(
        ev.as_slice(),
        [Report::Venue(VenueStatus {
            state: VenueState::Up,
            ..
        })]
    ));

    // Timer: clock resync once the interval has passed.
    let mut o3 = Vec::new();
    let later = Now {
        mono_ns: a.next_timer().unwrap(),
        wall_ms: 40_000,
    };
    a.on_timer(later, &mut Vec::new(), &mut o3);
    assert_eq!(o3.len(), 1);
    assert!(o3[0].text.contains("\"method\":\"time\""));

    // Reconnect: also list open orders, per configured symbol, signed.
    let mut closed = Vec::new();
    a.on_close(0, now(2_000), &mut closed);
    assert!(matches!(
        closed.last(),
        Some(Report::Venue(VenueStatus {
            state: VenueState::Down,
            ..
        }))
    ));
    assert_eq!(a.next_timer(), None);
    let out = open(&mut a, 3_000);
    let open: Vec<Value> = out
        .iter()
        .map(|o| serde_json::from_str::<Value>(&o.text).unwrap())
        .filter(|r| r["method"] == "openOrders.status")
        .collect();
    assert_eq!(open.len(), 4);
    for r in &open {
        assert_signed(r);
    }
}

#[test]
fn reconcile_accepts_open_orders_and_queries_the_rest() {
    let mut a = adapter();
    open(&mut a, 1);
    place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    place(&mut a, order(oid(2), BTC, Side::Buy, 100, 1_000));
    a.on_close(0, now(2), &mut Vec::new());
    let out = open(&mut a, 3);
    let reqs: Vec<Value> = out
        .iter()
        .map(|o| serde_json::from_str(&o.text).unwrap())
        .collect();
    let mut queries = Vec::new();
    let mut events = Vec::new();
    for r in reqs.iter().filter(|r| r["method"] == "openOrders.status") {
        let rows = if r["params"]["symbol"] == "BTCUSDT" {
            json!([{"symbol": "BTCUSDT", "orderId": 11, "clientOrderId": oid(1).encode(),
                    "status": "NEW", "updateTime": 5},
                   {"symbol": "BTCUSDT", "orderId": 12, "clientOrderId": "web_foreign",
                    "status": "NEW", "updateTime": 5}])
        } else {
            json!([])
        };
        let (ev, out) = feed(
            &mut a,
            &json!({"id": r["id"], "status": 200, "result": rows}),
        );
        events.extend(ev);
        queries.extend(out);
    }
    assert_eq!(
        events,
        [Report::Exec(ExecEvent::Accepted {
            client_id: oid(1),
            venue_order_id: "11".into(),
            time_ms: 5
        })]
    );
    // Order 2 is not open any more: ask what became of it.
    assert_eq!(queries.len(), 1);
    let q: Value = serde_json::from_str(&queries[0].text).unwrap();
    assert_eq!(q["method"], "order.status");
    assert_eq!(q["params"]["origClientOrderId"], oid(2).encode());
    assert_signed(&q);
    let (ev, _) = feed(
        &mut a,
        &json!({"id": q["id"], "status": 200, "result": {"symbol": "BTCUSDT", "orderId": 12,
                "clientOrderId": oid(2).encode(), "status": "CANCELED", "updateTime": 9}}),
    );
    assert_eq!(
        ev,
        [
            Report::Exec(ExecEvent::Accepted {
                client_id: oid(2),
                venue_order_id: "12".into(),
                time_ms: 9
            }),
            Report::Exec(ExecEvent::Canceled {
                client_id: oid(2),
                time_ms: 9
            })
        ]
    );
    assert_eq!(a.stats().foreign_events, 1);
}

#[test]
fn in_flight_cancel_on_close_is_reported_rejected_for_retry() {
    let mut a = adapter();
    submit(
        &mut a,
        Command::Cancel {
            cancel_id: ClientId::cancel(EPOCH, oid(1).key, 0),
            orig: oid(1),
            instrument: BTC,
        },
    );
    let mut ev = Vec::new();
    a.on_close(0, now(1), &mut ev);
    assert!(matches!(
        ev[0],
        Report::Exec(ExecEvent::CancelRejected {
            reason: Reason::VenueDown,
            ..
        })
    ));
}

#[test]
fn server_shutdown_asks_for_reconnect_and_termination_resubscribes() {
    let mut a = adapter();
    let (ev, _) = feed(&mut a, &fixture("shutdown"));
    // Still up: the driver opens the new connection before this one closes.
    assert!(matches!(
        ev.as_slice(),
        [Report::Venue(VenueStatus {
            state: VenueState::Up,
            ..
        })]
    ));
    assert!(a.wants_reconnect());
    a.on_open(0, now(1), &mut Vec::new());
    assert!(!a.wants_reconnect());

    let (ev, out) = feed(&mut a, &fixture("terminated"));
    assert!(ev.is_empty());
    assert_eq!(out.len(), 1);
    let req: Value = serde_json::from_str(&out[0].text).unwrap();
    assert_eq!(req["method"], "userDataStream.subscribe.signature");
    assert_signed(&req);
}

#[test]
fn revoked_key_halts() {
    let mut a = adapter();
    let (ev, _) = feed(&mut a, &fixture("revoked"));
    assert!(matches!(
        ev.as_slice(),
        [Report::Venue(VenueStatus { state: VenueState::Halted, text, .. })] if text.contains("-2015")
    ));
}

// ------------------------------------------------------------- user data

#[test]
fn new_report_and_ack_give_one_accepted() {
    // NEW first, then the ACK.
    let mut a = adapter();
    let req = place(&mut a, order(oid(1), ETHBTC, Side::Buy, 10_264_410, 10_000));
    let new = with_ids(fixture("new")["event"].clone(), &oid(1).encode(), "");
    let (ev, _) = feed(&mut a, &wrap(new));
    assert_eq!(
        ev,
        [Report::Exec(ExecEvent::Accepted {
            client_id: oid(1),
            venue_order_id: "4293153".into(),
            time_ms: 1_499_405_658_657
        })]
    );
    let mut ack = fixture("ack");
    ack["id"] = req["id"].clone();
    let (ev, _) = feed(&mut a, &ack);
    assert!(ev.is_empty());

    // ACK first, then NEW.
    let mut a = adapter();
    let req = place(&mut a, order(oid(1), ETHBTC, Side::Buy, 10_264_410, 10_000));
    let mut ack = fixture("ack");
    ack["id"] = req["id"].clone();
    let (ev, _) = feed(&mut a, &ack);
    assert_eq!(
        ev,
        [Report::Exec(ExecEvent::Accepted {
            client_id: oid(1),
            venue_order_id: "12569099453".into(),
            time_ms: 1_660_801_715_639
        })]
    );
    let new = with_ids(fixture("new")["event"].clone(), &oid(1).encode(), "");
    let (ev, _) = feed(&mut a, &wrap(new));
    assert!(ev.is_empty());
}

#[test]
fn trade_report_is_a_fill_at_instrument_scales() {
    let mut a = adapter();
    let mut o = order(oid(1), LTCBNB, Side::Buy, 0, 6_000);
    o.ord_type = OrdType::Market;
    place(&mut a, o);
    let trade = with_ids(fixture("trade"), &oid(1).encode(), "");
    let (ev, _) = feed(&mut a, &wrap(trade));
    assert_eq!(
        ev,
        [
            // No NEW or ACK seen yet: Accepted precedes the first fill.
            Report::Exec(ExecEvent::Accepted {
                client_id: oid(1),
                venue_order_id: "32".into(),
                time_ms: 1_719_467_634_105
            }),
            Report::Exec(ExecEvent::Fill {
                client_id: oid(1),
                trade_id: "7".into(),
                last_qty: 2_000,
                last_price: 1_000_000,
                fee: WideDecimal::parse("0.00100000").unwrap(),
                fee_asset: "BNB".into(),
                time_ms: 1_719_467_634_105,
                is_maker: false,
            })
        ]
    );
}

#[test]
fn documented_market_order_sequence() {
    let mut a = adapter();
    let mut o = order(oid(9), LTCBNB, Side::Buy, 0, 6_000);
    o.ord_type = OrdType::Market;
    place(&mut a, o);
    let mut events = Vec::new();
    for e in fixture("sequence").as_array().unwrap() {
        let e = if e["e"] == "executionReport" {
            with_ids(e.clone(), &oid(9).encode(), "")
        } else {
            e.clone()
        };
        events.extend(feed(&mut a, &wrap(e)).0);
    }
    let fills: Vec<(String, i64)> = events
        .iter()
        .filter_map(|e| match e {
            Report::Exec(ExecEvent::Fill {
                trade_id, last_qty, ..
            }) => Some((trade_id.clone(), *last_qty)),
            _ => None,
        })
        .collect();
    assert_eq!(fills, [("7".to_string(), 2_000), ("8".to_string(), 2_000)]);
    assert!(matches!(
        events[0],
        Report::Exec(ExecEvent::Accepted { .. })
    ));
    assert!(matches!(events[1], Report::Exec(ExecEvent::Fill { .. })));
    assert!(matches!(events[2], Report::Exec(ExecEvent::Fill { .. })));
    assert_eq!(
        events[3],
        Report::Exec(ExecEvent::Expired {
            client_id: oid(9),
            time_ms: 1_719_467_634_105
        })
    );
    assert_eq!(events.len(), 4);
    // The order is finished: a late ACK or a replayed EXPIRED adds nothing.
    let last = with_ids(fixture("sequence")[3].clone(), &oid(9).encode(), "");
    assert!(feed(&mut a, &wrap(last)).0.is_empty());
}

#[test]
fn canceled_report_maps_back_through_orig_id() {
    let mut a = adapter();
    place(&mut a, order(oid(1), ETHBTC, Side::Buy, 10_264_410, 10_000));
    let cancel_id = ClientId::cancel(EPOCH, oid(1).key, 0);
    let mut e = with_ids(
        fixture("new")["event"].clone(),
        &cancel_id.encode(),
        &oid(1).encode(),
    );
    e["x"] = json!("CANCELED");
    e["X"] = json!("CANCELED");
    let (ev, _) = feed(&mut a, &wrap(e.clone()));
    assert_eq!(
        ev,
        [Report::Exec(ExecEvent::Canceled {
            client_id: oid(1),
            time_ms: 1_499_405_658_657
        })]
    );
    // A replay of the same cancel is stale.
    assert!(feed(&mut a, &wrap(e)).0.is_empty());
    assert_eq!(a.stats().stale_events, 1);
}

#[test]
fn expired_and_rejected_reports() {
    let mut a = adapter();
    for n in 1..=3 {
        place(&mut a, order(oid(n), ETHBTC, Side::Buy, 10_264_410, 10_000));
    }
    let base = fixture("new")["event"].clone();
    let mut stp = with_ids(base.clone(), &oid(1).encode(), "");
    stp["x"] = json!("TRADE_PREVENTION");
    stp["X"] = json!("EXPIRED_IN_MATCH");
    let mut rej = with_ids(base.clone(), &oid(2).encode(), "");
    rej["x"] = json!("REJECTED");
    rej["X"] = json!("REJECTED");
    rej["r"] = json!("WOULD_MATCH_IMMEDIATELY");
    let mut ioc = with_ids(base, &oid(3).encode(), "");
    ioc["x"] = json!("EXPIRED");
    ioc["X"] = json!("EXPIRED");
    let mut events = Vec::new();
    for e in [stp, rej, ioc] {
        events.extend(feed(&mut a, &wrap(e)).0);
    }
    let t = 1_499_405_658_657;
    assert_eq!(
        events,
        [
            Report::Exec(ExecEvent::Expired {
                client_id: oid(1),
                time_ms: t
            }),
            Report::Exec(ExecEvent::Rejected {
                client_id: oid(2),
                reason: Reason::WouldTakeLiquidity,
                code: 0,
                text: "WOULD_MATCH_IMMEDIATELY".into()
            }),
            Report::Exec(ExecEvent::Expired {
                client_id: oid(3),
                time_ms: t
            }),
        ]
    );
}

#[test]
fn duplicate_trade_is_counted_once() {
    let mut a = adapter();
    place(&mut a, order(oid(1), LTCBNB, Side::Buy, 1_000_000, 6_000));
    let trade = wrap(with_ids(fixture("trade"), &oid(1).encode(), ""));
    let first = feed(&mut a, &trade).0;
    assert_eq!(first.len(), 2);
    assert!(feed(&mut a, &trade).0.is_empty());
    assert_eq!(a.stats().duplicate_fills, 1);
}

#[test]
fn self_trade_counts_on_both_sides() {
    let mut a = adapter();
    place(&mut a, order(oid(1), LTCBNB, Side::Buy, 1_000_000, 2_000));
    place(&mut a, order(oid(2), LTCBNB, Side::Sell, 1_000_000, 2_000));
    let buy = with_ids(fixture("trade"), &oid(1).encode(), "");
    let mut sell = with_ids(fixture("trade"), &oid(2).encode(), "");
    sell["S"] = json!("SELL");
    sell["i"] = json!(33);
    sell["m"] = json!(true);
    let mut fills = Vec::new();
    for e in [buy, sell] {
        fills.extend(
            feed(&mut a, &wrap(e))
                .0
                .into_iter()
                .filter(|e| matches!(e, Report::Exec(ExecEvent::Fill { .. }))),
        );
    }
    assert_eq!(fills.len(), 2);
    assert!(
        matches!(&fills[1], Report::Exec(ExecEvent::Fill { client_id, is_maker: true, trade_id, .. })
        if *client_id == oid(2) && trade_id == "7")
    );
    assert_eq!(a.stats().duplicate_fills, 0);
}

#[test]
fn off_scale_fill_is_kept_rounded_and_counted() {
    let mut a = adapter();
    place(&mut a, order(oid(1), LTCBNB, Side::Buy, 1_000_000, 6_000));
    let mut t = with_ids(fixture("trade"), &oid(1).encode(), "");
    t["L"] = json!("1.00000050");
    t["l"] = json!("2.0015");
    let ev = feed(&mut a, &wrap(t)).0;
    assert!(matches!(
        ev.last(),
        Some(Report::Exec(ExecEvent::Fill {
            last_price: 1_000_000,
            last_qty: 2_002,
            ..
        }))
    ));
    assert_eq!(a.stats().off_scale_fills, 1);
}

#[test]
fn foreign_and_other_epoch_ids_are_ignored_and_counted() {
    let mut a = adapter();
    // The doc sample's own id ("mUvoqJxFIILMdfAW5iGSOW") is not ours.
    assert!(feed(&mut a, &fixture("new")).0.is_empty());
    assert_eq!(a.stats().foreign_events, 1);
    let old = ClientId::order(EPOCH - 1, oid(1).key);
    let e = with_ids(fixture("new")["event"].clone(), &old.encode(), "");
    assert!(feed(&mut a, &wrap(e)).0.is_empty());
    assert_eq!(a.stats().other_epoch_events, 1);
    // Balance events are not order events.
    assert!(feed(&mut a, &fixture("account")).0.is_empty());
}

// ---------------------------------------------------------------- errors

#[test]
fn place_errors_map_to_reasons_with_venue_text_verbatim() {
    let cases: [(u16, i64, &str, Reason); 9] = [
        (400, -1013, "Filter failure: LOT_SIZE", Reason::VenueFilter),
        (
            400,
            -2010,
            "Order would immediately match and take.",
            Reason::WouldTakeLiquidity,
        ),
        (
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
            Reason::VenueTimestamp,
        ),
        (
            400,
            -1022,
            "Signature for this request is not valid.",
            Reason::VenueAuth,
        ),
        (400, -2014, "API-key format invalid.", Reason::VenueAuth),
        (
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
            Reason::VenueAuth,
        ),
        (
            429,
            -1015,
            "Too many new orders; current limit is 1 orders per 10 SECOND.",
            Reason::VenueRateLimited,
        ),
        (400, -1121, "Invalid symbol.", Reason::VenueRejected),
        (400, -2010, "Duplicate order sent.", Reason::VenueRejected),
    ];
    for (i, (status, code, msg, reason)) in cases.into_iter().enumerate() {
        let mut a = adapter();
        let id = oid(i as u64);
        let req = place(&mut a, order(id, BTC, Side::Buy, 100, 1_000));
        let (ev, out) = feed(&mut a, &error_response(&req, status, code, msg));
        assert_eq!(
            ev,
            [Report::Exec(ExecEvent::Rejected {
                client_id: id,
                reason,
                code,
                text: msg.into()
            })],
            "{code} {msg}"
        );
        // A timestamp rejection resyncs the clock at once.
        assert_eq!(out.len(), usize::from(code == -1021), "{code}");
    }

    // The documented error samples, answering our requests.
    for (name, reason) in [
        ("error", Reason::VenueInsufficientBalance),
        ("banned", Reason::VenueRateLimited),
    ] {
        let mut a = adapter();
        let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
        let mut f = fixture(name);
        let err = f["error"].clone();
        f["id"] = req["id"].clone();
        let (ev, _) = feed(&mut a, &f);
        assert_eq!(
            ev,
            [Report::Exec(ExecEvent::Rejected {
                client_id: oid(1),
                reason,
                code: err["code"].as_i64().unwrap(),
                text: err["msg"].as_str().unwrap().into()
            })]
        );
    }
}

#[test]
fn unknown_outcome_is_queried_not_rejected() {
    let mut a = adapter();
    let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    let (ev, out) = feed(
        &mut a,
        &error_response(
            &req,
            400,
            -1007,
            "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        ),
    );
    assert!(ev.is_empty());
    assert_eq!(out.len(), 1);
    let q: Value = serde_json::from_str(&out[0].text).unwrap();
    assert_eq!(q["method"], "order.status");
    assert_signed(&q);
    let (ev, _) = feed(
        &mut a,
        &error_response(&q, 400, -2013, "Order does not exist."),
    );
    assert!(matches!(
        ev.as_slice(),
        [Report::Exec(ExecEvent::Rejected { client_id, code: -2013, .. })] if *client_id == oid(1)
    ));

    // A 5xx likewise; here the order turns out to be live.
    let req = place(&mut a, order(oid(2), BTC, Side::Buy, 100, 1_000));
    let (ev, out) = feed(
        &mut a,
        &error_response(&req, 503, -1000, "Service unavailable"),
    );
    assert!(ev.is_empty());
    let q: Value = serde_json::from_str(&out[0].text).unwrap();
    let (ev, _) = feed(
        &mut a,
        &json!({"id": q["id"], "status": 200, "result": {"symbol": "BTCUSDT", "orderId": 5,
                "clientOrderId": oid(2).encode(), "status": "NEW", "updateTime": 3}}),
    );
    assert!(matches!(
        ev.as_slice(),
        [Report::Exec(ExecEvent::Accepted { client_id, .. })] if *client_id == oid(2)
    ));
}

#[test]
fn cancel_errors_are_cancel_rejected_and_success_waits_for_the_stream() {
    let mut a = adapter();
    let cancel = Command::Cancel {
        cancel_id: ClientId::cancel(EPOCH, oid(1).key, 0),
        orig: oid(1),
        instrument: BTC,
    };
    let req = submit(&mut a, cancel);
    let (ev, _) = feed(
        &mut a,
        &error_response(&req, 400, -2011, "Unknown order sent."),
    );
    assert_eq!(
        ev,
        [Report::Exec(ExecEvent::CancelRejected {
            client_id: oid(1),
            reason: Reason::VenueUnknownOrder,
            code: -2011,
            text: "Unknown order sent.".into()
        })]
    );
    let req = submit(&mut a, cancel);
    let mut ok = fixture("cancel_ok");
    ok["id"] = req["id"].clone();
    assert!(feed(&mut a, &ok).0.is_empty());
}

#[test]
fn garbage_frames_are_errors_not_panics() {
    let mut a = adapter();
    let cases: [&[u8]; 12] = [
        b"",
        b"not json",
        b"{",
        b"[]",
        b"{}",
        b"null",
        b"\xff\xfe\x00",
        b"{\"id\":1,\"status\":200,\"result\":{}}{",
        b"{\"subscriptionId\":0,\"event\":{\"e\":\"executionReport\",\"s\":\"BTCUSDT\"}}",
        b"{\"subscriptionId\":0,\"event\":{\"e\":\"executionReport\",\"s\":\"BTCUSDT\",\"c\":\"o7-3-1\",\"x\":\"TRADE\",\"X\":\"FILLED\",\"i\":1,\"T\":1,\"t\":1,\"m\":false,\"l\":\"1e3\",\"L\":\"1\",\"n\":\"0\"}}",
        b"{\"subscriptionId\":0,\"event\":{\"e\":5}}",
        b"{\"id\":1,\"status\":\"x\"}",
    ];
    for c in cases {
        match feed_raw(&mut a, c) {
            Err(VenueError::MalformedFrame { venue, detail }) => {
                assert_eq!(venue, VenueId::BinanceSpot);
                assert!(!detail.is_empty());
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(c)),
        }
    }
    // Missing fields are named.
    let err = feed_raw(
        &mut a,
        b"{\"subscriptionId\":0,\"event\":{\"e\":\"executionReport\",\"s\":\"BTCUSDT\"}}",
    )
    .unwrap_err();
    assert!(err.to_string().contains("`x`"), "{err}");
    // Deep nesting and huge numbers do not panic either.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(feed_raw(&mut a, deep.as_bytes()).is_err());
    let _ = feed_raw(
        &mut a,
        b"{\"id\":99999999999999999999999,\"status\":200,\"result\":{}}",
    );
}
