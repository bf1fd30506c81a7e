//! Catalog wire types: nodes, services and the registration payloads of
//! `/v1/catalog/*` and `/v1/agent/service/register`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::health::CheckDefinition;
use crate::health::HealthCheck;

/// String-to-string map; Go encodes maps with sorted keys, so a `BTreeMap` matches.
pub type Meta = BTreeMap<String, String>;

/// A catalog node (`/v1/catalog/nodes`, `Node` of health results).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Node {
    /// Node UUID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Node name.
    #[serde(rename = "Node")]
    pub node: String,
    /// Node address (usually its LAN IP).
    #[serde(rename = "Address", default)]
    pub address: String,
    /// Datacenter.
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    /// `lan`, `lan_ipv4`, `wan`, `wan_ipv4`, … addresses.
    #[serde(rename = "TaggedAddresses", default, deserialize_with = "null_default")]
    pub tagged_addresses: Meta,
    /// Node metadata.
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    pub meta: Meta,
    /// Raft index that created the node.
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
}

/// A service's tagged address (`{"Address": "...", "Port": N}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServiceAddress {
    /// Address.
    #[serde(rename = "Address", default)]
    pub address: String,
    /// Port.
    #[serde(rename = "Port", default)]
    pub port: u16,
}

/// DNS SRV weights of an instance by health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// Weight while passing.
    #[serde(rename = "Passing", default = "one")]
    pub passing: i32,
    /// Weight while warning.
    #[serde(rename = "Warning", default = "one")]
    pub warning: i32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

fn one() -> i32 {
    1
}

/// Treats JSON `null` like a missing field (Go clients send `"Tags": null`).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The `Proxy` object Consul emits for a non-proxy service.
pub fn empty_proxy() -> Value {
    serde_json::json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
}

/// `Proxy` fields hold `null` for "not a proxy" (no allocation per instance)
/// and are written as Consul's empty proxy object.
fn proxy_or_default<S: serde::Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    if v.is_null() {
        empty_proxy().serialize(s)
    } else {
        v.serialize(s)
    }
}

/// Reads a `Proxy`; the empty proxy object becomes `null` again.
fn proxy_from<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let v = Option::<Value>::deserialize(d)?.unwrap_or_default();
    Ok(if v == empty_proxy() { Value::Null } else { v })
}

/// Reads a `Connect`; `{}` becomes `null` again.
fn object_from<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let v = Option::<Value>::deserialize(d)?.unwrap_or_default();
    Ok(if v.as_object().is_some_and(|m| m.is_empty()) {
        Value::Null
    } else {
        v
    })
}

/// `Connect` fields hold `null` for "no Connect settings" and are written as `{}`.
fn object_or_empty<S: serde::Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    if v.is_null() {
        serde_json::Map::new().serialize(s)
    } else {
        v.serialize(s)
    }
}

fn is_empty_str(s: &str) -> bool {
    s.is_empty()
}

/// A service instance as the catalog stores it (`NodeService` in Consul): the
/// `Service` of health results and the values of `/v1/catalog/node/:node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeService {
    /// "" for a typical service, or `connect-proxy`, `mesh-gateway`, …
    #[serde(rename = "Kind", default, skip_serializing_if = "is_empty_str")]
    pub kind: String,
    /// Instance ID, unique on its node.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Service name.
    #[serde(rename = "Service", default)]
    pub service: String,
    /// Tags.
    #[serde(rename = "Tags", default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Service address; "" means the node's address.
    #[serde(rename = "Address", default)]
    pub address: String,
    /// Tagged addresses.
    #[serde(
        rename = "TaggedAddresses",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// Service metadata.
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    pub meta: Meta,
    /// Port.
    #[serde(rename = "Port", default)]
    pub port: u16,
    /// Unix socket path, if any.
    #[serde(rename = "SocketPath", default, skip_serializing_if = "is_empty_str")]
    pub socket_path: String,
    /// DNS SRV weights.
    #[serde(rename = "Weights", default, deserialize_with = "null_default")]
    pub weights: Weights,
    /// Let catalog writers change the tags without anti-entropy undoing it.
    #[serde(rename = "EnableTagOverride", default)]
    pub enable_tag_override: bool,
    /// Proxy configuration (opaque here).
    #[serde(
        rename = "Proxy",
        default,
        serialize_with = "proxy_or_default",
        deserialize_with = "proxy_from"
    )]
    pub proxy: Value,
    /// Connect configuration (opaque here).
    #[serde(
        rename = "Connect",
        default,
        serialize_with = "object_or_empty",
        deserialize_with = "object_from"
    )]
    pub connect: Value,
    /// Always "" (no peering).
    #[serde(rename = "PeerName", default)]
    pub peer_name: String,
    /// Raft index that created the instance.
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
}

