//! Property tests: random step lists through the harness, checked after every
//! step against a small reference model of the contract's rules.
//!
//! A failing case prints itself as scenario text (the steps that actually
//! ran, after the runner skipped the ones invalid for the state it met), so
//! `procmon-sim trace FILE` replays it. `PROPTEST_CASES` overrides the
//! default of 1,000 cases per property.
//!
//! The model and the checking runner live in `procmon_sim::check`, shared
//! with the `core_events` fuzz body.

use std::fmt;

use procmon_core::{Duration, ProcessSpec, Stream};
use procmon_sim::check::{execute, script, split_lines, Failure, Model, NAMES};
use procmon_sim::{LineDelivery, Setting, SignalName, Step};
use proptest::prelude::*;

const HALF_SECOND: u64 = 500_000_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ----- Generation -----

/// A generated scenario: settings first, then steps. `Debug` prints it as
/// scenario text, so proptest's report is a scenario too.
#[derive(Clone)]
struct Case {
    steps: Vec<Step>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n# generated steps, as generated (the runner skips")?;
        writeln!(f, "# the ones invalid for the state it meets)")?;
        write!(f, "{}", script(&self.steps))
    }
}

/// Durations on a half-second grid make coincidences (an exit at the instant
/// a KILL or restart falls due) common; arbitrary nanoseconds find the rest.
fn duration(max_halves: u64) -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0..=max_halves).prop_map(|h| Duration::from_nanos(h * HALF_SECOND)),
        1 => (0..=max_halves * HALF_SECOND).prop_map(Duration::from_nanos),
    ]
}

fn settings() -> impl Strategy<Value = Vec<Step>> {
    (
        duration(8),
        duration(6),
        duration(4),
        duration(8),
        1usize..=8,
    )
        .prop_map(|(threshold, kill_time, min, extra, limit)| {
            vec![
                Step::Set(Setting::Threshold(threshold)),
                Step::Set(Setting::KillTime(kill_time)),
                Step::Set(Setting::MinRestartDelay(min)),
                Step::Set(Setting::MaxRestartDelay(min + extra)),
                Step::Set(Setting::LineLimit(limit)),
            ]
        })
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_string)
}

fn output_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Newlines, ASCII, a stray byte and the halves of `é` (0xc3 0xa9).
    let byte = prop::sample::select(&b"ab\n\n\xff\xc3\xa9 "[..]);
    prop::collection::vec(byte, 0..12)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (name(), any::<bool>()).prop_map(|(name, flag)| {
            let mut argv = vec![name.clone()];
            if flag {
                argv.push("--again".to_string());
            }
            Step::Add { name, spec: ProcessSpec::new(argv) }
        }),
        1 => name().prop_map(|name| Step::Remove { name }),
        1 => name().prop_map(|name| Step::Start { name }),
        2 => name().prop_map(|name| Step::Stop { name }),
        1 => Just(Step::RestartAll),
        2 => Just(Step::StartService),
        1 => Just(Step::StopService),
        6 => prop_oneof![Just(Duration::ZERO), duration(16)].prop_map(Step::Advance),
        2 => (name(), 0..3i32).prop_map(|(name, code)| Step::Exit { name, code }),
        1 => (name(), prop::sample::select(vec!["TERM", "KILL", "HUP"])).prop_map(
            |(name, signal)| Step::Kill {
                name,
                signal: SignalName::from_name(signal).expect("a known signal"),
            }
        ),
        1 => (name(), duration(12)).prop_map(|(name, delay)| Step::TermDelay { name, delay }),
        3 => (name(), any::<bool>(), output_bytes()).prop_map(|(name, err, bytes)| {
            let stream = if err { Stream::Stderr } else { Stream::Stdout };
            Step::Output { name, stream, bytes }
        }),
        1 => (1usize..=8).prop_map(|n| Step::Set(Setting::LineLimit(n))),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (settings(), prop::collection::vec(step(), 0..60)).prop_map(|(mut steps, rest)| {
        steps.extend(rest);
        Case { steps }
    })
}

fn report(failure: Failure) -> TestCaseError {
    TestCaseError::fail(failure.to_string())
}

// ----- Properties -----

