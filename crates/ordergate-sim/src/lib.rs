//! The built-in exchange simulator (`ordergate sim`).
//!
//! Only Binance Spot for now ([`binance`]). It shares no code with the
//! product: signatures and decimals are checked with the simulator's own
//! implementations, so a misreading of the docs cannot pass both sides.

pub mod binance;
