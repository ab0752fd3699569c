//! Ring and doorbell behaviour on the real (std) atomics and a real eventfd.
// Under the loom feature the types only work inside a loom model.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use ordergate::doorbell::{Doorbell, WaitStrategy};
use ordergate::ring::channel;

#[test]
fn capacity_rounds_up_to_power_of_two() {
    assert_eq!(channel::<u8>(0).0.capacity(), 1);
    assert_eq!(channel::<u8>(1).0.capacity(), 1);
    assert_eq!(channel::<u8>(3).0.capacity(), 4);
    assert_eq!(channel::<u8>(1000).1.capacity(), 1024);
    assert_eq!(channel::<u8>(1024).1.capacity(), 1024);
}

#[test]
fn full_and_empty() {
    let (mut p, mut c) = channel::<u32>(4);
    assert!(p.is_empty() && c.is_empty());
    assert_eq!(c.pop(), None);
    for i in 0..4 {
        p.push(i).unwrap();
    }
    assert_eq!(p.len(), 4);
    assert_eq!(c.len(), 4);
    // Full: the value comes back untouched.
    assert_eq!(p.push(99), Err(99));
    assert_eq!(c.pop(), Some(0));
    p.push(4).unwrap();
    assert_eq!(p.push(100), Err(100));
    for i in 1..5 {
        assert_eq!(c.pop(), Some(i));
    }
    assert_eq!(c.pop(), None);
    assert!(c.is_empty());
}

#[test]
fn wraps_around_many_times() {
    let (mut p, mut c) = channel::<u64>(4);
    let mut next_out = 0;
    for i in 0..10_000u64 {
        p.push(i).unwrap();
        // Keep 0..3 items in flight so the indices cross the boundary in
        // every position.
        if i % 3 != 0 {
            assert_eq!(c.pop(), Some(next_out));
            next_out += 1;
        }
        if p.len() == 4 {
            while let Some(v) = c.pop() {
                assert_eq!(v, next_out);
                next_out += 1;
            }
        }
    }
    while let Some(v) = c.pop() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, 10_000);
}

#[test]
fn batch_push_and_pop() {
    let (mut p, mut c) = channel::<u32>(8);
    // Slice of Copy: only what fits is pushed.
    let data: Vec<u32> = (0..12).collect();
    assert_eq!(p.push_slice(&data), 8);
    assert_eq!(p.push_slice(&data[8..]), 0);

    let mut out = Vec::new();
    assert_eq!(c.pop_batch(&mut out, 3), 3);
    assert_eq!(out, [0, 1, 2]);

    // Iterator: items that do not fit stay in the iterator.
    let mut rest = data[8..].iter().copied();
    assert_eq!(p.push_batch(&mut rest), 3);
    assert_eq!(rest.next(), Some(11));

    // Non-Copy items through the iterator form, across the wrap point.
    assert_eq!(c.pop_batch(&mut out, 100), 8);
    assert_eq!(out, (0..11).collect::<Vec<_>>());
    assert_eq!(c.pop_batch(&mut out, 100), 0);
    assert_eq!(c.pop_batch(&mut out, 0), 0);

    let (mut p, mut c) = channel::<String>(4);
    let mut words = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string());
    assert_eq!(p.push_batch(&mut words), 4);
    assert_eq!(words.next().as_deref(), Some("e"));
    let mut out = Vec::new();
    assert_eq!(c.pop_batch(&mut out, 2), 2);
    assert_eq!(out, ["a", "b"]);
}

/// Counts drops so a test can check each value is dropped exactly once.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn items_left_in_ring_are_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (mut p, mut c) = channel::<Counted>(4);
    // Wrap first, so the leftovers straddle the end of the slot array.
    for _ in 0..3 {
        assert!(p.push(Counted(drops.clone())).is_ok());
    }
    drop(c.pop());
    drop(c.pop());
    assert_eq!(drops.load(Ordering::Relaxed), 2);
    for _ in 0..3 {
        assert!(p.push(Counted(drops.clone())).is_ok());
    }
    // A rejected push hands the value back; dropping it here is the one drop.
    let rejected = p.push(Counted(drops.clone()));
    assert!(rejected.is_err());
    drop(rejected);
    assert_eq!(drops.load(Ordering::Relaxed), 3);

    drop(p);
    assert_eq!(
        drops.load(Ordering::Relaxed),
        3,
        "consumer still holds the ring"
    );
    drop(c);
    // 3 popped or rejected + 4 left in the ring.
    assert_eq!(drops.load(Ordering::Relaxed), 7);
}

#[test]
fn two_threads_pass_a_million_in_order() {
    const N: u64 = 1_000_000;
    let (mut p, mut c) = channel::<u64>(1024);
    let producer = thread::spawn(move || {
        let mut i = 0;
        while i < N {
            // Mix single and batch pushes.
            if i % 7 == 0 {
                let mut batch = i..(i + 5).min(N);
                i += p.push_batch(&mut batch) as u64;
            } else if p.push(i).is_ok() {
                i += 1;
            }
            if i < N && p.len() == p.capacity() {
                thread::yield_now();
            }
        }
    });
    let mut expected = 0;
    let mut out = Vec::with_capacity(64);
    while expected < N {
        out.clear();
        if c.pop_batch(&mut out, 64) == 0 {
            assert!(!c.is_abandoned() || !c.is_empty(), "producer quit early");
            thread::yield_now();
        }
        for &v in &out {
            assert_eq!(v, expected);
            expected += 1;
        }
    }
    producer.join().unwrap();
    assert_eq!(c.pop(), None);
}

