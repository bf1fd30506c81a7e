//! Docker suite: the `registrator` binary against the real Docker Engine and an
//! in-process registry-node (`TestAgent`). One test binary (STYLE.md practice 10).
//!
//! Needs a reachable Docker daemon (`/var/run/docker.sock`): the suite fails, it
//! does not skip, when there is none. No image is pulled: the first test builds
//! `demo-web` (`cargo build -p demo-web`) and wraps it into local images with
//! `docker/build-image.sh` plus two one-line Dockerfiles (EXPOSE, HEALTHCHECK).
//! Every container carries the label `registrator-test=<pid>`; containers left by
//! an earlier run are removed on start, ours when each test ends.
//!
//! Every registrator under test watches the whole daemon, so it also registers
//! the other tests' containers in its own registry; each test only asserts on
//! the service names it owns (prefixed with its name and the pid).

mod proxy;
mod t10_register;
mod t20_deregister_on_success;
mod t30_cleanup;
mod t40_docker_cut;
mod t50_registry_restart;
mod t60_docker_health;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use registry_node::agent::{AgentOptions, Listeners};
use registry_node::testing::TestAgent;
use serde_json::Value;
use tokio::net::{TcpListener, UdpSocket};

/// The label on everything this suite creates.
pub const LABEL: &str = "registrator-test";
/// Image with `EXPOSE 8080`.
pub const IMAGE: &str = "registrator-test/demo-web:expose";
/// Same plus a `HEALTHCHECK` every second.
pub const HEALTH_IMAGE: &str = "registrator-test/demo-web:health";
const BASE_IMAGE: &str = "registrator-test/demo-web:base";

/// How long a registry condition may take to hold.
pub const CONVERGE: Duration = Duration::from_secs(30);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Runs the docker CLI synchronously; panics with its stderr on failure.
pub fn docker_sync(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the docker CLI ({e}): install docker"));
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs the docker CLI without blocking the runtime.
pub async fn docker(args: &[&str]) -> String {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Once per test binary: checks Docker, removes leftovers, builds the images.
pub fn setup() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        match Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "the Docker daemon is unreachable; this suite needs it (is /var/run/docker.sock there and usable?): {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("the docker CLI is missing ({e}); this suite needs Docker"),
        }
        remove_stale();
        build_images();
    });
}

