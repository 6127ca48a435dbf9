//! The transition table of `docs/architecture.md`, rendered from the code.
//!
//! Every (state, event) pair is walked through the real monitor: each state
//! is reached by public calls, each event applied by a public call or input,
//! and the commands it queued and the state it left are written as one row.
//! The test fails when the table in the docs differs from the rendering;
//! `PROCMON_BLESS=1 cargo test -p procmon-core` rewrites it.

extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::num::NonZeroU32;
use core::time::Duration;
use std::println;

use super::{Kill, Life, Then};
use crate::command::{Command, Report, SignalReason};
use crate::input::{ExitStatus, Input};
use crate::monitor::Monitor;
use crate::spec::{Condition, Policy, ProcessSpec, Readiness, RestartPolicy, Settings};
use crate::time::{Instant, Seconds};
use crate::timer::TimerKind;

const DOC: &str = "docs/architecture.md";
const BEGIN: &str =
    "<!-- transitions:begin (rendered by crates/procmon-core/src/life/table.rs) -->";
const END: &str = "<!-- transitions:end -->";

/// The process every row is about: `on-failure`, giving up after 2 quick
/// deaths, retried after 60 s, under the seed's settings (threshold 10,
/// kill time 5, delays 2 to 10).
fn process_spec() -> ProcessSpec {
    ProcessSpec::new(["p"]).with_policy(Policy {
        restart: Some(RestartPolicy::OnFailure),
        give_up_after: NonZeroU32::new(2),
        retry_failed_after: Some(Duration::from_secs(60)),
        ..Policy::default()
    })
}

/// Which processes a row's world holds besides `p`'s policy above.
#[derive(Clone, Copy)]
enum Cast {
    /// `p` alone, ready when spawned.
    Alone,
    /// `p` alone, ready on notification, within a ready timeout of 30 s.
    Notifying,
    /// `d` (ready on notification) added first, and `p` with `after = { d
    /// = "ready" }`.
    Dependent,
    /// `p` added first, and `d` with `after = { p = "started" }`.
    DependedOn,
    /// As `DependedOn`, but `p` is ready on notification (and not ready
    /// yet when the rows reach it).
    DependedOnNotifying,
}

fn secs(s: u64) -> Instant {
    Instant::from_nanos(s * 1_000_000_000)
}

struct World {
    monitor: Monitor,
    now: Instant,
    commands: Vec<Command>,
}

impl World {
    fn new(cast: Cast) -> World {
        let settings = Settings {
            threshold: Duration::from_secs(10),
            min_restart_delay: Duration::from_secs(2),
            max_restart_delay: Duration::from_secs(10),
            ..Settings::default()
        };
        let mut monitor = Monitor::new(settings).expect("valid settings");
        let mut add = |name: &str, spec: ProcessSpec| {
            monitor
                .add(Instant::ZERO, name, spec)
                .expect("a valid process");
        };
        match cast {
            Cast::Alone => add("p", process_spec()),
            Cast::Notifying => {
                let mut spec = process_spec().with_ready(Readiness::Notify);
                spec.policy.ready_timeout = Some(Duration::from_secs(30));
                add("p", spec);
            }
            Cast::Dependent => {
                add("d", ProcessSpec::new(["d"]).with_ready(Readiness::Notify));
                add("p", process_spec().with_after("d", Condition::Ready));
            }
            Cast::DependedOn | Cast::DependedOnNotifying => {
                let spec = match cast {
                    Cast::DependedOn => process_spec(),
                    _ => process_spec().with_ready(Readiness::Notify),
                };
                add("p", spec);
                add(
                    "d",
                    ProcessSpec::new(["d"]).with_after("p", Condition::Started),
                );
            }
        }
        let mut world = World {
            monitor,
            now: Instant::ZERO,
            commands: Vec::new(),
        };
        world.drain();
        world
    }

    fn drain(&mut self) {
        self.commands.clear();
        while let Some(command) = self.monitor.poll_command() {
            self.commands.push(command);
        }
    }

    fn call(&mut self, f: impl FnOnce(&mut Monitor, Instant)) {
        f(&mut self.monitor, self.now);
        self.drain();
    }

