//! Embedding procmon in a program of your own.
//!
//! Builds a [`Monitor`], adds two processes, runs them for a few seconds while
//! printing every [`Notice`], then stops the service and turns until the
//! monitor is quiescent (nothing alive, nothing scheduled).
//!
//! Run with `cargo run -p procmon-mio --example embed`.

use std::time::{Duration, Instant};

use procmon_core::{EscapeInvalid, Monitor, ProcessSpec, Settings};
use procmon_mio::{Notice, Options, Supervisor};

fn main() -> std::io::Result<()> {
    let mut settings = Settings::default();
    // Restart quickly so the demo shows a few restarts in its few seconds.
    settings.min_restart_delay = Duration::from_millis(200);
    settings.kill_time = Duration::from_secs(2);
    let monitor = Monitor::new(settings).expect("valid settings");

    // `catch_signals`: Ctrl-C ends the demo early instead of killing it.
    let mut supervisor = Supervisor::new(monitor, Options::default().with_catch_signals(true))?;
    let mut print = |notice: Notice<'_>| print_notice(&notice);

    supervisor.call(&mut print, |monitor, now| {
        let ticker = ProcessSpec::new([
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.5; done",
        ]);
        let crasher = ProcessSpec::new([
            "sh",
            "-c",
            "echo starting; sleep 0.3; echo crashing >&2; exit 3",
        ]);
        monitor.add(now, "ticker", ticker).expect("a fresh name");
        monitor.add(now, "crasher", crasher).expect("a fresh name");
        monitor.start_service(now).unwrap();
    });

    // Run for a few seconds. `turn` sleeps until something happens.
    let until = Instant::now() + Duration::from_secs(4);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if supervisor.turn(&mut print, Some(left))?.is_some() {
            println!("caught a signal, stopping early");
            break;
        }
    }

    // Stop for good: TERM to every process (KILL after the kill time), no
    // restarts, and nothing can start one again while we wait.
    supervisor.call(&mut print, |monitor, now| monitor.shut_down(now));
    while !supervisor.monitor().is_quiescent() {
        if supervisor.turn(&mut print, None)?.is_some() {
            // A second signal: do not wait for the kill time.
            supervisor.call(&mut print, |monitor, now| monitor.kill_all(now));
        }
    }
    println!("all stopped");
    Ok(())
}

fn print_notice(notice: &Notice<'_>) {
    match notice {
        Notice::Spawned { name, pid } => println!("{name}: started as pid {pid}"),
        Notice::SpawnFailed { name, error, stage } => {
            println!("{name}: could not start ({}): {error}", stage.name())
        }
        Notice::Exited {
            name,
            pid,
            status,
            uptime,
            ..
        } => println!("{name}: pid {pid} ended ({status:?}) after {uptime:.1?}"),
        Notice::RestartScheduled { name, delay } => println!("{name}: restarting in {delay:?}"),
        Notice::Signalled {
            name, pid, signal, ..
        } => {
            println!("{name}: sent {} to pid {pid}", signal.as_str())
        }
        Notice::Output { name, stream, line } => {
            println!("[{name}] {}: {}", stream.as_str(), EscapeInvalid(line))
        }
        // Notice is non-exhaustive: newer kinds are ignored here.
        _ => {}
    }
}
