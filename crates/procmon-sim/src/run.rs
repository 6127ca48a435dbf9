//! Driving the monitor through a scenario: the harness loop, the trace and
//! the expectations.

use std::fmt::{self, Write as _};

use procmon_core::{
    Command, Duration, ExitStatus, Input, InstanceId, Instant, LogLine, Monitor, NotReadyCause,
    NotRestarting, ProcessSpec, Readiness, Report, Settings, Signal, SignalReason, Stream,
};

use crate::parse::{parse, Diagnostic, Expectation, Quoted, Setting, Step, Word};
use crate::world::{Fired, World, SIGKILL};

/// The most timers and exits one `advance` fires at a single instant
/// before it calls the monitor stuck in a loop.
const MAX_ITEMS_PER_INSTANT: usize = 10_000;

/// The result of replaying a whole scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The trace, one line per observable event, each ending in `\n`.
    pub trace: String,
    /// Failed expectations and unanswered rejections, in the order found.
    /// The run goes on past these.
    pub failures: Vec<Diagnostic>,
    /// The malformed line or scenario mistake that stopped the run, if any.
    pub fatal: Option<Diagnostic>,
}

impl Outcome {
    /// Whether the scenario ran to the end with every expectation met.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.fatal.is_none()
    }

    /// Every message for standard error, in order: failures, then the fatal one.
    pub fn messages(&self) -> impl Iterator<Item = &Diagnostic> {
        self.failures.iter().chain(&self.fatal)
    }
}

/// Parses and replays a scenario. `file_name` labels messages.
///
/// A malformed line anywhere means nothing runs: the outcome has an empty
/// trace and the parse error as `fatal`.
pub fn run(file_name: &str, source: &[u8]) -> Outcome {
    let steps = match parse(file_name, source) {
        Ok(steps) => steps,
        Err(error) => {
            return Outcome {
                fatal: Some(error),
                ..Outcome::default()
            }
        }
    };
    let mut sim = Sim::new(file_name);
    for numbered in &steps {
        if let Err(fatal) = sim.step(numbered.line, &numbered.step) {
            return sim.into_outcome(Some(fatal));
        }
    }
    sim.finish();
    sim.into_outcome(None)
}

/// Something observable that happened in a run, as data: what the trace
/// shows, plus the monitor's reports, for property tests to check against a
/// model without parsing the trace.
// `Spawn` carries a whole definition; events are recorded once each in a
// test harness, where the size does not matter and a box would be noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The monitor spawned an instance (trace: `spawn`).
    Spawn {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The new instance.
        instance: InstanceId,
        /// The definition it was spawned from.
        spec: ProcessSpec,
    },
    /// The monitor sent a signal (trace: `signal`).
    Signal {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The instance signalled.
        instance: InstanceId,
        /// The signal.
        signal: Signal,
        /// Why the monitor sent it.
        reason: SignalReason,
    },
    /// The world told the monitor a spawn failed (trace: `spawn-failed`).
    SpawnFailed {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The instance that never ran.
        instance: InstanceId,
        /// The errno.
        errno: i32,
    },
    /// The monitor gave up on a process (trace: `gave-up`).
    GaveUp {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// Its quick-death count.
        quick_deaths: u32,
        /// When it will be tried again, if ever.
        retry_in: Option<Duration>,
    },
    /// The monitor was told an instance exited (trace: `exit`).
    Exit {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The instance that exited.
        instance: InstanceId,
        /// How.
        status: ExitStatus,
    },
    /// The monitor logged a line (trace: `log`).
    Log {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The instance that wrote it.
        instance: InstanceId,
        /// The stream it came from.
        stream: Stream,
        /// The line, without its newline.
        bytes: Vec<u8>,
    },
    /// The monitor rejected a step (trace: `error`).
    Rejected {
        /// When.
        at: Instant,
        /// The step's keyword (`add`, `set`, …).
        keyword: &'static str,
        /// Its first argument.
        subject: String,
    },
    /// The monitor reported how long an ended instance lived (not traced).
    Ended {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The instance.
        instance: InstanceId,
        /// How long it lived.
        uptime: Duration,
        /// Whether the monitor had sent it its stop signal before it ended
        /// (an end on request), rather than it ending by itself.
        on_request: bool,
    },
    /// The monitor scheduled a restart (not traced).
    RestartScheduled {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// How long until the restart.
        delay: Duration,
    },
    /// The monitor decided that nothing starts the process after an end
    /// (not traced).
    NotRestarting {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// Why not.
        reason: NotRestarting,
    },
    /// A starting instance became ready (trace: `ready`).
    Ready {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The instance.
        instance: InstanceId,
    },
    /// A starting instance will not become ready and is being stopped
    /// (trace: `not-ready`).
    NotReady {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The instance.
        instance: InstanceId,
        /// Why.
        cause: NotReadyCause,
    },
    /// The process is due to start but its dependencies' conditions do not
    /// hold (trace: `waiting`).
    Waiting {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
    },
    /// A critical process ended for good (trace: `critical`).
    CriticalEnded {
        /// When.
        at: Instant,
        /// The process name.
        name: String,
        /// The exit code the monitor will finish with.
        exit_code: u8,
    },
    /// The monitor's work is done (trace: `finished`): `finished()` went
    /// from `None` to `Some`.
    Finished {
        /// When.
        at: Instant,
        /// The exit code.
        exit_code: u8,
    },
}

