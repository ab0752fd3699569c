//! Rate limits as the docs describe them, checked through the socket-free
//! [`Exchange`] in virtual time: request weight and orders over their
//! limits (429, -1003 / -1015, `Retry-After` / `retryAfter`), windows
//! aligned on the server clock, the ban for requests sent during the
//! back-off (418), the connection-attempt limit, the `rateLimits` counts
//! and what `exchangeInfo` publishes. Samples: `tests/fixtures/`.

use std::time::Duration;

use ordergate_sim::binance::sign::{sign_hex, ws_payload};
use ordergate_sim::binance::{
    ConnId, Exchange, FillModel, RateLimits, RestReply, SimConfig, DEMO_API_KEY, DEMO_API_SECRET,
};
use serde_json::{json, Value};

/// 2024-01-01T00:00:00Z: a whole minute, 10 s, 5 min and day.
const T0: u64 = 1_704_067_200_000;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<Value>(&text).unwrap()["payload"].clone()
}

fn exchange(limits: RateLimits) -> Exchange {
    let config = SimConfig {
        fill: FillModel::full(),
        limits,
        ..SimConfig::default()
    };
    Exchange::new(&config, T0).unwrap()
}

fn signed(id: &str, method: &str, params: Value, now: u64) -> String {
    let mut p = params.as_object().cloned().unwrap_or_default();
    p.insert("apiKey".into(), json!(DEMO_API_KEY));
    p.insert("timestamp".into(), json!(now));
    let texts: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
        .collect();
    let payload = ws_payload(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    p.insert(
        "signature".into(),
        json!(sign_hex(DEMO_API_SECRET.as_bytes(), payload.as_bytes())),
    );
    json!({"id": id, "method": method, "params": p}).to_string()
}

/// A resting BUY (below the 60000 reference), so it never fills.
fn resting(cid: &str) -> Value {
    json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
           "price": "50000.00", "quantity": "0.01", "newClientOrderId": cid,
           "newOrderRespType": "ACK"})
}

fn ws(ex: &mut Exchange, conn: ConnId, text: &str, now: u64) -> Value {
    let frames = ex.ws_request(conn, text, now);
    serde_json::from_str(&frames[0].1).unwrap()
}

fn time(ex: &mut Exchange, conn: ConnId, now: u64) -> Value {
    ws(ex, conn, r#"{"id":"t","method":"time"}"#, now)
}

fn rest_order(ex: &mut Exchange, cid: &str, now: u64) -> RestReply {
    let query = format!(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000\
         &newClientOrderId={cid}&timestamp={now}"
    );
    let sig = sign_hex(DEMO_API_SECRET.as_bytes(), query.as_bytes());
    ex.rest(
        "POST",
        &format!("/api/v3/order?{query}&signature={sig}"),
        &[("X-MBX-APIKEY", DEMO_API_KEY)],
        b"",
        now,
    )
}

fn header<'a>(r: &'a RestReply, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The `rateLimits` entry of `kind` and `interval`: its count.
fn count(resp: &Value, kind: &str, interval: &str) -> Option<u64> {
    resp["rateLimits"]
        .as_array()?
        .iter()
        .find(|l| l["rateLimitType"] == kind && l["interval"] == interval)
        .and_then(|l| l["count"].as_u64())
}

/// The keys of an object, sorted, recursively for nested objects.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        _ => Value::Null,
    }
}

#[test]
fn default_limits_are_the_documented_values() {
    let d = RateLimits::default();
    assert_eq!(
        (
            d.weight_per_minute,
            d.orders_per_10s,
            d.orders_per_day,
            d.raw_per_5m,
            d.connections_per_5m,
            d.ban
        ),
        (6000, 50, 160_000, 61_000, 300, Duration::from_secs(120))
    );
    assert_eq!(SimConfig::default().limits, d);
    // exchangeInfo publishes them with the documented shape: REQUEST_WEIGHT
    // and RAW_REQUESTS as in enums.md, ORDERS as in the unfilled order
    // count sample (without its `count`).
    let mut ex = exchange(d);
    let r = ex.rest("GET", "/api/v3/exchangeInfo", &[], b"", T0);
    assert_eq!(r.status, 200);
    let info: Value = serde_json::from_str(&r.body).unwrap();
    let enums = fixture("binance_spot_rate_limiters_enum.json");
    let mut orders = fixture("binance_spot_unfilled_order_count_response.json");
    for o in orders.as_array_mut().unwrap() {
        o.as_object_mut().unwrap().remove("count");
    }
    let expected = json!([enums[0], orders[0], orders[1], enums[2]]);
    assert_eq!(info["rateLimits"], expected);
}

