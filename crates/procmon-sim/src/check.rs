//! The reference model of the contract's rules, and a runner that checks a
//! [`Sim`] against it after every step.
//!
//! Shared by the property tests (`tests/properties.rs`), which generate step
//! lists with proptest, and by the `core_events` fuzz body
//! ([`crate::fuzzing`]), which decodes them from bytes. The model is kept
//! independently of the monitor: it states the rules as plainly as it can.
//! One live instance per name; spawns only when a request or a due restart
//! or retry asks for one, never for a held name; each stop request sends
//! the process's stop signal once, and KILL exactly its kill time later
//! unless it ended; after every end exactly one decision (a restart after
//! the exact backoff delay, giving up, or nothing and why) by the restart
//! policy, the request that stopped it and the give-up rule; the delay, the
//! quick-death count, the state and what is due next for every name; which
//! steps are rejected; failed spawns told after the commands of their
//! drain; no timers left behind; each output byte logged once, partial
//! lines included. And the project's v5 extension: `starting` until ready
//! (a `ready` step, or a line holding the log text), a ready timeout that
//! stops the instance exactly when due and makes its end a quick death and
//! a failed start; every start a spawn only if its `after` conditions hold
//! at that point of the events, else `waiting`, and a waiting name spawned
//! as soon as they hold; stops held back for live dependents at a service
//! stop or removal and sent once none is left (a service stop's called off
//! by `start-service`, and by `start` of the name: kept if ready, else
//! restarted or stopped now); critical ends and their codes, after which
//! nothing starts again; when the monitor has finished, and with which
//! code.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use procmon_core::{
    Condition, Dependency, Due, DueAction, Duration, ExitStatus, InstanceId, Instant,
    NotReadyCause, NotRestarting, Policy, ProcessSpec, ProcessState, Readiness, RestartPolicy,
    Signal, SignalReason, Stream,
};

use crate::{Event, Expectation, LineDelivery, Setting, Sim, Step};

/// The process names the model checks `expect`-visible state for; generated
/// and decoded steps use only these.
pub const NAMES: &[&str] = &["a", "b", "c"];

/// Steps as scenario text, one a line: what `procmon-sim trace` replays.
pub fn script(steps: &[Step]) -> String {
    steps.iter().map(|s| format!("{s}\n")).collect()
}

/// Why a checked run failed, and the steps that actually ran (after the
/// runner skipped the ones invalid for the state it met). `Display` prints
/// both, the steps as a scenario to save and replay.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong, and after which step.
    pub problem: String,
    /// The steps that ran, including the `expect error` answers.
    pub executed: Vec<Step>,
}

impl From<(String, Vec<Step>)> for Failure {
    fn from((problem, executed): (String, Vec<Step>)) -> Failure {
        Failure { problem, executed }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n--- the steps that ran; save as FILE.scn and replay with \
             `procmon-sim trace FILE.scn` ---\n{}---",
            self.problem,
            script(&self.executed)
        )
    }
}

// ----- Running -----

/// The name a step needs a live instance of, if any: such a step on a name
/// with nothing alive is a scenario mistake, so the runner skips it.
pub fn needs_live(step: &Step) -> Option<&str> {
    match step {
        Step::TermDelay { name, .. }
        | Step::Exit { name, .. }
        | Step::Kill { name, .. }
        | Step::Output { name, .. } => Some(name),
        _ => None,
    }
}

/// What ran, for the report and for replays.
pub struct Ran {
    /// The harness after the last step and `finish`.
    pub sim: Sim,
    /// The steps that ran, including the `expect error` answers.
    pub executed: Vec<Step>,
}

/// Runs the steps, skipping invalid ones and answering rejections with
/// `expect error`; with a model, checks it after every step and, at the
/// end, that output was conserved. Also fails on a fatal step or a failed
/// `expect`. `delivery` says how the sim takes output lines from the
/// monitor.
pub fn execute(
    steps: &[Step],
    model: Option<&mut Model>,
    delivery: LineDelivery,
) -> Result<Ran, Failure> {
    execute_observed(steps, model, delivery, &mut |_, _, _| Ok(()))
}

/// [`execute`], also calling `observe` after every step that ran (before
/// the `expect error` that answers a rejection) with the step, the sim and
/// the index of the step's first event in [`Sim::events`]. An `Err` from it
/// fails the run after that step.
pub fn execute_observed(
    steps: &[Step],
    model: Option<&mut Model>,
    delivery: LineDelivery,
    observe: &mut dyn FnMut(&Step, &Sim, usize) -> Result<(), String>,
) -> Result<Ran, Failure> {
    execute_steps(steps, model, delivery, observe).map_err(Failure::from)
}

fn execute_steps(
    steps: &[Step],
    mut model: Option<&mut Model>,
    delivery: LineDelivery,
    observe: &mut dyn FnMut(&Step, &Sim, usize) -> Result<(), String>,
) -> Result<Ran, (String, Vec<Step>)> {
    let mut sim = Sim::with_line_delivery("generated.scn", delivery);
    let mut executed: Vec<Step> = Vec::new();
    for step in steps {
        if let Some(name) = needs_live(step) {
            if sim.monitor().live_instance(name).is_none() {
                continue;
            }
        }
        let seen = sim.events().len();
        if let Some(model) = model.as_deref_mut() {
            model.before(step, &sim);
        }
        executed.push(step.clone());
        let line = executed.len();
        if let Err(fatal) = sim.step(line, step) {
            return Err((format!("the run stopped: {fatal}"), executed));
        }
        if let Some(model) = model.as_deref_mut() {
            if let Err(problem) = model.after(step, &sim, seen) {
                return Err((format!("after line {line}, `{step}`: {problem}"), executed));
            }
        }
        if let Err(problem) = observe(step, &sim, seen) {
            return Err((format!("after line {line}, `{step}`: {problem}"), executed));
        }
        if sim.last_step_rejected() {
            let answer = Step::Expect(Expectation::Error);
            executed.push(answer.clone());
            let line = executed.len();
            sim.step(line, &answer)
                .map_err(|fatal| (format!("the run stopped: {fatal}"), executed.clone()))?;
        }
    }
    sim.finish();
    if let Some(failure) = sim.failures().first() {
        return Err((format!("an expectation failed: {failure}"), executed));
    }
    if let Some(model) = model {
        model.conserved().map_err(|p| (p, executed.clone()))?;
    }
    Ok(Ran { sim, executed })
}

// ----- The reference model -----

/// What the request that had an instance sent its stop signal asks for
/// after its end ("after an end on request, the request decides").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// `stop`, `restart-all`, `stop-service`: the restart rules, whatever
    /// the policy, while the service runs.
    Rules,
    /// `restart NAME`: start again at once; the delay goes back to the
    /// minimum and the count stays as the request reset it.
    Restart,
    /// `start NAME` while the instance of a `down` stops: start again at
    /// once, the delay and the count by the usual rule, no giving up.
    Start,
    /// `down NAME`: start nothing.
    Hold,
    /// `remove NAME`: start nothing; a definition added since starts.
    Forget,
    /// Not ready in time, or its channel closed: a quick death, then the
    /// policy as after a failed end by itself.
    FailedStart,
}

