//! The control socket: where `procmon ctl` (or any program speaking
//! [`protocol`]) asks a running procmon for status and changes.
//!
//! One UNIX stream socket, owned by the supervisor's single loop: the
//! listener and every client are sources registered with the
//! [`Supervisor`]'s poll, read and written without ever blocking, so no
//! client can hold up procmon. Each request is applied whole before the
//! next is read, one call of the core (`Supervisor::call`) per process it
//! names, so two clients restarting the same process at once make one new
//! instance, not two. Everything is bounded:
//! a request line (64 KiB), the number of clients, and each client's
//! unsent replies: past the bound its requests wait in the kernel's buffer
//! until it reads, and a client that stops reading while it follows logs
//! or watches is cut off once its events pass the bound. A client is read
//! a share a turn, so one that never stops sending cannot hold the loop.
//!
//! Access: the kernel's record of who connected (`SO_PEERCRED`) must be
//! root, procmon's own user, or a uid or primary gid listed in
//! [`Access`]; anyone else gets one error line and is disconnected. A
//! reload that changes [`Access`] applies it at once, to new connections
//! and to those already open: a client it no longer allows gets the same
//! error line and is disconnected, so that taking a user out of
//! `allow_uids` revokes a `watch` or `logs -f` it left running too.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use procmon_core::{
    Definitions, DefinitionsError, EscapeInvalid, ExitStatus, Instant, ProcessState, ProcessStatus,
    ShutDown, StartError, Stream,
};
use procmon_mio::mio::net::{UnixListener, UnixStream};
use procmon_mio::mio::Interest;
use procmon_mio::os::{self, PeerCredentials};
use procmon_mio::{Notice, Observer, Ready, SourceId, Supervisor};
use serde_json::{json, Value};

use crate::config::{ControlConfig, LogConfig};
use crate::logfile::LogCounts;
use crate::output::signal_name;
use crate::protocol::{self, ErrorKind, Op, RequestError, Targets};
use crate::ring::{LogRings, RingSlot};

/// The most clients connected at once; one more is closed at once.
pub const MAX_CLIENTS: usize = 1024;

/// The most reply bytes a client may leave unread. A client that follows
/// logs or watches and lets the events queued after its last reply pass
/// this is disconnected, so it can never hold up procmon or grow its
/// memory. A client whose replies pass it is not read from until they
/// drain below it: its further requests wait in the kernel's buffer, so one
/// reply longer than the bound still reaches a client that reads it.
pub const CLIENT_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// The most request bytes read from one client in one turn of the loop. A
/// client that keeps sending is served its share and taken up again at the
/// next turn, so it cannot keep the loop from its children, timers and
/// other clients.
const READ_SHARE_BYTES: usize = 64 * 1024;

/// Who may use the socket besides root and procmon's own user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// User ids allowed.
    pub uids: Vec<u32>,
    /// Primary group ids allowed (the kernel reports no supplementary ones).
    pub gids: Vec<u32>,
}

impl Access {
    /// Whether `peer` may use the socket of a procmon running as `own_uid`.
    pub fn allows(&self, peer: PeerCredentials, own_uid: u32) -> bool {
        peer.uid == 0
            || peer.uid == own_uid
            || self.uids.contains(&peer.uid)
            || self.gids.contains(&peer.gid)
    }
}

/// The settings procmon takes only when it starts, as they are in force
/// (after the command line and the environment): a reload names each one
/// the file changes as needing a restart of procmon instead of applying
/// it. Rebinding the socket or the metrics port under connected clients,
/// resizing every process's ring of recent lines, or changing how the run
/// ends while it runs are each a half-done change if anything fails
/// midway; a restart does them whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartOnlySettings {
    /// The control socket's path ([`socket_path`]).
    pub socket: PathBuf,
    /// `[control] metrics_listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `[control] log_lines`, its default filled in.
    pub log_lines: usize,
    /// `[control] log_bytes`, its default filled in.
    pub log_bytes: usize,
    /// Container mode: `--container` or `[container] enabled`.
    pub container: bool,
}

impl StartOnlySettings {
    /// The settings a start with this command line (`--socket`,
    /// `--container`) and this config would take.
    pub fn of(
        command_line_socket: Option<&Path>,
        command_line_container: bool,
        control: &ControlConfig,
        container_enabled: bool,
    ) -> StartOnlySettings {
        StartOnlySettings {
            socket: socket_path(command_line_socket, control.socket.as_deref()),
            metrics_listen: control.metrics_listen,
            log_lines: control.log_lines.unwrap_or(crate::ring::DEFAULT_LINES),
            log_bytes: control.log_bytes.unwrap_or(crate::ring::DEFAULT_BYTES),
            container: command_line_container || container_enabled,
        }
    }

    /// The config keys (`control.socket`, `control.metrics_listen`,
    /// `control.log_lines`, `control.log_bytes`, `container.enabled`) of the
    /// settings that differ between those in force (`self`) and those a
    /// file read again asks for, in that order. Compared by effect, so a
    /// key the command line overrides (`--socket`, `--container`) or one
    /// newly written with its default value is not named: a restart would
    /// change nothing for it.
    pub fn restart_needed(&self, file: &StartOnlySettings) -> Vec<&'static str> {
        [
            (self.socket != file.socket, "control.socket"),
            (
                self.metrics_listen != file.metrics_listen,
                "control.metrics_listen",
            ),
            (self.log_lines != file.log_lines, "control.log_lines"),
            (self.log_bytes != file.log_bytes, "control.log_bytes"),
            (self.container != file.container, "container.enabled"),
        ]
        .into_iter()
        .filter_map(|(differs, key)| differs.then_some(key))
        .collect()
    }
}

/// A config file read again for a reload: what a reload applies, and the
/// settings it can only name.
#[derive(Clone, Debug)]
pub struct ConfigReread {
    /// The processes and global settings, for the core.
    pub definitions: Definitions,
    /// Where each process's lines go.
    pub logs: LogConfig,
    /// Who may use the control socket from the reload on.
    pub access: Access,
    /// The keys of settings the file changes that take effect only at
    /// procmon's next start ([`StartOnlySettings::restart_needed`]).
    pub restart_needed: Vec<&'static str>,
}

