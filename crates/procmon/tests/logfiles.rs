//! Log files with real processes: every line once, whole and in order,
//! through rotations, reopens, reloads and a full disk (see
//! `docs/logging.md`, whose claims these tests back).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::served::{text, Served, PATIENCE};
use common::TempDir;
use serde_json::json;

/// `PATH.n`.
fn backup(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The backups of `path` there are, oldest first, then `path` itself.
fn files_in_order(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut n = 1;
    while backup(path, n).exists() {
        files.push(backup(path, n));
        n += 1;
    }
    files.reverse();
    files.push(path.to_path_buf());
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The text of a file's line after its timestamp and stream tag, if it
/// has them: `2026-12-06T06:21:33.123Z stdout TEXT`.
fn stamped_text<'a>(line: &'a str, stream: &str) -> &'a str {
    let (stamp, rest) = line.split_at(24);
    assert!(is_stamp(stamp), "no timestamp: {line:?}");
    rest.strip_prefix(&format!(" {stream} "))
        .unwrap_or_else(|| panic!("not {stream}: {line:?}"))
}

/// Whether `text` is an RFC 3339 UTC time with milliseconds.
fn is_stamp(text: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    text.len() == shape.len()
        && text.bytes().zip(shape.bytes()).all(|(b, s)| match s {
            b'd' => b.is_ascii_digit(),
            s => b == s,
        })
}

/// Numbers of `lines` (each `TIME stdout N`), checked to run from `from`
/// with no gap and no repeat; gives the last.
fn consecutive<'a>(lines: impl Iterator<Item = &'a str>, from: u64) -> u64 {
    let mut want = from;
    for line in lines {
        let n: u64 = stamped_text(line, "stdout")
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        assert_eq!(n, want, "a line lost or repeated");
        want += 1;
    }
    want - 1
}

#[test]
fn hundred_thousand_lines_rotate_whole_in_order_and_each_once() {
    let logs = TempDir::new();
    let path = logs.path("count.log");
    let procmon = Served::start(&format!(
        r#"
[[process]]
name = "count"
argv = ["sh", "-c", "seq 1 100000; exec sleep 1000"]
log_file = "{}"
log_max_bytes = 65536
log_backups = 500
log_stdout = false
"#,
        path.display()
    ));
    procmon.until("the last line is written", || {
        read(&path).ends_with(" stdout 100000\n")
    });
    let files = files_in_order(&path);
    assert!(files.len() > 50, "{} files", files.len());
    let mut all = String::new();
    for file in &files {
        let text = read(file);
        assert!(
            text.len() <= 65536,
            "{}: {} bytes",
            file.display(),
            text.len()
        );
        assert!(
            text.ends_with('\n'),
            "{} ends inside a line",
            file.display()
        );
        all += &text;
    }
    assert_eq!(consecutive(all.lines(), 1), 100_000);
    assert_eq!(procmon.process("count")["log_dropped_lines"], json!(0));
    // Not on stdout, and still kept in memory for `ctl logs`.
    let recent = procmon.ctl(&["logs", "count", "-n", "1"]);
    assert_eq!(text(&recent.stdout), "[count] 100000\n");
}

#[test]
fn a_line_longer_than_log_max_bytes_has_a_file_of_its_own() {
    let logs = TempDir::new();
    let path = logs.path("long.log");
    let procmon = Served::start(&format!(
        r#"
[[process]]
name = "long"
argv = ["sh", "-c", "echo before; printf '%05000d\n' 0; echo after; exec sleep 1000"]
log_file = "{}"
log_max_bytes = 1000
timestamps = "off"
"#,
        path.display()
    ));
    procmon.until("the line after", || read(&path) == "stdout after\n");
    assert_eq!(read(&backup(&path, 2)), "stdout before\n");
    assert_eq!(
        read(&backup(&path, 1)),
        format!("stdout {}\n", "0".repeat(5000))
    );
}