/// The monitor's stop signal, sent to a live instance.
#[derive(Debug, Clone, Copy)]
struct Stopping {
    sent: Instant,
    /// The process's kill time in force when the stop signal was sent.
    kill_time: Duration,
    asked: Asked,
    /// A service stop or removal holds the stop signal back while a live
    /// instance names this one in its `after`: nothing is sent yet, and
    /// `sent` and `kill_time` mean nothing until it is.
    deferred: bool,
}

#[derive(Debug)]
struct Definition {
    generation: u64,
    policy: Policy,
    /// The delay the next quick death waits.
    delay: Duration,
    quick_deaths: u32,
    /// `down` until `start` or `restart`.
    held: bool,
    /// Gave up, until something starts it.
    failed: bool,
    /// Ended by itself and its policy restarted nothing, until something
    /// starts it.
    exited: bool,
    /// When this definition last spawned.
    last_started: Option<Instant>,
    /// What every spawn waits for.
    after: Vec<Dependency>,
    /// Due to start, but its conditions did not hold.
    waiting: bool,
    /// The last end was by itself with a success code.
    completed: bool,
    /// The last end was a success or on request (not a failed start);
    /// true before any end. What container mode's exit code reads.
    ended_ok: bool,
}

#[derive(Debug)]
struct Live {
    name: String,
    generation: u64,
    policy: Policy,
    started: Instant,
    stop: Option<Stopping>,
    killed: bool,
    /// Per stream (stdout, stderr): the model's own line buffer, every byte
    /// written, and every logged byte.
    buffer: [Vec<u8>; 2],
    written: [Vec<u8>; 2],
    logged: [Vec<u8>; 2],
    /// The largest line limit in force during this life.
    max_limit: usize,
    /// Its definition's `after`, which holds back the stop of what it names.
    after: Vec<Dependency>,
    /// Whether it said it is ready (at spawn without `--ready`).
    ready: bool,
    /// When its ready timeout falls due, while it is starting.
    ready_due: Option<Instant>,
    /// The text a ready line holds (`--ready log:TEXT`).
    ready_text: Option<Vec<u8>>,
    /// Whether it has a notification channel (`notify`, `fd:N`).
    channel: bool,
}

/// How an instance ended.
#[derive(Debug, Clone, Copy)]
enum End {
    Exit(ExitStatus),
    SpawnFailed,
}

/// What the contract says the monitor must do, kept independently of it.
///
/// Call [`Model::before`] and [`Model::after`] around each step (as
/// [`execute`] does) and [`Model::conserved`] at the end.
#[derive(Debug)]
pub struct Model {
    threshold: Duration,
    kill_time: Duration,
    min: Duration,
    max: Duration,
    line_limit: usize,
    service: bool,
    /// Added and not removed; the generation is the add order.
    definitions: BTreeMap<String, Definition>,
    next_generation: u64,
    live: BTreeMap<InstanceId, Live>,
    dead: Vec<(InstanceId, Live)>,
    /// Pending restarts: when each falls due.
    restarts: BTreeMap<String, Instant>,
    /// Pending retries of `failed` names: when each falls due.
    retries: BTreeMap<String, Instant>,
    /// `fail-spawn` errnos waiting for the next spawns of each name.
    fail_spawns: BTreeMap<String, VecDeque<i32>>,
    /// Spawned instances whose failure the world has still to tell.
    failing: VecDeque<(InstanceId, i32)>,
    spawns: u64,
    /// Output lines logged so far.
    logs: u64,
    /// Was the step about to run expected to be rejected?
    expect_rejected: bool,
    last_event_at: Instant,
    /// `set container on`.
    container: bool,
    /// The code of the first critical end.
    critical_exit: Option<u8>,
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// The line rule of the contract, byte by byte, as plainly as it is written:
/// feeds `bytes` to `buffer` under `limit`, pushing completed lines.
pub fn split_lines(buffer: &mut Vec<u8>, bytes: &[u8], limit: usize, lines: &mut Vec<Vec<u8>>) {
    for &byte in bytes {
        if byte == b'\n' {
            lines.push(std::mem::take(buffer));
        } else {
            if buffer.len() >= limit {
                lines.push(std::mem::take(buffer));
            }
            buffer.push(byte);
        }
    }
}

/// An event the model knows must come next.
#[derive(Debug, PartialEq)]
enum Followup {
    /// The instance, how long it lived, and whether it ended on request.
    Ended(InstanceId, Duration, bool),
    Log(InstanceId, Stream, Vec<u8>),
    Restart(String, Duration),
    /// The name, its quick-death count, and when it is tried again.
    GaveUp(String, u32, Option<Duration>),
    NotRestarting(String, NotRestarting),
    /// A critical end, with the monitor's exit code.
    Critical(String, u8),
}

/// What a request step (or a fired ready timeout, or a critical end) makes
/// the monitor do, in order.
#[derive(Debug, PartialEq)]
enum Primary {
    /// A spawn if the name's conditions hold when it comes to it (earlier
    /// spawns of the same step count), else `waiting`.
    Start(String),
    Signal(InstanceId, Signal, SignalReason),
    Ready(InstanceId),
    NotReady(InstanceId, NotReadyCause),
}

/// The longest line limit the contract allows.
const MAX_LINE_LIMIT: usize = 64 << 20;

impl Default for Model {
    fn default() -> Model {
        Model::new()
    }
}

impl Model {
    /// A model of a fresh monitor with default settings.
    pub fn new() -> Model {
        let defaults = procmon_core::Settings::default();
        Model {
            threshold: defaults.threshold,
            kill_time: defaults.kill_time,
            min: defaults.min_restart_delay,
            max: defaults.max_restart_delay,
            line_limit: defaults.line_limit_bytes,
            service: false,
            definitions: BTreeMap::new(),
            next_generation: 0,
            live: BTreeMap::new(),
            dead: Vec::new(),
            restarts: BTreeMap::new(),
            retries: BTreeMap::new(),
            fail_spawns: BTreeMap::new(),
            failing: VecDeque::new(),
            spawns: 0,
            logs: 0,
            expect_rejected: false,
            last_event_at: Instant::ZERO,
            container: false,
            critical_exit: None,
        }
    }

    // The effective settings of a process: its own, or the global in force.

    fn threshold_of(&self, policy: &Policy) -> Duration {
        policy.threshold.unwrap_or(self.threshold)
    }

    fn kill_time_of(&self, policy: &Policy) -> Duration {
        policy.kill_time.unwrap_or(self.kill_time)
    }

    fn min_of(&self, policy: &Policy) -> Duration {
        policy.min_restart_delay.unwrap_or(self.min)
    }

    fn max_of(&self, policy: &Policy) -> Duration {
        policy.max_restart_delay.unwrap_or(self.max)
    }

    /// Whether global delays `min` and `max` are refused: above each other,
    /// or leaving an added process's effective min above its effective max.
    fn delays_clash(&self, min: Duration, max: Duration) -> bool {
        min > max
            || self.definitions.values().any(|d| {
                d.policy.min_restart_delay.unwrap_or(min)
                    > d.policy.max_restart_delay.unwrap_or(max)
            })
    }

    /// Whether a live instance (of any definition) names `name` in its
    /// `after`.
    fn has_live_dependents(&self, name: &str) -> bool {
        self.live
            .values()
            .any(|l| l.after.iter().any(|d| d.name == name))
    }

