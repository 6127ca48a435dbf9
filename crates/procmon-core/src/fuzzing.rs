//! Fuzz bodies, compiled only with the `fuzzing` feature so that `fuzz/`
//! stays a thin shim and the bodies always compile and run as unit tests.

use alloc::vec::Vec;

use crate::LineBuffer;

/// Splits arbitrary bytes, cut into arbitrary chunks, with [`LineBuffer`].
///
/// The first byte chooses the line limit, the second how many cut points
/// follow, and those bytes choose where the rest is cut. Panics only on a bug:
/// the chunked split must give the same lines and partial line as splitting
/// the whole at once and as the contract's byte-by-byte rule; no line or
/// partial may exceed the limit; the non-newline bytes must all come out once,
/// in order; and with an unbounded limit, joining the lines with newlines and
/// appending the partial line must restore the input exactly.
pub fn line_splitter(data: &[u8]) {
    let [limit, cuts, rest @ ..] = data else {
        return;
    };
    let limit = usize::from(*limit % 32) + 1;
    let cuts = usize::from(*cuts % 8).min(rest.len());
    let (cut_bytes, input) = rest.split_at(cuts);
    let mut points: Vec<usize> = cut_bytes
        .iter()
        .map(|&b| usize::from(b) % (input.len() + 1))
        .collect();
    points.sort_unstable();
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut from = 0;
    for &point in &points {
        chunks.push(&input[from..point]);
        from = point;
    }
    chunks.push(&input[from..]);

    let whole = split(&[input], limit);
    let chunked = split(&chunks, limit);
    assert_eq!(chunked, whole, "limit {limit}, cut at {points:?}");
    assert_eq!(whole, reference(input, limit), "limit {limit}");

    let (lines, partial) = &chunked;
    for line in lines.iter().chain(partial) {
        assert!(line.len() <= limit, "a line of {} > {limit}", line.len());
        assert!(!line.contains(&b'\n'), "a newline inside a line");
    }
    assert!(partial.as_ref().is_none_or(|p| !p.is_empty()));
    let kept: Vec<u8> = input.iter().copied().filter(|&b| b != b'\n').collect();
    let out: Vec<u8> = lines.iter().chain(partial).flatten().copied().collect();
    assert_eq!(out, kept, "bytes lost, doubled or reordered");

    let (lines, partial) = split(&chunks, usize::MAX);
    let mut restored: Vec<u8> = Vec::with_capacity(input.len());
    for line in &lines {
        restored.extend_from_slice(line);
        restored.push(b'\n');
    }
    restored.extend(partial.into_iter().flatten());
    assert_eq!(restored, input, "unbounded lines do not restore the input");
}

/// Feeds `chunks` one after another; the lines, then the partial line.
fn split(chunks: &[&[u8]], limit: usize) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    let mut buffer = LineBuffer::new();
    let mut lines = Vec::new();
    for chunk in chunks {
        buffer.push(chunk, limit, |line| lines.push(line.to_vec()));
        assert!(buffer.pending_len() <= limit.max(1));
    }
    (lines, buffer.take_partial())
}

/// The contract's line rule, byte by byte, as plainly as it is written.
fn reference(input: &[u8], limit: usize) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    let (mut lines, mut buffer) = (Vec::new(), Vec::new());
    for &byte in input {
        if byte == b'\n' {
            lines.push(core::mem::take(&mut buffer));
        } else {
            if buffer.len() >= limit {
                lines.push(core::mem::take(&mut buffer));
            }
            buffer.push(byte);
        }
    }
    (lines, (!buffer.is_empty()).then_some(buffer))
}

#[cfg(test)]
mod tests {
    use super::line_splitter;

    #[test]
    fn the_fuzz_body_takes_fixed_inputs() {
        let inputs: &[&[u8]] = &[
            b"",
            b"\x00",
            b"\x03\x02\x05\x09hello world\nsecond line\n\nthird",
            b"\x00\x07\x00\x01\x02\x03\x04\x05\x06\n\n\n\n\n\n\n",
            b"\x1f\x00no newline at all, longer than the limit of thirty-two bytes",
            b"\x01\x03\xff\xfe\xfd\xc3\xa9\n\xff\n",
            b"\x04\x01\x04abcd\nabcd",
        ];
        for input in inputs {
            line_splitter(input);
        }
        for len in 0..64u8 {
            let input: alloc::vec::Vec<u8> =
                (0..len).map(|i| i.wrapping_mul(37) % 13 + 5).collect();
            line_splitter(&input);
        }
    }
}
