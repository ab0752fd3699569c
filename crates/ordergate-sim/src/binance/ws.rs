//! The WebSocket API (`/ws-api/v3`) as the [`Exchange`] answers it: JSON
//! requests `{"id","method","params"}` answered with
//! `{"id","status","result"|"error","rateLimits"}`, user data events
//! pushed as `{"subscriptionId","event"}`. Pure: bytes in, frames out; the
//! socket driver (`server`) adds the transport (pings, close, the
//! `serverShutdown` grace period).

use serde_json::Value;

use super::api::{self, ApiError, Auth, Op, Params, State, UsageSnapshot};
use super::engine::ExecEvent;
use super::exchange::{Conn, ConnId, Exchange, Frames, Subscriptions};
use super::faults::{FaultKind, Faults, Outcome, Tag};
use super::json::{self, Body, Limiter, SessionStatus};
use super::limits::{LimitRefusal, RateLimits};
use super::sign;

impl Exchange {
    /// Handles one text frame from `conn` at the caller's time `now_ms`.
    /// Returns the frames to send, in the order the venue sends them: the
    /// response to `conn` first, then the `executionReport` events the
    /// request caused, to every subscribed connection (`conn` included).
    /// A connection that is not open gets nothing.
    ///
    /// Under faults (see [`faults`](super::faults)) some of them may be
    /// missing (held for later, dropped, or lost with a connection the
    /// exchange closes); [`Exchange::poll_faults`] returns what comes
    /// later and the closes.
    pub fn ws_request(&mut self, conn: ConnId, text: &str, now_ms: u64) -> Frames {
        let now = self.state.server_time(now_ms);
        if !self.conns.contains_key(&conn) {
            return Vec::new();
        }
        self.fault_activity(now_ms);
        if self.expired(conn, now_ms) {
            return Vec::new();
        }
        let ending = self.count_frame(conn);
        if ending == Some(false) {
            self.faults.inject(
                FaultKind::Disconnect,
                Some(conn),
                "closed before this frame reached the venue",
            );
            self.fault_close(conn, false, now_ms);
            return Vec::new();
        }
        self.faults.current = None;
        self.faults.current_conn = Some(conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        let done = request(
            &mut self.state,
            &mut self.subs,
            &mut self.faults,
            conn,
            c,
            text,
            (now, now_ms),
        );
        self.record(
            Some(conn),
            done.seen.method,
            done.seen.ids,
            now,
            done.seen.status,
        );
        let mut out = vec![(conn, done.response, Tag::Response)];
        out.extend(self.subs.reports(&done.events, now));
        let outcome = Outcome {
            placed: done.placed,
            traded: done.placed && done.events.iter().any(|e| e.trade.is_some()),
        };
        let frames = self.answer_faults(conn, out, outcome, ending == Some(true), now_ms);
        if let Some(kind) = self.faults.current {
            self.mark_fault(kind);
        }
        frames
    }
}

/// One handled frame: the answer, the events, what the log keeps, and
/// whether it placed an order.
struct Done {
    response: String,
    events: Vec<ExecEvent>,
    seen: Seen,
    placed: bool,
}

/// What the request log keeps of one request.
struct Seen {
    method: String,
    ids: (Option<String>, Option<String>),
    status: u16,
}

impl Seen {
    fn new(method: &str, params: &Params, status: u16) -> Seen {
        let id = |n: &str| params.get(n).map(str::to_owned);
        Seen {
            method: method.to_owned(),
            ids: (id("newClientOrderId"), id("origClientOrderId")),
            status,
        }
    }
}

/// A frame the API could not read: it still counts as a raw request (no
/// weight), and during a ban it is answered 418.
fn unreadable(state: &mut State, id_of_conn: ConnId, id: &Value, e: ApiError, now: u64) -> Done {
    let e = state.meter.admit(now, 0).err().unwrap_or(e);
    refused(id_of_conn, "", &e);
    let seen = Seen::new("", &Params::default(), e.http);
    Done {
        response: respond(id, Err(&e), None),
        events: Vec::new(),
        seen,
        placed: false,
    }
}

/// Handles one text frame at server time `now` (the caller's `now_ms`);
/// returns the response frame, the events, what the request log keeps,
/// and whether it placed an order.
fn request(
    state: &mut State,
    subs: &mut Subscriptions,
    faults: &mut Faults,
    id_of_conn: ConnId,
    conn: &mut Conn,
    text: &str,
    (now, now_ms): (u64, u64),
) -> Done {
    let Ok(Value::Object(req)) = serde_json::from_str::<Value>(text) else {
        let e = ApiError::new(
            -1102,
            "A mandatory parameter was not sent, was empty/null, or malformed.",
        );
        return unreadable(state, id_of_conn, &Value::Null, e, now);
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
            return unreadable(state, id_of_conn, &id, ApiError::mandatory("params"), now);
        }
    };
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return unreadable(state, id_of_conn, &id, ApiError::mandatory("method"), now);
    };
    let method = method.strip_prefix("v3/").unwrap_or(method);
    let rate_limits = conn.return_rate_limits && params.get("returnRateLimits") != Some("false");
    let op = match method {
        "ping" => Some(Op::Ping),
        "time" => Some(Op::Time),
        "exchangeInfo" => Some(Op::ExchangeInfo),
        "order.place" => Some(Op::OrderPlace),
        "order.cancel" => Some(Op::OrderCancel),
        "order.status" => Some(Op::OrderStatus),
        "openOrders.status" => Some(Op::OpenOrders),
        "myTrades" => Some(Op::MyTrades),
        "allOrders" => Some(Op::AllOrders),
        _ => None,
    };
    if let Some(op) = op {
        let mut gate = || faults.before_place();
        let h = api::handle(state, op, &params, auth(conn, &params), now, &mut gate);
        let placed = op == Op::OrderPlace && h.result.is_ok();
        // `unknown-accepted`: placed, but answered as if it may not be.
        let replaced = if placed { faults.after_place() } else { None };
        let limits =
            rate_limits.then(|| rate_limits_of(&state.meter.limits, h.usage, op == Op::OrderPlace));
        let result = match &replaced {
            Some(e) => Err(e),
            None => h.result.as_ref(),
        };
        let (text, status) = match result {
            Ok(body) => (respond(&id, Ok(body), limits.as_deref()), 200),
            Err(e) => {
                refused(id_of_conn, method, e);
                (respond(&id, Err(e), limits.as_deref()), e.http)
            }
        };
        return Done {
            response: text,
            events: h.events,
            seen: Seen::new(method, &params, status),
            placed,
        };
    }
    let result = state.meter.admit(now, 2).and_then(|()| {
        session_method(
            state,
            subs,
            faults,
            id_of_conn,
            conn,
            method,
            &params,
            (now, now_ms),
        )
    });
    let usage = state.meter.usage(None, now);
    let limits = rate_limits.then(|| rate_limits_of(&state.meter.limits, usage, false));
    let (text, status) = match result {
        Ok(body) => (respond(&id, Ok(&body), limits.as_deref()), 200),
        Err(e) => {
            refused(id_of_conn, method, &e);
            (respond(&id, Err(&e), limits.as_deref()), e.http)
        }
    };
    Done {
        response: text,
        events: Vec::new(),
        seen: Seen::new(method, &params, status),
        placed: false,
    }
}

