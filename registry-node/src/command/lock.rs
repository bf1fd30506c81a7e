//! `registry-node lock`: Consul's `lock` command. Holds a KV lock (or, with
//! `-n` > 1, a semaphore slot) under PREFIX while a child process runs.
//!
//! The algorithm is Consul's client-side lock and semaphore (its `api/lock.go`
//! and `api/semaphore.go`):
//! - a session with a TTL, renewed every TTL/2 and destroyed at the end;
//! - lock (`-n=1`): acquire `<prefix>/.lock` with the session, waiting on it with
//!   blocking queries while someone else holds it;
//! - semaphore (`-n>1`): a contender key `<prefix>/<session>` held by the
//!   session, plus `<prefix>/.lock` holding `{"Limit": n, "Holders": {session:
//!   true}}` updated with check-and-set; holders whose contender key lost its
//!   session are pruned;
//! - while the child runs, a blocking query on the lock watches that we still
//!   hold it; if not, the child gets SIGTERM and, 5s later, SIGKILL.
//!
//! Messages and exit codes are Consul's (`Lock acquisition failed: ...`, exit 1;
//! `-child-exit-code` exits 2 when the child failed).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::Stdio;
use std::time::Duration;

use registry_api::client::{Client, ClientError, KvPutOptions};
use registry_api::duration::parse_duration;
use registry_api::{Consistency, GoDuration, KVPair, QueryOptions, SessionRequest};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::http_flags::{HttpFlags, parse_bool};
use super::output::{fail, fail_client};
use super::watch::spawn_signal_listener;
use crate::watches::ChildCommand;
use crate::watches::exec::{describe_status, terminate};

/// Key under the prefix that coordinates holders (Consul's `DefaultSemaphoreKey`,
/// used by its lock command too so a lock and a semaphore on one prefix conflict).
const LOCK_KEY: &str = ".lock";
/// Flags marking a key as a lock (Consul's `LockFlagValue`).
const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;
/// Flags marking a key as a semaphore (Consul's `SemaphoreFlagValue`).
const SEMAPHORE_FLAG: u64 = 0xe0f6_9a2b_aa41_4de0;
/// How long one blocking read waits while the lock is taken.
const LOCK_WAIT: Duration = Duration::from_secs(15);
/// Pause after an acquisition refused by a lock-delay (Consul's `DefaultLockRetryTime`).
const LOCK_RETRY: Duration = Duration::from_secs(5);
/// Shortest pause after a refused acquisition.
const LOCK_RETRY_MIN: Duration = Duration::from_millis(250);
/// Pause between monitor retries after a server error.
const MONITOR_RETRY_TIME: Duration = Duration::from_secs(1);
/// Time the child gets between SIGTERM and SIGKILL (Consul's `lockKillGracePeriod`).
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Environment variable telling the child it runs under the lock.
const ENV_LOCK_HELD: &str = "CONSUL_LOCK_HELD";

/// Arguments of `lock`.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// Number of concurrent holders; above 1 the lock becomes a semaphore.
    #[arg(
        long = "n",
        default_value_t = 1,
        allow_negative_numbers = true,
        value_name = "int"
    )]
    pub limit: i64,

    /// Name of the lock session (default: derived from the child command).
    #[arg(long, value_name = "string")]
    pub name: Option<String>,

    /// Run the child through the shell (`$SHELL -c`, joined arguments).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub shell: bool,

    /// Pass our stdin to the child.
    #[arg(long = "pass-stdin", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", value_parser = parse_bool,
          action = clap::ArgAction::Set)]
    pub pass_stdin: bool,

    /// Maximum time to wait for the lock (`0`: wait forever).
    #[arg(
        long,
        default_value = "0s",
        allow_hyphen_values = true,
        value_name = "duration"
    )]
    pub timeout: String,

    /// Deprecated alias of -timeout.
    #[arg(
        long = "try",
        hide = true,
        allow_hyphen_values = true,
        value_name = "duration"
    )]
    pub try_timeout: Option<String>,

    /// Server errors tolerated (1s apart) while monitoring the lock.
    #[arg(
        long = "monitor-retry",
        default_value_t = 3,
        allow_negative_numbers = true,
        value_name = "int"
    )]
    pub monitor_retry: i64,

    /// Exit 2 when the child failed (otherwise exit 0 whatever the child did).
    #[arg(long = "child-exit-code", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", value_parser = parse_bool,
          action = clap::ArgAction::Set)]
    pub child_exit_code: bool,

    /// Print what the lock is doing.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub verbose: bool,

    /// TTL of the lock session (not a Consul flag; tests shorten it).
    #[arg(
        long = "session-ttl",
        hide = true,
        default_value = "15s",
        value_name = "duration"
    )]
    pub session_ttl: String,

    /// Lock-delay of the lock session (not a Consul flag; tests shorten it).
    #[arg(
        long = "lock-delay",
        hide = true,
        default_value = "15s",
        value_name = "duration"
    )]
    pub lock_delay: String,

    /// `PREFIX CHILD...`.
    #[arg(
        value_name = "PREFIX CHILD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Settings checked before anything talks to the agent.
