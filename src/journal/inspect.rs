//! `ordergate journal inspect`: a journal, readably, for operators.
//!
//! One line per record (`#<seq> <kind> <content>`, in trader terms:
//! client ids as the venue sees them, `Sent` frames decoded with the
//! strategy codec), then a summary of every strategy order: the client ids
//! it was placed under, the last state its strategy was told, its fills.
//! An offline tool: it reads segments (never writes them) and formats
//! freely, far from the hot path.
//!
//! A torn tail is reported and is not an error (the sidecar cuts it at its
//! next start); a record that does not decode in the middle of the journal
//! is ([`JournalError::Corrupt`] names its segment and offset).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ordergate_core::desk::{DeskInput, Request};
use ordergate_core::ids::{ClientId, ClientIdKind, Namespace, OrderKey, StrategyId};
use ordergate_core::model::{
    flags, ExecEvent, NewOrder, OrdType, OrderState, Reason, Side, TimeInForce,
};
use ordergate_core::venue::{Command, Report};
use ordergate_proto::codec::{decode_outbound, Outbound};

use super::entry::Entry;
use super::segment::{list_segments, replay, JournalError, TornTail};

/// What to print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Only the orders summary and the totals, no record lines.
    pub orders_only: bool,
    /// Record lines from this seq on (the summary still covers every
    /// record).
    pub from: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0}: no such directory")]
    Missing(PathBuf),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{undecodable} of {records} records did not decode (their lines above say why)")]
    Undecodable { undecodable: u64, records: u64 },
    #[error("writing the output: {0}")]
    Output(#[from] io::Error),
}

/// The journal directory `dir` names: its `journal/` subdirectory if it
/// has one (a state directory), else `dir` itself.
pub fn journal_dir(dir: &Path) -> Result<PathBuf, InspectError> {
    let sub = dir.join(crate::state::JOURNAL_DIR);
    if sub.is_dir() {
        Ok(sub)
    } else if dir.is_dir() {
        Ok(dir.to_path_buf())
    } else {
        Err(InspectError::Missing(dir.to_path_buf()))
    }
}

/// Prints the journal `dir` names (see [`journal_dir`]) to `out`.
pub fn inspect(dir: &Path, opts: Options, out: &mut impl Write) -> Result<(), InspectError> {
    let dir = journal_dir(dir)?;
    let segments = list_segments(&dir)?.len();
    writeln!(out, "journal {}: {segments} segments", dir.display())?;
    if segments == 0 {
        writeln!(
            out,
            "empty journal: no segment files (seg-*.log) in {}",
            dir.display()
        )?;
        return Ok(());
    }
    let mut reader = replay(&dir)?;
    let mut summary = Summary::default();
    let mut undecodable = 0;
    for record in &mut reader {
        let record = record?;
        summary.records += 1;
        let line = match Entry::decode(record.kind, &record.payload) {
            Ok(entry) => {
                summary.observe(&entry);
                describe(&entry)
            }
            Err(e) => {
                undecodable += 1;
                format!("undecodable: {e}")
            }
        };
        if !opts.orders_only && opts.from.is_none_or(|from| record.seq >= from) {
            writeln!(out, "#{} {line}", record.seq)?;
        }
    }
    if summary.records == 0 && reader.torn_tail().is_none() {
        writeln!(out, "empty journal: no records")?;
        return Ok(());
    }
    if let Some(torn) = reader.torn_tail() {
        writeln!(out, "{}", torn_line(torn))?;
    }
    summary.print(out)?;
    if undecodable > 0 {
        return Err(InspectError::Undecodable {
            undecodable,
            records: summary.records,
        });
    }
    Ok(())
}

fn torn_line(t: &TornTail) -> String {
    format!(
        "torn tail: {} at byte offset {}, {} bytes: {} (not an error: the sidecar cuts it at its next start)",
        t.segment.display(),
        t.offset,
        t.dropped_bytes,
        t.why
    )
}

