//! The loop: creating a [`Supervisor`], the two calls that drive it
//! ([`Supervisor::call`] and [`Supervisor::turn`]), carrying out the
//! monitor's commands under the drain contract, and what an embedding
//! program needs to wait in its own loop (registered sources, the waker,
//! the poll descriptor, the next deadline).
//!
//! Separate because it is the only place that decides the order of things
//! within a turn; the other modules each handle one kind of event when told.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use procmon_core::{
    Command, Input, Instant, Monitor, ProcessKey, Report, SignalReason, Stream, TimerQueue,
};

use crate::children::{decode, kill_group, Role, ROLE_BITS, ROLE_MASK};
use crate::pipes::READ_BUFFER_BYTES;
use crate::readiness::{self, IdleSockets, NotifyDirectory};
use crate::signals::{CaughtSignal, CAUGHT_CAPACITY, CAUGHT_SIGNALS, SIGNALS};
use crate::{
    signal_number, sources, spawn, sys, Notice, Observer, Options, Ready, SourceId, Stats,
    Supervisor,
};

/// How many readiness events one `poll` returns at most; more simply wait for
/// the next turn (epoll hands them out round-robin), so memory stays fixed.
const EVENTS_CAPACITY: usize = 256;

/// The waker's token (see [`Supervisor::waker`]).
const WAKER: Token = Token(usize::MAX - 4);

/// The monotonic clock, mapped onto the core's `Instant` with its origin at
/// the supervisor's creation.
#[derive(Debug)]
pub(crate) struct Clock {
    pub(crate) origin: std::time::Instant,
}

impl Clock {
    pub(crate) fn now(&self) -> Instant {
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
            idle_sockets: IdleSockets::default(),
            notify_directory: NotifyDirectory::default(),
            unfinished_channels: VecDeque::new(),
            statuses: HashMap::new(),
            stats: Stats::default(),
            waker: None,
            requests: None,
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

    /// The driver's own counters, beside the monitor's
    /// ([`Monitor::stats`](procmon_core::Monitor::stats)).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The monotonic clock, mapped onto the core's [`Instant`].
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// How long until the next timer of the monitor is due, if one is
    /// armed: for a program that waits in its own loop on
    /// [`as_raw_fd`](AsRawFd::as_raw_fd). Zero when the next turn already
    /// has work that the descriptor will not announce (a pipe left unread
    /// by the per-turn read budget, a second caught signal, readiness not
    /// taken), so such a loop must turn again without waiting.
    pub fn next_deadline(&self) -> Option<Duration> {
        if self.has_queued_work() {
            return Some(Duration::ZERO);
        }
        let now = self.clock.now();
        self.timers
            .next_deadline()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Whether the next turn has work that no descriptor will announce
    /// again (epoll is edge-triggered), so must not sleep: caught signals
    /// not returned yet (one per turn), pipes left unread by the read
    /// budget, and readiness of registered sources not taken yet.
    fn has_queued_work(&self) -> bool {
        !self.caught.is_empty()
            || !self.unfinished.is_empty()
            || !self.unfinished_channels.is_empty()
            || !self.ready.is_empty()
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
        if !self.statuses.is_empty() {
            self.statuses.retain(|name, _| monitor.key(name).is_some());
        }
        // And the sockets of processes that are gone or no longer notify.
        self.idle_sockets
            .retain(|process| readiness::still_notifies(monitor, process));
        result
    }

    /// Sleeps until something happens (child output or exit, a timer due, a
    /// caught signal) or `timeout` passes, hands everything to the monitor
    /// and carries out its commands. Returns a caught signal if one arrived.
    /// Sleeps without any periodic wake-up: only until the next timer.
    /// Requests sent through a [`Handle`](crate::Handle) are applied last,
    /// each as one [`call`](Self::call).
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
            if self.has_queued_work() {
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
            if event.token().0 & ROLE_MASK == sources::ROLE && event.token() != SIGNALS {
                let id = event.token().0 >> ROLE_BITS;
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
                Role::Readiness => self.read_channel(slot, observer, false),
            }
        }
        self.events = events;
        // Pipes and channels left full last time, once each (a read may
        // queue one again).
        for _ in 0..self.unfinished.len() {
            if let Some((slot, stream)) = self.unfinished.pop_front() {
                self.read_pipe(slot, stream, observer);
            }
        }
        for _ in 0..self.unfinished_channels.len() {
            if let Some(slot) = self.unfinished_channels.pop_front() {
                self.read_channel(slot, observer, false);
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
        self.apply_requests(observer);
        Ok(self.caught.pop_front())
    }

    // ----- Carrying out commands -----

    /// The drain contract: every queued command in order, then facts that
    /// arose while draining (failed spawns), until the monitor is quiet.
    pub(crate) fn drain(&mut self, now: Instant, observer: &mut impl Observer) {
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
                kill_time,
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
                    kill_time,
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
            Report::Ready { process, .. } => observer.notice(Notice::Ready {
                name: self.name(process),
            }),
            Report::NotReady { process, cause, .. } => observer.notice(Notice::NotReady {
                name: self.name(process),
                cause,
            }),
            Report::Waiting { process } => {
                let name = self.name(process);
                let waiting_for = self
                    .monitor
                    .status(name)
                    .and_then(|status| status.waiting_for);
                if let Some(dependency) = waiting_for {
                    observer.notice(Notice::Waiting {
                        name,
                        dependency: &dependency.name,
                        condition: dependency.condition,
                    });
                }
            }
            Report::CriticalEnded { process, exit_code } => {
                observer.notice(Notice::CriticalEnded {
                    name: self.name(process),
                    exit_code,
                })
            }
            _ => {}
        }
    }

    /// A process's name; keys in drained commands stay valid while draining.
    pub(crate) fn name(&self, process: ProcessKey) -> &str {
        self.monitor
            .name(process)
            .expect("keys in drained commands stay valid until the next mutating call")
    }
}

/// The supervisor's poll descriptor: readable when a [`turn`](Supervisor::turn)
/// has work (a child's output or exit, a signal, a registered source, the
/// waker or a [`Handle`](crate::Handle)). Another event loop (tokio's
/// `AsyncFd`, say) waits on it and calls `turn` with a zero timeout when it
/// is readable; timers are the supervisor's own, so such a loop must also
/// wake by [`Supervisor::next_deadline`]. It is an epoll descriptor, so it
/// stays readable while events remain that a turn did not take (more than
/// one turn's worth): turn again until it is not.
impl AsRawFd for Supervisor {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.poll.as_raw_fd()
    }
}
