//! Exact decimals.
//!
//! Strategy-facing prices and quantities are `i64` mantissas at the
//! instrument's own scale (`value = mantissa / 10^scale`), derived from its
//! tick and step size; notionals are `i128` at `price_scale + qty_scale`.
//! Amounts the venue reports that we do not control (fees, quote quantities)
//! parse into [`WideDecimal`], which never rejects a venue string for
//! precision: rejecting a venue frame would lose a fill.
//!
//! Formatting never produces exponents ("1e-05" is never written).

use std::fmt;

/// The largest scale we keep; wider venue strings are rounded half-to-even.
pub const MAX_SCALE: u8 = 18;

/// Why a decimal string or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty decimal")]
    Empty,
    #[error("invalid character {0:?} in decimal")]
    InvalidChar(char),
    #[error("decimal {0:?} has more fractional digits than scale {1} allows")]
    TooPrecise(String, u8),
    #[error("decimal {0:?} does not fit")]
    Overflow(String),
    #[error("scale {0} is above the maximum of {MAX_SCALE}")]
    ScaleTooLarge(u8),
}

/// 10^n for n in 0..=38 as i128.
#[inline]
pub const fn pow10(n: u8) -> i128 {
    let mut v: i128 = 1;
    let mut i = 0;
    while i < n {
        v *= 10;
        i += 1;
    }
    v
}

/// Splits a plain decimal string into sign, integer digits and fraction digits.
fn split(s: &str) -> Result<(bool, &[u8], &[u8]), DecimalError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(DecimalError::Empty);
    }
    let (neg, rest) = match b[0] {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match rest.iter().position(|&c| c == b'.') {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(DecimalError::Empty);
    }
    for &c in int.iter().chain(frac) {
        if !c.is_ascii_digit() {
            return Err(DecimalError::InvalidChar(c as char));
        }
    }
    Ok((neg, int, frac))
}

fn digits_to_i128(s: &str, digits: impl Iterator<Item = u8>) -> Result<i128, DecimalError> {
    let mut v: i128 = 0;
    for c in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((c - b'0') as i128))
            .ok_or_else(|| DecimalError::Overflow(s.to_owned()))?;
    }
    Ok(v)
}

/// Parses `s` at exactly `scale` fractional digits.
///
/// Extra fractional digits are accepted only when they are zeros
/// ("52000.00000000" at scale 2); anything else is `TooPrecise`. Use this
/// for strategy input and for venue fields that must lie on the tick/step.
pub fn parse_fixed(s: &str, scale: u8) -> Result<i64, DecimalError> {
    let (neg, int, frac) = split(s)?;
    if scale > MAX_SCALE {
        return Err(DecimalError::ScaleTooLarge(scale));
    }
    let keep = frac.len().min(scale as usize);
    if frac[keep..].iter().any(|&c| c != b'0') {
        return Err(DecimalError::TooPrecise(s.to_owned(), scale));
    }
    let pad = scale as usize - keep;
    let digits = int
        .iter()
        .chain(&frac[..keep])
        .copied()
        .chain(std::iter::repeat_n(b'0', pad));
    let v = digits_to_i128(s, digits)?;
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| DecimalError::Overflow(s.to_owned()))
}

/// Writes `mantissa / 10^scale` with exactly `scale` fractional digits.
pub fn write_fixed(out: &mut String, mantissa: i128, scale: u8) {
    let neg = mantissa < 0;
    let abs = mantissa.unsigned_abs();
    let mut buf = [0u8; 48];
    let mut i = buf.len();
    let mut v = abs;
    let mut written = 0usize;
    loop {
        if written == scale as usize && scale > 0 {
            i -= 1;
            buf[i] = b'.';
        }
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        written += 1;
        if v == 0 && written > scale as usize {
            break;
        }
    }
    if neg {
        out.push('-');
    }
    // Only ASCII digits, '.' were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// `mantissa / 10^scale` as a string with exactly `scale` fractional digits.
pub fn format_fixed(mantissa: i128, scale: u8) -> String {
    let mut s = String::with_capacity(24);
    write_fixed(&mut s, mantissa, scale);
    s
}

/// The scale an instrument with this tick or lot uses: the number of
/// fractional digits the step is *written* with, trailing zeros included.
/// Binance writes `tickSize` "0.01000000", so its prices get 8 decimals and
/// a price between two ticks (60000.005) is expressible, and refused by
/// the gateway's tick check; a config that writes "0.01" gets 2.
pub fn scale_of_step(step: &str) -> Result<u8, DecimalError> {
    let d = WideDecimal::parse(step)?;
    Ok(d.scale)
}

/// A venue-reported amount: any plain decimal string, exact up to 18
/// fractional digits, with an i128 mantissa.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct WideDecimal {
    pub mantissa: i128,
    pub scale: u8,
}

impl WideDecimal {
    pub const ZERO: WideDecimal = WideDecimal {
        mantissa: 0,
        scale: 0,
    };

    pub fn new(mantissa: i128, scale: u8) -> Self {
        WideDecimal { mantissa, scale }
    }

