//! The journal as the gateway thread writes it: entries in, records out,
//! with the chaos run's kill point.

use std::sync::{Arc, Mutex, MutexGuard};

use ordergate_core::desk::DeskInput;
use ordergate_core::ids::{Namespace, StrategyId};
use ordergate_core::venue::{Command, Report};
use serde::Serialize;

use super::entry::SNAPSHOT_KIND;
use super::record::MAX_PAYLOAD;
use super::segment::{Journal, JournalError};
use ordergate_core::desk::DeskSnapshot;

/// The environment variable that makes a sidecar SIGKILL itself right
/// after its N-th journal record of this run: the chaos run's
/// deterministic kill point (see `ordergate demo --restarts`).
pub const KILL_AFTER_RECORDS_ENV: &str = "ORDERGATE_KILL_AFTER_RECORDS";

/// [`Entry`] by reference, for writing without copying what is already
/// held elsewhere. Same variants, same order, same field types on the
/// wire, so it encodes exactly as the `Entry` it mirrors.
#[derive(Serialize)]
enum EntryRef<'a> {
    Start {
        namespace: Namespace,
    },
    Command {
        now_ns: u64,
        input: &'a DeskInput,
    },
    Refused(&'a Command),
    Report(&'a Report),
    Sent {
        strategy: StrategyId,
        seq: u64,
        frame: &'a [u8],
    },
    Snapshot {
        desk: &'a DeskSnapshot,
        sequences: &'a [SeqSnapshotRef<'a>],
    },
    Timer {
        now_ns: u64,
    },
    Shutdown {
        cancel: bool,
    },
}

/// [`super::entry::SeqSnapshot`] by reference.
#[derive(Serialize)]
pub struct SeqSnapshotRef<'a> {
    pub strategy: StrategyId,
    pub next_seq: u64,
    pub frames: Vec<(u64, &'a [u8])>,
}

impl EntryRef<'_> {
    fn kind(&self) -> u8 {
        match self {
            EntryRef::Start { .. } => 1,
            EntryRef::Command { .. } => 2,
            EntryRef::Refused(_) => 3,
            EntryRef::Report(_) => 4,
            EntryRef::Sent { .. } => 5,
            EntryRef::Snapshot { .. } => SNAPSHOT_KIND,
            EntryRef::Timer { .. } => 7,
            EntryRef::Shutdown { .. } => 8,
        }
    }
}

/// The journal writer the desk and the front end share (both on the
/// gateway thread, so the lock is never contended; it exists because
/// the front end's recorder must own its handle).
pub type SharedJournal = Arc<Mutex<JournalWriter>>;

pub struct JournalWriter {
    journal: Journal,
    buf: Vec<u8>,
    /// Records appended by this run.
    appended: u64,
    kill_after: Option<u64>,
    /// The first write error: the gateway stops on it (an order that
    /// cannot be journaled must not be sent).
    failed: Option<String>,
}

impl JournalWriter {
    /// Wraps an open journal; reads [`KILL_AFTER_RECORDS_ENV`].
    pub fn new(journal: Journal) -> JournalWriter {
        let kill_after = std::env::var(KILL_AFTER_RECORDS_ENV)
            .ok()
            .and_then(|v| v.parse().ok());
        if let Some(n) = kill_after {
            tracing::warn!(
                records = n,
                "chaos kill point set: this sidecar SIGKILLs itself after {n} journal records"
            );
        }
        JournalWriter {
            journal,
            buf: Vec::with_capacity(512),
            appended: 0,
            kill_after,
            failed: None,
        }
    }

    pub fn shared(self) -> SharedJournal {
        Arc::new(Mutex::new(self))
    }

    /// Locks a shared writer (a panic while holding it cannot leave a
    /// half-written record: appends are one `write`).
    pub fn lock(shared: &SharedJournal) -> MutexGuard<'_, JournalWriter> {
        shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn start(&mut self, namespace: Namespace) {
        self.write(&EntryRef::Start { namespace });
    }

    pub fn command(&mut self, now_ns: u64, input: &DeskInput) {
        self.write(&EntryRef::Command { now_ns, input });
    }

    pub fn timer(&mut self, now_ns: u64) {
        self.write(&EntryRef::Timer { now_ns });
    }

    pub fn shutdown(&mut self, cancel: bool) {
        self.write(&EntryRef::Shutdown { cancel });
    }

