//! The strategy protocol: the binary codec of `docs/PROTOCOL.md` and a
//! Rust client for it.
//!
//! The codec maps the domain model (`ordergate_core::model`) to frames;
//! another front end (FIX) would map the same model to its own wire.

pub mod client;
pub mod codec;
pub mod sequencer;

/// The domain types the codec carries, re-exported so a client needs only
/// this crate.
pub use ordergate_core::model::{
    flags, Fill, NewOrder, OrdType, OrderState, OrderStatus, Reason, Side, TimeInForce, VenueState,
};
