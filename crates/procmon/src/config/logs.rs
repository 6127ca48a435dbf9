//! The log-file keys of the config file: where each process's lines are
//! written, how the files rotate, and whether lines carry a time (see
//! `docs/logging.md`).
//!
//! Each key may be set at the top level, as the default for every process,
//! and in a `[[process]]` table, for that process alone; `log_file` only in
//! a process, `log_dir` only at the top. Parsing stays pure, as the rest of
//! [`super::parse`]; whether the directories exist is asked afterwards, by
//! [`LogConfig::check_paths`], at load and at every reload.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml::de::DeValue;
use toml::Spanned;

use super::{ConfigError, Parser, Span};
use crate::stamp::Timestamps;

/// A file rotates once the next line would take it past this: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 20;

/// Rotated files kept by default: `PATH.1` to `PATH.5`.
pub const DEFAULT_BACKUPS: u32 = 5;

/// The most rotated files `log_backups` may keep: each rotation renames
/// every one of them.
pub const MAX_BACKUPS: u32 = 1000;

/// The mode a log file is created with by default.
pub const DEFAULT_MODE: u32 = 0o640;

/// The log settings of every process, in config order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// Each process's settings, by name.
    pub processes: Vec<(String, LogSettings)>,
    /// Each directory that must exist, and where the file said so: the
    /// parent of a `log_file`, or `log_dir`.
    checks: Vec<PathCheck>,
    /// Each process's file and where the file named it (its `log_file`, or
    /// its name under `log_dir`), to find two that are one file on disk.
    files: Vec<(String, PathCheck)>,
}

/// A directory that must exist (or, in `files`, a file), and the place
/// that named it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PathCheck {
    dir: PathBuf,
    key: &'static str,
    file_name: String,
    line: usize,
    column: usize,
}

impl PathCheck {
    /// The path, escaped for an error message.
    fn shown(&self) -> String {
        super::escape_for_message(self.dir.as_os_str().as_encoded_bytes())
    }

    /// An error at the key that named the path: `` `KEY`: MESSAGE ``.
    fn error(&self, message: std::fmt::Arguments<'_>) -> ConfigError {
        ConfigError {
            file_name: self.file_name.clone(),
            line: self.line,
            column: self.column,
            message: format!("`{}`: {message}", self.key),
        }
    }
}

/// Where one process's lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// The file its lines are written to, if any.
    pub file: Option<LogFile>,
    /// `log_stdout`: whether its lines also go to procmon's stdout.
    pub stdout: bool,
    /// `timestamps`, if set here or at the top level; unset, the place's
    /// default holds (see [`Timestamps::resolve`]).
    pub timestamps: Option<Timestamps>,
}

impl Default for LogSettings {
    /// What a process gets with no log key anywhere: its lines on stdout,
    /// as before log files existed.
    fn default() -> Self {
        LogSettings {
            file: None,
            stdout: true,
            timestamps: None,
        }
    }
}

/// One log file and how it rotates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    /// `log_file`, or `log_dir/NAME.log`.
    pub path: PathBuf,
    /// `log_max_bytes`: it rotates before a line would take it past this.
    pub max_bytes: u64,
    /// `log_backups`: rotated files kept, `PATH.1` (newest) to `PATH.N`.
    pub backups: u32,
    /// `log_file_mode`: the permissions a new file is created with.
    pub mode: u32,
}

