//! The Binance Spot adapter driven sans-IO: commands and documented frames
//! in, frames and events out. No sockets.

use ordergate_core::decimal::WideDecimal;
use ordergate_core::ids::{ClientId, Namespace, OrderKey, VenueId};
use ordergate_core::instrument::{Category, Instrument};
use ordergate_core::model::{flags, OrdType, Reason, Side, TimeInForce, VenueState};
use ordergate_core::venue::binance::{sign, BinanceSpot, BinanceSpotConfig, Phase, REST, WS};
use ordergate_core::venue::{
    Command, ConnRole, Cost, ExecEvent, HttpMethod, HttpResponse, Now, OrderRequest, Outbox,
    Payload, Report, Transmit, Transport, VenueError, VenueOutput, VenueProtocol, VenueStatus,
};
use serde_json::{json, Value};

const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const NS: Namespace = Namespace::new(1234, 7);
/// The local time `feed` hands the adapter frames at.
const FEED_AT: u64 = 1_700_000_000_500;
/// The venue clock's bias into the past (`clock::DEFAULT_BIAS_MS`).
const BIAS_MS: u64 = ordergate_core::clock::DEFAULT_BIAS_MS;

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

fn config() -> BinanceSpotConfig {
    BinanceSpotConfig {
        ws_url: "wss://ws-api.binance.com:443/ws-api/v3".into(),
        rest_url: None,
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
        namespace: NS,
    }
}

/// An adapter that was never connected.
fn fresh() -> BinanceSpot {
    BinanceSpot::new(config())
}

/// An adapter whose connection is open, clock-synced and subscribed:
/// ready for orders.
fn adapter() -> BinanceSpot {
    let mut a = fresh();
    let out = open(&mut a, 1_700_000_000_000);
    let sub = json_of(out.last().unwrap());
    assert_eq!(sub["method"], "userDataStream.subscribe.signature");
    feed(
        &mut a,
        &json!({"id": sub["id"], "status": 200, "result": {"subscriptionId": 0}}),
    );
    assert_eq!(a.phase(), Phase::Ready);
    a
}

/// The request JSON of a WebSocket transmit.
fn json_of(t: &Transmit) -> Value {
    serde_json::from_str(t.text().expect("a WebSocket transmit")).expect("frame is JSON")
}

/// What the desk hears of an adapter's output (what is for the session
/// alone, reconnects and rate-limit feedback, left out).
fn reports(events: &[VenueOutput]) -> Vec<Report> {
    events
        .iter()
        .filter_map(|e| match e {
            VenueOutput::Exec(x) => Some(Report::Exec(x.clone())),
            VenueOutput::Status(s) => Some(Report::Venue(s.clone())),
            VenueOutput::Reconnect(_)
            | VenueOutput::Usage { .. }
            | VenueOutput::Backoff { .. }
            | VenueOutput::CloseConnection { .. } => None,
        })
        .collect()
}

fn now(ms: u64) -> Now {
    Now {
        mono_ns: ms * 1_000_000,
        wall_ms: ms,
    }
}

fn oid(order: u64) -> ClientId {
    ClientId::order(
        NS,
        OrderKey {
            strategy: 3,
            order_id: order,
        },
    )
}

