//! Forming a cluster: `-bootstrap-expect=3` servers elect once they see each
//! other, a client joins, every agent sees every member, and the client
//! forwards reads and writes to the servers.

use std::net::SocketAddr;

use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

use crate::{WAIT, cluster, eventually, get, members, put};

/// One question over UDP (EDNS-less; the answers here are small).
async fn dns_query(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut req = Message::query();
    req.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.send_to(&req.to_vec().expect("encode"), addr)
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, sock.recv(&mut buf))
        .await
        .expect("DNS reply in time")
        .expect("recv");
    Message::from_vec(&buf[..n]).expect("decode")
}

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
    // The client agent answers DNS through a server, with its own options.
    let dns = client.handle.dns_addr.expect("client serves DNS");
    let srv = dns_query(dns, "consul.service.consul.", RecordType::SRV).await;
    assert_eq!(srv.metadata.response_code, ResponseCode::NoError);
    assert_eq!(srv.answers.len(), 3, "{srv:?}");
    let glue = srv
        .additionals
        .iter()
        .filter(|r| r.record_type() == RecordType::A);
    assert_eq!(glue.count(), 3, "{srv:?}");
    let ns = dns_query(dns, "consul.", RecordType::NS).await;
    assert_eq!(ns.answers.len(), 3, "{ns:?}");
    let none = dns_query(dns, "nope.service.consul.", RecordType::A).await;
    assert_eq!(none.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(none.authorities.len(), 1);
    // A reverse lookup of a server's address names a node.
    let ptr = dns_query(dns, "1.0.0.127.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(ptr.metadata.response_code, ResponseCode::NoError);
    assert!(
        ptr.answers
            .iter()
            .all(|r| r.data.to_string().ends_with(".node.dc1.consul.")),
        "{ptr:?}"
    );

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
