//! `ordergate sim`: the command-line face of the built-in simulator
//! (`ordergate-sim`).
//!
//! Only Binance Spot for now ((`ordergate_sim::binance`)). [`run_cli`] is what the
//! `ordergate sim` subcommand calls.
//!
//! Faults on purpose: `--faults SPEC` turns them on (`all`, `none`, or a
//! comma-separated list of `kind` or `kind:per_mille`, e.g.
//! `--faults drop:20,clock`; the kinds are `disconnect`,
//! `disconnect-after-accept`, `delay`, `drop`, `unknown-accepted`,
//! `unknown-rejected`, `busy`, `duplicate`, `fill-before-ack`,
//! `stream-loss`, `max-age`, `clock`, `shutdown`; what each does and its
//! default rate: `ordergate_sim::binance::faults`), and `--fault-seed N`
//! picks their draws: the same seed replays the same faults for clients
//! that behave the same way. A spec that cannot be read is refused with
//! the part that is wrong.

use std::net::SocketAddr;

use std::time::Duration;

use ordergate_sim::binance::{
    FaultSpec, FaultSpecError, FillModel, RateLimits, SimConfig, SimError, Simulator, DEMO_API_KEY,
    DEMO_API_SECRET,
};

/// Arguments of `ordergate sim`.
///
/// Without `--api-key`, the demo account is served: key
/// [`DEMO_API_KEY`], secret [`DEMO_API_SECRET`] (test-only values).
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Which venue to simulate (only `binance-spot`).
    #[arg(long, default_value = "binance-spot")]
    pub venue: String,
    /// Address for REST and the WebSocket API (`/ws-api/v3`).
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub listen: SocketAddr,
    /// Seed of the fill model: the same seed replays the same fills.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Chance, in per mille, that an order finds only part of its liquidity.
    #[arg(long, default_value_t = 250)]
    pub partial_per_mille: u16,
    /// API key of the simulated account (default: the demo key).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Environment variable holding the account's HMAC secret (required
    /// with `--api-key`).
    #[arg(long)]
    pub api_secret_env: Option<String>,
    /// Offset of the simulated server clock, in milliseconds.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset_ms: i64,
    /// REQUEST_WEIGHT limit per minute, per IP (Binance: 6000).
    #[arg(long, default_value_t = RateLimits::default().weight_per_minute)]
    pub weight_per_minute: u64,
    /// ORDERS limit per 10 seconds, per account (Binance: 50).
    #[arg(long = "orders-per-10s", default_value_t = RateLimits::default().orders_per_10s)]
    pub orders_per_10s: u64,
    /// ORDERS limit per day, per account (Binance: 160000).
    #[arg(long, default_value_t = RateLimits::default().orders_per_day)]
    pub orders_per_day: u64,
    /// RAW_REQUESTS limit per 5 minutes, per IP (Binance: 61000).
    #[arg(long = "raw-per-5m", default_value_t = RateLimits::default().raw_per_5m)]
    pub raw_per_5m: u64,
    /// WebSocket connection attempts per 5 minutes, per IP (Binance: 300).
    #[arg(long = "connections-per-5m", default_value_t = RateLimits::default().connections_per_5m)]
    pub connections_per_5m: u64,
    /// Length of the IP ban for requests sent during a 429 back-off, in
    /// seconds (Binance: from 2 minutes to 3 days).
    #[arg(long, default_value_t = RateLimits::default().ban.as_secs())]
    pub ban_secs: u64,
    /// Faults on purpose: `all`, `none`, or comma-separated `kind` or
    /// `kind:per_mille` (e.g. `drop:20,clock`). Kinds: disconnect,
    /// disconnect-after-accept, delay, drop, unknown-accepted,
    /// unknown-rejected, busy, duplicate, fill-before-ack, stream-loss,
    /// max-age, clock, shutdown.
    #[arg(long, value_name = "SPEC", default_value = "none", value_parser = parse_faults)]
    pub faults: FaultSpec,
    /// Seed of the fault draws: the same seed replays the same faults.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub fault_seed: u64,
}

/// `--faults`: the spec, or the error naming its bad part.
fn parse_faults(s: &str) -> Result<FaultSpec, FaultSpecError> {
    FaultSpec::parse(s)
}

impl SimArgs {
    /// The rate limits these arguments ask for.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits {
            weight_per_minute: self.weight_per_minute,
            orders_per_10s: self.orders_per_10s,
            orders_per_day: self.orders_per_day,
            raw_per_5m: self.raw_per_5m,
            connections_per_5m: self.connections_per_5m,
            ban: Duration::from_secs(self.ban_secs),
        }
    }
}

