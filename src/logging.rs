//! Operator logs: `tracing` events to stderr, filtered by `RUST_LOG`
//! (`info` by default for the sidecar), as text or as one JSON object per
//! line (`--log-format json`).
//!
//! What is logged where: venue sessions log connects, disconnects,
//! reconnects with their back-off and every venue state change; the front
//! end logs strategy connections, protocol errors and slow consumers; the
//! desk logs every reject with its reason and every invalid lifecycle
//! transition; a counters line comes every [`COUNTERS_EVERY`]. Per-order
//! events are at `debug`, so nothing is formatted for them at the default
//! level. Secrets never reach a log: they are `Secret`s, whose `Debug`
//! and `Display` print `[redacted]`.

use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// How often the sidecar logs its counters.
pub const COUNTERS_EVERY: Duration = Duration::from_secs(30);

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the subscriber for this process. `default` is the filter used
/// when `RUST_LOG` is not set. A second call (tests, the in-process demo)
/// keeps the first subscriber.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
