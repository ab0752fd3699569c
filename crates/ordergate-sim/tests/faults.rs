//! Faults on purpose ([`ordergate_sim::binance::faults`]): each kind alone
//! does what the module docs say and is counted; the same seed replays the
//! same faults; `all` shows every kind in a run of a few thousand orders
//! and keeps the venue usable; the request log and the ledger stay exact;
//! specs that cannot be read are refused naming the bad part. Mostly
//! through the socket-free [`Exchange`] in virtual time, plus the socket
//! server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ordergate_sim::binance::sign::{sign_hex, ws_payload};
use ordergate_sim::binance::{
    ConnId, Exchange, FaultKind, FaultOutput, FaultSpec, FaultSpecError, FillModel, Frames,
    RateLimits, SimConfig, Simulator, DEMO_API_KEY, DEMO_API_SECRET, MAX_CONNECTION_AGE_MS,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200_000;

fn config(faults: FaultSpec, seed: u64) -> SimConfig {
    SimConfig {
        fill: FillModel::full(),
        limits: RateLimits::unlimited(),
        faults,
        fault_seed: seed,
        ..SimConfig::default()
    }
}

fn exchange(spec: &str) -> Exchange {
    Exchange::new(&config(spec.parse().unwrap(), 7), T0).unwrap()
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

fn parse(frames: &Frames) -> Vec<(ConnId, Value)> {
    frames
        .iter()
        .map(|(c, t)| (*c, serde_json::from_str(t).unwrap()))
        .collect()
}

/// A resting buy (below the 60000.00 reference) or a crossing one.
fn buy(price: &str, cid: &str) -> Value {
    json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
           "price": price, "quantity": "0.001", "newClientOrderId": cid,
           "newOrderRespType": "RESULT"})
}

fn subscribe(ex: &mut Exchange, conn: ConnId, now: u64) -> Value {
    let req = signed("sub", "userDataStream.subscribe.signature", json!({}), now);
    let frames = parse(&ex.ws_request(conn, &req, now));
    frames[0].1.clone()
}

fn place(
    ex: &mut Exchange,
    conn: ConnId,
    price: &str,
    cid: &str,
    now: u64,
) -> Vec<(ConnId, Value)> {
    parse(&ex.ws_request(conn, &signed(cid, "order.place", buy(price, cid), now), now))
}

fn kinds_of(frames: &[(ConnId, Value)]) -> Vec<(ConnId, String)> {
    frames
        .iter()
        .map(|(c, v)| {
            let k = match v.get("event") {
                Some(e) => match e["x"].as_str() {
                    Some(x) => format!("report {x}"),
                    None => e["e"].as_str().unwrap_or("?").to_owned(),
                },
                None => format!("answer {}", v["status"]),
            };
            (*c, k)
        })
        .collect()
}

fn count(ex: &Exchange, kind: FaultKind) -> u64 {
    ex.fault_counts().get(kind)
}

/// Polls every `step` ms from `from` until `until(output)` or `limit` ms.
fn poll_until(
    ex: &mut Exchange,
    from: u64,
    step: u64,
    limit: u64,
    mut until: impl FnMut(&FaultOutput, &Exchange) -> bool,
) -> (u64, FaultOutput) {
    let mut now = from;
    while now <= from + limit {
        let out = ex.poll_faults(now);
        if until(&out, ex) {
            return (now, out);
        }
        now += step;
    }
    panic!(
        "nothing happened within {limit} ms; counts {}",
        ex.fault_counts()
    );
}

