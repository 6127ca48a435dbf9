//! The driver against real processes (`sh`, `sleep`, `seq`, …).
//!
//! These tests run one at a time on the main thread (`harness = false`, see
//! Cargo.toml): the subreaper role and SIGCHLD are process-wide, and only a
//! thread that blocks SIGCHLD lets it reach the supervisor's signalfd.
//!
//! Timing is never asserted exactly: every wait loops `turn` against a
//! generous deadline and checks order and content. Every test leaves no
//! process behind, even when it fails: dropping a [`Run`] drops the
//! `Supervisor` (which kills every live child's group) and then kills and
//! reaps every child of ours that escaped the groups.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::procfs::{our_pid, stat, Proc};
use common::run::{parse_pid, settings, sh, Run, Seen};
use std::num::NonZeroU32;

use procmon_core::{
    ExitStatus, NotRestarting, Policy, ProcessSpec, ProcessState, RestartPolicy, Signal, Stream,
};
use procmon_mio::{CaughtSignal, Options, SpawnStage};

/// A zombie child of ours, if any, left unreaped (`WNOWAIT`).
fn any_zombie_child() -> Option<i32> {
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a writable, zeroed siginfo_t.
    let ret = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: zeroed and possibly filled by the kernel.
    let pid = unsafe { info.si_pid() };
    (ret == 0 && pid != 0).then_some(pid)
}

// ----- The tests -----

/// A socket of the program's own, registered with the supervisor, is
/// reported ready by the same turn that waits for children; the waker ends
/// a turn from another thread; a deregistered source is forgotten.
fn registered_sources_and_the_waker() {
    use std::io::Write;
    let mut run = Run::new(settings(100, 50, 1000));
    let (mine, mut theirs) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    mine.set_nonblocking(true).expect("non-blocking");
    let mut mine = mio::net::UnixStream::from_std(mine);
    let id = run
        .supervisor()
        .register(&mut mine, mio::Interest::READABLE)
        .expect("registered");
    run.turn(Duration::ZERO);
    assert!(
        run.supervisor().take_ready().is_empty(),
        "nothing written yet"
    );
    theirs.write_all(b"x").expect("write");
    let deadline = Instant::now() + run.deadline;
    let ready = loop {
        run.turn(Duration::from_millis(100));
        let ready = run.supervisor().take_ready();
        if !ready.is_empty() || Instant::now() > deadline {
            break ready;
        }
    };
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert!(ready[0].source == id && ready[0].readable);

    // Readiness a turn reported and nobody took keeps the next turn from
    // sleeping: epoll is edge-triggered and would not say it again.
    theirs.write_all(b"z").expect("write");
    let deadline = Instant::now() + run.deadline;
    while Instant::now() < deadline {
        run.turn(Duration::from_millis(100));
        if run.supervisor().take_ready().is_empty() {
            continue;
        }
        let mut buf = [0u8; 16];
        let _ = std::io::Read::read(&mut mine, &mut buf);
        theirs.write_all(b"w").expect("write");
        run.turn(Duration::from_millis(100));
        let started = Instant::now();
        // Without the rule this turn sleeps its whole minute.
        run.turn(Duration::from_secs(60));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(run.supervisor().take_ready().len(), 1);
        break;
    }

    let waker = run.supervisor().waker().expect("a waker");
    let woken = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        waker.wake().expect("wake");
    });
    let started = Instant::now();
    // Without the waker this turn would sleep the whole hour.
    run.turn(Duration::from_secs(3600));
    assert!(started.elapsed() < Duration::from_secs(600));
    woken.join().expect("the waking thread");

    run.supervisor()
        .deregister(id, &mut mine)
        .expect("deregistered");
    theirs.write_all(b"y").expect("write");
    run.turn(Duration::from_millis(100));
    assert!(run.supervisor().take_ready().is_empty());
}

/// Turns with a long timeout until `done` holds, so that only an event (a
/// child's, or a handle's wake-up) can end each turn in time; fails the test
/// if that takes longer than the run's deadline.
fn until_woken(run: &mut Run, what: &str, mut done: impl FnMut(&Run) -> bool) {
    let started = Instant::now();
    while !done(run) {
        assert!(
            started.elapsed() < run.deadline,
            "timed out waiting for {what}"
        );
        run.turn(Duration::from_secs(60));
    }
    assert!(
        started.elapsed() < run.deadline,
        "waited too long for {what}"
    );
}

fn a_handle_starts_and_stops_a_process_from_another_thread() {
    let mut run = Run::new(settings(100, 50, 1000));
    let handle = run.supervisor().handle().expect("a handle");
    let (go, stop_now) = std::sync::mpsc::channel::<()>();
    let remote = std::thread::spawn(move || {
        handle
            .send(|m, now| {
                m.add(now, "remote", sh("echo up; exec sleep 60"))
                    .expect("a fresh name");
            })
            .expect("sent");
        handle
            .send(|m, now| m.start_service(now).unwrap())
            .expect("sent");
        stop_now.recv().expect("told to stop");
        // A clone works as well as the original.
        let clone = handle.clone();
        clone.send(|m, now| m.stop_service(now)).expect("sent");
        handle
    });
    // Nothing but the handle's wake-up can end the first 60-second turn.
    until_woken(&mut run, "the remote start", |r| {
        r.lines("remote", Stream::Stdout) == [b"up".to_vec()]
    });
    let pid = run.pid_of("remote");
    go.send(()).expect("the thread waits");
    until_woken(&mut run, "the remote stop", |r| {
        r.count(|s| matches!(s, Seen::Exited(..))) == 1
    });
    assert!(run.seen.contains(&Seen::Exited(
        "remote".into(),
        pid,
        ExitStatus::Signal(libc::SIGTERM)
    )));
    run.quiesce();
    let handle = remote.join().expect("the sending thread");
    drop(run);
    let refused = handle.send(|m, now| m.start_service(now).unwrap());
    assert_eq!(
        refused.expect_err("no supervisor to run it").kind(),
        ErrorKind::NotConnected
    );
}

