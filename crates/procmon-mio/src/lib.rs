//! procmon-mio: runs a [`procmon_core::Monitor`] against real processes.
//!
//! The core decides; this crate only carries its decisions out, on one
//! thread with one [`mio::Poll`]:
//!
//! - **Spawning** uses `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, the way
//!   glibc's `posix_spawn` does, with every C string prepared beforehand
//!   (argv and environment once per definition, reused by its restarts). Each
//!   child gets its own session and process group, `/dev/null` as stdin, two
//!   pipes for stdout and stderr, default signal dispositions and an empty
//!   mask, and `PR_SET_PDEATHSIG(SIGKILL)` (which the kernel clears again
//!   if the child execs a set-user-ID program or changes its effective ids
//!   itself: such a child outlives a SIGKILLed monitor). With a uid or gid,
//!   a monitor running as root first drops every supplementary group, then
//!   sets the gid and the uid: the child has exactly those, not the user's
//!   other groups (no `initgroups`). A failure anywhere between `clone`
//!   and `execve` (no such program, bad `cwd`, refused uid) comes back to the
//!   core as [`Input::SpawnFailed`] with its `errno`. A file the kernel
//!   cannot execute (a script without `#!`) fails with `ENOEXEC`: unlike
//!   `execvp` there is no retry through `/bin/sh`, as with Twisted's
//!   `spawnProcess` and supervisord, so a data file is never run as a script
//!   by accident.
//! - **Exits** are seen through a pidfd per child, registered with the poll,
//!   so they are noticed at once and a recycled pid can never be confused with
//!   ours. The exited leader is left a zombie while its pipes are drained and
//!   **whatever remains of its process group is killed with SIGKILL** (like
//!   systemd's control-group kill mode: no orphaned grandchildren), then it is
//!   reaped and the status handed to the core.
//! - **Signals** from the core go to the child's whole process group with
//!   `killpg`, which is safe because we send them only while the leader is
//!   unreaped and so pins the group id. A stop signal (TERM, or the
//!   process's own) is followed by CONT so a stopped child can act on it.
//! - **Reaping**: the monitor is a child subreaper, so orphans of our
//!   children's trees are re-parented to it; on SIGCHLD (read from a
//!   signalfd) and after each exit it reaps every exited child that no
//!   supervisor tracks through a pidfd.
//! - **Output** is read until `WouldBlock` into one 64 KiB buffer and handed to
//!   the core with `Monitor::handle_output`, which lends each line straight
//!   out of that buffer to the [`Observer`]: no copy per line. The pipes of an exited child are drained before its exit is
//!   reported, but EOF is not awaited: a grandchild that escaped the group may
//!   keep them open. Such pipes stay registered until EOF, and what they still
//!   carry is split into lines here and reported under the same name; only
//!   the last four reaped instances of a process keep theirs, after which the
//!   oldest's are closed ([`Notice::OutputClosed`]), so escapees cannot make
//!   the monitor's descriptors grow without end. A reaped child's pipe with
//!   no writer left (its group killed, no escapee) is read to EOF even while
//!   output is paused, so unread bytes never pass for an escapee.
//! - **Timers** live in a [`TimerQueue`] on the monotonic clock; the poll sleeps
//!   until the earliest deadline or an event, with no periodic wake-up.
//!
//! # Requirements
//!
//! Linux 5.4 or later: pidfds from `clone` (5.2), polled for exits (5.3) and
//! waited on with `waitid(P_PIDFD)` (5.4). From 5.11, `close_range` also
//! marks every inherited descriptor close-on-exec in the child.
//!
//! # Process-wide effects
//!
//! Creating a [`Supervisor`] resets an ignored SIGCHLD to its default (and
//! clears `SA_NOCLDWAIT`), without which the kernel would reap children
//! itself and their statuses would be lost. It makes the process a child
//! subreaper and blocks SIGCHLD (and, with [`Options::catch_signals`],
//! SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2) in the creating
//! thread. Signals are read from a signalfd, so for them to
//! reach it the other threads of the program should block them too (create
//! the supervisor before starting other threads: new threads inherit the
//! mask). The orphan reaper reaps any exited child not tracked by a
//! supervisor, so a program that waits for children of its own turns it off
//! with [`Options::reap_orphans`] (which also leaves the subreaper role and
//! SIGCHLD alone). `PR_SET_PDEATHSIG` is tied to the creating thread:
//! when the thread that runs the supervisor ends, its children are killed.
//! The soft limit on open descriptors is raised to the hard limit (each child
//! holds three in the monitor); children get the original limit back.
//! A `Supervisor` is therefore not `Send`.
//!
//! # Example
//!
//! See `examples/embed.rs` for a complete program:
//!
//! ```no_run
//! use procmon_core::{Monitor, ProcessSpec, Settings};
//! use procmon_mio::{Notice, Options, Supervisor};
//!
//! let monitor = Monitor::new(Settings::default()).unwrap();
//! let mut supervisor = Supervisor::new(monitor, Options::default()).unwrap();
//! let mut print = |notice: Notice<'_>| println!("{notice:?}");
//! supervisor.call(&mut print, |monitor, now| {
//!     monitor.add(now, "ticker", ProcessSpec::new(["sh", "-c", "while :; do date; sleep 1; done"])).unwrap();
//!     monitor.start_service(now);
//! });
//! loop {
//!     supervisor.turn(&mut print, None).unwrap();
//! }
//! ```
#![warn(missing_docs, unreachable_pub)]

pub mod os;
mod sources;
mod spawn;
mod sys;

pub use sources::{Ready, SourceId};
pub use spawn::SpawnStage;

/// The `mio` this driver polls with, so a program registers its own sources
/// ([`Supervisor::register`]) with the same version's types.
pub use mio;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use mio::unix::pipe::Receiver;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use procmon_core::{
    Command, ExitStatus, Input, InstanceId, Instant, LineBuffer, Monitor, NotRestarting,
    ProcessKey, ProcessState, Report, Signal, SignalReason, Stream, TimerId, TimerQueue,
};

/// How many readiness events one `poll` returns at most; more simply wait for
/// the next turn (epoll hands them out round-robin), so memory stays fixed.
const EVENTS_CAPACITY: usize = 256;

