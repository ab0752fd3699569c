//! WebSocket API behaviour: order lifecycles with their events, and every
//! documented rejection the adapter must handle.

mod sim_support;

use ordergate::sim::binance::{
    FillModel, OrderStatus, SimConfig, SimHandle, Simulator, DEMO_API_KEY, DEMO_API_SECRET,
};
use serde_json::{json, Map, Value};
use sim_support::{now_ms, sign_params, WsClient};

fn start(fill: FillModel) -> SimHandle {
    let config = SimConfig {
        fill,
        ..SimConfig::default()
    };
    Simulator::start(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

async fn subscribed(sim: &SimHandle) -> WsClient {
    let mut c = WsClient::connect(&sim.ws_url(), DEMO_API_KEY, DEMO_API_SECRET).await;
    c.subscribe().await;
    c
}

fn limit(side: &str, price: &str, qty: &str, tif: &str, id: &str) -> Value {
    json!({"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": tif,
           "price": price, "quantity": qty, "newClientOrderId": id})
}

fn error_of(r: &Value) -> (i64, &str) {
    (
        r["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not an error: {r}")),
        r["error"]["msg"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn limit_rests_then_cancel_carries_both_ids() {
    let sim = start(FillModel::full());
    let mut c = subscribed(&sim).await;
    let r = c
        .signed(
            "order.place",
            limit("BUY", "59000.00", "0.01000", "GTC", "o-1"),
        )
        .await;
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    assert_eq!(r["result"]["price"], "59000.00000000");
    assert_eq!(r["result"]["fills"], json!([]));
    let ev = c.event().await;
    assert_eq!(
        (ev["x"].as_str(), ev["c"].as_str(), ev["C"].as_str()),
        (Some("NEW"), Some("o-1"), Some(""))
    );

    let r = c
        .signed(
            "order.cancel",
            json!({"symbol": "BTCUSDT", "origClientOrderId": "o-1", "newClientOrderId": "c-1"}),
        )
        .await;
    assert_eq!(r["result"]["status"], "CANCELED", "{r}");
    assert_eq!(r["result"]["clientOrderId"], "c-1");
    assert_eq!(r["result"]["origClientOrderId"], "o-1");
    let ev = c.event().await;
    assert_eq!(
        (
            ev["x"].as_str(),
            ev["X"].as_str(),
            ev["c"].as_str(),
            ev["C"].as_str()
        ),
        (Some("CANCELED"), Some("CANCELED"), Some("c-1"), Some("o-1"))
    );
    assert_eq!(ev["w"], false);

    // Finished orders cannot be canceled again, and the client id is free.
    let r = c
        .signed(
            "order.cancel",
            json!({"symbol": "BTCUSDT", "origClientOrderId": "o-1"}),
        )
        .await;
    assert_eq!(error_of(&r), (-2011, "Unknown order sent."));
    let r = c
        .signed(
            "order.place",
            limit("BUY", "59000.00", "0.01000", "GTC", "o-1"),
        )
        .await;
    assert_eq!(r["status"], 200, "{r}");
}

#[tokio::test]
async fn crossing_limit_fills_and_ledger_agrees() {
    let sim = start(FillModel::full());
    let mut c = subscribed(&sim).await;
    let r = c
        .signed(
            "order.place",
            limit("SELL", "59000.00", "0.02000", "GTC", "s-1"),
        )
        .await;
    let res = &r["result"];
    assert_eq!(res["status"], "FILLED", "{r}");
    // Sold at the 60000.00 reference, 0.1 % commission in USDT.
    assert_eq!(res["fills"][0]["price"], "60000.00000000");
    assert_eq!(res["cummulativeQuoteQty"], "1200.00000000");
    assert_eq!(res["fills"][0]["commission"], "1.20000000");
    let events = c.events(2).await;
    assert_eq!(events[1]["x"], "TRADE");
    assert_eq!(events[1]["X"], "FILLED");
    assert_eq!(events[1]["l"], "0.02000000");
    assert_eq!(events[1]["Y"], "1200.00000000");
    assert_eq!(events[1]["t"], res["fills"][0]["tradeId"]);

    let ledger = sim.ledger();
    let entry = ledger
        .iter()
        .find(|e| e.order.client_order_id == "s-1")
        .unwrap();
    assert_eq!(entry.order.status, OrderStatus::Filled);
    assert_eq!(entry.order.executed_qty, 2000);
    assert_eq!(entry.trades.len(), 1);
    assert_eq!(entry.trades[0].commission, 120_000_000);
}

#[tokio::test]
async fn resting_order_fills_in_parts_as_the_market_moves() {
    let sim = start(FillModel {
        seed: 11,
        taker_partial_per_mille: 0,
        maker_partial_per_mille: 1000,
        max_trades_per_match: 1,
    });
    let mut c = subscribed(&sim).await;
    c.signed(
        "order.place",
        limit("BUY", "59000.00", "1.00000", "GTC", "b-1"),
    )
    .await;
    c.event().await;
    let mut filled = 0.0f64;
    let mut trade_ids = Vec::new();
    for _ in 0..50 {
        sim.set_reference_price("BTCUSDT", "58000.00").unwrap();
        let ev = c.event().await;
        assert_eq!(ev["x"], "TRADE");
        assert_eq!(ev["m"], true);
        assert_eq!(ev["L"], "59000.00000000");
        trade_ids.push(ev["t"].as_i64().unwrap());
        filled = ev["z"].as_str().unwrap().parse().unwrap();
        if ev["X"] == "FILLED" {
            break;
        }
        assert_eq!(ev["X"], "PARTIALLY_FILLED");
        assert_eq!(ev["w"], true);
    }
    assert_eq!(filled, 1.0);
    assert!(trade_ids.len() > 1, "several TRADE events");
    assert!(
        trade_ids.windows(2).all(|w| w[0] < w[1]),
        "trade ids increase"
    );
}

#[tokio::test]
async fn market_partial_fills_then_expired() {
    let sim = start(FillModel {
        seed: 5,
        taker_partial_per_mille: 1000,
        maker_partial_per_mille: 0,
        max_trades_per_match: 3,
    });
    let mut c = subscribed(&sim).await;
    let r = c
        .signed(
            "order.place",
            json!({"symbol": "ETHUSDT", "side": "SELL", "type": "MARKET", "quantity": "2.0000"}),
        )
        .await;
    let res = &r["result"];
    assert_eq!(res["status"], "EXPIRED", "{r}");
    let fills = res["fills"].as_array().unwrap();
    let events = c.events(fills.len() + 2).await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["x"].as_str().unwrap(), e["X"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds[0], ("NEW", "NEW"));
    for k in &kinds[1..=fills.len()] {
        assert_eq!(*k, ("TRADE", "PARTIALLY_FILLED"));
    }
    assert_eq!(kinds.last(), Some(&("EXPIRED", "EXPIRED")));
    let last = events.last().unwrap();
    assert_eq!(last["z"], res["executedQty"]);
    assert_eq!(last["Z"], res["cummulativeQuoteQty"]);
    assert!(
        last.get("eR").is_none(),
        "the FAQ's MARKET sequence has no eR"
    );
}

#[tokio::test]
async fn ioc_remainder_expires_and_fok_all_or_nothing() {
    let sim = start(FillModel {
        seed: 9,
        taker_partial_per_mille: 1000,
        maker_partial_per_mille: 0,
        max_trades_per_match: 1,
    });
    let mut c = subscribed(&sim).await;
    let r = c
        .signed(
            "order.place",
            limit("BUY", "61000.00", "1.00000", "IOC", "ioc-1"),
        )
        .await;
    assert_eq!(r["result"]["status"], "EXPIRED", "{r}");
    assert_eq!(r["result"]["expiryReason"], "UNFILLED_IOC_QUANTITY_EXPIRED");
    let events = c.events(3).await;
    assert_eq!(events[1]["x"], "TRADE");
    assert_eq!(events[2]["x"], "EXPIRED");
    assert_eq!(events[2]["eR"], "UNFILLED_IOC_QUANTITY_EXPIRED");

    let r = c
        .signed(
            "order.place",
            limit("BUY", "61000.00", "1.00000", "FOK", "fok-1"),
        )
        .await;
    assert_eq!(r["result"]["status"], "EXPIRED", "{r}");
    assert_eq!(r["result"]["executedQty"], "0.00000000");
    let events = c.events(2).await;
    assert_eq!(events[1]["eR"], "UNFILLED_FOK_ORDER_EXPIRED");
}

#[tokio::test]
async fn documented_rejections() {
    let sim = start(FillModel::full());
    let mut c = WsClient::connect(&sim.ws_url(), DEMO_API_KEY, DEMO_API_SECRET).await;

    let mut maker = limit("BUY", "61000.00", "0.01000", "GTC", "m-1");
    maker["type"] = json!("LIMIT_MAKER");
    maker.as_object_mut().unwrap().remove("timeInForce");
    let r = c.signed("order.place", maker).await;
    assert_eq!(
        error_of(&r),
        (-2010, "Order would immediately match and take.")
    );

    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.00", "0.00001", "GTC", "n-1"),
        )
        .await;
    assert_eq!(error_of(&r), (-1013, "Filter failure: NOTIONAL"));
    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.001", "0.01", "GTC", "n-1"),
        )
        .await;
    assert_eq!(error_of(&r), (-1013, "Filter failure: PRICE_FILTER"));
    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.00", "0.000001", "GTC", "n-1"),
        )
        .await;
    assert_eq!(error_of(&r), (-1013, "Filter failure: LOT_SIZE"));

    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.00", "0.01", "GTC", "dup"),
        )
        .await;
    assert_eq!(r["status"], 200, "{r}");
    let r = c
        .signed(
            "order.place",
            limit("BUY", "50000.00", "0.01", "GTC", "dup"),
        )
        .await;
    assert_eq!(error_of(&r), (-2010, "Duplicate order sent."));

    let mut bad = limit("BUY", "50000.00", "0.01", "GTC", "x");
    bad["symbol"] = json!("NOPE");
    assert_eq!(
        error_of(&c.signed("order.place", bad).await),
        (-1121, "Invalid symbol.")
    );
    let mut bad = limit("BUY", "50000.00", "0.01", "GTC", "x");
    bad["side"] = json!("UP");
    assert_eq!(
        error_of(&c.signed("order.place", bad).await),
        (-1117, "Invalid side.")
    );
    let mut bad = limit("BUY", "50000.00", "0.01", "GTC", "x");
    bad["type"] = json!("FANCY");
    assert_eq!(
        error_of(&c.signed("order.place", bad).await),
        (-1116, "Invalid orderType.")
    );
    let bad = limit("BUY", "50000.00", "0.01", "DAY", "x");
    assert_eq!(
        error_of(&c.signed("order.place", bad).await),
        (-1115, "Invalid timeInForce.")
    );
    let mut bad = limit("BUY", "50000.00", "0.01", "GTC", "x");
    bad.as_object_mut().unwrap().remove("price");
    assert_eq!(
        error_of(&c.signed("order.place", bad).await),
        (
            -1102,
            "Mandatory parameter 'price' was not sent, was empty/null, or malformed."
        )
    );

    let r = c
        .signed("order.status", json!({"symbol": "BTCUSDT", "orderId": 999}))
        .await;
    assert_eq!(error_of(&r), (-2013, "Order does not exist."));
    let r = c
        .signed("order.cancel", json!({"symbol": "BTCUSDT", "orderId": 999}))
        .await;
    assert_eq!(error_of(&r), (-2011, "Unknown order sent."));
    let r = c.request("no.such.method", json!({})).await;
    assert_eq!(r["status"], 400);
}