#[test]
fn exchange_info_publishes_the_configured_limits() {
    let mut ex = exchange(RateLimits::default());
    ex.set_rate_limits(RateLimits {
        weight_per_minute: 300,
        orders_per_10s: 5,
        orders_per_day: 70,
        raw_per_5m: 900,
        ..RateLimits::default()
    });
    let conn = ex.ws_connect(T0);
    let ws_info = ws(&mut ex, conn, r#"{"id":1,"method":"exchangeInfo"}"#, T0);
    let rest: Value =
        serde_json::from_str(&ex.rest("GET", "/api/v3/exchangeInfo", &[], b"", T0).body).unwrap();
    for info in [&ws_info["result"], &rest] {
        let limits: Vec<(String, String, u64, u64)> = info["rateLimits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["rateLimitType"].as_str().unwrap().to_owned(),
                    l["interval"].as_str().unwrap().to_owned(),
                    l["intervalNum"].as_u64().unwrap(),
                    l["limit"].as_u64().unwrap(),
                )
            })
            .collect();
        let row = |k: &str, i: &str, n, l| (k.to_owned(), i.to_owned(), n, l);
        assert_eq!(
            limits,
            [
                row("REQUEST_WEIGHT", "MINUTE", 1, 300),
                row("ORDERS", "SECOND", 10, 5),
                row("ORDERS", "DAY", 1, 70),
                row("RAW_REQUESTS", "MINUTE", 5, 900),
            ]
        );
    }
    // The responses' rateLimits carry the configured limit too.
    assert_eq!(ws_info["rateLimits"][0]["limit"], 300);
}

#[test]
fn weight_over_the_limit_is_429_until_the_minute_ends() {
    let mut ex = exchange(RateLimits {
        weight_per_minute: 100,
        ..RateLimits::default()
    });
    let conn = ex.ws_connect(T0); // 2 weight
    let now = T0 + 42_300;
    ex.preload_weight(80, now);
    // 82 + 20 > 100.
    let r = ws(&mut ex, conn, r#"{"id":"x","method":"exchangeInfo"}"#, now);
    assert_eq!(r["status"], 429, "{r}");
    assert_eq!(r["error"]["code"], -1003);
    assert_eq!(
        r["error"]["msg"],
        "Too much request weight used; current limit is 100 request weight per 1 MINUTE. \
         Please use WebSocket Streams for live updates to avoid polling the API."
    );
    assert_eq!(r["error"]["data"]["serverTime"], now);
    assert_eq!(r["error"]["data"]["retryAfter"], T0 + 60_000);
    // Same shape as the documented limit error (the ban sample).
    let sample = fixture("binance_ws_ip_banned_response.json");
    assert_eq!(shape(&r), shape(&sample), "{r}");
    // The refused request's weight counts, as on Binance.
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(102));
    assert_eq!(ex.limit_stats().answered_429, 1);
    assert_eq!(ex.limit_stats().weight_429, 1);

    // REST on the same IP: after the reset (not a back-off violation),
    // with fresh counts; over again → 429 with Retry-After in seconds.
    let mut rest = exchange(RateLimits {
        weight_per_minute: 100,
        ..RateLimits::default()
    });
    let now = T0 + 60_000 + 57_200;
    rest.preload_weight(100, now);
    let r = rest.rest("GET", "/api/v3/time", &[], b"", now);
    assert_eq!(r.status, 429);
    assert_eq!(header(&r, "Retry-After"), Some("3"));
    assert_eq!(header(&r, "X-MBX-USED-WEIGHT-1M"), Some("101"));
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["code"], -1003);
    assert!(body.get("data").is_none());
}

