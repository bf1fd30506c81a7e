//! Docker suite: the real `registry-node` binary in `FROM scratch` containers
//! (built by `docker/build-image.sh`, once per run), each test on its own
//! bridge network with a random /24 and fixed container IPs, driven the way a
//! Consul operator would: the CLI through `docker exec`, the HTTP API from the
//! host on `http://<container IP>:8500`, failures through `docker network
//! disconnect`, `docker kill` and `docker restart`.
//!
//! Docker is required: when the daemon is unreachable every test fails with
//! the reason (the suite never skips). Every wait is a condition polled under
//! a bound; on failure (or panic) the [`Env`] guard prints each container's
//! logs, then removes the containers and the network.

mod t10_single;
mod t20_cluster;
mod t30_partition;
mod t40_client_failure;
mod t50_restart;
mod t60_node_id;

use std::io::Read;
use std::net::Ipv4Addr;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::Rng;

/// Image the suite builds and runs (its own tag, so a developer's
/// `registry-node:dev` built from another binary is left alone).
pub const IMAGE: &str = "registry-node:test";
/// Label on every container and network of the suite (with the test process'
/// PID as value), so leftovers of a killed run can be found and removed.
const LABEL: &str = "org.registry-node.docker-test";
/// Bound of every `docker` CLI call (an exec of the CLI included).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of one HTTP request from the host.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll period of [`wait_until`].
const POLL: Duration = Duration::from_millis(250);

/// Bound for a single agent to start and elect itself.
pub const WAIT_START: Duration = Duration::from_secs(30);
/// Bound for a cluster to form (gossip join, bootstrap-expect, election).
pub const WAIT_CLUSTER: Duration = Duration::from_secs(60);
/// Bound for replication and other short convergences.
pub const WAIT_SHORT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Processes with a bound

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} did not finish within {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {shown}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// `docker <args>`, bounded; the output whatever the exit status.
pub fn docker(args: &[&str]) -> Output {
    run_bounded(Command::new("docker").args(args), DOCKER_TIMEOUT)
        .unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")))
}

/// `docker <args>` that must succeed; its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Stdout of an [`Output`], lossy.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Stdout and stderr of an [`Output`] with its status, for messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}: stdout {:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------
// The image, once per test binary run

/// Builds [`IMAGE`] from the binary under test with `docker/build-image.sh`
/// (a no-op when the image already holds this binary). Once per run; every
/// test gets the same result, so an unreachable daemon fails each of them
/// with the script's message.
pub fn ensure_image() {
    static IMAGE_BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = IMAGE_BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/build-image.sh");
        let binary = env!("CARGO_BIN_EXE_registry-node");
        let started = Instant::now();
        let out = run_bounded(
            Command::new("bash").args([script, binary, IMAGE]),
            Duration::from_secs(300),
        )?;
        if !out.status.success() {
            return Err(format!(
                "docker/build-image.sh failed ({}); the Docker suite needs a reachable Docker \
                 daemon (it never skips):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!(
            "docker suite: image {IMAGE} ready in {:?}",
            started.elapsed()
        );
        remove_leftovers();
        Ok(())
    });
    if let Err(msg) = result {
        panic!("{msg}");
    }
}

/// Removes containers and networks of earlier runs whose test process is gone
/// (a run killed before its guards could clean up).
fn remove_leftovers() {
    let alive = |pid: &str| std::path::Path::new(&format!("/proc/{pid}")).exists();
    let format = format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}");
    let containers = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={LABEL}"),
        "--format",
        &format,
    ]);
    for line in containers.lines() {
        if let Some((id, pid)) = line.split_once(' ')
            && !alive(pid)
        {
            docker(&["rm", "-f", "-v", id]);
        }
    }
    let networks = docker_ok(&[
        "network",
        "ls",
        "--filter",
        &format!("label={LABEL}"),
        "--format",
        &format,
    ]);
    for line in networks.lines() {
        if let Some((id, pid)) = line.split_once(' ')
            && !alive(pid)
        {
            docker(&["network", "rm", id]);
        }
    }
}

// ---------------------------------------------------------------------------
// Polling

