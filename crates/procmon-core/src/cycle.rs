//! Cycles of `after`: which processes lie on one, and the path that names
//! one in an error.
//!
//! A definition set is checked whole ([`Definitions::check`]) at every load
//! and reload, so its cost is paid on the event loop: it must stay linear
//! in processes plus dependencies, and iterative, since a long chain of
//! `after` would otherwise be a deep recursion. The search from one name
//! ([`find_cycle`]) is what `Monitor::add` needs, and what words the error.
//!
//! [`Definitions::check`]: crate::Definitions::check

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::spec::Dependency;

/// The `after` of a whole set of definitions as positions in that set, in
/// the order written: process `i` waits for `targets[starts[i]..starts[i + 1]]`.
/// One flat array rather than a `Vec` per process: a 100,000-long chain is
/// then two allocations, not 100,000.
#[derive(Debug)]
pub(crate) struct Graph {
    starts: Vec<usize>,
    targets: Vec<usize>,
}

impl Graph {
    /// An empty graph with room for `processes`.
    pub(crate) fn with_capacity(processes: usize) -> Self {
        let mut starts = Vec::with_capacity(processes + 1);
        starts.push(0);
        Graph {
            starts,
            targets: Vec::new(),
        }
    }

    /// Adds an edge from the process being built (the next one
    /// [`end_process`](Self::end_process) closes) to process `target`.
    pub(crate) fn push_dependency(&mut self, target: usize) {
        self.targets.push(target);
    }

