//! The brain: the latest data of every dependency, as consul-template's
//! template functions see it.
//!
//! The watcher hands raw Consul response bodies to [`decode`]; the result is
//! stored with [`Brain::remember`]. Decoding does everything consul-template's
//! `Fetch` does after the HTTP call (address fallback, aggregated status and
//! health filtering, tag sorting, result ordering), so the functions only read.

use std::collections::BTreeMap;
use std::sync::Arc;

use registry_api::catalog::{Node as ApiNode, NodeServices, ServiceNode};
use registry_api::health::{CheckServiceNode, HealthCheck as ApiCheck, HealthCheckDefinition};
use registry_api::kv::KVPair;
use serde::Serialize;

use crate::dependency::Dependency;
use crate::value::Value;

/// A response body that does not fit its dependency.
#[derive(Debug, thiserror::Error)]
#[error("decoding {dependency}: {message}")]
pub struct DecodeError {
    /// The dependency (display form).
    pub dependency: String,
    /// What was wrong.
    pub message: String,
}

/// `api.ServiceAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceAddress {
    /// Address.
    pub address: String,
    /// Port.
    pub port: i64,
}

/// `api.AgentWeights`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Weights {
    /// Weight while passing.
    pub passing: i64,
    /// Weight while warning.
    pub warning: i64,
}

/// `api.HealthCheck` as `.Checks` elements show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    /// Node.
    pub node: String,
    /// Check ID.
    #[serde(rename = "CheckID")]
    pub check_id: String,
    /// Name.
    pub name: String,
    /// Status.
    pub status: String,
    /// Notes.
    pub notes: String,
    /// Output.
    pub output: String,
    /// Service ID.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Service name.
    pub service_name: String,
    /// Service tags.
    pub service_tags: Vec<String>,
    /// Check type.
    #[serde(rename = "Type")]
    pub check_type: String,
    /// Exposed port.
    pub exposed_port: i64,
    /// Definition.
    pub definition: HealthCheckDefinition,
    /// Create index.
    pub create_index: u64,
    /// Modify index.
    pub modify_index: u64,
}

impl From<&ApiCheck> for HealthCheck {
    fn from(c: &ApiCheck) -> Self {
        HealthCheck {
            node: c.node.clone(),
            check_id: c.check_id.clone(),
            name: c.name.clone(),
            status: c.status.clone(),
            notes: c.notes.clone(),
            output: c.output.clone(),
            service_id: c.service_id.clone(),
            service_name: c.service_name.clone(),
            service_tags: c.service_tags.clone(),
            check_type: c.check_type.clone(),
            exposed_port: i64::from(c.exposed_port),
            definition: c.definition.clone(),
            create_index: c.create_index,
            modify_index: c.modify_index,
        }
    }
}

/// consul-template's `HealthService` (`service`, `connect`); field order is Go's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthService {
    /// Node name.
    pub node: String,
    /// Node UUID.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Node address.
    pub node_address: String,
    /// Node tagged addresses.
    pub node_tagged_addresses: BTreeMap<String, String>,
    /// Node metadata.
    pub node_meta: BTreeMap<String, String>,
    /// Service metadata.
    pub service_meta: BTreeMap<String, String>,
    /// Service address, or the node's when empty.
    pub address: String,
    /// Service tagged addresses.
    pub service_tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// Instance ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service name.
    pub name: String,
    /// Sorted tags.
    pub tags: Vec<String>,
    /// Node and service checks.
    pub checks: Vec<HealthCheck>,
    /// Aggregated status.
    pub status: String,
    /// Port.
    pub port: i64,
    /// Weights.
    pub weights: Weights,
}

/// consul-template's `CatalogService` (`catalogService`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogService {
    /// Node UUID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name.
    pub node: String,
    /// Node address.
    pub address: String,
    /// Datacenter.
    pub datacenter: String,
    /// Node tagged addresses.
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node metadata.
    pub node_meta: BTreeMap<String, String>,
    /// Instance ID.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Service name.
    pub service_name: String,
    /// Service address (may be empty).
    pub service_address: String,
    /// Sorted tags.
    pub service_tags: Vec<String>,
    /// Service metadata.
    pub service_meta: BTreeMap<String, String>,
    /// Port.
    pub service_port: i64,
}

