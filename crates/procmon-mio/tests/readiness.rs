//! Readiness against real processes: sd_notify (from `systemd-notify` and
//! from a small `python3` sender), the s6 notification fd, a log line, and
//! a dependency that waits for readiness.
//!
//! Like `real.rs`, these run one at a time on the main thread (`harness =
//! false`, see Cargo.toml). Timing is never asserted exactly.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::procfs::stat;
use common::run::{settings, sh, Run, Seen};

use procmon_core::{
    Condition, NotReadyCause, Policy, ProcessSpec, ProcessState, Readiness, RestartPolicy,
};
use procmon_mio::NOTIFY_DATAGRAM_BYTES;

/// A `python3` program that sends each of `datagrams` to `$NOTIFY_SOCKET`,
/// `pause` seconds apart, then lives `linger` seconds more: a sender must
/// still exist when its datagram is read, or it cannot be checked.
fn python_sender(datagrams: &[&str], pause: f64, linger: f64) -> String {
    let list: Vec<String> = datagrams.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "import os, socket, time\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         for d in [{}]:\n    s.sendto(d.encode(), os.environ['NOTIFY_SOCKET'])\n    time.sleep({pause})\n\
         time.sleep({linger})\n",
        list.join(", ")
    )
}

/// `sh -c script` that says it is ready through sd_notify.
fn notify(script: &str) -> ProcessSpec {
    sh(script).with_ready(Readiness::Notify)
}

/// Quotes `text` for `sh`.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn state(run: &mut Run, name: &str) -> ProcessState {
    run.supervisor()
        .monitor()
        .status(name)
        .expect("defined")
        .state
}

