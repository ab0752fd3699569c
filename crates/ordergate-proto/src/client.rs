//! A small blocking client for the strategy protocol, over a Unix socket.
//!
//! What a Rust strategy (or the demo) needs: connect and say Hello, learn
//! the instrument table, send orders and cancels, and receive the
//! sidecar's messages with or without blocking. One thread owns a
//! `Client`; it is not a reconnecting client: after a disconnect, connect
//! again and, if the new [`Client::next_seq`] is above the old client's
//! `last_seq() + 1`, call [`Client::resend_from`] with `last_seq() + 1`.
//! A new [`Client::epoch`] (or [`Client::installation`]) says the sidecar
//! restarted (or is another one) since the old client connected.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::codec::{
    decode_outbound, encode_inbound, FrameReader, Inbound, InstrumentInfo, NewOrder, Outbound,
    ProtocolError, Reason, MAX_STR, VERSION_MAX, VERSION_MIN,
};
use ordergate_core::ids::{InstrumentId, StrategyId, StrategyOrderId};

/// How long [`Client::connect`] waits for HelloAck and the instrument table.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("undecodable frame from the sidecar: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the sidecar closed the connection")]
    Closed,
    #[error("the sidecar refused the session: {reason:?}: {text}")]
    Refused { reason: Reason, text: String },
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("strategy name is {0} bytes; the protocol allows at most {MAX_STR}")]
    NameTooLong(usize),
}

/// A connected, greeted session with the sidecar.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    reader: FrameReader,
    out: Vec<u8>,
    version: u16,
    strategy_id: StrategyId,
    next_seq: u64,
    last_seq: u64,
    installation: u64,
    epoch: u32,
    instruments: Vec<InstrumentInfo>,
}

/// How a receive call may wait.
#[derive(Clone, Copy)]
enum Wait {
    Forever,
    Until(Instant),
    No,
}

impl Client {
    /// Connects, sends Hello with this build's version range and collects
    /// HelloAck and the InstrumentInfo table, waiting at most
    /// [`HANDSHAKE_TIMEOUT`].
    pub fn connect(path: impl AsRef<Path>, strategy_name: &str) -> Result<Client, ClientError> {
        if strategy_name.len() > MAX_STR {
            return Err(ClientError::NameTooLong(strategy_name.len()));
        }
        let mut c = Client {
            stream: UnixStream::connect(path)?,
            reader: FrameReader::new(),
            out: Vec::with_capacity(64),
            version: 0,
            strategy_id: 0,
            next_seq: 0,
            last_seq: 0,
            installation: 0,
            epoch: 0,
            instruments: Vec::new(),
        };
        c.send(&Inbound::Hello {
            min_version: VERSION_MIN,
            max_version: VERSION_MAX,
            name: strategy_name.to_owned(),
        })?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let count = match c.handshake_msg(deadline)? {
            Outbound::HelloAck {
                version,
                strategy_id,
                next_seq,
                instrument_count,
                installation,
                epoch,
            } => {
                c.version = version;
                c.strategy_id = strategy_id;
                c.next_seq = next_seq;
                c.installation = installation;
                c.epoch = epoch;
                instrument_count
            }
            other => {
                return Err(ClientError::Handshake(format!(
                    "expected HelloAck, got {other:?}"
                )))
            }
        };
        for i in 0..count {
            match c.handshake_msg(deadline)? {
                Outbound::InstrumentInfo(info) => c.instruments.push(info),
                other => {
                    return Err(ClientError::Handshake(format!(
                        "expected InstrumentInfo {} of {count}, got {other:?}",
                        i + 1
                    )))
                }
            }
        }
        Ok(c)
    }

    fn handshake_msg(&mut self, deadline: Instant) -> Result<Outbound, ClientError> {
        match self.recv_inner(Wait::Until(deadline))? {
            Some((_, Outbound::Error { reason, text })) => {
                Err(ClientError::Refused { reason, text })
            }
            Some((_, msg)) => Ok(msg),
            None => Err(ClientError::Handshake(format!(
                "no answer within {HANDSHAKE_TIMEOUT:?}"
            ))),
        }
    }

    /// The protocol version the sidecar chose.
    pub fn version(&self) -> u16 {
        self.version
    }

    pub fn strategy_id(&self) -> StrategyId {
        self.strategy_id
    }

    /// The sequence number HelloAck announced for the next sequenced
    /// message: anything below it was sent in an earlier connection.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The sidecar installation's id, stable across its restarts (0 from
    /// a sidecar that speaks only version 1).
    pub fn installation(&self) -> u64 {
        self.installation
    }

    /// The sidecar's run number, bumped at every start: compare it with
    /// the previous connection's to tell a restart (0 from a sidecar that
    /// speaks only version 1).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The highest sequence number received so far on this connection
    /// (0 if none): resend from `last_seq() + 1` after a reconnect.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The instruments this strategy may trade, in the order announced.
    pub fn instruments(&self) -> &[InstrumentInfo] {
        &self.instruments
    }

