//! Restart: the journal replayed through a fresh desk.
//!
//! Every desk input was journaled before the desk acted on it, and the desk
//! is deterministic, so feeding the same inputs in the same order rebuilds
//! the same order table: states, fills, trade ids, cancels outstanding. The
//! commands the replay produces are dropped (the sessions of those runs sent
//! what they sent; the adapters reconcile the rest with the venue), and so
//! are its notices (what strategies were told is in the `Sent` records,
//! which rebuild each strategy's sequence and resend window instead).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use ordergate_core::desk::{CommandSink, Desk};
use ordergate_core::ids::{StrategyId, VenueId};
use ordergate_core::venue::{Command, Lane};

use super::entry::{Entry, EntryError};
use super::segment::{replay, JournalError};

/// One strategy's sequence as the journal left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sequence {
    /// The seq the next sequenced message gets.
    pub next_seq: u64,
    /// The newest frames (at most the resend capacity), oldest first.
    pub frames: VecDeque<(u64, Vec<u8>)>,
}

/// What a replay rebuilt, besides the desk.
#[derive(Debug, Default)]
pub struct Restored {
    pub records: u64,
    /// Runs the journal holds (start markers).
    pub runs: u64,
    pub sequences: BTreeMap<StrategyId, Sequence>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("journal {dir}, record {seq}: {source}")]
    Entry {
        dir: PathBuf,
        seq: u64,
        source: EntryError,
    },
}

/// A sink that takes everything: the replayed desk's commands were handled
/// by the run that made them.
struct Drop;

impl CommandSink for Drop {
    fn push(&mut self, _: VenueId, _: StrategyId, _: Lane, _: Command) -> Result<(), Command> {
        Ok(())
    }
}

/// Replays every record of the journal in `dir` into `desk` (new, built
/// from the config) and returns the strategies' sequences, keeping at
/// most `resend_capacity` frames each. The journal must have been opened
/// (which cuts a torn tail) first.
pub fn restore(
    dir: &Path,
    desk: &mut Desk,
    resend_capacity: usize,
) -> Result<Restored, RestoreError> {
    let mut restored = Restored::default();
    let mut notices = Vec::new();
    for record in replay(dir)? {
        let record = record?;
        let entry =
            Entry::decode(record.kind, &record.payload).map_err(|source| RestoreError::Entry {
                dir: dir.to_owned(),
                seq: record.seq,
                source,
            })?;
        restored.records += 1;
        match entry {
            Entry::Start { namespace } => {
                restored.runs += 1;
                desk.begin_run(namespace);
            }
            Entry::Command { now_ns, input } => {
                desk.on_request(input, now_ns, &mut Drop, &mut notices)
            }
            Entry::Refused(cmd) => desk.refused(&cmd, &mut notices),
            Entry::Report(report) => desk.on_report(&report, &mut notices),
            Entry::Sent {
                strategy,
                seq,
                frame,
            } => {
                let s = restored.sequences.entry(strategy).or_default();
                s.next_seq = seq + 1;
                if s.frames.len() == resend_capacity.max(1) {
                    s.frames.pop_front();
                }
                s.frames.push_back((seq, frame));
            }
        }
        notices.clear();
    }
    Ok(restored)
}
