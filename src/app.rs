//! The running sidecar: wires the front end, the order desk, the venue
//! sessions and the rings together for the configured layout. `main` has
//! already taken the instance lock, bumped the epoch and prepared the
//! socket path; secrets are read here (`VenueConfig::credentials`), when
//! they are needed.
//!
//! Rings are created at start-up: one input ring from each front end to
//! the desk and one notice ring back; one command ring per (venue session,
//! strategy, lane) from the desk, so sessions can round-robin between
//! strategies inside a lane; one report ring from each session back to the
//! desk. The desk is the only producer of command rings, and each front
//! end the only producer of its input ring, so every ring stays SPSC.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, ConfigError, Layout, OnShutdown};
use crate::doorbell::{Doorbell, Ringer, WaitStrategy};
use crate::frontend::{self, Driver, FrontEnd};
use crate::ids::{StrategyId, VenueId};
use crate::journal::restore::{restore, Restored};
use crate::journal::writer::{JournalWriter, SeqSnapshotRef, SharedJournal};
use crate::journal::{Journal, JournalConfig};
use crate::model::{VenueState, VenueStatus};
use crate::ring::{self, Consumer, Producer};
use crate::session::{CommandInputs, EventOutput, ReconnectPolicy, Session, SessionConfig};
use crate::state::StateDir;
use crate::venue::registry::{Registry, VenueSetup};
use crate::venue::{Command, ConnRole, Lane, Report, VenueProtocol};
use ordergate_core::desk::{self, CommandSink, Desk, DeskInput, Notice};

