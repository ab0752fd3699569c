//! Bounded single-producer single-consumer ring.
//!
//! Each side owns one index and publishes it through an atomic on its own
//! cache line, so the producer and consumer never write the same line. Each
//! side also keeps a private copy of the *other* side's index and only goes
//! back to the shared atomic when that copy says the ring is full (producer)
//! or empty (consumer): in steady state a push or pop touches no line the
//! other core is writing.
//!
//! Indices are free-running `usize` counters (wrapping on overflow); the slot
//! is `index & mask`, which is why the capacity is a power of two, and
//! `tail - head` is the number of items in flight.

use std::fmt;
use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

/// State shared by the two ends.
struct Shared<T> {
    /// Next index the consumer will read; written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next index the producer will write; written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Slots `head..tail` (mod capacity) hold initialized values.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

impl<T> Shared<T> {
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, index: usize) -> &UnsafeCell<MaybeUninit<T>> {
        // `capacity` is a power of two, so masking is the modulo.
        &self.slots[index & (self.slots.len() - 1)]
    }

    fn len(&self) -> usize {
        // Load head first: tail only grows, so tail >= the head we saw and the
        // difference never underflows, even if the snapshot is already stale.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both ends are gone (the last `Arc` drop synchronizes with the other
        // one), so the indices are final and nobody else touches the slots.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        let mut i = head;
        while i != tail {
            self.slot(i).with_mut(|p| {
                // SAFETY: slots in head..tail were written by the producer and
                // not yet read out by the consumer, so each holds an initialized
                // value that is dropped here exactly once; `&mut self` means no
                // one else can access it.
                unsafe { (*p).assume_init_drop() }
            });
            i = i.wrapping_add(1);
        }
    }
}

/// Creates a ring that holds at least `capacity` items.
///
/// The capacity is rounded up to a power of two (and to at least 1).
///
/// # Panics
/// If the rounded capacity overflows `usize`.
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity
        .max(1)
        .checked_next_power_of_two()
        .expect("ring capacity overflows usize");
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
    });
    (
        Producer {
            shared: Arc::clone(&shared),
            tail: 0,
            cached_head: 0,
        },
        Consumer {
            shared,
            head: 0,
            cached_tail: 0,
        },
    )
}

/// The writing end of a ring.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Our own index; the shared `tail` is a published copy of it.
    tail: usize,
    /// Last value of the consumer's `head` we loaded; it can only be behind,
    /// so it under-estimates the free space and is safe to trust.
    cached_head: usize,
}

// SAFETY: the producer only moves `T` values into the ring, and the consumer
// that receives them may live on another thread, hence `T: Send`. The shared
// state is reached through `Arc`, and the slot protocol (a slot is written by
// the producer only before its Release store of `tail`, and read by the
// consumer only after its Acquire load of it) keeps the two ends from ever
// touching the same slot at once. `Producer` is deliberately not `Sync`:
// `push` takes `&mut self` and there must be a single producer.
unsafe impl<T: Send> Send for Producer<T> {}

impl<T> Producer<T> {
    /// Free slots, refreshing the cached head only if `wanted` slots do not
    /// look free in our (possibly stale) view.
    fn free_slots(&mut self, wanted: usize) -> usize {
        let cap = self.shared.capacity();
        let mut free = cap - self.tail.wrapping_sub(self.cached_head);
        if free < wanted {
            // Acquire: the consumer's reads of the slots it freed happen
            // before we overwrite them.
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            free = cap - self.tail.wrapping_sub(self.cached_head);
        }
        free
    }

    /// Writes `value` into the next slot without publishing it.
    ///
    /// The caller has checked that the slot is free.
    fn write_next(&mut self, value: T) {
        self.shared.slot(self.tail).with_mut(|p| {
            // SAFETY: `free_slots` showed this slot outside head..tail, so the
            // consumer has finished with it (Acquire on `head`) and will not
            // read it until we publish a `tail` past it; we are the only
            // producer, so the access is exclusive.
            unsafe { p.write(MaybeUninit::new(value)) }
        });
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every written slot visible to the consumer.
    fn publish(&self) {
        // Release: the slot writes happen before the consumer's Acquire load
        // that observes this index.
        self.shared.tail.store(self.tail, Ordering::Release);
    }

    /// Pushes one value, or gives it back if the ring is full.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.free_slots(1) == 0 {
            return Err(value);
        }
        self.write_next(value);
        self.publish();
        Ok(())
    }

    /// Pushes items pulled from `items` until the ring is full or the
    /// iterator ends, publishing them with a single store. Returns how many
    /// were pushed.
    ///
    /// Only items that fit are taken from the iterator, so nothing is lost:
    /// the rest stay in `items` for a later call. If the iterator panics, the
    /// items already written go out with the next push (or are leaked, never
    /// double-dropped, if the producer is dropped first).
    pub fn push_batch<I: Iterator<Item = T>>(&mut self, items: &mut I) -> usize {
        let free = self.free_slots(items.size_hint().0.max(1));
        let mut pushed = 0;
        while pushed < free {
            let Some(value) = items.next() else { break };
            self.write_next(value);
            pushed += 1;
        }
        if pushed > 0 {
            self.publish();
        }
        pushed
    }

    /// Copies as many leading items of `items` as fit; returns how many.
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        self.push_batch(&mut items.iter().copied())
    }

    /// Number of items currently in the ring (a snapshot).
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether the ring is empty right now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of slots (a power of two).
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Whether the consumer has been dropped: pushes can no longer be read.
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) < 2
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

