//! `ordergate demo` with several strategies, and the fault run's harness
//! (with no faults: the checks against the simulator's ledger must pass
//! and print their block). The fault run with every fault on is CI's own
//! step (`.ci/run`): it takes tens of seconds.

mod demo_run;

use demo_run::demo;

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
