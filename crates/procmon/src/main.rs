//! `procmon`: see `procmon --help`.

use std::io;
use std::os::fd::AsFd;
use std::process::ExitCode;

use procmon::cli::Cli;
use procmon::config::{self, SystemAccounts};
use procmon::output::Printer;
use procmon::run::{self, Outcome};
use procmon_core::{Definitions, Monitor};

/// Usage and configuration errors, as clap reports its own.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
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
    let definitions = match &cli.config {
        Some(path) => match load(path) {
            Ok(definitions) => definitions,
            Err(message) => {
                eprintln!("procmon: {message}");
                return ExitCode::from(USAGE_ERROR);
            }
        },
        // try_parse_checked has refused a minimum restart delay above the
        // maximum.
        None => cli.command_definitions(),
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
    match run::run(monitor, printer) {
        Ok(Outcome::Stopped) => ExitCode::SUCCESS,
        Ok(Outcome::OutputFailed) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("procmon: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Reads, parses and resolves a config file; the error is one line.
fn load(path: &std::path::Path) -> Result<Definitions, String> {
    // The name as given, escaped: it may hold a newline or an ESC, and the
    // error must stay one line of plain text.
    let shown = config::escape_for_message(path.as_os_str().as_encoded_bytes());
    let source = config::read_source(path, &shown)?;
    config::parse(&source, &shown)
        .and_then(|config| config.resolve(&SystemAccounts))
        .map_err(|e| e.to_string())
}

/// A `File` of our own on the same open file as `fd`.
fn own_file(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<std::fs::File> {
    fd.try_clone_to_owned().map(std::fs::File::from)
}
