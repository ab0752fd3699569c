//! `ordergate demo --faults SPEC`: the whole path with the simulator
//! injecting faults, judged by the simulator's own ledger.
//!
//! The simulator runs in this process, so the demo reads its ledger (one
//! entry per order the venue created, with its trades) and its fault
//! counts directly; the sidecar and the strategies are child processes.
//! After the run, [`check`] compares what every strategy was told with
//! the ledger and prints one block:
//!
//! - `faults injected:` each enabled kind with its count, each > 0;
//! - `orders the simulator saw:` the ledger's entries;
//! - `lost:` ledger entries no strategy order accounts for (client id
//!   not ours, or an order that never got its terminal report);
//! - `duplicates:` a client id on two ledger entries, or one strategy
//!   order under two client ids;
//! - `fill mismatches:` a strategy order whose final state, quantity or
//!   notional (summed from its Fills, and as its messages said) differs
//!   from the ledger's, or that the venue never had and that did not end
//!   Rejected;
//! - `terminal reports:` strategy orders with a terminal report / all.

use std::collections::{BTreeMap, HashMap};

use crate::decimal::WideDecimal;
use crate::ids::{ClientId, ClientIdKind, OrderKey};
use crate::protocol::OrderState;
use crate::sim::binance::{LedgerEntry, SimConfig, SimHandle};

use super::strategy::{Outcome, StrategyReport};

// The simulator's fault API (`crates/ordergate-sim/src/binance/faults.rs`)
// is used only through the four functions below. Until it lands, `shim`
// stands in for it with the same names and knows only `none`; the switch
// is replacing `use shim::...` with
// `use crate::sim::binance::{FaultCounts, FaultSpec};` and the bodies of
// `with_faults` and `counts` with the commented lines.
pub(crate) use shim::{FaultCounts, FaultSpec};

mod shim {
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    pub struct FaultSpec;

    #[derive(Debug)]
    pub struct FaultSpecError(pub String);

    impl std::fmt::Display for FaultSpecError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl FaultSpec {
        pub fn parse(s: &str) -> Result<FaultSpec, FaultSpecError> {
            match s.trim() {
                "none" => Ok(FaultSpec),
                _ => Err(FaultSpecError(format!(
                    "{s:?}: this build's simulator has no fault injection yet \
                     (crates/ordergate-sim/src/binance/faults.rs); only `none` is accepted"
                ))),
            }
        }

        pub fn kinds(&self) -> Vec<Kind> {
            Vec::new()
        }
    }

    pub struct Kind;

    impl Kind {
        pub fn name(&self) -> &'static str {
            ""
        }
    }

    #[derive(Debug, Default)]
    pub struct FaultCounts(pub BTreeMap<&'static str, u64>);
}

/// `--faults SPEC`, parsed by the simulator's own parser.
pub(crate) fn parse_spec(s: &str) -> Result<FaultSpec, String> {
    FaultSpec::parse(s).map_err(|e| e.to_string())
}

/// `base` with `spec` injected, drawn from `seed`.
pub(crate) fn with_faults(base: SimConfig, spec: &FaultSpec, seed: u64) -> SimConfig {
    // SimConfig { faults: spec.clone(), fault_seed: seed, ..base }
    let _ = (spec, seed);
    base
}

/// How many faults of each enabled kind the simulator injected so far.
pub(crate) fn counts(sim: &SimHandle) -> FaultCounts {
    // sim.fault_counts()
    let _ = sim;
    FaultCounts::default()
}

/// The names of the kinds `spec` enables.
pub(crate) fn kind_names(spec: &FaultSpec) -> Vec<&'static str> {
    spec.kinds().into_iter().map(|k| k.name()).collect()
}

/// How many failures of one check are shown in full.
const SHOWN: usize = 10;

/// One check's failures: a short name of each, and details.
#[derive(Default)]
struct Failures {
    names: Vec<String>,
    details: Vec<String>,
}

