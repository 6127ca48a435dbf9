//! Starting a child: everything prepared in the parent, then
//! `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` and a short, async-signal-safe
//! child that sets itself up and calls `execve`.
//!
//! # Why `clone(CLONE_VM | CLONE_VFORK)`
//!
//! It is what glibc's `posix_spawn` does, and for the same reason: the child
//! shares the parent's memory instead of copying its page tables, so the cost
//! of a spawn does not grow with the monitor's size. The parent thread is
//! suspended until the child has called `execve` or exited, which gives two
//! things for free: the child can run on a stack we lend it (one per
//! [`Spawner`], reused), and it can report why it failed by writing the
//! `errno` and the step that failed ([`SpawnStage`]) into [`ChildArgs`],
//! which the parent reads once `clone` returns. That shared word does the job of the classic close-on-exec error
//! pipe with no extra descriptors or reads.
//!
//! Sharing memory has rules, which the child follows:
//! - It allocates nothing and takes no locks: all strings, pointer arrays and
//!   the resolved path are built before `clone`, and the child only reads them.
//! - No signal handler of the parent may run in the child (it would run on the
//!   parent's memory): the parent blocks every signal around `clone`, the child
//!   resets every disposition to the default while still blocked, and only then
//!   clears its mask.
//! - Credentials are changed with raw system calls: glibc's `setuid` wrappers
//!   broadcast the change to every thread in their (shared!) thread list,
//!   which would change the parent's threads too.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::rc::Rc;
use std::sync::OnceLock;

use procmon_core::{ProcessKey, ProcessSpec, Readiness};

use crate::sys::{self, cvt};

/// Size of the stack lent to a child between `clone` and `execve`. The child
/// calls a handful of libc functions; this is ample, and a guard page below
/// it turns an overflow into a crash of the child instead of silent damage to
/// the parent's memory.
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// The step of a spawn that failed, so that a report can say what failed
/// (the program is missing, the cwd is, the user could not be set), not
/// only the `errno`, which means different things at different steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpawnStage {
    /// Finding the program (on `PATH`, as `execvp` would) or executing it
    /// (`execve`): `ENOENT` is a missing program, `EACCES` one without the
    /// right to execute it, `ENOEXEC` a file the kernel cannot run.
    Exec,
    /// procmon's own side before the child exists: building its argv and
    /// environment, its pipes, or the `clone` itself (`EMFILE`, `ENFILE`,
    /// `EAGAIN`: limits of procmon or the system).
    Prepare,
    /// Starting the child's own session (`setsid`).
    Session,
    /// Putting `/dev/null` and the pipes on the child's stdin, stdout and
    /// stderr, and a notification pipe on its readiness fd (`dup2`).
    Stdio,
    /// Changing into the process's `cwd` (`chdir`).
    Chdir,
    /// Giving the child back the descriptor limit procmon started with
    /// (`setrlimit`).
    Limits,
    /// Dropping supplementary groups before a change of user or group
    /// (`setgroups`).
    Groups,
    /// Setting the group (`setgid`).
    Group,
    /// Setting the user (`setuid`).
    User,
    /// Asking to die with procmon (`prctl(PR_SET_PDEATHSIG)`).
    ParentDeath,
    /// Unblocking signals (`sigprocmask`).
    SignalMask,
    /// After the child started: watching its pipes and pidfd.
    Watch,
}

impl SpawnStage {
    /// A short lower-case name: `"exec"`, `"chdir"`, `"setuid"`, …, the
    /// system call or step, for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            SpawnStage::Exec => "exec",
            SpawnStage::Prepare => "prepare",
            SpawnStage::Session => "setsid",
            SpawnStage::Stdio => "stdio",
            SpawnStage::Chdir => "chdir",
            SpawnStage::Limits => "setrlimit",
            SpawnStage::Groups => "setgroups",
            SpawnStage::Group => "setgid",
            SpawnStage::User => "setuid",
            SpawnStage::ParentDeath => "pdeathsig",
            SpawnStage::SignalMask => "sigmask",
            SpawnStage::Watch => "watch",
        }
    }
}

/// What a successful spawn hands back.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: libc::pid_t,
    pub(crate) pidfd: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
    /// The read end of the notification pipe of [`Readiness::Fd`]
    /// (non-blocking), whose write end the child holds at its fd `n`.
    pub(crate) notify_read: Option<OwnedFd>,
}