/// What a reload did (or, for a dry run, would do): for its reply and for
/// procmon's log.
#[derive(Debug)]
pub struct ReloadDone {
    /// The core's plan, a change of access counted as a global setting;
    /// or why the core refused the file.
    pub plan: Result<procmon_core::ReloadPlan, DefinitionsError>,
    /// The processes whose log settings change (see [`Feeds::reload_logs`]).
    pub log_settings_changed: Vec<String>,
    /// Whether the file changes who may use the socket.
    pub access_changed: bool,
    /// The access to put in force: only for a reload applied (not a dry
    /// run) that changes it. The caller puts it in force, as it knows when
    /// its connected clients may be checked again.
    pub new_access: Option<Access>,
    /// The settings only a restart applies that the file changes, for a
    /// reload the core took.
    pub restart_needed: Vec<&'static str>,
}

impl ConfigReread {
    /// Applies this config (with `dry_run`, only compares it), the one way
    /// for a reload over the socket and on HUP: the core first, then, only
    /// if the core took it, the log settings and access, so that an
    /// invalid file changes nothing at all. `in_force` is the access now.
    pub fn apply<O: Feeds>(
        self,
        dry_run: bool,
        in_force: &Access,
        supervisor: &mut Supervisor,
        observer: &mut O,
    ) -> ReloadDone {
        let ConfigReread {
            definitions,
            logs,
            access,
            restart_needed,
        } = self;
        let access_changed = access != *in_force;
        let mut plan = if dry_run {
            supervisor.monitor().plan_reload(&definitions)
        } else {
            supervisor.call(observer, |monitor, now| monitor.reload(now, definitions))
        };
        // Who may use the socket is a global setting as much as the core's
        // are: a reload that changes only that must not say that nothing
        // changes.
        if let Ok(plan) = plan.as_mut() {
            plan.settings_changed |= access_changed;
        }
        let taken = plan.is_ok();
        ReloadDone {
            plan,
            log_settings_changed: if taken {
                observer.reload_logs(&logs, dry_run)
            } else {
                Vec::new()
            },
            access_changed,
            new_access: (taken && !dry_run && access_changed).then_some(access),
            restart_needed: if taken { restart_needed } else { Vec::new() },
        }
    }
}

/// Reads and checks the config file anew for a reload; `None` when procmon
/// has no file to read (one-command mode). The error is one line naming the
/// file and the place.
pub type Reread<'a> = dyn FnMut() -> Option<Result<ConfigReread, String>> + 'a;

/// Where the socket is when nothing says otherwise: `/run/procmon/procmon.sock`
/// for root, else `$XDG_RUNTIME_DIR/procmon.sock`, else
/// `/tmp/procmon-$UID/procmon.sock`.
pub fn default_socket_path() -> PathBuf {
    let uid = os::effective_uid();
    if uid == 0 {
        return PathBuf::from("/run/procmon/procmon.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("procmon.sock"),
        _ => PathBuf::from(format!("/tmp/procmon-{uid}/procmon.sock")),
    }
}

/// The socket path by precedence: the command line, the config's
/// `[control] socket`, `$PROCMON_SOCKET`, then [`default_socket_path`].
pub fn socket_path(command_line: Option<&Path>, config: Option<&Path>) -> PathBuf {
    command_line
        .or(config)
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("PROCMON_SOCKET")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(default_socket_path)
}

/// Why the socket could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// A procmon already answers there.
    AnotherListening(PathBuf),
    /// Something that is not a socket is in the way.
    NotASocket(PathBuf),
    /// The system said no.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::AnotherListening(path) => {
                write!(f, "another procmon is listening on {}", path.display())
            }
            OpenError::NotASocket(path) => write!(
                f,
                "{} exists and is not a socket; not replacing it",
                path.display()
            ),
            OpenError::Io(path, error) => write!(f, "control socket {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for OpenError {}

/// What the loop must do after [`ControlServer::serve`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// A client asked procmon to stop, as TERM would.
    pub shutdown: bool,
    /// A client reloaded (or dry-ran a reload of) the config: what changed,
    /// or why nothing did; for procmon's own log.
    pub reloaded: Option<Result<(procmon_core::ReloadPlan, bool), String>>,
    /// The processes whose log settings a reload (not a dry run) changed:
    /// the core's plan cannot see them, and procmon's own log tells them
    /// apart.
    pub log_settings_changed: Vec<String>,
    /// The settings a reload (or dry run) found changed that need a
    /// restart of procmon: its own log names them, as the reply does.
    pub restart_needed: Vec<&'static str>,
}

/// What the control socket needs from the loop's observer: the lines and
/// state changes it saw, for `logs` and `watch`.
pub trait Feeds: Observer {
    /// The feed the observer fills.
    fn feed(&mut self) -> &mut ControlFeed;

    /// Closes and reopens every log file (`reopen_logs`), after the lines
    /// read before; gives how many there are.
    fn reopen_logs(&mut self) -> usize {
        0
    }

    /// Lines dropped from each process's log file, for `status` and
    /// `metrics`.
    fn log_counts(&self) -> LogCounts {
        LogCounts::default()
    }

    /// Takes the log settings of a reload the core has applied (with
    /// `dry_run`, only looks), and gives the processes, kept from before,
    /// whose settings change: the reply names them, since the core's plan
    /// cannot. An observer without log settings changes none.
    fn reload_logs(&mut self, logs: &LogConfig, dry_run: bool) -> Vec<String> {
        let _ = (logs, dry_run);
        Vec::new()
    }
}

/// Recent lines of every process, and what followers and watchers have not
/// been sent yet. Filled by the loop's observer from the driver's notices.
#[derive(Debug)]
pub struct ControlFeed {
    rings: LogRings,
    /// How many clients follow each process's lines.
    followed: HashMap<String, usize>,
    watchers: usize,
    lines: Vec<(String, Stream, Vec<u8>)>,
    /// State changes seen so far: the last one's number. A watch event
    /// carries its number and a status the number of the last change it
    /// reflects, so a client reading both (`procmon ctl restart --wait`,
    /// two connections) can tell a change from before a reply from one
    /// after it, whichever connection it reads first.
    seq: u64,
    changes: Vec<(String, ProcessState, ProcessState, SystemTime, u64)>,
}

