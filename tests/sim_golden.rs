//! Fidelity: every simulator response and event has exactly the key set
//! and JSON value types of the matching official sample in
//! `tests/fixtures/` (verbatim copies, each with its source), allowing
//! only fields the docs list as conditional.

mod sim_support;

use ordergate::sim::binance::{
    FillModel, SimConfig, SimHandle, Simulator, DEMO_API_KEY, DEMO_API_SECRET,
};
use ordergate::venue::binance::sign;
use serde_json::{json, Value};
use sim_support::{assert_shape, fixture, fixture_file, WsClient};

/// Response fields the docs list as conditional.
const ORDER_CONDITIONAL: &[&str] = &[
    "icebergQty",
    "preventedMatchId",
    "preventedQuantity",
    "stopPrice",
    "strategyId",
    "strategyType",
    "trailingDelta",
    "trailingTime",
    "usedSor",
    "workingFloor",
    "pegPriceType",
    "pegOffsetType",
    "pegOffsetValue",
    "peggedPrice",
    "expiryReason",
];

/// executionReport fields the docs list as conditional (`v` is "only
/// visible if the order expired due to STP" yet sits in the NEW sample).
const REPORT_CONDITIONAL: &[&str] = &[
    "v", "d", "D", "j", "J", "A", "B", "u", "U", "Cs", "pl", "pL", "pY", "b", "a", "k", "uS", "gP",
    "gOT", "gOV", "gp", "eR",
];

fn start(fill: FillModel) -> SimHandle {
    let config = SimConfig {
        fill,
        ..SimConfig::default()
    };
    Simulator::start(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

async fn client(sim: &SimHandle) -> WsClient {
    WsClient::connect(&sim.ws_url(), DEMO_API_KEY, DEMO_API_SECRET).await
}

fn limit(side: &str, price: &str, qty: &str, tif: &str, resp: &str) -> Value {
    json!({"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": tif,
           "price": price, "quantity": qty, "newOrderRespType": resp})
}

fn with_conditional<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    a.iter().chain(b).copied().collect()
}

#[tokio::test]
async fn time_and_rate_limits() {
    let sim = start(FillModel::full());
    let mut c = client(&sim).await;
    let r = c.request("time", json!({})).await;
    assert_shape(
        &r,
        &fixture("binance_ws_rate_limits_time_response.json"),
        &[],
    );
}

#[tokio::test]
async fn order_place_ack_result_full() {
    let sim = start(FillModel::full());
    let mut c = client(&sim).await;

    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.00", "0.01", "GTC", "RESULT"),
        )
        .await;
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    assert_shape(
        &r,
        &fixture("binance_ws_order_place_response_result.json"),
        &[],
    );
    assert_shape(
        &r,
        &fixture("binance_ws_response_success_example.json"),
        &[],
    );
    assert_shape(
        &r["result"],
        &fixture("binance_spot_order_response_result.json"),
        &[],
    );

    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.00", "0.01", "GTC", "ACK"),
        )
        .await;
    assert_shape(
        &r,
        &fixture("binance_ws_order_place_response_ack.json"),
        &[],
    );
    assert_shape(
        &r["result"],
        &fixture("binance_spot_order_response_ack.json"),
        &[],
    );

    // Crosses the 60000.00 reference: FULL with fills. The WebSocket FULL
    // sample alone omits selfTradePreventionMode, which every other order
    // sample (and the REST FULL sample) carries.
    let r = c
        .signed(
            "order.place",
            limit("BUY", "61000.00", "0.01", "GTC", "FULL"),
        )
        .await;
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    assert_eq!(r["result"]["fills"][0]["price"], "60000.00000000");
    assert_shape(
        &r,
        &fixture("binance_ws_order_place_response.json"),
        &["selfTradePreventionMode"],
    );
    assert_shape(
        &r["result"],
        &fixture("binance_spot_order_response_full.json"),
        &[],
    );

    // MARKET defaults to FULL.
    let r = c
        .signed(
            "order.place",
            json!({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.001"}),
        )
        .await;
    assert_shape(
        &r["result"],
        &fixture("binance_spot_order_response_full.json"),
        &[],
    );
}

#[tokio::test]
async fn execution_reports_new_trade_cancel() {
    let sim = start(FillModel::full());
    let mut c = client(&sim).await;
    c.subscribe().await;
    let new_sample = fixture("binance_spot_execution_report.json");

    let r = c
        .signed(
            "order.place",
            limit("BUY", "59000.00", "0.01", "GTC", "RESULT"),
        )
        .await;
    assert_eq!(r["status"], 200, "{r}");
    let wrapped = c.next_frame().await;
    assert_shape(&wrapped, &new_sample, REPORT_CONDITIONAL);
    assert_eq!(wrapped["event"]["x"], "NEW");

    // The market moves through the order: a maker TRADE.
    sim.set_reference_price("BTCUSDT", "58999.99").unwrap();
    let ev = c.event().await;
    assert_eq!(
        (ev["x"].as_str(), ev["X"].as_str(), ev["m"].as_bool()),
        (Some("TRADE"), Some("FILLED"), Some(true))
    );
    assert_shape(
        &ev,
        &fixture("binance_spot_execution_report_trade.json"),
        REPORT_CONDITIONAL,
    );

    // CANCELED has no sample of its own; it has the NEW event's fields.
    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.00", "0.01", "GTC", "ACK"),
        )
        .await;
    let id = r["result"]["orderId"].clone();
    c.event().await;
    let r = c
        .signed("order.cancel", json!({"symbol": "BTCUSDT", "orderId": id}))
        .await;
    assert_eq!(r["status"], 200, "{r}");
    let ev = c.event().await;
    assert_eq!(ev["x"], "CANCELED");
    assert_shape(&ev, &new_sample["event"], REPORT_CONDITIONAL);
}

