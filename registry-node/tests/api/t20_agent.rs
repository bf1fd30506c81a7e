//! Agent endpoints: identity, members, service and check registration (the
//! seed's `jetty` payload with lower-case keys), TTL checks, agent health codes,
//! maintenance, events, header casing on the wire.

use std::time::Duration;

use super::*;
use registry_node::testing::wait_for;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn self_members_and_header_casing() {
    let a = TestAgent::start().await;
    let (me, _) = get_json(&a, "/v1/agent/self").await;
    assert_eq!(me["Config"]["Datacenter"], "dc1");
    assert_eq!(
        me["Config"]["NodeName"],
        a.handle.agent.opts.node_name.as_str()
    );
    assert_eq!(me["Config"]["NodeID"], a.handle.agent.opts.node_id.as_str());
    assert_eq!(me["Config"]["Version"], "1.22.0");
    assert!(me["Config"]["RegistryVersion"].is_string());
    assert_eq!(me["Stats"]["raft"]["state"], "Leader");
    assert_eq!(me["Stats"]["consul"]["leader"], "true");
    let (members, _) = get_json(&a, "/v1/agent/members").await;
    assert_eq!(members[0]["Status"], 1);
    assert_eq!(members[0]["Tags"]["role"], "consul");
    assert_eq!(members[0]["Tags"]["dc"], "dc1");

    // --- step: headers go out with Go's canonical casing
    let mut s = tokio::net::TcpStream::connect(a.handle.http_addr)
        .await
        .unwrap();
    s.write_all(b"GET /v1/catalog/nodes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    for h in [
        "X-Consul-Index: ",
        "X-Consul-Knownleader: true",
        "X-Consul-Lastcontact: 0",
        "Content-Type: application/json",
        "X-Consul-Default-Acl-Policy: allow",
    ] {
        assert!(raw.contains(h), "missing {h:?} in\n{raw}");
    }
    a.shutdown().await;
}

