//! The control protocol, version 1: one JSON object per line each way.
//!
//! A request names its version, an id the reply echoes, an operation and
//! the operation's fields:
//!
//! ```text
//! {"v":1,"id":7,"op":"restart","names":["web"]}
//! {"id":7,"ok":true,"result":[...]}
//! {"id":7,"ok":false,"error":{"kind":"unknown_process","name":"wbe","message":"..."}}
//! ```
//!
//! Parsing is total and strict: a line over [`MAX_REQUEST_BYTES`], bad
//! JSON, an unknown version, operation or field, or a field of the wrong
//! type is a [`RequestError`] with a kind a program can match on, and
//! nothing else happens. This module only reads and writes lines; what an
//! operation does is the core's (see `control`).

use procmon_core::Signal;
use serde_json::{json, Map, Value};

/// The longest request line accepted, newline excluded: 64 KiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The protocol version this procmon speaks.
pub const VERSION: u64 = 1;

/// The most lines a `logs` request may ask for.
pub const MAX_LOG_LINES: u64 = 1_000_000;

/// One parsed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Echoed in the reply; any JSON value the client chose (null if none).
    pub id: Value,
    /// What to do.
    pub op: Op,
}

/// The operations of version 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The state of the named processes, or of all (`names` empty).
    Status {
        /// Which processes; empty for all.
        names: Vec<String>,
    },
    /// Start, lifting a hold (`start`).
    Start(Targets),
    /// Hold down until started (`stop`).
    Stop(Targets),
    /// Restart at once (`restart`).
    Restart(Targets),
    /// Send a signal to each live instance (`signal`).
    Signal {
        /// The signal.
        signal: Signal,
        /// To whom.
        targets: Targets,
    },
    /// Re-read the config (`reload`), or only say what would change.
    Reload {
        /// Change nothing.
        dry_run: bool,
    },
    /// The last lines of a process, then maybe the new ones (`logs`).
    Logs {
        /// The process.
        name: String,
        /// How many of the recent lines.
        lines: u64,
        /// Keep sending new lines.
        follow: bool,
    },
    /// State changes as they happen (`watch`).
    Watch,
    /// Prometheus text (`metrics`).
    Metrics,
    /// Stop everything and exit, as TERM to procmon (`shutdown`).
    Shutdown,
    /// procmon's version and the protocol's (`version`).
    Version,
    /// Close and reopen every log file (`reopen_logs`), as USR1 does.
    ReopenLogs,
}

impl Op {
    /// The operation's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Status { .. } => "status",
            Op::Start(_) => "start",
            Op::Stop(_) => "stop",
            Op::Restart(_) => "restart",
            Op::Signal { .. } => "signal",
            Op::Reload { .. } => "reload",
            Op::Logs { .. } => "logs",
            Op::Watch => "watch",
            Op::Metrics => "metrics",
            Op::Shutdown => "shutdown",
            Op::Version => "version",
            Op::ReopenLogs => "reopen_logs",
        }
    }
}

/// Which processes an operation is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// Every added process (`"all": true`).
    All,
    /// These, by name (at least one).
    Names(Vec<String>),
}

/// What a program can match on in a failed reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The line is longer than [`MAX_REQUEST_BYTES`].
    TooLong,
    /// The line is not one JSON object.
    BadJson,
    /// `v` is missing or not a version this procmon speaks.
    UnsupportedVersion,
    /// `op` is missing or names no operation.
    UnknownOp,
    /// A field the operation does not take.
    UnknownField,
    /// A field is missing or has the wrong type or value.
    BadField,
    /// A name that is not a process.
    UnknownProcess,
    /// The operation needs a live instance and there is none.
    NotRunning,
    /// The new config is invalid; nothing changed.
    InvalidConfig,
    /// The peer may not use this socket.
    PermissionDenied,
    /// The operation is not available in this procmon (for example
    /// `reload` without `--config`).
    Unavailable,
    /// procmon is stopping (TERM, `shutdown`, a critical end) and exits
    /// once everything has ended: it starts, restarts and reloads nothing
    /// more.
    Stopping,
}

