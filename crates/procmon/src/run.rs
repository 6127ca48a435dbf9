//! The event loop: start the service, print what happens, obey signals.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use procmon_core::{Definitions, Monitor};
use procmon_mio::{CaughtSignal, Notice, Observer, Options, Supervisor};

use crate::control::{Access, BoundSocket, ControlFeed, ControlServer, Feeds, Served};
use crate::http::{BoundListener, MetricsServer};
use crate::output::{Action, Event, Printer};
use crate::sink::Sink;

/// Reads and checks the config file anew; the error is one line naming the
/// file and the place.
pub type ReadConfig = Box<dyn FnMut() -> Result<Definitions, String>>;

/// What a run serves besides its processes.
#[derive(Default)]
pub struct Extras {
    /// The control socket, bound, with who may use it and how many recent
    /// lines and bytes to keep per process for `logs`.
    pub control: Option<(BoundSocket, Access, (usize, usize))>,
    /// How to read the config again, for `reload` and HUP; none in
    /// one-command mode, where HUP restarts every process.
    pub read_config: Option<ReadConfig>,
    /// The metrics listener (`[control] metrics_listen`), bound.
    pub metrics: Option<BoundListener>,
}

/// How a run ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by TERM or INT; every child has ended.
    Stopped,
    /// Stopped because children's lines could no longer be written.
    OutputFailed,
}

