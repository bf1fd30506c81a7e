//! (e) `docker restart` of a follower: same node ID and data, back in the
//! cluster, and it replicates new writes. A follower recreated without its
//! data (same name and IP, new node ID) replaces its old self in Raft.

use crate::{Cluster, Env, WAIT_CLUSTER, WAIT_SHORT, WAIT_START, kv_get, member_status, wait_for};

/// `Config.NodeID` of `/v1/agent/self`.
fn node_id(env: &Env, n: &crate::Node) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(&env.http_get(&n.ip, "/v1/agent/self")?).map_err(|e| e.to_string())?;
    v["Config"]["NodeID"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("no Config.NodeID in {v}"))
}

/// A formed three-server cluster, its leader, and a follower that holds
/// `key` = `kept` locally. The follower is not s1, the servers' -retry-join
/// target (s1 itself rejoins through the others' reconnect; retry-join is the
/// documented path).
fn formed_with_key(env: &mut Env, key: &str) -> (Cluster, crate::Node, crate::Node) {
    let cluster = Cluster::start(env, false);
    cluster.wait_formed(env);
    let leader = cluster.wait_leader(env, &cluster.servers);
    let follower = cluster
        .servers
        .iter()
        .find(|s| s.node != leader.node && s.node != "s1")
        .unwrap()
        .clone();
    env.http_put(&leader.ip, &format!("/v1/kv/{key}"), "kept")
        .unwrap();
    wait_for(WAIT_SHORT, "the follower has the key locally", || {
        kv_get(env, &follower, key, true)
    });
    (cluster, leader, follower)
}

#[test]
fn restarted_follower_keeps_its_data_and_rejoins() {
    let mut env = Env::new("restart");
    let (cluster, leader, follower) = formed_with_key(&mut env, "docker/restart/before");
    let id_before = node_id(&env, &follower).unwrap();

    env.restart(&follower);

    wait_for(
        WAIT_CLUSTER,
        "the restarted follower follows the leader",
        || match env.leader_of(&follower) {
            Some(l) if l == format!("{}:8300", leader.ip) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(
        node_id(&env, &follower).unwrap(),
        id_before,
        "the node ID persists in the data dir"
    );
    assert_eq!(
        kv_get(&env, &follower, "docker/restart/before", true).unwrap(),
        "kept"
    );
    wait_for(
        WAIT_CLUSTER,
        "the leader sees the follower alive",
        || match member_status(&env, &leader, &follower.node)?.as_str() {
            "alive" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    env.http_put(&leader.ip, "/v1/kv/docker/restart/after", "new")
        .unwrap();
    wait_for(
        WAIT_SHORT,
        "the follower replicates a new write",
        || match kv_get(&env, &follower, "docker/restart/after", true)? {
            v if v == "new" => Ok(()),
            v => Err(v),
        },
    );
    let mut peers = env.peers_of(&leader).unwrap();
    peers.sort();
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert_eq!(
        cluster.wait_leader(&env, &cluster.servers).node,
        leader.node
    );
}

/// `(Address, ID, Voter)` of every server in the leader's Raft configuration.
fn raft_servers(env: &Env, leader: &crate::Node) -> Result<Vec<(String, String, bool)>, String> {
    let body = env.http_get(&leader.ip, "/v1/operator/raft/configuration")?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let servers = v["Servers"]
        .as_array()
        .ok_or(format!("no Servers in {v}"))?;
    Ok(servers
        .iter()
        .map(|s| {
            (
                s["Address"].as_str().unwrap_or_default().to_string(),
                s["ID"].as_str().unwrap_or_default().to_string(),
                s["Voter"].as_bool().unwrap_or(false),
            )
        })
        .collect())
}

/// What this test does:
/// - a follower's container is removed with its data (a lost disk) and a new
///   one starts with the same name, IP and flags: a fresh node ID, an empty log;
/// - the leader keeps leading (the new server refuses what is addressed to its
///   old Raft ID instead of answering with an empty log, which made openraft
///   panic), removes the old member and adds the new one;
/// - the new server catches up (an old key is there) and the cluster has three
///   voters, the new node ID among them, and still takes writes.
#[test]
fn follower_recreated_without_data_replaces_its_old_self() {
    follower_recreated_without_data(false);
}

/// What this test does: as above, but the new container gets another IP. The
/// old Raft member (old ID, old address) is carried by no gossip member any
/// more: the leader removes it as stale after the grace period, leaving three
/// voters, not four with one dead.
#[test]
fn follower_recreated_elsewhere_leaves_no_stale_voter() {
    follower_recreated_without_data(true);
}

fn follower_recreated_without_data(new_ip: bool) {
    let mut env = Env::new(if new_ip { "recreate-ip" } else { "recreate" });
    let (cluster, leader, follower) = formed_with_key(&mut env, "docker/recreate/before");
    let id_before = node_id(&env, &follower).unwrap();

    env.remove(&follower);
    let mut host: u8 = follower.ip.rsplit('.').next().unwrap().parse().unwrap();
    if new_ip {
        host += 20;
    }
    let follower = env.agent(&follower.node, host, &Cluster::server_args(&env));

    let id_after = wait_for(WAIT_START, "the new server answers", || {
        node_id(&env, &follower)
    });
    assert_ne!(id_after, id_before, "an empty data dir means a new node ID");
    wait_for(
        WAIT_CLUSTER,
        "the new server is a voter in place of the old one",
        || {
            let servers = raft_servers(&env, &leader)?;
            let mine = format!("{}:8300", follower.ip);
            let ok = servers.len() == 3
                && servers.iter().all(|s| s.2)
                && servers.iter().any(|s| s.0 == mine && s.1 == id_after);
            if ok {
                Ok(())
            } else {
                Err(format!("{servers:?}"))
            }
        },
    );
    assert_eq!(
        kv_get(&env, &follower, "docker/recreate/before", true).unwrap(),
        "kept",
        "the new server caught up from the leader"
    );
    let servers: Vec<_> = cluster
        .servers
        .iter()
        .map(|s| {
            if s.node == follower.node {
                &follower
            } else {
                s
            }
        })
        .cloned()
        .collect();
    assert_eq!(
        cluster.wait_leader(&env, &servers).node,
        leader.node,
        "the leader kept leading"
    );
    env.http_put(&leader.ip, "/v1/kv/docker/recreate/after", "new")
        .unwrap();
    wait_for(
        WAIT_SHORT,
        "the new server replicates a new write",
        || match kv_get(&env, &follower, "docker/recreate/after", true)? {
            v if v == "new" => Ok(()),
            v => Err(v),
        },
    );
}