/// The harness, one step at a time: a [`Monitor`] driven in virtual time
/// against simulated processes.
///
/// [`run`] is this plus the parser. Property tests and fuzzers feed it
/// generated [`Step`]s and inspect the monitor, the world and the
/// [`Event`]s between steps. Every call drains the monitor completely (the
/// core's drain contract), so between calls the monitor and the world agree.
#[derive(Debug)]
pub struct Sim {
    file: String,
    monitor: Monitor,
    world: World,
    now: Instant,
    trace: String,
    events: Vec<Event>,
    failures: Vec<Diagnostic>,
    /// The line of a rejected step that the next step must answer with
    /// `expect error`.
    unanswered_rejection: Option<usize>,
    last_step_rejected: bool,
    delivery: LineDelivery,
    /// What `finished()` answered after the last drain, so that `finished`
    /// is traced once each time it goes from `None` to `Some`.
    finished: Option<u8>,
}

/// How a [`Sim`] takes its output lines from the monitor. The trace and the
/// events must be the same either way; property tests and the fuzzer run
/// both and compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LineDelivery {
    /// Lent at once by [`Monitor::handle_output`], as a real driver takes
    /// them.
    #[default]
    Lent,
    /// Queued as `Command::Log` by `Monitor::handle` with `Input::Output`.
    Queued,
}

impl Sim {
    /// A harness at time 0 with default settings and nothing added.
    /// `file_name` labels messages.
    pub fn new(file_name: &str) -> Sim {
        Sim {
            file: file_name.to_string(),
            monitor: Monitor::new(Settings::default()).expect("the default settings are valid"),
            world: World::default(),
            now: Instant::ZERO,
            trace: String::new(),
            events: Vec::new(),
            failures: Vec::new(),
            unanswered_rejection: None,
            last_step_rejected: false,
            delivery: LineDelivery::default(),
            finished: None,
        }
    }

    /// The same, taking output lines from the monitor as `delivery` says.
    pub fn with_line_delivery(file_name: &str, delivery: LineDelivery) -> Sim {
        Sim {
            delivery,
            ..Sim::new(file_name)
        }
    }

