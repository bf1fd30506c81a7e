//! Live tests: the built `templater` binary as a subprocess against a real
//! in-process registry-node (`TestAgent`, port 0), in temp directories.
//!
//! Waiting is on conditions (file contents, log lines) with generous
//! deadlines; the few fixed pauses only give something that must *not*
//! happen the time to happen (longer than the quiescence window).

mod t10_daemon;
mod t20_modes;
mod t30_check;
mod t40_outage;
mod t50_config;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use registry_node::testing::TestAgent;
use serde_json::json;

/// How long a condition may take on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The seed's nginx template (seed 001).
pub const NGINX_CTMPL: &str = r#"upstream http_backend {
{{range service "nginx"}}
server {{ .Address }}:{{ .Port }};
{{ end }}
}
server {
listen 8888;
server_name localhost;
location / {
proxy_pass http://http_backend;
}
}
"#;

/// A running templater with its stderr (the log) captured.
pub struct Templater {
    child: Child,
    log: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl Templater {
    /// Starts the binary in `dir` with `args`.
    pub fn start(dir: &Path, args: &[&str]) -> Templater {
        let mut child = Command::new(env!("CARGO_BIN_EXE_templater"))
            .args(args)
            .current_dir(dir)
            .env_remove("CONSUL_HTTP_ADDR")
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start templater");
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        for (pipe, buf) in [
            (
                Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
                log.clone(),
            ),
            (Box::new(child.stdout.take().unwrap()), stdout.clone()),
        ] {
            std::thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    buf.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        Templater { child, log, stdout }
    }

    /// The process ID.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (printing the log on timeout).
    pub async fn wait_log(&self, needle: &str) {
        self.wait_log_count(needle, 1).await;
    }

    /// Waits until the log contains `needle` at least `n` times.
    pub async fn wait_log_count(&self, needle: &str, n: usize) {
        let log = self.log.clone();
        wait_until(&format!("log line {needle:?} x{n}"), || {
            log.lock().unwrap().matches(needle).count() >= n
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- log:\n{}", self.log()));
    }

    /// The last line containing `needle`.
    pub fn last_line(&self, needle: &str) -> Option<String> {
        self.log()
            .lines()
            .rev()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).expect("signal templater");
    }

    /// Waits for the exit (up to [`DEADLINE`]).
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("templater did not exit\n--- log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Templater {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms up to [`DEADLINE`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits until `path` exists and its contents satisfy `pred`; returns them.
pub async fn wait_file(path: &Path, what: &str, pred: impl Fn(&str) -> bool) -> String {
    wait_until(&format!("{} {what}", path.display()), || {
        std::fs::read_to_string(path).is_ok_and(|s| pred(&s))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; now: {:?}", std::fs::read_to_string(path)));
    std::fs::read_to_string(path).unwrap()
}

/// Lines in a file (0 when missing).
pub fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// `host:port` of an agent.
pub fn addr(a: &TestAgent) -> String {
    a.handle.http_addr.to_string()
}

/// Registers service `name` instance `id` at `ip:port` on the agent.
pub async fn register(a: &TestAgent, name: &str, id: &str, ip: &str, port: u16) {
    let r = a
        .http
        .put(a.url("/v1/agent/service/register"))
        .json(&json!({"Name": name, "ID": id, "Address": ip, "Port": port}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "register: {}", r.status());
}

/// Deregisters instance `id`.
pub async fn deregister(a: &TestAgent, id: &str) {
    let r = a
        .http
        .put(a.url(&format!("/v1/agent/service/deregister/{id}")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "deregister: {}", r.status());
}

/// Writes a KV key.
pub async fn kv_put(a: &TestAgent, key: &str, value: &str) {
    let r = a
        .http
        .put(a.url(&format!("/v1/kv/{key}")))
        .body(value.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "kv put: {}", r.status());
}

/// A temp dir with the nginx template in it.
pub fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    std::fs::write(path.join("nginx.ctmpl"), NGINX_CTMPL).unwrap();
    (dir, path)
}

/// Whether process `pid` is gone (not even a zombie of ours).
pub fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}
