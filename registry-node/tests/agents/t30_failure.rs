//! A killed client turns `failed` in `members`, its node's `serfHealth` turns
//! critical and its services drop out of `/v1/health/service?passing`.

use crate::{WAIT, cluster, eventually, get, members, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_client_fails_and_its_services_leave_discovery() {
    let mut c = cluster(1, 2).await;
    let (status, _) = put(
        c.agent(1),
        "/v1/agent/service/register",
        r#"{"Name": "api", "ID": "api-1", "Port": 9000}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = put(
        c.agent(2),
        "/v1/agent/service/register",
        r#"{"Name": "api", "ID": "api-2", "Port": 9000}"#,
    )
    .await;
    assert_eq!(status, 200);
    eventually(WAIT, "both instances passing", || async {
        get(c.agent(0), "/v1/health/service/api?passing")
            .await
            .1
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;

    let dead = c.nodes[1].opts.node_name.clone();
    c.kill(1).await;
    eventually(WAIT, "the killed client failed", || async {
        members(c.agent(0))
            .await
            .iter()
            .any(|(n, s)| *n == dead && *s == 4)
    })
    .await;
    eventually(WAIT, "its instance out of discovery", || async {
        let (_, nodes) = get(c.agent(0), "/v1/health/service/api?passing").await;
        nodes
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["Service"]["ID"] == "api-2")
    })
    .await;
    let (_, checks) = get(c.agent(2), &format!("/v1/health/node/{dead}")).await;
    let serf = checks
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["CheckID"] == "serfHealth")
        .expect("serfHealth")
        .clone();
    assert_eq!(serf["Status"], "critical");
    assert_eq!(serf["Output"], "Agent not live or unreachable");

    // It comes back: alive again, instance passing again.
    c.restart(1).await;
    eventually(WAIT, "the restarted client passing again", || async {
        get(c.agent(0), "/v1/health/service/api?passing")
            .await
            .1
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    c.shutdown().await;
}
