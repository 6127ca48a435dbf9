//! The life of one process: one private state enum, and the one function
//! that moves a process from state to state.
//!
//! Like s6-supervise's `actions[state][event]` table, every (state, event)
//! pair is a named arm of [`Monitor::transition`]; callers say what happened
//! (a request, an end, a fired timer), never which state comes next. The
//! table in `docs/architecture.md` is rendered from this code by walking
//! every pair, and a test fails when the two disagree.

use core::mem;

use core::time::Duration;
use smallvec::SmallVec;

use crate::command::{
    Command, LogLine, NotReadyCause, NotRestarting, Report, Signal, SignalReason,
};
use crate::input::{ExitStatus, InstanceId, Stream};
use crate::lines::LineBuffer;
use crate::monitor::{Monitor, ProcessKey, ProcessState, ProcessStats};
use crate::spec::{Condition, ProcessSpec, RestartPolicy};
use crate::time::Instant;
use crate::timer::{TimerId, TimerKind};

/// One added (or removed, still live) definition and its life.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) name: alloc::boxed::Box<str>,
    pub(crate) spec: ProcessSpec,
    pub(crate) add_seq: u64,
    pub(crate) life: Life,
    /// The delay the next quick death will wait.
    pub(crate) delay: Duration,
    /// Quick deaths in a row (a long life sets it back to 0).
    pub(crate) quick_deaths: u32,
    /// When the current or last instance was spawned: history, not state.
    pub(crate) last_started: Option<Instant>,
    /// Whether an instance has been ready since the process was added:
    /// what the monitor's own readiness waits for.
    pub(crate) ever_ready: bool,
    /// Whether the last end was by itself with a success code: what
    /// `completed` and `exited after a success` mean. History, not state.
    pub(crate) completed: bool,
    /// Whether the last end was on request or a success (true before any
    /// end): what a finishing monitor's exit status is made of.
    pub(crate) ended_ok: bool,
    pub(crate) stats: ProcessStats,
}

/// Where a process is in its life. Each variant holds exactly the data that
/// exists in that state, so no combination of fields can contradict it.
#[derive(Debug)]
pub(crate) enum Life {
    /// No instance, nothing due: never started, or the service stopped it.
    Stopped,
    /// A live instance that is not ready yet: spawned with a readiness
    /// other than at spawn. Its `ready_timeout`, if any, is armed.
    Starting {
        instance: Instance,
        timeout: Option<Armed>,
    },
    /// A live, ready instance that the monitor has not asked to stop.
    Running(Instance),
    /// A live instance that the monitor has sent its stop signal.
    Stopping {
        instance: Instance,
        kill: Kill,
        /// What its end leads to; decided by the request that stopped it.
        then: Then,
    },
    /// A restart is due at the armed time (a zero delay included).
    Backoff(Armed),
    /// Held down by `down` until `start` or `restart`.
    Held,
    /// Due to start, but the conditions of its `after` do not hold yet.
    Waiting,
    /// Ended by itself and its restart policy restarted nothing.
    Exited,
    /// Gave up after too many quick deaths; maybe a retry is due.
    Failed { retry: Option<Armed> },
    /// Removed with nothing alive: freed at the start of the next call, so
    /// its key stays readable while the world carries out drained commands.
    Removed,
}

/// A live instance: one spawn, and its partial output lines.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) id: InstanceId,
    pub(crate) started: Instant,
    pub(crate) stdout: LineBuffer,
    pub(crate) stderr: LineBuffer,
}

/// Where a stopping instance is on its way to KILL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kill {
    /// KILL is due at the armed time unless the instance ends first; with
    /// the kill time it was armed with, which the KILL then reports.
    Armed(Armed, Duration),
    /// KILL was sent; only the end is left.
    Sent,
    /// The stop signal waits until no live instance depends on this one
    /// (a service stop or a removal stops dependents first). `ready` is
    /// whether the instance was ready when its stop was held back: a
    /// `start-service` that cancels the stop needs it, since facts about
    /// readiness that arrive while it stops are ignored.
    Deferred { ready: bool },
}

/// An armed timer and when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Armed {
    pub(crate) timer: TimerId,
    pub(crate) at: Instant,
}

/// What the end of a stopping instance leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// `stop`, `restart-all`, `stop-service`: the restart rules, while the
    /// service runs (Twisted's behaviour, whatever the restart policy).
    Rules,
    /// `restart`: start again at once, while the service runs.
    Restart,
    /// `start` lifted the hold of a `down` while it was stopping: start again
    /// at once, with the usual delay and count rules but no giving up.
    Start,
    /// `down`: hold it.
    Hold,
    /// `remove`: forget it; a definition added again under the name starts.
    Forget,
    /// It never became ready: the restart policy decides as after an end
    /// by itself that failed, and the end is a quick death.
    FailedStart,
}

/// What happened to a process, as [`Monitor::transition`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// `start NAME`.
    Start,
    /// `restart NAME`.
    Restart,
    /// `stop NAME`, or `restart-all` reaching it.
    Stop,
    /// `down NAME`.
    Down,
    /// `remove NAME`.
    Remove,
    /// `start-service` reaching it.
    ServiceStart,
    /// `stop-service` reaching it.
    ServiceStop,
    /// `kill_all` reaching it: the service stops and a live instance gets
    /// KILL at once.
    KillAll,
    /// Its live instance ended.
    Ended(End),
    /// Its armed KILL timer fired.
    KillDue,
    /// Its armed restart timer fired.
    RestartDue,
    /// Its armed retry timer fired.
    RetryDue,
    /// The removed instance of its name, which it waited for, ended.
    PredecessorGone,
    /// Its live instance said it is ready.
    Ready,
    /// Its live instance's notification channel closed before it was ready.
    NotReady,
    /// Its armed ready timeout fired.
    ReadyDue,
    /// While it waits, every condition of its `after` came to hold.
    DependenciesMet,
    /// While its stop waits for its dependents, the last of them ended.
    DependentsGone,
}