#[test]
fn windows_reset_at_the_aligned_boundary_not_sliding() {
    let mut ex = exchange(RateLimits {
        weight_per_minute: 10,
        ..RateLimits::default()
    });
    let conn = ex.ws_connect(T0 + 59_000);
    ex.preload_weight(7, T0 + 59_999);
    let r = time(&mut ex, conn, T0 + 59_999);
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(10));
    // One millisecond later the minute is new: the count starts over,
    // although the whole limit was spent within the last second.
    let r = time(&mut ex, conn, T0 + 60_000);
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(1));
    // The server clock decides, not the caller's: 30 s ahead, the caller's
    // T0+30 s is the server's T0+60 s.
    let mut ex = exchange(RateLimits {
        weight_per_minute: 10,
        ..RateLimits::default()
    });
    ex.set_clock_offset_ms(30_000);
    ex.preload_weight(10, T0 + 29_999);
    let conn = ex.ws_connect(T0 + 30_000);
    let r = time(&mut ex, conn, T0 + 30_000);
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(3));
}

#[test]
fn orders_over_50_per_10s_are_1015() {
    let mut ex = exchange(RateLimits::default());
    let conn = ex.ws_connect(T0);
    let base = T0 + 20_000;
    for i in 0..50 {
        let now = base + i * 100;
        let r = ws(
            &mut ex,
            conn,
            &signed("o", "order.place", resting(&format!("c{i}")), now),
            now,
        );
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(count(&r, "ORDERS", "SECOND"), Some(i + 1));
    }
    let now = base + 5_000;
    let r = ws(
        &mut ex,
        conn,
        &signed("o", "order.place", resting("c50"), now),
        now,
    );
    assert_eq!(r["status"], 429, "{r}");
    assert_eq!(r["error"]["code"], -1015);
    let sample = fixture("binance_spot_too_many_orders_error.json");
    assert_eq!(
        sample["msg"],
        "Too many new orders; current limit is 1 orders per 10 SECOND."
    );
    assert_eq!(
        r["error"]["msg"],
        "Too many new orders; current limit is 50 orders per 10 SECOND."
    );
    assert_eq!(r["error"]["data"]["retryAfter"], T0 + 30_000);
    // Refused orders do not count; their weight does.
    assert_eq!(count(&r, "ORDERS", "SECOND"), Some(50));
    assert_eq!(count(&r, "ORDERS", "DAY"), Some(50));
    assert_eq!(ex.ledger().len(), 50);
    // Cancels and queries are still allowed during the orders back-off.
    let cancel = signed(
        "c",
        "order.cancel",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "c3"}),
        now + 1,
    );
    assert_eq!(ws(&mut ex, conn, &cancel, now + 1)["status"], 200);
    // The next window takes orders again.
    let now = T0 + 30_000;
    let r = ws(
        &mut ex,
        conn,
        &signed("o", "order.place", resting("c51"), now),
        now,
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(count(&r, "ORDERS", "SECOND"), Some(1));
    assert_eq!(count(&r, "ORDERS", "DAY"), Some(51));

    // REST: 429 with Retry-After; the order count headers only on success.
    let mut ex = exchange(RateLimits {
        orders_per_10s: 2,
        ..RateLimits::default()
    });
    let now = T0 + 1_500;
    assert_eq!(rest_order(&mut ex, "r1", now).status, 200);
    let ok = rest_order(&mut ex, "r2", now);
    assert_eq!(header(&ok, "X-MBX-ORDER-COUNT-10S"), Some("2"));
    assert_eq!(header(&ok, "X-MBX-ORDER-COUNT-1D"), Some("2"));
    let r = rest_order(&mut ex, "r3", now);
    assert_eq!(r.status, 429);
    assert_eq!(header(&r, "Retry-After"), Some("9"));
    assert!(header(&r, "X-MBX-ORDER-COUNT-10S").is_none());
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        json!({"code": -1015,
               "msg": "Too many new orders; current limit is 2 orders per 10 SECOND."})
    );
    assert_eq!(ex.limit_stats().orders_429, 1);
}

