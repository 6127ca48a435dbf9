//! Event sources an embedding program registers with the supervisor's
//! poll: a control socket, its clients, a metrics listener, later readiness
//! descriptors.
//!
//! The supervisor owns one `mio::Poll`. Children's descriptors use tokens
//! `slot << 3 | role` with roles 0 to 3; registered sources get the last
//! role, `id << 3 | 7`, so neither side can take the other's tokens and the
//! program never sees the driver's. After each [`Supervisor::turn`], the
//! sources that became ready are taken with [`Supervisor::take_ready`].
//!
//! [`Supervisor::turn`]: crate::Supervisor::turn
//! [`Supervisor::take_ready`]: crate::Supervisor::take_ready

use mio::event::Event;
use mio::Token;

/// The token role of registered sources (children use 0 to 3).
pub(crate) const ROLE: usize = crate::children::ROLE_MASK;

/// Names a source registered with [`Supervisor::register`](crate::Supervisor::register).
///
/// Ids are reused after [`Supervisor::deregister`](crate::Supervisor::deregister);
/// readiness already taken for a deregistered id is the caller's to ignore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub(crate) usize);

/// A registered source that became ready during a turn. Readiness is a
/// hint, as with any `mio` source: read or write until `WouldBlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The source.
    pub source: SourceId,
    /// It can be read (or has hung up: a read then says so).
    pub readable: bool,
    /// It can be written.
    pub writable: bool,
}

impl Ready {
    pub(crate) fn from_event(id: usize, event: &Event) -> Ready {
        Ready {
            source: SourceId(id),
            readable: event.is_readable() || event.is_read_closed() || event.is_error(),
            writable: event.is_writable() || event.is_write_closed(),
        }
    }
}

/// The ids in use, and those free to reuse.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    in_use: Vec<bool>,
    free: Vec<usize>,
}

impl Sources {
    pub(crate) fn allocate(&mut self) -> SourceId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.in_use.push(false);
                self.in_use.len() - 1
            }
        };
        self.in_use[id] = true;
        SourceId(id)
    }

    pub(crate) fn release(&mut self, id: SourceId) -> bool {
        match self.in_use.get_mut(id.0) {
            Some(used) if *used => {
                *used = false;
                self.free.push(id.0);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn is_registered(&self, id: usize) -> bool {
        self.in_use.get(id).copied().unwrap_or(false)
    }
}

pub(crate) fn token(id: SourceId) -> Token {
    Token(id.0 << crate::children::ROLE_BITS | ROLE)
}
