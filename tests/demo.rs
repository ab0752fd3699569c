//! `ordergate demo` as a user runs it: simulator, sidecar and strategy as
//! child processes, every order checked against the venue's ledger.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the demo's own waits are bounded well inside this.
const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn demo_with_child_processes_matches_the_ledger() {
    let dir = tempfile::Builder::new()
        .prefix("og")
        .tempdir_in("/tmp")
        .unwrap();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .args(["demo", "--orders", "300"])
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
            panic!("ordergate demo did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("ledger check: all 300 orders match"),
        "stdout:\n{stdout}"
    );
}