    /// Carries out one step written on `line`.
    ///
    /// Failed expectations are recorded (see [`failures`](Self::failures))
    /// and the run may go on. `Err` is a mistake in the scenario that stops
    /// the run (a step about a name with no live instance, time past its
    /// end); the step that caused it has had no effect on the monitor or
    /// the world.
    pub fn step(&mut self, line: usize, step: &Step) -> Result<(), Diagnostic> {
        if let Some(rejected_line) = self.unanswered_rejection.take() {
            if !matches!(step, Step::Expect(Expectation::Error)) {
                self.fail(
                    rejected_line,
                    format!("expected `expect error` after this rejected step, found `{step}`"),
                );
            }
        }
        let previous_rejected = std::mem::take(&mut self.last_step_rejected);
        let now = self.now;
        match step {
            Step::Set(setting) => {
                let result = match *setting {
                    Setting::Threshold(d) => {
                        self.monitor.set_threshold(d);
                        Ok(())
                    }
                    Setting::KillTime(d) => {
                        self.monitor.set_kill_time(d);
                        Ok(())
                    }
                    Setting::MinRestartDelay(d) => self.monitor.set_min_restart_delay(d),
                    Setting::MaxRestartDelay(d) => self.monitor.set_max_restart_delay(d),
                    Setting::LineLimit(n) => self.monitor.set_line_limit_bytes(n),
                    Setting::Container(on) => {
                        self.monitor.set_container_mode(on);
                        Ok(())
                    }
                };
                if result.is_err() {
                    self.reject(line, "set", setting.keyword());
                }
            }
            Step::Add { name, spec } => {
                if self.monitor.add(now, name, spec.clone()).is_err() {
                    self.reject(line, "add", name);
                }
            }
            Step::Remove { name } => {
                if self.monitor.remove(now, name).is_err() {
                    self.reject(line, "remove", name);
                }
            }
            Step::Start { name } => {
                if self.monitor.start(now, name).is_err() {
                    self.reject(line, "start", name);
                }
            }
            Step::Stop { name } => {
                if self.monitor.stop(now, name).is_err() {
                    self.reject(line, "stop", name);
                }
            }
            Step::Down { name } => {
                if self.monitor.down(now, name).is_err() {
                    self.reject(line, "down", name);
                }
            }
            Step::Restart { name } => {
                if self.monitor.restart(now, name).is_err() {
                    self.reject(line, "restart", name);
                }
            }
            Step::Signal { name, signal } => {
                if self.monitor.signal(now, name, *signal).is_err() {
                    self.reject(line, "signal", name);
                }
            }
            Step::FailSpawn { name, errno } => {
                if self.monitor.key(name).is_some() {
                    self.world.fail_next_spawn(name, *errno);
                } else {
                    self.reject(line, "fail-spawn", name);
                }
            }
            Step::Ready { name } | Step::NotReady { name } => {
                let ready = matches!(step, Step::Ready { .. });
                let keyword = if ready { "ready" } else { "not-ready" };
                match self.monitor.live_instance(name) {
                    Some(instance) if self.world.has_channel(instance) => {
                        let input = if ready {
                            Input::Ready { instance }
                        } else {
                            Input::NotReady { instance }
                        };
                        self.monitor.handle(now, input);
                    }
                    _ => self.reject(line, keyword, name),
                }
            }
            Step::RestartAll => self.monitor.restart_all(now),
            Step::StartService => {
                if self.monitor.start_service(now).is_err() {
                    self.reject(line, "start-service", "");
                }
            }
            Step::StopService => self.monitor.stop_service(now),
            Step::Advance(by) => {
                let until = now
                    .checked_add(*by)
                    .ok_or_else(|| self.diagnostic(line, "advance past the end of time".into()))?;
                self.advance_to(until)
                    .map_err(|message| self.diagnostic(line, message))?;
            }
            Step::TermDelay { name, delay } => {
                let instance = self.live(line, name)?;
                self.world.set_term_delay(instance, *delay);
            }
            Step::Exit { name, code } => {
                let instance = self.live(line, name)?;
                let name = self
                    .world
                    .die(instance)
                    .expect("live in the monitor and the world");
                self.exited(instance, name, ExitStatus::Code(*code));
            }
            Step::Kill { name, signal } => {
                let instance = self.live(line, name)?;
                self.world.signal(now, instance, signal.as_str());
            }
            Step::Output {
                name,
                stream,
                bytes,
            } => {
                let instance = self.live(line, name)?;
                let stream = *stream;
                match self.delivery {
                    LineDelivery::Lent => {
                        let mut lines = Vec::new();
                        self.monitor
                            .handle_output(now, instance, stream, bytes, |line| {
                                lines.push(line.to_log_line())
                            });
                        for line in lines {
                            self.log(now, line);
                        }
                    }
                    LineDelivery::Queued => self.monitor.handle(
                        now,
                        Input::Output {
                            instance,
                            stream,
                            bytes,
                        },
                    ),
                }
            }
            Step::Expect(expectation) => self.expect(line, expectation, previous_rejected),
        }
        self.drain();
        Ok(())
    }

    /// Ends the run: a rejected last step with no `expect error` after it fails.
    pub fn finish(&mut self) {
        if let Some(line) = self.unanswered_rejection.take() {
            self.fail(
                line,
                "expected `expect error` after this rejected step, found the end of the file"
                    .to_string(),
            );
        }
    }