    /// Parses keeping the string's own scale, so formatting gives it back
    /// byte for byte ("0.10264410" stays "0.10264410"). Digits beyond 18
    /// fractional places are rounded half-to-even rather than refused.
    pub fn parse(s: &str) -> Result<Self, DecimalError> {
        let (neg, int, frac) = split(s)?;
        let keep = frac.len().min(MAX_SCALE as usize);
        let mut v = digits_to_i128(s, int.iter().chain(&frac[..keep]).copied())?;
        if frac.len() > keep {
            let rest = &frac[keep..];
            let first = rest[0] - b'0';
            let tail_nonzero = rest[1..].iter().any(|&c| c != b'0');
            let round_up = first > 5 || (first == 5 && (tail_nonzero || v % 2 == 1));
            if round_up {
                v = v
                    .checked_add(1)
                    .ok_or_else(|| DecimalError::Overflow(s.to_owned()))?;
            }
        }
        Ok(WideDecimal {
            mantissa: if neg { -v } else { v },
            scale: keep as u8,
        })
    }

    /// Drops trailing fractional zeros: "0.00100000" -> 0.001 (scale 3).
    pub fn normalized(self) -> Self {
        let mut d = self;
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// The same value at `scale`, if it is exactly representable and fits
    /// an i64 (venue fields that must lie on the instrument's tick/step).
    pub fn to_fixed(self, scale: u8) -> Option<i64> {
        let m = if scale >= self.scale {
            self.mantissa
                .checked_mul(pow10(scale.checked_sub(self.scale)?.min(38)))?
        } else {
            let div = pow10(self.scale - scale);
            if self.mantissa % div != 0 {
                return None;
            }
            self.mantissa / div
        };
        i64::try_from(m).ok()
    }

    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }
}

impl fmt::Display for WideDecimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_fixed(self.mantissa, self.scale))
    }
}

impl std::str::FromStr for WideDecimal {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WideDecimal::parse(s)
    }
}

/// Notional of a fill: `price * qty` at scale `price_scale + qty_scale`.
#[inline]
pub fn notional(price: i64, qty: i64) -> i128 {
    price as i128 * qty as i128
}

/// Average price at the price scale from a cumulative notional (at
/// `price_scale + qty_scale`) and cumulative quantity (at `qty_scale`).
///
/// Rounding rule: to nearest, ties to even. Zero quantity gives zero.
pub fn average_price(cum_notional: i128, cum_qty: i64) -> i64 {
    if cum_qty == 0 {
        return 0;
    }
    let q = cum_qty as i128;
    let (mut quot, rem) = (cum_notional / q, cum_notional % q);
    let twice = rem.unsigned_abs() * 2;
    let qa = q.unsigned_abs();
    let away = twice > qa || (twice == qa && quot % 2 != 0);
    if away && rem != 0 {
        quot += if (cum_notional < 0) != (q < 0) { -1 } else { 1 };
    }
    quot.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_round_trip() {
        assert_eq!(parse_fixed("52000.00", 2), Ok(5_200_000));
        assert_eq!(parse_fixed("0.01000000", 8), Ok(1_000_000));
        assert_eq!(parse_fixed("52000.00000000", 2), Ok(5_200_000));
        assert_eq!(format_fixed(5_200_000, 2), "52000.00");
        assert_eq!(format_fixed(1_000_000, 8), "0.01000000");
        assert_eq!(format_fixed(-5, 3), "-0.005");
        assert_eq!(format_fixed(7, 0), "7");
        assert!(matches!(
            parse_fixed("0.123", 2),
            Err(DecimalError::TooPrecise(..))
        ));
        assert!(matches!(
            parse_fixed("1e-05", 8),
            Err(DecimalError::InvalidChar('e'))
        ));
        assert_eq!(parse_fixed(".5", 1), Ok(5));
        assert_eq!(parse_fixed("10000000000", 0), Ok(10_000_000_000));
    }

    #[test]
    fn wide_keeps_its_scale() {
        for s in [
            "0.10264410",
            "0.00000000",
            "1",
            "-12.5",
            "123456789.123456789012345678",
        ] {
            assert_eq!(WideDecimal::parse(s).unwrap().to_string(), s);
        }
        let d = WideDecimal::parse("0.1234567890123456789").unwrap();
        assert_eq!(d.scale, 18);
        assert_eq!(d.mantissa, 123_456_789_012_345_679);
        assert_eq!(
            WideDecimal::parse("0.00100000").unwrap().to_fixed(3),
            Some(1)
        );
        assert_eq!(WideDecimal::parse("0.0015").unwrap().to_fixed(3), None);
        assert_eq!(scale_of_step("0.00100000"), Ok(8));
        assert_eq!(scale_of_step("0.001"), Ok(3));
        assert_eq!(scale_of_step("1"), Ok(0));
    }

    #[test]
    fn average_rounds_half_even() {
        // 1.00 * 1 + 1.01 * 1 = 2.01 over 2 -> 1.005 -> 1.00 (even)
        assert_eq!(average_price(notional(100, 1) + notional(101, 1), 2), 100);
        assert_eq!(average_price(notional(101, 1) + notional(102, 1), 2), 102);
        assert_eq!(average_price(notional(100, 2) + notional(101, 1), 3), 100);
        assert_eq!(average_price(0, 0), 0);
    }
}
