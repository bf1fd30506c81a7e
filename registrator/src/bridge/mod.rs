//! The bridge: Docker events in, registry writes out (upstream's `bridge` package).
//!
//! One task owns the state ([`Bridge`]) and handles, one at a time: container
//! events (`start` → add, `die` → remove, `health_status` → check update), the
//! `-resync` and `-ttl-refresh` ticks, a 20 s maintenance tick (Docker health
//! heartbeat, registry audit), retries and event-stream reconnects. The decisions
//! are pure functions in [`plan`]; this module performs them.
//!
//! Beyond upstream (A.9):
//! * A registration that fails because the registry is unreachable (or answers
//!   5xx/429) is kept pending and retried with capped backoff (200 ms → 10 s) until
//!   it succeeds; so is such a failed deregistration. Upstream lost both.
//! * `-resync` registers only what is new, changed or missing from the registry,
//!   instead of re-registering everything (which woke every watcher, #449). When
//!   the backend cannot list its services (Consul KV, etcd) a lost registration
//!   cannot be seen, so there a resync re-registers everything, as upstream.
//! * Registry loss: when the backend lists services, the registry is compared
//!   with what we registered every 20 s, after each resync and as soon as a
//!   retry succeeds again; whatever it lost (a `-dev` registry-node or Consul
//!   agent restarted empty) is registered again (#81). Upstream noticed nothing.
//! * The Docker event stream ending or failing is not fatal: we reconnect with
//!   capped backoff (100 ms → 5 s) and then run a full sync that also removes
//!   tracked containers no longer alive, with or without `-cleanup`, since their
//!   `die` events were missed while disconnected (#377, #325). Upstream exited.
//! * A Docker `HEALTHCHECK` is mirrored on the service's TTL check: updated on
//!   every `health_status` event and heartbeated every 20 s (TTL 60 s) (#578).
//! * `-deregister on-success` keeps the services of a failed container but does
//!   not remember it as "dead" for a later restart: a restart simply registers
//!   again (idempotent). With `-ttl` the kept services stop being refreshed and
//!   expire, as upstream.
//! * A `-tags` template that fails on a container skips that container (logged);
//!   upstream exited.

pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::cli::{Config, Deregister};
use crate::docker::{ContainerEvent, DockerError, Engine, EventKind};
use crate::mapping::{self, MappingContext};
use crate::service::{DockerHealth, Service};
use plan::{Backoff, ExitState, RegState, SyncInput, Tracked};

/// How often the Docker health checks are heartbeated and the registry audited:
/// a third of [`crate::checks::DOCKER_HEALTH_TTL`].
pub const MAINTENANCE_PERIOD: Duration = Duration::from_secs(20);
/// First and largest pause between retries of pending registrations.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// First and largest pause between Docker reconnect attempts.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Why a sync runs; decides what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// The initial sync: everything is new.
    Startup,
    /// A `-resync` tick.
    Resync,
    /// After the event stream was re-established: containers may have died unseen.
    Reconnect,
}

/// The bridge's settings, from the command line.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Mapping context (hostname, `-ip`, `-internal`...).
    pub mapping: MappingContext,
    /// `-deregister`.
    pub deregister: Deregister,
    /// `-cleanup`.
    pub cleanup: bool,
    /// `-resync`.
    pub resync: Option<Duration>,
    /// `-ttl-refresh`.
    pub ttl_refresh: Option<Duration>,
}

impl BridgeConfig {
    /// The settings of `config`, given registrator's hostname and its resolution.
    pub fn new(config: &Config, hostname: String, resolved_host_ip: Option<String>) -> Self {
        BridgeConfig {
            mapping: MappingContext::new(config, hostname, resolved_host_ip),
            deregister: config.deregister,
            cleanup: config.cleanup,
            resync: config.resync,
            ttl_refresh: config.ttl_refresh,
        }
    }
}

/// Errors that stop the bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The initial container listing failed (upstream: fatal).
    #[error("initial sync: {0}")]
    InitialSync(#[source] DockerError),
}