/// How a live instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The OS reported its exit.
    Exited(ExitStatus),
    /// It never ran: the spawn failed with this errno.
    SpawnFailed(i32),
}

impl Life {
    /// The live instance, if this state has one.
    pub(crate) fn instance(&self) -> Option<&Instance> {
        match self {
            Life::Starting { instance, .. }
            | Life::Running(instance)
            | Life::Stopping { instance, .. } => Some(instance),
            _ => None,
        }
    }

    pub(crate) fn instance_mut(&mut self) -> Option<&mut Instance> {
        match self {
            Life::Starting { instance, .. }
            | Life::Running(instance)
            | Life::Stopping { instance, .. } => Some(instance),
            _ => None,
        }
    }

    /// Whether this is an instance whose stop a service stop holds back
    /// for its dependents: what `start_service` calls off.
    pub(crate) fn is_deferred_stop(&self) -> bool {
        matches!(
            self,
            Life::Stopping {
                kill: Kill::Deferred { .. },
                then: Then::Rules,
                ..
            }
        )
    }

    /// The timer this state has armed, if any.
    pub(crate) fn armed(&self) -> Option<(TimerKind, Armed)> {
        match self {
            Life::Stopping {
                kill: Kill::Armed(armed, _),
                ..
            } => Some((TimerKind::Kill, *armed)),
            Life::Backoff(armed) => Some((TimerKind::Restart, *armed)),
            Life::Failed { retry: Some(armed) } => Some((TimerKind::Retry, *armed)),
            Life::Starting {
                timeout: Some(armed),
                ..
            } => Some((TimerKind::Ready, *armed)),
            _ => None,
        }
    }
}

impl Monitor {
    /// The one place where a process changes state. Every arm names its
    /// action; `unreachable!` marks pairs the callers rule out (an end of a
    /// state with no instance, a timer the state has not armed).
    ///
    /// Reports a change of the name's contract state (`StateChanged`) when
    /// asked to ([`Monitor::report_state_changes`]).
    ///
    /// May queue any command.
    pub(crate) fn transition(&mut self, key: ProcessKey, event: Event) {
        if !self.state_reports {
            return self.apply(key, event);
        }
        let before = self.public_state(key);
        self.apply(key, event);
        self.report_state_change(key, before);
    }

    /// Queues `StateChanged` if the name of `key`, still added, no longer
    /// reads `before`.
    pub(crate) fn report_state_change(&mut self, key: ProcessKey, before: ProcessState) {
        let process = &self.processes[key.index()];
        let added = !matches!(
            process.life,
            Life::Removed
                | Life::Stopping {
                    then: Then::Forget,
                    ..
                }
        );
        let after = self.public_state(key);
        if added && after != before {
            self.commands
                .push_back(Command::Report(Report::StateChanged {
                    process: key,
                    from: before,
                    to: after,
                }));
        }
    }

    /// Performs the transition itself; see [`transition`](Self::transition).
    ///
    /// The two transitions of every crash-loop cycle (an end of a running
    /// instance, a due restart) are taken here, in a small frame; the rest
    /// of the table is [`apply_any`](Self::apply_any). The arms are the same
    /// either way: this only keeps the hot path off the big match's stack
    /// frame, which cost the core a quarter of its throughput.
    pub(crate) fn apply(&mut self, key: ProcessKey, event: Event) {
        if self.has_dependencies {
            self.mark_changed(key);
        }
        match (&self.processes[key.index()].life, event) {
            (Life::Running(_), Event::Ended(end)) => {
                let Life::Running(instance) =
                    mem::replace(&mut self.process_mut(key).life, Life::Stopped)
                else {
                    unreachable!("matched above")
                };
                self.ended(key, instance, end, None);
            }
            (Life::Backoff(_), Event::RestartDue) => {
                debug_assert!(
                    self.service_running,
                    "restarts are cancelled with the service"
                );
                self.process_mut(key).stats.restarts += 1;
                let next = self.spawn_or_wait(key);
                if matches!(next, Life::Waiting) {
                    self.waiting += 1;
                }
                self.process_mut(key).life = next;
            }
            _ => self.apply_any(key, event),
        }
    }

