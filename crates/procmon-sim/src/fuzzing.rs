//! Fuzz bodies, compiled only with the `fuzzing` feature so that `fuzz/`
//! stays a thin shim that cannot drift out of date, and the bodies always
//! compile and run as unit tests.

use std::num::NonZeroU32;

use procmon_core::{
    Condition, Duration, ExitCodes, Policy, ProcessSpec, Readiness, RestartPolicy, Signal, Stream,
};

use crate::check::{execute, script, Model, NAMES};
use crate::{parse, parse_line, run, LineDelivery, Setting, SignalName, Sim, Step};

/// Decodes arbitrary bytes into steps and drives them through the core in
/// virtual time, checking the reference model after every step.
///
/// The bytes become, as in the property tests, five settings (threshold,
/// kill time, restart delays, line limit) and then up to 95 steps: API calls
/// (`add` with or without a policy, a readiness, a ready timeout, `after`
/// and `critical`; `down`, `restart`, `signal`, `fail-spawn` among them),
/// advances, exits, outside kills, term delays, output chunks of arbitrary
/// bytes, `ready`, `not-ready`, container mode and setting changes (see
/// [`decode`]).
/// Panics only on a bug: the monitor must follow [`Model`] after every
/// step, conserve output, and the same steps must give the same trace
/// whether output lines are lent or queued, also when replayed from text.
pub fn core_events(data: &[u8]) {
    let steps = decode(data);
    let mut model = Model::new();
    let first = execute(&steps, Some(&mut model), LineDelivery::Lent)
        .unwrap_or_else(|failure| panic!("{failure}"));
    let second =
        execute(&steps, None, LineDelivery::Queued).unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(
        first.sim.trace(),
        second.sim.trace(),
        "same steps, another trace (lines lent, then queued)"
    );
    assert_eq!(
        first.sim.events(),
        second.sim.events(),
        "same steps, other events"
    );
    let text = script(&first.executed);
    let replay = run("replay.scn", text.as_bytes());
    assert!(replay.passed(), "{replay:?}\n{text}");
    assert_eq!(first.sim.trace(), replay.trace.as_str(), "{text}");
}

/// The most steps [`decode`] makes, so that each input stays quick.
const MAX_STEPS: usize = 100;
const HALF_SECOND: u64 = 500_000_000;

/// Reads choices from the fuzzer's bytes; past the end, every choice is 0.
struct Choices<'a> {
    data: &'a [u8],
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// Mostly on a half-second grid (so coincidences are common), else any
    /// nanosecond up to the same bound.
    fn duration(&mut self, max_halves: u64) -> Duration {
        let b = self.byte();
        if b & 0x80 == 0 {
            Duration::from_nanos(u64::from(b) % (max_halves + 1) * HALF_SECOND)
        } else {
            let raw = u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]);
            Duration::from_nanos(u64::from(raw) * 8 % (max_halves * HALF_SECOND + 1))
        }
    }

    fn name(&mut self) -> String {
        NAMES[self.below(NAMES.len())].to_string()
    }
}

/// A policy from a flags byte and, for each flag set, the option's value:
/// bit 0 the restart policy, 1 success codes, 2 the stop signal, 3 the kill
/// time, 4 the threshold, 5 the min delay, 6 the max delay (which may clash
/// with the min: the `add` is then rejected), 7 give-up and retry.
fn policy(c: &mut Choices<'_>) -> Policy {
    let flags = c.byte();
    let mut policy = Policy::default();
    let has = |bit: u8| flags & (1 << bit) != 0;
    if has(0) {
        policy.restart = Some(
            [
                RestartPolicy::Always,
                RestartPolicy::OnFailure,
                RestartPolicy::Never,
            ][c.below(3)],
        );
    }
    if has(1) {
        let bits = c.byte();
        let codes: ExitCodes = (0..3u8).filter(|i| bits & (1 << i) != 0).collect();
        policy.success_codes = Some(if codes.is_empty() {
            ExitCodes::ZERO
        } else {
            codes
        });
    }
    if has(2) {
        policy.stop_signal = Some(Signal::ALL[c.below(Signal::ALL.len())]);
    }
    if has(3) {
        policy.kill_time = Some(c.duration(6));
    }
    if has(4) {
        policy.threshold = Some(c.duration(8));
    }
    if has(5) {
        policy.min_restart_delay = Some(c.duration(4));
    }
    if has(6) {
        policy.max_restart_delay = Some(c.duration(12));
    }
    if has(7) {
        let give_up = c.byte();
        if give_up & 0x80 != 0 {
            policy.give_up_after = NonZeroU32::new(u32::from(give_up & 0x03) % 3 + 1);
        }
        if give_up & 0x40 != 0 {
            policy.retry_failed_after = Some(c.duration(8));
        }
    }
    policy
}

