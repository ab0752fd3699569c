//! Codec properties over thousands of pseudo-random messages, the golden
//! byte vectors shared with the Python client's tests, and a round trip
//! through the Python codec (`clients/python/ordergate_client.py
//! --roundtrip`), which must give back every frame byte for byte.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ordergate_core::decimal::WideDecimal;
use ordergate_proto::codec::*;

/// xorshift64*: deterministic, seeded, no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn u8(&mut self) -> u8 {
        self.next() as u8
    }
    fn u16(&mut self) -> u16 {
        self.pick(&[0, 1, u16::MAX]).unwrap_or(self.next() as u16)
    }
    fn u32(&mut self) -> u32 {
        self.pick(&[0, 1, u32::MAX]).unwrap_or(self.next() as u32)
    }
    fn u64(&mut self) -> u64 {
        self.pick(&[0, 1, u64::MAX]).unwrap_or(self.next())
    }
    fn i64(&mut self) -> i64 {
        self.pick(&[0, -1, 1, i64::MIN, i64::MAX])
            .unwrap_or(self.next() as i64)
    }
    fn i128(&mut self) -> i128 {
        self.pick(&[0, -1, i128::MIN, i128::MAX, i64::MIN as i128])
            .unwrap_or(((self.next() as i128) << 64 | self.next() as i128) >> self.below(100))
    }
    /// One of `extremes` a third of the time, else `None`.
    fn pick<T: Copy>(&mut self, extremes: &[T]) -> Option<T> {
        if self.below(3) == 0 {
            Some(extremes[self.below(extremes.len() as u64) as usize])
        } else {
            None
        }
    }
    fn one_of<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// Strings of 0..=255 bytes mixing 1- to 4-byte UTF-8 characters;
    /// often empty or exactly 255 bytes.
    fn string(&mut self) -> String {
        const CHARS: [char; 8] = ['a', 'Z', '0', '-', 'é', 'ß', '€', '😀'];
        match self.below(6) {
            0 => String::new(),
            1 => "€".repeat(85), // 255 bytes of 3-byte characters
            2 => "x".repeat(MAX_STR),
            _ => {
                let target = self.below(MAX_STR as u64 + 1) as usize;
                let mut s = String::new();
                loop {
                    let c = self.one_of(&CHARS);
                    if s.len() + c.len_utf8() > target {
                        return s;
                    }
                    s.push(c);
                }
            }
        }
    }
}

const REASONS: &[Reason] = Reason::ALL;

fn random_inbound(r: &mut Rng, kind: u64) -> Inbound {
    match kind % 6 {
        0 => Inbound::Hello {
            min_version: r.u16(),
            max_version: r.u16(),
            name: r.string(),
        },
        1 => Inbound::NewOrder(NewOrder {
            order_id: r.u64(),
            instrument_id: r.u32(),
            side: r.one_of(&[Side::Buy, Side::Sell]),
            ord_type: r.one_of(&[OrdType::Limit, OrdType::Market, OrdType::LimitMaker]),
            tif: r.one_of(&[TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Fok]),
            flags: r.u8() & flags::KNOWN,
            price: r.i64(),
            qty: r.i64(),
        }),
        2 => Inbound::Cancel { order_id: r.u64() },
        3 => Inbound::CancelAll {
            instrument_id: r.u32(),
        },
        4 => Inbound::ResendFrom { seq: r.u64() },
        _ => Inbound::Heartbeat,
    }
}

