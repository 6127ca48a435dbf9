//! The simulated world: processes that react to signals, and one queue of
//! everything that falls due, in virtual time.
//!
//! This is the sans-IO counterpart of the mio driver, like str0m's `Netem`:
//! it holds no policy, only the mechanics the contract's "simulated world"
//! section describes.

use std::collections::{BTreeMap, VecDeque};

use procmon_core::{Duration, ExitStatus, InstanceId, Instant, TimerId, TimerQueue};

/// Signal number of KILL on every Unix, as a real driver would report it.
pub(crate) const SIGKILL: i32 = 9;

/// The term delay a simulated process starts with (the seed's `DummyProcess`).
const DEFAULT_TERM_DELAY: Duration = Duration::from_secs(1);

/// Something in the queue. Monitor timers and simulated exits share one
/// queue so that same-instant items fire in the order they were scheduled,
/// whichever kind they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Timer(TimerId),
    /// A scheduled exit, by its serial in `World::exits`.
    Exit(u64),
}

/// What fell due, as handed back by [`World::pop_due`].
#[derive(Clone, Debug)]
pub(crate) enum Fired {
    /// A monitor timer: tell the monitor.
    Timer(TimerId),
    /// A simulated process exited; it is already dead in the world.
    Exit {
        instance: InstanceId,
        name: String,
        status: ExitStatus,
    },
}

#[derive(Debug)]
struct SimProcess {
    name: String,
    /// The definition's stop signal, which it obeys exactly as TERM.
    stop_signal: &'static str,
    term_delay: Duration,
    /// Whether it has a notification channel (`--ready notify` or `fd:N`),
    /// which `ready` and `not-ready` steps speak on.
    channel: bool,
    /// Serials of this process's scheduled exits, cancelled when it dies so a
    /// dead process never exits twice (a TERM exit after a KILL, say).
    scheduled: Vec<u64>,
}

/// Simulated processes and the queue of due items.
#[derive(Debug, Default)]
pub(crate) struct World {
    queue: TimerQueue<Due>,
    processes: BTreeMap<InstanceId, SimProcess>,
    exits: BTreeMap<u64, (InstanceId, ExitStatus)>,
    next_exit: u64,
    timers: usize,
    /// Errnos the next spawns of a name fail with, in order (`fail-spawn`).
    spawn_failures: BTreeMap<String, VecDeque<i32>>,
}

impl World {
    /// Makes the next spawn of `name` not yet failed fail with `errno`.
    pub(crate) fn fail_next_spawn(&mut self, name: &str, errno: i32) {
        self.spawn_failures
            .entry(name.to_string())
            .or_default()
            .push_back(errno);
    }

    /// A spawn of `name`: the errno it fails with, if a `fail-spawn` asked
    /// for one (the world then has no process), else `None` and the
    /// process is running at once.
    pub(crate) fn spawn(
        &mut self,
        instance: InstanceId,
        name: &str,
        stop_signal: &'static str,
        channel: bool,
    ) -> Option<i32> {
        if let Some(failures) = self.spawn_failures.get_mut(name) {
            let errno = failures.pop_front();
            if failures.is_empty() {
                self.spawn_failures.remove(name);
            }
            if errno.is_some() {
                return errno;
            }
        }
        let previous = self.processes.insert(
            instance,
            SimProcess {
                name: name.to_string(),
                stop_signal,
                term_delay: DEFAULT_TERM_DELAY,
                channel,
                scheduled: Vec::new(),
            },
        );
        assert!(previous.is_none(), "the monitor reused an instance id");
        None
    }

    /// Whether the instance is alive in the world.
    pub(crate) fn is_alive(&self, instance: InstanceId) -> bool {
        self.processes.contains_key(&instance)
    }

    /// Whether the live instance has a notification channel.
    pub(crate) fn has_channel(&self, instance: InstanceId) -> bool {
        self.processes.get(&instance).is_some_and(|p| p.channel)
    }

    /// Live instances and the names they were spawned under.
    pub(crate) fn live(&self) -> impl Iterator<Item = (InstanceId, &str)> {
        self.processes.iter().map(|(&id, p)| (id, p.name.as_str()))
    }

    /// Sets how long the instance takes to exit after later TERMs.
    pub(crate) fn set_term_delay(&mut self, instance: InstanceId, delay: Duration) {
        if let Some(process) = self.processes.get_mut(&instance) {
            process.term_delay = delay;
        }
    }

