//! `ordergate journal inspect`: the built binary over a small journal
//! written the way the gateway writes one, then torn and corrupted.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use ordergate::decimal::WideDecimal;
use ordergate::desk::{DeskInput, Request};
use ordergate::ids::{ClientId, Namespace, OrderKey, VenueId};
use ordergate::journal::record::HEADER;
use ordergate::journal::writer::JournalWriter;
use ordergate::journal::{decode, Decoded, Durability, Journal, JournalConfig};
use ordergate::model::{
    flags, ExecEvent, NewOrder, OrdType, OrderRequest, Reason, Side, TimeInForce, VenueState,
    VenueStatus,
};
use ordergate::venue::{Command, Report};
use ordergate_proto::codec::{encode_outbound, Fill, Outbound};

fn ns() -> Namespace {
    Namespace::new(Namespace::parse_installation("k3Xq9Z").unwrap(), 3)
}

fn key(order_id: u64) -> OrderKey {
    OrderKey {
        strategy: 1,
        order_id,
    }
}

fn frame(seq: u64, msg: &Outbound) -> Vec<u8> {
    let mut out = Vec::new();
    encode_outbound(seq, msg, &mut out);
    out
}

/// Strategy 1's request.
fn request(w: &mut JournalWriter, now_ns: u64, request: Request) {
    w.command(
        now_ns,
        &DeskInput {
            strategy: 1,
            request,
        },
    );
}

/// A limit buy of 100 at 5000000 on instrument 1.
fn buy(order_id: u64) -> NewOrder {
    NewOrder {
        order_id,
        instrument_id: 1,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price: 5_000_000,
        qty: 100,
    }
}

/// What strategy 1 was told, as sequenced frame `seq`.
fn sent(w: &mut JournalWriter, seq: u64, msg: Outbound) {
    w.sent(1, seq, &frame(seq, &msg));
}

fn rejected(order_id: u64, reason: Reason, text: &str) -> Outbound {
    Outbound::Rejected {
        order_id,
        reason,
        text: text.into(),
    }
}

/// A state directory whose journal holds one run: order 5 placed,
/// accepted and partly filled, then a cancel asked; order 6 refused
/// (ring full); order 7 refused by the desk (never placed); a venue
/// coming up.
fn write_journal(state: &Path) -> PathBuf {
    let dir = state.join("journal");
    let config = JournalConfig {
        segment_bytes: 64 << 20,
        durability: Durability::None,
    };
    let (journal, _) = Journal::open(&dir, config).unwrap();
    let mut w = JournalWriter::new(journal);
    let id5 = ClientId::order(ns(), key(5));
    w.start(ns());
    request(&mut w, 1, Request::NewOrder(buy(5)));
    w.report(&Report::Exec(ExecEvent::Accepted {
        client_id: id5,
        venue_order_id: "123".into(),
        time_ms: 1_700_000_000_000,
    }));
    let accepted = Outbound::Accepted {
        order_id: 5,
        venue_order_id: "123".into(),
    };
    sent(&mut w, 1, accepted);
    let fee = WideDecimal::new(1, 2);
    w.report(&Report::Exec(ExecEvent::Fill {
        client_id: id5,
        trade_id: "77".into(),
        last_qty: 10,
        last_price: 5_000_000,
        fee,
        fee_asset: "BNB".into(),
        time_ms: 1_700_000_000_001,
        is_maker: true,
        order_filled: false,
    }));
    let fill = Fill {
        order_id: 5,
        last_qty: 10,
        last_price: 5_000_000,
        cum_qty: 10,
        cum_notional: 50_000_000,
        avg_price: 5_000_000,
        leaves_qty: 90,
        fee,
        fee_asset: "BNB".into(),
        trade_id: "77".into(),
        venue_time_ms: 1_700_000_000_001,
        is_maker: true,
    };
    sent(&mut w, 2, Outbound::Fill(fill));
    request(&mut w, 2, Request::Cancel { order_id: 5 });
    let sell = NewOrder {
        side: Side::Sell,
        ord_type: OrdType::Market,
        tif: TimeInForce::Ioc,
        price: 0,
        qty: 3,
        ..buy(6)
    };
    request(&mut w, 3, Request::NewOrder(sell));
    w.refused(&Command::Place(OrderRequest {
        queued_ns: 3,
        client_id: ClientId::order(ns(), key(6)),
        instrument: sell.instrument_id,
        side: sell.side,
        ord_type: sell.ord_type,
        tif: sell.tif,
        flags: sell.flags,
        price: sell.price,
        qty: sell.qty,
    }));
    sent(
        &mut w,
        3,
        rejected(6, Reason::QueueFull, "session queue full"),
    );
    let maker = NewOrder {
        instrument_id: 9,
        ord_type: OrdType::LimitMaker,
        flags: flags::POST_ONLY,
        price: 1,
        qty: 1,
        ..buy(7)
    };
    request(&mut w, 4, Request::NewOrder(maker));
    let text = "instrument 9 is not configured";
    sent(&mut w, 4, rejected(7, Reason::UnknownInstrument, text));
    w.report(&Report::Venue(VenueStatus {
        venue: VenueId::BinanceSpot,
        state: VenueState::Up,
        text: "connected".into(),
    }));
    assert_eq!(w.failed(), None);
    assert_eq!(w.appended(), 13);
    dir
}

