//! Restart: the journal replayed through a fresh desk.
//!
//! Every desk input was journaled before the desk acted on it, and the desk
//! is deterministic, so feeding the same inputs in the same order rebuilds
//! the same order table: states, fills, trade ids, cancels outstanding. The
//! commands the replay produces are dropped (the sessions of those runs sent
//! what they sent; the adapters reconcile the rest with the venue), and so
//! are its notices that `Sent` records show were told (those records
//! rebuild each strategy's sequence and resend window). A notice with no
//! `Sent` record after it — the run died between journaling an input and
//! sequencing what it caused — is returned in [`Restored::unsent`], for
//! the front end to sequence first thing: nothing the desk decided is lost.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use ordergate_core::desk::{CommandSink, Desk, Notice};
use ordergate_core::ids::{StrategyId, VenueId};
use ordergate_core::model::OrderUpdate;
use ordergate_core::venue::{Command, Lane};
use ordergate_proto::codec::{encode_outbound, Outbound};

use super::entry::{Entry, EntryError, SNAPSHOT_KIND};
use super::record::{decode, Decoded};
use super::segment::{list_segments, replay_from, JournalError};

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
    /// Order updates the desk made that no `Sent` record carries, in the
    /// order it made them.
    pub unsent: Vec<Notice>,
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

/// Replays the journal in `dir` into `desk` (new, built from the config)
/// from its newest snapshot on, and returns the strategies' sequences,
/// keeping at most `resend_capacity` frames each. The journal must have
/// been opened (which cuts a torn tail) first.
pub fn restore(
    dir: &Path,
    desk: &mut Desk,
    resend_capacity: usize,
) -> Result<Restored, RestoreError> {
    let from = latest_snapshot(dir)?;
    replay_into(dir, desk, resend_capacity, from)
}

/// Replays every record, passing over snapshots: what [`restore`] must
/// equal (the journal's own consistency check, and its tests').
pub fn restore_full(
    dir: &Path,
    desk: &mut Desk,
    resend_capacity: usize,
) -> Result<Restored, RestoreError> {
    replay_into(dir, desk, resend_capacity, None)
}

/// The first seq of the newest segment that starts with a snapshot.
fn latest_snapshot(dir: &Path) -> Result<Option<u64>, RestoreError> {
    use std::io::Read;
    for (first, path) in list_segments(dir)?.into_iter().rev() {
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::open(&path).map_err(io)?;
        let mut head = [0u8; 4];
        if f.read_exact(&mut head).is_err() {
            continue;
        }
        let len = u32::from_le_bytes(head) as usize;
        let mut bytes = head.to_vec();
        bytes.resize(4 + 4 + len.min(super::MAX_RECORD as usize), 0);
        if f.read_exact(&mut bytes[4..]).is_err() {
            continue;
        }
        if let Decoded::Record { record, .. } = decode(&bytes) {
            if record.kind == SNAPSHOT_KIND && record.seq == first {
                return Ok(Some(first));
            }
        }
    }
    Ok(None)
}

fn replay_into(
    dir: &Path,
    desk: &mut Desk,
    resend_capacity: usize,
    from_snapshot: Option<u64>,
) -> Result<Restored, RestoreError> {
    let mut restored = Restored::default();
    let mut notices = Vec::new();
    // What the desk told each strategy and no `Sent` record has matched
    // yet, oldest first.
    let mut pending: BTreeMap<StrategyId, VecDeque<(u64, OrderUpdate)>> = BTreeMap::new();
    let mut made = 0u64;
    let mut frame_buf = Vec::new();
    for record in replay_from(dir, from_snapshot.unwrap_or(0))? {
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
            Entry::Timer { now_ns } => desk.on_timer(now_ns, &mut Drop, &mut notices),
            Entry::Shutdown { cancel } => desk.begin_shutdown(cancel, &mut Drop, &mut notices),
            Entry::Report(report) => desk.on_report(&report, &mut notices),
            Entry::Sent {
                strategy,
                seq,
                frame,
            } => {
                // The front end's own answers (desk busy) match no notice.
                if let Some(q) = pending.get_mut(&strategy) {
                    if let Some((_, update)) = q.front() {
                        frame_buf.clear();
                        encode_outbound(seq, &Outbound::from(update.clone()), &mut frame_buf);
                        if frame_buf == frame {
                            q.pop_front();
                        }
                    }
                }
                let s = restored.sequences.entry(strategy).or_default();
                s.next_seq = seq + 1;
                if s.frames.len() == resend_capacity.max(1) {
                    s.frames.pop_front();
                }
                s.frames.push_back((seq, frame));
            }
            Entry::Snapshot {
                desk: snap,
                sequences,
            } => {
                if from_snapshot.is_none() {
                    continue;
                }
                desk.restore(snap);
                // Taken with everything delivered: nothing is pending.
                pending.clear();
                restored.sequences = sequences
                    .into_iter()
                    .map(|s| {
                        let skip = s.frames.len().saturating_sub(resend_capacity.max(1));
                        let seq = Sequence {
                            next_seq: s.next_seq,
                            frames: s.frames.into_iter().skip(skip).collect(),
                        };
                        (s.strategy, seq)
                    })
                    .collect();
            }
        }
        for n in notices.drain(..) {
            if let Notice::Order { strategy, update } = n {
                made += 1;
                pending
                    .entry(strategy)
                    .or_default()
                    .push_back((made, update));
            }
        }
    }
    let mut unsent: Vec<(u64, StrategyId, OrderUpdate)> = pending
        .into_iter()
        .flat_map(|(strategy, q)| q.into_iter().map(move |(n, u)| (n, strategy, u)))
        .collect();
    unsent.sort_by_key(|(n, _, _)| *n);
    restored.unsent = unsent
        .into_iter()
        .map(|(_, strategy, update)| Notice::Order { strategy, update })
        .collect();
    Ok(restored)
}
