//! `procmon ctl`: the client of the control socket (see [`crate::control`]
//! and `docs/control.md`).
//!
//! Exit status: 0 ok; 1 the operation failed; 2 usage; 3 (`status`) a
//! process that is wanted up is not running; 4 an unknown process, or no
//! procmon listening; 124 `--wait` timed out.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::control;

/// Exit status: the operation failed.
pub const FAILED: u8 = 1;
/// Exit status: the command line is wrong.
pub const USAGE: u8 = 2;
/// Exit status of `status`: a process wanted up is not running.
pub const NOT_RUNNING: u8 = 3;
/// Exit status: an unknown process, or no procmon listening.
pub const UNKNOWN: u8 = 4;
/// Exit status: `--wait` ran out of time.
pub const TIMED_OUT: u8 = 124;

/// `procmon ctl`: operate a running procmon through its control socket.
#[derive(Debug, Parser)]
#[command(
    name = "procmon ctl",
    about = "Operate a running procmon through its control socket",
    after_help = "\
The socket is --socket, else $PROCMON_SOCKET, else /run/procmon/procmon.sock
for root and $XDG_RUNTIME_DIR/procmon.sock (or /tmp/procmon-$UID/procmon.sock)
for anyone else: where procmon puts it when nothing says otherwise.

Exit status: 0 ok; 1 the operation failed; 2 usage; 3 (status) a process that
is wanted up is not running; 4 unknown process or no procmon listening;
124 --wait timed out, or procmon gave no reply within --reply-timeout."
)]
pub struct Ctl {
    /// The control socket of the procmon to talk to.
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    /// How long to wait for procmon's reply to a request (a socket that
    /// accepts and never answers would otherwise hang a script for ever).
    /// Streamed events (`watch`, `logs -f`) and `--wait` are not bounded
    /// by it.
    #[arg(
        long,
        value_name = "SECONDS",
        global = true,
        default_value = "25",
        value_parser = parse_seconds
    )]
    reply_timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// One row per process: NAME STATE PID UPTIME RESTARTS LAST-EXIT NEXT.
    Status {
        /// Only these processes (default: all, in config order).
        names: Vec<String>,
        /// An array of objects instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Start processes, lifting a hold or a `failed` state.
    Start(Targets),
    /// Hold processes down until `start` or `restart`.
    Stop(Targets),
    /// Restart processes at once (the backoff starts afresh).
    Restart(Targets),
    /// Send a signal to each process's live instance.
    Signal {
        /// The signal, with or without SIG (TERM, HUP, USR1, ...).
        signal: String,
        #[command(flatten)]
        targets: Targets,
    },
    /// Re-read the config file; print each process that changes and how.
    Reload {
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// The recent lines of one process.
    Logs {
        /// The process.
        name: String,
        /// How many lines.
        #[arg(short = 'n', long = "lines", default_value_t = 100)]
        lines: u64,
        /// Then keep printing new lines as they come.
        #[arg(short, long)]
        follow: bool,
    },
    /// Print state changes of every process as they happen.
    Watch,
    /// Prometheus text of every process.
    Metrics,
    /// Stop every process and end procmon, as TERM would.
    Shutdown,
    /// procmon's version and the protocol's.
    Version,
    /// Close and reopen every log file, as USR1 does (after an external
    /// logrotate moved or truncated them).
    ReopenLogs,
}

#[derive(Debug, clap::Args)]
struct Targets {
    /// The processes.
    names: Vec<String>,
    /// Every process instead of names.
    #[arg(long, conflicts_with = "names")]
    all: bool,
    /// Wait until each is running (start, restart) or down (stop).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "60",
        value_parser = parse_seconds,
        requires = "wait"
    )]
    timeout: Duration,
}

/// `--timeout`: checked with the command line, so that a value that is no
/// duration is a usage error before anything is asked of procmon, rather
/// than a panic (or a silent 0) once the operation is done.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds.is_sign_negative() {
        return Err(format!("{text:?} is negative"));
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is not a number of seconds procmon ctl can wait"))
}

impl Targets {
    fn request(&self, op: &str) -> Result<Value, String> {
        if self.all {
            Ok(json!({"v": 1, "id": 1, "op": op, "all": true}))
        } else if self.names.is_empty() {
            Err(format!("`{op}` needs process names or --all"))
        } else {
            Ok(json!({"v": 1, "id": 1, "op": op, "names": self.names}))
        }
    }
}

