//! Readiness channels: how a child tells the monitor it is ready, for the
//! two kinds the world carries ([`Readiness::Notify`] and
//! [`Readiness::Fd`]; a log line the core sees by itself).
//!
//! - **sd_notify**: each process gets a datagram socket of its own, bound
//!   in a private directory of the supervisor's and named in its instances'
//!   `NOTIFY_SOCKET`. A socket is registered only while the process has a
//!   live instance, and read only for that instance: the kernel attaches the
//!   sender's pid to each datagram (`SO_PASSCRED`), and one whose sender is
//!   not the child or in its session (children run in their own session,
//!   whose id is their pid) is ignored and counted in
//!   [`Stats::notify_rejected`], so a datagram of an earlier instance's
//!   leftovers, read while a later one lives, fails the check. A sender that is already gone (reaped)
//!   cannot be checked and is rejected too: a one-shot sender must outlive
//!   the reading of its datagram, which `systemd-notify` does by waiting for
//!   its barrier. `READY=1` is [`Input::Ready`]; `STATUS=` is kept per
//!   process ([`Supervisor::notify_status`]) and reported
//!   ([`Notice::Status`]); `STOPPING=1` is reported ([`Notice::Stopping`]);
//!   other keys are ignored. The socket is read out before the instance's
//!   exit is reported, then kept for the process's next instance (binding
//!   and removing a socket is the dearest part of a restart here), and
//!   closed, its path removed, once the process is removed or no longer
//!   notifies, and at drop.
//! - **s6 notification fd**: the child holds the write end of a pipe at its
//!   descriptor `n`. A newline is [`Input::Ready`]; the end of the pipe
//!   without one, while the child lives, is [`Input::NotReady`]. The read
//!   end is closed after either, or when the child is reaped.
//!
//! Separate because it is a channel per child with rules of its own
//! (attribution, credentials, the socket directory), apart from its pipes
//! and its exit. Policy (what readiness means) stays in the core: this only
//! carries the facts in.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use mio::unix::SourceFd;
use mio::Interest;
use procmon_core::{Input, InstanceId, Monitor, ProcessKey, ProcessSpec, Readiness};

use crate::children::{token, Role};
#[cfg(doc)]
use crate::Stats;
use crate::{sys, Notice, Observer, Supervisor};

/// At most this many bytes of a notification datagram are read (systemd
/// reads 4096 too); the rest of a longer one is lost, and its last line,
/// cut short, is ignored.
pub const NOTIFY_DATAGRAM_BYTES: usize = 4096;

/// At most this many datagrams or reads from one channel per readiness event;
/// a channel still not empty is read again on the next turn, so a child
/// that floods its socket cannot keep a turn from ending.
const READS_PER_CHANNEL: usize = 16;

/// The longest socket path: `sun_path` holds 108 bytes with the NUL.
const SUN_PATH_BYTES: usize = 107;

/// A child's readiness channel, until it has said what it had to say or
/// the child is reaped.
#[derive(Debug)]
pub(crate) enum Channel {
    Notify(NotifySocket),
    /// The read end of the notification pipe (non-blocking).
    Fd(std::fs::File),
}

impl Channel {
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Channel::Notify(socket) => socket.socket.as_raw_fd(),
            Channel::Fd(file) => file.as_raw_fd(),
        }
    }
}

/// One process's sd_notify socket, lent to each of its instances in turn;
/// its path is removed when dropped.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    /// `NOTIFY_SOCKET=<path>`, for each spawn's environment.
    entry: CString,
    /// The user and group it was made for (its owner when they are set).
    owner: (Option<u32>, Option<u32>),
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The supervisor's private directory for sd_notify sockets, made at the
/// first spawn that needs one and removed when the supervisor is dropped.
///
/// It is `procmon-XXXXXX` (mode 0700, `mkdtemp`) in `$XDG_RUNTIME_DIR`
/// when that is set (a per-user tmpfs), else in `/run` for root (where
/// systemd keeps its own notify socket; a tmpfs, emptied at boot), else in
/// the temporary directory (`$TMPDIR`, `/tmp`); the next of these if one
/// cannot be used or its socket paths would not fit `sun_path`. Sockets are
/// numbered, so paths stay short whatever the process names.
#[derive(Debug, Default)]
pub(crate) struct NotifyDirectory {
    path: Option<PathBuf>,
    /// Whether the directory was opened to traversal (0711) for children
    /// that run as another user.
    traversable: bool,
    next: u64,
}

