//! `ordergate demo`: the whole path end to end, checked and measured.
//!
//! Starts the simulator, the sidecar and a demo strategy (child processes
//! of this one, or all in this process with `--in-process`), sends a mix
//! of every kind of order through Unix socket → ring → venue session →
//! WebSocket → simulator → fills → lifecycle → strategy, compares every
//! order's final state, executed quantity and quote quantity with the
//! simulator's own record (read back over its REST API, as a strategy's
//! operator would), and prints the counts and the order round-trip latency
//! next to a floor measured in the same run.
//!
//! `--strategies N` splits the orders over N strategies, each its own
//! child process with its own `[[strategy]]` in the sidecar's config.
//! `--faults SPEC` is the fault run (see `demo::faults`): the simulator
//! in this process injecting faults, its ledger the judge. `--restarts K`
//! makes it the chaos run (see `demo::chaos`): the sidecar SIGKILLed and
//! started again K times meanwhile.

pub mod chaos;
pub mod faults;
pub mod flood;
pub mod floor;
pub mod rest;
pub mod strategy;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::Config;
use crate::decimal::WideDecimal;
use crate::ids::{ClientId, Namespace, OrderKey};
use crate::protocol::{OrderState, Reason};
use crate::sim::binance::engine::SymbolConfig;
use crate::sim::binance::{
    FillModel, RateLimits, SimConfig, Simulator, DEMO_API_KEY, DEMO_API_SECRET,
};
use strategy::{Kind, Outcome, Plan, StrategyReport};

/// The demo simulator's ORDERS limit (per 10 s and per day). Binance's is
/// 50 per 10 s for this account type, and the demo sends a few hundred
/// orders in a few seconds: the sidecar does not pace new orders to the
/// venue's ORDERS limit, so the demo lifts that one limit, explicitly.
/// Request weight, raw requests and connections keep the documented
/// limits, so the demo still shows it stays under them.
const DEMO_ORDERS_LIMIT: u64 = 1_000_000;

/// The instrument the demo trades, one of the simulator's default symbols.
const SYMBOL: &str = "BTCUSDT";
/// The one strategy's name when there is one; with more, `demo-1`,
/// `demo-2`, … (ids 1, 2, …).
const STRATEGY_NAME: &str = "demo";

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many orders to send.
    #[arg(long, default_value_t = 300)]
    pub orders: usize,
    /// Run simulator, sidecar and strategy as threads of this process
    /// instead of child processes.
    #[arg(long)]
    pub in_process: bool,
    /// Seed of the simulator's fill model.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Round trips measured for each latency floor.
    #[arg(long, default_value_t = 2000)]
    pub floor_rounds: usize,
    /// Instead: flood the venue's rate limits, with the limiter and
    /// without it (`pass_through`), and compare (see `demo::flood`).
    #[arg(long)]
    pub flood: bool,
    /// The fault run: the simulator (in this process) injects these
    /// faults: `all`, `none`, or a list such as `drop,clock:50` (the
    /// simulator's syntax). Every order is then checked against the
    /// simulator's own ledger, and every enabled fault must have fired.
    #[arg(long, value_name = "SPEC", conflicts_with = "flood")]
    pub faults: Option<String>,
    /// Seed of the simulator's fault draws (default: `--seed`).
    #[arg(long, value_name = "N", requires = "faults")]
    pub fault_seed: Option<u64>,
    /// How many strategies share the orders (default 1, or 3 with
    /// `--faults`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub strategies: Option<u32>,
    /// The fault run's pace: new orders per second over all strategies
    /// (default 25; 0: as fast as the window of orders in flight allows).
    #[arg(long, value_name = "N", requires = "faults")]
    pub rate: Option<u32>,
    /// The chaos run: SIGKILL the sidecar (a child process) this many
    /// times during the fault run, at journal records drawn from the
    /// fault seed, and start it again each time; the strategies reconnect
    /// and catch up.
    #[arg(
        long,
        value_name = "K",
        requires = "faults",
        conflicts_with = "in_process"
    )]
    pub restarts: Option<u32>,
    /// Keep the sidecar's state directory (its journal) here instead of
    /// in the demo's temporary directory, for `ordergate journal inspect`.
    /// Must not exist yet.
    #[arg(long, value_name = "DIR", conflicts_with = "flood")]
    pub keep_state: Option<PathBuf>,
}

/// The fault run's default pace (orders per second over all strategies):
/// well inside the venue's documented REQUEST_WEIGHT (6000 per minute),
/// with room for the sidecar's own recovery requests under faults.
const FAULT_RATE: u32 = 25;

