//! Driving procmon from a tokio program.
//!
//! The supervisor does not need a thread of its own: tokio waits on its
//! poll descriptor with [`AsyncFd`] and on its next timer with
//! [`sleep_until`], and calls [`Supervisor::turn`] with a zero timeout
//! when either fires. Nothing runs while nothing happens: there is no
//! periodic tick, and the example checks that at its end by letting a quiet
//! second pass without a single wake-up.
//!
//! A tokio task adds and starts the process through a [`Handle`], whose
//! wake-up makes the descriptor readable. The process, `echo hi; sleep 1`,
//! is restarted each time it ends; after its third end the service is
//! stopped, and the program exits once the monitor is quiescent.
//!
//! Run with `cargo run -p procmon-mio --example tokio_embed`.
//!
//! [`Handle`]: procmon_mio::Handle

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use procmon_core::{EscapeInvalid, Monitor, ProcessSpec, Settings};
use procmon_mio::{Notice, Observer, Options, Supervisor};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{sleep_until, timeout, Instant};

/// How many ends of the process to see before stopping the service.
const RUNS: u32 = 3;

// One thread: the supervisor is not `Send`, and its signal mask and
// children belong to the thread that made it, which here runs every task.
#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let mut settings = Settings::default();
    settings.min_restart_delay = Duration::from_millis(200);
    settings.kill_time = Duration::from_secs(2);
    let monitor = Monitor::new(settings).expect("valid settings");
    let mut supervisor = Supervisor::new(monitor, Options::default())?;
    let handle = supervisor.handle()?;
    // SAFETY: the descriptor is the supervisor's own poll, open for as long
    // as the supervisor, which the `AsyncFd` owns; `as_raw_fd` always
    // returns it.
    let mut fd = unsafe { AsyncFd::register_with_interest(supervisor, Interest::READABLE) }?;

    // Any task (or thread) can make calls through a handle.
    tokio::spawn(async move {
        let spec = ProcessSpec::new(["sh", "-c", "echo hi; sleep 1"]);
        handle
            .send(move |monitor, now| {
                monitor.add(now, "hello", spec).expect("a fresh name");
            })
            .expect("the supervisor is running");
        handle
            .send(|monitor, now| monitor.start_service(now).unwrap())
            .expect("the supervisor is running");
    });

    let ends = Cell::new(0);
    let mut print = |notice: Notice<'_>| {
        if matches!(notice, Notice::Exited { .. }) {
            ends.set(ends.get() + 1);
        }
        print_notice(&notice);
    };

    let mut stopping = false;
    let mut turns = 0u32;
    loop {
        turn(&mut fd, &mut print).await?;
        turns += 1;
        if !stopping && ends.get() >= RUNS {
            stopping = true;
            fd.get_mut()
                .call(&mut print, |monitor, now| monitor.shut_down(now));
        }
        if stopping && fd.get_ref().monitor().is_quiescent() {
            break;
        }
    }
    println!("all stopped after {turns} turns");

    // Idle means idle: once the last hang-ups have come in (each is an
    // event, not idleness), a second passes without the loop waking.
    let mut settled = false;
    for _ in 0..50 {
        if timeout(Duration::from_millis(200), turn(&mut fd, &mut print))
            .await
            .is_err()
        {
            settled = true;
            break;
        }
    }
    assert!(settled, "the supervisor never went quiet");
    let woke = timeout(Duration::from_secs(1), turn(&mut fd, &mut print)).await;
    assert!(woke.is_err(), "an idle supervisor woke the loop");
    println!("no wake-up in a quiet second");

    fd.get_mut().finish_output(&mut print);
    Ok(())
}

/// Waits until the supervisor has work (its descriptor is readable, or its
/// next deadline has come) and does one turn. Cancel-safe: dropped while
/// waiting, it has done nothing.
async fn turn(fd: &mut AsyncFd<Supervisor>, observer: &mut impl Observer) -> io::Result<()> {
    let deadline = fd.get_ref().next_deadline().map(|d| Instant::now() + d);
    let due = async {
        match deadline {
            Some(at) => sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        guard = fd.readable_mut() => {
            let mut guard = guard?;
            guard.get_inner_mut().turn(observer, Some(Duration::ZERO))?;
            // tokio waits for a new edge after `clear_ready`; a poll
            // descriptor with events left over (more than one turn takes)
            // gives none, so it is cleared only once nothing is left.
            if !readable_now(guard.get_inner().as_raw_fd()) {
                guard.clear_ready();
            }
        }
        () = due => {
            fd.get_mut().turn(observer, Some(Duration::ZERO))?;
        }
    }
    Ok(())
}

/// Whether `fd` is readable right now, without waiting.
fn readable_now(fd: RawFd) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call; a zero
    // timeout never blocks.
    unsafe { libc::poll(&mut pollfd, 1, 0) == 1 }
}

fn print_notice(notice: &Notice<'_>) {
    match notice {
        Notice::Spawned { name, pid } => println!("{name}: started as pid {pid}"),
        Notice::Exited {
            name,
            pid,
            status,
            uptime,
            ..
        } => println!("{name}: pid {pid} ended ({status:?}) after {uptime:.1?}"),
        Notice::RestartScheduled { name, delay } => println!("{name}: restarting in {delay:?}"),
        Notice::Output { name, stream, line } => {
            println!("[{name}] {}: {}", stream.as_str(), EscapeInvalid(line))
        }
        // Notice is non-exhaustive: newer kinds are ignored here.
        _ => {}
    }
}
