//! Each process's recent output lines, in memory, for `procmon ctl logs`.
//!
//! A ring keeps at most a number of lines and of bytes per process; the
//! oldest lines go first. The bytes live in one circular buffer per process
//! and the lines are lengths into it, so keeping a line costs a copy into
//! that buffer and no allocation once the buffer has grown to its bound.

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
    rings: HashMap<Box<str>, Ring>,
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
    bytes: VecDeque<u8>,
    lines: VecDeque<(Stream, usize)>,
}

impl LogRings {
    /// Rings that keep at most `max_lines` lines and `max_bytes` bytes per
    /// process. A line longer than `max_bytes` is kept cut to its first
    /// `max_bytes` bytes, so the newest line is always there.
    pub fn new(max_lines: usize, max_bytes: usize) -> LogRings {
        LogRings {
            max_lines,
            max_bytes,
            rings: HashMap::new(),
        }
    }

    /// Keeps `line` of `name`'s `stream`, dropping the oldest lines as the
    /// bounds require.
    pub fn push(&mut self, name: &str, stream: Stream, line: &[u8]) {
        if self.max_lines == 0 || self.max_bytes == 0 {
            return;
        }
        let ring = match self.rings.get_mut(name) {
            Some(ring) => ring,
            None => self.rings.entry(name.into()).or_default(),
        };
        let line = &line[..line.len().min(self.max_bytes)];
        while ring.lines.len() >= self.max_lines
            || (!ring.lines.is_empty() && ring.bytes.len() + line.len() > self.max_bytes)
        {
            let (_, len) = ring.lines.pop_front().expect("checked non-empty");
            ring.bytes.drain(..len);
        }
        ring.bytes.extend(line);
        ring.lines.push_back((stream, line.len()));
    }

    /// The last `count` lines of `name`, oldest first.
    pub fn last(&self, name: &str, count: usize) -> Vec<KeptLine> {
        let Some(ring) = self.rings.get(name) else {
            return Vec::new();
        };
        let skip = ring.lines.len().saturating_sub(count);
        let mut offset: usize = ring.lines.iter().take(skip).map(|&(_, len)| len).sum();
        ring.lines
            .iter()
            .skip(skip)
            .map(|&(stream, len)| {
                let bytes = ring.bytes.range(offset..offset + len).copied().collect();
                offset += len;
                KeptLine { stream, bytes }
            })
            .collect()
    }

    /// Forgets the lines of a process that is gone.
    pub fn forget(&mut self, name: &str) {
        self.rings.remove(name);
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
    }
}
