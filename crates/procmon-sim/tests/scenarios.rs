//! The scenario files in `docs/scenarios/` are documentation that runs: each
//! must pass, and its trace must match the `.trace` snapshot beside it.
//!
//! `PROCMON_BLESS=1 cargo test -p procmon-sim` rewrites the snapshots, for a
//! change in behaviour that is meant (review the diff before committing).

use std::fs;
use std::path::{Path, PathBuf};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenarios")
}

fn files_with_extension(extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(scenarios_dir())
        .expect("docs/scenarios exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

fn label(path: &Path) -> String {
    format!(
        "docs/scenarios/{}",
        path.file_name().expect("a file").to_string_lossy()
    )
}

#[test]
fn every_scenario_passes_and_matches_its_trace() {
    let bless = std::env::var_os("PROCMON_BLESS").is_some_and(|v| v == "1");
    let scenarios = files_with_extension("scn");
    assert!(
        scenarios.len() >= 26,
        "expected the seed's scenarios in {}",
        scenarios_dir().display()
    );
    let mut problems = Vec::new();
    for path in &scenarios {
        let name = label(path);
        let source = fs::read(path).expect("readable scenario");
        let outcome = procmon_sim::run(&name, &source);
        for message in outcome.messages() {
            problems.push(message.to_string());
        }
        let snapshot = path.with_extension("trace");
        match fs::read_to_string(&snapshot) {
            Ok(expected) if expected == outcome.trace => {}
            _ if bless => fs::write(&snapshot, &outcome.trace).expect("writable snapshot"),
            Ok(expected) => problems.push(format!(
                "{name}: the trace differs from {} (- snapshot, + now; \
                 PROCMON_BLESS=1 rewrites it if the change is meant):\n{}",
                label(&snapshot),
                diff(&expected, &outcome.trace)
            )),
            Err(_) => problems.push(format!(
                "{name}: no snapshot {} (PROCMON_BLESS=1 writes it)",
                label(&snapshot)
            )),
        }
    }
    for snapshot in files_with_extension("trace") {
        if !snapshot.with_extension("scn").exists() {
            problems.push(format!("{}: a snapshot with no scenario", label(&snapshot)));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_scenario_says_what_it_documents_and_is_listed() {
    let readme = fs::read_to_string(scenarios_dir().join("README.md")).expect("README.md");
    let mut problems = Vec::new();
    let scenarios = files_with_extension("scn");
    for path in &scenarios {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = fs::read_to_string(path).expect("UTF-8 scenario");
        if !source.starts_with("# ") {
            problems.push(format!("{file}: does not open with a # comment"));
        }
        if !readme.contains(&format!("`{file}`")) {
            problems.push(format!("{file}: not listed in README.md"));
        }
    }
    // File names are lower snake case; `X.scn` in prose is not a listing.
    let listed = readme.split('`').filter(|w| {
        w.strip_suffix(".scn").is_some_and(|stem| {
            !stem.is_empty()
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
    });
    for word in listed {
        if !scenarios_dir().join(word).exists() {
            problems.push(format!("README.md lists {word}, which does not exist"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Each test of Twisted's `test_procmon.py` has its scenario, named after it.
#[test]
fn every_seed_test_has_its_scenario() {
    const SEED_TESTS: &[&str] = &[
        "getStateIncludesProcesses",
        "getStateExcludesReactor",
        "addProcess",
        "addProcessDuplicateKeyError",
        "addProcessEnv",
        "removeProcess",
        "removeProcessUnknownKeyError",
        "startProcess",
        "startProcessAlreadyStarted",
        "startProcessUnknownKeyError",
        "stopProcessNaturalTermination",
        "stopProcessForcedKill",
        "stopProcessUnknownKeyError",
        "stopProcessAlreadyStopped",
        "outputReceivedCompleteLine",
        "outputReceivedCompleteLineInvalidUTF8",
        "outputReceivedPartialLine",
        "connectionLostLongLivedProcess",
        "connectionLostMurderCancel",
        "connectionLostProtocolDeletion",
        "connectionLostMinMaxRestartDelay",
        "connectionLostBackoffDelayDoubles",
        "startService",
        "stopService",
        "stopServiceCancelRestarts",
        "stopServiceCleanupScheduledRestarts",
    ];
    let missing: Vec<String> = SEED_TESTS
        .iter()
        .map(|test| format!("{}.scn", snake_case(test)))
        .filter(|file| !scenarios_dir().join(file).exists())
        .collect();
    assert!(missing.is_empty(), "missing seed scenarios: {missing:?}");
    assert_eq!(
        snake_case("outputReceivedCompleteLineInvalidUTF8"),
        "output_received_complete_line_invalid_utf8"
    );
}

/// `stopProcessForcedKill` → `stop_process_forced_kill`; a run of capitals
/// (`UTF8`) stays one word.
fn snake_case(camel: &str) -> String {
    let mut out = String::new();
    let mut previous_upper = true;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && !previous_upper {
            out.push('_');
        }
        previous_upper = c.is_ascii_uppercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A line diff (longest common subsequence): traces are short.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        } else {
            out += &format!("- {}\n", a[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn diff_marks_removed_and_added_lines() {
    assert_eq!(diff("a\nb\nc\n", "a\nc\nd\n"), "  a\n- b\n  c\n+ d\n");
}
