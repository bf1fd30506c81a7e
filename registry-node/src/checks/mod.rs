//! Health checks that the agent runs itself.
//!
//! Every periodic check gets one cancellable task that probes its target (HTTP, TCP, UDP, a
//! script, a `docker exec`, or the local health of another service for alias checks) and
//! reports [`CheckUpdate`]s on a channel. The agent owns the check state: it applies the
//! updates and syncs them to the catalog. This module never touches agent state, so it can be
//! tested against real local servers without an agent.
//!
//! Semantics follow Consul's `agent/checks` package: a random first-run stagger in
//! `[0, interval)`, then one run every `interval` after the previous run ends; per-type default
//! timeouts (10 s, scripts 30 s); `StatusHandler` thresholds; Consul's output texts. TTL checks
//! are not run here: they have no probe, the agent expires them itself.
//!
//! # Layout
//! - `mod.rs`: [`CheckRunner`] (task bookkeeping, the send gate) and the probe loop.
//! - `status`: the pure threshold logic (`success_before_passing`, `failures_before_*`).
//! - `output`: the capped output buffer and Go-style error texts.
//! - `http`, `tcp`, `udp`, `script`, `docker`, `alias`: one probe per check type.
//! - `tls`: the rustls client configurations shared by HTTPS and TCP+TLS probes.

mod alias;
mod docker;
mod http;
mod output;
mod script;
mod status;
mod tcp;
mod tls;
mod udp;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use registry_api::{CRITICAL, CheckDefinition, GoDuration};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::alias::AliasCheck;
use self::docker::DockerCheck;
use self::http::HttpCheck;
use self::script::ScriptCheck;
use self::status::StatusHandler;
use self::tcp::TcpCheck;
use self::udp::UdpCheck;

/// Consul's default cap on captured check output (`check_output_max_size`).
pub const DEFAULT_OUTPUT_MAX_SIZE: usize = 4096;

/// Consul's minimum interval between two runs of a periodic check. The agent clamps
/// intervals to it (with a warning) before calling [`CheckRunner::start`]; the runner itself
/// accepts shorter intervals so tests can run fast.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Default timeout of HTTP, TCP and UDP checks.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default timeout of script and docker checks.
const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`CheckRunner::shutdown`] waits for the check tasks to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A result the runner reports; the agent applies it (sync to the catalog only on change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckUpdate {
    /// The check the result is for.
    pub check_id: String,
    /// `passing`, `warning` or `critical`.
    pub status: String,
    /// The probe's output, in Consul's format.
    pub output: String,
}

/// What the runner may run and how much output it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerSettings {
    /// Allow script and docker checks from any source (`enable_script_checks`).
    pub enable_script_checks: bool,
    /// Allow script and docker checks only from config files (`enable_local_script_checks`).
    pub enable_local_script_checks: bool,
    /// Agent-wide output cap (`check_output_max_size`; 0 means the default 4096).
    pub output_max_size: usize,
    /// Docker Engine address (`unix:///…`, `tcp://…`); None = `DOCKER_HOST` or the local socket.
    pub docker_host: Option<String>,
}

impl Default for RunnerSettings {
    /// Consul's defaults: no script checks, 4 KiB of output.
    fn default() -> Self {
        Self {
            enable_script_checks: false,
            enable_local_script_checks: false,
            output_max_size: DEFAULT_OUTPUT_MAX_SIZE,
            docker_host: None,
        }
    }
}

impl RunnerSettings {
    /// Settings for tests: script checks allowed from every source.
    pub fn for_test() -> Self {
        Self {
            enable_script_checks: true,
            enable_local_script_checks: true,
            ..Self::default()
        }
    }
}

/// Read access to local health, for alias checks (implemented by the agent).
pub trait HealthView: Send + Sync + 'static {
    /// Aggregated status and a description of the checks of a local service instance, None if unknown.
    fn service_health(&self, service_id: &str) -> Option<(String, String)>;
    /// Aggregated status of this node's node-level checks (for AliasNode of the local node), None if unknown node.
    fn node_health(&self, node: &str) -> Option<(String, String)>;
}

