//! The bridge's decisions without Docker or a registry: [`plan`]'s pure functions
//! on hand-made services, and the [`Bridge`] driven by a fake [`Engine`] (stored
//! `docker inspect` fixtures) and a fake [`Backend`] that can be made unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bollard::models::ContainerInspectResponse;
use futures::stream::BoxStream;

use super::plan::*;
use super::*;
use crate::backend::BackendError;
use crate::docker::Listed;
use crate::service::Origin;

const HOST: &str = "host-1";

fn service(container: &str, port: u16) -> Service {
    Service {
        id: format!("{HOST}:{container}:{port}"),
        name: "web".into(),
        ip: "10.0.0.1".into(),
        port,
        origin: Origin {
            container_name: container.into(),
            ..Origin::default()
        },
        ..Service::default()
    }
}

fn tracked<const N: usize>(services: [Service; N], state: RegState) -> Vec<Tracked> {
    services
        .into_iter()
        .map(|service| Tracked { service, state })
        .collect()
}

struct Case {
    running: BTreeMap<String, Vec<Service>>,
    alive: BTreeSet<String>,
    tracked: BTreeMap<String, Vec<Tracked>>,
    registry: Option<Vec<Service>>,
}

impl Case {
    fn plan(&self, remove_gone: bool, reregister_all: bool, cleanup: bool) -> SyncPlan {
        plan_sync(SyncInput {
            running: &self.running,
            alive: &self.alive,
            tracked: &self.tracked,
            registry: self.registry.as_deref(),
            remove_gone,
            reregister_all,
            dangling_host: cleanup.then_some(HOST),
        })
    }
}

fn ids(services: &[Service]) -> Vec<&str> {
    services.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn sync_registers_only_what_is_new_changed_or_lost() {
    let a80 = service("a", 80);
    let b80 = service("b", 80);
    let mut b80_moved = b80.clone();
    b80_moved.port = 81;
    let c80 = service("c", 80);
    let mut case = Case {
        running: BTreeMap::from([
            ("A".into(), vec![a80.clone()]),
            ("B".into(), vec![b80_moved.clone()]),
            ("C".into(), vec![c80.clone()]),
        ]),
        alive: ["A", "B", "C"].map(String::from).into(),
        tracked: BTreeMap::from([
            ("A".into(), tracked([a80.clone()], RegState::Registered)),
            ("B".into(), tracked([b80.clone()], RegState::Registered)),
        ]),
        registry: None,
    };
    // --- step: A unchanged, B changed, C new.
    let plan = case.plan(false, false, false);
    assert_eq!(ids(&plan.register), [&b80.id, &c80.id]);
    assert!(
        plan.deregister.is_empty(),
        "same ID and name: re-register only"
    );
    assert_eq!(plan.track, ["A", "B", "C"]);

    // --- step: a resync that cannot see the registry re-registers everything.
    assert_eq!(case.plan(false, true, false).register.len(), 3);

    // --- step: the registry lost A (and lists the others): A comes back.
    case.registry = Some(vec![b80.clone()]);
    let plan = case.plan(false, false, false);
    assert_eq!(ids(&plan.register), [&a80.id, &b80.id, &c80.id]);

    // --- step: a pending or refused registration is tried again.
    case.registry = Some(vec![a80.clone(), b80.clone(), c80.clone()]);
    case.tracked
        .insert("A".into(), tracked([a80.clone()], RegState::Pending));
    assert!(ids(&case.plan(false, false, false).register).contains(&a80.id.as_str()));
}

#[test]
fn sync_deregisters_ports_a_container_lost_or_renamed() {
    let a80 = service("a", 80);
    let a443 = service("a", 443);
    let mut renamed = a80.clone();
    renamed.name = "api".into();
    let case = Case {
        running: BTreeMap::from([("A".into(), vec![renamed.clone()])]),
        alive: ["A"].map(String::from).into(),
        tracked: BTreeMap::from([(
            "A".into(),
            tracked([a80.clone(), a443.clone()], RegState::Registered),
        )]),
        registry: None,
    };
    let plan = case.plan(false, false, false);
    assert_eq!(ids(&plan.deregister), [&a80.id, &a443.id]);
    assert_eq!(ids(&plan.register), [&renamed.id]);
}

#[test]
fn health_changes_alone_do_not_re_register() {
    let mut old = service("a", 80);
    old.health = Some(DockerHealth::Starting);
    let mut new = old.clone();
    new.health = Some(DockerHealth::Healthy);
    assert!(same_registration(&old, &new));
    new.health = None;
    assert!(!same_registration(&old, &new), "the check appears or goes");
}

#[test]
fn gone_containers_only_when_asked_and_not_while_alive() {
    let case = Case {
        running: BTreeMap::new(),
        // R is restarting: alive, not running.
        alive: ["R"].map(String::from).into(),
        tracked: BTreeMap::from([
            (
                "D".into(),
                tracked([service("d", 80)], RegState::Registered),
            ),
            (
                "R".into(),
                tracked([service("r", 80)], RegState::Registered),
            ),
        ]),
        registry: None,
    };
    assert!(case.plan(false, false, false).gone.is_empty());
    assert_eq!(case.plan(true, false, false).gone, ["D"]);
}

#[test]
fn dangling_services_follow_upstreams_pattern() {
    let kept = service("a", 80);
    let mut custom = service("x", 80);
    custom.id = "my-custom-id".into();
    let mut other_host = service("x", 80);
    other_host.id = "host-2:x:80".into();
    let mut udp = service("gone", 53);
    udp.id = format!("{HOST}:gone:53:udp");
    let mut restarting = service("r", 80);
    restarting.name = "cache".into();
    let case = Case {
        running: BTreeMap::from([("A".into(), vec![kept.clone()])]),
        alive: ["A", "R"].map(String::from).into(),
        tracked: BTreeMap::from([
            (
                "R".into(),
                tracked([restarting.clone()], RegState::Registered),
            ),
            (
                "D".into(),
                tracked([service("dd", 80)], RegState::Registered),
            ),
        ]),
        registry: Some(vec![
            kept.clone(),
            custom,
            other_host,
            udp.clone(),
            restarting,
            service("dd", 80),
            // Upstream's pattern wants container names of two characters or more.
            service("d", 80),
            service("gone", 8080),
        ]),
    };
    let plan = case.plan(true, false, true);
    assert_eq!(plan.gone, ["D"]);
    assert_eq!(
        ids(&plan.dangling),
        [udp.id.as_str(), "host-1:dd:80", "host-1:gone:8080"]
    );
    assert!(
        case.plan(true, false, false).dangling.is_empty(),
        "no -cleanup"
    );
}

#[test]
fn deregister_on_exit_follows_a_8_3() {
    use ExitState::*;
    let on_success = |exit| deregister_on_exit(Deregister::OnSuccess, exit);
    for exit in [Gone, Unknown, Running, Exited(0), Exited(1), Exited(137)] {
        assert!(deregister_on_exit(Deregister::Always, exit), "{exit:?}");
    }
    assert!(on_success(Gone));
    assert!(on_success(Exited(0)));
    for signalled in [130, 137, 143, 255] {
        assert!(on_success(Exited(signalled)), "{signalled}");
    }
    assert!(!on_success(Exited(1)));
    assert!(!on_success(Exited(2)));
    assert!(!on_success(Unknown));
    assert!(!on_success(Running));
}

#[test]
fn backoff_doubles_up_to_its_cap_and_resets() {
    let ms = Duration::from_millis;
    let mut b = Backoff::new(ms(100), ms(350));
    let delays: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
    assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350)]);
    b.reset();
    assert_eq!(b.next_delay(), ms(100));
}