/// The v5 options of an `add`, from bits 2 to 5 of its flags byte: bit 2 a
/// readiness (next byte: notify, fd 3, or a log text the output often
/// holds), bit 3 a ready timeout (at least 0.1 s: a zero timeout with zero
/// kill time and delays would kill and respawn forever at one instant),
/// bit 4 an `after` (next byte: for each earlier name in [`NAMES`], whether
/// and on which condition, so never a cycle), bit 5 `critical`.
fn v5(c: &mut Choices<'_>, flags: u8, name: &str, spec: &mut ProcessSpec) {
    if flags & 0x04 != 0 {
        spec.ready = match c.below(4) {
            0 => Readiness::Notify,
            1 => Readiness::Fd(3),
            2 => Readiness::LogLine(b"y".to_vec()),
            _ => Readiness::LogLine(b"x".to_vec()),
        };
    }
    if flags & 0x08 != 0 {
        spec.policy.ready_timeout = Some(c.duration(12).max(Duration::from_millis(100)));
    }
    if flags & 0x10 != 0 {
        let bits = c.byte();
        let own = NAMES.iter().position(|n| *n == name).unwrap_or(0);
        for (index, dependency) in NAMES[..own].iter().enumerate() {
            let choice = (bits >> (2 * index)) & 0x03;
            if let Some(&condition) = Condition::ALL.get(usize::from(choice)) {
                spec.after.push(procmon_core::Dependency {
                    name: dependency.to_string(),
                    condition,
                });
            }
        }
    }
    if flags & 0x20 != 0 {
        spec.policy.critical = true;
    }
}

