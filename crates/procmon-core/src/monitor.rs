//! The process monitor state machine.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::mem;
use core::time::Duration;

use slab::Slab;
use smallvec::SmallVec;

use crate::command::{Command, LogLineRef, Signal, SignalReason};
use crate::error::{
    AddError, DefinitionsError, SettingsError, ShutDown, SignalError, StartError, UnknownProcess,
};
use crate::input::{ExitStatus, Input, InstanceId, Stream};
use crate::life::{End, Event, Life, Process};
use crate::spec::{
    check_line_limit, Definitions, Dependency, ProcessSpec, ProcessSummary, Readiness, Settings,
};
use crate::time::Instant;
use crate::timer::{TimerId, TimerKind};

/// Names a process inside one monitor, for the life of its definition.
///
/// Deliberately not `From<usize>`: keys come only from the monitor. A key is
/// valid from `add` until the process is removed and its last instance has
/// exited; keys named in commands stay valid until the next mutating call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcessKey(pub(crate) u32);

impl ProcessKey {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// Supervises named processes: Twisted's `ProcessMonitor` as a sans-IO state
/// machine.
///
/// The monitor never performs I/O, reads a clock or spawns anything. Its
/// methods are of four kinds:
///
/// - **A. Application calls** ([`add`](Self::add), [`remove`](Self::remove),
///   [`start`](Self::start), [`stop`](Self::stop), [`restart_all`](Self::restart_all),
///   [`start_service`](Self::start_service), [`stop_service`](Self::stop_service),
///   [`shut_down`](Self::shut_down), …): what the user asks for. Unknown or
///   duplicate names are typed errors, and so is a start once shut down.
/// - **B. Facts from the world** ([`handle`](Self::handle)): exits, spawn
///   failures, output bytes, fired timers. Infallible: input about an instance
///   or timer that no longer matters is counted in [`Stats`] and ignored.
///   Output can also come through [`handle_output`](Self::handle_output),
///   which lends each line to a closure at once instead of queueing a copy.
/// - **C. Work for the world** ([`poll_command`](Self::poll_command)).
/// - **D. Queries** (`&self`): [`status`](Self::status), [`stats`](Self::stats), ….
///
/// # The drain contract
///
/// After every A or B call, call `poll_command` until it returns `None` and
/// carry out each [`Command`] in order before waiting for anything else. The
/// order matters: the exit report comes before the partial lines, which come
/// before the restart; timers set at the same instant fire in the order set.
/// A driver loop is therefore:
///
/// ```text
/// loop {
///     let (now, input) = world.wait();
///     monitor.handle(now, input);
///     while let Some(command) = monitor.poll_command() {
///         world.execute(now, command);
///     }
/// }
/// ```
///
/// # Time
///
/// Every A and B call takes `now`. It must never go backwards; an earlier
/// `now` than one already seen is treated as the latest one seen.
#[derive(Debug)]
pub struct Monitor {
    pub(crate) settings: Settings,
    pub(crate) service_running: bool,
    /// Set by `shut_down` and by a critical end, never cleared: the service
    /// stays stopped and nothing starts again (implies `!service_running`).
    pub(crate) shut_down: bool,
    pub(crate) now: Instant,
    pub(crate) processes: Slab<Process>,
    /// Added and not removed, by name.
    names: BTreeMap<Box<str>, ProcessKey>,
    /// Added and not removed, in the order they were added.
    add_order: BTreeMap<u64, ProcessKey>,
    /// Removed, but with an instance still alive, by name.
    retiring: BTreeMap<Box<str>, ProcessKey>,
    /// Entries to free at the next mutating call, so keys in drained
    /// commands stay readable while the world carries them out.
    pub(crate) to_free: SmallVec<[ProcessKey; 4]>,
    pub(crate) commands: VecDeque<Command>,
    next_add_seq: u64,
    next_serial: u64,
    pub(crate) live_instances: usize,
    pub(crate) armed_timers: usize,
    pub(crate) stats: Stats,
    /// Whether transitions queue `Report::StateChanged`.
    pub(crate) state_reports: bool,
    /// Processes in `Waiting`, and stops in `Kill::Deferred`: what
    /// [`settle`](Self::settle) has to look at, so that a monitor without
    /// dependencies never looks.
    pub(crate) waiting: usize,
    pub(crate) deferred: usize,
    /// Whether any process (added or removed, still live) has an `after`.
    pub(crate) has_dependencies: bool,
    /// The reverse of every `after`: for each name that some process in
    /// the slab (added, or removed and not yet freed) names in its `after`,
    /// the keys of those processes. Keyed by name, not by key, as `after`
    /// is: a dependency may not be added yet, or be removed and added
    /// again under a new key, and a removed instance still answers to its
    /// name. It is what keeps `has_live_dependents` and `settle` to the
    /// dependents concerned instead of a pass over every process.
    pub(crate) dependents: BTreeMap<Box<str>, SmallVec<[ProcessKey; 2]>>,
    /// Processes whose wait may be over since `settle` last looked: each
    /// that changed state, what waits for it, what it waits for. Every
    /// waiting process or deferred stop that is not in here was found
    /// unable to move and nothing it depends on has changed since, so
    /// `settle` looks only at these. Empty while nothing has an `after`.
    pub(crate) recheck: Vec<ProcessKey>,
    /// The exit code of the first critical process that ended for good.
    pub(crate) critical_exit: Option<u8>,
    /// Whether the monitor finishes when nothing is alive or due.
    container_mode: bool,
}

/// Counters over the monitor's whole life.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Spawns asked of the world.
    pub spawns: u64,
    /// Instances that ended (exits and spawn failures).
    pub exits: u64,
    /// Spawns the world reported as failed.
    pub spawn_failures: u64,
    /// Output lines logged.
    pub log_lines: u64,
    /// Output bytes received from live instances.
    pub output_bytes: u64,
    /// Facts from the world taken in (exits, spawn failures, output chunks,
    /// fired timers), stale ones included.
    pub inputs: u64,
    /// Inputs about instances or timers that no longer mattered.
    pub stale_inputs: u64,
}

/// Counters for one process definition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessStats {
    /// Instances spawned.
    pub spawns: u64,
    /// Instances that ended.
    pub exits: u64,
    /// Spawns that failed.
    pub spawn_failures: u64,
    /// How the last instance that exited ended.
    pub last_exit: Option<ExitStatus>,
    /// Spawns by the restart rules or a retry (not by a request): what
    /// `procmon ctl status` shows as restarts.
    pub restarts: u64,
    /// Output lines logged, partial ones flushed at an exit included.
    pub output_lines: u64,
    /// Output bytes received.
    pub output_bytes: u64,
}

/// Where a process is in its life, as the scenario contract names the
/// states. Derived from the monitor's private state, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcessState {
    /// A live instance that is ready and that the monitor has not sent its
    /// stop signal.
    Running,
    /// A live instance that is not ready yet and that the monitor has not
    /// sent its stop signal.
    Starting,
    /// A live instance that the monitor has sent its stop signal.
    Stopping,
    /// Held down by `down` until `start` or `restart`.
    Held,
    /// Gave up after too many quick deaths, until something starts it.
    Failed,
    /// Ended by itself and its policy restarted nothing.
    Exited,
    /// A restart is pending.
    Backoff,
    /// Due to start, but the conditions of its `after` do not hold yet.
    Waiting,
    /// None of the above: never started, or the service stopped it.
    Stopped,
}

impl ProcessState {
    /// Every state, in the contract's order.
    pub const ALL: [ProcessState; 9] = [
        ProcessState::Running,
        ProcessState::Starting,
        ProcessState::Stopping,
        ProcessState::Held,
        ProcessState::Failed,
        ProcessState::Exited,
        ProcessState::Backoff,
        ProcessState::Waiting,
        ProcessState::Stopped,
    ];

    /// The state's name in the contract: `running`, `stopping`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Running => "running",
            ProcessState::Starting => "starting",
            ProcessState::Stopping => "stopping",
            ProcessState::Held => "held",
            ProcessState::Failed => "failed",
            ProcessState::Exited => "exited",
            ProcessState::Backoff => "backoff",
            ProcessState::Waiting => "waiting",
            ProcessState::Stopped => "stopped",
        }
    }

    /// The state called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<ProcessState> {
        ProcessState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The next thing due for a process, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Due {
    /// What will happen.
    pub action: DueAction,
    /// When.
    pub at: Instant,
}

/// What a process has due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DueAction {
    /// A restart after the backoff delay.
    Restart,
    /// KILL to a stopping instance after its kill time.
    Kill,
    /// Another try of a `failed` process.
    Retry,
    /// The end of a `starting` instance's `ready_timeout`.
    ReadyTimeout,
}

impl DueAction {
    /// `"restart"`, `"kill"` or `"retry"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DueAction::Restart => "restart",
            DueAction::Kill => "kill",
            DueAction::Retry => "retry",
            DueAction::ReadyTimeout => "ready-timeout",
        }
    }
}