#[tokio::test]
async fn service_registration_seed_payload() {
    let a = TestAgent::start().await;
    // --- step: seed 001's curl, lower-case keys and an HTTP check
    let body = r#"{"id": "jetty","name": "service_name","address": "10.11.97.181","port": 8080,"tags": ["test"],"checks": [{"http": "http://10.11.97.181:8080/","interval": "5s"}]}"#;
    let (status, text) = put(&a, "/v1/agent/service/register", body).await;
    assert_eq!(status, 200, "{text}");
    let (svcs, _) = get_json(&a, "/v1/agent/services").await;
    let s = &svcs["jetty"];
    assert_eq!(s["Service"], "service_name");
    assert_eq!(s["Tags"], json!(["test"]));
    assert_eq!(s["Port"], 8080);
    assert_eq!(s["Address"], "10.11.97.181");
    assert_eq!(s["Datacenter"], "dc1");
    let (checks, _) = get_json(&a, "/v1/agent/checks").await;
    let c = &checks["service:jetty"];
    assert_eq!(c["Name"], "Service 'service_name' check");
    assert_eq!(c["Status"], "critical");
    assert_eq!(c["Type"], "http");
    assert_eq!(c["Interval"], "5s");
    assert_eq!(c["ServiceID"], "jetty");
    // In the catalog right away.
    let (rows, _) = get_json(&a, "/v1/catalog/service/service_name").await;
    assert_eq!(rows[0]["ServiceID"], "jetty");
    assert_eq!(rows[0]["ServiceAddress"], "10.11.97.181");
    let (rows, _) = get_json(&a, "/v1/health/service/service_name?passing").await;
    assert_eq!(rows, json!([]), "critical check hides it");

    // --- step: single service view with content hash
    let r = a
        .http
        .get(a.url("/v1/agent/service/jetty"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hash = r
        .headers()
        .get("X-Consul-ContentHash")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ContentHash"], hash.as_str());
    assert_eq!(get(&a, "/v1/agent/service/nope").await.0, 404);

    // --- step: deregister, including unknown IDs
    assert_eq!(
        put(&a, "/v1/agent/service/deregister/jetty", "").await.0,
        200
    );
    let (rows, _) = get_json(&a, "/v1/catalog/service/service_name").await;
    assert_eq!(rows, json!([]));
    let (status, body) = put(&a, "/v1/agent/service/deregister/jetty", "").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        r#"Unknown service ID "jetty". Ensure that the service ID is passed, not the service name."#
    );

    // --- step: validation errors
    assert_eq!(put(&a, "/v1/agent/service/register", "{").await.0, 400);
    let (status, body) = put(&a, "/v1/agent/service/register", r#"{"Port": 1}"#).await;
    assert_eq!((status, body.as_str()), (400, "Missing service name"));
    let (status, body) = put(
        &a,
        "/v1/agent/service/register",
        r#"{"Name":"x","Check":{"HTTP":"http://a/"}}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    a.shutdown().await;
}

#[tokio::test]
async fn ttl_checks_and_agent_health() {
    let a = TestAgent::start().await;
    let reg = json!({"Name": "api", "ID": "api1", "Port": 9000, "Check": {"CheckID": "api-ttl", "TTL": "1s", "Status": "passing"}});
    assert_eq!(
        put(&a, "/v1/agent/service/register", reg.to_string())
            .await
            .0,
        200
    );
    let (status, _, body) = get(&a, "/v1/agent/health/service/name/api").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["AggregatedStatus"], "passing");
    assert_eq!(v[0]["Service"]["ID"], "api1");

    // --- step: warn → 429, fail → 503, text format
    assert_eq!(
        put(&a, "/v1/agent/check/warn/api-ttl?note=slow", "")
            .await
            .0,
        200
    );
    assert_eq!(get(&a, "/v1/agent/health/service/id/api1").await.0, 429);
    let (checks, _) = get_json(&a, "/v1/health/checks/api").await;
    assert_eq!(
        (checks[0]["Status"].as_str(), checks[0]["Output"].as_str()),
        (Some("warning"), Some("slow"))
    );
    let update = json!({"Status": "critical", "Output": "down"});
    assert_eq!(
        put(&a, "/v1/agent/check/update/api-ttl", update.to_string())
            .await
            .0,
        200
    );
    assert_eq!(
        get(&a, "/v1/agent/health/service/name/api?format=text").await,
        (503, 0, "critical".into())
    );
    assert_eq!(put(&a, "/v1/agent/check/pass/api-ttl", "").await.0, 200);
    assert_eq!(get(&a, "/v1/agent/health/service/name/api").await.0, 200);
    assert_eq!(get(&a, "/v1/agent/health/service/name/none").await.0, 404);

    // --- step: the TTL expires without updates
    let agent = a.handle.agent.clone();
    wait_for(Duration::from_secs(5), "TTL expiry", || {
        agent.server_raft().expect("server").shared.read(|s| {
            s.catalog()
                .check(&agent.opts.node_name, "api-ttl")
                .is_some_and(|c| c.status == "critical" && c.output == "TTL expired")
        })
    })
    .await;

    // --- step: TTL endpoints on unknown and non-TTL checks
    assert_eq!(put(&a, "/v1/agent/check/pass/nope", "").await.0, 404);
    let http_check = json!({"Name": "web", "HTTP": "http://127.0.0.1:1/", "Interval": "10s"});
    assert_eq!(
        put(&a, "/v1/agent/check/register", http_check.to_string())
            .await
            .0,
        200
    );
    let (status, body) = put(&a, "/v1/agent/check/pass/web", "").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(put(&a, "/v1/agent/check/deregister/web", "").await.0, 200);
    assert_eq!(put(&a, "/v1/agent/check/deregister/web", "").await.0, 404);
    let orphan = json!({"Name": "o", "TTL": "10s", "ServiceID": "missing"});
    assert_eq!(
        put(&a, "/v1/agent/check/register", orphan.to_string())
            .await
            .0,
        400
    );
    a.shutdown().await;
}

#[tokio::test]
async fn maintenance_hides_and_restores() {
    let a = TestAgent::start().await;
    let reg = json!({"Name": "web", "Port": 80, "Check": {"TTL": "60s", "Status": "passing"}});
    assert_eq!(
        put(&a, "/v1/agent/service/register", reg.to_string())
            .await
            .0,
        200
    );
    assert_eq!(
        get_json(&a, "/v1/health/service/web?passing")
            .await
            .0
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // --- step: service maintenance
    assert_eq!(
        put(
            &a,
            "/v1/agent/service/maintenance/web?enable=true&reason=deploy",
            ""
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get_json(&a, "/v1/health/service/web?passing").await.0,
        json!([])
    );
    let (checks, _) = get_json(&a, "/v1/agent/checks").await;
    assert_eq!(checks["_service_maintenance:web"]["Notes"], "deploy");
    assert_eq!(
        get(&a, "/v1/agent/health/service/id/web?format=text")
            .await
            .2,
        "maintenance"
    );
    assert_eq!(
        put(&a, "/v1/agent/service/maintenance/web?enable=false", "")
            .await
            .0,
        200
    );
    assert_eq!(
        get_json(&a, "/v1/health/service/web?passing")
            .await
            .0
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // --- step: node maintenance
    assert_eq!(
        put(&a, "/v1/agent/maintenance?enable=true", "").await.0,
        200
    );
    assert_eq!(
        get_json(&a, "/v1/health/service/web?passing").await.0,
        json!([])
    );
    assert_eq!(
        put(&a, "/v1/agent/maintenance?enable=false", "").await.0,
        200
    );
    assert_eq!(
        get_json(&a, "/v1/health/service/web?passing")
            .await
            .0
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        put(&a, "/v1/agent/maintenance", "").await.0,
        400,
        "enable is required"
    );
    assert_eq!(
        put(&a, "/v1/agent/service/maintenance/none?enable=true", "")
            .await
            .0,
        404
    );
    a.shutdown().await;
}

#[tokio::test]
async fn events_fire_and_list() {
    let a = TestAgent::start().await;
    let (status, body) = put(&a, "/v1/event/fire/deploy?node=web.*", "v2").await;
    assert_eq!(status, 200, "{body}");
    let ev: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ev["Name"], "deploy");
    assert_eq!(ev["Payload"], "djI=");
    assert_eq!(ev["NodeFilter"], "web.*");
    assert_eq!(ev["Version"], 1);
    put(&a, "/v1/event/fire/other", "").await;
    let (list, idx) = get_json(&a, "/v1/event/list?name=deploy").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Blocking list returns when a new event arrives.
    let waiter = {
        let (http, url) = (
            a.http.clone(),
            a.url(&format!("/v1/event/list?name=deploy&index={idx}&wait=10s")),
        );
        tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    put(&a, "/v1/event/fire/deploy", "v3").await;
    let list = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(put(&a, "/v1/event/fire/_reserved", "").await.0, 400);
    a.shutdown().await;
}
