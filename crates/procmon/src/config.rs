//! The TOML configuration file: parsing, checking and user/group lookup.
//!
//! Reading a file takes two steps so that the first can be fuzzed: [`parse`]
//! is pure (text in, [`Config`] or one located [`ConfigError`] out) and keeps
//! users and groups as written ([`UserRef`]); [`Config::resolve`] then looks
//! names up through an [`Accounts`] implementation ([`SystemAccounts`] asks
//! the system with `getpwnam_r`/`getgrnam_r`) and builds the
//! [`Definitions`] the monitor starts from.
//!
//! ```toml
//! threshold = 1          # seconds, integer or float
//! killtime = 5
//! minrestartdelay = 1
//! maxrestartdelay = 3600
//! linelimit = 65536      # bytes
//!
//! [[process]]
//! name = "web"
//! argv = ["python3", "-m", "http.server", "8000"]
//! env = { PYTHONUNBUFFERED = "1" }
//! clear_env = false
//! cwd = "/srv/www"
//! uid = "www-data"       # or a number
//! gid = 33               # or a group name
//!
//! # What happens around the instances; each is optional.
//! restart = "on-failure"         # "always" (the default), "on-failure", "never"
//! success_exit_codes = [0, 3]    # on-failure's successes (default [0])
//! stop_signal = "INT"            # sent to stop it (default "TERM"); "SIGINT" too
//! killtime = 10                  # these four as the globals above,
//! threshold = 2                  # which they override for this
//! minrestartdelay = 0.5          # process only
//! maxrestartdelay = 60
//! give_up_after = 5              # quick deaths in a row before it is `failed`
//! retry_failed_after = 600       # seconds; needs give_up_after
//!
//! # Readiness and order; see docs/deployment.md.
//! ready = "notify"               # or "fd:3", or { log = "TEXT" }
//! ready_timeout = 30             # seconds; needs ready
//! after = { db = "ready" }       # "started", "ready" or "completed"
//! critical = true                # its end for good ends procmon, with its status
//!
//! # Log files (docs/logging.md); each key also at the top level as the
//! # default for every process, except log_file (there: log_dir = "DIR",
//! # giving each process DIR/NAME.log).
//! log_file = "/var/log/web.log"  # both streams, `TIME stdout LINE` and
//!                                # `TIME stderr LINE`; its directory must exist
//! log_max_bytes = 10485760       # rotate before a line would pass this
//! log_backups = 5                # keep web.log.1 (newest) .. web.log.5
//! log_stdout = true              # lines also on procmon's stdout
//! log_file_mode = "0640"         # of a new file; or 0o640
//! timestamps = "rfc3339"         # or "off"; default: off on stdout, on in files
//!
//! [control]                      # the control socket (`procmon ctl`)
//! socket = "/run/procmon/web.sock"   # default: see docs/control.md
//! allow_uids = [1000]            # besides root and procmon's own user
//! allow_gids = [27]              # primary groups allowed
//! log_lines = 1000               # recent lines kept per process
//! log_bytes = 1048576            # and at most this many bytes of them
//! metrics_listen = "127.0.0.1:9100"  # serve GET /metrics over HTTP; off by
//!                                # default; an IPv4 or IPv6 socket address,
//!                                # best on loopback (no access check)
//!
//! [container]                    # as --container: exit once nothing is
//! enabled = true                 # left to run
//! ```
//!
//! What a process may be (a name, a program, a cwd, env keys, delays that
//! make sense) is the core's rule ([`ProcessSpec::check`], [`Policy::check`],
//! [`Settings::check_line_limit`]); this module only points at the place a
//! file broke it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::num::NonZeroU32;
use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use procmon_core::{
    AddError, Condition, Definitions, Dependency, ExitCodes, Policy, ProcessSpec, Readiness,
    RestartPolicy, Seconds, Settings, SettingsError, Signal, MAX_LINE_LIMIT_BYTES,
};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

mod logs;
pub use logs::{
    LogConfig, LogFile, LogSettings, DEFAULT_BACKUPS, DEFAULT_MAX_BYTES, DEFAULT_MODE, MAX_BACKUPS,
};

/// The keys allowed at the top of the file, in the order the docs list them.
pub(crate) const TOP_KEYS: &[&str] = &[
    "threshold",
    "killtime",
    "minrestartdelay",
    "maxrestartdelay",
    "linelimit",
    "process",
    "control",
    "container",
    // Log files (`logs`):
    "log_dir",
    "log_max_bytes",
    "log_backups",
    "log_stdout",
    "log_file_mode",
    "timestamps",
];

/// The keys a `[container]` table may hold.
pub(crate) const CONTAINER_KEYS: &[&str] = &["enabled"];

/// The keys a `[control]` table may hold.
pub(crate) const CONTROL_KEYS: &[&str] = &[
    "socket",
    "allow_uids",
    "allow_gids",
    "log_lines",
    "log_bytes",
    "metrics_listen",
];

/// The most bytes `log_bytes` may ask to keep per process: 64 MiB.
pub const MAX_LOG_BYTES: usize = 64 << 20;

/// The most recent lines `log_lines` may ask to keep per process.
pub const MAX_LOG_LINES: usize = 1_000_000;

/// The longest control socket path, in bytes: a Unix socket address holds
/// 108 with the terminating NUL (Linux's `sun_path`).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Why `path` cannot be a control socket's path, if it cannot: completes
/// "`socket` …" or "--socket …". Checked where the path is given, as
/// binding it would first create the directories on the way to it and
/// then fail.
pub fn socket_path_problem(path: &[u8]) -> Option<String> {
    (path.len() > MAX_SOCKET_PATH_BYTES).then(|| {
        format!(
            "is {} bytes, more than the {MAX_SOCKET_PATH_BYTES} a Unix socket's path may be",
            path.len()
        )
    })
}

/// The largest config file read: 1 MiB.
///
/// The whole file is parsed into a tree before it is checked, and the tree
/// costs up to about 75 bytes of memory per byte of file (measured: 16 MiB
/// of `a = [1,1,1,...]` took 1.2 GB), so this cap is what bounds the memory
/// of loading. 1 MiB keeps that under 100 MB, while a thousand processes
/// with a generous environment each fit in a quarter of it.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The keys allowed in a `[[process]]` table.
pub(crate) const PROCESS_KEYS: &[&str] = &[
    "name",
    "argv",
    "env",
    "clear_env",
    "cwd",
    "uid",
    "gid",
    "restart",
    "success_exit_codes",
    "stop_signal",
    "killtime",
    "threshold",
    "minrestartdelay",
    "maxrestartdelay",
    "give_up_after",
    "retry_failed_after",
    "ready",
    "ready_timeout",
    "after",
    "critical",
    // Log files (`logs`):
    "log_file",
    "log_max_bytes",
    "log_backups",
    "log_stdout",
    "log_file_mode",
    "timestamps",
];

/// A parsed, checked configuration whose users and groups are not yet
/// looked up. Everything [`Config::resolve`] can still reject carries the
/// place it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file name used in error messages.
    pub file_name: String,
    /// The monitor-wide settings, defaults filled in.
    pub settings: Settings,
    /// The processes, in file order.
    pub processes: Vec<ProcessConfig>,
    /// The `[control]` table, defaults filled in.
    pub control: ControlConfig,
    /// `[container] enabled`: exit once nothing is alive or due (as
    /// `--container`).
    pub container: bool,
    /// Where each process's lines go (the `log_*` and `timestamps` keys).
    pub logs: LogConfig,
}

/// The `[control]` table: the control socket's place and who may use it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlConfig {
    /// `socket`: where the socket is (else the default place).
    pub socket: Option<std::path::PathBuf>,
    /// `allow_uids`: users allowed besides root and procmon's own.
    pub allow_uids: Vec<u32>,
    /// `allow_gids`: primary groups allowed.
    pub allow_gids: Vec<u32>,
    /// `log_lines`: recent lines kept per process for `ctl logs`.
    pub log_lines: Option<usize>,
    /// `log_bytes`: at most this many bytes of them per process.
    pub log_bytes: Option<usize>,
    /// `metrics_listen`: where to serve `GET /metrics` over HTTP; off when
    /// unset. Anyone who can connect may read it, so loopback is the advice.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// One `[[process]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessConfig {
    /// The unique name the process is logged and supervised under.
    pub name: String,
    /// What to run; `uid` and `gid` stay `None` until resolved.
    pub spec: ProcessSpec,
    /// The user to run as, as written.
    pub user: Option<Located<UserRef>>,
    /// The group to run as, as written.
    pub group: Option<Located<UserRef>>,
}

/// A user or group as written in the file: a name to look up, or an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    /// A name such as `"www-data"`.
    Name(String),
    /// A numeric id, used as it is.
    Id(u32),
}

/// A value and the place in the file it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// 1-based line of its first character.
    pub line: usize,
    /// 1-based column (in characters) of its first character.
    pub column: usize,
}

/// Why a configuration was refused: one message with the place it is about.
/// `Display` gives `FILE:LINE:COL: message`, all on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given.
    pub file_name: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, naming the key; never contains a newline.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file_name, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Looks up users and groups by name. Behind a trait so that resolving can
/// be tested (and fuzzed) without the machine's user database.
pub trait Accounts {
    /// The uid of `name`, or `None` if there is no such user.
    fn user_id(&self, name: &str) -> std::io::Result<Option<u32>>;
    /// The gid of `name`, or `None` if there is no such group.
    fn group_id(&self, name: &str) -> std::io::Result<Option<u32>>;
}

/// The machine's user database, through `getpwnam_r` and `getgrnam_r`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn user_id(&self, name: &str) -> std::io::Result<Option<u32>> {
        procmon_mio::os::user_id(name)
    }

    fn group_id(&self, name: &str) -> std::io::Result<Option<u32>> {
        procmon_mio::os::group_id(name)
    }
}

impl Config {
    /// Looks up user and group names and gives the monitor's definitions.
    /// An unknown name is an error at the place it was written.
    /// (`control` is not part of the definitions: take it first.)
    pub fn resolve(self, accounts: &impl Accounts) -> Result<Definitions, ConfigError> {
        let file_name = self.file_name;
        let mut processes = Vec::with_capacity(self.processes.len());
        for process in self.processes {
            let mut spec = process.spec;
            if let Some(user) = &process.user {
                spec.uid = Some(resolve_one(&file_name, user, "uid", "user", |n| {
                    accounts.user_id(n)
                })?);
            }
            if let Some(group) = &process.group {
                spec.gid = Some(resolve_one(&file_name, group, "gid", "group", |n| {
                    accounts.group_id(n)
                })?);
            }
            processes.push((process.name, spec));
        }
        Ok(Definitions {
            settings: self.settings,
            processes,
        })
    }
}

