//! What the journal holds: one [`Entry`] per record, its payload in
//! postcard (compact serde), its kind byte the entry's tag (so a reader
//! can skip what it does not want without decoding it).
//!
//! The gateway thread (desk and front end) is the only writer. Inputs are
//! journaled before the desk acts on them, so a replay through a fresh desk
//! rebuilds every order exactly: a `Command` record is on disk before its
//! order can reach a session's ring, let alone the wire.

use ordergate_core::desk::DeskInput;
use ordergate_core::desk::DeskSnapshot;
use ordergate_core::ids::{Namespace, StrategyId};
use ordergate_core::venue::{Command, Report};
use serde::{Deserialize, Serialize};

/// One journal record's meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A run starts: new orders get this namespace, every venue is Down.
    Start { namespace: Namespace },
    /// A strategy's request, as the desk got it, before the desk acted.
    Command { now_ns: u64, input: DeskInput },
    /// A command the desk could not queue to its session (ring full):
    /// the desk answered it `QueueFull`.
    Refused(Command),
    /// A venue session's report, before the desk applied it.
    Report(Report),
    /// A sequenced message to a strategy, as the exact frame the front end
    /// keeps for ResendFrom, before any connection can see it.
    Sent {
        strategy: StrategyId,
        seq: u64,
        frame: Vec<u8>,
    },
    /// Everything the records before it built: the order table and every
    /// strategy's sequence. Written as the first record of a new segment,
    /// so a restart replays from the newest such segment on.
    Snapshot {
        desk: DeskSnapshot,
        sequences: Vec<SeqSnapshot>,
    },
    /// The desk's timers ran at `now_ns` (`cancel_on_disconnect`).
    Timer { now_ns: u64 },
    /// A shutdown began: no new orders; with `cancel`, every open order
    /// is cancelled.
    Shutdown { cancel: bool },
}

/// One strategy's sequence in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqSnapshot {
    pub strategy: StrategyId,
    pub next_seq: u64,
    /// (seq, frame), oldest first.
    pub frames: Vec<(u64, Vec<u8>)>,
}

/// The record kind of a snapshot.
pub const SNAPSHOT_KIND: u8 = 6;

impl Entry {
    /// The record's kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Entry::Start { .. } => 1,
            Entry::Command { .. } => 2,
            Entry::Refused(_) => 3,
            Entry::Report(_) => 4,
            Entry::Sent { .. } => 5,
            Entry::Snapshot { .. } => SNAPSHOT_KIND,
            Entry::Timer { .. } => 7,
            Entry::Shutdown { .. } => 8,
        }
    }

    /// The payload bytes, appended to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail, and every type here serializes.
        let bytes = postcard::to_extend(self, std::mem::take(out))
            .expect("journal entries always serialize");
        *out = bytes;
    }

    /// Decodes a record's payload; the kind byte must match its tag.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Entry, EntryError> {
        let entry: Entry = postcard::from_bytes(payload).map_err(|e| EntryError::Payload {
            kind,
            why: e.to_string(),
        })?;
        if entry.kind() != kind {
            return Err(EntryError::KindMismatch {
                kind,
                tag: entry.kind(),
            });
        }
        Ok(entry)
    }
}

/// A record whose payload is not an entry this build understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("record of kind {kind}: payload does not decode ({why})")]
    Payload { kind: u8, why: String },
    #[error("record of kind {kind} holds an entry of kind {tag}")]
    KindMismatch { kind: u8, tag: u8 },
}
