//! The socket server: the HTTP side (hyper) and the WebSocket handshake,
//! checked on raw bytes so nothing but the server's own answer is tested.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ordergate_sim::binance::{SimConfig, SimHandle, Simulator};
use tokio_tungstenite::tungstenite::Message;

fn start() -> SimHandle {
    Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap()
}

fn connect(sim: &SimHandle) -> TcpStream {
    let s = TcpStream::connect(sim.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response: the head (lowercased header names) and the body,
/// which must be delimited by Content-Length.
fn read_response(s: &mut TcpStream) -> (String, Vec<(String, String)>, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed inside a head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, headers, String::from_utf8(body).unwrap())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn rest_keep_alive_and_not_found() {
    let sim = start();
    let mut s = connect(&sim);
    // Two requests written at once: pipelined on one kept-alive connection.
    s.write_all(
        b"GET /api/v3/time HTTP/1.1\r\nHost: sim\r\n\r\n\
          GET /api/v3/nothing HTTP/1.1\r\nHost: sim\r\n\r\n",
    )
    .unwrap();
    let (status, headers, body) = read_response(&mut s);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json;charset=UTF-8")
    );
    assert!(header(&headers, "x-mbx-used-weight-1m").is_some());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["serverTime"].as_u64().unwrap() > 0);
    let (status, headers, body) = read_response(&mut s);
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(header(&headers, "content-length"), Some("0"));
    assert!(body.is_empty());

    // A POST body split over two writes still arrives whole.
    let body = "symbol=BTCUSDT&timestamp=1";
    write!(
        s,
        "POST /api/v3/order HTTP/1.1\r\nHost: sim\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..5]
    )
    .unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&body.as_bytes()[5..]).unwrap();
    let (status, _, body) = read_response(&mut s);
    // No API key header: the documented -2014.
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert!(body.contains("-2014"), "{body}");
}

/// The handshake of RFC 6455 §1.3: the server's Sec-WebSocket-Accept for
/// the key "dGhlIHNhbXBsZSBub25jZQ==" is "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
#[test]
fn websocket_handshake_answers_the_rfc_example() {
    let sim = start();
    let mut s = connect(&sim);
    s.write_all(
        b"GET /ws-api/v3 HTTP/1.1\r\nHost: sim\r\nUpgrade: websocket\r\n\
          Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let (status, headers, _) = read_response(&mut s);
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols");
    assert_eq!(
        header(&headers, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert!(header(&headers, "upgrade")
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
    assert!(header(&headers, "connection")
        .unwrap()
        .eq_ignore_ascii_case("upgrade"));
}

#[test]
fn websocket_handshake_refusals() {
    let sim = start();
    let ask = |target: &str, version: &str| {
        let mut s = connect(&sim);
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: sim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
        )
        .unwrap();
        read_response(&mut s)
    };
    assert_eq!(ask("/ws", "13").0, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = ask("/ws-api/v3", "8");
    assert_eq!(status, "HTTP/1.1 426 Upgrade Required");
    assert_eq!(header(&headers, "sec-websocket-version"), Some("13"));
}

/// A real WebSocket client on the same port as REST: a request and its
/// answer, with `returnRateLimits=false` on the URL honoured.
#[tokio::test]
async fn websocket_api_on_the_rest_port() {
    let sim = start();
    for (url, limits) in [
        (sim.ws_url(), true),
        (format!("{}?returnRateLimits=false", sim.ws_url()), false),
    ] {
        let tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        ws.send(Message::text(r#"{"id":7,"method":"time"}"#))
            .await
            .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        assert_eq!(
            (v["id"].as_i64(), v["status"].as_i64()),
            (Some(7), Some(200))
        );
        assert_eq!(v.get("rateLimits").is_some(), limits, "{v}");
    }
}

/// Limits over the socket: a ban answers the WebSocket upgrade and REST
/// with HTTP 418 and `Retry-After`, the connection-attempt limit answers
/// the upgrade 429, and the handle counts both.
#[test]
fn limits_refuse_the_upgrade_over_http() {
    let sim = start();
    let upgrade = |sim: &SimHandle| {
        let mut s = connect(sim);
        s.write_all(
            b"GET /ws-api/v3 HTTP/1.1\r\nHost: sim\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        read_response(&mut s)
    };
    sim.force_ban(Duration::from_secs(90));
    let (status, headers, body) = upgrade(&sim);
    assert_eq!(status, "HTTP/1.1 418 I'm a teapot");
    let secs: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((89..=90).contains(&secs), "{secs}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], -1003);
    assert!(v["msg"]
        .as_str()
        .unwrap()
        .starts_with("Way too much request weight used; IP banned until "));
    let mut s = connect(&sim);
    s.write_all(b"GET /api/v3/ping HTTP/1.1\r\nHost: sim\r\n\r\n")
        .unwrap();
    let (status, headers, _) = read_response(&mut s);
    assert_eq!(status, "HTTP/1.1 418 I'm a teapot");
    assert!(header(&headers, "retry-after").is_some());
    assert_eq!(sim.limit_stats().answered_418, 2);

    let sim = start();
    sim.set_rate_limits(ordergate_sim::binance::RateLimits {
        connections_per_5m: 0,
        ..sim.rate_limits()
    });
    let (status, headers, _) = upgrade(&sim);
    assert_eq!(status, "HTTP/1.1 429 Too Many Requests");
    assert!(header(&headers, "retry-after").is_some());
    assert_eq!(sim.limit_stats().connections_429, 1);
    let log = sim.request_log();
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), [429]);
}
