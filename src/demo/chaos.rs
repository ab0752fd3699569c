//! `ordergate demo --faults SPEC --restarts K`: the chaos run. The fault
//! run (see `demo::faults`), with the sidecar child process SIGKILLed and
//! started again K times at points drawn from the fault seed.
//!
//! A kill point is a journal record: the sidecar started with
//! `ORDERGATE_KILL_AFTER_RECORDS=N` in its environment ([`KILL_ENV`])
//! SIGKILLs itself right after appending the N-th journal record of that
//! run. The demo draws one N per kill from the fault seed
//! ([`kill_points`]), prints them, and whenever the sidecar has died of
//! SIGKILL starts it again with the same config and state directory, the
//! next kill point in its environment (none after the last). The
//! restarted sidecar replays its journal and adopts its live orders; the
//! strategies (with `--reconnect`) connect again, catch up with
//! ResendFrom and send again what had no answer (see `demo::strategy`).
//!
//! After the fault run's checks, [`check`] prints and checks what only
//! the chaos run has:
//!
//! - `kill points:` each N, with the seed they were drawn from;
//! - `sidecar restarts:` done / asked, and the epochs before and after;
//! - `reconnects:` per strategy, each at least one per restart, with the
//!   epochs its HelloAcks said (a new one after every kill);
//! - `sequence gaps: G, repeats: R`: over every strategy, sequenced
//!   messages more than one above the last processed (numbers never seen)
//!   and numbers seen again; both must be 0.

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sim::binance::engine::SplitMix64;

use super::faults::Verdict;
use super::strategy::StrategyReport;
use super::{io, ChildGuard, DemoError};

/// The sidecar's kill switch: SIGKILL itself right after appending this
/// many journal records in this run.
pub(super) const KILL_ENV: &str = "ORDERGATE_KILL_AFTER_RECORDS";

/// Journal records a run writes per order, at the least (the sidecar
/// journals several per order: roughly 4 to 10).
const RECORDS_PER_ORDER: u64 = 4;

/// Mixed into the fault seed, so the kill points do not follow the
/// simulator's own fault draws from the same seed.
const KILL_STREAM: u64 = 0x6b69_6c6c_706f_696e;

/// The journal record (counted from 1 in each run) after which each of
/// the `restarts` killed runs ends, drawn from `seed`. The run's fewest
/// records (`RECORDS_PER_ORDER` per order) are split in `restarts + 1`
/// parts, and each kill lands in the second half of a part: every kill
/// comes while orders are still being sent, the last one with a part of
/// the orders still ahead.
pub(super) fn kill_points(seed: u64, orders: usize, restarts: u32) -> Vec<u64> {
    let part = (orders as u64 * RECORDS_PER_ORDER / (u64::from(restarts) + 1)).max(2);
    let mut rng = SplitMix64::new(seed ^ KILL_STREAM);
    (0..restarts)
        .map(|_| part / 2 + rng.below(part - part / 2) + 1)
        .collect()
}

/// The sidecar child process of a demo: started, watched, and in the
/// chaos run started again after each kill point.
pub(super) struct Sidecar {
    exe: PathBuf,
    config: PathBuf,
    /// Where its stderr goes (one log over all its runs), if kept.
    log: Option<PathBuf>,
    points: Vec<u64>,
    child: ChildGuard,
    /// Restarts done so far.
    restarts: u32,
}

impl Sidecar {
    /// Starts `exe run --config CONFIG`, its stderr to `log` (if kept),
    /// SIGKILLing itself at `points[0]` if there is one.
    pub(super) fn start(
        exe: &Path,
        config: &Path,
        log: Option<&Path>,
        points: Vec<u64>,
    ) -> Result<Sidecar, DemoError> {
        let child = spawn(exe, config, log, points.first().copied(), true)?;
        Ok(Sidecar {
            exe: exe.to_owned(),
            config: config.to_owned(),
            log: log.map(Path::to_owned),
            points,
            child,
            restarts: 0,
        })
    }

