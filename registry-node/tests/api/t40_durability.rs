//! Durability in-process: write, shut down, start again on the same data dir:
//! keys, indexes, catalog and sessions are back. (The `kill -9` variant runs
//! the real binary in the `process` suite.)

use super::*;
use registry_node::agent::AgentOptions;

#[tokio::test]
async fn restart_restores_state_with_same_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = AgentOptions::for_test();
    opts.data_dir = Some(dir.path().to_path_buf());
    // --- step: write through a durable node
    let a = TestAgent::start_with(opts.clone()).await;
    for i in 0..50 {
        assert_eq!(
            put(&a, &format!("/v1/kv/d/{i}"), format!("v{i}")).await.1,
            "true"
        );
    }
    let (before, idx_before) = get_json(&a, "/v1/kv/d/?recurse").await;
    a.shutdown().await;
    // --- step: same data dir, new process state
    let b = TestAgent::start_with(opts).await;
    let (after, idx_after) = get_json(&b, "/v1/kv/d/?recurse").await;
    assert_eq!(before, after);
    assert_eq!(idx_before, idx_after);
    b.shutdown().await;
}

#[tokio::test]
async fn snapshot_and_compaction_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = AgentOptions::for_test();
    opts.data_dir = Some(dir.path().to_path_buf());
    opts.raft_snapshot_threshold = 20;
    opts.raft_trailing_logs = 5;
    let a = TestAgent::start_with(opts.clone()).await;
    for i in 0..100 {
        put(&a, &format!("/v1/kv/s/{i}"), format!("{i}")).await;
    }
    let (before, _) = get_json(&a, "/v1/kv/s/?recurse").await;
    let agent = a.handle.agent.clone();
    registry_node::testing::wait_for(std::time::Duration::from_secs(10), "snapshot", || {
        agent
            .server_raft()
            .expect("server")
            .raft
            .metrics()
            .borrow()
            .snapshot
            .is_some()
    })
    .await;
    a.shutdown().await;
    assert!(dir.path().join("raft/snapshots/current.snap").exists());
    let b = TestAgent::start_with(opts).await;
    let (after, _) = get_json(&b, "/v1/kv/s/?recurse").await;
    assert_eq!(before, after);
    b.shutdown().await;
}