/// Arguments of the hidden `demo-strategy` subcommand (the strategy child).
#[derive(Debug, Clone, clap::Args)]
pub struct StrategyArgs {
    #[arg(long)]
    pub socket: PathBuf,
    /// The strategy's configured name.
    #[arg(long, default_value = STRATEGY_NAME)]
    pub name: String,
    /// The demo-wide index of its first order (the mix cycles over it).
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    #[arg(long)]
    pub orders: usize,
    /// The fault run's way: a window of orders in flight, late messages
    /// taken, cancels retried, a deadline instead of per-answer timeouts.
    #[arg(long)]
    pub tolerant: bool,
    /// Tolerant mode: at least this many microseconds between new orders.
    #[arg(long, default_value_t = 0)]
    pub interval_us: u64,
    /// Tolerant mode: reconnect (and catch up) when the sidecar goes away.
    #[arg(long, requires = "tolerant")]
    pub reconnect: bool,
    /// The market price to trade around, as a decimal string.
    #[arg(long)]
    pub reference: String,
    /// Where to write the report (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Sim(#[from] crate::sim::binance::SimError),
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Strategy(#[from] strategy::DemoStrategyError),
    #[error(transparent)]
    Rest(#[from] rest::RestError),
    #[error("{0}")]
    Setup(String),
    #[error("{} order(s) differ from the simulator's ledger:\n  {}", .0.len(), .0.join("\n  "))]
    Mismatch(Vec<String>),
    #[error("with {0} orders every category must occur, but none were: {1}")]
    Coverage(usize, String),
    #[error("flood: {0}")]
    Flood(String),
    #[error("--faults: {0}")]
    FaultSpec(String),
    #[error("fault run failed {} check(s) (fault seed {seed}):\n  {}", .checks.len(), .checks.join("\n  "))]
    FaultChecks { seed: u64, checks: Vec<String> },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |e| DemoError::Io(what, e)
}

/// A temporary directory removed on drop (socket, state, config, secrets).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, DemoError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("og-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(io(format!("create {}", p.display())))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when the demo ends, however it ends.
struct ChildGuard(Child, &'static str);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_secret(path: &Path, value: &str) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("write {}", path.display())))?;
    f.write_all(value.as_bytes())
        .map_err(io(format!("write {}", path.display())))
}

fn now_ms() -> u64 {
    crate::clock::system_ms()
}

/// The filters of `symbol` from the venue's exchangeInfo.
pub(crate) struct Filters {
    pub(crate) tick: String,
    pub(crate) lot: String,
    pub(crate) min_qty: String,
    pub(crate) min_notional: String,
}

fn exchange_filters(rest: &mut rest::Rest, symbol: &str) -> Result<Filters, DemoError> {
    let r = rest.get("/api/v3/exchangeInfo", &format!("symbol={symbol}"))?;
    let bad = |why: &str| DemoError::Setup(format!("exchangeInfo for {symbol}: {why}"));
    let sym = r.body["symbols"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["symbol"] == symbol))
        .ok_or_else(|| bad("symbol missing"))?;
    let filter = |kind: &str, key: &str| -> Result<String, DemoError> {
        sym["filters"]
            .as_array()
            .and_then(|fs| fs.iter().find(|f| f["filterType"] == kind))
            .and_then(|f| f[key].as_str())
            .map(str::to_owned)
            .ok_or_else(|| bad(&format!("no {kind}.{key}")))
    };
    Ok(Filters {
        tick: filter("PRICE_FILTER", "tickSize")?,
        lot: filter("LOT_SIZE", "stepSize")?,
        min_qty: filter("LOT_SIZE", "minQty")?,
        min_notional: filter("NOTIONAL", "minNotional")?,
    })
}

fn config_text(
    dir: &Path,
    state_dir: &Path,
    sim_addr: &str,
    plans: &[(u32, Plan)],
    f: &Filters,
) -> String {
    let strategies: Vec<(u32, &str)> = plans.iter().map(|(id, p)| (*id, p.name.as_str())).collect();
    sidecar_config(
        "ordergate demo",
        dir,
        state_dir,
        sim_addr,
        "",
        &strategies,
        f,
    )
}

/// The demo's orders split over `count` strategies (ids 1..=count), in
/// consecutive runs of the mix; `reconnect` for the chaos run.
fn plans(
    count: u32,
    orders: usize,
    tolerant: bool,
    rate: u32,
    reconnect: bool,
) -> Vec<(u32, Plan)> {
    let n = count as usize;
    // Each strategy sends its share of the rate.
    let interval = if rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(count as f64 / rate as f64)
    };
    let mut first = 0;
    (0..n)
        .map(|k| {
            let mine = orders / n + usize::from(k < orders % n);
            let plan = Plan {
                name: if n == 1 {
                    STRATEGY_NAME.to_owned()
                } else {
                    format!("{STRATEGY_NAME}-{}", k + 1)
                },
                first,
                orders: mine,
                tolerant,
                interval,
                reconnect,
            };
            first += mine;
            (k as u32 + 1, plan)
        })
        .collect()
}

