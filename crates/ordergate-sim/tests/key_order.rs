//! Key order: every response and event the simulator writes lists its
//! keys in the order of the official sample (`tests/fixtures/`), for the
//! keys both have. serde_json's `Value` sorts keys, so the frames are read
//! with an order-keeping tree instead.
//!
//! Where the samples disagree with each other (the open orders sample puts
//! `origQuoteOrderQty` before `workingTime`, the query sample after; the
//! FAQ's expired MARKET sample puts `fills` before
//! `selfTradePreventionMode`, the REST FULL sample after), the simulator
//! follows the method's own sample, which is the one checked here.

use std::collections::VecDeque;
use std::fmt;
use std::io::{Read, Write};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ordergate_sim::binance::sign::{sign_hex, ws_payload};
use ordergate_sim::binance::{
    FillModel, SimConfig, SimHandle, Simulator, DEMO_API_KEY, DEMO_API_SECRET,
};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// JSON with object keys in the order written.
#[derive(Debug)]
enum Tree {
    Obj(Vec<(String, Tree)>),
    Arr(Vec<Tree>),
    Leaf,
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Tree::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry::<String, Tree>()? {
                    v.push(kv);
                }
                Ok(Tree::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Tree {
    fn get(&self, key: &str) -> Option<&Tree> {
        match self {
            Tree::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// The shared keys of `a` and `e` come in the same order, recursively;
/// array elements are compared with the sample's first element.
fn same_order(path: &str, a: &Tree, e: &Tree) -> Result<(), String> {
    match (a, e) {
        (Tree::Obj(am), Tree::Obj(em)) => {
            let shared = |from: &[(String, Tree)], other: &[(String, Tree)]| -> Vec<String> {
                from.iter()
                    .map(|(k, _)| k.clone())
                    .filter(|k| other.iter().any(|(o, _)| o == k))
                    .collect()
            };
            let (ak, ek) = (shared(am, em), shared(em, am));
            if ak != ek {
                return Err(format!("{path}: keys {ak:?}, sample {ek:?}"));
            }
            for (k, av) in am {
                if let Some((_, ev)) = em.iter().find(|(o, _)| o == k) {
                    same_order(&format!("{path}.{k}"), av, ev)?;
                }
            }
            Ok(())
        }
        (Tree::Arr(aa), Tree::Arr(ea)) => match ea.first() {
            Some(first) => aa
                .iter()
                .enumerate()
                .try_for_each(|(i, av)| same_order(&format!("{path}[{i}]"), av, first)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The `payload` of a sample in `tests/fixtures/`, keys in file order.
fn sample(name: &str) -> Tree {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let tree: Tree = serde_json::from_str(&text).unwrap();
    match tree {
        Tree::Obj(m) => m.into_iter().find(|(k, _)| k == "payload").unwrap().1,
        _ => panic!("{path}: not an object"),
    }
}

#[track_caller]
fn assert_order(text: &str, sample_name: &str) {
    let actual: Tree = serde_json::from_str(text).unwrap();
    if let Err(e) = same_order("$", &actual, &sample(sample_name)) {
        panic!("{sample_name}: {e}\nsimulator: {text}");
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct Client {
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    queued: VecDeque<String>,
}

impl Client {
    async fn connect(sim: &SimHandle) -> Client {
        let tcp = TcpStream::connect(sim.addr()).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(sim.ws_url().as_str(), tcp)
            .await
            .unwrap();
        Client {
            ws,
            next_id: 1,
            queued: VecDeque::new(),
        }
    }

    async fn frame(&mut self) -> String {
        if let Some(f) = self.queued.pop_front() {
            return f;
        }
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("timed out")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                return t.as_str().to_owned();
            }
        }
    }

    /// Sends a request (signed when `signed`) and returns the response's
    /// text; other frames are queued.
    async fn request(&mut self, method: &str, params: Value, signed: bool) -> String {
        let mut params = params.as_object().cloned().unwrap_or_default();
        if signed {
            params.insert("apiKey".into(), json!(DEMO_API_KEY));
            params.insert("timestamp".into(), json!(now_ms()));
            let texts: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect();
            let payload = ws_payload(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let sig = sign_hex(DEMO_API_SECRET.as_bytes(), payload.as_bytes());
            params.insert("signature".into(), json!(sig));
        }
        let id = format!("r{}", self.next_id);
        self.next_id += 1;
        let req = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(req.to_string())).await.unwrap();
        loop {
            let text = match self.ws.next().await.unwrap().unwrap() {
                Message::Text(t) => t.as_str().to_owned(),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                return text;
            }
            self.queued.push_back(text);
        }
    }
}

fn rest(sim: &SimHandle, method: &str, params: &str) -> String {
    let params = format!("{params}&timestamp={}", now_ms());
    let sig = sign_hex(DEMO_API_SECRET.as_bytes(), params.as_bytes());
    let mut s = std::net::TcpStream::connect(sim.addr()).unwrap();
    write!(
        s,
        "{method} /api/v3/order?{params}&signature={sig} HTTP/1.1\r\nHost: sim\r\n\
         X-MBX-APIKEY: {DEMO_API_KEY}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (_, body) = reply.split_once("\r\n\r\n").unwrap();
    body.to_owned()
}

#[tokio::test]
async fn responses_and_events_keep_the_samples_key_order() {
    let config = SimConfig {
        fill: FillModel::full(),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = Client::connect(&sim).await;

    let r = c.request("time", json!({}), false).await;
    assert_order(&r, "binance_ws_rate_limits_time_response.json");
    let r = c
        .request("userDataStream.subscribe.signature", json!({}), true)
        .await;
    assert_order(&r, "binance_ws_user_data_stream_subscribe_response.json");

    let limit = |price: &str, resp: &str| {
        json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
               "price": price, "quantity": "0.01", "newOrderRespType": resp})
    };
    let r = c
        .request("order.place", limit("59000.00", "RESULT"), true)
        .await;
    assert_order(&r, "binance_ws_order_place_response_result.json");
    assert_order(&c.frame().await, "binance_spot_execution_report.json");
    let r = c
        .request("order.place", limit("50000.00", "ACK"), true)
        .await;
    assert_order(&r, "binance_ws_order_place_response_ack.json");
    let ack: Value = serde_json::from_str(&r).unwrap();
    c.frame().await;

    sim.set_reference_price("BTCUSDT", "58999.99").unwrap();
    let trade = c.frame().await;
    let tree: Tree = serde_json::from_str(&trade).unwrap();
    same_order(
        "$.event",
        tree.get("event").unwrap(),
        &sample("binance_spot_execution_report_trade.json"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{trade}"));

    let id = ack["result"]["orderId"].clone();
    let r = c
        .request(
            "order.status",
            json!({"symbol": "BTCUSDT", "orderId": id}),
            true,
        )
        .await;
    assert_order(&r, "binance_ws_order_status_response.json");
    let r = c
        .request(
            "order.cancel",
            json!({"symbol": "BTCUSDT", "orderId": id}),
            true,
        )
        .await;
    assert_order(&r, "binance_ws_order_cancel_response.json");
    assert_order(&c.frame().await, "binance_spot_execution_report.json");

    let r = c
        .request("order.place", limit("50000.001", "ACK"), true)
        .await;
    assert!(r.contains("-1013"), "{r}");
    assert_order(&r, "binance_ws_response_error_example.json");

    c.request("session.logon", json!({}), true).await;
    let r = c.request("session.status", json!({}), false).await;
    assert_order(&r, "binance_ws_session_status_response.json");

    // REST: FULL (crossing the 58999.99 reference), query, cancel.
    let full = rest(
        &sim,
        "POST",
        "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.01&price=58000&newOrderRespType=FULL",
    );
    assert_order(&full, "binance_spot_order_response_full.json");
    let placed = rest(
        &sim,
        "POST",
        "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.01&price=70000&newClientOrderId=k-1",
    );
    assert!(placed.contains("\"NEW\""), "{placed}");
    let q = rest(&sim, "GET", "symbol=BTCUSDT&origClientOrderId=k-1");
    assert_order(&q, "binance_spot_query_order_response.json");
    let x = rest(&sim, "DELETE", "symbol=BTCUSDT&origClientOrderId=k-1");
    assert_order(&x, "binance_spot_cancel_order_response.json");

    while !c.queued.is_empty() {
        c.frame().await;
    }
    sim.trigger_server_shutdown();
    let mut f = c.frame().await;
    while f.contains("executionReport") {
        f = c.frame().await;
    }
    assert_order(&f, "binance_ws_server_shutdown_event.json");
}