struct Settings {
    prefix: String,
    child: ChildCommand,
    limit: usize,
    name: String,
    timeout: Option<Duration>,
    monitor_retry: u32,
    session_ttl: Duration,
    lock_delay: Duration,
}

fn settings(args: &LockArgs) -> Result<Settings, String> {
    if args.limit <= 0 {
        return Err("Lock holder limit must be positive".into());
    }
    let raw = raw_trailing_args(&args.args);
    if raw.len() < 2 {
        return Err("Key prefix and child command must be specified".into());
    }
    let prefix = raw[0].trim_start_matches('/').to_string();
    let child_args = raw[1..].to_vec();
    let timeout_text = args.try_timeout.as_deref().unwrap_or(&args.timeout);
    if timeout_text.trim_start().starts_with('-') {
        return Err("Timeout must be positive".into());
    }
    let timeout = parse_duration(timeout_text)
        .map_err(|e| format!("invalid value {timeout_text:?} for flag -timeout: {e}"))?;
    if args.monitor_retry < 0 {
        return Err("Number for 'monitor-retry' must be >= 0".into());
    }
    let session_ttl = parse_duration(&args.session_ttl).map_err(|e| {
        format!(
            "invalid value {:?} for flag -session-ttl: {e}",
            args.session_ttl
        )
    })?;
    if session_ttl.is_zero() {
        return Err("Session TTL must be positive".into());
    }
    let lock_delay = parse_duration(&args.lock_delay).map_err(|e| {
        format!(
            "invalid value {:?} for flag -lock-delay: {e}",
            args.lock_delay
        )
    })?;
    let name = args
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("Consul lock for '{}' at '{}'", child_args.join(" "), prefix));
    Ok(Settings {
        prefix,
        child: ChildCommand::from_args(&child_args, args.shell),
        limit: usize::try_from(args.limit).unwrap_or(usize::MAX),
        name,
        timeout: (!timeout.is_zero()).then_some(timeout),
        monitor_retry: u32::try_from(args.monitor_retry).unwrap_or(u32::MAX),
        session_ttl,
        lock_delay,
    })
}

/// The child's arguments as the user typed them.
///
/// `main` normalises Go-style flags (`-c` becomes `--c`) across the whole argv,
/// including the child's arguments, which are not ours to rewrite. Normalising
/// maps argv token for token, so our trailing arguments are the last N tokens of
/// the process's raw argv; use those when they normalise to what clap gave us
/// (and keep clap's otherwise, e.g. when called in-process by a test).
pub(crate) fn raw_trailing_args(parsed: &[String]) -> Vec<String> {
    let raw: Vec<OsString> = std::env::args_os().collect();
    if parsed.is_empty() || raw.len() <= parsed.len() {
        return parsed.to_vec();
    }
    let tail = &raw[raw.len() - parsed.len()..];
    let mut probe = vec![raw[0].clone()];
    probe.extend(tail.iter().cloned());
    let normalised: Vec<OsString> = crate::cli::goflags::normalize(probe)
        .into_iter()
        .skip(1)
        .collect();
    let matches = normalised.len() == parsed.len()
        && normalised
            .iter()
            .zip(parsed)
            .all(|(n, p)| n.to_str() == Some(p.as_str()));
    let tail: Option<Vec<String>> = tail
        .iter()
        .map(|t| t.to_str().map(str::to_string))
        .collect();
    match tail {
        Some(tail) if matches => tail,
        _ => parsed.to_vec(),
    }
}