    fn input(&mut self, input: Input<'_>) {
        self.monitor.handle(self.now, input);
        self.drain();
    }

    fn advance(&mut self, by: u64) {
        self.now = secs(self.now.as_nanos() / 1_000_000_000 + by);
    }

    /// The live instance of `p` (or of its removed predecessor) ends.
    fn exit(&mut self, code: i32) {
        let instance = self.monitor.live_instance("p").expect("a live instance");
        self.input(Input::Exited {
            instance,
            status: ExitStatus::Code(code),
        });
    }

    /// The slot of the process named `p` (the added one, else the removed).
    fn p_slot(&self) -> u32 {
        match self.monitor.key("p") {
            Some(key) => key.0,
            None => self
                .monitor
                .processes
                .iter()
                .find(|(_, p)| &*p.name == "p")
                .map_or(u32::MAX, |(index, _)| index as u32),
        }
    }

    /// The armed timer of `kind` of the process `p` names, or its removed
    /// predecessor's, fires.
    fn fire(&mut self, kind: TimerKind) -> bool {
        let armed = self
            .monitor
            .processes
            .iter()
            .filter(|(_, p)| &*p.name == "p")
            .find_map(|(_, p)| p.life.armed().filter(|(k, _)| *k == kind));
        let Some((_, armed)) = armed else {
            return false;
        };
        self.now = armed.at;
        self.input(Input::TimerFired { timer: armed.timer });
        true
    }

    /// The label of the life of the definition named `p`, or of the
    /// removed one when none is added.
    fn life(&self) -> String {
        let process = match self.monitor.key("p") {
            Some(key) => &self.monitor.processes[key.index()],
            None => match self.monitor.processes.iter().find(|(_, p)| &*p.name == "p") {
                Some((_, p)) => p,
                None => return "freed".to_string(),
            },
        };
        let mut label = life_label(&process.life);
        if !self.monitor.service_running {
            label.push_str(", service stopped");
        }
        label
    }

    /// The commands of the last call about `p`, as the table's action words.
    fn action(&self) -> String {
        let p = self.p_slot();
        let words: Vec<String> = self
            .commands
            .iter()
            .filter(|c| command_slot(c) == Some(p))
            .filter_map(action_word)
            .collect();
        if words.is_empty() {
            "—".to_string()
        } else {
            words.join(", ")
        }
    }
}

fn life_label(life: &Life) -> String {
    match life {
        Life::Stopped => "stopped".to_string(),
        Life::Starting { .. } => "starting".to_string(),
        Life::Running(_) => "running".to_string(),
        Life::Waiting => "waiting".to_string(),
        Life::Stopping { then, kill, .. } => {
            let then = match then {
                Then::Rules => "rules",
                Then::Restart => "restart",
                Then::Start => "start",
                Then::Hold => "hold",
                Then::Forget => "forget",
                Then::FailedStart => "failed start",
            };
            let kill = match kill {
                Kill::Armed(..) => "",
                Kill::Sent => " (KILL sent)",
                Kill::Deferred { ready: true } => " (after its dependents)",
                Kill::Deferred { ready: false } => " (after its dependents, not ready)",
            };
            format!("stopping, then {then}{kill}")
        }
        Life::Backoff(_) => "backoff".to_string(),
        Life::Held => "held".to_string(),
        Life::Exited => "exited".to_string(),
        Life::Failed { retry: Some(_) } => "failed, retry due".to_string(),
        Life::Failed { retry: None } => "failed".to_string(),
        Life::Removed => "removed".to_string(),
    }
}

