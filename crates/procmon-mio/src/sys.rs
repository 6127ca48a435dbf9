//! Thin, checked wrappers over the Linux calls the driver makes.
//!
//! Every `unsafe` block in the parent's side of the driver lives here or in
//! `spawn.rs`; each wrapper turns the C convention (-1 and `errno`) into an
//! `io::Result` so the callers read as ordinary Rust.

use std::collections::BTreeSet;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

use procmon_core::ExitStatus;

/// Turns a C return value into a result, reading `errno` on -1.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`] for `syscall(2)`, which returns a `c_long`.
fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A pipe, both ends close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets `O_NONBLOCK` on one end only: the flag lives on the open file
/// description, and the child's end must stay blocking.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no pointers involved.
    unsafe {
        let flags = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        cvt(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        ))?;
    }
    Ok(())
}

/// Moves a descriptor that the child will `dup2` onto 0, 1 or 2 out of that
/// range, so that one `dup2` can never overwrite the source of another (which
/// happens when the monitor itself runs with a standard stream closed).
pub(crate) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one.
    let new = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `new` is a fresh descriptor owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Opens `/dev/null` for reading, close-on-exec: every child's stdin.
pub(crate) fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated literal path; open returns a fresh descriptor.
    let fd = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: open succeeded, the descriptor is ours alone.
    above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether any process still holds the write end of the pipe whose read
/// end is `fd`. A pipe's read end polls as hung up once its last writer is
/// gone, even while it still holds data: so this tells "held open" from
/// "not read yet" without reading.
pub(crate) fn pipe_has_writers(fd: RawFd) -> bool {
    let mut poll_fd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd of our own, a zero timeout.
    let ready = unsafe { libc::poll(&mut poll_fd, 1, 0) };
    // An error (EINTR, ENOMEM) is no proof that the writers are gone.
    ready == -1 || poll_fd.revents & libc::POLLHUP == 0
}

/// The session id of process `pid` (`getsid`); fails with `ESRCH` once it
/// is gone (reaped).
pub(crate) fn session_of(pid: libc::pid_t) -> io::Result<libc::pid_t> {
    // SAFETY: plain integer argument.
    cvt(unsafe { libc::getsid(pid) })
}

/// Whether process `pid` has begun to exit (`PF_EXITING` in the flags of
/// `/proc/<pid>/stat`), or is gone: the kernel sets the flag first thing in
/// `do_exit`, before it closes the process's descriptors, so the end of a
/// pipe the process held is known for a consequence of its exit even while
/// its pidfd does not say so yet. `false` if `/proc` cannot tell.
pub(crate) fn is_exiting(pid: libc::pid_t) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        // Gone, if /proc is there to say so.
        return std::path::Path::new("/proc/self/stat").exists();
    };
    // The command name is in parentheses and may hold anything: skip it.
    let Some(end) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    // After it: state (field 3), ppid, pgrp, session, tty, tpgid, flags (9).
    let flags = stat[end + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(6)
        .and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok());
    flags.is_some_and(|flags| flags & PF_EXITING != 0)
}