/// Why [`CheckRunner::start`] refused a check. The texts are Consul's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum StartError {
    /// A script or docker check from a config file, with neither script option on.
    #[error(
        "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"
    )]
    LocalScriptsDisabled,
    /// A script or docker check registered over the API without `enable_script_checks`.
    #[error(
        "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true"
    )]
    RemoteScriptsDisabled,
    /// A periodic check without a positive interval.
    #[error("Interval must be > 0 for {0} checks")]
    MissingInterval(&'static str),
    /// A docker check without a command.
    #[error("Check type is not valid")]
    InvalidType,
}

/// One probe result before thresholds are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status: &'static str,
    output: String,
}

impl Outcome {
    fn new(status: &'static str, output: impl Into<String>) -> Self {
        Self {
            status,
            output: output.into(),
        }
    }
}

/// A periodic probe: one variant per runnable check type.
enum Probe {
    /// Boxed: much larger than the others.
    Http(Box<HttpCheck>),
    Tcp(TcpCheck),
    Udp(UdpCheck),
    Script(ScriptCheck),
    Docker(DockerCheck),
}

impl Probe {
    async fn run(&self) -> Outcome {
        match self {
            Probe::Http(c) => c.run().await,
            Probe::Tcp(c) => c.run().await,
            Probe::Udp(c) => c.run().await,
            Probe::Script(c) => c.run().await,
            Probe::Docker(c) => c.run().await,
        }
    }
}

/// What `start` decided to do with a definition.
enum Plan {
    /// TTL checks and definitions without a runnable type.
    Nothing,
    /// A type this agent cannot probe: report critical once, run nothing.
    Unsupported(&'static str),
    /// A periodic probe with its interval and thresholds.
    Periodic(Probe, Duration, StatusHandler),
    /// An alias check, polled every second.
    Alias(AliasCheck),
}

/// A running check task.
struct RunningCheck {
    /// Child of the runner's token; cancelling it ends the task (and kills a running script).
    token: CancellationToken,
    handle: JoinHandle<()>,
}

struct Inner {
    settings: RunnerSettings,
    updates_tx: UnboundedSender<CheckUpdate>,
    health: Arc<dyn HealthView>,
    /// Child of the agent's token: `shutdown` cancels it without cancelling the agent.
    token: CancellationToken,
    tracker: TaskTracker,
    /// Running checks by ID. Also the send gate: a task sends only while holding this lock
    /// and only if its token is live, so once `start`/`stop` returns, the task it replaced or
    /// stopped can no longer report (Consul's `Stop` waits for the goroutine for the same
    /// reason: a stale result must not overwrite the new check's).
    tasks: Mutex<HashMap<String, RunningCheck>>,
    /// TLS client configurations, built on first use (loading the system roots reads files).
    tls: OnceLock<Arc<tls::TlsConfigs>>,
    /// One Docker client for all docker checks, as in Consul.
    docker: Arc<docker::DockerSource>,
}

impl Inner {
    /// Sends an update unless `token` (the sending task's) was cancelled.
    fn send(&self, token: &CancellationToken, check_id: &str, status: &str, output: &str) {
        let _gate = self.tasks.lock().expect("checks lock");
        if token.is_cancelled() {
            return;
        }
        let update = CheckUpdate {
            check_id: check_id.to_string(),
            status: status.to_string(),
            output: output.to_string(),
        };
        if self.updates_tx.send(update).is_err() {
            tracing::debug!(check = %check_id, "check update dropped: agent is gone");
        }
    }

