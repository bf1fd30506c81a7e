//! The registry restarted empty (a `-dev` agent): registrations come back.

use registry_node::testing::TestAgent;

use crate::*;

/// - one container registered;
/// - the agent stops; a container starts while it is down (its registration
///   fails as unreachable and stays pending);
/// - a new, empty agent starts on the same port: the pending registration
///   succeeds, the audit that follows notices the first service missing and
///   registers it again. No `-resync` involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_a_registry_restart() {
    setup();
    let agent = TestAgent::start().await;
    let port = agent.handle.http_addr.port();
    let registrator = Registrator::start(&agent, &["-ip=127.0.0.1"]).await;
    let name = unique("t50");
    let svc = format!("SERVICE_NAME={name}");
    let before = Container::run(&unique("t50-before"), &["-p", "8080", "-e", &svc], IMAGE).await;
    wait_catalog(&agent, &name, &[before.service_id(8080)]).await;

    // --- step: registry down, a container starts
    agent.shutdown().await;
    let during = Container::run(&unique("t50-during"), &["-p", "8080", "-e", &svc], IMAGE).await;
    registrator.wait_log("register failed; will retry").await;

    // --- step: an empty registry on the same port
    let agent = agent_on_port(port).await;
    wait_catalog(
        &agent,
        &name,
        &[before.service_id(8080), during.service_id(8080)],
    )
    .await;
    registrator.wait_log("the registry lost services").await;
    drop(registrator);
    agent.shutdown().await;
}
