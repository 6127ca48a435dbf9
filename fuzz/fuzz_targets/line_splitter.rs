//! Fuzz target `line_splitter`: a shim over `procmon_core::fuzzing::line_splitter`, where the body and its
//! unit tests live (see docs/fuzzing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| procmon_core::fuzzing::line_splitter(data));
