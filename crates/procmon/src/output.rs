//! What procmon prints: children's lines on stdout, its own events on stderr.
//!
//! Text format (the default):
//!
//! - stdout: `[name] line` for every line of a child, from its stdout and
//!   its stderr alike (each stream is split into lines separately, so two
//!   streams never mix inside a line). Bytes that are not UTF-8 are shown as
//!   `\xHH`.
//! - stderr: `procmon: [name] spawned pid 123`, `procmon: [name] exited with
//!   code 1 after 0.2 s (pid 123); restarting in 1 s`, … one line per event,
//!   an end and procmon's decision about it (restart, give up, or not
//!   restart, and why) sharing one.
//! - A name is shown bare only when it cannot be misread ([`ShownName`]):
//!   `fake] [other` would otherwise pass a line off as another process's,
//!   and a right-to-left override (U+202E) would reorder what follows it.
//!   Any other name is shown as a double-quoted string with escapes:
//!   `["fake] [other"] line`, `["evil\u{202e}"] line`.
//!
//! JSON format: one object per line on the same streams, e.g.
//! `{"name":"web","stream":"stderr","line":"oops"}` on stdout and
//! `{"event":"spawned","name":"web","pid":123}` on stderr; there an end
//! and its decision are separate objects (`exited` with `on_request`, then
//! `restart_scheduled`, `gave_up` or `not_restarting`). Strings are
//! escaped by hand ([`json_string`]); bytes that are not UTF-8 appear as the
//! text `\xHH` inside the string, as in the text format.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use procmon_core::{
    Change, EscapeInvalid, ExitStatus, NotReadyCause, NotRestarting, Seconds, Signal, SignalReason,
    Stream,
};
use procmon_mio::{Notice, SpawnStage};

use crate::logfile::LogReport;
use crate::sink::SinkReport;

/// How lines are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `[name] line` and `procmon: …` lines, for people.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Something procmon did or saw, printed as one line on stderr.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Something the supervisor did or saw. Child lines
    /// ([`Notice::Output`]) go through [`Printer::child_line`] instead.
    ///
    /// In text, an end (`Exited`, `SpawnFailed`) is held back until the
    /// decision that follows it (`RestartScheduled`, `GaveUp`,
    /// `NotRestarting`), which the core sends in the same drain, and both
    /// are printed on one line: what happened, then what procmon does about
    /// it.
    Supervisor {
        /// What happened.
        notice: &'a Notice<'a>,
    },
    /// procmon itself received a signal.
    Received {
        /// `"TERM"`, `"INT"`, `"HUP"`, `"QUIT"`, `"USR1"` or `"USR2"`.
        signal: &'static str,
        /// What procmon does about it.
        action: Action,
    },
    /// Every child has ended after a stop; procmon exits.
    Stopped,
    /// A message to procmon's own service manager (`NOTIFY_SOCKET`) could
    /// not be sent; said once.
    NotifyFailed {
        /// Why.
        error: &'a io::Error,
    },
    /// Nothing is alive and nothing is due (container mode), or a critical
    /// process ended and everything has stopped: procmon exits with `code`.
    Finished {
        /// procmon's exit status.
        code: u8,
    },
    /// Writing to stdout failed, or a reader of stdout or stderr is gone;
    /// procmon stops.
    OutputFailed {
        /// `"stdout"` or `"stderr"`.
        stream: &'static str,
        /// Why.
        error: &'a io::Error,
    },
    /// The config was read again and applied (or, for a dry run, only
    /// compared): each process that changes and how.
    Reloaded {
        /// Each process that changes, and how.
        changes: &'a [(String, Change)],
        /// Whether the global settings changed.
        settings_changed: bool,
        /// Only what would change was worked out.
        dry_run: bool,
    },
    /// The output threads dropped something, or their writes fail or work
    /// again.
    Sink(&'a crate::sink::SinkReport),
    /// A log file's lines started being dropped, or are written again.
    LogFile(&'a crate::logfile::LogReport),
    /// At exit, lines the log files' disk did not take in time: up to this
    /// many were not written.
    LogsUnwritten {
        /// Lines queued or being written when procmon gave up.
        lines: u64,
    },
    /// A reload changed these processes' log settings, applied without
    /// restarting them.
    LogSettingsChanged {
        /// The processes, in config order.
        names: &'a [String],
    },
    /// A reload (or dry run) found these settings changed, which only a
    /// restart of procmon applies: named, not applied.
    RestartNeeded {
        /// The settings, as `table.key` (`control.socket`).
        settings: &'a [&'a str],
        /// Only what would change was worked out.
        dry_run: bool,
    },
    /// A reload found the config invalid and changed nothing.
    ReloadFailed {
        /// What is wrong, and where.
        error: &'a str,
    },
    /// At exit, children's output that could not be written (the reader
    /// stopped taking it) or was dropped earlier and not yet reported.
    Unwritten {
        /// Lines left unwritten.
        lines: u64,
        /// Their bytes.
        bytes: u64,
        /// Bytes dropped earlier (stdout fell too far behind).
        dropped_bytes: u64,
    },
}

/// What procmon does about a signal it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Stop every process (its stop signal, then KILL after its kill time),
    /// then exit.
    Stop,
    /// Already stopping: nothing more to do.
    AlreadyStopping,
    /// Send KILL to every process now (a second INT).
    KillAll,
    /// Stop every process and let each restart.
    RestartAll,
    /// Nothing: the signal is only reported (USR1, USR2), so that a tool
    /// sending it by habit does not end procmon.
    Ignore,
    /// Re-read the config file (HUP with `--config`).
    Reload,
    /// Close and reopen every log file (USR1 while any process writes
    /// one).
    ReopenLogs,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::AlreadyStopping => "already_stopping",
            Action::KillAll => "kill_all",
            Action::RestartAll => "restart_all",
            Action::Ignore => "ignore",
            Action::Reload => "reload",
            Action::ReopenLogs => "reopen_logs",
        }
    }
}

/// Writes children's lines to a buffered `out` and events to `err`.
///
/// Children's lines are gathered in a buffer and written in blocks of
/// [`OUT_BLOCK`], because a chatty child must not cost a system call per
/// line; call [`flush`](Self::flush) each time the event loop is about to
/// sleep. The buffer is our own rather than a `BufWriter` so that a line is
/// formatted with plain appends and one capacity check, not four `write`
/// calls. Events go to `err` at once, one `write` per line, so they
/// interleave whole with anything else writing there.
#[derive(Debug)]
pub struct Printer<O: OutBlocks, E: Write> {
    format: LogFormat,
    out: O,
    /// Children's lines not yet written to `out`.
    pending: Vec<u8>,
    err: E,
    /// The first error writing `out`; later writes are dropped.
    out_error: Option<io::Error>,
    out_failed: bool,
    /// An end printed in text, waiting for its decision to share its line:
    /// the process's name and the line so far, without its newline.
    held_end: Option<(String, String)>,
    /// Spawns are failing for want of descriptors (`EMFILE`, `ENFILE`) and
    /// the limit has been told: it is told once per episode, which a spawn
    /// that succeeds ends, not at every retry of every process.
    out_of_descriptors: bool,
    /// The last child line's prefix (`[name] `, or the JSON object up to
    /// its line), for the process and stream it was made for: a flood
    /// comes from one process, and checking and escaping its name again
    /// for every line sat on the chatty child's critical path (see
    /// `docs/performance.md`).
    prefix: (String, Stream, Vec<u8>),
    /// Which prefix `prefix` is: it changes whenever the prefix is made
    /// anew, so a caller that asked for one ([`Printer::prefix_for`]) can
    /// tell that it is still the one kept.
    prefix_id: PrefixId,
    /// The kept prefix, padded to [`SHORT_PREFIX`] bytes, when it fits:
    /// copied whole and cut back, it costs no call per line.
    short_prefix: Option<[u8; SHORT_PREFIX]>,
}

/// A kept prefix up to this long (`[` and a name of up to 29 bytes and
/// `] `) is copied as a fixed-size block.
const SHORT_PREFIX: usize = 32;

/// Names the prefix a [`Printer`] keeps at one time: what
/// [`Printer::prefix_for`] gives and [`Printer::child_line_of`] takes, so
/// that the lines of one read skip the name and stream checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixId(u64);

/// Where the printer writes children's lines: any writer, a block at a
/// time. A writer that queues blocks for a thread of its own (the sink)
/// takes the printer's buffer itself and gives an empty one back, rather
/// than copying a quarter of a megabyte out of it at every block.
pub trait OutBlocks: Write {
    /// Writes all of `block`, leaving it empty to be filled again. The
    /// default writes it with `write_all` and clears it.
    fn write_block(&mut self, block: &mut Vec<u8>) -> io::Result<()> {
        let written = self.write_all(block);
        block.clear();
        written
    }
}

impl OutBlocks for Vec<u8> {}

impl OutBlocks for std::fs::File {}

/// Children's lines are written out once this many bytes have gathered.
/// Each block is a hand-off to the writer thread (see `sink`), so blocks
/// larger than a pipe's 64 KiB keep the hand-offs rare under a flood.
pub const OUT_BLOCK: usize = 512 * 1024;

/// A line is escaped this many of its bytes at a time: escaped, a piece
/// takes at most 6 times as many (a control byte in JSON), so a block with
/// one more piece on it stays within [`PENDING_CAPACITY`].
const LINE_PIECE: usize = 32 * 1024;

/// The printer's buffer: a block and the piece or line that overflows it.
const PENDING_CAPACITY: usize = 2 * OUT_BLOCK;

