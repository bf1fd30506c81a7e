//! `registry-node operator raft list-peers|remove-peer`: the Raft configuration
//! of the servers (`/v1/operator/raft/*`), with Consul's flags and output.

use registry_api::RaftConfiguration;
use registry_api::client::RaftPeer;

use super::http_flags::HttpFlags;
use super::output::{columnize, fail, fail_client};

/// Arguments of `operator`.
#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    /// The operator area.
    #[command(subcommand)]
    pub command: OperatorCommand,
}

/// `operator` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// Provides cluster-level tools for Consul operators (Raft peers).
    Raft(RaftArgs),
}

/// Arguments of `operator raft`.
#[derive(Debug, clap::Args)]
pub struct RaftArgs {
    /// The Raft operation.
    #[command(subcommand)]
    pub command: RaftCommand,
}

/// `operator raft` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RaftCommand {
    /// Display the current Raft peer configuration.
    ListPeers(ListPeersArgs),
    /// Remove a Consul server from the Raft configuration.
    RemovePeer(RemovePeerArgs),
}

/// Arguments of `operator raft list-peers` (`-stale` is one of the HTTP flags).
#[derive(Debug, clap::Args)]
pub struct ListPeersArgs {
    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Arguments of `operator raft remove-peer`.
#[derive(Debug, clap::Args)]
pub struct RemovePeerArgs {
    /// The address to remove from the Raft configuration.
    #[arg(long, default_value = "", value_name = "ip:port")]
    pub address: String,

    /// The ID to remove from the Raft configuration.
    #[arg(long, default_value = "", value_name = "id")]
    pub id: String,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `operator ...`.
pub async fn run(args: OperatorArgs) -> anyhow::Result<i32> {
    match args.command {
        OperatorCommand::Raft(raft) => match raft.command {
            RaftCommand::ListPeers(args) => list_peers(args).await,
            RaftCommand::RemovePeer(args) => remove_peer(args).await,
        },
    }
}

async fn list_peers(args: ListPeersArgs) -> anyhow::Result<i32> {
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    match client.raft_configuration(&args.http.query_options()).await {
        Ok((config, _)) => {
            println!("{}", peers_table(&config));
            Ok(0)
        }
        Err(e) => Ok(fail_client(
            "Error getting peers: Failed to retrieve raft configuration",
            &e,
        )),
    }
}

/// The `list-peers` table: `Node ID Address State Voter RaftProtocol`, one row per
/// server in the configuration's order; State is `leader` or `follower`, an
/// empty protocol version shows as `<=1`. No trailing newline.
pub fn peers_table(config: &RaftConfiguration) -> String {
    let mut rows = vec![
        ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
            .map(String::from)
            .to_vec(),
    ];
    for s in &config.servers {
        let protocol = if s.protocol_version.is_empty() {
            "<=1"
        } else {
            &s.protocol_version
        };
        rows.push(vec![
            s.node.clone(),
            s.id.clone(),
            s.address.clone(),
            if s.leader { "leader" } else { "follower" }.to_string(),
            s.voter.to_string(),
            protocol.to_string(),
        ]);
    }
    columnize(&rows)
}

/// The peer `-address` / `-id` name, or Consul's complaint (exactly one is needed).
pub fn peer_selector<'a>(address: &'a str, id: &'a str) -> Result<RaftPeer<'a>, &'static str> {
    match (address.is_empty(), id.is_empty()) {
        (true, true) => Err("an address or id is required for the peer to remove"),
        (false, false) => Err("cannot give both an address and id"),
        (false, true) => Ok(RaftPeer::Address(address)),
        (true, false) => Ok(RaftPeer::Id(id)),
    }
}

/// The success line: `Removed peer with address "10.0.0.1:8300"` (Go's `%q`).
pub fn removed_message(peer: RaftPeer<'_>) -> String {
    match peer {
        RaftPeer::Address(address) => format!("Removed peer with address {address:?}"),
        RaftPeer::Id(id) => format!("Removed peer with id {id:?}"),
    }
}

async fn remove_peer(args: RemovePeerArgs) -> anyhow::Result<i32> {
    let peer = match peer_selector(&args.address, &args.id) {
        Ok(peer) => peer,
        Err(msg) => return Ok(fail(format!("Error removing peer: {msg}"))),
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    if let Err(e) = client.raft_remove_peer(peer).await {
        return Ok(fail_client("Error removing peer", &e));
    }
    println!("{}", removed_message(peer));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_api::RaftServer;

    fn server(node: &str, id: &str, addr: &str, leader: bool, voter: bool) -> RaftServer {
        RaftServer {
            id: id.into(),
            node: node.into(),
            address: addr.into(),
            leader,
            protocol_version: "3".into(),
            voter,
            last_index: 0,
        }
    }

    #[test]
    fn peers_table_matches_consul() {
        let mut old = server("c", "id-3", "10.0.0.3:8300", false, false);
        old.protocol_version.clear();
        let config = RaftConfiguration {
            servers: vec![
                server(
                    "server-1",
                    "e3f5c8b6-1d2a-4b7c-9e0f-123456789abc",
                    "10.0.0.1:8300",
                    true,
                    true,
                ),
                server("s2", "id-2", "10.0.0.22:8300", false, true),
                old,
            ],
            index: 1,
        };
        let expected = "\
Node      ID                                    Address         State     Voter  RaftProtocol
server-1  e3f5c8b6-1d2a-4b7c-9e0f-123456789abc  10.0.0.1:8300   leader    true   3
s2        id-2                                  10.0.0.22:8300  follower  true   3
c         id-3                                  10.0.0.3:8300   follower  false  <=1";
        assert_eq!(peers_table(&config), expected);
    }

    #[test]
    fn exactly_one_of_address_and_id() {
        assert_eq!(
            peer_selector("1.2.3.4:8300", ""),
            Ok(RaftPeer::Address("1.2.3.4:8300"))
        );
        assert_eq!(peer_selector("", "abc"), Ok(RaftPeer::Id("abc")));
        assert_eq!(
            peer_selector("", ""),
            Err("an address or id is required for the peer to remove")
        );
        assert_eq!(
            peer_selector("a", "b"),
            Err("cannot give both an address and id")
        );
        assert_eq!(
            removed_message(RaftPeer::Address("1.2.3.4:8300")),
            "Removed peer with address \"1.2.3.4:8300\""
        );
        assert_eq!(
            removed_message(RaftPeer::Id("abc")),
            "Removed peer with id \"abc\""
        );
    }
}
