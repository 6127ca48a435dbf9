//! Log files: each process's lines written to a file of its own, rotated
//! at line boundaries, on one thread for all of them (see
//! `docs/logging.md`).
//!
//! The event loop formats lines ([`LogFiles::line`]) into batches, one per
//! run of lines for the same file, and hands them over when it is about to
//! sleep ([`LogFiles::flush`]); a single writer thread takes the queue in
//! order and does the blocking work: opening files (lazily, at the first
//! line, and at most one descriptor per file), writing, rotating, and
//! reopening on request. One thread, not one per file: procmon may run
//! 10,000 processes, and the disk is one resource anyway.
//!
//! The rules, each for the reason given:
//!
//! - A line is written whole or not at all. A file rotates when the next
//!   line would take it past its `max_bytes`, before that line is written,
//!   so no line is ever split across two files; a line longer than
//!   `max_bytes` goes whole into a file of its own. A write that fails
//!   halfway (a full disk) has its partial line cut off again.
//! - A slow disk never delays the loop (restarts, stops, the control
//!   socket). Past [`SOFT_LIMIT`] queued, the loop stops reading children's
//!   pipes ([`LogFiles::congested`], the mechanism procmon's stdout uses),
//!   so chatty children wait on their own pipes; but only while the writer
//!   makes progress: a writer stuck for [`STALL_PATIENCE`] (a hung disk)
//!   no longer holds children back. Past [`HARD_LIMIT`] queued, lines are
//!   dropped and counted instead.
//! - A failing disk never blocks a child either: a write, open or rotation
//!   that fails (`ENOSPC`, `EIO`) drops the lines of that batch for that
//!   file only, counts them, and is reported once per episode
//!   ([`LogReport::Failing`], then [`LogReport::WorksAgain`] with the count
//!   when a line is written again). The file is closed and tried again
//!   with the next lines.
//! - Others may change a file under us: before each batch the writer
//!   looks at it again (one `fstat`), so a deleted file is created anew
//!   rather than written unseen, and one truncated by `copytruncate`
//!   rotates by its real size. Only a regular file is rotated: a FIFO or
//!   `/dev/null` has no size to keep, and renaming it would take it from
//!   its reader.
//! - Nothing leaks: a file's descriptor is closed when it rotates, is
//!   reopened, fails, is found deleted, or its process is removed.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use procmon_core::{EscapeInvalid, Stream};

use crate::config::{LogConfig, LogFile};
use crate::stamp::Stamp;

/// Bytes queued for the files past which the loop stops reading children's
/// output (while the writer makes progress).
pub const SOFT_LIMIT: usize = 1024 * 1024;

/// Bytes queued for the files past which lines are dropped and counted.
pub const HARD_LIMIT: usize = 16 * 1024 * 1024;

/// A writer that has made no progress for this long is taken to be stuck
/// (a hung disk): children are no longer held back for it.
pub const STALL_PATIENCE: Duration = Duration::from_secs(2);

/// The loop hands its lines over once this many have gathered, besides
/// before it sleeps.
const BATCH_BYTES: usize = 512 * 1024;

/// At most this many spent batch buffers wait to be filled again.
const SPARE_BATCHES: usize = 4;

/// Which log file: one per process name, kept while the name has a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(u64);

/// Something the writer has to tell, as data: the loop prints it in the
/// run's log format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogReport {
    /// Lines for a file started being dropped: a write, open or rotation
    /// failed, or the writer fell [`HARD_LIMIT`] behind.
    Failing {
        /// The process.
        name: String,
        /// Its file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// A line was written to the file again after an episode of drops.
    WorksAgain {
        /// The process.
        name: String,
        /// Its file.
        path: PathBuf,
        /// Lines dropped in the episode.
        dropped_lines: u64,
    },
    /// A reload gave the process another file, or none, while this one
    /// was failing: its episode ends here, told with its count, so that a
    /// later report of the new file does not carry the old one's drops.
    Left {
        /// The process.
        name: String,
        /// The file it no longer writes.
        path: PathBuf,
        /// Lines dropped in the episode.
        dropped_lines: u64,
    },
}

/// Lines dropped per process since it got its file, for `ctl status` and
/// the metrics; shared with the writer thread. Each count is kept with its
/// file's id, so that the writer, working through older items, can neither
/// count for nor remove a file the loop has since replaced.
#[derive(Clone, Debug, Default)]
pub struct LogCounts(Arc<Mutex<HashMap<String, (FileId, u64)>>>);

impl LogCounts {
    /// Lines of `name` dropped from its file, or `None` if it has no file.
    pub fn dropped(&self, name: &str) -> Option<u64> {
        self.lock().get(name).map(|&(_, count)| count)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (FileId, u64)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds to the count of `name`'s file `file`, if that is still its file.
    fn add(&self, name: &str, file: FileId, lines: u64) {
        if let Some((id, count)) = self.lock().get_mut(name) {
            if *id == file {
                *count += lines;
            }
        }
    }
}

/// The log files of a run, seen from the event loop.
#[derive(Debug)]
pub struct LogFiles {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Each process with a file: its id and settings as last sent.
    files: HashMap<String, (FileId, LogFile)>,
    next_id: u64,
    /// Lines formatted and not yet handed over, in order.
    pending: Vec<Batch>,
    pending_bytes: usize,
    counts: LogCounts,
    /// The last line's time and stream as a file writes them: the lines of
    /// one read share both.
    head: LineHead,
}

/// Whole lines for one file, each ending with a newline.
#[derive(Debug)]
struct Batch {
    file: FileId,
    bytes: Vec<u8>,
    lines: u64,
}

/// What the writer thread is asked to do, in order.
#[derive(Debug)]
enum Item {
    /// A file for a process, or new settings for it (a new path closes the
    /// old file).
    Configure {
        file: FileId,
        name: String,
        settings: LogFile,
    },
    /// The process is gone: close its file and forget it.
    Close {
        file: FileId,
    },
    Lines(Batch),
    /// Lines the loop dropped for want of room.
    Dropped {
        file: FileId,
        lines: u64,
    },
    /// Close every file; each is opened again at its next line.
    Reopen,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: items, or closing.
    ready: Condvar,
    /// Wakes `drain`: the writer finished what it took.
    progressed: Condvar,
    waker: Mutex<Option<Arc<procmon_mio::mio::Waker>>>,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Item>,
    /// Bytes of lines queued or being written.
    held_bytes: usize,
    /// Items the writer took and has not finished.
    working: bool,
    /// Lines in the batches the writer took and has not finished.
    working_lines: u64,
    /// When the writer last finished what it took, or became busy after
    /// idling: what [`STALL_PATIENCE`] is measured from.
    last_progress: Instant,
    closing: bool,
    reports: Vec<LogReport>,
    /// Batch buffers the writer is done with, for the loop to fill again:
    /// a fresh one would grow by doubling, each step a copy, and touch new
    /// pages, for every batch of a flood.
    spare: Vec<Vec<u8>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The writer does not panic while holding the lock; if it ever
        // did, the queue would still be consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the event loop, if it gave a waker: there is something to
    /// report, or room again after congestion.
    fn wake_loop(&self) {
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waker) = waker.as_ref() {
            let _ = waker.wake();
        }
    }
}

