//! ordergate: a low-latency order execution sidecar.
//!
//! This package holds the binary and the I/O drivers around the sans-IO
//! cores of `ordergate-core`: the Unix-socket front end, the venue session
//! driver, the app wiring, the state directory, secrets and TLS. See
//! `docs/ARCHITECTURE.md` for how the parts fit together and
//! `docs/PROTOCOL.md` for the strategy wire protocol.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub use ordergate_core::{
    clock, decimal, desk, doorbell, ids, instrument, lifecycle, limiter, model, ring, venue,
};
pub use ordergate_proto::{client, codec as protocol};
pub use ordergate_sim as sim;

pub mod affinity;
pub mod app;
pub mod asyncfd;
pub mod config;
pub mod demo;
pub mod frontend;
pub mod journal;
pub mod logging;
pub mod secret;
pub mod session;
pub mod sim_cli;
pub mod state;
pub mod tls;
