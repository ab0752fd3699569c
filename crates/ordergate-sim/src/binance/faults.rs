//! Faults on purpose: the simulated venue misbehaving the ways the real
//! one does (and the docs warn about), seeded and reproducible.
//!
//! Faults live in the socket-free [`Exchange`], so the socket server and a
//! virtual-time harness get the same ones: [`Exchange::ws_request`] may
//! return fewer frames than without faults (held or dropped ones), and
//! [`Exchange::poll_faults`] returns what is due at a given time: delayed
//! frames, timed faults, and the connections the exchange closes. A driver
//! calls it at [`Exchange::next_fault_ms`] (or on a short tick) and after
//! any call, delivers the frames and closes those sockets (the exchange has
//! already forgotten them).
//!
//! Every decision is drawn from a seeded [`SplitMix64`], one stream per
//! kind, so a seed replays the same faults for a run driven the same way
//! (same requests at the same times), and enabling one kind does not
//! change the draws of another. Every injection is counted
//! ([`Exchange::fault_counts`]) and logged at debug level (`fault = name`).
//!
//! Rates: per-event kinds strike with a chance per event, higher until
//! the kind's first injection (so that even a short run sees every kind)
//! and lower afterwards (so that a long run stays usable); per-connection
//! and timed kinds draw from ranges, shorter until the first one. A
//! `kind:N` in the spec replaces both with one rate (no warm-up).
//!
//! | kind | what happens | default (until the first → after) | `kind:N` means N ‰ of |
//! |---|---|---|---|
//! | `disconnect` | the connection is closed (abruptly) after its N-th frame received; that frame was executed or not (even odds; not executed: it never reached the venue and is not in the request log); its answer and events to it are lost | N uniform in 10..=80 → 100..=600 frames | frames received: N is drawn around 1000/N (½× to 1½×) |
//! | `disconnect-after-accept` | an `order.place` is executed (order created, events to other subscribers go out) and the connection is closed (abruptly) before its answer | 15 ‰ → 1 ‰ | `order.place` requests that placed an order |
//! | `delay` | an answer is held 20..=2000 ms, with the events its request caused (to every connection) behind it | 20 ‰ → 10 ‰ | answers |
//! | `drop` | an answer is never sent (the request was executed) | 15 ‰ → 4 ‰ | answers |
//! | `unknown-accepted` | `order.place` executed (order created, events published) but answered with an error of unknown outcome (below) | 15 ‰ → 4 ‰ | `order.place` requests that placed an order |
//! | `unknown-rejected` | the same answers, but the order was not placed | 15 ‰ → 4 ‰ | `order.place` requests that passed the limits and authentication |
//! | `busy` | `order.place` not executed, answered 503 / -1008 | 15 ‰ → 4 ‰ | the same |
//! | `duplicate` | an `executionReport` frame is sent twice in a row | 30 ‰ → 5 ‰ | `executionReport` frames |
//! | `fill-before-ack` | an `order.place` that trades at once: its events go out before its answer | 100 ‰ → 20 ‰ | `order.place` requests whose order traded at once (with a subscription on the same connection) |
//! | `stream-loss` | a subscription gets `eventStreamTerminated` (`{"subscriptionId":N,"event":{"e":"eventStreamTerminated","E":…}}`) and is removed; for 1..=5 s new `userDataStream.subscribe*` of its account are refused 503 / -1008 | first 1..=8 s after the first activity, then every 20..=60 s | seconds (the interval is drawn around 1000/N s) |
//! | `max-age` | a connection is closed (close frame 1000) when it reaches its maximum age | 2..=6 s → 30..=120 s | seconds of a connection's life (the age is drawn around 1000/N s) |
//! | `clock` | the server clock steps ±200..=1500 ms and/or its drift becomes −200..=+200 ppm (steps lean back when the clock is more than 2 s off) | first 1..=8 s, then every 15..=45 s | seconds |
//! | `shutdown` | `serverShutdown` on one connection, closed (close frame 1000) after the shutdown grace | first 1..=8 s, then every 40..=100 s | seconds |
//!
//! "Activity" is the first connection or request after the faults were
//! set; the timed kinds start from it. Maximum ages and frame counts are
//! drawn when a connection opens (or at its next request or poll after
//! [`Exchange::set_faults`]).
//!
//! At most one of `disconnect-after-accept`, `unknown-*`, `busy`,
//! `fill-before-ack`, `drop` and `delay` applies to one request; a
//! `disconnect` on a frame excludes them too. `duplicate` applies to any
//! `executionReport` (also those a market move or REST causes). REST
//! requests themselves are not faulted; the events they cause are
//! (`duplicate`, and held behind a delayed answer on the same stream).
//!
//! Answers of unknown outcome (web-socket-api.md §"Status codes": a 5xx
//! "does not necessarily mean that your request has failed"; errors.md:
//! -1006 and -1007 "execution status unknown"), one drawn per answer:
//! status 500 with -1006 "An unexpected response was received from the
//! message bus. Execution status unknown.", status 503 with -1006, or
//! status 503 with -1007 "Timeout waiting for response from backend
//! server. Send status unknown; execution status unknown.". `busy` and a
//! refused subscription answer status 503 with -1008 "Server is currently
//! overloaded with other requests. Please try again in a few minutes."
//!
//! Without faults a connection still ends at 24 hours, as the docs say of
//! the real one ("A single connection to the API is only valid for 24
//! hours").
//!
//! The request log and the ledger stay exact: every request the venue
//! received is in the log once (with the [`RequestRecord::fault`] it got
//! and the status of the answer it made, sent or not), and every order
//! created is in the ledger once.
//!
//! [`RequestRecord::fault`]: super::RequestRecord::fault

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use super::api::ApiError;
use super::engine::SplitMix64;
use super::exchange::{ConnId, Exchange, Frames};
use super::json;

