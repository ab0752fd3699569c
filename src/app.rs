//! The running sidecar: wires the gateway, the venue sessions and the rings
//! together for the configured layout. `main` has already taken the
//! instance lock, bumped the epoch and prepared the socket path; secrets
//! are read here (`VenueConfig::credentials`), when they are needed.
//!
//! Rings are created at start-up for every configured strategy: one per
//! (venue session, strategy, lane) for commands, one per session for
//! events back to the gateway. A strategy has at most one connection at a
//! time, so its rings are that connection's while it is connected, and the
//! sessions round-robin over all of them inside a lane.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, ConfigError, Layout};
use crate::doorbell::{Doorbell, Ringer, WaitStrategy};
use crate::gateway::{self, CommandSink, Driver, EventSource};
use crate::ids::{InstrumentId, StrategyId, VenueId};
use crate::protocol::VenueState;
use crate::ring::{self, Consumer, Producer};
use crate::session::{CommandInputs, EventOutput, ReconnectPolicy, Session, SessionConfig};
use crate::state::StateDir;
use crate::venue::registry::{Registry, VenueSetup};
use crate::venue::{Command, ConnRole, Lane, Report, VenueProtocol};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Gateway(#[from] gateway::GatewayConfigError),
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
    let app = start(config, state)?;
    let mut stop = app.stop_flag();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = stopped(&mut stop) => {}
        }
        Ok::<_, std::io::Error>(())
    })?;
    eprintln!("ordergate: stopping");
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
}

