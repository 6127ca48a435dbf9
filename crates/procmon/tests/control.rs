//! The control socket and `procmon ctl`, against a real procmon running
//! real processes. Every wait is against a generous deadline; nothing
//! asserts how long anything took.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::served::{ctl, text, Served, PATIENCE};
use common::TempDir;
use serde_json::{json, Value};

/// One request on a fresh connection; the reply line.
fn ask(socket: &Path, request: &[u8]) -> Value {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream.write_all(request).unwrap();
    let mut line = String::new();
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    BufReader::new(stream).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// A `watch` (id "w") on a fresh connection: its first reply, the status
/// of every process, and the lines that follow it.
fn watch(socket: &Path) -> (Value, std::io::Lines<BufReader<UnixStream>>) {
    let mut watch = UnixStream::connect(socket).unwrap();
    watch.set_read_timeout(Some(PATIENCE)).unwrap();
    watch
        .write_all(b"{\"v\":1,\"id\":\"w\",\"op\":\"watch\"}\n")
        .unwrap();
    let mut lines = BufReader::new(watch).lines();
    let first = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    (first, lines)
}

/// A ctl run that failed with `code` and said `needle` on stderr.
fn fails_saying(out: &std::process::Output, code: i32, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "want {needle:?} in: {err}");
}

const TWO: &str = r#"
minrestartdelay = 0.2
[[process]]
name = "up"
argv = ["sh", "-c", "trap 'echo got USR1' USR1; echo hello; while :; do sleep 0.1; done"]
[[process]]
name = "crash"
argv = ["sh", "-c", "echo down; exit 1"]
give_up_after = 2
"#;

#[test]
fn every_verb_and_its_exit_status() {
    let mut procmon = Served::start(TWO);
    procmon.until("crash gives up", || {
        procmon.process("crash")["state"] == json!("failed")
    });
    // A process wanted up is not running: 3; unknown: 4.
    let status = procmon.ctl(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status.stdout));
    let table = text(&status.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("crash") && table.contains("failed") && table.contains("exit 1"));
    assert_eq!(procmon.ctl(&["status", "up"]).status.code(), Some(0));
    let unknown = procmon.ctl(&["status", "nope"]);
    assert_eq!(unknown.status.code(), Some(4));
    assert!(text(&unknown.stderr).contains("no process named \"nope\""));
    // Hold down, start again, restart: each waited for by events.
    let first = procmon.pid("up");
    assert_eq!(
        procmon.ctl(&["stop", "up", "--wait"]).status.code(),
        Some(0)
    );
    assert_eq!(procmon.process("up")["state"], json!("held"));
    assert_eq!(
        procmon.ctl(&["start", "up", "--wait"]).status.code(),
        Some(0)
    );
    let second = procmon.pid("up");
    assert_ne!(first, second);
    assert_eq!(
        procmon.ctl(&["restart", "up", "--wait"]).status.code(),
        Some(0)
    );
    let third = procmon.pid("up");
    assert!(third != second && third > 0);
    // start lifts `failed`.
    assert_eq!(procmon.ctl(&["start", "crash"]).status.code(), Some(0));
    // Signals reach the live instance; one with none is an error.
    procmon.until("the trap is set", || {
        text(&procmon.ctl(&["logs", "up"]).stdout).contains("hello")
    });
    assert_eq!(
        procmon.ctl(&["signal", "USR1", "up"]).status.code(),
        Some(0)
    );
    procmon.until("the child's trap ran", || {
        text(&procmon.ctl(&["logs", "up", "-n", "5"]).stdout).contains("[up] got USR1")
    });
    procmon.until("crash is down again", || {
        procmon.process("crash")["pid"].is_null()
    });
    assert_eq!(
        procmon.ctl(&["signal", "USR1", "crash"]).status.code(),
        Some(1)
    );
    assert_eq!(
        procmon.ctl(&["signal", "BOGUS", "up"]).status.code(),
        Some(2)
    );
    // Metrics, version.
    let metrics = text(&procmon.ctl(&["metrics"]).stdout);
    assert!(
        metrics.contains("procmon_process_up{name=\"up\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("procmon_process_state{name=\"up\",state=\"running\"} 1"));
    assert!(metrics.contains("# TYPE procmon_events_total counter"));
    assert!(text(&procmon.ctl(&["version"]).stdout).contains("control protocol 1"));
    // Usage errors are 2.
    assert_eq!(procmon.ctl(&["start"]).status.code(), Some(2));
    assert_eq!(procmon.ctl(&["frobnicate"]).status.code(), Some(2));
    // Shutdown stops everything; the socket goes with procmon.
    assert_eq!(procmon.ctl(&["shutdown"]).status.code(), Some(0));
    assert_eq!(procmon.wait(), Some(0));
    assert!(
        !procmon.socket.exists(),
        "the socket file is removed at exit"
    );
    assert_eq!(procmon.ctl(&["status"]).status.code(), Some(4));
}

