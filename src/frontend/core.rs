//! The Unix-socket front end without I/O: connection state machines,
//! framing, per-strategy sequencing and outbound buffers.
//!
//! The driver hands it bytes it read (`on_bytes`) and writes what
//! `pending` shows, reporting how much went out (`consumed`); strategies'
//! requests leave through a closure (the desk's input ring), and the
//! desk's [`Notice`]s come back through `on_notice`. Order checks, ids and
//! order state are the desk's: this module only speaks the protocol.

use std::collections::BTreeMap;

use ordergate_core::desk::{DeskInput, Notice, Request};
use ordergate_core::ids::{StrategyId, VenueId};
use ordergate_core::instrument::Instrument;
use ordergate_core::model::{OrderUpdate, VenueStatus};
use ordergate_proto::codec::{
    decode_inbound, encode_outbound, FrameReader, Inbound, InstrumentInfo, Outbound, ProtocolError,
    Reason, LEN_PREFIX, MAX_FRAME, VERSION_MAX, VERSION_MIN,
};
use ordergate_proto::sequencer::Sequencer;

/// Where every sequenced frame goes before any strategy can see it (the
/// journal), so that a restarted sidecar holds every report a strategy
/// may have processed and can replay it byte for byte.
pub trait SeqRecorder: Send {
    /// `frame` is the encoded frame, length prefix included, exactly as
    /// kept in the resend window.
    fn record(&mut self, strategy: StrategyId, seq: u64, frame: &[u8]);
}

/// A connection, as the driver names it.
pub type ConnId = usize;

/// How long a new connection may take to say Hello.
pub const HELLO_TIMEOUT_NS: u64 = 5_000_000_000;

/// A strategy the sidecar accepts, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyConfig {
    pub id: StrategyId,
    /// What the strategy says in its Hello.
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct FrontEndConfig {
    pub strategies: Vec<StrategyConfig>,
    pub instruments: Vec<Instrument>,
    /// Sequenced messages kept per strategy for ResendFrom.
    pub resend_capacity: usize,
    /// Bytes a connection may have waiting to be written before it is
    /// dropped as a slow consumer.
    pub max_outbound_bytes: usize,
    pub hello_timeout_ns: u64,
    /// The installation's random id (below 62^6) and this run's epoch,
    /// told in HelloAck so a strategy can tell a restart.
    pub installation: u64,
    pub epoch: u32,
}

/// A config the front end cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontEndConfigError {
    #[error("strategy id {0} is configured twice")]
    DuplicateStrategyId(StrategyId),
    #[error("strategy name {0:?} is configured twice")]
    DuplicateStrategyName(String),
    #[error("resend_capacity must be at least 1")]
    NoResendBuffer,
    #[error("max_outbound_bytes must hold at least one frame ({0} bytes)")]
    OutboundTooSmall(usize),
}

/// What happened on the front end, for the periodic counters line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrontEndCounters {
    pub connections: u64,
    pub frames_in: u64,
    pub protocol_errors: u64,
    pub hello_timeouts: u64,
    pub slow_consumers: u64,
    /// Requests the desk's input ring had no room for.
    pub desk_full: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    AwaitingHello {
        deadline_ns: u64,
    },
    Active(StrategyId),
    /// An error was reported; further frames are ignored and the
    /// connection closes once its pending bytes are written.
    Closing,
}

#[derive(Debug)]
struct Conn {
    state: ConnState,
    reader: FrameReader,
    /// Encoded frames not yet written; `out[written..]` is pending.
    out: Vec<u8>,
    written: usize,
    /// While a ResendFrom is served: the next seq to replay. Live
    /// sequenced messages are not queued meanwhile; the replay reaches
    /// them in the window.
    replay: Option<u64>,
}

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.written
    }
}

#[derive(Debug)]
struct Strategy {
    name: String,
    conn: Option<ConnId>,
    seq: Sequencer,
}

