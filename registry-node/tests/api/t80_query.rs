//! Prepared queries: CRUD, validation, execution with health and tag
//! filtering, template resolution by prefix, unknown queries.

use super::*;
use serde_json::json;

async fn register(a: &TestAgent, node: &str, id: &str, tags: Value, status: &str) {
    let body = json!({
        "Node": node, "Address": "10.0.0.1",
        "Service": {"ID": id, "Service": "web", "Tags": tags, "Port": 80},
        "Check": {"CheckID": format!("chk-{id}"), "Name": "c", "Status": status, "ServiceID": id},
    });
    let (status, text) = put(a, "/v1/catalog/register", body.to_string()).await;
    assert_eq!((status, text.as_str()), (200, "true"), "{body}");
}

async fn post(a: &TestAgent, body: Value) -> (u16, String) {
    let r = a
        .http
        .post(a.url("/v1/query"))
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn create(a: &TestAgent, body: Value) -> String {
    let (status, text) = post(a, body).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

fn node_names(answer: &Value) -> Vec<String> {
    let mut n: Vec<String> = answer["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Node"]["Node"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn crud_and_validation() {
    let a = TestAgent::start().await;
    let id = create(
        &a,
        json!({"Name": "web-q", "Service": {"Service": "web", "Tags": ["v1"]}, "DNS": {"TTL": "10s"}}),
    )
    .await;
    let (one, index) = get_json(&a, &format!("/v1/query/{id}")).await;
    let q = &one[0];
    assert_eq!(q["ID"], id.as_str());
    assert_eq!(q["Name"], "web-q");
    assert_eq!(q["Service"]["Tags"], json!(["v1"]));
    assert_eq!(q["DNS"]["TTL"], "10s");
    assert!(q["CreateIndex"].as_u64().unwrap() > 0);
    assert!(index > 0);
    let (list, _) = get_json(&a, "/v1/query").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // --- step: validation answers 400 with Consul's messages
    let (status, body) = post(&a, json!({"Name": "web-q", "Service": {"Service": "x"}})).await;
    assert_eq!(status, 400);
    assert!(body.contains("aliases an existing query name"), "{body}");
    let (status, body) = post(&a, json!({"Name": "nosvc"})).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Must provide a Service name to query")
    );

    // --- step: update replaces the definition and bumps ModifyIndex only
    let (status, body) = put(
        &a,
        &format!("/v1/query/{id}"),
        json!({"Name": "web-q", "Service": {"Service": "api"}}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (one, _) = get_json(&a, &format!("/v1/query/{id}")).await;
    assert_eq!(one[0]["Service"]["Service"], "api");
    assert_eq!(one[0]["CreateIndex"], q["CreateIndex"]);
    assert!(one[0]["ModifyIndex"].as_u64() > q["ModifyIndex"].as_u64());

    // --- step: delete, then everything about it is 404
    assert_eq!(delete(&a, &format!("/v1/query/{id}")).await.0, 200);
    let (status, _, body) = get(&a, &format!("/v1/query/{id}")).await;
    assert_eq!((status, body.as_str()), (404, "Query not found"));
    let (status, _, body) = get(&a, "/v1/query/web-q/execute").await;
    assert_eq!((status, body.as_str()), (404, "Query not found"));
    assert_eq!(delete(&a, &format!("/v1/query/{id}")).await.0, 500);
    let (list, _) = get_json(&a, "/v1/query").await;
    assert_eq!(list, json!([]));
    a.shutdown().await;
}

#[tokio::test]
async fn execute_filters_and_templates() {
    let a = TestAgent::start().await;
    register(&a, "n1", "web1", json!(["v1", "primary"]), "passing").await;
    register(&a, "n2", "web2", json!(["v1"]), "warning").await;
    register(&a, "n3", "web3", json!(["v1"]), "critical").await;
    register(&a, "n4", "web4", json!(["v2"]), "passing").await;
    let id = create(
        &a,
        json!({"Name": "web-v1", "Service": {"Service": "web", "Tags": ["v1"]}}),
    )
    .await;

    // --- step: critical instances and untagged ones are dropped; by ID or name
    for key in [id.as_str(), "web-v1"] {
        let (answer, _) = get_json(&a, &format!("/v1/query/{key}/execute")).await;
        assert_eq!(node_names(&answer), ["n1", "n2"]);
        assert_eq!(answer["Service"], "web");
        assert_eq!(answer["Failovers"], 0);
        assert_eq!(
            answer["Datacenter"],
            a.handle.agent.opts.datacenter.as_str()
        );
    }
    let (answer, _) = get_json(&a, "/v1/query/web-v1/execute?limit=1").await;
    assert_eq!(answer["Nodes"].as_array().unwrap().len(), 1);

    // --- step: OnlyPassing and `!tag` exclusions
    create(
        &a,
        json!({"Name": "strict", "Service": {"Service": "web", "OnlyPassing": true, "Tags": ["!primary"]}}),
    )
    .await;
    let (answer, _) = get_json(&a, "/v1/query/strict/execute").await;
    assert_eq!(node_names(&answer), ["n4"]);

    // --- step: a prefix template renders the looked-up name
    create(
        &a,
        json!({
            "Name": "tag-",
            "Template": {"Type": "name_prefix_match", "Regexp": "^tag-(.*)-(.*)$"},
            "Service": {"Service": "${match(2)}", "Tags": ["${match(1)}"]},
        }),
    )
    .await;
    let (answer, _) = get_json(&a, "/v1/query/tag-v2-web/execute").await;
    assert_eq!(node_names(&answer), ["n4"]);
    let (explained, _) = get_json(&a, "/v1/query/tag-v1-web/explain").await;
    assert_eq!(explained["Query"]["Service"]["Service"], "web");
    assert_eq!(explained["Query"]["Service"]["Tags"], json!(["v1"]));
    let (status, _, body) = get(&a, "/v1/query/nothing/explain").await;
    assert_eq!((status, body.as_str()), (404, "Query not found"));
    a.shutdown().await;
}
