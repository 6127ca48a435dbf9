//! Facts from the world that the monitor consumes.

use crate::timer::TimerId;

/// Names one spawn of a process. Never reused: input about an earlier life
/// (after a restart, or after the name was removed and added again) carries
/// an old id and is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    pub(crate) slot: u32,
    pub(crate) serial: u64,
}

impl InstanceId {
    /// A number unique to this instance within one monitor, for display.
    pub fn serial(&self) -> u64 {
        self.serial
    }
}

/// Which output stream of a child bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// How an instance ended, as the OS reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited by itself with this code.
    Code(i32),
    /// A signal ended it; the platform's signal number.
    Signal(i32),
}

/// A fact from the world, handed to [`Monitor::handle`](crate::Monitor::handle).
///
/// Every variant names what it is about by an id the monitor issued, so facts
/// about an instance or timer that no longer matters are counted and ignored.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// The instance has ended; its output pipes were drained first.
    Exited {
        /// The instance that ended.
        instance: InstanceId,
        /// How it ended.
        status: ExitStatus,
    },
    /// The world could not start the instance (no such file, bad cwd, limits):
    /// it is treated as an instant death, so the usual backoff applies.
    SpawnFailed {
        /// The instance that could not start.
        instance: InstanceId,
        /// The OS error number (`errno`) that explains why.
        errno: i32,
    },
    /// The instance wrote bytes to one of its streams.
    Output {
        /// The instance that wrote.
        instance: InstanceId,
        /// Which stream.
        stream: Stream,
        /// What it wrote; borrowed for the call only.
        bytes: &'a [u8],
    },
    /// The instance said it is ready (`READY=1`, a newline on its
    /// notification fd). Ignored unless it is `starting`.
    Ready {
        /// The instance.
        instance: InstanceId,
    },
    /// The instance's notification channel closed before it said it was
    /// ready: it never will, so its start has failed.
    NotReady {
        /// The instance.
        instance: InstanceId,
    },
    /// A timer the monitor set has fallen due.
    TimerFired {
        /// The timer, as given in `SetTimer`.
        timer: TimerId,
    },
}