/// The state: tracked containers and their services, plus what awaits a retry.
pub struct Bridge<D> {
    docker: D,
    backend: Arc<dyn Backend>,
    config: BridgeConfig,
    /// Container ID → its services. A container is tracked from its `start` (or the
    /// sync that found it) until its `die`, even when it has no service, so a
    /// duplicate `start` is recognised.
    tracked: BTreeMap<String, Vec<Tracked>>,
    /// Deregistrations that failed while the registry was unreachable, by service ID.
    pending_deregister: BTreeMap<String, Service>,
    retry_backoff: Backoff,
    /// When pending work is retried next; `None` when nothing is pending.
    retry_at: Option<Instant>,
    /// A registry call failed as unreachable since the last audit: once calls
    /// succeed again the registry may have come back empty.
    suspect_registry: bool,
}

impl<D: Engine> Bridge<D> {
    /// A bridge tracking nothing yet.
    pub fn new(docker: D, backend: Arc<dyn Backend>, config: BridgeConfig) -> Self {
        Bridge {
            docker,
            backend,
            config,
            tracked: BTreeMap::new(),
            pending_deregister: BTreeMap::new(),
            retry_backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            retry_at: None,
            suspect_registry: false,
        }
    }

    /// The tracked services, per container (for tests and logs).
    pub fn tracked(&self) -> &BTreeMap<String, Vec<Tracked>> {
        &self.tracked
    }

    /// Runs until `shutdown` is cancelled: subscribes to events, syncs, then loops.
    /// Registrations are left in place on shutdown, as upstream: they stay until a
    /// `-cleanup` sweep (or their TTL) removes them.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), BridgeError> {
        // Subscribe before listing so no container starting in between is missed.
        let mut events = Some(self.docker.events());
        self.sync(SyncMode::Startup)
            .await
            .map_err(BridgeError::InitialSync)?;
        tracing::info!("listening for docker events");