/// The simulator's filters for `symbol` from its own table, written as
/// its exchangeInfo writes them (the fault run does not ask a venue that
/// is injecting faults over REST).
fn table_filters(symbol: &str) -> Result<Filters, DemoError> {
    let (spec, _) = SymbolConfig::defaults()
        .into_iter()
        .find(|s| s.symbol == symbol)
        .ok_or_else(|| DemoError::Setup(format!("the simulator has no default {symbol}")))?
        .build()
        .map_err(crate::sim::binance::SimError::from)?;
    let s = spec.scales;
    Ok(Filters {
        tick: s.fmt_price(spec.tick_size),
        lot: s.fmt_qty(spec.step_size),
        min_qty: s.fmt_qty(spec.min_qty),
        min_notional: s.fmt_quote(spec.min_notional),
    })
}

/// The sidecar's config for a demo: the simulator at `sim_addr`, the
/// secrets in files in `dir`, `venue_tables` (e.g. `[venue.limits]`)
/// inside the venue, the strategies, and the demo symbol with `f`.
pub(crate) fn sidecar_config(
    written_by: &str,
    dir: &Path,
    state_dir: &Path,
    sim_addr: &str,
    venue_tables: &str,
    strategies: &[(u32, &str)],
    f: &Filters,
) -> String {
    let d = dir.display();
    let state = state_dir.display();
    let strategies: String = strategies
        .iter()
        .map(|(id, name)| format!("[[strategy]]\nid = {id}\nname = \"{name}\"\n\n"))
        .collect();
    format!(
        r#"# Written by `{written_by}`.
state_dir = "{state}"
socket = "{d}/og.sock"
layout = "single"
wait = "park"

[[venue]]
id = "binance-spot"
ws_url = "ws://{sim_addr}/ws-api/v3"
rest_url = "http://{sim_addr}"
api_key = {{ file = "{d}/api.key" }}
api_secret = {{ file = "{d}/api.secret" }}
recv_window_ms = 5000
{venue_tables}
{strategies}[[instrument]]
id = 1
venue = "binance-spot"
symbol = "{SYMBOL}"
category = "spot"
tick = "{}"
lot = "{}"
min_qty = "{}"
min_notional = "{}"
"#,
        f.tick, f.lot, f.min_qty, f.min_notional
    )
}

/// Where the simulator's reference price for the demo symbol comes from:
/// its own default table, so demo and simulator agree by construction.
fn reference_price() -> Result<String, DemoError> {
    SymbolConfig::defaults()
        .into_iter()
        .find(|s| s.symbol == SYMBOL)
        .map(|s| s.reference_price)
        .ok_or_else(|| DemoError::Setup(format!("the simulator has no default {SYMBOL}")))
}

