//! Readiness, dependencies and container mode with real processes: a stack
//! that comes up in order and goes down in reverse, what `ctl status` says
//! of a waiting process, and the exit status of a container's procmon.

mod common;

use std::time::{Duration, Instant};

use common::served::{text, Served, PATIENCE};
use common::TempDir;
use serde_json::json;

/// Where `needle` first appears in `haystack`, or a failure naming it.
fn at(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{haystack}"))
}

/// Waits until procmon's stderr holds `needle`.
fn until_logged(served: &Served, needle: &str) {
    served.until(&format!("stderr holds {needle:?}"), || {
        served.stderr().contains(needle)
    });
}

/// db is ready when it says so on its output, migrate is a one-shot after
/// db is ready, web waits for both; a stop ends web before db gets its
/// stop signal, even though web takes its time.
#[test]
fn a_stack_comes_up_in_order_and_goes_down_in_reverse() {
    let served = Served::start(
        r#"
killtime = 20

[[process]]
name = "db"
argv = ["sh", "-c", "sleep 0.3; echo 'db: accepting connections'; exec sleep 1000"]
ready = { log = "accepting connections" }

[[process]]
name = "migrate"
argv = ["sh", "-c", "sleep 0.2; echo migrated"]
restart = "never"
after = { db = "ready" }

[[process]]
name = "web"
argv = ["sh", "-c", "trap 'sleep 0.5; echo web done; exit 0' TERM; while :; do sleep 0.05; done"]
after = { db = "ready", migrate = "completed" }
"#,
    );
    served.until("web runs", || {
        served.process("web")["state"] == json!("running")
    });
    assert_eq!(served.process("migrate")["state"], json!("exited"));
    assert_eq!(served.process("db")["state"], json!("running"));
    let up = served.stderr();
    let db_ready = at(&up, "[db] ready");
    let migrate_spawned = at(&up, "[migrate] spawned");
    let migrate_exited = at(&up, "[migrate] exited with code 0");
    let web_spawned = at(&up, "[web] spawned");
    assert!(
        at(&up, "[migrate] waiting for db (ready)") < db_ready,
        "{up}"
    );
    assert!(
        db_ready < migrate_spawned,
        "migrate before db was ready:\n{up}"
    );
    assert!(
        migrate_exited < web_spawned,
        "web before migrate completed:\n{up}"
    );
    // The status exit code says everything wanted up is up.
    assert_eq!(served.ctl(&["status"]).status.code(), Some(0));

    assert_eq!(served.ctl(&["shutdown"]).status.code(), Some(0));
    until_logged(&served, "all processes stopped, exiting");
    let down = served.stderr();
    let web_end = at(&down, "[web] exited with code 0");
    let db_term = at(&down, "[db] sending TERM");
    assert!(
        web_end < db_term,
        "db was sent TERM while web still ran:\n{down}"
    );
}

/// A waiting process says what it waits for, in the table and in JSON,
/// and that it may wait for ever when its dependency has failed; the
/// status exit code counts it as down.
#[test]
fn ctl_status_names_what_a_process_waits_for() {
    let served = Served::start(
        r#"
[[process]]
name = "db"
argv = ["sh", "-c", "echo booting; exec sleep 1000"]
ready = { log = "never printed" }

[[process]]
name = "web"
argv = ["sleep", "1000"]
after = { db = "ready" }

[[process]]
name = "broken"
argv = ["sh", "-c", "exit 1"]
give_up_after = 1

[[process]]
name = "api"
argv = ["sleep", "1000"]
after = { broken = "completed" }
"#,
    );
    served.until("broken fails", || {
        served.process("broken")["state"] == json!("failed")
    });
    let web = served.process("web");
    assert_eq!(web["state"], json!("waiting"));
    assert_eq!(
        web["waiting_for"],
        json!({"name": "db", "condition": "ready", "state": "starting", "stuck": false})
    );
    assert_eq!(served.process("db")["state"], json!("starting"));
    let table = served.ctl(&["status"]);
    let shown = text(&table.stdout);
    assert!(shown.contains("waiting for db (ready)"), "{shown}");
    assert!(
        shown.contains("waiting for broken (completed); broken is failed"),
        "{shown}"
    );
    assert_eq!(table.status.code(), Some(3), "waiting is not up:\n{shown}");
}

/// Runs `config` (with `[container] enabled = true` added) until procmon
/// exits by itself; its exit code and stderr. The children wait for the
/// file `go` in `dir` before they do anything, so that procmon serves its
/// socket first.
fn container_run(dir: &TempDir, config: &str, wrapper: &[&str]) -> (Option<i32>, String) {
    let config = format!("[container]\nenabled = true\n{config}");
    let mut served = Served::try_start(&config, wrapper).expect("procmon starts");
    std::fs::write(dir.path("go"), "").unwrap();
    let code = served.wait();
    // The stderr reader takes the last lines after the exit.
    std::thread::sleep(Duration::from_millis(200));
    (code, served.stderr())
}