/// What the monitor knows about one added process, from [`Monitor::status`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProcessStatus<'a> {
    /// The process's key.
    pub key: ProcessKey,
    /// Its name.
    pub name: &'a str,
    /// Its definition.
    pub spec: &'a ProcessSpec,
    /// Where it is in its life. While a removed instance of the same name
    /// is still alive, that instance's state (`stopping`).
    pub state: ProcessState,
    /// The live instance of this name, if any. While a removed instance of
    /// the same name is still alive, that one.
    pub instance: Option<InstanceId>,
    /// When the current or last instance of this name was spawned.
    pub started_at: Option<Instant>,
    /// The delay the next quick death will wait.
    pub delay: Duration,
    /// Quick deaths in a row.
    pub quick_deaths: u32,
    /// What is due next (restart, KILL or retry) and when.
    pub next: Option<Due>,
    /// Whether the monitor means it to be running: the service runs and it
    /// is not held (nor on its way to it) and not `exited`. A process that
    /// is wanted up but not `running` is what a liveness check fails on.
    pub wanted_up: bool,
    /// While `waiting`, the first dependency whose condition does not hold.
    pub waiting_for: Option<&'a Dependency>,
    /// Whether the monitor will bring it up without an operator's request
    /// (`start`, `restart`, `start-service`, a reload). The one rule for
    /// "it will not come by itself", in the status, the status table and
    /// [`Monitor::is_started_up`] alike. False when nothing will start an
    /// instance until someone asks:
    ///
    /// - `held`, or stopping into a hold (`down`);
    /// - `exited`: an `exited` process that completed meets every
    ///   condition, so it is never what a process waits for; one that
    ///   exited without a success is a stuck dependency;
    /// - `failed`, even with a retry due: a retry after giving up
    ///   (`retry_failed_after`) comes long after, if it works at all, and
    ///   neither a dependent's wait nor procmon's own start-up should be
    ///   read as waiting for it;
    /// - `stopped`, unless it only waits for its name's removed instance
    ///   to end while the service runs;
    /// - stopping while the service is stopped: it ends `stopped`;
    /// - `waiting` for a dependency that is not defined or does not come
    ///   up by itself. The rule is transitive: waiting for a process that
    ///   waits in vain is waiting in vain, so a stack whose bottom failed
    ///   reads stuck all the way up.
    ///
    /// Anything else comes up by itself: a live instance (its end, if any,
    /// is for the restart rules), a pending restart. So for a
    /// `waiting` process, `false` says that [`waiting_for`](Self::waiting_for)
    /// is stuck and it may wait for ever.
    pub comes_up_by_itself: bool,
    /// Whether an instance has been ready since the process was added.
    pub ever_ready: bool,
    /// Counters for this definition.
    pub stats: &'a ProcessStats,
}

impl ProcessStatus<'_> {
    /// Whether the name has a live instance.
    pub fn is_running(&self) -> bool {
        self.instance.is_some()
    }

    /// Whether a KILL is scheduled for the live instance.
    pub fn kill_pending(&self) -> bool {
        self.next.is_some_and(|d| d.action == DueAction::Kill)
    }

    /// Whether a restart is scheduled.
    pub fn restart_pending(&self) -> bool {
        self.next.is_some_and(|d| d.action == DueAction::Restart)
    }
}

impl Monitor {
    /// A monitor with these settings, the service not yet started.
    pub fn new(settings: Settings) -> Result<Self, SettingsError> {
        settings.validate()?;
        Ok(Monitor {
            settings,
            service_running: false,
            shut_down: false,
            now: Instant::ZERO,
            processes: Slab::new(),
            names: BTreeMap::new(),
            add_order: BTreeMap::new(),
            retiring: BTreeMap::new(),
            to_free: SmallVec::new(),
            commands: VecDeque::new(),
            next_add_seq: 0,
            next_serial: 0,
            live_instances: 0,
            armed_timers: 0,
            stats: Stats::default(),
            state_reports: false,
            waiting: 0,
            deferred: 0,
            has_dependencies: false,
            dependents: BTreeMap::new(),
            recheck: Vec::new(),
            critical_exit: None,
            container_mode: false,
        })
    }

    /// A fresh monitor with these definitions: every process added, the
    /// service not started, no runtime state carried over.
    pub fn from_definitions(definitions: Definitions) -> Result<Self, DefinitionsError> {
        definitions.check()?;
        let mut monitor = Monitor::new(definitions.settings).map_err(DefinitionsError::Settings)?;
        for (name, spec) in definitions.processes {
            // `check` has done what `add` checks, for the whole set at once;
            // `add`'s own cycle search from every name would make a long
            // chain of `after` cost its length squared.
            monitor.add_checked(&name, spec);
            monitor.settle();
        }
        Ok(monitor)
    }

    /// The settings and process definitions, in add order, as a plain value.
    pub fn definitions(&self) -> Definitions {
        Definitions {
            settings: self.settings.clone(),
            processes: self
                .processes_in_order()
                .map(|(name, spec)| (name.to_string(), spec.clone()))
                .collect(),
        }
    }

    // ----- A. Settings -----

    /// Sets the threshold below which a life counts as an instant death.
    pub fn set_threshold(&mut self, threshold: Duration) {
        self.settings.threshold = threshold;
    }

    /// Sets the time between TERM and KILL for stops that start from now on.
    pub fn set_kill_time(&mut self, kill_time: Duration) {
        self.settings.kill_time = kill_time;
    }

    /// Sets the first backoff delay; refused if above the maximum, or if it
    /// would leave a process that inherits it with its minimum above its
    /// own maximum. Processes added earlier keep their current delay until
    /// it resets.
    pub fn set_min_restart_delay(&mut self, delay: Duration) -> Result<(), SettingsError> {
        let settings = Settings {
            min_restart_delay: delay,
            ..self.settings.clone()
        };
        self.replace_settings(settings)
    }

    /// Sets the cap on the backoff delay; refused if below the minimum, or
    /// if it would leave a process that inherits it with its minimum above
    /// it.
    pub fn set_max_restart_delay(&mut self, delay: Duration) -> Result<(), SettingsError> {
        let settings = Settings {
            max_restart_delay: delay,
            ..self.settings.clone()
        };
        self.replace_settings(settings)
    }

    /// Sets the longest line before output is logged in pieces; refused if
    /// 0 or above [`MAX_LINE_LIMIT_BYTES`](crate::MAX_LINE_LIMIT_BYTES).
    pub fn set_line_limit_bytes(&mut self, limit: usize) -> Result<(), SettingsError> {
        check_line_limit(limit)?;
        self.settings.line_limit_bytes = limit;
        Ok(())
    }

    /// Takes `settings` if they are valid and every added process's
    /// effective delays still make sense under them.
    fn replace_settings(&mut self, settings: Settings) -> Result<(), SettingsError> {
        settings.validate()?;
        for key in self.add_order.values() {
            let process = &self.processes[key.index()];
            if let Err(SettingsError::MinAboveMax { min, max }) =
                process.spec.policy.check(&settings)
            {
                return Err(SettingsError::ProcessMinAboveMax {
                    name: process.name.to_string(),
                    min,
                    max,
                });
            }
        }
        self.settings = settings;
        Ok(())
    }

    /// Whether every change of a name's state is reported
    /// ([`Report::StateChanged`](crate::Report::StateChanged)); off by
    /// default. A watcher (`procmon ctl watch`) needs them; a monitor nobody
    /// watches saves their cost, two more commands per restart cycle.
    pub fn report_state_changes(&mut self, on: bool) {
        self.state_reports = on;
    }

    /// Container mode: the monitor finishes ([`finished`](Self::finished))
    /// as soon as nothing is alive and nothing is due, with an exit code
    /// that says whether everything ended well. Off by default: a monitor
    /// with nothing left to do waits for requests.
    pub fn set_container_mode(&mut self, on: bool) {
        self.container_mode = on;
    }

    // ----- A. Application calls -----

    /// Adds a process. If the service runs it starts at once, unless a
    /// removed instance of the same name is still alive: then it starts
    /// (through a zero-delay restart) when that one has exited; or unless
    /// the conditions of its `after` do not hold: then it waits for them.
    /// A name in `after` that is not added yet is allowed (the process
    /// waits for it); one that would close a cycle is refused.
    ///
    /// May queue: `Spawn`.
    pub fn add(
        &mut self,
        now: Instant,
        name: &str,
        spec: ProcessSpec,
    ) -> Result<ProcessKey, AddError> {
        self.begin(now);
        spec.check(name)?;
        spec.policy
            .check(&self.settings)
            .map_err(|error| AddError::Policy {
                name: name.to_string(),
                error,
            })?;
        if self.names.contains_key(name) {
            return Err(AddError::DuplicateName {
                name: name.to_string(),
            });
        }
        if let Some(cycle) = self.cycle_through(name, &spec) {
            return Err(AddError::DependencyCycle {
                name: name.to_string(),
                cycle,
            });
        }
        let key = self.add_checked(name, spec);
        self.settle();
        Ok(key)
    }

    /// The cycle that adding `name` with `spec` would close, if any:
    /// `[name, a, b, name]`. At most one search of what `name` reaches.
    fn cycle_through(&self, name: &str, spec: &ProcessSpec) -> Option<Vec<String>> {
        // A cycle through `name` ends in an added process that names it in
        // its `after`, and every such process is in the reverse index (as
        // are removed ones not yet freed: a few searches too many, never
        // one too few). Usually nobody waits for a new name, and adding
        // the next link of a long chain then costs no search.
        if !self.dependents.contains_key(name) {
            return None;
        }
        let after_of = |n: &str| -> Option<&[Dependency]> {
            if n == name {
                Some(&spec.after)
            } else {
                self.key(n)
                    .map(|k| &self.processes[k.index()].spec.after[..])
            }
        };
        crate::cycle::find_cycle(name, after_of)
    }

    /// `add` after its checks.
    pub(crate) fn add_checked(&mut self, name: &str, spec: ProcessSpec) -> ProcessKey {
        let add_seq = self.next_add_seq;
        self.next_add_seq += 1;
        let delay = spec.policy.min_restart_delay(&self.settings);
        let entry = self.processes.vacant_entry();
        let key = ProcessKey(u32::try_from(entry.key()).expect("fewer than 2^32 processes"));
        entry.insert(Process {
            name: name.into(),
            spec,
            add_seq,
            life: Life::Stopped,
            delay,
            quick_deaths: 0,
            last_started: None,
            ever_ready: false,
            completed: false,
            ended_ok: true,
            stats: ProcessStats::default(),
        });
        if !self.processes[key.index()].spec.after.is_empty() {
            self.has_dependencies = true;
        }
        self.index_dependencies(key);
        self.names.insert(name.into(), key);
        self.add_order.insert(add_seq, key);
        if self.has_dependencies {
            // A new name may meet a condition, and a new waiter be due.
            self.mark_changed(key);
        }
        if self.service_running {
            self.transition(key, Event::ServiceStart);
        }
        key
    }