/// The front end's state: connections, strategies and what it last heard
/// of each venue (to greet a strategy with).
pub struct FrontEnd {
    conns: BTreeMap<ConnId, Conn>,
    strategies: BTreeMap<StrategyId, Strategy>,
    instruments: Vec<InstrumentInfo>,
    venues: BTreeMap<VenueId, VenueStatus>,
    max_outbound_bytes: usize,
    hello_timeout_ns: u64,
    installation: u64,
    epoch: u32,
    counters: FrontEndCounters,
    recorder: Option<Box<dyn SeqRecorder>>,
    /// Reused buffer for one frame body.
    frame: Vec<u8>,
}

impl FrontEnd {
    pub fn new(cfg: FrontEndConfig) -> Result<FrontEnd, FrontEndConfigError> {
        if cfg.resend_capacity == 0 {
            return Err(FrontEndConfigError::NoResendBuffer);
        }
        // One frame of the largest size plus its length prefix.
        let min_out = MAX_FRAME + LEN_PREFIX;
        if cfg.max_outbound_bytes < min_out {
            return Err(FrontEndConfigError::OutboundTooSmall(min_out));
        }
        let mut strategies = BTreeMap::new();
        for s in cfg.strategies {
            if strategies.values().any(|x: &Strategy| x.name == s.name) {
                return Err(FrontEndConfigError::DuplicateStrategyName(s.name));
            }
            let st = Strategy {
                name: s.name,
                conn: None,
                seq: Sequencer::new(cfg.resend_capacity),
            };
            if strategies.insert(s.id, st).is_some() {
                return Err(FrontEndConfigError::DuplicateStrategyId(s.id));
            }
        }
        let mut instruments: Vec<InstrumentInfo> =
            cfg.instruments.iter().map(instrument_info).collect();
        instruments.sort_by_key(|i| i.instrument_id);
        Ok(FrontEnd {
            conns: BTreeMap::new(),
            strategies,
            instruments,
            venues: BTreeMap::new(),
            max_outbound_bytes: cfg.max_outbound_bytes,
            hello_timeout_ns: cfg.hello_timeout_ns,
            installation: cfg.installation,
            epoch: cfg.epoch,
            counters: FrontEndCounters::default(),
            recorder: None,
            frame: Vec::new(),
        })
    }

    /// Hands every sequenced frame from now on to `r`, before it is queued.
    pub fn set_recorder(&mut self, r: Box<dyn SeqRecorder>) {
        self.recorder = Some(r);
    }

    /// Continues `strategy`'s sequence where a previous run left it (see
    /// [`Sequencer::restore`]): call it at start, before any connection.
    pub fn restore_sequence(
        &mut self,
        strategy: StrategyId,
        next_seq: u64,
        frames: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) {
        let Some(s) = self.strategies.get_mut(&strategy) else {
            tracing::warn!(
                strategy,
                "journal has a sequence for a strategy no longer configured; ignored"
            );
            return;
        };
        let mut given = 0;
        s.seq
            .restore(next_seq, frames.into_iter().inspect(|_| given += 1));
        let kept = s.seq.kept();
        tracing::info!(strategy, next_seq, kept, "sequence restored");
        if kept < given.min(s.seq.capacity()) {
            tracing::warn!(
                strategy,
                given,
                kept,
                "the journal's frames have holes; only the run ending at next_seq can be resent"
            );
        }
    }

    pub fn counters(&self) -> FrontEndCounters {
        self.counters
    }

    /// Whether `strategy` has a connection that said Hello.
    pub fn is_connected(&self, strategy: StrategyId) -> bool {
        self.strategies
            .get(&strategy)
            .is_some_and(|s| s.conn.is_some())
    }