impl<O: OutBlocks, E: Write> Printer<O, E> {
    /// A printer in `format` over these streams.
    pub fn new(format: LogFormat, out: O, err: E) -> Self {
        Printer {
            format,
            out,
            pending: Vec::with_capacity(PENDING_CAPACITY),
            err,
            out_error: None,
            out_failed: false,
            held_end: None,
            out_of_descriptors: false,
            prefix: (String::new(), Stream::Stdout, Vec::new()),
            prefix_id: PrefixId(0),
            short_prefix: None,
        }
    }

    /// The format lines are printed in.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Prints one line of a child's output (without its newline).
    #[inline]
    pub fn child_line(&mut self, name: &str, stream: Stream, line: &[u8]) {
        let (prefix_name, prefix_stream, prefix) = &self.prefix;
        if *prefix_stream == stream && !prefix.is_empty() && prefix_name == name {
            self.child_line_of(self.prefix_id, name, stream, line);
        } else {
            self.child_line_at(None, name, stream, line);
        }
    }

    /// Makes the kept prefix `name`'s `stream`'s and names it: lines
    /// printed with [`Printer::child_line_of`] and that name skip the
    /// checks of name and stream while it is still the one kept.
    pub fn prefix_for(&mut self, name: &str, stream: Stream) -> PrefixId {
        self.keep_prefix(name, stream);
        self.prefix_id
    }

    /// [`Printer::child_line`] for a line of `name`'s `stream` whose prefix
    /// was asked for with [`Printer::prefix_for`].
    #[inline]
    pub fn child_line_of(&mut self, prefix: PrefixId, name: &str, stream: Stream, line: &[u8]) {
        // A flood's way, inlined into the loop: text, the kept prefix, a
        // line that needs no escaping. Everything else, the general way.
        let plain = prefix == self.prefix_id
            && self.format == LogFormat::Text
            && !self.out_failed
            && line.len() <= LINE_PIECE
            && is_ascii(line);
        if !plain {
            self.child_line_at(None, name, stream, line);
            return;
        }
        let out = &mut self.pending;
        let prefix = &self.prefix.2;
        out.reserve(SHORT_PREFIX.max(prefix.len()) + line.len() + 1);
        match &self.short_prefix {
            Some(padded) => {
                let start = out.len();
                out.extend_from_slice(padded);
                out.truncate(start + prefix.len());
            }
            None => out.extend_from_slice(prefix),
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        if out.len() >= OUT_BLOCK {
            self.flush_out();
        }
    }

    /// Makes the kept prefix `name`'s `stream`'s, unless it is already.
    fn keep_prefix(&mut self, name: &str, stream: Stream) {
        let (prefix_name, prefix_stream, prefix) = &mut self.prefix;
        if prefix_name == name && *prefix_stream == stream && !prefix.is_empty() {
            return;
        }
        prefix.clear();
        let out = prefix;
        match self.format {
            LogFormat::Text => {
                out.push(b'[');
                let shown = ShownName(name);
                if shown.is_bare() {
                    out.extend_from_slice(name.as_bytes());
                } else {
                    // Writing to a Vec cannot fail.
                    let _ = write!(out, "{shown}");
                }
                out.extend_from_slice(b"] ");
            }
            LogFormat::Json => {
                // The `{` and a time come before it: see `child_line_at`.
                out.extend_from_slice(b"\"name\":");
                json_string(out, name.as_bytes());
                out.extend_from_slice(b",\"stream\":\"");
                out.extend_from_slice(stream.as_str().as_bytes());
                out.extend_from_slice(b"\",\"line\":\"");
            }
        }
        self.short_prefix = (out.len() <= SHORT_PREFIX).then(|| {
            let mut padded = [0; SHORT_PREFIX];
            padded[..out.len()].copy_from_slice(out);
            padded
        });
        prefix_name.clear();
        prefix_name.push_str(name);
        *prefix_stream = stream;
        self.prefix_id.0 += 1;
    }

    /// Prints one line of a child's output (without its newline), after
    /// the time procmon read it if `time` is given: `TIME [name] line` in
    /// text, a `"time"` field first in JSON.
    pub fn child_line_at(
        &mut self,
        time: Option<&crate::stamp::Stamp>,
        name: &str,
        stream: Stream,
        line: &[u8],
    ) {
        if self.out_failed {
            return;
        }
        self.keep_prefix(name, stream);
        let prefix = &self.prefix.2;
        let out = &mut self.pending;
        out.reserve(prefix.len() + line.len().min(LINE_PIECE) + 40);
        // The time differs line by line, so it is not part of the prefix.
        match (self.format, time) {
            (LogFormat::Text, None) => {}
            (LogFormat::Text, Some(time)) => {
                out.extend_from_slice(time);
                out.push(b' ');
            }
            (LogFormat::Json, None) => out.push(b'{'),
            (LogFormat::Json, Some(time)) => {
                // A stamp is plain ASCII: nothing to escape.
                out.extend_from_slice(b"{\"time\":\"");
                out.extend_from_slice(time);
                out.extend_from_slice(b"\",");
            }
        }
        out.extend_from_slice(prefix);
        // A long line is escaped a piece at a time and handed on in blocks,
        // so that escaping (up to 6 bytes for 1) never needs a buffer the
        // size of the line.
        let mut rest = line;
        loop {
            let (piece, tail) = split_piece(rest, LINE_PIECE);
            match self.format {
                LogFormat::Text => push_escaped(&mut self.pending, piece),
                LogFormat::Json => json_string_body(&mut self.pending, piece),
            }
            rest = tail;
            if rest.is_empty() {
                break;
            }
            if self.pending.len() >= OUT_BLOCK {
                self.flush();
                if self.out_failed {
                    return;
                }
            }
        }
        match self.format {
            LogFormat::Text => self.pending.push(b'\n'),
            LogFormat::Json => self.pending.extend_from_slice(b"\"}\n"),
        }
        if self.pending.len() >= OUT_BLOCK {
            self.flush_out();
        }
    }

    /// Writes buffered children's lines through, and an end still waiting
    /// for its decision (the loop calls this before it sleeps, and by then
    /// every decision has come).
    pub fn flush(&mut self) {
        self.flush_out();
        self.write_held_end();
    }

    /// Writes buffered children's lines through.
    fn flush_out(&mut self) {
        if self.out_failed {
            return;
        }
        let written = self.out.write_block(&mut self.pending);
        // A name escaped at length can leave it larger than its steady
        // size; that memory goes back rather than staying for good. A
        // buffer handed back by the writer may be smaller: it grows once.
        if self.pending.capacity() > PENDING_CAPACITY {
            self.pending = Vec::with_capacity(PENDING_CAPACITY);
        } else {
            self.pending.reserve(PENDING_CAPACITY);
        }
        if let Err(e) = written.and_then(|()| self.out.flush()) {
            self.fail_out(e);
        }
    }

    /// The first error writing children's lines, once.
    pub fn take_output_error(&mut self) -> Option<io::Error> {
        self.out_error.take()
    }

    /// Prints one event on the error stream and flushes it, after writing
    /// out the children's lines gathered so far: where stdout and stderr
    /// reach one terminal or file, a child's last line then still comes
    /// before the exit it led to.
    pub fn event(&mut self, event: &Event<'_>) {
        self.flush_out();
        let limit = match event {
            Event::Supervisor {
                notice: Notice::Spawned { .. },
                ..
            } => {
                self.out_of_descriptors = false;
                None
            }
            Event::Supervisor {
                notice: Notice::SpawnFailed { error, .. },
                ..
            } if !self.out_of_descriptors => {
                let limit = LimitReached::of(error);
                self.out_of_descriptors = limit.is_some();
                limit
            }
            _ => None,
        };
        let event_text = |event| event_text(event, limit);
        let line = match self.format {
            LogFormat::Text => {
                if let Event::Supervisor { notice, .. } = event {
                    if let Some(name) = ended(notice) {
                        self.write_held_end();
                        let mut text = event_text(event);
                        text.pop();
                        self.held_end = Some((name.to_string(), text));
                        return;
                    }
                    if let Some(name) = decided(notice) {
                        if let Some((_, mut text)) =
                            self.held_end.take_if(|(held, _)| held.as_str() == name)
                        {
                            text.push_str("; ");
                            // Writing to a String cannot fail.
                            let _ = write_decision(&mut text, notice);
                            text.push('\n');
                            self.write_err(&text);
                            return;
                        }
                    }
                }
                self.write_held_end();
                event_text(event)
            }
            LogFormat::Json => event_json(event, limit),
        };
        self.write_err(&line);
    }

    /// Writes an end that is still waiting for its decision, alone.
    fn write_held_end(&mut self) {
        if let Some((_, mut text)) = self.held_end.take() {
            text.push('\n');
            self.write_err(&text);
        }
    }

    /// One whole line on the error stream, flushed.
    fn write_err(&mut self, line: &str) {
        // Nowhere left to report a failure to write to stderr.
        let _ = self.err.write_all(line.as_bytes());
        let _ = self.err.flush();
    }

    /// The streams, after flushing children's lines through.
    pub fn into_inner(mut self) -> io::Result<(O, E)> {
        self.flush();
        match self.out_error {
            Some(error) => Err(error),
            None => Ok((self.out, self.err)),
        }
    }

    fn fail_out(&mut self, error: io::Error) {
        self.out_failed = true;
        self.out_error = Some(error);
    }
}

/// A process name as text output shows it, so that it cannot be misread.
///
/// Bare when every character is printable and none is `[`, `]`, `"`, `\`
/// or a Unicode bidi or format control (U+061C, U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069 and the like), and it neither starts nor
/// ends with whitespace. Otherwise a double-quoted string: `"` and `\` are
/// escaped with a backslash, `\n`, `\r` and `\t` as such, and every other
/// character that is not printable, or is a control, as `\u{hex}`.
#[derive(Clone, Copy, Debug)]
pub struct ShownName<'a>(pub &'a str);