/// One way the simulated venue misbehaves (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    Disconnect,
    DisconnectAfterAccept,
    Delay,
    Drop,
    UnknownAccepted,
    UnknownRejected,
    Busy,
    Duplicate,
    FillBeforeAck,
    StreamLoss,
    MaxAge,
    Clock,
    Shutdown,
}

impl FaultKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::Disconnect,
        FaultKind::DisconnectAfterAccept,
        FaultKind::Delay,
        FaultKind::Drop,
        FaultKind::UnknownAccepted,
        FaultKind::UnknownRejected,
        FaultKind::Busy,
        FaultKind::Duplicate,
        FaultKind::FillBeforeAck,
        FaultKind::StreamLoss,
        FaultKind::MaxAge,
        FaultKind::Clock,
        FaultKind::Shutdown,
    ];

    /// The name used in specs, counts and logs (`"disconnect-after-accept"`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Disconnect => "disconnect",
            FaultKind::DisconnectAfterAccept => "disconnect-after-accept",
            FaultKind::Delay => "delay",
            FaultKind::Drop => "drop",
            FaultKind::UnknownAccepted => "unknown-accepted",
            FaultKind::UnknownRejected => "unknown-rejected",
            FaultKind::Busy => "busy",
            FaultKind::Duplicate => "duplicate",
            FaultKind::FillBeforeAck => "fill-before-ack",
            FaultKind::StreamLoss => "stream-loss",
            FaultKind::MaxAge => "max-age",
            FaultKind::Clock => "clock",
            FaultKind::Shutdown => "shutdown",
        }
    }

    /// The kind named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The chance per event (‰) under `all` once the kind has been
    /// injected, for the kinds drawn per event; None for the kinds drawn
    /// per connection or in time (their defaults are ranges, see the
    /// module docs).
    pub fn default_per_mille(self) -> Option<u16> {
        self.default_rates().map(|(_, steady)| steady)
    }

    /// The chance per event (‰) under `all` until the kind's first
    /// injection: higher, so that even a short run sees every kind, while
    /// a long one stays usable.
    pub fn first_per_mille(self) -> Option<u16> {
        self.default_rates().map(|(first, _)| first)
    }

    fn default_rates(self) -> Option<(u16, u16)> {
        match self {
            FaultKind::DisconnectAfterAccept => Some((15, 1)),
            FaultKind::UnknownAccepted | FaultKind::UnknownRejected | FaultKind::Busy => {
                Some((15, 4))
            }
            FaultKind::Delay => Some((20, 10)),
            FaultKind::Drop => Some((15, 4)),
            FaultKind::Duplicate => Some((30, 5)),
            FaultKind::FillBeforeAck => Some((100, 20)),
            FaultKind::Disconnect
            | FaultKind::StreamLoss
            | FaultKind::MaxAge
            | FaultKind::Clock
            | FaultKind::Shutdown => None,
        }
    }

    fn index(self) -> u64 {
        FaultKind::ALL.iter().position(|&k| k == self).unwrap_or(0) as u64
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which faults are on, and at what rate. [`Default`] is no faults.
///
/// A kind named without a number uses its default (see the module docs);
/// `kind:N` sets its rate to N per mille of the events the kind is drawn
/// on (0..=1000; 0 keeps it counted but never injected).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSpec {
    /// Enabled kinds; `Some(n)` when a rate was given.
    rates: BTreeMap<FaultKind, Option<u16>>,
}

/// Why a fault spec could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    #[error("unknown fault kind {kind:?} in {spec:?} (known: all, none, {known})", known = known_kinds())]
    UnknownKind { kind: String, spec: String },
    #[error("fault {item:?} in {spec:?}: {value:?} is not a rate (a whole number of per mille, 0..=1000)")]
    BadRate {
        item: String,
        value: String,
        spec: String,
    },
    #[error("fault {item:?} in {spec:?}: {name:?} takes no rate")]
    RateNotAllowed {
        item: String,
        name: String,
        spec: String,
    },
    #[error("empty item in fault list {0:?}")]
    EmptyItem(String),
    #[error("\"none\" cannot be combined with other faults (in {0:?})")]
    NoneCombined(String),
}

fn known_kinds() -> String {
    FaultKind::ALL.map(FaultKind::name).join(", ")
}

impl FaultSpec {
    /// No faults.
    pub fn none() -> FaultSpec {
        FaultSpec::default()
    }

    /// Every kind at its default rate.
    pub fn all() -> FaultSpec {
        FaultSpec {
            rates: FaultKind::ALL.into_iter().map(|k| (k, None)).collect(),
        }
    }

