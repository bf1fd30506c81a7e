//! Membership changes: a 4th server joins as learner, is promoted to voter,
//! and is removed again.

use std::sync::{Arc, Mutex};

use registry_node::raft::Member;

use crate::{TestCluster, WAIT, put};

/// What this test does:
/// - 3 servers with data; a pristine 4th server is added by the leader;
/// - the leader's membership shows it as a learner first, then as a voter;
///   it has the old data and receives new writes;
/// - membership changes on a follower are refused with `NotLeader`;
/// - `remove_server` shrinks the membership back to 3 and writes still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_server_joins_as_learner_then_voter_and_remove_server_shrinks() {
    let mut c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(WAIT).await;
    for k in 0..10 {
        put(&c, leader, &format!("old{k}"), "1").await;
    }
    assert!(
        !c.node(c.follower())
            .bootstrap_cluster(Default::default())
            .await
            .expect("bootstrap"),
        "not pristine"
    );

    let follower = c.follower();
    eprintln!("--- step: start a 4th server");
    let new = c.add_node().await;
    let new_id = TestCluster::id(new);
    let pristine = c
        .node(leader)
        .ping(&c.addrs[new].to_string(), WAIT)
        .await
        .expect("ping new server");
    assert_eq!((pristine.id, pristine.initialized), (new_id, false));
    let member = c
        .node(new)
        .ping(&c.addrs[leader].to_string(), WAIT)
        .await
        .expect("ping leader");
    assert!(member.initialized);
    assert_eq!(member.leader, Some(TestCluster::id(leader)));

    // Record every membership the leader goes through.
    let seen: Arc<Mutex<Vec<Vec<Member>>>> = Arc::default();
    let watcher = {
        let (node, seen) = (c.node(leader).clone(), seen.clone());
        tokio::spawn(async move {
            let mut rx = node.raft.metrics();
            loop {
                seen.lock().expect("lock").push(node.members());
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
    };

    let err = c
        .node(follower)
        .add_server(new_id, c.addrs[new].to_string())
        .await
        .expect_err("followers do not change membership");
    assert!(err.is_not_leader(), "{err}");

    eprintln!("--- step: add_server");
    c.node(leader)
        .add_server(new_id, c.addrs[new].to_string())
        .await
        .expect("add server");
    let members = c.node(leader).members();
    assert_eq!(members.len(), 4);
    assert!(members.iter().all(|m| m.voter), "{members:?}");
    watcher.abort();
    let seen = seen.lock().expect("lock").clone();
    let learner_at = seen
        .iter()
        .position(|ms| ms.iter().any(|m| m.id == new_id && !m.voter))
        .expect("was a learner");
    let voter_at = seen
        .iter()
        .position(|ms| ms.iter().any(|m| m.id == new_id && m.voter))
        .expect("became a voter");
    assert!(learner_at < voter_at, "learner first, then voter");

    c.wait_replicated("old9", "1").await;
    put(&c, new, "via-new", "1").await;
    c.wait_replicated("via-new", "1").await;

    eprintln!("--- step: remove_server");
    c.node(leader)
        .remove_server(new_id)
        .await
        .expect("remove server");
    crate::wait_until(WAIT, "membership shrinks everywhere", || {
        (0..3).all(|i| {
            let ms = c.node(i).members();
            ms.len() == 3 && ms.iter().all(|m| m.id != new_id)
        })
    })
    .await;
    c.kill(new).await;
    let err = c
        .node(leader)
        .ping(&c.addrs[new].to_string(), WAIT)
        .await
        .expect_err("killed server");
    // A connection pooled before the kill may report a broken call instead of a
    // refused connect; either way the dead server did not answer.
    assert!(
        !matches!(
            err,
            registry_node::rpc::RpcError::Remote { .. }
                | registry_node::rpc::RpcError::Unexpected { .. }
        ),
        "{err}"
    );
    put(&c, leader, "after-remove", "1").await;
    c.wait_replicated("after-remove", "1").await;
    c.shutdown().await;
}

/// What this test does:
/// - 3 servers that snapshot every 20 entries and keep no trailing log;
/// - 60 writes, so the leader's log is purged past the start;
/// - a pristine 4th server added by the leader can only catch up through
///   `InstallSnapshot` (chunked, over the RPC transport); it then has all
///   the data and follows new writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_catches_up_through_an_installed_snapshot() {
    let mut c = TestCluster::start_with(3, |o| {
        o.snapshot_threshold = 20;
        o.trailing_logs = 0;
    })
    .await;
    let leader = c.wait_for_leader(WAIT).await;
    for k in 0..60 {
        put(&c, leader, &format!("s{k}"), "1").await;
    }
    crate::wait_until(WAIT, "leader purged its log", || {
        let m = c.node(leader).raft.metrics().borrow().clone();
        m.purged.is_some_and(|p| p.index > 10)
    })
    .await;

    eprintln!("--- step: add a 4th server");
    let new = c.add_node().await;
    c.node(leader)
        .add_server(TestCluster::id(new), c.addrs[new].to_string())
        .await
        .expect("add server");
    let m = c.node(new).raft.metrics().borrow().clone();
    eprintln!(
        "new server: snapshot {:?}, purged {:?}, applied {:?}",
        m.snapshot, m.purged, m.last_applied
    );
    assert!(m.snapshot.is_some(), "the new server installed a snapshot");
    for k in [0, 30, 59] {
        c.wait_replicated(&format!("s{k}"), "1").await;
    }
    put(&c, new, "after-snapshot", "1").await;
    c.wait_replicated("after-snapshot", "1").await;
    c.shutdown().await;
}
