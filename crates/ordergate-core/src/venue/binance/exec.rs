//! `executionReport` → [`Report`], statelessly. The adapter adds what
//! needs state: Accepted once per order, fill de-duplication, epochs.

use crate::decimal::{pow10, WideDecimal};
use crate::ids::{ClientId, ClientIdKind};
use crate::instrument::Instrument;
use crate::model::Reason;
use crate::venue::{ExecEvent, Report};

use super::parse::Event;

/// One execution report, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// Our order (named by `C` on a cancel's events, else by `c`).
    pub client_id: ClientId,
    /// The venue's order id (`i`), part of the fill de-duplication key.
    pub order_id: u64,
    /// `t`: -1 unless the report is a trade.
    pub trade_id: i64,
    pub event: Report,
    /// The order is done at the venue (`X` is final).
    pub terminal: bool,
    /// A fill value was not on the instrument's scale and was rounded to
    /// the nearest representable value (never dropped: losing a fill is
    /// worse than a sub-tick difference).
    pub off_scale: bool,
    /// `z`: the venue's cumulative filled quantity after this report, at
    /// the quantity scale (cross-checked against the sum of our fills).
    pub venue_cum_qty: Option<i64>,
}

/// What an execution report amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
// Made once per report and consumed at once, never stored: boxing the
// large variant would add an allocation per execution report.
#[allow(clippy::large_enum_variant)]
pub enum ExecOutcome {
    Event(Exec),
    /// The client id is not one we generate (another tool on the account).
    Foreign,
    /// Nothing for the lifecycle (`REPLACED`, an STP decrement, …).
    Nothing,
}

fn field<'e>(v: &'e Option<std::borrow::Cow<'_, str>>, name: &str) -> Result<&'e str, String> {
    v.as_deref()
        .ok_or_else(|| format!("executionReport without `{name}`"))
}

fn num<T: Copy>(v: Option<T>, name: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("executionReport without `{name}`"))
}

/// `s` at `scale`, rounded half-to-even when the venue sent more digits
/// than the scale holds; the flag says whether rounding happened.
pub fn to_scale_nearest(s: &str, scale: u8, name: &str) -> Result<(i64, bool), String> {
    let w = WideDecimal::parse(s).map_err(|e| format!("executionReport `{name}`: {e}"))?;
    if let Some(v) = w.to_fixed(scale) {
        return Ok((v, false));
    }
    let overflow = || format!("executionReport `{name}` {s:?} does not fit at scale {scale}");
    if w.scale <= scale {
        return Err(overflow());
    }
    let div = pow10(w.scale - scale);
    let (q, r) = (w.mantissa / div, w.mantissa % div);
    let twice = r.unsigned_abs() * 2;
    let away = twice > div.unsigned_abs() || (twice == div.unsigned_abs() && q % 2 != 0);
    let q = if away { q + w.mantissa.signum() } else { q };
    Ok((i64::try_from(q).map_err(|_| overflow())?, true))
}

/// Maps the report's reject reason (`r`) to ours.
fn reject_reason(r: &str) -> Reason {
    match r {
        "INSUFFICIENT_BALANCES" => Reason::VenueInsufficientBalance,
        "WOULD_MATCH_IMMEDIATELY" => Reason::WouldTakeLiquidity,
        _ => Reason::VenueRejected,
    }
}

/// Normalizes one `executionReport` for `inst` (found by its `s`).
///
/// The order is named by `C` when set (on a cancel's events `c` is the
/// cancel's own id and `C` the order's), else by `c`.
pub fn normalize(ev: &Event<'_>, inst: &Instrument) -> Result<ExecOutcome, String> {
    let x = field(&ev.exec_type, "x")?;
    let status = field(&ev.order_status, "X")?;
    let c = field(&ev.client_id, "c")?;
    let name = match ev.orig_client_id.as_deref() {
        Some(orig) if !orig.is_empty() => orig,
        _ => c,
    };
    let client_id = match ClientId::decode(name) {
        Some(id) if id.kind == ClientIdKind::Order => id,
        _ => return Ok(ExecOutcome::Foreign),
    };
    let order_id = num(ev.order_id, "i")?;
    let time_ms = num(ev.time, "T")?;
    let trade_id = ev.trade_id.unwrap_or(-1);
    let terminal = matches!(
        status,
        "FILLED" | "CANCELED" | "REJECTED" | "EXPIRED" | "EXPIRED_IN_MATCH"
    );
    let mut off_scale = false;
    let event = match x {
        "NEW" => Report::Exec(ExecEvent::Accepted {
            client_id,
            venue_order_id: order_id.to_string(),
            time_ms,
        }),
        "TRADE" => {
            let (last_qty, q_off) =
                to_scale_nearest(field(&ev.last_qty, "l")?, inst.qty_scale, "l")?;
            let (last_price, p_off) =
                to_scale_nearest(field(&ev.last_price, "L")?, inst.price_scale, "L")?;
            off_scale = q_off || p_off;
            let fee = WideDecimal::parse(field(&ev.fee, "n")?)
                .map_err(|e| format!("executionReport `n`: {e}"))?;
            Report::Exec(ExecEvent::Fill {
                client_id,
                trade_id: num(ev.trade_id, "t")?.to_string(),
                last_qty,
                last_price,
                fee,
                fee_asset: ev.fee_asset.as_deref().unwrap_or("").to_owned(),
                time_ms,
                is_maker: num(ev.is_maker, "m")?,
                order_filled: status == "FILLED",
            })
        }
        "CANCELED" => Report::Exec(ExecEvent::Canceled { client_id, time_ms }),
        "EXPIRED" => Report::Exec(ExecEvent::Expired { client_id, time_ms }),
        // Self-trade prevention ends the order only when it says so.
        "TRADE_PREVENTION" if terminal => Report::Exec(ExecEvent::Expired { client_id, time_ms }),
        "REJECTED" => {
            let r = ev.reject_reason.as_deref().unwrap_or("NONE");
            Report::Exec(ExecEvent::Rejected {
                client_id,
                reason: reject_reason(r),
                code: 0,
                text: r.to_owned(),
            })
        }
        _ => return Ok(ExecOutcome::Nothing),
    };
    let venue_cum_qty = match ev.cum_qty.as_deref() {
        Some(z) => Some(to_scale_nearest(z, inst.qty_scale, "z")?.0),
        None => None,
    };
    Ok(ExecOutcome::Event(Exec {
        client_id,
        order_id,
        trade_id,
        event,
        terminal,
        off_scale,
        venue_cum_qty,
    }))
}

#[cfg(test)]
mod tests {
    use super::to_scale_nearest;

    #[test]
    fn rounds_half_even_and_flags() {
        assert_eq!(to_scale_nearest("1.00000000", 2, "L"), Ok((100, false)));
        assert_eq!(to_scale_nearest("1.005", 2, "L"), Ok((100, true)));
        assert_eq!(to_scale_nearest("1.015", 2, "L"), Ok((102, true)));
        assert_eq!(to_scale_nearest("1.0051", 2, "L"), Ok((101, true)));
        assert_eq!(to_scale_nearest("-1.006", 2, "L"), Ok((-101, true)));
        assert!(to_scale_nearest("1e5", 2, "L").is_err());
    }
}