/// `sh -c` text that waits for the go file, then runs `then`.
fn after_go(dir: &TempDir, then: &str) -> String {
    format!(
        "while [ ! -e {} ]; do sleep 0.02; done; {then}",
        dir.path("go").display()
    )
}

/// A `[[process]]` table running `script` with `sh -c`, then `keys`.
fn process(name: &str, script: &str, keys: &str) -> String {
    format!("[[process]]\nname = \"{name}\"\nargv = [\"sh\", \"-c\", \"{script}\"]\n{keys}\n")
}

#[test]
fn container_mode_exits_0_when_every_process_ended_well() {
    let dir = TempDir::new();
    let config = process("job", &after_go(&dir, "exit 0"), "restart = \"on-failure\"")
        + &process(
            "report",
            "exit 0",
            "restart = \"never\"\nafter = { job = \"completed\" }",
        );
    let (code, err) = container_run(&dir, &config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("nothing is running and nothing is due; exiting with status 0"),
        "{err}"
    );
    assert!(err.contains("[report] spawned"), "{err}");
}

#[test]
fn container_mode_exits_1_when_a_process_failed() {
    let dir = TempDir::new();
    let config = process("job", &after_go(&dir, "exit 4"), "restart = \"never\"")
        + &process("fine", "exit 0", "restart = \"never\"");
    let (code, err) = container_run(&dir, &config, &[]);
    assert_eq!(code, Some(1), "{err}");
}

/// A critical process's end stops the rest (dependents first) and gives
/// procmon its exit code.
#[test]
fn container_mode_exits_with_a_critical_processs_code() {
    let dir = TempDir::new();
    let (code, err) = container_run(
        &dir,
        &format!(
            r#"
[[process]]
name = "db"
argv = ["sleep", "1000"]

[[process]]
name = "app"
argv = ["sh", "-c", "{}"]
restart = "never"
critical = true
after = {{ db = "started" }}

[[process]]
name = "sidecar"
argv = ["sh", "-c", "trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done"]
after = {{ db = "started" }}
"#,
            after_go(&dir, "exit 3"),
        ),
        &[],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains(
            "[app] critical process ended; stopping everything, then exiting with status 3"
        ),
        "{err}"
    );
    let sidecar_end = at(&err, "[sidecar] exited with code 0");
    let db_term = at(&err, "[db] sending TERM");
    assert!(
        sidecar_end < db_term,
        "db stopped before its dependent:\n{err}"
    );
}

/// Killed by a signal, a critical process gives 128 + its number, as a
/// shell would.
#[test]
fn container_mode_gives_128_plus_the_signal_of_a_killed_critical_process() {
    let dir = TempDir::new();
    let app = after_go(&dir, "kill -USR1 $$");
    let config = process("app", &app, "restart = \"never\"\ncritical = true");
    let (code, err) = container_run(&dir, &config, &[]);
    assert_eq!(code, Some(128 + libc::SIGUSR1), "{err}");
}

/// As PID 1 of a PID namespace (a container), the critical process's code
/// is the container's.
#[test]
fn as_pid_1_container_mode_exits_with_the_critical_code() {
    if let Some(reason) = common::no_pid_namespace() {
        eprintln!("skipped as_pid_1_container_mode_exits_with_the_critical_code: {reason}");
        return;
    }
    let dir = TempDir::new();
    let app = after_go(&dir, "[ $PPID = 1 ] && exit 7; exit 9");
    let config = process("app", &app, "restart = \"never\"\ncritical = true")
        + &process("helper", "exec sleep 1000", "");
    let wrapper = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"];
    let (code, err) = container_run(&dir, &config, &wrapper);
    assert_eq!(
        code,
        Some(7),
        "app's parent is not PID 1, or wrong code:\n{err}"
    );
}

/// In container mode a second TERM kills at once, as a second INT does.
#[test]
fn container_mode_kills_at_a_second_term() {
    let mut served = Served::start(
        r#"
[container]
enabled = true

[[process]]
name = "stubborn"
argv = ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"]
killtime = 600
"#,
    );
    let pid = served.child.id() as i32;
    // SAFETY: plain kill(2) on the procmon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    until_logged(&served, "[stubborn] sending TERM");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let started = Instant::now();
    let code = served.wait();
    assert!(started.elapsed() < PATIENCE);
    std::thread::sleep(Duration::from_millis(200));
    let err = served.stderr();
    assert!(err.contains("[stubborn] sending KILL to pid"), "{err}");
    assert!(err.contains("at once"), "{err}");
    // Ended on request, if by KILL: a clean stop, status 0.
    assert_eq!(code, Some(0), "{err}");
}

