//! The state directory: one instance at a time, epochs that only go up,
//! and socket files removed only under the lock.

use std::os::unix::net::UnixListener;
use std::path::Path;

use ordergate::state::{check_socket_path, LockHolder, StateDir, StateError, MAX_SOCKET_PATH};

#[test]
fn second_open_is_locked_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = StateDir::open(dir.path()).unwrap();
    match StateDir::open(dir.path()) {
        Err(StateError::Locked { path, holder }) => {
            assert_eq!(path, dir.path().join("ordergate.lock"));
            assert_eq!(holder, LockHolder(Some(std::process::id())));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let msg = StateDir::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("ordergate.lock"), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    drop(first);
    StateDir::open(dir.path()).unwrap();
}

#[test]
fn open_creates_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/state");
    let state = StateDir::open(&nested).unwrap();
    assert_eq!(state.path(), nested);
    assert!(nested.join("ordergate.lock").exists());
}

/// Opens a state directory this process just closed. Other tests in this
/// binary spawn child processes: a child forked while our lock file was
/// open holds the lock until it execs, so for a moment the lock looks held
/// by ourselves. Only that case is waited out.
fn open_again(path: &std::path::Path) -> StateDir {
    for _ in 0..200 {
        match StateDir::open(path) {
            Err(ordergate::state::StateError::Locked { holder, .. })
                if holder.0 == Some(std::process::id()) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed locked by this very process", path.display())
}

#[test]
fn epoch_strictly_increases_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = 0;
    for _ in 0..5 {
        // Each iteration is one sidecar lifetime.
        let mut state = open_again(dir.path());
        assert_eq!(state.epoch(), None);
        let epoch = state.bump_epoch().unwrap();
        assert!(epoch > last);
        assert_eq!(state.epoch(), Some(epoch));
        last = epoch;
    }
    assert_eq!(last, 5);
    let stored = std::fs::read_to_string(dir.path().join("epoch")).unwrap();
    assert_eq!(stored, "5\n");
    assert!(!dir.path().join("epoch.tmp").exists());
}

#[test]
fn corrupt_epoch_is_an_error_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("epoch"), "12x\n").unwrap();
    let mut state = StateDir::open(dir.path()).unwrap();
    let err = state.bump_epoch().unwrap_err();
    assert!(matches!(err, StateError::CorruptEpoch { .. }), "{err:?}");
    assert!(err.to_string().contains("epoch"), "{err}");
    // Untouched, for the operator to look at.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("epoch")).unwrap(),
        "12x\n"
    );

    std::fs::write(dir.path().join("epoch"), format!("{}\n", u32::MAX)).unwrap();
    assert!(matches!(
        state.bump_epoch(),
        Err(StateError::EpochExhausted(_))
    ));
}

#[test]
fn stale_socket_is_removed_under_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(&dir.path().join("state")).unwrap();
    let sock = dir.path().join("og.sock");
    // A socket file nobody listens on any more: what a crashed run leaves.
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    state.prepare_socket(&sock).unwrap();
    assert!(!sock.exists());
    UnixListener::bind(&sock).unwrap();
}

#[test]
fn live_socket_and_other_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(&dir.path().join("state")).unwrap();

    let live = dir.path().join("live.sock");
    let _listener = UnixListener::bind(&live).unwrap();
    assert!(matches!(
        state.prepare_socket(&live),
        Err(StateError::SocketInUse(_))
    ));
    assert!(live.exists());

    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    assert!(matches!(
        state.prepare_socket(&file),
        Err(StateError::NotASocket(_))
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn prepare_socket_creates_the_parent_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(&dir.path().join("state")).unwrap();
    let sock = dir.path().join("run/og.sock");
    state.prepare_socket(&sock).unwrap();
    UnixListener::bind(&sock).unwrap();
}

#[test]
fn socket_path_limits() {
    let ok = format!("/{}", "a".repeat(MAX_SOCKET_PATH - 1));
    check_socket_path(Path::new(&ok)).unwrap();
    let long = format!("/{}", "a".repeat(MAX_SOCKET_PATH));
    match check_socket_path(Path::new(&long)) {
        Err(StateError::SocketPathTooLong { len, .. }) => assert_eq!(len, MAX_SOCKET_PATH + 1),
        other => panic!("expected SocketPathTooLong, got {other:?}"),
    }
    for abstract_name in ["@ordergate", "\0ordergate", ""] {
        assert!(matches!(
            check_socket_path(Path::new(abstract_name)),
            Err(StateError::SocketPathAbstract(_))
        ));
    }
    // The same checks guard prepare_socket.
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    assert!(matches!(
        state.prepare_socket(Path::new(&long)),
        Err(StateError::SocketPathTooLong { .. })
    ));
}

#[test]
fn run_refuses_a_locked_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let held = StateDir::open(&state_dir).unwrap();
    let config = dir.path().join("og.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{}"
socket = "{}"
[[venue]]
id = "binance-spot"
ws_url = "ws://127.0.0.1:9/ws-api/v3"
rest_url = "http://127.0.0.1:9"
api_key = {{ env = "OG_TEST_KEY" }}
api_secret = {{ env = "OG_TEST_SECRET" }}
[[strategy]]
id = 1
name = "alpha"
[[instrument]]
id = 1
venue = "binance-spot"
symbol = "BTCUSDT"
category = "spot"
tick = "0.01"
lot = "0.00001"
min_qty = "0.00001"
min_notional = "5"
"#,
            state_dir.display(),
            dir.path().join("og.sock").display()
        ),
    )
    .unwrap();
    // Fails at the lock, before anything that could run for long.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ordergate.lock is locked"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    // Nothing was bumped by the refused instance.
    assert!(!state_dir.join("epoch").exists());
    drop(held);
}
