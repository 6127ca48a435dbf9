//! Scenario text to [`Step`]s, and [`Step`]s back to scenario text.
//!
//! The syntax is the one in `shared/spec/scenarios.md`. Parsing is total: any
//! bytes give either steps or a [`Diagnostic`] naming the line, never a panic,
//! because a fuzzer feeds this module arbitrary input.

use std::fmt;

use std::num::NonZeroU32;

use procmon_core::{
    Condition, Dependency, Duration, EscapeQuoted, ExitCodes, Instant, Policy, ProcessSpec,
    ProcessState, Readiness, RestartPolicy, Seconds, Signal, Stream,
};

/// A message about one line of a scenario, shown as `FILE:LINE: message`.
///
/// Used for malformed lines, failed expectations and mistakes that stop a
/// run: the one shape the contract gives all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The scenario's file name, as the user gave it.
    pub file: String,
    /// The 1-based line the message is about.
    pub line: usize,
    /// What went wrong, without the location.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// A [`Step`] with the line it came from, so messages can point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Numbered {
    /// The 1-based line number in the scenario file.
    pub line: usize,
    /// The step on that line.
    pub step: Step,
}

/// One line of a scenario that does something: a setting, an application
/// call, a fact about a simulated process, the passing of time, or an
/// assertion.
///
/// `Display` writes the step as scenario text that parses back to an equal
/// step, so generated step lists can be printed as replayable scenarios.
/// (One thing cannot be written: an `env` key holding `=`, which the monitor
/// refuses anyway.)
#[derive(Clone, Debug, PartialEq, Eq)]
// A definition makes `add` far larger than any other step; steps are
// parsed once per line and never stored in bulk, so it is not boxed.
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// `set SETTING VALUE`.
    Set(Setting),
    /// `add NAME [OPTION]... -- ARGV...`.
    Add {
        /// The process name.
        name: String,
        /// Its definition.
        spec: ProcessSpec,
    },
    /// `remove NAME`.
    Remove {
        /// The process name.
        name: String,
    },
    /// `start NAME`.
    Start {
        /// The process name.
        name: String,
    },
    /// `stop NAME`.
    Stop {
        /// The process name.
        name: String,
    },
    /// `restart-all`.
    RestartAll,
    /// `start-service`.
    StartService,
    /// `stop-service`.
    StopService,
    /// `advance S`: move the clock forward, firing what falls due.
    Advance(Duration),
    /// `term-delay NAME S`: how long the live instance takes to exit after TERM.
    TermDelay {
        /// The process name.
        name: String,
        /// Time from a TERM to the exit.
        delay: Duration,
    },
    /// `exit NAME CODE`: the live instance exits now, by itself.
    Exit {
        /// The process name.
        name: String,
        /// Its exit code, 0 to 255 as on Unix.
        code: i32,
    },
    /// `kill NAME SIGNAL`: someone outside the monitor signals the live instance.
    Kill {
        /// The process name.
        name: String,
        /// The signal.
        signal: SignalName,
    },
    /// `output NAME stdout|stderr "BYTES"`: the live instance writes.
    Output {
        /// The process name.
        name: String,
        /// Which stream.
        stream: Stream,
        /// What it writes.
        bytes: Vec<u8>,
    },
    /// `down NAME`: hold it down.
    Down {
        /// The process name.
        name: String,
    },
    /// `restart NAME`: restart it at once.
    Restart {
        /// The process name.
        name: String,
    },
    /// `signal NAME SIG`: the monitor sends SIG to the live instance.
    Signal {
        /// The process name.
        name: String,
        /// The signal, from the contract's list.
        signal: Signal,
    },
    /// `fail-spawn NAME [ERRNO]`: the next spawn of NAME fails.
    FailSpawn {
        /// The process name.
        name: String,
        /// The errno the world reports (default 2, `ENOENT`).
        errno: i32,
    },
    /// `ready NAME`: the live instance says it is ready on its notification
    /// channel (contract v5, project extension).
    Ready {
        /// The process name.
        name: String,
    },
    /// `not-ready NAME`: the live instance's notification channel closes
    /// before it said it was ready.
    NotReady {
        /// The process name.
        name: String,
    },
    /// `expect ...`.
    Expect(Expectation),
}

/// The value of a `set` step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `set threshold S`.
    Threshold(Duration),
    /// `set killtime S`.
    KillTime(Duration),
    /// `set min-restart-delay S`.
    MinRestartDelay(Duration),
    /// `set max-restart-delay S`.
    MaxRestartDelay(Duration),
    /// `set line-limit N`, N at least 1.
    LineLimit(usize),
    /// `set container on|off`: whether the monitor finishes once nothing
    /// is alive or due.
    Container(bool),
}

impl Setting {
    /// The setting's keyword, as written after `set` (and in `error` lines).
    pub fn keyword(&self) -> &'static str {
        match self {
            Setting::Threshold(_) => "threshold",
            Setting::KillTime(_) => "killtime",
            Setting::MinRestartDelay(_) => "min-restart-delay",
            Setting::MaxRestartDelay(_) => "max-restart-delay",
            Setting::LineLimit(_) => "line-limit",
            Setting::Container(_) => "container",
        }
    }
}

/// An `expect` step's assertion.
// A whole definition in `Process` makes the enum large; expectations are
// made once per scenario line, so boxing would buy nothing but noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// `expect error`: the step just before was rejected.
    Error,
    /// `expect running NAME`.
    Running(String),
    /// `expect stopped NAME`.
    Stopped(String),
    /// `expect started-at NAME T`.
    StartedAt(String, Instant),
    /// `expect delay NAME S`.
    Delay(String, Duration),
    /// `expect kill-pending NAME`.
    KillPending(String),
    /// `expect no-kill-pending NAME`.
    NoKillPending(String),
    /// `expect restart-pending NAME`.
    RestartPending(String),
    /// `expect no-restart-pending NAME`.
    NoRestartPending(String),
    /// `expect monitored N`.
    Monitored(u64),
    /// `expect spawned N`.
    Spawned(u64),
    /// `expect logs N`.
    Logs(u64),
    /// `expect logged NAME "LINE"`.
    Logged(String, Vec<u8>),
    /// `expect process NAME [OPTION]... -- ARGV...`.
    Process(String, ProcessSpec),
    /// `expect now T`.
    Now(Instant),
    /// `expect state NAME STATE`.
    State(String, ProcessState),
    /// `expect quick-deaths NAME N`.
    QuickDeaths(String, u32),
    /// `expect finished CODE`: the monitor has finished with this exit code.
    Finished(u8),
    /// `expect not-finished`: the monitor has not finished.
    NotFinished,
}

