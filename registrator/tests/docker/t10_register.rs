//! Registration of published ports: one port, two ports (group suffix), SERVICE_*
//! from env and labels, the HTTP check, and removal when the container stops.

use registry_node::testing::TestAgent;
use serde_json::json;

use crate::*;

/// - a one-port container with SERVICE_NAME/TAGS/CHECK_HTTP env and a
///   SERVICE_REGION label appears as `<hostname>:<name>:8080` with the published
///   port on `-ip`, its tags and meta, and a passing HTTP check;
/// - a two-port container gets `<name>-8080` and `<name>-9090`;
/// - `docker stop` removes the services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_become_services() {
    setup();
    let agent = TestAgent::start().await;
    let registrator = Registrator::start(&agent, &["-ip=127.0.0.1"]).await;
    let one = unique("t10-one");
    let two = unique("t10-two");

    // --- step: start both containers
    let c1 = Container::run(
        &one,
        &[
            "-p",
            "8080",
            "-e",
            &format!("SERVICE_NAME={one}"),
            "-e",
            "SERVICE_TAGS=blue,v1",
            "-e",
            "SERVICE_CHECK_HTTP=/health",
            "-e",
            "SERVICE_CHECK_INTERVAL=1s",
            "--label",
            "SERVICE_REGION=eu",
        ],
        IMAGE,
    )
    .await;
    let c2 = Container::run(
        &two,
        &[
            "-p",
            "8080",
            "-p",
            "9090",
            "-e",
            "PORT2=9090",
            "-e",
            &format!("SERVICE_NAME={two}"),
        ],
        IMAGE,
    )
    .await;
    let port1 = c1.host_port(8080).await;

    // --- step: the one-port service, as the catalog shows it
    wait_catalog(&agent, &one, &[c1.service_id(8080)]).await;
    let entry = catalog(&agent, &one).await.remove(0);
    assert_eq!(entry["ServiceName"], json!(one));
    assert_eq!(entry["ServiceAddress"], json!("127.0.0.1"));
    assert_eq!(entry["ServicePort"], json!(port1));
    assert_eq!(entry["ServiceTags"], json!(["blue", "v1"]));
    assert_eq!(entry["ServiceMeta"]["region"], json!("eu"));
    assert!(entry["ServiceMeta"].get("check_http").is_none(), "{entry}");

    // --- step: its HTTP check reaches demo-web and passes
    let want_check = c1.service_id(8080);
    eventually("a passing HTTP check", || async {
        let checks = get_json(&agent, &format!("/v1/health/checks/{one}")).await;
        let checks = checks.as_array()?.clone();
        (checks.len() == 1
            && checks[0]["ServiceID"] == json!(want_check)
            && checks[0]["Status"] == json!("passing"))
        .then_some(())
    })
    .await;

    // --- step: two ports, two services with the port as suffix
    wait_catalog(&agent, &format!("{two}-8080"), &[c2.service_id(8080)]).await;
    wait_catalog(&agent, &format!("{two}-9090"), &[c2.service_id(9090)]).await;
    let entry = catalog(&agent, &format!("{two}-9090")).await.remove(0);
    assert_eq!(entry["ServicePort"], json!(c2.host_port(9090).await));

    // --- step: stopped → gone
    c1.stop().await;
    c2.stop().await;
    wait_catalog(&agent, &one, &[]).await;
    wait_catalog(&agent, &format!("{two}-8080"), &[]).await;
    wait_catalog(&agent, &format!("{two}-9090"), &[]).await;
    drop(registrator);
    agent.shutdown().await;
}