/// Long-lived resources for spawning: the child stack, `/dev/null`, and the
/// C strings of each definition.
#[derive(Debug)]
pub(crate) struct Spawner {
    stack: Stack,
    dev_null: OwnedFd,
    /// What each definition's spawns share, built at its first spawn: a
    /// definition with a large environment would otherwise cost a copy of
    /// every entry at every restart, on the event loop.
    prepared: HashMap<ProcessKey, Prepared>,
    /// The monitor's own environment, built once for the definitions that
    /// add nothing to it.
    inherited_env: Option<Rc<Environment>>,
    /// Only root may call `setgroups`; others keep their groups.
    is_root: bool,
    /// The descriptor limit the monitor started with, if [`raise_nofile_limit`]
    /// raised it: children get it back, as they would have had it without us.
    original_nofile: Option<libc::rlimit>,
    /// The step at which each process's last spawn failed, until its next
    /// spawn: read when the failure is reported, which the core does after
    /// the spawn and before any later spawn of the same process.
    failed_stages: HashMap<ProcessKey, SpawnStage>,
}

impl Spawner {
    pub(crate) fn new() -> io::Result<Spawner> {
        Ok(Spawner {
            stack: Stack::new(CHILD_STACK_BYTES)?,
            dev_null: sys::open_dev_null()?,
            prepared: HashMap::new(),
            inherited_env: None,
            // SAFETY: geteuid cannot fail.
            is_root: unsafe { libc::geteuid() } == 0,
            // Once per process: a second supervisor would find the limit
            // raised already and must still restore the original.
            original_nofile: *ORIGINAL_NOFILE.get_or_init(raise_nofile_limit),
            failed_stages: HashMap::new(),
        })
    }

    /// The step at which the last spawn of `process` failed:
    /// [`SpawnStage::Watch`] if the spawn itself succeeded (what failed came
    /// after, in the driver).
    pub(crate) fn failed_stage(&self, process: ProcessKey) -> SpawnStage {
        self.failed_stages
            .get(&process)
            .copied()
            .unwrap_or(SpawnStage::Watch)
    }

    /// Starts `spec`, the definition of `process`. An error is the reason the
    /// child could not start, be it found before `clone` (no such program) or
    /// reported by the child (`chdir`, `setuid`, `execve` failed); the child
    /// is then already reaped.
    ///
    /// The program is looked up on `PATH` at every spawn (it may be installed
    /// later); argv, environment (with the monitor's own environment as it is
    /// then) and `cwd` are built at the first spawn of a definition and
    /// reused while `process` names an equal one. The
    /// comparison, not the key alone, decides: a key freed by `remove` is
    /// given to the next `add`, whose definition may differ.
    ///
    /// `notify_env` is the `NOTIFY_SOCKET=...` entry of a [`Readiness::Notify`]
    /// process, added to its environment for this spawn only (each instance
    /// has a socket of its own). A [`Readiness::Fd`] process gets the write
    /// end of a fresh pipe at its descriptor `n`; the read end comes back in
    /// [`Spawned::notify_read`].
    pub(crate) fn spawn(
        &mut self,
        process: ProcessKey,
        spec: &ProcessSpec,
        notify_env: Option<&CStr>,
    ) -> io::Result<Spawned> {
        match self.try_spawn(process, spec, notify_env) {
            Ok(spawned) => {
                self.failed_stages.remove(&process);
                Ok(spawned)
            }
            Err((stage, error)) => {
                self.failed_stages.insert(process, stage);
                Err(error)
            }
        }
    }

    /// Notes that a spawn of `process` failed at `stage` before it reached
    /// [`spawn`](Self::spawn) (its readiness socket could not be made).
    pub(crate) fn failed_before(&mut self, process: ProcessKey, stage: SpawnStage) {
        self.failed_stages.insert(process, stage);
    }

