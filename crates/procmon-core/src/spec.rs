//! What the user asks for: settings and process definitions, no runtime state.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroU32;
use core::time::Duration;

use crate::command::Signal;
use crate::error::SettingsError;

/// The longest line limit a monitor accepts: 64 MiB.
///
/// The line limit is the memory bound: a child that never writes a newline
/// makes the monitor buffer up to this many bytes for each of its two
/// streams, so the limit must be small enough to hold for every process at
/// once (the `procmon` command's whole bound is in `docs/reliability.md`,
/// "Memory for output"). 64 MiB is a thousand times the default and far
/// past any real log line.
pub const MAX_LINE_LIMIT_BYTES: usize = 64 * 1024 * 1024;

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
        check_line_limit(self.line_limit_bytes)
    }
}

/// The one rule for a line limit: at least 1 byte, at most
/// [`MAX_LINE_LIMIT_BYTES`].
pub(crate) fn check_line_limit(limit: usize) -> Result<(), SettingsError> {
    if limit == 0 {
        return Err(SettingsError::ZeroLineLimit);
    }
    if limit > MAX_LINE_LIMIT_BYTES {
        return Err(SettingsError::LineLimitTooLarge { limit });
    }
    Ok(())
}

impl Settings {
    /// Whether `limit` is a line limit the monitor accepts; the command line
    /// and the config ask this rather than keeping their own copy of the rule.
    pub fn check_line_limit(limit: usize) -> Result<(), SettingsError> {
        check_line_limit(limit)
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
    /// What happens around the instances: restart policy, stop signal,
    /// per-process timings, giving up. Not part of what is spawned.
    pub policy: Policy,
    /// How an instance says it is ready. Part of what is spawned: the
    /// world hands the child its notification channel at spawn.
    pub ready: Readiness,
    /// What must hold before any instance of this process is spawned, and
    /// what must have ended before it is stopped at a service stop. Not
    /// part of what is spawned.
    pub after: Vec<Dependency>,
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
            policy: Policy::default(),
            ready: Readiness::Spawned,
            after: Vec::new(),
        }
    }

    /// Whether `name` and this definition are what [`Monitor::add`] takes,
    /// its policy aside (see [`Policy::check`]): the one place the rules
    /// live, so that a config file or a command line can refuse a process
    /// up front, where it knows the place to point at, without a copy of
    /// the rules that could drift from the monitor's.
    ///
    /// [`Monitor::add`]: crate::Monitor::add
    pub fn check(&self, name: &str) -> Result<(), crate::AddError> {
        crate::monitor::validate(name, self)
    }

    /// Sets the policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Whether `other` spawns the same thing (argv, environment, cwd, ids,
    /// readiness channel),
    /// whatever the policies: the test a reload uses to leave a running
    /// instance alone.
    pub fn spawns_same_as(&self, other: &ProcessSpec) -> bool {
        self.argv == other.argv
            && self.env == other.env
            && self.clear_env == other.clear_env
            && self.cwd == other.cwd
            && self.uid == other.uid
            && self.gid == other.gid
            && self.ready == other.ready
    }

    /// Sets how an instance says it is ready.
    pub fn with_ready(mut self, ready: Readiness) -> Self {
        self.ready = ready;
        self
    }

    /// Adds a dependency: `name` must meet `condition` before a spawn.
    pub fn with_after(mut self, name: impl Into<String>, condition: Condition) -> Self {
        self.after.push(Dependency {
            name: name.into(),
            condition,
        });
        self
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

/// How an instance tells the monitor it is ready: the end of `starting`.
///
/// The monitor decides only what readiness means for the life; the world
/// carries the channel ([`Input::Ready`] and [`Input::NotReady`] come from
/// it), except for [`Readiness::LogLine`], which the monitor sees itself in
/// the lines it splits.
///
/// [`Input::Ready`]: crate::Input::Ready
/// [`Input::NotReady`]: crate::Input::NotReady
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Readiness {
    /// Ready when spawned: no `starting` state (the default, and Twisted's).
    #[default]
    Spawned,
    /// The sd_notify protocol: `READY=1` on the datagram socket the world
    /// names in the child's `NOTIFY_SOCKET`.
    Notify,
    /// The s6 notification fd: a newline written to this descriptor
    /// (3 or more) of the child; its closing without one means never.
    Fd(u32),
    /// A line of the instance's output, on either stream, contains these
    /// bytes (not empty).
    LogLine(Vec<u8>),
}

impl Readiness {
    /// Whether an instance is ready as soon as it is spawned.
    pub fn at_spawn(&self) -> bool {
        matches!(self, Readiness::Spawned)
    }
}

/// One condition a process waits for before it is spawned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// The process it waits for.
    pub name: String,
    /// What that process must have reached.
    pub condition: Condition,
}

/// What a dependency must have reached, as `after = { db = "ready" }` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// It has a live instance that is not being stopped (starting or
    /// running), or it ended by itself with a success code and was not
    /// restarted (`exited` after a success).
    Started,
    /// It has a live instance that is ready and not being stopped
    /// (`running`), or it is `exited` after a success.
    Ready,
    /// It ended by itself with one of its success codes and was not
    /// restarted: a one-shot job that finished (`exited` after a success).
    Completed,
}

impl Condition {
    /// Every condition.
    pub const ALL: [Condition; 3] = [Condition::Started, Condition::Ready, Condition::Completed];

