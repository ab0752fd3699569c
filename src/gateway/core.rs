//! Gateway logic without I/O: frames and venue events in, [`Effect`]s and
//! commands out.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::{CommandSink, GatewayConfig, GatewayConfigError};
use crate::ids::{ClientId, InstrumentId, OrderKey, StrategyId, VenueId};
use crate::instrument::Instrument;
use crate::lifecycle::Lifecycle;
use crate::protocol::{
    decode_inbound, flags, Inbound, InstrumentInfo, NewOrder, OrdType, OrderState, Outbound,
    ProtocolError, Reason, VenueState, MAX_FRAME, VERSION_MAX, VERSION_MIN,
};
use crate::venue::{Command, Lane, OrderRequest, Report, VenueStatus};

/// A connection, as the driver names it.
pub type ConnId = usize;

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write `msg` with `seq` (0 for unsequenced) to `conn`.
    Send {
        conn: ConnId,
        seq: u64,
        msg: Outbound,
    },
    /// Close `conn` once what was queued for it is written (best effort).
    Close { conn: ConnId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    AwaitingHello,
    Active(StrategyId),
    /// An error was reported; further frames are ignored. Keeps the
    /// strategy (if any) to tell the sink once the socket is gone.
    Closing(Option<StrategyId>),
}

#[derive(Debug)]
struct Strategy {
    name: String,
    conn: Option<ConnId>,
    next_seq: u64,
    /// The last `resend_capacity` sequenced messages, oldest first.
    sent: VecDeque<(u64, Outbound)>,
}

/// Per-process gateway state: connections, strategies, instruments, venue
/// states and the lifecycle tracker.
#[derive(Debug)]
pub struct Core {
    epoch: u32,
    resend_capacity: usize,
    max_outbound_bytes: usize,
    conns: HashMap<ConnId, ConnState>,
    strategies: BTreeMap<StrategyId, Strategy>,
    instruments: BTreeMap<InstrumentId, Instrument>,
    venues: BTreeMap<VenueId, (VenueState, String)>,
    lifecycle: Lifecycle,
    /// Lifecycle output waiting to be sequenced (reused buffer).
    scratch: Vec<(StrategyId, Outbound)>,
}

impl Core {
    pub fn new(cfg: GatewayConfig) -> Result<Core, GatewayConfigError> {
        if cfg.resend_capacity == 0 {
            return Err(GatewayConfigError::NoResendBuffer);
        }
        // One frame of the largest size plus its length prefix.
        let min_out = MAX_FRAME + 4;
        if cfg.max_outbound_bytes < min_out {
            return Err(GatewayConfigError::OutboundTooSmall(min_out));
        }
        let mut strategies = BTreeMap::new();
        for s in cfg.strategies {
            if strategies.values().any(|x: &Strategy| x.name == s.name) {
                return Err(GatewayConfigError::DuplicateStrategyName(s.name));
            }
            let st = Strategy {
                name: s.name,
                conn: None,
                next_seq: 1,
                sent: VecDeque::new(),
            };
            if strategies.insert(s.id, st).is_some() {
                return Err(GatewayConfigError::DuplicateStrategyId(s.id));
            }
        }
        let mut instruments = BTreeMap::new();
        for i in cfg.instruments {
            let id = i.id;
            if instruments.insert(id, i).is_some() {
                return Err(GatewayConfigError::DuplicateInstrument(id));
            }
        }
        Ok(Core {
            epoch: cfg.epoch,
            resend_capacity: cfg.resend_capacity,
            max_outbound_bytes: cfg.max_outbound_bytes,
            conns: HashMap::new(),
            strategies,
            instruments,
            venues: BTreeMap::new(),
            lifecycle: Lifecycle::new(cfg.epoch),
            scratch: Vec::new(),
        })
    }

