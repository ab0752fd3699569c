//! Binance Spot over its WebSocket API.

pub mod sign;
