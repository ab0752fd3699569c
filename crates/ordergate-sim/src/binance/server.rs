//! The socket driver over the [`Exchange`]: one port for both REST and the
//! WebSocket API. hyper (HTTP/1.1, keep-alive) reads every request; a
//! WebSocket upgrade to [`WS_PATH`] is answered `101 Switching Protocols`
//! and the upgraded connection becomes a tungstenite stream, anything else
//! is REST.
//!
//! The driver owns only transport: it reads the real clock, passes it to
//! the exchange, and delivers the frames the exchange returns through each
//! connection's outbox. Frames are handed to the outboxes while the lock
//! is held, so every connection sees them in the order the exchange made
//! them. Server pings and the close after `serverShutdown` are the
//! driver's. Faults ([`super::faults`]) are the exchange's: a timer task
//! runs [`Exchange::poll_faults`] when [`Exchange::next_fault_ms`] says so
//! (and after every call that may have made something due), delivers what
//! it returns and closes the sockets it names: abruptly for `disconnect*`,
//! with a close frame (1000) for `max-age` and after `serverShutdown`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::exchange::{ConnId, Exchange, Frames, RestReply};
use super::faults::FaultOutput;

pub use super::exchange::WS_PATH;

/// Largest REST body we accept.
const MAX_BODY: usize = 1 << 20;

/// Real wall-clock milliseconds: the only clock read of the simulator.
pub fn real_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a connection task is told to send.
#[derive(Debug)]
enum Out {
    Text(String),
    /// The `serverShutdown` frame: send it, then close after the grace
    /// period.
    Shutdown(String),
    /// The exchange closed the connection: with a close frame, or by
    /// dropping the socket.
    Close {
        graceful: bool,
    },
}

/// The exchange and the outbox of every open WebSocket connection.
pub struct Hub {
    pub exchange: Exchange,
    outboxes: HashMap<ConnId, mpsc::UnboundedSender<Out>>,
    /// Wakes the fault timer when something may have been scheduled.
    notify: Arc<Notify>,
}

impl Hub {
    pub fn new(exchange: Exchange) -> Hub {
        Hub {
            exchange,
            outboxes: HashMap::new(),
            notify: Arc::new(Notify::new()),
        }
    }

    /// After a call into the exchange: runs the faults already due (a
    /// close it decided, frames it released) and wakes the fault timer so
    /// it sleeps until the new [`Exchange::next_fault_ms`].
    pub fn settle(&mut self) {
        let now = real_ms();
        if self.exchange.next_fault_ms().is_some_and(|t| t <= now) {
            let out = self.exchange.poll_faults(now);
            self.apply(out);
        }
        self.notify.notify_one();
    }

    /// Delivers what [`Exchange::poll_faults`] returned: the frames, then
    /// the closes.
    pub fn apply(&mut self, out: FaultOutput) {
        self.deliver(out.frames);
        for conn in out.close {
            let graceful = self.exchange.take_graceful_close(conn);
            if let Some(tx) = self.outboxes.get(&conn) {
                let _ = tx.send(Out::Close { graceful });
            }
        }
    }

    /// Hands each frame to its connection's outbox.
    pub fn deliver(&self, frames: Frames) {
        for (conn, text) in frames {
            if let Some(tx) = self.outboxes.get(&conn) {
                let _ = tx.send(Out::Text(text));
            }
        }
    }

    /// Announces `serverShutdown` on every connection; each closes after
    /// the grace period.
    pub fn server_shutdown(&mut self) {
        for (conn, text) in self.exchange.trigger_server_shutdown(real_ms()) {
            if let Some(tx) = self.outboxes.get(&conn) {
                let _ = tx.send(Out::Shutdown(text));
            }
        }
    }
}

/// Locks the hub; a panicked holder leaves plain data behind, so the state
/// is still usable.
pub fn lock(m: &Mutex<Hub>) -> MutexGuard<'_, Hub> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Transport settings of the WebSocket connections.
#[derive(Debug, Clone, Copy)]
pub struct WsOptions {
    /// Server ping period (the docs say 20 s).
    pub ping_interval: Duration,
}

/// Accepts connections until `stop` changes.
pub async fn accept_loop(
    listener: TcpListener,
    hub: Arc<Mutex<Hub>>,
    opts: WsOptions,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(fault_timer(hub.clone(), stop.clone()));
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((s, peer)) => {
                    tracing::debug!(%peer, "connection accepted");
                    tokio::spawn(connection(s, hub.clone(), opts));
                }
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            },
            _ = stop.changed() => break,
        }
    }
}

/// Runs the exchange's faults on time until `stop` changes: sleeps until
/// [`Exchange::next_fault_ms`] (at most a second, or until woken), then
/// polls and delivers.
async fn fault_timer(hub: Arc<Mutex<Hub>>, mut stop: watch::Receiver<bool>) {
    let notify = lock(&hub).notify.clone();
    loop {
        let wait_ms = match lock(&hub).exchange.next_fault_ms() {
            Some(t) => t.saturating_sub(real_ms()).min(1_000),
            None => 1_000,
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            _ = notify.notified() => {}
            _ = stop.changed() => break,
        }
        let mut hub = lock(&hub);
        let now = real_ms();
        if hub.exchange.next_fault_ms().is_some_and(|t| t <= now) {
            let out = hub.exchange.poll_faults(now);
            hub.apply(out);
        }
    }
}