    /// `"started"`, `"ready"` or `"completed"`, as config and scenarios write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Completed => "completed",
        }
    }

    /// The condition written `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens after an instance ends by itself (not on a stop request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RestartPolicy {
    /// Restart by the restart rules, whatever the exit (Twisted's only rule).
    #[default]
    Always,
    /// Restart unless the instance exited with one of the success codes; a
    /// death by a signal is never a success.
    OnFailure,
    /// Restart nothing: the process is left `exited`.
    Never,
}

impl RestartPolicy {
    /// `"always"`, `"on-failure"` or `"never"`, as config and scenarios write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }

    /// The policy written `name`, if there is one.
    pub fn from_name(name: &str) -> Option<RestartPolicy> {
        [
            RestartPolicy::Always,
            RestartPolicy::OnFailure,
            RestartPolicy::Never,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of exit codes (0–255): the codes `on-failure` counts as success.
/// `Display` lists them ascending, comma-separated (`0,3`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExitCodes([u64; 4]);

impl ExitCodes {
    /// The empty set.
    pub const EMPTY: ExitCodes = ExitCodes([0; 4]);

    /// `{0}`: the default success codes.
    pub const ZERO: ExitCodes = ExitCodes([1, 0, 0, 0]);

    /// Adds `code`.
    pub fn insert(&mut self, code: u8) {
        self.0[usize::from(code / 64)] |= 1 << (code % 64);
    }

    /// Whether `code` is in the set; codes outside 0–255 never are.
    pub fn contains(&self, code: i32) -> bool {
        u8::try_from(code).is_ok_and(|c| self.0[usize::from(c / 64)] & (1 << (c % 64)) != 0)
    }

    /// The codes, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|&c| self.contains(i32::from(c)))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }
}

impl FromIterator<u8> for ExitCodes {
    fn from_iter<I: IntoIterator<Item = u8>>(codes: I) -> Self {
        let mut set = ExitCodes::EMPTY;
        for code in codes {
            set.insert(code);
        }
        set
    }
}

impl fmt::Display for ExitCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, code) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{code}")?;
        }
        Ok(())
    }
}

/// One process's policy: what the monitor does around its instances.
///
/// Every field is optional: unset means the default (for the timings, the
/// monitor's global setting *in force when it is used*, so changing a global
/// reaches every process that does not set its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Policy {
    /// After an end by itself; default [`RestartPolicy::Always`].
    pub restart: Option<RestartPolicy>,
    /// Success codes for `on-failure`; default `{0}`.
    pub success_codes: Option<ExitCodes>,
    /// Sent whenever the monitor stops an instance; default TERM.
    pub stop_signal: Option<Signal>,
    /// Time from the stop signal to KILL.
    pub kill_time: Option<Duration>,
    /// A life shorter than this is a quick death.
    pub threshold: Option<Duration>,
    /// First backoff delay, and the delay after a long life.
    pub min_restart_delay: Option<Duration>,
    /// Cap on the backoff delay.
    pub max_restart_delay: Option<Duration>,
    /// After this many quick deaths in a row, stop trying (state `failed`).
    pub give_up_after: Option<NonZeroU32>,
    /// While `failed`, try again after this long.
    pub retry_failed_after: Option<Duration>,
    /// How long an instance may stay `starting`: not ready by then, it is
    /// stopped and counts as a quick death. Unset: no limit.
    pub ready_timeout: Option<Duration>,
    /// When an end of this process is followed by no restart (its policy,
    /// or giving up), the service stops and the monitor finishes with its
    /// exit code ([`Monitor::finished`](crate::Monitor::finished)).
    pub critical: bool,
}

impl Policy {
    /// The restart policy in effect.
    pub fn restart(&self) -> RestartPolicy {
        self.restart.unwrap_or_default()
    }

    /// The success codes in effect.
    pub fn success_codes(&self) -> ExitCodes {
        self.success_codes.unwrap_or(ExitCodes::ZERO)
    }

    /// The stop signal in effect.
    pub fn stop_signal(&self) -> Signal {
        self.stop_signal.unwrap_or(Signal::Term)
    }

    /// The kill time in effect under `settings`.
    pub fn kill_time(&self, settings: &Settings) -> Duration {
        self.kill_time.unwrap_or(settings.kill_time)
    }

    /// The threshold in effect under `settings`.
    pub fn threshold(&self, settings: &Settings) -> Duration {
        self.threshold.unwrap_or(settings.threshold)
    }

    /// The first and reset delay in effect under `settings`.
    pub fn min_restart_delay(&self, settings: &Settings) -> Duration {
        self.min_restart_delay.unwrap_or(settings.min_restart_delay)
    }

    /// The delay cap in effect under `settings`.
    pub fn max_restart_delay(&self, settings: &Settings) -> Duration {
        self.max_restart_delay.unwrap_or(settings.max_restart_delay)
    }

    /// Whether the effective delays make sense under `settings`, and a
    /// ready timeout leaves time to become ready.
    pub fn check(&self, settings: &Settings) -> Result<(), SettingsError> {
        if self.ready_timeout == Some(Duration::ZERO) {
            return Err(SettingsError::ZeroReadyTimeout);
        }
        let (min, max) = (
            self.min_restart_delay(settings),
            self.max_restart_delay(settings),
        );
        if min > max {
            return Err(SettingsError::MinAboveMax { min, max });
        }
        Ok(())
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
