//! Per-strategy sequence numbers and the resend window, kept as encoded
//! frames.
//!
//! Every order-related message a strategy is sent carries the next number
//! of that strategy's sequence, whether or not the strategy is connected,
//! and stays in a window of the last `capacity` frames so `ResendFrom` can
//! replay exactly the bytes first written. Frames are encoded once; a full
//! window reuses the buffer of the frame it drops, so a steady stream
//! allocates nothing.

use std::collections::VecDeque;

use crate::codec::{encode_outbound, Outbound};

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

    /// Every kept frame from `from` on, oldest first; nothing when `from`
    /// is still to come.
    pub fn replay_from(&self, from: u64) -> Result<impl Iterator<Item = &[u8]> + '_, Evicted> {
        let from = from.max(1);
        let oldest = self.window.front().map_or(self.next_seq, |(s, _)| *s);
        if from < oldest {
            return Err(Evicted { from, oldest });
        }
        Ok(self
            .window
            .iter()
            .filter(move |(s, _)| *s >= from)
            .map(|(_, f)| f.as_slice()))
    }
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
}
