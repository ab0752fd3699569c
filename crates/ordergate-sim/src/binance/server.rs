//! The listener: one port for both REST and the WebSocket API. hyper
//! (HTTP/1.1, keep-alive) reads every request; a WebSocket upgrade to
//! [`WS_PATH`] is answered `101 Switching Protocols` and the upgraded
//! connection becomes a tungstenite stream, anything else is REST.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::api::Shared;
use super::rest;
use super::ws::{self, WsOptions};

/// The WebSocket API path.
pub const WS_PATH: &str = "/ws-api/v3";

/// Largest REST body we accept.
const MAX_BODY: usize = 1 << 20;

/// Locks the shared state; a panicked holder leaves plain data behind, so
/// the state is still usable.
pub fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Real wall-clock milliseconds: the only clock read of the simulator.
pub fn real_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Accepts connections until `stop` changes.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Mutex<Shared>>,
    opts: WsOptions,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => {
                if let Ok((s, _)) = r {
                    tokio::spawn(connection(s, shared.clone(), opts));
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// Serves one TCP connection: HTTP/1.1 requests until the client closes,
/// or until a WebSocket upgrade hands the connection over.
async fn connection(s: TcpStream, shared: Arc<Mutex<Shared>>, opts: WsOptions) {
    let _ = s.set_nodelay(true);
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(req, shared, opts).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(s), service)
        .with_upgrades()
        .await;
}

type Reply = Response<Full<Bytes>>;

async fn route(req: Request<Incoming>, shared: Arc<Mutex<Shared>>, opts: WsOptions) -> Reply {
    if has_token(req.headers(), header::UPGRADE, "websocket") {
        return upgrade(req, shared, opts);
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE),
    };
    let api_key = parts
        .headers
        .get("x-mbx-apikey")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let r = rest::respond(
        &shared,
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        api_key.as_deref(),
        &String::from_utf8_lossy(&body),
    );
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = resp.headers_mut();
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    resp
}

/// Answers a WebSocket handshake (RFC 6455 §4.2) and, once hyper hands
/// over the connection, serves the WebSocket API on it.
fn upgrade(mut req: Request<Incoming>, shared: Arc<Mutex<Shared>>, opts: WsOptions) -> Reply {
    if req.uri().path() != WS_PATH {
        return plain(StatusCode::NOT_FOUND);
    }
    let h = req.headers();
    if req.method() != Method::GET || !has_token(h, header::CONNECTION, "upgrade") {
        return plain(StatusCode::BAD_REQUEST);
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut r = plain(StatusCode::UPGRADE_REQUIRED);
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST);
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return plain(StatusCode::BAD_REQUEST);
    };
    let return_rate_limits = !req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "returnRateLimits=false"));
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let wss =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let opts = WsOptions {
            return_rate_limits,
            ..opts
        };
        ws::serve(wss, shared, opts).await;
    });
    let mut r = plain(StatusCode::SWITCHING_PROTOCOLS);
    let headers = r.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    r
}

/// An empty response with `status`.
fn plain(status: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// True when the comma-separated header `name` holds `token` (any case).
fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}