    /// The monitor, for queries between steps.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The trace so far.
    pub fn trace(&self) -> &str {
        &self.trace
    }

    /// Everything observable so far, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Failed expectations so far.
    pub fn failures(&self) -> &[Diagnostic] {
        &self.failures
    }

    /// Whether the monitor rejected the last step.
    pub fn last_step_rejected(&self) -> bool {
        self.last_step_rejected
    }

    /// How many monitor timers the world holds; it should equal
    /// [`Monitor::armed_timers`].
    pub fn queued_timers(&self) -> usize {
        self.world.timers()
    }

    /// How many items (timers and scheduled exits) the world holds.
    pub fn queued_items(&self) -> usize {
        self.world.queued()
    }

    /// The simulated processes alive now, with the names they were spawned
    /// under.
    pub fn live_processes(&self) -> impl Iterator<Item = (InstanceId, &str)> {
        self.world.live()
    }

    /// The trace, failures and `fatal` as an [`Outcome`].
    pub fn into_outcome(self, fatal: Option<Diagnostic>) -> Outcome {
        Outcome {
            trace: self.trace,
            failures: self.failures,
            fatal,
        }
    }

    // ----- Internals -----

    /// Fires due items one at a time, each at its own due time, draining the
    /// monitor after each; items that fall due meanwhile fire in this advance.
    ///
    /// A monitor that keeps firing items at one instant never lets the
    /// clock move: after [`MAX_ITEMS_PER_INSTANT`] the run stops with a
    /// message rather than hang.
    fn advance_to(&mut self, until: Instant) -> Result<(), String> {
        let mut same_instant = 0usize;
        while let Some((at, fired)) = self.world.pop_due(until) {
            assert!(at >= self.now, "the queue never holds the past");
            same_instant = if at == self.now { same_instant + 1 } else { 0 };
            if same_instant > MAX_ITEMS_PER_INSTANT {
                return Err(format!(
                    "more than {MAX_ITEMS_PER_INSTANT} items fired at {at}: the monitor loops"
                ));
            }
            self.now = at;
            match fired {
                Fired::Timer(timer) => self.monitor.handle(at, Input::TimerFired { timer }),
                Fired::Exit {
                    instance,
                    name,
                    status,
                } => self.exited(instance, name, status),
            }
            self.drain();
        }
        self.now = until;
        Ok(())
    }

    /// Tells the monitor of an exit; the trace shows it first.
    fn exited(&mut self, instance: InstanceId, name: String, status: ExitStatus) {
        let line = match status {
            ExitStatus::Code(code) => format!("code {code}"),
            ExitStatus::Signal(SIGKILL) => "signal KILL".to_string(),
            ExitStatus::Signal(number) => format!("signal {number}"),
        };
        self.trace_line(format_args!("exit {} {line}", Word(name.as_bytes())));
        self.events.push(Event::Exit {
            at: self.now,
            name,
            instance,
            status,
        });
        self.monitor
            .handle(self.now, Input::Exited { instance, status });
    }

    /// Carries out the monitor's commands in order (the drain contract),
    /// then tells the monitor of the spawns that failed meanwhile, in the
    /// order they were asked for, draining again after each.
    fn drain(&mut self) {
        let mut failed = std::collections::VecDeque::new();
        loop {
            self.drain_commands(&mut failed);
            let Some((instance, name, errno)) = failed.pop_front() else {
                break;
            };
            self.trace_line(format_args!(
                "spawn-failed {} errno {errno}",
                Word(name.as_bytes())
            ));
            self.events.push(Event::SpawnFailed {
                at: self.now,
                name,
                instance,
                errno,
            });
            self.monitor
                .handle(self.now, Input::SpawnFailed { instance, errno });
        }
        let finished = self.monitor.finished();
        if let (None, Some(exit_code)) = (self.finished, finished) {
            self.trace_line(format_args!("finished {exit_code}"));
            self.events.push(Event::Finished {
                at: self.now,
                exit_code,
            });
        }
        self.finished = finished;
    }

