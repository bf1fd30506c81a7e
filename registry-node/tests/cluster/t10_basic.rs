//! Three servers: election, forwarded writes, group commit across servers,
//! read barriers and the leader-related getters.

use std::time::Duration;

use registry_api::Consistency;
use registry_node::state::Response;

use crate::{ELECTION, TestCluster, WAIT, put, set};

/// What this test does:
/// - bootstraps 3 servers and waits for one agreed leader;
/// - writes on a follower: forwarded, acknowledged, applied on all three;
/// - checks `members`, `leader_addr`, `known_leader`, `last_contact_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_write_is_forwarded_and_applied_everywhere() {
    eprintln!("--- step: start 3 servers");
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(WAIT).await;
    let follower = c.follower();

    eprintln!("--- step: write on follower {follower}");
    put(&c, follower, "forwarded", "yes").await;
    c.wait_replicated("forwarded", "yes").await;

    eprintln!("--- step: leader metadata");
    let f = c.node(follower);
    assert_eq!(f.members().len(), 3);
    assert!(f.members().iter().all(|m| m.voter));
    assert_eq!(f.leader_addr(), Some(c.addrs[leader].to_string()));
    assert!(f.known_leader() && c.node(leader).known_leader());
    assert_eq!(c.node(leader).last_contact_ms(), 0);
    assert!(
        f.last_contact_ms() < ELECTION.1.as_millis() as u64,
        "follower heard from the leader recently: {} ms",
        f.last_contact_ms()
    );
    c.shutdown().await;
}

/// What this test does:
/// - fires 200 concurrent writes, spread over all three servers;
/// - all succeed and are applied everywhere, in far fewer log entries than
///   writes (forwarded batches join the leader's group commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_from_all_servers_are_group_committed() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(WAIT).await;
    let before = c
        .node(leader)
        .raft
        .metrics()
        .borrow()
        .last_log_index
        .unwrap_or(0);

    eprintln!("--- step: 200 concurrent writes");
    let mut tasks = Vec::new();
    for k in 0..200 {
        let node = c.node(k % 3).clone();
        tasks.push(tokio::spawn(async move {
            node.write(set(&format!("k{k}"), &format!("v{k}"))).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("write"), Response::Bool(true));
    }
    for k in [0, 99, 199] {
        c.wait_replicated(&format!("k{k}"), &format!("v{k}")).await;
    }
    let after = c
        .node(leader)
        .raft
        .metrics()
        .borrow()
        .last_log_index
        .unwrap_or(0);
    eprintln!("200 writes took {} log entries", after - before);
    assert!(after - before < 200, "writes were batched");
    c.shutdown().await;
}

/// What this test does:
/// - repeatedly writes on the leader and immediately runs a `Consistent`
///   (then `Default`) read barrier on a follower; after the barrier the
///   follower's store must already hold the write;
/// - `Stale` never waits, and a barrier on the leader succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_barrier_on_follower_waits_for_the_latest_write() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(WAIT).await;
    let follower = c.follower();
    for round in 0..20 {
        let value = format!("v{round}");
        put(&c, leader, "latest", &value).await;
        let mode = if round % 2 == 0 {
            Consistency::Consistent
        } else {
            Consistency::Default
        };
        tokio::time::timeout(Duration::from_secs(5), c.node(follower).read_barrier(mode))
            .await
            .expect("barrier is bounded")
            .expect("barrier");
        assert_eq!(
            c.kv(follower, "latest").as_deref(),
            Some(value.as_bytes()),
            "{mode:?} read after barrier sees the write of round {round}"
        );
    }
    c.node(follower)
        .read_barrier(Consistency::Stale)
        .await
        .expect("stale");
    c.node(leader)
        .read_barrier(Consistency::Consistent)
        .await
        .expect("leader barrier");
    c.shutdown().await;
}
