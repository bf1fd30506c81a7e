//! Gossip features seen through the API: user events reach every agent, node
//! ID conflicts are refused with Consul's message, `force-leave` marks a
//! failed member left.

use registry_node::agent::AgentOptions;
use registry_node::testing::TestAgent;

use crate::{WAIT, cluster, eventually, get, members, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fired_anywhere_reach_every_agent() {
    let c = cluster(1, 2).await;
    let (status, body) = put(c.agent(2), "/v1/event/fire/deploy", "v42").await;
    assert_eq!(status, 200, "{body}");
    for i in 0..3 {
        eventually(WAIT, "the event everywhere", || async {
            let (_, events) = get(c.agent(i), "/v1/event/list?name=deploy").await;
            events.as_array().is_some_and(|a| {
                a.len() == 1 && a[0]["Payload"] == "djQy" // base64("v42")
            })
        })
        .await;
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_with_the_same_node_id_is_refused() {
    let c = cluster(1, 0).await;
    let mut opts = AgentOptions::for_test();
    opts.server = false;
    opts.node_name = "imposter".into();
    opts.node_id = c.nodes[0].opts.node_id.clone();
    let imposter = TestAgent::start_on(
        opts,
        registry_node::agent::Listeners::loopback(false)
            .await
            .expect("bind"),
    )
    .await;
    let (status, body) = put(
        &imposter,
        &format!("/v1/agent/join/127.0.0.1:{}", c.nodes[0].ports.2),
        "",
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("conflicting node ID"), "{body}");
    let m = members(c.agent(0)).await;
    assert!(m.iter().all(|(n, _)| n != "imposter"), "{m:?}");
    imposter.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_leave_marks_a_failed_member_left() {
    let mut c = cluster(1, 1).await;
    let name = c.nodes[1].opts.node_name.clone();
    c.kill(1).await;
    eventually(WAIT, "failed", || async {
        members(c.agent(0))
            .await
            .iter()
            .any(|(n, s)| *n == name && *s == 4)
    })
    .await;
    let (status, body) = put(c.agent(0), &format!("/v1/agent/force-leave/{name}"), "").await;
    assert_eq!(status, 200, "{body}");
    eventually(WAIT, "left", || async {
        members(c.agent(0))
            .await
            .iter()
            .any(|(n, s)| *n == name && *s == 3)
    })
    .await;
    eventually(WAIT, "node deregistered", || async {
        let (_, nodes) = get(c.agent(0), "/v1/catalog/nodes").await;
        nodes
            .as_array()
            .is_some_and(|a| a.iter().all(|n| n["Node"] != name.as_str()))
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_rotation_reaches_every_member() {
    use registry_node::gossip::{Keyring, KeyringOp, keygen};
    use registry_node::testing::TestCluster;

    let old = keygen();
    let new = keygen();
    let mut c = TestCluster::empty();
    for i in 0..3 {
        let mut opts = c.options(i == 0, 1);
        opts.gossip.keyring = Some(Keyring::new(&old).expect("key"));
        c.add_with(opts).await;
    }
    c.wait_leader().await;
    c.wait_members_alive(3).await;

    let a = c.agent(1);
    for (method, key) in [("POST", &new), ("PUT", &new), ("DELETE", &old)] {
        let resp = a
            .http
            .request(
                method.parse().expect("method"),
                a.url("/v1/operator/keyring"),
            )
            .body(format!(r#"{{"Key": "{key}"}}"#))
            .send()
            .await
            .expect("keyring call");
        assert_eq!(resp.status(), 200, "{method} {key}");
    }
    for i in 0..3 {
        let gossip = c.agent(i).agent().gossip.clone();
        let new = new.clone();
        eventually(WAIT, "only the new key everywhere", || {
            let gossip = gossip.clone();
            let new = new.clone();
            async move { gossip.keyring(KeyringOp::List).await.ok() == Some(vec![new]) }
        })
        .await;
    }
    // The pool still talks: an event fired now reaches everyone.
    let (status, _) = put(c.agent(2), "/v1/event/fire/rotated", "").await;
    assert_eq!(status, 200);
    for i in 0..3 {
        eventually(WAIT, "event after rotation", || async {
            let (_, events) = get(c.agent(i), "/v1/event/list?name=rotated").await;
            events.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    }
    c.shutdown().await;
}