/// The reading end of a ring.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Our own index; the shared `head` is a published copy of it.
    head: usize,
    /// Last value of the producer's `tail` we loaded; it can only be behind,
    /// so it under-estimates the items available and is safe to trust.
    cached_tail: usize,
}

// SAFETY: the consumer moves `T` values out of the ring that another thread
// put in, hence `T: Send`; see the `Producer` impl for why the two ends never
// touch the same slot at once. Not `Sync`: there must be a single consumer.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> Consumer<T> {
    /// Items ready to read, refreshing the cached tail only if fewer than
    /// `wanted` look ready in our (possibly stale) view.
    fn ready_slots(&mut self, wanted: usize) -> usize {
        let mut ready = self.cached_tail.wrapping_sub(self.head);
        if ready < wanted {
            // Acquire: the producer's slot writes happen before our reads.
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            ready = self.cached_tail.wrapping_sub(self.head);
        }
        ready
    }

    /// Moves the value out of the next slot without releasing the slot.
    ///
    /// The caller has checked that the slot holds a published value.
    fn read_next(&mut self) -> T {
        let value = self.shared.slot(self.head).with(|p| {
            // SAFETY: `ready_slots` showed this slot inside head..tail, so the
            // producer initialized it before its Release store of `tail` that
            // we Acquire-loaded, and will not touch it again until we publish
            // a `head` past it. Advancing `head` below means the value is read
            // out exactly once.
            unsafe { (*p).assume_init_read() }
        });
        self.head = self.head.wrapping_add(1);
        value
    }

    /// Hands the read slots back to the producer.
    fn release(&self) {
        // Release: our reads of the slots happen before the producer's
        // Acquire load that lets it overwrite them.
        self.shared.head.store(self.head, Ordering::Release);
    }

    /// Pops the oldest item, or `None` if the ring is empty.
    pub fn pop(&mut self) -> Option<T> {
        if self.ready_slots(1) == 0 {
            return None;
        }
        let value = self.read_next();
        self.release();
        Some(value)
    }

    /// The oldest item, left in the ring: a consumer that may not act on
    /// it yet (a throttled lane) keeps its head and pops it later.
    ///
    /// The reference borrows the consumer mutably, so nothing can pop the
    /// item while it is looked at; the producer never touches a slot
    /// inside `head..tail`.
    pub fn peek(&mut self) -> Option<&T> {
        self.peek_at(0)
    }

    /// The item `i` places behind the head (0 = the head), without taking
    /// anything: a session looking for the cancel of a held order.
    pub fn peek_at(&mut self, i: usize) -> Option<&T> {
        if self.ready_slots(i + 1) <= i {
            return None;
        }
        let ptr = self.shared.slot(self.head.wrapping_add(i)).with(|p| p);
        // SAFETY: `ready_slots` showed this slot inside head..tail, so the
        // producer initialized it before its Release store of `tail` that
        // we Acquire-loaded, and will not write it again until we publish
        // a `head` past it, which needs `&mut self`, borrowed for as long
        // as the returned reference lives. The value is not moved out.
        Some(unsafe { (*ptr).assume_init_ref() })
    }

    /// Appends up to `max` items to `out`, releasing their slots with a
    /// single store. Returns how many were popped.
    pub fn pop_batch(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let n = self.ready_slots(max).min(max);
        if n == 0 {
            return 0;
        }
        out.reserve(n);
        for _ in 0..n {
            let value = self.read_next();
            out.push(value);
        }
        self.release();
        n
    }

    /// Number of items currently in the ring (a snapshot).
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether the ring is empty right now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of slots (a power of two).
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Whether the producer has been dropped: once the ring is drained,
    /// nothing more will arrive.
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) < 2
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}