    /// Whether `name` meets `condition` now; a name not added meets none.
    fn condition_holds(&self, name: &str, condition: Condition) -> bool {
        let Some(definition) = self.definitions.get(name) else {
            return false;
        };
        let state = self.state_of(name, definition);
        let completed = state == ProcessState::Exited && definition.completed;
        completed
            || match condition {
                Condition::Started => {
                    matches!(state, ProcessState::Starting | ProcessState::Running)
                }
                Condition::Ready => state == ProcessState::Running,
                Condition::Completed => false,
            }
    }

    /// Whether every condition of the name's `after` holds now.
    fn conditions_hold(&self, name: &str) -> bool {
        self.definitions[name]
            .after
            .iter()
            .all(|d| self.condition_holds(&d.name, d.condition))
    }

    /// Whether adding `name` with `after` closes a cycle of `after`s.
    fn closes_cycle(&self, name: &str, after: &[Dependency]) -> bool {
        let mut stack: Vec<&str> = after.iter().map(|d| d.name.as_str()).collect();
        let mut seen: Vec<&str> = Vec::new();
        while let Some(next) = stack.pop() {
            if next == name {
                return true;
            }
            if seen.contains(&next) {
                continue;
            }
            seen.push(next);
            if let Some(definition) = self.definitions.get(next) {
                stack.extend(definition.after.iter().map(|d| d.name.as_str()));
            }
        }
        false
    }

    /// Whether the monitor has finished, and with which code: nothing
    /// alive, nothing due, and container mode or a critical end.
    fn finished(&self) -> Option<u8> {
        let due = !self.restarts.is_empty()
            || !self.retries.is_empty()
            || self
                .live
                .values()
                .any(|l| l.ready_due.is_some() || l.stop.is_some_and(|s| !s.deferred));
        if !self.live.is_empty() || due || !(self.container || self.critical_exit.is_some()) {
            return None;
        }
        if let Some(code) = self.critical_exit {
            return Some(code);
        }
        let well = self.definitions.iter().all(|(name, d)| {
            d.ended_ok
                && !matches!(
                    self.state_of(name, d),
                    ProcessState::Failed | ProcessState::Waiting
                )
        });
        Some(if well { 0 } else { 1 })
    }

    /// The live instance of the name, its own or a removed definition's.
    fn live_of(&self, name: &str) -> Option<(InstanceId, &Live)> {
        self.live
            .iter()
            .find(|(_, l)| l.name == name)
            .map(|(&id, l)| (id, l))
    }

    /// The live instance of the name's current definition.
    fn own_live(&self, name: &str) -> Option<InstanceId> {
        let generation = self.definitions.get(name)?.generation;
        self.live_of(name)
            .filter(|(_, l)| l.generation == generation)
            .map(|(id, _)| id)
    }

    /// The added names, in add order.
    fn names_in_order(&self) -> Vec<String> {
        let mut names: Vec<(u64, &String)> = self
            .definitions
            .iter()
            .map(|(name, d)| (d.generation, name))
            .collect();
        names.sort_unstable();
        names.into_iter().map(|(_, name)| name.clone()).collect()
    }

    fn definition(&mut self, name: &str) -> &mut Definition {
        self.definitions
            .get_mut(name)
            .expect("the step was accepted, so the name is added")
    }

    fn cancel_timers(&mut self, name: &str) {
        self.restarts.remove(name);
        self.retries.remove(name);
    }

    /// A stop request reaching a live instance: the stop signal if it was
    /// not sent yet (KILL to follow after the kill time in force now), and
    /// `asked` is what its end leads to. On an instance already stopping
    /// nothing is sent (but a held-back stop is sent now), and `asked`
    /// replaces what its end leads to only if `replace` (`down`, `restart`,
    /// `remove` change it; `stop`, `restart-all`, `stop-service` do not).
    fn stop(
        &mut self,
        now: Instant,
        id: InstanceId,
        asked: Asked,
        replace: bool,
        out: &mut VecDeque<Primary>,
    ) {
        self.stop_or_defer(now, id, asked, replace, false, out);
    }

    /// [`stop`](Self::stop), or with `defer` (a service stop, a removal)
    /// the stop held back while a live instance depends on this one.
    fn stop_or_defer(
        &mut self,
        now: Instant,
        id: InstanceId,
        asked: Asked,
        replace: bool,
        defer: bool,
        out: &mut VecDeque<Primary>,
    ) {
        let live = self.live.get(&id).expect("a live instance");
        let kill_time = self.kill_time_of(&live.policy);
        let signal = live.policy.stop_signal.unwrap_or(Signal::Term);
        let deferred = defer && self.has_live_dependents(&live.name);
        let live = self.live.get_mut(&id).expect("a live instance");
        match &mut live.stop {
            None => {
                // A starting instance that is stopped waits no more.
                live.ready_due = None;
                live.stop = Some(Stopping {
                    sent: now,
                    kill_time,
                    asked,
                    deferred,
                });
                if !deferred {
                    out.push_back(Primary::Signal(id, signal, SignalReason::Stop));
                }
            }
            Some(stopping) => {
                if replace {
                    stopping.asked = asked;
                }
                // A held-back stop is sent at once on an operator's request
                // on the process (`stop`, `down`, `restart`, `restart-all`);
                // another service stop or a removal leaves it held back.
                if stopping.deferred && !defer {
                    stopping.deferred = false;
                    stopping.sent = now;
                    stopping.kill_time = kill_time;
                    out.push_back(Primary::Signal(id, signal, SignalReason::Stop));
                }
            }
        }
    }

    /// Notes what the step about to run should do (whether it must be
    /// rejected); call before [`Sim::step`].
    pub fn before(&mut self, step: &Step, _sim: &Sim) {
        let unknown = |name: &String| !self.definitions.contains_key(name);
        self.expect_rejected = match step {
            Step::Add { name, spec } => {
                let bad_ready = match &spec.ready {
                    Readiness::Fd(fd) => !(3..=1023).contains(fd),
                    Readiness::LogLine(text) => text.is_empty(),
                    _ => false,
                };
                let bad_after = spec.after.iter().enumerate().any(|(i, d)| {
                    d.name == *name || spec.after[..i].iter().any(|e| e.name == d.name)
                });
                !unknown(name)
                    || self.min_of(&spec.policy) > self.max_of(&spec.policy)
                    || spec.policy.ready_timeout == Some(Duration::ZERO)
                    || bad_ready
                    || bad_after
                    || self.closes_cycle(name, &spec.after)
            }
            Step::Ready { name } | Step::NotReady { name } => {
                !self.live_of(name).is_some_and(|(_, l)| l.channel)
            }
            // A critical end shut the monitor down: it starts nothing more.
            Step::Start { name } | Step::Restart { name } => {
                unknown(name) || self.critical_exit.is_some()
            }
            Step::StartService => self.critical_exit.is_some(),
            Step::Remove { name }
            | Step::Stop { name }
            | Step::Down { name }
            | Step::FailSpawn { name, .. } => unknown(name),
            Step::Signal { name, .. } => unknown(name) || self.live_of(name).is_none(),
            Step::Set(Setting::MinRestartDelay(d)) => self.delays_clash(*d, self.max),
            Step::Set(Setting::MaxRestartDelay(d)) => self.delays_clash(self.min, *d),
            Step::Set(Setting::LineLimit(n)) => *n == 0 || *n > MAX_LINE_LIMIT,
            _ => false,
        };
    }

