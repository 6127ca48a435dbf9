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

use crate::command::{Command, LogLine, NotRestarting, Report, Signal, SignalReason};
use crate::input::{ExitStatus, InstanceId, Stream};
use crate::lines::LineBuffer;
use crate::monitor::{Monitor, ProcessKey, ProcessState, ProcessStats};
use crate::spec::{ProcessSpec, RestartPolicy};
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
    pub(crate) stats: ProcessStats,
}

/// Where a process is in its life. Each variant holds exactly the data that
/// exists in that state, so no combination of fields can contradict it.
#[derive(Debug)]
pub(crate) enum Life {
    /// No instance, nothing due: never started, or the service stopped it.
    Stopped,
    /// A live instance that the monitor has not asked to stop.
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
    /// KILL is due at the armed time unless the instance ends first.
    Armed(Armed),
    /// KILL was sent; only the end is left.
    Sent,
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
            Life::Running(instance) | Life::Stopping { instance, .. } => Some(instance),
            _ => None,
        }
    }

    pub(crate) fn instance_mut(&mut self) -> Option<&mut Instance> {
        match self {
            Life::Running(instance) | Life::Stopping { instance, .. } => Some(instance),
            _ => None,
        }
    }

    /// The timer this state has armed, if any.
    pub(crate) fn armed(&self) -> Option<(TimerKind, Armed)> {
        match self {
            Life::Stopping {
                kill: Kill::Armed(armed),
                ..
            } => Some((TimerKind::Kill, *armed)),
            Life::Backoff(armed) => Some((TimerKind::Restart, *armed)),
            Life::Failed { retry: Some(armed) } => Some((TimerKind::Retry, *armed)),
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
                let next = self.spawn(key);
                self.process_mut(key).life = next;
            }
            _ => self.apply_any(key, event),
        }
    }

    /// Every (state, event) pair; see [`apply`](Self::apply).
    #[inline(never)]
    fn apply_any(&mut self, key: ProcessKey, event: Event) {
        let life = mem::replace(&mut self.process_mut(key).life, Life::Stopped);
        let next = match (life, event) {
            (Life::Removed, event) => unreachable!("a removed process gets no events: {event:?}"),

            // ----- requests on a live instance -----
            (Life::Running(instance), Event::Stop | Event::ServiceStop) => {
                self.stop_instance(key, instance, Then::Rules)
            }
            (Life::Running(instance), Event::Restart) => {
                self.reset_backoff(key);
                self.stop_instance(key, instance, Then::Restart)
            }
            (Life::Running(instance), Event::Down) => self.stop_instance(key, instance, Then::Hold),
            (Life::Running(instance), Event::Remove) => {
                self.stop_instance(key, instance, Then::Forget)
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
                Life::Stopping {
                    instance,
                    kill,
                    then,
                }
            }
            (
                Life::Stopping {
                    instance,
                    kill,
                    then,
                },
                Event::KillAll,
            ) => {
                if let Kill::Armed(armed) = kill {
                    self.disarm(armed);
                    self.send(key, instance.id, Signal::Kill, SignalReason::KillAll);
                }
                Life::Stopping {
                    instance,
                    kill: Kill::Sent,
                    then,
                }
            }
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
                if let Kill::Armed(armed) = kill {
                    self.disarm(armed);
                }
                self.ended(key, instance, end, Some(then));
                return;
            }

            // ----- timers -----
            (
                Life::Stopping {
                    instance,
                    kill: Kill::Armed(_),
                    then,
                },
                Event::KillDue,
            ) => {
                self.send(key, instance.id, Signal::Kill, SignalReason::KillTime);
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
                self.spawn(key)
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
                    self.spawn(key)
                }
            }
            (Life::Held, Event::ServiceStart) => Life::Held,
            (idle, Event::ServiceStart) => {
                if self.predecessor_lives(key) {
                    idle
                } else {
                    self.disarm_life(&idle);
                    self.spawn(key)
                }
            }
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
                event @ (Event::Ended(_) | Event::KillDue | Event::RestartDue | Event::RetryDue),
            ) => {
                unreachable!("callers check the instance or timer is live: {event:?} in {life:?}")
            }
        };
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
        let quick = uptime < policy.threshold(settings);
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
            None => {
                let policy = &self.processes[key.index()].spec.policy;
                let restart = policy.restart();
                let restarts = match (restart, end) {
                    (RestartPolicy::Always, _) => true,
                    (RestartPolicy::Never, _) => false,
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
        self.process_mut(key).life = life;
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

    /// The stop signal now, and KILL after the kill time unless it ends.
    fn stop_instance(&mut self, key: ProcessKey, instance: Instance, then: Then) -> Life {
        let policy = self.processes[key.index()].spec.policy;
        self.send(key, instance.id, policy.stop_signal(), SignalReason::Stop);
        let at = self.now.saturating_add(policy.kill_time(&self.settings));
        let timer = self.arm(key, TimerKind::Kill, at);
        Life::Stopping {
            instance,
            kill: Kill::Armed(Armed { timer, at }),
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
        self.stats.spawns += 1;
        self.live_instances += 1;
        self.commands.push_back(Command::Spawn {
            process: key,
            instance: id,
        });
        Life::Running(Instance {
            id,
            started: now,
            stdout: LineBuffer::new(),
            stderr: LineBuffer::new(),
        })
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