impl Failures {
    fn push(&mut self, name: String, detail: String) {
        self.names.push(name);
        self.details.push(detail);
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// The verdict of [`check`]: empty when every check passed, otherwise
/// one line per failed check naming the orders.
pub(crate) type Verdict = Vec<String>;

fn venue_state(e: &LedgerEntry) -> OrderState {
    match e.order.status.as_str() {
        "NEW" => OrderState::New,
        "PARTIALLY_FILLED" => OrderState::PartiallyFilled,
        "FILLED" => OrderState::Filled,
        "CANCELED" => OrderState::Canceled,
        "EXPIRED" | "EXPIRED_IN_MATCH" => OrderState::Expired,
        "REJECTED" => OrderState::Rejected,
        _ => OrderState::Unknown,
    }
}

fn describe(e: &LedgerEntry) -> String {
    let s = e.order.scales;
    format!(
        "venue order {} {} {} executed {} quote {} ({} trades)",
        e.order.order_id,
        e.order.client_order_id,
        e.order.status.as_str(),
        s.fmt_qty(e.order.executed_qty),
        s.fmt_quote(e.order.cum_quote_qty),
        e.trades.len()
    )
}

fn history(o: &Outcome) -> String {
    let mut s = String::new();
    for m in &o.messages {
        s.push_str("\n        ");
        s.push_str(m);
    }
    s
}

/// Compares `reports` (every strategy's orders) with the simulator's
/// `ledger` and fault `counts`, prints the check block, and returns the
/// failed checks.
pub(crate) fn check(
    reports: &[StrategyReport],
    ledger: &[LedgerEntry],
    epoch: u32,
    enabled: &[&'static str],
    counts: &FaultCounts,
) -> Verdict {
    let mut verdict = Vec::new();

    // Faults injected: every enabled kind fired.
    println!("faults injected:");
    if enabled.is_empty() {
        println!("  (none enabled)");
    }
    let mut silent = Vec::new();
    for kind in enabled {
        let c = counts.0.get(kind).copied().unwrap_or(0);
        println!("  {kind:<24} {c}");
        if c == 0 {
            silent.push(*kind);
        }
    }
    if !silent.is_empty() {
        verdict.push(format!(
            "faults that never fired (the run was too short for them, or they are not \
             injected): {}",
            silent.join(", ")
        ));
    }

    println!("orders the simulator saw: {}", ledger.len());

    // Every strategy order, by key.
    let mut ours: HashMap<OrderKey, (&StrategyReport, &Outcome)> = HashMap::new();
    for r in reports {
        for o in &r.outcomes {
            ours.insert(
                OrderKey {
                    strategy: r.strategy_id,
                    order_id: o.order_id,
                },
                (r, o),
            );
        }
    }
    let name = |key: OrderKey| match ours.get(&key) {
        Some((r, _)) => format!(
            "{} order {} ({})",
            r.name,
            key.order_id,
            ClientId::order(epoch, key).encode()
        ),
        None => format!(
            "strategy {} order {} ({})",
            key.strategy,
            key.order_id,
            ClientId::order(epoch, key).encode()
        ),
    };

    // Lost: ledger entries that no order of ours with a terminal report
    // accounts for. Ours are indexed by key for the other checks.
    let mut lost = Failures::default();
    let mut by_cid: BTreeMap<&str, Vec<&LedgerEntry>> = BTreeMap::new();
    let mut by_key: BTreeMap<OrderKey, Vec<&LedgerEntry>> = BTreeMap::new();
    for e in ledger {
        let cid = e.order.client_order_id.as_str();
        by_cid.entry(cid).or_default().push(e);
        let decoded =
            ClientId::decode(cid).filter(|id| id.kind == ClientIdKind::Order && id.epoch == epoch);
        match decoded.and_then(|id| ours.get(&id.key).map(|x| (id.key, x))) {
            Some((key, (_, o))) => {
                by_key.entry(key).or_default().push(e);
                if !o.state.is_terminal() {
                    lost.push(
                        cid.to_owned(),
                        format!(
                            "{}: {} at the venue, but no terminal report here (last {:?}){}",
                            name(key),
                            describe(e),
                            o.state,
                            history(o)
                        ),
                    );
                }
            }
            None => lost.push(
                cid.to_owned(),
                format!(
                    "{}: no order any strategy sent in epoch {epoch}",
                    describe(e)
                ),
            ),
        }
    }
    println!("lost: {}", lost.len());

    // Duplicates: one client id placed twice, one order under two ids.
    let mut dups = Failures::default();
    for (cid, entries) in &by_cid {
        if entries.len() > 1 {
            let list: Vec<String> = entries.iter().map(|e| describe(e)).collect();
            dups.push(
                (*cid).to_owned(),
                format!(
                    "client id {cid} on {} ledger entries: {}",
                    entries.len(),
                    list.join("; ")
                ),
            );
        }
    }
    for (key, entries) in &by_key {
        let mut cids: Vec<&str> = entries
            .iter()
            .map(|e| e.order.client_order_id.as_str())
            .collect();
        cids.sort_unstable();
        cids.dedup();
        if cids.len() > 1 {
            dups.push(
                name(*key),
                format!(
                    "{} placed under {} client ids: {}",
                    name(*key),
                    cids.len(),
                    cids.join(", ")
                ),
            );
        }
    }
    println!("duplicates: {}", dups.len());

    // Fill mismatches: what each strategy order was told against the
    // venue's record of it.
    let mut mismatches = Failures::default();
    let mut keys: Vec<&OrderKey> = ours.keys().collect();
    keys.sort_unstable();
    for key in keys {
        let (r, o) = ours[key];
        let qs = r.qty_scale;
        let ns = r.price_scale + r.qty_scale;
        let q = |m: i64| WideDecimal::new(m as i128, qs).normalized();
        let n = |m: i128| WideDecimal::new(m, ns).normalized();
        let mut differ = Vec::new();
        match by_key.get(key).and_then(|v| v.first()) {
            None => {
                if o.state != OrderState::Rejected {
                    differ.push(format!(
                        "ended {:?} here, but the venue never had it",
                        o.state
                    ));
                }
                if o.fill_qty != 0 || o.cum_qty != 0 {
                    differ.push(format!(
                        "fills of {} here (last said {}), but the venue never had it",
                        q(o.fill_qty),
                        q(o.cum_qty)
                    ));
                }
            }
            Some(e) => {
                let s = e.order.scales;
                let wq = |m: i64| WideDecimal::new(m as i128, s.qty_scale).normalized();
                let wn = |m: i128| WideDecimal::new(m, s.notional_scale()).normalized();
                let v_state = venue_state(e);
                let v_qty = wq(e.order.executed_qty);
                let v_quote = wn(e.order.cum_quote_qty);
                let t_qty = wq(e.trades.iter().map(|t| t.qty).sum());
                let t_quote = wn(e.trades.iter().map(|t| t.quote_qty).sum());
                if v_state != o.state {
                    differ.push(format!(
                        "state {:?} here, {} at the venue",
                        o.state,
                        e.order.status.as_str()
                    ));
                }
                if t_qty != v_qty || t_quote != v_quote {
                    differ.push(format!(
                        "the ledger disagrees with itself: executed {v_qty} quote {v_quote}, \
                         its trades sum to {t_qty} and {t_quote}"
                    ));
                }
                let mut qty = |what: &str, ours: Option<i64>| {
                    if let Some(m) = ours {
                        if q(m) != v_qty {
                            differ.push(format!(
                                "{what} {} here, executed {v_qty} at the venue",
                                q(m)
                            ));
                        }
                    }
                };
                qty("sum of Fill quantities", Some(o.fill_qty));
                qty("cumulative quantity last said", Some(o.cum_qty));
                qty("terminal report's quantity", o.final_qty);
                let mut notional = |what: &str, ours: Option<i128>| {
                    if let Some(m) = ours {
                        if n(m) != v_quote {
                            differ.push(format!(
                                "{what} {} here, quote {v_quote} at the venue",
                                n(m)
                            ));
                        }
                    }
                };
                notional("sum of Fill notionals", Some(o.fill_notional));
                notional("cumulative notional last said", Some(o.cum_notional));
                notional("terminal report's notional", o.final_notional);
                if by_key[key].len() > 1 {
                    differ.push(format!(
                        "compared with the first of its {} ledger entries (see duplicates)",
                        by_key[key].len()
                    ));
                }
            }
        }
        if !differ.is_empty() {
            mismatches.push(
                name(*key),
                format!("{}: {}{}", name(*key), differ.join("; "), history(o)),
            );
        }
    }
    println!("fill mismatches: {}", mismatches.len());

    // Terminal reports.
    let mut open = Failures::default();
    let total = ours.len();
    for r in reports {
        for o in &r.outcomes {
            if !o.state.is_terminal() {
                let key = OrderKey {
                    strategy: r.strategy_id,
                    order_id: o.order_id,
                };
                open.push(
                    name(key),
                    format!(
                        "{}: never finished (last {:?}, {}){}",
                        name(key),
                        o.state,
                        if o.answered {
                            "answered"
                        } else {
                            "never answered"
                        },
                        history(o)
                    ),
                );
            }
        }
    }
    println!("terminal reports: {}/{total}", total - open.len());

    for (what, f) in [
        ("lost", &lost),
        ("duplicates", &dups),
        ("fill mismatches", &mismatches),
        ("orders without a terminal report", &open),
    ] {
        if f.len() == 0 {
            continue;
        }
        println!("{what} ({}):", f.len());
        for d in f.details.iter().take(SHOWN) {
            println!("  {d}");
        }
        if f.len() > SHOWN {
            println!("  ... and {} more", f.len() - SHOWN);
        }
        let mut names: Vec<&str> = f.names.iter().map(String::as_str).take(SHOWN * 3).collect();
        if f.len() > names.len() {
            names.push("...");
        }
        verdict.push(format!("{what}: {} ({})", f.len(), names.join(", ")));
    }
    verdict
}
