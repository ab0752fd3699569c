//! `ordergate demo` as a user runs it: simulator, sidecar and strategy as
//! child processes, every order checked against the venue's ledger.

mod demo_run;

use demo_run::demo;

#[test]
fn demo_with_child_processes_matches_the_ledger() {
    let (ok, stdout, stderr) = demo(&["--orders", "300"]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("ledger check: all 300 orders match"),
        "stdout:\n{stdout}"
    );
}