/// Under a service manager (`NOTIFY_SOCKET` set, as systemd does for
/// `Type=notify`), procmon says `READY=1` only once every process is up as
/// far as it will come (here: after db said it is ready and web, which
/// waits for it, has started), keeps `STATUS=` current, and says
/// `STOPPING=1` when it stops.
#[test]
fn procmon_tells_its_service_manager_when_it_is_ready() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new();
    let manager_path = dir.path("notify.sock");
    let manager = UnixDatagram::bind(&manager_path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let go = dir.path("go");
    let config = dir.write(
        "stack.toml",
        &format!(
            r#"
[[process]]
name = "db"
argv = ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.02; done; echo 'db up'; exec sleep 1000"]
ready = {{ log = "db up" }}

[[process]]
name = "web"
argv = ["sleep", "1000"]
after = {{ db = "ready" }}
"#,
            go = go.display()
        ),
    );
    let mut child = common::procmon(&["--config".as_ref(), config.as_os_str()])
        .env("NOTIFY_SOCKET", &manager_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut said = String::new();
    let receive_until = |said: &mut String, what: &str, done: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0u8; 4096];
        while !done(said) {
            assert!(Instant::now() < deadline, "never {what}; got:\n{said}");
            if let Ok(n) = manager.recv(&mut buf) {
                said.push_str(&String::from_utf8_lossy(&buf[..n]));
                said.push_str("--\n");
            }
        }
    };
    receive_until(&mut said, "a status with web waiting", &|s| {
        s.contains("STATUS=1 starting, 1 waiting")
    });
    assert!(!said.contains("READY=1"), "ready before db was:\n{said}");
    std::fs::write(&go, "").unwrap();
    receive_until(&mut said, "READY=1", &|s| s.contains("READY=1"));
    assert!(said.contains("STATUS=2 running"), "{said}");
    // SAFETY: plain kill(2) on the procmon this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    receive_until(&mut said, "STOPPING=1", &|s| s.contains("STOPPING=1"));
    assert_eq!(said.matches("READY=1").count(), 1, "{said}");
    common::stop_group(&mut child);
}

/// The two channels procmon hands a child, end to end through the
/// command: db speaks sd_notify (a real client: python3's socket module,
/// as the process itself), web writes a newline to its notification fd 3
/// once db is ready; `ctl status` shows db's own `STATUS=` text.
#[test]
fn readiness_by_sd_notify_and_by_fd_through_the_command() {
    let gate = TempDir::new();
    let go = gate.path("go");
    let notify = format!(
        "import os, socket, time\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         a = os.environ['NOTIFY_SOCKET']\n\
         a = '\\0' + a[1:] if a.startswith('@') else a\n\
         s.sendto(b'STATUS=warming up', a)\n\
         while not os.path.exists('{go}'): time.sleep(0.02)\n\
         s.sendto(b'READY=1\\nSTATUS=accepting connections', a)\n\
         time.sleep(1000)\n",
        go = go.display()
    );
    let script = gate.write("db.py", &notify);
    let served = Served::start(&format!(
        r#"
[[process]]
name = "db"
argv = ["python3", "{script}"]
ready = "notify"

[[process]]
name = "web"
argv = ["sh", "-c", "echo >&3; exec sleep 1000"]
ready = "fd:3"
after = {{ db = "ready" }}
"#,
        script = script.display()
    ));
    served.until("db says it is warming up", || {
        served.process("db")["notify_status"] == json!("warming up")
    });
    assert_eq!(served.process("db")["state"], json!("starting"));
    assert_eq!(served.process("web")["state"], json!("waiting"));
    let table = text(&served.ctl(&["status"]).stdout);
    assert!(table.contains("STATUS"), "{table}");
    assert!(table.contains("warming up"), "{table}");

    std::fs::write(&go, "").unwrap();
    served.until("web is ready after db", || {
        served.process("web")["state"] == json!("running")
    });
    let db = served.process("db");
    assert_eq!(db["state"], json!("running"));
    assert_eq!(db["notify_status"], json!("accepting connections"));
    let log = served.stderr();
    assert!(at(&log, "[db] ready") < at(&log, "[web] spawned"), "{log}");
    assert!(log.contains("[web] ready"), "{log}");
    assert!(log.contains("[db] status: accepting connections"), "{log}");
}