/// Polls `f` every 250 ms until it returns `Ok`, for at most `timeout`;
/// panics with `what` and the last `Err` (the state seen) otherwise.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => {
                eprintln!("  ok after {:>6.1?}: {what}", start.elapsed());
                return v;
            }
            Err(last) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for: {what}\n  last seen: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Polls `f` every 250 ms until it returns true, for at most `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    wait_for(timeout, what, || {
        if f() {
            Ok(())
        } else {
            Err("condition false".into())
        }
    })
}

// ---------------------------------------------------------------------------
// Networks and containers

/// A container of the suite.
#[derive(Debug, Clone)]
pub struct Node {
    /// Consul node name (`-node`), e.g. `s1`.
    pub node: String,
    /// Docker container name (`<env id>-<node>`).
    pub container: String,
    /// Fixed IP on the test network.
    pub ip: String,
}

/// One test's Docker environment: a bridge network with a random /24 and the
/// containers on it. Dropping it prints the containers' logs if the thread is
/// panicking, then removes the containers and the network.
pub struct Env {
    /// Unique prefix of every name (`rnt-<test>-<random>`).
    pub id: String,
    /// Network name (= `id`).
    pub network: String,
    /// First three octets of the subnet, e.g. `10.123.45`.
    prefix: String,
    containers: Vec<Node>,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// IPv4 routes of the host as (network, mask), default route excluded.
fn host_routes() -> Vec<(u32, u32)> {
    let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The file prints network-order addresses as native-endian integers.
            let (dest, mask) = (
                u32::from_be_bytes(dest.to_ne_bytes()),
                u32::from_be_bytes(mask.to_ne_bytes()),
            );
            (mask != 0).then_some((dest, mask))
        })
        .collect()
}

/// Subnets of the existing Docker networks as (network, mask).
fn docker_subnets() -> Vec<(u32, u32)> {
    let ids = docker_ok(&["network", "ls", "-q"]);
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids.lines());
    let out = docker(&args);
    stdout(&out)
        .split_whitespace()
        .filter_map(|cidr| {
            let (ip, len) = cidr.split_once('/')?;
            let ip: Ipv4Addr = ip.parse().ok()?;
            let len: u32 = len.parse().ok()?;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Some((u32::from(ip) & mask, mask))
        })
        .collect()
}

impl Env {
    /// Builds the image (once) and creates this test's network on a random
    /// `10.x.y.0/24` that overlaps no Docker network and no host route.
    pub fn new(test: &str) -> Env {
        ensure_image();
        let mut rng = rand::rng();
        let id = format!("rnt-{test}-{:06x}", rng.random_range(0..0x100_0000u32));
        let label = format!("{LABEL}={}", std::process::id());
        let mut prefix = None;
        for _attempt in 0..20 {
            let (b, c) = (rng.random_range(16..=250u8), rng.random_range(0..=255u8));
            let net = u32::from(Ipv4Addr::new(10, b, c, 0));
            let ours = u32::MAX << 8;
            let overlaps = |&(n, m): &(u32, u32)| (net & m) == n || (n & ours) == net;
            if docker_subnets().iter().any(overlaps) || host_routes().iter().any(overlaps) {
                continue;
            }
            let subnet = format!("10.{b}.{c}.0/24");
            let out = docker(&[
                "network", "create", "--driver", "bridge", "--subnet", &subnet, "--label", &label,
                &id,
            ]);
            if out.status.success() {
                eprintln!("docker suite: {id}: network {subnet}");
                prefix = Some(format!("10.{b}.{c}"));
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            // Another network (a parallel test) took the range in between: try another one.
            assert!(
                err.contains("overlaps") || err.contains("already exists"),
                "docker network create {subnet} {id}: {}",
                describe(&out)
            );
        }
        let prefix = prefix.expect("no free 10.x.y.0/24 for the test network after 20 tries");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(0)
            .build()
            .expect("reqwest client");
        Env {
            network: id.clone(),
            id,
            prefix,
            containers: Vec::new(),
            rt,
            http,
        }
    }

    /// The address `<prefix>.<host>` on this test's network.
    pub fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.prefix)
    }

    /// `docker run -d` of the image as `<id>-<node>` with IP `<prefix>.<host>`
    /// and `args` after the entrypoint.
    pub fn start(&mut self, node: &str, host: u8, args: &[String]) -> Node {
        let n = Node {
            node: node.to_string(),
            container: format!("{}-{node}", self.id),
            ip: self.ip(host),
        };
        let label = format!("{LABEL}={}", std::process::id());
        let mut run = vec![
            "run",
            "-d",
            "--name",
            &n.container,
            "--hostname",
            node,
            "--network",
            &self.network,
            "--ip",
            &n.ip,
            "--label",
            &label,
            IMAGE,
        ];
        run.extend(args.iter().map(String::as_str));
        // Registered before the run, so the guard removes even a half-created container.
        self.containers.push(n.clone());
        docker_ok(&run);
        n
    }

    /// Starts an agent: `agent -node=<node> -bind=0.0.0.0 -advertise=<ip>
    /// -client=0.0.0.0 -data-dir=/data <extra>`.
    pub fn agent(&mut self, node: &str, host: u8, extra: &[String]) -> Node {
        let ip = self.ip(host);
        let mut args: Vec<String> = [
            "agent".to_string(),
            format!("-node={node}"),
            "-bind=0.0.0.0".to_string(),
            format!("-advertise={ip}"),
            "-client=0.0.0.0".to_string(),
            "-data-dir=/data".to_string(),
        ]
        .into();
        args.extend(extra.iter().cloned());
        self.start(node, host, &args)
    }

    /// `docker exec <container> /bin/registry-node <args>` (the CLI talks to
    /// the agent in the container on 127.0.0.1:8500).
    pub fn exec(&self, n: &Node, args: &[&str]) -> Output {
        let mut all = vec!["exec", n.container.as_str(), "/bin/registry-node"];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// Like [`Env::exec`], bounded by `timeout` (for a command that may hang,
    /// e.g. a write on a partitioned server); `Err` when it did not finish.
    pub fn exec_bounded(
        &self,
        n: &Node,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output, String> {
        run_bounded(
            Command::new("docker")
                .args(["exec", &n.container, "/bin/registry-node"])
                .args(args),
            timeout,
        )
    }

    /// HTTP request from the host to `http://<ip>:8500<path>`: status and body.
    pub fn http(
        &self,
        method: &str,
        ip: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, String), String> {
        let url = format!("http://{ip}:8500{path}");
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.body(body);
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .map_err(|e| format!("{method} {url}: {e}"))?;
            let status = resp.status().as_u16();
            let text = resp
                .text()
                .await
                .map_err(|e| format!("{method} {url}: {e}"))?;
            Ok((status, text))
        })
    }

    /// `GET http://<ip>:8500<path>`: the body of a 200 answer, `Err` otherwise.
    pub fn http_get(&self, ip: &str, path: &str) -> Result<String, String> {
        match self.http("GET", ip, path, None)? {
            (200, body) => Ok(body),
            (status, body) => Err(format!("GET {path} on {ip}: {status} {body}")),
        }
    }

    /// `PUT http://<ip>:8500<path>` with `body`: the body of a 200 answer.
    pub fn http_put(&self, ip: &str, path: &str, body: &str) -> Result<String, String> {
        match self.http("PUT", ip, path, Some(body.to_string()))? {
            (200, body) => Ok(body),
            (status, body) => Err(format!("PUT {path} on {ip}: {status} {body}")),
        }
    }

    /// The leader as `n` reports it (`/v1/status/leader`, e.g. `10.1.2.11:8300`),
    /// `None` when it answers `""` or not at all.
    pub fn leader_of(&self, n: &Node) -> Option<String> {
        let body = self.http_get(&n.ip, "/v1/status/leader").ok()?;
        let leader: String = serde_json::from_str(&body).ok()?;
        (!leader.is_empty()).then_some(leader)
    }

    /// The Raft peers as `n` reports them (`/v1/status/peers`).
    pub fn peers_of(&self, n: &Node) -> Result<Vec<String>, String> {
        let body = self.http_get(&n.ip, "/v1/status/peers")?;
        serde_json::from_str(&body).map_err(|e| format!("peers {body:?}: {e}"))
    }

    /// `docker network disconnect` (the container keeps running, unreachable).
    pub fn disconnect(&self, n: &Node) {
        docker_ok(&["network", "disconnect", &self.network, &n.container]);
    }

    /// `docker network connect` back with the same IP.
    pub fn connect(&self, n: &Node) {
        docker_ok(&[
            "network",
            "connect",
            "--ip",
            &n.ip,
            &self.network,
            &n.container,
        ]);
    }

    /// `docker kill` (SIGKILL).
    pub fn kill(&self, n: &Node) {
        docker_ok(&["kill", &n.container]);
    }

    /// `docker restart` (SIGTERM, 10 s grace, SIGKILL; same container, same data).
    pub fn restart(&self, n: &Node) {
        docker_ok(&["restart", "--time", "10", &n.container]);
    }

    /// `docker rm -f`: the container and its data are gone (a lost disk).
    pub fn remove(&mut self, n: &Node) {
        docker_ok(&["rm", "-f", "-v", &n.container]);
        self.containers.retain(|c| c.container != n.container);
    }

    /// `docker stop` (SIGTERM, 10 s grace, SIGKILL).
    pub fn stop(&self, n: &Node) {
        docker_ok(&["stop", "--time", "10", &n.container]);
    }

    /// The container's output, stdout and stderr interleaved as written.
    pub fn logs(&self, n: &Node) -> String {
        let run = || -> std::io::Result<String> {
            let (mut reader, writer) = std::io::pipe()?;
            let mut child = {
                // The command (holding the pipe's write ends) is dropped before
                // reading, so the read ends when `docker logs` exits.
                let mut cmd = Command::new("docker");
                cmd.args(["logs", &n.container])
                    .stdin(Stdio::null())
                    .stdout(writer.try_clone()?)
                    .stderr(writer);
                cmd.spawn()?
            };
            let mut text = Vec::new();
            reader.read_to_end(&mut text)?;
            child.wait()?;
            Ok(String::from_utf8_lossy(&text).into_owned())
        };
        run().unwrap_or_else(|e| format!("(docker logs {}: {e})", n.container))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.containers {
                let state = docker(&[
                    "inspect",
                    "--format",
                    "{{.State.Status}} exit={{.State.ExitCode}} oom={{.State.OOMKilled}}",
                    &n.container,
                ]);
                eprintln!(
                    "\n===== logs of {} ({}, {}) =====\n{}===== end of {} =====",
                    n.node,
                    n.ip,
                    stdout(&state).trim(),
                    self.logs(n),
                    n.node
                );
            }
        }
        let mut rm = vec!["rm", "-f", "-v"];
        rm.extend(self.containers.iter().map(|n| n.container.as_str()));
        if rm.len() > 3 {
            let _ = run_bounded(Command::new("docker").args(&rm), DOCKER_TIMEOUT);
        }
        let _ = run_bounded(
            Command::new("docker").args(["network", "rm", &self.network]),
            DOCKER_TIMEOUT,
        );
    }
}