    pub fn instrument(&self, symbol: &str) -> Option<&InstrumentInfo> {
        self.instruments.iter().find(|i| i.symbol == symbol)
    }

    /// Sends any strategy → sidecar message (blocking until written).
    pub fn send(&mut self, msg: &Inbound) -> Result<(), ClientError> {
        self.out.clear();
        encode_inbound(msg, &mut self.out);
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    pub fn new_order(&mut self, order: &NewOrder) -> Result<(), ClientError> {
        self.send(&Inbound::NewOrder(*order))
    }

    pub fn cancel(&mut self, order_id: StrategyOrderId) -> Result<(), ClientError> {
        self.send(&Inbound::Cancel { order_id })
    }

    /// Cancels every open order of this strategy on one instrument, or on
    /// all of them when `instrument_id` is 0.
    pub fn cancel_all(&mut self, instrument_id: InstrumentId) -> Result<(), ClientError> {
        self.send(&Inbound::CancelAll { instrument_id })
    }

    pub fn resend_from(&mut self, seq: u64) -> Result<(), ClientError> {
        self.send(&Inbound::ResendFrom { seq })
    }

    pub fn heartbeat(&mut self) -> Result<(), ClientError> {
        self.send(&Inbound::Heartbeat)
    }

    /// The next message and its sequence number (0 when unsequenced),
    /// blocking until one arrives.
    pub fn recv(&mut self) -> Result<(u64, Outbound), ClientError> {
        self.recv_inner(Wait::Forever)
            .map(|m| m.expect("an unbounded wait always yields a message"))
    }

    /// Like [`Client::recv`], giving up with `None` after `timeout`.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(u64, Outbound)>, ClientError> {
        self.recv_inner(Wait::Until(Instant::now() + timeout))
    }

    /// A message already received, or `None` without blocking.
    pub fn try_recv(&mut self) -> Result<Option<(u64, Outbound)>, ClientError> {
        self.recv_inner(Wait::No)
    }