#[test]
fn abandonment_is_seen_by_both_sides() {
    let (mut p, c) = channel::<u8>(2);
    assert!(!p.is_abandoned());
    assert!(!c.is_abandoned());
    drop(c);
    assert!(p.is_abandoned());
    // Pushing into an abandoned ring still works; the items are dropped with it.
    assert!(p.push(1).is_ok());

    let (mut p, mut c) = channel::<u8>(2);
    p.push(7).unwrap();
    drop(p);
    assert!(c.is_abandoned());
    // What was pushed before the producer left is still delivered.
    assert_eq!(c.pop(), Some(7));
    assert_eq!(c.pop(), None);
}

#[test]
fn ring_and_doorbell_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<ordergate::ring::Producer<String>>();
    assert_send::<ordergate::ring::Consumer<String>>();
    assert_send::<Doorbell>();
    assert_send::<ordergate::doorbell::Ringer>();
}

/// Polls the eventfd with a zero timeout; true if it is readable.
fn readable(poll: &mut Poll) -> bool {
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
    events
        .iter()
        .any(|e| e.token() == Token(0) && e.is_readable())
}

#[test]
fn doorbell_rings_a_real_eventfd_only_when_sleeping() {
    let bell = Doorbell::new().unwrap();
    let ringer = bell.ringer();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(
            &mut SourceFd(&bell.as_raw_fd()),
            Token(0),
            Interest::READABLE,
        )
        .unwrap();

    // Awake consumer: ringing writes nothing.
    ringer.ring();
    assert!(!readable(&mut poll));
    assert_eq!(bell.drain().unwrap(), 0);

    // Sleeping consumer: exactly one ring reaches the fd, even from two
    // producers (the second sees the flag already cleared).
    bell.prepare_sleep();
    let other = ringer.clone();
    ringer.ring();
    other.ring();
    assert!(readable(&mut poll));
    assert_eq!(bell.drain().unwrap(), 1);
    assert_eq!(bell.drain().unwrap(), 0, "drain resets the eventfd");

    // After cancel_sleep, back to silent.
    bell.prepare_sleep();
    bell.cancel_sleep();
    ringer.ring();
    assert!(!readable(&mut poll));
}

#[test]
fn doorbell_wakes_a_consumer_blocked_in_poll() {
    let bell = Doorbell::new().unwrap();
    let (mut p, mut c) = channel::<u64>(16);
    let ringer = bell.ringer();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(
            &mut SourceFd(&bell.as_raw_fd()),
            Token(0),
            Interest::READABLE,
        )
        .unwrap();

    const N: u64 = 1000;
    let producer = thread::spawn(move || {
        for i in 0..N {
            while p.push(i).is_err() {
                thread::yield_now();
            }
            ringer.ring();
        }
    });

    let mut events = Events::with_capacity(4);
    let mut expected = 0;
    while expected < N {
        if let Some(v) = c.pop() {
            assert_eq!(v, expected);
            expected += 1;
            continue;
        }
        bell.prepare_sleep();
        if !c.is_empty() {
            bell.cancel_sleep();
            continue;
        }
        // Bounded: a lost wake-up fails the test instead of hanging it.
        poll.poll(&mut events, Some(Duration::from_secs(10)))
            .unwrap();
        assert!(!events.is_empty(), "lost wake-up at item {expected}");
        bell.cancel_sleep();
        bell.drain().unwrap();
    }
    producer.join().unwrap();
}

#[test]
fn wait_strategy_names() {
    #[derive(serde::Deserialize)]
    struct Cfg {
        wait: WaitStrategy,
    }
    let spin: Cfg = toml::from_str("wait = \"spin\"").unwrap();
    assert_eq!(spin.wait, WaitStrategy::Spin);
    let park: Cfg = toml::from_str("wait = \"park\"").unwrap();
    assert_eq!(park.wait, WaitStrategy::Park);
    assert!(toml::from_str::<Cfg>("wait = \"Spin\"").is_err());
    assert_eq!(WaitStrategy::default(), WaitStrategy::Park);
}

#[test]
fn peek_leaves_the_head_for_a_later_pop() {
    let (mut p, mut c) = ordergate::ring::channel::<u32>(2);
    assert_eq!(c.peek(), None);
    p.push(7).unwrap();
    p.push(8).unwrap();
    assert_eq!(c.peek(), Some(&7));
    assert_eq!(c.peek(), Some(&7), "peeking twice does not advance");
    assert_eq!(p.push(9), Err(9), "a peeked item still holds its slot");
    assert_eq!(c.pop(), Some(7));
    assert_eq!(c.peek(), Some(&8));
    p.push(9).unwrap();
    assert_eq!(c.pop(), Some(8));
    assert_eq!(c.pop(), Some(9));
    assert_eq!(c.peek(), None);
}

#[test]
fn peek_at_looks_behind_the_head_across_the_wrap() {
    let (mut p, mut c) = ordergate::ring::channel::<u32>(4);
    for v in 1..=3 {
        p.push(v).unwrap();
    }
    let seen: Vec<u32> = (0..3).filter_map(|i| c.peek_at(i).copied()).collect();
    assert_eq!(seen, [1, 2, 3]);
    assert_eq!(c.peek_at(3), None, "nothing past the tail");
    // Wrap the indices round the slots.
    assert_eq!(c.pop(), Some(1));
    assert_eq!(c.pop(), Some(2));
    p.push(4).unwrap();
    p.push(5).unwrap();
    p.push(6).unwrap();
    let seen: Vec<u32> = (0..4).filter_map(|i| c.peek_at(i).copied()).collect();
    assert_eq!(seen, [3, 4, 5, 6]);
    assert_eq!(c.len(), 4, "peeking took nothing");
}