    /// Applies the step to the model, then checks the step's events (those
    /// from index `seen` on) and the monitor's state against it.
    pub fn after(&mut self, step: &Step, sim: &Sim, seen: usize) -> Result<(), String> {
        let now = sim.now();
        if sim.last_step_rejected() != self.expect_rejected {
            return Err(format!(
                "rejected: {}, but the model expected {}",
                sim.last_step_rejected(),
                self.expect_rejected
            ));
        }
        let mut followups: VecDeque<Followup> = VecDeque::new();
        let mut primaries: VecDeque<Primary> = VecDeque::new();
        if !self.expect_rejected {
            self.apply(step, now, &mut followups, &mut primaries)?;
        }
        self.check_events(step, sim, seen, followups, primaries)?;
        self.check_state(step, sim, now)
    }

    /// What an accepted step does at once: the contract's rules for each
    /// request. Spawns and signals go to `out` in the order they must come.
    fn apply(
        &mut self,
        step: &Step,
        now: Instant,
        followups: &mut VecDeque<Followup>,
        out: &mut VecDeque<Primary>,
    ) -> Result<(), String> {
        match step {
            Step::Set(setting) => match *setting {
                Setting::Threshold(d) => self.threshold = d,
                Setting::KillTime(d) => self.kill_time = d,
                Setting::MinRestartDelay(d) => self.min = d,
                Setting::MaxRestartDelay(d) => self.max = d,
                Setting::LineLimit(n) => {
                    self.line_limit = n;
                    for live in self.live.values_mut() {
                        live.max_limit = live.max_limit.max(n);
                    }
                }
                Setting::Container(on) => self.container = on,
            },
            Step::Add { name, spec } => {
                let definition = Definition {
                    generation: self.next_generation,
                    policy: spec.policy,
                    delay: self.min_of(&spec.policy),
                    quick_deaths: 0,
                    held: false,
                    failed: false,
                    exited: false,
                    last_started: None,
                    after: spec.after.clone(),
                    waiting: false,
                    completed: false,
                    ended_ok: true,
                };
                self.next_generation += 1;
                self.definitions.insert(name.clone(), definition);
                // A removed instance still alive: this one waits for it.
                if self.service && self.live_of(name).is_none() {
                    out.push_back(Primary::Start(name.clone()));
                }
            }
            Step::Remove { name } => {
                self.cancel_timers(name);
                if let Some(id) = self.own_live(name) {
                    self.stop_or_defer(now, id, Asked::Forget, true, true, out);
                }
                self.definitions.remove(name);
            }
            Step::Start { name } => {
                match self.own_live(name) {
                    Some(id) => {
                        let live = self.live.get_mut(&id).expect("live");
                        // Only the instance of a `down` and one whose stop a
                        // service stop holds back, still stopping, change.
                        // The held-back stop is called off: a ready instance
                        // runs on; one not ready yet is stopped now, to
                        // start again at its end as after a `down`'s.
                        let ready = live.ready;
                        match &mut live.stop {
                            Some(stopping) if stopping.asked == Asked::Hold => {
                                stopping.asked = Asked::Start;
                                let definition = self.definition(name);
                                definition.held = false;
                                definition.quick_deaths = 0;
                            }
                            Some(stopping)
                                if stopping.deferred && stopping.asked == Asked::Rules =>
                            {
                                if ready {
                                    live.stop = None;
                                } else {
                                    self.stop(now, id, Asked::Start, true, out);
                                }
                            }
                            _ => {}
                        }
                    }
                    None => {
                        self.cancel_timers(name);
                        let definition = self.definition(name);
                        definition.waiting = false;
                        definition.held = false;
                        definition.failed = false;
                        definition.exited = false;
                        definition.quick_deaths = 0;
                        // With a removed instance alive, it waits for it.
                        if self.live_of(name).is_none() {
                            out.push_back(Primary::Start(name.clone()));
                        }
                    }
                }
            }
            Step::Stop { name } => {
                if let Some(id) = self.own_live(name) {
                    self.stop(now, id, Asked::Rules, false, out);
                }
            }
            Step::Down { name } => {
                self.cancel_timers(name);
                self.definition(name).held = true;
                self.definition(name).waiting = false;
                if let Some(id) = self.own_live(name) {
                    self.stop(now, id, Asked::Hold, true, out);
                }
            }
            Step::Restart { name } => {
                self.cancel_timers(name);
                let min = self.min_of(&self.definitions[name].policy);
                let definition = self.definition(name);
                definition.held = false;
                definition.failed = false;
                definition.exited = false;
                definition.delay = min;
                if self.own_live(name).is_none() {
                    self.definition(name).waiting = false;
                }
                let definition = self.definition(name);
                definition.quick_deaths = 0;
                match self.own_live(name) {
                    Some(id) => self.stop(now, id, Asked::Restart, true, out),
                    None if self.live_of(name).is_none() => {
                        out.push_back(Primary::Start(name.clone()))
                    }
                    // A removed instance alive: this one starts when it ends.
                    None => {}
                }
            }
            Step::Signal { name, signal } => {
                let (id, _) = self
                    .live_of(name)
                    .ok_or("signal accepted with nothing live")?;
                out.push_back(Primary::Signal(id, *signal, SignalReason::Request));
            }
            Step::FailSpawn { name, errno } => {
                self.fail_spawns
                    .entry(name.clone())
                    .or_default()
                    .push_back(*errno);
            }
            Step::RestartAll => {
                for name in self.names_in_order() {
                    if let Some(id) = self.own_live(&name) {
                        self.stop(now, id, Asked::Rules, false, out);
                    }
                }
            }
            Step::StartService => {
                self.service = true;
                // First, in add order, a service stop still held back for
                // dependents is called off: everything should be up with
                // the service. A ready instance just runs on; one not ready
                // yet is restarted, as the readiness facts it had while
                // stopping were dropped. Then, in add order, the starts,
                // which so find their dependencies running again.
                for name in self.names_in_order() {
                    if let Some(id) = self.own_live(&name) {
                        let live = self.live.get_mut(&id).expect("found above");
                        let held_back = live
                            .stop
                            .is_some_and(|s| s.deferred && s.asked == Asked::Rules);
                        if held_back && live.ready {
                            live.stop = None;
                        } else if held_back {
                            self.stop(now, id, Asked::Restart, true, out);
                        }
                    }
                }
                for name in self.names_in_order() {
                    if self.own_live(&name).is_some() {
                        continue;
                    }
                    if !self.definitions[&name].held && self.live_of(&name).is_none() {
                        self.cancel_timers(&name);
                        self.definition(&name).waiting = false;
                        out.push_back(Primary::Start(name));
                    }
                }
            }
            Step::StopService => self.stop_service(now, out),
            Step::Ready { name } => {
                let (id, live) = self
                    .live_of(name)
                    .ok_or("ready accepted with nothing live")?;
                if !live.ready && live.stop.is_none() {
                    out.push_back(Primary::Ready(id));
                }
            }
            Step::NotReady { name } => {
                let (id, live) = self
                    .live_of(name)
                    .ok_or("not-ready accepted with nothing live")?;
                if !live.ready && live.stop.is_none() {
                    out.push_back(Primary::NotReady(id, NotReadyCause::ChannelClosed));
                    self.stop(now, id, Asked::FailedStart, true, out);
                }
            }
            Step::Output {
                name,
                stream,
                bytes,
            } => {
                let (id, _) = self.live_of(name).ok_or("output to a dead name ran")?;
                let limit = self.line_limit;
                let live = self.live.get_mut(&id).expect("found above");
                let i = stream_index(*stream);
                live.written[i].extend_from_slice(bytes);
                let mut lines = Vec::new();
                split_lines(&mut live.buffer[i], bytes, limit, &mut lines);
                let made_ready = !live.ready
                    && live.stop.is_none()
                    && live.ready_text.as_ref().is_some_and(|text| {
                        lines
                            .iter()
                            .any(|line| line.windows(text.len()).any(|w| w == &text[..]))
                    });
                followups.extend(lines.into_iter().map(|l| Followup::Log(id, *stream, l)));
                if made_ready {
                    out.push_back(Primary::Ready(id));
                }
            }
            Step::Advance(_)
            | Step::TermDelay { .. }
            | Step::Exit { .. }
            | Step::Kill { .. }
            | Step::Expect(_) => {}
        }
        Ok(())
    }

