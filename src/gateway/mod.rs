//! The strategy-facing front end: a sans-IO [`Core`] (sessions, order
//! checks, sequencing, routing of lifecycle output) and a mio [`Driver`]
//! that owns the Unix listener and the strategy sockets.
//!
//! Rings stay out of this module: the gateway hands commands to a
//! [`CommandSink`] and takes venue events from an [`EventSource`], so the
//! app decides how they travel (rings and doorbells in production, a `Vec`
//! in tests).

mod core;
mod driver;

pub use self::core::{ConnId, Core, Effect};
pub use self::driver::Driver;

use crate::ids::StrategyId;
use crate::instrument::Instrument;
use crate::venue::{Command, Lane, Report};

/// A strategy the sidecar accepts, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyConfig {
    pub id: StrategyId,
    /// What the strategy says in its Hello.
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// This run's sidecar epoch (see [`crate::ids`]).
    pub epoch: u32,
    pub strategies: Vec<StrategyConfig>,
    pub instruments: Vec<Instrument>,
    /// Sequenced messages kept per strategy for ResendFrom.
    pub resend_capacity: usize,
    /// Bytes a connection may have waiting to be written before it is
    /// dropped as a slow consumer.
    pub max_outbound_bytes: usize,
}

/// A config the gateway cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayConfigError {
    #[error("strategy id {0} is configured twice")]
    DuplicateStrategyId(StrategyId),
    #[error("strategy name {0:?} is configured twice")]
    DuplicateStrategyName(String),
    #[error("instrument id {0} is configured twice")]
    DuplicateInstrument(u32),
    #[error("resend_capacity must be at least 1")]
    NoResendBuffer,
    #[error("max_outbound_bytes must hold at least one frame ({0} bytes)")]
    OutboundTooSmall(usize),
}

/// Where validated commands go: one queue per (strategy, lane).
pub trait CommandSink {
    /// Queue `cmd`; give it back when that queue is full.
    fn push(&mut self, strategy: StrategyId, lane: Lane, cmd: Command) -> Result<(), Command>;
    /// A strategy completed its Hello: create or register its queues.
    fn on_strategy_connected(&mut self, _strategy: StrategyId) {}
    /// A strategy's connection is gone (its orders stay live).
    fn on_strategy_disconnected(&mut self, _strategy: StrategyId) {}
}

/// Where venue events come from (the session→gateway rings).
pub trait EventSource {
    /// Move every event available now into `out`.
    fn drain(&mut self, out: &mut Vec<Report>);
}
