//! procmon's own stdout and stderr, each written on a thread of its own.
//!
//! The event loop must never wait for a reader: a terminal paused with
//! Ctrl-S, a stalled log shipper or a full pipe would otherwise freeze it,
//! and with it TERM, the kill timers, reaping and restarts. So the printer
//! writes into [`SinkWriter`]s, which only queue bytes, and two threads do
//! the blocking writes, one per stream, so that a stalled stdout does not
//! hold up procmon's own events on stderr either. A line for stderr waits
//! until the stdout bytes queued before it are written, for at most
//! [`ORDER_PATIENCE`], so where both streams meet (a terminal, one log file)
//! a child's last lines still come before the exit they led to.
//!
//! The queues are bounded twice: past [`SOFT_LIMIT`] the loop stops reading
//! children's pipes ([`Sink::congested`]), so chatty children block on
//! their own full pipes as they would with a slow plain pipe; past
//! [`HARD_LIMIT`] (reachable only through what must still be read, such as
//! the last lines of exiting children) bytes are dropped and counted, and
//! the count is reported once writing works again.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Queued bytes past which the event loop stops reading children's output.
pub const SOFT_LIMIT: usize = 1024 * 1024;

/// Queued bytes past which more are dropped (and counted) instead.
pub const HARD_LIMIT: usize = 16 * 1024 * 1024;

/// How long a line for stderr waits for the stdout bytes queued before it.
pub const ORDER_PATIENCE: Duration = Duration::from_millis(100);

/// Which of procmon's streams a block goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Out,
    Err,
}

/// The writer threads and their queues.
#[derive(Debug)]
pub struct Sink {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the stdout thread: a block for it, or closing.
    out_ready: Condvar,
    /// Wakes the stderr thread: a block for it, stdout progress it waits
    /// for, or closing.
    err_ready: Condvar,
    /// Wakes `drain`: both queues empty.
    drained: Condvar,
}

/// A block waiting to be written.
#[derive(Debug)]
struct Block {
    bytes: Vec<u8>,
    /// For stderr: how many stdout blocks were queued before it, and when it
    /// was queued (see [`ORDER_PATIENCE`]).
    after_out: u64,
    queued_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    out: VecDeque<Block>,
    err: VecDeque<Block>,
    /// Bytes in both queues, the blocks being written included.
    queued_bytes: usize,
    /// Stdout blocks ever queued, and ever written or given up on.
    out_queued: u64,
    out_done: u64,
    /// Set once stdout's reader is gone (`EPIPE`): the run should end.
    out_closed: Option<io::ErrorKind>,
    /// Children's output dropped since it was last reported: bytes that
    /// found the queue past [`HARD_LIMIT`], or that stdout refused.
    dropped: u64,
    /// Stdout's writes are failing (a full disk, say); told when it starts
    /// and when it stops.
    out_failing: bool,
    /// Set when the sink is dropped: the threads end once their queue is empty.
    closing: bool,
    /// Written blocks' buffers, kept for the next blocks: a block is larger
    /// than malloc's mmap threshold, so a fresh one per block would cost an
    /// mmap, a munmap and a page fault per 4 KiB.
    spare: Vec<Vec<u8>>,
}

/// At most this many written blocks' buffers are kept for reuse.
const SPARE_BUFFERS: usize = 4;

impl State {
    fn queue(&mut self, target: Target) -> &mut VecDeque<Block> {
        match target {
            Target::Out => &mut self.out,
            Target::Err => &mut self.err,
        }
    }

    fn push(&mut self, target: Target, bytes: Vec<u8>) {
        self.queued_bytes += bytes.len();
        let block = Block {
            bytes,
            after_out: self.out_queued,
            queued_at: Instant::now(),
        };
        if target == Target::Out {
            self.out_queued += 1;
        }
        self.queue(target).push_back(block);
    }

    fn is_empty(&self) -> bool {
        self.out.is_empty() && self.err.is_empty()
    }
}

