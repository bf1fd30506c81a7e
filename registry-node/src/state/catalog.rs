//! The service catalog: nodes, service instances and health checks, with the
//! queries the catalog and health endpoints (and later DNS) answer from.

use std::collections::{BTreeMap, BTreeSet};

use registry_api::{
    CRITICAL, CatalogDeregistration, CatalogRegistration, CheckServiceNode, HealthCheck, Node,
    NodeService, ServiceNode,
};
use serde::{Deserialize, Serialize};

use super::WatchKey;

/// Catalog tables. `by_name` is derived from `services` and rebuilt after a restore.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    nodes: BTreeMap<String, Node>,
    /// node → service ID → instance.
    services: BTreeMap<String, BTreeMap<String, NodeService>>,
    /// node → check ID → check.
    checks: BTreeMap<String, BTreeMap<String, HealthCheck>>,
    /// service name → (node, service ID); an index for name lookups.
    #[serde(skip)]
    by_name: BTreeMap<String, BTreeSet<(String, String)>>,
}

/// Result of a registration: the checks that are critical after it (sessions
/// bound to them must be invalidated).
pub type CriticalChecks = Vec<(String, String)>;

impl Catalog {
    /// Rebuilds derived indexes (after deserializing a snapshot).
    pub fn rebuild(&mut self) {
        self.by_name.clear();
        for (node, svcs) in &self.services {
            for (id, svc) in svcs {
                self.by_name
                    .entry(svc.service.clone())
                    .or_default()
                    .insert((node.clone(), id.clone()));
            }
        }
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// All nodes, sorted by name.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// A check on a node.
    pub fn check(&self, node: &str, check_id: &str) -> Option<&HealthCheck> {
        self.checks.get(node).and_then(|c| c.get(check_id))
    }

    /// Instances on a node.
    pub fn node_services(&self, node: &str) -> impl Iterator<Item = &NodeService> {
        self.services.get(node).into_iter().flat_map(|m| m.values())
    }

    /// Checks on a node (node-level and service-level).
    pub fn node_checks(&self, node: &str) -> impl Iterator<Item = &HealthCheck> {
        self.checks.get(node).into_iter().flat_map(|m| m.values())
    }

    /// Every check in the catalog.
    pub fn all_checks(&self) -> impl Iterator<Item = &HealthCheck> {
        self.checks.values().flat_map(|m| m.values())
    }

    /// Service name → union of tags (sorted, unique).
    pub fn service_names(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for svcs in self.services.values() {
            for svc in svcs.values() {
                out.entry(svc.service.clone())
                    .or_default()
                    .extend(svc.tags.iter().cloned());
            }
        }
        out.into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect()
    }

    /// The registered name equal to `name` but for ASCII case, if any.
    pub fn service_name_ignore_case(&self, name: &str) -> Option<&str> {
        self.by_name
            .keys()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    /// Instances of a service with their nodes, in (node, ID) order.
    pub fn instances(&self, name: &str) -> impl Iterator<Item = (&Node, &NodeService)> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(move |(node, id)| {
                let n = self.nodes.get(node)?;
                let s = self.services.get(node)?.get(id)?;
                Some((n, s))
            })
    }

    /// `/v1/catalog/service/:name`.
    pub fn service_nodes(&self, name: &str) -> Vec<ServiceNode> {
        self.instances(name)
            .map(|(n, s)| ServiceNode::new(n, s))
            .collect()
    }

    /// `/v1/health/service/:name`: each instance with its node's and its own checks.
    pub fn health_service(&self, name: &str) -> Vec<CheckServiceNode> {
        self.instances(name)
            .map(|(n, s)| CheckServiceNode {
                node: n.clone(),
                service: s.clone(),
                checks: self
                    .node_checks(&n.node)
                    .filter(|c| c.service_id.is_empty() || c.service_id == s.id)
                    .cloned()
                    .collect(),
            })
            .collect()
    }

    /// `/v1/health/checks/:service`: checks bound to instances of the service.
    pub fn service_checks(&self, name: &str) -> Vec<HealthCheck> {
        self.instances(name)
            .flat_map(|(n, s)| {
                self.node_checks(&n.node)
                    .filter(move |c| c.service_id == s.id)
            })
            .cloned()
            .collect()
    }

    /// Applies a registration. Unchanged parts are not rewritten, so their
    /// indexes (and the watchers of them) stay put.
    pub fn register(
        &mut self,
        index: u64,
        reg: &CatalogRegistration,
        changes: &mut Vec<WatchKey>,
    ) -> Result<CriticalChecks, String> {
        if reg.node.is_empty() {
            return Err("Missing node name".into());
        }
        if reg.address.is_empty() && !reg.skip_node_update {
            return Err("Missing node address".into());
        }
        // Validate everything before writing anything: a registration is atomic.
        let mut checks: Vec<HealthCheck> =
            reg.check.iter().chain(reg.checks.iter()).cloned().collect();
        for check in &mut checks {
            if check.check_id.is_empty() {
                check.check_id = check.name.clone();
            }
            if check.check_id.is_empty() {
                return Err("Missing check ID".into());
            }
            if !check.service_id.is_empty() {
                let in_reg = reg
                    .service
                    .as_ref()
                    .map(|s| effective_id(s) == check.service_id)
                    .unwrap_or(false);
                let stored = self
                    .services
                    .get(&reg.node)
                    .map(|m| m.contains_key(&check.service_id))
                    .unwrap_or(false);
                if !in_reg && !stored {
                    return Err(format!(
                        "Missing service \"{}\" for check \"{}\"",
                        check.service_id, check.check_id
                    ));
                }
            }
        }
        if reg.service.as_ref().is_some_and(|s| s.service.is_empty()) {
            return Err("Missing service name".into());
        }

        let exists = self.nodes.contains_key(&reg.node);
        if !reg.skip_node_update || !exists {
            let new = Node {
                id: reg.id.clone(),
                node: reg.node.clone(),
                address: reg.address.clone(),
                datacenter: reg.datacenter.clone(),
                tagged_addresses: reg.tagged_addresses.clone(),
                meta: reg.node_meta.clone(),
                create_index: index,
                modify_index: index,
            };
            self.upsert_node(index, new, changes);
        }
        if let Some(svc) = &reg.service {
            let mut svc = svc.clone();
            svc.id = effective_id(&svc).to_string();
            self.upsert_service(index, &reg.node, svc, changes);
        }
        let mut critical = Vec::new();
        for mut check in checks {
            check.node = reg.node.clone();
            if check.status.is_empty() {
                check.status = CRITICAL.into();
            }
            if check.status == CRITICAL {
                critical.push((check.node.clone(), check.check_id.clone()));
            }
            self.upsert_check(index, check, changes);
        }
        Ok(critical)
    }

    fn upsert_node(&mut self, index: u64, mut new: Node, changes: &mut Vec<WatchKey>) {
        if let Some(old) = self.nodes.get(&new.node) {
            new.create_index = old.create_index;
            new.modify_index = old.modify_index;
            if *old == new {
                return;
            }
            new.modify_index = index;
        }
        changes.push(WatchKey::Nodes);
        self.touch_node(&new.node, changes);
        self.nodes.insert(new.node.clone(), new);
    }

    fn upsert_service(
        &mut self,
        index: u64,
        node: &str,
        mut svc: NodeService,
        changes: &mut Vec<WatchKey>,
    ) {
        let slot = self.services.entry(node.to_string()).or_default();
        if let Some(old) = slot.get(&svc.id) {
            svc.create_index = old.create_index;
            svc.modify_index = old.modify_index;
            if *old == svc {
                return;
            }
            if old.service != svc.service {
                let old_name = old.service.clone();
                changes.push(WatchKey::Service(old_name.clone()));
                if let Some(set) = self.by_name.get_mut(&old_name) {
                    set.remove(&(node.to_string(), svc.id.clone()));
                    if set.is_empty() {
                        self.by_name.remove(&old_name);
                    }
                }
            }
        } else {
            svc.create_index = index;
        }
        svc.modify_index = index;
        changes.push(WatchKey::Services);
        changes.push(WatchKey::Service(svc.service.clone()));
        changes.push(WatchKey::Node(node.to_string()));
        self.by_name
            .entry(svc.service.clone())
            .or_default()
            .insert((node.to_string(), svc.id.clone()));
        // Checks carry the service's name and tags; keep them in step.
        if let Some(checks) = self.checks.get_mut(node) {
            for check in checks.values_mut().filter(|c| c.service_id == svc.id) {
                if check.service_name != svc.service || check.service_tags != svc.tags {
                    check.service_name = svc.service.clone();
                    check.service_tags = svc.tags.clone();
                    check.modify_index = index;
                }
            }
        }
        self.services
            .entry(node.to_string())
            .or_default()
            .insert(svc.id.clone(), svc);
    }

    fn upsert_check(&mut self, index: u64, mut check: HealthCheck, changes: &mut Vec<WatchKey>) {
        if !check.service_id.is_empty() {
            if let Some(svc) = self
                .services
                .get(&check.node)
                .and_then(|m| m.get(&check.service_id))
            {
                check.service_name = svc.service.clone();
                check.service_tags = svc.tags.clone();
            }
        } else {
            check.service_name.clear();
            check.service_tags.clear();
        }
        let slot = self.checks.entry(check.node.clone()).or_default();
        if let Some(old) = slot.get(&check.check_id) {
            check.create_index = old.create_index;
            check.modify_index = old.modify_index;
            if *old == check {
                return;
            }
        } else {
            check.create_index = index;
        }
        check.modify_index = index;
        self.touch_check(&check, changes);
        self.checks
            .entry(check.node.clone())
            .or_default()
            .insert(check.check_id.clone(), check);
    }

    /// Watch keys affected by a change of a check.
    fn touch_check(&self, check: &HealthCheck, changes: &mut Vec<WatchKey>) {
        changes.push(WatchKey::Checks);
        if check.service_id.is_empty() {
            // A node check is part of every instance's health on that node.
            self.touch_node(&check.node, changes);
        } else {
            changes.push(WatchKey::Node(check.node.clone()));
            changes.push(WatchKey::Service(check.service_name.clone()));
        }
    }

    /// Watch keys of everything shown with a node: the node and each of its services.
    fn touch_node(&self, node: &str, changes: &mut Vec<WatchKey>) {
        changes.push(WatchKey::Node(node.to_string()));
        for svc in self.node_services(node) {
            changes.push(WatchKey::Service(svc.service.clone()));
        }
    }

    /// Applies a deregistration; returns the IDs of removed checks as (node, check).
    pub fn deregister(
        &mut self,
        dereg: &CatalogDeregistration,
        changes: &mut Vec<WatchKey>,
    ) -> Result<Vec<(String, String)>, String> {
        if dereg.node.is_empty() {
            return Err("Missing node name".into());
        }
        let mut removed_checks = Vec::new();
        if !dereg.service_id.is_empty() {
            self.remove_service(&dereg.node, &dereg.service_id, &mut removed_checks, changes);
        } else if !dereg.check_id.is_empty() {
            if let Some(check) = self
                .checks
                .get_mut(&dereg.node)
                .and_then(|m| m.remove(&dereg.check_id))
            {
                self.touch_check(&check, changes);
                removed_checks.push((check.node, check.check_id));
            }
        } else if self.nodes.contains_key(&dereg.node) {
            let ids: Vec<String> = self
                .node_services(&dereg.node)
                .map(|s| s.id.clone())
                .collect();
            for id in ids {
                self.remove_service(&dereg.node, &id, &mut removed_checks, changes);
            }
            self.touch_node(&dereg.node, changes);
            if let Some(checks) = self.checks.remove(&dereg.node) {
                removed_checks.extend(checks.into_keys().map(|c| (dereg.node.clone(), c)));
                changes.push(WatchKey::Checks);
            }
            self.services.remove(&dereg.node);
            self.nodes.remove(&dereg.node);
            changes.push(WatchKey::Nodes);
        }
        Ok(removed_checks)
    }

    fn remove_service(
        &mut self,
        node: &str,
        id: &str,
        removed: &mut Vec<(String, String)>,
        changes: &mut Vec<WatchKey>,
    ) {
        let Some(svc) = self.services.get_mut(node).and_then(|m| m.remove(id)) else {
            return;
        };
        if let Some(set) = self.by_name.get_mut(&svc.service) {
            set.remove(&(node.to_string(), id.to_string()));
            if set.is_empty() {
                self.by_name.remove(&svc.service);
            }
        }
        changes.push(WatchKey::Services);
        changes.push(WatchKey::Service(svc.service.clone()));
        changes.push(WatchKey::Node(node.to_string()));
        if let Some(checks) = self.checks.get_mut(node) {
            let ids: Vec<String> = checks
                .values()
                .filter(|c| c.service_id == id)
                .map(|c| c.check_id.clone())
                .collect();
            for cid in ids {
                checks.remove(&cid);
                removed.push((node.to_string(), cid));
            }
            changes.push(WatchKey::Checks);
        }
    }
}

fn effective_id(svc: &NodeService) -> &str {
    if svc.id.is_empty() {
        &svc.service
    } else {
        &svc.id
    }
}