/// The `NOTIFY_SOCKET` in a live child's environment. Read again for a
/// while: in the middle of an `exec` the environment reads empty.
fn notify_socket_of(pid: i32) -> Option<PathBuf> {
    for _ in 0..200 {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let found = environ
            .split(|&b| b == 0)
            .find_map(|entry| entry.strip_prefix(b"NOTIFY_SOCKET="))
            .map(|path| PathBuf::from(String::from_utf8_lossy(path).into_owned()));
        if found.is_some() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc").count()
}

/// Whether `systemd-notify`, the real client, is on the PATH.
fn systemd_notify_installed() -> bool {
    Command::new("sh")
        .args(["-c", "command -v systemd-notify"])
        .output()
        .is_ok_and(|o| o.status.success())
}

// ----- The tests -----

/// The real sd_notify client: `systemd-notify --ready --status=...` from a
/// shell inside the child's session.
fn systemd_notify_makes_a_process_ready() {
    if !systemd_notify_installed() {
        println!("skipped: systemd-notify is not installed");
        return;
    }
    let mut run = Run::new(settings(100, 50, 1000));
    run.add(
        "db",
        notify(
            "sleep 0.3; systemd-notify --ready --status='accepting connections'; exec sleep 100",
        ),
    );
    run.start();
    assert_eq!(state(&mut run, "db"), ProcessState::Starting);
    run.until("db ready", |r| r.seen.contains(&Seen::Ready("db".into())));
    assert_eq!(state(&mut run, "db"), ProcessState::Running);
    assert_eq!(
        run.supervisor().notify_status("db"),
        Some("accepting connections")
    );
    assert!(run
        .seen
        .contains(&Seen::Status("db".into(), "accepting connections".into())));
    assert_eq!(run.supervisor().stats().notify_rejected, 0);
}

/// A sender of our own, a grandchild in the child's session: several keys
/// in one datagram, the latest status kept, a cut datagram, STOPPING=1.
fn a_helper_sends_status_ready_and_stopping() {
    let mut run = Run::new(settings(100, 50, 1000));
    let long = format!("STATUS={}", "x".repeat(NOTIFY_DATAGRAM_BYTES * 2));
    let program = python_sender(
        &[
            "STATUS=warming up",
            &long,
            "MAINPID=1\nSTATUS=serving\nREADY=1",
            "STOPPING=1",
        ],
        0.1,
        5.0,
    );
    run.add(
        "web",
        notify(&format!("python3 -c {}; exec sleep 100", quoted(&program))),
    );
    run.start();
    assert_eq!(state(&mut run, "web"), ProcessState::Starting);
    run.until("web stopping", |r| {
        r.seen.contains(&Seen::Stopping("web".into()))
    });
    let statuses: Vec<&Seen> = run
        .seen
        .iter()
        .filter(|s| matches!(s, Seen::Status(..) | Seen::Ready(_)))
        .collect();
    assert_eq!(
        statuses,
        [
            &Seen::Status("web".into(), "warming up".into()),
            &Seen::Status("web".into(), "serving".into()),
            &Seen::Ready("web".into()),
        ],
        "the cut datagram's only line is dropped"
    );
    assert_eq!(state(&mut run, "web"), ProcessState::Running);
    assert_eq!(run.supervisor().notify_status("web"), Some("serving"));
    let stats = run.supervisor().stats().clone();
    assert_eq!(
        (
            stats.notify_datagrams,
            stats.notify_truncated,
            stats.notify_rejected
        ),
        (4, 1, 0)
    );

    // A new instance starts without the old one's status.
    run.call(|m, now| m.restart(now, "web").expect("defined"));
    run.until("a second spawn", |r| {
        r.count(|s| matches!(s, Seen::Spawned(..))) == 2
    });
    assert_eq!(run.supervisor().notify_status("web"), None);
    assert_eq!(state(&mut run, "web"), ProcessState::Starting);
}

/// A datagram from a process outside the child's session (a `python3` the
/// test starts itself) is ignored and counted; the child stays `starting`.
fn a_foreign_sender_is_ignored_and_counted() {
    let mut run = Run::new(settings(100, 50, 1000));
    run.add("svc", notify("exec sleep 100"));
    run.start();
    let pid = run.pid_of("svc");
    let socket = notify_socket_of(pid).expect("NOTIFY_SOCKET in the child's environment");
    let program = python_sender(&["READY=1\nSTATUS=forged"], 0.0, 3.0);
    let mut foreign = Command::new("python3")
        .args(["-c", &program])
        .env("NOTIFY_SOCKET", &socket)
        .spawn()
        .expect("python3");
    let foreign_pid = foreign.id() as i32;
    assert_ne!(stat(foreign_pid).map(|s| s.session), Some(pid));
    run.until("the forged datagram", |r| {
        r.supervisor().stats().notify_rejected == 1
    });
    // Still alive when its datagram was judged: rejected for its session.
    assert!(stat(foreign_pid).is_some());
    run.turn_for(Duration::from_millis(200));
    assert_eq!(state(&mut run, "svc"), ProcessState::Starting);
    assert_eq!(run.supervisor().notify_status("svc"), None);
    assert!(!run
        .seen
        .iter()
        .any(|s| matches!(s, Seen::Ready(_) | Seen::Status(..))));
    let _ = foreign.kill();
    // The orphan reaper may have taken its status already.
    let _ = foreign.wait();
}

/// The s6 notification fd: a newline on fd 3 makes the process ready.
fn a_newline_on_the_notification_fd_makes_it_ready() {
    let mut run = Run::new(settings(100, 50, 1000));
    run.add(
        "fd",
        sh("sleep 0.2; echo >&3; exec sleep 100").with_ready(Readiness::Fd(3)),
    );
    // A high descriptor number works as well; nothing of the stdio plumbing
    // is in the way.
    run.add(
        "high",
        ProcessSpec::new([
            "python3",
            "-c",
            "import os, time; os.write(200, b'almost\\n'); time.sleep(100)",
        ])
        .with_ready(Readiness::Fd(200)),
    );
    run.start();
    assert_eq!(state(&mut run, "fd"), ProcessState::Starting);
    run.until("both ready", |r| {
        r.seen.contains(&Seen::Ready("fd".into())) && r.seen.contains(&Seen::Ready("high".into()))
    });
    assert_eq!(state(&mut run, "fd"), ProcessState::Running);
    assert_eq!(state(&mut run, "high"), ProcessState::Running);
    // The monitor keeps only the child's descriptors, not the pipe's end.
    let pid = run.pid_of("fd");
    let parent_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the child's fds")
        .count();
    assert!(parent_fds >= 4, "fd 3 is open in the child");
}

/// The pipe's write end may already sit at the child's `n` (descriptors
/// are handed out lowest first, so the test can aim for it): it must still
/// reach the child, close-on-exec cleared. (Checked by hand: without the
/// `F_SETFD` for that case, this test times out. Should the aim miss on
/// another machine, it still passes, as the ordinary case.)
fn the_notification_fd_may_already_be_in_place() {
    let mut run = Run::new(settings(100, 50, 1000));
    // A spawn makes the stdout and stderr pipes, then the notification
    // pipe: its write end takes the sixth free descriptor.
    // Probed with fcntl, which (unlike reading /proc/self/fd) opens nothing.
    // SAFETY: F_GETFD on any number only reads its flags, or fails.
    let free = |fd: &i32| unsafe { libc::fcntl(*fd, libc::F_GETFD) } == -1;
    let n = (3..).filter(free).nth(5).expect("free fds");
    let program = format!("import os, time; os.write({n}, b'\\n'); time.sleep(100)");
    run.add(
        "aimed",
        ProcessSpec::new(["python3".to_string(), "-c".into(), program])
            .with_ready(Readiness::Fd(n as u32)),
    );
    run.start();
    run.until("aimed ready", |r| {
        r.seen.contains(&Seen::Ready("aimed".into()))
    });
}

/// The notification fd closed without a newline: not ready, stopped, and
/// restarted by the rules.
fn the_notification_fd_closed_without_a_newline_is_not_ready() {
    let mut run = Run::new(settings(100, 50, 1000));
    let mut policy = Policy::default();
    policy.restart = Some(RestartPolicy::Always);
    run.add(
        "quitter",
        sh("exec 3>&-; exec sleep 100")
            .with_ready(Readiness::Fd(3))
            .with_policy(policy),
    );
    run.start();
    run.until("a restart after the failed start", |r| {
        r.count(|s| matches!(s, Seen::Spawned(..))) >= 2
    });
    let not_ready =
        run.position(|s| *s == Seen::NotReady("quitter".into(), NotReadyCause::ChannelClosed));
    let exited = run.position(|s| matches!(s, Seen::Exited(..)));
    let restarted = run.position(|s| matches!(s, Seen::Restart(..)));
    assert!(not_ready < exited && exited < restarted, "{:#?}", run.seen);
    assert!(!run.seen.contains(&Seen::Ready("quitter".into())));
}

/// A child that dies before it is ready gives an exit, not a closed channel.
fn an_exit_before_readiness_is_an_exit() {
    let mut run = Run::new(settings(100, 50, 1000));
    let mut policy = Policy::default();
    policy.restart = Some(RestartPolicy::Never);
    run.add(
        "crash",
        sh("exit 3")
            .with_ready(Readiness::Fd(3))
            .with_policy(policy),
    );
    run.start();
    run.until_exits(1);
    run.quiesce();
    assert!(
        !run.seen.iter().any(|s| matches!(s, Seen::NotReady(..))),
        "{:#?}",
        run.seen
    );
}

/// Readiness from a log line, end to end.
fn a_log_line_makes_it_ready() {
    let mut run = Run::new(settings(100, 50, 1000));
    run.add(
        "server",
        sh("echo starting; sleep 0.2; echo listening on 8080; exec sleep 100")
            .with_ready(Readiness::LogLine(b"listening".to_vec())),
    );
    run.start();
    run.until("server ready", |r| {
        r.seen.contains(&Seen::Ready("server".into()))
    });
    assert_eq!(state(&mut run, "server"), ProcessState::Running);
    let starting = run.position(|s| matches!(s, Seen::Output(_, _, l) if l == b"starting"));
    let ready = run.position(|s| *s == Seen::Ready("server".into()));
    assert!(starting < ready);
}

/// `web` after `db` ready: not spawned until db's READY=1, and spawned in
/// the very turn that reads it.
fn a_dependent_starts_when_its_dependency_is_ready() {
    let mut run = Run::new(settings(100, 50, 1000));
    let program = python_sender(&["READY=1"], 0.0, 100.0);
    run.add(
        "db",
        notify(&format!("sleep 0.5; exec python3 -c {}", quoted(&program))),
    );
    run.add(
        "web",
        sh("echo web up; exec sleep 100").with_after("db", Condition::Ready),
    );
    run.start();
    assert!(run.seen.contains(&Seen::Waiting("web".into(), "db".into())));
    assert_eq!(state(&mut run, "web"), ProcessState::Waiting);
    let deadline = std::time::Instant::now() + run.deadline;
    loop {
        assert!(std::time::Instant::now() < deadline, "db never ready");
        let web_spawned = run
            .seen
            .iter()
            .any(|s| matches!(s, Seen::Spawned(n, _) if n == "web"));
        if run.seen.contains(&Seen::Ready("db".into())) {
            assert!(web_spawned, "web spawned in the turn db became ready");
            break;
        }
        assert!(!web_spawned, "web spawned before db was ready");
        run.turn(Duration::from_millis(50));
    }
    let ready = run.position(|s| *s == Seen::Ready("db".into()));
    let spawned = run.position(|s| matches!(s, Seen::Spawned(n, _) if n == "web"));
    assert!(ready < spawned);
    run.until("web's output", |r| {
        r.seen
            .iter()
            .any(|s| matches!(s, Seen::Output(n, _, l) if n == "web" && l == b"web up"))
    });
}

/// Each process's socket is private (a 0700 directory) and short enough
/// for `sun_path`; it is kept for the next instance, where a datagram that
/// waited in it meanwhile does not pass for the new instance's; it is
/// removed with its process, and the directory with the supervisor. The
/// monitor's own NOTIFY_SOCKET reaches no child.
fn sockets_are_private_and_cleaned_up() {
    // SAFETY (of the test): one thread; set before the first spawn, which
    // copies the environment.
    std::env::set_var("NOTIFY_SOCKET", "/procmon-test/monitor's own");
    let mut run = Run::new(settings(100, 50, 1000));
    run.add("svc", notify("exec sleep 100"));
    run.add("gone", notify("exec sleep 100"));
    run.add("plain", sh("echo \"[$NOTIFY_SOCKET]\"; exec sleep 100"));
    run.start();
    std::env::remove_var("NOTIFY_SOCKET");
    let socket = notify_socket_of(run.pid_of("svc")).expect("NOTIFY_SOCKET");
    let gone = notify_socket_of(run.pid_of("gone")).expect("NOTIFY_SOCKET");
    assert_ne!(socket, gone, "a socket per process");
    assert!(socket.as_os_str().len() < 108, "{socket:?}");
    let directory = socket.parent().expect("a directory").to_path_buf();
    let mode = std::fs::metadata(&directory)
        .expect("the directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{directory:?}");
    assert!(socket.exists());
    run.until("plain's line", |r| {
        r.seen
            .iter()
            .any(|s| matches!(s, Seen::Output(n, _, _) if n == "plain"))
    });
    assert!(run
        .seen
        .iter()
        .any(|s| matches!(s, Seen::Output(n, _, l) if n == "plain" && l == b"[]")));

    // Held down, svc keeps its socket; a datagram sent to it meanwhile is
    // read once the next instance lives, and is not taken for that one's.
    run.call(|m, now| m.down(now, "svc").expect("defined"));
    run.until_exits(1);
    assert!(socket.exists(), "kept for the next instance");
    let program = python_sender(&["READY=1"], 0.0, 3.0);
    let mut stale = Command::new("python3")
        .args(["-c", &program])
        .env("NOTIFY_SOCKET", &socket)
        .spawn()
        .expect("python3");
    // Sent and waiting in the socket before the next instance exists.
    run.turn_for(Duration::from_millis(500));
    assert_eq!(run.supervisor().stats().notify_datagrams, 0);
    run.call(|m, now| m.start(now, "svc").expect("defined"));
    let second = notify_socket_of(run.pid_of("svc")).expect("NOTIFY_SOCKET");
    assert_eq!(second, socket, "the same socket for the next instance");
    run.until("the waiting datagram", |r| {
        r.supervisor().stats().notify_rejected == 1
    });
    assert_eq!(state(&mut run, "svc"), ProcessState::Starting);
    let _ = stale.kill();
    let _ = stale.wait();

    // A removed process's socket goes once its instance has.
    run.call(|m, now| m.remove(now, "gone").expect("defined"));
    run.until_exits(2);
    assert!(!gone.exists(), "removed with its process");

    drop(run);
    assert!(!socket.exists());
    assert!(
        !Path::new(&directory).exists(),
        "the directory goes at drop"
    );
}

/// A child that runs as another user can still reach its socket (the
/// directory opens to traversal, the socket is that user's), and the
/// directory cannot be listed by it.
fn a_child_of_another_user_can_notify() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root to run a child as another user");
        return;
    }
    if !systemd_notify_installed() {
        println!("skipped: systemd-notify is not installed");
        return;
    }
    let mut run = Run::new(settings(100, 50, 1000));
    run.add(
        "nobody",
        notify(
            "ls \"$(dirname \"$NOTIFY_SOCKET\")\" >/dev/null 2>&1 && echo listed; \
             systemd-notify --ready; exec sleep 100",
        )
        .with_uid(65534)
        .with_gid(65534),
    );
    run.start();
    run.until("ready", |r| r.seen.contains(&Seen::Ready("nobody".into())));
    assert!(
        !run.seen
            .iter()
            .any(|s| matches!(s, Seen::Output(_, _, l) if l == b"listed")),
        "the directory is not listable: {:#?}",
        run.seen
    );
    assert_eq!(run.supervisor().stats().notify_rejected, 0);
}