    /// Stops the process and forgets it: a pending restart or retry is
    /// cancelled and the name is free at once. A live instance gets its
    /// stop signal (then KILL after the kill time) and is still reported on
    /// until it exits; while a live instance of another process names this
    /// one in its `after`, the stop signal waits until those have ended.
    ///
    /// May queue: `CancelTimer`, `Signal`, `SetTimer`.
    pub fn remove(&mut self, now: Instant, name: &str) -> Result<(), UnknownProcess> {
        self.begin(now);
        self.remove_checked(name)
    }

    /// `remove` after the clock.
    pub(crate) fn remove_checked(&mut self, name: &str) -> Result<(), UnknownProcess> {
        let key = self.names.remove(name).ok_or_else(|| unknown(name))?;
        let add_seq = self.processes[key.index()].add_seq;
        self.add_order.remove(&add_seq);
        self.transition(key, Event::Remove);
        if self.processes[key.index()].life.instance().is_some() {
            self.retiring.insert(name.into(), key);
        }
        // Whatever waited for it now waits for a name that is not there,
        // and whatever it waited for may now stop.
        self.settle();
        Ok(())
    }

    /// Starts the process now if its name has no live instance, cancelling
    /// a pending restart or retry. Lifts a hold and the `failed` and
    /// `exited` states, and sets the quick-death count to 0. Works whether
    /// or not the service runs. A stop that a service stop holds back for
    /// live dependents is called off: a ready instance runs on; one not
    /// ready yet is stopped now, and starts again at its end if the service
    /// runs then (as an instance `start` finds stopping does).
    ///
    /// Refused after [`shut_down`](Self::shut_down).
    ///
    /// May queue: `CancelTimer`, `Spawn`, `Signal`, `SetTimer`.
    pub fn start(&mut self, now: Instant, name: &str) -> Result<(), StartError> {
        self.starting_request(now, name, Event::Start)
    }

    /// Sends the stop signal to the live instance and schedules KILL after
    /// the kill time. Does nothing if nothing runs or it was already sent.
    /// While the service runs, the instance comes back by the usual restart
    /// rules.
    ///
    /// May queue: `Signal`, `SetTimer`.
    pub fn stop(&mut self, now: Instant, name: &str) -> Result<(), UnknownProcess> {
        self.request(now, name, Event::Stop)
    }

    /// Holds the process down: stops its live instance (stop signal, KILL
    /// after the kill time) and starts nothing for it (no restart, no retry,
    /// not at `start_service` or `restart_all`) until [`start`](Self::start)
    /// or [`restart`](Self::restart).
    ///
    /// May queue: `CancelTimer`, `Signal`, `SetTimer`.
    pub fn down(&mut self, now: Instant, name: &str) -> Result<(), UnknownProcess> {
        self.request(now, name, Event::Down)
    }

    /// Restarts the process at once: a live instance is stopped and the
    /// process starts again as soon as it has exited (while the service
    /// runs); with no live instance it starts now. Lifts a hold and the
    /// `failed` and `exited` states, resets the delay to the minimum and the
    /// quick-death count to 0.
    ///
    /// Refused after [`shut_down`](Self::shut_down).
    ///
    /// May queue: `CancelTimer`, `Signal`, `SetTimer`, `Spawn`.
    pub fn restart(&mut self, now: Instant, name: &str) -> Result<(), StartError> {
        self.starting_request(now, name, Event::Restart)
    }

    /// Sends `signal` to the live instance of `name` (a removed one of the
    /// same name included). It is no stop request: if the instance then
    /// ends, it ended by itself.
    ///
    /// May queue: `Signal`.
    pub fn signal(&mut self, now: Instant, name: &str, signal: Signal) -> Result<(), SignalError> {
        self.begin(now);
        if !self.names.contains_key(name) {
            return Err(SignalError::Unknown(unknown(name)));
        }
        let Some(instance) = self.live_instance(name) else {
            return Err(SignalError::NotRunning {
                name: name.to_string(),
            });
        };
        let key = ProcessKey(instance.slot);
        self.send(key, instance, signal, SignalReason::Request);
        Ok(())
    }

    /// Stops every process, in add order; each comes back by the restart
    /// rules while the service runs.
    ///
    /// May queue: `Signal`, `SetTimer`.
    pub fn restart_all(&mut self, now: Instant) {
        self.begin(now);
        for key in self.keys_in_order() {
            self.transition(key, Event::Stop);
        }
        self.settle();
    }

    /// Starts the service: every process that is not held and has no live
    /// instance starts now, in add order, and processes are restarted when
    /// they die. A stop that a service stop still holds back for live
    /// dependents is called off, as nothing was sent: a ready instance runs
    /// on, one not ready yet is restarted (readiness facts about a stopping
    /// instance are dropped, so only a new one can tell).
    ///
    /// Refused after [`shut_down`](Self::shut_down).
    ///
    /// May queue: `CancelTimer`, `Spawn`, `Signal`, `SetTimer`.
    pub fn start_service(&mut self, now: Instant) -> Result<(), ShutDown> {
        self.begin(now);
        if self.shut_down {
            return Err(ShutDown);
        }
        self.service_running = true;
        // Held-back stops are called off first, so that a process added
        // before its dependency finds it running again, not stopping, and
        // starts rather than reporting that it waits. The second pass
        // leaves those alone (a `running` or restarting instance takes no
        // `ServiceStart`).
        if self.deferred > 0 {
            for key in self.keys_in_order() {
                if self.processes[key.index()].life.is_deferred_stop() {
                    self.transition(key, Event::ServiceStart);
                }
            }
        }
        for key in self.keys_in_order() {
            self.transition(key, Event::ServiceStart);
        }
        self.settle();
        Ok(())
    }

    /// Stops the service: every pending restart and retry is cancelled and
    /// every process stopped, in add order, except that a process gets its
    /// stop signal only once every live instance that names it in its
    /// `after` has ended (dependents first). Nothing restarts until the
    /// service starts again.
    ///
    /// May queue: `CancelTimer`, `Signal`, `SetTimer`.
    pub fn stop_service(&mut self, now: Instant) {
        self.begin(now);
        self.stop_service_now();
        self.settle();
    }

    /// Stops the service for good: as [`stop_service`](Self::stop_service),
    /// and from now on the monitor starts nothing: `start`, `restart`,
    /// `start_service` and `reload` are refused ([`ShutDown`]), while
    /// requests that stop or signal, and `kill_all`, are still taken. What
    /// a supervisor does when it is told to end: the run is over once
    /// [`is_quiescent`](Self::is_quiescent), and a start in between would
    /// keep it from ending with nothing left to stop it. A critical end
    /// shuts the monitor down too.
    ///
    /// May queue: `CancelTimer`, `Signal`, `SetTimer`.
    pub fn shut_down(&mut self, now: Instant) {
        self.begin(now);
        self.shut_down = true;
        self.stop_service_now();
        self.settle();
    }

    /// Whether the monitor was shut down ([`shut_down`](Self::shut_down) or
    /// a critical end): it starts nothing more.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// `stop_service` after the clock: also what a critical end does.
    pub(crate) fn stop_service_now(&mut self) {
        self.service_running = false;
        for key in self.keys_in_order() {
            self.transition(key, Event::ServiceStop);
        }
    }

    /// Stops the service and sends KILL to every live instance at once,
    /// removed ones included, cancelling their KILL timers: the second
    /// Ctrl-C. Nothing is left armed behind the monitor's back.
    ///
    /// May queue: `CancelTimer`, `Signal`, `SetTimer`.
    pub fn kill_all(&mut self, now: Instant) {
        self.begin(now);
        self.service_running = false;
        for key in self.keys_in_order() {
            self.transition(key, Event::KillAll);
        }
        let retiring: SmallVec<[ProcessKey; 16]> = self.retiring.values().copied().collect();
        for key in retiring {
            self.transition(key, Event::KillAll);
        }
        self.settle();
    }

    // ----- B. Facts from the world -----

