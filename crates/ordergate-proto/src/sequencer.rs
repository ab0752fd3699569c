//! Per-strategy sequence numbers and the resend window, kept as encoded
//! frames.
//!
//! Every order-related message a strategy is sent carries the next number
//! of that strategy's sequence, whether or not the strategy is connected,
//! and stays in a window of the last `capacity` frames so `ResendFrom` can
//! replay exactly the bytes first written. Frames are encoded once; a full
//! window reuses the buffer of the frame it drops, so a steady stream
//! allocates nothing. The window is always a run of consecutive numbers
//! ending at `next_seq - 1`, so a replay never skips one.

use std::collections::VecDeque;

use crate::codec::{encode_outbound, Outbound, LEN_PREFIX};

/// Why a replay cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("seq {from} is no longer kept; oldest kept is {oldest}")]
pub struct Evicted {
    pub from: u64,
    pub oldest: u64,
}

/// One strategy's sequence.
#[derive(Debug)]
pub struct Sequencer {
    next_seq: u64,
    capacity: usize,
    /// (seq, encoded frame with its length prefix), oldest first.
    window: VecDeque<(u64, Vec<u8>)>,
}

impl Sequencer {
    /// `capacity` is at least 1 (a zero window is refused by the config).
    pub fn new(capacity: usize) -> Self {
        Sequencer {
            next_seq: 1,
            capacity: capacity.max(1),
            window: VecDeque::with_capacity(capacity.max(1)),
        }
    }

    /// The number the next sequenced message will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Numbers and encodes `msg`, keeps it, and returns the frame.
    pub fn push(&mut self, msg: &Outbound) -> &[u8] {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut buf = if self.window.len() == self.capacity {
            let (_, mut old) = self.window.pop_front().expect("window is full");
            old.clear();
            old
        } else {
            Vec::new()
        };
        encode_outbound(seq, msg, &mut buf);
        self.window.push_back((seq, buf));
        &self.window.back().expect("just pushed").1
    }

    /// How many frames the window holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many frames the window holds.
    pub fn kept(&self) -> usize {
        self.window.len()
    }

    /// The kept frames with their seqs, oldest first (a journal snapshot).
    pub fn window(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.window.iter().map(|(seq, f)| (*seq, f.as_slice()))
    }

    /// Every kept frame from `from` on, oldest first; nothing when `from`
    /// is still to come.
    pub fn replay_from(&self, from: u64) -> Result<impl Iterator<Item = &[u8]> + '_, Evicted> {
        let from = from.max(1);
        let oldest = self.window.front().map_or(self.next_seq, |(s, _)| *s);
        if from < oldest {
            return Err(Evicted { from, oldest });
        }
        // The window is consecutive: `from`'s frame is at `from - oldest`.
        let skip = (from - oldest).min(self.window.len() as u64) as usize;
        Ok(self.window.range(skip..).map(|(_, f)| f.as_slice()))
    }

    /// Continues a sequence a previous run left off (from the journal):
    /// the next push is numbered `next_seq`, and `frames` (seq and encoded
    /// frame with its length prefix, oldest first) become the window, at
    /// most `capacity` newest. Only the consecutive run ending at
    /// `next_seq - 1` is kept: a frame after a hole, or one whose header
    /// does not carry its seq, restarts the run, so a ResendFrom across a
    /// hole is refused instead of served with a gap.
    pub fn restore(&mut self, next_seq: u64, frames: impl IntoIterator<Item = (u64, Vec<u8>)>) {
        self.next_seq = next_seq.max(1);
        self.window.clear();
        for (seq, frame) in frames {
            if seq >= self.next_seq {
                continue;
            }
            let follows = self.window.back().is_none_or(|(last, _)| seq == last + 1);
            if !follows || !carries(&frame, seq) {
                self.window.clear();
            }
            if !carries(&frame, seq) {
                continue;
            }
            if self.window.len() == self.capacity {
                self.window.pop_front();
            }
            self.window.push_back((seq, frame));
        }
        if self
            .window
            .back()
            .is_some_and(|(last, _)| last + 1 != self.next_seq)
        {
            self.window.clear();
        }
    }
}