/// Decodes bytes into steps: five setting bytes (as the property tests
/// generate them), then one opcode byte per step and its arguments.
pub fn decode(data: &[u8]) -> Vec<Step> {
    let mut c = Choices { data };
    let threshold = c.duration(8);
    let kill_time = c.duration(6);
    let min = c.duration(4);
    let extra = c.duration(8);
    let limit = c.below(8) + 1;
    let mut steps = vec![
        Step::Set(Setting::Threshold(threshold)),
        Step::Set(Setting::KillTime(kill_time)),
        Step::Set(Setting::MinRestartDelay(min)),
        Step::Set(Setting::MaxRestartDelay(min + extra)),
        Step::Set(Setting::LineLimit(limit)),
    ];
    while !c.data.is_empty() && steps.len() < MAX_STEPS {
        let step = match c.below(OPCODES) {
            0..=2 => {
                let name = c.name();
                let mut argv = vec![name.clone()];
                let flags = c.byte();
                if flags & 1 == 1 {
                    argv.push("--again".to_string());
                }
                let mut spec = ProcessSpec::new(argv);
                if flags & 2 == 2 {
                    spec = spec.with_policy(policy(&mut c));
                }
                v5(&mut c, flags, &name, &mut spec);
                Step::Add { name, spec }
            }
            3 => Step::Remove { name: c.name() },
            4 => Step::Start { name: c.name() },
            5 | 6 => Step::Stop { name: c.name() },
            7 => Step::RestartAll,
            8 | 9 => Step::StartService,
            10 => Step::StopService,
            11..=16 | 31 => Step::Advance(c.duration(16)),
            17 | 18 => Step::Exit {
                name: c.name(),
                code: c.below(3) as i32,
            },
            19 => Step::Kill {
                name: c.name(),
                signal: SignalName::from_name(["TERM", "KILL", "HUP", "INT", "USR1"][c.below(5)])
                    .expect("a known signal"),
            },
            20 => Step::TermDelay {
                name: c.name(),
                delay: c.duration(12),
            },
            21 | 22 => {
                let name = c.name();
                let flags = c.byte();
                let stream = if flags & 0x80 == 0 {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                let len = usize::from(flags & 0x0f).min(c.data.len());
                let (bytes, rest) = c.data.split_at(len);
                c.data = rest;
                Step::Output {
                    name,
                    stream,
                    bytes: bytes.to_vec(),
                }
            }
            23 => Step::Set(Setting::LineLimit(c.below(8) + 1)),
            24 | 25 => Step::Down { name: c.name() },
            26 | 27 => Step::Restart { name: c.name() },
            28 => Step::Signal {
                name: c.name(),
                signal: Signal::ALL[c.below(Signal::ALL.len())],
            },
            29 => Step::FailSpawn {
                name: c.name(),
                errno: [2, 13, 0][c.below(3)],
            },
            32 | 33 => Step::Ready { name: c.name() },
            34 => Step::NotReady { name: c.name() },
            35 => Step::Set(Setting::Container(c.byte() & 1 == 1)),
            _ => Step::Set(match c.below(4) {
                0 => Setting::Threshold(c.duration(8)),
                1 => Setting::KillTime(c.duration(6)),
                2 => Setting::MinRestartDelay(c.duration(4)),
                _ => Setting::MaxRestartDelay(c.duration(12)),
            }),
        };
        steps.push(step);
    }
    steps
}

/// How many opcodes [`decode`] tells apart. Opcodes 32 and up are the v5
/// steps; an opcode byte below 32 decodes as it did before them.
const OPCODES: usize = 36;

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
    /// The documented scenarios, the fuzzers' seed corpus; never empty.
    fn seed_scenarios() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scenarios");
        let mut sources = Vec::new();
        for entry in std::fs::read_dir(dir).expect("docs/scenarios") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "scn") {
                sources.push(std::fs::read(&path).expect("readable"));
            }
        }
        assert!(!sources.is_empty(), "no scenarios in {dir}");
        sources
    }

    /// The documented scenarios, cut at every tenth byte and with bytes
    /// flipped, are the kind of input a fuzzer starts from.
    #[test]
    fn the_fuzz_body_takes_scenarios_and_their_mutilations() {
        for source in seed_scenarios() {
            super::scenario_parser(&source);
            for cut in (0..source.len()).step_by(10) {
                super::scenario_parser(&source[..cut]);
                let mut flipped = source.clone();
                flipped[cut] ^= 0x80;
                super::scenario_parser(&flipped);
            }
        }
    }

    /// The core_events body over the seed scenarios (as the fuzzer starts
    /// from them), their prefixes, and fixed byte strings that reach every
    /// opcode.
    #[test]
    fn the_core_events_body_takes_seeds_and_fixed_inputs() {
        for source in seed_scenarios() {
            super::core_events(&source);
            for cut in (0..source.len()).step_by(37) {
                super::core_events(&source[..cut]);
            }
        }
        let fixed: &[&[u8]] = &[
            b"",
            b"\x00",
            b"\x04\x02\x01\x02\x03\x00\x00\x08\x0b\x05\x15\x00\x83ab\ncd\x0b\x09\x11\x01\x01",
            b"\x00\x00\x00\x00\x00\x01\x01\x08\x05\x00\x0b\x01\x0b\x7f\x13\x00\x02\x14\x00\x05",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        for input in fixed {
            super::core_events(input);
        }
        // The decoding reaches the interesting paths: add a, start the
        // service, write a partial line, let a ignore TERM for 3.5 s, stop a
        // (TERM), advance past KILL (kill time 1 s).
        let steps = super::decode(
            b"\x02\x02\x01\x02\x03\x00\x00\x00\x08\x15\x00\x02ab\x14\x00\x14\x05\x00\x0b\x0c",
        );
        let ran = crate::check::execute(&steps, None, crate::LineDelivery::Lent).expect("runs");
        let trace = ran.sim.trace();
        for word in ["spawn", "TERM", "KILL"] {
            assert!(trace.contains(word), "no {word} in\n{trace}");
        }
        // And the v4 paths: a with give-up after 1 and a retry after 2 s;
        // its first spawn fails, so it gives up, is retried, is held down,
        // gets HUP while stopping, then is restarted.
        let v4: &[u8] = b"\x04\x02\x01\x02\x03\x00\x00\x02\x80\xc0\x04\x1d\x00\x00\x08\x0b\x06\
            \x18\x00\x1c\x00\x00\x0b\x06\x1a\x00";
        let ran = crate::check::execute(&super::decode(v4), None, crate::LineDelivery::Lent)
            .expect("runs");
        assert_eq!(
            ran.sim.trace(),
            "0 spawn a \"a\"\n0 spawn-failed a errno 2\n0 gave-up a\n2 spawn a \"a\"\n\
             3 signal a TERM\n3 signal a HUP\n4 exit a code 0\n6 spawn a \"a\"\n"
        );
        super::core_events(v4);
        // And the v5 paths: a with a notify readiness and a ready timeout of
        // 1 s, b critical and after a is ready, so b waits until a's ready
        // at 0.5; container mode on; not-ready of b, which has no channel,
        // is rejected.
        let v5: &[u8] = &[
            4, 2, 1, 2, 3, // settings
            0, 0, 0x0c, 0, 2, // add a, notify, ready timeout 1 s
            1, 1, 0x30, 1, // add b, after a:ready, critical
            8, // start-service
            11, 1, // advance 0.5
            32, 0, // ready a
            35, 1, // set container on
            34, 1, // not-ready b: rejected, b has no channel
            11, 4, // advance 2
        ];
        let ran = crate::check::execute(&super::decode(v5), None, crate::LineDelivery::Lent)
            .expect("runs");
        assert_eq!(
            ran.sim.trace(),
            "0 spawn a \"a\"\n0 waiting b\n0.5 ready a\n0.5 spawn b \"b\"\n0.5 error not-ready b\n"
        );
        super::core_events(v5);
        // Every opcode, on every name, with a little time between.
        for op in 0..super::OPCODES as u8 {
            for name in 0..3u8 {
                let input = [
                    2, 2, 1, 2, 3, 0, name, 1, 8, 0, op, name, 0x85, b'x', b'\n', b'y', b'z', b'w',
                    11, 3, op, name, 1, 11, 40,
                ];
                super::core_events(&input);
            }
        }
    }
}