impl LogFiles {
    /// Starts the writer thread; no file is opened until its first line.
    pub fn start() -> io::Result<LogFiles> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                held_bytes: 0,
                working: false,
                working_lines: 0,
                last_progress: Instant::now(),
                closing: false,
                reports: Vec::new(),
                spare: Vec::new(),
            }),
            ready: Condvar::new(),
            progressed: Condvar::new(),
            waker: Mutex::new(None),
        });
        let counts = LogCounts::default();
        let thread = {
            let shared = shared.clone();
            let counts = counts.clone();
            crate::sink::spawn_writer("procmon-logs", move || {
                Writer {
                    files: HashMap::new(),
                    counts,
                }
                .run(&shared)
            })?
        };
        Ok(LogFiles {
            shared,
            thread: Some(thread),
            files: HashMap::new(),
            next_id: 0,
            pending: Vec::new(),
            pending_bytes: 0,
            head: LineHead::new(None, Stream::Stdout),
            counts,
        })
    }

    /// Lets the writer wake the event loop when it has something to report.
    pub fn set_waker(&self, waker: Arc<procmon_mio::mio::Waker>) {
        *self.shared.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker);
    }

    /// Takes the files of `config`: a process new to a file gets one, one
    /// whose settings changed has them changed (a new path closes the old
    /// file), and one that has a file no more (removed, or its keys gone)
    /// has it closed. Lines already formatted go first, to the old file.
    pub fn configure(&mut self, config: &LogConfig) {
        self.flush();
        let mut items = Vec::new();
        let mut keep = HashMap::new();
        for (name, settings) in &config.processes {
            let Some(wanted) = &settings.file else {
                continue;
            };
            let id = match self.files.remove(name) {
                Some((id, old)) if &old == wanted => id,
                Some((id, _)) => {
                    items.push(Item::Configure {
                        file: id,
                        name: name.clone(),
                        settings: wanted.clone(),
                    });
                    id
                }
                None => {
                    let id = FileId(self.next_id);
                    self.next_id += 1;
                    items.push(Item::Configure {
                        file: id,
                        name: name.clone(),
                        settings: wanted.clone(),
                    });
                    id
                }
            };
            keep.insert(name.clone(), (id, wanted.clone()));
        }
        for (id, _) in self.files.values() {
            items.push(Item::Close { file: *id });
        }
        self.files = keep;
        // Known to the counts at once, so status shows 0 before any line;
        // a process that keeps its file keeps its count.
        {
            let mut counts = self.counts.lock();
            counts.retain(|name, (id, _)| self.files.get(name).is_some_and(|(f, _)| f == id));
            for (name, (id, _)) in &self.files {
                counts.entry(name.clone()).or_insert((*id, 0));
            }
        }
        self.send(items);
    }

    /// The file of `name`, if its lines go to one.
    pub fn file_of(&self, name: &str) -> Option<FileId> {
        self.files.get(name).map(|(id, _)| *id)
    }

    /// How many processes have a file.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no process has a file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Formats one line of a child for `file`: `[TIME ]stdout LINE` or
    /// `[TIME ]stderr LINE`, bytes that are not UTF-8 as `\xHH`.
    #[inline]
    pub fn line(&mut self, file: FileId, stamp: Option<&Stamp>, stream: Stream, line: &[u8]) {
        if !matches!(self.pending.last(), Some(batch) if batch.file == file) {
            self.begin_batch(file);
        }
        if !self.head.is_for(stamp, stream) {
            self.head = LineHead::new(stamp, stream);
        }
        let batch = self.pending.last_mut().expect("a batch for the file");
        let before = batch.bytes.len();
        format_line_after(&mut batch.bytes, &self.head, line);
        batch.lines += 1;
        self.pending_bytes += batch.bytes.len() - before;
        if self.pending_bytes >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Starts a batch of lines for `file`, in a spent buffer if the writer
    /// gave one back.
    #[cold]
    fn begin_batch(&mut self, file: FileId) {
        let bytes = self.shared.lock().spare.pop().unwrap_or_default();
        self.pending.push(Batch {
            file,
            bytes,
            lines: 0,
        });
    }

    /// Hands the lines formatted so far to the writer (the loop calls this
    /// before it sleeps); past [`HARD_LIMIT`] queued, drops them instead,
    /// counted.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.pending_bytes = 0;
        let batches = std::mem::take(&mut self.pending);
        let mut state = self.shared.lock();
        let was_idle = state.queue.is_empty() && !state.working;
        if was_idle {
            state.last_progress = Instant::now();
        }
        for batch in batches {
            // Below the soft limit anything is taken, so one large batch
            // always goes through.
            let fits = state.held_bytes + batch.bytes.len() <= HARD_LIMIT;
            if state.held_bytes <= SOFT_LIMIT || fits {
                state.held_bytes += batch.bytes.len();
                state.queue.push_back(Item::Lines(batch));
            } else {
                state.queue.push_back(Item::Dropped {
                    file: batch.file,
                    lines: batch.lines,
                });
            }
        }
        drop(state);
        // A busy writer looks at the queue again before it sleeps (under
        // the lock): only an idle one needs waking, and the loop flushes
        // at every turn.
        if was_idle {
            self.shared.ready.notify_one();
        }
    }

    /// Closes every file after the lines before; each is opened again (or
    /// created) at its next line. For an external logrotate: after it moved
    /// the file (`create`) or copied and truncated it (`copytruncate`).
    /// Gives the number of files.
    pub fn reopen(&mut self) -> usize {
        self.flush();
        self.send(vec![Item::Reopen]);
        self.files.len()
    }

    /// Whether children's output should wait in their pipes: much is
    /// queued and the writer is making progress with it.
    pub fn congested(&self) -> bool {
        // Asked before every read of a pipe: with no file, no lock.
        if self.files.is_empty() {
            return false;
        }
        let state = self.shared.lock();
        state.held_bytes > SOFT_LIMIT && state.last_progress.elapsed() < STALL_PATIENCE
    }

    /// Whether lines are queued or being written.
    pub fn busy(&self) -> bool {
        let state = self.shared.lock();
        !state.queue.is_empty() || state.working
    }

    /// What the writer has to tell since the last call, oldest first.
    pub fn take_reports(&self) -> Vec<LogReport> {
        std::mem::take(&mut self.shared.lock().reports)
    }

    /// Lines dropped per process, shared.
    pub fn counts(&self) -> LogCounts {
        self.counts.clone()
    }

    /// Hands over what is formatted and waits until it is written, giving
    /// up after `stalled` with no progress or `at_most` in all. Gives how
    /// many lines may be left unwritten (queued, or in a batch the writer
    /// is still on): 0 when everything was written.
    pub fn drain(&mut self, stalled: Duration, at_most: Duration) -> u64 {
        self.flush();
        let start = Instant::now();
        let mut state = self.shared.lock();
        loop {
            if state.queue.is_empty() && !state.working {
                return 0;
            }
            let now = Instant::now();
            let left = stalled
                .saturating_sub(now.duration_since(state.last_progress))
                .min(at_most.saturating_sub(now - start));
            if left.is_zero() {
                let queued: u64 = state
                    .queue
                    .iter()
                    .map(|item| match item {
                        Item::Lines(batch) => batch.lines,
                        _ => 0,
                    })
                    .sum();
                return queued + state.working_lines;
            }
            state = self
                .shared
                .progressed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn send(&self, items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        let mut state = self.shared.lock();
        state.queue.extend(items);
        drop(state);
        self.shared.ready.notify_one();
    }
}

impl Drop for LogFiles {
    fn drop(&mut self) {
        let empty = {
            let mut state = self.shared.lock();
            state.closing = true;
            state.queue.is_empty() && !state.working
        };
        self.shared.ready.notify_all();
        // Joined only if nothing is left to write: a hung disk must not
        // hold up procmon's exit.
        if empty {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Appends one line as a file holds it.
#[cfg(test)]
fn format_line(out: &mut Vec<u8>, stamp: Option<&Stamp>, stream: Stream, line: &[u8]) {
    format_line_after(out, &LineHead::new(stamp, stream), line);
}

/// The longest start of a line in a file: a time, a space, a stream's
/// name (`stdout` and `stderr` are both six bytes) and a space.
const HEAD_MAX: usize = crate::stamp::STAMP_LEN + 1 + 6 + 1;

/// The start of a line in a file (`TIME stream `, or `stream `), made once
/// for the lines that share it and copied whole: a fixed-size copy costs
/// no call, where the pieces one by one cost four.
#[derive(Clone, Copy, Debug)]
struct LineHead {
    stamp: Option<Stamp>,
    stream: Stream,
    bytes: [u8; HEAD_MAX],
    len: usize,
}

impl LineHead {
    fn new(stamp: Option<&Stamp>, stream: Stream) -> LineHead {
        let mut bytes = [b' '; HEAD_MAX];
        let mut len = 0;
        if let Some(stamp) = stamp {
            bytes[..stamp.len()].copy_from_slice(stamp);
            len = stamp.len() + 1;
        }
        let name = stream.as_str().as_bytes();
        bytes[len..len + name.len()].copy_from_slice(name);
        len += name.len() + 1;
        LineHead {
            stamp: stamp.copied(),
            stream,
            bytes,
            len,
        }
    }

    fn is_for(&self, stamp: Option<&Stamp>, stream: Stream) -> bool {
        self.stream == stream && self.stamp.as_ref() == stamp
    }
}

/// Appends one line as a file holds it, after `head`.
#[inline]
fn format_line_after(out: &mut Vec<u8>, head: &LineHead, line: &[u8]) {
    let start = out.len();
    out.reserve(HEAD_MAX + line.len() + 1);
    out.extend_from_slice(&head.bytes);
    out.truncate(start + head.len);
    // Most lines are ASCII, and that is the cheaper check.
    if crate::output::is_ascii(line) || std::str::from_utf8(line).is_ok() {
        out.extend_from_slice(line);
    } else {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{}", EscapeInvalid(line));
    }
    out.push(b'\n');
}

/// The writer thread's side: every file it knows, by id.
struct Writer {
    files: HashMap<FileId, FileState>,
    counts: LogCounts,
}

/// One file as the writer keeps it.
struct FileState {
    name: String,
    settings: LogFile,
    /// Open only between its first line and a rotation, a reopen, a
    /// failure or the process's removal.
    open: Option<OpenFile>,
    /// Lines dropped in the current episode of failures, if one is on.
    dropping: Option<u64>,
}

struct OpenFile {
    file: File,
    /// Its size as we know it: from `fstat` at opening and at each batch,
    /// plus what we wrote.
    size: u64,
    /// Whether it is a regular file, the only kind rotated: a FIFO or a
    /// device (`/dev/null`) has no size to keep under `max_bytes`, and
    /// renaming it would take it from its reader, or from the whole system.
    rotates: bool,
}

impl Writer {
    fn run(mut self, shared: &Shared) {
        loop {
            let items = {
                let mut state = shared.lock();
                state.working = false;
                shared.progressed.notify_all();
                loop {
                    if !state.queue.is_empty() {
                        break;
                    }
                    if state.closing {
                        return;
                    }
                    state = shared.ready.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                state.working = true;
                let items = std::mem::take(&mut state.queue);
                state.working_lines = items
                    .iter()
                    .map(|item| match item {
                        Item::Lines(batch) => batch.lines,
                        _ => 0,
                    })
                    .sum();
                items
            };
            let mut reports = Vec::new();
            for item in items {
                let (written, lines) = match &item {
                    Item::Lines(batch) => (batch.bytes.len(), batch.lines),
                    _ => (0, 0),
                };
                let spent = self.handle(item, &mut reports);
                // Progress after each batch, not each turn: a long queue on
                // a slow disk is not a stuck writer.
                if written > 0 {
                    let mut state = shared.lock();
                    if let Some(mut spent) = spent {
                        if state.spare.len() < SPARE_BATCHES && spent.capacity() <= 2 * BATCH_BYTES
                        {
                            spent.clear();
                            state.spare.push(spent);
                        }
                    }
                    let was_congested = state.held_bytes > SOFT_LIMIT;
                    state.held_bytes -= written;
                    state.working_lines -= lines;
                    state.last_progress = Instant::now();
                    // A loop that stopped reading children's pipes looks
                    // again at once, not at its next recheck: children
                    // blocked on full pipes wait for that.
                    if was_congested && state.held_bytes <= SOFT_LIMIT {
                        drop(state);
                        shared.wake_loop();
                    }
                }
            }
            let mut state = shared.lock();
            if !reports.is_empty() {
                state.reports.extend(reports);
                drop(state);
                shared.wake_loop();
            }
        }
    }

    /// Carries out one item; gives back a batch's buffer once written.
    fn handle(&mut self, item: Item, reports: &mut Vec<LogReport>) -> Option<Vec<u8>> {
        match item {
            Item::Configure {
                file,
                name,
                settings,
            } => match self.files.get_mut(&file) {
                Some(state) => {
                    if state.settings.path != settings.path {
                        state.open = None;
                        state.leave(reports);
                    }
                    state.settings = settings;
                }
                None => {
                    self.files.insert(
                        file,
                        FileState {
                            name,
                            settings,
                            open: None,
                            dropping: None,
                        },
                    );
                }
            },
            Item::Close { file } => {
                if let Some(mut state) = self.files.remove(&file) {
                    state.leave(reports);
                }
            }
            Item::Reopen => {
                for state in self.files.values_mut() {
                    state.open = None;
                }
            }
            Item::Lines(batch) => {
                if let Some(state) = self.files.get_mut(&batch.file) {
                    state.write(batch.file, &batch.bytes, &self.counts, reports);
                }
                return Some(batch.bytes);
            }
            Item::Dropped { file, lines } => {
                if let Some(state) = self.files.get_mut(&file) {
                    let why = format!(
                        "the writer fell {} MiB behind (a slow disk?)",
                        HARD_LIMIT >> 20
                    );
                    state.dropped(file, lines, &why, &self.counts, reports);
                }
            }
        }
        None
    }
}

impl FileState {
    /// Writes whole lines, rotating between them as the size requires.
    fn write(
        &mut self,
        id: FileId,
        bytes: &[u8],
        counts: &LogCounts,
        reports: &mut Vec<LogReport>,
    ) {
        self.look_again();
        let mut rest = bytes;
        while !rest.is_empty() {
            let max = self.settings.max_bytes;
            let open = match self.open_now() {
                Ok(open) => open,
                Err(e) => return self.failed(id, rest, "opening", &e, counts, reports),
            };
            let room = if open.rotates {
                max.saturating_sub(open.size)
            } else {
                u64::MAX
            };
            let take = whole_lines_within(rest, room);
            let take = if take > 0 {
                take
            } else if open.size == 0 {
                // Longer than a whole file: alone in a file of its own.
                first_line(rest)
            } else {
                if let Err(e) = self.rotate() {
                    return self.failed(id, rest, "rotating", &e, counts, reports);
                }
                continue;
            };
            match write_counting(&mut open.file, &rest[..take]) {
                Ok(()) => {
                    open.size += take as u64;
                    rest = &rest[take..];
                    self.works(reports);
                }
                Err((written, e)) => {
                    // Cut the partial line off again, so the file holds
                    // whole lines only: what it holds past the last
                    // newline written.
                    let whole = rest[..written]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |at| at + 1);
                    let partial = (written - whole) as u64;
                    if partial > 0 {
                        if let Ok(meta) = open.file.metadata() {
                            let _ = open.file.set_len(meta.len().saturating_sub(partial));
                        }
                    }
                    if whole > 0 {
                        self.works(reports);
                    }
                    return self.failed(id, &rest[whole..], "writing", &e, counts, reports);
                }
            }
        }
    }

    /// Looks at the open file again, as others may have changed it since:
    /// deleted (or its directory removed), it is closed, as lines written
    /// to it would be lost unseen, with nothing counted or told; opened
    /// again at once, it is created afresh, or its failure to open is
    /// told. A regular file's size is taken again, so that one truncated
    /// by logrotate's `copytruncate` (or appended to by another writer)
    /// rotates by its real size. Asked once a batch: an `fstat`, where
    /// the batch costs a `write`.
    fn look_again(&mut self) {
        let Some(open) = &mut self.open else {
            return;
        };
        match open.file.metadata() {
            Ok(meta) if meta.nlink() == 0 => self.open = None,
            // Not a FIFO's, always 0: what went through it is its size.
            Ok(meta) if meta.is_file() => open.size = meta.len(),
            _ => {}
        }
    }

    /// The open file, opened (and created with its mode) if it is not.
    fn open_now(&mut self) -> io::Result<&mut OpenFile> {
        if self.open.is_none() {
            let path = &self.settings.path;
            // O_NONBLOCK: a FIFO named as a log file must not block the
            // writer at open; O_NOCTTY: a terminal must not become ours.
            let flags = libc::O_NOCTTY | libc::O_NONBLOCK;
            let mode = self.settings.mode;
            // Exclusively first, so that a file we create is known to be
            // ours and gets the mode exactly, whatever procmon's umask.
            let create = |exclusive: bool| -> io::Result<File> {
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .create_new(exclusive)
                    .mode(mode)
                    .custom_flags(flags)
                    .open(path)?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))?;
                Ok(file)
            };
            let file = match create(true) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match OpenOptions::new()
                        .append(true)
                        .custom_flags(flags)
                        .open(path)
                    {
                        // A symbolic link whose target is gone (`O_EXCL`
                        // refuses any link): its target is created, as
                        // the file is when it is gone; refused, it would
                        // fail with "no such file" on a name that is there.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => create(false)?,
                        opened => opened?,
                    }
                }
                created => created?,
            };
            let meta = file.metadata()?;
            self.open = Some(OpenFile {
                file,
                size: meta.len(),
                rotates: meta.is_file(),
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// `PATH` becomes `PATH.1`, `PATH.1` becomes `PATH.2`, ... up to
    /// `PATH.N`, whose old content goes; with no backups `PATH` is removed.
    /// Backups past `N` (left by a larger setting before) are removed too.
    /// The next line creates `PATH` afresh.
    /// A failure names the file it was about, which may be a backup rather
    /// than `PATH` (a directory where `PATH.3` should be): the report
    /// names only `PATH`.
    fn rotate(&mut self) -> io::Result<()> {
        self.open = None;
        let path = &self.settings.path;
        let backups = self.settings.backups;
        let remove = |file: &Path| match std::fs::remove_file(file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
                e.kind(),
                format!("removing {}: {e}", shown(file)),
            )),
            _ => Ok(()),
        };
        let rename = |from: &Path, to: &Path| match std::fs::rename(from, to) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
                e.kind(),
                format!("renaming {} to {}: {e}", shown(from), shown(to)),
            )),
            _ => Ok(()),
        };
        if backups == 0 {
            remove(path)?;
        } else {
            // Only the backups there are move: with 1,000 allowed and 3
            // kept, a rotation costs a few calls, not a thousand.
            let mut there = 0;
            while there < backups && backup(path, there + 1).exists() {
                there += 1;
            }
            for n in (1..=there).rev() {
                if n == backups {
                    remove(&backup(path, n))?;
                } else {
                    rename(&backup(path, n), &backup(path, n + 1))?;
                }
            }
            rename(path, &backup(path, 1))?;
        }
        let mut n = backups + 1;
        while std::fs::remove_file(backup(path, n)).is_ok() {
            n += 1;
        }
        Ok(())
    }

    /// The file is no longer the process's, by a reload: an episode of
    /// drops on it ends untold otherwise.
    fn leave(&mut self, reports: &mut Vec<LogReport>) {
        if let Some(dropped_lines) = self.dropping.take() {
            reports.push(LogReport::Left {
                name: self.name.clone(),
                path: self.settings.path.clone(),
                dropped_lines,
            });
        }
    }

    /// A write that went through: an episode of drops ends.
    fn works(&mut self, reports: &mut Vec<LogReport>) {
        if let Some(dropped_lines) = self.dropping.take() {
            reports.push(LogReport::WorksAgain {
                name: self.name.clone(),
                path: self.settings.path.clone(),
                dropped_lines,
            });
        }
    }

    /// `rest` could not be written: its lines are dropped, and the file is
    /// closed, to be tried again with the next lines.
    fn failed(
        &mut self,
        id: FileId,
        rest: &[u8],
        doing: &str,
        error: &io::Error,
        counts: &LogCounts,
        reports: &mut Vec<LogReport>,
    ) {
        self.open = None;
        let lines = rest.iter().filter(|&&b| b == b'\n').count() as u64;
        self.dropped(id, lines, &format!("{doing}: {error}"), counts, reports);
    }

    fn dropped(
        &mut self,
        id: FileId,
        lines: u64,
        why: &str,
        counts: &LogCounts,
        reports: &mut Vec<LogReport>,
    ) {
        if lines == 0 {
            return;
        }
        if self.dropping.is_none() {
            reports.push(LogReport::Failing {
                name: self.name.clone(),
                path: self.settings.path.clone(),
                error: why.to_string(),
            });
        }
        *self.dropping.get_or_insert(0) += lines;
        counts.add(&self.name, id, lines);
    }
}

