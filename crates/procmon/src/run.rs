//! The event loop: start the service, print what happens, obey signals.

use std::io::{self, Write};
use std::time::Duration;

use procmon_core::{Monitor, Stream};
use procmon_mio::{CaughtSignal, Notice, Observer, Options, Supervisor};

use crate::config::LogConfig;
use crate::control::{
    Access, BoundSocket, ConfigReread, ControlFeed, ControlServer, Feeds, Served,
};
use crate::http::{BoundListener, MetricsServer};
use crate::logfile::LogCounts;
use crate::logroute::{LogRouter, Route};
use crate::output::{Action, Event, OutBlocks, PrefixId, Printer};
use crate::ring::RingSlot;
use crate::sink::Sink;
use crate::stamp::Timestamps;

/// Reads and checks the config file anew, log settings, access and the
/// settings only a restart applies included; the error is one line naming
/// the file and the place.
pub type ReadConfig = Box<dyn FnMut() -> Result<ConfigReread, String>>;

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
    /// Container mode (`--container`, `[container] enabled`): exit once
    /// nothing is alive or due, with a status that says how it went, and
    /// KILL everything at a second TERM as at a second INT.
    pub container: bool,
    /// Where each process's lines go (log files, stdout, timestamps).
    pub logs: LogConfig,
    /// `--timestamps`: over the config's settings when given.
    pub timestamps: Option<Timestamps>,
}

/// How a run ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by TERM or INT; every child has ended.
    Stopped,
    /// Stopped because children's lines could no longer be written.
    OutputFailed,
    /// The monitor finished (container mode, or a critical process's end)
    /// and deserves this exit status.
    Finished(u8),
}

