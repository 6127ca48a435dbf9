//! Fuzz target `core_events`: a shim over `procmon_sim::fuzzing::core_events`, where the body and its
//! unit tests live (see docs/fuzzing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| procmon_sim::fuzzing::core_events(data));