fn order(client_id: ClientId, instrument: u32, side: Side, price: i64, qty: i64) -> OrderRequest {
    OrderRequest {
        queued_ns: 1_700_000_000_000 * 1_000_000,
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
    let mut out = Outbox::new();
    a.submit(&cmd, now(1_700_000_000_000), &mut out)
        .expect("submit");
    assert_eq!(out.transmits.len(), 1);
    assert_eq!(out.transmits[0].conn, WS);
    assert_eq!(
        out.transmits[0].cost,
        a.cost(&cmd),
        "the transmit carries the command's cost"
    );
    assert!(out.events.is_empty());
    json_of(&out.transmits[0])
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

/// Feeds one frame; returns what the desk hears and the transmits.
fn feed(a: &mut BinanceSpot, frame: &Value) -> (Vec<Report>, Vec<Transmit>) {
    let out = feed_out(a, frame);
    (reports(&out.events), out.transmits)
}

fn feed_out(a: &mut BinanceSpot, frame: &Value) -> Outbox {
    let mut bytes = serde_json::to_vec(frame).expect("serialize");
    let mut out = Outbox::new();
    a.on_frame(WS, &mut bytes, now(FEED_AT), &mut out)
        .unwrap_or_else(|e| panic!("frame {frame}: {e}"));
    out
}

/// Opens the connection the way the venue answers it: the adapter asks the
/// server time first, and sends its signed requests (subscription) as soon
/// as the time has come back. Returns every transmit.
fn open(a: &mut BinanceSpot, at: u64) -> Vec<Transmit> {
    let mut out = Outbox::new();
    a.on_connecting(WS, now(at), &mut out);
    a.on_open(WS, now(at), &mut out);
    let time = json_of(&out.transmits[0]);
    assert_eq!(time["method"], "time");
    assert_eq!(a.phase(), Phase::Connecting);
    let mut all = out.transmits;
    // The venue's clock agrees with ours: the answer (fed at `FEED_AT`)
    // carries the round trip's midpoint.
    let server = (at + FEED_AT) / 2;
    let (_, more) = feed(
        a,
        &json!({"id": time["id"], "status": 200, "result": {"serverTime": server}}),
    );
    assert_eq!(a.phase(), Phase::ClockSynced);
    all.extend(more);
    all
}

fn feed_raw(a: &mut BinanceSpot, bytes: &[u8]) -> Result<Vec<Report>, VenueError> {
    let mut bytes = bytes.to_vec();
    let mut out = Outbox::new();
    a.on_frame(WS, &mut bytes, now(1), &mut out)
        .map(|_| reports(&out.events))
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
    assert_eq!(conns[0].transport, Transport::WebSocket);
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
    // Signed in venue time (here the same as ours), a little in the past.
    assert_eq!(p["timestamp"], 1_700_000_000_000u64 - BIAS_MS);
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
    let cancel_id = ClientId::cancel(NS, oid(1).key, 0);
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
    let mut out = Outbox::new();
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
        cancel_id: ClientId::cancel(NS, oid(1).key, 0),
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
fn open_walks_the_phases_and_reports_up_once_ready() {
    let mut a = fresh();
    assert_eq!(a.phase(), Phase::Closed);
    assert_eq!(a.next_timer(), None);
    let mut out = Outbox::new();
    a.on_connecting(WS, now(1_000), &mut out);
    assert!(matches!(
        reports(&out.events).as_slice(),
        [Report::Venue(VenueStatus {
            state: VenueState::Connecting,
            ..
        })]
    ));
    out.clear();
    a.on_open(WS, now(1_000), &mut out);
    assert_eq!(a.phase(), Phase::Connecting);
    // Nothing signed before the venue's time is known.
    let methods: Vec<Value> = out
        .transmits
        .iter()
        .map(|t| json_of(t)["method"].clone())
        .collect();
    assert_eq!(methods, ["time"]);
    assert_eq!(
        out.transmits[0].cost,
        Cost {
            weight: 1,
            orders: 0
        }
    );
    assert!(out.events.is_empty(), "not Up yet");
    // Orders are refused until ready, with the state that says why.
    let place = Command::Place(order(oid(1), BTC, Side::Buy, 100, 1_000));
    let err = a
        .submit(&place, now(1_001), &mut Outbox::new())
        .unwrap_err();
    assert!(
        matches!(
            err,
            VenueError::NotReady {
                state: VenueState::Connecting,
                ..
            }
        ),
        "{err}"
    );

    // The documented time response, answering our request: the
    // subscription goes out at once, no timer in between.
    let mut t = fixture("time");
    t["id"] = json_of(&out.transmits[0])["id"].clone();
    let o = feed_out(&mut a, &t);
    assert_eq!(a.phase(), Phase::ClockSynced);
    assert_eq!(o.transmits.len(), 1);
    let sub = json_of(&o.transmits[0]);
    assert_eq!(sub["method"], "userDataStream.subscribe.signature");
    assert_eq!(
        o.transmits[0].cost,
        Cost {
            weight: 2,
            orders: 0
        }
    );
    assert_signed(&sub);
    assert_eq!(sub["params"].as_object().unwrap().len(), 4);
    // Only the venue's counts (its `rateLimits`), for the limiter.
    assert!(
        o.events
            .iter()
            .all(|e| matches!(e, VenueOutput::Usage { .. })),
        "{:?}",
        o.events
    );

    let mut s = fixture("subscribed");
    s["id"] = sub["id"].clone();
    let (ev, _) = feed(&mut a, &s);
    // First connection: nothing to reconcile, so ready at once.
    assert_eq!(a.phase(), Phase::Ready);
    assert!(matches!(
        ev.as_slice(),
        [Report::Venue(VenueStatus { state: VenueState::Up, text, .. })] if text.contains("subscribed")
    ));
    let mut po = Outbox::new();
    a.submit(&place, now(1_002), &mut po).unwrap();
    let pr = json_of(&po.transmits[0]);
    feed(
        &mut a,
        &json!({"id": pr["id"], "status": 200, "result": {"symbol": "BTCUSDT", "orderId": 1,
                "clientOrderId": pr["params"]["newClientOrderId"], "transactTime": 1}}),
    );

    // Timer: clock resync once the interval has passed, costed.
    let mut o3 = Outbox::new();
    let later = Now {
        mono_ns: a.next_timer().unwrap(),
        wall_ms: 40_000,
    };
    a.on_timer(later, &mut o3);
    assert_eq!(o3.transmits.len(), 1);
    assert_eq!(json_of(&o3.transmits[0])["method"], "time");
    assert_eq!(o3.transmits[0].cost.weight, 1);

    // Reconnect: Down once, then the phases again, and open orders listed
    // per configured symbol (in config order) before Up.
    let mut closed = Outbox::new();
    a.on_close(WS, "reset by peer", now(2_000), &mut closed);
    let down: Vec<Report> = reports(&closed.events);
    assert!(matches!(
        down.as_slice(),
        [Report::Venue(VenueStatus { state: VenueState::Down, text, .. })] if text.contains("reset by peer")
    ));
    assert_eq!(a.phase(), Phase::Closed);
    assert_eq!(a.next_timer(), None);
    let out = open(&mut a, 3_000);
    let sub = json_of(out.last().unwrap());
    let o = feed_out(
        &mut a,
        &json!({"id": sub["id"], "status": 200, "result": {"subscriptionId": 1}}),
    );
    assert_eq!(a.phase(), Phase::Subscribed);
    assert!(
        reports(&o.events).is_empty(),
        "not Up before reconciliation"
    );
    let listings: Vec<(Value, Cost)> = o.transmits.iter().map(|t| (json_of(t), t.cost)).collect();
    let symbols: Vec<&str> = listings
        .iter()
        .map(|(r, _)| r["params"]["symbol"].as_str().unwrap())
        .collect();
    // Only the symbols with tracked orders.
    assert_eq!(symbols, ["BTCUSDT"]);
    let mut last = Vec::new();
    for (r, cost) in &listings {
        assert_eq!(r["method"], "openOrders.status");
        assert_eq!(
            *cost,
            Cost {
                weight: 6,
                orders: 0
            }
        );
        assert_signed(r);
        last = feed(&mut a, &json!({"id": r["id"], "status": 200, "result": []})).0;
    }
    assert_eq!(a.phase(), Phase::Ready);
    assert!(matches!(
        last.as_slice(),
        [Report::Venue(VenueStatus {
            state: VenueState::Up,
            ..
        })]
    ));
}

#[test]
fn venue_clock_skew_is_handled_inside_the_adapter() {
    // The venue's clock is 30 s ahead of ours. The driver passes only raw
    // local time; the adapter's own clock turns it into venue time.
    let mut a = fresh();
    let local = 1_700_000_000_000u64;
    let mut out = Outbox::new();
    a.on_open(WS, now(local), &mut out);
    let time = json_of(&out.transmits[0]);
    let answer_at = Now {
        mono_ns: local * 1_000_000 + 10_000_000,
        wall_ms: local + 10,
    };
    let mut bytes = serde_json::to_vec(
        &json!({"id": time["id"], "status": 200, "result": {"serverTime": local + 30_005}}),
    )
    .unwrap();
    let mut o = Outbox::new();
    a.on_frame(WS, &mut bytes, answer_at, &mut o).unwrap();
    assert_eq!(a.clock().offset_ms(), Some(30_000));
    let sub = json_of(&o.transmits[0]);
    // Venue time at the answer, less the clock's small bias into the past.
    let ts = sub["params"]["timestamp"].as_u64().unwrap();
    let venue_now = local + 10 + 30_000;
    assert!(
        ts <= venue_now && ts + 10 >= venue_now,
        "{ts} vs {venue_now}"
    );
    assert_signed(&sub);
    let o = feed_out(
        &mut a,
        &json!({"id": sub["id"], "status": 200, "result": {}}),
    );
    assert!(matches!(
        reports(&o.events).as_slice(),
        [Report::Venue(VenueStatus {
            state: VenueState::Up,
            ..
        })]
    ));
    // Orders too, at the raw local time the driver gives.
    let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    let ts = req["params"]["timestamp"].as_u64().unwrap();
    assert!(ts > 1_700_000_000_000 + 29_000, "{ts}");
    feed(
        &mut a,
        &json!({"id": req["id"], "status": 200, "result": {"symbol": "BTCUSDT", "orderId": 1,
                "clientOrderId": oid(1).encode(), "transactTime": 1}}),
    );
    // A venue behind us: the next sample with a shorter round trip wins.
    let mut t = Outbox::new();
    a.on_timer(
        Now {
            mono_ns: a.next_timer().unwrap(),
            wall_ms: local + 40_000,
        },
        &mut t,
    );
    let time = json_of(&t.transmits[0]);
    let mut bytes = serde_json::to_vec(
        &json!({"id": time["id"], "status": 200, "result": {"serverTime": local + 40_000 - 2_000}}),
    )
    .unwrap();
    a.on_frame(
        WS,
        &mut bytes,
        Now {
            mono_ns: 0,
            wall_ms: local + 40_000,
        },
        &mut Outbox::new(),
    )
    .unwrap();
    assert_eq!(a.clock().offset_ms(), Some(-2_000));
}

#[test]
fn every_transmit_carries_its_documented_cost() {
    let mut a = adapter();
    // Place and cancel: checked against `cost` in `submit`; the values:
    let cmd = Command::Place(order(oid(1), BTC, Side::Buy, 100, 1_000));
    assert_eq!(
        a.cost(&cmd),
        Cost {
            weight: 1,
            orders: 1
        }
    );
    let req = submit(&mut a, cmd);
    let cancel = Command::Cancel {
        cancel_id: ClientId::cancel(NS, oid(1).key, 0),
        orig: oid(1),
        instrument: BTC,
    };
    assert_eq!(
        a.cost(&cancel),
        Cost {
            weight: 1,
            orders: 0
        }
    );
    submit(&mut a, cancel);
    // The adapter's own queries: order.status after an unknown outcome.
    feed(
        &mut a,
        &error_response(&req, 503, -1000, "Service unavailable"),
    );
    let (_, out) = tick(&mut a, FEED_AT + 1_000);
    assert_eq!(json_of(&out[0])["method"], "order.status");
    assert_eq!(
        out[0].cost,
        Cost {
            weight: 4,
            orders: 0
        }
    );
    // A -1021 resyncs the clock: a costed `time`.
    let req = place(&mut a, order(oid(2), BTC, Side::Buy, 100, 1_000));
    let (_, out) = feed(
        &mut a,
        &error_response(
            &req,
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ),
    );
    assert_eq!(json_of(&out[0])["method"], "time");
    assert_eq!(
        out[0].cost,
        Cost {
            weight: 1,
            orders: 0
        }
    );
    // Resubscription after the stream ends.
    let (_, out) = feed(&mut a, &fixture("terminated"));
    assert_eq!(
        out[0].cost,
        Cost {
            weight: 2,
            orders: 0
        }
    );
    for t in &out {
        assert!(t.cost.weight > 0, "{t:?}");
    }
}

/// An adapter with a REST connection beside the WebSocket, both open and
/// the WebSocket ready.
fn with_rest() -> BinanceSpot {
    let mut a = BinanceSpot::new(BinanceSpotConfig {
        rest_url: Some("https://api.binance.com".into()),
        ..config()
    });
    let conns = a.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(
        (conns[1].transport, conns[1].role),
        (Transport::Http, ConnRole::Rest)
    );
    let mut out = Outbox::new();
    a.on_connecting(REST, now(1), &mut out);
    a.on_open(REST, now(1), &mut out);
    assert!(out.transmits.is_empty(), "REST needs nothing at open");
    let sub = open(&mut a, 1);
    let sub = json_of(sub.last().unwrap());
    feed(
        &mut a,
        &json!({"id": sub["id"], "status": 200, "result": {}}),
    );
    assert_eq!(a.phase(), Phase::Ready);
    a
}

/// Runs the clock-sync timer; returns its one transmit.
fn clock_sync(a: &mut BinanceSpot) -> Transmit {
    let mut out = Outbox::new();
    let at = a.next_timer().unwrap();
    a.on_timer(
        Now {
            mono_ns: at,
            wall_ms: at / 1_000_000,
        },
        &mut out,
    );
    assert_eq!(out.transmits.len(), 1);
    out.transmits.pop().unwrap()
}

#[test]
fn two_connections_one_ends_and_the_other_keeps_working() {
    let mut a = with_rest();
    // Periodic clock sync goes over REST while it is open, costed, and the
    // response's used weight is read from its headers.
    let t = clock_sync(&mut a);
    assert_eq!(t.conn, REST);
    assert_eq!(
        t.cost,
        Cost {
            weight: 1,
            orders: 0
        }
    );
    let Payload::Http(req) = &t.payload else {
        panic!("{t:?}")
    };
    assert_eq!(
        (req.method, req.path.as_str()),
        (HttpMethod::Get, "/api/v3/time")
    );
    let mut resp = HttpResponse {
        id: req.id,
        status: 200,
        headers: vec![("x-mbx-used-weight-1m".into(), "7".into())],
        body: br#"{"serverTime":1700000000000}"#.to_vec(),
    };
    a.on_http(REST, &mut resp, now(1), &mut Outbox::new())
        .unwrap();
    assert_eq!(a.stats().used_weight_1m, Some(7));
    assert!(a.clock().offset_ms().is_some());

    // REST ends: the venue stays Up, orders still go out on the WebSocket,
    // and the clock sync falls back to it.
    let mut out = Outbox::new();
    a.on_close(REST, "connection reset", now(2), &mut out);
    assert!(
        out.is_empty(),
        "the REST connection's end changes no venue state: {out:?}"
    );
    assert_eq!(a.state(), VenueState::Up);
    place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    let t = clock_sync(&mut a);
    assert_eq!(t.conn, WS);
    assert_eq!(json_of(&t)["method"], "time");

    // REST back; the WebSocket ends: the venue is Down (once) while the
    // REST connection keeps serving the clock sync.
    a.on_open(REST, now(3), &mut Outbox::new());
    let mut out = Outbox::new();
    a.on_close(WS, "closed by venue", now(4), &mut out);
    let downs = reports(&out.events)
        .into_iter()
        .filter(|r| {
            matches!(
                r,
                Report::Venue(VenueStatus {
                    state: VenueState::Down,
                    ..
                })
            )
        })
        .count();
    assert_eq!(downs, 1);
    let mut again = Outbox::new();
    a.on_close(WS, "cannot connect", now(5), &mut again);
    assert!(
        again.events.is_empty(),
        "no second Down: {:?}",
        again.events
    );
    let mut resp = HttpResponse {
        id: 9_999,
        status: 200,
        headers: Vec::new(),
        body: b"{}".to_vec(),
    };
    a.on_http(REST, &mut resp, now(6), &mut Outbox::new())
        .unwrap();
    assert_eq!(a.stats().unmatched_responses, 1);
}

#[test]
fn server_shutdown_switches_connections_without_going_down() {
    let mut a = adapter();
    // An order and a cancel in flight on the old socket.
    let old_place = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    submit(
        &mut a,
        Command::Cancel {
            cancel_id: ClientId::cancel(NS, oid(5).key, 0),
            orig: oid(5),
            instrument: BTC,
        },
    );
    let out = feed_out(&mut a, &fixture("shutdown"));
    assert!(
        out.events.contains(&VenueOutput::Reconnect(WS)),
        "{:?}",
        out.events
    );
    let mut states = Vec::new();
    let note = |out: &Outbox, states: &mut Vec<VenueState>| {
        for r in reports(&out.events) {
            if let Report::Venue(v) = r {
                states.push(v.state);
            }
        }
    };
    note(&out, &mut states);
    // An order during the switch, before the new socket is open: accepted.
    place(&mut a, order(oid(2), BTC, Side::Buy, 100, 1_000));
    let mut o = Outbox::new();
    a.on_connecting(WS, now(10), &mut o);
    a.on_open(WS, now(10), &mut o);
    note(&o, &mut states);
    let time = json_of(&o.transmits[0]);
    assert_eq!(time["method"], "time");
    // And after it opened, while it is still starting up.
    place(&mut a, order(oid(3), BTC, Side::Buy, 100, 1_000));
    let o = feed_out(
        &mut a,
        &json!({"id": time["id"], "status": 200, "result": {"serverTime": 11}}),
    );
    note(&o, &mut states);
    let sub = json_of(&o.transmits[0]);
    let o = feed_out(
        &mut a,
        &json!({"id": sub["id"], "status": 200, "result": {}}),
    );
    note(&o, &mut states);
    assert_eq!(a.phase(), Phase::Subscribed, "reconciling");
    let mut queries = Vec::new();
    for t in &o.transmits {
        let r = json_of(t);
        assert_eq!(r["method"], "openOrders.status");
        let rows = if r["params"]["symbol"] == "BTCUSDT" {
            json!([{"symbol": "BTCUSDT", "orderId": 21, "clientOrderId": oid(2).encode(), "status": "NEW", "updateTime": 5}])
        } else {
            json!([])
        };
        let o = feed_out(
            &mut a,
            &json!({"id": r["id"], "status": 200, "result": rows}),
        );
        note(&o, &mut states);
        queries.extend(o.transmits.iter().map(json_of));
    }
    assert_eq!(a.phase(), Phase::Ready);
    // Orders 1 and 3 were not listed, but their answers are still awaited
    // (on the old socket and the new): nothing is inferred from the
    // listing, nothing is asked yet.
    assert!(queries.is_empty(), "{queries:?}");
    // The old socket drains: its unanswered place becomes Unknown (and is
    // asked about after a back-off); the cancel of an order this adapter
    // does not track cannot be delivered later, so it is CancelRejected.
    let mut o = Outbox::new();
    a.on_drained(WS, now(20), &mut o);
    note(&o, &mut states);
    let ev = reports(&o.events);
    assert!(
        ev.iter().any(|r| matches!(r, Report::Exec(ExecEvent::OutcomeUnknown { client_id, .. }) if *client_id == oid(1))),
        "{ev:?}"
    );
    assert!(ev.iter().any(|r| matches!(r, Report::Exec(ExecEvent::CancelRejected { client_id, reason: Reason::VenueDown, .. }) if *client_id == oid(5))));
    let (_, out) = tick(&mut a, 2_000);
    let asked: Vec<Value> = out
        .iter()
        .map(json_of)
        .filter(|q| q["method"] == "order.status")
        .map(|q| q["params"]["origClientOrderId"].clone())
        .collect();
    assert_eq!(asked, [json!(oid(1).encode())]);
    assert!(old_place["id"].is_u64());
    assert!(!states.is_empty());
    assert!(states.iter().all(|s| *s == VenueState::Up), "{states:?}");
}

#[test]
fn fills_of_live_and_finished_orders_are_deduplicated() {
    let mut a = adapter();
    place(&mut a, order(oid(1), LTCBNB, Side::Buy, 1_000_000, 4_000));
    let seq = fixture("sequence");
    let trade = wrap(with_ids(seq[1].clone(), &oid(1).encode(), ""));
    let expired = wrap(with_ids(seq[3].clone(), &oid(1).encode(), ""));
    assert_eq!(feed(&mut a, &trade).0.len(), 1);
    assert!(
        feed(&mut a, &trade).0.is_empty(),
        "a replay on a live order"
    );
    // The venue counts 4 filled at the end and we saw 2: the final
    // event waits for the missing fill.
    assert!(feed(&mut a, &expired).0.is_empty(), "held");
    let trade2 = wrap(with_ids(seq[2].clone(), &oid(1).encode(), ""));
    let ev = feed(&mut a, &trade2).0;
    assert_eq!(ev.len(), 2, "the fill, then the held expiry: {ev:?}");
    assert!(matches!(ev[1], Report::Exec(ExecEvent::Expired { .. })));
    // After the order finished, a replayed trade still counts once.
    assert!(feed(&mut a, &trade).0.is_empty(), "a replay after the end");
    assert_eq!(a.stats().duplicate_fills, 2);
}

#[test]
fn reconcile_accepts_open_orders_and_queries_the_rest() {
    let mut a = adapter();
    place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    place(&mut a, order(oid(2), BTC, Side::Buy, 100, 1_000));
    a.on_close(WS, "test", now(2), &mut Outbox::new());
    let out = open(&mut a, 3);
    let sub = json_of(out.last().unwrap());
    let (_, out) = feed(
        &mut a,
        &json!({"id": sub["id"], "status": 200, "result": {}}),
    );
    let reqs: Vec<Value> = out.iter().map(json_of).collect();
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
        events.extend(ev.into_iter().filter(|e| matches!(e, Report::Exec(_))));
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
    let q: Value = json_of(&queries[0]);
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
            cancel_id: ClientId::cancel(NS, oid(1).key, 0),
            orig: oid(1),
            instrument: BTC,
        },
    );
    let mut out = Outbox::new();
    a.on_close(WS, "test", now(1), &mut out);
    let ev = reports(&out.events);
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
    let out = feed_out(&mut a, &fixture("shutdown"));
    assert!(out.events.contains(&VenueOutput::Reconnect(WS)));
    let ev = reports(&out.events);
    // Still up: the driver opens the new connection before this one closes.
    assert!(matches!(
        ev.as_slice(),
        [Report::Venue(VenueStatus {
            state: VenueState::Up,
            ..
        })]
    ));
    let out = feed_out(&mut a, &fixture("shutdown"));
    assert!(
        !out.events.contains(&VenueOutput::Reconnect(WS)),
        "asked once per switch"
    );
    // No new orders until the stream is back and reconciled.
    let (ev, out) = feed(&mut a, &fixture("terminated"));
    assert!(
        matches!(
            ev.as_slice(),
            [Report::Venue(VenueStatus {
                state: VenueState::Halted,
                ..
            })]
        ),
        "{ev:?}"
    );
    assert_eq!(out.len(), 1);
    let req: Value = json_of(&out[0]);
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

/// Both the NEW report and the ACK say Accepted: the lifecycle owns order
/// state and ignores the repeat, so the adapter does not suppress it.
#[test]
fn new_report_and_ack_both_say_accepted() {
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
    assert!(
        matches!(ev.as_slice(), [Report::Exec(ExecEvent::Accepted { client_id, .. })] if *client_id == oid(1))
    );

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
    assert!(
        matches!(ev.as_slice(), [Report::Exec(ExecEvent::Accepted { client_id, .. })] if *client_id == oid(1))
    );
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
            // No NEW or ACK seen yet: the fill alone (the lifecycle takes
            // a fill on a pending order as its acceptance).
            Report::Exec(ExecEvent::Fill {
                client_id: oid(1),
                trade_id: "7".into(),
                last_qty: 2_000,
                last_price: 1_000_000,
                fee: WideDecimal::parse("0.00100000").unwrap(),
                fee_asset: "BNB".into(),
                time_ms: 1_719_467_634_105,
                is_maker: false,
                order_filled: false,
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
    let cancel_id = ClientId::cancel(NS, oid(1).key, 0);
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
    assert!(matches!(
        first.as_slice(),
        [Report::Exec(ExecEvent::Fill { .. })]
    ));
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
    let old = ClientId::order(Namespace::new(NS.installation, NS.epoch - 1), oid(1).key);
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
        // Queued long ago: a retryable refusal is not sent again.
        let mut o = order(id, BTC, Side::Buy, 100, 1_000);
        o.queued_ns = 0;
        let req = place(&mut a, o);
        let (ev, out) = feed(&mut a, &error_response(&req, status, code, msg));
        // A rate-limit answer also halts the venue until it passes
        // (checked in `a_429_halts_until_retry_after_then_resumes`).
        let ev: Vec<Report> = ev
            .into_iter()
            .filter(|r| !matches!(r, Report::Venue(s) if s.state == VenueState::Halted && status == 429))
            .collect();
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
        let mut o = order(oid(1), BTC, Side::Buy, 100, 1_000);
        o.queued_ns = 0;
        let req = place(&mut a, o);
        let mut f = fixture(name);
        let err = f["error"].clone();
        f["id"] = req["id"].clone();
        let (ev, _) = feed(&mut a, &f);
        let ev: Vec<Report> = ev
            .into_iter()
            .filter(|r| !matches!(r, Report::Venue(s) if s.state == VenueState::Halted))
            .collect();
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

/// A 429 with `retryAfter`: the session is told to hold everything until
/// then (a Backoff in monotonic time), the venue is Halted meanwhile with
/// the reason, and comes back Up by itself when the time has passed.
#[test]
fn a_429_halts_until_retry_after_then_resumes() {
    let mut a = adapter();
    let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    // The venue's clock agrees with ours (see `open`): retry in 1500 ms.
    let retry_at = FEED_AT + 1_500;
    let mut f = error_response(
        &req,
        429,
        -1003,
        "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
    );
    f["error"]["data"] = json!({"serverTime": FEED_AT, "retryAfter": retry_at});
    let out = feed_out(&mut a, &f);
    let backoff = out.events.iter().find_map(|e| match e {
        VenueOutput::Backoff { until_ns, ban } => Some((*until_ns, *ban)),
        _ => None,
    });
    let (until_ns, ban) = backoff.expect("a Backoff for the session");
    assert!(!ban);
    let wait_ms = (until_ns - FEED_AT * 1_000_000) / 1_000_000;
    assert!((1_500..=1_510).contains(&wait_ms), "{wait_ms}");
    assert_eq!(a.state(), VenueState::Halted);
    assert!(reports(&out.events).iter().any(|r| matches!(r,
        Report::Venue(s) if s.state == VenueState::Halted && s.text.contains("rate limited"))));
    // Not yet: still Halted.
    let mut o = Outbox::new();
    a.on_timer(now(FEED_AT + 1_000), &mut o);
    assert_eq!(a.state(), VenueState::Halted);
    assert!(a.next_timer().is_some_and(|t| t <= until_ns));
    a.on_timer(now(FEED_AT + 1_600), &mut o);
    assert_eq!(a.state(), VenueState::Up);
}

/// A 418 is a ban: the Backoff says so and the text gives the ban's end.
#[test]
fn a_418_ban_says_until_when() {
    let mut a = adapter();
    let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    let mut f = fixture("banned");
    f["id"] = req["id"].clone();
    let out = feed_out(&mut a, &f);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, VenueOutput::Backoff { ban: true, .. })));
    let halted = reports(&out.events)
        .into_iter()
        .find_map(|r| match r {
            Report::Venue(s) if s.state == VenueState::Halted => Some(s.text),
            _ => None,
        })
        .expect("Halted");
    assert!(
        halted.contains("banned") && halted.contains("1659146400000"),
        "{halted}"
    );
}

/// Every response's `rateLimits` reaches the limiter, with the venue's
/// limit; an interval or type we do not know is skipped, never fatal.
#[test]
fn rate_limits_in_responses_are_reported_for_the_limiter() {
    use ordergate_core::limiter::Counts;
    let mut a = adapter();
    let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    let f = json!({
        "id": req["id"], "status": 200,
        "result": {"symbol": "BTCUSDT", "orderId": 9, "clientOrderId": oid(1).encode(), "transactTime": 1},
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 12},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50, "count": 3},
            {"rateLimitType": "SOMETHING_NEW", "interval": "MINUTE", "intervalNum": 1, "limit": 1, "count": 1},
            {"rateLimitType": "ORDERS", "interval": "FORTNIGHT", "intervalNum": 1, "limit": 1, "count": 1}
        ]
    });
    let out = feed_out(&mut a, &f);
    let usage: Vec<_> = out
        .events
        .iter()
        .filter_map(|e| match e {
            VenueOutput::Usage {
                counts,
                window_ms,
                limit,
                count,
            } => Some((*counts, *window_ms, *limit, *count)),
            _ => None,
        })
        .collect();
    assert_eq!(
        usage,
        [
            (Counts::Weight, 60_000, Some(6000), 12),
            (Counts::Orders, 10_000, Some(50), 3)
        ]
    );
}

