//! The Docker connection cut and restored (a daemon restart as registrator sees it).

use registry_node::testing::TestAgent;

use crate::proxy::DockerProxy;
use crate::*;

/// - registrator talks to Docker through a relay; two containers are registered;
/// - the relay drops every connection and refuses new ones; meanwhile one
///   container starts and another stops (events registrator cannot see);
/// - once restored, registrator reconnects and the registry converges: the new
///   container is registered, the stopped one is gone (no -cleanup needed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_converges_after_a_cut() {
    setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut proxy = DockerProxy::start(&dir.path().join("docker.sock"));
    let agent = TestAgent::start().await;
    let registrator =
        Registrator::start_with_docker(&agent, &["-ip=127.0.0.1"], &proxy.docker_host()).await;
    let name = unique("t40");
    let svc = format!("SERVICE_NAME={name}");
    let kept = Container::run(&unique("t40-kept"), &["-p", "8080", "-e", &svc], IMAGE).await;
    let stopped = Container::run(&unique("t40-stopped"), &["-p", "8080", "-e", &svc], IMAGE).await;
    wait_catalog(
        &agent,
        &name,
        &[kept.service_id(8080), stopped.service_id(8080)],
    )
    .await;

    // --- step: cut; changes registrator cannot see
    proxy.cut();
    registrator.wait_log("docker event stream").await;
    let started = Container::run(&unique("t40-started"), &["-p", "8080", "-e", &svc], IMAGE).await;
    stopped.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        catalog_ids(&agent, &name).await.len(),
        2,
        "nothing changes while cut"
    );

    // --- step: restore → converge
    proxy.restore();
    wait_catalog(
        &agent,
        &name,
        &[kept.service_id(8080), started.service_id(8080)],
    )
    .await;
    registrator.wait_log("reconnected to docker").await;
    drop(registrator);
    agent.shutdown().await;
}
