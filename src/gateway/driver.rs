//! The gateway's I/O: a mio poll over the Unix listener, the strategy
//! sockets and any wake-up fds the app registers (ring doorbells).
//!
//! One step is [`Driver::run_once`], so the app can either loop on it with
//! a blocking timeout on its own thread, or wait on [`Driver::as_raw_fd`]
//! (the epoll fd, readable when any source is ready) from a tokio
//! `AsyncFd` and call `run_once(Some(Duration::ZERO))`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use mio::net::{UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::core::{ConnId, Core, Effect};
use super::{CommandSink, EventSource};
use crate::ids::VenueId;
use crate::protocol::{encode_outbound, FrameReader, VenueState};
use crate::venue::Report;

const LISTENER: Token = Token(0);
/// Tokens at and above this are the app's wake-up sources.
const WAKEUP_BASE: usize = 1 << 30;

struct Conn {
    stream: UnixStream,
    reader: FrameReader,
    /// Encoded frames not yet written; `out[written..]` is pending.
    out: Vec<u8>,
    written: usize,
    /// WRITABLE interest is registered (only while bytes are pending).
    want_write: bool,
    /// Close once the pending bytes are written (or cannot be).
    closing: bool,
}

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.written
    }

    /// Writes as much as the socket takes. `Err` means the socket is dead.
    fn flush(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        Ok(())
    }
}

/// The gateway's poll loop state.
pub struct Driver {
    poll: Poll,
    events: Events,
    listener: UnixListener,
    conns: HashMap<ConnId, Conn>,
    next_conn: usize,
    next_wakeup: usize,
    core: Core,
    effects: Vec<Effect>,
    venue_events: Vec<Report>,
    frame: Vec<u8>,
}

impl Driver {
    /// Listens on `path`. The caller holds the state lock and has removed
    /// any stale socket file.
    pub fn bind(path: &Path, core: Core) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let mut listener = UnixListener::bind(path)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Driver {
            poll,
            events: Events::with_capacity(256),
            listener,
            conns: HashMap::new(),
            next_conn: 1,
            next_wakeup: WAKEUP_BASE,
            core,
            effects: Vec::new(),
            venue_events: Vec::new(),
            frame: Vec::new(),
        })
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Makes `fd` (e.g. a ring doorbell's eventfd) wake [`Self::run_once`];
    /// the [`EventSource`] acknowledges it when draining.
    pub fn register_wakeup(&mut self, fd: RawFd) -> io::Result<()> {
        let token = Token(self.next_wakeup);
        self.next_wakeup += 1;
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), token, Interest::READABLE)
    }

    /// Records a venue's state and pushes it to every connected strategy.
    pub fn set_venue_state(&mut self, venue: VenueId, state: VenueState, text: &str) {
        self.core
            .set_venue_state(venue, state, text, &mut self.effects);
        self.apply_effects();
    }

    /// One step: wait up to `timeout` for readiness, accept, read and
    /// handle frames, take the venue events `source` has, write out.
    /// Returns how many readiness events the poll delivered, so a caller
    /// polling with a zero timeout knows when the poller is drained.
    pub fn run_once(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut impl CommandSink,
        source: &mut impl EventSource,
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
                LISTENER => self.accept()?,
                Token(t) if t >= WAKEUP_BASE => {}
                Token(conn) => {
                    if readable {
                        self.read(conn, sink);
                    }
                    if writable {
                        self.write(conn, sink);
                    }
                }
            }
        }
        source.drain(&mut self.venue_events);
        for ev in self.venue_events.drain(..) {
            self.core.on_venue_event(&ev, &mut self.effects);
        }
        self.apply_effects();
        self.finish_writes(sink);
        Ok(n)
    }

    fn accept(&mut self) -> io::Result<()> {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A peer that vanished before accept: not the listener's fault.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(e),
            };
            let id = self.next_conn;
            self.next_conn += 1;
            self.poll
                .registry()
                .register(&mut stream, Token(id), Interest::READABLE)?;
            self.conns.insert(
                id,
                Conn {
                    stream,
                    reader: FrameReader::new(),
                    out: Vec::new(),
                    written: 0,
                    want_write: false,
                    closing: false,
                },
            );
            self.core.on_connect(id);
        }
    }

    /// Reads until the socket would block, handing each frame to the core.
    fn read(&mut self, id: ConnId, sink: &mut impl CommandSink) {
        let mut eof = false;
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.closing {
                break;
            }
            match conn.reader.read_from(&mut conn.stream) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => eof = true,
            }
            loop {
                // Copy the frame out so the core can run while the reader
                // is borrowed no longer.
                match conn.reader.next_frame() {
                    Ok(Some(body)) => {
                        self.frame.clear();
                        self.frame.extend_from_slice(body);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.core.on_protocol_error(id, &e, &mut self.effects);
                        break;
                    }
                }
                self.core.on_frame(id, &self.frame, sink, &mut self.effects);
                // The core may have asked to close this connection.
                if self.effects.contains(&Effect::Close { conn: id }) {
                    break;
                }
            }
            self.apply_effects();
            if eof {
                break;
            }
        }
        if eof {
            self.drop_conn(id, sink);
        }
    }

    fn write(&mut self, id: ConnId, sink: &mut impl CommandSink) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.flush().is_err() {
            self.drop_conn(id, sink);
        }
    }

    /// Turns the core's effects into buffered bytes and close marks. A
    /// connection whose pending bytes would exceed the limit even after a
    /// write attempt is marked as a slow consumer.
    fn apply_effects(&mut self) {
        let limit = self.core.max_outbound_bytes();
        for effect in self.effects.drain(..) {
            match effect {
                Effect::Send { conn, seq, msg } => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    if c.closing {
                        continue;
                    }
                    encode_outbound(seq, &msg, &mut c.out);
                    if c.pending() > limit {
                        let _ = c.flush();
                        if c.pending() > limit {
                            // Slow consumer: drop it, nobody else waits.
                            c.closing = true;
                            c.out.clear();
                            c.written = 0;
                        }
                    }
                }
                Effect::Close { conn } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.closing = true;
                    }
                }
            }
        }
    }

    /// Writes pending bytes everywhere, adjusts WRITABLE interest, and
    /// drops connections that are closing or dead.
    fn finish_writes(&mut self, sink: &mut impl CommandSink) {
        let mut dead = Vec::new();
        for (&id, c) in self.conns.iter_mut() {
            if c.flush().is_err() || c.closing {
                dead.push(id);
                continue;
            }
            let want = c.pending() > 0;
            if want != c.want_write {
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                if self
                    .poll
                    .registry()
                    .reregister(&mut c.stream, Token(id), interest)
                    .is_err()
                {
                    dead.push(id);
                    continue;
                }
                c.want_write = want;
            }
        }
        for id in dead {
            self.drop_conn(id, sink);
        }
    }

    fn drop_conn(&mut self, id: ConnId, sink: &mut impl CommandSink) {
        if let Some(mut c) = self.conns.remove(&id) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        self.core.on_disconnect(id, sink);
    }
}

impl AsRawFd for Driver {
    fn as_raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}

/// The poller's own fd: readable when any gateway source is ready, so an
/// async runtime can host the gateway (`layout = "single"`).
impl std::os::fd::AsFd for Driver {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.poll.registry().as_fd()
    }
}
