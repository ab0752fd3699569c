//! A minimal HTTP/1.1 server for the REST endpoints the adapter and client
//! libraries use, with keep-alive. Parameters come from the query string
//! and an `application/x-www-form-urlencoded` body (the query wins); the
//! signature covers the query string followed by the body, as sent.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::api::{self, ApiError, Auth, Op, Params, Shared};
use super::server::{head_end, lock, real_ms};
use super::sign;

/// Largest body we accept.
const MAX_BODY: usize = 1 << 20;

/// Serves requests on `s` until the client closes; `buf` holds what was
/// read while looking at the first head.
pub async fn serve(mut s: TcpStream, mut buf: Vec<u8>, shared: Arc<Mutex<Shared>>) {
    loop {
        let end = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            if !read_more(&mut s, &mut buf).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let req = match Head::parse(&head) {
            Some(r) => r,
            None => {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                return;
            }
        };
        if req.content_length > MAX_BODY {
            return;
        }
        while buf.len() < end + req.content_length {
            if !read_more(&mut s, &mut buf).await {
                return;
            }
        }
        let body = String::from_utf8_lossy(&buf[end..end + req.content_length]).into_owned();
        buf.drain(..end + req.content_length);
        let response = respond(&shared, &req, &body);
        if s.write_all(response.as_bytes()).await.is_err() || !req.keep_alive {
            return;
        }
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// The parts of a request head we use.
struct Head {
    method: String,
    path: String,
    query: String,
    api_key: Option<String>,
    content_length: usize,
    keep_alive: bool,
}

impl Head {
    fn parse(head: &str) -> Option<Head> {
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let method = first.next()?.to_owned();
        let target = first.next()?;
        let version = first.next()?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut h = Head {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            api_key: None,
            content_length: 0,
            keep_alive: version != "HTTP/1.0",
        };
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                h.content_length = v.parse().ok()?;
            } else if k.eq_ignore_ascii_case("x-mbx-apikey") {
                h.api_key = Some(v.to_owned());
            } else if k.eq_ignore_ascii_case("connection") {
                h.keep_alive = if v.eq_ignore_ascii_case("close") {
                    false
                } else {
                    h.keep_alive || v.eq_ignore_ascii_case("keep-alive")
                };
            }
        }
        Some(h)
    }
}

fn route(method: &str, path: &str) -> Option<Op> {
    Some(match (method, path) {
        ("GET", "/api/v3/ping") => Op::Ping,
        ("GET", "/api/v3/time") => Op::Time,
        ("GET", "/api/v3/exchangeInfo") => Op::ExchangeInfo,
        ("POST", "/api/v3/order") => Op::OrderPlace,
        ("DELETE", "/api/v3/order") => Op::OrderCancel,
        ("GET", "/api/v3/order") => Op::OrderStatus,
        ("GET", "/api/v3/openOrders") => Op::OpenOrders,
        _ => return None,
    })
}

fn respond(shared: &Mutex<Shared>, req: &Head, body: &str) -> String {
    let Some(op) = route(&req.method, &req.path) else {
        return http(404, "Not Found", "", &[], req.keep_alive);
    };
    let mut params = form_pairs(&req.query);
    params.extend(form_pairs(body));
    let params = Params(params);
    let auth = match &req.api_key {
        Some(k) => Ok(Auth::Signed {
            api_key: k,
            signature: params.get("signature"),
            payload: sign::rest_payload(&without_signature(&req.query), &without_signature(body)),
        }),
        None => Err(ApiError::key_format()),
    };
    let mut sh = lock(shared);
    let now = sh.server_time(real_ms());
    let h = api::handle(&mut sh, op, &params, auth, now);
    drop(sh);
    let mut headers = vec![("X-MBX-USED-WEIGHT-1M", h.usage.weight_1m)];
    if op == Op::OrderPlace && h.result.is_ok() {
        headers.push(("X-MBX-ORDER-COUNT-10S", h.usage.orders_10s));
        headers.push(("X-MBX-ORDER-COUNT-1D", h.usage.orders_1d));
    }
    match h.result {
        Ok(b) => http(200, "OK", &b, &headers, req.keep_alive),
        Err(e) => http(e.http, reason(e.http), &e.body(), &headers, req.keep_alive),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Bad Request",
    }
}

fn http(
    status: u16,
    reason: &str,
    body: &str,
    headers: &[(&str, u64)],
    keep_alive: bool,
) -> String {
    let mut s = format!("HTTP/1.1 {status} {reason}\r\n");
    if !body.is_empty() {
        s.push_str("Content-Type: application/json;charset=UTF-8\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    s.push_str(body);
    s
}

/// The signed part of a query string or body: everything but the
/// `signature` pair, bytes as sent.
fn without_signature(s: &str) -> String {
    s.split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("signature="))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `a=1&b=x%20y` pairs (`+` is a space).
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_signature_stripping() {
        assert_eq!(percent_decode("%EF%BC%91a+b%2"), "１a b%2");
        assert_eq!(
            without_signature("symbol=X&timestamp=1&signature=abc"),
            "symbol=X&timestamp=1"
        );
        assert_eq!(without_signature("signature=abc"), "");
        let h = Head::parse(
            "POST /api/v3/order?a=1 HTTP/1.1\r\nX-MBX-APIKEY: k\r\ncontent-length: 5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (h.path.as_str(), h.query.as_str()),
            ("/api/v3/order", "a=1")
        );
        assert_eq!(
            (h.api_key.as_deref(), h.content_length, h.keep_alive),
            (Some("k"), 5, true)
        );
    }
}