    /// `"all"`, `"none"` (or empty), or comma-separated `kind` or
    /// `kind:per_mille` items (`"drop:20,clock"`); `all` may be followed by
    /// items that override it (`"all,drop:50"`). Spaces around items are
    /// ignored. An unknown kind or a bad number is an error naming it.
    pub fn parse(s: &str) -> Result<FaultSpec, FaultSpecError> {
        let spec = s.trim();
        if spec.is_empty() || spec == "none" {
            return Ok(FaultSpec::none());
        }
        let mut out = FaultSpec::none();
        for item in spec.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(FaultSpecError::EmptyItem(spec.to_owned()));
            }
            let (name, rate) = match item.split_once(':') {
                Some((n, r)) => (n.trim(), Some(r.trim())),
                None => (item, None),
            };
            if name == "all" || name == "none" {
                if rate.is_some() {
                    return Err(FaultSpecError::RateNotAllowed {
                        item: item.to_owned(),
                        name: name.to_owned(),
                        spec: spec.to_owned(),
                    });
                }
                if name == "none" {
                    return Err(FaultSpecError::NoneCombined(spec.to_owned()));
                }
                for k in FaultKind::ALL {
                    out.rates.entry(k).or_insert(None);
                }
                continue;
            }
            let kind = FaultKind::from_name(name).ok_or_else(|| FaultSpecError::UnknownKind {
                kind: name.to_owned(),
                spec: spec.to_owned(),
            })?;
            let rate =
                match rate {
                    None => None,
                    Some(r) => Some(r.parse::<u16>().ok().filter(|&n| n <= 1000).ok_or_else(
                        || FaultSpecError::BadRate {
                            item: item.to_owned(),
                            value: r.to_owned(),
                            spec: spec.to_owned(),
                        },
                    )?),
                };
            out.rates.insert(kind, rate);
        }
        Ok(out)
    }

    /// True when no fault is on.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// The kinds that are on, in [`FaultKind::ALL`] order.
    pub fn kinds(&self) -> Vec<FaultKind> {
        self.rates.keys().copied().collect()
    }

    /// True when `kind` is on.
    pub fn contains(&self, kind: FaultKind) -> bool {
        self.rates.contains_key(&kind)
    }

    /// This spec with `kind` on, at `per_mille` (None: its default).
    pub fn with(mut self, kind: FaultKind, per_mille: Option<u16>) -> FaultSpec {
        self.rates.insert(kind, per_mille.map(|n| n.min(1000)));
        self
    }

    /// The rate given for `kind`, if it is on and one was given.
    pub fn rate(&self, kind: FaultKind) -> Option<u16> {
        self.rates.get(&kind).copied().flatten()
    }

    /// The chance per event (‰) of a per-event kind that is on, before
    /// and after its first injection.
    fn chance(&self, kind: FaultKind) -> Option<(u16, u16)> {
        match self.rates.get(&kind)? {
            Some(n) => Some((*n, *n)),
            None => kind.default_rates(),
        }
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<FaultSpec, FaultSpecError> {
        FaultSpec::parse(s)
    }
}

/// The spec as [`FaultSpec::parse`] reads it: `none`, `all`, or the items.
impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rates.is_empty() {
            return f.write_str("none");
        }
        if self.rates.len() == FaultKind::ALL.len() && self.rates.values().all(Option::is_none) {
            return f.write_str("all");
        }
        let items: Vec<String> = self
            .rates
            .iter()
            .map(|(k, r)| match r {
                Some(n) => format!("{k}:{n}"),
                None => k.name().to_owned(),
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

/// Faults injected so far, by kind name: every enabled kind is present (0
/// until its first injection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts(pub std::collections::BTreeMap<&'static str, u64>);

impl FaultCounts {
    /// How many `kind` faults were injected (0 if it is not on).
    pub fn get(&self, kind: FaultKind) -> u64 {
        self.0.get(kind.name()).copied().unwrap_or(0)
    }

    /// All injections.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|(k, n)| format!("{k}={n}")).collect();
        f.write_str(&items.join(" "))
    }
}

/// What [`Exchange::poll_faults`] found due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultOutput {
    /// Frames to send now, each to its connection, in order.
    pub frames: Frames,
    /// Connections the exchange closes now: the driver closes their
    /// sockets; the exchange has already forgotten them.
    pub close: Vec<ConnId>,
}

/// How long a connection lives without the `max-age` fault (the docs: 24 h).
pub const MAX_CONNECTION_AGE_MS: u64 = 24 * 60 * 60 * 1000;

/// The timed kinds, scheduled from the first activity.
const TIMED: [FaultKind; 3] = [FaultKind::StreamLoss, FaultKind::Clock, FaultKind::Shutdown];

/// A frame as the exchange makes it: answers may overtake held frames,
/// events (user data and connection events) never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    Response,
    /// An `executionReport` (may be duplicated).
    Report,
    /// Any other event.
    Event,
}

pub(crate) type Tagged = Vec<(ConnId, String, Tag)>;

/// One held frame; `due == 0` goes right after the frame before it.
#[derive(Debug)]
struct Held {
    due: u64,
    text: String,
}

/// Per-connection fault state, drawn when the connection opens (or when
/// faults change).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnFaults {
    /// The caller's time when it opened.
    pub opened_ms: u64,
    /// The caller's time when it reaches its maximum age.
    pub max_age_at_ms: u64,
    /// Frames it may still send before `disconnect` closes it.
    pub frames_left: Option<u64>,
    /// [`Faults::epoch`] these were drawn for.
    pub epoch: u64,
}