    /// Every (state, event) pair; see [`apply`](Self::apply).
    #[inline(never)]
    fn apply_any(&mut self, key: ProcessKey, event: Event) {
        let life = mem::replace(&mut self.process_mut(key).life, Life::Stopped);
        // The counts of waiting processes and deferred stops follow the
        // life out of its slot here and back in at the end; `ended` (the
        // early returns) never leads to either.
        match life {
            Life::Waiting => self.waiting -= 1,
            Life::Stopping {
                kill: Kill::Deferred { .. },
                ..
            } => self.deferred -= 1,
            _ => {}
        }
        // A starting instance that is stopped or ends is taken as a running
        // one; only its ready timeout has to go. Whether it was ready is
        // kept for a stop held back for its dependents (`Kill::Deferred`).
        let ready = !matches!(life, Life::Starting { .. });
        let life = match (life, event) {
            (
                Life::Starting { instance, timeout },
                Event::Stop
                | Event::ServiceStop
                | Event::Restart
                | Event::Down
                | Event::Remove
                | Event::KillAll
                | Event::Ended(_),
            ) => {
                self.disarm_option(timeout);
                Life::Running(instance)
            }
            (life, _) => life,
        };
        let next = match (life, event) {
            (Life::Removed, event) => unreachable!("a removed process gets no events: {event:?}"),

            // ----- a starting instance: readiness -----
            (Life::Starting { instance, timeout }, Event::Ready) => {
                self.disarm_option(timeout);
                self.process_mut(key).ever_ready = true;
                self.commands.push_back(Command::Report(Report::Ready {
                    process: key,
                    instance: instance.id,
                }));
                Life::Running(instance)
            }
            (Life::Starting { instance, timeout }, event @ (Event::NotReady | Event::ReadyDue)) => {
                let cause = if event == Event::ReadyDue {
                    NotReadyCause::Timeout
                } else {
                    self.disarm_option(timeout);
                    NotReadyCause::ChannelClosed
                };
                self.commands.push_back(Command::Report(Report::NotReady {
                    process: key,
                    instance: instance.id,
                    cause,
                }));
                self.stop_instance(key, instance, Then::FailedStart)
            }
            (life @ (Life::Running(_) | Life::Stopping { .. }), Event::Ready | Event::NotReady) => {
                life
            }
            (
                life @ Life::Starting { .. },
                Event::Start | Event::ServiceStart | Event::PredecessorGone,
            ) => life,
            (Life::Starting { .. }, event) => {
                unreachable!("taken as running above, or no timer of this kind: {event:?}")
            }

            // ----- requests on a live instance -----
            (Life::Running(instance), Event::Stop) => {
                self.stop_instance(key, instance, Then::Rules)
            }
            (Life::Running(instance), Event::ServiceStop) => {
                self.stop_after_dependents(key, instance, Then::Rules, ready)
            }
            (Life::Running(instance), Event::Restart) => {
                self.reset_backoff(key);
                self.stop_instance(key, instance, Then::Restart)
            }
            (Life::Running(instance), Event::Down) => self.stop_instance(key, instance, Then::Hold),
            (Life::Running(instance), Event::Remove) => {
                self.stop_after_dependents(key, instance, Then::Forget, ready)
            }
            (Life::Running(instance), Event::KillAll) => {
                self.send(key, instance.id, Signal::Kill, SignalReason::KillAll);
                Life::Stopping {
                    instance,
                    kill: Kill::Sent,
                    then: Then::Rules,
                }
            }
            (
                life @ Life::Running(_),
                Event::Start | Event::ServiceStart | Event::PredecessorGone,
            ) => life,

            // ----- requests on a stopping instance: nothing new is sent -----
            // A start of the service, or of the process, before the stop
            // a service stop held back was sent: nothing was sent, so the
            // instance simply keeps running, as the process was asked to
            // be up. A ready one goes back to `running`, still ready. One
            // that was not ready yet cannot tell any more: its ready
            // timeout was cancelled and its READY=1 or closed channel, if
            // either came while it was stopping, was ignored, so its stop
            // goes ahead now. `start_service` restarts it, as only a fresh
            // instance can tell when it is ready; `start` leaves it to the
            // rule for any instance `start` finds stopping: it starts again
            // at its end if the service runs then. A removal's held-back
            // stop stays: the definition is gone whatever the service does.
            (
                Life::Stopping {
                    instance,
                    kill: Kill::Deferred { ready },
                    then: Then::Rules,
                },
                event @ (Event::Start | Event::ServiceStart),
            ) => {
                if ready {
                    Life::Running(instance)
                } else if event == Event::Start {
                    self.stop_instance(key, instance, Then::Start)
                } else {
                    self.stop_instance(key, instance, Then::Restart)
                }
            }
            (
                Life::Stopping {
                    instance,
                    kill,
                    then,
                },
                event @ (Event::Start | Event::Restart | Event::Down | Event::Remove),
            ) => {
                let then = match (then, event) {
                    (Then::Forget, _) => unreachable!("a removed definition takes no requests"),
                    (Then::Hold, Event::Start) => {
                        self.process_mut(key).quick_deaths = 0;
                        Then::Start
                    }
                    (then, Event::Start) => then,
                    (_, Event::Restart) => {
                        self.reset_backoff(key);
                        Then::Restart
                    }
                    (_, Event::Down) => Then::Hold,
                    (_, _) => Then::Forget,
                };
                match (kill, event) {
                    // An operator's request on one process stops it at
                    // once, even when a service stop was holding its stop
                    // signal back for its dependents.
                    (Kill::Deferred { .. }, Event::Restart | Event::Down) => {
                        self.stop_instance(key, instance, then)
                    }
                    (kill, _) => Life::Stopping {
                        instance,
                        kill,
                        then,
                    },
                }
            }
            (
                Life::Stopping {
                    instance,
                    kill: Kill::Deferred { .. },
                    then,
                },
                Event::Stop,
            ) => self.stop_instance(key, instance, then),
            (
                Life::Stopping {
                    instance,
                    kill,
                    then,
                },
                Event::KillAll,
            ) => {
                match kill {
                    Kill::Armed(armed, _) => {
                        self.disarm(armed);
                        self.send(key, instance.id, Signal::Kill, SignalReason::KillAll);
                    }
                    Kill::Deferred { .. } => {
                        self.send(key, instance.id, Signal::Kill, SignalReason::KillAll);
                    }
                    Kill::Sent => {}
                }
                Life::Stopping {
                    instance,
                    kill: Kill::Sent,
                    then,
                }
            }
            (
                Life::Stopping {
                    instance,
                    kill: Kill::Deferred { .. },
                    then,
                },
                Event::DependentsGone,
            ) => self.stop_instance(key, instance, then),
            (
                life @ Life::Stopping { .. },
                Event::Stop | Event::ServiceStart | Event::ServiceStop | Event::PredecessorGone,
            ) => life,

            // ----- the end of an instance -----
            (Life::Running(instance), Event::Ended(end)) => {
                self.ended(key, instance, end, None);
                return;
            }
            (
                Life::Stopping {
                    instance,
                    kill,
                    then,
                },
                Event::Ended(end),
            ) => {
                if let Kill::Armed(armed, _) = kill {
                    self.disarm(armed);
                }
                let then = match (kill, then) {
                    // A service stop held its stop signal back, and it
                    // ended before the signal was sent: by itself, as the
                    // contract has it ("on request" means the monitor had
                    // sent its stop signal), so the policy decides should
                    // the service run again. (A held-back stop waits with
                    // `rules` or, after `remove`, `forget`: every other
                    // request sends the signal.)
                    (Kill::Deferred { .. }, Then::Rules) => None,
                    (_, then) => Some(then),
                };
                self.ended(key, instance, end, then);
                return;
            }

            // ----- timers -----
            (
                Life::Stopping {
                    instance,
                    kill: Kill::Armed(_, kill_time),
                    then,
                },
                Event::KillDue,
            ) => {
                self.commands.push_back(Command::Signal {
                    process: key,
                    instance: instance.id,
                    signal: Signal::Kill,
                    reason: SignalReason::KillTime,
                    kill_time: Some(kill_time),
                });
                Life::Stopping {
                    instance,
                    kill: Kill::Sent,
                    then,
                }
            }
            (Life::Backoff(_), Event::RestartDue)
            | (Life::Failed { retry: Some(_) }, Event::RetryDue) => {
                debug_assert!(
                    self.service_running,
                    "restarts and retries are cancelled with the service"
                );
                self.process_mut(key).stats.restarts += 1;
                self.spawn_or_wait(key)
            }

            // ----- no live instance: starting -----
            (idle, Event::Start | Event::Restart) => {
                self.disarm_life(&idle);
                if event == Event::Restart {
                    self.reset_backoff(key);
                }
                self.process_mut(key).quick_deaths = 0;
                if self.predecessor_lives(key) {
                    // The name's removed instance still lives; this
                    // definition starts when it has gone.
                    Life::Stopped
                } else {
                    self.spawn_or_wait(key)
                }
            }
            (Life::Held, Event::ServiceStart) => Life::Held,
            (idle, Event::ServiceStart) => {
                if self.predecessor_lives(key) {
                    idle
                } else {
                    self.disarm_life(&idle);
                    self.spawn_or_wait(key)
                }
            }
            (Life::Waiting, Event::DependenciesMet) => self.spawn_or_wait(key),
            (Life::Stopped, Event::PredecessorGone) if self.service_running => {
                self.schedule_restart(key, Duration::ZERO)
            }

            // ----- no live instance: holding, forgetting, stopping the service -----
            (idle, Event::Down) => {
                self.disarm_life(&idle);
                Life::Held
            }
            (idle, Event::Remove) => {
                self.disarm_life(&idle);
                self.to_free.push(key);
                Life::Removed
            }
            (Life::Backoff(armed), Event::ServiceStop | Event::KillAll) => {
                self.disarm(armed);
                Life::Stopped
            }
            (Life::Waiting, Event::ServiceStop | Event::KillAll) => Life::Stopped,
            (Life::Waiting, Event::Stop | Event::PredecessorGone) => Life::Waiting,
            (Life::Failed { retry: Some(armed) }, Event::ServiceStop | Event::KillAll) => {
                self.disarm(armed);
                Life::Failed { retry: None }
            }
            (
                idle @ (Life::Stopped
                | Life::Held
                | Life::Exited
                | Life::Failed { .. }
                | Life::Backoff(_)),
                Event::Stop | Event::ServiceStop | Event::KillAll | Event::PredecessorGone,
            ) => idle,

            (
                life,
                event @ (Event::Ended(_)
                | Event::KillDue
                | Event::RestartDue
                | Event::RetryDue
                | Event::Ready
                | Event::NotReady
                | Event::ReadyDue
                | Event::DependenciesMet
                | Event::DependentsGone),
            ) => {
                unreachable!("callers check the instance or timer is live: {event:?} in {life:?}")
            }
        };
        match next {
            Life::Waiting => self.waiting += 1,
            Life::Stopping {
                kill: Kill::Deferred { .. },
                ..
            } => self.deferred += 1,
            _ => {}
        }
        self.process_mut(key).life = next;
    }