    fn drain_commands(
        &mut self,
        failed: &mut std::collections::VecDeque<(InstanceId, String, i32)>,
    ) {
        let now = self.now;
        while let Some(command) = self.monitor.poll_command() {
            match command {
                Command::Spawn { process, instance } => {
                    let name = self
                        .monitor
                        .name(process)
                        .expect("keys in commands are valid");
                    let spec = self
                        .monitor
                        .spec(process)
                        .expect("keys in commands are valid");
                    let line = SpawnLine(name, spec).to_string();
                    let stop_signal = spec.policy.stop_signal().as_str();
                    let channel = matches!(spec.ready, Readiness::Notify | Readiness::Fd(_));
                    let (name, spec) = (name.to_string(), spec.clone());
                    self.trace_line(format_args!("{line}"));
                    if let Some(errno) = self.world.spawn(instance, &name, stop_signal, channel) {
                        failed.push_back((instance, name.clone(), errno));
                    }
                    self.events.push(Event::Spawn {
                        at: now,
                        name,
                        instance,
                        spec,
                    });
                }
                Command::Signal {
                    process,
                    instance,
                    signal,
                    reason,
                    ..
                } => {
                    let name = self.process_name(process);
                    self.trace_line(format_args!(
                        "signal {} {}",
                        Word(name.as_bytes()),
                        signal.as_str()
                    ));
                    self.world.signal(now, instance, signal.as_str());
                    self.events.push(Event::Signal {
                        at: now,
                        name,
                        instance,
                        signal,
                        reason,
                    });
                }
                Command::SetTimer { timer, at } => self.world.set_timer(timer, at),
                Command::CancelTimer { timer } => self.world.cancel_timer(timer),
                Command::Log(line) => self.log(now, line),
                Command::Report(Report::Exited {
                    process,
                    instance,
                    uptime,
                    on_request,
                    ..
                }) => {
                    let name = self.process_name(process);
                    self.events.push(Event::Ended {
                        at: now,
                        name,
                        instance,
                        uptime,
                        on_request,
                    });
                }
                Command::Report(Report::RestartScheduled { process, delay }) => {
                    let name = self.process_name(process);
                    self.events.push(Event::RestartScheduled {
                        at: now,
                        name,
                        delay,
                    });
                }
                Command::Report(Report::GaveUp {
                    process,
                    quick_deaths,
                    retry_in,
                }) => {
                    let name = self.process_name(process);
                    self.trace_line(format_args!("gave-up {}", Word(name.as_bytes())));
                    self.events.push(Event::GaveUp {
                        at: now,
                        name,
                        quick_deaths,
                        retry_in,
                    });
                }
                Command::Report(Report::NotRestarting { process, reason }) => {
                    let name = self.process_name(process);
                    self.events.push(Event::NotRestarting {
                        at: now,
                        name,
                        reason,
                    });
                }
                Command::Report(Report::Ready { process, instance }) => {
                    let name = self.process_name(process);
                    self.trace_line(format_args!("ready {}", Word(name.as_bytes())));
                    self.events.push(Event::Ready {
                        at: now,
                        name,
                        instance,
                    });
                }
                Command::Report(Report::NotReady {
                    process,
                    instance,
                    cause,
                }) => {
                    let name = self.process_name(process);
                    self.trace_line(format_args!(
                        "not-ready {} {}",
                        Word(name.as_bytes()),
                        cause.as_str()
                    ));
                    self.events.push(Event::NotReady {
                        at: now,
                        name,
                        instance,
                        cause,
                    });
                }
                Command::Report(Report::Waiting { process }) => {
                    let name = self.process_name(process);
                    self.trace_line(format_args!("waiting {}", Word(name.as_bytes())));
                    self.events.push(Event::Waiting { at: now, name });
                }
                Command::Report(Report::CriticalEnded { process, exit_code }) => {
                    let name = self.process_name(process);
                    self.trace_line(format_args!(
                        "critical {} {exit_code}",
                        Word(name.as_bytes())
                    ));
                    self.events.push(Event::CriticalEnded {
                        at: now,
                        name,
                        exit_code,
                    });
                }
                Command::Report(_) => {}
            }
        }
    }

    fn process_name(&self, process: procmon_core::ProcessKey) -> String {
        self.monitor
            .name(process)
            .expect("keys in commands are valid until the next mutating call")
            .to_string()
    }

    /// Traces and records one line the monitor logged.
    fn log(&mut self, now: Instant, line: LogLine) {
        let name = self.process_name(line.process);
        self.trace_line(format_args!(
            "log {} {}",
            Word(name.as_bytes()),
            Quoted(&line.bytes)
        ));
        self.events.push(Event::Log {
            at: now,
            name,
            instance: line.instance,
            stream: line.stream,
            bytes: line.bytes,
        });
    }