impl ErrorKind {
    /// The kind's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::TooLong => "too_long",
            ErrorKind::BadJson => "bad_json",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::UnknownOp => "unknown_op",
            ErrorKind::UnknownField => "unknown_field",
            ErrorKind::BadField => "bad_field",
            ErrorKind::UnknownProcess => "unknown_process",
            ErrorKind::NotRunning => "not_running",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Stopping => "stopping",
        }
    }
}

/// A failed request: what kind, a sentence for a person, and the name or
/// field it is about, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    /// What a program matches on.
    pub kind: ErrorKind,
    /// What a person reads.
    pub message: String,
    /// The process name or field the error is about.
    pub subject: Option<String>,
}

impl RequestError {
    /// An error of `kind` about `subject`.
    pub fn new(kind: ErrorKind, message: impl Into<String>, subject: Option<&str>) -> Self {
        RequestError {
            kind,
            message: message.into(),
            subject: subject.map(str::to_string),
        }
    }

    /// The `error` object of a reply.
    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("kind".into(), self.kind.as_str().into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(subject) = &self.subject {
            let key = match self.kind {
                ErrorKind::UnknownField | ErrorKind::BadField => "field",
                _ => "name",
            };
            error.insert(key.into(), subject.clone().into());
        }
        Value::Object(error)
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

/// Parses one request line (without its newline). On failure, the id if
/// one could be read, so the reply can still carry it.
pub fn parse_request(line: &[u8]) -> Result<Request, (Value, RequestError)> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err((
            Value::Null,
            RequestError::new(
                ErrorKind::TooLong,
                format!("a request line is at most {MAX_REQUEST_BYTES} bytes"),
                None,
            ),
        ));
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        (
            Value::Null,
            RequestError::new(ErrorKind::BadJson, format!("not JSON: {e}"), None),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err((
            Value::Null,
            RequestError::new(ErrorKind::BadJson, "a request is one JSON object", None),
        ));
    };
    let id = object.remove("id").unwrap_or(Value::Null);
    parse_object(object)
        .map_err(|e| (id.clone(), e))
        .map(|op| Request { id: id.clone(), op })
}

fn parse_object(mut object: Map<String, Value>) -> Result<Op, RequestError> {
    match object.remove("v") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(other) => {
            return Err(RequestError::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "protocol version {other} is not spoken here (this procmon speaks {VERSION})"
                ),
                None,
            ))
        }
        None => {
            return Err(RequestError::new(
                ErrorKind::UnsupportedVersion,
                format!("a request needs \"v\":{VERSION}"),
                None,
            ))
        }
    }
    let op = match object.remove("op") {
        Some(Value::String(op)) => op,
        Some(_) => return Err(bad_field("op", "a string")),
        None => {
            return Err(RequestError::new(
                ErrorKind::UnknownOp,
                "a request needs \"op\"",
                None,
            ))
        }
    };
    let mut fields = Fields(object);
    let parsed = match op.as_str() {
        "status" => Op::Status {
            names: fields.names_or_empty()?,
        },
        "start" => Op::Start(fields.targets()?),
        "stop" => Op::Stop(fields.targets()?),
        "restart" => Op::Restart(fields.targets()?),
        "signal" => {
            let signal = fields.signal()?;
            Op::Signal {
                signal,
                targets: fields.targets()?,
            }
        }
        "reload" => Op::Reload {
            dry_run: fields.bool("dry_run")?.unwrap_or(false),
        },
        "logs" => {
            let name = fields.string("name")?;
            let lines = fields.count("lines", MAX_LOG_LINES)?.unwrap_or(100);
            let follow = fields.bool("follow")?.unwrap_or(false);
            Op::Logs {
                name,
                lines,
                follow,
            }
        }
        "watch" => Op::Watch,
        "metrics" => Op::Metrics,
        "shutdown" => Op::Shutdown,
        "version" => Op::Version,
        "reopen_logs" => Op::ReopenLogs,
        other => {
            return Err(RequestError::new(
                ErrorKind::UnknownOp,
                format!(
                    "unknown op {other:?} (status, start, stop, restart, signal, reload, logs, \
                     watch, metrics, shutdown, version, reopen_logs)"
                ),
                None,
            ))
        }
    };
    fields.end(&op)?;
    Ok(parsed)
}