/// Runs the monitor's processes until a TERM, INT or QUIT has stopped them
/// all.
///
/// TERM, INT or QUIT stop the service: every process gets its stop signal
/// (TERM unless it names another), then KILL after its kill time, and
/// nothing restarts; the run ends once nothing is alive or scheduled. A
/// second INT sends KILL to everything at once, through the monitor. HUP
/// stops every process and lets each one restart, or, with a config file
/// to read again ([`Extras::read_config`]), reloads it. USR1 closes and
/// reopens every log file (logrotate sends it for that), if any process
/// writes one; otherwise it, like USR2, changes nothing: tools send them by
/// habit, and by default they would kill procmon. Each is announced on
/// the error stream.
///
/// Log files are written on a thread of their own too ([`LogRouter`]); a
/// reload that changes only a process's log settings applies them without
/// touching the process.
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
    O: OutBlocks + Send + 'static,
    E: Write + Send + 'static,
{
    let options = Options::default().with_catch_signals(true);
    let format = printer.format();
    let (out, err) = printer.into_inner()?;
    let mut monitor = monitor;
    let mut manager = ServiceManager::from_env();
    // State changes are for `procmon ctl watch` and for the status told to
    // a service manager: reported only when one of them is there.
    monitor.report_state_changes(extras.control.is_some() || manager.is_some());
    monitor.set_container_mode(extras.container);
    let mut supervisor = Supervisor::new(monitor, options)?;
    let Extras {
        control,
        mut read_config,
        metrics,
        container,
        logs,
        timestamps,
    } = extras;
    let router = LogRouter::start(&logs, timestamps)?;
    router.files_ref().set_waker(supervisor.waker()?);
    let log_counts = router.files_ref().counts();
    let mut metrics = match metrics {
        Some(bound) => {
            Some(MetricsServer::attach(bound, &mut supervisor)?.with_log_counts(log_counts.clone()))
        }
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
        sink: &sink,
        feed: control
            .as_ref()
            .map(|_| ControlFeed::new(ring_lines, ring_bytes)),
        logs: router,
        log_counts,
        states_changed: true,
        read_way: None,
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
            CaughtSignal::User1 | CaughtSignal::User2 => {
                let action = user_action(caught, &observer.logs);
                observer.printer.event(&Event::Received {
                    signal: caught.name(),
                    action,
                });
                // Nothing is open yet; done all the same, so that what is
                // told is what was done.
                if action == Action::ReopenLogs {
                    observer.logs.files().reopen();
                }
            }
            CaughtSignal::Hangup => {}
            // A signal the driver came to catch after this was written
            // means nothing to procmon before it has started anything.
            _ => {}
        }
    }
    if early.is_none() {
        let started = supervisor.call(&mut observer, |monitor, now| monitor.start_service(now));
        debug_assert!(
            started.is_ok(),
            "only procmon and a critical end shut it down"
        );
    }
    let mut stopping = false;
    let mut outcome = Outcome::Stopped;
    loop {
        for report in sink.take_reports() {
            observer.printer.event(&Event::Sink(&report));
        }
        for report in observer.logs.files_ref().take_reports() {
            observer.printer.event(&Event::LogFile(&report));
        }
        observer.printer.flush();
        observer.logs.files().flush();
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
                supervisor.call(&mut observer, |monitor, now| monitor.shut_down(now));
            }
        }
        // The core decides when its work is done (container mode, a
        // critical end, or shut down and quiescent) and with which status;
        // after a stop, its status counts only in container mode (outside
        // it, a stop exits 0).
        let finished = supervisor.monitor().finished();
        if let Some(manager) = manager.as_mut() {
            let ending = stopping || finished.is_some();
            let changed = std::mem::take(&mut observer.states_changed);
            manager.tell(supervisor.monitor(), changed, ending, &mut observer.printer);
        }
        if finished.is_some()
            || (supervisor.monitor().is_shut_down() && supervisor.monitor().is_quiescent())
        {
            // What escaped descendants left in earlier instances' pipes.
            supervisor.finish_output(&mut observer);
            let outcome = match finished {
                _ if outcome == Outcome::OutputFailed => outcome,
                Some(code) => Outcome::Finished(code),
                None => outcome,
            };
            match outcome {
                Outcome::Finished(code) => observer.printer.event(&Event::Finished { code }),
                _ => observer.printer.event(&Event::Stopped),
            }
            finish(&sink, &mut observer.printer, &mut observer.logs);
            return Ok(outcome);
        }
        // With output piling up, children's pipes wait (the observer says
        // so before each read) and the loop looks again shortly; while
        // anything else waits to be written, it looks a little later
        // whether a reader has gone. Idle, with everything written, stays
        // idle.
        let mut timeout = if sink.congested() || observer.logs.files_ref().congested() {
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
                    finish(&sink, &mut observer.printer, &mut observer.logs);
                    return Err(error);
                }
            },
        };
        let ready = supervisor.take_ready();
        if let Some(server) = metrics.as_mut() {
            server.serve(&mut supervisor, &ready);
        }
        if let Some(server) = control.as_mut() {
            // The server applies the log settings once the core has taken
            // the reload (`Feeds::reload_logs`), so its reply can name them.
            let mut reread = || read_config.as_mut().map(|read| read());
            let served = server.serve(&mut supervisor, &mut observer, &ready, &mut reread);
            report_served(&served, &mut observer);
            report_log_changes(&served.log_settings_changed, &mut observer.printer);
            if served.shutdown && !stopping {
                observer.printer.event(&Event::Received {
                    signal: "shutdown",
                    action: Action::Stop,
                });
                stopping = true;
                supervisor.call(&mut observer, |monitor, now| monitor.shut_down(now));
            }
        }
        let Some(caught) = caught else { continue };
        let shut_down = supervisor.monitor().is_shut_down();
        let action = match caught {
            CaughtSignal::Terminate | CaughtSignal::Interrupt | CaughtSignal::Quit if !stopping => {
                Action::Stop
            }
            // Twisted has no answer to a second ^C; a person pressing it again
            // wants out now, not after the kill time. So does a container
            // runtime that sends TERM twice.
            CaughtSignal::Interrupt => Action::KillAll,
            CaughtSignal::Terminate if container => Action::KillAll,
            // After a critical end as after a stop, the core starts
            // nothing more, so there is nothing to reload or restart.
            CaughtSignal::Hangup if !shut_down && read_config.is_some() => Action::Reload,
            CaughtSignal::Hangup if !shut_down => Action::RestartAll,
            CaughtSignal::Terminate | CaughtSignal::Quit | CaughtSignal::Hangup => {
                Action::AlreadyStopping
            }
            CaughtSignal::User1 | CaughtSignal::User2 => user_action(caught, &observer.logs),
            // A signal the driver came to catch after this was written:
            // reported, and like USR2 it does not end procmon.
            _ => Action::Ignore,
        };
        observer.printer.event(&Event::Received {
            signal: caught.name(),
            action,
        });
        match action {
            Action::Stop => {
                stopping = true;
                supervisor.call(&mut observer, |monitor, now| monitor.shut_down(now));
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
                let mut log_changes = Vec::new();
                let mut restart_needed = Vec::new();
                let reloaded = match read() {
                    Err(error) => Err(error),
                    Ok(reread) => {
                        // Without a socket served, access is nobody's.
                        let in_force = control
                            .as_ref()
                            .map_or_else(|| reread.access.clone(), |c| c.access().clone());
                        let done = reread.apply(false, &in_force, &mut supervisor, &mut observer);
                        log_changes = done.log_settings_changed;
                        restart_needed = done.restart_needed;
                        if let (Some(server), Some(access)) = (control.as_mut(), done.new_access) {
                            server.set_access(access, &mut supervisor, observer.feed());
                        }
                        done.plan
                            .map(|plan| (plan, false))
                            .map_err(|e| e.to_string())
                    }
                };
                let served = Served {
                    reloaded: Some(reloaded),
                    restart_needed,
                    ..Served::default()
                };
                report_served(&served, &mut observer);
                report_log_changes(&log_changes, &mut observer.printer);
            }
            Action::ReopenLogs => {
                observer.logs.files().reopen();
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

/// What USR1 or USR2 does: USR1 reopens the log files if there are any.
fn user_action(caught: CaughtSignal, logs: &LogRouter) -> Action {
    if caught == CaughtSignal::User1 && !logs.files_ref().is_empty() {
        Action::ReopenLogs
    } else {
        Action::Ignore
    }
}

/// Writes out what is left, waiting by the exit rules, then tells on
/// stderr what could not be written or was dropped unreported, and waits
/// (by the same rules) for that to be written too. The log files first:
/// what they report goes to stderr.
fn finish<O: OutBlocks, E: Write>(sink: &Sink, printer: &mut Printer<O, E>, logs: &mut LogRouter) {
    let unwritten = logs.files().drain(EXIT_STALL_PATIENCE, EXIT_PATIENCE_CAP);
    for report in logs.files_ref().take_reports() {
        printer.event(&Event::LogFile(&report));
    }
    if unwritten > 0 {
        printer.event(&Event::LogsUnwritten { lines: unwritten });
    }
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

/// Tells procmon's own log what a reload did, and what it left for a
/// restart of procmon.
fn report_served<O: OutBlocks, E: Write>(served: &Served, observer: &mut Printing<'_, O, E>) {
    match &served.reloaded {
        None => {}
        Some(Ok((plan, dry_run))) => {
            observer.printer.event(&Event::Reloaded {
                changes: &plan.changes,
                settings_changed: plan.settings_changed,
                dry_run: *dry_run,
            });
            if !served.restart_needed.is_empty() {
                observer.printer.event(&Event::RestartNeeded {
                    settings: &served.restart_needed,
                    dry_run: *dry_run,
                });
            }
        }
        Some(Err(error)) => observer.printer.event(&Event::ReloadFailed { error }),
    }
}

/// procmon's own service manager (systemd with `Type=notify`), told over
/// the socket `NOTIFY_SOCKET` names: `READY=1` once every process has come
/// up as far as it will ([`Monitor::is_started_up`]), `STATUS=` with the
/// count of processes in each state when those counts change, and
/// `STOPPING=1` once the service stops.
struct ServiceManager {
    socket: std::ffi::OsString,
    told_ready: bool,
    told_stopping: bool,
    status: String,
    /// Whether a failed send was reported (once is enough).
    failed: bool,
}

impl ServiceManager {
    /// The manager `NOTIFY_SOCKET` names, if it is set.
    fn from_env() -> Option<ServiceManager> {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())?;
        Some(ServiceManager {
            socket,
            told_ready: false,
            told_stopping: false,
            status: String::new(),
            failed: false,
        })
    }

    /// Tells what changed. The summary and readiness are looked at only
    /// when a process's state `changed` since the last call: both are a
    /// pass over every process, and output alone changes no state.
    fn tell<O: OutBlocks, E: Write>(
        &mut self,
        monitor: &Monitor,
        changed: bool,
        stopping: bool,
        printer: &mut Printer<O, E>,
    ) {
        let mut message = String::new();
        if changed {
            let status = status_summary(monitor);
            if status != self.status {
                message.push_str(&format!("STATUS={status}\n"));
                self.status = status;
            }
        }
        if !self.told_ready && changed && monitor.is_started_up() {
            self.told_ready = true;
            message.push_str("READY=1\n");
        }
        if !self.told_stopping && (stopping || !monitor.is_service_running()) {
            self.told_stopping = true;
            message.push_str("STOPPING=1\n");
        }
        if message.is_empty() {
            return;
        }
        if let Err(error) = procmon_mio::notify::send_to(&self.socket, &message) {
            if !self.failed {
                self.failed = true;
                printer.event(&Event::NotifyFailed { error: &error });
            }
        }
    }
}

/// `3 running, 1 starting, 1 waiting`: the processes in each state, in the
/// states' order, those with none left out.
fn status_summary(monitor: &Monitor) -> String {
    let mut counts = [0usize; procmon_core::ProcessState::ALL.len()];
    for status in monitor.statuses() {
        if let Some(i) = procmon_core::ProcessState::ALL
            .iter()
            .position(|s| *s == status.state)
        {
            counts[i] += 1;
        }
    }
    let parts: Vec<String> = procmon_core::ProcessState::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    parts.join(", ")
}

/// Tells procmon's own log which processes a reload changed the log
/// settings of: the core's plan, told just before, cannot see them.
fn report_log_changes<O: OutBlocks, E: Write>(names: &[String], printer: &mut Printer<O, E>) {
    if !names.is_empty() {
        printer.event(&Event::LogSettingsChanged { names });
    }
}

/// Turns the driver's notices into printed lines.
struct Printing<'a, O: OutBlocks, E: Write> {
    printer: Printer<O, E>,
    /// Where the printer's lines go, asked whether it can take more.
    sink: &'a Sink,
    /// What the control socket serves from (recent lines, state changes);
    /// none without a socket, so a plain run keeps no copy of its lines.
    feed: Option<ControlFeed>,
    /// Where each process's lines go.
    logs: LogRouter,
    /// Lines dropped from log files, for status and metrics.
    log_counts: LogCounts,
    /// Whether a process's state changed since the service manager was
    /// last told (`Notice::StateChanged`).
    states_changed: bool,
    /// Where the lines of the current read go, once its first line found
    /// it: a read's lines are all one process's and stream's.
    read_way: Option<ReadWay>,
}

/// Where the lines of one read go: looked up for its first line, used for
/// the rest.
#[derive(Clone, Copy, Debug)]
struct ReadWay {
    route: Route,
    prefix: PrefixId,
    ring: Option<RingSlot>,
}

impl<O: OutBlocks, E: Write> Feeds for Printing<'_, O, E> {
    fn feed(&mut self) -> &mut ControlFeed {
        self.feed
            .as_mut()
            .expect("a control server runs only with its feed")
    }

    fn reopen_logs(&mut self) -> usize {
        self.logs.files().reopen()
    }

    fn log_counts(&self) -> LogCounts {
        self.log_counts.clone()
    }

    fn reload_logs(&mut self, logs: &LogConfig, dry_run: bool) -> Vec<String> {
        if dry_run {
            self.logs.changes(logs)
        } else {
            self.logs.configure(logs)
        }
    }
}