fn action_word(command: &Command) -> Option<String> {
    let word = match command {
        Command::Spawn { .. } => "spawn".to_string(),
        Command::Signal { reason, .. } => match reason {
            SignalReason::Stop => "stop signal",
            SignalReason::KillTime | SignalReason::KillAll => "KILL",
            SignalReason::Request => "signal",
        }
        .to_string(),
        Command::SetTimer { timer, .. } => match timer.kind() {
            TimerKind::Kill => "arm KILL".to_string(),
            TimerKind::Retry => "arm retry".to_string(),
            TimerKind::Ready => "arm ready timeout".to_string(),
            TimerKind::Restart => return None, // shown with its delay below
        },
        Command::CancelTimer { timer } => format!(
            "cancel {}",
            match timer.kind() {
                TimerKind::Kill => "KILL",
                TimerKind::Restart => "restart",
                TimerKind::Retry => "retry",
                TimerKind::Ready => "ready timeout",
            }
        ),
        Command::Report(Report::RestartScheduled { delay, .. }) if delay.is_zero() => {
            "restart at once".to_string()
        }
        Command::Report(Report::RestartScheduled { delay, .. }) => {
            format!("restart in {} s", Seconds(*delay))
        }
        Command::Report(Report::GaveUp { .. }) => "give up".to_string(),
        Command::Report(Report::Ready { .. }) => "ready".to_string(),
        Command::Report(Report::NotReady { .. }) => "not ready".to_string(),
        Command::Report(Report::Waiting { .. }) => "wait".to_string(),
        Command::Report(_) | Command::Log(_) => return None,
    };
    Some(word)
}

/// The slot of the process a command is about, if it names one.
fn command_slot(command: &Command) -> Option<u32> {
    Some(match command {
        Command::Spawn { process, .. } | Command::Signal { process, .. } => process.0,
        Command::SetTimer { timer, .. } | Command::CancelTimer { timer } => timer.slot,
        Command::Log(line) => line.process.0,
        Command::Report(report) => match report {
            Report::Exited { process, .. }
            | Report::SpawnFailed { process, .. }
            | Report::RestartScheduled { process, .. }
            | Report::GaveUp { process, .. }
            | Report::StateChanged { process, .. }
            | Report::Ready { process, .. }
            | Report::NotReady { process, .. }
            | Report::Waiting { process }
            | Report::CriticalEnded { process, .. }
            | Report::NotRestarting { process, .. } => process.0,
        },
    })
}

/// A state of the table, and how to reach it.
struct Row {
    label: &'static str,
    cast: Cast,
    reach: fn(&mut World),
}

fn started(w: &mut World) {
    w.call(|m, now| m.start_service(now).unwrap());
}

