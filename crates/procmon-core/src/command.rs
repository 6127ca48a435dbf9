//! Work for the world that the monitor produces.

use alloc::vec::Vec;
use core::time::Duration;

use crate::input::{ExitStatus, InstanceId, Stream};
use crate::monitor::ProcessKey;
use crate::time::Instant;
use crate::timer::TimerId;

/// A signal the monitor asks the world to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Ask the instance to stop.
    Term,
    /// Stop the instance now; sent `kill_time` after an unanswered TERM.
    Kill,
}

impl Signal {
    /// The signal's name without `SIG`: `"TERM"` or `"KILL"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
        }
    }
}

/// Something the world must do, taken from [`Monitor::poll_command`](crate::Monitor::poll_command).
///
/// `ProcessKey`s in commands stay valid, for `Monitor::name` and
/// `Monitor::spec`, until the next call that mutates the monitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start a new instance of the process; read its definition with
    /// [`Monitor::spec`](crate::Monitor::spec). If that fails, report
    /// [`Input::SpawnFailed`](crate::Input::SpawnFailed).
    Spawn {
        /// The process to start.
        process: ProcessKey,
        /// The id every later input about this instance must carry.
        instance: InstanceId,
    },
    /// Send a signal to a live instance (and, for a real driver, its group).
    Signal {
        /// The process the instance belongs to.
        process: ProcessKey,
        /// The instance to signal.
        instance: InstanceId,
        /// What to send.
        signal: Signal,
    },
    /// Arrange for `Input::TimerFired { timer }` at `at`. Timers due at the
    /// same instant must fire in the order they were set.
    SetTimer {
        /// The timer to arm.
        timer: TimerId,
        /// When it falls due.
        at: Instant,
    },
    /// Forget a timer set earlier; it must not fire.
    CancelTimer {
        /// The timer to disarm.
        timer: TimerId,
    },
    /// Log one line of a child's output as `[name] line`.
    Log(LogLine),
    /// Tell whoever watches the monitor what it decided; no action needed.
    Report(Report),
}

/// One line of a child's output, without its newline, as raw bytes. The bytes
/// may be any bytes; escape them when printing (see [`EscapeInvalid`](crate::EscapeInvalid)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The process that wrote it.
    pub process: ProcessKey,
    /// The instance that wrote it.
    pub instance: InstanceId,
    /// The stream it came from.
    pub stream: Stream,
    /// The line.
    pub bytes: Vec<u8>,
}

/// One line of a child's output, lent for the time of a call to the sink of
/// [`Monitor::handle_output`](crate::Monitor::handle_output); otherwise the
/// same as a [`LogLine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLineRef<'a> {
    /// The process that wrote it.
    pub process: ProcessKey,
    /// The instance that wrote it.
    pub instance: InstanceId,
    /// The stream it came from.
    pub stream: Stream,
    /// The line, without its newline.
    pub bytes: &'a [u8],
}

impl LogLineRef<'_> {
    /// The same line, owned: what `Command::Log` carries.
    pub fn to_log_line(self) -> LogLine {
        LogLine {
            process: self.process,
            instance: self.instance,
            stream: self.stream,
            bytes: self.bytes.to_vec(),
        }
    }
}

/// A decision of the monitor worth telling a person about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Report {
    /// An instance ended after `uptime`.
    Exited {
        /// Its process.
        process: ProcessKey,
        /// The instance.
        instance: InstanceId,
        /// How it ended.
        status: ExitStatus,
        /// How long it lived.
        uptime: Duration,
    },
    /// An instance could not be started; counted as an instant death.
    SpawnFailed {
        /// Its process.
        process: ProcessKey,
        /// The instance.
        instance: InstanceId,
        /// The OS error number.
        errno: i32,
    },
    /// The process will be started again after `delay` (zero: at once).
    RestartScheduled {
        /// The process.
        process: ProcessKey,
        /// How long until the restart.
        delay: Duration,
    },
}
