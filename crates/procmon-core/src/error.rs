//! Typed errors of the monitor's application calls: each names what and where.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

use crate::time::Seconds;

/// Why [`Monitor::add`](crate::Monitor::add) refused a process.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddError {
    /// A process with this name is already added.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The name is empty or holds a control character (it would garble logs).
    InvalidName {
        /// The name.
        name: String,
    },
    /// The process has no program to run.
    EmptyArgv {
        /// The process name.
        name: String,
    },
    /// An argument, environment entry or path holds a NUL byte, which Unix
    /// cannot pass to a child; `field` names which (`argv`, `env`, `cwd`).
    NulByte {
        /// The process name.
        name: String,
        /// Which part of the definition.
        field: &'static str,
    },
    /// An environment key is empty or holds `=`.
    InvalidEnvKey {
        /// The process name.
        name: String,
    },
    /// The program (`argv[0]`) is the empty string: nothing could ever run.
    EmptyProgram {
        /// The process name.
        name: String,
    },
    /// The working directory is the empty string: no directory has that name.
    EmptyCwd {
        /// The process name.
        name: String,
    },
    /// The readiness cannot work: a notification fd below 3 (0–2 are the
    /// child's stdio) or above 1023, or an empty log text.
    InvalidReadiness {
        /// The process name.
        name: String,
    },
    /// `after` names the process itself, or a name twice.
    InvalidDependency {
        /// The process name.
        name: String,
        /// The dependency's name.
        dependency: String,
    },
    /// `after` would close a cycle: following dependencies from the
    /// process leads back to it, so none of them could ever start.
    DependencyCycle {
        /// The process name.
        name: String,
        /// The cycle, from the process back to it.
        cycle: alloc::vec::Vec<String>,
    },
    /// `after` names a process that is not defined (checked where a whole
    /// set of definitions is known: a config file, a reload).
    UnknownDependency {
        /// The process name.
        name: String,
        /// The unknown name.
        dependency: String,
    },
    /// The process's own delays do not make sense together, or with the
    /// global ones it inherits.
    Policy {
        /// The process name.
        name: String,
        /// What is wrong.
        error: SettingsError,
    },
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::DuplicateName { name } => write!(f, "process {name:?} is already added"),
            AddError::InvalidName { name } => {
                write!(
                    f,
                    "process name {name:?} is empty or holds a control character"
                )
            }
            AddError::EmptyArgv { name } => write!(f, "process {name:?} has an empty argv"),
            AddError::NulByte { name, field } => {
                write!(f, "process {name:?}: {field} holds a NUL byte")
            }
            AddError::InvalidEnvKey { name } => {
                write!(f, "process {name:?}: an env key is empty or holds '='")
            }
            AddError::EmptyProgram { name } => {
                write!(f, "process {name:?}: the program is the empty string")
            }
            AddError::EmptyCwd { name } => {
                write!(f, "process {name:?}: cwd is the empty string")
            }
            AddError::InvalidReadiness { name } => write!(
                f,
                "process {name:?}: a readiness fd must be 3 to 1023 and a log text not empty"
            ),
            AddError::InvalidDependency { name, dependency } => write!(
                f,
                "process {name:?}: after names {dependency:?} twice or the process itself"
            ),
            AddError::DependencyCycle { name, cycle } => {
                write!(f, "process {name:?}: after closes a cycle: ")?;
                for (i, step) in cycle.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" -> ")?;
                    }
                    write!(f, "{step}")?;
                }
                Ok(())
            }
            AddError::UnknownDependency { name, dependency } => write!(
                f,
                "process {name:?}: after names {dependency:?}, which is not defined"
            ),
            AddError::Policy { name, error } => write!(f, "process {name:?}: {error}"),
        }
    }
}

impl core::error::Error for AddError {}

/// No process of this name is added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownProcess {
    /// The name that was asked for.
    pub name: String,
}

impl fmt::Display for UnknownProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no process named {:?}", self.name)
    }
}

