//! Binance Spot over its WebSocket API.

mod adapter;
pub mod exec;
pub mod parse;
mod requests;
pub mod sign;

pub use adapter::{
    method_cost, reason_for, BinanceSpot, BinanceSpotConfig, BinanceStats, CLOCK_SYNC_INTERVAL_NS,
    FILL_MEMORY,
};
