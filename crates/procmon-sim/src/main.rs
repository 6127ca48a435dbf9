//! `procmon-sim`: replay scenario files.
//!
//! - `procmon-sim trace FILE`: the trace on standard output, failures on
//!   standard error, exit 1 if the scenario failed.
//! - `procmon-sim check PATH...`: every `.scn` file under the paths, sorted;
//!   `ok PATH` or `FAIL PATH` and its messages for each, then `N passed, M
//!   failed`; exit 1 if any failed. Where `X.trace` sits beside `X.scn`, the
//!   trace must also match it.
//!
//! Usage errors exit 2.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: procmon-sim trace FILE | procmon-sim check PATH...";

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some(command) = args.first().and_then(|a| a.to_str()) else {
        return usage();
    };
    let rest = &args[1..];
    match command {
        "trace" if rest.len() == 1 => trace(Path::new(&rest[0])),
        "check" if !rest.is_empty() => check(rest.iter().map(PathBuf::from).collect()),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn trace(path: &Path) -> ExitCode {
    let label = path.display().to_string();
    let source = match std::fs::read(path) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("{label}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = procmon_sim::run(&label, &source);
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not worth a panic.
    let _ = stdout.write_all(outcome.trace.as_bytes());
    let _ = stdout.flush();
    for message in outcome.messages() {
        eprintln!("{message}");
    }
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check(paths: Vec<PathBuf>) -> ExitCode {
    // A path that cannot be read is reported in its sorted place, as a failure.
    let mut found: Vec<(PathBuf, Option<String>)> = Vec::new();
    for path in paths {
        collect(&path, true, &mut found);
    }
    found.sort();
    found.dedup();
    let (mut passed, mut failed) = (0usize, 0usize);
    // A closed pipe (`| head`) is not worth a panic; the exit code still tells.
    let mut out = std::io::stdout().lock();
    for (path, error) in &found {
        let messages = match error {
            Some(error) => vec![error.clone()],
            None => check_file(path),
        };
        if messages.is_empty() {
            let _ = writeln!(out, "ok {}", path.display());
            passed += 1;
        } else {
            let _ = writeln!(out, "FAIL {}", path.display());
            for message in messages {
                let _ = writeln!(out, "  {message}");
            }
            failed += 1;
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one scenario and compares its trace with a `.trace` beside it.
fn check_file(file: &Path) -> Vec<String> {
    let label = file.display().to_string();
    let source = match std::fs::read(file) {
        Ok(source) => source,
        Err(error) => return vec![format!("{label}: {error}")],
    };
    let outcome = procmon_sim::run(&label, &source);
    let mut messages: Vec<String> = outcome.messages().map(|m| m.to_string()).collect();
    let snapshot = file.with_extension("trace");
    if let Ok(expected) = std::fs::read(&snapshot) {
        if expected != outcome.trace.as_bytes() {
            messages.push(format!(
                "{label}: the trace differs from {}",
                snapshot.display()
            ));
        }
    }
    messages
}

/// Every `.scn` file under `path`, or the error that kept it from being
/// read; a file named on the command line is taken whatever its name.
fn collect(path: &Path, named: bool, found: &mut Vec<(PathBuf, Option<String>)>) {
    let mut fail = |error: std::io::Error| {
        found.push((
            path.to_path_buf(),
            Some(format!("{}: {error}", path.display())),
        ))
    };
    match std::fs::metadata(path) {
        Err(error) => fail(error),
        Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
            Err(error) => fail(error),
            Ok(entries) => {
                for entry in entries {
                    match entry {
                        Ok(entry) => collect(&entry.path(), false, found),
                        Err(error) => found.push((
                            path.to_path_buf(),
                            Some(format!("{}: {error}", path.display())),
                        )),
                    }
                }
            }
        },
        Ok(_) => {
            if named || path.extension().is_some_and(|e| e == "scn") {
                found.push((path.to_path_buf(), None));
            }
        }
    }
}
