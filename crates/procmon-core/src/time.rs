//! The core's own clock type: a point in time is a value handed in by the world.

use core::fmt;
use core::time::Duration;

/// A point in time, in nanoseconds from an origin the world picks.
///
/// The core never reads a clock: every call that can schedule takes `now` as an
/// `Instant`, so the same inputs always give the same commands. The simulator
/// starts at [`Instant::ZERO`]; a real driver maps its monotonic clock onto it.
/// `Display` prints seconds in the shortest exact form (`0`, `2.5`, `0.125`),
/// the form the scenario trace uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// The instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + duration`, or `None` past the end of time (about 584 years).
    pub fn checked_add(self, duration: Duration) -> Option<Instant> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_add(nanos).map(Instant)
    }

    /// `self + duration`, clamped at the end of time; a timer that far away
    /// simply never fires, which is the honest reading of such a setting.
    pub fn saturating_add(self, duration: Duration) -> Instant {
        self.checked_add(duration).unwrap_or(Instant(u64::MAX))
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_seconds(self.0, f)
    }
}

/// Shows a [`Duration`] in the trace's shortest-seconds form (`0`, `2.5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        write_seconds(secs, nanos, f)
    }
}

fn fmt_seconds(nanos: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write_seconds(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32, f)
}

fn write_seconds(secs: u64, mut frac: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if frac == 0 {
        return write!(f, "{secs}");
    }
    let mut digits = 9;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    write!(f, "{secs}.{frac:0digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn displays_shortest_exact_seconds() {
        let cases = [
            (0, "0"),
            (1_000_000_000, "1"),
            (2_500_000_000, "2.5"),
            (125_000_000, "0.125"),
            (10_250_000_000, "10.25"),
            (1, "0.000000001"),
            (1_000_000_010, "1.00000001"),
        ];
        for (nanos, text) in cases {
            assert_eq!(Instant::from_nanos(nanos).to_string(), text);
            assert_eq!(Seconds(Duration::from_nanos(nanos)).to_string(), text);
        }
    }

    #[test]
    fn saturating_add_clamps_at_end_of_time() {
        let end = Instant::from_nanos(u64::MAX);
        assert_eq!(end.saturating_add(Duration::from_secs(1)), end);
        assert_eq!(Instant::ZERO.checked_add(Duration::MAX), None);
    }
}
