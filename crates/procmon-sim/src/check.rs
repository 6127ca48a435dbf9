//! The reference model of the contract's rules, and a runner that checks a
//! [`Sim`] against it after every step.
//!
//! Shared by the property tests (`tests/properties.rs`), which generate step
//! lists with proptest, and by the `core_events` fuzz body
//! ([`crate::fuzzing`]), which decodes them from bytes. The model is kept
//! independently of the monitor: it states the rules (one live instance per
//! name; no spawn after `stop-service`; delay within [min, max] with exact
//! backoff; KILL exactly kill time after TERM; no timers left behind; each
//! output byte logged once, partial lines included) as plainly as it can.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use procmon_core::{Duration, InstanceId, Instant, Signal, Stream};

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
    execute_steps(steps, model, delivery).map_err(Failure::from)
}

fn execute_steps(
    steps: &[Step],
    mut model: Option<&mut Model>,
    delivery: LineDelivery,
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

#[derive(Debug)]
struct Definition {
    generation: u64,
    delay: Duration,
    add_order: u64,
}

#[derive(Debug)]
struct Live {
    name: String,
    generation: u64,
    started: Instant,
    /// When the monitor sent TERM, and the kill time in force then.
    term: Option<(Instant, Duration)>,
    killed: bool,
    /// Per stream (stdout, stderr): the model's own line buffer, every byte
    /// written, and every logged byte.
    buffer: [Vec<u8>; 2],
    written: [Vec<u8>; 2],
    logged: [Vec<u8>; 2],
    /// The largest line limit in force during this life.
    max_limit: usize,
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
    definitions: BTreeMap<String, Definition>,
    next_generation: u64,
    live: BTreeMap<InstanceId, Live>,
    dead: Vec<(InstanceId, Live)>,
    /// Pending restarts: when each falls due.
    restarts: BTreeMap<String, Instant>,
    /// Was the step about to run expected to be rejected?
    expect_rejected: bool,
    last_event_at: Instant,
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
    Ended(InstanceId, Duration),
    Log(InstanceId, Stream, Vec<u8>),
    Restart(String, Duration),
}

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
            expect_rejected: false,
            last_event_at: Instant::ZERO,
        }
    }

    fn live_of(&self, name: &str) -> Option<(InstanceId, &Live)> {
        self.live
            .iter()
            .find(|(_, l)| l.name == name)
            .map(|(&id, l)| (id, l))
    }

    /// Notes what the step about to run should do (whether it must be
    /// rejected); call before [`Sim::step`].
    pub fn before(&mut self, step: &Step, _sim: &Sim) {
        self.expect_rejected = match step {
            Step::Add { name, .. } => self.definitions.contains_key(name),
            Step::Remove { name } | Step::Start { name } | Step::Stop { name } => {
                !self.definitions.contains_key(name)
            }
            Step::Set(Setting::MinRestartDelay(d)) => *d > self.max,
            Step::Set(Setting::MaxRestartDelay(d)) => *d < self.min,
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
        let mut expected_logs: VecDeque<Followup> = VecDeque::new();
        let mut must_spawn: Vec<String> = Vec::new();
        if !self.expect_rejected {
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
                },
                Step::Add { name, .. } => {
                    let order = self.next_generation;
                    self.definitions.insert(
                        name.clone(),
                        Definition {
                            generation: self.next_generation,
                            delay: self.min,
                            add_order: order,
                        },
                    );
                    self.next_generation += 1;
                    if self.service && self.live_of(name).is_none() {
                        must_spawn.push(name.clone());
                    }
                }
                Step::Remove { name } => {
                    self.definitions.remove(name);
                    self.restarts.remove(name);
                }
                Step::Start { name } if self.live_of(name).is_none() => {
                    must_spawn.push(name.clone());
                }
                Step::StartService => {
                    self.service = true;
                    let mut order: Vec<(&String, &Definition)> = self.definitions.iter().collect();
                    order.sort_by_key(|(_, d)| d.add_order);
                    for (name, _) in order {
                        if self.live_of(name).is_none() {
                            must_spawn.push(name.clone());
                        }
                    }
                }
                Step::StopService => {
                    self.service = false;
                    self.restarts.clear();
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
                    expected_logs.extend(lines.into_iter().map(|l| Followup::Log(id, *stream, l)));
                }
                _ => {}
            }
        }

        self.check_events(step, sim, seen, expected_logs, &must_spawn)?;
        self.check_state(step, sim, now)
    }

    fn check_events(
        &mut self,
        step: &Step,
        sim: &Sim,
        seen: usize,
        mut followups: VecDeque<Followup>,
        must_spawn: &[String],
    ) -> Result<(), String> {
        let mut spawned: Vec<String> = Vec::new();
        let is_advance = matches!(step, Step::Advance(_));
        for event in &sim.events()[seen..] {
            let at = event_time(event);
            if at < self.last_event_at || at > sim.now() {
                return Err(format!("event out of time order: {event:?}"));
            }
            self.last_event_at = at;
            let followup = match event {
                Event::Ended {
                    instance, uptime, ..
                } => Some(Followup::Ended(*instance, *uptime)),
                Event::Log {
                    instance,
                    stream,
                    bytes,
                    ..
                } => Some(Followup::Log(*instance, *stream, bytes.clone())),
                Event::RestartScheduled { name, delay, .. } => {
                    Some(Followup::Restart(name.clone(), *delay))
                }
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
                    Followup::Restart(name, delay) => {
                        if delay != Duration::ZERO && (delay < self.min || delay > self.max) {
                            return Err(format!(
                                "a backoff delay of {delay:?} outside [{:?}, {:?}]",
                                self.min, self.max
                            ));
                        }
                        if self
                            .restarts
                            .insert(name, at.saturating_add(delay))
                            .is_some()
                        {
                            return Err("a second pending restart".into());
                        }
                    }
                    Followup::Ended(..) => {}
                }
                continue;
            }
            if let Some(expected) = followups.front() {
                return Err(format!("got {event:?}, the model expected {expected:?}"));
            }
            match event {
                Event::Spawn { name, instance, .. } => {
                    let definition = self
                        .definitions
                        .get(name)
                        .ok_or_else(|| format!("spawned {name}, which is not added"))?;
                    if self.live_of(name).is_some() {
                        return Err(format!("a second live instance of {name}"));
                    }
                    let allowed = match step {
                        Step::Start { name: n } => n == name,
                        Step::Add { .. } | Step::StartService => self.service,
                        Step::Advance(_) => self.service,
                        _ => false,
                    };
                    if !allowed {
                        return Err(format!(
                            "spawned {name} (service running: {})",
                            self.service
                        ));
                    }
                    let pending = self.restarts.remove(name);
                    if is_advance && pending != Some(at) {
                        return Err(format!(
                            "spawned {name} at {at} in an advance, but the pending restart was {pending:?}"
                        ));
                    }
                    self.live.insert(
                        *instance,
                        Live {
                            name: name.clone(),
                            generation: definition.generation,
                            started: at,
                            term: None,
                            killed: false,
                            buffer: Default::default(),
                            written: Default::default(),
                            logged: Default::default(),
                            max_limit: self.line_limit,
                        },
                    );
                    spawned.push(name.clone());
                }
                Event::Signal {
                    instance, signal, ..
                } => {
                    let kill_time = self.kill_time;
                    let live = self
                        .live
                        .get_mut(instance)
                        .ok_or("a signal to a dead instance")?;
                    match signal {
                        Signal::Kill => {
                            let Some((sent, kill_time)) = live.term else {
                                return Err("KILL without TERM".into());
                            };
                            if live.killed || at != sent.saturating_add(kill_time) {
                                return Err(format!(
                                    "KILL at {at}, TERM at {sent} with kill time {kill_time:?}"
                                ));
                            }
                            live.killed = true;
                        }
                        _ => {
                            let from_a_stop = matches!(
                                step,
                                Step::Stop { .. }
                                    | Step::Remove { .. }
                                    | Step::RestartAll
                                    | Step::StopService
                            );
                            if !from_a_stop || live.term.is_some() {
                                return Err("an unexpected or second TERM".into());
                            }
                            live.term = Some((at, kill_time));
                        }
                    }
                }
                Event::Exit { instance, .. } => {
                    let live = self
                        .live
                        .remove(instance)
                        .ok_or("an exit of a dead instance")?;
                    followups.extend(self.ended(*instance, &live, at));
                    self.dead.push((*instance, live));
                }
                Event::Rejected { .. } => {
                    if !self.expect_rejected {
                        return Err("an unexpected rejection".into());
                    }
                }
                _ => unreachable!("followups are handled above"),
            }
        }
        if let Some(expected) = followups.front() {
            return Err(format!("missing {expected:?}"));
        }
        if !is_advance && spawned != must_spawn {
            return Err(format!(
                "spawned {spawned:?}, the model expected {must_spawn:?}"
            ));
        }
        Ok(())
    }

    /// What must follow the exit of `live` at `at`, applying the backoff rule.
    fn ended(&mut self, instance: InstanceId, live: &Live, at: Instant) -> Vec<Followup> {
        let uptime = at.saturating_duration_since(live.started);
        let mut followups = vec![Followup::Ended(instance, uptime)];
        for stream in [Stream::Stdout, Stream::Stderr] {
            let partial = &live.buffer[stream_index(stream)];
            if !partial.is_empty() {
                followups.push(Followup::Log(instance, stream, partial.clone()));
            }
        }
        let (threshold, min, max, service) = (self.threshold, self.min, self.max, self.service);
        match self.definitions.get_mut(&live.name) {
            Some(definition) if definition.generation == live.generation => {
                let wait = if uptime < threshold {
                    let wait = definition.delay;
                    definition.delay = (wait * 2).min(max);
                    wait
                } else {
                    definition.delay = min;
                    Duration::ZERO
                };
                if service {
                    followups.push(Followup::Restart(live.name.clone(), wait));
                }
            }
            // Removed; a successor added since starts now.
            Some(_) if service => {
                followups.push(Followup::Restart(live.name.clone(), Duration::ZERO))
            }
            _ => {}
        }
        followups
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
        // Timers: the world holds exactly the monitor's, which are the
        // model's pending restarts and KILLs.
        let kills = self
            .live
            .values()
            .filter(|l| l.term.is_some() && !l.killed)
            .count();
        let armed = monitor.armed_timers();
        if sim.queued_timers() != armed || armed != self.restarts.len() + kills {
            return Err(format!(
                "timers: world {}, monitor {armed}, model {} restarts + {kills} KILLs",
                sim.queued_timers(),
                self.restarts.len()
            ));
        }
        if matches!(step, Step::Advance(_)) {
            for (name, due) in &self.restarts {
                if *due <= now {
                    return Err(format!("the restart of {name} due at {due} did not fire"));
                }
            }
            for live in self.live.values() {
                if let (Some((sent, kill_time)), false) = (live.term, live.killed) {
                    if sent.saturating_add(kill_time) <= now {
                        return Err(format!("no KILL for {} TERMed at {sent}", live.name));
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
        // Stops leave every instance they target TERMed.
        let targets: Vec<&Live> = match step {
            Step::Stop { name } | Step::Remove { name } if !self.expect_rejected => {
                self.live_of(name).map(|(_, l)| l).into_iter().collect()
            }
            Step::RestartAll | Step::StopService => self.live.values().collect(),
            _ => Vec::new(),
        };
        if let Some(untermed) = targets.iter().find(|l| l.term.is_none()) {
            return Err(format!("{} was not sent TERM", untermed.name));
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
            if status.delay != definition.delay
                || status.delay < self.min
                || status.delay > self.max
            {
                return Err(format!(
                    "{name}: delay {:?}, the model says {:?}",
                    status.delay, definition.delay
                ));
            }
            if status.is_running() != live.is_some() || monitor.is_live(name) != live.is_some() {
                return Err(format!("{name}: running disagrees"));
            }
            if status.restart_pending() != self.restarts.contains_key(*name) {
                return Err(format!("{name}: restart-pending disagrees"));
            }
            let kill_pending = live.is_some_and(|(_, l)| l.term.is_some() && !l.killed);
            if status.kill_pending() != kill_pending {
                return Err(format!("{name}: kill-pending disagrees"));
            }
            if let Some((_, l)) = live {
                if status.started_at != Some(l.started) {
                    return Err(format!("{name}: started-at disagrees"));
                }
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
        | Event::GaveUp { at, .. } => *at,
    }
}