#[test]
fn backups_beyond_log_backups_are_deleted() {
    let logs = TempDir::new();
    let path = logs.path("b.log");
    let procmon = Served::start(&format!(
        r#"
[[process]]
name = "b"
argv = ["sh", "-c", "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo $i; done; exec sleep 1000"]
log_file = "{}"
log_max_bytes = 100
log_backups = 3
"#,
        path.display()
    ));
    procmon.until("the last line", || read(&path).ends_with(" stdout 200\n"));
    for n in 1..=3 {
        assert!(backup(&path, n).exists(), "no {n}");
    }
    assert!(!backup(&path, 4).exists());
    // The newest lines are what is kept, in order.
    let kept: String = files_in_order(&path).iter().map(|f| read(f)).collect();
    let first = 200 - kept.lines().count() as u64 + 1;
    assert_eq!(consecutive(kept.lines(), first), 200);
}

/// A child that counts forever, a line every few milliseconds.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done";

#[test]
fn reopen_after_a_move_loses_nothing_by_usr1_or_ctl() {
    let logs = TempDir::new();
    let path = logs.path("c.log");
    let procmon = Served::start(&format!(
        "[[process]]\nname = \"c\"\nargv = [\"sh\", \"-c\", \"{COUNTER}\"]\nlog_file = \"{}\"\n",
        path.display()
    ));
    let lines_in = |p: &Path| read(p).lines().count();
    procmon.until("lines in the file", || lines_in(&path) >= 10);
    // logrotate's `create`: move the file, then ask for a reopen.
    std::fs::rename(&path, logs.path("c.log.r1")).unwrap();
    // SAFETY: a plain kill to the procmon this test started.
    unsafe { libc::kill(procmon.child.id() as i32, libc::SIGUSR1) };
    procmon.until("a new file after USR1", || lines_in(&path) >= 10);
    procmon.until("USR1 told", || {
        procmon
            .stderr()
            .contains("procmon: received USR1: reopening log files\n")
    });
    std::fs::rename(&path, logs.path("c.log.r2")).unwrap();
    let reopened = procmon.ctl(&["reopen-logs"]);
    assert_eq!(
        reopened.status.code(),
        Some(0),
        "{}",
        text(&reopened.stderr)
    );
    assert_eq!(text(&reopened.stdout), "reopening 1 log file\n");
    procmon.until("a new file after reopen-logs", || lines_in(&path) >= 10);
    // Stop it, so the last lines are written.
    let stopped = procmon.ctl(&["stop", "c", "--wait"]);
    assert_eq!(stopped.status.code(), Some(0));
    let r1 = read(&logs.path("c.log.r1"));
    let r2 = read(&logs.path("c.log.r2"));
    let now = read(&path);
    let last = consecutive(r1.lines().chain(r2.lines()).chain(now.lines()), 1);
    assert!(last >= 30, "{last}");
    assert!(!r2.is_empty() && !now.is_empty());
}