#[tokio::test]
async fn market_partial_then_expired_sequence() {
    let sim = start(FillModel {
        seed: 7,
        taker_partial_per_mille: 1000,
        maker_partial_per_mille: 0,
        max_trades_per_match: 3,
    });
    let mut c = client(&sim).await;
    c.subscribe().await;
    let r = c
        .signed(
            "order.place",
            json!({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1.00000"}),
        )
        .await;
    assert_eq!(r["result"]["status"], "EXPIRED", "{r}");
    // The FAQ's sample predates origQuoteOrderQty, which every other FULL
    // sample has.
    assert_shape(
        &r["result"],
        &fixture("binance_spot_market_order_expired_response_full.json"),
        &["origQuoteOrderQty"],
    );
    let trades = r["result"]["fills"].as_array().unwrap().len();
    assert!(trades >= 1);
    let seq = fixture("binance_spot_user_data_market_order_sequence.json");
    let events = c.events(trades + 2).await;
    assert_shape(&events[0], &seq[0], REPORT_CONDITIONAL);
    for ev in &events[1..=trades] {
        assert_shape(ev, &seq[1], REPORT_CONDITIONAL);
    }
    assert_shape(&events[trades + 1], &seq[3], REPORT_CONDITIONAL);
    let kinds: Vec<&str> = events.iter().map(|e| e["x"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"NEW"));
    assert_eq!(kinds.last(), Some(&"EXPIRED"));
    assert!(kinds[1..=trades].iter().all(|k| *k == "TRADE"));
}

#[tokio::test]
async fn cancel_status_open_orders_errors() {
    let sim = start(FillModel::full());
    let mut c = client(&sim).await;
    let r = c
        .signed(
            "order.place",
            limit("SELL", "70000.00", "0.01", "GTC", "RESULT"),
        )
        .await;
    let id = r["result"]["orderId"].clone();

    let r = c
        .signed("order.status", json!({"symbol": "BTCUSDT", "orderId": id}))
        .await;
    assert_shape(
        &r,
        &fixture("binance_ws_order_status_response.json"),
        ORDER_CONDITIONAL,
    );
    assert_shape(
        &r["result"],
        &fixture("binance_spot_query_order_response.json"),
        &[],
    );

    let r = c
        .signed("openOrders.status", json!({"symbol": "BTCUSDT"}))
        .await;
    assert_eq!(r["result"].as_array().unwrap().len(), 1);
    assert_shape(
        &r["result"],
        &fixture("binance_spot_open_orders_response.json"),
        &[],
    );

    let r = c
        .signed(
            "order.cancel",
            json!({"symbol": "BTCUSDT", "orderId": id, "newClientOrderId": "cancel-1"}),
        )
        .await;
    assert_shape(
        &r,
        &fixture("binance_ws_order_cancel_response.json"),
        ORDER_CONDITIONAL,
    );
    assert_shape(
        &r["result"],
        &fixture("binance_spot_cancel_order_response.json"),
        &[],
    );

    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.00", "0.00001", "GTC", "ACK"),
        )
        .await;
    assert_eq!(r["error"]["code"], -1013, "{r}");
    assert_shape(&r, &fixture("binance_ws_response_error_example.json"), &[]);
    assert_shape(
        &r["error"],
        &fixture("binance_spot_error_payload.json"),
        &[],
    );
}

#[tokio::test]
async fn subscription_session_and_shutdown_events() {
    let sim = start(FillModel::full());
    let mut c = client(&sim).await;
    let r = c
        .signed("userDataStream.subscribe.signature", json!({}))
        .await;
    // The subscribe and session samples were taken with rate limits off.
    let cond = with_conditional(&["rateLimits"], &[]);
    assert_shape(
        &r,
        &fixture("binance_ws_user_data_stream_subscribe_response.json"),
        &cond,
    );
    let r = c.signed("session.logon", json!({})).await;
    assert_eq!(r["status"], 200, "{r}");
    let r = c.request("session.status", json!({})).await;
    assert_eq!(r["result"]["userDataStream"], true, "{r}");
    assert_shape(
        &r,
        &fixture("binance_ws_session_status_response.json"),
        &cond,
    );

    sim.trigger_server_shutdown();
    let ev = c.recv().await;
    assert_shape(&ev, &fixture("binance_ws_server_shutdown_event.json"), &[]);
    assert!(
        c.recv_or_close().await.is_none(),
        "closed after the grace period"
    );
}

/// The simulator verifies the docs' own signed `order.place` request (key
/// and secret of the signing example) once its clock reads the request's
/// timestamp.
#[tokio::test]
async fn documented_signed_request_is_accepted() {
    let vectors = fixture_file("signature_vectors.json");
    let v = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "binance_ws_example_order_place_3515")
        .unwrap()
        .clone();
    let config = SimConfig {
        fill: FillModel::full(),
        accounts: vec![(
            v["api_key"].as_str().unwrap().into(),
            v["secret"].as_str().unwrap().into(),
        )],
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let request = fixture("binance_ws_order_place_request.json");
    let mut c = WsClient::connect(&sim.ws_url(), "", "").await;

    // At today's time the 2022 timestamp is far outside the recvWindow, but
    // the signature itself is good (-1021, not -1022).
    c.send_text(request.to_string()).await;
    let r = c.recv().await;
    assert_eq!(r["error"]["code"], -1021, "{r}");
    assert_eq!(
        r["error"]["msg"],
        "Timestamp for this request is outside of the recvWindow."
    );

    let ts = request["params"]["timestamp"].as_i64().unwrap();
    sim.set_clock_offset_ms(ts + 1000 - sim_support::now_ms() as i64);
    c.send_text(request.to_string()).await;
    let r = c.recv().await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["id"], request["id"]);
    assert_eq!(r["result"]["status"], "FILLED");
    assert_eq!(r["result"]["origQty"], "0.00847000");
}

