//! The front end's I/O: a mio poll over the Unix listener, the strategy
//! sockets and any wake-up fds the app registers (ring doorbells).
//!
//! One step is [`Driver::run_once`], so the app can either loop on it with
//! a blocking timeout on its own thread, or wait on the epoll fd (readable
//! when any source is ready) from a tokio `AsyncFd` and call it with a zero
//! timeout. Everything the protocol decides is the [`FrontEnd`]'s; this
//! only moves bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::core::{ConnId, FrontEnd};
use ordergate_core::desk::{DeskInput, Notice};
use ordergate_proto::codec::READ_CHUNK;

const LISTENER: Token = Token(0);
/// Tokens at and above this are the app's wake-up sources.
const WAKEUP_BASE: usize = 1 << 30;
/// How long the listener rests after `accept` fails (EMFILE and the like)
/// before it tries again: the error is logged, the sidecar keeps running.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// The front end's poll loop state.
pub struct Driver {
    poll: Poll,
    events: Events,
    listener: UnixListener,
    sockets: BTreeMap<ConnId, UnixStream>,
    /// One span per strategy connection; its `strategy` field is filled
    /// in once Hello is accepted.
    spans: BTreeMap<ConnId, tracing::Span>,
    /// Sockets with WRITABLE interest registered (bytes pending).
    want_write: BTreeSet<ConnId>,
    next_conn: usize,
    next_wakeup: usize,
    core: FrontEnd,
    /// Set while accepting is paused after an error.
    accept_resume: Option<Instant>,
    epoch: Instant,
    read_buf: Vec<u8>,
}

