//! The test runner shared by the `harness = false` suites.
//!
//! Those suites run one test at a time on the main thread, because the
//! subreaper role and SIGCHLD delivery are process-wide; this keeps libtest's
//! conventions (`--list`, a name filter, the closing `test result:` line that
//! CI reads) without its threads. [`run`] holds the supervisor fixture both
//! suites drive, [`procfs`] what they read about processes from `/proc`.

// Each suite uses only part of this module, and each is its own crate, so
// whatever one of them leaves unused would warn there.
#![allow(dead_code)]

pub mod procfs;
pub mod run;

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

/// Runs `tests` in order, each isolated by `catch_unwind`, honouring
/// `--list` and a substring filter; exits 1 if any failed.
pub fn run_tests(tests: &[(&str, fn())]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    let mut ran = 0;
    for &(name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let start = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(test));
        let outcome = if result.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {outcome} ({:.2?})", start.elapsed());
        if result.is_err() {
            failed.push(name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(1);
    }
}