const ROWS: &[Row] = &[
    Row {
        cast: Cast::Alone,
        label: "stopped, service stopped",
        reach: |_| {},
    },
    Row {
        cast: Cast::Alone,
        label: "stopped, waiting for the name's removed instance",
        reach: |w| {
            started(w);
            w.call(|m, now| m.remove(now, "p").unwrap());
            w.call(|m, now| {
                m.add(now, "p", process_spec()).unwrap();
            });
        },
    },
    Row {
        cast: Cast::Alone,
        label: "running",
        reach: started,
    },
    Row {
        cast: Cast::Alone,
        label: "running, service stopped",
        reach: |w| w.call(|m, now| m.start(now, "p").unwrap()),
    },
    Row {
        cast: Cast::Alone,
        label: "stopping, then rules",
        reach: |w| {
            started(w);
            w.call(|m, now| m.stop(now, "p").unwrap());
        },
    },
    Row {
        cast: Cast::Alone,
        label: "stopping, then rules (KILL sent)",
        reach: |w| {
            started(w);
            w.call(|m, now| m.stop(now, "p").unwrap());
            w.fire(TimerKind::Kill);
        },
    },
    Row {
        cast: Cast::Alone,
        label: "stopping, then rules, service stopped",
        reach: |w| {
            started(w);
            w.call(|m, now| m.stop_service(now));
        },
    },
    Row {
        cast: Cast::Alone,
        label: "stopping, then restart",
        reach: |w| {
            started(w);
            w.call(|m, now| m.restart(now, "p").unwrap());
        },
    },
    Row {
        cast: Cast::Alone,
        label: "stopping, then start",
        reach: |w| {
            started(w);
            w.call(|m, now| m.down(now, "p").unwrap());
            w.call(|m, now| m.start(now, "p").unwrap());
        },
    },
    Row {
        cast: Cast::Alone,
        label: "stopping, then hold",
        reach: |w| {
            started(w);
            w.call(|m, now| m.down(now, "p").unwrap());
        },
    },
    Row {
        cast: Cast::Alone,
        label: "stopping, then forget (removed)",
        reach: |w| {
            started(w);
            w.call(|m, now| m.remove(now, "p").unwrap());
        },
    },
    Row {
        cast: Cast::Alone,
        label: "backoff",
        reach: |w| {
            started(w);
            w.exit(1);
        },
    },
    Row {
        cast: Cast::Alone,
        label: "held",
        reach: |w| {
            started(w);
            w.call(|m, now| m.down(now, "p").unwrap());
            w.exit(0);
        },
    },
    Row {
        cast: Cast::Alone,
        label: "exited",
        reach: |w| {
            started(w);
            w.exit(0);
        },
    },
    Row {
        cast: Cast::Alone,
        label: "exited, service stopped",
        reach: |w| {
            started(w);
            w.exit(0);
            w.call(|m, now| m.stop_service(now));
        },
    },
    Row {
        cast: Cast::Alone,
        label: "failed, retry due",
        reach: |w| {
            started(w);
            w.exit(1);
            w.fire(TimerKind::Restart);
            w.exit(1);
        },
    },
    Row {
        cast: Cast::Alone,
        label: "failed, service stopped",
        reach: |w| {
            started(w);
            w.exit(1);
            w.fire(TimerKind::Restart);
            w.exit(1);
            w.call(|m, now| m.stop_service(now));
        },
    },
    Row {
        cast: Cast::Notifying,
        label: "starting",
        reach: started,
    },
    Row {
        cast: Cast::Notifying,
        label: "stopping, then failed start",
        reach: |w| {
            started(w);
            w.fire(TimerKind::Ready);
        },
    },
    Row {
        cast: Cast::Dependent,
        label: "waiting",
        reach: started,
    },
    Row {
        cast: Cast::DependedOn,
        label: "stopping, then rules (after its dependents), service stopped",
        reach: |w| {
            started(w);
            w.call(|m, now| m.stop_service(now));
        },
    },
    Row {
        cast: Cast::DependedOnNotifying,
        label: "stopping, then rules (after its dependents, not ready), service stopped",
        reach: |w| {
            started(w);
            w.call(|m, now| m.stop_service(now));
        },
    },
];

/// An event of the table, and how to apply it; `false` when it cannot
/// happen in the state reached (no live instance, no such timer).
struct Column {
    label: &'static str,
    apply: fn(&mut World) -> bool,
}

fn request(w: &mut World, f: fn(&mut Monitor, Instant, &str) -> bool) -> bool {
    if w.monitor.key("p").is_none() {
        return false;
    }
    let ok = f(&mut w.monitor, w.now, "p");
    w.drain();
    ok
}

fn ends(w: &mut World, code: i32, long: bool, reaching_give_up: bool) -> bool {
    let Some(instance) = w.monitor.live_instance("p") else {
        return false;
    };
    if long {
        w.advance(10);
    }
    if reaching_give_up {
        let key = instance_key(w);
        w.monitor.processes[key].quick_deaths = 1;
    }
    w.input(Input::Exited {
        instance,
        status: ExitStatus::Code(code),
    });
    true
}

/// Feeds `input` about the live instance of `name`.
fn about(w: &mut World, name: &str, input: fn(crate::input::InstanceId) -> Input<'static>) -> bool {
    match w.monitor.live_instance(name) {
        Some(instance) => {
            w.input(input(instance));
            true
        }
        None => false,
    }
}

fn instance_key(w: &World) -> usize {
    let instance = w.monitor.live_instance("p").expect("live");
    instance.slot as usize
}

