//! [`Run`]: a [`Supervisor`] under test, with what it reported.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use procmon_core::{
    ExitStatus, Monitor, NotReadyCause, NotRestarting, ProcessSpec, Settings, Signal, Stream,
};
use procmon_mio::{CaughtSignal, Notice, Options, SpawnStage, Supervisor};

use super::procfs::kill_all_our_children;

/// How long any wait may take before the test fails, unless the suite asks
/// for longer with [`Run::with_deadline`].
pub const DEADLINE: Duration = Duration::from_secs(20);

/// An owned copy of a [`Notice`], for checking afterwards.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    Spawned(String, i32),
    /// The error's kind, its errno if it has one, and the step that failed.
    SpawnFailed(String, ErrorKind, Option<i32>, SpawnStage),
    Exited(String, i32, ExitStatus),
    Restart(String, Duration),
    Signalled(String, i32, Signal),
    Output(String, Stream, Vec<u8>),
    OutputClosed(String, i32),
    GaveUp(String, u32),
    NotRestarting(String, NotRestarting),
    Ready(String),
    NotReady(String, NotReadyCause),
    /// The process and the dependency it waits for.
    Waiting(String, String),
    Status(String, String),
    Stopping(String),
    CriticalEnded(String, u8),
}

/// Counters kept for every notice, whether or not it is recorded, so long
/// loops and floods can be checked without keeping what they said.
#[derive(Debug, Default)]
pub struct Stats {
    pub spawned: usize,
    pub exited: usize,
    pub failed: usize,
    pub restarts: usize,
    pub min_delay: Option<Duration>,
    pub max_delay: Option<Duration>,
    /// Output bytes and pieces per stream (stdout, stderr).
    pub bytes: [u64; 2],
    pub pieces: [u64; 2],
    pub longest_piece: usize,
    /// Output bytes other than `b'x'` (for the flood test).
    pub not_x: u64,
}

/// A supervisor under test and what it reported.
///
/// Every wait turns the supervisor against [`Run::deadline`] and fails the
/// test past it; timing is never asserted exactly. Dropping a `Run` drops the
/// `Supervisor` (which kills every live child's group) and then kills and
/// reaps every remaining child of this process, so no test leaves a process
/// behind, even when it fails.
pub struct Run {
    /// `None` only while dropping, so the supervisor goes before the sweep.
    supervisor: Option<Supervisor>,
    /// Every notice, unless `record` is off.
    pub seen: Vec<Seen>,
    /// Keep notices in `seen`; off for long loops, which would grow it
    /// without bound ([`Run::stats`] still counts them).
    pub record: bool,
    /// Keep output lines in `seen`; off for floods, whose bytes are only
    /// counted, so memory stays bounded.
    pub record_output: bool,
    pub stats: Stats,
    /// How long any wait may take before the test fails.
    pub deadline: Duration,
}

impl Run {
    /// A supervisor with default options, recording everything.
    pub fn new(settings: Settings) -> Run {
        Run::with_options(settings, Options::default())
    }

    pub fn with_options(settings: Settings, options: Options) -> Run {
        let monitor = Monitor::new(settings).expect("valid settings");
        Run {
            supervisor: Some(Supervisor::new(monitor, options).expect("a supervisor")),
            seen: Vec::new(),
            record: true,
            record_output: true,
            stats: Stats::default(),
            deadline: DEADLINE,
        }
    }

    /// Waits up to `deadline` instead of [`DEADLINE`], for suites whose
    /// children take longer.
    pub fn with_deadline(mut self, deadline: Duration) -> Run {
        self.deadline = deadline;
        self
    }

    pub fn supervisor(&mut self) -> &mut Supervisor {
        self.supervisor.as_mut().expect("present until drop")
    }

