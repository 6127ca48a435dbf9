//! Splitting a byte stream into bounded log lines.

use alloc::vec::Vec;

/// Collects one output stream into lines, never holding more than the limit.
///
/// Bytes are split at `\n` (which is not part of the line). A line longer than
/// the limit is handed out in pieces: when a byte other than `\n` arrives while
/// the buffer already holds at least `limit` bytes, the buffer is emitted as a
/// line and starts again with that byte. The limit is passed with each chunk,
/// so the one in force when a byte arrives is the one that counts.
///
/// Lines are lent to the caller, not allocated: a line that lies wholly in the
/// chunk is a slice of the chunk, and only a line begun in an earlier chunk is
/// lent from the buffer. So the buffer copies nothing but partial lines, which
/// is what lets a driver log a flood at close to memory speed.
///
/// Memory: the buffer's allocation never exceeds the limit (or the partial
/// line, if a larger limit was in force when it was begun), and once a line
/// longer than 64 KiB has been handed out the allocation is
/// freed, so a runaway line costs its memory only while it is being
/// gathered, not for the rest of the process's life.
#[derive(Debug, Default, Clone)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

/// The allocation a buffer keeps after handing out a line: enough for the
/// partial lines of ordinary output, so they cost no allocation each.
const KEPT_CAPACITY_BYTES: usize = 64 * 1024;

impl LineBuffer {
    /// An empty buffer; it allocates on the first partial line only.
    pub const fn new() -> Self {
        LineBuffer {
            pending: Vec::new(),
        }
    }