    pub(super) fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    pub(super) fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Checks on the sidecar: one that died of SIGKILL with a restart left
    /// (at its kill point) is started again with the next one; any other
    /// end is an error.
    pub(super) fn watch(&mut self) -> Result<(), DemoError> {
        let Some(status) = self.child.0.try_wait().map_err(io("watch the sidecar"))? else {
            return Ok(());
        };
        let left = (self.restarts as usize) < self.points.len();
        if !(left && status.signal() == Some(libc::SIGKILL)) {
            return Err(DemoError::Setup(format!(
                "the sidecar exited: {status} (after {} of {} restarts)",
                self.restarts,
                self.points.len()
            )));
        }
        self.restarts += 1;
        let next = self.points.get(self.restarts as usize).copied();
        if let Some(log) = &self.log {
            use std::io::Write;
            let mut f = OpenOptions::new()
                .append(true)
                .open(log)
                .map_err(io("open the sidecar's log"))?;
            let _ = writeln!(
                f,
                "==== ordergate demo: the sidecar died ({status}) at its kill point after journal \
                 record {}; restart {} of {}, {} ====",
                self.points[self.restarts as usize - 1],
                self.restarts,
                self.points.len(),
                match next {
                    Some(n) => format!("next kill point after journal record {n}"),
                    None => "no kill point".to_owned(),
                }
            );
        }
        self.child = spawn(&self.exe, &self.config, self.log.as_deref(), next, false)?;
        Ok(())
    }
}

fn spawn(
    exe: &Path,
    config: &Path,
    log: Option<&Path>,
    kill_after: Option<u64>,
    first: bool,
) -> Result<ChildGuard, DemoError> {
    let stderr = match log {
        // One log over every run: the first one starts it.
        Some(path) => Stdio::from(
            OpenOptions::new()
                .create(true)
                .write(true)
                .append(!first)
                .truncate(first)
                .open(path)
                .map_err(io("create the sidecar's log"))?,
        ),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(stderr);
    match kill_after {
        Some(n) => cmd.env(KILL_ENV, n.to_string()),
        None => cmd.env_remove(KILL_ENV),
    };
    let child = cmd.spawn().map_err(io("start the sidecar"))?;
    Ok(ChildGuard(child, "sidecar"))
}

/// The chaos run's own lines (see the module docs) and its failed checks.
/// `epochs` are the sidecar's epochs at the first start and at the end.
pub(super) fn check(
    reports: &[StrategyReport],
    seed: u64,
    points: &[u64],
    restarts: u32,
    epochs: (u32, u32),
) -> Verdict {
    let mut verdict = Vec::new();
    let asked = points.len() as u32;
    let list: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, n)| format!("run {} after journal record {n}", i + 1))
        .collect();
    println!("kill points (seed {seed}, {KILL_ENV}): {}", list.join(", "));
    println!(
        "sidecar restarts: {restarts}/{asked} (epoch {} at the start, {} at the end)",
        epochs.0, epochs.1
    );
    if restarts != asked {
        verdict.push(format!(
            "sidecar restarts: {restarts} of {asked} (a kill point the run never reached, \
             or the sidecar's kill switch is off)"
        ));
    }
    if restarts == asked && epochs.1.wrapping_sub(epochs.0) != restarts {
        verdict.push(format!(
            "the sidecar's epoch went from {} to {} over {restarts} restarts",
            epochs.0, epochs.1
        ));
    }

    let active: Vec<&StrategyReport> = reports.iter().filter(|r| r.planned > 0).collect();
    let each: Vec<String> = active
        .iter()
        .map(|r| {
            let epochs: Vec<String> = r.link.epochs.iter().map(u32::to_string).collect();
            format!(
                "{} {} (epochs {})",
                r.name,
                r.link.reconnects,
                epochs.join(" -> ")
            )
        })
        .collect();
    println!("reconnects:       {}", each.join(", "));
    if let Some(who) = names(&active, |r| r.link.reconnects < restarts) {
        verdict.push(format!(
            "strategies that reconnected fewer times than the sidecar restarted ({restarts}): {who}"
        ));
    }
    // A sidecar that says its epoch (0: one that does not) says a new
    // one after each kill.
    let stale = names(&active, |r| {
        let mut seen: Vec<u32> = r.link.epochs.iter().copied().filter(|&e| e != 0).collect();
        let said = seen.len();
        seen.dedup();
        said > 0 && (seen.len() as u32) < restarts.min(r.link.reconnects) + 1
    });
    if let Some(who) = stale {
        verdict.push(format!(
            "strategies whose HelloAck epoch did not change after a kill: {who}"
        ));
    }

    let sum = |f: &dyn Fn(&StrategyReport) -> u64| reports.iter().map(f).sum::<u64>();
    let orders = sum(&|r| r.link.resent_orders);
    let cancels = sum(&|r| r.link.resent_cancels);
    println!(
        "sent again after reconnects: {orders} NewOrders without an answer, {cancels} cancels"
    );
    let gaps = sum(&|r| r.link.seq_gaps);
    let missing = sum(&|r| r.link.seq_missing);
    let repeats = sum(&|r| r.link.seq_repeats);
    println!(
        "sequence gaps: {gaps}, repeats: {repeats} ({} sequenced messages, {} sent live before \
         a replay and taken from it)",
        sum(&|r| r.link.sequenced),
        sum(&|r| r.link.seq_early)
    );
    if gaps > 0 || repeats > 0 {
        let who: Vec<String> = reports
            .iter()
            .filter(|r| r.link.seq_gaps > 0 || r.link.seq_repeats > 0)
            .map(|r| {
                format!(
                    "{}: {} gaps ({} numbers), {} repeats",
                    r.name, r.link.seq_gaps, r.link.seq_missing, r.link.seq_repeats
                )
            })
            .collect();
        verdict.push(format!(
            "sequence gaps: {gaps} ({missing} numbers never seen), repeats: {repeats} ({})",
            who.join("; ")
        ));
    }
    verdict
}