impl Sink {
    /// Starts the writer threads over procmon's real streams.
    pub fn start<O, E>(out: O, err: E) -> io::Result<Sink>
    where
        O: Write + Send + 'static,
        E: Write + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let out_shared = shared.clone();
        let err_shared = shared.clone();
        let threads = vec![
            spawn_writer("procmon-stdout", move || {
                write_until_closed(&out_shared, Target::Out, out)
            })?,
            spawn_writer("procmon-stderr", move || {
                write_until_closed(&err_shared, Target::Err, err)
            })?,
        ];
        Ok(Sink { shared, threads })
    }

    /// A writer that queues bytes for procmon's stdout.
    pub fn stdout(&self) -> SinkWriter {
        SinkWriter {
            shared: self.shared.clone(),
            target: Target::Out,
        }
    }

    /// A writer that queues bytes for procmon's stderr.
    pub fn stderr(&self) -> SinkWriter {
        SinkWriter {
            shared: self.shared.clone(),
            target: Target::Err,
        }
    }

    /// Whether so much waits to be written that children's output should
    /// wait in their pipes rather than here.
    pub fn congested(&self) -> bool {
        self.shared.lock().queued_bytes > SOFT_LIMIT
    }

    /// Waits until everything queued is written, or `patience` has passed
    /// (a reader that never reads must not keep procmon from exiting).
    /// Returns whether everything was written.
    pub fn drain(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        let mut state = self.shared.lock();
        while !state.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = wait(&self.shared.drained, state, left);
        }
        true
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let empty = {
            let mut state = self.shared.lock();
            state.closing = true;
            state.is_empty()
        };
        self.shared.out_ready.notify_all();
        self.shared.err_ready.notify_all();
        // Joined only if nothing is left to write: a stalled reader must not
        // hold up procmon's exit.
        if empty {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The writer threads do not panic while holding the lock; if one
        // ever did, the queues would still be consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ready(&self, target: Target) -> &Condvar {
        match target {
            Target::Out => &self.out_ready,
            Target::Err => &self.err_ready,
        }
    }
}

fn wait<'a>(
    on: &Condvar,
    state: MutexGuard<'a, State>,
    at_most: Duration,
) -> MutexGuard<'a, State> {
    on.wait_timeout(state, at_most)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .0
}

/// Queues bytes for one of procmon's streams; never blocks.
#[derive(Debug)]
pub struct SinkWriter {
    shared: Arc<Shared>,
    target: Target,
}

impl Write for SinkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if self.target == Target::Out {
            if let Some(kind) = state.out_closed {
                return Err(io::Error::new(kind, "stdout's reader is gone"));
            }
        }
        if bytes.is_empty() {
            return Ok(0);
        }
        // Below the soft limit anything is taken, so one long line (up to the
        // line limit, escaped) always goes through.
        if state.queued_bytes > SOFT_LIMIT && state.queued_bytes + bytes.len() > HARD_LIMIT {
            if self.target == Target::Out {
                state.dropped += bytes.len() as u64;
            }
            return Ok(bytes.len());
        }
        // A thread with blocks queued is busy and looks again before it
        // sleeps: only an empty queue's thread needs waking.
        let was_idle = state.queue(self.target).is_empty();
        let mut block = state.spare.pop().unwrap_or_default();
        block.extend_from_slice(bytes);
        state.push(self.target, block);
        drop(state);
        if was_idle {
            self.shared.ready(self.target).notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn spawn_writer(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // Every signal is the event loop's (its signalfd reads them); one
            // delivered to this thread would be lost.
            block_all_signals();
            body()
        })
}

