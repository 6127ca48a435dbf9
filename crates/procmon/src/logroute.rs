//! Where each child's line goes: its log file, procmon's stdout, both or
//! neither, and whether it carries the time procmon read it. The event
//! loop's observer asks a [`LogRouter`] for every line; the files
//! themselves are [`crate::logfile`]'s.

use std::collections::HashMap;
use std::io::{self, Write};

use procmon_core::Stream;

use crate::config::{LogConfig, LogSettings};
use crate::logfile::{FileId, LogFiles};
use crate::output::{OutBlocks, PrefixId, Printer};
use crate::stamp::{Clock, Timestamps};

/// Where each process's lines go: its log file, procmon's stdout, or both,
/// and whether each gets the time. The event loop's side of the log files.
#[derive(Debug)]
pub struct LogRouter {
    files: LogFiles,
    routes: HashMap<String, Route>,
    /// Each process's settings as last taken, to tell what a reload changed.
    settings: HashMap<String, LogSettings>,
    /// `--timestamps`, which overrides the config's.
    timestamps: Option<Timestamps>,
    clock: Clock,
    /// The time of the current read of a pipe, once a line of it needed
    /// one: lines read together carry the time they were read.
    read_at: Option<crate::stamp::Stamp>,
}

/// One process's way: what [`LogRouter::route_of`] finds, once for the
/// lines of one read.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    file: Option<FileId>,
    stdout: bool,
    stamp_stdout: bool,
    stamp_file: bool,
}

impl Route {
    /// Stdout only, no time: the way of a process with no settings.
    const PLAIN: Route = Route {
        file: None,
        stdout: true,
        stamp_stdout: false,
        stamp_file: false,
    };
}

impl LogRouter {
    /// Routes by `config`, with `timestamps` (the command line's) over the
    /// config's settings; starts the writer thread.
    pub fn start(config: &LogConfig, timestamps: Option<Timestamps>) -> io::Result<LogRouter> {
        let mut router = LogRouter {
            files: LogFiles::start()?,
            routes: HashMap::new(),
            settings: HashMap::new(),
            timestamps,
            clock: Clock::default(),
            read_at: None,
        };
        router.configure(config);
        Ok(router)
    }

    /// Takes new settings (a reload): files are opened, changed and closed
    /// as [`LogFiles::configure`] says, and the running processes are not
    /// touched. Gives the processes, kept from before, whose settings
    /// changed (the core's reload plan cannot tell of them).
    pub fn configure(&mut self, config: &LogConfig) -> Vec<String> {
        let changed = self.changes(config);
        self.settings = config.processes.iter().cloned().collect();
        self.files.configure(config);
        // A process whose way is the default one is left out, so that a
        // run without log settings pays no lookup per line.
        let default = LogSettings::default();
        self.routes = config
            .processes
            .iter()
            .filter(|(_, settings)| *settings != default)
            .map(|(name, settings)| {
                let timestamps = self.timestamps.or(settings.timestamps);
                let route = Route {
                    file: self.files.file_of(name),
                    stdout: settings.stdout,
                    stamp_stdout: Timestamps::resolve(timestamps, false),
                    stamp_file: Timestamps::resolve(timestamps, true),
                };
                (name.clone(), route)
            })
            .collect();
        changed
    }