    /// The end of `instance`: report it, flush its partial lines, apply the
    /// delay and quick-death rules, and decide what follows. `then` is the
    /// request that stopped it, `None` for an end by itself.
    fn ended(&mut self, key: ProcessKey, mut instance: Instance, end: End, then: Option<Then>) {
        let now = self.now;
        let uptime = now.saturating_duration_since(instance.started);
        self.live_instances -= 1;
        self.stats.exits += 1;
        let process = self.process_mut(key);
        process.stats.exits += 1;
        let by_itself = then.is_none();
        process.completed = by_itself
            && matches!(end, End::Exited(ExitStatus::Code(code))
                if process.spec.policy.success_codes().contains(code));
        process.ended_ok = process.completed || (then.is_some() && then != Some(Then::FailedStart));
        let report = match end {
            End::Exited(status) => {
                process.stats.last_exit = Some(status);
                Report::Exited {
                    process: key,
                    instance: instance.id,
                    status,
                    uptime,
                    on_request: then.is_some(),
                }
            }
            End::SpawnFailed(errno) => {
                process.stats.spawn_failures += 1;
                self.stats.spawn_failures += 1;
                Report::SpawnFailed {
                    process: key,
                    instance: instance.id,
                    errno,
                }
            }
        };
        self.commands.push_back(Command::Report(report));
        for (stream, buffer) in [
            (Stream::Stdout, &mut instance.stdout),
            (Stream::Stderr, &mut instance.stderr),
        ] {
            if let Some(bytes) = buffer.take_partial() {
                self.stats.log_lines += 1;
                self.processes[key.index()].stats.output_lines += 1;
                self.commands.push_back(Command::Log(LogLine {
                    process: key,
                    instance: instance.id,
                    stream,
                    bytes,
                }));
            }
        }

        if then == Some(Then::Forget) {
            self.not_restarting(key, NotRestarting::Removed);
            self.forget_retired(key);
            self.process_mut(key).life = Life::Removed;
            return;
        }

        let settings = &self.settings;
        let process = &mut self.processes[key.index()];
        // Borrowed, not copied: ends are the hot path of a crash loop.
        let policy = &process.spec.policy;
        let quick = then == Some(Then::FailedStart) || uptime < policy.threshold(settings);
        let wait = if then == Some(Then::Restart) {
            // `restart` reset the delay and count when it was asked for;
            // the life it cut short neither doubles nor counts.
            process.delay = policy.min_restart_delay(settings);
            Duration::ZERO
        } else if quick {
            let wait = process.delay;
            process.delay = wait
                .saturating_mul(2)
                .min(policy.max_restart_delay(settings));
            process.quick_deaths = process.quick_deaths.saturating_add(1);
            wait
        } else {
            process.delay = policy.min_restart_delay(settings);
            process.quick_deaths = 0;
            Duration::ZERO
        };

        // Written in place, arm by arm: a life built on the stack and copied
        // into its slot cost a store-forwarding stall at every end.
        let life = match then {
            Some(Then::Hold) => {
                self.not_restarting(key, NotRestarting::Held);
                Life::Held
            }
            _ if !self.service_running => {
                self.not_restarting(key, NotRestarting::ServiceStopped);
                Life::Stopped
            }
            Some(Then::Restart | Then::Start) => self.schedule_restart(key, Duration::ZERO),
            Some(Then::Rules) => self.restart_by_rules(key, wait, quick),
            Some(Then::Forget) => unreachable!("handled above"),
            None | Some(Then::FailedStart) => {
                let policy = &self.processes[key.index()].spec.policy;
                let restart = policy.restart();
                let restarts = match (restart, end) {
                    (RestartPolicy::Always, _) => true,
                    (RestartPolicy::Never, _) => false,
                    // A start that failed is a failure, whatever it exited with.
                    (RestartPolicy::OnFailure, _) if then.is_some() => true,
                    (RestartPolicy::OnFailure, End::Exited(ExitStatus::Code(code))) => {
                        !policy.success_codes().contains(code)
                    }
                    (RestartPolicy::OnFailure, _) => true,
                };
                if restarts {
                    self.restart_by_rules(key, wait, quick)
                } else {
                    self.not_restarting(key, NotRestarting::Policy(restart));
                    Life::Exited
                }
            }
        };
        let critical_end = matches!(then, None | Some(Then::FailedStart))
            && matches!(life, Life::Exited | Life::Failed { .. })
            && self.processes[key.index()].spec.policy.critical;
        self.process_mut(key).life = life;
        if critical_end {
            self.critical_ended(key, end);
        }
    }

