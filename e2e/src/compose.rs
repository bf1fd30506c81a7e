//! One compose project of the demo, driven through the `docker-compose` CLI (or
//! `docker compose`; `DEMO_COMPOSE` overrides, e.g. `DEMO_COMPOSE="docker compose"`).
//!
//! Each [`Demo`] gets a unique project name and free host ports for nginx
//! (`DEMO_HTTP_PORT`) and registry1's UI (`DEMO_UI_PORT`), so it never meets a user's
//! demo or another run. `up` always passes `--no-build`: the images come from
//! `docker/build-demo-images.sh`, and nothing may be pulled or rebuilt behind our back.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::workspace;

/// The compose service names of the demo.
pub const SERVERS: [&str; 3] = ["registry1", "registry2", "registry3"];

/// Where templater writes nginx's upstream block inside the nginx container.
pub const RENDERED_CONF: &str = "/etc/nginx/conf.d/default.conf";

/// A running container of the project, as `docker inspect` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Full container ID.
    pub id: String,
    /// Container name (`<project>_<service>_<n>` with compose v1).
    pub name: String,
    /// Hostname: what demo-web answers (the short ID unless `hostname:` is set).
    pub hostname: String,
    /// IP on the project's network.
    pub ip: String,
    /// `State.StartedAt` (Docker's clock, the same host's).
    pub started_at: SystemTime,
}

/// A compose project of the demo. Dropping it runs `down -v` (after printing the
/// logs when the thread panics), so a failed test leaves nothing behind.
pub struct Demo {
    /// Compose project name.
    pub project: String,
    /// Host port published by nginx (8888 in the container).
    pub http_port: u16,
    /// Host port published by registry1 (its HTTP API and UI on 8500).
    pub ui_port: u16,
    /// The compose command and its leading arguments.
    compose: Vec<String>,
    /// For the registry servers' HTTP API from the host (container IPs are routable).
    http: reqwest::Client,
    /// Runs the HTTP calls; also lent to [`crate::Traffic`].
    rt: tokio::runtime::Runtime,
    /// Set once `down` succeeded: nothing left for `Drop`.
    down: bool,
}