/// A service instance as the local agent reports it (`/v1/agent/services`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgentService {
    /// "" for a typical service.
    #[serde(rename = "Kind", default, skip_serializing_if = "is_empty_str")]
    pub kind: String,
    /// Instance ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service name.
    #[serde(rename = "Service")]
    pub service: String,
    /// Tags.
    #[serde(rename = "Tags", default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Metadata.
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    pub meta: Meta,
    /// Port.
    #[serde(rename = "Port", default)]
    pub port: u16,
    /// Address ("" = node address).
    #[serde(rename = "Address", default)]
    pub address: String,
    /// Tagged addresses.
    #[serde(
        rename = "TaggedAddresses",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// Weights.
    #[serde(rename = "Weights", default, deserialize_with = "null_default")]
    pub weights: Weights,
    /// Tag override flag.
    #[serde(rename = "EnableTagOverride", default)]
    pub enable_tag_override: bool,
    /// The agent's datacenter.
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    /// Hash of the definition (only `/v1/agent/service/:id`).
    #[serde(
        rename = "ContentHash",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_hash: Option<String>,
}

impl AgentService {
    /// The agent view of a catalog instance.
    pub fn from_node_service(svc: &NodeService, datacenter: &str) -> Self {
        AgentService {
            kind: svc.kind.clone(),
            id: svc.id.clone(),
            service: svc.service.clone(),
            tags: svc.tags.clone(),
            meta: svc.meta.clone(),
            port: svc.port,
            address: svc.address.clone(),
            tagged_addresses: svc.tagged_addresses.clone(),
            weights: svc.weights,
            enable_tag_override: svc.enable_tag_override,
            datacenter: datacenter.to_string(),
            content_hash: None,
        }
    }
}

/// One element of `/v1/catalog/service/:name`: the node and the instance flattened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServiceNode {
    /// Node UUID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Node name.
    #[serde(rename = "Node")]
    pub node: String,
    /// Node address.
    #[serde(rename = "Address", default)]
    pub address: String,
    /// Datacenter.
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    /// Node tagged addresses.
    #[serde(rename = "TaggedAddresses", default, deserialize_with = "null_default")]
    pub tagged_addresses: Meta,
    /// Node metadata.
    #[serde(rename = "NodeMeta", default, deserialize_with = "null_default")]
    pub node_meta: Meta,
    /// Service kind.
    #[serde(rename = "ServiceKind", default)]
    pub service_kind: String,
    /// Instance ID.
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    /// Service name.
    #[serde(rename = "ServiceName", default)]
    pub service_name: String,
    /// Tags.
    #[serde(rename = "ServiceTags", default, deserialize_with = "null_default")]
    pub service_tags: Vec<String>,
    /// Service address ("" = use `Address`).
    #[serde(rename = "ServiceAddress", default)]
    pub service_address: String,
    /// Service tagged addresses.
    #[serde(
        rename = "ServiceTaggedAddresses",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub service_tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// Weights.
    #[serde(rename = "ServiceWeights", default, deserialize_with = "null_default")]
    pub service_weights: Weights,
    /// Service metadata.
    #[serde(rename = "ServiceMeta", default, deserialize_with = "null_default")]
    pub service_meta: Meta,
    /// Port.
    #[serde(rename = "ServicePort", default)]
    pub service_port: u16,
    /// Socket path.
    #[serde(rename = "ServiceSocketPath", default)]
    pub service_socket_path: String,
    /// Tag override flag.
    #[serde(rename = "ServiceEnableTagOverride", default)]
    pub service_enable_tag_override: bool,
    /// Proxy configuration.
    #[serde(
        rename = "ServiceProxy",
        default,
        serialize_with = "proxy_or_default",
        deserialize_with = "proxy_from"
    )]
    pub service_proxy: Value,
    /// Connect configuration.
    #[serde(
        rename = "ServiceConnect",
        default,
        serialize_with = "object_or_empty",
        deserialize_with = "object_from"
    )]
    pub service_connect: Value,
    /// Always "".
    #[serde(rename = "PeerName", default)]
    pub peer_name: String,
    /// Raft index that created the instance.
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    /// Raft index of the last change of the instance.
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
}

impl ServiceNode {
    /// Flattens a node and one of its instances.
    pub fn new(node: &Node, svc: &NodeService) -> Self {
        ServiceNode {
            id: node.id.clone(),
            node: node.node.clone(),
            address: node.address.clone(),
            datacenter: node.datacenter.clone(),
            tagged_addresses: node.tagged_addresses.clone(),
            node_meta: node.meta.clone(),
            service_kind: svc.kind.clone(),
            service_id: svc.id.clone(),
            service_name: svc.service.clone(),
            service_tags: svc.tags.clone(),
            service_address: svc.address.clone(),
            service_tagged_addresses: svc.tagged_addresses.clone(),
            service_weights: svc.weights,
            service_meta: svc.meta.clone(),
            service_port: svc.port,
            service_socket_path: svc.socket_path.clone(),
            service_enable_tag_override: svc.enable_tag_override,
            service_proxy: svc.proxy.clone(),
            service_connect: svc.connect.clone(),
            peer_name: String::new(),
            create_index: svc.create_index,
            modify_index: svc.modify_index,
        }
    }
}

