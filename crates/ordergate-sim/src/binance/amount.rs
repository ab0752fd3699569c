//! The simulator's own decimal handling, written apart from the product's
//! (`ordergate-core` is not a dependency) so a misreading of how Binance
//! writes amounts cannot hide on both sides.
//!
//! An [`Amount`] is the exact value of a plain decimal string as Binance
//! writes it (`"0.01000000"`, `"42"`): its digits as an integer and the
//! number of digits written after the point. Nothing is ever rounded:
//! asking for a scale that cannot hold the value exactly gives `None`.

use std::fmt;

/// Most digits after the point the simulator handles.
pub const MAX_PLACES: u8 = 18;

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0:?} is not a plain decimal number")]
    NotANumber(String),
    #[error("{0:?} has more than {MAX_PLACES} digits after the point")]
    TooManyPlaces(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0:?} needs more than {1} digits after the point")]
    TooFine(String, u8),
}

/// `10^n` for `n <= 38`.
pub fn ten_to(n: u8) -> i128 {
    (0..n).fold(1i128, |acc, _| acc * 10)
}

/// An exact decimal: `digits / 10^places`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    pub digits: i128,
    pub places: u8,
}

impl Amount {
    /// Reads `[-]digits[.digits]`; at least one digit, nothing else.
    pub fn parse(s: &str) -> Result<Amount, AmountError> {
        let bad = || AmountError::NotANumber(s.to_owned());
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let mut parts = body.splitn(2, '.');
        let whole = parts.next().unwrap_or("");
        let frac = parts.next();
        let all_digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
        if !all_digits(whole) || !frac.is_none_or(all_digits) {
            return Err(bad());
        }
        let frac = frac.unwrap_or("");
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if frac.len() > MAX_PLACES as usize {
            return Err(AmountError::TooManyPlaces(s.to_owned()));
        }
        let mut digits: i128 = 0;
        for c in whole.chars().chain(frac.chars()) {
            digits = digits
                .checked_mul(10)
                .and_then(|d| d.checked_add(i128::from(c as u8 - b'0')))
                .ok_or_else(|| AmountError::TooLarge(s.to_owned()))?;
        }
        Ok(Amount {
            digits: if negative { -digits } else { digits },
            places: frac.len() as u8,
        })
    }

    /// The value as an integer count of `10^-places`, if exact.
    pub fn at(self, places: u8) -> Option<i128> {
        if places >= self.places {
            self.digits.checked_mul(ten_to(places - self.places))
        } else {
            let div = ten_to(self.places - places);
            (self.digits % div == 0).then_some(self.digits / div)
        }
    }
}

/// How many digits a step is written with after the point
/// (`"0.01000000"` → 8): the scale amounts of that kind are kept at.
pub fn places_of(step: &str) -> Result<u8, AmountError> {
    Amount::parse(step).map(|a| a.places)
}

/// `s` as an `i64` count of `10^-places`, refusing anything finer.
pub fn parse_at(s: &str, places: u8) -> Result<i64, AmountError> {
    let a = Amount::parse(s)?;
    let v = a
        .at(places)
        .ok_or_else(|| AmountError::TooFine(s.to_owned(), places))?;
    i64::try_from(v).map_err(|_| AmountError::TooLarge(s.to_owned()))
}

/// `price × qty`, at the sum of their scales.
pub fn product(price: i64, qty: i64) -> i128 {
    i128::from(price) * i128::from(qty)
}

/// Writes `value / 10^places` with exactly `places` digits after the
/// point, the way Binance writes amounts.
pub fn write(value: i128, places: u8) -> String {
    Written(value, places).to_string()
}

struct Written(i128, u8);

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Written(value, places) = *self;
        let digits = value.unsigned_abs().to_string();
        let places = places as usize;
        let padded = if digits.len() <= places {
            format!("{}{digits}", "0".repeat(places + 1 - digits.len()))
        } else {
            digits
        };
        let (whole, frac) = padded.split_at(padded.len() - places);
        if value < 0 {
            f.write_str("-")?;
        }
        f.write_str(whole)?;
        if places > 0 {
            write!(f, ".{frac}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_binance_amounts_exactly() {
        assert_eq!(places_of("0.01000000"), Ok(8));
        assert_eq!(places_of("1"), Ok(0));
        assert_eq!(parse_at("27000.01", 8), Ok(2_700_001_000_000));
        assert_eq!(
            parse_at("0.0015", 3),
            Err(AmountError::TooFine("0.0015".into(), 3))
        );
        assert_eq!(parse_at("0.00100000", 3), Ok(1));
        assert_eq!(write(1, 8), "0.00000001");
        assert_eq!(write(-150, 2), "-1.50");
        assert_eq!(write(42, 0), "42");
        assert_eq!(write(0, 3), "0.000");
        assert!(Amount::parse("1e5").is_err());
        assert!(Amount::parse(".").is_err());
        assert!(Amount::parse("+1").is_err());
        assert!(Amount::parse("").is_err());
        assert_eq!(Amount::parse(".5").map(|a| a.at(1)), Ok(Some(5)));
    }
}
