//! `ordergate demo` with several strategies, and the fault run's harness
//! (with no faults: the checks against the simulator's ledger must pass
//! and print their block). The fault run with every fault on is CI's own
//! step (`.ci/run`): it takes tens of seconds.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the demo's own waits are bounded well inside this.
const LIMIT: Duration = Duration::from_secs(180);

/// Runs `ordergate demo ARGS`; returns (success, stdout, stderr).
fn demo(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::Builder::new()
        .prefix("og")
        .tempdir_in("/tmp")
        .unwrap();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .arg("demo")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start ordergate demo");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ordergate demo {args:?} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        std::fs::read_to_string(&out_path).unwrap(),
        std::fs::read_to_string(&err_path).unwrap(),
    )
}

#[test]
fn three_strategy_processes_share_the_orders_and_match_the_ledger() {
    let (ok, stdout, stderr) = demo(&["--orders", "300", "--strategies", "3"]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout
            .contains("strategies:       demo-1 (id 1) 100, demo-2 (id 2) 100, demo-3 (id 3) 100"),
        "stdout:\n{stdout}"
    );
    assert!(
        stdout.contains("ledger check: all 300 orders match"),
        "stdout:\n{stdout}"
    );
}

#[test]
fn the_fault_harness_without_faults_accounts_for_every_order() {
    let (ok, stdout, stderr) = demo(&["--orders", "300", "--faults", "none"]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for line in [
        "fault run, faults none with fault seed 7",
        "faults injected:\n  (none enabled)\n",
        "orders sent: 300/300\n",
        "lost: 0\n",
        "duplicates: 0\n",
        "fill mismatches: 0\n",
        "terminal reports: 300/300\n",
        "fault check: every order accounted for",
    ] {
        assert!(stdout.contains(line), "no {line:?} in stdout:\n{stdout}");
    }
    // The simulator saw every order but those refused before it (the
    // gateway's bad ticks) and at its door (min notional): 240 of 300.
    assert!(
        stdout.contains("orders the simulator saw: 240\n"),
        "stdout:\n{stdout}"
    );
}

#[test]
fn an_unknown_fault_kind_is_refused_by_name() {
    let (ok, stdout, stderr) = demo(&["--faults", "drop,nosuchfault"]);
    assert!(!ok, "stdout:\n{stdout}");
    assert!(stderr.contains("nosuchfault"), "stderr:\n{stderr}");
}
