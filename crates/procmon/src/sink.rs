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
//! Each stream has a queue, a bound and a count of its own, so children's
//! output backed up on stdout never costs one of procmon's event lines:
//!
//! - stdout (children's lines): past [`SOFT_LIMIT`] the loop stops reading
//!   children's pipes ([`Sink::congested`]), so chatty children block on
//!   their own full pipes as they would with a slow plain pipe, until the
//!   stdout thread has written the queue back under the limit and wakes the
//!   loop (a child blocked on its pipe waits for that wake-up, so it must
//!   come as soon as there is room, not at the loop's next look); past
//!   [`OUT_LIMIT`] (reachable only through what must still be read, such as
//!   the last lines of exiting children) whole lines are dropped and
//!   counted, and the count is reported on stderr once stdout's backlog is
//!   written (or at exit). A line is taken or dropped whole, except a line
//!   handed over in pieces (the printer splits long ones) that reaches the
//!   limit halfway: it is cut there and ended with a newline, and the rest
//!   is counted as dropped. So stdout's queue never holds more than
//!   `OUT_LIMIT` plus one block.
//! - stderr (procmon's events): only a reader of procmon's stderr that
//!   stops reading can fill it. Past [`ERR_LIMIT`] event lines are dropped,
//!   each one counted, and the count is reported once the queue has been
//!   written out again.
//!
//! A reader that is gone (`EPIPE`) from either stream is remembered
//! ([`Sink::reader_gone`]): the run then ends, as any Unix filter's does.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes queued for stdout past which the event loop stops reading
/// children's output.
pub const SOFT_LIMIT: usize = 1024 * 1024;

/// Bytes queued for stdout past which children's lines are dropped (and
/// counted) instead.
pub const OUT_LIMIT: usize = 16 * 1024 * 1024;

/// Bytes queued for stderr past which procmon's own event lines are dropped
/// (and counted): about 10,000 events a stalled stderr reader has not taken.
pub const ERR_LIMIT: usize = 1024 * 1024;

/// How long a line for stderr waits for the stdout bytes queued before it.
pub const ORDER_PATIENCE: Duration = Duration::from_millis(100);

/// Which of procmon's streams a block goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Out,
    Err,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Out => "stdout",
            Target::Err => "stderr",
        }
    }
}

/// The writer threads and their queues.
#[derive(Debug)]
pub struct Sink {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A stream whose reader has gone away (`EPIPE`), and the error it gave.
#[derive(Debug)]
pub struct ReaderGone {
    /// `"stdout"` or `"stderr"`.
    pub stream: &'static str,
    /// What the write failed with.
    pub error: io::Error,
}

/// What was still unwritten when procmon gave up waiting at exit, and
/// what had been dropped without being reported yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unwritten {
    /// Children's lines still queued for stdout (a line cut by a partial
    /// write counts as one).
    pub out_lines: u64,
    /// Their bytes.
    pub out_bytes: u64,
    /// Children's output dropped earlier, not yet reported.
    pub out_dropped_bytes: u64,
    /// procmon's own event lines dropped or still queued for stderr.
    pub err_lines: u64,
}

/// Something the sink has to tell, as data: the event loop prints it in the
/// run's log format, so `--log-format json` never gets a plain-text line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkReport {
    /// Writing children's output started failing (a full disk, say); it is
    /// dropped until writing works again.
    OutFailing {
        /// The write's error.
        error: String,
    },
    /// Writing children's output works again; this much was dropped while
    /// it did not.
    OutWorksAgain {
        /// Bytes dropped.
        dropped_bytes: u64,
    },
    /// Stdout fell `limit_bytes` behind; this much children's output was
    /// dropped.
    OutBehind {
        /// Bytes dropped.
        dropped_bytes: u64,
        /// The bound it passed.
        limit_bytes: usize,
    },
    /// Stderr fell `limit_bytes` behind; this many of procmon's own event
    /// lines were dropped.
    ErrBehind {
        /// Event lines dropped.
        dropped_lines: u64,
        /// The bound it passed.
        limit_bytes: usize,
    },
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the event loop when a report waits to be printed (set with
    /// [`Sink::set_waker`]).
    waker: Mutex<Option<Arc<procmon_mio::mio::Waker>>>,
    /// Wakes the stdout thread: a block for it, or closing.
    out_ready: Condvar,
    /// Wakes the stderr thread: a block for it, stdout progress it waits
    /// for, or closing.
    err_ready: Condvar,
    /// Wakes `drain`: a write made progress, or both queues are empty.
    progressed: Condvar,
}