#[test]
fn specs_parse_and_bad_ones_name_the_bad_part() {
    assert!(FaultSpec::default().is_empty());
    assert_eq!(FaultSpec::parse("none").unwrap(), FaultSpec::none());
    assert_eq!(FaultSpec::all().kinds(), FaultKind::ALL);
    let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "disconnect",
            "disconnect-after-accept",
            "delay",
            "drop",
            "unknown-accepted",
            "unknown-rejected",
            "busy",
            "duplicate",
            "fill-before-ack",
            "stream-loss",
            "max-age",
            "clock",
            "shutdown"
        ]
    );
    let s: FaultSpec = "drop:20,clock".parse().unwrap();
    assert_eq!(s.kinds(), [FaultKind::Drop, FaultKind::Clock]);
    assert_eq!(s.rate(FaultKind::Drop), Some(20));

    let err = |s: &str| FaultSpec::parse(s).unwrap_err();
    let e = err("drop,flood:3");
    assert!(
        matches!(&e, FaultSpecError::UnknownKind { kind, .. } if kind == "flood"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("\"flood\"") && text.contains("disconnect-after-accept"),
        "{text}"
    );
    let e = err("drop:lots");
    assert!(matches!(&e, FaultSpecError::BadRate { value, .. } if value == "lots"));
    assert!(e.to_string().contains("\"drop:lots\""), "{e}");
    assert!(matches!(err("delay:1001"), FaultSpecError::BadRate { .. }));
    assert!(matches!(err("delay:-1"), FaultSpecError::BadRate { .. }));
    assert!(matches!(err("drop,,clock"), FaultSpecError::EmptyItem(_)));
    assert!(matches!(err("none,drop"), FaultSpecError::NoneCombined(_)));
    assert!(matches!(
        err("all:5"),
        FaultSpecError::RateNotAllowed { .. }
    ));

    // No faults: nothing counted, no frame changes (byte for byte).
    let run = |spec: &str| {
        let mut ex = exchange(spec);
        let c = ex.ws_connect(T0);
        let mut out = ex.ws_request(
            c,
            &signed("s", "userDataStream.subscribe.signature", json!({}), T0),
            T0,
        );
        for i in 0..30u64 {
            let now = T0 + i * 100;
            let cid = format!("o{i}");
            let price = if i % 3 == 0 { "61000.00" } else { "59000.00" };
            out.extend(ex.ws_request(c, &signed(&cid, "order.place", buy(price, &cid), now), now));
        }
        (out, ex.fault_counts(), ex.request_log().to_vec())
    };
    let (plain, counts, log) = run("none");
    assert!(counts.0.is_empty());
    assert!(log.iter().all(|r| r.fault.is_none()));
    let (with_zero, counts, _) = run("drop:0,delay:0,duplicate:0");
    assert_eq!(plain, with_zero);
    assert_eq!(counts.total(), 0);
    assert_eq!(counts.0.len(), 3, "every enabled kind is present: {counts}");
}

#[test]
fn busy_and_unknown_rejected_place_nothing() {
    for spec in ["busy:1000", "unknown-rejected:1000"] {
        let mut ex = exchange(spec);
        let c = ex.ws_connect(T0);
        assert_eq!(subscribe(&mut ex, c, T0)["status"], 200);
        let mut codes = Vec::new();
        for i in 0..12 {
            let frames = place(&mut ex, c, "59000.00", &format!("b{i}"), T0);
            assert_eq!(frames.len(), 1, "{spec}: no events: {frames:?}");
            let r = &frames[0].1;
            codes.push((
                r["status"].as_u64().unwrap(),
                r["error"]["code"].as_i64().unwrap(),
            ));
            assert!(r["rateLimits"].is_array(), "{r}");
        }
        assert!(ex.ledger().is_empty(), "{spec}");
        codes.sort_unstable();
        codes.dedup();
        if spec.starts_with("busy") {
            assert_eq!(codes, [(503, -1008)]);
            assert_eq!(count(&ex, FaultKind::Busy), 12);
        } else {
            assert_eq!(
                codes,
                [(500, -1006), (503, -1007), (503, -1006)]
                    .iter()
                    .copied()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
            );
            assert_eq!(count(&ex, FaultKind::UnknownRejected), 12);
        }
        // Other requests are not touched; nothing counted on ORDERS.
        let r = parse(&ex.ws_request(c, r#"{"id":1,"method":"time"}"#, T0));
        assert_eq!(r[0].1["status"], 200);
        let log = ex.request_log();
        let places: Vec<_> = log.iter().filter(|r| r.method == "order.place").collect();
        assert_eq!(places.len(), 12);
        assert!(places
            .iter()
            .all(|r| r.status >= 500 && r.fault == Some(spec.split(':').next().unwrap())));
    }
    // A request the venue would refuse anyway (bad signature) gets its own
    // answer, not a fault.
    let mut ex = exchange("busy:1000");
    let c = ex.ws_connect(T0);
    let mut bad: Value =
        serde_json::from_str(&signed("x", "order.place", buy("59000.00", "x"), T0)).unwrap();
    bad["params"]["signature"] = json!("00");
    let r = parse(&ex.ws_request(c, &bad.to_string(), T0));
    assert_eq!(r[0].1["error"]["code"], -1022);
    assert_eq!(count(&ex, FaultKind::Busy), 0);
}

#[test]
fn unknown_accepted_places_and_publishes_but_answers_unknown() {
    let mut ex = exchange("unknown-accepted:1000");
    let c = ex.ws_connect(T0);
    subscribe(&mut ex, c, T0);
    let frames = place(&mut ex, c, "61000.00", "u1", T0);
    let kinds = kinds_of(&frames);
    assert_eq!(
        kinds[1..],
        [(c, "report NEW".into()), (c, "report TRADE".into())]
    );
    let r = &frames[0].1;
    let status = r["status"].as_u64().unwrap();
    let code = r["error"]["code"].as_i64().unwrap();
    assert!(
        matches!((status, code), (500, -1006) | (503, -1006) | (503, -1007)),
        "{r}"
    );
    assert!(
        r["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("status unknown"),
        "{r}"
    );
    let ledger = ex.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].order.client_order_id, "u1");
    let rec = ex.request_log().last().unwrap().clone();
    assert_eq!(
        (rec.status, rec.fault),
        (status as u16, Some("unknown-accepted"))
    );
    assert_eq!(count(&ex, FaultKind::UnknownAccepted), 1);
    // order.status finds it.
    let q = signed(
        "q",
        "order.status",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "u1"}),
        T0,
    );
    let q = parse(&ex.ws_request(c, &q, T0));
    assert_eq!(q[0].1["result"]["status"], "FILLED");
}

