//! Binance HMAC-SHA256 request signing, as the API docs specify it.
//!
//! The simulator (`ordergate-sim`) verifies with its own code, so a
//! misreading here cannot pass both sides. The rules:
//! - WebSocket API: every param except `signature`, sorted by name,
//!   `key=value` joined with `&`, UTF-8, no percent-encoding.
//! - REST: the query string as sent, followed without a separator by the
//!   request body as sent.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Lowercase hex HMAC-SHA256 of `payload` under `secret`.
pub fn hmac_sha256_hex(secret: &[u8], payload: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex signature in constant time; Binance HMAC signatures are
/// not case-sensitive.
pub fn verify_hex(secret: &[u8], payload: &[u8], signature: &str) -> bool {
    let Ok(sig) = hex::decode(signature.to_ascii_lowercase()) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(payload);
    mac.verify_slice(&sig).is_ok()
}

/// The WebSocket API payload: params (name, value) sorted by name, without
/// `signature`, joined as `a=1&b=2`.
pub fn ws_payload<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut v: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, _)| *k != "signature")
        .collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    let mut s = String::with_capacity(v.iter().map(|(k, x)| k.len() + x.len() + 2).sum());
    for (i, (k, x)) in v.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(x);
    }
    s
}

/// The REST payload: query string then body, no separator.
pub fn rest_payload(query: &str, body: &str) -> String {
    let mut s = String::with_capacity(query.len() + body.len());
    s.push_str(query);
    s.push_str(body);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // The REST and WebSocket HMAC worked examples from the Binance Spot API
    // docs; every vector in signature_vectors.json runs in tests/signing.rs.
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    #[test]
    fn rest_example() {
        let p = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let sig = hmac_sha256_hex(SECRET.as_bytes(), rest_payload(p, "").as_bytes());
        assert_eq!(
            sig,
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
        assert!(verify_hex(
            SECRET.as_bytes(),
            p.as_bytes(),
            &sig.to_uppercase()
        ));
    }

    #[test]
    fn ws_example() {
        let params = [
            ("symbol", "BTCUSDT"),
            ("side", "SELL"),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "0.01000000"),
            ("price", "52000.00"),
            ("recvWindow", "100"),
            ("timestamp", "1645423376532"),
            (
                "apiKey",
                "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
            ),
            ("signature", "ignored"),
        ];
        let sig = hmac_sha256_hex(SECRET.as_bytes(), ws_payload(params).as_bytes());
        assert_eq!(
            sig,
            "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
        );
    }
}