impl core::error::Error for UnknownProcess {}

/// Why [`Monitor::start`](crate::Monitor::start) or
/// [`Monitor::restart`](crate::Monitor::restart) did nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// No process of this name is added.
    Unknown(UnknownProcess),
    /// The monitor was shut down: it starts nothing more.
    ShutDown(ShutDown),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Unknown(e) => e.fmt(f),
            StartError::ShutDown(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for StartError {}

/// The monitor was shut down ([`Monitor::shut_down`](crate::Monitor::shut_down),
/// or a critical process ended for good): a request that could start
/// something is refused, as the run is ending and a new instance would
/// keep it from ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutDown;

impl fmt::Display for ShutDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the monitor is shutting down: it starts, restarts and reloads nothing more")
    }
}

impl core::error::Error for ShutDown {}

/// Why [`Monitor::signal`](crate::Monitor::signal) sent nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalError {
    /// No process of this name is added.
    Unknown(UnknownProcess),
    /// The process has no live instance to signal.
    NotRunning {
        /// The process name.
        name: String,
    },
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::Unknown(e) => e.fmt(f),
            SignalError::NotRunning { name } => write!(f, "process {name:?} is not running"),
        }
    }
}

impl core::error::Error for SignalError {}

/// Settings that do not make sense together.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsError {
    /// The minimum restart delay is above the maximum.
    MinAboveMax {
        /// min_restart_delay.
        min: Duration,
        /// max_restart_delay.
        max: Duration,
    },
    /// A line limit of zero bytes could never hold a byte.
    ZeroLineLimit,
    /// A ready timeout of zero would end every start at its spawn: no
    /// instance could ever become ready.
    ZeroReadyTimeout,
    /// A line limit above [`MAX_LINE_LIMIT_BYTES`](crate::MAX_LINE_LIMIT_BYTES).
    LineLimitTooLarge {
        /// The limit asked for.
        limit: usize,
    },
    /// A process would be left with its minimum restart delay above its
    /// maximum (its own or the global one it inherits).
    ProcessMinAboveMax {
        /// The process name.
        name: String,
        /// Its effective min_restart_delay.
        min: Duration,
        /// Its effective max_restart_delay.
        max: Duration,
    },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::MinAboveMax { min, max } => write!(
                f,
                "min_restart_delay ({} s) is above max_restart_delay ({} s)",
                Seconds(*min),
                Seconds(*max)
            ),
            SettingsError::ZeroLineLimit => f.write_str("line_limit_bytes must be at least 1"),
            SettingsError::ZeroReadyTimeout => f.write_str(
                "ready_timeout must be more than 0: no instance could become ready in no time",
            ),
            SettingsError::LineLimitTooLarge { limit } => write!(
                f,
                "line_limit_bytes {limit} is above the cap of {} (64 MiB)",
                crate::MAX_LINE_LIMIT_BYTES
            ),
            SettingsError::ProcessMinAboveMax { name, min, max } => write!(
                f,
                "process {name:?} would have min_restart_delay ({} s) above max_restart_delay ({} s)",
                Seconds(*min),
                Seconds(*max)
            ),
        }
    }
}

impl core::error::Error for SettingsError {}

/// Why [`Monitor::from_definitions`](crate::Monitor::from_definitions),
/// [`Monitor::reload`](crate::Monitor::reload) or
/// [`Monitor::plan_reload`](crate::Monitor::plan_reload) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DefinitionsError {
    /// The settings are invalid.
    Settings(SettingsError),
    /// A process could not be added.
    Add(AddError),
    /// [`Monitor::reload`](crate::Monitor::reload) after the monitor was
    /// shut down.
    ShutDown(ShutDown),
}

impl fmt::Display for DefinitionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefinitionsError::Settings(e) => e.fmt(f),
            DefinitionsError::Add(e) => e.fmt(f),
            DefinitionsError::ShutDown(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for DefinitionsError {}
