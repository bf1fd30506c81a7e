//! (a) One server in a container, driven through the CLI inside it.

use crate::{Env, WAIT_START, describe, kv_get, members, stdout, wait_for};

#[test]
fn single_server_elects_itself_and_serves_kv_through_the_cli() {
    let mut env = Env::new("single");
    let ip = env.ip(10);
    let s1 = env.start(
        "s1",
        10,
        &[
            "agent",
            "-server",
            "-bootstrap-expect=1",
            "-node=s1",
            "-bind=0.0.0.0",
            &format!("-advertise={ip}"),
            "-client=0.0.0.0",
            "-data-dir=/data",
        ]
        .map(String::from),
    );

    let leader = wait_for(WAIT_START, "s1 reports a leader", || {
        env.leader_of(&s1)
            .ok_or_else(|| "no leader yet".to_string())
    });
    assert_eq!(
        leader,
        format!("{ip}:8300"),
        "s1 leads itself on its advertise address"
    );

    let out = env.exec(
        &s1,
        &["kv", "put", "docker/single", "hello from a container"],
    );
    assert!(out.status.success(), "kv put: {}", describe(&out));
    assert_eq!(
        stdout(&out).trim(),
        "Success! Data written to: docker/single",
        "Consul's kv put message"
    );
    assert_eq!(
        kv_get(&env, &s1, "docker/single", false).unwrap(),
        "hello from a container"
    );
    // The same key over HTTP from the host.
    let body = env.http_get(&s1.ip, "/v1/kv/docker/single?raw").unwrap();
    assert_eq!(body, "hello from a container");

    let list = members(&env, &s1).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].node, "s1");
    assert_eq!(list[0].address, format!("{ip}:8301"));
    assert_eq!(list[0].status, "alive");
    assert_eq!(list[0].kind, "server");

    let out = env.exec(&s1, &["kv", "get", "docker/missing"]);
    assert!(
        !out.status.success(),
        "kv get of a missing key fails: {}",
        describe(&out)
    );
}
