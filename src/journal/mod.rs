//! The crash-safety journal: its storage layer.
//!
//! An append-only, checksummed, segmented log of records, each a `seq`
//! (strictly increasing across the whole journal), a `kind` byte and an
//! opaque payload. [`record`] frames one record as bytes; [`segment`] holds
//! the [`Journal`] writer over a directory of segment files, its
//! durability policies and recovery on open, and the [`Reader`] that
//! replays every record in order.
//!
//! [`entry`] says what the payloads mean, [`writer`] is how the gateway
//! thread writes them, and [`restore`] replays them into a fresh desk at
//! start-up.

pub mod entry;
pub mod inspect;
pub mod record;
pub mod restore;
pub mod segment;
pub mod writer;

pub use record::{decode, encode_into, Damage, Decoded, Record, RecordRef, MAX_RECORD};
pub use segment::{
    replay, segment_file_name, Durability, Journal, JournalConfig, JournalError, Reader, Recovery,
    TornTail, Why,
};
