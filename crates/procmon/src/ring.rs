//! Each process's recent output lines, in memory, for `procmon ctl logs`.
//!
//! A ring keeps at most a number of lines and of bytes per process; the
//! oldest lines go first. The bytes live in one circular buffer per
//! process, never larger than the bytes bound, and the lines are lengths
//! into it, so keeping a line costs one copy into that buffer (two where
//! it wraps) and no allocation or move once the buffer has grown to fit
//! what is kept. The lines of one read find their ring once
//! ([`LogRings::slot`]); a line by name looks it up.

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
    /// The kept lines' bytes, circular: they begin at `head` and may wrap
    /// around the end. It grows (doubling, up to the bytes bound) only
    /// while the kept lines do not fit, so a flood of short lines writes
    /// each byte once and moves none.
    bytes: Vec<u8>,
    head: usize,
    /// How many bytes the kept lines take.
    kept: usize,
    lines: VecDeque<(Stream, usize)>,
}

impl Ring {
    /// Keeps `line` (at most `max_bytes` long), dropping the oldest lines
    /// as the bounds require.
    #[inline]
    fn push(&mut self, max_lines: usize, max_bytes: usize, stream: Stream, line: &[u8]) {
        while self.lines.len() >= max_lines
            || (!self.lines.is_empty() && self.kept + line.len() > max_bytes)
        {
            let (_, len) = self.lines.pop_front().expect("checked non-empty");
            self.head += len;
            if self.head >= self.bytes.len() {
                self.head -= self.bytes.len();
            }
            self.kept -= len;
        }
        if self.kept + line.len() > self.bytes.len() {
            self.grow(
                (self.kept + line.len())
                    .max(2 * self.bytes.len())
                    .min(max_bytes),
            );
        }
        let size = self.bytes.len();
        let mut tail = self.head + self.kept;
        if tail >= size {
            tail -= size;
        }
        let first = line.len().min(size - tail);
        self.bytes[tail..tail + first].copy_from_slice(&line[..first]);
        self.bytes[..line.len() - first].copy_from_slice(&line[first..]);
        self.kept += line.len();
        self.lines.push_back((stream, line.len()));
    }

    /// Makes room for `size` bytes, the kept ones first.
    #[cold]
    fn grow(&mut self, size: usize) {
        let mut bytes = Vec::with_capacity(size);
        let (front, back) = self.pieces(self.head, self.kept);
        bytes.extend_from_slice(front);
        bytes.extend_from_slice(back);
        bytes.resize(size, 0);
        self.bytes = bytes;
        self.head = 0;
    }

    /// The `len` bytes from `from` on, in one or two pieces.
    fn pieces(&self, from: usize, len: usize) -> (&[u8], &[u8]) {
        let size = self.bytes.len();
        if len == 0 {
            return (&[], &[]);
        }
        let first = len.min(size - from);
        (&self.bytes[from..from + first], &self.bytes[..len - first])
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
        let at = self.slot(name).at;
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
        let line = &line[..line.len().min(self.max_bytes)];
        self.kept[at].push(self.max_lines, self.max_bytes, stream, line);
    }

    /// The last `count` lines of `name`, oldest first.
    pub fn last(&self, name: &str, count: usize) -> Vec<KeptLine> {
        let Some(ring) = self.index.get(name).map(|&at| &self.kept[at]) else {
            return Vec::new();
        };
        let skip = ring.lines.len().saturating_sub(count);
        let size = ring.bytes.len().max(1);
        let mut offset = (ring.head
            + ring
                .lines
                .iter()
                .take(skip)
                .map(|&(_, len)| len)
                .sum::<usize>())
            % size;
        ring.lines
            .iter()
            .skip(skip)
            .map(|&(stream, len)| {
                let (front, back) = ring.pieces(offset, len);
                offset = (offset + len) % size;
                KeptLine {
                    stream,
                    bytes: [front, back].concat(),
                }
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

    /// docs/control.md counts a kept line's index entry as 16 bytes (32
    /// while the deque doubles).
    #[test]
    fn a_kept_lines_index_entry_is_16_bytes() {
        let ring = Ring {
            bytes: Vec::new(),
            head: 0,
            kept: 0,
            lines: VecDeque::new(),
        };
        fn entry_bytes<T>(_: &VecDeque<T>) -> usize {
            std::mem::size_of::<T>()
        }
        assert_eq!(entry_bytes(&ring.lines), 16);
    }

    #[test]
    fn lines_that_wrap_around_the_ring_come_back_whole_and_in_order() {
        // Against the plainest model: a list of every line, cut and
        // trimmed to the bounds from the front.
        for (max_lines, max_bytes) in [(5, 64), (1000, 300), (3, 1 << 20), (50, 7)] {
            let mut rings = LogRings::new(max_lines, max_bytes);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut seed = 0x2545_f491_u32;
            for i in 0..5000u32 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let len = (seed % 90) as usize;
                let line: Vec<u8> = (0..len)
                    .map(|k| b'a' + ((i as usize + k) % 26) as u8)
                    .collect();
                rings.push("p", Stream::Stdout, &line);
                let kept = line[..len.min(max_bytes)].to_vec();
                model.push_back(kept);
                while model.len() > max_lines
                    || (model.len() > 1 && model.iter().map(Vec::len).sum::<usize>() > max_bytes)
                {
                    model.pop_front();
                }
                if i % 97 == 0 || i > 4990 {
                    let got: Vec<Vec<u8>> = rings
                        .last("p", usize::MAX)
                        .into_iter()
                        .map(|l| l.bytes)
                        .collect();
                    assert_eq!(
                        got,
                        Vec::from(model.clone()),
                        "line {i}, bounds {max_lines}/{max_bytes}"
                    );
                    let tail: Vec<Vec<u8>> =
                        rings.last("p", 2).into_iter().map(|l| l.bytes).collect();
                    assert_eq!(
                        tail,
                        Vec::from(model.clone()).split_off(model.len().saturating_sub(2))
                    );
                }
            }
            assert!(
                rings.kept[0].bytes.len() <= max_bytes,
                "the buffer stays within the bound"
            );
        }
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
