//! The journal's storage layer: record framing, segments and rotation,
//! torn-tail truncation, corrupt-middle errors, durability policies.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ordergate::journal::record::{HEADER, MAX_PAYLOAD, MIN_LEN};
use ordergate::journal::{
    decode, encode_into, replay, segment_file_name, Damage, Decoded, Durability, Journal,
    JournalConfig, JournalError, Record, RecordRef, Why, MAX_RECORD,
};

fn config(segment_bytes: u64, durability: Durability) -> JournalConfig {
    JournalConfig {
        segment_bytes,
        durability,
    }
}

/// Payloads of varying sizes, some empty, so records straddle limits.
fn payload(seq: u64) -> Vec<u8> {
    (0..(seq * 7 % 40))
        .map(|i| (seq as u8) ^ (i as u8))
        .collect()
}

/// Appends records for `payload(next_seq)..` and returns what was written.
fn append_n(journal: &mut Journal, n: u64) -> Vec<Record> {
    (0..n)
        .map(|_| {
            let seq = journal.next_seq();
            let kind = (seq % 5) as u8;
            let payload = payload(seq);
            assert_eq!(journal.append(kind, &payload).unwrap(), seq);
            Record { seq, kind, payload }
        })
        .collect()
}

fn read_all(dir: &Path) -> Vec<Record> {
    replay(dir).unwrap().map(Result::unwrap).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
}

/// Byte size of record `seq` on disk.
fn record_len(seq: u64) -> u64 {
    (HEADER + MIN_LEN as usize + payload(seq).len()) as u64
}

