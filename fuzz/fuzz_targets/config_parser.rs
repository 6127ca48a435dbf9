//! Fuzz target `config_parser`: a shim over `procmon::fuzzing::config_parser`, where the body and its
//! unit tests live (see docs/fuzzing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| procmon::fuzzing::config_parser(data));