/// Runs `procmon ctl` with `args` (what follows `ctl`); gives the exit status.
pub fn main(args: Vec<std::ffi::OsString>) -> u8 {
    procmon_mio::os::die_on_sigpipe();
    let ctl = match Ctl::try_parse_from(std::iter::once("procmon ctl".into()).chain(args)) {
        Ok(ctl) => ctl,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { USAGE } else { 0 };
        }
    };
    let path = ctl
        .socket
        .clone()
        .unwrap_or_else(|| control::socket_path(None, None));
    match run(&ctl, &path) {
        Ok(status) => status,
        Err((status, message)) => {
            eprintln!("procmon ctl: {message}");
            status
        }
    }
}

type Failure = (u8, String);

fn run(ctl: &Ctl, path: &std::path::Path) -> Result<u8, Failure> {
    let request = match &ctl.verb {
        Verb::Status { names, .. } => json!({"v": 1, "id": 1, "op": "status", "names": names}),
        Verb::Start(t) => t.request("start").map_err(usage)?,
        Verb::Stop(t) => t.request("stop").map_err(usage)?,
        Verb::Restart(t) => t.request("restart").map_err(usage)?,
        Verb::Signal { signal, targets } => {
            let mut request = targets.request("signal").map_err(usage)?;
            request["signal"] = json!(signal);
            request
        }
        Verb::Reload { dry_run } => json!({"v": 1, "id": 1, "op": "reload", "dry_run": dry_run}),
        Verb::Logs {
            name,
            lines,
            follow,
        } => json!({"v": 1, "id": 1, "op": "logs", "name": name, "lines": lines, "follow": follow}),
        Verb::Watch => json!({"v": 1, "id": 1, "op": "watch"}),
        Verb::Metrics => json!({"v": 1, "id": 1, "op": "metrics"}),
        Verb::Shutdown => json!({"v": 1, "id": 1, "op": "shutdown"}),
        Verb::Version => json!({"v": 1, "id": 1, "op": "version"}),
        Verb::ReopenLogs => json!({"v": 1, "id": 1, "op": "reopen_logs"}),
    };
    let waiting = match &ctl.verb {
        Verb::Start(t) | Verb::Restart(t) if t.wait => Some((t, true)),
        Verb::Stop(t) if t.wait => Some((t, false)),
        _ => None,
    };
    // Watch before acting, so that no change can slip between the two.
    let mut watch = match waiting {
        Some(_) => {
            let mut watch = Connection::open(path, ctl.reply_timeout)?;
            watch.ask(&json!({"v": 1, "id": 0, "op": "watch"}))?;
            Some(watch)
        }
        None => None,
    };
    let mut connection = Connection::open(path, ctl.reply_timeout)?;
    let result = connection.ask(&request)?;
    match &ctl.verb {
        Verb::Status { json: true, .. } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&result).expect("a Value")
            );
            Ok(status_exit(&result))
        }
        Verb::Status { .. } => {
            print!("{}", status_table(&result));
            Ok(status_exit(&result))
        }
        Verb::Start(_) | Verb::Stop(_) | Verb::Restart(_) => {
            for process in result.as_array().into_iter().flatten() {
                println!("{}: {}", text(&process["name"]), text(&process["state"]));
            }
            match (waiting, watch.as_mut()) {
                (Some((targets, up)), Some(watch)) => wait_for(watch, &result, targets, up),
                _ => Ok(0),
            }
        }
        Verb::Signal { .. } => {
            for sent in result.as_array().into_iter().flatten() {
                println!("{}: sent {}", text(&sent["name"]), text(&sent["signal"]));
            }
            Ok(0)
        }
        Verb::Reload { .. } => {
            let changes = result["changes"].as_array().cloned().unwrap_or_default();
            // Absent from a procmon older than this `ctl`: none, then.
            let logs = result["log_settings_changed"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            // Absent from an older procmon too: none.
            let restart: Vec<String> = result["restart_needed"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let settings = result["settings_changed"] == json!(true);
            if changes.is_empty() && logs.is_empty() && restart.is_empty() && !settings {
                println!("nothing changes");
            }
            // One line a process: a change of log settings is named on the
            // line of the process's other change, if it has one.
            for change in &changes {
                let name = &change["name"];
                let also = if logs.contains(name) {
                    ", and its log settings change"
                } else {
                    ""
                };
                println!("{}: {}{also}", text(name), text(&change["change"]));
            }
            for name in logs
                .iter()
                .filter(|n| !changes.iter().any(|c| c["name"] == **n))
            {
                println!(
                    "{}: log settings changed, applied without a restart",
                    text(name)
                );
            }
            if settings {
                println!("(global settings change)");
            }
            if result["access_changed"] == json!(true) {
                println!(
                    "(control access changes: applied now; clients no longer allowed are \
                     disconnected)"
                );
            }
            // Not a failure: the reload did all it can; the operator is
            // told what waits for a restart of procmon.
            if !restart.is_empty() {
                println!("needs a restart of procmon: {}", restart.join(", "));
            }
            Ok(0)
        }
        Verb::Logs { follow, .. } => {
            for line in result.as_array().into_iter().flatten() {
                print_line(line);
            }
            if *follow {
                connection.follow(print_line)?;
            }
            Ok(0)
        }
        Verb::Watch => {
            connection.follow(|event| {
                println!(
                    "{} {} {} -> {}",
                    text(&event["at"]),
                    text(&event["name"]),
                    text(&event["from"]),
                    text(&event["to"])
                );
            })?;
            Ok(0)
        }
        Verb::Metrics => {
            print!("{}", result.as_str().unwrap_or_default());
            Ok(0)
        }
        Verb::Shutdown => {
            println!("procmon is stopping");
            Ok(0)
        }
        Verb::Version => {
            println!(
                "procmon {} (control protocol {})",
                text(&result["procmon"]),
                result["protocol"]
            );
            Ok(0)
        }
        Verb::ReopenLogs => {
            match result["files"].as_u64() {
                Some(1) => println!("reopening 1 log file"),
                _ => println!("reopening {} log files", text(&result["files"])),
            }
            Ok(0)
        }
    }
}

