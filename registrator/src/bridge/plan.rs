//! The pure decisions of the bridge: what a sync must do given what Docker runs,
//! what we track and what the registry holds ([`plan_sync`]); whether a dead
//! container's services go ([`deregister_on_exit`]); which registry entries are
//! dangling ([`is_dangling`]); and the capped exponential [`Backoff`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::cli::Deregister;
use crate::service::Service;

/// Where a tracked service stands with the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    /// The last register call succeeded.
    Registered,
    /// The registry could not be reached (or answered 5xx/429): retried with backoff.
    Pending,
    /// The registry refused it (e.g. 400): retried only by a sync.
    Failed,
}

/// One service of a tracked container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// What was (or is to be) registered; `health` is kept current.
    pub service: Service,
    /// Its registration state.
    pub state: RegState,
}

/// Everything a sync decides on.
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    /// The services of every running container, as mapped now.
    pub running: &'a BTreeMap<String, Vec<Service>>,
    /// IDs of every container that has not exited (running ones included).
    pub alive: &'a BTreeSet<String>,
    /// What the bridge tracks, per container.
    pub tracked: &'a BTreeMap<String, Vec<Tracked>>,
    /// The registry's services when the backend can list them; `None` otherwise.
    pub registry: Option<&'a [Service]>,
    /// Remove tracked containers that are no longer alive (`-cleanup`, and always
    /// after an event-stream reconnect: their `die` events were missed).
    pub remove_gone: bool,
    /// Register every service even when unchanged (a resync on a backend that cannot
    /// list, where a lost registration cannot be told from a kept one).
    pub reregister_all: bool,
    /// `-cleanup`: registrator's hostname, to sweep dangling services of this host.
    pub dangling_host: Option<&'a str>,
}

/// What a sync does, in this order: `gone` (the die path, honouring `-deregister`),
/// `deregister`, `register`, `dangling`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Tracked containers no longer alive.
    pub gone: Vec<String>,
    /// Services a running container no longer has (or that changed name, which
    /// moves their key in the KV backends).
    pub deregister: Vec<Service>,
    /// New, changed, not yet registered, or missing from the registry.
    pub register: Vec<Service>,
    /// Registry services of this host that no container accounts for.
    pub dangling: Vec<Service>,
    /// Containers whose tracked services are replaced by `running`'s.
    pub track: Vec<String>,
}

/// Decides a sync. Unlike upstream's resync, an unchanged, registered service that
/// the registry still lists is left alone: re-registering wakes every blocking
/// query on the service (consul-template re-renders) for nothing (#449).
pub fn plan_sync(input: SyncInput<'_>) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let listed: Option<BTreeSet<&str>> = input
        .registry
        .map(|services| services.iter().map(|s| s.id.as_str()).collect());
    for (container, services) in input.running {
        plan.track.push(container.clone());
        let old = input
            .tracked
            .get(container)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for previous in old {
            let kept = services
                .iter()
                .any(|s| s.id == previous.service.id && s.name == previous.service.name);
            if !kept && previous.state == RegState::Registered {
                plan.deregister.push(previous.service.clone());
            }
        }
        for service in services {
            let previous = old.iter().find(|t| t.service.id == service.id);
            let unchanged = previous.is_some_and(|t| {
                t.state == RegState::Registered && same_registration(&t.service, service)
            });
            let lost = listed
                .as_ref()
                .is_some_and(|ids| !ids.contains(service.id.as_str()));
            if !unchanged || lost || input.reregister_all {
                plan.register.push(service.clone());
            }
        }
    }
    if input.remove_gone {
        plan.gone = input
            .tracked
            .keys()
            .filter(|c| !input.alive.contains(*c) && !input.running.contains_key(*c))
            .cloned()
            .collect();
    }
    if let (Some(host), Some(registry)) = (input.dangling_host, input.registry) {
        // Upstream compares with the tracked set after the sync: the running
        // containers, plus tracked ones still alive (restarting) and not gone.
        let mut accounted: BTreeSet<(&str, &str)> = BTreeSet::new();
        for services in input.running.values() {
            accounted.extend(services.iter().map(name_and_container));
        }
        for (container, tracked) in input.tracked {
            if input.running.contains_key(container) || plan.gone.contains(container) {
                continue;
            }
            accounted.extend(tracked.iter().map(|t| name_and_container(&t.service)));
        }
        plan.dangling = registry
            .iter()
            .filter(|s| is_dangling(s, host, &accounted))
            .cloned()
            .collect();
    }
    plan
}

fn name_and_container(service: &Service) -> (&str, &str) {
    (&service.name, &service.origin.container_name)
}

/// Whether two services register the same thing. The Docker health state is not
/// part of it: it is reported on the health check, not by re-registering.
pub fn same_registration(a: &Service, b: &Service) -> bool {
    a.id == b.id
        && a.name == b.name
        && a.ip == b.ip
        && a.port == b.port
        && a.tags == b.tags
        && a.attrs == b.attrs
        && a.ttl == b.ttl
        && a.health.is_some() == b.health.is_some()
}

/// Upstream's service ID pattern: `<hostname>:<container name>:<port>[:udp]`.
static SERVICE_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.+?):([a-zA-Z0-9][a-zA-Z0-9_.-]+):[0-9]+(?::udp)?$").expect("valid regex")
});

/// `-cleanup`'s sweep (upstream `Sync`): a registry service is dangling when its ID
/// has the registrator pattern, names this `hostname`, and no tracked service has
/// its name and container name. Custom `SERVICE_ID`s and other hosts' services
/// are left alone.
pub fn is_dangling(service: &Service, hostname: &str, accounted: &BTreeSet<(&str, &str)>) -> bool {
    let Some(caps) = SERVICE_ID.captures(&service.id) else {
        return false;
    };
    caps[1] == *hostname && !accounted.contains(&(service.name.as_str(), &caps[2]))
}

/// What inspecting a dead container found (A.8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitState {
    /// The container no longer exists (`docker run --rm`).
    Gone,
    /// The inspect failed.
    Unknown,
    /// It runs again (restarted).
    Running,
    /// It exited with this code.
    Exited(i64),
}

/// Whether the services of a dead container are deregistered. `on-success` keeps
/// them after a failure so the registry shows it; a signal (code with bit 128,
/// e.g. 137 after `docker stop`/`kill`) or 0 count as success; a vanished container
/// is deregistered; an unknown state or a restarted container is kept.
pub fn deregister_on_exit(mode: Deregister, exit: ExitState) -> bool {
    match (mode, exit) {
        (Deregister::Always, _) => true,
        (Deregister::OnSuccess, ExitState::Gone) => true,
        (Deregister::OnSuccess, ExitState::Exited(code)) => code == 0 || code & 128 != 0,
        (Deregister::OnSuccess, ExitState::Unknown | ExitState::Running) => false,
    }
}

/// Capped exponential backoff: `min`, `2·min`, ... up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}