/// consul-template's `CatalogSnippet` (`services`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogSnippet {
    /// Service name.
    pub name: String,
    /// Sorted tags.
    pub tags: Vec<String>,
}

/// consul-template's `Node` (`nodes`, `node`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    /// Node UUID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name.
    pub node: String,
    /// Address.
    pub address: String,
    /// Datacenter.
    pub datacenter: String,
    /// Tagged addresses.
    pub tagged_addresses: BTreeMap<String, String>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
}

impl From<&ApiNode> for Node {
    fn from(n: &ApiNode) -> Self {
        Node {
            id: n.id.clone(),
            node: n.node.clone(),
            address: n.address.clone(),
            datacenter: n.datacenter.clone(),
            tagged_addresses: n.tagged_addresses.clone(),
            meta: n.meta.clone(),
        }
    }
}

/// consul-template's `CatalogNodeService` (elements of `node`'s `.Services`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogNodeService {
    /// Instance ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service name.
    pub service: String,
    /// Sorted tags.
    pub tags: Vec<String>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// Port.
    pub port: i64,
    /// Address.
    pub address: String,
    /// Tag override flag.
    pub enable_tag_override: bool,
}

/// consul-template's `CatalogNode` (`node`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogNode {
    /// The node (`nil` in Go when the node does not exist).
    pub node: Option<Node>,
    /// Its services, in Consul's map order (by ID).
    pub services: Vec<CatalogNodeService>,
}

/// consul-template's `KeyPair` (`ls`, `tree`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyPair {
    /// Full key.
    pub path: String,
    /// Key relative to the prefix, leading `/` trimmed.
    pub key: String,
    /// Value as a string.
    pub value: String,
    /// Create index.
    pub create_index: u64,
    /// Modify index.
    pub modify_index: u64,
    /// Lock index.
    pub lock_index: u64,
    /// Flags.
    pub flags: u64,
    /// Session ("" when unlocked).
    pub session: String,
}

/// Decoded data of one dependency.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `service`/`connect`, already filtered and sorted.
    HealthServices(Vec<HealthService>),
    /// `catalogService`.
    CatalogServices(Vec<CatalogService>),
    /// `services`, sorted by name.
    Services(Vec<CatalogSnippet>),
    /// `nodes`, sorted by name unless `~near`.
    Nodes(Vec<Node>),
    /// `node`.
    CatalogNode(CatalogNode),
    /// `datacenters`, sorted.
    Datacenters(Vec<String>),
    /// `key`: the value, `None` when the key does not exist.
    Key(Option<String>),
    /// `ls`/`tree`: every pair under the prefix, unfiltered.
    KeyPrefix(Vec<KeyPair>),
    /// `file` contents.
    File(String),
}

impl Data {
    /// The template-facing value (Go field names as map keys).
    pub fn to_value(&self) -> Value {
        fn conv<T: Serialize + ?Sized>(v: &T) -> Value {
            // Serializing plain structs of strings, ints and maps cannot fail.
            gotmpl::to_value(v).unwrap_or(Value::Nil)
        }
        match self {
            Data::HealthServices(v) => conv(v),
            Data::CatalogServices(v) => conv(v),
            Data::Services(v) => conv(v),
            Data::Nodes(v) => conv(v),
            Data::CatalogNode(v) => conv(v),
            Data::Datacenters(v) => conv(v),
            Data::Key(v) => conv(v),
            Data::KeyPrefix(v) => conv(v),
            Data::File(v) => conv(v),
        }
    }
}

/// Data per dependency. Cloning is cheap (values are shared), which lets a
/// render own a snapshot while the watcher keeps updating the brain.
#[derive(Debug, Clone, Default)]
pub struct Brain {
    entries: BTreeMap<Dependency, Arc<Entry>>,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) data: Data,
    pub(crate) value: Value,
}