fn resolve_one(
    file_name: &str,
    reference: &Located<UserRef>,
    key: &str,
    kind: &str,
    lookup: impl Fn(&str) -> std::io::Result<Option<u32>>,
) -> Result<u32, ConfigError> {
    let error = |message: String| ConfigError {
        file_name: file_name.to_string(),
        line: reference.line,
        column: reference.column,
        message,
    };
    match &reference.value {
        UserRef::Id(id) => Ok(*id),
        UserRef::Name(name) => match lookup(name) {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(error(format!("`{key}`: unknown {kind} {name:?}"))),
            Err(e) => Err(error(format!("`{key}`: looking up {kind} {name:?}: {e}"))),
        },
    }
}

/// Reads the text of the config file at `path`, named `shown` in errors
/// (see [`escape_for_message`]). The error is one line, starting `shown:`.
///
/// Only a regular file of at most [`MAX_FILE_BYTES`] is read: opening a
/// FIFO would wait for a writer for ever (and TERM and INT are held by then,
/// so nothing could interrupt it), and a device such as `/dev/zero` would be
/// read until memory runs out.
pub fn read_source(path: &Path, shown: &str) -> Result<String, String> {
    let failed = |e: std::io::Error| format!("{shown}: {e}");
    // Look before opening, as opening a device can act on it (a tape
    // rewinds, a terminal can become ours).
    check_file(&std::fs::metadata(path).map_err(failed)?, shown)?;
    // Should the path change under us, O_NONBLOCK keeps the open of a FIFO
    // from waiting and O_NOCTTY a terminal from becoming ours; what was
    // opened is checked again before a byte is read.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(failed)?;
    let metadata = file.metadata().map_err(failed)?;
    check_file(&metadata, shown)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // One byte more than allowed, to see a file that grew since.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(shown, "more than"));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let good = std::str::from_utf8(good).expect("valid_up_to marks valid UTF-8");
        let line = good.matches('\n').count() + 1;
        let column = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{shown}:{line}:{column}: the file is not UTF-8 text")
    })
}

/// Refuses what is not a regular file of at most [`MAX_FILE_BYTES`].
fn check_file(metadata: &std::fs::Metadata, shown: &str) -> Result<(), String> {
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        if metadata.len() > MAX_FILE_BYTES {
            return Err(too_large(
                shown,
                &format!("{} bytes, more than", metadata.len()),
            ));
        }
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "something else"
    };
    Err(format!("{shown}: is {what}, not a regular file"))
}

fn too_large(shown: &str, size: &str) -> String {
    format!(
        "{shown}: is {size} the {} MiB a config file may be",
        MAX_FILE_BYTES >> 20
    )
}

/// Parses and checks a configuration file's text. Pure: no I/O, no lookups,
/// never panics on any input. `file_name` is used only in errors, as it is:
/// pass a name from the user through [`escape_for_message`] first.
pub fn parse(source: &str, file_name: &str) -> Result<Config, ConfigError> {
    let parser = Parser {
        source,
        file_name,
        lines: LineStarts::new(source),
    };
    parser.document()
}

struct Parser<'a> {
    source: &'a str,
    file_name: &'a str,
    /// For [`Parser::line_column`].
    lines: LineStarts,
}

type Span = Range<usize>;
/// One environment entry as `ProcessSpec` holds it: key and value bytes.
type EnvEntry = (Vec<u8>, Vec<u8>);
/// Where an environment entry's key and value were written.
type EnvSpans = (Span, Span);
/// Where one `[[process]]` table wrote what the core's rules may refuse, so
/// that a refusal can point at it.
#[derive(Default)]
struct ProcessSpans {
    table: Span,
    name: Span,
    argv: Span,
    /// Each argument's.
    args: Vec<Span>,
    /// Each environment entry's key and value.
    env: Vec<EnvSpans>,
    cwd: Span,
    /// The table's own `minrestartdelay`, if it has one.
    min: Option<Span>,
    /// The table's own `maxrestartdelay`, if it has one.
    max: Option<Span>,
    /// Its `ready`.
    ready: Span,
    /// Its `after` table, and each dependency's name as written there.
    after: Span,
    dependencies: Vec<Span>,
    /// The table's own log keys.
    logs: logs::LogKeys,
}

type Entry<'t, 'i> = (
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
);

