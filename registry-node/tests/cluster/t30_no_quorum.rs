//! Losing quorum: writes and reads fail with `NoLeader` within a bounded time
//! instead of hanging.

use registry_api::Consistency;
use registry_node::raft::WriteError;
use tokio::time::Instant;

use crate::{TestCluster, WAIT, put, set};

use crate::BOUND_NO_LEADER as BOUND;

async fn assert_no_leader(c: &TestCluster, i: usize, what: &str) {
    let started = Instant::now();
    let res = tokio::time::timeout(BOUND, c.node(i).write(set("lost", "x")))
        .await
        .unwrap_or_else(|_| panic!("{what}: write hung for {BOUND:?}"));
    let took = started.elapsed();
    eprintln!("{what}: write failed after {took:?}: {res:?}");
    assert!(matches!(res, Err(WriteError::NoLeader)), "{what}: {res:?}");
    let read = tokio::time::timeout(BOUND, c.node(i).read_barrier(Consistency::Consistent))
        .await
        .unwrap_or_else(|_| panic!("{what}: read barrier hung"));
    assert!(
        matches!(read, Err(WriteError::NoLeader)),
        "{what}: {read:?}"
    );
    c.node(i)
        .read_barrier(Consistency::Stale)
        .await
        .expect("stale reads need no leader");
    assert_eq!(c.kv(i, "lost"), None);
}

/// What this test does:
/// - 2 servers; kill the follower: the leader alone has no quorum, so once
///   its lease runs out, writes and consistent reads fail with `NoLeader`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_lose_the_follower_and_the_leader_refuses() {
    let mut c = TestCluster::start(2).await;
    let leader = c.wait_for_leader(WAIT).await;
    put(&c, leader, "ok", "1").await;
    let follower = c.follower();
    eprintln!("--- step: kill follower {follower}");
    c.kill(follower).await;

    eprintln!("--- step: write while the leader still believes in its quorum");
    // Proposed before the lease ran out: the outcome is unknown, so this may
    // be `Fatal("leadership lost while committing ...")` rather than
    // `NoLeader`, but it must not hang.
    let started = Instant::now();
    let res = tokio::time::timeout(BOUND, c.node(leader).write(set("early", "x")))
        .await
        .expect("early write is bounded");
    eprintln!("early write failed after {:?}: {res:?}", started.elapsed());
    assert!(res.is_err(), "no quorum, no commit: {res:?}");

    eprintln!("--- step: once the lease ran out");
    crate::wait_until(WAIT, "leader no longer known", || {
        !c.node(leader).known_leader()
    })
    .await;
    assert_no_leader(&c, leader, "leader without quorum").await;
    c.shutdown().await;
}

/// What this test does:
/// - 2 servers; kill the leader: the survivor cannot win an election, so
///   writes and consistent reads on it fail with `NoLeader`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_lose_the_leader_and_the_survivor_refuses() {
    let mut c = TestCluster::start(2).await;
    let leader = c.wait_for_leader(WAIT).await;
    let survivor = c.follower();
    put(&c, survivor, "ok", "1").await;
    eprintln!("--- step: kill leader {leader}");
    c.kill(leader).await;
    assert_no_leader(&c, survivor, "survivor without leader").await;
    c.shutdown().await;
}
