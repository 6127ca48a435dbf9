//! Issue 10, operating a running procmon: `GET /metrics` over HTTP, the
//! open-files limit, and spawn failures that say what failed, against a
//! real procmon running real processes. Every wait is against a generous
//! deadline; nothing asserts how long anything took.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::served::{ctl, text, Served, PATIENCE};
use common::TempDir;

/// procmon with `config` plus a `[control]` table naming a free port for
/// its metrics.
fn with_metrics(config: &str) -> Served {
    // The port is free when we look and may be taken before procmon binds
    // it; that is a usage error we can tell, so try again.
    for _ in 0..10 {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe");
            probe.local_addr().unwrap().port()
        };
        let full = format!("{config}\n[control]\nmetrics_listen = \"127.0.0.1:{port}\"\n");
        match Served::try_start(&full, &[]) {
            Ok(mut served) => {
                served.metrics = Some(SocketAddr::from(([127, 0, 0, 1], port)));
                return served;
            }
            Err(stderr) if stderr.contains("in use") => continue,
            Err(stderr) => panic!("procmon did not start:\n{stderr}"),
        }
    }
    panic!("no free port in ten tries");
}

/// Sends `request` to procmon's metrics port on a new connection and reads
/// until procmon closes.
fn http(served: &Served, request: &[u8]) -> String {
    let address = served.metrics.expect("started with metrics");
    let mut stream = TcpStream::connect(address).expect("connect to metrics");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    // procmon may answer (400) and close before all of a long request is
    // written; the answer is what counts.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

const UP: &str = r#"
[[process]]
name = "web"
argv = ["sleep", "1000"]
"#;

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[test]
fn get_metrics_answers_with_the_prometheus_text() {
    let procmon = with_metrics(UP);
    let mut answer = String::new();
    procmon.until("web is up in the metrics", || {
        answer = http(
            &procmon,
            b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
        );
        answer.contains("procmon_process_up{name=\"web\"} 1")
    });
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}", body.len())),
        "{head}"
    );
    // The same families as `procmon ctl metrics`.
    let ctl = procmon.ctl(&["metrics"]);
    let ctl = String::from_utf8_lossy(&ctl.stdout);
    let families = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_string)
            .collect()
    };
    assert!(!families(body).is_empty(), "{body}");
    assert_eq!(families(body), families(&ctl));
}