// ---------------------------------------------------------------------------
// Consul-level helpers

/// One row of `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node name.
    pub node: String,
    /// `IP:port` of its gossip.
    pub address: String,
    /// `alive`, `failed`, `left`, ...
    pub status: String,
    /// `server` or `client`.
    pub kind: String,
}

/// Consul's `members` header.
pub const MEMBERS_HEADER: [&str; 9] = [
    "Node",
    "Address",
    "Status",
    "Type",
    "Build",
    "Protocol",
    "DC",
    "Partition",
    "Segment",
];

/// `registry-node members` inside `n`, parsed; `Err` with the output when the
/// command fails or the header is not Consul's.
pub fn members(env: &Env, n: &Node) -> Result<Vec<Member>, String> {
    let out = env.exec(n, &["members"]);
    if !out.status.success() {
        return Err(format!("members on {}: {}", n.node, describe(&out)));
    }
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header != MEMBERS_HEADER {
        return Err(format!("members header is not Consul's: {text:?}"));
    }
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let col = |i: usize| f.get(i).copied().unwrap_or_default().to_string();
            Member {
                node: col(0),
                address: col(1),
                status: col(2),
                kind: col(3),
            }
        })
        .collect())
}

/// The status of `node` in `members` run inside `on`.
pub fn member_status(env: &Env, on: &Node, node: &str) -> Result<String, String> {
    let list = members(env, on)?;
    list.iter()
        .find(|m| m.node == node)
        .map(|m| m.status.clone())
        .ok_or_else(|| format!("{node} not in members of {}: {list:?}", on.node))
}