fn random_outbound(r: &mut Rng, kind: u64) -> (u64, Outbound) {
    let m = match kind % 12 {
        0 => {
            let version = r.u16();
            // Versions before IDENTITY_VERSION have no identity on the wire.
            let identity = version >= IDENTITY_VERSION;
            Outbound::HelloAck {
                version,
                strategy_id: r.u32(),
                next_seq: r.u64(),
                instrument_count: r.u32(),
                installation: if identity { r.u64() } else { 0 },
                epoch: if identity { r.u32() } else { 0 },
            }
        }
        1 => Outbound::InstrumentInfo(InstrumentInfo {
            instrument_id: r.u32(),
            venue: r.u8(),
            category: r.u8(),
            price_scale: r.u8(),
            qty_scale: r.u8(),
            tick: r.i64(),
            lot: r.i64(),
            min_qty: r.i64(),
            min_notional: r.i128(),
            symbol: r.string(),
        }),
        2 => Outbound::Accepted {
            order_id: r.u64(),
            venue_order_id: r.string(),
        },
        3 => Outbound::Rejected {
            order_id: r.u64(),
            reason: r.one_of(REASONS),
            text: r.string(),
        },
        4 => Outbound::Fill(Fill {
            order_id: r.u64(),
            last_qty: r.i64(),
            last_price: r.i64(),
            cum_qty: r.i64(),
            cum_notional: r.i128(),
            avg_price: r.i64(),
            leaves_qty: r.i64(),
            fee: WideDecimal::new(r.i128(), r.u8()),
            fee_asset: r.string(),
            trade_id: r.string(),
            venue_time_ms: r.u64(),
            is_maker: r.bool(),
        }),
        5 => Outbound::Canceled {
            order_id: r.u64(),
            cum_qty: r.i64(),
        },
        6 => Outbound::CancelRejected {
            order_id: r.u64(),
            reason: r.one_of(REASONS),
            text: r.string(),
        },
        7 => Outbound::Expired {
            order_id: r.u64(),
            cum_qty: r.i64(),
        },
        8 => Outbound::OrderStatus(OrderStatus {
            order_id: r.u64(),
            state: r.one_of(&[
                OrderState::PendingNew,
                OrderState::New,
                OrderState::PartiallyFilled,
                OrderState::Filled,
                OrderState::PendingCancel,
                OrderState::Canceled,
                OrderState::Rejected,
                OrderState::Expired,
                OrderState::Unknown,
            ]),
            cum_qty: r.i64(),
            cum_notional: r.i128(),
            avg_price: r.i64(),
            leaves_qty: r.i64(),
        }),
        9 => Outbound::VenueStatus {
            venue: r.u8(),
            state: r.one_of(&[
                VenueState::Down,
                VenueState::Connecting,
                VenueState::Up,
                VenueState::Halted,
            ]),
            text: r.string(),
        },
        10 => Outbound::Heartbeat,
        _ => Outbound::Error {
            reason: r.one_of(REASONS),
            text: r.string(),
        },
    };
    let seq = if m.is_sequenced() { r.u64().max(1) } else { 0 };
    (seq, m)
}

/// A decoded frame of either direction.
#[derive(Debug, PartialEq)]
enum Any {
    In(Inbound),
    Out(u64, Outbound),
}

fn encode_any(m: &Any, out: &mut Vec<u8>) {
    match m {
        Any::In(m) => encode_inbound(m, out),
        Any::Out(seq, m) => encode_outbound(*seq, m, out),
    }
}

fn decode_any(body: &[u8]) -> Result<Any, ProtocolError> {
    if body.len() >= 2 && body[1] == 0 && body[0] & 0x80 != 0 {
        decode_outbound(body).map(|(s, m)| Any::Out(s, m))
    } else {
        decode_inbound(body).map(Any::In)
    }
}

/// `n` messages cycling through every type of both directions.
fn random_messages(seed: u64, n: u64) -> Vec<Any> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            if i % 18 < 6 {
                Any::In(random_inbound(&mut r, i % 18))
            } else {
                let (s, m) = random_outbound(&mut r, i % 18 - 6);
                Any::Out(s, m)
            }
        })
        .collect()
}

fn split_frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = FrameReader::new();
    reader.feed(stream);
    let mut frames = Vec::new();
    while let Some(body) = reader.next_frame().expect("valid stream") {
        frames.push(body.to_vec());
    }
    assert_eq!(reader.pending(), 0, "stream ends mid-frame");
    frames
}

#[test]
fn decode_inverts_encode() {
    for m in random_messages(0x5EED_0001, 5000) {
        let mut out = Vec::new();
        encode_any(&m, &mut out);
        assert!(out.len() - LEN_PREFIX <= MAX_FRAME);
        let frames = split_frames(&out);
        assert_eq!(frames.len(), 1);
        assert_eq!(decode_any(&frames[0]), Ok(m));
    }
}

