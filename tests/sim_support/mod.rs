//! Shared by the simulator tests: a tiny signing WebSocket API client, a
//! tiny REST client, fixture loading and the key-set/type comparison.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ordergate::venue::binance::sign;
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Bound on every wait, so a broken simulator fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `payload` of a fixture file in `tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    v["payload"].clone()
}

pub fn fixture_file(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks that `actual` has exactly the keys of `expected`, recursively,
/// with the same JSON types. Keys in `conditional` (documented as present
/// only in some cases) may be on either side alone. Array elements are
/// each compared with the sample's first element.
pub fn same_shape(actual: &Value, expected: &Value, conditional: &[&str]) -> Result<(), String> {
    shape_at("$", actual, expected, conditional)
}

fn shape_at(path: &str, a: &Value, e: &Value, cond: &[&str]) -> Result<(), String> {
    if kind(a) != kind(e) {
        return Err(format!(
            "{path}: {} in the simulator, {} in the sample ({a} vs {e})",
            kind(a),
            kind(e)
        ));
    }
    match (a, e) {
        (Value::Object(am), Value::Object(em)) => {
            for k in am.keys() {
                if !em.contains_key(k) && !cond.contains(&k.as_str()) {
                    return Err(format!("{path}.{k}: not in the sample"));
                }
            }
            for (k, ev) in em {
                match am.get(k) {
                    Some(av) => shape_at(&format!("{path}.{k}"), av, ev, cond)?,
                    None if cond.contains(&k.as_str()) => {}
                    None => return Err(format!("{path}.{k}: missing from the simulator's answer")),
                }
            }
            Ok(())
        }
        (Value::Array(aa), Value::Array(ea)) => match ea.first() {
            Some(first) => aa
                .iter()
                .enumerate()
                .try_for_each(|(i, av)| shape_at(&format!("{path}[{i}]"), av, first, cond)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

#[track_caller]
pub fn assert_shape(actual: &Value, expected: &Value, conditional: &[&str]) {
    if let Err(e) = same_shape(actual, expected, conditional) {
        panic!("{e}\nsimulator: {actual}\nsample:    {expected}");
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The text a param value is signed as: strings as sent, others as JSON.
fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Adds `apiKey`, `timestamp` (unless given) and `signature` to `params`.
pub fn sign_params(params: &mut Map<String, Value>, key: &str, secret: &str, ts: u64) {
    params.insert("apiKey".into(), Value::from(key));
    params.entry("timestamp").or_insert_with(|| Value::from(ts));
    let texts: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.clone(), param_text(v)))
        .collect();
    let payload = sign::ws_payload(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sig = sign::hmac_sha256_hex(secret.as_bytes(), payload.as_bytes());
    params.insert("signature".into(), Value::from(sig));
}

/// A WebSocket API client that signs with the given key.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub key: String,
    pub secret: String,
    next_id: u64,
    /// Frames that arrived while waiting for a response.
    pub pending: VecDeque<Value>,
}

impl WsClient {
    pub async fn connect(url: &str, key: &str, secret: &str) -> WsClient {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("connect");
        WsClient {
            ws,
            key: key.into(),
            secret: secret.into(),
            next_id: 1,
            pending: VecDeque::new(),
        }
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text frame, parsed.
    pub async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection closed")
                .expect("read");
            match m {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
                Message::Close(_) => panic!("closed by the server"),
                _ => continue,
            }
        }
    }

    /// The next frame, or None once the server closed the connection.
    pub async fn recv_or_close(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap())
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends a request and returns its response; other frames are queued.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = format!("req-{}", self.next_id);
        self.next_id += 1;
        let req = serde_json::json!({"id": id, "method": method, "params": params});
        self.send_text(req.to_string()).await;
        loop {
            let v = self.recv().await;
            if v.get("id") == Some(&Value::from(id.clone())) {
                return v;
            }
            self.pending.push_back(v);
        }
    }

    /// A signed request with a fresh timestamp.
    pub async fn signed(&mut self, method: &str, params: Value) -> Value {
        let mut p = params.as_object().cloned().unwrap_or_default();
        sign_params(&mut p, &self.key.clone(), &self.secret.clone(), now_ms());
        self.request(method, Value::Object(p)).await
    }

    /// Subscribes to the user data stream; returns the subscription id.
    pub async fn subscribe(&mut self) -> u64 {
        let r = self
            .signed("userDataStream.subscribe.signature", serde_json::json!({}))
            .await;
        assert_eq!(r["status"], 200, "{r}");
        r["result"]["subscriptionId"].as_u64().unwrap()
    }

    /// The next frame not yet consumed by `request`.
    pub async fn next_frame(&mut self) -> Value {
        match self.pending.pop_front() {
            Some(v) => v,
            None => self.recv().await,
        }
    }

    /// The next user data event object (unwrapped).
    pub async fn event(&mut self) -> Value {
        let v = self.next_frame().await;
        assert!(v.get("subscriptionId").is_some(), "not an event: {v}");
        v["event"].clone()
    }

    /// The next `n` events.
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.event().await);
        }
        out
    }
}

/// A blocking one-request-per-call HTTP/1.1 client over one kept-alive
/// connection (the simulator runs on its own thread).
pub struct RestClient {
    s: StdTcpStream,
    pub key: String,
    pub secret: String,
}

/// Status, headers (lowercased names) and the parsed body.
pub struct RestReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl RestReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RestClient {
    pub fn connect(addr: SocketAddr, key: &str, secret: &str) -> RestClient {
        let s = StdTcpStream::connect_timeout(&addr, WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        RestClient {
            s,
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// Sends `method path?query` with `body` (form-encoded) as given.
    pub fn raw(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: &str,
        key: Option<&str>,
    ) -> RestReply {
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: sim\r\n");
        if let Some(k) = key {
            req.push_str(&format!("X-MBX-APIKEY: {k}\r\n"));
        }
        if !body.is_empty() {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.s.write_all(req.as_bytes()).unwrap();
        self.read_reply()
    }

    /// A signed request: `timestamp` added to the query (or body for
    /// POST), signature over query + body appended where the params are.
    pub fn signed(&mut self, method: &str, path: &str, params: &str) -> RestReply {
        let ts = now_ms();
        let params = if params.is_empty() {
            format!("timestamp={ts}")
        } else {
            format!("{params}&timestamp={ts}")
        };
        let sig = sign::hmac_sha256_hex(self.secret.as_bytes(), params.as_bytes());
        let signed = format!("{params}&signature={sig}");
        let key = self.key.clone();
        if method == "POST" {
            self.raw(method, path, "", &signed, Some(&key))
        } else {
            self.raw(method, path, &signed, "", Some(&key))
        }
    }

    fn read_reply(&mut self) -> RestReply {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = self.s.read(&mut chunk).expect("read reply");
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = self.s.read(&mut chunk).expect("read body");
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = &buf[head_end..head_end + len];
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).expect("JSON body")
        };
        RestReply {
            status,
            headers,
            body,
        }
    }
}