impl<O: OutBlocks, E: Write> Observer for Printing<'_, O, E> {
    fn accepts_output(&mut self) -> bool {
        !self.sink.congested() && !self.logs.files_ref().congested()
    }

    fn output_read(&mut self) {
        self.logs.read_happened();
        self.read_way = None;
    }

    #[inline]
    fn read_line(&mut self, name: &str, stream: Stream, line: &[u8]) {
        let way = match self.read_way {
            Some(way) => way,
            None => self.find_read_way(name, stream),
        };
        if let (Some(feed), Some(slot)) = (self.feed.as_mut(), way.ring) {
            feed.read_line(slot, name, stream, line);
        }
        self.logs.line_on(
            way.route,
            Some(way.prefix),
            &mut self.printer,
            name,
            stream,
            line,
        );
    }

    // Inlined into the driver's read loop, where a flood's lines arrive
    // one by one: the output of a run without a control socket goes
    // straight to its route.
    #[inline]
    fn notice(&mut self, notice: Notice<'_>) {
        match notice {
            Notice::Output { name, stream, line } if self.feed.is_none() => {
                self.logs.line(&mut self.printer, name, stream, line)
            }
            notice => self.notice_fed(notice),
        }
    }
}

impl<O: OutBlocks, E: Write> Printing<'_, O, E> {
    /// Where the lines of the read just made go, found once for all of
    /// them.
    #[inline(never)]
    fn find_read_way(&mut self, name: &str, stream: Stream) -> ReadWay {
        let way = ReadWay {
            route: self.logs.route_of(name),
            prefix: self.printer.prefix_for(name, stream),
            ring: self.feed.as_mut().map(|feed| feed.read_slot(name)),
        };
        self.read_way = Some(way);
        way
    }

    /// A notice, with the control socket's feed told of it first.
    #[inline(never)]
    fn notice_fed(&mut self, notice: Notice<'_>) {
        if let Some(feed) = self.feed.as_mut() {
            feed.notice(&notice);
        }
        match notice {
            Notice::Output { name, stream, line } => {
                self.logs.line(&mut self.printer, name, stream, line)
            }
            // State changes are for `procmon ctl watch` and the service
            // manager's status, not the log, which already says what caused
            // each.
            Notice::StateChanged { .. } => self.states_changed = true,
            notice => self.printer.event(&Event::Supervisor { notice: &notice }),
        }
    }
}
