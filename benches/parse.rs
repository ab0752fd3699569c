//! Which JSON parser the Binance adapter uses on its hot path.
//!
//! Each candidate turns the documented `executionReport` samples (NEW and
//! TRADE, as they arrive on the WebSocket API inside
//! `{"subscriptionId":0,"event":{…}}`) into the normalized `VenueEvent`.
//! Every iteration starts from a fresh copy of the frame, as the adapter
//! gets one per WebSocket message (simd-json parses in place). Before
//! timing, all candidates must produce the same events, so only correct
//! parsers are compared.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ordergate::ids::VenueId;
use ordergate::instrument::{Category, Instrument};
use ordergate::venue::binance::exec::{self, ExecOutcome};
use ordergate::venue::binance::parse::{self, Event, Frame};
use ordergate::venue::VenueEvent;
use simd_json::prelude::*;

fn fixture_frame(text: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_str(text).expect("fixture is JSON");
    let payload = &v["payload"];
    // The TRADE sample is in the legacy unwrapped form; wrap it as the
    // WebSocket API sends it.
    let frame = if payload.get("event").is_some() {
        payload.clone()
    } else {
        serde_json::json!({"subscriptionId": 0, "event": payload})
    };
    serde_json::to_vec(&frame).expect("serializable")
}

fn instrument(symbol: &str) -> Instrument {
    Instrument::from_strings(
        1,
        VenueId::BinanceSpot,
        symbol,
        Category::Spot,
        "0.00000100",
        "0.00010000",
        "0.00010000",
        "0.0001",
    )
    .expect("valid instrument")
}

fn event_of(frame: Frame<'_>, inst: &Instrument) -> Option<VenueEvent> {
    normalize(&frame.event?, inst)
}

fn normalize(ev: &Event<'_>, inst: &Instrument) -> Option<VenueEvent> {
    match exec::normalize(ev, inst) {
        Ok(ExecOutcome::Event(e)) => Some(e.event),
        _ => None,
    }
}

fn simd_serde(buf: &mut [u8], b: &mut simd_json::Buffers, inst: &Instrument) -> Option<VenueEvent> {
    event_of(parse::parse_frame(buf, b).ok()?, inst)
}

fn serde_json_derive(buf: &[u8], inst: &Instrument) -> Option<VenueEvent> {
    event_of(serde_json::from_slice(buf).ok()?, inst)
}

fn sonic_derive(buf: &[u8], inst: &Instrument) -> Option<VenueEvent> {
    event_of(sonic_rs::from_slice(buf).ok()?, inst)
}

/// simd-json's DOM (`BorrowedValue`) walked by hand into the same `Event`.
fn simd_value(buf: &mut [u8], b: &mut simd_json::Buffers, inst: &Instrument) -> Option<VenueEvent> {
    let v = simd_json::to_borrowed_value_with_buffers(buf, b).ok()?;
    let e = v.get("event")?;
    let s = |k: &str| e.get(k).and_then(|x| x.as_str()).map(Cow::Borrowed);
    let ev = Event {
        kind: s("e")?,
        event_time: e.get("E").and_then(|x| x.as_u64()),
        symbol: s("s"),
        client_id: s("c"),
        orig_client_id: s("C"),
        exec_type: s("x"),
        order_status: s("X"),
        reject_reason: s("r"),
        order_id: e.get("i").and_then(|x| x.as_u64()),
        last_qty: s("l"),
        last_price: s("L"),
        fee: s("n"),
        fee_asset: s("N"),
        time: e.get("T").and_then(|x| x.as_u64()),
        trade_id: e.get("t").and_then(|x| x.as_i64()),
        is_maker: e.get("m").and_then(|x| x.as_bool()),
    };
    normalize(&ev, inst)
}

fn bench(c: &mut Criterion) {
    let samples = [
        (
            "NEW",
            fixture_frame(include_str!(
                "../tests/fixtures/binance_spot_execution_report.json"
            )),
            instrument("ETHBTC"),
        ),
        (
            "TRADE",
            fixture_frame(include_str!(
                "../tests/fixtures/binance_spot_execution_report_trade.json"
            )),
            instrument("LTCBNB"),
        ),
    ];
    let mut buffers = simd_json::Buffers::default();
    let mut buf = Vec::with_capacity(2048);

    // Correctness first: the sample ids are not ours ("mUvo…", "8LGC…"), so
    // give each frame one of ours and check every candidate agrees.
    let mut frames = Vec::new();
    for (name, frame, inst) in &samples {
        let text = String::from_utf8(frame.clone()).expect("utf8");
        let text = text
            .replace("mUvoqJxFIILMdfAW5iGSOW", "o1-2-3")
            .replace("8LGC97RRgNPVQk979VIhjt", "o1-2-3");
        let frame = text.into_bytes();
        buf.clear();
        buf.extend_from_slice(&frame);
        let want = simd_serde(&mut buf, &mut buffers, inst).expect("simd-json serde parses");
        buf.clear();
        buf.extend_from_slice(&frame);
        let by_value = simd_value(&mut buf, &mut buffers, inst);
        let results = [
            ("serde_json", serde_json_derive(&frame, inst)),
            ("sonic-rs", sonic_derive(&frame, inst)),
            ("simd-json value", by_value),
        ];
        for (who, got) in results {
            assert_eq!(got.as_ref(), Some(&want), "{who} disagrees on {name}");
        }
        println!("{name}: all candidates agree: {want:?}");
        frames.push((*name, frame, inst));
    }

    for (name, frame, inst) in &frames {
        let mut g = c.benchmark_group(format!("executionReport {name}"));
        g.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(30);
        g.bench_function("simd-json serde (borrowed, reused buffers)", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(frame);
                black_box(simd_serde(&mut buf, &mut buffers, inst))
            })
        });
        g.bench_function("simd-json BorrowedValue", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(frame);
                black_box(simd_value(&mut buf, &mut buffers, inst))
            })
        });
        g.bench_function("serde_json (borrowed)", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(frame);
                black_box(serde_json_derive(&buf, inst))
            })
        });
        g.bench_function("sonic-rs (borrowed)", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(frame);
                black_box(sonic_derive(&buf, inst))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