/// Runs `lock`.
pub async fn run(args: LockArgs) -> anyhow::Result<i32> {
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(msg) => return Ok(fail(msg)),
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    if let Err(e) = client.agent_self(&QueryOptions::default()).await {
        return Ok(fail_client("Error querying Consul agent", &e));
    }
    let ui = Ui {
        verbose: args.verbose,
    };
    let shutdown = CancellationToken::new();
    spawn_signal_listener(shutdown.clone())?;

    let kind = if settings.limit == 1 {
        let key = join_key(&settings.prefix, LOCK_KEY);
        ui.info(format!("Setting up lock at path: {key}"));
        Kind::Lock { key }
    } else {
        ui.info(format!(
            "Setting up semaphore (limit {}) at prefix: {}",
            settings.limit, settings.prefix
        ));
        Kind::Semaphore {
            lock_key: join_key(&settings.prefix, LOCK_KEY),
            prefix: settings.prefix.clone(),
            limit: settings.limit,
        }
    };

    ui.info("Attempting lock acquisition");
    let behavior = match kind {
        Kind::Lock { .. } => "release",
        // Consul's semaphore deletes contender keys with the session.
        Kind::Semaphore { .. } => "delete",
    };
    let request = SessionRequest {
        name: settings.name.clone(),
        ttl: GoDuration(settings.session_ttl).to_string(),
        lock_delay: Some(GoDuration(settings.lock_delay)),
        behavior: behavior.into(),
        ..SessionRequest::default()
    };
    let session = match client.session_create(&request).await {
        Ok(id) => id,
        Err(e) => {
            return Ok(fail(format!(
                "Lock acquisition failed: failed to create session: {e}"
            )));
        }
    };
    let session_lost = CancellationToken::new();
    let renew_stop = CancellationToken::new();
    let guard = SessionGuard {
        client: client.clone(),
        renewer: tokio::spawn(renew_loop(
            client.clone(),
            session.clone(),
            settings.session_ttl,
            renew_stop.clone(),
            session_lost.clone(),
        )),
        renew_stop,
        id: session.clone(),
    };
    let lock = Lock {
        client: client.clone(),
        kind,
        session,
        retry: LOCK_RETRY.min(settings.lock_delay).max(LOCK_RETRY_MIN),
    };

    let stop = CancellationToken::new();
    let acquire_stop = stop.clone();
    let stop_relay = {
        let (shutdown, lost, stop) = (shutdown.clone(), session_lost.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = lost.cancelled() => {}
            }
            stop.cancel();
        })
    };
    let acquired = lock.acquire(settings.timeout, &acquire_stop).await;
    stop_relay.abort();
    let failure = match acquired {
        Ok(true) => None,
        Ok(false) if session_lost.is_cancelled() && !shutdown.is_cancelled() => {
            Some("Lock acquisition failed: the lock session was invalidated".to_string())
        }
        Ok(false) => Some("Shutdown triggered or timeout during lock acquisition".to_string()),
        Err(msg) => Some(format!("Lock acquisition failed: {msg}")),
    };
    if let Some(message) = failure {
        if let Err(e) = lock.cleanup_contender().await {
            tracing::warn!(error = %e, "failed to delete the semaphore contender key");
        }
        guard.end().await;
        return Ok(fail(message));
    }

    let mut child_code = 0;
    if shutdown.is_cancelled() {
        eprintln!("Shutdown triggered during lock acquisition");
    } else {
        // Watch that we keep the lock while the child runs.
        let lost = CancellationToken::new();
        let monitor_stop = CancellationToken::new();
        let monitor = tokio::spawn(lock.clone().monitor(
            settings.monitor_retry,
            monitor_stop.clone(),
            lost.clone(),
        ));
        let relay = {
            let (session_lost, lost) = (session_lost.clone(), lost.clone());
            tokio::spawn(async move {
                session_lost.cancelled().await;
                lost.cancel();
            })
        };
        child_code = run_child(&settings.child, args.pass_stdin, &ui, &shutdown, &lost).await;
        relay.abort();
        monitor_stop.cancel();
        let _ = monitor.await;
    }

    let released = lock.release().await;
    guard.end().await;
    if let Err(msg) = released {
        return Ok(fail(format!("Lock release failed: {msg}")));
    }
    match lock.destroy().await {
        Ok(()) => ui.info("Cleanup succeeded"),
        Err(CleanupError::InUse) => ui.info("Cleanup aborted, lock in use"),
        Err(CleanupError::Failed(msg)) => return Ok(fail(format!("Lock cleanup failed: {msg}"))),
    }
    Ok(if args.child_exit_code { child_code } else { 0 })
}