/// The one read buffer: pipes hold 64 KiB by default, so one read usually
/// empties one.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// At most this many reads (1 MiB) from one pipe per readiness event or
/// drain; a pipe still full after them is read again on the next turn. A
/// child writing faster than the monitor logs (`yes`) would otherwise keep
/// one read loop busy for ever and starve every other child, the timers and
/// stop.
const READS_PER_PIPE: usize = 16;

/// At most this many reaped instances of one process keep their pipes open
/// for descendants that escaped its group (a daemon that double-forked and
/// kept its stdout); when one more would, the oldest's pipes are closed.
/// Without a bound, every restart of such a process would leave two
/// descriptors and a slot behind for as long as those descendants live.
const LINGERING_PER_PROCESS: usize = 4;

/// The signalfd's token; child tokens are `slot << 2 | role` and never reach it.
const SIGNALS: Token = Token(usize::MAX);

/// The waker's token (see [`Supervisor::waker`]).
const WAKER: Token = Token(usize::MAX - 4);

/// At most this many caught signals wait to be returned from [`Supervisor::turn`].
/// When they are all waiting, one more of a kind already waiting adds
/// nothing, and one of a new kind takes the place of a repeat, so a storm
/// of HUPs or USR1s cannot crowd out a TERM.
const CAUGHT_CAPACITY: usize = 8;

/// The signals [`Options::catch_signals`] catches: every signal a person or
/// a tool commonly sends to a daemon (`kill -USR1` is what logrotate's
/// `postrotate` sends), each of which would otherwise end the program by
/// default and leave its children's descendants to init.
const CAUGHT_SIGNALS: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

// A full queue must hold a repeat of some kind, so that a new kind can take
// its place: more places than kinds.
const _: () = assert!(CAUGHT_CAPACITY > CAUGHT_SIGNALS.len());

/// Blocks the signals that [`Options::catch_signals`] catches (TERM, INT,
/// HUP, QUIT, USR1, USR2) in the calling thread now, before there is a
/// [`Supervisor`] to catch them, so that one arriving in between waits for
/// it instead of being lost or killing the program.
///
/// Call it first thing in `main` of a program that will catch signals: until
/// then a TERM kills the program with default handling, and a PID 1 of a
/// container (which the kernel protects from signals it does not handle)
/// drops it, so an early `docker stop` would wait for the runtime's SIGKILL.
/// A supervisor created later with `catch_signals` reports the signal from
/// its first [`Supervisor::turn`]. The signals stay blocked in this thread.
pub fn hold_caught_signals() -> io::Result<()> {
    sys::block_signals(&CAUGHT_SIGNALS).map(drop)
}

/// Options for [`Supervisor::new`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Block SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 in the
    /// creating thread and report them from [`Supervisor::turn`] (through a
    /// signalfd), as the procmon CLI needs. Default: off.
    pub catch_signals: bool,
    /// Become a child subreaper and reap every exited child that no
    /// supervisor tracks, so that orphaned grandchildren never linger as
    /// zombies. Default: on, as procmon the command (and a PID 1) needs. An
    /// embedding program that starts and waits for children of its own turns
    /// it off, so that their statuses stay its own; orphans of supervised
    /// trees then go to init instead (they are still killed with their group
    /// when the leader exits).
    pub reap_orphans: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            catch_signals: false,
            reap_orphans: true,
        }
    }
}

impl Options {
    /// Sets [`Options::catch_signals`].
    pub fn with_catch_signals(mut self, catch_signals: bool) -> Self {
        self.catch_signals = catch_signals;
        self
    }

    /// Sets [`Options::reap_orphans`].
    pub fn with_reap_orphans(mut self, reap_orphans: bool) -> Self {
        self.reap_orphans = reap_orphans;
        self
    }
}

/// What happened, for the embedding program to print. Borrowed for the call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Notice<'a> {
    /// A child was started.
    Spawned {
        /// The process's name.
        name: &'a str,
        /// The child's pid (also its process group and session id).
        pid: i32,
    },
    /// A child could not be started; once per failed spawn, before the
    /// restart it leads to.
    SpawnFailed {
        /// The process's name.
        name: &'a str,
        /// Why, with the OS's reason.
        error: &'a io::Error,
        /// The step that failed, which tells what `error` means.
        stage: SpawnStage,
    },
    /// A child ended.
    Exited {
        /// The process's name.
        name: &'a str,
        /// The child's pid, now reaped.
        pid: i32,
        /// How it ended.
        status: ExitStatus,
        /// How long it lived.
        uptime: Duration,
        /// Whether procmon had asked it to stop (its stop signal was sent)
        /// rather than it ending by itself.
        on_request: bool,
    },
    /// The process will be started again after `delay`.
    RestartScheduled {
        /// The process's name.
        name: &'a str,
        /// How long until the restart (zero: at once).
        delay: Duration,
    },
    /// The process gave up after too many quick deaths in a row (its
    /// `give_up_after`): it is `failed`, and tried again after `retry_in` if
    /// that is set.
    GaveUp {
        /// The process's name.
        name: &'a str,
        /// Its quick deaths in a row.
        quick_deaths: u32,
        /// When it will be tried again, if ever.
        retry_in: Option<Duration>,
    },
    /// The state of a process changed (`running` to `stopping`, …).
    StateChanged {
        /// The process's name.
        name: &'a str,
        /// The state before.
        from: ProcessState,
        /// The state now.
        to: ProcessState,
    },
    /// Nothing will start the process by itself after the end just
    /// reported, and why.
    NotRestarting {
        /// The process's name.
        name: &'a str,
        /// Why not.
        reason: NotRestarting,
    },
    /// A signal was sent to a child's process group: its stop signal on
    /// stop, KILL after the kill time, or an operator's signal.
    Signalled {
        /// The process's name.
        name: &'a str,
        /// The child's pid (and process group).
        pid: i32,
        /// The signal.
        signal: Signal,
        /// Why it was sent.
        reason: SignalReason,
    },
    /// The pipes of an earlier instance of a process, still held open by
    /// descendants that escaped its group, were closed: only the last four
    /// reaped instances of a process keep theirs.
    /// Their partial lines were reported first; those descendants' later
    /// writes fail (`EPIPE`, or SIGPIPE).
    OutputClosed {
        /// The process's name.
        name: &'a str,
        /// The pid of the instance, reaped earlier.
        pid: i32,
    },
    /// One line of a child's output, without its newline, as raw bytes
    /// (escape them for printing, e.g. with [`procmon_core::EscapeInvalid`]).
    Output {
        /// The process's name.
        name: &'a str,
        /// Which stream.
        stream: Stream,
        /// The line.
        line: &'a [u8],
    },
}