    /// A critical process ended for good: the monitor finishes with its
    /// exit code, the service stopping first (dependents before what they
    /// depend on). The first critical end decides the code.
    #[cold]
    fn critical_ended(&mut self, key: ProcessKey, end: End) {
        let exit_code = match end {
            // The shell's convention: the low byte of a code, 128 + a
            // signal's number, 127 for a program that could not be run.
            End::Exited(ExitStatus::Code(code)) => (code & 0xff) as u8,
            End::Exited(ExitStatus::Signal(signal)) => 128u8.wrapping_add(signal as u8),
            End::SpawnFailed(_) => 127,
        };
        self.commands
            .push_back(Command::Report(Report::CriticalEnded {
                process: key,
                exit_code,
            }));
        if self.critical_exit.is_none() {
            self.critical_exit = Some(exit_code);
        }
        self.shut_down = true;
        self.stop_service_now();
    }

    /// The restart rules, with giving up: a quick death that brings the
    /// count to `give_up_after` fails the process instead.
    fn restart_by_rules(&mut self, key: ProcessKey, wait: Duration, quick: bool) -> Life {
        let process = &self.processes[key.index()];
        let policy = &process.spec.policy;
        let quick_deaths = process.quick_deaths;
        let gives_up = quick
            && policy
                .give_up_after
                .is_some_and(|n| quick_deaths >= n.get());
        if !gives_up {
            return self.schedule_restart(key, wait);
        }
        let policy = *policy;
        let retry = policy.retry_failed_after.map(|after| {
            let at = self.now.saturating_add(after);
            Armed {
                timer: self.arm(key, TimerKind::Retry, at),
                at,
            }
        });
        self.commands.push_back(Command::Report(Report::GaveUp {
            process: key,
            quick_deaths,
            retry_in: policy.retry_failed_after,
        }));
        Life::Failed { retry }
    }