impl NotifyDirectory {
    /// Binds a fresh socket for the instances of `spec`.
    fn bind(&mut self, spec: &ProcessSpec) -> io::Result<NotifySocket> {
        let directory = match &self.path {
            Some(path) => path.clone(),
            None => self.path.insert(make_directory()?).clone(),
        };
        let other_user = spec.uid.is_some() || spec.gid.is_some();
        if other_user && !self.traversable {
            // Others may pass through but not list it; each socket is then
            // writable by its own child's user only (below).
            std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o711))?;
            self.traversable = true;
        }
        self.next += 1;
        // Numbers are never reused in this fresh, private directory, so no
        // leftover can be in the way of the bind.
        let path = directory.join(self.next.to_string());
        let mut entry = b"NOTIFY_SOCKET=".to_vec();
        entry.extend_from_slice(path.as_os_str().as_bytes());
        let entry = CString::new(entry).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let socket = UnixDatagram::bind(&path)?;
        let socket = NotifySocket {
            socket,
            path,
            entry,
            owner: (spec.uid, spec.gid),
        };
        socket.socket.set_nonblocking(true)?;
        sys::pass_credentials(socket.socket.as_fd())?;
        // Whatever the umask: only the owner may send.
        std::fs::set_permissions(&socket.path, std::fs::Permissions::from_mode(0o600))?;
        if other_user {
            std::os::unix::fs::chown(&socket.path, spec.uid, spec.gid)?;
        }
        Ok(socket)
    }
}

impl Drop for NotifyDirectory {
    fn drop(&mut self) {
        // Empty by now: the supervisor closes every socket (which removes
        // its path) before this. Anything else found there is not ours to
        // delete, and the directory stays.
        if let Some(path) = &self.path {
            let _ = std::fs::remove_dir(path);
        }
    }
}

/// Makes the private directory (see [`NotifyDirectory`]).
fn make_directory() -> io::Result<PathBuf> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let root = crate::os::effective_uid() == 0;
    let bases = runtime
        .into_iter()
        .chain(root.then(|| PathBuf::from("/run")))
        .chain([std::env::temp_dir(), PathBuf::from("/tmp")]);
    let mut error = None;
    for base in bases {
        // procmon-XXXXXX, a slash and a 20-digit number.
        if base.as_os_str().len() + 15 + 21 > SUN_PATH_BYTES {
            continue;
        }
        match sys::private_directory(&base) {
            Ok(path) => return Ok(path),
            Err(e) => error = Some(e),
        }
    }
    Err(error.unwrap_or_else(|| io::Error::from_raw_os_error(libc::ENAMETOOLONG)))
}

impl NotifySocket {
    /// `NOTIFY_SOCKET=<path>`.
    pub(crate) fn entry(&self) -> &std::ffi::CStr {
        &self.entry
    }
}

/// The sd_notify sockets of processes with no live instance, by process,
/// kept for their next instance: binding a socket and removing it again
/// costs a restart more than anything else here (an inode made and
/// removed: about 80 us on ext4, 35 us on a tmpfs, on the project's VM).
#[derive(Debug, Default)]
pub(crate) struct IdleSockets {
    sockets: HashMap<ProcessKey, NotifySocket>,
}

impl IdleSockets {
    /// Keeps `socket` for the next instance of `process`. One already kept
    /// (an instance of a replaced definition under the same key ended after
    /// its successor started) is closed.
    pub(crate) fn park(&mut self, process: ProcessKey, socket: NotifySocket) {
        self.sockets.insert(process, socket);
    }

    /// Closes the sockets of processes that `keep` no longer wants: removed
    /// ones, or ones that no longer notify.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(ProcessKey) -> bool) {
        self.sockets.retain(|&process, _| keep(process));
    }

    /// Closes them all.
    pub(crate) fn clear(&mut self) {
        self.sockets.clear();
    }
}

/// Whether `process` is still defined (not removed, whose entry the monitor
/// frees only at its next call) and still notifies.
pub(crate) fn still_notifies(monitor: &Monitor, process: ProcessKey) -> bool {
    monitor
        .name(process)
        .is_some_and(|name| monitor.key(name) == Some(process))
        && monitor
            .spec(process)
            .is_some_and(|spec| spec.ready == Readiness::Notify)
}

