//! Instruments: what a strategy may trade, with the scales that make its
//! prices and quantities exact integers.

use crate::decimal::{self, DecimalError};
use crate::ids::{InstrumentId, VenueId};

/// Market category, as the venues name their product lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Category {
    Spot = 1,
    LinearPerp = 2,
}

/// One tradable instrument. `tick`, `lot`, `min_qty` are mantissas at the
/// instrument's scales; `min_notional` is at `price_scale + qty_scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub id: InstrumentId,
    pub venue: VenueId,
    pub symbol: String,
    pub category: Category,
    pub price_scale: u8,
    pub qty_scale: u8,
    pub tick: i64,
    pub lot: i64,
    pub min_qty: i64,
    pub min_notional: i128,
}

impl Instrument {
    /// Builds an instrument from the venue's decimal strings (tick size,
    /// step size, min qty, min notional), taking the scales from the steps.
    #[allow(clippy::too_many_arguments)] // one per venue filter field; named at every call site
    pub fn from_strings(
        id: InstrumentId,
        venue: VenueId,
        symbol: &str,
        category: Category,
        tick: &str,
        lot: &str,
        min_qty: &str,
        min_notional: &str,
    ) -> Result<Self, DecimalError> {
        let price_scale = decimal::scale_of_step(tick)?;
        let qty_scale = decimal::scale_of_step(lot)?;
        let min_notional = decimal::WideDecimal::parse(min_notional)?;
        let notional_scale = price_scale + qty_scale;
        let min_notional = if min_notional.scale <= notional_scale {
            min_notional.mantissa * decimal::pow10(notional_scale - min_notional.scale)
        } else {
            // Round a finer venue minimum up so our check is never looser.
            let div = decimal::pow10(min_notional.scale - notional_scale);
            (min_notional.mantissa + div - 1) / div
        };
        Ok(Instrument {
            id,
            venue,
            symbol: symbol.to_owned(),
            category,
            price_scale,
            qty_scale,
            tick: decimal::parse_fixed(tick, price_scale)?,
            lot: decimal::parse_fixed(lot, qty_scale)?,
            min_qty: decimal::parse_fixed(min_qty, qty_scale)?,
            min_notional,
        })
    }

    pub fn format_price(&self, price: i64) -> String {
        decimal::format_fixed(price as i128, self.price_scale)
    }

    pub fn format_qty(&self, qty: i64) -> String {
        decimal::format_fixed(qty as i128, self.qty_scale)
    }
}