/// Runs the child until it exits, the lock is lost or we are told to stop.
/// Returns Consul's child code: 2 when the child failed or could not start.
async fn run_child(
    child: &ChildCommand,
    pass_stdin: bool,
    ui: &Ui,
    shutdown: &CancellationToken,
    lost: &CancellationToken,
) -> i32 {
    ui.info("Starting handler");
    // A child in its own process group can be stopped with everything it started;
    // but a background group cannot read a terminal, so keep ours when it must.
    let own_group = !(pass_stdin && std::io::stdin().is_terminal());
    let mut cmd = match child.command(own_group) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("Error executing handler: {e}");
            return 2;
        }
    };
    cmd.env(ENV_LOCK_HELD, "true");
    if pass_stdin {
        ui.info("Stdin passed to handler process");
        cmd.stdin(Stdio::inherit());
    }
    let mut process = match cmd.spawn() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error starting handler: {e}");
            return 2;
        }
    };
    let pid = process.id().unwrap_or_default();
    tokio::select! {
        status = process.wait() => {
            let code = match status {
                Ok(status) if status.success() => 0,
                Ok(status) => {
                    eprintln!("Error running handler: {}", describe_status(status));
                    2
                }
                Err(e) => {
                    eprintln!("Error running handler: {e}");
                    2
                }
            };
            ui.info("Child terminated, releasing lock");
            return code;
        }
        _ = shutdown.cancelled() => ui.info("Shutdown triggered, killing child"),
        _ = lost.cancelled() => ui.info("Lock lost, killing child"),
    }
    ui.info(format!("Terminating child pid {pid}"));
    match terminate(&mut process, KILL_GRACE, own_group).await {
        Ok(_) => ui.info("Child terminated"),
        Err(e) => eprintln!("Failed to terminate {pid}: {e}"),
    }
    0
}

/// The lock session and its renewal task.
struct SessionGuard {
    client: Client,
    id: String,
    renew_stop: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
}

impl SessionGuard {
    /// Stops the renewals and destroys the session (which frees anything it still holds).
    async fn end(self) {
        self.renew_stop.cancel();
        let _ = self.renewer.await;
        if let Err(e) = self.client.session_destroy(&self.id).await {
            tracing::warn!(session = %self.id, error = %e, "failed to destroy the lock session");
        }
    }
}

/// Verbose output goes to stdout, as Consul's `UI.Info`.
struct Ui {
    verbose: bool,
}

impl Ui {
    fn info(&self, text: impl AsRef<str>) {
        if self.verbose {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", text.as_ref());
        }
    }
}

/// Renews the session every TTL/2 until `stop`. Cancels `lost` when the session
/// is gone, or when no renewal succeeded for a whole TTL.
async fn renew_loop(
    client: Client,
    id: String,
    ttl: Duration,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let mut ttl = ttl;
    let mut last_ok = Instant::now();
    let mut pause = ttl / 2;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = sleep(pause) => {}
        }
        match client.session_renew(&id).await {
            Ok(Some(entry)) => {
                last_ok = Instant::now();
                // The server may ask for slower renewals.
                if let Ok(d) = parse_duration(&entry.ttl)
                    && !d.is_zero()
                {
                    ttl = d;
                }
                pause = ttl / 2;
            }
            Ok(None) => {
                tracing::warn!(session = %id, "lock session no longer exists");
                lost.cancel();
                return;
            }
            Err(e) => {
                if last_ok.elapsed() > ttl {
                    tracing::warn!(session = %id, error = %e, "lock session could not be renewed within its TTL");
                    lost.cancel();
                    return;
                }
                tracing::debug!(session = %id, error = %e, "session renewal failed; retrying");
                pause = Duration::from_secs(1).min(ttl / 4);
            }
        }
    }
}

/// `path.Join(prefix, leaf)` for KV keys: empty segments and `.` dropped.
fn join_key(prefix: &str, leaf: &str) -> String {
    prefix
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .chain(std::iter::once(leaf))
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Debug, Clone)]
enum Kind {
    Lock {
        key: String,
    },
    Semaphore {
        prefix: String,
        lock_key: String,
        limit: usize,
    },
}