/// Removes containers of earlier runs (any `registrator-test` label not ours).
fn remove_stale() {
    let ours = std::process::id().to_string();
    let listed = docker_sync(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}"),
    ]);
    for line in listed.lines() {
        if let Some((id, pid)) = line.split_once(' ')
            && pid != ours
        {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

fn build_images() {
    // demo-web is another package: build it with the cargo running these tests,
    // in the same profile and target directory as the registrator binary.
    let registrator = Path::new(env!("CARGO_BIN_EXE_registrator"));
    let profile_dir = registrator.parent().expect("target/<profile>");
    let release = profile_dir.ends_with("release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace())
        .args(["build", "-p", "demo-web"])
        .stdout(Stdio::null());
    if release {
        build.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        build.env("CARGO_TARGET_DIR", target);
    }
    let status = build.status().expect("run cargo build -p demo-web");
    assert!(status.success(), "cargo build -p demo-web failed");
    let binary = profile_dir.join("demo-web");

    let script = workspace().join("docker/build-image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&binary)
        .arg(BASE_IMAGE)
        .output()
        .expect("run docker/build-image.sh");
    assert!(
        out.status.success(),
        "build-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    build_from(IMAGE, &format!("FROM {BASE_IMAGE}\nEXPOSE 8080\n"));
    build_from(
        HEALTH_IMAGE,
        &format!(
            "FROM {IMAGE}\nHEALTHCHECK --interval=1s --timeout=1s --retries=1 \
             CMD [\"/bin/demo-web\", \"check\", \"http://127.0.0.1:8080/health\"]\n"
        ),
    );
}

/// `docker build` of a one-file context (the classic builder caches it).
fn build_from(tag: &str, dockerfile: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Registrator's hostname as the binary reads it (the first part of service IDs).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

/// A name unique to this run: `rt<pid>-<what>`.
pub fn unique(what: &str) -> String {
    format!("rt{}-{what}", std::process::id())
}

/// A container of this suite, removed (`docker rm -f`) when dropped.
pub struct Container {
    /// `--name`.
    pub name: String,
    /// Full ID.
    pub id: String,
}

impl Container {
    /// `docker run -d --name <name> --label registrator-test=<pid> <args...> <image>`.
    pub async fn run(name: &str, args: &[&str], image: &str) -> Container {
        let label = format!("{LABEL}={}", std::process::id());
        let mut all = vec!["run", "-d", "--name", name, "--label", &label];
        all.extend_from_slice(args);
        all.push(image);
        let id = docker(&all).await;
        Container {
            name: name.to_string(),
            id,
        }
    }

    /// The host port published for `port/tcp`.
    pub async fn host_port(&self, port: u16) -> u16 {
        let out = docker(&["port", &self.name, &format!("{port}/tcp")]).await;
        let first = out.lines().next().expect("a binding");
        first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("port of {}: {out}", self.name))
    }

    /// `docker stop -t 2` (demo-web exits at once on SIGTERM with `EXIT_CODE`).
    pub async fn stop(&self) {
        docker(&["stop", "-t", "2", &self.name]).await;
    }

    /// The service ID registrator gives `port`: `<hostname>:<name>:<port>`.
    pub fn service_id(&self, port: u16) -> String {
        format!("{}:{}:{port}", hostname(), self.name)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The registrator binary as a child process; SIGKILLed when dropped. Its log
/// (RUST_LOG=registrator=debug) goes to a file printed when the test panics.
pub struct Registrator {
    child: tokio::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registrator {
    /// Starts `registrator <flags...> consul://<agent>` against the real socket.
    pub async fn start(agent: &TestAgent, flags: &[&str]) -> Registrator {
        Self::start_with_docker(agent, flags, "unix:///var/run/docker.sock").await
    }

    /// Same with `DOCKER_HOST=docker_host`.
    pub async fn start_with_docker(
        agent: &TestAgent,
        flags: &[&str],
        docker_host: &str,
    ) -> Registrator {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("registrator.log");
        let file = std::fs::File::create(&log).expect("log file");
        let uri = format!("consul://{}", agent.handle.http_addr);
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_registrator"))
            .args(flags)
            .arg(&uri)
            .env("DOCKER_HOST", docker_host)
            .env("RUST_LOG", "info,registrator=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn registrator");
        let r = Registrator {
            child,
            log,
            _dir: dir,
        };
        r.wait_log("listening for docker events").await;
        r
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text`.
    pub async fn wait_log(&self, text: &str) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        while !self.log().contains(text) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "registrator never logged {text:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to clean up (registrations stay, as on a crash).
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill registrator");
    }
}

impl Drop for Registrator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- registrator log ---\n{}", self.log());
        }
    }
}

/// GET a path of the agent as JSON (`Null` for an empty body or an error status).
pub async fn get_json(agent: &TestAgent, path: &str) -> Value {
    let Ok(r) = agent.http.get(agent.url(path)).send().await else {
        return Value::Null;
    };
    if !r.status().is_success() {
        return Value::Null;
    }
    r.json().await.unwrap_or(Value::Null)
}

/// The catalog entries of service `name`.
pub async fn catalog(agent: &TestAgent, name: &str) -> Vec<Value> {
    match get_json(agent, &format!("/v1/catalog/service/{name}")).await {
        Value::Array(entries) => entries,
        _ => Vec::new(),
    }
}

/// The service IDs in the catalog under `name`, sorted.
pub async fn catalog_ids(agent: &TestAgent, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = catalog(agent, name)
        .await
        .iter()
        .filter_map(|e| e["ServiceID"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

/// Polls `probe` every 100 ms until it returns `Some`, for at most [`CONVERGE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the catalog lists exactly `want` (sorted) under `name`.
pub async fn wait_catalog(agent: &TestAgent, name: &str, want: &[String]) {
    let mut want = want.to_vec();
    want.sort();
    eventually(&format!("catalog {name} = {want:?}"), || async {
        (catalog_ids(agent, name).await == want).then_some(())
    })
    .await;
}

/// A fresh `-dev`-like agent on a given HTTP port (a registry restarted empty).
pub async fn agent_on_port(port: u16) -> TestAgent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let http = loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => break l,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cannot bind 127.0.0.1:{port} again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let listeners = Listeners {
        http,
        server_rpc: Some(TcpListener::bind("127.0.0.1:0").await.expect("rpc")),
        serf_lan: UdpSocket::bind("127.0.0.1:0").await.expect("serf"),
        dns: Vec::new(),
    };
    let agent = TestAgent::start_on(AgentOptions::for_test(), listeners).await;
    agent.wait_ready().await;
    agent
}
