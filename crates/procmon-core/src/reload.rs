//! Reload: a new set of definitions applied as one step, touching only what
//! changed.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::cycle::{find_cycle, Graph};
use crate::error::{AddError, DefinitionsError};
use crate::life::Event;
use crate::monitor::{Monitor, ProcessState};
use crate::spec::{Definitions, ProcessSpec};
use crate::time::Instant;

/// What a reload does, or would do, to the monitor: from
/// [`Monitor::reload`] and [`Monitor::plan_reload`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadPlan {
    /// Whether the global settings change.
    pub settings_changed: bool,
    /// Each process that changes, and how, in the order of the new
    /// definitions (removed ones last, in their old order). A process that
    /// does not change is not listed.
    pub changes: Vec<(String, Change)>,
}

/// How one process changes in a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Change {
    /// A new name: added, and started if the service runs.
    Added,
    /// A name no longer defined: stopped (its stop signal, KILL after its
    /// kill time) and forgotten.
    Removed,
    /// What is spawned changed (argv, env, clear_env, cwd, uid, gid) and an
    /// instance runs: it is stopped with its old stop signal and kill time,
    /// and the new definition starts as soon as it has exited (while the
    /// service runs), as after a `restart`.
    Restarted,
    /// What is spawned changed and no instance runs: the next start uses
    /// the new definition; the state (held, failed, a pending restart, an
    /// instance already stopping) stays.
    Redefined,
    /// Only the policy changed: applied at once; a live instance is not
    /// touched.
    PolicyChanged,
}

impl Change {
    /// A word for it: `added`, `removed`, `restarted`, `redefined`,
    /// `policy-changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Restarted => "restarted",
            Change::Redefined => "redefined",
            Change::PolicyChanged => "policy-changed",
        }
    }
}

impl Monitor {
    /// What [`reload`](Self::reload) would do with `definitions`, changing
    /// nothing: the dry run. Fails exactly when `reload` would.
    pub fn plan_reload(&self, definitions: &Definitions) -> Result<ReloadPlan, DefinitionsError> {
        definitions.check()?;
        let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
        let mut changes = Vec::new();
        for (name, spec) in &definitions.processes {
            seen.insert(name, ());
            let change = match self.status(name) {
                None => Some(Change::Added),
                Some(status) => compare(
                    status.spec,
                    spec,
                    matches!(status.state, ProcessState::Running | ProcessState::Starting),
                ),
            };
            if let Some(change) = change {
                changes.push((name.clone(), change));
            }
        }
        for (name, _) in self.processes_in_order() {
            if !seen.contains_key(name) {
                changes.push((name.to_string(), Change::Removed));
            }
        }
        Ok(ReloadPlan {
            settings_changed: definitions.settings != *self.settings(),
            changes,
        })
    }

