//! Agent-owned state: services registered through the API survive a restart
//! (data dir), anti-entropy reverts outside catalog edits of agent-owned
//! services, `deregister_critical_service_after` removes a service.

use std::time::Duration;

use super::*;
use registry_node::agent::AgentOptions;
use registry_node::testing::wait_for;
use serde_json::json;

#[tokio::test]
async fn api_registrations_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = AgentOptions::for_test();
    opts.data_dir = Some(dir.path().to_path_buf());
    let a = TestAgent::start_with(opts.clone()).await;
    let reg = json!({"Name": "api", "ID": "api1", "Port": 9000, "Check": {"CheckID": "api-ttl", "TTL": "60s", "Status": "passing"}});
    assert_eq!(
        put(&a, "/v1/agent/service/register", reg.to_string())
            .await
            .0,
        200
    );
    let node_check = json!({"Name": "disk", "TTL": "60s"});
    assert_eq!(
        put(&a, "/v1/agent/check/register", node_check.to_string())
            .await
            .0,
        200
    );
    assert_eq!(
        put(&a, "/v1/agent/check/warn/disk?note=90%25", "").await.0,
        200
    );
    a.shutdown().await;

    // --- step: a new agent on the same data dir has them back, with the TTL status
    let b = TestAgent::start_with(opts).await;
    let (svcs, _) = get_json(&b, "/v1/agent/services").await;
    assert_eq!(svcs["api1"]["Port"], 9000);
    let (checks, _) = get_json(&b, "/v1/agent/checks").await;
    assert_eq!(checks["api-ttl"]["Status"], "passing");
    assert_eq!(checks["disk"]["Status"], "warning");
    assert_eq!(checks["disk"]["Output"], "90%");
    let (rows, _) = get_json(&b, "/v1/health/service/api").await;
    assert_eq!(
        rows.as_array().unwrap().len(),
        1,
        "synced to the catalog again"
    );
    let statuses: Vec<&str> = rows[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"warning") && statuses.contains(&"passing"),
        "{statuses:?}"
    );
    // Deregistration is persisted too.
    assert_eq!(
        put(&b, "/v1/agent/service/deregister/api1", "").await.0,
        200
    );
    b.shutdown().await;
}

#[tokio::test]
async fn anti_entropy_reverts_outside_catalog_edits() {
    let mut opts = AgentOptions::for_test();
    opts.sync_interval = Duration::from_millis(200);
    let a = TestAgent::start_with(opts).await;
    let node = a.handle.agent.opts.node_name.clone();
    let reg = json!({"Name": "web", "ID": "web1", "Port": 80, "Tags": ["v1"]});
    assert_eq!(
        put(&a, "/v1/agent/service/register", reg.to_string())
            .await
            .0,
        200
    );
    // --- step: someone edits the agent's service through the catalog API
    let edit = json!({"Node": node, "Address": "127.0.0.1", "SkipNodeUpdate": true, "Service": {"ID": "web1", "Service": "web", "Port": 81, "Tags": ["hacked"]}});
    assert_eq!(
        put(&a, "/v1/catalog/register", edit.to_string()).await.0,
        200
    );
    let stray = json!({"Node": node, "Address": "127.0.0.1", "SkipNodeUpdate": true, "Service": {"ID": "stray", "Service": "stray", "Port": 1}});
    assert_eq!(
        put(&a, "/v1/catalog/register", stray.to_string()).await.0,
        200
    );
    // --- step: the next sync puts the agent's view back
    let agent = a.handle.agent.clone();
    wait_for(Duration::from_secs(10), "anti-entropy", || {
        agent.server_raft().expect("server").shared.read(|s| {
            let svcs: Vec<_> = s.catalog().node_services(&node).cloned().collect();
            svcs.iter()
                .any(|s| s.id == "web1" && s.port == 80 && s.tags == ["v1"])
                && !svcs.iter().any(|s| s.id == "stray")
        })
    })
    .await;
    a.shutdown().await;
}

#[tokio::test]
async fn critical_service_is_deregistered_after_timeout() {
    let a = TestAgent::start().await;
    let reg = json!({"Name": "flaky", "Port": 1, "Check": {"TTL": "100ms", "DeregisterCriticalServiceAfter": "300ms"}});
    assert_eq!(
        put(&a, "/v1/agent/service/register", reg.to_string())
            .await
            .0,
        200
    );
    let agent = a.handle.agent.clone();
    wait_for(Duration::from_secs(10), "service reaped", || {
        agent
            .server_raft()
            .expect("server")
            .shared
            .read(|s| s.catalog().service_nodes("flaky").is_empty())
    })
    .await;
    assert_eq!(get_json(&a, "/v1/agent/services").await.0, json!({}));
    a.shutdown().await;
}
