//! Identifiers: venues, strategies, orders and the client order ids we send.
//!
//! A venue client order id is a pure function of (installation, sidecar
//! epoch, strategy id, the strategy's order id), so no table is needed to
//! map a venue event back to its order. The installation id is random,
//! made once per state directory, so two sidecars trading one account
//! never mint the same id; the epoch is bumped at every start (see the
//! binary's `state` module), so an id is never reused by a later run even
//! if its journal is lost. Binance accepts a reused id once the earlier
//! order is done: a reuse would double-trade.

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

/// As its name, the way the config spells it.
impl serde::Serialize for VenueId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct OrderKey {
    pub strategy: StrategyId,
    pub order_id: StrategyOrderId,
}

/// The longest client order id any supported venue accepts
/// (Binance FIX `^[a-zA-Z0-9-_]{1,36}$`, Bybit `orderLinkId` max 36).
pub const MAX_CLIENT_ID_LEN: usize = 36;

/// What a client order id names: an order, or the n-th cancel of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ClientIdKind {
    Order,
    Cancel(u16),
}

/// Whose ids these are: one installation (a state directory), in one run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Namespace {
    /// Random, below [`Namespace::INSTALLATIONS`], made once per state
    /// directory.
    pub installation: u64,
    /// The run (bumped at every start).
    pub epoch: u32,
}

impl Namespace {
    /// Installation ids are six base-62 digits.
    pub const INSTALLATIONS: u64 = 62u64.pow(INSTALLATION_DIGITS as u32);

    pub const fn new(installation: u64, epoch: u32) -> Namespace {
        Namespace {
            installation,
            epoch,
        }
    }

    /// Reads an installation id as [`Namespace::installation_str`] writes
    /// it: exactly six base-62 digits.
    pub fn parse_installation(s: &str) -> Option<u64> {
        if s.len() != INSTALLATION_DIGITS {
            return None;
        }
        s.bytes().try_fold(0u64, |v, c| Some(v * 62 + digit62(c)?))
    }

    /// The installation id as it appears in client ids.
    pub fn installation_str(&self) -> String {
        let mut s = String::with_capacity(INSTALLATION_DIGITS);
        push_fixed62(&mut s, self.installation % Self::INSTALLATIONS);
        s
    }
}

/// A parsed venue client order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ClientId {
    pub ns: Namespace,
    pub key: OrderKey,
    pub kind: ClientIdKind,
}

const INSTALLATION_DIGITS: usize = 6;
const DIGITS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn digit62(c: u8) -> Option<u64> {
    Some(match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'z' => c - b'a' + 10,
        b'A'..=b'Z' => c - b'A' + 36,
        _ => return None,
    } as u64)
}

fn push_base62(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 11];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(v % 62) as usize];
        v /= 62;
        if v == 0 {
            break;
        }
    }
    for &c in &buf[i..] {
        out.push(c as char);
    }
}

fn push_fixed62(out: &mut String, mut v: u64) {
    let mut buf = [b'0'; INSTALLATION_DIGITS];
    for b in buf.iter_mut().rev() {
        *b = DIGITS[(v % 62) as usize];
        v /= 62;
    }
    for &c in &buf {
        out.push(c as char);
    }
}

fn parse_base62(s: &str) -> Option<u64> {
    // A leading zero would give one number two spellings.
    if s.is_empty() || s.len() > 11 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    let mut v: u64 = 0;
    for c in s.bytes() {
        v = v.checked_mul(62)?.checked_add(digit62(c)?)?;
    }
    Some(v)
}

impl ClientId {
    pub fn order(ns: Namespace, key: OrderKey) -> Self {
        ClientId {
            ns,
            key,
            kind: ClientIdKind::Order,
        }
    }

    pub fn cancel(ns: Namespace, key: OrderKey, attempt: u16) -> Self {
        ClientId {
            ns,
            key,
            kind: ClientIdKind::Cancel(attempt),
        }
    }

    /// `o<installation><epoch>-<strategy>-<order>` or
    /// `c<installation><epoch>-<strategy>-<order>-<n>`: the installation
    /// in six base-62 digits, the numbers in base 62 (case matters, as
    /// it does at every venue): at most 1+6+6+1+6+1+11+1+3 = 36 chars
    /// (u32, u32, u64, u16 at their maxima), every venue's limit.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(MAX_CLIENT_ID_LEN);
        s.push(match self.kind {
            ClientIdKind::Order => 'o',
            ClientIdKind::Cancel(_) => 'c',
        });
        push_fixed62(&mut s, self.ns.installation % Namespace::INSTALLATIONS);
        push_base62(&mut s, self.ns.epoch as u64);
        s.push('-');
        push_base62(&mut s, self.key.strategy as u64);
        s.push('-');
        push_base62(&mut s, self.key.order_id);
        if let ClientIdKind::Cancel(n) = self.kind {
            s.push('-');
            push_base62(&mut s, n as u64);
        }
        debug_assert!(s.len() <= MAX_CLIENT_ID_LEN);
        s
    }

    /// Parses an id some ordergate generated (any installation); `None`
    /// for anything else (orders placed by other tools on the account).
    pub fn decode(s: &str) -> Option<ClientId> {
        let (kind, rest) = match s.as_bytes().first()? {
            b'o' => (0u8, &s[1..]),
            b'c' => (1u8, &s[1..]),
            _ => return None,
        };
        let installation = Namespace::parse_installation(rest.get(..INSTALLATION_DIGITS)?)?;
        let mut parts = rest[INSTALLATION_DIGITS..].split('-');
        let epoch = u32::try_from(parse_base62(parts.next()?)?).ok()?;
        let strategy = u32::try_from(parse_base62(parts.next()?)?).ok()?;
        let order_id = parse_base62(parts.next()?)?;
        let kind = match kind {
            0 => ClientIdKind::Order,
            _ => ClientIdKind::Cancel(u16::try_from(parse_base62(parts.next()?)?).ok()?),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(ClientId {
            ns: Namespace::new(installation, epoch),
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
            ClientId::order(Namespace::new(Namespace::INSTALLATIONS - 1, u32::MAX), key),
            ClientId::cancel(Namespace::new(12345, u32::MAX), key, u16::MAX),
            ClientId::order(
                Namespace::default(),
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
        assert_eq!(ClientId::decode("o0000001-2"), None, "no order id");
        assert_eq!(ClientId::decode("o00000001-02-3"), None, "leading zero");
        let max = ClientId::cancel(
            Namespace::new(Namespace::INSTALLATIONS - 1, u32::MAX),
            key,
            u16::MAX,
        );
        assert_eq!(max.encode().len(), MAX_CLIENT_ID_LEN);
        // The example in PROTOCOL.md.
        let ns = Namespace::new(Namespace::parse_installation("k3Xq9Z").unwrap(), 3);
        let doc = OrderKey {
            strategy: 1,
            order_id: 42,
        };
        assert_eq!(ClientId::order(ns, doc).encode(), "ok3Xq9Z3-1-G");
        assert_eq!(ns.installation_str(), "k3Xq9Z");
    }
}
