//! A real procmon started with a config and serving its control socket in
//! a temp dir of its own: the fixture of the control and metrics tests.

// Each test file compiles `common`; not every one serves a socket.
#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::TempDir;

/// How long any wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running procmon; dropping it stops its group ([`super::stop_group`]).
pub struct Served {
    pub child: Child,
    pub dir: TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// Where it serves metrics over HTTP, if the test set that up.
    pub metrics: Option<SocketAddr>,
    err: Arc<Mutex<String>>,
}

impl Served {
    /// procmon with `config`, serving its socket; panics if it does not.
    pub fn start(config: &str) -> Served {
        Served::try_start(config, &[]).unwrap_or_else(|e| panic!("procmon did not start:\n{e}"))
    }

    /// procmon with `config`, run through `wrapper` (a command and its
    /// arguments, as `prlimit --nofile=40:40`) if not empty; its exit code
    /// and stderr if it exits before serving its socket.
    pub fn try_start(config: &str, wrapper: &[&str]) -> Result<Served, String> {
        let dir = TempDir::new();
        let config_path = dir.write("procmon.toml", config);
        let socket = dir.path("control/procmon.sock");
        let procmon = super::procmon(&[
            "--config".as_ref(),
            config_path.as_os_str(),
            "--socket".as_ref(),
            socket.as_os_str(),
        ]);
        let mut command = match wrapper.split_first() {
            None => procmon,
            Some((program, args)) => {
                let mut command = Command::new(program);
                command
                    .args(args)
                    .arg(procmon.get_program())
                    .args(procmon.get_args())
                    .stdin(Stdio::null());
                std::os::unix::process::CommandExt::process_group(&mut command, 0);
                for (key, value) in procmon.get_envs() {
                    if let Some(value) = value {
                        command.env(key, value);
                    }
                }
                command
            }
        };
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start procmon");
        let err = collect_stderr(&mut child);
        let mut served = Served {
            child,
            dir,
            socket,
            config: config_path,
            metrics: None,
            err,
        };
        let deadline = Instant::now() + PATIENCE;
        while served.ctl(&["version"]).status.code() != Some(0) {
            if let Some(exited) = served.child.try_wait().unwrap() {
                // Let the reader thread take the last of stderr.
                std::thread::sleep(Duration::from_millis(200));
                return Err(format!(
                    "exit code {:?}\n{}",
                    exited.code(),
                    served.stderr()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "procmon never served its socket:\n{}",
                served.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(served)
    }

    /// `procmon ctl ARGS` on this procmon's socket.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl(&self.socket, args)
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> Vec<Value> {
        let out = self.ctl(&["status", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}: {}", text(&out.stdout)))
            .as_array()
            .cloned()
            .unwrap()
    }

    /// One process's status object.
    pub fn process(&self, name: &str) -> Value {
        self.status()
            .into_iter()
            .find(|p| p["name"] == json!(name))
            .unwrap_or_else(|| panic!("no {name} in status"))
    }

    /// Its live pid, or 0.
    pub fn pid(&self, name: &str) -> i64 {
        self.process(name)["pid"].as_i64().unwrap_or(0)
    }

    /// Waits until `done`, or fails with procmon's stderr.
    pub fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            if Instant::now() > deadline {
                panic!("never: {what}\n--- procmon's stderr ---\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every process is `running`.
    pub fn until_all_run(&self) {
        self.until("every process runs", || {
            self.status().iter().all(|p| p["state"] == json!("running"))
        });
    }

    /// Everything procmon wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Waits for procmon to exit; its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "procmon did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        super::stop_group(&mut self.child);
    }
}

/// A child's stderr, collected as it comes by a thread of its own, so
/// that a chatty procmon never blocks on a full pipe while a test waits.
pub fn collect_stderr(child: &mut std::process::Child) -> Arc<Mutex<String>> {
    let err = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().expect("stderr piped");
    let sink = err.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    err
}

/// `procmon ctl --socket SOCKET ARGS`.
pub fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_procmon"))
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run procmon ctl")
}

/// Bytes as text, for messages and comparisons.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