#[tokio::test]
async fn authentication_failures() {
    let sim = start(FillModel::full());
    let mut c = WsClient::connect(&sim.ws_url(), DEMO_API_KEY, "not-the-secret").await;
    let r = c
        .signed("order.place", limit("BUY", "50000.00", "0.01", "GTC", "a"))
        .await;
    assert_eq!(r["status"], 400);
    assert_eq!(
        error_of(&r),
        (-1022, "Signature for this request is not valid.")
    );

    let mut c = WsClient::connect(&sim.ws_url(), "unknown-key", DEMO_API_SECRET).await;
    let r = c
        .signed("order.place", limit("BUY", "50000.00", "0.01", "GTC", "a"))
        .await;
    assert_eq!(r["status"], 401);
    assert_eq!(
        error_of(&r),
        (-2015, "Invalid API-key, IP, or permissions for action.")
    );

    let mut c = WsClient::connect(&sim.ws_url(), DEMO_API_KEY, DEMO_API_SECRET).await;
    let signed_at = |ts: u64, recv_window: Option<&str>| {
        let mut p: Map<String, Value> = limit("BUY", "50000.00", "0.01", "GTC", "t")
            .as_object()
            .unwrap()
            .clone();
        if let Some(w) = recv_window {
            p.insert("recvWindow".into(), json!(w.parse::<f64>().unwrap()));
        }
        p.insert("timestamp".into(), json!(ts));
        sign_params(&mut p, DEMO_API_KEY, DEMO_API_SECRET, ts);
        Value::Object(p)
    };
    let ahead = c
        .request("order.place", signed_at(now_ms() + 5_000, None))
        .await;
    assert_eq!(
        error_of(&ahead),
        (
            -1021,
            "Timestamp for this request was 1000ms ahead of the server's time."
        )
    );
    let old = c
        .request("order.place", signed_at(now_ms() - 10_000, None))
        .await;
    assert_eq!(
        error_of(&old),
        (
            -1021,
            "Timestamp for this request is outside of the recvWindow."
        )
    );
    // A wider (fractional) recvWindow admits it; a clock offset on the
    // server makes a current timestamp look old.
    let ok = c
        .request("order.place", signed_at(now_ms() - 10_000, Some("20000.5")))
        .await;
    assert_eq!(ok["status"], 200, "{ok}");
    sim.set_clock_offset_ms(30_000);
    let skewed = c.request("order.place", signed_at(now_ms(), None)).await;
    assert_eq!(error_of(&skewed).0, -1021);
}

