//! Drives `procmon-core` alone through crash/restart/output cycles and
//! prints events per second, for 10 and for 10,000 processes.
//!
//! Run: `cargo run --release -p procmon-core --example core_throughput`
//!
//! Each cycle of one process is four inputs: a chunk holding one full
//! 100-byte line, a chunk holding a partial line, the exit (which flushes the
//! partial line and schedules a zero-delay restart) and the restart timer
//! firing (which spawns the next instance). The world here does nothing but
//! hand those facts back, so the figure is the core's own cost.

use std::hint::black_box;
use std::time::Instant as WallClock;

use procmon_core::{
    Command, Duration, ExitStatus, Input, InstanceId, Instant, Monitor, ProcessSpec, Settings,
    Stream, TimerId,
};

const LINE: &[u8] = b"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456\n";
const PARTIAL: &[u8] = b"partial line without newline";

struct World {
    live: Vec<InstanceId>,
    timers: Vec<TimerId>,
    spawned: Vec<(usize, InstanceId)>,
    logged_bytes: u64,
}

impl World {
    fn drain(&mut self, monitor: &mut Monitor) {
        while let Some(command) = monitor.poll_command() {
            match command {
                Command::Spawn { instance, .. } => self.spawned.push((0, instance)),
                Command::SetTimer { timer, .. } => self.timers.push(timer),
                Command::Log(line) => self.logged_bytes += line.bytes.len() as u64,
                other => {
                    black_box(other);
                }
            }
        }
    }
}

fn run(processes: usize, events_wanted: u64) -> (f64, u64) {
    // A zero threshold makes every exit a long life: restarts are immediate.
    let mut settings = Settings::default();
    settings.threshold = Duration::ZERO;
    let mut monitor = Monitor::new(settings).expect("valid settings");
    let mut world = World {
        live: Vec::new(),
        timers: Vec::new(),
        spawned: Vec::new(),
        logged_bytes: 0,
    };
    let mut now = Instant::ZERO;
    for i in 0..processes {
        let name = format!("p{i}");
        monitor
            .add(now, &name, ProcessSpec::new(["true"]))
            .expect("unique name");
    }
    monitor.start_service(now).unwrap();
    world.drain(&mut monitor);
    world.live = world.spawned.drain(..).map(|(_, id)| id).collect();

    let mut events = 0u64;
    let started = WallClock::now();
    while events < events_wanted {
        for slot in 0..processes {
            now = Instant::from_nanos(now.as_nanos() + 1_000);
            let instance = world.live[slot];
            // Output as a real driver hands it in: lines lent, not queued.
            let logged = &mut world.logged_bytes;
            monitor.handle_output(now, instance, Stream::Stdout, LINE, |line| {
                *logged += line.bytes.len() as u64
            });
            monitor.handle_output(now, instance, Stream::Stderr, PARTIAL, |line| {
                *logged += line.bytes.len() as u64
            });
            monitor.handle(
                now,
                Input::Exited {
                    instance,
                    status: ExitStatus::Code(1),
                },
            );
            world.drain(&mut monitor);
            let timer = world.timers.pop().expect("an exit schedules a restart");
            monitor.handle(now, Input::TimerFired { timer });
            world.drain(&mut monitor);
            let (_, next) = world.spawned.pop().expect("a restart spawns");
            world.live[slot] = next;
            events += 4;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(monitor.stats().spawns, events / 4 + processes as u64);
    black_box(world.logged_bytes);
    (events as f64 / elapsed, events)
}

fn main() {
    let events = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000_000u64);
    // Warm up caches and the allocator once before measuring.
    run(10, events / 10);
    let mut figures = Vec::new();
    for processes in [10, 10_000] {
        let (rate, total) = run(processes, events);
        println!(
            "{processes:>6} processes: {total} events, {:.2} million events/s",
            rate / 1e6
        );
        figures.push(rate);
    }
    println!(
        "10,000-process rate / 10-process rate: {:.2}",
        figures[1] / figures[0]
    );
}