/// What an embedding event loop waits on (the poll descriptor and the next
/// deadline) stays quiet while nothing happens: no periodic wake-up.
fn an_idle_supervisor_gives_an_embedder_nothing_to_do() {
    use std::os::fd::AsRawFd;
    let mut run = Run::new(settings(100, 50, 1000));
    run.add("idle", sh("echo up; exec sleep 60"));
    run.start();
    // Past the threshold timer, which the core arms after a start.
    run.until("a settled child", |r| {
        r.lines("idle", Stream::Stdout) == [b"up".to_vec()]
            && r.supervisor().next_deadline().is_none()
    });
    run.turn(Duration::ZERO);
    let mut fd = libc::pollfd {
        fd: run.supervisor().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let ready = unsafe { libc::poll(&mut fd, 1, 1000) };
    assert_eq!(
        ready, 0,
        "the descriptor woke an idle loop: {:#x}",
        fd.revents
    );
    assert_eq!(run.supervisor().next_deadline(), None);
    // And it does wake for what happens: the child's exit.
    run.stop();
    // SAFETY: as above.
    let ready = unsafe { libc::poll(&mut fd, 1, 20_000) };
    assert_eq!(ready, 1, "the stop did not make the descriptor readable");
}

fn restart_after_crash() {
    let mut run = Run::new(settings(100, 50, 1000));
    run.add("crash", sh("echo up; sleep 0.3; exit 3"));
    run.start();
    run.until("a second start", |r| {
        r.count(|s| matches!(s, Seen::Spawned(..))) >= 2
    });
    let pids = run.spawned_pids();
    assert_ne!(pids[0], pids[1]);
    let up = run.position(|s| matches!(s, Seen::Output(_, Stream::Stdout, l) if l == b"up"));
    let exit = run.position(|s| *s == Seen::Exited("crash".into(), pids[0], ExitStatus::Code(3)));
    // It lived past the threshold: restarted at once.
    let restart = run.position(|s| *s == Seen::Restart("crash".into(), Duration::ZERO));
    let second = run.position(|s| *s == Seen::Spawned("crash".into(), pids[1]));
    assert!(
        up < exit && exit < restart && restart < second,
        "{:#?}",
        run.seen
    );
    run.stop();
    run.quiesce();
}

/// A child's partial last line reaches the observer before its exit: the
/// core's command order puts the exit first, the driver puts the lines first.
fn partial_last_line_comes_before_the_exit() {
    let mut run = Run::new(settings(10_000, 60_000, 60_000));
    run.add("brief", sh("echo full; printf partial >&2; printf half"));
    run.start();
    run.until_exits(1);
    let exit = run.position(|s| matches!(s, Seen::Exited(..)));
    for (stream, line) in [(Stream::Stdout, &b"half"[..]), (Stream::Stderr, b"partial")] {
        let at =
            run.position(|s| matches!(s, Seen::Output(_, st, l) if *st == stream && l == line));
        assert!(at < exit, "{:#?}", run.seen);
    }
    run.stop();
    run.quiesce();
}

/// While output is paused nothing is read, so a child writing more than a
/// pipe holds blocks instead of piling up in the monitor; resumed, every
/// byte and line arrives.
fn paused_output_holds_children_back_and_loses_nothing() {
    let mut run = Run::new(settings(10_000, 60_000, 60_000));
    run.record_output = false;
    run.supervisor().pause_output(true);
    run.add("chatty", sh("seq 1 200000; echo done"));
    run.start();
    run.turn_for(Duration::from_millis(500));
    assert_eq!(run.stats.pieces, [0, 0], "read while paused");
    assert_eq!(
        run.count(|s| matches!(s, Seen::Exited(..))),
        0,
        "1.3 MB fit a pipe?"
    );
    run.supervisor().pause_output(false);
    run.until_exits(1);
    assert_eq!(run.stats.pieces[0], 200_001);
    assert_eq!(
        run.stats.bytes[0],
        (1..=200_000)
            .map(|n: u64| n.to_string().len() as u64)
            .sum::<u64>()
            + 4
    );
    run.stop();
    run.quiesce();
}

/// Descriptors this process has open.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
        // The directory's own descriptor, open while it is listed.
        - 1
}

/// A child whose group floods its pipes (`yes &`) and which exits after a
/// moment, restarted again and again while output is paused (procmon's
/// stdout congested). At each exit its group is killed, so nothing holds
/// its pipes any more; they are merely unread. They used to be kept for
/// escapees all the same: four instances' pipes held open, and each further
/// exit closed the oldest with a false "still held open by processes that
/// left its group".
fn paused_output_does_not_take_a_killed_group_for_escapees() {
    let mut run = Run::new(settings(10_000, 1, 1));
    run.record_output = false;
    let baseline = fd_count();
    run.supervisor().pause_output(true);
    run.add("flood", sh("yes 'some log line' & sleep 0.2; exit 0"));
    run.start();
    run.until_exits(8);
    // The live instance's pipes and pidfd, and those of an exited one whose
    // killed group was still dying: nothing else, however many exits.
    run.until("the pipes of killed groups closed while paused", |_| {
        fd_count() <= baseline + 3
    });
    run.stop();
    run.quiesce();
    run.until("every descriptor back while paused", |_| {
        fd_count() == baseline
    });
    assert_eq!(
        run.count(|s| matches!(s, Seen::OutputClosed(..))),
        0,
        "{:#?}",
        run.seen
    );
}

fn backoff_grows_on_instant_deaths() {
    let mut run = Run::new(settings(10_000, 20, 320));
    run.add("flap", sh("exit 1"));
    run.start();
    run.until("six restarts", |r| {
        r.count(|s| matches!(s, Seen::Restart(..))) >= 6
    });
    let delays: Vec<Duration> = run
        .seen
        .iter()
        .filter_map(|s| match s {
            Seen::Restart(_, d) => Some(*d),
            _ => None,
        })
        .collect();
    assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
    assert!(delays[0] < delays[delays.len() - 1], "{delays:?}");
    assert!(delays.iter().all(|d| *d <= Duration::from_millis(320)));
    run.stop();
    run.quiesce();
}