    /// Closes the dependencies of the process being built.
    pub(crate) fn end_process(&mut self) {
        self.starts.push(self.targets.len());
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    fn dependencies(&self, process: usize) -> &[usize] {
        &self.targets[self.starts[process]..self.starts[process + 1]]
    }

    /// The first process, in the order given, that lies on a cycle, if any.
    ///
    /// Tarjan's strongly connected components, with an explicit stack so
    /// that the depth of the graph costs heap, not call stack: each process
    /// and each dependency is looked at once. A process lies on a cycle
    /// exactly when its component has more than one process, or it waits
    /// for itself (refused earlier by `validate`, but cheap to get right).
    /// A plain three-colour search would find *a* cycle; the error names
    /// the first process on one, in the order given, as the check always
    /// has, and only components tell which processes those are.
    pub(crate) fn first_on_cycle(&self) -> Option<usize> {
        const UNSEEN: usize = usize::MAX;
        let n = self.len();
        // Discovery order of each process, and the lowest one it reaches
        // back to through the search tree and one more edge.
        let mut order = alloc::vec![UNSEEN; n];
        let mut low = alloc::vec![0; n];
        let mut on_stack = alloc::vec![false; n];
        let mut on_cycle = alloc::vec![false; n];
        // Processes of components not yet closed, in discovery order.
        let mut stack: Vec<usize> = Vec::new();
        // The search's own call stack: a process and its next dependency.
        let mut calls: Vec<(usize, usize)> = Vec::new();
        let mut next_order = 0;
        for root in 0..n {
            if order[root] != UNSEEN {
                continue;
            }
            // The process the search enters next: the root, then each
            // dependency not seen yet.
            let mut enter = Some(root);
            loop {
                if let Some(process) = enter.take() {
                    order[process] = next_order;
                    low[process] = next_order;
                    next_order += 1;
                    stack.push(process);
                    on_stack[process] = true;
                    calls.push((process, 0));
                }
                let Some((process, next)) = calls.last_mut() else {
                    break;
                };
                let process = *process;
                if let Some(&target) = self.dependencies(process).get(*next) {
                    *next += 1;
                    if order[target] == UNSEEN {
                        enter = Some(target);
                    } else if on_stack[target] {
                        low[process] = low[process].min(order[target]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent] = low[parent].min(low[process]);
                }
                if low[process] == order[process] {
                    // `process` is the root of a component: everything
                    // above it on the stack belongs to it.
                    let at = stack
                        .iter()
                        .rposition(|&p| p == process)
                        .expect("a root is on the stack until its component closes");
                    let cyclic =
                        stack.len() - at > 1 || self.dependencies(process).contains(&process);
                    for member in stack.drain(at..) {
                        on_stack[member] = false;
                        on_cycle[member] = cyclic;
                    }
                }
            }
        }
        on_cycle.iter().position(|&cyclic| cyclic)
    }
}

/// The cycle through `start` that following `after_of` closes, if any:
/// `[start, a, b, start]`, the search's path when it first meets an edge
/// back to `start` (dependencies in the order written, depth first).
/// Iterative, and each name is entered once, so one call costs what is
/// reachable from `start` (with a `BTreeSet` of borrowed names, nothing is
/// copied until a cycle is found).
pub(crate) fn find_cycle<'a>(
    start: &'a str,
    after_of: impl Fn(&str) -> Option<&'a [Dependency]>,
) -> Option<Vec<String>> {
    let mut path: Vec<(&'a str, usize)> = alloc::vec![(start, 0)];
    let mut seen: BTreeSet<&'a str> = BTreeSet::new();
    while let Some((name, next)) = path.last_mut() {
        let after = after_of(name).unwrap_or(&[]);
        let Some(dependency) = after.get(*next) else {
            path.pop();
            continue;
        };
        *next += 1;
        let dependency: &'a str = &dependency.name;
        if dependency == start {
            let mut cycle: Vec<String> = path.iter().map(|(n, _)| n.to_string()).collect();
            cycle.push(start.to_string());
            return Some(cycle);
        }
        if seen.insert(dependency) {
            path.push((dependency, 0));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AddError, DefinitionsError};
    use crate::monitor::Monitor;
    use crate::spec::{Condition, Definitions, ProcessSpec, Settings};
    use crate::time::Instant;
    use alloc::collections::BTreeMap;
    use alloc::format;

    fn spec(after: &[&str]) -> ProcessSpec {
        let mut spec = ProcessSpec::new(["true"]);
        spec.after = after
            .iter()
            .map(|name| Dependency {
                name: name.to_string(),
                condition: Condition::Started,
            })
            .collect();
        spec
    }

    fn definitions(processes: &[(&str, &[&str])]) -> Definitions {
        Definitions {
            settings: Settings::default(),
            processes: processes
                .iter()
                .map(|(name, after)| (name.to_string(), spec(after)))
                .collect(),
        }
    }

    fn cycle(name: &str, path: &[&str]) -> AddError {
        AddError::DependencyCycle {
            name: name.to_string(),
            cycle: path.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// What `check` and `from_definitions` refuse `processes` with.
    fn refused(processes: &[(&str, &[&str])]) -> AddError {
        let definitions = definitions(processes);
        let Err(DefinitionsError::Add(checked)) = definitions.check() else {
            panic!("{processes:?} is refused");
        };
        let Err(DefinitionsError::Add(loaded)) = Monitor::from_definitions(definitions) else {
            panic!("{processes:?} is refused");
        };
        assert_eq!(checked, loaded, "a load refuses what the check does");
        checked
    }

    /// Each process `after` the one before it.
    fn chain(length: usize) -> Definitions {
        Definitions {
            settings: Settings::default(),
            processes: (0..length)
                .map(|i| {
                    let previous = format!("p{}", i.wrapping_sub(1));
                    let after: &[&str] = if i == 0 { &[] } else { &[&previous] };
                    (format!("p{i}"), spec(after))
                })
                .collect(),
        }
    }

    #[test]
    fn cycles_are_found() {
        assert_eq!(
            refused(&[("a", &["b"]), ("b", &["a"])]),
            cycle("a", &["a", "b", "a"])
        );
        assert_eq!(
            refused(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]),
            cycle("a", &["a", "b", "c", "a"])
        );
        // A process waiting for itself is refused before any cycle search.
        let itself = AddError::InvalidDependency {
            name: "a".to_string(),
            dependency: "a".to_string(),
        };
        assert_eq!(refused(&[("x", &[]), ("a", &["a"])]), itself);
        let mut m = Monitor::new(Settings::default()).unwrap();
        assert_eq!(m.add(Instant::ZERO, "a", spec(&["a"])), Err(itself));
        // `x` and `a` lead to the cycle without lying on it: it is named
        // from `b`, the first process on it.
        assert_eq!(
            refused(&[("x", &[]), ("a", &["x", "b"]), ("b", &["c"]), ("c", &["b"])]),
            cycle("b", &["b", "c", "b"])
        );
        // The path is the depth-first one, dependencies in the order written.
        assert_eq!(
            refused(&[
                ("a", &["c", "b"]),
                ("b", &["a"]),
                ("c", &["d"]),
                ("d", &["b"])
            ]),
            cycle("a", &["a", "c", "d", "b", "a"])
        );
        // Looking at each process in turn, an unknown name is met before a
        // cycle through a later process, and after one through an earlier.
        let unknown = AddError::UnknownDependency {
            name: "a".to_string(),
            dependency: "nowhere".to_string(),
        };
        assert_eq!(
            refused(&[("a", &["nowhere"]), ("b", &["c"]), ("c", &["b"])]),
            unknown
        );
        assert_eq!(
            refused(&[("a", &["nowhere", "a2"]), ("a2", &["a"])]),
            unknown
        );
        assert_eq!(
            refused(&[("b", &["c"]), ("c", &["b"]), ("a", &["nowhere"])]),
            cycle("b", &["b", "c", "b"])
        );
    }

    #[test]
    fn add_refuses_the_cycle_it_would_close() {
        let mut m = Monitor::new(Settings::default()).unwrap();
        m.add(Instant::ZERO, "a", spec(&["b"])).unwrap();
        m.add(Instant::ZERO, "b", spec(&["c"])).unwrap();
        assert_eq!(
            m.add(Instant::ZERO, "c", spec(&["a"])),
            Err(cycle("c", &["c", "a", "b", "c"]))
        );
        assert!(m.key("c").is_none(), "a refused add changes nothing");
        m.add(Instant::ZERO, "c", spec(&[])).unwrap();
        // Nothing waits for a removed name, so it may come back waiting
        // for what waited for it.
        m.remove(Instant::ZERO, "a").unwrap();
        m.add(Instant::ZERO, "a", spec(&["c"])).unwrap();
        assert_eq!(
            m.add(Instant::ZERO, "d", spec(&[])).map(|_| ()),
            Ok(()),
            "a name nothing waits for needs no search"
        );
    }

    #[test]
    fn a_100000_long_chain_is_checked_and_loaded() {
        // Deep enough that a recursive search would overflow the stack of a
        // test thread; no timing asserted, only that it ends.
        const LENGTH: usize = 100_000;
        let definitions = chain(LENGTH);
        definitions.check().unwrap();
        let mut m = Monitor::from_definitions(definitions).unwrap();
        assert_eq!(m.statuses().count(), LENGTH);
        // The first link waiting for the last closes a cycle of them all,
        // refused by `add` and by a whole-set check alike.
        let last = format!("p{}", LENGTH - 1);
        m.remove(Instant::ZERO, "p0").unwrap();
        let Err(AddError::DependencyCycle { name, cycle }) =
            m.add(Instant::ZERO, "p0", spec(&[&last]))
        else {
            panic!("the cycle is refused");
        };
        assert_eq!(name, "p0");
        assert_eq!(cycle.len(), LENGTH + 1);
        assert_eq!(
            [&*cycle[0], &*cycle[1], &*cycle[LENGTH - 1], &*cycle[LENGTH]],
            ["p0", &*last, "p1", "p0"]
        );
        let mut closed = chain(LENGTH);
        closed.processes[0].1 = spec(&[&last]);
        assert_eq!(
            closed.check(),
            Err(DefinitionsError::Add(AddError::DependencyCycle {
                name: "p0".to_string(),
                cycle,
            }))
        );
    }

    /// `Definitions::check` as it was, one search from each process in
    /// turn: the reference for what the error must be.
    fn check_each_in_turn(processes: &[(String, ProcessSpec)]) -> Option<AddError> {
        let specs: BTreeMap<&str, &ProcessSpec> =
            processes.iter().map(|(n, s)| (n.as_str(), s)).collect();
        for (name, spec) in processes {
            if let Some(unknown) = spec.after.iter().find(|d| !specs.contains_key(&*d.name)) {
                return Some(AddError::UnknownDependency {
                    name: name.clone(),
                    dependency: unknown.name.clone(),
                });
            }
            let after_of = |n: &str| specs.get(n).map(|s| &s.after[..]);
            if let Some(cycle) = find_cycle(name, after_of) {
                return Some(AddError::DependencyCycle {
                    name: name.clone(),
                    cycle,
                });
            }
        }
        None
    }

    #[test]
    fn the_error_is_the_one_a_search_from_each_process_finds() {
        // Small random sets (a fixed linear congruential sequence, so every
        // run sees the same ones), dense enough that most have cycles,
        // some through several processes, and now and then an unknown name.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        let mut cycles = 0;
        for _ in 0..3_000 {
            let count = 1 + next(7) as usize;
            let processes: Vec<(String, ProcessSpec)> = (0..count)
                .map(|i| {
                    let mut after: Vec<String> = Vec::new();
                    for _ in 0..next(4) {
                        // One past the set is a name nobody defines.
                        let target = next(count as u64 + 1) as usize;
                        let name = if target == count && next(8) == 0 {
                            "nowhere".to_string()
                        } else {
                            format!("p{}", target % count)
                        };
                        if target % count != i && !after.contains(&name) {
                            after.push(name);
                        }
                    }
                    let after: Vec<&str> = after.iter().map(String::as_str).collect();
                    (format!("p{i}"), spec(&after))
                })
                .collect();
            let expected = check_each_in_turn(&processes);
            cycles += usize::from(matches!(expected, Some(AddError::DependencyCycle { .. })));
            let definitions = Definitions {
                settings: Settings::default(),
                processes,
            };
            assert_eq!(
                definitions.check().err(),
                expected.map(DefinitionsError::Add),
                "{:?}",
                definitions.processes
            );
        }
        assert!(cycles > 500, "the sets have cycles to find ({cycles})");
    }
}