impl Brain {
    /// An empty brain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores data for a dependency; returns `false` when it equals what was
    /// stored (the watcher can skip a re-render then).
    pub fn remember(&mut self, dep: Dependency, data: Data) -> bool {
        if self.entries.get(&dep).is_some_and(|e| e.data == data) {
            return false;
        }
        let value = data.to_value();
        self.entries.insert(dep, Arc::new(Entry { data, value }));
        true
    }

    /// The data of a dependency, if any arrived.
    pub fn recall(&self, dep: &Dependency) -> Option<&Data> {
        self.entries.get(dep).map(|e| &e.data)
    }

    pub(crate) fn entry(&self, dep: &Dependency) -> Option<&Arc<Entry>> {
        self.entries.get(dep)
    }

    /// Drops a dependency no template uses any more.
    pub fn forget(&mut self, dep: &Dependency) {
        self.entries.remove(dep);
    }

    /// Keeps only the dependencies for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&Dependency) -> bool) {
        self.entries.retain(|d, _| keep(d));
    }
}

fn sorted(tags: &[String]) -> Vec<String> {
    let mut t = tags.to_vec();
    t.sort();
    t
}

fn err(dep: &Dependency, e: impl std::fmt::Display) -> DecodeError {
    DecodeError {
        dependency: dep.to_string(),
        message: e.to_string(),
    }
}

/// consul-template's aggregated status: maintenance beats critical beats
/// warning; no checks = passing.
pub fn aggregated_status(checks: &[ApiCheck]) -> &'static str {
    let (mut maint, mut critical, mut warning) = (false, false, false);
    for c in checks {
        if c.check_id == "_node_maintenance" || c.check_id.starts_with("_service_maintenance:") {
            maint = true;
        }
        match c.status.as_str() {
            "critical" => critical = true,
            "warning" => warning = true,
            _ => {}
        }
    }
    if maint {
        "maintenance"
    } else if critical {
        "critical"
    } else if warning {
        "warning"
    } else {
        "passing"
    }
}

