//! `GET /metrics` over plain HTTP/1.1, for a Prometheus scraper: the same
//! text as `procmon ctl metrics` ([`control::metrics_text`]), served when
//! the config's `[control] metrics_listen` names an address.
//!
//! Nothing else is served. One request per connection, answered and then
//! closed (`Connection: close`): a scraper makes one request per scrape,
//! and keep-alive would only be state to bound. Like the control socket,
//! the listener and every connection are sources of the supervisor's one
//! loop, read and written without blocking, and everything is bounded: a
//! request head ([`MAX_HEAD_BYTES`]; more is a 400), the connections
//! ([`MAX_CONNECTIONS`]; the oldest is dropped to make room, so idle
//! connections cannot lock scrapers out), and what is read after the answer.
//!
//! There is no access check: anyone who can connect reads the metrics
//! (names and states of processes, nothing more), so loopback is the advice.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use procmon_mio::mio::net::{TcpListener, TcpStream};
use procmon_mio::mio::Interest;
use procmon_mio::{Ready, SourceId, Supervisor};

use crate::control;
use crate::logfile::LogCounts;

/// The longest request head (request line and headers) read; a longer one
/// is answered 400.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The most connections open at once; a new one beyond it closes the
/// oldest, which has had the longest to send its request.
pub const MAX_CONNECTIONS: usize = 128;

/// What a client may still send after its answer before it is closed
/// anyway: read and thrown away so that closing with unread input does not
/// reset the connection before the client has read the answer.
const MAX_DISCARD_BYTES: usize = 64 * 1024;

/// A listener bound and listening, not yet served: it is bound before any
/// process starts, so that an address that cannot be had (a port in use)
/// is a usage error and nothing runs.
#[derive(Debug)]
pub struct BoundListener {
    listener: std::net::TcpListener,
}

/// Why the metrics listener could not be opened.
#[derive(Debug)]
pub struct BindError {
    address: SocketAddr,
    error: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "metrics_listen {}: {}", self.address, self.error)
    }
}

impl std::error::Error for BindError {}

impl BoundListener {
    /// Binds `address` (std sets `SO_REUSEADDR`, so a restart does not wait
    /// out old connections in `TIME_WAIT`).
    pub fn bind(address: SocketAddr) -> Result<BoundListener, BindError> {
        std::net::TcpListener::bind(address)
            .map(|listener| BoundListener { listener })
            .map_err(|error| BindError { address, error })
    }
}

/// The metrics listener and its connections, served from the loop.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    listener_id: SourceId,
    connections: HashMap<SourceId, Connection>,
    /// Accepts so far, to find the oldest connection.
    accepted: u64,
    /// An accept failed (out of descriptors, say) with clients still in the
    /// backlog: epoll will not report the listener again, so retry.
    accept_stalled: bool,
    /// Lines dropped from log files, for `procmon_log_dropped_lines_total`.
    log_counts: LogCounts,
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    /// When it was accepted, in accepts.
    serial: u64,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// Reading the request head.
    Reading(Vec<u8>),
    /// Writing the answer; `usize` bytes of it are written.
    Writing(Vec<u8>, usize),
    /// The answer is written and our side shut: reading what the client
    /// still sends until it closes, up to [`MAX_DISCARD_BYTES`].
    Discarding(usize),
}

impl MetricsServer {
    /// Serves `bound` from `supervisor`'s poll.
    pub fn attach(bound: BoundListener, supervisor: &mut Supervisor) -> io::Result<MetricsServer> {
        bound.listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(bound.listener);
        let listener_id = supervisor.register(&mut listener, Interest::READABLE)?;
        Ok(MetricsServer {
            listener,
            listener_id,
            connections: HashMap::new(),
            accepted: 0,
            accept_stalled: false,
            log_counts: LogCounts::default(),
        })
    }

    /// Serves the counts of lines dropped from log files with the metrics.
    pub fn with_log_counts(mut self, counts: LogCounts) -> MetricsServer {
        self.log_counts = counts;
        self
    }