impl ConnFaults {
    pub fn new(opened_ms: u64) -> ConnFaults {
        ConnFaults {
            opened_ms,
            max_age_at_ms: opened_ms.saturating_add(MAX_CONNECTION_AGE_MS),
            frames_left: None,
            epoch: 0,
        }
    }
}

/// The fault machinery of an [`Exchange`].
#[derive(Debug)]
pub(crate) struct Faults {
    spec: FaultSpec,
    seed: u64,
    rngs: BTreeMap<FaultKind, SplitMix64>,
    counts: BTreeMap<FaultKind, u64>,
    /// Bumped by every `set_faults`, so connections redraw their state.
    pub epoch: u64,
    /// The caller's time of the first activity since faults were set.
    anchor_ms: Option<u64>,
    next_at: BTreeMap<FaultKind, u64>,
    /// The fault applied to the request being handled, and its connection.
    pub current: Option<FaultKind>,
    pub current_conn: Option<ConnId>,
    /// Closes decided during a call, returned by the next poll; with the
    /// time the first was queued.
    closes: Vec<ConnId>,
    closes_since: Option<u64>,
    /// Closes after the shutdown grace: (due, conn).
    scheduled: Vec<(u64, ConnId)>,
    held: BTreeMap<ConnId, VecDeque<Held>>,
    /// Account → until when a new subscription is refused.
    stream_blocked: BTreeMap<String, u64>,
    /// Connections to close with a close frame (not abruptly).
    graceful: BTreeSet<ConnId>,
    /// The clock offset when faults were set: steps pull back towards it.
    clock_base_ms: i64,
}