fn bad_field(field: &str, expected: &str) -> RequestError {
    RequestError::new(
        ErrorKind::BadField,
        format!("\"{field}\" must be {expected}"),
        Some(field),
    )
}

/// The fields of one request not read yet.
struct Fields(Map<String, Value>);

impl Fields {
    fn end(self, op: &str) -> Result<(), RequestError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(field) => Err(RequestError::new(
                ErrorKind::UnknownField,
                format!("{op:?} takes no field {field:?}"),
                Some(field),
            )),
        }
    }

    fn names_or_empty(&mut self) -> Result<Vec<String>, RequestError> {
        match self.0.remove("names") {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(name) => Ok(name),
                    _ => Err(bad_field("names", "an array of strings")),
                })
                .collect(),
            Some(_) => Err(bad_field("names", "an array of strings")),
        }
    }

    /// `"names": [...]` (at least one) or `"all": true`, not both.
    fn targets(&mut self) -> Result<Targets, RequestError> {
        let all = self.bool("all")?.unwrap_or(false);
        let names = self.names_or_empty()?;
        match (all, names.is_empty()) {
            (true, true) => Ok(Targets::All),
            (false, false) => Ok(Targets::Names(names)),
            (true, false) => Err(bad_field("all", "absent when \"names\" is given")),
            (false, true) => Err(bad_field("names", "a non-empty array, or \"all\": true")),
        }
    }

    fn signal(&mut self) -> Result<Signal, RequestError> {
        let name = self.string("signal")?;
        Signal::from_name(&name).ok_or_else(|| {
            bad_field(
                "signal",
                "a signal name (TERM, INT, QUIT, HUP, USR1, USR2, KILL, WINCH, ...)",
            )
        })
    }

    fn string(&mut self, field: &str) -> Result<String, RequestError> {
        match self.0.remove(field) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(bad_field(field, "a string")),
        }
    }

    fn bool(&mut self, field: &str) -> Result<Option<bool>, RequestError> {
        match self.0.remove(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(bad_field(field, "true or false")),
        }
    }

    fn count(&mut self, field: &str, max: u64) -> Result<Option<u64>, RequestError> {
        match self.0.remove(field) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(count) if count <= max => Ok(Some(count)),
                _ => Err(bad_field(field, &format!("a whole number from 0 to {max}"))),
            },
            Some(_) => Err(bad_field(field, &format!("a whole number from 0 to {max}"))),
        }
    }
}

/// A successful reply line, newline included.
pub fn ok_line(id: &Value, result: Value) -> Vec<u8> {
    line(json!({"id": id, "ok": true, "result": result}))
}

/// A failed reply line, newline included.
pub fn error_line(id: &Value, error: &RequestError) -> Vec<u8> {
    line(json!({"id": id, "ok": false, "error": error.to_json()}))
}

/// A line a following request streams (`logs` with `follow`, `watch`).
pub fn event_line(id: &Value, event: Value) -> Vec<u8> {
    line(json!({"id": id, "event": event}))
}