    /// The processes of `config`, kept from the settings in force, whose
    /// log settings differ: what [`LogRouter::configure`] would give, told
    /// without applying anything (a dry run).
    pub fn changes(&self, config: &LogConfig) -> Vec<String> {
        config
            .processes
            .iter()
            .filter(|(name, new)| self.settings.get(name).is_some_and(|old| old != new))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A read of a child's pipe has happened: the lines that follow, up to
    /// the next read, were read now.
    pub fn read_happened(&mut self) {
        self.read_at = None;
    }

    /// Sends one line of `name` where it goes. A name with no settings (a
    /// process just removed, whose last lines come after the reload) goes
    /// to stdout.
    pub fn line<O: OutBlocks, E: Write>(
        &mut self,
        printer: &mut Printer<O, E>,
        name: &str,
        stream: Stream,
        line: &[u8],
    ) {
        let route = self.route_of(name);
        self.line_on(route, None, printer, name, stream, line);
    }

    /// Where `name`'s lines go, for the lines of one read
    /// ([`LogRouter::line_on`]). A name with no settings goes to stdout.
    pub fn route_of(&self, name: &str) -> Route {
        if self.routes.is_empty() && self.timestamps.is_none() {
            return Route::PLAIN;
        }
        self.routes.get(name).copied().unwrap_or(Route {
            stamp_stdout: Timestamps::resolve(self.timestamps, false),
            ..Route::PLAIN
        })
    }

    /// Sends one line of `name` where `route` (its [`LogRouter::route_of`])
    /// says; with the prefix the printer named for its stream, if asked for.
    #[inline]
    pub fn line_on<O: OutBlocks, E: Write>(
        &mut self,
        route: Route,
        prefix: Option<PrefixId>,
        printer: &mut Printer<O, E>,
        name: &str,
        stream: Stream,
        line: &[u8],
    ) {
        let wants_stamp =
            (route.stdout && route.stamp_stdout) || (route.file.is_some() && route.stamp_file);
        let stamp = if wants_stamp {
            let clock = &mut self.clock;
            Some(*self.read_at.get_or_insert_with(|| clock.now()))
        } else {
            None
        };
        if route.stdout {
            match (prefix, route.stamp_stdout) {
                (Some(prefix), false) => printer.child_line_of(prefix, name, stream, line),
                (None, false) => printer.child_line(name, stream, line),
                (_, true) => printer.child_line_at(stamp.as_ref(), name, stream, line),
            }
        }
        if let Some(file) = route.file {
            let stamp = stamp.as_ref().filter(|_| route.stamp_file);
            self.files.line(file, stamp, stream, line);
        }
    }

    /// The files, for the loop: flush, reopen, congestion, reports.
    pub fn files(&mut self) -> &mut LogFiles {
        &mut self.files
    }

    /// The files, to ask.
    pub fn files_ref(&self) -> &LogFiles {
        &self.files
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logfile::testing::{read, settings, Dir};
    use std::time::Duration;

    #[test]
    fn the_router_sends_each_line_where_its_process_says() {
        use crate::output::LogFormat;
        let dir = Dir::new("router");
        let path = dir.0.join("both.log");
        let mut config = LogConfig::default();
        let with_file = |stdout| LogSettings {
            file: Some(settings(&path, 1 << 20, 1)),
            stdout,
            timestamps: None,
        };
        config.processes = vec![
            ("both".to_string(), with_file(true)),
            (
                "quiet".to_string(),
                LogSettings {
                    stdout: false,
                    ..LogSettings::default()
                },
            ),
        ];
        let mut router = LogRouter::start(&config, None).unwrap();
        let mut printer = Printer::new(LogFormat::Text, Vec::new(), Vec::new());
        router.line(&mut printer, "both", Stream::Stdout, b"one");
        router.line(&mut printer, "quiet", Stream::Stdout, b"nowhere");
        router.line(&mut printer, "unknown", Stream::Stderr, b"stdout only");
        assert_eq!(
            router
                .files()
                .drain(Duration::from_secs(20), Duration::from_secs(20)),
            0
        );
        let (out, _) = printer.into_inner().unwrap();
        // Stdout has no time by default; the file has.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[both] one\n[unknown] stdout only\n"
        );
        let file = read(&path);
        assert_eq!(&file[24..], " stdout one\n", "{file}");
        // --timestamps off wins over the file's default.
        let mut router = LogRouter::start(&config, Some(Timestamps::Off)).unwrap();
        let mut printer = Printer::new(LogFormat::Text, Vec::new(), Vec::new());
        router.line(&mut printer, "both", Stream::Stderr, b"two");
        assert_eq!(
            router
                .files()
                .drain(Duration::from_secs(20), Duration::from_secs(20)),
            0
        );
        assert!(read(&path).ends_with("\nstderr two\n"), "{}", read(&path));
    }
}