/// Serves one TCP connection: HTTP/1.1 requests until the client closes,
/// or until a WebSocket upgrade hands the connection over.
async fn connection(s: TcpStream, hub: Arc<Mutex<Hub>>, opts: WsOptions) {
    let _ = s.set_nodelay(true);
    let peer = s.peer_addr().ok();
    let service = service_fn(move |req| {
        let hub = hub.clone();
        async move { Ok::<_, Infallible>(route(req, hub, opts).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(s), service)
        .with_upgrades()
        .await;
    match served {
        Ok(()) => tracing::debug!(?peer, "HTTP connection done"),
        Err(e) => tracing::debug!(?peer, error = %e, "HTTP connection failed"),
    }
}

type Reply = Response<Full<Bytes>>;

async fn route(req: Request<Incoming>, hub: Arc<Mutex<Hub>>, opts: WsOptions) -> Reply {
    if has_token(req.headers(), header::UPGRADE, "websocket") {
        return upgrade(req, hub, opts);
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE),
    };
    let headers: Vec<(&str, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let r = {
        let mut hub = lock(&hub);
        let mut r = hub
            .exchange
            .rest(parts.method.as_str(), target, &headers, &body, real_ms());
        hub.deliver(std::mem::take(&mut r.frames));
        hub.settle();
        r
    };
    reply(r)
}

/// The HTTP response for an exchange's answer.
fn reply(r: RestReply) -> Reply {
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
fn upgrade(mut req: Request<Incoming>, hub: Arc<Mutex<Hub>>, opts: WsOptions) -> Reply {
    let refuse = |req: &Request<Incoming>, status: StatusCode, why: &str| {
        tracing::debug!(uri = %req.uri(), %status, why, "WebSocket upgrade refused");
        plain(status)
    };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if Exchange::ws_route(target).is_none() {
        return refuse(
            &req,
            StatusCode::NOT_FOUND,
            "no WebSocket endpoint at this path",
        );
    }
    let h = req.headers();
    if req.method() != Method::GET || !has_token(h, header::CONNECTION, "upgrade") {
        return refuse(
            &req,
            StatusCode::BAD_REQUEST,
            "not a GET with Connection: upgrade",
        );
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut r = refuse(
            &req,
            StatusCode::UPGRADE_REQUIRED,
            "Sec-WebSocket-Version is not 13",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return refuse(&req, StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key");
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return refuse(&req, StatusCode::BAD_REQUEST, "unusable Sec-WebSocket-Key");
    };
    // The connection limits (attempts, weight, ban) come last: only a
    // well-formed handshake is an attempt.
    let handshake = {
        let target = target.to_owned();
        lock(&hub).exchange.ws_handshake(&target, real_ms())
    };
    let conn = match handshake {
        Ok(conn) => conn,
        Err(r) => return reply(r),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                lock(&hub).exchange.ws_disconnect(conn);
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        serve_ws(ws, hub, conn, opts).await;
    });
    let mut r = plain(StatusCode::SWITCHING_PROTOCOLS);
    let headers = r.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    r
}

/// Serves one upgraded connection until it closes: requests go to the
/// exchange, the outbox goes to the socket, pings go out every
/// `ping_interval`.
async fn serve_ws<S>(
    mut ws: WebSocketStream<S>,
    hub: Arc<Mutex<Hub>>,
    conn: ConnId,
    opts: WsOptions,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let grace = {
        let mut hub = lock(&hub);
        hub.outboxes.insert(conn, tx);
        hub.exchange.shutdown_grace()
    };
    let mut ping = tokio::time::interval(opts.ping_interval);
    ping.tick().await;
    let mut close_at: Option<tokio::time::Instant> = None;
    loop {
        let deadline =
            close_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let mut hub = lock(&hub);
                    let frames = hub.exchange.ws_request(conn, t.as_str(), real_ms());
                    hub.deliver(frames);
                    hub.settle();
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(%conn, error = %e, "WebSocket read failed");
                    break;
                }
                // Pongs are sent by tungstenite itself; other frames are ignored.
                Some(Ok(_)) => {}
            },
            m = rx.recv() => {
                let Some(mut m) = m else { break };
                // Everything queued goes out with one flush.
                let mut closing = None;
                let sent = loop {
                    let text = match m {
                        Out::Text(t) => t,
                        Out::Shutdown(t) => {
                            close_at = Some(tokio::time::Instant::now() + grace);
                            t
                        }
                        Out::Close { graceful } => {
                            closing = Some(graceful);
                            break ws.flush().await.is_ok();
                        }
                    };
                    if ws.feed(Message::text(text)).await.is_err() {
                        break false;
                    }
                    match rx.try_recv() {
                        Ok(next) => m = next,
                        Err(_) => break ws.flush().await.is_ok(),
                    }
                };
                if let Some(graceful) = closing {
                    tracing::debug!(%conn, graceful, "closing the socket for the exchange");
                    if graceful && sent {
                        let frame = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        };
                        let _ = ws.close(Some(frame)).await;
                    }
                    break;
                }
                if !sent {
                    break;
                }
            }
            _ = ping.tick() => {
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline), if close_at.is_some() => {
                let _ = ws.close(None).await;
                break;
            }
        }
    }
    let mut hub = lock(&hub);
    hub.outboxes.remove(&conn);
    hub.exchange.ws_disconnect(conn);
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