    fn trace_line(&mut self, what: fmt::Arguments<'_>) {
        writeln!(self.trace, "{} {what}", self.now).expect("writing to a String");
    }

    /// Traces `error KEYWORD SUBJECT` (`error KEYWORD` for a step that
    /// names nothing, such as `start-service`).
    fn reject(&mut self, line: usize, keyword: &'static str, subject: &str) {
        if subject.is_empty() {
            self.trace_line(format_args!("error {keyword}"));
        } else {
            self.trace_line(format_args!("error {keyword} {}", Word(subject.as_bytes())));
        }
        self.events.push(Event::Rejected {
            at: self.now,
            keyword,
            subject: subject.to_string(),
        });
        self.last_step_rejected = true;
        self.unanswered_rejection = Some(line);
    }

    /// The live instance of `name`, or the mistake that stops the run.
    fn live(&self, line: usize, name: &str) -> Result<InstanceId, Diagnostic> {
        let instance = self.monitor.live_instance(name).ok_or_else(|| {
            self.diagnostic(
                line,
                format!("{} has no live instance", Word(name.as_bytes())),
            )
        })?;
        assert!(
            self.world.is_alive(instance),
            "the monitor's live instance is alive in the world"
        );
        Ok(instance)
    }

    fn diagnostic(&self, line: usize, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            message,
        }
    }

    fn fail(&mut self, line: usize, message: String) {
        let diagnostic = self.diagnostic(line, message);
        self.failures.push(diagnostic);
    }

    fn expect(&mut self, line: usize, expectation: &Expectation, previous_rejected: bool) {
        if let Some(found) = self.check(expectation, previous_rejected) {
            self.fail(line, format!("expected {expectation}, found {found}"));
        }
    }

    /// `None` if the expectation holds, else what was found instead.
    fn check(&self, expectation: &Expectation, previous_rejected: bool) -> Option<String> {
        let monitor = &self.monitor;
        let no_process = |name: &str| format!("no process named {}", Word(name.as_bytes()));
        let mismatch = |ok: bool, found: String| (!ok).then_some(found);
        let status = |name: &str| monitor.status(name).ok_or_else(|| no_process(name));
        let yes_no = |b: bool, yes: &str, no: &str| if b { yes } else { no }.to_string();
        match expectation {
            Expectation::Error => mismatch(
                previous_rejected,
                "that the step before was accepted".into(),
            ),
            Expectation::Running(name) => {
                if monitor.is_live(name) {
                    None
                } else if monitor.status(name).is_some() {
                    Some("stopped".into())
                } else {
                    Some(no_process(name))
                }
            }
            Expectation::Stopped(name) => match status(name) {
                Err(found) => Some(found),
                Ok(s) => mismatch(!s.is_running(), "running".into()),
            },
            Expectation::StartedAt(name, at) => match status(name) {
                Err(found) => Some(found),
                Ok(s) => match s.started_at {
                    None => Some("never started".into()),
                    Some(started) => mismatch(started == *at, started.to_string()),
                },
            },
            Expectation::Delay(name, delay) => match status(name) {
                Err(found) => Some(found),
                Ok(s) => mismatch(
                    s.delay == *delay,
                    procmon_core::Seconds(s.delay).to_string(),
                ),
            },
            Expectation::KillPending(name) | Expectation::NoKillPending(name) => {
                let want = matches!(expectation, Expectation::KillPending(_));
                match status(name) {
                    Err(found) => Some(found),
                    Ok(s) => mismatch(
                        s.kill_pending() == want,
                        yes_no(s.kill_pending(), "a pending KILL", "no pending KILL"),
                    ),
                }
            }
            Expectation::RestartPending(name) | Expectation::NoRestartPending(name) => {
                let want = matches!(expectation, Expectation::RestartPending(_));
                match status(name) {
                    Err(found) => Some(found),
                    Ok(s) => mismatch(
                        s.restart_pending() == want,
                        yes_no(
                            s.restart_pending(),
                            "a pending restart",
                            "no pending restart",
                        ),
                    ),
                }
            }
            Expectation::Monitored(n) => {
                let found = monitor.monitored() as u64;
                mismatch(found == *n, found.to_string())
            }
            Expectation::Spawned(n) => {
                let found = monitor.stats().spawns;
                mismatch(found == *n, found.to_string())
            }
            Expectation::Logs(n) => {
                let found = monitor.stats().log_lines;
                mismatch(found == *n, found.to_string())
            }
            Expectation::Logged(name, line) => {
                if monitor.status(name).is_none() {
                    return Some(no_process(name));
                }
                let mut count = 0;
                for event in &self.events {
                    if let Event::Log {
                        name: n, bytes: b, ..
                    } = event
                    {
                        if n == name {
                            if b == line {
                                return None;
                            }
                            count += 1;
                        }
                    }
                }
                Some(format!(
                    "no such line among the {count} logged for {}",
                    Word(name.as_bytes())
                ))
            }
            Expectation::Process(name, spec) => match status(name) {
                Err(found) => Some(found),
                Ok(s) => mismatch(
                    s.spec == spec,
                    format!(
                        "process {} {}",
                        Word(name.as_bytes()),
                        crate::parse::SpecWords(s.spec)
                    ),
                ),
            },
            Expectation::Now(at) => mismatch(self.now == *at, self.now.to_string()),
            Expectation::State(name, state) => match status(name) {
                Err(found) => Some(found),
                Ok(s) => mismatch(s.state == *state, s.state.to_string()),
            },
            Expectation::QuickDeaths(name, count) => match status(name) {
                Err(found) => Some(found),
                Ok(s) => mismatch(s.quick_deaths == *count, s.quick_deaths.to_string()),
            },
            Expectation::Finished(code) => match monitor.finished() {
                None => Some("not finished".into()),
                Some(found) => mismatch(found == *code, format!("finished {found}")),
            },
            Expectation::NotFinished => monitor.finished().map(|found| format!("finished {found}")),
        }
    }
}

