//! procmon-sim: the virtual-time harness for procmon scenarios.
//!
//! A scenario (format: `shared/spec/scenarios.md`, examples in
//! `docs/scenarios/`) drives a [`procmon_core::Monitor`] against simulated
//! processes in virtual time. The harness prints a trace of everything
//! observable and checks the scenario's `expect` lines. Nothing sleeps and
//! nothing is random: the same scenario always gives the same trace.
//!
//! - [`parse`] turns scenario text into [`Step`]s; `Step`'s `Display` turns
//!   them back into text.
//! - [`run`] replays a whole scenario into an [`Outcome`].
//! - [`Sim`] takes steps one at a time, for property tests and fuzzers.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod parse;
mod run;
mod world;

pub use parse::{
    parse, parse_line, parse_seconds, Diagnostic, Expectation, Numbered, Setting, SignalName, Step,
};
pub use run::{run, Event, Outcome, Sim};

/// Fuzz bodies, compiled only with the `fuzzing` feature so `fuzz/` stays a
/// thin shim that cannot drift out of date.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use crate::{parse, parse_line, Sim};

    /// Parses arbitrary bytes as a scenario and, if they parse, runs them.
    ///
    /// Panics only on a bug: parsing must be total, every parsed step must
    /// print as text that parses back to it, and running must not panic.
    pub fn scenario_parser(data: &[u8]) {
        let Ok(steps) = parse("fuzz.scn", data) else {
            return;
        };
        for numbered in &steps {
            let text = numbered.step.to_string();
            let again = parse_line(text.as_bytes());
            assert_eq!(
                again.as_ref().ok().and_then(Option::as_ref),
                Some(&numbered.step),
                "{text:?} does not parse back: {again:?}"
            );
        }
        let mut sim = Sim::new("fuzz.scn");
        for numbered in &steps {
            if sim.step(numbered.line, &numbered.step).is_err() {
                return;
            }
        }
        sim.finish();
    }

    #[cfg(test)]
    mod tests {
        /// The documented scenarios, cut at every tenth byte and with bytes
        /// flipped, are the kind of input a fuzzer starts from.
        #[test]
        fn the_fuzz_body_takes_scenarios_and_their_mutilations() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scenarios");
            let mut seen = 0;
            for entry in std::fs::read_dir(dir).expect("docs/scenarios") {
                let path = entry.expect("entry").path();
                if path.extension().is_none_or(|e| e != "scn") {
                    continue;
                }
                let source = std::fs::read(&path).expect("readable");
                super::scenario_parser(&source);
                for cut in (0..source.len()).step_by(10) {
                    super::scenario_parser(&source[..cut]);
                    let mut flipped = source.clone();
                    flipped[cut] ^= 0x80;
                    super::scenario_parser(&flipped);
                }
                seen += 1;
            }
            assert!(seen > 0, "no scenarios in {dir}");
        }
    }
}
