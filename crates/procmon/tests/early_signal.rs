//! A TERM that arrives before the event loop begins (procmon holds the
//! signals from the start of `main`, while it reads its config) stops it
//! before it starts anything.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use procmon::output::{LogFormat, Printer};
use procmon::run::{self, Outcome};
use procmon_core::{Monitor, ProcessSpec, Settings};

/// A stream whose bytes the test can read after the run.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl procmon::output::OutBlocks for Shared {}

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_term_held_before_the_loop_stops_it_before_anything_starts() {
    procmon_mio::hold_caught_signals().expect("signals blocked");
    // SAFETY: TERM is blocked in this thread, so it waits; raise sends it
    // to this thread, whose signalfd (created by run) will read it.
    unsafe { libc::raise(libc::SIGTERM) };
    let mut monitor = Monitor::new(Settings::default()).unwrap();
    monitor
        .add(
            Default::default(),
            "sleeper",
            ProcessSpec::new(["sleep", "100"]),
        )
        .unwrap();
    let (out, err) = (Shared::default(), Shared::default());
    let printer = Printer::new(LogFormat::Text, out.clone(), err.clone());
    let outcome = run::run(monitor, printer, run::Extras::default()).expect("runs");
    assert_eq!(outcome, Outcome::Stopped);
    let told = String::from_utf8(err.0.lock().unwrap().clone()).unwrap();
    assert!(
        told.contains("received TERM: stopping all processes"),
        "{told}"
    );
    assert!(!told.contains("spawned"), "started something:\n{told}");
}