/// A signal name a `kill` step may send, without `SIG`: `TERM`, `KILL`, `HUP`, ….
///
/// Only names from a fixed table exist, so every value prints as a word that
/// parses back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalName(&'static str);

/// The signals a scenario may name: the POSIX ones, so a typo is an error.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
    "VTALRM", "PROF", "WINCH", "IO", "SYS",
];

impl SignalName {
    /// `TERM`: a simulated process exits with code 0 after its term delay.
    pub const TERM: SignalName = SignalName("TERM");
    /// `KILL`: a simulated process dies at once.
    pub const KILL: SignalName = SignalName("KILL");

    /// The signal called `name` (without `SIG`), if there is one.
    pub fn from_name(name: &str) -> Option<SignalName> {
        SIGNALS.iter().find(|&&s| s == name).map(|&s| SignalName(s))
    }

    /// The name, without `SIG`.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The errno of a `fail-spawn` that names none: `ENOENT`, a missing program.
pub const DEFAULT_SPAWN_ERRNO: i32 = 2;

/// Parses a whole scenario. `file` only labels diagnostics.
///
/// Stops at the first malformed line: a scenario with a mistake in it is not
/// run at all, so a typo cannot pass half a scenario.
pub fn parse(file: &str, source: &[u8]) -> Result<Vec<Numbered>, Diagnostic> {
    let mut steps = Vec::new();
    for (index, raw) in source.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let step = parse_line(raw).map_err(|message| Diagnostic {
            file: file.to_string(),
            line,
            message,
        })?;
        if let Some(step) = step {
            steps.push(Numbered { line, step });
        }
    }
    Ok(steps)
}

/// Parses one line (without its newline): `None` for a blank or comment line.
pub fn parse_line(line: &[u8]) -> Result<Option<Step>, String> {
    let words = lex(line)?;
    if words.is_empty() {
        return Ok(None);
    }
    let mut words = Words {
        words: &words,
        next: 0,
    };
    let keyword = words.next("a step")?;
    let step = match keyword {
        b"set" => Step::Set(parse_setting(&mut words)?),
        b"add" => {
            let name = words.name()?;
            let spec = words.spec()?;
            Step::Add { name, spec }
        }
        b"remove" => Step::Remove {
            name: words.name()?,
        },
        b"start" => Step::Start {
            name: words.name()?,
        },
        b"stop" => Step::Stop {
            name: words.name()?,
        },
        b"restart-all" => Step::RestartAll,
        b"start-service" => Step::StartService,
        b"stop-service" => Step::StopService,
        b"advance" => Step::Advance(words.seconds("a duration")?),
        b"term-delay" => Step::TermDelay {
            name: words.name()?,
            delay: words.seconds("a duration")?,
        },
        b"exit" => {
            let name = words.name()?;
            let code = words.whole("an exit code", 255)?;
            Step::Exit {
                name,
                code: i32::try_from(code).expect("at most 255"),
            }
        }
        b"kill" => {
            let name = words.name()?;
            let word = words.next("a signal name")?;
            let signal = std::str::from_utf8(word)
                .ok()
                .and_then(SignalName::from_name)
                .ok_or_else(|| {
                    format!(
                        "unknown signal {} (names are without SIG: TERM, KILL, HUP, ...)",
                        Word(word)
                    )
                })?;
            Step::Kill { name, signal }
        }
        b"output" => {
            let name = words.name()?;
            let stream = match words.next("stdout or stderr")? {
                b"stdout" => Stream::Stdout,
                b"stderr" => Stream::Stderr,
                other => return Err(format!("expected stdout or stderr, found {}", Word(other))),
            };
            let bytes = words.next("the bytes to write")?.to_vec();
            Step::Output {
                name,
                stream,
                bytes,
            }
        }
        b"down" => Step::Down {
            name: words.name()?,
        },
        b"restart" => Step::Restart {
            name: words.name()?,
        },
        b"signal" => {
            let name = words.name()?;
            let signal = words.signal()?;
            Step::Signal { name, signal }
        }
        b"fail-spawn" => {
            let name = words.name()?;
            let errno = if words.at_end() {
                DEFAULT_SPAWN_ERRNO
            } else {
                let max = u64::try_from(i32::MAX).expect("positive");
                i32::try_from(words.whole("an errno", max)?).expect("checked against i32::MAX")
            };
            Step::FailSpawn { name, errno }
        }
        b"ready" => Step::Ready {
            name: words.name()?,
        },
        b"not-ready" => Step::NotReady {
            name: words.name()?,
        },
        b"expect" => Step::Expect(parse_expectation(&mut words)?),
        other => return Err(format!("unknown step {}", Word(other))),
    };
    words.end()?;
    Ok(Some(step))
}

fn parse_setting(words: &mut Words<'_>) -> Result<Setting, String> {
    let setting = match words.next("a setting")? {
        b"threshold" => Setting::Threshold(words.seconds("a duration")?),
        b"killtime" => Setting::KillTime(words.seconds("a duration")?),
        b"min-restart-delay" => Setting::MinRestartDelay(words.seconds("a duration")?),
        b"max-restart-delay" => Setting::MaxRestartDelay(words.seconds("a duration")?),
        b"line-limit" => {
            let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
            let limit = words.whole("a line limit in bytes", max)?;
            if limit == 0 {
                return Err("the line limit must be at least 1 byte".to_string());
            }
            Setting::LineLimit(usize::try_from(limit).expect("checked against usize::MAX"))
        }
        b"container" => match words.next("on or off")? {
            b"on" => Setting::Container(true),
            b"off" => Setting::Container(false),
            other => return Err(format!("expected on or off, found {}", Word(other))),
        },
        other => return Err(format!("unknown setting {}", Word(other))),
    };
    Ok(setting)
}