    /// Takes in one fact from the world. Facts about instances that are not
    /// live, or timers that are not armed, are counted and ignored.
    ///
    /// May queue any command.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        self.begin(now);
        self.stats.inputs += 1;
        match input {
            Input::Output {
                instance,
                stream,
                bytes,
            } => {
                if let Some(key) = self.split_output(instance, stream, bytes, queue_line) {
                    self.transition(key, Event::Ready);
                }
            }
            Input::Exited { instance, status } => {
                self.instance_ended(instance, End::Exited(status));
            }
            Input::SpawnFailed { instance, errno } => {
                self.instance_ended(instance, End::SpawnFailed(errno));
            }
            Input::TimerFired { timer } => self.handle_timer(timer),
            Input::Ready { instance } => match self.live_key(instance) {
                Some(key) => self.transition(key, Event::Ready),
                None => self.stats.stale_inputs += 1,
            },
            Input::NotReady { instance } => match self.live_key(instance) {
                Some(key) => self.transition(key, Event::NotReady),
                None => self.stats.stale_inputs += 1,
            },
        }
        self.settle();
    }

    /// Takes in output of a live instance, like `handle` with
    /// [`Input::Output`], but gives each line it completes to `on_line` at
    /// once instead of queueing a [`Command::Log`] with a copy of it. A line
    /// that lies wholly inside `bytes` is lent straight from them, so a driver
    /// can log a flood without copying or allocating per line.
    ///
    /// If commands from an earlier call are still queued (the drain contract
    /// was not kept: debug builds panic on that in every call), a release
    /// build queues the lines behind them instead and does not call
    /// `on_line`, so the world still sees everything in order.
    ///
    /// May queue: `Log`; and when a line makes a `starting` instance ready
    /// ([`Readiness::LogLine`](crate::Readiness::LogLine)), what readiness
    /// leads to (a report, a cancelled timer, spawns of waiting processes).
    pub fn handle_output(
        &mut self,
        now: Instant,
        instance: InstanceId,
        stream: Stream,
        bytes: &[u8],
        mut on_line: impl FnMut(LogLineRef<'_>),
    ) {
        self.begin(now);
        self.stats.inputs += 1;
        let ready = if self.commands.is_empty() {
            self.split_output(instance, stream, bytes, |_, line| on_line(line))
        } else {
            self.split_output(instance, stream, bytes, queue_line)
        };
        if let Some(key) = ready {
            self.transition(key, Event::Ready);
            self.settle();
        }
    }

    // ----- C. Work for the world -----

    /// The next command for the world, or `None` when there is nothing to do.
    /// Drain it after every A or B call (see the type's docs).
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    // ----- D. Queries -----

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the service runs (processes are restarted when they die).
    pub fn is_service_running(&self) -> bool {
        self.service_running
    }

    /// The key of an added process.
    pub fn key(&self, name: &str) -> Option<ProcessKey> {
        self.names.get(name).copied()
    }

    /// The name of a process; see [`Command`] for how long keys stay valid.
    pub fn name(&self, key: ProcessKey) -> Option<&str> {
        self.processes.get(key.index()).map(|p| &*p.name)
    }

    /// The definition of a process, for carrying out `Spawn`.
    pub fn spec(&self, key: ProcessKey) -> Option<&ProcessSpec> {
        self.processes.get(key.index()).map(|p| &p.spec)
    }

    /// What the monitor knows of an added process.
    pub fn status(&self, name: &str) -> Option<ProcessStatus<'_>> {
        self.key(name).map(|key| self.status_of(key))
    }

    /// What the monitor knows of every added process, in add order: one
    /// pass over them.
    pub fn statuses(&self) -> impl Iterator<Item = ProcessStatus<'_>> + '_ {
        self.add_order.values().map(|&key| self.status_of(key))
    }

    /// The process that speaks for the name of `key`: its removed
    /// predecessor while that one lives and `key` waits for it, else itself.
    fn speaking(&self, key: ProcessKey) -> &Process {
        let process = &self.processes[key.index()];
        match process.life {
            Life::Stopped | Life::Held if !self.retiring.is_empty() => self
                .retiring
                .get(&process.name)
                .map_or(process, |&k| &self.processes[k.index()]),
            _ => process,
        }
    }

    /// The contract's state of the name of `key`.
    pub(crate) fn public_state(&self, key: ProcessKey) -> ProcessState {
        let process = &self.processes[key.index()];
        match (&self.speaking(key).life, &process.life) {
            (Life::Running(_), _) => ProcessState::Running,
            (Life::Starting { .. }, _) => ProcessState::Starting,
            (Life::Stopping { .. }, _) => ProcessState::Stopping,
            (_, Life::Held) => ProcessState::Held,
            (_, Life::Failed { .. }) => ProcessState::Failed,
            (_, Life::Exited) => ProcessState::Exited,
            (_, Life::Backoff(_)) => ProcessState::Backoff,
            (_, Life::Waiting) => ProcessState::Waiting,
            (
                _,
                Life::Stopped
                | Life::Removed
                | Life::Starting { .. }
                | Life::Running(_)
                | Life::Stopping { .. },
            ) => ProcessState::Stopped,
        }
    }

    fn status_of(&self, key: ProcessKey) -> ProcessStatus<'_> {
        let process = &self.processes[key.index()];
        let speaking = self.speaking(key);
        let state = self.public_state(key);
        let next = speaking.life.armed().map(|(kind, armed)| Due {
            action: match kind {
                TimerKind::Kill => DueAction::Kill,
                TimerKind::Restart => DueAction::Restart,
                TimerKind::Retry => DueAction::Retry,
                TimerKind::Ready => DueAction::ReadyTimeout,
            },
            at: armed.at,
        });
        let wanted_up = self.service_running
            && !matches!(
                process.life,
                Life::Held
                    | Life::Exited
                    | Life::Stopping {
                        then: crate::life::Then::Hold,
                        ..
                    }
            );
        ProcessStatus {
            key,
            wanted_up,
            name: &process.name,
            spec: &process.spec,
            state,
            waiting_for: match process.life {
                Life::Waiting => self.unmet_dependency(key),
                _ => None,
            },
            comes_up_by_itself: self.comes_up_by_itself(key),
            ever_ready: process.ever_ready,
            instance: speaking.life.instance().map(|i| i.id),
            started_at: speaking.last_started.or(process.last_started),
            delay: process.delay,
            quick_deaths: process.quick_deaths,
            next,
            stats: &process.stats,
        }
    }

    /// Whether `name` has a live instance, counting a removed one that has
    /// not exited yet.
    pub fn is_live(&self, name: &str) -> bool {
        self.live_instance(name).is_some()
    }

    /// The live instance of `name`, counting a removed one not yet exited.
    pub fn live_instance(&self, name: &str) -> Option<InstanceId> {
        let own = self
            .key(name)
            .and_then(|k| self.processes[k.index()].life.instance());
        let retiring = self
            .retiring
            .get(name)
            .and_then(|k| self.processes[k.index()].life.instance());
        own.or(retiring).map(|i| i.id)
    }

    /// How many processes are added and not removed.
    pub fn monitored(&self) -> usize {
        self.names.len()
    }

    /// How many instances are alive, removed ones included.
    pub fn live_instances(&self) -> usize {
        self.live_instances
    }

    /// How many timers the world should be holding for the monitor.
    pub fn armed_timers(&self) -> usize {
        self.armed_timers
    }

    /// Whether nothing is alive and nothing is scheduled: after
    /// `shut_down`, the moment a driver may exit.
    pub fn is_quiescent(&self) -> bool {
        self.live_instances == 0 && self.armed_timers == 0
    }

    /// Whether the monitor's work is done, and the exit code to finish
    /// with: after a critical process ended for good, once nothing is
    /// alive; in container mode, once nothing is alive and nothing is due
    /// (no restart, retry or KILL pending; a process still waiting then
    /// waits in vain). `None` while there is work left, and outside
    /// container mode without a critical end.
    pub fn finished(&self) -> Option<u8> {
        if !self.is_quiescent() || !(self.container_mode || self.critical_exit.is_some()) {
            return None;
        }
        Some(self.exit_code())
    }

    /// The exit code the monitor's run deserves now: a critical process's
    /// (see [`Policy::critical`](crate::Policy::critical)); else 0 when
    /// every added process's last end was a success or on request and none
    /// is `failed` or `waiting`, and 1 if not.
    pub fn exit_code(&self) -> u8 {
        if let Some(code) = self.critical_exit {
            return code;
        }
        let all_well = self.add_order.values().all(|&key| {
            let process = &self.processes[key.index()];
            process.ended_ok && !matches!(process.life, Life::Failed { .. } | Life::Waiting)
        });
        if all_well {
            0
        } else {
            1
        }
    }

    /// Whether every added process has come up as far as it will: ready at
    /// least once since it was added, or not coming up by itself
    /// ([`ProcessStatus::comes_up_by_itself`]: `held`, `exited`, `stopped`,
    /// `failed`, or waiting, however indirectly, for a process that is one
    /// of those or not defined). What a supervisor's own readiness
    /// (`READY=1` to its service manager) waits for.
    pub fn is_started_up(&self) -> bool {
        self.add_order
            .values()
            .all(|&key| self.processes[key.index()].ever_ready || !self.comes_up_by_itself(key))
    }

    /// Counters over the monitor's life.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The added processes and their definitions, in add order.
    pub fn processes_in_order(&self) -> impl Iterator<Item = (&str, &ProcessSpec)> + '_ {
        self.add_order.values().map(|k| {
            let p = &self.processes[k.index()];
            (&*p.name, &p.spec)
        })
    }

    // ----- Internals -----

    /// Common entry of every mutating call: the clock, and deferred frees.
    pub(crate) fn begin(&mut self, now: Instant) {
        debug_assert!(self.commands.is_empty(), "commands were not drained");
        if now > self.now {
            self.now = now;
        }
        // Checked first: a drain of an empty SmallVec still costs its setup,
        // on every call.
        if !self.to_free.is_empty() {
            let mut to_free = mem::take(&mut self.to_free);
            for key in to_free.drain(..) {
                self.unindex_dependencies(key);
                let process = self.processes.remove(key.index());
                debug_assert!(matches!(process.life, Life::Removed));
            }
            // The buffer goes back, so that freeing allocates nothing.
            self.to_free = to_free;
        }
    }

    /// A request by name, applied as one event of the process's life.
    /// A request that can start the process: refused once shut down.
    fn starting_request(
        &mut self,
        now: Instant,
        name: &str,
        event: Event,
    ) -> Result<(), StartError> {
        self.begin(now);
        let key = self
            .key(name)
            .ok_or_else(|| StartError::Unknown(unknown(name)))?;
        if self.shut_down {
            return Err(StartError::ShutDown(ShutDown));
        }
        self.transition(key, event);
        self.settle();
        Ok(())
    }

    fn request(&mut self, now: Instant, name: &str, event: Event) -> Result<(), UnknownProcess> {
        self.begin(now);
        let key = self.key(name).ok_or_else(|| unknown(name))?;
        self.transition(key, event);
        self.settle();
        Ok(())
    }

    pub(crate) fn process_mut(&mut self, key: ProcessKey) -> &mut Process {
        &mut self.processes[key.index()]
    }

    /// Enters `key` in [`dependents`](Self::dependents) under every name of
    /// its `after`; when it is added, or its definition replaced.
    pub(crate) fn index_dependencies(&mut self, key: ProcessKey) {
        let Monitor {
            processes,
            dependents,
            ..
        } = self;
        for dependency in &processes[key.index()].spec.after {
            let keys = dependents
                .entry(dependency.name.as_str().into())
                .or_default();
            debug_assert!(!keys.contains(&key), "indexed once per definition");
            keys.push(key);
        }
    }

    /// Takes `key` out of [`dependents`](Self::dependents); when its entry
    /// is freed, or before its definition is replaced.
    pub(crate) fn unindex_dependencies(&mut self, key: ProcessKey) {
        let Monitor {
            processes,
            dependents,
            ..
        } = self;
        for dependency in &processes[key.index()].spec.after {
            let name: &str = &dependency.name;
            let keys = dependents.get_mut(name).expect("indexed when added");
            let at = keys
                .iter()
                .position(|&k| k == key)
                .expect("indexed when added");
            keys.swap_remove(at);
            if keys.is_empty() {
                dependents.remove(name);
            }
        }
    }

    /// Notes for [`settle`](Self::settle) that `key` changes: it may now
    /// wait or defer its stop, what waits for its name may now start, and
    /// a deferred stop of what it waits for may now go. Only while some
    /// process has an `after`: without one nothing waits or defers.
    #[inline(never)]
    pub(crate) fn mark_changed(&mut self, key: ProcessKey) {
        let Monitor {
            processes,
            dependents,
            names,
            retiring,
            recheck,
            ..
        } = self;
        let process = &processes[key.index()];
        recheck.push(key);
        if let Some(keys) = dependents.get(&process.name) {
            recheck.extend_from_slice(keys);
        }
        for dependency in &process.spec.after {
            let name: &str = &dependency.name;
            recheck.extend(names.get(name).copied());
            if !retiring.is_empty() {
                recheck.extend(retiring.get(name).copied());
            }
        }
    }

    fn keys_in_order(&self) -> SmallVec<[ProcessKey; 16]> {
        self.add_order.values().copied().collect()
    }

    /// Whether a removed instance of the name of `key` is still alive: the
    /// name never has two live instances, so `key` waits for it.
    pub(crate) fn predecessor_lives(&self, key: ProcessKey) -> bool {
        !self.retiring.is_empty()
            && self
                .retiring
                .get(&self.processes[key.index()].name)
                .is_some_and(|&k| k != key)
    }

    /// A removed instance has ended: free its entry, and let a definition
    /// added again under its name start.
    pub(crate) fn forget_retired(&mut self, key: ProcessKey) {
        let process = &self.processes[key.index()];
        let name = process.name.clone();
        let last_started = process.last_started;
        self.retiring.remove(&name);
        self.to_free.push(key);
        if let Some(successor) = self.key(&name) {
            // The name read as this instance's `stopping` until now (its own
            // life is out for the transition, so it cannot be asked).
            let before = ProcessState::Stopping;
            let successor_process = self.process_mut(successor);
            if successor_process.last_started.is_none() {
                successor_process.last_started = last_started;
            }
            self.apply(successor, Event::PredecessorGone);
            if self.state_reports {
                self.report_state_change(successor, before);
            }
        }
    }

    fn live_key(&self, instance: InstanceId) -> Option<ProcessKey> {
        let process = self.processes.get(instance.slot as usize)?;
        let live = process.life.instance()?;
        (live.id == instance).then_some(ProcessKey(instance.slot))
    }

    pub(crate) fn next_serial(&mut self) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        serial
    }

    /// Splits output of a live instance into lines and gives each to
    /// `deliver`, with the command queue so that it can queue the line.
    /// Returns the process when a line made its `starting` instance ready
    /// (the caller makes the transition, once the lines are out).
    fn split_output(
        &mut self,
        instance: InstanceId,
        stream: Stream,
        bytes: &[u8],
        mut deliver: impl FnMut(&mut VecDeque<Command>, LogLineRef<'_>),
    ) -> Option<ProcessKey> {
        let Some(key) = self.live_key(instance) else {
            self.stats.stale_inputs += 1;
            return None;
        };
        let Monitor {
            processes,
            commands,
            stats,
            settings,
            ..
        } = self;
        let Process {
            life,
            spec,
            stats: process_stats,
            ..
        } = &mut processes[key.index()];
        // Only a starting instance that waits for a line looks at lines.
        let needle = match (&*life, &spec.ready) {
            (Life::Starting { .. }, Readiness::LogLine(text)) => Some(&text[..]),
            _ => None,
        };
        let live = life.instance_mut().expect("live_key checked it");
        let buffer = match stream {
            Stream::Stdout => &mut live.stdout,
            Stream::Stderr => &mut live.stderr,
        };
        stats.output_bytes += bytes.len() as u64;
        process_stats.output_bytes += bytes.len() as u64;
        // Counted here and added once: `deliver` is opaque, so counters
        // behind references would be stored on every line.
        let mut lines = 0u64;
        let mut line_out = |line: &[u8]| {
            lines += 1;
            deliver(
                commands,
                LogLineRef {
                    process: key,
                    instance,
                    stream,
                    bytes: line,
                },
            );
        };
        let limit = settings.line_limit_bytes;
        // Two loops, so that the usual one looks at no line's content.
        let mut ready = false;
        match needle {
            None => buffer.push(bytes, limit, line_out),
            Some(needle) => buffer.push(bytes, limit, |line| {
                ready = ready || contains(line, needle);
                line_out(line);
            }),
        }
        stats.log_lines += lines;
        process_stats.output_lines += lines;
        ready.then_some(key)
    }

    fn handle_timer(&mut self, timer: TimerId) {
        let key = ProcessKey(timer.slot);
        let armed = self
            .processes
            .get(key.index())
            .and_then(|p| p.life.armed())
            .filter(|(_, armed)| armed.timer == timer);
        let Some((kind, _)) = armed else {
            self.stats.stale_inputs += 1;
            return;
        };
        self.armed_timers -= 1;
        let event = match kind {
            TimerKind::Kill => Event::KillDue,
            TimerKind::Restart => Event::RestartDue,
            TimerKind::Retry => Event::RetryDue,
            TimerKind::Ready => Event::ReadyDue,
        };
        self.transition(key, event);
    }

    /// An end reported by the world, if it is about a live instance.
    fn instance_ended(&mut self, instance: InstanceId, end: End) {
        match self.live_key(instance) {
            Some(key) => self.transition(key, Event::Ended(end)),
            None => self.stats.stale_inputs += 1,
        }
    }
}