#[test]
fn disconnect_after_accept_places_then_closes_before_the_answer() {
    let mut ex = exchange("disconnect-after-accept:1000");
    let c = ex.ws_connect(T0);
    let watcher = ex.ws_connect(T0);
    subscribe(&mut ex, c, T0);
    subscribe(&mut ex, watcher, T0);
    let frames = place(&mut ex, c, "59000.00", "d1", T0);
    // Nothing to the closed connection; the other subscriber sees NEW.
    assert_eq!(kinds_of(&frames), [(watcher, "report NEW".into())]);
    assert_eq!(ex.ledger().len(), 1);
    assert!(!ex.connections().any(|x| x == c), "forgotten at once");
    assert!(ex.next_fault_ms().unwrap() <= T0, "the close is due now");
    let out = ex.poll_faults(T0);
    assert_eq!(out.close, [c]);
    assert!(out.frames.is_empty());
    assert!(ex.poll_faults(T0).close.is_empty(), "returned once");
    assert!(ex
        .ws_request(c, r#"{"id":1,"method":"ping"}"#, T0)
        .is_empty());
    assert_eq!(count(&ex, FaultKind::DisconnectAfterAccept), 1);
    let rec = ex
        .request_log()
        .iter()
        .find(|r| r.method == "order.place")
        .unwrap()
        .clone();
    assert_eq!(
        (rec.status, rec.fault),
        (200, Some("disconnect-after-accept"))
    );
    // Only placed orders: a refused one is answered normally.
    let w = place(&mut ex, watcher, "59000.001", "d2", T0);
    assert_eq!(w[0].1["error"]["code"], -1013);
    assert_eq!(count(&ex, FaultKind::DisconnectAfterAccept), 1);
}

#[test]
fn drop_executes_without_an_answer() {
    let mut ex = exchange("drop:1000");
    let c = ex.ws_connect(T0);
    // Even the subscription's answer is dropped, but it is in force.
    let frames = ex.ws_request(
        c,
        &signed("s", "userDataStream.subscribe.signature", json!({}), T0),
        T0,
    );
    assert!(frames.is_empty());
    let frames = place(&mut ex, c, "59000.00", "p1", T0);
    assert_eq!(kinds_of(&frames), [(c, "report NEW".into())]);
    assert_eq!(ex.ledger().len(), 1);
    assert_eq!(count(&ex, FaultKind::Drop), 2);
    assert!(ex
        .request_log()
        .iter()
        .all(|r| r.fault.is_none() || r.fault == Some("drop")));
    assert_eq!(ex.request_log().last().unwrap().status, 200);
}

#[test]
fn delay_holds_the_answer_and_what_follows_on_the_stream() {
    let mut ex = exchange("none");
    let c = ex.ws_connect(T0);
    subscribe(&mut ex, c, T0);
    ex.set_faults("delay:1000".parse().unwrap(), 3);
    let now = T0 + 1_000;
    assert!(place(&mut ex, c, "59000.00", "w1", now).is_empty());
    assert_eq!(ex.ledger().len(), 1, "executed at once");
    let due = ex.next_fault_ms().unwrap();
    assert!((now + 20..=now + 2_000).contains(&due), "{}", due - now);
    // The market fills it before the answer is out: the TRADE waits
    // behind the held NEW.
    let moved = ex
        .set_reference_price("BTCUSDT", "58999.99", now + 10)
        .unwrap();
    assert_eq!(moved.events.len(), 1);
    assert!(moved.frames.is_empty());
    assert!(ex.poll_faults(due - 1).frames.is_empty());
    let out = ex.poll_faults(due);
    let kinds = kinds_of(&parse(&out.frames));
    assert_eq!(
        kinds,
        [
            (c, "answer 200".into()),
            (c, "report NEW".into()),
            (c, "report TRADE".into())
        ]
    );
    assert_eq!(count(&ex, FaultKind::Delay), 1);
    assert!(ex.next_fault_ms().is_none_or(|t| t > due + 10_000));
}

#[test]
fn duplicate_sends_reports_twice() {
    let mut ex = exchange("duplicate:1000");
    let c = ex.ws_connect(T0);
    subscribe(&mut ex, c, T0);
    let frames = place(&mut ex, c, "61000.00", "x1", T0);
    assert_eq!(
        kinds_of(&frames),
        [
            (c, "answer 200".into()),
            (c, "report NEW".into()),
            (c, "report NEW".into()),
            (c, "report TRADE".into()),
            (c, "report TRADE".into())
        ]
    );
    assert_eq!(frames[1].1, frames[2].1);
    assert_eq!(count(&ex, FaultKind::Duplicate), 2);
    // Market moves too.
    place(&mut ex, c, "59000.00", "x2", T0);
    let moved = ex
        .set_reference_price("BTCUSDT", "58999.99", T0 + 1)
        .unwrap();
    assert_eq!(moved.frames.len(), 2);
    assert_eq!(ex.ledger().len(), 2);
}

#[test]
fn fill_before_ack_sends_the_reports_first() {
    let mut ex = exchange("fill-before-ack:1000");
    let c = ex.ws_connect(T0);
    subscribe(&mut ex, c, T0);
    let frames = place(&mut ex, c, "61000.00", "f1", T0);
    assert_eq!(
        kinds_of(&frames),
        [
            (c, "report NEW".into()),
            (c, "report TRADE".into()),
            (c, "answer 200".into())
        ]
    );
    assert_eq!(frames[2].1["result"]["status"], "FILLED");
    // An order that does not trade at once is answered first.
    let frames = place(&mut ex, c, "59000.00", "f2", T0);
    assert_eq!(kinds_of(&frames)[0], (c, "answer 200".into()));
    assert_eq!(count(&ex, FaultKind::FillBeforeAck), 1);
}

#[test]
fn stream_loss_terminates_a_subscription_and_refuses_new_ones_for_a_while() {
    let mut ex = exchange("stream-loss");
    let c = ex.ws_connect(T0);
    subscribe(&mut ex, c, T0);
    let (at, out) = poll_until(&mut ex, T0, 100, 9_000, |out, _| !out.frames.is_empty());
    assert!((T0 + 1_000..=T0 + 8_000).contains(&at), "{}", at - T0);
    let frames = parse(&out.frames);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        frames[0].1,
        json!({"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": at}})
    );
    assert_eq!(count(&ex, FaultKind::StreamLoss), 1);
    // Events are no longer delivered to it.
    let frames = place(&mut ex, c, "59000.00", "s1", at);
    assert_eq!(kinds_of(&frames), [(c, "answer 200".into())]);
    // A new subscription is refused for 1..=5 s, then accepted.
    let r = subscribe(&mut ex, c, at);
    assert_eq!(
        (&r["status"], &r["error"]["code"]),
        (&json!(503), &json!(-1008)),
        "{r}"
    );
    assert_eq!(ex.request_log().last().unwrap().fault, Some("stream-loss"));
    let mut t = at;
    loop {
        t += 250;
        assert!(t <= at + 5_000, "still refused after 5 s");
        let r = subscribe(&mut ex, c, t);
        if r["status"] == 200 {
            assert_eq!(r["result"]["subscriptionId"], 1);
            break;
        }
    }
    assert!(t >= at + 1_000);
    assert_eq!(
        count(&ex, FaultKind::StreamLoss),
        1,
        "refusals are not new faults"
    );
}

