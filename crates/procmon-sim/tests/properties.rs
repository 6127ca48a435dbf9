//! Property tests: random step lists through the harness, checked after every
//! step against a small reference model of the contract's rules, and against
//! single rules restated from the events alone (one live instance per name;
//! held, `exited` and `failed` names start only on request or retry; stop
//! signals and kill times; restart policies; the quick-death count and the
//! delay; spawns wait for their `after` conditions; service stops stop
//! dependents first; ready timeouts stop at exactly their time). Steps
//! cover contract v4 (random policies on `add`, global settings changed
//! mid-run, `down`, `restart`, `signal`, `fail-spawn`) and the project's v5
//! extension (readiness, ready timeouts, `after` on earlier names, so never
//! a cycle, `critical`, `ready`, `not-ready`, `set container`).
//!
//! A failing case prints itself as scenario text (the steps that actually
//! ran, after the runner skipped the ones invalid for the state it met), so
//! `procmon-sim trace FILE` replays it. `PROPTEST_CASES` overrides the
//! default of 600 cases per property (so that `cargo test -p procmon-sim`
//! stays well under a minute on two shared cores).
//!
//! The model and the checking runner live in `procmon_sim::check`, shared
//! with the `core_events` fuzz body.

use std::fmt;

use std::num::NonZeroU32;

use procmon_core::{
    Condition, Duration, ExitCodes, Policy, ProcessSpec, Readiness, RestartPolicy, Signal, Stream,
};
use std::collections::BTreeMap;

use procmon_core::{ExitStatus, InstanceId, Instant, NotRestarting, SignalReason};
use procmon_sim::check::{execute, execute_observed, script, split_lines, Failure, Model, NAMES};
use procmon_sim::{Event, LineDelivery, Setting, SignalName, Sim, Step};
use proptest::prelude::*;

const HALF_SECOND: u64 = 500_000_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ----- Generation -----

/// A generated scenario: settings first, then steps. `Debug` prints it as
/// scenario text, so proptest's report is a scenario too.
#[derive(Clone)]
struct Case {
    steps: Vec<Step>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n# generated steps, as generated (the runner skips")?;
        writeln!(f, "# the ones invalid for the state it meets)")?;
        write!(f, "{}", script(&self.steps))
    }
}

/// Durations on a half-second grid make coincidences (an exit at the instant
/// a KILL or restart falls due) common; arbitrary nanoseconds find the rest.
fn duration(max_halves: u64) -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0..=max_halves).prop_map(|h| Duration::from_nanos(h * HALF_SECOND)),
        1 => (0..=max_halves * HALF_SECOND).prop_map(Duration::from_nanos),
    ]
}

fn settings() -> impl Strategy<Value = Vec<Step>> {
    (
        duration(8),
        duration(6),
        duration(4),
        duration(8),
        1usize..=8,
    )
        .prop_map(|(threshold, kill_time, min, extra, limit)| {
            vec![
                Step::Set(Setting::Threshold(threshold)),
                Step::Set(Setting::KillTime(kill_time)),
                Step::Set(Setting::MinRestartDelay(min)),
                Step::Set(Setting::MaxRestartDelay(min + extra)),
                Step::Set(Setting::LineLimit(limit)),
            ]
        })
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_string)
}

fn output_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Newlines, ASCII, a stray byte and the halves of `é` (0xc3 0xa9).
    let byte = prop::sample::select(&b"ab\n\n\xff\xc3\xa9 "[..]);
    prop::collection::vec(byte, 0..12)
}

/// A policy: mostly defaults, each option now and then, so that per-process
/// settings, give-up and retries meet every request. The delays may clash
/// (own min above the effective max): such an `add` is rejected.
fn policy() -> impl Strategy<Value = Policy> {
    let restart = prop::sample::select(vec![
        RestartPolicy::Always,
        RestartPolicy::OnFailure,
        RestartPolicy::Never,
    ]);
    let codes = prop::collection::vec(0u8..3, 1..3).prop_map(ExitCodes::from_iter);
    (
        (
            prop::option::weighted(0.5, restart),
            prop::option::weighted(0.3, codes),
            prop::option::weighted(0.4, prop::sample::select(Signal::ALL.to_vec())),
            prop::option::weighted(0.3, duration(6)),
            prop::option::weighted(0.3, duration(8)),
        ),
        (
            prop::option::weighted(0.3, duration(4)),
            prop::option::weighted(0.3, duration(12)),
            prop::option::weighted(0.4, 1u32..=3),
            prop::option::weighted(0.5, duration(8)),
        ),
    )
        .prop_map(
            |((restart, codes, stop_signal, kill_time, threshold), (min, max, give_up, retry))| {
                let mut policy = Policy::default();
                policy.restart = restart;
                policy.success_codes = codes;
                policy.stop_signal = stop_signal;
                policy.kill_time = kill_time;
                policy.threshold = threshold;
                policy.min_restart_delay = min;
                policy.max_restart_delay = max;
                policy.give_up_after = give_up.and_then(NonZeroU32::new);
                policy.retry_failed_after = retry;
                policy
            },
        )
}

/// The v5 options: a readiness now and then (a log text the generated
/// output often holds), a ready timeout, `after` on names earlier in
/// [`NAMES`] only (so never a cycle), and critical rarely.
#[derive(Clone, Debug)]
struct V5 {
    ready: Readiness,
    ready_timeout: Option<Duration>,
    after: Vec<(usize, Condition)>,
    critical: bool,
}

fn v5() -> impl Strategy<Value = V5> {
    let ready = prop_oneof![
        4 => Just(Readiness::Spawned),
        2 => Just(Readiness::Notify),
        1 => Just(Readiness::Fd(3)),
        2 => prop::sample::select(vec![b"ab".to_vec(), b"b".to_vec()]).prop_map(Readiness::LogLine),
    ];
    let condition = prop::sample::select(Condition::ALL.to_vec());
    (
        ready,
        // Not 0: with a zero kill time and zero delays an instance that is
        // never ready in no time would be spawned and killed forever at one
        // instant, and virtual time would stand still.
        prop::option::weighted(
            0.4,
            duration(12).prop_map(|d| d.max(Duration::from_millis(100))),
        ),
        prop::collection::vec((0usize..2, condition), 0..=2),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(ready, ready_timeout, after, critical)| V5 {
            ready,
            ready_timeout,
            after,
            critical,
        })
}