/// `spawn NAME "ARGV0" ... [uid=N] [gid=N] [cwd="PATH"] [env="KEY=VALUE"]...`
struct SpawnLine<'a>(&'a str, &'a ProcessSpec);

impl fmt::Display for SpawnLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SpawnLine(name, spec) = self;
        write!(f, "spawn {}", Word(name.as_bytes()))?;
        for arg in &spec.argv {
            write!(f, " {}", Quoted(arg))?;
        }
        if let Some(uid) = spec.uid {
            write!(f, " uid={uid}")?;
        }
        if let Some(gid) = spec.gid {
            write!(f, " gid={gid}")?;
        }
        if let Some(cwd) = &spec.cwd {
            write!(f, " cwd={}", Quoted(cwd))?;
        }
        for (key, value) in &spec.env {
            let mut entry = key.clone();
            entry.push(b'=');
            entry.extend_from_slice(value);
            write!(f, " env={}", Quoted(&entry))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace_of(source: &str) -> Outcome {
        run("t.scn", source.as_bytes())
    }

    const SEED_SETTINGS: &str = "set threshold 10\nset killtime 5\n\
        set min-restart-delay 2\nset max-restart-delay 10\n";

    #[test]
    fn the_contracts_forced_kill_example_verbatim() {
        let outcome = trace_of(&format!(
            "{SEED_SETTINGS}start-service\nadd foo -- foo\nadvance 10\n\
             term-delay foo 6\nstop foo\nadvance 5\n"
        ));
        assert!(outcome.passed(), "{outcome:?}");
        assert_eq!(
            outcome.trace,
            "0 spawn foo \"foo\"\n\
             10 signal foo TERM\n\
             15 signal foo KILL\n\
             15 exit foo signal KILL\n\
             15 spawn foo \"foo\"\n"
        );
    }

    #[test]
    fn spawn_lines_show_options_in_contract_order() {
        let outcome = trace_of(
            "start-service\nadd w --env B=2 --cwd \"/a b\" --gid 3 --env A=1 --uid 0 -- sh -c \"x\"\n",
        );
        assert_eq!(
            outcome.trace,
            "0 spawn w \"sh\" \"-c\" \"x\" uid=0 gid=3 cwd=\"/a b\" env=\"B=2\" env=\"A=1\"\n"
        );
    }

    #[test]
    fn rejections_need_expect_error_at_once() {
        let ok =
            trace_of("add foo -- foo\nadd foo -- bar\nexpect error\nstop nope\nexpect error\n");
        assert!(ok.passed(), "{ok:?}");
        assert_eq!(ok.trace, "0 error add foo\n0 error stop nope\n");

        let missing = trace_of("start foo\n# comment\nexpect monitored 0\n");
        assert_eq!(
            missing.failures[0].to_string(),
            "t.scn:1: expected `expect error` after this rejected step, found `expect monitored 0`"
        );
        let at_end = trace_of("remove foo\n");
        assert!(at_end.failures[0].message.contains("end of the file"));

        let spurious = trace_of("add foo -- foo\nexpect error\n");
        assert_eq!(
            spurious.failures[0].to_string(),
            "t.scn:2: expected error, found that the step before was accepted"
        );
        let twice = trace_of("start x\nexpect error\nexpect error\n");
        assert_eq!(twice.failures.len(), 1);
        assert_eq!(twice.failures[0].line, 3);
    }

    #[test]
    fn min_above_max_is_rejected_as_a_set_error() {
        let outcome = trace_of(
            "set min-restart-delay 3601\nexpect error\nset max-restart-delay 0.5\nexpect error\n\
             set max-restart-delay 1\nexpect monitored 0\n",
        );
        assert!(outcome.passed(), "{outcome:?}");
        assert_eq!(
            outcome.trace,
            "0 error set min-restart-delay\n0 error set max-restart-delay\n"
        );
    }

    #[test]
    fn steps_on_a_name_with_no_live_instance_stop_the_run() {
        for step in [
            "exit foo 0",
            "term-delay foo 1",
            "kill foo TERM",
            "output foo stdout \"\"",
        ] {
            let outcome = trace_of(&format!("add foo -- foo\n{step}\nadd bar -- bar\n"));
            let fatal = outcome.fatal.expect(step);
            assert_eq!(fatal.to_string(), "t.scn:2: foo has no live instance");
            assert!(outcome.failures.is_empty());
        }
    }

    #[test]
    fn failed_expectations_are_reported_and_the_run_goes_on() {
        let outcome = trace_of(
            "add foo -- foo\nexpect running foo\nexpect stopped bar\nstart foo\n\
             expect started-at foo 1\nexpect running foo\n",
        );
        assert!(outcome.fatal.is_none());
        let messages: Vec<String> = outcome.failures.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            messages,
            [
                "t.scn:2: expected running foo, found stopped",
                "t.scn:3: expected stopped bar, found no process named bar",
                "t.scn:5: expected started-at foo 1, found 0",
            ]
        );
    }

    #[test]
    fn same_instant_items_fire_in_the_order_scheduled() {
        // Both TERM exits fall due at 1; a's was scheduled first.
        let outcome =
            trace_of("start-service\nadd a -- a\nadd b -- b\nadvance 2\nrestart-all\nadvance 1\n");
        assert_eq!(
            outcome.trace,
            "0 spawn a \"a\"\n0 spawn b \"b\"\n2 signal a TERM\n2 signal b TERM\n\
             3 exit a code 0\n3 exit b code 0\n3 spawn a \"a\"\n3 spawn b \"b\"\n"
        );
    }

    #[test]
    fn advance_fires_each_item_at_its_own_time() {
        let outcome =
            trace_of("start-service\nadd a -- a\nadvance 1\nstop a\nadvance 100\nexpect now 101\n");
        assert!(outcome.passed(), "{outcome:?}");
        // Died after 1 s (threshold 1): a long life, so restarted at once, at 2.
        assert_eq!(
            outcome.trace,
            "0 spawn a \"a\"\n1 signal a TERM\n2 exit a code 0\n2 spawn a \"a\"\n"
        );
    }

    #[test]
    fn advance_past_the_end_of_time_is_a_mistake() {
        let outcome = trace_of("advance 18446744073.709551615\nadvance 0.000000001\n");
        assert_eq!(
            outcome.fatal.unwrap().to_string(),
            "t.scn:2: advance past the end of time"
        );
    }

    #[test]
    fn a_malformed_line_runs_nothing() {
        let outcome = trace_of("start-service\nadd foo -- foo\nadvance x\n");
        assert_eq!(outcome.trace, "");
        assert_eq!(
            outcome.fatal.unwrap().to_string(),
            "t.scn:3: x is not a number of seconds (like 2, 2.5 or 0.125)"
        );
    }
}
