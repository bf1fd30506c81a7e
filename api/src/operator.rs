//! Operator wire types: the Raft configuration (`/v1/operator/raft/configuration`)
//! and the gossip keyring (`/v1/operator/keyring`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One server of `GET /v1/operator/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftServer {
    /// Node ID (UUID).
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name.
    #[serde(rename = "Node")]
    pub node: String,
    /// Server RPC address (`ip:port`).
    #[serde(rename = "Address")]
    pub address: String,
    /// Whether this server leads the cluster.
    #[serde(rename = "Leader")]
    pub leader: bool,
    /// Raft protocol version (`"3"`); empty from very old servers.
    #[serde(rename = "ProtocolVersion", default)]
    pub protocol_version: String,
    /// Whether this server votes.
    #[serde(rename = "Voter")]
    pub voter: bool,
    /// Last log index it is known to have (the leader's view).
    #[serde(rename = "LastIndex", default)]
    pub last_index: u64,
}

/// `GET /v1/operator/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftConfiguration {
    /// The servers of the configuration.
    #[serde(rename = "Servers")]
    pub servers: Vec<RaftServer>,
    /// Log index of the configuration.
    #[serde(rename = "Index")]
    pub index: u64,
}

/// One gossip pool's answer of `GET /v1/operator/keyring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyringResponse {
    /// Whether this is the WAN pool.
    #[serde(rename = "WAN")]
    pub wan: bool,
    /// Datacenter of the pool.
    #[serde(rename = "Datacenter")]
    pub datacenter: String,
    /// Network segment (Enterprise; empty here).
    #[serde(rename = "Segment", default)]
    pub segment: String,
    /// Admin partition (Enterprise; omitted when empty).
    #[serde(
        rename = "Partition",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub partition: String,
    /// Messages from nodes that failed the operation, by node (omitted when empty).
    #[serde(
        rename = "Messages",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub messages: BTreeMap<String, String>,
    /// Installed key → number of nodes that have it.
    #[serde(rename = "Keys", default, deserialize_with = "null_as_empty")]
    pub keys: BTreeMap<String, usize>,
    /// Primary key → number of nodes using it as their primary.
    #[serde(rename = "PrimaryKeys", default, deserialize_with = "null_as_empty")]
    pub primary_keys: BTreeMap<String, usize>,
    /// Number of nodes in the pool.
    #[serde(rename = "NumNodes")]
    pub num_nodes: usize,
}

/// Body of `POST`/`PUT`/`DELETE /v1/operator/keyring`: `{"Key": "<base64>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyringRequest {
    /// The base64 gossip key.
    #[serde(rename = "Key")]
    pub key: String,
}

/// Go encodes a nil map as `null`: read it as an empty one.
fn null_as_empty<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    Ok(Option::<BTreeMap<String, V>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_configuration_uses_consul_field_names() {
        let text = r#"{"Servers":[{"ID":"a1","Node":"n1","Address":"10.0.0.1:8300",
            "Leader":true,"ProtocolVersion":"3","Voter":true,"LastIndex":7}],"Index":5}"#;
        let config: RaftConfiguration = serde_json::from_str(text).unwrap();
        assert_eq!(config.index, 5);
        assert_eq!(config.servers[0].address, "10.0.0.1:8300");
        assert!(config.servers[0].leader && config.servers[0].voter);
        let back = serde_json::to_string(&config).unwrap();
        assert_eq!(
            back,
            r#"{"Servers":[{"ID":"a1","Node":"n1","Address":"10.0.0.1:8300","Leader":true,"ProtocolVersion":"3","Voter":true,"LastIndex":7}],"Index":5}"#
        );
    }

    #[test]
    fn keyring_response_round_trips_and_omits_empty_extras() {
        let resp = KeyringResponse {
            datacenter: "dc1".into(),
            keys: [("k".to_string(), 2)].into(),
            primary_keys: [("k".to_string(), 2)].into(),
            num_nodes: 2,
            ..KeyringResponse::default()
        };
        let text = serde_json::to_string(&resp).unwrap();
        assert_eq!(
            text,
            r#"{"WAN":false,"Datacenter":"dc1","Segment":"","Keys":{"k":2},"PrimaryKeys":{"k":2},"NumNodes":2}"#
        );
        let go = r#"{"WAN":true,"Datacenter":"dc1","Segment":"","Messages":null,"Keys":null,"PrimaryKeys":null,"NumNodes":0}"#;
        let parsed: KeyringResponse = serde_json::from_str(go).unwrap();
        assert!(parsed.wan && parsed.keys.is_empty() && parsed.messages.is_empty());
        assert_eq!(
            serde_json::to_string(&KeyringRequest { key: "x".into() }).unwrap(),
            r#"{"Key":"x"}"#
        );
    }
}