    /// Every strategy's next seq and kept frames (a journal snapshot).
    pub fn sequences(&self) -> impl Iterator<Item = (StrategyId, &Sequencer)> + '_ {
        self.strategies.iter().map(|(id, s)| (*id, &s.seq))
    }

    /// The strategies this front end serves.
    pub fn strategy_ids(&self) -> impl Iterator<Item = StrategyId> + '_ {
        self.strategies.keys().copied()
    }

    /// The strategy `conn` speaks for, once its Hello was accepted.
    pub fn strategy_of(&self, conn: ConnId) -> Option<StrategyId> {
        match self.conns.get(&conn)?.state {
            ConnState::Active(id) => Some(id),
            _ => None,
        }
    }

    /// How many connections are open (in any state).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// A socket was accepted; it must say Hello before the deadline.
    pub fn on_connect(&mut self, conn: ConnId, now_ns: u64) {
        self.counters.connections += 1;
        tracing::debug!(conn, "strategy socket accepted");
        let deadline_ns = now_ns.saturating_add(self.hello_timeout_ns);
        self.conns.insert(
            conn,
            Conn {
                state: ConnState::AwaitingHello { deadline_ns },
                reader: FrameReader::new(),
                out: Vec::new(),
                written: 0,
                replay: None,
            },
        );
    }

    /// Bytes read from `conn`. Each complete frame is handled; requests
    /// for the desk go to `desk`, which says whether it had room.
    pub fn on_bytes(
        &mut self,
        conn: ConnId,
        bytes: &[u8],
        desk: &mut impl FnMut(DeskInput) -> bool,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.reader.feed(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.state == ConnState::Closing {
                return;
            }
            match c.reader.next_frame() {
                Ok(Some(body)) => {
                    self.frame.clear();
                    self.frame.extend_from_slice(body);
                }
                Ok(None) => return,
                Err(e) => {
                    self.on_protocol_error(conn, &e);
                    return;
                }
            }
            self.counters.frames_in += 1;
            let body = std::mem::take(&mut self.frame);
            self.on_frame(conn, &body, desk);
            self.frame = body;
        }
    }

    /// The socket is gone (peer closed, read or write error). The
    /// strategy's orders stay live and its messages keep being sequenced.
    pub fn on_closed(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let ConnState::Active(id) = c.state {
            self.detach(id, conn);
        }
        tracing::debug!(conn, "strategy socket closed");
    }

    /// Connections that never said Hello in time are told so and closed.
    pub fn on_timer(&mut self, now_ns: u64) {
        let late: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.state, ConnState::AwaitingHello { deadline_ns } if now_ns >= deadline_ns)
            })
            .map(|(&id, _)| id)
            .collect();
        for conn in late {
            self.counters.hello_timeouts += 1;
            let secs = self.hello_timeout_ns / 1_000_000_000;
            tracing::info!(conn, "no Hello within {secs} s; closing");
            let text = format!("no Hello within {secs} s of connecting");
            self.fail(conn, Reason::HelloRequired, text);
        }
    }

    /// When `on_timer` must run next (the earliest Hello deadline).
    pub fn next_timer(&self) -> Option<u64> {
        self.conns
            .values()
            .filter_map(|c| match c.state {
                ConnState::AwaitingHello { deadline_ns } => Some(deadline_ns),
                _ => None,
            })
            .min()
    }

    /// One notice from the desk.
    pub fn on_notice(&mut self, notice: Notice) {
        match notice {
            Notice::Order { strategy, update } => self.emit(strategy, update),
            Notice::Venue(status) => {
                let msg = venue_status(&status);
                self.venues.insert(status.venue, status);
                let active: Vec<ConnId> = self.strategies.values().filter_map(|s| s.conn).collect();
                for conn in active {
                    self.send(conn, 0, &msg);
                }
            }
        }
    }

    /// The bytes waiting to be written to `conn`.
    pub fn pending(&self, conn: ConnId) -> &[u8] {
        self.conns.get(&conn).map_or(&[], |c| &c.out[c.written..])
    }

    /// The driver wrote `n` of the pending bytes; a replay under way is
    /// fed the room that made.
    pub fn consumed(&mut self, conn: ConnId, n: usize) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.written = (c.written + n).min(c.out.len());
            if c.written == c.out.len() {
                c.out.clear();
                c.written = 0;
            }
        }
        self.refill(conn);
    }

    /// True once `conn` should be closed by the driver: it is closing and
    /// what it had to say (an Error frame, typically) has been handed over.
    pub fn should_close(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.state == ConnState::Closing && c.pending() == 0)
    }

    /// True when `conn` is closing, whatever is still pending: the driver
    /// makes one last write attempt and closes it.
    pub fn is_closing(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.state == ConnState::Closing)
    }

    fn on_protocol_error(&mut self, conn: ConnId, err: &ProtocolError) {
        self.counters.protocol_errors += 1;
        tracing::info!(conn, reason = ?err.reason(), error = %err, "bad frame from a strategy");
        let awaiting = matches!(
            self.conns.get(&conn).map(|c| c.state),
            Some(ConnState::AwaitingHello { .. })
        );
        // A peer that cannot even say Hello is not a strategy.
        if err.is_fatal() || awaiting {
            self.fail(conn, err.reason(), err.to_string());
        } else {
            self.error(conn, err.reason(), err.to_string());
        }
    }

    fn on_frame(&mut self, conn: ConnId, body: &[u8], desk: &mut impl FnMut(DeskInput) -> bool) {
        let Some(state) = self.conns.get(&conn).map(|c| c.state) else {
            return;
        };
        let msg = match decode_inbound(body) {
            Ok(m) => m,
            Err(e) => return self.on_protocol_error(conn, &e),
        };
        let strategy = match (state, msg) {
            (
                ConnState::AwaitingHello { .. },
                Inbound::Hello {
                    min_version,
                    max_version,
                    name,
                },
            ) => return self.hello(conn, min_version, max_version, &name),
            (ConnState::AwaitingHello { .. }, _) => {
                return self.fail(conn, Reason::HelloRequired, "send Hello first".into())
            }
            (ConnState::Closing, _) => return,
            (ConnState::Active(_), Inbound::Hello { .. }) => {
                return self.fail(
                    conn,
                    Reason::MalformedFrame,
                    "Hello already received on this connection".into(),
                )
            }
            (ConnState::Active(s), Inbound::Heartbeat) => {
                let _ = s;
                return self.send(conn, 0, &Outbound::Heartbeat);
            }
            (ConnState::Active(s), Inbound::ResendFrom { seq }) => {
                return self.resend(conn, s, seq)
            }
            (ConnState::Active(s), Inbound::NewOrder(o)) => (s, Request::NewOrder(o)),
            (ConnState::Active(s), Inbound::Cancel { order_id }) => {
                (s, Request::Cancel { order_id })
            }
            (ConnState::Active(s), Inbound::CancelAll { instrument_id }) => {
                (s, Request::CancelAll { instrument_id })
            }
        };
        let (strategy, request) = strategy;
        if desk(DeskInput { strategy, request }) {
            return;
        }
        // The desk never saw it: answered here, in sequence.
        self.counters.desk_full += 1;
        tracing::warn!(strategy, "the desk's input ring is full; request refused");
        let text = "the sidecar's order desk is busy; try again".to_string();
        let update = match request {
            Request::NewOrder(o) => OrderUpdate::Rejected {
                order_id: o.order_id,
                reason: Reason::QueueFull,
                text,
            },
            Request::Cancel { order_id } => OrderUpdate::CancelRejected {
                order_id,
                reason: Reason::QueueFull,
                text,
            },
            Request::CancelAll { .. } => {
                return self.error(conn, Reason::QueueFull, text);
            }
            // Made by the gateway, never read from a socket.
            Request::Presence { .. } => return,
        };
        self.emit(strategy, update);
    }

    fn hello(&mut self, conn: ConnId, min_version: u16, max_version: u16, name: &str) {
        let version = max_version.min(VERSION_MAX);
        if version < min_version.max(VERSION_MIN) {
            let text = format!(
                "client speaks versions {min_version}..={max_version}, \
                 this sidecar {VERSION_MIN}..={VERSION_MAX}"
            );
            return self.fail(conn, Reason::UnsupportedVersion, text);
        }
        let Some((&id, st)) = self.strategies.iter_mut().find(|(_, s)| s.name == name) else {
            let text = format!("no strategy named {name:?} in the config");
            return self.fail(conn, Reason::UnknownStrategy, text);
        };
        if st.conn.is_some() {
            let text = format!("strategy {name:?} is already connected");
            return self.fail(conn, Reason::StrategyAlreadyConnected, text);
        }
        st.conn = Some(conn);
        let next_seq = st.seq.next_seq();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Active(id);
        }
        tracing::info!(conn, strategy = id, name, version, "strategy connected");
        let ack = Outbound::HelloAck {
            version,
            strategy_id: id,
            next_seq,
            instrument_count: self.instruments.len() as u32,
            installation: self.installation,
            epoch: self.epoch,
        };
        self.send(conn, 0, &ack);
        for i in 0..self.instruments.len() {
            let msg = Outbound::InstrumentInfo(self.instruments[i].clone());
            self.send(conn, 0, &msg);
        }
        let venues: Vec<Outbound> = self.venues.values().map(venue_status).collect();
        for msg in &venues {
            self.send(conn, 0, msg);
        }
    }

    /// Starts (or restarts) serving a replay from `from`. One that cannot
    /// be served changes nothing else: a replay under way goes on.
    fn resend(&mut self, conn: ConnId, strategy: StrategyId, from: u64) {
        let Some(s) = self.strategies.get(&strategy) else {
            return;
        };
        let evicted = s.seq.replay_from(from).err();
        if let Some(e) = evicted {
            return self.error(conn, Reason::ResendUnavailable, e.to_string());
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.replay = Some(from.max(1));
        }
        self.refill(conn);
    }

    /// Feeds a replaying connection its next kept frames while its unsent
    /// bytes stay within half its limit (one frame at any rate when it has
    /// none), so a replay of any length is paced by the reader and the
    /// other half is left for unsequenced messages. Once the replay has
    /// reached the sequence's next number, live delivery resumes. A replay
    /// the window has overtaken (the reader fell too far behind) stops
    /// with Error ResendUnavailable.
    fn refill(&mut self, conn: ConnId) {
        let budget = self.max_outbound_bytes / 2;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (ConnState::Active(id), Some(mut cursor)) = (c.state, c.replay) else {
            return;
        };
        let Some(s) = self.strategies.get(&id) else {
            return;
        };
        let evicted = match s.seq.replay_from(cursor) {
            Ok(frames) => {
                for f in frames {
                    if c.pending() > 0 && c.pending() + f.len() > budget {
                        break;
                    }
                    c.out.extend_from_slice(f);
                    cursor += 1;
                }
                None
            }
            Err(e) => Some(e),
        };
        c.replay = (evicted.is_none() && cursor < s.seq.next_seq()).then_some(cursor);
        if let Some(e) = evicted {
            tracing::info!(conn, strategy = id, error = %e, "replay overtaken by the resend window");
            let text = format!("replay stopped: {e}");
            self.error(conn, Reason::ResendUnavailable, text);
        }
    }

    /// Sequences `update` for `strategy`, keeps it for ResendFrom, and
    /// queues it if the strategy is connected.
    fn emit(&mut self, strategy: StrategyId, update: OrderUpdate) {
        let Some(s) = self.strategies.get_mut(&strategy) else {
            tracing::warn!(
                strategy,
                "update for a strategy this front end does not serve"
            );
            return;
        };
        let seq = s.seq.next_seq();
        let frame = s.seq.push(&Outbound::from(update));
        if let Some(r) = &mut self.recorder {
            r.record(strategy, seq, frame);
        }
        let Some(conn) = s.conn else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.replay.is_some() {
                // Not queued: the replay reaches it. This push may have
                // evicted the replay's next frame, which stops it.
                return self.refill(conn);
            }
            c.out.extend_from_slice(frame);
        }
        self.check_slow(conn);
    }

    /// Queues an unsequenced message.
    fn send(&mut self, conn: ConnId, seq: u64, msg: &Outbound) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state == ConnState::Closing {
            return;
        }
        encode_outbound(seq, msg, &mut c.out);
        self.check_slow(conn);
    }

    /// A connection with more than `max_outbound_bytes` waiting is a slow
    /// consumer: every whole frame not yet started is dropped (sequenced
    /// ones stay in the resend window), an Error `SlowConsumer` takes their
    /// place, and the connection closes.
    fn check_slow(&mut self, conn: ConnId) {
        let limit = self.max_outbound_bytes;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.pending() <= limit || c.state == ConnState::Closing {
            return;
        }
        self.counters.slow_consumers += 1;
        let boundary = frame_boundary_after(&c.out, c.written);
        c.out.truncate(boundary);
        let strategy = match c.state {
            ConnState::Active(s) => Some(s),
            _ => None,
        };
        tracing::warn!(
            conn,
            ?strategy,
            limit,
            "slow consumer: output buffer full; closing"
        );
        let err = Outbound::Error {
            reason: Reason::SlowConsumer,
            text: format!("more than {limit} bytes waiting to be read; reconnect and ResendFrom"),
        };
        encode_outbound(0, &err, &mut c.out);
        self.close(conn);
    }

    fn error(&mut self, conn: ConnId, reason: Reason, text: String) {
        self.send(conn, 0, &Outbound::Error { reason, text });
    }

    /// Reports an error and closes.
    fn fail(&mut self, conn: ConnId, reason: Reason, text: String) {
        self.error(conn, reason, text);
        self.close(conn);
    }

    fn close(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let ConnState::Active(id) = c.state {
            c.state = ConnState::Closing;
            self.detach(id, conn);
        } else {
            c.state = ConnState::Closing;
        }
    }

    /// `conn` no longer speaks for strategy `id` — unless another
    /// connection has taken the strategy since.
    fn detach(&mut self, id: StrategyId, conn: ConnId) {
        if let Some(s) = self.strategies.get_mut(&id) {
            if s.conn == Some(conn) {
                s.conn = None;
                tracing::info!(conn, strategy = id, name = %s.name, "strategy disconnected");
            }
        }
    }
}

