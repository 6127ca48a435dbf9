//! The command line: options, and the definitions they describe.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use procmon_core::{
    AddError, Definitions, ProcessSpec, Seconds, Settings, SettingsError, MAX_LINE_LIMIT_BYTES,
};

use crate::output::LogFormat;
use crate::stamp::Timestamps;

/// Keep processes running: start each one, restart it when it dies (backing
/// off when it dies young), and stop them all cleanly on TERM, INT or QUIT.
///
/// Runs one COMMAND, as `twistd procmon COMMAND` does, or every process of a
/// TOML file given with --config.
#[derive(Debug, Parser)]
#[command(
    name = "procmon",
    version,
    override_usage = "procmon [OPTIONS] [--] COMMAND [ARGS]...\n       procmon [--log-format FORMAT] --config FILE",
    after_long_help = AFTER_HELP,
    after_help = "See `procmon --help` for the config file format, output and signals."
)]
pub struct Cli {
    /// Run the processes of this TOML file (see below) instead of COMMAND.
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "command",
        conflicts_with_all = ["command", "threshold", "killtime", "minrestartdelay", "maxrestartdelay", "line_limit"]
    )]
    pub config: Option<PathBuf>,

    /// A process that lives less than this many seconds died "instantly" and
    /// is restarted after a growing delay.
    #[arg(short, long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub threshold: Duration,

    /// Seconds between TERM and KILL when stopping a process.
    #[arg(short, long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub killtime: Duration,

    /// First restart delay after an instant death, in seconds; it doubles on
    /// each further instant death.
    #[arg(short, long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub minrestartdelay: Duration,

    /// Longest restart delay, in seconds.
    #[arg(short = 'M', long, value_name = "SECONDS", default_value = "3600", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub maxrestartdelay: Duration,

    /// Longest output line, in bytes (at most 67108864, 64 MiB); a longer
    /// line is logged in pieces. procmon may hold twice this for each
    /// process (a partial line per stream), plus 24 MiB in all.
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "65536",
        value_parser = parse_line_limit
    )]
    pub line_limit: usize,

    /// Serve the control socket (`procmon ctl`) at PATH. With --config it is
    /// served anyway, at `[control] socket`, $PROCMON_SOCKET or the default
    /// place (see `procmon ctl --help`); with a COMMAND only when this is
    /// given, so that many `procmon -- CMD` can run side by side.
    #[arg(
        long,
        value_name = "PATH",
        value_parser = OsStringValueParser::new().try_map(parse_socket_path)
    )]
    pub socket: Option<PathBuf>,

    /// Container mode, for a container's entrypoint: exit as soon as nothing
    /// is running and nothing is due (no restart, retry or start pending),
    /// with status 0 when every process ended well or on request and 1 if
    /// not (a `critical` process's own status when it ended); a second TERM
    /// KILLs everything at once, as a second INT does. Also `[container]
    /// enabled = true` in the config.
    #[arg(long)]
    pub container: bool,

    /// How to print children's lines (stdout) and procmon's events (stderr).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Put the time procmon read each child's line before it (rfc3339:
    /// 2026-12-06T06:21:33.123Z, UTC) or not (off), on stdout, in JSON and
    /// in log files, over the config's `timestamps`. Default: off on
    /// stdout, on in log files.
    #[arg(long, value_name = "WHEN", value_enum)]
    pub timestamps: Option<Timestamps>,

    /// The program to run and its arguments; the process is named after
    /// them, joined with spaces. Put `--` before it if it starts with `-`.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        num_args = 1..,
        required_unless_present = "config"
    )]
    pub command: Vec<OsString>,
}

const AFTER_HELP: &str = r#"Defaults are Twisted's: --threshold 1 --killtime 5 --minrestartdelay 1 --maxrestartdelay 3600.
Seconds may have decimals (0.5); negative, NaN and infinite values are refused.