fn term_then_kill_for_a_term_ignoring_child() {
    let mut s = settings(100, 50, 1000);
    s.kill_time = Duration::from_millis(300);
    let mut run = Run::new(s);
    // The ignored TERM is inherited by `sleep`, so the whole group ignores it.
    run.add("stubborn", sh("trap '' TERM; echo ready; sleep 100"));
    run.start();
    run.until("ready", |r| !r.lines("stubborn", Stream::Stdout).is_empty());
    run.stop();
    run.quiesce();
    let pid = run.spawned_pids()[0];
    let term = run.position(|s| *s == Seen::Signalled("stubborn".into(), pid, Signal::Term));
    let kill = run.position(|s| *s == Seen::Signalled("stubborn".into(), pid, Signal::Kill));
    let exit = run.position(|s| {
        *s == Seen::Exited("stubborn".into(), pid, ExitStatus::Signal(libc::SIGKILL))
    });
    assert!(term < kill && kill < exit, "{:#?}", run.seen);
}

fn grandchildren_gone_after_stop() {
    let mut run = Run::new(settings(100, 50, 1000));
    run.add("tree", sh("sleep 100 & echo $!; wait"));
    run.start();
    run.until("the grandchild's pid", |r| {
        !r.lines("tree", Stream::Stdout).is_empty()
    });
    let grandchild = Proc::of(parse_pid(&run.lines("tree", Stream::Stdout)[0]));
    run.stop();
    run.quiesce();
    run.until("the grandchild gone and reaped", |_| grandchild.gone());
}

fn group_killed_when_the_leader_exits() {
    // The leader exits by itself; its background child is killed with the
    // group before the leader is reaped, then reaped as an orphan.
    let mut run = Run::new(settings(100, 60_000, 60_000));
    run.add("leader", sh("sleep 100 & echo $!; exit 0"));
    run.start();
    run.until_exits(1);
    // Seen after the leader's exit, so it may be gone already: pid only.
    let grandchild = parse_pid(&run.lines("leader", Stream::Stdout)[0]);
    run.until("the grandchild gone and reaped", |_| {
        stat(grandchild).is_none_or(|s| s.parent != our_pid())
    });
    run.stop();
    run.quiesce();
}

fn escaped_grandchild_output_and_orphan_reaping() {
    // The grandchild leaves the group (setsid), so the group kill misses it;
    // it keeps the pipes open after the leader exits. The exit must be
    // reported without waiting for EOF, the late output still logged under the
    // same name, and the orphan reaped by us as subreaper when it exits.
    let mut run = Run::new(settings(10_000, 60_000, 60_000));
    run.add(
        "escape",
        // The pause lets `setsid` leave the group before the leader's exit
        // kills whatever is still in it.
        sh("setsid sh -c 'sleep 1; echo late; printf tail' & echo $!; sleep 0.2; exit 0"),
    );
    run.start();
    run.until_exits(1);
    let escaped = Proc::of(parse_pid(&run.lines("escape", Stream::Stdout)[0]));
    let exited = run.position(|s| matches!(s, Seen::Exited(..)));
    let restart = run.position(|s| matches!(s, Seen::Restart(..)));
    assert!(exited < restart);
    run.until("the late output, flushed at EOF", |r| {
        r.lines("escape", Stream::Stdout).len() >= 3
    });
    assert_eq!(
        run.lines("escape", Stream::Stdout)[1..],
        [b"late".to_vec(), b"tail".to_vec()]
    );
    let late = run.position(|s| matches!(s, Seen::Output(_, _, l) if l == b"late"));
    assert!(exited < late, "the exit did not wait for the pipe's EOF");
    run.until("the escaped orphan reaped", |_| escaped.gone());
    run.stop();
    run.quiesce();
}