    fn tls(&self) -> Arc<tls::TlsConfigs> {
        self.tls
            .get_or_init(|| Arc::new(tls::TlsConfigs::load()))
            .clone()
    }
}

/// Runs the agent's periodic health checks; see the module docs.
pub struct CheckRunner {
    inner: Arc<Inner>,
}

impl CheckRunner {
    /// A runner that reports on `updates` and stops when `token` (the agent's) is cancelled.
    pub fn new(
        settings: RunnerSettings,
        updates: UnboundedSender<CheckUpdate>,
        health: Arc<dyn HealthView>,
        token: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                updates_tx: updates,
                health,
                token: token.child_token(),
                tracker: TaskTracker::new(),
                tasks: Mutex::new(HashMap::new()),
                tls: OnceLock::new(),
                docker: Arc::new(docker::DockerSource::new(settings.docker_host.clone())),
                settings,
            }),
        }
    }

    /// Starts (or restarts, replacing the old task) the periodic check `id`. TTL checks and
    /// checks with no runnable type return Ok and run nothing (the agent handles TTLs).
    /// Script/docker checks are refused with Consul's message unless allowed for the source
    /// (`from_config`: the check comes from a config file). On error the previous task of
    /// `id`, if any, keeps running.
    pub fn start(&self, id: &str, def: &CheckDefinition, from_config: bool) -> Result<(), String> {
        let plan = self.plan(def, from_config).map_err(|e| e.to_string())?;
        let inner = &self.inner;
        let mut tasks = inner.tasks.lock().expect("checks lock");
        if let Some(old) = tasks.remove(id) {
            old.token.cancel();
        }
        if inner.token.is_cancelled() {
            tracing::debug!(check = %id, "check runner is shut down; not starting check");
            return Ok(());
        }
        let token = inner.token.child_token();
        let handle = match plan {
            Plan::Nothing => return Ok(()),
            Plan::Unsupported(message) => {
                drop(tasks);
                inner.send(&token, id, CRITICAL, message);
                return Ok(());
            }
            Plan::Periodic(probe, interval, handler) => inner.tracker.spawn(probe_loop(
                inner.clone(),
                id.to_string(),
                probe,
                interval,
                handler,
                token.clone(),
            )),
            Plan::Alias(check) => inner.tracker.spawn(alias::alias_loop(
                inner.clone(),
                id.to_string(),
                check,
                token.clone(),
            )),
        };
        tasks.insert(id.to_string(), RunningCheck { token, handle });
        Ok(())
    }

    /// Whether [`CheckRunner::start`] would accept the check, without starting it.
    pub fn validate(&self, def: &CheckDefinition, from_config: bool) -> Result<(), String> {
        self.plan(def, from_config)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Stops check `id` (a no-op for unknown IDs). No update for it is sent after this returns.
    pub fn stop(&self, id: &str) {
        if let Some(old) = self.inner.tasks.lock().expect("checks lock").remove(id) {
            old.token.cancel();
        }
    }

    /// How many check tasks are running.
    pub fn running(&self) -> usize {
        self.inner
            .tasks
            .lock()
            .expect("checks lock")
            .values()
            .filter(|c| !c.handle.is_finished())
            .count()
    }

    /// Cancels every task and waits for them to end (at most a few seconds).
    pub async fn shutdown(&self) {
        self.inner.token.cancel();
        self.inner.tasks.lock().expect("checks lock").clear();
        self.inner.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.inner.tracker.len(),
                "check tasks did not stop in time"
            );
        } else {
            tracing::info!("check runner stopped");
        }
    }

    /// Validates `def` and builds what its task will run.
    fn plan(&self, def: &CheckDefinition, from_config: bool) -> Result<Plan, StartError> {
        let settings = &self.inner.settings;
        let kind = def.check_type();
        let max_output = output_cap(def.output_max_size, settings.output_max_size);
        let timeout = |default: Duration| {
            def.timeout
                .map(GoDuration::get)
                .filter(|d| !d.is_zero())
                .unwrap_or(default)
        };
        let probe = match kind {
            "grpc" => {
                return Ok(Plan::Unsupported(
                    "gRPC checks are not supported by this agent",
                ));
            }
            "h2ping" => {
                return Ok(Plan::Unsupported(
                    "H2PING checks are not supported by this agent",
                ));
            }
            "alias" => return Ok(Plan::Alias(AliasCheck::new(def))),
            "http" => Probe::Http(Box::new(HttpCheck::new(
                def,
                timeout(DEFAULT_TIMEOUT),
                max_output,
                self.inner.tls(),
            ))),
            "tcp" => {
                let tls = def.tcp_use_tls.then(|| {
                    let name =
                        (!def.tls_server_name.is_empty()).then(|| def.tls_server_name.clone());
                    (self.inner.tls().plain(def.tls_skip_verify), name)
                });
                Probe::Tcp(TcpCheck::new(&def.tcp, timeout(DEFAULT_TIMEOUT), tls))
            }
            "udp" => Probe::Udp(UdpCheck::new(&def.udp, timeout(DEFAULT_TIMEOUT))),
            "script" => {
                scripts_allowed(settings, from_config)?;
                Probe::Script(ScriptCheck::new(
                    def.args.clone(),
                    timeout(DEFAULT_SCRIPT_TIMEOUT),
                    max_output,
                ))
            }
            "docker" => {
                scripts_allowed(settings, from_config)?;
                // Consul only knows docker checks that carry a command (`args`).
                if def.args.is_empty() {
                    return Err(StartError::InvalidType);
                }
                Probe::Docker(DockerCheck::new(
                    self.inner.docker.clone(),
                    &def.docker_container_id,
                    def.args.clone(),
                    timeout(DEFAULT_SCRIPT_TIMEOUT),
                    max_output,
                ))
            }
            // TTL checks (the agent expires them) and anything without a runnable type.
            _ => return Ok(Plan::Nothing),
        };
        let interval = def
            .interval
            .map(GoDuration::get)
            .filter(|d| !d.is_zero())
            .ok_or(StartError::MissingInterval(kind))?;
        let handler = StatusHandler::new(
            def.success_before_passing,
            def.failures_before_warning,
            def.failures_before_critical,
        );
        Ok(Plan::Periodic(probe, interval, handler))
    }
}

