//! The event loop: start the service, print what happens, obey signals.

use std::io::{self, Write};
use std::time::Duration;

use procmon_core::Monitor;
use procmon_mio::{CaughtSignal, Notice, Observer, Options, Supervisor};

use crate::output::{Action, Event, Printer};

/// How a run ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by TERM or INT; every child has ended.
    Stopped,
    /// Stopped because children's lines could no longer be written.
    OutputFailed,
}

/// Runs the monitor's processes until a TERM or INT has stopped them all.
///
/// TERM or INT stop the service: every process gets TERM, then KILL after the
/// kill time, and nothing restarts; the run ends once nothing is alive or
/// scheduled. A second INT sends KILL to everything at once. HUP stops every
/// process and lets each one restart. Each is announced on the error stream.
///
/// An error means the driver itself failed; every child has then been sent
/// KILL (and dies with procmon anyway, through its parent-death signal).
pub fn run<O: Write, E: Write>(monitor: Monitor, printer: Printer<O, E>) -> io::Result<Outcome> {
    let options = Options::default().with_catch_signals(true);
    let kill_time = monitor.settings().kill_time;
    let mut supervisor = Supervisor::new(monitor, options)?;
    let mut observer = Printing { printer, kill_time };
    supervisor.call(&mut observer, |monitor, now| monitor.start_service(now));
    let mut stopping = false;
    let mut outcome = Outcome::Stopped;
    loop {
        observer.printer.flush();
        if let Some(error) = observer.printer.take_output_error() {
            // Like any Unix filter, stop when the reader is gone (`| head`),
            // but stop the children cleanly rather than dying with them.
            observer
                .printer
                .event(&Event::OutputFailed { error: &error });
            outcome = Outcome::OutputFailed;
            if !stopping {
                stopping = true;
                supervisor.call(&mut observer, |monitor, now| monitor.stop_service(now));
            }
        }
        if stopping && supervisor.monitor().is_quiescent() {
            // What escaped descendants left in earlier instances' pipes.
            supervisor.finish_output(&mut observer);
            observer.printer.event(&Event::Stopped);
            return Ok(outcome);
        }
        let caught = match supervisor.turn(&mut observer, None) {
            Ok(caught) => caught,
            Err(error) => {
                supervisor.kill_all();
                observer.printer.flush();
                return Err(error);
            }
        };
        let Some(caught) = caught else { continue };
        let signal = match caught {
            CaughtSignal::Terminate => "TERM",
            CaughtSignal::Interrupt => "INT",
            CaughtSignal::Hangup => "HUP",
        };
        let action = match caught {
            CaughtSignal::Terminate | CaughtSignal::Interrupt if !stopping => Action::Stop,
            // Twisted has no answer to a second ^C; a person pressing it again
            // wants out now, not after the kill time.
            CaughtSignal::Interrupt => Action::KillAll,
            CaughtSignal::Hangup if !stopping => Action::RestartAll,
            CaughtSignal::Terminate | CaughtSignal::Hangup => Action::AlreadyStopping,
        };
        observer.printer.event(&Event::Received { signal, action });
        match action {
            Action::Stop => {
                stopping = true;
                supervisor.call(&mut observer, |monitor, now| monitor.stop_service(now));
            }
            Action::KillAll => supervisor.kill_all(),
            Action::RestartAll => {
                supervisor.call(&mut observer, |monitor, now| monitor.restart_all(now));
            }
            Action::AlreadyStopping => {}
        }
    }
}

/// Turns the driver's notices into printed lines.
struct Printing<O: Write, E: Write> {
    printer: Printer<O, E>,
    kill_time: Duration,
}

impl<O: Write, E: Write> Observer for Printing<O, E> {
    fn notice(&mut self, notice: Notice<'_>) {
        match notice {
            Notice::Output { name, stream, line } => self.printer.child_line(name, stream, line),
            notice => self.printer.event(&Event::Supervisor {
                notice: &notice,
                kill_time: self.kill_time,
            }),
        }
    }
}
