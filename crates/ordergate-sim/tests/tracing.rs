//! Connections, refused requests and injected faults are told as
//! `tracing` events at debug level. The only test in its binary: tracing caches per-callsite
//! interest process-wide, so a subscriber scoped to one test thread could
//! miss events while other tests run.

use std::sync::{Arc, Mutex};

use ordergate_sim::binance::sign::{sign_hex, ws_payload};
use ordergate_sim::binance::{Exchange, SimConfig, DEMO_API_KEY};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

/// An event's level, message and `code` field.
type Seen = (Level, String, Option<i64>);

/// Keeps every event.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

struct Fields(String, Option<i64>);

impl Visit for Fields {
    fn record_i64(&mut self, f: &Field, v: i64) {
        if f.name() == "code" {
            self.1 = Some(v);
        }
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.0 = format!("{v:?}");
        }
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut f = Fields(String::new(), None);
        e.record(&mut f);
        self.0
            .lock()
            .unwrap()
            .push((*e.metadata().level(), f.0, f.1));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn connections_and_refusals_are_traced_at_debug() {
    const NOW: u64 = 1_704_067_200_000;
    let rec = Recorder::default();
    tracing::subscriber::set_global_default(rec.clone()).unwrap();

    let mut ex = Exchange::new(&SimConfig::default(), NOW).unwrap();
    let c = ex.ws_connect(NOW);
    let params = [
        ("apiKey", DEMO_API_KEY.to_owned()),
        ("symbol", "BTCUSDT".to_owned()),
        ("timestamp", NOW.to_string()),
    ];
    let payload = ws_payload(params.iter().map(|(k, v)| (*k, v.as_str())));
    let sig = sign_hex(b"not-the-secret", payload.as_bytes());
    let req = format!(
        r#"{{"id":1,"method":"openOrders.status","params":{{"apiKey":"{DEMO_API_KEY}","symbol":"BTCUSDT","timestamp":{NOW},"signature":"{sig}"}}}}"#
    );
    ex.ws_request(c, &req, NOW);
    ex.ws_request(c, r#"{"id":2,"method":"time"}"#, NOW);
    ex.rest("GET", "/api/v3/openOrders?timestamp=1", &[], b"", NOW);
    ex.ws_disconnect(c);

    let got = rec.0.lock().unwrap().clone();
    let seen: Vec<(&str, Option<i64>)> = got.iter().map(|(_, m, c)| (m.as_str(), *c)).collect();
    assert_eq!(
        seen,
        [
            ("WebSocket API connection open", None),
            ("WebSocket API request refused", Some(-1022)),
            ("REST request refused", Some(-2014)),
            ("WebSocket API connection closed", None),
        ]
    );
    assert!(got.iter().all(|(l, _, _)| *l == Level::DEBUG));

    // Every fault injected is told too.
    rec.0.lock().unwrap().clear();
    ex.set_faults("drop:1000".parse().unwrap(), 1);
    let c = ex.ws_connect(NOW);
    ex.ws_request(c, r#"{"id":3,"method":"time"}"#, NOW);
    let got = rec.0.lock().unwrap().clone();
    let seen: Vec<&str> = got.iter().map(|(_, m, _)| m.as_str()).collect();
    assert_eq!(
        seen,
        [
            "faults set",
            "WebSocket API connection open",
            "fault injected"
        ]
    );
    assert!(got.iter().all(|(l, _, _)| *l == Level::DEBUG));
}