proptest! {
    #![proptest_config(config())]

    /// After every step the monitor obeys the contract's rules, as the model
    /// states them: one live instance per name, spawns only when allowed,
    /// KILL exactly kill time after TERM, exact backoff, output conserved,
    /// no timers left behind.
    #[test]
    fn the_monitor_follows_the_model(case in case()) {
        let mut model = Model::new();
        execute(&case.steps, Some(&mut model), LineDelivery::Lent).map_err(report)?;
    }

    /// The same steps give the same trace and events, whether output lines
    /// are lent or queued, and the trace printed as scenario text replays to
    /// the same trace through the parser.
    #[test]
    fn same_steps_same_trace(case in case()) {
        let first = execute(&case.steps, None, LineDelivery::Lent).map_err(report)?;
        let second = execute(&case.steps, None, LineDelivery::Queued).map_err(report)?;
        prop_assert_eq!(first.sim.trace(), second.sim.trace());
        prop_assert_eq!(first.sim.events(), second.sim.events());
        let text = script(&first.executed);
        let replay = procmon_sim::run("replay.scn", text.as_bytes());
        prop_assert!(replay.passed(), "{:?}\n{}", replay, text);
        prop_assert_eq!(first.sim.trace(), replay.trace.as_str(), "{}", text);
    }

    /// Every generated step prints as a line that parses back to it.
    #[test]
    fn steps_print_as_text_that_parses_back(case in case()) {
        for step in &case.steps {
            let text = step.to_string();
            let parsed = procmon_sim::parse_line(text.as_bytes());
            prop_assert_eq!(parsed, Ok(Some(step.clone())), "{}", text);
        }
    }
}

/// Scenario-like bytes: words of the format, the bytes that make lexing hard,
/// and anything at all.
fn scenario_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "set ",
            "threshold ",
            "line-limit ",
            "min-restart-delay ",
            "add ",
            "a ",
            "-- ",
            "--uid ",
            "--env ",
            "K=v ",
            "start-service",
            "stop-service",
            "restart-all",
            "stop ",
            "remove ",
            "start ",
            "advance ",
            "exit ",
            "kill ",
            "TERM",
            "KILL",
            "term-delay ",
            "output ",
            "stdout ",
            "stderr ",
            "expect ",
            "error",
            "running ",
            "logged ",
            "now ",
            "0",
            "1",
            "2.5",
            "0.000000001",
            "99999999999999999999",
            "-1",
            "\n",
            "\\x",
            "\\xff",
            "\\q",
            "\"",
            "\\\"",
            "#",
            " ",
            "\\n",
            "\r\n",
            "\\t",
            "\\\\",
            "é",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..3),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config())]

    /// Parsing is total: any bytes give steps or a `FILE:LINE` error, every
    /// parsed step prints as text that parses back, and running never panics.
    #[test]
    fn any_bytes_parse_or_fail_with_a_line(bytes in scenario_bytes()) {
        match procmon_sim::parse("any.scn", &bytes) {
            Err(error) => {
                let lines = bytes.split(|&b| b == b'\n').count();
                prop_assert!(error.line >= 1 && error.line <= lines, "{}", error);
                let prefix = format!("any.scn:{}: ", error.line);
                prop_assert!(error.to_string().starts_with(&prefix), "{}", error);
            }
            Ok(steps) => {
                for numbered in &steps {
                    let text = numbered.step.to_string();
                    let parsed = procmon_sim::parse_line(text.as_bytes());
                    prop_assert_eq!(parsed, Ok(Some(numbered.step.clone())), "{}", text);
                }
                let _ = procmon_sim::run("any.scn", &bytes);
            }
        }
    }
}

/// The model's line rule is the contract's own example.
#[test]
fn the_model_splits_lines_as_the_contract_says() {
    let split = |input: &[u8]| {
        let (mut buffer, mut lines) = (Vec::new(), Vec::new());
        split_lines(&mut buffer, input, 4, &mut lines);
        (lines, buffer)
    };
    assert_eq!(
        split(b"abcdefgh\n"),
        (vec![b"abcd".to_vec(), b"efgh".to_vec()], vec![])
    );
    assert_eq!(split(b"abcd\n"), (vec![b"abcd".to_vec()], vec![]));
}