/// A block waiting to be written.
#[derive(Debug)]
struct Block {
    /// Shared with the writer thread while it writes them, so that at exit
    /// what is left can be counted without a scan on the way.
    bytes: Arc<Vec<u8>>,
    /// For stderr: how many stdout blocks were queued before it, and when it
    /// was queued (see [`ORDER_PATIENCE`]).
    after_out: u64,
    queued_at: Instant,
}

/// Where stdout's byte stream stands between blocks, so that a line handed
/// over in pieces is taken or dropped as one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum LineState {
    /// The last block ended with a newline (or there was none).
    #[default]
    Between,
    /// The last block ended halfway through a line, and was queued.
    Taking,
    /// The last block ended halfway through a line, and was dropped.
    Dropping,
}

/// One stream's queue and what it has lost.
#[derive(Debug, Default)]
struct Queue {
    blocks: VecDeque<Block>,
    /// Bytes held by the queue's blocks, the one being written included:
    /// the memory the bounds are about.
    held_bytes: usize,
    /// How much of the front block its writer has written so far.
    front_written: usize,
    /// Set once the reader is gone (`EPIPE`).
    closed: Option<io::ErrorKind>,
    /// Bytes and lines dropped since they were last reported.
    dropped_bytes: u64,
    dropped_lines: u64,
}

#[derive(Debug, Default)]
struct State {
    out: Queue,
    err: Queue,
    /// Stdout blocks ever queued, and ever written or given up on.
    out_queued: u64,
    out_done: u64,
    out_line: LineState,
    /// Whether the run has been told that a reader is gone.
    gone_told: bool,
    /// Stdout's writes are failing (a full disk, say); told when it starts
    /// and when it stops.
    out_failing: bool,
    /// The loop was told stdout is congested, and so leaves children's
    /// pipes unread: the stdout thread wakes it once the queue is back
    /// under [`SOFT_LIMIT`].
    loop_held: bool,
    /// Bytes ever written to either stream: what `drain` watches for
    /// progress.
    written_total: u64,
    /// Set when the sink is dropped: the threads end once their queue is empty.
    closing: bool,
    /// What the loop has to print, oldest first.
    reports: Vec<SinkReport>,
    /// Written blocks' buffers, kept for the next blocks: a block is larger
    /// than malloc's mmap threshold, so a fresh one per block would cost an
    /// mmap, a munmap and a page fault per 4 KiB.
    spare: Vec<Vec<u8>>,
}

/// At most this many written blocks' buffers are kept for reuse.
const SPARE_BUFFERS: usize = 4;

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

impl Queue {
    /// Lines (newlines) and bytes queued and not yet written; a line the
    /// writer is halfway through counts as unwritten. A scan, so only for
    /// the end: counting on the way would cost every byte a second pass.
    fn unwritten(&self) -> (u64, u64) {
        let mut skip = self.front_written;
        self.blocks.iter().fold((0, 0), |(lines, bytes), block| {
            let rest = &block.bytes[skip.min(block.bytes.len())..];
            skip = 0;
            (lines + count_lines(rest), bytes + rest.len() as u64)
        })
    }
}