impl ShownName<'_> {
    /// Whether the name is shown as it is.
    pub fn is_bare(&self) -> bool {
        let name = self.0;
        // Most names are plain ASCII, and that is cheaper to check.
        let plain_ascii = name
            .bytes()
            .all(|b| matches!(b, b' '..=b'~') && !matches!(b, b'[' | b']' | b'"' | b'\\'));
        let trimmed =
            !name.starts_with(char::is_whitespace) && !name.ends_with(char::is_whitespace);
        !name.is_empty()
            && trimmed
            && (plain_ascii
                || name
                    .chars()
                    .all(|c| !matches!(c, '[' | ']' | '"' | '\\') && !needs_escape(c)))
    }
}

/// Characters a quoted name shows as `\u{hex}`: controls, whitespace other
/// than a plain space, and the invisible format characters that change how
/// text around them reads (bidi controls, zero widths, the BOM).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{00ad}'
                | '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

impl std::fmt::Display for ShownName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_bare() {
            return f.write_str(self.0);
        }
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// Appends `line` as it is if it is UTF-8, else with bad bytes as `\xHH`.
fn push_escaped(out: &mut Vec<u8>, line: &[u8]) {
    // Most lines are ASCII, and that is the cheaper check.
    if is_ascii(line) || std::str::from_utf8(line).is_ok() {
        out.extend_from_slice(line);
    } else {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{}", EscapeInvalid(line));
    }
}

/// Splits off the first piece of `bytes`, of at most `max` bytes (at least
/// 4, the longest character, so a piece is never empty), where UTF-8
/// decoding of the whole would start a new step:
/// never inside a valid character, so escaping the pieces one by one gives
/// what escaping the whole would.
fn split_piece(bytes: &[u8], max: usize) -> (&[u8], &[u8]) {
    if bytes.len() <= max {
        return (bytes, &[]);
    }
    let is_continuation = |b: u8| b & 0xc0 == 0x80;
    let mut at = max;
    // A character is at most 4 bytes: its lead byte is at most 3 back. If
    // none is, the byte at `at` belongs to no valid character anyway.
    for _ in 0..3 {
        if at == 0 || !is_continuation(bytes[at]) {
            break;
        }
        at -= 1;
    }
    // No lead byte within reach (or only the piece's first byte): `max`
    // itself is where a step starts.
    if at == 0 || is_continuation(bytes[at]) {
        at = max;
    }
    bytes.split_at(at)
}

/// Whether every byte is below 0x80, eight bytes at a time: on lines of
/// about 100 bytes this beats both a vectorised OR (its reduction and byte
/// tail cost more than the ORs) and std's `is_ascii` and `from_utf8`.
#[inline]
pub(crate) fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let word = |eight: &[u8]| u64::from_ne_bytes(eight.try_into().expect("eight bytes"));
    if bytes.len() < 8 {
        return bytes.iter().fold(0, |acc, &b| acc | b) < 0x80;
    }
    let whole = bytes
        .chunks_exact(8)
        .fold(0, |acc, eight| acc | word(eight));
    // The last eight bytes, overlapping the last whole word, stand in for a
    // byte loop over the tail.
    let tail = word(&bytes[bytes.len() - 8..]);
    (whole | tail) & HIGH_BITS == 0
}

/// The limit a spawn ran into when it failed for want of descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LimitReached {
    /// procmon's own `RLIMIT_NOFILE` (`EMFILE`), the soft limit if known.
    OpenFiles(Option<u64>),
    /// The system's `fs.file-max` (`ENFILE`), if it could be read.
    SystemFiles(Option<u64>),
}

impl LimitReached {
    /// The limit behind `error`, if it is one of running out of
    /// descriptors; read now, as close to the failure as the printer gets.
    fn of(error: &io::Error) -> Option<LimitReached> {
        match error.raw_os_error()? {
            libc::EMFILE => Some(LimitReached::OpenFiles(
                procmon_mio::os::open_files_limit()
                    .ok()
                    .map(|(soft, _)| soft),
            )),
            libc::ENFILE => Some(LimitReached::SystemFiles(
                std::fs::read_to_string("/proc/sys/fs/file-max")
                    .ok()
                    .and_then(|text| text.trim().parse().ok()),
            )),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            LimitReached::OpenFiles(_) => "RLIMIT_NOFILE",
            LimitReached::SystemFiles(_) => "fs.file-max",
        }
    }

    fn value(self) -> Option<u64> {
        match self {
            LimitReached::OpenFiles(value) | LimitReached::SystemFiles(value) => value,
        }
    }
}

impl std::fmt::Display for LimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())?;
        if let Some(value) = self.value() {
            write!(f, " {value}")?;
        }
        match self {
            LimitReached::OpenFiles(_) => write!(
                f,
                " reached: procmon holds {} descriptors per child, {} with a readiness channel",
                procmon_mio::os::DESCRIPTORS_PER_CHILD,
                procmon_mio::os::DESCRIPTORS_PER_CHILD
                    + procmon_mio::os::DESCRIPTORS_PER_READINESS_CHANNEL
            ),
            LimitReached::SystemFiles(_) => {
                f.write_str(" reached: the whole system is out of files")
            }
        }
    }
}

/// What a failed spawn means, from the step that failed and its `errno`:
/// the same `ENOENT` is a missing program at `exec` and a missing
/// directory at `chdir`.
fn spawn_failure(stage: SpawnStage, error: &io::Error) -> &'static str {
    let errno = error.raw_os_error().unwrap_or(0);
    match (stage, errno) {
        (_, libc::EMFILE) => "too many open files",
        (_, libc::ENFILE) => "too many open files in the system",
        (SpawnStage::Exec, libc::ENOENT) => "program not found",
        (SpawnStage::Exec, libc::EACCES) => "program not executable (permission denied)",
        (SpawnStage::Exec, libc::ENOEXEC) => {
            "program in a format the kernel cannot run (a script needs a #! line)"
        }
        (SpawnStage::Exec, _) => "program could not be executed",
        (SpawnStage::Chdir, libc::ENOENT) => "cwd does not exist",
        (SpawnStage::Chdir, libc::ENOTDIR) => "cwd is not a directory",
        (SpawnStage::Chdir, libc::EACCES) => "cwd not accessible (permission denied)",
        (SpawnStage::Chdir, _) => "could not change into cwd",
        (SpawnStage::User, libc::EPERM) => "user could not be set (only root may change it)",
        (SpawnStage::User, _) => "user could not be set",
        (SpawnStage::Group, libc::EPERM) => "group could not be set (only root may change it)",
        (SpawnStage::Group, _) => "group could not be set",
        (SpawnStage::Groups, _) => "supplementary groups could not be dropped",
        (SpawnStage::Prepare, libc::EAGAIN) => "no more processes allowed (RLIMIT_NPROC?)",
        (SpawnStage::Prepare, _) => "procmon could not prepare the child",
        (SpawnStage::Watch, _) => "procmon could not watch the child",
        _ => "the child could not set itself up",
    }
}

fn event_text(event: &Event<'_>, limit: Option<LimitReached>) -> String {
    let mut s = String::from("procmon: ");
    // Writing to a String cannot fail.
    let _ = write_event_text(&mut s, event, limit);
    s.push('\n');
    s
}

