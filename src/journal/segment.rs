//! Segment files, the [`Journal`] writer and the [`Reader`].
//!
//! A journal is a directory of segment files `seg-<first seq, 16 lowercase
//! hex digits>.log`, each a run of records (see [`super::record`]); other
//! files in the directory are ignored. Appends are plain `write` calls on
//! the last segment, so once `append` returns the record survives a crash
//! of this process whatever the [`Durability`]; the policy only decides
//! when it is fsynced against power loss. Once the current segment has
//! reached `segment_bytes`, the next append starts a new segment named for
//! its seq (a segment may exceed the limit by one record).
//!
//! On open every segment is read in seq order. A record that does not
//! decode at the very end of the last segment, with nothing after it that
//! decodes, is a torn tail: the last write of a crashed process (or
//! garbage a power loss left there). It is cut away and reported in
//! [`Recovery`]. A bad record anywhere else is [`JournalError::Corrupt`],
//! naming the segment and the record's byte offset: the journal is never
//! truncated past records that decode.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::record::{self, Damage, Decoded, PayloadTooLarge, Record, HEADER, MAX_RECORD, MIN_LEN};

/// When appended records are fsynced. A record is written (a plain `write`)
/// before `append` returns under every policy, so a crash of the process
/// loses nothing; the policy is only about power loss and kernel crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Never fsync (rotation and truncation included) unless `sync` is
    /// called.
    None,
    /// fsync (`fdatasync`) in every `append`, before it returns.
    EveryRecord,
    /// fsync at most once per `interval`: in the first `append` at least
    /// `interval` after the previous fsync, or in an explicit
    /// [`Journal::sync`]. Records appended since stay unsynced until then.
    Group { interval: Duration },
}