/// Decodes a Consul response body (or a file's contents for
/// [`Dependency::File`]) into the data the template functions read. A KV GET
/// answered with 404 has no body: pass `b""` (or `b"null"`) for "no such key".
pub fn decode(dep: &Dependency, body: &[u8]) -> Result<Data, DecodeError> {
    fn json<T: serde::de::DeserializeOwned + Default>(
        dep: &Dependency,
        body: &[u8],
    ) -> Result<T, DecodeError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        Ok(serde_json::from_slice::<Option<T>>(body)
            .map_err(|e| err(dep, e))?
            .unwrap_or_default())
    }
    Ok(match dep {
        Dependency::HealthService { filters, near, .. } => {
            let entries: Vec<CheckServiceNode> = json(dep, body)?;
            let mut list: Vec<HealthService> = entries
                .iter()
                .filter_map(|e| {
                    let status = aggregated_status(&e.checks);
                    if !filters.iter().any(|f| f == status || f == "any") {
                        return None;
                    }
                    let address = if e.service.address.is_empty() {
                        e.node.address.clone()
                    } else {
                        e.service.address.clone()
                    };
                    Some(HealthService {
                        node: e.node.node.clone(),
                        node_id: e.node.id.clone(),
                        node_address: e.node.address.clone(),
                        node_tagged_addresses: e.node.tagged_addresses.clone(),
                        node_meta: e.node.meta.clone(),
                        service_meta: e.service.meta.clone(),
                        address,
                        service_tagged_addresses: e
                            .service
                            .tagged_addresses
                            .iter()
                            .map(|(k, a)| {
                                let a = ServiceAddress {
                                    address: a.address.clone(),
                                    port: i64::from(a.port),
                                };
                                (k.clone(), a)
                            })
                            .collect(),
                        id: e.service.id.clone(),
                        name: e.service.service.clone(),
                        tags: sorted(&e.service.tags),
                        checks: e.checks.iter().map(HealthCheck::from).collect(),
                        status: status.to_string(),
                        port: i64::from(e.service.port),
                        weights: Weights {
                            passing: i64::from(e.service.weights.passing),
                            warning: i64::from(e.service.weights.warning),
                        },
                    })
                })
                .collect();
            if near.is_none() {
                list.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
            }
            Data::HealthServices(list)
        }
        Dependency::CatalogService { .. } => {
            let entries: Vec<ServiceNode> = json(dep, body)?;
            Data::CatalogServices(
                entries
                    .iter()
                    .map(|s| CatalogService {
                        id: s.id.clone(),
                        node: s.node.clone(),
                        address: s.address.clone(),
                        datacenter: s.datacenter.clone(),
                        tagged_addresses: s.tagged_addresses.clone(),
                        node_meta: s.node_meta.clone(),
                        service_id: s.service_id.clone(),
                        service_name: s.service_name.clone(),
                        service_address: s.service_address.clone(),
                        service_tags: sorted(&s.service_tags),
                        service_meta: s.service_meta.clone(),
                        service_port: i64::from(s.service_port),
                    })
                    .collect(),
            )
        }
        Dependency::CatalogServices { .. } => {
            let map: BTreeMap<String, Option<Vec<String>>> = json(dep, body)?;
            // BTreeMap iteration = sort by name.
            Data::Services(
                map.into_iter()
                    .map(|(name, tags)| CatalogSnippet {
                        name,
                        tags: sorted(&tags.unwrap_or_default()),
                    })
                    .collect(),
            )
        }
        Dependency::CatalogNodes { near, .. } => {
            let nodes: Vec<ApiNode> = json(dep, body)?;
            let mut list: Vec<Node> = nodes.iter().map(Node::from).collect();
            if near.is_none() {
                list.sort_by(|a, b| a.node.cmp(&b.node));
            }
            Data::Nodes(list)
        }
        Dependency::CatalogNode { .. } => {
            let body_is_null = body.iter().all(u8::is_ascii_whitespace)
                || serde_json::from_slice::<serde_json::Value>(body)
                    .map_err(|e| err(dep, e))?
                    .is_null();
            if body_is_null {
                Data::CatalogNode(CatalogNode {
                    node: None,
                    services: Vec::new(),
                })
            } else {
                let ns: NodeServices = serde_json::from_slice(body).map_err(|e| err(dep, e))?;
                let mut services: Vec<CatalogNodeService> = ns
                    .services
                    .values()
                    .map(|v| CatalogNodeService {
                        id: v.id.clone(),
                        service: v.service.clone(),
                        tags: sorted(&v.tags),
                        meta: v.meta.clone(),
                        port: i64::from(v.port),
                        address: v.address.clone(),
                        enable_tag_override: v.enable_tag_override,
                    })
                    .collect();
                // Upstream sorts by service name (stable over Consul's ID order).
                services.sort_by(|a, b| a.service.cmp(&b.service));
                Data::CatalogNode(CatalogNode {
                    node: Some(Node::from(&ns.node)),
                    services,
                })
            }
        }
        Dependency::Datacenters { .. } => {
            let mut dcs: Vec<String> = json(dep, body)?;
            dcs.sort();
            Data::Datacenters(dcs)
        }
        Dependency::Key { .. } => {
            let pairs: Vec<KVPair> = json(dep, body)?;
            Data::Key(
                pairs
                    .into_iter()
                    .next()
                    .map(|p| String::from_utf8_lossy(&p.value.unwrap_or_default()).into_owned()),
            )
        }
        Dependency::KeyPrefix { prefix, .. } => {
            let pairs: Vec<KVPair> = json(dep, body)?;
            Data::KeyPrefix(
                pairs
                    .into_iter()
                    .map(|p| {
                        let key = p
                            .key
                            .strip_prefix(prefix.as_str())
                            .unwrap_or(&p.key)
                            .trim_start_matches('/')
                            .to_string();
                        KeyPair {
                            key,
                            value: String::from_utf8_lossy(&p.value.unwrap_or_default())
                                .into_owned(),
                            create_index: p.create_index,
                            modify_index: p.modify_index,
                            lock_index: p.lock_index,
                            flags: p.flags,
                            session: p.session.unwrap_or_default(),
                            path: p.key,
                        }
                    })
                    .collect(),
            )
        }
        Dependency::File { .. } => Data::File(String::from_utf8_lossy(body).into_owned()),
    })
}

#[cfg(test)]
mod tests;