    pub fn max_outbound_bytes(&self) -> usize {
        self.max_outbound_bytes
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// A socket was accepted; it must say Hello first.
    pub fn on_connect(&mut self, conn: ConnId) {
        self.conns.insert(conn, ConnState::AwaitingHello);
    }

    /// A socket is gone (peer closed, error, slow consumer). The strategy's
    /// orders stay live and its messages keep being sequenced.
    pub fn on_disconnect(&mut self, conn: ConnId, sink: &mut impl CommandSink) {
        if let Some(ConnState::Active(id) | ConnState::Closing(Some(id))) = self.conns.remove(&conn)
        {
            if let Some(s) = self.strategies.get_mut(&id) {
                s.conn = None;
            }
            sink.on_strategy_disconnected(id);
        }
    }

    /// The driver could not frame the stream (oversized length): report and
    /// close.
    pub fn on_protocol_error(&mut self, conn: ConnId, err: &ProtocolError, out: &mut Vec<Effect>) {
        self.error(conn, err.reason(), err.to_string(), out);
        if err.is_fatal() {
            self.close(conn, out);
        }
    }

    /// One complete frame body from `conn`.
    pub fn on_frame(
        &mut self,
        conn: ConnId,
        body: &[u8],
        sink: &mut impl CommandSink,
        out: &mut Vec<Effect>,
    ) {
        let Some(&state) = self.conns.get(&conn) else {
            return;
        };
        if let ConnState::Closing(_) = state {
            return;
        }
        let msg = match decode_inbound(body) {
            Ok(m) => m,
            Err(e) => {
                self.on_protocol_error(conn, &e, out);
                // A peer that cannot even say Hello is not a strategy.
                if state == ConnState::AwaitingHello && !e.is_fatal() {
                    self.close(conn, out);
                }
                return;
            }
        };
        match (state, msg) {
            (
                ConnState::AwaitingHello,
                Inbound::Hello {
                    min_version,
                    max_version,
                    name,
                },
            ) => self.hello(conn, min_version, max_version, &name, sink, out),
            (ConnState::AwaitingHello, _) => {
                self.error(conn, Reason::HelloRequired, "send Hello first".into(), out);
                self.close(conn, out);
            }
            (ConnState::Active(_), Inbound::Hello { .. }) => self.error(
                conn,
                Reason::MalformedFrame,
                "Hello already received on this connection".into(),
                out,
            ),
            (ConnState::Active(s), Inbound::NewOrder(o)) => self.new_order(conn, s, &o, sink, out),
            (ConnState::Active(s), Inbound::Cancel { order_id }) => {
                let key = OrderKey {
                    strategy: s,
                    order_id,
                };
                self.cancel(key, sink, out);
            }
            (ConnState::Active(s), Inbound::CancelAll { instrument_id }) => {
                self.cancel_all(s, instrument_id, sink, out)
            }
            (ConnState::Active(s), Inbound::ResendFrom { seq }) => self.resend(conn, s, seq, out),
            (ConnState::Active(_), Inbound::Heartbeat) => out.push(Effect::Send {
                conn,
                seq: 0,
                msg: Outbound::Heartbeat,
            }),
            (ConnState::Closing(_), _) => {}
        }
    }

    /// A venue event from a session: order events go through the
    /// lifecycle to their strategy; status events to every strategy.
    pub fn on_venue_event(&mut self, ev: &Report, out: &mut Vec<Effect>) {
        let ev = match ev {
            Report::Venue(VenueStatus { venue, state, text }) => {
                return self.set_venue_state(*venue, *state, text, out)
            }
            Report::Exec(e) => e,
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        self.lifecycle
            .on_venue_event(ev, &mut |s, m| scratch.push((s, m.into())));
        self.flush(&mut scratch, out);
        self.scratch = scratch;
    }

    /// Records a venue's state and tells every connected strategy.
    pub fn set_venue_state(
        &mut self,
        venue: VenueId,
        state: VenueState,
        text: &str,
        out: &mut Vec<Effect>,
    ) {
        self.venues.insert(venue, (state, text.to_owned()));
        let msg = Outbound::VenueStatus {
            venue: venue as u8,
            state,
            text: text.to_owned(),
        };
        for s in self.strategies.values() {
            if let Some(conn) = s.conn {
                out.push(Effect::Send {
                    conn,
                    seq: 0,
                    msg: msg.clone(),
                });
            }
        }
    }

    fn hello(
        &mut self,
        conn: ConnId,
        min_version: u16,
        max_version: u16,
        name: &str,
        sink: &mut impl CommandSink,
        out: &mut Vec<Effect>,
    ) {
        let version = max_version.min(VERSION_MAX);
        if version < min_version.max(VERSION_MIN) {
            let text = format!(
                "client speaks versions {min_version}..={max_version}, \
                 this sidecar {VERSION_MIN}..={VERSION_MAX}"
            );
            self.error(conn, Reason::UnsupportedVersion, text, out);
            return self.close(conn, out);
        }
        let Some((&id, st)) = self.strategies.iter_mut().find(|(_, s)| s.name == name) else {
            let text = format!("no strategy named {name:?} in the config");
            self.error(conn, Reason::UnknownStrategy, text, out);
            return self.close(conn, out);
        };
        if st.conn.is_some() {
            let text = format!("strategy {name:?} is already connected");
            self.error(conn, Reason::StrategyAlreadyConnected, text, out);
            return self.close(conn, out);
        }
        st.conn = Some(conn);
        let next_seq = st.next_seq;
        self.conns.insert(conn, ConnState::Active(id));
        sink.on_strategy_connected(id);
        let send = |msg| Effect::Send { conn, seq: 0, msg };
        out.push(send(Outbound::HelloAck {
            version,
            strategy_id: id,
            next_seq,
            instrument_count: self.instruments.len() as u32,
        }));
        for i in self.instruments.values() {
            out.push(send(Outbound::InstrumentInfo(instrument_info(i))));
        }
        for (v, (state, text)) in &self.venues {
            out.push(send(Outbound::VenueStatus {
                venue: *v as u8,
                state: *state,
                text: text.clone(),
            }));
        }
    }

    fn new_order(
        &mut self,
        conn: ConnId,
        strategy: StrategyId,
        o: &NewOrder,
        sink: &mut impl CommandSink,
        out: &mut Vec<Effect>,
    ) {
        let key = OrderKey {
            strategy,
            order_id: o.order_id,
        };
        if let Some(st) = self.lifecycle.status(key) {
            return self.emit(strategy, Outbound::OrderStatus(st), out);
        }
        let Some(inst) = self.instruments.get(&o.instrument_id) else {
            let text = format!("instrument {} is not configured", o.instrument_id);
            return self.reject(strategy, o.order_id, Reason::UnknownInstrument, text, out);
        };
        let venue_state = self.venues.get(&inst.venue);
        if !matches!(venue_state, Some((VenueState::Up, _))) {
            let (state, text) = venue_state
                .cloned()
                .unwrap_or((VenueState::Down, "no session yet".to_owned()));
            let venue = inst.venue;
            out.push(Effect::Send {
                conn,
                seq: 0,
                msg: Outbound::VenueStatus {
                    venue: venue as u8,
                    state,
                    text,
                },
            });
            let text = format!("{venue} is {state:?}");
            return self.reject(strategy, o.order_id, Reason::VenueDown, text, out);
        }
        if let Err((reason, text)) = check_order(inst, o) {
            return self.reject(strategy, o.order_id, reason, text, out);
        }
        if let Err(dup) = self.lifecycle.submit(key, inst, o) {
            // Unreachable after the status check above; answered the same way.
            return self.emit(strategy, Outbound::OrderStatus(dup.0), out);
        }
        let cmd = Command::Place(OrderRequest {
            client_id: ClientId::order(self.epoch, key),
            instrument: o.instrument_id,
            side: o.side,
            ord_type: o.ord_type,
            tif: o.tif,
            flags: o.flags,
            price: o.price,
            qty: o.qty,
        });
        if sink.push(strategy, cmd.lane(), cmd).is_err() {
            let mut scratch = std::mem::take(&mut self.scratch);
            self.lifecycle.gateway_reject(
                key,
                Reason::QueueFull,
                "order queue to the venue is full",
                &mut |s, m| scratch.push((s, m.into())),
            );
            self.flush(&mut scratch, out);
            self.scratch = scratch;
        }
    }

    fn cancel(&mut self, key: OrderKey, sink: &mut impl CommandSink, out: &mut Vec<Effect>) {
        let n = match self.lifecycle.request_cancel(key) {
            Ok(n) => n,
            Err(e) => {
                let msg = Outbound::CancelRejected {
                    order_id: key.order_id,
                    reason: e.reason(),
                    text: e.to_string(),
                };
                return self.emit(key.strategy, msg, out);
            }
        };
        let instrument = self.lifecycle.order(key).map_or(0, |o| o.instrument);
        let cmd = Command::Cancel {
            cancel_id: ClientId::cancel(self.epoch, key, n),
            orig: ClientId::order(self.epoch, key),
            instrument,
        };
        if sink.push(key.strategy, Lane::Critical, cmd).is_err() {
            let mut scratch = std::mem::take(&mut self.scratch);
            self.lifecycle.cancel_failed(
                key,
                Reason::QueueFull,
                "cancel queue to the venue is full",
                &mut |s, m| scratch.push((s, m.into())),
            );
            self.flush(&mut scratch, out);
            self.scratch = scratch;
        }
    }

    /// Cancels every open order of `strategy` (on one instrument, or all for
    /// 0). Orders already being canceled are left to their pending cancel.
    fn cancel_all(
        &mut self,
        strategy: StrategyId,
        instrument: InstrumentId,
        sink: &mut impl CommandSink,
        out: &mut Vec<Effect>,
    ) {
        let keys: Vec<OrderKey> = self
            .lifecycle
            .open_orders(strategy)
            .filter(|o| instrument == 0 || o.instrument == instrument)
            .filter(|o| o.state() != OrderState::PendingCancel)
            .map(|o| o.key)
            .collect();
        for key in keys {
            self.cancel(key, sink, out);
        }
    }

    fn resend(&mut self, conn: ConnId, strategy: StrategyId, from: u64, out: &mut Vec<Effect>) {
        let Some(s) = self.strategies.get(&strategy) else {
            return;
        };
        let from = from.max(1);
        if from >= s.next_seq {
            return;
        }
        let oldest = s.sent.front().map_or(s.next_seq, |(seq, _)| *seq);
        if from < oldest {
            let text = format!("seq {from} is no longer kept; oldest kept is {oldest}");
            return self.error(conn, Reason::ResendUnavailable, text, out);
        }
        for (seq, msg) in s.sent.iter().filter(|(seq, _)| *seq >= from) {
            out.push(Effect::Send {
                conn,
                seq: *seq,
                msg: msg.clone(),
            });
        }
    }

    fn reject(
        &mut self,
        strategy: StrategyId,
        order_id: u64,
        reason: Reason,
        text: String,
        out: &mut Vec<Effect>,
    ) {
        let msg = Outbound::Rejected {
            order_id,
            reason,
            text,
        };
        self.emit(strategy, msg, out);
    }

    fn flush(&mut self, msgs: &mut Vec<(StrategyId, Outbound)>, out: &mut Vec<Effect>) {
        for (s, m) in msgs.drain(..) {
            self.emit(s, m, out);
        }
    }

    /// Sequences `msg` for `strategy`, keeps it for ResendFrom, and sends it
    /// if the strategy is connected.
    fn emit(&mut self, strategy: StrategyId, msg: Outbound, out: &mut Vec<Effect>) {
        let Some(s) = self.strategies.get_mut(&strategy) else {
            return;
        };
        let seq = s.next_seq;
        s.next_seq += 1;
        if s.sent.len() == self.resend_capacity {
            s.sent.pop_front();
        }
        if let Some(conn) = s.conn {
            out.push(Effect::Send {
                conn,
                seq,
                msg: msg.clone(),
            });
        }
        s.sent.push_back((seq, msg));
    }

    fn error(&mut self, conn: ConnId, reason: Reason, text: String, out: &mut Vec<Effect>) {
        let msg = Outbound::Error { reason, text };
        out.push(Effect::Send { conn, seq: 0, msg });
    }

    fn close(&mut self, conn: ConnId, out: &mut Vec<Effect>) {
        if let Some(st) = self.conns.get_mut(&conn) {
            let strategy = match *st {
                ConnState::Active(id) => Some(id),
                ConnState::Closing(s) => s,
                ConnState::AwaitingHello => None,
            };
            if let Some(s) = strategy.and_then(|id| self.strategies.get_mut(&id)) {
                s.conn = None;
            }
            *st = ConnState::Closing(strategy);
        }
        out.push(Effect::Close { conn });
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

/// The instrument checks, in a fixed order so a strategy always gets the
/// first problem. The text says what was wrong in the instrument's units.
fn check_order(i: &Instrument, o: &NewOrder) -> Result<(), (Reason, String)> {
    let quote = o.flags & flags::QUOTE_QTY != 0;
    let market = o.ord_type == OrdType::Market;
    if o.flags & !flags::KNOWN != 0 {
        return Err((
            Reason::InvalidFlags,
            format!("unknown flag bits 0x{:02x}", o.flags & !flags::KNOWN),
        ));
    }
    if quote && !market {
        return Err((
            Reason::InvalidFlags,
            "QUOTE_QTY is only for MARKET orders".into(),
        ));
    }
    if o.flags & flags::POST_ONLY != 0 && market {
        return Err((
            Reason::InvalidFlags,
            "POST_ONLY cannot be a MARKET order".into(),
        ));
    }
    if o.qty <= 0 {
        return Err((
            Reason::InvalidQty,
            format!("qty mantissa {} is not positive", o.qty),
        ));
    }
    if !market {
        if o.price <= 0 {
            return Err((
                Reason::InvalidPrice,
                format!("price mantissa {} is not positive", o.price),
            ));
        }
        if o.price % i.tick != 0 {
            return Err((
                Reason::PriceNotOnTick,
                format!(
                    "price {} is not a multiple of tick {} on {}",
                    i.format_price(o.price),
                    i.format_price(i.tick),
                    i.symbol
                ),
            ));
        }
    }
    if quote {
        // qty is a notional at price_scale + qty_scale.
        if (o.qty as i128) < i.min_notional {
            return Err((
                Reason::BelowMinNotional,
                format!(
                    "quote qty mantissa {} is below min notional {}",
                    o.qty, i.min_notional
                ),
            ));
        }
        return Ok(());
    }
    if o.qty % i.lot != 0 {
        return Err((
            Reason::QtyNotOnLot,
            format!(
                "qty {} is not a multiple of lot {} on {}",
                i.format_qty(o.qty),
                i.format_qty(i.lot),
                i.symbol
            ),
        ));
    }
    if o.qty < i.min_qty {
        return Err((
            Reason::BelowMinQty,
            format!(
                "qty {} is below min qty {} on {}",
                i.format_qty(o.qty),
                i.format_qty(i.min_qty),
                i.symbol
            ),
        ));
    }
    if !market {
        let notional = crate::decimal::notional(o.price, o.qty);
        if notional < i.min_notional {
            let scale = i.price_scale + i.qty_scale;
            return Err((
                Reason::BelowMinNotional,
                format!(
                    "notional {} is below min notional {} on {}",
                    crate::decimal::format_fixed(notional, scale),
                    crate::decimal::format_fixed(i.min_notional, scale),
                    i.symbol
                ),
            ));
        }
    }
    Ok(())
}