fn parse_expectation(words: &mut Words<'_>) -> Result<Expectation, String> {
    let expectation = match words.next("what to expect")? {
        b"error" => Expectation::Error,
        b"running" => Expectation::Running(words.name()?),
        b"stopped" => Expectation::Stopped(words.name()?),
        b"started-at" => {
            let name = words.name()?;
            Expectation::StartedAt(name, words.time()?)
        }
        b"delay" => {
            let name = words.name()?;
            Expectation::Delay(name, words.seconds("a duration")?)
        }
        b"kill-pending" => Expectation::KillPending(words.name()?),
        b"no-kill-pending" => Expectation::NoKillPending(words.name()?),
        b"restart-pending" => Expectation::RestartPending(words.name()?),
        b"no-restart-pending" => Expectation::NoRestartPending(words.name()?),
        b"monitored" => Expectation::Monitored(words.whole("a count", u64::MAX)?),
        b"spawned" => Expectation::Spawned(words.whole("a count", u64::MAX)?),
        b"logs" => Expectation::Logs(words.whole("a count", u64::MAX)?),
        b"logged" => {
            let name = words.name()?;
            Expectation::Logged(name, words.next("the logged line")?.to_vec())
        }
        b"process" => {
            let name = words.name()?;
            Expectation::Process(name, words.spec()?)
        }
        b"now" => Expectation::Now(words.time()?),
        b"state" => {
            let name = words.name()?;
            let word = words.next("a state")?;
            let state = std::str::from_utf8(word)
                .ok()
                .and_then(ProcessState::from_name)
                .ok_or_else(|| {
                    format!(
                        "unknown state {} (running, starting, stopping, held, failed, exited, backoff, \
                         waiting, stopped)",
                        Word(word)
                    )
                })?;
            Expectation::State(name, state)
        }
        b"quick-deaths" => {
            let name = words.name()?;
            let max = u64::from(u32::MAX);
            let count =
                u32::try_from(words.whole("a count", max)?).expect("checked against u32::MAX");
            Expectation::QuickDeaths(name, count)
        }
        b"finished" => {
            let code = words.whole("an exit code", 255)?;
            Expectation::Finished(u8::try_from(code).expect("at most 255"))
        }
        b"not-finished" => Expectation::NotFinished,
        other => return Err(format!("unknown expectation {}", Word(other))),
    };
    Ok(expectation)
}

