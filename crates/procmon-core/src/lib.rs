//! procmon-core: a deterministic, sans-IO process supervisor.
//!
//! [`Monitor`] is Twisted's `ProcessMonitor` as a state machine. It consumes
//! facts ([`Input`]: exits, spawn failures, output bytes, fired timers) and
//! application calls (add, remove, start, stop, …), and produces work
//! ([`Command`]: spawn, signal, set or cancel a timer, log a line). It has no
//! clock (time comes in as an [`Instant`]), performs no system calls and
//! starts no threads, so every behaviour can be replayed exactly in virtual
//! time. `procmon-mio` carries the commands out on a real machine;
//! `procmon-sim` carries them out against simulated processes.
//!
//! The crate is `no_std` (with `alloc`) so that nothing from `std::time`,
//! `std::process` or `std::thread` can creep in.
#![no_std]
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

extern crate alloc;

mod command;
mod cycle;
mod error;
mod escape;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod input;
mod life;
mod lines;
mod monitor;
mod reload;
mod spec;
mod time;
mod timer;

pub use command::{
    Command, LogLine, LogLineRef, NotReadyCause, NotRestarting, Report, Signal, SignalReason,
};
pub use error::{
    AddError, DefinitionsError, SettingsError, ShutDown, SignalError, StartError, UnknownProcess,
};
pub use escape::{EscapeInvalid, EscapeQuoted};
pub use input::{ExitStatus, Input, InstanceId, Stream};
pub use lines::LineBuffer;
pub use monitor::{
    Due, DueAction, Monitor, ProcessKey, ProcessState, ProcessStats, ProcessStatus, Stats,
};
pub use reload::{Change, ReloadPlan};
pub use spec::{
    Condition, Definitions, Dependency, ExitCodes, Policy, ProcessSpec, Readiness, RestartPolicy,
    Settings, MAX_LINE_LIMIT_BYTES,
};
pub use time::{Instant, Seconds};
pub use timer::{TimerId, TimerKind, TimerMark, TimerQueue};

/// Re-exported so callers name durations without importing `core::time`.
pub use core::time::Duration;