    /// `stop-service`, or what a critical end does: restarts and retries
    /// cancelled, waiting names stopped, every live instance stopped in add
    /// order, a dependency after its live dependents.
    fn stop_service(&mut self, now: Instant, out: &mut VecDeque<Primary>) {
        self.service = false;
        self.restarts.clear();
        self.retries.clear();
        for definition in self.definitions.values_mut() {
            definition.waiting = false;
        }
        for name in self.names_in_order() {
            if let Some(id) = self.own_live(&name) {
                self.stop_or_defer(now, id, Asked::Rules, false, true, out);
            }
        }
    }

    fn check_events(
        &mut self,
        step: &Step,
        sim: &Sim,
        seen: usize,
        mut followups: VecDeque<Followup>,
        mut primaries: VecDeque<Primary>,
    ) -> Result<(), String> {
        let is_advance = matches!(step, Step::Advance(_));
        for event in &sim.events()[seen..] {
            let at = event_time(event);
            if at < self.last_event_at || at > sim.now() {
                return Err(format!("event out of time order: {event:?}"));
            }
            self.last_event_at = at;
            let followup = match event {
                Event::Ended {
                    instance,
                    uptime,
                    on_request,
                    ..
                } => Some(Followup::Ended(*instance, *uptime, *on_request)),
                Event::Log {
                    instance,
                    stream,
                    bytes,
                    ..
                } => Some(Followup::Log(*instance, *stream, bytes.clone())),
                Event::RestartScheduled { name, delay, .. } => {
                    Some(Followup::Restart(name.clone(), *delay))
                }
                Event::GaveUp {
                    name,
                    quick_deaths,
                    retry_in,
                    ..
                } => Some(Followup::GaveUp(name.clone(), *quick_deaths, *retry_in)),
                Event::NotRestarting { name, reason, .. } => {
                    Some(Followup::NotRestarting(name.clone(), *reason))
                }
                Event::CriticalEnded {
                    name, exit_code, ..
                } => Some(Followup::Critical(name.clone(), *exit_code)),
                _ => None,
            };
            if let Some(followup) = followup {
                match followups.pop_front() {
                    Some(expected) if expected == followup => {}
                    expected => {
                        return Err(format!("got {event:?}, the model expected {expected:?}"))
                    }
                }
                match followup {
                    Followup::Log(instance, stream, bytes) => {
                        self.logs += 1;
                        let live = self
                            .live
                            .get_mut(&instance)
                            .or_else(|| {
                                self.dead
                                    .iter_mut()
                                    .rev()
                                    .find(|(id, _)| *id == instance)
                                    .map(|(_, l)| l)
                            })
                            .ok_or("a log line from an unknown instance")?;
                        if bytes.len() > live.max_limit {
                            return Err(format!(
                                "a {}-byte line, over every limit in force ({})",
                                bytes.len(),
                                live.max_limit
                            ));
                        }
                        live.logged[stream_index(stream)].extend_from_slice(&bytes);
                    }
                    Followup::Critical(..) => {
                        // The service stops, dependents first: what it
                        // sends comes next, as a step's requests do.
                        self.stop_service(at, &mut primaries);
                    }
                    _ => {}
                }
                continue;
            }
            if let Some(expected) = followups.front() {
                return Err(format!("got {event:?}, the model expected {expected:?}"));
            }
            match event {
                Event::Spawn {
                    name,
                    instance,
                    spec,
                    ..
                } => self.spawned(name, *instance, spec, at, is_advance, &mut primaries)?,
                Event::Waiting { name, .. } => {
                    self.waiting(name, at, is_advance, &mut primaries)?
                }
                Event::Ready { instance, .. } => {
                    match primaries.pop_front() {
                        Some(Primary::Ready(id)) if id == *instance => {}
                        expected => {
                            return Err(format!("got {event:?}, the model expected {expected:?}"))
                        }
                    }
                    let live = self
                        .live
                        .get_mut(instance)
                        .ok_or("ready of a dead instance")?;
                    live.ready = true;
                    live.ready_due = None;
                }
                Event::NotReady {
                    instance, cause, ..
                } => match primaries.front() {
                    Some(Primary::NotReady(id, c)) if id == instance && c == cause => {
                        primaries.pop_front();
                    }
                    Some(expected) => {
                        return Err(format!("got {event:?}, the model expected {expected:?}"))
                    }
                    None => {
                        // Only a ready timeout falling due, exactly then.
                        let live = self
                            .live
                            .get(instance)
                            .ok_or("not-ready of a dead instance")?;
                        if !is_advance
                            || *cause != NotReadyCause::Timeout
                            || live.ready_due != Some(at)
                        {
                            return Err(format!(
                                "{event:?}, but the ready timeout is due at {:?}",
                                live.ready_due
                            ));
                        }
                        self.stop(at, *instance, Asked::FailedStart, true, &mut primaries);
                    }
                },
                Event::Signal {
                    instance,
                    signal,
                    reason,
                    ..
                } => {
                    let got = Primary::Signal(*instance, *signal, *reason);
                    if let Some(expected) = primaries.pop_front() {
                        if expected != got {
                            return Err(format!("got {event:?}, the model expected {expected:?}"));
                        }
                        continue;
                    }
                    let kill_time = self
                        .live
                        .get(instance)
                        .map(|l| self.kill_time_of(&l.policy));
                    let dependents = self
                        .live
                        .get(instance)
                        .is_some_and(|l| self.has_live_dependents(&l.name));
                    let live = self
                        .live
                        .get_mut(instance)
                        .ok_or("a signal to a dead instance")?;
                    let Some(stopping) = &mut live.stop else {
                        return Err(format!("{signal} without a stop request before it"));
                    };
                    if stopping.deferred {
                        // A held-back stop, once the last dependent ended.
                        let stop_signal = live.policy.stop_signal.unwrap_or(Signal::Term);
                        if dependents || *signal != stop_signal || *reason != SignalReason::Stop {
                            return Err(format!(
                                "{signal} ({reason:?}) to a held-back stop, live dependents: \
                                 {dependents}"
                            ));
                        }
                        stopping.deferred = false;
                        stopping.sent = at;
                        stopping.kill_time = kill_time.expect("live");
                        continue;
                    }
                    if !is_advance {
                        return Err(format!("got {event:?}, the model expected nothing"));
                    }
                    // Only the KILL of a stop that outlived its kill time.
                    let due = stopping.sent.saturating_add(stopping.kill_time);
                    if *signal != Signal::Kill
                        || *reason != SignalReason::KillTime
                        || live.killed
                        || at != due
                    {
                        return Err(format!(
                            "{signal} ({reason:?}) at {at}, the stop signal at {} with \
                             kill time {:?}, KILL sent before: {}",
                            stopping.sent, stopping.kill_time, live.killed
                        ));
                    }
                    live.killed = true;
                }
                Event::Exit {
                    instance, status, ..
                } => {
                    if !self.failing.is_empty() {
                        return Err(format!(
                            "an exit before the failed spawns {:?} were told",
                            self.failing
                        ));
                    }
                    let live = self
                        .live
                        .remove(instance)
                        .ok_or("an exit of a dead instance")?;
                    followups.extend(self.ended(*instance, &live, at, End::Exit(*status))?);
                    self.dead.push((*instance, live));
                }
                Event::SpawnFailed {
                    instance, errno, ..
                } => {
                    match self.failing.pop_front() {
                        Some(expected) if expected == (*instance, *errno) => {}
                        expected => {
                            return Err(format!(
                                "got {event:?}, the model expected the failure {expected:?}"
                            ))
                        }
                    }
                    let live = self
                        .live
                        .remove(instance)
                        .ok_or("a failed spawn of a dead instance")?;
                    followups.extend(self.ended(*instance, &live, at, End::SpawnFailed)?);
                    self.dead.push((*instance, live));
                }
                Event::Rejected { .. } => {
                    if !self.expect_rejected {
                        return Err("an unexpected rejection".into());
                    }
                }
                Event::Finished { exit_code, .. } => {
                    if let Some(expected) = primaries.front() {
                        return Err(format!("finished, the model expected {expected:?}"));
                    }
                    if self.finished() != Some(*exit_code) {
                        return Err(format!(
                            "finished with {exit_code}, the model says {:?}",
                            self.finished()
                        ));
                    }
                }
                _ => unreachable!("followups are handled above"),
            }
        }
        if let Some(expected) = followups.front() {
            return Err(format!("missing {expected:?}"));
        }
        if let Some(expected) = primaries.front() {
            return Err(format!("missing {expected:?}"));
        }
        if let Some(failure) = self.failing.front() {
            return Err(format!("the failed spawn {failure:?} was never told"));
        }
        // Everything settled: no name waits for conditions that hold, no
        // held-back stop outlives its dependents.
        for (name, definition) in &self.definitions {
            if definition.waiting && self.conditions_hold(name) {
                return Err(format!("{name} still waits, yet its conditions hold"));
            }
        }
        for live in self.live.values() {
            if live.stop.is_some_and(|s| s.deferred) && !self.has_live_dependents(&live.name) {
                return Err(format!(
                    "the stop of {} is still held back with no live dependent",
                    live.name
                ));
            }
        }
        Ok(())
    }

