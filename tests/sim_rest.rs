//! REST on the same port as the WebSocket API: signed form requests,
//! documented error bodies and status codes, weight headers, keep-alive.

mod sim_support;

use ordergate::sim::binance::{
    FillModel, SimConfig, SimHandle, Simulator, DEMO_API_KEY, DEMO_API_SECRET,
};
use ordergate::venue::binance::sign;
use sim_support::{assert_shape, fixture, now_ms, RestClient};

fn start() -> SimHandle {
    let config = SimConfig {
        fill: FillModel::full(),
        ..SimConfig::default()
    };
    Simulator::start(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

fn client(sim: &SimHandle) -> RestClient {
    RestClient::connect(sim.addr(), DEMO_API_KEY, DEMO_API_SECRET)
}

#[test]
fn public_endpoints() {
    let sim = start();
    let mut c = client(&sim);
    let r = c.raw("GET", "/api/v3/time", "", "", None);
    assert_eq!(r.status, 200);
    assert!(r.body["serverTime"].as_u64().unwrap() > 0);
    assert!(r.header("X-MBX-USED-WEIGHT-1M").is_some());
    let r = c.raw("GET", "/api/v3/exchangeInfo", "symbol=BTCUSDT", "", None);
    assert_eq!(r.body["symbols"][0]["symbol"], "BTCUSDT");
    assert_eq!(r.body["symbols"][0]["filters"][0]["tickSize"], "0.01000000");
    let r = c.raw("GET", "/api/v3/exchangeInfo", "symbol=NOPE", "", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.body, fixture("binance_spot_error_payload.json"));
    let r = c.raw("GET", "/api/v3/nothing", "", "", None);
    assert_eq!(r.status, 404);
}

#[test]
fn order_lifecycle_over_one_connection() {
    let sim = start();
    let mut c = client(&sim);
    let r = c.signed(
        "POST",
        "/api/v3/order",
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=59000&newClientOrderId=r-1&newOrderRespType=RESULT",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_shape(
        &r.body,
        &fixture("binance_spot_order_response_result.json"),
        &[],
    );
    assert_eq!(r.header("X-MBX-ORDER-COUNT-10S"), Some("1"));
    assert_eq!(r.header("X-MBX-ORDER-COUNT-1D"), Some("1"));
    let id = r.body["orderId"].as_u64().unwrap();

    let r = c.signed(
        "GET",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
    );
    assert_shape(
        &r.body,
        &fixture("binance_spot_query_order_response.json"),
        &[],
    );
    let r = c.signed("GET", "/api/v3/openOrders", "symbol=BTCUSDT");
    assert_shape(
        &r.body,
        &fixture("binance_spot_open_orders_response.json"),
        &[],
    );
    assert_eq!(r.body.as_array().unwrap().len(), 1);

    let r = c.signed(
        "DELETE",
        "/api/v3/order",
        "symbol=BTCUSDT&origClientOrderId=r-1&newClientOrderId=rc-1",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_shape(
        &r.body,
        &fixture("binance_spot_cancel_order_response.json"),
        &[],
    );
    assert_eq!(r.body["clientOrderId"], "rc-1");
    assert_eq!(r.body["origClientOrderId"], "r-1");

    let r = c.signed(
        "DELETE",
        "/api/v3/order",
        "symbol=BTCUSDT&origClientOrderId=r-1",
    );
    assert_eq!((r.status, r.body["code"].as_i64()), (400, Some(-2011)));
    let r = c.signed("GET", "/api/v3/order", "symbol=BTCUSDT&orderId=77");
    assert_eq!(r.body["code"], -2013);

    let r = c.signed(
        "POST",
        "/api/v3/order",
        "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01",
    );
    assert_eq!(r.body["status"], "FILLED", "{}", r.body);
    assert_shape(
        &r.body,
        &fixture("binance_spot_order_response_full.json"),
        &[],
    );
}

#[test]
fn rejections_and_auth() {
    let sim = start();
    let mut c = client(&sim);
    let r = c.signed(
        "POST",
        "/api/v3/order",
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.00001&price=50000",
    );
    assert_eq!((r.status, r.body["code"].as_i64()), (400, Some(-1013)));
    assert_eq!(r.body["msg"], "Filter failure: NOTIONAL");
    assert!(r.header("X-MBX-ORDER-COUNT-10S").is_none());

    let mut wrong = RestClient::connect(sim.addr(), DEMO_API_KEY, "wrong");
    let r = wrong.signed("GET", "/api/v3/openOrders", "");
    assert_eq!((r.status, r.body["code"].as_i64()), (400, Some(-1022)));

    let mut unknown = RestClient::connect(sim.addr(), "nobody", DEMO_API_SECRET);
    let r = unknown.signed("GET", "/api/v3/openOrders", "");
    assert_eq!((r.status, r.body["code"].as_i64()), (401, Some(-2015)));

    let r = c.raw(
        "GET",
        "/api/v3/openOrders",
        &format!("timestamp={}", now_ms()),
        "",
        None,
    );
    assert_eq!(r.status, 401);

    let old = format!("symbol=BTCUSDT&timestamp={}", now_ms() - 60_000);
    let sig = sign::hmac_sha256_hex(DEMO_API_SECRET.as_bytes(), old.as_bytes());
    let r = c.raw(
        "GET",
        "/api/v3/openOrders",
        &format!("{old}&signature={sig}"),
        "",
        Some(DEMO_API_KEY),
    );
    assert_eq!(r.body["code"], -1021);
    assert_eq!(
        r.body["msg"],
        "Timestamp for this request is outside of the recvWindow."
    );
}

/// Params split between query string and body: the signature covers the
/// query string followed directly by the body.
#[test]
fn mixed_query_and_body_signature() {
    let sim = start();
    let mut c = client(&sim);
    let query = "symbol=BTCUSDT&side=BUY";
    let body = format!(
        "type=LIMIT&timeInForce=GTC&quantity=0.01&price=59000&timestamp={}",
        now_ms()
    );
    let sig = sign::hmac_sha256_hex(
        DEMO_API_SECRET.as_bytes(),
        sign::rest_payload(query, &body).as_bytes(),
    );
    let body = format!("{body}&signature={sig}");
    let r = c.raw("POST", "/api/v3/order", query, &body, Some(DEMO_API_KEY));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "NEW");
}
