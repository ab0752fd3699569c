//! The Unix-socket front end: strategies speak `docs/PROTOCOL.md` to it.
//!
//! [`FrontEnd`] is the sans-IO protocol core (Hello, framing, sequencing,
//! outbound buffers); [`Driver`] owns the listener and the sockets. Orders
//! go to the order desk (`ordergate_core::desk`) through the desk's input
//! ring; the desk's notices come back through the front end's own ring.

mod core;
mod driver;

pub use self::core::{
    ConnId, FrontEnd, FrontEndConfig, FrontEndConfigError, FrontEndCounters, SeqRecorder,
    StrategyConfig, HELLO_TIMEOUT_NS,
};
pub use self::driver::{Driver, ACCEPT_BACKOFF};