        let mut reconnect = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
        let mut reconnect_at: Option<Instant> = None;
        let mut resync = self.config.resync.map(ticker);
        let mut ttl_refresh = self.config.ttl_refresh.map(ticker);
        let mut maintenance = ticker(MAINTENANCE_PERIOD);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                event = next_event(&mut events) => match event {
                    Some(Ok(event)) => self.handle(event).await,
                    ended => {
                        match ended {
                            Some(Err(e)) => tracing::warn!(error = %e, "docker event stream failed; reconnecting"),
                            _ => tracing::warn!("docker event stream closed; reconnecting"),
                        }
                        events = None;
                        reconnect_at = Some(Instant::now() + reconnect.next_delay());
                    }
                },
                _ = sleep_until_opt(reconnect_at) => {
                    match self.reconnect().await {
                        Ok(stream) => {
                            tracing::info!("reconnected to docker");
                            events = Some(stream);
                            reconnect.reset();
                            reconnect_at = None;
                        }
                        Err(e) => {
                            let delay = reconnect.next_delay();
                            tracing::warn!(error = %e, ?delay, "docker still unreachable");
                            reconnect_at = Some(Instant::now() + delay);
                        }
                    }
                }
                _ = sleep_until_opt(self.retry_at) => self.retry_pending().await,
                _ = tick_opt(&mut resync) => {
                    // While disconnected the reconnect sync will do this.
                    if events.is_some()
                        && let Err(e) = self.sync(SyncMode::Resync).await
                    {
                        tracing::warn!(error = %e, "resync skipped");
                    }
                }
                _ = tick_opt(&mut ttl_refresh) => self.refresh_ttls().await,
                _ = maintenance.tick() => {
                    self.heartbeat_health().await;
                    self.audit_registry().await;
                }
            }
        }
        tracing::info!("stopping; registrations are left in place");
        Ok(())
    }

    /// Subscribes again, then syncs with removal of containers that died unseen.
    async fn reconnect(&mut self) -> Result<BoxStream<'static, EventResult>, DockerError> {
        self.docker.ping().await?;
        let stream = self.docker.events();
        self.sync(SyncMode::Reconnect).await?;
        Ok(stream)
    }

    /// Handles one container event.
    pub async fn handle(&mut self, event: ContainerEvent) {
        tracing::debug!(container = %short(&event.id), kind = ?event.kind, "docker event");
        match event.kind {
            EventKind::Start => self.add(&event.id).await,
            EventKind::Die => self.remove_exited(&event.id).await,
            EventKind::Health(health) => self.set_health(&event.id, health).await,
        }
    }

    /// Lists Docker, diffs against the tracked state and the registry, and applies
    /// the [`plan::SyncPlan`].
    pub async fn sync(&mut self, mode: SyncMode) -> Result<(), DockerError> {
        let quiet = mode == SyncMode::Resync;
        let listed = self.docker.containers().await?;
        let alive: BTreeSet<String> = listed.iter().map(|c| c.id.clone()).collect();
        let mut running = BTreeMap::new();
        for container in listed.iter().filter(|c| c.running) {
            match self.docker.inspect(&container.id).await {
                Ok(Some(inspect)) if is_running(&inspect) => {
                    if let Some(services) = self.map(&inspect, quiet).await {
                        running.insert(container.id.clone(), services);
                    }
                }
                // Died since the listing: its die event follows.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(container = %short(&container.id), error = %e, "inspect failed")
                }
            }
        }
        let lists = self.backend.lists_services();
        let registry = if lists && (mode != SyncMode::Startup || self.config.cleanup) {
            match self.backend.services().await {
                Ok(services) => Some(services),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the registry's services");
                    None
                }
            }
        } else {
            None
        };
        let plan = plan::plan_sync(SyncInput {
            running: &running,
            alive: &alive,
            tracked: &self.tracked,
            registry: registry.as_deref(),
            remove_gone: self.config.cleanup || mode == SyncMode::Reconnect,
            reregister_all: mode == SyncMode::Resync && !lists,
            dangling_host: self
                .config
                .cleanup
                .then_some(self.config.mapping.hostname.as_str()),
        });
        tracing::debug!(?mode, ?plan, "sync");
        for container in &plan.gone {
            self.remove_exited(container).await;
        }
        for service in &plan.deregister {
            self.deregister(service).await;
        }
        for container in plan.track {
            let services = running.remove(&container).unwrap_or_default();
            let old = self.tracked.remove(&container).unwrap_or_default();
            let entries = services
                .into_iter()
                .map(|service| {
                    let state = old
                        .iter()
                        .find(|t| t.service.id == service.id)
                        .map_or(RegState::Pending, |t| t.state);
                    Tracked { service, state }
                })
                .collect();
            self.tracked.insert(container, entries);
        }
        for service in &plan.register {
            self.register_tracked(&service.id, quiet).await;
        }
        for service in &plan.dangling {
            tracing::info!(service = %service.id, "dangling: {}", service.id);
            self.deregister(service).await;
        }
        Ok(())
    }

    /// `start`: inspect, map, register each service.
    async fn add(&mut self, id: &str) {
        if self.tracked.contains_key(id) {
            tracing::debug!(container = %short(id), "container already tracked, ignoring");
            return;
        }
        let inspect = match self.docker.inspect(id).await {
            Ok(Some(inspect)) if is_running(&inspect) => inspect,
            Ok(_) => return, // gone or exited again: its die event follows
            Err(e) => {
                tracing::warn!(container = %short(id), error = %e, "unable to inspect container");
                return;
            }
        };
        let Some(services) = self.map(&inspect, false).await else {
            return;
        };
        let ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
        let entries = services
            .into_iter()
            .map(|service| Tracked {
                service,
                state: RegState::Pending,
            })
            .collect();
        self.tracked.insert(id.to_string(), entries);
        for service_id in ids {
            self.register_tracked(&service_id, false).await;
        }
    }

    /// `die` (or a tracked container found gone by a sync): deregister its services
    /// as `-deregister` says, and stop tracking it.
    async fn remove_exited(&mut self, id: &str) {
        let Some(entries) = self.tracked.remove(id) else {
            return;
        };
        let deregister = match self.config.deregister {
            Deregister::Always => true,
            mode => {
                let exit = match self.docker.inspect(id).await {
                    Ok(None) => ExitState::Gone,
                    Ok(Some(c)) if is_running(&c) => ExitState::Running,
                    Ok(Some(c)) => {
                        ExitState::Exited(c.state.and_then(|s| s.exit_code).unwrap_or_default())
                    }
                    Err(e) => {
                        tracing::warn!(container = %short(id), error = %e, "inspect of dead container failed");
                        ExitState::Unknown
                    }
                };
                let go = plan::deregister_on_exit(mode, exit);
                if !go {
                    tracing::info!(container = %short(id), ?exit, "keeping services of failed container (-deregister on-success)");
                }
                go
            }
        };
        if deregister {
            for entry in entries {
                // A pending or refused registration may still have reached the registry.
                self.deregister(&entry.service).await;
                tracing::info!(container = %short(id), service = %entry.service.id, "removed: {} {}", short(id), entry.service.id);
            }
        }
    }

    /// `health_status`: record it and update the check of each service.
    async fn set_health(&mut self, id: &str, health: DockerHealth) {
        let Some(entries) = self.tracked.get_mut(id) else {
            return;
        };
        let mut updates = Vec::new();
        for entry in entries.iter_mut().filter(|e| e.service.health.is_some()) {
            entry.service.health = Some(health);
            if entry.state == RegState::Registered {
                updates.push(entry.service.clone());
            }
        }
        for service in updates {
            tracing::info!(service = %service.id, ?health, "docker health changed");
            self.report_health(&service, health).await;
        }
    }

    /// Updates one docker-health check. A refusal (the check is unknown: the registry
    /// lost it) re-registers the service, which recreates the check.
    async fn report_health(&mut self, service: &Service, health: DockerHealth) {
        match self.backend.set_docker_health(service, health).await {
            Ok(()) => {}
            Err(e) if e.is_retryable() => {
                self.suspect_registry |= e.is_unreachable();
                tracing::warn!(service = %service.id, error = %e, "docker health update failed");
            }
            Err(e) => {
                tracing::warn!(service = %service.id, error = %e, "docker health update refused; registering again");
                self.mark_pending(|s| s.id == service.id);
            }
        }
    }

    /// The maintenance heartbeat of every Docker health check.
    async fn heartbeat_health(&mut self) {
        let services = self.registered_services();
        for service in services {
            if let Some(health) = service.health {
                self.report_health(&service, health).await;
            }
        }
    }

    /// `-ttl-refresh`: re-write every registered service's TTL.
    async fn refresh_ttls(&mut self) {
        let services = self.registered_services();
        for service in services {
            match self.backend.refresh(&service).await {
                Ok(()) => tracing::debug!(service = %service.id, "refreshed: {}", service.id),
                Err(e) => {
                    tracing::warn!(service = %service.id, error = %e, "refresh failed");
                    if e.is_retryable() {
                        self.mark_pending(|s| s.id == service.id);
                    }
                }
            }
        }
    }

    /// Compares the registry with what we registered; registers what it lost.
    async fn audit_registry(&mut self) {
        if !self.backend.lists_services() {
            return;
        }
        let listed = match self.backend.services().await {
            Ok(services) => services,
            Err(e) => {
                tracing::debug!(error = %e, "registry audit: cannot list services");
                return;
            }
        };
        self.suspect_registry = false;
        let ids: BTreeSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        let lost: Vec<String> = self
            .all_tracked()
            .filter(|t| t.state == RegState::Registered && !ids.contains(t.service.id.as_str()))
            .map(|t| t.service.id.clone())
            .collect();
        if lost.is_empty() {
            return;
        }
        tracing::warn!(
            lost = lost.len(),
            "the registry lost services we registered (restarted without its state?); registering them again"
        );
        for id in lost {
            self.register_tracked(&id, false).await;
        }
    }

    /// Retries pending registrations and deregistrations.
    async fn retry_pending(&mut self) {
        self.retry_at = None;
        let deregistrations: Vec<Service> = self.pending_deregister.values().cloned().collect();
        for service in deregistrations {
            self.pending_deregister.remove(&service.id);
            self.deregister(&service).await;
        }
        let pending: Vec<String> = self
            .all_tracked()
            .filter(|t| t.state == RegState::Pending)
            .map(|t| t.service.id.clone())
            .collect();
        for id in pending {
            self.register_tracked(&id, false).await;
        }
        if self.retry_at.is_none() {
            self.retry_backoff.reset();
            if self.suspect_registry {
                // The registry answers again; it may have come back empty.
                self.audit_registry().await;
            }
        }
    }

    /// Registers the tracked service `id` and records the outcome.
    async fn register_tracked(&mut self, id: &str, quiet: bool) {
        let Some((container, service)) = self.tracked.iter().find_map(|(c, entries)| {
            entries
                .iter()
                .find(|t| t.service.id == id)
                .map(|t| (c.clone(), t.service.clone()))
        }) else {
            return;
        };
        // A newer registration of the same ID supersedes a queued deregistration.
        self.pending_deregister.remove(id);
        let state = match self.backend.register(&service).await {
            Ok(()) => {
                if quiet {
                    tracing::debug!(service = %id, "registered: {} {id}", short(&container));
                } else {
                    tracing::info!(service = %id, "added: {} {id}", short(&container));
                }
                RegState::Registered
            }
            Err(e) if e.is_retryable() => {
                self.suspect_registry |= e.is_unreachable();
                tracing::warn!(service = %id, error = %e, "register failed; will retry");
                self.schedule_retry();
                RegState::Pending
            }
            Err(e) => {
                tracing::error!(service = %id, error = %e, "register failed");
                RegState::Failed
            }
        };
        if let Some(entry) = self
            .tracked
            .get_mut(&container)
            .and_then(|entries| entries.iter_mut().find(|t| t.service.id == id))
        {
            entry.state = state;
        }
    }

    /// Deregisters one service; an unreachable registry queues it for a retry.
    async fn deregister(&mut self, service: &Service) {
        match self.backend.deregister(service).await {
            Ok(()) => {}
            Err(e) if e.is_retryable() => {
                self.suspect_registry |= e.is_unreachable();
                tracing::warn!(service = %service.id, error = %e, "deregister failed; will retry");
                self.pending_deregister
                    .insert(service.id.clone(), service.clone());
                self.schedule_retry();
            }
            Err(e) => tracing::error!(service = %service.id, error = %e, "deregister failed"),
        }
    }

    fn schedule_retry(&mut self) {
        if self.retry_at.is_none() {
            self.retry_at = Some(Instant::now() + self.retry_backoff.next_delay());
        }
    }

    fn mark_pending(&mut self, which: impl Fn(&Service) -> bool) {
        for entry in self.tracked.values_mut().flatten() {
            if which(&entry.service) {
                entry.state = RegState::Pending;
            }
        }
        self.schedule_retry();
    }

    fn all_tracked(&self) -> impl Iterator<Item = &Tracked> {
        self.tracked.values().flatten()
    }

    /// A copy of every registered service (the loops over it call the backend).
    fn registered_services(&self) -> Vec<Service> {
        self.all_tracked()
            .filter(|t| t.state == RegState::Registered)
            .map(|t| t.service.clone())
            .collect()
    }

    /// The services of a running container (`None` when the `-tags` template fails
    /// on it), inspecting its network container for `container:<id>` mode.
    async fn map(
        &self,
        inspect: &bollard::models::ContainerInspectResponse,
        quiet: bool,
    ) -> Option<Vec<Service>> {
        let id = inspect.id.as_deref().unwrap_or_default();
        let mut ctx = None;
        if let Some(network) = mapping::network_container(inspect) {
            let ip = match self.docker.inspect(network).await {
                Ok(Some(nc)) => mapping::container_ip(&nc),
                _ => None,
            };
            if let Some(ip) = ip {
                let mut with_ip = self.config.mapping.clone();
                with_ip
                    .network_container_ips
                    .insert(network.to_string(), ip);
                ctx = Some(with_ip);
            }
        }
        let ctx = ctx.as_ref().unwrap_or(&self.config.mapping);
        match mapping::services(inspect, ctx) {
            Ok(m) => {
                for note in &m.notes {
                    tracing::info!(container = %short(id), "{note}");
                }
                for skipped in &m.skipped {
                    if quiet {
                        tracing::debug!(container = %short(id), "ignored: {} {skipped}", short(id));
                    } else {
                        tracing::info!(container = %short(id), "ignored: {} {skipped}", short(id));
                    }
                }
                Some(m.services)
            }
            Err(e) => {
                tracing::error!(container = %short(id), error = %e, "-tags template failed; container skipped");
                None
            }
        }
    }
}

type EventResult = Result<ContainerEvent, DockerError>;

fn is_running(inspect: &bollard::models::ContainerInspectResponse) -> bool {
    inspect
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut tick = interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick of an interval fires at once; the sync just happened.
    tick.reset();
    tick
}

async fn next_event(events: &mut Option<BoxStream<'static, EventResult>>) -> Option<EventResult> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick_opt(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(tick) => {
            tick.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
