//! Seed 003: agents in containers on one host with host-derived node IDs
//! (`-disable-host-node-id=false`) get the same ID, and the second join is
//! refused with Consul's node-ID conflict message; with the default (random
//! IDs, `-disable-host-node-id`) the same containers join.

use crate::{Env, WAIT_START, describe, stdout, wait_for};

#[test]
fn containers_with_host_derived_ids_conflict_unless_disabled() {
    let mut env = Env::new("nodeid");
    let s1_ip = env.ip(10);
    let host_ids = "-disable-host-node-id=false".to_string();
    let s1 = env.agent(
        "node1",
        10,
        &[
            "-server".into(),
            "-bootstrap-expect=1".into(),
            host_ids.clone(),
        ],
    );
    wait_for(WAIT_START, "node1 leads", || {
        env.leader_of(&s1)
            .ok_or_else(|| "no leader yet".to_string())
    });
    let node2 = env.agent("node2", 11, &[host_ids]);
    let out = env.exec(&node2, &["join", &s1_ip]);
    assert!(
        !out.status.success(),
        "the join must fail: {}",
        describe(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflicting node ID"),
        "Consul's conflict message expected: {}",
        describe(&out)
    );

    // The seed's fix: -disable-host-node-id (random IDs, the default anyway).
    let node3 = env.agent("node3", 12, &["-disable-host-node-id".into()]);
    let out = wait_for(WAIT_START, "node3 joins node1", || {
        let out = env.exec(&node3, &["join", &s1_ip]);
        if out.status.success() {
            Ok(out)
        } else {
            Err(describe(&out))
        }
    });
    assert!(
        stdout(&out).contains("Successfully joined cluster"),
        "{}",
        describe(&out)
    );
}
