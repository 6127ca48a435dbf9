//! The child table: which children exist, by slot, from the spawn that
//! takes one into the poll to the exit that takes it out, and signalling
//! their process groups.
//!
//! A slot outlives its child: it is freed only once the child is reaped and
//! both its pipes are closed (see [`crate::pipes`]), and it names the poll
//! tokens of all its descriptors (pidfd, pipes, readiness channel). Keeping
//! that bookkeeping here, apart from reading and the loop, means that the
//! one rule it guards (a group is signalled only while its leader is
//! unreaped, so its id is pinned) is checked in one place.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use mio::unix::pipe::Receiver;
use mio::unix::SourceFd;
use mio::{Interest, Token};
use procmon_core::{ExitStatus, Input, InstanceId, LineBuffer, ProcessKey, Signal, Stream};

use crate::pipes::Pipe;
use crate::readiness::{self, Channel, NotifySocket};
use crate::{spawn, sys, Notice, Observer, Supervisor};

/// One spawned child, until it is reaped and its pipes are closed.
pub(crate) struct Child {
    pub(crate) name: Box<str>,
    /// Its definition, whose next instance may get its readiness socket.
    pub(crate) process: ProcessKey,
    /// The leader's pid, kept after it is reaped to name the instance.
    pub(crate) pid: libc::pid_t,
    /// `None` once reaped.
    pub(crate) live: Option<Live>,
    pub(crate) stdout: Option<Pipe>,
    pub(crate) stderr: Option<Pipe>,
    /// Its readiness channel ([`crate::readiness`]), until it has said
    /// what it had to say or the child is reaped.
    pub(crate) readiness: Option<Channel>,
}

pub(crate) struct Live {
    pub(crate) instance: InstanceId,
    pub(crate) pid: libc::pid_t,
    pub(crate) pidfd: OwnedFd,
}

impl Child {
    pub(crate) fn pipe(&mut self, stream: Stream) -> &mut Option<Pipe> {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }
}

/// What a poll token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Exit = 0,
    Stdout = 1,
    Stderr = 2,
    Readiness = 3,
}

/// The low bits of a token that name its role: children's 0 to 3,
/// registered sources' [`sources::ROLE`](crate::sources::ROLE).
pub(crate) const ROLE_BITS: u32 = 3;
pub(crate) const ROLE_MASK: usize = (1 << ROLE_BITS) - 1;

pub(crate) fn token(slot: usize, role: Role) -> Token {
    Token(slot << ROLE_BITS | role as usize)
}

pub(crate) fn decode(token: Token) -> Option<(usize, Role)> {
    let role = match token.0 & ROLE_MASK {
        0 => Role::Exit,
        1 => Role::Stdout,
        2 => Role::Stderr,
        3 => Role::Readiness,
        _ => return None,
    };
    Some((token.0 >> ROLE_BITS, role))
}

impl Supervisor {
    /// The pid of a live instance, if it is running.
    pub fn pid(&self, instance: InstanceId) -> Option<i32> {
        let slot = *self.by_instance.get(&instance)?;
        self.children[slot]
            .as_ref()
            .and_then(|c| c.live.as_ref())
            .map(|l| l.pid)
    }

    /// Sends SIGKILL to every live child's process group now, behind the
    /// monitor's back: only for `Drop`, when no monitor is left to tell.
    /// A program that wants everything killed asks the monitor
    /// (`Monitor::kill_all` through [`Supervisor::call`]), which then knows
    /// what was sent and leaves no KILL timer armed.
    pub(crate) fn kill_all(&mut self) {
        for live in self
            .children
            .iter()
            .flatten()
            .filter_map(|c| c.live.as_ref())
        {
            kill_group(live, libc::SIGKILL, false);
        }
    }