    /// Serves what became ready in the last turn (`ready`, as taken from
    /// the supervisor; sources not its own are ignored): accepts
    /// connections, reads requests, writes answers.
    pub fn serve(&mut self, supervisor: &mut Supervisor, ready: &[Ready]) {
        if self.accept_stalled {
            self.accept(supervisor);
        }
        for ready in ready {
            if ready.source == self.listener_id {
                self.accept(supervisor);
            } else if self.connections.contains_key(&ready.source) {
                self.progress(ready.source, supervisor);
            }
        }
    }

    /// Closes every connection and the listener.
    pub fn close(mut self, supervisor: &mut Supervisor) {
        for (id, mut connection) in self.connections.drain() {
            let _ = supervisor.deregister(id, &mut connection.stream);
        }
        let _ = supervisor.deregister(self.listener_id, &mut self.listener);
    }

    /// Whether an accept must be tried again soon: the loop then turns with
    /// a short timeout rather than waiting for a readiness that will not
    /// come.
    pub fn wants_retry(&self) -> bool {
        self.accept_stalled
    }

    fn accept(&mut self, supervisor: &mut Supervisor) {
        self.accept_stalled = false;
        loop {
            let listener = &self.listener;
            let next = control::accept_next(|| listener.accept(), &mut self.accept_stalled);
            let Some((mut stream, _)) = next else {
                return;
            };
            if self.connections.len() >= MAX_CONNECTIONS {
                let oldest = self
                    .connections
                    .iter()
                    .min_by_key(|(_, c)| c.serial)
                    .map(|(&id, _)| id)
                    .expect("MAX_CONNECTIONS is not zero");
                self.drop_connection(oldest, supervisor);
            }
            let interest = Interest::READABLE | Interest::WRITABLE;
            let Ok(id) = supervisor.register(&mut stream, interest) else {
                continue;
            };
            self.accepted += 1;
            self.connections.insert(
                id,
                Connection {
                    stream,
                    serial: self.accepted,
                    phase: Phase::Reading(Vec::new()),
                },
            );
            // Readiness is edge-triggered: a request that came with the
            // connection is read now, not after an event that may not come.
            self.progress(id, supervisor);
        }
    }

    /// Moves a connection on as far as its socket allows.
    fn progress(&mut self, id: SourceId, supervisor: &mut Supervisor) {
        let connection = self
            .connections
            .get_mut(&id)
            .expect("checked by the caller");
        // A socket error ends the connection as its end does.
        if connection
            .advance(supervisor, &self.log_counts)
            .unwrap_or(true)
        {
            self.drop_connection(id, supervisor);
        }
    }

    fn drop_connection(&mut self, id: SourceId, supervisor: &mut Supervisor) {
        if let Some(mut connection) = self.connections.remove(&id) {
            let _ = supervisor.deregister(id, &mut connection.stream);
        }
    }
}

