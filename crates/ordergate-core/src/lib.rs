//! ordergate's sans-IO cores.
//!
//! Everything here is deterministic logic over plain data: no sockets, no
//! async runtime, no TLS. Time is an argument (`now`), never read inside a
//! core. The drivers in the `ordergate` package own the I/O around these
//! cores; `docs/ARCHITECTURE.md` shows how they fit.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod clock;
pub mod decimal;
pub mod desk;
pub mod doorbell;
pub mod ids;
pub mod instrument;
pub mod lifecycle;
pub mod limiter;
pub mod model;
pub mod ring;
mod sync;
pub mod venue;