    fn try_spawn(
        &mut self,
        process: ProcessKey,
        spec: &ProcessSpec,
        notify_env: Option<&CStr>,
    ) -> Result<Spawned, (SpawnStage, io::Error)> {
        let prepare = |error| (SpawnStage::Prepare, error);
        let program = spec
            .argv
            .first()
            .ok_or_else(|| prepare(io::Error::from_raw_os_error(libc::EINVAL)))?;
        let path = resolve(program).map_err(|e| (SpawnStage::Exec, e))?;
        let prepared = match self.prepared.get(&process) {
            Some(prepared) if prepared.spec == *spec => prepared,
            _ => {
                let prepared = Prepared::new(spec, &mut self.inherited_env).map_err(prepare)?;
                self.prepared.insert(process, prepared);
                &self.prepared[&process]
            }
        };
        let (stdout_read, stdout_write) = sys::pipe().map_err(prepare)?;
        let (stderr_read, stderr_write) = sys::pipe().map_err(prepare)?;
        sys::set_nonblocking(&stdout_read).map_err(prepare)?;
        sys::set_nonblocking(&stderr_read).map_err(prepare)?;
        let stdout_write = sys::above_stdio(stdout_write).map_err(prepare)?;
        let stderr_write = sys::above_stdio(stderr_write).map_err(prepare)?;
        let notify_pipe = match spec.ready {
            Readiness::Fd(n) => {
                let (read, write) = sys::pipe().map_err(prepare)?;
                sys::set_nonblocking(&read).map_err(prepare)?;
                let write = sys::above_stdio(write).map_err(prepare)?;
                // The core refuses anything outside 3..=1023.
                let target = libc::c_int::try_from(n)
                    .map_err(|_| prepare(io::Error::from_raw_os_error(libc::EBADF)))?;
                Some((read, write, target))
            }
            _ => None,
        };
        // The definition's environment with this instance's NOTIFY_SOCKET
        // added: a copy of the pointer array only, not of the strings.
        let with_notify: Option<Vec<*const libc::c_char>> = notify_env.map(|entry| {
            let shared = &prepared.env.ptrs;
            let mut ptrs = Vec::with_capacity(shared.len() + 1);
            ptrs.extend_from_slice(&shared[..shared.len() - 1]);
            ptrs.push(entry.as_ptr());
            ptrs.push(ptr::null());
            ptrs
        });

        let mut args = ChildArgs {
            path: path.as_ptr(),
            argv: prepared.argv_ptrs.as_ptr(),
            envp: with_notify
                .as_ref()
                .map_or(prepared.env.ptrs.as_ptr(), |ptrs| ptrs.as_ptr()),
            cwd: prepared.cwd.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            uid: spec.uid,
            gid: spec.gid,
            drop_groups: self.is_root && (spec.uid.is_some() || spec.gid.is_some()),
            stdin: self.dev_null.as_raw_fd(),
            stdout: stdout_write.as_raw_fd(),
            stderr: stderr_write.as_raw_fd(),
            notify_write: notify_pipe.as_ref().map_or(-1, |(_, w, _)| w.as_raw_fd()),
            notify_fd: notify_pipe.as_ref().map_or(-1, |&(_, _, n)| n),
            // SAFETY: getpid cannot fail.
            parent_pid: unsafe { libc::getpid() },
            nofile: self.original_nofile,
            errno: 0,
            stage: SpawnStage::Exec,
        };

        // Held from before the child exists until its pid is recorded, so no
        // orphan reaper can take this child for an untracked one.
        let mut tracked = sys::tracked();
        let mut pidfd: libc::c_int = -1;
        // A credential change marks the memory the child shares with us (not
        // just the child) as not dumpable; we put our own mark back after.
        let changes_credentials = spec.uid.is_some() || spec.gid.is_some();
        // SAFETY: prctl with integer arguments only.
        let dumpable = changes_credentials.then(|| unsafe { libc::prctl(libc::PR_GET_DUMPABLE) });
        let old_mask = block_all_signals();
        // SAFETY: `child_main` only touches `args` (alive until clone returns,
        // as CLONE_VFORK suspends us until the child execs or exits) and the
        // prepared strings it points to; the stack is ours and unused by
        // anyone else; CLONE_PIDFD stores the pidfd through the parent-tid
        // pointer, which points at `pidfd`.
        let pid = unsafe {
            libc::clone(
                child_main,
                self.stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
                ptr::addr_of_mut!(args).cast(),
                ptr::addr_of_mut!(pidfd),
            )
        };
        let clone_error = (pid == -1).then(io::Error::last_os_error);
        if let Some(dumpable) = dumpable.filter(|&d| d >= 0) {
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable) };
        }
        restore_signal_mask(&old_mask);
        if let Some(e) = clone_error {
            return Err(prepare(e));
        }
        // SAFETY: CLONE_PIDFD succeeded with the clone, so this is a fresh
        // close-on-exec descriptor that we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        // SAFETY: the child has exec'd or exited; volatile because the write
        // happened behind the compiler's back, in the child.
        let errno = unsafe { ptr::read_volatile(ptr::addr_of!(args.errno)) };
        if errno != 0 {
            // SAFETY: as `errno`; the child wrote the stage before it.
            let stage = unsafe { ptr::read_volatile(ptr::addr_of!(args.stage)) };
            // The child has already called _exit: reap it now so no zombie
            // is left and its pid is never tracked.
            let _ = sys::reap(pidfd.as_fd());
            return Err((stage, io::Error::from_raw_os_error(errno)));
        }
        tracked.insert(pid);
        drop(tracked);
        // Dropping our copies of the write ends leaves the child (and anything
        // it forks) as their only holders, so EOF means they are all gone.
        drop((stdout_write, stderr_write));
        let notify_read = notify_pipe.map(|(read, write, _)| {
            drop(write);
            read
        });
        Ok(Spawned {
            pid,
            pidfd,
            stdout: stdout_read,
            stderr: stderr_read,
            notify_read,
        })
    }
}

