//! The listener: one port for both REST and the WebSocket API, as the
//! request head decides (`Upgrade: websocket` or plain HTTP/1.1).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use super::api::Shared;
use super::rest;
use super::ws::{self, WsOptions};

/// The WebSocket API path.
pub const WS_PATH: &str = "/ws-api/v3";

/// The largest request head we read.
const MAX_HEAD: usize = 64 * 1024;

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

async fn connection(mut s: TcpStream, shared: Arc<Mutex<Shared>>, opts: WsOptions) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let Some(head_end) = read_head(&mut s, &mut buf).await else {
        return;
    };
    if !is_websocket_upgrade(&buf[..head_end]) {
        rest::serve(s, buf, shared).await;
        return;
    }
    let stream = Prefixed {
        pre: buf,
        pos: 0,
        inner: s,
    };
    let mut return_rate_limits = true;
    // tungstenite fixes the callback's error type.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != WS_PATH {
            let mut e = ErrorResponse::new(Some(format!(
                "no WebSocket endpoint at {}",
                req.uri().path()
            )));
            *e.status_mut() = StatusCode::NOT_FOUND;
            return Err(e);
        }
        if req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "returnRateLimits=false"))
        {
            return_rate_limits = false;
        }
        Ok(resp)
    };
    if let Ok(wss) = tokio_tungstenite::accept_hdr_async(stream, check).await {
        let opts = WsOptions {
            return_rate_limits,
            ..opts
        };
        ws::serve(wss, shared, opts).await;
    }
}

/// Reads until `buf` holds a complete request head; returns its length.
pub async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = head_end(buf) {
            return Some(end);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Length of the head (through the blank line), if complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn is_websocket_upgrade(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("upgrade") && v.trim().eq_ignore_ascii_case("websocket")
        })
    })
}

/// A stream that first replays the bytes already read while peeking at the
/// request head, so the WebSocket handshake sees the whole request.
struct Prefixed {
    pre: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.pre.len() {
            let n = buf.remaining().min(self.pre.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.pre[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