/// A path in an error, its bytes that are not UTF-8 as `\xHH`, as the
/// report's own path is printed (not as U+FFFD, which would name no file).
fn shown(path: &Path) -> EscapeInvalid<'_> {
    EscapeInvalid(path.as_os_str().as_encoded_bytes())
}

/// `PATH.n`.
fn backup(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The bytes of the whole lines at the start of `bytes` that fit in
/// `room` bytes.
fn whole_lines_within(bytes: &[u8], room: u64) -> usize {
    let limit = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
    bytes[..limit]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1)
}

/// The bytes of the first line, its newline included.
fn first_line(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |at| at + 1)
}

/// Writes all of `bytes`; on failure, how much was written first. A full
/// pipe (a FIFO as the log file, read by a slow shipper: `EAGAIN`, as the
/// file is opened non-blocking) is waited for, as a slow disk is: the
/// queue's bounds and [`STALL_PATIENCE`] keep that from holding children.
fn write_counting(to: &mut File, bytes: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    while written < bytes.len() {
        match to.write(&bytes[written..]) {
            Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err((written, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    //! What the log files' tests and the router's share.

    use std::path::{Path, PathBuf};

    use crate::config::LogFile;

    /// A directory removed at the end of the test.
    pub(crate) struct Dir(pub(crate) PathBuf);

    impl Dir {
        pub(crate) fn new(name: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("procmon-logfile-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A file's settings, mode 0640.
    pub(crate) fn settings(path: &Path, max_bytes: u64, backups: u32) -> LogFile {
        LogFile {
            path: path.to_path_buf(),
            max_bytes,
            backups,
            mode: 0o640,
        }
    }

    /// A file's text; empty if there is none.
    pub(crate) fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{read, settings, Dir};
    use super::*;
    use crate::config::LogSettings;

    fn config(name: &str, file: LogFile) -> LogConfig {
        let mut config = LogConfig::default();
        config.processes = vec![(
            name.to_string(),
            LogSettings {
                file: Some(file),
                ..LogSettings::default()
            },
        )];
        config
    }

    fn drain(logs: &mut LogFiles) {
        assert_eq!(
            logs.drain(Duration::from_secs(20), Duration::from_secs(20)),
            0
        );
    }

    #[test]
    fn lines_are_tagged_by_stream_and_stamped() {
        let mut out = Vec::new();
        let stamp = *b"2026-12-06T06:21:33.123Z";
        format_line(&mut out, Some(&stamp), Stream::Stdout, b"hello");
        format_line(&mut out, None, Stream::Stderr, b"bad \xff byte");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-12-06T06:21:33.123Z stdout hello\nstderr bad \\xff byte\n"
        );
    }

    #[test]
    fn each_line_gets_its_own_time_and_stream_though_heads_are_kept() {
        let dir = Dir::new("heads");
        let path = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 1 << 20, 1)));
        let file = logs.file_of("a").unwrap();
        let one = *b"2026-12-06T06:21:33.123Z";
        let two = *b"2026-12-06T06:21:34.000Z";
        for (stamp, stream, line) in [
            (Some(&one), Stream::Stdout, "a"),
            (Some(&one), Stream::Stdout, "b"),
            (Some(&one), Stream::Stderr, "c"),
            (None, Stream::Stderr, "d"),
            (Some(&two), Stream::Stderr, "e"),
            (Some(&two), Stream::Stdout, "f"),
        ] {
            logs.line(file, stamp, stream, line.as_bytes());
        }
        drain(&mut logs);
        assert_eq!(
            read(&path),
            "2026-12-06T06:21:33.123Z stdout a\n2026-12-06T06:21:33.123Z stdout b\n\
             2026-12-06T06:21:33.123Z stderr c\nstderr d\n\
             2026-12-06T06:21:34.000Z stderr e\n2026-12-06T06:21:34.000Z stdout f\n"
        );
    }

    #[test]
    fn whole_lines_fit_or_wait_for_the_next_file() {
        assert_eq!(whole_lines_within(b"ab\ncd\nef\n", 6), 6);
        assert_eq!(whole_lines_within(b"ab\ncd\nef\n", 5), 3);
        assert_eq!(whole_lines_within(b"ab\ncd\nef\n", 2), 0);
        assert_eq!(whole_lines_within(b"ab\n", u64::MAX), 3);
        assert_eq!(first_line(b"abcdef\ngh\n"), 7);
    }

    #[test]
    fn rotation_keeps_every_line_whole_and_in_order() {
        let dir = Dir::new("rotation");
        let path = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 100, 1000)));
        let file = logs.file_of("a").unwrap();
        let mut want = String::new();
        for i in 0..1000 {
            let line = format!("line {i}{}", "x".repeat(i % 37));
            logs.line(file, None, Stream::Stdout, line.as_bytes());
            want += &format!("stdout {line}\n");
        }
        drain(&mut logs);
        let mut got = String::new();
        let mut n = 1;
        let mut files = Vec::new();
        while backup(&path, n).exists() {
            files.push(read(&backup(&path, n)));
            n += 1;
        }
        for text in files.iter().rev() {
            assert!(text.len() <= 100, "{}", text.len());
            assert!(text.ends_with('\n'));
            got += text;
        }
        got += &read(&path);
        assert!(n > 50, "{n} files");
        assert_eq!(got, want);
        assert!(logs.take_reports().is_empty());
    }

    #[test]
    fn spent_batch_buffers_come_back_to_be_filled_again() {
        let dir = Dir::new("spare");
        let path = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 1 << 30, 1)));
        let file = logs.file_of("a").unwrap();
        let line = [b'x'; 99];
        let lines = 10 * BATCH_BYTES / 100;
        for _ in 0..lines {
            logs.line(file, None, Stream::Stdout, &line);
        }
        drain(&mut logs);
        let spare = logs.shared.lock().spare.len();
        assert!((1..=SPARE_BATCHES).contains(&spare), "{spare} spare");
        // The next batch is one of them, grown already.
        logs.line(file, None, Stream::Stdout, &line);
        assert!(logs.pending[0].bytes.capacity() >= BATCH_BYTES);
        drain(&mut logs);
        assert_eq!(
            read(&path).len(),
            (lines + 1) * "stdout \n".len() + (lines + 1) * 99
        );
    }

    #[test]
    fn a_line_longer_than_the_limit_has_a_file_of_its_own() {
        let dir = Dir::new("long");
        let path = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 50, 5)));
        let file = logs.file_of("a").unwrap();
        let long = "L".repeat(200);
        for line in ["short", &long, "after"] {
            logs.line(file, None, Stream::Stdout, line.as_bytes());
        }
        drain(&mut logs);
        assert_eq!(read(&backup(&path, 2)), "stdout short\n");
        assert_eq!(read(&backup(&path, 1)), format!("stdout {long}\n"));
        assert_eq!(read(&path), "stdout after\n");
    }

    #[test]
    fn backups_past_the_setting_are_deleted() {
        let dir = Dir::new("backups");
        let path = dir.0.join("a.log");
        // Left by an earlier, larger setting.
        for n in 1..=6 {
            std::fs::write(backup(&path, n), "old\n").unwrap();
        }
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 10, 2)));
        let file = logs.file_of("a").unwrap();
        for i in 0..10 {
            logs.line(file, None, Stream::Stdout, format!("n{i}").as_bytes());
        }
        drain(&mut logs);
        assert_eq!(read(&path), "stdout n9\n");
        assert_eq!(read(&backup(&path, 1)), "stdout n8\n");
        assert_eq!(read(&backup(&path, 2)), "stdout n7\n");
        for n in 3..=6 {
            assert!(!backup(&path, n).exists(), "{n}");
        }
        // No backups: the file starts afresh, a new file rather than the
        // old one truncated (so that `tail -F` follows).
        use std::os::unix::fs::MetadataExt;
        logs.configure(&config("a", settings(&path, 10, 0)));
        logs.line(file, None, Stream::Stdout, b"z1");
        drain(&mut logs);
        // Held open, as a reader following it would.
        let first = File::open(&path).unwrap();
        logs.line(file, None, Stream::Stdout, b"z2");
        drain(&mut logs);
        assert_eq!(read(&path), "stdout z2\n");
        assert_eq!(first.metadata().unwrap().nlink(), 0, "removed");
        assert_eq!(first.metadata().unwrap().len(), 10, "not truncated");
        assert!(!backup(&path, 1).exists());
    }

    #[test]
    fn a_new_file_gets_its_mode_exactly() {
        use std::os::unix::fs::MetadataExt;
        let dir = Dir::new("mode");
        let path = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        let mut file_settings = settings(&path, 1000, 1);
        // What a usual umask (022) would cut to 0644.
        file_settings.mode = 0o666;
        logs.configure(&config("a", file_settings));
        let file = logs.file_of("a").unwrap();
        logs.line(file, None, Stream::Stderr, b"x");
        drain(&mut logs);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o666);
    }

    /// A reload that gives a failing process another file ends the old
    /// file's episode with its count; the new file starts clean, so no
    /// "works again" names it with the old file's drops. The same when a
    /// reload takes the file away.
    #[test]
    fn a_failing_file_a_reload_moves_or_removes_is_told_with_its_count() {
        let dir = Dir::new("moved");
        let gone = dir.0.join("never/a.log");
        let moved = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&gone, 1000, 1)));
        let file = logs.file_of("a").unwrap();
        for i in 0..3 {
            logs.line(file, None, Stream::Stdout, format!("lost {i}").as_bytes());
            drain(&mut logs);
        }
        logs.configure(&config("a", settings(&moved, 1000, 1)));
        let file = logs.file_of("a").unwrap();
        logs.line(file, None, Stream::Stdout, b"kept");
        drain(&mut logs);
        assert_eq!(read(&moved), "stdout kept\n");
        let reports = logs.take_reports();
        assert!(
            matches!(
                &reports[..],
                [
                    LogReport::Failing { .. },
                    LogReport::Left { name, path, dropped_lines: 3 },
                ] if name == "a" && *path == gone
            ),
            "{reports:?}"
        );
        // Failing again, then removed by a reload: told as it goes.
        logs.configure(&config("a", settings(&gone, 1000, 1)));
        let file = logs.file_of("a").unwrap();
        logs.line(file, None, Stream::Stdout, b"lost");
        drain(&mut logs);
        logs.configure(&LogConfig::default());
        drain(&mut logs);
        let reports = logs.take_reports();
        assert!(
            matches!(
                &reports[..],
                [
                    LogReport::Failing { .. },
                    LogReport::Left {
                        dropped_lines: 1,
                        ..
                    }
                ]
            ),
            "{reports:?}"
        );
    }

    #[test]
    fn a_failing_file_drops_counts_reports_once_and_recovers() {
        let dir = Dir::new("failing");
        // A directory that is not there yet: every open fails.
        let path = dir.0.join("later/a.log");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 1000, 1)));
        let file = logs.file_of("a").unwrap();
        assert_eq!(logs.counts().dropped("a"), Some(0));
        for i in 0..5 {
            logs.line(file, None, Stream::Stdout, format!("lost {i}").as_bytes());
            // One batch each, so each is its own failure.
            drain(&mut logs);
        }
        std::fs::create_dir(dir.0.join("later")).unwrap();
        logs.line(file, None, Stream::Stdout, b"kept");
        drain(&mut logs);
        assert_eq!(read(&path), "stdout kept\n");
        assert_eq!(logs.counts().dropped("a"), Some(5));
        let reports = logs.take_reports();
        assert!(
            matches!(
                &reports[..],
                [
                    LogReport::Failing { name, error, .. },
                    LogReport::WorksAgain { dropped_lines: 5, .. }
                ] if name == "a" && error.starts_with("opening: ")
            ),
            "{reports:?}"
        );
        // Removed: the count goes with it.
        logs.configure(&LogConfig::default());
        assert_eq!(logs.counts().dropped("a"), None);
        assert!(logs.file_of("a").is_none());
    }

    #[test]
    fn past_the_hard_limit_lines_are_dropped_counted_and_told() {
        let dir = Dir::new("hard");
        let path = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, u64::MAX, 1)));
        let file = logs.file_of("a").unwrap();
        // Handed over at once, faster than any disk: 24 MiB in lines of
        // 1 KiB, 256 to a batch.
        let line = [b'x'; 1023];
        for _ in 0..96 {
            let mut bytes = Vec::new();
            for _ in 0..256 {
                bytes.extend_from_slice(&line);
                bytes.push(b'\n');
            }
            logs.pending.push(Batch {
                file,
                bytes,
                lines: 256,
            });
        }
        logs.flush();
        drain(&mut logs);
        let written = std::fs::metadata(&path).unwrap().len();
        assert!(written as usize <= HARD_LIMIT, "{written}");
        let dropped = logs.counts().dropped("a").unwrap();
        assert_eq!(written / 1024 + dropped, 96 * 256);
        assert!(dropped >= 7 * 1024, "{dropped}");
        logs.line(file, None, Stream::Stdout, b"after");
        drain(&mut logs);
        let reports = logs.take_reports();
        assert!(
            matches!(
                &reports[..],
                [
                    LogReport::Failing { error, .. },
                    LogReport::WorksAgain { dropped_lines, .. }
                ] if error.contains("16 MiB behind") && *dropped_lines == dropped
            ),
            "{reports:?}"
        );
    }

    /// A FIFO at `path`, and its reading end, opened before the writer
    /// opens it (else its open would fail with `ENXIO`).
    fn fifo(path: &Path) -> File {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap()
    }

    /// Reads `from` until `lines` newlines came, `chunk` bytes at a time
    /// with `pause` between reads: a slow shipper. Gives what it read.
    fn read_slowly(
        mut from: File,
        lines: usize,
        chunk: usize,
        pause: Duration,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            use std::io::Read;
            let mut got = Vec::new();
            let mut buffer = vec![0; chunk];
            let deadline = Instant::now() + Duration::from_secs(60);
            while got.iter().filter(|&&b| b == b'\n').count() < lines {
                assert!(Instant::now() < deadline, "never got {lines} lines");
                match from.read(&mut buffer) {
                    Ok(n) => got.extend_from_slice(&buffer[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
                std::thread::sleep(pause);
            }
            got
        })
    }

    #[test]
    fn a_slow_reader_holds_children_back_and_loses_nothing() {
        let dir = Dir::new("slow");
        let path = dir.0.join("a.fifo");
        let reader = fifo(&path);
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, u64::MAX, 1)));
        let file = logs.file_of("a").unwrap();
        // 4 MiB, read at about 6 MiB/s: seconds of congestion.
        const LINES: usize = 40_000;
        let reading = read_slowly(reader, LINES, 64 * 1024, Duration::from_millis(10));
        let mut congested = false;
        for i in 0..LINES {
            let line = format!("{i:0>99}");
            logs.line(file, None, Stream::Stdout, line.as_bytes());
            if i % 1000 == 0 {
                logs.flush();
                // The loop would stop reading children here.
                while logs.congested() {
                    congested = true;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        drain(&mut logs);
        assert!(congested, "never congested");
        let got = String::from_utf8(reading.join().unwrap()).unwrap();
        let want: String = (0..LINES).map(|i| format!("stdout {i:0>99}\n")).collect();
        assert!(got == want, "lines lost or changed");
        assert_eq!(logs.counts().dropped("a"), Some(0));
        assert!(logs.take_reports().is_empty());
    }

    #[test]
    fn a_stuck_reader_stops_holding_children_back_and_drops_past_the_bound() {
        let dir = Dir::new("stuck");
        let path = dir.0.join("a.fifo");
        let reader = fifo(&path);
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, u64::MAX, 1)));
        let file = logs.file_of("a").unwrap();
        let line = [b'y'; 1000];
        // Nobody reads: the pipe fills, the writer waits, the queue grows
        // past the soft limit.
        for _ in 0..2000 {
            logs.line(file, None, Stream::Stdout, &line);
        }
        logs.flush();
        assert!(logs.congested(), "a queue past the soft limit");
        // At exit, procmon would give up on it and say how much is left.
        let left = logs.drain(Duration::from_millis(300), Duration::from_secs(20));
        assert!(left > 1000 && left <= 2000, "{left}");
        // No progress for STALL_PATIENCE: children are no longer held.
        let deadline = Instant::now() + STALL_PATIENCE * 10;
        while logs.congested() {
            assert!(Instant::now() < deadline, "still holding children back");
            std::thread::sleep(Duration::from_millis(50));
        }
        // So lines keep coming, and past the hard limit they are dropped.
        for _ in 0..(HARD_LIMIT / 1000 + 1000) {
            logs.line(file, None, Stream::Stdout, &line);
        }
        logs.flush();
        // The reader comes back: what was queued arrives whole, the rest
        // was counted, and the episode is told.
        let total = 2000 + HARD_LIMIT / 1000 + 1000;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reading = {
            let stop = stop.clone();
            let mut reader = reader;
            std::thread::spawn(move || {
                use std::io::Read;
                let mut got = Vec::new();
                let mut buffer = vec![0; 1 << 20];
                loop {
                    match reader.read(&mut buffer) {
                        Ok(n) if n > 0 => got.extend_from_slice(&buffer[..n]),
                        _ if stop.load(std::sync::atomic::Ordering::SeqCst) => return got,
                        _ => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        };
        drain(&mut logs);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let got = reading.join().unwrap();
        let whole = format!("stdout {}\n", "y".repeat(1000));
        assert_eq!(got.len() % whole.len(), 0, "a line cut");
        assert!(got.chunks(whole.len()).all(|l| l == whole.as_bytes()));
        let dropped = logs.counts().dropped("a").unwrap();
        assert!(dropped > 0, "nothing dropped");
        assert_eq!((got.len() / whole.len()) as u64 + dropped, total as u64);
        let reports = logs.take_reports();
        assert!(
            matches!(
                &reports[..],
                [LogReport::Failing { error, .. }] if error.contains("behind")
            ),
            "{reports:?}"
        );
    }

    #[test]
    fn reopen_follows_a_moved_file_and_loses_nothing() {
        let dir = Dir::new("reopen");
        let path = dir.0.join("a.log");
        let moved = dir.0.join("a.log.old");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 1 << 20, 1)));
        let file = logs.file_of("a").unwrap();
        logs.line(file, None, Stream::Stdout, b"one");
        drain(&mut logs);
        std::fs::rename(&path, &moved).unwrap();
        // Still the open file, now under its new name.
        logs.line(file, None, Stream::Stdout, b"two");
        assert_eq!(logs.reopen(), 1);
        logs.line(file, None, Stream::Stdout, b"three");
        drain(&mut logs);
        assert_eq!(read(&moved), "stdout one\nstdout two\n");
        assert_eq!(read(&path), "stdout three\n");
    }

    #[test]
    fn a_deleted_file_is_created_again_at_its_next_lines() {
        let dir = Dir::new("deleted");
        let path = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 1 << 20, 1)));
        let file = logs.file_of("a").unwrap();
        logs.line(file, None, Stream::Stdout, b"one");
        drain(&mut logs);
        std::fs::remove_file(&path).unwrap();
        logs.line(file, None, Stream::Stdout, b"two");
        drain(&mut logs);
        assert_eq!(read(&path), "stdout two\n");
        // Its directory removed: told and counted, not written unseen.
        std::fs::remove_dir_all(&dir.0).unwrap();
        logs.line(file, None, Stream::Stdout, b"three");
        drain(&mut logs);
        std::fs::create_dir(&dir.0).unwrap();
        logs.line(file, None, Stream::Stdout, b"four");
        drain(&mut logs);
        assert_eq!(read(&path), "stdout four\n");
        assert_eq!(logs.counts().dropped("a"), Some(1));
        let reports = logs.take_reports();
        assert!(
            matches!(
                &reports[..],
                [
                    LogReport::Failing { error, .. },
                    LogReport::WorksAgain { dropped_lines: 1, .. }
                ] if error.starts_with("opening: ")
            ),
            "{reports:?}"
        );
    }

    #[test]
    fn a_failed_rotation_names_the_file_in_its_way() {
        let dir = Dir::new("blocked");
        let path = dir.0.join("a.log");
        let blocker = backup(&path, 2);
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("keep"), "").unwrap();
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 10, 2)));
        let file = logs.file_of("a").unwrap();
        for i in 0..4 {
            logs.line(file, None, Stream::Stdout, format!("n{i}").as_bytes());
        }
        drain(&mut logs);
        // The first rotation had room; the second met the directory.
        assert_eq!(read(&backup(&path, 1)), "stdout n0\n");
        assert_eq!(read(&path), "stdout n1\n");
        assert_eq!(logs.counts().dropped("a"), Some(2));
        let reports = logs.take_reports();
        let want = format!("rotating: removing {}: ", blocker.display());
        assert!(
            matches!(
                &reports[..],
                [LogReport::Failing { error, .. }] if error.starts_with(&want)
            ),
            "{reports:?}"
        );
    }

    #[test]
    fn a_symbolic_link_whose_target_is_gone_is_written_through() {
        use std::os::unix::fs::MetadataExt;
        let dir = Dir::new("dangling");
        let path = dir.0.join("a.log");
        let target = dir.0.join("elsewhere.log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let mut logs = LogFiles::start().unwrap();
        let mut file_settings = settings(&path, 1 << 20, 1);
        file_settings.mode = 0o666;
        logs.configure(&config("a", file_settings));
        let file = logs.file_of("a").unwrap();
        logs.line(file, None, Stream::Stdout, b"one");
        drain(&mut logs);
        assert_eq!(read(&target), "stdout one\n");
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o666);
        // Its target deleted (a cleanup): created again through the link.
        std::fs::remove_file(&target).unwrap();
        logs.line(file, None, Stream::Stdout, b"two");
        drain(&mut logs);
        assert_eq!(read(&target), "stdout two\n");
        assert_eq!(logs.counts().dropped("a"), Some(0));
        assert!(logs.take_reports().is_empty());
    }

    #[test]
    fn a_file_truncated_by_someone_else_is_not_rotated_early() {
        let dir = Dir::new("copytruncate");
        let path = dir.0.join("a.log");
        let mut logs = LogFiles::start().unwrap();
        // Room for three lines of 11 bytes.
        logs.configure(&config("a", settings(&path, 33, 1)));
        let file = logs.file_of("a").unwrap();
        for line in ["one", "two"] {
            logs.line(file, None, Stream::Stdout, line.as_bytes());
        }
        drain(&mut logs);
        // logrotate's `copytruncate`, with no reopen asked.
        std::fs::copy(&path, dir.0.join("a.log.copy")).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        for line in ["thr", "fou", "fiv"] {
            logs.line(file, None, Stream::Stdout, line.as_bytes());
        }
        drain(&mut logs);
        assert_eq!(read(&path), "stdout thr\nstdout fou\nstdout fiv\n");
        assert!(!backup(&path, 1).exists(), "rotated early");
        // Grown by someone else: the limit holds all the same.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"appended!\n")
            .unwrap();
        logs.line(file, None, Stream::Stdout, b"six");
        drain(&mut logs);
        assert_eq!(read(&path), "stdout six\n");
        assert!(read(&backup(&path, 1)).ends_with("fiv\nappended!\n"));
    }

    #[test]
    fn a_file_that_is_not_a_regular_one_is_never_rotated() {
        use std::os::unix::fs::FileTypeExt;
        let dir = Dir::new("fifo-rotate");
        let path = dir.0.join("a.fifo");
        let reader = fifo(&path);
        let mut logs = LogFiles::start().unwrap();
        // As for `/dev/null`, which a rotation would rename away from the
        // whole system.
        logs.configure(&config("a", settings(&path, 20, 1)));
        let file = logs.file_of("a").unwrap();
        let reading = read_slowly(reader, 10, 4096, Duration::from_millis(1));
        let mut want = String::new();
        for i in 0..10 {
            let line = format!("line {i}");
            logs.line(file, None, Stream::Stdout, line.as_bytes());
            want += &format!("stdout {line}\n");
            drain(&mut logs);
        }
        assert_eq!(String::from_utf8(reading.join().unwrap()).unwrap(), want);
        let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert!(kind.is_fifo(), "{kind:?}");
        assert!(!backup(&path, 1).exists());
        assert!(logs.take_reports().is_empty());
    }

    #[test]
    fn a_failed_rotation_names_a_file_not_utf8_as_its_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let dir = Dir::new("blocked-bytes");
        let path = dir.0.join(std::ffi::OsStr::from_bytes(b"a\xff.log"));
        std::fs::create_dir(backup(&path, 1)).unwrap();
        std::fs::write(backup(&path, 1).join("keep"), "").unwrap();
        let mut logs = LogFiles::start().unwrap();
        logs.configure(&config("a", settings(&path, 10, 1)));
        let file = logs.file_of("a").unwrap();
        for i in 0..2 {
            logs.line(file, None, Stream::Stdout, format!("n{i}").as_bytes());
        }
        drain(&mut logs);
        let reports = logs.take_reports();
        assert!(
            matches!(
                &reports[..],
                [LogReport::Failing { error, .. }] if error.contains("a\\xff.log.1: ")
            ),
            "{reports:?}"
        );
    }
}
