//! The crash-safety journal: its storage layer.
//!
//! An append-only, checksummed, segmented log of records, each a `seq`
//! (strictly increasing across the whole journal), a `kind` byte and an
//! opaque payload. [`record`] frames one record as bytes; [`segment`] holds
//! the [`Journal`] writer over a directory of segment files, its
//! durability policies and recovery on open, and the [`Reader`] that
//! replays every record in order.
//!
//! What is journaled (strategy commands, venue requests, venue events,
//! reports) and adopting orders at restart are not wired in yet: this layer
//! knows nothing of what the payloads mean.

pub mod record;
pub mod segment;

pub use record::{decode, encode_into, Damage, Decoded, Record, RecordRef, MAX_RECORD};
pub use segment::{
    replay, segment_file_name, Durability, Journal, JournalConfig, JournalError, Reader, Recovery,
    TornTail, Why,
};