// ---------------------------------------------------------------------------
// The bridge on fakes.

/// Containers by ID; `events` is never used (the tests call `handle`/`sync`).
#[derive(Default, Clone)]
struct FakeEngine {
    containers: Arc<Mutex<BTreeMap<String, ContainerInspectResponse>>>,
}

impl FakeEngine {
    fn put(&self, c: ContainerInspectResponse) {
        let id = c.id.clone().unwrap();
        self.containers.lock().unwrap().insert(id, c);
    }

    fn exit(&self, id: &str, code: i64) {
        let mut all = self.containers.lock().unwrap();
        let state = all.get_mut(id).unwrap().state.as_mut().unwrap();
        state.running = Some(false);
        state.exit_code = Some(code);
    }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn ping(&self) -> Result<(), DockerError> {
        Ok(())
    }

    async fn containers(&self) -> Result<Vec<Listed>, DockerError> {
        Ok(self
            .containers
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c)| is_running(c))
            .map(|(id, _)| Listed {
                id: id.clone(),
                running: true,
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInspectResponse>, DockerError> {
        Ok(self.containers.lock().unwrap().get(id).cloned())
    }

    fn events(&self) -> BoxStream<'static, Result<ContainerEvent, DockerError>> {
        Box::pin(futures::stream::pending())
    }
}

/// A registry in memory that can be made unreachable.
#[derive(Debug, Default)]
struct FakeBackend {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    down: bool,
    services: BTreeMap<String, Service>,
    registers: usize,
}

impl FakeBackend {
    fn check(&self) -> Result<std::sync::MutexGuard<'_, FakeState>, BackendError> {
        let state = self.state.lock().unwrap();
        if state.down {
            return Err(BackendError::Unreachable {
                backend: "consul",
                addr: "fake".into(),
                reason: "down".into(),
                hint: "",
            });
        }
        Ok(state)
    }

    fn ids(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .services
            .keys()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn ping(&self) -> Result<String, BackendError> {
        self.check().map(|_| "fake".into())
    }
    async fn register(&self, service: &Service) -> Result<(), BackendError> {
        let mut state = self.check()?;
        state.registers += 1;
        state.services.insert(service.id.clone(), service.clone());
        Ok(())
    }
    async fn deregister(&self, service: &Service) -> Result<(), BackendError> {
        self.check()?.services.remove(&service.id);
        Ok(())
    }
    async fn refresh(&self, _: &Service) -> Result<(), BackendError> {
        self.check().map(drop)
    }
    async fn services(&self) -> Result<Vec<Service>, BackendError> {
        Ok(self.check()?.services.values().cloned().collect())
    }
    fn lists_services(&self) -> bool {
        true
    }
}

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<ContainerInspectResponse>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $name,
            ".json"
        )))
        .expect($name)
    };
}

