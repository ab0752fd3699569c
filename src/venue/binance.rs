//! Binance Spot over its WebSocket API (filled in by the venue work).