/// A request answered with an error, at debug level.
fn refused(conn: ConnId, method: &str, e: &ApiError) {
    tracing::debug!(
        %conn,
        method,
        status = e.http,
        code = e.code,
        msg = %e.msg,
        "WebSocket API request refused"
    );
}

/// Explicit `apiKey` + `signature` win over the session's key.
fn auth<'a>(conn: &'a Conn, params: &'a Params) -> Result<Auth<'a>, ApiError> {
    match (params.value("apiKey"), &conn.session) {
        (None, Some((key, _))) => Ok(Auth::Session(key)),
        _ => signed(params),
    }
}

/// `session.*` and `userDataStream.*`: state of this connection.
#[allow(clippy::too_many_arguments)]
fn session_method(
    sh: &mut State,
    subs: &mut Subscriptions,
    faults: &mut Faults,
    id_of_conn: ConnId,
    conn: &mut Conn,
    method: &str,
    params: &Params,
    (now, now_ms): (u64, u64),
) -> Result<Body, ApiError> {
    match method {
        "session.logon" => {
            let account = api::authenticate(sh, params, signed(params)?, now)?;
            conn.session = Some((account, now));
            Ok(session_status(subs, id_of_conn, conn, now))
        }
        "session.status" => Ok(session_status(subs, id_of_conn, conn, now)),
        "session.logout" => {
            conn.session = None;
            Ok(session_status(subs, id_of_conn, conn, now))
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
                            limit: None,
                        })
                    }
                }
            } else {
                api::authenticate(sh, params, signed(params)?, now)?
            };
            if let Some(e) = faults.subscribe_refused(&account, now_ms) {
                return Err(e);
            }
            if subs.has(id_of_conn, &account) {
                return Err(ApiError::new(
                    -2035,
                    "User Data Stream subscription already active.",
                ));
            }
            let id = conn.next_subscription;
            conn.next_subscription += 1;
            subs.add(id_of_conn, id, &account);
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
            if subs.remove(id_of_conn, id) == 0 {
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

fn session_status(subs: &Subscriptions, id_of_conn: ConnId, conn: &Conn, now: u64) -> Body {
    let (api_key, authorized_since, uds) = match &conn.session {
        Some((key, since)) => (Some(key.clone()), Some(*since), subs.has(id_of_conn, key)),
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
fn rate_limits_of(limits: &RateLimits, u: UsageSnapshot, with_orders: bool) -> Vec<Limiter> {
    let mut items = Vec::with_capacity(3);
    if with_orders {
        items.push(limits.orders_10s_limiter().with_count(u.orders_10s));
        items.push(limits.orders_1d_limiter().with_count(u.orders_1d));
    }
    items.push(limits.weight_limiter().with_count(u.weight_1m));
    items
}

/// The `error` object: `{code, msg}`, with `data: {serverTime,
/// retryAfter}` when refused for limits (429, 418).
#[derive(serde::Serialize)]
struct WsError<'a> {
    code: i64,
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<LimitRefusal>,
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
    error: Option<WsError<'a>>,
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
        Err(e) => (
            e.http,
            None,
            Some(WsError {
                code: e.code,
                msg: &e.msg,
                data: e.limit,
            }),
        ),
    };
    json::to_string(&Response {
        id,
        status,
        result,
        error,
        rate_limits,
    })
}