fn write_event_text(
    s: &mut String,
    event: &Event<'_>,
    limit: Option<LimitReached>,
) -> std::fmt::Result {
    match event {
        Event::Supervisor { notice } => {
            write_notice_text(s, notice)?;
            match limit {
                Some(limit) => write!(s, " ({limit})"),
                None => Ok(()),
            }
        }
        Event::Received { signal, action } => {
            let what = match action {
                Action::Stop => "stopping all processes",
                Action::AlreadyStopping => "already stopping",
                Action::KillAll => "killing all processes now",
                Action::RestartAll => "restarting all processes",
                Action::Ignore => "ignored",
                Action::Reload => "reloading the config",
                Action::ReopenLogs => "reopening log files",
            };
            write!(s, "received {signal}: {what}")
        }
        Event::Stopped => write!(s, "all processes stopped, exiting"),
        Event::NotifyFailed { error } => write!(
            s,
            "telling the service manager (NOTIFY_SOCKET) failed: {error}"
        ),
        Event::Finished { code } => write!(
            s,
            "nothing is running and nothing is due; exiting with status {code}"
        ),
        Event::OutputFailed { stream, error } => {
            write!(s, "writing to {stream} failed: {error}; stopping")
        }
        Event::Reloaded {
            changes,
            settings_changed,
            dry_run,
        } => {
            s.push_str(if *dry_run {
                "reload (dry run) would change: "
            } else {
                "reloaded the config: "
            });
            if changes.is_empty() && !settings_changed {
                s.push_str("nothing changed");
            }
            for (i, (name, change)) in changes.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write!(s, "{} {}", ShownName(name), change.as_str())?;
            }
            if *settings_changed {
                if !changes.is_empty() {
                    s.push_str(", ");
                }
                s.push_str("global settings");
            }
            Ok(())
        }
        Event::RestartNeeded { settings, dry_run } => {
            let (what, done) = if *dry_run {
                ("reload (dry run)", "would not be applied")
            } else {
                ("reload", "not applied")
            };
            write!(
                s,
                "{what}: {done}, needs a restart of procmon: {}",
                settings.join(", ")
            )
        }
        Event::ReloadFailed { error } => {
            write!(s, "reload failed, nothing changed: {error}")
        }
        Event::Sink(report) => match report {
            SinkReport::OutFailing { error } => write!(
                s,
                "writing children's output failed: {error}; dropping it until that works again"
            ),
            SinkReport::OutWorksAgain { dropped_bytes } => write!(
                s,
                "writing children's output works again; {dropped_bytes} bytes of it were dropped"
            ),
            SinkReport::OutBehind {
                dropped_bytes,
                limit_bytes,
            } => write!(
                s,
                "{dropped_bytes} bytes of children's output were dropped: stdout fell {} MiB behind",
                limit_bytes >> 20
            ),
            SinkReport::ErrBehind {
                dropped_lines,
                limit_bytes,
            } => write!(
                s,
                "{dropped_lines} of procmon's own event lines were dropped: stderr fell {} MiB behind",
                limit_bytes >> 20
            ),
        },
        Event::LogsUnwritten { lines } => write!(
            s,
            "exiting with up to {lines} lines not written to log files: the disk did not take them in time"
        ),
        Event::LogSettingsChanged { names } => {
            s.push_str("log settings changed, applied without a restart: ");
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write!(s, "{}", ShownName(name))?;
            }
            Ok(())
        }
        Event::LogFile(report) => match report {
            LogReport::Failing { name, path, error } => write!(
                s,
                "[{}] log file {}: {error}; dropping its lines until writing works again",
                ShownName(name),
                EscapeInvalid(path.as_os_str().as_encoded_bytes())
            ),
            LogReport::WorksAgain {
                name,
                path,
                dropped_lines,
            } => write!(
                s,
                "[{}] log file {} works again; {dropped_lines} lines of it were dropped",
                ShownName(name),
                EscapeInvalid(path.as_os_str().as_encoded_bytes())
            ),
            LogReport::Left {
                name,
                path,
                dropped_lines,
            } => write!(
                s,
                "[{}] log file {} left by a reload while failing; {dropped_lines} lines of it \
                 were dropped",
                ShownName(name),
                EscapeInvalid(path.as_os_str().as_encoded_bytes())
            ),
        },
        Event::Unwritten {
            lines,
            bytes,
            dropped_bytes,
        } => {
            s.push_str("exiting with children's output lost: ");
            if *bytes > 0 {
                write!(
                    s,
                    "{lines} lines ({bytes} bytes) not written, stdout's reader stopped taking them"
                )?;
            }
            if *bytes > 0 && *dropped_bytes > 0 {
                s.push_str("; ");
            }
            if *dropped_bytes > 0 {
                write!(
                    s,
                    "{dropped_bytes} bytes dropped earlier, stdout fell behind"
                )?;
            }
            Ok(())
        }
    }
}

fn write_notice_text(s: &mut String, notice: &Notice<'_>) -> std::fmt::Result {
    match notice {
        Notice::Spawned { name, pid } => write!(s, "[{}] spawned pid {pid}", ShownName(name)),
        Notice::SpawnFailed { name, error, stage } => write!(
            s,
            "[{}] spawn failed: {}; {}: {error}",
            ShownName(name),
            spawn_failure(*stage, error),
            stage.name()
        ),
        Notice::Exited {
            name,
            pid,
            status,
            uptime,
            on_request,
        } => {
            let uptime = Rounded(*uptime);
            match status {
                ExitStatus::Code(code) => {
                    write!(
                        s,
                        "[{}] exited with code {code} after {uptime} s (pid {pid})",
                        ShownName(name)
                    )?;
                }
                ExitStatus::Signal(signal) => {
                    write!(s, "[{}] killed by signal {signal}", ShownName(name))?;
                    if let Some(signame) = signal_name(*signal) {
                        write!(s, " ({signame})")?;
                    }
                    write!(s, " after {uptime} s (pid {pid})")?;
                }
            }
            if *on_request {
                // Not a crash: procmon had sent the stop signal.
                s.push_str(" when asked to stop");
            }
            Ok(())
        }
        Notice::RestartScheduled { name, .. }
        | Notice::GaveUp { name, .. }
        | Notice::NotRestarting { name, .. } => {
            write!(s, "[{}] ", ShownName(name))?;
            write_decision(s, notice)
        }
        Notice::Signalled {
            name,
            pid,
            signal: Signal::Term,
            reason: SignalReason::Stop,
            ..
        } => write!(s, "[{}] sending TERM to pid {pid}", ShownName(name)),
        Notice::Signalled {
            name,
            pid,
            signal,
            reason: SignalReason::Stop,
            ..
        } => write!(s, "[{}] sending {signal} to pid {pid} (stop_signal)", ShownName(name)),
        Notice::Signalled {
            name,
            pid,
            reason: SignalReason::KillTime,
            kill_time,
            ..
        } => write!(
            s,
            "[{}] sending KILL to pid {pid} after {} s", ShownName(name),
            Rounded(kill_time.unwrap_or_default())
        ),
        Notice::Signalled {
            name,
            pid,
            reason: SignalReason::KillAll,
            ..
        } => write!(s, "[{}] sending KILL to pid {pid} at once", ShownName(name)),
        Notice::Signalled {
            name,
            pid,
            signal,
            reason: SignalReason::Request,
            ..
        } => write!(s, "[{}] sending {signal} to pid {pid} (on request)", ShownName(name)),
        Notice::OutputClosed { name, pid } => write!(
            s,
            "[{}] closing the output of pid {pid}, still held open by processes that left its group", ShownName(name)
        ),
        Notice::Ready { name } => write!(s, "[{}] ready", ShownName(name)),
        Notice::Status { name, text } => write!(
            s,
            "[{}] status: {}",
            ShownName(name),
            EscapeInvalid(text.as_bytes())
        ),
        Notice::Stopping { name } => write!(s, "[{}] says it is stopping", ShownName(name)),
        Notice::NotReady { name, cause } => write!(
            s,
            "[{}] not ready: {}; stopping it (a failed start)",
            ShownName(name),
            match cause {
                NotReadyCause::Timeout => "ready_timeout passed",
                NotReadyCause::ChannelClosed => "its notification channel closed",
                _ => "its start failed",
            }
        ),
        Notice::Waiting {
            name,
            dependency,
            condition,
        } => write!(
            s,
            "[{}] waiting for {} ({condition})",
            ShownName(name),
            ShownName(dependency)
        ),
        Notice::CriticalEnded { name, exit_code } => write!(
            s,
            "[{}] critical process ended; stopping everything, then exiting with status {exit_code}",
            ShownName(name)
        ),
        // Child lines are printed by `child_line`; a notice the driver
        // gains later is still shown, in its debug form, rather than lost.
        other => write!(s, "{other:?}"),
    }
}

/// The process an end is about, if `notice` is one: an end is followed by
/// exactly one decision about the same process.
fn ended<'a>(notice: &Notice<'a>) -> Option<&'a str> {
    match notice {
        Notice::Exited { name, .. } | Notice::SpawnFailed { name, .. } => Some(name),
        _ => None,
    }
}

/// The process a decision is about, if `notice` is one.
fn decided<'a>(notice: &Notice<'a>) -> Option<&'a str> {
    match notice {
        Notice::RestartScheduled { name, .. }
        | Notice::GaveUp { name, .. }
        | Notice::NotRestarting { name, .. } => Some(name),
        _ => None,
    }
}

/// What procmon does after an end, in words, without the name: the tail of
/// an end's line, or a line of its own after `[name] `.
fn write_decision(s: &mut String, notice: &Notice<'_>) -> std::fmt::Result {
    match notice {
        Notice::RestartScheduled { delay, .. } if delay.is_zero() => {
            write!(s, "restarting now")
        }
        Notice::RestartScheduled { delay, .. } => {
            write!(s, "restarting in {} s", Rounded(*delay))
        }
        Notice::GaveUp {
            quick_deaths,
            retry_in,
            ..
        } => {
            let deaths = if *quick_deaths == 1 {
                "death"
            } else {
                "deaths"
            };
            write!(s, "gave up after {quick_deaths} quick {deaths}; ")?;
            match retry_in {
                Some(retry) => write!(s, "retrying in {} s", Rounded(*retry)),
                None => write!(s, "not retrying (no retry_failed_after)"),
            }
        }
        Notice::NotRestarting { reason, .. } => match reason {
            NotRestarting::Policy(policy) => {
                write!(s, "restart = \"{policy}\": not restarting")
            }
            NotRestarting::Held => write!(s, "held down: not restarting"),
            NotRestarting::ServiceStopped => write!(s, "procmon is stopping: not restarting"),
            NotRestarting::Removed => write!(s, "removed: not restarting"),
            other => write!(s, "not restarting ({other:?})"),
        },
        other => write!(s, "{other:?}"),
    }
}

/// `reason` and `restart` of a `not_restarting` event.
fn not_restarting_json(j: &mut JsonObject, reason: &NotRestarting) {
    match reason {
        NotRestarting::Policy(policy) => {
            j.str("reason", "policy").str("restart", policy.as_str());
        }
        NotRestarting::Held => {
            j.str("reason", "held");
        }
        NotRestarting::ServiceStopped => {
            j.str("reason", "service_stopped");
        }
        NotRestarting::Removed => {
            j.str("reason", "removed");
        }
        other => {
            j.str("reason", &format!("{other:?}"));
        }
    }
}

