//! The WebSocket API (`/ws-api/v3`): JSON requests `{"id","method","params"}`
//! answered with `{"id","status","result"|"error","rateLimits"}`, user data
//! events pushed as `{"subscriptionId","event"}`, server pings, and the
//! `serverShutdown` announcement.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::api::{self, ApiError, Auth, ConnMsg, Op, Params, Shared, UsageSnapshot, LIMITERS};
use super::json::{self, Body, Limiter, SessionStatus};
use super::server::{lock, real_ms};
use super::sign;

/// Per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct WsOptions {
    pub ping_interval: Duration,
    pub shutdown_grace: Duration,
    /// `?returnRateLimits=false` on the connection URL.
    pub return_rate_limits: bool,
}

/// What one connection remembers between requests.
struct Conn {
    id: u64,
    connected_since: u64,
    /// `session.logon` key and time.
    session: Option<(String, u64)>,
    next_subscription: u64,
    return_rate_limits: bool,
}

/// Serves one upgraded connection until it closes.
pub async fn serve<S>(mut ws: WebSocketStream<S>, shared: Arc<Mutex<Shared>>, opts: WsOptions)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut conn = {
        let mut sh = lock(&shared);
        Conn {
            id: sh.register_conn(tx),
            connected_since: sh.server_time(real_ms()),
            session: None,
            next_subscription: 0,
            return_rate_limits: opts.return_rate_limits,
        }
    };
    let mut ping = tokio::time::interval(opts.ping_interval);
    ping.tick().await;
    let mut close_at: Option<tokio::time::Instant> = None;
    loop {
        let deadline =
            close_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        let out = tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => Some(Message::text(request(&shared, &mut conn, t.as_str()))),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // Pongs are sent by tungstenite itself; other frames are ignored.
                Some(Ok(_)) => None,
            },
            m = rx.recv() => match m {
                Some(ConnMsg::Text(s)) => Some(Message::text(s)),
                Some(ConnMsg::Shutdown) => {
                    close_at = Some(tokio::time::Instant::now() + opts.shutdown_grace);
                    let now = lock(&shared).server_time(real_ms());
                    Some(Message::text(json::to_string(&json::ServerShutdown::new(now))))
                }
                None => break,
            },
            _ = ping.tick() => Some(Message::Ping(Default::default())),
            _ = tokio::time::sleep_until(deadline), if close_at.is_some() => {
                let _ = ws.close(None).await;
                break;
            }
        };
        if let Some(m) = out {
            if ws.send(m).await.is_err() {
                break;
            }
        }
    }
    lock(&shared).drop_conn(conn.id);
}

/// Handles one text frame and returns the response frame.
fn request(shared: &Mutex<Shared>, conn: &mut Conn, text: &str) -> String {
    let Ok(Value::Object(req)) = serde_json::from_str::<Value>(text) else {
        let e = ApiError::new(
            -1102,
            "A mandatory parameter was not sent, was empty/null, or malformed.",
        );
        return respond(&Value::Null, Err(&e), None);
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let params = match req.get("params") {
        None | Some(Value::Null) => Params::default(),
        Some(Value::Object(m)) => Params(
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect(),
        ),
        Some(_) => {
            let e = ApiError::mandatory("params");
            return respond(&id, Err(&e), None);
        }
    };
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return respond(&id, Err(&ApiError::mandatory("method")), None);
    };
    let method = method.strip_prefix("v3/").unwrap_or(method);
    let rate_limits = conn.return_rate_limits && params.get("returnRateLimits") != Some("false");
    let mut sh = lock(shared);
    let now = sh.server_time(real_ms());
    let op = match method {
        "ping" => Some(Op::Ping),
        "time" => Some(Op::Time),
        "exchangeInfo" => Some(Op::ExchangeInfo),
        "order.place" => Some(Op::OrderPlace),
        "order.cancel" => Some(Op::OrderCancel),
        "order.status" => Some(Op::OrderStatus),
        "openOrders.status" => Some(Op::OpenOrders),
        _ => None,
    };
    if let Some(op) = op {
        let h = api::handle(&mut sh, op, &params, auth(conn, &params), now);
        let limits = rate_limits.then(|| rate_limits_of(h.usage, op == Op::OrderPlace));
        return match h.result {
            Ok(body) => respond(&id, Ok(&body), limits.as_deref()),
            Err(e) => respond(&id, Err(&e), limits.as_deref()),
        };
    }
    let result = session_method(&mut sh, conn, method, &params, now);
    let usage = sh.add_weight(now, 2);
    let limits = rate_limits.then(|| rate_limits_of(usage, false));
    match result {
        Ok(body) => respond(&id, Ok(&body), limits.as_deref()),
        Err(e) => respond(&id, Err(&e), limits.as_deref()),
    }
}

