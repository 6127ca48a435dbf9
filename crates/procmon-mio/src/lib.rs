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
//!   out of that buffer to the [`Observer`] ([`Observer::read_line`], after
//!   one [`Observer::output_read`] per read, so an observer can look up
//!   where a read's lines go once): no copy per line. The pipes of an exited child are drained before its exit is
//!   reported, but EOF is not awaited: a grandchild that escaped the group may
//!   keep them open. Such pipes stay registered until EOF, and what they still
//!   carry is split into lines here and reported under the same name; only
//!   the last four reaped instances of a process keep theirs, after which the
//!   oldest's are closed ([`Notice::OutputClosed`]), so escapees cannot make
//!   the monitor's descriptors grow without end. A reaped child's pipe with
//!   no writer left (its group killed, no escapee) is read to EOF even while
//!   output is paused, so unread bytes never pass for an escapee.
//! - **Readiness** ([`procmon_core::Readiness`]): a `Notify` process gets
//!   an sd_notify datagram socket of its own in `NOTIFY_SOCKET`, in a 0700
//!   directory the supervisor makes (in `$XDG_RUNTIME_DIR`, `/run` for
//!   root, or the temporary directory) and removes when dropped; datagrams whose sender
//!   (`SO_PASSCRED`) is not the child or in its session are ignored and
//!   counted ([`Stats::notify_rejected`]). `READY=1` becomes
//!   [`Input::Ready`], `STATUS=` [`Notice::Status`] and
//!   [`Supervisor::notify_status`], `STOPPING=1` [`Notice::Stopping`]. An
//!   `Fd(n)` instance holds a pipe's write end at descriptor `n`: a newline
//!   is [`Input::Ready`], its end without one while the child lives
//!   [`Input::NotReady`]; the read end is closed after either (a later write
//!   of the child's then fails with `EPIPE`, as under s6). Both channels are
//!   read before the child's exit is reported; a pipe is closed when the
//!   child is reaped, a socket when its process is removed.
//!   The monitor's own `NOTIFY_SOCKET` is never passed on to a child. For
//!   procmon telling its own manager, see [`notify`].
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
//! holds three in the monitor, four with a readiness channel); children get
//! the original limit back.
//! A `Supervisor` is therefore not `Send`.
//!
//! # Embedding in another event loop
//!
//! [`Supervisor::turn`] can sleep in a loop of its own, but a program with
//! an event loop already (tokio, say) need not give it a thread. Three
//! things are enough, and nothing wakes while nothing happens:
//!
//! - **The descriptor**: a `Supervisor` is [`AsRawFd`](std::os::fd::AsRawFd);
//!   its poll descriptor is readable when a turn has work (a child's output
//!   or exit, a signal, a registered source, a wake-up). Wait for it to be
//!   readable, then `turn` with a zero timeout.
//! - **The deadline**: timers are the supervisor's own, so also wake after
//!   [`Supervisor::next_deadline`] (read again after every turn; `None` means
//!   no timer). It is zero when the last turn left itself work that the
//!   descriptor will not announce again.
//! - **Calls from elsewhere**: [`Supervisor::handle`] gives a [`Handle`]
//!   that other threads or tasks use to send application calls (start,
//!   stop, …) into the supervisor, waking it; [`Supervisor::waker`] only
//!   wakes it.
//!
//! The supervisor itself stays on the thread that made it (see below).
//! `examples/tokio_embed.rs` drives one from a single-threaded tokio runtime
//! with `AsyncFd` and `sleep_until`, and checks that a quiet second passes
//! without a wake-up.
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
//!     monitor.start_service(now).unwrap();
//! });
//! loop {
//!     supervisor.turn(&mut print, None).unwrap();
//! }
//! ```
#![warn(missing_docs, unreachable_pub)]

// One module per job of the driver: the child table (`children`), pipes and
// back-pressure (`pipes`), readiness channels (`readiness`), signals
// (`signals`), orphan reaping (`reaping`) and the loop (`event_loop`), plus
// requests from other threads (`handle`) and procmon's own sd_notify client
// (`notify`). This file keeps the types they share: the
// `Supervisor` whose fields they all touch, its options and what it reports.
mod children;
mod event_loop;
mod handle;
pub mod notify;
pub mod os;
mod pipes;
mod readiness;
mod reaping;
mod signals;
mod sources;
mod spawn;
mod sys;

pub use children::signal_number;
pub use handle::Handle;
pub use readiness::NOTIFY_DATAGRAM_BYTES;
pub use signals::{hold_caught_signals, CaughtSignal};
pub use sources::{Ready, SourceId};
pub use spawn::{find_program, SpawnStage};

