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
            order[root] = next_order;
            low[root] = next_order;
            next_order += 1;
            stack.push(root);
            on_stack[root] = true;
            calls.push((root, 0));
            while let Some((process, next)) = calls.last_mut() {
                let process = *process;
                if let Some(&target) = self.dependencies(process).get(*next) {
                    *next += 1;
                    if order[target] == UNSEEN {
                        order[target] = next_order;
                        low[target] = next_order;
                        next_order += 1;
                        stack.push(target);
                        on_stack[target] = true;
                        calls.push((target, 0));
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