impl Parser<'_> {
    fn document(&self) -> Result<Config, ConfigError> {
        let root = DeTable::parse(self.source).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            // The parser's message may run over several lines, and may quote
            // the text it stumbled on, control characters and all; ours may
            // hold neither.
            let mut message = String::new();
            for word in e.message().split_whitespace() {
                if !message.is_empty() {
                    message.push(' ');
                }
                for c in word.chars() {
                    if c.is_control() {
                        message.extend(c.escape_debug());
                    } else {
                        message.push(c);
                    }
                }
            }
            // "duplicate key" alone does not say which; the key is at the
            // span, as written (a header `[process.env]` can clash with an
            // `env = {..}` far above it).
            if message == "duplicate key" {
                if let Some(key) = self.source.get(span.clone()).filter(|k| !k.is_empty()) {
                    message.push_str(&format!(" `{}`", escape_for_message(key.as_bytes())));
                }
            }
            self.error(span, format!("invalid TOML: {message}"))
        })?;
        let mut settings = Settings::default();
        let mut min_span = None;
        let mut max_span = None;
        let mut processes = Vec::new();
        let mut control = ControlConfig::default();
        let mut container = false;
        let mut log_keys = logs::LogKeys::default();
        for (key, value) in in_file_order(root.get_ref()) {
            match key.get_ref().as_ref() {
                "threshold" => settings.threshold = self.seconds("threshold", value)?,
                "killtime" => settings.kill_time = self.seconds("killtime", value)?,
                "minrestartdelay" => {
                    settings.min_restart_delay = self.seconds("minrestartdelay", value)?;
                    min_span = Some(value.span());
                }
                "maxrestartdelay" => {
                    settings.max_restart_delay = self.seconds("maxrestartdelay", value)?;
                    max_span = Some(value.span());
                }
                "linelimit" => settings.line_limit_bytes = self.line_limit(value)?,
                "process" => processes = self.processes(value)?,
                "control" => control = self.control(value)?,
                "container" => container = self.container(value)?,
                other if self.log_key(&mut log_keys, other, value, true)? => {}
                other => return Err(self.unknown_key(key, other, "at the top level", TOP_KEYS)),
            }
        }
        // The core's rules, at the place they are about: the globals first,
        // then each process's delays, which may inherit a global.
        if let Err(error) = settings.validate() {
            let span = min_span.or(max_span).unwrap_or(0..0);
            return Err(self.error(span, self.settings_message(&error, false, false)));
        }
        for (process, spans) in &processes {
            if let Err(error) = process.spec.policy.check(&settings) {
                let policy = &process.spec.policy;
                let span = spans
                    .min
                    .clone()
                    .or(spans.max.clone())
                    .unwrap_or(spans.table.clone());
                let message = self.settings_message(
                    &error,
                    policy.min_restart_delay.is_none(),
                    policy.max_restart_delay.is_none(),
                );
                return Err(self.error(span, message));
            }
        }
        if processes.is_empty() {
            return Err(self.error(
                0..0,
                "no `[[process]]` table: define at least one process with `name` and `argv`"
                    .to_string(),
            ));
        }
        self.dependencies(&settings, &processes)?;
        let named: Vec<_> = processes
            .iter()
            .map(|(process, spans)| (process.name.as_str(), spans.name.clone(), &spans.logs))
            .collect();
        let logs = self.log_config(&log_keys, &named)?;
        Ok(Config {
            file_name: self.file_name.to_string(),
            settings,
            processes: processes.into_iter().map(|(process, _)| process).collect(),
            control,
            container,
            logs,
        })
    }

    /// Every `after` names a defined process, and none closes a cycle: the
    /// core's rule ([`Definitions::check`]), pointed at the place.
    fn dependencies(
        &self,
        settings: &Settings,
        processes: &[(ProcessConfig, ProcessSpans)],
    ) -> Result<(), ConfigError> {
        let defined: BTreeMap<&str, ()> = processes
            .iter()
            .map(|(p, _)| (p.name.as_str(), ()))
            .collect();
        for (process, spans) in processes {
            for (dependency, span) in process.spec.after.iter().zip(&spans.dependencies) {
                if !defined.contains_key(dependency.name.as_str()) {
                    return Err(self.error(
                        span.clone(),
                        format!("`after`: no process named {:?} is defined", dependency.name),
                    ));
                }
            }
        }
        let definitions = Definitions {
            settings: settings.clone(),
            processes: processes
                .iter()
                .map(|(p, _)| (p.name.clone(), p.spec.clone()))
                .collect(),
        };
        if let Err(procmon_core::DefinitionsError::Add(AddError::DependencyCycle { name, cycle })) =
            definitions.check()
        {
            let span = processes
                .iter()
                .find(|(p, _)| p.name == name)
                .map_or(0..0, |(_, spans)| spans.after.clone());
            return Err(self.error(
                span,
                format!(
                    "`after` closes a cycle ({}): none of them could ever start",
                    cycle.join(" -> ")
                ),
            ));
        }
        Ok(())
    }

    /// The `[container]` table.
    fn container(&self, value: &Spanned<DeValue<'_>>) -> Result<bool, ConfigError> {
        let table = value
            .get_ref()
            .as_table()
            .ok_or_else(|| self.wrong_type(value, "`container` must be a table (`[container]`)"))?;
        let mut enabled = false;
        for (key, value) in in_file_order(table) {
            match key.get_ref().as_ref() {
                "enabled" => {
                    enabled = value
                        .get_ref()
                        .as_bool()
                        .ok_or_else(|| self.wrong_type(value, "`enabled` must be true or false"))?;
                }
                other => {
                    return Err(self.unknown_key(key, other, "in `[container]`", CONTAINER_KEYS))
                }
            }
        }
        Ok(enabled)
    }

    /// `ready`: "notify", "fd:N", or `{ log = "TEXT" }`.
    fn readiness(&self, value: &Spanned<DeValue<'_>>) -> Result<Readiness, ConfigError> {
        const EXPECTED: &str =
            "`ready` must be \"notify\", \"fd:N\" (N from 3 to 1023) or { log = \"TEXT\" }";
        if let Some(table) = value.get_ref().as_table() {
            let mut text = None;
            for (key, entry) in in_file_order(table) {
                match key.get_ref().as_ref() {
                    "log" => text = Some(self.string("ready.log", entry)?),
                    other => return Err(self.unknown_key(key, other, "in `ready`", &["log"])),
                }
            }
            return match text {
                Some(text) if !text.is_empty() => Ok(Readiness::LogLine(text.as_bytes().to_vec())),
                _ => Err(self.error(
                    value.span(),
                    "`ready.log` must be a text that is not empty".to_string(),
                )),
            };
        }
        let text = value
            .get_ref()
            .as_str()
            .ok_or_else(|| self.wrong_type(value, EXPECTED))?;
        if text == "notify" {
            return Ok(Readiness::Notify);
        }
        let fd = text
            .strip_prefix("fd:")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (3..=1023).contains(n));
        match fd {
            Some(fd) => Ok(Readiness::Fd(fd)),
            None => Err(self.error(value.span(), format!("{EXPECTED}, found {text:?}"))),
        }
    }

    /// `after`: a table of process names and conditions.
    fn after(
        &self,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<(Vec<Dependency>, Vec<Span>), ConfigError> {
        let table = value.get_ref().as_table().ok_or_else(|| {
            self.wrong_type(
                value,
                "`after` must be a table of process names and conditions, as { db = \"ready\" }",
            )
        })?;
        let mut dependencies = Vec::new();
        let mut spans = Vec::new();
        for (key, condition) in in_file_order(table) {
            let name = key.get_ref().to_string();
            // The key is the user's text: escaped, as `env`'s keys are, so
            // that a message stays one line.
            let shown = escape_for_message(name.as_bytes());
            let text = self.string(&format!("after.{shown}"), condition)?;
            let condition = Condition::from_name(text).ok_or_else(|| {
                self.error(
                    condition.span(),
                    format!(
                        "`after.{shown}` must be \"started\", \"ready\" or \"completed\", found {text:?}"
                    ),
                )
            })?;
            dependencies.push(Dependency { name, condition });
            spans.push(key.span());
        }
        Ok((dependencies, spans))
    }

    /// The `[control]` table.
    fn control(&self, value: &Spanned<DeValue<'_>>) -> Result<ControlConfig, ConfigError> {
        let table = value
            .get_ref()
            .as_table()
            .ok_or_else(|| self.wrong_type(value, "`control` must be a table (`[control]`)"))?;
        let mut control = ControlConfig::default();
        for (key, value) in in_file_order(table) {
            match key.get_ref().as_ref() {
                "socket" => {
                    let text = self.string("socket", value)?;
                    if text.is_empty() {
                        return Err(
                            self.error(value.span(), "`socket` must not be empty".to_string())
                        );
                    }
                    if text.contains('\0') {
                        return Err(
                            self.error(value.span(), "`socket` holds a NUL byte".to_string())
                        );
                    }
                    if let Some(problem) = socket_path_problem(text.as_bytes()) {
                        return Err(self.error(value.span(), format!("`socket` {problem}")));
                    }
                    control.socket = Some(text.into());
                }
                "allow_uids" => control.allow_uids = self.ids("allow_uids", value)?,
                "allow_gids" => control.allow_gids = self.ids("allow_gids", value)?,
                "log_lines" => {
                    control.log_lines =
                        Some(self.bounded("log_lines", "lines", MAX_LOG_LINES, value)?)
                }
                "log_bytes" => {
                    control.log_bytes =
                        Some(self.bounded("log_bytes", "bytes", MAX_LOG_BYTES, value)?)
                }
                "metrics_listen" => {
                    let text = self.string("metrics_listen", value)?;
                    let address: std::net::SocketAddr = text.parse().map_err(|_| {
                        self.error(
                            value.span(),
                            format!(
                                "`metrics_listen` must be an IP address and port, as \
                                 \"127.0.0.1:9100\" or \"[::1]:9100\", found {text:?}"
                            ),
                        )
                    })?;
                    // Port 0 would be a port nobody is told of.
                    if address.port() == 0 {
                        return Err(self.error(
                            value.span(),
                            format!("`metrics_listen` needs a port other than 0, found {text:?}"),
                        ));
                    }
                    control.metrics_listen = Some(address);
                }
                other => return Err(self.unknown_key(key, other, "in `[control]`", CONTROL_KEYS)),
            }
        }
        Ok(control)
    }

    /// A whole number from 0 to `max`.
    fn bounded(
        &self,
        key: &str,
        unit: &str,
        max: usize,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<usize, ConfigError> {
        let int = value.get_ref().as_integer().ok_or_else(|| {
            self.wrong_type(value, &format!("`{key}` must be a whole number of {unit}"))
        })?;
        let text = int.as_str();
        match usize::from_str_radix(text, int.radix()) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(self.error(
                value.span(),
                format!("`{key}` must be from 0 to {max}, found {text}"),
            )),
        }
    }

    /// An array of user or group ids.
    fn ids(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<Vec<u32>, ConfigError> {
        let array = value.get_ref().as_array().ok_or_else(|| {
            self.wrong_type(value, &format!("`{key}` must be an array of numeric ids"))
        })?;
        array
            .iter()
            .map(|id| {
                let int = id.get_ref().as_integer().ok_or_else(|| {
                    self.wrong_type(id, &format!("`{key}` must hold only numeric ids"))
                })?;
                let text = int.as_str();
                u32::from_str_radix(text, int.radix()).map_err(|_| {
                    self.error(
                        id.span(),
                        format!("`{key}`: {text} is not an id (0 to {})", u32::MAX),
                    )
                })
            })
            .collect()
    }

    /// The message for settings the core refused, in the file's key names;
    /// `*_inherited` says a process takes that delay from the top level.
    fn settings_message(
        &self,
        error: &SettingsError,
        min_inherited: bool,
        max_inherited: bool,
    ) -> String {
        let from = |inherited: bool| if inherited { ", the global one" } else { "" };
        match error {
            SettingsError::MinAboveMax { min, max } => format!(
                "`minrestartdelay` ({} s{}) is above `maxrestartdelay` ({} s{})",
                Seconds(*min),
                from(min_inherited),
                Seconds(*max),
                from(max_inherited)
            ),
            other => other.to_string(),
        }
    }

    fn processes(
        &self,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Vec<(ProcessConfig, ProcessSpans)>, ConfigError> {
        let not_tables = || {
            self.error(
                value.span(),
                format!(
                    "`process` must be an array of tables (`[[process]]`), found {}",
                    value.get_ref().type_str()
                ),
            )
        };
        let array = value.get_ref().as_array().ok_or_else(not_tables)?;
        let mut first_seen: BTreeMap<String, Span> = BTreeMap::new();
        let mut processes = Vec::with_capacity(array.len());
        for item in array.iter() {
            // Point at the element that is not a table, not at the array.
            let table = item.get_ref().as_table().ok_or_else(|| {
                self.wrong_type(item, "`process` must hold only tables (`[[process]]`)")
            })?;
            let (process, spans) = self.process(item.span(), table)?;
            let name_span = spans.name.clone();
            if let Some(first) = first_seen.get(&process.name) {
                let (line, _) = self.line_column(first.start);
                return Err(self.error(
                    name_span,
                    format!(
                        "`name`: duplicate process name {:?} (first defined on line {line})",
                        process.name
                    ),
                ));
            }
            first_seen.insert(process.name.clone(), name_span);
            processes.push((process, spans));
        }
        Ok(processes)
    }

    /// One `[[process]]` table, and where it wrote what the core's rules
    /// may refuse.
    fn process(
        &self,
        table_span: Span,
        table: &DeTable<'_>,
    ) -> Result<(ProcessConfig, ProcessSpans), ConfigError> {
        let mut name = None;
        let mut argv = None;
        let mut env = Vec::new();
        let mut clear_env = false;
        let mut cwd = None;
        let mut user = None;
        let mut group = None;
        let mut policy = Policy::default();
        let mut retry_span = None;
        let mut ready = Readiness::Spawned;
        let mut ready_timeout_span = None;
        let mut after = Vec::new();
        let mut spans = ProcessSpans {
            table: table_span.clone(),
            ..ProcessSpans::default()
        };
        for (key, value) in in_file_order(table) {
            match key.get_ref().as_ref() {
                "name" => {
                    let text = self.string("name", value)?;
                    name = Some(text.to_string());
                    spans.name = value.span();
                }
                "argv" => {
                    let (args, arg_spans) = self.argv(value)?;
                    argv = Some(args);
                    spans.argv = value.span();
                    spans.args = arg_spans;
                }
                "env" => (env, spans.env) = self.env(value)?,
                "clear_env" => {
                    clear_env = value.get_ref().as_bool().ok_or_else(|| {
                        self.wrong_type(value, "`clear_env` must be true or false")
                    })?;
                }
                "cwd" => {
                    cwd = Some(self.string("cwd", value)?.as_bytes().to_vec());
                    spans.cwd = value.span();
                }
                "uid" => user = Some(self.user_ref("uid", "user", value)?),
                "gid" => group = Some(self.user_ref("gid", "group", value)?),
                "restart" => {
                    let text = self.string("restart", value)?;
                    let restart = RestartPolicy::from_name(text).ok_or_else(|| {
                        self.error(
                            value.span(),
                            format!(
                                "`restart` must be \"always\", \"on-failure\" or \"never\", found {text:?}"
                            ),
                        )
                    })?;
                    policy.restart = Some(restart);
                }
                "success_exit_codes" => policy.success_codes = Some(self.exit_codes(value)?),
                "stop_signal" => policy.stop_signal = Some(self.signal("stop_signal", value)?),
                "killtime" => policy.kill_time = Some(self.seconds("killtime", value)?),
                "threshold" => policy.threshold = Some(self.seconds("threshold", value)?),
                "minrestartdelay" => {
                    policy.min_restart_delay = Some(self.seconds("minrestartdelay", value)?);
                    spans.min = Some(value.span());
                }
                "maxrestartdelay" => {
                    policy.max_restart_delay = Some(self.seconds("maxrestartdelay", value)?);
                    spans.max = Some(value.span());
                }
                "give_up_after" => policy.give_up_after = Some(self.give_up_after(value)?),
                "retry_failed_after" => {
                    policy.retry_failed_after = Some(self.seconds("retry_failed_after", value)?);
                    retry_span = Some(value.span());
                }
                "ready" => {
                    ready = self.readiness(value)?;
                    spans.ready = value.span();
                }
                "ready_timeout" => {
                    let timeout = self.seconds("ready_timeout", value)?;
                    // The core's rule, asked of this value alone.
                    let mut alone = Policy::default();
                    alone.ready_timeout = Some(timeout);
                    if let Err(error) = alone.check(&Settings::default()) {
                        return Err(self.error(value.span(), error.to_string()));
                    }
                    policy.ready_timeout = Some(timeout);
                    ready_timeout_span = Some(value.span());
                }
                "after" => {
                    (after, spans.dependencies) = self.after(value)?;
                    spans.after = value.span();
                }
                "critical" => {
                    policy.critical = value.get_ref().as_bool().ok_or_else(|| {
                        self.wrong_type(value, "`critical` must be true or false")
                    })?;
                }
                other if self.log_key(&mut spans.logs, other, value, false)? => {}
                other => {
                    return Err(self.unknown_key(key, other, "in `[[process]]`", PROCESS_KEYS))
                }
            }
        }
        let missing = |key: &str| {
            self.error(
                table_span.clone(),
                format!("`[[process]]` is missing `{key}`"),
            )
        };
        let name = name.ok_or_else(|| missing("name"))?;
        let argv = argv.ok_or_else(|| missing("argv"))?;
        if let (Some(span), None) = (retry_span, policy.give_up_after) {
            // A process that never gives up is never `failed`: the retry
            // would never happen, which the writer cannot have meant.
            return Err(self.error(
                span,
                "`retry_failed_after` needs `give_up_after`: without it the process never gives up"
                    .to_string(),
            ));
        }
        if let (Some(span), Readiness::Spawned) = (ready_timeout_span, &ready) {
            // Ready at spawn, a process is never `starting`: the timeout
            // could never apply.
            return Err(self.error(
                span,
                "`ready_timeout` needs `ready`: without it the process is ready when spawned"
                    .to_string(),
            ));
        }
        let mut spec = ProcessSpec::new(argv)
            .with_clear_env(clear_env)
            .with_policy(policy)
            .with_ready(ready);
        spec.env = env;
        spec.cwd = cwd;
        spec.after = after;
        // The core's rules for a process, pointed at where the table broke
        // them: a process that could never start is refused here rather
        // than restarted for ever.
        spec.check(&name)
            .map_err(|error| self.spec_error(&error, &name, &spec, &spans))?;
        Ok((
            ProcessConfig {
                name,
                spec,
                user,
                group,
            },
            spans,
        ))
    }

    /// Turns the core's refusal of a process into a message at the value
    /// that broke the rule. Which argument or environment entry that is, the
    /// core is asked again entry by entry, so that the rules stay its own.
    fn spec_error(
        &self,
        error: &AddError,
        name: &str,
        spec: &ProcessSpec,
        spans: &ProcessSpans,
    ) -> ConfigError {
        let at = |span: &Span, message: String| self.error(span.clone(), message);
        // One entry alone, in an otherwise valid process.
        let refused = |probe: ProcessSpec| probe.check("probe").is_err();
        match error {
            AddError::InvalidName { .. } => at(
                &spans.name,
                format!("`name` {name:?} is empty or holds a control character"),
            ),
            AddError::EmptyArgv { .. } => at(
                &spans.argv,
                "`argv` must not be empty: it names the program to run".to_string(),
            ),
            AddError::EmptyProgram { .. } => at(
                spans.args.first().unwrap_or(&spans.argv),
                "`argv[0]` must not be empty: it names the program to run".to_string(),
            ),
            AddError::EmptyCwd { .. } => at(
                &spans.cwd,
                "`cwd` must not be empty: leave it out to stay in procmon's directory".to_string(),
            ),
            AddError::NulByte { field: "cwd", .. } => {
                at(&spans.cwd, "`cwd` holds a NUL character".to_string())
            }
            AddError::NulByte { field: "argv", .. } => {
                let culprit = spec
                    .argv
                    .iter()
                    .position(|arg| refused(ProcessSpec::new([b"probe".to_vec(), arg.clone()])));
                let span = culprit
                    .and_then(|i| spans.args.get(i))
                    .unwrap_or(&spans.argv);
                at(span, "`argv` holds a NUL character".to_string())
            }
            AddError::NulByte { .. } | AddError::InvalidEnvKey { .. } => {
                for ((key, value), (key_span, value_span)) in spec.env.iter().zip(&spans.env) {
                    let shown = escape_for_message(key);
                    if refused(ProcessSpec::new(["probe"]).with_env(key.clone(), "")) {
                        return at(
                            key_span,
                            format!("`env` key \"{shown}\" is empty or holds '=' or NUL"),
                        );
                    }
                    if refused(ProcessSpec::new(["probe"]).with_env("K", value.clone())) {
                        return at(value_span, format!("`env.{shown}` holds a NUL character"));
                    }
                }
                at(&spans.table, error.to_string())
            }
            AddError::InvalidReadiness { .. } => at(&spans.ready, error.to_string()),
            AddError::InvalidDependency { dependency, .. } => {
                let position = spec.after.iter().position(|d| d.name == *dependency);
                let span = position
                    .and_then(|i| spans.dependencies.get(i))
                    .unwrap_or(&spans.after);
                at(
                    span,
                    format!("`after` names {dependency:?}, the process itself"),
                )
            }
            other => at(&spans.table, other.to_string()),
        }
    }

    /// The arguments, and the span of each.
    fn argv(&self, value: &Spanned<DeValue<'_>>) -> Result<(Vec<Vec<u8>>, Vec<Span>), ConfigError> {
        let array = value
            .get_ref()
            .as_array()
            .ok_or_else(|| self.wrong_type(value, "`argv` must be an array of strings"))?;
        array
            .iter()
            .map(|arg| {
                let text = arg
                    .get_ref()
                    .as_str()
                    .ok_or_else(|| self.wrong_type(arg, "`argv` must hold only strings"))?;
                Ok((text.as_bytes().to_vec(), arg.span()))
            })
            .collect()
    }

    /// The entries, and the spans of each key and value.
    fn env(
        &self,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<(Vec<EnvEntry>, Vec<EnvSpans>), ConfigError> {
        let table = value
            .get_ref()
            .as_table()
            .ok_or_else(|| self.wrong_type(value, "`env` must be a table of strings"))?;
        let mut env = Vec::with_capacity(table.len());
        let mut spans = Vec::with_capacity(table.len());
        for (key, entry) in in_file_order(table) {
            let name: &str = key.get_ref();
            let shown = escape_for_message(name.as_bytes());
            let text = entry.get_ref().as_str().ok_or_else(|| {
                self.wrong_type(entry, &format!("`env.{shown}` must be a string"))
            })?;
            env.push((name.as_bytes().to_vec(), text.as_bytes().to_vec()));
            spans.push((key.span(), entry.span()));
        }
        Ok((env, spans))
    }

    /// `success_exit_codes`: whole numbers 0 to 255.
    fn exit_codes(&self, value: &Spanned<DeValue<'_>>) -> Result<ExitCodes, ConfigError> {
        let array = value.get_ref().as_array().ok_or_else(|| {
            self.wrong_type(
                value,
                "`success_exit_codes` must be an array of exit codes (0 to 255)",
            )
        })?;
        array
            .iter()
            .map(|code| {
                let int = code.get_ref().as_integer().ok_or_else(|| {
                    self.wrong_type(code, "`success_exit_codes` must hold only whole numbers")
                })?;
                let text = int.as_str();
                u8::from_str_radix(text, int.radix()).map_err(|_| {
                    self.error(
                        code.span(),
                        format!("`success_exit_codes`: {text} is not an exit code (0 to 255)"),
                    )
                })
            })
            .collect()
    }

    /// A signal name, with or without `SIG`, as the core knows them.
    fn signal(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<Signal, ConfigError> {
        let text = self.string(key, value)?;
        Signal::from_name(text).ok_or_else(|| {
            let names: Vec<&str> = Signal::ALL.iter().map(|s| s.as_str()).collect();
            self.error(
                value.span(),
                format!(
                    "`{key}` {text:?} is not a signal procmon can send (one of: {}, with or without SIG)",
                    names.join(", ")
                ),
            )
        })
    }

    /// `give_up_after`: a whole number of quick deaths, at least 1.
    fn give_up_after(&self, value: &Spanned<DeValue<'_>>) -> Result<NonZeroU32, ConfigError> {
        let int = value.get_ref().as_integer().ok_or_else(|| {
            self.wrong_type(
                value,
                "`give_up_after` must be a whole number of quick deaths",
            )
        })?;
        let text = int.as_str();
        match u32::from_str_radix(text, int.radix()).map(NonZeroU32::new) {
            Ok(Some(count)) => Ok(count),
            Ok(None) => Err(self.error(
                value.span(),
                format!("`give_up_after` must be at least 1, found {text}"),
            )),
            Err(_) if text.starts_with('-') => Err(self.error(
                value.span(),
                format!("`give_up_after` must be at least 1, found {text}"),
            )),
            Err(_) => Err(self.error(
                value.span(),
                format!("`give_up_after` must be at most {}, found {text}", u32::MAX),
            )),
        }
    }

    fn user_ref(
        &self,
        key: &str,
        kind: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Located<UserRef>, ConfigError> {
        let invalid = |shown: &dyn fmt::Display| {
            self.error(
                value.span(),
                format!("`{key}` {shown} is not a valid {kind} id"),
            )
        };
        // -1 (u32::MAX) is no id: to setuid and setgid it means "no change".
        let id = |text: &str, radix| {
            u32::from_str_radix(text, radix)
                .ok()
                .filter(|&id| id != u32::MAX)
        };
        let reference = match value.get_ref() {
            DeValue::String(name) if name.is_empty() => {
                return Err(self.error(
                    value.span(),
                    format!("`{key}` must not be empty: give a {kind} name or a numeric id"),
                ))
            }
            // All digits is an id, with no lookup (as systemd's User= takes
            // it; chown would try it as a name first): the same on every
            // machine, and systemd and recent useradd refuse such names.
            DeValue::String(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                UserRef::Id(id(digits, 10).ok_or_else(|| invalid(&format_args!("{digits:?}")))?)
            }
            DeValue::String(name) => UserRef::Name(name.to_string()),
            DeValue::Integer(int) => {
                UserRef::Id(id(int.as_str(), int.radix()).ok_or_else(|| invalid(&int.as_str()))?)
            }
            _ => {
                return Err(self.wrong_type(
                    value,
                    &format!("`{key}` must be a {kind} name or a numeric id"),
                ))
            }
        };
        let (line, column) = self.line_column(value.span().start);
        Ok(Located {
            value: reference,
            line,
            column,
        })
    }

    fn seconds(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<Duration, ConfigError> {
        let (number, text) = match value.get_ref() {
            DeValue::Integer(int) => {
                let text = int.as_str();
                // Past i128 it is too large, or too negative: an infinity
                // of its sign, which `seconds_from_text` reports as such.
                let number = match i128::from_str_radix(text, int.radix()) {
                    Ok(i) => i as f64,
                    Err(_) if text.starts_with('-') => f64::NEG_INFINITY,
                    Err(_) => f64::INFINITY,
                };
                (number, text)
            }
            DeValue::Float(float) => (
                float.as_str().parse::<f64>().unwrap_or(f64::NAN),
                float.as_str(),
            ),
            _ => {
                return Err(self.wrong_type(value, &format!("`{key}` must be a number of seconds")))
            }
        };
        seconds_from_text(number, text)
            .map_err(|why| self.error(value.span(), format!("`{key}` {why}, found {text}")))
    }

    fn line_limit(&self, value: &Spanned<DeValue<'_>>) -> Result<usize, ConfigError> {
        let int = value
            .get_ref()
            .as_integer()
            .ok_or_else(|| self.wrong_type(value, "`linelimit` must be a whole number of bytes"))?;
        let text = int.as_str();
        let at_least_1 = || {
            self.error(
                value.span(),
                format!("`linelimit` must be at least 1 byte, found {text}"),
            )
        };
        let at_most = || {
            self.error(
                value.span(),
                format!(
                    "`linelimit` must be at most {MAX_LINE_LIMIT_BYTES} bytes ({} MiB), found {text}",
                    MAX_LINE_LIMIT_BYTES >> 20
                ),
            )
        };
        // Negative, or too large for a usize, is no limit at all; anything
        // else is the core's to judge.
        let bytes = match usize::from_str_radix(text, int.radix()) {
            Ok(bytes) => bytes,
            Err(_) if text.starts_with('-') => return Err(at_least_1()),
            Err(_) => return Err(at_most()),
        };
        match Settings::check_line_limit(bytes) {
            Ok(()) => Ok(bytes),
            Err(SettingsError::ZeroLineLimit) => Err(at_least_1()),
            Err(SettingsError::LineLimitTooLarge { .. }) => Err(at_most()),
            Err(other) => Err(self.error(value.span(), format!("`linelimit`: {other}"))),
        }
    }

    fn string<'v>(
        &self,
        key: &str,
        value: &'v Spanned<DeValue<'_>>,
    ) -> Result<&'v str, ConfigError> {
        value
            .get_ref()
            .as_str()
            .ok_or_else(|| self.wrong_type(value, &format!("`{key}` must be a string")))
    }

    fn unknown_key(
        &self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        name: &str,
        place: &str,
        allowed: &[&str],
    ) -> ConfigError {
        self.error(
            key.span(),
            format!(
                "unknown key `{}` {place} (expected one of: {})",
                escape_for_message(name.as_bytes()),
                allowed.join(", ")
            ),
        )
    }

    fn wrong_type(&self, value: &Spanned<DeValue<'_>>, expected: &str) -> ConfigError {
        self.error(
            value.span(),
            format!("{expected}, found {}", value.get_ref().type_str()),
        )
    }

    /// The 1-based line and character column of byte `offset`.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        self.lines.line_column(self.source, offset)
    }

    fn error(&self, span: Span, message: String) -> ConfigError {
        let (line, column) = self.line_column(span.start);
        ConfigError {
            file_name: self.file_name.to_string(),
            line,
            column,
            message,
        }
    }
}

/// A table's entries in the order they appear in the file, so the first
/// error reported is the first one a reader meets (the map is sorted by key).
fn in_file_order<'t, 'i>(table: &'t DeTable<'i>) -> Vec<Entry<'t, 'i>> {
    let mut entries: Vec<Entry<'t, 'i>> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// Converts seconds read from `text` into a duration, or says why not (the
/// text completes "`key` …"). Shared by the file and the command line.
///
/// A number too large for an `f64` (`1e400`, or an integer of forty digits)
/// reads as infinite; unless `text` spells infinity, it is reported as too
/// large (or negative), not as "not finite": the user wrote a finite number.
pub fn seconds_from_text(number: f64, text: &str) -> Result<Duration, &'static str> {
    if number.is_infinite() && !text.to_ascii_lowercase().contains("inf") {
        return Err(if number < 0.0 {
            "must not be negative"
        } else {
            "is too large"
        });
    }
    seconds_from_f64(number)
}

/// Converts seconds given as a number into a duration, or says why not
/// (the text completes "`key` …").
pub fn seconds_from_f64(seconds: f64) -> Result<Duration, &'static str> {
    if !seconds.is_finite() {
        return Err("must be a finite number of seconds");
    }
    if seconds < 0.0 {
        return Err("must not be negative");
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| "is too large")
}

/// Shows text from the user (a key, a file name) inside an error message,
/// so that the message stays one line of plain text: as `{:?}` shows a
/// string (control characters as `\n` or `\u{1b}`, `\` doubled so that no
/// escape can be forged) but without quotes, which the caller chooses, and
/// with bytes that are not UTF-8 as `\xHH`.
pub fn escape_for_message(bytes: &[u8]) -> String {
    let mut shown = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                // Unambiguous where they stand (inside backticks, or at the
                // start of a line): escaping them would only add noise.
                '"' | '\'' => shown.push(c),
                c => shown.extend(c.escape_debug()),
            }
        }
        for byte in chunk.invalid() {
            shown.push_str(&format!("\\x{byte:02x}"));
        }
    }
    shown
}

