//! Spawn and restart cost of the driver against a bare `posix_spawn` loop.
//!
//! `cargo run --release -p procmon-mio --example bench [ROUNDS] [CHILDREN]`
//!
//! - restart: a process that exits at once (`/bin/true`), restarted with no
//!   delay, ROUNDS times; against `posix_spawn` + `waitpid` in a loop.
//! - start: CHILDREN long-running children (`sleep 1000`) started at once;
//!   against CHILDREN `posix_spawn` calls. Both sides kill them afterwards.

use std::ffi::CString;
use std::time::{Duration, Instant};

use procmon_core::{Monitor, ProcessSpec, Settings};
use procmon_mio::{Notice, Options, Supervisor};

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(2000, |a| a.parse().expect("ROUNDS"));
    let children: usize = args.next().map_or(1000, |a| a.parse().expect("CHILDREN"));

    for _ in 0..2 {
        let bare = bare_restarts(rounds);
        let ours = driver_restarts(rounds);
        println!(
            "restart x{rounds}: posix_spawn {:.1} us/round, procmon-mio {:.1} us/round, ratio {:.2}",
            per(bare, rounds),
            per(ours, rounds),
            ours.as_secs_f64() / bare.as_secs_f64()
        );
        let bare = bare_start(children);
        let ours = driver_start(children);
        println!(
            "start x{children}: posix_spawn {:.1} us/child, procmon-mio {:.1} us/child, ratio {:.2}",
            per(bare, children),
            per(ours, children),
            ours.as_secs_f64() / bare.as_secs_f64()
        );
    }
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn c_argv(argv: &[&str]) -> (Vec<CString>, Vec<*mut libc::c_char>) {
    let owned: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut ptrs: Vec<*mut libc::c_char> = owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
    ptrs.push(std::ptr::null_mut());
    (owned, ptrs)
}

fn posix_spawn(argv: &[*mut libc::c_char]) -> libc::pid_t {
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let mut pid = 0;
    // SAFETY: argv is NUL-terminated C strings ending in a null pointer.
    let err = unsafe {
        libc::posix_spawn(
            &mut pid,
            argv[0],
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr(),
            environ,
        )
    };
    assert_eq!(err, 0, "posix_spawn");
    pid
}

fn bare_restarts(rounds: usize) -> Duration {
    let (_owned, argv) = c_argv(&["/bin/true"]);
    let start = Instant::now();
    for _ in 0..rounds {
        let pid = posix_spawn(&argv);
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    start.elapsed()
}

fn quiet() -> impl FnMut(Notice<'_>) {
    |_| {}
}

fn driver_restarts(rounds: usize) -> Duration {
    let mut settings = Settings::default();
    // No instant deaths, so no backoff: every exit restarts at once.
    settings.threshold = Duration::ZERO;
    let monitor = Monitor::new(settings).unwrap();
    let mut supervisor = Supervisor::new(monitor, Options::default()).unwrap();
    let mut spawns = 0;
    let mut count = |n: Notice<'_>| {
        if let Notice::Spawned { .. } = n {
            spawns += 1;
        }
    };
    let start = Instant::now();
    supervisor.call(&mut count, |m, now| {
        m.add(now, "true", ProcessSpec::new(["/bin/true"])).unwrap();
        m.start_service(now);
    });
    while supervisor.monitor().stats().spawns < rounds as u64 {
        supervisor.turn(&mut count, None).unwrap();
    }
    let elapsed = start.elapsed();
    supervisor.call(&mut quiet(), |m, now| m.stop_service(now));
    while !supervisor.monitor().is_quiescent() {
        supervisor.turn(&mut quiet(), None).unwrap();
    }
    elapsed
}

fn bare_start(children: usize) -> Duration {
    let (_owned, argv) = c_argv(&["/bin/sleep", "1000"]);
    let start = Instant::now();
    let pids: Vec<libc::pid_t> = (0..children).map(|_| posix_spawn(&argv)).collect();
    let elapsed = start.elapsed();
    for pid in pids {
        // SAFETY: killing and reaping our own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    elapsed
}

fn driver_start(children: usize) -> Duration {
    let mut settings = Settings::default();
    settings.kill_time = Duration::ZERO;
    let monitor = Monitor::new(settings).unwrap();
    let mut supervisor = Supervisor::new(monitor, Options::default()).unwrap();
    supervisor.call(&mut quiet(), |m, now| {
        for i in 0..children {
            m.add(
                now,
                &format!("sleep{i}"),
                ProcessSpec::new(["/bin/sleep", "1000"]),
            )
            .unwrap();
        }
    });
    let start = Instant::now();
    supervisor.call(&mut quiet(), |m, now| m.start_service(now));
    let elapsed = start.elapsed();
    supervisor.kill_all();
    supervisor.call(&mut quiet(), |m, now| m.stop_service(now));
    while !supervisor.monitor().is_quiescent() {
        supervisor.turn(&mut quiet(), None).unwrap();
    }
    elapsed
}