impl Default for Durability {
    /// Group commit every millisecond.
    fn default() -> Self {
        Durability::Group {
            interval: Duration::from_millis(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// Size at which a segment is closed; the next append opens a new one.
    pub segment_bytes: u64,
    pub durability: Durability,
}

impl Default for JournalConfig {
    /// 64 MiB segments, group commit every millisecond.
    fn default() -> Self {
        JournalConfig {
            segment_bytes: 64 << 20,
            durability: Durability::default(),
        }
    }
}

/// What was wrong with the bytes at a segment offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Why {
    #[error("{0}")]
    Damaged(#[from] Damage),
    #[error("the record runs past the end of the segment ({remaining} bytes left)")]
    Incomplete { remaining: u64 },
    #[error("seq {seq} does not follow seq {prev}: seqs must strictly increase")]
    SeqNotIncreasing { seq: u64, prev: u64 },
    #[error("the segment is named for seq {named} but its first record is seq {first}")]
    NameMismatch { named: u64, first: u64 },
    #[error("the segment is named for seq {named}, which does not follow the previous record's seq {prev}")]
    NameNotIncreasing { named: u64, prev: u64 },
    #[error("the segment is empty but is not the last one")]
    EmptySegment,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal segment {segment} is corrupt at byte offset {offset}: {why}; this is not a torn last record, so nothing was truncated and replay stops here")]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        why: Why,
    },
    #[error(transparent)]
    TooLarge(#[from] PayloadTooLarge),
    #[error(
        "journal {dir} refuses appends after an earlier write or fsync error; reopen it to recover"
    )]
    Failed { dir: PathBuf },
    #[error("journal {dir}: seq {last} is the last one a u64 holds")]
    SeqExhausted { dir: PathBuf, last: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A torn last record, cut away by [`Journal::open`] (or only found, by a
/// [`Reader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Where the torn record started: the segment's length after the cut.
    pub offset: u64,
    /// Bytes from `offset` to the end of the segment.
    pub dropped_bytes: u64,
    pub why: Why,
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files in the journal after open (one is created in an
    /// empty directory).
    pub segments: usize,
    /// Records read.
    pub records: u64,
    /// The seq of the last record read.
    pub last_seq: Option<u64>,
    /// The torn tail cut away, if there was one.
    pub torn_tail: Option<TornTail>,
}

/// The file name of the segment whose first record is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("seg-{first_seq:016x}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The segment files of `dir` as (first seq, path), oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        if entry.file_type().map_err(io(&entry.path()))?.is_file() {
            segments.push((first, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|&(first, _)| first);
    Ok(segments)
}

/// Opens a [`Reader`] over every segment in `dir`.
pub fn replay(dir: impl AsRef<Path>) -> Result<Reader, JournalError> {
    replay_from(dir, 0)
}

/// Opens a [`Reader`] over the segments of `dir` from the one that starts
/// at `first_seq` on (a snapshot's segment: what came before is in it).
pub fn replay_from(dir: impl AsRef<Path>, first_seq: u64) -> Result<Reader, JournalError> {
    let mut segments = list_segments(dir.as_ref())?;
    segments.retain(|&(first, _)| first >= first_seq);
    Ok(Reader {
        segments,
        index: 0,
        data: Vec::new(),
        pos: 0,
        loaded: false,
        prev_seq: None,
        torn: None,
        done: false,
    })
}

/// Every record of a journal in seq order, one segment in memory at a
/// time. Iteration ends at the end of the journal or at a torn tail (see
/// [`Reader::torn_tail`]; a `Reader` never modifies files), and after the
/// first error.
pub struct Reader {
    segments: Vec<(u64, PathBuf)>,
    index: usize,
    data: Vec<u8>,
    pos: usize,
    loaded: bool,
    prev_seq: Option<u64>,
    torn: Option<TornTail>,
    done: bool,
}

impl Reader {
    /// The torn tail that ended iteration, if one did.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// The seq of the last record yielded.
    pub fn last_seq(&self) -> Option<u64> {
        self.prev_seq
    }

    fn corrupt(&self, offset: usize, why: Why) -> JournalError {
        JournalError::Corrupt {
            segment: self.segments[self.index].1.clone(),
            offset: offset as u64,
            why,
        }
    }

    /// Whether a record with a seq after the last good one decodes at any
    /// offset after `from`: then the bad record at `from` is not a torn
    /// tail but damage in the middle.
    fn decodes_after(&self, from: usize) -> bool {
        let min_seq = self.prev_seq.map_or(0, |s| s.saturating_add(1));
        (from + 1..self.data.len()).any(|at| {
            let bytes = &self.data[at..];
            // Cheap checks first, so a long tail of garbage is not
            // checksummed at every offset.
            let Some(head) = bytes.get(..HEADER + 8) else {
                return false;
            };
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let mut seq = [0; 8];
            seq.copy_from_slice(&head[HEADER..]);
            (MIN_LEN..=MAX_RECORD).contains(&len)
                && HEADER + len as usize <= bytes.len()
                && u64::from_le_bytes(seq) >= min_seq
                && matches!(record::decode(bytes), Decoded::Record { .. })
        })
    }

    fn step(&mut self) -> Result<Option<Record>, JournalError> {
        loop {
            let Some((named, path)) = self.segments.get(self.index) else {
                return Ok(None);
            };
            let named = *named;
            let last = self.index + 1 == self.segments.len();
            if !self.loaded {
                self.data = fs::read(path).map_err(io(path))?;
                self.pos = 0;
                self.loaded = true;
                if let Some(prev) = self.prev_seq.filter(|&prev| named <= prev) {
                    return Err(self.corrupt(0, Why::NameNotIncreasing { named, prev }));
                }
                if self.data.is_empty() && !last {
                    return Err(self.corrupt(0, Why::EmptySegment));
                }
            }
            if self.pos == self.data.len() {
                self.index += 1;
                self.loaded = false;
                continue;
            }
            let why = match record::decode(&self.data[self.pos..]) {
                Decoded::Record { record, len } => {
                    if self.pos == 0 && record.seq != named {
                        let first = record.seq;
                        return Err(self.corrupt(0, Why::NameMismatch { named, first }));
                    }
                    if let Some(prev) = self.prev_seq.filter(|&prev| record.seq <= prev) {
                        let seq = record.seq;
                        return Err(self.corrupt(self.pos, Why::SeqNotIncreasing { seq, prev }));
                    }
                    let record = record.to_record();
                    self.prev_seq = Some(record.seq);
                    self.pos += len;
                    return Ok(Some(record));
                }
                Decoded::Incomplete => Why::Incomplete {
                    remaining: (self.data.len() - self.pos) as u64,
                },
                Decoded::Corrupt { why } => Why::Damaged(why),
            };
            if last && !self.decodes_after(self.pos) {
                self.torn = Some(TornTail {
                    segment: path.clone(),
                    offset: self.pos as u64,
                    dropped_bytes: (self.data.len() - self.pos) as u64,
                    why,
                });
                return Ok(None);
            }
            return Err(self.corrupt(self.pos, why));
        }
    }
}

impl Iterator for Reader {
    type Item = Result<Record, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
            self.data = Vec::new();
        }
        item
    }
}

/// The journal writer: appends to the last segment of a directory.
pub struct Journal {
    dir: PathBuf,
    config: JournalConfig,
    file: File,
    /// The current segment's path.
    path: PathBuf,
    segment_len: u64,
    next_seq: u64,
    buf: Vec<u8>,
    unsynced: bool,
    last_sync: Instant,
    failed: bool,
}

impl Journal {
    /// Opens (creating it if needed) the journal in `dir`: reads every
    /// segment, cuts a torn tail away, and continues after the last record.
    /// An empty journal's first seq is 1.
    pub fn open(
        dir: impl AsRef<Path>,
        config: JournalConfig,
    ) -> Result<(Journal, Recovery), JournalError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut reader = replay(&dir)?;
        let mut records = 0;
        for record in &mut reader {
            record?;
            records += 1;
        }
        let last_seq = reader.last_seq();
        let torn_tail = reader.torn.take();
        let (file, path, segment_len, next_seq) = match reader.segments.last() {
            None => {
                let (file, path) = create_segment(&dir, 1, config.durability)?;
                (file, path, 0, 1)
            }
            Some((named, path)) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(io(path))?;
                if let Some(torn) = &torn_tail {
                    file.set_len(torn.offset).map_err(io(path))?;
                    if config.durability != Durability::None {
                        file.sync_all().map_err(io(path))?;
                    }
                }
                let segment_len = file.metadata().map_err(io(path))?.len();
                let next_seq = match last_seq {
                    // A non-empty last segment holds the last record.
                    Some(last) if segment_len > 0 => {
                        last.checked_add(1)
                            .ok_or_else(|| JournalError::SeqExhausted {
                                dir: dir.clone(),
                                last,
                            })?
                    }
                    _ => *named,
                };
                (file, path.clone(), segment_len, next_seq)
            }
        };
        let recovery = Recovery {
            segments: reader.segments.len().max(1),
            records,
            last_seq,
            torn_tail,
        };
        let journal = Journal {
            dir,
            config,
            file,
            path,
            segment_len,
            next_seq,
            buf: Vec::new(),
            unsynced: false,
            last_sync: Instant::now(),
            failed: false,
        };
        Ok((journal, recovery))
    }