/// Runs the adapter's timer at `ms` (local wall = mono) and returns what it
/// sent.
fn tick(a: &mut BinanceSpot, ms: u64) -> (Vec<Report>, Vec<Transmit>) {
    let mut out = Outbox::new();
    a.on_timer(now(ms), &mut out);
    (reports(&out.events), out.transmits)
}

fn feed_at(a: &mut BinanceSpot, frame: &Value, ms: u64) -> (Vec<Report>, Vec<Transmit>) {
    let mut bytes = serde_json::to_vec(frame).expect("serialize");
    let mut out = Outbox::new();
    a.on_frame(WS, &mut bytes, now(ms), &mut out)
        .unwrap_or_else(|e| panic!("frame {frame}: {e}"));
    (reports(&out.events), out.transmits)
}

#[test]
fn unknown_outcome_is_unknown_until_the_venue_says() {
    let mut a = adapter();
    let t0 = 1_700_000_000_000;
    let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    let (ev, out) = feed_at(
        &mut a,
        &error_response(
            &req,
            400,
            -1007,
            "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        ),
        t0 + 100,
    );
    // Not a rejection: Unknown, and asked about after a back-off.
    assert!(matches!(
        ev.as_slice(),
        [Report::Exec(ExecEvent::OutcomeUnknown { client_id, .. })] if *client_id == oid(1)
    ));
    assert!(out.is_empty());
    let (_, out) = tick(&mut a, t0 + 400);
    let q: Value = json_of(&out[0]);
    assert_eq!(q["method"], "order.status");
    assert_signed(&q);
    // "Does not exist" before the bound (backend timeout + recvWindow) is
    // not final: asked again later.
    let (ev, out) = feed_at(
        &mut a,
        &error_response(&q, 400, -2013, "Order does not exist."),
        t0 + 450,
    );
    assert!(ev.is_empty() && out.is_empty(), "{ev:?}");
    let (_, out) = tick(&mut a, t0 + 2_000);
    let q = json_of(&out[0]);
    assert_eq!(q["method"], "order.status");
    // Past the bound, it is final.
    let (ev, _) = feed_at(
        &mut a,
        &error_response(&q, 400, -2013, "Order does not exist."),
        t0 + 16_000,
    );
    assert!(matches!(
        ev.as_slice(),
        [Report::Exec(ExecEvent::Rejected { client_id, code: -2013, .. })] if *client_id == oid(1)
    ));
    // ...unless the venue says otherwise later: a late truth is applied.
    let ack = wrap(with_ids(
        fixture("new")["event"].clone(),
        &oid(1).encode(),
        "",
    ));
    let (ev, _) = feed_at(&mut a, &ack, t0 + 17_000);
    assert!(matches!(
        ev.as_slice(),
        [Report::Exec(ExecEvent::Accepted { client_id, .. })] if *client_id == oid(1)
    ));
    assert_eq!(a.stats().late_truths, 1);

    // A 5xx likewise; here the order turns out to be live.
    let req = place(&mut a, order(oid(2), BTC, Side::Buy, 100, 1_000));
    let (ev, _) = feed_at(
        &mut a,
        &error_response(&req, 503, -1000, "Service unavailable"),
        t0 + 20_000,
    );
    assert!(matches!(
        ev.as_slice(),
        [Report::Exec(ExecEvent::OutcomeUnknown { .. })]
    ));
    let (_, out) = tick(&mut a, t0 + 20_500);
    let q: Value = json_of(&out[0]);
    let (ev, _) = feed_at(
        &mut a,
        &json!({"id": q["id"], "status": 200, "result": {"symbol": "BTCUSDT", "orderId": 5,
                "clientOrderId": oid(2).encode(), "status": "NEW", "executedQty": "0.00000000", "updateTime": 3}}),
        t0 + 20_600,
    );
    assert!(matches!(
        ev.as_slice(),
        [Report::Exec(ExecEvent::Accepted { client_id, .. })] if *client_id == oid(2)
    ));
}

#[test]
fn retryable_refusals_are_sent_again_with_the_same_id() {
    let mut a = adapter();
    let t0 = 1_700_000_000_000;
    let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    // -1021: re-sync the clock first, then the same order again.
    let (ev, out) = feed_at(
        &mut a,
        &error_response(
            &req,
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ),
        t0 + 10,
    );
    assert!(ev.is_empty(), "{ev:?}");
    let time = json_of(&out[0]);
    assert_eq!(time["method"], "time");
    feed_at(
        &mut a,
        &json!({"id": time["id"], "status": 200, "result": {"serverTime": t0 + 20}}),
        t0 + 20,
    );
    let (_, out) = tick(&mut a, t0 + 20);
    let again = json_of(&out[0]);
    assert_eq!(again["method"], "order.place");
    assert_eq!(
        again["params"]["newClientOrderId"],
        req["params"]["newClientOrderId"]
    );
    // -1008: later, same id.
    let (ev, _) = feed_at(&mut a, &error_response(&again, 503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes."), t0 + 30);
    assert!(ev.is_empty(), "{ev:?}");
    let (_, out) = tick(&mut a, t0 + 600);
    let third = json_of(&out[0]);
    assert_eq!(
        third["params"]["newClientOrderId"],
        req["params"]["newClientOrderId"]
    );
    // A plain refusal is final.
    let (ev, _) = feed_at(
        &mut a,
        &error_response(
            &third,
            400,
            -2010,
            "Account has insufficient balance for requested action.",
        ),
        t0 + 700,
    );
    assert!(matches!(
        ev.as_slice(),
        [Report::Exec(ExecEvent::Rejected {
            reason: Reason::VenueInsufficientBalance,
            ..
        })]
    ));
}

#[test]
fn missing_fills_are_fetched_before_the_final_event() {
    let mut a = adapter();
    let t0 = 1_700_000_000_000;
    let req = place(&mut a, order(oid(1), LTCBNB, Side::Buy, 1_000_000, 4_000));
    feed_at(
        &mut a,
        &json!({"id": req["id"], "status": 200, "result": {"symbol": "LTCBNB", "orderId": 32, "clientOrderId": oid(1).encode(), "transactTime": 1}}),
        t0 + 5,
    );
    // The second of two trades arrives, saying FILLED with z = both; the
    // first was lost.
    let mut tr = fixture("trade");
    tr["c"] = json!(oid(1).encode());
    tr["t"] = json!(42);
    tr["X"] = json!("FILLED");
    tr["z"] = json!("4.00000000");
    let (ev, _) = feed_at(&mut a, &wrap(tr), t0 + 10);
    assert!(ev.is_empty(), "the final fill is held: {ev:?}");
    let (_, out) = tick(&mut a, t0 + 10);
    let q = json_of(&out[0]);
    assert_eq!(q["method"], "myTrades");
    assert_eq!(q["params"]["orderId"], 32);
    assert_eq!(out[0].cost.weight, 5);
    let row = |id: u64, t: u64| json!({"symbol": "LTCBNB", "id": id, "orderId": 32, "orderListId": -1, "price": "1.00000000", "qty": "2.00000000", "quoteQty": "2.00000000", "commission": "0.00100000", "commissionAsset": "BNB", "time": t, "isBuyer": true, "isMaker": false, "isBestMatch": true});
    let (ev, _) = feed_at(
        &mut a,
        &json!({"id": q["id"], "status": 200, "result": [row(41, 5), row(42, 6)]}),
        t0 + 20,
    );
    let fills: Vec<(String, bool)> = ev
        .iter()
        .filter_map(|r| match r {
            Report::Exec(ExecEvent::Fill {
                trade_id,
                order_filled,
                ..
            }) => Some((trade_id.clone(), *order_filled)),
            _ => None,
        })
        .collect();
    assert_eq!(
        fills,
        vec![("41".to_owned(), false), ("42".to_owned(), true)]
    );
}

#[test]
fn cancel_errors_are_cancel_rejected_and_success_waits_for_the_stream() {
    let mut a = adapter();
    let cancel = Command::Cancel {
        cancel_id: ClientId::cancel(NS, oid(1).key, 0),
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
        b"{\"subscriptionId\":0,\"event\":{\"e\":\"executionReport\",\"s\":\"BTCUSDT\",\"c\":\"o0000jU7-3-1\",\"x\":\"TRADE\",\"X\":\"FILLED\",\"i\":1,\"T\":1,\"t\":1,\"m\":false,\"l\":\"1e3\",\"L\":\"1\",\"n\":\"0\"}}",
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

#[test]
fn a_refused_subscription_is_retried_and_the_venue_comes_up_by_itself() {
    let mut a = fresh();
    let t0 = 1_700_000_000_000;
    let out = open(&mut a, t0);
    let sub = json_of(out.last().unwrap());
    assert_eq!(sub["method"], "userDataStream.subscribe.signature");
    let (ev, _) = feed_at(
        &mut a,
        &error_response(&sub, 503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes."),
        t0 + 600,
    );
    assert!(
        matches!(ev.as_slice(), [Report::Venue(VenueStatus { state: VenueState::Halted, text, .. })] if text.contains("retrying")),
        "{ev:?}"
    );
    // Not before the back-off; then again, and Up once it is accepted.
    let (_, out) = tick(&mut a, t0 + 700);
    assert!(out
        .iter()
        .all(|t| json_of(t)["method"] != "userDataStream.subscribe.signature"));
    let (_, out) = tick(&mut a, t0 + 1_700);
    let again = out
        .iter()
        .map(json_of)
        .find(|r| r["method"] == "userDataStream.subscribe.signature")
        .expect("subscribed again");
    let (ev, _) = feed_at(
        &mut a,
        &json!({"id": again["id"], "status": 200, "result": {"subscriptionId": 1}}),
        t0 + 1_710,
    );
    assert!(
        matches!(
            ev.as_slice(),
            [Report::Venue(VenueStatus {
                state: VenueState::Up,
                ..
            })]
        ),
        "{ev:?}"
    );
}

#[test]
fn a_connection_is_rolled_over_before_the_venues_24_hour_cut() {
    let mut a = adapter();
    let opened = 1_700_000_000_000;
    let mut out = Outbox::new();
    a.on_timer(now(opened + 22 * 3_600_000), &mut out);
    assert!(!out.events.contains(&VenueOutput::Reconnect(WS)));
    let mut out = Outbox::new();
    let at = opened + ordergate_core::venue::binance::ROLLOVER_NS / 1_000_000;
    a.on_timer(now(at), &mut out);
    assert!(
        out.events.contains(&VenueOutput::Reconnect(WS)),
        "{:?}",
        out.events
    );
    // Make before break: still serving meanwhile.
    let req = place(&mut a, order(oid(1), BTC, Side::Buy, 100, 1_000));
    assert_eq!(req["method"], "order.place");
}

#[test]
fn the_venues_cumulative_quote_is_cross_checked() {
    let mut a = adapter();
    place(&mut a, order(oid(1), LTCBNB, Side::Buy, 1_000_000, 6_000));
    let seq = fixture("sequence");
    // z and Z agree with the fill: no mismatch.
    let trade = wrap(with_ids(seq[1].clone(), &oid(1).encode(), ""));
    assert_eq!(feed(&mut a, &trade).0.len(), 1);
    assert_eq!(a.stats().fill_mismatches, 0);
    // The next says a notional the fills do not add up to.
    let mut next = with_ids(seq[2].clone(), &oid(1).encode(), "");
    next["Z"] = json!("4.10000000");
    assert_eq!(
        feed(&mut a, &wrap(next)).0.len(),
        1,
        "the fill is still reported"
    );
    assert_eq!(a.stats().fill_mismatches, 1);
}

/// A subscription whose answer was lost is asked again; the venue's -2035
/// ("already active": one stream per account per connection) is its word
/// that the first went through, so the adapter goes on as subscribed
/// instead of halting and asking again for ever (found by the chaos run).
#[test]
fn a_subscription_already_active_is_the_venue_saying_subscribed() {
    let mut a = fresh();
    let out = open(&mut a, 1_000);
    let sub = json_of(out.last().unwrap());
    assert_eq!(sub["method"], "userDataStream.subscribe.signature");
    let refusal = error_response(
        &sub,
        400,
        -2035,
        "User Data Stream subscription already active.",
    );
    let (ev, _) = feed(&mut a, &refusal);
    assert_eq!(a.phase(), Phase::Ready);
    assert!(
        matches!(
            ev.as_slice(),
            [Report::Venue(VenueStatus {
                state: VenueState::Up,
                ..
            })]
        ),
        "{ev:?}"
    );
}