#[test]
fn sending_during_the_back_off_bans_the_ip_until_the_ban_ends() {
    let mut ex = exchange(RateLimits {
        weight_per_minute: 50,
        ..RateLimits::default()
    });
    let conn = ex.ws_connect(T0);
    let now = T0 + 10_000;
    ex.preload_weight(47, now);
    let r = time(&mut ex, conn, now);
    assert_eq!(r["status"], 200);
    let r = time(&mut ex, conn, now + 1);
    assert_eq!(r["status"], 429);
    assert_eq!(r["error"]["data"]["retryAfter"], T0 + 60_000);
    // Not backing off: banned for the default 2 minutes from this request.
    let at = now + 2;
    let until = at + 120_000;
    let r = time(&mut ex, conn, at);
    assert_eq!(r["status"], 418, "{r}");
    assert_eq!(r["error"]["code"], -1003);
    assert_eq!(
        r["error"]["msg"],
        format!(
            "Way too much request weight used; IP banned until {until}. Please use WebSocket \
             Streams for live updates to avoid bans."
        )
    );
    assert_eq!(
        r["error"]["data"],
        json!({"serverTime": at, "retryAfter": until})
    );
    assert_eq!(
        shape(&r),
        shape(&fixture("binance_ws_ip_banned_response.json"))
    );
    assert_eq!(ex.ban_until(at), Some(until));
    // Every request during the ban: 418, REST with Retry-After until the
    // end; connection attempts too.
    let later = at + 60_000;
    let r = ex.rest("GET", "/api/v3/ping", &[], b"", later);
    assert_eq!(r.status, 418);
    assert_eq!(header(&r, "Retry-After"), Some("60"));
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["code"], -1003);
    let signed_order = signed("o", "order.place", resting("b1"), later);
    assert_eq!(ws(&mut ex, conn, &signed_order, later)["status"], 418);
    let refused = ex.ws_handshake("/ws-api/v3", later).unwrap_err();
    assert_eq!(refused.status, 418);
    assert_eq!(header(&refused, "Retry-After"), Some("60"));
    assert!(ex.ledger().is_empty());
    let stats = ex.limit_stats();
    assert_eq!(
        (stats.answered_429, stats.answered_418, stats.bans),
        (1, 4, 1)
    );
    // The ban ends by itself.
    let r = time(&mut ex, conn, until);
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(ex.ban_until(until), None);
    assert!(ex.ws_handshake("/ws-api/v3", until).is_ok());

    // A new order during an orders back-off bans the IP too.
    let mut ex = exchange(RateLimits {
        orders_per_10s: 1,
        ban: Duration::from_secs(300),
        ..RateLimits::default()
    });
    let now = T0 + 100;
    assert_eq!(rest_order(&mut ex, "a", now).status, 200);
    assert_eq!(rest_order(&mut ex, "b", now).status, 429);
    let r = rest_order(&mut ex, "c", now + 1);
    assert_eq!(r.status, 418);
    assert_eq!(header(&r, "Retry-After"), Some("300"));
    assert_eq!(ex.ban_until(now + 1), Some(now + 1 + 300_000));
}

#[test]
fn forced_ban_and_preloaded_orders() {
    let mut ex = exchange(RateLimits::default());
    let conn = ex.ws_connect(T0);
    ex.force_ban(Duration::from_secs(5), T0);
    let r = time(&mut ex, conn, T0 + 4_999);
    assert_eq!(r["status"], 418);
    assert_eq!(r["error"]["data"]["retryAfter"], T0 + 5_000);
    assert_eq!(time(&mut ex, conn, T0 + 5_000)["status"], 200);
    // 49 preloaded: one more order fits, the next does not.
    let now = T0 + 6_000;
    ex.preload_orders(49, now);
    let place = |ex: &mut Exchange, cid: &str| {
        ws(
            ex,
            conn,
            &signed("o", "order.place", resting(cid), now),
            now,
        )
    };
    assert_eq!(place(&mut ex, "p1")["status"], 200);
    let r = place(&mut ex, "p2");
    assert_eq!(r["error"]["code"], -1015);
}