    #[inline(always)]
    fn schedule_restart(&mut self, key: ProcessKey, delay: Duration) -> Life {
        let at = self.now.saturating_add(delay);
        let timer = self.arm(key, TimerKind::Restart, at);
        self.commands
            .push_back(Command::Report(Report::RestartScheduled {
                process: key,
                delay,
            }));
        Life::Backoff(Armed { timer, at })
    }

    fn not_restarting(&mut self, key: ProcessKey, reason: NotRestarting) {
        self.commands
            .push_back(Command::Report(Report::NotRestarting {
                process: key,
                reason,
            }));
    }

    /// The stop signal once no live instance depends on this process
    /// (dependents are stopped first at a service stop or removal); now if
    /// none does.
    fn stop_after_dependents(
        &mut self,
        key: ProcessKey,
        instance: Instance,
        then: Then,
        ready: bool,
    ) -> Life {
        if self.has_live_dependents(key) {
            Life::Stopping {
                instance,
                kill: Kill::Deferred { ready },
                then,
            }
        } else {
            self.stop_instance(key, instance, then)
        }
    }

    /// Whether a live instance (of an added or a removed definition) names
    /// this process in its `after`. Looks only at those that name it, through
    /// the reverse index, so a stop costs its dependents, not every process.
    pub(crate) fn has_live_dependents(&self, key: ProcessKey) -> bool {
        if !self.has_dependencies {
            return false;
        }
        let name = &self.processes[key.index()].name;
        self.dependents.get(name).is_some_and(|keys| {
            keys.iter()
                .any(|k| self.processes[k.index()].life.instance().is_some())
        })
    }

    /// Whether every condition of the `after` of `key` holds now.
    pub(crate) fn conditions_hold(&self, key: ProcessKey) -> bool {
        self.unmet_dependency(key).is_none()
    }

    /// The first dependency of `key` whose condition does not hold.
    pub(crate) fn unmet_dependency(&self, key: ProcessKey) -> Option<&crate::spec::Dependency> {
        self.processes[key.index()]
            .spec
            .after
            .iter()
            .find(|d| !self.condition_holds(&d.name, d.condition))
    }

    /// Whether the process called `name` meets `condition`; an unknown name
    /// meets none.
    pub(crate) fn condition_holds(&self, name: &str, condition: Condition) -> bool {
        let Some(dependency) = self.key(name) else {
            return false;
        };
        let completed = matches!(self.processes[dependency.index()].life, Life::Exited)
            && self.processes[dependency.index()].completed;
        match (condition, self.public_state(dependency)) {
            (Condition::Started, ProcessState::Starting | ProcessState::Running) => true,
            (Condition::Ready, ProcessState::Running) => true,
            _ => completed,
        }
    }

    /// Whether the monitor will bring `key` up without an operator's
    /// request; see [`ProcessStatus::comes_up_by_itself`] for the rule.
    ///
    /// A waiting process follows its first unmet dependency, which may
    /// wait in turn: the walk ends at the first process that is not
    /// waiting. `after` has no cycles (`add` and `reload` refuse them), so
    /// a chain is at most as long as there are processes; the bound only
    /// keeps a broken invariant from hanging a query.
    ///
    /// [`ProcessStatus::comes_up_by_itself`]: crate::ProcessStatus::comes_up_by_itself
    pub(crate) fn comes_up_by_itself(&self, key: ProcessKey) -> bool {
        let mut key = key;
        for _ in 0..=self.processes.len() {
            match &self.processes[key.index()].life {
                // Up, or on its way: its end, if any, is for the rules.
                Life::Starting { .. } | Life::Running(_) => return true,
                // A restart is due.
                Life::Backoff(_) => return true,
                // Its end leads to `held`, or to `stopped` with the service.
                Life::Stopping { then, .. } => {
                    return self.service_running && !matches!(then, Then::Hold | Then::Forget)
                }
                // Only the end of the name's removed instance starts it.
                Life::Stopped => return self.service_running && self.predecessor_lives(key),
                // A retry after giving up (`retry_failed_after`) is not
                // counted: it comes long after, if ever it works, and
                // neither a dependent nor a start-up should wait that long.
                Life::Held | Life::Exited | Life::Failed { .. } | Life::Removed => return false,
                Life::Waiting => {
                    let Some(dependency) = self.unmet_dependency(key) else {
                        // `settle` starts it before the call returns.
                        return true;
                    };
                    match self.key(&dependency.name) {
                        Some(next) => key = next,
                        None => return false,
                    }
                }
            }
        }
        debug_assert!(false, "a cycle of waits: `after` is checked for cycles");
        true
    }

    /// Spawns now if the conditions of its `after` hold, else waits.
    #[inline(always)]
    fn spawn_or_wait(&mut self, key: ProcessKey) -> Life {
        if self.processes[key.index()].spec.after.is_empty() || self.conditions_hold(key) {
            self.spawn(key)
        } else {
            self.wait(key)
        }
    }

    #[cold]
    #[inline(never)]
    fn wait(&mut self, key: ProcessKey) -> Life {
        self.commands
            .push_back(Command::Report(Report::Waiting { process: key }));
        Life::Waiting
    }

