//! What the user asks for: settings and process definitions, no runtime state.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::error::SettingsError;

/// The monitor-wide knobs, with Twisted's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// A life shorter than this is an "instant death" that backs off (default 1 s).
    pub threshold: Duration,
    /// Time between TERM and KILL when stopping an instance (default 5 s).
    pub kill_time: Duration,
    /// First backoff delay, and the delay after a long life (default 1 s).
    pub min_restart_delay: Duration,
    /// Cap on the backoff delay (default 3600 s).
    pub max_restart_delay: Duration,
    /// Longest output line before it is logged in pieces (default 65536).
    pub line_limit_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threshold: Duration::from_secs(1),
            kill_time: Duration::from_secs(5),
            min_restart_delay: Duration::from_secs(1),
            max_restart_delay: Duration::from_secs(3600),
            line_limit_bytes: 65536,
        }
    }
}

impl Settings {
    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.min_restart_delay > self.max_restart_delay {
            return Err(SettingsError::MinAboveMax {
                min: self.min_restart_delay,
                max: self.max_restart_delay,
            });
        }
        if self.line_limit_bytes == 0 {
            return Err(SettingsError::ZeroLineLimit);
        }
        Ok(())
    }
}

/// How to run one process: the arguments of Twisted's `addProcess`.
///
/// Strings are bytes because Unix argv, environment and paths are bytes.
/// Build one with [`ProcessSpec::new`] and set the optional fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ProcessSpec {
    /// The program and its arguments; `argv[0]` is looked up on `PATH`.
    pub argv: Vec<Vec<u8>>,
    /// Extra environment entries, in the order given.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// Start from an empty environment instead of the monitor's own.
    pub clear_env: bool,
    /// Working directory; the monitor's own when `None`.
    pub cwd: Option<Vec<u8>>,
    /// User id to run as.
    pub uid: Option<u32>,
    /// Group id to run as.
    pub gid: Option<u32>,
}

impl ProcessSpec {
    /// A definition that runs `argv` with no other options.
    pub fn new<I, A>(argv: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Vec<u8>>,
    {
        ProcessSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            uid: None,
            gid: None,
        }
    }

    /// Adds an environment entry.
    pub fn with_env(mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the working directory.
    pub fn with_cwd(mut self, cwd: impl Into<Vec<u8>>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Sets the user id.
    pub fn with_uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Sets the group id.
    pub fn with_gid(mut self, gid: u32) -> Self {
        self.gid = Some(gid);
        self
    }

    /// Sets whether the child starts from an empty environment.
    pub fn with_clear_env(mut self, clear_env: bool) -> Self {
        self.clear_env = clear_env;
        self
    }
}

/// The monitor's definitions as a plain value: the counterpart of Twisted's
/// pickle state. It holds settings and processes and no runtime state, so a
/// monitor rebuilt from it (see [`Monitor::from_definitions`]) starts fresh.
///
/// [`Monitor::from_definitions`]: crate::Monitor::from_definitions
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Definitions {
    /// The monitor-wide settings.
    pub settings: Settings,
    /// The processes, by name, in the order they were added.
    pub processes: Vec<(String, ProcessSpec)>,
}

/// Shows a process the way Twisted's repr does: `name(uid:gid): argv`.
pub(crate) struct ProcessSummary<'a>(pub(crate) &'a str, pub(crate) &'a ProcessSpec);

impl fmt::Display for ProcessSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ProcessSummary(name, spec) = self;
        write!(f, "{name:?}")?;
        match (spec.uid, spec.gid) {
            (None, None) => {}
            (Some(uid), None) => write!(f, "({uid})")?,
            (None, Some(gid)) => write!(f, "(:{gid})")?,
            (Some(uid), Some(gid)) => write!(f, "({uid}:{gid})")?,
        }
        f.write_str(": [")?;
        for (i, arg) in spec.argv.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "\"{}\"", crate::EscapeQuoted(arg))?;
        }
        f.write_str("]")
    }
}
