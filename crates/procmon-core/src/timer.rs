//! Timer identities, and the queue a world keeps them in.

use alloc::collections::BTreeMap;

use crate::time::Instant;

/// Names one arming of one of the monitor's timers.
///
/// The monitor hands these out in [`Command::SetTimer`](crate::Command::SetTimer)
/// and takes them back in [`Input::TimerFired`](crate::Input::TimerFired). Every
/// arming gets a fresh serial, so a late or duplicate fire of a timer that was
/// cancelled or re-armed since is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId {
    pub(crate) slot: u32,
    pub(crate) kind: TimerKind,
    pub(crate) serial: u64,
}

impl TimerId {
    /// What the timer is for; useful to a driver that reports its timers.
    pub fn kind(&self) -> TimerKind {
        self.kind
    }
}

/// What a timer of a process is for; a process has at most one armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// Sends KILL to an instance that did not exit within the kill time.
    Kill,
    /// Starts the process again after its backoff delay.
    Restart,
    /// Tries a `failed` process again after its `retry_failed_after`.
    Retry,
    /// Ends the `starting` of an instance not ready within its
    /// `ready_timeout`.
    Ready,
}

/// A point in the order in which a [`TimerQueue`]'s items were set, from
/// [`TimerQueue::mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerMark(u64);

/// A deadline queue for a world: items keyed by `K`, ordered by `(at, seq)`.
///
/// Items due at the same instant come out in the order they were set, which
/// is the ordering rule of the scenario contract. Setting a key that is
/// already queued moves it (and gives it a new place in the order). Both the
/// simulator and the mio driver keep the monitor's timers in one of these.
#[derive(Debug, Clone)]
pub struct TimerQueue<K: Ord + Copy> {
    by_deadline: BTreeMap<(Instant, u64), K>,
    by_key: BTreeMap<K, (Instant, u64)>,
    next_seq: u64,
}

impl<K: Ord + Copy> Default for TimerQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Copy> TimerQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        TimerQueue {
            by_deadline: BTreeMap::new(),
            by_key: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Queues `key` to fall due at `at`, replacing any earlier setting of it.
    pub fn set(&mut self, key: K, at: Instant) {
        self.cancel(key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_deadline.insert((at, seq), key);
        self.by_key.insert(key, (at, seq));
    }

    /// Removes `key`; returns whether it was queued.
    pub fn cancel(&mut self, key: K) -> bool {
        match self.by_key.remove(&key) {
            Some(slot) => {
                let removed = self.by_deadline.remove(&slot);
                debug_assert!(removed.is_some(), "queue indexes disagree");
                true
            }
            None => false,
        }
    }

    /// The earliest deadline, if anything is queued: how long a world may sleep.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first_key_value().map(|(&(at, _), _)| at)
    }

    /// A point in the order of `set` calls: everything set after this call
    /// comes after it. See [`pop_due_before`](Self::pop_due_before).
    pub fn mark(&self) -> TimerMark {
        TimerMark(self.next_seq)
    }

    /// Like [`pop_due`](Self::pop_due), but only items set before `mark`.
    ///
    /// A world that fires every due timer in a loop, handing each to the
    /// monitor, uses this so that timers set while it fires (a zero-delay
    /// restart after a spawn that failed at once, which sets another) wait
    /// for its next round instead of keeping the loop going for ever. Items
    /// set during the loop are due no earlier than `now`, so they sort after
    /// every older due item, and stopping at the first of them skips none.
    pub fn pop_due_before(&mut self, now: Instant, mark: TimerMark) -> Option<(Instant, K)> {
        let (&(_, seq), _) = self.by_deadline.first_key_value()?;
        if seq >= mark.0 {
            return None;
        }
        self.pop_due(now)
    }

    /// Takes out the first item due at or before `now`, with its deadline.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        let (&(at, _), _) = self.by_deadline.first_key_value()?;
        if at > now {
            return None;
        }
        let ((at, _), key) = self.by_deadline.pop_first().expect("first entry exists");
        self.by_key.remove(&key);
        Some((at, key))
    }

    /// Whether `key` is queued.
    pub fn contains(&self, key: K) -> bool {
        self.by_key.contains_key(&key)
    }

    /// How many items are queued.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    #[test]
    fn same_instant_items_leave_in_insertion_order() {
        let mut q = TimerQueue::new();
        q.set('b', t(5));
        q.set('a', t(5));
        q.set('c', t(1));
        assert_eq!(q.next_deadline(), Some(t(1)));
        assert_eq!(q.pop_due(t(0)), None);
        assert_eq!(q.pop_due(t(9)), Some((t(1), 'c')));
        assert_eq!(q.pop_due(t(9)), Some((t(5), 'b')));
        assert_eq!(q.pop_due(t(9)), Some((t(5), 'a')));
        assert!(q.is_empty());
    }

    #[test]
    fn items_set_after_the_mark_wait() {
        let mut q = TimerQueue::new();
        q.set('a', t(1));
        q.set('b', t(2));
        let mark = q.mark();
        // Set while firing: due at once, and even at an older instant.
        q.set('c', t(2));
        q.set('d', t(0));
        assert_eq!(q.pop_due_before(t(2), mark), None, "d sorts first");
        q.cancel('d');
        assert_eq!(q.pop_due_before(t(2), mark), Some((t(1), 'a')));
        assert_eq!(q.pop_due_before(t(2), mark), Some((t(2), 'b')));
        assert_eq!(q.pop_due_before(t(2), mark), None);
        assert_eq!(q.pop_due_before(t(2), q.mark()), Some((t(2), 'c')));
    }

    #[test]
    fn cancel_and_reset_replace_the_old_entry() {
        let mut q = TimerQueue::new();
        q.set(1, t(1));
        q.set(2, t(2));
        q.set(1, t(3));
        assert!(q.cancel(2));
        assert!(!q.cancel(2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(t(10)), Some((t(3), 1)));
    }
}
