//! Real-process suite: the `registry-node` binary started with Consul's flags on
//! port 0, its address read from the start-up banner (`HTTP: <port>`), then
//! killed with SIGKILL or stopped with signals.

mod t10_flags;
mod t20_durability;
mod t30_cli;
mod t35_reload;
mod t40_watch_lock;
mod t50_operator;
mod t60_cluster;
mod t70_dns;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_registry-node")
}

/// A running agent process.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// `127.0.0.1:<port>`, for `-http-addr`.
    pub addr: String,
    /// The DNS port from the banner (`DNS: <port>`; -1 when disabled).
    pub dns_port: i32,
}

impl Proc {
    /// Starts `registry-node agent <args> -http-port=0 -dns-port=0 …` and waits for the banner and a leader.
    pub fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(bin())
            .arg("agent")
            .args(args)
            .args([
                "-http-port=0",
                "-dns-port=0",
                "-server-port=0",
                "-serf-lan-port=0",
                "-client=127.0.0.1",
                "-bind=127.0.0.1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn registry-node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("(HTTP: ").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let dns: i32 = line
                        .split("DNS: ")
                        .nth(1)
                        .map(|d| d.chars().take_while(|c| *c == '-' || c.is_ascii_digit()))
                        .map(|d| d.collect::<String>().parse().unwrap_or(-1))
                        .unwrap_or(-1);
                    let _ = tx.send((port, dns));
                }
            }
        });
        let (port, dns_port) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("banner with the HTTP port");
        let addr = format!("127.0.0.1:{port}");
        let p = Proc {
            child,
            base: format!("http://{addr}"),
            addr,
            dns_port,
        };
        p.wait_leader();
        p
    }

    /// Waits until a leader is known and this node has registered itself.
    fn wait_leader(&self) {
        for _ in 0..200 {
            let leader = ureq_get(&format!("{}/v1/status/leader", self.base)).unwrap_or_default();
            let nodes = ureq_get(&format!("{}/v1/catalog/nodes", self.base)).unwrap_or_default();
            if leader.len() > 2 && nodes.contains("\"Node\"") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader at {}", self.base);
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal blocking HTTP GET over std (keeps the suite free of an async runtime).
pub fn ureq_get(url: &str) -> Result<String, String> {
    http("GET", url, b"").map(|(_, body)| body)
}

/// Minimal blocking HTTP/1.1 request; returns status and body.
pub fn http(method: &str, url: &str, body: &[u8]) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or("http only")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    let (headers, body) = text.split_once("\r\n\r\n").ok_or("no body")?;
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Runs the CLI with args; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("CONSUL_HTTP_ADDR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cli");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A data dir argument.
pub fn data_dir_arg(dir: &Path) -> String {
    format!("-data-dir={}", dir.display())
}