/// The `reason` of a `signalled` event.
fn signal_reason_json(reason: SignalReason) -> &'static str {
    match reason {
        SignalReason::Stop => "stop_signal",
        SignalReason::KillTime => "kill_time",
        SignalReason::KillAll => "kill_all",
        SignalReason::Request => "request",
    }
}

/// A JSON array of strings, escaped as [`json_string`] does.
fn json_strings<'a>(items: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut list = vec![b'['];
    for (i, item) in items.enumerate() {
        if i > 0 {
            list.push(b',');
        }
        json_string(&mut list, item);
    }
    list.push(b']');
    list
}

fn event_json(event: &Event<'_>, limit: Option<LimitReached>) -> String {
    let mut j = JsonObject::new();
    match event {
        Event::Supervisor { notice } => {
            notice_json(&mut j, notice);
            if let Some(limit) = limit {
                j.str("limit", limit.name());
                if let Some(value) = limit.value() {
                    j.num("limit_value", value);
                }
            }
        }
        Event::Received { signal, action } => {
            j.str("event", "received_signal")
                .str("signal", signal)
                .str("action", action.as_str());
        }
        Event::Stopped => {
            j.str("event", "stopped");
        }
        Event::NotifyFailed { error } => {
            j.str("event", "notify_failed")
                .str("error", &error.to_string());
        }
        Event::Finished { code } => {
            j.str("event", "finished").num("exit_code", code);
        }
        Event::Reloaded {
            changes,
            settings_changed,
            dry_run,
        } => {
            let mut list = Vec::new();
            list.push(b'[');
            for (i, (name, change)) in changes.iter().enumerate() {
                if i > 0 {
                    list.push(b',');
                }
                list.extend_from_slice(b"{\"name\":");
                json_string(&mut list, name.as_bytes());
                list.extend_from_slice(b",\"change\":");
                json_string(&mut list, change.as_str().as_bytes());
                list.push(b'}');
            }
            list.push(b']');
            j.str("event", "reloaded")
                .bool("dry_run", *dry_run)
                .bool("settings_changed", *settings_changed)
                .raw("changes", &list);
        }
        Event::RestartNeeded { settings, dry_run } => {
            let list = json_strings(settings.iter().map(|key| key.as_bytes()));
            j.str("event", "restart_needed")
                .bool("dry_run", *dry_run)
                .raw("settings", &list);
        }
        Event::ReloadFailed { error } => {
            j.str("event", "reload_failed").str("error", error);
        }
        Event::Sink(report) => match report {
            SinkReport::OutFailing { error } => {
                j.str("event", "output_failing")
                    .str("stream", "stdout")
                    .str("error", error);
            }
            SinkReport::OutWorksAgain { dropped_bytes } => {
                j.str("event", "output_works_again")
                    .str("stream", "stdout")
                    .num("dropped_bytes", dropped_bytes);
            }
            SinkReport::OutBehind {
                dropped_bytes,
                limit_bytes,
            } => {
                j.str("event", "output_dropped")
                    .str("stream", "stdout")
                    .num("dropped_bytes", dropped_bytes)
                    .num("limit_bytes", limit_bytes);
            }
            SinkReport::ErrBehind {
                dropped_lines,
                limit_bytes,
            } => {
                j.str("event", "output_dropped")
                    .str("stream", "stderr")
                    .num("dropped_lines", dropped_lines)
                    .num("limit_bytes", limit_bytes);
            }
        },
        Event::LogsUnwritten { lines } => {
            j.str("event", "logs_unwritten").num("lines", lines);
        }
        Event::LogSettingsChanged { names } => {
            let list = json_strings(names.iter().map(|name| name.as_bytes()));
            j.str("event", "log_settings_changed").raw("names", &list);
        }
        Event::LogFile(report) => match report {
            LogReport::Failing { name, path, error } => {
                j.str("event", "log_failing")
                    .str("name", name)
                    .str(
                        "path",
                        &EscapeInvalid(path.as_os_str().as_encoded_bytes()).to_string(),
                    )
                    .str("error", error);
            }
            LogReport::WorksAgain {
                name,
                path,
                dropped_lines,
            }
            | LogReport::Left {
                name,
                path,
                dropped_lines,
            } => {
                let event = match report {
                    LogReport::WorksAgain { .. } => "log_works_again",
                    _ => "log_left",
                };
                j.str("event", event)
                    .str("name", name)
                    .str(
                        "path",
                        &EscapeInvalid(path.as_os_str().as_encoded_bytes()).to_string(),
                    )
                    .num("dropped_lines", dropped_lines);
            }
        },
        Event::OutputFailed { stream, error } => {
            j.str("event", "output_failed")
                .str("stream", stream)
                .str("error", &error.to_string());
        }
        Event::Unwritten {
            lines,
            bytes,
            dropped_bytes,
        } => {
            j.str("event", "unwritten")
                .num("lines", lines)
                .num("bytes", bytes)
                .num("dropped_bytes", dropped_bytes);
        }
    }
    j.finish()
}

fn notice_json(j: &mut JsonObject, notice: &Notice<'_>) {
    match notice {
        Notice::Spawned { name, pid } => {
            j.str("event", "spawned").str("name", name).num("pid", pid);
        }
        Notice::SpawnFailed { name, error, stage } => {
            j.str("event", "spawn_failed")
                .str("name", name)
                .str("stage", stage.name())
                .str("what", spawn_failure(*stage, error))
                .str("error", &error.to_string());
            if let Some(errno) = error.raw_os_error() {
                j.num("errno", errno);
            }
        }
        Notice::Exited {
            name,
            pid,
            status,
            uptime,
            on_request,
        } => {
            j.str("event", "exited").str("name", name).num("pid", pid);
            match status {
                ExitStatus::Code(code) => j.num("code", code),
                // `signal` is a name wherever it appears (as in `signalled`
                // and `received_signal`), so a collector can type the key
                // once; the number is `signo`.
                ExitStatus::Signal(signal) => {
                    let name =
                        signal_name(*signal).map_or_else(|| signal.to_string(), str::to_string);
                    j.str("signal", &name).num("signo", signal)
                }
            };
            j.num("uptime", Rounded(*uptime))
                .bool("on_request", *on_request);
        }
        Notice::RestartScheduled { name, delay } => {
            j.str("event", "restart_scheduled")
                .str("name", name)
                .num("delay", Rounded(*delay));
        }
        Notice::GaveUp {
            name,
            quick_deaths,
            retry_in,
        } => {
            j.str("event", "gave_up")
                .str("name", name)
                .num("quick_deaths", quick_deaths);
            match retry_in {
                Some(retry) => j.num("retry_in", Rounded(*retry)),
                None => j.null("retry_in"),
            };
        }
        Notice::NotRestarting { name, reason } => {
            j.str("event", "not_restarting").str("name", name);
            not_restarting_json(j, reason);
        }
        Notice::Signalled {
            name,
            pid,
            signal,
            reason,
            kill_time,
        } => {
            j.str("event", "signalled")
                .str("name", name)
                .num("pid", pid)
                .str("signal", signal.as_str())
                .str("reason", signal_reason_json(*reason));
            if let Some(kill_time) = kill_time {
                j.num("after", Rounded(*kill_time));
            }
        }
        Notice::OutputClosed { name, pid } => {
            j.str("event", "output_closed")
                .str("name", name)
                .num("pid", pid);
        }
        Notice::Ready { name } => {
            j.str("event", "ready").str("name", name);
        }
        Notice::Status { name, text } => {
            j.str("event", "status").str("name", name).str("text", text);
        }
        Notice::Stopping { name } => {
            j.str("event", "stopping").str("name", name);
        }
        Notice::NotReady { name, cause } => {
            j.str("event", "not_ready")
                .str("name", name)
                .str("cause", cause.as_str());
        }
        Notice::Waiting {
            name,
            dependency,
            condition,
        } => {
            j.str("event", "waiting")
                .str("name", name)
                .str("for", dependency)
                .str("condition", condition.as_str());
        }
        Notice::CriticalEnded { name, exit_code } => {
            j.str("event", "critical_ended")
                .str("name", name)
                .num("exit_code", exit_code);
        }
        other => {
            j.str("event", "other").str("debug", &format!("{other:?}"));
        }
    }
}

struct JsonObject {
    bytes: Vec<u8>,
}

impl JsonObject {
    fn new() -> Self {
        JsonObject {
            bytes: b"{".to_vec(),
        }
    }

    fn key(&mut self, key: &str) {
        if self.bytes.len() > 1 {
            self.bytes.push(b',');
        }
        json_string(&mut self.bytes, key.as_bytes());
        self.bytes.push(b':');
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        json_string(&mut self.bytes, value.as_bytes());
        self
    }

    /// `value` must display as a JSON number (integers and `Rounded` do).
    fn num(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.key(key);
        self.bytes.extend_from_slice(value.to_string().as_bytes());
        self
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.bytes
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// `value` must already be JSON.
    fn raw(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.key(key);
        self.bytes.extend_from_slice(value);
        self
    }

    fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.bytes.extend_from_slice(b"null");
        self
    }

    fn finish(mut self) -> String {
        self.bytes.extend_from_slice(b"}\n");
        String::from_utf8(self.bytes).expect("json_string only writes UTF-8")
    }
}

/// Appends `bytes` as a JSON string literal (quotes included).
///
/// Quotes, backslashes and control characters are escaped as JSON requires;
/// other valid UTF-8 is copied as is; each byte that is not part of valid
/// UTF-8 becomes the four characters `\xHH` (written `\\xHH` in the JSON), the
/// same text [`EscapeInvalid`] shows, so the result is always valid JSON.
pub fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    json_string_body(out, bytes);
    out.push(b'"');
}

