//! The `ordergate` command line (the binary's only module; see `main.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ordergate::config::{Config, Layout};
use ordergate::decimal::format_fixed;
use ordergate::instrument::Category;
use ordergate::journal::inspect::{inspect, InspectError, Options};
use ordergate::logging::LogFormat;

#[derive(Parser)]
#[command(
    name = "ordergate",
    version,
    about = "Low-latency order execution sidecar"
)]
struct Cli {
    /// Log lines as text or as JSON (one object per line); `RUST_LOG`
    /// filters them (default `info`, `warn` for the demo).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load and check a config, and print what it configures.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
        /// Also read every API key and secret (checks env vars and file modes).
        #[arg(long)]
        secrets: bool,
    },
    /// Run the sidecar.
    Run {
        /// The TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the built-in exchange simulator.
    Sim(ordergate::sim_cli::SimArgs),
    /// Start the simulator, the sidecar and a demo strategy; send orders of
    /// every kind; check them against the simulator's ledger; report.
    Demo(ordergate::demo::DemoArgs),
    /// The demo's strategy process (started by `demo`).
    #[command(hide = true)]
    DemoStrategy(ordergate::demo::StrategyArgs),
    /// Read the crash-safety journal (offline; never writes it).
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Print every record readably, then a summary of every strategy order.
    Inspect {
        /// A state directory (its `journal/` is read) or a journal directory.
        dir: PathBuf,
        /// Print only the orders summary and the totals.
        #[arg(long)]
        orders_only: bool,
        /// Print records from this seq on (the summary covers them all).
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints a report; its sidecar's logs would bury it.
    let quiet = matches!(cli.command, Command::Demo(_) | Command::DemoStrategy(_));
    // The flood demo draws the venue's 429s and 418s on purpose, and its
    // table counts them: their warnings would only bury it.
    let level = match &cli.command {
        Command::Demo(a) if a.flood => "error",
        _ if quiet => "warn",
        _ => "info",
    };
    ordergate::logging::init(cli.log_format, level);
    let result = match cli.command {
        Command::CheckConfig { file, secrets } => check_config(&file, secrets),
        Command::Run { config } => run(&config),
        Command::Sim(args) => ordergate::sim_cli::run_cli(args).map_err(Into::into),
        Command::Demo(args) => ordergate::demo::run(args).map_err(Into::into),
        Command::DemoStrategy(args) => ordergate::demo::run_strategy(args).map_err(Into::into),
        Command::Journal {
            command:
                JournalCommand::Inspect {
                    dir,
                    orders_only,
                    from,
                },
        } => inspect_journal(&dir, Options { orders_only, from }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the journal to stdout; a closed pipe (`| head`) ends it quietly.
fn inspect_journal(dir: &Path, opts: Options) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = inspect(dir, opts, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Err(InspectError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            // What was read before the error is printed first.
            let _ = out.flush();
            Err(e.into())
        }
        Ok(()) => Ok(()),
    }
}

fn check_config(file: &Path, secrets: bool) -> anyhow::Result<()> {
    let config = Config::load(file)?;
    print_summary(&config);
    if secrets {
        for venue in &config.venues {
            venue.credentials()?;
            println!(
                "  {}: api_key ({}) and api_secret ({}) readable",
                venue.id, venue.api_key.source, venue.api_secret.source
            );
        }
    }
    println!("{}: OK", config.origin);
    Ok(())
}

fn print_summary(c: &Config) {
    println!("state_dir {}", c.state_dir.display());
    println!("socket    {}", c.socket.display());
    match (&c.layout, &c.cores) {
        (Layout::Pinned, Some(cores)) => println!(
            "layout    pinned (gateway on core {}, sessions on cores {:?}), wait {}",
            cores.gateway,
            cores.sessions,
            c.wait.as_str()
        ),
        _ => println!("layout    {}, wait {}", c.layout.as_str(), c.wait.as_str()),
    }
    println!(
        "rings     command {} per strategy per lane, event {} per session",
        c.rings.command_capacity, c.rings.event_capacity
    );
    println!(
        "gateway   max outbound {} bytes, resend {} messages per strategy",
        c.gateway.max_outbound_bytes, c.gateway.resend_capacity
    );
    println!("venues:");
    for v in &c.venues {
        println!("  {}", v.id);
        println!("    ws   {}", v.ws_url);
        println!("    rest {}", v.rest_url);
        println!(
            "    recv_window {} ms, api_key from {}, api_secret from {}, CA {}",
            v.recv_window_ms,
            v.api_key.source,
            v.api_secret.source,
            v.ca_file
                .as_ref()
                .map_or("webpki roots".to_owned(), |p| p.display().to_string())
        );
    }
    println!("strategies:");
    for s in &c.strategies {
        println!("  {} {}", s.id, s.name);
    }
    println!("instruments:");
    for i in &c.instruments {
        println!(
            "  {} {} {} {}: tick {} (price scale {}), lot {} (qty scale {}), min_qty {}, min_notional {}",
            i.id,
            i.venue,
            i.symbol,
            match i.category {
                Category::Spot => "spot",
                Category::LinearPerp => "linear",
            },
            i.format_price(i.tick),
            i.price_scale,
            i.format_qty(i.lot),
            i.qty_scale,
            i.format_qty(i.min_qty),
            format_fixed(i.min_notional, i.price_scale + i.qty_scale),
        );
    }
}

fn run(file: &Path) -> anyhow::Result<()> {
    let config = Config::load(file)?;
    ordergate::tls::install_crypto_provider()?;
    let state = ordergate::app::open_state(&config)?;
    tracing::info!(
        state = %state.path().display(),
        epoch = state.epoch().unwrap_or(0),
        "state directory locked; new epoch"
    );
    ordergate::app::run(config, state)?;
    Ok(())
}