/// Receives [`Notice`]s. Any `FnMut(Notice<'_>)` is one.
pub trait Observer {
    /// Called for each notice, in the order things happened.
    fn notice(&mut self, notice: Notice<'_>);

    /// Whether the observer can take more children's output now. The
    /// driver asks before each read of a pipe; while the answer is no, pipes
    /// are left unread (as with [`Supervisor::pause_output`]), so children
    /// block on their full pipes instead of output piling up in the
    /// observer, and a later turn reads them once the answer is yes again.
    /// The drain of an exiting child's pipes does not ask, nor does the
    /// read of a reaped child's pipe that no process can write to any more.
    fn accepts_output(&mut self) -> bool {
        true
    }
}

impl<F: FnMut(Notice<'_>)> Observer for F {
    fn notice(&mut self, notice: Notice<'_>) {
        self(notice)
    }
}

/// A signal caught for the embedding program (see [`Options::catch_signals`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaughtSignal {
    /// SIGTERM.
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGHUP.
    Hangup,
    /// SIGQUIT (`Ctrl-\`).
    Quit,
    /// SIGUSR1 (logrotate's `postrotate` sends it to have log files reopened).
    User1,
    /// SIGUSR2.
    User2,
}

impl CaughtSignal {
    /// The signal's name without `SIG`, as `kill -l` prints it.
    pub fn name(self) -> &'static str {
        match self {
            CaughtSignal::Terminate => "TERM",
            CaughtSignal::Interrupt => "INT",
            CaughtSignal::Hangup => "HUP",
            CaughtSignal::Quit => "QUIT",
            CaughtSignal::User1 => "USR1",
            CaughtSignal::User2 => "USR2",
        }
    }
}

/// Runs a [`Monitor`] against real processes: the world of the drain contract.
///
/// Drive it with two calls: [`call`](Self::call) for what the application
/// asks (add, start, stop, …) and [`turn`](Self::turn) to wait for and handle
/// what the world does. Both hand every fact to the monitor and carry out every
/// command it queues before they return, reporting to an [`Observer`].
///
/// Dropping a `Supervisor` kills every live child's process group with
/// SIGKILL and reaps the children, and restores the thread's signal mask.
/// See the [crate docs](crate) for its process-wide effects.
pub struct Supervisor {
    monitor: Monitor,
    poll: Poll,
    events: Events,
    timers: TimerQueue<TimerId>,
    clock: Clock,
    spawner: spawn::Spawner,
    /// Children by slot; a slot lives until the child is reaped and both its
    /// pipes reached EOF. The slot is the poll token's upper part.
    children: Vec<Option<Child>>,
    free_slots: Vec<usize>,
    /// Live children, for `Command::Signal`.
    by_instance: HashMap<InstanceId, usize>,
    signals: sys::SignalFd,
    caught: VecDeque<CaughtSignal>,
    /// Spawns that failed while commands were being drained, reported to the
    /// monitor once the queue is empty (the drain contract forbids feeding it
    /// facts while commands are pending).
    failed_spawns: VecDeque<(InstanceId, i32)>,
    /// The child whose exit is being handed to the monitor, so the
    /// `Report::Exited` it queues can name the pid.
    exiting: Option<(InstanceId, i32)>,
    /// Pipes that hit [`READS_PER_PIPE`] without emptying: read again next
    /// turn (epoll is edge-triggered, so no new event may come for them).
    unfinished: VecDeque<(usize, Stream)>,
    buffer: Box<[u8]>,
    /// [`Options::reap_orphans`].
    reap_orphans: bool,
    /// Slots of reaped children whose pipes are still open, oldest first,
    /// by name; at most [`LINGERING_PER_PROCESS`] each.
    lingering: HashMap<Box<str>, VecDeque<usize>>,
    /// Set by [`Supervisor::pause_output`].
    output_paused: bool,
    /// Pipes found ready while output was paused, to read once it resumes.
    paused_pipes: Vec<(usize, Stream)>,
    /// Sources the program registered, and those that became ready.
    sources: sources::Sources,
    ready: Vec<Ready>,
    waker: Option<std::sync::Arc<mio::Waker>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("monitor", &self.monitor)
            .field("timers", &self.timers.len())
            .field("children", &self.by_instance.len())
            .finish_non_exhaustive()
    }
}

/// One spawned child, until it is reaped and its pipes are closed.
struct Child {
    name: Box<str>,
    /// The leader's pid, kept after it is reaped to name the instance.
    pid: libc::pid_t,
    /// `None` once reaped.
    live: Option<Live>,
    stdout: Option<Pipe>,
    stderr: Option<Pipe>,
}

struct Live {
    instance: InstanceId,
    pid: libc::pid_t,
    pidfd: OwnedFd,
}

struct Pipe {
    receiver: Receiver,
    /// Splits what arrives after the child was reaped (from grandchildren
    /// still holding the pipe); before that the monitor splits.
    lines: LineBuffer,
}

impl Child {
    fn pipe(&mut self, stream: Stream) -> &mut Option<Pipe> {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }
}

/// What a poll token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Exit = 0,
    Stdout = 1,
    Stderr = 2,
}

fn token(slot: usize, role: Role) -> Token {
    Token(slot << 2 | role as usize)
}

fn decode(token: Token) -> Option<(usize, Role)> {
    let role = match token.0 & 3 {
        0 => Role::Exit,
        1 => Role::Stdout,
        2 => Role::Stderr,
        _ => return None,
    };
    Some((token.0 >> 2, role))
}