fn bridge(deregister: Deregister) -> (Bridge<FakeEngine>, FakeEngine, Arc<FakeBackend>) {
    let engine = FakeEngine::default();
    let backend = Arc::new(FakeBackend::default());
    let config = BridgeConfig {
        mapping: MappingContext {
            hostname: HOST.into(),
            resolved_host_ip: Some("192.168.1.1".into()),
            ..Default::default()
        },
        deregister,
        cleanup: false,
        resync: None,
        ttl_refresh: None,
    };
    let b = Bridge::new(engine.clone(), backend.clone(), config);
    (b, engine, backend)
}

fn start(id: &str) -> ContainerEvent {
    ContainerEvent {
        id: id.into(),
        kind: EventKind::Start,
    }
}

fn die(id: &str) -> ContainerEvent {
    ContainerEvent {
        id: id.into(),
        kind: EventKind::Die,
    }
}

/// - a start while the registry is down leaves the service pending;
/// - the retry timer registers it once the registry is back;
/// - the registry losing it is noticed by the audit and repaired.
#[tokio::test]
async fn unreachable_registry_keeps_registrations_pending() {
    let (mut b, engine, backend) = bridge(Deregister::Always);
    let cache = fixture!("bridge_one_port");
    let id = cache.id.clone().unwrap();
    engine.put(cache);
    backend.state.lock().unwrap().down = true;

    // --- step: start while down
    b.handle(start(&id)).await;
    assert_eq!(b.tracked()[&id][0].state, RegState::Pending);
    assert!(b.retry_at.is_some());

    // --- step: still down at the first retry: the backoff grows
    b.retry_pending().await;
    assert_eq!(b.tracked()[&id][0].state, RegState::Pending);

    // --- step: back up
    backend.state.lock().unwrap().down = false;
    b.retry_pending().await;
    assert_eq!(b.tracked()[&id][0].state, RegState::Registered);
    assert_eq!(backend.ids(), ["host-1:cache:6379"]);
    assert!(b.retry_at.is_none());

    // --- step: the registry restarts empty; the audit registers again
    backend.state.lock().unwrap().services.clear();
    b.audit_registry().await;
    assert_eq!(backend.ids(), ["host-1:cache:6379"]);

    // --- step: a resync with nothing changed writes nothing
    let before = backend.state.lock().unwrap().registers;
    b.sync(SyncMode::Resync).await.unwrap();
    assert_eq!(backend.state.lock().unwrap().registers, before);
}

/// - `-deregister on-success`: exit 1 keeps the service, exit 0 removes it;
/// - a failed deregistration is retried.
#[tokio::test]
async fn on_success_keeps_failed_containers_and_retries_deregistration() {
    let (mut b, engine, backend) = bridge(Deregister::OnSuccess);
    let cache = fixture!("bridge_one_port");
    let id = cache.id.clone().unwrap();
    engine.put(cache);

    b.sync(SyncMode::Startup).await.unwrap();
    assert_eq!(backend.ids(), ["host-1:cache:6379"]);

    // --- step: exit 1: kept in the registry, no longer tracked
    engine.exit(&id, 1);
    b.handle(die(&id)).await;
    assert!(b.tracked().is_empty());
    assert_eq!(backend.ids(), ["host-1:cache:6379"]);

    // --- step: restarted, then exit 0 while the registry is down
    engine
        .containers
        .lock()
        .unwrap()
        .get_mut(&id)
        .unwrap()
        .state
        .as_mut()
        .unwrap()
        .running = Some(true);
    b.handle(start(&id)).await;
    engine.exit(&id, 0);
    backend.state.lock().unwrap().down = true;
    b.handle(die(&id)).await;
    assert_eq!(b.pending_deregister.len(), 1);
    backend.state.lock().unwrap().down = false;
    b.retry_pending().await;
    assert!(backend.ids().is_empty());
    assert!(b.pending_deregister.is_empty());
}

/// - a container that died while we were disconnected is removed by the
///   reconnect sync even without `-cleanup`.
#[tokio::test]
async fn reconnect_sync_removes_containers_that_died_unseen() {
    let (mut b, engine, backend) = bridge(Deregister::Always);
    let cache = fixture!("bridge_one_port");
    let id = cache.id.clone().unwrap();
    engine.put(cache);
    b.sync(SyncMode::Startup).await.unwrap();
    engine.exit(&id, 137);
    b.sync(SyncMode::Resync).await.unwrap();
    assert_eq!(backend.ids().len(), 1, "a resync without -cleanup keeps it");
    b.sync(SyncMode::Reconnect).await.unwrap();
    assert!(backend.ids().is_empty());
    assert!(b.tracked().is_empty());
}