/// At the end, what an escaped descendant left in a reaped child's pipes
/// (a partial line, with no EOF in sight) is still reported.
fn finish_output_reports_what_escapees_left() {
    let dir = std::env::temp_dir().join(format!("procmon-finish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let mut run = Run::new(settings(10_000, 60_000, 60_000));
    // The escapee leaves the group, lets the leader exit, and writes its
    // partial line only once the leader is gone; then it says so in a file.
    run.add(
        "escape",
        sh(&format!(
            "mkfifo {d}/f && {{ setsid sh -c \"echo > {d}/f; \
             while kill -0 $$ 2>/dev/null; do sleep 0.01; done; \
             printf 'last words'; touch {d}/done; exec sleep 1000\" & }} && read x < {d}/f"
        )),
    );
    run.start();
    run.until("the leader's exit and the escapee's write", |_| {
        dir.join("done").exists()
    });
    run.stop();
    run.quiesce();
    assert!(
        run.lines("escape", Stream::Stdout).is_empty(),
        "{:?}",
        run.seen
    );
    run.finish_output();
    assert_eq!(
        run.lines("escape", Stream::Stdout),
        [b"last words".to_vec()]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn subreaper_reaps_an_adopted_orphan() {
    // The orphan is adopted while the child still runs and dies later: only
    // SIGCHLD (not the exit of one of our own) tells us to reap it.
    let mut run = Run::new(settings(100, 50, 1000));
    run.add(
        "parent",
        sh("setsid sh -c 'exec sleep 0.5' </dev/null >/dev/null 2>&1 & echo $!; sleep 100"),
    );
    run.start();
    run.until("the orphan's pid", |r| {
        !r.lines("parent", Stream::Stdout).is_empty()
    });
    let orphan = Proc::of(parse_pid(&run.lines("parent", Stream::Stdout)[0]));
    run.until("the orphan gone and reaped", |_| orphan.gone());
    assert!(!run.seen.iter().any(|s| matches!(s, Seen::Exited(..))));
    run.stop();
    run.quiesce();
}

fn hundred_thousand_lines_in_order_with_the_partial_last() {
    let mut run = Run::new(settings(100, 60_000, 60_000));
    run.add("seq", sh("seq 1 100000; printf partial"));
    run.start();
    run.until_exits(1);
    let lines = run.lines("seq", Stream::Stdout);
    assert_eq!(lines.len(), 100_001);
    for (i, line) in lines[..100_000].iter().enumerate() {
        assert_eq!(line, (i + 1).to_string().as_bytes(), "line {i}");
    }
    assert_eq!(lines[100_000], b"partial");
    // The last lines come before the exit report.
    let exited = run.position(|s| matches!(s, Seen::Exited(..)));
    let partial = run.position(|s| matches!(s, Seen::Output(_, _, l) if l == b"partial"));
    assert!(partial < exited || partial == exited + 1);
    run.stop();
    run.quiesce();
}

fn invalid_utf8_passes_through_raw() {
    let mut run = Run::new(settings(100, 60_000, 60_000));
    run.add("bytes", sh(r"printf '\377\376ok\n'; printf '\200' >&2"));
    run.start();
    run.until_exits(1);
    assert_eq!(run.lines("bytes", Stream::Stdout), [b"\xff\xfeok".to_vec()]);
    assert_eq!(run.lines("bytes", Stream::Stderr), [b"\x80".to_vec()]);
    run.stop();
    run.quiesce();
}

fn spawn_failures_are_reported_and_back_off() {
    let mut run = Run::new(settings(10_000, 20, 160));
    run.add(
        "missing",
        ProcessSpec::new(["procmon-test-no-such-program"]),
    );
    run.start();
    run.until("four failures", |r| {
        r.count(|s| matches!(s, Seen::SpawnFailed(..))) >= 4
    });
    assert!(run.seen.iter().all(|s| !matches!(s, Seen::Spawned(..))));
    assert!(run
        .seen
        .iter()
        .all(|s| !matches!(s, Seen::SpawnFailed(_, kind, _, stage)
            if *kind != ErrorKind::NotFound || *stage != SpawnStage::Exec)));
    let delays: Vec<Duration> = run
        .seen
        .iter()
        .filter_map(|s| match s {
            Seen::Restart(_, d) => Some(*d),
            _ => None,
        })
        .collect();
    assert!(delays.windows(2).all(|w| w[0] <= w[1]) && delays[0] < delays[delays.len() - 1]);
    run.stop();
    run.quiesce();

    // Failures found only in the child: not executable, bad cwd, refused uid.
    let file = std::env::temp_dir().join(format!("procmon-not-executable-{}", std::process::id()));
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    // Executable, but no `#!`: ENOEXEC, with no retry through /bin/sh.
    let script = std::env::temp_dir().join(format!("procmon-no-shebang-{}", std::process::id()));
    std::fs::write(&script, "echo should not run\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut run = Run::new(settings(10_000, 60_000, 60_000));
    run.add(
        "noexec",
        ProcessSpec::new([file.to_str().unwrap().as_bytes().to_vec()]),
    );
    run.add(
        "noshebang",
        ProcessSpec::new([script.to_str().unwrap().as_bytes().to_vec()]),
    );
    run.add(
        "badcwd",
        ProcessSpec::new(["true"]).with_cwd("/procmon-no-such-directory"),
    );
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        run.add("baduid", ProcessSpec::new(["true"]).with_uid(0));
    }
    run.start();
    let expected = if root { 3 } else { 4 };
    run.until("every failure", |r| {
        r.count(|s| matches!(s, Seen::SpawnFailed(..))) >= expected
    });
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&script).unwrap();
    let failure = |name: &str| {
        run.seen
            .iter()
            .find_map(|s| match s {
                Seen::SpawnFailed(n, _, errno, stage) if n == name => Some((*errno, *stage)),
                _ => None,
            })
            .unwrap()
    };
    // The step tells what the errno means: ENOENT at chdir is the cwd.
    assert_eq!(failure("noexec"), (Some(libc::EACCES), SpawnStage::Exec));
    assert_eq!(
        failure("noshebang"),
        (Some(libc::ENOEXEC), SpawnStage::Exec)
    );
    assert!(run.lines("noshebang", Stream::Stdout).is_empty());
    assert_eq!(failure("badcwd"), (Some(libc::ENOENT), SpawnStage::Chdir));
    if !root {
        assert_eq!(failure("baduid"), (Some(libc::EPERM), SpawnStage::User));
    }
    assert_eq!(any_zombie_child(), None, "a failed child was not reaped");
    run.stop();
    run.quiesce();
}

fn no_zombie_is_left() {
    let mut run = Run::new(settings(1, 10, 10));
    run.add("brief", sh("exit 0"));
    run.add("crash", sh("kill -SEGV $$"));
    run.start();
    run.until("ten starts", |r| {
        r.count(|s| matches!(s, Seen::Spawned(..))) >= 10
    });
    run.stop();
    run.quiesce();
    assert!(run
        .seen
        .iter()
        .any(|s| matches!(s, Seen::Exited(_, _, ExitStatus::Signal(libc::SIGSEGV)))));
    for pid in run.spawned_pids() {
        assert!(
            stat(pid).is_none_or(|s| s.state != 'Z' || s.parent != our_pid()),
            "pid {pid} is our zombie"
        );
    }
    assert_eq!(any_zombie_child(), None);
}

fn descriptors_do_not_leak_into_children() {
    let mut run = Run::new(settings(100, 60_000, 60_000));
    // A running neighbour, so its pipes and pidfd exist while "fds" starts.
    run.add("neighbour", sh("sleep 100"));
    run.add("fds", sh("ls /proc/$$/fd"));
    run.start();
    run.until("the listing", |r| {
        r.count(|s| matches!(s, Seen::Exited(n, ..) if n == "fds")) >= 1
    });
    assert_eq!(
        run.lines("fds", Stream::Stdout),
        [b"0".to_vec(), b"1".to_vec(), b"2".to_vec()]
    );
    run.stop();
    run.quiesce();
}

fn environment_and_working_directory() {
    let mut run = Run::new(settings(100, 60_000, 60_000));
    run.add(
        "inherit",
        sh("echo \"$PROCMON_TEST_VALUE:${PATH:+has-path}\"").with_env("PROCMON_TEST_VALUE", "yes"),
    );
    run.add(
        "clear",
        ProcessSpec::new(["/usr/bin/env"])
            .with_clear_env(true)
            .with_env("ONLY", "this"),
    );
    run.add("cwd", ProcessSpec::new(["pwd"]).with_cwd("/tmp"));
    // The monitor raised its descriptor limit; the child gets the old one.
    run.add("limit", sh("ulimit -n"));
    run.start();
    run.until_exits(4);
    assert_eq!(
        run.lines("limit", Stream::Stdout),
        [nofile_soft_limit_at_start().to_string().into_bytes()]
    );
    assert_eq!(
        run.lines("inherit", Stream::Stdout),
        [b"yes:has-path".to_vec()]
    );
    assert_eq!(run.lines("clear", Stream::Stdout), [b"ONLY=this".to_vec()]);
    assert_eq!(run.lines("cwd", Stream::Stdout), [b"/tmp".to_vec()]);
    run.stop();
    run.quiesce();
}

/// The environment a child gets, exactly, as bytes: the monitor's own in
/// its order, less the keys the definition sets; then the definition's
/// entries, a key given twice taking its last value, in the place of its
/// last entry. This is the rule the driver had before it built each
/// definition's environment once; the test holds it to that rule.
fn environment_is_exactly_the_monitors_plus_the_definitions() {
    use std::os::unix::ffi::OsStrExt;
    let mut run = Run::new(settings(100, 60_000, 60_000));
    let overridden = std::env::vars_os()
        .next()
        .map(|(key, _)| key.as_bytes().to_vec())
        .expect("the test runs with some environment");
    let spec = ProcessSpec::new(["/usr/bin/env"])
        .with_env("PROCMON_A", "1")
        .with_env("PROCMON_B", "2")
        .with_env(overridden.clone(), "mine")
        .with_env("PROCMON_A", "3");
    run.add("env", spec.clone());
    run.add("clear", spec.with_clear_env(true));
    run.start();
    run.until_exits(2);
    let definitions: Vec<Vec<u8>> = vec![
        b"PROCMON_B=2".to_vec(),
        [overridden.as_slice(), b"=mine"].concat(),
        b"PROCMON_A=3".to_vec(),
    ];
    let mut expected: Vec<Vec<u8>> = std::env::vars_os()
        .filter(|(key, _)| key.as_bytes() != overridden)
        .map(|(key, value)| [key.as_bytes(), b"=", value.as_bytes()].concat())
        .collect();
    expected.extend(definitions.iter().cloned());
    assert_eq!(run.lines("env", Stream::Stdout), expected);
    assert_eq!(run.lines("clear", Stream::Stdout), definitions);
    run.stop();
    run.quiesce();
}

/// The driver builds a definition's environment once and reuses it for
/// restarts; a name removed and added again with another environment (which
/// the monitor may give the same key) must get the new one, never the old.
fn a_redefined_process_gets_its_new_environment() {
    let mut run = Run::new(settings(100, 60_000, 60_000));
    let spec = |value: &str| {
        ProcessSpec::new(["/usr/bin/env"])
            .with_clear_env(true)
            .with_env("V", value)
    };
    run.add("env", spec("old"));
    run.start();
    run.until_exits(1);
    // With its restart 60 s away, the removed entry is freed at once and
    // today's monitor hands its key to the next add.
    run.call(|m, now| m.remove(now, "env").expect("added"));
    run.add("env", spec("new"));
    run.until_exits(2);
    assert_eq!(
        run.lines("env", Stream::Stdout),
        [b"V=old".to_vec(), b"V=new".to_vec()]
    );
    run.stop();
    run.quiesce();
}

fn uid_and_gid_are_set() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("(skipped: needs root)");
        return;
    }
    // The child changes credentials in memory it shares with us, which
    // marks that memory (ours too) not dumpable unless the spawner puts the
    // mark back: we must stay as debuggable as we were.
    // SAFETY: prctl with integer arguments only.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    let mut run = Run::new(settings(100, 60_000, 60_000));
    run.add(
        "nobody",
        ProcessSpec::new(["sh", "-c", "echo $(id -u) $(id -g) $(id -G)"])
            .with_uid(65534)
            .with_gid(65534)
            .with_cwd("/"),
    );
    run.start();
    run.until_exits(1);
    assert_eq!(
        run.lines("nobody", Stream::Stdout),
        [b"65534 65534 65534".to_vec()]
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, dumpable);
    run.stop();
    run.quiesce();
}

fn caught_signals_are_returned_from_turn() {
    let mut run = Run::with_options(
        settings(100, 50, 1000),
        Options::default().with_catch_signals(true),
    );
    for (signal, expected) in [
        (libc::SIGTERM, CaughtSignal::Terminate),
        (libc::SIGINT, CaughtSignal::Interrupt),
        (libc::SIGHUP, CaughtSignal::Hangup),
        (libc::SIGQUIT, CaughtSignal::Quit),
        (libc::SIGUSR1, CaughtSignal::User1),
        (libc::SIGUSR2, CaughtSignal::User2),
    ] {
        // SAFETY: the signal is blocked in this (the only) thread, so it
        // waits in the signalfd instead of killing the test.
        unsafe { libc::kill(libc::getpid(), signal) };
        let start = Instant::now();
        let caught = loop {
            if let Some(caught) = run.turn(Duration::from_millis(100)) {
                break caught;
            }
            assert!(start.elapsed() < run.deadline, "signal {signal} not caught");
        };
        assert_eq!(caught, expected);
    }
}

/// A signal sent after `hold_caught_signals` and before the supervisor
/// exists waits, and the supervisor reports it: neither lost (as by a PID 1)
/// nor fatal (as by anyone else).
fn signals_held_before_the_supervisor_are_caught_by_it() {
    procmon_mio::hold_caught_signals().expect("signals blocked");
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the signal is blocked in this (the only) thread, so it
        // waits instead of killing the test.
        unsafe { libc::kill(libc::getpid(), signal) };
    }
    let mut run = Run::with_options(
        settings(100, 50, 1000),
        Options::default().with_catch_signals(true),
    );
    let mut caught = Vec::new();
    let start = Instant::now();
    while caught.len() < 2 {
        caught.extend(run.turn(Duration::from_millis(100)));
        assert!(start.elapsed() < run.deadline, "caught only {caught:?}");
    }
    caught.sort_by_key(|c| *c as u8);
    assert_eq!(caught, [CaughtSignal::Terminate, CaughtSignal::Hangup]);
    drop(run);
    // SAFETY: unblocking signals with no handler installed and none pending.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// An ignored SIGCHLD, handed down by a careless parent, would make the
/// kernel reap children itself: statuses lost and zombies that pin a group
/// gone. The supervisor puts the default back, so exits read true.
fn an_ignored_sigchld_is_reset_and_statuses_survive() {
    // SAFETY: setting a disposition, no handler of ours involved.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut run = Run::new(settings(10_000, 60_000, 60_000));
    run.add("three", sh("exit 3"));
    run.start();
    run.until_exits(1);
    let pid = run.spawned_pids()[0];
    assert_eq!(
        run.count(|s| *s == Seen::Exited("three".into(), pid, ExitStatus::Code(3))),
        1,
        "{:#?}",
        run.seen
    );
    run.stop();
    run.quiesce();
    // SAFETY: as above.
    let now = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    assert_eq!(now, libc::SIG_DFL, "the supervisor left SIGCHLD ignored");
}

/// A storm of INTs and HUPs, read faster than `turn` returns them, fills
/// the queue of caught signals; a TERM after it must still come out.
fn a_signal_storm_does_not_crowd_out_term() {
    let mut run = Run::with_options(
        settings(100, 50, 1000),
        Options::default().with_catch_signals(true),
    );
    let mut returned = Vec::new();
    for _ in 0..12 {
        for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
            // SAFETY: blocked in this (the only) thread: it waits in the signalfd.
            unsafe { libc::kill(libc::getpid(), signal) };
        }
        // Reads three, returns one: the queue grows by two each time.
        returned.extend(run.turn(Duration::from_millis(100)));
    }
    // Read in one go, in signal-number order: the HUP and USR1 fill the
    // queue, and the TERM comes after them.
    for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGTERM] {
        // SAFETY: as above.
        unsafe { libc::kill(libc::getpid(), signal) };
    }
    let start = Instant::now();
    while let Some(caught) = run.turn(Duration::from_millis(100)) {
        returned.push(caught);
        assert!(start.elapsed() < run.deadline, "signals never run out");
    }
    assert!(returned.contains(&CaughtSignal::Terminate), "{returned:?}");
}

