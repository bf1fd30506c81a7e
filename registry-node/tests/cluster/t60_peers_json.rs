//! Manual outage recovery with `raft/peers.json`: survivors of a permanent
//! loss of quorum get a new configuration from the file, elect a leader
//! among themselves and keep every acknowledged write.

use std::collections::BTreeSet;

use registry_node::raft::WriteError;
use registry_node::raft::recovery::PEERS_FILE;

use crate::{BOUND_NO_LEADER, TestCluster, WAIT, put, set};

/// A node-ID UUID whose Raft ID is server `i`'s (`node_id_from_uuid` reads
/// the first 16 hex digits).
fn node_uuid(i: usize) -> String {
    format!("00000000-0000-{:04x}-0000-000000000000", TestCluster::id(i))
}

/// Writes a protocol 3 `peers.json` listing `servers` (all voters) into server `on`'s data dir.
fn write_peers(c: &TestCluster, on: usize, servers: &[usize]) {
    let entries: Vec<String> = servers
        .iter()
        .map(|&i| {
            format!(
                r#"{{"id": "{}", "address": "{}", "non_voter": false}}"#,
                node_uuid(i),
                c.addrs[i]
            )
        })
        .collect();
    let text = format!("[\n  {}\n]\n", entries.join(",\n  "));
    std::fs::write(c.raft_dir(on).join(PEERS_FILE), text).expect("write peers.json");
}

fn peers_json_exists(c: &TestCluster, i: usize) -> bool {
    c.raft_dir(i).join(PEERS_FILE).exists()
}

fn voters(c: &TestCluster, i: usize) -> BTreeSet<u64> {
    c.node(i)
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

/// What this test does:
/// - 3 servers; 20 acknowledged writes;
/// - kills two servers for good: the survivor has no quorum, a write on it
///   fails with `NoLeader`;
/// - stops the survivor, puts a `peers.json` listing only it, restarts it:
///   it elects itself, has every acknowledged write, takes new writes, and
///   the file is gone;
/// - restarts it once more without the file: the configuration stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_survivor_recovers_from_peers_json() {
    let mut c = TestCluster::start(3).await;
    c.wait_for_leader(WAIT).await;
    eprintln!("--- step: acknowledged writes");
    for k in 0..20 {
        put(&c, k % 3, &format!("k{k}"), "1").await;
    }
    c.wait_replicated("k19", "1").await;

    let survivor = c.follower();
    for i in 0..3 {
        if i != survivor {
            eprintln!("--- step: lose server {i} for good");
            c.kill(i).await;
        }
    }
    eprintln!("--- step: the survivor {survivor} has no quorum");
    let res = tokio::time::timeout(BOUND_NO_LEADER, c.node(survivor).write(set("lost", "x")))
        .await
        .expect("write without quorum is bounded");
    assert!(matches!(res, Err(WriteError::NoLeader)), "{res:?}");

    eprintln!("--- step: stop the survivor, write peers.json, restart it");
    c.kill(survivor).await;
    write_peers(&c, survivor, &[survivor]);
    c.restart(survivor).await;
    assert!(
        !peers_json_exists(&c, survivor),
        "peers.json is deleted once ingested"
    );
    assert_eq!(c.wait_for_leader(WAIT).await, survivor);
    assert_eq!(
        voters(&c, survivor),
        BTreeSet::from([TestCluster::id(survivor)])
    );
    for k in 0..20 {
        assert_eq!(
            c.kv(survivor, &format!("k{k}")).as_deref(),
            Some(&b"1"[..]),
            "k{k}"
        );
    }
    // The survivor was a follower: the refused write never reached its log
    // (a former leader's log would hold it, and recovery would commit it).
    assert_eq!(c.kv(survivor, "lost"), None);
    put(&c, survivor, "after", "1").await;

    eprintln!("--- step: restart without the file: the new configuration stays");
    c.kill(survivor).await;
    c.restart(survivor).await;
    assert_eq!(c.wait_for_leader(WAIT).await, survivor);
    assert_eq!(c.kv(survivor, "after").as_deref(), Some(&b"1"[..]));
    put(&c, survivor, "after-restart", "1").await;
    c.shutdown().await;
}

/// What this test does:
/// - 3 servers; writes; server 2 is lost for good, more writes are
///   committed by the other two; then they stop as well;
/// - the same `peers.json` listing servers 0 and 1 goes on both; both
///   restart, elect a leader between them with exactly them as voters, have
///   every acknowledged write and take new ones, and both files are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_survivors_recover_from_the_same_peers_json() {
    let mut c = TestCluster::start(3).await;
    c.wait_for_leader(WAIT).await;
    eprintln!("--- step: acknowledged writes");
    for k in 0..10 {
        put(&c, k % 3, &format!("k{k}"), "1").await;
    }
    eprintln!("--- step: lose server 2 for good; more writes on 0 and 1");
    c.kill(2).await;
    c.wait_for_leader(WAIT).await;
    for k in 10..20 {
        put(&c, k % 2, &format!("k{k}"), "1").await;
    }
    c.wait_replicated("k19", "1").await;
    eprintln!("--- step: stop both survivors");
    c.kill(0).await;
    c.kill(1).await;

    eprintln!("--- step: same peers.json on both, restart both");
    for i in [0, 1] {
        write_peers(&c, i, &[0, 1]);
    }
    c.restart(0).await;
    c.restart(1).await;
    let leader = c.wait_for_leader(WAIT).await;
    eprintln!("leader after recovery: {leader}");
    let want = BTreeSet::from([TestCluster::id(0), TestCluster::id(1)]);
    for i in [0, 1] {
        assert!(!peers_json_exists(&c, i), "server {i} deleted peers.json");
        assert_eq!(voters(&c, i), want, "server {i}");
    }
    for k in 0..20 {
        c.wait_replicated(&format!("k{k}"), "1").await;
    }
    put(&c, c.follower(), "after", "1").await;
    c.wait_replicated("after", "1").await;
    c.shutdown().await;
}

/// What this test does:
/// - 1 server with data; a bad `peers.json` (not JSON, empty list, repeated
///   ID) makes its start fail with an error naming the file, which stays;
/// - without the file it starts as before, data intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_peers_json_fails_the_start_and_stays() {
    let mut c = TestCluster::start(1).await;
    c.wait_for_leader(WAIT).await;
    put(&c, 0, "k", "1").await;
    c.kill(0).await;
    let path = c.raft_dir(0).join(PEERS_FILE);
    let dup = format!(
        r#"[{{"id": "{0}", "address": "{1}"}}, {{"id": "{0}", "address": "127.0.0.1:1"}}]"#,
        node_uuid(0),
        c.addrs[0]
    );
    for (text, why) in [
        ("[{\"id\": ", "bad JSON"),
        ("[]", "lists no servers"),
        (dup.as_str(), "listed twice"),
    ] {
        eprintln!("--- step: start with peers.json {text:?}");
        std::fs::write(&path, text).expect("write peers.json");
        let err = c.try_restart(0).await.expect_err("start fails");
        let msg = format!("{err:#}");
        eprintln!("start failed: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(why), "{msg}");
        assert!(path.exists(), "a refused file stays in place");
    }

    eprintln!("--- step: without the file it starts as before");
    std::fs::remove_file(&path).expect("remove peers.json");
    c.restart(0).await;
    c.wait_for_leader(WAIT).await;
    assert_eq!(c.kv(0, "k").as_deref(), Some(&b"1"[..]));
    put(&c, 0, "k2", "1").await;
    c.shutdown().await;
}
