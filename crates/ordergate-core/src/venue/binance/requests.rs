//! WebSocket API request frames: `{"id":N,"method":"…","params":{…}}`,
//! signed where the method requires it.

use super::sign;

/// One request parameter: its name, its text (what is signed), and whether
/// it goes into the JSON as a string or as a bare number.
#[derive(Debug, Clone, Copy)]
pub struct Param<'a> {
    pub name: &'a str,
    pub text: &'a str,
    pub quoted: bool,
}

impl<'a> Param<'a> {
    pub fn str(name: &'a str, text: &'a str) -> Self {
        Param {
            name,
            text,
            quoted: true,
        }
    }

    pub fn num(name: &'a str, text: &'a str) -> Self {
        Param {
            name,
            text,
            quoted: false,
        }
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An unsigned request (`time`).
pub fn unsigned(id: u64, method: &str, params: &[Param<'_>]) -> String {
    write(id, method, params, None)
}

fn write(id: u64, method: &str, params: &[Param<'_>], signature: Option<&str>) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("{\"id\":");
    out.push_str(&id.to_string());
    out.push_str(",\"method\":");
    push_json_str(&mut out, method);
    out.push_str(",\"params\":{");
    let sig = signature.map(|s| Param::str("signature", s));
    for (i, p) in params.iter().chain(sig.as_ref()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, p.name);
        out.push(':');
        if p.quoted {
            push_json_str(&mut out, p.text);
        } else {
            out.push_str(p.text);
        }
    }
    out.push_str("}}");
    out
}

/// A signed request: `params` must already hold apiKey, timestamp and
/// recvWindow; the HMAC of the sorted, unencoded params is appended as
/// `signature`, as the WebSocket API specifies.
pub fn signed(id: u64, method: &str, params: &[Param<'_>], secret: &[u8]) -> String {
    let payload = sign::ws_payload(params.iter().map(|p| (p.name, p.text)));
    let signature = sign::hmac_sha256_hex(secret, payload.as_bytes());
    write(id, method, params, Some(&signature))
}