/// The readiness channel a spawn of `spec` (the definition of `process`)
/// needs before the child exists: for [`Readiness::Notify`], the process's
/// socket, kept from its last instance or bound now.
pub(crate) fn prepare(
    directory: &mut NotifyDirectory,
    idle: &mut IdleSockets,
    process: ProcessKey,
    spec: &ProcessSpec,
) -> io::Result<Option<NotifySocket>> {
    if spec.ready != Readiness::Notify {
        return Ok(None);
    }
    match idle.sockets.remove(&process) {
        Some(socket) if socket.owner == (spec.uid, spec.gid) => Ok(Some(socket)),
        // Made for another user, it would be the wrong one's to write.
        _ => directory.bind(spec).map(Some),
    }
}

/// What one read of a channel found.
enum Read {
    /// Nothing more for now.
    Empty,
    /// Bytes that mean nothing (before a newline), or an interrupted read.
    Nothing,
    Datagram(sys::Datagram),
    Newline,
    /// The end of the pipe, or a channel that failed.
    End,
}

/// What one notification datagram says, as far as the monitor cares.
#[derive(Debug, Default, PartialEq, Eq)]
struct Message<'a> {
    ready: bool,
    stopping: bool,
    /// The last `STATUS=` in it.
    status: Option<&'a [u8]>,
}

/// Parses newline-separated `KEY=VALUE` assignments; a `truncated`
/// datagram's last line is cut short and ignored.
fn parse(bytes: &[u8], truncated: bool) -> Message<'_> {
    let mut message = Message::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if truncated {
        lines.pop();
    }
    for line in lines {
        match line {
            b"READY=1" => message.ready = true,
            b"STOPPING=1" => message.stopping = true,
            _ => {
                if let Some(text) = line.strip_prefix(b"STATUS=") {
                    message.status = Some(text);
                }
            }
        }
    }
    message
}

impl Supervisor {
    /// Registers a new child's readiness channel with the poll.
    pub(crate) fn register_channel(&self, slot: usize, channel: &Channel) -> io::Result<()> {
        self.poll.registry().register(
            &mut SourceFd(&channel.raw_fd()),
            token(slot, Role::Readiness),
            Interest::READABLE,
        )
    }

    /// Closes the readiness channel of `slot`, if it has one.
    pub(crate) fn close_channel(&mut self, slot: usize) {
        drop(self.take_channel(slot));
    }

