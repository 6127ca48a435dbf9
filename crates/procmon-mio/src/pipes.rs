//! Pipes and back-pressure: reading children's stdout and stderr, the pipes
//! that linger after a child is reaped, and holding output back
//! ([`Supervisor::pause_output`], [`Observer::accepts_output`]).
//!
//! Separate because its rules (a per-pipe read budget, which pipes may be
//! held, when a lingering pipe is closed) concern how bytes flow, not which
//! children exist: the child table only asks it to read or close a pipe.

use std::io::{self, Read};
use std::os::fd::AsRawFd;

use mio::unix::pipe::Receiver;
use procmon_core::{LineBuffer, Stream};

use crate::children::Child;
use crate::{sys, Notice, Observer, Supervisor};

/// The one read buffer: pipes hold 64 KiB by default, so one read usually
/// empties one.
pub(crate) const READ_BUFFER_BYTES: usize = 64 * 1024;

/// At most this many reads (1 MiB) from one pipe per readiness event or
/// drain; a pipe still full after them is read again on the next turn. A
/// child writing faster than the monitor logs (`yes`) would otherwise keep
/// one read loop busy for ever and starve every other child, the timers and
/// stop.
pub(crate) const READS_PER_PIPE: usize = 16;

/// At most this many reaped instances of one process keep their pipes open
/// for descendants that escaped its group (a daemon that double-forked and
/// kept its stdout); when one more would, the oldest's pipes are closed.
/// Without a bound, every restart of such a process would leave two
/// descriptors and a slot behind for as long as those descendants live.
pub(crate) const LINGERING_PER_PROCESS: usize = 4;

pub(crate) struct Pipe {
    pub(crate) receiver: Receiver,
    /// Splits what arrives after the child was reaped (from grandchildren
    /// still holding the pipe); before that the monitor splits.
    pub(crate) lines: LineBuffer,
}

impl Supervisor {
    /// Reads what the pipes of reaped children (kept open by descendants that
    /// escaped their group) still hold, reports it with their partial lines,
    /// and closes them. For a program about to exit or drop the supervisor
    /// once the monitor is quiescent: otherwise a partial last line of such
    /// a descendant would go unreported, since their EOF is not awaited.
    pub fn finish_output(&mut self, observer: &mut impl Observer) {
        let slots: Vec<usize> = self.lingering.values().flatten().copied().collect();
        for slot in slots {
            for stream in [Stream::Stdout, Stream::Stderr] {
                self.read_pipe_now(slot, stream, observer);
                let open = self.children[slot]
                    .as_mut()
                    .is_some_and(|c| c.live.is_none() && c.pipe(stream).is_some());
                if open {
                    self.close_pipe(slot, stream, observer);
                }
            }
        }
    }

    /// Stops or resumes reading children's output, for an observer whose
    /// own output cannot keep up (procmon's stdout with a stalled reader).
    ///
    /// While paused, pipes are left unread, so children that keep writing
    /// block on their full pipes, as they would on a plain pipe to a slow
    /// reader; everything else (exits, timers, signals) goes on. An exiting
    /// child's pipes are still drained, so its last lines come before its
    /// exit, and once its group is killed, pipes nobody can write to any
    /// more are read to EOF and closed. Resuming reads every pipe that
    /// became ready meanwhile on the next turn.
    pub fn pause_output(&mut self, paused: bool) {
        self.output_paused = paused;
        if !paused {
            self.resume_held_pipes();
        }
    }

    /// Puts the pipes left unread while output was held back on the list
    /// read at the end of the next turn (which then does not sleep).
    pub(crate) fn resume_held_pipes(&mut self) {
        for pipe in self.paused_pipes.drain(..) {
            if !self.unfinished.contains(&pipe) {
                self.unfinished.push_back(pipe);
            }
        }
    }

    /// Reads one pipe of `slot` until `WouldBlock` or EOF, or at most
    /// [`READS_PER_PIPE`] times, leaving the rest for the next turn; while
    /// output is paused, only notes it for when output resumes.
    pub(crate) fn read_pipe(&mut self, slot: usize, stream: Stream, observer: &mut impl Observer) {
        self.read_pipe_unless_held(slot, stream, observer, true);
    }

    /// [`read_pipe`](Self::read_pipe), paused or not.
    pub(crate) fn read_pipe_now(
        &mut self,
        slot: usize,
        stream: Stream,
        observer: &mut impl Observer,
    ) {
        self.read_pipe_unless_held(slot, stream, observer, false);
    }