fn add() -> impl Strategy<Value = Step> {
    (
        name(),
        any::<bool>(),
        prop::option::weighted(0.6, policy()),
        prop::option::weighted(0.5, v5()),
    )
        .prop_map(|(name, flag, policy, v5)| {
            let mut argv = vec![name.clone()];
            if flag {
                argv.push("--again".to_string());
            }
            let mut spec = ProcessSpec::new(argv).with_policy(policy.unwrap_or_default());
            if let Some(v5) = v5 {
                let own = NAMES.iter().position(|n| *n == name).expect("one of NAMES");
                spec.ready = v5.ready;
                spec.policy.ready_timeout = v5.ready_timeout;
                spec.policy.critical = v5.critical;
                for (index, condition) in v5.after {
                    let dependency = NAMES[index];
                    if index < own && !spec.after.iter().any(|d| d.name == dependency) {
                        spec = spec.with_after(dependency, condition);
                    }
                }
            }
            Step::Add { name, spec }
        })
}

/// A global setting changed mid-run: processes without their own follow
/// it; a min above a max (global or a process's) is rejected.
fn setting() -> impl Strategy<Value = Step> {
    prop_oneof![
        duration(8).prop_map(Setting::Threshold),
        duration(6).prop_map(Setting::KillTime),
        duration(4).prop_map(Setting::MinRestartDelay),
        duration(12).prop_map(Setting::MaxRestartDelay),
        (1usize..=8).prop_map(Setting::LineLimit),
    ]
    .prop_map(Step::Set)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => add(),
        1 => name().prop_map(|name| Step::Remove { name }),
        2 => name().prop_map(|name| Step::Start { name }),
        2 => name().prop_map(|name| Step::Stop { name }),
        2 => name().prop_map(|name| Step::Down { name }),
        2 => name().prop_map(|name| Step::Restart { name }),
        1 => (name(), prop::sample::select(Signal::ALL.to_vec()))
            .prop_map(|(name, signal)| Step::Signal { name, signal }),
        2 => (name(), prop::sample::select(vec![2, 13, 0])).prop_map(|(name, errno)| {
            Step::FailSpawn { name, errno }
        }),
        1 => Just(Step::RestartAll),
        2 => Just(Step::StartService),
        1 => Just(Step::StopService),
        8 => prop_oneof![Just(Duration::ZERO), duration(16)].prop_map(Step::Advance),
        4 => (name(), 0..3i32).prop_map(|(name, code)| Step::Exit { name, code }),
        1 => (name(), prop::sample::select(vec!["TERM", "KILL", "HUP", "INT", "USR1"])).prop_map(
            |(name, signal)| Step::Kill {
                name,
                signal: SignalName::from_name(signal).expect("a known signal"),
            }
        ),
        1 => (name(), duration(12)).prop_map(|(name, delay)| Step::TermDelay { name, delay }),
        3 => (name(), any::<bool>(), output_bytes()).prop_map(|(name, err, bytes)| {
            let stream = if err { Stream::Stderr } else { Stream::Stdout };
            Step::Output { name, stream, bytes }
        }),
        1 => setting(),
        2 => name().prop_map(|name| Step::Ready { name }),
        2 => name().prop_map(|name| Step::NotReady { name }),
        1 => any::<bool>().prop_map(|on| Step::Set(Setting::Container(on))),
    ]
}

/// Settings, then mostly a few adds and the service started (so that the
/// requests after them meet added names), then anything.
fn case() -> impl Strategy<Value = Case> {
    (
        settings(),
        prop::collection::vec(add(), 0..=3),
        prop::bool::weighted(0.7),
        prop::collection::vec(step(), 0..60),
    )
        .prop_map(|(mut steps, adds, start, rest)| {
            steps.extend(adds);
            if start {
                steps.push(Step::StartService);
            }
            steps.extend(rest);
            Case { steps }
        })
}

fn report(failure: Failure) -> TestCaseError {
    TestCaseError::fail(failure.to_string())
}

// ----- Properties -----

proptest! {
    #![proptest_config(config())]

    /// After every step the monitor obeys the contract's rules, as the model
    /// states them: one live instance per name, spawns only when allowed,
    /// KILL exactly kill time after TERM, exact backoff, output conserved,
    /// no timers left behind.
    #[test]
    fn the_monitor_follows_the_model(case in case()) {
        let mut model = Model::new();
        execute(&case.steps, Some(&mut model), LineDelivery::Lent).map_err(report)?;
    }

    /// The same steps give the same trace and events, run again, and
    /// whether output lines are lent or queued; the trace printed as
    /// scenario text replays to the same trace through the parser.
    #[test]
    fn same_steps_same_trace(case in case()) {
        let first = execute(&case.steps, None, LineDelivery::Lent).map_err(report)?;
        let again = execute(&case.steps, None, LineDelivery::Lent).map_err(report)?;
        let second = execute(&case.steps, None, LineDelivery::Queued).map_err(report)?;
        prop_assert_eq!(first.sim.trace(), again.sim.trace());
        prop_assert_eq!(first.sim.events(), again.sim.events());
        prop_assert_eq!(first.sim.trace(), second.sim.trace());
        prop_assert_eq!(first.sim.events(), second.sim.events());
        let text = script(&first.executed);
        let replay = procmon_sim::run("replay.scn", text.as_bytes());
        prop_assert!(replay.passed(), "{:?}\n{}", replay, text);
        prop_assert_eq!(first.sim.trace(), replay.trace.as_str(), "{}", text);
    }

    /// Every generated step prints as a line that parses back to it.
    #[test]
    fn steps_print_as_text_that_parses_back(case in case()) {
        for step in &case.steps {
            let text = step.to_string();
            let parsed = procmon_sim::parse_line(text.as_bytes());
            prop_assert_eq!(parsed, Ok(Some(step.clone())), "{}", text);
        }
    }
}

// ----- Observers: one contract rule each, restated from the events alone -----
//
// The model above checks everything at once; each observer below states one
// rule of the contract on its own, from the steps and the events, so that a
// failure names the rule it breaks.

/// Runs the case, calling `observe` after every step that ran.
fn observe(
    case: &Case,
    observe: &mut dyn FnMut(&Step, &Sim, usize) -> Result<(), String>,
) -> Result<(), TestCaseError> {
    execute_observed(&case.steps, None, LineDelivery::Lent, observe).map_err(report)?;
    Ok(())
}

/// The events of the step just run.
fn events_of(sim: &Sim, seen: usize) -> &[Event] {
    &sim.events()[seen..]
}