/// A cursor over one line's words, with the typed readers the steps need.
struct Words<'a> {
    words: &'a [Vec<u8>],
    next: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self, what: &str) -> Result<&'a [u8], String> {
        let word = self
            .words
            .get(self.next)
            .ok_or_else(|| format!("missing {what}"))?;
        self.next += 1;
        Ok(word)
    }

    fn at_end(&self) -> bool {
        self.next >= self.words.len()
    }

    /// A signal of the contract's list, without `SIG`.
    fn signal(&mut self) -> Result<Signal, String> {
        let word = self.next("a signal name")?;
        std::str::from_utf8(word)
            .ok()
            .and_then(|name| Signal::ALL.into_iter().find(|s| s.as_str() == name))
            .ok_or_else(|| {
                format!(
                    "unknown signal {} (one of HUP INT QUIT KILL USR1 USR2 TERM ALRM CONT STOP TSTP WINCH PIPE)",
                    Word(word)
                )
            })
    }

    fn end(&self) -> Result<(), String> {
        match self.words.get(self.next) {
            None => Ok(()),
            Some(extra) => Err(format!("unexpected word {}", Word(extra))),
        }
    }

    /// Names are text because the monitor's API and its logs are text.
    fn name(&mut self) -> Result<String, String> {
        let word = self.next("a process name")?;
        String::from_utf8(word.to_vec())
            .map_err(|_| format!("process name {} is not valid UTF-8", Word(word)))
    }

    fn seconds(&mut self, what: &str) -> Result<Duration, String> {
        let word = self.next(what)?;
        parse_seconds(word).map(Duration::from_nanos)
    }

    fn time(&mut self) -> Result<Instant, String> {
        let word = self.next("a time")?;
        parse_seconds(word).map(Instant::from_nanos)
    }

    fn whole(&mut self, what: &str, max: u64) -> Result<u64, String> {
        let word = self.next(what)?;
        let value = parse_whole(word)?;
        if value > max {
            return Err(format!("{} is too large (at most {max})", Word(word)));
        }
        Ok(value)
    }

    /// `[OPTION]... -- ARGV...`, shared by `add` and `expect process`.
    fn spec(&mut self) -> Result<ProcessSpec, String> {
        let mut uid = None;
        let mut gid = None;
        let mut cwd = None;
        let mut env = Vec::new();
        let mut policy = Policy::default();
        let mut ready = None;
        let mut after: Option<Vec<Dependency>> = None;
        loop {
            let option = self.next("`--` and the argv")?;
            let twice = || format!("{} given twice", Word(option));
            match option {
                b"--" => break,
                b"--restart" => {
                    let word = self.next("always, on-failure or never after --restart")?;
                    let restart = std::str::from_utf8(word)
                        .ok()
                        .and_then(RestartPolicy::from_name)
                        .ok_or_else(|| {
                            format!(
                                "unknown restart policy {} (always, on-failure or never)",
                                Word(word)
                            )
                        })?;
                    if policy.restart.replace(restart).is_some() {
                        return Err(twice());
                    }
                }
                b"--success-codes" => {
                    let codes = parse_codes(self.next("codes after --success-codes")?)?;
                    if policy.success_codes.replace(codes).is_some() {
                        return Err(twice());
                    }
                }
                b"--stop-signal" => {
                    let signal = self.signal()?;
                    if policy.stop_signal.replace(signal).is_some() {
                        return Err(twice());
                    }
                }
                b"--kill-time"
                | b"--threshold"
                | b"--min-restart-delay"
                | b"--max-restart-delay"
                | b"--retry-failed-after" => {
                    let value = self.seconds("a duration")?;
                    let slot = match option {
                        b"--kill-time" => &mut policy.kill_time,
                        b"--threshold" => &mut policy.threshold,
                        b"--min-restart-delay" => &mut policy.min_restart_delay,
                        b"--max-restart-delay" => &mut policy.max_restart_delay,
                        _ => &mut policy.retry_failed_after,
                    };
                    if slot.replace(value).is_some() {
                        return Err(twice());
                    }
                }
                b"--give-up-after" => {
                    let count = self.whole("a count after --give-up-after", u64::from(u32::MAX))?;
                    let count = u32::try_from(count)
                        .ok()
                        .and_then(NonZeroU32::new)
                        .ok_or_else(|| "--give-up-after must be at least 1".to_string())?;
                    if policy.give_up_after.replace(count).is_some() {
                        return Err(twice());
                    }
                }
                b"--ready" => {
                    let readiness =
                        parse_readiness(self.next("notify, fd:N or log:TEXT after --ready")?)?;
                    if ready.replace(readiness).is_some() {
                        return Err(twice());
                    }
                }
                b"--ready-timeout" => {
                    let value = self.seconds("a duration")?;
                    if policy.ready_timeout.replace(value).is_some() {
                        return Err(twice());
                    }
                }
                b"--after" => {
                    let list = parse_after(self.next("NAME:COND[,NAME:COND]... after --after")?)?;
                    if after.replace(list).is_some() {
                        return Err(twice());
                    }
                }
                b"--critical" => {
                    if std::mem::replace(&mut policy.critical, true) {
                        return Err(twice());
                    }
                }
                b"--uid" | b"--gid" => {
                    let what = if option == b"--uid" { "a uid" } else { "a gid" };
                    let id = u32::try_from(self.whole(what, u64::from(u32::MAX))?)
                        .expect("checked against u32::MAX");
                    let slot = if option == b"--uid" {
                        &mut uid
                    } else {
                        &mut gid
                    };
                    if slot.replace(id).is_some() {
                        return Err(format!("{} given twice", Word(option)));
                    }
                }
                b"--cwd" => {
                    let path = self.next("a path after --cwd")?.to_vec();
                    if cwd.replace(path).is_some() {
                        return Err("--cwd given twice".to_string());
                    }
                }
                b"--env" => {
                    let entry = self.next("KEY=VALUE after --env")?;
                    let eq = entry
                        .iter()
                        .position(|&b| b == b'=')
                        .ok_or_else(|| format!("--env {} has no `=`", Word(entry)))?;
                    env.push((entry[..eq].to_vec(), entry[eq + 1..].to_vec()));
                }
                other => {
                    return Err(format!(
                        "unknown option {} (options are --uid, --gid, --cwd, --env, --restart, \
                         --success-codes, --stop-signal, --kill-time, --threshold, \
                         --min-restart-delay, --max-restart-delay, --give-up-after, \
                         --retry-failed-after, --ready, --ready-timeout, --after, --critical; \
                         then --)",
                        Word(other)
                    ))
                }
            }
        }
        let argv: Vec<Vec<u8>> = self.words[self.next..].to_vec();
        self.next = self.words.len();
        if argv.is_empty() {
            return Err("missing the argv after --".to_string());
        }
        let mut spec = ProcessSpec::new(argv);
        spec.env = env;
        spec.cwd = cwd;
        spec.uid = uid;
        spec.gid = gid;
        spec.policy = policy;
        spec.ready = ready.unwrap_or_default();
        spec.after = after.unwrap_or_default();
        Ok(spec)
    }
}

/// `notify`, `fd:N` or `log:TEXT` (TEXT not empty).
fn parse_readiness(word: &[u8]) -> Result<Readiness, String> {
    if word == b"notify" {
        return Ok(Readiness::Notify);
    }
    if let Some(fd) = word.strip_prefix(b"fd:") {
        let fd = parse_whole(fd)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{} is not fd:N with N a descriptor number", Word(word)))?;
        return Ok(Readiness::Fd(fd));
    }
    if let Some(text) = word.strip_prefix(b"log:") {
        if text.is_empty() {
            return Err("log: needs the text a ready line contains".to_string());
        }
        return Ok(Readiness::LogLine(text.to_vec()));
    }
    Err(format!(
        "unknown readiness {} (notify, fd:N or log:TEXT)",
        Word(word)
    ))
}

/// `NAME:COND[,NAME:COND]...`, COND `started`, `ready` or `completed`; a
/// name may hold `:` (the last one separates), not `,`.
fn parse_after(word: &[u8]) -> Result<Vec<Dependency>, String> {
    let mut list = Vec::new();
    for part in word.split(|&b| b == b',') {
        let bad = || {
            format!(
                "{} is not a list of NAME:COND (COND started, ready or completed)",
                Word(word)
            )
        };
        let colon = part.iter().rposition(|&b| b == b':').ok_or_else(bad)?;
        let (name, condition) = (&part[..colon], &part[colon + 1..]);
        let name = std::str::from_utf8(name).map_err(|_| bad())?;
        if name.is_empty() {
            return Err(bad());
        }
        let condition = std::str::from_utf8(condition)
            .ok()
            .and_then(Condition::from_name)
            .ok_or_else(bad)?;
        list.push(Dependency {
            name: name.to_string(),
            condition,
        });
    }
    Ok(list)
}

/// `N[,N]...`: exit codes 0–255, no spaces.
fn parse_codes(word: &[u8]) -> Result<ExitCodes, String> {
    let mut codes = ExitCodes::EMPTY;
    for part in word.split(|&b| b == b',') {
        let code = parse_whole(part)
            .map_err(|_| format!("{} is not a list of exit codes (like 0 or 0,3)", Word(word)))?;
        let code = u8::try_from(code)
            .map_err(|_| format!("exit code {code} in {} is above 255", Word(word)))?;
        codes.insert(code);
    }
    Ok(codes)
}

