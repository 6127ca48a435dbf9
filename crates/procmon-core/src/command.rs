//! Work for the world that the monitor produces.

use alloc::vec::Vec;
use core::time::Duration;

use crate::input::{ExitStatus, InstanceId, Stream};
use crate::monitor::{ProcessKey, ProcessState};
use crate::spec::RestartPolicy;
use crate::time::Instant;
use crate::timer::TimerId;

/// A signal the monitor asks the world to send: the signals a process may
/// name as its stop signal or an operator may send (the scenario contract's
/// list). The driver maps each to the platform's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// SIGHUP.
    Hup,
    /// SIGINT.
    Int,
    /// SIGQUIT.
    Quit,
    /// SIGKILL: stops an instance at once; sent kill time after an
    /// unanswered stop signal.
    Kill,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// SIGTERM: the default stop signal.
    Term,
    /// SIGALRM.
    Alrm,
    /// SIGCONT.
    Cont,
    /// SIGSTOP.
    Stop,
    /// SIGTSTP.
    Tstp,
    /// SIGWINCH.
    Winch,
    /// SIGPIPE.
    Pipe,
}

impl Signal {
    /// Every signal, in the contract's order.
    pub const ALL: [Signal; 13] = [
        Signal::Hup,
        Signal::Int,
        Signal::Quit,
        Signal::Kill,
        Signal::Usr1,
        Signal::Usr2,
        Signal::Term,
        Signal::Alrm,
        Signal::Cont,
        Signal::Stop,
        Signal::Tstp,
        Signal::Winch,
        Signal::Pipe,
    ];

    /// The signal's name without `SIG`: `"TERM"`, `"KILL"`, `"USR1"`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Hup => "HUP",
            Signal::Int => "INT",
            Signal::Quit => "QUIT",
            Signal::Kill => "KILL",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
            Signal::Term => "TERM",
            Signal::Alrm => "ALRM",
            Signal::Cont => "CONT",
            Signal::Stop => "STOP",
            Signal::Tstp => "TSTP",
            Signal::Winch => "WINCH",
            Signal::Pipe => "PIPE",
        }
    }

    /// The signal called `name`, with or without `SIG` (`"TERM"`,
    /// `"SIGTERM"`); upper case only, as Unix writes them.
    pub fn from_name(name: &str) -> Option<Signal> {
        let bare = name.strip_prefix("SIG").unwrap_or(name);
        Signal::ALL.into_iter().find(|s| s.as_str() == bare)
    }
}

impl core::fmt::Display for Signal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the monitor sends a signal: what a person reading the log needs to
/// tell a stop from an escalation from an operator's own signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalReason {
    /// The process's stop signal, sent because the monitor stops the instance.
    Stop,
    /// KILL, because the instance outlived its kill time after the stop signal.
    KillTime,
    /// KILL at once, asked for by [`Monitor::kill_all`](crate::Monitor::kill_all).
    KillAll,
    /// A signal an operator asked for ([`Monitor::signal`](crate::Monitor::signal)).
    Request,
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
        /// Why.
        reason: SignalReason,
        /// For a KILL because the kill time ran out
        /// ([`SignalReason::KillTime`]): that kill time, as it was when the
        /// stop signal went (a reload since may have changed the
        /// definition's). `None` for every other signal.
        kill_time: Option<Duration>,
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

/// A fact or decision of the monitor worth telling a person about. After an
/// `Exited` or `SpawnFailed` (and the instance's partial lines) comes exactly
/// one decision about that process: `RestartScheduled`, `GaveUp` or
/// `NotRestarting`, so a printer can put an end and what follows on one line
/// (a `StateChanged` for it follows).
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
        /// Whether the monitor had sent it its stop signal (an end on
        /// request) rather than it ending by itself.
        on_request: bool,
    },
    /// An instance could not be started; an end by itself after a life of 0.
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
    /// The process died quickly `quick_deaths` times in a row, reaching its
    /// `give_up_after`: it is `failed`, and starts again after `retry_in`
    /// if it has `retry_failed_after`.
    GaveUp {
        /// The process.
        process: ProcessKey,
        /// Its quick-death count.
        quick_deaths: u32,
        /// When it will be tried again, if ever.
        retry_in: Option<Duration>,
    },
    /// The state of the process's name changed (what `procmon ctl watch`
    /// shows). Queued after the commands of the change that caused it, when
    /// asked for ([`Monitor::report_state_changes`](crate::Monitor::report_state_changes)).
    StateChanged {
        /// The process.
        process: ProcessKey,
        /// The state before.
        from: ProcessState,
        /// The state now.
        to: ProcessState,
    },
    /// A `starting` instance became ready: the process is `running`.
    Ready {
        /// The process.
        process: ProcessKey,
        /// The instance.
        instance: InstanceId,
    },
    /// A `starting` instance will not become ready: it is being stopped
    /// (its stop signal, KILL after its kill time), and its end counts as a
    /// quick death whatever its uptime.
    NotReady {
        /// The process.
        process: ProcessKey,
        /// The instance.
        instance: InstanceId,
        /// Why.
        cause: NotReadyCause,
    },
    /// The process is due to start but waits (`waiting`) until its
    /// dependencies' conditions hold; [`ProcessStatus::waiting_for`] names
    /// the first that does not.
    ///
    /// [`ProcessStatus::waiting_for`]: crate::ProcessStatus::waiting_for
    Waiting {
        /// The process.
        process: ProcessKey,
    },
    /// A `critical` process ended and nothing will restart it: the service
    /// is stopped, and the monitor finishes with `exit_code` once nothing
    /// is alive ([`Monitor::finished`](crate::Monitor::finished)).
    CriticalEnded {
        /// The process.
        process: ProcessKey,
        /// The exit code the monitor finishes with.
        exit_code: u8,
    },
    /// Nothing will start the process by itself after this end.
    NotRestarting {
        /// The process.
        process: ProcessKey,
        /// Why not.
        reason: NotRestarting,
    },
}

/// Why a `starting` instance will not become ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotReadyCause {
    /// Its `ready_timeout` passed first.
    Timeout,
    /// Its notification channel closed without a ready message.
    ChannelClosed,
}

impl NotReadyCause {
    /// `"timeout"` or `"channel-closed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotReadyCause::Timeout => "timeout",
            NotReadyCause::ChannelClosed => "channel-closed",
        }
    }
}

/// Why an end is not followed by a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotRestarting {
    /// The restart policy says so: `never`, or `on-failure` and the exit
    /// code was a success code. The process is `exited`.
    Policy(RestartPolicy),
    /// The process is held down (`down`) until started.
    Held,
    /// The service is stopped; the process is `stopped`.
    ServiceStopped,
    /// The process was removed; a definition added again under the same
    /// name gets its own decision.
    Removed,
}
