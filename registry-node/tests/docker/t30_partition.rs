//! (c) Partition: the leader is cut off the network; the other two servers
//! elect a new leader and accept writes; back on the network, the old leader
//! follows and has the writes it missed.

use std::time::{Duration, Instant};

use crate::{Cluster, Env, WAIT_CLUSTER, WAIT_SHORT, kv_get, wait_for};

/// Bound for the majority to elect a new leader and accept a write.
const FAILOVER: Duration = Duration::from_secs(20);

#[test]
fn partitioned_leader_is_replaced_and_catches_up_after_reconnect() {
    let mut env = Env::new("partition");
    let cluster = Cluster::start(&mut env, false);
    cluster.wait_formed(&env);
    let old = cluster.wait_leader(&env, &cluster.servers);
    env.http_put(&old.ip, "/v1/kv/docker/before", "1").unwrap();

    env.disconnect(&old);
    let cut = Instant::now();
    let rest: Vec<_> = cluster
        .servers
        .iter()
        .filter(|s| s.node != old.node)
        .cloned()
        .collect();
    let new = wait_for(FAILOVER, "the other two elect a new leader", || {
        let leaders: Vec<Option<String>> = rest.iter().map(|s| env.leader_of(s)).collect();
        rest.iter()
            .find(|s| {
                leaders
                    .iter()
                    .all(|l| l.as_deref() == Some(&format!("{}:8300", s.ip)))
            })
            .cloned()
            .ok_or_else(|| format!("leaders seen {leaders:?}"))
    });
    // The majority accepts writes, through the new leader and through the follower.
    let follower = rest.iter().find(|s| s.node != new.node).unwrap().clone();
    for (via, key) in [
        (&new, "docker/after-leader"),
        (&follower, "docker/after-follower"),
    ] {
        wait_for(
            FAILOVER
                .saturating_sub(cut.elapsed())
                .max(Duration::from_secs(1)),
            &format!("a write through {} succeeds", via.node),
            || match env.http_put(&via.ip, &format!("/v1/kv/{key}"), "2")? {
                b if b.trim() == "true" => Ok(()),
                b => Err(b),
            },
        );
    }
    eprintln!(
        "  failover: new leader {} and writes within {:?}",
        new.node,
        cut.elapsed()
    );

    // The cut-off old leader cannot commit anything on its own.
    let rogue = env.exec_bounded(
        &old,
        &["kv", "put", "docker/rogue", "split-brain"],
        Duration::from_secs(5),
    );
    match &rogue {
        Ok(out) => {
            assert!(
                !out.status.success(),
                "the isolated old leader accepted a write: {}",
                crate::describe(out)
            );
            eprintln!(
                "  isolated old leader refused a write: {}",
                crate::describe(out)
            );
        }
        Err(e) => eprintln!("  isolated old leader: the write hangs ({e})"),
    }

    env.connect(&old);
    wait_for(
        WAIT_CLUSTER,
        "the old leader follows the new one",
        || match env.leader_of(&old) {
            Some(l) if l == format!("{}:8300", new.ip) => Ok(()),
            other => Err(format!("{} reports leader {other:?}", old.node)),
        },
    );
    for key in [
        "docker/before",
        "docker/after-leader",
        "docker/after-follower",
    ] {
        wait_for(
            WAIT_SHORT,
            &format!("{} has {key} locally", old.node),
            || kv_get(&env, &old, key, true),
        );
    }
    assert_eq!(
        kv_get(&env, &old, "docker/after-leader", true).unwrap(),
        "2"
    );
    let rogue = crate::kv_http(&env, &new, "docker/rogue").unwrap();
    assert_eq!(rogue, None, "the isolated leader's write never commits");
    let mut peers = env.peers_of(&new).unwrap();
    peers.sort();
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert_eq!(cluster.wait_leader(&env, &cluster.servers).node, new.node);
}