    pub(crate) fn spawn(
        &mut self,
        process: ProcessKey,
        instance: InstanceId,
        observer: &mut impl Observer,
    ) {
        let spec = self
            .monitor
            .spec(process)
            .expect("keys in drained commands stay valid until the next mutating call");
        // A new instance starts with no status of its own.
        if !self.statuses.is_empty() {
            let name = self.monitor.name(process).unwrap_or_default();
            self.statuses.remove(name);
        }
        let prepared = readiness::prepare(
            &mut self.notify_directory,
            &mut self.idle_sockets,
            process,
            spec,
        );
        let spawned = match prepared {
            Ok(socket) => {
                let entry = socket.as_ref().map(NotifySocket::entry);
                match self.spawner.spawn(process, spec, entry) {
                    Ok(spawned) => Ok((spawned, socket)),
                    Err(e) => {
                        // Kept for the next try, as after an exit.
                        if let Some(socket) = socket {
                            self.idle_sockets.park(process, socket);
                        }
                        Err(e)
                    }
                }
            }
            Err(e) => {
                self.spawner
                    .failed_before(process, spawn::SpawnStage::Prepare);
                Err(e)
            }
        };
        let spawned = spawned
            .and_then(|(spawned, socket)| self.register_child(process, instance, spawned, socket));
        match spawned {
            Ok(pid) => observer.notice(Notice::Spawned {
                name: self.name(process),
                pid,
            }),
            Err(e) => self
                .failed_spawns
                .push_back((instance, e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }

    /// Takes a new child into the poll and the tables.
    fn register_child(
        &mut self,
        process: ProcessKey,
        instance: InstanceId,
        spawned: spawn::Spawned,
        socket: Option<NotifySocket>,
    ) -> io::Result<i32> {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.children.push(None);
            self.children.len() - 1
        });
        let mut stdout = Receiver::from(spawned.stdout);
        let mut stderr = Receiver::from(spawned.stderr);
        let readiness = match (socket, spawned.notify_read) {
            (Some(socket), _) => Some(Channel::Notify(socket)),
            (None, Some(read)) => Some(Channel::Fd(read.into())),
            (None, None) => None,
        };
        let registry = self.poll.registry();
        let registered = registry
            .register(
                &mut SourceFd(&spawned.pidfd.as_raw_fd()),
                token(slot, Role::Exit),
                Interest::READABLE,
            )
            .and_then(|()| {
                registry.register(&mut stdout, token(slot, Role::Stdout), Interest::READABLE)
            })
            .and_then(|()| {
                registry.register(&mut stderr, token(slot, Role::Stderr), Interest::READABLE)
            })
            .and_then(|()| match &readiness {
                Some(channel) => self.register_channel(slot, channel),
                None => Ok(()),
            });
        let live = Live {
            instance,
            pid: spawned.pid,
            pidfd: spawned.pidfd,
        };
        if let Err(e) = registered {
            // Without a registration we would never see it exit: undo it all.
            kill_group(&live, libc::SIGKILL, false);
            let mut tracked = sys::tracked();
            let _ = sys::reap(live.pidfd.as_fd());
            tracked.remove(&live.pid);
            drop(tracked);
            let _ = registry.deregister(&mut SourceFd(&live.pidfd.as_raw_fd()));
            let _ = registry.deregister(&mut stdout);
            let _ = registry.deregister(&mut stderr);
            if let Some(channel) = &readiness {
                let _ = registry.deregister(&mut SourceFd(&channel.raw_fd()));
            }
            self.free_slots.push(slot);
            return Err(e);
        }
        let pid = live.pid;
        let name = self.monitor.name(process).unwrap_or_default().into();
        self.children[slot] = Some(Child {
            name,
            process,
            pid,
            live: Some(live),
            stdout: Some(Pipe {
                receiver: stdout,
                lines: LineBuffer::new(),
            }),
            stderr: Some(Pipe {
                receiver: stderr,
                lines: LineBuffer::new(),
            }),
            readiness,
        });
        self.by_instance.insert(instance, slot);
        Ok(pid)
    }

    /// The pidfd of `slot` is readable: the leader may have exited.
    pub(crate) fn child_exited(&mut self, slot: usize, observer: &mut impl Observer) {
        let Some(live) = self
            .children
            .get(slot)
            .and_then(|c| c.as_ref()?.live.as_ref())
        else {
            return;
        };
        let (pid, instance) = (live.pid, live.instance);
        let peeked = match sys::peek_exit(live.pidfd.as_fd()) {
            Ok(None) => return,
            Ok(Some(status)) => Some(status),
            // ECHILD: someone else reaped it. (Waiting on a pidfd needs Linux
            // 5.4, the crate's floor, so no other error is expected.)
            Err(_) => None,
        };
        // What it said on its readiness channel first (a READY=1 just
        // before it died), then its last words, partial lines included (the
        // core flushes those when told of the exit). Not waiting for EOF:
        // see `Pipe::lines`.
        self.read_channel(slot, observer, true);
        self.retire_channel(slot);
        self.read_pipe_now(slot, Stream::Stdout, observer);
        self.read_pipe_now(slot, Stream::Stderr, observer);
        let live = self.children[slot]
            .as_ref()
            .and_then(|c| c.live.as_ref())
            .expect("checked above");
        let status = match peeked {
            // The leader is an unreaped zombie, so its pid and group id cannot
            // have been reused: kill what is left of its group, then reap it.
            Some(peeked) => {
                let _ = sys::killpg(pid, libc::SIGKILL);
                let mut tracked = sys::tracked();
                let reaped = sys::reap(live.pidfd.as_fd());
                tracked.remove(&pid);
                reaped.unwrap_or(peeked)
            }
            // Someone else reaped it (a foreign `waitpid(-1)`, which the
            // module docs warn against). Its pid and group id may be a
            // stranger's by now, so nothing is signalled, and its status is
            // lost: reported as a SIGKILL.
            None => {
                sys::tracked().remove(&pid);
                ExitStatus::Signal(libc::SIGKILL)
            }
        };
        let child = self.children[slot].as_mut().expect("checked above");
        let live = child.live.take().expect("checked above");
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&live.pidfd.as_raw_fd()));
        drop(live);
        self.by_instance.remove(&instance);
        self.free_if_done(slot);