/// Makes the kernel attach the sender's credentials (`SCM_CREDENTIALS`) to
/// every datagram `socket` receives, whether or not the sender sent them.
pub(crate) fn pass_credentials(socket: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a readable int and its size is given.
    cvt(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Descriptors a datagram may carry (`SCM_RIGHTS`, as `sd_notify_barrier`
/// and `FDSTORE=1` send) that are received and closed at once; the kernel
/// closes any beyond these itself.
const PASSED_FDS: usize = 16;

/// One datagram received by [`receive_datagram`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Datagram {
    /// Bytes in the buffer.
    pub(crate) len: usize,
    /// The datagram was longer than the buffer; the rest is lost.
    pub(crate) truncated: bool,
    /// The sender's pid from `SCM_CREDENTIALS`, if the kernel gave one.
    pub(crate) sender: Option<libc::pid_t>,
}

/// Receives one datagram into `buf` without blocking, with the sender's
/// credentials (see [`pass_credentials`]); `None` when none is queued.
/// Descriptors passed with it are closed: a notification socket keeps none,
/// and closing them is what completes an `sd_notify_barrier`.
pub(crate) fn receive_datagram(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<Datagram>> {
    // u64 words keep the control buffer aligned for `cmsghdr`.
    const CONTROL_WORDS: usize = 64;
    // SAFETY: CMSG_SPACE only computes a size.
    let needed = unsafe {
        libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as u32)
            + libc::CMSG_SPACE((PASSED_FDS * std::mem::size_of::<libc::c_int>()) as u32)
    } as usize;
    debug_assert!(needed <= CONTROL_WORDS * 8);
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let received = nonblocking(|| {
        // SAFETY: `msg` points at `iov` (our buffer) and `control`, both
        // alive and writable for the call, with their lengths.
        unsafe {
            libc::recvmsg(
                socket.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        }
    })?;
    let Some(n) = received else {
        return Ok(None);
    };
    let mut sender = None;
    // SAFETY: the kernel filled `control` up to `msg_controllen`; the
    // CMSG_* macros walk only within it, and each payload is read
    // unaligned at the size its header gives.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let data = libc::CMSG_DATA(cmsg);
            let payload = header.cmsg_len as usize - libc::CMSG_LEN(0) as usize;
            if header.cmsg_level == libc::SOL_SOCKET {
                if header.cmsg_type == libc::SCM_CREDENTIALS
                    && payload >= std::mem::size_of::<libc::ucred>()
                {
                    let credentials = std::ptr::read_unaligned(data.cast::<libc::ucred>());
                    sender = Some(credentials.pid);
                } else if header.cmsg_type == libc::SCM_RIGHTS {
                    let count = payload / std::mem::size_of::<libc::c_int>();
                    for i in 0..count {
                        let fd = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                        drop(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Some(Datagram {
        len: n,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        sender,
    }))
}

/// Makes a non-blocking, read-like call (-1 and `errno` on failure): its
/// count, or `None` when it would block; an interrupted call is made again.
fn nonblocking(mut call: impl FnMut() -> isize) -> io::Result<Option<usize>> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// Creates a fresh directory `<base>/procmon-XXXXXX` with mode 0700
/// (`mkdtemp`) and returns its path.
pub(crate) fn private_directory(base: &std::path::Path) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut template = base.as_os_str().as_bytes().to_vec();
    template.extend_from_slice(b"/procmon-XXXXXX\0");
    if template[..template.len() - 1].contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `template` is a writable, NUL-terminated buffer that mkdtemp
    // rewrites in place (its last six characters before the NUL).
    let ret = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if ret.is_null() {
        return Err(io::Error::last_os_error());
    }
    template.pop();
    Ok(std::ffi::OsString::from_vec(template).into())
}

/// Sends `signal` to the process behind `pidfd`: cannot hit a recycled pid.
pub(crate) fn pidfd_send_signal(pidfd: &OwnedFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal(fd, sig, NULL, 0) takes no memory from us.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// Sends `signal` to every process in group `pgid`. Callers only name the
/// group of a leader they have not reaped: its pid, and with it the group
/// id, cannot be reused while the leader or its zombie exists.
pub(crate) fn killpg(pgid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::killpg(pgid, signal) })?;
    Ok(())
}

/// Waits on children with `waitid`, retrying `EINTR`; `None` when `WNOHANG`
/// found nothing to report.
fn waitid(
    idtype: libc::idtype_t,
    id: libc::id_t,
    options: libc::c_int,
) -> io::Result<Option<(libc::pid_t, ExitStatus)>> {
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: `info` is a writable siginfo_t; zeroed first so that
        // `si_pid` reads 0 when WNOHANG finds nothing (waitid(2)).
        let ret = unsafe { libc::waitid(idtype, id, info.as_mut_ptr(), options) };
        match cvt(ret) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        // SAFETY: zero-initialised and possibly filled in by the kernel.
        let info = unsafe { info.assume_init() };
        // SAFETY: for waitid results the siginfo holds the SIGCHLD fields.
        let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        let status = if code == libc::CLD_EXITED {
            ExitStatus::Code(status)
        } else {
            ExitStatus::Signal(status)
        };
        return Ok(Some((pid, status)));
    }
}

/// How the child behind `pidfd` ended if it has, leaving it a zombie
/// (`WNOWAIT`) so its pid and process group stay pinned. An error (`ECHILD`)
/// means it is no longer ours to wait for: someone else reaped it.
pub(crate) fn peek_exit(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitStatus>> {
    Ok(waitid(
        libc::P_PIDFD,
        pidfd.as_raw_fd() as libc::id_t,
        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
    )?
    .map(|(_, status)| status))
}

/// Reaps the child behind `pidfd`, waiting for it to exit. Through the
/// pidfd, not the pid: if someone else reaped it and the pid was reused by
/// another child of ours, this cannot wait for that one or steal its status.
pub(crate) fn reap(pidfd: BorrowedFd<'_>) -> io::Result<ExitStatus> {
    let reaped = waitid(
        libc::P_PIDFD,
        pidfd.as_raw_fd() as libc::id_t,
        libc::WEXITED,
    )?;
    Ok(reaped.expect("a blocking waitid returns a child").1)
}

/// Reaps child `pid` if it has exited, ignoring errors: for orphans.
pub(crate) fn reap_if_exited(pid: libc::pid_t) {
    let _ = waitid(
        libc::P_PID,
        pid as libc::id_t,
        libc::WEXITED | libc::WNOHANG,
    );
}

/// The pid of some exited child, left unreaped.
pub(crate) fn peek_any_exited() -> Option<libc::pid_t> {
    // ECHILD (no children at all) and "none exited" both mean nothing to do.
    waitid(
        libc::P_ALL,
        0,
        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
    )
    .ok()
    .flatten()
    .map(|(pid, _)| pid)
}

/// Pids of the children that some `Supervisor` in this process tracks through
/// a pidfd. The orphan reaper is process-wide (any child may be reaped with
/// `waitpid`), so it must not steal a status that a pidfd path will reap: a
/// supervisor holds this lock while it creates a child and registers its pid,
/// and while it reaps and forgets one, so the reaper never sees a tracked
/// zombie as untracked.
static TRACKED: Mutex<BTreeSet<libc::pid_t>> = Mutex::new(BTreeSet::new());

/// Locks [`TRACKED`]; a panic elsewhere cannot leave the set inconsistent
/// (each change is one insert or remove), so poisoning is ignored.
pub(crate) fn tracked() -> MutexGuard<'static, BTreeSet<libc::pid_t>> {
    TRACKED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes this process a child subreaper: orphans of our children's trees are
/// re-parented to us rather than to init, so nothing escapes reaping.
pub(crate) fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })?;
    Ok(())
}

/// Blocks `signals` in this thread; gives the set and the mask before.
pub(crate) fn block_signals(
    signals: &[libc::c_int],
) -> io::Result<(libc::sigset_t, libc::sigset_t)> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old_mask = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises `set`; sigaddset writes into it;
    // pthread_sigmask fills `old_mask` (it returns the error, not -1).
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &signal in signals {
            libc::sigaddset(set.as_mut_ptr(), signal);
        }
        let err = libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old_mask.as_mut_ptr());
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        Ok((set.assume_init(), old_mask.assume_init()))
    }
}

