//! `-deregister on-success`: failed containers stay registered.

use registry_node::testing::TestAgent;

use crate::*;

/// - a container exiting 1 keeps its service;
/// - one exiting 0 and one killed (exit 137) lose theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_containers_stay_registered() {
    setup();
    let agent = TestAgent::start().await;
    let registrator =
        Registrator::start(&agent, &["-ip=127.0.0.1", "-deregister=on-success"]).await;
    let name = unique("t20");
    let svc = format!("SERVICE_NAME={name}");
    let failed = Container::run(
        &unique("t20-failed"),
        &["-p", "8080", "-e", &svc, "-e", "EXIT_CODE=1"],
        IMAGE,
    )
    .await;
    let ok = Container::run(&unique("t20-ok"), &["-p", "8080", "-e", &svc], IMAGE).await;
    let killed = Container::run(&unique("t20-killed"), &["-p", "8080", "-e", &svc], IMAGE).await;
    let all = [
        failed.service_id(8080),
        ok.service_id(8080),
        killed.service_id(8080),
    ];
    wait_catalog(&agent, &name, &all).await;

    // --- step: the failure first, then the successes
    failed.stop().await;
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.ExitCode}}", &failed.name]).await,
        "1"
    );
    ok.stop().await;
    docker(&["kill", &killed.name]).await;
    // Events are handled in order: once the last two are gone, the first was decided.
    wait_catalog(&agent, &name, &[failed.service_id(8080)]).await;
    registrator
        .wait_log("keeping services of failed container")
        .await;
    drop(registrator);
    agent.shutdown().await;
}