fn line(value: Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&value).expect("a Value always serializes");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Op, (Value, ErrorKind, Option<String>)> {
        parse_request(line.as_bytes())
            .map(|r| r.op)
            .map_err(|(id, e)| (id, e.kind, e.subject))
    }

    #[test]
    fn every_op_parses() {
        let names = |n: &[&str]| Targets::Names(n.iter().map(|s| s.to_string()).collect());
        let cases = [
            (r#"{"v":1,"op":"status"}"#, Op::Status { names: vec![] }),
            (
                r#"{"v":1,"op":"status","names":["a","b"]}"#,
                Op::Status {
                    names: vec!["a".into(), "b".into()],
                },
            ),
            (
                r#"{"v":1,"op":"start","names":["web"]}"#,
                Op::Start(names(&["web"])),
            ),
            (r#"{"v":1,"op":"stop","all":true}"#, Op::Stop(Targets::All)),
            (
                r#"{"v":1,"op":"restart","names":["a"]}"#,
                Op::Restart(names(&["a"])),
            ),
            (
                r#"{"v":1,"op":"signal","signal":"SIGUSR1","names":["a"]}"#,
                Op::Signal {
                    signal: Signal::Usr1,
                    targets: names(&["a"]),
                },
            ),
            (
                r#"{"v":1,"op":"reload","dry_run":true}"#,
                Op::Reload { dry_run: true },
            ),
            (
                r#"{"v":1,"op":"logs","name":"a","lines":5,"follow":true}"#,
                Op::Logs {
                    name: "a".into(),
                    lines: 5,
                    follow: true,
                },
            ),
            (
                r#"{"v":1,"op":"logs","name":"a"}"#,
                Op::Logs {
                    name: "a".into(),
                    lines: 100,
                    follow: false,
                },
            ),
            (r#"{"v":1,"op":"watch"}"#, Op::Watch),
            (r#"{"v":1,"op":"metrics"}"#, Op::Metrics),
            (r#"{"v":1,"op":"shutdown"}"#, Op::Shutdown),
            (r#"{"v":1,"id":"x","op":"version"}"#, Op::Version),
            (r#"{"v":1,"op":"reopen_logs"}"#, Op::ReopenLogs),
        ];
        for (line, op) in cases {
            assert_eq!(parse(line), Ok(op), "{line}");
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        use ErrorKind::*;
        let cases: [(&str, ErrorKind, Option<&str>); 12] = [
            ("", BadJson, None),
            ("[1]", BadJson, None),
            ("{\"v\":1,", BadJson, None),
            (r#"{"op":"status"}"#, UnsupportedVersion, None),
            (r#"{"v":2,"op":"status"}"#, UnsupportedVersion, None),
            (r#"{"v":1}"#, UnknownOp, None),
            (r#"{"v":1,"op":"explode"}"#, UnknownOp, None),
            (
                r#"{"v":1,"op":"status","verbose":true}"#,
                UnknownField,
                Some("verbose"),
            ),
            (r#"{"v":1,"op":"start"}"#, BadField, Some("names")),
            (
                r#"{"v":1,"op":"start","all":true,"names":["a"]}"#,
                BadField,
                Some("all"),
            ),
            (
                r#"{"v":1,"op":"signal","signal":"BOGUS","all":true}"#,
                BadField,
                Some("signal"),
            ),
            (
                r#"{"v":1,"op":"logs","name":"a","lines":-1}"#,
                BadField,
                Some("lines"),
            ),
        ];
        for (line, kind, subject) in cases {
            match parse(line) {
                Err((_, k, s)) => {
                    assert_eq!((k, s.as_deref()), (kind, subject), "{line}");
                }
                Ok(op) => panic!("{line} parsed as {op:?}"),
            }
        }
    }

    #[test]
    fn the_id_comes_back_even_when_the_request_is_bad() {
        let (id, kind, _) = parse(r#"{"v":1,"id":7,"op":"nope"}"#).unwrap_err();
        assert_eq!((id, kind), (json!(7), ErrorKind::UnknownOp));
        let error = RequestError::new(
            ErrorKind::UnknownProcess,
            "no process named \"wbe\"",
            Some("wbe"),
        );
        assert_eq!(
            String::from_utf8(error_line(&json!(7), &error)).unwrap(),
            "{\"error\":{\"kind\":\"unknown_process\",\"message\":\"no process named \\\"wbe\\\"\",\"name\":\"wbe\"},\"id\":7,\"ok\":false}\n"
        );
    }

    #[test]
    fn a_long_line_is_refused_before_it_is_parsed() {
        let long = vec![b' '; MAX_REQUEST_BYTES + 1];
        let (_, error) = parse_request(&long).unwrap_err();
        assert_eq!(error.kind, ErrorKind::TooLong);
    }
}
