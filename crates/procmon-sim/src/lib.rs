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
//! - [`check`] holds the reference model that property tests and fuzzers
//!   check a `Sim` against after every step.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod check;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod parse;
mod run;
mod world;

pub use parse::{
    parse, parse_line, parse_seconds, Diagnostic, Expectation, Numbered, Setting, SignalName, Step,
    DEFAULT_SPAWN_ERRNO,
};
pub use run::{run, Event, LineDelivery, Outcome, Sim};