/// Whether the step is `start` or `restart` of `name`.
fn starts(step: &Step, name: &str) -> bool {
    matches!(step,
        Step::Start { name: n } | Step::Restart { name: n } if n == name)
}

/// Per added name: what blocks it from being started by the monitor alone.
#[derive(Default)]
struct Blocked {
    held: bool,
    failed: bool,
    exited: bool,
    retry_after: Option<Duration>,
    /// When a pending retry falls due.
    retry_due: Option<Instant>,
}

/// Nothing held, `exited` or `failed` is spawned except by a request
/// (`start` or `restart` of it; `start-service` for `failed` and `exited`)
/// or, for `failed`, by its retry falling due. A start that finds its
/// `after` conditions unmet (`waiting`, v5) is such a start too: it lifts
/// `failed` and `exited`, and the spawn when they hold is its own.
fn blocked_names_start_only_on_request() -> impl FnMut(&Step, &Sim, usize) -> Result<(), String> {
    let mut blocked_by_name: BTreeMap<String, Blocked> = BTreeMap::new();
    move |step, sim, seen| {
        let accepted = !sim.last_step_rejected();
        if accepted {
            match step {
                Step::Add { name, spec } => {
                    let blocked = Blocked {
                        retry_after: spec.policy.retry_failed_after,
                        ..Blocked::default()
                    };
                    blocked_by_name.insert(name.clone(), blocked);
                }
                Step::Remove { name } => {
                    blocked_by_name.remove(name);
                }
                Step::Down { name } => {
                    let blocked = blocked_by_name
                        .get_mut(name)
                        .ok_or("down of an unknown name")?;
                    blocked.held = true;
                    blocked.retry_due = None;
                }
                Step::StopService => blocked_by_name
                    .values_mut()
                    .for_each(|b| b.retry_due = None),
                _ => {}
            }
        }
        for event in events_of(sim, seen) {
            match event {
                Event::Spawn { at, name, .. } | Event::Waiting { at, name } => {
                    let blocked = blocked_by_name
                        .get_mut(name)
                        .ok_or("spawned an unknown name")?;
                    let requested = accepted && starts(step, name);
                    let service = accepted && matches!(step, Step::StartService);
                    let retry = matches!(step, Step::Advance(_))
                        && blocked.failed
                        && blocked.retry_due == Some(*at);
                    if blocked.held && !requested {
                        return Err(format!("spawned {name}, held"));
                    }
                    if (blocked.failed || blocked.exited) && !(requested || service || retry) {
                        return Err(format!(
                            "spawned {name} (failed: {}, exited: {}, retry due {:?})",
                            blocked.failed, blocked.exited, blocked.retry_due
                        ));
                    }
                    blocked.failed = false;
                    blocked.exited = false;
                    blocked.retry_due = None;
                }
                Event::GaveUp { at, name, .. } => {
                    let blocked = blocked_by_name
                        .get_mut(name)
                        .ok_or("gave up on an unknown name")?;
                    blocked.failed = true;
                    blocked.retry_due = blocked.retry_after.map(|after| at.saturating_add(after));
                }
                Event::NotRestarting {
                    name,
                    reason: NotRestarting::Policy(_),
                    ..
                } => {
                    blocked_by_name
                        .get_mut(name)
                        .ok_or("an unknown name exited")?
                        .exited = true;
                }
                _ => {}
            }
        }
        if accepted {
            if let Step::Start { name } | Step::Restart { name } = step {
                let blocked = blocked_by_name
                    .get_mut(name)
                    .ok_or("a request on an unknown name")?;
                // Lifted whether or not it could start now.
                *blocked = Blocked {
                    retry_after: blocked.retry_after,
                    ..Blocked::default()
                };
            }
        }
        Ok(())
    }
}

/// An instance, as the events show it.
struct Seen {
    name: String,
    policy: Policy,
    /// The stop signal: when, and the kill time in force then.
    stopped: Option<(Instant, Duration)>,
    killed: bool,
}

/// Every stop by the monitor sends the process's stop signal, once, and its
/// KILL comes exactly its own kill time (or the global one in force at the
/// stop) later, unless it ended first; a stop request leaves every live
/// instance it reaches stopping; the monitor sends nothing else but what
/// `signal` asks for.
fn stops_use_the_stop_signal_and_kill_time() -> impl FnMut(&Step, &Sim, usize) -> Result<(), String>
{
    let mut kill_time = procmon_core::Settings::default().kill_time;
    let mut live: BTreeMap<InstanceId, Seen> = BTreeMap::new();
    // Stops a service stop or a removal held back (v5).
    let mut held_back: Vec<InstanceId> = Vec::new();
    move |step, sim, seen| {
        let accepted = !sim.last_step_rejected();
        let before: Vec<InstanceId> = live.keys().copied().collect();
        if let (true, Step::Set(Setting::KillTime(d))) = (accepted, step) {
            kill_time = *d;
        }
        for event in events_of(sim, seen) {
            match event {
                Event::Spawn {
                    name,
                    instance,
                    spec,
                    ..
                } => {
                    let seen = Seen {
                        name: name.clone(),
                        policy: spec.policy,
                        stopped: None,
                        killed: false,
                    };
                    live.insert(*instance, seen);
                }
                Event::Exit { instance, .. } | Event::SpawnFailed { instance, .. } => {
                    live.remove(instance).ok_or("the end of a dead instance")?;
                }
                Event::Signal {
                    at,
                    instance,
                    signal,
                    reason,
                    ..
                } => {
                    let seen = live
                        .get_mut(instance)
                        .ok_or("a signal to a dead instance")?;
                    match reason {
                        SignalReason::Stop => {
                            let own = seen.policy.stop_signal.unwrap_or(Signal::Term);
                            if *signal != own || seen.stopped.is_some() {
                                return Err(format!(
                                    "{signal} as the stop of {} (stop signal {own}, \
                                     stopped before: {:?})",
                                    seen.name, seen.stopped
                                ));
                            }
                            let kill = seen.policy.kill_time.unwrap_or(kill_time);
                            seen.stopped = Some((*at, kill));
                        }
                        SignalReason::KillTime => {
                            let Some((sent, kill)) = seen.stopped else {
                                return Err(format!("KILL of {} before a stop", seen.name));
                            };
                            if *signal != Signal::Kill
                                || seen.killed
                                || *at != sent.saturating_add(kill)
                            {
                                return Err(format!(
                                    "{signal} at {at} to {}, stopped at {sent} with kill time \
                                     {kill:?}, killed before: {}",
                                    seen.name, seen.killed
                                ));
                            }
                            seen.killed = true;
                        }
                        SignalReason::Request => {
                            let asked = matches!(step,
                                Step::Signal { name, signal: s } if *name == seen.name && s == signal);
                            if !asked {
                                return Err(format!("{signal} to {} unasked", seen.name));
                            }
                        }
                        other => return Err(format!("a signal for {other:?}")),
                    }
                }
                _ => {}
            }
        }
        if matches!(step, Step::Advance(_)) {
            for seen in live.values() {
                if let (Some((sent, kill)), false) = (seen.stopped, seen.killed) {
                    let due = sent.saturating_add(kill);
                    if due <= sim.now() {
                        return Err(format!("{} outlived its KILL, due at {due}", seen.name));
                    }
                }
            }
        }
        let reached: Vec<&str> = match step {
            _ if !accepted => vec![],
            Step::Stop { name }
            | Step::Down { name }
            | Step::Restart { name }
            | Step::Remove { name } => {
                vec![name]
            }
            Step::RestartAll | Step::StopService => sim
                .monitor()
                .processes_in_order()
                .map(|(name, _)| name)
                .collect(),
            _ => vec![],
        };
        // Instances live before the step and still live after it. A service
        // stop or a removal holds a stop back while a live instance names
        // the process in its `after` (v5): the state says stopping.
        // Held back by a service stop (a step, or a critical end) or a
        // removal: no signal sent, yet `stopping`.
        let may_wait = matches!(step, Step::StopService | Step::Remove { .. })
            || events_of(sim, seen)
                .iter()
                .any(|e| matches!(e, Event::CriticalEnded { .. }));
        held_back.retain(|id| live.get(id).is_some_and(|seen| seen.stopped.is_none()));
        for (id, seen) in &live {
            // A removed name has no state; its instance can only be stopping.
            let stopping = sim.monitor().live_instance(&seen.name) == Some(*id)
                && sim
                    .monitor()
                    .status(&seen.name)
                    .is_none_or(|s| s.state == procmon_core::ProcessState::Stopping);
            if may_wait && seen.stopped.is_none() && stopping && !held_back.contains(id) {
                held_back.push(*id);
            }
        }
        let reached_live = before
            .iter()
            .filter_map(|id| live.get(id).map(|seen| (id, seen)));
        for (id, seen) in reached_live {
            if !reached.contains(&seen.name.as_str()) || seen.stopped.is_some() {
                continue;
            }
            if !held_back.contains(id) {
                return Err(format!(
                    "{} is live and was not sent its stop signal",
                    seen.name
                ));
            }
        }
        Ok(())
    }
}