impl Faults {
    pub fn new(spec: FaultSpec, seed: u64, clock_base_ms: i64) -> Faults {
        let rngs = FaultKind::ALL
            .into_iter()
            .map(|k| {
                let mix = (k.index() + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                (k, SplitMix64::new(seed ^ mix))
            })
            .collect();
        let counts = spec.kinds().into_iter().map(|k| (k, 0)).collect();
        Faults {
            spec,
            seed,
            rngs,
            counts,
            epoch: 1,
            anchor_ms: None,
            next_at: BTreeMap::new(),
            current: None,
            current_conn: None,
            closes: Vec::new(),
            closes_since: None,
            scheduled: Vec::new(),
            held: BTreeMap::new(),
            stream_blocked: BTreeMap::new(),
            graceful: BTreeSet::new(),
            clock_base_ms,
        }
    }

    pub fn spec(&self) -> &FaultSpec {
        &self.spec
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn on(&self, kind: FaultKind) -> bool {
        self.spec.contains(kind)
    }

    fn rng(&mut self, kind: FaultKind) -> &mut SplitMix64 {
        self.rngs.get_mut(&kind).expect("every kind has its stream")
    }

    /// Uniform in `lo..=hi` from `kind`'s stream.
    fn uniform(&mut self, kind: FaultKind, lo: u64, hi: u64) -> u64 {
        lo + self.rng(kind).below(hi.saturating_sub(lo) + 1)
    }

    /// Draws a per-event kind: true when it strikes this time.
    pub fn draw(&mut self, kind: FaultKind) -> bool {
        match self.spec.chance(kind) {
            Some((first, steady)) => {
                let pm = if self.injected(kind) == 0 {
                    first
                } else {
                    steady
                };
                self.rng(kind).chance(pm)
            }
            None => false,
        }
    }

    /// Counts and logs one injection.
    pub fn inject(&mut self, kind: FaultKind, conn: Option<ConnId>, detail: &str) {
        *self.counts.entry(kind).or_insert(0) += 1;
        match conn {
            Some(conn) => tracing::debug!(fault = kind.name(), %conn, detail, "fault injected"),
            None => tracing::debug!(fault = kind.name(), detail, "fault injected"),
        }
    }

    fn injected(&self, kind: FaultKind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// A value around `1000 / per_mille` (½× to 1½×), None for 0.
    fn around(&mut self, kind: FaultKind, per_mille: u16, unit: u64) -> Option<u64> {
        if per_mille == 0 {
            return None;
        }
        let mean = 1000 * unit / per_mille as u64;
        Some(self.uniform(kind, (mean / 2).max(1), (mean * 3 / 2).max(1)))
    }

    /// The frame count after which `disconnect` closes a new connection.
    fn draw_frames(&mut self) -> Option<u64> {
        let k = FaultKind::Disconnect;
        if !self.on(k) {
            return None;
        }
        match self.spec.rate(k) {
            Some(pm) => self.around(k, pm, 1),
            None if self.injected(k) == 0 => Some(self.uniform(k, 10, 80)),
            None => Some(self.uniform(k, 100, 600)),
        }
    }

    /// A new connection's maximum age (ms) under `max-age`.
    fn draw_age(&mut self) -> Option<u64> {
        let k = FaultKind::MaxAge;
        if !self.on(k) {
            return None;
        }
        match self.spec.rate(k) {
            Some(pm) => Some(self.around(k, pm, 1000).unwrap_or(MAX_CONNECTION_AGE_MS)),
            None if self.injected(k) == 0 => Some(self.uniform(k, 2_000, 6_000)),
            None => Some(self.uniform(k, 30_000, 120_000)),
        }
    }

    /// The time (ms) to the next timed fault of `kind`.
    fn draw_interval(&mut self, kind: FaultKind, first: bool) -> Option<u64> {
        if let Some(pm) = self.spec.rate(kind) {
            return self.around(kind, pm, 1000);
        }
        if first {
            return Some(self.uniform(kind, 1_000, 8_000));
        }
        let (lo, hi) = match kind {
            FaultKind::Clock => (15_000, 45_000),
            FaultKind::Shutdown => (40_000, 100_000),
            _ => (20_000, 60_000),
        };
        Some(self.uniform(kind, lo, hi))
    }

    /// Draws the fault state of a connection (opened or not) at `now_ms`.
    pub fn init_conn(&mut self, c: &mut ConnFaults, now_ms: u64) {
        c.frames_left = self.draw_frames();
        c.max_age_at_ms = match self.draw_age() {
            Some(age) => now_ms.saturating_add(age),
            None => c.opened_ms.saturating_add(MAX_CONNECTION_AGE_MS),
        };
        c.epoch = self.epoch;
    }

    /// Starts the timed faults at the first activity.
    pub fn anchor(&mut self, now_ms: u64) {
        if self.anchor_ms.is_some() || self.spec.is_empty() {
            return;
        }
        self.anchor_ms = Some(now_ms);
        for k in TIMED {
            if self.on(k) {
                if let Some(d) = self.draw_interval(k, true) {
                    self.next_at.insert(k, now_ms.saturating_add(d));
                }
            }
        }
    }

    /// The refusal for `order.place` decided before the order reaches the
    /// engine (`busy`, `unknown-rejected`), if any.
    pub fn before_place(&mut self) -> Result<(), ApiError> {
        if self.current.is_some() || self.spec.is_empty() {
            return Ok(());
        }
        let conn = self.current_conn;
        if self.draw(FaultKind::Busy) {
            self.current = Some(FaultKind::Busy);
            self.inject(FaultKind::Busy, conn, "order.place refused, not placed");
            return Err(busy());
        }
        if self.draw(FaultKind::UnknownRejected) {
            self.current = Some(FaultKind::UnknownRejected);
            let e = self.unknown(FaultKind::UnknownRejected);
            let detail = format!("not placed, answered {} / {}", e.http, e.code);
            self.inject(FaultKind::UnknownRejected, conn, &detail);
            return Err(e);
        }
        Ok(())
    }

    /// The answer that replaces a placed order's (`unknown-accepted`).
    pub fn after_place(&mut self) -> Option<ApiError> {
        if self.current.is_some() || !self.draw(FaultKind::UnknownAccepted) {
            return None;
        }
        self.current = Some(FaultKind::UnknownAccepted);
        let e = self.unknown(FaultKind::UnknownAccepted);
        let detail = format!("placed, answered {} / {}", e.http, e.code);
        self.inject(FaultKind::UnknownAccepted, self.current_conn, &detail);
        Some(e)
    }

    /// A new subscription of `account` refused during a stream loss.
    pub fn subscribe_refused(&mut self, account: &str, now_ms: u64) -> Option<ApiError> {
        let until = *self.stream_blocked.get(account)?;
        if now_ms >= until {
            self.stream_blocked.remove(account);
            return None;
        }
        self.current = Some(FaultKind::StreamLoss);
        tracing::debug!(
            fault = FaultKind::StreamLoss.name(),
            account,
            until,
            "subscription refused during a stream loss"
        );
        Some(busy())
    }

    /// One of the documented answers of unknown outcome.
    fn unknown(&mut self, kind: FaultKind) -> ApiError {
        const UNEXPECTED: &str =
            "An unexpected response was received from the message bus. Execution status unknown.";
        const TIMEOUT: &str = "Timeout waiting for response from backend server. Send status \
                               unknown; execution status unknown.";
        let (http, code, msg) = match self.rng(kind).below(3) {
            0 => (500, -1006, UNEXPECTED),
            1 => (503, -1006, UNEXPECTED),
            _ => (503, -1007, TIMEOUT),
        };
        ApiError {
            http,
            code,
            msg: msg.into(),
            limit: None,
        }
    }

    /// Queues a close the next poll returns.
    pub fn queue_close(&mut self, conn: ConnId, graceful: bool, now_ms: u64) {
        self.held.remove(&conn);
        if graceful {
            self.graceful.insert(conn);
        }
        self.closes.push(conn);
        self.closes_since.get_or_insert(now_ms);
    }

    /// Forgets what is held for a closed connection.
    pub fn forget(&mut self, conn: ConnId) {
        self.held.remove(&conn);
    }

    /// True (once) when `conn` was closed with a close frame in mind.
    pub fn take_graceful(&mut self, conn: ConnId) -> bool {
        self.graceful.remove(&conn)
    }

    /// Holds every frame of `out` until `due`, in order.
    fn hold(&mut self, out: Tagged, due: u64) {
        for (conn, text, _) in out {
            self.held
                .entry(conn)
                .or_default()
                .push_back(Held { due, text });
        }
    }

    /// The counts, every enabled kind present.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts(
            self.spec
                .kinds()
                .into_iter()
                .map(|k| (k.name(), self.injected(k)))
                .collect(),
        )
    }
}

/// `busy` and the refused subscription: -1008 SERVER_BUSY.
fn busy() -> ApiError {
    ApiError {
        http: 503,
        code: -1008,
        msg: "Server is currently overloaded with other requests. Please try again in a few \
              minutes."
            .into(),
        limit: None,
    }
}

/// What the request a frame carried led to, for the frame-level faults.
pub(crate) struct Outcome {
    /// An `order.place` that created an order.
    pub placed: bool,
    /// ... and the order traded at once.
    pub traded: bool,
}

impl Exchange {
    /// Replaces the faults (and their seed): counts restart at 0, timed
    /// faults restart from the next activity, and every open connection
    /// draws its fault state again at its next request or poll.
    pub fn set_faults(&mut self, spec: FaultSpec, seed: u64) {
        if !spec.is_empty() {
            tracing::debug!(faults = %spec, seed, "faults set");
        }
        let epoch = self.faults.epoch + 1;
        let mut faults = Faults::new(spec, seed, self.state.clock.offset_ms);
        faults.epoch = epoch;
        // Closes already decided still reach the driver.
        faults.closes = std::mem::take(&mut self.faults.closes);
        faults.closes_since = self.faults.closes_since;
        faults.graceful = std::mem::take(&mut self.faults.graceful);
        faults.scheduled = std::mem::take(&mut self.faults.scheduled);
        faults.held = std::mem::take(&mut self.faults.held);
        self.faults = faults;
    }