/// Splits a line into words: bare words are UTF-8 text, quoted words any bytes.
fn lex(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b' ' | b'\t' => i += 1,
            b'#' => {
                // Comments are outside quotes, where the text must be UTF-8.
                std::str::from_utf8(&line[i..])
                    .map_err(|_| "comment is not valid UTF-8".to_string())?;
                break;
            }
            b'"' => {
                let (word, end) = lex_quoted(line, i + 1)?;
                words.push(word);
                i = end;
                if let Some(&next) = line.get(i) {
                    if !matches!(next, b' ' | b'\t' | b'#') {
                        return Err("a closing quote must be followed by a space".to_string());
                    }
                }
            }
            _ => {
                let start = i;
                while i < line.len() && !matches!(line[i], b' ' | b'\t' | b'#') {
                    match line[i] {
                        b'"' => return Err("a quote may only start a word".to_string()),
                        b'\\' => return Err("escapes are only allowed inside quotes".to_string()),
                        c if c < 0x20 || c == 0x7f => {
                            return Err(format!(
                            "control byte \\x{c:02x} outside quotes (write it as \"\\x{c:02x}\")"
                        ))
                        }
                        _ => i += 1,
                    }
                }
                let word = &line[start..i];
                if std::str::from_utf8(word).is_err() {
                    return Err(format!(
                        "{} is not valid UTF-8 (quote it to write raw bytes)",
                        Word(word)
                    ));
                }
                words.push(word.to_vec());
            }
        }
    }
    Ok(words)
}

/// Reads a quoted word from just after its opening quote; returns the bytes
/// and the index just after the closing quote.
fn lex_quoted(line: &[u8], mut i: usize) -> Result<(Vec<u8>, usize), String> {
    let mut word = Vec::new();
    loop {
        let Some(&byte) = line.get(i) else {
            return Err("unterminated quote".to_string());
        };
        i += 1;
        match byte {
            b'"' => return Ok((word, i)),
            b'\\' => {
                let Some(&escape) = line.get(i) else {
                    return Err("unterminated quote".to_string());
                };
                i += 1;
                let decoded = match escape {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'\\' => b'\\',
                    b'"' => b'"',
                    b'x' => {
                        let digits = line.get(i..i + 2).ok_or("\\x needs two hex digits")?;
                        i += 2;
                        let hex = |d: u8| char::from(d).to_digit(16);
                        match (hex(digits[0]), hex(digits[1])) {
                            (Some(hi), Some(lo)) => {
                                u8::try_from(hi * 16 + lo).expect("two hex digits")
                            }
                            _ => return Err("\\x needs two hex digits".to_string()),
                        }
                    }
                    other => {
                        return Err(format!(
                            "unknown escape \\{} (use \\n \\r \\t \\\\ \\\" \\xHH)",
                            EscapeQuoted(&[other])
                        ))
                    }
                };
                word.push(decoded);
            }
            other => word.push(other),
        }
    }
}

/// Decimal seconds, exactly, as nanoseconds: `2`, `2.5`, `0.000000001`.
pub fn parse_seconds(word: &[u8]) -> Result<u64, String> {
    let bad = || {
        format!(
            "{} is not a number of seconds (like 2, 2.5 or 0.125)",
            Word(word)
        )
    };
    if word.first() == Some(&b'-') {
        return Err(format!("negative number {}", Word(word)));
    }
    let (whole, frac) = match word.iter().position(|&b| b == b'.') {
        Some(dot) => (&word[..dot], Some(&word[dot + 1..])),
        None => (word, None),
    };
    if whole.is_empty() || !whole.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let too_large = || {
        format!(
            "{} is too large (at most {} seconds)",
            Word(word),
            Instant::from_nanos(u64::MAX)
        )
    };
    let mut nanos: u64 = 0;
    for &d in whole {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or_else(too_large)?;
    }
    nanos = nanos.checked_mul(1_000_000_000).ok_or_else(too_large)?;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        if frac.len() > 9 {
            return Err(format!("{} has more than 9 fractional digits", Word(word)));
        }
        let mut sub: u64 = 0;
        for i in 0..9 {
            sub = sub * 10 + frac.get(i).map_or(0, |&d| u64::from(d - b'0'));
        }
        nanos = nanos.checked_add(sub).ok_or_else(too_large)?;
    }
    Ok(nanos)
}

/// A whole decimal number: digits only.
fn parse_whole(word: &[u8]) -> Result<u64, String> {
    if word.first() == Some(&b'-') {
        return Err(format!("negative number {}", Word(word)));
    }
    if word.is_empty() || !word.iter().all(u8::is_ascii_digit) {
        return Err(format!("{} is not a whole number", Word(word)));
    }
    word.iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(|| format!("{} is too large", Word(word)))
}

/// Shows bytes as one scenario word: bare when that reads back the same,
/// quoted otherwise.
#[derive(Clone, Copy)]
pub(crate) struct Word<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Word<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = match std::str::from_utf8(self.0) {
            Ok(text) => {
                !text.is_empty()
                    && !text.chars().any(|c| {
                        c.is_whitespace() || c.is_control() || matches!(c, '"' | '#' | '\\')
                    })
            }
            Err(_) => false,
        };
        if bare {
            f.write_str(std::str::from_utf8(self.0).expect("checked above"))
        } else {
            write!(f, "\"{}\"", EscapeQuoted(self.0))
        }
    }
}

/// Shows bytes always quoted, as the contract writes output and log lines.
#[derive(Clone, Copy)]
pub(crate) struct Quoted<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", EscapeQuoted(self.0))
    }
}

/// Shows `[OPTION]... -- ARGV...` in the canonical option order.
pub(crate) struct SpecWords<'a>(pub(crate) &'a ProcessSpec);