/// Explicit `apiKey` + `signature` win over the session's key.
fn auth<'a>(conn: &'a Conn, params: &'a Params) -> Result<Auth<'a>, ApiError> {
    match (params.value("apiKey"), &conn.session) {
        (None, Some((key, _))) => Ok(Auth::Session(key)),
        _ => signed(params),
    }
}

/// `session.*` and `userDataStream.*`: state of this connection.
fn session_method(
    sh: &mut Shared,
    conn: &mut Conn,
    method: &str,
    params: &Params,
    now: u64,
) -> Result<Body, ApiError> {
    match method {
        "session.logon" => {
            let account = api::authenticate(sh, params, signed(params)?, now)?;
            conn.session = Some((account, now));
            Ok(session_status(sh, conn, now))
        }
        "session.status" => Ok(session_status(sh, conn, now)),
        "session.logout" => {
            conn.session = None;
            Ok(session_status(sh, conn, now))
        }
        "userDataStream.subscribe.signature" | "userDataStream.subscribe" => {
            let account = if method == "userDataStream.subscribe" {
                match &conn.session {
                    Some((key, _)) => key.clone(),
                    None => {
                        return Err(ApiError {
                            http: 401,
                            code: -1002,
                            msg: "You are not authorized to execute this request.".into(),
                        })
                    }
                }
            } else {
                api::authenticate(sh, params, signed(params)?, now)?
            };
            if sh.has_subscription(conn.id, &account) {
                return Err(ApiError::new(
                    -2035,
                    "User Data Stream subscription already active.",
                ));
            }
            let id = conn.next_subscription;
            conn.next_subscription += 1;
            sh.subscribe(conn.id, id, &account);
            Ok(Body::Subscribed(json::Subscribed {
                subscription_id: id,
            }))
        }
        "userDataStream.unsubscribe" => {
            let id = match params.value("subscriptionId") {
                Some(v) => Some(
                    v.parse::<u64>()
                        .map_err(|_| ApiError::mandatory("subscriptionId"))?,
                ),
                None => None,
            };
            if sh.unsubscribe(conn.id, id) == 0 {
                return Err(ApiError::new(
                    -2036,
                    "User Data Stream subscription not active.",
                ));
            }
            Ok(Body::empty())
        }
        // The docs do not show the answer to an unknown method; this is
        // the closest documented code.
        _ => Err(ApiError::new(-1020, "This operation is not supported.")),
    }
}

/// A request signed with its own `apiKey` and `signature`: the payload is
/// every param but `signature`, sorted, as received.
fn signed(params: &Params) -> Result<Auth<'_>, ApiError> {
    let api_key = params.require("apiKey")?;
    Ok(Auth::Signed {
        api_key,
        signature: params.get("signature"),
        payload: sign::ws_payload(params.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    })
}

fn session_status(sh: &Shared, conn: &Conn, now: u64) -> Body {
    let (api_key, authorized_since, uds) = match &conn.session {
        Some((key, since)) => (
            Some(key.clone()),
            Some(*since),
            sh.has_subscription(conn.id, key),
        ),
        None => (None, None, false),
    };
    Body::Session(SessionStatus {
        api_key,
        authorized_since,
        connected_since: conn.connected_since,
        return_rate_limits: conn.return_rate_limits,
        server_time: now,
        user_data_stream: uds,
    })
}

/// The `rateLimits` array: order methods also report the order counts.
fn rate_limits_of(u: UsageSnapshot, with_orders: bool) -> Vec<Limiter> {
    let [weight, orders_10s, orders_1d, _] = LIMITERS;
    let mut items = Vec::with_capacity(3);
    if with_orders {
        items.push(orders_10s.with_count(u.orders_10s));
        items.push(orders_1d.with_count(u.orders_1d));
    }
    items.push(weight.with_count(u.weight_1m));
    items
}

/// The response envelope, `{"id","status","result"|"error","rateLimits"}`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    id: &'a Value,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Body>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ApiError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limits: Option<&'a [Limiter]>,
}

fn respond(
    id: &Value,
    result: Result<&Body, &ApiError>,
    rate_limits: Option<&[Limiter]>,
) -> String {
    let (status, result, error) = match result {
        Ok(body) => (200, Some(body), None),
        Err(e) => (e.http, None, Some(e)),
    };
    json::to_string(&Response {
        id,
        status,
        result,
        error,
        rate_limits,
    })
}