#[test]
fn a_full_disk_drops_and_counts_while_the_child_and_the_others_go_on() {
    let logs = TempDir::new();
    let small = logs.path("small");
    std::fs::create_dir(&small).unwrap();
    let elsewhere = logs.path("other.log");
    let mount = format!(
        "mount -t tmpfs -o size=256k tmpfs '{}' && exec \"$@\"",
        small.display()
    );
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &mount,
        "sh",
    ];
    // 2,000 lines of 200 bytes at once, more than the 256 KiB hold, then
    // a line every 50 ms.
    let flood = "pad=$(printf '%0200d' 0); i=0; while :; do i=$((i+1)); echo \\\"$i $pad\\\"; \
                 [ $i -gt 2000 ] && sleep 0.05; done";
    let config = format!(
        r#"
[[process]]
name = "full"
argv = ["sh", "-c", "{flood}"]
log_file = "{}"
log_stdout = false
[[process]]
name = "other"
argv = ["sh", "-c", "{COUNTER}"]
log_file = "{}"
log_stdout = false
"#,
        small.join("full.log").display(),
        elsewhere.display()
    );
    let procmon = match Served::try_start(&config, &wrapper) {
        Ok(procmon) => procmon,
        Err(e) if e.contains("unshare:") || e.contains("mount:") => {
            println!("SKIPPED: a private mount namespace with a tmpfs is not permitted here: {e}");
            return;
        }
        Err(e) => panic!("procmon did not start: {e}"),
    };
    procmon.until("lines dropped and counted", || {
        procmon.process("full")["log_dropped_lines"]
            .as_u64()
            .is_some_and(|n| n > 500)
    });
    // Counted first, then told: the report crosses to the loop and out.
    procmon.until("the drops told on stderr", || {
        let err = procmon.stderr();
        err.contains("procmon: [full] log file ")
            && err.contains("No space left on device")
            && err.contains("; dropping its lines until writing works again\n")
    });
    let err = procmon.stderr();
    assert_eq!(
        err.matches("dropping its lines").count(),
        1,
        "told once per episode:\n{err}"
    );
    let metrics = text(&procmon.ctl(&["metrics"]).stdout);
    assert!(
        metrics.contains("procmon_log_dropped_lines_total{name=\"full\"} ")
            && metrics.contains("procmon_log_dropped_lines_total{name=\"other\"} 0\n"),
        "{metrics}"
    );
    let table = text(&procmon.ctl(&["status"]).stdout);
    assert!(
        table.lines().next().unwrap().ends_with("LOG-DROPPED"),
        "{table}"
    );
    // The child goes on, and so does the other process's file.
    let pid = procmon.pid("full");
    let other_before = read(&elsewhere).lines().count();
    procmon.until("the other file grows", || {
        read(&elsewhere).lines().count() >= other_before + 20
    });
    assert_eq!(procmon.process("full")["state"], json!("running"));
    assert_eq!(procmon.pid("full"), pid, "not restarted");
    // Room again (seen through procmon's own mount namespace): the next
    // lines are written, and the episode's count is told.
    let full = PathBuf::from(format!(
        "/proc/{}/root{}",
        procmon.child.id(),
        small.join("full.log").display()
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&full)
        .unwrap()
        .set_len(0)
        .unwrap();
    procmon.until("writing works again", || {
        procmon.stderr().contains("procmon: [full] log file ")
            && procmon.stderr().contains(" works again; ")
    });
    // Whole lines only, even at the full disk's edge.
    let written = std::fs::read_to_string(&full).unwrap();
    assert!(written.ends_with('\n') || written.is_empty());
}

