//! A network partition injected at the transport (gossip datagrams dropped,
//! server RPC unreachable): the isolated leader loses its lease and refuses
//! writes, the majority elects and serves the client, and after healing the
//! old leader follows and has every acknowledged write.

use crate::{WAIT, cluster, eventually, get, members, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_steps_aside_and_catches_up() {
    let c = cluster(3, 1).await;
    let old = c.wait_leader().await;
    let old_name = c.nodes[old].opts.node_name.clone();
    c.isolate(old, true);

    eventually(WAIT, "a new leader among the majority", || async {
        (0..3)
            .filter(|i| *i != old)
            .any(|i| c.agent(i).raft().is_leader())
    })
    .await;
    let (status, body) = put(c.agent(old), "/v1/kv/minority", "lost").await;
    assert_eq!(status, 500, "the isolated leader must refuse: {body}");
    assert!(body.contains("No cluster leader"), "{body}");
    // The client keeps working through a server of the majority.
    eventually(WAIT, "client writes during the partition", || async {
        put(c.agent(3), "/v1/kv/majority", "kept").await.0 == 200
    })
    .await;
    eventually(WAIT, "the isolated server seen failed", || async {
        members(c.agent(3))
            .await
            .iter()
            .any(|(n, s)| *n == old_name && *s == 4)
    })
    .await;

    c.isolate(old, false);
    eventually(WAIT, "the old leader catches up", || async {
        get(c.agent(old), "/v1/kv/majority?stale").await.0 == 200
    })
    .await;
    assert_eq!(get(c.agent(old), "/v1/kv/minority?stale").await.0, 404);
    c.wait_leader().await;
    eventually(WAIT, "all members alive again", || async {
        members(c.agent(3)).await.iter().all(|(_, s)| *s == 1)
    })
    .await;
    c.shutdown().await;
}