impl Shutdown {
    fn new() -> Self {
        Shutdown {
            flag: AtomicBool::new(false),
            tx: watch::Sender::new(false),
        }
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
    pub fn stop(mut self) -> Result<(), AppError> {
        self.shutdown.trigger();
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

/// Routes a command to the ring of (its instrument's venue, strategy, lane).
struct RingSink {
    venue_of: HashMap<InstrumentId, usize>,
    /// Per session: per strategy: one producer per lane.
    rings: Vec<HashMap<StrategyId, [Producer<Command>; 3]>>,
    ringers: Vec<Ringer>,
}

impl CommandSink for RingSink {
    fn push(&mut self, strategy: StrategyId, lane: Lane, cmd: Command) -> Result<(), Command> {
        let instrument = match cmd {
            Command::Place(o) => o.instrument,
            Command::Cancel { instrument, .. } => instrument,
        };
        let Some(&v) = self.venue_of.get(&instrument) else {
            return Err(cmd);
        };
        let Some(lanes) = self.rings[v].get_mut(&strategy) else {
            return Err(cmd);
        };
        lanes[lane as usize].push(cmd)?;
        self.ringers[v].ring();
        Ok(())
    }
}

/// Drains the sessions' event rings; the gateway's doorbell wakes it.
struct RingSource {
    rings: Vec<Consumer<Report>>,
    bell: Doorbell,
}

impl RingSource {
    fn has_pending(&self) -> bool {
        self.rings.iter().any(|r| !r.is_empty())
    }
}

impl EventSource for RingSource {
    fn drain(&mut self, out: &mut Vec<Report>) {
        let _ = self.bell.drain();
        for r in &mut self.rings {
            while let Some(ev) = r.pop() {
                out.push(ev);
            }
        }
    }
}

/// The gateway role: its driver and the two ring ends it owns.
struct GatewayRole {
    driver: Driver,
    sink: RingSink,
    source: RingSource,
}

impl GatewayRole {
    /// Runs until the poller is drained; true if anything happened.
    fn step(&mut self) -> Result<bool, AppError> {
        let mut busy = false;
        while self
            .driver
            .run_once(Some(Duration::ZERO), &mut self.sink, &mut self.source)?
            > 0
            || self.source.has_pending()
        {
            busy = true;
        }
        Ok(busy)
    }

    /// The gateway on its own thread: block in the poller (`park`) or
    /// busy-poll it (`spin`).
    fn run_thread(mut self, wait: WaitStrategy, shutdown: &Shutdown) -> Result<(), AppError> {
        while !shutdown.flag.load(Ordering::Relaxed) {
            if wait == WaitStrategy::Spin {
                self.step()?;
                std::hint::spin_loop();
                continue;
            }
            self.source.bell.prepare_sleep();
            let timeout = if self.source.has_pending() {
                Duration::ZERO
            } else {
                // Bounded so a stop request is seen promptly.
                Duration::from_millis(100)
            };
            self.driver
                .run_once(Some(timeout), &mut self.sink, &mut self.source)?;
            self.source.bell.cancel_sleep();
            self.step()?;
        }
        Ok(())
    }

    /// The gateway as a task of a current-thread runtime: an `AsyncFd` over
    /// the poller's own fd wakes it when any gateway source is ready.
    async fn run_task(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), AppError> {
        let poller = crate::asyncfd::register_async(std::os::fd::AsFd::as_fd(&self.driver))?;
        loop {
            if self.step()? {
                tokio::task::yield_now().await;
                continue;
            }
            self.source.bell.prepare_sleep();
            if self.source.has_pending() {
                self.source.bell.cancel_sleep();
                continue;
            }
            tokio::select! {
                g = poller.readable() => {
                    if let Ok(mut g) = g {
                        g.clear_ready();
                    }
                }
                _ = stopped(&mut shutdown) => return Ok(()),
            }
            self.source.bell.cancel_sleep();
        }
    }
}

/// Builds the adapter for a configured venue through the venue registry,
/// if this build has one for it.
fn adapter(
    registry: &Registry,
    venue: &crate::config::VenueConfig,
    config: &Config,
    epoch: u32,
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
        epoch,
    };
    registry
        .build(setup)
        .map(Some)
        .map_err(|e| std::io::Error::other(e.to_string()).into())
}

/// Builds every role and starts the threads of the configured layout.
pub fn start(config: Config, state: StateDir) -> Result<App, AppError> {
    crate::tls::install_crypto_provider()?;
    let epoch = state.epoch().ok_or(AppError::NoEpoch)?;
    let shutdown = Arc::new(Shutdown::new());
    let gateway_bell = Doorbell::new()?;

    let mut sessions = Vec::new();
    let mut sink = RingSink {
        venue_of: HashMap::new(),
        rings: Vec::new(),
        ringers: Vec::new(),
    };
    let mut source_rings = Vec::new();
    let mut unsupported = Vec::new();
    let registry = Registry::builtin();
    for venue in &config.venues {
        let Some(protocol) = adapter(&registry, venue, &config, epoch)? else {
            unsupported.push(venue.id);
            continue;
        };
        let v = sink.rings.len();
        let bell = Doorbell::new()?;
        let mut inputs = CommandInputs::new();
        let mut per_strategy = HashMap::new();
        for s in &config.strategies {
            let lanes = Lane::ALL.map(|lane| {
                let (p, c) = ring::channel(config.rings.command_capacity);
                inputs.add(lane, c);
                p
            });
            per_strategy.insert(s.id, lanes);
        }
        for i in config.instruments.iter().filter(|i| i.venue == venue.id) {
            sink.venue_of.insert(i.id, v);
        }
        sink.rings.push(per_strategy);
        sink.ringers.push(bell.ringer());
        let (events_tx, events_rx) = ring::channel(config.rings.event_capacity);
        source_rings.push(events_rx);
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
                EventOutput::new(events_tx, gateway_bell.ringer()),
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
                },
            ),
        ));
    }

    let core = gateway::Core::new(gateway::GatewayConfig {
        epoch,
        strategies: config
            .strategies
            .iter()
            .map(|s| gateway::StrategyConfig {
                id: s.id,
                name: s.name.clone(),
            })
            .collect(),
        instruments: config.instruments.clone(),
        resend_capacity: config.gateway.resend_capacity,
        max_outbound_bytes: config.gateway.max_outbound_bytes,
    })?;
    let mut driver = Driver::bind(&config.socket, core).map_err(|source| AppError::Bind {
        path: config.socket.display().to_string(),
        source,
    })?;
    driver.register_wakeup(gateway_bell.as_raw_fd())?;
    for v in unsupported {
        driver.set_venue_state(
            v,
            VenueState::Down,
            &format!("{v}: this build has no adapter for it yet"),
        );
    }
    let gateway = GatewayRole {
        driver,
        sink,
        source: RingSource {
            rings: source_rings,
            bell: gateway_bell,
        },
    };
    eprintln!(
        "ordergate: epoch {epoch}, socket {}, layout {}, wait {}, {} session(s), {} strategy(ies), {} instrument(s)",
        config.socket.display(),
        config.layout.as_str(),
        config.wait.as_str(),
        sessions.len(),
        config.strategies.len(),
        config.instruments.len(),
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
                let gw = gateway.run_task(shutdown.watch());
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