    /// Whether the step's next start, a restart or retry falling due in an
    /// advance, or a waiting name whose conditions now hold accounts for a
    /// spawn or a `waiting` of `name` at `at`. Takes what it used.
    fn start_due(
        &mut self,
        name: &str,
        at: Instant,
        is_advance: bool,
        primaries: &mut VecDeque<Primary>,
    ) -> Result<(), String> {
        if let Some(front) = primaries.front() {
            return match front {
                Primary::Start(n) if n == name => {
                    primaries.pop_front();
                    Ok(())
                }
                expected => Err(format!(
                    "{name} started or waits, the model expected {expected:?}"
                )),
            };
        }
        if is_advance && self.restarts.get(name) == Some(&at) {
            self.restarts.remove(name);
            return Ok(());
        }
        if is_advance && self.retries.get(name) == Some(&at) {
            self.retries.remove(name);
            return Ok(());
        }
        if self.definitions.get(name).is_some_and(|d| d.waiting) {
            return Ok(());
        }
        Err(format!(
            "{name} started or waits at {at}, but nothing asked for it (pending restart {:?}, \
             retry {:?}, service running: {})",
            self.restarts.get(name),
            self.retries.get(name),
            self.service
        ))
    }

    /// A `waiting` report: a start whose conditions do not hold.
    fn waiting(
        &mut self,
        name: &str,
        at: Instant,
        is_advance: bool,
        primaries: &mut VecDeque<Primary>,
    ) -> Result<(), String> {
        if !self.definitions.contains_key(name) {
            return Err(format!("{name} waits, but it is not added"));
        }
        if self.definitions[name].waiting {
            return Err(format!("{name} reported waiting twice"));
        }
        self.start_due(name, at, is_advance, primaries)?;
        if self.conditions_hold(name) {
            return Err(format!("{name} waits, yet its conditions hold"));
        }
        let definition = self.definition(name);
        definition.waiting = true;
        definition.failed = false;
        definition.exited = false;
        Ok(())
    }

    /// A spawn: asked for by the step (`primaries`), or, in an advance, a
    /// restart or retry falling due at this instant, or a waiting name whose
    /// conditions came to hold. Its conditions must hold.
    fn spawned(
        &mut self,
        name: &str,
        instance: InstanceId,
        spec: &ProcessSpec,
        at: Instant,
        is_advance: bool,
        primaries: &mut VecDeque<Primary>,
    ) -> Result<(), String> {
        if !self.definitions.contains_key(name) {
            return Err(format!("spawned {name}, which is not added"));
        }
        if self.live_of(name).is_some() {
            return Err(format!("a second live instance of {name}"));
        }
        // A failed spawn is told after everything its drain asked for,
        // the spawns of waiting names its start let go included (D1), but
        // before any later item fires.
        if is_advance && !self.failing.is_empty() && !self.definitions[name].waiting {
            return Err(format!(
                "a spawn before the failed spawns {:?} were told",
                self.failing
            ));
        }
        self.start_due(name, at, is_advance, primaries)?;
        if !self.conditions_hold(name) {
            return Err(format!(
                "spawned {name} before its conditions {:?} hold",
                self.definitions[name].after
            ));
        }
        let line_limit = self.line_limit;
        let definition = self.definition(name);
        if spec.policy != definition.policy || spec.after != definition.after {
            return Err(format!("spawned {name} with another policy"));
        }
        definition.last_started = Some(at);
        // Whatever starts a name lifts `failed`, `exited` and `waiting`.
        definition.failed = false;
        definition.exited = false;
        definition.waiting = false;
        let generation = definition.generation;
        let ready = matches!(spec.ready, Readiness::Spawned);
        self.live.insert(
            instance,
            Live {
                name: name.to_string(),
                generation,
                policy: spec.policy,
                started: at,
                stop: None,
                killed: false,
                buffer: Default::default(),
                written: Default::default(),
                logged: Default::default(),
                max_limit: line_limit,
                after: spec.after.clone(),
                ready,
                ready_due: match ready {
                    true => None,
                    false => spec.policy.ready_timeout.map(|t| at.saturating_add(t)),
                },
                ready_text: match &spec.ready {
                    Readiness::LogLine(text) => Some(text.clone()),
                    _ => None,
                },
                channel: matches!(spec.ready, Readiness::Notify | Readiness::Fd(_)),
            },
        );
        self.spawns += 1;
        if let Some(queue) = self.fail_spawns.get_mut(name) {
            if let Some(errno) = queue.pop_front() {
                self.failing.push_back((instance, errno));
            }
        }
        Ok(())
    }