const COLUMNS: &[Column] = &[
    Column {
        label: "start",
        apply: |w| request(w, |m, now, n| m.start(now, n).is_ok()),
    },
    Column {
        label: "restart",
        apply: |w| request(w, |m, now, n| m.restart(now, n).is_ok()),
    },
    Column {
        label: "stop, restart-all",
        apply: |w| request(w, |m, now, n| m.stop(now, n).is_ok()),
    },
    Column {
        label: "down",
        apply: |w| request(w, |m, now, n| m.down(now, n).is_ok()),
    },
    Column {
        label: "remove",
        apply: |w| request(w, |m, now, n| m.remove(now, n).is_ok()),
    },
    Column {
        label: "start-service",
        apply: |w| {
            w.call(|m, now| m.start_service(now).unwrap());
            true
        },
    },
    Column {
        label: "stop-service",
        apply: |w| {
            w.call(|m, now| m.stop_service(now));
            true
        },
    },
    Column {
        label: "kill-all",
        apply: |w| {
            w.call(|m, now| m.kill_all(now));
            true
        },
    },
    Column {
        label: "ends with a success code",
        apply: |w| ends(w, 0, false, false),
    },
    Column {
        label: "ends in failure after a long life",
        apply: |w| ends(w, 1, true, false),
    },
    Column {
        label: "ends in failure, a quick death",
        apply: |w| ends(w, 1, false, false),
    },
    Column {
        label: "ends in failure, the quick death reaching give_up_after",
        apply: |w| ends(w, 1, false, true),
    },
    Column {
        label: "KILL timer fires",
        apply: |w| w.fire(TimerKind::Kill),
    },
    Column {
        label: "restart timer fires",
        apply: |w| w.fire(TimerKind::Restart),
    },
    Column {
        label: "retry timer fires",
        apply: |w| w.fire(TimerKind::Retry),
    },
    Column {
        label: "ready",
        apply: |w| about(w, "p", |instance| Input::Ready { instance }),
    },
    Column {
        label: "not ready (channel closed)",
        apply: |w| about(w, "p", |instance| Input::NotReady { instance }),
    },
    Column {
        label: "ready timeout fires",
        apply: |w| w.fire(TimerKind::Ready),
    },
    Column {
        label: "its dependency becomes ready",
        apply: |w| {
            w.monitor.key("d").is_some()
                && w.monitor
                    .spec(w.monitor.key("d").unwrap())
                    .unwrap()
                    .after
                    .is_empty()
                && about(w, "d", |instance| Input::Ready { instance })
        },
    },
    Column {
        label: "its dependent ends",
        apply: |w| {
            w.monitor.key("d").is_some()
                && !w
                    .monitor
                    .spec(w.monitor.key("d").unwrap())
                    .unwrap()
                    .after
                    .is_empty()
                && about(w, "d", |instance| Input::Exited {
                    instance,
                    status: ExitStatus::Code(0),
                })
        },
    },
];

/// The whole table as markdown.
fn render() -> String {
    let mut out = String::new();
    out.push_str("| state | event | action | next state |\n| --- | --- | --- | --- |\n");
    for row in ROWS {
        let mut reached = World::new(row.cast);
        (row.reach)(&mut reached);
        assert_eq!(
            reached.life(),
            row.label
                .replace(" (removed)", "")
                .replace(", waiting for the name's removed instance", ""),
            "the recipe of a row reaches its state"
        );
        for column in COLUMNS {
            let mut w = World::new(row.cast);
            (row.reach)(&mut w);
            if !(column.apply)(&mut w) {
                continue;
            }
            let next = w.life();
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.label,
                column.label,
                w.action(),
                next
            ));
        }
    }
    out
}

#[test]
fn the_table_in_the_docs_is_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DOC);
    let doc = std::fs::read_to_string(&path).expect("docs/architecture.md exists");
    let rendered = render();
    let (start, end) = match (doc.find(BEGIN), doc.find(END)) {
        (Some(start), Some(end)) if start < end => (start + BEGIN.len(), end),
        _ => panic!("{DOC} has no `{BEGIN}` ... `{END}` section"),
    };
    let current = doc[start..end].trim();
    if current == rendered.trim() {
        return;
    }
    if std::env::var_os("PROCMON_BLESS").is_some_and(|v| v == "1") {
        let updated = format!("{}\n{}{}", &doc[..start], rendered, &doc[end..]);
        std::fs::write(&path, updated).expect("rewrite the docs");
        return;
    }
    println!("{rendered}");
    panic!(
        "the transition table in {DOC} differs from the code (rendered above); \
         `PROCMON_BLESS=1 cargo test -p procmon-core` rewrites it"
    );
}
