//! Each process's recent output lines, in memory, for `procmon ctl logs`.
//!
//! A ring keeps at most a number of lines and of bytes per process; the
//! oldest lines go first. The bytes live in one buffer per process whose
//! front is dropped by moving a start offset (and compacted, one move, once
//! half of it is dropped), and the lines are lengths into it, so keeping a
//! line costs one copy into that buffer and no allocation once the buffer
//! has grown to its bound. The last process pushed to is remembered: a
//! read's lines are all one process's, so most lines skip the lookup.

use std::collections::{HashMap, VecDeque};

use procmon_core::Stream;

/// The default bound on lines kept per process.
pub const DEFAULT_LINES: usize = 1_000;

/// The default bound on bytes kept per process (line bytes, no newlines).
pub const DEFAULT_BYTES: usize = 1024 * 1024;

/// Recent lines of every process, by name.
#[derive(Debug)]
pub struct LogRings {
    max_lines: usize,
    max_bytes: usize,
    /// Each process's ring, by its index in `kept`.
    index: HashMap<Box<str>, usize>,
    kept: Vec<Ring>,
    /// The name last pushed to and its index.
    last: Option<(Box<str>, usize)>,
    /// Slots of forgotten processes, to reuse.
    free: Vec<usize>,
    /// How many processes were forgotten: a [`RingSlot`] taken before a
    /// forget may name a slot reused since, and is not trusted.
    forgets: u64,
}

/// One process's ring, as [`LogRings::slot`] found it: the lines of one
/// read go to it without looking the name up again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSlot {
    at: usize,
    forgets: u64,
}

/// One line as kept: the stream, and the bytes (which may be any bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptLine {
    /// Which stream it came from.
    pub stream: Stream,
    /// The line, without its newline.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct Ring {
    /// The kept lines' bytes from `start` on; before it, dropped ones.
    bytes: Vec<u8>,
    start: usize,
    lines: VecDeque<(Stream, usize)>,
}

impl Ring {
    fn kept_bytes(&self) -> usize {
        self.bytes.len() - self.start
    }
}

impl LogRings {
    /// Rings that keep at most `max_lines` lines and `max_bytes` bytes per
    /// process. A line longer than `max_bytes` is kept cut to its first
    /// `max_bytes` bytes, so the newest line is always there.
    pub fn new(max_lines: usize, max_bytes: usize) -> LogRings {
        LogRings {
            max_lines,
            max_bytes,
            index: HashMap::new(),
            kept: Vec::new(),
            last: None,
            free: Vec::new(),
            forgets: 0,
        }
    }

    /// Keeps `line` of `name`'s `stream`, dropping the oldest lines as the
    /// bounds require.
    pub fn push(&mut self, name: &str, stream: Stream, line: &[u8]) {
        if self.max_lines == 0 || self.max_bytes == 0 {
            return;
        }
        let at = match &self.last {
            Some((last, at)) if **last == *name => *at,
            _ => self.slot(name).at,
        };
        self.push_at(at, stream, line);
    }

    /// `name`'s ring, made if it has none, for [`LogRings::push_to`].
    pub fn slot(&mut self, name: &str) -> RingSlot {
        let at = match self.index.get(name) {
            Some(&at) => at,
            None => {
                let at = self.free.pop().unwrap_or_else(|| {
                    self.kept.push(Ring::default());
                    self.kept.len() - 1
                });
                self.index.insert(name.into(), at);
                at
            }
        };
        self.last = Some((name.into(), at));
        RingSlot {
            at,
            forgets: self.forgets,
        }
    }

    /// [`LogRings::push`] to the ring `slot` names, which was `name`'s.
    #[inline]
    pub fn push_to(&mut self, slot: RingSlot, name: &str, stream: Stream, line: &[u8]) {
        if slot.forgets != self.forgets {
            self.push(name, stream, line);
        } else if self.max_lines > 0 && self.max_bytes > 0 {
            self.push_at(slot.at, stream, line);
        }
    }

    #[inline]
    fn push_at(&mut self, at: usize, stream: Stream, line: &[u8]) {
        let ring = &mut self.kept[at];
        let line = &line[..line.len().min(self.max_bytes)];
        while ring.lines.len() >= self.max_lines
            || (!ring.lines.is_empty() && ring.kept_bytes() + line.len() > self.max_bytes)
        {
            let (_, len) = ring.lines.pop_front().expect("checked non-empty");
            ring.start += len;
        }
        if ring.start > 0 && ring.start >= ring.bytes.len() / 2 {
            ring.bytes.drain(..ring.start);
            ring.start = 0;
        }
        ring.bytes.extend_from_slice(line);
        ring.lines.push_back((stream, line.len()));
    }