#[test]
fn max_age_closes_connections_with_the_24_hour_default() {
    // Without faults: 24 hours, checked on poll and on a late frame.
    let mut ex = exchange("none");
    let a = ex.ws_connect(T0);
    let b = ex.ws_connect(T0 + 1);
    assert_eq!(ex.next_fault_ms(), Some(T0 + MAX_CONNECTION_AGE_MS));
    assert!(ex
        .poll_faults(T0 + MAX_CONNECTION_AGE_MS - 1)
        .close
        .is_empty());
    assert_eq!(ex.poll_faults(T0 + MAX_CONNECTION_AGE_MS).close, [a]);
    assert!(ex
        .ws_request(
            b,
            r#"{"id":1,"method":"ping"}"#,
            T0 + MAX_CONNECTION_AGE_MS + 1
        )
        .is_empty());
    assert_eq!(ex.poll_faults(T0 + MAX_CONNECTION_AGE_MS + 1).close, [b]);
    assert!(ex.fault_counts().0.is_empty());

    // With the fault: the first within 2..=6 s, later ones 30..=120 s.
    let mut ex = exchange("max-age");
    let a = ex.ws_connect(T0);
    let (at, out) = poll_until(&mut ex, T0, 10, 7_000, |out, _| !out.close.is_empty());
    assert_eq!(out.close, [a]);
    assert!((T0 + 2_000..=T0 + 6_000).contains(&at), "{}", at - T0);
    assert_eq!(count(&ex, FaultKind::MaxAge), 1);
    let b = ex.ws_connect(at);
    let (at2, out) = poll_until(&mut ex, at, 100, 121_000, |out, _| !out.close.is_empty());
    assert_eq!(out.close, [b]);
    assert!((at + 30_000..=at + 120_100).contains(&at2), "{}", at2 - at);
    // An explicit rate: around 1000/N seconds.
    let mut ex = exchange("max-age:500");
    ex.ws_connect(T0);
    let (at, _) = poll_until(&mut ex, T0, 10, 3_100, |out, _| !out.close.is_empty());
    assert!((T0 + 1_000..=T0 + 3_000).contains(&at), "{}", at - T0);
}