impl fmt::Display for Monitor {
    /// Lists the processes as Twisted's repr does: `name(uid:gid): [argv]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<ProcessMonitor")?;
        for (name, spec) in self.processes_in_order() {
            write!(f, " {}", ProcessSummary(name, spec))?;
        }
        f.write_str(">")
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn queue_line(commands: &mut VecDeque<Command>, line: LogLineRef<'_>) {
    commands.push_back(Command::Log(line.to_log_line()));
}

fn unknown(name: &str) -> UnknownProcess {
    UnknownProcess {
        name: String::from(name),
    }
}

pub(crate) fn validate(name: &str, spec: &ProcessSpec) -> Result<(), AddError> {
    let owned = || name.to_string();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(AddError::InvalidName { name: owned() });
    }
    if spec.argv.is_empty() {
        return Err(AddError::EmptyArgv { name: owned() });
    }
    if spec.argv[0].is_empty() {
        return Err(AddError::EmptyProgram { name: owned() });
    }
    if spec.cwd.as_ref().is_some_and(|cwd| cwd.is_empty()) {
        return Err(AddError::EmptyCwd { name: owned() });
    }
    let has_nul = |bytes: &Vec<u8>| bytes.contains(&0);
    if spec.argv.iter().any(has_nul) {
        return Err(AddError::NulByte {
            name: owned(),
            field: "argv",
        });
    }
    if spec.env.iter().any(|(k, v)| has_nul(k) || has_nul(v)) {
        return Err(AddError::NulByte {
            name: owned(),
            field: "env",
        });
    }
    if spec.cwd.as_ref().is_some_and(has_nul) {
        return Err(AddError::NulByte {
            name: owned(),
            field: "cwd",
        });
    }
    if spec
        .env
        .iter()
        .any(|(k, _)| k.is_empty() || k.contains(&b'='))
    {
        return Err(AddError::InvalidEnvKey { name: owned() });
    }
    match &spec.ready {
        Readiness::Fd(fd) if !(3..=1023).contains(fd) => {
            return Err(AddError::InvalidReadiness { name: owned() });
        }
        Readiness::LogLine(text) if text.is_empty() => {
            return Err(AddError::InvalidReadiness { name: owned() });
        }
        _ => {}
    }
    for (i, dependency) in spec.after.iter().enumerate() {
        if dependency.name == name || spec.after[..i].iter().any(|d| d.name == dependency.name) {
            return Err(AddError::InvalidDependency {
                name: owned(),
                dependency: dependency.name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    pub(super) fn secs(s: u64) -> Instant {
        Instant::from_nanos(s * 1_000_000_000)
    }

    fn drain(m: &mut Monitor) -> Vec<Command> {
        core::iter::from_fn(|| m.poll_command()).collect()
    }

    pub(super) fn seed_monitor() -> Monitor {
        Monitor::new(Settings {
            threshold: Duration::from_secs(10),
            min_restart_delay: Duration::from_secs(2),
            max_restart_delay: Duration::from_secs(10),
            ..Settings::default()
        })
        .unwrap()
    }

    fn spawned(commands: &[Command]) -> Vec<InstanceId> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Spawn { instance, .. } => Some(*instance),
                _ => None,
            })
            .collect()
    }

    /// `ProcessSpec::check` is `add`'s own rule: whatever one refuses the
    /// other refuses with the same error, and a refusal adds nothing.
    #[test]
    fn check_refuses_exactly_what_add_refuses() {
        let cases = [
            ("", ProcessSpec::new(["true"])),
            ("a\nb", ProcessSpec::new(["true"])),
            ("a", ProcessSpec::new(Vec::<Vec<u8>>::new())),
            ("a", ProcessSpec::new([""])),
            ("a", ProcessSpec::new(["true"]).with_cwd("")),
            ("a", ProcessSpec::new(["true", "x\0y"])),
            ("a", ProcessSpec::new(["true"]).with_env("K=V", "1")),
            ("a", ProcessSpec::new(["true"]).with_env("K", "\0")),
            ("a", ProcessSpec::new(["true", ""]).with_cwd("/")),
        ];
        for (name, spec) in cases {
            let mut m = seed_monitor();
            let checked = spec.check(name);
            let added = m.add(secs(0), name, spec).map(|_| ());
            assert_eq!(checked, added, "{name:?}");
            assert_eq!(m.monitored(), usize::from(added.is_ok()));
        }
    }

    #[test]
    fn definitions_round_trip_without_runtime_state() {
        let mut m = seed_monitor();
        let spec = ProcessSpec::new(["arg1", "arg2"]).with_uid(1).with_gid(2);
        m.add(secs(0), "foo", spec.clone()).unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        let defs = m.definitions();
        assert_eq!(defs.processes, vec![("foo".to_string(), spec)]);
        let copy = Monitor::from_definitions(defs.clone()).unwrap();
        assert!(!copy.is_service_running());
        assert_eq!(copy.live_instances(), 0);
        assert_eq!(copy.definitions(), defs);
        assert_eq!(
            alloc::format!("{copy}"),
            "<ProcessMonitor \"foo\"(1:2): [\"arg1\", \"arg2\"]>"
        );
    }

    #[test]
    fn typed_errors_for_bad_calls() {
        let mut m = seed_monitor();
        m.add(secs(0), "foo", ProcessSpec::new(["foo"])).unwrap();
        assert!(matches!(
            m.add(secs(0), "foo", ProcessSpec::new(["foo"])),
            Err(AddError::DuplicateName { .. })
        ));
        assert!(matches!(
            m.add(secs(0), "bar", ProcessSpec::new(Vec::<Vec<u8>>::new())),
            Err(AddError::EmptyArgv { .. })
        ));
        assert!(matches!(
            m.add(secs(0), "", ProcessSpec::new(["x"])),
            Err(AddError::InvalidName { .. })
        ));
        assert_eq!(
            m.stop(secs(0), "nope"),
            Err(UnknownProcess {
                name: "nope".into()
            })
        );
        assert!(m.start(secs(0), "nope").is_err());
        assert!(m.remove(secs(0), "nope").is_err());
        assert!(m.set_min_restart_delay(Duration::from_secs(11)).is_err());
        assert!(m.set_line_limit_bytes(0).is_err());
    }

    #[test]
    fn stale_inputs_are_ignored() {
        let mut m = seed_monitor();
        m.start_service(secs(0)).unwrap();
        m.add(secs(0), "foo", ProcessSpec::new(["foo"])).unwrap();
        let first = spawned(&drain(&mut m))[0];
        m.handle(
            secs(20),
            Input::Exited {
                instance: first,
                status: ExitStatus::Code(0),
            },
        );
        let cmds = drain(&mut m);
        let timer = cmds
            .iter()
            .find_map(|c| match c {
                Command::SetTimer { timer, .. } => Some(*timer),
                _ => None,
            })
            .unwrap();
        m.handle(secs(20), Input::TimerFired { timer });
        assert_eq!(spawned(&drain(&mut m)).len(), 1);
        // The first instance is gone: all of these are stale.
        m.handle(
            secs(21),
            Input::Exited {
                instance: first,
                status: ExitStatus::Code(0),
            },
        );
        m.handle(
            secs(21),
            Input::Output {
                instance: first,
                stream: Stream::Stdout,
                bytes: b"x\n",
            },
        );
        m.handle(secs(21), Input::TimerFired { timer });
        assert!(drain(&mut m).is_empty());
        assert_eq!(m.stats().stale_inputs, 3);
        assert!(m.status("foo").unwrap().is_running());
    }

    #[test]
    fn lent_lines_are_the_queued_lines() {
        let chunks: [&[u8]; 5] = [b"one\ntw", b"o\n", b"", b"a long line\n\nend", b"ing"];
        let mut queued = seed_monitor();
        let mut lent = seed_monitor();
        queued.set_line_limit_bytes(6).unwrap();
        lent.set_line_limit_bytes(6).unwrap();
        let mut from_queue = Vec::new();
        let mut from_sink = Vec::new();
        for m in [&mut queued, &mut lent] {
            m.start_service(secs(0)).unwrap();
            m.add(secs(0), "foo", ProcessSpec::new(["foo"])).unwrap();
            drain(m);
        }
        let instance = queued.live_instance("foo").unwrap();
        assert_eq!(lent.live_instance("foo"), Some(instance));
        for (i, bytes) in chunks.into_iter().enumerate() {
            let stream = [Stream::Stdout, Stream::Stderr][i % 2];
            let input = Input::Output {
                instance,
                stream,
                bytes,
            };
            queued.handle(secs(1), input);
            from_queue.extend(drain(&mut queued));
            lent.handle_output(secs(1), instance, stream, bytes, |line| {
                from_sink.push(Command::Log(line.to_log_line()))
            });
            assert!(drain(&mut lent).is_empty());
        }
        assert_eq!(from_queue.len(), 5);
        assert_eq!(from_sink, from_queue);
        assert_eq!(lent.stats(), queued.stats());
    }
}

#[cfg(test)]
mod state_change_tests {
    use super::*;
    use crate::command::Report;
    use alloc::vec;