#[test]
fn connection_attempts_are_limited_per_5_minutes_and_cost_2_weight() {
    let mut ex = exchange(RateLimits {
        connections_per_5m: 3,
        ..RateLimits::default()
    });
    let now = T0 + 1_000;
    let conns: Vec<ConnId> = (0..3)
        .map(|_| ex.ws_handshake("/ws-api/v3", now).unwrap())
        .collect();
    let r = time(&mut ex, conns[0], now);
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(7));
    let refused = ex.ws_handshake("/ws-api/v3", now + 10).unwrap_err();
    assert_eq!(refused.status, 429);
    assert_eq!(header(&refused, "Retry-After"), Some("299"));
    assert_eq!(
        serde_json::from_str::<Value>(&refused.body).unwrap()["code"],
        -1003
    );
    assert_eq!(ex.limit_stats().connections_429, 1);
    assert_eq!(ex.ws_handshake("/nope", now).unwrap_err().status, 404);
    // The next 5-minute window (aligned: T0 + 5 min) takes connections.
    let c = ex.ws_handshake("/ws-api/v3", T0 + 300_000);
    assert!(c.is_ok());
    // Closing connections does not give attempts back.
    let mut ex = exchange(RateLimits {
        connections_per_5m: 1,
        ..RateLimits::default()
    });
    let c = ex.ws_handshake("/ws-api/v3", now).unwrap();
    ex.ws_disconnect(c);
    assert_eq!(ex.ws_handshake("/ws-api/v3", now).unwrap_err().status, 429);
}

#[test]
fn rate_limits_counts_follow_every_request() {
    let mut ex = exchange(RateLimits::default());
    let conn = ex.ws_connect(T0); // 2
    let rest_time = ex.rest("GET", "/api/v3/time", &[], b"", T0); // 1
    assert_eq!(header(&rest_time, "X-MBX-USED-WEIGHT-1M"), Some("3"));
    let r = time(&mut ex, conn, T0); // 1
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(4));
    assert_eq!(r["rateLimits"].as_array().unwrap().len(), 1);
    let r = ws(
        &mut ex,
        conn,
        &signed("o", "order.place", resting("a"), T0),
        T0,
    );
    let kinds: Vec<(&str, &str, u64)> = r["rateLimits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["rateLimitType"].as_str().unwrap(),
                l["interval"].as_str().unwrap(),
                l["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ORDERS", "SECOND", 1),
            ("ORDERS", "DAY", 1),
            ("REQUEST_WEIGHT", "MINUTE", 5)
        ]
    );
    let status = signed(
        "s",
        "order.status",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "a"}),
        T0,
    );
    let r = ws(&mut ex, conn, &status, T0); // 4
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(9));
    let r = ws(&mut ex, conn, r#"{"id":1,"method":"session.status"}"#, T0); // 2
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(11));
    let off = ws(
        &mut ex,
        conn,
        r#"{"id":1,"method":"time","params":{"returnRateLimits":false}}"#,
        T0,
    );
    assert!(off.get("rateLimits").is_none());
    let r = time(&mut ex, conn, T0);
    assert_eq!(count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(13));
    let stats = ex.limit_stats();
    assert_eq!((stats.answered_429, stats.answered_418), (0, 0));
}

#[test]
fn the_request_log_keeps_the_wire_order() {
    let mut ex = exchange(RateLimits {
        orders_per_10s: 2,
        ..RateLimits::default()
    });
    let a = ex.ws_connect(T0);
    let b = ex.ws_handshake("/ws-api/v3", T0).unwrap();
    ws(
        &mut ex,
        a,
        &signed("1", "order.place", resting("x1"), T0),
        T0,
    );
    rest_order(&mut ex, "x2", T0);
    ws(
        &mut ex,
        b,
        &signed("2", "order.place", resting("x3"), T0),
        T0,
    );
    let cancel = signed(
        "3",
        "order.cancel",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "x1"}),
        T0,
    );
    ws(&mut ex, a, &cancel, T0);
    type Row<'a> = (
        u64,
        Option<ConnId>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        u16,
    );
    let log: Vec<Row> = ex
        .request_log()
        .iter()
        .map(|r| {
            (
                r.seq,
                r.conn,
                r.method.as_str(),
                r.client_order_id.as_deref(),
                r.orig_client_order_id.as_deref(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        log,
        [
            (1, None, "GET /ws-api/v3", None, None, 101),
            (2, None, "GET /ws-api/v3", None, None, 101),
            (3, Some(a), "order.place", Some("x1"), None, 200),
            (4, None, "POST /api/v3/order", Some("x2"), None, 200),
            (5, Some(b), "order.place", Some("x3"), None, 429),
            (6, Some(a), "order.cancel", None, Some("x1"), 200),
        ]
    );
    assert!(ex.request_log().iter().all(|r| r.server_time == T0));
}