    /// Applies a new set of definitions as one step: checked whole first
    /// (an invalid set changes nothing), then the settings are replaced,
    /// removed names are removed, changed ones restarted or redefined, new
    /// ones added (and started if the service runs). A process whose
    /// definition is unchanged is not touched: same instance before and
    /// after. Names keep their place in the add order (a reordered file
    /// reorders nothing); new names come last, in the order given.
    ///
    /// Refused after [`shut_down`](Self::shut_down); the dry run
    /// ([`plan_reload`](Self::plan_reload)) is not.
    ///
    /// May queue any command.
    pub fn reload(
        &mut self,
        now: Instant,
        definitions: Definitions,
    ) -> Result<ReloadPlan, DefinitionsError> {
        let plan = self.plan_reload(&definitions)?;
        self.begin(now);
        if self.shut_down {
            return Err(DefinitionsError::ShutDown(crate::error::ShutDown));
        }
        self.settings = definitions.settings;
        let mut specs: BTreeMap<String, ProcessSpec> = definitions.processes.into_iter().collect();
        for (name, change) in &plan.changes {
            match change {
                Change::Removed => {
                    self.remove_checked(name)
                        .expect("planned from the added names");
                }
                Change::Added => {
                    let spec = specs.remove(name).expect("planned from the definitions");
                    self.add_checked(name, spec);
                }
                Change::Restarted | Change::Redefined | Change::PolicyChanged => {
                    let spec = specs.remove(name).expect("planned from the definitions");
                    let key = self.key(name).expect("planned from the added names");
                    if *change == Change::Restarted {
                        // Stopped under the old definition, so with its own
                        // stop signal and kill time.
                        self.transition(key, Event::Restart);
                    }
                    if !spec.after.is_empty() {
                        self.has_dependencies = true;
                    }
                    if self.has_dependencies {
                        // What it waited for under the old `after` may
                        // have a stop deferred for it.
                        self.mark_changed(key);
                    }
                    self.unindex_dependencies(key);
                    self.processes[key.index()].spec = spec;
                    self.index_dependencies(key);
                    if self.has_dependencies {
                        self.mark_changed(key);
                    }
                }
            }
        }
        // A changed `after` may let a waiting process start, or a removal
        // let a deferred stop go.
        self.settle();
        Ok(plan)
    }
}

impl Definitions {
    /// Whether a monitor would take this whole set: the settings, each
    /// process (as [`Monitor::add`] checks it), no name twice, and every
    /// `after` naming a defined process without closing a cycle. What a
    /// reload and a config file check before anything changes.
    pub fn check(&self) -> Result<(), DefinitionsError> {
        self.settings
            .validate()
            .map_err(DefinitionsError::Settings)?;
        // Each name's position in the set.
        let mut positions: BTreeMap<&str, usize> = BTreeMap::new();
        for (position, (name, spec)) in self.processes.iter().enumerate() {
            crate::monitor::validate(name, spec).map_err(DefinitionsError::Add)?;
            spec.policy.check(&self.settings).map_err(|error| {
                DefinitionsError::Add(AddError::Policy {
                    name: name.clone(),
                    error,
                })
            })?;
            if positions.insert(name, position).is_some() {
                return Err(DefinitionsError::Add(AddError::DuplicateName {
                    name: name.clone(),
                }));
            }
        }
        // The whole set's `after` as positions, searched for cycles once
        // (linear in processes plus dependencies) rather than once from
        // every process, which costs a chain of `after` its length squared.
        let mut graph = Graph::with_capacity(self.processes.len());
        let mut first_unknown = None;
        for (position, (name, spec)) in self.processes.iter().enumerate() {
            for dependency in &spec.after {
                match positions.get(&*dependency.name) {
                    Some(&target) => graph.push_dependency(target),
                    None if first_unknown.is_none() => {
                        first_unknown = Some((position, name, &dependency.name));
                    }
                    None => {}
                }
            }
            graph.end_process();
        }
        // The error is the one a look at each process in turn finds first,
        // an unknown name in its `after` before a cycle through it, so that
        // a set with several faults is refused for the same one as ever.
        let first_cycle = graph.first_on_cycle();
        match (first_unknown, first_cycle) {
            (Some((position, name, dependency)), cycle)
                if cycle.is_none_or(|cycle| position <= cycle) =>
            {
                Err(DefinitionsError::Add(AddError::UnknownDependency {
                    name: name.clone(),
                    dependency: dependency.clone(),
                }))
            }
            (_, Some(position)) => {
                let name = &self.processes[position].0;
                // One search, from the process named, words the cycle
                // exactly as the search from each process in turn did.
                let after_of = |n: &str| positions.get(n).map(|&p| &self.processes[p].1.after[..]);
                let cycle = find_cycle(name, after_of)
                    .expect("a process on a cycle has a path back to itself");
                Err(DefinitionsError::Add(AddError::DependencyCycle {
                    name: name.clone(),
                    cycle,
                }))
            }
            (_, None) => Ok(()),
        }
    }
}