/// A child that floods its socket with datagrams, and one that floods its
/// notification fd with bytes that are not a newline, keep neither the
/// other children nor the timers from their turn: each channel is read a
/// bounded number of times per turn.
fn floods_on_the_channels_starve_nothing() {
    let mut run = Run::new(settings(100, 50, 1000));
    run.record_output = false;
    let flood = "import os, socket\n\
                 s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                 while True:\n    s.sendto(b'STATUS=flood', os.environ['NOTIFY_SOCKET'])\n";
    run.add(
        "datagrams",
        ProcessSpec::new(["python3", "-c", flood]).with_ready(Readiness::Notify),
    );
    run.add(
        "bytes",
        sh("yes x | tr -d '\\n' >&3").with_ready(Readiness::Fd(3)),
    );
    run.add("quiet", sh("sleep 0.5; echo done; exit 7"));
    run.start();
    run.until("quiet's exit beside the floods", |r| {
        r.seen
            .iter()
            .any(|s| matches!(s, Seen::Exited(n, ..) if n == "quiet"))
    });
    run.until("quiet's restart timer", |r| {
        r.count(|s| matches!(s, Seen::Spawned(n, _) if n == "quiet")) >= 2
    });
    assert!(run.supervisor().stats().notify_datagrams > 100);
    assert_eq!(state(&mut run, "datagrams"), ProcessState::Starting);
    assert_eq!(state(&mut run, "bytes"), ProcessState::Starting);
}