fn kill_all_kills_every_group() {
    let mut run = Run::new(settings(100, 60_000, 60_000));
    run.add("a", sh("trap '' TERM; sleep 100"));
    run.add("b", sh("sleep 100 & echo $!; wait"));
    run.start();
    run.until("b's grandchild", |r| {
        !r.lines("b", Stream::Stdout).is_empty()
    });
    let grandchild = Proc::of(parse_pid(&run.lines("b", Stream::Stdout)[0]));
    run.call(|m, now| m.kill_all(now));
    // The core stops the service first (each group gets TERM, which `b`
    // may die of), then sends KILL to both at once, without the kill time.
    run.until_exits(2);
    assert!(
        run.seen.contains(&Seen::Exited(
            "a".into(),
            run.pid_of("a"),
            ExitStatus::Signal(libc::SIGKILL)
        )),
        "{:?}",
        run.seen
    );
    run.until("the grandchild gone", |_| grandchild.gone());
    // The core sent the KILLs itself, so no KILL timer is left behind and
    // the service is stopped: nothing restarts.
    assert_eq!(
        run.count(|s| matches!(s, Seen::Signalled(_, _, Signal::Kill))),
        2,
        "{:?}",
        run.seen
    );
    assert_eq!(run.count(|s| matches!(s, Seen::Spawned(..))), 2);
    run.quiesce();
    assert_eq!(run.supervisor().monitor().armed_timers(), 0);
}

