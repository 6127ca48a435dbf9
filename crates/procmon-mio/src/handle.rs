//! Requests from other threads: a [`Handle`] sends application calls into
//! the supervisor and wakes it, and each [`turn`](Supervisor::turn) applies
//! what arrived.
//!
//! Separate because it is the one part of the driver that crosses threads:
//! the `Supervisor` itself is not `Send` (its signal mask and
//! `PR_SET_PDEATHSIG` belong to the thread that made it), so another thread
//! or an async runtime's tasks reach the monitor only through this channel.
//!
//! The channel is an unbounded `std::sync::mpsc` one. Sending never blocks,
//! so a handle is safe to use from an async task or from the supervisor's
//! own thread (a bounded channel would deadlock there once full, since only
//! a turn empties it). What waits in it is bounded by what the senders
//! send: requests are application calls (add, start, stop), not a stream.

use std::fmt;
use std::io;
use std::sync::{mpsc, Arc};

use procmon_core::{Instant, Monitor};

use crate::{Observer, Supervisor};

/// One application call on the monitor, sent by a [`Handle`].
type Request = Box<dyn FnOnce(&mut Monitor, Instant) + Send>;

/// The supervisor's end of the request channel.
pub(crate) struct Requests {
    /// Kept to make more handles; the channel therefore never reports the
    /// senders gone, which the supervisor does not need to know.
    sender: mpsc::Sender<Request>,
    receiver: mpsc::Receiver<Request>,
}

/// A cloneable, `Send` way for other threads to make application calls on
/// a [`Supervisor`]'s monitor (add, start, stop, `stop_service`, …) and wake
/// it, got from [`Supervisor::handle`].
///
/// Each request runs on the supervisor's thread at the end of a
/// [`turn`](Supervisor::turn), as one [`call`](Supervisor::call): its
/// commands are carried out before the next request, so a request makes one
/// mutating call (queries may be mixed in freely). Requests from one handle
/// and its clones run in the order they were sent. A request that wants an
/// answer sends it back itself, through a channel of its own.
#[derive(Clone)]
pub struct Handle {
    sender: mpsc::Sender<Request>,
    waker: Arc<mio::Waker>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// Queues `request` for the supervisor and wakes its current or next
    /// turn, which applies it before returning. Never blocks. Fails with
    /// `NotConnected` once the supervisor is dropped (the request is then
    /// never run), or if waking fails. Requests still queued when the
    /// supervisor is dropped are dropped unrun, like the monitor.
    pub fn send(
        &self,
        request: impl FnOnce(&mut Monitor, Instant) + Send + 'static,
    ) -> io::Result<()> {
        self.sender
            .send(Box::new(request))
            .map_err(|_| io::Error::new(io::ErrorKind::NotConnected, "the supervisor is gone"))?;
        // After the send: a turn woken by this finds the request queued.
        self.waker.wake()
    }
}

impl Supervisor {
    /// A [`Handle`] for other threads to send application calls through;
    /// every handle shares one channel and the [`waker`](Self::waker).
    pub fn handle(&mut self) -> io::Result<Handle> {
        let waker = self.waker()?;
        let requests = self.requests.get_or_insert_with(|| {
            let (sender, receiver) = mpsc::channel();
            Requests { sender, receiver }
        });
        Ok(Handle {
            sender: requests.sender.clone(),
            waker,
        })
    }

    /// Runs every request that has arrived, each as one `call`. Those sent
    /// while this runs wait for the next turn, which their wake-up starts,
    /// so that a sender in a loop cannot keep a turn from ever ending.
    pub(crate) fn apply_requests(&mut self, observer: &mut impl Observer) {
        let Some(requests) = &self.requests else {
            return;
        };
        let arrived: Vec<Request> = requests.receiver.try_iter().collect();
        for request in arrived {
            self.call(observer, request);
        }
    }
}
