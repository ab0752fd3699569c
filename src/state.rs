//! The state directory: the instance lock, the installation id, the epoch
//! and (in `journal/`) the journal.
//!
//! Two sidecars trading one account would double every order, so a sidecar
//! takes an exclusive `flock` on `ordergate.lock` before doing anything
//! else, and keeps it for its whole life (the kernel drops it when the
//! process dies, however it dies). The stale socket file of a previous run
//! is unlinked only while holding that lock, so a second instance cannot
//! steal a running sidecar's socket path.
//!
//! The epoch (`epoch`, a decimal u32) is bumped at every start and is part
//! of every venue client order id (see [`crate::ids`]), so no id is ever
//! reused across restarts. A corrupt epoch file is an error, never reset:
//! restarting at a lower epoch could reuse ids.
//!
//! The installation id (`installation`, six base-62 digits) is drawn from
//! the OS's random source the first time a directory is used and never
//! changes: it is in every client order id too, so two installations on
//! one account never mint the same id. A corrupt one is an error (a new
//! one would disown every live order).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};

use crate::ids::Namespace;

/// Bytes of a Unix socket path, not counting the NUL that `sun_path`
/// (108 bytes on Linux) also has to hold.
pub const MAX_SOCKET_PATH: usize = 107;

const LOCK_FILE: &str = "ordergate.lock";
const EPOCH_FILE: &str = "epoch";
const INSTALLATION_FILE: &str = "installation";
/// Where the journal's segments live, inside the state directory.
pub const JOURNAL_DIR: &str = "journal";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is locked by another ordergate ({holder}): two sidecars must never share a state directory")]
    Locked { path: PathBuf, holder: LockHolder },
    #[error("epoch file {path} is corrupt ({content:?} is not a u32); refusing to guess: fix or remove it only if you are sure no order ids of earlier runs are still live")]
    CorruptEpoch { path: PathBuf, content: String },
    #[error("installation file {path} is corrupt ({content:?} is not six base-62 digits); refusing to make a new one: every live order of this installation would become foreign")]
    CorruptInstallation { path: PathBuf, content: String },
    #[error("epoch in {0} is at u32::MAX and cannot be bumped")]
    EpochExhausted(PathBuf),
    #[error(
        "socket path {path} is {len} bytes; Unix socket paths are limited to {MAX_SOCKET_PATH}"
    )]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error("socket path {0:?} is empty or abstract; give a filesystem path")]
    SocketPathAbstract(PathBuf),
    #[error("{0} exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    #[error("{0} is in use: something is accepting connections on it")]
    SocketInUse(PathBuf),
}

/// Who holds the lock, as far as its lock file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHolder(pub Option<u32>);

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) => write!(f, "pid {pid}"),
            None => f.write_str("pid unknown"),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An open, locked state directory. The lock is held until this is dropped.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: File,
    epoch: Option<u32>,
    installation: Option<u64>,
}