/// Makes the kernel keep exited children for us to wait for. An ignored
/// SIGCHLD (which survives `execve`, so a parent can hand it down) or a
/// handler with `SA_NOCLDWAIT` makes it reap them itself: every exit status
/// would be lost, and with it the zombie that keeps a pid and group id ours
/// until we are done signalling them. Resets the first to the default and
/// clears the flag from the second.
pub(crate) fn keep_child_statuses() -> io::Result<()> {
    // SAFETY: sigaction reads and fills plain structs we own; no handler of
    // ours is installed (a foreign handler is kept as it was).
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        cvt(libc::sigaction(
            libc::SIGCHLD,
            std::ptr::null(),
            &mut current,
        ))?;
        let ignored = current.sa_sigaction == libc::SIG_IGN;
        if !ignored && current.sa_flags & libc::SA_NOCLDWAIT == 0 {
            return Ok(());
        }
        if ignored {
            current = std::mem::zeroed();
            current.sa_sigaction = libc::SIG_DFL;
        } else {
            current.sa_flags &= !libc::SA_NOCLDWAIT;
        }
        cvt(libc::sigaction(
            libc::SIGCHLD,
            &current,
            std::ptr::null_mut(),
        ))?;
    }
    Ok(())
}

/// A signalfd for a set of signals blocked in the creating thread; restores
/// that thread's previous mask when dropped.
pub(crate) struct SignalFd {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl SignalFd {
    /// Blocks `signals` in this thread and opens a non-blocking signalfd on them.
    pub(crate) fn new(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        let (set, old_mask) = block_signals(signals)?;
        // SAFETY: `set` is initialised; signalfd(-1, ..) creates a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        let fd = match cvt(fd) {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: restoring the mask we saved above.
                unsafe {
                    libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut())
                };
                return Err(e);
            }
        };
        Ok(SignalFd {
            // SAFETY: signalfd succeeded; the descriptor is ours alone.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            old_mask,
        })
    }

    /// The descriptor, for registering with the poll.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next pending signal number, `None` once none is pending.
    pub(crate) fn read(&self) -> io::Result<Option<libc::c_int>> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading at most `size` bytes into a buffer of that size.
        let read = nonblocking(|| unsafe {
            libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size)
        })?;
        let Some(n) = read else {
            return Ok(None);
        };
        // A signalfd read returns whole records only.
        assert_eq!(n, size, "signalfd returns whole records");
        // SAFETY: the kernel filled the whole record.
        let info = unsafe { info.assume_init() };
        Ok(Some(info.ssi_signo as libc::c_int))
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved at creation.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}