/// One entry's line, after its `#seq`: its kind, then what it says.
pub fn describe(entry: &Entry) -> String {
    match entry {
        Entry::Start { namespace } => format!(
            "start installation {} epoch {}",
            namespace.installation_str(),
            namespace.epoch
        ),
        Entry::Command { input, .. } => format!("command {}", request(input)),
        Entry::Refused(cmd) => {
            format!("refused {}: ring full, answered QueueFull", command(cmd))
        }
        Entry::Report(Report::Exec(ev)) => format!("report {}", exec(ev)),
        Entry::Report(Report::Venue(v)) => {
            format!("report venue {} {:?}: {}", v.venue, v.state, v.text)
        }
        Entry::Sent {
            strategy,
            seq,
            frame,
        } => format!("sent strategy {strategy} seq {seq}: {}", sent(*seq, frame)),
        Entry::Snapshot { desk, sequences } => {
            let mut s = format!(
                "snapshot {} orders, {} venues, strategies",
                desk.lifecycle.orders.len(),
                desk.venues.len()
            );
            if sequences.is_empty() {
                s.push_str(" none");
            }
            for q in sequences {
                let _ = write!(s, " {} (next seq {})", q.strategy, q.next_seq);
            }
            s
        }
        Entry::Timer { now_ns } => format!("timer at {now_ns} ns (cancel_on_disconnect)"),
        Entry::Shutdown { cancel: true } => "shutdown: no new orders; open orders cancelled".into(),
        Entry::Shutdown { cancel: false } => "shutdown: no new orders; open orders left".into(),
    }
}

fn request(input: &DeskInput) -> String {
    let strategy = input.strategy;
    match input.request {
        Request::NewOrder(o) => format!("strategy {strategy}: new order {}", new_order(&o)),
        Request::Cancel { order_id } => format!("strategy {strategy}: cancel order {order_id}"),
        Request::CancelAll { instrument_id: 0 } => {
            format!("strategy {strategy}: cancel all on every instrument")
        }
        Request::CancelAll { instrument_id } => {
            format!("strategy {strategy}: cancel all on instrument {instrument_id}")
        }
        Request::Presence { connected: true } => format!("strategy {strategy}: connected"),
        Request::Presence { connected: false } => format!("strategy {strategy}: disconnected"),
    }
}

fn new_order(o: &NewOrder) -> String {
    let mut s = format!(
        "{} {} {} {} qty {}",
        o.order_id,
        side(o.side),
        ord_type(o.ord_type),
        tif(o.tif),
        o.qty
    );
    if o.ord_type != OrdType::Market {
        let _ = write!(s, " price {}", o.price);
    }
    let _ = write!(s, " on instrument {}", o.instrument_id);
    if o.flags != 0 {
        let _ = write!(s, " flags {}", flag_names(o.flags));
    }
    s
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

fn ord_type(t: OrdType) -> &'static str {
    match t {
        OrdType::Limit => "LIMIT",
        OrdType::Market => "MARKET",
        OrdType::LimitMaker => "LIMIT_MAKER",
    }
}

fn tif(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "GTC",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
    }
}

fn flag_names(bits: u8) -> String {
    let names = [
        (flags::REDUCE_ONLY, "REDUCE_ONLY"),
        (flags::POST_ONLY, "POST_ONLY"),
        (flags::QUOTE_QTY, "QUOTE_QTY"),
    ];
    let mut s: Vec<String> = names
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    if bits & !flags::KNOWN != 0 {
        s.push(format!("{:#04x}", bits & !flags::KNOWN));
    }
    s.join("|")
}

fn command(cmd: &Command) -> String {
    match cmd {
        Command::Place(o) => format!("place {} ({})", o.client_id.encode(), key(&o.client_id.key)),
        Command::Cancel {
            cancel_id, orig, ..
        } => format!(
            "cancel {} of {} ({})",
            cancel_id.encode(),
            orig.encode(),
            key(&orig.key)
        ),
    }
}

fn key(k: &OrderKey) -> String {
    format!("strategy {} order {}", k.strategy, k.order_id)
}

fn exec(ev: &ExecEvent) -> String {
    match ev {
        ExecEvent::Accepted {
            client_id,
            venue_order_id,
            ..
        } => format!("accepted {} venue id {venue_order_id}", client_id.encode()),
        ExecEvent::Rejected {
            client_id,
            reason,
            code,
            text,
        } => format!(
            "rejected {} {reason:?} code {code}: {text}",
            client_id.encode()
        ),
        ExecEvent::Fill {
            client_id,
            trade_id,
            last_qty,
            last_price,
            fee,
            fee_asset,
            is_maker,
            order_filled,
            ..
        } => {
            let mut s = format!(
                "fill {} trade {trade_id} qty {last_qty} price {last_price} fee {fee} {fee_asset} {}",
                client_id.encode(),
                if *is_maker { "maker" } else { "taker" }
            );
            if *order_filled {
                s.push_str(" order filled");
            }
            s
        }
        ExecEvent::Canceled { client_id, .. } => format!("canceled {}", client_id.encode()),
        ExecEvent::CancelRejected {
            client_id,
            reason,
            code,
            text,
        } => format!(
            "cancel rejected {} {reason:?} code {code}: {text}",
            client_id.encode()
        ),
        ExecEvent::Expired { client_id, .. } => format!("expired {}", client_id.encode()),
        ExecEvent::OutcomeUnknown { client_id, text } => {
            format!("outcome unknown {}: {text}", client_id.encode())
        }
        ExecEvent::Completed { client_id } => format!("completed {}", client_id.encode()),
    }
}

