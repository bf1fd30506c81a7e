//! (b) Three servers (`-bootstrap-expect=3`, `-retry-join`) and a client agent:
//! membership, election, Raft peers, a write through the client read everywhere.

use crate::{Cluster, Env, WAIT_SHORT, kv_get, members, wait_for};

#[test]
fn three_servers_and_a_client_form_a_cluster() {
    let mut env = Env::new("cluster");
    let cluster = Cluster::start(&mut env, true);
    let client = cluster.client.clone().unwrap();
    cluster.wait_formed(&env);

    // `members` inside the client: 4 nodes alive, servers first (Consul's order).
    let list = members(&env, &client).unwrap();
    let rows: Vec<(&str, &str, &str)> = list
        .iter()
        .map(|m| (m.node.as_str(), m.status.as_str(), m.kind.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("s1", "alive", "server"),
            ("s2", "alive", "server"),
            ("s3", "alive", "server"),
            ("c1", "alive", "client"),
        ],
        "{list:?}"
    );

    // Every agent, the client included, knows the leader.
    let leader = cluster.wait_leader(&env, &cluster.servers);
    let leader_addr = format!("{}:8300", leader.ip);
    wait_for(WAIT_SHORT, "the client reports the leader", || {
        match env.leader_of(&client) {
            Some(l) if l == leader_addr => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    for s in &cluster.servers {
        let mut peers = env.peers_of(s).unwrap();
        peers.sort();
        assert_eq!(peers.len(), 3, "peers on {}: {peers:?}", s.node);
    }

    // A write through the client's HTTP API (forwarded to the leader) ...
    let body = env
        .http_put(&client.ip, "/v1/kv/docker/cluster", "written via c1")
        .unwrap();
    assert_eq!(body.trim(), "true");
    // ... reads back from every server: consistent reads at once, and each
    // server's own replica (-stale) once replicated.
    for s in &cluster.servers {
        assert_eq!(
            kv_get(&env, s, "docker/cluster", false).unwrap(),
            "written via c1",
            "consistent read on {}",
            s.node
        );
        wait_for(
            WAIT_SHORT,
            &format!("{} has the key locally", s.node),
            || match kv_get(&env, s, "docker/cluster", true)? {
                v if v == "written via c1" => Ok(()),
                v => Err(v),
            },
        );
    }
    // The client's catalog view lists every node.
    let nodes: serde_json::Value =
        serde_json::from_str(&env.http_get(&client.ip, "/v1/catalog/nodes").unwrap()).unwrap();
    let mut names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["Node"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["c1", "s1", "s2", "s3"]);
}
