//! The `park` wait strategy: an eventfd doorbell with a lost-wake-up-free
//! sleep handshake.
//!
//! A consumer that waits on a socket *and* on rings cannot use
//! `thread::park`, because its poller would not return for it. Instead the
//! rings' producers ring an `eventfd` that the consumer registers in the same
//! poller (mio `SourceFd`, tokio `AsyncFd`). To keep the producer's hot path
//! free of syscalls, producers only write the eventfd when the consumer has
//! announced that it is about to sleep.
//!
//! # The handshake
//!
//! Consumer, after finding all its rings empty:
//! 1. `prepare_sleep()`: store `sleeping = true`, then `fence(SeqCst)`;
//! 2. re-check every ring; if something is there, `cancel_sleep()` and run;
//! 3. otherwise block in the poller; on wake-up, `cancel_sleep()` and `drain()`.
//!
//! Producer (`Ringer::ring`), after publishing an item: `fence(SeqCst)`, load
//! `sleeping`; if it is set, swap it to `false` and write the eventfd.
//!
//! Why no wake-up is lost: the two SeqCst fences are totally ordered. If the
//! consumer's fence comes first, everything before it (the `sleeping = true`
//! store) is visible to the producer's load after its own fence, so the
//! producer rings. If the producer's fence comes first, everything before it
//! (the item's publication) is visible to the consumer's re-check after its
//! fence, so the consumer sees the item. Without either fence, both loads may
//! read the old values (store buffering) and the consumer sleeps on a ring
//! that holds an item. `tests/loom.rs` checks this, and shows it failing when
//! a fence is removed.

use std::io;

use serde::Deserialize;

use crate::sync::{fence, Arc, AtomicBool, Ordering};

/// How a consumer waits for its rings; named in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitStrategy {
    /// Busy-poll with `spin_loop`: lowest latency, burns a whole core.
    Spin,
    /// Sleep in the poller on a [`Doorbell`]. The default, because a spinning
    /// consumer pins a core and the sidecar shares its host.
    #[default]
    Park,
}

impl WaitStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitStrategy::Spin => "spin",
            WaitStrategy::Park => "park",
        }
    }
}

/// The atomic half of the sleep handshake, free of any file descriptor so
/// loom can model it.
#[derive(Debug)]
pub struct SleepFlag {
    sleeping: AtomicBool,
}

impl Default for SleepFlag {
    fn default() -> Self {
        Self::new()
    }
}

impl SleepFlag {
    /// A flag for a consumer that is awake.
    pub fn new() -> Self {
        Self {
            sleeping: AtomicBool::new(false),
        }
    }

    /// Consumer: announce the intent to sleep. Re-check the rings after this
    /// and before blocking.
    pub fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        // Orders the store above before the ring re-check that follows; see
        // the module docs.
        fence(Ordering::SeqCst);
    }

    /// Consumer: it is awake again (found work on the re-check, or woke up).
    pub fn cancel_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Producer, after publishing: returns `true` if the consumer may be
    /// asleep and this caller must wake it. Of several producers racing here,
    /// only one gets `true`.
    pub fn take_sleeper(&self) -> bool {
        // Orders the publication before the load below; see the module docs.
        fence(Ordering::SeqCst);
        // The plain load keeps the common, awake case free of a
        // read-modify-write on a line the consumer owns.
        self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::Relaxed)
    }
}

/// The wake-up signal itself: an eventfd.
#[cfg(not(feature = "loom"))]
#[derive(Debug)]
struct Bell {
    /// `File` gives us read/write on the eventfd without further `unsafe`.
    fd: std::fs::File,
}

#[cfg(not(feature = "loom"))]
impl Bell {
    fn new() -> io::Result<Self> {
        use std::os::fd::{FromRawFd, OwnedFd};

        // SAFETY: eventfd takes no pointers; it only allocates a new fd.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self { fd: fd.into() })
    }

    fn ring(&self) {
        use std::io::Write;

        loop {
            match (&self.fd).write(&1u64.to_ne_bytes()) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EAGAIN: the counter is at its maximum, so the fd is already
                // readable and the wake-up is not lost. eventfd documents no
                // other failure for an 8-byte write on a valid fd.
                Err(e) => {
                    debug_assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "eventfd write: {e}");
                    return;
                }
            }
        }
    }

    fn drain(&self) -> io::Result<u64> {
        use std::io::Read;

        let mut buf = [0u8; 8];
        loop {
            return match (&self.fd).read(&mut buf) {
                Ok(_) => Ok(u64::from_ne_bytes(buf)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }
}

/// Under loom the eventfd is replaced by a counter loom can see.
#[cfg(feature = "loom")]
#[derive(Debug)]
struct Bell {
    rung: crate::sync::AtomicUsize,
}

#[cfg(feature = "loom")]
impl Bell {
    fn new() -> io::Result<Self> {
        Ok(Self {
            rung: crate::sync::AtomicUsize::new(0),
        })
    }

    fn ring(&self) {
        self.rung.fetch_add(1, Ordering::AcqRel);
    }

    fn drain(&self) -> io::Result<u64> {
        Ok(self.rung.swap(0, Ordering::AcqRel) as u64)
    }
}

#[derive(Debug)]
struct Shared {
    flag: SleepFlag,
    bell: Bell,
}

/// Consumer side: owns the eventfd the poller waits on.
#[derive(Debug)]
pub struct Doorbell {
    shared: Arc<Shared>,
}

impl Doorbell {
    /// Creates the doorbell and its (non-blocking, close-on-exec) eventfd.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                flag: SleepFlag::new(),
                bell: Bell::new()?,
            }),
        })
    }

    /// A handle for a producer; clone it for each ring feeding this consumer.
    pub fn ringer(&self) -> Ringer {
        Ringer {
            shared: Arc::clone(&self.shared),
        }
    }

    /// See [`SleepFlag::prepare_sleep`]: call, re-check the rings, then block.
    pub fn prepare_sleep(&self) {
        self.shared.flag.prepare_sleep();
    }

    /// See [`SleepFlag::cancel_sleep`].
    pub fn cancel_sleep(&self) {
        self.shared.flag.cancel_sleep();
    }

    /// Resets the eventfd after a wake-up so the poller can block again;
    /// returns how many rings were pending (0 if none).
    pub fn drain(&self) -> io::Result<u64> {
        self.shared.bell.drain()
    }
}

#[cfg(not(feature = "loom"))]
impl std::os::fd::AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.shared.bell.fd.as_raw_fd()
    }
}

#[cfg(not(feature = "loom"))]
impl std::os::fd::AsFd for Doorbell {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.shared.bell.fd.as_fd()
    }
}

/// Producer side of a [`Doorbell`]; cheap to clone and `Send`.
#[derive(Debug, Clone)]
pub struct Ringer {
    shared: Arc<Shared>,
}

impl Ringer {
    /// Call after publishing an item: wakes the consumer if it is going to
    /// sleep, and costs a fence and a load when it is not.
    pub fn ring(&self) {
        if self.shared.flag.take_sleeper() {
            self.shared.bell.ring();
        }
    }
}