impl Connection {
    /// Reads, answers and discards until the socket would block; whether
    /// the connection is finished with.
    fn advance(&mut self, supervisor: &Supervisor, logs: &LogCounts) -> io::Result<bool> {
        let mut buffer = [0u8; 4096];
        loop {
            match &mut self.phase {
                Phase::Reading(head) => {
                    let room = MAX_HEAD_BYTES - head.len();
                    let n = match self.stream.read(&mut buffer[..room.min(4096)]) {
                        Ok(0) => return Ok(true),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    head.extend_from_slice(&buffer[..n]);
                    if let Some(verdict) = judge(head) {
                        let answer = match verdict {
                            Verdict::Metrics => {
                                response("200 OK", &control::metrics_text(supervisor, logs))
                            }
                            Verdict::NotFound => response("404 Not Found", "not found\n"),
                            Verdict::NotAllowed => response_allow_get(),
                            Verdict::Bad => response("400 Bad Request", "bad request\n"),
                        };
                        self.phase = Phase::Writing(answer, 0);
                    }
                }
                Phase::Writing(answer, written) => {
                    if *written == answer.len() {
                        // Our side is done; the client's EOF, or the
                        // discard bound, ends the connection.
                        self.stream.shutdown(Shutdown::Write)?;
                        self.phase = Phase::Discarding(0);
                        continue;
                    }
                    match self.stream.write(&answer[*written..]) {
                        Ok(0) => return Ok(true),
                        Ok(n) => *written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
                Phase::Discarding(discarded) => match self.stream.read(&mut buffer) {
                    Ok(0) => return Ok(true),
                    Ok(n) => {
                        *discarded += n;
                        if *discarded > MAX_DISCARD_BYTES {
                            return Ok(true);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                },
            }
        }
    }
}

/// What a request head asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Metrics,
    NotFound,
    NotAllowed,
    Bad,
}

/// What to answer to `head`, the bytes read so far, or `None` while more
/// is needed. Garbage is refused as soon as its first line (or its first
/// byte that no request line holds) shows it, not after 8 KiB of it.
fn judge(head: &[u8]) -> Option<Verdict> {
    let line_end = head.iter().position(|&b| b == b'\n');
    let line = &head[..line_end.unwrap_or(head.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|&b| !(b.is_ascii_graphic() || b == b' ')) {
        return Some(Verdict::Bad);
    }
    let Some(line_end) = line_end else {
        return (head.len() >= MAX_HEAD_BYTES).then_some(Verdict::Bad);
    };
    let mut words = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Some(Verdict::Bad);
    };
    let is_token = |w: &[u8]| !w.is_empty() && w.iter().all(|b| b.is_ascii_uppercase());
    if !is_token(method) || !target.starts_with(b"/") && target != b"*" {
        return Some(Verdict::Bad);
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Some(Verdict::Bad);
    }
    // The headers end with an empty line; nothing in them matters here.
    let rest = &head[line_end + 1..];
    let ended = rest.starts_with(b"\r\n")
        || rest.starts_with(b"\n")
        || rest.windows(4).any(|w| w == b"\r\n\r\n")
        || rest.windows(2).any(|w| w == b"\n\n");
    if !ended {
        return (head.len() >= MAX_HEAD_BYTES).then_some(Verdict::Bad);
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    Some(match (method, path) {
        (b"GET", b"/metrics") => Verdict::Metrics,
        (b"GET", _) => Verdict::NotFound,
        (_, b"/metrics") => Verdict::NotAllowed,
        _ => Verdict::NotFound,
    })
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn response_allow_get() -> Vec<u8> {
    let body = "method not allowed\n";
    format!(
        "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n\
         Content-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_judged_by_method_and_path() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(judge(get), Some(Verdict::Metrics));
        assert_eq!(
            judge(b"GET /metrics?x=1 HTTP/1.0\n\n"),
            Some(Verdict::Metrics)
        );
        assert_eq!(
            judge(b"GET /other HTTP/1.1\r\n\r\n"),
            Some(Verdict::NotFound)
        );
        assert_eq!(
            judge(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Verdict::NotAllowed)
        );
        assert_eq!(judge(b"POST /x HTTP/1.1\r\n\r\n"), Some(Verdict::NotFound));
    }

    #[test]
    fn a_head_waits_for_its_end() {
        assert_eq!(judge(b"GET /metrics HT"), None);
        assert_eq!(judge(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn garbage_and_long_heads_are_bad_requests() {
        assert_eq!(judge(b"\x16\x03\x01\x02"), Some(Verdict::Bad));
        assert_eq!(judge(b"hello\r\n"), Some(Verdict::Bad));
        assert_eq!(judge(b"GET /metrics HTTP/2.0\r\n\r\n"), Some(Verdict::Bad));
        assert_eq!(judge(b"get /metrics HTTP/1.1\r\n\r\n"), Some(Verdict::Bad));
        let mut long = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while long.len() < MAX_HEAD_BYTES {
            long.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaa\r\n");
        }
        long.truncate(MAX_HEAD_BYTES);
        assert_eq!(judge(&long), Some(Verdict::Bad));
        assert_eq!(judge(&long[..MAX_HEAD_BYTES - 1]), None);
    }

    #[test]
    fn answers_close_and_say_their_length() {
        let answer = String::from_utf8(response("404 Not Found", "not found\n")).unwrap();
        assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
        assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
        assert!(answer.contains("\r\nContent-Length: 10\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nnot found\n"), "{answer}");
    }
}
