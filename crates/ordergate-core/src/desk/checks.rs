//! Pre-trade checks: what the desk refuses before anything reaches a
//! venue. They run in a fixed order so a strategy always hears about the
//! first problem, and each text says what was wrong in the instrument's own
//! units. The rate and position limits of later issues go here too.

use crate::decimal;
use crate::instrument::{Category, Instrument};
use crate::model::{flags, NewOrder, OrdType, Reason, TimeInForce};

/// A refusal: the reason code and what was wrong, in words.
pub type Refusal = (Reason, String);

/// Every check, in order: flags, then what the venue can express, then the
/// instrument's tick, lot, minimum quantity and minimum notional.
pub fn check_order(i: &Instrument, o: &NewOrder) -> Result<(), Refusal> {
    check_flags(o)?;
    check_expressible(i, o)?;
    check_instrument(i, o)
}

fn invalid_flags(text: String) -> Refusal {
    (Reason::InvalidFlags, text)
}

fn check_flags(o: &NewOrder) -> Result<(), Refusal> {
    let unknown = o.flags & !flags::KNOWN;
    if unknown != 0 {
        return Err(invalid_flags(format!("unknown flag bits 0x{unknown:02x}")));
    }
    let market = o.ord_type == OrdType::Market;
    if o.flags & flags::QUOTE_QTY != 0 && !market {
        return Err(invalid_flags("QUOTE_QTY is only for MARKET orders".into()));
    }
    if o.flags & flags::POST_ONLY != 0 && market {
        return Err(invalid_flags("POST_ONLY cannot be a MARKET order".into()));
    }
    Ok(())
}

fn tif_name(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "GTC",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
    }
}

/// Combinations of order type, time in force and flags that the venue
/// cannot express are refused here, never silently changed: a post-only
/// order must rest (GTC), a MARKET order never rests and has no
/// fill-or-kill, and spot has no reduce-only (docs/PROTOCOL.md has the
/// table).
fn check_expressible(i: &Instrument, o: &NewOrder) -> Result<(), Refusal> {
    let post_only = o.ord_type == OrdType::LimitMaker || (o.flags & flags::POST_ONLY != 0);
    if post_only && o.tif != TimeInForce::Gtc {
        let what = if o.ord_type == OrdType::LimitMaker {
            "LIMIT_MAKER"
        } else {
            "LIMIT with POST_ONLY"
        };
        return Err(invalid_flags(format!(
            "{what} with {} cannot be expressed: a post-only order rests, so it takes GTC",
            tif_name(o.tif)
        )));
    }
    if o.ord_type == OrdType::Market && o.tif == TimeInForce::Fok {
        return Err(invalid_flags(
            "MARKET with FOK cannot be expressed on this venue: MARKET takes GTC or IOC \
             (it never rests; a remainder expires)"
                .into(),
        ));
    }
    if o.flags & flags::REDUCE_ONLY != 0 && i.category == Category::Spot {
        return Err(invalid_flags(format!(
            "REDUCE_ONLY is for derivatives; {} is a spot instrument",
            i.symbol
        )));
    }
    Ok(())
}

fn check_instrument(i: &Instrument, o: &NewOrder) -> Result<(), Refusal> {
    let quote = o.flags & flags::QUOTE_QTY != 0;
    let market = o.ord_type == OrdType::Market;
    if o.qty <= 0 {
        return Err((
            Reason::InvalidQty,
            format!("qty mantissa {} is not positive", o.qty),
        ));
    }
    if !market {
        if o.price <= 0 {
            return Err((
                Reason::InvalidPrice,
                format!("price mantissa {} is not positive", o.price),
            ));
        }
        if o.price % i.tick != 0 {
            return Err((
                Reason::PriceNotOnTick,
                format!(
                    "price {} is not a multiple of tick {} on {}",
                    i.format_price(o.price),
                    i.format_price(i.tick),
                    i.symbol
                ),
            ));
        }
    }
    let notional_scale = i.price_scale + i.qty_scale;
    if quote {
        // qty is a notional at price_scale + qty_scale.
        if (o.qty as i128) < i.min_notional {
            return Err((
                Reason::BelowMinNotional,
                format!(
                    "quote qty {} is below min notional {} on {}",
                    decimal::format_fixed(o.qty as i128, notional_scale),
                    decimal::format_fixed(i.min_notional, notional_scale),
                    i.symbol
                ),
            ));
        }
        return Ok(());
    }
    if o.qty % i.lot != 0 {
        return Err((
            Reason::QtyNotOnLot,
            format!(
                "qty {} is not a multiple of lot {} on {}",
                i.format_qty(o.qty),
                i.format_qty(i.lot),
                i.symbol
            ),
        ));
    }
    if o.qty < i.min_qty {
        return Err((
            Reason::BelowMinQty,
            format!(
                "qty {} is below min qty {} on {}",
                i.format_qty(o.qty),
                i.format_qty(i.min_qty),
                i.symbol
            ),
        ));
    }
    // A base-quantity MARKET order has no price to check: the venue's own
    // notional filter judges it.
    if !market {
        let notional = decimal::notional(o.price, o.qty);
        if notional < i.min_notional {
            return Err((
                Reason::BelowMinNotional,
                format!(
                    "notional {} is below min notional {} on {}",
                    decimal::format_fixed(notional, notional_scale),
                    decimal::format_fixed(i.min_notional, notional_scale),
                    i.symbol
                ),
            ));
        }
    }
    Ok(())
}
