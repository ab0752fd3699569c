//! The REST endpoints the adapter and client libraries use, as the
//! [`Exchange`] answers them. hyper moves the bytes (see `server`); this
//! module only maps a request to its answer. Parameters come from the
//! query string and an `application/x-www-form-urlencoded` body (the query
//! wins); the signature covers the query string followed by the body, as
//! sent.

use super::api::{self, ApiError, Auth, Op, Params};
use super::exchange::{Exchange, RestReply};
use super::sign;

fn route(method: &str, path: &str) -> Option<Op> {
    Some(match (method, path) {
        ("GET", "/api/v3/ping") => Op::Ping,
        ("GET", "/api/v3/time") => Op::Time,
        ("GET", "/api/v3/exchangeInfo") => Op::ExchangeInfo,
        ("POST", "/api/v3/order") => Op::OrderPlace,
        ("DELETE", "/api/v3/order") => Op::OrderCancel,
        ("GET", "/api/v3/order") => Op::OrderStatus,
        ("GET", "/api/v3/openOrders") => Op::OpenOrders,
        ("GET", "/api/v3/myTrades") => Op::MyTrades,
        ("GET", "/api/v3/allOrders") => Op::AllOrders,
        _ => return None,
    })
}

impl Exchange {
    /// Answers one REST request at the caller's time `now_ms`: `method`
    /// ("GET", "POST", "DELETE"), the request target as sent
    /// (`/api/v3/order?symbol=...`), the request headers (names in any
    /// case; `X-MBX-APIKEY` is the one read) and the body as sent. The
    /// reply's `frames` are the `executionReport` events the request
    /// caused on WebSocket subscriptions.
    pub fn rest(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        now_ms: u64,
    ) -> RestReply {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let now = self.state.server_time(now_ms);
        let Some(op) = route(method, path) else {
            tracing::debug!(method, path, "REST request to no endpoint (404)");
            self.record(None, format!("{method} {path}"), (None, None), now, 404);
            return RestReply {
                status: 404,
                headers: Vec::new(),
                body: String::new(),
                frames: Vec::new(),
            };
        };
        let body = String::from_utf8_lossy(body);
        let mut params = form_pairs(query);
        params.extend(form_pairs(&body));
        let params = Params(params);
        let api_key = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-mbx-apikey"))
            .map(|&(_, v)| v);
        let auth = match api_key {
            Some(k) => Ok(Auth::Signed {
                api_key: k,
                signature: params.get("signature"),
                payload: sign::rest_payload(&without_signature(query), &without_signature(&body)),
            }),
            None => Err(ApiError::key_format()),
        };
        let h = api::handle(&mut self.state, op, &params, auth, now, &mut || Ok(()));
        let (status, body) = match &h.result {
            Ok(b) => (200, b.to_json()),
            Err(e) => {
                tracing::debug!(
                    method,
                    path,
                    status = e.http,
                    code = e.code,
                    msg = %e.msg,
                    "REST request refused"
                );
                (e.http, e.body())
            }
        };
        let mut headers = vec![("Content-Type", "application/json;charset=UTF-8".to_owned())];
        headers.push(("X-MBX-USED-WEIGHT-1M", h.usage.weight_1m.to_string()));
        if let Err(ApiError {
            limit: Some(refusal),
            ..
        }) = &h.result
        {
            headers.push(("Retry-After", refusal.retry_after_secs().to_string()));
        }
        let id = |n: &str| params.get(n).map(str::to_owned);
        self.record(
            None,
            format!("{method} {path}"),
            (id("newClientOrderId"), id("origClientOrderId")),
            now,
            status,
        );
        if op == Op::OrderPlace && status == 200 {
            headers.push(("X-MBX-ORDER-COUNT-10S", h.usage.orders_10s.to_string()));
            headers.push(("X-MBX-ORDER-COUNT-1D", h.usage.orders_1d.to_string()));
        }
        RestReply {
            status,
            headers,
            body,
            frames: {
                let reports = self.subs.reports(&h.events, now);
                self.route(reports)
            },
        }
    }
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
    }
}