    /// What must follow the end of `live` at `at`: the contract's delay,
    /// quick-death, policy and give-up rules, and a critical end.
    fn ended(
        &mut self,
        instance: InstanceId,
        live: &Live,
        at: Instant,
        end: End,
    ) -> Result<Vec<Followup>, String> {
        let uptime = at.saturating_duration_since(live.started);
        let mut followups = Vec::new();
        // On request means the stop signal was sent: an end before a held
        // back stop of a service stop is sent is an end by itself (a
        // request given since, `down`, `restart`, `start`, still decides).
        let asked = live
            .stop
            .filter(|s| !(s.deferred && s.asked == Asked::Rules))
            .map(|s| s.asked);
        if let End::Exit(_) = end {
            followups.push(Followup::Ended(instance, uptime, asked.is_some()));
            for stream in [Stream::Stdout, Stream::Stderr] {
                let partial = &live.buffer[stream_index(stream)];
                if !partial.is_empty() {
                    followups.push(Followup::Log(instance, stream, partial.clone()));
                }
            }
        }
        let name = live.name.clone();
        let service = self.service;
        let Some(definition) = self.definitions.get(&name) else {
            followups.push(Followup::NotRestarting(name, NotRestarting::Removed));
            return Ok(followups);
        };
        if definition.generation != live.generation {
            // Removed; the definition added since starts now, unless held.
            followups.push(Followup::NotRestarting(
                name.clone(),
                NotRestarting::Removed,
            ));
            if service && !definition.held {
                self.schedule(&name, at, Duration::ZERO)?;
                followups.push(Followup::Restart(name, Duration::ZERO));
            }
            return Ok(followups);
        }
        if asked == Some(Asked::Forget) {
            return Err(format!("{name}: removed, yet its definition is added"));
        }
        let policy = definition.policy;
        let (threshold, min, max) = (
            self.threshold_of(&policy),
            self.min_of(&policy),
            self.max_of(&policy),
        );
        let failed_start = asked == Some(Asked::FailedStart);
        let quick = failed_start || uptime < threshold;
        let success = match end {
            End::Exit(ExitStatus::Code(code)) => policy
                .success_codes
                .map_or(code == 0, |codes| codes.contains(code)),
            _ => false,
        };
        let definition = self.definition(&name);
        definition.completed = asked.is_none() && success;
        definition.ended_ok = definition.completed || (asked.is_some() && !failed_start);
        let mut wait = Duration::ZERO;
        if asked == Some(Asked::Restart) {
            definition.delay = min;
        } else if quick {
            wait = definition.delay;
            definition.delay = wait.saturating_mul(2).min(max);
            definition.quick_deaths = definition.quick_deaths.saturating_add(1);
        } else {
            definition.delay = min;
            definition.quick_deaths = 0;
        }
        let by_rules = match asked {
            _ if definition.held || asked == Some(Asked::Hold) => {
                followups.push(Followup::NotRestarting(name, NotRestarting::Held));
                return Ok(followups);
            }
            _ if !service => {
                followups.push(Followup::NotRestarting(name, NotRestarting::ServiceStopped));
                return Ok(followups);
            }
            Some(Asked::Restart | Asked::Start) => false,
            Some(Asked::Rules | Asked::Forget | Asked::Hold) => true,
            None | Some(Asked::FailedStart) => {
                let restart = policy.restart.unwrap_or(RestartPolicy::Always);
                let restarts = match restart {
                    RestartPolicy::Always => true,
                    // A start that failed is a failure, whatever its code.
                    RestartPolicy::OnFailure => failed_start || !success,
                    RestartPolicy::Never => false,
                };
                if !restarts {
                    definition.exited = true;
                    followups.push(Followup::NotRestarting(
                        name.clone(),
                        NotRestarting::Policy(restart),
                    ));
                    self.critical_end(&name, &policy, end, &mut followups);
                    return Ok(followups);
                }
                true
            }
        };
        if !by_rules {
            self.schedule(&name, at, Duration::ZERO)?;
            followups.push(Followup::Restart(name, Duration::ZERO));
            return Ok(followups);
        }
        let gives_up = quick
            && policy
                .give_up_after
                .is_some_and(|n| definition.quick_deaths >= n.get());
        if gives_up {
            definition.failed = true;
            let quick_deaths = definition.quick_deaths;
            if let Some(after) = policy.retry_failed_after {
                self.retries.insert(name.clone(), at.saturating_add(after));
            }
            followups.push(Followup::GaveUp(
                name.clone(),
                quick_deaths,
                policy.retry_failed_after,
            ));
            if matches!(asked, None | Some(Asked::FailedStart)) {
                self.critical_end(&name, &policy, end, &mut followups);
            }
        } else {
            self.schedule(&name, at, wait)?;
            followups.push(Followup::Restart(name, wait));
        }
        Ok(followups)
    }

    /// A critical process ended for good (by itself, `exited` or `failed`):
    /// the monitor's exit code, then the service stops (done when the
    /// followup is met, so that what it sends is checked in order).
    fn critical_end(
        &mut self,
        name: &str,
        policy: &Policy,
        end: End,
        followups: &mut Vec<Followup>,
    ) {
        if !policy.critical {
            return;
        }
        let code = match end {
            End::Exit(ExitStatus::Code(code)) => (code & 0xff) as u8,
            End::Exit(ExitStatus::Signal(signal)) => 128u8.wrapping_add(signal as u8),
            End::SpawnFailed => 127,
        };
        self.critical_exit.get_or_insert(code);
        followups.push(Followup::Critical(name.to_string(), code));
    }

    fn schedule(&mut self, name: &str, at: Instant, wait: Duration) -> Result<(), String> {
        if self
            .restarts
            .insert(name.to_string(), at.saturating_add(wait))
            .is_some()
        {
            return Err(format!("a second pending restart of {name}"));
        }
        Ok(())
    }

    /// The state the contract names for an added name: the first row of
    /// its table that holds.
    fn state_of(&self, name: &str, definition: &Definition) -> ProcessState {
        if let Some((_, live)) = self.live_of(name) {
            return match (live.stop, live.ready) {
                (Some(_), _) => ProcessState::Stopping,
                (None, true) => ProcessState::Running,
                (None, false) => ProcessState::Starting,
            };
        }
        if definition.held {
            ProcessState::Held
        } else if definition.failed {
            ProcessState::Failed
        } else if definition.exited {
            ProcessState::Exited
        } else if self.restarts.contains_key(name) {
            ProcessState::Backoff
        } else if definition.waiting {
            ProcessState::Waiting
        } else {
            ProcessState::Stopped
        }
    }

