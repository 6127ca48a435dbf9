//! Signals sent to the monitor itself: the signalfd that reads SIGCHLD and
//! the caught signals, [`CaughtSignal`], the bounded queue of caught signals
//! waiting to be returned from [`Supervisor::turn`], and
//! [`hold_caught_signals`].
//!
//! Separate because it is process-wide state with its own rules (which
//! signals are blocked, how a storm of one kind is kept from crowding out
//! another), unrelated to any one child.

use std::io;

use mio::Token;

#[cfg(doc)]
use crate::Options;
use crate::{sys, Supervisor};

/// The signalfd's token; child tokens are `slot << 3 | role` and never reach it.
pub(crate) const SIGNALS: Token = Token(usize::MAX);

/// At most this many caught signals wait to be returned from [`Supervisor::turn`].
/// When they are all waiting, one more of a kind already waiting adds
/// nothing, and one of a new kind takes the place of a repeat, so a storm
/// of HUPs or USR1s cannot crowd out a TERM.
pub(crate) const CAUGHT_CAPACITY: usize = 8;

/// The signals [`Options::catch_signals`] catches: every signal a person or
/// a tool commonly sends to a daemon (`kill -USR1` is what logrotate's
/// `postrotate` sends), each of which would otherwise end the program by
/// default and leave its children's descendants to init.
pub(crate) const CAUGHT_SIGNALS: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

// A full queue must hold a repeat of some kind, so that a new kind can take
// its place: more places than kinds.
const _: () = assert!(CAUGHT_CAPACITY > CAUGHT_SIGNALS.len());

/// Blocks the signals that [`Options::catch_signals`] catches (TERM, INT,
/// HUP, QUIT, USR1, USR2) in the calling thread now, before there is a
/// [`Supervisor`] to catch them, so that one arriving in between waits for
/// it instead of being lost or killing the program.
///
/// Call it first thing in `main` of a program that will catch signals: until
/// then a TERM kills the program with default handling, and a PID 1 of a
/// container (which the kernel protects from signals it does not handle)
/// drops it, so an early `docker stop` would wait for the runtime's SIGKILL.
/// A supervisor created later with `catch_signals` reports the signal from
/// its first [`Supervisor::turn`]. The signals stay blocked in this thread.
pub fn hold_caught_signals() -> io::Result<()> {
    sys::block_signals(&CAUGHT_SIGNALS).map(drop)
}

/// A signal caught for the embedding program (see [`Options::catch_signals`]).
///
/// Non-exhaustive: the driver may come to catch another signal, and an
/// embedder's `match` must not stop compiling when it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaughtSignal {
    /// SIGTERM.
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGHUP.
    Hangup,
    /// SIGQUIT (`Ctrl-\`).
    Quit,
    /// SIGUSR1 (logrotate's `postrotate` sends it to have log files reopened).
    User1,
    /// SIGUSR2.
    User2,
}

impl CaughtSignal {
    /// The signal's name without `SIG`, as `kill -l` prints it.
    pub fn name(self) -> &'static str {
        match self {
            CaughtSignal::Terminate => "TERM",
            CaughtSignal::Interrupt => "INT",
            CaughtSignal::Hangup => "HUP",
            CaughtSignal::Quit => "QUIT",
            CaughtSignal::User1 => "USR1",
            CaughtSignal::User2 => "USR2",
        }
    }
}

impl Supervisor {
    /// Drains the signalfd; returns whether SIGCHLD arrived.
    pub(crate) fn read_signals(&mut self) -> io::Result<bool> {
        let mut sigchld = false;
        while let Some(signal) = self.signals.read()? {
            let caught = match signal {
                libc::SIGCHLD => {
                    sigchld = true;
                    continue;
                }
                libc::SIGTERM => CaughtSignal::Terminate,
                libc::SIGINT => CaughtSignal::Interrupt,
                libc::SIGHUP => CaughtSignal::Hangup,
                libc::SIGQUIT => CaughtSignal::Quit,
                libc::SIGUSR1 => CaughtSignal::User1,
                libc::SIGUSR2 => CaughtSignal::User2,
                _ => continue,
            };
            if self.caught.len() == CAUGHT_CAPACITY {
                if self.caught.contains(&caught) {
                    continue;
                }
                // Full of other kinds: drop the newest repeat of a kind that
                // waits more than once, so that every kind keeps a place.
                let repeat = (0..self.caught.len())
                    .rev()
                    .find(|&i| self.caught.iter().filter(|&&c| c == self.caught[i]).count() > 1)
                    .expect("more entries than kinds");
                self.caught.remove(repeat);
            }
            self.caught.push_back(caught);
        }
        Ok(sigchld)
    }
}