fn usage(message: String) -> Failure {
    (USAGE, message)
}

/// One connection to the socket: a request line out, reply lines in.
struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    path: PathBuf,
    /// How long a reply to a request may take.
    patience: Duration,
}

impl Connection {
    fn open(path: &std::path::Path, patience: Duration) -> Result<Connection, Failure> {
        let stream = UnixStream::connect(path).map_err(|e| {
            let status = match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => UNKNOWN,
                _ => FAILED,
            };
            (
                status,
                format!("no procmon listening on {}: {e}", path.display()),
            )
        })?;
        let writer = stream
            .try_clone()
            .map_err(|e| (FAILED, format!("{}: {e}", path.display())))?;
        Ok(Connection {
            reader: BufReader::new(stream),
            writer,
            path: path.to_path_buf(),
            patience,
        })
    }

    /// Sends `request` and reads its reply: the result, or the error as a
    /// failure with the exit status its kind calls for.
    fn ask(&mut self, request: &Value) -> Result<Value, Failure> {
        let mut line = serde_json::to_vec(request).expect("a Value");
        line.push(b'\n');
        // A refused client is told why before procmon hangs up, perhaps
        // before the request is written: read the reply either way.
        // Bounded only here: what streams after the reply (events, lines)
        // may be as far apart as it likes.
        let patience = self.patience.max(Duration::from_millis(1));
        let bound = |reader: &BufReader<UnixStream>, timeout| {
            reader
                .get_ref()
                .set_read_timeout(timeout)
                .map_err(|e| (FAILED, e.to_string()))
        };
        bound(&self.reader, Some(patience))?;
        let _ = self.writer.set_write_timeout(Some(patience));
        let written = self.writer.write_all(&line);
        let read = match self.read() {
            Err((TIMED_OUT, _)) => Err((
                TIMED_OUT,
                format!(
                    "{}: no reply within {} s (--reply-timeout)",
                    self.path.display(),
                    patience.as_secs_f64()
                ),
            )),
            other => other,
        };
        bound(&self.reader, None)?;
        let _ = self.writer.set_write_timeout(None);
        let reply = match (read, written) {
            // A peer that hung up mid-request breaks the write too: its
            // hanging up is the news.
            (Ok(reply), _) => reply,
            (Err(_), Err(e)) => return Err((FAILED, format!("{}: {e}", self.path.display()))),
            (Err(failure), Ok(())) => return Err(failure),
        };
        let reply = reply.ok_or_else(|| {
            (
                FAILED,
                format!("{}: procmon closed the connection", self.path.display()),
            )
        })?;
        if reply["ok"] == json!(true) {
            return Ok(reply["result"].clone());
        }
        let error = &reply["error"];
        // A request procmon found malformed is a usage error, as the
        // command line that made it is (docs/control.md, exit status).
        let status = match error["kind"].as_str() {
            Some("unknown_process") => UNKNOWN,
            Some(
                "too_long"
                | "bad_json"
                | "unsupported_version"
                | "unknown_op"
                | "bad_field"
                | "unknown_field",
            ) => USAGE,
            _ => FAILED,
        };
        Err((
            status,
            error["message"]
                .as_str()
                .unwrap_or("procmon refused the request")
                .to_string(),
        ))
    }

    fn read(&mut self) -> Result<Option<Value>, Failure> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            // A line cut short is a peer gone, not bad JSON; a reset is a
            // peer that hung up on a request it had not read.
            Ok(_) if !line.ends_with('\n') => Err((
                FAILED,
                format!(
                    "{}: procmon closed the connection in the middle of a reply",
                    self.path.display()
                ),
            )),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(None),
            Ok(_) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| (FAILED, format!("a reply that is not JSON: {e}"))),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Err((TIMED_OUT, "timed out".to_string()))
            }
            Err(e) => Err((FAILED, format!("{}: {e}", self.path.display()))),
        }
    }

    /// Prints streamed events until procmon closes the connection.
    fn follow(&mut self, mut print: impl FnMut(&Value)) -> Result<(), Failure> {
        while let Some(line) = self.read()? {
            // procmon refuses a follower a reload took the access from with
            // an error line, then hangs up: that is a failure, not an end.
            if line["ok"] == json!(false) {
                let message = line["error"]["message"]
                    .as_str()
                    .unwrap_or("procmon refused the connection");
                return Err((FAILED, message.to_string()));
            }
            print(&line["event"]);
            let _ = io::stdout().flush();
        }
        Ok(())
    }
}