/// The frame body after its 4-byte length prefix, if the prefix says
/// exactly the rest.
fn frame_body(frame: &[u8]) -> Option<&[u8]> {
    let (len, body) = frame.split_first_chunk::<4>()?;
    (u32::from_le_bytes(*len) as usize == body.len()).then_some(body)
}

fn decode_frame(frame: &[u8]) -> Result<(u64, Outbound), String> {
    let body = frame_body(frame)
        .ok_or_else(|| format!("{} bytes, length prefix does not match", frame.len()))?;
    decode_outbound(body).map_err(|e| e.to_string())
}

fn sent(seq: u64, frame: &[u8]) -> String {
    match decode_frame(frame) {
        Ok((frame_seq, msg)) if frame_seq == seq => outbound(&msg),
        Ok((frame_seq, msg)) => format!("{} (the frame says seq {frame_seq})", outbound(&msg)),
        Err(e) => format!("undecodable frame ({e})"),
    }
}

fn outbound(msg: &Outbound) -> String {
    match msg {
        Outbound::Accepted {
            order_id,
            venue_order_id,
        } => format!("Accepted order {order_id} venue id {venue_order_id}"),
        Outbound::Rejected {
            order_id,
            reason,
            text,
        } => format!("Rejected order {order_id} {reason:?}: {text}"),
        Outbound::Fill(f) => format!(
            "Fill order {} qty {} price {} cum {} leaves {} trade {}",
            f.order_id, f.last_qty, f.last_price, f.cum_qty, f.leaves_qty, f.trade_id
        ),
        Outbound::Canceled { order_id, cum_qty } => {
            format!("Canceled order {order_id} cum {cum_qty}")
        }
        Outbound::CancelRejected {
            order_id,
            reason,
            text,
        } => format!("CancelRejected order {order_id} {reason:?}: {text}"),
        Outbound::Expired { order_id, cum_qty } => {
            format!("Expired order {order_id} cum {cum_qty}")
        }
        Outbound::OrderStatus(s) => format!(
            "OrderStatus order {} {:?} cum {} leaves {}",
            s.order_id, s.state, s.cum_qty, s.leaves_qty
        ),
        other => format!("{other:?}"),
    }
}

/// One strategy order, as the journal tells it.
#[derive(Debug, Default)]
struct OrderLine {
    /// Client ids it was placed under (encoded), first first.
    client_ids: Vec<String>,
    /// Whether a venue report or a refused command named one of them (else
    /// the only one is the id its NewOrder would mint).
    confirmed: bool,
    /// The last state its strategy was told; `None` before any frame.
    told: Option<OrderState>,
    cum_qty: i64,
    fills: u64,
}

impl OrderLine {
    /// A report or a refused command named the order by `id`.
    fn named(&mut self, id: &ClientId) {
        self.confirmed = true;
        self.placed_as(id);
    }

    fn placed_as(&mut self, id: &ClientId) {
        let id = ClientId::order(id.ns, id.key).encode();
        if !self.client_ids.contains(&id) {
            self.client_ids.push(id);
        }
    }

    /// Open as last told: not yet told anything (pending), or told a
    /// state that is not final.
    fn open(&self) -> bool {
        !self.told.is_some_and(OrderState::is_terminal)
    }
}

#[derive(Debug, Default)]
struct Summary {
    records: u64,
    runs: u64,
    /// The namespace of the run the records being read belong to.
    ns: Namespace,
    orders: BTreeMap<OrderKey, OrderLine>,
}

impl Summary {
    fn order(&mut self, key: OrderKey) -> &mut OrderLine {
        self.orders.entry(key).or_default()
    }

