//! A partitioned leader: the majority moves on, the old leader stops
//! accepting writes and reads, and after healing it follows and converges.

use registry_api::Consistency;
use tokio::time::Instant;

use crate::{BOUND_NO_LEADER, TestCluster, WAIT, put, set};

/// What this test does:
/// - 3 servers; isolates the leader at the transport (both directions);
/// - the other two elect a new leader and accept writes;
/// - a write proposed on the old leader right after the cut fails (bounded)
///   without committing; later writes and consistent reads fail with
///   `NoLeader` instead of serving stale data;
/// - heals the partition: the old leader follows the new one, its
///   uncommitted write is gone, and all three converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_steps_aside_and_converges_after_healing() {
    let c = TestCluster::start(3).await;
    let old = c.wait_for_leader(WAIT).await;
    put(&c, old, "before", "1").await;
    c.wait_replicated("before", "1").await;

    eprintln!("--- step: isolate leader {old}");
    let cut_at = Instant::now();
    c.isolate(old, true);
    // Proposed at once, under the old leader's lease: appended to its log
    // only, never committed, and it must fail rather than hang.
    let early = {
        let node = c.node(old).clone();
        tokio::spawn(async move { node.write(set("minority-early", "x")).await })
    };
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let mut new = None;
    crate::wait_until(WAIT, "majority elects a new leader", || {
        new = others.iter().copied().find(|i| c.node(*i).is_leader());
        new.is_some_and(|n| {
            others
                .iter()
                .all(|i| c.node(*i).leader() == Some(TestCluster::id(n)))
        })
    })
    .await;
    let new = new.expect("new leader");
    eprintln!("partition: new leader {new} after {:?}", cut_at.elapsed());
    put(&c, new, "majority", "1").await;

    let early = tokio::time::timeout(BOUND_NO_LEADER, early)
        .await
        .expect("early write is bounded")
        .expect("join");
    eprintln!("isolated leader: early write: {early:?}");
    assert!(early.is_err(), "{early:?}");

    eprintln!("--- step: old leader refuses");
    let started = Instant::now();
    let res = tokio::time::timeout(BOUND_NO_LEADER, c.node(old).write(set("minority", "x")))
        .await
        .expect("write on the isolated leader is bounded");
    eprintln!(
        "isolated leader: write failed after {:?}: {res:?}",
        started.elapsed()
    );
    assert!(res.is_err_and(|e| e.is_no_leader()));
    let read = tokio::time::timeout(
        BOUND_NO_LEADER,
        c.node(old).read_barrier(Consistency::Consistent),
    )
    .await
    .expect("read barrier is bounded");
    assert!(read.is_err_and(|e| e.is_no_leader()));

    eprintln!("--- step: heal");
    c.isolate(old, false);
    let id = TestCluster::id(new);
    crate::wait_until(WAIT, "old leader follows", || {
        c.node(old).leader() == Some(id)
    })
    .await;
    c.wait_replicated("majority", "1").await;
    put(&c, old, "healed", "1").await;
    c.wait_replicated("healed", "1").await;
    for i in 0..3 {
        assert_eq!(
            c.kv(i, "minority"),
            None,
            "uncommitted write discarded on {i}"
        );
    }
    c.shutdown().await;
}