#[test]
fn clock_steps_and_drifts() {
    let mut ex = exchange("clock");
    let c = ex.ws_connect(T0);
    let before = ex.clock();
    let (at, _) = poll_until(&mut ex, T0, 100, 8_100, |_, ex| {
        count(ex, FaultKind::Clock) > 0
    });
    assert!(at >= T0 + 1_000);
    let after = ex.clock();
    assert_ne!(before, after);
    let offset = ex.server_time_ms(at) as i64 - at as i64;
    assert!(offset.abs() <= 1_500, "{offset}");
    assert!(after.drift_ppm.abs() <= 200);
    // It keeps going, and the server clock stays within a few seconds.
    let mut now = at;
    while count(&ex, FaultKind::Clock) < 10 {
        now += 500;
        ex.poll_faults(now);
        let offset = ex.server_time_ms(now) as i64 - now as i64;
        assert!(offset.abs() <= 5_000, "{offset}");
    }
    // Requests see the server clock: a timestamp from the caller's clock
    // may now be refused.
    let _ = ex.ws_request(c, r#"{"id":1,"method":"time"}"#, now);
}

#[test]
fn shutdown_announces_then_closes_after_the_grace() {
    let mut ex = exchange("shutdown");
    let a = ex.ws_connect(T0);
    let b = ex.ws_connect(T0);
    let (at, out) = poll_until(&mut ex, T0, 100, 8_100, |out, _| !out.frames.is_empty());
    let frames = parse(&out.frames);
    assert_eq!(frames.len(), 1);
    let (victim, v) = &frames[0];
    assert!(*victim == a || *victim == b);
    assert_eq!(v, &json!({"event": {"e": "serverShutdown", "E": at}}));
    assert_eq!(count(&ex, FaultKind::Shutdown), 1);
    // It keeps working during the grace, then is closed.
    let grace = ex.shutdown_grace().as_millis() as u64;
    let r = parse(&ex.ws_request(*victim, r#"{"id":1,"method":"ping"}"#, at + grace - 1));
    assert_eq!(r[0].1["status"], 200);
    assert!(ex.poll_faults(at + grace - 1).close.is_empty());
    assert_eq!(ex.poll_faults(at + grace).close, [*victim]);
    assert_eq!(ex.connections().count(), 1);
}

#[test]
fn disconnect_closes_after_some_frames() {
    let mut ex = exchange("disconnect");
    let c = ex.ws_connect(T0);
    let mut sent = 0u64;
    let mut closed = false;
    for i in 0..300u64 {
        let now = T0 + i;
        ex.ws_request(c, r#"{"id":1,"method":"ping"}"#, now);
        sent += 1;
        if ex.poll_faults(now).close == [c] {
            closed = true;
            break;
        }
    }
    assert!(closed);
    assert!((10..=80).contains(&sent), "{sent}");
    assert_eq!(count(&ex, FaultKind::Disconnect), 1);
    // The last frame was executed (and logged) or never reached the venue.
    let logged = ex
        .request_log()
        .iter()
        .filter(|r| r.conn == Some(c))
        .count() as u64;
    assert!(logged == sent || logged == sent - 1, "{logged} of {sent}");
    let last = ex.request_log().last().unwrap();
    assert!(logged == sent - 1 || last.fault == Some("disconnect"));
    // Later connections last 100..=600 frames.
    let d = ex.ws_connect(T0 + 1_000);
    let mut n = 0;
    while ex.poll_faults(T0 + 1_000).close != [d] {
        ex.ws_request(d, r#"{"id":1,"method":"ping"}"#, T0 + 1_000);
        n += 1;
        assert!(n <= 600);
    }
    assert!(n >= 100, "{n}");
}

/// A client of the venue in virtual time, as the sidecar drives it: one
/// connection carrying the orders of three strategies at `per_second`,
/// subscribed to the user data stream; it reconnects 200 ms after a close,
/// resubscribes after `eventStreamTerminated` (retrying refusals), and
/// syncs its clock with `time` every 10 s and after a -1021; the market
/// moves every 2 s so resting orders fill. Returns the exchange and what
/// the client received.
fn trade(faults: FaultSpec, seed: u64, orders: usize, per_second: u64) -> (Exchange, Vec<String>) {
    struct Client {
        conn: Option<ConnId>,
        subscribe_at: Option<u64>,
        sync_at: u64,
        offset_ms: i64,
        received: Vec<String>,
    }
    impl Client {
        fn ts(&self, now: u64) -> u64 {
            (now as i64 + self.offset_ms) as u64
        }
        fn take(&mut self, frames: Frames, now: u64) {
            for (c, text) in frames {
                if Some(c) != self.conn {
                    continue;
                }
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["id"] == "sub" && v["status"] != 200 {
                    self.subscribe_at = Some(now + 1_000);
                }
                if v["id"] == "time" {
                    if let Some(t) = v["result"]["serverTime"].as_u64() {
                        self.offset_ms = t as i64 - now as i64;
                    }
                }
                if v["error"]["code"] == -1021 {
                    self.sync_at = self.sync_at.min(now);
                }
                if v["event"]["e"] == "eventStreamTerminated" {
                    self.subscribe_at = Some(now + 200);
                }
                self.received.push(text);
            }
        }
    }
    let mut ex = Exchange::new(&config(faults, seed), T0).unwrap();
    let mut cl = Client {
        conn: None,
        subscribe_at: None,
        sync_at: T0,
        offset_ms: 0,
        received: Vec::new(),
    };
    let mut reconnect_at = T0;
    let mut sent = 0usize;
    let step = 1_000 / per_second;
    let mut next_order = T0 + 50;
    let mut next_move = T0 + 2_000;
    let mut up = false;
    let mut now = T0;
    while sent < orders {
        // The exchange's faults first.
        while ex.next_fault_ms().is_some_and(|t| t <= now) {
            let out = ex.poll_faults(now);
            cl.take(out.frames, now);
            if cl.conn.is_some_and(|c| out.close.contains(&c)) {
                cl.conn = None;
                reconnect_at = now + 200;
            }
        }
        if cl.conn.is_none() && now >= reconnect_at {
            cl.conn = Some(ex.ws_connect(now));
            cl.subscribe_at = Some(now);
        }
        if let Some(c) = cl.conn {
            if now >= cl.sync_at {
                cl.sync_at = now + 10_000;
                let frames = ex.ws_request(c, r#"{"id":"time","method":"time"}"#, now);
                cl.take(frames, now);
            }
        }
        if let (Some(c), Some(at)) = (cl.conn, cl.subscribe_at) {
            if now >= at {
                cl.subscribe_at = None;
                let req = signed(
                    "sub",
                    "userDataStream.subscribe.signature",
                    json!({}),
                    cl.ts(now),
                );
                let frames = ex.ws_request(c, &req, now);
                cl.take(frames, now);
            }
        }
        if now >= next_order {
            next_order += step;
            if let Some(c) = cl.conn {
                let strategy = sent % 3;
                let cid = format!("s{strategy}-{sent}");
                let params = match sent % 4 {
                    0 => {
                        json!({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001", "newClientOrderId": cid})
                    }
                    1 => {
                        json!({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.001", "newClientOrderId": cid})
                    }
                    2 => buy("59999.00", &cid),
                    _ => {
                        json!({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                                "price": "60001.00", "quantity": "0.001", "newClientOrderId": cid})
                    }
                };
                let req = signed(&cid, "order.place", params, cl.ts(now));
                let frames = ex.ws_request(c, &req, now);
                cl.take(frames, now);
                sent += 1;
            }
        }
        if now >= next_move {
            next_move += 2_000;
            up = !up;
            let price = if up { "60001.00" } else { "59999.00" };
            let moved = ex.set_reference_price("BTCUSDT", price, now).unwrap();
            cl.take(moved.frames, now);
            let back = ex.set_reference_price("BTCUSDT", "60000.00", now).unwrap();
            cl.take(back.frames, now);
        }
        now += 1;
    }
    (ex, cl.received)
}

/// The log and the ledger agree under every fault: each order the venue
/// created is one `order.place` in the log that it executed, and no
/// client id was placed twice.
fn assert_exact(ex: &Exchange) {
    let log = ex.request_log();
    let executed: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "order.place")
        .filter(|r| r.status == 200 || r.fault == Some("unknown-accepted"))
        .map(|r| r.client_order_id.as_deref().unwrap())
        .collect();
    let ledger = ex.ledger();
    let mut created: Vec<&str> = ledger
        .iter()
        .map(|e| e.order.client_order_id.as_str())
        .collect();
    let mut logged = executed.clone();
    created.sort_unstable();
    logged.sort_unstable();
    assert_eq!(created, logged);
    let before = created.len();
    created.dedup();
    assert_eq!(created.len(), before);
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
    }
}

#[test]
fn all_shows_every_kind_in_a_run_and_the_venue_stays_usable() {
    let (ex, received) = trade(FaultSpec::all(), 1, 2_000, 30);
    let counts = ex.fault_counts();
    for k in FaultKind::ALL {
        assert!(counts.get(k) > 0, "{k} never injected: {counts}");
    }
    assert_exact(&ex);
    // Usable: most orders were placed and answered.
    let placed = ex.ledger().len();
    assert!(placed > 1_800, "{placed} of 2000 placed; {counts}");
    let answered_ok = received
        .iter()
        .filter(|t| t.contains("\"status\":200") && t.contains("\"orderId\""))
        .count();
    assert!(answered_ok > 1_600, "{answered_ok} answered; {counts}");

    // Runs of 200 orders (13 s) see every kind most of the time.
    let mut complete = 0;
    for seed in 1..=10 {
        let (ex, _) = trade(FaultSpec::all(), seed, 200, 15);
        assert_exact(&ex);
        let c = ex.fault_counts();
        if FaultKind::ALL.iter().all(|&k| c.get(k) > 0) {
            complete += 1;
        }
    }
    assert!(complete >= 8, "{complete} of 10 short runs saw every kind");
}

#[test]
fn the_same_seed_replays_the_same_faults() {
    let (a, ra) = trade(FaultSpec::all(), 42, 300, 40);
    let (b, rb) = trade(FaultSpec::all(), 42, 300, 40);
    assert_eq!(ra, rb);
    assert_eq!(a.fault_counts(), b.fault_counts());
    assert_eq!(a.request_log(), b.request_log());
    assert_eq!(a.ledger(), b.ledger());
    let (c, rc) = trade(FaultSpec::all(), 43, 300, 40);
    assert_ne!(ra, rc);
    assert_ne!(a.request_log(), c.request_log());
    // Turning one kind on does not change another's draws.
    let (d, _) = trade("drop:50".parse().unwrap(), 5, 300, 40);
    let (e, _) = trade("drop:50,duplicate:50".parse().unwrap(), 5, 300, 40);
    let dropped = |ex: &Exchange| -> Vec<u64> {
        ex.request_log()
            .iter()
            .filter(|r| r.fault == Some("drop"))
            .map(|r| r.seq)
            .collect()
    };
    assert_eq!(dropped(&d), dropped(&e));
    assert!(count(&e, FaultKind::Duplicate) > 0);
}

async fn connect(
    sim: &ordergate_sim::binance::SimHandle,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(sim.ws_url().as_str(), tcp)
        .await
        .unwrap();
    ws
}

/// Over real sockets: a connection closed abruptly after an accepted
/// order, a graceful close at the maximum age, a busy refusal, and a
/// delayed answer the driver's timer sends later.
#[tokio::test]
async fn faults_over_sockets() {
    let spec: FaultSpec = "disconnect-after-accept:1000,max-age:700".parse().unwrap();
    let sim = Simulator::start(config(spec, 1), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut ws = connect(&sim).await;
    let now = sim.server_time_ms();
    ws.send(Message::text(signed(
        "p",
        "order.place",
        buy("59000.00", "net-1"),
        now,
    )))
    .await
    .unwrap();
    // No answer: the socket ends without a close frame.
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(
        !matches!(
            end,
            Some(Ok(Message::Text(_))) | Some(Ok(Message::Close(Some(_))))
        ),
        "{end:?}"
    );
    assert_eq!(sim.ledger().len(), 1);
    assert_eq!(sim.fault_counts().get(FaultKind::DisconnectAfterAccept), 1);

    // A connection that only pings is closed at its maximum age (around
    // 1.4 s here) with a normal close frame.
    let mut ws = connect(&sim).await;
    let started = std::time::Instant::now();
    ws.send(Message::text(r#"{"id":1,"method":"ping"}"#))
        .await
        .unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Normal);
    let age = started.elapsed();
    assert!(
        age >= Duration::from_millis(600) && age < Duration::from_secs(4),
        "{age:?}"
    );
    assert_eq!(sim.fault_counts().get(FaultKind::MaxAge), 1);

    // Busy over the socket; counts through the handle.
    sim.set_faults("busy:1000".parse().unwrap(), 2);
    let mut ws = connect(&sim).await;
    let now = sim.server_time_ms();
    ws.send(Message::text(signed(
        "b",
        "order.place",
        buy("59000.00", "net-2"),
        now,
    )))
    .await
    .unwrap();
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    let v: Value = serde_json::from_str(answer.as_str()).unwrap();
    assert_eq!(
        (&v["status"], &v["error"]["code"]),
        (&json!(503), &json!(-1008))
    );
    assert_eq!(sim.fault_counts().get(FaultKind::Busy), 1);
    assert_eq!(sim.ledger().len(), 1);

    // A delayed answer comes later, sent by the driver's fault timer.
    sim.set_faults("delay:1000".parse().unwrap(), 3);
    let sent = std::time::Instant::now();
    ws.send(Message::text(r#"{"id":"late","method":"time"}"#))
        .await
        .unwrap();
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    let took = sent.elapsed();
    let v: Value = serde_json::from_str(answer.as_str()).unwrap();
    assert_eq!((&v["id"], &v["status"]), (&json!("late"), &json!(200)));
    assert!(took >= Duration::from_millis(20), "{took:?}");
    assert_eq!(sim.fault_counts().get(FaultKind::Delay), 1);
    sim.shutdown();
}
