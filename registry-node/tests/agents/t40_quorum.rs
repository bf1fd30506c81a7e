//! Two servers with `-bootstrap-expect=2`: losing one leaves no leader, and
//! the cluster says so quickly (500 `No cluster leader`); the server comes
//! back and the cluster recovers with its data.

use std::time::{Duration, Instant};

use crate::{WAIT, cluster, eventually, get, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_losing_one_have_no_leader_until_it_returns() {
    let mut c = cluster(2, 0).await;
    let (status, _) = put(c.agent(0), "/v1/kv/before", "1").await;
    assert_eq!(status, 200);
    let follower = 1 - c.wait_leader().await;
    let gone = 1 - follower;
    c.kill(gone).await;

    eventually(WAIT, "no leader on the survivor", || async {
        get(c.agent(follower), "/v1/status/leader").await.1 == ""
    })
    .await;
    let started = Instant::now();
    let (status, body) = put(c.agent(follower), "/v1/kv/during", "2").await;
    let took = started.elapsed();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("No cluster leader"), "{body}");
    // A hang detector, not a benchmark: the design bound is about 2 s.
    assert!(took < Duration::from_secs(10), "refusal took {took:?}");
    let (status, _) = get(c.agent(follower), "/v1/kv/before").await;
    assert_eq!(status, 500, "a default read without a leader fails too");
    let (status, entry) = get(c.agent(follower), "/v1/kv/before?stale").await;
    assert_eq!(status, 200, "a stale read is served: {entry}");

    c.restart(gone).await;
    c.wait_leader().await;
    eventually(WAIT, "writes accepted again", || async {
        put(c.agent(follower), "/v1/kv/after", "3").await.0 == 200
    })
    .await;
    let (status, _) = get(c.agent(gone), "/v1/kv/before").await;
    assert_eq!(status, 200);
    c.shutdown().await;
}