/// Many restarts of both channel kinds, and failed spawns of a notifying
/// process, leave the monitor's descriptor count where it was, but for one
/// socket per notifying process until it is removed.
fn no_descriptor_leaks_across_restarts() {
    let mut run = Run::new(settings(1000, 1, 2));
    run.record = false;
    let before = open_descriptors();
    run.add("n", notify("exit 1"));
    run.add("f", sh("echo >&3; exit 1").with_ready(Readiness::Fd(3)));
    run.add("q", sh("exec 3>&-; exit 1").with_ready(Readiness::Fd(3)));
    // Spawns that fail keep the socket for the next try.
    run.add(
        "missing",
        ProcessSpec::new(["/nonexistent/procmon-test"]).with_ready(Readiness::Notify),
    );
    run.start();
    run.until("300 exits and 50 failed spawns", |r| {
        r.stats.exited >= 300 && r.stats.failed >= 50
    });
    run.stop();
    run.quiesce();
    // Pipes of reaped children may linger a moment for escapees; none here.
    run.turn_for(Duration::from_millis(100));
    // Each notifying process keeps its one socket while it is defined.
    let stopped = open_descriptors();
    assert!(
        stopped <= before + 2,
        "descriptors before {before}, stopped {stopped} ({} exits)",
        run.stats.exited
    );
    for name in ["n", "f", "q", "missing"] {
        run.call(|m, now| m.remove(now, name).expect("defined"));
    }
    let removed = open_descriptors();
    assert!(
        removed <= before,
        "descriptors before {before}, removed {removed}"
    );
}