/// True when `frame` is one whole outbound frame numbered `seq`.
fn carries(frame: &[u8], seq: u64) -> bool {
    let Some((len, body)) = frame.split_first_chunk::<LEN_PREFIX>() else {
        return false;
    };
    u32::from_le_bytes(*len) as usize == body.len()
        && body.get(2..10) == Some(&seq.to_le_bytes()[..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_outbound;

    fn canceled(order_id: u64) -> Outbound {
        Outbound::Canceled {
            order_id,
            cum_qty: 0,
        }
    }

    fn seqs(frames: impl Iterator<Item = impl AsRef<[u8]>>) -> Vec<u64> {
        frames
            .map(|f| decode_outbound(&f.as_ref()[4..]).unwrap().0)
            .collect()
    }

    #[test]
    fn numbers_keeps_and_replays_the_same_bytes() {
        let mut s = Sequencer::new(3);
        let first = s.push(&canceled(1)).to_vec();
        assert_eq!(decode_outbound(&first[4..]).unwrap(), (1, canceled(1)));
        for i in 2..=5 {
            s.push(&canceled(i));
        }
        assert_eq!(s.next_seq(), 6);
        assert_eq!(seqs(s.replay_from(3).unwrap()), vec![3, 4, 5]);
        assert_eq!(seqs(s.replay_from(5).unwrap()), vec![5]);
        assert_eq!(seqs(s.replay_from(6).unwrap()), Vec::<u64>::new());
        assert_eq!(s.replay_from(2).err(), Some(Evicted { from: 2, oldest: 3 }));
        assert_eq!(s.replay_from(0).err(), Some(Evicted { from: 1, oldest: 3 }));
    }

    /// Frames as a previous run's sequencer wrote them.
    fn journal(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Vec<u8>)> {
        seqs.into_iter()
            .map(|seq| {
                let mut f = Vec::new();
                encode_outbound(seq, &canceled(seq * 10), &mut f);
                (seq, f)
            })
            .collect()
    }

    #[test]
    fn restore_continues_with_the_same_bytes() {
        let mut s = Sequencer::new(3);
        let frames = journal(1..=5);
        s.restore(6, frames.clone());
        assert_eq!(s.kept(), 3);
        let replayed: Vec<Vec<u8>> = s.replay_from(3).unwrap().map(<[u8]>::to_vec).collect();
        let expected: Vec<Vec<u8>> = frames[2..].iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(replayed, expected);
        assert_eq!(s.replay_from(2).err(), Some(Evicted { from: 2, oldest: 3 }));
        let next = s.push(&canceled(60)).to_vec();
        assert_eq!(decode_outbound(&next[4..]).unwrap(), (6, canceled(60)));
        assert_eq!(seqs(s.replay_from(4).unwrap()), vec![4, 5, 6]);
    }

    #[test]
    fn restore_keeps_only_the_run_that_ends_at_next_seq() {
        let mut s = Sequencer::new(10);
        // A hole at 3: only 4 and 5 can be replayed.
        s.restore(6, journal([1, 2, 4, 5]));
        assert_eq!(seqs(s.replay_from(4).unwrap()), vec![4, 5]);
        assert_eq!(s.replay_from(3).err(), Some(Evicted { from: 3, oldest: 4 }));
        // A frame whose header says another seq counts as a hole.
        let mut frames = journal(1..=4);
        frames[1].1 = journal([9]).remove(0).1;
        s.restore(5, frames);
        assert_eq!(seqs(s.replay_from(3).unwrap()), vec![3, 4]);
        // The journal's newest frames are missing: nothing can be replayed.
        s.restore(9, journal(1..=4));
        assert_eq!((s.kept(), s.next_seq()), (0, 9));
        assert_eq!(s.replay_from(4).err(), Some(Evicted { from: 4, oldest: 9 }));
        // Frames numbered at or past next_seq are not the window's.
        s.restore(3, journal(1..=4));
        assert_eq!(seqs(s.replay_from(1).unwrap()), vec![1, 2]);
    }
}
