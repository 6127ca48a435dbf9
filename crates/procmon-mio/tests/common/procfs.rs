//! What the suites learn about processes from `/proc`, and the clean-up that
//! leaves none of ours behind.

use std::time::{Duration, Instant};

/// One line of `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub pid: i32,
    pub state: char,
    pub parent: i32,
    pub session: i32,
    /// Start time, in clock ticks since boot: tells a reused pid apart.
    pub start: u64,
}

/// The stat line of `pid`, or `None` if there is no such process.
pub fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: skip past it.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3 (state); session is field 6, start time 22.
    Some(Stat {
        pid,
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every process on the system (that did not vanish while we looked).
pub fn all_processes() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(stat)
        .collect()
}

/// The pid of this test process, as the `i32` that `/proc` and libc use.
pub fn our_pid() -> i32 {
    std::process::id() as i32
}

/// Our children, zombies included.
pub fn children_of_us() -> Vec<Stat> {
    all_processes()
        .into_iter()
        .filter(|p| p.parent == our_pid())
        .collect()
}

/// Kills and reaps every child of this process until none is left. As
/// subreaper we adopt every orphan of our children's trees, so this reaches
/// whatever they left, escaped sessions included; a process whose parent is
/// us is ours, so a recycled pid is never hit.
pub fn kill_all_our_children() {
    let start = Instant::now();
    loop {
        let ours = children_of_us();
        if ours.is_empty() || start.elapsed() > Duration::from_secs(30) {
            return;
        }
        for p in ours {
            // SAFETY: kill and waitpid on our own child.
            unsafe {
                libc::kill(p.pid, libc::SIGKILL);
                libc::waitpid(p.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// A process as first seen: its pid and start time, so that a later pid
/// reuse is not mistaken for it.
#[derive(Clone, Copy, Debug)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

impl Proc {
    /// Takes note of a live process; fails the test if there is none.
    pub fn of(pid: i32) -> Proc {
        let s = stat(pid).unwrap_or_else(|| panic!("pid {pid} should be alive"));
        Proc {
            pid,
            start: s.start,
        }
    }

    /// Its stat line, if it is still this process.
    pub fn stat(self) -> Option<Stat> {
        stat(self.pid).filter(|s| s.start == self.start)
    }

    /// Neither running nor a zombie: reaped.
    pub fn gone(self) -> bool {
        self.stat().is_none()
    }
}
