//! ordergate: a low-latency order execution sidecar.
//!
//! See `docs/ARCHITECTURE.md` for how the modules fit together and
//! `docs/PROTOCOL.md` for the strategy wire protocol.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod affinity;
pub mod client;
pub mod clock;
pub mod config;
pub mod decimal;
pub mod doorbell;
pub mod ids;
pub mod instrument;
pub mod lifecycle;
pub mod protocol;
pub mod ring;
pub mod secret;
pub mod state;
mod sync;
pub mod tls;
pub mod venue;

// The I/O edges wait on the doorbell's eventfd, which the `loom` build
// replaces with a model-checked counter: that build holds the cores only.
#[cfg(not(feature = "loom"))]
pub mod app;
#[cfg(not(feature = "loom"))]
pub mod demo;
#[cfg(not(feature = "loom"))]
pub mod gateway;
#[cfg(not(feature = "loom"))]
pub mod session;
#[cfg(not(feature = "loom"))]
pub mod sim;