/// The coordination record of a semaphore, stored at `<prefix>/.lock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SemaphoreRecord {
    /// The holder limit every contender must agree on.
    #[serde(rename = "Limit")]
    limit: usize,
    /// Sessions holding a slot (a set: the value is always `true`).
    #[serde(rename = "Holders", default)]
    holders: Option<BTreeMap<String, bool>>,
}

impl SemaphoreRecord {
    fn holders(&mut self) -> &mut BTreeMap<String, bool> {
        self.holders.get_or_insert_with(BTreeMap::new)
    }
}

enum CleanupError {
    /// Someone holds the lock: leave the key alone.
    InUse,
    Failed(String),
}

/// One lock or semaphore held (or wanted) by one session.
#[derive(Debug, Clone)]
struct Lock {
    client: Client,
    kind: Kind,
    session: String,
    /// Pause after an acquisition refused by a lock-delay.
    retry: Duration,
}

impl Lock {
    /// Blocks until acquired (`Ok(true)`), until `timeout` passes or `stop` is
    /// cancelled (`Ok(false)`), or a fatal error.
    async fn acquire(
        &self,
        timeout: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<bool, String> {
        if let Kind::Semaphore { prefix, .. } = &self.kind {
            let contender = join_key(prefix, &self.session);
            let opts = KvPutOptions {
                flags: SEMAPHORE_FLAG,
                acquire: Some(self.session.clone()),
                ..KvPutOptions::default()
            };
            match self.client.kv_put(&contender, b"", &opts).await {
                Ok(true) => {}
                Ok(false) => return Err("failed to make contender entry: not acquired".into()),
                Err(e) => return Err(format!("failed to make contender entry: {e}")),
            }
        }
        let start = Instant::now();
        let mut attempts = 0u32;
        let mut wait_index = 0u64;
        loop {
            if stop.is_cancelled() {
                return Ok(false);
            }
            let mut wait = LOCK_WAIT;
            if let Some(limit) = timeout
                && attempts > 0
            {
                let elapsed = start.elapsed();
                if elapsed > limit {
                    return Ok(false);
                }
                wait = wait.min(limit - elapsed);
            }
            attempts += 1;
            let opts = QueryOptions {
                wait_index,
                wait_time: Some(wait),
                ..QueryOptions::default()
            };
            let step = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(false),
                step = self.try_acquire(&opts) => step?,
            };
            match step {
                Step::Acquired => return Ok(true),
                Step::Wait(index) => wait_index = index,
                Step::Retry => {
                    wait_index = 0;
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(false),
                        _ = sleep(self.retry) => {}
                    }
                }
            }
        }
    }

    /// One read of the lock and, when it is free, one attempt to take it.
    async fn try_acquire(&self, opts: &QueryOptions) -> Result<Step, String> {
        match &self.kind {
            Kind::Lock { key } => {
                let (pair, meta) = self
                    .client
                    .kv_get(key, opts)
                    .await
                    .map_err(|e| format!("failed to read lock: {e}"))?;
                if let Some(pair) = &pair {
                    if pair.flags != LOCK_FLAG {
                        return Err("Existing key does not match lock use".into());
                    }
                    match pair.session.as_deref().filter(|s| !s.is_empty()) {
                        Some(s) if s == self.session => return Ok(Step::Acquired),
                        Some(_) => return Ok(Step::Wait(meta.last_index)),
                        None => {}
                    }
                }
                let put = KvPutOptions {
                    flags: LOCK_FLAG,
                    acquire: Some(self.session.clone()),
                    ..KvPutOptions::default()
                };
                let locked = self
                    .client
                    .kv_put(key, b"", &put)
                    .await
                    .map_err(|e| format!("failed to acquire lock: {e}"))?;
                if locked {
                    return Ok(Step::Acquired);
                }
                // Lost a race (wait for the winner) or a lock-delay is in effect
                // (the key is free but refused: retry after a pause).
                let (pair, meta) = self
                    .client
                    .kv_get(key, &QueryOptions::default())
                    .await
                    .map_err(|e| format!("failed to read lock: {e}"))?;
                if pair.and_then(|p| p.session).is_some_and(|s| !s.is_empty()) {
                    Ok(Step::Wait(meta.last_index))
                } else {
                    Ok(Step::Retry)
                }
            }
            Kind::Semaphore {
                prefix,
                lock_key,
                limit,
            } => {
                let (pairs, meta) = self
                    .client
                    .kv_list(prefix, opts)
                    .await
                    .map_err(|e| format!("failed to read prefix: {e}"))?;
                let lock_pair = find_pair(&pairs, lock_key);
                if lock_pair.flags != SEMAPHORE_FLAG {
                    return Err("Existing key does not match semaphore use".into());
                }
                let mut record = decode_record(&lock_pair, *limit)?;
                if record.limit != *limit {
                    return Err(format!(
                        "semaphore limit conflict (lock: {}, local: {})",
                        record.limit, limit
                    ));
                }
                prune_dead_holders(&mut record, &pairs);
                if record.holders().len() >= *limit {
                    return Ok(Step::Wait(meta.last_index));
                }
                record.holders().insert(self.session.clone(), true);
                let swapped = self
                    .cas_record(lock_key, &record, lock_pair.modify_index)
                    .await?;
                if swapped {
                    Ok(Step::Acquired)
                } else {
                    // Another contender changed the record first: read it again.
                    Ok(Step::Wait(opts.wait_index))
                }
            }
        }
    }

    async fn cas_record(
        &self,
        key: &str,
        record: &SemaphoreRecord,
        index: u64,
    ) -> Result<bool, String> {
        let value = serde_json::to_vec(record).map_err(|e| format!("lock encoding failed: {e}"))?;
        let put = KvPutOptions {
            flags: SEMAPHORE_FLAG,
            cas: Some(index),
            ..KvPutOptions::default()
        };
        self.client
            .kv_put(key, &value, &put)
            .await
            .map_err(|e| format!("failed to update lock: {e}"))
    }

    /// Watches the lock with blocking (consistent) reads and cancels `lost` as
    /// soon as we no longer hold it. Up to `retries` server errors in a row are
    /// ridden out, 1s apart.
    async fn monitor(self, retries: u32, stop: CancellationToken, lost: CancellationToken) {
        let mut opts = QueryOptions {
            consistency: Consistency::Consistent,
            ..QueryOptions::default()
        };
        let mut left = retries;
        loop {
            let read = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                read = self.still_held(&opts) => read,
            };
            match read {
                Ok((true, index)) => {
                    left = retries;
                    opts.wait_index = index;
                }
                Ok((false, _)) => {
                    tracing::info!("lock is no longer held");
                    lost.cancel();
                    return;
                }
                Err(e) if left > 0 && is_retryable(&e) => {
                    left -= 1;
                    tracing::debug!(error = %e, left, "lock monitor read failed; retrying");
                    opts.wait_index = 0;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = sleep(MONITOR_RETRY_TIME) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lock monitor failed; giving the lock up");
                    lost.cancel();
                    return;
                }
            }
        }
    }

    /// Whether our session still holds the lock (or a semaphore slot), and the index to block on.
    async fn still_held(&self, opts: &QueryOptions) -> Result<(bool, u64), ClientError> {
        match &self.kind {
            Kind::Lock { key } => {
                let (pair, meta) = self.client.kv_get(key, opts).await?;
                let held = pair.and_then(|p| p.session).as_deref() == Some(self.session.as_str());
                Ok((held, meta.last_index))
            }
            Kind::Semaphore {
                prefix,
                lock_key,
                limit,
            } => {
                let (pairs, meta) = self.client.kv_list(prefix, opts).await?;
                let Ok(mut record) = decode_record(&find_pair(&pairs, lock_key), *limit) else {
                    return Ok((false, meta.last_index));
                };
                prune_dead_holders(&mut record, &pairs);
                Ok((
                    record.holders().contains_key(&self.session),
                    meta.last_index,
                ))
            }
        }
    }

    /// Gives the lock (or our slot) back.
    async fn release(&self) -> Result<(), String> {
        match &self.kind {
            Kind::Lock { key } => {
                let put = KvPutOptions {
                    flags: LOCK_FLAG,
                    release: Some(self.session.clone()),
                    ..KvPutOptions::default()
                };
                // `false` means we no longer held it (lost): nothing to give back.
                self.client
                    .kv_put(key, b"", &put)
                    .await
                    .map(drop)
                    .map_err(|e| format!("failed to release lock: {e}"))
            }
            Kind::Semaphore {
                lock_key, limit, ..
            } => {
                loop {
                    let (pair, _) = self
                        .client
                        .kv_get(lock_key, &QueryOptions::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    let pair = pair.unwrap_or_default();
                    let mut record = decode_record(&pair, *limit)?;
                    if record.holders().remove(&self.session).is_none() {
                        break;
                    }
                    if self
                        .cas_record(lock_key, &record, pair.modify_index)
                        .await?
                    {
                        break;
                    }
                }
                self.cleanup_contender().await
            }
        }
    }

    /// Deletes our semaphore contender key (nothing for a plain lock).
    async fn cleanup_contender(&self) -> Result<(), String> {
        if let Kind::Semaphore { prefix, .. } = &self.kind {
            let contender = join_key(prefix, &self.session);
            self.client
                .kv_delete(&contender, false, None)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Deletes the lock key when nobody holds it (Consul's `Destroy`).
    async fn destroy(&self) -> Result<(), CleanupError> {
        let failed = CleanupError::Failed;
        match &self.kind {
            Kind::Lock { key } => {
                let (pair, _) = self
                    .client
                    .kv_get(key, &QueryOptions::default())
                    .await
                    .map_err(|e| failed(format!("failed to read lock: {e}")))?;
                let Some(pair) = pair else { return Ok(()) };
                if pair.flags != LOCK_FLAG {
                    return Err(failed("Existing key does not match lock use".into()));
                }
                if pair.session.as_deref().is_some_and(|s| !s.is_empty()) {
                    return Err(CleanupError::InUse);
                }
                let removed = self
                    .client
                    .kv_delete(key, false, Some(pair.modify_index))
                    .await
                    .map_err(|e| failed(format!("failed to remove lock: {e}")))?;
                if removed {
                    Ok(())
                } else {
                    Err(CleanupError::InUse)
                }
            }
            Kind::Semaphore {
                prefix,
                lock_key,
                limit,
            } => {
                let (pairs, _) = self
                    .client
                    .kv_list(prefix, &QueryOptions::default())
                    .await
                    .map_err(|e| failed(format!("failed to read prefix: {e}")))?;
                let lock_pair = find_pair(&pairs, lock_key);
                if lock_pair.modify_index == 0 {
                    return Ok(());
                }
                if lock_pair.flags != SEMAPHORE_FLAG {
                    return Err(failed("Existing key does not match semaphore use".into()));
                }
                let mut record = decode_record(&lock_pair, *limit).map_err(failed)?;
                prune_dead_holders(&mut record, &pairs);
                if !record.holders().is_empty() {
                    return Err(CleanupError::InUse);
                }
                let removed = self
                    .client
                    .kv_delete(lock_key, false, Some(lock_pair.modify_index))
                    .await
                    .map_err(|e| failed(format!("failed to remove semaphore: {e}")))?;
                if removed {
                    Ok(())
                } else {
                    Err(CleanupError::InUse)
                }
            }
        }
    }
}

/// Outcome of one acquisition attempt.
enum Step {
    Acquired,
    /// Held by others: block on this index.
    Wait(u64),
    /// Free but refused (lock-delay): pause, then read again.
    Retry,
}

/// The semaphore record among `pairs`, or an empty one carrying the semaphore flag.
fn find_pair(pairs: &[KVPair], key: &str) -> KVPair {
    pairs
        .iter()
        .find(|p| p.key == key)
        .cloned()
        .unwrap_or_else(|| KVPair {
            key: key.to_string(),
            flags: SEMAPHORE_FLAG,
            ..KVPair::default()
        })
}

/// The record stored in `pair`; an absent value is a fresh record with our limit.
fn decode_record(pair: &KVPair, limit: usize) -> Result<SemaphoreRecord, String> {
    match &pair.value {
        None => Ok(SemaphoreRecord {
            limit,
            holders: Some(BTreeMap::new()),
        }),
        Some(bytes) => {
            serde_json::from_slice(bytes).map_err(|e| format!("lock decoding failed: {e}"))
        }
    }
}

/// Drops holders whose contender key no longer carries their session.
fn prune_dead_holders(record: &mut SemaphoreRecord, pairs: &[KVPair]) {
    let alive: Vec<&str> = pairs
        .iter()
        .filter_map(|p| p.session.as_deref())
        .filter(|s| !s.is_empty())
        .collect();
    record
        .holders()
        .retain(|holder, _| alive.contains(&holder.as_str()));
}

/// Consul's `IsRetryableError`: server errors and connection problems.
fn is_retryable(err: &ClientError) -> bool {
    !err.is_config_error() && err.status().is_none_or(|s| s >= 500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: LockArgs,
    }

    fn parse(argv: &[&str]) -> LockArgs {
        Cmd::try_parse_from(std::iter::once("lock").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn flags_and_child() {
        let a = parse(&[
            "--n=3",
            "--timeout=2s",
            "--verbose",
            "/svc/leader",
            "echo",
            "--c",
            "x",
        ]);
        let s = settings(&a).unwrap();
        assert_eq!(s.prefix, "svc/leader");
        assert_eq!(s.limit, 3);
        assert_eq!(s.timeout, Some(Duration::from_secs(2)));
        assert_eq!(s.child, ChildCommand::Shell("echo --c x".into()));
        assert_eq!(s.name, "Consul lock for 'echo --c x' at 'svc/leader'");
        assert_eq!(s.session_ttl, Duration::from_secs(15));
        assert_eq!(s.lock_delay, Duration::from_secs(15));
        assert!(a.verbose);

        let a = parse(&["--shell=false", "--name=n", "p", "sleep", "1"]);
        let s = settings(&a).unwrap();
        assert_eq!(
            s.child,
            ChildCommand::Exec(vec!["sleep".into(), "1".into()])
        );
        assert_eq!(s.name, "n");
        assert_eq!(s.timeout, None);
    }

    #[test]
    fn consul_errors() {
        let err = |argv: &[&str]| settings(&parse(argv)).err().unwrap();
        assert_eq!(
            err(&["--n=0", "p", "c"]),
            "Lock holder limit must be positive"
        );
        assert_eq!(
            err(&["p"]),
            "Key prefix and child command must be specified"
        );
        assert_eq!(
            err(&["--timeout=-1s", "p", "c"]),
            "Timeout must be positive"
        );
        assert_eq!(
            err(&["--monitor-retry=-1", "p", "c"]),
            "Number for 'monitor-retry' must be >= 0"
        );
    }

    #[test]
    fn keys_join_like_go_path_join() {
        assert_eq!(join_key("svc/leader", ".lock"), "svc/leader/.lock");
        assert_eq!(join_key("svc/leader/", ".lock"), "svc/leader/.lock");
        assert_eq!(join_key("a//b/./", "s"), "a/b/s");
        assert_eq!(join_key("", ".lock"), ".lock");
    }

    #[test]
    fn semaphore_record_layout_and_pruning() {
        let mut record = SemaphoreRecord {
            limit: 2,
            holders: None,
        };
        record.holders().insert("s1".into(), true);
        record.holders().insert("s2".into(), true);
        assert_eq!(
            serde_json::to_string(&record).unwrap(),
            r#"{"Limit":2,"Holders":{"s1":true,"s2":true}}"#
        );
        let pairs = vec![
            KVPair {
                key: "p/s1".into(),
                session: Some("s1".into()),
                ..KVPair::default()
            },
            // s2's session is gone: its contender key lost the session.
            KVPair {
                key: "p/s2".into(),
                ..KVPair::default()
            },
        ];
        prune_dead_holders(&mut record, &pairs);
        assert_eq!(record.holders().keys().collect::<Vec<_>>(), vec!["s1"]);

        let empty = find_pair(&pairs, "p/.lock");
        assert_eq!(empty.flags, SEMAPHORE_FLAG);
        assert_eq!(decode_record(&empty, 3).unwrap().limit, 3);
        let bad = KVPair {
            value: Some(b"nope".to_vec()),
            ..KVPair::default()
        };
        assert!(
            decode_record(&bad, 3)
                .unwrap_err()
                .starts_with("lock decoding failed")
        );
        // Consul's Go client writes the same JSON; a null holder map decodes.
        let go = KVPair {
            value: Some(br#"{"Limit":2,"Holders":null}"#.to_vec()),
            ..KVPair::default()
        };
        assert!(decode_record(&go, 2).unwrap().holders().is_empty());
    }
}