/// `kv get [-stale] key` inside `n`: the value, `Err` with the output otherwise.
pub fn kv_get(env: &Env, n: &Node, key: &str, stale: bool) -> Result<String, String> {
    let mut args = vec!["kv", "get"];
    if stale {
        args.push("-stale");
    }
    args.push(key);
    let out = env.exec(n, &args);
    if out.status.success() {
        Ok(stdout(&out).trim_end_matches('\n').to_string())
    } else {
        Err(format!("kv get {key} on {}: {}", n.node, describe(&out)))
    }
}

/// A cluster of three servers (`s1`..`s3` on .11-.13, `-bootstrap-expect=3`,
/// `-retry-join=<s1>`) and optionally one client agent `c1` (.21) joining s1.
pub struct Cluster {
    /// The servers.
    pub servers: Vec<Node>,
    /// The client agent, if started.
    pub client: Option<Node>,
}

impl Cluster {
    /// Starts the agents (does not wait; see [`Cluster::wait_formed`]).
    pub fn start(env: &mut Env, with_client: bool) -> Cluster {
        let join = format!("-retry-join={}", env.ip(11));
        let mut servers = Vec::new();
        for i in 1..=3u8 {
            let extra = Cluster::server_args(env);
            servers.push(env.agent(&format!("s{i}"), 10 + i, &extra));
        }
        let client = with_client
            .then(|| env.agent("c1", 21, &[join.clone(), "-retry-interval=1s".to_string()]));
        Cluster { servers, client }
    }