/// Why `ordergate sim` could not run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("unsupported venue {0:?} (supported: binance-spot)")]
    Venue(String),
    #[error("--api-key needs --api-secret-env naming a variable that holds the secret")]
    MissingSecretEnv,
    #[error("environment variable {0} (from --api-secret-env) is not set")]
    SecretNotSet(String),
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// Runs the simulator in the foreground until the process is stopped.
pub fn run_cli(args: SimArgs) -> Result<(), CliError> {
    if args.venue != "binance-spot" {
        return Err(CliError::Venue(args.venue));
    }
    let account = match (&args.api_key, &args.api_secret_env) {
        (None, None) => (DEMO_API_KEY.to_owned(), DEMO_API_SECRET.to_owned()),
        (Some(_), None) => return Err(CliError::MissingSecretEnv),
        (key, Some(var)) => {
            let secret = std::env::var(var).map_err(|_| CliError::SecretNotSet(var.clone()))?;
            (
                key.clone().unwrap_or_else(|| DEMO_API_KEY.to_owned()),
                secret,
            )
        }
    };
    let config = SimConfig {
        accounts: vec![account.clone()],
        fill: FillModel {
            seed: args.seed,
            taker_partial_per_mille: args.partial_per_mille.min(1000),
            maker_partial_per_mille: args.partial_per_mille.min(1000),
            ..FillModel::default()
        },
        clock_offset_ms: args.clock_offset_ms,
        limits: args.rate_limits(),
        faults: args.faults.clone(),
        fault_seed: args.fault_seed,
        ..SimConfig::default()
    };
    let handle = Simulator::start(config, args.listen)?;
    println!("ordergate sim: binance-spot on {}", handle.addr());
    println!("  WebSocket API: {}", handle.ws_url());
    println!("  REST:          {}", handle.rest_url());
    println!("  api key:       {}", account.0);
    if !args.faults.is_empty() {
        println!(
            "  faults:        {} (seed {})",
            args.faults, args.fault_seed
        );
    }
    handle.wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn args(extra: &[&str]) -> SimArgs {
        let mut argv = vec!["sim"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).sim
    }

    #[test]
    fn defaults_and_refusals() {
        let a = args(&[]);
        assert_eq!(a.venue, "binance-spot");
        assert_eq!(a.listen.to_string(), "127.0.0.1:9443");
        assert_eq!(args(&["--clock-offset-ms", "-1500"]).clock_offset_ms, -1500);
        assert_eq!(a.rate_limits(), RateLimits::default());
        assert!(a.faults.is_empty());
        assert_eq!(a.fault_seed, 1);
        let small = args(&[
            "--weight-per-minute",
            "100",
            "--orders-per-10s",
            "5",
            "--orders-per-day",
            "70",
            "--raw-per-5m",
            "900",
            "--connections-per-5m",
            "3",
            "--ban-secs",
            "30",
        ]);
        assert_eq!(
            small.rate_limits(),
            RateLimits {
                weight_per_minute: 100,
                orders_per_10s: 5,
                orders_per_day: 70,
                raw_per_5m: 900,
                connections_per_5m: 3,
                ban: Duration::from_secs(30),
            }
        );
        assert!(matches!(
            run_cli(args(&["--venue", "bybit-spot"])),
            Err(CliError::Venue(_))
        ));
        assert!(matches!(
            run_cli(args(&["--api-key", "k"])),
            Err(CliError::MissingSecretEnv)
        ));
        assert!(matches!(
            run_cli(args(&[
                "--api-key",
                "k",
                "--api-secret-env",
                "ORDERGATE_SIM_TEST_UNSET_VAR"
            ])),
            Err(CliError::SecretNotSet(_))
        ));
    }

    #[test]
    fn faults_and_their_seed() {
        use ordergate_sim::binance::FaultKind;
        let a = args(&["--faults", "drop:20,clock", "--fault-seed", "9"]);
        assert_eq!(a.faults.kinds(), [FaultKind::Drop, FaultKind::Clock]);
        assert_eq!(a.faults.rate(FaultKind::Drop), Some(20));
        assert_eq!(a.fault_seed, 9);
        assert_eq!(args(&["--faults", "all"]).faults, FaultSpec::all());
        assert!(args(&["--faults", "none"]).faults.is_empty());
        for (spec, bad) in [
            ("drop,flood", "\"flood\""),
            ("delay:often", "\"delay:often\""),
        ] {
            let e = match Cli::try_parse_from(["sim", "--faults", spec]) {
                Ok(_) => panic!("{spec} accepted"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains("--faults") && e.contains(bad), "{e}");
        }
        assert!(Cli::try_parse_from(["sim", "--fault-seed", "x"]).is_err());
    }
}