    /// The last `count` lines of `name`, oldest first.
    pub fn last(&self, name: &str, count: usize) -> Vec<KeptLine> {
        let Some(ring) = self.index.get(name).map(|&at| &self.kept[at]) else {
            return Vec::new();
        };
        let skip = ring.lines.len().saturating_sub(count);
        let mut offset: usize = ring.start
            + ring
                .lines
                .iter()
                .take(skip)
                .map(|&(_, len)| len)
                .sum::<usize>();
        ring.lines
            .iter()
            .skip(skip)
            .map(|&(stream, len)| {
                let bytes = ring.bytes[offset..offset + len].to_vec();
                offset += len;
                KeptLine { stream, bytes }
            })
            .collect()
    }

    /// Forgets the lines of a process that is gone.
    pub fn forget(&mut self, name: &str) {
        if let Some(at) = self.index.remove(name) {
            // Its slot is emptied for reuse, not removed, so other
            // indices stay.
            self.kept[at] = Ring::default();
            self.free.push(at);
            self.forgets += 1;
            if self.last.as_ref().is_some_and(|(last, _)| **last == *name) {
                self.last = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: Vec<KeptLine>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| String::from_utf8(l.bytes).unwrap())
            .collect()
    }

    #[test]
    fn a_slot_taken_before_a_forget_is_not_trusted() {
        let mut rings = LogRings::new(10, 1000);
        let old = rings.slot("a");
        rings.push_to(old, "a", Stream::Stdout, b"one");
        rings.forget("a");
        // "b" gets the slot "a" had: a line of "a" with the old slot must
        // not land in it.
        rings.push("b", Stream::Stdout, b"bee");
        rings.push_to(old, "a", Stream::Stdout, b"two");
        assert_eq!(texts(rings.last("b", 10)), ["bee"]);
        assert_eq!(texts(rings.last("a", 10)), ["two"]);
        let new = rings.slot("b");
        rings.push_to(new, "b", Stream::Stderr, b"sting");
        assert_eq!(texts(rings.last("b", 10)), ["bee", "sting"]);
    }

    #[test]
    fn keeps_the_newest_lines_within_both_bounds() {
        let mut rings = LogRings::new(3, 12);
        for line in ["one", "two", "three", "four"] {
            rings.push("a", Stream::Stdout, line.as_bytes());
        }
        // Four lines, at most three: "one" went first.
        assert_eq!(texts(rings.last("a", 10)), ["two", "three", "four"]);
        rings.push("a", Stream::Stderr, b"fivesix");
        // 12 bytes at most: "two" and "three" made room.
        assert_eq!(texts(rings.last("a", 10)), ["four", "fivesix"]);
        assert_eq!(rings.last("a", 1)[0].stream, Stream::Stderr);
        assert_eq!(texts(rings.last("a", 1)), ["fivesix"]);
        assert!(rings.last("b", 5).is_empty());
    }

    #[test]
    fn many_lines_through_a_small_ring_keep_the_newest_in_order() {
        let mut rings = LogRings::new(7, 50);
        for i in 0..10_000 {
            rings.push("a", Stream::Stdout, format!("line {i}").as_bytes());
            // Another process between, so the remembered name changes.
            if i % 13 == 0 {
                rings.push("b", Stream::Stderr, b"b");
            }
        }
        let kept = texts(rings.last("a", 100));
        let want: Vec<String> = (10_000 - kept.len()..10_000)
            .map(|i| format!("line {i}"))
            .collect();
        assert_eq!(kept, want);
        assert!(kept.iter().map(String::len).sum::<usize>() <= 50);
        assert!(rings.kept[0].bytes.len() <= 2 * 50 + 10, "compacted");
    }

    #[test]
    fn a_line_longer_than_the_byte_bound_is_cut_not_lost() {
        let mut rings = LogRings::new(5, 4);
        rings.push("a", Stream::Stdout, b"ab");
        rings.push("a", Stream::Stdout, b"abcdefgh");
        assert_eq!(texts(rings.last("a", 5)), ["abcd"]);
    }

    #[test]
    fn processes_are_kept_apart_and_forgotten() {
        let mut rings = LogRings::new(5, 100);
        rings.push("a", Stream::Stdout, b"x");
        rings.push("b", Stream::Stdout, b"y");
        rings.forget("a");
        assert!(rings.last("a", 5).is_empty());
        assert_eq!(texts(rings.last("b", 5)), ["y"]);
        // A new name takes the forgotten slot, empty.
        rings.push("c", Stream::Stdout, b"z");
        assert_eq!(texts(rings.last("c", 5)), ["z"]);
        assert_eq!(texts(rings.last("b", 5)), ["y"]);
        assert_eq!(rings.kept.len(), 2);
    }
}