/// An instance of an `on-failure` process that exits by itself with one of
/// its success codes is not restarted, and neither is any end by itself of a
/// `never` process: the decision after it is not a restart, and nothing
/// starts it within the step.
fn successes_and_never_do_not_restart() -> impl FnMut(&Step, &Sim, usize) -> Result<(), String> {
    let mut live: BTreeMap<InstanceId, Seen> = BTreeMap::new();
    move |_step, sim, seen| {
        // Names whose decision is awaited, and whether it must not restart.
        let mut decided: BTreeMap<String, bool> = BTreeMap::new();
        let mut done: Vec<String> = Vec::new();
        for event in events_of(sim, seen) {
            match event {
                Event::Spawn {
                    name,
                    instance,
                    spec,
                    ..
                } => {
                    if done.contains(name) {
                        return Err(format!("{name} not restarted by its policy, yet spawned"));
                    }
                    let seen = Seen {
                        name: name.clone(),
                        policy: spec.policy,
                        stopped: None,
                        killed: false,
                    };
                    live.insert(*instance, seen);
                }
                Event::Signal {
                    instance,
                    reason: SignalReason::Stop,
                    ..
                } => {
                    live.get_mut(instance)
                        .ok_or("a stop of a dead instance")?
                        .stopped = Some((Instant::ZERO, Duration::ZERO));
                }
                Event::Exit {
                    instance, status, ..
                } => {
                    let seen = live.remove(instance).ok_or("an exit of a dead instance")?;
                    let by_itself = seen.stopped.is_none();
                    let success = match status {
                        ExitStatus::Code(code) => seen
                            .policy
                            .success_codes
                            .map_or(*code == 0, |codes| codes.contains(*code)),
                        ExitStatus::Signal(_) => false,
                    };
                    let stays = match seen.policy.restart.unwrap_or_default() {
                        RestartPolicy::Always => false,
                        RestartPolicy::OnFailure => success,
                        RestartPolicy::Never => true,
                    };
                    decided.insert(seen.name, by_itself && stays);
                }
                Event::SpawnFailed { instance, .. } => {
                    let seen = live
                        .remove(instance)
                        .ok_or("a failure of a dead instance")?;
                    let never = seen.policy.restart == Some(RestartPolicy::Never);
                    decided.insert(seen.name, never);
                }
                Event::RestartScheduled { name, .. } | Event::GaveUp { name, .. } => {
                    let kept = decided.remove(name) == Some(true);
                    if kept {
                        return Err(format!("{name}: a restart after an end its policy keeps"));
                    }
                }
                Event::NotRestarting { name, reason, .. } => {
                    let kept = decided.remove(name) == Some(true);
                    if kept && matches!(reason, NotRestarting::Policy(_)) {
                        done.push(name.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Per added name: the delay and quick-death count as the contract
/// computes them.
struct Backoff {
    policy: Policy,
    delay: Duration,
    count: u32,
    /// Which definition of the name this is.
    generation: usize,
    /// The wait the decision after an end must show.
    wait: Option<Duration>,
}

/// What the last request that reached a live instance asked for its end.
#[derive(Clone, Copy, PartialEq)]
enum Asked {
    Nothing,
    Down,
    Restart,
    StartAfterDown,
    /// Not ready in time, or its channel closed: a quick death whatever
    /// its uptime (unless `down` or `restart` comes after).
    NotReady,
}

/// A live instance: its name, its definition, what was asked.
type Instances = BTreeMap<InstanceId, (String, usize, Asked)>;

/// The live instance of the name's current definition.
fn own_instance(
    live: &Instances,
    added: &BTreeMap<String, Backoff>,
    name: &str,
) -> Option<InstanceId> {
    let generation = added.get(name)?.generation;
    live.iter()
        .find(|(_, (n, g, _))| n == name && *g == generation)
        .map(|(&id, _)| id)
}

/// The quick-death count and the delay follow the contract: a life shorter
/// than the effective threshold (a failed spawn's is 0) doubles the delay up
/// to the effective max and counts; a longer one resets the delay to the
/// effective min and the count to 0; `restart` resets both and its end
/// neither doubles nor counts; `start` resets the count. The restart after
/// an end waits the delay as it stood (0 after a long life, and after
/// `restart`, or `start` after `down`); giving up reports the count.
fn backoff_follows_the_contract() -> impl FnMut(&Step, &Sim, usize) -> Result<(), String> {
    let defaults = procmon_core::Settings::default();
    let (mut threshold, mut min, mut max) = (
        defaults.threshold,
        defaults.min_restart_delay,
        defaults.max_restart_delay,
    );
    let mut added: BTreeMap<String, Backoff> = BTreeMap::new();
    let mut generations = 0;
    let mut live: Instances = BTreeMap::new();
    // Which stops a service stop holds back, and which instances are
    // ready: what a call-off does to the end (D22, D23).
    let mut view = V5View::default();
    move |step, sim, seen| {
        let accepted = !sim.last_step_rejected();
        if accepted {
            // A held-back stop called off on an instance not ready yet:
            // `start-service` restarts it, and its cut life neither
            // doubles nor counts, as after `restart` (D22); `start NAME`
            // stops it as a `start` does a `down`'s instance (D23).
            let called_off = |name: Option<&str>| {
                view.live
                    .iter()
                    .filter(|(_, f)| {
                        f.held_back_by_the_service() && !f.ready && name.is_none_or(|n| n == f.name)
                    })
                    .map(|(id, _)| *id)
                    .collect::<Vec<_>>()
            };
            let (ids, asked) = match step {
                Step::StartService => (called_off(None), Asked::Restart),
                Step::Start { name } => (called_off(Some(name)), Asked::StartAfterDown),
                _ => (Vec::new(), Asked::Nothing),
            };
            for id in ids {
                if let Some(instance) = live.get_mut(&id) {
                    instance.2 = asked;
                }
            }
        }
        view.step(step, accepted);
        if accepted {
            match step {
                Step::Set(Setting::Threshold(d)) => threshold = *d,
                Step::Set(Setting::MinRestartDelay(d)) => min = *d,
                Step::Set(Setting::MaxRestartDelay(d)) => max = *d,
                Step::Add { name, spec } => {
                    generations += 1;
                    let backoff = Backoff {
                        policy: spec.policy,
                        delay: spec.policy.min_restart_delay.unwrap_or(min),
                        count: 0,
                        generation: generations,
                        wait: None,
                    };
                    added.insert(name.clone(), backoff);
                }
                Step::Remove { name } => {
                    added.remove(name);
                }
                Step::Restart { name } => {
                    let backoff = added.get_mut(name).ok_or("restart of an unknown name")?;
                    backoff.delay = backoff.policy.min_restart_delay.unwrap_or(min);
                    backoff.count = 0;
                    if let Some(id) = own_instance(&live, &added, name) {
                        live.get_mut(&id).expect("live").2 = Asked::Restart;
                    }
                }
                Step::Down { name } => {
                    if let Some(id) = own_instance(&live, &added, name) {
                        live.get_mut(&id).expect("live").2 = Asked::Down;
                    }
                }
                Step::Start { name } => {
                    let id = own_instance(&live, &added, name);
                    let instance = id.map(|id| &mut live.get_mut(&id).expect("live").2);
                    let backoff = added.get_mut(name).ok_or("start of an unknown name")?;
                    match instance {
                        None => backoff.count = 0,
                        Some(asked) if *asked == Asked::Down => {
                            *asked = Asked::StartAfterDown;
                            backoff.count = 0;
                        }
                        // Running, or stopping for another request: nothing.
                        Some(_) => {}
                    }
                }
                _ => {}
            }
        }
        for event in events_of(sim, seen) {
            view.event(event)?;
            let ended = match event {
                Event::Spawn { name, instance, .. } => {
                    let generation = added.get(name).ok_or("spawned an unknown name")?.generation;
                    live.insert(*instance, (name.clone(), generation, Asked::Nothing));
                    None
                }
                Event::Ended {
                    instance, uptime, ..
                } => Some((instance, *uptime)),
                Event::SpawnFailed { instance, .. } => Some((instance, Duration::ZERO)),
                Event::RestartScheduled { name, delay, .. } => {
                    let wait = added.get_mut(name).and_then(|b| b.wait.take());
                    if wait.is_some_and(|w| w != *delay) {
                        return Err(format!("{name}: a restart after {delay:?}, not {wait:?}"));
                    }
                    None
                }
                Event::GaveUp {
                    name, quick_deaths, ..
                } => {
                    let backoff = added.get_mut(name).ok_or("gave up on an unknown name")?;
                    backoff.wait = None;
                    if *quick_deaths != backoff.count {
                        return Err(format!(
                            "{name}: gave up at {quick_deaths} quick deaths, not {}",
                            backoff.count
                        ));
                    }
                    None
                }
                Event::NotRestarting { name, reason, .. } => {
                    if *reason != NotRestarting::Removed {
                        if let Some(backoff) = added.get_mut(name) {
                            backoff.wait = None;
                        }
                    }
                    None
                }
                Event::NotReady { instance, .. } => {
                    let (_, _, asked) = live
                        .get_mut(instance)
                        .ok_or("not-ready of a dead instance")?;
                    *asked = Asked::NotReady;
                    None
                }
                _ => None,
            };
            let Some((instance, uptime)) = ended else {
                continue;
            };
            let (name, generation, asked) =
                live.remove(instance).ok_or("the end of a dead instance")?;
            let Some(backoff) = added.get_mut(&name).filter(|b| b.generation == generation) else {
                continue; // removed
            };
            let policy = backoff.policy;
            let (own_min, own_max) = (
                policy.min_restart_delay.unwrap_or(min),
                policy.max_restart_delay.unwrap_or(max),
            );
            let quick = asked == Asked::NotReady || uptime < policy.threshold.unwrap_or(threshold);
            let mut wait = Duration::ZERO;
            if asked == Asked::Restart {
                backoff.delay = own_min;
            } else if quick {
                wait = backoff.delay;
                backoff.delay = (backoff.delay * 2).min(own_max);
                backoff.count += 1;
            } else {
                backoff.delay = own_min;
                backoff.count = 0;
            }
            if asked == Asked::StartAfterDown {
                wait = Duration::ZERO;
            }
            backoff.wait = Some(wait);
        }
        for (name, backoff) in &added {
            let status = sim
                .monitor()
                .status(name)
                .ok_or("an added name has no status")?;
            if (status.delay, status.quick_deaths) != (backoff.delay, backoff.count) {
                return Err(format!(
                    "{name}: delay {:?} and {} quick deaths, the contract says {:?} and {}",
                    status.delay, status.quick_deaths, backoff.delay, backoff.count
                ));
            }
        }
        Ok(())
    }
}

/// A name never has two live instances: from the spawns and ends alone,
/// and what the monitor reports agrees.
fn one_live_instance_per_name() -> impl FnMut(&Step, &Sim, usize) -> Result<(), String> {
    let mut live: BTreeMap<String, InstanceId> = BTreeMap::new();
    move |_step, sim, seen| {
        for event in events_of(sim, seen) {
            match event {
                Event::Spawn { name, instance, .. } => {
                    if let Some(other) = live.insert(name.clone(), *instance) {
                        return Err(format!(
                            "{name}: {instance:?} spawned while {other:?} lives"
                        ));
                    }
                }
                Event::Exit { name, instance, .. } | Event::SpawnFailed { name, instance, .. } => {
                    let was = live.remove(name);
                    if was != Some(*instance) {
                        return Err(format!(
                            "{name}: the end of {instance:?}, which was not live"
                        ));
                    }
                }
                _ => {}
            }
        }
        for name in NAMES {
            if sim.monitor().live_instance(name) != live.get(*name).copied() {
                return Err(format!("{name}: the monitor's live instance disagrees"));
            }
        }
        Ok(())
    }
}

// ----- v5: readiness, dependencies and service stops, from the events -----

/// An instance as the v5 observers follow it.
struct Followed {
    name: String,
    spec: ProcessSpec,
    spawned: Instant,
    ready: bool,
    /// Sent its stop signal, told it is not ready, or reached by a service
    /// stop or a removal (which may hold the signal back).
    stopping: bool,
    signalled: bool,
    /// Its definition was removed: a `start-service` does not call off
    /// its held-back stop.
    removed: bool,
}

impl Followed {
    /// Whether a `start-service` now calls off its stop (D22): a service
    /// stop held the signal back, and nothing was sent.
    fn held_back_by_the_service(&self) -> bool {
        self.stopping && !self.signalled && !self.removed
    }
}

/// What the v5 observers know, from the steps and the events alone: the
/// added names, the live instances, and the names `exited` after an end
/// by itself with a success code (what `completed` means).
#[derive(Default)]
struct V5View {
    added: std::collections::BTreeSet<String>,
    live: BTreeMap<InstanceId, Followed>,
    completed: std::collections::BTreeSet<String>,
    /// Ended instances whose decision is still to come: the name, how it
    /// ended, its policy.
    ending: BTreeMap<InstanceId, (String, ExitStatus, Policy)>,
    /// Whether the last end of each name was by itself with a success code.
    last_success: BTreeMap<String, bool>,
}

impl V5View {
    /// What an accepted step does before any of its events.
    fn step(&mut self, step: &Step, accepted: bool) {
        if !accepted {
            return;
        }
        match step {
            Step::Add { name, .. } => {
                self.added.insert(name.clone());
                self.completed.remove(name);
            }
            Step::Remove { name } => {
                self.added.remove(name);
                self.completed.remove(name);
                self.live
                    .values_mut()
                    .filter(|f| f.name == *name)
                    .for_each(|f| {
                        f.stopping = true;
                        f.removed = true;
                    });
            }
            Step::Down { name } => {
                self.completed.remove(name);
            }
            Step::StopService => self.live.values_mut().for_each(|f| f.stopping = true),
            // A held-back service stop is called off (D22): a ready instance
            // runs on; one not ready yet gets its stop signal among the
            // step's events, and stays stopping.
            Step::StartService => self
                .live
                .values_mut()
                .filter(|f| f.held_back_by_the_service() && f.ready)
                .for_each(|f| f.stopping = false),
            // `start` calls off the name's held-back stop the same way; one
            // not ready yet is stopped at once, to start again at its end
            // if the service runs then.
            Step::Start { name } => self
                .live
                .values_mut()
                .filter(|f| f.name == *name && f.held_back_by_the_service() && f.ready)
                .for_each(|f| f.stopping = false),
            _ => {}
        }
    }

    /// The condition of a dependency, as the contract's table says.
    fn holds(&self, name: &str, condition: Condition) -> bool {
        if !self.added.contains(name) {
            return false;
        }
        let live = self.live.values().find(|f| f.name == name);
        let completed = live.is_none() && self.completed.contains(name);
        completed
            || match (condition, live) {
                (Condition::Started, Some(f)) => !f.stopping,
                (Condition::Ready, Some(f)) => !f.stopping && f.ready,
                _ => false,
            }
    }

    /// Follows one event.
    fn event(&mut self, event: &Event) -> Result<(), String> {
        match event {
            Event::Spawn {
                at,
                name,
                instance,
                spec,
            } => {
                self.completed.remove(name);
                self.live.insert(
                    *instance,
                    Followed {
                        name: name.clone(),
                        spec: spec.clone(),
                        spawned: *at,
                        ready: spec.ready == Readiness::Spawned,
                        stopping: false,
                        signalled: false,
                        removed: false,
                    },
                );
            }
            Event::Waiting { name, .. } => {
                self.completed.remove(name);
            }
            Event::Ready { instance, .. } => {
                self.live
                    .get_mut(instance)
                    .ok_or("ready of a dead instance")?
                    .ready = true;
            }
            Event::NotReady { instance, .. } => {
                self.live
                    .get_mut(instance)
                    .ok_or("not-ready of a dead instance")?
                    .stopping = true;
            }
            Event::Signal {
                instance,
                reason: SignalReason::Stop,
                ..
            } => {
                let f = self
                    .live
                    .get_mut(instance)
                    .ok_or("a signal to a dead instance")?;
                f.stopping = true;
                f.signalled = true;
            }
            Event::CriticalEnded { .. } => self.live.values_mut().for_each(|f| f.stopping = true),
            Event::Exit {
                instance, status, ..
            } => {
                let f = self
                    .live
                    .remove(instance)
                    .ok_or("the end of a dead instance")?;
                self.ending
                    .insert(*instance, (f.name, *status, f.spec.policy));
            }
            Event::SpawnFailed { name, instance, .. } => {
                self.live
                    .remove(instance)
                    .ok_or("a failed spawn of a dead instance")?;
                self.last_success.insert(name.clone(), false);
            }
            Event::Ended {
                instance,
                on_request,
                ..
            } => {
                let (name, status, policy) =
                    self.ending.remove(instance).ok_or("an end with no exit")?;
                let success = matches!(status, ExitStatus::Code(code)
                    if policy.success_codes.unwrap_or(ExitCodes::ZERO).contains(code));
                self.last_success.insert(name, !on_request && success);
            }
            Event::NotRestarting {
                name,
                reason: NotRestarting::Policy(_),
                ..
            } if self.last_success.get(name) == Some(&true) => {
                self.completed.insert(name.clone());
            }
            _ => {}
        }
        Ok(())
    }
}

/// Nothing is spawned before the conditions of its `after` hold: at every
/// spawn, each dependency is added and is starting or running (`started`),
/// running and ready (`ready`), or `exited` after an end by itself with one
/// of its success codes (all three).
fn spawns_wait_for_their_conditions() -> impl FnMut(&Step, &Sim, usize) -> Result<(), String> {
    let mut view = V5View::default();
    move |step, sim, seen| {
        view.step(step, !sim.last_step_rejected());
        for event in events_of(sim, seen) {
            if let Event::Spawn { name, spec, .. } = event {
                for dependency in &spec.after {
                    if !view.holds(&dependency.name, dependency.condition) {
                        return Err(format!(
                            "spawned {name} before {} was {}",
                            dependency.name, dependency.condition
                        ));
                    }
                }
            }
            view.event(event)?;
        }
        Ok(())
    }
}

/// A service stop (the step, or a critical end) or a removal stops
/// dependents first: the stop signal of what they name in `after` waits
/// until no live instance names it, and is sent once none does. Only an
/// operator's request on that one process (`stop`, `down`, `restart`,
/// `restart-all`, D20) sends it sooner.
fn service_stops_wait_for_dependents() -> impl FnMut(&Step, &Sim, usize) -> Result<(), String> {
    let mut view = V5View::default();
    let mut held: std::collections::BTreeSet<InstanceId> = Default::default();
    move |step, sim, seen| {
        let accepted = !sim.last_step_rejected();
        let hold = |view: &V5View,
                    held: &mut std::collections::BTreeSet<InstanceId>,
                    name: Option<&str>| {
            for (id, f) in &view.live {
                if !f.signalled && name.is_none_or(|n| n == f.name) {
                    held.insert(*id);
                }
            }
        };
        match step {
            Step::StopService if accepted => hold(&view, &mut held, None),
            Step::Remove { name } if accepted => hold(&view, &mut held, Some(name)),
            // Called off (D22): kept running, or restarted at once.
            Step::StartService if accepted => {
                held.retain(|id| !view.live[id].held_back_by_the_service());
            }
            // So does `start` of the name.
            Step::Start { name } if accepted => {
                held.retain(|id| {
                    let f = &view.live[id];
                    !(f.name == *name && f.held_back_by_the_service())
                });
            }
            _ => {}
        }
        view.step(step, accepted);
        let requested = |name: &str| {
            accepted
                && match step {
                    Step::Stop { name: n } | Step::Down { name: n } | Step::Restart { name: n } => {
                        n == name
                    }
                    Step::RestartAll => true,
                    _ => false,
                }
        };
        for event in events_of(sim, seen) {
            match event {
                Event::CriticalEnded { .. } => hold(&view, &mut held, None),
                Event::Signal {
                    instance,
                    reason: SignalReason::Stop,
                    ..
                } if held.remove(instance) => {
                    let name = &view
                        .live
                        .get(instance)
                        .ok_or("a signal to a dead instance")?
                        .name;
                    let dependent = view
                        .live
                        .values()
                        .find(|f| f.spec.after.iter().any(|d| d.name == *name));
                    if let (Some(dependent), false) = (dependent, requested(name)) {
                        return Err(format!(
                            "{name} got its stop signal while its dependent {} lives",
                            dependent.name
                        ));
                    }
                }
                _ => {}
            }
            view.event(event)?;
        }
        held.retain(|id| view.live.contains_key(id));
        for id in &held {
            let name = &view.live[id].name;
            if !view
                .live
                .values()
                .any(|f| f.spec.after.iter().any(|d| d.name == *name))
            {
                return Err(format!(
                    "{name}'s stop is still held back with no live dependent"
                ));
            }
        }
        Ok(())
    }
}

/// A starting instance that is not ready within its ready timeout is
/// stopped exactly then: `not-ready NAME timeout` at its spawn plus the
/// timeout, at once followed by its stop signal; never at another time,
/// and never does an instance stay starting past it.
fn ready_timeouts_stop_exactly_then() -> impl FnMut(&Step, &Sim, usize) -> Result<(), String> {
    let mut view = V5View::default();
    move |step, sim, seen| {
        view.step(step, !sim.last_step_rejected());
        let events = events_of(sim, seen);
        for (i, event) in events.iter().enumerate() {
            if let Event::NotReady {
                at,
                instance,
                cause: procmon_core::NotReadyCause::Timeout,
                ..
            } = event
            {
                let f = view
                    .live
                    .get(instance)
                    .ok_or("not-ready of a dead instance")?;
                let due = f
                    .spec
                    .policy
                    .ready_timeout
                    .map(|t| f.spawned.saturating_add(t));
                if f.ready || f.stopping || due != Some(*at) {
                    return Err(format!(
                        "{}: not ready by timeout at {at}, due {due:?}, ready {}, stopping {}",
                        f.name, f.ready, f.stopping
                    ));
                }
                let stop = f.spec.policy.stop_signal.unwrap_or(Signal::Term);
                match events.get(i + 1) {
                    Some(Event::Signal {
                        at: then,
                        instance: to,
                        signal,
                        reason: SignalReason::Stop,
                        ..
                    }) if then == at && to == instance && *signal == stop => {}
                    next => {
                        return Err(format!(
                            "{}: not ready at {at}, then {next:?} rather than its stop signal",
                            f.name
                        ))
                    }
                }
            }
            view.event(event)?;
        }
        for f in view.live.values() {
            if let (false, false, Some(timeout)) =
                (f.ready, f.stopping, f.spec.policy.ready_timeout)
            {
                let due = f.spawned.saturating_add(timeout);
                if due <= sim.now() {
                    return Err(format!(
                        "{} is still starting at {}, past its ready timeout at {due}",
                        f.name,
                        sim.now()
                    ));
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    /// A name never has two live instances.
    #[test]
    fn never_two_live_instances_of_a_name(case in case()) {
        observe(&case, &mut one_live_instance_per_name())?;
    }

    /// Nothing held, `exited` or `failed` starts but on request or retry.
    #[test]
    fn held_exited_and_failed_start_only_on_request_or_retry(case in case()) {
        observe(&case, &mut blocked_names_start_only_on_request())?;
    }

    /// Stops send the process's stop signal, KILL its kill time later.
    #[test]
    fn stops_send_the_stop_signal_then_kill_after_the_kill_time(case in case()) {
        observe(&case, &mut stops_use_the_stop_signal_and_kill_time())?;
    }

    /// An on-failure success, or any end of a never process, by itself,
    /// restarts nothing.
    #[test]
    fn on_failure_successes_and_never_restart_nothing(case in case()) {
        observe(&case, &mut successes_and_never_do_not_restart())?;
    }

    /// The quick-death count and the delay follow the contract.
    #[test]
    fn quick_deaths_and_delay_follow_the_contract(case in case()) {
        observe(&case, &mut backoff_follows_the_contract())?;
    }

    /// Nothing is spawned before the conditions of its `after` hold.
    #[test]
    fn nothing_spawns_before_its_conditions_hold(case in case()) {
        observe(&case, &mut spawns_wait_for_their_conditions())?;
    }

    /// A service stop or a removal sends no stop signal while a dependent
    /// still has a live instance, and sends it once none has.
    #[test]
    fn service_stops_stop_dependents_first(case in case()) {
        observe(&case, &mut service_stops_wait_for_dependents())?;
    }

    /// A starting instance not ready within its ready timeout is stopped at
    /// exactly that time.
    #[test]
    fn ready_timeouts_stop_at_exactly_their_time(case in case()) {
        observe(&case, &mut ready_timeouts_stop_exactly_then())?;
    }
}

/// Scenario-like bytes: words of the format, the bytes that make lexing hard,
/// and anything at all.
fn scenario_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "set ",
            "threshold ",
            "line-limit ",
            "min-restart-delay ",
            "add ",
            "a ",
            "-- ",
            "--uid ",
            "--env ",
            "K=v ",
            "start-service",
            "stop-service",
            "restart-all",
            "stop ",
            "remove ",
            "start ",
            "advance ",
            "exit ",
            "kill ",
            "TERM",
            "KILL",
            "term-delay ",
            "output ",
            "stdout ",
            "stderr ",
            "expect ",
            "error",
            "running ",
            "logged ",
            "now ",
            "ready ",
            "not-ready ",
            "--ready ",
            "notify ",
            "fd:3 ",
            "log:",
            "--ready-timeout ",
            "--after ",
            "a:ready",
            ",b:started",
            ":completed ",
            "--critical ",
            "container ",
            "on",
            "finished ",
            "not-finished",
            "state ",
            "starting",
            "waiting",
            "0",
            "1",
            "2.5",
            "0.000000001",
            "99999999999999999999",
            "-1",
            "\n",
            "\\x",
            "\\xff",
            "\\q",
            "\"",
            "\\\"",
            "#",
            " ",
            "\\n",
            "\r\n",
            "\\t",
            "\\\\",
            "é",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..3),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config())]

    /// Parsing is total: any bytes give steps or a `FILE:LINE` error, every
    /// parsed step prints as text that parses back, and running never panics.
    #[test]
    fn any_bytes_parse_or_fail_with_a_line(bytes in scenario_bytes()) {
        match procmon_sim::parse("any.scn", &bytes) {
            Err(error) => {
                let lines = bytes.split(|&b| b == b'\n').count();
                prop_assert!(error.line >= 1 && error.line <= lines, "{}", error);
                let prefix = format!("any.scn:{}: ", error.line);
                prop_assert!(error.to_string().starts_with(&prefix), "{}", error);
            }
            Ok(steps) => {
                for numbered in &steps {
                    let text = numbered.step.to_string();
                    let parsed = procmon_sim::parse_line(text.as_bytes());
                    prop_assert_eq!(parsed, Ok(Some(numbered.step.clone())), "{}", text);
                }
                let _ = procmon_sim::run("any.scn", &bytes);
            }
        }
    }
}

/// The model's line rule is the contract's own example.
#[test]
fn the_model_splits_lines_as_the_contract_says() {
    let split = |input: &[u8]| {
        let (mut buffer, mut lines) = (Vec::new(), Vec::new());
        split_lines(&mut buffer, input, 4, &mut lines);
        (lines, buffer)
    };
    assert_eq!(
        split(b"abcdefgh\n"),
        (vec![b"abcd".to_vec(), b"efgh".to_vec()], vec![])
    );
    assert_eq!(split(b"abcd\n"), (vec![b"abcd".to_vec()], vec![]));
}

/// The contract's v4 corners, run with the model: each must be reached and
/// agree with it (rejections are answered by the runner).
#[test]
fn the_model_takes_the_contracts_corners() {
    let text = include_str!("corners.scn");
    let steps: Vec<Step> = procmon_sim::parse("corners.scn", text.as_bytes())
        .expect("the corners parse")
        .into_iter()
        .map(|numbered| numbered.step)
        .collect();
    let mut model = Model::new();
    let ran = execute(&steps, Some(&mut model), LineDelivery::Lent)
        .unwrap_or_else(|failure| panic!("{failure}"));
    for line in [
        "spawn-failed c errno 13",
        "gave-up c",
        "error set max-restart-delay",
    ] {
        assert!(
            ran.sim.trace().contains(line),
            "no {line} in\n{}",
            ran.sim.trace()
        );
    }
}

/// Every documented scenario, run with the model (its `expect error` lines
/// left to the runner, which answers rejections itself): the model agrees
/// with the monitor on the v5 scenarios as on the older ones, and the
/// trace is the snapshot's.
#[test]
fn the_model_follows_every_documented_scenario() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("docs/scenarios")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "scn"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let source = std::fs::read(&path).expect("readable");
        let steps: Vec<Step> = procmon_sim::parse("x.scn", &source)
            .expect("documented scenarios parse")
            .into_iter()
            .map(|numbered| numbered.step)
            .filter(|step| *step != Step::Expect(procmon_sim::Expectation::Error))
            .collect();
        let mut model = Model::new();
        let ran = execute(&steps, Some(&mut model), LineDelivery::Lent)
            .unwrap_or_else(|failure| panic!("{}: {failure}", path.display()));
        let expected = std::fs::read_to_string(path.with_extension("trace")).expect("a trace");
        assert_eq!(ran.sim.trace(), expected, "{}", path.display());
    }
}
