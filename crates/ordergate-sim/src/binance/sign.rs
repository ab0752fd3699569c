//! Signature checks as the simulator's own reading of the Binance docs
//! (independent of the adapter's signer, which this crate cannot see).
//!
//! - WebSocket API: every parameter but `signature`, sorted by name
//!   (byte order), written `name=value` and joined with `&`.
//! - REST: the query string exactly as sent, then the body exactly as sent,
//!   with nothing between them.
//!
//! HMAC-SHA256 over that payload, as hex; Binance accepts either case.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// True when `signature` is the hex HMAC-SHA256 of `payload` under
/// `secret`. The comparison is constant-time (`verify_slice`).
pub fn verify_hex(secret: &[u8], payload: &[u8], signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature.to_ascii_lowercase()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(payload);
    mac.verify_slice(&expected).is_ok()
}

/// The hex HMAC-SHA256 of `payload` under `secret`: what a client sends
/// as `signature` (for tests and harnesses driving the simulator).
pub fn sign_hex(secret: &[u8], payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// The payload a WebSocket API request is signed over.
pub fn ws_payload<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|&(name, _)| name != "signature")
        .collect();
    sorted.sort_unstable_by_key(|&(name, _)| name);
    sorted
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The payload a REST request is signed over.
pub fn rest_payload(query: &str, body: &str) -> String {
    [query, body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the official docs, as kept in
    /// `tests/fixtures/signature_vectors.json` (each names its source).
    const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &[u8] = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    #[test]
    fn websocket_docs_example_verifies() {
        let params = [
            ("symbol", "BTCUSDT"),
            ("side", "SELL"),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "0.01000000"),
            ("price", "52000.00"),
            ("recvWindow", "100"),
            ("timestamp", "1645423376532"),
            ("apiKey", KEY),
            ("signature", "ignored"),
        ];
        let payload = ws_payload(params);
        assert_eq!(
            payload,
            format!(
                "apiKey={KEY}&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL\
                 &symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
            )
        );
        let sig = "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24";
        assert!(verify_hex(SECRET, payload.as_bytes(), sig));
        assert_eq!(sign_hex(SECRET, payload.as_bytes()), sig);
        assert!(verify_hex(SECRET, payload.as_bytes(), &sig.to_uppercase()));
        assert!(!verify_hex(b"wrong", payload.as_bytes(), sig));
    }

    #[test]
    fn rest_docs_example_verifies() {
        let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC";
        let body = "&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
        assert!(verify_hex(
            SECRET,
            rest_payload(query, body).as_bytes(),
            sig
        ));
        assert!(!verify_hex(
            SECRET,
            rest_payload(body, query).as_bytes(),
            sig
        ));
    }
}