    /// What is due next for the name: the KILL of its stopping instance,
    /// else its restart, else its retry.
    fn next_of(&self, name: &str) -> Option<Due> {
        let kill = self.live_of(name).and_then(|(_, live)| match live.stop {
            Some(s) if !live.killed && !s.deferred => Some(s.sent.saturating_add(s.kill_time)),
            _ => None,
        });
        let ready = self.live_of(name).and_then(|(_, live)| live.ready_due);
        let due = |action, at: Option<&Instant>| at.map(|&at| Due { action, at });
        due(DueAction::Kill, kill.as_ref())
            .or_else(|| due(DueAction::Restart, self.restarts.get(name)))
            .or_else(|| due(DueAction::Retry, self.retries.get(name)))
            .or_else(|| due(DueAction::ReadyTimeout, ready.as_ref()))
    }

    fn check_state(&self, step: &Step, sim: &Sim, now: Instant) -> Result<(), String> {
        let monitor = sim.monitor();
        // One live instance per name, in the model, the world and the monitor.
        let mut names: Vec<&str> = sim.live_processes().map(|(_, n)| n).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        if names.len() != count {
            return Err(format!("two live instances of one name: {names:?}"));
        }
        if count != self.live.len() || monitor.live_instances() != count {
            return Err(format!(
                "live instances: world {count}, model {}, monitor {}",
                self.live.len(),
                monitor.live_instances()
            ));
        }
        let counts = (
            monitor.stats().spawns,
            monitor.stats().log_lines,
            monitor.monitored(),
        );
        let model = (self.spawns, self.logs, self.definitions.len());
        if counts != model {
            return Err(format!(
                "spawned, logs, monitored: monitor {counts:?}, model {model:?}"
            ));
        }
        // Timers: the world holds exactly the monitor's, which are the
        // model's pending restarts, retries and KILLs.
        let kills = self
            .live
            .values()
            .filter(|l| l.stop.is_some_and(|s| !s.deferred) && !l.killed)
            .count();
        let readies = self.live.values().filter(|l| l.ready_due.is_some()).count();
        let armed = monitor.armed_timers();
        if sim.queued_timers() != armed
            || armed != self.restarts.len() + self.retries.len() + kills + readies
        {
            return Err(format!(
                "timers: world {}, monitor {armed}, model {} restarts + {} retries + {kills} \
                 KILLs + {readies} ready timeouts",
                sim.queued_timers(),
                self.restarts.len(),
                self.retries.len()
            ));
        }
        if monitor.finished() != self.finished() {
            return Err(format!(
                "finished: monitor {:?}, the model says {:?}",
                monitor.finished(),
                self.finished()
            ));
        }
        if matches!(step, Step::Advance(_)) {
            for (name, due) in self.restarts.iter().chain(&self.retries) {
                if *due <= now {
                    return Err(format!(
                        "the restart or retry of {name} due at {due} did not fire"
                    ));
                }
            }
            for live in self.live.values() {
                if live.ready_due.is_some_and(|due| due <= now) {
                    return Err(format!("the ready timeout of {} did not fire", live.name));
                }
                if let (Some(stopping), false) = (live.stop, live.killed) {
                    if !stopping.deferred && stopping.sent.saturating_add(stopping.kill_time) <= now
                    {
                        return Err(format!(
                            "no KILL for {} sent its stop signal at {}",
                            live.name, stopping.sent
                        ));
                    }
                }
            }
            if !self.service && self.live.is_empty() && sim.queued_items() != 0 {
                return Err(format!(
                    "{} items still queued with the service stopped and nothing alive",
                    sim.queued_items()
                ));
            }
        }
        // What `expect` lines read agrees with the model.
        for name in NAMES {
            let status = monitor.status(name);
            if status.is_some() != self.definitions.contains_key(*name) {
                return Err(format!("{name} added: model and monitor disagree"));
            }
            let (Some(status), Some(definition)) = (status, self.definitions.get(*name)) else {
                continue;
            };
            let live = self.live_of(name);
            if status.spec.policy != definition.policy {
                return Err(format!("{name}: another policy"));
            }
            if status.delay != definition.delay {
                return Err(format!(
                    "{name}: delay {:?}, the model says {:?}",
                    status.delay, definition.delay
                ));
            }
            if status.quick_deaths != definition.quick_deaths {
                return Err(format!(
                    "{name}: {} quick deaths, the model says {}",
                    status.quick_deaths, definition.quick_deaths
                ));
            }
            let state = self.state_of(name, definition);
            if status.state != state {
                return Err(format!(
                    "{name}: state {}, the model says {state}",
                    status.state
                ));
            }
            if status.instance != live.map(|(id, _)| id)
                || status.is_running() != live.is_some()
                || monitor.is_live(name) != live.is_some()
            {
                return Err(format!("{name}: running disagrees"));
            }
            let next = self.next_of(name);
            if status.next != next {
                return Err(format!(
                    "{name}: next due {:?}, the model says {next:?}",
                    status.next
                ));
            }
            let started = live.map(|(_, l)| l.started).or(definition.last_started);
            if started.is_some() && status.started_at != started {
                return Err(format!(
                    "{name}: started-at {:?}, the model says {started:?}",
                    status.started_at
                ));
            }
        }
        Ok(())
    }

    /// Every byte written was logged once, in order, newlines aside; what is
    /// not logged yet is exactly what waits in the buffer of a live instance.
    pub fn conserved(&self) -> Result<(), String> {
        let all = self
            .live
            .iter()
            .map(|(id, l)| (id, l, true))
            .chain(self.dead.iter().map(|(id, l)| (id, l, false)));
        for (id, live, alive) in all {
            for i in 0..2 {
                let mut expected: Vec<u8> = live.written[i]
                    .iter()
                    .copied()
                    .filter(|&b| b != b'\n')
                    .collect();
                if alive {
                    let pending = live.buffer[i].len();
                    if !expected.ends_with(&live.buffer[i]) {
                        return Err(format!("{id:?}: the buffered bytes are not the last ones"));
                    }
                    expected.truncate(expected.len() - pending);
                }
                if live.logged[i] != expected {
                    return Err(format!(
                        "{id:?} stream {i}: logged {:?}, written {:?}",
                        String::from_utf8_lossy(&live.logged[i]),
                        String::from_utf8_lossy(&live.written[i])
                    ));
                }
            }
        }
        Ok(())
    }
}

fn event_time(event: &Event) -> Instant {
    match event {
        Event::Spawn { at, .. }
        | Event::Signal { at, .. }
        | Event::Exit { at, .. }
        | Event::Log { at, .. }
        | Event::Rejected { at, .. }
        | Event::Ended { at, .. }
        | Event::RestartScheduled { at, .. }
        | Event::SpawnFailed { at, .. }
        | Event::GaveUp { at, .. }
        | Event::NotRestarting { at, .. }
        | Event::Ready { at, .. }
        | Event::NotReady { at, .. }
        | Event::Waiting { at, .. }
        | Event::CriticalEnded { at, .. }
        | Event::Finished { at, .. } => *at,
    }
}