/// The monotonic clock, mapped onto the core's `Instant` with its origin at
/// the supervisor's creation.
#[derive(Debug)]
struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    fn now(&self) -> Instant {
        let nanos = self.origin.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl Supervisor {
    /// A supervisor for `monitor`, which must have no commands waiting (a
    /// fresh monitor, or one built by `from_definitions`, has none). Unless
    /// [`Options::reap_orphans`] is off, makes the process a child subreaper
    /// and blocks SIGCHLD in this thread; blocks the caught signals too.
    pub fn new(monitor: Monitor, options: Options) -> io::Result<Supervisor> {
        sys::keep_child_statuses()?;
        let mut blocked = Vec::new();
        if options.reap_orphans {
            sys::become_subreaper()?;
            blocked.push(libc::SIGCHLD);
        }
        if options.catch_signals {
            blocked.extend(CAUGHT_SIGNALS);
        }
        let signals = sys::SignalFd::new(&blocked)?;
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&signals.raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )?;
        Ok(Supervisor {
            monitor,
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            timers: TimerQueue::new(),
            clock: Clock {
                origin: std::time::Instant::now(),
            },
            spawner: spawn::Spawner::new()?,
            children: Vec::new(),
            free_slots: Vec::new(),
            by_instance: HashMap::new(),
            signals,
            caught: VecDeque::with_capacity(CAUGHT_CAPACITY),
            failed_spawns: VecDeque::new(),
            exiting: None,
            unfinished: VecDeque::new(),
            buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            reap_orphans: options.reap_orphans,
            lingering: HashMap::new(),
            output_paused: false,
            paused_pipes: Vec::new(),
            sources: sources::Sources::default(),
            ready: Vec::new(),
            waker: None,
        })
    }

    /// Registers a source of the program's own (a listening socket, a
    /// client connection) with the supervisor's poll, so that one
    /// [`turn`](Self::turn) waits for children, timers, signals and it
    /// alike. What became ready is taken with [`take_ready`](Self::take_ready)
    /// after each turn. See the [`SourceId`] docs for how ids are reused.
    pub fn register(
        &mut self,
        source: &mut impl mio::event::Source,
        interest: Interest,
    ) -> io::Result<SourceId> {
        let id = self.sources.allocate();
        if let Err(e) = self
            .poll
            .registry()
            .register(source, sources::token(id), interest)
        {
            self.sources.release(id);
            return Err(e);
        }
        Ok(id)
    }

    /// Changes what a registered source is waited for.
    pub fn reregister(
        &mut self,
        id: SourceId,
        source: &mut impl mio::event::Source,
        interest: Interest,
    ) -> io::Result<()> {
        self.poll
            .registry()
            .reregister(source, sources::token(id), interest)
    }

    /// Takes a source out of the poll; its id may be given to the next
    /// [`register`](Self::register).
    pub fn deregister(
        &mut self,
        id: SourceId,
        source: &mut impl mio::event::Source,
    ) -> io::Result<()> {
        self.ready.retain(|r| r.source != id);
        self.sources.release(id);
        self.poll.registry().deregister(source)
    }

    /// The registered sources that became ready in the turns since the
    /// last call, in the order their events came.
    pub fn take_ready(&mut self) -> Vec<Ready> {
        std::mem::take(&mut self.ready)
    }

    /// A waker another thread can use to make the current or next
    /// [`turn`](Self::turn) return at once (it returns `None`); made on
    /// first use.
    pub fn waker(&mut self) -> io::Result<std::sync::Arc<mio::Waker>> {
        if let Some(waker) = &self.waker {
            return Ok(waker.clone());
        }
        let waker = std::sync::Arc::new(mio::Waker::new(self.poll.registry(), WAKER)?);
        self.waker = Some(waker.clone());
        Ok(waker)
    }

    /// The monitor, for queries.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The monotonic clock, mapped onto the core's [`Instant`].
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// How long until the next timer of the monitor is due, if one is
    /// armed: for a program that waits in its own loop on
    /// [`as_raw_fd`](AsRawFd::as_raw_fd).
    pub fn next_deadline(&self) -> Option<Duration> {
        let now = self.clock.now();
        self.timers
            .next_deadline()
            .map(|at| at.saturating_duration_since(now))
    }

    /// The pid of a live instance, if it is running.
    pub fn pid(&self, instance: InstanceId) -> Option<i32> {
        let slot = *self.by_instance.get(&instance)?;
        self.children[slot]
            .as_ref()
            .and_then(|c| c.live.as_ref())
            .map(|l| l.pid)
    }

    /// Runs an application call (add, remove, start, stop, start_service, …)
    /// at `now`, then carries out every command it queued.
    ///
    /// Make one mutating call per `call`: the drain contract wants the
    /// commands of each call carried out before the next (the monitor checks
    /// this in debug builds). Queries may be mixed in freely.
    pub fn call<R>(
        &mut self,
        observer: &mut impl Observer,
        f: impl FnOnce(&mut Monitor, Instant) -> R,
    ) -> R {
        let now = self.clock.now();
        let result = f(&mut self.monitor, now);
        self.drain(now, observer);
        // Forget what was built for definitions that are gone, so the cache
        // is no bigger than the monitor's table. (A key reused in between is
        // safe: a spawn compares the definition before reusing anything.)
        let monitor = &self.monitor;
        self.spawner
            .forget_prepared(|process| monitor.spec(process).is_some());
        result
    }

    /// Sleeps until something happens (child output or exit, a timer due, a
    /// caught signal) or `timeout` passes, hands everything to the monitor
    /// and carries out its commands. Returns a caught signal if one arrived.
    /// Sleeps without any periodic wake-up: only until the next timer.
    pub fn turn(
        &mut self,
        observer: &mut impl Observer,
        timeout: Option<Duration>,
    ) -> io::Result<Option<CaughtSignal>> {
        let started = std::time::Instant::now();
        if !self.paused_pipes.is_empty() && !self.output_paused && observer.accepts_output() {
            self.resume_held_pipes();
        }
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = loop {
            let now = self.clock.now();
            let mut wait = timeout.map(|t| t.saturating_sub(started.elapsed()));
            if let Some(at) = self.timers.next_deadline() {
                let until = at.saturating_duration_since(now);
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
            // Readiness of registered sources not taken yet (a turn whose
            // caller did not call `take_ready`) must not wait behind a
            // sleep: epoll is edge-triggered and will not tell it again.
            if !self.caught.is_empty() || !self.unfinished.is_empty() || !self.ready.is_empty() {
                wait = Some(Duration::ZERO);
            }
            match self.poll.poll(&mut events, wait) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        if let Err(e) = polled {
            self.events = events;
            return Err(e);
        }
        let mut orphans = false;
        let mut failure = None;
        for event in events.iter() {
            if event.token() == WAKER {
                continue;
            }
            if event.token().0 & 3 == sources::ROLE && event.token() != SIGNALS {
                let id = event.token().0 >> 2;
                if self.sources.is_registered(id) {
                    self.ready.push(Ready::from_event(id, event));
                }
                continue;
            }
            if event.token() == SIGNALS {
                match self.read_signals() {
                    Ok(sigchld) => orphans |= sigchld,
                    Err(e) => failure = Some(e),
                }
                continue;
            }
            let Some((slot, role)) = decode(event.token()) else {
                continue;
            };
            // Readiness is a hint: each handler finds out for itself whether
            // there is anything to do (a stale token of a reused slot reads
            // WouldBlock or finds no exit).
            match role {
                Role::Exit => self.child_exited(slot, observer),
                Role::Stdout => self.read_pipe(slot, Stream::Stdout, observer),
                Role::Stderr => self.read_pipe(slot, Stream::Stderr, observer),
            }
        }
        self.events = events;
        // Pipes left full last time, once each (a read may queue one again).
        for _ in 0..self.unfinished.len() {
            if let Some((slot, stream)) = self.unfinished.pop_front() {
                self.read_pipe(slot, stream, observer);
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if orphans {
            self.reap_orphans();
        }
        // After poll returns, whatever made it return: read the clock and fire
        // everything due, one timer at a time, draining in between. A timer
        // set while firing (a zero-delay restart after a spawn that failed,
        // which sets another) waits for the next turn, whose poll does not
        // sleep: it must not keep this loop from signals and pipes for ever.
        let now = self.clock.now();
        let mark = self.timers.mark();
        while let Some((_, timer)) = self.timers.pop_due_before(now, mark) {
            self.monitor.handle(now, Input::TimerFired { timer });
            self.drain(now, observer);
        }
        Ok(self.caught.pop_front())
    }

    /// Reads what the pipes of reaped children (kept open by descendants that
    /// escaped their group) still hold, reports it with their partial lines,
    /// and closes them. For a program about to exit or drop the supervisor
    /// once the monitor is quiescent: otherwise a partial last line of such
    /// a descendant would go unreported, since their EOF is not awaited.
    pub fn finish_output(&mut self, observer: &mut impl Observer) {
        let slots: Vec<usize> = self.lingering.values().flatten().copied().collect();
        for slot in slots {
            for stream in [Stream::Stdout, Stream::Stderr] {
                self.read_pipe_now(slot, stream, observer);
                let open = self.children[slot]
                    .as_mut()
                    .is_some_and(|c| c.live.is_none() && c.pipe(stream).is_some());
                if open {
                    self.close_pipe(slot, stream, observer);
                }
            }
        }
    }

    /// Stops or resumes reading children's output, for an observer whose
    /// own output cannot keep up (procmon's stdout with a stalled reader).
    ///
    /// While paused, pipes are left unread, so children that keep writing
    /// block on their full pipes, as they would on a plain pipe to a slow
    /// reader; everything else (exits, timers, signals) goes on. An exiting
    /// child's pipes are still drained, so its last lines come before its
    /// exit, and once its group is killed, pipes nobody can write to any
    /// more are read to EOF and closed. Resuming reads every pipe that
    /// became ready meanwhile on the next turn.
    pub fn pause_output(&mut self, paused: bool) {
        self.output_paused = paused;
        if !paused {
            self.resume_held_pipes();
        }
    }

    /// Puts the pipes left unread while output was held back on the list
    /// read at the end of the next turn (which then does not sleep).
    fn resume_held_pipes(&mut self) {
        for pipe in self.paused_pipes.drain(..) {
            if !self.unfinished.contains(&pipe) {
                self.unfinished.push_back(pipe);
            }
        }
    }

    /// Sends SIGKILL to every live child's process group now, behind the
    /// monitor's back: only for `Drop`, when no monitor is left to tell.
    /// A program that wants everything killed asks the monitor
    /// (`Monitor::kill_all` through [`Supervisor::call`]), which then knows
    /// what was sent and leaves no KILL timer armed.
    fn kill_all(&mut self) {
        for live in self
            .children
            .iter()
            .flatten()
            .filter_map(|c| c.live.as_ref())
        {
            kill_group(live, libc::SIGKILL, false);
        }
    }

    // ----- Carrying out commands -----

    /// The drain contract: every queued command in order, then facts that
    /// arose while draining (failed spawns), until the monitor is quiet.
    fn drain(&mut self, now: Instant, observer: &mut impl Observer) {
        loop {
            // The core reports an exit before it flushes the instance's partial
            // lines (the scenario contract's order); observers get the lines
            // first, so that a log reads cause before effect.
            let mut held_exit: Option<Report> = None;
            while let Some(command) = self.monitor.poll_command() {
                match command {
                    Command::Log(line)
                        if matches!(&held_exit, Some(Report::Exited { instance, .. })
                            if *instance == line.instance) =>
                    {
                        self.execute(Command::Log(line), observer);
                    }
                    Command::Report(report @ Report::Exited { .. }) => {
                        if let Some(held) = held_exit.replace(report) {
                            self.report(held, observer);
                        }
                    }
                    other => {
                        if let Some(held) = held_exit.take() {
                            self.report(held, observer);
                        }
                        self.execute(other, observer);
                    }
                }
            }
            if let Some(held) = held_exit.take() {
                self.report(held, observer);
            }
            let Some((instance, errno)) = self.failed_spawns.pop_front() else {
                break;
            };
            self.monitor
                .handle(now, Input::SpawnFailed { instance, errno });
        }
    }

    fn execute(&mut self, command: Command, observer: &mut impl Observer) {
        match command {
            Command::Spawn { process, instance } => self.spawn(process, instance, observer),
            Command::Signal {
                instance,
                signal,
                reason,
                ..
            } => {
                let Some(child) = self
                    .by_instance
                    .get(&instance)
                    .and_then(|&slot| self.children[slot].as_ref())
                else {
                    return;
                };
                let live = child
                    .live
                    .as_ref()
                    .expect("by_instance holds live children only");
                kill_group(live, signal_number(signal), reason == SignalReason::Stop);
                observer.notice(Notice::Signalled {
                    name: &child.name,
                    pid: live.pid,
                    signal,
                    reason,
                });
            }
            Command::SetTimer { timer, at } => self.timers.set(timer, at),
            Command::CancelTimer { timer } => {
                self.timers.cancel(timer);
            }
            // Partial lines flushed at an exit; the rest are lent by
            // `handle_output` in `read_pipe`.
            Command::Log(line) => observer.notice(Notice::Output {
                name: self.name(line.process),
                stream: line.stream,
                line: &line.bytes,
            }),
            Command::Report(report) => self.report(report, observer),
        }
    }

    fn report(&mut self, report: Report, observer: &mut impl Observer) {
        match report {
            Report::Exited {
                process,
                instance,
                status,
                uptime,
                on_request,
            } => {
                let pid = match self.exiting {
                    Some((exiting, pid)) if exiting == instance => pid,
                    // The core reports an exit only when told of one.
                    _ => 0,
                };
                observer.notice(Notice::Exited {
                    name: self.name(process),
                    pid,
                    status,
                    uptime,
                    on_request,
                });
            }
            Report::SpawnFailed { process, errno, .. } => {
                observer.notice(Notice::SpawnFailed {
                    name: self.name(process),
                    error: &io::Error::from_raw_os_error(errno),
                    stage: self.spawner.failed_stage(process),
                });
            }
            Report::RestartScheduled { process, delay } => {
                observer.notice(Notice::RestartScheduled {
                    name: self.name(process),
                    delay,
                });
            }
            Report::GaveUp {
                process,
                quick_deaths,
                retry_in,
            } => observer.notice(Notice::GaveUp {
                name: self.name(process),
                quick_deaths,
                retry_in,
            }),
            Report::NotRestarting { process, reason } => observer.notice(Notice::NotRestarting {
                name: self.name(process),
                reason,
            }),
            Report::StateChanged { process, from, to } => observer.notice(Notice::StateChanged {
                name: self.name(process),
                from,
                to,
            }),
            _ => {}
        }
    }

    /// A process's name; keys in drained commands stay valid while draining.
    fn name(&self, process: ProcessKey) -> &str {
        self.monitor
            .name(process)
            .expect("keys in drained commands stay valid until the next mutating call")
    }

    fn spawn(&mut self, process: ProcessKey, instance: InstanceId, observer: &mut impl Observer) {
        let spec = self
            .monitor
            .spec(process)
            .expect("keys in drained commands stay valid until the next mutating call");
        let spawned = self
            .spawner
            .spawn(process, spec)
            .and_then(|spawned| self.register_child(process, instance, spawned));
        match spawned {
            Ok(pid) => observer.notice(Notice::Spawned {
                name: self.name(process),
                pid,
            }),
            Err(e) => self
                .failed_spawns
                .push_back((instance, e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }

    /// Takes a new child into the poll and the tables.
    fn register_child(
        &mut self,
        process: ProcessKey,
        instance: InstanceId,
        spawned: spawn::Spawned,
    ) -> io::Result<i32> {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.children.push(None);
            self.children.len() - 1
        });
        let mut stdout = Receiver::from(spawned.stdout);
        let mut stderr = Receiver::from(spawned.stderr);
        let registry = self.poll.registry();
        let registered = registry
            .register(
                &mut SourceFd(&spawned.pidfd.as_raw_fd()),
                token(slot, Role::Exit),
                Interest::READABLE,
            )
            .and_then(|()| {
                registry.register(&mut stdout, token(slot, Role::Stdout), Interest::READABLE)
            })
            .and_then(|()| {
                registry.register(&mut stderr, token(slot, Role::Stderr), Interest::READABLE)
            });
        let live = Live {
            instance,
            pid: spawned.pid,
            pidfd: spawned.pidfd,
        };
        if let Err(e) = registered {
            // Without a registration we would never see it exit: undo it all.
            kill_group(&live, libc::SIGKILL, false);
            let mut tracked = sys::tracked();
            let _ = sys::reap(live.pidfd.as_fd());
            tracked.remove(&live.pid);
            drop(tracked);
            let _ = registry.deregister(&mut SourceFd(&live.pidfd.as_raw_fd()));
            let _ = registry.deregister(&mut stdout);
            let _ = registry.deregister(&mut stderr);
            self.free_slots.push(slot);
            return Err(e);
        }
        let pid = live.pid;
        let name = self.monitor.name(process).unwrap_or_default().into();
        self.children[slot] = Some(Child {
            name,
            pid,
            live: Some(live),
            stdout: Some(Pipe {
                receiver: stdout,
                lines: LineBuffer::new(),
            }),
            stderr: Some(Pipe {
                receiver: stderr,
                lines: LineBuffer::new(),
            }),
        });
        self.by_instance.insert(instance, slot);
        Ok(pid)
    }

    // ----- Facts from the world -----

    /// The pidfd of `slot` is readable: the leader may have exited.
    fn child_exited(&mut self, slot: usize, observer: &mut impl Observer) {
        let Some(live) = self
            .children
            .get(slot)
            .and_then(|c| c.as_ref()?.live.as_ref())
        else {
            return;
        };
        let (pid, instance) = (live.pid, live.instance);
        let peeked = match sys::peek_exit(live.pidfd.as_fd()) {
            Ok(None) => return,
            Ok(Some(status)) => Some(status),
            // ECHILD: someone else reaped it. (Waiting on a pidfd needs Linux
            // 5.4, the crate's floor, so no other error is expected.)
            Err(_) => None,
        };
        // Its last words first, partial lines included (the core flushes
        // those when told of the exit). Not waiting for EOF: see `Pipe::lines`.
        self.read_pipe_now(slot, Stream::Stdout, observer);
        self.read_pipe_now(slot, Stream::Stderr, observer);
        let live = self.children[slot]
            .as_ref()
            .and_then(|c| c.live.as_ref())
            .expect("checked above");
        let status = match peeked {
            // The leader is an unreaped zombie, so its pid and group id cannot
            // have been reused: kill what is left of its group, then reap it.
            Some(peeked) => {
                let _ = sys::killpg(pid, libc::SIGKILL);
                let mut tracked = sys::tracked();
                let reaped = sys::reap(live.pidfd.as_fd());
                tracked.remove(&pid);
                reaped.unwrap_or(peeked)
            }
            // Someone else reaped it (a foreign `waitpid(-1)`, which the
            // module docs warn against). Its pid and group id may be a
            // stranger's by now, so nothing is signalled, and its status is
            // lost: reported as a SIGKILL.
            None => {
                sys::tracked().remove(&pid);
                ExitStatus::Signal(libc::SIGKILL)
            }
        };
        let child = self.children[slot].as_mut().expect("checked above");
        let live = child.live.take().expect("checked above");
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&live.pidfd.as_raw_fd()));
        drop(live);
        self.by_instance.remove(&instance);
        self.free_if_done(slot);

        let now = self.clock.now();
        self.exiting = Some((instance, pid));
        self.monitor.handle(now, Input::Exited { instance, status });
        self.drain(now, observer);
        self.exiting = None;
        // Its group's members we just killed were re-parented to us.
        self.reap_orphans();
        // Unless a process that left the group holds them, its pipes now have
        // no writers, or soon will (their hang-up then wakes us): what they
        // still hold is read now, paused or not (see `read_pipe_unless_held`).
        // Only pipes still held open after that wait for escapees. (The slot
        // may have been freed above and taken by a restart, which is live.)
        for stream in [Stream::Stdout, Stream::Stderr] {
            let open = self.children[slot]
                .as_mut()
                .is_some_and(|c| c.live.is_none() && c.pipe(stream).is_some());
            if open {
                self.read_pipe(slot, stream, observer);
            }
        }
        if self.children[slot]
            .as_ref()
            .is_some_and(|c| c.live.is_none())
        {
            self.linger(slot, observer);
        }
    }

    /// Reads one pipe of `slot` until `WouldBlock` or EOF, or at most
    /// [`READS_PER_PIPE`] times, leaving the rest for the next turn; while
    /// output is paused, only notes it for when output resumes.
    fn read_pipe(&mut self, slot: usize, stream: Stream, observer: &mut impl Observer) {
        self.read_pipe_unless_held(slot, stream, observer, true);
    }

    /// [`read_pipe`](Self::read_pipe), paused or not.
    fn read_pipe_now(&mut self, slot: usize, stream: Stream, observer: &mut impl Observer) {
        self.read_pipe_unless_held(slot, stream, observer, false);
    }

    /// Reads as `read_pipe` says; with `may_hold`, first asks (before every
    /// read, so that one turn cannot read much past what the observer can
    /// take) whether output is paused or the observer refuses it, and then
    /// only notes the pipe for later.
    ///
    /// A reaped child's pipe that nobody can write to any more is never held:
    /// what it holds is bounded (a pipe's capacity) and is the child's last
    /// words, like the drain at its exit. Held, it would never reach EOF and
    /// would look like a pipe kept open by escapees, keeping its
    /// descriptors and slot until evicted as one.
    fn read_pipe_unless_held(
        &mut self,
        slot: usize,
        stream: Stream,
        observer: &mut impl Observer,
        mut may_hold: bool,
    ) {
        if may_hold {
            let abandoned = self
                .children
                .get_mut(slot)
                .and_then(Option::as_mut)
                .is_some_and(|c| {
                    c.live.is_none()
                        && c.pipe(stream)
                            .as_ref()
                            .is_some_and(|p| !sys::pipe_has_writers(p.receiver.as_raw_fd()))
                });
            may_hold = !abandoned;
        }
        for _ in 0..READS_PER_PIPE {
            if may_hold && (self.output_paused || !observer.accepts_output()) {
                if !self.paused_pipes.contains(&(slot, stream)) {
                    self.paused_pipes.push((slot, stream));
                }
                return;
            }
            let Some(child) = self.children.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let Child {
                name,
                live,
                stdout,
                stderr,
                ..
            } = child;
            let live = live.as_ref().map(|l| l.instance);
            let pipe = match stream {
                Stream::Stdout => stdout,
                Stream::Stderr => stderr,
            };
            let Some(pipe) = pipe.as_mut() else {
                return;
            };
            let read = (&pipe.receiver).read(&mut self.buffer);
            let n = match read {
                Ok(0) => {
                    self.close_pipe(slot, stream, observer);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Any other error on a pipe read is permanent: treat it as EOF.
                Err(_) => {
                    self.close_pipe(slot, stream, observer);
                    return;
                }
            };
            let bytes = &self.buffer[..n];
            let name = &**name;
            let mut log = |line: &[u8]| observer.notice(Notice::Output { name, stream, line });
            match live {
                Some(instance) => {
                    let now = self.clock.now();
                    self.monitor.handle_output(
                        now,
                        instance,
                        stream,
                        bytes,
                        |line| log(line.bytes),
                    );
                    self.drain(now, observer);
                }
                None => {
                    let limit = self.monitor.settings().line_limit_bytes;
                    pipe.lines.push(bytes, limit, log);
                }
            }
        }
        // Still full after the budget: the next turn reads on.
        if !self.unfinished.contains(&(slot, stream)) {
            self.unfinished.push_back((slot, stream));
        }
    }

    /// EOF on a pipe: flush what a reaped child's descendants left unfinished
    /// and forget the pipe.
    fn close_pipe(&mut self, slot: usize, stream: Stream, observer: &mut impl Observer) {
        let child = self.children[slot]
            .as_mut()
            .expect("caller checked the slot");
        let mut pipe = child.pipe(stream).take().expect("caller checked the pipe");
        let _ = self.poll.registry().deregister(&mut pipe.receiver);
        // While the child lives the core holds its partial line and flushes it
        // at the exit; after that, ours holds it.
        if let Some(line) = pipe.lines.take_partial() {
            observer.notice(Notice::Output {
                name: &child.name,
                stream,
                line: &line,
            });
        }
        self.free_if_done(slot);
    }

    /// Frees the slot of a reaped child whose pipes are both closed.
    fn free_if_done(&mut self, slot: usize) {
        let done = self.children[slot]
            .as_ref()
            .is_some_and(|c| c.live.is_none() && c.stdout.is_none() && c.stderr.is_none());
        if !done {
            return;
        }
        let child = self.children[slot].take().expect("checked above");
        self.free_slots.push(slot);
        if let Some(lingering) = self.lingering.get_mut(&child.name) {
            lingering.retain(|&s| s != slot);
            if lingering.is_empty() {
                self.lingering.remove(&child.name);
            }
        }
    }

    /// Keeps the pipes of a reaped child open for its escaped descendants,
    /// closing those of the oldest such instance of the same process if that
    /// makes more than [`LINGERING_PER_PROCESS`].
    fn linger(&mut self, slot: usize, observer: &mut impl Observer) {
        let child = self.children[slot]
            .as_ref()
            .expect("caller checked the slot");
        let name = child.name.clone();
        let lingering = self.lingering.entry(name.clone()).or_default();
        lingering.push_back(slot);
        if lingering.len() <= LINGERING_PER_PROCESS {
            return;
        }
        let oldest = lingering[0];
        let pid = self.children[oldest]
            .as_ref()
            .expect("lingering slots are occupied")
            .pid;
        // What is in the pipes is read first; closing the second pipe frees
        // the slot and takes it off the list. A pipe that reaches EOF while
        // read was not held open by anyone: no notice for it.
        let mut forced = false;
        for stream in [Stream::Stdout, Stream::Stderr] {
            self.read_pipe_now(oldest, stream, observer);
            let open = self.children[oldest]
                .as_mut()
                .is_some_and(|c| c.pipe(stream).is_some());
            if open {
                forced = true;
                self.close_pipe(oldest, stream, observer);
            }
        }
        if forced {
            observer.notice(Notice::OutputClosed { name: &name, pid });
        }
    }

    /// Drains the signalfd; returns whether SIGCHLD arrived.
    fn read_signals(&mut self) -> io::Result<bool> {
        let mut sigchld = false;
        while let Some(signal) = self.signals.read()? {
            let caught = match signal {
                libc::SIGCHLD => {
                    sigchld = true;
                    continue;
                }
                libc::SIGTERM => CaughtSignal::Terminate,
                libc::SIGINT => CaughtSignal::Interrupt,
                libc::SIGHUP => CaughtSignal::Hangup,
                libc::SIGQUIT => CaughtSignal::Quit,
                libc::SIGUSR1 => CaughtSignal::User1,
                libc::SIGUSR2 => CaughtSignal::User2,
                _ => continue,
            };
            if self.caught.len() == CAUGHT_CAPACITY {
                if self.caught.contains(&caught) {
                    continue;
                }
                // Full of other kinds: drop the newest repeat of a kind that
                // waits more than once, so that every kind keeps a place.
                let repeat = (0..self.caught.len())
                    .rev()
                    .find(|&i| self.caught.iter().filter(|&&c| c == self.caught[i]).count() > 1)
                    .expect("more entries than kinds");
                self.caught.remove(repeat);
            }
            self.caught.push_back(caught);
        }
        Ok(sigchld)
    }

    /// Reaps every exited child that no supervisor tracks through a pidfd:
    /// orphans re-parented to us as subreaper. Statuses are peeked first
    /// (`WNOWAIT`) so a tracked child's is never stolen; when the first exited
    /// child is a tracked one, the rest wait until its pidfd path reaps it,
    /// which is followed by another call to this.
    fn reap_orphans(&mut self) {
        if !self.reap_orphans {
            return;
        }
        loop {
            let tracked = sys::tracked();
            let Some(pid) = sys::peek_any_exited() else {
                return;
            };
            if tracked.contains(&pid) {
                return;
            }
            sys::reap_if_exited(pid);
        }
    }
}

/// Signals a live child's process group. The leader is not reaped while it is
/// in `Supervisor::children` with `live` set, so its group id is pinned and
/// `killpg` cannot reach a stranger.
///
/// KILL goes to the leader through its pidfd (which cannot miss or hit a
/// recycled pid, whatever the group does) and then to the group. Any other
/// signal goes to the group only, which includes the leader: sending it
/// through the pidfd too could run a handler twice, so the pidfd is then the
/// fallback should `killpg` fail. A stop signal is followed by CONT
/// (`wake`), so a stopped child wakes up to act on it: mechanism the core
/// leaves to the driver, since only a real process can be stopped.
fn kill_group(live: &Live, signal: libc::c_int, wake: bool) {
    if signal == libc::SIGKILL {
        let _ = sys::pidfd_send_signal(&live.pidfd, signal);
        let _ = sys::killpg(live.pid, signal);
        return;
    }
    if sys::killpg(live.pid, signal).is_err() {
        let _ = sys::pidfd_send_signal(&live.pidfd, signal);
    }
    if wake {
        let _ = sys::killpg(live.pid, libc::SIGCONT);
    }
}

/// The platform's number for one of the core's signals.
pub fn signal_number(signal: Signal) -> libc::c_int {
    match signal {
        Signal::Hup => libc::SIGHUP,
        Signal::Int => libc::SIGINT,
        Signal::Quit => libc::SIGQUIT,
        Signal::Kill => libc::SIGKILL,
        Signal::Usr1 => libc::SIGUSR1,
        Signal::Usr2 => libc::SIGUSR2,
        Signal::Term => libc::SIGTERM,
        Signal::Alrm => libc::SIGALRM,
        Signal::Cont => libc::SIGCONT,
        Signal::Stop => libc::SIGSTOP,
        Signal::Tstp => libc::SIGTSTP,
        Signal::Winch => libc::SIGWINCH,
        Signal::Pipe => libc::SIGPIPE,
    }
}

/// The supervisor's poll descriptor: readable when a [`turn`](Supervisor::turn)
/// has work (a child's output or exit, a signal, a registered source, the
/// waker). Another event loop (tokio's `AsyncFd`, say) waits on it and calls
/// `turn` with a zero timeout when it is readable; timers are the
/// supervisor's own, so such a loop must also wake by
/// [`Supervisor::next_deadline`].
impl AsRawFd for Supervisor {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.poll.as_raw_fd()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // No child outlives its supervisor: kill every group, then reap.
        self.kill_all();
        for child in self.children.iter_mut().flatten() {
            if let Some(live) = child.live.take() {
                let mut tracked = sys::tracked();
                let _ = sys::reap(live.pidfd.as_fd());
                tracked.remove(&live.pid);
            }
        }
        self.reap_orphans();
    }
}