fn wait_for_socket(path: &Path, child: Option<&mut ChildGuard>) -> Result<(), DemoError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut child = child;
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Ok(());
        }
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(status)) = c.0.try_wait() {
                return Err(DemoError::Setup(format!(
                    "the {} exited early: {status}",
                    c.1
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(DemoError::Setup(format!(
        "the sidecar did not listen on {} within 20 s",
        path.display()
    )))
}

/// The fault run's settings.
struct FaultRun {
    text: String,
    spec: faults::FaultSpec,
    seed: u64,
    /// The chaos run's kill points (empty without `--restarts`).
    kills: Vec<u64>,
}

/// `ordergate demo`.
pub fn run(args: DemoArgs) -> Result<(), DemoError> {
    if args.flood {
        return flood::run();
    }
    let started = Instant::now();
    let fault = match &args.faults {
        Some(text) => {
            let seed = args.fault_seed.unwrap_or(args.seed);
            Some(FaultRun {
                text: text.clone(),
                spec: faults::parse_spec(text).map_err(DemoError::FaultSpec)?,
                seed,
                kills: chaos::kill_points(seed, args.orders, args.restarts.unwrap_or(0)),
            })
        }
        None => None,
    };
    let restarts = match args.restarts {
        Some(k) if k > 0 => format!(" --restarts {k}"),
        _ => String::new(),
    };
    let strategies = args
        .strategies
        .unwrap_or(if fault.is_some() { 3 } else { 1 });
    let rate = if fault.is_some() {
        args.rate.unwrap_or(FAULT_RATE)
    } else {
        0
    };
    let chaotic = fault.as_ref().is_some_and(|f| !f.kills.is_empty());
    let plans = plans(strategies, args.orders, fault.is_some(), rate, chaotic);
    if let Some(f) = &fault {
        println!(
            "ordergate demo: {} run, faults {} with fault seed {} (fill seed {}), {strategies} strategies at {} in all; \
             reproduce with: ordergate demo --orders {} --faults {} --fault-seed {} --seed {} --strategies {strategies} --rate {rate}{restarts}",
            if chaotic { "chaos" } else { "fault" },
            f.text, f.seed, args.seed,
            if rate == 0 { "full speed".to_owned() } else { format!("{rate} orders/s") },
            args.orders, f.text, f.seed, args.seed
        );
        if chaotic {
            let points: Vec<String> = f.kills.iter().map(u64::to_string).collect();
            println!(
                "chaos: the sidecar is SIGKILLed {} times, after journal records {} of its runs (drawn from seed {}), and started again",
                f.kills.len(),
                points.join(", "),
                f.seed
            );
        }
    }
    let dir = TempDir::new()?;
    write_secret(&dir.0.join("api.key"), DEMO_API_KEY)?;
    write_secret(&dir.0.join("api.secret"), DEMO_API_SECRET)?;
    let reference = reference_price()?;
    let exe = std::env::current_exe().map_err(io("find the ordergate executable"))?;

    // 1. The simulator: in this process for the fault run (its ledger and
    // fault counts are read directly) and with --in-process.
    let mut sim_handle = None;
    let mut children: Vec<ChildGuard> = Vec::new();
    let sim_addr = if args.in_process || fault.is_some() {
        let config = SimConfig {
            fill: FillModel {
                seed: args.seed,
                ..FillModel::default()
            },
            limits: RateLimits {
                orders_per_10s: DEMO_ORDERS_LIMIT,
                orders_per_day: DEMO_ORDERS_LIMIT,
                ..RateLimits::default()
            },
            ..SimConfig::default()
        };
        let config = match &fault {
            Some(f) => faults::with_faults(config, &f.spec, f.seed),
            None => config,
        };
        let h = Simulator::start(config, "127.0.0.1:0".parse().expect("literal address"))?;
        let addr = h.addr().to_string();
        sim_handle = Some(h);
        addr
    } else {
        let mut child = Command::new(&exe)
            .args([
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--seed",
                &args.seed.to_string(),
                "--orders-per-10s",
                &DEMO_ORDERS_LIMIT.to_string(),
                "--orders-per-day",
                &DEMO_ORDERS_LIMIT.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io("start the simulator"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        children.push(ChildGuard(child, "simulator"));
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .ok_or_else(|| DemoError::Setup("the simulator printed nothing".into()))?
            .map_err(io("read the simulator's output"))?;
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        first
            .rsplit(' ')
            .next()
            .filter(|a| a.contains(':'))
            .ok_or_else(|| DemoError::Setup(format!("unexpected simulator banner {first:?}")))?
            .to_owned()
    };
    // The plain demo reads its filters and checks its orders over REST,
    // as an operator would; the fault run does neither over a venue that
    // is injecting faults.
    let mut rest = None;
    let filters = if fault.is_some() {
        table_filters(SYMBOL)?
    } else {
        let mut r = rest::Rest::connect(
            &format!("http://{sim_addr}"),
            DEMO_API_KEY,
            DEMO_API_SECRET.as_bytes(),
        )?;
        let f = exchange_filters(&mut r, SYMBOL)?;
        rest = Some(r);
        f
    };

    // 2. The sidecar.
    let config_path = dir.0.join("ordergate.toml");
    let state_path = match &args.keep_state {
        Some(p) if p.exists() => {
            return Err(DemoError::Setup(format!(
                "--keep-state {}: already exists; give a new directory",
                p.display()
            )))
        }
        Some(p) => std::path::absolute(p).map_err(io("resolve --keep-state"))?,
        None => dir.0.join("state"),
    };
    let text = config_text(&dir.0, &state_path, &sim_addr, &plans, &filters);
    std::fs::write(&config_path, &text).map_err(io("write the demo config"))?;
    let config = Config::from_str(&text, &config_path.display().to_string())?;
    let socket = config.socket.clone();
    let state_dir = config.state_dir.clone();
    let sidecar_log = dir.0.join("sidecar.log");
    let mut app = None;
    let mut sidecar = None;
    if args.in_process {
        let state = crate::app::open_state(&config)?;
        app = Some(crate::app::start(config, state)?);
        wait_for_socket(&socket, None)?;
    } else {
        // In the fault run its log is kept, to show when a check fails.
        let s = sidecar.insert(chaos::Sidecar::start(
            &exe,
            &config_path,
            fault.is_some().then_some(sidecar_log.as_path()),
            fault.as_ref().map(|f| f.kills.clone()).unwrap_or_default(),
        )?);
        wait_for_socket(&socket, Some(s.child()))?;
    }
    let ns = read_namespace(&state_dir)?;

    // 3. The strategies, all at once.
    let reports = if args.in_process {
        std::thread::scope(|s| {
            let running: Vec<_> = plans
                .iter()
                .map(|(_, plan)| s.spawn(|| strategy::run(&socket, plan, SYMBOL, &reference)))
                .collect();
            running
                .into_iter()
                .map(|h| h.join().expect("a demo strategy thread panicked"))
                .collect::<Result<Vec<_>, _>>()
        })?
    } else {
        let mut running = Vec::new();
        for (id, plan) in &plans {
            let out = dir.0.join(format!("strategy-{id}.json"));
            let mut cmd = Command::new(&exe);
            cmd.arg("demo-strategy")
                .arg("--socket")
                .arg(&socket)
                .args(["--name", &plan.name])
                .args(["--first", &plan.first.to_string()])
                .args(["--orders", &plan.orders.to_string()])
                .args(["--reference", &reference])
                .arg("--out")
                .arg(&out);
            if plan.tolerant {
                cmd.arg("--tolerant")
                    .args(["--interval-us", &plan.interval.as_micros().to_string()]);
            }
            if plan.reconnect {
                cmd.arg("--reconnect");
            }
            let child = cmd.spawn().map_err(io("start a demo strategy"))?;
            running.push((ChildGuard(child, "demo strategy"), plan, out));
        }
        // Every strategy to its end, the sidecar watched meanwhile (and
        // started again after each kill point).
        let mut ended = vec![None; running.len()];
        while ended.iter().any(Option::is_none) {
            for ((child, _, _), end) in running.iter_mut().zip(&mut ended) {
                if end.is_none() {
                    *end = child.0.try_wait().map_err(io("wait for a demo strategy"))?;
                }
            }
            let failed = running.iter().zip(&ended).find_map(|((_, plan, _), end)| {
                (*end).filter(|st| !st.success()).map(|st| (plan, st))
            });
            if let Some((plan, status)) = failed {
                show_log_tail(fault.is_some(), &sidecar_log);
                return Err(DemoError::Setup(format!(
                    "the demo strategy {} failed: {status}",
                    plan.name
                )));
            }
            if let Some(s) = sidecar.as_mut() {
                if let Err(e) = s.watch() {
                    show_log_tail(fault.is_some(), &sidecar_log);
                    return Err(e);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        running
            .iter()
            .map(|(_, _, out)| read_report(out))
            .collect::<Result<Vec<_>, _>>()?
    };

    // 4. The venue's own record.
    let mut verdict = None;
    let mut mismatches = Vec::new();
    if let Some(f) = &fault {
        let sim = sim_handle
            .as_ref()
            .expect("the fault run's simulator is in process");
        let ledger = sim.ledger();
        let counts = faults::counts(sim);
        verdict = Some((f, ledger, counts));
    } else if let Some(rest) = rest.as_mut() {
        for r in &reports {
            mismatches.extend(check_ledger(rest, r, ns)?);
        }
    }

    // 5. The floor, measured now, on the same machine, in the same run.
    let unix = floor::unix_echo(args.floor_rounds, 48).map_err(io("unix echo floor"))?;
    let ws = floor::websocket_echo(args.floor_rounds, 320).map_err(io("websocket echo floor"))?;

    if let Some(app) = app {
        app.stop()?;
    }
    let restarts_done = sidecar.as_ref().map_or(0, chaos::Sidecar::restarts);
    drop(sim_handle);
    drop(children);
    drop(sidecar);

    let who = if plans.len() == 1 {
        "strategy".to_owned()
    } else {
        format!("{} strategies", plans.len())
    };
    let mode = match (args.in_process, fault.is_some()) {
        (true, _) => format!("simulator + sidecar + {who} in one process"),
        (false, true) if chaotic => format!(
            "simulator in this process, sidecar + {who} as child processes, \
             the sidecar SIGKILLed and started again {restarts_done} times"
        ),
        (false, true) => format!("simulator in this process, sidecar + {who} as child processes"),
        (false, false) => format!("simulator + sidecar + {who} as child processes"),
    };
    let coverage = print_summary(
        &reports,
        &unix,
        &ws,
        &mode,
        fault.is_some(),
        started.elapsed(),
    );
    if let Some((f, ledger, counts)) = verdict {
        println!(
            "fault checks (faults {}, fault seed {}, fill seed {}, installation {} epoch {}):",
            f.text,
            f.seed,
            args.seed,
            ns.installation_str(),
            ns.epoch
        );
        let enabled = faults::kind_names(&f.spec);
        let last_epoch = read_namespace(&state_dir)?.epoch;
        let failed = faults::check(&reports, &ledger, ns, &enabled, &counts, || {
            if f.kills.is_empty() {
                return Vec::new();
            }
            chaos::check(
                &reports,
                f.seed,
                &f.kills,
                restarts_done,
                (ns.epoch, last_epoch),
            )
        });
        if !failed.is_empty() {
            show_log_tail(!args.in_process, &sidecar_log);
            return Err(DemoError::FaultChecks {
                seed: f.seed,
                checks: failed,
            });
        }
        println!(
            "fault check: every order accounted for; reproduce with --faults {} --fault-seed {} --seed {} --strategies {} --rate {rate}{restarts}",
            f.text, f.seed, args.seed, plans.len()
        );
    } else {
        if !mismatches.is_empty() {
            return Err(DemoError::Mismatch(mismatches));
        }
        println!(
            "ledger check: all {} orders match the simulator (state, executed qty, quote qty)",
            reports.iter().map(|r| r.outcomes.len()).sum::<usize>()
        );
    }
    if args.orders >= 200 && !coverage.is_empty() {
        return Err(DemoError::Coverage(args.orders, coverage.join(", ")));
    }
    if args.keep_state.is_some() {
        println!(
            "state dir kept: {} (ordergate journal inspect {0})",
            state_path.display()
        );
    }
    Ok(())
}

/// After a failure: the last lines of the sidecar's log, if it was kept,
/// and the whole log copied out of the demo's directory (removed at the
/// end) for a closer look.
fn show_log_tail(kept: bool, path: &Path) {
    if !kept {
        return;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    eprintln!(
        "the sidecar's log, last {} of {} lines:",
        lines.len() - from,
        lines.len()
    );
    for l in &lines[from..] {
        eprintln!("  {l}");
    }
    let copy =
        std::env::temp_dir().join(format!("ordergate-demo-{}-sidecar.log", std::process::id()));
    if std::fs::write(&copy, &text).is_ok() {
        eprintln!("the sidecar's whole log: {}", copy.display());
    }
}

/// `ordergate demo-strategy`: the strategy child.
pub fn run_strategy(args: StrategyArgs) -> Result<(), DemoError> {
    let plan = Plan {
        name: args.name,
        first: args.first,
        orders: args.orders,
        tolerant: args.tolerant,
        interval: Duration::from_micros(args.interval_us),
        reconnect: args.reconnect,
    };
    let report = strategy::run(&args.socket, &plan, SYMBOL, &args.reference)?;
    std::fs::write(&args.out, report_json(&report).to_string())
        .map_err(io(format!("write {}", args.out.display())))
}

fn report_json(r: &StrategyReport) -> serde_json::Value {
    let outcomes: Vec<_> = r
        .outcomes
        .iter()
        .map(|o| {
            serde_json::json!({
                "order_id": o.order_id,
                "kind": o.kind as u8,
                "state": o.state as u8,
                "cum_qty": o.cum_qty,
                "cum_notional": o.cum_notional.to_string(),
                "fills": o.fills,
                "reject": o.reject.map(|r| r as u16),
                "answered": o.answered,
                "fill_qty": o.fill_qty,
                "fill_notional": o.fill_notional.to_string(),
                "final_qty": o.final_qty,
                "final_notional": o.final_notional.map(|n| n.to_string()),
                "messages": o.messages,
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for v in r.round_trip.iter_recorded() {
        for _ in 0..v.count_at_value() {
            latencies.push(v.value_iterated_to());
        }
    }
    serde_json::json!({
        "name": r.name,
        "strategy_id": r.strategy_id,
        "planned": r.planned,
        "gave_up": r.gave_up,
        "price_scale": r.price_scale,
        "qty_scale": r.qty_scale,
        "outcomes": outcomes,
        "latencies_ns": latencies,
        "link": link_json(&r.link),
    })
}

fn link_json(l: &strategy::LinkReport) -> serde_json::Value {
    serde_json::json!({
        "reconnects": l.reconnects,
        "sequenced": l.sequenced,
        "seq_gaps": l.seq_gaps,
        "seq_missing": l.seq_missing,
        "seq_repeats": l.seq_repeats,
        "seq_early": l.seq_early,
        "epochs": l.epochs,
        "resent_orders": l.resent_orders,
        "resent_cancels": l.resent_cancels,
    })
}

fn read_link(v: &serde_json::Value) -> Option<strategy::LinkReport> {
    let n = |k: &str| v[k].as_u64();
    Some(strategy::LinkReport {
        reconnects: u32::try_from(n("reconnects")?).ok()?,
        sequenced: n("sequenced")?,
        seq_gaps: n("seq_gaps")?,
        seq_missing: n("seq_missing")?,
        seq_repeats: n("seq_repeats")?,
        seq_early: n("seq_early")?,
        epochs: v["epochs"]
            .as_array()?
            .iter()
            .map(|e| e.as_u64().and_then(|e| u32::try_from(e).ok()))
            .collect::<Option<_>>()?,
        resent_orders: n("resent_orders")?,
        resent_cancels: n("resent_cancels")?,
    })
}

fn read_report(path: &Path) -> Result<StrategyReport, DemoError> {
    let text = std::fs::read_to_string(path).map_err(io(format!("read {}", path.display())))?;
    let bad = |why: &str| DemoError::Setup(format!("{}: {why}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let mut round_trip = floor::new_histogram();
    for l in v["latencies_ns"]
        .as_array()
        .ok_or_else(|| bad("no latencies"))?
    {
        round_trip.saturating_record(l.as_u64().unwrap_or(1));
    }
    let wide = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<i128>().ok());
    let mut outcomes = Vec::new();
    for o in v["outcomes"].as_array().ok_or_else(|| bad("no outcomes"))? {
        let field = |k: &str| o[k].as_u64().ok_or_else(|| bad(&format!("outcome.{k}")));
        let int = |k: &str| o[k].as_i64().ok_or_else(|| bad(&format!("outcome.{k}")));
        let int128 = |k: &str| wide(&o[k]).ok_or_else(|| bad(&format!("outcome.{k}")));
        outcomes.push(Outcome {
            order_id: field("order_id")?,
            kind: Kind::from_u8(field("kind")? as u8).ok_or_else(|| bad("kind"))?,
            state: OrderState::from_u8(field("state")? as u8).ok_or_else(|| bad("state"))?,
            cum_qty: int("cum_qty")?,
            cum_notional: int128("cum_notional")?,
            fills: field("fills")? as u32,
            reject: o["reject"]
                .as_u64()
                .and_then(|r| Reason::from_u16(r as u16)),
            answered: o["answered"].as_bool().ok_or_else(|| bad("answered"))?,
            fill_qty: int("fill_qty")?,
            fill_notional: int128("fill_notional")?,
            final_qty: o["final_qty"].as_i64(),
            final_notional: wide(&o["final_notional"]),
            messages: o["messages"]
                .as_array()
                .ok_or_else(|| bad("messages"))?
                .iter()
                .map(|m| m.as_str().unwrap_or("").to_owned())
                .collect(),
        });
    }
    Ok(StrategyReport {
        name: v["name"].as_str().ok_or_else(|| bad("name"))?.to_owned(),
        strategy_id: v["strategy_id"]
            .as_u64()
            .ok_or_else(|| bad("strategy_id"))? as u32,
        planned: v["planned"].as_u64().ok_or_else(|| bad("planned"))? as usize,
        gave_up: v["gave_up"].as_str().map(str::to_owned),
        price_scale: v["price_scale"]
            .as_u64()
            .ok_or_else(|| bad("price_scale"))? as u8,
        qty_scale: v["qty_scale"].as_u64().ok_or_else(|| bad("qty_scale"))? as u8,
        outcomes,
        round_trip,
        link: read_link(&v["link"]).ok_or_else(|| bad("link"))?,
    })
}

fn is_gateway_reject(r: Option<Reason>) -> bool {
    r.is_some_and(|r| (100..200).contains(&(r as u16)))
}

/// Asks the simulator, over its REST API, for every order the strategy
/// sent, and lists every difference from what the sidecar reported.
fn check_ledger(
    rest: &mut rest::Rest,
    report: &StrategyReport,
    ns: Namespace,
) -> Result<Vec<String>, DemoError> {
    let mut mismatches = Vec::new();
    let notional_scale = report.price_scale + report.qty_scale;
    for o in &report.outcomes {
        let id = ClientId::order(
            ns,
            OrderKey {
                strategy: report.strategy_id,
                order_id: o.order_id,
            },
        )
        .encode();
        let r = rest.get_signed(
            "/api/v3/order",
            &format!("symbol={SYMBOL}&origClientOrderId={id}"),
            now_ms(),
        )?;
        let who = if report.name == STRATEGY_NAME {
            String::new()
        } else {
            format!("{} ", report.name)
        };
        let mut differ =
            |what: String| mismatches.push(format!("{who}order {} ({id}): {what}", o.order_id));
        if o.state == OrderState::Rejected {
            // Refused orders never reach the venue's books: the gateway's
            // never left the sidecar, the venue's were refused at the door.
            if r.status == 200 {
                differ(format!(
                    "rejected ({:?}) but the venue has it as {}",
                    o.reject, r.body["status"]
                ));
            }
            continue;
        }
        if r.status != 200 {
            differ(format!("{:?} here, but the venue says {}", o.state, r.body));
            continue;
        }
        let venue_state = match r.body["status"].as_str().unwrap_or("") {
            "NEW" => OrderState::New,
            "PARTIALLY_FILLED" => OrderState::PartiallyFilled,
            "FILLED" => OrderState::Filled,
            "CANCELED" => OrderState::Canceled,
            "EXPIRED" | "EXPIRED_IN_MATCH" => OrderState::Expired,
            "REJECTED" => OrderState::Rejected,
            _ => OrderState::Unknown,
        };
        if venue_state != o.state {
            differ(format!(
                "state {:?} here, {:?} at the venue",
                o.state, venue_state
            ));
        }
        let executed = r.body["executedQty"]
            .as_str()
            .and_then(|s| WideDecimal::parse(s).ok());
        if executed.and_then(|e| e.to_fixed(report.qty_scale)) != Some(o.cum_qty) {
            differ(format!(
                "executed qty {} here, {} at the venue",
                o.cum_qty, r.body["executedQty"]
            ));
        }
        let quote = r.body["cummulativeQuoteQty"]
            .as_str()
            .and_then(|s| WideDecimal::parse(s).ok())
            .map(WideDecimal::normalized);
        let ours = WideDecimal::new(o.cum_notional, notional_scale).normalized();
        if quote != Some(ours) {
            differ(format!(
                "quote qty {ours} here, {} at the venue",
                r.body["cummulativeQuoteQty"]
            ));
        }
    }
    Ok(mismatches)
}

fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

fn percentiles(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:>9}  p90 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.90)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
    )
}

/// Prints the summary; returns the categories that did not occur.
fn print_summary(
    reports: &[StrategyReport],
    unix: &Histogram<u64>,
    ws: &Histogram<u64>,
    mode: &str,
    faulted: bool,
    took: Duration,
) -> Vec<String> {
    let outcomes: Vec<&Outcome> = reports.iter().flat_map(|r| &r.outcomes).collect();
    let mut round_trip = floor::new_histogram();
    for r in reports {
        // Same bounds on both sides: adding cannot fail.
        let _ = round_trip.add(&r.round_trip);
    }
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let n = outcomes.len();
    println!(
        "ordergate demo: {n} orders on {SYMBOL}, {mode}, {:.1} s",
        took.as_secs_f64()
    );
    if reports.len() > 1 {
        let each: Vec<String> = reports
            .iter()
            .map(|r| format!("{} (id {}) {}", r.name, r.strategy_id, r.outcomes.len()))
            .collect();
        println!("strategies:       {}", each.join(", "));
    }
    println!("final states:");
    for s in [
        OrderState::Filled,
        OrderState::PartiallyFilled,
        OrderState::New,
        OrderState::Canceled,
        OrderState::Expired,
        OrderState::Rejected,
        OrderState::Unknown,
    ] {
        let c = count(&|o| o.state == s);
        if c > 0 {
            println!("  {:<16} {c}", format!("{s:?}"));
        }
    }
    let partial = count(&|o| o.fills > 1 || (o.fills > 0 && o.state != OrderState::Filled));
    let fills: u32 = outcomes.iter().map(|o| o.fills).sum();
    let canceled = count(&|o| o.state == OrderState::Canceled);
    let canceled_partial = count(&|o| o.state == OrderState::Canceled && o.cum_qty > 0);
    let gw = count(&|o| o.state == OrderState::Rejected && is_gateway_reject(o.reject));
    let venue = count(&|o| o.state == OrderState::Rejected && !is_gateway_reject(o.reject));
    let expired = count(&|o| o.state == OrderState::Expired);
    println!("fills:            {fills} in total; {partial} orders filled in parts");
    println!("cancels:          {canceled} ({canceled_partial} after partial fills)");
    println!(
        "rejects:          {gw} by the gateway (bad tick), {venue} by the venue (min notional)"
    );
    if faulted {
        let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
        for o in outcomes.iter().filter(|o| o.state == OrderState::Rejected) {
            *by_reason.entry(format!("{:?}", o.reject)).or_default() += 1;
        }
        let list: Vec<String> = by_reason.iter().map(|(r, c)| format!("{c} {r}")).collect();
        println!("rejects by reason: {}", list.join(", "));
    }
    println!("expiries:         {expired} (IOC remainders, MARKET orders out of liquidity)");
    if faulted {
        let told = |what: &str| {
            count(&|o| {
                o.messages
                    .iter()
                    .any(|m| m.split_once(' ').is_some_and(|(_, t)| t.starts_with(what)))
            })
        };
        println!(
            "under faults:     {} orders reported Unknown at some point, {} had a CancelRejected, {} never answered",
            told("OrderStatus Unknown"),
            told("CancelRejected"),
            count(&|o| !o.answered)
        );
    }
    if faulted {
        println!(
            "order round trip, NewOrder sent -> first answer ({} orders, up to {} in flight per strategy):",
            round_trip.len(),
            strategy::WINDOW
        );
    } else {
        println!(
            "order round trip, NewOrder sent -> first answer ({} orders):",
            round_trip.len()
        );
    }
    println!("  ordergate       {}", percentiles(&round_trip));
    println!("floor, same run ({} round trips each):", unix.len());
    println!("  unix echo       {}", percentiles(unix));
    println!("  websocket echo  {}", percentiles(ws));
    let floor = unix.value_at_quantile(0.5) + ws.value_at_quantile(0.5);
    let ours = round_trip.value_at_quantile(0.5);
    println!(
        "  ratio           p50 round trip / (unix + websocket echo p50) = {:.2}x",
        ours as f64 / floor.max(1) as f64
    );
    let mut missing = Vec::new();
    for (name, c) in [
        ("partial fills", partial),
        ("cancels", canceled),
        ("gateway rejects", gw),
        ("venue rejects", venue),
        ("expiries", expired),
    ] {
        if c == 0 {
            missing.push(name.to_owned());
        }
    }
    missing
}

/// The sidecar's installation and run, as its state directory says.
fn read_namespace(state_dir: &Path) -> Result<Namespace, DemoError> {
    let read = |name: &str| {
        std::fs::read_to_string(state_dir.join(name))
            .map(|s| s.trim().to_owned())
            .map_err(io("read the sidecar's state directory"))
    };
    let epoch: u32 = read("epoch")?
        .parse()
        .map_err(|_| DemoError::Setup("the sidecar's epoch file is not a number".into()))?;
    let installation = Namespace::parse_installation(&read("installation")?)
        .ok_or_else(|| DemoError::Setup("the sidecar's installation file is corrupt".into()))?;
    Ok(Namespace::new(installation, epoch))
}
