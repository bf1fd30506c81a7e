//! Leader failure: re-election, durability of acknowledged writes, recovery of
//! the old leader from its data dir.

use tokio::time::Instant;

use crate::{TestCluster, WAIT, put};

/// What this test does:
/// - 3 servers; 30 acknowledged writes through all of them;
/// - kills the leader; a new leader is elected (time printed, not asserted);
/// - every acknowledged write is on both survivors; writes work again, also
///   forwarded from the remaining follower;
/// - restarts the old leader on its data dir; it catches up with the writes
///   made while it was down and follows the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_keeps_acknowledged_writes_and_the_old_leader_catches_up() {
    let mut c = TestCluster::start(3).await;
    c.wait_for_leader(WAIT).await;
    eprintln!("--- step: acknowledged writes");
    for k in 0..30 {
        put(&c, k % 3, &format!("before{k}"), "1").await;
    }

    let old = c.leader().expect("leader");
    eprintln!("--- step: kill leader {old}");
    let killed_at = Instant::now();
    c.kill(old).await;
    let new = c.wait_for_leader(WAIT).await;
    let failover = killed_at.elapsed();
    eprintln!("failover: new leader {new} after {failover:?}");
    assert_ne!(new, old);

    eprintln!("--- step: acknowledged writes survived");
    for k in 0..30 {
        c.wait_replicated(&format!("before{k}"), "1").await;
    }
    let started = Instant::now();
    put(&c, new, "after", "1").await;
    eprintln!("first write after failover took {:?}", started.elapsed());
    put(&c, c.follower(), "after-forwarded", "1").await;

    eprintln!("--- step: restart {old} on its data dir");
    c.restart(old).await;
    c.wait_replicated("after", "1").await;
    c.wait_replicated("after-forwarded", "1").await;
    c.wait_replicated("before29", "1").await;
    let id = TestCluster::id(new);
    crate::wait_until(WAIT, "restarted server follows", || {
        c.node(old).leader() == Some(id)
    })
    .await;
    assert!(!c.node(old).is_leader());
    put(&c, old, "from-restarted", "1").await;
    c.wait_replicated("from-restarted", "1").await;
    c.shutdown().await;
}
