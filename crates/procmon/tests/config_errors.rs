//! The `procmon` binary refusing config files and command lines: each
//! refusal is one line on stderr, exit status 2, and nothing started.
//!
//! Every run is bounded: a procmon still running after PATIENCE is killed
//! and the test fails (a config it blocks on must not hang the suite).

mod common;

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TempDir;

const PATIENCE: Duration = Duration::from_secs(20);

/// How a refused run ended.
struct Refusal {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs procmon to its end (killing it after PATIENCE), with nothing on
/// stdin.
fn run<S: AsRef<OsStr>>(args: &[S]) -> Refusal {
    let mut child = common::procmon(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start procmon");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            // SAFETY: our own child, not yet reaped; its group is its pid.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "procmon {:?} did not exit within {PATIENCE:?}",
                args_text(args)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Refusal {
        code: status.code(),
        stdout,
        stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
    }
}

fn args_text<S: AsRef<OsStr>>(args: &[S]) -> Vec<String> {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect()
}

/// Writes each `(source, want)` of `cases` to a file of its own in `dir`
/// and checks that procmon refuses it with one line that starts with the
/// file's path and then `want` (`:LINE:COL: message`).
fn each_refused_at(dir: &TempDir, cases: &[(impl AsRef<str>, impl AsRef<str>)]) {
    for (i, (source, want)) in cases.iter().enumerate() {
        let path = dir.write(format!("{i}.toml"), source.as_ref());
        let err = refused(&config_arg(&path), true);
        let want = format!("procmon: {}{}", path.display(), want.as_ref());
        assert!(err.starts_with(&want), "{err:?}\nwant {want:?}");
    }
}

/// Runs procmon with `args` and checks that it refused them as a usage or
/// config error should: status 2, nothing on stdout, and (for config
/// errors, `one_line`) exactly one line of plain text on stderr. Gives
/// stderr.
fn refused<S: AsRef<OsStr>>(args: &[S], one_line: bool) -> String {
    let refusal = run(args);
    let what = args_text(args);
    assert_eq!(refusal.code, Some(2), "{what:?}: {}", refusal.stderr);
    assert!(refusal.stdout.is_empty(), "{what:?}");
    assert!(
        !refusal.stderr.contains("spawned"),
        "{what:?}: {}",
        refusal.stderr
    );
    if one_line {
        let err = &refusal.stderr;
        assert!(err.starts_with("procmon: "), "{what:?}: {err}");
        assert!(err.ends_with('\n'), "{what:?}: {err:?}");
        assert_eq!(err.lines().count(), 1, "{what:?}: {err:?}");
        let body = &err[..err.len() - 1];
        assert!(!body.chars().any(char::is_control), "{what:?}: {err:?}");
    }
    refusal.stderr
}

fn config_arg(path: &Path) -> [&OsStr; 2] {
    ["--config".as_ref(), path.as_os_str()]
}

// ----- File names and keys in errors -----

#[test]
fn a_file_name_with_control_characters_is_shown_escaped() {
    let dir = TempDir::new();
    // Missing: the error from opening it.
    let missing = dir.path("nl\nname\u{1b}[31m.toml");
    let err = refused(&config_arg(&missing), true);
    let shown = format!("{}/nl\\nname\\u{{1b}}[31m.toml: ", dir.0.display());
    assert!(
        err.starts_with(&format!("procmon: {shown}No such file")),
        "{err:?}"
    );

    // Present, with an error inside: the located error.
    let bad = dir.write(
        "tab\tname.toml",
        "[[process]]\nname = \"a\"\nargv = [\"true\"]\ncolour = 1\n",
    );
    let err = refused(&config_arg(&bad), true);
    let want = format!(
        "procmon: {}/tab\\tname.toml:4:1: unknown key `colour`",
        dir.0.display()
    );
    assert!(err.starts_with(&want), "{err:?}");

    // Not UTF-8: the bytes as \xHH.
    let mut name = dir.0.clone().into_os_string().into_vec();
    name.extend_from_slice(b"/bad\xff.toml");
    let err = refused(&config_arg(Path::new(OsStr::from_bytes(&name))), true);
    assert!(err.contains("/bad\\xff.toml: No such file"), "{err:?}");
}

#[test]
fn a_key_with_control_characters_is_shown_escaped() {
    let dir = TempDir::new();
    let path = dir.write(
        "evil.toml",
        "\"evil\\nkey\\u001b[31m\" = 1\n[[process]]\nname = \"a\"\nargv = [\"true\"]\n",
    );
    let err = refused(&config_arg(&path), true);
    let want = format!(
        "procmon: {}:1:1: unknown key `evil\\nkey\\u{{1b}}[31m` at the top level",
        path.display()
    );
    assert!(err.starts_with(&want), "{err:?}");
}

// ----- Files that are not config files -----

#[test]
fn only_a_regular_file_is_read() {
    let dir = TempDir::new();
    let fifo = dir.path("fifo.toml");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a plain syscall on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let cases: &[(&Path, &str)] = &[
        // Opening it would wait for a writer for ever, with TERM held.
        (&fifo, "is a FIFO, not a regular file"),
        // Reading it would never end.
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (&dir.0, "is a directory, not a regular file"),
    ];
    for (path, want) in cases {
        let err = refused(&config_arg(path), true);
        let want = format!("procmon: {}: {want}", path.display());
        assert!(err.starts_with(&want), "{err:?}");
    }
}

#[test]
fn a_file_over_the_size_limit_is_refused_unread() {
    let dir = TempDir::new();
    let path = dir.path("big.toml");
    // Sparse: the size is what counts, not what is stored.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(procmon::config::MAX_FILE_BYTES + 1).unwrap();
    let err = refused(&config_arg(&path), true);
    let want = format!(
        "procmon: {}: is {} bytes, more than the 1 MiB a config file may be",
        path.display(),
        procmon::config::MAX_FILE_BYTES + 1
    );
    assert!(err.starts_with(&want), "{err:?}");

    // At the limit it is read (and here refused for what it holds).
    file.set_len(procmon::config::MAX_FILE_BYTES).unwrap();
    let err = refused(&config_arg(&path), true);
    assert!(err.contains("big.toml:1:"), "{err:?}");
}

#[test]
fn a_symlink_to_a_regular_file_is_read() {
    let dir = TempDir::new();
    let target = dir.write(
        "real.toml",
        "[[process]]\nname = \"a\"\nargv = [\"true\"]\nlinelimit = 0\n",
    );
    let link = dir.path("link.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = refused(&config_arg(&link), true);
    assert!(
        err.contains("link.toml:4:1: unknown key `linelimit`"),
        "{err:?}"
    );
}

// ----- Configs that could never start -----

#[test]
fn a_process_that_could_never_start_is_refused_at_load() {
    let dir = TempDir::new();
    let cases = [
        (
            "[[process]]\nname = \"a\"\nargv = [\"true\"]\ncwd = \"\"\n",
            ":4:7: `cwd` must not be empty",
        ),
        (
            "[[process]]\nname = \"a\"\nargv = [\"\"]\n",
            ":3:9: `argv[0]` must not be empty",
        ),
    ];
    each_refused_at(&dir, &cases);
}

#[test]
fn a_cycle_behind_a_long_chain_is_refused_within_patience() {
    // A chain of `after` 10,000 long, then a cycle the search meets only
    // past the chain: once quadratic (about 11 s for 4,000 in a debug
    // build), it must now be refused well within PATIENCE, with the cycle
    // named as ever. No time is asserted beyond that bound.
    let dir = TempDir::new();
    let mut source = String::new();
    for i in 0..10_000 {
        source.push_str(&format!("[[process]]\nname=\"p{i}\"\nargv=[\"true\"]\n"));
        if i > 0 {
            source.push_str(&format!("after={{p{}=\"started\"}}\n", i - 1));
        }
    }
    source.push_str("[[process]]\nname=\"x\"\nargv=[\"true\"]\nafter={y=\"started\"}\n");
    source.push_str("[[process]]\nname=\"y\"\nargv=[\"true\"]\nafter={x=\"started\"}\n");
    let path = dir.write("chain.toml", &source);
    let err = refused(&config_arg(&path), true);
    let line = source.lines().count() - 4;
    let want = format!(
        "procmon: {}:{line}:7: `after` closes a cycle (x -> y -> x): none of them could ever start\n",
        path.display()
    );
    assert_eq!(err, want);
}

// ----- Per-process policy -----

#[test]
fn a_bad_policy_value_is_one_located_line() {
    let dir = TempDir::new();
    let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
    let cases = [
        (
            format!("{p}restart = \"on-error\"\n"),
            ":4:11: `restart` must be \"always\", \"on-failure\" or \"never\", found \"on-error\"",
        ),
        (
            format!("{p}success_exit_codes = [1, 300]\n"),
            ":4:26: `success_exit_codes`: 300 is not an exit code (0 to 255)",
        ),
        (
            format!("{p}stop_signal = \"SIGNOPE\"\n"),
            ":4:15: `stop_signal` \"SIGNOPE\" is not a signal procmon can send",
        ),
        (
            format!("{p}give_up_after = 0\n"),
            ":4:17: `give_up_after` must be at least 1, found 0",
        ),
        (
            format!("{p}killtime = \"5\"\n"),
            ":4:12: `killtime` must be a number of seconds, found string",
        ),
        (
            format!("minrestartdelay = 3\n{p}maxrestartdelay = 2\n"),
            ":5:19: `minrestartdelay` (3 s, the global one) is above `maxrestartdelay` (2 s)",
        ),
        (
            format!("{p}retry_failed_after = 5\n"),
            ":4:22: `retry_failed_after` needs `give_up_after`",
        ),
    ];
    each_refused_at(&dir, &cases);
}

// ----- Command-line messages -----

#[test]
fn command_line_conflicts_show_values_and_what_is_missing() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-M", "0.5", "true"],
            "error: --minrestartdelay (1 s, the default) is above --maxrestartdelay (0.5 s)\n",
        ),
        (
            &["-k", "1"],
            "error: nothing to run: give a COMMAND, or --config FILE\n",
        ),
        (
            &["--line-limit", "67108865", "true"],
            "error: invalid value '67108865' for '--line-limit <BYTES>'",
        ),
        (&["-t", "1e400", "true"], "\"1e400\" is too large"),
        // The core's rule for a program: nothing could ever run.
        (
            &[""],
            "error: COMMAND is the empty string: name the program to run\n",
        ),
        (
            &["--line-limit", "0", "true"],
            "'--line-limit <BYTES>': must be at least 1 byte",
        ),
    ];
    for (args, want) in cases {
        let err = refused(args, false);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

// ----- Log files -----

#[test]
fn a_bad_log_setting_is_one_located_line() {
    let dir = TempDir::new();
    let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
    let missing = dir.path("no-such-dir/a.log");
    let cases = [
        (
            format!("{p}log_file = \"{}\"\n", missing.display()),
            format!(
                ":4:12: `log_file`: the directory \"{}\" does not exist",
                dir.path("no-such-dir").display()
            ),
        ),
        (
            format!("log_dir = \"{}\"\n{p}", dir.path("nowhere").display()),
            format!(
                ":1:11: `log_dir`: the directory \"{}\" does not exist",
                dir.path("nowhere").display()
            ),
        ),
        (
            format!("{p}log_file_mode = \"rw-r-----\"\n"),
            ":4:17: `log_file_mode` must be permission bits in octal".to_string(),
        ),
        (
            format!("timestamps = \"utc\"\n{p}"),
            ":1:14: `timestamps` must be \"rfc3339\" or \"off\", found \"utc\"".to_string(),
        ),
        (
            format!("{p}log_max_bytes = 0\n"),
            ":4:17: `log_max_bytes` must be at least 1 byte, found 0".to_string(),
        ),
    ];
    each_refused_at(&dir, &cases);
}

/// A log file that is a directory could never be written: every line
/// would be dropped at run time. It is refused at load, at the place that
/// named it, like a missing directory.
#[test]
fn a_log_file_that_is_a_directory_is_refused_at_load() {
    let dir = TempDir::new();
    let p = "[[process]]\nname = \"a\"\nargv = [\"true\"]\n";
    let logs = dir.path("logs");
    // Under `log_dir`, process a's file would be logs/a.log.
    std::fs::create_dir_all(logs.join("a.log")).unwrap();
    let cases = [
        (
            format!("{p}log_file = \"{}\"\n", dir.0.display()),
            format!(
                ":4:12: `log_file`: the log file \"{}\" is a directory, not a file",
                dir.0.display()
            ),
        ),
        (
            format!("{p}log_file = \"{}/new/\"\n", dir.0.display()),
            format!(
                ":4:12: `log_file` must name a file, not a directory, found \"{}/new/\"",
                dir.0.display()
            ),
        ),
        (
            format!("{p}log_file = \"{}/..\"\n", dir.0.display()),
            format!(
                ":4:12: `log_file` must name a file, not a directory, found \"{}/..\"",
                dir.0.display()
            ),
        ),
        (
            format!("log_dir = \"{}\"\n{p}", logs.display()),
            format!(
                ":3:8: `name`: the log file \"{}\" is a directory, not a file",
                logs.join("a.log").display()
            ),
        ),
    ];
    each_refused_at(&dir, &cases);
}

/// A control socket path too long for a Unix socket address could never
/// be bound: refused as the file's or the command line's error, before
/// procmon creates the directories on the way to it.
#[test]
fn a_socket_path_too_long_to_bind_is_refused_and_makes_no_directory() {
    let dir = TempDir::new();
    let made = dir.path("made");
    let long = made.join(format!("{}.sock", "s".repeat(120)));
    let path = dir.write(
        "long.toml",
        &format!(
            "[[process]]\nname = \"a\"\nargv = [\"true\"]\n[control]\nsocket = \"{}\"\n",
            long.display()
        ),
    );
    let err = refused(&config_arg(&path), true);
    let want = format!(
        "procmon: {}:5:10: `socket` is {} bytes, more than the 107 a Unix socket's path may be",
        path.display(),
        long.as_os_str().len()
    );
    assert!(err.starts_with(&want), "{err:?}\nwant {want:?}");
    assert!(!made.exists(), "{} was created", made.display());

    let err = refused(
        &["--socket".as_ref(), long.as_os_str(), "true".as_ref()],
        false,
    );
    let want = format!(
        "is {} bytes, more than the 107 a Unix socket's path may be",
        long.as_os_str().len()
    );
    assert!(err.contains("--socket"), "{err:?}");
    assert!(err.contains(&want), "{err:?}\nwant {want:?}");
    assert!(!made.exists(), "{} was created", made.display());

    // At the limit it is fine (only parsed: nothing is bound there).
    let at_limit = format!("/{}", "s".repeat(106));
    let source = format!(
        "[[process]]\nname = \"a\"\nargv = [\"true\"]\n[control]\nsocket = \"{at_limit}\"\n"
    );
    assert!(procmon::config::parse(&source, "f.toml").is_ok());
}
