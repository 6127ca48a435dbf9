//! Timestamps on children's lines: the setting, and the RFC 3339 form
//! (`2026-12-06T06:21:33.123Z`, UTC with milliseconds) written for each
//! line at the time procmon read it.
//!
//! Where a line goes decides the default (see [`Timestamps::resolve`]):
//! off on procmon's stdout, as it always was, and on in log files, where a
//! line without its time is of little use. `--timestamps` on the command
//! line, a process's `timestamps` key and the top-level one set both.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whether children's lines carry the time procmon read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Timestamps {
    /// `2026-12-06T06:21:33.123Z` before each line (a `"time"` field in
    /// JSON).
    Rfc3339,
    /// No time.
    Off,
}

impl Timestamps {
    /// The setting's name in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Timestamps::Rfc3339 => "rfc3339",
            Timestamps::Off => "off",
        }
    }

    /// The setting named `text`, as the config file writes it.
    pub fn from_name(text: &str) -> Option<Timestamps> {
        match text {
            "rfc3339" => Some(Timestamps::Rfc3339),
            "off" => Some(Timestamps::Off),
            _ => None,
        }
    }

    /// Whether lines get a time: the setting if one was made, else the
    /// default of the place (`in_file`: a log file, else procmon's stdout).
    pub fn resolve(setting: Option<Timestamps>, in_file: bool) -> bool {
        match setting {
            Some(Timestamps::Rfc3339) => true,
            Some(Timestamps::Off) => false,
            None => in_file,
        }
    }
}

/// The length of a timestamp: `2026-12-06T06:21:33.123Z`.
pub const STAMP_LEN: usize = 24;

/// One timestamp as text; always ASCII.
pub type Stamp = [u8; STAMP_LEN];

/// Formats times, keeping the date and time of the last whole second so
/// that lines read in the same second (most of them, under load) cost only
/// the milliseconds.
#[derive(Debug, Default)]
pub struct Clock {
    /// The last second formatted, and its text up to the milliseconds.
    second: Option<(u64, Stamp)>,
}

impl Clock {
    /// The time now.
    pub fn now(&mut self) -> Stamp {
        self.at(SystemTime::now())
    }

    /// `at` as a timestamp; a time before 1970 shows as the epoch.
    pub fn at(&mut self, at: SystemTime) -> Stamp {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let mut stamp = match self.second {
            Some((second, stamp)) if second == secs => stamp,
            _ => {
                let stamp = whole_second(secs);
                self.second = Some((secs, stamp));
                stamp
            }
        };
        let millis = since.subsec_millis();
        stamp[20] = b'0' + (millis / 100) as u8;
        stamp[21] = b'0' + (millis / 10 % 10) as u8;
        stamp[22] = b'0' + (millis % 10) as u8;
        stamp
    }
}

/// `at` as `2026-12-06T06:21:33.123Z`.
pub fn rfc3339_millis(at: SystemTime) -> String {
    let stamp = Clock::default().at(at);
    String::from_utf8(stamp.to_vec()).expect("a stamp is ASCII")
}

/// `secs` after the epoch as `YYYY-MM-DDTHH:MM:SS.000Z`. Years past 9999
/// (in 292 billion years' time) would need more digits; they are shown
/// modulo 10,000 rather than overrun the fixed width.
fn whole_second(secs: u64) -> Stamp {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut stamp = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, value: u64, width: usize| {
        let mut value = value;
        for i in (0..width).rev() {
            stamp[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year.rem_euclid(10_000) as u64, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, rest / 3600, 2);
    put(14, rest % 3600 / 60, 2);
    put(17, rest % 60, 2);
    stamp
}

/// The proleptic Gregorian date of `days` after 1970-01-01: Howard
/// Hinnant's `civil_from_days`, which needs no table and no loop.
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u64, day as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at_millis(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn known_dates() {
        // Each checked against `date -u -d @SECONDS`.
        for (millis, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (951_868_799_999, "2000-02-29T23:59:59.999Z"),
            (1_078_099_199_001, "2004-02-29T23:59:59.001Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (1_796_538_093_123, "2026-12-06T06:21:33.123Z"),
            (1_798_761_599_999, "2026-12-31T23:59:59.999Z"),
            (253_402_300_799_000, "9999-12-31T23:59:59.000Z"),
        ] {
            assert_eq!(rfc3339_millis(at_millis(millis)), want, "{millis}");
        }
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn the_cached_second_gives_what_a_fresh_format_does() {
        let mut clock = Clock::default();
        for millis in (1_796_538_090_000..1_796_538_096_000).step_by(7) {
            let cached = clock.at(at_millis(millis));
            assert_eq!(cached, Clock::default().at(at_millis(millis)), "{millis}");
        }
    }

    #[test]
    fn settings_and_defaults() {
        assert_eq!(Timestamps::from_name("rfc3339"), Some(Timestamps::Rfc3339));
        assert_eq!(Timestamps::from_name("off"), Some(Timestamps::Off));
        assert_eq!(Timestamps::from_name("RFC3339"), None);
        assert!(Timestamps::resolve(None, true));
        assert!(!Timestamps::resolve(None, false));
        assert!(Timestamps::resolve(Some(Timestamps::Rfc3339), false));
        assert!(!Timestamps::resolve(Some(Timestamps::Off), true));
    }
}