/// The descriptor limit before the first supervisor raised it.
static ORIGINAL_NOFILE: OnceLock<Option<libc::rlimit>> = OnceLock::new();

/// Raises the descriptor limit as [`raise_nofile_limit`] does, having kept
/// the limit it started with for children (once per process, whoever calls
/// first: this or the first [`Spawner`]); the limit is then `(soft, hard)`.
/// Raising again is harmless, and undoes a lowering since the first call.
pub(crate) fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    ORIGINAL_NOFILE.get_or_init(raise_nofile_limit);
    raise_nofile_limit();
    open_files_limit()
}

/// The descriptor limit now, `(soft, hard)`.
pub(crate) fn open_files_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft limit on open descriptors to the hard limit and returns
/// the old one if it changed. Each child costs the monitor three descriptors
/// (two pipes and a pidfd), so the common soft limit of 1024 would cap a
/// monitor at about 340 children; the hard limit is what the administrator
/// meant to allow. The Go runtime does the same, for the same reason.
///
/// The hard limit stays as it is, even for root, who could raise it to
/// `/proc/sys/fs/nr_open`: it is the administrator's word (systemd's
/// `LimitNOFILE=`, `prlimit`, `ulimit -H`), and a supervisor that overrode it
/// would leave no way to cap one.
fn raise_nofile_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur >= limit.rlim_max
    {
        return None;
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    (unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0).then_some(limit)
}

impl Spawner {
    /// Forgets what was built for definitions that `keep` no longer wants
    /// (removed ones), so the cache holds no more than the monitor does.
    pub(crate) fn forget_prepared(&mut self, mut keep: impl FnMut(ProcessKey) -> bool) {
        self.prepared.retain(|&process, _| keep(process));
        self.failed_stages.retain(|&process, _| keep(process));
    }
}

/// What every spawn of one definition shares, as C data, built before
/// `clone`. The pointer arrays point into the `CString`s' heap buffers, which
/// stay put when a `Prepared` moves.
struct Prepared {
    /// The definition this was built from, to tell whether it still applies.
    spec: ProcessSpec,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    /// Shared by every definition that only inherits the monitor's own
    /// environment: one copy for 10,000 such processes instead of 10,000.
    env: Rc<Environment>,
    cwd: Option<CString>,
}

/// An environment as `execve` takes it: the strings, and the
/// null-terminated array of pointers into them.
struct Environment {
    _entries: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the entries: there may be tens of thousands.
        f.debug_struct("Environment")
            .field("entries", &self.ptrs.len().saturating_sub(1))
            .finish()
    }
}