#[test]
fn nothing_else_is_served() {
    let procmon = with_metrics(UP);
    let other = http(&procmon, b"GET /other HTTP/1.1\r\n\r\n");
    assert_eq!(status_line(&other), "HTTP/1.1 404 Not Found", "{other}");
    let post = http(
        &procmon,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        status_line(&post),
        "HTTP/1.1 405 Method Not Allowed",
        "{post}"
    );
    assert!(!post.contains("procmon_"), "{post}");
    let mut long = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while long.len() <= 9 * 1024 {
        long.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    long.extend_from_slice(b"\r\n");
    let long = http(&procmon, &long);
    assert_eq!(status_line(&long), "HTTP/1.1 400 Bad Request", "{long}");
    let garbage = http(
        &procmon,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http",
    );
    assert_eq!(
        status_line(&garbage),
        "HTTP/1.1 400 Bad Request",
        "{garbage}"
    );
    // A client that connects and says nothing, and one that hangs up
    // halfway, hold up nobody.
    let address = procmon.metrics.unwrap();
    let _silent = TcpStream::connect(address).unwrap();
    let mut halfway = TcpStream::connect(address).unwrap();
    halfway.write_all(b"GET /met").unwrap();
    drop(halfway);
    let status = procmon.ctl(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", procmon.stderr());
    let again = http(&procmon, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status_line(&again), "HTTP/1.1 200 OK", "{again}");
}

#[test]
fn fifty_connections_at_once_are_all_answered() {
    let procmon = with_metrics(UP);
    let address = procmon.metrics.unwrap();
    // All connected before any request is sent, so procmon holds them all.
    let mut streams: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect();
    for stream in &mut streams {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    }
    for (i, mut stream) in streams.into_iter().enumerate() {
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read an answer");
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "connection {i}");
        assert!(answer.contains("procmon_processes 1"), "{answer}");
    }
}

#[test]
fn a_port_in_use_is_a_usage_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = format!("{UP}\n[control]\nmetrics_listen = \"127.0.0.1:{port}\"\n");
    let stderr = Served::try_start(&config, &[])
        .err()
        .expect("procmon must not start");
    assert!(stderr.starts_with("exit code Some(2)\n"), "{stderr}");
    assert!(
        stderr.contains(&format!("metrics_listen 127.0.0.1:{port}")) && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn spawn_failures_say_what_failed() {
    let dir = TempDir::new();
    let data = dir.write("data.txt", "not a program\n");
    let config = format!(
        r#"
minrestartdelay = 30
maxrestartdelay = 60
[[process]]
name = "missing"
argv = ["/nonexistent/procmon-test-bin"]
[[process]]
name = "nocwd"
argv = ["true"]
cwd = "/nonexistent/procmon-test-dir"
[[process]]
name = "noexec"
argv = ["{}"]
"#,
        data.display()
    );
    let procmon = Served::try_start(&config, &[]).unwrap_or_else(|e| panic!("{e}"));
    procmon.until("three failures", || {
        procmon.stderr().matches("spawn failed").count() >= 3
    });
    let err = procmon.stderr();
    for want in [
        "[missing] spawn failed: program not found; exec: No such file or directory",
        "[nocwd] spawn failed: cwd does not exist; chdir: No such file or directory",
        "[noexec] spawn failed: program not executable (permission denied); exec: Permission denied",
    ] {
        assert!(err.contains(want), "no {want:?} in\n{err}");
    }
}

#[test]
fn spawn_failures_in_json_carry_their_stage() {
    let dir = TempDir::new();
    let config = dir.write(
        "procmon.toml",
        r#"
minrestartdelay = 30
maxrestartdelay = 60
[[process]]
name = "nocwd"
argv = ["true"]
cwd = "/nonexistent/procmon-test-dir"
"#,
    );
    let mut child = common::procmon(&[
        "--log-format".as_ref(),
        "json".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start procmon");
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    let line = loop {
        let mut buf = [0u8; 4096];
        let n = stderr.read(&mut buf).expect("read procmon's stderr");
        assert!(
            n > 0 && Instant::now() < deadline,
            "no spawn_failed in {seen:?}"
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains("spawn_failed")) {
            break line.to_string();
        }
    };
    // SAFETY: a plain syscall on the process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let event: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
    assert_eq!(event["name"], "nocwd", "{line}");
    assert_eq!(event["stage"], "chdir", "{line}");
    assert_eq!(event["what"], "cwd does not exist", "{line}");
    assert_eq!(event["errno"], libc::ENOENT, "{line}");
}

/// Whether `program` runs at all here (`prlimit` is util-linux's, which a
/// small image may lack).
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn running_out_of_descriptors_is_told_once_and_procmon_keeps_serving() {
    if !runs("prlimit", &["--version"]) {
        eprintln!("skipped: no prlimit to lower procmon's RLIMIT_NOFILE");
        return;
    }
    // Fifteen children at three descriptors each cannot fit in 40 with
    // procmon's own: the first few start, the rest fail with EMFILE and
    // retry. A failed spawn gives back what it opened, and a successful
    // one needs five at once, so at least two stay free for a client.
    let mut config = String::from("minrestartdelay = 0.1\nmaxrestartdelay = 0.3\n");
    for i in 0..15 {
        config.push_str(&format!(
            "[[process]]\nname = \"p{i}\"\nargv = [\"sleep\", \"1000\"]\n"
        ));
    }
    let mut procmon = Served::try_start(&config, &["prlimit", "--nofile=40:40"])
        .unwrap_or_else(|e| panic!("procmon did not start: {e}"));
    procmon.until("many failed spawns", || {
        procmon
            .stderr()
            .matches("spawn failed: too many open files")
            .count()
            >= 10
    });
    let err = procmon.stderr();
    assert_eq!(
        err.matches(
            "RLIMIT_NOFILE 40 reached: procmon holds 3 descriptors per child, \
             4 with a readiness channel"
        )
        .count(),
        1,
        "{err}"
    );
    assert!(
        procmon.child.try_wait().unwrap().is_none(),
        "procmon died:\n{err}"
    );
    // Serving still: some processes are not running (3), and it says so.
    let status = procmon.ctl(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", procmon.stderr());
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(table.contains("p0") && table.contains("running"), "{table}");
}

/// procmon with a config file only (no `--socket`), so that the config's
/// `[control] socket` is the one served; its stderr collected as it comes.
struct ConfigOnly {
    child: std::process::Child,
    err: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ConfigOnly {
    fn start(config: &std::path::Path, socket: &std::path::Path) -> ConfigOnly {
        let mut child = common::procmon(&["--config".as_ref(), config.as_os_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start procmon");
        let err = common::served::collect_stderr(&mut child);
        let procmon = ConfigOnly { child, err };
        procmon.until("procmon serves its socket", || {
            ctl(socket, &["version"]).status.code() == Some(0)
        });
        procmon
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "never: {what}\n--- procmon's stderr ---\n{}",
                self.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for ConfigOnly {
    fn drop(&mut self) {
        common::stop_group(&mut self.child);
    }
}

/// A process's live pid by `ctl status --json` on `socket`, or 0.
fn pid_on(socket: &std::path::Path, name: &str) -> i64 {
    let out = ctl(socket, &["status", "--json", name]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status[0]["pid"].as_i64().unwrap_or(0)
}

#[test]
fn a_reload_names_what_needs_a_restart_and_still_applies_the_rest() {
    let dir = TempDir::new();
    let old_socket = dir.path("old.sock");
    let new_socket = dir.path("new.sock");
    let config = |socket: &std::path::Path, log_lines: usize, argv: &str| {
        format!(
            r#"
[control]
socket = "{}"
log_lines = {log_lines}
[[process]]
name = "chatty"
argv = ["sh", "-c", "for i in $(seq 30); do echo line $i; done; exec sleep 1000"]
[[process]]
name = "web"
argv = {argv}
"#,
            socket.display()
        )
    };
    let path = dir.write(
        "procmon.toml",
        &config(&old_socket, 50, r#"["sleep", "1000"]"#),
    );
    let procmon = ConfigOnly::start(&path, &old_socket);
    procmon.until("chatty's thirty lines are kept and web runs", || {
        let logs = ctl(&old_socket, &["logs", "chatty", "-n", "100"]);
        text(&logs.stdout).lines().count() == 30 && pid_on(&old_socket, "web") > 0
    });
    let web = pid_on(&old_socket, "web");
    std::fs::write(&path, config(&new_socket, 10, r#"["sleep", "2000"]"#)).unwrap();
    let needs = "needs a restart of procmon: control.socket, control.log_lines";

    // The dry run names them beside the process change, and changes
    // nothing.
    let dry = ctl(&old_socket, &["reload", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert_eq!(text(&dry.stdout), format!("web: restarted\n{needs}\n"));
    procmon.until("the dry run is told on stderr", || {
        procmon.stderr().contains(&format!(
            "procmon: reload (dry run): would not be applied, {needs}\n"
        ))
    });
    assert_eq!(pid_on(&old_socket, "web"), web);

    // The reload: the same words, exit 0, and the process change applied.
    let reload = ctl(&old_socket, &["reload"]);
    assert_eq!(reload.status.code(), Some(0), "{}", text(&reload.stderr));
    assert_eq!(text(&reload.stdout), format!("web: restarted\n{needs}\n"));
    procmon.until("the reload is told on stderr", || {
        procmon
            .stderr()
            .contains(&format!("procmon: reload: not applied, {needs}\n"))
    });
    procmon.until("web runs its new instance", || {
        let pid = pid_on(&old_socket, "web");
        pid > 0 && pid != web
    });
    // The old socket still serves, the new one was never bound, and the
    // ring still keeps 50 lines, not 10.
    assert!(!new_socket.exists());
    let logs = ctl(&old_socket, &["logs", "chatty", "-n", "100"]);
    assert_eq!(
        text(&logs.stdout).lines().count(),
        30,
        "{}",
        text(&logs.stdout)
    );

    // Still pending, so named again by the reply's field; the process
    // change, applied, is not.
    let mut stream = std::os::unix::net::UnixStream::connect(&old_socket).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"{\"v\":1,\"id\":1,\"op\":\"reload\"}\n")
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut line).unwrap();
    let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        reply["result"]["restart_needed"],
        serde_json::json!(["control.socket", "control.log_lines"]),
        "{reply}"
    );
    assert_eq!(reply["result"]["changes"], serde_json::json!([]), "{reply}");
    assert_eq!(reply["result"]["access_changed"], false, "{reply}");
}