/// `/v1/catalog/node/:node`: the node and its instances keyed by ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeServices {
    /// The node.
    #[serde(rename = "Node")]
    pub node: Node,
    /// Instances keyed by service ID.
    #[serde(rename = "Services", default, deserialize_with = "null_default")]
    pub services: BTreeMap<String, NodeService>,
}

/// `/v1/catalog/node-services/:node`: the node and its instances as a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeServiceList {
    /// The node.
    #[serde(rename = "Node")]
    pub node: Node,
    /// Instances.
    #[serde(rename = "Services", default, deserialize_with = "null_default")]
    pub services: Vec<NodeService>,
}

/// Body of `PUT /v1/catalog/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CatalogRegistration {
    /// Node UUID (optional).
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Node name (required).
    #[serde(rename = "Node", default)]
    pub node: String,
    /// Node address (required).
    #[serde(rename = "Address", default)]
    pub address: String,
    /// Datacenter (defaults to the agent's).
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    /// Node tagged addresses.
    #[serde(rename = "TaggedAddresses", default, deserialize_with = "null_default")]
    pub tagged_addresses: Meta,
    /// Node metadata.
    #[serde(rename = "NodeMeta", default, deserialize_with = "null_default")]
    pub node_meta: Meta,
    /// A service to register on the node.
    #[serde(rename = "Service", default, skip_serializing_if = "Option::is_none")]
    pub service: Option<NodeService>,
    /// A check to register.
    #[serde(rename = "Check", default, skip_serializing_if = "Option::is_none")]
    pub check: Option<HealthCheck>,
    /// Checks to register.
    #[serde(rename = "Checks", default, deserialize_with = "null_default")]
    pub checks: Vec<HealthCheck>,
    /// Leave the node entry as it is (only add the service/checks).
    #[serde(rename = "SkipNodeUpdate", default)]
    pub skip_node_update: bool,
}

/// Body of `PUT /v1/catalog/deregister`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CatalogDeregistration {
    /// Node name (required).
    #[serde(rename = "Node", default)]
    pub node: String,
    /// Datacenter.
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    /// Remove only this service and its checks.
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    /// Remove only this check.
    #[serde(rename = "CheckID", default)]
    pub check_id: String,
}

/// Body of `PUT /v1/agent/service/register` (also `service` blocks of config files
/// once converted, and `services register` files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentServiceRegistration {
    /// Kind ("" for a typical service).
    #[serde(rename = "Kind", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Instance ID (defaults to the name).
    #[serde(rename = "ID", default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Service name (required).
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Tags.
    #[serde(rename = "Tags", default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Port.
    #[serde(rename = "Port", default)]
    pub port: u16,
    /// Address.
    #[serde(rename = "Address", default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Socket path.
    #[serde(
        rename = "SocketPath",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    /// Tagged addresses.
    #[serde(
        rename = "TaggedAddresses",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// Metadata.
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    pub meta: Meta,
    /// Weights.
    #[serde(rename = "Weights", default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// Tag override flag.
    #[serde(rename = "EnableTagOverride", default)]
    pub enable_tag_override: bool,
    /// One check.
    #[serde(rename = "Check", default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckDefinition>,
    /// Several checks.
    #[serde(rename = "Checks", default, deserialize_with = "null_default")]
    pub checks: Vec<CheckDefinition>,
    /// Proxy configuration (kept opaque).
    #[serde(rename = "Proxy", default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Value>,
    /// Connect configuration (kept opaque).
    #[serde(rename = "Connect", default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Value>,
    /// Ignored (ACLs are not enforced).
    #[serde(rename = "Token", default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Accepted and ignored (Enterprise).
    #[serde(
        rename = "Namespace",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub namespace: String,
}

impl AgentServiceRegistration {
    /// The instance ID: `ID`, or the name when `ID` is empty.
    pub fn effective_id(&self) -> &str {
        if self.id.is_empty() {
            &self.name
        } else {
            &self.id
        }
    }

    /// The catalog instance this registration describes.
    pub fn to_node_service(&self) -> NodeService {
        NodeService {
            kind: self.kind.clone(),
            id: self.effective_id().to_string(),
            service: self.name.clone(),
            tags: self.tags.clone(),
            address: self.address.clone(),
            tagged_addresses: self.tagged_addresses.clone(),
            meta: self.meta.clone(),
            port: self.port,
            socket_path: self.socket_path.clone(),
            weights: self.weights.unwrap_or_default(),
            enable_tag_override: self.enable_tag_override,
            proxy: self.proxy.clone().unwrap_or_default(),
            connect: self.connect.clone().unwrap_or_default(),
            peer_name: String::new(),
            create_index: 0,
            modify_index: 0,
        }
    }

    /// All checks of the definition (`Check` then `Checks`).
    pub fn all_checks(&self) -> Vec<CheckDefinition> {
        self.check
            .iter()
            .chain(self.checks.iter())
            .cloned()
            .collect()
    }
}