impl fmt::Display for SpecWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = self.0;
        if let Some(uid) = spec.uid {
            write!(f, "--uid {uid} ")?;
        }
        if let Some(gid) = spec.gid {
            write!(f, "--gid {gid} ")?;
        }
        if let Some(cwd) = &spec.cwd {
            write!(f, "--cwd {} ", Word(cwd))?;
        }
        for (key, value) in &spec.env {
            let mut entry = key.clone();
            entry.push(b'=');
            entry.extend_from_slice(value);
            write!(f, "--env {} ", Word(&entry))?;
        }
        let policy = &spec.policy;
        if let Some(restart) = policy.restart {
            write!(f, "--restart {restart} ")?;
        }
        if let Some(codes) = policy.success_codes {
            write!(f, "--success-codes {codes} ")?;
        }
        if let Some(signal) = policy.stop_signal {
            write!(f, "--stop-signal {signal} ")?;
        }
        for (option, value) in [
            ("--kill-time", policy.kill_time),
            ("--threshold", policy.threshold),
            ("--min-restart-delay", policy.min_restart_delay),
            ("--max-restart-delay", policy.max_restart_delay),
        ] {
            if let Some(value) = value {
                write!(f, "{option} {} ", Seconds(value))?;
            }
        }
        if let Some(count) = policy.give_up_after {
            write!(f, "--give-up-after {count} ")?;
        }
        if let Some(after) = policy.retry_failed_after {
            write!(f, "--retry-failed-after {} ", Seconds(after))?;
        }
        match &spec.ready {
            Readiness::Spawned => {}
            Readiness::Notify => f.write_str("--ready notify ")?,
            Readiness::Fd(fd) => write!(f, "--ready fd:{fd} ")?,
            Readiness::LogLine(text) => {
                let mut word = b"log:".to_vec();
                word.extend_from_slice(text);
                write!(f, "--ready {} ", Word(&word))?;
            }
        }
        if let Some(timeout) = policy.ready_timeout {
            write!(f, "--ready-timeout {} ", Seconds(timeout))?;
        }
        if !spec.after.is_empty() {
            let list: Vec<String> = spec
                .after
                .iter()
                .map(|d| format!("{}:{}", d.name, d.condition))
                .collect();
            write!(f, "--after {} ", Word(list.join(",").as_bytes()))?;
        }
        if policy.critical {
            f.write_str("--critical ")?;
        }
        f.write_str("--")?;
        for arg in &spec.argv {
            write!(f, " {}", Word(arg))?;
        }
        Ok(())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |n: &String| Word(n.as_bytes()).to_string();
        match self {
            Step::Set(setting) => write!(f, "set {setting}"),
            Step::Add { name: n, spec } => write!(f, "add {} {}", name(n), SpecWords(spec)),
            Step::Remove { name: n } => write!(f, "remove {}", name(n)),
            Step::Start { name: n } => write!(f, "start {}", name(n)),
            Step::Stop { name: n } => write!(f, "stop {}", name(n)),
            Step::RestartAll => f.write_str("restart-all"),
            Step::StartService => f.write_str("start-service"),
            Step::StopService => f.write_str("stop-service"),
            Step::Advance(d) => write!(f, "advance {}", Seconds(*d)),
            Step::TermDelay { name: n, delay } => {
                write!(f, "term-delay {} {}", name(n), Seconds(*delay))
            }
            Step::Exit { name: n, code } => write!(f, "exit {} {code}", name(n)),
            Step::Kill { name: n, signal } => write!(f, "kill {} {signal}", name(n)),
            Step::Output {
                name: n,
                stream,
                bytes,
            } => write!(
                f,
                "output {} {} {}",
                name(n),
                stream.as_str(),
                Quoted(bytes)
            ),
            Step::Down { name: n } => write!(f, "down {}", name(n)),
            Step::Restart { name: n } => write!(f, "restart {}", name(n)),
            Step::Signal { name: n, signal } => write!(f, "signal {} {signal}", name(n)),
            Step::FailSpawn { name: n, errno } => write!(f, "fail-spawn {} {errno}", name(n)),
            Step::Ready { name: n } => write!(f, "ready {}", name(n)),
            Step::NotReady { name: n } => write!(f, "not-ready {}", name(n)),
            Step::Expect(expectation) => write!(f, "expect {expectation}"),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keyword = self.keyword();
        match self {
            Setting::Threshold(d)
            | Setting::KillTime(d)
            | Setting::MinRestartDelay(d)
            | Setting::MaxRestartDelay(d) => write!(f, "{keyword} {}", Seconds(*d)),
            Setting::LineLimit(n) => write!(f, "{keyword} {n}"),
            Setting::Container(on) => write!(f, "{keyword} {}", if *on { "on" } else { "off" }),
        }
    }
}

/// Written without the leading `expect `, so failure messages can say
/// `expected running foo`.
impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |n: &String| Word(n.as_bytes()).to_string();
        match self {
            Expectation::Error => f.write_str("error"),
            Expectation::Running(n) => write!(f, "running {}", name(n)),
            Expectation::Stopped(n) => write!(f, "stopped {}", name(n)),
            Expectation::StartedAt(n, t) => write!(f, "started-at {} {t}", name(n)),
            Expectation::Delay(n, d) => write!(f, "delay {} {}", name(n), Seconds(*d)),
            Expectation::KillPending(n) => write!(f, "kill-pending {}", name(n)),
            Expectation::NoKillPending(n) => write!(f, "no-kill-pending {}", name(n)),
            Expectation::RestartPending(n) => write!(f, "restart-pending {}", name(n)),
            Expectation::NoRestartPending(n) => write!(f, "no-restart-pending {}", name(n)),
            Expectation::Monitored(count) => write!(f, "monitored {count}"),
            Expectation::Spawned(count) => write!(f, "spawned {count}"),
            Expectation::Logs(count) => write!(f, "logs {count}"),
            Expectation::Logged(n, line) => write!(f, "logged {} {}", name(n), Quoted(line)),
            Expectation::Process(n, spec) => write!(f, "process {} {}", name(n), SpecWords(spec)),
            Expectation::Now(t) => write!(f, "now {t}"),
            Expectation::State(n, state) => write!(f, "state {} {state}", name(n)),
            Expectation::QuickDeaths(n, count) => write!(f, "quick-deaths {} {count}", name(n)),
            Expectation::Finished(code) => write!(f, "finished {code}"),
            Expectation::NotFinished => f.write_str("not-finished"),
        }
    }
}