        let now = self.clock.now();
        self.exiting = Some((instance, pid));
        self.monitor.handle(now, Input::Exited { instance, status });
        self.drain(now, observer);
        self.exiting = None;
        // Its group's members we just killed were re-parented to us.
        self.reap_orphans();
        // Unless a process that left the group holds them, its pipes now have
        // no writers, or soon will (their hang-up then wakes us): what they
        // still hold is read now, paused or not (see `read_pipe_unless_held`).
        // Only pipes still held open after that wait for escapees. (The slot
        // may have been freed above and taken by a restart, which is live.)
        for stream in [Stream::Stdout, Stream::Stderr] {
            let open = self.children[slot]
                .as_mut()
                .is_some_and(|c| c.live.is_none() && c.pipe(stream).is_some());
            if open {
                self.read_pipe(slot, stream, observer);
            }
        }
        if self.children[slot]
            .as_ref()
            .is_some_and(|c| c.live.is_none())
        {
            self.linger(slot, observer);
        }
    }

    /// Frees the slot of a reaped child whose pipes are both closed.
    pub(crate) fn free_if_done(&mut self, slot: usize) {
        let done = self.children[slot]
            .as_ref()
            .is_some_and(|c| c.live.is_none() && c.stdout.is_none() && c.stderr.is_none());
        if !done {
            return;
        }
        let child = self.children[slot].take().expect("checked above");
        self.free_slots.push(slot);
        if let Some(lingering) = self.lingering.get_mut(&child.name) {
            lingering.retain(|&s| s != slot);
            if lingering.is_empty() {
                self.lingering.remove(&child.name);
            }
        }
    }
}

/// Signals a live child's process group. The leader is not reaped while it is
/// in `Supervisor::children` with `live` set, so its group id is pinned and
/// `killpg` cannot reach a stranger.
///
/// KILL goes to the leader through its pidfd (which cannot miss or hit a
/// recycled pid, whatever the group does) and then to the group. Any other
/// signal goes to the group only, which includes the leader: sending it
/// through the pidfd too could run a handler twice, so the pidfd is then the
/// fallback should `killpg` fail. A stop signal is followed by CONT
/// (`wake`), so a stopped child wakes up to act on it: mechanism the core
/// leaves to the driver, since only a real process can be stopped.
pub(crate) fn kill_group(live: &Live, signal: libc::c_int, wake: bool) {
    if signal == libc::SIGKILL {
        let _ = sys::pidfd_send_signal(&live.pidfd, signal);
        let _ = sys::killpg(live.pid, signal);
        return;
    }
    if sys::killpg(live.pid, signal).is_err() {
        let _ = sys::pidfd_send_signal(&live.pidfd, signal);
    }
    if wake {
        let _ = sys::killpg(live.pid, libc::SIGCONT);
    }
}

/// The platform's number for one of the core's signals.
pub fn signal_number(signal: Signal) -> libc::c_int {
    match signal {
        Signal::Hup => libc::SIGHUP,
        Signal::Int => libc::SIGINT,
        Signal::Quit => libc::SIGQUIT,
        Signal::Kill => libc::SIGKILL,
        Signal::Usr1 => libc::SIGUSR1,
        Signal::Usr2 => libc::SIGUSR2,
        Signal::Term => libc::SIGTERM,
        Signal::Alrm => libc::SIGALRM,
        Signal::Cont => libc::SIGCONT,
        Signal::Stop => libc::SIGSTOP,
        Signal::Tstp => libc::SIGTSTP,
        Signal::Winch => libc::SIGWINCH,
        Signal::Pipe => libc::SIGPIPE,
    }
}
