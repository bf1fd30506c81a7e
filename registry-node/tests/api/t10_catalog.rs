//! Catalog and health endpoints: register/deregister, every list view, tag and
//! passing filters, `?filter=`, node-meta, and their error paths.

use super::*;
use serde_json::json;

async fn register(a: &TestAgent, body: Value) {
    let (status, text) = put(a, "/v1/catalog/register", body.to_string()).await;
    assert_eq!((status, text.as_str()), (200, "true"), "{body}");
}

#[tokio::test]
async fn register_query_deregister() {
    let a = TestAgent::start().await;
    let me = a.handle.agent.opts.node_name.clone();
    // --- step: the agent registered itself with serfHealth and the consul service
    let (nodes, _) = get_json(&a, "/v1/catalog/nodes").await;
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["Node"] == me.as_str())
    );
    let (svcs, _) = get_json(&a, "/v1/catalog/services").await;
    assert_eq!(svcs["consul"], json!([]));

    // --- step: external node with two web instances and checks
    for (i, status) in [(1, "passing"), (2, "critical")] {
        register(
            &a,
            json!({
                "Node": format!("ext{i}"), "Address": format!("10.0.0.{i}"), "NodeMeta": {"rack": format!("r{i}")},
                "Service": {"ID": format!("web{i}"), "Service": "web", "Tags": ["v1", format!("n{i}")], "Port": 8080, "Meta": {"env": "prod"}},
                "Check": {"CheckID": format!("web{i}-http"), "Name": "http", "Status": status, "ServiceID": format!("web{i}")}
            }),
        )
        .await;
    }
    register(
        &a,
        json!({"node": "ext3", "address": "10.0.0.3", "service": {"service": "db", "port": 5432}}),
    )
    .await;

    let (svcs, idx) = get_json(&a, "/v1/catalog/services").await;
    assert_eq!(svcs["web"], json!(["n1", "n2", "v1"]));
    assert_eq!(svcs["db"], json!([]));
    assert!(idx > 1);

    let (rows, _) = get_json(&a, "/v1/catalog/service/web").await;
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let r = &rows[0];
    for field in [
        "ID",
        "Node",
        "Address",
        "Datacenter",
        "TaggedAddresses",
        "NodeMeta",
        "ServiceKind",
        "ServiceID",
        "ServiceName",
        "ServiceTags",
        "ServiceAddress",
        "ServiceWeights",
        "ServiceMeta",
        "ServicePort",
        "ServiceEnableTagOverride",
        "ServiceProxy",
        "ServiceConnect",
        "CreateIndex",
        "ModifyIndex",
    ] {
        assert!(r.get(field).is_some(), "missing {field} in {r}");
    }
    assert_eq!(r["ServiceWeights"], json!({"Passing": 1, "Warning": 1}));
    assert_eq!(r["Datacenter"], "dc1");
    let (rows, _) = get_json(&a, "/v1/catalog/service/web?tag=v1&tag=n2").await;
    assert_eq!(rows.as_array().unwrap().len(), 1, "tags are ANDed");
    assert_eq!(rows[0]["ServiceID"], "web2");
    let (rows, _) = get_json(&a, "/v1/catalog/service/web?node-meta=rack:r1").await;
    assert_eq!(rows[0]["ServiceID"], "web1");
    let (rows, _) = get_json(&a, "/v1/catalog/service/nothing").await;
    assert_eq!(rows, json!([]));

    // --- step: ?filter on catalog and health
    let (rows, _) = get_json(
        &a,
        "/v1/catalog/service/web?filter=ServiceID%20%3D%3D%20%22web2%22",
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let (status, _, body) = get(&a, "/v1/catalog/service/web?filter=Nope%20%3D%3D%20%22x%22").await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = get(&a, "/v1/catalog/nodes?filter=((").await;
    assert_eq!(status, 400);

    // --- step: health views
    let (rows, _) = get_json(&a, "/v1/health/service/web").await;
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert!(
        rows[0]["Checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["CheckID"] == "web1-http")
    );
    let (rows, _) = get_json(&a, "/v1/health/service/web?passing").await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["Service"]["ID"], "web1");
    let (rows, _) = get_json(
        &a,
        "/v1/health/service/web?filter=Service.Meta.env%20%3D%3D%20%22prod%22",
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let (checks, _) = get_json(&a, "/v1/health/checks/web").await;
    assert_eq!(checks.as_array().unwrap().len(), 2);
    let (checks, _) = get_json(&a, "/v1/health/state/critical").await;
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["CheckID"] == "web2-http")
    );
    let (checks, _) = get_json(&a, "/v1/health/node/ext1").await;
    assert_eq!(checks[0]["ServiceName"], "web");
    assert_eq!(get(&a, "/v1/health/state/bogus").await.0, 400);

    // --- step: node views
    let (n, _) = get_json(&a, "/v1/catalog/node/ext1").await;
    assert_eq!(n["Node"]["Address"], "10.0.0.1");
    assert_eq!(n["Services"]["web1"]["Service"], "web");
    let (n, _) = get_json(&a, "/v1/catalog/node-services/ext1").await;
    assert_eq!(n["Services"][0]["ID"], "web1");
    let (n, _) = get_json(&a, "/v1/catalog/node/ghost").await;
    assert_eq!(n, Value::Null);
    let (dcs, _) = get_json(&a, "/v1/catalog/datacenters").await;
    assert_eq!(dcs, json!(["dc1"]));

    // --- step: deregistration of a service, a check, a node
    assert_eq!(
        put(
            &a,
            "/v1/catalog/deregister",
            json!({"Node": "ext2", "ServiceID": "web2"}).to_string()
        )
        .await
        .1,
        "true"
    );
    let (rows, _) = get_json(&a, "/v1/catalog/service/web").await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(
        put(
            &a,
            "/v1/catalog/deregister",
            json!({"Node": "ext1", "CheckID": "web1-http"}).to_string()
        )
        .await
        .1,
        "true"
    );
    let (checks, _) = get_json(&a, "/v1/health/checks/web").await;
    assert_eq!(checks, json!([]));
    assert_eq!(
        put(
            &a,
            "/v1/catalog/deregister",
            json!({"Node": "ext1"}).to_string()
        )
        .await
        .1,
        "true"
    );
    let (rows, _) = get_json(&a, "/v1/catalog/service/web").await;
    assert_eq!(rows, json!([]));

    // --- step: errors
    assert_eq!(put(&a, "/v1/catalog/register", "{not json").await.0, 400);
    let (status, body) = put(
        &a,
        "/v1/catalog/register",
        json!({"Address": "1.2.3.4"}).to_string(),
    )
    .await;
    assert_eq!((status, body.as_str()), (400, "Missing node name"));
    let (status, body) = put(&a, "/v1/catalog/register", json!({"Node": "x"}).to_string()).await;
    assert_eq!((status, body.as_str()), (400, "Missing node address"));
    let (status, _) = put(&a, "/v1/catalog/deregister", "{}").await;
    assert_eq!(status, 400);
    let bad_check = json!({"Node": "ext9", "Address": "10.0.0.9", "Check": {"CheckID": "c", "ServiceID": "nope"}});
    assert_eq!(
        put(&a, "/v1/catalog/register", bad_check.to_string())
            .await
            .0,
        500
    );
    assert_eq!(
        get(&a, "/v1/catalog/node/ext9").await.2,
        "null",
        "failed registration wrote nothing"
    );
    a.shutdown().await;
}

#[tokio::test]
async fn status_endpoints() {
    let a = TestAgent::start().await;
    let addr = format!("127.0.0.1:{}", a.handle.agent.opts.server_port);
    let (leader, _) = get_json(&a, "/v1/status/leader").await;
    assert_eq!(leader, json!(addr));
    let (peers, _) = get_json(&a, "/v1/status/peers").await;
    assert_eq!(peers, json!([addr]));
    assert_eq!(get(&a, "/v1/status/leader?dc=dc2").await.0, 500);
    a.shutdown().await;
}
