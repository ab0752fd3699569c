//! `myTrades` (web-socket-api.md §"Account trade history (USER_DATA)")
//! and the order fields clients reconcile with: `order.status` /
//! `openOrders.status` rows (`executedQty`, `cummulativeQuoteQty`), the
//! `executionReport` fields (`x`, `X`, `l`, `L`, `t`, `z`, `Z`, `Y`), and
//! client order ids reused among open and closed orders. All through the
//! socket-free [`Exchange`] in virtual time.

use ordergate_sim::binance::sign::{sign_hex, ws_payload};
use ordergate_sim::binance::{
    ConnId, Exchange, FillModel, SimConfig, DEMO_API_KEY, DEMO_API_SECRET,
};
use serde_json::{json, Value};

/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200_000;
const OTHER_KEY: &str = "ordergateSimOtherKey000000000000000000000000000000000000000000000";
const OTHER_SECRET: &str = "ordergateSimOtherSecret0000000000000000000000000000000000000000";

fn exchange(fill: FillModel) -> Exchange {
    let config = SimConfig {
        fill,
        accounts: vec![
            (DEMO_API_KEY.into(), DEMO_API_SECRET.into()),
            (OTHER_KEY.into(), OTHER_SECRET.into()),
        ],
        ..SimConfig::default()
    };
    Exchange::new(&config, T0).unwrap()
}

fn signed_as(key: &str, secret: &str, method: &str, params: Value, now: u64) -> String {
    let mut p = params.as_object().cloned().unwrap_or_default();
    p.insert("apiKey".into(), json!(key));
    p.insert("timestamp".into(), json!(now));
    let texts: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
        .collect();
    let payload = ws_payload(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    p.insert(
        "signature".into(),
        json!(sign_hex(secret.as_bytes(), payload.as_bytes())),
    );
    json!({"id": method, "method": method, "params": p}).to_string()
}

fn signed(method: &str, params: Value, now: u64) -> String {
    signed_as(DEMO_API_KEY, DEMO_API_SECRET, method, params, now)
}

/// Every frame of one request, parsed; the response first.
fn all(ex: &mut Exchange, conn: ConnId, text: &str, now: u64) -> Vec<Value> {
    ex.ws_request(conn, text, now)
        .iter()
        .map(|(_, t)| serde_json::from_str(t).unwrap())
        .collect()
}

fn call(ex: &mut Exchange, conn: ConnId, method: &str, params: Value, now: u64) -> Value {
    all(ex, conn, &signed(method, params, now), now).remove(0)
}

fn weight(resp: &Value) -> u64 {
    resp["rateLimits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rateLimitType"] == "REQUEST_WEIGHT")
        .unwrap()["count"]
        .as_u64()
        .unwrap()
}

fn market(side: &str, qty: &str) -> Value {
    json!({"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": qty})
}

fn limit(side: &str, price: &str, qty: &str, cid: &str) -> Value {
    json!({"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC",
           "price": price, "quantity": qty, "newClientOrderId": cid})
}

fn ids(resp: &Value) -> Vec<u64> {
    resp["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{resp}"))
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

fn trades(ex: &mut Exchange, conn: ConnId, params: Value, now: u64) -> Value {
    let mut p = json!({"symbol": "BTCUSDT"});
    for (k, v) in params.as_object().unwrap() {
        p[k] = v.clone();
    }
    call(ex, conn, "myTrades", p, now)
}