#[test]
fn every_truncation_is_an_error() {
    for m in random_messages(0x5EED_0002, 600) {
        let mut out = Vec::new();
        encode_any(&m, &mut out);
        let body = &out[LEN_PREFIX..];
        for cut in 0..body.len() {
            let e = decode_any(&body[..cut]).expect_err("a truncated frame decoded");
            assert!(e.is_fatal(), "{m:?} cut at {cut}: {e}");
        }
        // Through the reader, a cut frame is simply not complete yet.
        for cut in 0..out.len() {
            let mut reader = FrameReader::new();
            reader.feed(&out[..cut]);
            assert_eq!(reader.next_frame(), Ok(None));
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut r = Rng(0x5EED_0003);
    for _ in 0..20_000 {
        let len = r.below(120) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| r.u8()).collect();
        // Often start with a real type id so the field decoders get exercised.
        if len >= 2 && r.bool() {
            let t = r.one_of(&[
                0x0001u16, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0081, 0x0082, 0x0083, 0x0084,
                0x0085, 0x0086, 0x0087, 0x0088, 0x0089, 0x008A, 0x008B, 0x008C,
            ]);
            body[..2].copy_from_slice(&t.to_le_bytes());
        }
        let _ = decode_inbound(&body);
        let _ = decode_outbound(&body);
        let mut reader = FrameReader::new();
        reader.feed(&body);
        while let Ok(Some(frame)) = reader.next_frame() {
            let _ = decode_inbound(frame);
        }
    }
    // Valid frames with bytes flipped: any result but a panic, and whatever
    // decodes must encode back to the same bytes.
    for m in random_messages(0x5EED_0004, 3000) {
        let mut out = Vec::new();
        encode_any(&m, &mut out);
        let body = &mut out[LEN_PREFIX..];
        let i = r.below(body.len() as u64) as usize;
        body[i] ^= 1 << r.below(8);
        if let Ok(d) = decode_any(body) {
            let mut again = Vec::new();
            encode_any(&d, &mut again);
            assert_eq!(&again[LEN_PREFIX..], &*body, "{d:?}");
        }
    }
}

#[test]
fn python_codec_gives_back_identical_bytes() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../clients/python/ordergate_client.py"
    );
    let msgs = random_messages(0x5EED_0005, 3600);
    let mut stream = Vec::new();
    for m in &msgs {
        encode_any(m, &mut stream);
    }
    let mut child = match Command::new("python3")
        .arg(script)
        .arg("--roundtrip")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            panic!("cannot run python3 ({e}): the cross-language codec test needs python3 on PATH")
        }
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let input = stream.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input)); // drops stdin: EOF
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut err = String::new();
        let res = stdout
            .read_to_end(&mut out)
            .and_then(|_| stderr.read_to_string(&mut err));
        let _ = tx.send(res.map(|_| (out, err)));
    });
    let Ok(read) = rx.recv_timeout(Duration::from_secs(120)) else {
        let _ = child.kill();
        panic!("python3 --roundtrip did not finish within 120 s");
    };
    let (out, err) = read.expect("reading python3 output");
    let status = child.wait().expect("waiting for python3");
    writer
        .join()
        .expect("writer thread")
        .expect("writing frames to python3");
    assert!(status.success(), "python3 --roundtrip failed: {err}");

    let sent = split_frames(&stream);
    let got = split_frames(&out);
    assert_eq!(got.len(), sent.len(), "frame count");
    for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
        assert_eq!(
            hex::encode(g),
            hex::encode(s),
            "frame {i} ({:?}) changed in Python",
            msgs[i]
        );
        assert_eq!(decode_any(g).as_ref(), Ok(&msgs[i]));
    }
}