    /// A server's arguments after [`Env::agent`]'s: `s1` (`.11`) is the
    /// `-retry-join` target.
    pub fn server_args(env: &Env) -> Vec<String> {
        vec![
            "-server".to_string(),
            "-bootstrap-expect=3".to_string(),
            format!("-retry-join={}", env.ip(11)),
            "-retry-interval=1s".to_string(),
        ]
    }

    /// Every agent.
    pub fn all(&self) -> Vec<Node> {
        self.servers.iter().chain(&self.client).cloned().collect()
    }

    /// Waits until `members` on each agent lists every agent alive with the
    /// right type, all servers agree on one leader, and it has 3 Raft peers.
    pub fn wait_formed(&self, env: &Env) {
        let all = self.all();
        for on in &all {
            wait_for(
                WAIT_CLUSTER,
                &format!("members on {} lists {} agents alive", on.node, all.len()),
                || {
                    let list = members(env, on)?;
                    let ok = all.iter().all(|n| {
                        list.iter().any(|m| {
                            m.node == n.node
                                && m.status == "alive"
                                && m.address.starts_with(&format!("{}:", n.ip))
                                && m.kind
                                    == if n.node.starts_with('s') {
                                        "server"
                                    } else {
                                        "client"
                                    }
                        })
                    });
                    if ok && list.len() == all.len() {
                        Ok(())
                    } else {
                        Err(format!("{list:?}"))
                    }
                },
            );
        }
        let leader = self.wait_leader(env, &self.servers);
        wait_for(WAIT_SHORT, "the leader lists 3 Raft peers", || {
            let peers = env.peers_of(&leader)?;
            let mut want: Vec<String> = self
                .servers
                .iter()
                .map(|s| format!("{}:8300", s.ip))
                .collect();
            let mut got = peers.clone();
            want.sort();
            got.sort();
            if got == want {
                Ok(())
            } else {
                Err(format!("peers {peers:?}, want {want:?}"))
            }
        });
    }

    /// Waits until every server in `among` reports the same leader, one of
    /// `among`; returns it.
    pub fn wait_leader(&self, env: &Env, among: &[Node]) -> Node {
        wait_for(
            WAIT_CLUSTER,
            &format!(
                "{} agree on a leader among themselves",
                among
                    .iter()
                    .map(|n| n.node.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            || {
                let seen: Vec<Option<String>> = among.iter().map(|n| env.leader_of(n)).collect();
                let first = seen[0]
                    .clone()
                    .ok_or_else(|| format!("leaders seen {seen:?}"))?;
                if seen.iter().any(|l| l.as_deref() != Some(first.as_str())) {
                    return Err(format!("leaders seen {seen:?}"));
                }
                among
                    .iter()
                    .find(|n| first == format!("{}:8300", n.ip))
                    .cloned()
                    .ok_or_else(|| format!("leader {first} is not one of them"))
            },
        )
    }
}

/// `GET /v1/kv/<key>?raw` on `n` from the host: `None` on 404.
pub fn kv_http(env: &Env, n: &Node, key: &str) -> Result<Option<String>, String> {
    match env.http("GET", &n.ip, &format!("/v1/kv/{key}?raw"), None)? {
        (200, body) => Ok(Some(body)),
        (404, _) => Ok(None),
        (status, body) => Err(format!("GET /v1/kv/{key} on {}: {status} {body}", n.node)),
    }
}