/// What the printer offers stdout: bytes to copy, or a whole block to take.
enum Offered<'a> {
    Copy(&'a [u8]),
    Owned(&'a mut Vec<u8>),
}

impl State {
    fn queue(&mut self, target: Target) -> &mut Queue {
        match target {
            Target::Out => &mut self.out,
            Target::Err => &mut self.err,
        }
    }

    fn push(&mut self, target: Target, bytes: Vec<u8>) {
        let block = Block {
            after_out: self.out_queued,
            queued_at: Instant::now(),
            bytes: Arc::new(bytes),
        };
        if target == Target::Out {
            self.out_queued += 1;
        }
        let queue = self.queue(target);
        queue.held_bytes += block.bytes.len();
        queue.blocks.push_back(block);
    }

    /// A copy of `bytes` in a spare buffer if there is one.
    fn block_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut block = self.spare.pop().unwrap_or_default();
        block.extend_from_slice(bytes);
        block
    }

    /// Queues children's bytes for stdout, or drops them, by the rules in
    /// the module doc. Returns whether anything was queued.
    fn offer_out(&mut self, bytes: &[u8]) -> bool {
        self.offer_out_as(Offered::Copy(bytes))
    }

    /// As [`offer_out`](Self::offer_out), but a taken block is queued as
    /// it is, and `block` is left an empty buffer (a spare one if there is
    /// one) to fill again.
    fn offer_out_block(&mut self, block: &mut Vec<u8>) -> bool {
        self.offer_out_as(Offered::Owned(block))
    }

    fn offer_out_as(&mut self, offered: Offered<'_>) -> bool {
        let bytes: &[u8] = match &offered {
            Offered::Copy(bytes) => bytes,
            Offered::Owned(block) => block,
        };
        let held = self.out.held_bytes;
        let fits = held + bytes.len() <= OUT_LIMIT;
        let ends_line = bytes.last() == Some(&b'\n');
        let (take, cut) = match self.out_line {
            // Below the soft limit anything is taken, so one long block
            // always goes through.
            LineState::Between | LineState::Taking if held <= SOFT_LIMIT || fits => (true, false),
            LineState::Between => (false, false),
            LineState::Taking => (false, true),
            LineState::Dropping => (false, false),
        };
        let len = bytes.len() as u64;
        if take {
            let block = match offered {
                Offered::Copy(bytes) => self.block_of(bytes),
                Offered::Owned(block) => {
                    let next = self.spare.pop().unwrap_or_default();
                    std::mem::replace(block, next)
                }
            };
            self.push(Target::Out, block);
        } else {
            if let Offered::Owned(block) = offered {
                block.clear();
            }
            self.out.dropped_bytes += len;
            if cut {
                // The line's head is queued: end it, so the next line does
                // not run on from it.
                self.push(Target::Out, b"\n".to_vec());
            }
        }
        self.out_line = match (ends_line, take) {
            (true, _) => LineState::Between,
            (false, true) => LineState::Taking,
            (false, false) => LineState::Dropping,
        };
        take || cut
    }

    /// Queues procmon's own event lines for stderr, or counts them dropped.
    fn offer_err(&mut self, bytes: &[u8]) -> bool {
        if self.err.held_bytes + bytes.len() > ERR_LIMIT {
            self.err.dropped_lines += count_lines(bytes).max(1);
            self.err.dropped_bytes += bytes.len() as u64;
            return false;
        }
        let block = self.block_of(bytes);
        self.push(Target::Err, block);
        true
    }

    fn is_empty(&self) -> bool {
        self.out.blocks.is_empty() && self.err.blocks.is_empty()
    }

    /// Gives up everything queued for `target`, whose reader is gone.
    fn abandon(&mut self, target: Target) {
        let queue = self.queue(target);
        let lost = std::mem::take(&mut queue.blocks);
        queue.held_bytes -= lost.iter().map(|b| b.bytes.len()).sum::<usize>();
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

    /// Whether so much waits to be written to stdout that children's output
    /// should wait in their pipes rather than here.
    ///
    /// Once it has said yes, the stdout thread wakes the loop (through
    /// [`set_waker`](Self::set_waker)'s waker) as soon as the queue is back
    /// under the limit.
    pub fn congested(&self) -> bool {
        let mut state = self.shared.lock();
        let congested = state.out.held_bytes > SOFT_LIMIT;
        state.loop_held |= congested;
        congested
    }

    /// Whether anything waits to be written: until it is, a write may still
    /// find its reader gone, so the event loop keeps looking.
    pub fn busy(&self) -> bool {
        !self.shared.lock().is_empty()
    }

    /// Lets a writer thread wake the event loop when it has something to
    /// report (the loop may be asleep with nothing else to do).
    pub fn set_waker(&self, waker: Arc<procmon_mio::mio::Waker>) {
        *self.shared.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker);
    }

    /// What the sink has to tell since the last call, oldest first.
    pub fn take_reports(&self) -> Vec<SinkReport> {
        std::mem::take(&mut self.shared.lock().reports)
    }

    /// The first stream found with its reader gone, once: the run should
    /// end, as for `| head`.
    pub fn reader_gone(&self) -> Option<ReaderGone> {
        let mut state = self.shared.lock();
        if state.gone_told {
            return None;
        }
        let (target, kind) = [Target::Out, Target::Err]
            .into_iter()
            .find_map(|t| state.queue(t).closed.map(|kind| (t, kind)))?;
        state.gone_told = true;
        Some(ReaderGone {
            stream: target.name(),
            error: io::Error::new(kind, format!("{}'s reader is gone", target.name())),
        })
    }

    /// Waits until everything queued is written, as long as the readers
    /// keep taking it: gives up after `stalled` with no byte written to
    /// either stream, or after `at_most` in all, so a reader that stopped
    /// reading cannot keep procmon alive, but a slow one is waited for.
    /// Returns what is left unwritten, and what was dropped and not yet
    /// reported.
    pub fn drain(&self, stalled: Duration, at_most: Duration) -> Unwritten {
        self.drain_until(stalled, at_most, State::is_empty)
    }

    /// [`drain`](Self::drain) for stderr alone: after giving up on stdout,
    /// procmon still waits, by the same rules, for its last words.
    pub fn drain_stderr(&self, stalled: Duration, at_most: Duration) -> Unwritten {
        self.drain_until(stalled, at_most, |state| state.err.blocks.is_empty())
    }

    fn drain_until(
        &self,
        stalled: Duration,
        at_most: Duration,
        done: impl Fn(&State) -> bool,
    ) -> Unwritten {
        let start = Instant::now();
        let mut state = self.shared.lock();
        let mut seen = state.written_total;
        let mut last_progress = start;
        while !done(&state) {
            let now = Instant::now();
            if state.written_total != seen {
                seen = state.written_total;
                last_progress = now;
            }
            let stall_left = stalled.saturating_sub(now - last_progress);
            let cap_left = at_most.saturating_sub(now - start);
            let left = stall_left.min(cap_left);
            if left.is_zero() {
                break;
            }
            state = wait(&self.shared.progressed, state, left);
        }
        let (out_lines, out_bytes) = state.out.unwritten();
        Unwritten {
            out_lines,
            out_bytes,
            out_dropped_bytes: state.out.dropped_bytes,
            err_lines: state.err.unwritten().0 + state.err.dropped_lines,
        }
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

impl crate::output::OutBlocks for SinkWriter {
    /// Queues the block itself on stdout, as `write` would queue a copy,
    /// and hands back a spare buffer: no copy of a block on the loop.
    fn write_block(&mut self, block: &mut Vec<u8>) -> io::Result<()> {
        if self.target == Target::Err {
            let written = self.write_all(block);
            block.clear();
            return written;
        }
        let mut state = self.shared.lock();
        if state.queue(self.target).closed.is_some() || block.is_empty() {
            drop(state);
            let written = self.write_all(block);
            block.clear();
            return written;
        }
        let was_idle = state.queue(self.target).blocks.is_empty();
        let queued = state.offer_out_block(block);
        drop(state);
        if was_idle && queued {
            self.shared.ready(self.target).notify_one();
        }
        Ok(())
    }
}

impl Write for SinkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if let Some(kind) = state.queue(self.target).closed {
            // The printer stops at a failed stdout; procmon's own lines
            // have nowhere else to go, and the run ends anyway.
            return match self.target {
                Target::Out => Err(io::Error::new(kind, "stdout's reader is gone")),
                Target::Err => Ok(bytes.len()),
            };
        }
        if bytes.is_empty() {
            return Ok(0);
        }
        // A thread with blocks queued is busy and looks again before it
        // sleeps: only an empty queue's thread needs waking.
        let was_idle = state.queue(self.target).blocks.is_empty();
        let queued = match self.target {
            Target::Out => state.offer_out(bytes),
            Target::Err => state.offer_err(bytes),
        };
        drop(state);
        if was_idle && queued {
            self.shared.ready(self.target).notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts one of procmon's output threads (stdout, stderr, log files).
pub(crate) fn spawn_writer<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> io::Result<JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // Every signal is the event loop's (its signalfd reads them); one
            // delivered to this thread would be lost.
            procmon_mio::os::block_all_signals_in_this_thread();
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
                match state.queue(target).blocks.front_mut() {
                    // Left queued while written, so `drain` waits for it.
                    Some(block) if target == Target::Out || block.after_out <= out_done => {
                        break Arc::clone(&block.bytes);
                    }
                    // A stderr line waits for the stdout bytes before it...
                    Some(block) => {
                        let waited = now.duration_since(block.queued_at);
                        if waited >= ORDER_PATIENCE {
                            // ...but not for a stdout nobody reads.
                            break Arc::clone(&block.bytes);
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
        let mut done = 0;
        let written = write_patiently(&mut stream, &bytes, |piece| {
            done += piece.len();
            let mut state = shared.lock();
            state.written_total += piece.len() as u64;
            state.queue(target).front_written = done;
            drop(state);
            shared.progressed.notify_all();
        });
        let mut state = shared.lock();
        let len = bytes.len();
        {
            let queue = state.queue(target);
            queue.blocks.pop_front();
            queue.held_bytes -= len;
            queue.front_written = 0;
        }
        if target == Target::Out {
            state.out_done += 1;
        }
        match written {
            Ok(()) => report_drops(&mut state, target, shared),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                // The reader is gone for good: give up what is queued for it
                // and let the event loop know.
                state.queue(target).closed = Some(e.kind());
                state.abandon(target);
                if target == Target::Out {
                    state.out_done = state.out_queued;
                }
            }
            // Nowhere to tell a failure to write our own lines.
            Err(_) if target == Target::Err => {}
            Err(e) => {
                // A full disk, say: the children keep running, their output
                // is counted as lost, and the first failure is told.
                state.out.dropped_bytes += (len - done) as u64;
                if !std::mem::replace(&mut state.out_failing, true) {
                    report(
                        &mut state,
                        shared,
                        SinkReport::OutFailing {
                            error: e.to_string(),
                        },
                    );
                }
            }
        }
        // Only buffers of ordinary blocks: one huge line's is let go.
        // The queue's share went with the block: the buffer is ours again.
        if let Ok(mut spare) = Arc::try_unwrap(bytes) {
            if state.spare.len() < SPARE_BUFFERS && spare.capacity() <= 2 * crate::output::OUT_BLOCK
            {
                spare.clear();
                state.spare.push(spare);
            }
        }
        // A loop holding children's pipes back for room is told as soon as
        // there is room: until then the children wait on full pipes.
        if state.loop_held && state.out.held_bytes <= SOFT_LIMIT {
            state.loop_held = false;
            wake_loop(shared);
        }
        // The stderr thread may be waiting for this stdout block, or have a
        // line of ours to tell; with nothing queued for it, it sleeps on.
        let err_queued = !state.err.blocks.is_empty();
        drop(state);
        if target == Target::Out && err_queued {
            shared.err_ready.notify_one();
        }
        shared.progressed.notify_all();
    }
}

/// Tells what a stream dropped, once its backlog is written: that is when
/// writing works again.
fn report_drops(state: &mut State, target: Target, shared: &Shared) {
    let queue = state.queue(target);
    if !queue.blocks.is_empty() {
        return;
    }
    let told = match target {
        Target::Out if queue.dropped_bytes > 0 => {
            let dropped_bytes = std::mem::take(&mut queue.dropped_bytes);
            if std::mem::take(&mut state.out_failing) {
                SinkReport::OutWorksAgain { dropped_bytes }
            } else {
                SinkReport::OutBehind {
                    dropped_bytes,
                    limit_bytes: OUT_LIMIT,
                }
            }
        }
        Target::Err if queue.dropped_lines > 0 => {
            let dropped_lines = std::mem::take(&mut queue.dropped_lines);
            queue.dropped_bytes = 0;
            SinkReport::ErrBehind {
                dropped_lines,
                limit_bytes: ERR_LIMIT,
            }
        }
        _ => return,
    };
    report(state, shared, told);
}

/// Keeps a report for the loop and wakes it.
fn report(state: &mut State, shared: &Shared, told: SinkReport) {
    state.reports.push(told);
    wake_loop(shared);
}

/// Makes the event loop's current or next turn return.
fn wake_loop(shared: &Shared) {
    let waker = shared.waker.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(waker) = waker.as_ref() {
        let _ = waker.wake();
    }
}

/// Writes the whole block, waiting out `EAGAIN` from a stream that someone
/// left non-blocking (a parent can hand one down), instead of failing.
/// `progress` hears of each piece written.
fn write_patiently(
    to: &mut impl Write,
    mut block: &[u8],
    mut progress: impl FnMut(&[u8]),
) -> io::Result<()> {
    while !block.is_empty() {
        match to.write(block) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                progress(&block[..n]);
                block = &block[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    to.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a drain left nothing unwritten.
    fn written(left: Unwritten) -> bool {
        left.out_bytes == 0 && left.err_lines == 0
    }

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

    /// A stream whose reader is gone: every write fails with `EPIPE`.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
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
        assert!(sink.shared.lock().out.dropped_bytes > 0);
        // The event gives up waiting for stdout and is written.
        let deadline = Instant::now() + Duration::from_secs(20);
        while err_gate.written.lock().unwrap().as_slice() != b"event\n" {
            assert!(Instant::now() < deadline, "stderr held up by stdout");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !written(sink.drain(Duration::from_millis(50), Duration::from_millis(50))),
            "stdout cannot be written yet"
        );
        out_gate.open();
        assert!(written(
            sink.drain(Duration::from_secs(20), Duration::from_secs(20))
        ));
        assert!(!sink.congested());
        let written = out_gate.written.lock().unwrap().clone();
        assert!(written.starts_with(b"line 1\nxxx"));
        assert!(
            matches!(
                sink.take_reports()[..],
                [SinkReport::OutBehind { dropped_bytes, .. }] if dropped_bytes > 0
            ),
            "one report of what stdout dropped"
        );
    }

    #[test]
    fn a_loop_held_back_by_congestion_is_woken_once_there_is_room() {
        use procmon_mio::mio::{Events, Poll, Token, Waker};
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(7)).unwrap());
        let out_gate = Gate::default();
        let sink = Sink::start(out_gate.clone(), io::sink()).unwrap();
        sink.set_waker(waker);
        let block = vec![b'x'; 64 * 1024];
        for _ in 0..(SOFT_LIMIT / block.len() + 2) {
            sink.stdout().write_all(&block).unwrap();
        }
        assert!(sink.congested(), "the loop is told to hold children back");
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        assert!(events.is_empty(), "no room yet, no wake-up");
        out_gate.open();
        // Woken by the stdout thread, not left to a timeout of its own.
        poll.poll(&mut events, Some(Duration::from_secs(60)))
            .unwrap();
        assert!(!events.is_empty(), "not woken when the queue made room");
        assert!(!sink.congested());
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
        assert!(written(
            sink.drain(Duration::from_secs(20), Duration::from_secs(20))
        ));
        let text = String::from_utf8(log.written.lock().unwrap().clone()).unwrap();
        for round in 0..200 {
            let line = text.find(&format!("line {round}\n")).unwrap();
            let event = text.find(&format!("event {round}\n")).unwrap();
            assert!(line < event, "round {round}:\n{text}");
        }
    }

    #[test]
    fn a_block_handed_over_is_queued_whole_and_a_spare_comes_back() {
        use crate::output::OutBlocks;
        let log = Gate::default();
        let sink = Sink::start(log.clone(), io::sink()).unwrap();
        let mut out = sink.stdout();
        let mut block = b"one\ntwo\n".to_vec();
        let address = block.as_ptr();
        out.write_block(&mut block).unwrap();
        assert!(block.is_empty(), "the buffer comes back empty");
        // The block itself was queued, not a copy of it.
        let queued = sink
            .shared
            .lock()
            .out
            .blocks
            .front()
            .map(|b| b.bytes.as_ptr());
        assert_eq!(queued, Some(address));
        // Past the hard limit a handed-over block is dropped and counted,
        // as written bytes would be, and its buffer still comes back.
        let mut big = vec![b'x'; 64 * 1024];
        big.push(b'\n');
        for _ in 0..300 {
            let mut copy = big.clone();
            out.write_block(&mut copy).unwrap();
            assert!(copy.is_empty());
        }
        assert!(sink.shared.lock().out.dropped_bytes > 0);
        log.open();
        sink.drain(Duration::from_secs(20), Duration::from_secs(20));
        assert!(log.written.lock().unwrap().starts_with(b"one\ntwo\n"));
    }

    #[test]
    fn a_line_longer_than_the_hard_limit_still_goes_through() {
        let log = Gate::default();
        log.open();
        let sink = Sink::start(log.clone(), io::sink()).unwrap();
        let line = vec![b'y'; OUT_LIMIT + 1];
        sink.stdout().write_all(&line).unwrap();
        assert!(written(
            sink.drain(Duration::from_secs(20), Duration::from_secs(20))
        ));
        assert_eq!(log.written.lock().unwrap().len(), OUT_LIMIT + 1);
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
            assert!(written(
                sink.drain(Duration::from_secs(20), Duration::from_secs(20))
            ));
        }
        let reports = sink.take_reports();
        assert!(
            matches!(
                &reports[..],
                [
                    SinkReport::OutFailing { .. },
                    SinkReport::OutWorksAgain { dropped_bytes: 150 }
                ]
            ),
            "{reports:?}"
        );
    }

    #[test]
    fn a_reader_gone_ends_stdout_only() {
        let err = Gate::default();
        err.open();
        let sink = Sink::start(Gone, err.clone()).unwrap();
        let mut out = sink.stdout();
        out.write_all(b"lost\n").unwrap();
        assert!(written(
            sink.drain(Duration::from_secs(20), Duration::from_secs(20))
        ));
        let e = out.write_all(b"more\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        sink.stderr().write_all(b"still told\n").unwrap();
        assert!(written(
            sink.drain(Duration::from_secs(20), Duration::from_secs(20))
        ));
        assert_eq!(err.written.lock().unwrap().as_slice(), b"still told\n");
    }

    #[test]
    fn a_stalled_stdout_costs_no_event_line() {
        let (out_gate, err_gate) = (Gate::default(), Gate::default());
        err_gate.open();
        let sink = Sink::start(out_gate.clone(), err_gate.clone()).unwrap();
        let (mut out, mut err) = (sink.stdout(), sink.stderr());
        // Small blocks fill stdout's queue to its brim, and past it.
        let line = [b'x'; 99];
        for _ in 0..(OUT_LIMIT / 100 + 1000) {
            out.write_all(&line).unwrap();
            out.write_all(b"\n").unwrap();
        }
        let mut want = String::new();
        for i in 0..20_000 {
            let event = format!("event {i}\n");
            err.write_all(event.as_bytes()).unwrap();
            want += &event;
        }
        let left = sink.drain_stderr(Duration::from_secs(20), Duration::from_secs(60));
        assert_eq!(left.err_lines, 0);
        let told = String::from_utf8(err_gate.written.lock().unwrap().clone()).unwrap();
        assert_eq!(told, want);
        assert!(sink.shared.lock().out.dropped_bytes > 0);
        out_gate.open();
    }

    #[test]
    fn a_stalled_stderr_drops_event_lines_counted_and_told() {
        let err_gate = Gate::default();
        let sink = Sink::start(io::sink(), err_gate.clone()).unwrap();
        let mut err = sink.stderr();
        let event = [b'e'; 99];
        let lines = ERR_LIMIT / 100 + 500;
        for _ in 0..lines {
            err.write_all(&[&event[..], b"\n"].concat()).unwrap();
        }
        err_gate.open();
        assert!(written(
            sink.drain(Duration::from_secs(20), Duration::from_secs(60))
        ));
        let told = String::from_utf8(err_gate.written.lock().unwrap().clone()).unwrap();
        let kept = told.matches(std::str::from_utf8(&event).unwrap()).count();
        let dropped = (lines - kept) as u64;
        assert!(dropped > 0);
        assert_eq!(
            sink.take_reports(),
            [SinkReport::ErrBehind {
                dropped_lines: dropped,
                limit_bytes: ERR_LIMIT
            }]
        );
    }

    #[test]
    fn a_line_in_pieces_past_the_limit_is_cut_and_ended() {
        let gate = Gate::default();
        let sink = Sink::start(gate.clone(), io::sink()).unwrap();
        let mut out = sink.stdout();
        let filler = vec![b'f'; 64 * 1024 - 1];
        for _ in 0..(OUT_LIMIT / (64 * 1024) - 1) {
            out.write_all(&filler).unwrap();
            out.write_all(b"\n").unwrap();
        }
        // The head fits; the rest of the line does not.
        out.write_all(b"[long] head").unwrap();
        for _ in 0..4 {
            out.write_all(&[b't'; 64 * 1024]).unwrap();
        }
        out.write_all(b"ttt\n").unwrap();
        assert!(sink.shared.lock().out.held_bytes <= OUT_LIMIT + 1);
        gate.open();
        assert!(written(
            sink.drain(Duration::from_secs(20), Duration::from_secs(60))
        ));
        out.write_all(b"[next] line\n").unwrap();
        assert!(written(
            sink.drain(Duration::from_secs(20), Duration::from_secs(60))
        ));
        let text = gate.written.lock().unwrap().clone();
        assert!(text.ends_with(b"\n[long] head\n[next] line\n"));
        assert!(
            !text.windows(3).any(|w| w == b"ttt"),
            "the cut line's rest was written"
        );
    }

    #[test]
    fn a_reader_gone_from_stderr_is_told_to_the_loop() {
        let sink = Sink::start(io::sink(), Gone).unwrap();
        assert!(sink.reader_gone().is_none());
        sink.stderr().write_all(b"procmon: an event\n").unwrap();
        sink.drain(Duration::from_secs(20), Duration::from_secs(20));
        let gone = sink.reader_gone().expect("stderr's reader is gone");
        assert_eq!(gone.stream, "stderr");
        assert_eq!(gone.error.kind(), io::ErrorKind::BrokenPipe);
        assert!(sink.reader_gone().is_none(), "told once");
    }

    #[test]
    fn drain_waits_for_a_slow_reader_and_counts_what_a_stalled_one_left() {
        /// Takes at most 100 bytes per write, 5 ms apart.
        struct Slow(Arc<Mutex<Vec<u8>>>);
        impl Write for Slow {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(5));
                let n = bytes.len().min(100);
                self.0.lock().unwrap().extend_from_slice(&bytes[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let slow = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink::start(Slow(slow.clone()), io::sink()).unwrap();
        let line = [b's'; 99];
        for _ in 0..100 {
            sink.stdout().write_all(&line).unwrap();
            sink.stdout().write_all(b"\n").unwrap();
        }
        // A stall patience far below the whole write's time (~0.5 s).
        let left = sink.drain(Duration::from_millis(200), Duration::from_secs(60));
        assert!(written(left), "{left:?}");
        assert_eq!(slow.lock().unwrap().len(), 100 * 100);

        let gate = Gate::default();
        let sink = Sink::start(gate.clone(), io::sink()).unwrap();
        for _ in 0..7 {
            sink.stdout().write_all(b"12345\n").unwrap();
        }
        let left = sink.drain(Duration::from_millis(100), Duration::from_secs(60));
        assert_eq!((left.out_lines, left.out_bytes), (7, 42));
        gate.open();
    }
}