/// One documented message of each type, the same values as in
/// `clients/python/test_client.py`; their bytes are pinned in
/// `tests/fixtures/protocol_vectors.json`.
fn vector_messages() -> Vec<(&'static str, Any)> {
    let order = NewOrder {
        order_id: 42,
        instrument_id: 7,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: flags::POST_ONLY,
        price: 5_200_000,
        qty: 150_000,
    };
    vec![
        (
            "Hello",
            Any::In(Inbound::Hello {
                min_version: 1,
                max_version: 2,
                name: "mm1".into(),
            }),
        ),
        ("NewOrder", Any::In(Inbound::NewOrder(order))),
        ("Cancel", Any::In(Inbound::Cancel { order_id: 42 })),
        (
            "CancelAll",
            Any::In(Inbound::CancelAll { instrument_id: 0 }),
        ),
        ("ResendFrom", Any::In(Inbound::ResendFrom { seq: 17 })),
        ("Heartbeat(in)", Any::In(Inbound::Heartbeat)),
        (
            "HelloAck",
            Any::Out(
                0,
                Outbound::HelloAck {
                    version: 2,
                    strategy_id: 3,
                    next_seq: 18,
                    instrument_count: 1,
                    installation: 12_345_678_901,
                    epoch: 7,
                },
            ),
        ),
        (
            "HelloAck(v1)",
            Any::Out(
                0,
                Outbound::HelloAck {
                    version: 1,
                    strategy_id: 3,
                    next_seq: 18,
                    instrument_count: 1,
                    installation: 0,
                    epoch: 0,
                },
            ),
        ),
        (
            "InstrumentInfo",
            Any::Out(
                0,
                Outbound::InstrumentInfo(InstrumentInfo {
                    instrument_id: 7,
                    venue: 1,
                    category: 1,
                    price_scale: 2,
                    qty_scale: 5,
                    tick: 1,
                    lot: 1,
                    min_qty: 1,
                    min_notional: 50_000_000,
                    symbol: "BTCUSDT".into(),
                }),
            ),
        ),
        (
            "Accepted",
            Any::Out(
                18,
                Outbound::Accepted {
                    order_id: 42,
                    venue_order_id: "28457".into(),
                },
            ),
        ),
        (
            "Rejected",
            Any::Out(
                19,
                Outbound::Rejected {
                    order_id: 43,
                    reason: Reason::PriceNotOnTick,
                    text: "price 52000.005".into(),
                },
            ),
        ),
        (
            "Fill",
            Any::Out(
                20,
                Outbound::Fill(Fill {
                    order_id: 42,
                    last_qty: 100_000,
                    last_price: 5_200_000,
                    cum_qty: 100_000,
                    cum_notional: 520_000_000_000,
                    avg_price: 5_200_000,
                    leaves_qty: 50_000,
                    fee: WideDecimal::new(52, 3),
                    fee_asset: "USDT".into(),
                    trade_id: "9001".into(),
                    venue_time_ms: 1_700_000_000_000,
                    is_maker: true,
                }),
            ),
        ),
        (
            "Canceled",
            Any::Out(
                21,
                Outbound::Canceled {
                    order_id: 42,
                    cum_qty: 100_000,
                },
            ),
        ),
        (
            "CancelRejected",
            Any::Out(
                22,
                Outbound::CancelRejected {
                    order_id: 44,
                    reason: Reason::UnknownOrder,
                    text: String::new(),
                },
            ),
        ),
        (
            "Expired",
            Any::Out(
                23,
                Outbound::Expired {
                    order_id: 45,
                    cum_qty: 0,
                },
            ),
        ),
        (
            "OrderStatus",
            Any::Out(
                24,
                Outbound::OrderStatus(OrderStatus {
                    order_id: 42,
                    state: OrderState::Canceled,
                    cum_qty: 100_000,
                    cum_notional: 520_000_000_000,
                    avg_price: 5_200_000,
                    leaves_qty: 0,
                }),
            ),
        ),
        (
            "VenueStatus",
            Any::Out(
                0,
                Outbound::VenueStatus {
                    venue: 1,
                    state: VenueState::Up,
                    text: String::new(),
                },
            ),
        ),
        ("Heartbeat(out)", Any::Out(0, Outbound::Heartbeat)),
        (
            "Error",
            Any::Out(
                0,
                Outbound::Error {
                    reason: Reason::UnknownEnumValue,
                    text: "NewOrder field side has unknown value 0".into(),
                },
            ),
        ),
    ]
}

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/protocol_vectors.json"
);

/// The encoder's bytes for the documented examples must not drift: the
/// Python tests and docs/PROTOCOL.md hold the same bytes. Set
/// `ORDERGATE_BLESS=1` to rewrite the file after a deliberate change.
#[test]
fn golden_vectors() {
    let ours: Vec<(String, String)> = vector_messages()
        .iter()
        .map(|(name, m)| {
            let mut out = Vec::new();
            encode_any(m, &mut out);
            assert_eq!(decode_any(&out[LEN_PREFIX..]).as_ref(), Ok(m));
            (name.to_string(), hex::encode(out))
        })
        .collect();
    if std::env::var_os("ORDERGATE_BLESS").is_some() {
        let vectors: Vec<_> = ours
            .iter()
            .map(|(name, hex)| serde_json::json!({ "name": name, "frame": hex }))
            .collect();
        let doc = serde_json::json!({
            "source": "ordergate tests/protocol_codec.rs (ORDERGATE_BLESS=1); layouts in docs/PROTOCOL.md",
            "vectors": vectors,
        });
        let text = serde_json::to_string_pretty(&doc).expect("json") + "\n";
        std::fs::write(VECTORS, text).expect("writing vectors");
    }
    let text = std::fs::read_to_string(VECTORS).expect("reading protocol_vectors.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("vectors json");
    let theirs: Vec<(String, String)> = doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().expect("name").to_owned(),
                v["frame"].as_str().expect("frame").to_owned(),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
}