    /// The seq the next `append` will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The current segment has reached `segment_bytes`: the next append
    /// starts a new one (the writer puts a snapshot there first).
    pub fn segment_full(&self) -> bool {
        self.segment_len > 0 && self.segment_len >= self.config.segment_bytes
    }

    /// Starts a new segment now, unless the current one is empty, so the
    /// next record is the first of its segment.
    pub fn start_segment(&mut self) -> Result<(), JournalError> {
        if self.failed {
            return Err(JournalError::Failed {
                dir: self.dir.clone(),
            });
        }
        if self.segment_len > 0 {
            self.rotate(self.next_seq)?;
        }
        Ok(())
    }

    /// Writes one record and returns its seq. After a write or fsync error
    /// the record may or may not be in the journal, and every later append
    /// fails with [`JournalError::Failed`] until the journal is reopened
    /// (which cuts a partial record away).
    pub fn append(&mut self, kind: u8, payload: &[u8]) -> Result<u64, JournalError> {
        if self.failed {
            return Err(JournalError::Failed {
                dir: self.dir.clone(),
            });
        }
        let seq = self.next_seq;
        let next = seq
            .checked_add(1)
            .ok_or_else(|| JournalError::SeqExhausted {
                dir: self.dir.clone(),
                last: seq,
            })?;
        self.buf.clear();
        record::encode_into(&mut self.buf, seq, kind, payload)?;
        if self.segment_len > 0 && self.segment_len >= self.config.segment_bytes {
            self.rotate(seq)?;
        }
        if let Err(source) = self.file.write_all(&self.buf) {
            self.failed = true;
            return Err(JournalError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.segment_len += self.buf.len() as u64;
        self.next_seq = next;
        self.unsynced = true;
        match self.config.durability {
            Durability::None => {}
            Durability::EveryRecord => self.sync_now()?,
            Durability::Group { interval } => {
                if self.last_sync.elapsed() >= interval {
                    self.sync_now()?;
                }
            }
        }
        Ok(seq)
    }

    /// fsyncs what was appended since the last fsync, under any policy.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.failed {
            return Err(JournalError::Failed {
                dir: self.dir.clone(),
            });
        }
        if self.unsynced {
            self.sync_now()?;
        }
        Ok(())
    }

    fn sync_now(&mut self) -> Result<(), JournalError> {
        if let Err(source) = self.file.sync_data() {
            self.failed = true;
            return Err(JournalError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Closes the current segment (fsyncing it first unless the policy is
    /// `None`) and makes a new one for `first_seq`.
    fn rotate(&mut self, first_seq: u64) -> Result<(), JournalError> {
        if self.unsynced && self.config.durability != Durability::None {
            self.sync_now()?;
        }
        (self.file, self.path) = create_segment(&self.dir, first_seq, self.config.durability)?;
        self.segment_len = 0;
        Ok(())
    }
}

/// Creates segment `first_seq` in `dir`, and unless the policy is `None`
/// fsyncs the directory so its name survives a power loss.
fn create_segment(
    dir: &Path,
    first_seq: u64,
    durability: Durability,
) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(segment_file_name(first_seq));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(io(&path))?;
    if durability != Durability::None {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok((file, path))
}