impl LogConfig {
    /// The settings of `name`, or the defaults if it has none.
    pub fn settings(&self, name: &str) -> LogSettings {
        self.processes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    /// Whether any process writes a log file.
    pub fn has_files(&self) -> bool {
        self.processes.iter().any(|(_, s)| s.file.is_some())
    }

    /// Checks that every directory a log file goes into exists (the files
    /// themselves are opened when the first line comes), and that no log
    /// file, nor any of its rotated backups, is `config_file`, the file
    /// this config was read from. The error is at the `log_file` or
    /// `log_dir` that named it.
    pub fn check_paths(&self, config_file: Option<&Path>) -> Result<(), ConfigError> {
        for check in &self.checks {
            let problem = match std::fs::metadata(&check.dir) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(_) => "is not a directory".to_string(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    "does not exist (procmon creates log files, not directories)".to_string()
                }
                Err(e) => e.to_string(),
            };
            let shown = check.shown();
            return Err(check.error(format_args!("the directory \"{shown}\" {problem}")));
        }
        // Opening a directory for writing always fails: every line would
        // be dropped, with procmon running as if all were well.
        for (_, file) in &self.files {
            if std::fs::metadata(&file.dir).is_ok_and(|meta| meta.is_dir()) {
                let shown = file.shown();
                return Err(file.error(format_args!(
                    "the log file \"{shown}\" is a directory, not a file"
                )));
            }
        }
        // The text was compared at parsing; here, what it names: `./a.log`
        // and `a.log`, or a path through a symbolic link, are one file, and
        // two processes writing one file rotate it under each other.
        // A map, not a list searched for each file: a file of 25,000
        // processes must not cost a comparison per pair.
        let mut seen: BTreeMap<PathBuf, (&str, &PathCheck)> = BTreeMap::new();
        for (name, file) in &self.files {
            let (Some(parent), Some(file_name)) = (file.dir.parent(), file.dir.file_name()) else {
                continue;
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            // The directories exist (checked above); one that vanished
            // since is told when its file is opened.
            let Ok(parent) = std::fs::canonicalize(parent) else {
                continue;
            };
            let real = parent.join(file_name);
            if let Some((other, _)) = seen.get(&real) {
                let shown = file.shown();
                let real = super::escape_for_message(real.as_os_str().as_encoded_bytes());
                return Err(file.error(format_args!(
                    "the log file \"{shown}\" is \"{real}\", also process {other:?}'s: \
                     each process needs a file of its own"
                )));
            }
            seen.insert(real, (name, file));
        }
        // A rotation renames `PATH` to `PATH.1`, `PATH.1` to `PATH.2` and so
        // on, and deletes those past the backups kept: a process whose
        // file is one of them would have its lines moved into another's
        // backups, or deleted.
        for (real, (_, file)) in &seen {
            let Some((owner, _)) = backup_of(real).and_then(|rotated| seen.get(&rotated)) else {
                continue;
            };
            let shown = file.shown();
            return Err(file.error(format_args!(
                "the log file \"{shown}\" is where process {owner:?}'s log file keeps its \
                 rotated backups: each process needs a file of its own"
            )));
        }
        if let Some(config_file) = config_file {
            check_not_the_config_file(&seen, config_file)?;
        }
        Ok(())
    }
}

/// Refuses a log file that is the config file, which its lines would
/// overwrite and its rotation move away, or whose rotation would move or
/// delete the config file (`procmon.toml` as the backup of a log file
/// `procmon`: no rotation names it so, but `x.log.1` as a config file is
/// `x.log`'s first backup). Compared by the name with its directories
/// resolved, and, for a file that exists, by device and inode, which also
/// catches a symbolic or hard link to the config file.
fn check_not_the_config_file(
    seen: &BTreeMap<PathBuf, (&str, &PathCheck)>,
    config_file: &Path,
) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    // Read a moment ago, so it exists; if it has gone since, there is
    // nothing left to overwrite.
    let (Ok(config_real), Ok(config_meta)) = (
        std::fs::canonicalize(config_file),
        std::fs::metadata(config_file),
    ) else {
        return Ok(());
    };
    let rotated_into_config = backup_of(&config_real);
    for (real, (name, file)) in seen {
        let same_inode = std::fs::metadata(real)
            .is_ok_and(|m| m.dev() == config_meta.dev() && m.ino() == config_meta.ino());
        let shown = file.shown();
        if *real == config_real || same_inode {
            return Err(file.error(format_args!(
                "the log file \"{shown}\" of process {name:?} is the config file itself: \
                 its lines would overwrite it"
            )));
        }
        if rotated_into_config.as_ref() == Some(real) {
            return Err(file.error(format_args!(
                "the log file \"{shown}\" of process {name:?} keeps its rotated backups \
                 where the config file is: a rotation would move it away"
            )));
        }
    }
    Ok(())
}

/// The file whose rotated backup `path` would be: `a.log` for `a.log.3`
/// (a positive number written as rotation writes it, no leading zero).
fn backup_of(path: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let name = path.file_name()?.as_bytes();
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let (stem, number) = (&name[..dot], &name[dot + 1..]);
    let is_backup_number =
        !number.is_empty() && number[0] != b'0' && number.iter().all(u8::is_ascii_digit);
    if stem.is_empty() || !is_backup_number {
        return None;
    }
    Some(path.with_file_name(std::ffi::OsStr::from_bytes(stem)))
}