/// The end of the frame that contains byte `at` of `out` (which starts at
/// a frame boundary): where whole, unstarted frames begin.
fn frame_boundary_after(out: &[u8], at: usize) -> usize {
    let mut pos = 0;
    while pos < at {
        let Some(prefix) = out.get(pos..pos + LEN_PREFIX) else {
            return out.len();
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
        pos += LEN_PREFIX + len;
    }
    pos.min(out.len())
}

fn venue_status(s: &VenueStatus) -> Outbound {
    Outbound::VenueStatus {
        venue: s.venue as u8,
        state: s.state,
        text: s.text.clone(),
    }
}

fn instrument_info(i: &Instrument) -> InstrumentInfo {
    InstrumentInfo {
        instrument_id: i.id,
        venue: i.venue as u8,
        category: i.category as u8,
        price_scale: i.price_scale,
        qty_scale: i.qty_scale,
        tick: i.tick,
        lot: i.lot,
        min_qty: i.min_qty,
        min_notional: i.min_notional,
        symbol: i.symbol.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::frame_boundary_after;

    #[test]
    fn boundaries_follow_length_prefixes() {
        // Frames of body length 2 and 3.
        let out = [2, 0, 0, 0, 9, 9, 3, 0, 0, 0, 9, 9, 9];
        assert_eq!(frame_boundary_after(&out, 0), 0);
        assert_eq!(frame_boundary_after(&out, 1), 6);
        assert_eq!(frame_boundary_after(&out, 6), 6);
        assert_eq!(frame_boundary_after(&out, 7), 13);
    }
}