/// Runs the monitor's processes until a TERM, INT or QUIT has stopped them
/// all.
///
/// TERM, INT or QUIT stop the service: every process gets its stop signal
/// (TERM unless it names another), then KILL after its kill time, and
/// nothing restarts; the run ends once nothing is alive or scheduled. A
/// second INT sends KILL to everything at once, through the monitor. HUP
/// stops every process and lets each one restart, or, with a config file
/// to read again ([`Extras::read_config`]), reloads it. USR1 and USR2 change
/// nothing: tools send them by habit (logrotate sends USR1 to have logs
/// reopened), and by default they would kill procmon. Each is announced on
/// the error stream.
///
/// The printer's streams are written on a thread of their own ([`Sink`]):
/// a reader who stops reading holds up children's output, never the loop,
/// so TERM still stops everything in time. A reader gone from either
/// stream (`EPIPE`, as after `| head`) stops the service and ends the run.
/// At the end, procmon waits for what is left to be written as long as the
/// readers keep taking it (see [`EXIT_STALL_PATIENCE`] and
/// [`EXIT_PATIENCE_CAP`]), and says on stderr how much was not written.
///
/// A TERM, INT or QUIT that arrived before the loop began (they are held
/// from the start of `main`) stops it before anything is started.
///
/// An error means the driver itself failed; every child's group has then
/// been sent KILL (a direct child would die with procmon anyway, through
/// its parent-death signal, unless it exec'd a set-user-ID program: see
/// `docs/reliability.md`).
pub fn run<O, E>(monitor: Monitor, printer: Printer<O, E>, extras: Extras) -> io::Result<Outcome>
where
    O: Write + Send + 'static,
    E: Write + Send + 'static,
{
    let options = Options::default().with_catch_signals(true);
    let kill_time = monitor.settings().kill_time;
    let kill_times = kill_times(&monitor);
    let format = printer.format();
    let (out, err) = printer.into_inner()?;
    let mut monitor = monitor;
    // State changes are for `procmon ctl watch`: reported only when the
    // control socket is served.
    monitor.report_state_changes(extras.control.is_some());
    let mut supervisor = Supervisor::new(monitor, options)?;
    let Extras {
        control,
        mut read_config,
        metrics,
    } = extras;
    let mut metrics = match metrics {
        Some(bound) => Some(MetricsServer::attach(bound, &mut supervisor)?),
        None => None,
    };
    let (mut control, (ring_lines, ring_bytes)) = match control {
        Some((bound, access, ring)) => (
            Some(ControlServer::attach(bound, access, &mut supervisor)?),
            ring,
        ),
        None => (None, (0, 0)),
    };
    let sink = Sink::start(out, err)?;
    sink.set_waker(supervisor.waker()?);
    let printer = Printer::new(format, sink.stdout(), sink.stderr());
    let mut observer = Printing {
        printer,
        kill_time,
        kill_times,
        sink: &sink,
        feed: control
            .as_ref()
            .map(|_| ControlFeed::new(ring_lines, ring_bytes)),
    };
    // Signals that came before the loop: a TERM, INT or QUIT among them wins
    // (HUP comes out first, by number); restarting what has not started is
    // nothing, and USR1 and USR2 are reported as ever.
    let mut early = None;
    while let Some(caught) = supervisor.turn(&mut observer, Some(Duration::ZERO))? {
        match caught {
            CaughtSignal::Terminate | CaughtSignal::Interrupt | CaughtSignal::Quit => {
                early = Some(caught);
                break;
            }
            CaughtSignal::User1 | CaughtSignal::User2 => observer.printer.event(&Event::Received {
                signal: caught.name(),
                action: Action::Ignore,
            }),
            CaughtSignal::Hangup => {}
        }
    }
    if early.is_none() {
        supervisor.call(&mut observer, |monitor, now| monitor.start_service(now));
    }
    let mut stopping = false;
    let mut outcome = Outcome::Stopped;
    loop {
        for report in sink.take_reports() {
            observer.printer.event(&Event::Sink(&report));
        }
        observer.printer.flush();
        let failed = match observer.printer.take_output_error() {
            Some(error) => Some(("stdout", error)),
            None => sink.reader_gone().map(|gone| (gone.stream, gone.error)),
        };
        if let Some((stream, error)) = failed {
            // Like any Unix filter, stop when the reader is gone (`| head`),
            // but stop the children cleanly rather than dying with them.
            // Told once: a gone stdout can be seen by both the printer and
            // the sink.
            if outcome != Outcome::OutputFailed {
                observer.printer.event(&Event::OutputFailed {
                    stream,
                    error: &error,
                });
            }
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
            finish(&sink, &mut observer.printer);
            return Ok(outcome);
        }
        // With output piling up, children's pipes wait (the observer says
        // so before each read) and the loop looks again shortly; while
        // anything else waits to be written, it looks a little later
        // whether a reader has gone. Idle, with everything written, stays
        // idle.
        let mut timeout = if sink.congested() {
            Some(CONGESTED_RECHECK)
        } else {
            sink.busy().then_some(WRITING_RECHECK)
        };
        // A listener that could not accept (out of descriptors) is retried,
        // not left to a readiness epoll will not report again.
        let retry = control.as_ref().is_some_and(ControlServer::wants_retry)
            || metrics
                .as_ref()
                .is_some_and(crate::http::MetricsServer::wants_retry);
        if retry {
            timeout = Some(timeout.map_or(ACCEPT_RETRY, |t| t.min(ACCEPT_RETRY)));
        }
        let caught = match early.take() {
            Some(caught) => Some(caught),
            None => match supervisor.turn(&mut observer, timeout) {
                Ok(caught) => caught,
                Err(error) => {
                    // Dropping the supervisor kills every group: the driver
                    // has failed, so its monitor is no longer to be trusted
                    // with the job.
                    drop(supervisor);
                    finish(&sink, &mut observer.printer);
                    return Err(error);
                }
            },
        };
        let ready = supervisor.take_ready();
        if let Some(server) = metrics.as_mut() {
            server.serve(&mut supervisor, &ready);
        }
        if let Some(server) = control.as_mut() {
            let mut reread = || read_config.as_mut().map(|read| read());
            let served = server.serve(&mut supervisor, &mut observer, &ready, &mut reread);
            report_served(&served, &mut observer, &supervisor);
            if served.shutdown && !stopping {
                observer.printer.event(&Event::Received {
                    signal: "shutdown",
                    action: Action::Stop,
                });
                stopping = true;
                supervisor.call(&mut observer, |monitor, now| monitor.stop_service(now));
            }
        }
        let Some(caught) = caught else { continue };
        let action = match caught {
            CaughtSignal::Terminate | CaughtSignal::Interrupt | CaughtSignal::Quit if !stopping => {
                Action::Stop
            }
            // Twisted has no answer to a second ^C; a person pressing it again
            // wants out now, not after the kill time.
            CaughtSignal::Interrupt => Action::KillAll,
            CaughtSignal::Hangup if !stopping && read_config.is_some() => Action::Reload,
            CaughtSignal::Hangup if !stopping => Action::RestartAll,
            CaughtSignal::Terminate | CaughtSignal::Quit | CaughtSignal::Hangup => {
                Action::AlreadyStopping
            }
            // USR1 will reopen log files once procmon writes any.
            CaughtSignal::User1 | CaughtSignal::User2 => Action::Ignore,
        };
        observer.printer.event(&Event::Received {
            signal: caught.name(),
            action,
        });
        match action {
            Action::Stop => {
                stopping = true;
                supervisor.call(&mut observer, |monitor, now| monitor.stop_service(now));
            }
            // Through the core, so it knows what was sent and cancels the
            // KILL timers of the stop before.
            Action::KillAll => {
                supervisor.call(&mut observer, |monitor, now| monitor.kill_all(now));
            }
            Action::RestartAll => {
                supervisor.call(&mut observer, |monitor, now| monitor.restart_all(now));
            }
            Action::Reload => {
                let read = read_config.as_mut().expect("Reload only with a config");
                let reloaded = match read() {
                    Err(error) => Err(error),
                    Ok(definitions) => supervisor
                        .call(&mut observer, |monitor, now| {
                            monitor.reload(now, definitions)
                        })
                        .map(|plan| (plan, false))
                        .map_err(|e| e.to_string()),
                };
                let served = Served {
                    reloaded: Some(reloaded),
                    ..Served::default()
                };
                report_served(&served, &mut observer, &supervisor);
            }
            Action::AlreadyStopping | Action::Ignore => {}
        }
    }
}