#[test]
fn comparator_catches_differences() {
    let sample = json!({"a": "1", "b": [{"c": 1}], "n": null});
    assert!(sim_support::same_shape(&sample, &sample, &[]).is_ok());
    let missing = json!({"a": "1", "b": [{"c": 1}]});
    assert!(sim_support::same_shape(&missing, &sample, &[]).is_err());
    assert!(sim_support::same_shape(&missing, &sample, &["n"]).is_ok());
    let extra = json!({"a": "1", "b": [{"c": 1}], "n": null, "x": 1});
    assert!(sim_support::same_shape(&extra, &sample, &[]).is_err());
    let retyped = json!({"a": 1, "b": [{"c": 1}], "n": null});
    assert!(sim_support::same_shape(&retyped, &sample, &[]).is_err());
    let nested = json!({"a": "1", "b": [{"c": 1}, {"c": "1"}], "n": null});
    assert!(sim_support::same_shape(&nested, &sample, &[]).is_err());
}

/// Every verified HMAC vector reproduces with `sign.rs`, as the simulator
/// verifies requests.
#[test]
fn signature_vectors() {
    let vectors = fixture_file("signature_vectors.json");
    let mut checked = 0;
    for v in vectors["vectors"].as_array().unwrap() {
        let (Some(secret), true) = (v["secret"].as_str(), v["verified_locally"] == true) else {
            continue;
        };
        let payload = v["payload"].as_str().unwrap();
        let expected = v["expected_signature"].as_str().unwrap();
        if let Some(params) = v["request"]["params"].as_object() {
            let texts: Vec<(String, String)> = params
                .iter()
                .map(|(k, x)| {
                    (
                        k.clone(),
                        x.as_str().map_or_else(|| x.to_string(), str::to_owned),
                    )
                })
                .collect();
            let built = sign::ws_payload(texts.iter().map(|(k, x)| (k.as_str(), x.as_str())));
            assert_eq!(built, payload, "{}", v["id"]);
        }
        assert!(
            sign::verify_hex(secret.as_bytes(), payload.as_bytes(), expected),
            "{}",
            v["id"]
        );
        checked += 1;
    }
    assert!(checked >= 19, "only {checked} vectors checked");
}