/// [`json_string`] without the quotes.
fn json_string_body(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        for (i, &b) in valid.iter().enumerate() {
            // Bytes of multi-byte characters are all >= 0x80: never escaped.
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&valid[start..i]);
            if escape.is_empty() {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
            } else {
                out.extend_from_slice(escape);
            }
            start = i + 1;
        }
        out.extend_from_slice(&valid[start..]);
        for byte in chunk.invalid() {
            out.extend_from_slice(format!("\\\\x{byte:02x}").as_bytes());
        }
    }
}

/// A duration shown to the millisecond in the shortest form (`0.2`, `3`),
/// which is also a valid JSON number.
struct Rounded(Duration);

impl std::fmt::Display for Rounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let millis = self.0.as_nanos().saturating_add(500_000) / 1_000_000;
        let millis = u64::try_from(millis).unwrap_or(u64::MAX);
        Seconds(Duration::from_millis(millis)).fmt(f)
    }
}

/// The name of a common signal without `SIG`, for people reading exits.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGILL => "ILL",
        libc::SIGTRAP => "TRAP",
        libc::SIGABRT => "ABRT",
        libc::SIGBUS => "BUS",
        libc::SIGFPE => "FPE",
        libc::SIGKILL => "KILL",
        libc::SIGUSR1 => "USR1",
        libc::SIGSEGV => "SEGV",
        libc::SIGUSR2 => "USR2",
        libc::SIGPIPE => "PIPE",
        libc::SIGALRM => "ALRM",
        libc::SIGTERM => "TERM",
        libc::SIGXCPU => "XCPU",
        libc::SIGXFSZ => "XFSZ",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use procmon_core::RestartPolicy;

    fn json(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        json_string(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_escapes_specials_controls_and_invalid_bytes() {
        assert_eq!(json(b"plain"), r#""plain""#);
        assert_eq!(json(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json(b"\n\r\t\x08\x0c"), r#""\n\r\t\b\f""#);
        assert_eq!(json(b"\x00\x01\x1f\x7f"), "\"\\u0000\\u0001\\u001f\x7f\"");
        assert_eq!(json("héllo ☃".as_bytes()), "\"héllo ☃\"");
        assert_eq!(json(b"a\xffb\xc3"), r#""a\\xffb\\xc3""#);
        assert_eq!(json(b""), r#""""#);
    }

    fn print(
        format: LogFormat,
        f: impl FnOnce(&mut Printer<Vec<u8>, Vec<u8>>),
    ) -> (String, String) {
        let mut printer = Printer::new(format, Vec::new(), Vec::new());
        f(&mut printer);
        let (out, err) = printer.into_inner().unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn the_descriptor_limit_is_told_once_per_episode() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let failed = |name| Notice::SpawnFailed {
            name,
            error: &emfile,
            stage: SpawnStage::Prepare,
        };
        let (_, err) = print(LogFormat::Text, |p| {
            for notice in [
                failed("a"),
                failed("b"),
                failed("a"),
                Notice::Spawned { name: "c", pid: 7 },
                failed("b"),
            ] {
                p.event(&Event::Supervisor { notice: &notice });
            }
        });
        let told: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("RLIMIT_NOFILE"))
            .collect();
        assert_eq!(told.len(), 2, "{err}");
        assert!(told[0].starts_with("procmon: [a] spawn failed: too many open files; prepare: "));
        assert!(told[0].ends_with(
            "reached: procmon holds 3 descriptors per child, 4 with a readiness channel)"
        ));
        assert!(told[1].starts_with("procmon: [b] "), "{err}");
        assert_eq!(err.matches("spawn failed").count(), 4, "{err}");
        let (_, json) = print(LogFormat::Json, |p| {
            p.event(&Event::Supervisor {
                notice: &failed("a"),
            })
        });
        let (soft, _) = procmon_mio::os::open_files_limit().unwrap();
        assert!(
            json.contains(&format!(r#""limit":"RLIMIT_NOFILE","limit_value":{soft}"#)),
            "{json}"
        );
    }

    #[test]
    fn the_ascii_check_sees_a_high_byte_anywhere() {
        for len in 0..100 {
            let mut line = vec![b'a'; len];
            assert!(is_ascii(&line));
            for at in 0..len {
                line[at] = 0x80;
                assert!(!is_ascii(&line), "len {len}, high byte at {at}");
                let mut out = Vec::new();
                push_escaped(&mut out, &line);
                assert_eq!(out, format!("{}", EscapeInvalid(&line)).into_bytes());
                line[at] = b'a';
            }
        }
        let mut out = Vec::new();
        push_escaped(&mut out, "déjà vu, 32 bytes and then more …".as_bytes());
        assert_eq!(out, "déjà vu, 32 bytes and then more …".as_bytes());
    }

    #[test]
    fn text_lines_and_events() {
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let (out, err) = print(LogFormat::Text, |p| {
            p.child_line("web", Stream::Stdout, b"hello");
            p.child_line("web", Stream::Stderr, b"bad \xff byte");
            let kill_time = Duration::from_secs(5);
            let notices = [
                Notice::Spawned {
                    name: "web",
                    pid: 12,
                },
                Notice::SpawnFailed {
                    name: "web",
                    error: &enoent,
                    stage: SpawnStage::Exec,
                },
                Notice::Exited {
                    name: "web",
                    pid: 12,
                    status: ExitStatus::Code(1),
                    uptime: Duration::from_micros(200_400),
                    on_request: false,
                },
                Notice::Exited {
                    name: "web",
                    pid: 12,
                    status: ExitStatus::Signal(9),
                    uptime: Duration::from_secs(3),
                    on_request: false,
                },
                Notice::RestartScheduled {
                    name: "web",
                    delay: Duration::ZERO,
                },
                Notice::RestartScheduled {
                    name: "web",
                    delay: Duration::from_secs(4),
                },
                Notice::Signalled {
                    name: "web",
                    pid: 12,
                    signal: Signal::Term,
                    reason: SignalReason::Stop,
                    kill_time: None,
                },
                Notice::Signalled {
                    name: "web",
                    pid: 12,
                    signal: Signal::Kill,
                    reason: SignalReason::KillTime,
                    kill_time: Some(kill_time),
                },
                Notice::OutputClosed {
                    name: "web",
                    pid: 11,
                },
            ];
            for notice in &notices {
                p.event(&Event::Supervisor { notice });
            }
            p.event(&Event::Received {
                signal: "HUP",
                action: Action::RestartAll,
            });
            p.event(&Event::Stopped);
            let gone = io::Error::from(io::ErrorKind::BrokenPipe);
            p.event(&Event::OutputFailed {
                stream: "stderr",
                error: &gone,
            });
            p.event(&Event::Unwritten {
                lines: 7,
                bytes: 42,
                dropped_bytes: 0,
            });
            p.event(&Event::Unwritten {
                lines: 7,
                bytes: 42,
                dropped_bytes: 9,
            });
        });
        assert_eq!(out, "[web] hello\n[web] bad \\xff byte\n");
        let want = "\
procmon: [web] spawned pid 12
procmon: [web] spawn failed: program not found; exec: No such file or directory (os error 2)
procmon: [web] exited with code 1 after 0.2 s (pid 12)
procmon: [web] killed by signal 9 (KILL) after 3 s (pid 12); restarting now
procmon: [web] restarting in 4 s
procmon: [web] sending TERM to pid 12
procmon: [web] sending KILL to pid 12 after 5 s
procmon: [web] closing the output of pid 11, still held open by processes that left its group
procmon: received HUP: restarting all processes
procmon: all processes stopped, exiting
procmon: writing to stderr failed: broken pipe; stopping
procmon: exiting with children's output lost: 7 lines (42 bytes) not written, stdout's reader stopped taking them
procmon: exiting with children's output lost: 7 lines (42 bytes) not written, stdout's reader stopped taking them; 9 bytes dropped earlier, stdout fell behind
";
        assert_eq!(err, want);
    }

    #[test]
    fn escaping_in_pieces_gives_what_escaping_the_whole_does() {
        // Valid characters of 1 to 4 bytes, stray continuation bytes,
        // truncated sequences and controls, in a pattern that lands every
        // kind of byte on every piece boundary.
        let mut line = Vec::new();
        for i in 0..400u32 {
            match i % 7 {
                0 => line.extend_from_slice("é☃😀".as_bytes()),
                1 => line.extend_from_slice(b"\x80\x80\x80\x80\x80"),
                2 => line.extend_from_slice(b"\xe2\x82"),
                3 => line.extend_from_slice(b"\xf0\x9f\x98"),
                4 => line.push(b'"'),
                5 => line.push(0x01),
                _ => line.extend_from_slice(b"ab"),
            }
        }
        let whole_text = format!("{}", EscapeInvalid(&line)).into_bytes();
        let whole_json = json(&line);
        for max in 4..40 {
            let (mut text, mut json_body) = (Vec::new(), Vec::new());
            let mut rest = &line[..];
            while !rest.is_empty() {
                let (piece, tail) = split_piece(rest, max);
                assert!(!piece.is_empty() && piece.len() <= max, "max {max}");
                push_escaped(&mut text, piece);
                json_string_body(&mut json_body, piece);
                rest = tail;
            }
            assert!(text == whole_text, "max {max}");
            assert_eq!(
                format!("\"{}\"", String::from_utf8(json_body).unwrap()),
                whole_json
            );
        }
    }

    #[test]
    fn a_long_line_is_handed_on_in_blocks_and_reads_as_one() {
        /// Counts the writes and keeps the largest.
        #[derive(Default)]
        struct Blocks {
            bytes: Vec<u8>,
            largest: usize,
        }
        impl OutBlocks for Blocks {}
        impl Write for Blocks {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.largest = self.largest.max(bytes.len());
                self.bytes.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let line = vec![0xff; 3 * 1024 * 1024];
        for format in [LogFormat::Text, LogFormat::Json] {
            let mut printer = Printer::new(format, Blocks::default(), Vec::new());
            printer.child_line("x", Stream::Stdout, &line);
            printer.child_line("x", Stream::Stdout, b"next");
            assert!(printer.pending.capacity() <= PENDING_CAPACITY);
            let (out, _) = printer.into_inner().unwrap();
            assert!(out.largest <= PENDING_CAPACITY, "{}", out.largest);
            let want = match format {
                LogFormat::Text => format!("[x] {}\n[x] next\n", "\\xff".repeat(line.len())),
                LogFormat::Json => format!(
                    "{{\"name\":\"x\",\"stream\":\"stdout\",\"line\":\"{}\"}}\n{{\"name\":\"x\",\"stream\":\"stdout\",\"line\":\"next\"}}\n",
                    "\\\\xff".repeat(line.len())
                ),
            };
            assert!(out.bytes == want.as_bytes(), "{format:?}");
        }
    }

    #[test]
    fn names_that_could_mislead_are_quoted_with_escapes() {
        for (name, shown) in [
            ("web", "web"),
            ("sh -c echo hi", "sh -c echo hi"),
            ("café ☃", "café ☃"),
            ("fake] [other", r#""fake] [other""#),
            ("[x", r#""[x""#),
            ("evil\u{202e}txt", r#""evil\u{202e}txt""#),
            ("\u{2066}a\u{2069}", r#""\u{2066}a\u{2069}""#),
            ("\u{61c}\u{200e}\u{200f}", r#""\u{61c}\u{200e}\u{200f}""#),
            (" lead", r#"" lead""#),
            ("trail ", r#""trail ""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("tab\there\n", r#""tab\there\n""#),
            ("bell\x07 nbsp\u{a0}", r#""bell\u{7} nbsp\u{a0}""#),
            ("", r#""""#),
        ] {
            assert_eq!(ShownName(name).to_string(), shown, "{name:?}");
        }
        let (out, err) = print(LogFormat::Text, |p| {
            let name = "fake] [other";
            p.child_line(name, Stream::Stdout, b"hi");
            let notice = Notice::Spawned { name, pid: 7 };
            p.event(&Event::Supervisor { notice: &notice });
        });
        assert_eq!(out, "[\"fake] [other\"] hi\n");
        assert_eq!(err, "procmon: [\"fake] [other\"] spawned pid 7\n");
    }

    #[test]
    fn what_the_sink_drops_is_told_in_the_runs_format() {
        let reports = [
            SinkReport::OutFailing {
                error: "No space left on device (os error 28)".into(),
            },
            SinkReport::OutWorksAgain { dropped_bytes: 150 },
            SinkReport::OutBehind {
                dropped_bytes: 7,
                limit_bytes: 16 << 20,
            },
            SinkReport::ErrBehind {
                dropped_lines: 3,
                limit_bytes: 1 << 20,
            },
        ];
        let (_, text) = print(LogFormat::Text, |p| {
            for report in &reports {
                p.event(&Event::Sink(report));
            }
        });
        assert_eq!(
            text,
            "procmon: writing children's output failed: No space left on device (os error 28); dropping it until that works again\n\
             procmon: writing children's output works again; 150 bytes of it were dropped\n\
             procmon: 7 bytes of children's output were dropped: stdout fell 16 MiB behind\n\
             procmon: 3 of procmon's own event lines were dropped: stderr fell 1 MiB behind\n"
        );
        let (_, json) = print(LogFormat::Json, |p| {
            for report in &reports {
                p.event(&Event::Sink(report));
            }
        });
        let lines: Vec<&str> = json.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines.iter().all(|l| l.starts_with("{\"event\":\"output_")),
            "{json}"
        );
        assert_eq!(
            lines[3],
            "{\"event\":\"output_dropped\",\"stream\":\"stderr\",\"dropped_lines\":3,\"limit_bytes\":1048576}"
        );
    }

    #[test]
    fn lines_carry_their_time_when_asked_and_log_reports_are_told() {
        let stamp = *b"2026-12-06T06:21:33.123Z";
        let failing = LogReport::Failing {
            name: "web".into(),
            path: "/var/log/web.log".into(),
            error: "writing: No space left on device (os error 28)".into(),
        };
        let again = LogReport::WorksAgain {
            name: "web".into(),
            path: "/var/log/web.log".into(),
            dropped_lines: 12,
        };
        let left = LogReport::Left {
            name: "web".into(),
            path: "/var/log/old.log".into(),
            dropped_lines: 3,
        };
        let (out, err) = print(LogFormat::Text, |p| {
            p.child_line_at(Some(&stamp), "web", Stream::Stdout, b"hi");
            p.child_line("web", Stream::Stderr, b"plain");
            p.event(&Event::LogFile(&failing));
            p.event(&Event::LogFile(&again));
            p.event(&Event::LogFile(&left));
            p.event(&Event::LogSettingsChanged {
                names: &["web".to_string(), "db".to_string()],
            });
            p.event(&Event::LogsUnwritten { lines: 7 });
        });
        assert_eq!(out, "2026-12-06T06:21:33.123Z [web] hi\n[web] plain\n");
        assert_eq!(
            err,
            "procmon: [web] log file /var/log/web.log: writing: No space left on device (os error 28); dropping its lines until writing works again\n\
             procmon: [web] log file /var/log/web.log works again; 12 lines of it were dropped\n\
             procmon: [web] log file /var/log/old.log left by a reload while failing; 3 lines of it were dropped\n\
             procmon: log settings changed, applied without a restart: web, db\n\
             procmon: exiting with up to 7 lines not written to log files: the disk did not take them in time\n"
        );
        let (out, err) = print(LogFormat::Json, |p| {
            p.child_line_at(Some(&stamp), "web", Stream::Stdout, b"hi");
            p.event(&Event::LogFile(&failing));
            p.event(&Event::LogFile(&again));
            p.event(&Event::LogFile(&left));
            p.event(&Event::LogSettingsChanged {
                names: &["web".to_string()],
            });
        });
        assert_eq!(
            out,
            "{\"time\":\"2026-12-06T06:21:33.123Z\",\"name\":\"web\",\"stream\":\"stdout\",\"line\":\"hi\"}\n"
        );
        assert_eq!(
            err,
            "{\"event\":\"log_failing\",\"name\":\"web\",\"path\":\"/var/log/web.log\",\"error\":\"writing: No space left on device (os error 28)\"}\n\
             {\"event\":\"log_works_again\",\"name\":\"web\",\"path\":\"/var/log/web.log\",\"dropped_lines\":12}\n\
             {\"event\":\"log_left\",\"name\":\"web\",\"path\":\"/var/log/old.log\",\"dropped_lines\":3}\n\
             {\"event\":\"log_settings_changed\",\"names\":[\"web\"]}\n"
        );
    }

    #[test]
    fn a_reload_names_the_settings_that_need_a_restart_in_either_format() {
        let keys = ["control.socket", "control.log_lines"];
        let (_, err) = print(LogFormat::Text, |p| {
            p.event(&Event::RestartNeeded {
                settings: &keys,
                dry_run: false,
            });
            p.event(&Event::RestartNeeded {
                settings: &keys[..1],
                dry_run: true,
            });
        });
        assert_eq!(
            err,
            "procmon: reload: not applied, needs a restart of procmon: \
             control.socket, control.log_lines\n\
             procmon: reload (dry run): would not be applied, needs a restart of procmon: \
             control.socket\n"
        );
        let (_, err) = print(LogFormat::Json, |p| {
            p.event(&Event::RestartNeeded {
                settings: &keys,
                dry_run: true,
            })
        });
        assert_eq!(
            err,
            "{\"event\":\"restart_needed\",\"dry_run\":true,\
             \"settings\":[\"control.socket\",\"control.log_lines\"]}\n"
        );
    }

    #[test]
    fn json_lines_and_events() {
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let (out, err) = print(LogFormat::Json, |p| {
            p.child_line("a \"q\"", Stream::Stderr, b"x\ty\xfe");
            let kill_time = Duration::from_millis(250);
            let notices = [
                Notice::SpawnFailed {
                    name: "a",
                    error: &enoent,
                    stage: SpawnStage::Exec,
                },
                Notice::Exited {
                    name: "a",
                    pid: 3,
                    status: ExitStatus::Signal(15),
                    uptime: Duration::from_millis(1500),
                    on_request: false,
                },
                Notice::Signalled {
                    name: "a",
                    pid: 3,
                    signal: Signal::Kill,
                    reason: SignalReason::KillTime,
                    kill_time: Some(kill_time),
                },
                Notice::OutputClosed { name: "a", pid: 2 },
            ];
            for notice in &notices {
                p.event(&Event::Supervisor { notice });
            }
            p.event(&Event::Received {
                signal: "INT",
                action: Action::KillAll,
            });
            p.event(&Event::Unwritten {
                lines: 7,
                bytes: 42,
                dropped_bytes: 9,
            });
        });
        assert_eq!(
            out,
            "{\"name\":\"a \\\"q\\\"\",\"stream\":\"stderr\",\"line\":\"x\\ty\\\\xfe\"}\n"
        );
        let want = r#"{"event":"spawn_failed","name":"a","stage":"exec","what":"program not found","error":"No such file or directory (os error 2)","errno":2}
{"event":"exited","name":"a","pid":3,"signal":"TERM","signo":15,"uptime":1.5,"on_request":false}
{"event":"signalled","name":"a","pid":3,"signal":"KILL","reason":"kill_time","after":0.25}
{"event":"output_closed","name":"a","pid":2}
{"event":"received_signal","signal":"INT","action":"kill_all"}
{"event":"unwritten","lines":7,"bytes":42,"dropped_bytes":9}
"#;
        assert_eq!(err, want);
    }

    /// Every end and the decision after it, as the core sends them, in both
    /// formats: text joins them on one line, JSON keeps one object each.
    #[test]
    fn an_end_and_its_decision_share_a_line() {
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let exited = |code, on_request| Notice::Exited {
            name: "web",
            pid: 7,
            status: ExitStatus::Code(code),
            uptime: Duration::from_millis(1500),
            on_request,
        };
        let not_restarting = |reason| Notice::NotRestarting {
            name: "web",
            reason,
        };
        let notices = [
            exited(0, false),
            not_restarting(NotRestarting::Policy(RestartPolicy::OnFailure)),
            exited(1, false),
            Notice::RestartScheduled {
                name: "web",
                delay: Duration::from_secs(2),
            },
            Notice::SpawnFailed {
                name: "web",
                error: &enoent,
                stage: SpawnStage::Exec,
            },
            Notice::GaveUp {
                name: "web",
                quick_deaths: 5,
                retry_in: Some(Duration::from_secs(600)),
            },
            exited(1, false),
            Notice::GaveUp {
                name: "web",
                quick_deaths: 1,
                retry_in: None,
            },
            exited(0, false),
            not_restarting(NotRestarting::Policy(RestartPolicy::Never)),
            Notice::Signalled {
                name: "web",
                pid: 7,
                signal: Signal::Int,
                reason: SignalReason::Stop,
                kill_time: None,
            },
            exited(130, true),
            not_restarting(NotRestarting::ServiceStopped),
            exited(0, true),
            not_restarting(NotRestarting::Held),
            exited(0, true),
            not_restarting(NotRestarting::Removed),
            // An end followed by a decision about another process stays
            // alone, and so does that decision.
            exited(1, false),
            Notice::NotRestarting {
                name: "api",
                reason: NotRestarting::Held,
            },
        ];
        let show = |format| {
            print(format, |p| {
                for notice in &notices {
                    p.event(&Event::Supervisor { notice });
                }
                // The last end waits for a decision until the loop flushes.
                p.event(&Event::Supervisor {
                    notice: &exited(2, false),
                });
                p.flush();
            })
            .1
        };
        let want = r#"procmon: [web] exited with code 0 after 1.5 s (pid 7); restart = "on-failure": not restarting
procmon: [web] exited with code 1 after 1.5 s (pid 7); restarting in 2 s
procmon: [web] spawn failed: program not found; exec: No such file or directory (os error 2); gave up after 5 quick deaths; retrying in 600 s
procmon: [web] exited with code 1 after 1.5 s (pid 7); gave up after 1 quick death; not retrying (no retry_failed_after)
procmon: [web] exited with code 0 after 1.5 s (pid 7); restart = "never": not restarting
procmon: [web] sending INT to pid 7 (stop_signal)
procmon: [web] exited with code 130 after 1.5 s (pid 7) when asked to stop; procmon is stopping: not restarting
procmon: [web] exited with code 0 after 1.5 s (pid 7) when asked to stop; held down: not restarting
procmon: [web] exited with code 0 after 1.5 s (pid 7) when asked to stop; removed: not restarting
procmon: [web] exited with code 1 after 1.5 s (pid 7)
procmon: [api] held down: not restarting
procmon: [web] exited with code 2 after 1.5 s (pid 7)
"#;
        assert_eq!(show(LogFormat::Text), want);
        let json = show(LogFormat::Json);
        let lines: Vec<&str> = json.lines().collect();
        assert_eq!(lines.len(), notices.len() + 1, "{json}");
        for want in [
            r#"{"event":"not_restarting","name":"web","reason":"policy","restart":"on-failure"}"#,
            r#"{"event":"gave_up","name":"web","quick_deaths":5,"retry_in":600}"#,
            r#"{"event":"gave_up","name":"web","quick_deaths":1,"retry_in":null}"#,
            r#"{"event":"signalled","name":"web","pid":7,"signal":"INT","reason":"stop_signal"}"#,
            r#"{"event":"exited","name":"web","pid":7,"code":130,"uptime":1.5,"on_request":true}"#,
            r#"{"event":"not_restarting","name":"web","reason":"service_stopped"}"#,
            r#"{"event":"not_restarting","name":"web","reason":"held"}"#,
            r#"{"event":"not_restarting","name":"web","reason":"removed"}"#,
        ] {
            assert!(lines.contains(&want), "no {want} in\n{json}");
        }
    }

    #[test]
    fn each_line_gets_its_own_process_and_stream_though_prefixes_are_kept() {
        let lines = [
            ("web", Stream::Stdout, "a"),
            ("web", Stream::Stdout, "b"),
            ("web", Stream::Stderr, "c"),
            ("api", Stream::Stderr, "d"),
            ("a]b", Stream::Stderr, "e"),
            ("web", Stream::Stdout, "f"),
        ];
        let (text, _) = print(LogFormat::Text, |p| {
            for (name, stream, line) in lines {
                p.child_line(name, stream, line.as_bytes());
            }
        });
        assert_eq!(
            text,
            "[web] a\n[web] b\n[web] c\n[api] d\n[\"a]b\"] e\n[web] f\n"
        );
        let (objects, _) = print(LogFormat::Json, |p| {
            for (name, stream, line) in lines {
                p.child_line(name, stream, line.as_bytes());
            }
        });
        let want: String = lines
            .iter()
            .map(|(name, stream, line)| {
                format!(
                    "{{\"name\":{},\"stream\":\"{}\",\"line\":\"{line}\"}}\n",
                    json(name.as_bytes()),
                    stream.as_str()
                )
            })
            .collect();
        assert_eq!(objects, want);
    }

    #[test]
    fn short_and_long_kept_prefixes_are_copied_whole() {
        let long = "n".repeat(40);
        let (text, _) = print(LogFormat::Text, |p| {
            for name in ["w", &"m".repeat(29), &"k".repeat(30), &long, "w"] {
                let prefix = p.prefix_for(name, Stream::Stdout);
                p.child_line_of(prefix, name, Stream::Stdout, b"one");
                p.child_line_of(prefix, name, Stream::Stdout, b"two");
            }
        });
        let want: String = ["w", &"m".repeat(29), &"k".repeat(30), &long, "w"]
            .iter()
            .map(|name| format!("[{name}] one\n[{name}] two\n"))
            .collect();
        assert_eq!(text, want);
    }

    #[test]
    fn a_prefix_named_before_another_was_kept_is_not_used() {
        let (text, _) = print(LogFormat::Text, |p| {
            let web = p.prefix_for("web", Stream::Stdout);
            p.child_line_of(web, "web", Stream::Stdout, b"one");
            let api = p.prefix_for("api", Stream::Stderr);
            // `web`'s name is stale now: its line still gets its own prefix.
            p.child_line_of(web, "web", Stream::Stdout, b"two");
            p.child_line_of(api, "api", Stream::Stderr, b"three");
        });
        assert_eq!(text, "[web] one\n[web] two\n[api] three\n");
    }

    #[test]
    fn a_line_after_a_kept_prefix_is_escaped_and_pieced_as_any_other() {
        // The kept prefix's quick way takes plain ASCII lines only; these
        // must come out exactly as the general way prints them.
        let long = "y".repeat(3 * LINE_PIECE + 5);
        let lines: [&[u8]; 5] = [
            b"first",
            b"caf\xc3\xa9",
            b"bad \xff byte",
            long.as_bytes(),
            b"",
        ];
        let (text, _) = print(LogFormat::Text, |p| {
            for line in lines {
                p.child_line("web", Stream::Stdout, line);
            }
        });
        let want =
            format!("[web] first\n[web] caf\u{e9}\n[web] bad \\xff byte\n[web] {long}\n[web] \n");
        assert_eq!(text, want);
    }

    #[test]
    fn lines_gathered_before_an_event_are_written_before_it() {
        /// Both streams into one log, as when they share a terminal.
        #[derive(Clone)]
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl OutBlocks for Shared {}
        impl Write for Shared {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let log = Shared(Default::default());
        let mut printer = Printer::new(LogFormat::Text, log.clone(), log.clone());
        printer.child_line("web", Stream::Stdout, b"last words");
        printer.event(&Event::Stopped);
        let text = String::from_utf8(log.0.borrow().clone()).unwrap();
        assert!(text.starts_with("[web] last words\nprocmon: "), "{text}");
    }

    #[test]
    fn output_failure_is_kept_and_later_lines_dropped() {
        struct Broken;
        impl OutBlocks for Broken {}
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut printer = Printer::new(LogFormat::Text, Broken, Vec::new());
        printer.child_line("a", Stream::Stdout, b"x");
        printer.flush();
        let error = printer.take_output_error().expect("flush failed");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        printer.child_line("a", Stream::Stdout, b"y");
        printer.flush();
        assert!(printer.take_output_error().is_none());
    }
}