/// Waits, reading state changes, until every target is running (`up`) or
/// down; `after` is the status the operation replied with. The watch began
/// before the operation, so every change after that reply reaches it.
fn wait_for(
    watch: &mut Connection,
    after: &Value,
    targets: &Targets,
    up: bool,
) -> Result<u8, Failure> {
    let mut states = States::after(after);
    let wanted: Vec<String> = if targets.all {
        states.states.keys().cloned().collect()
    } else {
        targets.names.clone()
    };
    let done = |states: &States| {
        wanted.iter().all(|name| {
            let state = states.states.get(name).map(String::as_str).unwrap_or("");
            if up {
                state == "running"
            } else {
                matches!(state, "held" | "stopped" | "exited" | "failed")
            }
        })
    };
    // Beyond what the clock can count, the deadline is never reached.
    let deadline = Instant::now().checked_add(targets.timeout);
    while !done(&states) {
        let left = deadline.map_or(targets.timeout, |d| {
            d.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            return Err((TIMED_OUT, "timed out waiting".to_string()));
        }
        watch
            .reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| (FAILED, e.to_string()))?;
        match watch.read()? {
            Some(line) => states.change(&line["event"]),
            None => return Err((FAILED, "procmon closed the connection".to_string())),
        }
    }
    Ok(0)
}

/// What `--wait` knows of the targets' states: the operation's reply, then
/// the watch's changes that came after it.
struct States {
    states: std::collections::BTreeMap<String, String>,
    /// The number of the last state change the reply reflects. The watch
    /// is another connection, so a change from just before the operation
    /// (or the operation's own) may be read after the reply; applied on
    /// top of it, an old `-> running` would end the wait early. `None`
    /// from a procmon that does not number its changes.
    seen: Option<u64>,
}