// ----- Per-process policy -----

/// `sh -c script` under `policy`, which `edit` fills in.
fn with_policy(script: &str, edit: impl FnOnce(&mut Policy)) -> ProcessSpec {
    let mut policy = Policy::default();
    edit(&mut policy);
    sh(script).with_policy(policy)
}

fn state(run: &mut Run, name: &str) -> ProcessState {
    run.supervisor()
        .monitor()
        .status(name)
        .expect("an added name")
        .state
}

fn on_failure_keeps_a_success_down_and_restarts_a_failure() {
    let mut run = Run::new(settings(100, 50, 1000));
    let on_failure = |p: &mut Policy| p.restart = Some(RestartPolicy::OnFailure);
    run.add("ok", with_policy("echo ok; exit 0", on_failure));
    run.add("bad", with_policy("sleep 0.2; exit 1", on_failure));
    run.start();
    run.until("bad's third start", |r| {
        r.count(|s| matches!(s, Seen::Spawned(n, _) if n == "bad")) >= 3
    });
    let ok = run.pid_of("ok");
    let exit = run.position(|s| *s == Seen::Exited("ok".into(), ok, ExitStatus::Code(0)));
    let decision = run.position(|s| {
        *s == Seen::NotRestarting("ok".into(), NotRestarting::Policy(RestartPolicy::OnFailure))
    });
    assert_eq!(decision, exit + 1, "{:#?}", run.seen);
    // While `bad` was restarted twice, `ok` stayed down.
    assert_eq!(
        run.count(|s| matches!(s, Seen::Spawned(n, _) if n == "ok")),
        1
    );
    assert_eq!(state(&mut run, "ok"), ProcessState::Exited);
    assert!(
        run.count(|s| matches!(s, Seen::Restart(n, _) if n == "bad")) >= 2,
        "{:#?}",
        run.seen
    );
    run.stop();
    run.quiesce();
}

fn never_restarts_even_a_failure() {
    let mut run = Run::new(settings(100, 50, 1000));
    let never = |p: &mut Policy| p.restart = Some(RestartPolicy::Never);
    run.add("once", with_policy("echo once; exit 1", never));
    run.start();
    run.until("the decision", |r| {
        r.count(|s| matches!(s, Seen::NotRestarting(..))) >= 1
    });
    assert_eq!(
        run.seen.last(),
        Some(&Seen::NotRestarting(
            "once".into(),
            NotRestarting::Policy(RestartPolicy::Never)
        )),
        "{:#?}",
        run.seen
    );
    assert_eq!(state(&mut run, "once"), ProcessState::Exited);
    // Nothing is pending: no timer keeps the monitor awake.
    assert!(run.supervisor().monitor().is_quiescent());
    assert_eq!(run.count(|s| matches!(s, Seen::Spawned(..))), 1);
}