/// The log keys of one table, as written, before defaults are filled in.
#[derive(Clone, Debug, Default)]
pub(super) struct LogKeys {
    file: Option<(PathBuf, Span)>,
    dir: Option<(PathBuf, Span)>,
    max_bytes: Option<u64>,
    backups: Option<u32>,
    stdout: Option<bool>,
    mode: Option<u32>,
    timestamps: Option<Timestamps>,
    /// The first key written that only a file uses (`log_max_bytes`,
    /// `log_backups`, `log_file_mode`), and where its value is.
    file_only: Option<(&'static str, Span)>,
}

impl Parser<'_> {
    /// Reads `key` into `keys` if it is a log key of the place (`top`: the
    /// top level, else a `[[process]]` table); false if it is not one.
    pub(super) fn log_key(
        &self,
        keys: &mut LogKeys,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        top: bool,
    ) -> Result<bool, ConfigError> {
        if let Some(only) = ["log_max_bytes", "log_backups", "log_file_mode"]
            .into_iter()
            .find(|k| *k == key)
        {
            keys.file_only.get_or_insert((only, value.span()));
        }
        match key {
            "log_file" if !top => {
                keys.file = Some((self.log_path("log_file", value)?, value.span()))
            }
            "log_dir" if top => keys.dir = Some((self.log_path("log_dir", value)?, value.span())),
            "log_max_bytes" => {
                let int = value.get_ref().as_integer().ok_or_else(|| {
                    self.wrong_type(value, "`log_max_bytes` must be a whole number of bytes")
                })?;
                let text = int.as_str();
                match u64::from_str_radix(text, int.radix()) {
                    Ok(bytes) if bytes >= 1 => keys.max_bytes = Some(bytes),
                    Err(_) if !text.starts_with('-') => {
                        return Err(self.error(
                            value.span(),
                            format!("`log_max_bytes` is too large, found {text}"),
                        ))
                    }
                    _ => {
                        return Err(self.error(
                            value.span(),
                            format!("`log_max_bytes` must be at least 1 byte, found {text}"),
                        ))
                    }
                }
            }
            "log_backups" => {
                let max = MAX_BACKUPS as usize;
                keys.backups = Some(self.bounded("log_backups", "files", max, value)? as u32);
            }
            "log_stdout" => {
                keys.stdout =
                    Some(value.get_ref().as_bool().ok_or_else(|| {
                        self.wrong_type(value, "`log_stdout` must be true or false")
                    })?);
            }
            "log_file_mode" => keys.mode = Some(self.file_mode(value)?),
            "timestamps" => {
                let text = self.string("timestamps", value)?;
                keys.timestamps = Some(Timestamps::from_name(text).ok_or_else(|| {
                    self.error(
                        value.span(),
                        format!("`timestamps` must be \"rfc3339\" or \"off\", found {text:?}"),
                    )
                })?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A path: not empty, no NUL; for `log_file`, not written as a
    /// directory.
    fn log_path(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<PathBuf, ConfigError> {
        let text = self.string(key, value)?;
        if text.is_empty() {
            return Err(self.error(value.span(), format!("`{key}` must not be empty")));
        }
        if text.contains('\0') {
            return Err(self.error(value.span(), format!("`{key}` holds a NUL character")));
        }
        // Written as a directory (`logs/`, `..`), a `log_file` can never be
        // opened as a file, whatever is on disk; one that only turns out to
        // be a directory is found by `check_paths`.
        let last = text.rsplit('/').next().unwrap_or(text);
        if key == "log_file" && matches!(last, "" | "." | "..") {
            return Err(self.error(
                value.span(),
                format!("`{key}` must name a file, not a directory, found {text:?}"),
            ));
        }
        Ok(PathBuf::from(text))
    }

    /// `log_file_mode`: permission bits in octal, as a string (`"0640"`)
    /// or a TOML octal integer (`0o640`). A decimal integer is refused:
    /// `640` would mean `0o1200`, which nobody writing it means.
    fn file_mode(&self, value: &Spanned<DeValue<'_>>) -> Result<u32, ConfigError> {
        let (text, radix_ok) = match value.get_ref() {
            DeValue::String(text) => (text.as_ref(), true),
            DeValue::Integer(int) => (int.as_str(), int.radix() == 8),
            _ => {
                return Err(self.wrong_type(
                    value,
                    "`log_file_mode` must be an octal mode, as \"0640\" or 0o640",
                ))
            }
        };
        let mode = u32::from_str_radix(text, 8).ok().filter(|_| radix_ok);
        match mode {
            Some(mode) if mode <= 0o777 && !text.is_empty() => Ok(mode),
            _ => Err(self.error(
                value.span(),
                format!(
                    "`log_file_mode` must be permission bits in octal, from \"0000\" to \"0777\" \
                     (as \"0640\" or 0o640), found {}",
                    match value.get_ref() {
                        DeValue::String(_) => format!("{text:?}"),
                        _ => text.to_string(),
                    }
                ),
            )),
        }
    }

    /// Each process's settings: its own keys, else the top level's, else
    /// the defaults. `processes` are the names, where each was written,
    /// and the process's own keys.
    pub(super) fn log_config(
        &self,
        top: &LogKeys,
        processes: &[(&str, Span, &LogKeys)],
    ) -> Result<LogConfig, ConfigError> {
        let mut config = LogConfig::default();
        // Each directory is checked once, at the first place that named
        // it: where its error would be told anyway.
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        let mut check = |dir: &Path, key: &'static str, span: &Span| {
            let (line, column) = self.line_column(span.start);
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let entry = PathCheck {
                dir: dir.to_path_buf(),
                key,
                file_name: self.file_name.to_string(),
                line,
                column,
            };
            if dirs.insert(entry.dir.clone()) {
                config.checks.push(entry);
            }
        };
        if let Some((dir, span)) = &top.dir {
            check(dir, "log_dir", span);
        }
        // Two processes writing one file would rotate it under each other.
        let mut paths: BTreeMap<PathBuf, &str> = BTreeMap::new();
        let mut settings = Vec::with_capacity(processes.len());
        for (name, name_span, own) in processes {
            let path = match (&own.file, &top.dir) {
                (Some((path, span)), _) => {
                    check(path.parent().unwrap_or(Path::new(".")), "log_file", span);
                    Some((path.clone(), span.clone()))
                }
                (None, Some((dir, _))) => Some((
                    dir.join(self.log_file_name(name, name_span)?),
                    name_span.clone(),
                )),
                (None, None) => None,
            };
            // Set where no file is, these would be ignored without a word,
            // and an operator who forgot `log_file` would not notice.
            if let (None, Some((key, span))) = (&path, &own.file_only) {
                return Err(self.error(
                    span.clone(),
                    format!(
                        "`{key}` needs a log file: give this process `log_file`, \
                         or `log_dir` at the top level"
                    ),
                ));
            }
            if let Some((path, span)) = &path {
                let (line, column) = self.line_column(span.start);
                config.files.push((
                    name.to_string(),
                    PathCheck {
                        dir: path.clone(),
                        key: if own.file.is_some() {
                            "log_file"
                        } else {
                            "name"
                        },
                        file_name: self.file_name.to_string(),
                        line,
                        column,
                    },
                ));
                if let Some(other) = paths.get(path) {
                    let shown = super::escape_for_message(path.as_os_str().as_encoded_bytes());
                    return Err(self.error(
                        span.clone(),
                        format!(
                            "the log file \"{shown}\" is also process {other:?}'s: \
                             each process needs a file of its own"
                        ),
                    ));
                }
                paths.insert(path.clone(), name);
            }
            let file = path.map(|(path, _)| LogFile {
                path,
                max_bytes: own.max_bytes.or(top.max_bytes).unwrap_or(DEFAULT_MAX_BYTES),
                backups: own.backups.or(top.backups).unwrap_or(DEFAULT_BACKUPS),
                mode: own.mode.or(top.mode).unwrap_or(DEFAULT_MODE),
            });
            settings.push((
                name.to_string(),
                LogSettings {
                    file,
                    stdout: own.stdout.or(top.stdout).unwrap_or(true),
                    timestamps: own.timestamps.or(top.timestamps),
                },
            ));
        }
        // At the top level they are defaults: wrong only if nobody uses them.
        if let (Some((key, span)), true) = (&top.file_only, config.files.is_empty()) {
            return Err(self.error(
                span.clone(),
                format!(
                    "`{key}` needs a log file: no process has one \
                     (`log_file` in a process, or `log_dir` here)"
                ),
            ));
        }
        config.processes = settings;
        Ok(config)
    }

    /// `NAME.log`, for a process in `log_dir`; a name that cannot be one
    /// file's name is an error at the name rather than a file somewhere
    /// else (`a/../../etc/x`).
    fn log_file_name(&self, name: &str, span: &Span) -> Result<String, ConfigError> {
        let file = format!("{name}.log");
        if name.contains('/') {
            return Err(self.error(
                span.clone(),
                format!(
                    "`name` {name:?} holds '/', so it cannot name a file in `log_dir`: \
                     give this process a `log_file` of its own"
                ),
            ));
        }
        // NAME_MAX on Linux's file systems.
        if file.len() > 255 {
            return Err(self.error(
                span.clone(),
                format!(
                    "`name` is {} bytes, too long to name a file in `log_dir` (at most 251): \
                     give this process a `log_file` of its own",
                    name.len()
                ),
            ));
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const P: &str = "[[process]]\nname = \"a\"\nargv = [\"a\"]\n";

    fn logs(source: &str) -> LogConfig {
        parse(source, "f.toml").unwrap().logs
    }

    fn error(source: &str) -> String {
        parse(source, "f.toml")
            .and_then(|c| c.logs.check_paths(None).map(|()| c))
            .map(|c| panic!("accepted: {:?}", c.logs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_globals_and_a_process_own_keys() {
        let config = logs(&format!(
            "log_dir = \"/var/log/x\"\nlog_max_bytes = 1000\nlog_stdout = false\n\
             timestamps = \"off\"\n{P}log_backups = 0\nlog_file_mode = \"0600\"\n\
             [[process]]\nname = \"b\"\nargv = [\"b\"]\nlog_file = \"/tmp/b.txt\"\n\
             log_file_mode = 0o644\ntimestamps = \"rfc3339\"\nlog_stdout = true\n"
        ));
        assert_eq!(
            config.settings("a"),
            LogSettings {
                file: Some(LogFile {
                    path: "/var/log/x/a.log".into(),
                    max_bytes: 1000,
                    backups: 0,
                    mode: 0o600,
                }),
                stdout: false,
                timestamps: Some(Timestamps::Off),
            }
        );
        assert_eq!(
            config.settings("b"),
            LogSettings {
                file: Some(LogFile {
                    path: "/tmp/b.txt".into(),
                    max_bytes: 1000,
                    backups: DEFAULT_BACKUPS,
                    mode: 0o644,
                }),
                stdout: true,
                timestamps: Some(Timestamps::Rfc3339),
            }
        );
        let plain = logs(P);
        assert_eq!(plain.settings("a"), LogSettings::default());
        assert!(!plain.has_files());
        let file = logs(&format!("{P}log_file = \"x.log\"\n")).settings("a");
        assert_eq!(
            file.file,
            Some(LogFile {
                path: "x.log".into(),
                max_bytes: DEFAULT_MAX_BYTES,
                backups: DEFAULT_BACKUPS,
                mode: DEFAULT_MODE,
            })
        );
    }

    #[test]
    fn bad_values_are_located() {
        for (source, want) in [
            (
                format!("{P}log_max_bytes = 0\n"),
                "f.toml:4:17: `log_max_bytes` must be at least 1 byte, found 0",
            ),
            (
                format!("log_max_bytes = -5\n{P}"),
                "f.toml:1:17: `log_max_bytes` must be at least 1 byte, found -5",
            ),
            (
                format!("{P}log_backups = 1001\n"),
                "f.toml:4:15: `log_backups` must be from 0 to 1000, found 1001",
            ),
            (
                format!("{P}log_file_mode = \"0948\"\n"),
                "f.toml:4:17: `log_file_mode` must be permission bits in octal, from \"0000\" to \"0777\" (as \"0640\" or 0o640), found \"0948\"",
            ),
            (
                format!("{P}log_file_mode = 640\n"),
                "f.toml:4:17: `log_file_mode` must be permission bits in octal",
            ),
            (
                format!("{P}log_file_mode = 0o4755\n"),
                "f.toml:4:17: `log_file_mode` must be permission bits in octal",
            ),
            (
                format!("{P}timestamps = \"iso\"\n"),
                "f.toml:4:14: `timestamps` must be \"rfc3339\" or \"off\", found \"iso\"",
            ),
            (
                format!("{P}log_stdout = \"no\"\n"),
                "f.toml:4:14: `log_stdout` must be true or false, found string",
            ),
            (
                format!("{P}log_file = \"\"\n"),
                "f.toml:4:12: `log_file` must not be empty",
            ),
            (
                format!("log_file = \"x\"\n{P}"),
                "f.toml:1:1: unknown key `log_file` at the top level",
            ),
            (
                format!("{P}log_dir = \"x\"\n"),
                "f.toml:4:1: unknown key `log_dir` in `[[process]]`",
            ),
            (
                "log_dir = \"/tmp\"\n[[process]]\nname = \"../etc/x\"\nargv = [\"a\"]\n"
                    .to_string(),
                "f.toml:3:8: `name` \"../etc/x\" holds '/', so it cannot name a file in `log_dir`",
            ),
            (
                format!(
                    "{P}log_file = \"/tmp/same\"\n[[process]]\nname = \"b\"\nargv = [\"b\"]\n\
                     log_file = \"/tmp/same\"\n"
                ),
                "f.toml:8:12: the log file \"/tmp/same\" is also process \"a\"'s",
            ),
            (
                // Written otherwise, the same file.
                format!(
                    "{P}log_file = \"/tmp/same\"\n[[process]]\nname = \"b\"\nargv = [\"b\"]\n\
                     log_file = \"/tmp/../tmp/same\"\n"
                ),
                "f.toml:8:12: `log_file`: the log file \"/tmp/../tmp/same\" is \"/tmp/same\", \
                 also process \"a\"'s",
            ),
            (
                // Another's backup: a's rotations would move or delete it.
                format!(
                    "{P}log_file = \"/tmp/same\"\n[[process]]\nname = \"b\"\nargv = [\"b\"]\n\
                     log_file = \"/tmp/../tmp/same.3\"\n"
                ),
                "f.toml:8:12: `log_file`: the log file \"/tmp/../tmp/same.3\" is where \
                 process \"a\"'s log file keeps its rotated backups",
            ),
            (
                format!("{P}log_file = \"/nonexistent-procmon-dir/a.log\"\n"),
                "f.toml:4:12: `log_file`: the directory \"/nonexistent-procmon-dir\" does not exist",
            ),
            (
                format!("log_dir = \"/nonexistent-procmon-dir\"\n{P}"),
                "f.toml:1:11: `log_dir`: the directory \"/nonexistent-procmon-dir\" does not exist",
            ),
            (
                format!("{P}log_file = \"/proc/version/a.log\"\n"),
                "f.toml:4:12: `log_file`: the directory \"/proc/version\" is not a directory",
            ),
        ] {
            let got = error(&source);
            assert!(got.starts_with(want), "for {source:?}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn a_backup_is_a_positive_number_after_the_files_name() {
        let backup = |p: &str| backup_of(Path::new(p)).map(|b| b.display().to_string());
        assert_eq!(backup("/l/a.log.1").as_deref(), Some("/l/a.log"));
        assert_eq!(backup("a.log.10").as_deref(), Some("a.log"));
        assert_eq!(backup("/l/a.2").as_deref(), Some("/l/a"));
        for not in [
            "/l/a.log",
            "/l/a.log.0",
            "/l/a.log.01",
            "/l/a.log.",
            "/l/.1",
            "/l/a.log.1x",
        ] {
            assert_eq!(backup(not), None, "{not}");
        }
    }

    /// A file's settings where there is no file would be silently
    /// ignored, as `ready_timeout` without `ready` would be: refused at
    /// the key, in a process and at the top level alike.
    #[test]
    fn file_settings_without_a_file_are_refused() {
        let f = "log_file = \"/tmp/f.log\"\n";
        for (source, want) in [
            (
                format!("{P}log_max_bytes = 1000\n"),
                "f.toml:4:17: `log_max_bytes` needs a log file: give this process `log_file`, \
                 or `log_dir` at the top level",
            ),
            (
                format!("{P}log_stdout = false\nlog_file_mode = \"0600\"\nlog_backups = 2\n"),
                "f.toml:5:17: `log_file_mode` needs a log file",
            ),
            (
                format!("log_backups = 2\n{P}"),
                "f.toml:1:15: `log_backups` needs a log file: no process has one \
                 (`log_file` in a process, or `log_dir` here)",
            ),
        ] {
            let got = error(&source);
            assert!(
                got.starts_with(want),
                "for {source:?}\n got: {got}\nwant: {want}"
            );
        }
        // At the top level they are defaults: fine once any process has a
        // file, and then for that one.
        let config = logs(&format!(
            "log_backups = 2\n{P}[[process]]\nname = \"b\"\nargv = [\"b\"]\n{f}"
        ));
        assert_eq!(config.settings("b").file.unwrap().backups, 2);
        assert!(parse(&format!("{P}{f}log_backups = 2\n"), "f.toml").is_ok());
    }

    /// Finding two processes with one file must not cost a comparison per
    /// pair: a 1 MiB file holds some 25,000 processes, and a reload is
    /// read on the loop, which supervises nothing meanwhile. The bound is
    /// generous (linear work takes about a second here; a comparison per
    /// pair took over a minute).
    #[test]
    fn many_processes_under_log_dir_load_in_linear_time() {
        let dir = std::env::temp_dir();
        let mut source = format!("log_dir = \"{}\"\n", dir.display());
        for i in 0..25_000 {
            source.push_str(&format!("[[process]]\nname = \"p{i}\"\nargv = [\"a\"]\n"));
        }
        let started = std::time::Instant::now();
        let config = parse(&source, "f.toml").unwrap();
        config.logs.check_paths(None).unwrap();
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(30),
            "25,000 processes took {took:?}"
        );
    }

    /// A directory cannot be opened as a log file: written as one, or
    /// found to be one on disk, it is refused at the key that named it.
    #[test]
    fn a_log_file_that_is_a_directory_is_located() {
        for (source, want) in [
            (
                format!("{P}log_file = \"logs/\"\n"),
                "f.toml:4:12: `log_file` must name a file, not a directory, found \"logs/\"",
            ),
            (
                format!("{P}log_file = \".\"\n"),
                "f.toml:4:12: `log_file` must name a file, not a directory, found \".\"",
            ),
            (
                format!("{P}log_file = \"/tmp/..\"\n"),
                "f.toml:4:12: `log_file` must name a file, not a directory, found \"/tmp/..\"",
            ),
            (
                format!("{P}log_file = \"/tmp\"\n"),
                "f.toml:4:12: `log_file`: the log file \"/tmp\" is a directory, not a file",
            ),
        ] {
            let got = error(&source);
            assert!(
                got.starts_with(want),
                "for {source:?}\n got: {got}\nwant: {want}"
            );
        }
        // A file's name that merely ends in dots is a file's name.
        assert!(parse(&format!("{P}log_file = \"/tmp/a..\"\n"), "f.toml").is_ok());
    }

    /// A fresh directory of this test's own under the system's temporary
    /// directory.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("procmon-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The error for a config at `config` whose only process writes `log`.
    fn config_file_error(config: &Path, log: &Path) -> String {
        let source = format!("{P}log_file = \"{}\"\n", log.display());
        std::fs::write(config, &source).unwrap();
        parse(&source, "f.toml")
            .and_then(|c| c.logs.check_paths(Some(config)).map(|()| c))
            .map(|c| panic!("accepted: {:?}", c.logs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_log_file_that_is_the_config_file_is_refused() {
        let dir = scratch("log-is-config");
        let config = dir.join("procmon.toml");
        let want = "is the config file itself: its lines would overwrite it";
        // By name, through `..`, and through a symbolic and a hard link.
        let through_dots = dir.join("sub/../procmon.toml");
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::os::unix::fs::symlink(&config, dir.join("link.log")).unwrap();
        for log in [config.clone(), through_dots, dir.join("link.log")] {
            let got = config_file_error(&config, &log);
            assert!(got.starts_with("f.toml:4:12: `log_file`"), "{got}");
            assert!(got.contains(want), "{log:?}: {got}");
        }
        std::fs::hard_link(&config, dir.join("hard.log")).unwrap();
        let got = config_file_error(&config, &dir.join("hard.log"));
        assert!(got.contains(want), "{got}");
        // Where rotation would move it: `x.log.1` is `x.log`'s first backup.
        let numbered = dir.join("x.log.1");
        let got = config_file_error(&numbered, &dir.join("x.log"));
        assert!(
            got.contains("keeps its rotated backups where the config file is"),
            "{got}"
        );
        // Another file beside it is fine.
        let source = format!("{P}log_file = \"{}\"\n", dir.join("a.log").display());
        let config_ok = parse(&source, "f.toml").unwrap();
        config_ok.logs.check_paths(Some(&config)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