impl ControlFeed {
    /// A feed keeping `ring_lines` lines and `ring_bytes` bytes per process.
    pub fn new(ring_lines: usize, ring_bytes: usize) -> ControlFeed {
        ControlFeed {
            rings: LogRings::new(ring_lines, ring_bytes),
            followed: HashMap::new(),
            watchers: 0,
            lines: Vec::new(),
            seq: 0,
            changes: Vec::new(),
        }
    }

    /// The number of the last state change seen (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Where the lines of one read go, found once for all of them (see
    /// `Observer::read_line`).
    pub fn read_slot(&mut self, name: &str) -> RingSlot {
        self.rings.slot(name)
    }

    /// Takes in one line of a read, as [`ControlFeed::notice`] would
    /// [`Notice::Output`], with its ring found before.
    #[inline]
    pub fn read_line(&mut self, slot: RingSlot, name: &str, stream: Stream, line: &[u8]) {
        self.rings.push_to(slot, name, stream, line);
        self.follow(name, stream, line);
    }

    /// Keeps a line for the clients that follow its process, if any.
    #[inline]
    fn follow(&mut self, name: &str, stream: Stream, line: &[u8]) {
        if !self.followed.is_empty() && self.followed.contains_key(name) {
            self.lines.push((name.to_string(), stream, line.to_vec()));
        }
    }

    /// Takes in one notice of the driver.
    pub fn notice(&mut self, notice: &Notice<'_>) {
        match notice {
            Notice::Output { name, stream, line } => {
                self.rings.push(name, *stream, line);
                self.follow(name, *stream, line);
            }
            Notice::StateChanged { name, from, to } => {
                self.seq += 1;
                if self.watchers > 0 {
                    self.changes
                        .push((name.to_string(), *from, *to, SystemTime::now(), self.seq));
                }
            }
            _ => {}
        }
    }
}

/// The listening socket and its clients.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    listener_id: SourceId,
    path: PathBuf,
    clients: HashMap<SourceId, Client>,
    access: Access,
    own_uid: u32,
    /// A reload changed `access`: the clients already connected are checked
    /// again once the reloading client's reply is queued, so that it is
    /// answered even if it took itself out.
    recheck_access: bool,
    /// An accept failed (out of descriptors, say) with clients still in the
    /// backlog: epoll will not report the listener again, so retry.
    accept_stalled: bool,
    /// Clients accepted so far, to find the oldest.
    accepted: u64,
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    /// Who connected, checked again when a reload changes the access.
    peer: PeerCredentials,
    /// The order it was accepted in, to find the oldest.
    serial: u64,
    input: Vec<u8>,
    output: VecDeque<u8>,
    /// Bytes ever put in `output`, bytes ever written, and where the last
    /// reply to a request ends, counted as `queued`: what is queued after
    /// that is events, the part a follower must keep reading.
    queued: u64,
    sent: u64,
    replies_end: u64,
    follows: Option<Follows>,
    /// Close once the output is written (the client hung up, or it was
    /// refused).
    closing: bool,
    /// Requests were left unanswered (its replies passed the bound) or
    /// unread (it had its share of the turn): edge-triggered readiness will
    /// not report them again, so the server takes them up itself.
    behind: bool,
    wants_writable: bool,
}

impl Client {
    /// Queues a reply to a request, or (`reply` false) a streamed event.
    fn queue(&mut self, bytes: Vec<u8>, reply: bool) {
        self.queued += bytes.len() as u64;
        if reply {
            self.replies_end = self.queued;
        }
        self.output.extend(bytes);
    }

    /// Whether its replies are over the bound, so no more requests are
    /// taken until they drain.
    fn replies_full(&self) -> bool {
        self.output.len() >= CLIENT_QUEUE_BYTES
    }

    /// Whether events queued after its last reply, still unsent, passed the
    /// bound: a follower that stopped reading.
    fn overrun(&self) -> bool {
        self.queued - self.replies_end.max(self.sent) > CLIENT_QUEUE_BYTES as u64
    }

    /// Whether it has requests to take up now, without a readiness event.
    fn can_go_on(&self) -> bool {
        self.behind && !self.replies_full()
    }
}

#[derive(Debug, Clone)]
enum Follows {
    Logs { id: Value, name: String },
    Watch { id: Value },
}

/// A control socket bound and listening, not yet served: binding comes
/// first (before any process starts), so that a socket that cannot be had
/// is a usage error and nothing runs. Dropping it removes the socket file.
#[derive(Debug)]
pub struct BoundSocket {
    listener: Option<std::os::unix::net::UnixListener>,
    path: PathBuf,
}

