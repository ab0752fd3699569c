//! The simulator against a client nobody here wrote: the official Binance
//! Spot Python SDK (`binance-sdk-spot`) places, queries and cancels orders
//! over REST and the WebSocket API and follows them on the user data
//! stream (tests/sdk/binance_sdk_check.py holds those checks). This test
//! starts the simulator, runs the script, and then checks that the
//! simulator's own ledger holds the orders the SDK saw, in the states the
//! SDK saw them.
//!
//! The SDK lives in a Python virtual environment: `OG_SDK_PYTHON` names its
//! interpreter (.ci/run sets it), else `.venv/bin/python` in the crate root.
//! Without it the test fails under CI and is skipped elsewhere.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ordergate::decimal::WideDecimal;
use ordergate::sim::binance::{FillModel, SimConfig, Simulator, DEMO_API_KEY, DEMO_API_SECRET};

/// The whole script normally takes a few seconds; this bounds a hang.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const SYMBOL: &str = "BTCUSDT";
const REFERENCE_PRICE: &str = "30000.00";
const QUANTITY: &str = "0.01";

/// The interpreter with the SDK installed, or why there is none.
fn sdk_python() -> Result<PathBuf, String> {
    let python = match std::env::var_os("OG_SDK_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    };
    if !python.exists() {
        return Err(format!("{} does not exist", python.display()));
    }
    let probe = Command::new(&python)
        .args(["-c", "import binance_sdk_spot, binance_common"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "{} cannot import binance_sdk_spot: {}",
            python.display(),
            String::from_utf8_lossy(&probe.stderr)
                .lines()
                .last()
                .unwrap_or("no error output")
        ));
    }
    Ok(python)
}

/// Runs the child to completion or kills it after `timeout`; returns its
/// exit status (None if killed), stdout and stderr.
fn wait_bounded(mut child: Child, timeout: Duration) -> (Option<ExitStatus>, String, String) {
    let drain = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("waiting for the SDK script") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => thread::sleep(Duration::from_millis(50)),
        }
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// What the script reports for one order it placed.
#[derive(Debug)]
struct SdkOrder {
    order_id: u64,
    status: String,
    executed_qty: String,
    quote_qty: String,
}

/// Parses `order <clientOrderId> orderId=<n> status=<s> executedQty=<q>
/// cummulativeQuoteQty=<q>`.
fn sdk_orders(stdout: &str) -> HashMap<String, SdkOrder> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("order "))
        .map(|l| {
            let mut it = l.split_whitespace();
            let cid = it.next().expect("client order id").to_string();
            let mut fields: HashMap<&str, &str> = it
                .map(|kv| kv.split_once('=').expect("key=value"))
                .collect();
            let mut take = |k: &str| fields.remove(k).unwrap_or_else(|| panic!("no {k} in {l}"));
            let order = SdkOrder {
                order_id: take("orderId").parse().expect("numeric orderId"),
                status: take("status").to_string(),
                executed_qty: take("executedQty").to_string(),
                quote_qty: take("cummulativeQuoteQty").to_string(),
            };
            (cid, order)
        })
        .collect()
}

/// Starts a simulator with `fill`, runs the SDK script against it, and
/// checks the simulator's ledger against what the script reports.
fn run_against_simulator(python: &Path, fill: FillModel, fills: &str) {
    let sim = Simulator::start(
        SimConfig {
            fill,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .expect("simulator starts");
    sim.set_reference_price(SYMBOL, REFERENCE_PRICE)
        .expect("reference price");

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let child = Command::new(python)
        .arg(root.join("tests/sdk/binance_sdk_check.py"))
        .args([
            &sim.rest_url(),
            &sim.ws_url(),
            DEMO_API_KEY,
            DEMO_API_SECRET,
        ])
        .args(["--symbol", SYMBOL, "--reference-price", REFERENCE_PRICE])
        .args(["--quantity", QUANTITY, "--fills", fills])
        .arg("--fixtures")
        .arg(root.join("tests/fixtures"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the SDK script");
    let (status, stdout, stderr) = wait_bounded(child, SCRIPT_TIMEOUT);
    println!("--- SDK script (--fills {fills}) ---\n{stdout}");
    match status {
        None => {
            panic!("the SDK script did not finish within {SCRIPT_TIMEOUT:?}\n{stdout}\n{stderr}")
        }
        Some(s) if !s.success() => {
            panic!("the SDK script failed ({s}):\n{stdout}\nstderr:\n{stderr}")
        }
        Some(_) => {}
    }

    let seen = sdk_orders(&stdout);
    assert_eq!(seen.len(), 5, "the script reports five orders:\n{stdout}");
    let ledger = sim.ledger();
    // Requests signed with the wrong secret must not have left orders.
    assert_eq!(
        ledger.len(),
        seen.len(),
        "the ledger holds orders the SDK never saw accepted: {:?}",
        ledger
            .iter()
            .map(|e| &e.order.client_order_id)
            .collect::<Vec<_>>()
    );
    for (cid, sdk) in &seen {
        let entry = ledger
            .iter()
            .find(|e| &e.order.client_order_id == cid)
            .unwrap_or_else(|| panic!("{cid} is not in the simulator's ledger"));
        let o = &entry.order;
        assert_eq!(o.order_id, sdk.order_id, "{cid}: orderId");
        assert_eq!(o.status.as_str(), sdk.status, "{cid}: status");
        let dec = |s: &str| {
            WideDecimal::parse(s)
                .expect("decimal from the SDK")
                .normalized()
        };
        let ledger_qty = WideDecimal::new(o.executed_qty.into(), o.scales.qty_scale).normalized();
        assert_eq!(ledger_qty, dec(&sdk.executed_qty), "{cid}: executedQty");
        let ledger_quote =
            WideDecimal::new(o.cum_quote_qty, o.scales.notional_scale()).normalized();
        assert_eq!(
            ledger_quote,
            dec(&sdk.quote_qty),
            "{cid}: cummulativeQuoteQty"
        );
        let traded: i64 = entry.trades.iter().map(|t| t.qty).sum();
        assert_eq!(
            traded, o.executed_qty,
            "{cid}: the ledger's trades add up to executedQty"
        );
    }
}

#[test]
fn official_binance_sdk_drives_the_simulator() {
    let python = match sdk_python() {
        Ok(p) => p,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the Binance SDK check cannot run under CI: {why}; .ci/run must install binance-sdk-spot and set OG_SDK_PYTHON")
        }
        Err(why) => {
            eprintln!("skipped: install binance-sdk-spot into .venv ({why}): python3 -m venv .venv && .venv/bin/pip install binance-sdk-spot");
            return;
        }
    };
    // Every taker order fills completely, in up to three trades.
    let full = FillModel {
        taker_partial_per_mille: 0,
        ..FillModel::default()
    };
    run_against_simulator(&python, full, "full");
    // Every taker order finds too little liquidity: MARKET orders expire
    // part-filled, a crossing GTC LIMIT rests the rest.
    let partial = FillModel {
        taker_partial_per_mille: 1000,
        ..FillModel::default()
    };
    run_against_simulator(&python, partial, "partial");
}