    /// Feeds `bytes` and calls `emit` with each line they complete, in order.
    ///
    /// Inlined, so that `emit` is too: a flood of short lines costs one
    /// newline search and one `emit` per line, with no call in between.
    #[inline]
    pub fn push(&mut self, mut bytes: &[u8], limit_bytes: usize, mut emit: impl FnMut(&[u8])) {
        let limit = limit_bytes.max(1);
        if !self.pending.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(at) => {
                    self.push_segment(&bytes[..at], limit, true, &mut emit);
                    bytes = &bytes[at + 1..];
                }
                None => {
                    self.push_segment(bytes, limit, false, &mut emit);
                    return;
                }
            }
        }
        // Nothing is pending from here on: every line that fits goes out as
        // a slice of the chunk; only a longer one, and the unfinished end,
        // take the general way.
        let mut start = 0;
        for at in memchr::memchr_iter(b'\n', bytes) {
            let line = &bytes[start..at];
            if line.len() <= limit {
                emit(line);
            } else {
                self.push_segment(line, limit, true, &mut emit);
            }
            start = at + 1;
        }
        if start < bytes.len() {
            self.push_segment(&bytes[start..], limit, false, &mut emit);
        }
    }

    /// Hands out the partial line, if any; used when the stream's owner exits.
    pub fn take_partial(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            None
        } else {
            Some(core::mem::take(&mut self.pending))
        }
    }

    /// How many bytes wait for their newline.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds bytes that hold no newline; `terminated` if a newline followed
    /// them.
    #[inline(never)]
    fn push_segment(
        &mut self,
        mut segment: &[u8],
        limit: usize,
        terminated: bool,
        emit: &mut impl FnMut(&[u8]),
    ) {
        if !self.pending.is_empty() {
            // Finish the line begun earlier: fill it up to the limit.
            let room = limit.saturating_sub(self.pending.len());
            let (head, rest) = segment.split_at(room.min(segment.len()));
            self.gather(head, limit);
            segment = rest;
            if segment.is_empty() && !terminated {
                return;
            }
            emit(&self.pending);
            self.pending.clear();
            if self.pending.capacity() > KEPT_CAPACITY_BYTES {
                self.pending = Vec::new();
            }
            if segment.is_empty() {
                return;
            }
        }
        // Nothing pending: whole pieces go out straight from the chunk.
        while segment.len() > limit {
            let (piece, rest) = segment.split_at(limit);
            emit(piece);
            segment = rest;
        }
        if terminated {
            emit(segment);
        } else {
            self.gather(segment, limit);
        }
    }

    /// Appends to the partial line, growing the allocation as `Vec` does
    /// (doubling) but never past the limit, which the line cannot outgrow.
    fn gather(&mut self, bytes: &[u8], limit: usize) {
        let needed = self.pending.len() + bytes.len();
        if needed > self.pending.capacity() {
            let grown = (2 * self.pending.capacity()).clamp(needed, limit.max(needed));
            self.pending.reserve_exact(grown - self.pending.len());
        }
        self.pending.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn split(chunks: &[&[u8]], limit: usize) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        let mut buf = LineBuffer::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            buf.push(chunk, limit, |line| lines.push(line.to_vec()));
            assert!(buf.pending_len() <= limit);
        }
        (lines, buf.take_partial())
    }

    #[test]
    fn splits_at_newlines_and_keeps_the_partial_line() {
        let (lines, partial) = split(&[b"hello wor", b"ld!\nsecond\n\nthird"], 100);
        assert_eq!(
            lines,
            vec![b"hello world!".to_vec(), b"second".to_vec(), b"".to_vec()]
        );
        assert_eq!(partial, Some(b"third".to_vec()));
    }

    #[test]
    fn long_lines_come_out_in_limit_sized_pieces() {
        assert_eq!(
            split(&[b"abcdefgh\n"], 4).0,
            vec![b"abcd".to_vec(), b"efgh".to_vec()]
        );
        assert_eq!(split(&[b"abcd\n"], 4).0, vec![b"abcd".to_vec()]);
        let (lines, partial) = split(&[b"abcdefghi"], 4);
        assert_eq!(lines, vec![b"abcd".to_vec(), b"efgh".to_vec()]);
        assert_eq!(partial, Some(b"i".to_vec()));
    }

    #[test]
    fn a_buffer_filled_under_a_larger_limit_is_emitted_whole() {
        let mut buf = LineBuffer::new();
        let mut lines = Vec::new();
        buf.push(b"abcdef", 10, |l| lines.push(l.to_vec()));
        buf.push(b"gh\n", 4, |l| lines.push(l.to_vec()));
        assert_eq!(lines, vec![b"abcdef".to_vec(), b"gh".to_vec()]);
    }

    #[test]
    fn lines_inside_the_chunk_are_lent_from_it() {
        let chunk: &[u8] = b"ab\ncdefg\nhi";
        let range = chunk.as_ptr_range();
        let mut buf = LineBuffer::new();
        let mut lent = 0;
        buf.push(chunk, 4, |line| {
            assert!(range.contains(&line.as_ptr()), "copied: {line:?}");
            lent += 1;
        });
        assert_eq!(lent, 3);
        assert_eq!(buf.take_partial(), Some(b"hi".to_vec()));
    }

    #[test]
    fn a_long_line_costs_memory_only_while_it_is_gathered() {
        let limit = 1 << 20;
        let mut buf = LineBuffer::new();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..16 {
            buf.push(&chunk, limit, |_| panic!("not yet a line"));
            assert!(buf.pending.capacity() <= limit);
        }
        assert_eq!(buf.pending_len(), limit);
        let mut lines = 0;
        buf.push(b"\nshort", limit, |line| {
            assert_eq!(line.len(), limit);
            lines += 1;
        });
        assert_eq!(lines, 1);
        assert!(buf.pending.capacity() <= KEPT_CAPACITY_BYTES);
        // An ordinary partial line keeps its allocation for the next one.
        buf.push(b" line\n", limit, |line| assert_eq!(line, b"short line"));
        assert!(buf.pending.capacity() >= b"short line".len());
    }

    #[test]
    fn chunking_does_not_change_the_lines() {
        let data: &[u8] = b"one\ntwo two two\n\nthree three three three\nfour";
        for limit in 1..8 {
            let whole = split(&[data], limit);
            for cut in 0..data.len() {
                let (a, b) = data.split_at(cut);
                assert_eq!(split(&[a, b], limit), whole, "limit {limit} cut {cut}");
            }
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(split(&bytes, limit), whole);
        }
    }
}