const RECORDS: [&str; 14] = [
    "#1 start installation k3Xq9Z epoch 3",
    "#2 command strategy 1: new order 5 BUY LIMIT GTC qty 100 price 5000000 on instrument 1",
    "#3 report accepted ok3Xq9Z3-1-5 venue id 123",
    "#4 sent strategy 1 seq 1: Accepted order 5 venue id 123",
    "#5 report fill ok3Xq9Z3-1-5 trade 77 qty 10 price 5000000 fee 0.01 BNB maker",
    "#6 sent strategy 1 seq 2: Fill order 5 qty 10 price 5000000 cum 10 leaves 90 trade 77",
    "#7 command strategy 1: cancel order 5",
    "#8 command strategy 1: new order 6 SELL MARKET IOC qty 3 on instrument 1",
    "#9 refused place ok3Xq9Z3-1-6 (strategy 1 order 6): ring full, answered QueueFull",
    "#10 sent strategy 1 seq 3: Rejected order 6 QueueFull: session queue full",
    "#11 command strategy 1: new order 7 BUY LIMIT_MAKER GTC qty 1 price 1 on instrument 9 flags POST_ONLY",
    "#12 sent strategy 1 seq 4: Rejected order 7 UnknownInstrument: instrument 9 is not configured",
    "#13 report venue binance-spot Up: connected",
    "#14 start installation k3Xq9Z epoch 4",
];

const SUMMARY: [&str; 5] = [
    "orders:",
    "  strategy 1 order 5 client ok3Xq9Z3-1-5 told PartiallyFilled filled 10 fills 1",
    "  strategy 1 order 6 client ok3Xq9Z3-1-6 told Rejected filled 0 fills 0",
    // Refused by the desk before a client id was minted: never placed.
    "  strategy 1 order 7 client - told Rejected filled 0 fills 0",
    "totals: 14 records, 2 runs, 3 orders, 1 open (as last told)",
];

/// The journal above, and a second run's start.
fn journal(state: &Path) -> PathBuf {
    let dir = write_journal(state);
    let (journal, _) = Journal::open(&dir, JournalConfig::default()).unwrap();
    let mut w = JournalWriter::new(journal);
    w.start(Namespace::new(ns().installation, 4));
    dir
}

fn run(args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .args(["journal", "inspect"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn prints_every_record_then_the_orders() {
    let state = tempfile::tempdir().unwrap();
    let dir = journal(state.path());
    // A state directory and its journal directory read the same.
    for target in [state.path(), dir.as_path()] {
        let out = run(&[], target);
        assert!(out.status.success(), "{out:?}");
        let lines = stdout(&out);
        assert_eq!(
            lines[0],
            format!("journal {}: 1 segments", dir.display()),
            "{lines:#?}"
        );
        assert_eq!(lines[1..15], RECORDS, "{lines:#?}");
        assert_eq!(lines[15..], SUMMARY, "{lines:#?}");
    }
}

#[test]
fn orders_only_and_from() {
    let state = tempfile::tempdir().unwrap();
    journal(state.path());
    let out = run(&["--orders-only"], state.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out)[1..], SUMMARY);

    let out = run(&["--from", "12"], state.path());
    assert!(out.status.success(), "{out:?}");
    let lines = stdout(&out);
    assert_eq!(lines[1..4], RECORDS[11..], "{lines:#?}");
    assert_eq!(lines[4..], SUMMARY, "the summary covers every record");
}

#[test]
fn a_torn_tail_is_reported_and_the_rest_printed() {
    let state = tempfile::tempdir().unwrap();
    let dir = journal(state.path());
    let seg = segment(&dir);
    let len = fs::metadata(&seg).unwrap().len();
    // A length saying 64 bytes, then only 3: a write cut short.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[64, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    let out = run(&[], state.path());
    assert!(out.status.success(), "{out:?}");
    let lines = stdout(&out);
    assert_eq!(lines[1..15], RECORDS, "{lines:#?}");
    let torn = format!(
        "torn tail: {} at byte offset {len}, 7 bytes: the record runs past the end of the segment (7 bytes left) (not an error: the sidecar cuts it at its next start)",
        seg.display()
    );
    assert_eq!(lines[15], torn);
    assert_eq!(lines[16..], SUMMARY);
    // Inspecting never cuts it.
    assert_eq!(fs::metadata(&seg).unwrap().len(), len + 7);
}

#[test]
fn a_corrupt_middle_record_fails_naming_its_offset() {
    let state = tempfile::tempdir().unwrap();
    let dir = journal(state.path());
    let seg = segment(&dir);
    let mut bytes = fs::read(&seg).unwrap();
    // Record #3 starts after #1 and #2.
    let mut offset = 0;
    for _ in 0..2 {
        let Decoded::Record { len, .. } = decode(&bytes[offset..]) else {
            panic!("records #1 and #2 decode");
        };
        offset += len;
    }
    bytes[offset + HEADER + 9] ^= 0xff; // a payload byte: the checksum fails
    fs::write(&seg, &bytes).unwrap();
    let out = run(&[], state.path());
    assert!(!out.status.success(), "{out:?}");
    let lines = stdout(&out);
    assert_eq!(lines[1..], RECORDS[..2], "the records before it print");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "journal segment {} is corrupt at byte offset {offset}: checksum mismatch",
        seg.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn empty_and_missing_journals_say_so() {
    let state = tempfile::tempdir().unwrap();
    let out = run(&[], state.path());
    assert!(out.status.success(), "{out:?}");
    let lines = stdout(&out);
    assert_eq!(
        lines[1],
        format!(
            "empty journal: no segment files (seg-*.log) in {}",
            state.path().display()
        )
    );

    // Opened once: one segment file, no records.
    let dir = state.path().join("journal");
    Journal::open(&dir, JournalConfig::default()).unwrap();
    let out = run(&[], state.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out)[1], "empty journal: no records");

    let missing = state.path().join("nope");
    let out = run(&[], &missing);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{}: no such directory", missing.display())),
        "{stderr}"
    );
}
