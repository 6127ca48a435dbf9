//! Small system calls a supervising program needs beside the supervisor:
//! who is on the other end of a UNIX socket, who we are, users and groups
//! by name, signal dispositions. They live here so that the program itself
//! needs no `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The credentials of the process at the other end of a connected UNIX
/// socket, as the kernel recorded them when it connected (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Its process id.
    pub pid: i32,
    /// Its effective user id.
    pub uid: u32,
    /// Its effective group id (supplementary groups are not reported).
    pub gid: u32,
}

/// Who is connected on `socket`.
pub fn peer_credentials(socket: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `credentials` is a writable ucred and `len` its size, as
    // SO_PEERCRED requires; the kernel writes at most `len` bytes.
    let ret = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCredentials {
        pid: credentials.pid,
        uid: credentials.uid,
        gid: credentials.gid,
    })
}

/// This process's effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's effective group id.
pub fn effective_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Lets SIGPIPE end this process, as it ends any Unix filter whose reader
/// went away (`procmon ctl status | head -1`). Rust's runtime ignores it,
/// which suits procmon itself (its writer threads see EPIPE), not a client
/// that only prints.
pub fn die_on_sigpipe() {
    // SAFETY: installing the default disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Blocks every signal in the calling thread, for a helper thread that
/// must never be the one a process-directed signal is delivered to (the
/// supervisor's thread reads them from its signalfd).
pub fn block_all_signals_in_this_thread() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask only reads it.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// The uid of the user `name`, or `None` if there is no such user
/// (`getpwnam_r`).
pub fn user_id(name: &str) -> io::Result<Option<u32>> {
    lookup(name, |cname, buf| {
        // SAFETY: `passwd` is plain data; getpwnam_r fills it and points
        // `result` at it (or sets it to null) and writes only inside `buf`.
        unsafe {
            let mut entry: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                cname.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            );
            (rc, (!result.is_null()).then_some(entry.pw_uid))
        }
    })
}

/// The gid of the group `name`, or `None` if there is no such group
/// (`getgrnam_r`).
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    lookup(name, |cname, buf| {
        // SAFETY: as for getpwnam_r above.
        unsafe {
            let mut entry: libc::group = std::mem::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                cname.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            );
            (rc, (!result.is_null()).then_some(entry.gr_gid))
        }
    })
}

/// Calls a `get*nam_r` wrapper with a growing buffer: ERANGE means the
/// entry did not fit (group member lists can be long).
fn lookup(
    name: &str,
    call: impl Fn(&std::ffi::CStr, &mut [libc::c_char]) -> (libc::c_int, Option<u32>),
) -> io::Result<Option<u32>> {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return Ok(None);
    };
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        let (rc, id) = call(&cname, &mut buf);
        match rc {
            0 => return Ok(id),
            // glibc reports "no such entry" as one of these on some setups.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            rc => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

/// The descriptors procmon holds for each live child: its stdout and
/// stderr pipes and its pidfd. With procmon's own few, this is what its
/// `RLIMIT_NOFILE` is spent on.
pub const DESCRIPTORS_PER_CHILD: u64 = 3;

/// The descriptors procmon holds besides [`DESCRIPTORS_PER_CHILD`] for a
/// live child with a readiness channel (`Readiness::Notify`: its socket;
/// `Readiness::Fd`: its pipe's read end, until the child is ready).
pub const DESCRIPTORS_PER_READINESS_CHANNEL: u64 = 1;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limit
/// then, `(soft, hard)`. A supervisor needs [`DESCRIPTORS_PER_CHILD`] per
/// child, so the usual soft 1024 would stop it at about 340 children. The
/// hard limit is left alone, even for root: it is the administrator's cap
/// (systemd's `LimitNOFILE=`, `prlimit`). Children get back the limit the
/// program started with. [`Supervisor::new`](crate::Supervisor::new) raises
/// it too; call this first to know the limit, or to raise it before
/// anything else opens descriptors.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    crate::spawn::raise_open_files_limit()
}

/// The `RLIMIT_NOFILE` now, `(soft, hard)`: what a spawn that failed with
/// `EMFILE` ran into.
pub fn open_files_limit() -> io::Result<(u64, u64)> {
    crate::spawn::open_files_limit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn root_and_its_group_are_found_and_nonsense_is_not() {
        assert_eq!(user_id("root").unwrap(), Some(0));
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(user_id("no such user here").unwrap(), None);
        assert_eq!(user_id("nul\0byte").unwrap(), None);
    }

    #[test]
    fn a_socket_pair_sees_ourselves() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = peer_credentials(a.as_fd()).unwrap();
        assert_eq!(peer.pid, std::process::id() as i32);
        assert_eq!((peer.uid, peer.gid), (effective_uid(), effective_gid()));
    }

    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        let (soft, hard) = open_files_limit().unwrap();
        // Lowered first, so that the raise has something to do whatever
        // limit the tests were started with.
        let lowered = libc::rlimit {
            rlim_cur: soft.min(hard / 2).max(32.min(hard)),
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we pass.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        assert_eq!(open_files_limit().unwrap(), (lowered.rlim_cur, hard));
        assert_eq!(raise_open_files_limit().unwrap(), (hard, hard));
        assert_eq!(open_files_limit().unwrap(), (hard, hard));
    }
}
