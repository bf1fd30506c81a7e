//! Docker HEALTHCHECK mirrored on a TTL check.

use registry_node::testing::TestAgent;
use serde_json::json;

use crate::*;

/// - a container with a HEALTHCHECK is registered with a `<id>:docker-health`
///   check that turns passing once Docker reports healthy;
/// - `docker cp` of `/tmp/unhealthy` makes `/health` fail: Docker reports
///   unhealthy, the check goes critical and the instance leaves `?passing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_health_drives_the_check() {
    setup();
    let agent = TestAgent::start().await;
    let registrator = Registrator::start(&agent, &["-ip=127.0.0.1"]).await;
    let name = unique("t60");
    let c = Container::run(
        &unique("t60-web"),
        &["-p", "8080", "-e", &format!("SERVICE_NAME={name}")],
        HEALTH_IMAGE,
    )
    .await;
    let id = c.service_id(8080);
    let passing = format!("/v1/health/service/{name}?passing");
    let check_status = || async {
        let checks = get_json(&agent, &format!("/v1/health/checks/{name}")).await;
        checks
            .as_array()?
            .iter()
            .find(|c| c["CheckID"] == json!(format!("{id}:docker-health")))
            .map(|c| c["Status"].clone())
    };

    // --- step: healthy → passing
    eventually("healthy instance", || async {
        let entries = get_json(&agent, &passing).await;
        (entries.as_array()?.len() == 1).then_some(())
    })
    .await;
    assert_eq!(check_status().await, Some(json!("passing")));

    // --- step: unhealthy → critical, out of ?passing
    let flag = tempfile::NamedTempFile::new().expect("flag file");
    let flag_path = flag.path().to_str().expect("utf-8 path");
    docker(&["cp", flag_path, &format!("{}:/tmp/unhealthy", c.name)]).await;
    eventually("critical docker-health check", || async {
        (check_status().await? == json!("critical")).then_some(())
    })
    .await;
    eventually("instance out of ?passing", || async {
        let entries = get_json(&agent, &passing).await;
        entries.as_array()?.is_empty().then_some(())
    })
    .await;
    drop(registrator);
    agent.shutdown().await;
}