/// The request exactly as the docs print it, signed with the docs' example
/// HMAC key, is accepted; `startTime`..`endTime` of exactly 24 h is allowed.
#[test]
fn the_documented_request_is_accepted() {
    const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    let now = 1_661_955_125_250;
    let config = SimConfig {
        accounts: vec![(KEY.into(), SECRET.into())],
        ..SimConfig::default()
    };
    let mut ex = Exchange::new(&config, now).unwrap();
    let c = ex.ws_connect(now);
    let req = r#"{
      "id": "f4ce6a53-a29d-4f70-823b-4ab59391d6e8",
      "method": "myTrades",
      "params": {
        "symbol": "BTCUSDT",
        "startTime": 1660780800000,
        "endTime": 1660867200000,
        "apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        "signature": "c5a5ffb79fd4f2e10a92f895d488943a57954edf5933bde3338dfb6ea6d6eefc",
        "timestamp": 1661955125250
      }
    }"#;
    let r = all(&mut ex, c, req, now).remove(0);
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["result"], json!([]));
    // 2 for the connection, 20 for the request.
    assert_eq!(weight(&r), 22);
}

#[test]
fn rows_are_the_accounts_own_trades_formatted_like_binance() {
    let mut ex = exchange(FillModel::full());
    let c = ex.ws_connect(T0);
    let now = T0 + 1_000;
    // A taker buy at the 60000.00 reference.
    let r = call(&mut ex, c, "order.place", market("BUY", "0.01"), now);
    assert_eq!(r["status"], 200, "{r}");
    // Another account's trade is not ours.
    let other = signed_as(
        OTHER_KEY,
        OTHER_SECRET,
        "order.place",
        market("SELL", "0.02"),
        now,
    );
    assert_eq!(all(&mut ex, c, &other, now)[0]["status"], 200);
    // A resting sell that the market then lifts: a maker trade.
    let r = call(
        &mut ex,
        c,
        "order.place",
        limit("SELL", "60100.50", "0.003", "m-1"),
        now,
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    ex.set_reference_price("BTCUSDT", "60100.50", now + 500)
        .unwrap();

    let frames = ex.ws_request(
        c,
        &signed("myTrades", json!({"symbol": "BTCUSDT"}), now + 600),
        now + 600,
    );
    let text = &frames[0].1;
    let r: Value = serde_json::from_str(text).unwrap();
    assert_eq!(r["status"], 200, "{r}");
    let rows = r["result"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{r}");
    assert_eq!(
        rows[0],
        json!({"symbol": "BTCUSDT", "id": 1, "orderId": 1, "orderListId": -1,
               "price": "60000.00000000", "qty": "0.01000000", "quoteQty": "600.00000000",
               "commission": "0.60000000", "commissionAsset": "USDT", "time": now,
               "isBuyer": true, "isMaker": false, "isBestMatch": true})
    );
    assert_eq!(
        rows[1],
        json!({"symbol": "BTCUSDT", "id": 3, "orderId": 3, "orderListId": -1,
               "price": "60100.50000000", "qty": "0.00300000", "quoteQty": "180.30150000",
               "commission": "0.18030150", "commissionAsset": "USDT", "time": now + 500,
               "isBuyer": false, "isMaker": true, "isBestMatch": true})
    );
    // The keys come in the order of the docs' sample.
    let keys = [
        "symbol",
        "id",
        "orderId",
        "orderListId",
        "price",
        "qty",
        "quoteQty",
        "commission",
        "commissionAsset",
        "time",
        "isBuyer",
        "isMaker",
        "isBestMatch",
    ];
    let row = &text[text.find("\"result\":[{").unwrap()..];
    let pos: Vec<usize> = keys
        .iter()
        .map(|k| row.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{row}");
    // The other account sees only its own.
    let theirs = signed_as(
        OTHER_KEY,
        OTHER_SECRET,
        "myTrades",
        json!({"symbol": "BTCUSDT"}),
        now + 600,
    );
    assert_eq!(ids(&all(&mut ex, c, &theirs, now + 600)[0]), [2]);
    // Other symbols have their own trade ids (and none of ours here).
    let r = call(
        &mut ex,
        c,
        "myTrades",
        json!({"symbol": "ETHUSDT"}),
        now + 600,
    );
    assert_eq!(r["result"], json!([]));
    let r = call(&mut ex, c, "myTrades", json!({"symbol": "NOPE"}), now + 600);
    assert_eq!(r["error"]["code"], -1121, "{r}");
    let r = call(&mut ex, c, "myTrades", json!({}), now + 600);
    assert_eq!(r["error"]["code"], -1102, "{r}");
}

/// Ten taker trades of ours, one every second (ids 1..=10, one per order),
/// and the filters and weights on them.
#[test]
fn filters_limits_and_weights() {
    let mut ex = exchange(FillModel::full());
    let c = ex.ws_connect(T0);
    for i in 0..10u64 {
        let side = if i % 2 == 0 { "BUY" } else { "SELL" };
        let now = T0 + (i + 1) * 1_000;
        let r = call(&mut ex, c, "order.place", market(side, "0.001"), now);
        assert_eq!(r["status"], 200, "{r}");
    }
    let now = T0 + 20_000;
    let t = |i: u64| T0 + i * 1_000;
    let mut q = |params: Value| trades(&mut ex, c, params, now);

    // No condition: the most recent `limit`, oldest first.
    assert_eq!(ids(&q(json!({}))), (1..=10).collect::<Vec<_>>());
    assert_eq!(ids(&q(json!({"limit": 3}))), [8, 9, 10]);
    // fromId: id >= fromId, from the oldest.
    assert_eq!(ids(&q(json!({"fromId": 4, "limit": 2}))), [4, 5]);
    assert_eq!(ids(&q(json!({"fromId": 11}))), Vec::<u64>::new());
    // orderId: that order's trades.
    assert_eq!(ids(&q(json!({"orderId": 7}))), [7]);
    assert_eq!(
        ids(&q(json!({"orderId": 7, "fromId": 8}))),
        Vec::<u64>::new()
    );
    assert_eq!(ids(&q(json!({"orderId": 99}))), Vec::<u64>::new());
    // The window, both ends included: oldest first, or the newest before
    // endTime when only endTime is sent.
    assert_eq!(
        ids(&q(json!({"startTime": t(3), "endTime": t(5)}))),
        [3, 4, 5]
    );
    assert_eq!(ids(&q(json!({"startTime": t(3), "limit": 2}))), [3, 4]);
    assert_eq!(ids(&q(json!({"endTime": t(5), "limit": 2}))), [4, 5]);
    // Microsecond times are read as such.
    assert_eq!(ids(&q(json!({"startTime": t(9) * 1000}))), [9, 10]);
    // A limit above the maximum is served as 1000.
    assert_eq!(ids(&q(json!({"limit": 5000}))).len(), 10);

    // The documented refusals.
    let code = |r: Value| (r["status"].as_u64(), r["error"]["code"].as_i64());
    assert_eq!(
        code(q(json!({"fromId": 1, "startTime": t(1)}))),
        (Some(400), Some(-1128))
    );
    assert_eq!(
        code(q(json!({"orderId": 1, "endTime": t(1)}))),
        (Some(400), Some(-1128))
    );
    let r = q(json!({"startTime": t(0), "endTime": t(0) + 86_400_001}));
    assert_eq!(code(r.clone()), (Some(400), Some(-1127)));
    assert_eq!(
        r["error"]["msg"],
        "More than 24 hours between startTime and endTime."
    );
    assert_eq!(code(q(json!({"limit": 0}))), (Some(400), Some(-1130)));
    assert_eq!(code(q(json!({"fromId": "x"}))), (Some(400), Some(-1100)));

    // Weight: 20, or 5 with orderId.
    let before = weight(&q(json!({})));
    let after = weight(&q(json!({})));
    assert_eq!(after - before, 20);
    let by_order = weight(&q(json!({"orderId": 3})));
    assert_eq!(by_order - after, 5);

    // REST: the same endpoint and weight.
    let query = format!("symbol=BTCUSDT&orderId=3&timestamp={now}");
    let sig = sign_hex(DEMO_API_SECRET.as_bytes(), query.as_bytes());
    let reply = ex.rest(
        "GET",
        &format!("/api/v3/myTrades?{query}&signature={sig}"),
        &[("X-MBX-APIKEY", DEMO_API_KEY)],
        b"",
        now,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rows: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(rows[0]["id"], 3);
    let used = reply
        .headers
        .iter()
        .find(|(k, _)| *k == "X-MBX-USED-WEIGHT-1M")
        .unwrap()
        .1
        .parse::<u64>()
        .unwrap();
    assert_eq!(used, by_order + 5);
}

/// `order.status` and `openOrders.status` carry `executedQty` and
/// `cummulativeQuoteQty` (spelled as Binance spells it); each
/// `executionReport` carries the trade (`l`, `L`, `t`, `Y`) and the running
/// totals (`z`, `Z`), and the totals match `myTrades`.
#[test]
fn order_queries_and_reports_carry_the_fill_totals() {
    let fill = FillModel {
        maker_partial_per_mille: 1000,
        ..FillModel::full()
    };
    let mut ex = exchange(fill);
    let c = ex.ws_connect(T0);
    let sub = call(
        &mut ex,
        c,
        "userDataStream.subscribe.signature",
        json!({}),
        T0,
    );
    assert_eq!(sub["status"], 200);
    let frames = all(
        &mut ex,
        c,
        &signed("order.place", limit("BUY", "59000.00", "1", "p-1"), T0),
        T0,
    );
    let new = &frames[1]["event"];
    assert_eq!(
        (&new["x"], &new["X"], &new["l"], &new["z"], &new["L"], &new["t"], &new["Z"]),
        (
            &json!("NEW"),
            &json!("NEW"),
            &json!("0.00000000"),
            &json!("0.00000000"),
            &json!("0.00000000"),
            &json!(-1),
            &json!("0.00000000")
        )
    );

    // Two partial maker fills (the fill model takes 10–90 % each time).
    let mut reports = Vec::new();
    for (i, price) in ["58999.00", "58998.00"].iter().enumerate() {
        let moved = ex
            .set_reference_price("BTCUSDT", price, T0 + 1_000 * (i as u64 + 1))
            .unwrap();
        for (_, text) in moved.frames {
            let v: Value = serde_json::from_str(&text).unwrap();
            reports.push(v["event"].clone());
        }
    }
    assert_eq!(reports.len(), 2);
    let dec = |v: &Value| -> f64 { v.as_str().unwrap().parse().unwrap() };
    let (mut z, mut quote) = (0.0, 0.0);
    for r in &reports {
        assert_eq!(r["x"], "TRADE");
        assert_eq!(r["X"], "PARTIALLY_FILLED");
        assert_eq!(r["L"], "59000.00000000", "a maker fills at its limit");
        assert!(r["t"].as_i64().unwrap() > 0);
        z += dec(&r["l"]);
        quote += dec(&r["Y"]);
        assert!((dec(&r["z"]) - z).abs() < 1e-9, "{r}");
        assert!((dec(&r["Z"]) - quote).abs() < 1e-6, "{r}");
    }
    let last = &reports[1];

    let now = T0 + 5_000;
    let status = call(
        &mut ex,
        c,
        "order.status",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "p-1"}),
        now,
    );
    let open = call(
        &mut ex,
        c,
        "openOrders.status",
        json!({"symbol": "BTCUSDT"}),
        now,
    );
    for row in [&status["result"], &open["result"][0]] {
        assert_eq!(row["status"], "PARTIALLY_FILLED", "{row}");
        assert_eq!(row["executedQty"], last["z"]);
        assert_eq!(row["cummulativeQuoteQty"], last["Z"]);
    }
    let rows = trades(&mut ex, c, json!({"orderId": 1}), now);
    let rows = rows["result"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let ids: Vec<i64> = reports.iter().map(|r| r["t"].as_i64().unwrap()).collect();
    assert_eq!(
        rows.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        ids
    );
    let total: f64 = rows.iter().map(|r| dec(&r["qty"])).sum();
    assert!((total - z).abs() < 1e-9);
}

/// A `newClientOrderId` of one of the account's open orders is refused
/// (-2010 "Duplicate order sent."); once that order is done, the id may
/// be used again, and a query by it finds the newest order.
#[test]
fn client_ids_are_unique_among_open_orders_only() {
    let mut ex = exchange(FillModel::full());
    let c = ex.ws_connect(T0);
    let r = call(
        &mut ex,
        c,
        "order.place",
        limit("BUY", "50000.00", "0.01", "same"),
        T0,
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    let r = call(
        &mut ex,
        c,
        "order.place",
        limit("BUY", "50001.00", "0.01", "same"),
        T0,
    );
    assert_eq!(
        (&r["status"], &r["error"]["code"], &r["error"]["msg"]),
        (&json!(400), &json!(-2010), &json!("Duplicate order sent.")),
    );
    // Another account may use the same id.
    let theirs = signed_as(
        OTHER_KEY,
        OTHER_SECRET,
        "order.place",
        limit("BUY", "50000.00", "0.01", "same"),
        T0,
    );
    assert_eq!(all(&mut ex, c, &theirs, T0)[0]["status"], 200);

    // Canceled: free again.
    let r = call(
        &mut ex,
        c,
        "order.cancel",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "same"}),
        T0,
    );
    assert_eq!(r["result"]["status"], "CANCELED", "{r}");
    let r = call(
        &mut ex,
        c,
        "order.place",
        limit("BUY", "61000.00", "0.01", "same"),
        T0,
    );
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    // Filled: free again; two orders of ours now had the id before this one.
    let r = call(
        &mut ex,
        c,
        "order.place",
        limit("BUY", "50002.00", "0.01", "same"),
        T0,
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    let newest = r["result"]["orderId"].clone();
    let q = call(
        &mut ex,
        c,
        "order.status",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "same"}),
        T0,
    );
    assert_eq!(q["result"]["orderId"], newest);
    let ledger = ex.ledger();
    let ours = ledger
        .iter()
        .filter(|e| e.order.client_order_id == "same" && e.order.account == DEMO_API_KEY)
        .count();
    assert_eq!(ours, 3, "one refused, three placed");
}

/// `allOrders` (web-socket-api.md §"Account order history"): the
/// account's orders on a symbol, open or not, by order id; from `orderId`
/// on when sent, else the most recent `limit`; weight 20.
#[test]
fn all_orders_lists_open_and_closed_orders_by_id() {
    let mut ex = exchange(FillModel::full());
    let conn = ex.ws_connect(T0);
    for (i, cid) in ["a1", "a2", "a3"].iter().enumerate() {
        let now = T0 + 10 + i as u64;
        call(
            &mut ex,
            conn,
            "order.place",
            limit("BUY", "50000.00", "0.001", cid),
            now,
        );
    }
    call(
        &mut ex,
        conn,
        "order.place",
        market("BUY", "0.001"),
        T0 + 20,
    );
    let r = call(
        &mut ex,
        conn,
        "allOrders",
        json!({"symbol": "BTCUSDT"}),
        T0 + 30,
    );
    let rows = r["result"].as_array().unwrap();
    let ids: Vec<u64> = rows
        .iter()
        .map(|o| o["orderId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(rows[0]["status"], "NEW");
    assert_eq!(rows[3]["status"], "FILLED");
    assert_eq!(rows[3]["executedQty"], "0.00100000");
    let before = weight(&r);
    let r = call(
        &mut ex,
        conn,
        "allOrders",
        json!({"symbol": "BTCUSDT", "orderId": "3", "limit": "1"}),
        T0 + 31,
    );
    let ids: Vec<u64> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [3]);
    assert_eq!(weight(&r) - before, 20);
}
