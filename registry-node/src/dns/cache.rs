//! Healthy instances per service, kept between questions. Finding them walks
//! the catalog (node, service and check maps for every instance), which costs
//! more as the catalog grows; a service's instances only change when its watch
//! index does (the one blocking queries use), so between changes every
//! question reuses the same list and its cost no longer depends on the
//! catalog's size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use hickory_server::proto::rr::Name;
use registry_api::{Node, NodeService, status_rank};

use super::answer::srv_target;

use crate::state::{Store, WatchKey};

/// Entries kept at most; past it the cache starts over (names come from
/// questions, and anyone can ask).
const MAX_ENTRIES: usize = 4096;

/// The non-critical instances of one service at one index.
#[derive(Debug)]
pub struct Instances {
    /// The service's watch index when this was built.
    index: u64,
    /// Instance, its node and whether some check is warning.
    pub rows: Vec<(Node, NodeService, bool)>,
    /// SRV targets of `rows` for one datacenter and zone, built on first use
    /// (making names is most of the cost of a small answer).
    targets: Mutex<Option<Targets>>,
}

/// SRV targets for `(dc, zone)`, one per row.
#[derive(Debug)]
struct Targets {
    dc: String,
    zone: String,
    names: Arc<Vec<(Name, Option<IpAddr>)>>,
}

impl Instances {
    /// Reads the instances of `service` (exact name) that have no critical check.
    pub fn build(store: &Store, service: &str) -> Instances {
        let catalog = store.catalog();
        let rows = catalog
            .instances(service)
            .filter_map(|(node, svc)| {
                let worst = catalog
                    .node_checks(&node.node)
                    .filter(|c| c.service_id.is_empty() || c.service_id == svc.id)
                    .map(|c| status_rank(&c.status))
                    .max()
                    .unwrap_or(0);
                (worst < 2).then(|| (node.clone(), svc.clone(), worst == 1))
            })
            .collect();
        Instances {
            index: service_index(store, service),
            rows,
            targets: Mutex::new(None),
        }
    }

    /// The SRV target of each row for `dc` and `zone`.
    pub fn srv_targets(&self, dc: &str, zone: &str) -> Arc<Vec<(Name, Option<IpAddr>)>> {
        let mut slot = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = slot.as_ref()
            && t.dc == dc
            && t.zone == zone
        {
            return t.names.clone();
        }
        let names: Arc<Vec<_>> = Arc::new(
            self.rows
                .iter()
                .map(|(node, service, _)| srv_target(node, service, dc, zone))
                .collect(),
        );
        *slot = Some(Targets {
            dc: dc.to_string(),
            zone: zone.to_string(),
            names: names.clone(),
        });
        names
    }
}

fn service_index(store: &Store, service: &str) -> u64 {
    store.view_index(&[WatchKey::Service(service.to_string())])
}

/// Instances by exact service name, valid while the service's index stands.
#[derive(Debug, Default)]
pub struct InstanceCache {
    entries: Mutex<HashMap<String, Arc<Instances>>>,
}

impl InstanceCache {
    /// The instances of `service` in `store`, built only when they changed.
    pub fn get(&self, store: &Store, service: &str) -> Arc<Instances> {
        let index = service_index(store, service);
        if let Some(hit) = self.lock().get(service)
            && hit.index == index
        {
            return hit.clone();
        }
        let fresh = Arc::new(Instances::build(store, service));
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(service.to_string(), fresh.clone());
        fresh
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Instances>>> {
        // A panic while holding it leaves a consistent map.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
