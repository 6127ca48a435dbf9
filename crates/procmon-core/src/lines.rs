//! Splitting a byte stream into bounded log lines.

use alloc::vec::Vec;

/// Collects one output stream into lines, never holding more than the limit.
///
/// Bytes are split at `\n` (which is not part of the line). A line longer than
/// the limit is handed out in pieces: when a byte other than `\n` arrives while
/// the buffer already holds at least `limit` bytes, the buffer is emitted as a
/// line and starts again with that byte. The limit is passed with each chunk,
/// so the one in force when a byte arrives is the one that counts. Emitting
/// takes one `Vec` per line (new, or a spare one with `push_recycling`) and
/// nothing per byte.
#[derive(Debug, Default, Clone)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// An empty buffer; it allocates on the first partial line only.
    pub const fn new() -> Self {
        LineBuffer {
            pending: Vec::new(),
        }
    }

    /// Feeds `bytes` and calls `emit` with each line they complete, in order.
    pub fn push(&mut self, bytes: &[u8], limit_bytes: usize, emit: impl FnMut(Vec<u8>)) {
        self.push_recycling(bytes, limit_bytes, Vec::new, emit);
    }

    /// Like [`push`](Self::push), but each emitted line's place is taken by
    /// `spare()` (an empty, possibly pre-allocated `Vec`, e.g. a spent line
    /// given back) instead of a new one, to save an allocation per line.
    pub fn push_recycling(
        &mut self,
        mut bytes: &[u8],
        limit_bytes: usize,
        mut spare: impl FnMut() -> Vec<u8>,
        mut emit: impl FnMut(Vec<u8>),
    ) {
        let limit = limit_bytes.max(1);
        let mut emit = |pending: &mut Vec<u8>| {
            let mut next = spare();
            next.clear();
            emit(core::mem::replace(pending, next));
        };
        while !bytes.is_empty() {
            let newline = memchr::memchr(b'\n', bytes);
            let segment = &bytes[..newline.unwrap_or(bytes.len())];
            self.push_segment(segment, limit, &mut emit);
            match newline {
                Some(at) => {
                    emit(&mut self.pending);
                    bytes = &bytes[at + 1..];
                }
                None => break,
            }
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

    /// Feeds bytes that hold no newline.
    fn push_segment(
        &mut self,
        mut segment: &[u8],
        limit: usize,
        emit: &mut impl FnMut(&mut Vec<u8>),
    ) {
        while !segment.is_empty() {
            if self.pending.len() >= limit {
                emit(&mut self.pending);
            }
            let room = limit - self.pending.len();
            let take = room.min(segment.len());
            self.pending.extend_from_slice(&segment[..take]);
            segment = &segment[take..];
        }
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
            buf.push(chunk, limit, |line| lines.push(line));
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
        buf.push(b"abcdef", 10, |l| lines.push(l));
        buf.push(b"gh\n", 4, |l| lines.push(l));
        assert_eq!(lines, vec![b"abcdef".to_vec(), b"gh".to_vec()]);
    }

    #[test]
    fn recycling_gives_the_same_lines_in_the_spare_buffers() {
        let mut buf = LineBuffer::new();
        let mut lines = Vec::new();
        let spare = || {
            let mut v = Vec::with_capacity(64);
            v.extend_from_slice(b"stale");
            v
        };
        buf.push_recycling(b"ab\ncdefg\nh", 4, spare, |l| lines.push(l));
        assert_eq!(lines, split(&[b"ab\ncdefg\nh"], 4).0);
        assert!(lines[1..].iter().all(|l| l.capacity() >= 64));
        assert_eq!(buf.take_partial(), Some(b"h".to_vec()));
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