#[test]
fn record_round_trip_and_framing() {
    let mut buf = vec![0xEE]; // a prefix the encoder must leave alone
    let n = encode_into(&mut buf, 0x0102_0304_0506_0708, 7, b"hello").unwrap();
    assert_eq!(n, 8 + 9 + 5);
    assert_eq!(buf.len(), 1 + n);
    let bytes = &buf[1..];
    assert_eq!(&bytes[..4], &14u32.to_le_bytes());
    assert_eq!(&bytes[4..8], &crc32fast::hash(&bytes[8..]).to_le_bytes());
    assert_eq!(&bytes[8..16], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(bytes[16], 7);
    let mut two = bytes.to_vec();
    encode_into(&mut two, 9, 0, b"").unwrap();
    assert_eq!(
        decode(&two),
        Decoded::Record {
            record: RecordRef {
                seq: 0x0102_0304_0506_0708,
                kind: 7,
                payload: b"hello"
            },
            len: n
        }
    );
    match decode(&two[n..]) {
        Decoded::Record { record, len } => {
            assert_eq!(
                record.to_record(),
                Record {
                    seq: 9,
                    kind: 0,
                    payload: vec![]
                }
            );
            assert_eq!(len, 17);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn record_incomplete_and_corrupt() {
    let mut buf = Vec::new();
    encode_into(&mut buf, 1, 2, b"payload").unwrap();
    for cut in 0..buf.len() {
        assert_eq!(decode(&buf[..cut]), Decoded::Incomplete, "cut at {cut}");
    }
    let mut flipped = buf.clone();
    flipped[20] ^= 1;
    assert!(matches!(
        decode(&flipped),
        Decoded::Corrupt {
            why: Damage::Checksum { .. }
        }
    ));
    let mut huge = buf.clone();
    huge[..4].copy_from_slice(&(MAX_RECORD + 1).to_le_bytes());
    assert_eq!(
        decode(&huge),
        Decoded::Corrupt {
            why: Damage::LenTooLarge {
                len: MAX_RECORD + 1
            }
        }
    );
    assert_eq!(
        decode(&[0; 32]),
        Decoded::Corrupt {
            why: Damage::LenTooSmall { len: 0 }
        }
    );
    let mut untouched = vec![1, 2, 3];
    let too_big = vec![0; MAX_PAYLOAD + 1];
    assert!(encode_into(&mut untouched, 1, 0, &too_big).is_err());
    assert_eq!(untouched, [1, 2, 3]);
}

#[test]
fn round_trip_across_rotated_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, recovery) = Journal::open(dir.path(), config(256, Durability::None)).unwrap();
    assert_eq!(recovery.records, 0);
    assert_eq!(recovery.last_seq, None);
    assert_eq!(journal.next_seq(), 1);
    let written = append_n(&mut journal, 100);
    drop(journal);

    let files = segments(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        // Each segment is named for its first record, and only its last
        // record takes it past the limit.
        let bytes = fs::read(file).unwrap();
        let first = decode(&bytes);
        let Decoded::Record { record, .. } = first else {
            panic!("{file:?}: {first:?}")
        };
        assert_eq!(
            file.file_name().unwrap().to_str().unwrap(),
            segment_file_name(record.seq)
        );
        let largest_record = (HEADER + MIN_LEN as usize + 39) as u64;
        assert!(bytes.len() as u64 <= 256 + largest_record, "{file:?}");
    }
    assert_eq!(read_all(dir.path()), written);

    let (journal, recovery) = Journal::open(dir.path(), config(256, Durability::None)).unwrap();
    assert_eq!(recovery.segments, files.len());
    assert_eq!(recovery.records, 100);
    assert_eq!(recovery.last_seq, Some(100));
    assert_eq!(recovery.torn_tail, None);
    assert_eq!(journal.next_seq(), 101);
}

#[test]
fn torn_tail_is_truncated_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(256, Durability::None);
    let (mut journal, _) = Journal::open(dir.path(), cfg.clone()).unwrap();
    let mut written = append_n(&mut journal, 30);
    drop(journal);
    let last = segments(dir.path()).pop().unwrap();
    let full = fs::metadata(&last).unwrap().len();
    let record_30 = full - record_len(30);
    // Cut record 30 mid-record.
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(full - 3)
        .unwrap();

    let (mut journal, recovery) = Journal::open(dir.path(), cfg.clone()).unwrap();
    let torn = recovery.torn_tail.expect("a torn tail");
    assert_eq!(torn.segment, last);
    assert_eq!(torn.offset, record_30);
    assert_eq!(torn.dropped_bytes, record_len(30) - 3);
    assert!(matches!(torn.why, Why::Incomplete { .. }), "{:?}", torn.why);
    assert_eq!(recovery.last_seq, Some(29));
    assert_eq!(fs::metadata(&last).unwrap().len(), record_30);
    written.pop();
    assert_eq!(journal.next_seq(), 30);
    written.extend(append_n(&mut journal, 3));
    drop(journal);
    assert_eq!(read_all(dir.path()), written);
    assert_eq!(written.last().unwrap().seq, 32);
}

#[test]
fn torn_tail_with_garbage_after_it_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, Durability::None);
    let (mut journal, _) = Journal::open(dir.path(), cfg.clone()).unwrap();
    let mut written = append_n(&mut journal, 10);
    drop(journal);
    let last = segments(dir.path()).pop().unwrap();
    let full = fs::metadata(&last).unwrap().len();
    let record_10 = full - record_len(10);
    // Cut record 10 mid-record, then garbage: long enough that record 10's
    // length is "complete" again, so it fails on its checksum.
    let file = OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(record_10 + 12).unwrap();
    drop(file);
    let mut file = OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&[0xA5; 97]).unwrap();
    drop(file);

    let (mut journal, recovery) = Journal::open(dir.path(), cfg.clone()).unwrap();
    let torn = recovery.torn_tail.expect("a torn tail");
    assert_eq!(torn.offset, record_10);
    assert_eq!(torn.dropped_bytes, 12 + 97);
    assert!(
        matches!(torn.why, Why::Damaged(Damage::Checksum { .. })),
        "{:?}",
        torn.why
    );
    assert_eq!(fs::metadata(&last).unwrap().len(), record_10);
    written.pop();
    assert_eq!(journal.next_seq(), 10);

    // Garbage after whole records, with a length field that is implausible.
    written.extend(append_n(&mut journal, 2));
    drop(journal);
    let good = fs::metadata(&last).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&[0xFF; 5]).unwrap();
    drop(file);
    let (mut journal, recovery) = Journal::open(dir.path(), cfg).unwrap();
    let torn = recovery.torn_tail.expect("a torn tail");
    assert_eq!((torn.offset, torn.dropped_bytes), (good, 5));
    assert_eq!(fs::metadata(&last).unwrap().len(), good);
    assert_eq!(journal.next_seq(), 12);
    written.extend(append_n(&mut journal, 1));
    drop(journal);
    assert_eq!(read_all(dir.path()), written);
}

