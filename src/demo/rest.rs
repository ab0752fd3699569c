//! A minimal blocking HTTP/1.1 client for the venue's REST API, enough for
//! the demo to read the exchange's own record of its orders (signed
//! `GET /api/v3/order`, `GET /api/v3/exchangeInfo`) on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::venue::binance::sign;

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("REST {0}: {1}")]
    Io(String, std::io::Error),
    #[error("REST {0}: malformed response: {1}")]
    Malformed(String, String),
}

/// A keep-alive connection to one REST host.
pub struct Rest {
    stream: BufReader<TcpStream>,
    host: String,
    api_key: String,
    secret: Vec<u8>,
}

/// An HTTP status and a parsed JSON body.
pub struct Response {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Rest {
    /// `base` is `http://host:port` (loopback only; the demo's simulator).
    pub fn connect(base: &str, api_key: &str, secret: &[u8]) -> Result<Rest, RestError> {
        let host = base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let err = |e| RestError::Io(format!("connect {host}"), e);
        let tcp = TcpStream::connect(&host).map_err(err)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(err)?;
        tcp.set_nodelay(true).map_err(err)?;
        Ok(Rest {
            stream: BufReader::new(tcp),
            host,
            api_key: api_key.to_owned(),
            secret: secret.to_vec(),
        })
    }

    /// A signed GET: `timestamp` and `signature` are appended to `query`.
    pub fn get_signed(
        &mut self,
        path: &str,
        query: &str,
        now_ms: u64,
    ) -> Result<Response, RestError> {
        let query = format!("{query}&timestamp={now_ms}");
        let sig = sign::hmac_sha256_hex(&self.secret, sign::rest_payload(&query, "").as_bytes());
        self.get(path, &format!("{query}&signature={sig}"))
    }

    /// A GET with the API key header.
    pub fn get(&mut self, path: &str, query: &str) -> Result<Response, RestError> {
        let what = format!("GET {path}");
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nX-MBX-APIKEY: {}\r\nConnection: keep-alive\r\n\r\n",
            self.host, self.api_key
        );
        let io = |e| RestError::Io(what.clone(), e);
        self.stream
            .get_mut()
            .write_all(req.as_bytes())
            .map_err(io)?;
        let mut line = String::new();
        self.stream.read_line(&mut line).map_err(io)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| RestError::Malformed(what.clone(), format!("status line {line:?}")))?;
        let mut length = None;
        loop {
            line.clear();
            self.stream.read_line(&mut line).map_err(io)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let length =
            length.ok_or_else(|| RestError::Malformed(what.clone(), "no Content-Length".into()))?;
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).map_err(io)?;
        let body = serde_json::from_slice(&body)
            .map_err(|e| RestError::Malformed(what.clone(), e.to_string()))?;
        Ok(Response { status, body })
    }
}