/// Where each line of a text starts, so that turning an offset into a line
/// does not scan the text from its start each time: a file of 25,000
/// processes asks once per process (each log file's place, each `uid`),
/// and a scan each time made loading it quadratic (over a minute).
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn new(source: &str) -> LineStarts {
        let after_newlines = source.match_indices('\n').map(|(i, _)| i + 1);
        LineStarts(std::iter::once(0).chain(after_newlines).collect())
    }

    /// The 1-based line and character column of byte `offset` in
    /// `source`, the text these are the line starts of.
    fn line_column(&self, source: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        // The lines that start at or before `offset`; the first starts at 0.
        let line = self.0.partition_point(|&start| start <= offset);
        let line_start = self.0[line - 1];
        let column = source[line_start..offset].chars().count() + 1;
        (line, column)
    }
}

/// The 1-based line and character column of byte `offset` in `source`.
#[cfg(test)]
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    LineStarts::new(source).line_column(source, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeAccounts;

    impl Accounts for FakeAccounts {
        fn user_id(&self, name: &str) -> std::io::Result<Option<u32>> {
            Ok((name == "alice").then_some(1000))
        }
        fn group_id(&self, name: &str) -> std::io::Result<Option<u32>> {
            Ok((name == "staff").then_some(50))
        }
    }

    fn error(source: &str) -> String {
        match parse(source, "f.toml").and_then(|c| c.resolve(&FakeAccounts)) {
            Ok(d) => panic!("accepted: {d:?}"),
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains('\n'), "multi-line error: {text}");
                text
            }
        }
    }

    /// Each source's error starts with its expected text.
    fn assert_errors<S: AsRef<str>>(cases: &[(S, &str)]) {
        for (source, want) in cases {
            let source = source.as_ref();
            let got = error(source);
            assert!(
                got.starts_with(want),
                "for {source:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn the_control_table_is_read_and_checked() {
        let process = "[[process]]\nname = \"a\"\nargv = [\"a\"]\n";
        let config = parse(
            &format!(
                "{process}[control]\nsocket = \"/run/x.sock\"\nallow_uids = [1000, 0x10]\n\
                 allow_gids = [27]\nlog_lines = 5\nlog_bytes = 100\n"
            ),
            "f.toml",
        )
        .unwrap();
        assert_eq!(
            config.control,
            ControlConfig {
                socket: Some("/run/x.sock".into()),
                allow_uids: vec![1000, 16],
                allow_gids: vec![27],
                log_lines: Some(5),
                log_bytes: Some(100),
                metrics_listen: None,
            }
        );
        assert_errors(&[
            (
                format!("{process}[control]\nlog_bytes = 67108865\n"),
                "f.toml:5:13: `log_bytes` must be from 0 to 67108864, found 67108865",
            ),
            (
                format!("{process}[control]\nlog_lines = -1\n"),
                "f.toml:5:13: `log_lines` must be from 0 to 1000000, found -1",
            ),
            (
                format!("{process}[control]\nsocket = \"\"\n"),
                "f.toml:5:10: `socket` must not be empty",
            ),
            (
                format!("{process}[control]\nallow_uids = [-3]\n"),
                "f.toml:5:15: `allow_uids`: -3 is not an id",
            ),
            (
                format!("{process}[control]\nsockt = \"x\"\n"),
                "f.toml:5:1: unknown key `sockt` in `[control]`",
            ),
            (
                format!("control = 3\n{process}"),
                "f.toml:1:11: `control` must be a table",
            ),
        ]);
    }

    #[test]
    fn full_file_gives_definitions() {
        let source = r#"
threshold = 2
killtime = 0.5
minrestartdelay = 0.25
maxrestartdelay = 8
linelimit = 100

[[process]]
name = "web"
argv = ["python3", "-m", "http.server"]
env = { B = "2", A = "1" }
clear_env = true
cwd = "/srv"
uid = "alice"
gid = "staff"

[[process]]
name = "ids"
argv = ["true"]
uid = 7
gid = 0x10
"#;
        let defs = parse(source, "f.toml")
            .unwrap()
            .resolve(&FakeAccounts)
            .unwrap();
        let s = &defs.settings;
        assert_eq!(s.threshold, Duration::from_secs(2));
        assert_eq!(s.kill_time, Duration::from_millis(500));
        assert_eq!(s.min_restart_delay, Duration::from_millis(250));
        assert_eq!(s.max_restart_delay, Duration::from_secs(8));
        assert_eq!(s.line_limit_bytes, 100);
        let (name, web) = &defs.processes[0];
        assert_eq!(name, "web");
        let expected = ProcessSpec::new(["python3", "-m", "http.server"])
            .with_env("B", "2")
            .with_env("A", "1")
            .with_clear_env(true)
            .with_cwd("/srv")
            .with_uid(1000)
            .with_gid(50);
        assert_eq!(web, &expected);
        let (name, ids) = &defs.processes[1];
        assert_eq!(name, "ids");
        assert_eq!((ids.uid, ids.gid), (Some(7), Some(16)));
    }

    const PROCESS: &str = "[[process]]\nname = \"a\"\nargv = [\"x\"]\n";

    #[test]
    fn metrics_listen_takes_ipv4_and_ipv6_socket_addresses() {
        let metrics = |value: &str| {
            parse(
                &format!("{PROCESS}[control]\nmetrics_listen = {value}\n"),
                "f.toml",
            )
            .map(|c| c.control.metrics_listen)
        };
        assert_eq!(
            metrics("\"127.0.0.1:9100\"").unwrap(),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert_eq!(
            metrics("\"[::1]:9100\"").unwrap(),
            Some("[::1]:9100".parse().unwrap())
        );
        let unset = parse(PROCESS, "f.toml").unwrap();
        assert_eq!(unset.control.metrics_listen, None);
        let refused =
            |value: &str| error(&format!("{PROCESS}[control]\nmetrics_listen = {value}\n"));
        for value in ["\"localhost:9100\"", "\"127.0.0.1\"", "\"\""] {
            let got = refused(value);
            assert!(
                got.starts_with("f.toml:5:18: `metrics_listen` must be an IP address and port"),
                "{got}"
            );
        }
        assert!(refused("9100").starts_with("f.toml:5:18: "));
        assert!(refused("\"127.0.0.1:0\"")
            .starts_with("f.toml:5:18: `metrics_listen` needs a port other than 0"));
    }

    #[test]
    fn demo_file_parses() {
        let source = include_str!("../../../examples/demo.toml");
        let config = parse(source, "demo.toml").unwrap();
        let names: Vec<_> = config.processes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["ticker", "crasher", "partial", "grumbler", "stubborn"]
        );
        assert_eq!(
            config.settings.min_restart_delay,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn stack_file_parses_in_dependency_order() {
        let source = include_str!("../../../examples/stack.toml");
        let config = parse(source, "stack.toml").expect("examples/stack.toml is valid");
        let names: Vec<&str> = config.processes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["db", "migrate", "web"]);
        let web = &config.processes[2].spec;
        assert_eq!(web.ready, Readiness::Fd(3));
        assert_eq!(web.after.len(), 2);
        assert!(web.policy.critical);
    }

    #[test]
    fn policies_file_sets_what_its_comments_say() {
        let source = include_str!("../../../examples/policies.toml");
        let defs = parse(source, "policies.toml")
            .unwrap()
            .resolve(&FakeAccounts)
            .unwrap();
        let policy = |name: &str| {
            let (_, spec) = defs.processes.iter().find(|(n, _)| n == name).unwrap();
            spec.policy
        };
        assert_eq!(policy("tidy").restart(), RestartPolicy::OnFailure);
        assert_eq!(policy("flaky").restart(), RestartPolicy::OnFailure);
        assert!(!policy("flaky").success_codes().contains(1));
        assert_eq!(policy("oneshot").restart(), RestartPolicy::Never);
        assert_eq!(policy("hopeless").give_up_after, NonZeroU32::new(3));
        assert_eq!(policy("graceful").stop_signal(), Signal::Int);
        assert_eq!(
            policy("stubborn").kill_time(&defs.settings),
            Duration::from_secs(2)
        );
        assert!(defs.settings.kill_time > Duration::from_secs(2));
    }

    #[test]
    fn defaults_are_twisteds() {
        let config = parse("[[process]]\nname = \"a\"\nargv = [\"true\"]\n", "f").unwrap();
        assert_eq!(config.settings, Settings::default());
        assert_eq!(config.processes[0].user, None);
    }

    #[test]
    fn each_error_names_place_and_key() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let cases: &[(String, &str)] = &[
            (
                format!("colour = 1\n{p}"),
                "f.toml:1:1: unknown key `colour` at the top level",
            ),
            (
                format!("{p}nmae = \"x\"\n"),
                "f.toml:4:1: unknown key `nmae` in `[[process]]`",
            ),
            (
                format!("threshold = \"1\"\n{p}"),
                "f.toml:1:13: `threshold` must be a number of seconds, found string",
            ),
            (
                format!("killtime = -1\n{p}"),
                "f.toml:1:12: `killtime` must not be negative, found -1",
            ),
            (
                format!("killtime = nan\n{p}"),
                "f.toml:1:12: `killtime` must be a finite number of seconds, found nan",
            ),
            (
                format!("killtime = inf\n{p}"),
                "f.toml:1:12: `killtime` must be a finite number of seconds",
            ),
            (
                format!("minrestartdelay = 10\nmaxrestartdelay = 2\n{p}"),
                "f.toml:1:19: `minrestartdelay` (10 s) is above `maxrestartdelay` (2 s)",
            ),
            (
                format!("maxrestartdelay = 0.5\n{p}"),
                "f.toml:1:19: `minrestartdelay` (1 s) is above `maxrestartdelay` (0.5 s)",
            ),
            (
                format!("{p}{p}"),
                "f.toml:5:8: `name`: duplicate process name \"a\" (first defined on line 2)",
            ),
            (
                "[[process]]\nname = \"a\"\nargv = []\n".into(),
                "f.toml:3:8: `argv` must not be empty",
            ),
            (
                "[[process]]\nname = \"a\"\nargv = \"true\"\n".into(),
                "f.toml:3:8: `argv` must be an array of strings, found string",
            ),
            (
                "[[process]]\nname = \"a\"\nargv = [\"x\", 1]\n".into(),
                "f.toml:3:14: `argv` must hold only strings, found integer",
            ),
            (
                "[[process]]\nargv = [\"true\"]\n".into(),
                "f.toml:1:1: `[[process]]` is missing `name`",
            ),
            (
                "[[process]]\nname = \"\"\nargv = [\"true\"]\n".into(),
                "f.toml:2:8: `name` \"\" is empty",
            ),
            (
                format!("{p}uid = \"bob\"\n"),
                "f.toml:4:7: `uid`: unknown user \"bob\"",
            ),
            (
                format!("{p}gid = \"wheel\"\n"),
                "f.toml:4:7: `gid`: unknown group \"wheel\"",
            ),
            (
                format!("{p}uid = -3\n"),
                "f.toml:4:7: `uid` -3 is not a valid user id",
            ),
            (
                format!("{p}uid = true\n"),
                "f.toml:4:7: `uid` must be a user name or a numeric id, found boolean",
            ),
            (
                format!("{p}env = {{ \"A=B\" = \"x\" }}\n"),
                "f.toml:4:9: `env` key \"A=B\" is empty",
            ),
            (
                format!("{p}env = {{ A = 1 }}\n"),
                "f.toml:4:13: `env.A` must be a string, found integer",
            ),
            (
                format!("{p}cwd = \"a\\u0000b\"\n"),
                "f.toml:4:7: `cwd` holds a NUL character",
            ),
            (
                format!("{p}clear_env = \"yes\"\n"),
                "f.toml:4:13: `clear_env` must be true or false",
            ),
            (
                format!("linelimit = 0\n{p}"),
                "f.toml:1:13: `linelimit` must be at least 1 byte",
            ),
            (
                "process = 3\n".into(),
                "f.toml:1:11: `process` must be an array of tables",
            ),
            (
                "threshold = 1\n".into(),
                "f.toml:1:1: no `[[process]]` table",
            ),
            ("threshold = = 1\n".into(), "f.toml:1:13: invalid TOML"),
            (format!("{p}name = \"b\"\n"), "f.toml:4:1: invalid TOML"),
        ];
        assert_errors(cases);
    }

    /// Every error is one line without control characters, whatever the
    /// file holds: user text (keys, env names) is shown escaped.
    #[test]
    fn user_text_in_errors_is_escaped_onto_one_line() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let cases: &[(String, &str)] = &[
            (
                format!("\"evil\\nkey\\u001b[31m\" = 1\n{p}"),
                "f.toml:1:1: unknown key `evil\\nkey\\u{1b}[31m` at the top level",
            ),
            (
                format!("{p}\"a\\tb\\\\\" = 1\n"),
                "f.toml:4:1: unknown key `a\\tb\\\\` in `[[process]]`",
            ),
            (
                format!("{p}env = {{ \"a\\nb\" = 1 }}\n"),
                "f.toml:4:18: `env.a\\nb` must be a string, found integer",
            ),
            (
                format!("{p}env = {{ \"a\\u001bb\" = \"x\\u0000\" }}\n"),
                "f.toml:4:22: `env.a\\u{1b}b` holds a NUL character",
            ),
            (format!("{p}a\u{1b}b = 1\n"), "f.toml:4:2: invalid TOML: "),
            (
                format!("{p}x = \"a\u{1b}\u{7f}\"\n"),
                "f.toml:4:7: invalid TOML: ",
            ),
        ];
        for (source, _) in cases {
            let got = error(source);
            assert!(!got.chars().any(char::is_control), "{got:?}");
        }
        assert_errors(cases);
    }

    #[test]
    fn escaping_for_messages() {
        assert_eq!(escape_for_message(b"plain/path.toml"), "plain/path.toml");
        assert_eq!(escape_for_message(b"nl\nname.toml"), "nl\\nname.toml");
        assert_eq!(escape_for_message(b"\x1b[31m\x7f"), "\\u{1b}[31m\\u{7f}");
        assert_eq!(escape_for_message(b"a\\b\"c'd"), "a\\\\b\"c'd");
        assert_eq!(escape_for_message(b"bad\xff\xfe"), "bad\\xff\\xfe");
        assert_eq!(escape_for_message("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }

    #[test]
    fn read_source_takes_regular_files_only() {
        let dir = std::env::temp_dir().join(format!("procmon-read-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("text.toml");
        std::fs::write(&text, b"a = 1\nb = \"\xc3\xa9\xff\"\n").unwrap();
        assert_eq!(
            read_source(&text, "t"),
            Err("t:2:7: the file is not UTF-8 text".to_string())
        );
        std::fs::write(&text, "a = 1\n").unwrap();
        assert_eq!(read_source(&text, "t"), Ok("a = 1\n".to_string()));
        assert_eq!(
            read_source(&dir, "d"),
            Err("d: is a directory, not a regular file".to_string())
        );
        assert_eq!(
            read_source(Path::new("/dev/null"), "n"),
            Err("n: is a character device, not a regular file".to_string())
        );
        let big = std::fs::File::create(&text).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert_eq!(
            read_source(&text, "t"),
            Err("t: is 1048577 bytes, more than the 1 MiB a config file may be".to_string())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn out_of_range_numbers_say_what_is_wrong() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let cases: &[(String, &str)] = &[
            (
                format!("killtime = 99999999999999999999999999999999999999999\n{p}"),
                "f.toml:1:12: `killtime` is too large, found 99999999999999999999999999999999999999999",
            ),
            (
                format!("killtime = -99999999999999999999999999999999999999999\n{p}"),
                "f.toml:1:12: `killtime` must not be negative",
            ),
            (
                format!("threshold = 1e400\n{p}"),
                "f.toml:1:13: `threshold` is too large, found 1e400",
            ),
            (
                format!("threshold = 1e30\n{p}"),
                "f.toml:1:13: `threshold` is too large, found 1e30",
            ),
            (
                format!("threshold = -1e400\n{p}"),
                "f.toml:1:13: `threshold` must not be negative",
            ),
            (
                "process = [{name=\"a\", argv=[\"true\"]}, 3]\n".into(),
                "f.toml:1:39: `process` must hold only tables (`[[process]]`), found integer",
            ),
            (
                format!("{p}uid = \"\"\n"),
                "f.toml:4:7: `uid` must not be empty: give a user name or a numeric id",
            ),
            (
                format!("{p}gid = \"\"\n"),
                "f.toml:4:7: `gid` must not be empty: give a group name or a numeric id",
            ),
            (
                format!("{p}uid = \"4294967295\"\n"),
                "f.toml:4:7: `uid` \"4294967295\" is not a valid user id",
            ),
            (
                format!("{p}gid = \"99999999999\"\n"),
                "f.toml:4:7: `gid` \"99999999999\" is not a valid group id",
            ),
        ];
        assert_errors(cases);
    }

    #[test]
    fn line_limit_is_between_1_byte_and_64_mib() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let cases: &[(&str, &str)] = &[
            (
                "99999999999999999999",
                "f.toml:1:13: `linelimit` must be at most 67108864 bytes (64 MiB), found 99999999999999999999",
            ),
            (
                "67108865",
                "f.toml:1:13: `linelimit` must be at most 67108864 bytes (64 MiB), found 67108865",
            ),
            (
                "0x8000000000000000",
                "f.toml:1:13: `linelimit` must be at most 67108864 bytes (64 MiB), found 8000000000000000",
            ),
            (
                "-5",
                "f.toml:1:13: `linelimit` must be at least 1 byte, found -5",
            ),
            (
                "-99999999999999999999",
                "f.toml:1:13: `linelimit` must be at least 1 byte, found -99999999999999999999",
            ),
        ];
        for (limit, want) in cases {
            let got = error(&format!("linelimit = {limit}\n{p}"));
            assert!(
                got.starts_with(want),
                "for {limit}\n got: {got}\nwant: {want}"
            );
        }
        let source = format!("linelimit = 67108864\n{p}");
        let config = parse(&source, "f").unwrap();
        assert_eq!(config.settings.line_limit_bytes, MAX_LINE_LIMIT_BYTES);
        assert_eq!(MAX_LINE_LIMIT_BYTES, 64 << 20);
    }

    #[test]
    fn a_string_of_digits_is_a_numeric_id() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let source = format!("{p}uid = \"0\"\ngid = \"0050\"\n");
        let defs = parse(&source, "f").unwrap().resolve(&FakeAccounts).unwrap();
        assert_eq!(
            (defs.processes[0].1.uid, defs.processes[0].1.gid),
            (Some(0), Some(50))
        );
        // Anything else is a name, looked up.
        let source = format!("{p}uid = \"1e3\"\n");
        assert!(error(&source).starts_with("f.toml:4:7: `uid`: unknown user \"1e3\""));
    }

    #[test]
    fn configs_that_could_never_start_are_refused() {
        let cases: &[(&str, &str)] = &[
            (
                "[[process]]\nname = \"a\"\nargv = [\"true\"]\ncwd = \"\"\n",
                "f.toml:4:7: `cwd` must not be empty",
            ),
            (
                "[[process]]\nname = \"a\"\nargv = [\"\", \"x\"]\n",
                "f.toml:3:9: `argv[0]` must not be empty: it names the program to run",
            ),
        ];
        assert_errors(cases);
        // Empty arguments after the program are fine.
        let source = "[[process]]\nname = \"a\"\nargv = [\"echo\", \"\"]\n";
        assert!(parse(source, "f").is_ok());
    }

    #[test]
    fn process_policy_keys_give_the_policy() {
        let source = r#"
killtime = 9
[[process]]
name = "web"
argv = ["true"]
restart = "on-failure"
success_exit_codes = [0, 3, 255]
stop_signal = "SIGINT"
killtime = 0.5
threshold = 2
minrestartdelay = 0.25
maxrestartdelay = 30
give_up_after = 5
retry_failed_after = 600

[[process]]
name = "plain"
argv = ["true"]
stop_signal = "WINCH"
restart = "never"
"#;
        let defs = parse(source, "f").unwrap().resolve(&FakeAccounts).unwrap();
        let web = &defs.processes[0].1.policy;
        assert_eq!(web.restart, Some(RestartPolicy::OnFailure));
        assert_eq!(
            web.success_codes,
            Some([0, 3, 255].into_iter().collect::<ExitCodes>())
        );
        assert_eq!(web.stop_signal, Some(Signal::Int));
        assert_eq!(web.kill_time, Some(Duration::from_millis(500)));
        assert_eq!(web.threshold, Some(Duration::from_secs(2)));
        assert_eq!(web.min_restart_delay, Some(Duration::from_millis(250)));
        assert_eq!(web.max_restart_delay, Some(Duration::from_secs(30)));
        assert_eq!(web.give_up_after, NonZeroU32::new(5));
        assert_eq!(web.retry_failed_after, Some(Duration::from_secs(600)));
        // The globals stay the defaults of what a process leaves out.
        assert_eq!(defs.settings.kill_time, Duration::from_secs(9));
        let plain = &defs.processes[1].1.policy;
        assert_eq!(plain.restart, Some(RestartPolicy::Never));
        assert_eq!(plain.stop_signal, Some(Signal::Winch));
        assert_eq!(plain.kill_time(&defs.settings), Duration::from_secs(9));
        assert_eq!(plain.give_up_after, None);
        // A monitor takes what the file gave.
        assert!(procmon_core::Monitor::from_definitions(defs).is_ok());
    }

    #[test]
    fn readiness_dependencies_and_container_are_read() {
        let config = parse(
            r#"
[container]
enabled = true

[[process]]
name = "db"
argv = ["db"]
ready = "notify"
ready_timeout = 30

[[process]]
name = "queue"
argv = ["queue"]
ready = "fd:3"

[[process]]
name = "cache"
argv = ["cache"]
ready = { log = "ready to accept" }

[[process]]
name = "web"
argv = ["web"]
after = { db = "ready", queue = "started", cache = "completed" }
critical = true
"#,
            "f.toml",
        )
        .unwrap();
        assert!(config.container);
        let spec = |name: &str| {
            config
                .processes
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.spec.clone())
                .unwrap()
        };
        assert_eq!(spec("db").ready, Readiness::Notify);
        assert_eq!(
            spec("db").policy.ready_timeout,
            Some(Duration::from_secs(30))
        );
        assert_eq!(spec("queue").ready, Readiness::Fd(3));
        assert_eq!(
            spec("cache").ready,
            Readiness::LogLine(b"ready to accept".to_vec())
        );
        let web = spec("web");
        assert!(web.policy.critical);
        let after: Vec<(&str, Condition)> = web
            .after
            .iter()
            .map(|d| (d.name.as_str(), d.condition))
            .collect();
        assert_eq!(
            after,
            [
                ("db", Condition::Ready),
                ("queue", Condition::Started),
                ("cache", Condition::Completed)
            ]
        );
        assert!(
            !parse("[[process]]\nname = \"a\"\nargv = [\"a\"]\n", "f.toml")
                .unwrap()
                .container
        );
    }

    #[test]
    fn bad_readiness_and_dependencies_are_located() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let b = "[[process]]\nname = \"b\"\nargv = [\"true\"]\n";
        let cases: &[(String, &str)] = &[
            (
                format!("{p}ready = \"fd:2\"\n"),
                "f.toml:4:9: `ready` must be \"notify\", \"fd:N\" (N from 3 to 1023) or { log = \"TEXT\" }, found \"fd:2\"",
            ),
            (
                format!("{p}ready = \"sometime\"\n"),
                "f.toml:4:9: `ready` must be \"notify\"",
            ),
            (
                format!("{p}ready = {{ log = \"\" }}\n"),
                "f.toml:4:9: `ready.log` must be a text that is not empty",
            ),
            (
                format!("{p}ready = {{ line = \"x\" }}\n"),
                "f.toml:4:11: unknown key `line` in `ready`",
            ),
            (
                format!("{p}ready_timeout = 5\n"),
                "f.toml:4:17: `ready_timeout` needs `ready`",
            ),
            (
                format!("{p}ready = \"notify\"\nready_timeout = 0\n"),
                "f.toml:5:17: ready_timeout must be more than 0",
            ),
            (
                format!("{p}after = {{ b = \"up\" }}\n{b}"),
                "f.toml:4:15: `after.b` must be \"started\", \"ready\" or \"completed\", found \"up\"",
            ),
            (
                format!("{p}after = {{ ghost = \"ready\" }}\n"),
                "f.toml:4:11: `after`: no process named \"ghost\" is defined",
            ),
            (
                format!("{p}after = {{ a = \"ready\" }}\n"),
                "f.toml:4:11: `after` names \"a\", the process itself",
            ),
            (
                format!("{p}after = {{ b = \"ready\" }}\n{b}after = {{ a = \"started\" }}\n"),
                "f.toml:4:9: `after` closes a cycle (a -> b -> a): none of them could ever start",
            ),
            (
                format!("{p}after = [\"b\"]\n{b}"),
                "f.toml:4:9: `after` must be a table of process names and conditions",
            ),
            (
                format!("{p}critical = 1\n"),
                "f.toml:4:12: `critical` must be true or false, found integer",
            ),
            (
                format!("[container]\nenable = true\n{p}"),
                "f.toml:2:1: unknown key `enable` in `[container]`",
            ),
        ];
        assert_errors(cases);
    }

    #[test]
    fn bad_policy_values_are_located() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let cases: &[(String, &str)] = &[
            (
                format!("{p}restart = \"sometimes\"\n"),
                "f.toml:4:11: `restart` must be \"always\", \"on-failure\" or \"never\", found \"sometimes\"",
            ),
            (
                format!("{p}restart = 1\n"),
                "f.toml:4:11: `restart` must be a string, found integer",
            ),
            (
                format!("{p}success_exit_codes = 0\n"),
                "f.toml:4:22: `success_exit_codes` must be an array of exit codes (0 to 255), found integer",
            ),
            (
                format!("{p}success_exit_codes = [0, 256]\n"),
                "f.toml:4:26: `success_exit_codes`: 256 is not an exit code (0 to 255)",
            ),
            (
                format!("{p}success_exit_codes = [-1]\n"),
                "f.toml:4:23: `success_exit_codes`: -1 is not an exit code (0 to 255)",
            ),
            (
                format!("{p}success_exit_codes = [\"0\"]\n"),
                "f.toml:4:23: `success_exit_codes` must hold only whole numbers, found string",
            ),
            (
                format!("{p}stop_signal = \"SIGFOO\"\n"),
                "f.toml:4:15: `stop_signal` \"SIGFOO\" is not a signal procmon can send (one of: HUP, INT, QUIT, KILL, USR1, USR2, TERM, ALRM, CONT, STOP, TSTP, WINCH, PIPE, with or without SIG)",
            ),
            (
                format!("{p}stop_signal = \"term\"\n"),
                "f.toml:4:15: `stop_signal` \"term\" is not a signal",
            ),
            (
                format!("{p}stop_signal = 15\n"),
                "f.toml:4:15: `stop_signal` must be a string, found integer",
            ),
            (
                format!("{p}killtime = -1\n"),
                "f.toml:4:12: `killtime` must not be negative, found -1",
            ),
            (
                format!("{p}threshold = nan\n"),
                "f.toml:4:13: `threshold` must be a finite number of seconds",
            ),
            (
                format!("{p}give_up_after = 0\n"),
                "f.toml:4:17: `give_up_after` must be at least 1, found 0",
            ),
            (
                format!("{p}give_up_after = -2\n"),
                "f.toml:4:17: `give_up_after` must be at least 1, found -2",
            ),
            (
                format!("{p}give_up_after = 4294967296\n"),
                "f.toml:4:17: `give_up_after` must be at most 4294967295, found 4294967296",
            ),
            (
                format!("{p}give_up_after = 1.5\n"),
                "f.toml:4:17: `give_up_after` must be a whole number of quick deaths, found float",
            ),
            (
                format!("{p}retry_failed_after = 1e400\n"),
                "f.toml:4:22: `retry_failed_after` is too large",
            ),
            (
                format!("{p}retry_failed_after = 60\n"),
                "f.toml:4:22: `retry_failed_after` needs `give_up_after`",
            ),
            (
                format!("{p}stopsignal = \"INT\"\n"),
                "f.toml:4:1: unknown key `stopsignal` in `[[process]]` (expected one of: name, argv, env, clear_env, cwd, uid, gid, restart, success_exit_codes, stop_signal, killtime, threshold, minrestartdelay, maxrestartdelay, give_up_after, retry_failed_after, ready, ready_timeout, after, critical, log_file, log_max_bytes, log_backups, log_stdout, log_file_mode, timestamps)",
            ),
        ];
        assert_errors(cases);
    }

    /// The core's rule, min <= max, holds for each process's own delays and
    /// for what it inherits; the error points at the process's own key.
    #[test]
    fn a_process_min_above_max_is_located_at_its_own_key() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let cases: &[(String, &str)] = &[
            (
                format!("{p}minrestartdelay = 5\nmaxrestartdelay = 2\n"),
                "f.toml:4:19: `minrestartdelay` (5 s) is above `maxrestartdelay` (2 s)",
            ),
            (
                format!("{p}maxrestartdelay = 0.5\n"),
                "f.toml:4:19: `minrestartdelay` (1 s, the global one) is above `maxrestartdelay` (0.5 s)",
            ),
            (
                format!("maxrestartdelay = 10\n{p}minrestartdelay = 11\n"),
                "f.toml:5:19: `minrestartdelay` (11 s) is above `maxrestartdelay` (10 s, the global one)",
            ),
            (
                // Written inline before the globals, still judged by them.
                "process = [{ name = \"a\", argv = [\"true\"], minrestartdelay = 7 }]\nmaxrestartdelay = 6\n".into(),
                "f.toml:1:61: `minrestartdelay` (7 s) is above `maxrestartdelay` (6 s, the global one)",
            ),
        ];
        assert_errors(cases);
        // Each within its own bounds is fine, whatever the globals.
        let source = format!("minrestartdelay = 100\nmaxrestartdelay = 200\n{p}minrestartdelay = 1\nmaxrestartdelay = 2\n");
        assert!(parse(&source, "f").is_ok());
    }

    #[test]
    fn nul_bytes_and_bad_env_keys_are_located_at_the_entry() {
        let p = "[[process]]\nname = \"a\"\n";
        let cases: &[(String, &str)] = &[
            (
                format!("{p}argv = [\"true\", \"ok\", \"a\\u0000b\"]\n"),
                "f.toml:3:23: `argv` holds a NUL character",
            ),
            (
                format!("{p}argv = [\"true\"]\nenv = {{ A = \"1\", \"\" = \"2\" }}\n"),
                "f.toml:4:18: `env` key \"\" is empty or holds '=' or NUL",
            ),
            (
                format!("{p}argv = [\"true\"]\nenv = {{ A = \"1\", B = \"x\\u0000\" }}\n"),
                "f.toml:4:22: `env.B` holds a NUL character",
            ),
            (
                format!("{p}argv = [\"true\"]\nenv = {{ \"a\\u0000\" = \"1\" }}\n"),
                "f.toml:4:9: `env` key \"a\\0\" is empty or holds '=' or NUL",
            ),
            (
                "[[process]]\nname = \"a\\u0007\"\nargv = [\"true\"]\n".into(),
                "f.toml:2:8: `name` \"a\\u{7}\" is empty or holds a control character",
            ),
        ];
        assert_errors(cases);
    }

    #[test]
    fn every_prefix_of_a_file_parses_or_gives_a_located_error() {
        // A cheap stand-in for the fuzzer: cut anywhere, never a panic, and
        // any error points inside the text.
        let source = include_str!("../../../examples/demo.toml");
        for end in (0..=source.len()).filter(|&i| source.is_char_boundary(i)) {
            let text = &source[..end];
            if let Err(e) = parse(text, "f") {
                assert!(e.line <= text.lines().count() + 1, "{e}");
                assert!(!e.message.contains('\n'), "{e}");
            }
        }
    }

    /// The parser says only "duplicate key"; which one is named too, as
    /// written, since a header such as `[process.env]` can clash with a
    /// key far above it.
    #[test]
    fn a_duplicate_key_is_named() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let cases: &[(String, &str)] = &[
            (
                format!("{p}name = \"b\"\n"),
                "f.toml:4:1: invalid TOML: duplicate key `name`",
            ),
            (
                format!("{p}env = {{ A = \"1\" }}\n[process.env]\nB = \"2\"\n"),
                "f.toml:5:10: invalid TOML: duplicate key `env`",
            ),
            (
                format!("{p}[control]\nsocket = \"x\"\n[control]\n"),
                "f.toml:6:2: invalid TOML: duplicate key `control`",
            ),
            (
                format!("{p}after = {{ b = \"ready\", \"b\" = \"started\" }}\n"),
                "f.toml:4:24: invalid TOML: duplicate key `\"b\"`",
            ),
            (
                format!("{p}env = {{ \"\\u001b\" = \"1\", \"\\u001b\" = \"2\" }}\n"),
                "f.toml:4:25: invalid TOML: duplicate key `\"\\\\u001b\"`",
            ),
        ];
        assert_errors(cases);
    }

    /// A dependency's name is the user's text; in a message it is escaped
    /// like any key, so that the error stays one line of plain text.
    #[test]
    fn a_dependency_name_with_control_characters_is_shown_escaped() {
        let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
        let cases: &[(String, &str)] = &[
            (
                format!("{p}after = {{ \"x\\ny\\u001b[31m\" = \"up\" }}\n"),
                "f.toml:4:30: `after.x\\ny\\u{1b}[31m` must be \"started\", \"ready\" or \"completed\", found \"up\"",
            ),
            (
                format!("{p}after = {{ \"x\\ny\" = 1 }}\n"),
                "f.toml:4:20: `after.x\\ny` must be a string, found integer",
            ),
        ];
        assert_errors(cases);
    }

    #[test]
    fn first_error_in_file_order_wins() {
        // Both keys are unknown; the map sorts "a" first but "z" comes first.
        let got = error("z = 1\na = 2\n");
        assert!(got.starts_with("f.toml:1:1: unknown key `z`"), "{got}");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_column("ab\né = 1", 7), (2, 4));
        assert_eq!(line_column("", 5), (1, 1));
    }

    /// The line index gives what counting from the start gives, at every
    /// offset: on a newline, past the end, inside a character.
    #[test]
    fn line_starts_agree_with_counting_from_the_start() {
        for source in ["", "\n", "a", "ab\né = 1\n\nxyz", "\n\né\n", "é"] {
            let lines = LineStarts::new(source);
            for offset in 0..source.len() + 3 {
                let mut at = offset.min(source.len());
                while !source.is_char_boundary(at) {
                    at -= 1;
                }
                let before = &source[..at];
                let line = before.matches('\n').count() + 1;
                let start = before.rfind('\n').map_or(0, |i| i + 1);
                let column = before[start..].chars().count() + 1;
                assert_eq!(
                    lines.line_column(source, offset),
                    (line, column),
                    "{source:?} at {offset}"
                );
            }
        }
    }

    #[test]
    fn seconds_reject_non_finite_and_negative() {
        assert_eq!(seconds_from_f64(1.5), Ok(Duration::from_millis(1500)));
        assert!(seconds_from_f64(-0.1).is_err());
        assert!(seconds_from_f64(f64::NAN).is_err());
        assert!(seconds_from_f64(f64::INFINITY).is_err());
        assert!(seconds_from_f64(1e30).is_err());
        assert_eq!(
            seconds_from_text(f64::INFINITY, "1e400"),
            Err("is too large")
        );
        assert_eq!(
            seconds_from_text(f64::NEG_INFINITY, "-1e400"),
            Err("must not be negative")
        );
        assert_eq!(
            seconds_from_text(f64::INFINITY, "+Infinity"),
            Err("must be a finite number of seconds")
        );
        assert_eq!(seconds_from_text(2.0, "2"), Ok(Duration::from_secs(2)));
    }
}