fn main() {
    let tests: &[(&str, fn())] = &[
        (
            "systemd_notify_makes_a_process_ready",
            systemd_notify_makes_a_process_ready,
        ),
        (
            "a_helper_sends_status_ready_and_stopping",
            a_helper_sends_status_ready_and_stopping,
        ),
        (
            "a_foreign_sender_is_ignored_and_counted",
            a_foreign_sender_is_ignored_and_counted,
        ),
        (
            "a_newline_on_the_notification_fd_makes_it_ready",
            a_newline_on_the_notification_fd_makes_it_ready,
        ),
        (
            "the_notification_fd_may_already_be_in_place",
            the_notification_fd_may_already_be_in_place,
        ),
        (
            "the_notification_fd_closed_without_a_newline_is_not_ready",
            the_notification_fd_closed_without_a_newline_is_not_ready,
        ),
        (
            "an_exit_before_readiness_is_an_exit",
            an_exit_before_readiness_is_an_exit,
        ),
        ("a_log_line_makes_it_ready", a_log_line_makes_it_ready),
        (
            "a_dependent_starts_when_its_dependency_is_ready",
            a_dependent_starts_when_its_dependency_is_ready,
        ),
        (
            "sockets_are_private_and_cleaned_up",
            sockets_are_private_and_cleaned_up,
        ),
        (
            "a_child_of_another_user_can_notify",
            a_child_of_another_user_can_notify,
        ),
        (
            "floods_on_the_channels_starve_nothing",
            floods_on_the_channels_starve_nothing,
        ),
        (
            "no_descriptor_leaks_across_restarts",
            no_descriptor_leaks_across_restarts,
        ),
    ];
    common::run_tests(tests);
}