/// How `new` differs from `old`, given whether an instance runs (one that
/// is already stopping goes its way, and what follows uses the new
/// definition).
fn compare(old: &ProcessSpec, new: &ProcessSpec, running: bool) -> Option<Change> {
    if old == new {
        None
    } else if !old.spawns_same_as(new) {
        Some(if running {
            Change::Restarted
        } else {
            Change::Redefined
        })
    } else {
        Some(Change::PolicyChanged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Signal, SignalReason};
    use crate::input::{ExitStatus, Input};
    use crate::spec::{Policy, RestartPolicy, Settings};
    use alloc::vec;
    use core::time::Duration;

    fn drain(m: &mut Monitor) -> Vec<Command> {
        core::iter::from_fn(|| m.poll_command()).collect()
    }

    fn spec(argv: &str) -> ProcessSpec {
        ProcessSpec::new([argv])
    }

    fn with_policy(argv: &str, policy: Policy) -> ProcessSpec {
        spec(argv).with_policy(policy)
    }

    fn definitions(processes: Vec<(&str, ProcessSpec)>) -> Definitions {
        Definitions {
            settings: Settings::default(),
            processes: processes
                .into_iter()
                .map(|(n, s)| (n.to_string(), s))
                .collect(),
        }
    }

    fn running() -> Monitor {
        let stop_int = Policy {
            stop_signal: Some(Signal::Int),
            ..Policy::default()
        };
        let mut m = Monitor::from_definitions(definitions(vec![
            ("same", spec("same")),
            ("argv", with_policy("old", stop_int)),
            ("policy", spec("policy")),
            ("gone", spec("gone")),
        ]))
        .unwrap();
        m.start_service(Instant::ZERO).unwrap();
        drain(&mut m);
        m
    }

    fn new_definitions() -> Definitions {
        let never = Policy {
            restart: Some(RestartPolicy::Never),
            ..Policy::default()
        };
        definitions(vec![
            ("same", spec("same")),
            ("argv", spec("new")),
            ("policy", with_policy("policy", never)),
            ("fresh", spec("fresh")),
        ])
    }

    #[test]
    fn a_kill_reports_the_kill_time_its_stop_was_sent_with() {
        let kill_in = |secs| Policy {
            kill_time: Some(Duration::from_secs(secs)),
            ..Policy::default()
        };
        let mut m =
            Monitor::from_definitions(definitions(vec![("a", with_policy("a", kill_in(5)))]))
                .unwrap();
        m.start_service(Instant::ZERO).unwrap();
        drain(&mut m);
        m.stop(Instant::ZERO, "a").unwrap();
        let timer = drain(&mut m)
            .into_iter()
            .find_map(|c| match c {
                Command::SetTimer { timer, .. } => Some(timer),
                _ => None,
            })
            .expect("KILL is armed");
        // A reload while it stops shortens the kill time; the KILL due is
        // the one armed with 5 s, and says so.
        m.reload(
            Instant::ZERO,
            definitions(vec![("a", with_policy("a", kill_in(1)))]),
        )
        .unwrap();
        drain(&mut m);
        let at = Instant::ZERO.saturating_add(Duration::from_secs(5));
        m.handle(at, crate::Input::TimerFired { timer });
        let kill_time = drain(&mut m).into_iter().find_map(|c| match c {
            Command::Signal {
                signal: Signal::Kill,
                reason: SignalReason::KillTime,
                kill_time,
                ..
            } => kill_time,
            _ => None,
        });
        assert_eq!(kill_time, Some(Duration::from_secs(5)));
    }

    #[test]
    fn only_what_changed_is_touched() {
        let mut m = running();
        let before: Vec<_> = ["same", "argv", "policy"]
            .iter()
            .map(|n| m.live_instance(n).unwrap())
            .collect();
        let plan = m.plan_reload(&new_definitions()).unwrap();
        assert!(drain(&mut m).is_empty(), "a dry run does nothing");
        let applied = m.reload(Instant::ZERO, new_definitions()).unwrap();
        assert_eq!(plan, applied);
        assert_eq!(
            applied.changes,
            vec![
                ("argv".to_string(), Change::Restarted),
                ("policy".to_string(), Change::PolicyChanged),
                ("fresh".to_string(), Change::Added),
                ("gone".to_string(), Change::Removed),
            ]
        );
        assert!(!applied.settings_changed);
        let commands = drain(&mut m);
        let signals: Vec<_> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Signal {
                    instance, signal, ..
                } => Some((*instance, *signal)),
                _ => None,
            })
            .collect();
        // The changed process is stopped with its old stop signal; the
        // removed one with TERM; the unchanged and policy-only ones not at all.
        assert_eq!(
            signals,
            vec![
                (before[1], Signal::Int),
                (m.live_instance("gone").unwrap(), Signal::Term)
            ]
        );
        assert_eq!(m.live_instance("same"), Some(before[0]));
        assert_eq!(m.live_instance("policy"), Some(before[2]));
        assert_eq!(
            m.status("policy").unwrap().spec.policy.restart,
            Some(RestartPolicy::Never)
        );
        assert!(m.live_instance("fresh").is_some(), "a new name starts");
        // The changed process starts again, with its new argv, once the old
        // instance has gone.
        m.handle(
            Instant::ZERO,
            Input::Exited {
                instance: before[1],
                status: ExitStatus::Code(0),
            },
        );
        let timer = drain(&mut m)
            .into_iter()
            .find_map(|c| match c {
                Command::SetTimer { timer, .. } => Some(timer),
                _ => None,
            })
            .unwrap();
        m.handle(Instant::ZERO, Input::TimerFired { timer });
        let spawned = drain(&mut m)
            .into_iter()
            .find_map(|c| match c {
                Command::Spawn { process, .. } => Some(process),
                _ => None,
            })
            .unwrap();
        assert_eq!(m.spec(spawned).unwrap().argv, vec![b"new".to_vec()]);
    }

    #[test]
    fn an_invalid_set_changes_nothing() {
        let bad_delays = Policy {
            min_restart_delay: Some(Duration::from_secs(7200)),
            ..Policy::default()
        };
        for bad in [
            definitions(vec![("same", spec("same")), ("same", spec("again"))]),
            definitions(vec![("same", spec("same")), ("x", ProcessSpec::new([""]))]),
            definitions(vec![("x", with_policy("x", bad_delays))]),
            Definitions {
                settings: Settings {
                    line_limit_bytes: 0,
                    ..Settings::default()
                },
                processes: Vec::new(),
            },
        ] {
            let mut m = running();
            let before = m.definitions();
            assert!(m.plan_reload(&bad).is_err());
            assert!(m.reload(Instant::ZERO, bad).is_err());
            assert!(drain(&mut m).is_empty());
            assert_eq!(m.definitions(), before);
        }
    }

    #[test]
    fn a_held_process_with_a_new_argv_stays_held() {
        let mut m = running();
        m.down(Instant::ZERO, "argv").unwrap();
        let instance = m.live_instance("argv").unwrap();
        drain(&mut m);
        m.handle(
            Instant::ZERO,
            Input::Exited {
                instance,
                status: ExitStatus::Code(0),
            },
        );
        drain(&mut m);
        let plan = m.reload(Instant::ZERO, new_definitions()).unwrap();
        assert!(plan
            .changes
            .contains(&("argv".to_string(), Change::Redefined)));
        assert!(drain(&mut m).iter().all(
            |c| !matches!(c, Command::Spawn { process, .. } if m.name(*process) == Some("argv"))
        ));
        assert_eq!(
            m.status("argv").unwrap().state,
            crate::monitor::ProcessState::Held
        );
    }
}
