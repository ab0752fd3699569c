//! Record framing: pure functions over bytes.
//!
//! One record on disk, all integers little-endian:
//!
//! ```text
//! len: u32 | crc: u32 | seq: u64 | kind: u8 | payload
//! ```
//!
//! `len` counts the bytes after `crc` (`seq`, `kind` and the payload, so at
//! least [`MIN_LEN`]); `crc` is the CRC-32 (IEEE, the `crc32fast` crate) of
//! those same bytes. A `len` above [`MAX_RECORD`] is never written and is
//! read as corruption, so a damaged length cannot make a reader wait for,
//! or skip over, megabytes that are not a record.

/// Bytes of `len` and `crc`, before the checksummed body.
pub const HEADER: usize = 8;

/// Smallest valid `len`: `seq` (8 bytes) and `kind` (1 byte), no payload.
pub const MIN_LEN: u32 = 9;

/// Largest valid `len` (16 MiB): the body of one record, payload included.
pub const MAX_RECORD: u32 = 16 << 20;

/// Largest payload one record can carry.
pub const MAX_PAYLOAD: usize = (MAX_RECORD - MIN_LEN) as usize;

/// A record borrowed from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub seq: u64,
    pub kind: u8,
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Copies the payload into an owned [`Record`].
    pub fn to_record(&self) -> Record {
        Record {
            seq: self.seq,
            kind: self.kind,
            payload: self.payload.to_vec(),
        }
    }
}

/// An owned record, as replay yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// What [`decode`] found at the start of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole record whose checksum matches; `len` is its size on disk,
    /// header included: the offset of the next record.
    Record { record: RecordRef<'a>, len: usize },
    /// Fewer bytes than the header, or than its `len` says.
    Incomplete,
    /// The bytes cannot be a record.
    Corrupt { why: Damage },
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("length field {len} is below the {MIN_LEN}-byte minimum (seq and kind)")]
    LenTooSmall { len: u32 },
    #[error("length field {len} is above the {MAX_RECORD}-byte record limit")]
    LenTooLarge { len: u32 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
}

/// A payload too large for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload of {len} bytes is above the {MAX_PAYLOAD}-byte limit of one record")]
pub struct PayloadTooLarge {
    pub len: usize,
}

/// Appends one record to `buf` and returns its size on disk. Allocates
/// nothing beyond growing `buf`; `buf` is untouched on error.
pub fn encode_into(
    buf: &mut Vec<u8>,
    seq: u64,
    kind: u8,
    payload: &[u8],
) -> Result<usize, PayloadTooLarge> {
    if payload.len() > MAX_PAYLOAD {
        return Err(PayloadTooLarge { len: payload.len() });
    }
    // Cannot truncate: checked against MAX_PAYLOAD above.
    let len = MIN_LEN + payload.len() as u32;
    let start = buf.len();
    buf.reserve(HEADER + len as usize);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(HEADER + len as usize)
}

/// Decodes the record at the start of `bytes`; bytes after it are ignored.
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    let Some(header) = bytes.get(..HEADER) else {
        return Decoded::Incomplete;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len < MIN_LEN {
        return Decoded::Corrupt {
            why: Damage::LenTooSmall { len },
        };
    }
    if len > MAX_RECORD {
        return Decoded::Corrupt {
            why: Damage::LenTooLarge { len },
        };
    }
    let total = HEADER + len as usize;
    let Some(body) = bytes.get(HEADER..total) else {
        return Decoded::Incomplete;
    };
    let computed = crc32fast::hash(body);
    if computed != stored {
        return Decoded::Corrupt {
            why: Damage::Checksum { stored, computed },
        };
    }
    let (seq, rest) = body.split_at(8);
    let mut seq_bytes = [0; 8];
    seq_bytes.copy_from_slice(seq);
    Decoded::Record {
        record: RecordRef {
            seq: u64::from_le_bytes(seq_bytes),
            kind: rest[0],
            payload: &rest[1..],
        },
        len: total,
    }
}
