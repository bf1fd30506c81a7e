//! `-cleanup` after a registrator crash.

use registry_node::testing::TestAgent;
use serde_json::json;

use crate::*;

/// - registrator registers two containers and is SIGKILLed;
/// - one container stops while it is down; dangling entries are added by hand:
///   one of this host matching the ID pattern, one of another host, one custom ID;
/// - a new registrator with `-cleanup` removes the stopped container's service and
///   the dangling one of this host, and keeps the running container's and the
///   two that are not its business.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_what_died_while_down() {
    setup();
    let agent = TestAgent::start().await;
    let first = Registrator::start(&agent, &["-ip=127.0.0.1"]).await;
    let name = unique("t30");
    let svc = format!("SERVICE_NAME={name}");
    let alive = Container::run(&unique("t30-alive"), &["-p", "8080", "-e", &svc], IMAGE).await;
    let dead = Container::run(&unique("t30-dead"), &["-p", "8080", "-e", &svc], IMAGE).await;
    wait_catalog(
        &agent,
        &name,
        &[alive.service_id(8080), dead.service_id(8080)],
    )
    .await;

    // --- step: crash, a container stops meanwhile
    first.kill().await;
    dead.stop().await;
    let ghost = format!("{}:{}:80", hostname(), unique("t30-ghost"));
    let other_host = format!("some-other-host:{}:80", unique("t30-ghost"));
    let custom = unique("t30-custom-id");
    for id in [&ghost, &other_host, &custom] {
        let body = json!({"ID": id, "Name": name, "Port": 80, "Address": "127.0.0.1"});
        let r = agent
            .http
            .put(agent.url("/v1/agent/service/register"))
            .json(&body)
            .send()
            .await
            .expect("register");
        assert!(r.status().is_success(), "{id}: {}", r.status());
    }
    let mut before = vec![
        alive.service_id(8080),
        dead.service_id(8080),
        ghost.clone(),
        other_host.clone(),
        custom.clone(),
    ];
    before.sort();
    assert_eq!(catalog_ids(&agent, &name).await, before);

    // --- step: restart with -cleanup
    let second = Registrator::start(&agent, &["-ip=127.0.0.1", "-cleanup"]).await;
    wait_catalog(&agent, &name, &[alive.service_id(8080), other_host, custom]).await;
    second.wait_log(&format!("dangling: {ghost}")).await;
    drop(second);
    agent.shutdown().await;
}