/// At exit, procmon gives up waiting for its output to be written once
/// this long has passed with no byte written: a reader that stopped reading
/// must not keep it alive, while a slow one is waited for.
pub const EXIT_STALL_PATIENCE: Duration = Duration::from_secs(3);

/// At exit, procmon gives up waiting for its output to be written after
/// this long in all, however steadily a slow reader reads.
pub const EXIT_PATIENCE_CAP: Duration = Duration::from_secs(30);

/// How soon a listener whose accept failed (out of descriptors) is tried
/// again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How often a loop whose output is congested looks whether it has
/// drained. Only a fallback: the stdout thread wakes the loop as soon as
/// there is room (see `sink`), since children blocked on full pipes wait
/// for that, and this recheck alone left them blocked for up to 20 ms
/// each time stdout fell 1 MiB behind.
const CONGESTED_RECHECK: Duration = Duration::from_millis(20);

/// How often a loop with output still being written looks whether a
/// reader has gone.
const WRITING_RECHECK: Duration = Duration::from_millis(100);

/// Writes out what is left, waiting by the exit rules, then tells on
/// stderr what could not be written or was dropped unreported, and waits
/// (by the same rules) for that to be written too.
fn finish<O: Write, E: Write>(sink: &Sink, printer: &mut Printer<O, E>) {
    printer.flush();
    let left = sink.drain(EXIT_STALL_PATIENCE, EXIT_PATIENCE_CAP);
    let reports = sink.take_reports();
    for report in &reports {
        printer.event(&Event::Sink(report));
    }
    let unwritten = left.out_bytes > 0 || left.out_dropped_bytes > 0;
    if unwritten {
        printer.event(&Event::Unwritten {
            lines: left.out_lines,
            bytes: left.out_bytes,
            dropped_bytes: left.out_dropped_bytes,
        });
    }
    if unwritten || !reports.is_empty() {
        printer.flush();
        sink.drain_stderr(EXIT_STALL_PATIENCE, EXIT_PATIENCE_CAP);
    }
}

/// Each process's own kill time (its `killtime`, or the global one), for
/// the KILL line to give the one that applied.
fn kill_times(monitor: &Monitor) -> HashMap<String, Duration> {
    monitor
        .processes_in_order()
        .map(|(name, spec)| (name.to_string(), spec.policy.kill_time(monitor.settings())))
        .collect()
}

/// Tells procmon's own log what a reload did, and keeps the kill times the
/// KILL line shows up to date.
fn report_served<O: Write, E: Write>(
    served: &Served,
    observer: &mut Printing<'_, O, E>,
    supervisor: &Supervisor,
) {
    match &served.reloaded {
        None => {}
        Some(Ok((plan, dry_run))) => {
            observer.printer.event(&Event::Reloaded {
                changes: &plan.changes,
                settings_changed: plan.settings_changed,
                dry_run: *dry_run,
            });
            if !dry_run {
                observer.kill_time = supervisor.monitor().settings().kill_time;
                observer.kill_times = kill_times(supervisor.monitor());
            }
        }
        Some(Err(error)) => observer.printer.event(&Event::ReloadFailed { error }),
    }
}

/// Turns the driver's notices into printed lines.
struct Printing<'a, O: Write, E: Write> {
    printer: Printer<O, E>,
    /// The global kill time, for a name not in `kill_times`.
    kill_time: Duration,
    /// Each process's own kill time (its `killtime`, or the global one).
    kill_times: HashMap<String, Duration>,
    /// Where the printer's lines go, asked whether it can take more.
    sink: &'a Sink,
    /// What the control socket serves from (recent lines, state changes);
    /// none without a socket, so a plain run keeps no copy of its lines.
    feed: Option<ControlFeed>,
}

impl<O: Write, E: Write> Feeds for Printing<'_, O, E> {
    fn feed(&mut self) -> &mut ControlFeed {
        self.feed
            .as_mut()
            .expect("a control server runs only with its feed")
    }
}

impl<O: Write, E: Write> Observer for Printing<'_, O, E> {
    fn accepts_output(&mut self) -> bool {
        !self.sink.congested()
    }

    fn notice(&mut self, notice: Notice<'_>) {
        if let Some(feed) = self.feed.as_mut() {
            feed.notice(&notice);
        }
        match notice {
            Notice::Output { name, stream, line } => self.printer.child_line(name, stream, line),
            // State changes are for `procmon ctl watch`; the log already
            // says what caused each.
            Notice::StateChanged { .. } => {}
            notice => {
                let kill_time = match &notice {
                    Notice::Signalled { name, .. } => self.kill_times.get(*name).copied(),
                    _ => None,
                };
                self.printer.event(&Event::Supervisor {
                    notice: &notice,
                    kill_time: kill_time.unwrap_or(self.kill_time),
                });
            }
        }
    }
}