#[test]
fn no_descriptor_leaks_after_1000_rotations_and_1000_restarts() {
    let logs = TempDir::new();
    let go = logs.path("GO");
    let count = logs.path("COUNT");
    let rot = logs.path("rot.log");
    let restarter = logs.path("restarter.log");
    let config = format!(
        r#"
threshold = 0
[[process]]
name = "rot"
argv = ["sh", "-c", "echo ready; while [ ! -e {go} ]; do sleep 0.05; done; i=0; while [ $i -lt 1000 ]; do i=$((i+1)); echo $i; done; exec sleep 1000"]
log_file = "{rot}"
log_max_bytes = 8
log_backups = 2
timestamps = "off"
[[process]]
name = "restarter"
argv = ["sh", "-c", "n=0; [ -e {count} ] && read n < {count}; echo life $n; if [ -e {go} ] && [ $n -lt 1000 ]; then echo $((n+1)) > {count}; exit 0; fi; exec sleep 1000"]
log_file = "{restarter}"
log_stdout = false
"#,
        go = go.display(),
        count = count.display(),
        rot = rot.display(),
        restarter = restarter.display(),
    );
    let procmon = Served::start(&config);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", procmon.child.id()))
            .unwrap()
            .count()
    };
    procmon.until("both files opened", || {
        read(&rot) == "stdout ready\n" && read(&restarter).contains(" stdout life 0\n")
    });
    // The fewest seen over a moment: a control connection closing is not
    // counted as procmon's own.
    let mut before = fds();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(50));
        before = before.min(fds());
    }
    std::fs::write(&go, "").unwrap();
    let restarted = procmon.ctl(&["restart", "restarter"]);
    assert_eq!(restarted.status.code(), Some(0));
    procmon.until("1,000 rotations and 1,000 restarts", || {
        read(&rot) == "stdout 1000\n" && read(&restarter).contains(" stdout life 1000\n")
    });
    procmon.until("the last life running", || {
        procmon.process("restarter")["state"] == json!("running")
    });
    let restarts = procmon.process("restarter")["restarts"].as_u64().unwrap();
    assert!(restarts >= 1000, "{restarts}");
    // Not a descriptor more than before (a moment for the last pipes).
    let deadline = Instant::now() + PATIENCE;
    while fds() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if fds() > before {
        panic!(
            "descriptors leaked: {before} before, now {:?}",
            std::fs::read_dir(format!("/proc/{}/fd", procmon.child.id()))
                .unwrap()
                .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(read(&backup(&rot, 1)), "stdout 999\n");
    assert!(!backup(&rot, 3).exists());
}

#[test]
fn a_reload_changes_log_settings_live_and_closes_a_removed_file() {
    let logs = TempDir::new();
    let first = logs.path("first.log");
    let second = logs.path("second.log");
    let gone = logs.path("gone.log");
    let config = |file: &Path, extra: &str| {
        format!(
            "[[process]]\nname = \"c\"\nargv = [\"sh\", \"-c\", \"{COUNTER}\"]\nlog_file = \"{}\"\n{extra}",
            file.display()
        )
    };
    let with_gone = format!(
        "[[process]]\nname = \"gone\"\nargv = [\"sh\", \"-c\", \"{COUNTER}\"]\nlog_file = \"{}\"\n",
        gone.display()
    );
    let procmon = Served::start(&(config(&first, "") + &with_gone));
    procmon.until("lines in both", || {
        read(&first).lines().count() >= 5 && read(&gone).lines().count() >= 5
    });
    let pid = procmon.pid("c");
    let open_files = || -> Vec<PathBuf> {
        std::fs::read_dir(format!("/proc/{}/fd", procmon.child.id()))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .collect()
    };
    assert!(open_files().contains(&gone));
    // An invalid file changes nothing: the directory is not there.
    let missing = logs.path("missing/x.log");
    std::fs::write(&procmon.config, config(&missing, "") + &with_gone).unwrap();
    let refused = procmon.ctl(&["reload"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("`log_file`: the directory ")
            && text(&refused.stderr).contains("missing\" does not exist"),
        "{}",
        text(&refused.stderr)
    );
    // Only the log settings change: the process runs on, into a new file.
    std::fs::write(&procmon.config, config(&second, "timestamps = \"off\"\n")).unwrap();
    let reloaded = procmon.ctl(&["reload"]);
    assert_eq!(
        reloaded.status.code(),
        Some(0),
        "{}",
        text(&reloaded.stderr)
    );
    assert_eq!(
        text(&reloaded.stdout),
        "gone: removed\nc: log settings changed, applied without a restart\n"
    );
    procmon.until("lines in the new file", || {
        read(&second).lines().count() >= 5
    });
    assert_eq!(
        procmon.pid("c"),
        pid,
        "restarted by a change of log settings"
    );
    let moved = read(&second);
    let n: u64 = moved
        .lines()
        .next()
        .unwrap()
        .strip_prefix("stdout ")
        .unwrap()
        .parse()
        .unwrap();
    let old = read(&first);
    assert_eq!(
        consecutive(old.lines(), 1),
        n - 1,
        "the switch lost or repeated a line"
    );
    procmon.until("the removed process's file closed", || {
        let open = open_files();
        !open.contains(&gone) && !open.contains(&first)
    });
}

/// Runs procmon with `args` until its stdout holds `needle`, then stops
/// it; its stdout.
fn stdout_until(args: &[&str], needle: &str) -> String {
    let mut child = common::procmon(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start procmon");
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let deadline = Instant::now() + PATIENCE;
    while !text(&out.lock().unwrap()).contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} on stdout");
        std::thread::sleep(Duration::from_millis(20));
    }
    common::stop_group(&mut child);
    let shown = text(&out.lock().unwrap());
    shown
}

#[test]
fn timestamps_on_stdout_and_in_json() {
    let script = "echo hi; exec sleep 1000";
    let plain = stdout_until(&["--", "sh", "-c", script], "hi\n");
    assert_eq!(plain, "[sh -c echo hi; exec sleep 1000] hi\n");
    let stamped = stdout_until(
        &["--timestamps", "rfc3339", "--", "sh", "-c", script],
        "hi\n",
    );
    let (stamp, rest) = stamped.split_at(24);
    assert!(is_stamp(stamp), "{stamped:?}");
    assert_eq!(rest, " [sh -c echo hi; exec sleep 1000] hi\n");
    let json = stdout_until(
        &[
            "--log-format",
            "json",
            "--timestamps",
            "rfc3339",
            "--",
            "sh",
            "-c",
            script,
        ],
        "}\n",
    );
    let value: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
    assert!(is_stamp(value["time"].as_str().unwrap()), "{json}");
    assert_eq!(value["line"], json!("hi"));
    let off = stdout_until(
        &[
            "--log-format",
            "json",
            "--timestamps",
            "off",
            "--",
            "sh",
            "-c",
            script,
        ],
        "}\n",
    );
    assert!(!off.contains("\"time\""), "{off}");
}

#[test]
fn a_deleted_file_is_created_again_and_a_removed_directory_is_told() {
    let logs = TempDir::new();
    let dir = logs.path("d");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("c.log");
    let other = logs.path("other.log");
    let procmon = Served::start(&format!(
        "[[process]]\nname = \"c\"\nargv = [\"sh\", \"-c\", \"{COUNTER}\"]\nlog_file = \"{}\"\n\
         [[process]]\nname = \"other\"\nargv = [\"sh\", \"-c\", \"{COUNTER}\"]\nlog_file = \"{}\"\n",
        path.display(),
        other.display()
    ));
    let lines_in = |p: &Path| read(p).lines().count();
    procmon.until("lines in the file", || lines_in(&path) >= 10);
    // Deleted with no reopen asked: held open here, to read what went in.
    let mut deleted = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    procmon.until("the file created again", || lines_in(&path) >= 10);
    assert_eq!(procmon.process("c")["log_dropped_lines"], json!(0));
    // Its directory removed: told once, counted, and the others go on.
    let mut removed = std::fs::File::open(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    procmon.until("the failure told", || {
        procmon.stderr().contains(&format!(
            "procmon: [c] log file {}: opening: No such file or directory (os error 2); \
             dropping its lines until writing works again\n",
            path.display()
        ))
    });
    procmon.until("lines dropped and counted", || {
        procmon.process("c")["log_dropped_lines"]
            .as_u64()
            .is_some_and(|n| n >= 5)
    });
    let other_before = lines_in(&other);
    procmon.until("the other file grows", || {
        lines_in(&other) >= other_before + 5
    });
    // The directory back: the file with it, and the episode's count told.
    std::fs::create_dir(&dir).unwrap();
    procmon.until("the file created in it", || lines_in(&path) >= 5);
    procmon.until("works again, told", || {
        procmon.stderr().contains(&format!(
            "procmon: [c] log file {} works again; ",
            path.display()
        ))
    });
    let err = procmon.stderr();
    assert_eq!(err.matches("dropping its lines").count(), 1, "{err}");
    let dropped = procmon.process("c")["log_dropped_lines"].as_u64().unwrap();
    // Every line once: in the deleted file, the removed one, counted as
    // dropped, or in the new one.
    let mut before = String::new();
    deleted.read_to_string(&mut before).unwrap();
    removed.read_to_string(&mut before).unwrap();
    let last = consecutive(before.lines(), 1);
    assert!(last >= 20, "{last}");
    let now = read(&path);
    let first: u64 = stamped_text(now.lines().next().unwrap(), "stdout")
        .parse()
        .unwrap();
    assert_eq!(first, last + dropped + 1, "{last}, then {dropped} dropped");
    consecutive(now.lines(), first);
}

#[test]
fn a_rotation_blocked_by_a_directory_names_it_and_recovers() {
    let logs = TempDir::new();
    let path = logs.path("r.log");
    // Where the one backup would go, a directory not empty.
    let blocker = backup(&path, 1);
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), "").unwrap();
    let procmon = Served::start(&format!(
        "[[process]]\nname = \"r\"\nargv = [\"sh\", \"-c\", \"{COUNTER}\"]\nlog_file = \"{}\"\n\
         log_max_bytes = 300\nlog_backups = 1\n",
        path.display()
    ));
    // Told once, naming the directory in the way and what was tried.
    let told = format!(
        "procmon: [r] log file {}: rotating: removing {}: Is a directory (os error 21); \
         dropping its lines until writing works again\n",
        path.display(),
        blocker.display()
    );
    procmon.until("the failure told", || procmon.stderr().contains(&told));
    procmon.until("lines dropped and counted", || {
        procmon.process("r")["log_dropped_lines"]
            .as_u64()
            .is_some_and(|n| n >= 5)
    });
    assert_eq!(procmon.process("r")["state"], json!("running"));
    // Out of the way: the rotation goes through, and the count is told.
    std::fs::remove_dir_all(&blocker).unwrap();
    procmon.until("works again, told", || {
        procmon.stderr().contains(&format!(
            "procmon: [r] log file {} works again; ",
            path.display()
        ))
    });
    procmon.until("a rotated file", || blocker.is_file());
    let err = procmon.stderr();
    assert_eq!(err.matches("dropping its lines").count(), 1, "{err}");
    let dropped = procmon.process("r")["log_dropped_lines"].as_u64().unwrap();
    let kept = read(&blocker);
    let last = consecutive(kept.lines(), 1);
    let now = read(&path);
    let first: u64 = stamped_text(now.lines().next().unwrap(), "stdout")
        .parse()
        .unwrap();
    assert_eq!(first, last + dropped + 1, "{last}, then {dropped} dropped");
}