impl fmt::Display for Numbered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.step.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Step {
        parse_line(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .unwrap_or_else(|| panic!("{line:?}: no step"))
    }

    fn err(line: &[u8]) -> String {
        match parse_line(line) {
            Err(e) => e,
            Ok(step) => panic!("{:?} parsed as {step:?}", String::from_utf8_lossy(line)),
        }
    }

    fn secs(s: &str) -> Result<u64, String> {
        parse_seconds(s.as_bytes())
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let source = b"# a comment\n\nset threshold 10\nadvance -1\nstart foo\n";
        let e = parse("x.scn", source).unwrap_err();
        assert_eq!(e.line, 4);
        assert_eq!(e.to_string(), "x.scn:4: negative number -1");
        let e = parse("y.scn", b"start foo\r\nbogus\n").unwrap_err();
        assert_eq!(e.to_string(), "y.scn:2: unknown step bogus");
    }

    #[test]
    fn steps_keep_their_line_numbers() {
        let steps = parse("x.scn", b"start-service\n\n  # note\nadd foo -- foo # c\n").unwrap();
        let lines: Vec<usize> = steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![1, 4]);
        assert_eq!(
            steps[1].step,
            Step::Add {
                name: "foo".into(),
                spec: ProcessSpec::new(["foo"])
            }
        );
    }

    #[test]
    fn quoted_words_decode_every_escape() {
        assert_eq!(
            one(r#"output foo stdout "a\n\r\t\\\"\x00\xFFz#""#),
            Step::Output {
                name: "foo".into(),
                stream: Stream::Stdout,
                bytes: b"a\n\r\t\\\"\x00\xffz#".to_vec(),
            }
        );
        assert_eq!(
            one("output foo stderr \"\""),
            Step::Output {
                name: "foo".into(),
                stream: Stream::Stderr,
                bytes: Vec::new(),
            }
        );
        // Raw bytes inside quotes are kept as they are.
        assert_eq!(
            parse_line(b"output foo stdout \"\xff\"").unwrap(),
            Some(Step::Output {
                name: "foo".into(),
                stream: Stream::Stdout,
                bytes: vec![0xff],
            })
        );
    }

    #[test]
    fn malformed_quotes_and_bytes_are_errors() {
        assert_eq!(err(b"output foo stdout \"abc"), "unterminated quote");
        assert_eq!(err(b"output foo stdout \"abc\\"), "unterminated quote");
        assert!(err(b"output foo stdout \"\\q\"").starts_with("unknown escape \\q"));
        assert_eq!(
            err(b"output foo stdout \"\\x4\""),
            "\\x needs two hex digits"
        );
        assert_eq!(err(b"output foo stdout \"\\x4"), "\\x needs two hex digits");
        assert_eq!(
            err(b"output foo stdout \"\\xzz\""),
            "\\x needs two hex digits"
        );
        assert!(err(b"output foo stdout \"a\"b").contains("followed by a space"));
        assert!(err(b"start fo\"o\"").contains("quote may only start"));
        assert!(err(b"start fo\\o").contains("only allowed inside quotes"));
        assert!(err(b"start \xff").contains("not valid UTF-8"));
        assert!(err(b"start foo # \xff").contains("comment"));
        assert!(err(b"start \x01").contains("control byte"));
        assert!(err(b"start \"\xff\"").contains("not valid UTF-8"));
    }

    #[test]
    fn comments_and_quoted_hashes() {
        assert_eq!(parse_line(b"   # only a comment").unwrap(), None);
        assert_eq!(parse_line(b"").unwrap(), None);
        assert_eq!(one("start foo#bar"), Step::Start { name: "foo".into() });
        assert_eq!(
            one("start \"foo#bar\""),
            Step::Start {
                name: "foo#bar".into()
            }
        );
    }

    #[test]
    fn seconds_are_exact_nanoseconds() {
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("1"), Ok(1_000_000_000));
        assert_eq!(secs("2.5"), Ok(2_500_000_000));
        assert_eq!(secs("0.125"), Ok(125_000_000));
        assert_eq!(secs("0.000000001"), Ok(1));
        assert_eq!(secs("10.25"), Ok(10_250_000_000));
        assert_eq!(secs("007.100"), Ok(7_100_000_000));
        assert_eq!(secs("18446744073.709551615"), Ok(u64::MAX));
        assert!(secs("18446744073.709551616")
            .unwrap_err()
            .contains("too large"));
        assert!(secs("99999999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(secs("0.0000000001")
            .unwrap_err()
            .contains("more than 9 fractional digits"));
        assert_eq!(secs("-1"), Err("negative number -1".to_string()));
        assert_eq!(secs("-0.5"), Err("negative number -0.5".to_string()));
        for bad in ["", ".5", "5.", "1e3", "+1", "1.2.3", "one", "1 "] {
            assert!(secs(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn whole_numbers_and_ranges() {
        assert_eq!(
            one("exit foo 255"),
            Step::Exit {
                name: "foo".into(),
                code: 255
            }
        );
        assert!(err(b"exit foo 256").contains("too large"));
        assert!(err(b"exit foo -1").contains("negative"));
        assert!(err(b"exit foo 1.5").contains("not a whole number"));
        assert!(err(b"set line-limit 0").contains("at least 1"));
        assert!(err(b"expect spawned 99999999999999999999999").contains("too large"));
        assert!(err(b"add foo --uid 4294967296 -- foo").contains("too large"));
        assert_eq!(one("set line-limit 4"), Step::Set(Setting::LineLimit(4)));
    }

    #[test]
    fn add_options_in_any_order_print_canonically() {
        let step = one(
            "add \"my app\" --env A=1 --cwd /tmp --gid 2 --env B= --uid 1 -- prog \"an arg\" --",
        );
        let spec = ProcessSpec::new(["prog", "an arg", "--"])
            .with_uid(1)
            .with_gid(2)
            .with_cwd("/tmp")
            .with_env("A", "1")
            .with_env("B", "");
        assert_eq!(
            step,
            Step::Add {
                name: "my app".into(),
                spec
            }
        );
        assert_eq!(
            step.to_string(),
            "add \"my app\" --uid 1 --gid 2 --cwd /tmp --env A=1 --env B= -- prog \"an arg\" --"
        );
        assert!(err(b"add foo --uid 1 --uid 2 -- foo").contains("twice"));
        assert!(err(b"add foo -- ").contains("missing the argv"));
        assert!(err(b"add foo prog").contains("unknown option prog"));
        assert!(err(b"add foo --env X -- foo").contains("no `=`"));
        assert!(err(b"add foo").contains("missing `--`"));
    }

    #[test]
    fn v5_options_in_any_order_print_canonically() {
        let step = one(
            "add web --critical --after db:ready,m:completed --ready-timeout 2.5 \
             --ready log:up --restart never -- web",
        );
        assert_eq!(
            step.to_string(),
            "add web --restart never --ready log:up --ready-timeout 2.5 \
             --after db:ready,m:completed --critical -- web"
        );
        assert!(err(b"add a --ready log: -- a").contains("needs the text"));
        assert!(err(b"add a --ready fd:x -- a").contains("fd:N"));
        assert!(err(b"add a --ready sd -- a").contains("unknown readiness"));
        assert!(err(b"add a --after db -- a").contains("NAME:COND"));
        assert!(err(b"add a --after db:up -- a").contains("NAME:COND"));
        assert!(err(b"add a --after :ready -- a").contains("NAME:COND"));
        assert!(err(b"add a --critical --critical -- a").contains("twice"));
        assert!(err(b"add a --after b:ready --after c:ready -- a").contains("twice"));
        assert!(err(b"set container maybe").contains("on or off"));
        assert!(err(b"expect finished 256").contains("too large"));
        assert!(err(b"ready").contains("missing a process name"));
    }

    #[test]
    fn steps_need_exactly_their_words() {
        assert!(err(b"start").contains("missing a process name"));
        assert!(err(b"start foo bar").contains("unexpected word bar"));
        assert!(err(b"restart-all now").contains("unexpected word"));
        assert!(err(b"kill foo SIGTERM").contains("unknown signal"));
        assert!(err(b"output foo stdin \"x\"").contains("stdout or stderr"));
        assert!(err(b"expect").contains("missing what to expect"));
        assert!(err(b"expect sleeping foo").contains("unknown expectation"));
        assert!(err(b"set speed 3").contains("unknown setting"));
    }

    #[test]
    fn every_step_prints_as_text_that_parses_back() {
        let spec = ProcessSpec::new([&b"a b"[..], b"\xff", b"", b"#"])
            .with_uid(0)
            .with_cwd(&b"/t\"mp"[..])
            .with_env(&b"K"[..], &b"v=w\n"[..]);
        let steps = vec![
            Step::Set(Setting::Threshold(Duration::from_nanos(1))),
            Step::Set(Setting::KillTime(Duration::from_millis(2500))),
            Step::Set(Setting::MinRestartDelay(Duration::ZERO)),
            Step::Set(Setting::MaxRestartDelay(Duration::from_secs(3600))),
            Step::Set(Setting::LineLimit(7)),
            Step::Add {
                name: "x y".into(),
                spec: spec.clone(),
            },
            Step::Remove { name: "".into() },
            Step::Start {
                name: "é\u{85}".into(),
            },
            Step::Stop { name: "--".into() },
            Step::RestartAll,
            Step::StartService,
            Step::StopService,
            Step::Advance(Duration::from_nanos(u64::MAX)),
            Step::TermDelay {
                name: "a".into(),
                delay: Duration::from_millis(125),
            },
            Step::Exit {
                name: "a".into(),
                code: 3,
            },
            Step::Kill {
                name: "a".into(),
                signal: SignalName::from_name("HUP").unwrap(),
            },
            Step::Output {
                name: "a".into(),
                stream: Stream::Stderr,
                bytes: b"\xffhello\r\n\"".to_vec(),
            },
            Step::Expect(Expectation::Error),
            Step::Expect(Expectation::Running("a".into())),
            Step::Expect(Expectation::Stopped("a".into())),
            Step::Expect(Expectation::StartedAt("a".into(), Instant::from_nanos(10))),
            Step::Expect(Expectation::Delay("a".into(), Duration::from_secs(4))),
            Step::Expect(Expectation::KillPending("a".into())),
            Step::Expect(Expectation::NoKillPending("a".into())),
            Step::Expect(Expectation::RestartPending("a".into())),
            Step::Expect(Expectation::NoRestartPending("a".into())),
            Step::Expect(Expectation::Monitored(2)),
            Step::Expect(Expectation::Spawned(3)),
            Step::Expect(Expectation::Logs(4)),
            Step::Expect(Expectation::Logged("a".into(), b"\x00 x".to_vec())),
            Step::Expect(Expectation::Process("a".into(), spec)),
            Step::Expect(Expectation::Now(Instant::from_nanos(2_500_000_000))),
            Step::Set(Setting::Container(true)),
            Step::Set(Setting::Container(false)),
            Step::Ready { name: "a".into() },
            Step::NotReady { name: "a b".into() },
            Step::Expect(Expectation::Finished(137)),
            Step::Expect(Expectation::NotFinished),
            Step::Expect(Expectation::State("a".into(), ProcessState::Waiting)),
            Step::Add {
                name: "w".into(),
                spec: {
                    let mut spec = ProcessSpec::new(["w"])
                        .with_ready(Readiness::LogLine(b"ready to \"go\"\xff".to_vec()))
                        .with_after("db", Condition::Ready)
                        .with_after("m:x", Condition::Completed);
                    spec.policy.ready_timeout = Some(Duration::from_millis(1500));
                    spec.policy.critical = true;
                    spec
                },
            },
            Step::Add {
                name: "n".into(),
                spec: ProcessSpec::new(["n"]).with_ready(Readiness::Fd(3)),
            },
            Step::Add {
                name: "n".into(),
                spec: ProcessSpec::new(["n"]).with_ready(Readiness::Notify),
            },
        ];
        for step in steps {
            let text = step.to_string();
            assert_eq!(one(&text), step, "{text}");
        }
    }
}
