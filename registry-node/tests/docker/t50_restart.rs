//! (e) `docker restart` of a follower: same node ID and data, back in the
//! cluster, and it replicates new writes.

use crate::{Cluster, Env, WAIT_CLUSTER, WAIT_SHORT, kv_get, member_status, wait_for};

/// `Config.NodeID` of `/v1/agent/self`.
fn node_id(env: &Env, n: &crate::Node) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(&env.http_get(&n.ip, "/v1/agent/self")?).map_err(|e| e.to_string())?;
    v["Config"]["NodeID"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("no Config.NodeID in {v}"))
}

#[test]
fn restarted_follower_keeps_its_data_and_rejoins() {
    let mut env = Env::new("restart");
    let cluster = Cluster::start(&mut env, false);
    cluster.wait_formed(&env);
    let leader = cluster.wait_leader(&env, &cluster.servers);
    // A follower that is not s1, the servers' -retry-join target (s1 itself
    // rejoins through the others' reconnect; retry-join is the documented path).
    let follower = cluster
        .servers
        .iter()
        .find(|s| s.node != leader.node && s.node != "s1")
        .unwrap()
        .clone();
    env.http_put(&leader.ip, "/v1/kv/docker/restart/before", "kept")
        .unwrap();
    wait_for(WAIT_SHORT, "the follower has the key locally", || {
        kv_get(&env, &follower, "docker/restart/before", true)
    });
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