OUTPUT
  Every line a child writes, to its stdout or its stderr, is printed on procmon's stdout
  as `[name] line` (bytes that are not UTF-8 shown as \xHH; each stream is split into
  lines on its own, so they never mix inside a line). A name that could be misread (one
  holding `[`, `]`, `"`, `\`, a control or bidi character, or with whitespace at either
  end) is shown quoted with escapes instead: `["fake] [other"] line`, `["evil\u{202e}"]`.
  procmon's own events go to stderr, names shown the same way:
    procmon: [name] spawned pid 123
    procmon: [name] exited with code 1 after 0.2 s (pid 123); restarting in 2 s
    procmon: [name] exited with code 0 after 3 s (pid 124); restart = "on-failure": not restarting
    procmon: [name] exited with code 1 after 0.1 s (pid 125); gave up after 5 quick deaths; retrying in 600 s
    procmon: [name] sending INT to pid 126 (stop_signal)
    procmon: [name] sending KILL to pid 126 after 10 s
  An end and what procmon does about it share a line; an end procmon asked for (its stop
  signal had been sent) says "when asked to stop".
  With --log-format json both are one JSON object per line instead:
    {"name":"web","stream":"stderr","line":"listening"}                    (stdout)
    {"event":"spawned","name":"web","pid":123}                             (stderr)
    {"event":"exited","name":"web","pid":123,"signal":"TERM","signo":15,"uptime":4.2,"on_request":true}
    {"event":"not_restarting","name":"web","reason":"policy","restart":"on-failure"}
    {"event":"gave_up","name":"web","quick_deaths":5,"retry_in":600}
  procmon never waits for whoever reads its stdout: if that reader falls behind, children
  wait on their own output instead, and signals, restarts and stops go on. Only a reader
  that is gone from stdout or stderr (EPIPE, as with `| head`) ends the run (exit status
  1). At exit procmon waits for its output while the reader keeps reading (giving up
  after 3 s without progress, or 30 s in all) and says on stderr what was not written.

OPERATING IT
  `procmon ctl status` (in another terminal) shows every process; `procmon ctl --help`
  lists the rest: start, stop (hold), restart, signal, reload, logs, watch, metrics,
  shutdown. With --config the control socket is served anyway; with a COMMAND, give
  --socket PATH. See docs/control.md.

SIGNALS
  TERM, INT, QUIT   stop every process (its stop_signal, TERM unless set, then KILL after
                    its kill time; a process only after those that name it in `after`
                    have ended) and exit 0
  INT again         KILL every process at once (TERM again too, in container mode)
  HUP               with --config: read the file again and apply what changed (as
                    `procmon ctl reload`); else stop every process and let each restart
  USR1              close and reopen every log file (for logrotate), if any; else ignored
  USR2              reported on stderr and otherwise ignored
  PIPE              ignored (a write to a reader that is gone fails instead)

CONFIG FILE (--config FILE)
  # Settings are optional (Twisted's defaults); seconds are integers or floats.
  threshold = 1
  killtime = 5
  minrestartdelay = 1
  maxrestartdelay = 3600
  linelimit = 65536             # bytes, at most 67108864 (64 MiB)

  [[process]]                   # one table per process
  name = "web"                  # required, unique
  argv = ["python3", "-m", "http.server", "8000"]   # required; the program not empty
  env = { PYTHONUNBUFFERED = "1" }                  # optional, added to procmon's own
  clear_env = false             # optional: start from an empty environment
  cwd = "/srv/www"              # optional, not empty
  uid = "www-data"              # optional, user name or number
  gid = 33                      # optional, group name or number

  # Optional, per process:
  restart = "on-failure"        # after it ends by itself: "always" (default),
                                #   "on-failure" (not after a success code), "never"
  success_exit_codes = [0, 3]   # what on-failure counts as success (default [0])
  stop_signal = "INT"           # sent to stop it instead of TERM (HUP INT QUIT KILL
                                #   USR1 USR2 TERM ALRM CONT STOP TSTP WINCH PIPE,
                                #   with or without SIG); CONT follows it
  killtime = 10                 # as the settings above, for this process only
  threshold = 2
  minrestartdelay = 0.5
  maxrestartdelay = 60
  give_up_after = 5             # after 5 quick deaths in a row (lives shorter
                                #   than threshold), stop restarting it
  retry_failed_after = 600      # then try again after 600 s (needs give_up_after)
  ready = "notify"              # `starting` until it says it is ready: "notify"
                                #   (sd_notify READY=1 on $NOTIFY_SOCKET), "fd:3" (a
                                #   newline on fd 3) or { log = "TEXT" } (an output
                                #   line holds TEXT); default: ready when spawned
  ready_timeout = 30            # not ready by then: stopped, a quick death
  after = { db = "ready", migrate = "completed" }   # start only once these hold:
                                #   "started", "ready" or "completed" (ended by
                                #   itself with a success code); stopped before them
  critical = true               # when it ends for good, stop everything and exit
                                #   with its status

  [container]                   # optional: as --container
  enabled = true

  # Optional log files (docs/logging.md); each key also at the top level, as
  # the default for every process, except log_file (top level: log_dir).
  log_file = "/var/log/web.log" # both streams: `TIME stdout LINE`, `TIME stderr LINE`
  log_max_bytes = 10485760      # rotate before a line would pass this (10 MiB)
  log_backups = 5               # keep web.log.1 .. web.log.5
  log_stdout = true             # lines also on procmon's stdout
  log_file_mode = "0640"        # of a file procmon creates
  timestamps = "rfc3339"        # or "off"; default: off on stdout, on in files
  # At the top level: log_dir = "/var/log/procmon" gives each process NAME.log.

  [control]                     # optional: the control socket (`procmon ctl`)
  socket = "/run/procmon/web.sock"   # default: --socket, $PROCMON_SOCKET, else
                                #   /run/procmon/procmon.sock (root) or $XDG_RUNTIME_DIR
  allow_uids = [1000]           # who may use it besides root and procmon's own user
  allow_gids = [27]             # primary groups allowed
  log_lines = 1000              # recent lines kept per process for `ctl logs`
  log_bytes = 1048576           # and at most this many bytes of them
  metrics_listen = "127.0.0.1:9100"  # serve GET /metrics (Prometheus text) over
                                #   HTTP; off unless set; anyone who can connect
                                #   may read it, so keep it on loopback

  A uid or gid written as a string of digits ("0") is that number, not a name.
  examples/stack.toml starts a stack in dependency order; docs/deployment.md covers
  systemd, containers and Kubernetes.

  `restart` judges only an end the process chose: after a stop by procmon, TERM and INT
  restart nothing, and HUP restarts by the usual delays (give_up_after still counts).
  See examples/policies.toml for each policy at work.

  With uid or gid, a child started by root has no supplementary groups: it
  runs with exactly the uid and gid given (the gid stays procmon's if only
  uid is given).

  An error in the file is reported as `procmon: FILE:LINE:COL: message` and nothing starts.

EXIT STATUS
  0 after a stop by signal, 1 on a runtime failure, 2 on a usage or config error.
  When a critical process ends for good: its exit code (128 + the signal's number if a
  signal ended it). In container mode, when nothing is left to run: 0 if every process
  ended with a success code or on request, 1 if not; a stop by signal: the same rule."#;

impl Cli {
    /// Parses the process's arguments with [`Cli::try_parse_checked`], or
    /// prints clap's message and exits (status 2; 0 for --help).
    pub fn parse_checked() -> Cli {
        Cli::try_parse_checked(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// Parses `args` (the program name first) as clap does, then checks what
    /// the option attributes cannot: that --minrestartdelay is not above
    /// --maxrestartdelay. Two of clap's messages are replaced by clearer
    /// ones that show the values and say which are defaults.
    pub fn try_parse_checked<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = Cli::command();
        let matches = match command.try_get_matches_from_mut(args) {
            Ok(matches) => matches,
            // Only --config and COMMAND are required, each unless the other
            // is given; clap would list both as if both were needed.
            Err(error) if error.kind() == ErrorKind::MissingRequiredArgument => {
                return Err(command.error(
                    ErrorKind::MissingRequiredArgument,
                    "nothing to run: give a COMMAND, or --config FILE",
                ));
            }
            Err(error) => return Err(error),
        };
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
        // The core's rules, in the command line's words.
        if let Err(SettingsError::MinAboveMax { min, max }) = cli.settings().validate() {
            // Either may be a default the user never typed: say so.
            let shown = |id: &str, value: Duration| {
                let default = matches.value_source(id) == Some(ValueSource::DefaultValue);
                let default = if default { ", the default" } else { "" };
                format!("{} s{default}", Seconds(value))
            };
            return Err(command.error(
                ErrorKind::ArgumentConflict,
                format!(
                    "--minrestartdelay ({}) is above --maxrestartdelay ({})",
                    shown("minrestartdelay", min),
                    shown("maxrestartdelay", max)
                ),
            ));
        }
        if !cli.command.is_empty() {
            let definitions = cli.command_definitions();
            let (name, spec) = &definitions.processes[0];
            if let Err(error) = spec.check(name) {
                // `procmon ""` and the like: nothing could ever run, and a
                // supervisor would back off for ever instead of saying so.
                let message = match error {
                    AddError::EmptyProgram { .. } => {
                        "COMMAND is the empty string: name the program to run".to_string()
                    }
                    other => format!("COMMAND: {other}"),
                };
                return Err(command.error(ErrorKind::InvalidValue, message));
            }
        }
        Ok(cli)
    }

    /// The settings given on the command line.
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings.threshold = self.threshold;
        settings.kill_time = self.killtime;
        settings.min_restart_delay = self.minrestartdelay;
        settings.max_restart_delay = self.maxrestartdelay;
        // clap refuses more than the maximum; clamp all the same, as the
        // fields are public and the limit is the memory bound.
        settings.line_limit_bytes = self.line_limit.min(MAX_LINE_LIMIT_BYTES);
        settings
    }

    /// The one process COMMAND describes, named as Twisted's procmontap
    /// names it, with the command line's settings.
    pub fn command_definitions(&self) -> Definitions {
        Definitions {
            settings: self.settings(),
            processes: vec![(
                command_name(&self.command),
                ProcessSpec::new(self.command.iter().map(|a| a.as_encoded_bytes())),
            )],
        }
    }
}

/// The process name for a command line: the arguments joined with spaces, as
/// procmontap does. Characters a name may not hold (control characters, bytes
/// that are not UTF-8) are written as escapes so that any command can run.
pub fn command_name(command: &[OsString]) -> String {
    let mut name = String::new();
    for (i, arg) in command.iter().enumerate() {
        if i > 0 {
            name.push(' ');
        }
        for chunk in arg.as_encoded_bytes().utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\n' => name.push_str("\\n"),
                    '\t' => name.push_str("\\t"),
                    c if c.is_control() => name.push_str(&format!("\\u{{{:x}}}", c as u32)),
                    c => name.push(c),
                }
            }
            for byte in chunk.invalid() {
                name.push_str(&format!("\\x{byte:02x}"));
            }
        }
    }
    if name.is_empty() {
        // An empty program name still needs a name to be logged under.
        name.push_str("\"\"");
    }
    name
}

/// Parses a line limit in bytes, refused unless the core's rule takes it.
pub fn parse_line_limit(text: &str) -> Result<usize, String> {
    let too_large = || format!("must be at most {MAX_LINE_LIMIT_BYTES} bytes (64 MiB)");
    let bytes: usize = match text.parse::<u64>() {
        Ok(bytes) => usize::try_from(bytes).map_err(|_| too_large())?,
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => return Err(too_large()),
        Err(_) => return Err(format!("{text:?} is not a whole number of bytes")),
    };
    Settings::check_line_limit(bytes).map_err(|error| match error {
        SettingsError::ZeroLineLimit => "must be at least 1 byte".to_string(),
        SettingsError::LineLimitTooLarge { .. } => too_large(),
        other => other.to_string(),
    })?;
    Ok(bytes)
}

/// Parses a control socket path, refused if it could never be bound.
pub fn parse_socket_path(text: OsString) -> Result<PathBuf, String> {
    match crate::config::socket_path_problem(text.as_encoded_bytes()) {
        Some(problem) => Err(problem),
        None => Ok(PathBuf::from(text)),
    }
}

/// Parses a number of seconds: decimals allowed; negative, NaN and infinite
/// values refused.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let number: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    crate::config::seconds_from_text(number, text).map_err(|why| format!("{text:?} {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("procmon").chain(args.iter().copied()))
    }

    #[test]
    fn command_with_options_and_twisted_defaults() {
        let cli = parse(&["-t", "2.5", "--", "sh", "-c", "echo hi"]).unwrap();
        let defs = cli.command_definitions();
        assert_eq!(defs.settings.threshold, Duration::from_millis(2500));
        assert_eq!(defs.settings.kill_time, Duration::from_secs(5));
        assert_eq!(defs.settings.min_restart_delay, Duration::from_secs(1));
        assert_eq!(defs.settings.max_restart_delay, Duration::from_secs(3600));
        assert_eq!(defs.settings.line_limit_bytes, 65536);
        assert_eq!(defs.processes[0].0, "sh -c echo hi");
        assert_eq!(
            defs.processes[0].1,
            ProcessSpec::new(["sh", "-c", "echo hi"])
        );
        assert_eq!(cli.log_format, LogFormat::Text);
    }

    #[test]
    fn command_without_separator_keeps_its_own_options() {
        let cli = parse(&["-k", "1", "sleep", "-t", "3"]).unwrap();
        assert_eq!(cli.killtime, Duration::from_secs(1));
        assert_eq!(cli.command, ["sleep", "-t", "3"]);
    }

    #[test]
    fn config_and_command_are_exclusive_and_one_is_required() {
        use clap::error::ErrorKind;
        assert_eq!(
            parse(&["--config", "f", "--", "sleep"]).unwrap_err().kind(),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            parse(&[]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse(&["--config", "f", "-k", "1"]).unwrap_err().kind(),
            ErrorKind::ArgumentConflict
        );
        assert!(parse(&["--config", "f", "--log-format", "json"]).is_ok());
    }

    fn checked(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_checked(std::iter::once("procmon").chain(args.iter().copied()))
    }

    #[test]
    fn min_above_max_shows_both_values_and_which_is_a_default() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["-M", "0.5", "true"],
                "--minrestartdelay (1 s, the default) is above --maxrestartdelay (0.5 s)",
            ),
            (
                &["-m", "4000", "true"],
                "--minrestartdelay (4000 s) is above --maxrestartdelay (3600 s, the default)",
            ),
            (
                &["-m", "5", "-M", "1.25", "true"],
                "--minrestartdelay (5 s) is above --maxrestartdelay (1.25 s)",
            ),
        ];
        for (args, want) in cases {
            let error = checked(args).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ArgumentConflict, "{args:?}");
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("error: {want}\n")),
                "{args:?}: {text}"
            );
        }
        let cli = checked(&["-m", "2", "-M", "2", "true"]).unwrap();
        assert_eq!(cli.command, ["true"]);
        // A config file's own limits are checked when it is read.
        assert!(checked(&["--config", "f"]).is_ok());
    }

    #[test]
    fn no_command_and_no_config_says_either_is_needed() {
        for args in [&["-k", "1"][..], &[]] {
            let error = checked(args).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
            let text = error.to_string();
            assert!(
                text.starts_with("error: nothing to run: give a COMMAND, or --config FILE\n"),
                "{text}"
            );
            assert!(text.contains("Usage: procmon"), "{text}");
        }
        // Other errors are clap's own.
        let error = checked(&["--log-format", "xml", "true"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidValue);
        let error = checked(&["--help"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::DisplayHelp);
    }

    #[test]
    fn bad_seconds_are_refused_clearly() {
        for bad in ["-1", "nan", "inf", "-inf", "abc", "1e400"] {
            let error = parse(&["-t", bad, "sleep"]).unwrap_err().to_string();
            assert!(error.contains("--threshold"), "{error}");
        }
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("NaN").unwrap_err().contains("finite"));
        assert!(parse_seconds("-3").unwrap_err().contains("negative"));
        // Finite as written, just too large for a duration or an f64.
        assert_eq!(parse_seconds("1e30"), Err("\"1e30\" is too large".into()));
        assert_eq!(parse_seconds("1e400"), Err("\"1e400\" is too large".into()));
        assert!(parse_seconds("-1e400").unwrap_err().contains("negative"));
        assert!(parse_seconds("inf").unwrap_err().contains("finite"));
        assert!(parse(&["--line-limit", "0", "sleep"]).is_err());
    }

    #[test]
    fn line_limit_is_at_most_64_mib() {
        let cli = parse(&["--line-limit", "67108864", "sleep"]).unwrap();
        assert_eq!(cli.settings().line_limit_bytes, 64 << 20);
        for bad in ["67108865", "9223372036854775808", "99999999999999999999999"] {
            let error = parse(&["--line-limit", bad, "sleep"])
                .unwrap_err()
                .to_string();
            assert!(error.contains("--line-limit"), "{error}");
        }
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("at most 67108864"), "{help}");
    }

    /// The core's rule for a program, not a copy: `procmon ""` could never
    /// run anything, so it is a usage error rather than a process that backs
    /// off for ever.
    #[test]
    fn an_empty_program_is_a_usage_error() {
        for args in [&[""][..], &["--", "", "x"], &["-k", "1", ""]] {
            let error = checked(args).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidValue, "{args:?}");
            let text = error.to_string();
            assert!(
                text.starts_with("error: COMMAND is the empty string: name the program to run\n"),
                "{args:?}: {text}"
            );
        }
        // Empty arguments after the program are the program's business.
        assert!(checked(&["echo", ""]).is_ok());
    }

    #[test]
    fn the_line_limit_is_judged_by_the_core() {
        assert_eq!(parse_line_limit("1"), Ok(1));
        assert_eq!(parse_line_limit("67108864"), Ok(MAX_LINE_LIMIT_BYTES));
        assert_eq!(parse_line_limit("0"), Err("must be at least 1 byte".into()));
        for big in ["67108865", "18446744073709551616"] {
            assert_eq!(
                parse_line_limit(big),
                Err("must be at most 67108864 bytes (64 MiB)".into()),
                "{big}"
            );
        }
        assert!(parse_line_limit("-1")
            .unwrap_err()
            .contains("not a whole number"));
    }

    /// `--help` is the reference at hand: every key the config file takes
    /// is in it, so one added to the parser cannot be left out.
    #[test]
    fn the_long_help_names_every_config_key() {
        use crate::config::{CONTAINER_KEYS, CONTROL_KEYS, PROCESS_KEYS, TOP_KEYS};
        let help = Cli::command().render_long_help().to_string();
        for key in [TOP_KEYS, PROCESS_KEYS, CONTROL_KEYS, CONTAINER_KEYS].concat() {
            assert!(help.contains(key), "--help lacks the config key {key:?}");
        }
    }

    #[test]
    fn names_escape_what_a_name_may_not_hold() {
        let args: Vec<OsString> = vec!["sh".into(), "-c".into(), "echo a\necho b".into()];
        assert_eq!(command_name(&args), "sh -c echo a\\necho b");
        use std::os::unix::ffi::OsStringExt;
        let args = vec![OsString::from_vec(b"a\xffb".to_vec())];
        assert_eq!(command_name(&args), "a\\xffb");
    }
}