#[test]
fn the_socket_is_private_and_taken_once() {
    let procmon = Served::start(TWO);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&procmon.socket), 0o600);
    assert_eq!(mode(procmon.socket.parent().unwrap()), 0o700);
    // A second procmon on the same socket is refused, and runs nothing.
    let second = common::procmon(&[
        "--config".as_ref(),
        procmon.config.as_os_str(),
        "--socket".as_ref(),
        procmon.socket.as_os_str(),
    ])
    .output()
    .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(
        text(&second.stderr).contains("another procmon is listening on"),
        "{}",
        text(&second.stderr)
    );
    assert!(text(&second.stdout).is_empty());
    // A stale socket file (nobody listening) is replaced.
    let stale = procmon.dir.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let mut third = common::procmon(&[
        "--socket".as_ref(),
        stale.as_os_str(),
        "--".as_ref(),
        "sleep".as_ref(),
        "1000".as_ref(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    procmon.until("the stale socket is served", || {
        ctl(&stale, &["status"]).status.code() == Some(0)
    });
    // SAFETY: plain syscall on the group this test started.
    unsafe { libc::killpg(third.id() as i32, libc::SIGTERM) };
    assert_eq!(third.wait().unwrap().code(), Some(0));
}

#[test]
fn another_user_is_refused_unless_allowed() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a client as nobody");
        return;
    }
    for (allowed, config) in [
        (false, TWO.to_string()),
        (true, format!("{TWO}\n[control]\nallow_uids = [65534]\n")),
    ] {
        let procmon = Served::start(&config);
        // Let nobody reach the socket, so that the peer check is what
        // decides.
        let dir = procmon.socket.parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&procmon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::set_permissions(
            procmon.dir.0.clone(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_procmon"))
            .args(["ctl", "--socket"])
            .arg(&procmon.socket)
            .arg("version")
            .output()
            .expect("setpriv");
        if allowed {
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        } else {
            fails_saying(&out, 1, "uid 65534 (gid 65534) may not use");
        }
    }
}

#[test]
fn reload_touches_only_what_changed() {
    let before = r#"
[[process]]
name = "same"
argv = ["sleep", "1000"]
[[process]]
name = "argv"
argv = ["sleep", "1001"]
[[process]]
name = "policy"
argv = ["sleep", "1002"]
[[process]]
name = "gone"
argv = ["sleep", "1003"]
"#;
    let procmon = Served::start(before);
    procmon.until_all_run();
    let pids: Vec<i64> = ["same", "argv", "policy"]
        .iter()
        .map(|n| procmon.pid(n))
        .collect();
    let after = r#"
[[process]]
name = "same"
argv = ["sleep", "1000"]
[[process]]
name = "argv"
argv = ["sleep", "2001"]
[[process]]
name = "policy"
argv = ["sleep", "1002"]
restart = "never"
killtime = 2
[[process]]
name = "fresh"
argv = ["sleep", "1004"]
"#;
    std::fs::write(&procmon.config, after).unwrap();
    // The dry run says what would change, and changes nothing.
    let dry = procmon.ctl(&["reload", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0));
    assert_eq!(
        text(&dry.stdout),
        "argv: restarted\npolicy: policy-changed\nfresh: added\ngone: removed\n"
    );
    assert_eq!(procmon.pid("argv"), pids[1]);
    assert_eq!(procmon.status().len(), 4);
    // The reload itself.
    assert_eq!(procmon.ctl(&["reload"]).status.code(), Some(0));
    procmon.until("argv runs its new instance and fresh runs", || {
        let status = procmon.status();
        let state = |n: &str| {
            status
                .iter()
                .find(|p| p["name"] == json!(n))
                .map(|p| (p["state"].clone(), p["pid"].as_i64()))
        };
        matches!(state("argv"), Some((s, Some(pid))) if s == json!("running") && pid != pids[1])
            && matches!(state("fresh"), Some((s, _)) if s == json!("running"))
            && state("gone").is_none()
    });
    assert_eq!(procmon.pid("same"), pids[0], "unchanged: not touched");
    assert_eq!(procmon.pid("policy"), pids[2], "policy only: not touched");
    let names: Vec<String> = procmon
        .status()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["same", "argv", "policy", "fresh"]);
    // An invalid file changes nothing, and says where it is wrong, to the
    // caller and on procmon's stderr.
    std::fs::write(
        &procmon.config,
        format!("{after}\n[[process]]\nname = \"x\"\n"),
    )
    .unwrap();
    let bad = procmon.ctl(&["reload"]);
    assert_eq!(bad.status.code(), Some(1));
    let message = text(&bad.stderr);
    assert!(message.contains("procmon.toml:"), "{message}");
    procmon.until("the failure is told on stderr", || {
        procmon.stderr().contains("reload failed, nothing changed")
    });
    assert_eq!(procmon.status().len(), 4);
    assert_eq!(procmon.pid("same"), pids[0]);
    // HUP with a config reloads too.
    std::fs::write(&procmon.config, before).unwrap();
    // SAFETY: plain syscall on the procmon this test started.
    unsafe { libc::kill(procmon.child.id() as i32, libc::SIGHUP) };
    procmon.until("gone is back and fresh is removed", || {
        let names: Vec<Value> = procmon.status().iter().map(|p| p["name"].clone()).collect();
        names.contains(&json!("gone")) && !names.contains(&json!("fresh"))
    });
    assert_eq!(procmon.pid("same"), pids[0]);
    assert!(procmon
        .stderr()
        .contains("received HUP: reloading the config"));
}

#[test]
fn reload_names_processes_whose_only_change_is_their_log_settings() {
    let before = r#"
[[process]]
name = "quiet"
argv = ["sleep", "1000"]
[[process]]
name = "both"
argv = ["sleep", "1001"]
[[process]]
name = "same"
argv = ["sleep", "1002"]
"#;
    let procmon = Served::start(before);
    procmon.until_all_run();
    let quiet = procmon.pid("quiet");
    let after = r#"
[[process]]
name = "quiet"
argv = ["sleep", "1000"]
log_stdout = false
[[process]]
name = "both"
argv = ["sleep", "2001"]
timestamps = "off"
[[process]]
name = "same"
argv = ["sleep", "1002"]
"#;
    std::fs::write(&procmon.config, after).unwrap();
    let expected = "both: restarted, and its log settings change\n\
                    quiet: log settings changed, applied without a restart\n";
    // The dry run tells them, and applies nothing: the reload after it
    // tells them again.
    let reply = ask(
        &procmon.socket,
        b"{\"v\":1,\"id\":1,\"op\":\"reload\",\"dry_run\":true}\n",
    );
    assert_eq!(
        reply["result"]["log_settings_changed"],
        json!(["quiet", "both"]),
        "{reply}"
    );
    let dry = procmon.ctl(&["reload", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert_eq!(text(&dry.stdout), expected);
    let reload = procmon.ctl(&["reload"]);
    assert_eq!(reload.status.code(), Some(0), "{}", text(&reload.stderr));
    assert_eq!(text(&reload.stdout), expected);
    procmon.until("procmon's stderr tells the log change", || {
        procmon
            .stderr()
            .contains("log settings changed, applied without a restart: quiet, both")
    });
    assert_eq!(
        procmon.pid("quiet"),
        quiet,
        "log settings only: not touched"
    );
    // Applied: the same file again changes nothing.
    let again = procmon.ctl(&["reload"]);
    assert_eq!(text(&again.stdout), "nothing changes\n");
}

#[test]
fn two_clients_restarting_at_once_make_one_instance() {
    // The instance ignores TERM and gets KILL 3 s later: both restarts
    // land while it is stopping, however the two clients are scheduled.
    let procmon = Served::start(
        "[[process]]\nname = \"one\"\nargv = [\"sh\", \"-c\", \"trap '' TERM; exec sleep 1000\"]\nkilltime = 3\n",
    );
    procmon.until("one runs", || procmon.pid("one") > 0);
    let socket = procmon.socket.clone();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                ask(
                    &socket,
                    b"{\"v\":1,\"id\":1,\"op\":\"restart\",\"names\":[\"one\"]}\n",
                )
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap()["ok"], json!(true));
    }
    procmon.until("one runs again", || {
        procmon.process("one")["state"] == json!("running")
    });
    std::thread::sleep(Duration::from_millis(500));
    let spawned = procmon.stderr().matches("[one] spawned pid").count();
    assert_eq!(spawned, 2, "{}", procmon.stderr());
}

#[test]
fn bad_clients_cannot_hurt_procmon() {
    let procmon = Served::start(
        "[[process]]\nname = \"chatty\"\nargv = [\"sh\", \"-c\", \"while :; do echo a line of output that goes on and on; done\"]\n",
    );
    // A client that follows logs and never reads is cut off; procmon goes
    // on answering others meanwhile.
    let mut follower = UnixStream::connect(&procmon.socket).unwrap();
    follower
        .write_all(b"{\"v\":1,\"id\":1,\"op\":\"logs\",\"name\":\"chatty\",\"follow\":true}\n")
        .unwrap();
    for _ in 0..20 {
        assert_eq!(procmon.ctl(&["status", "chatty"]).status.code(), Some(0));
    }
    follower.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + PATIENCE;
    loop {
        match follower.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("the follower was never cut off: {e}"),
        }
        assert!(Instant::now() < deadline, "the follower was never cut off");
        if total < 4 << 20 {
            // Read slowly at first, so the queue passes the bound.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // A 1 MiB line: one error, then the connection closes.
    let mut big = UnixStream::connect(&procmon.socket).unwrap();
    big.set_read_timeout(Some(PATIENCE)).unwrap();
    let line = vec![b'x'; 1 << 20];
    let _ = big.write_all(&line);
    let mut reply = String::new();
    BufReader::new(&big).read_line(&mut reply).unwrap();
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["error"]["kind"], json!("too_long"));
    // Garbage, an unknown op, an unknown field: errors, nothing else.
    let garbage = ask(&procmon.socket, b"\x00\xff{{{garbage\n");
    assert_eq!(garbage["error"]["kind"], json!("bad_json"));
    let op = ask(&procmon.socket, b"{\"v\":1,\"id\":3,\"op\":\"explode\"}\n");
    assert_eq!(
        (op["id"].clone(), op["error"]["kind"].clone()),
        (json!(3), json!("unknown_op"))
    );
    let field = ask(&procmon.socket, b"{\"v\":1,\"op\":\"status\",\"all\":1}\n");
    assert_eq!(field["error"]["field"], json!("all"));
    // 200 clients at once all get their answer.
    let streams: Vec<UnixStream> = (0..200)
        .map(|_| {
            let mut s = UnixStream::connect(&procmon.socket).unwrap();
            s.write_all(b"{\"v\":1,\"id\":9,\"op\":\"version\"}\n")
                .unwrap();
            s
        })
        .collect();
    for stream in streams {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        assert!(line.contains("\"ok\":true"), "{line}");
    }
    assert_eq!(procmon.process("chatty")["state"], json!("running"));
}

#[test]
fn watch_and_follow_stream_as_things_happen() {
    let procmon = Served::start(
        "[[process]]\nname = \"w\"\nargv = [\"sh\", \"-c\", \"echo first; sleep 1000\"]\n",
    );
    procmon.until("w runs", || procmon.pid("w") > 0);
    let (first, mut lines) = watch(&procmon.socket);
    assert_eq!(first["result"][0]["state"], json!("running"));
    assert_eq!(procmon.ctl(&["stop", "w"]).status.code(), Some(0));
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("held") {
        let event: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(event["id"], json!("w"));
        seen.push(event["event"]["to"].as_str().unwrap().to_string());
        assert!(event["event"]["at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(seen, ["stopping", "held"]);
}

/// The watch and an operation are two connections, read in no set order:
/// numbered changes, and a status that says which change it reflects, let
/// a client (`procmon ctl restart --wait`) tell a change the reply already
/// holds from one after it.
#[test]
fn a_reply_says_which_watched_changes_it_already_reflects() {
    let procmon = Served::start("[[process]]\nname = \"w\"\nargv = [\"sleep\", \"1000\"]\n");
    procmon.until("w runs", || procmon.pid("w") > 0);
    let (snapshot, mut lines) = watch(&procmon.socket);
    let before = snapshot["result"][0]["seq"]
        .as_u64()
        .expect("a status has seq");
    let reply = ask(
        &procmon.socket,
        b"{\"v\":1,\"id\":1,\"op\":\"restart\",\"names\":[\"w\"]}\n",
    );
    let replied = reply["result"][0]["seq"].as_u64().expect("a reply has seq");
    assert!(
        replied > before,
        "the restart's own change is counted: {reply}"
    );
    // Its own change (running -> stopping) is at most the reply's number;
    // what follows (starting or running again) is past it.
    let mut changes = Vec::new();
    while changes.last().map(|(to, _)| to == "running") != Some(true) {
        let event: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let event = &event["event"];
        changes.push((
            event["to"].as_str().unwrap().to_string(),
            event["seq"].as_u64().expect("a change has seq"),
        ));
    }
    let numbers: Vec<u64> = changes.iter().map(|&(_, seq)| seq).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{changes:?}");
    assert_eq!(changes[0].0, "stopping", "{changes:?}");
    assert!(changes[0].1 <= replied, "{changes:?}, reply {replied}");
    assert!(
        changes[1..].iter().all(|&(_, seq)| seq > replied),
        "{changes:?}, reply {replied}"
    );
}

#[test]
fn a_missing_program_is_a_usage_error_with_a_hint() {
    let out = common::procmon(&["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("no program named `status` in PATH; did you mean `procmon ctl status`?"),
        "{}",
        text(&out.stderr)
    );
    // `procmon -- ctl` is still a program named ctl.
    let out = common::procmon(&["--", "ctl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no program named `ctl`"));
}

#[test]
fn a_client_that_finds_the_descriptors_used_up_is_served_once_they_free() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: no prlimit to lower procmon's descriptor limit");
        return;
    }
    let dir = TempDir::new();
    let socket = dir.path("s.sock");
    let mut child = Command::new("prlimit")
        .arg("--nofile=40:40")
        .arg(env!("CARGO_BIN_EXE_procmon"))
        .arg("--socket")
        .arg(&socket)
        .args(["--", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit procmon");
    let deadline = Instant::now() + PATIENCE;
    while ctl(&socket, &["version"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "procmon never served its socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Fill procmon's descriptor table with clients until one is not
    // answered: that one waits in the listener's backlog.
    let mut held = Vec::new();
    let stalled = loop {
        assert!(held.len() < 100, "the limit never bit");
        let mut client = UnixStream::connect(&socket).unwrap();
        client
            .write_all(b"{\"v\":1,\"id\":1,\"op\":\"version\"}\n")
            .unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut byte = [0u8; 1];
        match client.read(&mut byte) {
            Ok(1) => held.push(client),
            _ => break client,
        }
    };
    // Free some: procmon sees them hang up and closes them; the waiting
    // client must then be accepted without any new connection arriving.
    held.truncate(held.len().saturating_sub(4));
    stalled.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut line = String::new();
    BufReader::new(&stalled).read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":true"), "{line:?}");
    // SAFETY: plain syscall on the procmon this test started (prlimit execs it).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn wait_times_out_with_124_and_the_ring_keeps_its_bounds() {
    let procmon = Served::start(
        r#"
[[process]]
name = "stubborn"
argv = ["sh", "-c", "trap '' TERM; exec sleep 1000"]
killtime = 8
[[process]]
name = "talker"
argv = ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do echo line-$i-of-nine; done; exec sleep 1000"]
[control]
log_lines = 100
log_bytes = 40
"#,
    );
    // stubborn ignores TERM and has 8 s before KILL: waiting 1 s for it
    // to be down runs out of time.
    procmon.until("stubborn runs", || procmon.pid("stubborn") > 0);
    let out = procmon.ctl(&["stop", "stubborn", "--wait", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("timed out"));
    // 40 bytes keep the last two of nine 14-byte lines.
    procmon.until("talker wrote all nine", || {
        text(&procmon.ctl(&["logs", "talker"]).stdout).contains("line-9-of-nine")
    });
    assert_eq!(
        text(&procmon.ctl(&["logs", "talker"]).stdout),
        "[talker] line-8-of-nine\n[talker] line-9-of-nine\n"
    );
    assert_eq!(
        text(&procmon.ctl(&["logs", "talker", "-n", "1"]).stdout),
        "[talker] line-9-of-nine\n"
    );
}

#[test]
fn idle_connections_cannot_lock_an_operator_out() {
    // Room for 1,100 sockets in this test process.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct of our own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    if limit.rlim_cur < 1_200 {
        eprintln!("skipped: RLIMIT_NOFILE {} is too low", limit.rlim_cur);
        return;
    }
    let procmon = Served::start("[[process]]\nname = \"one\"\nargv = [\"sleep\", \"1000\"]\n");
    // A follower first: it is kept while idle ones make room.
    let mut follower = UnixStream::connect(&procmon.socket).unwrap();
    follower
        .write_all(b"{\"v\":1,\"id\":1,\"op\":\"watch\"}\n")
        .unwrap();
    follower.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut lines = BufReader::new(follower.try_clone().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("\"ok\":true"));
    let idle: Vec<UnixStream> = (0..1_100)
        .map(|_| UnixStream::connect(&procmon.socket).unwrap())
        .collect();
    // The operator still gets an answer, and the watcher still streams.
    assert_eq!(procmon.ctl(&["stop", "one"]).status.code(), Some(0));
    let event: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(event["event"]["to"], json!("stopping"));
    drop(idle);
}

#[test]
fn a_stopping_procmon_starts_restarts_and_reloads_nothing_more() {
    let mut procmon = Served::start(
        r#"
[[process]]
name = "stubborn"
argv = ["sh", "-c", "trap '' TERM; exec sleep 1000"]
killtime = 60
[[process]]
name = "quick"
argv = ["sleep", "1000"]
"#,
    );
    procmon.until_all_run();
    assert_eq!(procmon.ctl(&["shutdown"]).status.code(), Some(0));
    procmon.until("quick has ended while stubborn holds out", || {
        let state = |name: &str| procmon.process(name)["state"].clone();
        state("quick") == json!("stopped") && state("stubborn") == json!("stopping")
    });
    // A start now would keep procmon from ever exiting.
    for args in [
        &["start", "quick"][..],
        &["restart", "stubborn"],
        &["reload"],
    ] {
        let out = procmon.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("procmon is stopping"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(procmon.process("quick")["state"], json!("stopped"));
    // A dry run starts nothing: it is still answered.
    let dry = procmon.ctl(&["reload", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    // What helps the stop is still taken.
    assert_eq!(
        procmon.ctl(&["signal", "KILL", "stubborn"]).status.code(),
        Some(0)
    );
    assert_eq!(procmon.wait(), Some(0));
}

/// A critical end shuts procmon down as `shutdown` does: the core then
/// refuses what would start anything, over the socket and at HUP alike,
/// and procmon exits with the critical process's code once the rest has
/// ended.
#[test]
fn after_a_critical_end_nothing_starts_and_hup_reloads_nothing() {
    let mut procmon = Served::start(
        r#"
[[process]]
name = "app"
argv = ["sh", "-c", "trap 'exit 3' USR1; while :; do sleep 0.05; done"]
restart = "never"
critical = true
[[process]]
name = "stubborn"
argv = ["sh", "-c", "trap '' TERM; exec sleep 1000"]
killtime = 60
"#,
    );
    procmon.until_all_run();
    let config_before = std::fs::read_to_string(&procmon.config).unwrap();
    assert_eq!(
        procmon.ctl(&["signal", "USR1", "app"]).status.code(),
        Some(0)
    );
    procmon.until("app has ended and stubborn holds out", || {
        let state = |name: &str| procmon.process(name)["state"].clone();
        state("app") == json!("exited") && state("stubborn") == json!("stopping")
    });
    for args in [&["start", "app"][..], &["restart", "stubborn"], &["reload"]] {
        let out = procmon.ctl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("procmon is stopping"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A changed file and HUP: nothing to reload, nothing is added.
    std::fs::write(
        &procmon.config,
        format!("{config_before}[[process]]\nname = \"late\"\nargv = [\"sleep\", \"1000\"]\n"),
    )
    .unwrap();
    // SAFETY: plain syscall on the procmon this test started.
    unsafe { libc::kill(procmon.child.id() as i32, libc::SIGHUP) };
    procmon.until("HUP is told", || {
        procmon.stderr().contains("received HUP: already stopping")
    });
    assert_eq!(procmon.status().len(), 2, "nothing was added");
    assert_eq!(procmon.process("app")["state"], json!("exited"));
    assert_eq!(
        procmon.ctl(&["signal", "KILL", "stubborn"]).status.code(),
        Some(0)
    );
    assert_eq!(procmon.wait(), Some(3), "{}", procmon.stderr());
}

/// The most memory procmon ever held (`VmHWM`), in KiB.
fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// A process whose ring holds about `lines` lines of 999 bytes, then
/// `last`; the config keeps `ring_bytes` of them.
fn writer_config(lines: usize, ring_bytes: usize) -> String {
    format!(
        r#"
[[process]]
name = "big"
argv = ["sh", "-c", "head -c {} /dev/zero | tr '\\0' x | fold -w 999; echo; echo last; exec sleep 1000"]
[control]
log_lines = 1000000
log_bytes = {ring_bytes}
"#,
        lines * 999
    )
}

#[test]
fn a_client_that_sends_requests_and_reads_no_replies_is_held_back_not_buffered() {
    let procmon = Served::start(&writer_config(1_000, 1 << 20));
    procmon.until("big wrote it all", || {
        text(&procmon.ctl(&["logs", "big", "-n", "1"]).stdout).contains("last")
    });
    // 200 requests of about 1 MiB of reply each, and not a byte read: procmon
    // must hold them back rather than queue 200 MiB.
    let mut greedy = UnixStream::connect(&procmon.socket).unwrap();
    let request = b"{\"v\":1,\"id\":1,\"op\":\"logs\",\"name\":\"big\",\"lines\":1000}\n";
    let requests: Vec<u8> = request.repeat(200);
    greedy.write_all(&requests).unwrap();
    // Others are answered meanwhile.
    for _ in 0..5 {
        assert_eq!(procmon.ctl(&["status", "big"]).status.code(), Some(0));
    }
    let peak = peak_memory_kib(procmon.child.id());
    assert!(
        peak < 64 * 1024,
        "procmon grew to {peak} KiB for a client that reads nothing"
    );
    // Once it reads, every request gets its reply, in order.
    greedy.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut replies = BufReader::new(greedy).lines();
    for _ in 0..200 {
        let reply: Value = serde_json::from_str(&replies.next().unwrap().unwrap()).unwrap();
        assert_eq!(reply["ok"], json!(true));
        assert_eq!(reply["result"].as_array().unwrap().len(), 1_000);
    }
}

#[test]
fn a_reply_longer_than_the_queue_bound_reaches_a_client_that_reads() {
    // 8 MiB of recent lines: the reply is twice the 4 MiB queue bound.
    let procmon = Served::start(&writer_config(8_000, 8 << 20));
    procmon.until("big wrote it all", || {
        text(&procmon.ctl(&["logs", "big", "-n", "1"]).stdout).contains("last")
    });
    let out = procmon.ctl(&["logs", "big", "-n", "1000000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert!(
        lines.ends_with("[big] last\n"),
        "{}",
        &lines[lines.len().saturating_sub(200)..]
    );
    assert!(lines.lines().count() > 8_000, "{}", lines.lines().count());
}

#[test]
fn a_client_that_never_stops_sending_cannot_stall_the_loop() {
    let procmon = Served::start("[[process]]\nname = \"one\"\nargv = [\"sleep\", \"1000\"]\n");
    // Requests as fast as one client can write them, its replies read as
    // fast as they come, until the test ends.
    let flood = UnixStream::connect(&procmon.socket).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut flood = flood.try_clone().unwrap();
        let done = done.clone();
        std::thread::spawn(move || {
            let requests = b"{\"v\":1,\"id\":1,\"op\":\"version\"}\n".repeat(2_000);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if flood.write_all(&requests).is_err() {
                    break;
                }
            }
        })
    };
    let reader = {
        let mut flood = flood.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while matches!(flood.read(&mut buf), Ok(n) if n > 0) {}
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // Another client is answered, and a process is stopped, meanwhile.
    let mut other = UnixStream::connect(&procmon.socket).unwrap();
    other.set_read_timeout(Some(PATIENCE)).unwrap();
    other
        .write_all(b"{\"v\":1,\"id\":2,\"op\":\"stop\",\"names\":[\"one\"]}\n")
        .unwrap();
    let mut line = String::new();
    let answered = BufReader::new(&other).read_line(&mut line);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = flood.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    reader.join().unwrap();
    assert!(
        matches!(answered, Ok(n) if n > 0) && line.contains("\"ok\":true"),
        "another client was not answered while one flooded: {answered:?} {line:?}"
    );
    procmon.until("one is down", || {
        procmon.process("one")["state"] == json!("held")
    });
}

#[test]
fn ctl_tells_a_request_too_long_for_procmon_as_a_usage_error() {
    let procmon = Served::start("[[process]]\nname = \"one\"\nargv = [\"sleep\", \"1000\"]\n");
    // 800 KB of names: procmon answers `too_long` after 64 KiB and hangs up
    // while ctl is still writing the rest.
    let names: Vec<String> = (0..8_000).map(|i| format!("{i:0>100}")).collect();
    let mut args = vec!["status"];
    args.extend(names.iter().map(String::as_str));
    let out = procmon.ctl(&args);
    fails_saying(&out, 2, "a request line is at most 65536 bytes");
}

#[test]
fn ctl_against_a_socket_that_is_not_procmon() {
    let dir = TempDir::new();
    // One that hangs up without a word, as it reads the request.
    let rude = dir.path("rude.sock");
    let listener = std::os::unix::net::UnixListener::bind(&rude).unwrap();
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            drop(stream.unwrap());
        }
    });
    for args in [&["version"][..], &["logs", "x", "-f"]] {
        let out = ctl(&rude, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(
            text(&out.stderr).contains("procmon closed the connection"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    server.join().unwrap();
    // One that answers with half a line, then hangs up.
    let half = dir.path("half.sock");
    let listener = std::os::unix::net::UnixListener::bind(&half).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = String::new();
        BufReader::new(&stream).read_line(&mut request).unwrap();
        stream.write_all(b"{\"id\":1,\"ok\":true,\"res").unwrap();
    });
    let out = ctl(&half, &["version"]);
    server.join().unwrap();
    fails_saying(&out, 1, "procmon closed the connection");
    // One that accepts and never answers: ctl gives up after its reply
    // timeout rather than hang a script for ever.
    let mute = dir.path("mute.sock");
    let listener = std::os::unix::net::UnixListener::bind(&mute).unwrap();
    let server = std::thread::spawn(move || listener.accept().unwrap());
    let out = ctl(&mute, &["--reply-timeout", "0.5", "status"]);
    drop(server.join().unwrap());
    fails_saying(&out, 124, "no reply within 0.5 s (--reply-timeout)");
    // A file that is not a socket, and a socket nobody listens on: no
    // procmon there.
    let file = dir.write("file", "");
    let stale = dir.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    for path in [file, stale, dir.path("missing.sock")] {
        let out = ctl(&path, &["status"]);
        assert_eq!(out.status.code(), Some(4), "{path:?}: {out:?}");
        assert!(text(&out.stderr).contains("no procmon listening on"));
    }
}

#[test]
fn a_request_naming_several_processes_or_all_keeps_procmon_up() {
    let procmon = Served::start(
        "[[process]]\nname = \"a\"\nargv = [\"sleep\", \"1000\"]\n\
         [[process]]\nname = \"b\"\nargv = [\"sleep\", \"1001\"]\n",
    );
    procmon.until_all_run();
    for args in [
        &["signal", "CONT", "a", "b"][..],
        &["signal", "CONT", "--all"],
        &["restart", "a", "b", "--wait"],
        &["restart", "a", "a", "--wait"],
        &["stop", "--all", "--wait"],
        &["start", "a", "b", "--wait"],
        &["restart", "--all", "--wait"],
    ] {
        let out = procmon.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}\n--- procmon's stderr ---\n{}",
            text(&out.stderr),
            procmon.stderr()
        );
    }
    procmon.until_all_run();
}

#[test]
fn a_last_request_without_its_newline_is_answered_at_the_clients_end() {
    let procmon = Served::start("[[process]]\nname = \"one\"\nargv = [\"sleep\", \"1000\"]\n");
    let mut client = UnixStream::connect(&procmon.socket).unwrap();
    client
        .write_all(b"{\"v\":1,\"id\":1,\"op\":\"version\"}\n{\"v\":1,\"id\":2,\"op\":\"version\"}")
        .unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let replies: Vec<Value> = BufReader::new(client)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let ids: Vec<&Value> = replies.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2)], "{replies:?}");
    assert!(
        replies.iter().all(|r| r["ok"] == json!(true)),
        "{replies:?}"
    );
}

#[test]
fn a_wait_timeout_that_is_no_duration_is_a_usage_error_before_anything_is_done() {
    let procmon = Served::start("[[process]]\nname = \"one\"\nargv = [\"sleep\", \"1000\"]\n");
    procmon.until_all_run();
    let pid = procmon.pid("one");
    for timeout in ["1e300", "inf", "NaN", "-5"] {
        let flag = format!("--timeout={timeout}");
        let out = procmon.ctl(&["restart", "one", "--wait", &flag]);
        assert_eq!(out.status.code(), Some(2), "{timeout}: {out:?}");
        assert!(
            text(&out.stderr).contains("--timeout"),
            "{timeout}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(procmon.pid("one"), pid, "nothing was restarted");
}

/// `procmon ctl --socket SOCKET ARGS` as `nobody` (uid and gid 65534, no
/// supplementary groups), not yet waited for.
fn ctl_as_nobody(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_procmon"))
        .args(["ctl", "--socket"])
        .arg(socket)
        .args(args)
        .stdin(Stdio::null());
    command
}

#[test]
fn a_reload_takes_access_from_a_user_it_no_longer_lists_even_one_connected() {
    // Root is always let in, so the user whose access changes is nobody.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a client as nobody");
        return;
    }
    let allowed = format!("{TWO}\n[control]\nallow_uids = [65534]\n");
    let procmon = Served::start(&allowed);
    // Let nobody reach the socket, so that the peer check is what decides.
    let dir = procmon.socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&procmon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&procmon.dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let version = ctl_as_nobody(&procmon.socket, &["version"])
        .output()
        .unwrap();
    assert_eq!(version.status.code(), Some(0), "{}", text(&version.stderr));
    // A follower nobody leaves connected: once it has printed `up`'s first
    // line, its connection is open and served.
    let mut follower = ctl_as_nobody(&procmon.socket, &["logs", "up", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    let mut lines = BufReader::new(follower.stdout.take().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    assert!(first.contains("hello"), "{first:?}");

    // Taken out of the file: the reload says access changed, and applies it.
    std::fs::write(&procmon.config, TWO).unwrap();
    let reload = procmon.ctl(&["reload"]);
    assert_eq!(reload.status.code(), Some(0), "{}", text(&reload.stderr));
    assert!(
        text(&reload.stdout).contains("(control access changes: applied now"),
        "{}",
        text(&reload.stdout)
    );
    // The connected follower is refused and disconnected: it fails.
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the follower is still served");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    follower
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("uid 65534 (gid 65534) may no longer use"),
        "{err}"
    );
    // A new connection of nobody is refused too; root's are served.
    let refused = ctl_as_nobody(&procmon.socket, &["version"])
        .output()
        .unwrap();
    fails_saying(&refused, 1, "uid 65534 (gid 65534) may not use");
    assert_eq!(procmon.ctl(&["version"]).status.code(), Some(0));

    // Listed by gid this time, through HUP: let in again.
    std::fs::write(
        &procmon.config,
        format!("{TWO}\n[control]\nallow_gids = [65534]\n"),
    )
    .unwrap();
    // The dry run says so and changes nothing.
    let dry = ask(
        &procmon.socket,
        b"{\"v\":1,\"id\":1,\"op\":\"reload\",\"dry_run\":true}\n",
    );
    assert_eq!(dry["result"]["access_changed"], json!(true), "{dry}");
    assert_eq!(dry["result"]["settings_changed"], json!(true), "{dry}");
    let still = ctl_as_nobody(&procmon.socket, &["version"])
        .output()
        .unwrap();
    assert_eq!(still.status.code(), Some(1), "{}", text(&still.stderr));
    // SAFETY: plain syscall on the procmon this test started.
    unsafe { libc::kill(procmon.child.id() as i32, libc::SIGHUP) };
    procmon.until("nobody is let in again", || {
        ctl_as_nobody(&procmon.socket, &["version"])
            .output()
            .unwrap()
            .status
            .code()
            == Some(0)
    });
    assert!(
        procmon
            .stderr()
            .contains("reloaded the config: global settings"),
        "{}",
        procmon.stderr()
    );
}