#[test]
fn corrupt_record_in_first_segment_fails_open_with_path_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(256, Durability::None);
    let (mut journal, _) = Journal::open(dir.path(), cfg.clone()).unwrap();
    append_n(&mut journal, 60);
    drop(journal);
    let first = segments(dir.path()).remove(0);
    assert_eq!(first, dir.path().join(segment_file_name(1)));
    // Flip the last payload byte of record 3.
    let offset = record_len(1) + record_len(2);
    let mut bytes = fs::read(&first).unwrap();
    let at = (offset + record_len(3) - 1) as usize;
    bytes[at] ^= 0x40;
    fs::write(&first, &bytes).unwrap();
    let sizes: Vec<u64> = segments(dir.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();

    let err = Journal::open(dir.path(), cfg)
        .err()
        .expect("open must fail");
    let msg = err.to_string();
    assert!(msg.contains(&first.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("byte offset {offset}")), "{msg}");
    assert!(msg.contains("checksum mismatch"), "{msg}");
    match err {
        JournalError::Corrupt {
            segment,
            offset: at,
            why: Why::Damaged(Damage::Checksum { .. }),
        } => assert_eq!((segment, at), (first.clone(), offset)),
        other => panic!("{other:?}"),
    }
    // Nothing was truncated.
    let after: Vec<u64> = segments(dir.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
    assert_eq!(sizes, after);

    // Replay yields the records before it, then the same error, then ends.
    let mut reader = replay(dir.path()).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().seq, 1);
    assert_eq!(reader.next().unwrap().unwrap().seq, 2);
    assert!(matches!(
        reader.next(),
        Some(Err(JournalError::Corrupt { .. }))
    ));
    assert!(reader.next().is_none());
}

#[test]
fn corrupt_record_mid_last_segment_is_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, Durability::None);
    let (mut journal, _) = Journal::open(dir.path(), cfg.clone()).unwrap();
    append_n(&mut journal, 10);
    drop(journal);
    let only = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&only).unwrap();
    let len = bytes.len() as u64;
    // Record 4's length field grows, so it swallows records 5 onwards.
    let offset = (1..4).map(record_len).sum::<u64>();
    bytes[offset as usize] = bytes[offset as usize].wrapping_add(20);
    fs::write(&only, &bytes).unwrap();

    let err = Journal::open(dir.path(), cfg)
        .err()
        .expect("open must fail");
    let msg = err.to_string();
    assert!(msg.contains(&only.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("byte offset {offset}")), "{msg}");
    assert_eq!(fs::metadata(&only).unwrap().len(), len);
}

#[test]
fn seq_strictly_increasing_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(200, Durability::default());
    let mut expected: u64 = 1;
    for round in 0..5 {
        let (mut journal, recovery) = Journal::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(
            recovery.last_seq,
            expected.checked_sub(1).filter(|&s| s > 0)
        );
        assert_eq!(journal.next_seq(), expected);
        let written = append_n(&mut journal, 7 + round);
        journal.sync().unwrap();
        expected = written.last().unwrap().seq + 1;
    }
    let seqs: Vec<u64> = read_all(dir.path()).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..expected).collect::<Vec<_>>());
    assert!(segments(dir.path()).len() > 5);
}

#[test]
fn empty_last_segment_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, Durability::EveryRecord);
    let (mut journal, _) = Journal::open(dir.path(), cfg.clone()).unwrap();
    let mut written = append_n(&mut journal, 4);
    drop(journal);
    // A segment that was created but whose first record never made it.
    fs::write(dir.path().join(segment_file_name(5)), b"\x20\x00").unwrap();
    let (mut journal, recovery) = Journal::open(dir.path(), cfg).unwrap();
    assert_eq!(recovery.torn_tail.unwrap().dropped_bytes, 2);
    assert_eq!(journal.next_seq(), 5);
    written.extend(append_n(&mut journal, 2));
    drop(journal);
    assert_eq!(read_all(dir.path()), written);
    assert_eq!(segments(dir.path()).len(), 2);
}

#[test]
fn each_durability_policy_appends_and_reads_back() {
    for durability in [
        Durability::None,
        Durability::EveryRecord,
        Durability::Group {
            interval: Duration::from_millis(1),
        },
        Durability::Group {
            interval: Duration::ZERO,
        },
        Durability::Group {
            interval: Duration::from_secs(3600),
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(300, durability);
        let (mut journal, _) = Journal::open(dir.path(), cfg.clone()).unwrap();
        let mut written = append_n(&mut journal, 25);
        journal.sync().unwrap();
        journal.sync().unwrap();
        drop(journal);
        let (mut journal, recovery) = Journal::open(dir.path(), cfg).unwrap();
        assert_eq!(recovery.records, 25, "{durability:?}");
        written.extend(append_n(&mut journal, 5));
        drop(journal);
        assert_eq!(read_all(dir.path()), written, "{durability:?}");
    }
}

#[test]
fn oversized_payload_is_refused_and_seq_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    let err = journal.append(1, &vec![0; MAX_PAYLOAD + 1]).unwrap_err();
    assert!(matches!(err, JournalError::TooLarge(_)), "{err:?}");
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(journal.append(1, b"ok").unwrap(), 1);
}

#[test]
fn other_files_in_the_directory_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("snapshot"), b"not a segment").unwrap();
    fs::write(dir.path().join("seg-00000000000000XY.log"), b"junk").unwrap();
    let (mut journal, recovery) = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    assert_eq!(recovery.records, 0);
    assert_eq!(journal.append(3, b"x").unwrap(), 1);
}