impl BoundSocket {
    /// Binds the socket at `path`.
    ///
    /// Its directory is created `0700` if missing and the socket is made
    /// `0600`. A live procmon answering there is an error; a stale socket
    /// file (nobody answers) is replaced; anything else in the way is left
    /// alone and is an error.
    pub fn bind(path: &Path) -> Result<BoundSocket, OpenError> {
        let io_error = |e| OpenError::Io(path.to_path_buf(), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_error)?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(OpenError::NotASocket(path.to_path_buf()))
            }
            Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(OpenError::AnotherListening(path.to_path_buf())),
                Err(_) => std::fs::remove_file(path).map_err(io_error)?,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(io_error)?;
        let bound = BoundSocket {
            listener: Some(listener),
            path: path.to_path_buf(),
        };
        // The peer check is the real guard; the mode keeps others from even
        // connecting where the directory lets them in.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_error)?;
        Ok(bound)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if self.listener.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl ControlServer {
    /// Serves `bound` from `supervisor`'s poll, letting in whom `access`
    /// allows.
    pub fn attach(
        mut bound: BoundSocket,
        access: Access,
        supervisor: &mut Supervisor,
    ) -> io::Result<ControlServer> {
        let std_listener = bound.listener.take().expect("taken only here");
        let path = bound.path.clone();
        std_listener.set_nonblocking(true)?;
        let mut listener = UnixListener::from_std(std_listener);
        let listener_id = supervisor.register(&mut listener, Interest::READABLE)?;
        Ok(ControlServer {
            listener,
            listener_id,
            path,
            clients: HashMap::new(),
            access,
            own_uid: os::effective_uid(),
            recheck_access: false,
            accept_stalled: false,
            accepted: 0,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who may use the socket now, besides root and procmon's own user.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Serves what became ready in the last turn: accepts clients, answers
    /// their requests, streams what followers and watchers wait for, and
    /// writes what the sockets take. `reload` reads and checks the config
    /// anew (an error is one line naming the file and place).
    pub fn serve<O: Feeds>(
        &mut self,
        supervisor: &mut Supervisor,
        observer: &mut O,
        ready: &[Ready],
        reload: &mut Reread<'_>,
    ) -> Served {
        let mut served = Served::default();
        if self.accept_stalled {
            self.accept(supervisor, observer.feed());
        }
        for ready in ready {
            if ready.source == self.listener_id {
                self.accept(supervisor, observer.feed());
                continue;
            }
            if !self.clients.contains_key(&ready.source) {
                continue;
            }
            if ready.readable {
                self.read(ready.source, supervisor, observer, reload, &mut served);
            }
        }
        self.stream_feed(observer.feed());
        self.flush_all(supervisor, observer.feed());
        // Clients left behind (their replies have drained, or they had
        // their share) go on from where they stopped, one more share each.
        let behind: Vec<SourceId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.can_go_on())
            .map(|(&id, _)| id)
            .collect();
        if !behind.is_empty() {
            for id in behind {
                self.read(id, supervisor, observer, reload, &mut served);
            }
            self.stream_feed(observer.feed());
            self.flush_all(supervisor, observer.feed());
        }
        served
    }

    fn flush_all(&mut self, supervisor: &mut Supervisor, feed: &mut ControlFeed) {
        let ids: Vec<SourceId> = self.clients.keys().copied().collect();
        for id in ids {
            self.flush(id, supervisor, feed);
        }
    }

    /// Whether an accept must be tried again soon, or a client has requests
    /// left from its share of a turn: the loop then turns with a short
    /// timeout rather than waiting for a readiness that will not come.
    pub fn wants_retry(&self) -> bool {
        self.accept_stalled || self.clients.values().any(Client::can_go_on)
    }

    fn accept(&mut self, supervisor: &mut Supervisor, feed: &mut ControlFeed) {
        self.accept_stalled = false;
        loop {
            let listener = &self.listener;
            let next = accept_next(|| listener.accept(), &mut self.accept_stalled);
            let Some((mut stream, _)) = next else {
                return;
            };
            if self.clients.len() >= MAX_CLIENTS {
                // Full: the oldest client that follows nothing makes room
                // (else the oldest of all), so idle connections cannot lock
                // an operator out.
                let victim = self
                    .clients
                    .iter()
                    .min_by_key(|(_, c)| (c.follows.is_some(), c.serial))
                    .map(|(&id, _)| id)
                    .expect("MAX_CLIENTS is not zero");
                self.drop_client(victim, supervisor, feed);
            }
            let peer = match os::peer_credentials(stream.as_fd()) {
                Ok(peer) if self.access.allows(peer, self.own_uid) => Ok(peer),
                Ok(peer) => Err(format!(
                    "uid {} (gid {}) may not use this procmon's control socket",
                    peer.uid, peer.gid
                )),
                Err(e) => Err(format!("cannot tell who connected: {e}")),
            };
            let peer = match peer {
                Ok(peer) => peer,
                Err(message) => {
                    let error = RequestError::new(ErrorKind::PermissionDenied, message, None);
                    // One try, never a wait: a refused client gets no more.
                    let _ = stream.write(&protocol::error_line(&Value::Null, &error));
                    continue;
                }
            };
            let Ok(id) = supervisor.register(&mut stream, Interest::READABLE) else {
                continue;
            };
            self.accepted += 1;
            self.clients.insert(
                id,
                Client {
                    stream,
                    peer,
                    serial: self.accepted,
                    input: Vec::new(),
                    output: VecDeque::new(),
                    queued: 0,
                    sent: 0,
                    replies_end: 0,
                    follows: None,
                    closing: false,
                    behind: false,
                    wants_writable: false,
                },
            );
        }
    }

    fn read<O: Feeds>(
        &mut self,
        id: SourceId,
        supervisor: &mut Supervisor,
        observer: &mut O,
        reload: &mut Reread<'_>,
        served: &mut Served,
    ) {
        let mut buffer = [0u8; 16 * 1024];
        let mut share = READ_SHARE_BYTES;
        loop {
            // Answer complete lines as they come, so the input never holds
            // more than one line and a bit; lines read before come first.
            let answered = self.answer_lines(id, supervisor, observer, reload, served);
            let client = self.clients.get_mut(&id).expect("checked by the caller");
            if client.closing {
                // Lines it sent before it hung up are still answered.
                client.behind = !answered;
                return;
            }
            // Past the bound or its share, the rest waits in the kernel's
            // buffer: that holds the client back, and not procmon.
            if !answered || client.replies_full() || share == 0 {
                client.behind = true;
                return;
            }
            match client.stream.read(&mut buffer) {
                Ok(0) => {
                    // Its end ends its last line too: a request sent
                    // without a newline is answered, not silently lost.
                    if !client.input.is_empty() {
                        client.input.push(b'\n');
                    }
                    client.closing = true;
                }
                Ok(n) => {
                    client.input.extend_from_slice(&buffer[..n]);
                    share = share.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    client.behind = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    client.closing = true;
                    client.behind = false;
                    client.input.clear();
                    client.output.clear();
                    return;
                }
            }
        }
    }

    /// Answers the complete lines read; whether it answered them all
    /// (false: its replies passed the bound first, and the rest wait).
    fn answer_lines<O: Feeds>(
        &mut self,
        id: SourceId,
        supervisor: &mut Supervisor,
        observer: &mut O,
        reload: &mut Reread<'_>,
        served: &mut Served,
    ) -> bool {
        loop {
            let client = self.clients.get_mut(&id).expect("checked by the caller");
            let Some(end) = client.input.iter().position(|&b| b == b'\n') else {
                if client.input.len() > protocol::MAX_REQUEST_BYTES {
                    // No newline within the bound: answer and hang up, for
                    // the rest of that line cannot be told from a new one.
                    let (id_value, error) = protocol::parse_request(&client.input).unwrap_err();
                    client.queue(protocol::error_line(&id_value, &error), true);
                    client.input.clear();
                    client.closing = true;
                }
                return true;
            };
            if client.replies_full() {
                return false;
            }
            let line: Vec<u8> = client.input.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let reply = match protocol::parse_request(line) {
                Err((id_value, error)) => protocol::error_line(&id_value, &error),
                Ok(request) => {
                    let result = self.apply(
                        id,
                        &request.op,
                        &request.id,
                        supervisor,
                        observer,
                        reload,
                        served,
                    );
                    match result {
                        Ok(value) => protocol::ok_line(&request.id, value),
                        Err(error) => protocol::error_line(&request.id, &error),
                    }
                }
            };
            let client = self.clients.get_mut(&id).expect("still connected");
            client.queue(reply, true);
            if std::mem::take(&mut self.recheck_access) {
                self.revoke_disallowed(observer.feed());
            }
        }
    }

    /// Lets in whom `access` allows from now on, and disconnects the
    /// clients it no longer allows (as a reload by HUP does).
    pub fn set_access(
        &mut self,
        access: Access,
        supervisor: &mut Supervisor,
        feed: &mut ControlFeed,
    ) {
        if access == self.access {
            return;
        }
        self.access = access;
        self.revoke_disallowed(feed);
        // Nothing else may wake the loop soon: the refusals go out now.
        self.flush_all(supervisor, feed);
    }

    /// Refuses every connected client the access no longer allows: the
    /// same one error line a new connection gets, and then the connection
    /// closes once that is written. A follower stops being streamed to at
    /// once; requests it sent and procmon has not read are not answered.
    fn revoke_disallowed(&mut self, feed: &mut ControlFeed) {
        for client in self.clients.values_mut() {
            if client.closing || self.access.allows(client.peer, self.own_uid) {
                continue;
            }
            if let Some(follows) = client.follows.take() {
                unfollow(&follows, feed);
            }
            let message = format!(
                "uid {} (gid {}) may no longer use this procmon's control socket: \
                 a reload changed who may",
                client.peer.uid, client.peer.gid
            );
            let error = RequestError::new(ErrorKind::PermissionDenied, message, None);
            client.input.clear();
            client.queue(protocol::error_line(&Value::Null, &error), true);
            client.closing = true;
            client.behind = false;
        }
    }

    /// Carries out one request, all of it before the next is read: one core
    /// call per process it names.
    #[allow(clippy::too_many_arguments)]
    fn apply<O: Feeds>(
        &mut self,
        client: SourceId,
        op: &Op,
        request_id: &Value,
        supervisor: &mut Supervisor,
        observer: &mut O,
        reload: &mut Reread<'_>,
        served: &mut Served,
    ) -> Result<Value, RequestError> {
        match op {
            Op::Version => Ok(json!({
                "procmon": env!("CARGO_PKG_VERSION"),
                "protocol": protocol::VERSION,
            })),
            Op::Status { names } => {
                let names = known_names(supervisor, names, true)?;
                Ok(status_json(
                    supervisor,
                    &names,
                    &observer.log_counts(),
                    observer.feed().seq(),
                ))
            }
            Op::ReopenLogs => Ok(json!({"files": observer.reopen_logs()})),
            Op::Start(targets) | Op::Stop(targets) | Op::Restart(targets) => {
                let names = targets_names(supervisor, targets)?;
                // One core call per process: the drain contract wants each
                // call's commands carried out before the next call (two in
                // one `call` panicked a debug build). All are still applied
                // before anything else is read.
                for name in &names {
                    let done = supervisor.call(observer, |monitor, now| match op {
                        Op::Start(_) => monitor.start(now, name),
                        Op::Stop(_) => monitor.down(now, name).map_err(StartError::Unknown),
                        _ => monitor.restart(now, name),
                    });
                    match done {
                        Ok(()) => {}
                        // The core refuses the first name as it would every
                        // other: none was started.
                        Err(StartError::ShutDown(refused)) => return Err(stopping(refused)),
                        Err(error) => {
                            debug_assert!(false, "names were checked in this turn: {error}");
                        }
                    }
                }
                Ok(status_json(
                    supervisor,
                    &names,
                    &observer.log_counts(),
                    observer.feed().seq(),
                ))
            }
            Op::Signal { signal, targets } => {
                let mut names = targets_names(supervisor, targets)?;
                if matches!(targets, Targets::All) {
                    names.retain(|n| supervisor.monitor().live_instance(n).is_some());
                } else if let Some(name) = names
                    .iter()
                    .find(|n| supervisor.monitor().live_instance(n).is_none())
                {
                    return Err(RequestError::new(
                        ErrorKind::NotRunning,
                        format!("process {name:?} has no live instance to signal"),
                        Some(name),
                    ));
                }
                let signal = *signal;
                // One core call per process, as for start and stop above.
                for name in &names {
                    let sent =
                        supervisor.call(observer, |monitor, now| monitor.signal(now, name, signal));
                    debug_assert!(sent.is_ok(), "checked live in this turn");
                }
                Ok(json!(names
                    .iter()
                    .map(|n| json!({"name": n, "signal": signal.as_str()}))
                    .collect::<Vec<_>>()))
            }
            Op::Reload { dry_run } => {
                let definitions = match reload() {
                    None => {
                        return Err(RequestError::new(
                            ErrorKind::Unavailable,
                            "this procmon was started without --config: nothing to reload",
                            None,
                        ))
                    }
                    Some(Err(message)) => {
                        served.reloaded = Some(Err(message.clone()));
                        return Err(RequestError::new(ErrorKind::InvalidConfig, message, None));
                    }
                    Some(Ok(read)) => read,
                };
                let done = definitions.apply(*dry_run, &self.access, supervisor, observer);
                if let Err(DefinitionsError::ShutDown(refused)) = done.plan {
                    return Err(stopping(refused));
                }
                served.reloaded = Some(
                    done.plan
                        .clone()
                        .map(|plan| (plan, *dry_run))
                        .map_err(|e| e.to_string()),
                );
                if !dry_run {
                    served.log_settings_changed = done.log_settings_changed.clone();
                }
                if let Some(access) = done.new_access {
                    self.access = access;
                    self.recheck_access = true;
                }
                served.restart_needed = done.restart_needed.clone();
                match done.plan {
                    Ok(plan) => Ok(json!({
                        "dry_run": dry_run,
                        "settings_changed": plan.settings_changed,
                        "changes": plan
                            .changes
                            .iter()
                            .map(|(name, change)| json!({"name": name, "change": change.as_str()}))
                            .collect::<Vec<_>>(),
                        "log_settings_changed": done.log_settings_changed,
                        "access_changed": done.access_changed,
                        "restart_needed": done.restart_needed,
                    })),
                    Err(error) => Err(RequestError::new(
                        ErrorKind::InvalidConfig,
                        error.to_string(),
                        None,
                    )),
                }
            }
            Op::Logs {
                name,
                lines,
                follow,
            } => {
                known_names(supervisor, std::slice::from_ref(name), false)?;
                let count = usize::try_from(*lines).unwrap_or(usize::MAX);
                let kept = observer.feed().rings.last(name, count);
                if *follow {
                    self.follow(
                        client,
                        Follows::Logs {
                            id: request_id.clone(),
                            name: name.clone(),
                        },
                        observer.feed(),
                    );
                }
                Ok(json!(kept
                    .iter()
                    .map(|l| line_json(name, l.stream, &l.bytes))
                    .collect::<Vec<_>>()))
            }
            Op::Watch => {
                self.follow(
                    client,
                    Follows::Watch {
                        id: request_id.clone(),
                    },
                    observer.feed(),
                );
                let names = all_names(supervisor);
                Ok(status_json(
                    supervisor,
                    &names,
                    &observer.log_counts(),
                    observer.feed().seq(),
                ))
            }
            Op::Metrics => Ok(Value::String(metrics_text(
                supervisor,
                &observer.log_counts(),
            ))),
            Op::Shutdown => {
                served.shutdown = true;
                Ok(json!({"stopping": true}))
            }
        }
    }

    fn follow(&mut self, id: SourceId, follows: Follows, feed: &mut ControlFeed) {
        let client = self.clients.get_mut(&id).expect("the asking client");
        if let Some(previous) = client.follows.take() {
            unfollow(&previous, feed);
        }
        match &follows {
            Follows::Logs { name, .. } => *feed.followed.entry(name.clone()).or_default() += 1,
            Follows::Watch { .. } => feed.watchers += 1,
        }
        client.follows = Some(follows);
    }

    /// Hands what the feed gathered to the clients that follow it.
    fn stream_feed(&mut self, feed: &mut ControlFeed) {
        if feed.lines.is_empty() && feed.changes.is_empty() {
            return;
        }
        for client in self.clients.values_mut() {
            let mut events = Vec::new();
            match &client.follows {
                Some(Follows::Logs { id, name }) => {
                    for (line_name, stream, bytes) in &feed.lines {
                        if line_name == name {
                            let event = line_json(name, *stream, bytes);
                            events.extend(protocol::event_line(id, event));
                        }
                    }
                }
                Some(Follows::Watch { id }) => {
                    for (name, from, to, at, seq) in &feed.changes {
                        let event = json!({
                            "name": name,
                            "from": from.as_str(),
                            "to": to.as_str(),
                            "at": rfc3339_millis(*at),
                            "seq": seq,
                        });
                        events.extend(protocol::event_line(id, event));
                    }
                }
                None => {}
            }
            client.queue(events, false);
        }
        feed.lines.clear();
        feed.changes.clear();
    }

    /// Writes what the client's socket takes; closes a client that is done
    /// or that let its queue pass the bound.
    fn flush(&mut self, id: SourceId, supervisor: &mut Supervisor, feed: &mut ControlFeed) {
        let client = self.clients.get_mut(&id).expect("listed");
        let mut broken = false;
        while !client.output.is_empty() {
            let (front, _) = client.output.as_slices();
            match client.stream.write(front) {
                Ok(0) => {
                    broken = true;
                    break;
                }
                Ok(n) => {
                    client.output.drain(..n);
                    client.sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        let done = client.closing && client.output.is_empty() && !client.behind;
        if broken || client.overrun() || done {
            self.drop_client(id, supervisor, feed);
            return;
        }
        let wants_writable = !client.output.is_empty();
        if wants_writable != client.wants_writable {
            let interest = if wants_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if supervisor
                .reregister(id, &mut client.stream, interest)
                .is_ok()
            {
                client.wants_writable = wants_writable;
            }
        }
    }

    /// Disconnects a client, and stops streaming to it.
    fn drop_client(&mut self, id: SourceId, supervisor: &mut Supervisor, feed: &mut ControlFeed) {
        let Some(mut client) = self.clients.remove(&id) else {
            return;
        };
        if let Some(follows) = &client.follows {
            unfollow(follows, feed);
        }
        let _ = supervisor.deregister(id, &mut client.stream);
    }

    /// Closes every client and the listener; the socket file goes with the
    /// server.
    pub fn close(mut self, supervisor: &mut Supervisor) {
        for (id, mut client) in self.clients.drain() {
            let _ = supervisor.deregister(id, &mut client.stream);
        }
        let _ = supervisor.deregister(self.listener_id, &mut self.listener);
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn unfollow(follows: &Follows, feed: &mut ControlFeed) {
    match follows {
        Follows::Logs { name, .. } => {
            if let Some(count) = feed.followed.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    feed.followed.remove(name);
                }
            }
        }
        Follows::Watch { .. } => feed.watchers -= 1,
    }
}

fn all_names(supervisor: &Supervisor) -> Vec<String> {
    supervisor
        .monitor()
        .processes_in_order()
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The reply to a request the core refused because procmon is stopping:
/// it exits once the stopped service has ended, so it starts nothing more.
fn stopping(_: ShutDown) -> RequestError {
    RequestError::new(
        ErrorKind::Stopping,
        "procmon is stopping: it starts, restarts and reloads nothing more",
        None,
    )
}

/// `names` if each is a process (all of them if `names` is empty and
/// `empty_is_all`), else the first unknown one as an error.
fn known_names(
    supervisor: &Supervisor,
    names: &[String],
    empty_is_all: bool,
) -> Result<Vec<String>, RequestError> {
    if names.is_empty() && empty_is_all {
        return Ok(all_names(supervisor));
    }
    for name in names {
        if supervisor.monitor().key(name).is_none() {
            return Err(RequestError::new(
                ErrorKind::UnknownProcess,
                format!("no process named {name:?}"),
                Some(name),
            ));
        }
    }
    Ok(names.to_vec())
}

fn targets_names(supervisor: &Supervisor, targets: &Targets) -> Result<Vec<String>, RequestError> {
    match targets {
        Targets::All => Ok(all_names(supervisor)),
        Targets::Names(names) => known_names(supervisor, names, false),
    }
}

/// One output line as JSON: the bytes as text, invalid UTF-8 as `\xHH`.
fn line_json(name: &str, stream: Stream, bytes: &[u8]) -> Value {
    json!({
        "name": name,
        "stream": stream.as_str(),
        "line": EscapeInvalid(bytes).to_string(),
    })
}

fn seconds(duration: std::time::Duration) -> f64 {
    (duration.as_millis() as f64) / 1000.0
}

/// The next connection a listener has waiting, or `None` once it has none
/// for now. An interrupted or aborted accept is tried again; any other
/// failure (EMFILE and the like) leaves the client in the backlog and sets
/// `stalled`, so that the loop retries shortly rather than waiting for a
/// readiness epoll will not report again (see `wants_retry` on the
/// control server and the metrics listener).
pub(crate) fn accept_next<T>(
    mut accept: impl FnMut() -> io::Result<T>,
    stalled: &mut bool,
) -> Option<T> {
    loop {
        match accept() {
            Ok(accepted) => return Some(accepted),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(_) => {
                *stalled = true;
                return None;
            }
        }
    }
}

/// The status of each of `names`, in the order given, as the protocol's
/// objects; `logs` gives each one's lines dropped from its log file, and
/// `seq` is the number of the last state change they reflect (see
/// [`ControlFeed::seq`]).
pub fn status_json(supervisor: &Supervisor, names: &[String], logs: &LogCounts, seq: u64) -> Value {
    let now = supervisor.now();
    let monitor = supervisor.monitor();
    Value::Array(
        names
            .iter()
            .filter_map(|name| monitor.status(name))
            .map(|status| {
                let mut object = process_json(supervisor, &status, now);
                object["log_dropped_lines"] = json!(logs.dropped(status.name));
                object["seq"] = json!(seq);
                object
            })
            .collect(),
    )
}

fn process_json(supervisor: &Supervisor, status: &ProcessStatus<'_>, now: Instant) -> Value {
    let live = matches!(
        status.state,
        ProcessState::Starting | ProcessState::Running | ProcessState::Stopping
    );
    let pid = status.instance.and_then(|i| supervisor.pid(i));
    let uptime = status
        .started_at
        .filter(|_| live)
        .map(|started| seconds(now.saturating_duration_since(started)));
    let last_exit = match status.stats.last_exit {
        Some(ExitStatus::Code(code)) => json!({"code": code}),
        Some(ExitStatus::Signal(signo)) => json!({
            "signal": signal_name(signo).map_or_else(|| signo.to_string(), str::to_string),
        }),
        None => Value::Null,
    };
    let next = status.next.map_or(Value::Null, |due| {
        json!({
            "action": due.action.as_str(),
            "in": seconds(due.at.saturating_duration_since(now)),
        })
    });
    // What a waiting process waits for, where that one is, and whether it
    // will come by itself: the core decides (`comes_up_by_itself`), so a
    // client shows "may wait for ever" without a rule of its own.
    let waiting_for = status.waiting_for.map_or(Value::Null, |dependency| {
        let state = supervisor
            .monitor()
            .status(&dependency.name)
            .map(|s| s.state.as_str());
        json!({
            "name": dependency.name,
            "condition": dependency.condition.as_str(),
            "state": state,
            "stuck": !status.comes_up_by_itself,
        })
    });
    json!({
        "name": status.name,
        "state": status.state.as_str(),
        "waiting_for": waiting_for,
        "notify_status": supervisor.notify_status(status.name),
        "pid": pid,
        "uptime": uptime,
        "restarts": status.stats.restarts,
        "quick_deaths": status.quick_deaths,
        "last_exit": last_exit,
        "next": next,
        "wanted_up": status.wanted_up,
    })
}

/// One per-process metric: name, type, help, and its value for a process
/// (none: the process has no sample).
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ProcessStatus<'_>, Instant) -> Option<f64>,
);

/// The Prometheus text exposition of every process and of procmon; `logs`
/// gives each one's lines dropped from its log file.
pub fn metrics_text(supervisor: &Supervisor, logs: &LogCounts) -> String {
    use std::fmt::Write as _;
    let monitor = supervisor.monitor();
    let now = supervisor.now();
    let statuses: Vec<ProcessStatus<'_>> = monitor.statuses().collect();
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(&mut out, "procmon_processes", "gauge", "Processes defined.");
    let _ = writeln!(out, "procmon_processes {}", statuses.len());
    family(
        &mut out,
        "procmon_events_total",
        "counter",
        "Facts from the world procmon took in (exits, output chunks, timers).",
    );
    let _ = writeln!(out, "procmon_events_total {}", monitor.stats().inputs);
    family(
        &mut out,
        "procmon_notify_rejected_total",
        "counter",
        "sd_notify datagrams ignored: their sender was not the process or in its session.",
    );
    let _ = writeln!(
        out,
        "procmon_notify_rejected_total {}",
        supervisor.stats().notify_rejected
    );
    let per_process: [Metric; 8] = [
        (
            "procmon_process_up",
            "gauge",
            "1 if the process is running.",
            |s, _| Some(f64::from(u8::from(s.state == ProcessState::Running))),
        ),
        (
            "procmon_process_restarts_total",
            "counter",
            "Restarts by the restart rules or a retry.",
            |s, _| Some(s.stats.restarts as f64),
        ),
        (
            "procmon_process_quick_deaths",
            "gauge",
            "Quick deaths in a row.",
            |s, _| Some(f64::from(s.quick_deaths)),
        ),
        (
            "procmon_process_uptime_seconds",
            "gauge",
            "Seconds since the running instance started.",
            |s, now| {
                (s.state == ProcessState::Running)
                    .then(|| {
                        s.started_at
                            .map(|t| seconds(now.saturating_duration_since(t)))
                    })
                    .flatten()
            },
        ),
        (
            "procmon_process_output_lines_total",
            "counter",
            "Output lines logged.",
            |s, _| Some(s.stats.output_lines as f64),
        ),
        (
            "procmon_process_output_bytes_total",
            "counter",
            "Output bytes read.",
            |s, _| Some(s.stats.output_bytes as f64),
        ),
        (
            "procmon_process_spawn_failures_total",
            "counter",
            "Spawns that failed.",
            |s, _| Some(s.stats.spawn_failures as f64),
        ),
        (
            "procmon_process_last_exit_code",
            "gauge",
            "Exit code of the last instance that exited with one.",
            |s, _| match s.stats.last_exit {
                Some(ExitStatus::Code(code)) => Some(f64::from(code)),
                _ => None,
            },
        ),
    ];
    for (name, kind, help, value) in per_process {
        family(&mut out, name, kind, help);
        for status in &statuses {
            if let Some(value) = value(status, now) {
                let _ = writeln!(out, "{name}{{name=\"{}\"}} {value}", label(status.name));
            }
        }
    }
    family(
        &mut out,
        "procmon_process_state",
        "gauge",
        "1 for the state the process is in, 0 for the others.",
    );
    for status in &statuses {
        for state in ProcessState::ALL {
            let _ = writeln!(
                out,
                "procmon_process_state{{name=\"{}\",state=\"{}\"}} {}",
                label(status.name),
                state.as_str(),
                u8::from(status.state == state)
            );
        }
    }
    family(
        &mut out,
        "procmon_log_dropped_lines_total",
        "counter",
        "Lines not written to the process's log file (a failing or full disk, or a writer far behind).",
    );
    for status in &statuses {
        if let Some(dropped) = logs.dropped(status.name) {
            let _ = writeln!(
                out,
                "procmon_log_dropped_lines_total{{name=\"{}\"}} {dropped}",
                label(status.name)
            );
        }
    }
    out
}

/// A label value escaped as the exposition format wants.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-12-06T10:00:00.123Z`: the one formatter, shared with the lines
/// of log files.
pub use crate::stamp::rfc3339_millis;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_551_200_123);
        assert_eq!(rfc3339_millis(at), "2026-12-06T10:00:00.123Z");
        assert_eq!(
            rfc3339_millis(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn a_reload_names_each_start_only_setting_by_its_effect() {
        let socket = Path::new("/run/a.sock");
        let control = |f: fn(&mut ControlConfig)| {
            let mut control = ControlConfig {
                socket: Some(socket.to_path_buf()),
                ..ControlConfig::default()
            };
            f(&mut control);
            control
        };
        let in_force = StartOnlySettings::of(None, false, &control(|_| {}), false);
        let needed = |cli_socket: Option<&Path>, cli_container, f, enabled| {
            in_force.restart_needed(&StartOnlySettings::of(
                cli_socket,
                cli_container,
                &control(f),
                enabled,
            ))
        };
        assert!(needed(None, false, |_| {}, false).is_empty());
        // Access is applied by the reload, not left for a restart.
        assert!(needed(None, false, |c| c.allow_uids = vec![7], false).is_empty());
        assert_eq!(
            needed(
                None,
                false,
                |c| {
                    c.socket = Some("/run/b.sock".into());
                    c.metrics_listen = Some("127.0.0.1:9100".parse().unwrap());
                    c.log_lines = Some(5);
                    c.log_bytes = Some(5);
                },
                true
            ),
            [
                "control.socket",
                "control.metrics_listen",
                "control.log_lines",
                "control.log_bytes",
                "container.enabled"
            ]
        );
        // The default written out changes nothing.
        assert!(needed(
            None,
            false,
            |c| {
                c.log_lines = Some(crate::ring::DEFAULT_LINES);
                c.log_bytes = Some(crate::ring::DEFAULT_BYTES);
            },
            false
        )
        .is_empty());
        // What the command line overrides, a restart would not change.
        let pinned = StartOnlySettings::of(Some(socket), true, &control(|_| {}), false);
        let moved = StartOnlySettings::of(
            Some(socket),
            true,
            &control(|c| c.socket = Some("/run/b.sock".into())),
            true,
        );
        assert!(pinned.restart_needed(&moved).is_empty());
    }

    #[test]
    fn access_allows_root_ourselves_and_the_listed() {
        let access = Access {
            uids: vec![1000],
            gids: vec![50],
        };
        let peer = |uid, gid| PeerCredentials { pid: 1, uid, gid };
        assert!(access.allows(peer(0, 0), 500));
        assert!(access.allows(peer(500, 7), 500));
        assert!(access.allows(peer(1000, 7), 500));
        assert!(access.allows(peer(1001, 50), 500));
        assert!(!access.allows(peer(1001, 51), 500));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
