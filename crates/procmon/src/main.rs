//! `procmon`: see `procmon --help`.

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::AsFd;
use std::process::ExitCode;

use procmon::cli::Cli;
use procmon::config::{self, ControlConfig, LogConfig, SystemAccounts};
use procmon::control::{self, Access, ConfigReread, StartOnlySettings};
use procmon::output::Printer;
use procmon::run::{self, Extras, Outcome};
use procmon_core::{Definitions, Monitor};

/// Usage and configuration errors, as clap reports its own.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    // `procmon ctl ...` is the client; `procmon -- ctl` still runs a
    // program named ctl. The client keeps default signal handling, so that
    // Ctrl-C ends a `logs -f`.
    let mut args = std::env::args_os();
    let _program = args.next();
    if args.next().is_some_and(|first| first == "ctl") {
        return ExitCode::from(procmon::ctl::main(args.collect()));
    }
    // Before anything else: a TERM that comes while the config is read must
    // wait for the supervisor, not kill us or, as PID 1, be dropped (so must
    // the other signals procmon catches: QUIT, USR1, USR2). PIPE needs
    // nothing here: Rust's runtime ignores it before `main`, so a write to a
    // reader that is gone fails with EPIPE, which the sink handles.
    if let Err(error) = procmon_mio::hold_caught_signals() {
        eprintln!("procmon: blocking signals: {error}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse_checked();
    // Each child costs procmon three descriptors; the soft limit (often
    // 1024) would stop it long before the hard one the administrator set.
    // Children get the limit procmon started with.
    if let Err(error) = procmon_mio::os::raise_open_files_limit() {
        eprintln!("procmon: raising RLIMIT_NOFILE: {error}");
    }
    let (definitions, control, logs, container) = match &cli.config {
        Some(path) => match load(path) {
            Ok(loaded) => loaded,
            Err(message) => {
                eprintln!("procmon: {message}");
                return ExitCode::from(USAGE_ERROR);
            }
        },
        // try_parse_checked has refused a minimum restart delay above the
        // maximum.
        None => {
            if let Err(message) = program_exists(&cli.command) {
                eprintln!("procmon: {message}");
                return ExitCode::from(USAGE_ERROR);
            }
            (
                cli.command_definitions(),
                ControlConfig::default(),
                LogConfig::default(),
                false,
            )
        }
    };
    // The socket is bound before anything starts, so that one that cannot
    // be had (another procmon answers there) runs nothing.
    let serve_socket = cli.config.is_some() || cli.socket.is_some();
    let bound = if serve_socket {
        let path = control::socket_path(cli.socket.as_deref(), control.socket.as_deref());
        match control::BoundSocket::bind(&path) {
            Ok(bound) => Some(bound),
            Err(error) => {
                eprintln!("procmon: {error}");
                return ExitCode::from(USAGE_ERROR);
            }
        }
    } else {
        None
    };
    // Bound before anything starts too: a port in use runs nothing.
    let metrics = match control.metrics_listen {
        Some(address) => match procmon::http::BoundListener::bind(address) {
            Ok(bound) => Some(bound),
            Err(error) => {
                eprintln!("procmon: {error}");
                return ExitCode::from(USAGE_ERROR);
            }
        },
        None => None,
    };
    // What procmon takes only now: a reload compares the file's against
    // these, which stay in force until procmon restarts.
    let in_force = StartOnlySettings::of(cli.socket.as_deref(), cli.container, &control, container);
    let extras = Extras {
        control: bound.map(|bound| {
            let ring = (in_force.log_lines, in_force.log_bytes);
            (bound, access(&control), ring)
        }),
        read_config: cli.config.clone().map(|path| -> run::ReadConfig {
            let in_force = in_force.clone();
            let (socket, container) = (cli.socket.clone(), cli.container);
            Box::new(move || {
                let (definitions, control, logs, enabled) = load(&path)?;
                let file = StartOnlySettings::of(socket.as_deref(), container, &control, enabled);
                Ok(ConfigReread {
                    definitions,
                    logs,
                    access: access(&control),
                    restart_needed: in_force.restart_needed(&file),
                })
            })
        }),
        metrics,
        logs,
        timestamps: cli.timestamps,
        container: in_force.container,
    };
    let monitor = match Monitor::from_definitions(definitions) {
        Ok(monitor) => monitor,
        Err(error) => {
            // The config parser and the command line check all of this
            // first; this is the core's word as a last line of defence.
            eprintln!("procmon: {error}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    // Our own descriptors: std's stdout is line-buffered, which would split
    // the printer's big writes and copy their tails, and std's stderr is
    // behind a lock that a writer thread blocked on a stalled reader would
    // hold, so that even a last `eprintln!` could not get through.
    let (stdout, stderr) = match (
        own_file(io::stdout().as_fd()),
        own_file(io::stderr().as_fd()),
    ) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("procmon: stdout or stderr: {error}");
            return ExitCode::FAILURE;
        }
    };
    let printer = Printer::new(cli.log_format, stdout, stderr);
    match run::run(monitor, printer, extras) {
        Ok(Outcome::Stopped) => ExitCode::SUCCESS,
        Ok(Outcome::OutputFailed) => ExitCode::FAILURE,
        Ok(Outcome::Finished(code)) => ExitCode::from(code),
        Err(error) => {
            eprintln!("procmon: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Who may use the control socket by the `[control]` table.
fn access(control: &ControlConfig) -> Access {
    Access {
        uids: control.allow_uids.clone(),
        gids: control.allow_gids.clone(),
    }
}

/// Reads, parses and resolves a config file, and checks that its log
/// files' directories exist: the definitions, the `[control]` table, the
/// log settings and whether `[container]` is enabled. The error is one
/// line.
fn load(path: &std::path::Path) -> Result<(Definitions, ControlConfig, LogConfig, bool), String> {
    // The name as given, escaped: it may hold a newline or an ESC, and the
    // error must stay one line of plain text.
    let shown = config::escape_for_message(path.as_os_str().as_encoded_bytes());
    let source = config::read_source(path, &shown)?;
    config::parse(&source, &shown)
        .and_then(|mut config| {
            let control = std::mem::take(&mut config.control);
            let logs = std::mem::take(&mut config.logs);
            let container = config.container;
            let definitions = config.resolve(&SystemAccounts)?;
            logs.check_paths(Some(path))?;
            Ok((definitions, control, logs, container))
        })
        .map_err(|e| e.to_string())
}

/// In one-command mode, a program that cannot be found is a usage error at
/// once (it would only back off for ever); `procmon status` most likely
/// meant `procmon ctl status`.
fn program_exists(command: &[std::ffi::OsString]) -> Result<(), String> {
    let Some(program) = command.first() else {
        return Ok(());
    };
    // The driver's own lookup, so the check and the spawn cannot disagree;
    // a program found but not executable is left to the spawn's report.
    match procmon_mio::find_program(program) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        _ => return Ok(()),
    }
    let bytes = program.as_encoded_bytes();
    let shown = config::escape_for_message(bytes);
    let hint = match shown.as_str() {
        "status" | "start" | "stop" | "restart" | "signal" | "reload" | "logs" | "watch"
        | "metrics" | "shutdown" => format!("; did you mean `procmon ctl {shown}`?"),
        _ => String::new(),
    };
    Err(format!("no program named `{shown}` in PATH{hint}"))
}

/// A `File` of our own on the same open file as `fd`.
fn own_file(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<std::fs::File> {
    fd.try_clone_to_owned().map(std::fs::File::from)
}