    pub fn refused(&mut self, cmd: &Command) {
        self.write(&EntryRef::Refused(cmd));
    }

    pub fn report(&mut self, report: &Report) {
        self.write(&EntryRef::Report(report));
    }

    pub fn sent(&mut self, strategy: StrategyId, seq: u64, frame: &[u8]) {
        self.write(&EntryRef::Sent {
            strategy,
            seq,
            frame,
        });
    }

    /// The segment is full: the gateway writes a snapshot, which starts
    /// the next one.
    pub fn wants_snapshot(&self) -> bool {
        self.failed.is_none() && self.journal.segment_full()
    }

    /// Writes a snapshot as the first record of a new segment, so replay
    /// at the next start begins there. One too big for a record (huge
    /// resend windows) is skipped: replay then starts at an older one.
    pub fn snapshot(&mut self, desk: &DeskSnapshot, sequences: &[SeqSnapshotRef<'_>]) {
        if self.failed.is_some() {
            return;
        }
        let entry = EntryRef::Snapshot { desk, sequences };
        let bytes = postcard::to_stdvec(&entry).expect("journal entries always serialize");
        if bytes.len() > MAX_PAYLOAD {
            tracing::warn!(
                bytes = bytes.len(),
                "journal snapshot larger than a record; skipped (replay starts at an earlier one)"
            );
            return;
        }
        if let Err(e) = self.journal.start_segment() {
            return self.fail(e);
        }
        self.append(entry.kind(), &bytes);
        tracing::info!(
            orders = desk.lifecycle.orders.len(),
            strategies = sequences.len(),
            bytes = bytes.len(),
            "journal snapshot written; replay at the next start begins here"
        );
    }

    /// The first write error, if any.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Records appended by this run.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// fsyncs what the durability policy left unsynced (the gateway calls
    /// it when idle and at shutdown).
    pub fn sync(&mut self) {
        if let Err(e) = self.journal.sync() {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: JournalError) {
        if self.failed.is_none() {
            tracing::error!(error = %e, "journal write failed; the sidecar stops");
            self.failed = Some(e.to_string());
        }
    }

    fn write(&mut self, entry: &EntryRef<'_>) {
        if self.failed.is_some() {
            return;
        }
        self.buf.clear();
        let buf = postcard::to_extend(entry, std::mem::take(&mut self.buf))
            .expect("journal entries always serialize");
        self.append(entry.kind(), &buf);
        self.buf = buf;
    }

    fn append(&mut self, kind: u8, payload: &[u8]) {
        if let Err(e) = self.journal.append(kind, payload) {
            return self.fail(e);
        }
        self.appended += 1;
        if self.kill_after == Some(self.appended) {
            tracing::warn!(records = self.appended, "chaos kill point reached: SIGKILL");
            // SAFETY: getpid and kill are async-signal-safe libc calls with
            // no pointer arguments; SIGKILL ends this process here.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// Checks the mirror encodes exactly as the entry does.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::entry::Entry;
    use ordergate_core::desk::Request;

    #[test]
    fn entry_ref_encodes_as_entry() {
        let input = DeskInput {
            strategy: 3,
            request: Request::Cancel { order_id: 9 },
        };
        let frame = vec![1u8, 2, 3];
        let pairs = [
            (
                EntryRef::Start {
                    namespace: Namespace::new(5, 6),
                },
                Entry::Start {
                    namespace: Namespace::new(5, 6),
                },
            ),
            (
                EntryRef::Command {
                    now_ns: 77,
                    input: &input,
                },
                Entry::Command { now_ns: 77, input },
            ),
            (
                EntryRef::Sent {
                    strategy: 2,
                    seq: 4,
                    frame: &frame,
                },
                Entry::Sent {
                    strategy: 2,
                    seq: 4,
                    frame: frame.clone(),
                },
            ),
            (EntryRef::Timer { now_ns: 88 }, Entry::Timer { now_ns: 88 }),
            (
                EntryRef::Shutdown { cancel: true },
                Entry::Shutdown { cancel: true },
            ),
        ];
        for (r, e) in pairs {
            let a = postcard::to_stdvec(&r).unwrap();
            let mut b = Vec::new();
            e.encode(&mut b);
            assert_eq!(a, b);
            assert_eq!(r.kind(), e.kind());
            assert_eq!(Entry::decode(r.kind(), &a).unwrap(), e);
        }
    }
}