impl Demo {
    /// A new project `<prefix><pid>x<n>` (nothing started yet).
    pub fn new(prefix: &str) -> Result<Self, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let project = format!("{prefix}{}x{}", std::process::id(), nanos % 1_000_000);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Demo {
            project,
            http_port: free_port()?,
            ui_port: free_port()?,
            compose: compose_command()?,
            http,
            rt,
            down: false,
        })
    }

    /// The tokio runtime the harness uses (for [`crate::Traffic`] and one-off calls).
    pub fn rt(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// nginx's URL on the host.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http_port)
    }

    /// `up -d --no-build --scale web=<web>`: starts what is missing, adds or removes
    /// web containers; running containers of unchanged services are left alone.
    pub fn up(&self, web: usize) -> Result<(), String> {
        let scale = format!("web={web}");
        self.compose(&["up", "-d", "--no-build", "--scale", &scale])
            .map(drop)
    }

    /// `up -d --no-build --no-deps --scale web=<web> web`: scales only the web
    /// service (a stopped or killed container of another service stays as it is).
    pub fn scale_web(&self, web: usize) -> Result<(), String> {
        let scale = format!("web={web}");
        self.compose(&[
            "up",
            "-d",
            "--no-build",
            "--no-deps",
            "--scale",
            &scale,
            "web",
        ])
        .map(drop)
    }

    /// Runs the compose command with the project's file, name and ports.
    pub fn compose(&self, args: &[&str]) -> Result<Output, String> {
        let file = workspace().join("docker-compose.yml");
        let mut cmd = Command::new(&self.compose[0]);
        cmd.args(&self.compose[1..])
            .arg("-f")
            .arg(&file)
            .args(["-p", &self.project])
            .args(args)
            .current_dir(workspace())
            .env("DEMO_HTTP_PORT", self.http_port.to_string())
            .env("DEMO_UI_PORT", self.ui_port.to_string());
        let shown = format!("{} {}", self.compose.join(" "), args.join(" "));
        let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "{shown} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The running containers of `service`, sorted by name.
    pub fn containers(&self, service: &str) -> Result<Vec<Container>, String> {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let service = format!("label=com.docker.compose.service={service}");
        let ids = docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &project,
            "--filter",
            &service,
        ])?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["inspect"];
        args.extend(&ids);
        let json: Value = serde_json::from_str(&docker(&args)?)
            .map_err(|e| format!("docker inspect output: {e}"))?;
        let mut out: Vec<Container> = json
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| self.container_of(c))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn container_of(&self, c: &Value) -> Option<Container> {
        let network = format!("{}_default", self.project);
        let started = c["State"]["StartedAt"].as_str()?;
        Some(Container {
            id: c["Id"].as_str()?.to_string(),
            name: c["Name"].as_str()?.trim_start_matches('/').to_string(),
            hostname: c["Config"]["Hostname"].as_str()?.to_string(),
            ip: c["NetworkSettings"]["Networks"][&network]["IPAddress"]
                .as_str()?
                .to_string(),
            started_at: parse_rfc3339(started)?,
        })
    }

    /// The one running container of `service`.
    pub fn container(&self, service: &str) -> Result<Container, String> {
        let mut all = self.containers(service)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            n => Err(format!("{n} running containers of {service}, expected 1")),
        }
    }

    /// The nginx config templater rendered (`docker exec ... cat`).
    pub fn rendered_conf(&self) -> Result<String, String> {
        let nginx = self.container("nginx")?;
        docker(&["exec", &nginx.id, "cat", RENDERED_CONF])
    }

    /// `GET http://<container ip>:8500<path>` from the host: status and body.
    pub fn registry_get(&self, c: &Container, path: &str) -> Result<(u16, String), String> {
        let url = format!("http://{}:8500{path}", c.ip);
        self.rt.block_on(async {
            let resp = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            Ok((status, body))
        })
    }

    /// The Raft leader's IP as server `c` sees it (`/v1/status/leader`); `None`
    /// while it knows none (or does not answer).
    pub fn leader_seen_by(&self, c: &Container) -> Option<String> {
        let (status, body) = self.registry_get(c, "/v1/status/leader").ok()?;
        let addr: String = serde_json::from_str(&body).ok()?;
        let ip = addr.rsplit_once(':')?.0.to_string();
        (status == 200 && !ip.is_empty()).then_some(ip)
    }

    /// Waits until every running server names the same leader; returns its container.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<Container, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut servers = Vec::new();
            for s in SERVERS {
                servers.extend(self.containers(s)?);
            }
            let seen: Vec<Option<String>> =
                servers.iter().map(|s| self.leader_seen_by(s)).collect();
            if let Some(Some(ip)) = seen.first()
                && seen.iter().all(|l| l.as_ref() == Some(ip))
                && let Some(leader) = servers.iter().find(|s| &s.ip == ip)
            {
                return Ok(leader.clone());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no agreed leader within {timeout:?}: servers {servers:?} see {seen:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `logs --no-color --tail=<n>` of every service.
    pub fn logs(&self, tail: usize) -> String {
        let tail = format!("--tail={tail}");
        match self.compose(&["logs", "--no-color", &tail]) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => e,
        }
    }

    /// `down -v --remove-orphans -t 5`: containers, network and volumes go.
    pub fn down(&mut self) -> Result<(), String> {
        self.compose(&["down", "-v", "--remove-orphans", "-t", "5"])?;
        self.down = true;
        Ok(())
    }

    /// What is left of the project: its containers (running or not), networks and
    /// volumes, by the label compose puts on each.
    pub fn leftovers(&self) -> Result<Vec<String>, String> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let mut left = Vec::new();
        for (kind, args) in [
            ("container", vec!["ps", "-a", "-q", "--filter", &label]),
            ("network", vec!["network", "ls", "-q", "--filter", &label]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &label]),
        ] {
            left.extend(
                docker(&args)?
                    .split_whitespace()
                    .map(|id| format!("{kind} {id}")),
            );
        }
        Ok(left)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "--- logs of compose project {}:\n{}",
                self.project,
                self.logs(150)
            );
        }
        if let Err(e) = self.down() {
            eprintln!("demo teardown: {e}");
        }
    }
}

/// `docker <args>`: stdout, or the failure with stderr.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "docker {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `DEMO_COMPOSE` split on spaces, else `docker-compose` when it runs, else
/// `docker compose`.
fn compose_command() -> Result<Vec<String>, String> {
    if let Ok(cmd) = std::env::var("DEMO_COMPOSE") {
        return Ok(cmd.split_whitespace().map(str::to_string).collect());
    }
    let works = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("docker-compose", &["version"]) {
        Ok(vec!["docker-compose".into()])
    } else if works("docker", &["compose", "version"]) {
        Ok(vec!["docker".into(), "compose".into()])
    } else {
        Err("neither docker-compose nor the docker compose plugin runs".into())
    }
}

/// A TCP port free on the host right now (the OS picks it).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Docker's `2026-11-21T17:13:21.751800123Z` (UTC, up to nanoseconds).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<u64>());
    let (h, min, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_timestamps() {
        let t = parse_rfc3339("2026-11-21T17:13:21.7518Z").unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d.as_secs(), 1_795_281_201);
        assert_eq!(d.subsec_nanos(), 751_800_000);
        let t = parse_rfc3339("1970-01-01T00:00:01Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1));
        assert!(parse_rfc3339("0001-01-01T00:00:00").is_none());
    }
}
