//! Runs `ordergate demo` as a child process, for the demo's tests
//! (`tests/demo.rs`, `tests/demo_faults.rs`, `tests/demo_chaos.rs`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the demo's own waits are bounded well inside this.
const LIMIT: Duration = Duration::from_secs(180);

/// Runs `ordergate demo ARGS`; returns (success, stdout, stderr).
pub fn demo(args: &[&str]) -> (bool, String, String) {
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