#[test]
fn copytruncate_without_a_reopen_rotates_by_the_real_size() {
    let logs = TempDir::new();
    let path = logs.path("t.log");
    let procmon = Served::start(&format!(
        "[[process]]\nname = \"t\"\nargv = [\"sh\", \"-c\", \"{COUNTER}\"]\nlog_file = \"{}\"\n\
         log_max_bytes = 10000\n",
        path.display()
    ));
    let lines_in = |p: &Path| read(p).lines().count();
    procmon.until("lines in the file", || lines_in(&path) >= 100);
    // logrotate's `copytruncate`, and no reopen asked.
    std::fs::copy(&path, logs.path("t.log.copy")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Together past 10,000 bytes; alone, far from it.
    procmon.until("lines after the truncation", || lines_in(&path) >= 200);
    assert!(!backup(&path, 1).exists(), "rotated by the size before");
    let now = read(&path);
    assert!(now.len() < 10000, "{}", now.len());
    let first: u64 = stamped_text(now.lines().next().unwrap(), "stdout")
        .parse()
        .unwrap();
    consecutive(now.lines(), first);
}

#[test]
fn a_fifo_as_the_log_file_is_never_rotated_away_from_its_reader() {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let logs = TempDir::new();
    let path = logs.path("shipper.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // Open before procmon opens it, which it does without waiting.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let _procmon = Served::start(&format!(
        r#"
[[process]]
name = "f"
argv = ["sh", "-c", "seq 1 200; exec sleep 1000"]
log_file = "{}"
log_max_bytes = 100
timestamps = "off"
"#,
        path.display()
    ));
    let want: String = (1..=200).map(|n| format!("stdout {n}\n")).collect();
    let mut got = Vec::new();
    let mut buffer = [0; 4096];
    let deadline = Instant::now() + PATIENCE;
    while got.len() < want.len() {
        assert!(
            Instant::now() < deadline,
            "never all the lines: {:?}",
            text(&got)
        );
        match reader.read(&mut buffer) {
            Ok(n) if n > 0 => got.extend_from_slice(&buffer[..n]),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert_eq!(text(&got), want);
    let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
    assert!(kind.is_fifo(), "{kind:?}");
    assert!(!backup(&path, 1).exists());
}
