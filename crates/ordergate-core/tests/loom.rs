//! loom models of the ring and the doorbell handshake.
//!
//! Run with `cargo test --features loom --test loom --release`. Each model is
//! bounded by a preemption bound (4-5, 3-4 for the wider models) so the whole
//! file stays well under two minutes on two cores (about 2 s here); loom then
//! explores every interleaving (and every value a weakly ordered load may
//! return) within that bound.
#![cfg(feature = "loom")]

use loom::model::Builder;
use loom::sync::Arc;
use loom::thread;
use ordergate_core::doorbell::{Doorbell, Ringer};
use ordergate_core::ring::{channel, Consumer, Producer};

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Pushes all of `items` one by one, yielding to the consumer while full.
fn push_all<T>(p: &mut Producer<T>, items: impl IntoIterator<Item = T>) {
    for mut item in items {
        while let Err(back) = p.push(item) {
            item = back;
            thread::yield_now();
        }
    }
}

/// Pops `n` items one by one, yielding to the producer while empty.
fn pop_n<T>(c: &mut Consumer<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match c.pop() {
            Some(v) => out.push(v),
            None => thread::yield_now(),
        }
    }
    out
}

#[test]
fn items_arrive_in_order() {
    model(5, || {
        let (mut p, mut c) = channel::<u32>(4);
        let t = thread::spawn(move || push_all(&mut p, [1, 2, 3]));
        assert_eq!(pop_n(&mut c, 3), [1, 2, 3]);
        t.join().unwrap();
    });
}

#[test]
fn wrap_around_through_a_full_ring() {
    // Capacity 2 and 3 items: the third push must wait for a pop and then
    // reuse slot 0 while the consumer may be reading slot 1.
    model(5, || {
        let (mut p, mut c) = channel::<String>(2);
        let t = thread::spawn(move || push_all(&mut p, ["a", "b", "c"].map(String::from)));
        assert_eq!(pop_n(&mut c, 3), ["a", "b", "c"]);
        t.join().unwrap();
    });
}

#[test]
fn batch_push_and_pop() {
    model(4, || {
        let (mut p, mut c) = channel::<u32>(2);
        let t = thread::spawn(move || {
            let mut items = [1, 2, 3].into_iter();
            let mut pushed = 0;
            while pushed < 3 {
                let n = p.push_batch(&mut items);
                if n == 0 {
                    thread::yield_now();
                }
                pushed += n;
            }
        });
        let mut out = Vec::new();
        while out.len() < 3 {
            if c.pop_batch(&mut out, 2) == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(out, [1, 2, 3]);
        t.join().unwrap();
    });
}

#[test]
fn peek_keeps_the_head_until_popped() {
    // A throttled consumer looks at its head without taking it: what it
    // sees must be the value the producer wrote, it must still be the head
    // at the next peek (a later push never replaces it), and the pop must
    // hand out that same value, in order.
    model(5, || {
        let (mut p, mut c) = channel::<String>(2);
        let t = thread::spawn(move || push_all(&mut p, ["a", "b", "c"].map(String::from)));
        let mut out = Vec::new();
        while out.len() < 3 {
            let Some(seen) = c.peek().cloned() else {
                thread::yield_now();
                continue;
            };
            assert_eq!(c.peek(), Some(&seen), "the head stays put");
            assert_eq!(c.pop().as_ref(), Some(&seen));
            out.push(seen);
        }
        assert_eq!(out, ["a", "b", "c"]);
        t.join().unwrap();
    });
}

#[test]
fn peek_at_sees_what_was_published_behind_the_head() {
    // Looking past the head must see exactly the producer's values, in
    // order, or nothing yet: never a slot it has not finished writing.
    model(5, || {
        let (mut p, mut c) = channel::<String>(4);
        let t = thread::spawn(move || push_all(&mut p, ["a", "b", "c"].map(String::from)));
        loop {
            // The second first: once it is seen, the head must be there
            // too (only this consumer ever removes anything).
            let second = c.peek_at(1).cloned();
            let first = c.peek_at(0).cloned();
            match (first, second) {
                (Some(a), Some(b)) => {
                    assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
                    break;
                }
                (None, Some(_)) => panic!("a second item without a first"),
                _ => thread::yield_now(),
            }
        }
        assert_eq!(pop_n(&mut c, 3), ["a", "b", "c"]);
        t.join().unwrap();
    });
}

#[test]
fn unconsumed_items_are_dropped_once() {
    // Each item holds a clone of `token`; loom also reports any leaked Arc.
    model(5, || {
        let token = Arc::new(());
        let (mut p, mut c) = channel::<Arc<()>>(2);
        let items = [Arc::clone(&token), Arc::clone(&token)];
        let t = thread::spawn(move || {
            push_all(&mut p, items);
            // The producer end is dropped here, racing the consumer's drop.
        });
        drop(pop_n(&mut c, 1));
        drop(c);
        t.join().unwrap();
        assert_eq!(Arc::strong_count(&token), 1);
    });
}

#[test]
fn doorbell_never_loses_a_wake_up() {
    model(5, || {
        let bell = Doorbell::new().unwrap();
        let ringer = bell.ringer();
        let (mut p, mut c) = channel::<u32>(2);
        let t = thread::spawn(move || {
            p.push(1).unwrap();
            ringer.ring();
        });

        // Consumer loop, one round: check, announce sleep, re-check.
        let mut seen = c.pop().is_some();
        if !seen {
            bell.prepare_sleep();
            seen = c.pop().is_some();
            if seen {
                bell.cancel_sleep();
            }
        }
        t.join().unwrap();
        // Had the consumer blocked, only the bell could wake it.
        if !seen {
            assert!(
                bell.drain().unwrap() > 0,
                "lost wake-up: item unseen and bell silent"
            );
        }
    });
}

#[test]
fn doorbell_shared_by_two_producers() {
    model(4, || {
        let bell = Doorbell::new().unwrap();
        let (p1, mut c1) = channel::<u32>(2);
        let (p2, mut c2) = channel::<u32>(2);
        let spawn = |mut p: Producer<u32>, ringer: Ringer| {
            thread::spawn(move || {
                p.push(1).unwrap();
                ringer.ring();
            })
        };
        let t1 = spawn(p1, bell.ringer());
        let t2 = spawn(p2, bell.ringer());

        bell.prepare_sleep();
        let seen_both = c1.pop().is_some() & c2.pop().is_some();
        t1.join().unwrap();
        t2.join().unwrap();
        // Had the consumer blocked, the bell must wake it. One ring covers
        // both producers: the first one clears the flag for the second.
        if !seen_both {
            assert!(bell.drain().unwrap() > 0, "lost wake-up with two producers");
        }
    });
}