    /// Takes the readiness channel of `slot` out of the poll and the child.
    fn take_channel(&mut self, slot: usize) -> Option<Channel> {
        let channel = self.children[slot]
            .as_mut()
            .and_then(|c| c.readiness.take())?;
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&channel.raw_fd()));
        Some(channel)
    }

    /// The child of `slot` has exited and been heard out: a notification
    /// pipe is closed, a socket kept for the process's next instance while
    /// the process still notifies. What arrives on it in between waits for
    /// that instance, whose session it is checked against (and fails).
    pub(crate) fn retire_channel(&mut self, slot: usize) {
        let Some(child) = self.children[slot].as_ref() else {
            return;
        };
        let process = child.process;
        if let Some(Channel::Notify(socket)) = self.take_channel(slot) {
            if still_notifies(&self.monitor, process) {
                self.idle_sockets.park(process, socket);
            }
        }
    }

    /// The latest `STATUS=` text a [`Readiness::Notify`] process sent, until
    /// its next spawn; `None` if it sent none since.
    pub fn notify_status(&self, name: &str) -> Option<&str> {
        self.statuses.get(name).map(|s| &**s)
    }

    /// The readiness channel of `slot` is readable: read what it says and
    /// hand it to the monitor. `at_exit`: the child has exited and its exit
    /// is about to be reported, so what it said before comes first, and the
    /// end of a pipe is no news (the exit says it all).
    pub(crate) fn read_channel(
        &mut self,
        slot: usize,
        observer: &mut impl Observer,
        at_exit: bool,
    ) {
        for _ in 0..READS_PER_CHANNEL {
            let Some(child) = self.children.get(slot).and_then(Option::as_ref) else {
                return;
            };
            let (Some(live), Some(channel)) = (&child.live, &child.readiness) else {
                return;
            };
            let (instance, pid) = (live.instance, live.pid);
            let read = match channel {
                Channel::Notify(socket) => {
                    let buffer = &mut self.buffer[..NOTIFY_DATAGRAM_BYTES];
                    match sys::receive_datagram(socket.socket.as_fd(), buffer) {
                        Ok(Some(datagram)) => Read::Datagram(datagram),
                        Ok(None) => Read::Empty,
                        // Not expected of a bound datagram socket; one that
                        // fails can say nothing more.
                        Err(_) => Read::End,
                    }
                }
                Channel::Fd(file) => {
                    let mut bytes = [0u8; 256];
                    let mut file: &std::fs::File = file;
                    match io::Read::read(&mut file, &mut bytes) {
                        Ok(0) => Read::End,
                        Ok(n) if bytes[..n].contains(&b'\n') => Read::Newline,
                        // Anything before the newline means nothing.
                        Ok(_) => Read::Nothing,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Read::Empty,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => Read::Nothing,
                        // Any other error on a pipe read is permanent: its end.
                        Err(_) => Read::End,
                    }
                }
            };
            match read {
                Read::Empty => return,
                Read::Nothing => {}
                Read::Datagram(datagram) => self.datagram(slot, instance, pid, datagram, observer),
                Read::Newline => {
                    // Said once; a later write of the child's fails (EPIPE).
                    self.close_channel(slot);
                    let now = self.clock.now();
                    self.monitor.handle(now, Input::Ready { instance });
                    self.drain(now, observer);
                    return;
                }
                Read::End => {
                    self.close_channel(slot);
                    // Its end because the child ended is the exit's to tell;
                    // only a live child closing it has given up on readiness.
                    if !at_exit && !self.has_exited(slot) {
                        let now = self.clock.now();
                        self.monitor.handle(now, Input::NotReady { instance });
                        self.drain(now, observer);
                    }
                    return;
                }
            }
        }
        // Still not empty after the budget: the next turn reads on.
        if !self.unfinished_channels.contains(&slot) {
            self.unfinished_channels.push_back(slot);
        }
    }

    /// Whether the live child of `slot` has exited or is exiting (it closes
    /// its descriptors before its pidfd says it exited), or is no longer
    /// ours to ask.
    fn has_exited(&self, slot: usize) -> bool {
        self.children[slot]
            .as_ref()
            .and_then(|c| c.live.as_ref())
            .is_none_or(|live| {
                !matches!(sys::peek_exit(live.pidfd.as_fd()), Ok(None)) || sys::is_exiting(live.pid)
            })
    }

    /// One datagram on the notify socket of `slot`, whose live instance is
    /// `instance` with leader `pid`.
    fn datagram(
        &mut self,
        slot: usize,
        instance: InstanceId,
        pid: libc::pid_t,
        datagram: sys::Datagram,
        observer: &mut impl Observer,
    ) {
        self.stats.notify_datagrams += 1;
        if datagram.truncated {
            self.stats.notify_truncated += 1;
        }
        let from_child = datagram
            .sender
            .is_some_and(|sender| sender == pid || sys::session_of(sender).ok() == Some(pid));
        if !from_child {
            self.stats.notify_rejected += 1;
            return;
        }
        let message = parse(&self.buffer[..datagram.len], datagram.truncated);
        let name: Box<str> = self.children[slot]
            .as_ref()
            .expect("the caller found the child")
            .name
            .clone();
        if let Some(text) = message.status {
            let text: Box<str> = String::from_utf8_lossy(text).into();
            observer.notice(Notice::Status {
                name: &name,
                text: &text,
            });
            self.statuses.insert(name.clone(), text);
        }
        if message.stopping {
            observer.notice(Notice::Stopping { name: &name });
        }
        if message.ready {
            let now = self.clock.now();
            self.monitor.handle(now, Input::Ready { instance });
            self.drain(now, observer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_line_by_line_and_the_cut_line_is_dropped() {
        let m = parse(b"STATUS=starting\nREADY=1\nMAINPID=7\nSTATUS=up", false);
        assert_eq!(
            m,
            Message {
                ready: true,
                stopping: false,
                status: Some(b"up"),
            }
        );
        assert!(parse(b"READY=1\n", false).ready);
        assert!(!parse(b"READY=10", false).ready);
        assert!(parse(b"STOPPING=1", false).stopping);
        let cut = parse(b"READY=1\nSTATUS=a very long tex", true);
        assert!(cut.ready && cut.status.is_none());
        assert_eq!(parse(b"READY=1", true), Message::default());
    }
}