impl Environment {
    fn new(entries: Vec<CString>) -> Environment {
        Environment {
            ptrs: null_terminated(&entries),
            _entries: entries,
        }
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the environment: it may hold tens of thousands of entries.
        f.debug_struct("Prepared")
            .field("argv", &self.spec.argv)
            .field(
                "environment_entries",
                &self.env.ptrs.len().saturating_sub(1),
            )
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// `inherited` is the monitor's own environment, built at most once and
    /// shared by every definition that adds nothing to it.
    fn new(spec: &ProcessSpec, inherited: &mut Option<Rc<Environment>>) -> io::Result<Prepared> {
        let argv = spec
            .argv
            .iter()
            .map(|a| c_string(a.clone()))
            .collect::<io::Result<Vec<_>>>()?;
        let env = if spec.env.is_empty() && !spec.clear_env {
            match inherited {
                Some(shared) => shared.clone(),
                None => inherited
                    .insert(Rc::new(Environment::new(environment(spec)?)))
                    .clone(),
            }
        } else {
            Rc::new(Environment::new(environment(spec)?))
        };
        let cwd = spec.cwd.clone().map(c_string).transpose()?;
        Ok(Prepared {
            spec: spec.clone(),
            argv_ptrs: null_terminated(&argv),
            _argv: argv,
            env,
            cwd,
        })
    }
}

fn c_string(bytes: Vec<u8>) -> io::Result<CString> {
    // The core refuses NUL bytes in definitions; EINVAL is the OS's word for it.
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// The name of the sd_notify socket's environment variable.
pub(crate) const NOTIFY_SOCKET: &[u8] = b"NOTIFY_SOCKET";

/// The environment: the monitor's own (in its order) plus the spec's entries
/// (which win), or with `clear_env` exactly the spec's entries. The
/// monitor's own `NOTIFY_SOCKET` is never passed on; a
/// [`Readiness::Notify`] process's own entry for it is dropped too, as each
/// spawn adds the one of its instance. Within the
/// spec a later entry for the same key wins, in the place of that last entry.
///
/// Linear in the number of entries: one map from each spec key to its last
/// place answers both "is this key overridden" and "is this its last entry"
/// (a scan for each entry made 50,000 entries cost seconds per spawn).
fn environment(spec: &ProcessSpec) -> io::Result<Vec<CString>> {
    let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(spec.env.len());
    for (i, (key, _)) in spec.env.iter().enumerate() {
        last.insert(key, i);
    }
    let mut entries = Vec::with_capacity(last.len());
    if !spec.clear_env {
        for (key, value) in std::env::vars_os() {
            // The monitor's own channel to its service manager is not the
            // children's: a child that should notify gets its own.
            if last.contains_key(key.as_bytes()) || key.as_bytes() == NOTIFY_SOCKET {
                continue;
            }
            entries.push(entry(key.as_bytes(), value.as_bytes())?);
        }
    }
    let notifies = spec.ready == Readiness::Notify;
    for (i, (key, value)) in spec.env.iter().enumerate() {
        if notifies && key == NOTIFY_SOCKET {
            continue;
        }
        if last[key.as_slice()] == i {
            entries.push(entry(key, value)?);
        }
    }
    Ok(entries)
}

fn entry(key: &[u8], value: &[u8]) -> io::Result<CString> {
    let mut bytes = Vec::with_capacity(key.len() + 1 + value.len() + 1);
    bytes.extend_from_slice(key);
    bytes.push(b'=');
    bytes.extend_from_slice(value);
    c_string(bytes)
}

/// Finds the program as `execvp` would: a name with a `/` is used as it is;
/// otherwise the first regular file with an execute bit in the monitor's
/// `PATH` (an empty entry is the current directory). Done in the parent so
/// the child makes a single `execve`; a miss is `ENOENT`, or `EACCES` if only
/// files without an execute bit were found, without starting a child.
fn resolve(program: &[u8]) -> io::Result<CString> {
    if program.contains(&b'/') {
        return c_string(program.to_vec());
    }
    let path = std::env::var_os("PATH");
    let path = path
        .as_ref()
        .map_or(b"/usr/local/bin:/usr/bin:/bin".as_slice(), |p| p.as_bytes());
    let mut denied = false;
    let mut candidate = Vec::new();
    for dir in path.split(|&b| b == b':') {
        candidate.clear();
        candidate.extend_from_slice(if dir.is_empty() { b"." } else { dir });
        candidate.push(b'/');
        candidate.extend_from_slice(program);
        let Ok(meta) = std::fs::metadata(OsStr::from_bytes(&candidate)) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            denied = true;
            continue;
        }
        return c_string(candidate);
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

/// Finds `program` on `PATH` exactly as a spawn will (the same search as the spawn's own `resolve`):
/// the path it would run, or `ENOENT` (not found) or `EACCES` (found, but
/// not executable). For a program that wants to refuse a command that can
/// never start before it starts anything.
pub fn find_program(program: &OsStr) -> io::Result<std::path::PathBuf> {
    let found = resolve(program.as_bytes())?;
    Ok(std::path::PathBuf::from(OsStr::from_bytes(
        found.as_bytes(),
    )))
}

/// What the child reads (and, on failure, writes `errno` and its stage into).
struct ChildArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Null: stay in the monitor's directory.
    cwd: *const libc::c_char,
    uid: Option<u32>,
    gid: Option<u32>,
    drop_groups: bool,
    stdin: libc::c_int,
    stdout: libc::c_int,
    stderr: libc::c_int,
    /// The write end of the notification pipe, or -1.
    notify_write: libc::c_int,
    /// Where the child gets it ([`Readiness::Fd`]'s `n`), or -1.
    notify_fd: libc::c_int,
    parent_pid: libc::pid_t,
    /// The descriptor limit to give back, if the monitor raised its own.
    nofile: Option<libc::rlimit>,
    /// Zero unless the child failed; then why.
    errno: libc::c_int,
    /// The step that failed, when `errno` is not zero.
    stage: SpawnStage,
}

/// The child, from `clone` to `execve`. Runs on the lent stack in the
/// parent's memory: only async-signal-safe calls, no allocation, no panics.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    let args = arg.cast::<ChildArgs>();
    // SAFETY: `arg` is the `ChildArgs` the suspended parent passed to clone.
    let (stage, errno) = unsafe { set_up_and_exec(&*args) };
    // SAFETY: the parent reads these after we exit; nothing else touches
    // them.
    unsafe {
        ptr::write_volatile(ptr::addr_of_mut!((*args).stage), stage);
        ptr::write_volatile(ptr::addr_of_mut!((*args).errno), errno);
    }
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong
    // to the parent whose memory we share.
    unsafe { libc::_exit(127) }
}

/// Sets the child up and execs; returns only with the step that failed and
/// its `errno`.
///
/// # Safety
/// Only in the child of `clone(CLONE_VM | CLONE_VFORK)`, with every signal blocked.
unsafe fn set_up_and_exec(args: &ChildArgs) -> (SpawnStage, libc::c_int) {
    macro_rules! check {
        ($stage:ident, $call:expr) => {
            if $call == -1 {
                return (SpawnStage::$stage, *libc::__errno_location());
            }
        };
    }
    // Default dispositions (an ignored signal would stay ignored across
    // execve), set while all signals are still blocked. SIGKILL and SIGSTOP
    // cannot be changed; glibc refuses its internal signals; both are fine.
    let mut default: libc::sigaction = std::mem::zeroed();
    default.sa_sigaction = libc::SIG_DFL;
    for signal in 1..libc::SIGRTMAX() + 1 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            libc::sigaction(signal, &default, ptr::null_mut());
        }
    }
    // Its own session and process group, so a stop can signal the whole tree
    // with killpg and no terminal signal of ours reaches it.
    check!(Session, libc::setsid());
    // The parent moved these above 2, so no dup2 overwrites another's source;
    // dup2 clears close-on-exec on the copies.
    check!(Stdio, libc::dup2(args.stdin, 0));
    check!(Stdio, libc::dup2(args.stdout, 1));
    check!(Stdio, libc::dup2(args.stderr, 2));
    // Every descriptor is close-on-exec already, but the monitor may itself
    // have inherited some that are not; none of them is the child's business.
    // (close_range came in Linux 5.9 and CLOSE_RANGE_CLOEXEC in 5.11; before,
    // it fails and close-on-exec alone does the job.)
    libc::syscall(
        libc::SYS_close_range,
        3,
        libc::c_uint::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    );
    // The notification fd after that, so it stays open across execve (dup2
    // clears close-on-exec on the copy; a descriptor already in place needs
    // it cleared by hand, as dup2 onto itself changes nothing). Whatever the
    // target held before (a source of the dup2s above, say) is used up.
    if args.notify_write >= 0 {
        if args.notify_write == args.notify_fd {
            check!(Stdio, libc::fcntl(args.notify_fd, libc::F_SETFD, 0));
        } else {
            check!(Stdio, libc::dup2(args.notify_write, args.notify_fd));
        }
    }
    if !args.cwd.is_null() {
        check!(Chdir, libc::chdir(args.cwd));
    }
    // Before setuid, which may remove the right to set it.
    if let Some(limit) = &args.nofile {
        check!(Limits, libc::setrlimit(libc::RLIMIT_NOFILE, limit));
    }
    // Groups first, then the gid, then the uid: after setuid we could no
    // longer change the others. Raw syscalls: see the module docs.
    if args.drop_groups {
        check!(
            Groups,
            libc::syscall(libc::SYS_setgroups, 0, ptr::null::<libc::gid_t>()) as libc::c_int
        );
    }
    if let Some(gid) = args.gid {
        check!(Group, libc::syscall(libc::SYS_setgid, gid) as libc::c_int);
    }
    if let Some(uid) = args.uid {
        check!(User, libc::syscall(libc::SYS_setuid, uid) as libc::c_int);
    }
    // If the monitor dies, so does the child; then close the race where the
    // parent died before the prctl took effect. After the credentials, whose
    // change resets the parent-death signal.
    check!(
        ParentDeath,
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0)
    );
    if libc::getppid() != args.parent_pid {
        libc::_exit(127);
    }
    // The monitor blocks signals it reads through a signalfd; the child starts
    // with none blocked.
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    check!(
        SignalMask,
        libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut())
    );
    libc::execve(args.path, args.argv, args.envp);
    (SpawnStage::Exec, *libc::__errno_location())
}

