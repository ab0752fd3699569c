//! ordergate: a low-latency order execution sidecar.
//!
//! See `docs/ARCHITECTURE.md` for how the modules fit together and
//! `docs/PROTOCOL.md` for the strategy wire protocol.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod decimal;
pub mod ids;
pub mod instrument;
pub mod protocol;
pub mod sim;
pub mod venue;