    /// Moves on every process whose wait may be over: a waiting one whose
    /// conditions now hold starts, a deferred stop whose dependents have
    /// all ended is sent. Called at the end of every call that can change
    /// a state, until nothing more moves (a start can meet another's
    /// condition).
    #[inline]
    pub(crate) fn settle(&mut self) {
        // Checked here, inlined into every call: a monitor with nothing
        // waiting pays one comparison per input.
        if self.waiting + self.deferred > 0 {
            self.settle_waiting();
        } else if !self.recheck.is_empty() {
            // Nothing waits or defers: a process that comes to do so
            // notes itself, so what changed before does not matter.
            self.recheck.clear();
        }
    }

    /// Each pass looks at the processes noted since the last
    /// ([`Monitor::recheck`]) in key order, and moves those that can move
    /// in that order: the same moves, in the same order, as a pass over
    /// every process, since one that was not noted cannot move (debug
    /// builds check this against such a pass).
    #[inline(never)]
    fn settle_waiting(&mut self) {
        while self.waiting + self.deferred > 0 {
            let mut candidates = mem::take(&mut self.recheck);
            candidates.sort_unstable();
            candidates.dedup();
            let movable = self.movable(candidates.iter().copied());
            debug_assert_eq!(
                movable,
                self.movable(self.processes.iter().map(|(i, _)| ProcessKey(i as u32))),
                "every process that can move was noted"
            );
            // The buffer goes back, so that settling allocates nothing.
            candidates.clear();
            self.recheck = candidates;
            if movable.is_empty() {
                return;
            }
            for (key, event) in movable {
                // An earlier move of this pass may have changed it.
                let still = match event {
                    Event::DependenciesMet => {
                        matches!(self.processes[key.index()].life, Life::Waiting)
                            && self.conditions_hold(key)
                    }
                    _ => {
                        matches!(
                            self.processes[key.index()].life,
                            Life::Stopping {
                                kill: Kill::Deferred { .. },
                                ..
                            }
                        ) && !self.has_live_dependents(key)
                    }
                };
                if still {
                    self.transition(key, event);
                }
            }
        }
        self.recheck.clear();
    }

    /// Which of `keys` (in order; keys of freed entries are skipped) can
    /// move now, and how.
    fn movable(
        &self,
        keys: impl Iterator<Item = ProcessKey>,
    ) -> SmallVec<[(ProcessKey, Event); 8]> {
        keys.filter_map(|key| {
            let process = self.processes.get(key.index())?;
            match process.life {
                Life::Waiting if self.conditions_hold(key) => Some((key, Event::DependenciesMet)),
                Life::Stopping {
                    kill: Kill::Deferred { .. },
                    ..
                } if !self.has_live_dependents(key) => Some((key, Event::DependentsGone)),
                _ => None,
            }
        })
        .collect()
    }

    /// The stop signal now, and KILL after the kill time unless it ends.
    fn stop_instance(&mut self, key: ProcessKey, instance: Instance, then: Then) -> Life {
        let policy = self.processes[key.index()].spec.policy;
        self.send(key, instance.id, policy.stop_signal(), SignalReason::Stop);
        let kill_time = policy.kill_time(&self.settings);
        let at = self.now.saturating_add(kill_time);
        let timer = self.arm(key, TimerKind::Kill, at);
        Life::Stopping {
            instance,
            kill: Kill::Armed(Armed { timer, at }, kill_time),
            then,
        }
    }

    pub(crate) fn send(
        &mut self,
        key: ProcessKey,
        instance: InstanceId,
        signal: Signal,
        reason: SignalReason,
    ) {
        self.commands.push_back(Command::Signal {
            process: key,
            instance,
            signal,
            reason,
            kill_time: None,
        });
    }

    // Inlined so that the new life is written straight into its slot: built
    // on the stack and copied, it cost a store-forwarding stall per spawn.
    #[inline(always)]
    fn spawn(&mut self, key: ProcessKey) -> Life {
        debug_assert!(
            !self.predecessor_lives(key),
            "a name never has two live instances"
        );
        let id = InstanceId {
            slot: key.0,
            serial: self.next_serial(),
        };
        let now = self.now;
        let process = self.process_mut(key);
        process.last_started = Some(now);
        process.stats.spawns += 1;
        let ready_at_spawn = process.spec.ready.at_spawn();
        process.ever_ready |= ready_at_spawn;
        self.stats.spawns += 1;
        self.live_instances += 1;
        self.commands.push_back(Command::Spawn {
            process: key,
            instance: id,
        });
        let instance = Instance {
            id,
            started: now,
            stdout: LineBuffer::new(),
            stderr: LineBuffer::new(),
        };
        if ready_at_spawn {
            Life::Running(instance)
        } else {
            self.starting(key, instance)
        }
    }

    /// The life of an instance spawned not ready: `starting`, its ready
    /// timeout armed if it has one. Out of line: the crash-loop path
    /// spawns processes that are ready at spawn.
    #[cold]
    #[inline(never)]
    fn starting(&mut self, key: ProcessKey, instance: Instance) -> Life {
        let ready_timeout = self.processes[key.index()].spec.policy.ready_timeout;
        let timeout = ready_timeout.map(|after| {
            let at = self.now.saturating_add(after);
            Armed {
                timer: self.arm(key, TimerKind::Ready, at),
                at,
            }
        });
        Life::Starting { instance, timeout }
    }

    /// `restart` starts afresh: the first delay and no quick deaths.
    fn reset_backoff(&mut self, key: ProcessKey) {
        let min = {
            let process = &self.processes[key.index()];
            process.spec.policy.min_restart_delay(&self.settings)
        };
        let process = self.process_mut(key);
        process.delay = min;
        process.quick_deaths = 0;
    }