    fn observe(&mut self, entry: &Entry) {
        match entry {
            Entry::Start { namespace } => {
                self.runs += 1;
                self.ns = *namespace;
            }
            Entry::Command {
                input:
                    DeskInput {
                        strategy,
                        request: Request::NewOrder(o),
                    },
                ..
            } => {
                let key = OrderKey {
                    strategy: *strategy,
                    order_id: o.order_id,
                };
                // A repeated order id is answered with the order's status,
                // not placed again: only the first mints a client id.
                if self
                    .orders
                    .get(&key)
                    .is_none_or(|o| o.client_ids.is_empty())
                {
                    let ns = self.ns;
                    self.order(key).placed_as(&ClientId::order(ns, key));
                }
            }
            Entry::Command { .. }
            | Entry::Snapshot { .. }
            | Entry::Timer { .. }
            | Entry::Shutdown { .. } => {}
            Entry::Refused(cmd) => {
                let id = match cmd {
                    Command::Place(o) => o.client_id,
                    Command::Cancel { orig, .. } => *orig,
                };
                self.order(id.key).named(&id);
            }
            Entry::Report(Report::Exec(ev)) => {
                let id = exec_client_id(ev);
                if id.kind == ClientIdKind::Order {
                    self.order(id.key).named(id);
                }
            }
            Entry::Report(Report::Venue(_)) => {}
            Entry::Sent {
                strategy, frame, ..
            } => {
                if let Ok((_, msg)) = decode_frame(frame) {
                    self.told(*strategy, &msg);
                }
            }
        }
    }

    fn told(&mut self, strategy: StrategyId, msg: &Outbound) {
        let (order_id, state, cum) = match msg {
            Outbound::Accepted { order_id, .. } => (*order_id, Some(OrderState::New), None),
            Outbound::Rejected { order_id, .. } => (*order_id, Some(OrderState::Rejected), None),
            Outbound::Fill(f) => {
                let state = if f.leaves_qty == 0 {
                    OrderState::Filled
                } else {
                    OrderState::PartiallyFilled
                };
                (f.order_id, Some(state), Some(f.cum_qty))
            }
            Outbound::Canceled { order_id, cum_qty } => {
                (*order_id, Some(OrderState::Canceled), Some(*cum_qty))
            }
            // The order stays as it was.
            Outbound::CancelRejected { order_id, .. } => (*order_id, None, None),
            Outbound::Expired { order_id, cum_qty } => {
                (*order_id, Some(OrderState::Expired), Some(*cum_qty))
            }
            Outbound::OrderStatus(s) => (s.order_id, Some(s.state), Some(s.cum_qty)),
            _ => return,
        };
        let line = self.order(OrderKey { strategy, order_id });
        if let Outbound::Rejected { reason, .. } = msg {
            // The desk refused it before minting a client id: it was
            // never placed (and its order id is still free).
            if !line.confirmed && refused_unplaced(*reason) {
                line.client_ids.clear();
            }
        }
        if let Some(state) = state {
            line.told = Some(state);
        }
        if let Some(cum) = cum {
            line.cum_qty = cum;
        }
        if matches!(msg, Outbound::Fill(_)) {
            line.fills += 1;
        }
    }

    fn print(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out, "orders:")?;
        if self.orders.is_empty() {
            writeln!(out, "  none")?;
        }
        for (key, o) in &self.orders {
            let told = o.told.map_or("nothing".to_owned(), |s| format!("{s:?}"));
            let ids = if o.client_ids.is_empty() {
                "-".to_owned()
            } else {
                o.client_ids.join(",")
            };
            writeln!(
                out,
                "  {} client {ids} told {told} filled {} fills {}",
                self::key(key),
                o.cum_qty,
                o.fills
            )?;
        }
        let open = self.orders.values().filter(|o| o.open()).count();
        writeln!(
            out,
            "totals: {} records, {} runs, {} orders, {open} open (as last told)",
            self.records,
            self.runs,
            self.orders.len()
        )
    }
}

/// The reasons the desk refuses a new order with before it mints a
/// client id for it.
fn refused_unplaced(reason: Reason) -> bool {
    let code = reason as u16;
    (Reason::UnknownInstrument as u16..=Reason::InvalidFlags as u16).contains(&code)
        || reason == Reason::VenueDown
}

fn exec_client_id(ev: &ExecEvent) -> &ClientId {
    match ev {
        ExecEvent::Accepted { client_id, .. }
        | ExecEvent::Rejected { client_id, .. }
        | ExecEvent::Fill { client_id, .. }
        | ExecEvent::Canceled { client_id, .. }
        | ExecEvent::CancelRejected { client_id, .. }
        | ExecEvent::Expired { client_id, .. }
        | ExecEvent::OutcomeUnknown { client_id, .. }
        | ExecEvent::Completed { client_id } => client_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_frame_prefix() {
        assert_eq!(
            flag_names(flags::REDUCE_ONLY | flags::POST_ONLY),
            "REDUCE_ONLY|POST_ONLY"
        );
        assert_eq!(flag_names(0x80), "0x80");
        assert_eq!(frame_body(&[2, 0, 0, 0, 7, 8]), Some(&[7u8, 8][..]));
        assert_eq!(frame_body(&[3, 0, 0, 0, 7, 8]), None);
        assert_eq!(frame_body(&[1, 0]), None);
    }
}