    /// The faults in force.
    pub fn faults(&self) -> &FaultSpec {
        self.faults.spec()
    }

    /// The seed of the faults in force.
    pub fn fault_seed(&self) -> u64 {
        self.faults.seed()
    }

    /// How many faults of each enabled kind were injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.faults.counts()
    }

    /// When [`Exchange::poll_faults`] next has something to do (the
    /// caller's clock, ms): a time at or before now when a close or a frame
    /// is waiting. None when nothing is scheduled.
    pub fn next_fault_ms(&self) -> Option<u64> {
        let f = &self.faults;
        let mut next = f.closes_since;
        let mut at = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        for &(due, _) in &f.scheduled {
            at(due);
        }
        for q in f.held.values() {
            if let Some(h) = q.front() {
                at(h.due);
            }
        }
        for &t in f.next_at.values() {
            at(t);
        }
        for c in self.conns.values() {
            at(c.faults.max_age_at_ms);
        }
        next
    }

    /// Runs what is due at `now_ms`: held frames whose time has come,
    /// connections past their maximum age, closes after the shutdown grace
    /// or decided during earlier calls, and the timed faults (`clock`,
    /// `shutdown`, `stream-loss`).
    pub fn poll_faults(&mut self, now_ms: u64) -> FaultOutput {
        self.init_conn_faults(now_ms);
        let mut close = std::mem::take(&mut self.faults.closes);
        self.faults.closes_since = None;

        let mut frames = self.release(now_ms);

        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.faults.scheduled)
            .into_iter()
            .partition(|&(t, _)| t <= now_ms);
        self.faults.scheduled = later;
        for (_, conn) in due {
            if self.conns.contains_key(&conn) {
                tracing::debug!(%conn, "closed after the serverShutdown grace");
                self.forget_conn(conn);
                self.faults.graceful.insert(conn);
                close.push(conn);
            }
        }

        let aged: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.faults.max_age_at_ms <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        for conn in aged {
            self.close_aged(conn, now_ms);
            self.faults.graceful.insert(conn);
            close.push(conn);
        }