impl StateDir {
    /// Creates the directory (mode 0700) if needed and takes the instance
    /// lock without waiting; [`StateError::Locked`] if another process (or
    /// another `StateDir` in this one) holds it.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io_err(path))?;
        let lock_path = path.join(LOCK_FILE);
        // Not truncated on open: until we hold the lock, the pid in it is
        // the holder's, and we want to report it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // Best effort: the holder may not have written its pid yet.
                let _ = file.read_to_string(&mut text);
                return Err(StateError::Locked {
                    path: lock_path,
                    holder: LockHolder(text.trim().parse().ok()),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io_err(&lock_path))?;
        Ok(StateDir {
            path: path.to_owned(),
            _lock: file,
            epoch: None,
            installation: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The epoch this process runs under, once [`StateDir::bump_epoch`]
    /// has been called.
    pub fn epoch(&self) -> Option<u32> {
        self.epoch
    }

    /// This installation and run, once [`StateDir::bump_epoch`] has been
    /// called.
    pub fn namespace(&self) -> Option<Namespace> {
        Some(Namespace::new(self.installation?, self.epoch?))
    }

    /// The journal's directory.
    pub fn journal_dir(&self) -> PathBuf {
        self.path.join(JOURNAL_DIR)
    }

    /// Reads the installation id, making one if the directory has none.
    fn installation_id(&mut self) -> Result<u64, StateError> {
        let path = self.path.join(INSTALLATION_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let id =
                    parse_installation(&bytes).ok_or_else(|| StateError::CorruptInstallation {
                        path: path.clone(),
                        content: String::from_utf8_lossy(&bytes).into_owned(),
                    })?;
                return Ok(id);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        let mut raw = [0u8; 8];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut raw))
            .map_err(io_err(Path::new("/dev/urandom")))?;
        let id = u64::from_le_bytes(raw) % Namespace::INSTALLATIONS;
        let text = Namespace::new(id, 0).installation_str();
        self.write_durably(INSTALLATION_FILE, &text)?;
        tracing::info!(installation = %text, "new installation id");
        Ok(id)
    }

    /// Writes `name` as one line: temp file, fsync, rename, fsync of the
    /// directory, so it is either the old content or the new.
    fn write_durably(&self, name: &str, content: &str) -> Result<(), StateError> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        writeln!(f, "{content}")
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.path))
    }

    /// Reads the installation id (making it on first use), reads the
    /// stored epoch (0 if there is none yet), stores epoch + 1 durably and
    /// returns it. The new epoch is on disk before any order can use it.
    pub fn bump_epoch(&mut self) -> Result<u32, StateError> {
        self.installation = Some(self.installation_id()?);
        let path = self.path.join(EPOCH_FILE);
        let current = match std::fs::read(&path) {
            Ok(bytes) => parse_epoch(&bytes).ok_or_else(|| StateError::CorruptEpoch {
                path: path.clone(),
                content: String::from_utf8_lossy(&bytes).into_owned(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(&path)(e)),
        };
        let next = current
            .checked_add(1)
            .ok_or_else(|| StateError::EpochExhausted(path.clone()))?;
        self.write_durably(EPOCH_FILE, &next.to_string())?;
        self.epoch = Some(next);
        Ok(next)
    }

    /// Makes `path` ready to bind: checks it with [`check_socket_path`],
    /// creates its parent directory, and removes a stale socket left by an
    /// earlier run. Taking `&self` is the proof that we hold the lock.
    /// Anything that is not a socket, or a socket something still accepts
    /// connections on, is left alone and reported.
    pub fn prepare_socket(&self, path: &Path) -> Result<(), StateError> {
        check_socket_path(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(path)(e)),
        };
        if !meta.file_type().is_socket() {
            return Err(StateError::NotASocket(path.to_owned()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(StateError::SocketInUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io_err(path))
    }
}

fn parse_installation(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_suffix('\n').unwrap_or(text);
    Namespace::parse_installation(digits)
}

fn parse_epoch(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_suffix('\n').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks that `path` can name a filesystem Unix socket: not empty, not
/// abstract (leading NUL or `@`), and within [`MAX_SOCKET_PATH`] bytes.
pub fn check_socket_path(path: &Path) -> Result<(), StateError> {
    let bytes = path.as_os_str().as_bytes();
    if matches!(bytes.first(), None | Some(0) | Some(b'@')) {
        return Err(StateError::SocketPathAbstract(path.to_owned()));
    }
    if bytes.len() > MAX_SOCKET_PATH {
        return Err(StateError::SocketPathTooLong {
            path: path.to_owned(),
            len: bytes.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installation_parsing_is_strict() {
        assert_eq!(parse_installation(b"000001\n"), Some(1));
        assert_eq!(parse_installation(b"00000Z"), Some(61));
        assert_eq!(parse_installation(b"00001"), None);
        assert_eq!(parse_installation(b"0000-1\n"), None);
        assert_eq!(parse_installation(b"0000011\n"), None);
    }

    #[test]
    fn epoch_parsing_is_strict() {
        assert_eq!(parse_epoch(b"7\n"), Some(7));
        assert_eq!(parse_epoch(b"7"), Some(7));
        assert_eq!(parse_epoch(b""), None);
        assert_eq!(parse_epoch(b" 7\n"), None);
        assert_eq!(parse_epoch(b"-1\n"), None);
        assert_eq!(parse_epoch(b"4294967296\n"), None);
        assert_eq!(parse_epoch(b"7\n\n"), None);
    }
}
