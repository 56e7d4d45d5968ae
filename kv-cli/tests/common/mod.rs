//! Helpers shared by the tests that run the `kv` binary.
//!
//! Every child process is owned by a [`Running`] guard that kills it when
//! dropped, so a failing assertion never leaves a node behind. Waits poll
//! with a deadline instead of sleeping a fixed time.

#![allow(dead_code)]

pub mod nodes;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one `kv` invocation may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished `kv` invocation printed and returned.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// A `kv` command running in `dir` with a clean environment.
pub fn kv(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kv"));
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env_remove("RUST_LOG")
        .env_remove("KV_CLUSTER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `kv args...` in `dir`, feeding `stdin`, and waits for it.
pub fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = kv(dir);
    cmd.args(args).stdin(Stdio::piped());
    let mut child = Running::spawn(cmd);
    let mut input = child.0.stdin.take().expect("stdin is piped");
    let text = stdin.to_string();
    let writer = thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = reader(child.0.stdout.take());
    let err = reader(child.0.stderr.take());
    let status = child.wait_for(RUN_TIMEOUT);
    let _ = writer.join();
    let output = Output {
        code: status.and_then(|s| s.code()),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
    assert!(
        status.is_some(),
        "kv {args:?} did not finish within {RUN_TIMEOUT:?}: {output:?}"
    );
    output
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// A child process that is killed when dropped.
pub struct Running(pub Child);

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        Running(cmd.spawn().expect("spawning kv"))
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends signal `name` (`"INT"`, `"TERM"`) with kill(1).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.0.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` ports that were free a moment ago (all bound at once, so distinct).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with
/// `what` and the last state after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(found) => return found,
            Err(state) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last state:\n{state}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Every file under `dir` with its contents, sorted by path.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("reading a data file");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}