fn gives_up_after_quick_deaths_and_retries() {
    // Every life is far below the 10 s threshold: each end is a quick death.
    let mut run = Run::new(settings(10_000, 20, 40));
    run.add(
        "hopeless",
        with_policy("echo trying; exit 1", |p| {
            p.give_up_after = NonZeroU32::new(3);
            p.retry_failed_after = Some(Duration::from_millis(300));
        }),
    );
    run.start();
    run.until("a give-up after the retry", |r| {
        r.count(|s| matches!(s, Seen::GaveUp(..))) >= 2
    });
    let spawns = |run: &Run, before: usize| {
        run.seen[..before]
            .iter()
            .filter(|s| matches!(s, Seen::Spawned(..)))
            .count()
    };
    let first = run.position(|s| *s == Seen::GaveUp("hopeless".into(), 3));
    // Three lives, then no restart: it gave up.
    assert_eq!(spawns(&run, first), 3, "{:#?}", run.seen);
    assert!(
        !run.seen[first..]
            .iter()
            .any(|s| matches!(s, Seen::Restart(..))),
        "{:#?}",
        run.seen
    );
    // The retry is one more life, which, quick again, fails it again at
    // once, the count unchanged by the retry.
    let second = run.position(|s| *s == Seen::GaveUp("hopeless".into(), 4));
    assert_eq!(spawns(&run, second), 4, "{:#?}", run.seen);
    assert_eq!(state(&mut run, "hopeless"), ProcessState::Failed);
    run.stop();
    run.quiesce();
}

fn the_stop_signal_reaches_a_child_that_traps_it() {
    let mut run = Run::new(settings(100, 50, 1000));
    run.add(
        "graceful",
        with_policy(
            "trap 'echo got INT; exit 0' INT; echo ready; while :; do sleep 0.1; done",
            |p| p.stop_signal = Some(Signal::Int),
        ),
    );
    run.start();
    run.until("ready", |r| !r.lines("graceful", Stream::Stdout).is_empty());
    run.stop();
    run.quiesce();
    let pid = run.pid_of("graceful");
    let int = run.position(|s| *s == Seen::Signalled("graceful".into(), pid, Signal::Int));
    let said = run.position(|s| matches!(s, Seen::Output(_, Stream::Stdout, l) if l == b"got INT"));
    let exit = run.position(|s| *s == Seen::Exited("graceful".into(), pid, ExitStatus::Code(0)));
    assert!(int < said && said < exit, "{:#?}", run.seen);
    assert!(
        !run.seen
            .iter()
            .any(|s| matches!(s, Seen::Signalled(_, _, Signal::Term | Signal::Kill))),
        "{:#?}",
        run.seen
    );
}

fn a_process_kill_time_overrides_the_global_one() {
    // A global kill time past the test's deadline: only the process's own
    // can end this test in time.
    let mut s = settings(100, 50, 1000);
    s.kill_time = Duration::from_secs(3600);
    let mut run = Run::new(s);
    run.add(
        "stubborn",
        with_policy("trap '' TERM; echo ready; sleep 100", |p| {
            p.kill_time = Some(Duration::from_millis(300));
        }),
    );
    run.start();
    run.until("ready", |r| !r.lines("stubborn", Stream::Stdout).is_empty());
    run.stop();
    run.quiesce();
    let pid = run.pid_of("stubborn");
    let term = run.position(|s| *s == Seen::Signalled("stubborn".into(), pid, Signal::Term));
    let kill = run.position(|s| *s == Seen::Signalled("stubborn".into(), pid, Signal::Kill));
    let exit = run.position(|s| {
        *s == Seen::Exited("stubborn".into(), pid, ExitStatus::Signal(libc::SIGKILL))
    });
    assert!(term < kill && kill < exit, "{:#?}", run.seen);
}

/// The soft descriptor limit before the first supervisor raised it.
static NOFILE_AT_START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

fn nofile_soft_limit_at_start() -> u64 {
    *NOFILE_AT_START.get().expect("set in main")
}

