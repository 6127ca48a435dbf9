//! Orphan reaping: as a child subreaper the monitor inherits the orphans of
//! its children's trees, and reaps every exited one it does not track
//! through a pidfd.
//!
//! Separate because it must never take a tracked child's status (the pidfd
//! path in [`crate::children`] reaps those), and is switched off as a whole
//! by [`Options::reap_orphans`](crate::Options::reap_orphans).

use crate::{sys, Supervisor};

impl Supervisor {
    /// Reaps every exited child that no supervisor tracks through a pidfd:
    /// orphans re-parented to us as subreaper. Statuses are peeked first
    /// (`WNOWAIT`) so a tracked child's is never stolen; when the first exited
    /// child is a tracked one, the rest wait until its pidfd path reaps it,
    /// which is followed by another call to this.
    pub(crate) fn reap_orphans(&mut self) {
        if !self.reap_orphans {
            return;
        }
        loop {
            let tracked = sys::tracked();
            let Some(pid) = sys::peek_any_exited() else {
                return;
            };
            if tracked.contains(&pid) {
                return;
            }
            sys::reap_if_exited(pid);
        }
    }
}