/// The names of the strategies `bad` picks, joined; `None` for none.
fn names(reports: &[&StrategyReport], bad: impl Fn(&StrategyReport) -> bool) -> Option<String> {
    let picked: Vec<&str> = reports
        .iter()
        .filter(|r| bad(r))
        .map(|r| r.name.as_str())
        .collect();
    (!picked.is_empty()).then(|| picked.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::strategy::LinkReport;

    #[test]
    fn kill_points_follow_the_seed_and_land_mid_run() {
        let a = kill_points(7, 2000, 2);
        assert_eq!(a, kill_points(7, 2000, 2));
        assert_ne!(a, kill_points(8, 2000, 2));
        assert_eq!(a.len(), 2);
        for seed in 0..200 {
            for n in kill_points(seed, 2000, 2) {
                // A third of 8000 records, its second half.
                assert!((1334..=2666).contains(&n), "seed {seed}: {n}");
            }
        }
        assert!(kill_points(1, 0, 3).iter().all(|&n| n >= 1));
        assert!(kill_points(1, 300, 0).is_empty());
    }

    fn report(name: &str, link: LinkReport) -> StrategyReport {
        StrategyReport {
            name: name.into(),
            strategy_id: 1,
            planned: 10,
            gave_up: None,
            price_scale: 2,
            qty_scale: 5,
            outcomes: Vec::new(),
            round_trip: crate::demo::floor::new_histogram(),
            link,
        }
    }

    fn clean() -> LinkReport {
        LinkReport {
            reconnects: 2,
            sequenced: 40,
            epochs: vec![1, 2, 3],
            ..LinkReport::default()
        }
    }

    #[test]
    fn a_clean_chaos_run_passes() {
        let r = [report("demo-1", clean()), report("demo-2", clean())];
        assert_eq!(check(&r, 7, &[10, 20], 2, (1, 3)), Vec::<String>::new());
    }

    #[test]
    fn every_chaos_check_fails_by_name() {
        let failed = |v: &Verdict, what: &str| v.iter().any(|l| l.starts_with(what));
        let r = [report("demo-1", clean())];
        let v = check(&r, 7, &[10, 20], 1, (1, 2));
        assert!(failed(&v, "sidecar restarts: 1 of 2"), "{v:?}");

        let v = check(&r, 7, &[10, 20], 2, (1, 1));
        assert!(failed(&v, "the sidecar's epoch"), "{v:?}");

        let mut l = clean();
        l.reconnects = 1;
        l.epochs = vec![1, 3];
        let v = check(&[report("demo-1", l)], 7, &[10, 20], 2, (1, 3));
        assert!(failed(&v, "strategies that reconnected fewer"), "{v:?}");

        let mut l = clean();
        l.epochs = vec![1, 1, 1];
        let v = check(&[report("demo-1", l)], 7, &[10, 20], 2, (1, 3));
        assert!(failed(&v, "strategies whose HelloAck epoch"), "{v:?}");

        let mut l = clean();
        l.seq_gaps = 1;
        l.seq_missing = 3;
        l.seq_repeats = 2;
        let v = check(&[report("demo-1", l)], 7, &[10, 20], 2, (1, 3));
        assert!(
            failed(&v, "sequence gaps: 1 (3 numbers never seen), repeats: 2"),
            "{v:?}"
        );
    }
}
