//! Fuzz target `control_request`: a shim over `procmon::fuzzing::control_request`, where the body and its
//! unit tests live (see docs/fuzzing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| procmon::fuzzing::control_request(data));
