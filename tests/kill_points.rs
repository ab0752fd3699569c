//! A kill between the journal write and the venue send, and between the
//! venue send and its answer, at every record boundary of a short
//! scenario.
//!
//! The real sidecar binary runs as a child process against an in-process
//! simulator. One strategy sends a marketable limit order that fills at
//! once, a resting limit order, and a cancel of it (`FillModel::full()`: a
//! fixed event sequence). A run without a kill counts the journal records the
//! scenario writes, R. Then for every N in 1..=R, on a fresh simulator and
//! state dir, the sidecar SIGKILLs itself right after its N-th record
//! (`ORDERGATE_KILL_AFTER_RECORDS`); it is started again without the kill
//! point, the strategy reconnects (ResendFrom its last seq + 1), sends
//! again every NewOrder without an answer (same order id) and the cancel
//! if still wanted, and runs the scenario to its end. Then, against the
//! simulator's ledger: no client id placed twice, no strategy order under
//! two client ids, every order the venue has is one the strategy got a
//! terminal report for and its reports (state, cum qty, quote qty, one
//! Fill per trade) equal the venue's, an order the venue never got was
//! rejected, and the strategy's sequence went on with no gap and no
//! repeat (checked as every message is read).
//!
//! The kill after a `Command` record is the one between the journal write
//! and the venue send (the order is on disk, its command never reached a
//! ring); the kills after the first `Report` of an answer are the ones
//! between the venue's answer and the rest of it (the venue has acked or
//! filled, the sidecar knows part). The instant after the send and before
//! any answer is not a record boundary, so no kill point lands there. An
//! order journaled but never sent is adopted with its outcome unknown and
//! is only called never placed (Rejected) once the unknown bound has
//! passed since the restart, so those kill points take about 15 s.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    assert_entry_matches, short_tempdir, start_sim, wait_for_socket, write_config, Opts, Strat,
    Track, ALPHA, WAIT,
};
use ordergate::client::{Client, ClientError};
use ordergate::ids::{ClientId, ClientIdKind};
use ordergate::journal::entry::Entry;
use ordergate::journal::writer::KILL_AFTER_RECORDS_ENV;
use ordergate::protocol::{OrderState, Side, VenueState};
use ordergate::sim::binance::SimHandle;
use ordergate::venue::binance::BACKEND_TIMEOUT_MS;

/// The marketable limit order (BUY above the 60000.00 reference): fills
/// at once.
const MARKET: u64 = 1;
/// The resting limit order, cancelled.
const RESTING: u64 = 2;
/// Kill points run this many at a time.
const WORKERS: usize = 2;

/// One simulator, one state dir, and the sidecar child running on them.
struct Run {
    sim: SimHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl Run {
    /// A fresh simulator and state dir; the sidecar started with the kill
    /// point `kill`.
    fn new(kill: Option<u64>) -> Run {
        let opts = Opts::default();
        let sim = start_sim(&opts);
        let dir = short_tempdir();
        let (_, config) = write_config(dir.path(), &sim.ws_url(), &sim.rest_url(), &opts);
        let mut run = Run {
            sim,
            socket: dir.path().join("s.sock"),
            dir,
            config,
            child: None,
        };
        run.spawn(kill);
        run
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("sidecar.log")
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("state").join("journal")
    }

    /// `ordergate run --config`, its stderr appended to the run's log.
    fn spawn(&mut self, kill: Option<u64>) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordergate"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        match kill {
            Some(n) => cmd.env(KILL_AFTER_RECORDS_ENV, n.to_string()),
            None => cmd.env_remove(KILL_AFTER_RECORDS_ENV),
        };
        self.child = Some(cmd.spawn().expect("start the sidecar"));
    }

    /// Whether the sidecar has ended.
    fn exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("a sidecar was started");
        child.try_wait().expect("wait for the sidecar").is_some()
    }

    /// Waits (at most `limit`) for the sidecar to end on its own.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("a sidecar was started");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the sidecar") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERMs the sidecar and checks it stops cleanly.
    fn stop(&mut self) {
        let pid = self.child.as_ref().expect("a sidecar is running").id();
        // SAFETY: kill has no pointer arguments; the pid is our child's,
        // not yet reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        let status = self
            .wait_exit(WAIT)
            .unwrap_or_else(|| panic!("the sidecar did not stop within {WAIT:?} of SIGTERM"));
        assert!(status.success(), "the sidecar stopped with {status}");
    }

    /// The journal's entries, one list per run (each begins at a Start).
    fn journal_runs(&self) -> Vec<Vec<Entry>> {
        let mut runs: Vec<Vec<Entry>> = Vec::new();
        for record in ordergate::journal::replay(self.journal()).expect("read the journal") {
            let record = record.expect("a journal record");
            let entry = Entry::decode(record.kind, &record.payload).expect("a journal entry");
            match (&entry, runs.last_mut()) {
                (Entry::Start { .. }, _) | (_, None) => runs.push(vec![entry]),
                (_, Some(run)) => run.push(entry),
            }
        }
        runs
    }

    /// The last lines of the sidecar's log, for a failure message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- sidecar log (last lines) ----\n{}", self.log_tail());
        }
    }
}

