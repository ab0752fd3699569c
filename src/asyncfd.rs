//! Waiting on a doorbell (or a mio poller's own fd) from a tokio task.

use std::io;

/// Registers a duplicate of `fd` with the current tokio runtime, so an
/// async task can wait on a doorbell (or on a mio poller's own fd) next to
/// its sockets. Needs a tokio runtime with I/O enabled.
pub fn register_async(
    fd: std::os::fd::BorrowedFd<'_>,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    let owned = fd.try_clone_to_owned()?;
    // SAFETY: `AsyncFd` requires that the fd stays open, and is not
    // registered elsewhere under the same number, for as long as it is
    // registered. It owns `owned`, a fresh duplicate made just above: the
    // number is new to this process's epoll sets, and it is closed only when
    // the `AsyncFd` drops it after deregistering.
    unsafe { tokio::io::unix::AsyncFd::register(owned) }.map_err(|e| e.into())
}
