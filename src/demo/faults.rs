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
use crate::ids::{ClientId, ClientIdKind, Namespace, OrderKey};
use crate::protocol::OrderState;
use crate::sim::binance::{LedgerEntry, SimConfig, SimHandle};

use super::strategy::{Outcome, StrategyReport};

// The simulator's fault API (`ordergate_sim::binance::faults`), used only
// through the four functions below.
pub(crate) use crate::sim::binance::{FaultCounts, FaultSpec};

/// `--faults SPEC`, parsed by the simulator's own parser.
pub(crate) fn parse_spec(s: &str) -> Result<FaultSpec, String> {
    FaultSpec::parse(s).map_err(|e| e.to_string())
}

/// `base` with `spec` injected, drawn from `seed`.
pub(crate) fn with_faults(base: SimConfig, spec: &FaultSpec, seed: u64) -> SimConfig {
    SimConfig {
        faults: spec.clone(),
        fault_seed: seed,
        ..base
    }
}

/// How many faults of each enabled kind the simulator injected so far.
pub(crate) fn counts(sim: &SimHandle) -> FaultCounts {
    sim.fault_counts()
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
/// failed checks, with those of `more` (the chaos run's: its lines go
/// after the counts, before the failures' details).
pub(crate) fn check(
    reports: &[StrategyReport],
    ledger: &[LedgerEntry],
    ns: Namespace,
    enabled: &[&'static str],
    counts: &FaultCounts,
    more: impl FnOnce() -> Verdict,
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

    let planned: usize = reports.iter().map(|r| r.planned).sum();
    let sent: usize = reports.iter().map(|r| r.outcomes.len()).sum();
    println!("orders sent: {sent}/{planned}");
    if sent < planned {
        let why: Vec<String> = reports
            .iter()
            .filter_map(|r| r.gave_up.as_ref().map(|g| format!("{}: {g}", r.name)))
            .collect();
        verdict.push(format!(
            "orders never sent: {} ({})",
            planned - sent,
            why.join("; ")
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
            ClientId::order(ns, key).encode()
        ),
        None => format!(
            "strategy {} order {} ({})",
            key.strategy,
            key.order_id,
            ClientId::order(ns, key).encode()
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
        let decoded = ClientId::decode(cid).filter(|id| {
            // Any run of this installation: the orders span restarts.
            id.kind == ClientIdKind::Order && id.ns.installation == ns.installation
        });
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
                    "{}: no order any strategy sent in installation {}",
                    describe(e),
                    ns.installation_str()
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
    let more = more();

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
    verdict.extend(more);
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::strategy::Kind;
    use crate::sim::binance::engine::Scales;
    use crate::sim::binance::{Order, OrderStatus, OrderType, Side, TimeInForce, Trade};

    const NS: Namespace = Namespace::new(77, 3);
    const SCALES: Scales = Scales {
        price_scale: 2,
        qty_scale: 5,
        base_precision: 8,
        quote_precision: 8,
    };

    fn outcome(order_id: u64, state: OrderState, qty: i64, notional: i128) -> Outcome {
        Outcome {
            order_id,
            kind: Kind::Market,
            state,
            cum_qty: qty,
            cum_notional: notional,
            fills: u32::from(qty > 0),
            reject: None,
            answered: true,
            fill_qty: qty,
            fill_notional: notional,
            final_qty: state.is_terminal().then_some(qty),
            final_notional: (state == OrderState::Filled).then_some(notional),
            messages: vec!["+0.000s sent NewOrder".into()],
        }
    }

    fn report(strategy_id: u32, outcomes: Vec<Outcome>) -> StrategyReport {
        StrategyReport {
            name: format!("demo-{strategy_id}"),
            strategy_id,
            planned: outcomes.len(),
            gave_up: None,
            price_scale: SCALES.price_scale,
            qty_scale: SCALES.qty_scale,
            outcomes,
            round_trip: crate::demo::floor::new_histogram(),
            link: Default::default(),
        }
    }

    /// A ledger entry for `cid`: `status`, one trade of `qty` at 60000.00.
    fn entry(venue_id: u64, cid: &str, status: OrderStatus, qty: i64) -> LedgerEntry {
        let price = 6_000_000;
        let quote = price as i128 * qty as i128;
        LedgerEntry {
            order: Order {
                account: "demo".into(),
                symbol: "BTCUSDT".into(),
                scales: SCALES,
                order_id: venue_id,
                client_order_id: cid.into(),
                side: Side::Buy,
                order_type: OrderType::Market,
                time_in_force: TimeInForce::Gtc,
                price: 0,
                orig_qty: qty,
                orig_quote_qty: 0,
                executed_qty: qty,
                cum_quote_qty: quote,
                status,
                expiry_reason: None,
                time: 0,
                update_time: 0,
                working_time: 0,
            },
            trades: (qty > 0)
                .then(|| Trade {
                    trade_id: venue_id,
                    price,
                    qty,
                    quote_qty: quote,
                    commission: 0,
                    commission_asset: "USDT".into(),
                    is_maker: false,
                    time: 0,
                })
                .into_iter()
                .collect(),
        }
    }

    fn cid(strategy: u32, order_id: u64) -> String {
        ClientId::order(NS, OrderKey { strategy, order_id }).encode()
    }

    /// Strategy 1: order 1 filled 0.00100 at 60000.00, order 2 refused.
    fn clean() -> (Vec<StrategyReport>, Vec<LedgerEntry>) {
        let notional = 6_000_000i128 * 100;
        let mut rejected = outcome(2, OrderState::Rejected, 0, 0);
        rejected.final_notional = None;
        (
            vec![report(
                1,
                vec![outcome(1, OrderState::Filled, 100, notional), rejected],
            )],
            vec![entry(1, &cid(1, 1), OrderStatus::Filled, 100)],
        )
    }

    fn verdict(
        reports: &[StrategyReport],
        ledger: &[LedgerEntry],
        enabled: &[&'static str],
        counts: &[(&'static str, u64)],
    ) -> Verdict {
        let counts = FaultCounts(counts.iter().copied().collect());
        check(reports, ledger, NS, enabled, &counts, Vec::new)
    }

    fn failed(v: &Verdict, what: &str) -> bool {
        v.iter().any(|l| l.starts_with(what))
    }

    #[test]
    fn a_clean_run_passes() {
        let (reports, ledger) = clean();
        let v = verdict(&reports, &ledger, &["drop"], &[("drop", 2)]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_fault_that_never_fired_fails() {
        let (reports, ledger) = clean();
        let v = verdict(&reports, &ledger, &["drop", "clock"], &[("drop", 2)]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("clock"), "{v:?}");
    }

    #[test]
    fn a_foreign_or_other_installation_order_is_lost() {
        let (reports, mut ledger) = clean();
        ledger.push(entry(2, "web_123", OrderStatus::Filled, 100));
        let other_epoch = ClientId::order(
            Namespace::new(NS.installation + 1, NS.epoch),
            OrderKey {
                strategy: 1,
                order_id: 1,
            },
        )
        .encode();
        ledger.push(entry(3, &other_epoch, OrderStatus::New, 0));
        // An order id no strategy sent.
        ledger.push(entry(4, &cid(1, 99), OrderStatus::New, 0));
        let v = verdict(&reports, &ledger, &[], &[]);
        assert!(failed(&v, "lost: 3"), "{v:?}");
    }

    #[test]
    fn an_order_without_a_terminal_report_is_lost_and_unfinished() {
        let (mut reports, ledger) = clean();
        reports[0].outcomes[0].state = OrderState::Unknown;
        let v = verdict(&reports, &ledger, &[], &[]);
        assert!(failed(&v, "lost: 1"), "{v:?}");
        assert!(failed(&v, "orders without a terminal report: 1"), "{v:?}");
    }

    #[test]
    fn a_client_id_placed_twice_or_an_order_under_two_ids_is_a_duplicate() {
        let (reports, mut ledger) = clean();
        ledger.push(entry(2, &cid(1, 1), OrderStatus::Filled, 100));
        let v = verdict(&reports, &ledger, &[], &[]);
        assert!(failed(&v, "duplicates: 1"), "{v:?}");

        let (reports, mut ledger) = clean();
        // The same key placed again by a later run: another client id.
        let alias = ClientId::order(
            Namespace::new(NS.installation, NS.epoch + 1),
            OrderKey {
                strategy: 1,
                order_id: 1,
            },
        )
        .encode();
        assert_eq!(
            ClientId::decode(&alias).map(|c| c.key),
            Some(OrderKey {
                strategy: 1,
                order_id: 1
            })
        );
        ledger.push(entry(2, &alias, OrderStatus::Filled, 100));
        let v = verdict(&reports, &ledger, &[], &[]);
        assert!(failed(&v, "duplicates: 1"), "{v:?}");
    }

    #[test]
    fn any_difference_from_the_ledger_is_a_fill_mismatch() {
        type Tweak = fn(&mut Outcome);
        let tweaks: [(&str, Tweak); 6] = [
            ("state", |o| o.state = OrderState::Canceled),
            ("fill sum", |o| o.fill_qty -= 1),
            ("last said qty", |o| o.cum_qty += 1),
            ("terminal report qty", |o| o.final_qty = Some(99)),
            ("fill notional", |o| o.fill_notional += 1),
            ("terminal report notional", |o| o.final_notional = Some(1)),
        ];
        for (what, tweak) in tweaks {
            let (mut reports, ledger) = clean();
            tweak(&mut reports[0].outcomes[0]);
            let v = verdict(&reports, &ledger, &[], &[]);
            assert!(failed(&v, "fill mismatches: 1"), "{what}: {v:?}");
        }
    }

    #[test]
    fn an_order_the_venue_never_had_must_have_ended_rejected() {
        let (mut reports, ledger) = clean();
        reports[0].outcomes[1].state = OrderState::Canceled;
        let v = verdict(&reports, &ledger, &[], &[]);
        assert!(failed(&v, "fill mismatches: 1"), "{v:?}");

        // And a Rejected order the venue did have is a mismatch too.
        let (mut reports, ledger) = clean();
        reports[0].outcomes[0].state = OrderState::Rejected;
        let v = verdict(&reports, &ledger, &[], &[]);
        assert!(failed(&v, "fill mismatches: 1"), "{v:?}");
    }

    #[test]
    fn orders_never_sent_fail() {
        let (mut reports, ledger) = clean();
        reports[0].planned = 5;
        reports[0].gave_up = Some("venue 1 not Up for 60s".into());
        let v = verdict(&reports, &ledger, &[], &[]);
        assert!(failed(&v, "orders never sent: 3"), "{v:?}");
    }
}
