//! Every decimal string in the official exchange samples parses and formats
//! back byte for byte, and agrees with the fixed-point path where it fits.

use ordergate_core::decimal::{format_fixed, parse_fixed, WideDecimal};
use std::path::Path;

fn is_plain_decimal(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()))
        && frac.is_some()
}

fn collect<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) if is_plain_decimal(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect(x, out)),
        _ => {}
    }
}

#[test]
fn every_sample_decimal_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut found = Vec::new();
        collect(&v, &mut found);
        for s in found {
            let d =
                WideDecimal::parse(s).unwrap_or_else(|e| panic!("{}: {s}: {e}", path.display()));
            assert_eq!(d.to_string(), s, "{}", path.display());
            if let Ok(m) = parse_fixed(s, d.scale) {
                assert_eq!(format_fixed(m as i128, d.scale), s);
                assert_eq!(d.to_fixed(d.scale), Some(m));
            }
            seen += 1;
        }
    }
    eprintln!("{seen} decimal strings checked");
    assert!(
        seen > 50,
        "only {seen} decimal strings found in the fixtures"
    );
}