    fn disarm_life(&mut self, life: &Life) {
        if let Some((_, armed)) = life.armed() {
            self.disarm(armed);
        }
    }

    fn disarm_option(&mut self, armed: Option<Armed>) {
        if let Some(armed) = armed {
            self.disarm(armed);
        }
    }

    fn disarm(&mut self, armed: Armed) {
        self.armed_timers -= 1;
        self.commands
            .push_back(Command::CancelTimer { timer: armed.timer });
    }

    fn arm(&mut self, key: ProcessKey, kind: TimerKind, at: Instant) -> TimerId {
        let timer = TimerId {
            slot: key.0,
            kind,
            serial: self.next_serial(),
        };
        self.armed_timers += 1;
        self.commands.push_back(Command::SetTimer { timer, at });
        timer
    }
}

#[cfg(test)]
mod table;

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use crate::command::{Command, Report};
    use crate::input::{ExitStatus, Input, InstanceId};
    use crate::monitor::{Monitor, ProcessState};
    use crate::spec::{Condition, ProcessSpec, Readiness, Settings};
    use crate::time::Instant;

    fn secs(s: u64) -> Instant {
        Instant::from_nanos(s * 1_000_000_000)
    }

    fn drain(m: &mut Monitor) -> Vec<Command> {
        core::iter::from_fn(|| m.poll_command()).collect()
    }

    /// The instances the commands signal.
    fn signalled(commands: &[Command]) -> Vec<InstanceId> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Signal { instance, .. } => Some(*instance),
                _ => None,
            })
            .collect()
    }

    fn state(m: &Monitor, name: &str) -> ProcessState {
        m.status(name).expect("added").state
    }

    /// db (`db_spec`) and web, which names db in its `after`, both up, then
    /// the service stopped: web's stop sent, db's held back.
    fn held_back(db_spec: ProcessSpec) -> Monitor {
        let mut m = Monitor::new(Settings::default()).expect("valid settings");
        m.add(secs(0), "db", db_spec).unwrap();
        m.add(
            secs(0),
            "web",
            ProcessSpec::new(["web"]).with_after("db", Condition::Started),
        )
        .unwrap();
        m.start_service(secs(0)).unwrap();
        drain(&mut m);
        m.stop_service(secs(10));
        let commands = drain(&mut m);
        assert_eq!(
            signalled(&commands),
            [m.live_instance("web").unwrap()],
            "only web's stop is sent"
        );
        assert_eq!(state(&m, "db"), ProcessState::Stopping);
        m
    }

    fn end(m: &mut Monitor, at: u64, name: &str) -> Vec<Command> {
        let instance = m.live_instance(name).expect("a live instance");
        m.handle(
            secs(at),
            Input::Exited {
                instance,
                status: ExitStatus::Code(0),
            },
        );
        drain(m)
    }

    #[test]
    fn start_service_calls_off_a_held_back_stop_of_a_ready_instance() {
        let mut m = held_back(ProcessSpec::new(["db"]));
        let db = m.live_instance("db").unwrap();
        m.start_service(secs(11)).unwrap();
        let commands = drain(&mut m);
        assert!(signalled(&commands).is_empty(), "{commands:?}");
        assert_eq!(state(&m, "db"), ProcessState::Running);
        assert_eq!(m.status("db").unwrap().next, None, "no KILL due");
        // web's stop was sent: its end comes back by the rules, and db,
        // the same instance, is not signalled now that web has gone.
        let commands = end(&mut m, 12, "web");
        assert!(signalled(&commands).is_empty(), "{commands:?}");
        assert_eq!(m.live_instance("db"), Some(db));
        assert_eq!(state(&m, "db"), ProcessState::Running);
        // Ready before, still ready: it meets `ready` conditions at once.
        assert!(m.condition_holds("db", Condition::Ready));
    }

    #[test]
    fn start_service_restarts_a_held_back_instance_that_was_not_ready() {
        let mut m = held_back(ProcessSpec::new(["db"]).with_ready(Readiness::Notify));
        let db = m.live_instance("db").unwrap();
        m.start_service(secs(11)).unwrap();
        let commands = drain(&mut m);
        assert_eq!(signalled(&commands), [db], "its stop signal at once");
        assert_eq!(state(&m, "db"), ProcessState::Stopping);
        let commands = end(&mut m, 12, "db");
        assert!(
            commands.iter().any(|c| matches!(
                c,
                Command::Report(Report::Exited {
                    on_request: true,
                    ..
                })
            )),
            "{commands:?}"
        );
        // Restarted at once, as after `restart` (a restart timer due now):
        // a new instance, which has to say it is ready.
        let restart = commands
            .iter()
            .find_map(|c| match c {
                Command::SetTimer { timer, at } if *at == secs(12) => Some(*timer),
                _ => None,
            })
            .expect("a restart due at once");
        m.handle(secs(12), Input::TimerFired { timer: restart });
        drain(&mut m);
        let new = m.live_instance("db").expect("a new instance");
        assert_ne!(new, db);
        assert_eq!(state(&m, "db"), ProcessState::Starting);
    }

    #[test]
    fn start_service_keeps_a_removals_held_back_stop() {
        let mut m = held_back(ProcessSpec::new(["db"]));
        let db = m.live_instance("db").unwrap();
        m.remove(secs(11), "db").unwrap();
        m.start_service(secs(11)).unwrap();
        let commands = drain(&mut m);
        assert!(signalled(&commands).is_empty(), "{commands:?}");
        let commands = end(&mut m, 12, "web");
        assert_eq!(signalled(&commands), [db], "sent once web has ended");
    }
}