/// Blocks every signal in this thread, glibc's two internal ones included
/// (its `sigfillset` leaves them out and its wrappers refuse them, hence the
/// raw syscall and a mask of all ones), and returns the previous mask.
fn block_all_signals() -> libc::sigset_t {
    // SAFETY: the kernel's sigset is the first 8 bytes of glibc's larger
    // sigset_t, written as one u64; rt_sigprocmask reads `all` and fills
    // `old` (8 bytes: the kernel's sigset size; it ignores SIGKILL/SIGSTOP).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        ptr::write_unaligned(ptr::addr_of_mut!(all).cast::<u64>(), u64::MAX);
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const libc::sigset_t,
            &mut old as *mut libc::sigset_t,
            8,
        );
        old
    }
}

fn restore_signal_mask(old: &libc::sigset_t) {
    // SAFETY: `old` came from block_all_signals.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            old as *const libc::sigset_t,
            ptr::null_mut::<libc::sigset_t>(),
            8,
        );
    }
}

/// An mmap'd stack with a guard page below it.
#[derive(Debug)]
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

impl Stack {
    fn new(usable: usize) -> io::Result<Stack> {
        // SAFETY: sysconf cannot fail for _SC_PAGESIZE.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = usable.next_multiple_of(page) + page;
        // SAFETY: an anonymous private mapping at an address of the kernel's choice.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of our own mapping becomes the guard page.
        cvt(unsafe { libc::mprotect(base, page, libc::PROT_NONE) })?;
        Ok(stack)
    }

    /// The initial stack pointer: the stack grows down from the end.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our mapping, page-aligned (so 16-aligned).
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; no child runs on it
        // (CLONE_VFORK returns only after the child stopped using it).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_that_add_nothing_share_one_environment() {
        let mut inherited = None;
        let a = Prepared::new(&ProcessSpec::new(["a"]), &mut inherited).unwrap();
        let b = Prepared::new(&ProcessSpec::new(["b"]), &mut inherited).unwrap();
        assert!(Rc::ptr_eq(&a.env, &b.env), "one copy for both");
        let own =
            Prepared::new(&ProcessSpec::new(["c"]).with_env("K", "v"), &mut inherited).unwrap();
        assert!(!Rc::ptr_eq(&a.env, &own.env));
        let cleared = Prepared::new(
            &ProcessSpec::new(["d"]).with_clear_env(true),
            &mut inherited,
        )
        .unwrap();
        assert_eq!(cleared.env.ptrs.len(), 1, "only the terminating null");
    }
}