    /// Reads as `read_pipe` says; with `may_hold`, first asks (before every
    /// read, so that one turn cannot read much past what the observer can
    /// take) whether output is paused or the observer refuses it, and then
    /// only notes the pipe for later.
    ///
    /// A reaped child's pipe that nobody can write to any more is never held:
    /// what it holds is bounded (a pipe's capacity) and is the child's last
    /// words, like the drain at its exit. Held, it would never reach EOF and
    /// would look like a pipe kept open by escapees, keeping its
    /// descriptors and slot until evicted as one.
    fn read_pipe_unless_held(
        &mut self,
        slot: usize,
        stream: Stream,
        observer: &mut impl Observer,
        mut may_hold: bool,
    ) {
        if may_hold {
            let abandoned = self
                .children
                .get_mut(slot)
                .and_then(Option::as_mut)
                .is_some_and(|c| {
                    c.live.is_none()
                        && c.pipe(stream)
                            .as_ref()
                            .is_some_and(|p| !sys::pipe_has_writers(p.receiver.as_raw_fd()))
                });
            may_hold = !abandoned;
        }
        for _ in 0..READS_PER_PIPE {
            if may_hold && (self.output_paused || !observer.accepts_output()) {
                if !self.paused_pipes.contains(&(slot, stream)) {
                    self.paused_pipes.push((slot, stream));
                }
                return;
            }
            let Some(child) = self.children.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let Child {
                name,
                live,
                stdout,
                stderr,
                ..
            } = child;
            let live = live.as_ref().map(|l| l.instance);
            let pipe = match stream {
                Stream::Stdout => stdout,
                Stream::Stderr => stderr,
            };
            let Some(pipe) = pipe.as_mut() else {
                return;
            };
            let read = (&pipe.receiver).read(&mut self.buffer);
            let n = match read {
                Ok(0) => {
                    self.close_pipe(slot, stream, observer);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Any other error on a pipe read is permanent: treat it as EOF.
                Err(_) => {
                    self.close_pipe(slot, stream, observer);
                    return;
                }
            };
            observer.output_read();
            let bytes = &self.buffer[..n];
            let name = &**name;
            let mut log = |line: &[u8]| observer.read_line(name, stream, line);
            match live {
                Some(instance) => {
                    let now = self.clock.now();
                    self.monitor.handle_output(
                        now,
                        instance,
                        stream,
                        bytes,
                        |line| log(line.bytes),
                    );
                    self.drain(now, observer);
                }
                None => {
                    let limit = self.monitor.settings().line_limit_bytes;
                    pipe.lines.push(bytes, limit, log);
                }
            }
        }
        // Still full after the budget: the next turn reads on.
        if !self.unfinished.contains(&(slot, stream)) {
            self.unfinished.push_back((slot, stream));
        }
    }

    /// EOF on a pipe: flush what a reaped child's descendants left unfinished
    /// and forget the pipe.
    pub(crate) fn close_pipe(&mut self, slot: usize, stream: Stream, observer: &mut impl Observer) {
        let child = self.children[slot]
            .as_mut()
            .expect("caller checked the slot");
        let mut pipe = child.pipe(stream).take().expect("caller checked the pipe");
        let _ = self.poll.registry().deregister(&mut pipe.receiver);
        // While the child lives the core holds its partial line and flushes it
        // at the exit; after that, ours holds it.
        if let Some(line) = pipe.lines.take_partial() {
            observer.notice(Notice::Output {
                name: &child.name,
                stream,
                line: &line,
            });
        }
        self.free_if_done(slot);
    }

    /// Keeps the pipes of a reaped child open for its escaped descendants,
    /// closing those of the oldest such instance of the same process if that
    /// makes more than [`LINGERING_PER_PROCESS`].
    pub(crate) fn linger(&mut self, slot: usize, observer: &mut impl Observer) {
        let child = self.children[slot]
            .as_ref()
            .expect("caller checked the slot");
        let name = child.name.clone();
        let lingering = self.lingering.entry(name.clone()).or_default();
        lingering.push_back(slot);
        if lingering.len() <= LINGERING_PER_PROCESS {
            return;
        }
        let oldest = lingering[0];
        let pid = self.children[oldest]
            .as_ref()
            .expect("lingering slots are occupied")
            .pid;
        // What is in the pipes is read first; closing the second pipe frees
        // the slot and takes it off the list. A pipe that reaches EOF while
        // read was not held open by anyone: no notice for it.
        let mut forced = false;
        for stream in [Stream::Stdout, Stream::Stderr] {
            self.read_pipe_now(oldest, stream, observer);
            let open = self.children[oldest]
                .as_mut()
                .is_some_and(|c| c.pipe(stream).is_some());
            if open {
                forced = true;
                self.close_pipe(oldest, stream, observer);
            }
        }
        if forced {
            observer.notice(Notice::OutputClosed { name: &name, pid });
        }
    }
}