/// A writer thread: takes its stream's blocks in order and writes each whole.
fn write_until_closed(shared: &Shared, target: Target, mut stream: impl Write) {
    loop {
        let bytes = {
            let mut state = shared.lock();
            loop {
                let now = Instant::now();
                let (out_done, closing) = (state.out_done, state.closing);
                match state.queue(target).front_mut() {
                    // Left queued while written, so `drain` waits for it.
                    Some(block) if target == Target::Out || block.after_out <= out_done => {
                        break std::mem::take(&mut block.bytes);
                    }
                    // A stderr line waits for the stdout bytes before it...
                    Some(block) => {
                        let waited = now.duration_since(block.queued_at);
                        if waited >= ORDER_PATIENCE {
                            // ...but not for a stdout nobody reads.
                            break std::mem::take(&mut block.bytes);
                        }
                        let left = ORDER_PATIENCE - waited;
                        state = wait(shared.ready(target), state, left);
                    }
                    None if closing => return,
                    // Idle: no timeout, so an idle procmon stays asleep.
                    None => {
                        state = shared
                            .ready(target)
                            .wait(state)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                }
            }
        };
        let written = write_patiently(&mut stream, &bytes);
        let mut state = shared.lock();
        state.queue(target).pop_front();
        let len = bytes.len();
        state.queued_bytes -= len;
        // Only buffers of ordinary blocks: one huge line's is let go.
        if state.spare.len() < SPARE_BUFFERS && bytes.capacity() <= 2 * crate::output::OUT_BLOCK {
            let mut spare = bytes;
            spare.clear();
            state.spare.push(spare);
        }
        if target == Target::Out {
            state.out_done += 1;
        }
        match written {
            // Told by stdout's own thread, once its backlog is written, which
            // is where the drops happened.
            Ok(()) if target == Target::Out && state.out.is_empty() && state.dropped > 0 => {
                let dropped = std::mem::take(&mut state.dropped);
                let line = if std::mem::take(&mut state.out_failing) {
                    format!(
                        "procmon: writing children's output works again; {dropped} bytes of it were dropped\n"
                    )
                } else {
                    format!(
                        "procmon: {dropped} bytes of children's output were dropped: stdout fell {} MiB behind\n",
                        HARD_LIMIT >> 20
                    )
                };
                state.push(Target::Err, line.into_bytes());
            }
            Ok(()) => {}
            Err(e) if target == Target::Out && e.kind() == io::ErrorKind::BrokenPipe => {
                // The reader is gone for good: give up what is queued for it
                // and let the event loop know, through its next write.
                state.out_closed = Some(e.kind());
                let lost = std::mem::take(&mut state.out);
                state.queued_bytes -= lost.iter().map(|b| b.bytes.len()).sum::<usize>();
                state.out_done += lost.len() as u64;
            }
            // Nowhere to tell a failure to write our own lines.
            Err(_) if target == Target::Err => {}
            Err(e) => {
                // A full disk, say: the children keep running, their output
                // is counted as lost, and the first failure is told.
                state.dropped += len as u64;
                if !std::mem::replace(&mut state.out_failing, true) {
                    state.push(
                        Target::Err,
                        format!(
                            "procmon: writing children's output failed: {e}; dropping it until that works again\n"
                        )
                        .into_bytes(),
                    );
                }
            }
        }
        // The stderr thread may be waiting for this stdout block, or have a
        // line of ours to tell; with nothing queued for it, it sleeps on.
        let (err_queued, drained) = (!state.err.is_empty(), state.is_empty());
        drop(state);
        if target == Target::Out && err_queued {
            shared.err_ready.notify_one();
        }
        if drained {
            shared.drained.notify_all();
        }
    }
}

/// Writes the whole block, waiting out `EAGAIN` from a stream that someone
/// left non-blocking (a parent can hand one down), instead of failing.
fn write_patiently(to: &mut impl Write, mut block: &[u8]) -> io::Result<()> {
    while !block.is_empty() {
        match to.write(block) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => block = &block[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    to.flush()
}

fn block_all_signals() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask only reads it.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that holds writes back until told to go on.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Gate {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut open = self.open.0.lock().unwrap();
            while !*open {
                open = self.open.1.wait(open).unwrap();
            }
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stdout_blocks_neither_the_loop_nor_stderr() {
        let (out_gate, err_gate) = (Gate::default(), Gate::default());
        err_gate.open();
        let sink = Sink::start(out_gate.clone(), err_gate.clone()).unwrap();
        let (mut out, mut err) = (sink.stdout(), sink.stderr());
        out.write_all(b"line 1\n").unwrap();
        err.write_all(b"event\n").unwrap();
        // Far past the soft limit: queued, never waited for.
        let block = vec![b'x'; 64 * 1024];
        for _ in 0..32 {
            out.write_all(&block).unwrap();
        }
        assert!(sink.congested());
        // Past the hard limit: dropped and counted.
        for _ in 0..300 {
            out.write_all(&block).unwrap();
        }
        assert!(sink.shared.lock().dropped > 0);
        // The event gives up waiting for stdout and is written.
        let deadline = Instant::now() + Duration::from_secs(20);
        while err_gate.written.lock().unwrap().as_slice() != b"event\n" {
            assert!(Instant::now() < deadline, "stderr held up by stdout");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !sink.drain(Duration::from_millis(50)),
            "stdout cannot be written yet"
        );
        out_gate.open();
        assert!(sink.drain(Duration::from_secs(20)));
        assert!(!sink.congested());
        let written = out_gate.written.lock().unwrap().clone();
        assert!(written.starts_with(b"line 1\nxxx"));
        let told = String::from_utf8(err_gate.written.lock().unwrap().clone()).unwrap();
        assert!(
            told.contains("bytes of children's output were dropped"),
            "{told}"
        );
    }

    #[test]
    fn where_both_streams_meet_lines_come_before_the_event_after_them() {
        let log = Gate::default();
        log.open();
        let sink = Sink::start(log.clone(), log.clone()).unwrap();
        let (mut out, mut err) = (sink.stdout(), sink.stderr());
        for round in 0..200 {
            out.write_all(format!("line {round}\n").as_bytes()).unwrap();
            err.write_all(format!("event {round}\n").as_bytes())
                .unwrap();
        }
        assert!(sink.drain(Duration::from_secs(20)));
        let text = String::from_utf8(log.written.lock().unwrap().clone()).unwrap();
        for round in 0..200 {
            let line = text.find(&format!("line {round}\n")).unwrap();
            let event = text.find(&format!("event {round}\n")).unwrap();
            assert!(line < event, "round {round}:\n{text}");
        }
    }

    #[test]
    fn a_line_longer_than_the_hard_limit_still_goes_through() {
        let log = Gate::default();
        log.open();
        let sink = Sink::start(log.clone(), io::sink()).unwrap();
        let line = vec![b'y'; HARD_LIMIT + 1];
        sink.stdout().write_all(&line).unwrap();
        assert!(sink.drain(Duration::from_secs(20)));
        assert_eq!(log.written.lock().unwrap().len(), HARD_LIMIT + 1);
    }

    #[test]
    fn a_failing_stdout_is_told_once_and_its_recovery_once() {
        /// Fails the first `failures` writes with ENOSPC, then works.
        struct Full {
            failures: usize,
        }
        impl Write for Full {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                if self.failures > 0 {
                    self.failures -= 1;
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = Gate::default();
        err.open();
        let sink = Sink::start(Full { failures: 20 }, err.clone()).unwrap();
        let mut out = sink.stdout();
        for i in 0..40 {
            out.write_all(format!("line {i}\n").as_bytes()).unwrap();
            // One block at a time, so each failure is its own write.
            assert!(sink.drain(Duration::from_secs(20)));
        }
        let told = String::from_utf8(err.written.lock().unwrap().clone()).unwrap();
        assert_eq!(told.matches("failed").count(), 1, "{told}");
        assert_eq!(told.matches("works again;").count(), 1, "{told}");
        assert!(told.contains("150 bytes of it were dropped"), "{told}");
    }

    #[test]
    fn a_reader_gone_ends_stdout_only() {
        struct Gone;
        impl Write for Gone {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = Gate::default();
        err.open();
        let sink = Sink::start(Gone, err.clone()).unwrap();
        let mut out = sink.stdout();
        out.write_all(b"lost\n").unwrap();
        assert!(sink.drain(Duration::from_secs(20)));
        let e = out.write_all(b"more\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        sink.stderr().write_all(b"still told\n").unwrap();
        assert!(sink.drain(Duration::from_secs(20)));
        assert_eq!(err.written.lock().unwrap().as_slice(), b"still told\n");
    }
}