        for kind in TIMED {
            let Some(&at) = self.faults.next_at.get(&kind) else {
                continue;
            };
            if at > now_ms {
                continue;
            }
            let fired = match kind {
                FaultKind::Clock => self.clock_fault(now_ms),
                FaultKind::Shutdown => self.shutdown_fault(now_ms),
                _ => self.stream_loss_fault(now_ms),
            };
            let next = match fired {
                Some(out) => {
                    frames.extend(self.route(out));
                    self.faults.draw_interval(kind, false)
                }
                // Nothing to act on yet: try again in a second.
                None => Some(1_000),
            };
            match next {
                Some(d) => self.faults.next_at.insert(kind, now_ms.saturating_add(d)),
                None => self.faults.next_at.remove(&kind),
            };
        }
        close.dedup();
        FaultOutput { frames, close }
    }

    /// True (once) when the driver should close `conn` with a close frame
    /// (maximum age, after `serverShutdown`) rather than abruptly.
    pub(crate) fn take_graceful_close(&mut self, conn: ConnId) -> bool {
        self.faults.take_graceful(conn)
    }

    /// Draws the fault state of connections that have none for the faults
    /// in force.
    pub(crate) fn init_conn_faults(&mut self, now_ms: u64) {
        let epoch = self.faults.epoch;
        for c in self.conns.values_mut() {
            if c.faults.epoch != epoch {
                self.faults.init_conn(&mut c.faults, now_ms);
            }
        }
    }

    /// The activity that starts the timed faults.
    pub(crate) fn fault_activity(&mut self, now_ms: u64) {
        self.faults.anchor(now_ms);
        self.init_conn_faults(now_ms);
    }

    /// Forgets `conn` (as `ws_disconnect` does) and what is held for it.
    fn forget_conn(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_some() {
            let subscriptions = self.subs.remove(conn, None);
            tracing::debug!(%conn, subscriptions, "WebSocket API connection closed by the venue");
        }
        self.faults.forget(conn);
    }

    /// Closes `conn` now; the next poll returns it.
    pub(crate) fn fault_close(&mut self, conn: ConnId, graceful: bool, now_ms: u64) {
        self.forget_conn(conn);
        self.faults.queue_close(conn, graceful, now_ms);
    }

    /// A connection past its maximum age: forgotten, counted when the
    /// `max-age` fault drew its age.
    fn close_aged(&mut self, conn: ConnId, now_ms: u64) {
        let opened = self.conns.get(&conn).map_or(now_ms, |c| c.faults.opened_ms);
        let age_ms = now_ms.saturating_sub(opened);
        if self.faults.on(FaultKind::MaxAge) && age_ms < MAX_CONNECTION_AGE_MS {
            self.faults
                .inject(FaultKind::MaxAge, Some(conn), &format!("age {age_ms} ms"));
        } else {
            tracing::debug!(%conn, age_ms, "connection reached its maximum age");
        }
        self.forget_conn(conn);
    }

    /// Checks a connection's age when a frame arrives: past it, the
    /// connection is closed and the frame never reached the venue.
    pub(crate) fn expired(&mut self, conn: ConnId, now_ms: u64) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        if c.faults.max_age_at_ms > now_ms {
            return false;
        }
        self.close_aged(conn, now_ms);
        self.faults.queue_close(conn, true, now_ms);
        true
    }

    /// `disconnect`: counts a frame received on `conn`. Returns None while
    /// the connection lives on, or whether the frame that ends it is
    /// executed.
    pub(crate) fn count_frame(&mut self, conn: ConnId) -> Option<bool> {
        let c = self.conns.get_mut(&conn)?;
        let left = c.faults.frames_left.as_mut()?;
        if *left > 1 {
            *left -= 1;
            return None;
        }
        Some(self.faults.rng(FaultKind::Disconnect).chance(500))
    }

    /// The frame-level faults of one answered request: `disconnect` (when
    /// `ending` says the frame ended the connection), then at most one of
    /// `disconnect-after-accept`, `fill-before-ack`, `drop`, `delay`.
    /// Returns the frames to send now.
    pub(crate) fn answer_faults(
        &mut self,
        conn: ConnId,
        mut out: Tagged,
        outcome: Outcome,
        ending: bool,
        now_ms: u64,
    ) -> Frames {
        let f = &mut self.faults;
        if ending {
            f.current = Some(FaultKind::Disconnect);
            f.inject(
                FaultKind::Disconnect,
                Some(conn),
                "frame executed, answer lost",
            );
            out.retain(|(c, _, _)| *c != conn);
            self.fault_close(conn, false, now_ms);
            return self.route(out);
        }
        if f.current.is_some() || f.spec.is_empty() {
            return self.route(out);
        }
        if outcome.placed && f.draw(FaultKind::DisconnectAfterAccept) {
            f.current = Some(FaultKind::DisconnectAfterAccept);
            f.inject(
                FaultKind::DisconnectAfterAccept,
                Some(conn),
                "order placed, closed before its answer",
            );
            out.retain(|(c, _, _)| *c != conn);
            self.fault_close(conn, false, now_ms);
            return self.route(out);
        }
        let reports_to_conn = out
            .iter()
            .any(|(c, _, tag)| *c == conn && *tag == Tag::Report);
        let traded_to_conn = outcome.traded && reports_to_conn;
        if outcome.placed && traded_to_conn && f.draw(FaultKind::FillBeforeAck) {
            f.current = Some(FaultKind::FillBeforeAck);
            f.inject(
                FaultKind::FillBeforeAck,
                Some(conn),
                "executionReports before the answer",
            );
            let answer = out.remove(0);
            out.push(answer);
            return self.route(out);
        }
        if f.draw(FaultKind::Drop) {
            f.current = Some(FaultKind::Drop);
            f.inject(FaultKind::Drop, Some(conn), "answer never sent");
            out.remove(0);
            return self.route(out);
        }
        if f.draw(FaultKind::Delay) {
            let ms = f.uniform(FaultKind::Delay, 20, 2_000);
            f.current = Some(FaultKind::Delay);
            f.inject(
                FaultKind::Delay,
                Some(conn),
                &format!("answer held {ms} ms"),
            );
            let out = self.duplicates(out);
            self.faults.hold(out, now_ms + ms);
            return Vec::new();
        }
        self.route(out)
    }

    /// `duplicate`: each `executionReport` may be sent twice in a row.
    fn duplicates(&mut self, out: Tagged) -> Tagged {
        if !self.faults.on(FaultKind::Duplicate) {
            return out;
        }
        let mut doubled = Vec::with_capacity(out.len());
        for (conn, text, tag) in out {
            if tag == Tag::Report && self.faults.draw(FaultKind::Duplicate) {
                self.faults.inject(
                    FaultKind::Duplicate,
                    Some(conn),
                    "executionReport sent twice",
                );
                doubled.push((conn, text.clone(), tag));
            }
            doubled.push((conn, text, tag));
        }
        doubled
    }

    /// The frames to send now: duplicates added, frames to closed
    /// connections dropped, and events to a connection with held frames
    /// queued behind them (answers may overtake).
    pub(crate) fn route(&mut self, out: Tagged) -> Frames {
        let out = self.duplicates(out);
        let mut now = Vec::with_capacity(out.len());
        for (conn, text, tag) in out {
            if !self.conns.contains_key(&conn) {
                continue;
            }
            match self.faults.held.get_mut(&conn) {
                Some(q) if !q.is_empty() && tag != Tag::Response => {
                    q.push_back(Held { due: 0, text });
                }
                _ => now.push((conn, text)),
            }
        }
        now
    }

    /// Held frames whose time has come, each connection's in order.
    fn release(&mut self, now_ms: u64) -> Frames {
        let mut out = Vec::new();
        for (&conn, q) in self.faults.held.iter_mut() {
            while q.front().is_some_and(|h| h.due <= now_ms) {
                if let Some(h) = q.pop_front() {
                    out.push((conn, h.text));
                }
            }
        }
        self.faults.held.retain(|_, q| !q.is_empty());
        out
    }

    /// `clock`: a step of the offset and/or a new drift.
    fn clock_fault(&mut self, now_ms: u64) -> Option<Tagged> {
        let k = FaultKind::Clock;
        let what = self.faults.uniform(k, 0, 3);
        let mut detail = Vec::new();
        if what <= 1 || what == 3 {
            let size = self.faults.uniform(k, 200, 1_500) as i64;
            let shown = self.state.clock.server_time(now_ms) as i64 - now_ms as i64;
            let away = shown - self.faults.clock_base_ms;
            let sign = if away > 2_000 {
                -1
            } else if away < -2_000 {
                1
            } else if self.faults.uniform(k, 0, 1) == 0 {
                -1
            } else {
                1
            };
            let step = sign * size;
            // Continue from the time shown, then step.
            let drift = self.state.clock.drift_ppm;
            self.set_clock_drift_ppm(drift, now_ms);
            self.state.clock.offset_ms += step;
            detail.push(format!("step {step:+} ms"));
        }
        if what >= 2 {
            let ppm = self.faults.uniform(k, 0, 400) as i64 - 200;
            self.set_clock_drift_ppm(ppm, now_ms);
            detail.push(format!("drift {ppm:+} ppm"));
        }
        self.faults.inject(k, None, &detail.join(", "));
        Some(Vec::new())
    }

    /// `shutdown`: `serverShutdown` on one connection, closed after the
    /// grace.
    fn shutdown_fault(&mut self, now_ms: u64) -> Option<Tagged> {
        let n = self.conns.len() as u64;
        if n == 0 {
            return None;
        }
        let pick = self.faults.uniform(FaultKind::Shutdown, 0, n - 1) as usize;
        let conn = *self.conns.keys().nth(pick)?;
        let server_now = self.state.server_time(now_ms);
        let frame = json::to_string(&json::ServerShutdown::new(server_now));
        let grace = u64::try_from(self.shutdown_grace().as_millis()).unwrap_or(u64::MAX);
        self.faults
            .scheduled
            .push((now_ms.saturating_add(grace), conn));
        self.faults.inject(
            FaultKind::Shutdown,
            Some(conn),
            &format!("serverShutdown, closing in {grace} ms"),
        );
        Some(vec![(conn, frame, Tag::Event)])
    }

    /// `stream-loss`: one subscription terminated and its account's new
    /// subscriptions refused for a while.
    fn stream_loss_fault(&mut self, now_ms: u64) -> Option<Tagged> {
        let k = FaultKind::StreamLoss;
        let n = self.subs.len() as u64;
        if n == 0 {
            return None;
        }
        let pick = self.faults.uniform(k, 0, n - 1) as usize;
        let (conn, id, account) = self.subs.nth(pick)?;
        self.subs.remove(conn, Some(id));
        let ms = self.faults.uniform(k, 1_000, 5_000);
        self.faults
            .stream_blocked
            .insert(account.clone(), now_ms.saturating_add(ms));
        let server_now = self.state.server_time(now_ms);
        let frame = json::to_string(&json::SubscriptionEvent {
            subscription_id: id,
            event: &json::EventStreamTerminated::new(server_now),
        });
        self.faults.inject(
            k,
            Some(conn),
            &format!("subscription {id} terminated, new ones refused for {ms} ms"),
        );
        Some(vec![(conn, frame, Tag::Event)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_display() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::from_name(k.name()), Some(k));
        }
        assert_eq!(FaultSpec::parse("none").unwrap(), FaultSpec::none());
        assert_eq!(FaultSpec::parse("").unwrap(), FaultSpec::none());
        assert_eq!(FaultSpec::parse("all").unwrap(), FaultSpec::all());
        assert_eq!(FaultSpec::all().to_string(), "all");
        let s: FaultSpec = "drop:20, clock".parse().unwrap();
        assert_eq!(s.kinds(), [FaultKind::Drop, FaultKind::Clock]);
        assert_eq!(s.rate(FaultKind::Drop), Some(20));
        assert_eq!(s.rate(FaultKind::Clock), None);
        assert_eq!(s.to_string(), "drop:20,clock");
        assert_eq!(FaultSpec::parse(&s.to_string()).unwrap(), s);
        let s = FaultSpec::parse("all,drop:50").unwrap();
        assert_eq!(s.kinds().len(), 13);
        assert_eq!(s.chance(FaultKind::Drop), Some((50, 50)));
        assert_eq!(s.chance(FaultKind::Delay), Some((20, 10)));
    }
}
