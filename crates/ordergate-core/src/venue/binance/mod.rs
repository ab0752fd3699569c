//! Binance Spot over its WebSocket API (and REST beside it).

mod adapter;
pub mod exec;
pub mod parse;
mod requests;
pub mod sign;

pub use adapter::{
    method_cost, reason_for, redact_key, rest_cost, BinanceSpot, BinanceSpotConfig, BinanceStats,
    Phase, CLOCK_SYNC_INTERVAL_NS, FILL_MEMORY, REST, WS,
};