/// Consul's rule for script (and docker) checks: `enable_script_checks` allows every source,
/// `enable_local_script_checks` only config files.
fn scripts_allowed(settings: &RunnerSettings, from_config: bool) -> Result<(), StartError> {
    match from_config {
        true if settings.enable_script_checks || settings.enable_local_script_checks => Ok(()),
        true => Err(StartError::LocalScriptsDisabled),
        false if settings.enable_script_checks => Ok(()),
        false => Err(StartError::RemoteScriptsDisabled),
    }
}

/// The output cap of one check: the agent's cap, lowered by the check's `OutputMaxSize`.
fn output_cap(check_max: usize, agent_max: usize) -> usize {
    let agent_max = if agent_max == 0 {
        DEFAULT_OUTPUT_MAX_SIZE
    } else {
        agent_max
    };
    if check_max > 0 && check_max < agent_max {
        check_max
    } else {
        agent_max
    }
}

/// Remembers the last report so unchanged results are not sent again.
struct Reporter {
    inner: Arc<Inner>,
    check_id: String,
    token: CancellationToken,
    last: Option<(&'static str, String)>,
}

impl Reporter {
    fn new(inner: Arc<Inner>, check_id: String, token: CancellationToken) -> Self {
        Self {
            inner,
            check_id,
            token,
            last: None,
        }
    }

    fn report(&mut self, status: &'static str, output: String) {
        if self
            .last
            .as_ref()
            .is_some_and(|(s, o)| *s == status && *o == output)
        {
            return;
        }
        tracing::debug!(check = %self.check_id, %status, "check status changed");
        self.inner
            .send(&self.token, &self.check_id, status, &output);
        self.last = Some((status, output));
    }
}

/// A random delay in `[0, interval)` so checks registered together do not run in lockstep.
fn random_stagger(interval: Duration) -> Duration {
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::random_range(0..nanos))
}

/// The task of one periodic check: stagger, then probe → thresholds → report, every `interval`
/// after the previous run ends (Consul's `time.After(interval)` loop).
#[tracing::instrument(skip_all, fields(check = %check_id))]
async fn probe_loop(
    inner: Arc<Inner>,
    check_id: String,
    probe: Probe,
    interval: Duration,
    mut handler: StatusHandler,
    token: CancellationToken,
) {
    tracing::debug!(?interval, "check started");
    let mut reporter = Reporter::new(inner, check_id, token.clone());
    let mut delay = random_stagger(interval);
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = sleep(delay) => {}
        }
        // Dropping the probe on cancellation aborts it (a script's process group is killed).
        let outcome = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            // Boxed: a probe's future (TLS handshake, hyper connection) is large and
            // lives only while it runs, so an idle check task stays small.
            outcome = Box::pin(probe.run()) => outcome,
        };
        if let Some((status, output)) = handler.observe(outcome.status, outcome.output) {
            reporter.report(status, output);
        }
        delay = interval;
    }
    tracing::debug!("check stopped");
}