#[tokio::test]
async fn server_shutdown_then_reconnect() {
    let sim = start(FillModel::full());
    let mut c = subscribed(&sim).await;
    sim.trigger_server_shutdown();
    let ev = c.recv().await;
    assert_eq!(ev["event"]["e"], "serverShutdown");
    assert!(c.recv_or_close().await.is_none());
    let mut c = subscribed(&sim).await;
    let r = c.request("time", json!({})).await;
    assert_eq!(r["status"], 200);
}

#[tokio::test]
async fn wrong_path_is_refused() {
    let sim = start(FillModel::full());
    let url = format!("ws://{}/ws", sim.addr());
    let r = tokio::time::timeout(sim_support::WAIT, tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    assert!(r.is_err());
}

#[tokio::test]
async fn pings_both_ways() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let config = SimConfig {
        ping_interval: std::time::Duration::from_millis(50),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(sim.ws_url())
        .await
        .unwrap();
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    let (mut got_pong, mut got_ping) = (false, false);
    while !(got_pong && got_ping) {
        let m = tokio::time::timeout(sim_support::WAIT, ws.next())
            .await
            .expect("timed out waiting for ping and pong")
            .unwrap()
            .unwrap();
        match m {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"hi");
                got_pong = true;
            }
            Message::Ping(_) => got_ping = true,
            other => panic!("unexpected {other:?}"),
        }
    }
}
