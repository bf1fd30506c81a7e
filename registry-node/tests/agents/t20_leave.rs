//! The leader of three leaves gracefully: the other two elect a new leader,
//! keep every acknowledged write, record the leaver as `left` and drop it
//! from Raft and the catalog. It comes back with `-rejoin` and is re-added.

use crate::{WAIT, cluster, eventually, get, members, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_leaves_and_rejoins() {
    let mut c = cluster(3, 0).await;
    for i in 0..20 {
        let (status, _) = put(c.agent(i % 3), &format!("/v1/kv/k{i}"), &format!("{i}")).await;
        assert_eq!(status, 200);
    }
    let old = c.wait_leader().await;
    let old_name = c.nodes[old].opts.node_name.clone();
    c.leave(old).await;

    let new = c.wait_leader().await;
    assert_ne!(new, old);
    let survivor = c.agent(new);
    for i in 0..20 {
        let (status, entry) = get(survivor, &format!("/v1/kv/k{i}")).await;
        assert_eq!(status, 200, "k{i} after the leader left");
        assert!(entry[0]["Value"].is_string());
    }
    let (status, _) = put(survivor, "/v1/kv/after", "x").await;
    assert_eq!(status, 200);
    eventually(WAIT, "the leaver marked left", || async {
        members(c.agent(new))
            .await
            .iter()
            .any(|(n, s)| *n == old_name && *s == 3)
    })
    .await;
    eventually(WAIT, "raft down to two voters", || async {
        get(c.agent(new), "/v1/status/peers")
            .await
            .1
            .as_array()
            .is_some_and(|p| p.len() == 2)
    })
    .await;
    eventually(WAIT, "the leaver's node deregistered", || async {
        let (_, nodes) = get(c.agent(new), "/v1/catalog/nodes").await;
        nodes
            .as_array()
            .is_some_and(|a| a.iter().all(|n| n["Node"] != old_name.as_str()))
    })
    .await;

    // Back with -rejoin: it finds its peers from the data dir and is re-added.
    c.nodes[old].opts.rejoin_after_leave = true;
    c.nodes[old].opts.join.clear();
    c.restart(old).await;
    eventually(WAIT, "raft back to three voters", || async {
        get(c.agent(new), "/v1/status/peers")
            .await
            .1
            .as_array()
            .is_some_and(|p| p.len() == 3)
    })
    .await;
    eventually(WAIT, "the rejoined server has the new write", || async {
        get(c.agent(old), "/v1/kv/after?stale").await.0 == 200
    })
    .await;
    c.shutdown().await;
}
