//! Identifiers: venues, strategies, orders and the client order ids we send.
//!
//! A venue client order id is a pure function of (sidecar epoch, strategy id,
//! the strategy's order id), so no table is needed to map a venue event back
//! to its order, and because the epoch is bumped at every start (see
//! [`crate::state`]) a restarted sidecar or strategy can never reuse one.
//! Binance accepts a reused id once the earlier order is done: a reuse would
//! double-trade.

use std::fmt;

/// The venues ordergate knows, with fixed ids used in config and on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum VenueId {
    BinanceSpot = 1,
    BinanceUsdm = 2,
    BybitSpot = 3,
    BybitLinear = 4,
}

impl VenueId {
    pub const ALL: [VenueId; 4] = [
        VenueId::BinanceSpot,
        VenueId::BinanceUsdm,
        VenueId::BybitSpot,
        VenueId::BybitLinear,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VenueId::BinanceSpot => "binance-spot",
            VenueId::BinanceUsdm => "binance-usdm",
            VenueId::BybitSpot => "bybit-spot",
            VenueId::BybitLinear => "bybit-linear",
        }
    }

    pub fn from_u8(v: u8) -> Option<VenueId> {
        VenueId::ALL.into_iter().find(|x| *x as u8 == v)
    }
}

impl std::str::FromStr for VenueId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        VenueId::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown venue {s:?} (known: binance-spot, binance-usdm, bybit-spot, bybit-linear)"
                )
            })
    }
}

impl fmt::Display for VenueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for VenueId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A strategy's id from the config: stable across restarts.
pub type StrategyId = u32;
/// The id a strategy gives its own order; unique per strategy.
pub type StrategyOrderId = u64;
/// Instruments are known by a u32 id on the wire.
pub type InstrumentId = u32;

/// An order as the sidecar knows it: which strategy, and its id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderKey {
    pub strategy: StrategyId,
    pub order_id: StrategyOrderId,
}

/// The longest client order id any supported venue accepts
/// (Binance FIX `^[a-zA-Z0-9-_]{1,36}$`, Bybit `orderLinkId` max 36).
pub const MAX_CLIENT_ID_LEN: usize = 36;

/// What a client order id names: an order, or the n-th cancel of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientIdKind {
    Order,
    Cancel(u16),
}

/// A parsed venue client order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId {
    pub epoch: u32,
    pub key: OrderKey,
    pub kind: ClientIdKind,
}

fn push_base36(out: &mut String, mut v: u64) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [0u8; 13];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(v % 36) as usize];
        v /= 36;
        if v == 0 {
            break;
        }
    }
    for &c in &buf[i..] {
        out.push(c as char);
    }
}

fn parse_base36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 {
        return None;
    }
    let mut v: u64 = 0;
    for c in s.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        };
        v = v.checked_mul(36)?.checked_add(d as u64)?;
    }
    Some(v)
}

impl ClientId {
    pub fn order(epoch: u32, key: OrderKey) -> Self {
        ClientId {
            epoch,
            key,
            kind: ClientIdKind::Order,
        }
    }

    pub fn cancel(epoch: u32, key: OrderKey, attempt: u16) -> Self {
        ClientId {
            epoch,
            key,
            kind: ClientIdKind::Cancel(attempt),
        }
    }

    /// `o<epoch>-<strategy>-<order>` or `c<epoch>-<strategy>-<order>-<n>`,
    /// numbers in lowercase base 36: at most 1+7+1+7+1+13+1+4 = 35 chars
    /// (u32, u32, u64, u16 at their maxima), within every venue's 36.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(MAX_CLIENT_ID_LEN);
        s.push(match self.kind {
            ClientIdKind::Order => 'o',
            ClientIdKind::Cancel(_) => 'c',
        });
        push_base36(&mut s, self.epoch as u64);
        s.push('-');
        push_base36(&mut s, self.key.strategy as u64);
        s.push('-');
        push_base36(&mut s, self.key.order_id);
        if let ClientIdKind::Cancel(n) = self.kind {
            s.push('-');
            push_base36(&mut s, n as u64);
        }
        debug_assert!(s.len() <= MAX_CLIENT_ID_LEN);
        s
    }

    /// Parses an id this sidecar generated; `None` for anything else
    /// (orders placed by other tools on the same account).
    pub fn decode(s: &str) -> Option<ClientId> {
        let (kind, rest) = match s.as_bytes().first()? {
            b'o' => (0u8, &s[1..]),
            b'c' => (1u8, &s[1..]),
            _ => return None,
        };
        let mut parts = rest.split('-');
        let epoch = u32::try_from(parse_base36(parts.next()?)?).ok()?;
        let strategy = u32::try_from(parse_base36(parts.next()?)?).ok()?;
        let order_id = parse_base36(parts.next()?)?;
        let kind = match kind {
            0 => ClientIdKind::Order,
            _ => ClientIdKind::Cancel(u16::try_from(parse_base36(parts.next()?)?).ok()?),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(ClientId {
            epoch,
            key: OrderKey { strategy, order_id },
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_charset() {
        let key = OrderKey {
            strategy: u32::MAX,
            order_id: u64::MAX,
        };
        for id in [
            ClientId::order(u32::MAX, key),
            ClientId::cancel(u32::MAX, key, u16::MAX),
            ClientId::order(
                0,
                OrderKey {
                    strategy: 0,
                    order_id: 0,
                },
            ),
        ] {
            let s = id.encode();
            assert!(s.len() <= MAX_CLIENT_ID_LEN, "{s}");
            assert!(s
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(ClientId::decode(&s), Some(id));
        }
        assert_eq!(ClientId::decode("web_123"), None);
        assert_eq!(ClientId::decode("o1-2"), None);
    }
}