    /// Delivers a signal by name. TERM (and the process's stop signal)
    /// schedules an exit with code 0 after the term delay, KILL an exit by
    /// signal at `now`; anything else is ignored,
    /// as is a signal to an instance that is gone (a real `kill` gets ESRCH).
    /// An exit past the end of time never happens, as the core treats a
    /// timer that far away.
    pub(crate) fn signal(&mut self, now: Instant, instance: InstanceId, signal: &str) {
        let Some(process) = self.processes.get(&instance) else {
            return;
        };
        let (delay, status) = match signal {
            "KILL" => (Duration::ZERO, ExitStatus::Signal(SIGKILL)),
            "TERM" => (process.term_delay, ExitStatus::Code(0)),
            _ if signal == process.stop_signal => (process.term_delay, ExitStatus::Code(0)),
            _ => return,
        };
        let Some(at) = now.checked_add(delay) else {
            return;
        };
        let serial = self.next_exit;
        self.next_exit += 1;
        self.exits.insert(serial, (instance, status));
        self.queue.set(Due::Exit(serial), at);
        self.processes
            .get_mut(&instance)
            .expect("checked above")
            .scheduled
            .push(serial);
    }

    /// The instance is dead (by itself, or its scheduled exit fired): forget
    /// it and every exit it still had scheduled. Returns the name it was
    /// spawned under, if it was alive.
    pub(crate) fn die(&mut self, instance: InstanceId) -> Option<String> {
        let process = self.processes.remove(&instance)?;
        for serial in process.scheduled {
            self.exits.remove(&serial);
            self.queue.cancel(Due::Exit(serial));
        }
        Some(process.name)
    }

    /// Arms a monitor timer.
    pub(crate) fn set_timer(&mut self, timer: TimerId, at: Instant) {
        if !self.queue.contains(Due::Timer(timer)) {
            self.timers += 1;
        }
        self.queue.set(Due::Timer(timer), at);
    }

    /// Disarms a monitor timer.
    pub(crate) fn cancel_timer(&mut self, timer: TimerId) {
        if self.queue.cancel(Due::Timer(timer)) {
            self.timers -= 1;
        }
    }

    /// How many monitor timers are queued.
    pub(crate) fn timers(&self) -> usize {
        self.timers
    }

    /// How many items of any kind are queued.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Takes out the earliest item due at or before `until`, with its due time.
    /// An exit is carried out in the world before it is handed back.
    pub(crate) fn pop_due(&mut self, until: Instant) -> Option<(Instant, Fired)> {
        let (at, due) = self.queue.pop_due(until)?;
        let fired = match due {
            Due::Timer(timer) => {
                self.timers -= 1;
                Fired::Timer(timer)
            }
            Due::Exit(serial) => {
                let (instance, status) = self
                    .exits
                    .remove(&serial)
                    .expect("queued exits are in the table until they fire or are cancelled");
                let process = self
                    .processes
                    .get_mut(&instance)
                    .expect("a dead process's exits are cancelled");
                process.scheduled.retain(|&s| s != serial);
                let name = self.die(instance).expect("alive: checked above");
                Fired::Exit {
                    instance,
                    name,
                    status,
                }
            }
        };
        Some((at, fired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_already_scheduled_is_dropped_when_the_process_dies_first() {
        // InstanceIds only come from a monitor; borrow two from one.
        let mut monitor = procmon_core::Monitor::new(Default::default()).unwrap();
        monitor.start_service(Instant::ZERO).unwrap();
        monitor
            .add(Instant::ZERO, "a", procmon_core::ProcessSpec::new(["a"]))
            .unwrap();
        let Some(procmon_core::Command::Spawn { instance, .. }) = monitor.poll_command() else {
            panic!("add while the service runs spawns");
        };
        let mut world = World::default();
        assert_eq!(world.spawn(instance, "a", "TERM", false), None);
        world.signal(Instant::ZERO, instance, "TERM");
        world.signal(Instant::ZERO, instance, "HUP");
        world.signal(Instant::ZERO, instance, "KILL");
        assert_eq!(world.queued(), 2);
        let (at, fired) = world.pop_due(Instant::from_nanos(5_000_000_000)).unwrap();
        assert_eq!(at, Instant::ZERO);
        assert!(matches!(
            fired,
            Fired::Exit {
                status: ExitStatus::Signal(SIGKILL),
                ..
            }
        ));
        assert!(!world.is_alive(instance));
        assert_eq!(world.queued(), 0, "the TERM exit went with the process");
        assert!(world.pop_due(Instant::from_nanos(u64::MAX)).is_none());
    }
}