    fn recv_inner(&mut self, wait: Wait) -> Result<Option<(u64, Outbound)>, ClientError> {
        loop {
            if let Some(body) = self.reader.next_frame()? {
                let (seq, msg) = decode_outbound(body)?;
                self.last_seq = self.last_seq.max(seq);
                return Ok(Some((seq, msg)));
            }
            match wait {
                Wait::Forever => self.stream.set_read_timeout(None)?,
                Wait::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    self.stream.set_read_timeout(Some(left))?;
                }
                Wait::No => self.stream.set_nonblocking(true)?,
            }
            let read = self.reader.read_from(&mut self.stream);
            if let Wait::No = wait {
                self.stream.set_nonblocking(false)?;
            }
            match read {
                Ok(0) => return Err(ClientError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if let Wait::No = wait {
                        return Ok(None);
                    }
                    // A timed-out read: the deadline check above decides.
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_outbound, Fill, OrdType, Side, TimeInForce};
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    use std::thread;

    fn info(id: u32, symbol: &str) -> InstrumentInfo {
        InstrumentInfo {
            instrument_id: id,
            venue: 1,
            category: 1,
            price_scale: 2,
            qty_scale: 5,
            tick: 1,
            lot: 1,
            min_qty: 1,
            min_notional: 500_000,
            symbol: symbol.into(),
        }
    }

    /// Reads one strategy frame (blocking, bounded by the socket timeout).
    fn read_inbound(sock: &mut UnixStream, reader: &mut FrameReader) -> Inbound {
        loop {
            if let Some(body) = reader.next_frame().unwrap() {
                return crate::codec::decode_inbound(body).unwrap();
            }
            let mut buf = [0u8; 512];
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "client hung up");
            reader.feed(&buf[..n]);
        }
    }

    fn send(sock: &mut UnixStream, seq: u64, msg: &Outbound) {
        let mut out = Vec::new();
        encode_outbound(seq, msg, &mut out);
        sock.write_all(&out).unwrap();
    }

    /// A fake sidecar on a temp socket: runs `script` on the first
    /// connection, with a read timeout so a broken test cannot hang.
    fn fake_server(
        script: impl FnOnce(UnixStream) + Send + 'static,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        thread::JoinHandle<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("og.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let h = thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            script(sock);
        });
        (dir, path, h)
    }

    fn handshake(sock: &mut UnixStream, reader: &mut FrameReader) {
        assert_eq!(
            read_inbound(sock, reader),
            Inbound::Hello {
                min_version: VERSION_MIN,
                max_version: VERSION_MAX,
                name: "mm1".into()
            }
        );
        let ack = Outbound::HelloAck {
            version: VERSION_MAX,
            strategy_id: 3,
            next_seq: 18,
            instrument_count: 2,
            installation: 12_345,
            epoch: 4,
        };
        send(sock, 0, &ack);
        send(sock, 0, &Outbound::InstrumentInfo(info(7, "BTCUSDT")));
        send(sock, 0, &Outbound::InstrumentInfo(info(8, "ETHUSDT")));
    }

    #[test]
    fn session_against_a_fake_sidecar() {
        let order = NewOrder {
            order_id: 42,
            instrument_id: 7,
            side: Side::Buy,
            ord_type: OrdType::Limit,
            tif: TimeInForce::Gtc,
            flags: 0,
            price: 5_200_000,
            qty: 100_000,
        };
        let fill = Fill {
            order_id: 42,
            last_qty: 100_000,
            last_price: 5_200_000,
            cum_qty: 100_000,
            cum_notional: 520_000_000_000,
            avg_price: 5_200_000,
            leaves_qty: 0,
            fee: ordergate_core::decimal::WideDecimal::new(52, 3),
            fee_asset: "USDT".into(),
            trade_id: "9001".into(),
            venue_time_ms: 1,
            is_maker: false,
        };
        let server_fill = fill.clone();
        let (_dir, path, server) = fake_server(move |mut sock| {
            let mut r = FrameReader::new();
            handshake(&mut sock, &mut r);
            assert_eq!(read_inbound(&mut sock, &mut r), Inbound::NewOrder(order));
            let accepted = Outbound::Accepted {
                order_id: 42,
                venue_order_id: "1".into(),
            };
            send(&mut sock, 18, &accepted);
            send(&mut sock, 19, &Outbound::Fill(server_fill));
            assert_eq!(
                read_inbound(&mut sock, &mut r),
                Inbound::Cancel { order_id: 42 }
            );
            assert_eq!(
                read_inbound(&mut sock, &mut r),
                Inbound::CancelAll { instrument_id: 0 }
            );
            assert_eq!(
                read_inbound(&mut sock, &mut r),
                Inbound::ResendFrom { seq: 18 }
            );
            assert_eq!(read_inbound(&mut sock, &mut r), Inbound::Heartbeat);
            send(&mut sock, 0, &Outbound::Heartbeat);
            // Hang up: the client must see Closed.
        });

        let mut c = Client::connect(&path, "mm1").unwrap();
        assert_eq!(
            (c.version(), c.strategy_id(), c.next_seq()),
            (VERSION_MAX, 3, 18)
        );
        assert_eq!((c.installation(), c.epoch()), (12_345, 4));
        assert_eq!(c.instruments().len(), 2);
        assert_eq!(c.instrument("ETHUSDT").map(|i| i.instrument_id), Some(8));
        c.new_order(&order).unwrap();
        let (seq, msg) = c.recv().unwrap();
        assert_eq!(seq, 18);
        assert!(matches!(msg, Outbound::Accepted { order_id: 42, .. }));
        assert_eq!(
            c.recv_timeout(Duration::from_secs(10)).unwrap(),
            Some((19, Outbound::Fill(fill)))
        );
        assert_eq!(c.last_seq(), 19);
        c.cancel(42).unwrap();
        c.cancel_all(0).unwrap();
        c.resend_from(18).unwrap();
        c.heartbeat().unwrap();
        assert_eq!(c.recv().unwrap(), (0, Outbound::Heartbeat));
        server.join().unwrap();
        assert!(matches!(c.recv(), Err(ClientError::Closed)));
        assert!(matches!(c.try_recv(), Err(ClientError::Closed)));
    }

    #[test]
    fn try_recv_and_timeout_return_none_when_idle() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (_dir, path, server) = fake_server(move |mut sock| {
            let mut r = FrameReader::new();
            handshake(&mut sock, &mut r);
            // Stay connected and silent until the client is done.
            let _ = rx.recv_timeout(Duration::from_secs(10));
        });
        let mut c = Client::connect(&path, "mm1").unwrap();
        assert_eq!(c.try_recv().unwrap(), None);
        assert_eq!(c.recv_timeout(Duration::from_millis(20)).unwrap(), None);
        tx.send(()).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn refusal_is_reported_with_its_reason() {
        let (_dir, path, server) = fake_server(|mut sock| {
            let mut r = FrameReader::new();
            read_inbound(&mut sock, &mut r);
            let err = Outbound::Error {
                reason: Reason::UnknownStrategy,
                text: "no strategy named mm1".into(),
            };
            send(&mut sock, 0, &err);
        });
        let e = Client::connect(&path, "mm1").unwrap_err();
        assert!(
            matches!(e, ClientError::Refused { reason: Reason::UnknownStrategy, ref text } if text == "no strategy named mm1"),
            "{e}"
        );
        server.join().unwrap();
    }

    #[test]
    fn long_names_are_refused_locally() {
        let e = Client::connect("/nonexistent/og.sock", &"x".repeat(256)).unwrap_err();
        assert!(matches!(e, ClientError::NameTooLong(256)));
    }
}
