//! Binance Spot over its WebSocket API (and REST beside it).

mod adapter;
pub mod exec;
pub mod parse;
mod requests;
pub mod retry;
pub mod sign;

pub use adapter::{
    method_cost, reason_for, redact_key, rest_cost, BinanceSpot, BinanceSpotConfig, BinanceStats,
    Phase, BACKEND_TIMEOUT_MS, CLOCK_SYNC_INTERVAL_NS, FILL_MEMORY, RECONCILE_INTERVAL_NS,
    REQUEST_DEADLINE_NS, REST, ROLLOVER_NS, WS,
};