/// How long a graceful stop waits for the venue's answers (and, under
/// `on_shutdown = "cancel"`, for the cancels) before it stops anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    FrontEnd(#[from] frontend::FrontEndConfigError),
    #[error(transparent)]
    Desk(#[from] desk::DeskConfigError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("the state directory has no epoch: bump it before starting")]
    NoEpoch,
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("socket {path}: {source}")]
    Bind {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Restore(#[from] crate::journal::restore::RestoreError),
    #[error("journal write failed: {0}")]
    JournalFailed(String),
    #[error("a {0} thread panicked")]
    Panicked(&'static str),
}

/// Takes the instance lock, starts a new epoch (so client order ids of
/// earlier runs can never be reused) and clears a stale socket file.
pub fn open_state(config: &Config) -> Result<StateDir, AppError> {
    let mut state = StateDir::open(&config.state_dir)?;
    state.bump_epoch()?;
    state.prepare_socket(&config.socket)?;
    Ok(state)
}

/// Runs the sidecar until SIGINT or SIGTERM. `state` is held (and with it
/// the instance lock) for the whole run.
pub fn run(config: Config, state: StateDir) -> Result<(), AppError> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The handlers exist before the socket does: a strategy that can
    // connect can also be stopped with SIGTERM or SIGINT.
    let (mut term, mut int) = {
        let _rt = rt.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    let app = start(config, state)?;
    let mut stop = app.stop_flag();
    // True for a signal, false when every role has stopped.
    let mut signalled = || {
        rt.block_on(async {
            tokio::select! {
                _ = int.recv() => true,
                _ = term.recv() => true,
                _ = stopped(&mut stop) => false,
            }
        })
    };
    if signalled() {
        tracing::info!("stopping: no new orders; draining what was sent (a second SIGTERM or SIGINT stops at once)");
        app.shutdown.begin_drain();
        if signalled() {
            tracing::warn!("second signal: stopping without finishing the drain; open orders stay as they are and the next start adopts them");
        }
    }
    app.stop()
}

/// A sidecar running on background threads (the CLI's `run`, the demo's
/// `--in-process` mode and tests).
pub struct App {
    shutdown: Arc<Shutdown>,
    threads: Vec<(&'static str, JoinHandle<Result<(), AppError>>)>,
    _state: StateDir,
}

/// Tells every role to stop: the flag for threads that poll, the watch
/// for async tasks (a watch, unlike a notify, is not missed by a task that
/// was busy when it fired).
struct Shutdown {
    flag: AtomicBool,
    tx: watch::Sender<bool>,
    /// The graceful stop's first phase: the gateway drains (and applies
    /// `on_shutdown`), then triggers the rest.
    draining: AtomicBool,
    drain_tx: watch::Sender<bool>,
}

impl Shutdown {
    fn new() -> Self {
        Shutdown {
            flag: AtomicBool::new(false),
            tx: watch::Sender::new(false),
            draining: AtomicBool::new(false),
            drain_tx: watch::Sender::new(false),
        }
    }

    fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.drain_tx.send_replace(true);
    }

    fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.tx.send_replace(true);
    }

    fn watch(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// Resolves once shutdown was triggered (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl App {
    /// Stops every role and waits for its thread.
    pub fn stop(self) -> Result<(), AppError> {
        self.shutdown.trigger();
        self.join()
    }

    /// The SIGTERM stop: no new orders, the answers to what was sent
    /// awaited, open orders left or cancelled (`[gateway] on_shutdown`),
    /// the journal synced; then every role stops.
    pub fn drain_and_stop(self) -> Result<(), AppError> {
        self.shutdown.begin_drain();
        self.join()
    }

    fn join(mut self) -> Result<(), AppError> {
        let mut result = Ok(());
        for (name, t) in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(AppError::Panicked(name)),
            }
        }
        result
    }

    /// Fires when a role stops on its own (a fatal error).
    fn stop_flag(&self) -> watch::Receiver<bool> {
        self.shutdown.watch()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The desk's command rings: per venue session, per strategy, one
/// producer per lane.
struct RingSink {
    sessions: BTreeMap<VenueId, SessionRings>,
    /// Commands refused since the desk last looked, to be journaled.
    refused: Vec<Command>,
}

struct SessionRings {
    strategies: BTreeMap<StrategyId, [Producer<Command>; 3]>,
    ringer: Ringer,
}

impl CommandSink for RingSink {
    fn push(
        &mut self,
        venue: VenueId,
        strategy: StrategyId,
        lane: Lane,
        cmd: Command,
    ) -> Result<(), Command> {
        let pushed = match self
            .sessions
            .get_mut(&venue)
            .and_then(|s| Some((s.strategies.get_mut(&strategy)?, &s.ringer)))
        {
            Some((lanes, ringer)) => lanes[lane as usize].push(cmd).map(|()| ringer.ring()),
            None => Err(cmd),
        };
        if let Err(cmd) = pushed {
            self.refused.push(cmd);
        }
        pushed
    }
}

/// A front end's two rings as the desk holds them: requests in, notices
/// out. A full notice ring never drops a notice (a lost fill is a lost
/// trade): the overflow waits here and is retried.
struct FrontEndLink {
    input: Consumer<DeskInput>,
    notices: Producer<Notice>,
    overflow: VecDeque<Notice>,
    strategies: Vec<StrategyId>,
    ringer: Ringer,
}

impl FrontEndLink {
    fn offer(&mut self, n: Notice) {
        self.overflow.push_back(n);
    }

    fn flush(&mut self) {
        let mut pushed = false;
        while let Some(n) = self.overflow.pop_front() {
            match self.notices.push(n) {
                Ok(()) => pushed = true,
                Err(n) => {
                    self.overflow.push_front(n);
                    break;
                }
            }
        }
        if pushed {
            self.ringer.ring();
        }
    }
}

/// The desk and what feeds it: front-end input rings and session report
/// rings; its doorbell is rung by both.
struct DeskRole {
    desk: Desk,
    sink: RingSink,
    reports: Vec<Consumer<Report>>,
    links: Vec<FrontEndLink>,
    bell: Doorbell,
    notices: Vec<Notice>,
    /// The sidecar's one monotonic clock, shared with the sessions.
    clock: crate::clock::MonoClock,
    /// Every input is journaled before the desk acts on it.
    journal: SharedJournal,
    /// Whether each `cancel_on_disconnect` strategy was connected, as
    /// last told to the desk.
    presence: BTreeMap<StrategyId, bool>,
}

impl DeskRole {
    fn has_pending(&self) -> bool {
        self.reports.iter().any(|r| !r.is_empty())
            || self
                .links
                .iter()
                .any(|l| !l.input.is_empty() || !l.overflow.is_empty())
    }

    /// One desk input: `record` journals it, then `act` applies it, then
    /// the commands the rings had no room for are journaled too (the
    /// desk answered them `QueueFull`), so a replay ends the same way.
    fn journaled(
        &mut self,
        record: impl FnOnce(&mut JournalWriter),
        act: impl FnOnce(&mut Desk, &mut RingSink, &mut Vec<Notice>),
    ) {
        let mut journal = JournalWriter::lock(&self.journal);
        record(&mut journal);
        act(&mut self.desk, &mut self.sink, &mut self.notices);
        for cmd in self.sink.refused.drain(..) {
            journal.refused(&cmd);
        }
    }

    /// Tells the desk which `cancel_on_disconnect` strategies came or
    /// went (journaled like any input), and runs its timers.
    fn presence_and_timers(&mut self, connected: &dyn Fn(StrategyId) -> bool) {
        let now_ns = self.clock.now_ns();
        while let Some((&strategy, was)) = self
            .presence
            .iter_mut()
            .find(|(s, was)| connected(**s) != **was)
        {
            *was = !*was;
            let input = DeskInput {
                strategy,
                request: desk::Request::Presence { connected: *was },
            };
            self.journaled(
                |j| j.command(now_ns, &input),
                |d, sink, out| d.on_request(input, now_ns, sink, out),
            );
        }
        if self.desk.next_timer().is_some_and(|at| at <= now_ns) {
            self.journaled(
                |j| j.timer(now_ns),
                |d, sink, out| d.on_timer(now_ns, sink, out),
            );
        }
    }

    /// The graceful stop begins (journaled, so a replay refuses the same
    /// orders); returns the number of cancels it sent.
    fn begin_shutdown(&mut self, cancel: bool) -> u64 {
        let before = self.desk.counters().cancels;
        self.journaled(
            |j| j.shutdown(cancel),
            |d, sink, out| d.begin_shutdown(cancel, sink, out),
        );
        self.desk.counters().cancels - before
    }

    /// Drains every input; true if anything was there.
    fn step(&mut self) -> bool {
        let _ = self.bell.drain();
        let mut busy = !self.notices.is_empty();
        for l in 0..self.links.len() {
            while let Some(input) = self.links[l].input.pop() {
                busy = true;
                let now_ns = self.clock.now_ns();
                self.journaled(
                    |j| j.command(now_ns, &input),
                    |d, sink, out| d.on_request(input, now_ns, sink, out),
                );
            }
        }
        for r in 0..self.reports.len() {
            while let Some(report) = self.reports[r].pop() {
                busy = true;
                JournalWriter::lock(&self.journal).report(&report);
                self.desk.on_report(&report, &mut self.notices);
            }
        }
        for n in self.notices.drain(..) {
            route(&mut self.links, n);
        }
        for l in &mut self.links {
            busy |= !l.overflow.is_empty();
            l.flush();
        }
        busy
    }
}

/// Order notices go to the front end that serves the strategy; venue
/// notices to every front end.
fn route(links: &mut [FrontEndLink], n: Notice) {
    match &n {
        Notice::Order { strategy, .. } => {
            if let Some(l) = links.iter_mut().find(|l| l.strategies.contains(strategy)) {
                l.offer(n);
            }
        }
        Notice::Venue(_) => {
            for l in links.iter_mut() {
                l.offer(n.clone());
            }
        }
    }
}

/// The Unix-socket front end with its rings' other ends.
struct FrontEndRole {
    driver: Driver,
    input: Producer<DeskInput>,
    desk_ringer: Ringer,
    notices: Consumer<Notice>,
    bell: Doorbell,
}

impl FrontEndRole {
    /// One poll of the sockets (up to `timeout`), then whatever the desk
    /// said; returns the number of readiness events.
    fn step(&mut self, timeout: Duration) -> Result<usize, AppError> {
        let input = &mut self.input;
        let ringer = &self.desk_ringer;
        let n = self.driver.run_once(Some(timeout), &mut |req| {
            let ok = input.push(req).is_ok();
            if ok {
                ringer.ring();
            }
            ok
        })?;
        self.deliver();
        Ok(n)
    }

    fn deliver(&mut self) {
        let _ = self.bell.drain();
        let mut any = false;
        while let Some(n) = self.notices.pop() {
            self.driver.deliver(n);
            any = true;
        }
        if any {
            self.driver.flush();
        }
    }
}

/// The front end and the desk on one thread (every layout today; a second
/// front end could run on its own thread against the same desk).
struct GatewayRole {
    front: FrontEndRole,
    desk: DeskRole,
    next_counters: std::time::Instant,
    on_shutdown: OnShutdown,
    /// A graceful stop in progress: until when it may wait.
    drain_until: Option<std::time::Instant>,
    /// Cancels the graceful stop sent (`on_shutdown = "cancel"`).
    drain_cancels: u64,
}

impl GatewayRole {
    /// The periodic counters line, so an operator sees what the desk and
    /// the front end did without turning on debug logs.
    fn log_counters(&mut self) {
        let now = std::time::Instant::now();
        if now < self.next_counters {
            return;
        }
        self.next_counters = now + crate::logging::COUNTERS_EVERY;
        let d = self.desk.desk.counters();
        let l = self.desk.desk.lifecycle().counters();
        let f = self.front.driver.core().counters();
        tracing::info!(
            target: "ordergate::counters",
            orders = d.orders,
            rejected = d.rejected,
            duplicates = d.duplicates,
            cancels = d.cancels,
            cancel_rejected = d.cancel_rejected,
            queue_full = d.queue_full,
            tracked = self.desk.desk.lifecycle().len(),
            invalid_transitions = l.invalid,
            unknown_order_events = l.unknown_order,
            ignored_events = l.ignored,
            overfills = l.overfill,
            connections = f.connections,
            open_connections = self.front.driver.core().connections(),
            protocol_errors = f.protocol_errors,
            hello_timeouts = f.hello_timeouts,
            slow_consumers = f.slow_consumers,
            "counters"
        );
    }

    /// Stops the gateway if the journal could not be written: an order
    /// that cannot be journaled must not be sent.
    fn check_journal(&self) -> Result<(), AppError> {
        match JournalWriter::lock(&self.desk.journal).failed() {
            Some(e) => Err(AppError::JournalFailed(e.to_owned())),
            None => Ok(()),
        }
    }

    /// The graceful stop, one look per loop: begins it when asked, and says
    /// when it is done (what was sent is answered, and under `cancel` no
    /// order is open) or out of time.
    fn drained(&mut self, shutdown: &Shutdown) -> bool {
        if !shutdown.draining.load(Ordering::Relaxed) {
            return false;
        }
        let cancel = self.on_shutdown == OnShutdown::Cancel;
        let now = std::time::Instant::now();
        let Some(until) = self.drain_until else {
            tracing::info!(
                policy = self.on_shutdown.as_str(),
                open = self.desk.desk.lifecycle().all_open().count(),
                "shutdown: refusing new orders; waiting for the venue's answers"
            );
            self.drain_cancels = self.desk.begin_shutdown(cancel);
            self.drain_until = Some(now + DRAIN_TIMEOUT);
            return false;
        };
        let settled = self.desk.desk.settled(cancel);
        if !settled && now < until {
            return false;
        }
        let open = self.desk.desk.lifecycle().all_open().count();
        if cancel {
            tracing::info!(
                policy = "cancel",
                cancels_sent = self.drain_cancels,
                still_open = open,
                timed_out = !settled,
                "shutdown: open orders cancelled; stopping"
            );
        } else {
            tracing::info!(
                policy = "leave",
                left_resting = open,
                timed_out = !settled,
                "shutdown: open orders left resting at the venue (the next start adopts them); stopping"
            );
        }
        true
    }

    /// Nothing to do for now: fsync what the group commit left pending.
    fn idle(&self) -> Result<(), AppError> {
        JournalWriter::lock(&self.desk.journal).sync();
        self.check_journal()
    }

    /// A full journal segment: the next starts with a snapshot of every
    /// order and sequence, so a restart replays only from there.
    fn snapshot_if_due(&self) {
        let mut journal = JournalWriter::lock(&self.desk.journal);
        if !journal.wants_snapshot() {
            return;
        }
        let desk = self.desk.desk.snapshot();
        let sequences: Vec<SeqSnapshotRef<'_>> = self
            .front
            .driver
            .core()
            .sequences()
            .map(|(strategy, seq)| SeqSnapshotRef {
                strategy,
                next_seq: seq.next_seq(),
                frames: seq.window().collect(),
            })
            .collect();
        journal.snapshot(&desk, &sequences);
    }

    /// Runs until both the poller and the rings are drained; true if
    /// anything happened.
    fn step(&mut self) -> Result<bool, AppError> {
        self.log_counters();
        self.snapshot_if_due();
        self.check_journal()?;
        let mut busy = false;
        loop {
            let polled = self.front.step(Duration::ZERO)?;
            let core = self.front.driver.core();
            self.desk
                .presence_and_timers(&|strategy| core.is_connected(strategy));
            let moved = self.desk.step();
            self.front.deliver();
            if polled == 0 && !moved && !self.desk.has_pending() && self.front.notices.is_empty() {
                return Ok(busy);
            }
            busy = true;
        }
    }

    fn has_pending(&self) -> bool {
        self.desk.has_pending() || !self.front.notices.is_empty()
    }

    fn prepare_sleep(&self) {
        self.desk.bell.prepare_sleep();
        self.front.bell.prepare_sleep();
    }

    fn cancel_sleep(&self) {
        self.desk.bell.cancel_sleep();
        self.front.bell.cancel_sleep();
    }

    /// The gateway on its own thread: block in the poller (`park`) or
    /// busy-poll it (`spin`).
    fn run_thread(mut self, wait: WaitStrategy, shutdown: &Shutdown) -> Result<(), AppError> {
        while !shutdown.flag.load(Ordering::Relaxed) {
            if self.drained(shutdown) {
                break;
            }
            if wait == WaitStrategy::Spin {
                if !self.step()? {
                    self.idle()?;
                }
                std::hint::spin_loop();
                continue;
            }
            self.prepare_sleep();
            let timeout = if self.has_pending() {
                Duration::ZERO
            } else {
                self.idle()?;
                // Bounded so a stop request is seen promptly.
                self.front.driver.timeout(Duration::from_millis(100))
            };
            self.front.step(timeout)?;
            self.cancel_sleep();
            self.step()?;
        }
        self.idle()
    }

    /// The gateway as a task of a current-thread runtime: an `AsyncFd` over
    /// the poller's own fd wakes it when any source is ready.
    async fn run_task(mut self, stop: Arc<Shutdown>) -> Result<(), AppError> {
        let mut shutdown = stop.watch();
        let mut drain = stop.drain_tx.subscribe();
        let poller = crate::asyncfd::register_async(std::os::fd::AsFd::as_fd(&self.front.driver))?;
        loop {
            if self.drained(&stop) {
                return self.idle();
            }
            if self.step()? {
                tokio::task::yield_now().await;
                continue;
            }
            self.prepare_sleep();
            if self.has_pending() {
                self.cancel_sleep();
                continue;
            }
            self.idle()?;
            // Short while draining or a desk timer is set, to look again.
            let cap = if self.drain_until.is_some() || self.desk.desk.next_timer().is_some() {
                Duration::from_millis(50)
            } else {
                Duration::from_secs(1)
            };
            let timer = self.front.driver.timeout(cap);
            let draining = self.drain_until.is_some();
            tokio::select! {
                _ = stopped(&mut drain), if !draining => {}
                g = poller.readable() => {
                    if let Ok(mut g) = g {
                        g.clear_ready();
                    }
                }
                _ = tokio::time::sleep(timer) => {}
                _ = stopped(&mut shutdown) => return self.idle(),
            }
            self.cancel_sleep();
        }
    }
}

/// Builds the adapter for a configured venue through the venue registry,
/// if this build has one for it.
fn adapter(
    registry: &Registry,
    venue: &crate::config::VenueConfig,
    config: &Config,
    namespace: crate::ids::Namespace,
) -> Result<Option<Box<dyn VenueProtocol>>, AppError> {
    if !registry.supports(venue.id) {
        return Ok(None);
    }
    let creds = venue.credentials()?;
    let api_key = creds
        .api_key
        .expose_str()
        .map_err(|_| std::io::Error::other(format!("{}: api_key is not UTF-8", venue.id)))?
        .to_owned();
    let setup = VenueSetup {
        id: venue.id,
        ws_url: venue.ws_url.clone(),
        rest_url: venue.rest_url.clone(),
        api_key,
        api_secret: zeroize::Zeroizing::new(creds.api_secret.expose().to_vec()),
        recv_window_ms: venue.recv_window_ms,
        instruments: config
            .instruments
            .iter()
            .filter(|i| i.venue == venue.id)
            .cloned()
            .collect(),
        namespace,
    };
    registry
        .build(setup)
        .map(Some)
        .map_err(|e| std::io::Error::other(e.to_string()).into())
}

/// Opens the journal (cutting a torn tail), replays it into `desk`, and
/// marks this run's start in it.
fn open_journal(
    state: &StateDir,
    config: &Config,
    desk: &mut Desk,
) -> Result<(SharedJournal, Restored), AppError> {
    let dir = state.journal_dir();
    let (journal, recovery) = Journal::open(
        &dir,
        JournalConfig {
            segment_bytes: config.journal.segment_bytes,
            durability: config.journal.durability,
        },
    )?;
    if let Some(t) = &recovery.torn_tail {
        tracing::warn!(segment = %t.segment.display(), offset = t.offset, dropped_bytes = t.dropped_bytes, why = %t.why, "journal: torn last record cut away (a crash mid-write)");
    }
    let restored = restore(&dir, desk, config.gateway.resend_capacity)?;
    let namespace = desk.lifecycle().namespace();
    let state_ns = state.namespace().ok_or(AppError::NoEpoch)?;
    desk.begin_run(state_ns);
    let open = desk.lifecycle().all_open().count();
    tracing::info!(
        journal = %dir.display(),
        records = restored.records,
        runs = restored.runs,
        orders = desk.lifecycle().len(),
        open,
        last_epoch = namespace.epoch,
        "journal replayed; open orders are adopted and reconciled with their venues"
    );
    let mut writer = JournalWriter::new(journal);
    writer.start(state_ns);
    Ok((writer.shared(), restored))
}

/// The front end's sequenced frames into the journal, before any strategy
/// can read them.
struct Recorder(SharedJournal);

impl frontend::SeqRecorder for Recorder {
    fn record(&mut self, strategy: StrategyId, seq: u64, frame: &[u8]) {
        JournalWriter::lock(&self.0).sent(strategy, seq, frame);
    }
}

/// Builds every role and starts the threads of the configured layout.
pub fn start(config: Config, state: StateDir) -> Result<App, AppError> {
    crate::tls::install_crypto_provider()?;
    let namespace = state.namespace().ok_or(AppError::NoEpoch)?;
    let epoch = namespace.epoch;
    let shutdown = Arc::new(Shutdown::new());
    let desk_bell = Doorbell::new()?;
    // One monotonic time base for the desk and every session, so a time
    // the desk stamps means the same to a session.
    let clock = crate::clock::MonoClock::new();

    let mut desk = Desk::new(desk::DeskConfig {
        namespace,
        strategies: config.strategies.iter().map(|s| s.id).collect(),
        instruments: config.instruments.clone(),
        venues: config.venues.iter().map(|v| v.id).collect(),
        cancel_on_disconnect: config
            .strategies
            .iter()
            .filter_map(|s| Some((s.id, s.cancel_after_disconnect_ms? * 1_000_000)))
            .collect(),
    })?;
    let (journal, restored) = open_journal(&state, &config, &mut desk)?;
    let mut adoptions: BTreeMap<VenueId, Vec<crate::venue::Adopted>> = BTreeMap::new();
    for (venue, order) in desk.adoptions() {
        adoptions.entry(venue).or_default().push(order);
    }

    let mut sessions = Vec::new();
    let mut sink = RingSink {
        sessions: BTreeMap::new(),
        refused: Vec::new(),
    };
    let mut reports = Vec::new();
    let mut unsupported = Vec::new();
    let registry = Registry::builtin();
    for venue in &config.venues {
        let Some(mut protocol) = adapter(&registry, venue, &config, namespace)? else {
            unsupported.push(venue.id);
            continue;
        };
        let now = crate::venue::Now {
            mono_ns: clock.now_ns(),
            wall_ms: crate::clock::system_ms(),
        };
        for order in adoptions.remove(&venue.id).unwrap_or_default() {
            protocol.adopt(order, now);
        }
        let bell = Doorbell::new()?;
        let mut inputs = CommandInputs::new();
        let mut strategies = BTreeMap::new();
        for s in &config.strategies {
            let lanes = Lane::ALL.map(|lane| {
                let (p, c) = ring::channel(config.rings.command_capacity);
                inputs.add(lane, c);
                p
            });
            strategies.insert(s.id, lanes);
        }
        sink.sessions.insert(
            venue.id,
            SessionRings {
                strategies,
                ringer: bell.ringer(),
            },
        );
        let (reports_tx, reports_rx) = ring::channel(config.rings.event_capacity);
        reports.push(reports_rx);
        let tls = if venue.ws_url.starts_with("wss://") || venue.rest_url.starts_with("https://") {
            Some(crate::tls::client_config(venue.ca_file.as_deref())?)
        } else {
            None
        };
        sessions.push((
            venue.id,
            Session::new(
                protocol,
                inputs,
                bell,
                EventOutput::new(reports_tx, desk_bell.ringer()),
                SessionConfig {
                    tls,
                    wait: config.wait,
                    reconnect: ReconnectPolicy {
                        min: Duration::from_millis(200),
                        max: Duration::from_secs(10),
                    },
                    // Queries beside the order path can wait longer.
                    per_role: vec![(
                        ConnRole::Rest,
                        ReconnectPolicy {
                            min: Duration::from_millis(500),
                            max: Duration::from_secs(30),
                        },
                    )],
                    limits: venue.limits.clone(),
                },
            )
            .with_clock(clock.clone())
            .with_liveness(venue.liveness),
        ));
    }

    for (venue, orders) in &adoptions {
        for o in orders {
            tracing::warn!(%venue, order = ?o.req.client_id.key, "open order on a venue this build has no adapter for; not tracked");
        }
    }
    let mut front = FrontEnd::new(frontend::FrontEndConfig {
        strategies: config
            .strategies
            .iter()
            .map(|s| frontend::StrategyConfig {
                id: s.id,
                name: s.name.clone(),
            })
            .collect(),
        instruments: config.instruments.clone(),
        resend_capacity: config.gateway.resend_capacity,
        max_outbound_bytes: config.gateway.max_outbound_bytes,
        hello_timeout_ns: frontend::HELLO_TIMEOUT_NS,
        installation: namespace.installation,
        epoch: namespace.epoch,
    })?;
    for (strategy, seq) in restored.sequences {
        front.restore_sequence(strategy, seq.next_seq, seq.frames);
    }
    front.set_recorder(Box::new(Recorder(journal.clone())));
    if !restored.unsent.is_empty() {
        tracing::info!(
            updates = restored.unsent.len(),
            "journal: order updates the last run made but never sequenced; sequenced now"
        );
    }
    for n in restored.unsent {
        front.on_notice(n);
    }
    let strategies: Vec<StrategyId> = front.strategy_ids().collect();
    let mut driver = Driver::bind(&config.socket, front).map_err(|source| AppError::Bind {
        path: config.socket.display().to_string(),
        source,
    })?;
    let front_bell = Doorbell::new()?;
    driver.register_wakeup(desk_bell.as_raw_fd())?;
    driver.register_wakeup(front_bell.as_raw_fd())?;
    let (input_tx, input_rx) = ring::channel(config.rings.command_capacity);
    let (notice_tx, notice_rx) = ring::channel(config.rings.event_capacity);
    let mut notices = Vec::new();
    for v in unsupported {
        let status = VenueStatus {
            venue: v,
            state: VenueState::Down,
            text: format!("{v}: this build has no adapter for it yet"),
        };
        desk.on_venue_status(&status, &mut notices);
    }
    let mut links = vec![FrontEndLink {
        input: input_rx,
        notices: notice_tx,
        overflow: VecDeque::new(),
        strategies,
        ringer: front_bell.ringer(),
    }];
    // Strategies connecting later hear every venue's state at Hello.
    for status in desk.venues() {
        links[0].offer(Notice::Venue(status.clone()));
    }
    notices.clear();
    let gateway = GatewayRole {
        front: FrontEndRole {
            driver,
            input: input_tx,
            desk_ringer: desk_bell.ringer(),
            notices: notice_rx,
            bell: front_bell,
        },
        desk: DeskRole {
            desk,
            sink,
            reports,
            links,
            bell: desk_bell,
            notices,
            clock: clock.clone(),
            journal,
            presence: config
                .strategies
                .iter()
                .filter(|s| s.cancel_after_disconnect_ms.is_some())
                .map(|s| (s.id, false))
                .collect(),
        },
        next_counters: std::time::Instant::now() + crate::logging::COUNTERS_EVERY,
        on_shutdown: config.gateway.on_shutdown,
        drain_until: None,
        drain_cancels: 0,
    };
    tracing::info!(
        epoch,
        installation = %namespace.installation_str(),
        socket = %config.socket.display(),
        layout = config.layout.as_str(),
        wait = config.wait.as_str(),
        sessions = sessions.len(),
        strategies = config.strategies.len(),
        instruments = config.instruments.len(),
        "ordergate started"
    );

    let threads = match config.layout {
        Layout::Single => vec![spawn_single(gateway, sessions, shutdown.clone())?],
        Layout::Pinned => spawn_pinned(gateway, sessions, &config, shutdown.clone())?,
    };
    Ok(App {
        shutdown,
        threads,
        _state: state,
    })
}

type Role = (&'static str, JoinHandle<Result<(), AppError>>);

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// `single`: one thread, one current-thread runtime, every role a task.
fn spawn_single(
    gateway: GatewayRole,
    sessions: Vec<(VenueId, Session)>,
    shutdown: Arc<Shutdown>,
) -> Result<Role, AppError> {
    let handle = std::thread::Builder::new()
        .name("ordergate".into())
        .spawn(move || {
            let rt = runtime()?;
            let result = rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for (_, s) in sessions {
                    let n = shutdown.watch();
                    tasks.spawn(async move { s.run(n).await.map_err(AppError::from) });
                }
                let gw = gateway.run_task(shutdown.clone());
                tokio::pin!(gw);
                // Whichever role ends first (a stop, or a fatal error) ends
                // the others.
                let first = tokio::select! {
                    r = &mut gw => r,
                    Some(r) = tasks.join_next() => r.unwrap_or(Err(AppError::Panicked("session"))),
                };
                shutdown.trigger();
                while tasks.join_next().await.is_some() {}
                first
            });
            result
        })?;
    Ok(("ordergate", handle))
}

/// `pinned`: the gateway and every session on their own threads, each
/// pinned to its configured core.
fn spawn_pinned(
    gateway: GatewayRole,
    sessions: Vec<(VenueId, Session)>,
    config: &Config,
    shutdown: Arc<Shutdown>,
) -> Result<Vec<Role>, AppError> {
    // Config validation guarantees cores for the pinned layout.
    let cores = config
        .cores
        .clone()
        .ok_or_else(|| std::io::Error::other("layout = \"pinned\" needs a [cores] table"))?;
    let mut threads = Vec::new();
    for (venue, s) in sessions {
        let core = cores.session(venue);
        let sd = shutdown.clone();
        let h = std::thread::Builder::new()
            .name(format!("og-{venue}"))
            .spawn(move || {
                if let Some(c) = core {
                    crate::affinity::pin_current_thread(c)?;
                }
                let rt = runtime()?;
                let r = rt.block_on(s.run(sd.watch())).map_err(AppError::from);
                sd.trigger();
                r
            })?;
        threads.push(("session", h));
    }
    let wait = config.wait;
    let core = cores.gateway;
    let sd = shutdown.clone();
    let h = std::thread::Builder::new()
        .name("og-gateway".into())
        .spawn(move || {
            crate::affinity::pin_current_thread(core)?;
            let r = gateway.run_thread(wait, &sd);
            sd.trigger();
            r
        })?;
    threads.push(("gateway", h));
    Ok(threads)
}