impl States {
    fn after(reply: &Value) -> States {
        let processes = || reply.as_array().into_iter().flatten();
        States {
            states: processes()
                .map(|p| (text(&p["name"]), text(&p["state"])))
                .collect(),
            seen: processes().filter_map(|p| p["seq"].as_u64()).max(),
        }
    }

    /// Takes in one watch event, unless the reply already reflects it.
    fn change(&mut self, event: &Value) {
        if let (Some(seen), Some(seq)) = (self.seen, event["seq"].as_u64()) {
            if seq <= seen {
                return;
            }
        }
        self.states.insert(text(&event["name"]), text(&event["to"]));
    }
}

fn print_line(line: &Value) {
    println!("[{}] {}", text(&line["name"]), text(&line["line"]));
}

/// A JSON string's text, or the value as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn status_exit(result: &Value) -> u8 {
    let down = result
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["wanted_up"] == json!(true) && p["state"] != json!("running"));
    if down {
        NOT_RUNNING
    } else {
        0
    }
}

/// The status table: one row per process, columns aligned; a column
/// `LOG-DROPPED` (lines dropped from log files) only while some process has
/// dropped any, and a last column `STATUS` (a process's own sd_notify
/// `STATUS=` text) only while some process has one, so the usual table
/// stays as narrow as it was.
pub fn status_table(result: &Value) -> String {
    let dropped = |p: &Value| p["log_dropped_lines"].as_u64().filter(|&n| n > 0);
    let said = |p: &Value| p["notify_status"].as_str().map(str::to_string);
    let processes = || result.as_array().into_iter().flatten();
    let with_dropped = processes().any(|p| dropped(p).is_some());
    let with_status = processes().any(|p| said(p).is_some());
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".to_string(),
        "PID".to_string(),
        "UPTIME".to_string(),
        "RESTARTS".to_string(),
        "LAST-EXIT".to_string(),
        "NEXT".to_string(),
        "LOG-DROPPED".to_string(),
        "STATUS".to_string(),
    ]];
    for p in result.as_array().into_iter().flatten() {
        let last_exit = match (&p["last_exit"]["code"], &p["last_exit"]["signal"]) {
            (Value::Number(code), _) => format!("exit {code}"),
            (_, Value::String(signal)) => format!("signal {signal}"),
            _ => "-".to_string(),
        };
        let waiting_for = &p["waiting_for"];
        let next = match p["next"]["action"].as_str() {
            _ if waiting_for.is_object() => {
                let mut shown = format!(
                    "waiting for {} ({})",
                    text(&waiting_for["name"]),
                    text(&waiting_for["condition"])
                );
                // Said when it may wait for ever, which procmon decides.
                if waiting_for["stuck"] == json!(true) {
                    let state = waiting_for["state"].as_str().unwrap_or("not defined");
                    shown = format!("{shown}; {} is {state}", text(&waiting_for["name"]));
                }
                shown
            }
            Some(action) => {
                let word = match action {
                    "restart" => "start",
                    "kill" => "KILL",
                    "ready-timeout" => "not ready",
                    other => other,
                };
                format!(
                    "{word} in {}",
                    human(p["next"]["in"].as_f64().unwrap_or(0.0))
                )
            }
            None => "-".to_string(),
        };
        rows.push([
            text(&p["name"]),
            text(&p["state"]),
            text(&p["pid"]),
            p["uptime"].as_f64().map_or("-".to_string(), human),
            text(&p["restarts"]),
            last_exit,
            next,
            dropped(p).map_or("-".to_string(), |n| n.to_string()),
            said(p).map_or("-".to_string(), |text| one_line(&text)),
        ]);
    }
    let shown = |i: usize| match i {
        7 => with_dropped,
        8 => with_status,
        _ => true,
    };
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .enumerate()
                .filter(|(i, _)| shown(*i))
                .map(|(_, cell)| cell)
                .collect()
        })
        .collect();
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A child's own text, safe in one cell of a table: control characters
/// (a newline, an escape sequence) shown escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Seconds as a person reads them: `3s`, `5m`, `2h`, `3d`.
fn human(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change read after the reply but from before it (or the
    /// operation's own) is already in the reply: an old `-> running` must
    /// not end a wait for the restart that followed it.
    #[test]
    fn a_wait_skips_the_changes_its_reply_already_reflects() {
        let reply = json!([{"name": "web", "state": "stopping", "seq": 7}]);
        let mut states = States::after(&reply);
        let change = |to: &str, seq: u64| json!({"name": "web", "from": "x", "to": to, "seq": seq});
        states.change(&change("running", 6));
        states.change(&change("stopping", 7));
        assert_eq!(states.states["web"], "stopping");
        states.change(&change("starting", 8));
        states.change(&change("running", 9));
        assert_eq!(states.states["web"], "running");
        // A procmon that does not number changes: each is taken as it comes.
        let mut unnumbered = States::after(&json!([{"name": "web", "state": "stopping"}]));
        unnumbered.change(&json!({"name": "web", "to": "running"}));
        assert_eq!(unnumbered.states["web"], "running");
    }

    #[test]
    fn the_table_has_a_row_per_process() {
        let result = json!([
            {"name": "worker", "state": "backoff", "pid": null, "uptime": null, "restarts": 7,
             "quick_deaths": 3, "last_exit": {"code": 1}, "next": {"action": "restart", "in": 16.2},
             "wanted_up": true},
            {"name": "cron", "state": "stopping", "pid": 3990, "uptime": 300.0, "restarts": 2,
             "quick_deaths": 0, "last_exit": null, "next": {"action": "kill", "in": 3.0},
             "wanted_up": true},
        ]);
        assert_eq!(
            status_table(&result),
            "NAME    STATE     PID   UPTIME  RESTARTS  LAST-EXIT  NEXT\n\
             worker  backoff   -     -       7         exit 1     start in 16s\n\
             cron    stopping  3990  5m      2         -          KILL in 3s\n"
        );
        assert_eq!(status_exit(&result), NOT_RUNNING);
        let dropping = json!([
            {"name": "web", "state": "running", "pid": 7, "uptime": 3.0, "restarts": 0,
             "last_exit": null, "next": null, "wanted_up": true, "log_dropped_lines": 42},
            {"name": "db", "state": "running", "pid": 8, "uptime": 3.0, "restarts": 0,
             "last_exit": null, "next": null, "wanted_up": true, "log_dropped_lines": null},
        ]);
        assert_eq!(
            status_table(&dropping),
            "NAME  STATE    PID  UPTIME  RESTARTS  LAST-EXIT  NEXT  LOG-DROPPED\n\
             web   running  7    3s      0         -          -     42\n\
             db    running  8    3s      0         -          -     -\n"
        );
        assert_eq!(
            status_exit(
                &json!([{"state": "running", "wanted_up": true}, {"state": "held", "wanted_up": false}])
            ),
            0
        );
    }

    /// Whether a waiting process may wait for ever is procmon's `stuck`,
    /// whatever the state of what it waits for: a `failed` dependency with
    /// a retry due is not stuck, a `waiting` one can be.
    #[test]
    fn the_table_says_a_dependency_is_stuck_only_when_procmon_does() {
        let waiting = |name: &str, state: Value, stuck: bool| {
            json!({"name": "web", "state": "waiting", "pid": null, "uptime": null,
                   "restarts": 0, "last_exit": null, "next": null, "wanted_up": true,
                   "waiting_for": {"name": name, "condition": "ready", "state": state,
                                   "stuck": stuck}})
        };
        let next = |process: Value| {
            let table = status_table(&json!([process]));
            let row = table.lines().nth(1).unwrap();
            row[row.find("waiting for").unwrap()..].to_string()
        };
        assert_eq!(
            next(waiting("db", json!("failed"), true)),
            "waiting for db (ready); db is failed"
        );
        assert_eq!(
            next(waiting("db", json!("failed"), false)),
            "waiting for db (ready)",
            "a retry is due"
        );
        assert_eq!(
            next(waiting("db", json!("waiting"), true)),
            "waiting for db (ready); db is waiting"
        );
        assert_eq!(
            next(waiting("db", json!("starting"), false)),
            "waiting for db (ready)"
        );
        assert_eq!(
            next(waiting("nope", Value::Null, true)),
            "waiting for nope (ready); nope is not defined"
        );
        // A procmon from before `stuck`: nothing is said.
        let mut old = waiting("db", json!("failed"), true);
        old["waiting_for"].as_object_mut().unwrap().remove("stuck");
        assert_eq!(next(old), "waiting for db (ready)");
    }
}