    /// The supervisor and an observer recording into `self`, borrowed apart
    /// so both can be handed to one supervisor call.
    fn parts(&mut self) -> (&mut Supervisor, impl FnMut(Notice<'_>) + '_) {
        let Run {
            supervisor,
            seen,
            record,
            record_output,
            stats,
            ..
        } = self;
        let (record, record_output) = (*record, *record_output);
        let observer = move |n: Notice<'_>| observe(seen, stats, record, record_output, n);
        (supervisor.as_mut().expect("present until drop"), observer)
    }

    /// One application call on the monitor, its commands carried out.
    pub fn call<R>(&mut self, f: impl FnOnce(&mut Monitor, procmon_core::Instant) -> R) -> R {
        let (supervisor, mut observer) = self.parts();
        supervisor.call(&mut observer, f)
    }

    pub fn add(&mut self, name: &str, spec: ProcessSpec) {
        self.call(|m, now| m.add(now, name, spec).expect("a fresh name"));
    }

    pub fn start(&mut self) {
        self.call(|m, now| m.start_service(now).unwrap());
    }

    pub fn stop(&mut self) {
        self.call(|m, now| m.stop_service(now));
    }

    /// One turn of at most `timeout`; returns a caught signal.
    pub fn turn(&mut self, timeout: Duration) -> Option<CaughtSignal> {
        let (supervisor, mut observer) = self.parts();
        supervisor.turn(&mut observer, Some(timeout)).expect("turn")
    }

    /// Turns until `done` holds; fails the test after [`Run::deadline`].
    pub fn until(&mut self, what: &str, mut done: impl FnMut(&mut Run) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < self.deadline,
                "timed out waiting for {what}; stats: {:?}; last of {} seen: {:#?}",
                self.stats,
                self.seen.len(),
                // Only the tail: a flood or a long loop may have recorded
                // more than anyone can read.
                &self.seen[self.seen.len().saturating_sub(20)..]
            );
            self.turn(Duration::from_millis(50));
        }
    }

    /// Turns until `n` exits have been seen in all.
    pub fn until_exits(&mut self, n: usize) {
        self.until(&format!("{n} exits"), |r| {
            r.count(|s| matches!(s, Seen::Exited(..))) >= n
        });
    }

    /// Turns for about `time`, whatever happens.
    pub fn turn_for(&mut self, time: Duration) {
        let start = Instant::now();
        while start.elapsed() < time {
            self.turn(Duration::from_millis(20));
        }
    }

    /// [`Supervisor::finish_output`], recording what it reports.
    pub fn finish_output(&mut self) {
        let (supervisor, mut observer) = self.parts();
        supervisor.finish_output(&mut observer);
    }

    /// Turns until the monitor has nothing running or pending.
    pub fn quiesce(&mut self) {
        self.until("quiescence", |run| {
            run.supervisor().monitor().is_quiescent()
        });
    }

    /// How many recorded notices match.
    pub fn count(&self, matches: impl Fn(&Seen) -> bool) -> usize {
        self.seen.iter().filter(|s| matches(s)).count()
    }

    /// The index of the first recorded notice that matches; fails the test
    /// if there is none.
    pub fn position(&self, matches: impl Fn(&Seen) -> bool) -> usize {
        self.seen
            .iter()
            .position(matches)
            .unwrap_or_else(|| panic!("not seen; seen: {:#?}", self.seen))
    }

    /// Output lines of one process and stream.
    pub fn lines(&self, name: &str, stream: Stream) -> Vec<Vec<u8>> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Output(n, st, line) if n == name && *st == stream => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    /// The pids of every spawn, in order.
    pub fn spawned_pids(&self) -> Vec<i32> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Spawned(_, pid) => Some(*pid),
                _ => None,
            })
            .collect()
    }

    /// The pid of the latest spawn of `name`; fails the test if none.
    pub fn pid_of(&self, name: &str) -> i32 {
        self.seen
            .iter()
            .rev()
            .find_map(|s| match s {
                Seen::Spawned(n, pid) if n == name => Some(*pid),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} not spawned; seen: {:#?}", self.seen))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Kills and reaps every live child's group.
        drop(self.supervisor.take());
        // Then whatever escaped the groups (setsid) and was adopted by us.
        kill_all_our_children();
    }
}

/// Counts `notice` and records it as asked.
fn observe(
    seen: &mut Vec<Seen>,
    stats: &mut Stats,
    record: bool,
    record_output: bool,
    notice: Notice<'_>,
) {
    let entry = match notice {
        Notice::Spawned { name, pid } => {
            stats.spawned += 1;
            Seen::Spawned(name.into(), pid)
        }
        Notice::SpawnFailed { name, error, stage } => {
            stats.failed += 1;
            Seen::SpawnFailed(name.into(), error.kind(), error.raw_os_error(), stage)
        }
        Notice::Exited {
            name, pid, status, ..
        } => {
            stats.exited += 1;
            Seen::Exited(name.into(), pid, status)
        }
        Notice::RestartScheduled { name, delay } => {
            stats.restarts += 1;
            stats.min_delay = Some(stats.min_delay.map_or(delay, |d| d.min(delay)));
            stats.max_delay = Some(stats.max_delay.map_or(delay, |d| d.max(delay)));
            Seen::Restart(name.into(), delay)
        }
        Notice::Signalled {
            name, pid, signal, ..
        } => Seen::Signalled(name.into(), pid, signal),
        Notice::Output { name, stream, line } => {
            let i = stream as usize;
            stats.bytes[i] += line.len() as u64;
            stats.pieces[i] += 1;
            stats.longest_piece = stats.longest_piece.max(line.len());
            stats.not_x += line.iter().filter(|&&b| b != b'x').count() as u64;
            if !record_output {
                return;
            }
            Seen::Output(name.into(), stream, line.to_vec())
        }
        Notice::OutputClosed { name, pid } => Seen::OutputClosed(name.into(), pid),
        Notice::GaveUp {
            name, quick_deaths, ..
        } => Seen::GaveUp(name.into(), quick_deaths),
        Notice::NotRestarting { name, reason } => Seen::NotRestarting(name.into(), reason),
        Notice::Ready { name } => Seen::Ready(name.into()),
        Notice::NotReady { name, cause } => Seen::NotReady(name.into(), cause),
        Notice::Waiting {
            name, dependency, ..
        } => Seen::Waiting(name.into(), dependency.into()),
        Notice::Status { name, text } => Seen::Status(name.into(), text.into()),
        Notice::Stopping { name } => Seen::Stopping(name.into()),
        Notice::CriticalEnded { name, exit_code } => Seen::CriticalEnded(name.into(), exit_code),
        // Every transition has one; the tests look at what caused them.
        Notice::StateChanged { .. } => return,
        other => panic!("unexpected notice {other:?}"),
    };
    if record {
        seen.push(entry);
    }
}

/// Settings with these backoff bounds (milliseconds) and a 5 s kill time.
pub fn settings(threshold_ms: u64, min_ms: u64, max_ms: u64) -> Settings {
    let mut s = Settings::default();
    s.threshold = Duration::from_millis(threshold_ms);
    s.min_restart_delay = Duration::from_millis(min_ms);
    s.max_restart_delay = Duration::from_millis(max_ms);
    s.kill_time = Duration::from_secs(5);
    s
}

/// A process running `script` with `sh -c`.
pub fn sh(script: &str) -> ProcessSpec {
    ProcessSpec::new(["sh", "-c", script])
}

/// The pid a child printed on a line of its own.
pub fn parse_pid(line: &[u8]) -> i32 {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a pid: {line:?}"))
}