impl Driver {
    /// Listens on `path`. The caller holds the state lock and has removed
    /// any stale socket file.
    pub fn bind(path: &Path, core: FrontEnd) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let mut listener = UnixListener::bind(path)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Driver {
            poll,
            events: Events::with_capacity(256),
            listener,
            sockets: BTreeMap::new(),
            spans: BTreeMap::new(),
            want_write: BTreeSet::new(),
            next_conn: 1,
            next_wakeup: WAKEUP_BASE,
            core,
            accept_resume: None,
            epoch: Instant::now(),
            read_buf: vec![0; READ_CHUNK],
        })
    }

    pub fn core(&self) -> &FrontEnd {
        &self.core
    }

    /// Makes `fd` (e.g. a ring doorbell's eventfd) wake [`Self::run_once`];
    /// whoever owns the doorbell acknowledges it.
    pub fn register_wakeup(&mut self, fd: RawFd) -> io::Result<()> {
        let token = Token(self.next_wakeup);
        self.next_wakeup += 1;
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), token, Interest::READABLE)
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// How long the poll may block at most: until the next Hello deadline
    /// or the end of an accept back-off.
    pub fn timeout(&self, cap: Duration) -> Duration {
        let now = self.now_ns();
        let mut t = cap;
        if let Some(d) = self.core.next_timer() {
            t = t.min(Duration::from_nanos(d.saturating_sub(now)));
        }
        if let Some(r) = self.accept_resume {
            t = t.min(r.saturating_duration_since(Instant::now()));
        }
        t
    }

    /// One step: wait up to `timeout` for readiness, accept, read and hand
    /// each request to `desk`, run timers, write out. Returns how many
    /// readiness events the poll delivered, so a caller polling with a
    /// zero timeout knows when the poller is drained.
    pub fn run_once(
        &mut self,
        timeout: Option<Duration>,
        desk: &mut impl FnMut(DeskInput) -> bool,
    ) -> io::Result<usize> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let ready: Vec<(Token, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                let closed = e.is_read_closed() || e.is_error();
                (e.token(), e.is_readable() || closed, e.is_writable())
            })
            .collect();
        let n = ready.len();
        for (token, readable, writable) in ready {
            match token {
                LISTENER => self.accept(),
                Token(t) if t >= WAKEUP_BASE => {}
                Token(conn) => {
                    if readable {
                        self.read(conn, desk);
                    }
                    if writable {
                        self.write(conn);
                    }
                }
            }
        }
        if self.accept_resume.is_some_and(|r| Instant::now() >= r) {
            self.accept_resume = None;
            self.accept();
        }
        self.core.on_timer(self.now_ns());
        self.flush();
        Ok(n)
    }

    /// Hands one desk notice to the protocol core (call [`Self::flush`]
    /// after a batch).
    pub fn deliver(&mut self, notice: Notice) {
        self.core.on_notice(notice);
    }

    fn accept(&mut self) {
        if self.accept_resume.is_some() {
            return;
        }
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A peer that vanished before accept: not the listener's fault.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, backoff_ms = ACCEPT_BACKOFF.as_millis() as u64,
                        "accept on the strategy socket failed; pausing the listener");
                    self.accept_resume = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            };
            let id = self.next_conn;
            self.next_conn += 1;
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(id), Interest::READABLE)
            {
                tracing::warn!(error = %e, "could not watch a new strategy socket; dropped it");
                continue;
            }
            self.sockets.insert(id, stream);
            let span =
                tracing::info_span!("strategy_conn", conn = id, strategy = tracing::field::Empty);
            span.in_scope(|| self.core.on_connect(id, self.now_ns()));
            self.spans.insert(id, span);
        }
    }

    /// Reads until the socket would block, handing the bytes to the core.
    fn read(&mut self, id: ConnId, desk: &mut impl FnMut(DeskInput) -> bool) {
        loop {
            if self.core.is_closing(id) {
                return;
            }
            let Some(stream) = self.sockets.get_mut(&id) else {
                return;
            };
            match stream.read(&mut self.read_buf) {
                Ok(0) => return self.drop_conn(id),
                Ok(n) => {
                    let bytes = std::mem::take(&mut self.read_buf);
                    let span = self
                        .spans
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(tracing::Span::none);
                    let had = self.core.strategy_of(id);
                    span.in_scope(|| self.core.on_bytes(id, &bytes[..n], desk));
                    if let (None, Some(s)) = (had, self.core.strategy_of(id)) {
                        span.record("strategy", s);
                    }
                    self.read_buf = bytes;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.drop_conn(id),
            }
        }
    }

    /// Writes what the core has pending for `id`. `Err` means the socket
    /// is dead.
    fn write_pending(&mut self, id: ConnId) -> io::Result<()> {
        let Some(stream) = self.sockets.get_mut(&id) else {
            return Ok(());
        };
        loop {
            let pending = self.core.pending(id);
            if pending.is_empty() {
                return Ok(());
            }
            match stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.core.consumed(id, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, id: ConnId) {
        if self.write_pending(id).is_err() {
            self.drop_conn(id);
        }
    }

    /// Writes pending bytes everywhere, adjusts WRITABLE interest, and
    /// closes connections the core is done with.
    pub fn flush(&mut self) {
        let ids: Vec<ConnId> = self.sockets.keys().copied().collect();
        for id in ids {
            let dead = self.write_pending(id).is_err();
            // A closing connection gets this one write attempt: a slow
            // consumer is not waited for.
            if dead || self.core.is_closing(id) {
                self.drop_conn(id);
                continue;
            }
            let want = !self.core.pending(id).is_empty();
            if want != self.want_write.contains(&id) {
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let Some(stream) = self.sockets.get_mut(&id) else {
                    continue;
                };
                if self
                    .poll
                    .registry()
                    .reregister(stream, Token(id), interest)
                    .is_err()
                {
                    self.drop_conn(id);
                    continue;
                }
                if want {
                    self.want_write.insert(id);
                } else {
                    self.want_write.remove(&id);
                }
            }
        }
    }

    fn drop_conn(&mut self, id: ConnId) {
        if let Some(mut s) = self.sockets.remove(&id) {
            let _ = self.poll.registry().deregister(&mut s);
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.want_write.remove(&id);
        match self.spans.remove(&id) {
            Some(span) => span.in_scope(|| self.core.on_closed(id)),
            None => self.core.on_closed(id),
        }
    }
}

impl AsRawFd for Driver {
    fn as_raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}

/// The poller's own fd: readable when any front-end source is ready, so
/// an async runtime can host the front end (`layout = "single"`).
impl std::os::fd::AsFd for Driver {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.poll.registry().as_fd()
    }
}
