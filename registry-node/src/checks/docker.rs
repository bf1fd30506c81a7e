//! Docker checks (Consul's `CheckDocker`): run `args` inside a container through the Docker
//! Engine API (create exec, start attached, collect output, inspect the exit code).
//!
//! Exit codes map as for scripts. Errors are critical with Consul's texts
//! (`create exec failed for unknown container <id>`, …). Consul runs `args` as given; the
//! `shell` field only wrapped the removed `script` field, so it is not used. Consul's docker
//! check has no timeout; here the check's timeout (default 30 s) bounds a run so a hung exec
//! cannot stall the check forever. A daemon (or socket) that is missing, or a `docker_host`
//! that cannot be used, makes each run critical instead of failing the registration, so a
//! daemon that starts later is picked up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures::StreamExt;
use registry_api::{CRITICAL, GoDuration, PASSING, WARNING};
use tokio::time::{sleep, timeout};

use super::Outcome;
use super::output::RingBuffer;

/// How often to ask whether an exec whose output has ended has also exited.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// A client for `docker_host`, or for `DOCKER_HOST` / the local socket when None. Nothing
/// is contacted yet, but a missing socket file is already an error.
pub(super) fn connect(docker_host: Option<&str>) -> Result<Docker, String> {
    let client = match docker_host {
        Some(host) => Docker::connect_with_host(host),
        None => Docker::connect_with_defaults(),
    };
    client.map_err(|e| e.to_string())
}

/// The runner's shared Docker client, (re)built on demand: a daemon that is not there when a
/// check is registered makes its runs critical until it appears, rather than failing the
/// registration.
pub(super) struct DockerSource {
    host: Option<String>,
    client: Mutex<Option<Docker>>,
}

impl DockerSource {
    pub(super) fn new(host: Option<String>) -> Self {
        Self {
            host,
            client: Mutex::new(None),
        }
    }

    fn get(&self) -> Result<Docker, String> {
        let mut client = self.client.lock().expect("docker client lock");
        if let Some(c) = client.as_ref() {
            return Ok(c.clone());
        }
        let c = connect(self.host.as_deref())?;
        *client = Some(c.clone());
        Ok(c)
    }
}

/// A docker exec probe.
pub(super) struct DockerCheck {
    source: Arc<DockerSource>,
    container: String,
    cmd: Vec<String>,
    timeout: Duration,
    max_output: usize,
}

impl DockerCheck {
    pub(super) fn new(
        source: Arc<DockerSource>,
        container: &str,
        cmd: Vec<String>,
        timeout: Duration,
        max_output: usize,
    ) -> Self {
        Self {
            source,
            container: container.to_string(),
            cmd,
            timeout,
            max_output,
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        match timeout(self.timeout, self.exec()).await {
            Ok(Ok((0, output))) => Outcome::new(PASSING, output),
            Ok(Ok((1, output))) => Outcome::new(WARNING, output),
            Ok(Ok((code, output))) => {
                tracing::debug!(exit_code = code, "docker check failed");
                Outcome::new(CRITICAL, output)
            }
            Ok(Err(e)) => Outcome::new(CRITICAL, e),
            Err(_) => Outcome::new(
                CRITICAL,
                format!(
                    "Timed out ({}) running check",
                    GoDuration::from(self.timeout)
                ),
            ),
        }
    }

    /// Runs the command; returns its exit code and captured output.
    async fn exec(&self) -> Result<(i64, String), String> {
        let id = &self.container;
        let client = self
            .source
            .get()
            .map_err(|e| format!("create exec failed for container {id}: {e}"))?;
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(self.cmd.clone()),
            ..Default::default()
        };
        let exec_id = client
            .create_exec(id, options)
            .await
            .map_err(|e| match status_of(&e) {
                Some(404) => format!("create exec failed for unknown container {id}"),
                Some(409) => {
                    format!("create exec failed since container {id} is paused or stopped")
                }
                Some(code) => format!(
                    "create exec failed for container {id} with status {code}: {}",
                    message_of(&e)
                ),
                None => format!("create exec failed for container {id}: {e}"),
            })?
            .id;

        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        let started = client.start_exec(&exec_id, Some(start)).await.map_err(
            |e| match status_of(&e) {
                Some(404) => {
                    format!("start exec failed for container {id}: invalid exec id {exec_id}")
                }
                Some(409) => format!("start exec failed since container {id} is paused or stopped"),
                Some(code) => format!(
                    "start exec failed for container {id} with status {code}: body: {} err: <nil>",
                    message_of(&e)
                ),
                None => format!("start exec failed for container {id}: {e}"),
            },
        )?;
        let mut buf = RingBuffer::new(self.max_output);
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(chunk) => buf.write(chunk.as_ref()),
                    // Consul ignores a reset after the output: the daemon may close early.
                    Err(e) => {
                        tracing::debug!(error = %e, "docker exec output stream ended with an error");
                        break;
                    }
                }
            }
        }

        // The output can end a moment before the daemon records the exit code.
        loop {
            let inspect = client
                .inspect_exec(&exec_id)
                .await
                .map_err(|e| match status_of(&e) {
                    Some(404) => {
                        format!("inspect exec failed for container {id}: invalid exec id {exec_id}")
                    }
                    Some(code) => format!(
                        "inspect exec failed for container {id} with status {code}: {}",
                        message_of(&e)
                    ),
                    None => format!("inspect exec failed for container {id}: {e}"),
                })?;
            if inspect.running != Some(true) {
                return Ok((inspect.exit_code.unwrap_or(-1), buf.captured()));
            }
            sleep(EXIT_POLL).await;
        }
    }
}

/// The HTTP status of a daemon error response.
fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The daemon's message of an error response.
fn message_of(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
