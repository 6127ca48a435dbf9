//! Helpers shared by the `procmon` binary's test files.

pub mod served;

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of the test's own under the system's temp dir, removed when
/// dropped (a failed test included).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "procmon-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Where `name` would be inside the directory.
    pub fn path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` inside the directory; gives its path.
    pub fn write(&self, name: impl AsRef<Path>, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `procmon` binary with `args`, stdin on /dev/null, in a process group
/// of its own (so that a test can kill all it started at once).
///
/// Each gets a control socket path of its own (`PROCMON_SOCKET`), so that
/// tests running at once with `--config` (which serves the socket by
/// default) do not find each other there.
pub fn procmon<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_procmon"));
    command
        .args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .env("PROCMON_SOCKET", fresh_socket_path());
    command
}

/// A socket path no other test uses, in a directory of this test run's.
pub fn fresh_socket_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir()
        .join(format!("procmon-test-sockets-{}", std::process::id()))
        .join(format!("{}.sock", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// Ends a procmon this test started in a process group of its own: TERM to
/// the group, up to 20 s for it to stop its children and exit, then KILL to
/// whatever is left; a test that failed halfway leaves nothing behind.
pub fn stop_group(child: &mut std::process::Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let group = child.id() as i32;
    // SAFETY: plain syscalls on the group this test started.
    unsafe { libc::killpg(group, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::killpg(group, libc::SIGKILL) };
    let _ = child.wait();
}

/// Why `unshare` cannot make a PID namespace with its own /proc here, if it
/// cannot.
// Not every test file runs procmon as PID 1.
#[allow(dead_code)]
pub fn no_pid_namespace() -> Option<String> {
    let tried = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    match tried {
        Err(error) => Some(format!("unshare: {error}")),
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "unshare {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}