/// Where the strategy is in the scenario; survives a reconnect.
#[derive(Default)]
struct Scenario {
    /// NewOrder sent for MARKET, RESTING (and not to be sent again).
    sent: [bool; 2],
    cancel_sent: bool,
    /// After a reconnect: HelloAck's `next_seq`; nothing is sent until the
    /// replay has reached it.
    replay_to: u64,
    /// Caught up after a reconnect: what had no answer is due again.
    resume_due: bool,
    /// What was sent again after the restart, for the summary.
    resent: Vec<String>,
}

/// The strategy's next move.
enum Action {
    Wait(&'static str),
    Send(u64),
    Cancel,
    Done,
}

fn answered(s: &Strat, id: u64) -> bool {
    s.tracks
        .get(&id)
        .is_some_and(|t| t.state() != OrderState::PendingNew || !t.status.is_empty())
}

fn terminal(s: &Strat, id: u64) -> bool {
    s.tracks.get(&id).is_some_and(Track::is_terminal)
}

fn next_action(s: &Strat, sc: &mut Scenario) -> Action {
    if s.last_seq + 1 < sc.replay_to {
        return Action::Wait("the replay");
    }
    if s.venue_states.last().map(|v| v.0) != Some(VenueState::Up) {
        return Action::Wait("venue Up");
    }
    if std::mem::take(&mut sc.resume_due) {
        for (i, id) in [MARKET, RESTING].into_iter().enumerate() {
            if sc.sent[i] && !answered(s, id) {
                sc.sent[i] = false;
                sc.resent.push(format!("NewOrder {id}"));
            }
        }
        if sc.cancel_sent && !terminal(s, RESTING) {
            sc.cancel_sent = false;
            sc.resent.push(format!("Cancel {RESTING}"));
        }
    }
    if !sc.sent[0] {
        return Action::Send(MARKET);
    }
    if !terminal(s, MARKET) {
        return Action::Wait("the marketable order's end");
    }
    if !sc.sent[1] {
        return Action::Send(RESTING);
    }
    if !answered(s, RESTING) {
        return Action::Wait("the limit order's answer");
    }
    if !terminal(s, RESTING) && !sc.cancel_sent {
        return Action::Cancel;
    }
    if !terminal(s, RESTING) {
        return Action::Wait("the cancel's answer");
    }
    Action::Done
}

/// How long after a restart an adopted order the venue does not have can
/// stay open: the adapter calls it never placed only once the venue's
/// backend timeout and the recvWindow have passed since its adoption (the
/// earlier run may have sent it just before it died).
fn unknown_bound() -> Duration {
    Duration::from_millis(BACKEND_TIMEOUT_MS + u64::from(Opts::default().recv_window_ms))
}

/// Runs the scenario to its end, waiting at most `wait` for each message;
/// an error when the sidecar goes away.
fn drive(s: &mut Strat, sc: &mut Scenario, wait: Duration) -> Result<(), ClientError> {
    loop {
        match next_action(s, sc) {
            Action::Wait(what) => {
                if s.try_poll(wait)?.is_none() {
                    panic!(
                        "waiting for {what}: nothing from the sidecar within {wait:?}; \
                         last seq {}, errors {:?}, tracks {:?}",
                        s.last_seq, s.errors, s.tracks
                    );
                }
            }
            Action::Send(id) => {
                let order = if id == MARKET {
                    s.limit(MARKET, Side::Buy, "60100.00", "0.01")
                } else {
                    s.limit(RESTING, Side::Buy, "59000.00", "0.01")
                };
                sc.sent[(id - 1) as usize] = true;
                s.client.new_order(&order)?;
            }
            Action::Cancel => {
                sc.cancel_sent = true;
                s.client.cancel(RESTING)?;
            }
            Action::Done => return Ok(()),
        }
    }
}

/// Connects as the strategy, unless the sidecar dies first (before it
/// listens, or during the handshake).
fn connect(run: &mut Run) -> Option<Strat> {
    let deadline = Instant::now() + WAIT;
    loop {
        if run.exited() {
            return None;
        }
        if let Ok(c) = Client::connect(&run.socket, ALPHA.1) {
            return Some(Strat::new(c));
        }
        assert!(Instant::now() < deadline, "no connection within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A record's short name: its variant, and what it carries.
fn describe(e: &Entry) -> String {
    let variant = |d: String| {
        d.split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    match e {
        Entry::Command { input, .. } => {
            format!("Command({})", variant(format!("{:?}", input.request)))
        }
        Entry::Report(ordergate::venue::Report::Exec(x)) => {
            format!("Report({})", variant(format!("{x:?}")))
        }
        Entry::Report(ordergate::venue::Report::Venue(v)) => format!("Report(Venue {:?})", v.state),
        Entry::Sent { seq, frame, .. } => {
            // The frame is its 4-byte length and the body.
            let msg = frame
                .get(4..)
                .and_then(|body| ordergate::protocol::decode_outbound(body).ok())
                .map_or_else(|| "?".into(), |(_, m)| variant(format!("{m:?}")));
            format!("Sent(seq {seq} {msg})")
        }
        other => variant(format!("{other:?}")),
    }
}

/// The checks against the simulator's ledger; returns the outcome.
fn check_ledger(run: &Run, s: &Strat) -> String {
    let ledger = run.sim.ledger();
    let mut placed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ids: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for e in &ledger {
        let id = e.order.client_order_id.as_str();
        *placed.entry(id).or_default() += 1;
        let c = ClientId::decode(id)
            .unwrap_or_else(|| panic!("the venue has {id}, not a client id of ours"));
        assert_eq!(c.kind, ClientIdKind::Order, "{id}");
        assert_eq!(c.key.strategy, ALPHA.0, "{id}");
        ids.entry(c.key.order_id).or_default().insert(id);
    }
    for (id, n) in &placed {
        assert_eq!(*n, 1, "client id {id} placed {n} times");
    }
    for (order, under) in &ids {
        assert_eq!(under.len(), 1, "order {order} placed under {under:?}");
    }
    for e in &ledger {
        let c = ClientId::decode(&e.order.client_order_id).expect("checked above");
        let t = s.tracks.get(&c.key.order_id).unwrap_or_else(|| {
            panic!(
                "the venue has order {} ({}), the strategy heard nothing of it",
                c.key.order_id, e.order.client_order_id
            )
        });
        assert!(
            t.is_terminal(),
            "order {}: the venue has it {}, the strategy's last word is {:?}",
            t.order_id,
            e.order.status.as_str(),
            t.state()
        );
        assert_entry_matches(e, t);
    }
    let mut outcome = Vec::new();
    for id in [MARKET, RESTING] {
        let t = s
            .tracks
            .get(&id)
            .unwrap_or_else(|| panic!("order {id}: no report"));
        assert!(t.is_terminal(), "order {id} not final: {t:?}");
        if !ids.contains_key(&id) {
            assert_eq!(
                t.state(),
                OrderState::Rejected,
                "order {id}: never at the venue, yet {:?}",
                t.state()
            );
            outcome.push(format!("{id} {:?} ({:?})", t.state(), t.rejected));
        } else {
            outcome.push(format!("{id} {:?}", t.state()));
        }
    }
    assert!(s.errors.is_empty(), "Error messages: {:?}", s.errors);
    outcome.join(", ")
}

/// The scenario with no kill: its records, and the checks.
fn baseline() -> Vec<String> {
    let mut run = Run::new(None);
    let mut s = connect(&mut run).expect("the sidecar runs");
    drive(&mut s, &mut Scenario::default(), WAIT).expect("the sidecar stays up");
    s.sync();
    check_ledger(&run, &s);
    // Counted before the stop: its own records (the shutdown) are not
    // the scenario's.
    let runs = run.journal_runs();
    run.stop();
    assert_eq!(runs.len(), 1, "one run in the journal");
    runs[0].iter().map(describe).collect()
}

/// The scenario with the sidecar SIGKILLed after its `n`-th record.
fn kill_at(n: u64, records: &[String]) -> String {
    let mut run = Run::new(Some(n));
    let mut sc = Scenario::default();
    let mut strat = connect(&mut run);
    let finished = match &mut strat {
        Some(s) => drive(s, &mut sc, WAIT).is_ok(),
        None => false,
    };
    let status = run.wait_exit(WAIT).unwrap_or_else(|| {
        panic!(
            "the sidecar did not die at record {n} (finished: {finished}; the run \
             without a kill wrote {} records)",
            records.len()
        )
    });
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the sidecar ended with {status}, not SIGKILL"
    );
    let runs = run.journal_runs();
    assert_eq!(runs.len(), 1, "one run in the journal before the restart");
    assert_eq!(
        runs[0].len() as u64,
        n,
        "records of the killed run: {:?}",
        runs[0].iter().map(describe).collect::<Vec<_>>()
    );
    let last = describe(&runs[0][n as usize - 1]);
    assert_eq!(
        last,
        records[n as usize - 1],
        "record {n} differs from the run without a kill"
    );

    run.spawn(None);
    wait_for_socket(&run.socket);
    let mut s = match strat {
        None => {
            let s = connect(&mut run).expect("the restarted sidecar runs");
            assert_eq!(s.client.epoch(), 2, "the second run");
            s
        }
        Some(mut s) => {
            let (epoch, installation) = (s.client.epoch(), s.client.installation());
            s.reconnect(&run.socket, ALPHA.1);
            assert_eq!(s.client.epoch(), epoch + 1, "HelloAck: the next run");
            assert_eq!(s.client.installation(), installation);
            assert!(
                s.client.next_seq() > s.last_seq,
                "HelloAck's next seq {} repeats seq {} the strategy already had",
                s.client.next_seq(),
                s.last_seq
            );
            sc.replay_to = s.client.next_seq();
            sc.resume_due = true;
            s.venue_states.clear();
            s
        }
    };
    let started = Instant::now();
    drive(&mut s, &mut sc, WAIT + unknown_bound()).expect("the restarted sidecar stays up");
    let took = started.elapsed();
    s.sync();
    let outcome = check_ledger(&run, &s);
    run.stop();
    let resent = if sc.resent.is_empty() {
        "nothing".to_owned()
    } else {
        sc.resent.join(", ")
    };
    format!(
        "orders {outcome}; sent again: {resent}; done {:.1} s after the restart",
        took.as_secs_f64()
    )
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(a panic without a message)".into())
}

#[test]
fn a_kill_at_every_record_boundary_loses_and_duplicates_nothing() {
    let records = baseline();
    let r = records.len() as u64;
    println!("the scenario writes {r} journal records:");
    for (i, d) in records.iter().enumerate() {
        println!("  {:>2} {d}", i + 1);
    }
    let next = AtomicU64::new(1);
    let results: Mutex<BTreeMap<u64, Result<String, String>>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n > r {
                    return;
                }
                let records = &records;
                let result = std::thread::Builder::new()
                    .name(format!("kill-after-{n}"))
                    .spawn_scoped(scope, move || kill_at(n, records))
                    .expect("spawn a kill point")
                    .join()
                    .map_err(|e| panic_text(&*e));
                results.lock().unwrap().insert(n, result);
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut failed = Vec::new();
    for (n, result) in &results {
        let at = &records[*n as usize - 1];
        match result {
            Ok(outcome) => println!("kill after record {n:>2} ({at}): ok, {outcome}"),
            Err(e) => {
                println!("kill after record {n:>2} ({at}): FAILED: {e}");
                failed.push(format!("N={n} ({at}): {e}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {r} kill points broke an invariant:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