    fn changes(m: &mut Monitor) -> Vec<(ProcessState, ProcessState)> {
        core::iter::from_fn(|| m.poll_command())
            .filter_map(|c| match c {
                Command::Report(Report::StateChanged { from, to, .. }) => Some((from, to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_change_of_a_names_state_is_reported_once() {
        use ProcessState::*;
        let t0 = Instant::ZERO;
        let mut m = Monitor::new(Settings::default()).unwrap();
        m.report_state_changes(true);
        m.add(t0, "a", ProcessSpec::new(["a"])).unwrap();
        assert_eq!(changes(&mut m), vec![]);
        m.start_service(t0).unwrap();
        assert_eq!(changes(&mut m), vec![(Stopped, Running)]);
        m.stop(t0, "a").unwrap();
        assert_eq!(changes(&mut m), vec![(Running, Stopping)]);
        m.stop(t0, "a").unwrap();
        assert_eq!(changes(&mut m), vec![], "nothing new, nothing reported");
        m.remove(t0, "a").unwrap();
        assert_eq!(changes(&mut m), vec![]);
        m.add(t0, "a", ProcessSpec::new(["a2"])).unwrap();
        assert_eq!(changes(&mut m), vec![], "it reads as its predecessor");
        let old = m.live_instance("a").unwrap();
        m.handle(
            t0,
            Input::Exited {
                instance: old,
                status: ExitStatus::Code(0),
            },
        );
        assert_eq!(changes(&mut m), vec![(Stopping, Backoff)]);
        m.down(t0, "a").unwrap();
        assert_eq!(changes(&mut m), vec![(Backoff, Held)]);
    }

    #[test]
    fn output_is_counted_per_process() {
        let t0 = Instant::ZERO;
        let mut m = Monitor::new(Settings::default()).unwrap();
        m.start_service(t0).unwrap();
        m.add(t0, "a", ProcessSpec::new(["a"])).unwrap();
        while m.poll_command().is_some() {}
        let instance = m.live_instance("a").unwrap();
        m.handle_output(t0, instance, Stream::Stdout, b"one\ntwo\npart", |_| {});
        m.handle(
            t0,
            Input::Exited {
                instance,
                status: ExitStatus::Code(0),
            },
        );
        while m.poll_command().is_some() {}
        let stats = m.status("a").unwrap().stats;
        assert_eq!((stats.output_lines, stats.output_bytes), (3, 12));
        assert_eq!(m.stats().inputs, 2);
    }
}

/// The one rule for "a dependency that will not come by itself"
/// ([`ProcessStatus::comes_up_by_itself`]), case by case, and what
/// [`Monitor::is_started_up`] makes of it.
#[cfg(test)]
mod comes_up_by_itself_tests {
    use super::tests::{secs, seed_monitor as monitor};
    use super::*;
    use crate::spec::{Condition, Policy, RestartPolicy};
    use core::num::NonZeroU32;

    fn drain(m: &mut Monitor) {
        while m.poll_command().is_some() {}
    }

    fn exit(m: &mut Monitor, at: Instant, name: &str, code: i32) {
        let instance = m.live_instance(name).expect("a live instance");
        m.handle(
            at,
            Input::Exited {
                instance,
                status: ExitStatus::Code(code),
            },
        );
        drain(m);
    }

    /// A process that is never ready: what waits for it stays `waiting`.
    fn never_ready(argv: &str) -> ProcessSpec {
        ProcessSpec::new([argv]).with_ready(Readiness::LogLine("never".into()))
    }

    fn web_after(name: &str, condition: Condition) -> ProcessSpec {
        ProcessSpec::new(["web"]).with_after(name, condition)
    }

    /// `web` waits for `db`: whether it comes up by itself, as its status
    /// says.
    fn web_comes_up(m: &Monitor) -> bool {
        let web = m.status("web").unwrap();
        assert_eq!(web.state, ProcessState::Waiting);
        web.comes_up_by_itself
    }

    fn gives_up(retry: Option<u64>) -> ProcessSpec {
        never_ready("db").with_policy(Policy {
            give_up_after: NonZeroU32::new(1),
            retry_failed_after: retry.map(Duration::from_secs),
            ..Policy::default()
        })
    }

    #[test]
    fn a_held_dependency_does_not_come_by_itself() {
        let mut m = monitor();
        m.add(secs(0), "db", ProcessSpec::new(["db"])).unwrap();
        m.add(secs(0), "web", web_after("db", Condition::Ready))
            .unwrap();
        m.down(secs(0), "db").unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        assert_eq!(m.status("db").unwrap().state, ProcessState::Held);
        assert!(!m.status("db").unwrap().comes_up_by_itself);
        assert!(!web_comes_up(&m));
        assert!(m.is_started_up(), "nothing more comes by itself");
        m.start(secs(1), "db").unwrap();
        drain(&mut m);
        assert_eq!(m.status("web").unwrap().state, ProcessState::Running);
    }

    #[test]
    fn stopping_into_a_hold_does_not_come_by_itself() {
        let mut m = monitor();
        m.add(secs(0), "db", never_ready("db")).unwrap();
        m.add(secs(0), "web", web_after("db", Condition::Ready))
            .unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        assert!(web_comes_up(&m), "db is starting");
        assert!(!m.is_started_up());
        m.down(secs(1), "db").unwrap();
        drain(&mut m);
        assert_eq!(m.status("db").unwrap().state, ProcessState::Stopping);
        assert!(!web_comes_up(&m), "db ends held");
        assert!(m.is_started_up());
    }

    #[test]
    fn an_exited_dependency_is_stuck_unless_it_completed() {
        let never = |argv: &str| {
            ProcessSpec::new([argv]).with_policy(Policy {
                restart: Some(RestartPolicy::Never),
                ..Policy::default()
            })
        };
        // Exited with a success: `completed` holds, nothing waits.
        let mut m = monitor();
        m.add(secs(0), "db", never("db")).unwrap();
        m.add(secs(0), "web", web_after("db", Condition::Completed))
            .unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        assert!(web_comes_up(&m), "db runs: it may complete");
        exit(&mut m, secs(1), "db", 0);
        assert_eq!(m.status("db").unwrap().state, ProcessState::Exited);
        assert_eq!(m.status("web").unwrap().state, ProcessState::Running);
        assert!(m.status("web").unwrap().waiting_for.is_none());

        // Exited without one: it will not complete by itself.
        let mut m = monitor();
        m.add(secs(0), "db", never("db")).unwrap();
        m.add(secs(0), "web", web_after("db", Condition::Completed))
            .unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        exit(&mut m, secs(1), "db", 1);
        assert_eq!(m.status("db").unwrap().state, ProcessState::Exited);
        assert!(!m.status("db").unwrap().comes_up_by_itself);
        assert!(!web_comes_up(&m));
        assert!(m.is_started_up());
    }

    #[test]
    fn a_stopped_dependency_does_not_come_by_itself() {
        let mut m = monitor();
        m.add(secs(0), "db", ProcessSpec::new(["db"])).unwrap();
        m.add(secs(0), "web", web_after("db", Condition::Started))
            .unwrap();
        // The service is not running: only a request starts db.
        m.start(secs(0), "web").unwrap();
        drain(&mut m);
        assert_eq!(m.status("db").unwrap().state, ProcessState::Stopped);
        assert!(!web_comes_up(&m));
        assert!(m.is_started_up());
    }

    #[test]
    fn a_stopped_definition_waiting_for_its_removed_instance_comes_up() {
        let mut m = monitor();
        m.add(secs(0), "db", ProcessSpec::new(["db"])).unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        m.remove(secs(1), "db").unwrap();
        drain(&mut m);
        m.add(secs(1), "db", never_ready("db2")).unwrap();
        drain(&mut m);
        m.add(secs(1), "web", web_after("db", Condition::Started))
            .unwrap();
        drain(&mut m);
        assert_eq!(m.status("db").unwrap().state, ProcessState::Stopping);
        assert!(m.status("db").unwrap().comes_up_by_itself);
        assert!(web_comes_up(&m));
        assert!(!m.is_started_up());
    }

    /// `db` gives up at its first death (with a retry after `retry`
    /// seconds, or none), `web` waits for it to be ready, and with `api`
    /// `api` waits for `web` to start; `db` has died.
    fn failed_db(retry: Option<u64>, api: bool) -> Monitor {
        let mut m = monitor();
        m.add(secs(0), "db", gives_up(retry)).unwrap();
        m.add(secs(0), "web", web_after("db", Condition::Ready))
            .unwrap();
        if api {
            let spec = ProcessSpec::new(["api"]).with_after("web", Condition::Started);
            m.add(secs(0), "api", spec).unwrap();
        }
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        exit(&mut m, secs(1), "db", 1);
        m
    }

    #[test]
    fn a_failed_dependency_is_stuck_even_with_a_retry_due() {
        for retry in [None, Some(60)] {
            let m = failed_db(retry, false);
            let db = m.status("db").unwrap();
            assert_eq!(db.state, ProcessState::Failed);
            assert!(!db.comes_up_by_itself, "retry {retry:?}");
            assert!(!web_comes_up(&m), "retry {retry:?}");
            assert!(m.is_started_up(), "retry {retry:?}");
        }
    }

    #[test]
    fn an_undefined_dependency_does_not_come_by_itself() {
        let mut m = monitor();
        m.add(secs(0), "web", web_after("nope", Condition::Ready))
            .unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        assert_eq!(m.status("web").unwrap().waiting_for.unwrap().name, "nope");
        assert!(!web_comes_up(&m));
        assert!(m.is_started_up());
        m.add(secs(1), "nope", never_ready("nope")).unwrap();
        drain(&mut m);
        assert!(web_comes_up(&m), "defined, and starting");
        assert!(!m.is_started_up());
    }

    #[test]
    fn a_wait_for_a_stuck_wait_is_stuck() {
        for retry in [None, Some(60)] {
            let m = failed_db(retry, true);
            let api = m.status("api").unwrap();
            assert_eq!(api.state, ProcessState::Waiting);
            assert_eq!(api.waiting_for.unwrap().name, "web");
            assert_eq!(m.status("web").unwrap().state, ProcessState::Waiting);
            assert!(!api.comes_up_by_itself, "retry {retry:?}");
            assert!(m.is_started_up(), "retry {retry:?}");
        }
    }

    #[test]
    fn live_and_due_processes_come_up_by_themselves() {
        let mut m = monitor();
        m.add(secs(0), "db", never_ready("db")).unwrap();
        m.add(secs(0), "web", ProcessSpec::new(["web"])).unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        assert_eq!(m.status("db").unwrap().state, ProcessState::Starting);
        assert!(m.status("db").unwrap().comes_up_by_itself);
        assert!(m.status("web").unwrap().comes_up_by_itself);
        exit(&mut m, secs(1), "web", 1);
        assert_eq!(m.status("web").unwrap().state, ProcessState::Backoff);
        assert!(m.status("web").unwrap().comes_up_by_itself);
        assert!(!m.is_started_up(), "db is not ready yet");
    }
}

/// The reverse index of `after` ([`Monitor::dependents`]) stays what a
/// pass over every process would find, through adds, removals (a removed
/// instance still live included), reloads and every kind of state change;
/// and in debug builds `settle` checks at every pass that the processes it
/// was told to look at are all that can move.
#[cfg(test)]
mod dependents_index_tests {
    use super::*;
    use crate::spec::{Condition, Policy};
    use core::num::NonZeroU32;

    const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

    /// xorshift64: the same steps on every run, no dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn by_scan(m: &Monitor) -> BTreeMap<Box<str>, Vec<ProcessKey>> {
        let mut index: BTreeMap<Box<str>, Vec<ProcessKey>> = BTreeMap::new();
        for (i, process) in m.processes.iter() {
            for dependency in &process.spec.after {
                index
                    .entry(dependency.name.as_str().into())
                    .or_default()
                    .push(ProcessKey(i as u32));
            }
        }
        index
    }

    fn by_index(m: &Monitor) -> BTreeMap<Box<str>, Vec<ProcessKey>> {
        m.dependents
            .iter()
            .map(|(name, keys)| {
                let mut keys = keys.to_vec();
                keys.sort_unstable();
                (name.clone(), keys)
            })
            .collect()
    }

    fn spec(rng: &mut Rng, name: &str, names: &[&str]) -> ProcessSpec {
        let mut spec = ProcessSpec::new([name]).with_policy(Policy {
            give_up_after: NonZeroU32::new(2),
            retry_failed_after: [None, Some(Duration::from_secs(5))][rng.below(2)],
            ..Policy::default()
        });
        if rng.below(3) == 0 {
            spec = spec.with_ready(Readiness::LogLine("up".into()));
        }
        for &other in names {
            if other != name && rng.below(3) == 0 {
                let condition =
                    [Condition::Started, Condition::Ready, Condition::Completed][rng.below(3)];
                spec = spec.with_after(other, condition);
            }
        }
        spec
    }

    #[test]
    fn the_index_is_what_a_scan_finds_after_every_step() {
        // How often the steps reached what the index is for, so that the
        // test cannot pass by never getting there.
        let (mut waited, mut deferred, mut reloaded, mut retiring) = (0, 0, 0, 0);
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut m = Monitor::new(Settings::default()).unwrap();
            let mut timers: Vec<TimerId> = Vec::new();
            let mut now = 0u64;
            for step in 0..300 {
                now += rng.below(3) as u64 * 500_000_000;
                let at = Instant::from_nanos(now);
                let name = NAMES[rng.below(NAMES.len())];
                match rng.below(12) {
                    0 | 1 => {
                        let spec = spec(&mut rng, name, &NAMES);
                        let _ = m.add(at, name, spec);
                    }
                    2 => {
                        let _ = m.remove(at, name);
                    }
                    3 => {
                        // Another `after` for one name (a restart or a
                        // redefinition), and maybe one name more or less.
                        let mut definitions = m.definitions();
                        let defined: Vec<String> = definitions
                            .processes
                            .iter()
                            .map(|(n, _)| n.clone())
                            .collect();
                        let defined: Vec<&str> = defined.iter().map(String::as_str).collect();
                        if let Some(i) = (!defined.is_empty()).then(|| rng.below(defined.len())) {
                            let (n, old) = &definitions.processes[i];
                            let mut new = spec(&mut rng, n, &defined);
                            if rng.below(2) == 0 {
                                new.argv = old.argv.clone();
                            }
                            definitions.processes[i].1 = new;
                        }
                        if rng.below(3) == 0 && !definitions.processes.is_empty() {
                            definitions
                                .processes
                                .remove(rng.below(definitions.processes.len()));
                        }
                        reloaded += usize::from(m.reload(at, definitions).is_ok());
                    }
                    4 => {
                        let _ = m.start(at, name);
                    }
                    5 => {
                        let _ = m.stop(at, name);
                    }
                    6 => {
                        if rng.below(2) == 0 {
                            let _ = m.down(at, name);
                        } else {
                            let _ = m.restart(at, name);
                        }
                    }
                    7 | 8 => {
                        if let Some(instance) = m.live_instance(name) {
                            let code = [0, 1][rng.below(2)];
                            let status = ExitStatus::Code(code);
                            m.handle(at, Input::Exited { instance, status });
                        }
                    }
                    9 => {
                        if let Some(instance) = m.live_instance(name) {
                            m.handle(at, Input::Ready { instance });
                        }
                    }
                    10 => {
                        if !timers.is_empty() {
                            let timer = timers.swap_remove(rng.below(timers.len()));
                            m.handle(at, Input::TimerFired { timer });
                        }
                    }
                    _ => match rng.below(3) {
                        0 => {
                            let _ = m.start_service(at);
                        }
                        1 => m.stop_service(at),
                        _ => m.kill_all(at),
                    },
                }
                while let Some(command) = m.poll_command() {
                    if let Command::SetTimer { timer, .. } = command {
                        timers.push(timer);
                    }
                }
                assert_eq!(by_index(&m), by_scan(&m), "seed {seed}, step {step}");
                assert!(m.dependents.values().all(|keys| !keys.is_empty()));
                waited += usize::from(m.waiting > 0);
                deferred += usize::from(m.deferred > 0);
                retiring += usize::from(!m.retiring.is_empty());
            }
        }
        assert!(
            waited > 100 && deferred > 10 && reloaded > 100 && retiring > 10,
            "waited {waited}, deferred {deferred}, reloaded {reloaded}, retiring {retiring}"
        );
    }

    #[test]
    fn a_removed_instance_still_counts_as_a_dependent() {
        let t0 = Instant::ZERO;
        let mut m = Monitor::new(Settings::default()).unwrap();
        m.add(t0, "db", ProcessSpec::new(["db"])).unwrap();
        m.add(
            t0,
            "web",
            ProcessSpec::new(["web"]).with_after("db", Condition::Started),
        )
        .unwrap();
        m.start_service(t0).unwrap();
        while m.poll_command().is_some() {}
        let web = m.live_instance("web").unwrap();
        // web is removed but lives on (its stop signal sent); db's removal
        // then waits for it.
        m.remove(t0, "web").unwrap();
        while m.poll_command().is_some() {}
        m.remove(t0, "db").unwrap();
        let commands: Vec<Command> = core::iter::from_fn(|| m.poll_command()).collect();
        assert!(
            !commands.iter().any(|c| matches!(c, Command::Signal { .. })),
            "db waits for web: {commands:?}"
        );
        m.handle(
            t0,
            Input::Exited {
                instance: web,
                status: ExitStatus::Signal(15),
            },
        );
        let commands: Vec<Command> = core::iter::from_fn(|| m.poll_command()).collect();
        let db = m
            .processes
            .iter()
            .find(|(_, p)| &*p.name == "db")
            .unwrap()
            .0;
        assert!(
            commands.iter().any(|c| matches!(
                c,
                Command::Signal { process, .. } if process.index() == db
            )),
            "web ended, so db's stop goes: {commands:?}"
        );
        // Both entries are freed at the next call, and the index with them.
        m.start_service(t0).unwrap();
        assert!(m.dependents.is_empty());
        assert_eq!(by_scan(&m), BTreeMap::new());
    }
}

#[cfg(test)]
mod shut_down_tests {
    use super::tests::{secs, seed_monitor as monitor};
    use super::*;
    use crate::spec::Policy;

    fn drain(m: &mut Monitor) -> Vec<Command> {
        core::iter::from_fn(|| m.poll_command()).collect()
    }

    fn spawns(commands: &[Command]) -> usize {
        commands
            .iter()
            .filter(|c| matches!(c, Command::Spawn { .. }))
            .count()
    }

    fn exit(m: &mut Monitor, at: Instant, name: &str, code: i32) -> Vec<Command> {
        let instance = m.live_instance(name).expect("a live instance");
        let status = ExitStatus::Code(code);
        m.handle(at, Input::Exited { instance, status });
        drain(m)
    }

    /// Two processes running, then `shut_down`.
    fn shut_down_monitor() -> Monitor {
        let mut m = monitor();
        m.add(secs(0), "a", ProcessSpec::new(["a"])).unwrap();
        m.add(secs(0), "b", ProcessSpec::new(["b"])).unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        m.shut_down(secs(20));
        let stops = drain(&mut m);
        assert_eq!(
            stops
                .iter()
                .filter(|c| matches!(c, Command::Signal { .. }))
                .count(),
            2,
            "both are stopped as at stop_service: {stops:?}"
        );
        m
    }

    #[test]
    fn shut_down_refuses_what_starts_and_takes_what_stops() {
        let mut m = shut_down_monitor();
        assert!(m.is_shut_down());
        assert!(!m.is_service_running());
        assert_eq!(m.start(secs(21), "a"), Err(StartError::ShutDown(ShutDown)));
        assert_eq!(
            m.restart(secs(21), "a"),
            Err(StartError::ShutDown(ShutDown))
        );
        assert_eq!(m.start_service(secs(21)), Err(ShutDown));
        let definitions = m.definitions();
        assert!(m.plan_reload(&definitions).is_ok(), "the dry run is taken");
        assert_eq!(
            m.reload(secs(21), definitions),
            Err(DefinitionsError::ShutDown(ShutDown))
        );
        // An unknown name is still told as such.
        assert!(matches!(
            m.start(secs(21), "nope"),
            Err(StartError::Unknown(_))
        ));
        assert!(drain(&mut m).is_empty(), "nothing refused left a command");
        // What stops or signals is taken.
        m.signal(secs(21), "a", Signal::Usr1).unwrap();
        assert_eq!(drain(&mut m).len(), 1, "USR1 sent");
        m.down(secs(21), "b").unwrap();
        drain(&mut m);
        m.kill_all(secs(22));
        let taken = drain(&mut m);
        assert!(taken.iter().any(|c| matches!(
            c,
            Command::Signal {
                signal: Signal::Kill,
                ..
            }
        )));
        // And nothing starts again: the run ends.
        assert_eq!(spawns(&exit(&mut m, secs(22), "a", 0)), 0);
        assert_eq!(spawns(&exit(&mut m, secs(22), "b", 0)), 0);
        assert!(m.is_quiescent());
        assert!(m.start(secs(30), "a").is_err());
        assert_eq!(spawns(&drain(&mut m)), 0);
    }

    #[test]
    fn a_critical_end_shuts_the_monitor_down() {
        let mut m = monitor();
        let critical = ProcessSpec::new(["app"]).with_policy(Policy {
            critical: true,
            restart: Some(crate::spec::RestartPolicy::Never),
            ..Policy::default()
        });
        m.add(secs(0), "app", critical).unwrap();
        m.add(secs(0), "sidecar", ProcessSpec::new(["sidecar"]))
            .unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        assert!(!m.is_shut_down());
        exit(&mut m, secs(20), "app", 3);
        assert!(m.is_shut_down());
        assert!(m.start(secs(20), "app").is_err());
        assert!(m.start_service(secs(20)).is_err());
        assert_eq!(spawns(&exit(&mut m, secs(21), "sidecar", 0)), 0);
        assert_eq!(m.finished(), Some(3));
    }

    #[test]
    fn start_calls_off_a_held_back_stop_of_a_ready_instance() {
        let mut m = monitor();
        m.add(secs(0), "db", ProcessSpec::new(["db"])).unwrap();
        let web = ProcessSpec::new(["web"]).with_after("db", crate::spec::Condition::Started);
        m.add(secs(0), "web", web).unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        m.stop_service(secs(10));
        drain(&mut m);
        assert_eq!(m.status("db").unwrap().state, ProcessState::Stopping);
        m.start(secs(11), "db").unwrap();
        assert!(drain(&mut m).is_empty(), "nothing was sent, nothing is");
        assert_eq!(m.status("db").unwrap().state, ProcessState::Running);
        // Its dependent's end no longer sends db a stop.
        let commands = exit(&mut m, secs(12), "web", 0);
        assert!(
            !commands.iter().any(|c| matches!(c, Command::Signal { .. })),
            "{commands:?}"
        );
        assert_eq!(m.status("db").unwrap().state, ProcessState::Running);
    }
}
