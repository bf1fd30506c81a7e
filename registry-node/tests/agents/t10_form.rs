//! Forming a cluster: `-bootstrap-expect=3` servers elect once they see each
//! other, a client joins, every agent sees every member, and the client
//! forwards reads and writes to the servers.

use crate::{WAIT, cluster, eventually, get, members, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_and_a_client_form_one_cluster() {
    let c = cluster(3, 1).await;
    let client = c.agent(3);

    // Every agent, the client included, lists the four members alive.
    for i in 0..4 {
        let m = members(c.agent(i)).await;
        assert_eq!(m.len(), 4, "agent {i} sees {m:?}");
        assert!(m.iter().all(|(_, s)| *s == 1), "agent {i} sees {m:?}");
    }
    // Raft has the three servers as voters; the client's API answers it too.
    let (status, peers) = get(client, "/v1/status/peers").await;
    assert_eq!(status, 200);
    assert_eq!(peers.as_array().expect("peers").len(), 3, "{peers}");
    let (_, leader) = get(client, "/v1/status/leader").await;
    assert!(!leader.as_str().expect("leader").is_empty());

    // A write through the client is readable on every server.
    let (status, body) = put(client, "/v1/kv/web/config", "v1").await;
    assert_eq!((status, body.trim()), (200, "true"));
    for i in 0..3 {
        let (status, entry) = get(c.agent(i), "/v1/kv/web/config?stale").await;
        if status == 404 {
            // Replication to this follower may still be on its way.
            eventually(WAIT, "replicated key", || async {
                get(c.agent(i), "/v1/kv/web/config?stale").await.0 == 200
            })
            .await;
            continue;
        }
        assert_eq!(status, 200, "server {i}: {entry}");
        assert_eq!(entry[0]["Value"], "djE="); // base64("v1")
    }
    // A blocking read through the client returns when a server-side write lands.
    let (_, entry) = get(client, "/v1/kv/web/config").await;
    let index = entry[0]["ModifyIndex"].as_u64().expect("index");
    let blocked = {
        let http = client.http.clone();
        let url = client.url(&format!("/v1/kv/web/config?index={index}&wait=20s"));
        tokio::spawn(async move { http.get(url).send().await.expect("GET").text().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, _) = put(c.agent(0), "/v1/kv/web/config", "v2").await;
    assert_eq!(status, 200);
    let text = tokio::time::timeout(WAIT, blocked)
        .await
        .expect("blocking read released")
        .expect("task")
        .expect("body");
    assert!(text.contains("djI="), "{text}");

    // The catalog holds every node with a passing serfHealth check.
    eventually(WAIT, "four nodes with serfHealth passing", || async {
        let (_, checks) = get(c.agent(0), "/v1/health/state/passing").await;
        checks
            .as_array()
            .map(|a| a.iter().filter(|c| c["CheckID"] == "serfHealth").count())
            == Some(4)
    })
    .await;
    // Every server is an instance of the `consul` service.
    eventually(WAIT, "three consul instances", || async {
        let (_, rows) = get(client, "/v1/catalog/service/consul").await;
        rows.as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    // A service registered on the client is discoverable from a server.
    let (status, _) = put(
        client,
        "/v1/agent/service/register",
        r#"{"Name": "web", "Port": 8080}"#,
    )
    .await;
    assert_eq!(status, 200);
    eventually(WAIT, "client's service in the catalog", || async {
        let (_, nodes) = get(c.agent(1), "/v1/health/service/web?passing").await;
        nodes.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    c.shutdown().await;
}