/// Lowers the soft descriptor limit below the hard one where possible, so the
/// supervisor's raise (and the child's restore) is visible to the tests.
fn lower_nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_max > 1024 && limit.rlim_cur > 1024 {
            limit.rlim_cur = 1024;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

/// With `reap_orphans` off, a child the embedding program started itself
/// keeps its exit status for the program to wait for, however many exits
/// the supervisor handles; with it on (the default), the orphan reaper takes
/// it, which is why the option exists.
fn own_children_are_left_alone_without_orphan_reaping() {
    for reap in [false, true] {
        let mut own = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("sh starts");
        let pid = own.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(20);
        while stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(Instant::now() < deadline, "sh -c 'exit 7' did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut run = Run::with_options(
            settings(0, 10, 10),
            Options::default().with_reap_orphans(reap),
        );
        // Every exit of `flap` makes the supervisor look for orphans.
        run.add("flap", sh("exit 0"));
        run.start();
        run.until_exits(5);
        run.stop();
        run.quiesce();
        let waited = own.wait();
        if reap {
            let error = waited.expect_err("the orphan reaper reaped it");
            assert_eq!(error.raw_os_error(), Some(libc::ECHILD), "{error}");
        } else {
            let status = waited.expect("still ours to wait for");
            assert_eq!(status.code(), Some(7));
        }
    }
}

/// `Observer::read_line`'s contract: every line between two
/// `output_read`s is one pipe's, while several children write both streams
/// at once; and no line is lost between the two ways lines come.
fn a_reads_lines_are_all_one_pipes() {
    #[derive(Default)]
    struct Reads {
        current: Option<(String, Stream)>,
        reads: usize,
        mixed: usize,
        lines: std::collections::HashMap<(String, Stream), usize>,
        exits: usize,
    }
    impl procmon_mio::Observer for Reads {
        fn output_read(&mut self) {
            self.current = None;
            self.reads += 1;
        }
        fn read_line(&mut self, name: &str, stream: Stream, _line: &[u8]) {
            match &self.current {
                Some((n, s)) if n != name || *s != stream => self.mixed += 1,
                Some(_) => {}
                None => self.current = Some((name.to_string(), stream)),
            }
            *self.lines.entry((name.to_string(), stream)).or_default() += 1;
        }
        fn notice(&mut self, notice: procmon_mio::Notice<'_>) {
            match notice {
                procmon_mio::Notice::Output { name, stream, .. } => {
                    *self.lines.entry((name.to_string(), stream)).or_default() += 1
                }
                procmon_mio::Notice::Exited { .. } => self.exits += 1,
                _ => {}
            }
        }
    }
    let names = ["a", "b", "c", "d"];
    let mut once = Policy::default();
    once.restart = Some(RestartPolicy::Never);
    let monitor = procmon_core::Monitor::new(settings(100, 60_000, 60_000)).unwrap();
    let mut supervisor = procmon_mio::Supervisor::new(monitor, Options::default()).unwrap();
    let mut reads = Reads::default();
    supervisor.call(&mut reads, |m, now| {
        for name in names {
            let script =
                "i=0; while [ $i -lt 5000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
            m.add(now, name, sh(script).with_policy(once)).unwrap();
        }
        m.start_service(now).unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while reads.exits < names.len() {
        assert!(Instant::now() < deadline, "the writers did not all end");
        supervisor
            .turn(&mut reads, Some(Duration::from_millis(100)))
            .unwrap();
    }
    supervisor.finish_output(&mut reads);
    assert_eq!(reads.mixed, 0, "a read's lines came from two pipes");
    assert!(reads.reads >= 2 * names.len(), "{} reads", reads.reads);
    for name in names {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let lines = reads.lines.get(&(name.to_string(), stream)).copied();
            assert_eq!(lines, Some(5000), "{name} {stream:?}");
        }
    }
}

fn main() {
    let tests: &[(&str, fn())] = &[
        ("restart_after_crash", restart_after_crash),
        (
            "a_reads_lines_are_all_one_pipes",
            a_reads_lines_are_all_one_pipes,
        ),
        (
            "a_handle_starts_and_stops_a_process_from_another_thread",
            a_handle_starts_and_stops_a_process_from_another_thread,
        ),
        (
            "an_idle_supervisor_gives_an_embedder_nothing_to_do",
            an_idle_supervisor_gives_an_embedder_nothing_to_do,
        ),
        (
            "registered_sources_and_the_waker",
            registered_sources_and_the_waker,
        ),
        (
            "partial_last_line_comes_before_the_exit",
            partial_last_line_comes_before_the_exit,
        ),
        (
            "paused_output_holds_children_back_and_loses_nothing",
            paused_output_holds_children_back_and_loses_nothing,
        ),
        (
            "paused_output_does_not_take_a_killed_group_for_escapees",
            paused_output_does_not_take_a_killed_group_for_escapees,
        ),
        (
            "backoff_grows_on_instant_deaths",
            backoff_grows_on_instant_deaths,
        ),
        (
            "term_then_kill_for_a_term_ignoring_child",
            term_then_kill_for_a_term_ignoring_child,
        ),
        (
            "grandchildren_gone_after_stop",
            grandchildren_gone_after_stop,
        ),
        (
            "group_killed_when_the_leader_exits",
            group_killed_when_the_leader_exits,
        ),
        (
            "escaped_grandchild_output_and_orphan_reaping",
            escaped_grandchild_output_and_orphan_reaping,
        ),
        (
            "finish_output_reports_what_escapees_left",
            finish_output_reports_what_escapees_left,
        ),
        (
            "subreaper_reaps_an_adopted_orphan",
            subreaper_reaps_an_adopted_orphan,
        ),
        (
            "hundred_thousand_lines_in_order_with_the_partial_last",
            hundred_thousand_lines_in_order_with_the_partial_last,
        ),
        (
            "invalid_utf8_passes_through_raw",
            invalid_utf8_passes_through_raw,
        ),
        (
            "spawn_failures_are_reported_and_back_off",
            spawn_failures_are_reported_and_back_off,
        ),
        ("no_zombie_is_left", no_zombie_is_left),
        (
            "descriptors_do_not_leak_into_children",
            descriptors_do_not_leak_into_children,
        ),
        (
            "environment_and_working_directory",
            environment_and_working_directory,
        ),
        (
            "environment_is_exactly_the_monitors_plus_the_definitions",
            environment_is_exactly_the_monitors_plus_the_definitions,
        ),
        (
            "a_redefined_process_gets_its_new_environment",
            a_redefined_process_gets_its_new_environment,
        ),
        ("uid_and_gid_are_set", uid_and_gid_are_set),
        (
            "caught_signals_are_returned_from_turn",
            caught_signals_are_returned_from_turn,
        ),
        (
            "signals_held_before_the_supervisor_are_caught_by_it",
            signals_held_before_the_supervisor_are_caught_by_it,
        ),
        (
            "an_ignored_sigchld_is_reset_and_statuses_survive",
            an_ignored_sigchld_is_reset_and_statuses_survive,
        ),
        (
            "a_signal_storm_does_not_crowd_out_term",
            a_signal_storm_does_not_crowd_out_term,
        ),
        ("kill_all_kills_every_group", kill_all_kills_every_group),
        (
            "on_failure_keeps_a_success_down_and_restarts_a_failure",
            on_failure_keeps_a_success_down_and_restarts_a_failure,
        ),
        (
            "never_restarts_even_a_failure",
            never_restarts_even_a_failure,
        ),
        (
            "gives_up_after_quick_deaths_and_retries",
            gives_up_after_quick_deaths_and_retries,
        ),
        (
            "the_stop_signal_reaches_a_child_that_traps_it",
            the_stop_signal_reaches_a_child_that_traps_it,
        ),
        (
            "a_process_kill_time_overrides_the_global_one",
            a_process_kill_time_overrides_the_global_one,
        ),
        (
            "own_children_are_left_alone_without_orphan_reaping",
            own_children_are_left_alone_without_orphan_reaping,
        ),
    ];
    NOFILE_AT_START.set(lower_nofile_limit()).expect("set once");
    common::run_tests(tests);
}