/// The `mio` this driver polls with, so a program registers its own sources
/// ([`Supervisor::register`]) with the same version's types.
pub use mio;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use mio::{Events, Poll};
use procmon_core::{
    Condition, ExitStatus, InstanceId, Monitor, NotReadyCause, NotRestarting, ProcessState, Signal,
    SignalReason, Stream, TimerId, TimerQueue,
};

use crate::children::Child;
use crate::event_loop::Clock;
#[cfg(doc)]
use crate::pipes::{LINGERING_PER_PROCESS, READS_PER_PIPE};
#[cfg(doc)]
use procmon_core::Input;

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
    /// A `starting` instance became ready: the process is `running`.
    Ready {
        /// The process's name.
        name: &'a str,
    },
    /// A `starting` instance will not become ready (its ready timeout
    /// passed, or its notification channel closed): it is being stopped,
    /// and its end counts as a quick death.
    NotReady {
        /// The process's name.
        name: &'a str,
        /// Why.
        cause: NotReadyCause,
    },
    /// The process is due to start but waits for a dependency's condition.
    Waiting {
        /// The process's name.
        name: &'a str,
        /// The first dependency whose condition does not hold.
        dependency: &'a str,
        /// Its condition.
        condition: Condition,
    },
    /// A [`Readiness::Notify`](procmon_core::Readiness::Notify) process sent
    /// a status text (`STATUS=...`, invalid UTF-8 replaced), now its latest
    /// ([`Supervisor::notify_status`]) until its next spawn.
    Status {
        /// The process's name.
        name: &'a str,
        /// The text.
        text: &'a str,
    },
    /// A [`Readiness::Notify`](procmon_core::Readiness::Notify) process
    /// said it is stopping (`STOPPING=1`). Only noted: what happens next is
    /// its exit.
    Stopping {
        /// The process's name.
        name: &'a str,
    },
    /// A critical process ended for good: the service is stopping, and the
    /// supervisor finishes with `exit_code` once nothing is alive.
    CriticalEnded {
        /// The process's name.
        name: &'a str,
        /// The exit code the supervisor finishes with.
        exit_code: u8,
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
        /// For KILL because the kill time ran out: that kill time, the one
        /// in force when the stop signal was sent.
        kill_time: Option<Duration>,
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

/// The driver's own counters over the supervisor's life, beside the
/// monitor's ([`Monitor::stats`]): what only the driver sees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams received on the sd_notify sockets of
    /// [`Readiness::Notify`](procmon_core::Readiness::Notify) processes.
    pub notify_datagrams: u64,
    /// Of those, the ones ignored because their sender was neither the
    /// child nor in its session (or was gone before it could be checked).
    pub notify_rejected: u64,
    /// Of those, the ones longer than [`NOTIFY_DATAGRAM_BYTES`], whose rest
    /// was lost.
    pub notify_truncated: u64,
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

    /// Called after each read of a child's pipe took bytes, before the
    /// lines it completed are given to [`Observer::read_line`]: those lines
    /// were read now. An observer that stamps lines with the time they were
    /// read can read the clock here, once per read rather than once per
    /// line.
    fn output_read(&mut self) {}

    /// One line that the last read (see [`Observer::output_read`])
    /// completed: the same as [`Notice::Output`], which the default passes
    /// it on as. Every `read_line` between two `output_read`s is of the
    /// same process and stream, so an observer can look up where a
    /// process's lines go once per read rather than once per line. Lines
    /// that come otherwise (a partial line at an exit, one queued behind
    /// other commands) come as [`Notice::Output`].
    #[inline]
    fn read_line(&mut self, name: &str, stream: Stream, line: &[u8]) {
        self.notice(Notice::Output { name, stream, line });
    }
}

impl<F: FnMut(Notice<'_>)> Observer for F {
    fn notice(&mut self, notice: Notice<'_>) {
        self(notice)
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
    /// What [`Handle`]s send; made by the first [`Supervisor::handle`].
    requests: Option<handle::Requests>,
    /// Sockets of processes between instances. With `children`, before
    /// the directory, so that their sockets are gone when it is removed.
    idle_sockets: readiness::IdleSockets,
    /// Where the sd_notify sockets are bound.
    notify_directory: readiness::NotifyDirectory,
    /// Readiness channels that hit their read budget: read again next turn.
    unfinished_channels: VecDeque<usize>,
    /// The latest `STATUS=` of each process, by name, until its next spawn.
    statuses: HashMap<Box<str>, Box<str>>,
    stats: Stats,
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
            // Closes its socket and removes the path, before the directory.
            child.readiness = None;
        }
        self.idle_sockets.clear();
        self.reap_orphans();
    }
}
